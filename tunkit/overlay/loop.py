"""A small selectors-based packet loop: readers, timers, signals and a wake-up fd; does I/O.

:class:`PacketLoop` owns anything with ``fileno()`` (TUN queues, UDP and
netlink sockets), one-shot and periodic timers, and a non-blocking socketpair
used as the wake-up fd.  Handlers are plain callables taking no arguments.

* ``run()`` blocks in ``select()`` until a reader is ready, a timer is due or
  the wake-up fd is written; it never spins.  It returns when :meth:`stop`
  or :meth:`close` was called (from a handler, another thread or a signal
  handler).
* Signals: :meth:`add_signal_handler` installs a Python handler and points
  ``signal.set_wakeup_fd`` at the socketpair, so a signal wakes ``select()``
  at once (PEP 475 alone would only resume it); the loop drains the pair and
  runs the handler in the loop, not in the signal context.  Only the main
  thread may do this (a restriction of :mod:`signal`).
* An exception raised by a handler propagates out of ``run()``; the loop
  stays usable and can be run again.

    loop = PacketLoop()
    loop.add_reader(sock, lambda: handle(sock.recv(2048)))
    loop.call_every(1.0, report)
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    loop.run()
    loop.close()
"""

from __future__ import annotations

import heapq
import itertools
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

_WAKE_STOP = b"\0"  # not a signal number: set_wakeup_fd writes signal numbers 1..64
_WAKE_TIMER = b"\xff"  # neither: a timer was added from another thread


class Timer:
    """A scheduled callback; :meth:`cancel` stops it (also a periodic one)."""

    __slots__ = ("when", "interval", "callback", "cancelled")

    def __init__(self, when: float, interval: float | None, callback: Callable[[], object]) -> None:
        self.when = when
        self.interval = interval
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class PacketLoop:
    """Readers, timers and signals on one ``selectors.DefaultSelector``."""

    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._timers: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self._signal_handlers: dict[int, Callable[[], object]] = {}
        self._saved_signals: dict[int, Any] = {}  # signum -> the handler signal.signal returned
        self._saved_wakeup_fd: int | None = None
        self._stopping = False
        self._running = False
        self._thread: int | None = None
        self._closed = False
        self._released = False
        self._lock = threading.Lock()
        self._wake_r, self._wake_w = socket.socketpair()
        for s in (self._wake_r, self._wake_w):
            s.setblocking(False)
        self._sel.register(self._wake_r, selectors.EVENT_READ, self._drain_wakeup)

    # -- registration -------------------------------------------------------------
    def add_reader(self, fileobj, handler: Callable[[], object]) -> None:
        """Call ``handler()`` whenever ``fileobj`` (an int fd or anything with fileno()) is readable."""
        self._check_open()
        self._sel.register(fileobj, selectors.EVENT_READ, handler)

    def remove_reader(self, fileobj) -> bool:
        """Stop watching ``fileobj``; False if it was not registered."""
        try:
            self._sel.unregister(fileobj)
        except (KeyError, ValueError):  # not registered, or already closed: nothing to remove
            return False
        return True

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` once, ``delay`` seconds from now (monotonic clock)."""
        return self._schedule(Timer(time.monotonic() + max(0.0, delay), None, callback))

    def call_every(self, interval: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback()`` every ``interval`` seconds, first after one interval."""
        if interval <= 0:
            raise ValueError(f"timer interval {interval}: want > 0 seconds")
        return self._schedule(Timer(time.monotonic() + interval, interval, callback))

    def _schedule(self, t: Timer) -> Timer:
        self._check_open()
        heapq.heappush(self._timers, (t.when, next(self._seq), t))
        if self._running and threading.get_ident() != self._thread:
            self._wake(_WAKE_TIMER)  # another thread: make select() recompute its timeout
        return t

    def add_signal_handler(self, signum: int, handler: Callable[[], object]) -> None:
        """Run ``handler()`` in the loop when ``signum`` arrives (main thread only)."""
        self._check_open()
        if not self._saved_signals and self._saved_wakeup_fd is None:
            self._saved_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        if signum not in self._saved_signals:
            self._saved_signals[signum] = signal.signal(signum, _note_signal)
        self._signal_handlers[signum] = handler

    def remove_signal_handler(self, signum: int) -> bool:
        if self._signal_handlers.pop(signum, None) is None:
            return False
        signal.signal(signum, self._saved_signals.pop(signum))
        if not self._saved_signals:
            self._restore_wakeup_fd()
        return True

    # -- running ------------------------------------------------------------------
    def run(self, timeout: float | None = None) -> None:
        """Dispatch events until stopped (or ``timeout`` seconds passed, if given)."""
        self._check_open()
        self._stopping = False
        self._running = True
        self._thread = threading.get_ident()
        deadline = None if timeout is None else time.monotonic() + timeout
        select = self._sel.select
        try:
            while not self._stopping:
                now = time.monotonic()
                wait = None
                if self._timers:
                    wait = max(0.0, self._timers[0][0] - now)
                if deadline is not None:
                    left = deadline - now
                    if left <= 0:
                        break
                    wait = left if wait is None else min(wait, left)
                for key, _ in select(wait):
                    key.data()
                    if self._stopping:
                        break
                if self._timers:
                    self._run_due_timers()
        finally:
            self._running = False
            if not self._closed:
                self._drain_wakeup(honour_stop=False)  # no stale stop for the next run()
            if self._closed:
                self._release()

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        timers = self._timers
        while timers and timers[0][0] <= now and not self._stopping:
            _, _, t = heapq.heappop(timers)
            if t.cancelled:
                continue
            if t.interval is not None:
                t.when = max(t.when + t.interval, now)  # no burst of catch-up calls after a stall
                heapq.heappush(timers, (t.when, next(self._seq), t))
            t.callback()

    def stop(self) -> None:
        """Make ``run()`` return; safe from handlers, other threads and signal handlers."""
        self._stopping = True
        self._wake(_WAKE_STOP)

    def _wake(self, data: bytes) -> None:
        try:
            self._wake_w.send(data)
        except (BlockingIOError, OSError):  # pair full (already awake) or closed: nothing to do
            pass

    def _drain_wakeup(self, honour_stop: bool = True) -> None:
        while True:
            try:
                data = self._wake_r.recv(4096)
            except BlockingIOError:  # drained
                return
            if not data:
                return
            for signum in data:
                if signum == 0:  # a stop() that may have raced with run()'s start
                    if honour_stop:
                        self._stopping = True
                elif signum != 0xFF:
                    handler = self._signal_handlers.get(signum)
                    if handler is not None:
                        handler()

    # -- lifetime ------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop the loop and release its fds (a running ``run()`` wakes and returns).

        Readers are unregistered, not closed: their owners close them.  Closing
        twice is harmless.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self.stop()
        if not self._running:
            self._release()

    def _release(self) -> None:
        with self._lock:
            if self._released:
                return
            self._released = True
        if self._signal_handlers and threading.current_thread() is threading.main_thread():
            for signum in list(self._signal_handlers):
                self.remove_signal_handler(signum)
        self._sel.close()
        self._wake_r.close()
        self._wake_w.close()
        self._timers.clear()

    def _restore_wakeup_fd(self) -> None:
        if self._saved_wakeup_fd is not None:
            signal.set_wakeup_fd(self._saved_wakeup_fd)
            self._saved_wakeup_fd = None

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError("the packet loop is closed")

    def __enter__(self) -> "PacketLoop":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _note_signal(signum, frame) -> None:
    """Python-level handler: the C handler already wrote ``signum`` to the wake-up fd."""
