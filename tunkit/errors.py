"""tunkit's exception types; pure, no I/O.

Few and stdlib-compatible, so callers can catch what they already know:

* :class:`DecodeError` (a ``ValueError``): malformed bytes from the kernel or
  the wire.  Every decoder raises only this for bad input.
* :class:`NetlinkError` (an ``OSError``): the kernel refused a netlink
  request.  Carries ``errno``, the operation, the object and the kernel's
  extended-ack text, e.g. ``route add 198.51.100.0/24 dev tk0: File exists``.
* :class:`DeviceError` (an ``OSError``): a TUN/TAP operation failed; the
  message names the device and the cause.
* :class:`DeviceClosedError`: the device was closed (also by another thread)
  while an operation was waiting on it.
* :class:`ConfigError` (a ``ValueError``): a configuration file is invalid;
  names the file, the key path and the bad value.
"""

from __future__ import annotations

import errno as _errno


class TunkitError(Exception):
    """Root of every exception tunkit raises on purpose."""


class DecodeError(TunkitError, ValueError):
    """Malformed input to a decoder (netlink, packet headers, virtio_net_hdr)."""


class NetlinkError(TunkitError, OSError):
    """The kernel answered a netlink request with an error.

    ``errno`` and ``strerror`` behave as for any ``OSError``.  Extra fields:

    * ``op``: what was asked, e.g. ``"route add"``;
    * ``obj``: what it was asked of, e.g. ``"198.51.100.0/24 dev tk0"``;
    * ``message``: the kernel's extended-ack text, or ``None``;
    * ``offset``: the ext-ack byte offset of the offending attribute, or ``None``;
    * ``seq``: the request's sequence number, or ``None``.
    """

    def __init__(
        self,
        err: int,
        op: str = "",
        obj: str = "",
        message: str | None = None,
        offset: int | None = None,
        seq: int | None = None,
    ) -> None:
        strerror = _errno_text(err)
        super().__init__(err, strerror)
        self.op = op
        self.obj = obj
        self.message = message
        self.offset = offset
        self.seq = seq

    def __str__(self) -> str:
        head = " ".join(p for p in (self.op, self.obj) if p)
        text = self.strerror
        if self.message:
            text = f"{text} ({self.message})"
        return f"{head}: {text}" if head else text

    def __reduce__(self):  # keep pickling (multiprocessing) lossless
        return (type(self), (self.errno, self.op, self.obj, self.message, self.offset, self.seq))


class DeviceError(TunkitError, OSError):
    """A TUN/TAP device operation failed.

    ``errno`` is the underlying errno (or ``None``); ``device`` names the device
    (or the requested name/template); ``str(e)`` says what was being done.
    """

    def __init__(self, err: int | None, device: str | None, message: str) -> None:
        if err is None:
            super().__init__(message)
        else:
            super().__init__(err, message)
        self.device = device
        self.message = message

    def __str__(self) -> str:
        where = f"{self.device}: " if self.device else ""
        if self.errno is not None:
            return f"{where}{self.message}: {_errno_text(self.errno)}"
        return f"{where}{self.message}"

    def __reduce__(self):
        return (type(self), (self.errno, self.device, self.message))


class DeviceClosedError(DeviceError):
    """The device (or queue) was closed, possibly by another thread, during an operation."""

    def __init__(self, device: str | None, message: str = "device is closed") -> None:
        super().__init__(_errno.EBADF, device, message)

    def __str__(self) -> str:
        where = f"{self.device}: " if self.device else ""
        return f"{where}{self.message}"

    def __reduce__(self):
        return (type(self), (self.device, self.message))


class ConfigError(TunkitError, ValueError):
    """An invalid configuration: names the file, the key path and the bad value."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.message = message
        where = ":".join(p for p in (file, key) if p)
        super().__init__(f"{where}: {message}" if where else message)


def _errno_text(err: int) -> str:
    # os.strerror would need the os module; errorcode plus a short table keeps this pure.
    return _STRERROR.get(err) or _errno.errorcode.get(err, f"errno {err}")


_STRERROR = {
    _errno.EPERM: "Operation not permitted",
    _errno.ENOENT: "No such file or directory",
    _errno.ESRCH: "No such process",
    _errno.EINTR: "Interrupted system call",
    _errno.EIO: "Input/output error",
    _errno.ENXIO: "No such device or address",
    _errno.EBADF: "Bad file descriptor",
    _errno.EAGAIN: "Resource temporarily unavailable",
    _errno.ENOMEM: "Cannot allocate memory",
    _errno.EACCES: "Permission denied",
    _errno.EFAULT: "Bad address",
    _errno.EBUSY: "Device or resource busy",
    _errno.EEXIST: "File exists",
    _errno.ENODEV: "No such device",
    _errno.EINVAL: "Invalid argument",
    _errno.ENFILE: "Too many open files in system",
    _errno.EMFILE: "Too many open files",
    _errno.ENOTTY: "Inappropriate ioctl for device",
    _errno.ENOSPC: "No space left on device",
    _errno.ERANGE: "Numerical result out of range",
    _errno.ENAMETOOLONG: "File name too long",
    _errno.ENOSYS: "Function not implemented",
    _errno.ENOTSUP: "Operation not supported",
    _errno.EOPNOTSUPP: "Operation not supported",
    _errno.EAFNOSUPPORT: "Address family not supported by protocol",
    _errno.EADDRINUSE: "Address already in use",
    _errno.EADDRNOTAVAIL: "Cannot assign requested address",
    _errno.ENETDOWN: "Network is down",
    _errno.ENETUNREACH: "Network is unreachable",
    _errno.ENOBUFS: "No buffer space available",
    _errno.ETIMEDOUT: "Connection timed out",
    _errno.EHOSTUNREACH: "No route to host",
    _errno.EMSGSIZE: "Message too long",
    _errno.EPROTONOSUPPORT: "Protocol not supported",
    _errno.ESRCH: "No such process",
}
