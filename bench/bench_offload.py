"""Offload benchmark: TCP relayed between two namespaces through two TUN devices by a small tunkit loop.

Modes, all in one run, each in fresh throwaway network namespaces (tunkit.netns.NetNS;
the host's namespace is never touched):

* veth             the kernel alone: a veth pair between the two namespaces (the ceiling)
* passthrough      vnet-header TUNs with offloads; super-packets copied A->B unchanged
* split+coalesce   vnet-header TUNs; every read split into wire packets (full checksums),
                   every batch coalesced again (checksums verified) and written with writev
* split+coalesce-trusted
                   the same, but the coalescer trusts the checksums split just computed
                   (verify_checksums=False: only for packets the caller built itself)
* plain            TUNs without a vnet header: one ~1500-byte packet per read and write

The TCP traffic comes from iperf3 (installed with apt-get when missing and possible;
``--python`` forces the fallback, a Python sender/receiver pair in subprocesses).
Each mode runs for ``--seconds`` (default 5).  The relay is one thread of this
process serving both directions.  Figures only, no assertions: the machine may be
shared with other work, so treat them as indicative and compare modes within a run.

    python3 bench/bench_offload.py [--seconds 5] [--mtu 1500] [--batch 8] [--python] [--modes veth,passthrough,...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import selectors
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tunkit.tun.batch import OffloadIO  # noqa: E402
from tunkit.tun.device import open_tun  # noqa: E402
from tunkit.netns import NetNS  # noqa: E402

A, B = "198.18.0.1", "198.18.0.2"
PORT = 5201
MODES = ("veth", "passthrough", "split+coalesce", "split+coalesce-trusted", "plain")

SENDER = r"""
import socket, sys, time
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
buf = b"\x5a" * (1 << 20)
end = time.monotonic() + float(sys.argv[3])
while time.monotonic() < end:
    s.sendall(buf)
s.close()
"""

RECEIVER = r"""
import socket, sys, time
srv = socket.socket()
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1)
srv.settimeout(30)
print("ready", flush=True)
c, _ = srv.accept()
c.settimeout(30)
n, t0, t1 = 0, None, None
buf = bytearray(1 << 20)
while True:
    k = c.recv_into(buf)
    if not k:
        break
    t1 = time.monotonic()
    if t0 is None:
        t0 = t1
    n += k
print(n, (t1 - t0) if t0 is not None else 0.0)
"""


def ensure_iperf3() -> str | None:
    """iperf3's path, installing it with apt-get (after apt-get update) if missing and possible."""
    path = shutil.which("iperf3")
    if path or not shutil.which("apt-get"):
        return path
    print("  (iperf3 missing: apt-get update && apt-get install -y iperf3)", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "iperf3"]):
        if subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=300).returncode:
            return None
    return shutil.which("iperf3")


def tun(ns: NetNS, name: str, addr: str, mtu: int, **kw):
    with ns.entered():
        dev = open_tun(name, **kw)
    dev.mtu = mtu
    ns.run(["ip", "link", "set", "dev", name, "addrgenmode", "none"])
    ns.run(["ip", "address", "add", f"{addr}/24", "dev", name])
    ns.run(["ip", "link", "set", "dev", name, "up"])
    return dev


def veth(a: NetNS, b: NetNS, mtu: int) -> None:
    a.run(["ip", "link", "add", "tkva", "mtu", str(mtu), "type", "veth", "peer", "name", "tkvb", "mtu", str(mtu)])
    a.run(["ip", "link", "set", "tkvb", "netns", f"/proc/{os.getpid()}/fd/{b.fd}"])
    a.run(["ip", "address", "add", f"{A}/24", "dev", "tkva"])
    b.run(["ip", "address", "add", f"{B}/24", "dev", "tkvb"])
    a.run(["ip", "link", "set", "tkva", "up"])
    b.run(["ip", "link", "set", "tkvb", "up"])


