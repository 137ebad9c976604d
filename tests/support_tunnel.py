"""Helpers for the tunnel tests: a pump, packet builders in the tunnel tests' shape, namespace labs."""

from __future__ import annotations

import select
import struct

from support_device import FakeQueue  # noqa: F401  (the one fake TUN queue)
from support_device import inet_checksum as checksum  # noqa: F401  (the one RFC 1071 reference)
from support_offload import tcp4, udp4, udp6  # the one set of packet builders

VNET = struct.Struct("=BBHHHH")


def pump(*fds_handlers, timeout: float = 2.0, rounds: int = 20) -> None:
    """Wait for any of the (fileobj, handler) pairs to be readable and run its handler, until idle."""
    objs = {(f if isinstance(f, int) else f.fileno()): h for f, h in fds_handlers}
    for _ in range(rounds):
        r, _, _ = select.select(list(objs), [], [], timeout)
        if not r:
            return
        for fd in r:
            objs[fd]()
        timeout = 0.05  # after the first event, only wait for stragglers


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, df: bool = True, ident: int = 1) -> bytes:
    return udp4(payload, sport=sport, dport=dport, src=src, dst=dst, ident=ident, df=df)


def ipv6_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    return udp6(payload, sport=sport, dport=dport, src=src, dst=dst, flow=0)


def ipv4_tcp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, seq: int = 1000, flags: int = 0x18) -> bytes:
    """An IPv4/TCP packet (default ACK|PSH) with a full checksum."""
    return tcp4(payload, seq=seq, ack=1, flags=flags, sport=sport, dport=dport, src=src, dst=dst, ident=7, df=True, window=65535)


# ---------------------------------------------------------------------------
# Namespace labs (privileged tests and bench/bench_tunnel.py)
# ---------------------------------------------------------------------------
def underlay4(i: int) -> str:
    return f"198.51.100.{i + 1}"


def underlay6(i: int) -> str:
    return f"2001:db8:ff::{i + 1}"


def overlay4(i: int) -> str:
    return f"198.18.0.{i + 1}"


def overlay6(i: int) -> str:
    return f"2001:db8:1::{i + 1}"


def build_lab(make_ns, n: int, *, mtu: int = 1500) -> list:
    """``n`` host namespaces plus a switch namespace joined by a bridge; returns the host namespaces.

    Host ``i`` has ``eth0`` with underlay4(i)/24 and underlay6(i)/64 (no DAD).
    ``make_ns(name)`` makes a namespace (the ``netns_factory`` fixture or NetNS).
    """
    import subprocess

    sw = make_ns("switch")
    sw.run(["ip", "link", "add", "br0", "type", "bridge"])
    sw.run(["ip", "link", "set", "br0", "up"])
    hosts = []
    for i in range(n):
        h = make_ns(f"host{i}")
        holder = h.popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            sw.run(["ip", "link", "add", f"sw{i}", "mtu", str(mtu), "type", "veth", "peer", "name", "eth0",
                    "mtu", str(mtu), "netns", str(holder.pid)])
        finally:
            holder.kill()
            holder.wait()
        sw.run(["ip", "link", "set", f"sw{i}", "master", "br0", "up"])
        h.run(["ip", "addr", "add", f"{underlay4(i)}/24", "dev", "eth0"])
        h.run(["ip", "addr", "add", f"{underlay6(i)}/64", "dev", "eth0", "nodad"])
        h.run(["ip", "link", "set", "eth0", "up"])
        hosts.append(h)
    return hosts


def icmp_echo(dst: str, *, timeout: float = 2.0) -> bool:
    """One ICMP/ICMPv6 echo from the calling thread's namespace (the demo's ping; raw socket, root)."""
    from tunkit.app.demo import ping

    try:
        return bool(ping(dst, count=1, timeout=timeout))
    except OSError:  # no route (yet): no answer
        return False
