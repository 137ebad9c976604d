"""tunkit.packet.offload: virtio_net_hdr codec, TSO/USO split and coalescing, as tables, round trips and fuzz.

The oracles are the independent builders in support_offload (plain struct and a
word-by-word checksum loop): a super-packet is built the way the kernel hands it
over (one IP header, partial checksum), and the packets it must split into are
built one by one the way a sender without offloads emits them.
"""

from __future__ import annotations

import ipaddress
import random
import struct
import sys

import pytest

from support_offload import (
    ACK,
    CWR,
    DST4,
    DST6,
    ECE,
    FIN,
    PSH,
    RST,
    SRC4,
    SRC6,
    SYN,
    URG,
    ipv4_header,
    ipv6_header,
    payload_bytes,
    pseudo,
    ref_checksum,
    ref_sum,
    tcp4,
    tcp6,
    tcp_segment,
    tcp_stream,
    udp4,
    udp6,
    udp_datagram,
    udp_stream,
    vnet,
)
from tunkit._uapi import VIRTIO_NET_HDR_GSO_ECN, VirtioNetHdrFlag, VirtioNetHdrGso
from tunkit.packet.coalesce import Coalescer, coalesce
from tunkit.errors import DecodeError
from tunkit.packet.offload import (
    DATA_VALID_HDR,
    MAX_BYTES,
    MAX_SEGMENTS,
    ZERO_HDR,
    VirtioNetHdr,
    checksum_partial,
    gso_check,
    gso_split,
    split_read,
)
from tunkit.packet.ip import transport_checksum_ok

NEEDS_CSUM, DATA_VALID = 1, 2
NONE, TCPV4, UDP_UFO, TCPV6, UDP_L4 = 0, 1, 3, 4, 5

# ---------------------------------------------------------------------------
# virtio_net_hdr codec
# ---------------------------------------------------------------------------

HDR_CASES = [
    ("all zero", VirtioNetHdr(), "00" "00" "0000" "0000" "0000" "0000"),
    (
        "TSO over IPv4",
        VirtioNetHdr(NEEDS_CSUM, TCPV4, 52, 1448, 20, 16),
        "01"  # flags NEEDS_CSUM
        "01"  # gso_type TCPV4
        "3400"  # hdr_len 52 (little-endian host)
        "a805"  # gso_size 1448
        "1400"  # csum_start 20
        "1000",  # csum_offset 16
    ),
    (
        "TSO over IPv6 with ECN",
        VirtioNetHdr(NEEDS_CSUM, TCPV6 | VIRTIO_NET_HDR_GSO_ECN, 60, 1428, 40, 16),
        "01" "84" "3c00" "9405" "2800" "1000",
    ),
    ("USO", VirtioNetHdr(NEEDS_CSUM, UDP_L4, 28, 1200, 20, 6), "01" "05" "1c00" "b004" "1400" "0600"),
    ("data valid", VirtioNetHdr(DATA_VALID), "02" "00" "0000" "0000" "0000" "0000"),
]


@pytest.mark.skipif(sys.byteorder != "little", reason="the table's bytes are little-endian host order")
@pytest.mark.parametrize("name,hdr,hexbytes", HDR_CASES, ids=[c[0] for c in HDR_CASES])
def test_virtio_net_hdr_table_both_ways(name, hdr, hexbytes):
    raw = bytes.fromhex(hexbytes)
    assert hdr.encode() == raw
    assert VirtioNetHdr.decode(raw) == hdr
    assert VirtioNetHdr.decode(b"xx" + raw, 2) == hdr


def test_virtio_net_hdr_properties():
    h = VirtioNetHdr.decode(vnet(NEEDS_CSUM, TCPV6 | 0x80, 60, 1000, 40, 16))
    assert h.gso is VirtioNetHdrGso.TCPV6 and h.ecn
    assert h.flags == VirtioNetHdrFlag.NEEDS_CSUM and str(h.flags) == str(VirtioNetHdrFlag.NEEDS_CSUM)
    assert not ZERO_HDR.ecn and ZERO_HDR.gso is VirtioNetHdrGso.NONE
    with pytest.raises(ValueError, match="virtio_net_hdr"):
        VirtioNetHdr(gso_size=70000).encode()


HDR_ERRORS = [
    ("short", vnet()[:9], "need 10"),
    ("RSC_INFO", vnet(4), "RSC_INFO"),
    ("unknown flag", vnet(8), "unknown flag"),
    ("legacy UFO", vnet(NEEDS_CSUM, UDP_UFO, 28, 1000, 20, 6), "UFO"),
    ("unknown gso type", vnet(0, 2), "unknown gso_type"),
    ("gso type 6", vnet(0, 6), "unknown gso_type"),
    ("ECN on UDP_L4", vnet(NEEDS_CSUM, UDP_L4 | 0x80, 28, 1000, 20, 6), "ECN"),
    ("ECN on NONE", vnet(0, 0x80), "ECN"),
    ("TSO with gso_size 0", vnet(NEEDS_CSUM, TCPV4, 40, 0, 20, 16), "gso_size 0"),
    ("USO with gso_size 0", vnet(NEEDS_CSUM, UDP_L4, 28, 0, 20, 6), "gso_size 0"),
]


@pytest.mark.parametrize("name,raw,match", HDR_ERRORS, ids=[c[0] for c in HDR_ERRORS])
def test_virtio_net_hdr_decode_errors(name, raw, match):
    with pytest.raises(DecodeError, match=match):
        VirtioNetHdr.decode(raw)


# ---------------------------------------------------------------------------
# Split: tables of super-packets and the exact packets they stand for
# ---------------------------------------------------------------------------

OPTS = bytes.fromhex("0101080a0000abcd0000dcba")  # NOP NOP timestamps: a typical 32-byte TCP header


def _super_tcp4(payload, mss, *, flags=ACK, seq=1000, ident=0x1234, df=True, options=b"", ip_options=b"", ecn=False):
    pkt = tcp4(payload, seq=seq, flags=flags, ident=ident, df=df, options=options, ip_options=ip_options, csum="partial")
    l3 = 20 + len(ip_options)
    gso = TCPV4 | (0x80 if ecn else 0)
    # hdr_len deliberately wrong (the forward path can report the whole first packet): never trusted
    return VirtioNetHdr(NEEDS_CSUM, gso, l3 + 20 + len(options) + mss, mss, l3, 16), pkt


