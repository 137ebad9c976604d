"""Every netlink decoder under bounded, seeded random, truncated and deeply nested input: only DecodeError escapes."""

from __future__ import annotations

import ipaddress
import random
import struct
import threading

import pytest

from support_netlink import DEEP, attr_chain, nla, veth_chain
from test_netlink_codec import CASES
from test_netlink_codec_objects import CASES as OBJECT_CASES
from tunkit._uapi import RTM, NlmsgType
from tunkit.errors import DecodeError
from tunkit.netlink.attr import MAX_NESTING, AttrDecoder
from tunkit.netlink.events import Monitor
from tunkit.netlink.message import Message, encode_message, parse_ack, parse_messages
from tunkit.netlink.fields import pack_attr
from tunkit.netlink.linkkinds import BondInfo, BridgeInfo, MacvlanInfo, VlanInfo, VxlanInfo
from tunkit.netlink.neigh import NeighMessage
from tunkit.netlink.nexthop import NexthopMessage, ResilientGroup
from tunkit.netlink.rtnl import AddressMessage, LinkInfo, LinkMessage, RouteMessage, RouteMetrics, TunInfo, VethInfo
from tunkit.netlink.rule import RuleMessage

ROUNDS = 400  # per decoder: bounded, and a few seconds for the whole module
_RTM_OF = {RouteMessage: RTM.NEWROUTE, AddressMessage: RTM.NEWADDR, LinkMessage: RTM.NEWLINK}


def _payloads(cls):
    return [w for _, o, w in CASES if type(o) is cls]


def _datagrams():
    return [encode_message(_RTM_OF[type(o)], 0, 1, 0, w) for _, o, w in CASES]


def _nested(cls, attr_type):
    """Payloads of one nested attribute in the codec cases of ``cls`` (e.g. RTA_METRICS' content)."""
    out = []
    for _, o, w in CASES:
        if type(o) is not cls:
            continue
        hdr = {RouteMessage: 12, LinkMessage: 16}[cls]
        for a in AttrDecoder(w[hdr:]):
            if a.type == attr_type:
                out.append(a.data.tobytes())
    return out


ERROR_SAMPLE = bytes.fromhex("efffffff" "24000000180005060900000000000000" "0c000100616263640000000008000200" "2c000000")
DECODERS = [
    ("parse_messages", lambda b: [m.payload.tobytes() for m in parse_messages(b)], _datagrams),
    ("parse_ack error", lambda b: parse_ack(Message(NlmsgType.ERROR, 0x200, 1, 0, memoryview(b))), lambda: [ERROR_SAMPLE]),
    ("parse_ack done", lambda b: parse_ack(Message(NlmsgType.DONE, 0x200, 1, 0, memoryview(b))), lambda: [ERROR_SAMPLE[:4] + ERROR_SAMPLE[20:]]),
    ("AttrDecoder", lambda b: [(a.type, a.data.tobytes()) for a in AttrDecoder(b)], lambda: [w[12:] for w in _payloads(RouteMessage)]),
    ("RouteMessage", RouteMessage.decode, lambda: _payloads(RouteMessage)),
    ("AddressMessage", AddressMessage.decode, lambda: _payloads(AddressMessage)),
    ("LinkMessage", LinkMessage.decode, lambda: _payloads(LinkMessage)),
    ("RouteMetrics", RouteMetrics.decode, lambda: _nested(RouteMessage, 8)),
    ("LinkInfo", LinkInfo.decode, lambda: _nested(LinkMessage, 18)),
    ("TunInfo", TunInfo.decode, lambda: [bytes.fromhex("05000300010000000500040000000000")]),
    ("VethInfo", VethInfo.decode, lambda: [bytes.fromhex("1c000100" + "00" * 16 + "08000300746b3100")]),
    ("Monitor.feed", lambda b: Monitor().feed(b), _datagrams),
    ("AttrDecoder walk", lambda b: _walk(b), lambda: [w[12:] for w in _payloads(RouteMessage)]),
    ("RuleMessage", RuleMessage.decode, lambda: _object_payloads(RuleMessage)),
    ("NeighMessage", NeighMessage.decode, lambda: _object_payloads(NeighMessage)),
    ("NexthopMessage", NexthopMessage.decode, lambda: _object_payloads(NexthopMessage)),
    ("ResilientGroup", ResilientGroup.decode, lambda: [bytes.fromhex("060001000800000008000200e02e0000")]),
    ("RouteMessage (nhid, cacheinfo)", RouteMessage.decode, lambda: _object_payloads(RouteMessage)),
    ("Monitor.feed (rules, neighbours)", lambda b: Monitor().feed(b), lambda: _object_datagrams()),
    ("VxlanInfo", VxlanInfo.decode, lambda: [VxlanInfo(id=42, group=ipaddress.ip_address("192.0.2.2"), port=4789,
                                                       port_range=(1, 2), learning=False).encode()]),
    ("MacvlanInfo", MacvlanInfo.decode, lambda: [MacvlanInfo(mode=4, bc_queue_len=1000).encode()]),
    ("VlanInfo", VlanInfo.decode, lambda: [VlanInfo(id=5, flags=(1, 1), protocol=0x8100).encode()]),
    ("BridgeInfo", BridgeInfo.decode, lambda: [BridgeInfo(forward_delay=1500, priority=32768, hello_timer=5,
                                                           bridge_id=(b"\x80\0", bytes(6)), multi_boolopt=(0, 7)).encode()]),
    ("BondInfo", BondInfo.decode, lambda: [BondInfo(mode=4, miimon=100, xmit_hash_policy=1).encode()]),
    ("LinkInfo (vxlan)", LinkInfo.decode, lambda: [LinkInfo(kind="vxlan", data=VxlanInfo(id=1, ttl=64)).encode()]),
]


