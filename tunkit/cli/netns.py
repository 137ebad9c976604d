"""``tunkit netns add|del|list|exec``: named network namespaces as ``ip netns``; does I/O.

The namespaces are iproute2's: bind mounts under /run/netns (see
:mod:`tunkit.netns`), so ``ip netns`` and ``ip -n NAME`` see tunkit's and
tunkit sees ip's.
"""

from __future__ import annotations

import os
import sys

from tunkit.cli._common import EXIT_OK, EXIT_SYSTEM, EXIT_USAGE, CliError, add_json_flags, emit_json, subparser

NETNS_EPILOG = """\
examples:
  tunkit netns add blue
  tunkit netns list -j                  # [{"name":"blue"}]
  tunkit netns exec blue ip -j link     # the command runs inside blue
  tunkit netns del blue

From Python: tunkit.netns.add("blue"), and Rtnl(netns="blue") configures it
without the calling thread entering it.
"""


def register(sub) -> None:
    p = subparser(sub, "netns", "add, delete, list named network namespaces, run commands in them (like 'ip netns')",
                  epilog=NETNS_EPILOG)
    nsub = p.add_subparsers(dest="netns_verb", metavar="VERB")
    p.set_defaults(func=lambda args: _usage(p))
    q = subparser(nsub, "add", "create a named namespace (/run/netns/NAME)", epilog=NETNS_EPILOG)
    q.add_argument("name", metavar="NAME")
    q.set_defaults(func=cmd_add)
    for verb in ("del", "delete"):
        q = subparser(nsub, verb, "delete a named namespace", epilog=NETNS_EPILOG)
        q.add_argument("name", metavar="NAME")
        q.set_defaults(func=cmd_del)
    for verb in ("list", "show"):
        q = subparser(nsub, verb, "list named namespaces", epilog=NETNS_EPILOG)
        add_json_flags(q)
        q.set_defaults(func=cmd_list)
    q = subparser(nsub, "exec", "run a command inside a named namespace", epilog=NETNS_EPILOG)
    q.add_argument("name", metavar="NAME")
    q.add_argument("command", metavar="COMMAND", nargs="...", help="the command and its arguments")
    q.set_defaults(func=cmd_exec)


def _usage(p) -> int:
    p.print_help(sys.stderr)
    return EXIT_USAGE


def _netns():
    from tunkit import netns

    return netns


def _check_name(name: str) -> None:
    try:
        _netns().netns_path(name)
    except ValueError as e:
        raise CliError(str(e)) from None


def _refused(verb: str, name: str, e: OSError) -> CliError:
    # our own errors (no such namespace, already exists) carry the whole text in strerror
    text = e.strerror if e.strerror and name in e.strerror else f"netns {verb} {name}: {e.strerror or e}"
    return CliError(text, EXIT_SYSTEM)


def cmd_add(args) -> int:
    _check_name(args.name)
    try:
        _netns().add(args.name)
    except OSError as e:
        raise _refused("add", args.name, e) from None
    return EXIT_OK


def cmd_del(args) -> int:
    _check_name(args.name)
    try:
        _netns().delete(args.name)
    except OSError as e:
        raise _refused("del", args.name, e) from None
    return EXIT_OK


def cmd_list(args) -> int:
    names = _netns().names()
    if args.json:
        emit_json([{"name": n} for n in names], args.pretty)
    else:
        for n in names:
            print(n)
    return EXIT_OK


def cmd_exec(args) -> int:
    _check_name(args.name)
    if not args.command:
        raise CliError("netns exec: no command given (tunkit netns exec NAME COMMAND [ARGS...])")
    netns = _netns()
    try:
        fd, _owned = netns.open_netns(args.name)
        netns.enter_for_exec(fd, args.name)
        os.close(fd)
    except OSError as e:
        raise _refused("exec", args.name, e) from None
    sys.stdout.flush()
    try:
        os.execvp(args.command[0], args.command)
    except OSError as e:  # as ip: exec of "cmd" failed
        raise CliError(f'netns exec {args.name}: exec of "{args.command[0]}" failed: {e.strerror or e}',
                       EXIT_SYSTEM) from None
    return EXIT_SYSTEM  # not reached: execvp returns only by raising