def _expect_tcp(mk, payload, mss, *, flags=ACK, seq=1000, ident=None, **kw):
    """The segments a sender without offloads emits for ``payload``: FIN/PSH last, CWR first, IDs + i."""
    chunks = [payload[i : i + mss] for i in range(0, len(payload), mss)]
    out = []
    for i, c in enumerate(chunks):
        f = flags if i == len(chunks) - 1 else flags & ~(FIN | PSH)
        if i:
            f &= ~CWR
        per = {} if ident is None else {"ident": (ident + i) & 0xFFFF}
        out.append(mk(c, seq=(seq + i * mss) & 0xFFFFFFFF, flags=f, **per, **kw))
    return out


def _expect_tcp4(payload, mss, *, ident=0x1234, **kw):
    return _expect_tcp(tcp4, payload, mss, ident=ident, **kw)


def _expect_tcp6(payload, mss, **kw):
    return _expect_tcp(tcp6, payload, mss, **kw)


def _super_tcp6(payload, mss, *, flags=ACK, seq=1000, ext=b"", ext_first=None, options=b""):
    pkt = tcp6(payload, seq=seq, flags=flags, ext=ext, ext_first=ext_first, options=options, csum="partial")
    return VirtioNetHdr(NEEDS_CSUM, TCPV6, 0, mss, 40 + len(ext), 16), pkt


