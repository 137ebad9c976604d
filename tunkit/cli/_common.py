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


class CliError(Exception):
    """A user-facing error: printed as ``tunkit: <message>``, exits with ``exit_code``."""

    def __init__(self, message: str, exit_code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def parse_int(text: str, name: str, lo: int, hi: int) -> int:
    """``text`` as an integer in ``lo..hi`` (ASCII decimal, or hex with ``0x``); else a
    usage error naming the value and the range, e.g. ``mtu '１２００' is not an integer in 0..4294967295``.

    The one number parser of the command line: ``int()`` would also take
    full-width and other Unicode digits, ``+``, ``_`` and spaces."""
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


_COLUMNS: list[int] = []


def _terminal_columns() -> int:
    """shutil.get_terminal_size().columns without importing shutil (and bz2, lzma...): argparse
    asks for every argument it adds, so the answer is kept for the process."""
    if not _COLUMNS:
        import os

        try:
            columns = int(os.environ.get("COLUMNS", "0"))
        except ValueError:
            columns = 0
        if columns <= 0:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
            except (AttributeError, ValueError, OSError):  # no stdout, or not a terminal
                columns = 0
        _COLUMNS.append(columns if columns > 0 else 80)
    return _COLUMNS[0]


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's RawDescriptionHelpFormatter, sized as it sizes itself, minus the shutil import."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None) -> None:
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


def subparser(sub, name: str, help: str, description: str | None = None, **kw) -> argparse.ArgumentParser:
    """Add a subcommand parser whose description and help read well in --help."""
    return sub.add_parser(
        name,
        help=help,
        description=description or help,
        formatter_class=HelpFormatter,
        **kw,
    )
