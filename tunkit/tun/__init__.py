"""TUN/TAP devices and queues (``device``) and the offload-aware packet path over them (``batch``); does I/O.

``ifreq``: ``struct ifreq`` and the ioctls; ``clone``: opening descriptors on ``/dev/net/tun``
(TUNSETIFF, the offload ladder); ``queue``: ``Queue``, one descriptor's raw packet I/O;
``device``: ``Device``, ``open_tun``, ``delete``, ``list_tun_devices`` (and the names above,
re-exported); ``batch``: ``OffloadIO``, the one TUN packet path (virtio_net_hdr, GRO, one
fall-back policy); ``aio``: ``AsyncDevice``, ``AsyncQueue``.

Importing the package itself does no I/O and loads nothing.
"""
