"""TUN offloads: the virtio_net_hdr codec, TSO/USO segmentation, checks of GSO fields and re-GSO; pure, no I/O.

A TUN device opened with ``IFF_VNET_HDR`` prefixes every packet with a
10-byte ``struct virtio_net_hdr`` (linux/virtio_net.h, host byte order).
With offloads negotiated (TUNSETOFFLOAD), the kernel hands over TCP/UDP
*super-packets* of up to 64 KB with partial checksums, and accepts them back.
This module is the arithmetic for both directions; the device layer only
reads and writes.

Read path::

    hdr = VirtioNetHdr.decode(buf)              # strict: see VirtioNetHdr.decode
    segments = gso_split(hdr, memoryview(buf)[VIRTIO_NET_HDR_LEN:])

:func:`gso_split` returns exactly the packets the kernel's own software
segmentation would have put on the wire (IPv4 ID +i, lengths, header
checksum, TCP sequence numbers, FIN/PSH only on the last segment, CWR only on
the first, UDP length, full L4 checksums, UDP checksum 0 sent as 0xFFFF).
A non-GSO packet with NEEDS_CSUM gets its checksum finished.  ``hdr_len`` is
never trusted (in the kernel's forward path it can be the whole first
packet); the header length is recomputed from the parsed headers.

Write path: :class:`tunkit.packet.coalesce.Coalescer` merges packets into
super-packets (GRO), and :func:`encode_for` builds the header a packet or
super-packet is written with (``hdr_len`` recomputed from the headers).
:mod:`tunkit.tun.batch` is the one module that reads and writes a TUN with these.

Headers from outside (a peer's overlay message): :func:`gso_problem` checks
every field against the packet's real length and headers, and bounds the work
a super-packet may cost (``gso_size`` at least :data:`MIN_GSO_SIZE`, at most
:data:`MAX_GSO_SEGMENTS` segments); it never raises, it names the bad field.

Errors: malformed headers or packets raise :class:`tunkit.errors.DecodeError`
(a ``ValueError``) and nothing else; the caller drops the packet and counts
it.  The coalescer never raises for packet contents: whatever it cannot
merge goes out verbatim.
"""

from __future__ import annotations

import functools
import struct
from typing import NamedTuple

from tunkit._uapi import (
    IPPROTO_ROUTING,
    IPPROTO_TCP,
    IPPROTO_UDP,
    VIRTIO_NET_HDR_GSO_ECN,
    VIRTIO_NET_HDR_LEN,
    VirtioNetHdrFlag,
    VirtioNetHdrGso,
)
from tunkit.errors import DecodeError
from tunkit.packet.ip import (
    IPV4_FRAG_MASK,
    IPV4_HEADER,
    IPV4_MIN_HEADER_LEN,
    IPV6_HEADER,
    IPV6_HEADER_LEN,
    TCP_CHECKSUM_OFFSET,
    TCP_HEADER,
    TCP_MIN_HEADER_LEN,
    U16,
    UDP_CHECKSUM_OFFSET,
    UDP_HEADER,
    UDP_HEADER_LEN,
    IPv4Header,
    IPv6Header,
    TcpFlag,
    csum16,
    csum_fold,
    pseudo_header_sum,
)

__all__ = [
    "VIRTIO_NET_HDR",
    "VirtioNetHdr",
    "ZERO_HDR",
    "DATA_VALID_HDR",
    "GsoInfo",
    "gso_check",
    "gso_split",
    "split_read",
    "checksum_partial",
    "read_header",
    "encode_for",
    "gso_problem",
    "l4_header_len",
    "regso",
    "MAX_SEGMENTS",
    "MAX_BYTES",
    "MIN_GSO_SIZE",
    "MAX_GSO_SEGMENTS",
]

VIRTIO_NET_HDR = struct.Struct(
    "="  # host byte order: the TUN default (no TUNSETVNETLE/BE), as nebula and wireguard-go use it
    "B"  # flags: VIRTIO_NET_HDR_F_* (NEEDS_CSUM, DATA_VALID, RSC_INFO)
    "B"  # gso_type: VIRTIO_NET_HDR_GSO_* with the ECN bit (0x80) ORed on
    "H"  # hdr_len: L3 + L4 header length (no L2 on TUN); not trusted on read
    "H"  # gso_size: payload bytes per segment (the MSS for TCP)
    "H"  # csum_start: where checksumming starts (the L4 offset on TUN)
    "H"  # csum_offset: where, after csum_start, the checksum is stored (16 TCP, 6 UDP)
)
assert VIRTIO_NET_HDR.size == VIRTIO_NET_HDR_LEN

