#!/usr/bin/env python3
"""Benchmark tunkit's WireGuard mode against wireguard-go and the kernel's VXLAN; does I/O (needs root).

Not a test: it prints figures.  Two host namespaces joined by a bridge (the
lab of bench/bench_tunnel.py); in one run, each pair carrying
198.18.0.0/24 over the underlay:

* wireguard-go <-> wireguard-go (configured with ``wg``),
* tunkit <-> wireguard-go (tunkit runs ``python3 -m tunkit up NAME.conf``),
* tunkit <-> tunkit (both from wg-quick files),
* kernel VXLAN on the same veth (reference, no encryption),

each with iperf3: TCP, 1 stream, and 256-byte UDP datagrams (400 Mbit/s
offered), host 0 sending to host 1.

Usage: sudo python3 bench/bench_wireguard.py [--seconds 5] [--only wg-wg|tk-wg|tk-tk|vxlan]

The machine may be shared with other work: figures compare within one run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
sys.path.insert(0, os.path.join(ROOT, "bench"))

from bench_tunnel import UDP_RATE, bench_lab, cpu_seconds, ensure_iperf3, iperf, run_vxlan, tcp_gbps, udp_pps  # noqa: E402
from support_tunnel import underlay4  # noqa: E402
from tunkit.crypto import generate_private_key, public_key  # noqa: E402
from tunkit.netns import NetNS  # noqa: E402
from tunkit.wireguard import format_key  # noqa: E402

PORT = 51820
MTU = 1420


def inner(i: int) -> str:
    return f"198.18.0.{i + 1}"


class Side:
    """One end: ``kind`` "tunkit" (tunkit up NAME.conf, a process) or "wireguard-go"."""

    def __init__(self, ns: NetNS, kind: str, i: int, key: bytes, peer_key: bytes, workdir: str) -> None:
        self.ns, self.kind, self.i = ns, kind, i
        self.name = f"bw{kind[0]}{os.getpid() % 10000}{i}"
        other = 1 - i
        self.conf = os.path.join(workdir, f"{self.name}.conf")
        with open(os.open(self.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            f.write(f"[Interface]\nPrivateKey = {format_key(key)}\nListenPort = {PORT}\n"
                    + (f"Address = {inner(i)}/24\nMTU = {MTU}\n" if kind == "tunkit" else "")
                    + f"\n[Peer]\nPublicKey = {format_key(public_key(peer_key))}\nAllowedIPs = {inner(other)}/32\n"
                    f"Endpoint = {underlay4(other)}:{PORT}\n")
        self.status = os.path.join(workdir, f"{self.name}-status.sock")
        if kind == "tunkit":
            self.proc = ns.popen([sys.executable, "-m", "tunkit", "up", self.conf, "--status-socket", self.status],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
            self._wait(self.status)
        else:
            self.proc = ns.popen(["wireguard-go", "-f", self.name], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE, env={**os.environ, "LOG_LEVEL": "error"})
            self._wait(f"/var/run/wireguard/{self.name}.sock")
            ns.run(["wg", "setconf", self.name, self.conf])
            ns.run(["ip", "addr", "add", f"{inner(i)}/24", "dev", self.name])
            ns.run(["ip", "link", "set", self.name, "mtu", str(MTU), "up"])

    def _wait(self, path: str) -> None:
        deadline = time.monotonic() + 30
        while not os.path.exists(path):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.proc.stderr.read().decode(errors='replace')}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind}: no {path} after 30 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stderr.close()
        for p in (self.conf, f"/var/run/wireguard/{self.name}.sock"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


def run_pair(a: NetNS, b: NetNS, kinds: tuple[str, str], seconds: float, workdir: str) -> None:
    label = f"{kinds[0]} -> {kinds[1]}"
    keys = generate_private_key(), generate_private_key()
    sides = []
    try:
        for i, (ns, kind) in enumerate(zip((a, b), kinds)):
            sides.append(Side(ns, kind, i, keys[i], keys[1 - i], workdir))
        time.sleep(0.5)  # both up; iperf3's first packets start the handshake
        pids = [s.proc.pid for s in sides]
        c0 = [cpu_seconds(p) for p in pids]
        t0 = time.monotonic()
        g = tcp_gbps(iperf(a, b, inner(1), seconds, []))
        wall = time.monotonic() - t0
        c1 = [cpu_seconds(p) for p in pids]
        share = ", ".join(f"{k} {(y - x) / wall:.2f}" for k, x, y in zip(("sender", "receiver"), c0, c1))
        print(f"{label:28s}: TCP 1 stream {g:.2f} Gbit/s (CPU share: {share})" if g else f"{label}: TCP failed",
              flush=True)
        u = udp_pps(iperf(a, b, inner(1), seconds, ["-u", "-l", "256", "-b", UDP_RATE]))
        print(f"{label:28s}: UDP 256 B {u[0]:,.0f} packets/s delivered ({u[1]:.1f}% lost)" if u
              else f"{label}: UDP failed", flush=True)
    finally:
        for s in sides:
            s.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--only", choices=["wg-wg", "tk-wg", "tk-tk", "vxlan"])
    args = ap.parse_args()
    print(f"bench_wireguard: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start, "
          f"python {sys.version.split()[0]}, kernel {os.uname().release}")
    if os.geteuid() != 0:
        print("not root: nothing to measure")
        return 0
    if ensure_iperf3() is None:
        print("iperf3 missing and not installable")
        return 0
    import tempfile

    with tempfile.TemporaryDirectory() as workdir, bench_lab(2) as (a, b):
        pairs = {"wg-wg": ("wireguard-go", "wireguard-go"), "tk-wg": ("tunkit", "wireguard-go"),
                 "tk-tk": ("tunkit", "tunkit")}
        for key, kinds in pairs.items():
            if args.only in (None, key):
                run_pair(a, b, kinds, args.seconds, workdir)
            if key == "tk-wg" and args.only in (None, key):
                run_pair(a, b, ("wireguard-go", "tunkit"), args.seconds, workdir)
        if args.only in (None, "vxlan"):
            run_vxlan(a, b, args.seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
