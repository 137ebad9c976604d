"""The CLI's shared mechanisms: the usage-error parser (exit 1) and the strict integer parser."""

from __future__ import annotations

import argparse

import pytest

from tunkit.cli._common import UsageParser, int_arg, parse_int

# (text, lo, hi, value or the fragment of the error)
INT_CASES = [
    ("0", 0, 10, 0),
    ("10", 0, 10, 10),
    ("-3", -5, 5, -3),
    ("007", 0, 10, 7),
    (7, 0, 10, 7),
    ("11", 0, 10, "mtu 11 is out of range 0..10"),
    ("-1", 0, 10, "mtu -1 is out of range 0..10"),
    ("\uff11\uff12", 0, 100, "not an integer (ASCII digits only)"),  # full-width 12
    ("\u0661", 0, 100, "not an integer"),  # Arabic-Indic 1
    ("+5", 0, 10, "not an integer"),
    (" 5", 0, 10, "not an integer"),
    ("1_0", 0, 100, "not an integer"),
    ("", 0, 10, "not an integer"),
    ("-", 0, 10, "not an integer"),
    ("0x10", 0, 100, "not an integer"),
    (True, 0, 10, "not an integer"),
    ("99999999999999999999", 0, 2**32 - 1, "out of range 0..4294967295"),
]


@pytest.mark.parametrize("text,lo,hi,want", INT_CASES, ids=[repr(c[0]) for c in INT_CASES])
def test_parse_int_is_strict_and_names_value_and_range(text, lo, hi, want):
    if isinstance(want, int):
        assert parse_int(text, "mtu", lo, hi) == want
    else:
        with pytest.raises(ValueError) as ei:
            parse_int(text, "mtu", lo, hi)
        assert want in str(ei.value) and "mtu" in str(ei.value)


def test_int_arg_is_a_usage_error_exit_1(capsys):
    p = UsageParser(prog="tunkit x")
    p.add_argument("--n", type=int_arg("--n", 1, 3))
    assert p.parse_args(["--n", "2"]).n == 2
    with pytest.raises(SystemExit) as ei:
        p.parse_args(["--n", "4"])
    assert ei.value.code == 1
    assert "tunkit x: error: argument --n: --n 4 is out of range 1..3" in capsys.readouterr().err


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