_NEEDS_CSUM = int(VirtioNetHdrFlag.NEEDS_CSUM)
_DATA_VALID = int(VirtioNetHdrFlag.DATA_VALID)
_RSC_INFO = int(VirtioNetHdrFlag.RSC_INFO)
_KNOWN_FLAGS = _NEEDS_CSUM | _DATA_VALID | _RSC_INFO
_GSO_NONE = int(VirtioNetHdrGso.NONE)
_GSO_TCPV4 = int(VirtioNetHdrGso.TCPV4)
_GSO_TCPV6 = int(VirtioNetHdrGso.TCPV6)
_GSO_UDP = int(VirtioNetHdrGso.UDP)
_GSO_UDP_L4 = int(VirtioNetHdrGso.UDP_L4)
_GSO_ECN = VIRTIO_NET_HDR_GSO_ECN

MAX_SEGMENTS = 64  # coalescer cap per super-packet (nebula; kernel UDP_MAX_SEGMENTS on older kernels)
MAX_BYTES = 65535  # coalescer cap on a super-packet's IP length (IPv4 total length is 16 bits)
MIN_GSO_SIZE = 64  # smallest segment payload accepted from outside: bounds the per-byte cost of a split
MAX_GSO_SEGMENTS = 128  # most segments one super-packet from outside may make (the kernel's UDP_MAX_SEGMENTS)


class VirtioNetHdr(NamedTuple):
    """``struct virtio_net_hdr`` (legacy 10-byte layout, linux/virtio_net.h).

    ``gso_type`` keeps the ECN bit; :attr:`gso` is the type without it.
    """

    flags: int = 0
    gso_type: int = _GSO_NONE
    hdr_len: int = 0
    gso_size: int = 0
    csum_start: int = 0
    csum_offset: int = 0

    @property
    def gso(self) -> VirtioNetHdrGso:
        return VirtioNetHdrGso(self.gso_type & ~_GSO_ECN)

    @property
    def ecn(self) -> bool:
        return bool(self.gso_type & _GSO_ECN)

    def encode(self) -> bytes:
        """The 10 wire bytes (host order).  Raises ``ValueError`` if a field does not fit."""
        try:
            return VIRTIO_NET_HDR.pack(*self)
        except struct.error as e:
            raise ValueError(f"virtio_net_hdr {self}: {e}") from None

    @classmethod
    def decode(cls, buf, offset: int = 0) -> "VirtioNetHdr":
        """Decode and check the header at ``offset`` of ``buf``.

        Raises :class:`DecodeError` for: fewer than 10 bytes; unknown flag
        bits or RSC_INFO (never valid from a TUN); an unknown gso type or the
        legacy UDP (UFO) type; the ECN bit on anything but TCP; a GSO type
        with gso_size 0.  Checks that need the packet (IP version, header
        lengths, checksum position) are done by :func:`gso_check`.
        """
        if offset < 0 or len(buf) - offset < VIRTIO_NET_HDR_LEN:
            raise DecodeError(f"virtio_net_hdr: need {VIRTIO_NET_HDR_LEN} bytes, got {max(len(buf) - offset, 0)}")
        flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = VIRTIO_NET_HDR.unpack_from(buf, offset)
        if flags & ~_KNOWN_FLAGS:
            raise DecodeError(f"virtio_net_hdr: unknown flag bits {flags & ~_KNOWN_FLAGS:#x} in flags {flags:#x}")
        if flags & _RSC_INFO:
            raise DecodeError(f"virtio_net_hdr: RSC_INFO flag (flags {flags:#x}) is never valid on a TUN device")
        base = gso_type & ~_GSO_ECN
        if base == _GSO_UDP:
            raise DecodeError("virtio_net_hdr: gso_type UDP (legacy UFO) is not supported")
        if base not in (_GSO_NONE, _GSO_TCPV4, _GSO_TCPV6, _GSO_UDP_L4):
            raise DecodeError(f"virtio_net_hdr: unknown gso_type {gso_type:#x}")
        if gso_type & _GSO_ECN and base not in (_GSO_TCPV4, _GSO_TCPV6):
            raise DecodeError(f"virtio_net_hdr: ECN bit on non-TCP gso_type {gso_type:#x}")
        if base != _GSO_NONE and gso_size == 0:
            raise DecodeError(f"virtio_net_hdr: gso_type {VirtioNetHdrGso(base).name} with gso_size 0")
        return cls(VirtioNetHdrFlag(flags), gso_type, hdr_len, gso_size, csum_start, csum_offset)