def _ext(next_header, total_len):
    return bytes([next_header, total_len // 8 - 1]) + bytes(total_len - 2)


P = payload_bytes(5000, seed=11)

SPLIT_CASES = [
    ("tcp4: three full and a short one, PSH only on the last",
     _super_tcp4(P[:350], 100, flags=ACK | PSH), _expect_tcp4(P[:350], 100, flags=ACK | PSH)),
    ("tcp4: FIN and PSH only on the last",
     _super_tcp4(P[:300], 100, flags=ACK | PSH | FIN), _expect_tcp4(P[:300], 100, flags=ACK | PSH | FIN)),
    ("tcp4: CWR only on the first (ECN gso bit), ECE everywhere",
     _super_tcp4(P[:400], 100, flags=ACK | CWR | ECE, ecn=True), _expect_tcp4(P[:400], 100, flags=ACK | CWR | ECE)),
    ("tcp4: IP ID wraps", _super_tcp4(P[:400], 100, ident=0xFFFE), _expect_tcp4(P[:400], 100, ident=0xFFFE)),
    ("tcp4: sequence number wraps", _super_tcp4(P[:400], 100, seq=0xFFFFFF38), _expect_tcp4(P[:400], 100, seq=0xFFFFFF38)),
    ("tcp4: odd segment size", _super_tcp4(P[:1000], 333), _expect_tcp4(P[:1000], 333)),
    ("tcp4: payload within one segment", _super_tcp4(P[:99], 100), _expect_tcp4(P[:99], 100)),
    ("tcp4: DF clear", _super_tcp4(P[:250], 100, df=False), _expect_tcp4(P[:250], 100, df=False)),
    ("tcp4: IP options and TCP options copied to every segment",
     _super_tcp4(P[:500], 120, options=OPTS, ip_options=bytes.fromhex("94040000")),
     _expect_tcp4(P[:500], 120, options=OPTS, ip_options=bytes.fromhex("94040000"))),
    ("tcp4: 64 KB at MSS 1448", _super_tcp4(P[:4344] * 15, 1448, options=OPTS), _expect_tcp4(P[:4344] * 15, 1448, options=OPTS)),
    ("tcp6: three and a short one", _super_tcp6(P[:1000], 300, flags=ACK | PSH), _expect_tcp6(P[:1000], 300, flags=ACK | PSH)),
    ("tcp6: behind hop-by-hop and destination options",
     _super_tcp6(P[:500], 200, ext=_ext(60, 8) + _ext(6, 16), ext_first=0),
     _expect_tcp6(P[:500], 200, ext=_ext(60, 8) + _ext(6, 16), ext_first=0)),
    ("tcp6: FIN, CWR", _super_tcp6(P[:500], 200, flags=ACK | FIN | CWR), _expect_tcp6(P[:500], 200, flags=ACK | FIN | CWR)),
]


@pytest.mark.parametrize("name,sup,want", SPLIT_CASES, ids=[c[0] for c in SPLIT_CASES])
def test_split_table(name, sup, want):
    hdr, pkt = sup
    got = gso_split(hdr, pkt)
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"segment {i} differs"
        assert transport_checksum_ok(g)
    # the same through the read-buffer entry point, header and packet in one buffer
    assert split_read(hdr.encode() + pkt) == want


def _udp_case(v6, payload, size):
    mk = udp6 if v6 else udp4
    sup = mk(payload, csum="partial")
    l3 = 40 if v6 else 20
    hdr = VirtioNetHdr(NEEDS_CSUM, UDP_L4, 9999, size, l3, 6)
    chunks = [payload[i : i + size] for i in range(0, len(payload), size)]
    # USO stamps IPv4 IDs +i like TSO does
    want = [udp6(c) if v6 else udp4(c, ident=0x1234 + i) for i, c in enumerate(chunks)]
    return hdr, sup, want


@pytest.mark.parametrize("v6", [False, True], ids=["udp4", "udp6"])
@pytest.mark.parametrize("length,size", [(3500, 1000), (3000, 1000), (10, 1000), (1201, 1200)])
def test_split_uso(v6, length, size):
    hdr, sup, want = _udp_case(v6, P[:length], size)
    got = gso_split(hdr, sup)
    assert got == want
    assert all(transport_checksum_ok(g) for g in got)


def test_split_uso_checksum_zero_is_sent_as_ffff():
    # Make the second datagram's checksum compute to 0: with its first word w the sum is S + w, and
    # w = ~S (the checksum of the datagram with w = 0) turns it into 0xFFFF, whose complement is 0.
    first, second = P[:100], bytearray(P[100:150])
    second[0:2] = b"\0\0"
    w = ref_checksum(pseudo(SRC4, DST4, 17, 58) + udp_datagram(SRC4, DST4, 40000, 4789, bytes(second), csum=0))
    second[0:2] = struct.pack("!H", w)
    want = [udp4(first), udp4(bytes(second), ident=0x1235)]
    assert struct.unpack_from("!H", want[1], 26)[0] == 0xFFFF  # the reference builder sends 0 as 0xFFFF too
    sup = udp4(first + bytes(second), csum="partial")
    assert gso_split(VirtioNetHdr(NEEDS_CSUM, UDP_L4, 28, 100, 20, 6), sup) == want


def test_split_ipv6_routing_header_takes_the_final_destination_from_the_partial_sum():
    final = "2001:db8:ffff::9"
    rh = bytes([6, 2, 0, 1, 0, 0, 0, 0]) + bytes.fromhex("20010db8ffff00000000000000000009")  # type 0, 1 segment left
    payload = P[:450]
    l4 = tcp_segment(SRC6, final, 40000, 5201, 1000, 2000, ACK, payload, csum="partial")  # kernel: pseudo over final dst
    sup = ipv6_header(SRC6, DST6, 43, len(rh) + len(l4)) + rh + l4
    got = gso_split(VirtioNetHdr(NEEDS_CSUM, TCPV6, 0, 200, 64, 16), sup)
    want = []
    for i in range(3):
        seg = tcp_segment(SRC6, final, 40000, 5201, 1000 + 200 * i, 2000, ACK, payload[200 * i : 200 * i + 200])
        want.append(ipv6_header(SRC6, DST6, 43, len(rh) + len(seg)) + rh + seg)
    assert got == want
    with pytest.raises(DecodeError, match="routing header"):
        gso_split(VirtioNetHdr(0, TCPV6, 0, 200, 64, 16), sup)


NONE_CASES = [
    ("tcp4", tcp4(P[:77], csum="partial"), 20, 16, tcp4(P[:77])),
    ("tcp6", tcp6(P[:77], csum="partial"), 40, 16, tcp6(P[:77])),
    ("udp4", udp4(P[:33], csum="partial"), 20, 6, udp4(P[:33])),
    ("udp6", udp6(P[:1], csum="partial"), 40, 6, udp6(P[:1])),
]


@pytest.mark.parametrize("name,pkt,start,off,want", NONE_CASES, ids=[c[0] for c in NONE_CASES])
def test_gso_none_with_needs_csum_is_finished(name, pkt, start, off, want):
    hdr = VirtioNetHdr(NEEDS_CSUM, NONE, 0, 0, start, off)
    assert gso_split(hdr, pkt) == [want]
    assert checksum_partial(hdr, memoryview(pkt)) == want


def test_gso_none_without_flags_is_passed_through_untouched():
    pkt = bytearray(tcp4(b"abc"))
    got = gso_split(ZERO_HDR, pkt)
    assert got == [pkt] and got[0] is pkt
    assert gso_split(DATA_VALID_HDR, pkt)[0] is pkt


def test_needs_csum_bounds():
    pkt = tcp4(b"abc")
    for start, off in ((len(pkt), 0), (20, len(pkt) - 21), (60000, 16)):
        with pytest.raises(DecodeError, match="outside"):
            checksum_partial(VirtioNetHdr(NEEDS_CSUM, NONE, 0, 0, start, off), pkt)


def _sup(**kw):
    return _super_tcp4(P[:300], 100, **kw)[1]


CHECK_ERRORS = [
    ("TCPV4 on IPv6", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 40, 16), tcp6(P[:300], csum="partial"), "IP version 6"),
    ("TCPV6 on IPv4", VirtioNetHdr(NEEDS_CSUM, TCPV6, 0, 100, 20, 16), _sup(), "IP version 4"),
    ("TCPV4 on UDP", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), udp4(P[:300], csum="partial"), "protocol 17"),
    ("UDP_L4 on TCP", VirtioNetHdr(NEEDS_CSUM, UDP_L4, 0, 100, 20, 6), _sup(), "protocol 6"),
    ("empty", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), b"", "empty"),
    ("total length too long", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), _sup()[:-1], "total length"),
    ("total length too short", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), _sup() + b"\0", "total length"),
    ("IPv6 payload length", VirtioNetHdr(NEEDS_CSUM, TCPV6, 0, 100, 40, 16), tcp6(P[:300], csum="partial") + b"\0", "payload length"),
    ("fragment", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), _sup()[:6] + b"\x20\x00" + _sup()[8:], "fragment"),
    ("csum_start not the L4 offset", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 24, 16), _sup(), "csum_start 24"),
    ("csum_offset not the TCP field", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 6), _sup(), "csum_offset 6"),
    ("TCP data offset below 20", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), _sup()[:32] + b"\x40" + _sup()[33:], "below 20"),
    ("TCP data offset past the end", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), tcp4(b"", flags=ACK)[:32] + b"\xf0" +
     tcp4(b"", flags=ACK)[33:], "no payload"),
    ("TCP header truncated", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), ipv4_header("192.0.2.1", "198.51.100.2", 6, 10) +
     bytes(10), "needs 20"),
    ("no payload", VirtioNetHdr(NEEDS_CSUM, TCPV4, 0, 100, 20, 16), tcp4(b"", csum="partial"), "no payload"),
    ("UDP length mismatch", VirtioNetHdr(NEEDS_CSUM, UDP_L4, 0, 100, 20, 6),
     udp4(P[:300], csum="partial")[:24] + b"\x00\x10" + udp4(P[:300], csum="partial")[26:], "UDP length"),
    ("not a segmentation type", VirtioNetHdr(NEEDS_CSUM, NONE, 0, 100, 20, 16), _sup(), "not a segmentation type"),
]


@pytest.mark.parametrize("name,hdr,pkt,match", CHECK_ERRORS, ids=[c[0] for c in CHECK_ERRORS])
def test_gso_check_errors(name, hdr, pkt, match):
    with pytest.raises(DecodeError, match=match):
        gso_check(hdr, pkt)
    if hdr.gso_type:
        with pytest.raises(DecodeError):
            gso_split(hdr, pkt)


def test_gso_check_recomputes_hdr_len():
    hdr, pkt = _super_tcp4(P[:300], 100, options=OPTS)
    assert hdr.hdr_len != 52
    info = gso_check(hdr, pkt)
    assert (info.l3_len, info.hdr_len, info.payload_len) == (20, 52, 300)
    hdr, pkt, _ = _udp_case(True, P[:300], 100)
    assert gso_check(hdr, pkt).hdr_len == 48


# ---------------------------------------------------------------------------
# Coalesce: tables of packet sequences and the results they must produce
# ---------------------------------------------------------------------------

M = 100  # segment size in the tables


