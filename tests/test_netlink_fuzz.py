"""Every netlink decoder under a bounded, seeded random/truncation fuzz loop: only DecodeError escapes."""

from __future__ import annotations

import random
import struct
import threading

import pytest

from test_netlink_codec import CASES
from tunkit._uapi import RTM, NlmsgType
from tunkit.errors import DecodeError
from tunkit.netlink.attr import AttrDecoder
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
]


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
