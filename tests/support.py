"""Test helpers shared by the suite: privilege probe, ``ip -j`` oracle, small utilities.

Imported by tests as ``import support`` (conftest puts this folder on sys.path).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import json
import os
import shutil
import subprocess
import threading
from typing import Any


def thread_netns_inode() -> int:
    return os.stat(f"/proc/self/task/{threading.get_native_id()}/ns/net").st_ino


@functools.lru_cache(maxsize=None)
def privilege_problem() -> str | None:
    """Why privileged tests cannot run here, or None if they can."""
    if os.geteuid() != 0:
        return "not running as root"
    if not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun is missing"
    if shutil.which("ip") is None:
        return "the 'ip' command (iproute2) is missing; scripts/test.sh installs it"
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    # Probe namespace creation in a child so this process is untouched.
    pid = os.fork()
    if pid == 0:  # child: try unshare(CLONE_NEWNET) and report through the exit code
        os._exit(0 if libc.unshare(0x40000000) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        return "cannot create a network namespace (unshare(CLONE_NEWNET) failed)"
    return None


def ip_json(*args: str, ns=None) -> Any:
    """Run ``ip -j ARGS`` (in ``ns`` if given, else in the calling thread's namespace); parsed JSON."""
    cmd = ["ip", "-j", *args]
    if ns is not None:
        out = ns.run(cmd).stdout
    else:
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
    return json.loads(out) if out.strip() else []


def ip(*args: str, ns=None) -> str:
    """Run ``ip ARGS`` (raising on failure); returns stdout."""
    cmd = ["ip", *args]
    if ns is not None:
        return ns.run(cmd).stdout
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
