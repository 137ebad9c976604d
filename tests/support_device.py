"""Helpers for the device, tuntap and tunnel tests: the fake TUN queue, ``ip`` lookups, fd counting."""

from __future__ import annotations

import errno
import os
import select
import socket
import struct
import subprocess
import sys

import support
from support_offload import ipv4_header, ref_checksum, udp_datagram
from tunkit.errors import DeviceError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IPV4 = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, total length, id, flags/frag, ttl, proto, csum, src, dst (for unpacking)
DF = 0x4000

# The reference checksum and the packet builders live in support_offload (one oracle for all tests).
inet_checksum = ref_checksum


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, ident: int = 0,
             ttl: int = 64, frag: int = 0, tos: int = 0) -> bytes:
    """A complete IPv4/UDP packet with correct checksums; ``frag`` is the raw flags/offset field (DF off)."""
    seg = udp_datagram(src, dst, sport, dport, payload)
    return ipv4_header(src, dst, 17, len(seg), ident=ident, df=False, ttl=ttl, tos=tos, frag=frag) + seg


class FakeQueue:
    """A TUN queue stand-in on one end of an AF_UNIX datagram socketpair (one packet per datagram).

    The code under test sees a queue: ``fileno()`` (non-blocking), and ``read``, ``read_batch``,
    ``write``, ``writev`` as :class:`tunkit.tun.device.Queue` has them.  The test is the kernel side:
    ``inject()`` (or ``reads=``) is a packet the kernel routes into the TUN, ``take()``/``take_all()``
    or ``written`` are packets the code wrote out of it.  ``refuse(data)`` true makes a write fail
    with EINVAL, as the kernel does for a header it rejects.
    """

    MAX = 1 << 17  # larger than any super-packet plus its header

    def __init__(self, reads=(), *, refuse=None, vnet_hdr: bool = False) -> None:
        self._s, self.host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self._s, self.host):
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.vnet_hdr = vnet_hdr
        self.refuse = refuse
        self._written: list[bytes] = []
        for raw in reads:  # as the kernel would queue them, headers included
            self.host.send(raw)

    def fileno(self) -> int:
        return self._s.fileno()

    # the queue's side (what tunkit.tun.device.Queue offers)
    def read(self, timeout: float | None = None) -> bytes | None:
        if timeout and not select.select([self._s], [], [], timeout)[0]:
            return None
        try:
            return self._s.recv(self.MAX)
        except BlockingIOError:
            return None

    def read_batch(self, max_packets: int = 64, timeout: float | None = None) -> list[bytes]:
        if max_packets < 1:
            raise ValueError(f"max_packets must be at least 1, not {max_packets}")
        out: list[bytes] = []
        while len(out) < max_packets and (p := self.read(timeout if not out else None)) is not None:
            out.append(p)
        return out

    def _put(self, data: bytes) -> int:
        if self.refuse and self.refuse(data):
            raise DeviceError(errno.EINVAL, "fk0", "writev: the kernel rejected the packet")
        self._s.send(data)
        return len(data)

    def write(self, pkt) -> int:
        return self._put(bytes(pkt))

    def writev(self, bufs) -> int:
        return self._put(b"".join(bytes(b) for b in bufs))

    # the test's side
    def inject(self, pkt: bytes, vnet: bytes | None = None) -> None:
        if self.vnet_hdr:
            pkt = (vnet or bytes(10)) + pkt
        self.host.send(pkt)

    def take(self, timeout: float = 2.0) -> bytes | None:
        r, _, _ = select.select([self.host], [], [], timeout)
        if not r:
            return None
        return self.host.recv(self.MAX)

    def take_all(self, timeout: float = 0.05) -> list[bytes]:
        out = []
        while (p := self.take(timeout)) is not None:
            out.append(p)
        return out

    @property
    def written(self) -> list[bytes]:
        """Everything written so far, in order (each write as the concatenated bytes of the call)."""
        self._written += self.take_all(0)
        return self._written

    def close(self) -> None:
        self._s.close()
        self.host.close()


def link(name: str) -> dict:
    """``ip -d -j link show dev NAME`` (the one entry)."""
    (entry,) = support.ip_json("-d", "link", "show", "dev", name)
    return entry


def link_names() -> set[str]:
    return {e["ifname"] for e in support.ip_json("link", "show")}


def tun_info(name: str) -> dict:
    return link(name)["linkinfo"]["info_data"]


def route_via(name: str, local: str = "198.18.0.1/32", routed: str = "198.51.100.0/24") -> None:
    """Give the TUN an address, no IPv6 link-local (no RS/MLD noise), bring it up and route a prefix to it."""
    support.ip("link", "set", "dev", name, "addrgenmode", "none")
    support.ip("address", "add", local, "dev", name)
    support.ip("link", "set", "dev", name, "up")
    support.ip("route", "add", routed, "dev", name)


def open_fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


def run_python(code: str, *, user: int | None = None, pass_fds=(), timeout: float = 20.0) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter that imports this tree's tunkit.

    Started from the calling thread, so it inherits that thread's network namespace.
    """
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                          user=user, pass_fds=pass_fds, timeout=timeout, check=False)


def world_usable_tun_node() -> str:
    """A /dev/net/tun node any user may open: the system's if it is 0666 (the distro
    default), else a private node in a fresh world-readable directory (not on a nodev mount)."""
    import stat
    import tempfile

    from tunkit.tun.device import TUN_PATH, create_tun_node

    if stat.S_IMODE(os.stat(TUN_PATH).st_mode) & 0o006 == 0o006:
        return TUN_PATH
    d = tempfile.mkdtemp(prefix="tunkit-node-")
    os.chmod(d, 0o755)
    assert not os.statvfs(d).f_flag & os.ST_NODEV, f"{d} is on a nodev mount: cannot host a tun node"
    path = os.path.join(d, "tun")
    create_tun_node(path)
    import atexit
    import shutil

    atexit.register(shutil.rmtree, d, True)
    return path


def run_as(uid: int, func, *, timeout: float = 20.0):
    """Call ``func()`` in a forked child that dropped to ``uid`` (and its capabilities); return its JSON result.

    Forked, not exec'd: the interpreter may live where that user cannot read.  The
    child inherits the calling thread's network namespace.
    """
    import json
    import select

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)  # root -> non-root clears the capability sets
            os.write(w, json.dumps(func()).encode())
            code = 0
        except BaseException as e:  # report anything to the parent, which fails the test
            os.write(w, json.dumps({"child_error": repr(e)}).encode())
        finally:
            os._exit(code)
    os.close(w)
    try:
        chunks = []
        while True:
            ready, _, _ = select.select([r], [], [], timeout)
            if not ready:
                os.kill(pid, 9)
                raise TimeoutError("child did not answer")
            chunk = os.read(r, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    return json.loads(b"".join(chunks))
