"""Headers from outside (a peer's overlay message) and the raw-packet helpers of the data path: tables and fuzz.

The oracle for :func:`tunkit.packet.offload.gso_problem` is what the rest of the data
path does with a header it accepts: :func:`encode_for` packs it, and
:func:`gso_split` (a plain TUN) or :func:`checksum_partial` turns it into
packets, never raising and never making more than MAX_GSO_SEGMENTS segments.
"""

from __future__ import annotations

import random
import struct

import pytest

from support_offload import tcp_stream, udp_stream
from tunkit.packet.coalesce import coalesce
from tunkit.errors import DecodeError
from tunkit.packet.offload import (
    MAX_GSO_SEGMENTS,
    MIN_GSO_SIZE,
    VirtioNetHdr,
    checksum_partial,
    encode_for,
    gso_problem,
    gso_split,
    l4_header_len,
    regso,
)

REASONS = {"gso_flags", "gso_type", "gso_size", "gso_segments", "gso_headers", "csum_start", "csum_offset"}


def _super(segs, **kw):
    ((hdr, bufs),) = coalesce(segs, **kw)
    return hdr._replace(hdr_len=0), b"".join(bufs)


TCP4 = _super(tcp_stream(8, 1000))
TCP6 = _super(tcp_stream(8, 1000, v6=True))
UDP4 = _super(udp_stream(6, 700), uso=True)
PLAIN = tcp_stream(1, 500)[0]
PARTIAL = VirtioNetHdr(1, 0, 0, 0, 20, 16)  # NEEDS_CSUM on a plain TCP packet


def _with(base, **kw):
    return base[0]._replace(**kw), base[1]


# (name, header, packet, reason or None) -- issue 14 item 2: every field a peer controls
CASES = [
    ("TCPv4 super-packet", *TCP4, None),
    ("TCPv6 super-packet", *TCP6, None),
    ("UDP super-packet", *UDP4, None),
    ("plain packet, partial checksum", PARTIAL, PLAIN, None),
    ("csum_start 65535", *_with(TCP4, csum_start=65535), "csum_start"),
    ("csum_start not the L4 header", *_with(TCP4, csum_start=24), "csum_start"),
    ("csum_offset of UDP on TCP", *_with(TCP4, csum_offset=6), "csum_offset"),
    ("csum_offset 65535", *_with(TCP4, csum_offset=65535), "csum_offset"),
    ("gso_size 0", *_with(TCP4, gso_size=0), "gso_size"),
    ("gso_size 1", *_with(TCP4, gso_size=1), "gso_size"),
    ("gso_size below the minimum", *_with(TCP4, gso_size=MIN_GSO_SIZE - 1), "gso_size"),
    ("gso_size at the minimum", *_with(TCP4, gso_size=MIN_GSO_SIZE), None),
    ("too many segments", *_with(_super(tcp_stream(40, 1400)), gso_size=MIN_GSO_SIZE), "gso_segments"),
    ("gso_size 65535 (one segment)", *_with(TCP4, gso_size=65535), None),
    ("legacy UFO type", *_with(TCP4, gso_type=3), "gso_type"),
    ("unknown type", *_with(TCP4, gso_type=7), "gso_type"),
    ("ECN on UDP", *_with(UDP4, gso_type=0x85), "gso_type"),
    ("ECN on TCP is fine", *_with(TCP4, gso_type=0x81), None),
    ("RSC_INFO flag", *_with(TCP4, flags=5), "gso_flags"),
    ("unknown flag", *_with(TCP4, flags=0x81), "gso_flags"),
    ("GSO without NEEDS_CSUM", *_with(TCP4, flags=0), "gso_flags"),
    ("TCPV6 type on IPv4", *_with(TCP4, gso_type=4), "gso_headers"),
    ("TCPV4 type on IPv6", *_with(TCP6, gso_type=1), "gso_headers"),
    ("UDP type on TCP", *_with(TCP4, gso_type=5, csum_offset=6), "gso_headers"),
    ("IP length is not the packet's", TCP4[0], TCP4[1][:-1], "gso_headers"),
    ("truncated to the IP header", TCP4[0], TCP4[1][:20], "gso_headers"),
    ("empty packet", TCP4[0], b"", "gso_headers"),
    ("no payload", TCP4[0], tcp_stream(1, 1)[0][:-1], "gso_headers"),
    ("plain: gso_size without a type", PARTIAL._replace(gso_size=1400), PLAIN, "gso_size"),
    ("plain: ECN bit without a type", PARTIAL._replace(gso_type=0x80), PLAIN, "gso_type"),
    ("plain: csum_start 65535", PARTIAL._replace(csum_start=65535), PLAIN, "csum_start"),
    ("plain: csum_offset 65535", PARTIAL._replace(csum_offset=65535), PLAIN, "csum_offset"),
    ("plain: csum_start inside the IP header", PARTIAL._replace(csum_start=4), PLAIN, "csum_start"),
    ("plain: checksum fields without NEEDS_CSUM", VirtioNetHdr(2, 0, 0, 0, 20, 16), PLAIN, "csum_start"),
]


