"""The CLI's shared mechanisms: the usage-error parser (exit 1) and the one strict integer parser."""

from __future__ import annotations

import argparse

import pytest

from tunkit.cli._common import CliError, UsageParser, parse_int

# (text, lo, hi, value, or None for "not an integer in lo..hi")
INT_CASES = [
    ("0", 0, 10, 0),
    ("10", 0, 10, 10),
    ("007", 0, 10, 7),
    ("0x10", 0, 100, 16),
    ("11", 0, 10, None),
    ("-1", 0, 10, None),
    ("\uff11\uff12", 0, 100, None),  # full-width 12
    ("\u0661", 0, 100, None),  # Arabic-Indic 1
    ("+5", 0, 10, None),
    (" 5", 0, 10, None),
    ("1_0", 0, 100, None),
    ("", 0, 10, None),
    ("0x", 0, 10, None),
    ("99999999999999999999", 0, 2**32 - 1, None),
]


@pytest.mark.parametrize("text,lo,hi,want", INT_CASES, ids=[repr(c[0]) for c in INT_CASES])
def test_parse_int_is_strict_and_names_value_and_range(text, lo, hi, want):
    if want is not None:
        assert parse_int(text, "mtu", lo, hi) == want
    else:
        with pytest.raises(CliError) as ei:
            parse_int(text, "mtu", lo, hi)
        assert str(ei.value) == f"mtu {text!r} is not an integer in {lo}..{hi}"
        assert ei.value.exit_code == 1


def test_usage_parser_exits_1_naming_the_command(capsys):
    p = UsageParser(prog="tunkit x")
    p.add_argument("--n", choices=("a", "b"))
    with pytest.raises(SystemExit) as ei:
        p.parse_args(["--n", "c"])
    assert ei.value.code == 1
    assert "tunkit x: error: argument --n: invalid choice: 'c'" in capsys.readouterr().err


def test_subparsers_inherit_the_exit_status():
    p = UsageParser(prog="t")
    sub = p.add_subparsers(dest="c")
    q = sub.add_parser("q")
    assert isinstance(q, UsageParser)
    inner = q.add_subparsers(dest="d").add_parser("r")
    assert isinstance(inner, UsageParser) and isinstance(inner, argparse.ArgumentParser)
    with pytest.raises(SystemExit) as ei:
        p.parse_args(["q", "r", "--nope"])
    assert ei.value.code == 1
