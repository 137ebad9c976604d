"""TUN/TAP devices through /dev/net/tun and interface ioctls; does I/O.

Thin layer: ``ifreq`` structs built with :mod:`ctypes`, ioctls issued with
:func:`fcntl.ioctl`, packets moved with :func:`os.read`/:func:`os.write` on
non-blocking descriptors.  Nothing here parses packets.

    from tunkit.tun.device import open_tun

    with open_tun("tk%d", queues=2) as dev:     # name template: dev.name is e.g. "tk0"
        dev.mtu = 1400
        dev.up()
        pkt = dev.read(timeout=1.0)             # bytes, or None when the timeout expired

Behaviour worth knowing (each one learned the hard way by the Go TUN layers):

* The descriptor is switched to non-blocking only *after* ``TUNSETIFF``.  An
  unattached ``/dev/net/tun`` file polls as an error (golang/go#30426), so no
  poller may see it before that.
* Reads wait in :func:`select.poll` on the queue *and* a per-queue eventfd.
  :meth:`Queue.close` (and :meth:`Device.close`) write the eventfd, so a
  thread parked in ``read()`` returns at once with
  :class:`~tunkit.errors.DeviceClosedError`; closing the descriptor alone does
  not wake a parked poll.  A descriptor is closed only when no thread is inside
  a call on it, so a racing read can never hit a reused descriptor number.
* errno: ``EAGAIN`` waits, ``EINTR`` retries (PEP 475), ``EBADF``/``EBADFD``
  mean closed (or a detached queue), ``EIO`` on write means the device is down.
* With ``vnet_hdr=True`` every ``read()`` returns, and every ``write()`` must
  start with, a ``struct virtio_net_hdr`` of :attr:`Device.vnet_hdr_len` bytes
  (10 by default) in host byte order.  Offloads are negotiated as a ladder
  (:data:`OFFLOAD_LADDER`); if the kernel refuses every rung the device is
  reopened without the header and :attr:`Device.vnet_hdr` is ``False``.  The
  accepted mask is :attr:`Device.offloads` and is replayed on every queue
  added later.  With ``pi=True`` packets carry the 4-byte ``struct tun_pi``.
* ``TUNSETIFF`` on an existing device replaces its feature flags (``pi``,
  ``vnet_hdr``) with the attaching call's, unless other queues of a
  multi-queue device are attached; tunkit therefore uses the same flags for
  every queue it opens.
* ``TUNGETIFF`` reports "no socket filter" with the bit that also means
  ``IFF_NO_PI``, so ``pi`` is read over rtnetlink instead (``IFLA_TUN_PI``,
  see :func:`list_tun_devices`), which is exact.
* Interface properties (MTU, flags, MAC...) use ioctls on an ``AF_INET``
  datagram socket opened together with the device, so they keep working from
  threads in other network namespaces.
"""

from __future__ import annotations

import contextlib
import ctypes
import enum
import errno
import fcntl
import grp
import math
import os
import pwd
import select
import socket
import stat
import threading
import time
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from tunkit.ifname import validate_name
from tunkit._uapi import (
    ARPHRD_ETHER,
    ARPHRD_NONE,
    ETH_ALEN,
    IFNAMSIZ,
    MISC_MAJOR,
    SIOCGIFFLAGS,
    SIOCGIFHWADDR,
    SIOCGIFINDEX,
    SIOCGIFMTU,
    SIOCGIFTXQLEN,
    SIOCSIFFLAGS,
    SIOCSIFHWADDR,
    SIOCSIFMTU,
    SIOCSIFTXQLEN,
    TUN_MINOR,
    TUN_PI_LEN,
    TUNGETIFF,
    TUNGETVNETHDRSZ,
    TUNSETGROUP,
    TUNSETIFF,
    TUNSETOFFLOAD,
    TUNSETOWNER,
    TUNSETPERSIST,
    TUNSETQUEUE,
    TUNSETVNETHDRSZ,
    VIRTIO_NET_HDR_LEN,
    IfFlag,
    TunFlag,
    TunOffload,
)
from tunkit.errors import DeviceClosedError, DeviceError

__all__ = [
    "TUN_PATH",
    "MODES",
    "OFFLOAD_LADDER",
    "Ifreq",
    "Device",
    "Queue",
    "open_tun",
    "delete",
    "create_tun_node",
    "list_tun_devices",
    "offload_ladder",
    "validate_name",
    "flag_names",
]

TUN_PATH = "/dev/net/tun"
MODES = {"tun": TunFlag.TUN, "tap": TunFlag.TAP}

_O = TunOffload
#: Offload masks tried in order when ``offloads`` is not given: TSO+USO, TSO
#: with ECN, plain TSO.  If all are refused the device drops the vnet header.
OFFLOAD_LADDER: tuple[TunOffload, ...] = (
    _O.CSUM | _O.TSO4 | _O.TSO6 | _O.TSO_ECN | _O.USO4 | _O.USO6,
    _O.CSUM | _O.TSO4 | _O.TSO6 | _O.TSO_ECN,
    _O.CSUM | _O.TSO4 | _O.TSO6,
)

# Largest packet a queue read must hold: an IP packet (or TSO/USO super-packet)
# of 65535 bytes plus a TAP Ethernet header; the vnet header or tun_pi come on top.
_MAX_FRAME = 65535 + 14
_POLL_ERR = select.POLLERR | select.POLLHUP | select.POLLNVAL


