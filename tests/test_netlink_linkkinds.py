"""Bridge, vxlan and macvlan links and master/alias/promisc/allmulti, against ``ip -j``/``ip -d -j`` both ways.

This kernel has veth, bridge, vxlan and macvlan (ipvlan, vlan, bond, vrf, dummy and wireguard are
absent here); tun/tap are covered by test_cli_tuntap.py.
"""

from __future__ import annotations

import errno
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import pytest

import support
from support_netlink import H, ip4, ip6
from tunkit.cli import main as cli_main
from tunkit.errors import NetlinkError
from tunkit.netlink.client import Rtnl
from tunkit.netlink.linkkinds import BondInfo, IpvlanInfo, MacvlanInfo, VlanInfo, VrfInfo, VxlanInfo
from tunkit.netlink.rtnl import LinkInfo, LinkMessage

LINKS = [  # (name, ip link add words after the name, tunkit link add words after the name)
    ("br0", "type bridge", "type bridge"),
    ("vx1", "type vxlan id 42 remote 192.0.2.2 local 192.0.2.1 dstport 4789 dev tk0 ttl 64 nolearning",
     "type vxlan id 42 remote 192.0.2.2 local 192.0.2.1 dstport 4789 dev tk0 ttl 64 nolearning"),
    ("vx2", "type vxlan id 43 group 239.1.1.1 dev tk0 dstport 8472 srcport 1000 2000",
     "type vxlan id 43 group 239.1.1.1 dev tk0 dstport 8472 srcport 1000 2000"),
    ("vx3", "type vxlan id 44 remote 2001:db8::2 local 2001:db8::1 dstport 4789 udp6zerocsumtx tos 10",
     "type vxlan id 44 remote 2001:db8::2 local 2001:db8::1 dstport 4789 udp6zerocsumtx tos 10"),
    ("m0", "link tk0 type macvlan mode bridge", "link tk0 type macvlan mode bridge"),
    ("m1", "link tk0 type macvlan mode private", "link tk0 type macvlan mode private"),
]
SETS = ["tk1 master br0", "tk1 alias uplink", "tk1 promisc on", "tk1 allmulticast on", "m0 promisc on"]


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli_main(list(argv))
    return code, out.getvalue(), err.getvalue()


def setup(ns, tunkit: bool):
    for cmd in ("link add tk0 type veth peer name tk1", "link set tk0 up", "link set tk1 up"):
        support.ip(*cmd.split(), ns=ns)
    for name, ip_words, tk_words in LINKS:
        if tunkit:
            with ns.entered():
                code, _, err = run_cli("link", "add", name, *tk_words.split())
                assert code == 0, (name, err)
        else:
            support.ip("link", "add", *(["link", "tk0"] if "link tk0" in ip_words else []), "name", name,
                       *ip_words.replace("link tk0 ", "").split(), ns=ns)
    for words in SETS:
        if tunkit:
            with ns.entered():
                assert run_cli("link", "set", *words.split())[0] == 0, words
        else:
            support.ip("link", "set", *words.split(), ns=ns)


def _links(ns, details=False):
    out = []
    for l in support.ip_json(*(["-d"] if details else []), "link", "show", ns=ns):
        l = {k: v for k, v in l.items() if k not in ("address", "ifindex", "link_index")}
        if details:
            info = l.get("linkinfo", {})
            if info.get("info_kind") == "bridge":  # bridge ids embed the random MAC address
                for key in ("bridge_id", "root_id"):
                    info.get("info_data", {}).pop(key, None)
            info.pop("info_slave_data", None)
        out.append(l)
    return out


def test_links_made_by_tunkit_equal_links_made_by_ip(netns_factory):
    a, b = netns_factory("tunkit"), netns_factory("ip")
    setup(a, tunkit=True)
    setup(b, tunkit=False)
    assert _links(a) == _links(b)
    assert _links(a, details=True) == _links(b, details=True)


