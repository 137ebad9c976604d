"""Every Python snippet in docs/uapi.md runs (no root needed) and prints what the text after it says."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "uapi.md"
SNIPPETS = re.findall(r"```python\n(.*?)```\n\nIt prints:\n\n```\n(.*?)```", DOC.read_text(), re.S)


def test_every_python_block_is_checked():
    assert len(SNIPPETS) == DOC.read_text().count("```python") == 2


@pytest.mark.parametrize("code,expected", SNIPPETS, ids=[str(i) for i in range(len(SNIPPETS))])
def test_snippet_prints_what_the_doc_says(code, expected):
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == expected


def test_doc_names_every_limit_with_its_value():
    from tunkit.overlay import uapi_server as srv
    from tunkit.wireguard import settings, uapi

    text = DOC.read_text()
    for mod, name, shown in [(settings, "MAX_PEERS", "8,192"), (settings, "MAX_ALLOWED_IPS", "65,536"),
                             (uapi, "MAX_LINE_BYTES", "4,096"), (uapi, "MAX_REQUEST_BYTES", "8 MiB"),
                             (srv, "MAX_CLIENTS", "256"), (srv, "MAX_BUFFERED_BYTES", "32 MiB")]:
        value = getattr(mod, name)
        assert f"`{mod.__name__.split('.')[-1]}.{name}` | {shown}" in text
        assert shown.replace(",", "") == str(value) or shown == f"{value >> 20} MiB"
