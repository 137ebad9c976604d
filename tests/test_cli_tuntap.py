"""``tunkit tuntap add/del/show`` through ``tunkit.cli.main`` inside a namespace, ``ip -d -j link`` as the oracle."""

from __future__ import annotations

import grp
import json
import pwd

import pytest

import support
import support_device as sd
from tunkit.cli import main

# (add arguments, expected ip -d -j info_data subset)
ADD_CASES = [
    (["tk0"], {"type": "tun", "pi": False, "vnet_hdr": False, "multi_queue": False, "persist": True}),
    (["tk0", "--mode", "tap"], {"type": "tap", "pi": False, "multi_queue": False}),
    (["tk0", "--multi-queue", "--vnet-hdr"], {"type": "tun", "vnet_hdr": True, "multi_queue": True}),
    (["tk0", "--pi"], {"pi": True}),
    (["tk0", "--user", "65534", "--group", "100"],
     {"user": pwd.getpwuid(65534).pw_name, "group": grp.getgrgid(100).gr_name}),
    (["tk0", "--user", pwd.getpwuid(65534).pw_name], {"user": pwd.getpwuid(65534).pw_name}),
]


@pytest.mark.parametrize("argv,want", ADD_CASES, ids=[" ".join(a) for a, _ in ADD_CASES])
def test_add_show_del_agree_with_ip(netns, capsys, argv, want):
    assert main(["tuntap", "add", *argv]) == 0
    info = sd.tun_info("tk0")
    assert {k: info.get(k) for k in want} == want
    capsys.readouterr()
    assert main(["tuntap", "show", "-j"]) == 0
    (shown,) = json.loads(capsys.readouterr().out)
    assert shown["ifname"] == "tk0" and shown["ifindex"] == sd.link("tk0")["ifindex"]
    assert shown["linkinfo"]["info_kind"] == "tun"
    ours = shown["linkinfo"]["info_data"]
    assert ours == info  # every key, numqueues/numdisabled included, as ip -d -j shows it
    assert main(["tuntap", "del", "tk0"]) == 0
    assert "tk0" not in sd.link_names()


def test_add_template_prints_the_name(netns, capsys):
    assert main(["tuntap", "add", "tk%d"]) == 0
    assert main(["tuntap", "add", "tk%d", "--mode", "tap"]) == 0
    assert capsys.readouterr().out.split() == ["tk0", "tk1"]
    assert sd.tun_info("tk1")["type"] == "tap"