def test_links_made_by_ip_shown_by_tunkit_as_ip_shows_them(netns):
    setup(netns, tunkit=False)
    code, out, err = run_cli("link", "show", "-j")
    assert code == 0, err
    assert json.loads(out) == support.ip_json("link", "show")  # master, PROMISC/ALLMULTI flags, ifalias
    code, out, _ = run_cli("link", "show", "-d", "-j")
    ours = {l["ifname"]: l.get("linkinfo") for l in json.loads(out)}
    for l in support.ip_json("-d", "link", "show"):
        if l["ifname"] in ("vx1", "vx2", "vx3", "m0", "m1", "br0"):
            assert ours[l["ifname"]] == l["linkinfo"], l["ifname"]  # info_kind and info_data, key for key
        elif l["ifname"] == "tk1":
            assert ours["tk1"]["info_slave_kind"] == l["linkinfo"]["info_slave_kind"] == "bridge"
    assert run_cli("link", "set", "tk1", "nomaster")[0] == 0
    assert "master" not in support.ip_json("link", "show", "tk1")[0]


@pytest.mark.parametrize("argv,message", [
    (["link", "add", "vx9", "type", "vxlan"], "needs 'id VNI'"),
    (["link", "add", "vx9", "type", "vxlan", "id", "16777216"], "id '16777216': want 0..16777215"),
    (["link", "add", "vx9", "type", "vxlan", "id", "5", "remote", "zz"], "remote/group 'zz'"),
    (["link", "add", "m9", "link", "tk0", "type", "macvlan", "mode", "weird"], "mode 'weird'"),
    (["link", "add", "m9", "type", "macvlan"], "needs 'link DEV'"),
    (["link", "set", "tk0", "promisc", "maybe"], "promisc 'maybe': want on or off"),
])
def test_link_kind_usage_errors_exit_1(netns, argv, message):
    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    code, _, err = run_cli(*argv)
    assert code == 1 and message in err, err
    assert {l["ifname"] for l in support.ip_json("link", "show")} == {"lo", "tk0", "tk1"}  # nothing half-applied


CASES = [
    ("vxlan: id, remote, local, port, port range, learning off",
     LinkInfo(kind="vxlan", data=VxlanInfo(id=42, group=ip4("192.0.2.2"), local=ip4("192.0.2.1"), port=4789,
                                           port_range=(1000, 2000), learning=False)),
     H("""
        0a00 0100 7678 6c616e 00 0000  # IFLA_INFO_KIND "vxlan\\0", 2 pad bytes
        3400 0280            # IFLA_INFO_DATA | NLA_F_NESTED, 52 bytes
        0800 0100 2a000000   #   IFLA_VXLAN_ID 42
        0800 0200 c0000202   #   IFLA_VXLAN_GROUP 192.0.2.2 (a unicast remote)
        0800 0400 c0000201   #   IFLA_VXLAN_LOCAL 192.0.2.1
        0500 0700 00 000000  #   IFLA_VXLAN_LEARNING off
        0800 0a00 03e8 07d0  #   IFLA_VXLAN_PORT_RANGE 1000-2000, big-endian
        0600 0f00 12b5 0000  #   IFLA_VXLAN_PORT 4789, big-endian
     """)),
    ("vxlan v6 remote", LinkInfo(kind="vxlan", data=VxlanInfo(id=1, group6=ip6("2001:db8::2"))),
     H("""
        0a00 0100 7678 6c616e 00 0000  # IFLA_INFO_KIND "vxlan\\0"
        2000 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0800 0100 01000000   #   IFLA_VXLAN_ID 1
        1400 1000 20010db8000000000000000000000002  # IFLA_VXLAN_GROUP6 2001:db8::2
     """)),
    ("macvlan mode bridge", LinkInfo(kind="macvlan", data=MacvlanInfo(mode=4)),
     H("""
        0c00 0100 6d616376 6c616e00  # IFLA_INFO_KIND "macvlan\\0"
        0c00 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0800 0100 04000000   #   IFLA_MACVLAN_MODE bridge
     """)),
]


@pytest.mark.parametrize("name,obj,wire", CASES, ids=[c[0] for c in CASES])
def test_kind_data_both_ways(name, obj, wire):
    assert obj.encode().hex(" ") == wire.hex(" ")
    assert LinkInfo.decode(wire) == obj
    link = LinkMessage(ifname="x", linkinfo=obj)
    assert LinkMessage.decode(link.encode()) == link


def test_kind_data_decoders_survive_fuzzing():
    import random

    from tunkit.errors import DecodeError

    rng = random.Random("tunkit-linkkinds")
    seeds = [w for _, _, w in CASES]
    for _ in range(400):
        b = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        data = bytes(b[: rng.randrange(len(b) + 1)])
        try:
            LinkInfo.decode(data)
        except DecodeError:
            pass