class Relay:
    """One thread serving both directions: wait until either device is readable, then move a batch.

    A single thread on purpose: with one thread per direction the ACK direction
    waits for the GIL (up to the 5 ms switch interval) while the data direction
    runs Python code, and the late ACKs throttle TCP.
    """

    def __init__(self, a, b, step):
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.sel = selectors.DefaultSelector()
        self.sel.register(a, selectors.EVENT_READ, (a, b))
        self.sel.register(b, selectors.EVENT_READ, (b, a))
        self.step = step
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            while not self.stop.is_set():
                for key, _ in self.sel.select(0.2):
                    self.step(*key.data)
        except BaseException as e:  # reported after the run
            self.errors.append(e)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
        self.sel.close()


def make_passthrough_step(batch: int):
    def step(src, dst):
        for p in src.read_batch(batch, timeout=0):
            dst.write(p)
    return step


def make_offload_step(ios, batch: int):
    def step(src, dst):
        pkts = ios[src].read_batch(batch, timeout=0)
        if pkts:
            ios[dst].write(pkts)
    return step


def run_traffic(a: NetNS, b: NetNS, seconds: float, iperf: str | None) -> float:
    """Bits per second the receiver in ``b`` got from a sender in ``a``."""
    if iperf:
        server = b.popen([iperf, "-s", "-1", "-B", B, "-p", str(PORT)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            out = a.run([iperf, "-c", B, "-p", str(PORT), "-t", str(seconds), "-J"], check=False, timeout=seconds + 30)
            res = json.loads(out.stdout)
            if "error" in res:
                raise RuntimeError(res["error"])
            return res["end"]["sum_received"]["bits_per_second"]
        finally:
            server.kill()
            server.wait()
    rx = b.popen([sys.executable, "-c", RECEIVER, B, str(PORT)], stdout=subprocess.PIPE, text=True)
    try:
        assert rx.stdout.readline().strip() == "ready"
        a.run([sys.executable, "-c", SENDER, B, str(PORT), str(seconds)], timeout=seconds + 30)
        n, dt = rx.stdout.readline().split()
        rx.wait(30)
        return int(n) * 8 / float(dt) if float(dt) else 0.0
    finally:
        if rx.poll() is None:
            rx.kill()
            rx.wait()


def bench_mode(mode: str, seconds: float, iperf: str | None, mtu: int = 1500, batch: int = 8) -> str:
    with NetNS("bench-a") as a, NetNS("bench-b") as b:
        if mode == "veth":
            veth(a, b, mtu)
            return f"{run_traffic(a, b, seconds, iperf) / 1e9:6.2f} Gbit/s"
        vnet = mode != "plain"
        ta, tb = tun(a, "tka", A, mtu, vnet_hdr=vnet), tun(b, "tkb", B, mtu, vnet_hdr=vnet)
        with ta, tb:
            note = ""
            if mode.startswith("split+coalesce"):
                trusted = mode.endswith("trusted")
                ios = {ta: OffloadIO(ta, verify_checksums=not trusted), tb: OffloadIO(tb, verify_checksums=not trusted)}
                step = make_offload_step(ios, batch)
            else:
                ios = None
                step = make_passthrough_step(batch)
            cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            with Relay(ta, tb, step) as relay:
                bps = run_traffic(a, b, seconds, iperf)
            cpu1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
            if relay.errors:
                raise relay.errors[0]
            cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime) / (t1 - t0)
            if ios is not None:
                r, w = ios[ta].stats, ios[tb].stats
                segs = w.packets_written / max(w.writes, 1)
                note = (f"  A->B: {r.super_reads} super-packets split into {r.packets_read} packets, "
                        f"{w.writes} writes ({w.super_writes} coalesced, {segs:.1f} packets/write)")
            return f"{bps / 1e9:6.2f} Gbit/s   relay CPU {cpu * 100:4.0f}% of one core{note}"


def micro(rounds: int = 200) -> None:
    """CPU time (not wall time) of the pure-Python work per 64 KB super-packet, and the ceiling it sets."""
    from tunkit.packet.coalesce import Coalescer
    from tunkit.packet.offload import gso_split
    from tunkit.packet.ip import IPV4_HEADER, TCP_HEADER, csum16, internet_checksum, pseudo_header_sum

    src, dst, mss, n = bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]), 1448, 45
    opts = bytes.fromhex("0101080a0000000100000002")  # timestamps, as Linux sends them
    payload = bytes(range(256)) * (mss * n // 256 + 1)
    segs = []
    for i in range(n):
        tcp = TCP_HEADER.pack(40000, PORT, 1000 + i * mss, 1, 8 << 4, 0x10, 502, 0, 0) + opts + payload[i * mss:(i + 1) * mss]
        c = internet_checksum(tcp, pseudo_header_sum(src, dst, 6, len(tcp)))
        tcp = tcp[:16] + c.to_bytes(2, "big") + tcp[18:]
        ip = IPV4_HEADER.pack(0x45, 0, 20 + len(tcp), i, 0x4000, 64, 6, 0, src, dst)
        segs.append(ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:] + tcp)
    ((hdr, bufs),) = _coalesce_all(Coalescer(), segs)
    sup = b"".join(bufs)

    def cpu(fn) -> float:
        best = float("inf")
        for _ in range(5):
            t = time.process_time()
            for _ in range(rounds):
                fn()
            best = min(best, (time.process_time() - t) / rounds)
        return best

    t_split = cpu(lambda: gso_split(hdr, sup))
    t_co = cpu(lambda: _coalesce_all(Coalescer(), segs))
    t_trust = cpu(lambda: _coalesce_all(Coalescer(verify_checksums=False), segs))
    body = memoryview(segs[0])[20:]
    t_sum = cpu(lambda: [csum16(body) for _ in range(n)]) / n
    print(f"Pure-Python CPU time per {len(sup):,}-byte super-packet ({n} x {mss} B), best of 5 x {rounds}:")
    for label, t in (("split (full checksums)", t_split), ("coalesce (checksums verified)", t_co),
                     ("coalesce (trusted)", t_trust)):
        print(f"  {label:<30} {t * 1e6:6.0f} us  ({t / n * 1e6:4.2f} us/segment)")
    print(f"  one checksum over {len(body)} B          {t_sum * 1e6:6.2f} us")
    for label, t in (("split+coalesce", t_split + t_co), ("split+coalesce-trusted", t_split + t_trust)):
        print(f"  => {label} ceiling on one core, before any system call: {len(sup) * 8 / t / 1e9:4.2f} Gbit/s")


