"""Every netlink decoder under a bounded, seeded random/truncation fuzz loop: only DecodeError escapes."""

from __future__ import annotations

import random
import struct
import threading

import pytest

from test_netlink_codec import CASES
from test_netlink_codec_objects import CASES as OBJECT_CASES
from tunkit._uapi import RTM, NlmsgType
from tunkit.errors import DecodeError
from tunkit.netlink.attr import AttrDecoder
from tunkit.netlink.events import Monitor
from tunkit.netlink.message import Message, encode_message, parse_ack, parse_messages
from tunkit.netlink.fields import pack_attr
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
    ("RuleMessage", RuleMessage.decode, lambda: _object_payloads(RuleMessage)),
    ("NeighMessage", NeighMessage.decode, lambda: _object_payloads(NeighMessage)),
    ("NexthopMessage", NexthopMessage.decode, lambda: _object_payloads(NexthopMessage)),
    ("ResilientGroup", ResilientGroup.decode, lambda: [bytes.fromhex("060001000800000008000200e02e0000")]),
    ("RouteMessage (nhid, cacheinfo)", RouteMessage.decode, lambda: _object_payloads(RouteMessage)),
    ("Monitor.feed (rules, neighbours)", lambda b: Monitor().feed(b), lambda: _object_datagrams()),
]


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


@pytest.mark.parametrize("depth", [1, 2, 6, 50, 400, 1500])
def test_deeply_nested_input_raises_decode_error_not_recursion_error(depth):
    """Each veth level is 3 nesting levels (LINKINFO, DATA, the peer): 2 decode, 6 and more are refused."""
    wire = _deep(depth)
    if len(wire) > 0xFFFF - 64:
        pytest.skip("does not fit one attribute")
    for decode in (LinkMessage.decode, lambda b: Monitor().feed(encode_message(RTM.NEWLINK, 0, 1, 0, b))):
        if depth <= 2:
            decode(wire)
        else:
            with pytest.raises(DecodeError, match="nested more than 16 levels"):
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