@pytest.mark.parametrize("name,hdr,pkt,reason", CASES, ids=[c[0] for c in CASES])
def test_gso_problem_table(name, hdr, pkt, reason):
    assert gso_problem(hdr, pkt, len(pkt)) == reason
    if reason is None:
        _use(hdr, pkt)


def test_a_train_head_is_enough():
    hdr, pkt = TCP4
    assert gso_problem(hdr, pkt[:1400], len(pkt)) is None  # headers in the first part, length of the whole
    assert gso_problem(hdr, pkt[:30], len(pkt)) == "gso_headers"  # the TCP header cut off


def _use(hdr, pkt):
    """What the data path does with an accepted header: nothing may raise, the work is bounded."""
    raw = encode_for(hdr, pkt)
    assert len(raw) == 10 and VirtioNetHdr.decode(raw).gso_type == hdr.gso_type
    if hdr.gso_type:
        segs = gso_split(hdr, pkt)
        assert 1 <= len(segs) <= MAX_GSO_SEGMENTS
        assert all(len(s) <= hdr.csum_start + 60 + hdr.gso_size for s in segs)
    elif hdr.flags & 1:
        assert len(checksum_partial(hdr, pkt)) == len(pkt)


def test_fuzz_gso_problem_never_raises_and_what_it_accepts_is_safe():
    rng = random.Random(14)
    bases = [TCP4, TCP6, UDP4, (PARTIAL, PLAIN)]
    edges = [0, 1, 2, 6, 16, 19, 20, 40, 63, 64, 65, 1000, 1448, 32767, 65534, 65535]
    accepted = 0
    for i in range(4000):
        hdr, pkt = rng.choice(bases)
        fields = list(hdr)
        for _ in range(rng.randrange(1, 4)):  # change one to three fields to edge or random values
            k = rng.randrange(6)
            hi = 255 if k < 2 else 65535
            fields[k] = rng.choice(edges + [rng.randrange(hi + 1)]) & hi
        if i % 5 == 0:  # and sometimes the packet
            b = bytearray(pkt)
            if rng.random() < 0.5:
                b[rng.randrange(min(len(b), 60))] = rng.randrange(256)
            else:
                del b[rng.randrange(len(b)) :]
            pkt = bytes(b)
        h = VirtioNetHdr(*fields)
        r = gso_problem(h, pkt, len(pkt))
        assert r is None or r in REASONS, r
        if r is None:
            accepted += 1
            _use(h, pkt)
    assert accepted > 100  # the fuzz reaches accepted shapes too, not only refusals


def test_l4_header_len():
    hdr, pkt = TCP4
    assert l4_header_len(pkt, 20, 1) == (pkt[32] >> 4) * 4
    assert l4_header_len(pkt[:25], 20, 1) == 20  # too short to tell: the minimum
    assert l4_header_len(UDP4[1], 20, 5) == 8


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_regso_rebuilds_metadata_that_splits_back_into_the_segments(v6):
    segs = tcp_stream(6, 1000, v6=v6)
    hdr, sup = _super(segs)
    raw = bytearray(checksum_partial(hdr, sup))  # as a raw-IP sender without partial_checksums sends it
    got = regso(memoryview(raw), len(segs[0]))  # the receiver's MTU: one segment
    assert got is not None and gso_problem(got, raw, len(raw)) is None
    assert gso_split(got, bytes(raw)) == segs


def test_regso_leaves_everything_else_alone():
    udp = udp_stream(1, 3000)[0]
    assert regso(memoryview(bytearray(udp)), 1400) is None  # UDP: one datagram, written as it came
    tcp = bytearray(tcp_stream(3, 1000)[0] + bytes(2000))
    struct.pack_into("!H", tcp, 6, 0x2000)  # MF: a fragment
    assert regso(memoryview(tcp), 1400) is None
    assert regso(memoryview(bytes(tcp_stream(3, 1000)[0])), 1400) is None  # read-only: not rewritten
    assert regso(memoryview(bytearray(b"\x45" + bytes(30))), 1400) is None


def test_gso_split_refuses_what_gso_problem_refuses_only_with_decode_error():
    hdr, pkt = _with(TCP4, gso_type=4)
    with pytest.raises(DecodeError):
        gso_split(hdr, pkt)
