"""docs/asyncio.md and docs/netns.md: every python snippet runs (as root, in a fresh namespace) and prints what the text says."""

from __future__ import annotations

import pathlib
import re

import pytest

import support_device as sd

DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def _snippets(doc: str) -> list[tuple[str, str]]:
    """(code, expected output) pairs: a ```python block and the plain ``` block after it."""
    text = (DOCS / doc).read_text()
    return re.findall(r"```python\n(.*?)```.*?It prints:\n\n```\n(.*?)```", text, re.S)


@pytest.mark.parametrize("doc", ["asyncio.md", "netns.md"])
def test_doc_snippets_run_and_print_what_the_doc_says(netns, doc):
    snippets = _snippets(doc)
    assert snippets and len(snippets) == (DOCS / doc).read_text().count("```python")
    for code, expected in snippets:
        proc = sd.run_python(code, timeout=60)  # a child of this thread: starts in the test namespace
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.splitlines() == expected.splitlines(), proc.stdout
