"""Two WireGuard engines over an in-memory link with a fake clock: handshakes, transport, attacks.

:class:`Link` is also used by test_wireguard_timers.py.
"""

from __future__ import annotations

import random
import struct

import pytest

from tunkit.crypto import LibCrypto, public_key
from tunkit.wireguard import DROP_REASONS, Engine
from tunkit.wireguard import messages as m

CRYPTO = LibCrypto()
ADDR_A = ("192.0.2.1", 51820)
ADDR_B = ("192.0.2.2", 51820)
A4, B4, A6, B6 = "198.18.0.1", "198.18.0.2", "2001:db8:1::1", "2001:db8:1::2"
KEY_A = bytes.fromhex("a8" + "11" * 30 + "51")  # fixed, already clamped private keys
KEY_B = bytes.fromhex("b0" + "22" * 30 + "62")
KEY_C = bytes.fromhex("c0" + "33" * 30 + "73")


def ip4(src: str, dst: str, payload: bytes = b"hello", proto: int = 17) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 0, 0, 64, proto, 0,
                    bytes(map(int, src.split("."))), bytes(map(int, dst.split("."))))
    return h + payload


def ip6(src: str, dst: str, payload: bytes = b"hello6") -> bytes:
    import ipaddress

    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), 17, 64, ipaddress.ip_address(src).packed,
                       ipaddress.ip_address(dst).packed) + payload


class Link:
    """Engines ``a`` and ``b`` joined by a lossless (unless told) in-memory underlay."""

    def __init__(self, seed: int = 1, *, psk: bytes | None = None, a_kw=None, b_kw=None, now: float = 1000.0):
        self.now = now
        self.a = Engine(KEY_A, CRYPTO, wall_offset=1.7e9, random=random.Random(seed).randbytes)
        self.b = Engine(KEY_B, CRYPTO, wall_offset=1.7e9, random=random.Random(seed + 1000).randbytes)
        self.pa = self.a.add_peer(public_key(KEY_B), preshared_key=psk, allowed_ips=[f"{B4}/32", f"{B6}/128"],
                                  **{"endpoint": ADDR_B, **(a_kw or {})})
        self.pb = self.b.add_peer(public_key(KEY_A), preshared_key=psk, allowed_ips=[f"{A4}/32", f"{A6}/128"],
                                  **{"endpoint": ADDR_A, **(b_kw or {})})
        self.addr = {self.a: ADDR_A, self.b: ADDR_B}
        self.got = {self.a: [], self.b: []}   # delivered inner packets
        self.wire: list = []                  # (sender, datagram) in flight order
        self.cut: set = set()                 # engines whose outgoing datagrams are lost
        self.filter = None                    # callable(sender, datagram) -> keep?
        self.misrouted = 0

    def other(self, eng):
        return self.b if eng is self.a else self.a

    def deliver(self, sender, datagram, dest=None) -> None:
        self.wire.append((sender, bytes(datagram)))
        if sender in self.cut or (self.filter is not None and not self.filter(sender, bytes(datagram))):
            return
        receiver = self.other(sender)
        if dest is not None and dest != self.addr[receiver]:
            self.misrouted += 1
            return
        pkt = receiver.receive(bytearray(datagram), self.addr[sender], self.now)
        if pkt is not None:
            self.got[receiver].append(bytes(pkt))

    def pump(self, rounds: int = 100) -> None:
        for _ in range(rounds):
            moved = False
            for eng in (self.a, self.b):
                for datagram, dest in eng.pop_datagrams():
                    moved = True
                    self.deliver(eng, datagram, dest)
            if not moved:
                return
        raise AssertionError("the engines kept talking for 100 rounds")

    def send(self, eng, pkt: bytes) -> None:
        out = eng.send(pkt, self.now)
        if out is not None:
            self.deliver(eng, *out)
        self.pump()

    def advance(self, seconds: float) -> None:
        """Move the clock, firing every timer at its own deadline on the way."""
        end = self.now + seconds
        for _ in range(100000):
            deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
            step = min([end, *deadlines])
            self.now = max(self.now, step)
            self.a.tick(self.now)
            self.b.tick(self.now)
            self.pump()
            if self.now >= end and not any(d is not None and d <= end for d in
                                           (self.a.next_deadline(), self.b.next_deadline())):
                return
        raise AssertionError("timers kept firing")

    def handshake(self, initiator=None) -> None:
        initiator = initiator or self.a
        assert initiator.initiate(initiator.peers[public_key(KEY_B if initiator is self.a else KEY_A)], self.now)
        self.pump()

    def drops(self, eng) -> dict:
        return {k: v for k, v in eng.drops.items() if v}