def _coalesce_all(co, segs) -> list:
    for p in segs:
        co.add(p)
    return co.flush()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0, help="traffic time per mode (default 5)")
    ap.add_argument("--python", action="store_true", help="use the Python sender/receiver even if iperf3 is there")
    ap.add_argument("--modes", default=",".join(MODES), help=f"comma-separated subset of {','.join(MODES)}")
    ap.add_argument("--mtu", type=int, default=1500, help="MTU of the TUN and veth devices (default 1500)")
    ap.add_argument("--batch", type=int, default=8,
                    help="reads taken per direction before the relay turns to the other (default 8; larger delays ACKs)")
    ap.add_argument("--no-micro", action="store_true", help="skip the pure-Python CPU-time figures")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_offload: needs root (it creates network namespaces)", file=sys.stderr)
        return 1
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = set(modes) - set(MODES)
    if unknown:
        print(f"bench_offload: unknown modes {sorted(unknown)}", file=sys.stderr)
        return 1
    iperf = None if args.python else ensure_iperf3()
    tool = f"iperf3 ({iperf})" if iperf else "Python sender/receiver"
    print(f"tunkit offload benchmark - Linux {platform.release()}, Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start (compare modes within a run)")
    print(f"TCP through two namespaces, {args.seconds:g} s per mode, traffic from {tool}, MTU {args.mtu}, "
          f"relay batch {args.batch} reads:")
    for mode in modes:
        try:
            line = bench_mode(mode, args.seconds, iperf, args.mtu, args.batch)
        except Exception as e:  # one failing mode should not hide the others' figures
            line = f"failed: {type(e).__name__}: {e}"
        print(f"  {mode:<24} {line}", flush=True)
    if not args.no_micro:
        micro()
    return 0


if __name__ == "__main__":
    sys.exit(main())
