"""ECMP: nebula's bucket values, weight validation, flow hashing and spread."""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import struct
from collections import Counter
from fractions import Fraction
from math import floor

import pytest

from tunkit.routing.ecmp import (
    MAX_WEIGHT,
    Gateway,
    GatewaySet,
    bucket_bounds,
    flow_hash,
    flow_hash_packet,
    gateway_for,
    mix32,
)
from tunkit.errors import DecodeError

GW = [ipaddress.ip_address(f"192.0.2.{i}") for i in range(1, 9)]


# --------------------------------------------------------------- packet builders


def ip4(src, dst, proto, payload=b"", frag=0, ihl=5, options=b""):
    """IPv4 header (checksum left 0: the hash never reads it) + payload."""
    hdr = struct.pack(
        "!BBHHHBBH4s4s",
        (4 << 4) | ihl,  # version | IHL
        0,  # DSCP | ECN
        ihl * 4 + len(payload),  # total length
        0x1234,  # identification
        frag,  # flags | fragment offset
        64,  # TTL
        proto,  # protocol
        0,  # checksum
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return hdr + options + payload


def ip6(src, dst, next_header, payload=b""):
    hdr = struct.pack(
        "!IHBB16s16s",
        6 << 28,  # version | traffic class | flow label
        len(payload),  # payload length
        next_header,  # next header
        64,  # hop limit
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return hdr + payload


def ports(sport, dport, rest=b"\x00" * 4):
    return struct.pack("!HH", sport, dport) + rest


def ext(next_header, length_units=0):
    """A hop-by-hop/routing/destination-options header of (length_units + 1) * 8 bytes."""
    return struct.pack("!BB", next_header, length_units) + b"\x00" * (6 + 8 * length_units)


def fragment_header(next_header, offset=0, more=True):
    return struct.pack("!BBHI", next_header, 0, (offset << 3) | int(more), 0xABCD)


def v4int(a):
    return int(ipaddress.IPv4Address(a))


def v6fold(a):
    """The 64-bit fold flow_hash_packet applies to IPv6 addresses (flow_hash folds further)."""
    x = int(ipaddress.IPv6Address(a))
    return (x >> 64) ^ (x & (2**64 - 1))


# ----------------------------------------------------------------- buckets


@pytest.mark.parametrize(
    "weights, bounds",
    [
        ([1, 1, 1], (715827882, 1431655764, 2147483647)),  # nebula TestRebalanceEqualSplit
        ([10, 5], (1431655764, 2147483647)),  # nebula TestRebalance3_2Split
    ],
)
def test_nebula_published_bucket_values(weights, bounds):
    assert bucket_bounds(weights) == bounds
    assert GatewaySet(zip(GW, weights)).bounds == bounds


def test_bounds_are_round_half_up_of_the_cumulative_share():
    rng = random.Random(3)
    for _ in range(500):
        weights = [rng.choice([1, 2, 3, rng.randrange(1, 1000), rng.randrange(1, MAX_WEIGHT + 1)]) for _ in range(rng.randrange(1, 9))]
        total = sum(weights)
        want, running = [], 0
        for w in weights:
            running += w
            want.append(floor(Fraction(running * 2**31, total) + Fraction(1, 2)) - 1)
        got = bucket_bounds(weights)
        assert got == tuple(want)
        assert got[-1] == 2**31 - 1 and list(got) == sorted(got)


@pytest.mark.parametrize("weight", [0, -1, MAX_WEIGHT + 1, 2**40, 1.0, "3", None, True])
def test_weights_outside_nebulas_range_are_rejected_naming_the_gateway(weight):
    with pytest.raises(ValueError) as info:
        GatewaySet([(GW[0], 1), (GW[1], weight)])
    assert "192.0.2.2" in str(info.value) and repr(weight) in str(info.value)
    with pytest.raises(ValueError):
        bucket_bounds([1, weight])


def test_weight_edges_are_accepted():
    s = GatewaySet([(GW[0], 1), (GW[1], MAX_WEIGHT)])
    assert s.bounds[-1] == 2**31 - 1 and s.bounds[0] == 0  # weight 1 of 2^31 owns hash 0 only


def test_set_shape_errors():
    with pytest.raises(ValueError, match="at least one"):
        GatewaySet([])
    with pytest.raises(ValueError, match="at least one"):
        bucket_bounds([])
    with pytest.raises(ValueError, match="192.0.2.1.*twice"):
        GatewaySet([GW[0], (GW[0], 2)])
    with pytest.raises(ValueError, match="None"):
        GatewaySet([None])


def test_gateway_forms_equality_and_repr():
    a = GatewaySet([GW[0], (GW[1], 3), Gateway(GW[2], 2)])
    assert list(a) == [Gateway(GW[0], 1), Gateway(GW[1], 3), Gateway(GW[2], 2)] and len(a) == 3
    b = GatewaySet([Gateway(GW[0]), Gateway(GW[1], 3), (GW[2], 2)])
    assert a == b and hash(a) == hash(b) and {a: 1}[b] == 1
    assert a != GatewaySet([GW[0], (GW[1], 3)])
    assert eval(repr(a), {"GatewaySet": GatewaySet, "IPv4Address": ipaddress.IPv4Address}) == a


@dataclasses.dataclass(frozen=True)
class ConfigGateway:
    """The shape of a parsed configuration's gateway (address and weight attributes)."""

    address: object
    weight: int = 1


def test_objects_with_address_and_weight_keep_their_weight():
    s = GatewaySet([ConfigGateway(GW[0], 10), ConfigGateway(GW[1], 5)])
    assert s.bounds == (1431655764, 2147483647) and [g.address for g in s] == GW[:2]
    with pytest.raises(ValueError, match="192.0.2.2"):
        GatewaySet([ConfigGateway(GW[0]), ConfigGateway(GW[1], 0)])


def test_choose_follows_the_bounds_exactly():
    s = GatewaySet([(GW[0], 1), (GW[1], 1), (GW[2], 1)])
    for i, bound in enumerate(s.bounds):
        assert s.choose(bound) == GW[i]
        if bound < 2**31 - 1:
            assert s.choose(bound + 1) == GW[i + 1]
    assert s.choose(0) == GW[0]
    assert s.choose(2**32 - 1) == GW[2]  # reduced to 31 bits like nebula's hash


def test_gateway_for_single_gateway_set_and_no_route():
    s = GatewaySet([(GW[0], 1), (GW[1], 1)])
    assert gateway_for(GW[5], 12345) == GW[5]
    assert gateway_for(None, 12345) is None
    assert gateway_for(s, 0) == GW[0] and gateway_for(s, 2**31 - 1) == GW[1]


# ------------------------------------------------------------------ hashing


def _inverse_mix32(y):
    """Undo [16 21f0aaad 15 d35a2d97 15] with the constants from NOTES section 3.7."""
    m = 2**32

    def unxorshift(x, s):
        out = x
        for _ in range(32 // s + 1):
            out = x ^ (out >> s)
        return out & (m - 1)

    y = unxorshift(y, 15)
    y = (y * pow(0xD35A2D97, -1, m)) % m
    y = unxorshift(y, 15)
    y = (y * pow(0x21F0AAAD, -1, m)) % m
    return unxorshift(y, 16)


def test_mix32_is_the_hash_prospector_mixer():
    rng = random.Random(1)
    for x in [0, 1, 2**31, 2**32 - 1] + [rng.getrandbits(32) for _ in range(2000)]:
        y = mix32(x)
        assert 0 <= y < 2**32 and _inverse_mix32(y) == x


@pytest.mark.parametrize(
    "pkt, fields",
    [
        (ip4("198.18.0.1", "198.18.1.2", 6, ports(40000, 443)), (v4int("198.18.0.1"), v4int("198.18.1.2"), 6, 40000, 443)),
        (ip4("198.18.0.1", "198.18.1.2", 17, ports(53, 5353)), (v4int("198.18.0.1"), v4int("198.18.1.2"), 17, 53, 5353)),
        (ip4("198.18.0.1", "198.18.1.2", 1, b"\x08\x00\x00\x00\x12\x34\x00\x01"), (v4int("198.18.0.1"), v4int("198.18.1.2"), 1, None, None)),
        (ip4("198.18.0.1", "198.18.1.2", 6, ports(1, 2), ihl=6, options=b"\x01" * 4), (v4int("198.18.0.1"), v4int("198.18.1.2"), 6, 1, 2)),
        (ip4("198.18.0.1", "198.18.1.2", 17, ports(1, 2), frag=0x2000), (v4int("198.18.0.1"), v4int("198.18.1.2"), 17, None, None)),
        (ip4("198.18.0.1", "198.18.1.2", 17, b"\x00" * 8, frag=0x00B9), (v4int("198.18.0.1"), v4int("198.18.1.2"), 17, None, None)),
        (ip4("198.18.0.1", "198.18.1.2", 17, b"\x00\x35"), (v4int("198.18.0.1"), v4int("198.18.1.2"), 17, None, None)),
        (ip6("2001:db8::1", "2001:db8:1::2", 6, ports(40000, 443)), (v6fold("2001:db8::1"), v6fold("2001:db8:1::2"), 6, 40000, 443)),
        (ip6("2001:db8::1", "2001:db8:1::2", 0, ext(60, 1) + ext(17) + ports(7, 9)), (v6fold("2001:db8::1"), v6fold("2001:db8:1::2"), 17, 7, 9)),
        (ip6("2001:db8::1", "2001:db8:1::2", 44, fragment_header(17) + ports(7, 9)), (v6fold("2001:db8::1"), v6fold("2001:db8:1::2"), 44, None, None)),
        (ip6("2001:db8::1", "2001:db8:1::2", 58, b"\x80\x00\x00\x00\x00\x01\x00\x01"), (v6fold("2001:db8::1"), v6fold("2001:db8:1::2"), 58, None, None)),
        (ip6("2001:db8::1", "2001:db8:1::2", 0, ext(6)), (v6fold("2001:db8::1"), v6fold("2001:db8:1::2"), 6, None, None)),
        (ip6("2001:db8::1", "2001:db8:1::2", 0, ext(0) * 8 + ext(17) + ports(7, 9)), (v6fold("2001:db8::1"), v6fold("2001:db8:1::2"), 0, None, None)),
    ],
    ids=["tcp4", "udp4", "icmp4", "options4", "first-fragment4", "later-fragment4", "short-udp4", "tcp6", "ext6", "fragment6", "icmp6", "ext-then-short6", "too-many-ext6"],
)
def test_flow_hash_packet_reads_the_documented_fields(pkt, fields):
    want = flow_hash(*fields)
    assert flow_hash_packet(pkt) == want
    assert flow_hash_packet(memoryview(bytearray(b"\xee" * 10 + pkt))[10:]) == want
    assert 0 <= want <= 0x7FFFFFFF


def test_flow_hash_takes_full_ipv6_ints_or_their_fold_alike():
    rng = random.Random(6)
    for _ in range(300):
        src, dst = rng.getrandbits(128), rng.getrandbits(128)
        fold = lambda x: (x >> 64) ^ (x & (2**64 - 1))  # noqa: E731
        assert flow_hash(src, dst, 17, 5, 6) == flow_hash(fold(src), fold(dst), 17, 5, 6)


def test_every_fragment_of_a_datagram_hashes_alike():
    first = ip4("198.18.0.1", "198.18.1.2", 17, ports(1000, 2000) + b"x" * 20, frag=0x2000)
    middle = ip4("198.18.0.1", "198.18.1.2", 17, b"y" * 24, frag=0x2003)
    last = ip4("198.18.0.1", "198.18.1.2", 17, b"z" * 10, frag=0x0006)
    assert flow_hash_packet(first) == flow_hash_packet(middle) == flow_hash_packet(last)


@pytest.mark.parametrize(
    "pkt, fragment",
    [
        (b"", "empty"),
        (b"\x45" + b"\x00" * 18, "19 bytes"),
        (b"\x60" + b"\x00" * 38, "39 bytes"),
        (b"\x44" + b"\x00" * 30, "header length 16"),
        (b"\x50" + b"\x00" * 40, "version 5"),
        (b"\x00", "version 0"),
    ],
)
def test_missing_ip_header_raises_decode_error(pkt, fragment):
    with pytest.raises(DecodeError, match=fragment):
        flow_hash_packet(pkt)


def test_fuzzed_packets_only_raise_decode_error():
    rng = random.Random(4)
    seeds = [
        ip4("198.18.0.1", "198.18.1.2", 6, ports(1, 2) + b"p" * 30),
        ip4("198.18.0.1", "198.18.1.2", 17, ports(1, 2), ihl=15, options=b"\x00" * 40),
        ip6("2001:db8::1", "2001:db8::2", 0, ext(43, 2) + ext(60) + ports(1, 2)),
        ip6("2001:db8::1", "2001:db8::2", 44, fragment_header(6, 0, True) + ports(1, 2)),
    ]
    for i in range(3000):
        base = bytearray(rng.choice(seeds))
        for _ in range(rng.randrange(4)):
            base[rng.randrange(len(base))] = rng.getrandbits(8)
        pkt = bytes(base[: rng.randrange(len(base) + 1)]) if i % 2 else bytes(base)
        if i % 7 == 0:
            pkt = rng.randbytes(rng.randrange(0, 64))
        try:
            h = flow_hash_packet(pkt)
        except DecodeError:
            continue
        assert 0 <= h <= 0x7FFFFFFF


# ------------------------------------------------------------------- spread


def _random_flows(rng, n, proto):
    flows = []
    for _ in range(n):
        if rng.random() < 0.5:
            src = f"198.18.{rng.getrandbits(8)}.{rng.getrandbits(8)}"
            dst = f"198.19.{rng.getrandbits(8)}.{rng.getrandbits(8)}"
            payload = ports(rng.getrandbits(16), rng.choice([53, 80, 443])) if proto != 1 else b"\x08\x00\x00\x00\x00\x01\x00\x01"
            flows.append(ip4(src, dst, proto, payload))
        else:
            src = ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(64))
            dst = ipaddress.IPv6Address((0x20010DB8 << 96) | (1 << 64) | rng.getrandbits(64))
            nh = 58 if proto == 1 else proto
            payload = ports(rng.getrandbits(16), 443) if proto != 1 else b"\x80\x00\x00\x00\x00\x01\x00\x01"
            flows.append(ip6(src, dst, nh, payload))
    return flows


@pytest.mark.parametrize("proto", [6, 17, 1], ids=["tcp", "udp", "icmp"])
@pytest.mark.parametrize("weights", [[1, 1, 1], [10, 5], [1, 2, 3, 4], [100, 1]])
def test_flows_spread_in_proportion_to_weights(weights, proto):
    rng = random.Random(sum(weights) * 31 + proto)
    s = GatewaySet(zip(GW, weights))
    flows = _random_flows(rng, 6000, proto)
    counts = Counter(s.choose(flow_hash_packet(p)) for p in flows)
    total = sum(weights)
    for gw, w in zip(GW, weights):
        expected = len(flows) * w / total
        assert abs(counts[gw] - expected) <= 0.15 * expected + 30, (gw, counts[gw], expected)


def test_one_flow_always_takes_one_gateway():
    rng = random.Random(8)
    s = GatewaySet([(GW[0], 3), (GW[1], 1), (GW[2], 2)])
    for pkt in _random_flows(rng, 200, 6) + _random_flows(rng, 200, 1):
        first = s.choose(flow_hash_packet(pkt))
        for _ in range(3):  # other packets of the same flow: same headers, other payload
            other = bytearray(pkt)
            tail = len(other) - 4
            other[tail:] = rng.randbytes(4)
            assert s.choose(flow_hash_packet(bytes(other))) == first
