"""Helpers shared by the CLI subcommand modules; does I/O (stdout/stderr)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 1
EXIT_SYSTEM = 2
EXIT_INTERRUPTED = 130


class CliError(Exception):
    """A user-facing error: printed as ``tunkit: <message>``, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_int(text: str, name: str, lo: int, hi: int) -> int:
    """``text`` as an integer in ``lo..hi`` (ASCII decimal, or hex with ``0x``); else a
    usage error naming the value and the range, e.g. ``mtu '１２００' is not an integer in 0..4294967295``."""
    t = text.lower()
    base = 16 if t.startswith("0x") else 10
    digits = t[2:] if base == 16 else t
    if digits and all(c in "0123456789abcdef"[:base] for c in digits) and lo <= (value := int(digits, base)) <= hi:
        return value
    raise CliError(f"{name} {text!r} is not an integer in {lo}..{hi}")


def add_json_flags(parser: argparse.ArgumentParser) -> None:
    """Add ``-j/--json`` and ``-p/--pretty`` as iproute2 has them."""
    parser.add_argument("-j", "--json", action="store_true", help="print JSON (the shape 'ip -j' prints)")
    parser.add_argument("-p", "--pretty", action="store_true", help="indent JSON output")


def emit_json(obj: Any, pretty: bool = False, stream=None) -> None:
    stream = stream or sys.stdout
    if pretty:
        json.dump(obj, stream, indent=2)
    else:
        json.dump(obj, stream, separators=(",", ":"))
    stream.write("\n")


def subparser(sub, name: str, help: str, description: str | None = None, **kw) -> argparse.ArgumentParser:
    """Add a subcommand parser whose description and help read well in --help."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        **kw,
    )
