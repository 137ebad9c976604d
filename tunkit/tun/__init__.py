"""TUN/TAP devices and queues (``device``) and the offload-aware packet path over them (``batch``); does I/O.

Importing the package itself does no I/O and loads nothing.
"""
