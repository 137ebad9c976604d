"""Rules, neighbours and nexthop objects against the kernel, with ``ip -j`` as the oracle both ways.

Each object is made once by ``ip`` and once by tunkit (CLI and API) in fresh
namespaces; tunkit's JSON of what ip made must equal ``ip -j`` key for key,
and what tunkit made must look to ``ip -j`` exactly like what ip made.
"""

from __future__ import annotations

import errno
import io
import json
import re
import time
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
    """tk0 <-> tk1, up, with 192.0.2.1/24 and 2001:db8::1/64 on tk0; no link-local addresses (whose
    routes would appear whenever DAD ends), and waited for carrier (else routes say "linkdown")."""
    for cmd in ("link add tk0 type veth peer name tk1", "link set tk0 addrgenmode none",
                "link set tk1 addrgenmode none", "link set tk0 up", "link set tk1 up",
                "addr add 192.0.2.1/24 dev tk0", "addr add 2001:db8::1/64 dev tk0 nodad"):
        support.ip(*cmd.split(), ns=ns)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if all(l["operstate"] == "UP" for l in support.ip_json("link", "show", ns=ns) if l["ifname"] != "lo"):
            return
        time.sleep(0.02)
    raise AssertionError("veth pair did not come up within 10 s")


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
    (["rule", "add", "table", "5", "pref", "4294967296"], "pref '4294967296' is not an integer in 0..4294967295"),
    (["rule", "add", "table", "5", "pref", "１２"], "pref '１２' is not an integer"),
    (["rule", "add", "fwmark", "１/0xff", "table", "5"], "fwmark '１/0xff'"),
])
def test_rule_usage_errors_exit_1_and_name_the_value(netns, argv, message):
    code, _, err = run_cli(*argv)
    assert code == 1 and message in err, err
    assert ip_rules(None) == [{"priority": 0, "src": "all", "table": "local"},
                              {"priority": 32766, "src": "all", "table": "main"},
                              {"priority": 32767, "src": "all", "table": "default"}]  # nothing half-applied


# ----------------------------------------------------------------------- neighbours
NEIGHS = [  # ip neigh add words
    "192.0.2.2 lladdr 02:00:00:00:00:02 dev tk0",
    "192.0.2.3 lladdr 02:00:00:00:00:03 dev tk0 nud reachable",
    "192.0.2.5 lladdr 02:00:00:00:00:05 dev tk0 nud stale",
    "192.0.2.4 dev tk0 nud failed",
    "2001:db8::2 lladdr 02:00:00:00:00:04 dev tk0 router",
    "2001:db8::3 lladdr 02:00:00:00:00:06 dev tk0 nud noarp",
    "proxy 192.0.2.9 dev tk0",
    "proxy 2001:db8::9 dev tk0",
]


def ip_neigh(ns, *args):
    return support.ip_json("neigh", "show", *args, ns=ns)


def _neigh_views(ns):
    # the kernel adds its own multicast entries (ff02::...) as links come up: compare ours only
    def mine(entries):
        return [e for e in entries if not e["dst"].startswith("ff02") and not e["dst"].startswith("fe80")]

    def canon(entries):  # each namespace hashes its neighbour table with its own seed: order differs
        return sorted(mine(entries), key=lambda e: json.dumps(e, sort_keys=True))

    return [canon(ip_neigh(ns, *args)) for args in ((), ("proxy",), ("nud", "all"), ("dev", "tk0"))]


def _ours(entries):
    return [e for e in entries if not e["dst"].startswith(("ff02", "fe80"))]


def test_neighbours_made_by_ip_are_shown_by_tunkit_as_ip_shows_them(netns):
    veth()
    for words in NEIGHS:
        support.ip("neigh", "add", *words.split())
    for args in ((), ("proxy",), ("nud", "all"), ("dev", "tk0"), ("nud", "stale"), ("to", "192.0.2.0/30")):
        # the kernel adds its own multicast entries (ff02::16, ...) whenever it likes: compare ours
        assert _ours(cli_json("neigh", "show", *args)) == _ours(ip_neigh(None, *args)), args
    code, out, _ = run_cli("neigh", "show", "-s", "-j")
    assert code == 0 and all("used" in e for e in json.loads(out) if "proxy" not in e)
    with Rtnl() as rt:
        names = {l.index: l.ifname for l in rt.links()}
        assert [neigh_json(n, names) for n in rt.neighbours(proxy=True)] == ip_neigh(None, "proxy")


