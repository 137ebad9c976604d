"""Network namespaces: anonymous ones for tests and the demo, named ones as ``ip netns``; does I/O.

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

Named namespaces are made exactly as iproute2 makes them, so ``ip netns``
sees tunkit's and tunkit sees ip's: :func:`add` bind-mounts a new
namespace's ``/proc/thread-self/ns/net`` on ``/run/netns/NAME`` (after making
``/run/netns`` a shared mount point), :func:`delete` lazily unmounts and
unlinks it, :func:`names` lists the directory, and :func:`run`/:func:`exec_`
start a command inside (with ``/sys`` remounted and ``/etc/netns/NAME/*``
bound over ``/etc`` in a private mount namespace, as ``ip netns exec`` does).
:func:`call_in` runs a function in a short-lived helper thread that entered a
namespace given by name, path, fd or :class:`NetNS`; it is how
``Rtnl(netns="name")`` opens its socket there without the calling thread
ever leaving its own namespace.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import subprocess
import threading
from collections.abc import Iterator, Sequence

from tunkit._uapi import CLONE_NEWNET

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_libc.unshare.argtypes = [ctypes.c_int]
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_void_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]

# linux/mount.h (mount flags) and sys/mount.h (umount2 flags), as iproute2's ip/ipnetns.c uses them
MS_BIND = 0x1000  # bind mount
MS_REC = 0x4000  # recursive
MS_SLAVE = 0x80000  # propagation: receive from the parent, send nothing back
MS_SHARED = 0x100000  # propagation: shared peer group
MNT_DETACH = 2  # lazy unmount
CLONE_NEWNS = 0x00020000  # linux/sched.h: new mount namespace
NETNS_RUN_DIR = "/run/netns"  # where iproute2 keeps named namespaces
NETNS_ETC_DIR = "/etc/netns"  # per-namespace files bound over /etc by ip netns exec


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


# ---------------------------------------------------------------------------
# named namespaces (ip netns add/del/list/exec)
# ---------------------------------------------------------------------------
def _mount(src: str, target: str, fstype: str, flags: int) -> None:
    if _libc.mount(src.encode(), target.encode(), fstype.encode(), flags, None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {src or fstype!r} on {target}: {os.strerror(err)}")


def _umount(target: str) -> None:
    if _libc.umount2(target.encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


def netns_path(name: str) -> str:
    """``/run/netns/NAME`` for a valid namespace name (``ValueError`` naming it otherwise)."""
    if not isinstance(name, str) or not name or name in (".", "..") or "/" in name or "\0" in name or len(name) > 255:
        raise ValueError(f"netns name {name!r}: want 1-255 characters, no '/' or NUL, not '.' or '..'")
    return os.path.join(NETNS_RUN_DIR, name)


def names() -> list[str]:
    """Names of the namespaces under /run/netns (``ip netns list``; directory order, as ip prints them)."""
    try:
        return [n for n in os.listdir(NETNS_RUN_DIR) if n not in (".", "..")]
    except FileNotFoundError:  # no namespace was ever named on this host
        return []


def exists(name: str) -> bool:
    return os.path.exists(netns_path(name))


def _share_run_dir() -> None:
    """Make /run/netns a shared mount point, as ip does, so that unmounting a
    namespace file in one mount namespace unmounts it in all of them."""
    os.makedirs(NETNS_RUN_DIR, mode=0o755, exist_ok=True)
    made = False
    while True:
        try:
            _mount("", NETNS_RUN_DIR, "none", MS_SHARED | MS_REC)
            return
        except OSError as e:
            if e.errno != errno.EINVAL or made:
                raise
        _mount(NETNS_RUN_DIR, NETNS_RUN_DIR, "none", MS_BIND | MS_REC)  # not a mount point yet: make it one
        made = True


def add(name: str) -> str:
    """Create the named namespace ``name`` (``ip netns add``); returns its path.

    ``FileExistsError`` if it exists.  Like ip, its loopback is left down.
    The namespace is made in a helper thread (unshare there, bind-mount its
    ``/proc/thread-self/ns/net``), so the calling thread never changes namespace.
    """
    path = netns_path(name)
    _share_run_dir()
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0))
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, f"netns {name}: already exists ({path})") from None

    def create() -> None:  # in a thread that ends right after: its namespace needs no restoring
        _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
        _mount("/proc/thread-self/ns/net", path, "none", MS_BIND)

    try:
        _in_thread(create)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise
    return path


def delete(name: str) -> None:
    """Remove the named namespace ``name`` (``ip netns del``): lazy unmount, then unlink.

    The kernel frees the namespace once no process, socket or mount holds it.
    ``FileNotFoundError`` naming it if there is none.
    """
    path = netns_path(name)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"netns {name}: no such namespace ({path})")
    with contextlib.suppress(OSError):  # not mounted (a half-made one): unlink it all the same, as ip does
        _umount(path)
    os.unlink(path)


def _in_thread(fn, *args, **kw):
    """``fn(*args, **kw)`` in a new short-lived thread; its result, or its exception re-raised here."""
    out: dict[str, object] = {}

    def target() -> None:
        try:
            out["value"] = fn(*args, **kw)
        except BaseException as e:  # handed to the caller's thread
            out["error"] = e

    t = threading.Thread(target=target, name="tunkit-netns", daemon=True)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]  # type: ignore[misc]
    return out.get("value")


def open_netns(netns) -> tuple[int, bool]:
    """``(fd, owned)`` for a namespace given by name, path (has a '/'), fd, :class:`NetNS`
    or object with ``fileno()``; ``owned``: the caller must close ``fd``."""
    if isinstance(netns, NetNS):
        return netns.fd, False
    if isinstance(netns, int):
        return netns, False
    if isinstance(netns, (str, os.PathLike)):
        path = os.fspath(netns)
        if "/" not in path:
            path = netns_path(path)
        try:
            return os.open(path, os.O_RDONLY | os.O_CLOEXEC), True
        except FileNotFoundError:
            raise FileNotFoundError(errno.ENOENT, f"netns {netns}: no such namespace ({path})") from None
    if hasattr(netns, "fileno"):
        return netns.fileno(), False
    raise TypeError(f"netns {netns!r}: want a name, a path, an fd, a NetNS or an object with fileno()")


def call_in(netns, fn, *args, **kw):
    """Run ``fn(*args, **kw)`` in a short-lived thread inside ``netns``; return its result.

    Sockets (and TUN devices) made by ``fn`` stay in that namespace whatever
    thread uses them later, so ``call_in("blue", NetlinkSocket)`` gives a
    netlink socket of namespace ``blue`` while the caller stays where it is.
    """
    fd, owned = open_netns(netns)
    try:
        def inside():
            setns(fd)  # the thread ends after fn: it is never switched back
            return fn(*args, **kw)

        return _in_thread(inside)
    finally:
        if owned:
            os.close(fd)


def enter_for_exec(fd: int, name: str | None) -> None:
    """In a child about to exec (single-threaded): what ``ip netns exec`` does before execvp.

    Enter the namespace, then in a private mount namespace remount /sys (so it
    shows this namespace's devices) and bind ``/etc/netns/NAME/*`` over ``/etc``.
    """
    setns(fd)
    _check(_libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _mount("", "/", "none", MS_SLAVE | MS_REC)  # our mounts below must not leak back to the host
    with contextlib.suppress(OSError):  # EINVAL: /sys was not mounted; mount a fresh one all the same
        _umount("/sys")
    _mount(name or "none", "/sys", "sysfs", 0)
    if name:
        etc = os.path.join(NETNS_ETC_DIR, name)
        with contextlib.suppress(FileNotFoundError):
            for entry in os.listdir(etc):
                with contextlib.suppress(OSError):  # ip warns and goes on when /etc has no such file
                    _mount(os.path.join(etc, entry), os.path.join("/etc", entry), "none", MS_BIND)


def run(netns, args: Sequence[str], *, check: bool = True, timeout: float = 30.0, **kw) -> subprocess.CompletedProcess:
    """Run a command inside a namespace (name, path, fd or NetNS) as ``ip netns exec`` would; wait.

    Default: capture text output and raise ``CalledProcessError`` on a non-zero exit.
    """
    fd, owned = open_netns(netns)
    name = netns if isinstance(netns, str) and "/" not in netns else None
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    try:
        proc = subprocess.run(list(args), preexec_fn=lambda: enter_for_exec(fd, name), timeout=timeout,
                              check=False, **kw)
    finally:
        if owned:
            os.close(fd)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, proc.args, proc.stdout, proc.stderr)
    return proc


def exec_(name: str, args: Sequence[str]):
    """Replace this (single-threaded) process with ``args`` run inside namespace ``name``."""
    if not args:
        raise ValueError("netns exec: no command given")
    fd, _owned = open_netns(name)
    enter_for_exec(fd, name if "/" not in name else None)
    os.close(fd)
    os.execvp(args[0], list(args))