ZERO_HDR = VirtioNetHdr()  # GSO_NONE, no flags: "the checksum is complete, check it"
DATA_VALID_HDR = VirtioNetHdr(flags=VirtioNetHdrFlag.DATA_VALID)  # GSO_NONE, checksum known good


# ---------------------------------------------------------------------------
# Read path: check, split, finish checksums
# ---------------------------------------------------------------------------


class GsoInfo(NamedTuple):
    """What :func:`gso_check` learned from a GSO packet's own headers."""

    ip: IPv4Header | IPv6Header
    protocol: int  # IPPROTO_TCP or IPPROTO_UDP
    l3_len: int  # IP header length incl. options/extension headers (= csum_start)
    hdr_len: int  # recomputed: l3_len + TCP data offset, or l3_len + 8
    payload_len: int  # bytes after hdr_len


def gso_check(hdr: VirtioNetHdr, pkt) -> GsoInfo:
    """Validate a GSO ``pkt`` against ``hdr`` and recompute its header length.

    Raises :class:`DecodeError` when: the gso type is NONE or unknown; the IP
    version does not match (TCPV4 needs IPv4, TCPV6 IPv6; UDP_L4 takes
    either); the IP header is malformed, its length field differs from the
    packet length, or it is a fragment; the L4 protocol is not the one the
    gso type says; the TCP header length is outside 20..60 or runs past the
    packet; the UDP length differs from what the IP header leaves; there is
    no payload; with NEEDS_CSUM, csum_start is not the L4 offset or
    csum_offset is not the TCP/UDP checksum field.  ``hdr.hdr_len`` is not
    consulted.
    """
    gso = hdr.gso_type & ~_GSO_ECN
    n = len(pkt)
    if not n:
        raise DecodeError("GSO packet: empty")
    version = pkt[0] >> 4
    if gso == _GSO_TCPV4:
        want_version, proto = (4,), IPPROTO_TCP
    elif gso == _GSO_TCPV6:
        want_version, proto = (6,), IPPROTO_TCP
    elif gso == _GSO_UDP_L4:
        want_version, proto = (4, 6), IPPROTO_UDP
    else:
        raise DecodeError(f"GSO packet: gso_type {hdr.gso_type:#x} is not a segmentation type")
    if version not in want_version:
        raise DecodeError(f"GSO packet: gso_type {VirtioNetHdrGso(gso).name} on an IP version {version} packet")
    if version == 4:
        ip = IPv4Header.parse(pkt)
        if ip.total_length != n:
            raise DecodeError(f"GSO packet: IPv4 total length {ip.total_length} but the packet has {n} bytes")
        if ip.is_fragment:
            raise DecodeError(f"GSO packet: IPv4 fragment (flags/offset {ip.flags_fragment:#06x})")
    else:
        ip = IPv6Header.parse(pkt)
        if ip.total_length != n:
            raise DecodeError(f"GSO packet: IPv6 payload length {ip.payload_length} but {n - IPV6_HEADER_LEN} bytes follow")
        if ip.is_fragment:
            raise DecodeError("GSO packet: IPv6 fragment header")
    if ip.protocol != proto:
        raise DecodeError(f"GSO packet: gso_type {VirtioNetHdrGso(gso).name} but IP protocol {ip.protocol}")
    l3 = ip.header_length
    if proto == IPPROTO_TCP:
        if n - l3 < TCP_MIN_HEADER_LEN:
            raise DecodeError(f"GSO packet: TCP header at {l3} needs 20 bytes, {n - l3} left")
        thl = (pkt[l3 + 12] >> 4) * 4
        if thl < TCP_MIN_HEADER_LEN:
            raise DecodeError(f"GSO packet: TCP data offset {thl} bytes is below 20")
        hlen = l3 + thl
        csum_field = TCP_CHECKSUM_OFFSET
    else:
        if n - l3 < UDP_HEADER_LEN:
            raise DecodeError(f"GSO packet: UDP header at {l3} needs 8 bytes, {n - l3} left")
        ulen = U16.unpack_from(pkt, l3 + 4)[0]
        if ulen != n - l3:
            raise DecodeError(f"GSO packet: UDP length {ulen} but {n - l3} bytes follow the IP header")
        hlen = l3 + UDP_HEADER_LEN
        csum_field = UDP_CHECKSUM_OFFSET
    if hlen >= n:
        raise DecodeError(f"GSO packet: no payload after the {hlen}-byte headers ({n} bytes)")
    if hdr.flags & _NEEDS_CSUM and (hdr.csum_start != l3 or hdr.csum_offset != csum_field):
        raise DecodeError(
            f"GSO packet: csum_start {hdr.csum_start}/csum_offset {hdr.csum_offset},"
            f" but the L4 header is at {l3} with its checksum at +{csum_field}"
        )
    return GsoInfo(ip, proto, l3, hlen, n - hlen)


