"""The overlay data path: TUN queue <-> authenticated IP-over-UDP between peers; does I/O.

One :class:`Tunnel` serves one TUN queue and one UDP socket (a worker).  It
is driven by a :class:`~tunkit.loop.PacketLoop` through two handlers:

* **outbound** (:meth:`Tunnel.on_tun_readable`): read up to ``batch``
  packets, route each by its destination with a longest-prefix match (a
  peer's own prefixes, or an ``unsafe_routes`` network spread over several
  gateways by a flow hash), answer packets too big for the route with ICMP
  "fragmentation needed" / ICMPv6 "packet too big" written back into the TUN,
  seal them (:mod:`tunkit.overlay`) and queue them on a
  :class:`~tunkit.udp.UdpBatcher`, which sends runs of equal-sized datagrams
  to one peer with a single ``UDP_SEGMENT`` ``sendmsg``.
* **inbound** (:meth:`Tunnel.on_udp_readable`): read datagrams (``UDP_GRO``
  batches split by size), accept them only from a configured peer endpoint,
  open them (tag, freshness, replay), accept the inner packet only if its
  source lies in that peer's prefixes (WireGuard's allowed-IPs rule), and
  write it to the TUN.

Every refused packet is counted by reason (:attr:`Tunnel.drops`, and per
peer); per peer there are rx/tx packet and byte counters.
:meth:`Tunnel.status` returns all of it as a JSON-able dict.

TUN queues are duck-typed: anything with ``fileno()`` whose descriptor is
non-blocking and moves one packet per ``read``/``write`` (a
:class:`tunkit.device.Queue`, or a datagram socketpair in tests).  The hot
path calls ``os.readv``/``os.writev`` on that descriptor directly.  Pass
``vnet_hdr=True`` when every packet starts with a 10-byte ``virtio_net_hdr``.  With ``vnet_hdr`` a TSO/USO super-packet travels as
*one* overlay message (the kernel IP-fragments the UDP datagram on the
underlay and reassembles it at the peer), and the receiving tunnel writes it
back as a super-packet: no per-segment Python work at either end.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence

from tunkit._uapi import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_LEN, VirtioNetHdrFlag, VirtioNetHdrGso
from tunkit.ecmp import GatewaySet, flow_hash_packet
from tunkit.errors import ConfigError, DecodeError
from tunkit.offload import VIRTIO_NET_HDR, ZERO_HDR, Coalescer, VirtioNetHdr, checksum_partial, gso_split
from tunkit.packet import (
    IPV4_HEADER,
    IPV4_MIN_HEADER_LEN,
    IPV6_HEADER,
    IPV6_HEADER_LEN,
    UDP_HEADER_LEN,
    internet_checksum,
    pseudo_header_sum,
)
from tunkit.overlay import DEFAULT_MTU, OVERHEAD, Gso, Opener, OverlayError, Sealer
from tunkit.spec import PeerSpec, RouteSpec, check_config
from tunkit.trie import PrefixTable
from tunkit.udp import UdpBatcher, enable_gro, recv_batch

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_BATCH = 64
READ_BUF = 65536 + VIRTIO_NET_HDR_LEN + 64
UNDERLAY_MTU = 1500

_VNET = VIRTIO_NET_HDR  # one Struct for virtio_net_hdr: tunkit.offload's
_VNET_UNPACK = VIRTIO_NET_HDR.unpack_from
_VNET_NONE = ZERO_HDR.encode()
_NEEDS_CSUM = int(VirtioNetHdrFlag.NEEDS_CSUM)
_GSO_UDP_L4 = int(VirtioNetHdrGso.UDP_L4)


# ---------------------------------------------------------------------------
# Configuration objects: the typed specs and their one validation live in tunkit.spec
# ---------------------------------------------------------------------------
def specs_from_config(cfg) -> tuple[list[PeerSpec], list[RouteSpec]]:
    """Peers and routes of a :class:`tunkit.config.Config`: the specs its validation checked."""
    return list(cfg.peer_specs), list(cfg.route_specs)


# ---------------------------------------------------------------------------
# Run-time state
# ---------------------------------------------------------------------------
class PeerState:
    """One peer at run time: where to send, what it may send, its counters."""

    __slots__ = (
        "name", "spec", "addr", "allowed", "sealer", "opener", "mtu",
        "rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "drops",
    )

    def __init__(self, spec: PeerSpec, addr, allowed, sealer, opener, mtu: int) -> None:
        self.name = spec.name
        self.spec = spec
        self.addr = addr
        self.allowed = allowed
        self.sealer = sealer
        self.opener = opener
        self.mtu = mtu
        self.rx_packets = self.rx_bytes = self.tx_packets = self.tx_bytes = 0
        self.drops: dict[str, int] = {}

    def status(self) -> dict:
        return {
            "name": self.name,
            "endpoint": _fmt_endpoint(self.spec.endpoint),
            "prefixes": [str(p) for p in self.spec.prefixes],
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "drops": dict(self.drops),
        }


class GatewayGroup:
    """An ``unsafe_routes`` destination: gateway peers with weights, one chosen per flow.

    :class:`tunkit.ecmp.GatewaySet` does the hash-threshold choice (bounds
    bit-exact with the kernel and nebula) over :func:`tunkit.ecmp.flow_hash_packet`
    (addresses, protocol and ports where present), so a flow keeps its gateway.
    """

    __slots__ = ("gateways", "mtu")

    def __init__(self, peers: Sequence, weights: Sequence[int], mtu: int) -> None:
        self.gateways = GatewaySet(list(zip(peers, weights)))
        self.mtu = mtu

    @property
    def bounds(self) -> tuple[int, ...]:
        return self.gateways.bounds

    def choose(self, pkt):
        try:
            h = flow_hash_packet(pkt)
        except DecodeError:  # no IP header to hash (the caller checked the version): any gateway
            h = 0
        return self.gateways.choose(h)


class _Route:
    """A peer's own prefix in the routing table: always that peer."""

    __slots__ = ("peer", "mtu")

    def __init__(self, peer: PeerState, mtu: int) -> None:
        self.peer = peer
        self.mtu = mtu

    def choose(self, pkt) -> PeerState:
        return self.peer


