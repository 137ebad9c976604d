"""Every WireGuard timer rule, driven by a fake clock over the in-memory link; and worker partitioning."""

from __future__ import annotations

import os
import signal

import pytest

from test_wireguard_engine import A4, ADDR_A, B4, Link, ip4, kinds
from tunkit.wireguard import messages as m
from tunkit.wireguard.constants import (MAX_TIMER_HANDSHAKES, REJECT_AFTER_MESSAGES, REKEY_AFTER_MESSAGES)


def initiations(link: Link, eng, since: int = 0) -> int:
    return sum(1 for s, d in link.wire[since:] if s is eng and len(d) == m.INITIATION_SIZE)


def keepalives(link: Link, eng, since: int = 0) -> int:
    return sum(1 for s, d in link.wire[since:] if s is eng and len(d) == m.TRANSPORT_MIN_SIZE)


def test_an_idle_engine_has_no_deadline_and_tick_is_harmless():
    link = Link()
    assert link.a.next_deadline() is None
    link.a.tick(1e9)
    assert link.a.pop_datagrams() == []


def test_rekey_after_time_by_the_initiator_only():
    link = Link()
    link.handshake()
    old = link.pa.current
    link.advance(119)
    mark = len(link.wire)
    link.send(link.a, ip4(A4, B4))
    link.send(link.b, ip4(B4, A4))
    assert initiations(link, link.a, mark) == 0 and initiations(link, link.b, mark) == 0
    link.advance(2)  # 121 s old
    mark = len(link.wire)
    link.send(link.b, ip4(B4, A4))  # the responder does not rekey on time
    assert initiations(link, link.b, mark) == 0
    link.send(link.a, ip4(A4, B4, b"after 120 s"))  # sent on the old session, and a handshake starts
    assert initiations(link, link.a, mark) == 1
    assert link.pa.current is not old and link.pa.previous is old
    assert link.got[link.b][-1] == ip4(A4, B4, b"after 120 s")


def test_reject_after_time_stops_sending_and_receiving():
    link = Link()
    link.handshake()
    link.advance(179)
    late, _ = link.a.seal(link.pa, ip4(A4, B4), link.now)  # still allowed at 179 s
    link.cut.add(link.a)
    link.advance(1.5)
    assert link.a.send(ip4(A4, B4), link.now) is None  # 180.5 s: staged, never sealed on the old keys
    assert len(link.pa.staged) == 1
    assert link.b.receive(late, ADDR_A, link.now) is None
    assert link.drops(link.b) == {"expired_session": 1}


def test_last_minute_handshake_when_receiving_on_an_old_session():
    link = Link()
    link.handshake()
    link.advance(164)
    mark = len(link.wire)
    link.send(link.b, ip4(B4, A4))
    assert initiations(link, link.a, mark) == 0
    link.advance(2)  # 166 s > REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
    link.cut.add(link.a)
    link.send(link.b, ip4(B4, A4))
    link.send(link.b, ip4(B4, A4))
    assert initiations(link, link.a, mark) == 1  # once, not per packet


def test_rekey_and_reject_after_messages():
    link = Link()
    link.handshake()
    link.advance(6)  # past the REKEY_TIMEOUT rate limit of the first handshake
    link.pa.current.send_counter = REKEY_AFTER_MESSAGES
    mark = len(link.wire)
    link.cut.add(link.a)
    assert link.a.send(ip4(A4, B4), link.now) is not None  # still sent ...
    assert initiations(link, link.a, mark) == 0
    link.pump()
    assert initiations(link, link.a, mark) == 1  # ... and a rekey is on its way
    link.pa.current.send_counter = REJECT_AFTER_MESSAGES
    assert link.a.send(ip4(A4, B4), link.now) is None  # no nonce past the limit
    assert link.b.receive(bytes(m.TRANSPORT_HEADER.pack(4, link.pb.current.local_index, REJECT_AFTER_MESSAGES))
                          + bytes(16), ADDR_A, link.now) is None
    assert link.drops(link.b) == {"expired_session": 1}


def test_handshake_retransmits_with_jitter_then_gives_up_and_zeroes():
    link = Link()
    times = []
    link.filter = lambda s, d: times.append(link.now) if s is link.a else True  # record and lose a's datagrams
    for i in range(3):
        link.a.send(ip4(A4, B4, bytes([i])), link.now)
    link.pump()
    link.advance(100)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == 1 + MAX_TIMER_HANDSHAKES  # the first and 18 retries
    assert all(5.0 <= g <= 5.0 + 0.333 + 1e-9 for g in gaps), gaps
    assert "handshake_failed" in kinds(link.a) and times[-1] - times[0] < 90 + 18 * 0.334
    assert len(set(round(g, 3) for g in gaps)) > 3  # the jitter varies
    assert link.drops(link.a) == {"handshake_timeout": 3} and not link.pa.staged
    link.advance(540)
    assert "keys_zeroed" in kinds(link.a)


