"""Issue 14, netlink client and ip CLI: stale indexes, shared clients, many fds, bad input; as root in namespaces.

Kernel state is read back with ``ip -j`` (the oracle); every loop is bounded in count and time.
"""

from __future__ import annotations

import io
import os
import resource
import threading
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest

import support
from tunkit.cli import main as cli_main
from tunkit.netlink.client import Rtnl
from tunkit.netlink.events import LinkEvent
from tunkit.netlink.socket import NetlinkSocket


def link_of(name: str) -> dict:
    [j] = support.ip_json("link", "show", "dev", name)
    return j


# --- item 7: a name means the device that carries it now ----------------------------------------------------
def test_a_recreated_name_and_a_reused_index_never_reach_the_wrong_device(netns):
    with Rtnl() as rt:
        rt.add_veth("a0", "a1")
        old = rt.index("a0")  # the lookup an older Rtnl remembered forever
        rt.set_link("a0", mtu=1400)
        support.ip("link", "del", "a0")
        # the old index goes to another device, and the name to a new one
        support.ip("link", "add", "x0", "index", str(old), "type", "veth", "peer", "name", "x1")
        support.ip("link", "add", "a0", "type", "veth", "peer", "name", "a1")
        support.ip("link", "set", "a0", "up")
        assert link_of("x0")["ifindex"] == old and link_of("a0")["ifindex"] != old
        x0_mtu = link_of("x0")["mtu"]

        rt.set_link("a0", mtu=1280)
        assert link_of("a0")["mtu"] == 1280 and link_of("x0")["mtu"] == x0_mtu
        rt.add_address("a0", "192.0.2.1/24")
        rt.add_route("198.51.100.0/24", dev="a0")
        [a0] = support.ip_json("addr", "show", "dev", "a0")
        assert [a["local"] for a in a0["addr_info"] if a["family"] == "inet"] == ["192.0.2.1"]
        assert support.ip_json("addr", "show", "dev", "x0")[0]["addr_info"] == []
        assert [r["dev"] for r in support.ip_json("route", "show", "198.51.100.0/24")] == ["a0"]
        assert [a.index for a in rt.addresses("a0", family=2)] == [link_of("a0")["ifindex"]]
        rt.delete_link("a0")
        assert link_of("x0")["ifindex"] == old  # deleting by name took a0, not the old index's owner


# --- item 8: one Rtnl shared by threads -------------------------------------------------------------------
THREADS, OPS = 4, 100  # 400 mixed operations, as the report's pyroute2 comparison ran