def _walk(data) -> list:
    """Descend into every NLA_F_NESTED attribute, as a generic dumper does (recursion is the decoder's)."""
    return [(a.type, _walk(a.data) if a.nested_flag else a.data.tobytes()) for a in AttrDecoder(data)]


# Deeply nested input per decoder (depth -> bytes): where the decoder descends, past MAX_NESTING it must refuse.
_RTMSG0 = bytes(12)
_IFADDR0 = struct.pack("=BBBBI", 2, 24, 0, 0, 1)
DEEP_INPUTS = {
    "parse_messages": lambda d: encode_message(RTM.NEWLINK, 0, 1, 0, veth_chain(d)),
    "parse_ack error": lambda d: ERROR_SAMPLE[:20] + attr_chain(d),
    "parse_ack done": lambda d: ERROR_SAMPLE[:4] + attr_chain(d),
    "AttrDecoder": lambda d: attr_chain(d),
    "RouteMessage": lambda d: _RTMSG0 + nla(8, attr_chain(d - 1), nested=True)
    + nla(9, struct.pack("=HBBi", 8 + len(attr_chain(d - 1)), 0, 0, 1) + attr_chain(d - 1)),
    "AddressMessage": lambda d: _IFADDR0 + attr_chain(d),
    "LinkMessage": veth_chain,
    "RouteMetrics": lambda d: attr_chain(d),
    "LinkInfo": lambda d: nla(1, b"veth\0") + nla(2, nla(1, veth_chain(d - 1)), nested=True),
    "TunInfo": lambda d: attr_chain(d),
    "VethInfo": lambda d: nla(1, veth_chain(d - 1)),
    "Monitor.feed": lambda d: encode_message(RTM.NEWLINK, 0, 1, 0, veth_chain(d)),
    "AttrDecoder walk": attr_chain,
    "RuleMessage": lambda d: bytes.fromhex("0200000000000001" "00000000") + attr_chain(d),
    "NeighMessage": lambda d: bytes.fromhex("02000000" "03000000" "80000001") + attr_chain(d),
    "NexthopMessage": lambda d: bytes(8) + nla(12, attr_chain(d - 1), nested=True),
    "ResilientGroup": lambda d: attr_chain(d),
    "RouteMessage (nhid, cacheinfo)": lambda d: _RTMSG0 + nla(8, attr_chain(d - 1), nested=True),
    "VxlanInfo": lambda d: attr_chain(d),
    "VlanInfo": lambda d: attr_chain(d),
    "BondInfo": lambda d: attr_chain(d),
    "BridgeInfo": lambda d: attr_chain(d),
    "MacvlanInfo": lambda d: attr_chain(d),
    "LinkInfo (vxlan)": lambda d: nla(1, b"vxlan\0") + nla(2, attr_chain(d - 1), nested=True),
    "Monitor.feed (rules, neighbours)": lambda d: encode_message(32, 0, 1, 0, bytes.fromhex("0200000000000001" "00000000")
                                                                 + attr_chain(d)),
}
# the decoders that descend into what they read: these must refuse nesting past MAX_NESTING
DESCENDING = {"LinkMessage", "LinkInfo", "VethInfo", "Monitor.feed", "AttrDecoder walk"}


