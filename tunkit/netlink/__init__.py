"""rtnetlink over raw AF_NETLINK sockets: codec (pure) and client (I/O).

Importing this package does no I/O.
"""
