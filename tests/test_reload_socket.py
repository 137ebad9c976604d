"""``tunkit reload`` trusts the kernel, not the socket: a server run by another user cannot make it signal a pid.

Each fake instance is a child interpreter that binds a status socket in a tmp dir, optionally drops to
``nobody`` (before or after binding), listens, and answers every connection with a status document
claiming some pid.  A victim process stands for the pid an attacker would want signalled; it blocks
SIGHUP, so a signal sent to it stays pending in /proc/PID/status (no waiting, no race).  Needs root
(to become nobody).
"""

from __future__ import annotations

import os
import pathlib
import pwd
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
NOBODY = pwd.getpwnam("nobody")

SERVER = r"""
import json, os, signal, socket, sys
path, claim, drop = sys.argv[1], sys.argv[2], sys.argv[3]
uid, gid = int(sys.argv[4]), int(sys.argv[5])
signal.signal(signal.SIGHUP, lambda *a: os._exit(7))   # a real reload reaches this process
if drop == "before-bind":
    os.setgid(gid); os.setuid(uid)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
if drop == "after-bind":
    os.setgid(gid); os.setuid(uid)
s.listen(4)
pid = os.getpid() if claim == "self" else int(claim)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    try:
        c.sendall(json.dumps({"pid": pid, "device": "fake0"}).encode() + b"\n")
    except OSError:  # the client hung up first (it refused us before reading)
        pass
    c.close()
"""

pytestmark = pytest.mark.privileged


def _serve(path, claim, drop="no", mode=None):
    p = subprocess.Popen([sys.executable, "-c", SERVER, str(path), str(claim), drop, str(NOBODY.pw_uid),
                          str(NOBODY.pw_gid)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    if mode is not None:
        os.chmod(path, mode)
    return p


def _reload(path):
    return subprocess.run([sys.executable, "-m", "tunkit", "reload", "--socket", str(path)], env=ENV,
                          capture_output=True, text=True, timeout=60)


VICTIM = r"""
import signal, sys, time
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # a SIGHUP sent stays pending: visible in /proc
print("ready", flush=True)
time.sleep(60)
"""


@pytest.fixture
def victim():
    """The pid an attacker wants signalled; SIGHUP is blocked there, so a signal sent shows as pending."""
    p = subprocess.Popen([sys.executable, "-c", VICTIM], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    yield p
    p.kill()
    p.wait(timeout=10)


def _hup_pending(pid: int) -> bool:
    """Whether SIGHUP is pending for ``pid`` (set by kill() before it returns: no waiting needed)."""
    status = pathlib.Path(f"/proc/{pid}/status").read_text()
    masks = [int(line.split()[1], 16) for line in status.splitlines() if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(m & (1 << (1 - 1)) for m in masks)  # SIGHUP is signal 1


@pytest.fixture
def public_tmp():
    """A fresh directory that nobody can reach (pytest's tmp_path is inside root's 0700 directory)."""
    import shutil
    import tempfile

    d = pathlib.Path(tempfile.mkdtemp(prefix=f"tunkit-reload-{os.getpid()}-", dir="/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _world_dir(base, mode):
    d = base / "run"
    d.mkdir()
    os.chmod(d, mode)
    return d


# (case, directory mode, who drops to nobody and when, socket mode, fragment of the refusal)
REFUSED = [
    ("server runs as nobody", 0o755, "after-bind", None, "running as uid %d, not as you" % NOBODY.pw_uid),
    ("socket owned by nobody in a sticky dir", 0o1777, "before-bind", None, "owned by uid %d" % NOBODY.pw_uid),
    ("directory writable by others", 0o777, "before-bind", None, "others may write to the directory"),
    ("socket writable by others", 0o755, "no", 0o666, "the socket is writable by others"),
]


@pytest.mark.parametrize("case,dmode,drop,smode,fragment", REFUSED, ids=[c[0] for c in REFUSED])
def test_reload_refuses_a_socket_it_cannot_trust_and_signals_nothing(public_tmp, victim, case, dmode, drop, smode, fragment):
    path = _world_dir(public_tmp, dmode) / "fake0.sock"
    server = _serve(path, victim.pid, drop, smode)
    try:
        out = _reload(path)
        assert out.returncode == 2, out
        assert "reload refused" in out.stderr and fragment in out.stderr and str(path.parent) in out.stderr, out.stderr
        assert not _hup_pending(victim.pid) and victim.poll() is None and server.poll() is None
    finally:
        server.kill()
        server.wait(timeout=10)


def test_reload_refuses_a_server_that_claims_another_pid(public_tmp, victim):
    path = _world_dir(public_tmp, 0o755) / "fake0.sock"
    server = _serve(path, victim.pid, "no", 0o600)  # root's own server, lying about its pid
    try:
        out = _reload(path)
        assert out.returncode == 2 and f"says it is pid {victim.pid} but the kernel says pid {server.pid}" in out.stderr
        assert not _hup_pending(victim.pid) and server.poll() is None
    finally:
        server.kill()
        server.wait(timeout=10)


def test_reload_signals_a_trusted_server(public_tmp, victim):
    path = _world_dir(public_tmp, 0o755) / "fake0.sock"
    server = _serve(path, "self", "no", 0o600)
    try:
        out = _reload(path)
        assert out.returncode == 0 and f"pid {server.pid}" in out.stdout, out
        assert server.wait(timeout=10) == 7  # its SIGHUP handler ran
        assert not _hup_pending(victim.pid)
    finally:
        server.kill()
        server.wait(timeout=10)