def seg4(i, n=M, *, seq0=1000, flags=ACK, ident0=0x1234, ident=None, **kw):
    """Segment i of a flow: payload bytes [i*M, i*M+n), IP ID ident0+i unless given."""
    return tcp4(P[i * M : i * M + n], seq=seq0 + i * M, flags=flags, ident=ident0 + i if ident is None else ident, **kw)


def seg6(i, n=M, *, seq0=1000, flags=ACK, **kw):
    return tcp6(P[i * M : i * M + n], seq=seq0 + i * M, flags=flags, **kw)


def corrupt(pkt):
    b = bytearray(pkt)
    b[-1] ^= 0x5A
    return bytes(b)


ICMP = ipv4_header("192.0.2.1", "198.51.100.2", 1, 8) + bytes.fromhex("0800f7ff00000000")

# (name, packets, expected results: (kind, [input indices]); kind is gso / one / raw)
COALESCE_CASES = [
    ("three in a row", [seg4(0), seg4(1), seg4(2)], [("gso", [0, 1, 2])]),
    ("short segment closes the chain", [seg4(0), seg4(1), seg4(2, 50), seg4(3)], [("gso", [0, 1, 2]), ("one", [3])]),
    ("PSH closes the chain and rides on the last", [seg4(0), seg4(1, flags=ACK | PSH), seg4(2)], [("gso", [0, 1]), ("one", [2])]),
    ("PSH on the first segment stands alone", [seg4(0, flags=ACK | PSH), seg4(1)], [("one", [0]), ("one", [1])]),
    ("sequence gap", [seg4(0), seg4(2, ident=0x1235)], [("one", [0]), ("one", [1])]),
    ("a larger segment does not follow a smaller one", [seg4(0, 60), tcp4(P[60:160], seq=1060, ident=0x1235)],
     [("one", [0]), ("one", [1])]),
    ("ACK number differs", [seg4(0), seg4(1, ack=2001)], [("one", [0]), ("one", [1])]),
    ("window differs", [seg4(0), seg4(1, window=503)], [("one", [0]), ("one", [1])]),
    ("TCP options differ", [seg4(0, options=OPTS), seg4(1, options=OPTS[:-1] + b"\xbb")], [("one", [0]), ("one", [1])]),
    ("TCP options equal", [seg4(0, options=OPTS), seg4(1, options=OPTS)], [("gso", [0, 1])]),
    ("urgent pointer differs", [seg4(0), seg4(1, urg=1)], [("one", [0]), ("one", [1])]),
    ("ECT(0) and ECT(1) never merge", [seg4(0, tos=2), seg4(1, tos=1)], [("one", [0]), ("one", [1])]),
    ("DSCP differs", [seg4(0, tos=0xB8), seg4(1, tos=0)], [("one", [0]), ("one", [1])]),
    ("same DSCP/ECN merge", [seg4(0, tos=0xBA), seg4(1, tos=0xBA)], [("gso", [0, 1])]),
    ("TTL differs", [seg4(0), seg4(1, ttl=63)], [("one", [0]), ("one", [1])]),
    ("ECE must agree", [seg4(0), seg4(1, flags=ACK | ECE)], [("one", [0]), ("one", [1])]),
    ("ECE agreed", [seg4(0, flags=ACK | ECE), seg4(1, flags=ACK | ECE | PSH)], [("gso", [0, 1])]),
    ("IPv4 IDs must be sequential without DF", [seg4(0, df=False), seg4(1, df=False, ident=0x9999)], [("one", [0]), ("one", [1])]),
    ("sequential IDs without DF merge", [seg4(0, df=False), seg4(1, df=False), seg4(2, df=False)], [("gso", [0, 1, 2])]),
    ("IDs wrap", [seg4(0, ident0=0xFFFF), seg4(1, ident0=0xFFFF, ident=0)], [("gso", [0, 1])]),
    ("DF differs", [seg4(0), seg4(1, df=False)], [("one", [0]), ("one", [1])]),
    ("pure ACK goes out alone and does not seal", [seg4(0), tcp4(b"", seq=1100), seg4(1)], [("gso", [0, 2]), ("raw", [1])]),
    ("pure ACK of the other direction", [seg4(0), tcp4(b"", sport=5201, dport=40000, seq=2000, ack=1100), seg4(1)],
     [("gso", [0, 2]), ("raw", [1])]),
    ("CWR seals the flow and goes verbatim", [seg4(0), tcp4(b"", seq=1100, flags=ACK | CWR), seg4(1)],
     [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("CWR data segment", [seg4(0), seg4(1, flags=ACK | CWR), seg4(2)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("FIN seals", [seg4(0), tcp4(b"", seq=1100, flags=ACK | FIN), seg4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("SYN seals", [seg4(0), tcp4(b"", seq=1100, flags=SYN), seg4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("RST seals", [seg4(0), tcp4(b"", seq=1100, flags=RST | ACK), seg4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("URG seals", [seg4(0), seg4(1, flags=ACK | URG, urg=5), seg4(2)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("data without ACK seals", [seg4(0), seg4(1, flags=PSH), seg4(2)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("sealing is per flow", [seg4(0), tcp4(b"", sport=1, flags=ACK | FIN), seg4(1)], [("gso", [0, 2]), ("raw", [1])]),
    ("unparseable packet seals every flow", [seg4(0), b"\x00" * 40, seg4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("ICMP seals every flow", [seg4(0), ICMP, seg4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    # issue 14 item 18: TCP and UDP chains are kept apart, as nebula's and wireguard-go's coalescers do
    ("UDP without USO is verbatim and seals no TCP chain", [seg4(0), udp4(b"dns?"), seg4(1)], [("gso", [0, 2]), ("raw", [1])]),
    ("UDP datagrams between TCP segments", [seg4(0), udp4(b"a"), udp4(b"b"), seg4(1), udp4(b"c"), seg4(2)],
     [("gso", [0, 3, 5]), ("raw", [1]), ("raw", [2]), ("raw", [4])]),
    ("UDP between IPv6 TCP segments", [seg6(0), udp4(b"q"), seg6(1)], [("gso", [0, 2]), ("raw", [1])]),
    ("too short to parse", [seg4(0), b"\x45" * 27, seg4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("IPv4 options never coalesce", [seg4(0, ip_options=bytes(4)), seg4(1, ip_options=bytes(4))], [("raw", [0]), ("raw", [1])]),
    ("IPv4 fragments never coalesce", [seg4(0)[:6] + b"\x20\x00" + seg4(0)[8:]], [("raw", [0])]),
    ("trailing bytes after the IP length", [seg4(0) + b"\0", seg4(1)], [("raw", [0]), ("one", [1])]),
    ("TCP data offset past the end", [seg4(0)[:32] + b"\xf0" + seg4(0)[33:40]], [("raw", [0])]),
    ("corrupt segment is never merged and seals its flow", [seg4(0), corrupt(seg4(1)), seg4(1), seg4(2)],
     [("one", [0]), ("raw", [1]), ("gso", [2, 3])]),
    ("corrupt first segment", [corrupt(seg4(0)), seg4(1), seg4(2)], [("raw", [0]), ("gso", [1, 2])]),
    ("two interleaved flows", [seg4(0), seg4(0, sport=1), seg4(1), seg4(1, sport=1)], [("gso", [0, 2]), ("gso", [1, 3])]),
    ("v4 and v6 flows apart", [seg4(0), seg6(0), seg4(1), seg6(1)], [("gso", [0, 2]), ("gso", [1, 3])]),
    ("tcp6: three in a row", [seg6(0), seg6(1), seg6(2, 10)], [("gso", [0, 1, 2])]),
    ("tcp6: flow label differs", [seg6(0), seg6(1, flow=7)], [("one", [0]), ("one", [1])]),
    ("tcp6: hop limit differs", [seg6(0), seg6(1, hlim=1)], [("one", [0]), ("one", [1])]),
    ("tcp6: traffic class differs", [seg6(0, tclass=1), seg6(1, tclass=2)], [("one", [0]), ("one", [1])]),
    ("tcp6: extension headers never coalesce", [seg6(0, ext=_ext(6, 8), ext_first=0), seg6(1, ext=_ext(6, 8), ext_first=0)],
     [("raw", [0]), ("raw", [1])]),
    ("tcp6: corrupt", [seg6(0), corrupt(seg6(1))], [("one", [0]), ("raw", [1])]),
]


def _tcp_payload(pkt):
    l3 = 20 if pkt[0] >> 4 == 4 else 40
    return pkt[l3 + (pkt[l3 + 12] >> 4) * 4 :]


def check_results(results, packets, expected):
    """Compare coalescer output with expected (kind, indices); gso results are split back and compared."""
    assert [(k, len(ix)) for k, ix in expected] == [(_kind(h, b), len(_members(h, b))) for h, b in results], "result shapes"
    for (hdr, bufs), (kind, idx) in zip(results, expected):
        body = b"".join(bufs)
        if kind == "raw":
            assert hdr == ZERO_HDR and body == packets[idx[0]]
        elif kind == "one":
            assert hdr == DATA_VALID_HDR and body == packets[idx[0]]
        else:
            VirtioNetHdr.decode(hdr.encode())  # a header the kernel would take
            first = packets[idx[0]]
            v6 = first[0] >> 4 == 6
            l3 = 40 if v6 else 20
            tcp = first[9 if not v6 else 6] == 6
            hl = l3 + ((first[l3 + 12] >> 4) * 4 if tcp else 8)
            assert hdr.flags == VirtioNetHdrFlag.NEEDS_CSUM
            assert hdr.gso_type == ((TCPV6 if v6 else TCPV4) if tcp else UDP_L4)
            assert (hdr.hdr_len, hdr.gso_size, hdr.csum_start, hdr.csum_offset) == (hl, len(first) - hl, l3, 16 if tcp else 6)
            assert len(body) <= MAX_BYTES and len(bufs) - 1 == len(idx) <= MAX_SEGMENTS
            assert isinstance(bufs[0], bytes) and len(bufs[0]) == hl  # headers kept apart from payload views
            got, want = gso_split(hdr, body), [packets[i] for i in idx]
            if not v6 and first[6] & 0x40:  # DF: the kernel restamps IDs as first + i; all else is kept
                assert [struct.unpack_from("!H", g, 4)[0] for g in got] == [(struct.unpack_from("!H", first, 4)[0] + i) & 0xFFFF
                                                                            for i in range(len(got))]
                got, want = [_norm(g) for g in got], [_norm(w) for w in want]
            assert got == want


def _kind(hdr, bufs):
    if hdr.gso_type:
        return "gso"
    return "one" if hdr == DATA_VALID_HDR else "raw"


def _members(hdr, bufs):
    return gso_split(hdr, b"".join(bufs)) if hdr.gso_type else [None]


@pytest.mark.parametrize("name,packets,expected", COALESCE_CASES, ids=[c[0] for c in COALESCE_CASES])
def test_coalesce_table(name, packets, expected):
    check_results(coalesce(packets), packets, expected)
    # memoryviews and bytearrays are accepted the same way
    check_results(coalesce([memoryview(bytearray(p)) for p in packets]), packets, expected)


def _udp4(i, n=M, ident=None, **kw):
    return udp4(P[i * M : i * M + n], ident=0x1234 + i if ident is None else ident, **kw)


def _udp6(i, n=M, **kw):
    return udp6(P[i * M : i * M + n], **kw)


UDP_CASES = [
    ("udp4: three in a row, shorter last", [_udp4(0), _udp4(1), _udp4(2, 7)], [("gso", [0, 1, 2])]),
    ("udp4: a short datagram closes", [_udp4(0), _udp4(1, 50), _udp4(2)], [("gso", [0, 1]), ("one", [2])]),
    ("udp4: a larger one starts afresh", [_udp4(0, 50), _udp4(1), _udp4(2)], [("one", [0]), ("gso", [1, 2])]),
    ("udp4: zero-length datagram seals", [_udp4(0), _udp4(1, 0), _udp4(2, ident=0x1235)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("udp4: no checksum is never merged", [_udp4(0, csum=0), _udp4(1, csum=0)], [("raw", [0]), ("raw", [1])]),
    ("udp4: corrupt seals", [_udp4(0), corrupt(_udp4(1)), _udp4(1)], [("one", [0]), ("raw", [1]), ("one", [2])]),
    ("udp4: IDs must be sequential without DF", [_udp4(0), _udp4(1, ident=5)], [("one", [0]), ("one", [1])]),
    ("udp4: DF lifts the ID rule", [_udp4(0, df=True), _udp4(1, ident=5, df=True)], [("gso", [0, 1])]),
    ("udp4: TOS differs", [_udp4(0), _udp4(1, tos=4)], [("one", [0]), ("one", [1])]),
    ("udp: TCP and UDP on the same ports stay apart", [_udp4(0), seg4(0, sport=40000, dport=4789), _udp4(1)],
     [("gso", [0, 2]), ("one", [1])]),
    ("udp6: three", [_udp6(0), _udp6(1), _udp6(2)], [("gso", [0, 1, 2])]),
    ("udp6: checksum 0 is invalid", [_udp6(0, csum=0), _udp6(1)], [("raw", [0]), ("one", [1])]),
    ("udp6: hop limit differs", [_udp6(0), _udp6(1, hlim=9)], [("one", [0]), ("one", [1])]),
]


@pytest.mark.parametrize("name,packets,expected", UDP_CASES, ids=[c[0] for c in UDP_CASES])
def test_coalesce_udp_table(name, packets, expected):
    check_results(coalesce(packets, uso=True), packets, expected)


def test_udp_is_verbatim_without_uso():
    pk = [_udp4(0), _udp4(1)]
    check_results(coalesce(pk), pk, [("raw", [0]), ("raw", [1])])


def test_segment_cap():
    pk = tcp_stream(70, 100)
    check_results(coalesce(pk), pk, [("gso", list(range(64))), ("gso", list(range(64, 70)))])
    pk = udp_stream(70, 100)
    check_results(coalesce(pk, uso=True), pk, [("gso", list(range(64))), ("gso", list(range(64, 70)))])
    pk = tcp_stream(10, 100)
    check_results(_run(Coalescer(max_segments=4), pk), pk, [("gso", [0, 1, 2, 3]), ("gso", [4, 5, 6, 7]), ("gso", [8, 9])])


def _run(co, pk):
    for p in pk:
        co.add(p)
    return co.flush()


@pytest.mark.parametrize("v6", [False, True])
def test_byte_cap(v6):
    # 46 x 1460 bytes: 45 would make 65,740 (v4) bytes, past 65,535; 44 fit
    pk = tcp_stream(46, 1460, v6=v6)
    n_first = (MAX_BYTES - (40 if not v6 else 60)) // 1460
    check_results(coalesce(pk), pk, [("gso", list(range(n_first))), ("gso", list(range(n_first, 46)))])


def test_df_ids_are_restamped_but_nothing_else_changes():
    pk = [seg4(i, ident=random.Random(i).randrange(65536)) for i in range(4)]
    ((hdr, bufs),) = coalesce(pk)
    got = gso_split(hdr, b"".join(bufs))
    assert [struct.unpack_from("!H", g, 4)[0] for g in got] == [(struct.unpack_from("!H", pk[0], 4)[0] + i) & 0xFFFF for i in range(4)]
    for g, p in zip(got, pk):
        assert g[:4] + g[6:10] + g[12:] == p[:4] + p[6:10] + p[12:]


# Trusted packets with partial checksums (what an authenticated overlay peer's TUN handed out):
# add(pkt, hdr) must give exactly the full-checksum results, except that whatever goes out unmerged
# keeps its own NEEDS_CSUM header.  Rows about checksums themselves do not apply.
def _as_partial(pkt):
    """(pkt with its L4 checksum field holding the pseudo-header sum, its NEEDS_CSUM header), or (pkt, None)."""
    if len(pkt) >= 28 and pkt[0] == 0x45 and struct.unpack_from("!H", pkt, 2)[0] == len(pkt) and pkt[9] in (6, 17):
        l3, proto, src, dst = 20, pkt[9], pkt[12:16], pkt[16:20]
    elif len(pkt) >= 48 and pkt[0] >> 4 == 6 and struct.unpack_from("!H", pkt, 4)[0] + 40 == len(pkt) and pkt[6] in (6, 17):
        l3, proto, src, dst = 40, pkt[6], pkt[8:24], pkt[24:40]
    else:
        return pkt, None
    field = 16 if proto == 6 else 6
    if len(pkt) < l3 + field + 2:
        return pkt, None
    ph = pseudo(str(ipaddress.ip_address(src)), str(ipaddress.ip_address(dst)), proto, len(pkt) - l3)
    out = pkt[: l3 + field] + struct.pack("!H", ref_sum(ph)) + pkt[l3 + field + 2 :]
    return out, VirtioNetHdr(VirtioNetHdrFlag.NEEDS_CSUM, NONE, 0, 0, l3, field)


TRUSTED_CASES = [  # rows with at least one packet that has a checksum field to make partial
    (c, uso)
    for table, uso in ((COALESCE_CASES, False), (UDP_CASES, True))
    for c in table
    if "corrupt" not in c[0] and "checksum" not in c[0] and any(_as_partial(p)[1] is not None for p in c[1])
]


@pytest.mark.parametrize("case,uso", TRUSTED_CASES, ids=[c[0] for c, _ in TRUSTED_CASES])
def test_trusted_partial_packets_coalesce_like_verified_ones(case, uso):
    _name, packets, _expected = case
    want = coalesce(packets, uso=uso)
    conv = [_as_partial(p) for p in packets]
    co = Coalescer(uso=uso)
    for pkt, hdr in conv:
        co.add(pkt, hdr)
    got = co.flush()
    assert len(got) == len(want)
    by_full = {p: i for i, p in enumerate(packets)}
    for (gh, gb), (wh, wb) in zip(got, want):
        if wh.gso_type:  # merged: the same super-packet, whatever the members' checksum fields held
            assert gh == wh and b"".join(gb) == b"".join(wb)
        else:  # unmerged: the partial packet under its own header (or the old one if it had none)
            pkt, hdr = conv[by_full[b"".join(wb)]]
            assert b"".join(gb) == pkt
            assert gh == (hdr if hdr is not None else wh)


def test_trusted_packets_are_not_verified_and_odd_headers_go_out_verbatim():
    a, ha = _as_partial(seg4(0))
    b, hb = _as_partial(seg4(1))
    garbage = b[:36] + b"\xde\xad" + b[38:]  # trusted: the field is not read, merging rewrites it
    co = Coalescer()
    co.add(a, ha)
    co.add(garbage, hb)
    (hdr, bufs), = co.flush()
    assert hdr.gso_type == TCPV4 and gso_split(hdr, b"".join(bufs)) == [seg4(0), seg4(1)]
    # csum_start/csum_offset that are not this packet's own checksum field: verbatim, header kept
    odd = hb._replace(csum_offset=6)
    co.add(a, ha)
    co.add(b, odd)
    assert co.flush() == [(ha, [a]), (odd, [b])]
    for bad in (hb._replace(gso_type=TCPV4), hb._replace(flags=VirtioNetHdrFlag.DATA_VALID)):
        with pytest.raises(ValueError, match="NEEDS_CSUM"):
            co.add(b, bad)


def test_coalescer_state_and_arguments():
    co = Coalescer()
    for p in (seg4(0), seg4(1), b"junk"):
        co.add(p)
    assert len(co) == 2
    assert len(co.flush()) == 2 and len(co) == 0
    co.add(seg4(2, seq0=800))  # after a flush nothing is open: seq 1000 would have continued, but starts afresh
    assert co.flush()[0][0] == DATA_VALID_HDR
    with pytest.raises(ValueError):
        Coalescer(max_segments=0)
    with pytest.raises(ValueError):
        Coalescer(max_bytes=70000)


def test_unverified_mode_merges_without_reading_checksums():
    pk = [seg4(0), corrupt(seg4(1))]
    assert [h.gso_type for h, _ in coalesce(pk, verify_checksums=False)] == [TCPV4]
    assert [h.gso_type for h, _ in coalesce(pk)] == [NONE, NONE]


# ---------------------------------------------------------------------------
# Round trips: coalesce(split(x)) reproduces x; split(coalesce(xs)) reproduces xs
# ---------------------------------------------------------------------------

ROUND_TRIPS = [
    ("tcp4 ACK", _super_tcp4(P[:4000], 1000)),
    ("tcp4 ACK|PSH, short last", _super_tcp4(P[:3500], 1000, flags=ACK | PSH)),
    ("tcp4 with options, DF clear", _super_tcp4(P[:2900], 700, options=OPTS, df=False)),
    ("tcp4 64 KB", _super_tcp4(P[:4344] * 15, 1448, options=OPTS)),
    ("tcp6", _super_tcp6(P[:5000], 1220, flags=ACK | PSH)),
    ("tcp6 ECE", _super_tcp6(P[:800], 200, flags=ACK | ECE, options=OPTS)),
    ("udp4", _udp_case(False, P[:3500], 1000)[:2]),
    ("udp6", _udp_case(True, P[:4000], 1000)[:2]),
]


@pytest.mark.parametrize("name,sup", ROUND_TRIPS, ids=[c[0] for c in ROUND_TRIPS])
def test_split_then_coalesce_reproduces_the_super_packet(name, sup):
    hdr, pkt = sup
    segs = gso_split(hdr, pkt)
    assert len(segs) > 1
    ((h2, bufs),) = coalesce(segs, uso=True)
    # same header semantics (hdr_len recomputed: the input's was wrong on purpose) and the same bytes:
    # the super-packet's checksum field holds the pseudo-header sum, as the kernel's does
    assert (h2.flags, h2.gso_type, h2.gso_size, h2.csum_start, h2.csum_offset) == (
        hdr.flags, hdr.gso_type, hdr.gso_size, hdr.csum_start, hdr.csum_offset)
    assert h2.hdr_len == gso_check(hdr, pkt).hdr_len
    assert b"".join(bufs) == pkt


@pytest.mark.parametrize("flags,verbatim_at", [(ACK | FIN, -1), (ACK | CWR, 0), (ACK | PSH | FIN | CWR, None)])
def test_round_trip_with_flags_that_never_coalesce(flags, verbatim_at):
    hdr, pkt = _super_tcp4(P[:1000], 200, flags=flags, ecn=bool(flags & CWR))
    segs = gso_split(hdr, pkt)
    res = coalesce(segs)
    # every result splits back into the original segments, in order
    assert [s for h, b in res for s in gso_split(h, b"".join(b))] == segs
    if verbatim_at is not None:
        assert sum(1 for h, _ in res if h == ZERO_HDR) == 1
        assert res[verbatim_at][0] == ZERO_HDR
    else:
        assert [h for h, _ in res] == [ZERO_HDR, VirtioNetHdr(NEEDS_CSUM, TCPV4, 40, 200, 20, 16), ZERO_HDR]


def test_split_of_coalesced_streams_reproduces_them():
    rng = random.Random(5)
    for trial in range(20):
        v6 = trial % 2 == 1
        mss = rng.randrange(1, 1500)
        n = rng.randrange(1, 80)
        last = rng.randrange(1, mss + 1)
        if rng.random() < 0.5:
            pk = tcp_stream(n, mss, v6=v6, last_len=last, seq=rng.randrange(1 << 32), ident=rng.randrange(65536), seed=trial,
                            df=bool(trial & 2))
            res = coalesce(pk)
        else:
            pk = udp_stream(n, mss, v6=v6, last_len=last, ident=rng.randrange(65536), seed=trial)
            res = coalesce(pk, uso=True)
        assert [s for h, b in res for s in gso_split(h, b"".join(b))] == pk, (trial, mss, n)


# ---------------------------------------------------------------------------
# Fuzz
# ---------------------------------------------------------------------------


def test_fuzz_header_decode_and_split_raise_only_decode_error():
    rng = random.Random(17)
    seeds = [_super_tcp4(P[:700], 100, options=OPTS), _super_tcp6(P[:500], 90), _udp_case(False, P[:500], 64)[:2],
             _udp_case(True, P[:300], 100)[:2], (VirtioNetHdr(NEEDS_CSUM, 0, 0, 0, 20, 16), tcp4(b"abc", csum="partial"))]
    ok = 0
    for _ in range(3000):
        hdr, pkt = rng.choice(seeds)
        raw = bytearray(hdr.encode() + pkt)
        kind = rng.randrange(3)
        if kind == 0:
            for _ in range(rng.randrange(1, 4)):
                raw[rng.randrange(len(raw))] = rng.randrange(256)
        elif kind == 1:
            del raw[rng.randrange(len(raw)) :]
        else:
            raw[rng.randrange(10)] = rng.randrange(256)  # header fields only
        try:
            segs = split_read(bytes(raw))
        except DecodeError:
            continue
        ok += 1
        h = VirtioNetHdr.decode(raw)
        if h.gso_type & 0x7F:
            info = gso_check(h, memoryview(raw)[10:])
            assert len(segs) == -(-info.payload_len // h.gso_size)
            assert all(len(s) <= info.hdr_len + h.gso_size for s in segs)
            assert sum(len(s) - info.hdr_len for s in segs) == info.payload_len
    assert ok > 300


def test_fuzz_random_bytes_through_split_read():
    rng = random.Random(19)
    for _ in range(3000):
        raw = rng.randbytes(rng.randrange(0, 90))
        try:
            split_read(raw)
        except DecodeError:
            pass


def _norm(pkt):
    """Packet bytes with the IPv4 ID and header checksum masked when DF is set (GSO restamps them)."""
    b = bytes(pkt)
    if len(b) >= 20 and b[0] == 0x45 and b[6] & 0x40:
        return b[:4] + b"\0\0" + b[6:10] + b"\0\0" + b[12:]
    return b


def _flow(pkt, uso=True):
    """(protocol, addresses, ports) for a packet the coalescer can place in a flow, else None (the spec, restated)."""
    b = bytes(pkt)
    if len(b) >= 28 and b[0] == 0x45 and struct.unpack_from("!H", b, 2)[0] == len(b) and not struct.unpack_from("!H", b, 6)[0] & 0x3FFF:
        l3, proto, addrs = 20, b[9], b[12:20]
    elif len(b) >= 48 and b[0] >> 4 == 6 and struct.unpack_from("!H", b, 4)[0] + 40 == len(b):
        l3, proto, addrs = 40, b[6], b[8:40]
    else:
        return None
    if proto == 6 and len(b) >= l3 + 20 and 5 <= b[l3 + 12] >> 4 and l3 + (b[l3 + 12] >> 4) * 4 <= len(b):
        return (6, addrs, b[l3 : l3 + 4])
    if proto == 17 and struct.unpack_from("!H", b, l3 + 4)[0] == len(b) - l3:  # a UDP flow even without USO
        return (17, addrs, b[l3 : l3 + 4])
    return None


def _pure_ack(pkt):
    l3 = 20 if pkt[0] == 0x45 else 40
    return len(pkt) == l3 + (pkt[l3 + 12] >> 4) * 4


def _fuzz_stream(rng):
    """Several TCP/UDP flows (v4/v6) interleaved, with losses, duplicates, corruption, flags and junk."""
    flows = []
    for f in range(rng.randrange(1, 4)):
        v6 = rng.random() < 0.4
        if rng.random() < 0.3:
            flows.append(udp_stream(rng.randrange(1, 20), rng.randrange(1, 300), v6=v6, sport=1000 + f, seed=f,
                                    last_len=rng.randrange(0, 50), df=rng.random() < 0.5))
        else:
            flows.append(tcp_stream(rng.randrange(1, 30), rng.randrange(1, 300), v6=v6, sport=1000 + f, seed=f,
                                    last_len=rng.randrange(1, 50), df=rng.random() < 0.7, options=OPTS if rng.random() < 0.5 else b""))
    packets = []
    queues = [list(f) for f in flows]
    while any(queues):
        q = rng.choice([q for q in queues if q])
        p = q.pop(0)
        r = rng.random()
        if r < 0.05:
            continue  # lost
        if r < 0.10:
            p = corrupt(p)
        elif r < 0.14:
            p = rng.randbytes(rng.randrange(0, 70))  # junk
        elif r < 0.18 and p[0] == 0x45 and p[9] == 6:
            b = bytearray(p)
            b[33] = rng.choice([ACK | PSH, ACK | FIN, SYN, RST, ACK | CWR, ACK | URG, ACK | ECE])
            p = tcp4(_tcp_payload(bytes(b)), seq=struct.unpack_from("!I", b, 24)[0], flags=b[33], sport=struct.unpack_from("!H", b, 20)[0],
                     ident=struct.unpack_from("!H", b, 4)[0], df=bool(b[6] & 0x40), options=bytes(b[40 : 20 + (b[32] >> 4) * 4]))
        elif r < 0.22:
            packets.append(p)  # duplicated
        packets.append(p)
        if rng.random() < 0.05:
            src = _flow(p)
            if src and src[0] == 6 and p[0] == 0x45 and len(p) >= 40:
                packets.append(tcp4(b"", sport=struct.unpack_from("!H", p, 20)[0], seq=struct.unpack_from("!I", p, 24)[0]))  # pure ACK
    return packets


def test_fuzz_coalescer_outputs_in_bounds_and_in_order():
    rng = random.Random(23)
    for trial in range(120):
        packets = _fuzz_stream(rng)
        uso = rng.random() < 0.6
        results = coalesce(packets, uso=uso)
        # map every output packet back to an input index (inputs can repeat: take them in order)
        where: dict[bytes, list[int]] = {}
        for i, p in enumerate(packets):
            where.setdefault(_norm(p), []).append(i)
        order, absorbed = [], set()
        for hdr, bufs in results:
            hdr2 = VirtioNetHdr.decode(hdr.encode())
            body = b"".join(bufs)
            assert len(body) <= MAX_BYTES
            if hdr2.gso_type:
                assert len(bufs) - 1 <= MAX_SEGMENTS
                segs = gso_split(hdr2, body)
            else:
                segs = [body]
            idx = []
            for s in segs:
                cands = where.get(_norm(s))
                assert cands, f"trial {trial}: output packet not among the inputs"
                idx.append(cands.pop(0))
            if hdr2.gso_type or hdr2 == DATA_VALID_HDR:
                # never healed: everything merged or marked DATA_VALID verified on its own
                assert all(transport_checksum_ok(packets[i]) for i in idx)
                absorbed.update((i, idx[0]) for i in idx[1:])
            order.extend(idx)
        assert sorted(order) == list(range(len(packets))), f"trial {trial}: packets lost or duplicated"
        pos = {i: k for k, i in enumerate(order)}
        seed_of = dict(absorbed)
        for j in range(len(packets)):
            for i in range(j):
                if pos[i] < pos[j]:
                    continue
                # an inversion: only a segment absorbed into a chain started before i may overtake i,
                # never past a packet that seals everything, and within a flow only past a pure ACK
                assert j in seed_of and seed_of[j] < i, f"trial {trial}: {j} overtook {i}"
                fi = _flow(packets[i], uso)
                assert fi is not None, f"trial {trial}: {j} passed {i}, which seals every flow"
                if fi == _flow(packets[j], uso):
                    assert fi[0] == 6 and _pure_ack(packets[i]), f"trial {trial}: {j} overtook same-flow packet {i}"
