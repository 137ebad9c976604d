"""Benchmark: tunkit's rtnetlink client against iproute2 (`ip -batch`, `ip -j`) and pyroute2; does I/O.

Run as root: ``python3 bench/bench_netlink.py [--routes 10000] [--runs 5] [--neighbours 10000]
[--rules 1000] [--pyroute2 /tmp/tk-bench-venv/bin/python]``.

Everything happens in a throwaway network namespace this script creates;
nothing on the host is touched.  Every figure is the **median** of ``--runs``
rounds (each round runs every tool once, interleaved, so load changes hit all
alike; for routes, who goes first alternates between rounds), with the garbage
collector left on and no collection forced between steps: what an application sees.  Route work is measured for two shapes:

* ``/30``: 10,000 IPv4 /30 routes in 198.18.0.0/15, 1 in 4 with a metric and an MTU;
* ``/32+/24``: 5,000 /32 host routes (1 in 4 with an MTU) and 5,000 /24 routes
  (256 prefixes in 198.19.0.0/16, each with metrics 1..20; 1 in 8 with an MTU).

tunkit's add is reported from text (``route_message("198.18.0.4/30", ...)``,
parsing included, as ``ip -batch`` parses its file), from network objects, and
for prebuilt messages; the ratio against ``ip -batch`` uses the text figure.
Neighbours and rules (add, dump, delete) compare tunkit (when this tree's
``Rtnl`` has ``add_neighbour`` or ``add_neigh``, ``neighbours``, ``delete_neighbour``
or ``delete_neigh``, and ``add_rule``/``rules``/``delete_rule``; otherwise "not
available"), one request per object and pipelined (``neigh_message``/``rule_message``
+ ``NetlinkSocket.pipeline``), against pyroute2 and ``ip -batch``.  pyroute2 is never a dependency: it runs only if ``--pyroute2``
names a Python that has it (e.g. ``python3 -m venv /tmp/tk-bench-venv &&
/tmp/tk-bench-venv/bin/pip install pyroute2``; that path is the default).
Figures depend on the machine and its load; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
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

DEFAULT_PYROUTE2 = "/tmp/tk-bench-venv/bin/python"


# ---------------------------------------------------------------------------
# route shapes: (network, metric or None, mtu or None)
# ---------------------------------------------------------------------------
def routes_30(n: int):
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    for i in range(n):
        dst = ipaddress.IPv4Network((base + 4 * i, 30))
        yield (dst, i % 7 + 1, 1400) if i % 4 == 0 else (dst, None, None)


def routes_32_24(n: int):
    host = int(ipaddress.IPv4Address("198.18.0.0"))
    net24 = int(ipaddress.IPv4Address("198.19.0.0"))
    for i in range(n):
        k = i // 2
        if i % 2 == 0:
            yield ipaddress.IPv4Network((host + k, 32)), None, 1400 if k % 4 == 0 else None
        else:
            yield ipaddress.IPv4Network((net24 + ((k % 256) << 8), 24)), k // 256 + 1, 1400 if k % 8 == 0 else None


SHAPES = {"/30": routes_30, "/32+/24": routes_32_24}


def ip_route_lines(specs, verb: str):
    for dst, metric, mtu in specs:
        extra = (f" metric {metric}" if metric is not None else "") + (f" mtu {mtu}" if mtu is not None else "")
        yield f"route {verb} {dst} dev tk0{extra}\n"


def timed(fn):
    """Seconds ``fn()`` took, and its result."""
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def _file(tmp: str, name: str, lines) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.writelines(lines)
    return path


def bench_routes(ns: NetNS, specs: list, runs: int, tmp: str, tag: str) -> dict[str, list[float]]:
    n = len(specs)
    add_file = _file(tmp, f"route-add{tag}", ip_route_lines(specs, "add"))
    del_file = _file(tmp, f"route-del{tag}", ip_route_lines(specs, "del"))
    texts = [(str(d), m, u) for d, m, u in specs]
    t: dict[str, list[float]] = {k: [] for k in ("tk_add_text", "tk_add_obj", "tk_add", "tk_dump", "tk_del",
                                                 "ip_add", "ip_dump", "ip_del")}
    with ns.entered(), Rtnl() as rt:
        tk0 = rt.index("tk0")  # looked up once: a name may be looked up per message

        def add_from(items):
            msgs = [rt.route_message(d, dev=tk0, metric=m, mtu=u) for d, m, u in items]
            return msgs, rt.add_routes(msgs)

        def tunkit_round(first: str) -> None:
            # the add right after another tool's work is the slowest one: which variant that is alternates
            for variant in ("text", "obj") if first == "text" else ("obj", "text"):
                secs, (msgs, errors) = timed(lambda: add_from(texts if variant == "text" else specs))
                assert not errors, errors[:3]
                t[f"tk_add_{variant}"].append(secs)
                if variant == "text":
                    secs, routes = timed(lambda: rt.routes(table=254))
                    assert len(routes) >= n, len(routes)
                    t["tk_dump"].append(secs)
                    del routes
                    secs, errors = timed(lambda: rt.delete_routes(msgs))
                    assert not errors, errors[:3]
                    t["tk_del"].append(secs)
                else:
                    assert not rt.delete_routes(msgs)
            secs, errors = timed(lambda: rt.add_routes(msgs))
            assert not errors
            t["tk_add"].append(secs)
            assert not rt.delete_routes(msgs)

        def ip_round() -> None:
            secs, _ = timed(lambda: ns.run(["ip", "-batch", add_file]))
            t["ip_add"].append(secs)
            secs, shown = timed(lambda: json.loads(ns.run(["ip", "-j", "route", "show"]).stdout))
            assert len(shown) >= n
            t["ip_dump"].append(secs)
            del shown
            secs, _ = timed(lambda: ns.run(["ip", "-batch", del_file]))
            t["ip_del"].append(secs)

        for r in range(runs):  # who goes first alternates: what the previous step left behind hits both
            if r % 2 == 0:
                tunkit_round("text" if r % 4 == 0 else "obj")
                ip_round()
            else:
                ip_round()
                tunkit_round("obj" if r % 4 == 1 else "text")
    return t


def bench_addrs(ns: NetNS, n: int, runs: int, tmp: str) -> dict[str, list[float]]:
    addrs = [ipaddress.IPv4Interface((int(ipaddress.IPv4Address("198.18.0.1")) + i, 32)) for i in range(n)]
    add_file = _file(tmp, "addr-add", (f"addr add {a} dev tk1\n" for a in addrs))
    del_file = _file(tmp, "addr-del", (f"addr del {a} dev tk1\n" for a in addrs))
    t: dict[str, list[float]] = {"tk_pipelined": [], "tk_one_by_one": [], "ip_add": []}
    with ns.entered(), Rtnl() as rt:
        tk1 = rt.index("tk1")
        for _ in range(runs):
            secs, errors = timed(lambda: rt.add_addresses(tk1, addrs))
            assert not errors, errors[:3]
            t["tk_pipelined"].append(secs)
            ns.run(["ip", "-batch", del_file])

            def one_by_one():
                for a in addrs:
                    rt.add_address(tk1, a)

            secs, _ = timed(one_by_one)
            t["tk_one_by_one"].append(secs)
            ns.run(["ip", "-batch", del_file])
            secs, _ = timed(lambda: ns.run(["ip", "-batch", add_file]))
            t["ip_add"].append(secs)
            ns.run(["ip", "-batch", del_file])
    return t


# ---------------------------------------------------------------------------
# neighbours and rules: tunkit (if present), pyroute2 (if installed), ip -batch
# ---------------------------------------------------------------------------
def neighbour_specs(n: int) -> list[tuple[str, str]]:
    base = int(ipaddress.IPv4Address("198.18.0.0"))
    return [(str(ipaddress.IPv4Address(base + 1 + i)), "02:00:%02x:%02x:%02x:%02x" % (
        (i >> 24) & 0xFF, (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF)) for i in range(n)]


def rule_specs(n: int) -> list[tuple[str, int]]:
    base = int(ipaddress.IPv4Address("198.19.0.0"))
    return [(f"{ipaddress.IPv4Address(base + i)}/32", 1000 + i) for i in range(n)]


def _method(*names: str):
    """The first of ``names`` that Rtnl has (the methods are written on another branch), or None."""
    return next((n for n in names if callable(getattr(Rtnl, n, None))), None)


NEIGH_METHODS = (("add_neighbour", "add_neigh"), ("neighbours",), ("delete_neighbour", "delete_neigh"))
RULE_METHODS = (("add_rule",), ("rules",), ("delete_rule",))
# message types (linux/rtnetlink.h) for the pipelined variant
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_NEWRULE, RTM_DELRULE = 28, 29, 32, 33


def _methods(table) -> tuple[list[str] | None, str]:
    found = [_method(*alts) for alts in table]
    missing = ["/".join(alts) for alts, f in zip(table, found) if f is None]
    return (None, f"not available (Rtnl has no {', '.join(missing)} on this branch)") if missing else (found, "")


def tunkit_objects(ns: NetNS, kind: str, specs, runs: int) -> dict[str, dict[str, list[float]] | str]:
    """tunkit, one request per object (the plain methods) and pipelined (``*_message`` + ``sock.pipeline``)."""
    names, why = _methods(NEIGH_METHODS if kind == "neigh" else RULE_METHODS)
    if names is None:
        return {"one": why, "pipelined": why}
    add, show, delete = names
    builder = "neigh_message" if kind == "neigh" else "rule_message"
    one: dict[str, list[float]] = {"add": [], "dump": [], "del": []}
    piped: dict[str, list[float]] | str = {"add": [], "dump": [], "del": []}
    if not callable(getattr(Rtnl, builder, None)):
        piped = f"not available (Rtnl has no {builder})"
    try:
        with ns.entered(), Rtnl() as rt:
            tk0 = rt.index("tk0")
            if kind == "neigh":
                args = [((a,), {"lladdr": mac, "dev": tk0}) for a, mac in specs]
                del_args = [((a,), {"dev": tk0}) for a, _mac in specs]
                build = lambda verb: [rt.neigh_message(a, lladdr=mac, dev=tk0) if verb == "add"
                                      else rt.neigh_message(a, dev=tk0) for a, mac in specs]
                types = (RTM_NEWNEIGH, RTM_DELNEIGH)
            else:
                args = [((), {"src": s, "table": 1000, "priority": p}) for s, p in specs]
                del_args = args
                build = lambda verb: [rt.rule_message(verb, src=s, table=1000, priority=p) for s, p in specs]
                types = (RTM_NEWRULE, RTM_DELRULE)
            for _ in range(runs):
                secs, _ = timed(lambda: [getattr(rt, add)(*a, **k) for a, k in args])
                one["add"].append(secs)
                secs, shown = timed(lambda: getattr(rt, show)())
                assert len(shown) >= len(specs), len(shown)
                one["dump"].append(secs)
                secs, _ = timed(lambda: [getattr(rt, delete)(*a, **k) for a, k in del_args])
                one["del"].append(secs)
                if isinstance(piped, dict):
                    from tunkit.netlink.rtnl import VERB_FLAGS

                    secs, failed = timed(lambda: rt.sock.pipeline(
                        [(types[0], int(VERB_FLAGS["add"]), m.encode()) for m in build("add")]))
                    assert not failed, failed[:3]
                    piped["add"].append(secs)
                    secs, shown = timed(lambda: getattr(rt, show)())
                    piped["dump"].append(secs)
                    secs, failed = timed(lambda: rt.sock.pipeline(
                        [(types[1], int(VERB_FLAGS["delete"]), m.encode()) for m in build("delete")]))
                    assert not failed, failed[:3]
                    piped["del"].append(secs)
    except TypeError as e:  # written before the methods existed: their signature may differ
        return {"one": f"not available (signature differs: {e})", "pipelined": f"not available ({e})"}
    return {"one": one, "pipelined": piped}


def ip_neighbours_rules(ns: NetNS, neigh, rules, runs: int, tmp: str) -> dict[str, dict[str, list[float]]]:
    files = {
        "neigh-add": (f"neigh add {a} lladdr {mac} dev tk0 nud permanent\n" for a, mac in neigh),
        "neigh-del": (f"neigh del {a} dev tk0\n" for a, _ in neigh),
        "rule-add": (f"rule add from {s} table 1000 priority {p}\n" for s, p in rules),
        "rule-del": (f"rule del from {s} table 1000 priority {p}\n" for s, p in rules),
    }
    paths = {k: _file(tmp, k, v) for k, v in files.items()}
    out = {"neigh": {"add": [], "dump": [], "del": []}, "rule": {"add": [], "dump": [], "del": []}}
    for _ in range(runs):
        for kind, show, count in (("neigh", ["neigh", "show", "dev", "tk0"], len(neigh)), ("rule", ["rule", "show"], len(rules))):
            secs, _ = timed(lambda: ns.run(["ip", "-batch", paths[f"{kind}-add"]]))
            out[kind]["add"].append(secs)
            secs, shown = timed(lambda: json.loads(ns.run(["ip", "-j", *show]).stdout))
            assert len(shown) >= count, (kind, len(shown))
            out[kind]["dump"].append(secs)
            secs, _ = timed(lambda: ns.run(["ip", "-batch", paths[f"{kind}-del"]]))
            out[kind]["del"].append(secs)
    return out


# Runs under the pyroute2 venv's Python, inside the namespace; prints {"neigh": {...}, "rule": {...}} (seconds).
PYROUTE2_SCRIPT = r"""
import json, sys, time
from pyroute2 import IPRoute
neigh, rules, runs = json.loads(sys.stdin.read())
NUD_PERMANENT = 0x80
out = {"neigh": {"add": [], "dump": [], "del": []}, "rule": {"add": [], "dump": [], "del": []}}
with IPRoute() as ipr:
    idx = ipr.link_lookup(ifname="tk0")[0]
    def timed(fn):
        t = time.perf_counter(); r = fn(); return time.perf_counter() - t, r
    for _ in range(runs):
        s, _ = timed(lambda: [ipr.neigh("add", dst=a, lladdr=mac, ifindex=idx, state=NUD_PERMANENT) for a, mac in neigh])
        out["neigh"]["add"].append(s)
        s, shown = timed(lambda: list(ipr.get_neighbours(ifindex=idx)))
        assert len(shown) >= len(neigh), len(shown)
        out["neigh"]["dump"].append(s)
        s, _ = timed(lambda: [ipr.neigh("del", dst=a, ifindex=idx) for a, _m in neigh])
        out["neigh"]["del"].append(s)
        s, _ = timed(lambda: [ipr.rule("add", table=1000, priority=p, src=src.split("/")[0], src_len=32) for src, p in rules])
        out["rule"]["add"].append(s)
        s, shown = timed(lambda: list(ipr.get_rules()))
        assert len(shown) >= len(rules), len(shown)
        out["rule"]["dump"].append(s)
        s, _ = timed(lambda: [ipr.rule("del", table=1000, priority=p, src=src.split("/")[0], src_len=32) for src, p in rules])
        out["rule"]["del"].append(s)
