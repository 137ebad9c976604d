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


class UsageParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` with tunkit's exit status: a usage error exits 1, not 2.

    The one mechanism for every command: :func:`tunkit.cli.build_parser` makes
    the top parser one of these, and argparse gives every subparser (and their
    subparsers) the class of its parent.  The message names the command:
    ``tunkit tuntap add: error: the following arguments are required: NAME``.
    """

    def error(self, message: str):  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def parse_int(text: str | int, name: str, lo: int, hi: int) -> int:
    """A strict integer in ``lo..hi``: ASCII digits with an optional ``-``, nothing else.

    ``int()`` also takes full-width and other Unicode digits, ``+``, ``_`` and
    surrounding spaces; these are refused here.  Raises ``ValueError`` naming
    ``name``, the value and the range, e.g. ``--user 4294967295 is out of range 0..2147483647``.
    """
    if isinstance(text, bool):
        raise ValueError(f"{name} {text!r} is not an integer")
    if isinstance(text, int):
        value = text
    else:
        digits = text[1:] if text.startswith("-") else text
        if not digits or not digits.isascii() or not digits.isdigit():
            raise ValueError(f"{name} {text!r} is not an integer (ASCII digits only)")
        value = int(text)
    if not lo <= value <= hi:
        raise ValueError(f"{name} {text} is out of range {lo}..{hi}")
    return value


def int_arg(name: str, lo: int, hi: int):
    """An argparse ``type=`` for :func:`parse_int` (a bad value is a usage error, exit 1)."""

    def convert(text: str) -> int:
        try:
            return parse_int(text, name, lo, hi)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    convert.__name__ = name
    return convert


class CliError(Exception):
    """A user-facing error: printed as ``tunkit: <message>``, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
