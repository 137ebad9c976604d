"""Every netlink decoder under bounded, seeded random, truncated and deeply nested input: only DecodeError escapes."""

from __future__ import annotations

import random
import struct
import threading

import pytest

from support_netlink import DEEP, attr_chain, nla, veth_chain
from test_netlink_codec import CASES
from tunkit._uapi import RTM, NlmsgType
from tunkit.errors import DecodeError
from tunkit.netlink.attr import MAX_NESTING, AttrDecoder
from tunkit.netlink.events import Monitor
from tunkit.netlink.message import Message, encode_message, parse_ack, parse_messages
from tunkit.netlink.rtnl import AddressMessage, LinkInfo, LinkMessage, RouteMessage, RouteMetrics, TunInfo, VethInfo

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