# ---------------------------------------------------------------------------
# struct ifreq (linux/if.h)
# ---------------------------------------------------------------------------
class Sockaddr(ctypes.Structure):
    """``struct sockaddr`` as ``ifr_hwaddr`` carries it: ARPHRD_* family + address bytes."""

    _fields_ = [
        ("sa_family", ctypes.c_ushort),  # ARPHRD_ETHER for TAP, ARPHRD_NONE for TUN
        ("sa_data", ctypes.c_ubyte * 14),  # the first ETH_ALEN bytes are the MAC
    ]


class Ifmap(ctypes.Structure):
    """``struct ifmap``: never used, but it is the largest member and sets the union's size."""

    _fields_ = [
        ("mem_start", ctypes.c_ulong),
        ("mem_end", ctypes.c_ulong),
        ("base_addr", ctypes.c_ushort),
        ("irq", ctypes.c_ubyte),
        ("dma", ctypes.c_ubyte),
        ("port", ctypes.c_ubyte),
    ]


class IfreqUnion(ctypes.Union):
    """The ``ifr_ifru`` union: the members tunkit reads or writes."""

    _fields_ = [
        ("ifr_flags", ctypes.c_ushort),  # short in C; unsigned here so TUN_EXCL (0x8000) stays positive
        ("ifr_ifindex", ctypes.c_int),  # SIOCGIFINDEX
        ("ifr_mtu", ctypes.c_int),  # SIOC[GS]IFMTU
        ("ifr_qlen", ctypes.c_int),  # SIOC[GS]IFTXQLEN
        ("ifr_hwaddr", Sockaddr),  # SIOC[GS]IFHWADDR
        ("ifr_newname", ctypes.c_char * IFNAMSIZ),  # SIOCSIFNAME
        ("ifr_map", Ifmap),  # size only
        ("ifr_data", ctypes.c_void_p),  # SIOCETHTOOL and friends; size only here
    ]


class Ifreq(ctypes.Structure):
    """``struct ifreq``: a NUL-padded name and the ``ifr_ifru`` union (members reachable directly)."""

    _anonymous_ = ("ifr_ifru",)
    _fields_ = [
        ("ifr_name", ctypes.c_char * IFNAMSIZ),
        ("ifr_ifru", IfreqUnion),
    ]


def _ioctl(fd: int, request: int, arg) -> None:
    """The one place tunkit issues TUN and interface ioctls (a seam tests can wrap).

    ``arg`` is an int passed by value, or a writable buffer (an :class:`Ifreq`
    or a ``ctypes.c_int``) that the kernel fills in place.
    """
    if isinstance(arg, int):
        fcntl.ioctl(fd, request, arg)
    else:
        fcntl.ioctl(fd, request, arg, True)


# ---------------------------------------------------------------------------
# argument checks (pure helpers)
# ---------------------------------------------------------------------------
def flag_names(flags: enum.IntFlag | None) -> str:
    """``TUN|NO_PI``-style text for a flag set (``0`` when empty); ``str()`` prints a number on 3.11+."""
    if flags is None:
        return "unknown"
    return flags.name or ("0" if not flags else hex(int(flags)))


def offload_ladder(requested: TunOffload | int | None) -> list[TunOffload]:
    """The TUNSETOFFLOAD masks to try, best first.

    ``None`` gives :data:`OFFLOAD_LADDER`.  An explicit mask is tried first,
    then each ladder rung restricted to it (never a bit that was not asked
    for); ``0`` means "vnet header, no offloads".
    """
    if requested is None:
        return list(OFFLOAD_LADDER)
    want = TunOffload(int(requested))
    rungs = [want]
    for rung in OFFLOAD_LADDER:
        sub = rung & want
        if sub and sub not in rungs:
            rungs.append(sub)
    return rungs


def _mode_flag(mode: str, label: str | None) -> TunFlag:
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        where = f"{label}: " if label else ""
        raise ValueError(f"{where}unknown mode {mode!r} (expected 'tun' or 'tap')") from None


def _resolve_id(value: int | str | None, kind: str, label: str | None) -> int | None:
    """A uid/gid from an int or a user/group name; ``None`` stays ``None``."""
    if value is None or isinstance(value, int):
        return value
    if value.isdigit():
        return int(value)
    try:
        return pwd.getpwnam(value).pw_uid if kind == "user" else grp.getgrnam(value).gr_gid
    except KeyError:
        where = f"{label}: " if label else ""
        raise ValueError(f"{where}unknown {kind} {value!r}") from None


def _timeout_ms(deadline: float | None) -> int | None:
    """Milliseconds left until ``deadline`` (monotonic), rounded up; None waits forever."""
    if deadline is None:
        return None
    return max(0, math.ceil((deadline - time.monotonic()) * 1000))


# ---------------------------------------------------------------------------
# /dev/net/tun
# ---------------------------------------------------------------------------
def create_tun_node(path: str = TUN_PATH, mode: int = 0o666) -> bool:
    """Create the ``/dev/net/tun`` character node (``mknod PATH c 10 200``) if missing.

    Returns ``True`` if it was created, ``False`` if it already existed.  Needs
    CAP_MKNOD; raises :class:`DeviceError` naming the path otherwise.  This is
    what nebula does when the node is missing in a minimal container; tunkit
    only does it when asked (here or with ``open_tun(create_node=True)``).
    """
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        os.mknod(path, stat.S_IFCHR | mode, os.makedev(MISC_MAJOR, TUN_MINOR))
        os.chmod(path, mode)  # mknod applies the umask
    except FileExistsError:
        return False
    except OSError as e:
        raise DeviceError(e.errno, path, f"cannot create the TUN device node (mknod c {MISC_MAJOR} {TUN_MINOR})") from None
    return True


