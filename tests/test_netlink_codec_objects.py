"""Rule, neighbour and nexthop codec tables, checked both ways: object -> bytes and bytes -> object."""

from __future__ import annotations

import pytest

from support_netlink import H, ip4, ip6, net
from tunkit._uapi import AF_INET, AF_INET6, AF_UNSPEC
from tunkit.errors import DecodeError
from tunkit.netlink.neigh import NdaCacheInfo, NeighMessage
from tunkit.netlink.nexthop import NexthopGroupMember, NexthopMessage, ResilientGroup
from tunkit.netlink.rtnl import MESSAGE_TYPES, RouteCacheInfo, RouteMessage
from tunkit.netlink.rule import RuleMessage

# (name, object, wire bytes) -- the same table drives encode and decode.
CASES = [
    (
        "rule v4: from a prefix, table >= 256, fwmark/mask, iif, uid and port ranges, ipproto, proto static",
        RuleMessage(family=AF_INET, src=net("192.0.2.0/24"), table=1000, action=1, priority=100, fwmark=16, fwmask=255,
                    iifname="tk0", uid_range=(1000, 2000), sport_range=(1000, 2000), ip_proto=6, protocol=4),
        H("""
            02 00 18 00          # fib_rule_hdr: family AF_INET, dst_len 0, src_len 24, tos 0
            00 00 00 01          # table UNSPEC (1000 goes in FRA_TABLE), res1, res2, action FR_ACT_TO_TBL
            00000000             # flags
            0800 0f00 e8030000   # FRA_TABLE 1000
            0800 0200 c0000200   # FRA_SRC 192.0.2.0
            0800 0300 746b3000   # FRA_IIFNAME "tk0\\0"
            0800 0600 64000000   # FRA_PRIORITY 100 (ip's "pref")
            0800 0a00 10000000   # FRA_FWMARK 0x10
            0800 1000 ff000000   # FRA_FWMASK 0xff
            0c00 1400 e8030000 d0070000  # FRA_UID_RANGE 1000-2000
            0500 1500 04 000000  # FRA_PROTOCOL static, 3 pad bytes
            0500 1600 06 000000  # FRA_IP_PROTO tcp
            0800 1700 e803 d007  # FRA_SPORT_RANGE 1000-2000 (u16 each)
        """),
    ),
    (
        "rule v6: not to a prefix, goto",
        RuleMessage(family=AF_INET6, dst=net("2001:db8:1::/48"), action=2, goto=32766, priority=5, flags=2),
        H("""
            0a 30 00 00          # fib_rule_hdr: family AF_INET6, dst_len 48, src_len 0, tos 0
            00 00 00 02          # table UNSPEC, res1, res2, action FR_ACT_GOTO
            02000000             # flags FIB_RULE_INVERT ("not")
            1400 0100 20010db8000100000000000000000000  # FRA_DST 2001:db8:1::
            0800 0400 fe7f0000   # FRA_GOTO 32766
            0800 0600 05000000   # FRA_PRIORITY 5
        """),
    ),
    (
        "rule v4: table below 256 rides in the header only",
        RuleMessage(family=AF_INET, table=200, action=1, priority=7, suppress_prefixlen=0),
        H("""
            02 00 00 00          # fib_rule_hdr: family AF_INET, no prefixes, tos 0
            c8 00 00 01          # table 200, res1, res2, action FR_ACT_TO_TBL
            00000000             # flags
            0800 0600 07000000   # FRA_PRIORITY 7
            0800 0e00 00000000   # FRA_SUPPRESS_PREFIXLEN 0 (sent: absent is None, not 0)
        """),
    ),
    (
        "neighbour v4: permanent, lladdr, cacheinfo, probes",
        NeighMessage(family=AF_INET, index=3, state=0x80, type=1, dst=ip4("192.0.2.2"),
                     lladdr=bytes.fromhex("020000000002"), cacheinfo=NdaCacheInfo(1, 2, 3, 4), probes=0),
        H("""
            02 00 0000           # ndmsg: family AF_INET, pad1, pad2
            03000000             # ndm_ifindex 3
            8000 00 01           # ndm_state NUD_PERMANENT, ndm_flags 0, ndm_type RTN_UNICAST
            0800 0100 c0000202   # NDA_DST 192.0.2.2
            0a00 0200 020000000002 0000  # NDA_LLADDR, 2 pad bytes
            1400 0300 01000000 02000000 03000000 04000000  # NDA_CACHEINFO confirmed, used, updated, refcnt
            0800 0400 00000000   # NDA_PROBES 0
        """),
    ),
    (
        "neighbour v6: proxy entry, router",
        NeighMessage(family=AF_INET6, index=4, state=0, flags=0x88, dst=ip6("2001:db8::9")),
        H("""
            0a 00 0000           # ndmsg: family AF_INET6
            04000000             # ndm_ifindex 4
            0000 88 00           # ndm_state NUD_NONE, ndm_flags NTF_PROXY|NTF_ROUTER, ndm_type 0
            1400 0100 20010db8000000000000000000000009  # NDA_DST 2001:db8::9
        """),
    ),
    (
        "nexthop group with weights",
        NexthopMessage(family=AF_UNSPEC, id=10, group=(NexthopGroupMember(1, 3), NexthopGroupMember(2)), group_type=0),
        H("""
            00 00 00 00          # nhmsg: family AF_UNSPEC, scope, protocol, resvd
            00000000             # nh_flags
            0800 0100 0a000000   # NHA_ID 10
            1400 0200            # NHA_GROUP: two struct nexthop_grp
            01000000 02 00 0000  #   id 1, weight 3 (sent as 2)
            02000000 00 00 0000  #   id 2, weight 1
            0600 0300 0000 0000  # NHA_GROUP_TYPE mpath, 2 pad bytes
        """),
    ),
    (
        "nexthop v4: gateway, device, onlink; resilient group arguments",
        NexthopMessage(family=AF_INET, scope=253, flags=4, id=1, oif=3, gateway=ip4("192.0.2.2"),
                       res_group=ResilientGroup(buckets=8, idle_timer=12000)),
        H("""
            02 fd 00 00          # nhmsg: family AF_INET, scope link, protocol unspec
            04000000             # nh_flags RTNH_F_ONLINK
            0800 0100 01000000   # NHA_ID 1
            0800 0500 03000000   # NHA_OIF 3
            0800 0600 c0000202   # NHA_GATEWAY 192.0.2.2
            1400 0c80            # NHA_RES_GROUP | NLA_F_NESTED
            0600 0100 0800 0000  #   NHA_RES_GROUP_BUCKETS 8
            0800 0200 e02e0000   #   NHA_RES_GROUP_IDLE_TIMER 12000 ticks (120 s)
        """),
    ),
    (
        "route v4 with a nexthop id, tos, realms",
        RouteMessage(family=AF_INET, dst=net("198.51.100.0/24"), tos=0x10, table=254, protocol=3, type=1, nhid=10,
                     realm=(3 << 16) | 4),
        H("""
            02 18 00 10          # rtmsg: family AF_INET, dst_len 24, src_len 0, tos 0x10
            fe 03 00 01          # table main, proto boot, scope universe, type unicast
            00000000             # rtm_flags
            0800 0100 c6336400   # RTA_DST 198.51.100.0
            0800 1e00 0a000000   # RTA_NH_ID 10
            0800 0b00 04000300   # RTA_FLOW realms 3/4
        """),
    ),
    (
        "route v6 as dumped: RTA_CACHEINFO with an expiry",
        RouteMessage(family=AF_INET6, dst=net("2001:db8:5::/48"), table=254, protocol=3, type=1, priority=1024,
                     cacheinfo=RouteCacheInfo(expires=29900)),
        H("""
            0a 30 00 00          # rtmsg: family AF_INET6, dst_len 48
            fe 03 00 01          # table main, proto boot, scope universe, type unicast
            00000000             # rtm_flags
            1400 0100 20010db8000500000000000000000000  # RTA_DST 2001:db8:5::
            0800 0600 00040000   # RTA_PRIORITY 1024
            2400 0c00            # RTA_CACHEINFO, struct rta_cacheinfo
            00000000 00000000    #   clntref, lastuse
            cc740000             #   expires 29900 ticks (299 s)
            00000000 00000000 00000000 00000000 00000000  # error, used, id, ts, tsage
        """),
    ),
]


