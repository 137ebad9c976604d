"""Helpers for the device and tuntap CLI tests: an IPv4/UDP oracle, ``ip`` lookups, fd counting."""

from __future__ import annotations

import ipaddress
import os
import struct
import subprocess
import sys

import support

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

IPV4 = struct.Struct("!BBHHHBBH4s4s")  # ver/ihl, tos, total length, id, flags/frag, ttl, proto, csum, src, dst
UDP = struct.Struct("!HHHH")  # sport, dport, length, checksum
DF = 0x4000


def inet_checksum(data: bytes) -> int:
    """RFC 1071 one's-complement sum, the ten-line reference."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, ident: int = 0,
             ttl: int = 64, frag: int = 0, tos: int = 0) -> bytes:
    """A complete IPv4/UDP packet with correct header and UDP checksums."""
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    ulen = UDP.size + len(payload)
    pseudo = s + d + struct.pack("!BBH", 0, 17, ulen)
    ucsum = inet_checksum(pseudo + UDP.pack(sport, dport, ulen, 0) + payload) or 0xFFFF
    udp = UDP.pack(sport, dport, ulen, ucsum) + payload
    hdr = IPV4.pack(0x45, tos, IPV4.size + len(udp), ident, frag, ttl, 17, 0, s, d)
    hdr = hdr[:10] + struct.pack("!H", inet_checksum(hdr)) + hdr[12:]
    return hdr + udp


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

    from tunkit.device import TUN_PATH, create_tun_node

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