@pytest.mark.parametrize("name,decode", [(d[0], d[1]) for d in DECODERS], ids=[d[0] for d in DECODERS])
def test_deep_nesting_is_refused_with_decode_error_not_recursion(name, decode):
    build = DEEP_INPUTS[name]
    decode(build(3))  # realistic nesting decodes
    if name in DESCENDING:
        decode(build(MAX_NESTING // 4))  # a veth link level is about 4 nested streams
    for depth in DEEP:
        data = build(depth)
        try:
            decode(data)
            refused = False
        except DecodeError as e:
            refused = True
            assert "nested more than" in str(e) or name not in DESCENDING, e
        assert refused or name not in DESCENDING, f"{name} decoded {depth}-deep nesting"


def _object_payloads(cls):
    return [w for _, o, w in OBJECT_CASES if type(o) is cls]


def _object_datagrams():
    rtm = {RuleMessage: 32, NeighMessage: 28, NexthopMessage: 104, RouteMessage: 24}
    return [encode_message(rtm[type(o)], 0, 1, 0, w) for _, o, w in OBJECT_CASES]


def _deep(depth: int) -> bytes:
    """A link whose veth peer has a veth peer ... ``depth`` levels down, built bytewise."""
    wire = bytes(16) + pack_attr(3, b"x\0")
    for _ in range(depth):
        info = pack_attr(1, b"veth\0") + pack_attr(2 | 0x8000, pack_attr(1, wire))
        wire = bytes(16) + pack_attr(18 | 0x8000, info)
    return wire


@pytest.mark.parametrize("depth", [1, 2, 10, 11, 50, 400, 1500])
def test_deeply_nested_input_raises_decode_error_not_recursion_error(depth):
    """Each veth level is 3 nesting levels (LINKINFO, DATA, the peer): 10 decode, 11 and more are refused."""
    wire = _deep(depth)
    if len(wire) > 0xFFFF - 64:
        pytest.skip("does not fit one attribute")
    for decode in (LinkMessage.decode, lambda b: Monitor().feed(encode_message(RTM.NEWLINK, 0, 1, 0, b))):
        if depth <= 10:
            decode(wire)
        else:
            with pytest.raises(DecodeError, match=f"nested more than {MAX_NESTING} levels"):
                decode(wire)


def test_deeply_nested_metrics_and_multipath_are_bounded():
    """Nested streams in routes: random nesting of RTA_METRICS/RTA_MULTIPATH payloads decodes or is refused."""
    rng = random.Random("tunkit-deep-route")
    for _ in range(200):
        inner = rng.randbytes(rng.randrange(0, 16))
        for _ in range(rng.randrange(1, 40)):
            inner = pack_attr(rng.choice([8, 9]) | 0x8000, inner) if len(inner) < 60000 else inner
        wire = bytes.fromhex("02180000fe030001" "00000000") + inner
        try:
            RouteMessage.decode(wire)
        except DecodeError:
            pass


def _mutate(rng: random.Random, seed: bytes) -> bytes:
    b = bytearray(seed)
    choice = rng.randrange(6)
    if choice == 0 and b:  # truncate anywhere
        return bytes(b[: rng.randrange(len(b))])
    if choice == 1 and b:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    if choice == 2 and len(b) >= 2:  # plant a hostile 16-bit length (0, short, huge)
        off = rng.randrange(0, len(b) - 1)
        struct.pack_into("=H", b, off, rng.choice([0, 1, 2, 3, 4, 5, 0xFFFF, len(b) + 4]))
        return bytes(b)
    if choice == 3:  # append garbage
        return bytes(b) + rng.randbytes(rng.randrange(1, 24))
    if choice == 4:  # pure noise
        return rng.randbytes(rng.randrange(0, 80))
    return bytes(b[: rng.randrange(len(b) + 1)]) + rng.randbytes(rng.randrange(0, 8))


@pytest.mark.parametrize("name,decode,seeds", DECODERS, ids=[d[0] for d in DECODERS])
def test_decoder_raises_only_decode_error_and_never_hangs(name, decode, seeds):
    samples = seeds()
    assert samples, f"no seed samples for {name}"
    for s in samples:  # the seeds themselves decode
        decode(s)
    samples = samples + [DEEP_INPUTS[name](d) for d in (3, *DEEP)]  # mutated deep nesting: truncated, flipped
    rng = random.Random(f"tunkit-{name}")
    outcome: dict[str, object] = {}

    def run():
        decoded = rejected = 0
        try:
            for _ in range(ROUNDS):
                data = _mutate(rng, rng.choice(samples))
                try:
                    decode(data)
                    decoded += 1
                except DecodeError:
                    rejected += 1
        except Exception as e:  # anything but DecodeError is a bug; report it from the test thread
            outcome["error"] = (e, data)
        outcome["counts"] = (decoded, rejected)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), f"{name}: decoder did not finish {ROUNDS} inputs (a loop on hostile input?)"
    if "error" in outcome:
        e, data = outcome["error"]
        raise AssertionError(f"{name} raised {type(e).__name__}: {e} on {data.hex()}") from e
    decoded, rejected = outcome["counts"]
    assert decoded + rejected == ROUNDS and rejected > 0


def test_the_nesting_count_is_released_after_errors_and_early_exits():
    from tunkit.netlink import attr

    for _ in range(3 * MAX_NESTING):
        with pytest.raises(DecodeError):
            LinkMessage.decode(veth_chain(200))
        next(iter(AttrDecoder(attr_chain(2))))  # an iteration abandoned part way (closed when dropped)
        for _a in AttrDecoder(attr_chain(2)):
            break
    assert LinkMessage.decode(veth_chain(MAX_NESTING // 4)).linkinfo.kind == "veth"
    assert attr._depth.get() == 0