@pytest.mark.parametrize("name,obj,wire", CASES, ids=[c[0] for c in CASES])
def test_encode(name, obj, wire):
    assert obj.encode().hex(" ") == wire.hex(" ")


@pytest.mark.parametrize("name,obj,wire", CASES, ids=[c[0] for c in CASES])
def test_decode(name, obj, wire):
    got = type(obj).decode(wire)
    assert got == obj
    assert type(obj).decode(got.encode()) == got


def test_kernel_rule_reply_with_compat_table_reads_fra_table():
    """The kernel sends RT_TABLE_COMPAT (252) in the header and the real id in FRA_TABLE."""
    wire = H("02 00 00 00 fc 00 00 01 00000000  # header table COMPAT") + H("0800 0f00 e8030000  # FRA_TABLE 1000")
    assert RuleMessage.decode(wire).table == 1000


def test_absent_is_none_and_unknown_is_kept():
    r = RuleMessage.decode(H("02 00 00 00 00 00 00 01 00000000") + H("0800 6300 01020304  # type 99: unknown"))
    assert (r.table, r.priority, r.src, r.fwmark) == (None, None, None, None)
    assert r.unknown == ((99, bytes.fromhex("01020304")),) and RuleMessage.decode(r.encode()) == r
    n = NeighMessage.decode(H("02 00 0000 03000000 0200 00 01"))
    assert (n.dst, n.lladdr, n.cacheinfo) == (None, None, None)