def default_table_factory():
    return PrefixTable()


# ---------------------------------------------------------------------------
# The tunnel
# ---------------------------------------------------------------------------
class Tunnel:
    """The data path of one worker: one TUN queue, one UDP socket, shared peer config."""

    def __init__(
        self,
        queue,
        sock: socket.socket,
        peers: Iterable[PeerSpec],
        routes: Iterable[RouteSpec] = (),
        *,
        insecure: bool = False,
        mtu: int = DEFAULT_MTU,
        addresses: Iterable[IPAddress] = (),
        sender: int = 0,
        session: int | None = None,
        start_counter: int | None = None,
        batch: int = DEFAULT_BATCH,
        table_factory: Callable[[], object] | None = None,
        udp_gso: bool | None = None,
        udp_gro: bool | None = None,
        vnet_hdr: bool | None = None,
        coalesce: bool = True,
        uso: bool = False,
        clock_ns: Callable[[], int] = time.time_ns,
        max_age_ms: int | None = None,
        underlay_mtu: int = UNDERLAY_MTU,
        partial_checksums: bool = False,
    ) -> None:
        if partial_checksums and not insecure:
            raise ConfigError("partial_checksums is an insecure-mode setting (authenticated messages carry "
                              "the checksum state in their header)")
        self.queue = queue
        self.sock = sock
        self.insecure = insecure
        self.partial_checksums = partial_checksums
        self.mtu = mtu
        self.batch = batch
        self.vnet_hdr = bool(getattr(queue, "vnet_hdr", False) if vnet_hdr is None else vnet_hdr)
        self._fd = queue.fileno()
        self._clock_ns = clock_ns
        now_ns = clock_ns()
        self.started_ms = now_ns // 1_000_000
        self.session = int.from_bytes(os.urandom(4), "big") if session is None else session
        self.sender = sender
        start_counter = now_ns if start_counter is None else start_counter
        self._table_factory = table_factory or default_table_factory
        self._v6sock = sock.family == socket.AF_INET6
        self._icmp_src = {4: None, 6: None}
        for a in addresses:
            a = ipaddress.ip_address(a)
            if self._icmp_src[a.version] is None:
                self._icmp_src[a.version] = a.packed

        self._opener_kw = {} if max_age_ms is None else {"max_age_ms": max_age_ms}
        self._start_counter = start_counter
        self.peers: list[PeerState] = []
        self._by_addr: dict = {}
        self.table = None
        self.extra_routes: dict = {}  # prefix -> RouteSpec learned at run time (kernel routes)
        self.reconfigure(peers, routes)

        # counters and I/O helpers
        self.drops: dict[str, int] = {}
        self.tun_rx = self.tun_tx = 0
        self.udp_gro = enable_gro(sock) if udp_gro is None else (udp_gro and enable_gro(sock))
        self.max_datagram = underlay_mtu - (IPV6_HEADER_LEN if self._v6sock else IPV4_MIN_HEADER_LEN) - UDP_HEADER_LEN
        self.batcher = UdpBatcher(sock, gso=udp_gso, max_segment=self.max_datagram, on_error=self._send_failed)
        self._unstable: list = []  # openers holding views into the receive buffer
        # with virtio headers, plain packets of one read are merged per flow before the TUN write; a read
        # holds several datagrams only with UDP_GRO, so without it there is nothing to merge
        self._co = Coalescer(uso=uso) if self.vnet_hdr and coalesce and self.udp_gro else None
        # (buffer, the 1-tuple readv takes, its view): built once, so a TUN read allocates nothing
        self._bufs = [(b, (b,), memoryview(b)) for b in (bytearray(READ_BUF) for _ in range(batch))]
        self._rbuf = bytearray(READ_BUF)
        self._now_ms = self.started_ms

    # -- configuration ------------------------------------------------------------
    def reconfigure(self, peers: Iterable[PeerSpec], routes: Iterable[RouteSpec] = (), *, mtu: int | None = None) -> None:
        """Apply a new peer and route set (and default MTU) without dropping unchanged peers.

        A peer whose name, endpoint and key are unchanged keeps its sealer
        (counters), opener (replay windows) and counters.  Everything is
        validated first; on :class:`~tunkit.errors.ConfigError` nothing changes.
        The new tables replace the old ones in one assignment.
        """
        mtu = self.mtu if mtu is None else mtu
        peers, routes = list(peers), list(routes)
        addrs = check_config(peers, routes, insecure=self.insecure, v6sock=self._v6sock,
                             table_factory=self._table_factory)
        old = {p.name: p for p in self.peers}
        new_peers: list[PeerState] = []
        by_addr: dict = {}
        table = self._table_factory()
        for spec, addr in zip(peers, addrs):
            allowed = self._table_factory()
            for pfx in spec.prefixes:
                allowed.insert(pfx, True)
            prev = old.get(spec.name)
            if prev is not None and prev.spec.endpoint == spec.endpoint and prev.spec.key == spec.key:
                st = prev
                st.spec, st.allowed, st.mtu = spec, allowed, spec.mtu or mtu
            else:
                sealer = opener = None
                if not self.insecure:
                    sealer = Sealer(spec.key, session=self.session, start_counter=max(self._start_counter, self._clock_ns()),
                                    sender=self.sender)
                    opener = Opener({0: spec.key}, not_before_ms=self.started_ms, **self._opener_kw)
                st = PeerState(spec, addr, allowed, sealer, opener, spec.mtu or mtu)
            new_peers.append(st)
            by_addr[addr] = st
            for pfx in spec.prefixes:
                table.insert(pfx, _Route(st, st.mtu))
        for r in [*routes, *self.extra_routes.values()]:
            table.insert(r.route, self._gateway_group(table, r, mtu))
        self.peers, self._by_addr, self.table, self.mtu = new_peers, by_addr, table, mtu
        self._routes = routes

    def _gateway_group(self, table, r: RouteSpec, mtu: int) -> "GatewayGroup":
        gws, weights = [], []
        for gw, weight in r.via:
            v = table.lookup(ipaddress.ip_address(gw).packed)
            if not isinstance(v, _Route):
                raise ConfigError(f"route {r.route}: gateway {gw} is not inside any peer's prefixes")
            gws.append(v.peer)
            weights.append(weight)
        try:
            return GatewayGroup(gws, weights, r.mtu or mtu)
        except ValueError as e:  # a gateway listed twice, a weight out of range
            raise ConfigError(f"route {r.route}: {e}") from None

    def set_mtu(self, mtu: int) -> None:
        """The TUN's MTU changed: routes without an MTU of their own follow it."""
        self.reconfigure([p.spec for p in self.peers], self._routes, mtu=mtu)

    def set_route(self, route: RouteSpec) -> bool:
        """Add or replace a run-time route (mirrored from the kernel).

        False (and nothing changes) if no gateway is a peer, or the prefix is
        configured already: configured routes and peers' prefixes win.
        """
        if route.route in self._configured_prefixes():
            return False
        try:
            group = self._gateway_group(self.table, route, self.mtu)
        except ConfigError:
            return False
        self.extra_routes[route.route] = route
        self.table.insert(route.route, group)
        return True

    def remove_route(self, prefix) -> bool:
        """Remove a run-time route; False if there was none."""
        if self.extra_routes.pop(prefix, None) is None:
            return False
        delete = getattr(self.table, "delete", None)
        if delete is not None:
            delete(prefix)  # incremental: the prefix was no configured route's (see set_route)
        else:
            self.reconfigure([p.spec for p in self.peers], self._routes)
        return True

    def _configured_prefixes(self) -> set:
        pfx = {r.route for r in self._routes}
        for p in self.peers:
            pfx.update(p.spec.prefixes)
        return pfx

    # -- helpers ------------------------------------------------------------------
    def _drop(self, reason: str, peer: PeerState | None = None) -> None:
        self.drops[reason] = self.drops.get(reason, 0) + 1
        if peer is not None:
            peer.drops[reason] = peer.drops.get(reason, 0) + 1

    def _send_failed(self, addr, size, exc) -> None:
        self._drop("send_error", self._by_addr.get(addr))

    def attach(self, loop) -> None:
        """Register both handlers with ``loop``."""
        loop.add_reader(self.queue, self.on_tun_readable)
        loop.add_reader(self.sock, self.on_udp_readable)

    def detach(self, loop) -> None:
        loop.remove_reader(self.queue)
        loop.remove_reader(self.sock)

    # -- outbound: TUN -> UDP -----------------------------------------------------------
    def on_tun_readable(self) -> None:
        self._now_ms = self._clock_ns() // 1_000_000
        fd = self._fd
        readv = os.readv
        vnet = self.vnet_hdr
        outbound = self._outbound
        for buf, bufs, view in self._bufs:
            try:
                n = readv(fd, bufs)
            except BlockingIOError:  # queue drained
                break
            except OSError as e:  # EBADFD/EIO while the device goes away: stop this round, count it
                self._drop("tun_read")
                if e.errno in (errno.EIO, errno.EBADFD, errno.EBADF, errno.EFAULT, errno.EINVAL):
                    break
                raise
            if not n:
                break
            self.tun_rx += 1
            if not vnet:
                outbound(view[:n], None)
            elif n < VIRTIO_NET_HDR_LEN:
                self._drop("malformed")
            else:
                flags, gso_type, _hdr_len, gso_size, csum_start, csum_offset = _VNET_UNPACK(buf)
                gso = None
                if gso_type or flags & _NEEDS_CSUM:
                    gso = Gso(gso_type, flags, gso_size if gso_type else 0, csum_start, csum_offset)
                outbound(view[VIRTIO_NET_HDR_LEN:n], gso)
        self.batcher.flush()

    def _outbound(self, pkt: memoryview, gso: Gso | None) -> None:
        n = len(pkt)
        if n < 20:
            self._drop("malformed")
            return
        v = pkt[0] >> 4
        if v == 4:
            dst = pkt[16:20]
        elif v == 6 and n >= 40:
            dst = pkt[24:40]
        else:
            self._drop("malformed")
            return
        route = self.table.lookup(dst)
        if route is None:
            self._drop("no_route")
            return
        peer = route.choose(pkt)
        mtu = route.mtu
        if gso is not None and gso.size:
            seg_len = gso.csum_start + _l4_header_len(pkt, gso.csum_start, gso.type) + gso.size
            if seg_len > mtu:
                self._too_big(pkt, mtu, peer)
                return
        elif n > mtu and (v == 6 or pkt[6] & 0x40):  # IPv6, or IPv4 with DF: a router answers
            self._too_big(pkt, mtu, peer)
            return
        if self.insecure:
            # Raw IP carries no GSO metadata: the (super-)packet goes whole and the underlay fragments
            # it.  Its checksum is finished here, for foo-over-UDP receivers; a super-packet may keep
            # the partial one with partial_checksums, because a tunkit receiver rebuilds the metadata
            # and the checksum field of anything longer than its MTU from the headers (see _regso).
            try:
                if gso is None:
                    self.batcher.add(peer.addr, n, [pkt])
                elif gso.type & ~VIRTIO_NET_HDR_GSO_ECN == _GSO_UDP_L4:  # datagram boundaries: split here
                    for d in gso_split(_virtio(gso), pkt):
                        self.batcher.add(peer.addr, len(d), [d])
                else:
                    if gso.flags & _NEEDS_CSUM and not (gso.type and self.partial_checksums and gso.csum_start == _plain_l3(pkt)):
                        pkt = checksum_partial(_virtio(gso), pkt)
                    self.batcher.add(peer.addr, n, [pkt])
            except DecodeError:
                self._drop("malformed", peer)
                return
        elif n + OVERHEAD <= self.max_datagram:
            hdr, tag = peer.sealer.seal(pkt, self._now_ms, gso)
            self.batcher.add(peer.addr, n + OVERHEAD, [hdr, pkt, tag])
        else:  # a super-packet (or a big packet): a train of datagrams, one UDP_SEGMENT send
            try:
                dgrams, seg = peer.sealer.seal_train(pkt, self._now_ms, gso, self.max_datagram)
            except ValueError:  # more than 64 datagrams: bigger than any TUN hands out
                self._drop("too_big", peer)
                return
            self.batcher.add_train(peer.addr, dgrams, seg)
        peer.tx_packets += 1
        peer.tx_bytes += n

    def _too_big(self, pkt: memoryview, mtu: int, peer: PeerState) -> None:
        self._drop("too_big", peer)
        icmp = build_too_big(pkt, mtu, self._icmp_src)
        if icmp is not None and self._write_tun((icmp,), None) is not None:
            self._drop("tun_write")

    # -- inbound: UDP -> TUN ------------------------------------------------------------
    def on_udp_readable(self) -> None:
        self._now_ms = self._clock_ns() // 1_000_000
        recv_batch(self.sock, self._rbuf, self._inbound, max_reads=self.batch, gro=self.udp_gro,
                   after_read=self._after_read)

    def _after_read(self) -> None:
        if self._co is not None:
            self._flush_coalesced()  # its views point into the buffer about to be reused
        if self._unstable:  # unfinished trains must not keep views into the buffer about to be reused
            for opener in self._unstable:
                opener.stabilise()
            self._unstable.clear()

    def _inbound(self, block: memoryview, addr, seg: int) -> None:
        """One read: a datagram, or with UDP_GRO several of ``seg`` bytes each (the last may be shorter)."""
        peer = self._by_addr.get(addr)
        n = len(block)
        if peer is None:
            self._drop("unknown_endpoint")
            return
        if not n:  # an empty datagram: nothing to open or deliver
            self._drop("truncated", peer)
            return
        if self.insecure:
            for off in range(0, n, seg):
                d = block[off : off + seg]
                gso = _regso(d, self.mtu) if len(d) > self.mtu else None  # a super-packet: see _outbound
                self._deliver(peer, (d,), len(d), gso)
            return
        opener = peer.opener
        now = self._now_ms
        off = 0
        while off < n:
            try:
                if n - off > 1 and block[off + 1] == 2:  # a train's fragments: take them together
                    opened, used = opener.open_frags(block[off:], seg, now)
                    off += used
                else:
                    opened = opener.open(block[off : off + seg], now)
                    off += seg
            except OverlayError as e:
                self._drop(e.reason.value, peer)
                off += seg
                continue
            if opened is None:  # a train in progress
                if opener.pending and opener not in self._unstable:
                    self._unstable.append(opener)
                continue
            self._deliver(peer, opened.parts, opened.length, opened.gso)

    def _deliver(self, peer: PeerState, parts, n: int, gso: Gso | None) -> None:
        """Allowed-IPs check, then into the TUN."""
        pkt = parts[0]
        if len(pkt) < 40 and len(parts) > 1:
            pkt = b"".join(parts)[:40]
        if n < 20:
            self._drop("malformed", peer)
            return
        v = pkt[0] >> 4
        if v == 4:
            src = pkt[12:16]
        elif v == 6 and len(pkt) >= 40:
            src = pkt[8:24]
        else:
            self._drop("malformed", peer)
            return
        if peer.allowed.lookup(src) is None:
            self._drop("not_allowed", peer)
            return
        if self._co is not None:
            if len(parts) == 1 and n <= self.mtu and (gso is None or (not gso.type and gso.flags & _NEEDS_CSUM)):
                # written, merged with its flow's neighbours, after this read.  A packet with a partial
                # checksum (authenticated by the overlay's MAC) is trusted: nothing to finish or verify,
                # and if it stays alone it keeps its NEEDS_CSUM header
                self._co.add(parts[0], None if gso is None else _virtio(gso))
                peer.rx_packets += 1
                peer.rx_bytes += n
                return
            self._flush_coalesced()  # keep the order of this read's packets
        failed = self._write_tun(parts, gso)
        if failed is not None:
            self._drop(failed, peer)
            return
        peer.rx_packets += 1
        peer.rx_bytes += n

    def _flush_coalesced(self) -> None:
        if not len(self._co):
            return
        fd, writev = self._fd, os.writev
        for hdr, bufs in self._co.flush():
            try:
                writev(fd, (hdr.encode(), *bufs))
            except OSError as e:  # EIO: TUN down; EINVAL: the kernel refused the merged packet
                if e.errno not in (errno.EAGAIN, errno.EIO, errno.EINVAL, errno.ENOBUFS, errno.EBADF):
                    raise
                self._drop("tun_write")
            else:
                self.tun_tx += 1

    def _write_tun(self, parts, gso: Gso | None) -> str | None:
        """Write one packet (or super-packet) given as buffers into the TUN; None, or the drop reason."""
        try:
            if self.vnet_hdr:
                os.writev(self._fd, (_vnet_header(parts[0], gso), *parts))
            elif gso is None:
                os.writev(self._fd, parts)  # gathered by the kernel: no join
            else:  # this TUN takes plain packets: split the super-packet (or finish its checksum)
                pkt = parts[0] if len(parts) == 1 else b"".join(parts)
                try:
                    segments = gso_split(_virtio(gso), pkt)
                except DecodeError:
                    return "malformed"
                for seg in segments:
                    os.write(self._fd, seg)
        except OSError as e:  # EIO: device down; EINVAL: the kernel refused the header; drop and count
            if e.errno in (errno.EAGAIN, errno.EIO, errno.EINVAL, errno.ENOBUFS, errno.EBADF, errno.EFAULT):
                return "tun_write"
            raise
        self.tun_tx += 1
        return None

    # -- reporting ---------------------------------------------------------------------------
    def status(self) -> dict:
        """Counters as a JSON-able dict (the shape ``tunkit status -j`` prints)."""
        return {
            "sender": self.sender,
            "session": self.session,
            "mode": "insecure" if self.insecure else "authenticated",
            "partial_checksums": self.partial_checksums,
            "mtu": self.mtu,
            "vnet_hdr": self.vnet_hdr,
            "tun": {"rx_packets": self.tun_rx, "tx_packets": self.tun_tx},
            "udp": {
                "gso": self.batcher.gso,
                "gro": self.udp_gro,
                "send_calls": self.batcher.syscalls,
                "gso_sends": self.batcher.gso_sends,
                "gso_fallbacks": self.batcher.gso_fallbacks,
            },
            "drops": dict(self.drops),
            "peers": [p.status() for p in self.peers],
        }


