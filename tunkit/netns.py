"""Anonymous network namespaces for tests, benchmarks and the demo; does I/O.

A :class:`NetNS` is a network namespace held alive only by a file descriptor
of this process: no ``/run/netns`` bind mount, no name on the host.  When the
descriptor is closed, or the process dies for any reason (even SIGKILL), the
kernel frees the namespace together with every device and route in it.  That
is how tests and the demo guarantee that nothing is left behind.

Namespaces are per thread on Linux: :meth:`NetNS.entered` switches only the
calling thread (and the threads and processes it starts afterwards), then
switches back.  Sockets and TUN devices stay in the namespace where they were
created, whatever thread later uses them.

    with NetNS() as ns, ns.entered():
        ...                                   # this thread is inside ns
    ns.run(["ip", "-j", "link"])              # a process inside ns

The host's root namespace is never entered or modified here:
:func:`assert_not_root_netns` is the guard tests call before touching the
network.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence

from tunkit._uapi import CLONE_NEWNET

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]



def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _thread_ns_path() -> str:
    return f"/proc/self/task/{threading.get_native_id()}/ns/net"


def current_netns_inode() -> int:
    """Inode number of the calling thread's network namespace."""
    return os.stat(_thread_ns_path()).st_ino


# include/linux/proc_ns.h: PROC_NET_INIT_INO, the fixed inode of the kernel's initial namespace.
PROC_NET_INIT_INO = 0xEFFFFFF9

# The namespace this process started in (read at import, from the importing thread).
_STARTUP_NETNS_INODE = os.stat("/proc/self/ns/net").st_ino


def protected_netns_inodes() -> frozenset[int]:
    """Inodes of namespaces tunkit's tests and demo must never modify: the one
    this process started in, the kernel's initial one, and PID 1's (if readable)."""
    inodes = {_STARTUP_NETNS_INODE, PROC_NET_INIT_INO}
    try:
        inodes.add(os.stat("/proc/1/ns/net").st_ino)
    except OSError:  # PID 1's namespace links are often unreadable in sandboxes; the others suffice
        pass
    return frozenset(inodes)


def assert_not_root_netns(what: str = "this operation") -> None:
    """Raise ``RuntimeError`` if the calling thread is in a protected (host) namespace."""
    if current_netns_inode() in protected_netns_inodes():
        raise RuntimeError(f"refusing {what}: the calling thread is in the host's network namespace")


def namespace_problem() -> str | None:
    """Why this process cannot make network namespaces and TUN devices, or None if it can.

    Probes ``unshare(CLONE_NEWNET)`` in a forked child, so this process is untouched.
    """
    if os.geteuid() != 0:
        return "not running as root"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing (load the tun module: modprobe tun)"
    pid = os.fork()
    if pid == 0:  # child: report through the exit code only
        os._exit(0 if _libc.unshare(CLONE_NEWNET) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return "cannot create a network namespace (unshare(CLONE_NEWNET) failed)"
    return None


def setns(fd: int) -> None:
    """Move the calling thread into the network namespace behind ``fd``."""
    _check(_libc.setns(fd, CLONE_NEWNET), "setns(CLONE_NEWNET)")


def set_link_up(name: str = "lo") -> None:
    """Set ``name`` up in the calling thread's namespace (over rtnetlink)."""
    from tunkit.netlink.client import Rtnl

    with Rtnl() as rt:
        rt.set_link(name, up=True)


class NetNS:
    """A fresh, anonymous network namespace, alive while this object is open.

    Creating one needs CAP_SYS_ADMIN (root).  Its loopback device is brought
    up.  ``name`` is only a label for messages and process titles.
    """

    def __init__(self, name: str = "netns", *, loopback_up: bool = True) -> None:
        self.name = name
        self._fd: int | None = None
        saved = os.open(_thread_ns_path(), os.O_RDONLY | os.O_CLOEXEC)
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                self._fd = os.open(_thread_ns_path(), os.O_RDONLY | os.O_CLOEXEC)
                self.inode = os.fstat(self._fd).st_ino
                if loopback_up:
                    set_link_up("lo")
            finally:
                setns(saved)  # always return the thread to where it was
        except BaseException:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raise
        finally:
            os.close(saved)

    # -- lifetime -----------------------------------------------------------
    @property
    def fd(self) -> int:
        if self._fd is None:
            raise ValueError(f"network namespace {self.name} is closed")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd is None

    def close(self) -> None:
        """Drop this process's reference; the kernel frees the namespace when no
        process, socket or device holds it any more.  Closing twice is harmless."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "NetNS":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"inode={self.inode}"
        return f"<NetNS {self.name} {state}>"

    # -- using it -----------------------------------------------------------
    @contextlib.contextmanager
    def entered(self) -> Iterator["NetNS"]:
        """Run the ``with`` body with the calling thread inside this namespace."""
        saved = os.open(_thread_ns_path(), os.O_RDONLY | os.O_CLOEXEC)
        try:
            setns(self.fd)
            try:
                yield self
            finally:
                setns(saved)
        finally:
            os.close(saved)

    def _preexec(self) -> None:  # runs in the forked child, before exec
        setns(self.fd)

    def popen(self, args: Sequence[str], **kw) -> subprocess.Popen:
        """Start a process inside this namespace (``subprocess.Popen`` arguments)."""
        self.fd  # raises if closed
        return subprocess.Popen(list(args), preexec_fn=self._preexec, **kw)

    def run(self, args: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kw) -> subprocess.CompletedProcess:
        """Run a command inside this namespace and wait (default: capture text output, check)."""
        kw.setdefault("capture_output", True)
        kw.setdefault("text", True)
        self.fd  # raises if closed
        proc = subprocess.run(list(args), preexec_fn=self._preexec, timeout=timeout, check=False, **kw)
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
        return proc
