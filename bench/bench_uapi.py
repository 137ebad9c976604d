#!/usr/bin/env python3
"""Benchmark the UAPI socket: ``wg show`` / ``wg showconf`` / ``wg setconf`` on 1,000 peers, tunkit vs wireguard-go; does I/O (needs root).

Not a test: it prints figures.  In one throwaway namespace, ``bin/tunkit-wireguard -f``
and ``wireguard-go -f`` each run an interface given the same configuration
(``wg setconf``: a private key and N peers, each with a preshared key, an
endpoint, a keepalive and two allowed IPs).  Then each command is run
``--repeat`` times on each interface, alternating, and the median wall time
is printed (the ``wg`` process included: that is what a user waits for),
plus the raw ``get=1`` round trip on the socket without ``wg``.

Usage: sudo python3 bench/bench_uapi.py [--peers 1000] [--repeat 15]

The machine may be shared with other work: compare figures within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tunkit.crypto import generate_private_key, public_key  # noqa: E402
from tunkit.netns import NetNS  # noqa: E402
from tunkit.overlay.uapi_server import SOCKET_DIR, request  # noqa: E402
from tunkit.wireguard import format_key  # noqa: E402

BIN = os.path.join(ROOT, "bin", "tunkit-wireguard")


def config(peers: int, port: int) -> str:
    lines = ["[Interface]", f"PrivateKey = {format_key(generate_private_key())}", f"ListenPort = {port}", ""]
    for i in range(peers):
        lines += ["[Peer]", f"PublicKey = {format_key(public_key(generate_private_key()))}",
                  f"PresharedKey = {format_key(os.urandom(32))}",
                  f"Endpoint = 192.0.2.{1 + i % 250}:{20000 + i}", "PersistentKeepalive = 25",
                  f"AllowedIPs = 198.18.{i // 250}.{1 + i % 250}/32, 2001:db8:{i:x}::/64", ""]
    return "\n".join(lines)


def wait_socket(path: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 20
    while not os.path.exists(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"{proc.args[0]} did not serve {path}")
        time.sleep(0.02)


def timed(ns: NetNS, args: list[str]) -> float:
    t = time.perf_counter()
    ns.run(args, capture_output=True)
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--peers", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=15)
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_uapi.py needs root (it makes a network namespace and TUN devices)")
    tag = os.getpid() % 100000
    names = {"tunkit": f"bu{tag}t", "wireguard-go": f"bu{tag}g"}
    ns = NetNS("bench-uapi")
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            env = {**os.environ, "LOG_LEVEL": "silent"}
            for kind, cmd in (("tunkit", [sys.executable, BIN, "-f"]), ("wireguard-go", ["wireguard-go", "-f"])):
                p = ns.popen([*cmd, names[kind]], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
                procs.append(p)
                wait_socket(f"{SOCKET_DIR}/{names[kind]}.sock", p)
            times: dict[tuple[str, str], list[float]] = {}
            for port, kind in enumerate(names, start=51820):
                path = os.path.join(tmp, f"{kind}.conf")
                with open(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
                    f.write(config(a.peers, port))
                times[("setconf", kind)] = [timed(ns, ["wg", "setconf", names[kind], path])]
            for _ in range(a.repeat):
                for kind, name in names.items():
                    for view in (["show"], ["showconf"], ["show", "dump"]):
                        args = ["wg", view[0], name, *view[1:]]
                        times.setdefault((" ".join(view), kind), []).append(timed(ns, args))
                    t = time.perf_counter()
                    out = request(f"{SOCKET_DIR}/{name}.sock", b"get=1\n\n")
                    times.setdefault(("get=1 (socket only)", kind), []).append(time.perf_counter() - t)
                    assert out.endswith(b"errno=0\n\n")
            print(f"{a.peers} peers, median of {a.repeat} runs (setconf: 1 run); milliseconds")
            print(f"{'command':24} {'tunkit':>10} {'wireguard-go':>13} {'ratio':>7}")
            for what in dict.fromkeys(w for w, _ in times):
                tk = statistics.median(times[(what, "tunkit")]) * 1e3
                go = statistics.median(times[(what, "wireguard-go")]) * 1e3
                print(f"{what:24} {tk:10.1f} {go:13.1f} {tk / go:7.2f}")
        finally:
            for p in procs:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            for name in names.values():
                try:
                    os.unlink(f"{SOCKET_DIR}/{name}.sock")
                except FileNotFoundError:
                    pass
            ns.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
