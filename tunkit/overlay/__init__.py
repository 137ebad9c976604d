"""The overlay: wire format (``wire``, pure), UDP underlay, loop and status socket (I/O), tunnel and node; does I/O.

Importing the package itself does no I/O and loads nothing; see ARCHITECTURE.md for each module's layer.
"""