def checksum_partial(hdr: VirtioNetHdr, pkt) -> bytes:
    """Finish a NEEDS_CSUM checksum: sum from csum_start to the end, seeded
    with the partial value already stored in the field, and store the
    complement there (0 becomes 0xFFFF, as the kernel's skb_checksum_help
    does).  Returns a new ``bytes``; raises :class:`DecodeError` if
    csum_start/csum_offset point outside the packet.
    """
    n = len(pkt)
    start, field = hdr.csum_start, hdr.csum_start + hdr.csum_offset
    if start >= n or field + 2 > n:
        raise DecodeError(f"NEEDS_CSUM: csum_start {start} + csum_offset {hdr.csum_offset} is outside the {n}-byte packet")
    mv = memoryview(pkt)
    c = ~csum16(mv[start:]) & 0xFFFF or 0xFFFF
    return b"".join((mv[:field], U16.pack(c), mv[field + 2 :]))


def gso_split(hdr: VirtioNetHdr, pkt) -> list:
    """Turn one packet read from a vnet-header TUN into the packets the kernel would have sent.

    * GSO_NONE without NEEDS_CSUM: ``[pkt]`` unchanged (the same object).
    * GSO_NONE with NEEDS_CSUM: one packet with its checksum finished.
    * TCPV4/TCPV6/UDP_L4: ``ceil(payload / gso_size)`` new ``bytes`` packets.

    Raises :class:`DecodeError` for anything :func:`gso_check` or
    :func:`checksum_partial` rejects.
    """
    gso = hdr.gso_type & ~_GSO_ECN
    if gso == _GSO_NONE:
        if hdr.flags & _NEEDS_CSUM:
            return [checksum_partial(hdr, pkt)]
        return [pkt]
    info = gso_check(hdr, pkt)
    mv = memoryview(pkt)
    ip = info.ip
    l3, hlen, n = info.l3_len, info.hdr_len, len(pkt)
    size = hdr.gso_size
    # Pseudo-header sum over addresses and protocol (the length is added per segment).  With an
    # IPv6 routing header the pseudo-header holds the *final* destination (RFC 8200 8.1), which
    # only the sender knows: take it from the kernel's own partial sum in the checksum field,
    # the way the kernel's segmentation adjusts that field by the length difference.
    field = l3 + (TCP_CHECKSUM_OFFSET if info.protocol == IPPROTO_TCP else UDP_CHECKSUM_OFFSET)
    if ip.version == 6 and IPPROTO_ROUTING in ip.extensions:
        if not hdr.flags & _NEEDS_CSUM:
            raise DecodeError("GSO packet: IPv6 routing header without NEEDS_CSUM: unknown pseudo-header")
        pseudo = U16.unpack_from(pkt, field)[0] + (~(n - l3) & 0xFFFF)
    else:
        pseudo = int.from_bytes(ip.src, "big") + int.from_bytes(ip.dst, "big") + info.protocol
    # The L4 header with its checksum field counted as zero (it holds the partial sum on input).
    l4_sum = csum16(mv[l3:hlen]) + (~U16.unpack_from(pkt, field)[0] & 0xFFFF)
    if ip.version == 4:
        return _split_v4(mv, ip, info, size, pseudo, l4_sum)
    return _split_v6(mv, ip, info, size, pseudo, l4_sum)