def kinds(eng) -> list[str]:
    return [e.kind for e in eng.events]


# ------------------------------------------------------------------ handshakes and transport

@pytest.mark.parametrize("first", ["a", "b"])
def test_handshake_either_side_initiating_then_data_both_ways(first):
    link = Link()
    x = getattr(link, first)
    y = link.other(x)
    src, dst = (A4, B4) if x is link.a else (B4, A4)
    link.send(x, ip4(src, dst, b"first"))  # staged, a handshake goes out, then the staged packet
    assert link.got[y] == [ip4(src, dst, b"first")]
    px, py = x.peers[y.public_key], y.peers[x.public_key]
    assert px.current.initiator and not py.current.initiator
    assert py.next is None  # confirmed by the first transport message
    assert kinds(x) == ["handshake_complete"] and kinds(y) == ["handshake_complete"]
    link.send(y, ip4(dst, src, b"answer"))
    assert link.got[x] == [ip4(dst, src, b"answer")]
    assert link.drops(link.a) == {} and link.drops(link.b) == {}
    assert px.last_handshake == py.last_handshake == pytest.approx(1000 + 1.7e9)


def test_keepalive_after_the_response_confirms_the_responders_session():
    link = Link()
    link.handshake()
    assert link.pb.next is None and link.pb.current is not None
    sizes = [len(d) for s, d in link.wire if s is link.a]
    assert sizes == [148, 32]  # initiation, then the keepalive
    assert link.got[link.b] == []  # a keepalive delivers nothing


def test_responder_never_sends_on_an_unconfirmed_session():
    link = Link()
    link.filter = lambda s, d: not (s is link.a and d[0] == m.MSG_TRANSPORT)  # the keepalive is lost
    link.handshake()
    assert link.pb.next is not None and link.pb.current is None
    assert link.b.send(ip4(B4, A4), link.now) is None  # staged, not sealed on "next"
    assert not any(d[0] == m.MSG_TRANSPORT for s, d in link.wire if s is link.b)
    link.filter = None
    link.send(link.a, ip4(A4, B4, b"confirm"))  # the initiator's data confirms it; b flushes its staged packet
    assert link.pb.next is None and link.got[link.a] == [ip4(B4, A4)]


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100, 1379, 1380, 1400, 1420])
def test_transport_pads_to_16_and_the_receiver_trims_to_the_ip_length(size):
    link = Link()
    link.handshake()
    for pkt in (ip4(A4, B4, bytes(range(256)) * 6)[:20 + size] if size else ip4(A4, B4, b""),
                ip6(A6, B6, (b"v6" * 800)[:max(0, size - 20)])):
        pkt = bytearray(pkt)
        if pkt[0] >> 4 == 4:
            struct.pack_into("!H", pkt, 2, len(pkt))
        out, dest = link.a.send(bytes(pkt), link.now)
        assert dest == ADDR_B
        padded = min((len(pkt) + 15) & ~15, max(1420, len(pkt)))
        assert len(out) == 32 + padded
        got = link.b.receive(out, ADDR_A, link.now)
        assert bytes(got) == bytes(pkt)
        assert isinstance(got, memoryview) and got.obj is out  # decrypted in place


def test_seal_into_in_place_and_receive_of_immutable_bytes():
    link = Link()
    link.handshake()
    pkt = ip4(A4, B4, b"x" * 37)
    buf = bytearray(16 + 64 + 16)
    buf[16:16 + len(pkt)] = pkt
    n = link.a.seal_into(link.pa, buf, len(pkt), link.now)
    assert n == 32 + 64
    assert bytes(link.b.receive(bytes(buf[:n]), ADDR_A, link.now)) == pkt
    with pytest.raises(ValueError):
        link.a.seal_into(link.pa, bytearray(40), 20, link.now)
    tight = bytearray(32 + 21)  # no room for padding: sealed unpadded
    tight[16:37] = ip4(A4, B4, b"x")
    assert link.a.seal_into(link.pa, tight, 21, link.now) == 53
    assert bytes(link.b.receive(tight, ADDR_A, link.now)) == ip4(A4, B4, b"x")


