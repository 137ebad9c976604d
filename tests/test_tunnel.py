"""The overlay data path without privileges: fake TUN queues on socketpairs, UDP on loopback.

Three hosts A, B, C (each a Tunnel with its own FakeQueue and UDP socket);
oracles are the packets the test built and what the stdlib reports.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct

import pytest

from support_tunnel import VNET, FakeQueue, checksum, ipv4_tcp, ipv4_udp, ipv6_udp, pump
from tunkit.errors import ConfigError
from tunkit.overlay.wire import OVERHEAD, Sealer
from tunkit.routing.ecmp import flow_hash_packet as flow_hash
from tunkit.overlay.tunnel import PeerSpec, RouteSpec, Tunnel, TunnelOptions
from tunkit.packet.offload import split_read
from tunkit.overlay.udp import UdpBatcher

KEY = bytes(range(32))
BAD_KEY = bytes(32)
NET = ipaddress.ip_network
ADDR = {"a": "198.18.0.1", "b": "198.18.0.2", "c": "198.18.0.3"}
ADDR6 = {"a": "2001:db8::a", "b": "2001:db8::b", "c": "2001:db8::c"}


class Host:
    def __init__(self, name, family=socket.AF_INET, vnet=False):
        self.name = name
        self.q = FakeQueue(vnet_hdr=vnet)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.t = None

    def spec(self, key=KEY, extra=(), mtu=None):
        pfx = (NET(ADDR[self.name] + "/32"), NET(ADDR6[self.name] + "/128"), *map(NET, extra))
        return PeerSpec(self.name, (self.host, self.port), pfx, key, mtu)

    def start(self, peers, routes=(), **kw):
        kw.setdefault("addresses", [ipaddress.ip_address(ADDR[self.name]), ipaddress.ip_address(ADDR6[self.name])])
        sender = kw.pop("sender", 0)
        self.t = Tunnel(self.q, self.sock, peers, routes, TunnelOptions(**kw), sender=sender)
        return self.t

    def close(self):
        self.q.close()
        self.sock.close()


@pytest.fixture
def hosts():
    made = {}

    def make(*names, **kw):
        for n in names:
            made[n] = Host(n, **kw)
        return [made[n] for n in names]

    yield make
    for h in made.values():
        h.close()


def _wire(a, b, **kw):
    """Start a and b as each other's only peer."""
    a.start([b.spec()], **kw)
    b.start([a.spec()], **kw)


def send(src: Host, *pkts, dst: Host | None = None, vnet=None):
    for p in pkts:
        src.q.inject(p, vnet)
    src.t.on_tun_readable()
    if dst is not None:
        pump((dst.sock, dst.t.on_udp_readable))


# -- routing and delivery ------------------------------------------------------------------
@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6], ids=["outer4", "outer6"])
@pytest.mark.parametrize("inner", ["v4", "v6"])
def test_packets_cross_both_ways_byte_exact(hosts, family, inner):
    a, b = hosts("a", "b", family=family)
    _wire(a, b)
    mk = (lambda s, d, i: ipv4_udp(ADDR[s], ADDR[d], 1000 + i, 53, b"q%d" % i * i)) if inner == "v4" else (
        lambda s, d, i: ipv6_udp(ADDR6[s], ADDR6[d], 1000 + i, 53, b"q%d" % i * i))
    there = [mk("a", "b", i) for i in range(5)]
    send(a, *there, dst=b)
    assert b.q.take_all() == there
    back = [mk("b", "a", i) for i in range(3)]
    send(b, *back, dst=a)
    assert a.q.take_all() == back
    pa, pb = a.t.peers[0], b.t.peers[0]
    assert (pa.tx_packets, pa.tx_bytes) == (5, sum(map(len, there)))
    assert (pb.rx_packets, pb.rx_bytes) == (5, sum(map(len, there)))
    assert (pb.tx_packets, pa.rx_packets, pa.rx_bytes) == (3, 3, sum(map(len, back)))
    assert a.t.drops == {} and b.t.drops == {}


def test_longest_prefix_picks_the_peer_and_unrouted_is_dropped(hosts):
    a, b, c = hosts("a", "b", "c")
    a.start([b.spec(extra=["192.0.2.0/24"]), c.spec(extra=["192.0.2.128/25"])])
    b.start([a.spec()])
    c.start([a.spec()])
    to_b = ipv4_udp(ADDR["a"], "192.0.2.5", 1, 2, b"b")
    to_c = ipv4_udp(ADDR["a"], "192.0.2.200", 1, 2, b"c")
    nowhere = ipv4_udp(ADDR["a"], "198.51.100.9", 1, 2, b"x")
    send(a, to_b, to_c, nowhere)
    pump((b.sock, b.t.on_udp_readable), (c.sock, c.t.on_udp_readable))
    assert b.q.take_all() == [to_b]
    assert c.q.take_all() == [to_c]
    assert a.t.drops == {"no_route": 1}


