"""`python -m tunkit demo` end to end: exit 0, what it shows, and that it leaves nothing behind."""

from __future__ import annotations

import glob
import os
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _holders_of(inode: int) -> list[str]:
    """Paths under /proc that still reference the network namespace ``inode``."""
    needle = f"net:[{inode}]"
    found = []
    for path in glob.glob("/proc/[0-9]*/ns/net") + glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(path) == needle:
                found.append(path)
        except OSError:  # processes and fds come and go while we scan
            continue
    return found


def test_demo_runs_and_leaves_nothing_behind(netns):
    # Run from inside a throwaway namespace: even a demo bug could not reach the host's.
    proc = netns.run([sys.executable, "-m", "tunkit", "demo"], cwd=ROOT, check=False, timeout=120,
                     env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "this host's network is untouched" in out
    assert re.search(r"created tunkit0: ifindex \d+, mode tun", out)
    assert "payload b'hello through a TUN device'" in out
    assert "removed by the kernel" in out
    inodes = [int(i) for i in re.findall(r"net inode (\d+)", out)]
    assert inodes, out
    for inode in inodes:
        assert not _holders_of(inode), f"namespace {inode} still referenced"
    # nothing leaked into the namespace the demo was started from
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    assert "tunkit" not in links


def test_demo_refuses_without_root_clearly(monkeypatch, capsys):
    from tunkit import demo

    monkeypatch.setattr(demo.os, "geteuid", lambda: 1000)
    assert demo.run(out=lambda line: None) == 2
    assert "run it as root" in capsys.readouterr().err


def test_demo_says_what_is_missing_without_dev_net_tun(monkeypatch, capsys):
    from tunkit import demo

    monkeypatch.setattr(demo.os, "geteuid", lambda: 0)
    real_exists = demo.os.path.exists
    monkeypatch.setattr(demo.os.path, "exists", lambda p: False if p == "/dev/net/tun" else real_exists(p))
    assert demo.run(out=lambda line: None) == 2
    assert "/dev/net/tun is missing" in capsys.readouterr().err