def _add_with_ip_and_tunkit(a, b, *groups) -> None:
    """For each (object, lines): ``ip OBJECT add LINE`` in ``b``, then ``tunkit OBJECT add LINE`` in ``a``, each exit 0."""
    for obj, lines in groups:
        for words in lines:
            support.ip(obj, "add", *words.split(), ns=b)
    with a.entered():
        for obj, lines in groups:
            for words in lines:
                code, _, err = run_cli(obj, "add", *words.split())
                assert code == 0, (words, err)


def test_neighbours_made_by_tunkit_equal_those_made_by_ip(netns_factory):
    a, b = netns_factory("tunkit"), netns_factory("ip")
    for ns in (a, b):
        veth(ns)
    _add_with_ip_and_tunkit(a, b, ("neigh", NEIGHS))
    assert _neigh_views(a) == _neigh_views(b)


def test_neighbour_replace_delete_and_flush(netns):
    veth()
    with Rtnl() as rt:
        rt.add_neigh("192.0.2.2", lladdr="02:00:00:00:00:02", dev="tk0")
        with pytest.raises(NetlinkError) as e:
            rt.add_neigh("192.0.2.2", lladdr="02:00:00:00:00:02", dev="tk0")
        assert e.value.errno == errno.EEXIST and "neigh add 192.0.2.2" in str(e.value)
        assert e.value.obj == "192.0.2.2" and e.value.op == "neigh add"  # text, though the request passed the address
        with pytest.raises(NetlinkError) as e:
            rt.delete_neigh("2001:db8::00a", dev="tk0")
        assert e.value.errno == errno.ENOENT and e.value.obj == "2001:db8::a" and "neigh del 2001:db8::a" in str(e.value)
        assert run_cli("neigh", "replace", "192.0.2.2", "lladdr", "02:00:00:00:00:22", "dev", "tk0", "nud", "stale")[0] == 0
        assert ip_neigh(None) == [{"dst": "192.0.2.2", "dev": "tk0", "lladdr": "02:00:00:00:00:22", "state": ["STALE"]}]
        rt.add_neigh("192.0.2.3", lladdr="02:00:00:00:00:03", dev="tk0")  # PERMANENT: flush keeps it
        code, _, err = run_cli("neigh", "flush")
        assert code == 1 and "requires arguments" in err
        assert run_cli("neigh", "flush", "dev", "tk0")[0] == 0
        assert [e["dst"] for e in ip_neigh(None)] == ["192.0.2.3"]
        assert run_cli("neigh", "flush", "dev", "tk0", "nud", "permanent")[0] == 0
        assert ip_neigh(None) == []
        rt.add_neigh("192.0.2.9", dev="tk0", proxy=True)
        assert [str(n.dst) for n in rt.flush_neighbours(proxy=True)] == ["192.0.2.9"]
        assert ip_neigh(None, "proxy") == []
        assert run_cli("neigh", "add", "192.0.2.7", "lladdr", "02:00:00:00:00:07", "dev", "tk0")[0] == 0
        assert run_cli("neigh", "del", "192.0.2.7", "dev", "tk0")[0] == 0
        assert ip_neigh(None) == []


@pytest.mark.parametrize("argv,message", [
    (["neigh", "add", "192.0.2.2", "lladdr", "zz:00", "dev", "tk0"], "lladdr 'zz:00'"),
    (["neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02"], "'dev DEV' is required"),
    (["neigh", "add", "192.0.2.2", "dev", "tk0", "nud", "sleepy"], "nud 'sleepy'"),
    (["neigh", "add", "192.0.2.999", "dev", "tk0"], "192.0.2.999"),
])
def test_neigh_usage_errors_exit_1_and_name_the_value(netns, argv, message):
    veth()
    code, _, err = run_cli(*argv)
    assert code == 1 and message in err, err
    assert [e for e in ip_neigh(None, "nud", "all") if not e["dst"].startswith("ff02")] == []  # nothing half-applied


# ------------------------------------------------------------------------- nexthops
NEXTHOPS = [  # ip nexthop add words
    "id 1 via 192.0.2.2 dev tk0",
    "id 2 via 192.0.2.3 dev tk0 onlink",
    "id 3 dev tk0",
    "id 4 blackhole",
    "id 5 via 2001:db8::2 dev tk0",
    "id 10 group 1,3/2",
    "id 11 group 1/2 type resilient buckets 8",
    "id 12 group 1,256/2,1",
]
NH_ROUTES = ["198.51.100.0/24 nhid 10", "198.51.101.0/24 nhid 1 metric 5", "198.51.102.0/24 nhid 4"]


