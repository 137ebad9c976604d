"""Opening queue descriptors on the clone device ``/dev/net/tun``: TUNSETIFF and the offload ladder; does I/O.

:func:`negotiate` opens a device's first descriptor, :func:`open_queue` each
further one; :class:`tunkit.tun.device.Device` is built on what they return.

* The descriptor is switched to non-blocking only *after* ``TUNSETIFF``.  An
  unattached ``/dev/net/tun`` file polls as an error (golang/go#30426), so no
  poller may see it before that.
* With ``vnet_hdr`` offloads are negotiated as a ladder (:data:`OFFLOAD_LADDER`);
  if the kernel refuses every rung the device is reopened without the header
  (``IFF_VNET_HDR`` cannot be cleared on a live file).
* The node itself (``mknod /dev/net/tun c 10 200``) is made only when asked
  (:func:`create_tun_node`).
"""

from __future__ import annotations

import errno
import os
import stat
from typing import NamedTuple

from tunkit._uapi import MISC_MAJOR, TUN_MINOR, TUNSETIFF, TUNSETOFFLOAD, TunFlag, TunOffload
from tunkit.errors import DeviceError
from tunkit.tun import ifreq
from tunkit.tun.ifreq import Ifreq, close_quietly, flag_names

__all__ = [
    "TUN_PATH",
    "MODES",
    "OFFLOAD_LADDER",
    "offload_ladder",
    "mode_flag",
    "create_tun_node",
    "Opened",
    "open_queue",
    "negotiate",
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


def mode_flag(mode: str, label: str | None) -> TunFlag:
    try:
        return MODES[mode]
    except (KeyError, TypeError):
        where = f"{label}: " if label else ""
        raise ValueError(f"{where}unknown mode {mode!r} (expected 'tun' or 'tap')") from None


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
        ifreq.ioctl(fd, TUNSETIFF, req)
    except OSError as e:
        raise _setiff_error(e.errno, label, flags, creating) from None
    return req.ifr_name.decode()


def _setiff_error(err: int | None, label: str | None, flags: TunFlag, creating: bool) -> DeviceError:
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


class Opened(NamedTuple):
    """One queue descriptor after TUNSETIFF (and the ladder): what the kernel agreed to."""

    fd: int
    name: str
    flags: TunFlag  # the TUNSETIFF flags in effect (VNET_HDR dropped if the ladder failed)
    offloads: TunOffload | None


def open_queue(path: str, raw_name: bytes, flags: TunFlag, label: str | None, *, creating: bool,
                create_node: bool = False) -> tuple[int, str]:
    """open + TUNSETIFF + O_NONBLOCK (in that order); the fd is closed on any failure."""
    fd = _open_tun_file(path, label, create_node)
    try:
        name = _set_iff(fd, raw_name, flags, label, creating=creating)
        os.set_blocking(fd, False)  # only now: an unattached tun file polls as an error
    except BaseException:
        close_quietly(fd)
        raise
    return fd, name


def negotiate(path: str, raw_name: bytes, flags: TunFlag, label: str | None, *, creating: bool,
               offloads: TunOffload | None, create_node: bool) -> Opened:
    """Open the first queue; with VNET_HDR walk the offload ladder, reopening without it if needed."""
    fd, name = open_queue(path, raw_name, flags, label, creating=creating, create_node=create_node)
    if not flags & TunFlag.VNET_HDR:
        return Opened(fd, name, flags, None)
    try:
        for mask in offload_ladder(offloads):
            try:
                ifreq.ioctl(fd, TUNSETOFFLOAD, int(mask))
            except OSError as e:
                if e.errno != errno.EINVAL:  # EINVAL: this kernel does not know a bit; try the next rung
                    raise DeviceError(e.errno, name, f"TUNSETOFFLOAD {flag_names(mask)} failed") from None
                continue
            return Opened(fd, name, flags, TunOffload(mask))
    except BaseException:
        close_quietly(fd)
        raise
    # Every rung refused.  IFF_VNET_HDR cannot be cleared on a live file: close
    # it (a non-persistent device disappears) and open again without it.
    close_quietly(fd)
    flags &= ~TunFlag.VNET_HDR
    fd, name = open_queue(path, name.encode(), flags, label, creating=creating)
    return Opened(fd, name, flags, TunOffload(0))
