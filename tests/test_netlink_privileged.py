"""tunkit's rtnetlink against the kernel, with `ip -j` as the oracle in both directions.

Each test runs in throwaway namespaces (fixtures ``netns``/``netns_factory``);
nothing touches the host.  Links are veth pairs (the dummy driver may be absent).
"""

from __future__ import annotations

import errno
import io
import ipaddress
import json
import time
from contextlib import redirect_stderr, redirect_stdout

import pytest

import support
from tunkit._uapi import AF_INET, IfFlag, IfOper
from tunkit.cli import main as cli_main
from tunkit.cli.ip import addr_info_json, link_json, route_json
from tunkit.errors import NetlinkError
from tunkit.netlink.client import Rtnl
from tunkit.netlink.events import AddressEvent, LinkEvent, Resync, RouteEvent

# The same routes, said to ip and to tunkit: (ip words, tunkit keywords).
ROUTES = [
    ("198.51.100.0/24 via 192.0.2.2 dev tk0 metric 5 mtu lock 1400 advmss 1360 table 1000 proto static",
     dict(dst="198.51.100.0/24", gateway="192.0.2.2", dev="tk0", metric=5, mtu=1400, lock=["mtu"], advmss=1360,
          table=1000, protocol=4)),
    ("198.51.101.0/24 nexthop via 192.0.2.3 weight 3 nexthop via 192.0.2.4 dev tk0 weight 1",
     dict(dst="198.51.101.0/24", nexthops=[{"gateway": "192.0.2.3", "weight": 3},
                                           {"gateway": "192.0.2.4", "dev": "tk0", "weight": 1}])),
    ("198.51.102.0/24 dev tk0 metric 0", dict(dst="198.51.102.0/24", dev="tk0", metric=0)),
    ("198.51.103.0/24 dev tk0 table 0", dict(dst="198.51.103.0/24", dev="tk0", table=0)),
    ("default via 192.0.2.254 table 2000", dict(dst="default", gateway="192.0.2.254", table=2000)),
    ("198.18.0.0/15 dev tk0 src 192.0.2.1 scope link mtu 1300", dict(dst="198.18.0.0/15", dev="tk0", prefsrc="192.0.2.1", mtu=1300)),
    ("blackhole 198.51.104.0/24 metric 9", dict(dst="198.51.104.0/24", type=6, metric=9)),
    ("198.51.105.0/24 via 192.0.2.9 dev tk0 onlink proto 42 advmss 1000",
     dict(dst="198.51.105.0/24", gateway="192.0.2.9", dev="tk0", onlink=True, protocol=42, advmss=1000)),
    ("198.51.108.0/24 via inet6 2001:db8::5 dev tk0", dict(dst="198.51.108.0/24", gateway="2001:db8::5", dev="tk0")),
    ("2001:db8:1::/48 via 2001:db8::2 dev tk0 metric 7 mtu 1280 table 300 pref high",
     dict(dst="2001:db8:1::/48", gateway="2001:db8::2", dev="tk0", metric=7, mtu=1280, table=300, pref=1)),
    ("2001:db8:2::/48 nexthop via 2001:db8::3 dev tk0 weight 2 nexthop via 2001:db8::4 dev tk0 weight 5",
     dict(dst="2001:db8:2::/48", nexthops=[{"gateway": "2001:db8::3", "dev": "tk0", "weight": 2},
                                           {"gateway": "2001:db8::4", "dev": "tk0", "weight": 5}])),
]


def ip_route_add(words: str, ns=None) -> None:
    """``ip route add WORDS``, with -6 when the destination prefix is IPv6."""
    dst = next((w for w in words.split() if "/" in w), "")
    support.ip(*(["-6"] if ":" in dst else []), "route", "add", *words.split(), ns=ns)


