"""The field-table mechanism under the rtnetlink codecs, and iproute2's route defaults, as tables."""

from __future__ import annotations

import dataclasses
import random

import pytest

from support_netlink import ip4, net
from test_netlink_codec import CASES
from tunkit._uapi import AF_INET, AF_INET6, RT_TABLE_LOCAL, RT_TABLE_MAIN, RTN, RTPROT_BOOT, RTPROT_STATIC, RtScope
from tunkit.errors import DecodeError
from tunkit.netlink import fields, rtnl
from tunkit.netlink.defaults import route_defaults
from tunkit.netlink.rtnl import LinkInfo, LinkMessage, RouteMessage, RouteMetrics, VethInfo

CODEC_CLASSES = [c for c in vars(rtnl).values() if isinstance(c, type) and isinstance(getattr(c, "_TABLE", None), fields.Table)]


def _objects():
    """Every object in the codec tables, and every object nested in them."""
    out = []

    def walk(o):
        if dataclasses.is_dataclass(o) and not isinstance(o, type):
            out.append(o)
            for f in dataclasses.fields(o):
                walk(getattr(o, f.name))
        elif isinstance(o, tuple):
            for x in o:
                walk(x)

    for _, o, _ in CASES:
        walk(o)
    return out


def test_every_codec_class_is_covered():
    assert {"LinkMessage", "AddressMessage", "RouteMessage", "RouteMetrics", "LinkInfo", "TunInfo", "VethInfo"} <= {
        c.__name__ for c in CODEC_CLASSES}


@pytest.mark.parametrize("obj", _objects(), ids=lambda o: type(o).__name__)
def test_fast_construction_equals_normal_construction(obj):
    """construct() (no __init__) gives what the constructor gives, with all fields or only the set ones."""
    cls = type(obj)
    full = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    sparse = {k: v for k, v in full.items() if v is not None and v != ()}
    for values in (full, sparse):
        normal = cls(**values)
        fast = fields.construct(cls, dict(values))
        assert fast == normal and hash(fast) == hash(normal) and repr(fast) == repr(normal)
        assert type(fast) is cls
        assert [getattr(fast, f.name) for f in dataclasses.fields(cls)] == [getattr(normal, f.name) for f in dataclasses.fields(cls)]


def test_decoded_objects_equal_constructed_ones_field_by_field():
    for _, obj, wire in CASES:
        got = type(obj).decode(wire)
        assert dataclasses.asdict(got) == dataclasses.asdict(obj)


def test_generated_encoder_equals_the_generic_loop():
    """The unrolled encoder and the one-field-at-a-time loop give the same bytes (seeded random routes)."""
    rng = random.Random(11)
    table = RouteMessage._TABLE
    for _ in range(300):
        kw = dict(family=AF_INET, dst=net(f"198.51.100.{rng.randrange(256)}/32"), table=rng.choice([None, 0, 254, 1000]),
                  oif=rng.choice([None, 3]), priority=rng.choice([None, 0, 7]), gateway=rng.choice([None, ip4("192.0.2.1")]),
                  metrics=rng.choice([None, RouteMetrics(mtu=1400), RouteMetrics(lock=2, mtu=1300, cc_algo="cubic")]),
                  mark=rng.choice([None, 5]), unknown=rng.choice([(), ((99, b"abcd"),)]))
        m = RouteMessage(**kw)
        assert m.encode() == table._encode_slow(m)
        assert RouteMessage.decode(m.encode()) == m


@pytest.mark.parametrize("obj,err", [
    (RouteMessage(family=AF_INET, oif=-1), r"RTA_OIF: -1 is not a u32 \(0\.\.4294967295\)"),
    (RouteMessage(family=AF_INET, table=1 << 32), r"RTA_TABLE: 4294967296 is not a u32"),
    (RouteMessage(family=AF_INET, pref=300), r"RTA_PREF: 300 is not a u8 \(0\.\.255\)"),
    (RouteMessage(family=AF_INET, gateway="192.0.2.1"), r"RTA_GATEWAY: bad value '192.0.2.1'"),
    (RouteMessage(family=AF_INET, tos=256), r"rtmsg: bad header field"),
    (RouteMessage(family=AF_INET, metrics=RouteMetrics(mtu=-5)), r"RTA_METRICS: .*RTAX_MTU: -5 is not a u32"),
    (LinkMessage(ifname="a\0b"), r"IFLA_IFNAME: bad value"),
])
def test_encode_errors_name_the_attribute_and_the_range(obj, err):
    with pytest.raises(ValueError, match=err):
        obj.encode()


def test_deep_nesting_is_refused_with_decode_error():
    """A veth peer inside a veth peer ... (issue 14 item 10): DecodeError, never RecursionError."""
    wire = LinkMessage(ifname="x").encode()
    for _ in range(2000):  # built bytewise: ifinfomsg + IFLA_LINKINFO { KIND "veth", DATA { VETH_INFO_PEER wire } }
        info = fields.pack_attr(1, b"veth\0") + fields.pack_attr(2 | 0x8000, fields.pack_attr(1, wire))
        wire = bytes(16) + fields.pack_attr(18 | 0x8000, info)
        if len(wire) > 60000:
            break
    with pytest.raises(DecodeError, match="nested more than"):
        LinkMessage.decode(wire)
    shallow = LinkMessage(ifname="a", linkinfo=LinkInfo(kind="veth", data=VethInfo(peer=LinkMessage(ifname="b"))))
    assert LinkMessage.decode(shallow.encode()) == shallow