# ---------------------------------------------------------------------------
# Packet helpers (headers, checksums, ICMP errors)
# ---------------------------------------------------------------------------
def _fmt_endpoint(ep: tuple[str, int]) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _l4_header_len(pkt, l4: int, gso_type: int) -> int:
    t = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if t in (1, 4):  # TCPV4 / TCPV6: the data offset
        if len(pkt) > l4 + 12:
            return (pkt[l4 + 12] >> 4) * 4
        return 20
    return 8


def _vnet_header(pkt, gso: Gso | None) -> bytes:
    if gso is None:
        return _VNET_NONE
    hdr_len = gso.csum_start + _l4_header_len(pkt, gso.csum_start, gso.type) if gso.type else 0
    return _VNET.pack(gso.flags, gso.type, hdr_len, gso.size, gso.csum_start, gso.csum_offset)


def _regso(pkt: memoryview, mtu: int) -> Gso | None:
    """GSO metadata for a TCP super-packet that arrived whole as raw IP (insecure mode), so that the
    kernel can segment it again if it forwards it (or tunkit can, for a TUN without virtio headers).
    Rewrites the TCP checksum field in place to the pseudo-header sum that NEEDS_CSUM wants, so the
    field's old value (complete, or partial from a ``partial_checksums`` sender) does not matter.

    None for anything else, which is written as it came: a big UDP packet is one datagram (the
    sender splits USO super-packets, whose datagram boundaries raw IP cannot carry), and IPv4
    fragments, IPv6 extension headers and other protocols are not re-segmented."""
    v = pkt[0] >> 4
    n = len(pkt)
    if v == 4 and n >= 20:
        if pkt[9] != IPPROTO_TCP or (pkt[6] & 0x3F) or pkt[7]:  # not TCP, or a fragment (MF / offset)
            return None
        l3, gtype = (pkt[0] & 15) * 4, 1
        src, dst = pkt[12:16], pkt[16:20]
    elif v == 6 and n >= 40 and pkt[6] == IPPROTO_TCP:
        l3, gtype = 40, 4
        src, dst = pkt[8:24], pkt[24:40]
    else:
        return None
    if n < l3 + 20 or pkt.readonly:
        return None
    l4 = (pkt[l3 + 12] >> 4) * 4
    size = mtu - l3 - l4
    if l4 < 20 or l3 + l4 > n or size <= 0:
        return None
    struct.pack_into("!H", pkt, l3 + 16, pseudo_header_sum(bytes(src), bytes(dst), IPPROTO_TCP, n - l3))
    return Gso(gtype, _NEEDS_CSUM, size, l3, 16)