def settle(ns=None, timeout=5.0):
    """Wait (bounded) until every veth reports carrier: listings taken meanwhile would differ."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        links = support.ip_json("link", "show", ns=ns)
        if all(l["operstate"] == "UP" for l in links if l["ifname"] != "lo"):
            return
        time.sleep(0.05)


def ip_setup(ns):
    for cmd in ("link add tk0 type veth peer name tk1", "link set tk0 addrgenmode none",
                "link set tk1 addrgenmode none", "link set tk0 up mtu 1400 txqlen 500", "link set tk1 up",
                "addr add 192.0.2.1/24 dev tk0", "addr add 2001:db8::1/64 dev tk0 nodad"):
        support.ip(*cmd.split(), ns=ns)
    settle(ns)


def tunkit_setup(rt: Rtnl):
    rt.add_veth("tk0", "tk1")
    rt.set_link("tk0", addr_gen_mode="none")
    rt.set_link("tk1", addr_gen_mode="none")
    rt.set_link("tk0", up=True, mtu=1400, txqlen=500)
    rt.set_link("tk1", up=True)
    rt.add_address("tk0", "192.0.2.1/24")
    rt.add_address("tk0", "2001:db8::1/64", flags=0x02)  # nodad
    settle()


def tunkit_json(rt: Rtnl):
    links = rt.links()
    names = {l.index: l.ifname for l in links}
    return {
        "link": [link_json(l, names) for l in links],
        "addr": [addr_info_json(a) for a in sorted(rt.addresses(), key=lambda a: a.index)],  # ip groups by link
        "route": [route_json(r, names) for r in rt.routes()],
    }


def ip_json_all(ns):
    return {
        "link": support.ip_json("link", "show", ns=ns),
        "addr": [a for l in support.ip_json("addr", "show", ns=ns) for a in l["addr_info"]],
        "route": support.ip_json("route", "show", "table", "all", ns=ns),
    }


def without(items, *keys):
    return [{k: v for k, v in i.items() if k not in keys} for i in items]


def test_what_tunkit_creates_is_what_ip_creates(netns_factory):
    """Same links, addresses and routes made by tunkit (A) and by ip (B): `ip -j` shows the same."""
    a, b = netns_factory("tunkit"), netns_factory("ip")
    with a.entered(), Rtnl() as rt:
        tunkit_setup(rt)
        for _, kw in ROUTES:
            rt.add_route(**kw)
    ip_setup(b)
    for words, _ in ROUTES:
        ip_route_add(words, ns=b)
    got, want = ip_json_all(a), ip_json_all(b)
    assert without(got["link"], "address") == without(want["link"], "address")  # MACs are random
    assert got["addr"] == want["addr"]
    # as sets: the kernel's order of equal-prefix routes (ff00::/8 on tk0 and tk1) follows link-up timing
    canon = lambda routes: sorted(json.dumps(r, sort_keys=True) for r in routes)  # noqa: E731
    assert canon(got["route"]) == canon(want["route"])
    assert len(want["route"]) > len(ROUTES)  # ours plus the kernel's connected and local routes


@pytest.mark.parametrize("maker", ["ip", "tunkit"])
def test_what_tunkit_lists_is_what_ip_shows(netns, maker):
    """Everything in the namespace, listed by tunkit and rendered as ip -j, equals ip -j."""
    if maker == "ip":
        ip_setup(netns)
        for words, _ in ROUTES:
            ip_route_add(words)
    with Rtnl() as rt:
        if maker == "tunkit":
            tunkit_setup(rt)
            for _, kw in ROUTES:
                rt.add_route(**kw)
        assert tunkit_json(rt) == ip_json_all(netns)


def test_link_details_and_changes(netns):
    with Rtnl() as rt:
        rt.add_veth("tk0", "tk1", mtu=1400)
        tk0 = rt.link("tk0")
        assert (tk0.kind, tk0.mtu, tk0.txqlen, tk0.flags & IfFlag.UP) == ("veth", 1400, 1000, 0)
        by_index = rt.link(tk0.index)
        assert (by_index.index, by_index.ifname, by_index.kind) == (tk0.index, "tk0", "veth")
        assert tk0.stats64 is not None and tk0.stats64.rx_packets == 0
        rt.set_link("tk0", up=True, txqlen=100, name="tkx0", address="02:00:00:00:00:01", addr_gen_mode="none")
        j = support.ip_json("-d", "link", "show", "tkx0")[0]
        assert (j["mtu"], j["txqlen"], j["address"], j["inet6_addr_gen_mode"]) == (1400, 100, "02:00:00:00:00:01", "none")
        assert "UP" in j["flags"]
        rt.set_link("tkx0", up=False)
        assert rt.link("tkx0").operstate == IfOper.DOWN
        rt.delete_link("tkx0")
        assert [l["ifname"] for l in support.ip_json("link", "show")] == ["lo"]


def test_move_a_link_to_another_namespace(netns_factory):
    a, b = netns_factory("a"), netns_factory("b")
    with a.entered(), Rtnl() as rt:
        rt.add_veth("tk0", "tk1")
        rt.set_link("tk1", netns=b)
        assert {l.ifname for l in rt.links()} == {"lo", "tk0"}
    assert {l["ifname"] for l in support.ip_json("link", ns=b)} == {"lo", "tk1"}


def test_veth_peer_created_directly_in_another_namespace(netns_factory):
    a, b = netns_factory("a"), netns_factory("b")
    with a.entered(), Rtnl() as rt:
        rt.add_veth("tk0", "tk1", peer_netns=b)
    assert {l["ifname"] for l in support.ip_json("link", ns=a)} == {"lo", "tk0"}
    assert {l["ifname"] for l in support.ip_json("link", ns=b)} == {"lo", "tk1"}


def test_dummy_links_where_the_kernel_has_the_driver(netns):
    """Creates a dummy link; on a kernel without the dummy driver, checks the refusal instead.

    (A skip would fail CI=true, and the refusal is behaviour worth checking.)
    """
    with Rtnl() as rt:
        try:
            rt.add_dummy("tkd0")
        except NetlinkError as e:
            assert e.errno == errno.EOPNOTSUPP, e
            assert str(e) == "link add tkd0 type dummy: Operation not supported (Unknown device type)"
            return
        assert support.ip_json("-d", "link", "show", "tkd0")[0]["linkinfo"]["info_kind"] == "dummy"


def test_addresses_add_replace_delete_and_reconcile(netns):
    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    with Rtnl() as rt:
        rt.add_address("tk0", "192.0.2.1/24")
        rt.add_address("tk0", "198.51.100.1/24", label="tk0:1")
        rt.add_address("tk0", "2001:db8::1/64", flags=0x02)
        with pytest.raises(NetlinkError) as ei:
            rt.add_address("tk0", "192.0.2.1/24")
        assert ei.value.errno == errno.EEXIST and str(ei.value).startswith("addr add 192.0.2.1/24 dev tk0: File exists")
        rt.replace_address("tk0", "192.0.2.1/24", metric=50)  # no error: updated in place
        ip_addrs = support.ip_json("addr", "show", "dev", "tk0")[0]["addr_info"]
        assert [addr_info_json(a) for a in rt.addresses("tk0")] == ip_addrs
        assert {(a["local"], a["prefixlen"]) for a in ip_addrs} >= {("192.0.2.1", 24), ("198.51.100.1", 24), ("2001:db8::1", 64)}
        replaced, removed = rt.reconcile_addresses("tk0", ["192.0.2.1/24", "2001:db8::2/64"])
        assert {str(a) for a in removed} >= {"198.51.100.1/24", "2001:db8::1/64"}
        left = {(a["local"], a["prefixlen"]) for a in support.ip_json("addr", "show", "dev", "tk0")[0]["addr_info"]}
        assert left == {("192.0.2.1", 24), ("2001:db8::2", 64)}
        rt.delete_address("tk0", "192.0.2.1/24")
        assert len(rt.addresses("tk0", family=AF_INET)) == 0
        errors = rt.add_addresses("tk0", [f"198.18.{i}.1/24" for i in range(20)] + ["2001:db8::2/64"])
        assert [e.errno for e in errors] == [errno.EEXIST] and "2001:db8::2/64 dev tk0" in str(errors[0])
        assert len(support.ip_json("-4", "addr", "show", "dev", "tk0")[0]["addr_info"]) == 20


def test_route_filters_get_replace_append_delete(netns):
    ip_setup(netns)
    with Rtnl() as rt:
        for _, kw in ROUTES:
            rt.add_route(**kw)
        names = {l.index: l.ifname for l in rt.links()}
        for family, table in ((4, "1000"), (6, "300"), (4, "main"), (6, "main")):
            want = support.ip_json(f"-{family}", "route", "show", "table", table)
            got = rt.routes(family={4: 2, 6: 10}[family], table={"main": 254}.get(table) or int(table))
            assert [route_json(r, names, show_table=False) for r in got] == want, (family, table)
        v6 = rt.routes(family=10, table=254, link="tk0")  # filtered by the kernel (strict checking)
        tk0 = rt.index("tk0")
        assert all(r.oif == tk0 or any(h.oif == tk0 for h in r.multipath or ()) for r in v6)
        single = [without([route_json(r, names)], "dev")[0] for r in v6 if r.multipath is None]
        assert single == support.ip_json("-6", "route", "show", "dev", "tk0")  # ip leaves out multipath routes
        got = rt.get_route("198.51.101.7")
        assert [route_json(got, names, get=True)] == support.ip_json("route", "get", "198.51.101.7")
        rt.replace_route("198.51.102.0/24", dev="tk0", metric=0, mtu=1200)
        rt.append_route("198.51.107.0/24", gateway="192.0.2.5")
        rt.append_route("198.51.107.0/24", gateway="192.0.2.6")
        shown = support.ip_json("route", "show", "198.51.107.0/24")
        assert [r["gateway"] for r in shown] == ["192.0.2.5", "192.0.2.6"]
        assert support.ip_json("route", "show", "198.51.102.0/24")[0]["metrics"] == [{"mtu": 1200}]
        rt.delete_route("198.51.100.0/24", table=1000, metric=5)
        assert support.ip_json("route", "show", "table", "1000") == []
        with pytest.raises(NetlinkError) as ei:
            rt.delete_route("198.51.100.0/24", table=1000, metric=5)
        assert ei.value.errno == errno.ESRCH and ei.value.op == "route del"


def test_route_errors_carry_the_kernel_message(netns):
    ip_setup(netns)
    with Rtnl() as rt:
        rt.add_route("198.51.100.0/24", dev="tk0")
        with pytest.raises(NetlinkError) as ei:
            rt.add_route("198.51.100.0/24", dev="tk0")
        assert str(ei.value) == "route add 198.51.100.0/24 dev tk0: File exists"
        with pytest.raises(NetlinkError) as ei:
            rt.add_route("198.51.101.0/24", gateway="203.0.113.1")
        assert ei.value.errno == errno.ENETUNREACH
        assert ei.value.message == "Nexthop has invalid gateway"  # NETLINK_EXT_ACK is on
        assert str(ei.value) == "route add 198.51.101.0/24 via 203.0.113.1: Network is unreachable (Nexthop has invalid gateway)"


def test_bulk_routes_pipelined_with_per_route_errors(netns):
    ip_setup(netns)
    with Rtnl() as rt:
        nets = [ipaddress.ip_network(f"198.18.{i // 64}.{(i % 64) * 4}/30") for i in range(600)]
        routes = [rt.route_message(n, dev="tk0", metric=(i % 3) or None, mtu=1400 if i % 5 == 0 else None)
                  for i, n in enumerate(nets)]
        assert rt.add_routes(routes) == []
        errors = rt.add_routes(routes[10:12] + [rt.route_message("198.51.100.0/24", dev="tk0")])
        assert [e.obj.split()[0] for e in errors] == [str(nets[10]), str(nets[11])]
        shown = [r for r in support.ip_json("route", "show") if r["dst"].startswith("198.18.")]
        assert len(shown) == 600
        assert rt.delete_routes(routes) == []
        assert [r["dst"] for r in support.ip_json("route", "show")] == ["192.0.2.0/24", "198.51.100.0/24"]


def _collect(mon, want, timeout=5.0):
    """Events from ``mon`` until ``want(events)`` holds or ``timeout`` passes (bounded)."""
    events = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not want(events):
        events += mon.events(0.2)
    return events


def test_monitor_reports_link_address_and_route_events(netns):
    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    with Rtnl() as rt, rt.monitor() as mon:
        assert mon.events(0) == []  # the initial state produced no events
        for cmd in ("link set tk0 up", "link set tk0 mtu 1280", "addr add 192.0.2.1/24 dev tk0",
                    "route add 198.51.100.0/24 dev tk0", "route del 198.51.100.0/24 dev tk0",
                    "addr del 192.0.2.1/24 dev tk0", "link set tk0 down"):
            support.ip(*cmd.split())
        events = _collect(mon, lambda ev: any(isinstance(e, LinkEvent) and not e.up and e.action == "changed" for e in ev))
    links = [e for e in events if isinstance(e, LinkEvent) and e.ifname == "tk0"]
    assert links[0].up and "up" in links[0].changed
    assert any(e.changed == {"mtu"} and e.mtu == 1280 for e in links)
    assert not links[-1].up
    addrs = [(e.action, str(e.address)) for e in events if isinstance(e, AddressEvent)]
    assert ("added", "192.0.2.1/24") in addrs and ("removed", "192.0.2.1/24") in addrs
    routes = [(e.action, str(e.route.dst)) for e in events if isinstance(e, RouteEvent) and e.route.table == 254]
    assert ("added", "198.51.100.0/24") in routes and ("removed", "198.51.100.0/24") in routes
    assert routes.index(("added", "198.51.100.0/24")) < routes.index(("removed", "198.51.100.0/24"))


def test_monitor_survives_enobufs_by_resyncing(netns):
    ip_setup(netns)
    with Rtnl() as rt, rt.monitor(["route"], rcvbuf=4096) as mon:
        routes = [rt.route_message(f"198.18.{i // 64}.{(i % 64) * 4}/30", dev="tk0") for i in range(400)]
        assert rt.add_routes(routes) == []  # 400 notifications cannot fit in a 4 KiB buffer
        events = _collect(mon, lambda ev: any(isinstance(e, Resync) for e in ev))
        resync = [e for e in events if isinstance(e, Resync)]
        assert resync and resync[0].reason == "ENOBUFS" and mon.resyncs >= 1
        known = {str(r.dst) for r in mon.monitor.routes.values() if r.table == 254}
        assert {str(r.dst) for r in routes} <= known  # the re-dump recovered every route


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = cli_main(list(argv))
        except SystemExit as e:  # argparse usage errors
            code = e.code
    return code, out.getvalue(), err.getvalue()


def test_cli_matches_ip_and_reports_errors_like_ip(netns):
    assert run_cli("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")[0] == 0
    for argv in (["link", "set", "tk0", "up", "mtu", "1400"], ["link", "set", "tk1", "up"],
                 ["addr", "add", "192.0.2.1/24", "dev", "tk0"], ["addr", "add", "2001:db8::1/64", "dev", "tk0", "nodad"],
                 ["route", "add", *ROUTES[0][0].split()], ["route", "add", *ROUTES[1][0].split()],
                 ["route", "add", *ROUTES[6][0].split()], ["route", "add", *ROUTES[7][0].split()],
                 ["route", "add", *ROUTES[8][0].split()], ["route", "-6", "add", *ROUTES[9][0].split()]):
        code, _, err = run_cli(*argv)
        assert code == 0, (argv, err)
    for args in (["route", "show", "table", "all"], ["link", "show"], ["addr", "show", "dev", "tk0"],
                 ["route", "get", "198.51.101.9"]):
        code, out, _ = run_cli(*args, "-j")
        assert code == 0 and json.loads(out) == support.ip_json(*args), args
    code, _, err = run_cli("route", "add", *ROUTES[1][0].split())
    assert (code, err.strip()) == (2, "tunkit: route add 198.51.101.0/24 nexthop via 192.0.2.3 weight 3 nexthop via 192.0.2.4 dev tk0 weight 1: File exists")
    code, _, err = run_cli("route", "add", "198.51.102.0/24", "via", "203.0.113.1")
    assert code == 2 and "(Nexthop has invalid gateway)" in err
    assert run_cli("route", "add", "198.51.102.1/24", "dev", "tk0")[0] == 1  # host bits: bad input
    assert run_cli("route", "frob")[0] == 1
    code, out, _ = run_cli("route", "del", "198.51.100.0/24", "table", "1000")
    assert code == 0 and support.ip_json("route", "show", "table", "1000") == []


def test_cli_monitor_prints_json_lines(netns):
    import threading

    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    result = {}

    def run():
        result["r"] = run_cli("monitor", "link", "-j", "--count", "1", "--timeout", "10")

    t = threading.Thread(target=lambda: (netns.entered().__enter__(), run()))
    t.start()
    deadline = time.monotonic() + 10
    while t.is_alive() and time.monotonic() < deadline:
        support.ip("link", "set", "tk0", "mtu", str(1300 + int(time.monotonic() * 10) % 100))
        t.join(0.2)
    t.join(10)
    code, out, _ = result["r"]
    event = json.loads(out.splitlines()[0])
    assert code == 0 and event["event"] == "link" and event["ifname"] == "tk0" and event["changed"] == ["mtu"]


def test_docs_example_runs(netns):
    """The API example in docs/netlink.md is real code: run it (it makes its own namespace)."""
    import pathlib
    import re

    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "netlink.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    out = io.StringIO()
    with redirect_stdout(out):
        exec(compile(code, "docs/netlink.md", "exec"), {})
    assert "route add 198.51.100.0/24 via 192.0.2.2 metric 10: File exists" in out.getvalue()
    assert "tk0 1400 500 veth" in out.getvalue()


def test_socket_options_nonblocking_and_strict_dump_filters(netns):
    import selectors
    import socket

    from tunkit._uapi import NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, SOL_NETLINK, RtnlGroup
    from tunkit.netlink.socket import NetlinkSocket

    with NetlinkSocket(groups=[RtnlGroup.LINK]) as s:
        raw = socket.socket(fileno=s.fileno())
        try:
            assert raw.getsockopt(SOL_NETLINK, NETLINK_EXT_ACK) == 1
            assert raw.getsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK) == 1
            assert raw.getsockname()[0] == s.pid > 0
        finally:
            raw.detach()
        s.setblocking(False)
        with pytest.raises(BlockingIOError):
            s.recv()
        with selectors.DefaultSelector() as sel:
            sel.register(s, selectors.EVENT_READ)
            assert sel.select(0) == []
            support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
            assert sel.select(5)  # the notification made it readable
    support.ip("link", "set", "tk0", "up")
    with Rtnl() as rt:
        rt.add_route("198.51.100.0/24", dev="tk0", table=1000)
        # strict checking: the kernel filters by table and by protocol itself
        assert [str(r.dst) for r in rt.routes(table=1000)] == ["198.51.100.0/24"]
        kernel_routes = rt.routes(protocol=2)  # proto kernel only (the up link's IPv6 multicast/local ones)
        assert kernel_routes and all(r.protocol == 2 for r in kernel_routes)
        assert len(kernel_routes) < len(rt.routes())  # the filter removed something (the table 1000 route)
        with pytest.raises(NetlinkError) as ei:  # a malformed dump request is refused, with the kernel's words
            rt.sock.dump(RTM_GETROUTE, b"\x02\x18" + bytes(10), lambda t, p: p)
        assert ei.value.errno == errno.EINVAL and "dump request" in ei.value.message


RTM_GETROUTE = 26


@pytest.mark.parametrize("kw", [dict(), dict(mode="tap", vnet_hdr=True, queues=2)], ids=["tun", "tap-mq-vnet"])
def test_tun_devices_from_the_device_layer_as_rtnl_sees_them(netns, kw):
    """TUN/TAP links are created by tunkit.tun.device; their IFLA_INFO_DATA decodes to what `ip -d -j` shows."""
    from tunkit.tun.device import open_tun

    dev = open_tun("tk0", **kw)
    try:
        with Rtnl() as rt:
            link = rt.link("tk0")
            assert link.kind == "tun" and link.linkinfo.data.num_queues == kw.get("queues")  # absent: None
            want = support.ip_json("-d", "link", "show", "tk0")[0]["linkinfo"]
            assert link_json(link, {}, details=True)["linkinfo"] == want
            rt.set_link("tk0", up=True, mtu=1400)
            rt.add_address("tk0", "192.0.2.1/24")
            rt.add_route("198.51.100.0/24", dev="tk0", mtu=1300)
            assert support.ip_json("route", "show", "198.51.100.0/24")[0]["metrics"] == [{"mtu": 1300}]
    finally:
        dev.close()


@pytest.mark.parametrize("mode", ["eui64", "none", "stable_secret", "random"])
def test_cli_addrgenmode_names_are_iproute2s_both_ways(netns, capsys, mode):
    from tunkit.cli import main

    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    if mode == "stable_secret":  # the kernel wants the secret first (ip fails the same way without it)
        with open("/proc/sys/net/ipv6/conf/tk0/stable_secret", "w") as f:
            f.write("2001:db8::5ec7")
    assert main(["link", "set", "tk0", "addrgenmode", mode]) == 0
    assert support.ip_json("-d", "link", "show", "tk0")[0]["inet6_addr_gen_mode"] == mode  # ip's oracle
    capsys.readouterr()
    assert main(["link", "show", "tk0", "-d", "-j"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["inet6_addr_gen_mode"] == mode
