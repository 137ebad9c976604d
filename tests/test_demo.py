"""`python -m tunkit demo` end to end: exit 0, what it shows, and that it leaves nothing behind."""

from __future__ import annotations

import glob
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _holders_of(inode: int) -> list[str]:
    """Paths under /proc of *our* processes that still reference the network namespace ``inode``.

    Ours: this test process, its descendants, and anything the demo started (its command line names a
    tunkit-demo- directory, also once orphaned).  Other processes are left out: the suites of other
    checkouts run on this machine at the same time, and a freed namespace's inode number is reused.
    """
    needle = f"net:[{inode}]"
    found = []
    for path in glob.glob("/proc/[0-9]*/ns/net") + glob.glob("/proc/[0-9]*/fd/*"):
        try:
            if os.readlink(path) == needle and _ours(int(path.split("/")[2])):
                found.append(path)
        except OSError:  # processes and fds come and go while we scan
            continue
    return found


def _ours(pid: int) -> bool:
    try:
        cmd = open(f"/proc/{pid}/cmdline", "rb").read()
    except OSError:  # gone meanwhile
        return False
    if b"tunkit-demo-" in cmd or b"tunkit\0demo" in cmd:
        return True
    me = os.getpid()
    for _ in range(64):  # walk up the parents (bounded)
        if pid == me:
            return True
        if pid <= 1:
            return False
        try:
            status = open(f"/proc/{pid}/status").read()
        except OSError:
            return False
        pid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
    return False


def _demo_processes() -> list[str]:
    """Command lines of processes the demo started (its tunkit hosts) that still run."""
    found = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            cmd = open(path, "rb").read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if "tunkit-demo-" in cmd:
            found.append(cmd)
    return found


def test_demo_interrupted_leaves_nothing_behind(netns):
    proc = netns.popen([sys.executable, "-m", "tunkit", "demo"], cwd=ROOT, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"})
    seen = []
    try:
        for line in proc.stdout:  # bounded: the demo ends by itself within seconds
            seen.append(line)
            if "both hosts up" in line:
                proc.send_signal(signal.SIGINT)
                break
        rc = proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    out = "".join(seen)
    assert "both hosts up" in out, out + err
    assert rc == 130, err
    assert "interrupted" in err
    assert not _demo_processes()
    inodes = [int(i) for i in re.findall(r"\b(\d{10})\b", out)]
    assert len(inodes) >= 2, out  # section 1's namespace and the hosts' (printed before "both hosts up")
    for inode in inodes:
        assert not _holders_of(inode), f"namespace {inode} still referenced"


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
    # section 2: the overlay
    assert re.search(r"ping host-1 -> 198.18.0.2: 3/3 replies", out), out
    assert re.search(r"ping host-2 -> 198.18.0.1: 3/3 replies", out), out
    assert re.search(r"ping host-1 -> 2001:db8:100::2: 3/3 replies", out), out
    mb = int(re.search(r"TCP host-1 -> host-2: (\d+) MB", out).group(1))
    assert mb >= 200, out  # the whole transfer arrived
    tx = int(re.search(r"peer host-2 \(public key [A-Za-z0-9+/]{43}=\): tx (\d+) bytes", out).group(1))
    assert tx > mb * 1_000_000  # the transfer went through WireGuard
    assert "WireGuard mode (encrypted" in out
    assert "hosts stopped (exit 0 and 0): tunkit0 removed on both" in out
    inodes = [int(i) for i in re.findall(r"net inodes? ([\d ,and]+)", out) for i in re.findall(r"\d+", i)]
    assert len(inodes) == 3, out  # one namespace in section 1, two in section 2
    assert not _demo_processes()
    for inode in inodes:
        assert not _holders_of(inode), f"namespace {inode} still referenced"
    # nothing leaked into the namespace the demo was started from
    links = subprocess.run(["ip", "-j", "link"], capture_output=True, text=True, check=True).stdout
    assert "tunkit" not in links


@pytest.mark.parametrize("problem", ["not running as root", "/dev/net/tun is missing (load the tun module: modprobe tun)"])
def test_demo_says_why_it_cannot_run(monkeypatch, capsys, problem):
    from tunkit.app import demo
    from tunkit import netns

    monkeypatch.setattr(netns, "namespace_problem", lambda: problem)
    assert demo.run(out=lambda line: None) == 2
    err = capsys.readouterr().err
    assert problem in err and "run it as root" in err
