"""Rules, neighbours and nexthop objects against the kernel, with ``ip -j`` as the oracle both ways.

Each object is made once by ``ip`` and once by tunkit (CLI and API) in fresh
namespaces; tunkit's JSON of what ip made must equal ``ip -j`` key for key,
and what tunkit made must look to ``ip -j`` exactly like what ip made.
"""

from __future__ import annotations

import errno
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest

import support
from tunkit._uapi import AF_INET, AF_INET6
from tunkit.cli import main as cli_main
from tunkit.cli.neigh import neigh_json
from tunkit.cli.nexthop import nexthop_json
from tunkit.cli.rule import rule_json
from tunkit.errors import NetlinkError
from tunkit.netlink.client import Rtnl

# ip rule words; every selector and action ip knows that this kernel takes
RULES4 = [
    "from 192.0.2.0/24 table 1000 pref 100",
    "to 198.51.100.0/24 lookup main pref 101",
    "iif tk0 oif tk1 fwmark 0x10/0xff table 200 pref 102",
    "fwmark 5 goto 32766 pref 103",
    "nop pref 104",
    "table main suppress_prefixlength 0 pref 105",
    "uidrange 1000-2000 table 7 pref 106",
    "ipproto tcp sport 1000-2000 dport 80 table 8 pref 107",
    "not from 192.0.2.5 table 9 pref 108",
    "blackhole pref 109",
    "tos 0x10 table 10 pref 110",
    "to 198.18.0.0/15 prohibit pref 111",
    "unreachable pref 112",
    "from 192.0.2.1 table 1000 protocol static pref 113",
    "iif lo table 11 pref 114",
    "realms 3/4 table 12 pref 115",
    "fwmark 0x20/0xffffffff table 100000 pref 116",
    "goto 200 pref 117",
    "ipproto udp dport 53-54 sport 5353 table 13 pref 118",
]
RULES6 = [
    "from 2001:db8::/32 table 1000 pref 200",
    "to 2001:db8:1::/48 iif lo fwmark 3/7 table 300 pref 201",
    "from 2001:db8::1 ipproto ipv6-icmp prohibit pref 202",
]


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def cli_json(*argv: str):
    code, out, err = run_cli(*argv, "-j")
    assert code == 0, err
    return json.loads(out)


def veth(ns=None):
    for cmd in ("link add tk0 type veth peer name tk1", "link set tk0 up", "link set tk1 up",
                "addr add 192.0.2.1/24 dev tk0", "addr add 2001:db8::1/64 dev tk0 nodad"):
        support.ip(*cmd.split(), ns=ns)


def ip_rules(ns, *, v6=False, details=False):
    return support.ip_json(*(["-6"] if v6 else []), *(["-d"] if details else []), "rule", "show", ns=ns)


# ---------------------------------------------------------------------------- rules
def test_rules_made_by_ip_are_shown_by_tunkit_as_ip_shows_them(netns):
    veth()
    for words in RULES4:
        support.ip("rule", "add", *words.split())
    for words in RULES6:
        support.ip("-6", "rule", "add", *words.split())
    with Rtnl() as rt:
        assert [rule_json(r) for r in rt.rules(AF_INET)] == ip_rules(None)
        assert [rule_json(r) for r in rt.rules(AF_INET6)] == ip_rules(None, v6=True)
        assert [rule_json(r, details=True) for r in rt.rules(AF_INET)] == ip_rules(None, details=True)
    assert cli_json("rule", "show") == ip_rules(None)
    assert cli_json("rule", "show", "-6") == ip_rules(None, v6=True)
    assert cli_json("rule", "show", "-d") == ip_rules(None, details=True)
    assert cli_json("rule", "show", "table", "1000") == [r for r in ip_rules(None) if r.get("table") == "1000"]


def test_rules_made_by_tunkit_equal_rules_made_by_ip(netns_factory):
    a, b = netns_factory("tunkit"), netns_factory("ip")
    for ns in (a, b):
        veth(ns)
    for words in RULES4:
        support.ip("rule", "add", *words.split(), ns=b)
    for words in RULES6:
        support.ip("-6", "rule", "add", *words.split(), ns=b)
    with a.entered():
        for words in RULES4:
            assert run_cli("rule", "add", *words.split())[0] == 0, words
        for words in RULES6:
            code, _, err = run_cli("rule", "add", *words.split())  # the family follows the prefix, as with ip
            assert code == 0, (words, err)
    for v6 in (False, True):
        assert ip_rules(a, v6=v6, details=True) == ip_rules(b, v6=v6, details=True)


