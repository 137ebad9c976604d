"""docs/offload.md's examples run and print what the text says."""

from __future__ import annotations

import pathlib
import re

import support_device as sd

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "offload.md"


def _examples() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_pure_example_runs():
    proc = sd.run_python(_examples()[0])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["TCPV4 1000 40 5", "True True"]


def test_device_example_runs(netns):
    proc = sd.run_python(_examples()[1])  # a child of this thread: starts in the test namespace, makes its own
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "[1028, 1028, 1028, 528]"
    assert lines[1] in ("True 1", "False 0")  # with USO the kernel sent one super-packet; without, four packets