def _split_v4(mv, ip: IPv4Header, info: GsoInfo, size: int, pseudo: int, l4_sum: int) -> list:
    l3, hlen = info.l3_len, info.hdr_len
    opts = bytes(ip.options)
    # IPv4 header sum without total length, ID and checksum (the per-segment fields).
    ip_base = csum16(mv[:l3]) + (~ip.total_length & 0xFFFF) + (~ip.identification & 0xFFFF) + (~ip.checksum & 0xFFFF)
    vihl = 0x40 | (l3 >> 2)
    pack_ip = IPV4_HEADER.pack
    tos, frag, ttl, proto, src, dst, ident = ip.tos, ip.flags_fragment, ip.ttl, ip.protocol, ip.src, ip.dst, ip.identification
    l4 = _l4_segmenter(mv, info, size, pseudo, l4_sum)
    out = []
    for i, (l4_bytes, payload) in enumerate(l4):
        tot = hlen + len(payload)
        seg_id = (ident + i) & 0xFFFF
        c = ~csum_fold(ip_base + tot + seg_id) & 0xFFFF
        out.append(b"".join((pack_ip(vihl, tos, tot, seg_id, frag, ttl, proto, c, src, dst), opts, l4_bytes, payload)))
    return out


def _split_v6(mv, ip: IPv6Header, info: GsoInfo, size: int, pseudo: int, l4_sum: int) -> list:
    l3, hlen = info.l3_len, info.hdr_len
    exts = bytes(mv[IPV6_HEADER_LEN:l3])
    first = (6 << 28) | (ip.traffic_class << 20) | ip.flow_label
    pack_ip = IPV6_HEADER.pack
    nh, hlim, src, dst = ip.next_header, ip.hop_limit, ip.src, ip.dst
    out = []
    for l4_bytes, payload in _l4_segmenter(mv, info, size, pseudo, l4_sum):
        plen = hlen - IPV6_HEADER_LEN + len(payload)
        out.append(b"".join((pack_ip(first, plen, nh, hlim, src, dst), exts, l4_bytes, payload)))
    return out


_FIN_PSH = int(TcpFlag.FIN | TcpFlag.PSH)
_CWR = int(TcpFlag.CWR)


def _l4_segmenter(mv, info: GsoInfo, size: int, pseudo: int, l4_sum: int):
    """Yield (L4 header bytes with the full checksum, payload view) per segment."""
    l3, hlen, n = info.l3_len, info.hdr_len, len(mv)
    starts = range(hlen, n, size)
    last = len(starts) - 1
    if info.protocol == IPPROTO_TCP:
        sport, dport, seq, ack, off, flags, win, _c, urg = TCP_HEADER.unpack_from(mv, l3)
        opts = bytes(mv[l3 + TCP_MIN_HEADER_LEN : hlen])
        # Header sum without seq, the offset/flags word and the checksum (already out of l4_sum).
        base = l4_sum + (~(seq >> 16) & 0xFFFF) + (~seq & 0xFFFF) + (~((off << 8) | flags) & 0xFFFF) + pseudo
        pack = TCP_HEADER.pack
        not_last = flags & ~_FIN_PSH  # FIN/PSH only on the last segment
        for i, start in enumerate(starts):
            payload = mv[start : start + size]
            f = flags if i == last else not_last
            if i:
                f &= ~_CWR  # CWR only on the first segment (RFC 3168)
            s = (seq + i * size) & 0xFFFFFFFF
            l4len = hlen - l3 + len(payload)
            c = ~csum16(payload, base + (s >> 16) + (s & 0xFFFF) + ((off << 8) | f) + l4len) & 0xFFFF
            yield pack(sport, dport, s, ack, off, f, win, c, urg) + opts, payload
    else:
        sport, dport, _ulen, _c = UDP_HEADER.unpack_from(mv, l3)
        base = pseudo + sport + dport  # the UDP header is ports, length (twice in the sum), checksum
        pack = UDP_HEADER.pack
        for start in starts:
            payload = mv[start : start + size]
            ulen = UDP_HEADER_LEN + len(payload)
            c = ~csum16(payload, base + ulen + ulen) & 0xFFFF or 0xFFFF  # 0 means "no checksum": send 0xFFFF
            yield pack(sport, dport, ulen, c), payload