print(json.dumps(out))
"""


def pyroute2_neighbours_rules(ns: NetNS, python: str | None, neigh, rules, runs: int) -> dict | str:
    if not python or not os.path.exists(python):
        return f"not run (no pyroute2 Python at {python}; see --pyroute2)"
    probe = subprocess.run([python, "-c", "import pyroute2; print(pyroute2.__version__)"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"not run ({python} cannot import pyroute2)"
    proc = ns.run([python, "-c", PYROUTE2_SCRIPT], input=json.dumps([neigh, rules, runs]), timeout=1800, check=False)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else proc.returncode}"
    out = json.loads(proc.stdout)
    out["version"] = probe.stdout.strip()
    return out


# ---------------------------------------------------------------------------
def bench_import(runs: int = 30) -> dict[str, float]:
    """Start-up cost: median of ``runs`` interpreter starts with and without the import
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
    for c in codes.values():  # warm the caches
        run(c)
    times: dict[str, list[float]] = {k: [] for k in codes}
    for _ in range(runs):
        for k, c in codes.items():
            times[k].append(run(c))
    med = {k: statistics.median(v) for k, v in times.items()}
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import tunkit.netlink"], env=env,
                         capture_output=True, text=True, check=True).stderr
    cumulative_us = next(int(line.split("|")[1]) for line in out.splitlines() if line.rstrip().endswith("| tunkit.netlink"))
    return {"python_ms": med["base"] * 1e3, "netlink_ms": (med["netlink"] - med["base"]) * 1e3,
            "client_ms": (med["client"] - med["base"]) * 1e3, "importtime_ms": cumulative_us / 1e3}


