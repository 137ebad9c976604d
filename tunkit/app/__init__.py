"""tunkit's applications: configuration files (``config``), ``tunkit up`` (``up``) and the demo; orchestration, does I/O.

Importing the package itself does no I/O and loads nothing.
"""
