"""Packet codecs: IP/TCP/UDP header views and checksums, virtio_net_hdr, split and coalesce; pure, no I/O.

``ip``: header views and the internet checksum; ``offload``: the virtio_net_hdr codec, TSO/USO
segmentation and GRO-style coalescing.
"""