def test_ecmp_spreads_flows_and_keeps_each_flow_on_one_gateway(hosts):
    a, b, c = hosts("a", "b", "c")
    route = RouteSpec(NET("192.0.2.0/24"), ((ipaddress.ip_address(ADDR["b"]), 1), (ipaddress.ip_address(ADDR["c"]), 1)))
    a.start([b.spec(), c.spec()], [route])
    b.start([a.spec()])
    c.start([a.spec()])
    flows = [ipv4_udp(ADDR["a"], "192.0.2.9", 20000 + i, 443, b"f%d" % i) for i in range(64)]
    for i in range(0, 64, 16):
        send(a, *flows[i : i + 16])
        pump((b.sock, b.t.on_udp_readable), (c.sock, c.t.on_udp_readable))
    got_b, got_c = set(b.q.take_all()), set(c.q.take_all())
    assert got_b | got_c == set(flows) and not got_b & got_c
    assert 16 <= len(got_b) <= 48, len(got_b)  # both gateways carry a fair share
    send(a, *flows[:8], *flows[:8])  # same flows again: same gateway each time
    pump((b.sock, b.t.on_udp_readable), (c.sock, c.t.on_udp_readable))
    again_b = b.q.take_all()
    assert set(again_b) == {f for f in flows[:8] if f in got_b} and len(again_b) == 2 * len(set(again_b))


def test_weighted_ecmp_bounds_follow_the_weights():
    from tunkit.overlay.tunnel import GatewayGroup

    assert GatewayGroup(["x", "y", "z"], [1, 1, 1], 1300).bounds == (715827882, 1431655764, 2147483647)
    assert GatewayGroup(["x", "y"], [10, 5], 1300).bounds == (1431655764, 2147483647)
    g = GatewayGroup(["heavy", "light"], [3, 1], 1300)
    picks = [g.choose(ipv4_udp("198.18.0.1", "192.0.2.1", 1024 + i, 80, b"")) for i in range(2000)]
    assert 0.65 < picks.count("heavy") / 2000 < 0.85
    assert flow_hash(ipv4_udp("198.18.0.1", "192.0.2.1", 5, 6, b"")) == flow_hash(ipv4_udp("198.18.0.1", "192.0.2.1", 5, 6, b"xyz"))


def test_gateway_outside_every_peer_is_a_config_error(hosts):
    (a, b) = hosts("a", "b")
    bad = RouteSpec(NET("192.0.2.0/24"), ((ipaddress.ip_address("198.18.9.9"), 1),))
    with pytest.raises(ConfigError, match="198.18.9.9"):
        a.start([b.spec()], [bad])
    with pytest.raises(ConfigError, match="no key"):
        a.start([b.spec(key=None)])


# -- what gets dropped ----------------------------------------------------------------------
def test_spoofed_inner_source_is_dropped_and_traffic_continues(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    spoofed = ipv4_udp("198.18.0.77", ADDR["a"], 1, 2, b"spoof")
    good = ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"good")
    send(b, spoofed, good, dst=a)
    assert a.q.take_all() == [good]
    assert a.t.drops == {"not_allowed": 1} and a.t.peers[0].drops == {"not_allowed": 1}


def test_wrong_key_is_dropped_as_bad_mac(hosts):
    a, b = hosts("a", "b")
    a.start([b.spec()])
    b.start([a.spec(key=BAD_KEY)])
    send(b, ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"forged"), dst=a)
    assert a.q.take_all() == []
    assert a.t.drops == {"bad_mac": 1}


def test_replay_is_dropped(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    pkt = ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"once")
    peer = b.t.peers[0]
    hdr, tag = peer.sealer.seal(pkt, b.t.started_ms + 1)
    for _ in range(3):
        b.sock.sendto(hdr + pkt + tag, peer.addr)
    pump((a.sock, a.t.on_udp_readable))
    assert a.q.take_all() == [pkt]
    assert a.t.drops == {"replay": 2}


def test_stale_timestamps_are_dropped(hosts):
    a, b = hosts("a", "b")
    a.start([b.spec()])
    b.start([a.spec()], clock_ns=lambda: __import__("time").time_ns() - 60 * 10**9)  # b's clock a minute late
    send(b, ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"old"), dst=a)
    assert a.q.take_all() == [] and a.t.drops == {"stale": 1}


def test_truncated_garbage_and_unknown_endpoint(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.bind(("127.0.0.1", 0))
    try:
        dest = ("127.0.0.1", a.port)
        good = ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"ok")
        hdr, tag = b.t.peers[0].sealer.seal(good, b.t.started_ms + 1)
        b.sock.sendto((hdr + good + tag)[: OVERHEAD - 1], dest)  # truncated
        fresh = struct.pack("!BBBBIQQ", 1, 1, 0, 0, 99, 5, b.t.started_ms + 1) + bytes(9) + b"\x01" + bytes(range(40))
        b.sock.sendto(fresh, dest)  # garbage with a plausible, fresh header: the tag fails
        b.sock.sendto(b"\x07" + bytes(60), dest)  # garbage: unknown version
        b.sock.sendto(b"", dest)  # empty
        stranger.sendto(hdr + good + tag, dest)  # a valid message from the wrong endpoint
        send(b, good)
        pump((a.sock, a.t.on_udp_readable))
        assert a.q.take_all() == [good]
        assert a.t.drops == {"truncated": 2, "bad_mac": 1, "version": 1, "unknown_endpoint": 1}
    finally:
        stranger.close()


def test_insecure_empty_datagram_is_counted_and_traffic_continues(hosts):
    a, b = hosts("a", "b")
    _wire(a, b, insecure=True)
    b.sock.sendto(b"", ("127.0.0.1", a.port))
    pkt = ipv4_udp(ADDR["b"], ADDR["a"], 7, 8, b"after")
    send(b, pkt, dst=a)
    assert a.q.take_all() == [pkt]
    assert a.t.drops == {"truncated": 1}


