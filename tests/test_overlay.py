"""Overlay wire format: header table both ways, MAC oracle, replay window oracle, restarts, fuzz."""

from __future__ import annotations

import hmac
import random

import pytest

from tunkit.errors import DecodeError
from tunkit.packet.offload import VirtioNetHdr
from tunkit.overlay.wire import (
    HEADER,
    OVERHEAD,
    TAG_LEN,
    DropReason,
    Header,
    Mac,
    MsgType,
    Opener,
    OverlayError,
    ReplayWindow,
    Sealer,
    seal_datagram,
    split_train,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
T0 = 1_700_000_000_000  # ms

# (name, Header, wire bytes) -- one line per field
HEADER_CASES = [
    (
        "plain packet",
        Header(MsgType.DATA, key_id=0, sender=0, session=0x01020304, counter=5, timestamp_ms=T0),
        bytes.fromhex(
            "01"  # version
            "01"  # type DATA
            "00"  # key_id
            "00"  # sender
            "01020304"  # session
            "0000000000000005"  # counter
            "0000018bcfe56800"  # timestamp_ms
            "00"  # gso_type
            "00"  # gso_flags
            "0000"  # gso_size
            "0000"  # csum_start
            "0000"  # csum_offset
            "00"  # frag_index
            "01"  # frag_count
            "0000"  # reserved
        ),
    ),
    (
        "tcpv4 super-packet with ECN, sender 3, key 7",
        Header(MsgType.DATA, 7, 3, 0xFFFFFFFF, 2**64 - 2, T0 + 1,
               VirtioNetHdr(flags=1, gso_type=0x81, gso_size=1448, csum_start=20, csum_offset=16)),
        bytes.fromhex(
            "01" "01" "07" "03"
            "ffffffff"
            "fffffffffffffffe"
            "0000018bcfe56801"
            "81"  # gso_type TCPV4|ECN
            "01"  # NEEDS_CSUM
            "05a8"  # 1448
            "0014"  # 20
            "0010"  # 16
            "00" "01" "0000"
        ),
    ),
    (
        "fragment 3 of a 5-datagram train",
        Header(MsgType.FRAG, 0, 1, 9, 77, T0, frag_index=3, frag_count=5),
        bytes.fromhex("01" "02" "00" "01" "00000009" "000000000000004d" "0000018bcfe56800"
                      "00" "00" "0000" "0000" "0000"
                      "03"  # frag_index
                      "05"  # frag_count
                      "0000"),
    ),
]


@pytest.mark.parametrize("name,hdr,wire", HEADER_CASES, ids=[c[0] for c in HEADER_CASES])
def test_header_both_ways(name, hdr, wire):
    assert len(wire) == HEADER.size == 36
    assert hdr.encode() == wire
    assert Header.decode(wire) == hdr
    assert Header.decode(b"xx" + wire, 2) == hdr


@pytest.mark.parametrize(
    "wire,reason",
    [
        (b"", DropReason.TRUNCATED),
        (HEADER_CASES[0][2][:35], DropReason.TRUNCATED),
        (HEADER_CASES[0][2][:33] + b"\x02" + HEADER_CASES[0][2][34:], DropReason.FRAGMENT),  # DATA 0/2
        (HEADER_CASES[2][2][:32] + b"\x05" + HEADER_CASES[2][2][33:], DropReason.FRAGMENT),  # FRAG 5/5
        (HEADER_CASES[2][2][:33] + b"\x41" + HEADER_CASES[2][2][34:], DropReason.FRAGMENT),  # 65 fragments
        (b"\x02" + HEADER_CASES[0][2][1:], DropReason.VERSION),
        (b"\x01\x09" + HEADER_CASES[0][2][2:], DropReason.TYPE),
    ],
)
def test_header_decode_errors(wire, reason):
    with pytest.raises(OverlayError) as ei:
        Header.decode(wire)
    assert ei.value.reason is reason
    assert isinstance(ei.value, DecodeError) and isinstance(ei.value, ValueError)


@pytest.mark.parametrize("n", [0, 1, 63, 64, 65, 256, 1400, 65000])
def test_mac_equals_stdlib_hmac(n):
    rng = random.Random(n)
    a, b = rng.randbytes(32), rng.randbytes(n)
    for key in (KEY, bytes(16), rng.randbytes(64)):
        assert Mac(key).tag(a, b) == hmac.digest(key, a + b, "sha256")[:TAG_LEN]
        assert Mac(key).tag2(a, memoryview(b)) == hmac.digest(key, a + b, "sha256")[:TAG_LEN]  # the per-packet path
        assert Mac(key).verify(hmac.digest(key, a + b, "sha256")[:TAG_LEN], memoryview(a), b)


@pytest.mark.parametrize("key", [b"", bytes(15), bytes(65)])
def test_mac_key_length(key):
    with pytest.raises(ValueError, match="overlay key"):
        Mac(key)


# -- replay window -------------------------------------------------------------
class SlowWindow:
    """Oracle: a set of every counter seen and the top; same acceptance rule."""

    def __init__(self, size):
        self.size, self.seen, self.top = size, set(), None

    def accept(self, c):
        if self.top is not None and (c in self.seen or self.top - c >= self.size):
            return False
        self.seen.add(c)
        self.top = c if self.top is None else max(self.top, c)
        return True


@pytest.mark.parametrize("size", [64, 128, 1024])
@pytest.mark.parametrize("seed", range(4))
def test_replay_window_matches_oracle(size, seed):
    rng = random.Random(seed * 1000 + size)
    w, slow = ReplayWindow(size), SlowWindow(size)
    c = rng.randrange(2**40)
    for _ in range(4000):
        step = rng.choice([1, 1, 1, 2, 63, 64, 65, size - 1, size, size + 1, 3 * size, -1, -5, -size + 1, -size, 0])
        c = max(0, c + step)
        want = slow.accept(c)
        got = w.check(c)
        assert got == want, (c, w.top)
        if got:
            w.update(c)


def test_replay_window_basics():
    w = ReplayWindow(64)
    for c in (100, 99, 101, 38, 164):
        assert w.check(c)
        w.update(c)
    assert not w.check(164) and not w.check(101)
    assert not w.check(100)  # 164 - 100 = 64: outside a 64-counter window
    assert w.check(120) and not w.check(36)
    with pytest.raises(ValueError):
        ReplayWindow(100)


# -- sealing / opening ------------------------------------------------------------
def _pair(key=KEY, *, session=0x1234, start=10**18, sender=0, not_before=T0 - 1000, max_age=10_000):
    return (
        Sealer(key, session=session, start_counter=start, sender=sender),
        Opener({0: KEY}, not_before_ms=not_before, max_age_ms=max_age),
    )


PKT = bytes.fromhex("4500001c000100004011f7c9c6120001c6120002") + b"payload!"


def test_seal_open_round_trip_with_and_without_gso():
    s, o = _pair()
    gso = VirtioNetHdr(1, 1, 0, 1448, 20, 16)
    for i, g in enumerate([None, gso, None]):
        dgram = seal_datagram(s, PKT, T0 + i, g)
        assert len(dgram) == len(PKT) + OVERHEAD
        got = o.open(dgram, T0 + i)
        assert bytes(got.packet) == PKT and got.gso == g
        assert (got.sender, got.session, got.counter) == (0, 0x1234, 10**18 + i)


def _reason(opener, dgram, now):
    with pytest.raises(OverlayError) as ei:
        opener.open(dgram, now)
    return ei.value.reason


def test_wrong_key_tamper_and_unknown_key_id():
    s, o = _pair(OTHER_KEY)
    assert _reason(o, seal_datagram(s, PKT, T0), T0) is DropReason.BAD_MAC
    s, o = _pair()
    d = bytearray(seal_datagram(s, PKT, T0))
    for pos in (0 + 40, len(d) - 1, 8):  # packet byte, tag byte, counter byte
        bad = bytearray(d)
        bad[pos] ^= 1
        assert _reason(o, bytes(bad), T0) is DropReason.BAD_MAC
    d[2] = 9  # key id
    assert _reason(o, bytes(d), T0) is DropReason.UNKNOWN_KEY
    # a rejected forgery does not advance the window: the genuine datagram still opens
    assert bytes(o.open(seal_datagram(_pair()[0], PKT, T0), T0).packet) == PKT


def test_replay_and_reorder():
    s, o = _pair()
    ds = [seal_datagram(s, PKT, T0) for _ in range(5)]
    for d in (ds[1], ds[0], ds[4], ds[2]):
        o.open(d, T0)
    for d in (ds[0], ds[1], ds[4]):
        assert _reason(o, d, T0) is DropReason.REPLAY
    o.open(ds[3], T0)


@pytest.mark.parametrize(
    "ts,now,reason",
    [
        (T0 - 10_001, T0, DropReason.STALE),  # too old
        (T0 + 10_001, T0, DropReason.STALE),  # from the future
        (T0 - 2000, T0, DropReason.STALE),  # before the receiver started (not_before = T0 - 1000)
        (T0 - 500, T0, None),
    ],
)
def test_freshness(ts, now, reason):
    s, o = _pair()
    d = seal_datagram(s, PKT, ts)
    if reason is None:
        o.open(d, now)
    else:
        assert _reason(o, d, now) is reason


def test_sender_restart_is_accepted_and_old_session_replays_are_not():
    s1, o = _pair(session=1, start=10**18)
    old = [seal_datagram(s1, PKT, T0 + i) for i in range(3)]
    for d in old:
        o.open(d, T0 + 5)
    # restart: new session, counter seeded from a later clock, later timestamps
    s2 = Sealer(KEY, session=2, start_counter=10**18 + 10**9)
    o.open(seal_datagram(s2, PKT, T0 + 10), T0 + 10)
    for d in old:  # fresh enough, but from the session before the restart
        assert _reason(o, d, T0 + 11) is DropReason.REPLAY
    o.open(seal_datagram(s2, PKT, T0 + 12), T0 + 12)
    # even a restart whose random session id collides with the old one works: counters are time-seeded
    s3 = Sealer(KEY, session=2, start_counter=10**18 + 2 * 10**9)
    o.open(seal_datagram(s3, PKT, T0 + 20), T0 + 20)


def test_receiver_restart_refuses_captures_from_before_it_started():
    s, o = _pair()
    captured = [seal_datagram(s, PKT, T0 + i) for i in range(3)]
    for d in captured:
        o.open(d, T0 + 3)
    restarted = Opener({0: KEY}, not_before_ms=T0 + 100)  # a new receiver process, empty window
    for d in captured:
        assert _reason(restarted, d, T0 + 150) is DropReason.STALE
    restarted.open(seal_datagram(s, PKT, T0 + 160), T0 + 160)


def test_senders_have_separate_windows():
    a = Sealer(KEY, session=7, start_counter=100, sender=0)
    b = Sealer(KEY, session=7, start_counter=100, sender=1)  # same counters, other worker
    o = Opener({0: KEY}, not_before_ms=T0)
    for s in (a, b, a, b):
        o.open(seal_datagram(s, PKT, T0), T0)


@pytest.mark.parametrize("kw", [dict(sender=256), dict(key_id=-1), dict(session=2**32), dict(start_counter=2**64)])
def test_sealer_rejects_bad_parameters(kw):
    args = dict(session=1, start_counter=0) | kw
    with pytest.raises(ValueError):
        Sealer(KEY, **args)


def test_counter_exhaustion_raises():
    s = Sealer(KEY, session=1, start_counter=2**64 - 2)
    s.seal(PKT, T0)
    with pytest.raises(OverflowError):
        s.seal(PKT, T0)


def test_fuzz_open_only_overlay_error_escapes():
    rng = random.Random(6)
    s, o = _pair()
    good = [seal_datagram(s, rng.randbytes(rng.randrange(0, 300)), T0) for _ in range(20)]
    accepted = 0
    for i in range(6000):
        kind = i % 4
        if kind == 0:
            d = rng.randbytes(rng.randrange(0, 120))
        elif kind == 1:
            d = rng.choice(good)[: rng.randrange(0, 80)]
        elif kind == 2:
            b = bytearray(rng.choice(good))
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            d = bytes(b)
        else:
            d = bytes([1, rng.choice([1, 2])]) + rng.randbytes(rng.randrange(0, 100))
        try:
            got = o.open(d, T0)
        except OverlayError as e:
            assert isinstance(e.reason, DropReason)
        else:
            accepted += 1
            assert d in good and bytes(got.packet) == d[36:-16]
    assert accepted <= len(good)


# -- trains -----------------------------------------------------------------------------------
def _train(sealer, packet, now, size, gso=None):
    vec, seg = sealer.seal_train(packet, now, gso, size)
    dgrams = split_train(vec, seg)
    assert all(len(d) == seg for d in dgrams[:-1]) and 0 < len(dgrams[-1]) <= seg
    return dgrams


@pytest.mark.parametrize("plen,size", [(5000, 1400), (1400 * 3, 1436), (1385 * 2 - 10, 1400), (60000, 1472), (100, 1400)])
def test_train_round_trip(plen, size):
    s, o = _pair()
    pkt = random.Random(plen).randbytes(plen)
    gso = VirtioNetHdr(1, 1, 0, 1000, 20, 16)
    dgrams = _train(s, pkt, T0, size, gso)
    for d in dgrams[:-1]:
        assert o.open(d, T0) is None
    got = o.open(dgrams[-1], T0)
    assert got.packet == pkt and got.length == plen and got.gso == gso
    assert len(dgrams) == max(1, -(-(plen + TAG_LEN) // (size - HEADER.size)))


def test_train_tag_straddles_two_datagrams():
    s, o = _pair()
    chunk = 1400 - HEADER.size
    pkt = bytes(2 * chunk - 6)  # the tag's first 6 bytes in datagram 2, the last 10 in datagram 3
    dgrams = _train(s, pkt, T0, 1400)
    assert len(dgrams) == 3 and len(dgrams[-1]) == HEADER.size + 10
    results = [o.open(d, T0) for d in dgrams]
    assert results[:2] == [None, None] and results[2].packet == pkt


def test_train_losses_reorders_forgeries_and_replays():
    s, o = _pair()
    pkt = bytes(range(256)) * 20
    d = _train(s, pkt, T0, 1400)
    assert len(d) == 4
    assert _reason(o, d[2], T0) is DropReason.FRAGMENT  # no train started
    o.open(d[0], T0)
    assert _reason(o, d[2], T0) is DropReason.FRAGMENT  # d[1] not there yet: the stray goes, the train stays
    assert _reason(o, d[3], T0) is DropReason.FRAGMENT
    assert o.open(d[1], T0) is None and o.open(d[2], T0) is None  # d[1] late: the train continues
    assert o.open(d[3], T0).packet == pkt
    d2 = _train(s, pkt, T0, 1400)
    o.open(d2[0], T0)
    assert _reason(o, d[1], T0) is DropReason.FRAGMENT  # a fragment of a finished train
    d3 = _train(s, pkt, T0, 1400)
    for x in d3[:3]:
        o.open(x, T0)
    bad = bytearray(d3[3])
    bad[-1] ^= 1
    assert _reason(o, bytes(bad), T0) is DropReason.BAD_MAC
    d4 = _train(s, pkt, T0, 1400)
    assert [o.open(x, T0) for x in d4][-1].packet == pkt
    assert _reason(o, d4[0], T0) is DropReason.REPLAY  # the same train again
    a, b = _train(s, pkt, T0, 1400), _train(s, pkt[::-1], T0, 1400)
    assert o.open(a[0], T0) is None and o.open(b[0], T0) is None  # a new head does not abandon a train
    assert [o.open(x, T0) for x in b[1:]][-1].packet == pkt[::-1]
    assert [o.open(x, T0) for x in a[1:]][-1].packet == pkt
    assert o.train_count == 1  # d2's, never finished (it expires)


# -- unauthenticated fragments: bounded, and unable to cancel a legitimate train (issue 14 item 3) ----
def _forger(s, counter_ahead=1, sender=0):
    """A sender without the key: the same session and sender index, counters just ahead (predictable)."""
    return Sealer(OTHER_KEY, session=s.session, start_counter=s.counter + counter_ahead, sender=sender)


def test_a_forged_first_fragment_does_not_cancel_a_train_in_progress():
    s, o = _pair()
    pkt = random.Random(21).randbytes(5000)
    d = _train(s, pkt, T0, 1400)
    forged = _train(_forger(s, 0), bytes(5000), T0, 1400)  # predicts the next counter too
    assert o.open(d[0], T0) is None
    assert o.open(forged[0], T0) is None  # its own train (another header), not an eviction
    for x in d[1:-1]:
        assert o.open(x, T0) is None
    assert o.open(d[-1], T0).packet == pkt
    for x in forged[1:-1]:
        o.open(x, T0)
    assert _reason(o, forged[-1], T0) is DropReason.BAD_MAC


def test_a_forged_copy_of_a_fragment_is_kept_apart_until_the_tag_decides():
    s, o = _pair()
    pkt = random.Random(22).randbytes(5000)
    d = _train(s, pkt, T0, 1400)
    fake1 = d[1][: HEADER.size] + bytes(len(d[1]) - HEADER.size)  # the real header, a forged body
    assert o.open(d[0], T0) is None
    assert o.open(fake1, T0) is None  # the forgery came first
    assert o.open(d[1], T0) is None  # the real fragment 1 forks a second candidate
    assert o.train_count == 2
    for x in d[2:-1]:
        assert o.open(x, T0) is None
    assert o.open(d[-1], T0).packet == pkt  # the candidate whose tag verifies wins
    assert o.train_count == 0 and o.train_bytes == 0


def test_unauthenticated_trains_are_bounded_per_peer_and_counted():
    s, o = _pair()
    legit = _train(s, random.Random(23).randbytes(60000), T0, 1472)
    o.open(legit[0], T0)
    reasons = []
    for i in range(300):  # first fragments of big trains from every sender index, fresh timestamps
        f = _train(_forger(s, 10 + i, sender=i % 256), bytes(60000), T0, 1472)
        try:
            o.open(f[0], T0)
        except OverlayError as e:
            reasons.append(e.reason)
    assert o.train_count <= o.max_trains and o.train_bytes <= o.max_train_bytes
    assert reasons.count(DropReason.FRAG_BUDGET) >= 300 - o.max_trains
    for x in legit[1:-1]:
        o.open(x, T0)
    assert o.open(legit[-1], T0) is not None  # the train in progress still completes


def test_unfinished_trains_expire():
    s, o = _pair()
    d = _train(s, bytes(5000), T0, 1400)
    o.open(d[0], T0)
    assert o.train_count == 1 and o.train_bytes > 0
    later = T0 + o.train_ttl_ms + 1
    d2 = _train(s, bytes(3000), later, 1400)
    o.open(d2[0], later)
    assert o.expired == 1 and o.train_count == 1
    assert _reason(o, d[1], later) is DropReason.FRAGMENT  # its train is gone


def test_train_parts_survive_buffer_reuse_after_stabilise():
    s, o = _pair()
    pkt = random.Random(3).randbytes(4000)
    dgrams = _train(s, pkt, T0, 1400)
    buf = bytearray(2000)
    for d in dgrams[:-1]:
        buf[: len(d)] = d
        assert o.open(memoryview(buf)[: len(d)], T0) is None
        o.stabilise()  # the receive buffer is about to be reused
    assert o.open(dgrams[-1], T0).packet == pkt


def test_seal_train_refuses_too_many_fragments():
    s, _ = _pair()
    with pytest.raises(ValueError, match="datagrams"):
        s.seal_train(bytes(64 * 100), T0, None, 100)


def test_fuzz_trains_only_overlay_error_escapes():
    rng = random.Random(7)
    s, o = _pair()
    trains = [_train(s, rng.randbytes(rng.randrange(1400, 9000)), T0, 1400) for _ in range(10)]
    pool = [d for t in trains for d in t]
    accepted = 0
    for i in range(6000):
        d = rng.choice(pool)
        if i % 3 == 0:
            b = bytearray(d)
            b[rng.randrange(len(b))] = rng.randrange(256)
            d = bytes(b)
        elif i % 3 == 1:
            d = d[: rng.randrange(0, len(d) + 1)]
        try:
            got = o.open(d, T0)
        except OverlayError as e:
            assert isinstance(e.reason, DropReason)
        else:
            if got is not None:
                accepted += 1
                assert any(got.packet == _packet_of(t) for t in trains)
    assert accepted <= len(trains)


def _packet_of(train):
    body = b"".join(d[HEADER.size :] for d in train)
    return body[:-TAG_LEN]


def _block(dgrams):
    """A GRO read: the datagrams back to back (all but the last the same size)."""
    return memoryview(b"".join(dgrams))


def test_open_frags_takes_a_whole_train_from_one_read():
    s, o = _pair()
    pkt = random.Random(9).randbytes(60000)
    d = _train(s, pkt, T0, 1472)
    got, used = o.open_frags(_block(d), 1472, T0)
    assert used == sum(map(len, d)) and got.packet == pkt and len(got.parts) == len(d)


def test_open_frags_across_two_reads_and_then_a_data_message():
    s, o = _pair()
    pkt = random.Random(10).randbytes(20000)
    d = _train(s, pkt, T0, 1472)
    first = bytearray(_block(d[:5]))
    got, used = o.open_frags(memoryview(first), 1472, T0)
    assert got is None and used == len(first)
    o.stabilise()
    first[:] = bytes(len(first))  # the receive buffer is reused
    small = seal_datagram(s, PKT, T0)
    rest = _block(d[5:])
    got, used = o.open_frags(rest, 1472, T0)
    assert got.packet == pkt and used == len(rest)
    assert bytes(o.open(small, T0).packet) == PKT


def test_open_frags_with_a_fragment_lost_inside_the_read():
    s, o = _pair()
    pkt = bytes(range(256)) * 40
    d = _train(s, pkt, T0, 1472)
    block = _block(d[:3] + d[4:])  # fragment 3 never arrived
    got, used = o.open_frags(block, 1472, T0)
    assert got is None and used == 3 * 1472  # stops where the train stops continuing
    assert _reason(o, bytes(block[used : used + 1472]), T0) is DropReason.FRAGMENT
    d2 = _train(s, pkt, T0, 1472)  # the next train is fine
    assert o.open_frags(_block(d2), 1472, T0)[0].packet == pkt


def test_open_frags_refuses_a_forged_train():
    s, o = _pair()
    evil = Sealer(OTHER_KEY, session=0x1234, start_counter=10**18)
    d = _train(evil, bytes(5000), T0, 1472)
    with pytest.raises(OverlayError) as ei:
        o.open_frags(_block(d), 1472, T0)
    assert ei.value.reason is DropReason.BAD_MAC


def test_docs_example_runs(capsys):
    import pathlib
    import re

    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "tunnel.md").read_text()
    code = re.findall(r"```python\n(.*?)```", doc, re.S)[0]
    exec(compile(code, "docs/tunnel.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "45" + "00" * 19 and out[1].startswith("replay:")


def test_a_fragment_bigger_than_its_trains_first_datagram_is_not_taken():
    s, o = _pair()
    pkt = random.Random(24).randbytes(5000)
    d = _train(s, pkt, T0, 1400)
    assert o.open(d[0], T0) is None
    reserved = o.train_bytes
    fat = d[1] + bytes(60000)  # the real header, then far more than the reservation counted
    assert _reason(o, fat, T0) is DropReason.FRAGMENT
    assert o.train_bytes == reserved
    assert [o.open(x, T0) for x in d[1:]][-1].packet == pkt
