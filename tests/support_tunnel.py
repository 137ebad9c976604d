"""Helpers for the tunnel tests: fake TUN queues on socketpairs, packet builders, a pump."""

from __future__ import annotations

import ipaddress
import select
import socket
import struct

VNET = struct.Struct("=BBHHHH")


class FakeQueue:
    """A TUN queue stand-in: one end of an AF_UNIX datagram socketpair.

    The tunnel uses this object; the test uses ``.host`` (the other end) as
    the kernel side: ``inject()`` is a packet the kernel routes into the TUN,
    ``take()`` a packet the tunnel wrote out of it.
    """

    def __init__(self, vnet_hdr: bool = False) -> None:
        self._s, self.host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for s in (self._s, self.host):
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.vnet_hdr = vnet_hdr

    def fileno(self) -> int:  # all the tunnel needs: a non-blocking fd moving one packet per read/write
        return self._s.fileno()

    # the test's side
    def inject(self, pkt: bytes, vnet: bytes | None = None) -> None:
        if self.vnet_hdr:
            pkt = (vnet or bytes(10)) + pkt
        self.host.send(pkt)

    def take(self, timeout: float = 2.0) -> bytes | None:
        r, _, _ = select.select([self.host], [], [], timeout)
        if not r:
            return None
        return self.host.recv(70000)

    def take_all(self, timeout: float = 0.05) -> list[bytes]:
        out = []
        while (p := self.take(timeout)) is not None:
            out.append(p)
        return out

    def close(self) -> None:
        self._s.close()
        self.host.close()


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


from support_device import inet_checksum as checksum  # noqa: E402  (the ten-line RFC 1071 reference)


def ipv4_udp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, df: bool = True, ident: int = 1) -> bytes:
    udp_len = 8 + len(payload)
    total = 20 + udp_len
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, ident, 0x4000 if df else 0, 64, 17, 0, s, d))
    struct.pack_into("!H", hdr, 10, checksum(bytes(hdr)))
    udp = bytearray(struct.pack("!HHHH", sport, dport, udp_len, 0) + payload)
    c = checksum(s + d + struct.pack("!BBH", 0, 17, udp_len) + bytes(udp)) or 0xFFFF
    struct.pack_into("!H", udp, 6, c)
    return bytes(hdr + udp)


def ipv6_udp(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    udp_len = 8 + len(payload)
    s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
    udp = bytearray(struct.pack("!HHHH", sport, dport, udp_len, 0) + payload)
    c = checksum(s + d + struct.pack("!II", udp_len, 17) + bytes(udp)) or 0xFFFF
    struct.pack_into("!H", udp, 6, c)
    return struct.pack("!IHBB16s16s", 0x60000000, udp_len, 17, 64, s, d) + bytes(udp)


def ipv4_tcp(src: str, dst: str, sport: int, dport: int, payload: bytes, *, seq: int = 1000, flags: int = 0x18) -> bytes:
    """An IPv4/TCP packet (default ACK|PSH) with a full checksum."""
    tcp_len = 20 + len(payload)
    s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + tcp_len, 7, 0x4000, 64, 6, 0, s, d))
    struct.pack_into("!H", hdr, 10, checksum(bytes(hdr)))
    tcp = bytearray(struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, flags, 65535, 0, 0) + payload)
    struct.pack_into("!H", tcp, 16, checksum(s + d + struct.pack("!BBH", 0, 6, tcp_len) + bytes(tcp)))
    return bytes(hdr + tcp)


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
    from tunkit.demo import ping

    try:
        return bool(ping(dst, count=1, timeout=timeout))
    except OSError:  # no route (yet): no answer
        return False
