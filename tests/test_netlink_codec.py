"""Netlink codec tables, checked both ways: object -> bytes and bytes -> object."""

from __future__ import annotations

import struct

import pytest

from support_netlink import H, ip4, ip6, net
from tunkit._uapi import AF_INET, AF_INET6, IFA, RTA, RTAX, RTM, NlmFlag, NlmsgType
from tunkit.errors import DecodeError
from tunkit.netlink.attr import AttrDecoder, AttrEncoder, nla_align
from tunkit.netlink.message import encode_message, nlmsg_align, parse_ack, parse_messages, validate
from tunkit.netlink.rtnl import (
    MESSAGE_TYPES,
    VERB_FLAGS,
    AddrCacheInfo,
    AddressMessage,
    LinkInfo,
    LinkMessage,
    LinkStats64,
    NextHop,
    RouteMessage,
    RouteMetrics,
    TunInfo,
    VethInfo,
)

# (name, object, wire bytes) -- the same table drives encode and decode.
CASES = [
    (
        "route v4: gateway, metric, table >= 256, mtu lock + advmss",
        RouteMessage(family=AF_INET, dst=net("198.51.100.0/24"), table=1000, protocol=4, type=1, oif=3,
                     gateway=ip4("192.0.2.2"), priority=5, metrics=RouteMetrics(lock=1 << RTAX.MTU, mtu=1400, advmss=1360)),
        H("""
            02 18 00 00          # rtmsg: family AF_INET, dst_len 24, src_len 0, tos 0
            00 04 00 01          # table UNSPEC (id >= 256 goes in RTA_TABLE), proto static, scope universe, type unicast
            00000000             # rtm_flags
            0800 0f00 e8030000   # RTA_TABLE 1000
            0800 0100 c6336400   # RTA_DST 198.51.100.0
            0800 0400 03000000   # RTA_OIF 3
            0800 0500 c0000202   # RTA_GATEWAY 192.0.2.2
            0800 0600 05000000   # RTA_PRIORITY 5 (ip's "metric")
            1c00 0880            # RTA_METRICS | NLA_F_NESTED, 28 bytes
            0800 0100 04000000   #   RTAX_LOCK: bit RTAX_MTU
            0800 0200 78050000   #   RTAX_MTU 1400
            0800 0800 50050000   #   RTAX_ADVMSS 1360
        """),
    ),
    (
        "route v6: multipath with weights, pref high, main table",
        RouteMessage(family=AF_INET6, dst=net("2001:db8:2::/48"), table=254, protocol=3, type=1, priority=1024, pref=1,
                     multipath=(NextHop(gateway=ip6("2001:db8::3"), oif=3, weight=2),
                                NextHop(gateway=ip6("2001:db8::4"), oif=4, weight=5, flags=4))),
        H("""
            0a 30 00 00          # rtmsg: family AF_INET6, dst_len 48, src_len 0, tos 0
            fe 03 00 01          # table main (fits rtm_table: no RTA_TABLE), proto boot, scope universe, type unicast
            00000000             # rtm_flags
            1400 0100 20010db8000200000000000000000000  # RTA_DST 2001:db8:2::
            0800 0600 00040000   # RTA_PRIORITY 1024
            3c00 0900            # RTA_MULTIPATH, 60 bytes
            1c00 00 01 03000000  #   rtnexthop: len 28, flags 0, hops 1 (weight 2), ifindex 3
            1400 0500 20010db8000000000000000000000003  # RTA_GATEWAY 2001:db8::3
            1c00 04 04 04000000  #   rtnexthop: len 28, flags ONLINK, hops 4 (weight 5), ifindex 4
            1400 0500 20010db8000000000000000000000004  # RTA_GATEWAY 2001:db8::4
            0500 1400 01 000000  # RTA_PREF high, 3 pad bytes
        """),
    ),
    (
        "route v4: default route, metric 0 and table 0 are sent, not dropped",
        RouteMessage(family=AF_INET, dst=None, table=0, protocol=3, type=1, gateway=ip4("192.0.2.1"), priority=0),
        H("""
            02 00 00 00          # rtmsg: family AF_INET, dst_len 0 (default), src_len 0, tos 0
            00 03 00 01          # table 0 in rtm_table means "unspecified", so
            00000000             # rtm_flags
            0800 0f00 00000000   # RTA_TABLE 0 says it was given
            0800 0500 c0000201   # RTA_GATEWAY 192.0.2.1
            0800 0600 00000000   # RTA_PRIORITY 0
        """),
    ),
    (
        "route v4 via an IPv6 nexthop (RTA_VIA), source prefix",
        RouteMessage(family=AF_INET, dst=net("198.51.100.0/24"), src=net("192.0.2.0/25"), table=254, protocol=3,
                     type=1, oif=3, via=ip6("2001:db8::1")),
        H("""
            02 18 19 00          # rtmsg: family AF_INET, dst_len 24, src_len 25, tos 0
            fe 03 00 01          # table main, proto boot, scope universe, type unicast
            00000000             # rtm_flags
            0800 0100 c6336400   # RTA_DST 198.51.100.0
            0800 0200 c0000200   # RTA_SRC 192.0.2.0
            0800 0400 03000000   # RTA_OIF 3
            1600 1200 0a00       # RTA_VIA, 22 bytes: rtvia_family AF_INET6
            20010db8000000000000000000000001 0000  # 2001:db8::1, 2 pad bytes
        """),
    ),
    (
        "address v4: local, label, cacheinfo, IFA_FLAGS",
        AddressMessage(family=AF_INET, prefixlen=24, flags=0x80, scope=0, index=3, address=ip4("192.0.2.1"),
                       local=ip4("192.0.2.1"), label="tk0", cacheinfo=AddrCacheInfo(0xFFFFFFFF, 0xFFFFFFFF, 100, 200),
                       extended_flags=0x80),
        H("""
            02 18 80 00          # ifaddrmsg: family AF_INET, prefixlen 24, flags PERMANENT, scope universe
            03000000             # ifa_index 3
            0800 0100 c0000201   # IFA_ADDRESS 192.0.2.1
            0800 0200 c0000201   # IFA_LOCAL 192.0.2.1
            0800 0300 746b3000   # IFA_LABEL "tk0\\0"
            1400 0600            # IFA_CACHEINFO, 20 bytes
            ffffffff ffffffff    #   preferred, valid: forever
            64000000 c8000000    #   cstamp 100, tstamp 200
            0800 0800 80000000   # IFA_FLAGS PERMANENT
        """),
    ),
    (
        "address v6: nodad, prefix-route metric, proto",
        AddressMessage(family=AF_INET6, prefixlen=64, flags=0x02, index=3, address=ip6("2001:db8::1"), rt_priority=100, proto=2),
        H("""
            0a 40 02 00          # ifaddrmsg: family AF_INET6, prefixlen 64, flags NODAD, scope universe
            03000000             # ifa_index 3
            1400 0100 20010db8000000000000000000000001  # IFA_ADDRESS 2001:db8::1
            0800 0900 64000000   # IFA_RT_PRIORITY 100
            0500 0b00 02 000000  # IFA_PROTO 2, 3 pad bytes
        """),
    ),
    (
        "link set: up, mtu, txqlen, addr-gen-mode none",
        LinkMessage(index=3, flags=1, change=1, mtu=1400, txqlen=500, addr_gen_mode=1),
        H("""
            00 00 0000           # ifinfomsg: family, pad, type
            03000000             # ifi_index 3
            01000000 01000000    # ifi_flags UP, ifi_change UP
            0800 0400 78050000   # IFLA_MTU 1400
            0800 0d00 f4010000   # IFLA_TXQLEN 500
            1000 1a80            # IFLA_AF_SPEC | NLA_F_NESTED
            0c00 0a80            #   AF_INET6 | NLA_F_NESTED
            0500 0800 01 000000  #     IFLA_INET6_ADDR_GEN_MODE none, 3 pad bytes
        """),
    ),
    (
        "link add veth with its peer",
        LinkMessage(ifname="tk0", linkinfo=LinkInfo(kind="veth", data=VethInfo(peer=LinkMessage(ifname="tk1")))),
        H("""
            00 00 0000 00000000 00000000 00000000  # ifinfomsg: all zero (the kernel picks the index)
            0800 0300 746b3000   # IFLA_IFNAME "tk0\\0"
            3000 1280            # IFLA_LINKINFO | NLA_F_NESTED, 48 bytes
            0900 0100 7665746800 000000  # IFLA_INFO_KIND "veth\\0", 3 pad bytes
            2000 0280            #   IFLA_INFO_DATA | NLA_F_NESTED, 32 bytes
            1c00 0100            #     VETH_INFO_PEER, 28 bytes: ifinfomsg + attributes
            00 00 0000 00000000 00000000 00000000  # peer ifinfomsg
            0800 0300 746b3100   #       IFLA_IFNAME "tk1\\0"
        """),
    ),
    (
        "link tun: kind data and stats64",
        LinkMessage(type=0xFFFE, index=5, flags=0x1091, ifname="tun0", mtu=1500,
                    linkinfo=LinkInfo(kind="tun", data=TunInfo(type=1, pi=False, vnet_hdr=True)),
                    stats64=LinkStats64(rx_packets=1, tx_packets=2, rx_bytes=3, tx_bytes=4)),
        H("""
            00 00 feff           # ifinfomsg: family, pad, type ARPHRD_NONE
            05000000             # ifi_index 5
            91100000 00000000    # ifi_flags UP|POINTOPOINT|NOARP|MULTICAST, ifi_change 0
            0900 0300 74756e3000 000000  # IFLA_IFNAME "tun0\\0", 3 pad bytes
            0800 0400 dc050000   # IFLA_MTU 1500
            2800 1280            # IFLA_LINKINFO | NLA_F_NESTED, 40 bytes
            0800 0100 74756e00   #   IFLA_INFO_KIND "tun\\0"
            1c00 0280            #   IFLA_INFO_DATA | NLA_F_NESTED, 28 bytes
            0500 0300 01 000000  #     IFLA_TUN_TYPE IFF_TUN
            0500 0400 00 000000  #     IFLA_TUN_PI off
            0500 0500 01 000000  #     IFLA_TUN_VNET_HDR on
            2400 1700            # IFLA_STATS64, 36 bytes (a kernel may send fewer fields than tunkit knows)
            0100000000000000 0200000000000000  # rx_packets 1, tx_packets 2
            0300000000000000 0400000000000000  # rx_bytes 3, tx_bytes 4
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


def test_unknown_attributes_are_kept_and_re_emitted():
    wire = CASES[2][2] + H("0800 1900 e8030000  # RTA_UID 1000 (modelled)") + H("0800 6300 01020304  # type 99: unknown")
    r = RouteMessage.decode(wire)
    assert r.uid == 1000 and r.unknown == ((99, bytes.fromhex("01020304")),)
    assert RouteMessage.decode(r.encode()) == r


def test_absent_is_none_not_zero():
    r = RouteMessage.decode(H("02 18 00 00 fe 03 00 01 00000000  # rtmsg only") + H("0800 0100 c6336400  # RTA_DST"))
    assert (r.priority, r.oif, r.gateway, r.metrics, r.multipath, r.table) == (None, None, None, None, None, 254)
    bare = RouteMessage.decode(H("02 00 00 00 00 00 00 00 00000000  # rtmsg, table UNSPEC, nothing else"))
    assert bare.table is None and bare.dst is None


def test_family_defaults_from_addresses():
    assert RouteMessage(dst=net("2001:db8::/32")).family == AF_INET6
    assert AddressMessage(local=ip4("192.0.2.1")).family == AF_INET


# -- nlmsghdr, acks ----------------------------------------------------------
def test_message_framing_both_ways():
    wire = H("""
        15000000     # nlmsg_len 21 (16 + 5: padding is not counted)
        1800 0506    # type RTM_NEWROUTE, flags REQUEST|ACK|CREATE|EXCL
        07000000     # seq 7
        39300000     # pid 12345
        0102030405 000000  # payload, 3 pad bytes
    """)
    flags = VERB_FLAGS["add"]
    assert flags == NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.EXCL
    assert encode_message(RTM.NEWROUTE, flags, 7, 12345, bytes.fromhex("0102030405")) == wire
    (m,) = parse_messages(wire + b"")
    assert (m.type, m.flags, m.seq, m.pid, m.payload.tobytes()) == (24, 0x605, 7, 12345, bytes.fromhex("0102030405"))
    validate(m, 7, 12345)
    with pytest.raises(DecodeError, match="sequence 7 does not match request 8"):
        validate(m, 8, 12345)
    with pytest.raises(DecodeError, match="port id 12345"):
        validate(m, 7, 1)


def test_error_ack_with_extended_ack():
    wire = H("""
        4c000000 0200 0003 09000000 e8030000   # nlmsghdr: 76 bytes, NLMSG_ERROR, CAPPED|ACK_TLVS, seq 9, pid 1000
        efffffff                               # error -17 (EEXIST)
        24000000 1800 0506 09000000 e8030000   # the request's header (payload not echoed: capped)
        2000 0100                              # NLMSGERR_ATTR_MSG, 32 bytes
        4e657874686f702068617320696e76616c69642067617465776179 00  # "Nexthop has invalid gateway\\0"
        0800 0200 2c000000                     # NLMSGERR_ATTR_OFFS 44
    """)
    (m,) = parse_messages(wire)
    a = parse_ack(m)
    assert a == (17, 9, RTM.NEWROUTE, "Nexthop has invalid gateway", 44)


def test_plain_ack_and_done():
    ok = H("24000000 0200 0001 05000000 00000000  # NLMSG_ERROR, CAPPED, seq 5") + H("00000000") + bytes(16)
    assert parse_ack(next(parse_messages(ok))) == (0, 0, 0, None, None)
    done = H("14000000 0300 0200 05000000 00000000  # NLMSG_DONE, MULTI") + H("f9ffffff  # -7: E2BIG")
    assert parse_ack(next(parse_messages(done))).errno == 7
    assert parse_ack(next(parse_messages(H("10000000 0300 0200 05000000 00000000")))).errno == 0


def test_alignment_helpers_match_the_kernel_macros():
    assert [nlmsg_align(n) for n in (0, 1, 4, 5, 16, 17)] == [0, 4, 4, 8, 16, 20]
    assert [nla_align(n) for n in (3, 4, 5, 8)] == [4, 4, 8, 8]


# -- attributes ------------------------------------------------------------
def test_encoder_keeps_the_first_error_and_raises_at_finish():
    enc = AttrEncoder()
    enc.u32(RTA.OIF, 3)
    enc.u32(RTA.PRIORITY, -1)
    enc.str(IFA.LABEL, "a\0b")  # a second error is not reported
    with pytest.raises(ValueError, match=r"^RTA_PRIORITY: -1 is not a u32"):
        enc.finish()


def test_encoder_typed_methods():
    enc = AttrEncoder()
    enc.u8(1, 0xAB)
    enc.u16(2, 0x1234)
    enc.u64(3, 1)
    enc.s32(4, -2)
    enc.flag(5)
    enc.ip(6, "2001:db8::1")
    enc.nested(7, lambda e: e.str(1, "x"))
    assert enc.finish() == H("""
        0500 0100 ab 000000          # u8, 3 pad bytes
        0600 0200 3412 0000          # u16, 2 pad bytes
        0c00 0300 0100000000000000   # u64
        0800 0400 feffffff           # s32 -2
        0400 0500                    # flag: header only
        1400 0600 20010db8000000000000000000000001  # ip
        0c00 0780 0600 0100 7800 0000  # nested | NLA_F_NESTED: string "x\\0", 2 pad bytes
    """)
    attrs = list(AttrDecoder(enc.finish()))
    assert [a.type for a in attrs] == [1, 2, 3, 4, 5, 6, 7]
    assert (attrs[0].u8(), attrs[1].u16(), attrs[2].u64(), attrs[3].s32(), attrs[4].flag()) == (0xAB, 0x1234, 1, -2, True)
    assert str(attrs[5].ip(AF_INET6)) == "2001:db8::1"
    assert attrs[6].nested_flag and [a.str() for a in attrs[6].nested()] == ["x"]


@pytest.mark.parametrize(
    "name,wire,err",
    [
        ("zero-length attribute", H("0000 0100"), "bad length 0"),
        ("length below the header", H("0300 0100 00"), "bad length 3"),
        ("length past the end", H("0c00 0100 00000000"), "bad length 12"),
    ],
)
def test_attribute_decoder_rejects_malformed_lengths(name, wire, err):
    with pytest.raises(DecodeError, match=err):
        list(AttrDecoder(wire))


def test_typed_getters_check_length_exactly_and_name_the_attribute():
    (a,) = AttrDecoder(H("0600 0600 0100 0000"), RTA)  # RTA_PRIORITY with a 2-byte payload
    with pytest.raises(DecodeError, match="RTA_PRIORITY: want 4 bytes, got 2"):
        a.u32()
    bad = H("02 18 00 00 fe 03 00 01 00000000") + H("0600 0600 0100 0000  # RTA_PRIORITY, 2 bytes")
    with pytest.raises(DecodeError, match="RTA_PRIORITY: want 4 bytes, got 2"):
        RouteMessage.decode(bad)
    wrong_family = H("02 18 00 00 fe 03 00 01 00000000") + H("1400 0100") + bytes(16)
    with pytest.raises(DecodeError, match="RTA_DST: want 4 bytes for family 2, got 16"):
        RouteMessage.decode(wrong_family)


def test_message_framing_rejects_truncation():
    with pytest.raises(DecodeError, match="truncated header"):
        list(parse_messages(bytes(10)))
    with pytest.raises(DecodeError, match="bad nlmsg_len 8"):
        list(parse_messages(struct.pack("=IHHII", 8, 0, 0, 0, 0)))
    with pytest.raises(DecodeError, match="bad nlmsg_len 64"):
        list(parse_messages(struct.pack("=IHHII", 64, 0, 0, 0, 0)))


def test_message_types_and_verbs():
    assert MESSAGE_TYPES[RTM.NEWROUTE] is RouteMessage and MESSAGE_TYPES[RTM.DELADDR] is AddressMessage
    assert VERB_FLAGS["replace"] == NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.REPLACE
    assert VERB_FLAGS["append"] == NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.APPEND
    assert VERB_FLAGS["delete"] == NlmFlag.REQUEST | NlmFlag.ACK
    assert VERB_FLAGS["dump"] == NlmFlag.REQUEST | NlmFlag.DUMP
    assert int(NlmsgType.DONE) == 3


def test_metrics_lock_helpers():
    m = RouteMetrics(lock=RouteMetrics.lock_mask("mtu", "advmss"), mtu=1400)
    assert m.locked("mtu") and m.locked("advmss") and not m.locked("window")
    assert RouteMetrics(mtu=1).locked("mtu") is False


def test_encode_errors_name_the_field():
    with pytest.raises(ValueError, match="RTA_PRIORITY"):
        RouteMessage(family=AF_INET, priority=-1).encode()
    with pytest.raises(ValueError, match="RTA_MULTIPATH"):
        RouteMessage(family=AF_INET, multipath=(NextHop(gateway=ip4("192.0.2.1"), weight=0),)).encode()


def test_fast_network_constructor_matches_ipaddress():
    """The decoder's shortcut for building networks against ipaddress itself, on seeded random input."""
    import ipaddress
    import random

    from tunkit.netlink import fields

    rng = random.Random(7)
    for _ in range(2000):
        version = rng.choice((4, 6))
        bits = 32 if version == 4 else 128
        plen = rng.choice((0, 1, bits - 1, bits, rng.randrange(bits + 1)))
        value = rng.getrandbits(bits)
        want = (ipaddress.IPv4Network if version == 4 else ipaddress.IPv6Network)((value, plen), strict=False)
        got = fields.network(version, value, plen)
        assert (got, str(got), hash(got), got.netmask, got.broadcast_address) == (
            want, str(want), hash(want), want.netmask, want.broadcast_address)
        assert type(got) is type(want) and got.prefixlen == want.prefixlen
    assert fields.network is fields._fast_network  # the probe accepted it on this Python
    with pytest.raises(ValueError):
        fields.network(4, 0, 33)