def _open_tun_file(path: str, label: str | None, create_node: bool) -> int:
    if create_node and not os.path.exists(path):
        create_tun_node(path)
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        raise DeviceError(
            errno.ENOENT, label,
            f"{path} does not exist; create it with 'tunkit tuntap add ... --create-node', "
            f"open_tun(..., create_node=True) or 'mknod {path} c {MISC_MAJOR} {TUN_MINOR}'",
        ) from None
    except OSError as e:
        if e.errno in (errno.ENXIO, errno.ENODEV):
            msg = f"{path} has no driver behind it (is the tun module loaded? 'modprobe tun')"
        elif e.errno in (errno.EACCES, errno.EPERM):
            msg = f"no permission to open {path}"
        else:
            msg = f"cannot open {path}"
        raise DeviceError(e.errno, label, msg) from None


def _set_iff(fd: int, raw_name: bytes, flags: TunFlag, label: str | None, *, creating: bool) -> str:
    """TUNSETIFF; returns the device name the kernel chose or resolved."""
    req = Ifreq(ifr_name=raw_name)
    req.ifr_flags = int(flags)
    try:
        _ioctl(fd, TUNSETIFF, req)
    except OSError as e:
        raise _setiff_error(e.errno, label, flags, creating) from None
    return req.ifr_name.decode()


def _setiff_error(err: int, label: str | None, flags: TunFlag, creating: bool) -> DeviceError:
    mode = "tap" if flags & TunFlag.TAP else "tun"
    if err == errno.EPERM:
        what = "creating" if creating else "attaching to"
        msg = f"{what} a {mode} device needs CAP_NET_ADMIN (or being the device's owner/group)"
    elif err == errno.EBUSY:
        msg = (
            "name is taken: a device with this name exists" if flags & TunFlag.TUN_EXCL
            else "the device is in use by another process (single-queue devices take one file)"
        )
    elif err == errno.EINVAL:
        msg = (
            f"the kernel refused TUNSETIFF ({flag_names(flags)}): the name is invalid, or an existing device with "
            f"this name is not a {mode} device or has a different multi_queue setting"
        )
    else:
        msg = f"TUNSETIFF ({flag_names(flags)}) failed"
    return DeviceError(err, label, msg)


def _tun_getiff(fd: int, label: str | None) -> tuple[str, TunFlag]:
    req = Ifreq()
    try:
        _ioctl(fd, TUNGETIFF, req)
    except OSError as e:
        if e.errno == errno.EBADFD:
            msg = f"descriptor {fd} is not attached to a TUN/TAP device"
        elif e.errno in (errno.ENOTTY, errno.EINVAL):
            msg = f"descriptor {fd} is not a /dev/net/tun file"
        else:
            msg = "TUNGETIFF failed"
        raise DeviceError(e.errno, label, msg) from None
    return req.ifr_name.decode(), TunFlag(req.ifr_flags)


def _get_int(fd: int, request: int) -> int:
    val = ctypes.c_int(0)
    _ioctl(fd, request, val)
    return val.value


