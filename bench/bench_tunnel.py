#!/usr/bin/env python3
"""Benchmark the tunkit overlay against the kernel's VXLAN on the same veth; does I/O (needs root).

Not a test: it prints figures.  In one run:

1. the per-packet cost of the two stdlib MACs the overlay could use (keyed
   BLAKE2b, HMAC-SHA256) for 64, 256, 1400 and 65536 bytes;
2. TCP throughput (iperf3, installed with apt if missing) between two
   namespaces joined by a bridge, through two tunkit instances (each a
   forked process), authenticated, insecure, and insecure with
   ``partial_checksums`` (insecure-pc), with 1 and 2 workers (2
   workers: ``iperf3 -P 2``), and through the kernel's VXLAN on the same veth;
3. 256-byte UDP datagrams delivered per second (iperf3 -u, 400 Mbit/s offered);
4. with ``--fake-tun`` only: the CPU per packet through ``Tunnel`` on fake TUN queues (no root).

Usage: sudo python3 bench/bench_tunnel.py [--seconds 5] [--skip-mac] [--only auth|insecure|insecure-pc|vxlan]

The machine may be shared with other work: figures are for comparison within
one run, and the run prints the CPU count it had.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))

from support_tunnel import build_lab, overlay4, underlay4  # noqa: E402
from tunkit.netns import NetNS  # noqa: E402
from tunkit.overlay.tunnel import PeerSpec  # noqa: E402

KEY = bytes(range(32))
UDP_RATE = "400M"  # offered load for the 256-byte test: about 195,000 datagrams/s
PORT = 4800


# -- 1. MACs -------------------------------------------------------------------------------
def bench_macs() -> None:
    from tunkit.overlay.wire import Mac

    key = os.urandom(32)
    hdr = os.urandom(32)
    b2 = hashlib.blake2b(key=key, digest_size=16)
    ours = Mac(key)

    def blake(m):
        h = b2.copy()
        h.update(hdr)
        h.update(m)
        return h.digest()

    cands = [
        ("keyed BLAKE2b-128 (state copy)", blake),
        ("HMAC-SHA256-128 (tunkit Mac)", lambda m: ours.tag(hdr, m)),
        ("hmac.digest sha256 (concat)", lambda m: hmac.digest(key, hdr + m, "sha256")),
    ]
    print("per-message MAC cost over header + N bytes (best of 3):")
    for n in (64, 256, 1400, 65536):
        msg = memoryview(os.urandom(n))
        reps = max(2000, 4_000_000 // n)
        row = []
        for name, f in cands:
            best = 1e9
            for _ in range(3):
                t = time.perf_counter()
                for _ in range(reps):
                    f(msg)
                best = min(best, (time.perf_counter() - t) / reps)
            row.append(f"{name}: {best * 1e6:6.2f} us ({n / best / 1e6:5.0f} MB/s)")
        print(f"  {n:6d} B  " + " | ".join(row))


# -- helpers -------------------------------------------------------------------------------------
@contextlib.contextmanager
def bench_lab(n: int = 2):
    """``n`` hosts on a bridge (support_tunnel.build_lab) in namespaces this benchmark makes; all closed on exit."""
    made = []

    def make(name):
        ns = NetNS(name)
        made.append(ns)
        return ns

    try:
        yield build_lab(make, n)
    finally:
        for ns in made:
            ns.close()


def ensure_iperf3() -> str | None:
    path = shutil.which("iperf3")
    if path is None and os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing iperf3 with apt-get ...", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "iperf3"], capture_output=True, env=env)
        path = shutil.which("iperf3")
    return path


def start_node(ns: NetNS, i: int, peer: int, *, insecure: bool, workers: int, mtu: int, partial: bool = False) -> int:
    """Fork a process that runs a TunnelNode inside ``ns``; returns its pid once the device is up."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            os.close(r)
            from tunkit.netns import setns
            from tunkit.overlay.node import TunnelNode

            setns(ns.fd)
            spec = PeerSpec(f"h{peer}", (underlay4(peer), PORT),
                            (ipaddress.ip_network(f"{overlay4(peer)}/32"),), None if insecure else KEY)
            node = TunnelNode(device="tk0", peers=[spec], listen=("0.0.0.0", PORT), mtu=mtu,
                              addresses=[ipaddress.ip_address(overlay4(i))], insecure=insecure,
                              workers=workers, status_path=f"/tmp/tunkit-bench-{os.getpid()}.sock",
                              tunnel_options={"partial_checksums": True} if partial else None)
            node.start()
            subprocess.run(["ip", "addr", "add", f"{overlay4(i)}/24", "dev", node.device_name], check=True)
            os.write(w, b"1")
            os.close(w)
            node.run()
            node.close()
        except BaseException as e:  # report and leave: never return into the parent's code
            print(f"node {i}: {e!r}", file=sys.stderr)
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    ok = os.read(r, 1)
    os.close(r)
    if ok != b"1":
        raise RuntimeError(f"tunnel node {i} failed to start")
    return pid


