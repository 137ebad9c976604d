"""Benchmark: start-up time of ``tunkit link show -j`` against ``python -c pass`` and ``ip -j link show``; does I/O.

Rows: the installed console script's code (``tunkit link show -j``), ``python -m tunkit``, and the same
under ``python -S`` (no site.py) and ``python -I`` (isolated: no user site, environment ignored), each
next to the bare interpreter started the same way.

Run as root: ``python3 bench/bench_startup.py [--runs 30] [--profile]``.  Each command
runs as a subprocess inside a fresh network namespace this script creates (it reads
links only; nothing on the host is touched), ``--runs`` times, interleaved so load
changes hit all alike; the median of each is printed.  Byte code is cached, as for an
installed package: in a private ``PYTHONPYCACHEPREFIX``, warmed first, with
``PYTHONDONTWRITEBYTECODE`` removed.  ``--profile`` adds ``python -X importtime``'s
view of the tunkit command: the slowest imports, cumulative microseconds.
Figures depend on the machine and its load; they are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from tunkit.netns import NetNS  # noqa: E402


def environment() -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(ROOT), PYTHONPYCACHEPREFIX=tempfile.mkdtemp(prefix="tunkit-pyc-"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# "-S" rows skip site.py: some environments import heavy modules from .pth files at every start
# (certifi, pathlib, re, ...), which both slows "python -c pass" and hides tunkit's own import cost.
# "tunkit link show -j" is what the installed console script runs (pyproject's tunkit = "tunkit.cli:main");
# "python -m tunkit" adds runpy's start-up.
_SCRIPT = "import sys; from tunkit.cli import main; sys.exit(main())"
# -I (isolated) ignores PYTHONPATH and PYTHONPYCACHEPREFIX: the script puts the tree on sys.path itself,
# and byte code is cached in the tree's (git-ignored) __pycache__ directories.
_ISOLATED = f"import sys; sys.path.insert(0, {os.path.abspath(ROOT)!r}); from tunkit.cli import main; sys.exit(main())"
COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "tunkit link show -j": [sys.executable, "-c", _SCRIPT, "link", "show", "-j"],
    "python -m tunkit ...": [sys.executable, "-m", "tunkit", "link", "show", "-j"],
    "python -S -c pass": [sys.executable, "-S", "-c", "pass"],
    "tunkit (python -S)": [sys.executable, "-S", "-c", _SCRIPT, "link", "show", "-j"],
    "python -I -c pass": [sys.executable, "-I", "-c", "pass"],
    "tunkit (python -I)": [sys.executable, "-I", "-c", _ISOLATED, "link", "show", "-j"],
    "ip -j link show": ["ip", "-j", "link", "show"],
}
_BASE = {"tunkit link show -j": "python -c pass", "python -m tunkit ...": "python -c pass",
         "tunkit (python -S)": "python -S -c pass", "tunkit (python -I)": "python -I -c pass"}


def measure(runs: int, env: dict[str, str]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Wall-clock seconds and CPU seconds (the child's user + system time) of each run."""
    wall: dict[str, list[float]] = {k: [] for k in COMMANDS}
    cpu: dict[str, list[float]] = {k: [] for k in COMMANDS}
    for cmd in COMMANDS.values():  # warm the byte-code cache and the page cache
        for _ in range(3):
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
    for _ in range(runs):
        for name, cmd in COMMANDS.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, check=True)
            wall[name].append(time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu[name].append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return wall, cpu


def import_profile(env: dict[str, str], top: int = 25) -> list[tuple[int, int, str]]:
    """(self us, cumulative us, module) of the slowest imports of the tunkit command (median of 5),
    without site.py, so that what tunkit itself imports shows."""
    samples: dict[str, list[tuple[int, int]]] = {}
    for _ in range(5):
        err = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", _SCRIPT, "link", "show", "-j"], env=env,
                             capture_output=True, text=True, check=True).stderr
        for line in err.splitlines():
            if not line.startswith("import time:") or "self [us]" in line:
                continue
            _, self_us, cum_us, name = (p.strip() for p in line.replace("import time:", "|").split("|"))
            samples.setdefault(name, []).append((int(self_us), int(cum_us)))
    rows = [(int(statistics.median(s for s, _ in v)), int(statistics.median(c for _, c in v)), k)
            for k, v in samples.items()]
    return sorted(rows, key=lambda r: -r[1])[:top]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--profile", action="store_true", help="also print the import-time profile")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_startup: needs root (it creates a network namespace)", file=sys.stderr)
        return 2
    env = environment()
    load = os.getloadavg()[0]
    with NetNS("bench-startup") as ns, ns.entered():  # children inherit the namespace
        times, cpu = measure(args.runs, env)
        profile = import_profile(env) if args.profile else []
    print(f"start-up, median of {args.runs} runs each (interleaved), byte code cached; "
          f"load average {load:.2f} at start (other load makes figures vary; CPU time varies less):")
    print(f"  {'command':24s} {'wall':>9s} {'min':>8s} {'CPU':>8s}")
    for name, ts in times.items():
        med = statistics.median(ts)
        base = _BASE.get(name)
        extra = ""
        if base:
            extra = (f"   (+{(med - statistics.median(times[base])) * 1e3:.1f} ms wall,"
                     f" +{(statistics.median(cpu[name]) - statistics.median(cpu[base])) * 1e3:.1f} ms CPU over {base})")
        print(f"  {name:24s} {med * 1e3:6.1f} ms {min(ts) * 1e3:5.1f} ms {statistics.median(cpu[name]) * 1e3:5.1f} ms{extra}")
    print("  target: tunkit link show -j under 40 ms (issue 15; set when 'python -c pass' took 13.6 ms: compare the"
          " '+ ms over' figures, which leave out the interpreter's own start, and the -S row, which leaves out site.py)")
    if profile:
        print("import-time profile of tunkit link show -j under python -S (-X importtime, median of 5; us):")
        print(f"  {'self':>7} {'cumulative':>10}  module")
        for self_us, cum_us, name in profile:
            print(f"  {self_us:7d} {cum_us:10d}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