def test_keepalive_timeout_answers_data_with_one_keepalive():
    link = Link()
    link.handshake()
    mark = len(link.wire)
    link.send(link.a, ip4(A4, B4))
    link.advance(9.9)
    assert keepalives(link, link.b, mark) == 0
    link.advance(0.2)
    assert keepalives(link, link.b, mark) == 1
    link.advance(30)
    assert keepalives(link, link.b, mark) == 1


def test_keepalive_not_needed_when_the_receiver_sends_data():
    link = Link()
    link.handshake()
    mark = len(link.wire)
    link.send(link.a, ip4(A4, B4))
    link.advance(5)
    link.send(link.b, ip4(B4, A4))
    link.advance(20)
    assert keepalives(link, link.b, mark) == 0


def test_new_handshake_when_data_gets_no_answer():
    link = Link()
    link.handshake()
    link.cut.add(link.b)
    mark = len(link.wire)
    link.send(link.a, ip4(A4, B4))
    link.advance(14.9)
    assert initiations(link, link.a, mark) == 0
    link.advance(0.45)  # KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter (<= 0.333)
    assert initiations(link, link.a, mark) == 1


def test_keys_are_zeroed_after_three_times_reject_after_time():
    link = Link()
    link.handshake()
    link.advance(539)
    assert link.pa.current is not None
    link.advance(1.5)
    assert link.pa.current is None and link.pb.current is None
    assert link.a._index == {} and link.b._index == {}
    assert "keys_zeroed" in kinds(link.a) and "keys_zeroed" in kinds(link.b)


def test_persistent_keepalive_every_interval_while_idle():
    link = Link(a_kw={"persistent_keepalive": 25})
    link.handshake()
    mark = len(link.wire)
    link.advance(100.1)
    assert keepalives(link, link.a, mark) == 4
    link.send(link.a, ip4(A4, B4))  # traffic resets the interval
    mark = len(link.wire)
    link.advance(24)
    assert keepalives(link, link.a, mark) == 0


def test_rekey_loses_nothing_in_flight():
    link = Link()
    link.handshake()
    link.advance(121)
    held = [link.a.send(ip4(A4, B4, bytes([i])), link.now) for i in range(5)]  # the 1st starts the rekey
    link.pump()
    assert link.pa.previous is not None
    for out, dest in held:  # datagrams sealed on the previous session still open
        link.deliver(link.a, out, dest)
    link.send(link.a, ip4(A4, B4, b"new"))
    assert link.got[link.b][-6:] == [ip4(A4, B4, bytes([i])) for i in range(5)] + [ip4(A4, B4, b"new")]
    assert link.drops(link.b) == {}


# ------------------------------------------------------------------ processes and nonces

def _child(fn) -> bytes:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        signal.alarm(10)  # a stuck child dies, so the test fails instead of hanging
        code = 0
        try:
            os.write(w, fn())
        except BaseException:  # report anything as a failure exit, never fall into pytest
            code = 1
        os._exit(code)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks)


def test_a_forked_child_never_sends_on_an_inherited_keypair():
    link = Link()
    link.handshake()
    counter_before = link.pa.current.send_counter

    def child():
        out = link.a.send(ip4(A4, B4), link.now)
        return b"staged" if out is None else b"SENT"

    assert _child(child) == b"staged"
    assert link.pa.current.send_counter == counter_before
    assert link.a.send(ip4(A4, B4), link.now) is not None  # the parent still may


def test_partitioned_counters_across_processes_never_collide():
    link = Link()
    link.handshake()
    link.a.partition(2)

    def child():
        link.a.adopt(1)
        return b"".join(bytes(link.a.send(ip4(A4, B4, b"child %d" % i), link.now)[0]) for i in range(4))

    blob = _child(child)
    theirs = [blob[i:i + 64] for i in range(0, len(blob), 64)]
    ours = [bytes(link.a.send(ip4(A4, B4, b"parent%d" % i), link.now)[0]) for i in range(4)]
    counters = [m.decode_transport_header(d)[1] for d in theirs + ours]
    assert len(set(counters)) == 8
    for d in theirs + ours:
        assert link.b.receive(bytearray(d), ADDR_A, link.now) is not None
    assert link.drops(link.b) == {}
    with pytest.raises(ValueError):
        link.a.partition(2)  # already partitioned
