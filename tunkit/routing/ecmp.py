"""Weighted ECMP gateways: hash-threshold choice and per-flow hashing; pure, no I/O.

A route whose value is a :class:`GatewaySet` spreads flows over several
gateways in proportion to their weights, one flow always on one gateway::

    gws = GatewaySet([("192.0.2.1", 10), ("192.0.2.2", 5)])
    gw = gateway_for(table.lookup(pkt[16:20]), flow_hash_packet(pkt))

The choice is hash-threshold (RFC 2992), as the Linux kernel's
``nh_upper_bound`` and nebula's ``routing.CalculateBucketsForGateways`` do it,
bit for bit: with weights ``w1..wn`` (total ``W``), gateway ``i`` owns the
31-bit hashes up to ``round((w1+...+wi) * 2**31 / W) - 1``, where round is
``(v + W // 2) // W``; the last bound is always ``2**31 - 1``.  Weights are
ints 1..2**31-1 as nebula validates them.  (nebula computes in uint64, which
would overflow once the running total exceeds 2**33; Python ints do not, so
for such totals the bounds here are the exact ones.)

Unlike nebula, which hashes only the two ports (so every ICMP flow between
any hosts takes one gateway), :func:`flow_hash` mixes the source and
destination addresses, the protocol and, where present, the ports, through
the same 32-bit "hash-prospector" mixer (``[16 21f0aaad 15 d35a2d97 15]``),
masked to 31 bits.  Fragments hash on addresses and protocol only, so all
fragments of one datagram take the same gateway whichever carries the ports.
"""

from __future__ import annotations

import struct
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

from tunkit.errors import DecodeError

__all__ = [
    "MAX_WEIGHT",
    "Gateway",
    "GatewaySet",
    "bucket_bounds",
    "gateway_for",
    "mix32",
    "flow_hash",
    "flow_hash_packet",
]

MAX_WEIGHT = 2**31 - 1  # nebula: tun.unsafe_routes[].via[].weight range 1..2^31-1
HASH_MASK = 0x7FFFFFFF  # hashes and bounds are 31-bit
_M32 = 0xFFFFFFFF

# IPv4 header, RFC 791: ! network order
_IPV4 = struct.Struct(
    "!B"  # version (4 bits) | IHL in 32-bit words (4 bits)
    "x"  # DSCP | ECN
    "H"  # total length
    "x"  # identification, high byte
    "x"  # identification, low byte
    "H"  # flags (3 bits: reserved, DF, MF) | fragment offset (13 bits)
    "x"  # TTL
    "B"  # protocol
    "xx"  # header checksum
    "I"  # source address
    "I"  # destination address
)
# IPv6 header, RFC 8200: ! network order
_IPV6 = struct.Struct(
    "!I"  # version (4) | traffic class (8) | flow label (20)
    "H"  # payload length
    "B"  # next header
    "x"  # hop limit
    "QQ"  # source address, high and low 64 bits
    "QQ"  # destination address, high and low 64 bits
)
# Generic IPv6 extension header start (hop-by-hop, routing, destination options)
_IPV6_EXT = struct.Struct(
    "!B"  # next header
    "B"  # header extension length, in 8-octet units not counting the first 8
)
# First 4 bytes of TCP, UDP, UDP-Lite, SCTP and DCCP headers
_PORTS = struct.Struct(
    "!H"  # source port
    "H"  # destination port
)
_PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})  # TCP, UDP, DCCP, SCTP, UDP-Lite
_IPV6_EXT_HEADERS = frozenset({0, 43, 60})  # hop-by-hop, routing, destination options
_IPV6_FRAGMENT = 44
_MAX_EXT_HEADERS = 8  # bound the walk over a hostile chain
_IPV4_FRAGMENT_BITS = 0x3FFF  # MF flag | fragment offset


# ------------------------------------------------------------------ buckets


def _check_weight(gateway: Any, weight: Any) -> int:
    if not isinstance(weight, int) or isinstance(weight, bool):
        raise ValueError(f"gateway {gateway!r}: weight must be an integer 1..{MAX_WEIGHT}, got {weight!r}")
    if not 1 <= weight <= MAX_WEIGHT:
        raise ValueError(f"gateway {gateway!r}: weight {weight} is out of range 1..{MAX_WEIGHT}")
    return weight