# vlan, vrf and bond: this kernel has none of the three drivers, so their codecs are checked from
# tables both ways here, and the kernel's refusal of the request below.
ABSENT_CASES = [
    ("vlan id 5, 802.1Q, reorder_hdr", LinkInfo(kind="vlan", data=VlanInfo(id=5, flags=(1, 1), protocol=0x8100)),
     H("""
        0900 0100 766c616e 00 000000  # IFLA_INFO_KIND "vlan\\0"
        2000 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0600 0100 0500 0000  #   IFLA_VLAN_ID 5
        0c00 0200 01000000 01000000  # IFLA_VLAN_FLAGS: flags REORDER_HDR, mask REORDER_HDR
        0600 0500 8100 0000  #   IFLA_VLAN_PROTOCOL 0x8100, big-endian
     """)),
    ("vrf table 10", LinkInfo(kind="vrf", data=VrfInfo(table=10)),
     H("""
        0800 0100 76726600   # IFLA_INFO_KIND "vrf\\0"
        0c00 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0800 0100 0a000000   #   IFLA_VRF_TABLE 10
     """)),
    ("bond 802.3ad, miimon 100", LinkInfo(kind="bond", data=BondInfo(mode=4, miimon=100)),
     H("""
        0900 0100 626f6e64 00 000000  # IFLA_INFO_KIND "bond\\0"
        1400 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0500 0100 04 000000  #   IFLA_BOND_MODE 802.3ad
        0800 0300 64000000   #   IFLA_BOND_MIIMON 100
     """)),
]


ABSENT_CASES += [
    ("ipvlan mode l2 private", LinkInfo(kind="ipvlan", data=IpvlanInfo(mode=0, flags=1)),
     H("""
        0b00 0100 6970766c 616e0000  # IFLA_INFO_KIND "ipvlan\\0"
        1400 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0600 0100 0000 0000  #   IFLA_IPVLAN_MODE l2 (u16)
        0600 0200 0100 0000  #   IFLA_IPVLAN_FLAGS IPVLAN_F_PRIVATE (u16)
     """)),
    ("ipvlan mode l3s", LinkInfo(kind="ipvlan", data=IpvlanInfo(mode=2)),
     H("""
        0b00 0100 6970766c 616e0000  # IFLA_INFO_KIND "ipvlan\\0"
        0c00 0280            # IFLA_INFO_DATA | NLA_F_NESTED
        0600 0100 0200 0000  #   IFLA_IPVLAN_MODE l3s
     """)),
    ("wireguard", LinkInfo(kind="wireguard"),
     H("""
        0e00 0100 77697265 67756172 64000000  # IFLA_INFO_KIND "wireguard\\0"; no IFLA_INFO_DATA
     """)),
]

# What iproute2 6.x sent for `ip link add i0 link tk0 type ipvlan mode l2 private` and `ip link add w0 type
# wireguard` on this machine (strace -xx of its sendmsg; IFLA_LINKINFO only): the kind without its NUL and
# IFLA_INFO_DATA without NLA_F_NESTED.  tunkit decodes them to the objects above.
IPROUTE2_LINKINFO = [
    (H("0a00 0100 6970766c 616e0000  1400 0200  0600 0100 0000 0000  0600 0200 0100 0000"),
     LinkInfo(kind="ipvlan", data=IpvlanInfo(mode=0, flags=1))),
    (H("0d00 0100 77697265 67756172 64000000"), LinkInfo(kind="wireguard")),
]


@pytest.mark.parametrize("wire,obj", IPROUTE2_LINKINFO, ids=["ipvlan", "wireguard"])
def test_iproute2_bytes_for_absent_kinds_decode(wire, obj):
    assert LinkInfo.decode(wire) == obj


@pytest.mark.parametrize("data,want", [
    (IpvlanInfo(mode=0, flags=1), {"mode": "l2", "private": True}),
    (IpvlanInfo(mode=1, flags=2), {"mode": "l3", "vepa": True}),
    (IpvlanInfo(mode=2, flags=0), {"mode": "l3s", "bridge": True}),
    (IpvlanInfo(mode=7), {"mode": "unknown"}),
    (IpvlanInfo(), {}),
])
def test_ipvlan_info_data_json_as_iplink_ipvlan_prints_it(data, want):
    from tunkit.cli.linkkinds import info_data_json

    assert info_data_json(LinkInfo(kind="ipvlan", data=data), {}) == want