def split_read(buf) -> list:
    """Split one read from a vnet-header TUN (10-byte header + packet) into wire packets."""
    hdr = VirtioNetHdr.decode(buf)
    return gso_split(hdr, memoryview(buf)[VIRTIO_NET_HDR_LEN:])


# ---------------------------------------------------------------------------
# Headers on the hot path: a read's header, the header a write needs
# ---------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)  # a flow's packets share a few shapes: each is checked and built once
def read_header(flags: int, gso_type: int, hdr_len: int, gso_size: int, csum_start: int,
                csum_offset: int) -> VirtioNetHdr | None:
    """The header of one TUN read from its six fields, as :meth:`VirtioNetHdr.decode` checks it.

    None for a plain packet with a complete checksum (flags and gso_type 0).
    ``hdr_len`` is not kept (it is never trusted: :func:`encode_for`
    recomputes it), nor ``gso_size`` without a GSO type, so equal shapes share
    one object.  Raises :class:`DecodeError` as ``decode`` does.
    """
    if not flags and not gso_type:
        return None
    hdr = VirtioNetHdr.decode(VIRTIO_NET_HDR.pack(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset))
    return VirtioNetHdr(int(hdr.flags), gso_type, 0, gso_size if gso_type else 0, csum_start, csum_offset)


_ZERO_BYTES = ZERO_HDR.encode()


def l4_header_len(pkt, l4: int, gso_type: int) -> int:
    """Length of the TCP (data offset) or UDP header at ``l4``, for a packet of ``gso_type``."""
    t = gso_type & ~_GSO_ECN
    if t in (_GSO_TCPV4, _GSO_TCPV6):
        if len(pkt) > l4 + 12:
            return (pkt[l4 + 12] >> 4) * 4
        return TCP_MIN_HEADER_LEN
    return UDP_HEADER_LEN


def encode_for(hdr: VirtioNetHdr | None, pkt) -> bytes:
    """The 10 header bytes to write ``pkt`` with: ``hdr`` with ``hdr_len`` recomputed from the packet.

    ``hdr`` must have passed :func:`read_header` or :func:`gso_problem` (fields in range).
    """
    if hdr is None:
        return _ZERO_BYTES
    flags, gso_type, _, size, start, off = hdr
    hlen = start + l4_header_len(pkt, start, gso_type) if gso_type else 0
    return VIRTIO_NET_HDR.pack(flags, gso_type, hlen, size, start, off)


# ---------------------------------------------------------------------------
# Headers from outside: every field checked before use
# ---------------------------------------------------------------------------
_PEER_FLAGS = _NEEDS_CSUM | _DATA_VALID