def test_nexthops_made_by_ip_are_shown_by_tunkit_as_ip_shows_them(netns):
    veth()
    for words in NEXTHOPS:
        support.ip("nexthop", "add", *words.split())
    for words in NH_ROUTES:
        support.ip("route", "add", *words.split())
    for args in ((), ("-d",), ("groups",), ("dev", "tk0"), ("id", "10")):
        ip_args = [a for a in args if a != "-d"]
        want = support.ip_json(*(["-d"] if "-d" in args else []), "nexthop", "show", *ip_args)
        assert cli_json("nexthop", "show", *args) == want, args
    assert cli_json("route", "show") == support.ip_json("route", "show")  # nhid and the group's nexthops


def test_nexthops_made_by_tunkit_equal_those_made_by_ip(netns_factory):
    a, b = netns_factory("tunkit"), netns_factory("ip")
    for ns in (a, b):
        veth(ns)
    _add_with_ip_and_tunkit(a, b, ("nexthop", NEXTHOPS), ("route", NH_ROUTES))
    for args in (("-d", "nexthop", "show"), ("route", "show")):
        assert support.ip_json(*args, ns=a) == support.ip_json(*args, ns=b)


def test_nexthop_groups_round_trip_and_flush(netns):
    veth()
    with Rtnl() as rt:
        rt.add_nexthop(1, gateway="192.0.2.2", dev="tk0")
        rt.add_nexthop(2, gateway="192.0.2.3", dev="tk0")
        rt.add_nexthop(10, group=[(1, 3), 2])
        g = rt.nexthop(10)
        assert [(m.id, m.weight) for m in g.group] == [(1, 3), (2, 1)]
        assert type(g).decode(g.encode()) == g
        rt.add_route("198.51.100.0/24", nhid=10)
        (r,) = [r for r in rt.routes() if r.nhid == 10]
        assert sorted(str(h.gateway) for h in r.multipath) == ["192.0.2.2", "192.0.2.3"]
        with pytest.raises(ValueError, match="weight 300 is out of range 1..256"):
            rt.add_nexthop(11, group=[(1, 300)])
        with pytest.raises(NetlinkError) as e:
            rt.add_nexthop(10, group=[1])
        assert e.value.errno == errno.EEXIST and "nexthop add id 10" in str(e.value)
        assert sorted(n.id for n in rt.flush_nexthops()) == [1, 2, 10]
        assert rt.nexthops() == [] and not [r for r in rt.routes() if r.nhid]


# ---------------------------------------------------- route attributes, filters, text (issue 15 item 7, issue 14 item 14)
ROUTES_MORE = [  # ip route add words (IPv4 unless the prefix is IPv6)
    "198.51.100.0/24 via 192.0.2.2 rtt 12ms rttvar 5ms initcwnd 10 initrwnd 20 congctl cubic features ecn quickack 1"
    " hoplimit 64 ssthresh 5 cwnd lock 8 window 1000 reordering 3 fastopen_no_cookie 1 mtu lock 1400 advmss 1300"
    " tos 0x10 realm 5",
    "198.51.101.0/24 dev tk0 rtt 2s rttvar 1500ms congctl lock reno realms 3/4",
    "198.51.102.0/24 dev tk0 tos 0x28",
    "198.51.102.0/24 dev tk0",
    "198.51.103.0/24 via inet6 fe80::1 dev tk0",
    "198.51.104.0/24 dev tk0 proto static scope link table 1000",
    "blackhole 198.51.105.0/24 proto static",
    "2001:db8:5::/48 via 2001:db8::2 expires 300",
    "2001:db8:6::/48 via fe80::1 dev tk0 metric 5 initcwnd 7",
]


def _add_routes(ns, cli: bool):
    for words in ROUTES_MORE:
        six = ["-6"] if words.split()[0].count(":") > 1 else []
        if cli:
            with ns.entered():
                code, _, err = run_cli("route", *six, "add", *words.split())
                assert code == 0, (words, err)
        else:
            support.ip(*six, "route", "add", *words.split(), ns=ns)


def _normal(text: str) -> list[str]:
    return [" ".join(line.split()) for line in text.splitlines() if line.strip()]


ROUTE_SHOWS = [(), ("table", "all"), ("proto", "static"), ("scope", "link"), ("type", "blackhole"),
               ("via", "192.0.2.2"), ("dev", "tk0"), ("table", "1000"), ("tos", "0x10"), ("-6",)]


def _expires(text: str) -> str:
    """Seconds left tick down between two listings (300 -> 29x): one value for the comparison."""
    return re.sub(r'(expires"?:? ?)(2[6-9]\d|300)', r"\g<1>300", text)