def _rate(count: int, seconds: list[float]) -> float:
    return count / statistics.median(seconds)


def _print_trio(what: str, count: int, tk: dict, p2, ip: dict[str, list[float]]) -> None:
    print(f"  {what}: {count} each, objects/s (median)")
    for verb in ("add", "dump", "del"):
        ip_rate = _rate(count, ip[verb])
        cells = []
        for label, t in (("tunkit", tk["one"]), ("tunkit pipelined", tk["pipelined"])):
            if isinstance(t, dict):
                r = _rate(count, t[verb])
                vs = f", {r / _rate(count, p2[verb]):.1f}x pyroute2" if isinstance(p2, dict) else ""
                cells.append(f"{label} {r:9,.0f} ({r / ip_rate:.2f}x ip{vs})")
        cells.append(f"ip -batch {ip_rate:9,.0f}" if verb != "dump" else f"ip -j + json {ip_rate:9,.0f}")
        if isinstance(p2, dict):
            cells.append(f"pyroute2 {_rate(count, p2[verb]):9,.0f}")
        print(f"    {verb:5s} " + "   ".join(cells))
    for label, t in (("tunkit", tk["one"]), ("tunkit pipelined", tk["pipelined"])):
        if not isinstance(t, dict):
            print(f"    {label}: {t}")
    if not isinstance(p2, dict):
        print(f"    pyroute2: {p2}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--routes", type=int, default=10_000)
    ap.add_argument("--addrs", type=int, default=1_000)
    ap.add_argument("--neighbours", type=int, default=10_000)
    ap.add_argument("--rules", type=int, default=1_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"route shapes to run (default: {','.join(SHAPES)})")
    ap.add_argument("--pyroute2", default=DEFAULT_PYROUTE2, metavar="PYTHON",
                    help=f"a Python with pyroute2 installed (default {DEFAULT_PYROUTE2}; '' to skip)")
    ap.add_argument("--skip", default="", help="comma-separated parts to skip: routes,addrs,neigh,import")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_netlink: needs root (it creates a network namespace)", file=sys.stderr)
        return 2
    skip = set(filter(None, args.skip.split(",")))
    shapes = [s for s in args.shapes.split(",") if s]
    for s in shapes:
        if s not in SHAPES:
            ap.error(f"--shapes: unknown shape {s!r}; want some of {', '.join(SHAPES)}")
    load = os.getloadavg()[0]
    tmp = tempfile.mkdtemp(prefix="tunkit-bench-")
    results: dict[str, dict[str, list[float]]] = {}
    with NetNS("bench") as ns:
        for cmd in (["ip", "link", "add", "tk0", "type", "veth", "peer", "name", "tk1"],
                    ["ip", "link", "set", "tk0", "up"], ["ip", "link", "set", "tk1", "up"]):
            ns.run(cmd)
        if "routes" not in skip:
            for i, shape in enumerate(shapes):
                results[shape] = bench_routes(ns, list(SHAPES[shape](args.routes)), args.runs, tmp, str(i))
        a = bench_addrs(ns, args.addrs, args.runs, tmp) if "addrs" not in skip else None
        if "neigh" not in skip:
            neigh, rules = neighbour_specs(args.neighbours), rule_specs(args.rules)
            tk_n = tunkit_objects(ns, "neigh", neigh, args.runs)
            tk_r = tunkit_objects(ns, "rule", rules, args.runs)
            p2 = pyroute2_neighbours_rules(ns, args.pyroute2 or None, neigh, rules, args.runs)
            ipnr = ip_neighbours_rules(ns, neigh, rules, args.runs, tmp)
    imp = bench_import() if "import" not in skip else None
    n = args.routes
    print(f"tunkit netlink benchmark: medians of {args.runs} rounds, GC on, in a fresh network namespace;"
          f" load average {load:.2f} at start (other load makes figures vary).")
    for shape, r in results.items():
        rate = {k: _rate(n, v) for k, v in r.items()}
        print(f"  {n} IPv4 routes, shape {shape}:")
        print(f"    add    tunkit {rate['tk_add_text']:9,.0f}/s from text, {rate['tk_add_obj']:9,.0f}/s from objects,"
              f" {rate['tk_add']:9,.0f}/s prebuilt;  ip -batch {rate['ip_add']:9,.0f}/s"
              f"   ratio {rate['tk_add_text'] / rate['ip_add']:.2f}x (text)  {rate['tk_add_obj'] / rate['ip_add']:.2f}x (objects)"
              f"   target >= 1.0x")
        print(f"    dump   tunkit {rate['tk_dump']:9,.0f}/s (RouteMessage objects);  ip -j route show + json"
              f" {rate['ip_dump']:9,.0f}/s   ratio {rate['tk_dump'] / rate['ip_dump']:.2f}x   target >= 0.5x")
        print(f"    delete tunkit {rate['tk_del']:9,.0f}/s;  ip -batch {rate['ip_del']:9,.0f}/s"
              f"   ratio {rate['tk_del'] / rate['ip_del']:.2f}x   target >= 1.0x")
    if a is not None:
        print(f"  {args.addrs} address adds: tunkit pipelined {_rate(args.addrs, a['tk_pipelined']):,.0f}/s,"
              f" one request each {_rate(args.addrs, a['tk_one_by_one']):,.0f}/s, ip -batch {_rate(args.addrs, a['ip_add']):,.0f}/s")
    if "neigh" not in skip:
        if isinstance(p2, dict):
            print(f"  pyroute2 {p2['version']} (its own venv; one request per call, as its API makes them)")
        _print_trio("neighbours", args.neighbours, tk_n, p2["neigh"] if isinstance(p2, dict) else p2, ipnr["neigh"])
        _print_trio("rules", args.rules, tk_r, p2["rule"] if isinstance(p2, dict) else p2, ipnr["rule"])
        print("    targets: tunkit >= 5x pyroute2 and >= 1.0x ip -batch")
    if imp is not None:
        print(f"  import tunkit.netlink: +{imp['netlink_ms']:.1f} ms over a bare interpreter ({imp['python_ms']:.1f} ms, median of 30);"
              f" -X importtime {imp['importtime_ms']:.2f} ms; import tunkit.netlink.client: +{imp['client_ms']:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
