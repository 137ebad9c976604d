"""GRO in user space: merge packets bound for a TUN into super-packets (virtio_net_hdr GSO); pure, no I/O.

The write-path half of :mod:`tunkit.packet.offload` (which has the header codec and
the read-path split): :class:`Coalescer` takes IP packets one by one and
returns ``[(VirtioNetHdr, bufs)]`` ready for ``os.writev(fd, [hdr.encode(),
*bufs])``; :mod:`tunkit.tun.batch` is the one caller that writes them.  The rules
(see the class) are nebula's stricter ones, so that the kernel's segmentation
of a super-packet reproduces the input packets exactly.
"""

from __future__ import annotations

from tunkit._uapi import IPPROTO_TCP, IPPROTO_UDP, VirtioNetHdrFlag, VirtioNetHdrGso
from tunkit.packet.offload import DATA_VALID_HDR, MAX_BYTES, MAX_SEGMENTS, ZERO_HDR, VirtioNetHdr
from tunkit.packet.ip import (
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
    TcpFlag,
    csum16,
    csum_fold,
    ipv4_header_checksum,
)

__all__ = ["Coalescer", "coalesce", "MAX_SEGMENTS", "MAX_BYTES"]

_NEEDS_CSUM = int(VirtioNetHdrFlag.NEEDS_CSUM)
_GSO_NONE = int(VirtioNetHdrGso.NONE)
_GSO_TCPV4 = int(VirtioNetHdrGso.TCPV4)
_GSO_TCPV6 = int(VirtioNetHdrGso.TCPV6)
_GSO_UDP_L4 = int(VirtioNetHdrGso.UDP_L4)


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
      Without USO a UDP datagram goes out verbatim and seals nothing: TCP
      and UDP chains are kept apart (as nebula's and wireguard-go's
      coalescers do), so mixed traffic keeps coalescing its TCP flows.
    * Anything else (not IPv4/IPv6, bad lengths, fragments, IPv4 options,
      IPv6 extension headers, other protocols) goes out
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
        if max_segments < 1:
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
            ipshape: tuple[int, ...] = (tos, frag, ttl)
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
            return self._add_tcp(pkt, hdr, n, l3, v6, ipshape, addr_off, src, dst, ident)
        if proto == IPPROTO_UDP and self.uso:
            return self._add_udp(pkt, hdr, n, l3, v6, ipshape, addr_off, src, dst, ident)
        if proto == IPPROTO_UDP:  # no USO: UDP never merges, and it belongs to no TCP chain (nebula)
            return self._verbatim(pkt, hdr)
        return self._verbatim(pkt, hdr, seal_all=True)

    def _add_tcp(self, pkt, hdr, n, l3, v6, ipshape, addr_off, src, dst, ident) -> None:
        """A TCP segment: extend its flow's open chain, or start one (see the rules above)."""
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

    def _add_udp(self, pkt, hdr, n, l3, v6, ipshape, addr_off, src, dst, ident) -> None:
        """A UDP datagram (USO negotiated): extend its flow's chain, or start one."""
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

    def flush(self) -> list:
        """Return ``[(VirtioNetHdr, bufs)]`` for everything added since the last flush, and reset."""
        slots, self._slots = self._slots, []
        self._open.clear()
        out: list = []
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
