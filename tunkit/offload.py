"""TUN offloads: the virtio_net_hdr codec, TSO/USO segmentation and GRO-style coalescing; pure, no I/O.

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

Write path::

    co = Coalescer(uso=bool(offloads & (TunOffload.USO4 | TunOffload.USO6)))
    for pkt in packets:
        co.add(pkt)
    for hdr, bufs in co.flush():
        os.writev(fd, [hdr.encode(), *bufs])

:class:`Coalescer` follows nebula's strict rules (see its docstring): it only
merges what the kernel will segment back into the very same packets, and
checks every L4 checksum before merging so a corrupt segment is never
"healed" by the fresh checksum of a super-packet.

Errors: malformed headers or packets raise :class:`tunkit.errors.DecodeError`
(a ``ValueError``) and nothing else; the caller drops the packet and counts
it.  The coalescer never raises for packet contents: whatever it cannot
merge goes out verbatim.
"""

from __future__ import annotations

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
from tunkit.packet import (
    IPV4_ADDRS_OFFSET,
    IPV4_CHECKSUM_OFFSET,
    IPV4_DF,
    IPV4_FRAG_MASK,
    IPV4_HEADER,
    IPV4_MIN_HEADER_LEN,
    IPV4_TOTAL_LENGTH_OFFSET,
    IPV6_ADDRS_OFFSET,
    IPV6_HEADER,
    IPV6_HEADER_LEN,
    IPV6_PAYLOAD_LENGTH_OFFSET,
    TCP_CHECKSUM_OFFSET,
    TCP_FLAGS_OFFSET,
    TCP_HEADER,
    TCP_MIN_HEADER_LEN,
    U16,
    UDP_CHECKSUM_OFFSET,
    UDP_HEADER,
    UDP_HEADER_LEN,
    UDP_LENGTH_OFFSET,
    IPv4Header,
    IPv6Header,
    TcpFlag,
    csum16,
    csum_fold,
    ipv4_header_checksum,
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
    "Coalescer",
    "coalesce",
    "MAX_SEGMENTS",
    "MAX_BYTES",
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
# Write path: coalescing
# ---------------------------------------------------------------------------

_TCP_OK = int(TcpFlag.ACK | TcpFlag.PSH | TcpFlag.ECE)  # the only flags a chain may carry
_ACK = int(TcpFlag.ACK)
_PSH = int(TcpFlag.PSH)
_ECE = int(TcpFlag.ECE)


class _Chain:
    """An open or closed run of same-flow segments that will go out as one super-packet."""

    __slots__ = ("seed", "seed_hdr", "l3", "hlen", "tcp", "v6", "size", "nbytes", "next_seq", "bufs", "shape", "ident", "psh")

    def __init__(self, seed, seed_hdr, l3, hlen, tcp, v6, size, next_seq, shape, ident):
        self.seed = seed  # the first packet, verbatim (emitted alone if nothing joins it)
        self.seed_hdr = seed_hdr  # its header if emitted alone: DATA_VALID, or its own NEEDS_CSUM one
        self.l3 = l3
        self.hlen = hlen
        self.tcp = tcp
        self.v6 = v6
        self.size = size  # gso_size: the first segment's payload length
        self.nbytes = len(seed)  # IP length of the super-packet so far
        self.next_seq = next_seq  # TCP: the sequence number the next segment must carry
        self.bufs = [seed[hlen:]]  # payload views, in order
        self.shape = shape  # everything that must be equal across the chain
        self.ident = ident  # IPv4 ID the next segment must carry (None: DF set, or IPv6)
        self.psh = False  # TCP: the last segment carried PSH


class Coalescer:
    """Merge packets bound for a TUN device into super-packets (GRO in user space).

    Feed packets (``bytes``, ``bytearray`` or ``memoryview``, one IP packet
    each) with :meth:`add`; :meth:`flush` returns ``[(VirtioNetHdr, bufs)]``
    ready for ``os.writev(fd, [hdr.encode(), *bufs])``.  Buffers are views of
    the packets that were added: keep those alive and unchanged until the
    results are written.

    Rules (nebula's stricter coalescer; every one is needed so that the
    kernel's segmentation of the super-packet reproduces the input packets):

    * Per flow (addresses, ports, family; TCP and UDP kept apart), segments
      are appended in order only: TCP sequence numbers must be contiguous.
    * TCP flags must be ACK, optionally with PSH and/or ECE; the ECE bit must
      agree across a chain.  SYN, FIN, RST, URG, CWR (or no ACK) seal the
      flow's open chain and go out verbatim, in order.
    * Pure ACKs (no payload) go out verbatim *without* sealing, so a
      bidirectional flow keeps coalescing; this is the only reordering
      (a stale ACK is harmless, as with kernel GRO).
    * IP header fields equal across the chain: the whole TOS/traffic-class
      byte (DSCP and ECN, so ECT(0) and ECT(1) never merge into a false CE),
      IPv4 flags and TTL, IPv6 flow label and hop limit.  IPv4 IDs must be
      sequential (first + n) unless DF is set.
    * TCP header equal apart from seq, flags and checksum: ACK number,
      window, urgent pointer, data offset and option bytes.
    * Only the last segment may be shorter than the first, and only the last
      may carry PSH: a short or PSH segment closes the chain.
    * At most ``max_segments`` (64) segments and ``max_bytes`` (65,535) bytes.
    * L4 checksums are verified before a packet may seed or join a chain; a
      packet that fails goes out verbatim (the kernel drops it) and seals its
      flow.  ``verify_checksums=False`` skips this, only for packets the
      caller built itself and knows to be correct.
    * A packet added with its own NEEDS_CSUM header (``add(pkt, hdr)``: its
      checksum field holds only the pseudo-header sum, as a TUN hands it
      out) is *trusted*: the caller vouches for it (the overlay's MAC did),
      so it is not verified.  It merges like any other packet when
      ``csum_start``/``csum_offset`` point at its own TCP/UDP checksum field;
      whatever of it goes out unmerged keeps that header, so the kernel
      still finishes or trusts the checksum as it would have.
    * UDP datagrams merge only with ``uso=True`` (USO negotiated): same
      length except a shorter last one; zero-length datagrams and IPv4
      datagrams without a checksum go out verbatim and seal the flow.
    * Anything else (not IPv4/IPv6, bad lengths, fragments, IPv4 options,
      IPv6 extension headers, other protocols, UDP without USO) goes out
      verbatim and seals every open chain: its flow is unknown here.
      (Verbatim means under an all-zero header, or the packet's own
      NEEDS_CSUM header if it was added with one.)

    Output order is the order in which chains were started and verbatim
    packets added.  A chain of one segment is emitted as the original packet
    under a DATA_VALID header; verbatim packets get an all-zero header.
    """

    def __init__(
        self,
        *,
        uso: bool = False,
        verify_checksums: bool = True,
        max_segments: int = MAX_SEGMENTS,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        if not 1 <= max_segments:
            raise ValueError(f"max_segments must be at least 1, got {max_segments}")
        if not 1 <= max_bytes <= MAX_BYTES:
            raise ValueError(f"max_bytes must be in 1..{MAX_BYTES}, got {max_bytes}")
        self.uso = uso
        self.verify_checksums = verify_checksums
        self.max_segments = max_segments
        self.max_bytes = max_bytes
        self._slots: list = []  # _Chain or (VirtioNetHdr, [pkt]) in output order
        self._open: dict = {}  # (proto, src, dst, sport, dport) -> open _Chain

    def __len__(self) -> int:
        """Number of results :meth:`flush` would return now."""
        return len(self._slots)

    def _verbatim(self, pkt, hdr, seal_key=None, seal_all: bool = False) -> None:
        if seal_all:
            self._open.clear()
        elif seal_key is not None:
            self._open.pop(seal_key, None)
        self._slots.append((hdr or ZERO_HDR, [pkt]))

    def add(self, pkt, hdr: VirtioNetHdr | None = None) -> None:
        """Add one IP packet (never raises for its contents).

        ``hdr``: the packet's own virtio header when its checksum is partial
        (NEEDS_CSUM, GSO_NONE); see the rules above.  None: the checksum is
        complete and is verified before merging.
        """
        if hdr is not None and (hdr.gso_type != _GSO_NONE or not hdr.flags & _NEEDS_CSUM):
            raise ValueError(f"Coalescer.add: hdr must be a GSO_NONE NEEDS_CSUM header, got {hdr}")
        n = len(pkt)
        if n < IPV4_MIN_HEADER_LEN + UDP_HEADER_LEN:
            return self._verbatim(pkt, hdr, seal_all=True)
        b0 = pkt[0]
        if b0 == 0x45:  # IPv4 without options: the only IPv4 shape that coalesces
            _v, tos, tot, ident, frag, ttl, proto, _c, src, dst = IPV4_HEADER.unpack_from(pkt)
            if tot != n or frag & IPV4_FRAG_MASK:
                return self._verbatim(pkt, hdr, seal_all=True)
            l3 = IPV4_MIN_HEADER_LEN
            v6 = False
            ipshape = (tos, frag, ttl)
            addr_off = IPV4_ADDRS_OFFSET
            if frag & IPV4_DF:
                ident = None
        elif b0 >> 4 == 6 and n >= IPV6_HEADER_LEN + UDP_HEADER_LEN:
            vtcfl, plen, proto, hlim, src, dst = IPV6_HEADER.unpack_from(pkt)
            if plen + IPV6_HEADER_LEN != n:
                return self._verbatim(pkt, hdr, seal_all=True)
            l3 = IPV6_HEADER_LEN
            v6 = True
            ipshape = (vtcfl, hlim)
            addr_off = IPV6_ADDRS_OFFSET
            ident = None
        else:
            return self._verbatim(pkt, hdr, seal_all=True)
        if proto == IPPROTO_TCP:
            if n < l3 + TCP_MIN_HEADER_LEN:
                return self._verbatim(pkt, hdr, seal_all=True)
            sport, dport, seq, ack, off, flags, win, _c, urg = TCP_HEADER.unpack_from(pkt, l3)
            hlen = l3 + (off >> 4) * 4
            if off < 0x50 or hlen > n:
                return self._verbatim(pkt, hdr, seal_all=True)
            key = (IPPROTO_TCP, src, dst, sport, dport)
            if flags & ~_TCP_OK or not flags & _ACK:
                return self._verbatim(pkt, hdr, seal_key=key)  # SYN/FIN/RST/URG/CWR: seen in order
            if hlen == n:
                return self._verbatim(pkt, hdr)  # pure ACK: no ordering duty toward the data
            mv = memoryview(pkt)
            if hdr is None:
                if self.verify_checksums and csum16(mv[addr_off:], IPPROTO_TCP + n - l3) != 0xFFFF:
                    return self._verbatim(pkt, hdr, seal_key=key)
            elif hdr.csum_start != l3 or hdr.csum_offset != TCP_CHECKSUM_OFFSET:
                return self._verbatim(pkt, hdr, seal_key=key)  # trusted, but not a shape merging can keep
            shape = (ipshape, ack, off, win, urg, flags & _ECE, bytes(mv[l3 + TCP_MIN_HEADER_LEN : hlen]))
            chain = self._open.get(key)
            if chain is not None:
                payload = n - hlen
                if (
                    seq == chain.next_seq
                    and chain.shape == shape
                    and payload <= chain.size
                    and len(chain.bufs) < self.max_segments
                    and chain.nbytes + payload <= self.max_bytes
                    and (chain.ident is None or chain.ident == ident)
                ):
                    chain.bufs.append(mv[hlen:])
                    chain.nbytes += payload
                    chain.next_seq = (seq + payload) & 0xFFFFFFFF
                    if chain.ident is not None:
                        chain.ident = (chain.ident + 1) & 0xFFFF
                    if flags & _PSH or payload < chain.size:
                        chain.psh = bool(flags & _PSH)
                        del self._open[key]
                    return None
                del self._open[key]  # cannot extend (gap, header change, full): start afresh
            if n > self.max_bytes:
                return self._verbatim(pkt, hdr, seal_key=key)
            payload = n - hlen
            nxt = None if ident is None else (ident + 1) & 0xFFFF
            chain = _Chain(mv, hdr or DATA_VALID_HDR, l3, hlen, True, v6, payload, (seq + payload) & 0xFFFFFFFF, shape, nxt)
            self._slots.append(chain)
            if not flags & _PSH:
                self._open[key] = chain
            return None
        if proto == IPPROTO_UDP and self.uso:
            sport, dport, ulen, ucsum = UDP_HEADER.unpack_from(pkt, l3)
            if ulen != n - l3:
                return self._verbatim(pkt, hdr, seal_all=True)
            key = (IPPROTO_UDP, src, dst, sport, dport)
            payload = ulen - UDP_HEADER_LEN
            if payload == 0 or (ucsum == 0 and not v6) or n > self.max_bytes:
                return self._verbatim(pkt, hdr, seal_key=key)  # nothing to merge, or nothing to verify
            mv = memoryview(pkt)
            if hdr is None:
                if self.verify_checksums and csum16(mv[addr_off:], IPPROTO_UDP + ulen) != 0xFFFF:
                    return self._verbatim(pkt, hdr, seal_key=key)
            elif hdr.csum_start != l3 or hdr.csum_offset != UDP_CHECKSUM_OFFSET:
                return self._verbatim(pkt, hdr, seal_key=key)
            chain = self._open.get(key)
            if chain is not None:
                if (
                    chain.shape == ipshape
                    and payload <= chain.size
                    and len(chain.bufs) < self.max_segments
                    and chain.nbytes + payload <= self.max_bytes
                    and (chain.ident is None or chain.ident == ident)
                ):
                    chain.bufs.append(mv[l3 + UDP_HEADER_LEN :])
                    chain.nbytes += payload
                    if chain.ident is not None:
                        chain.ident = (chain.ident + 1) & 0xFFFF
                    if payload < chain.size:
                        del self._open[key]
                    return None
                del self._open[key]
            nxt = None if ident is None else (ident + 1) & 0xFFFF
            chain = _Chain(mv, hdr or DATA_VALID_HDR, l3, l3 + UDP_HEADER_LEN, False, v6, payload, None, ipshape, nxt)
            self._slots.append(chain)
            self._open[key] = chain
            return None
        return self._verbatim(pkt, hdr, seal_all=True)

    def flush(self) -> list:
        """Return ``[(VirtioNetHdr, bufs)]`` for everything added since the last flush, and reset."""
        slots, self._slots = self._slots, []
        self._open.clear()
        out = []
        append = out.append
        for s in slots:
            if type(s) is tuple:
                append(s)
            elif len(s.bufs) == 1:
                append((s.seed_hdr, [s.seed]))
            else:
                append(_finish(s))
        return out


def _finish(c: _Chain) -> tuple:
    """Header and buffers for a chain of two or more segments."""
    l3, hlen, total = c.l3, c.hlen, c.nbytes
    hdr = bytearray(c.seed[:hlen])
    l4len = total - l3
    if c.v6:
        U16.pack_into(hdr, IPV6_PAYLOAD_LENGTH_OFFSET, l4len)
        addrs = int.from_bytes(hdr[IPV6_ADDRS_OFFSET:IPV6_HEADER_LEN], "big")  # src + dst as one number:
    else:  # fine, 2**128 == 1 (mod 0xFFFF)
        U16.pack_into(hdr, IPV4_TOTAL_LENGTH_OFFSET, total)
        U16.pack_into(hdr, IPV4_CHECKSUM_OFFSET, ipv4_header_checksum(hdr, 0, l3))
        addrs = int.from_bytes(hdr[IPV4_ADDRS_OFFSET:IPV4_MIN_HEADER_LEN], "big")
    if c.tcp:
        if c.psh:
            hdr[l3 + TCP_FLAGS_OFFSET] |= _PSH
        proto, field, gso_type = IPPROTO_TCP, TCP_CHECKSUM_OFFSET, _GSO_TCPV6 if c.v6 else _GSO_TCPV4
    else:
        U16.pack_into(hdr, l3 + UDP_LENGTH_OFFSET, l4len)
        proto, field, gso_type = IPPROTO_UDP, UDP_CHECKSUM_OFFSET, _GSO_UDP_L4
    # NEEDS_CSUM: the field holds the folded pseudo-header sum, not inverted.
    U16.pack_into(hdr, l3 + field, csum_fold(addrs + proto + l4len))
    vh = VirtioNetHdr(VirtioNetHdrFlag.NEEDS_CSUM, gso_type, hlen, c.size, l3, field)
    return vh, [bytes(hdr), *c.bufs]


def coalesce(packets, *, uso: bool = False, verify_checksums: bool = True) -> list:
    """Coalesce an iterable of IP packets in one go: ``Coalescer(...)``, ``add`` each, ``flush``."""
    co = Coalescer(uso=uso, verify_checksums=verify_checksums)
    for p in packets:
        co.add(p)
    return co.flush()
