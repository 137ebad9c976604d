"""Benchmark: tunkit's rtnetlink client against iproute2 (`ip -batch`, `ip -j`); does I/O.

Run as root: ``python3 bench/bench_netlink.py [--routes 10000] [--addrs 1000] [--runs 5]``.
Everything happens in a throwaway network namespace this script creates;
nothing on the host is touched.  Prints routes/s for two route shapes (IPv4
/30s, one in four with metric and MTU; and a mix of /32 and /24 routes, some
with a metric or an MTU), each as the median of ``--runs`` and the best run
(the least disturbed one on a shared machine, for tunkit and ip alike),
addresses/s and the start-up cost of ``import tunkit.netlink``.
Figures depend on the machine and its load; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tunkit.netlink.client import Rtnl  # noqa: E402
from tunkit.netns import NetNS  # noqa: E402


def route_specs(n: int):
    """n IPv4 /30 routes in 198.18.0.0/15 via tk0; every 4th has a metric and an MTU."""
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    for i in range(n):
        dst = ipaddress.IPv4Network((base + 4 * i, 30))
        if i % 4 == 0:
            yield dst, i % 7 + 1, 1400
        else:
            yield dst, None, None


def route_specs_mixed(n: int):
    """n IPv4 routes, half /32 and half /24; some with a metric, one in seven with an MTU.

    The /32s are in 198.18.0.0/16.  198.19.0.0/16 holds only 256 /24s, so the
    /24s cycle through them with metric 1, 2, 3, ... (each a distinct route);
    one /32 in five has a metric.  (Test ranges only: NOTES, never other space.)
    """
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    for i in range(n):
        if i % 2:
            dst, metric = ipaddress.IPv4Network((base + i // 2, 32)), (i % 9 + 1) if i % 5 == 0 else None
        else:
            j = i // 2
            dst, metric = ipaddress.IPv4Network((base + (1 << 16) + 256 * (j % 256), 24)), 1 + j // 256
        yield dst, metric, 1300 if i % 7 == 0 else None


SHAPES = {"/30": route_specs, "/32+/24": route_specs_mixed}


def ip_batch_lines(specs, verb: str):
    for dst, metric, mtu in specs:
        extra = (f" metric {metric}" if metric is not None else "") + (f" mtu {mtu}" if mtu is not None else "")
        yield f"route {verb} {dst} dev tk0{extra}\n"


def timed(fn):
    """Seconds ``fn()`` took, and its result.  Collects garbage first (GC stays on during
    the timing), so leftovers of the previous step do not bill this one."""
    gc.collect()
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def best_rate(count: int, seconds: list[float]) -> float:
    return count / min(seconds)


def median_rate(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


def bench_routes(ns: NetNS, n: int, runs: int, shape=route_specs) -> dict[str, dict[str, float]]:
    specs = list(shape(n))
    tmp = tempfile.mkdtemp(prefix="tunkit-bench-")
    add_file, del_file = os.path.join(tmp, "add"), os.path.join(tmp, "del")
    with open(add_file, "w") as f:
        f.writelines(ip_batch_lines(specs, "add"))
    with open(del_file, "w") as f:
        f.writelines(ip_batch_lines(specs, "del"))
    t: dict[str, list[float]] = {k: [] for k in ("tk_add_build", "tk_add", "tk_dump", "tk_del", "ip_add", "ip_dump", "ip_del")}
    with ns.entered(), Rtnl() as rt:
        for _ in range(runs):
            # tunkit, messages built inside the timing (from the same network objects ip's file names)
            def add_with_build():
                tk0 = rt.index("tk0")  # looked up once: a name would be looked up per message
                msgs = [rt.route_message(d, dev=tk0, metric=m, mtu=u) for d, m, u in specs]
                return msgs, rt.add_routes(msgs)

            secs, (msgs, errors) = timed(add_with_build)
            assert not errors, errors[:3]
            t["tk_add_build"].append(secs)
            secs, routes = timed(lambda: rt.routes(table=254))
            assert len(routes) >= n, len(routes)
            t["tk_dump"].append(secs)
            del routes
            secs, errors = timed(lambda msgs=msgs: rt.delete_routes(msgs))
            assert not errors, errors[:3]
            t["tk_del"].append(secs)
            # tunkit, prebuilt messages: the add_routes() call alone
            secs, errors = timed(lambda msgs=msgs: rt.add_routes(msgs))
            assert not errors
            t["tk_add"].append(secs)
            assert not rt.delete_routes(msgs)
            del msgs
            # iproute2
            secs, _ = timed(lambda: ns.run(["ip", "-batch", add_file]))
            t["ip_add"].append(secs)

            def ip_dump():
                return json.loads(ns.run(["ip", "-j", "route", "show"]).stdout)

            secs, shown = timed(ip_dump)
            assert len(shown) >= n
            t["ip_dump"].append(secs)
            del shown
            secs, _ = timed(lambda: ns.run(["ip", "-batch", del_file]))
            t["ip_del"].append(secs)
    return {"best": {k: best_rate(n, v) for k, v in t.items()}, "median": {k: median_rate(n, v) for k, v in t.items()}}


def bench_addrs(ns: NetNS, n: int, runs: int) -> dict[str, float]:
    addrs = [ipaddress.IPv4Interface((int(ipaddress.IPv4Address("198.18.0.1")) + i, 32)) for i in range(n)]
    tmp = tempfile.mkdtemp(prefix="tunkit-bench-")
    add_file, del_file = os.path.join(tmp, "addadd"), os.path.join(tmp, "adddel")
    with open(add_file, "w") as f:
        f.writelines(f"addr add {a} dev tk1\n" for a in addrs)
    with open(del_file, "w") as f:
        f.writelines(f"addr del {a} dev tk1\n" for a in addrs)
    t: dict[str, list[float]] = {"tk_pipelined": [], "tk_one_by_one": [], "ip_add": []}
    with ns.entered(), Rtnl() as rt:
        for _ in range(runs):
            secs, errors = timed(lambda: rt.add_addresses("tk1", addrs))
            assert not errors, errors[:3]
            t["tk_pipelined"].append(secs)
            ns.run(["ip", "-batch", del_file])

            def one_by_one():
                for a in addrs:
                    rt.add_address("tk1", a)

            secs, _ = timed(one_by_one)
            t["tk_one_by_one"].append(secs)
            ns.run(["ip", "-batch", del_file])
            secs, _ = timed(lambda: ns.run(["ip", "-batch", add_file]))
            t["ip_add"].append(secs)
            ns.run(["ip", "-batch", del_file])
    return {k: best_rate(n, v) for k, v in t.items()}


def bench_import(runs: int = 30) -> dict[str, float]:
    """Start-up cost: fastest of ``runs`` interpreter starts with and without the import
    (interleaved, so load changes hit both), and ``python -X importtime``'s own figure."""
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    # Byte-code caching on, in a private cache: what an installed package gets.  (Some
    # environments set PYTHONDONTWRITEBYTECODE, which makes every start compile from source.)
    env = dict(os.environ, PYTHONPATH=root, PYTHONPYCACHEPREFIX=tempfile.mkdtemp(prefix="tunkit-pyc-"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)

    def run(code: str) -> float:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, env=env)
        return time.perf_counter() - t

    codes = {"base": "pass", "netlink": "import tunkit.netlink", "client": "import tunkit.netlink.client"}
    best = {k: min(run(c) for _ in range(3)) for k, c in codes.items()}  # warm the caches
    for _ in range(runs):
        for k, c in codes.items():
            best[k] = min(best[k], run(c))
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tunkit.netlink"], env=env,
                         capture_output=True, text=True, check=True).stderr
    cumulative_us = next(int(line.split("|")[1]) for line in out.splitlines() if line.rstrip().endswith("| tunkit.netlink"))
    return {"python_ms": best["base"] * 1e3, "netlink_ms": (best["netlink"] - best["base"]) * 1e3,
            "client_ms": (best["client"] - best["base"]) * 1e3, "importtime_ms": cumulative_us / 1e3}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=10_000)
    ap.add_argument("--addrs", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_netlink: needs root (it creates a network namespace)", file=sys.stderr)
        return 2
    with NetNS("bench") as ns:
        for cmd in (["ip", "link", "add", "tk0", "type", "veth", "peer", "name", "tk1"],
                    ["ip", "link", "set", "tk0", "up"], ["ip", "link", "set", "tk1", "up"]):
            ns.run(cmd)
        results = {name: bench_routes(ns, args.routes, args.runs, shape) for name, shape in SHAPES.items()}
        a = bench_addrs(ns, args.addrs, args.runs)
    imp = bench_import()
    n = args.routes
    print(f"tunkit netlink benchmark: {n} IPv4 routes per shape, {args.runs} runs, in a fresh network namespace;")
    print(f"load average {os.getloadavg()[0]:.2f} at start (other load makes figures vary).")
    for name, res in results.items():
        print(f"  routes {name}: {SHAPES[name].__doc__.split(';')[0].strip()}")
        for stat in ("median", "best"):
            r = res[stat]
            print(f"    {stat:6s} add    tunkit {r['tk_add_build']:9,.0f}/s (messages built inside)  {r['tk_add']:9,.0f}/s (prebuilt)"
                  f"   ip -batch {r['ip_add']:9,.0f}/s   ratio {r['tk_add_build'] / r['ip_add']:.2f}x   target >= 1.0x")
            print(f"    {stat:6s} delete tunkit {r['tk_del']:9,.0f}/s   ip -batch {r['ip_del']:9,.0f}/s"
                  f"   ratio {r['tk_del'] / r['ip_del']:.2f}x   target >= 1.0x")
            print(f"    {stat:6s} dump   tunkit {r['tk_dump']:9,.0f}/s (RouteMessage objects)   ip -j route show + json.loads"
                  f" {r['ip_dump']:9,.0f}/s   ratio {r['tk_dump'] / r['ip_dump']:.2f}x   target >= 0.5x")
    print(f"  {args.addrs} address adds: tunkit pipelined {a['tk_pipelined']:,.0f}/s, one request each {a['tk_one_by_one']:,.0f}/s,"
          f" ip -batch {a['ip_add']:,.0f}/s")
    print(f"  import tunkit.netlink: +{imp['netlink_ms']:.1f} ms over a bare interpreter ({imp['python_ms']:.1f} ms, fastest of 30);"
          f" -X importtime {imp['importtime_ms']:.2f} ms; import tunkit.netlink.client: +{imp['client_ms']:.1f} ms   target < 10 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
