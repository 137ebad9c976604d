"""docs/wireguard.md names every drop reason (its example runs in tests/test_doc_snippets.py)."""

from __future__ import annotations

import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "wireguard.md"


def test_wireguard_doc_names_every_drop_reason():
    from tunkit.wireguard import DROP_REASONS

    text = DOC.read_text()
    assert all(f"| `{r}` |" in text for r in DROP_REASONS)