def test_attribute_fields_must_default_to_none():
    @dataclasses.dataclass(frozen=True)
    class Bad:
        x: int = 0

    with pytest.raises(TypeError, match="default None"):
        fields.Table(Bad, None, [fields.Field(1, "x", fields.U32)])


def test_unknown_nested_attributes_keep_their_flags():
    m = RouteMessage(family=AF_INET, metrics=RouteMetrics(mtu=1400, unknown=((0x8000 | 30, b"\x01\x00\x00\x00"),)))
    assert RouteMessage.decode(m.encode()) == m


# iproute2's defaults (ip/iproute.c iproute_modify), row by row:
# (verb, family, given (table, proto, scope, type), has a gateway) -> (table, proto, scope, type)
U, L, H, N, G = RtScope.UNIVERSE, RtScope.LINK, RtScope.HOST, RtScope.NOWHERE, True
DEFAULTS = [
    ("add", AF_INET, (None, None, None, None), False, (RT_TABLE_MAIN, RTPROT_BOOT, L, RTN.UNICAST)),  # ip route add P dev D
    ("add", AF_INET, (None, None, None, None), G, (RT_TABLE_MAIN, RTPROT_BOOT, U, RTN.UNICAST)),  # ... via G
    ("add", AF_INET6, (None, None, None, None), False, (RT_TABLE_MAIN, RTPROT_BOOT, U, RTN.UNICAST)),  # IPv6: always global
    ("add", AF_INET, (1000, RTPROT_STATIC, None, None), False, (1000, RTPROT_STATIC, L, RTN.UNICAST)),
    ("add", AF_INET, (None, None, None, RTN.LOCAL), False, (RT_TABLE_LOCAL, RTPROT_BOOT, H, RTN.LOCAL)),  # ip route add local A
    ("add", AF_INET, (None, None, None, RTN.NAT), False, (RT_TABLE_LOCAL, RTPROT_BOOT, H, RTN.NAT)),
    ("add", AF_INET, (None, None, None, RTN.BROADCAST), False, (RT_TABLE_LOCAL, RTPROT_BOOT, L, RTN.BROADCAST)),
    ("add", AF_INET, (None, None, None, RTN.ANYCAST), False, (RT_TABLE_LOCAL, RTPROT_BOOT, L, RTN.ANYCAST)),
    ("add", AF_INET, (None, None, None, RTN.MULTICAST), False, (RT_TABLE_MAIN, RTPROT_BOOT, L, RTN.MULTICAST)),
    ("add", AF_INET, (None, None, None, RTN.BLACKHOLE), False, (RT_TABLE_MAIN, RTPROT_BOOT, U, RTN.BLACKHOLE)),
    ("add", AF_INET, (None, None, None, RTN.UNREACHABLE), False, (RT_TABLE_MAIN, RTPROT_BOOT, U, RTN.UNREACHABLE)),
    ("add", AF_INET, (None, None, RtScope.SITE, None), G, (RT_TABLE_MAIN, RTPROT_BOOT, RtScope.SITE, RTN.UNICAST)),
    ("replace", AF_INET, (None, None, None, None), False, (RT_TABLE_MAIN, RTPROT_BOOT, L, RTN.UNICAST)),
    ("delete", AF_INET, (None, None, None, None), False, (None, 0, N, RTN.UNSPEC)),  # match any
    ("delete", AF_INET, (None, None, None, None), G, (None, 0, N, RTN.UNSPEC)),
    ("delete", AF_INET6, (None, None, None, None), False, (None, 0, N, RTN.UNSPEC)),
    ("delete", AF_INET, (None, None, None, RTN.LOCAL), False, (None, 0, H, RTN.LOCAL)),
    ("delete", AF_INET, (5, RTPROT_STATIC, None, None), False, (5, RTPROT_STATIC, N, RTN.UNSPEC)),
]


@pytest.mark.parametrize("verb,family,given,gw,want", DEFAULTS)
def test_route_defaults_follow_iproute2(verb, family, given, gw, want):
    table, proto, scope, rtype = given
    assert route_defaults(verb, family, table, proto, scope, rtype, gw) == want


def test_object_modules_load_on_first_use_only():
    """Start-up: importing the client (what `tunkit link show` needs) loads no rule/neigh/nexthop/link-kind code."""
    import subprocess
    import sys

    code = ("import sys, tunkit.netlink.client, tunkit.cli; tunkit.cli.build_parser();"
            "print(' '.join(m for m in ('rule', 'neigh', 'nexthop', 'linkkinds') if f'tunkit.netlink.{m}' in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
    from tunkit.netlink.rtnl import MESSAGE_TYPES, decode_message

    assert MESSAGE_TYPES[34].__name__ == "RuleMessage" and decode_message(999, b"") is None