def gso_problem(hdr: VirtioNetHdr, head, n: int) -> str | None:
    """Why ``hdr`` (from a peer) cannot be used with a packet of ``n`` bytes starting with ``head``; None if it can.

    ``head`` holds at least the packet's IP and L4 headers (a whole packet,
    or a train's first part).  The reasons name the field: ``gso_flags``
    (unknown bits, RSC_INFO, GSO without NEEDS_CSUM), ``gso_type`` (unknown,
    legacy UFO, ECN on non-TCP), ``gso_size`` (non-zero without GSO, or below
    :data:`MIN_GSO_SIZE`), ``gso_segments`` (more than
    :data:`MAX_GSO_SEGMENTS`), ``gso_headers`` (the IP/L4 headers do not
    match the type or the length: version, protocol, total length, IPv4
    fragment, IPv6 extension header, TCP data offset, UDP length, no payload),
    ``csum_start`` and ``csum_offset`` (not the L4 header and its checksum
    field, or outside the packet).  Never raises; a super-packet that passes
    can be written with :func:`encode_for` or split with :func:`gso_split`.
    """
    flags, gso_type, _, size, start, off = hdr
    if flags & ~_PEER_FLAGS:
        return "gso_flags"
    base = gso_type & ~_GSO_ECN
    if base == _GSO_NONE:
        if gso_type:
            return "gso_type"
        if size:
            return "gso_size"
        if not flags & _NEEDS_CSUM:
            return "csum_start" if start or off else None
        if start < IPV4_MIN_HEADER_LEN or start >= n:
            return "csum_start"
        return "csum_offset" if start + off + 2 > n else None
    if (base != _GSO_TCPV4 and base != _GSO_TCPV6 and base != _GSO_UDP_L4) or (gso_type & _GSO_ECN and base == _GSO_UDP_L4):
        return "gso_type"
    if not flags & _NEEDS_CSUM:
        return "gso_flags"
    if size < MIN_GSO_SIZE:
        return "gso_size"
    h = len(head)
    if h < IPV6_HEADER_LEN:  # no TCP/UDP super-packet has less than 40 bytes of headers
        return "gso_headers"
    v = head[0] >> 4
    if v == 4 and base != _GSO_TCPV6:
        vihl, _tos, tot, _ident, frag, _ttl, proto = _V4_FIELDS.unpack_from(head)
        l3 = (vihl & 15) * 4
        if l3 < IPV4_MIN_HEADER_LEN or tot != n or frag & IPV4_FRAG_MASK:
            return "gso_headers"
    elif v == 6 and base != _GSO_TCPV4:
        plen, proto = _V6_FIELDS.unpack_from(head, 4)
        l3 = IPV6_HEADER_LEN
        if plen + IPV6_HEADER_LEN != n:
            return "gso_headers"
    else:
        return "gso_headers"
    if base == _GSO_UDP_L4:
        if proto != IPPROTO_UDP or h < l3 + UDP_HEADER_LEN or U16.unpack_from(head, l3 + 4)[0] != n - l3:
            return "gso_headers"
        hlen, field = l3 + UDP_HEADER_LEN, UDP_CHECKSUM_OFFSET
    else:
        thl = (head[l3 + 12] >> 4) * 4 if h > l3 + 12 else 0
        if proto != IPPROTO_TCP or thl < TCP_MIN_HEADER_LEN or l3 + thl > h:
            return "gso_headers"
        hlen, field = l3 + thl, TCP_CHECKSUM_OFFSET
    if hlen >= n:
        return "gso_headers"
    if start != l3:
        return "csum_start"
    if off != field:
        return "csum_offset"
    if n - hlen > size * MAX_GSO_SEGMENTS:
        return "gso_segments"
    return None


_V4_FIELDS = struct.Struct("!BBHHHBB")  # IPv4: version/IHL, TOS, total length, ID, flags/fragment, TTL, protocol
_V6_FIELDS = struct.Struct("!HB")  # IPv6 at offset 4: payload length, next header


def regso(pkt, mtu: int) -> VirtioNetHdr | None:
    """GSO metadata for a TCP super-packet that arrived whole as raw IP (insecure mode), so that the
    kernel can segment it again if it forwards it (or tunkit can, for a TUN without virtio headers).

    Rewrites the TCP checksum field in place (``pkt`` must be writable) to the
    pseudo-header sum that NEEDS_CSUM wants, so the field's old value
    (complete, or partial from a ``partial_checksums`` sender) does not
    matter.  None for anything else, which is written as it came: a big UDP
    packet is one datagram (the sender splits USO super-packets, whose
    datagram boundaries raw IP cannot carry), and IPv4 fragments, IPv6
    extension headers and other protocols are not re-segmented.  What it
    returns passes :func:`gso_problem`.
    """
    n = len(pkt)
    if not n or (isinstance(pkt, memoryview) and pkt.readonly):
        return None
    v = pkt[0] >> 4
    if v == 4 and n >= IPV4_MIN_HEADER_LEN:
        l3, gtype = (pkt[0] & 15) * 4, _GSO_TCPV4
        src, dst = bytes(pkt[12:16]), bytes(pkt[16:20])
    elif v == 6 and n >= IPV6_HEADER_LEN:
        l3, gtype = IPV6_HEADER_LEN, _GSO_TCPV6
        src, dst = bytes(pkt[8:24]), bytes(pkt[24:40])
    else:
        return None
    if n < l3 + TCP_MIN_HEADER_LEN:
        return None
    l4 = (pkt[l3 + 12] >> 4) * 4
    size = min(mtu - l3 - l4, 0xFFFF)
    hdr = VirtioNetHdr(_NEEDS_CSUM, gtype, 0, size, l3, TCP_CHECKSUM_OFFSET)
    if gso_problem(hdr, pkt, n) is not None:
        return None
    U16.pack_into(pkt, l3 + TCP_CHECKSUM_OFFSET, pseudo_header_sum(src, dst, IPPROTO_TCP, n - l3))
    return hdr