def test_sender_restart_is_accepted_without_manual_steps(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    send(b, ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"before"), dst=a)
    b.start([a.spec()])  # a restart: new session, new counters, same socket
    pkt = ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"after")
    send(b, pkt, dst=a)
    assert a.q.take_all()[-1] == pkt
    assert a.t.drops == {}


# -- packet too big --------------------------------------------------------------------------
def test_too_big_with_df_gets_icmp_frag_needed(hosts):
    a, b = hosts("a", "b")
    a.start([b.spec(mtu=600)])
    b.start([a.spec()])
    big = ipv4_udp(ADDR["a"], ADDR["b"], 1111, 2222, bytes(700))
    send(a, big)
    icmp = a.q.take()
    assert icmp is not None and a.t.drops == {"too_big": 1}
    ver_ihl, _, total, _, _, _, proto, _, src, dst = struct.unpack_from("!BBHHHBBH4s4s", icmp)
    assert (ver_ihl, proto, total) == (0x45, 1, len(icmp))
    assert checksum(icmp[:20]) == 0 and checksum(icmp[20:]) == 0
    assert (src, dst) == (ipaddress.ip_address(ADDR["a"]).packed, ipaddress.ip_address(ADDR["a"]).packed)
    typ, code, _, _, mtu = struct.unpack_from("!BBHHH", icmp, 20)
    assert (typ, code, mtu) == (3, 4, 600)
    assert icmp[28:] == big[: 576 - 28]
    # without DF the packet goes (the underlay fragments it), and nothing comes back
    nodf = ipv4_udp(ADDR["a"], ADDR["b"], 1111, 2222, bytes(700), df=False)
    send(a, nodf, dst=b)
    assert b.q.take_all() == [nodf] and a.q.take(0.05) is None