def stop_node(pid: int) -> dict | None:
    status = None
    try:
        from tunkit.overlay.status import query

        status = query(f"/tmp/tunkit-bench-{pid}.sock")
    except OSError:
        pass
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return status


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` and its descendants (worker processes), from /proc."""
    kids: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:  # the process ended while we looked
            continue
        kids.setdefault(int(fields[1]), []).append(int(d))  # fields[1]: ppid
        times[int(d)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += times.get(p, 0.0)
        todo += kids.get(p, [])
    return total


def iperf(client: NetNS, server: NetNS, addr: str, seconds: float, extra: list[str]) -> dict:
    srv = server.popen(["iperf3", "-s", "-1", "-B", addr], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        out = client.run(["iperf3", "-c", addr, "-t", str(seconds), "-J", *extra], timeout=seconds + 30, check=False)
        return json.loads(out.stdout) if out.stdout.strip() else {"error": out.stderr}
    finally:
        try:
            srv.wait(5)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()


def tcp_gbps(res: dict) -> float | None:
    try:
        return res["end"]["sum_received"]["bits_per_second"] / 1e9
    except KeyError:
        return None


def udp_pps(res: dict) -> tuple[float, float] | None:
    try:
        s = res["end"]["sum"]
        return (s["packets"] - s["lost_packets"]) / s["seconds"], s["lost_percent"]
    except KeyError:
        return None


# -- 2./3. throughput --------------------------------------------------------------------------------
def run_tunkit(a: NetNS, b: NetNS, *, insecure: bool, workers: int, seconds: float, mtu: int, udp: bool = True,
               partial: bool = False) -> None:
    mode = ("insecure+pc" if partial else "insecure") if insecure else "authenticated"
    pa = start_node(a, 0, 1, insecure=insecure, workers=workers, mtu=mtu, partial=partial)
    pb = start_node(b, 1, 0, insecure=insecure, workers=workers, mtu=mtu, partial=partial)
    try:
        time.sleep(0.3)
        par = ["-P", str(workers)] if workers > 1 else []
        c0 = cpu_seconds(pa), cpu_seconds(pb)
        res = iperf(a, b, overlay4(1), seconds, par)
        c1 = cpu_seconds(pa), cpu_seconds(pb)
        g = tcp_gbps(res)
        try:  # CPU seconds per GB carried: less sensitive to other load on a shared machine than Gbit/s
            gb = res["end"]["sum_received"]["bytes"] / 1e9
            cpu = f" (tunnel CPU per GB: sender {(c1[0] - c0[0]) / gb:.2f} s, receiver {(c1[1] - c0[1]) / gb:.2f} s)"
        except (KeyError, ZeroDivisionError):
            cpu = ""
        print(f"tunkit {mode:13s} workers {workers}: TCP {g:.2f} Gbit/s{cpu}" if g else f"tunkit {mode} workers {workers}: TCP failed", flush=True)
        if workers == 1 and udp:
            c0 = cpu_seconds(pa), cpu_seconds(pb)
            t0 = time.monotonic()
            u = udp_pps(iperf(a, b, overlay4(1), seconds, ["-u", "-l", "256", "-b", UDP_RATE]))
            wall = time.monotonic() - t0
            c1 = cpu_seconds(pa), cpu_seconds(pb)
            if u:  # CPU share of each tunnel process over the iperf3 run (1.0 = one core all the time)
                print(f"tunkit {mode:13s} workers {workers}: UDP 256 B {u[0]:,.0f} packets/s delivered ({u[1]:.1f}% lost; "
                      f"tunnel CPU share: sender {(c1[0] - c0[0]) / wall:.2f}, receiver {(c1[1] - c0[1]) / wall:.2f})", flush=True)
    finally:
        sa = stop_node(pa)
        sb = stop_node(pb)
    for name, st in (("sender", sa), ("receiver", sb)):
        if st:
            print(f"    {name} counters: udp {st.get('udp')}, drops {st.get('drops')}")


def run_vxlan(a: NetNS, b: NetNS, seconds: float, udp: bool = True) -> None:
    for i, ns in enumerate((a, b)):
        ns.run(["ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "remote", underlay4(1 - i),
                "local", underlay4(i), "dstport", "4789", "dev", "eth0"])
        ns.run(["ip", "addr", "add", f"198.19.0.{i + 1}/24", "dev", "vx0"])
        ns.run(["ip", "link", "set", "vx0", "up"])
    try:
        g = tcp_gbps(iperf(a, b, "198.19.0.2", seconds, []))
        print(f"kernel VXLAN                  : TCP {g:.2f} Gbit/s" if g else "kernel VXLAN: failed", flush=True)
        u = udp and udp_pps(iperf(a, b, "198.19.0.2", seconds, ["-u", "-l", "256", "-b", UDP_RATE]))
        if u:
            print(f"kernel VXLAN                  : UDP 256 B {u[0]:,.0f} packets/s delivered ({u[1]:.1f}% lost)", flush=True)
    finally:
        for ns in (a, b):
            ns.run(["ip", "link", "del", "vx0"], check=False)


# -- 4. CPU per packet on fake TUN queues (no privileges, no traffic generator) ---------------------
def bench_fake_tun(rounds: int = 300) -> None:
    """CPU time (process time) of Tunnel.on_tun_readable / on_udp_readable per packet, authenticated,
    with socketpair TUN queues and UDP on 127.0.0.1: 256-byte packets (32 per read) and 64 KB TCP
    super-packets (virtio headers, 4 per read).  Best of three; less sensitive to a loaded machine
    than throughput, and comparable between two trees."""
    import ipaddress as ipa
    import select as sel
    import socket

    from support_tunnel import FakeQueue, ipv4_tcp, ipv4_udp
    from tunkit.packet.coalesce import coalesce
    from tunkit.overlay.tunnel import Tunnel, TunnelOptions

    def one(kind: str, n_pkts: int, n_rounds: int) -> tuple[float, float]:
        vnet = kind == "super"
        ends = []
        for _ in range(2):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
            ends.append((FakeQueue(vnet), s))
        specs = [PeerSpec(n, ("127.0.0.1", s.getsockname()[1]), (ipa.ip_network(f"198.18.0.{i + 1}/32"),), KEY)
                 for i, (n, (_, s)) in enumerate(zip("ab", ends))]
        ta = Tunnel(ends[0][0], ends[0][1], [specs[1]], (), TunnelOptions(vnet_hdr=vnet, mtu=1500))
        tb = Tunnel(ends[1][0], ends[1][1], [specs[0]], (), TunnelOptions(vnet_hdr=vnet, mtu=1500))
        if vnet:
            segs = [ipv4_tcp("198.18.0.1", "198.18.0.2", 40000, 5201, bytes([i]) * 1448, seq=1000 + 1448 * i, flags=0x10)
                    for i in range(44)]
            ((hdr, bufs),) = coalesce(segs)
            pkts = [(hdr.encode(), b"".join(bufs))] * n_pkts
        else:
            pkts = [(None, ipv4_udp("198.18.0.1", "198.18.0.2", 1000 + i, 53, bytes(228))) for i in range(n_pkts)]
        out_cpu = in_cpu = 0.0
        try:
            for _ in range(n_rounds):
                for v, p in pkts:
                    ends[0][0].inject(p, v)
                t = time.process_time()
                ta.on_tun_readable()
                out_cpu += time.process_time() - t
                sel.select([ends[1][1]], [], [], 1)
                t = time.process_time()
                tb.on_udp_readable()
                in_cpu += time.process_time() - t
                ends[1][0].take_all(0)
        finally:
            for q, s in ends:
                q.close()
                s.close()
        return out_cpu / (n_pkts * n_rounds) * 1e6, in_cpu / (n_pkts * n_rounds) * 1e6

    print("CPU per packet through Tunnel on fake TUN queues (authenticated, best of 3):")
    for kind, n in (("small", 32), ("super", 4)):
        out, inn = (min(x) for x in zip(*[one(kind, n, rounds if kind == "small" else rounds * 2 // 3) for _ in range(3)]))
        label = "256 B packet" if kind == "small" else "64 KB TCP super-packet"
        print(f"  {label:24}: outbound {out:6.1f} us, inbound {inn:6.1f} us")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5)
    ap.add_argument("--mtu", type=int, default=1400, help="overlay MTU (default 1400)")
    ap.add_argument("--skip-mac", action="store_true")
    ap.add_argument("--only", choices=["auth", "insecure", "insecure-pc", "vxlan"],
                    help="one mode; insecure-pc is insecure with network.partial_checksums")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--no-udp", action="store_true", help="skip the 256-byte UDP runs")
    ap.add_argument("--fake-tun", action="store_true",
                    help="only the CPU per packet through Tunnel on fake TUN queues (no root needed)")
    args = ap.parse_args()
    print(f"bench_tunnel: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, python {sys.version.split()[0]}, "
          f"kernel {os.uname().release}")
    if args.fake_tun:
        bench_fake_tun()
        return 0
    if not args.skip_mac:
        bench_macs()
    if os.geteuid() != 0:
        print("not root: skipping the throughput part")
        return 0
    if ensure_iperf3() is None:
        print("iperf3 missing and not installable: skipping the throughput part")
        return 0
    with bench_lab(2) as (a, b):
        if args.only in (None, "vxlan"):
            run_vxlan(a, b, args.seconds, udp=not args.no_udp)
        for mode in ("auth", "insecure", "insecure-pc"):
            if args.only not in (None, mode):
                continue
            for workers in args.workers:
                run_tunkit(a, b, insecure=mode != "auth", workers=workers, seconds=args.seconds, mtu=args.mtu,
                           udp=not args.no_udp, partial=mode == "insecure-pc")
    return 0


if __name__ == "__main__":
    sys.exit(main())
