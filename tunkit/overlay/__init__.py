"""The overlay: wire format and specs (pure), UDP underlay, loop and sockets (I/O), tunnel and node; does I/O.

Pure: ``wire`` (sealing, opening, trains), ``auth`` (HMAC-SHA256-128, replay window), ``spec``
(typed peer/route specs).  I/O: ``udp`` (GSO sends, GRO reads), ``loop`` (``PacketLoop``),
``status`` (counters over a unix socket), ``uapi_server`` (WireGuard's UAPI socket).
Orchestration: ``options`` (``TunnelOptions``), ``control`` (typed worker messages), ``tunnel``
(``Tunnel``) and ``node`` (``TunnelNode``).

Importing the package itself does no I/O and loads nothing; see ARCHITECTURE.md for each module's layer.
"""
