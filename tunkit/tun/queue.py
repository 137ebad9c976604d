"""One TUN/TAP queue descriptor: wakeable, thread-safe raw packet reads and writes; does I/O.

:class:`Queue` is the only place tunkit calls :func:`os.read`/:func:`os.write`
(and ``readv``/``writev``) on a TUN descriptor; it moves whole packets as
bytes and interprets nothing (the offload-aware path over it, virtio headers
included, is :mod:`tunkit.tun.batch`).

* Reads wait in :func:`select.poll` on the queue *and* a per-queue eventfd.
  :meth:`Queue.close` (and :meth:`~tunkit.tun.device.Device.close`) write the
  eventfd, so a thread parked in ``read()`` returns at once with
  :class:`~tunkit.errors.DeviceClosedError`; closing the descriptor alone does
  not wake a parked poll.  A descriptor is closed only when no thread is inside
  a call on it, so a racing read can never hit a reused descriptor number.
* errno: ``EAGAIN`` waits, ``EINTR`` retries (PEP 475), ``EBADF``/``EBADFD``
  mean closed (or a detached queue), ``EIO`` on write means the device is down.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import select
import threading
import time
from collections.abc import Iterable, Sequence

from tunkit._uapi import TUNSETQUEUE, TunFlag
from tunkit.errors import DeviceClosedError, DeviceError
from tunkit.tun import ifreq
from tunkit.tun.ifreq import Ifreq, close_quietly, tun_getiff

__all__ = ["MAX_FRAME", "Queue"]


# Largest packet a queue read must hold: an IP packet (or TSO/USO super-packet)
# of 65535 bytes plus a TAP Ethernet header; the vnet header or tun_pi come on top.
MAX_FRAME = 65535 + 14
_POLL_ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL


def _timeout_ms(deadline: float | None) -> int | None:
    """Milliseconds left until ``deadline`` (monotonic), rounded up; None waits forever."""
    if deadline is None:
        return None
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


class Queue:
    """One file descriptor of a TUN/TAP device (one queue of a multi-queue device).

    All packet I/O of tunkit goes through here.  Reads and writes move whole
    packets: with the device's ``vnet_hdr`` on, each starts with the
    virtio_net_hdr; with ``pi`` on, with ``struct tun_pi``.  ``timeout`` is in
    seconds: ``None`` waits for ever, ``0`` does not wait.  A read that times
    out returns ``None``.  Safe to use from several threads; :meth:`close`
    from any thread wakes every waiting call, which raises
    :class:`~tunkit.errors.DeviceClosedError`.
    """

    __slots__ = ("_fd", "_wake", "_lock", "_users", "_closing", "_detached", "name", "read_size", "__weakref__")

    def __init__(self, fd: int, name: str, *, read_size: int = MAX_FRAME, detached: bool = False) -> None:
        self._fd = fd
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        self._lock = threading.Lock()
        self._users = 0  # calls in progress; the fds are closed when this drops to 0 after close()
        self._closing = False
        self._detached = detached
        self.name = name  #: the device's name, for messages
        self.read_size = read_size  #: bytes asked for by :meth:`read` (header + largest packet)

    def __repr__(self) -> str:
        state = "closed" if self._closing else ("detached" if self._detached else f"fd={self._fd}")
        return f"<Queue {self.name} {state}>"

    # -- lifetime ------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closing

    @property
    def detached(self) -> bool:
        """True after :meth:`detach` (the kernel does not use this queue until :meth:`attach`)."""
        return self._detached

    def fileno(self) -> int:
        """The queue's descriptor, for ``selectors``/asyncio (raises once closed)."""
        if self._closing:
            raise DeviceClosedError(self.name, "queue is closed")
        return self._fd

    @contextlib.contextmanager
    def held(self):
        """``(fd, wake_fd)`` kept open for the ``with`` body, for an event loop's readiness
        registration (:mod:`tunkit.tun.aio`): :meth:`close` from any thread makes
        ``wake_fd`` readable, and both are closed only after the body ends."""
        fd = self._enter()
        try:
            yield fd, self._wake
        finally:
            self._leave()

    def close(self) -> None:
        """Close the queue; wakes threads waiting on it.  Closing twice is harmless."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            os.eventfd_write(self._wake, 1)  # stays readable: every current and later waiter wakes
            if self._users == 0:
                self._release()

    def _disown(self) -> None:
        """Forget the descriptor without closing it (a failed :meth:`Device.from_fd`)."""
        with self._lock:
            self._closing = True
            close_quietly(self._wake)
            self._fd = self._wake = -1

    def _release(self) -> None:  # called with the lock held, once no call is in progress
        fd, wake, self._fd, self._wake = self._fd, self._wake, -1, -1
        close_quietly(fd)
        close_quietly(wake)

    def _enter(self) -> int:
        with self._lock:
            if self._closing:
                raise DeviceClosedError(self.name, "queue is closed")
            self._users += 1
            return self._fd

    def _leave(self) -> None:
        with self._lock:
            self._users -= 1
            if self._closing and self._users == 0:
                self._release()

    # -- waiting -------------------------------------------------------------
    def _wait(self, fd: int, events: int, deadline: float | None) -> int:
        """Poll ``fd`` and the wake eventfd; return revents (0 on timeout)."""
        poller = select.poll()
        poller.register(fd, events)
        poller.register(self._wake, select.POLLIN)
        while True:
            ready = poller.poll(_timeout_ms(deadline))  # EINTR is retried by Python (PEP 475)
            if self._closing or any(rfd == self._wake for rfd, _ in ready):
                raise DeviceClosedError(self.name, "device closed while waiting")
            if ready:
                return ready[0][1]
            if deadline is not None and time.monotonic() >= deadline:
                return 0

    def _error(self, e: OSError, what: str) -> DeviceError:
        err = e.errno
        if err in (errno.EBADF, errno.EBADFD):
            if self._detached:
                return DeviceError(err, self.name, f"{what}: the queue is detached")
            if self._closing or err == errno.EBADF:
                return DeviceClosedError(self.name, f"{what}: device is closed")
            return DeviceError(err, self.name, f"{what}: the queue is not attached to the device")
        if err == errno.EIO:
            return DeviceError(err, self.name, f"{what}: the device is down (bring it up first)")
        if err == errno.EINVAL and what.startswith("write"):
            return DeviceError(err, self.name, f"{what}: the kernel rejected the packet (malformed packet or header)")
        return DeviceError(err, self.name, f"{what} failed")

    def _read_loop(self, fd: int, op, deadline_timeout: float | None):
        """Run ``op(fd)`` until it does not raise EAGAIN; None on timeout."""
        deadline = None
        polled_error = False
        while True:
            try:
                return op(fd)
            except BlockingIOError:
                if polled_error:  # poll said error but read has nothing to say: do not spin
                    raise DeviceError(errno.EIO, self.name, "read: poll reports an error on the queue") from None
            except OSError as e:
                raise self._error(e, "read") from None
            if deadline is None and deadline_timeout is not None:
                deadline = time.monotonic() + deadline_timeout
            revents = self._wait(fd, select.POLLIN, deadline)
            if not revents:
                return None
            polled_error = bool(revents & _POLL_ERR) and not revents & select.POLLIN

    # -- I/O -----------------------------------------------------------------
    def read(self, timeout: float | None = None) -> bytes | None:
        """Read one packet (with its vnet header / tun_pi if enabled); ``None`` on timeout."""
        fd = self._enter()
        try:
            return self._read_loop(fd, self._read_op, timeout)
        finally:
            self._leave()

    def _read_op(self, fd: int) -> bytes:
        return os.read(fd, self.read_size)

    def readinto(self, buf, timeout: float | None = None) -> int | None:
        """Read one packet into ``buf`` (a writable buffer); its length, or ``None`` on timeout.

        A packet longer than ``buf`` is truncated by the kernel.
        """
        fd = self._enter()
        try:
            return self._read_loop(fd, lambda f: os.readv(f, (buf,)), timeout)
        finally:
            self._leave()

    def read_batch(self, max_packets: int = 64, timeout: float | None = None) -> list[bytes]:
        """Wait up to ``timeout`` for one packet, then take what is queued, up to ``max_packets``.

        Returns an empty list on timeout.
        """
        if max_packets < 1:
            raise ValueError(f"max_packets must be at least 1, not {max_packets}")
        fd = self._enter()
        try:
            first = self._read_loop(fd, self._read_op, timeout)
            if first is None:
                return []
            out = [first]
            size = self.read_size
            while len(out) < max_packets:
                try:
                    out.append(os.read(fd, size))
                except BlockingIOError:
                    break
                except OSError as e:
                    raise self._error(e, "read") from None
            return out
        finally:
            self._leave()

    def _write_loop(self, fd: int, op, what: str) -> int:
        while True:
            try:
                return op(fd)
            except BlockingIOError:
                pass  # a TUN write almost never blocks; wait for room if it does
            except OSError as e:
                raise self._error(e, what) from None
            self._wait(fd, select.POLLOUT, None)

    def write(self, packet) -> int:
        """Write one packet (a bytes-like object); returns the bytes written."""
        fd = self._enter()
        try:
            return self._write_loop(fd, lambda f: os.write(f, packet), "write")
        finally:
            self._leave()

    def writev(self, buffers: Sequence) -> int:
        """Write one packet gathered from several buffers (e.g. vnet header + body), with :func:`os.writev`."""
        fd = self._enter()
        try:
            return self._write_loop(fd, lambda f: os.writev(f, buffers), "writev")
        finally:
            self._leave()

    def write_batch(self, packets: Iterable) -> int:
        """Write each packet in turn; returns how many were written.

        Stops at the first failure with a :class:`DeviceError` whose message
        gives the packet's position and whose ``errno`` is the kernel's.
        """
        fd = self._enter()
        n = 0
        try:
            for pkt in packets:
                self._write_loop(fd, lambda f: os.write(f, pkt), f"write (packet {n})")
                n += 1
            return n
        finally:
            self._leave()

    # -- queue control -------------------------------------------------------
    def _set_queue(self, flag: TunFlag, what: str) -> None:
        fd = self._enter()
        try:
            req = Ifreq()
            req.ifr_flags = int(flag)
            ifreq.ioctl(fd, TUNSETQUEUE, req)
        except OSError as e:
            if e.errno == errno.EINVAL:
                state = "detached" if flag == TunFlag.DETACH_QUEUE else "attached"
                raise DeviceError(e.errno, self.name, f"{what}: queue is already {state} or the device is not multi-queue") from None
            raise DeviceError(e.errno, self.name, f"{what} failed") from None
        finally:
            self._leave()

    def detach(self) -> None:
        """Stop the kernel from using this queue (``TUNSETQUEUE`` with ``IFF_DETACH_QUEUE``).

        The kernel steers no packets to a detached queue (reads wait); writes through it still go in.
        """
        self._set_queue(TunFlag.DETACH_QUEUE, "detach queue")
        self._detached = True

    def attach(self) -> None:
        """Put a detached queue back in use (``TUNSETQUEUE`` with ``IFF_ATTACH_QUEUE``)."""
        self._set_queue(TunFlag.ATTACH_QUEUE, "attach queue")
        self._detached = False

    def tun_flags(self) -> TunFlag:
        """The device's flags as ``TUNGETIFF`` reports them through this queue.

        ``NO_PI`` in the result is unreliable (see the module docstring).
        """
        fd = self._enter()
        try:
            return tun_getiff(fd, self.name)[1]
        finally:
            self._leave()