def test_route_attributes_and_filters_as_ip_shows_them(netns_factory):
    a, b = netns_factory("tunkit"), netns_factory("ip")
    for ns, cli in ((a, True), (b, False)):
        veth(ns)
        _add_routes(ns, cli)
    for args in ROUTE_SHOWS:  # what tunkit made looks to ip like what ip made, JSON and text (locks show there)
        six = [x for x in args if x == "-6"]
        rest = [x for x in args if x != "-6"]
        assert _expires(json.dumps(support.ip_json(*six, "route", "show", *rest, ns=a))) == \
            _expires(json.dumps(support.ip_json(*six, "route", "show", *rest, ns=b)))
        assert [_expires(x) for x in _normal(support.ip(*six, "route", "show", *rest, ns=a))] == \
            [_expires(x) for x in _normal(support.ip(*six, "route", "show", *rest, ns=b))]
    with b.entered():  # what ip made, shown by tunkit: ip -j key for key, and ip's text word for word
        for args in ROUTE_SHOWS:
            six = [x for x in args if x == "-6"]
            rest = [x for x in args if x != "-6"]
            want = _expires(json.dumps(support.ip_json(*six, "route", "show", *rest)))
            got = _expires(json.dumps(cli_json("route", "show", *rest, *six)))
            assert got == want, args
            code, out, _ = run_cli("route", "show", *rest, *six)
            want_text = [_expires(line) for line in _normal(support.ip(*six, "route", "show", *rest))]
            assert code == 0 and [_expires(line) for line in _normal(out)] == want_text, args


@pytest.mark.privileged
def test_route_show_in_a_fresh_namespace_prints_nothing_and_exits_0():
    """Loopback never up, so the main table does not exist yet: ip prints nothing and exits 0 (issue 14 item 14)."""
    from tunkit.netns import NetNS

    with NetNS("fresh", loopback_up=False) as ns, ns.entered():
        assert support.ip("route", "show") == ""
        assert run_cli("route", "show") == (0, "", "")
        assert run_cli("route", "show", "-j") == (0, "[]\n", "")
        with Rtnl() as rt:
            assert rt.routes(table=254) == [] and rt.routes(table=1000) == []


def test_route_text_shows_via_inet6_tos_and_metric_locks(netns):
    """Routes that looked connected, identical or unlocked in tunkit's text read as ip prints them (issue 14 item 14)."""
    veth()
    for words in ("198.51.103.0/24 via inet6 fe80::1 dev tk0", "198.51.102.0/24 dev tk0 tos 0x28",
                  "198.51.102.0/24 dev tk0", "198.51.104.0/24 via 192.0.2.2 mtu lock 1400 advmss 1300"):
        support.ip("route", "add", *words.split())
    code, out, _ = run_cli("route", "show")
    assert code == 0 and _normal(out) == _normal(support.ip("route", "show"))
    assert "198.51.103.0/24 via inet6 fe80::1 dev tk0" in _normal(out)
    assert "198.51.104.0/24 via 192.0.2.2 dev tk0 mtu lock 1400 advmss 1300" in _normal(out)


def test_address_text_shows_peer_lifetimes_and_dynamic(netns):
    """`inet A peer B/32`, valid_lft/preferred_lft and `dynamic`, as ip prints them (issue 14 item 14)."""
    veth()
    support.ip("addr", "add", "10.0.0.1", "peer", "10.0.0.2", "dev", "tk0")
    support.ip("addr", "add", "192.0.2.9/24", "dev", "tk0", "valid_lft", "100", "preferred_lft", "50")
    assert cli_json("addr", "show", "dev", "tk0") == support.ip_json("addr", "show", "dev", "tk0")
    code, out, _ = run_cli("addr", "show", "dev", "tk0")
    want = [line.replace("99sec", "100sec").replace("49sec", "50sec") for line in _normal(support.ip("addr", "show", "dev", "tk0"))]
    got = [line.replace("99sec", "100sec").replace("49sec", "50sec") for line in _normal(out)]
    addr_lines = lambda lines: [line for line in lines if line.startswith(("inet", "valid_lft"))]  # noqa: E731
    assert code == 0 and addr_lines(got) == addr_lines(want)
    assert "inet 10.0.0.1 peer 10.0.0.2/32 scope global tk0" in got


# --------------------------------------------------------------------------- monitor
def _collect(mon, until, timeout=10.0):
    events, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        events += mon.events(0.2)
        if until(events):
            break
    return events


