"""The overlay data path: TUN queue <-> authenticated IP-over-UDP between peers; does I/O.

One :class:`Tunnel` serves one TUN queue and one UDP socket (a worker).  It
is driven by a :class:`~tunkit.overlay.loop.PacketLoop` through two handlers:

* **outbound** (:meth:`Tunnel.on_tun_readable`): read up to ``batch``
  packets, route each by its destination with a longest-prefix match (a
  peer's own prefixes, or an ``unsafe_routes`` network spread over several
  gateways by a flow hash), answer packets too big for the route with ICMP
  "fragmentation needed" / ICMPv6 "packet too big" written back into the TUN,
  seal them (:mod:`tunkit.overlay.wire`) and queue them on a
  :class:`~tunkit.overlay.udp.UdpBatcher`, which sends runs of equal-sized datagrams
  to one peer with a single ``UDP_SEGMENT`` ``sendmsg``.
* **inbound** (:meth:`Tunnel.on_udp_readable`): read datagrams (``UDP_GRO``
  batches split by size), accept them only from a configured peer endpoint,
  open them (tag, freshness, replay), accept the inner packet only if its
  source lies in that peer's prefixes (WireGuard's allowed-IPs rule), and
  write it to the TUN.

Every refused packet is counted by reason (:attr:`Tunnel.drops`, and per
peer); per peer there are rx/tx packet and byte counters.
:meth:`Tunnel.status` returns all of it as a JSON-able dict.

TUN I/O goes through one :class:`tunkit.tun.batch.OffloadIO` (the tunnel never
touches the queue's descriptor or a virtio_net_hdr's bytes); the queue is
anything that module takes (a :class:`tunkit.tun.device.Queue`, an inherited
descriptor, a datagram socketpair in tests).  With ``vnet_hdr`` a TSO/USO
super-packet travels as *one* overlay message (a train of datagrams, one
``UDP_SEGMENT`` send), and the receiving tunnel writes it back as a
super-packet: no per-segment Python work at either end.  Every GSO field a
peer sends is checked against the packet (:func:`tunkit.packet.offload.gso_problem`)
before use; a message that fails is dropped under the field's name.

Settings come as one :class:`~tunkit.overlay.options.TunnelOptions`,
validated once and shared by a node's workers.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Callable, Iterable, Sequence

from tunkit._uapi import VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_LEN, VirtioNetHdrFlag, VirtioNetHdrGso
from tunkit.tun.batch import OffloadIO
from tunkit.routing.ecmp import GatewaySet, flow_hash_packet
from tunkit.errors import ConfigError, DecodeError
from tunkit.packet.offload import VirtioNetHdr, checksum_partial, gso_problem, gso_split, l4_header_len, regso
from tunkit.overlay.wire import DEFAULT_MAX_AGE_MS, DEFAULT_MTU, OVERHEAD, Opener, OverlayError, Sealer
from tunkit.packet.ip import IPV4_MIN_HEADER_LEN, IPV6_HEADER_LEN, UDP_HEADER_LEN, build_too_big
from tunkit.overlay.spec import PeerSpec, RouteSpec, check_config
from tunkit.routing.trie import PrefixTable
from tunkit.overlay.options import DEFAULT_BATCH, UNDERLAY_MTU, TunnelOptions
from tunkit.overlay.udp import UdpBatcher, enable_gro, recv_batch

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAX_RETIRED = 256  # removed peers whose replay state a reload keeps (for max_age_ms)
_NEEDS_CSUM = int(VirtioNetHdrFlag.NEEDS_CSUM)
_GSO_UDP_L4 = int(VirtioNetHdrGso.UDP_L4)


# ---------------------------------------------------------------------------
# Configuration objects: the typed specs and their one validation live in tunkit.overlay.spec
# ---------------------------------------------------------------------------
def specs_from_config(cfg) -> tuple[list[PeerSpec], list[RouteSpec]]:
    """Peers and routes of a :class:`tunkit.app.config.Config`: the specs its validation checked."""
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

    :class:`tunkit.routing.ecmp.GatewaySet` does the hash-threshold choice (bounds
    bit-exact with the kernel and nebula) over :func:`tunkit.routing.ecmp.flow_hash_packet`
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
    """The data path of one worker: one TUN queue (through :class:`~tunkit.tun.batch.OffloadIO`), one UDP socket."""

    def __init__(self, queue, sock: socket.socket, peers: Iterable[PeerSpec], routes: Iterable[RouteSpec] = (),
                 options: TunnelOptions | None = None, *, sender: int = 0) -> None:
        o = self.options = options or TunnelOptions()
        self.queue = queue
        self.sock = sock
        self.insecure = o.insecure
        self.partial_checksums = o.partial_checksums
        self.mtu = o.mtu
        self.batch = o.batch
        self.vnet_hdr = bool(getattr(queue, "vnet_hdr", False) if o.vnet_hdr is None else o.vnet_hdr)
        self._clock_ns = o.clock_ns
        now_ns = o.clock_ns()
        self.started_ms = now_ns // 1_000_000
        self.session = int.from_bytes(os.urandom(4), "big") if o.session is None else o.session
        self.sender = sender
        self._start_counter = now_ns if o.start_counter is None else o.start_counter
        self._table_factory = o.table_factory or default_table_factory
        self._v6sock = sock.family == socket.AF_INET6
        self._icmp_src = {4: None, 6: None}
        for a in o.addresses:
            if self._icmp_src[a.version] is None:
                self._icmp_src[a.version] = a.packed
        self._opener_kw = {} if o.max_age_ms is None else {"max_age_ms": o.max_age_ms}
        self._max_age_ms = DEFAULT_MAX_AGE_MS if o.max_age_ms is None else o.max_age_ms
        self.peers: list[PeerState] = []
        self._by_addr: dict | None = None  # None until the first reconfigure
        self._by_key: dict = {}  # key -> (sealer, opener): replay state follows the key across reloads
        self._retired: dict = {}  # key -> (sealer, opener, removed at ms) of peers a reload removed
        self.table = None
        self.extra_routes: dict = {}  # prefix -> RouteSpec learned at run time (kernel routes)
        self._now_ms = self.started_ms
        self.reconfigure(peers, routes)

        self.drops: dict[str, int] = {}
        self.udp_gro = enable_gro(sock) if o.udp_gro is None else (o.udp_gro and enable_gro(sock))
        self.max_datagram = o.underlay_mtu - (IPV6_HEADER_LEN if self._v6sock else IPV4_MIN_HEADER_LEN) - UDP_HEADER_LEN
        self.batcher = UdpBatcher(sock, gso=o.udp_gso, max_segment=self.max_datagram, on_error=self._send_failed)
        self._unstable: list = []  # openers holding views into the receive buffer
        # a UDP read holds several datagrams only with UDP_GRO: without it there is nothing to merge
        self.io = OffloadIO(queue, vnet_hdr_len=VIRTIO_NET_HDR_LEN if self.vnet_hdr else 0, uso=o.uso,
                            coalesce=o.coalesce and self.udp_gro, batch=o.batch)
        self._rbuf = bytearray(65536 + 128)  # one UDP_GRO read: up to 64 KB of datagrams

    # -- configuration ------------------------------------------------------------
    def reconfigure(self, peers: Iterable[PeerSpec], routes: Iterable[RouteSpec] = (), *, mtu: int | None = None) -> None:
        """Apply a new peer and route set (and default MTU) without dropping unchanged peers.

        A peer whose name, endpoint and key are unchanged keeps its counters.
        Replay state follows the key (what identifies a peer
        cryptographically): a renamed peer, or one whose endpoint changed,
        keeps its sealer and opener, and a peer removed and re-added within
        the freshness window (``max_age_ms``) gets its old ones back.  Any
        other new opener made by a reload refuses messages stamped before the
        reload, so traffic captured earlier cannot be replayed into it.
        Everything is validated first; on :class:`~tunkit.errors.ConfigError`
        nothing changes.  The new tables replace the old ones in one assignment.
        """
        mtu = self.mtu if mtu is None else mtu
        peers, routes = list(peers), list(routes)
        addrs = check_config(peers, routes, insecure=self.insecure, v6sock=self._v6sock,
                             table_factory=self._table_factory)
        old = {p.name: p for p in self.peers}
        new_peers: list[PeerState] = []
        by_addr: dict = {}
        by_key: dict = {}
        table = self._table_factory()
        now_ms = self._clock_ns() // 1_000_000
        floor = max(self.started_ms, now_ms + 1) if self._by_addr is not None else self.started_ms
        retired = {k: v for k, v in self._retired.items() if now_ms - v[2] <= self._max_age_ms}
        same = [old[sp.name] for sp in peers if sp.name in old and (old[sp.name].spec.endpoint, old[sp.name].spec.key)
                == (sp.endpoint, sp.key)]
        used = {id(p.opener) for p in same}  # an opener serves one peer (two peers may share a key)
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
                    kept = self._by_key.get(spec.key) or retired.pop(spec.key, None)
                    if kept is not None and id(kept[1]) in used:
                        kept = None
                    sealer, opener = kept[:2] if kept else self._crypto(spec.key, floor)
                    used.add(id(opener))
                st = PeerState(spec, addr, allowed, sealer, opener, spec.mtu or mtu)
            if st.opener is not None:
                by_key[spec.key] = (st.sealer, st.opener)
            new_peers.append(st)
            by_addr[addr] = st
            for pfx in spec.prefixes:
                table.insert(pfx, _Route(st, st.mtu))
        for r in [*routes, *self.extra_routes.values()]:
            table.insert(r.route, self._gateway_group(table, r, mtu))
        for k, v in self._by_key.items():
            if k not in by_key:
                retired[k] = (*v, now_ms)
        while len(retired) > _MAX_RETIRED:  # the oldest lose their windows; the reload floor still protects
            del retired[min(retired, key=lambda k: retired[k][2])]
        self.peers, self._by_addr, self.table, self.mtu, self._by_key = new_peers, by_addr, table, mtu, by_key
        self._retired = retired
        self._routes = routes

    def _crypto(self, key: bytes, not_before_ms: int) -> tuple[Sealer, Opener]:
        sealer = Sealer(key, session=self.session, start_counter=max(self._start_counter, self._clock_ns()),
                        sender=self.sender)
        return sealer, Opener({0: key}, not_before_ms=not_before_ms, **self._opener_kw)

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
        self.io.read_each(self._outbound)
        self.batcher.flush()

    def _outbound(self, pkt: memoryview, hdr: VirtioNetHdr | None) -> None:
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
        if hdr is not None and hdr.gso_type:
            if gso_problem(hdr, pkt, n) is not None:  # a shape a peer would refuse: send its segments instead
                self._send_split(pkt, hdr, peer)
                return
            if hdr.csum_start + l4_header_len(pkt, hdr.csum_start, hdr.gso_type) + hdr.gso_size > mtu:
                self._too_big(pkt, mtu, peer)
                return
        elif n > mtu and (v == 6 or pkt[6] & 0x40):  # IPv6, or IPv4 with DF: a router answers
            self._too_big(pkt, mtu, peer)
            return
        if self.insecure:
            self._send_raw(pkt, hdr, peer)
        elif n + OVERHEAD <= self.max_datagram:
            h, tag = peer.sealer.seal(pkt, self._now_ms, hdr)
            self.batcher.add(peer.addr, n + OVERHEAD, [h, pkt, tag])
        else:  # a super-packet (or a big packet): a train of datagrams, one UDP_SEGMENT send
            try:
                dgrams, seg = peer.sealer.seal_train(pkt, self._now_ms, hdr, self.max_datagram)
            except ValueError:  # more than 64 datagrams: bigger than any TUN hands out
                self._drop("too_big", peer)
                return
            self.batcher.add_train(peer.addr, dgrams, seg)
        peer.tx_packets += 1
        peer.tx_bytes += n

    def _send_split(self, pkt, hdr: VirtioNetHdr, peer: PeerState) -> None:
        try:
            segments = gso_split(hdr, pkt)
        except DecodeError:
            self._drop("malformed", peer)
            return
        for seg in segments:
            self._outbound(memoryview(seg), None)

    def _send_raw(self, pkt, hdr: VirtioNetHdr | None, peer: PeerState) -> None:
        """Insecure mode: raw IP carries no GSO metadata, so the (super-)packet goes whole and the underlay
        fragments it.  Its checksum is finished here, for foo-over-UDP receivers; a super-packet may keep
        the partial one with partial_checksums, because a tunkit receiver rebuilds the metadata and the
        checksum field of anything longer than its MTU from the headers (:func:`~tunkit.packet.offload.regso`)."""
        n = len(pkt)
        try:
            if hdr is None:
                self.batcher.add(peer.addr, n, [pkt])
            elif hdr.gso_type & ~VIRTIO_NET_HDR_GSO_ECN == _GSO_UDP_L4:  # datagram boundaries: split here
                for d in gso_split(hdr, pkt):
                    self.batcher.add(peer.addr, len(d), [d])
            else:
                if hdr.flags & _NEEDS_CSUM and not (hdr.gso_type and self.partial_checksums):
                    pkt = checksum_partial(hdr, pkt)
                self.batcher.add(peer.addr, n, [pkt])
        except DecodeError:
            self._drop("malformed", peer)

    def _too_big(self, pkt: memoryview, mtu: int, peer: PeerState) -> None:
        self._drop("too_big", peer)
        icmp = build_too_big(pkt, mtu, self._icmp_src)
        if icmp is not None and not self.io.write_one((icmp,)):
            self._drop("tun_write")

    # -- inbound: UDP -> TUN ------------------------------------------------------------
    def on_udp_readable(self) -> None:
        self._now_ms = self._clock_ns() // 1_000_000
        recv_batch(self.sock, self._rbuf, self._inbound, max_reads=self.batch, gro=self.udp_gro,
                   after_read=self._after_read)

    def _after_read(self) -> None:
        self.io.flush()  # coalesced packets are views into the buffer about to be reused
        if self._unstable:  # so are unfinished trains' fragments
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
                hdr = regso(d, self.mtu) if len(d) > self.mtu else None  # a super-packet: see _send_raw
                self._deliver(peer, (d,), len(d), hdr)
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
            hdr = opened.gso
            if hdr is not None and (bad := gso_problem(hdr, opened.parts[0], opened.length)) is not None:
                self._drop(bad, peer)  # a peer's header fields that do not fit its packet
                continue
            self._deliver(peer, opened.parts, opened.length, hdr)

    def _deliver(self, peer: PeerState, parts, n: int, hdr: VirtioNetHdr | None) -> None:
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
        if len(parts) == 1 and n <= self.mtu and (hdr is None or (not hdr.gso_type and hdr.flags & _NEEDS_CSUM)):
            # merged with its flow's neighbours, written after this read.  A packet with a partial checksum
            # (authenticated by the overlay's MAC) is trusted: nothing to finish or verify, and if it stays
            # alone it keeps its NEEDS_CSUM header
            ok = self.io.add(parts[0], hdr)
        else:
            ok = self.io.write_one(parts, hdr)
        if not ok:
            self._drop("tun_write", peer)
            return
        peer.rx_packets += 1
        peer.rx_bytes += n

    # -- reporting ---------------------------------------------------------------------------
    def status(self) -> dict:
        """Counters as a JSON-able dict (the shape ``tunkit status -j`` prints)."""
        io = self.io.stats
        peers = []
        drops = dict(self.drops)
        for p in self.peers:
            d = p.status()
            if p.opener is not None and p.opener.expired:  # counted by the opener, when a later train came
                d["drops"]["frag_expired"] = p.opener.expired
                drops["frag_expired"] = drops.get("frag_expired", 0) + p.opener.expired
            peers.append(d)
        return {
            "sender": self.sender,
            "session": self.session,
            "mode": "insecure" if self.insecure else "authenticated",
            "partial_checksums": self.partial_checksums,
            "mtu": self.mtu,
            "vnet_hdr": self.vnet_hdr,
            "tun": {"rx_packets": io.reads, "tx_packets": io.packets_written, **io.counters()},  # summed over workers
            "udp": {
                "gso": self.batcher.gso,
                "gro": self.udp_gro,
                "send_calls": self.batcher.syscalls,
                "gso_sends": self.batcher.gso_sends,
                "gso_fallbacks": self.batcher.gso_fallbacks,
            },
            "drops": drops,
            "peers": peers,
        }


def _fmt_endpoint(ep: tuple[str, int]) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
