"""Device benchmark: TUN create+delete per second (tunkit vs ``ip tuntap``) and packets/s through a TUN.

Runs as root inside a throwaway network namespace (tunkit.netns.NetNS); never
touches the host's.  Every loop is bounded in count.  Prints figures only: the
machine may be shared, so treat them as indicative.

    python3 bench/bench_device.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tunkit.tun import device  # noqa: E402
from tunkit.netns import NetNS  # noqa: E402

LOCAL, PEER, ROUTED = "198.18.0.1", "198.51.100.7", "198.51.100.0/24"


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


def timed(fn, n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - t0


def bench_create(n_tunkit: int, n_ip: int) -> None:
    """Create n persistent devices, then delete them: two rates per tool, plus a transient pair."""
    names = [f"tkb{i}" for i in range(max(n_tunkit, n_ip))]

    def phases(label: str, create, delete, n: int) -> None:
        t_add = timed(lambda it=iter(names[:n]): create(next(it)), n)
        t_del = timed(lambda it=iter(names[:n]): delete(next(it)), n)
        print(f"  {label}: create {rate(n, t_add):>9} ({1e3 * t_add / n:6.2f} ms)   "
              f"delete {rate(n, t_del):>7} ({1e3 * t_del / n:6.2f} ms)   n={n}")

    def ip(*args: str) -> None:
        subprocess.run(["ip", "tuntap", *args], check=True)

    phases("tunkit open_tun(persist=True) / delete()", lambda nm: device.open_tun(nm, persist=True).close(),
           device.delete, n_tunkit)
    phases("ip tuntap add / ip tuntap del          ", lambda nm: ip("add", "dev", nm, "mode", "tun"),
           lambda nm: ip("del", "dev", nm, "mode", "tun"), n_ip)
    n = max(1, n_tunkit // 4)
    t = timed(lambda: device.open_tun("tkb0").close(), n)
    print(f"  tunkit open_tun()+close(), transient   : {rate(n, t):>9} create+delete pairs ({1e3 * t / n:.2f} ms) n={n}")
    print("  (deleting a netdev waits for RCU grace periods in the kernel: that, not tunkit, sets the delete rate)")


def ipv4_udp(payload: bytes, sport: int) -> bytes:
    """A minimal IPv4/UDP packet PEER -> LOCAL (UDP checksum 0 = none, header checksum computed)."""
    import struct

    src, dst = socket.inet_aton(PEER), socket.inet_aton(LOCAL)
    udp = struct.pack("!HHHH", sport, 9999, 8 + len(payload), 0) + payload
    hdr = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, src, dst))
    s = sum(struct.unpack("!10H", hdr))
    s = (s & 0xFFFF) + (s >> 16)
    s = (s & 0xFFFF) + (s >> 16)
    hdr[10:12] = struct.pack("!H", ~s & 0xFFFF)
    return bytes(hdr) + udp


def bench_io(n: int, size: int) -> None:
    with device.open_tun("tkio0") as dev:
        subprocess.run(["ip", "link", "set", "dev", dev.name, "addrgenmode", "none"], check=True)
        subprocess.run(["ip", "address", "add", f"{LOCAL}/32", "dev", dev.name], check=True)
        dev.txqueuelen = n  # the TUN's ring holds txqueuelen packets: room for a whole round
        dev.up()
        subprocess.run(["ip", "route", "add", ROUTED, "dev", dev.name], check=True)
        payload = b"x" * (size - 28)
        pkt = ipv4_udp(payload, 4000)

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
            sink.bind((LOCAL, 9999))  # the kernel delivers the written packets here (drops when full)
            t = timed(lambda: dev.write(pkt), n)
            print(f"  {f'Device.write({size} B)':<34}: {rate(n, t):>12} packets  (n={n})")
            batch = [pkt] * 64
            rounds = max(1, n // 64)
            t = timed(lambda: dev.write_batch(batch), rounds)
            print(f"  {f'Device.write_batch(64 x {size} B)':<34}: {rate(rounds * 64, t):>12} packets  (n={rounds * 64})")
            parts = [pkt[:28], pkt[28:]]
            t = timed(lambda: dev.writev(parts), n)
            print(f"  {'Device.writev(28 B hdr, body)':<34}: {rate(n, t):>12} packets  (n={n}, {size} B)")

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as src:
            src.bind((LOCAL, 5000))
            dest = (PEER, 9)

            def fill() -> None:  # queue n packets in the TUN (not timed)
                for _ in range(n):
                    src.sendto(payload, dest)

            def drain(read_one) -> tuple[int, float]:
                fill()
                got = 0
                t0 = time.perf_counter()
                for _ in range(n + 1):  # bounded: at most n packets were queued
                    k = read_one()
                    if not k:
                        break
                    got += k
                return got, time.perf_counter() - t0

            buf = bytearray(65536)
            for label, read_one in (
                ("Device.read()", lambda: 1 if dev.read(timeout=0) is not None else 0),
                ("Device.readinto(buf)", lambda: 1 if dev.readinto(buf, timeout=0) is not None else 0),
                ("Device.read_batch(64)", lambda: len(dev.read_batch(64, timeout=0))),
            ):
                got, t = drain(read_one)
                print(f"  {label:<34}: {rate(got, t):>12} packets  (n={got}, {size} B)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts (a smoke run)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_device: needs root (it creates a network namespace)", file=sys.stderr)
        return 1
    n_create, n_ip, n_io = (50, 10, 2000) if args.quick else (400, 100, 20000)
    print(f"tunkit device benchmark - Linux {platform.release()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    with NetNS("bench") as ns, ns.entered():
        print("TUN device create+delete, in a fresh network namespace:")
        bench_create(n_create, n_ip)
        print("Packets through one TUN queue (non-blocking fd, no vnet header):")
        bench_io(n_io, 84)
        bench_io(n_io, 1400)
    return 0


if __name__ == "__main__":
    sys.exit(main())
