"""PacketLoop on socketpairs: readers, timers, stop from threads and signals, close wakes run(), no spinning."""

from __future__ import annotations

import os
import signal
import socket
import threading
import time

import pytest

from tunkit.overlay.loop import PacketLoop


@pytest.fixture
def loop():
    lp = PacketLoop()
    yield lp
    lp.close()


def _pair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    b.setblocking(False)
    return a, b


def test_reader_gets_every_datagram_then_stop(loop):
    a, b = _pair()
    got = []

    def on_read():
        while True:
            try:
                got.append(b.recv(100))
            except BlockingIOError:
                break
        if len(got) >= 3:
            loop.stop()

    loop.add_reader(b, on_read)
    for m in (b"one", b"two", b"three"):
        a.send(m)
    loop.run(timeout=5)
    assert got == [b"one", b"two", b"three"]
    assert loop.remove_reader(b) and not loop.remove_reader(b)
    a.close(), b.close()


def test_int_fd_reader_and_pipe(loop):
    r, w = os.pipe()
    os.set_blocking(r, False)
    got = []
    loop.add_reader(r, lambda: (got.append(os.read(r, 10)), loop.stop()))
    os.write(w, b"x")
    loop.run(timeout=5)
    assert got == [b"x"]
    os.close(r), os.close(w)


def test_timers_order_cancel_and_periodic(loop):
    calls = []
    loop.call_later(0.03, lambda: calls.append("late"))
    loop.call_later(0.0, lambda: calls.append("now"))
    t = loop.call_later(0.01, lambda: calls.append("cancelled"))
    t.cancel()
    ticks = []
    tick = loop.call_every(0.005, lambda: ticks.append(1))
    loop.call_later(0.06, loop.stop)
    loop.run(timeout=5)
    tick.cancel()
    assert calls == ["now", "late"]
    assert len(ticks) >= 3
    with pytest.raises(ValueError):
        loop.call_every(0, lambda: None)


def test_run_timeout_returns_and_loop_can_run_again(loop):
    loop.run(timeout=0.01)
    loop.call_later(0, loop.stop)
    start = time.monotonic()
    loop.run(timeout=30)
    assert time.monotonic() - start < 15  # stopped by the timer, not by the 30 s timeout


def test_stop_before_run_is_not_lost(loop):
    loop.stop()
    start = time.monotonic()
    loop.run(timeout=30)
    assert time.monotonic() - start < 15  # the early stop was kept: run() did not wait out the timeout


def test_stop_from_other_thread_and_timer_added_from_thread(loop):
    fired = threading.Event()
    th = threading.Thread(target=lambda: (time.sleep(0.02), loop.call_later(0, fired.set)))
    th.start()
    loop.call_later(10, lambda: None)  # a far timer must not delay the thread's near one
    threading.Thread(target=lambda: (fired.wait(5), loop.stop())).start()
    loop.run(timeout=5)
    th.join()
    assert fired.is_set()


def test_close_from_another_thread_wakes_run_and_releases():
    lp = PacketLoop()
    a, b = _pair()
    lp.add_reader(b, lambda: None)
    threading.Timer(0.02, lp.close).start()
    lp.run()  # no timeout: only close() can end this
    assert lp.closed
    with pytest.raises(ValueError):
        lp.add_reader(a, lambda: None)
    lp.close()  # twice is harmless
    a.close(), b.close()


def test_handler_exception_propagates_and_loop_survives(loop):
    a, b = _pair()

    def boom():
        b.recv(10)
        raise RuntimeError("handler failed")

    loop.add_reader(b, boom)
    a.send(b"x")
    with pytest.raises(RuntimeError, match="handler failed"):
        loop.run(timeout=5)
    loop.remove_reader(b)
    loop.call_later(0, loop.stop)
    loop.run(timeout=5)
    a.close(), b.close()


def test_signal_wakes_loop_and_runs_handler_in_loop(loop):
    seen = []
    loop.add_signal_handler(signal.SIGUSR1, lambda: (seen.append("usr1"), loop.stop()))
    threading.Timer(0.02, lambda: os.kill(os.getpid(), signal.SIGUSR1)).start()
    loop.run(timeout=5)
    assert seen == ["usr1"]
    assert loop.remove_signal_handler(signal.SIGUSR1)
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL
    assert signal.set_wakeup_fd(-1) == -1  # restored to "none"


def test_idle_loop_does_not_spin(loop):
    calls = []
    real = loop._sel.select
    loop._sel.select = lambda timeout=None: (calls.append(timeout), real(timeout))[1]
    ticks = []
    loop.call_every(0.05, lambda: ticks.append(1))
    loop.run(timeout=0.3)
    # one select() per timer tick (plus the final timeout), each one waiting: never a 0-timeout poll storm
    assert len(calls) <= len(ticks) + 3, (len(calls), len(ticks))
    assert sum(1 for t in calls if not t) <= 2, calls