def _close_quietly(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:  # cleanup on an error path: the original error matters more
            pass


class _Opened(NamedTuple):
    """One queue descriptor after TUNSETIFF (and the ladder): what the kernel agreed to."""

    fd: int
    name: str
    flags: TunFlag  # the TUNSETIFF flags in effect (VNET_HDR dropped if the ladder failed)
    offloads: TunOffload | None


def _open_queue(path: str, raw_name: bytes, flags: TunFlag, label: str | None, *, creating: bool,
                create_node: bool = False) -> tuple[int, str]:
    """open + TUNSETIFF + O_NONBLOCK (in that order); the fd is closed on any failure."""
    fd = _open_tun_file(path, label, create_node)
    try:
        name = _set_iff(fd, raw_name, flags, label, creating=creating)
        os.set_blocking(fd, False)  # only now: an unattached tun file polls as an error
    except BaseException:
        _close_quietly(fd)
        raise
    return fd, name


def _negotiate(path: str, raw_name: bytes, flags: TunFlag, label: str | None, *, creating: bool,
               offloads: TunOffload | None, create_node: bool) -> _Opened:
    """Open the first queue; with VNET_HDR walk the offload ladder, reopening without it if needed."""
    fd, name = _open_queue(path, raw_name, flags, label, creating=creating, create_node=create_node)
    if not flags & TunFlag.VNET_HDR:
        return _Opened(fd, name, flags, None)
    try:
        for mask in offload_ladder(offloads):
            try:
                _ioctl(fd, TUNSETOFFLOAD, int(mask))
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: this kernel does not know a bit; try the next rung
                    raise DeviceError(e.errno, name, f"TUNSETOFFLOAD {flag_names(mask)} failed") from None
                continue
            return _Opened(fd, name, flags, TunOffload(mask))
    except BaseException:
        _close_quietly(fd)
        raise
    # Every rung refused.  IFF_VNET_HDR cannot be cleared on a live file: close
    # it (a non-persistent device disappears) and open again without it.
    _close_quietly(fd)
    flags &= ~TunFlag.VNET_HDR
    fd, name = _open_queue(path, name.encode(), flags, label, creating=creating)
    return _Opened(fd, name, flags, TunOffload(0))


# ---------------------------------------------------------------------------
# Queue: one descriptor
# ---------------------------------------------------------------------------
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

    def __init__(self, fd: int, name: str, *, read_size: int = _MAX_FRAME, detached: bool = False) -> None:
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
            _close_quietly(self._wake)
            self._fd = self._wake = -1

    def _release(self) -> None:  # called with the lock held, once no call is in progress
        fd, wake, self._fd, self._wake = self._fd, self._wake, -1, -1
        _close_quietly(fd)
        _close_quietly(wake)

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
            _ioctl(fd, TUNSETQUEUE, req)
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
            return _tun_getiff(fd, self.name)[1]
        finally:
            self._leave()


# ---------------------------------------------------------------------------
# Device: the set of queues plus interface properties
# ---------------------------------------------------------------------------
class Device:
    """A TUN or TAP device and the queues (descriptors) this process holds on it.

    Make one with :func:`open_tun`, :meth:`Device.attach` or
    :meth:`Device.from_fd`.  Attributes:

    * ``name``: resolved once for the whole set (``tun%d`` read back);
    * ``mode``: ``"tun"`` or ``"tap"``; ``ifindex``;
    * ``pi``: packets carry ``struct tun_pi`` (4 bytes) in front;
    * ``vnet_hdr``: packets carry a virtio_net_hdr of ``vnet_hdr_len`` bytes in front;
    * ``offloads``: the ``TunOffload`` mask the kernel accepted (``0`` without a
      vnet header; ``None`` when unknown, for a descriptor handed in by another process);
    * ``queues``: the :class:`Queue` objects, first one used by ``read``/``write``/``fileno``.

    Interface properties (``mtu``, ``txqueuelen``, ``flags``, ``mac``) are
    live ioctls, not cached.  Closing releases every descriptor; a device that
    is not persistent then disappears.
    """

    def __init__(self, name: str, mode: str, queues: list[Queue], *, flags: TunFlag, pi: bool,
                 vnet_hdr_len: int, offloads: TunOffload | None, path: str, ctl: socket.socket) -> None:
        self.name = name
        self.mode = mode
        self.pi = pi
        self._queues = queues
        self._flags = flags & ~(TunFlag.TUN_EXCL | TunFlag.PERSIST | TunFlag.DETACH_QUEUE | TunFlag.ATTACH_QUEUE)
        self.vnet_hdr_len = vnet_hdr_len if flags & TunFlag.VNET_HDR else 0
        self.offloads = offloads
        self._path = path
        self._ctl = ctl
        self._closed = False
        self._lock = threading.Lock()
        self.ifindex = self._ifreq(SIOCGIFINDEX, "get ifindex").ifr_ifindex

    # -- construction ---------------------------------------------------------
    @classmethod
    def _build(cls, opened: _Opened, mode: str, pi: bool, queues: int, *, vnet_hdr_len: int, path: str,
               owner: int | None = None, group: int | None = None, persist: bool = False) -> "Device":
        """Finish a device from its first queue: header size, owner/group, persist, extra queues.

        On failure every descriptor is closed and a ``persist`` set here is cleared again.
        """
        fd, name, flags, offloads = opened
        try:
            queue = Queue(fd, name)  # owns fd from here
        except BaseException:
            _close_quietly(fd)
            raise
        ctl = dev = None
        persist_set = False
        asked_vnet = bool(flags & TunFlag.VNET_HDR)
        try:
            flags, offloads, pi = _reconcile(fd, name, flags, offloads, pi)
            hdr_len = 0
            if flags & TunFlag.VNET_HDR:  # ours to size only if we asked for it (else read it back)
                hdr_len = _set_vnet_hdr_len(fd, name, vnet_hdr_len) if asked_vnet else _get_vnet_hdr_len(fd, name)
            queue.read_size = _MAX_FRAME + hdr_len + (TUN_PI_LEN if pi else 0)
            for request, value, what in ((TUNSETOWNER, owner, "owner"), (TUNSETGROUP, group, "group")):
                if value is not None:
                    try:
                        _ioctl(fd, request, value)
                    except OSError as e:
                        raise DeviceError(e.errno, name, f"cannot set {what} to {value}") from None
            if persist:
                _set_persist(fd, name, True)
                persist_set = True
            ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            dev = cls(name, mode, [queue], flags=flags, pi=pi, vnet_hdr_len=hdr_len,
                      offloads=offloads, path=path, ctl=ctl)
            if queues > 1:
                dev.add_queues(queues - 1)
            return dev
        except BaseException:
            if persist_set:
                try:
                    _set_persist(fd, name, False)  # leave no half-made persistent device behind
                except DeviceError:  # best effort on an error path; the original error is raised
                    pass
            if dev is not None:
                dev.close()
            else:
                queue.close()
                if ctl is not None:
                    ctl.close()
            raise

    @classmethod
    def attach(cls, name: str, *, mode: str | None = None, pi: bool = False, vnet_hdr: bool = False,
               vnet_hdr_len: int = VIRTIO_NET_HDR_LEN, offloads: TunOffload | int | None = None,
               queues: int = 1, multi_queue: bool | None = None, path: str = TUN_PATH) -> "Device":
        """Open queues on an existing (usually persistent) device ``name``.

        ``mode`` and ``multi_queue`` are detected when not given (the kernel
        requires both to match).  ``pi``/``vnet_hdr`` become the device's
        settings (the kernel takes them from the attaching call).  Raises
        :class:`DeviceError` with ``ENODEV`` if there is no such device.
        """
        raw = validate_name(name, template=False)
        _check_queue_count(queues, name)
        # TUNSETIFF would *create* a missing device: make sure it exists (ENODEV otherwise).
        detected = _detect_mode(name)
        if mode is None:
            mode = detected
        base = _mode_flag(mode, name) | (TunFlag(0) if pi else TunFlag.NO_PI)
        if vnet_hdr:
            base |= TunFlag.VNET_HDR
        elif offloads:
            raise ValueError(f"{name}: offloads need vnet_hdr=True")
        if multi_queue is None:
            candidates = [True] if queues > 1 else [False, True]
        else:
            candidates = [multi_queue]
        if queues > 1 and not any(candidates):
            raise ValueError(f"{name}: {queues} queues need a multi-queue device")
        last: DeviceError | None = None
        for mq in candidates:
            flags = base | (TunFlag.MULTI_QUEUE if mq else TunFlag(0))
            try:
                opened = _negotiate(path, raw, flags, name, creating=False,
                                    offloads=_offload_arg(offloads), create_node=False)
            except DeviceError as e:
                if e.errno != errno.EINVAL:
                    raise
                last = e
                continue
            return cls._build(opened, mode, pi, queues, vnet_hdr_len=vnet_hdr_len, path=path)
        assert last is not None
        raise _attach_mismatch(name, mode, multi_queue) or last

    @classmethod
    def from_fd(cls, fd: int, *, pi: bool | None = None, offloads: TunOffload | int | None = None,
                path: str = TUN_PATH) -> "Device":
        """Wrap a TUN/TAP descriptor handed in by another process (e.g. over a Unix socket).

        The name, mode and flags are read back with ``TUNGETIFF``; ``pi`` comes
        from rtnetlink (``IFLA_TUN_PI``) unless ``pi`` is given (default: no pi).  The
        kernel cannot report offloads, so ``offloads`` is what the caller
        knows (``None``: unknown).  The descriptor becomes this device's: it is
        made non-blocking (which the sender's copy shares) and close-on-exec,
        and :meth:`close` closes it.
        """
        name, flags = _tun_getiff(fd, f"fd {fd}")
        mode = "tap" if flags & TunFlag.TAP else "tun"
        if pi is None:
            pi = _kernel_pi(name)
        flags = (flags & ~TunFlag.NO_PI) | (TunFlag(0) if pi else TunFlag.NO_PI)
        hdr_len = _get_vnet_hdr_len(fd, name) if flags & TunFlag.VNET_HDR else 0
        off = TunOffload(0) if not flags & TunFlag.VNET_HDR else _offload_arg(offloads)
        os.set_inheritable(fd, False)
        os.set_blocking(fd, False)
        queue = Queue(fd, name, read_size=_MAX_FRAME + hdr_len + (TUN_PI_LEN if pi else 0),
                      detached=bool(flags & TunFlag.DETACH_QUEUE))
        ctl = None
        try:
            ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            return cls(name, mode, [queue], flags=flags, pi=pi, vnet_hdr_len=hdr_len, offloads=off,
                       path=path, ctl=ctl)
        except BaseException:
            queue._disown()  # on failure the descriptor stays the caller's
            if ctl is not None:
                ctl.close()
            raise

    # -- lifetime ---------------------------------------------------------------
    def close(self) -> None:
        """Close every queue (waking their readers) and the control socket.  Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            queues, self._queues = self._queues, []
        for q in queues:
            q.close()
        self._ctl.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"queues={len(self._queues)}"
        return f"<Device {self.name} {self.mode} {state}>"

    def _check_open(self) -> None:
        if self._closed:
            raise DeviceClosedError(self.name)

    # -- queues -------------------------------------------------------------------
    @property
    def queues(self) -> list[Queue]:
        """The open queues (a copy of the list)."""
        return list(self._queues)

    @property
    def multi_queue(self) -> bool:
        return bool(self._flags & TunFlag.MULTI_QUEUE)

    def _first(self) -> Queue:
        queues = self._queues
        if not queues:
            raise DeviceClosedError(self.name)
        return queues[0]

    def add_queues(self, n: int) -> list[Queue]:
        """Open ``n`` more queues on this multi-queue device; all or none.

        Each gets the device's flags (without ``IFF_TUN_EXCL``), then the
        accepted offload mask and the vnet header size are replayed on it.
        """
        self._check_open()
        if n < 1:
            raise ValueError(f"{self.name}: add_queues needs n >= 1, not {n}")
        if not self.multi_queue:
            raise DeviceError(errno.EINVAL, self.name, "cannot add queues: the device is not multi-queue")
        read_size = self._first().read_size
        new: list[Queue] = []
        try:
            for _ in range(n):
                fd, _name = _open_queue(self._path, self.name.encode(), self._flags, self.name, creating=False)
                try:
                    self._replay(fd)
                except BaseException:
                    _close_quietly(fd)
                    raise
                new.append(Queue(fd, self.name, read_size=read_size))
        except BaseException:
            for q in new:
                q.close()
            raise
        with self._lock:
            if self._closed:
                for q in new:
                    q.close()
                raise DeviceClosedError(self.name)
            self._queues.extend(new)
        return new

    def _replay(self, fd: int) -> None:
        """Apply the first queue's negotiated settings to a new queue descriptor."""
        if not self._flags & TunFlag.VNET_HDR:
            return
        if self.offloads is not None:
            try:
                _ioctl(fd, TUNSETOFFLOAD, int(self.offloads))
            except OSError as e:
                raise DeviceError(e.errno, self.name, f"replaying TUNSETOFFLOAD {flag_names(self.offloads)} on a new queue failed") from None
        _set_vnet_hdr_len(fd, self.name, self.vnet_hdr_len)

    def remove_queues(self, which: int | Iterable[Queue]) -> None:
        """Close queues: the last ``n`` (an int) or the given :class:`Queue` objects.

        At least one queue must remain (use :meth:`close` to drop them all).
        """
        self._check_open()
        with self._lock:
            if isinstance(which, int):
                if which < 1:
                    raise ValueError(f"{self.name}: remove_queues needs n >= 1, not {which}")
                if which >= len(self._queues):
                    raise ValueError(f"{self.name}: cannot remove {which} of {len(self._queues)} queues; one must remain (use close())")
                victims = self._queues[-which:]
            else:
                victims = list(which)
                mine = {id(q) for q in self._queues}
                if any(id(q) not in mine for q in victims):
                    raise ValueError(f"{self.name}: remove_queues got a queue that is not one of this device's")
                if len({id(q) for q in victims}) >= len(self._queues):
                    raise ValueError(f"{self.name}: one queue must remain (use close())")
            gone = {id(q) for q in victims}
            self._queues = [q for q in self._queues if id(q) not in gone]
        for q in victims:
            q.close()

    # -- packet I/O (first queue) --------------------------------------------------
    def fileno(self) -> int:
        """The first queue's descriptor (for ``selectors``/asyncio)."""
        return self._first().fileno()

    def read(self, timeout: float | None = None) -> bytes | None:
        """Read one packet from the first queue; ``None`` on timeout (see :meth:`Queue.read`)."""
        return self._first().read(timeout)

    def readinto(self, buf, timeout: float | None = None) -> int | None:
        return self._first().readinto(buf, timeout)

    def write(self, packet) -> int:
        """Write one packet to the first queue (see :meth:`Queue.write`)."""
        return self._first().write(packet)

    def writev(self, buffers: Sequence) -> int:
        return self._first().writev(buffers)

    def read_batch(self, max_packets: int = 64, timeout: float | None = None) -> list[bytes]:
        return self._first().read_batch(max_packets, timeout)

    def write_batch(self, packets: Iterable) -> int:
        return self._first().write_batch(packets)

    # -- TUN flags ---------------------------------------------------------------------
    @property
    def vnet_hdr(self) -> bool:
        """True if packets carry a virtio_net_hdr (``vnet_hdr_len`` bytes) in front."""
        return bool(self._flags & TunFlag.VNET_HDR)

    @property
    def tun_flags(self) -> TunFlag:
        """The device's TUN flags as this process opened it (``PERSIST`` read live)."""
        flags = self._flags
        if self.persist:
            flags |= TunFlag.PERSIST
        return flags

    @property
    def persist(self) -> bool:
        """Whether the device outlives its last descriptor (``TUNSETPERSIST``)."""
        self._check_open()
        return bool(self._first().tun_flags() & TunFlag.PERSIST)

    @persist.setter
    def persist(self, value: bool) -> None:
        q = self._first()
        fd = q._enter()
        try:
            _set_persist(fd, self.name, bool(value))
        finally:
            q._leave()

    def set_owner(self, user: int | str) -> None:
        """Let ``user`` (uid or name) open the device without CAP_NET_ADMIN (``TUNSETOWNER``).

        The kernel has no way back to "no owner" (-1 is refused).
        """
        self._set_id(TUNSETOWNER, _resolve_id(user, "user", self.name), "owner")

    def set_group(self, group: int | str) -> None:
        """Let members of ``group`` (gid or name) open the device (``TUNSETGROUP``)."""
        self._set_id(TUNSETGROUP, _resolve_id(group, "group", self.name), "group")

    def _set_id(self, request: int, value: int | None, what: str) -> None:
        if value is None or value < 0:
            raise ValueError(f"{self.name}: {what} must be a valid id, not {value!r}")
        q = self._first()
        fd = q._enter()
        try:
            _ioctl(fd, request, value)
        except OSError as e:
            raise DeviceError(e.errno, self.name, f"cannot set {what} to {value}") from None
        finally:
            q._leave()

    # -- interface properties (ioctls on a datagram socket) ----------------------------
    def _ifreq(self, request: int, what: str, req: Ifreq | None = None) -> Ifreq:
        self._check_open()
        if req is None:
            req = Ifreq()
        req.ifr_name = self.name.encode()
        try:
            _ioctl(self._ctl.fileno(), request, req)
        except OSError as e:
            raise DeviceError(e.errno, self.name, what) from None
        return req

    def _set_int(self, request: int, field: str, value: int, what: str) -> None:
        req = Ifreq()
        setattr(req, field, value)
        self._ifreq(request, f"{what} {value}", req)

    @property
    def mtu(self) -> int:
        return self._ifreq(SIOCGIFMTU, "get MTU").ifr_mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self._set_int(SIOCSIFMTU, "ifr_mtu", int(value), "set MTU")

    @property
    def txqueuelen(self) -> int:
        return self._ifreq(SIOCGIFTXQLEN, "get txqueuelen").ifr_qlen

    @txqueuelen.setter
    def txqueuelen(self, value: int) -> None:
        self._set_int(SIOCSIFTXQLEN, "ifr_qlen", int(value), "set txqueuelen")

    @property
    def flags(self) -> IfFlag:
        """Interface flags (``SIOCGIFFLAGS``; the low 16 bits of ``net_device_flags``)."""
        return IfFlag(self._ifreq(SIOCGIFFLAGS, "get interface flags").ifr_flags)

    def set_flags(self, flags: IfFlag | int) -> None:
        """Replace the interface flags (``SIOCSIFFLAGS``); read-only bits are ignored by the kernel."""
        req = Ifreq()
        req.ifr_flags = int(flags) & 0xFFFF
        self._ifreq(SIOCSIFFLAGS, f"set interface flags {flag_names(IfFlag(int(flags)))}", req)

    def up(self) -> None:
        """Set ``IFF_UP`` (like ``ip link set NAME up``)."""
        self.set_flags(self.flags | IfFlag.UP)

    def down(self) -> None:
        """Clear ``IFF_UP``."""
        self.set_flags(self.flags & ~IfFlag.UP)

    @property
    def is_up(self) -> bool:
        return bool(self.flags & IfFlag.UP)

    @property
    def mac(self) -> str | None:
        """The TAP device's MAC as ``aa:bb:cc:dd:ee:ff``; ``None`` for a TUN (no link-layer address)."""
        hw = self._ifreq(SIOCGIFHWADDR, "get hardware address").ifr_hwaddr
        if hw.sa_family == ARPHRD_NONE:
            return None
        return ":".join(f"{b:02x}" for b in bytes(hw.sa_data)[:ETH_ALEN])

    @mac.setter
    def mac(self, value: str | bytes) -> None:
        if self.mode != "tap":
            raise ValueError(f"{self.name}: a TUN device has no MAC address")
        raw = _parse_mac(value, self.name)
        req = Ifreq()
        req.ifr_hwaddr.sa_family = ARPHRD_ETHER
        for i, b in enumerate(raw):
            req.ifr_hwaddr.sa_data[i] = b
        self._ifreq(SIOCSIFHWADDR, f"set MAC {value if isinstance(value, str) else raw.hex(':')}", req)


def _check_queue_count(queues: int, label: str | None) -> None:
    if not isinstance(queues, int) or queues < 1:
        where = f"{label}: " if label else ""
        raise ValueError(f"{where}queues must be a positive int, not {queues!r}")


def _offload_arg(offloads: TunOffload | int | None) -> TunOffload | None:
    return None if offloads is None else TunOffload(int(offloads))


def _set_vnet_hdr_len(fd: int, name: str, length: int) -> int:
    """TUNSETVNETHDRSZ then read it back; returns what the kernel holds."""
    try:
        _ioctl(fd, TUNSETVNETHDRSZ, ctypes.c_int(length))
        return _get_int(fd, TUNGETVNETHDRSZ)
    except OSError as e:
        raise DeviceError(e.errno, name, f"cannot set the vnet header size to {length} (the kernel needs >= {VIRTIO_NET_HDR_LEN})") from None


def _get_vnet_hdr_len(fd: int, name: str) -> int:
    try:
        return _get_int(fd, TUNGETVNETHDRSZ)
    except OSError as e:
        raise DeviceError(e.errno, name, "TUNGETVNETHDRSZ failed") from None


def _reconcile(fd: int, name: str, flags: TunFlag, offloads: TunOffload | None,
               pi: bool) -> tuple[TunFlag, TunOffload | None, bool]:
    """Check the flags asked for against what the device has (``TUNGETIFF``).

    They differ when queues were added to a multi-queue device that other
    descriptors hold: the kernel keeps the device's flags then.  The device's
    truth wins; ``pi`` comes from rtnetlink (``TUNGETIFF`` cannot tell), offloads
    become unknown.
    """
    _name, actual = _tun_getiff(fd, name)
    if (actual ^ flags) & TunFlag.VNET_HDR:
        flags ^= TunFlag.VNET_HDR
        offloads = None if actual & TunFlag.VNET_HDR else TunOffload(0)
        pi = _kernel_pi(name)
        flags = (flags | TunFlag.NO_PI) if not pi else (flags & ~TunFlag.NO_PI)
    return flags, offloads, pi


def _set_persist(fd: int, name: str, on: bool) -> None:
    try:
        _ioctl(fd, TUNSETPERSIST, 1 if on else 0)
    except OSError as e:
        raise DeviceError(e.errno, name, f"cannot {'set' if on else 'clear'} persist") from None


def _parse_mac(value: str | bytes, name: str) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        raw = bytes(value)
    else:
        try:
            raw = bytes(int(p, 16) for p in value.split(":"))
        except ValueError:
            raw = b""
        if any(len(p) not in (1, 2) for p in value.split(":")):
            raw = b""
    if len(raw) != ETH_ALEN:
        raise ValueError(f"{name}: invalid MAC address {value!r} (want 6 octets like 02:00:00:00:00:01)")
    return raw


def _interface_probe(name: str, request: int, what: str) -> Ifreq:
    """One SIOCG* ioctl on ``name`` from a throwaway socket in the calling thread's namespace."""
    req = Ifreq(ifr_name=name.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            _ioctl(s.fileno(), request, req)
        except OSError as e:
            msg = "no such device" if e.errno == errno.ENODEV else what
            raise DeviceError(e.errno, name, msg) from None
    return req


def _attach_mismatch(name: str, mode: str, multi_queue: bool | None) -> DeviceError | None:
    """Explain an EINVAL from attaching (error path only): not a TUN/TAP device, or which setting differs."""
    try:
        info = _tun_link(name)
    except OSError:  # netlink cannot tell: keep the kernel's plain EINVAL
        return None
    if info is None:
        return DeviceError(errno.EINVAL, name, "not a TUN/TAP device")
    actual = "tap" if info.type == TunFlag.TAP else "tun"
    if actual != mode:
        return DeviceError(errno.EINVAL, name, f"is a {actual} device, not {mode}")
    if multi_queue is not None and info.multi_queue != multi_queue:
        return DeviceError(errno.EINVAL, name, f"multi_queue is {info.multi_queue} on the device, not {multi_queue}")
    return None


def _detect_mode(name: str) -> str:
    """``tun`` or ``tap`` from the link type (TUN devices have ARPHRD_NONE); ENODEV if missing."""
    hw = _interface_probe(name, SIOCGIFHWADDR, "get hardware address").ifr_hwaddr
    return "tun" if hw.sa_family == ARPHRD_NONE else "tap"


# ---------------------------------------------------------------------------
# public entry points
# ---------------------------------------------------------------------------
def open_tun(
    name: str | None = None,
    *,
    mode: str = "tun",
    pi: bool = False,
    queues: int = 1,
    multi_queue: bool | None = None,
    vnet_hdr: bool = False,
    vnet_hdr_len: int = VIRTIO_NET_HDR_LEN,
    offloads: TunOffload | int | None = None,
    persist: bool = False,
    owner: int | str | None = None,
    group: int | str | None = None,
    exclusive: bool = True,
    path: str = TUN_PATH,
    create_node: bool = False,
) -> Device:
    """Create a TUN or TAP device and open ``queues`` descriptors on it.

    Parameters:
        name: exact name (``tk0``), template (``tk%d``) or ``None`` (the kernel
            picks ``tun%d``/``tap%d``); :attr:`Device.name` has the result.
        mode: ``"tun"`` (IP packets) or ``"tap"`` (Ethernet frames).
        pi: prepend ``struct tun_pi`` (``IFF_NO_PI`` is the default).
        queues: descriptors to open; more than one implies ``multi_queue``.
        vnet_hdr, vnet_hdr_len, offloads: virtio_net_hdr mode; ``offloads``
            ``None`` walks :data:`OFFLOAD_LADDER`, a mask is tried first.
        persist, owner, group: ``TUNSETPERSIST``/``TUNSETOWNER``/``TUNSETGROUP``.
        exclusive: ``IFF_TUN_EXCL`` (an existing name is an error, not an attach).
        path, create_node: the clone device, and whether to ``mknod`` it if missing.

    Raises:
        ValueError: bad name, unknown mode, bad queue count, offloads without vnet_hdr.
        DeviceError: the kernel refused (name taken, missing privilege, missing
            ``/dev/net/tun``...), naming the device and the cause.  Every
            descriptor opened so far is closed first.
    """
    label = name if name is not None else f"{mode}%d"
    mode_flag = _mode_flag(mode, label)
    raw = b"" if name is None else validate_name(name)
    _check_queue_count(queues, label)
    if multi_queue is None:
        multi_queue = queues > 1
    elif queues > 1 and not multi_queue:
        raise ValueError(f"{label}: {queues} queues need multi_queue=True")
    if offloads and not vnet_hdr:
        raise ValueError(f"{label}: offloads need vnet_hdr=True")
    owner_id = _resolve_id(owner, "user", label)
    group_id = _resolve_id(group, "group", label)
    flags = mode_flag | (TunFlag(0) if pi else TunFlag.NO_PI)
    if multi_queue:
        flags |= TunFlag.MULTI_QUEUE
    if vnet_hdr:
        flags |= TunFlag.VNET_HDR
    if exclusive:
        flags |= TunFlag.TUN_EXCL
    opened = _negotiate(path, raw, flags, label, creating=True, offloads=_offload_arg(offloads),
                        create_node=create_node)
    return Device._build(opened, mode, pi, queues, vnet_hdr_len=vnet_hdr_len, path=path,
                         owner=owner_id, group=group_id, persist=persist)


def delete(name: str, *, mode: str | None = None, path: str = TUN_PATH) -> None:
    """Delete the persistent TUN/TAP device ``name`` (like ``ip tuntap del``).

    Attaches to it, clears ``persist`` and closes.  ``ENODEV`` if there is no
    such device; ``EBUSY`` if another process holds its only queue.  A
    non-persistent multi-queue device held elsewhere stays until its holder
    closes it.
    """
    with Device.attach(name, mode=mode, path=path) as dev:
        dev.persist = False


# ---------------------------------------------------------------------------
# listing: rtnetlink IFLA_TUN_* for the calling thread's namespace
# ---------------------------------------------------------------------------
def list_tun_devices() -> list:
    """The TUN/TAP devices of the calling thread's network namespace, by ifindex.

    Each is the link's :class:`~tunkit.netlink.rtnl.LinkMessage` (``ifname``,
    ``index``, ...) whose ``linkinfo.data`` is a
    :class:`~tunkit.netlink.rtnl.TunInfo`: type (1 TUN, 2 TAP), owner, group,
    pi, vnet_hdr, persist, multi_queue and the queue counts, the kernel's
    exact ``IFLA_TUN_*`` attributes (Linux 4.15+).  Read over rtnetlink, so it
    shows the namespace of the calling thread even after ``setns``, where
    ``/sys`` (and ``ip tuntap show``, which reads it) shows another one.
    """
    from tunkit.netlink.client import Rtnl  # noqa: PLC0415 (lazy: only listing needs netlink)
    from tunkit.netlink.rtnl import TunInfo  # noqa: PLC0415

    with Rtnl() as rt:
        links = rt.links()
    tun = [link for link in links if link.linkinfo is not None and isinstance(link.linkinfo.data, TunInfo)]
    return sorted(tun, key=lambda link: link.index or 0)


def _tun_link(name: str):
    """``name``'s TunInfo from rtnetlink; None if it is no TUN/TAP device (OSError: no such link, no netlink)."""
    from tunkit.netlink.client import Rtnl  # noqa: PLC0415
    from tunkit.netlink.rtnl import TunInfo  # noqa: PLC0415

    with Rtnl() as rt:
        link = rt.link(name)
    data = link.linkinfo.data if link.linkinfo is not None else None
    return data if isinstance(data, TunInfo) else None


def _kernel_pi(name: str) -> bool:
    """Whether ``name`` has pi on (``IFLA_TUN_PI``); False (tunkit's default) if the kernel cannot tell."""
    try:
        info = _tun_link(name)
    except OSError:  # gone, or no netlink here: assume tunkit's default
        return False
    return bool(info is not None and info.pi)