def test_monitor_reports_neighbour_and_rule_events(netns):
    from tunkit.netlink.events import NeighEvent, RuleEvent

    veth()
    with Rtnl() as rt, rt.monitor(["neigh", "rule"]) as mon:
        assert mon.events(0) == []
        support.ip("neigh", "add", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "tk0", "nud", "reachable")
        support.ip("neigh", "change", "192.0.2.2", "lladdr", "02:00:00:00:00:02", "dev", "tk0", "nud", "stale")
        support.ip("rule", "add", "from", "192.0.2.0/24", "table", "1000", "pref", "100")
        support.ip("-6", "rule", "add", "from", "2001:db8::/32", "table", "1000", "pref", "100")
        support.ip("neigh", "del", "192.0.2.2", "dev", "tk0")
        support.ip("rule", "del", "pref", "100")
        events = _collect(mon, lambda ev: sum(isinstance(e, RuleEvent) for e in ev) >= 3
                          and any(isinstance(e, NeighEvent) and e.action == "removed" for e in ev))
    neigh = [(e.action, e.neigh.state) for e in events if isinstance(e, NeighEvent) and str(e.neigh.dst) == "192.0.2.2"]
    assert neigh[0] == ("added", 0x02) and ("changed", 0x04) in neigh and neigh[-1][0] == "removed"
    rules = [(e.action, e.rule.family, e.rule.priority) for e in events if isinstance(e, RuleEvent)]
    assert rules == [("added", AF_INET, 100), ("added", AF_INET6, 100), ("removed", AF_INET, 100)]


def test_monitor_resyncs_neighbours_after_enobufs(netns):
    from tunkit.netlink.events import Resync

    veth()
    with Rtnl() as rt, rt.monitor(["neigh"], rcvbuf=4096) as mon:
        for i in range(2, 202):  # 200 notifications cannot fit in a 4 KiB buffer
            rt.add_neigh(f"192.0.2.{i}", lladdr=f"02:00:00:00:00:{i:02x}", dev="tk0")
        events = _collect(mon, lambda ev: any(isinstance(e, Resync) for e in ev))
        resync = [e for e in events if isinstance(e, Resync)]
        assert resync and resync[0].reason == "ENOBUFS" and resync[-1].neighbours >= 200
        known = {str(n.dst) for n in mon.monitor.neighbours.values()}
        assert {f"192.0.2.{i}" for i in range(2, 202)} <= known  # the re-dump recovered every entry


def test_cli_monitor_prints_neighbour_and_rule_json_lines(netns):
    import threading

    veth()
    result = {}
    t = threading.Thread(target=lambda: (netns.entered().__enter__(),
                                         result.update(r=run_cli("monitor", "rule", "neigh", "-j", "--count", "2",
                                                                 "--timeout", "10"))))
    t.start()
    deadline, i = time.monotonic() + 10, 0
    while t.is_alive() and time.monotonic() < deadline:
        i += 1
        support.ip("rule", "add", "table", "5", "pref", str(1000 + i))
        support.ip("neigh", "replace", "192.0.2.9", "lladdr", f"02:00:00:00:00:{i % 256:02x}", "dev", "tk0")
        t.join(0.2)
    t.join(10)
    code, out, err = result["r"]
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and len(lines) == 2, err
    kinds = {j["event"] for j in lines}
    assert kinds <= {"rule", "neigh"} and all(j["action"] in ("added", "changed") for j in lines)
    rule = next((j for j in lines if j["event"] == "rule"), None)
    assert rule is None or (rule["table"] == "5" and rule["src"] == "all")


ROUTE_GETS = ["198.51.100.7 mark 7", "198.51.101.7", "fibmatch 198.51.100.7 mark 7", "-6 2001:db8:5::1",
              "-6 2001:db8::9", "-6 fibmatch 2001:db8:5::1"]


def test_route_get_as_ip_shows_it_ipv4_with_mark_and_table_ipv6_with_metric(netns):
    """`route get` key for key with `ip -j route get`: the lookup table (a rule's table 1000), mark, uid,
    the IPv4 reply's cache list, and IPv6's from/protocol/metric/pref (issue 15 item 7)."""
    veth()
    for cmd in ("route add 198.51.100.0/24 via 192.0.2.2 table 1000 mtu 1300", "route add 198.51.101.0/24 via 192.0.2.2 metric 9",
                "rule add fwmark 7 table 1000", "-6 route add 2001:db8:5::/48 via 2001:db8::2 mtu 1300 metric 7"):
        support.ip(*cmd.split())
    for words in ROUTE_GETS:
        six = ["-6"] if words.startswith("-6") else []
        rest = words.replace("-6 ", "").split()
        want = support.ip_json(*six, "route", "get", *rest)
        assert cli_json("route", "get", *rest, *six) == want, words
    with Rtnl() as rt:
        assert rt.get_route("198.51.100.7", mark=7).table == 1000
        assert rt.get_route("2001:db8:5::1").priority == 7