def test_show_text_and_filter(netns, capsys):
    support.ip("tuntap", "add", "dev", "tka", "mode", "tap", "multi_queue", "user", "65534", "group", "100")
    support.ip("tuntap", "add", "dev", "tkb", "mode", "tun", "pi", "vnet_hdr")
    assert main(["tuntap", "show"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "tka: tap multi_queue persist user 65534 group 100 queues 0 disabled 0",  # nobody has it open
        "tkb: tun pi vnet_hdr persist",
    ]
    assert main(["tuntap", "show", "tkb", "-j", "-p"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["ifname"] == "tkb"
    assert main(["-j", "tuntap", "show"]) == 0  # the global -j works too
    assert [e["ifname"] for e in json.loads(capsys.readouterr().out)] == ["tka", "tkb"]


def test_show_counts_live_queues_as_ip_does(netns, capsys):
    from tunkit.tun.device import open_tun

    with open_tun("tkq", queues=3) as dev:
        dev.queues[1].detach()
        assert main(["tuntap", "show", "tkq"]) == 0
        assert capsys.readouterr().out.split() == ["tkq:", "tun", "multi_queue", "queues", "2", "disabled", "1"]
        assert main(["tuntap", "show", "tkq", "-j"]) == 0
        (entry,) = json.loads(capsys.readouterr().out)
        data = entry["linkinfo"]["info_data"]
        assert (data["numqueues"], data["numdisabled"]) == (2, 1)
        assert data == sd.tun_info("tkq")


def test_show_empty_namespace(netns, capsys):
    assert main(["tuntap", "show", "-j"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["tuntap", "show"]) == 0
    assert capsys.readouterr().out == ""


def test_del_detects_mode_and_accepts_it(netns):
    support.ip("tuntap", "add", "dev", "tka", "mode", "tap")
    support.ip("tuntap", "add", "dev", "tkb", "mode", "tun", "multi_queue")
    assert main(["tuntap", "del", "tka", "--mode", "tap"]) == 0
    assert main(["tuntap", "del", "tkb"]) == 0
    assert not {"tka", "tkb"} & sd.link_names()


# (argv, exit code, words the error message must contain)
ERROR_CASES = [
    (["tuntap", "add", "x" * 16], 1, ["too long", "16 bytes"]),
    (["tuntap", "add", "a/b"], 1, ["'/'"]),
    (["tuntap", "add", "tk0", "--user", "no-such-user-tunkit"], 1, ["--user 'no-such-user-tunkit'", "no such user"]),
    (["tuntap", "add", "tk0", "--user", "4294967295"], 1, ["--user '4294967295' is not an integer in 0..2147483647"]),
    (["tuntap", "add", "tk0", "--group", "-5"], 1, ["--group '-5' is not an integer in 0..2147483647"]),
    (["tuntap", "add", "tk0", "--user", "\uff11\uff10\uff10\uff10"], 1,
     ["--user '\uff11\uff10\uff10\uff10' is not an integer in 0..2147483647"]),
    (["tuntap", "del", "tk9"], 2, ["tk9", "no such device"]),
    (["tuntap", "del", "lo"], 2, ["lo", "not a TUN/TAP device"]),
    (["tuntap", "show", "tk9"], 1, ["tk9", "no TUN/TAP device"]),
    (["tuntap"], 1, ["command is required"]),
]


@pytest.mark.parametrize("argv,code,words", ERROR_CASES, ids=[" ".join(a) for a, _, _ in ERROR_CASES])
def test_errors_exit_codes_and_messages(netns, capsys, argv, code, words):
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("tunkit: ")
    for w in words:
        assert w in err
    assert "tk9" not in sd.link_names() and "tk0" not in sd.link_names()


def test_add_existing_is_a_system_error(netns, capsys):
    assert main(["tuntap", "add", "tk0"]) == 0
    assert main(["tuntap", "add", "tk0", "--mode", "tap"]) == 2
    err = capsys.readouterr().err
    assert "tk0" in err and "name is taken" in err
    assert sd.tun_info("tk0")["type"] == "tun"  # untouched


# Usage errors: exit 1 with the command and the problem named (argparse alone exits 2)
USAGE_CASES = [
    (["bogus"], "tunkit: error: argument COMMAND: invalid choice: 'bogus'"),
    ([], "tunkit: error: a command is required"),
    (["tuntap", "add"], "tunkit tuntap add: error: the following arguments are required: NAME"),
    (["tuntap", "add", "tk0", "--mode", "tan"], "tunkit tuntap add: error: argument --mode: invalid choice: 'tan'"),
    (["tuntap", "frob"], "tunkit tuntap: error: argument COMMAND: invalid choice: 'frob'"),
    (["up"], "tunkit up: error: the following arguments are required: CONFIG"),
    (["check", "a.toml", "--bogus"], "tunkit: error: unrecognized arguments: --bogus"),
    (["status", "--socket"], "tunkit status: error: argument --socket: expected one argument"),
]


@pytest.mark.parametrize("argv,message", USAGE_CASES, ids=[" ".join(a) or "(nothing)" for a, _ in USAGE_CASES])
def test_usage_errors_exit_1_and_say_what_is_wrong(capsys, argv, message):
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert message in err and "usage: tunkit" in err


def test_usage_errors_exit_1_from_the_shell_too():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tunkit", "tuntap", "add"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "required: NAME" in out.stderr


@pytest.mark.parametrize("cmd,example", [
    ([], "tunkit tuntap COMMAND --help"),
    (["add"], "tunkit tuntap add tk1 --mode tap --user 1000"),
    (["del"], "tunkit tuntap del tk0"),
    (["show"], "tunkit tuntap show tk0 -j -p"),
])
def test_help_teaches_with_examples(capsys, cmd, example):
    assert main(["tuntap", *cmd, "--help"]) == 0
    assert example in capsys.readouterr().out


def test_add_create_node_flag_reaches_the_device_layer(monkeypatch):
    from tunkit.tun import device

    seen = {}

    class FakeDevice:
        name = "tk0"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def fake_open_tun(name, **kw):
        seen.update(kw, name=name)
        return FakeDevice()

    monkeypatch.setattr(device, "open_tun", fake_open_tun)
    assert main(["tuntap", "add", "tk0", "--create-node"]) == 0
    assert seen["create_node"] is True and seen["persist"] is True
    assert main(["tuntap", "add", "tk0"]) == 0
    assert seen["create_node"] is False
