"""docs/device.md's example runs and prints what the text says."""

from __future__ import annotations

import pathlib
import re

import support_device as sd

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "device.md"


def test_device_doc_example_runs(netns):
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    proc = sd.run_python(code)  # a child of this thread: starts in the test namespace, makes its own
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"tk0 tun \S+ 10", lines[0])  # the offload mask depends on the kernel
    assert lines[1:] == ["33 b'hello'", "DeviceClosedError"]