def bucket_bounds(weights: Iterable[int]) -> tuple[int, ...]:
    """Hash-threshold upper bounds for *weights*, bit-exact with nebula and Linux.

    ``bucket_bounds([1, 1, 1]) == (715827882, 1431655764, 2147483647)``.
    Raises ``ValueError`` for an empty list or a weight outside 1..2**31-1.
    """
    ws = [_check_weight(f"#{i + 1}", w) for i, w in enumerate(weights)]
    if not ws:
        raise ValueError("a gateway set needs at least one gateway")
    total = sum(ws)
    half = total // 2
    bounds = []
    running = 0
    for w in ws:
        running += w
        bounds.append(((running << 31) + half) // total - 1)
    return tuple(bounds)


class Gateway(NamedTuple):
    """One next hop: ``address`` (any hashable, usually an ``ipaddress`` address) and its weight."""

    address: Any
    weight: int = 1


class GatewaySet:
    """Weighted gateways of one route; immutable.

    Built, in order, from :class:`Gateway` items, ``(address, weight)``
    pairs, any object with ``address`` and ``weight`` attributes (such as the
    gateways of a parsed configuration) or bare addresses (weight 1).  The
    order decides which hashes each gateway owns, as in nebula.  Raises
    ``ValueError`` naming the gateway for a bad weight, a duplicate address or
    an empty list.
    """

    __slots__ = ("gateways", "bounds", "_addrs")

    def __init__(self, gateways: Iterable[Gateway | tuple[Any, int] | Any]) -> None:
        items = []
        seen = set()
        for g in gateways:
            if isinstance(g, tuple) and len(g) == 2:  # also a Gateway
                addr, weight = g
            elif hasattr(g, "address") and hasattr(g, "weight"):
                addr, weight = g.address, g.weight
            else:
                addr, weight = g, 1
            if addr is None:
                raise ValueError("a gateway address must not be None")
            if addr in seen:
                raise ValueError(f"gateway {addr!r} is listed twice")
            seen.add(addr)
            items.append(Gateway(addr, _check_weight(addr, weight)))
        if not items:
            raise ValueError("a gateway set needs at least one gateway")
        self.gateways: tuple[Gateway, ...] = tuple(items)
        self.bounds: tuple[int, ...] = bucket_bounds(g.weight for g in items)
        self._addrs = tuple(g.address for g in items)

    def choose(self, flow_hash: int) -> Any:
        """The address of the first gateway whose bound is >= ``flow_hash & 0x7FFFFFFF``."""
        return self._addrs[bisect_left(self.bounds, flow_hash & HASH_MASK)]

    def __len__(self) -> int:
        return len(self.gateways)

    def __iter__(self) -> Iterator[Gateway]:
        return iter(self.gateways)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GatewaySet):
            return NotImplemented
        return self.gateways == other.gateways

    def __hash__(self) -> int:
        return hash(self.gateways)

    def __repr__(self) -> str:
        inner = ", ".join(f"({g.address!r}, {g.weight})" for g in self.gateways)
        return f"GatewaySet([{inner}])"


def gateway_for(route_value: Any, flow_hash: int) -> Any:
    """The gateway a route value sends this flow to.

    A :class:`GatewaySet` chooses by *flow_hash*; any other value (a single
    gateway) is returned as is, and ``None`` (no route) stays ``None``.
    """
    if type(route_value) is GatewaySet:
        return route_value.choose(flow_hash)
    return route_value


# ------------------------------------------------------------------ hashing


def mix32(x: int) -> int:
    """The 32-bit "hash-prospector" mixer nebula uses: [16 21f0aaad 15 d35a2d97 15]."""
    x &= _M32
    x ^= x >> 16
    x = (x * 0x21F0AAAD) & _M32
    x ^= x >> 15
    x = (x * 0xD35A2D97) & _M32
    x ^= x >> 15
    return x


def flow_hash(src: int, dst: int, proto: int = 0, sport: int | None = None, dport: int | None = None) -> int:
    """31-bit hash of a flow: addresses (IPv4 or IPv6 ints), protocol, ports if known.

    The same inputs always give the same hash (no per-process seed), so one
    flow always takes one gateway, also across restarts.
    """
    if src > _M32:
        src ^= src >> 64
        src ^= src >> 32
    if dst > _M32:
        dst ^= dst >> 64
        dst ^= dst >> 32
    h = mix32(src ^ proto)
    h = mix32(h ^ dst)
    if sport is not None and dport is not None:
        h = mix32(h ^ ((sport << 16) | dport))
    return h & HASH_MASK


def flow_hash_packet(pkt: bytes | bytearray | memoryview) -> int:
    """:func:`flow_hash` of an IPv4 or IPv6 packet, parsed minimally.

    Ports are used for TCP, UDP, UDP-Lite, SCTP and DCCP when the transport
    header is there; fragments (IPv4 MF/offset, an IPv6 fragment header) and
    truncated transport headers hash on addresses and protocol only, as do
    ICMP and everything else.  IPv6 hop-by-hop, routing and destination
    options headers are skipped (at most 8).

    Raises :class:`~tunkit.errors.DecodeError` only when the IP header itself
    is missing: empty input, a version other than 4/6, fewer bytes than the
    fixed header, or an IPv4 IHL below 5.
    """
    n = len(pkt)
    if n == 0:
        raise DecodeError("empty packet: no IP header to hash")
    version = pkt[0] >> 4
    if version == 4:
        if n < 20:
            raise DecodeError(f"IPv4 packet of {n} bytes is shorter than the 20-byte header")
        vihl, _total, frag, proto, src, dst = _IPV4.unpack_from(pkt, 0)
        ihl = (vihl & 15) * 4
        if ihl < 20:
            raise DecodeError(f"IPv4 header length {ihl} is below the minimum 20")
        if proto in _PORT_PROTOCOLS and not frag & _IPV4_FRAGMENT_BITS and n >= ihl + 4:
            sport, dport = _PORTS.unpack_from(pkt, ihl)
            return flow_hash(src, dst, proto, sport, dport)
        return flow_hash(src, dst, proto)
    if version == 6:
        if n < 40:
            raise DecodeError(f"IPv6 packet of {n} bytes is shorter than the 40-byte header")
        _vtf, _plen, proto, s_hi, s_lo, d_hi, d_lo = _IPV6.unpack_from(pkt, 0)
        src = s_hi ^ s_lo
        dst = d_hi ^ d_lo
        off = 40
        for _ in range(_MAX_EXT_HEADERS):
            if proto not in _IPV6_EXT_HEADERS or n < off + 2:
                break
            proto, hlen = _IPV6_EXT.unpack_from(pkt, off)
            off += (hlen + 1) * 8
        if proto in _PORT_PROTOCOLS and n >= off + 4:
            sport, dport = _PORTS.unpack_from(pkt, off)
            return flow_hash(src, dst, proto, sport, dport)
        return flow_hash(src, dst, proto)
    raise DecodeError(f"not an IP packet: version {version} in the first byte {pkt[0]:#04x}")