def test_registered_for_dispatch():
    assert MESSAGE_TYPES[32] is RuleMessage and MESSAGE_TYPES[28] is NeighMessage and MESSAGE_TYPES[104] is NexthopMessage


@pytest.mark.parametrize("obj,err", [
    (NexthopMessage(id=1, group=(NexthopGroupMember(1, 0),)), "weight 0 is out of range 1..256"),
    (NexthopMessage(id=1, group=(NexthopGroupMember(1, 257),)), "weight 257 is out of range 1..256"),
    (RuleMessage(family=AF_INET, priority=-1), r"FRA_PRIORITY: -1 is not a u32"),
    (RuleMessage(family=AF_INET, sport_range=(1, 70000)), "FRA_SPORT_RANGE"),
    (NeighMessage(family=AF_INET, state=0x10000), "ndmsg: bad header field"),
])
def test_encode_errors_name_the_field(obj, err):
    with pytest.raises(ValueError, match=err):
        obj.encode()


@pytest.mark.parametrize("cls,wire,err", [
    (NexthopMessage, H("00 00 00 00 00000000") + H("0900 0200 0100000002"), "NHA_GROUP: length 5"),
    (NeighMessage, H("02 00 0000 03000000 8000 00 01") + H("0600 0100 c000 0000"), "NDA_DST: want 4 bytes"),
    (RuleMessage, H("02 00 00 00 00 00 00 01 00000000") + H("0800 1400 01000000"), "FRA_UID_RANGE: want 8 bytes"),
    (RuleMessage, H("02 00 21 00 00 00 00 01 00000000") + H("0800 0200 c0000200"), "FRA_SRC: bad prefix length 33"),
])
def test_decode_errors_name_the_attribute(cls, wire, err):
    with pytest.raises(DecodeError, match=err):
        cls.decode(wire)
