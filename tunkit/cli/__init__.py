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
import importlib
import sys

from tunkit import __version__
from tunkit.cli._common import EXIT_INTERRUPTED, EXIT_OK, EXIT_SYSTEM, EXIT_USAGE, CliError

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
    "status",
]

EPILOG = """\
exit status: 0 success, 1 bad usage or input, 2 refused by the kernel/system,
130 interrupted.  Run 'tunkit COMMAND --help' for each command's options.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tunkit",
        description="Linux TUN/TAP devices, rtnetlink configuration and an overlay tunnel, in pure Python.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tunkit {__version__}")
    parser.add_argument(
        "-j", "--json", action="store_true", dest="global_json",
        help="print JSON instead of text, like 'ip -j' (also accepted after the command)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"tunkit.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help(sys.stderr)
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
