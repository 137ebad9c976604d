"""The README stays true: its commands exist and its set-up matches .ci/run (its Python: test_doc_snippets)."""

from __future__ import annotations

import pathlib
import re

from tunkit.cli import build_parser

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_setup_commands_are_what_ci_runs():
    setup = re.search(r"## Set-up: two commands.*?```sh\n(.*?)```", README, re.S).group(1)
    cmds = [line.split("#")[0].strip() for line in setup.strip().splitlines()]
    assert cmds == ["python3 -m tunkit demo", "sh scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "export CI=true" in ci and "exec sh scripts/test.sh" in ci


def test_every_command_in_the_cli_table_exists():
    table = README.split("### The command line", 1)[1].split("Exit status", 1)[0]
    named = set()
    for first in re.findall(r"^\| `tunkit ([a-z\\|]+)", table, re.M):  # `tunkit link\|addr\|route ...`
        named |= set(first.split("\\|"))
    choices = set(build_parser()._subparsers._group_actions[0].choices)
    assert named and named <= choices, named - choices
    assert choices <= named, choices - named
