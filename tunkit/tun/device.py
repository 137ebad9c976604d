"""TUN/TAP devices: create, attach or adopt one and set its interface properties; does I/O.

The package splits the TUN layer by what each part touches: :mod:`tunkit.tun.ifreq`
(``struct ifreq`` and the ioctls), :mod:`tunkit.tun.clone` (opening descriptors on
``/dev/net/tun``, TUNSETIFF, the offload ladder), :mod:`tunkit.tun.queue` (one
descriptor's packet I/O, :class:`Queue`) and this module (:class:`Device`, a set of
queues plus the interface; :func:`open_tun`, :func:`delete`, :func:`list_tun_devices`).
Every public name of those modules that callers used from here is re-exported, so
``from tunkit.tun.device import open_tun, Queue, Ifreq, ...`` keeps working.

Why this module is over 600 lines: :class:`Device` is one type of about 430 lines
(construction from a new, an existing or an inherited descriptor, queue add/remove,
TUN flags, owner/group/persist, the interface properties) whose methods share one
lock, one control socket and one set of negotiated settings; splitting it into
mixins would spread one type over files without making any part independent.
What could stand alone already does (the modules above).

    from tunkit.tun.device import open_tun

    with open_tun("tk%d", queues=2) as dev:     # name template: dev.name is e.g. "tk0"
        dev.mtu = 1400
        dev.up()
        pkt = dev.read(timeout=1.0)             # bytes, or None when the timeout expired

Behaviour worth knowing (each one learned the hard way by the Go TUN layers; the
descriptor-level ones are in :mod:`tunkit.tun.clone` and :mod:`tunkit.tun.queue`):

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

import errno
import grp
import os
import pwd
import socket
import threading
from collections.abc import Iterable, Sequence

from tunkit.ifname import validate_name
from tunkit._uapi import (
    ARPHRD_ETHER,
    ARPHRD_NONE,
    ETH_ALEN,
    SIOCGIFFLAGS,
    SIOCGIFHWADDR,
    SIOCGIFINDEX,
    SIOCGIFMTU,
    SIOCGIFTXQLEN,
    SIOCSIFFLAGS,
    SIOCSIFHWADDR,
    SIOCSIFMTU,
    SIOCSIFTXQLEN,
    TUN_PI_LEN,
    TUNSETGROUP,
    TUNSETOFFLOAD,
    TUNSETOWNER,
    VIRTIO_NET_HDR_LEN,
    IfFlag,
    TunFlag,
    TunOffload,
)
from tunkit.errors import DeviceClosedError, DeviceError
from tunkit.tun import ifreq
from tunkit.tun.clone import (
    MODES,
    OFFLOAD_LADDER,
    TUN_PATH,
    Opened,
    create_tun_node,
    mode_flag,
    negotiate,
    offload_ladder,
    open_queue,
)
from tunkit.tun.ifreq import (
    Ifmap,
    Ifreq,
    IfreqUnion,
    Sockaddr,
    close_quietly,
    flag_names,
    get_vnet_hdr_len,
    interface_probe,
    set_persist,
    set_vnet_hdr_len,
    tun_getiff,
)
from tunkit.tun.queue import MAX_FRAME, Queue

__all__ = [
    "TUN_PATH",
    "MODES",
    "OFFLOAD_LADDER",
    "Ifreq",
    "Ifmap",
    "IfreqUnion",
    "Sockaddr",
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
    def _build(cls, opened: Opened, mode: str, pi: bool, queues: int, *, vnet_hdr_len: int, path: str,
               owner: int | None = None, group: int | None = None, persist: bool = False) -> "Device":
        """Finish a device from its first queue: header size, owner/group, persist, extra queues.

        On failure every descriptor is closed and a ``persist`` set here is cleared again.
        """
        fd, name, flags, offloads = opened
        try:
            queue = Queue(fd, name)  # owns fd from here
        except BaseException:
            close_quietly(fd)
            raise
        ctl = dev = None
        persist_set = False
        asked_vnet = bool(flags & TunFlag.VNET_HDR)
        try:
            flags, offloads, pi = _reconcile(fd, name, flags, offloads, pi)
            hdr_len = 0
            if flags & TunFlag.VNET_HDR:  # ours to size only if we asked for it (else read it back)
                hdr_len = set_vnet_hdr_len(fd, name, vnet_hdr_len) if asked_vnet else get_vnet_hdr_len(fd, name)
            queue.read_size = MAX_FRAME + hdr_len + (TUN_PI_LEN if pi else 0)
            for request, value, what in ((TUNSETOWNER, owner, "owner"), (TUNSETGROUP, group, "group")):
                if value is not None:
                    try:
                        ifreq.ioctl(fd, request, value)
                    except OSError as e:
                        raise DeviceError(e.errno, name, f"cannot set {what} to {value}") from None
            if persist:
                set_persist(fd, name, True)
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
                    set_persist(fd, name, False)  # leave no half-made persistent device behind
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
        base = mode_flag(mode, name) | (TunFlag(0) if pi else TunFlag.NO_PI)
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
                opened = negotiate(path, raw, flags, name, creating=False,
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
        name, flags = tun_getiff(fd, f"fd {fd}")
        mode = "tap" if flags & TunFlag.TAP else "tun"
        if pi is None:
            pi = _kernel_pi(name)
        flags = (flags & ~TunFlag.NO_PI) | (TunFlag(0) if pi else TunFlag.NO_PI)
        hdr_len = get_vnet_hdr_len(fd, name) if flags & TunFlag.VNET_HDR else 0
        off = TunOffload(0) if not flags & TunFlag.VNET_HDR else _offload_arg(offloads)
        os.set_inheritable(fd, False)
        os.set_blocking(fd, False)
        queue = Queue(fd, name, read_size=MAX_FRAME + hdr_len + (TUN_PI_LEN if pi else 0),
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
                fd, _name = open_queue(self._path, self.name.encode(), self._flags, self.name, creating=False)
                try:
                    self._replay(fd)
                except BaseException:
                    close_quietly(fd)
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
                ifreq.ioctl(fd, TUNSETOFFLOAD, int(self.offloads))
            except OSError as e:
                raise DeviceError(e.errno, self.name, f"replaying TUNSETOFFLOAD {flag_names(self.offloads)} on a new queue failed") from None
        set_vnet_hdr_len(fd, self.name, self.vnet_hdr_len)

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
            set_persist(fd, self.name, bool(value))
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
            ifreq.ioctl(fd, request, value)
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
            ifreq.ioctl(self._ctl.fileno(), request, req)
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


def _reconcile(fd: int, name: str, flags: TunFlag, offloads: TunOffload | None,
               pi: bool) -> tuple[TunFlag, TunOffload | None, bool]:
    """Check the flags asked for against what the device has (``TUNGETIFF``).

    They differ when queues were added to a multi-queue device that other
    descriptors hold: the kernel keeps the device's flags then.  The device's
    truth wins; ``pi`` comes from rtnetlink (``TUNGETIFF`` cannot tell), offloads
    become unknown.
    """
    _name, actual = tun_getiff(fd, name)
    if (actual ^ flags) & TunFlag.VNET_HDR:
        flags ^= TunFlag.VNET_HDR
        offloads = None if actual & TunFlag.VNET_HDR else TunOffload(0)
        pi = _kernel_pi(name)
        flags = (flags | TunFlag.NO_PI) if not pi else (flags & ~TunFlag.NO_PI)
    return flags, offloads, pi


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
    hw = interface_probe(name, SIOCGIFHWADDR, "get hardware address").ifr_hwaddr
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
    kind = mode_flag(mode, label)
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
    flags = kind | (TunFlag(0) if pi else TunFlag.NO_PI)
    if multi_queue:
        flags |= TunFlag.MULTI_QUEUE
    if vnet_hdr:
        flags |= TunFlag.VNET_HDR
    if exclusive:
        flags |= TunFlag.TUN_EXCL
    opened = negotiate(path, raw, flags, label, creating=True, offloads=_offload_arg(offloads),
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