def test_a_batch_of_datagrams_sealed_into_one_buffer_and_opened_in_place():
    link = Link()
    link.handshake()
    pkts = [ip4(A4, B4, bytes([i]) * (100 + i)) for i in range(5)]
    seg = 32 + 128  # every packet pads to 128 bytes here
    batch = bytearray(seg * len(pkts))
    for i, p in enumerate(pkts):
        batch[i * seg + 16:i * seg + 16 + len(p)] = p
        assert link.a.seal_into(link.pa, batch, len(p), link.now, offset=i * seg) == seg
    view = memoryview(batch)
    got = [bytes(link.b.receive(view[i * seg:(i + 1) * seg], ADDR_A, link.now)) for i in range(len(pkts))]
    assert got == pkts
    assert link.b.route(ip4(B4, A4)) is link.pb and link.b.route(b"junk") is None


def test_preshared_key_must_match():
    link = Link(psk=b"\x01" * 32)
    link.send(link.a, ip4(A4, B4))
    assert link.got[link.b] == [ip4(A4, B4)]
    bad = Link()
    bad.b.remove_peer(bad.pb)
    bad.pb = bad.b.add_peer(public_key(KEY_A), preshared_key=b"\x02" * 32, allowed_ips=[f"{A4}/32"], endpoint=ADDR_A)
    bad.handshake()
    assert bad.drops(bad.a) == {"handshake_invalid": 1} and bad.pa.current is None


def test_cryptokey_routing_outbound():
    link = Link()
    link.handshake()
    assert link.a.send(ip4(A4, "198.51.100.9"), link.now) is None
    assert link.a.send(b"\x00" * 30, link.now) is None
    assert link.drops(link.a) == {"no_route": 2}
    link.a.set_allowed_ips(link.pa, ["198.51.100.0/24"])
    assert link.a.send(ip4(A4, "198.51.100.9"), link.now) is not None
    assert link.a.send(ip4(A4, B4), link.now) is None  # B4/32 was replaced


def test_an_allowed_ip_moves_between_peers_like_wg():
    link = Link()
    c = link.a.add_peer(public_key(KEY_C), allowed_ips=[f"{B4}/32"])
    assert link.a.allowed.lookup4(B4) is c and f"{B4}/32" not in {str(n) for n in link.pa.allowed_ips}