def _plain_l3(pkt) -> int:
    """Where TCP/UDP starts when no IPv6 extension header sits before it (IPv4: the IHL)."""
    return (pkt[0] & 15) * 4 if pkt[0] >> 4 == 4 else IPV6_HEADER_LEN


@functools.lru_cache(maxsize=64)  # a flow's packets share a few shapes: one header object per shape
def _virtio(gso: Gso) -> VirtioNetHdr:
    return VirtioNetHdr(gso.flags, gso.type, 0, gso.size, gso.csum_start, gso.csum_offset)


_ICMP_TOO_BIG4 = struct.Struct("!BBHHH")  # type 3, code 4, checksum, unused, next-hop MTU (RFC 1191)
_ICMP_TOO_BIG6 = struct.Struct("!BBHI")  # type 2, code 0, checksum, MTU (RFC 4443)
_ICMP4_ERRORS = {3, 4, 5, 11, 12}


def build_too_big(pkt, mtu: int, sources: dict[int, bytes | None]) -> bytes | None:
    """The ICMP error a router sends for ``pkt`` that does not fit ``mtu``; None if none is due.

    The error comes from this host's overlay address of the family when one
    is known, else from the packet's destination.  No error answers an ICMP
    error (RFC 1122 3.2.2).
    """
    v = pkt[0] >> 4
    if v == 4:
        ihl = (pkt[0] & 15) * 4
        if pkt[9] == IPPROTO_ICMP and len(pkt) > ihl and pkt[ihl] in _ICMP4_ERRORS:
            return None
        if (int.from_bytes(pkt[6:8], "big") & 0x1FFF) != 0:  # not the first fragment
            return None
        quote = bytes(pkt[: min(len(pkt), 576 - 28)])
        icmp = bytearray(_ICMP_TOO_BIG4.pack(3, 4, 0, 0, min(mtu, 0xFFFF)) + quote)
        struct.pack_into("!H", icmp, 2, internet_checksum(icmp))
        src = sources.get(4) or bytes(pkt[16:20])
        ip = bytearray(IPV4_HEADER.pack(0x45, 0xC0, 20 + len(icmp), 0, 0, 64, IPPROTO_ICMP, 0, src, bytes(pkt[12:16])))
        struct.pack_into("!H", ip, 10, internet_checksum(ip))
        return bytes(ip + icmp)
    if v == 6:
        if pkt[6] == IPPROTO_ICMPV6 and len(pkt) > 40 and pkt[40] < 128:
            return None
        quote = bytes(pkt[: min(len(pkt), 1280 - 48)])
        src = sources.get(6) or bytes(pkt[24:40])
        dst = bytes(pkt[8:24])
        icmp = bytearray(_ICMP_TOO_BIG6.pack(2, 0, 0, max(mtu, 1280)) + quote)
        struct.pack_into("!H", icmp, 2, internet_checksum(icmp, pseudo_header_sum(src, dst, IPPROTO_ICMPV6, len(icmp))))
        return IPV6_HEADER.pack(0x60000000, len(icmp), IPPROTO_ICMPV6, 64, src, dst) + bytes(icmp)
    return None
