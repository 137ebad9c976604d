"""The ``tunkit`` command line (``python -m tunkit``); orchestration, does I/O.

Each subcommand group lives in its own module under ``tunkit/cli/`` and
exposes ``register(subparsers)``, which adds its parser and sets
``func=handler``; a handler takes the parsed arguments and returns an exit
code.  Exit codes (documented in ``--help`` and the README):

* 0  success;
* 1  bad usage or invalid input (a message on stderr names what was wrong);
* 2  the kernel or the system refused (netlink/ioctl errors, missing privilege);
* 130 interrupted (SIGINT).
"""

from __future__ import annotations

import argparse
import sys

from tunkit import __version__
from tunkit.cli._common import EXIT_INTERRUPTED, EXIT_OK, EXIT_SYSTEM, EXIT_USAGE, CliError, HelpFormatter, UsageParser

# Subcommand groups, in the order --help lists them: (module under tunkit.cli).
COMMAND_MODULES: list[str] = [
    "demo",
    "up",
    "tuntap",
    "keys",
    "ip",  # link, addr, route, monitor (tunkit/cli/ip.py)
    "rule",
    "neigh",
    "nexthop",
    "netns",
    "status",
]

# The command words each module registers, so that a command builds (and imports) only its own
# module's parser: `tunkit link show -j` never loads up/tuntap/demo and what they import (logging,
# signal, shutil...).  A word not listed here, --help, --version and no command build every module.
# tests/test_cli_startup.py checks this table against what the modules register.
COMMAND_WORDS: dict[str, str] = {
    "demo": "demo",
    "up": "up",
    "reload": "up",
    "tuntap": "tuntap",
    "check": "keys",
    "genkey": "keys",
    "genpsk": "keys",
    "pubkey": "keys",
    "link": "ip",
    "addr": "ip",
    "route": "ip",
    "monitor": "ip",
    "netns": "netns",
    "status": "status",
    # commands of modules added on other branches (used once their module is in COMMAND_MODULES)
    "rule": "rule",
    "neigh": "neigh",
    "nexthop": "nexthop",
}
_GLOBAL_FLAGS = ("-j", "--json")  # global options that may come before the command word

EPILOG = """\
exit status: 0 success, 1 bad usage or input, 2 refused by the kernel/system,
130 interrupted.  Run 'tunkit COMMAND --help' for each command's options.
"""


class _Sink:
    """Stands in for the parser of a command that is not being run: every call is a no-op."""

    def __getattr__(self, name: str):
        return self

    def __call__(self, *args, **kw):
        return self


class _OnlyCommand:
    """A subparsers action that builds the parser of one command word; the others get a sink,
    so a module registering several commands (ip: link, addr, route, monitor) builds one.

    With ``subword`` (the word after the command, e.g. ``show`` of ``link show``), the subparsers
    that command's parser adds are filtered the same way, one level down.  ``state`` records
    whether such subparsers were made and whether ``subword`` was among them: if it was not
    (``link foo``, ``link`` alone), :func:`main` builds the command's whole parser, so errors and
    help list every subcommand as before."""

    def __init__(self, sub, word: str, subword: str | None = None, state: dict | None = None) -> None:
        self._sub, self._word, self._subword, self._state = sub, word, subword, state

    def add_parser(self, name: str, **kw):
        if name != self._word:
            return _Sink()
        if self._state is not None:
            self._state["matched"] = True
        p = self._sub.add_parser(name, **kw)
        if self._subword is not None:
            subword, state = self._subword, self._state

            def add_subparsers(**skw):
                inner = state.setdefault("sub", {})  # its "matched": subword was one of the subcommands
                return _OnlyCommand(argparse.ArgumentParser.add_subparsers(p, **skw), subword, None, inner)

            p.add_subparsers = add_subparsers  # only this parser's: its subcommands are built one at a time
        return p


def build_parser(modules: list[str] | None = None, *, command: str | None = None,
                 subcommand: str | None = None, state: dict | None = None) -> argparse.ArgumentParser:
    """The CLI parser with the commands of ``modules`` (default: every module, in --help order);
    with ``command``, only that command's parser is built, and with ``subcommand`` only that one of
    its subcommands (what ``main`` does to start fast; ``state`` tells it whether that held)."""
    parser = UsageParser(  # usage errors exit 1 here and in every subcommand (argparse's default is 2)
        prog="tunkit",
        description="Linux TUN/TAP devices, rtnetlink configuration and an overlay tunnel, in pure Python.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tunkit {__version__}")
    parser.add_argument(
        "-j", "--json", action="store_true", dest="global_json",
        help="print JSON instead of text, like 'ip -j' (also accepted after the command)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    target = sub if command is None else _OnlyCommand(sub, command, subcommand, {} if state is None else state)
    for name in COMMAND_MODULES if modules is None else modules:
        __import__(f"tunkit.cli.{name}")  # (importlib.import_module would import the importlib package)
        sys.modules[f"tunkit.cli.{name}"].register(target)
    return parser


def command_word(argv: list[str]) -> str | None:
    """The command word of ``argv`` if :data:`COMMAND_WORDS` knows it, else None (build every parser)."""
    for arg in argv:
        if arg in _GLOBAL_FLAGS:
            continue
        return arg if COMMAND_WORDS.get(arg) in COMMAND_MODULES else None
    return None


def subcommand_word(argv: list[str], word: str) -> str | None:
    """The word after the command word ``word`` unless it is an option (then None: build them all)."""
    i = next(i for i, arg in enumerate(argv) if arg not in _GLOBAL_FLAGS)  # the command word's place
    nxt = argv[i + 1] if i + 1 < len(argv) else None
    return None if nxt is None or nxt.startswith("-") else nxt


def command_parser(argv: list[str]) -> argparse.ArgumentParser:
    """The parser ``main`` uses for ``argv``: everything, one command's, or one subcommand's."""
    word = command_word(argv)
    if word is None:
        return build_parser()
    modules = [COMMAND_WORDS[word]]
    sub = subcommand_word(argv, word)
    if sub is None:
        return build_parser(modules, command=word)
    state: dict = {}
    parser = build_parser(modules, command=word, subcommand=sub, state=state)
    if "sub" in state and not state["sub"].get("matched"):
        return build_parser(modules, command=word)  # not one of its subcommands: let argparse say so, listing all
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version (0) or a usage error (1, see UsageParser)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    if getattr(args, "func", None) is None:
        parser.print_usage(sys.stderr)
        print("tunkit: error: a command is required (tunkit --help lists them)", file=sys.stderr)
        return EXIT_USAGE
    if getattr(args, "global_json", False) and hasattr(args, "json"):
        args.json = True
    try:
        return int(args.func(args) or EXIT_OK)
    except CliError as e:
        print(f"tunkit: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("tunkit: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as e:  # DecodeError, ConfigError, bad addresses: the input was wrong
        print(f"tunkit: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:  # NetlinkError, DeviceError, PermissionError: the system refused
        print(f"tunkit: {e}", file=sys.stderr)
        return EXIT_SYSTEM
