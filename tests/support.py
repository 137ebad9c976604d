"""Test helpers shared by the suite: privilege probe, ``ip -j`` oracle, small utilities.

Imported by tests as ``import support`` (conftest puts this folder on sys.path).
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
from typing import Any


def thread_netns_inode() -> int:
    from tunkit.netns import current_netns_inode

    return current_netns_inode()


@functools.cache
def privilege_problem() -> str | None:
    """Why privileged tests cannot run here, or None if they can."""
    from tunkit.netns import namespace_problem

    problem = namespace_problem()
    if problem is None and shutil.which("ip") is None:
        problem = "the 'ip' command (iproute2) is missing; scripts/test.sh installs it"
    return problem


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