def test_one_rtnl_shared_by_threads_finishes_with_correct_results(netns):
    with Rtnl(NetlinkSocket(timeout=20)) as rt:  # a hang becomes an error, not a stuck suite
        for t in range(THREADS):
            rt.add_veth(f"t{t}a", f"t{t}b")
            rt.set_link(f"t{t}a", up=True, addr_gen_mode="none")
        results: dict[int, object] = {}

        def work(t: int) -> None:
            name, done = f"t{t}a", 0
            try:
                idx = rt.index(name)
                for i in range(OPS // 5):
                    mtu = 1300 + t * 10 + i % 7
                    rt.set_link(name, mtu=mtu)
                    assert rt.link(name).mtu == mtu
                    rt.add_address(name, f"198.18.{t}.{i + 1}/32")
                    assert any(a.index == idx and str(a.local) == f"198.18.{t}.{i + 1}" for a in rt.addresses(name))
                    rt.add_route(f"198.19.{t}.{i}/32", dev=name, metric=t)
                    assert rt.get_route(f"198.19.{t}.{i}").oif == idx
                    assert {f"t{k}a" for k in range(THREADS)} <= {l.ifname for l in rt.links()}
                    done += 5
                results[t] = done
            except BaseException as e:  # reported by the test thread
                results[t] = e

        threads = [threading.Thread(target=work, args=(t,), daemon=True) for t in range(THREADS)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 120
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        assert not any(th.is_alive() for th in threads), f"threads still running after 120 s: {results}"
        assert results == {t: OPS for t in range(THREADS)}
        for t in range(THREADS):  # the kernel's view, from ip
            assert link_of(f"t{t}a")["mtu"] == 1300 + t * 10 + (OPS // 5 - 1) % 7
            [j] = support.ip_json("-4", "addr", "show", "dev", f"t{t}a")
            assert len(j["addr_info"]) == OPS // 5
            routes = support.ip_json("route", "show", "dev", f"t{t}a")
            assert sorted(r["dst"] for r in routes) == sorted(f"198.19.{t}.{i}" for i in range(OPS // 5))


# --- item 9: the monitor waits with poll, whatever its fd number -------------------------------------------
def test_monitor_works_with_a_descriptor_above_1024(netns):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1200
    if soft != resource.RLIM_INFINITY and soft < want:
        new_hard = hard if hard == resource.RLIM_INFINITY or hard >= want else want  # root may raise it
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, new_hard))
        except (ValueError, OSError) as e:
            pytest.fail(f"cannot raise RLIMIT_NOFILE to {want} (soft {soft}, hard {hard}): {e}")
    fds: list[int] = []
    try:
        while not fds or fds[-1] < 1100:  # fills every lower gap first, so the next fd is above 1100
            fds.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        with Rtnl() as rt, rt.monitor(["link"]) as mon:
            assert mon.fileno() > 1100
            rt.add_veth("p0", "p1")
            deadline = time.monotonic() + 10
            events = []
            while time.monotonic() < deadline and not any(isinstance(e, LinkEvent) and e.ifname == "p0" for e in events):
                events += mon.events(timeout=1)
            assert any(isinstance(e, LinkEvent) and e.ifname == "p0" and e.action == "added" for e in events)
    finally:
        for fd in fds:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


# --- items 12, 13: the ip CLI refuses bad input with exit 1 and names it -----------------------------------
# (tunkit argv, what stderr must say); ip refuses the same words too (checked), and nothing changes.
CLI_REFUSALS = [
    ("route add 198.51.100.0/24 dev nope0", 'route add: device "nope0" does not exist'),
    ("route add 198.51.100.0/24 nexthop via 192.0.2.2 dev nope0", 'route add: device "nope0" does not exist'),
    ("route del 198.51.100.0/24 dev nope0", 'route del: device "nope0" does not exist'),
    ("addr add 192.0.2.9/24 dev nope0", 'addr add: device "nope0" does not exist'),
    ("addr del 192.0.2.9/24 dev nope0", 'addr del: device "nope0" does not exist'),
    ("link set nope0 up", 'link set: device "nope0" does not exist'),
    ("link set nope0 mtu 1300", 'link set: device "nope0" does not exist'),
    ("link del nope0", 'link del: device "nope0" does not exist'),
    ("route add 198.51.100.0/24 nexthop via 192.0.2.2 dev v0 weight 0", "weight '0' is not an integer in 1..256"),
    ("route add 198.51.100.0/24 nexthop via 192.0.2.2 dev v0 weight 300", "weight '300' is not an integer in 1..256"),
    ("route add 198.51.100.0/24 dev v0 table 99999999999", "table '99999999999': want one of default, main, local or an integer in 0..4294967295"),
    ("route add 198.51.100.0/24 dev v0 mtu 99999999999", "mtu '99999999999' is not an integer in 0..4294967295"),
    ("route add 198.51.100.0/24 dev v0 mtu lock 99999999999", "mtu '99999999999' is not an integer in 0..4294967295"),
    ("route add 198.51.100.0/24 dev v0 advmss -1", "advmss '-1' is not an integer in 0..4294967295"),
    ("route add 198.51.100.0/24 dev v0 metric １０", "metric '１０' is not an integer in 0..4294967295"),
    ("route add 198.51.100.0/24 dev v0 proto statik", "proto 'statik': want one of unspec, redirect"),
    ("route add 198.51.100.0/24 dev v0 scope 256", "scope '256': want one of global"),
    ("route add 198.51.100.0/24 dev v0 type blackhol", "type 'blackhol': want one of"),
    ("route add dev v0", "route add: a destination (PREFIX or 'default') is required"),
    ("addr add 192.0.2.9/24 dev v0 valid_lft -1", "valid_lft '-1' is not an integer in 0..4294967295"),
    ("addr add 192.0.2.9/24 dev v0 preferred_lft 99999999999", "preferred_lft '99999999999' is not an integer in 0..4294967295"),
    ("addr add 192.0.2.9/24 dev v0 metric ４", "metric '４' is not an integer in 0..4294967295"),
    ("link set v0 mtu 99999999999", "link set: mtu '99999999999' is not an integer in 0..4294967295"),
    ("link set v0 mtu １２００", "link set: mtu '１２００' is not an integer in 0..4294967295"),
    ("link set v0 txqlen 99999999999", "link set: txqlen '99999999999' is not an integer in 0..4294967295"),
    ("link set v0 address zz:00:00:00:00:01", "link set: address 'zz:00:00:00:00:01': want a link-layer address"),
    ("link set v0 name", "link set: 'name' needs a value"),
    ("link add w0 type veth peer name w1 mtu ９０００", "link add: mtu '９０００' is not an integer in 0..4294967295"),
]


def _cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        try:
            code = cli_main(argv)
        except SystemExit as e:  # argparse's usage errors
            code = e.code
    return code, err.getvalue()


def _state() -> list:
    return [support.ip_json("link", "show"), support.ip_json("addr", "show"), support.ip_json("route", "show", "table", "all")]


def test_cli_refuses_bad_input_naming_it_with_exit_1_like_ip(netns):
    import subprocess

    support.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    support.ip("link", "set", "v0", "up")
    before = _state()
    wrong = []
    for words, message in CLI_REFUSALS:
        code, err = _cli(words.split())
        ip = subprocess.run(["ip", *words.split()], capture_output=True, text=True, timeout=30)
        if code != 1 or message not in err or "Traceback" in err or ip.returncode == 0:
            wrong.append((words, code, err.strip(), ip.returncode))
    assert wrong == []
    assert _state() == before  # nothing half-applied
    code, err = _cli(["link", "set", "v0", "name", ""])  # an empty name: refused, not a silent no-op
    assert (code, err.strip()) == (1, "tunkit: link set: interface name '' is empty: want 1 to 15 bytes")
    assert _state() == before


# Random word salads: every one ends in exit 0, 1 or 2 with a message, never a traceback or an internal
# error text.  No "netns" word: a move to /proc/1/ns/net would reach the host's namespace.
_WORDS = ["via", "dev", "v0", "nope0", "192.0.2.2", "198.51.100.0/24", "default", "metric", "table", "mtu", "lock",
          "advmss", "nexthop", "weight", "onlink", "src", "from", "scope", "proto", "pref", "expires", "type",
          "blackhole", "inet6", "2001:db8::1", "0", "-1", "300", "99999999999", "１２", "0x10", "high", "main", "static",
          "link", "", "zz", "198.51.100.1/24", "::/0", "name", "up", "down", "address", "txqlen", "addrgenmode", "none",
          "valid_lft", "preferred_lft", "forever", "peer", "label", "nodad", "brd", "192.0.2.255", "oif", "iif", "mark",
          "fibmatch"]
_COMMANDS = [["route", "add"], ["route", "del"], ["route", "replace"], ["route", "get"], ["route", "show"],
             ["addr", "add"], ["addr", "del"], ["addr", "show"], ["link", "set"], ["link", "add"]]
_INTERNAL = ("Traceback", "struct", "format requires", "argument out of range", "fromhex", "object has no attribute", "unsupported operand")


def test_cli_word_salad_never_raises_or_leaks_internal_messages(netns):
    import random

    support.ip("link", "add", "v0", "type", "veth", "peer", "name", "v1")
    support.ip("addr", "add", "192.0.2.1/24", "dev", "v0")
    rng = random.Random("tunkit-cli-words")
    wrong = []
    for _ in range(400):
        argv = rng.choice(_COMMANDS) + [rng.choice(_WORDS) for _ in range(rng.randrange(8))]
        assert "netns" not in argv
        code, err = _cli(argv)
        if code not in (0, 1, 2) or any(t in err for t in _INTERNAL) or (code and not err.startswith(("tunkit", "usage:"))):
            wrong.append((argv, code, err.strip()[:200]))
    assert wrong == []


# --- item 15: docs/netlink.md's command lines run as shown, in a fresh namespace ---------------------------
def _doc_blocks(lang: str) -> list[str]:
    """The fenced blocks of docs/netlink.md whose info string is ``lang`` ("" for plain fences)."""
    from pathlib import Path

    blocks, current, info = [], None, ""
    for line in (Path(__file__).resolve().parent.parent / "docs" / "netlink.md").read_text().splitlines():
        if line.startswith("```"):
            if current is None:
                current, info = [], line[3:].strip()
            else:
                if info == lang:
                    blocks.append("\n".join(current))
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def test_docs_cli_block_and_transcripts_run_as_shown(netns):
    import shlex
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)

    def tunkit(words: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "tunkit", *words], capture_output=True, text=True, timeout=30,
                              cwd=root)

    [block] = _doc_blocks("sh")
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        assert words[0] == "tunkit", line
        p = tunkit(words[1:])
        assert p.returncode == 0, (line, p.stderr)
    transcripts = [b for b in _doc_blocks("") if b.startswith("$ tunkit ")]
    assert len(transcripts) >= 2
    for t in transcripts:
        lines = t.splitlines()
        i = 0
        while i < len(lines):
            cmd, expected = lines[i], []
            i += 1
            while i < len(lines) and not lines[i].startswith("$ "):
                expected.append(lines[i])
                i += 1
            p = tunkit(shlex.split(cmd[2:])[1:])
            assert p.returncode in (1, 2) and (p.stdout + p.stderr).splitlines() == expected, (cmd, p.stderr)