@pytest.mark.parametrize("name,obj,wire", ABSENT_CASES, ids=[c[0] for c in ABSENT_CASES])
def test_absent_kinds_codec_both_ways(name, obj, wire):
    assert obj.encode().hex(" ") == wire.hex(" ")
    assert LinkInfo.decode(wire) == obj


@pytest.mark.parametrize("argv", [
    ["link", "add", "v0", "link", "tk0", "type", "vlan", "id", "5"],
    ["link", "add", "r0", "type", "vrf", "table", "10"],
    ["link", "add", "b0", "type", "bond", "mode", "802.3ad"],
    ["link", "add", "i0", "link", "tk0", "type", "ipvlan", "mode", "l2", "private"],
    ["link", "add", "w0", "type", "wireguard"],
])
def test_absent_kinds_are_refused_by_this_kernel_with_its_message(netns, argv):
    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    kind = argv[argv.index("type") + 1]
    ip_ok = __import__("subprocess").run(["ip", "link", "add", "x0", *(["link", "tk0"] if kind in ("vlan", "ipvlan") else []),
                                          "type", kind, *argv[argv.index("type") + 2:]], capture_output=True).returncode == 0
    if ip_ok:  # a kernel with the driver: tunkit must succeed too, and ip must see the same kind
        support.ip("link", "del", "x0")
        assert run_cli(*argv)[0] == 0
        assert support.ip_json("-d", "link", "show", argv[2])[0]["linkinfo"]["info_kind"] == kind
    else:
        code, _, err = run_cli(*argv)
        assert code == 2 and "link add" in err and ("not supported" in err.lower() or "unknown device type" in err.lower()), err


@pytest.mark.parametrize("make,text", [
    (lambda rt: rt.add_ipvlan("i0", "tk0", mode="l2", flags="private"), "link add i0 link tk0 type ipvlan"),
    (lambda rt: rt.add_wireguard("w0"), "link add w0 type wireguard"),
])
def test_ipvlan_and_wireguard_api_refusal_names_the_link_and_the_kernels_reason(netns, make, text):
    """This kernel has neither driver (`ip link add` says "Unknown device type"): the API's error names the
    request and carries the kernel's ext-ack text; a kernel with the driver must show the link to ip."""
    import subprocess

    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    kind = text.split()[-1]
    probe = subprocess.run(["ip", "link", "add", "x0", *(["link", "tk0"] if kind == "ipvlan" else []), "type", kind],
                           capture_output=True, text=True)
    with Rtnl() as rt:
        if probe.returncode == 0:
            support.ip("link", "del", "x0")
            make(rt)
            assert support.ip_json("-d", "link", "show", text.split()[2])[0]["linkinfo"]["info_kind"] == kind
            return
        assert "Unknown device type" in probe.stderr
        with pytest.raises(NetlinkError) as ei:
            make(rt)
        assert ei.value.errno == errno.EOPNOTSUPP and str(ei.value) == f"{text}: Operation not supported (Unknown device type)"


@pytest.mark.parametrize("argv,message", [
    (["link", "add", "v0", "link", "tk0", "type", "vlan", "id", "4096"], "id '4096': want 0..4095"),
    (["link", "add", "v0", "type", "vlan", "id", "5"], "needs 'link DEV'"),
    (["link", "add", "r0", "type", "vrf"], "needs 'table T'"),
    (["link", "add", "b0", "type", "bond", "mode", "fastest"], "mode 'fastest'"),
    (["link", "add", "i0", "link", "tk0", "type", "ipvlan", "mode", "l4"], "mode 'l4': want one of l2, l3, l3s"),
    (["link", "add", "i0", "type", "ipvlan", "mode", "l2"], "needs 'link DEV'"),
    (["link", "add", "w0", "type", "wireguard", "id", "1"], "unknown argument 'id' for type wireguard"),
])
def test_absent_kind_usage_errors_exit_1(netns, argv, message):
    support.ip("link", "add", "tk0", "type", "veth", "peer", "name", "tk1")
    code, _, err = run_cli(*argv)
    assert code == 1 and message in err, err
