"""``struct ifreq`` and the TUN/interface ioctls tunkit issues; does I/O (ioctls on descriptors).

The :mod:`ctypes` layout of ``struct ifreq`` (``linux/if.h``) and one thin
helper per ioctl the TUN layer needs (``TUNGETIFF``, ``TUN[GS]ETVNETHDRSZ``,
``TUNSETPERSIST``, a ``SIOCG*`` probe).  Every ioctl goes through
:func:`ioctl`; the other modules of :mod:`tunkit.tun` call it as
``ifreq.ioctl(...)``, so a test that replaces ``tunkit.tun.ifreq.ioctl`` sees
(and can refuse) every call.  Errors become :class:`~tunkit.errors.DeviceError`
naming the device and the request.
"""

from __future__ import annotations

import ctypes
import enum
import errno
import fcntl
import os
import socket

from tunkit._uapi import IFNAMSIZ, TUNGETIFF, TUNGETVNETHDRSZ, TUNSETPERSIST, TUNSETVNETHDRSZ, VIRTIO_NET_HDR_LEN, TunFlag
from tunkit.errors import DeviceError

__all__ = [
    "Sockaddr",
    "Ifmap",
    "IfreqUnion",
    "Ifreq",
    "ioctl",
    "flag_names",
    "tun_getiff",
    "get_int",
    "set_vnet_hdr_len",
    "get_vnet_hdr_len",
    "set_persist",
    "interface_probe",
    "close_quietly",
]


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


def ioctl(fd: int, request: int, arg) -> None:
    """The one place tunkit issues TUN and interface ioctls (a seam tests can wrap: callers use ``ifreq.ioctl``).

    ``arg`` is an int passed by value, or a writable buffer (an :class:`Ifreq`
    or a ``ctypes.c_int``) that the kernel fills in place.
    """
    if isinstance(arg, int):
        fcntl.ioctl(fd, request, arg)
    else:
        fcntl.ioctl(fd, request, arg, True)


# ---------------------------------------------------------------------------
# ioctl helpers
# ---------------------------------------------------------------------------
def flag_names(flags: enum.IntFlag | None) -> str:
    """``TUN|NO_PI``-style text for a flag set (``0`` when empty); ``str()`` prints a number on 3.11+."""
    if flags is None:
        return "unknown"
    return flags.name or ("0" if not flags else hex(int(flags)))


def tun_getiff(fd: int, label: str | None) -> tuple[str, TunFlag]:
    req = Ifreq()
    try:
        ioctl(fd, TUNGETIFF, req)
    except OSError as e:
        if e.errno == errno.EBADFD:
            msg = f"descriptor {fd} is not attached to a TUN/TAP device"
        elif e.errno in (errno.ENOTTY, errno.EINVAL):
            msg = f"descriptor {fd} is not a /dev/net/tun file"
        else:
            msg = "TUNGETIFF failed"
        raise DeviceError(e.errno, label, msg) from None
    return req.ifr_name.decode(), TunFlag(req.ifr_flags)


def get_int(fd: int, request: int) -> int:
    val = ctypes.c_int(0)
    ioctl(fd, request, val)
    return val.value


def set_vnet_hdr_len(fd: int, name: str, length: int) -> int:
    """TUNSETVNETHDRSZ then read it back; returns what the kernel holds."""
    try:
        ioctl(fd, TUNSETVNETHDRSZ, ctypes.c_int(length))
        return get_int(fd, TUNGETVNETHDRSZ)
    except OSError as e:
        raise DeviceError(e.errno, name, f"cannot set the vnet header size to {length} (the kernel needs >= {VIRTIO_NET_HDR_LEN})") from None


def get_vnet_hdr_len(fd: int, name: str) -> int:
    try:
        return get_int(fd, TUNGETVNETHDRSZ)
    except OSError as e:
        raise DeviceError(e.errno, name, "TUNGETVNETHDRSZ failed") from None


def set_persist(fd: int, name: str, on: bool) -> None:
    try:
        ioctl(fd, TUNSETPERSIST, 1 if on else 0)
    except OSError as e:
        raise DeviceError(e.errno, name, f"cannot {'set' if on else 'clear'} persist") from None


def interface_probe(name: str, request: int, what: str) -> Ifreq:
    """One SIOCG* ioctl on ``name`` from a throwaway socket in the calling thread's namespace."""
    req = Ifreq(ifr_name=name.encode())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
        try:
            ioctl(s.fileno(), request, req)
        except OSError as e:
            msg = "no such device" if e.errno == errno.ENODEV else what
            raise DeviceError(e.errno, name, msg) from None
    return req


def close_quietly(fd: int | None) -> None:
    if fd is not None and fd >= 0:
        try:
            os.close(fd)
        except OSError:  # cleanup on an error path: the original error matters more
            pass
