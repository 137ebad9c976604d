"""Start-up of the CLI: a command builds only its own parser and imports only what it needs."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

from test_layering import ROOT

import tunkit.cli as cli


def _registered_words(module: str) -> set[str]:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    importlib.import_module(f"tunkit.cli.{module}").register(sub)
    return set(sub.choices)


def test_command_words_table_matches_what_each_module_registers():
    for module in cli.COMMAND_MODULES:
        words = {w for w, m in cli.COMMAND_WORDS.items() if m == module}
        assert words == _registered_words(module), module
    for word, module in cli.COMMAND_WORDS.items():  # a module not (yet) in the list is never used
        if module not in cli.COMMAND_MODULES:
            assert cli.command_word([word]) is None


@pytest.mark.parametrize("argv, word", [
    (["link", "show", "-j"], "link"), (["-j", "route", "show"], "route"), (["--json", "netns", "list"], "netns"),
    (["--help"], None), (["--version"], None), ([], None), (["nosuch"], None), (["-x", "link"], None),
])
def test_command_word(argv, word):
    assert cli.command_word(argv) == word


def test_one_command_parser_parses_as_the_full_one():
    for argv in (["link", "show", "-j"], ["link", "show", "-d", "tk0"], ["route", "add", "198.51.100.0/24", "dev", "x"],
                 ["addr", "show", "dev", "lo"], ["monitor", "link", "--count", "2"], ["netns", "exec", "n", "ip", "-j"]):
        full = vars(cli.build_parser().parse_args(argv))
        one = vars(cli.build_parser([cli.COMMAND_WORDS[argv[0]]], command=argv[0]).parse_args(argv))
        assert one == full, argv


ARGVS = [
    ["link", "show", "-j"], ["-j", "link", "show", "tk0"], ["link", "show", "-d", "tk0"], ["link", "add", "x", "type", "dummy"],
    ["link", "set", "tk0", "up"], ["link", "del", "tk0"], ["link"], ["addr", "show", "dev", "lo"], ["addr"],
    ["route", "add", "198.51.100.0/24", "dev", "x"], ["route", "show", "table", "all"], ["route", "get", "192.0.2.1"],
    ["monitor", "link", "--count", "2"], ["monitor"], ["netns", "list"], ["netns", "exec", "n", "ip", "-j"],
    ["rule", "show"], ["rule", "add", "from", "192.0.2.0/24", "table", "1000"], ["neigh", "show", "dev", "tk0"],
    ["nexthop", "show"], ["tuntap", "show"], ["status", "x"],
]
BAD_ARGVS = [["link", "foo"], ["link", "show", "--nosuch"], ["link", "-x"], ["route", "nosuch"], ["netns", "nosuch", "x"],
             ["link", "show", "a", "b"], ["rule", "nosuch"]]


def _run(parser, argv):
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            ns = vars(parser.parse_args(argv))
            ns = {k: (v.__qualname__ if callable(v) else v) for k, v in ns.items()}
            return ("ok", ns)
        except SystemExit as e:
            return ("exit", e.code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize("argv", ARGVS + BAD_ARGVS + [a + ["--help"] for a in ARGVS[:6]] + [["link", "--help"]])
def test_the_parser_main_builds_parses_as_the_full_one(argv):
    """main builds one command's parser, or one subcommand's: same namespace, same errors, same help."""
    assert _run(cli.command_parser(argv), argv) == _run(cli.build_parser(), argv)


def test_link_show_builds_only_its_own_subcommand_parser():
    parser = cli.command_parser(["link", "show", "-j"])
    link = parser._subparsers._group_actions[0].choices
    assert set(link) == {"link"} and set(link["link"]._subparsers._group_actions[0].choices) == {"show"}
    full = cli.command_parser(["link", "foo"])._subparsers._group_actions[0].choices["link"]
    assert set(full._subparsers._group_actions[0].choices) == {"show", "set", "add", "del"}


def test_link_show_path_does_not_import_what_it_does_not_need():
    """`tunkit link show -j` (parser, client, dump, JSON) loads no other command, no events, no device layer,
    no rule/neighbour/nexthop/link-kind codec, and neither dataclasses (with inspect) nor platform."""
    code = (
        "import io, sys, contextlib\n"
        "import tunkit.cli as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        cli.main(['link', 'show', '-j'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "heavy = ('tunkit.tun.device', 'tunkit.netlink.events', 'tunkit.netlink.aio', 'tunkit.netns', 'tunkit.overlay.tunnel',\n"
        "         'tunkit.overlay.node', 'tunkit.app.config', 'tunkit.packet.offload', 'tunkit.routing.trie', 'tunkit.cli.up', 'tunkit.cli.demo',\n"
        "         'tunkit.cli.tuntap', 'tunkit.cli.keys', 'tunkit.cli.status', 'tunkit.cli.netns', 'logging',\n"
        "         'signal', 'shutil', 'socket', 'selectors', 'ctypes', 'subprocess', 'asyncio', 'threading',\n"
        "         'dataclasses', 'inspect', 'platform', 'tunkit.netlink.rule', 'tunkit.netlink.neigh',\n"
        "         'tunkit.netlink.nexthop', 'tunkit.netlink.linkkinds', 'tunkit.cli.rule', 'tunkit.cli.neigh')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"tunkit link show -j imported: {out.stdout.strip()}"
