"""Packet codecs: IP/TCP/UDP header views and checksums, virtio_net_hdr, split and coalesce; pure, no I/O.

``ip``: header views, the internet checksum and ICMP too-big; ``offload``: the virtio_net_hdr
codec, TSO/USO segmentation, checks of a peer's GSO fields, re-GSO; ``coalesce``: GRO-style
coalescing (``Coalescer``).
"""