def test_add_peer_refusals():
    link = Link()
    with pytest.raises(ValueError, match="already exists"):
        link.a.add_peer(public_key(KEY_B))
    with pytest.raises(ValueError, match="own public key"):
        link.a.add_peer(public_key(KEY_A))
    with pytest.raises(ValueError, match="low-order"):
        link.a.add_peer(bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        link.a.add_peer(b"short")


# ------------------------------------------------------------------ attacks: each dropped and counted

def _transfer_still_works(link: Link) -> None:
    before = len(link.got[link.b])
    link.send(link.a, ip4(A4, B4, b"still fine"))
    assert link.got[link.b][before:] == [ip4(A4, B4, b"still fine")]


def test_replayed_initiation_is_dropped():
    link = Link()
    link.handshake()
    initiation = next(d for s, d in link.wire if s is link.a and len(d) == 148)
    link.b.receive(initiation, ADDR_A, link.now + 1)
    assert link.drops(link.b) == {"replayed_initiation": 1}
    assert link.b.pop_datagrams() == []  # no response to a replay
    _transfer_still_works(link)


def test_initiation_flood_is_limited_per_peer():
    link = Link()
    link.cut.add(link.b)
    assert link.a.initiate(link.pa, link.now)
    link.pump()
    link.now += 0.018  # a fresh, valid initiation 18 ms later (a newer TAI64N: its unit is ~16.8 ms)
    assert link.a.initiate(link.pa, link.now, force=True)
    link.pump()
    assert link.drops(link.b) == {"initiation_flood": 1}
    link.now += 0.05
    link.a.initiate(link.pa, link.now, force=True)
    link.pump()
    assert link.drops(link.b) == {"initiation_flood": 1}  # 50 ms later is fine
    link.now += 1
    link.a.wall_offset -= 5  # a's wall clock stepped back: its timestamp is older than the last one b took
    link.a.initiate(link.pa, link.now, force=True)
    link.pump()
    assert link.drops(link.b) == {"initiation_flood": 1, "replayed_initiation": 1}


def test_replayed_and_too_old_transport_messages_are_dropped():
    link = Link()
    link.handshake()
    first, _ = link.a.send(ip4(A4, B4, b"once"), link.now)
    saved = bytes(first)
    assert link.b.receive(bytearray(saved), ADDR_A, link.now) is not None
    assert link.b.receive(bytearray(saved), ADDR_A, link.now) is None
    assert link.drops(link.b) == {"replayed_transport": 1}
    late, _ = link.a.send(ip4(A4, B4, b"late"), link.now)
    late = bytes(late)
    for _ in range(2100):  # move the window far ahead
        out, _ = link.a.send(ip4(A4, B4), link.now)
        link.b.receive(out, ADDR_A, link.now)
    assert link.b.receive(bytearray(late), ADDR_A, link.now) is None
    assert link.drops(link.b) == {"replayed_transport": 2}


def test_tampered_ciphertext_is_dropped_and_does_not_move_the_window():
    link = Link()
    link.handshake()
    out, _ = link.a.send(ip4(A4, B4, b"payload"), link.now)
    good = bytes(out)
    for i in (0 + 8, 16, 30, len(good) - 1):  # counter, ciphertext, tag
        bad = bytearray(good)
        bad[i] ^= 0x40
        assert link.b.receive(bad, ADDR_A, link.now) is None
    assert link.drops(link.b) == {"decrypt": 4}
    assert bytes(link.b.receive(bytearray(good), ADDR_A, link.now)) == ip4(A4, B4, b"payload")
    _transfer_still_works(link)


def test_wrong_static_key_is_dropped():
    link = Link()
    stranger = Engine(KEY_C, CRYPTO, wall_offset=0, random=random.Random(5).randbytes)
    p = stranger.add_peer(link.b.public_key, endpoint=ADDR_B)
    stranger.initiate(p, link.now)
    (init, _), = stranger.pop_datagrams()
    assert link.b.receive(init, ("192.0.2.99", 1), link.now) is None
    assert link.drops(link.b) == {"unknown_peer": 1} and link.b.pop_datagrams() == []
    # an initiation meant for another responder fails mac1 before any DH
    q = stranger.add_peer(public_key(KEY_A), endpoint=ADDR_A)
    stranger.initiate(q, link.now)
    (init, _), = stranger.pop_datagrams()
    link.b.receive(init, ("192.0.2.99", 1), link.now)
    assert link.drops(link.b) == {"unknown_peer": 1, "mac1": 1}
    assert link.pb.endpoint == ADDR_A  # nothing unauthenticated moved the endpoint
    _transfer_still_works(link)


def test_unknown_receiver_index_is_dropped():
    link = Link()
    link.handshake()
    out, _ = link.a.send(ip4(A4, B4), link.now)
    struct.pack_into("<I", out, 4, (link.pb.current.local_index + 1) & 0xFFFFFFFF)
    assert link.b.receive(out, ADDR_A, link.now) is None
    cookie = m.encode_cookie_reply(m.CookieReply(12345, bytes(24), bytes(32)))
    link.b.receive(cookie, ADDR_A, link.now)
    assert link.drops(link.b) == {"unknown_receiver": 2}
    _transfer_still_works(link)


def test_inner_source_outside_allowed_ips_is_dropped():
    link = Link()
    link.handshake()
    for pkt in (ip4("198.51.100.7", B4), ip6("2001:db8:99::1", B6), ip4(B4, B4)):
        out, _ = link.a.seal(link.pa, pkt, link.now)
        assert link.b.receive(out, ADDR_A, link.now) is None
    assert link.drops(link.b) == {"disallowed_source": 3}
    _transfer_still_works(link)


def test_bad_inner_packets_are_dropped():
    link = Link()
    link.handshake()
    too_long = bytearray(ip4(A4, B4, b"abc"))
    struct.pack_into("!H", too_long, 2, 400)
    short_ihl = bytearray(ip4(A4, B4, b"abc"))
    struct.pack_into("!H", short_ihl, 2, 12)
    for pkt in (b"\x00" * 40, b"\x45" * 10, bytes(too_long), bytes(short_ihl), b"\x60" + bytes(20)):
        out, _ = link.a.seal(link.pa, pkt, link.now)
        assert link.b.receive(out, ADDR_A, link.now) is None
    assert link.drops(link.b) == {"bad_inner_packet": 5}


def _real_messages(link: Link) -> list[bytes]:
    link.handshake()
    out, _ = link.a.send(ip4(A4, B4, b"x" * 100), link.now)
    cookie = m.encode_cookie_reply(m.CookieReply(link.pb.current.local_index, bytes(24), bytes(32)))
    return [d for _, d in link.wire] + [bytes(out), bytes(cookie)]


@pytest.mark.parametrize("under_load", [False, True])
def test_garbage_and_truncated_datagrams_are_dropped_and_counted(under_load):
    link = Link()
    real = _real_messages(link)
    link.b.under_load = under_load
    rng = random.Random(12)
    sent = 0
    before = dict(link.b.drops)
    for i in range(3000):
        kind = i % 4
        if kind == 0:
            d = rng.randbytes(rng.randrange(0, 200))
        elif kind == 1:  # a valid type word, random rest, any length
            d = bytes([rng.randrange(1, 5), 0, 0, 0]) + rng.randbytes(rng.choice([0, 12, 28, 44, 60, 88, 144, 200]))
        elif kind == 2:  # a real message cut short
            r = rng.choice(real)
            d = r[:rng.randrange(0, len(r))]
        else:  # a real message with one byte changed
            r = bytearray(rng.choice(real))
            r[rng.randrange(len(r))] ^= 1 << rng.randrange(8)
            d = bytes(r)
        for buf in (d, bytearray(d), memoryview(bytearray(d))):
            assert link.b.receive(buf, ("192.0.2.66", 4000 + i), link.now) is None
            sent += 1
    counted = sum(link.b.drops.values()) - sum(before.values())
    assert counted == sent  # every one of them, by reason
    assert set(link.drops(link.b)) <= {"malformed", "mac1", "unknown_receiver", "decrypt", "replayed_transport",
                                       "cookie_invalid", "expired_session", "handshake_invalid",
                                       "replayed_initiation",  # a real initiation with mac2 changed
                                       "cookie_sent"}  # ... under load
    assert len(link.b._outbox) <= 3000 and len(link.b.limiter) == 0
    assert link.pb.endpoint == ADDR_A and len(link.b._index) <= 3
    _transfer_still_works(link)


def test_drop_reasons_are_all_named_counters():
    assert set(Engine(KEY_A, CRYPTO, wall_offset=0).drops) == set(DROP_REASONS)


# ------------------------------------------------------------------ roaming

def test_endpoint_follows_the_last_authenticated_packet():
    link = Link()
    link.handshake()
    moved = ("198.51.100.20", 40000)
    link.addr[link.b] = moved
    link.send(link.b, ip4(B4, A4, b"from a new place"))
    assert link.pa.endpoint == moved and ("endpoint_changed", moved) in [(e.kind, e.detail) for e in link.a.events]
    out, dest = link.a.send(ip4(A4, B4), link.now)
    assert dest == moved
    # a forged datagram from elsewhere does not move it
    forged = bytearray(out)
    forged[-1] ^= 1
    link.a.receive(forged, ("192.0.2.200", 1), link.now)
    assert link.pa.endpoint == moved
    assert link.misrouted == 0


def test_a_peer_without_endpoint_is_reached_after_it_initiates():
    link = Link(b_kw={"endpoint": None})
    link.b.set_endpoint(link.pb, None)
    assert link.b.send(ip4(B4, A4, b"waiting"), link.now) is None
    assert link.b.pop_datagrams() == []  # nowhere to send the initiation
    link.send(link.a, ip4(A4, B4, b"hello"))
    assert link.pb.endpoint == ADDR_A and link.got[link.a] == [ip4(B4, A4, b"waiting")]


# ------------------------------------------------------------------ cookies under load

def test_under_load_a_handshake_needs_a_cookie_first():
    link = Link()
    link.b.under_load = True
    assert link.a.initiate(link.pa, link.now)
    link.pump()
    assert link.drops(link.b) == {"cookie_sent": 1}
    assert [len(d) for s, d in link.wire] == [148, 64]
    assert "cookie" in kinds(link.a) and link.pa.current is None
    link.advance(5.4)  # the retransmission carries mac2 and is accepted
    assert link.pa.current is not None and link.drops(link.b) == {"cookie_sent": 1}
    init2 = [d for s, d in link.wire if s is link.a and len(d) == 148][-1]
    assert init2[-16:] != bytes(16)  # mac2 present
    _transfer_still_works(link)


def test_under_load_a_cookie_is_bound_to_the_source_address():
    link = Link()
    link.b.under_load = True
    link.a.initiate(link.pa, link.now)
    link.pump()
    link.addr[link.a] = ("192.0.2.77", 1234)  # the cookie was for the old address
    link.advance(5.4)
    assert link.drops(link.b)["cookie_sent"] == 2 and link.pa.current is None


def test_under_load_handshakes_are_rate_limited_per_source():
    link = Link()
    link.b.under_load = True
    link.a.initiate(link.pa, link.now)
    link.pump()  # a now holds a cookie
    link.cut.add(link.b)
    for i in range(20):
        link.now += 0.021  # just past the per-peer flood limit
        link.a.initiate(link.pa, link.now, force=True)
        link.pump()
    d = link.drops(link.b)
    accepted = 20 - d["rate_limited"]
    assert d.get("initiation_flood", 0) == 0 and d.get("cookie_sent") == 1
    assert 5 <= accepted <= 5 + 20 * 20 * 0.021 + 1  # burst 5, then 20 per second
    assert len(link.b.limiter) == 1


def test_cookie_secret_rotates_after_120_seconds():
    link = Link()
    link.b.under_load = True
    link.a.initiate(link.pa, link.now)
    link.pump()
    first_secret = link.b.checker._secret
    link.now += 121
    link.a.initiate(link.pa, link.now)  # the cookie a holds is too old to use; b's secret is too
    link.pump()
    assert link.drops(link.b)["cookie_sent"] == 2 and link.b.checker._secret != first_secret


def test_a_cookie_reply_is_taken_once_and_only_for_what_was_sent():
    link = Link()
    link.b.under_load = True
    link.a.initiate(link.pa, link.now)
    link.pump()
    reply = next(d for s, d in link.wire if s is link.b and len(d) == 64)
    link.a.receive(reply, ADDR_B, link.now)  # a replay of the reply it already took
    forged = bytearray(reply)
    forged[20] ^= 1
    link.a.receive(forged, ADDR_B, link.now)
    assert link.drops(link.a) == {"cookie_invalid": 2}


# ------------------------------------------------------------------ live changes (reload)

def test_changing_the_preshared_key_keeps_sessions_and_applies_to_the_next_handshake():
    link = Link()
    link.handshake()
    session = link.pa.current
    link.a.set_preshared_key(link.pa, b"\x03" * 32)
    _transfer_still_works(link)
    assert link.pa.current is session
    link.now += 6
    link.a.initiate(link.pa, link.now)
    link.pump()
    assert link.drops(link.a) == {"handshake_invalid": 1}  # the PSK is mixed in at the response
    link.b.set_preshared_key(link.pb, b"\x03" * 32)
    link.now += 6
    link.a.initiate(link.pa, link.now)
    link.pump()
    assert link.pa.current is not session and link.pa.current.initiator


def test_changing_the_private_key_drops_sessions_and_peers_must_learn_the_new_key():
    link = Link()
    link.handshake()
    with pytest.raises(ValueError):
        link.a.set_private_key(b"short")
    with pytest.raises(ValueError, match="peers"):
        link.a.set_private_key(KEY_B)
    assert link.a.public_key == public_key(KEY_A)  # nothing half-applied
    link.a.set_private_key(KEY_C)
    assert link.pa.current is None and link.a.public_key == public_key(KEY_C)
    link.now += 6
    link.a.initiate(link.pa, link.now)
    link.pump()
    assert link.drops(link.b) == {"unknown_peer": 1}
    link.b.remove_peer(link.pb)
    link.pb = link.b.add_peer(public_key(KEY_C), allowed_ips=[f"{A4}/32"], endpoint=ADDR_A)
    link.now += 6
    link.send(link.a, ip4(A4, B4, b"new identity"))
    assert link.got[link.b][-1] == ip4(A4, B4, b"new identity")
