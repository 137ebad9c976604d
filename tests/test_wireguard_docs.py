"""docs/wireguard.md's example runs (no root needed) and prints what the text says."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "wireguard.md"


def test_wireguard_doc_example_prints_what_the_doc_says():
    text = DOC.read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    expected = re.search(r"It prints:\n\n```\n(.*?)```", text, re.S).group(1)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected


def test_wireguard_doc_names_every_drop_reason():
    from tunkit.wireguard import DROP_REASONS

    text = DOC.read_text()
    assert all(f"| `{r}` |" in text for r in DROP_REASONS)
