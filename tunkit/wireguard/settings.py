"""A WireGuard interface's desired configuration as plain values, and its one validation; pure, no I/O.

:class:`InterfaceConfig` is what ``wg showconf`` shows: the private key, the
listen port, the fwmark and every peer with its preshared key, endpoint,
persistent keepalive and allowed IPs (in order).  It is the currency of the
one writer of configuration, :meth:`tunkit.wireguard.Engine.apply`: the UAPI
``set`` (``wg set``, ``wg setconf``, ``wg syncconf``), a wg-quick file and a
reload all turn into one of these and hand it to ``apply``, which validates
it with :func:`validate` (the only validation) and applies it all or nothing.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["MAX_PEERS", "MAX_ALLOWED_IPS", "PeerConfig", "InterfaceConfig", "validate"]

MAX_PEERS = 8192         # peers on one interface (wireguard-go allows 65,536; tunkit's timers are O(peers))
MAX_ALLOWED_IPS = 65536  # allowed-IP prefixes on one interface, all peers together

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class PeerConfig:
    """One peer: 32-byte keys, ``endpoint`` as ``(host, port)`` or None, allowed IPs in order."""
    public_key: bytes
    preshared_key: bytes | None = None
    endpoint: tuple | None = None
    persistent_keepalive: int = 0
    allowed_ips: tuple[Network, ...] = ()


@dataclass(frozen=True)
class InterfaceConfig:
    """A whole interface; ``private_key`` None means none is set (``wg`` shows no key, nothing handshakes)."""
    private_key: bytes | None = None
    listen_port: int = 0
    fwmark: int = 0
    peers: tuple[PeerConfig, ...] = field(default_factory=tuple)


def validate(config: InterfaceConfig, own_public: bytes | None) -> None:
    """Raise ValueError naming the first thing wrong with ``config``; ``own_public`` is its key's public half.

    Checks what needs no cryptography; the engine adds the one check that
    does (a peer key that is a low-order point).
    """
    if config.private_key is not None and len(config.private_key) != 32:
        raise ValueError(f"private key must be 32 bytes, got {len(config.private_key)}")
    if not 0 <= config.listen_port <= 65535:
        raise ValueError(f"listen port {config.listen_port} is outside 0..65535")
    if not 0 <= config.fwmark <= 0xFFFFFFFF:
        raise ValueError(f"fwmark {config.fwmark} is outside 0..4294967295")
    if len(config.peers) > MAX_PEERS:
        raise ValueError(f"{len(config.peers)} peers: at most {MAX_PEERS} per interface")
    seen: dict[bytes, None] = {}
    owner: dict[Network, bytes] = {}
    for p in config.peers:
        key = p.public_key
        if len(key) != 32:
            raise ValueError(f"peer public key must be 32 bytes, got {len(key)}")
        if key in seen:
            raise ValueError(f"peer {_b64(key)} is listed twice")
        if own_public is not None and key == own_public:
            raise ValueError(f"peer {_b64(key)} has this interface's own public key")
        seen[key] = None
        if p.preshared_key is not None and len(p.preshared_key) != 32:
            raise ValueError(f"peer {_b64(key)}: preshared key must be 32 bytes, got {len(p.preshared_key)}")
        if not 0 <= p.persistent_keepalive <= 65535:
            raise ValueError(f"peer {_b64(key)}: persistent keepalive {p.persistent_keepalive} is outside 0..65535")
        if p.endpoint is not None and not (isinstance(p.endpoint, tuple) and len(p.endpoint) >= 2
                                           and isinstance(p.endpoint[1], int) and 0 <= p.endpoint[1] <= 65535):
            raise ValueError(f"peer {_b64(key)}: endpoint {p.endpoint!r} is not (host, port 0..65535)")
        for net in p.allowed_ips:
            if not isinstance(net, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                raise ValueError(f"peer {_b64(key)}: allowed IP {net!r} is not an ipaddress network")
            if net in owner:
                who = "twice" if owner[net] == key else f"also on peer {_b64(owner[net])}"
                raise ValueError(f"peer {_b64(key)}: allowed IP {net} is listed {who}")
            owner[net] = key
    if len(owner) > MAX_ALLOWED_IPS:
        raise ValueError(f"{len(owner)} allowed IPs: at most {MAX_ALLOWED_IPS} per interface")


def _b64(key: bytes) -> str:
    import base64

    return base64.b64encode(key).decode()