def test_rule_api_keywords_and_errors(netns):
    with Rtnl() as rt:
        rt.add_rule(src="192.0.2.0/24", table=1000, priority=100, uid_range=(5, 6), sport="10-20", ip_proto=6)
        rt.add_rule(priority=101, action="blackhole")
        (r,) = [r for r in rt.rules(AF_INET) if r.priority == 100]
        assert (r.table, r.uid_range, r.sport_range, r.ip_proto, str(r.src)) == (1000, (5, 6), (10, 20), 6, "192.0.2.0/24")
        with pytest.raises(NetlinkError) as e:
            rt.add_rule(src="192.0.2.0/24", table=1000, priority=100, uid_range=(5, 6), sport="10-20", ip_proto=6)
        assert e.value.errno == errno.EEXIST and "rule add" in str(e.value) and "priority 100" in str(e.value)
        with pytest.raises(ValueError, match="sport '20-10': want 0 <= start <= end <= 65535"):
            rt.rule_message(sport="20-10")
        with pytest.raises(ValueError, match="action 'bogus'"):
            rt.rule_message(action="bogus")
        rt.delete_rule(priority=101)
        assert [r.priority for r in rt.rules(AF_INET)] == [None, 100, 32766, 32767]
        gone = rt.flush_rules(AF_INET)
        assert [r.priority for r in gone] == [100, 32766, 32767]  # as ip rule flush: main and default too
        assert [r.priority for r in rt.rules(AF_INET)] == [None]


def test_a_rule_steers_lookups_into_table_1000(netns):
    """`route get` proves it: a marked packet's lookup finds table 1000's route only once the rule exists."""
    veth()
    with Rtnl() as rt:
        rt.add_route("198.51.100.0/24", gateway="192.0.2.2", dev="tk0", table=1000)
        with pytest.raises(NetlinkError) as e:
            rt.get_route("198.51.100.7", mark=7)
        assert e.value.errno == errno.ENETUNREACH  # no route in main: table 1000 is not consulted
        assert run_cli("rule", "add", "fwmark", "7", "table", "1000", "pref", "50")[0] == 0
        r = rt.get_route("198.51.100.7", mark=7)
        assert (str(r.gateway), r.table) == ("192.0.2.2", 1000)
        got = support.ip_json("route", "get", "198.51.100.7", "mark", "7")
        assert got[0]["gateway"] == "192.0.2.2" and got[0].get("table", "1000") == "1000"
        with pytest.raises(NetlinkError):
            rt.get_route("198.51.100.7", mark=8)  # another mark: the rule does not match
        assert run_cli("rule", "del", "fwmark", "7", "table", "1000", "pref", "50")[0] == 0
        with pytest.raises(NetlinkError):
            rt.get_route("198.51.100.7", mark=7)


@pytest.mark.parametrize("argv,message", [
    (["rule", "add"], "requires arguments"),
    (["rule", "add", "from", "zz"], "from 'zz'"),
    (["rule", "add", "fwmark", "x/y"], "fwmark 'x/y'"),
    (["rule", "add", "sport", "9-1", "table", "5"], "sport '9-1'"),
    (["rule", "add", "tos", "0x100", "table", "5"], "tos '0x100'"),
    (["rule", "add", "ipproto", "nosuch", "table", "5"], "ipproto 'nosuch'"),
    (["rule", "add", "frobnicate"], "unknown argument 'frobnicate'"),
    (["rule", "add", "table", "5", "pref", "4294967296"], "FRA_PRIORITY: 4294967296 is not a u32"),
])
def test_rule_usage_errors_exit_1_and_name_the_value(netns, argv, message):
    code, _, err = run_cli(*argv)
    assert code == 1 and message in err, err
    assert ip_rules(None) == [{"priority": 0, "src": "all", "table": "local"},
                              {"priority": 32766, "src": "all", "table": "main"},
                              {"priority": 32767, "src": "all", "table": "default"}]  # nothing half-applied