# -- batching ------------------------------------------------------------------------------
def test_equal_sized_datagrams_leave_in_one_gso_send_and_arrive_separately(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    pkts = [ipv4_udp(ADDR["a"], ADDR["b"], 5000, 6000, b"%04d" % i * 50, ident=i) for i in range(20)]
    send(a, *pkts, dst=b)
    assert b.q.take_all() == pkts
    st = a.t.status()["udp"]
    assert st["gso"]  # loopback has UDP_SEGMENT (Linux 4.18+); the fall-back has a test of its own below
    assert st["gso_sends"] == 1 and st["send_calls"] == 1


class RefusingSocket:
    """A socket stand-in whose kernel refuses UDP_SEGMENT sends (as with EIO on some devices)."""

    family = socket.AF_INET

    def __init__(self, real):
        self.real = real
        self.calls = []

    def sendmsg(self, bufs, anc=(), flags=0, addr=None):
        self.calls.append(len(list(anc)))
        if anc:
            raise OSError(errno.EIO, "no tx checksum offload")
        return self.real.sendmsg(bufs, anc, flags, addr)


@pytest.fixture
def refused():
    """(receiving socket, RefusingSocket, UdpBatcher with GSO believed on)."""
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fake = RefusingSocket(tx)
    yield rx, fake, UdpBatcher(fake, gso=True)
    rx.close()
    tx.close()


def test_gso_refused_falls_back_to_single_sends(refused):
    rx, fake, b = refused
    for i in range(5):
        b.add(rx.getsockname(), 100, [bytes([i]) * 100])
    b.flush()
    assert not b.gso and b.gso_fallbacks == 1 and fake.calls == [1, 0, 0, 0, 0, 0]
    assert [rx.recv(200) for _ in range(5)] == [bytes([i]) * 100 for i in range(5)]
    b.add(rx.getsockname(), 100, [b"x" * 100])
    b.add(rx.getsockname(), 100, [b"y" * 100])
    b.flush()
    assert fake.calls[-2:] == [0, 0]  # stays off


class RecordingSocket:
    """Records each sendmsg as (address, bytes, [UDP_SEGMENT sizes])."""

    family = socket.AF_INET

    def __init__(self):
        self.sent = []

    def sendmsg(self, bufs, anc=(), flags=0, addr=None):
        self.sent.append((addr, b"".join(bytes(b) for b in bufs), [struct.unpack("=H", d)[0] for _, _, d in anc]))


def test_batcher_groups_runs_by_peer_and_size():
    rec = RecordingSocket()
    sent = rec.sent
    b = UdpBatcher(rec, gso=True, max_segment=1000)
    p, q = ("192.0.2.1", 1), ("192.0.2.2", 1)
    plan = [(p, 100), (p, 100), (p, 60), (p, 100), (q, 100), (q, 100), (p, 2000), (p, 100), (p, 100), (p, -500)]
    for addr, size in plan:
        if size < 0:
            b.add_train(addr, [[b"t" * 500], [b"t" * 500], [b"t" * 200]], -size)
        else:
            b.add(addr, size, [b"z" * size])
    b.flush()
    assert [(a, len(d), seg) for a, d, seg in sent] == [
        (p, 260, [100]),  # 100+100 and the shorter 60 that ends the run
        (p, 100, []),
        (q, 200, [100]),
        (p, 2000, []),  # too big to batch: alone (the kernel IP-fragments it)
        (p, 200, [100]),  # a train never joins a run of small datagrams
        (p, 1200, [500]),  # the train: one send, cut by the kernel every 500 bytes
    ]


# -- insecure mode and super-packet metadata -------------------------------------------------
def test_insecure_mode_is_raw_ip_in_udp(hosts):
    a, b = hosts("a", "b")
    _wire(a, b, insecure=True)
    pkt = ipv4_udp(ADDR["a"], ADDR["b"], 7, 8, b"plain")
    sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a foo-over-UDP receiver sees the bare packet
    sniff.bind(("127.0.0.1", 0))
    try:
        a.t.peers[0].addr = sniff.getsockname()
        send(a, pkt)
        sniff.settimeout(2)
        assert sniff.recv(2000) == pkt
        send(b, ipv4_udp(ADDR["b"], ADDR["a"], 7, 8, b"back"), dst=a)
        assert a.q.take_all() == [ipv4_udp(ADDR["b"], ADDR["a"], 7, 8, b"back")]
        # allowed-IPs still holds without authentication
        send(b, ipv4_udp("198.18.0.99", ADDR["a"], 7, 8, b"spoof"), dst=a)
        assert a.q.take_all() == [] and a.t.drops == {"not_allowed": 1}
    finally:
        sniff.close()


@pytest.mark.parametrize("size", [5120, 60000])
def test_super_packet_travels_whole_with_its_gso_metadata(hosts, size):
    a, b = hosts("a", "b", vnet=True)
    _wire(a, b)
    seg = 1000
    payload = (bytes(range(256)) * 250)[:size]  # a train of datagrams on the wire
    sp = bytearray(ipv4_tcp(ADDR["a"], ADDR["b"], 40000, 5201, payload))
    struct.pack_into("!H", sp, 36, 0x1234)  # a partial checksum, as the kernel hands it over
    vnet = VNET.pack(1, 1, 40, seg, 20, 16)  # NEEDS_CSUM, TCPV4, hdr_len, gso_size, csum_start, csum_offset
    send(a, bytes(sp), dst=b, vnet=vnet)
    out = b.q.take()
    assert out[10:] == bytes(sp)
    assert VNET.unpack_from(out) == (1, 1, 40, seg, 20, 16)
    assert b.t.drops == {} and a.t.status()["udp"]["send_calls"] == 1  # the whole train in one sendmsg
    plain = ipv4_udp(ADDR["a"], ADDR["b"], 1, 2, b"small")
    send(a, plain, dst=b)
    assert b.q.take() == bytes(10) + plain


def test_super_packet_to_a_plain_tun_is_split_into_real_packets(hosts):
    from tunkit.packet.ip import transport_checksum_ok

    a, = hosts("a", vnet=True)
    b, = hosts("b", vnet=False)
    _wire(a, b)
    sp = bytearray(ipv4_tcp(ADDR["a"], ADDR["b"], 40000, 5201, bytes(range(250)) * 12))  # 3000 bytes of payload
    struct.pack_into("!H", sp, 36, 0)  # the kernel leaves the pseudo-header sum here with NEEDS_CSUM
    from tunkit.packet.ip import pseudo_header_sum

    struct.pack_into("!H", sp, 36, pseudo_header_sum(bytes(sp[12:16]), bytes(sp[16:20]), 6, len(sp) - 20))
    send(a, bytes(sp), dst=b, vnet=VNET.pack(1, 1, 40, 1000, 20, 16))
    segs = b.q.take_all()
    assert [len(p) for p in segs] == [1040, 1040, 1040] and b.t.drops == {}
    assert all(transport_checksum_ok(p) for p in segs)
    assert b"".join(p[40:] for p in segs) == bytes(range(250)) * 12


def test_status_is_json_ready(hosts):
    import json

    a, b = hosts("a", "b")
    _wire(a, b)
    send(a, ipv4_udp(ADDR["a"], ADDR["b"], 1, 2, b"x"), dst=b)
    st = json.loads(json.dumps(b.t.status()))
    assert st["peers"][0]["name"] == "a" and st["peers"][0]["rx_packets"] == 1
    assert st["mode"] == "authenticated"


def test_sealer_counter_is_time_seeded(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    s = a.t.peers[0].sealer
    assert isinstance(s, Sealer) and s.counter >= a.t.started_ms * 1_000_000


def test_train_without_gso_goes_one_datagram_per_call(refused):
    from tunkit.overlay.wire import split_train

    rx, fake, b = refused
    s = Sealer(KEY, session=1, start_counter=1)
    dgrams, seg = s.seal_train(bytes(range(256)) * 16, 10**12, None, 1000)
    want = split_train(dgrams, seg)
    b.add_train(rx.getsockname(), dgrams, seg)
    b.flush()
    assert [rx.recv(2000) for _ in want] == want
    assert fake.calls == [1] + [0] * len(want) and not b.gso


def test_train_bigger_than_one_send_goes_in_several_gso_sends():
    rec = RecordingSocket()
    b = UdpBatcher(rec, gso=True)
    b.max_total = 3000
    blob = bytes(range(250)) * 28  # 7000 bytes: 7 datagrams of 1000
    b.add_train(("192.0.2.1", 1), [[blob[i : i + 10], memoryview(blob)[i + 10 : i + 1000]] for i in range(0, 7000, 1000)], 1000)
    b.flush()
    sent = [(d, seg) for _, d, seg in rec.sent]
    assert [(len(d), seg) for d, seg in sent] == [(3000, [1000]), (3000, [1000]), (1000, [])]
    assert b"".join(d for d, _ in sent) == blob


# -- reconfiguration (reload, MTU changes, mirrored kernel routes) ---------------------------------
def test_reconfigure_keeps_unchanged_peers_and_applies_the_rest(hosts):
    a, b, c = hosts("a", "b", "c")
    a.start([b.spec(), c.spec()])
    b.start([a.spec()])
    c.start([a.spec()])
    send(b, ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"x"), dst=a)
    assert len(a.q.take_all()) == 1
    pb = a.t.peers[0]
    counter = pb.sealer.counter
    # b unchanged but with one more prefix; c removed; a bad route makes the whole change fail first
    bad = RouteSpec(NET("192.0.2.0/24"), ((ipaddress.ip_address("198.18.0.99"), 1),))
    with pytest.raises(ConfigError):
        a.t.reconfigure([b.spec(extra=["192.0.2.0/24"])], [bad])
    assert [p.name for p in a.t.peers] == ["b", "c"]  # nothing changed
    a.t.reconfigure([b.spec(extra=["192.0.2.0/24"])])
    assert a.t.peers[0] is pb and pb.rx_packets == 1 and pb.sealer.counter == counter
    to_net = ipv4_udp(ADDR["a"], "192.0.2.7", 1, 2, b"routed")
    send(a, to_net, dst=b)
    assert b.q.take_all() == [to_net]
    send(c, ipv4_udp(ADDR["c"], ADDR["a"], 1, 2, b"gone"), dst=a)
    assert a.q.take_all() == [] and a.t.drops.get("unknown_endpoint") == 1
    # a new key for b: a fresh sealer/opener, and b (still on the old key) is refused
    a.t.reconfigure([b.spec(key=BAD_KEY)])
    assert a.t.peers[0] is not pb
    __import__("time").sleep(0.002)  # past the reload's millisecond (before it, messages are stale)
    send(b, ipv4_udp(ADDR["b"], ADDR["a"], 1, 2, b"old key"), dst=a)
    assert a.t.drops.get("bad_mac") == 1


def test_mtu_change_moves_the_too_big_threshold(hosts):
    a, b = hosts("a", "b")
    _wire(a, b)
    pkt = ipv4_udp(ADDR["a"], ADDR["b"], 1, 2, bytes(1000))
    send(a, pkt, dst=b)
    assert b.q.take_all() == [pkt]
    a.t.set_mtu(800)
    send(a, pkt)
    icmp = a.q.take()
    assert icmp[20] == 3 and struct.unpack_from("!H", icmp, 26)[0] == 800


def test_mirrored_routes_are_added_and_removed_incrementally(hosts):
    a, b, c = hosts("a", "b", "c")
    a.start([b.spec(extra=["192.0.2.0/24"]), c.spec(extra=["192.0.2.0/24"])])
    b.start([a.spec()])
    route = RouteSpec(NET("192.0.2.0/25"), ((ipaddress.ip_address(ADDR["b"]), 1),))
    assert a.t.set_route(route)
    assert not a.t.set_route(RouteSpec(NET("192.0.2.0/24"), route.via))  # b's own prefix: configured wins
    assert not a.t.set_route(RouteSpec(NET("203.0.113.0/24"), ((ipaddress.ip_address("198.18.7.7"), 1),)))
    pkt = ipv4_udp(ADDR["a"], "192.0.2.9", 1, 2, b"m")
    send(a, pkt, dst=b)
    assert b.q.take_all() == [pkt]
    table = a.t.table
    assert a.t.remove_route(NET("192.0.2.0/25")) and a.t.table is table  # in place, not rebuilt
    assert not a.t.remove_route(NET("192.0.2.0/25"))
    a.t.reconfigure([p.spec for p in a.t.peers])  # mirrored routes survive a reload
    assert a.t.set_route(route) and NET("192.0.2.0/25") in a.t.extra_routes


def test_packets_of_one_read_are_coalesced_into_a_super_packet(hosts):
    a, b = hosts("a", "b", vnet=True)
    _wire(a, b)
    seg = [ipv4_tcp(ADDR["a"], ADDR["b"], 40000, 5201, bytes([i]) * 1000, seq=1000 + 1000 * i, flags=0x10)
           for i in range(4)]
    send(a, *seg, dst=b)
    out = b.q.take_all()
    assert len(out) == 1 and b.t.io.stats.writes == 1 and b.t.io.stats.super_writes == 1  # one write, four segments
    flags, gso_type, hdr_len, gso_size, cstart, coff = VNET.unpack_from(out[0])
    assert (gso_type, gso_size, cstart, coff) == (1, 1000, 20, 16)
    assert out[0][10 + 40 :] == b"".join(bytes([i]) * 1000 for i in range(4))
    assert b.t.peers[0].rx_packets == 4


def test_insecure_super_packet_is_written_back_with_gso_metadata(hosts):
    from tunkit.packet.ip import pseudo_header_sum, transport_checksum_ok

    a, b = hosts("a", "b", vnet=True)
    _wire(a, b, insecure=True)
    payload = bytes(range(250)) * 20  # 5,000 bytes: more than the 1,300-byte MTU
    sp = ipv4_tcp(ADDR["a"], ADDR["b"], 40000, 5201, payload, flags=0x10)
    assert transport_checksum_ok(sp)
    partial = bytearray(sp)  # as the kernel hands it over: the pseudo-header sum in the checksum field
    struct.pack_into("!H", partial, 36, pseudo_header_sum(sp[12:16], sp[16:20], 6, len(sp) - 20))
    send(a, bytes(partial), vnet=VNET.pack(1, 1, 40, 1000, 20, 16))
    pump((b.sock, b.t.on_udp_readable))
    out = b.q.take()
    flags, gso_type, hdr_len, gso_size, cstart, coff = VNET.unpack_from(out)
    assert (flags, gso_type, hdr_len, gso_size, cstart, coff) == (1, 1, 40, 1300 - 40, 20, 16)
    assert out[10:] == bytes(partial)  # on the wire it was complete; written back partial, with GSO


def _partial_tcp_super_packet(payload: bytes, src=ADDR["a"], dst=ADDR["b"]):
    """A TCP super-packet as the kernel hands it over (pseudo-header sum in the field), the full one, its header."""
    from tunkit.packet.ip import pseudo_header_sum

    full = ipv4_tcp(src, dst, 40000, 5201, payload, flags=0x10)
    partial = bytearray(full)
    struct.pack_into("!H", partial, 36, pseudo_header_sum(full[12:16], full[16:20], 6, len(full) - 20))
    return bytes(partial), full, VNET.pack(1, 1, 40, 1000, 20, 16)


@pytest.mark.parametrize("partial_checksums", [False, True])
def test_insecure_partial_checksums_leave_super_packets_unfinished_on_the_wire(hosts, partial_checksums):
    a, b = hosts("a", "b", vnet=True)
    _wire(a, b, insecure=True, partial_checksums=partial_checksums)
    partial, full, vh = _partial_tcp_super_packet(bytes(range(250)) * 20)
    sniff = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sniff.bind(("127.0.0.1", 0))
    try:
        real = a.t.peers[0].addr
        a.t.peers[0].addr = sniff.getsockname()
        send(a, partial, vnet=vh)
        sniff.settimeout(2)
        wire = sniff.recv(70000)
        # default: finished, as a foo-over-UDP receiver needs; partial_checksums: left as the kernel gave it
        assert wire == (partial if partial_checksums else full)
        a.t.peers[0].addr = real
        send(a, partial, vnet=vh, dst=b)
        out = b.q.take()  # either way the tunkit receiver writes it back whole, with GSO metadata
        assert VNET.unpack_from(out) == (1, 1, 40, 1300 - 40, 20, 16) and out[10:] == partial
    finally:
        sniff.close()
    assert a.t.status()["partial_checksums"] is partial_checksums


@pytest.mark.parametrize("partial_checksums", [False, True])
def test_insecure_super_packet_into_a_plain_tun_is_split_with_real_checksums(hosts, partial_checksums):
    from tunkit.packet.ip import transport_checksum_ok

    (a,) = hosts("a", vnet=True)
    (b,) = hosts("b", vnet=False)
    _wire(a, b, insecure=True, partial_checksums=partial_checksums)
    payload = bytes(range(250)) * 20
    partial, _full, vh = _partial_tcp_super_packet(payload)
    send(a, partial, vnet=vh, dst=b)
    segs = b.q.take_all()
    assert [len(p) for p in segs] == [1300] * 3 + [5040 - 3 * 1260]  # cut at the receiver's MTU
    assert all(transport_checksum_ok(p) for p in segs) and b"".join(p[40:] for p in segs) == payload
    assert b.t.drops == {}


def test_insecure_udp_super_packet_keeps_its_datagram_boundaries(hosts):
    """Raw IP cannot carry gso_size: the sender splits a USO super-packet into its datagrams."""
    from tunkit.packet.ip import pseudo_header_sum, transport_checksum_ok

    a, b = hosts("a", "b", vnet=True)
    _wire(a, b, insecure=True, partial_checksums=True)
    payload = bytes(range(200)) * 9  # 1,800 bytes in datagrams of 700: 700, 700, 400
    sp = bytearray(ipv4_udp(ADDR["a"], ADDR["b"], 7000, 7001, payload, ident=9, df=True))
    struct.pack_into("!H", sp, 26, pseudo_header_sum(sp[12:16], sp[16:20], 17, len(sp) - 20))
    send(a, bytes(sp), vnet=VNET.pack(1, 5, 28, 700, 20, 6), dst=b)
    out = [x[10:] for x in b.q.take_all()]
    assert [len(x) - 28 for x in out] == [700, 700, 400]
    assert all(transport_checksum_ok(x) for x in out) and b"".join(x[28:] for x in out) == payload
    # one big datagram that arrives whole (a foo-over-UDP sender's) stays one datagram
    big = ipv4_udp(ADDR["a"], ADDR["b"], 7000, 7001, bytes(3000), ident=10, df=False)
    send(a, big, dst=b)
    assert b.q.take_all() == [bytes(10) + big]
    # a big IPv4 fragment of TCP (MF set) is not a super-packet: written as it came
    frag = bytearray(ipv4_tcp(ADDR["a"], ADDR["b"], 40000, 5201, bytes(3000), flags=0x10))
    frag[6] = 0x20  # MF, offset 0
    send(a, bytes(frag), dst=b)
    assert b.q.take_all() == [bytes(10) + bytes(frag)]


def test_partial_checksums_is_an_insecure_mode_setting(hosts):
    a, b = hosts("a", "b")
    with pytest.raises(ConfigError, match="partial_checksums"):
        a.start([b.spec()], partial_checksums=True)


def test_datagrams_with_partial_checksums_are_merged(hosts):
    from tunkit.packet.ip import pseudo_header_sum, transport_checksum_ok

    a, b = hosts("a", "b", vnet=True)
    _wire(a, b, uso=True)
    dgrams = [ipv4_udp(ADDR["a"], ADDR["b"], 7000, 7001, bytes([i]) * 200, ident=i, df=True) for i in range(6)]
    for d in dgrams:  # as an application's UDP socket hands them to the TUN: CHECKSUM_PARTIAL
        p = bytearray(d)
        struct.pack_into("!H", p, 26, pseudo_header_sum(d[12:16], d[16:20], 17, len(d) - 20))
        a.q.inject(bytes(p), VNET.pack(1, 0, 0, 0, 20, 6))
    a.t.on_tun_readable()
    pump((b.sock, b.t.on_udp_readable))
    out = b.q.take_all()
    assert len(out) == 1 and b.t.peers[0].rx_packets == 6  # one USO super-packet for six datagrams
    flags, gso_type, _, gso_size, cstart, coff = VNET.unpack_from(out[0])
    assert (flags, gso_type, gso_size, cstart, coff) == (1, 5, 200, 20, 6)
    assert out[0][10 + 28 :] == b"".join(bytes([i]) * 200 for i in range(6))
    segments = split_read(out[0])  # what the kernel will send: the six datagrams, checksums finished
    assert [bytes(x[28:]) for x in segments] == [bytes([i]) * 200 for i in range(6)]
    assert all(transport_checksum_ok(x) for x in segments)


def test_authenticated_partial_checksum_packets_are_trusted_not_finished(hosts):
    """The MAC vouches for them: a lone one is written under its own NEEDS_CSUM header, unchanged."""
    from tunkit.packet.ip import pseudo_header_sum

    a, b = hosts("a", "b", vnet=True)
    _wire(a, b, uso=True)
    d = ipv4_udp(ADDR["a"], ADDR["b"], 7000, 7001, b"lonely datagram", ident=3, df=True)
    ack = ipv4_tcp(ADDR["a"], ADDR["b"], 40000, 5201, b"", flags=0x10)  # a pure ACK: never merged
    sent = []
    for pkt, field in ((d, 26), (ack, 36)):
        p = bytearray(pkt)
        struct.pack_into("!H", p, field, pseudo_header_sum(pkt[12:16], pkt[16:20], pkt[9], len(pkt) - 20))
        vh = VNET.pack(1, 0, 0, 0, 20, field - 20)
        a.q.inject(bytes(p), vh)
        sent.append(vh + bytes(p))
    a.t.on_tun_readable()
    pump((b.sock, b.t.on_udp_readable))
    assert sorted(b.q.take_all()) == sorted(sent)  # same header, same bytes: nothing finished in Python
    assert b.t.peers[0].rx_packets == 2 and not b.t.drops


def test_specs_from_an_example_config_build_a_tunnel(hosts):
    import pathlib

    from tunkit.app.config import load
    from tunkit.overlay.tunnel import specs_from_config

    cfg = load(str(pathlib.Path(__file__).resolve().parent.parent / "examples" / "ecmp" / "gateway.toml"))
    peers, routes = specs_from_config(cfg)
    assert [p.name for p in peers] == ["gw1", "gw2"] and all(p.key is None for p in peers)  # insecure
    assert routes == [RouteSpec(NET("192.0.2.0/24"), ((ipaddress.ip_address("198.18.1.11"), 2),
                                                      (ipaddress.ip_address("198.18.1.12"), 1)))]
    (a,) = hosts("a")
    t = a.start(peers, routes, insecure=cfg.insecure)
    assert t.table.lookup(ipaddress.ip_address("192.0.2.1").packed).bounds == (1431655764, 2147483647)


# (name, peers, routes, v6 socket): sets the tunnel refuses; the node's pre-check must refuse them too
_N = ipaddress.ip_network
_K = bytes(32)
REFUSED_SETS = [
    ("no key", [PeerSpec("p", ("198.51.100.2", 1), (_N("198.18.0.2/32"),))], [], False),
    ("same endpoint spelled twice",
     [PeerSpec("p", ("2001:db8::1", 1), (_N("198.18.0.2/32"),), _K),
      PeerSpec("q", ("2001:DB8::1", 1), (_N("198.18.0.3/32"),), _K)], [], True),
    ("IPv6 endpoint on an IPv4 socket", [PeerSpec("p", ("2001:db8::1", 1), (_N("198.18.0.2/32"),), _K)], [], False),
    ("gateway outside every peer",
     [PeerSpec("p", ("198.51.100.2", 1), (_N("198.18.0.2/32"),), _K)],
     [RouteSpec(_N("192.0.2.0/24"), ((ipaddress.ip_address("198.18.0.9"), 1),))], False),
    ("one peer twice as gateway",
     [PeerSpec("p", ("198.51.100.2", 1), (_N("198.18.0.0/29"),), _K)],
     [RouteSpec(_N("192.0.2.0/24"), ((ipaddress.ip_address("198.18.0.2"), 1), (ipaddress.ip_address("198.18.0.3"), 1)))],
     False),
    ("weight zero",
     [PeerSpec("p", ("198.51.100.2", 1), (_N("198.18.0.2/32"),), _K)],
     [RouteSpec(_N("192.0.2.0/24"), ((ipaddress.ip_address("198.18.0.2"), 0),))], False),
]


@pytest.mark.parametrize("name,peers,routes,v6", REFUSED_SETS, ids=[c[0] for c in REFUSED_SETS])
def test_pre_check_refuses_what_the_tunnel_refuses(name, peers, routes, v6):
    from tunkit.overlay.tunnel import check_config

    with pytest.raises(ConfigError):
        check_config(peers, routes, v6sock=v6)
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    with socket.socket(fam, socket.SOCK_DGRAM) as sock, socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as q:
        with pytest.raises(ConfigError):
            Tunnel(q, sock, peers, routes)


# -- replay after a reload (issue 14 item 4) ------------------------------------------------------
def _capture(src: Host, dst: Host, pkt: bytes) -> bytes:
    """``src`` seals and sends ``pkt``; the datagram is taken off ``dst``'s socket before its tunnel sees it."""
    import select

    send(src, pkt)
    r, _, _ = select.select([dst.sock], [], [], 2.0)
    assert r, "no datagram"
    return dst.sock.recv(70000)


@pytest.mark.parametrize("reload", ["rename", "remove_and_readd", "new_endpoint", "remove_readd_after_window"])
def test_captured_datagrams_do_not_replay_after_a_reload(hosts, reload):
    import dataclasses
    import time

    a, b = hosts("a", "b")
    _wire(a, b)
    first = ipv4_udp(ADDR["a"], ADDR["b"], 1, 2, b"first")
    captured = _capture(a, b, first)
    a.sock.sendto(captured, (b.host, b.port))
    pump((b.sock, b.t.on_udp_readable))
    assert b.q.take_all() == [first]  # delivered once
    spec, sender_sock, extra = a.spec(), a.sock, None
    if reload == "rename":
        b.t.reconfigure([dataclasses.replace(spec, name="a-renamed")])
    elif reload.startswith("remove"):
        b.t.reconfigure([])
        if reload.endswith("window"):  # the removed peer's state is gone: the reload floor must protect
            b.t._retired.clear()
        b.t.reconfigure([spec])
    else:  # the peer moved: its datagrams now come from another port
        extra = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        extra.bind(("127.0.0.1", 0))
        sender_sock = extra
        b.t.reconfigure([dataclasses.replace(spec, endpoint=("127.0.0.1", extra.getsockname()[1]))])
    try:
        sender_sock.sendto(captured, (b.host, b.port))
        pump((b.sock, b.t.on_udp_readable))
        assert b.q.take_all() == []  # the replay is refused
        assert b.t.drops.get("replay", 0) + b.t.drops.get("stale", 0) == 1, b.t.drops
        time.sleep(0.002)  # past the reload's millisecond: fresh traffic is stamped after it
        fresh = ipv4_udp(ADDR["a"], ADDR["b"], 1, 2, b"fresh")
        sender_sock.sendto(_capture(a, b, fresh), (b.host, b.port))
        pump((b.sock, b.t.on_udp_readable))
        assert b.q.take_all() == [fresh]  # and the peer's new traffic flows
    finally:
        if extra is not None:
            extra.close()


# -- options (issue 11: one validated options object) ---------------------------------------------
@pytest.mark.parametrize("kw,match", [
    (dict(mtu=20), "mtu = 20: want 68..65535"),
    (dict(batch=0), "batch = 0: want 1..1024"),
    (dict(underlay_mtu=100), "underlay_mtu = 100"),
    (dict(session=2**32), "session"),
    (dict(max_age_ms=0), "max_age_ms = 0"),
    (dict(insecure="yes"), "insecure = 'yes': want true or false"),
    (dict(addresses=["not an address"]), "addresses"),
    (dict(partial_checksums=True), "insecure-mode setting"),
])
def test_tunnel_options_are_validated_once_with_the_value_and_its_range(kw, match):
    with pytest.raises(ConfigError, match=match):
        TunnelOptions(**kw)


def test_tunnel_options_round_trip_through_json():
    from tunkit.routing.trie import PrefixTable

    o = TunnelOptions(insecure=True, mtu=1400, addresses=["198.18.0.1", "2001:db8::1"], session=7, start_counter=9,
                      partial_checksums=True, table_factory=PrefixTable, vnet_hdr=True, uso=True)
    back = TunnelOptions.from_json(__import__("json").loads(__import__("json").dumps(o.to_json())))
    assert back == o and back.table_factory is PrefixTable
    with pytest.raises(ConfigError, match="unknown bogus"):
        TunnelOptions.from_json({**o.to_json(), "bogus": 1})


def test_an_expired_train_is_counted_in_the_status(hosts):
    import time

    a, b = hosts("a", "b")
    clock = [time.time_ns()]
    _wire(a, b, clock_ns=lambda: clock[0])
    big = ipv4_udp(ADDR["a"], ADDR["b"], 1, 2, bytes(5000), df=False)
    send(a, big)
    import select

    first = None
    while select.select([b.sock], [], [], 0.5)[0]:  # keep the train's first datagram only
        d = b.sock.recv(70000)
        first = first or d
    a.sock.sendto(first, (b.host, b.port))
    pump((b.sock, b.t.on_udp_readable))
    clock[0] += 2 * 10**9  # past the train's time to live
    send(a, big, dst=b)  # the next train finds the old one expired
    assert b.q.take_all() == [big]
    st = b.t.status()
    assert st["drops"]["frag_expired"] == 1 and st["peers"][0]["drops"]["frag_expired"] == 1
