"""tunkit.packet.ip: checksums against a reference loop, header views as tables, fuzzed decoders."""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest

from support_offload import (
    ACK,
    DST4,
    DST6,
    PSH,
    SRC4,
    SRC6,
    ipv6_header,
    pseudo,
    ref_checksum,
    ref_sum,
    tcp4,
    tcp6,
    udp4,
    udp6,
)
from tunkit.errors import DecodeError
from tunkit.packet.ip import (
    IPV4_HEADER,
    IPV6_HEADER,
    TCP_HEADER,
    UDP_HEADER,
    IPv4Header,
    IPv6Header,
    TcpFlag,
    TCPHeader,
    UDPHeader,
    csum16,
    csum_fold,
    internet_checksum,
    ipv4_header_checksum,
    parse_ip,
    pseudo_header_sum,
    transport_checksum,
    transport_checksum_ok,
)

# ---------------------------------------------------------------------------
# Checksums
# ---------------------------------------------------------------------------


def _prefix_reference(data: bytes) -> list[int]:
    """ref_checksum of every prefix data[:n], n = 0..len(data), by the same word loop run once."""
    out = [0xFFFF]  # the empty buffer: sum 0, complement 0xFFFF
    s = 0
    for i in range(len(data)):
        if i & 1 == 0:  # odd prefix length: the last byte is the high half of a padded word
            t = s + (data[i] << 8)
            out.append(~((t & 0xFFFF) + (t >> 16)) & 0xFFFF)
        else:
            s += (data[i - 1] << 8) | data[i]
            s = (s & 0xFFFF) + (s >> 16)
            out.append(~s & 0xFFFF)
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_checksum_matches_reference_for_every_length_to_9001(seed):
    data = random.Random(seed).randbytes(9001)
    want = _prefix_reference(data)
    mv = memoryview(data)
    # the prefix reference is itself checked against the plain reference on a sample of lengths
    for n in (0, 1, 2, 3, 19, 20, 1499, 1500, 9000, 9001):
        assert want[n] == ref_checksum(data[:n])
    bad = [n for n in range(9002) if internet_checksum(mv[:n]) != want[n]]
    assert not bad, f"lengths with wrong checksums: {bad[:10]}"


def test_checksum_at_odd_offsets_and_with_seeds():
    rng = random.Random(3)
    data = rng.randbytes(4000)
    for _ in range(300):
        a = rng.randrange(0, 2000)
        b = rng.randrange(a, 4000)
        seed = rng.choice([0, 1, 0xFFFF, rng.randrange(1 << 20)])
        chunk = data[a:b]
        # a seed is the same as two big-endian words prepended (seed < 2**32 here)
        want = ref_checksum(struct.pack("!I", seed) + chunk)
        assert internet_checksum(memoryview(data)[a:b], seed) == want
        assert csum16(chunk, seed) == ~want & 0xFFFF


@pytest.mark.parametrize(
    "data,want_sum",
    [
        (b"", 0),  # nothing summed: 0, not 0xFFFF
        (b"\x00\x00\x00", 0),
        (b"\xff\xff", 0xFFFF),
        (b"\x00\x01\xff\xfe", 0xFFFF),  # 1 + 0xFFFE: never folds to 0
        (b"\xff\xff\x00\x01", 0x0001),  # end-around carry
        (b"\x01", 0x0100),  # odd byte is the high half
        (bytes.fromhex("0001f203f4f5f6f7"), 0xDDF2),  # RFC 1071 section 3 example
    ],
)
def test_csum16_edge_values(data, want_sum):
    assert csum16(data) == want_sum == ref_sum(data)


def test_csum_fold_and_pseudo_header_sum():
    assert csum_fold(0) == 0
    assert csum_fold(0xFFFF) == 0xFFFF
    assert csum_fold(0x1FFFE) == 0xFFFF
    assert csum_fold(0x10000) == 1
    for src, dst in ((SRC4, DST4), (SRC6, DST6)):
        import ipaddress

        s, d = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
        for proto, length in ((6, 20), (17, 1480), (6, 65535)):
            assert pseudo_header_sum(s, d, proto, length) == ref_sum(pseudo(src, dst, proto, length))
    with pytest.raises(ValueError):
        pseudo_header_sum(b"\x01" * 4, b"\x02" * 16, 6, 0)


def test_fold_plan_cache_is_bounded():
    from tunkit.packet import ip as packet

    for n in range(2000, 2000 + 2 * packet._PLAN_CACHE_MAX, 2):
        csum16(bytes(n))
    assert len(packet._plans) <= packet._PLAN_CACHE_MAX


# ---------------------------------------------------------------------------
# Header views: tables checked both ways (bytes -> fields, fields -> bytes)
# ---------------------------------------------------------------------------

IPV4_CASES = [
    (
        "plain",
        bytes.fromhex(
            "45"  # version 4, IHL 5
            "b8"  # DSCP 46 (EF), ECN 0
            "0028"  # total length 40
            "abcd"  # identification
            "4000"  # DF, offset 0
            "40"  # TTL 64
            "06"  # protocol TCP
            "0000"  # checksum (not checked by the view)
            "c0000201"  # 192.0.2.1
            "c6336402"  # 198.51.100.2
        )
        + bytes(20),
        dict(header_length=20, tos=0xB8, total_length=40, identification=0xABCD, flags_fragment=0x4000, ttl=64, protocol=6,
             dscp=46, ecn=0, dont_fragment=True, is_fragment=False, payload_length=20, options=b""),
    ),
    (
        "options and a fragment",
        bytes.fromhex(
            "46"  # version 4, IHL 6
            "03"  # ECN CE
            "0018"  # total length 24
            "0001"  # identification
            "2001"  # MF, offset 1 (8 bytes)
            "01"  # TTL 1
            "11"  # protocol UDP
            "ffff"  # checksum
            "c0000201"
            "c6336402"
            "94040000"  # router alert option
        ),
        dict(header_length=24, tos=3, ecn=3, total_length=24, flags_fragment=0x2001, dont_fragment=False, is_fragment=True,
             options=bytes.fromhex("94040000"), payload_length=0),
    ),
]


@pytest.mark.parametrize("name,raw,fields", IPV4_CASES, ids=[c[0] for c in IPV4_CASES])
def test_ipv4_header_table(name, raw, fields):
    h = IPv4Header.parse(raw)
    for k, v in fields.items():
        got = getattr(h, k)
        assert (bytes(got) if k == "options" else got) == v, k
    assert str(h.source) == SRC4 and str(h.destination) == DST4
    # the other way: the fields pack back into the same bytes
    back = IPV4_HEADER.pack(0x40 | h.header_length // 4, h.tos, h.total_length, h.identification, h.flags_fragment, h.ttl,
                            h.protocol, h.checksum, h.src, h.dst) + bytes(h.options)
    assert back == raw[: h.header_length]


def test_ipv4_header_views_do_not_copy_options():
    raw = bytearray(IPV4_CASES[1][1])
    h = IPv4Header.parse(raw)
    raw[20] = 0x07
    assert h.options[0] == 0x07


IPV6_PLAIN = bytes.fromhex(
    "6"  # version 6
    "ab"  # traffic class (DSCP 42, ECN 3)
    "12345"  # flow label
    "0014"  # payload length 20
    "06"  # next header TCP
    "3f"  # hop limit 63
    "20010db8000000000000000000000001"  # 2001:db8::1
    "20010db8000100000000000000000002"  # 2001:db8:1::2
) + bytes(20)


def test_ipv6_header_table_both_ways():
    h = IPv6Header.parse(IPV6_PLAIN)
    assert (h.traffic_class, h.flow_label, h.payload_length, h.next_header, h.hop_limit) == (0xAB, 0x12345, 20, 6, 63)
    assert (h.dscp, h.ecn, h.header_length, h.protocol, h.extensions, h.total_length) == (42, 3, 40, 6, (), 60)
    assert (str(h.source), str(h.destination)) == (SRC6, DST6)
    assert IPV6_HEADER.pack(6 << 28 | h.traffic_class << 20 | h.flow_label, h.payload_length, h.next_header, h.hop_limit, h.src,
                            h.dst) == IPV6_PLAIN[:40]


def _ext(next_header: int, total_len: int, *, ah=False) -> bytes:
    """An extension header of total_len bytes whose next header is next_header."""
    hlen = total_len // 4 - 2 if ah else total_len // 8 - 1
    return bytes([next_header, hlen]) + bytes(total_len - 2)


EXT_CASES = [
    # (name, first next header, extension bytes, want header_length, want protocol, want extensions)
    ("hop-by-hop", 0, _ext(6, 8), 48, 6, (0,)),
    ("hop-by-hop, routing, dest opts", 0, _ext(43, 8) + _ext(60, 24) + _ext(17, 16), 88, 17, (0, 43, 60)),
    ("fragment", 44, bytes([6, 0]) + bytes(6), 48, 6, (44,)),
    ("AH counts 4-byte units", 51, _ext(6, 24, ah=True), 64, 6, (51,)),
    ("ESP ends the walk", 50, bytes(16), 40, 50, ()),
    ("no next header", 59, b"", 40, 59, ()),
]


@pytest.mark.parametrize("name,nh,ext,hlen,proto,exts", EXT_CASES, ids=[c[0] for c in EXT_CASES])
def test_ipv6_extension_header_walk(name, nh, ext, hlen, proto, exts):
    body = ext + bytes(20)
    raw = ipv6_header(SRC6, DST6, nh, len(body)) + body
    h = IPv6Header.parse(raw)
    assert (h.header_length, h.protocol, h.extensions) == (hlen, proto, exts)
    assert h.is_fragment == (44 in exts)


IPV6_ERRORS = [
    ("truncated extension", 0, bytes([6, 1]) + bytes(6), "needs|left"),  # claims 16 bytes, 8 present
    ("extension shorter than 8", 60, bytes([6, 0, 0]), "needs 8"),
    ("endless chain", 60, _ext(60, 8) * 17 + bytes(8), "more than 16"),
]


@pytest.mark.parametrize("name,nh,ext,match", IPV6_ERRORS, ids=[c[0] for c in IPV6_ERRORS])
def test_ipv6_extension_errors(name, nh, ext, match):
    raw = ipv6_header(SRC6, DST6, nh, len(ext)) + ext
    with pytest.raises(DecodeError, match=match):
        IPv6Header.parse(raw)


TCP_RAW = bytes.fromhex(
    "9c40"  # source port 40000
    "1451"  # destination port 5201
    "000003e8"  # seq 1000
    "000007d0"  # ack 2000
    "81"  # data offset 8 (32 bytes), reserved/AE 1
    "d8"  # CWR ECE ACK PSH
    "01f6"  # window 502
    "beef"  # checksum
    "0007"  # urgent pointer
    "0101080a0000000100000002"  # NOP NOP timestamps
)


def test_tcp_header_table_both_ways():
    h = TCPHeader.parse(TCP_RAW)
    assert (h.src_port, h.dst_port, h.seq, h.ack, h.header_length, h.reserved, h.window, h.checksum, h.urgent) == (
        40000, 5201, 1000, 2000, 32, 1, 502, 0xBEEF, 7)
    assert h.flags == TcpFlag.CWR | TcpFlag.ECE | TcpFlag.ACK | TcpFlag.PSH
    assert bytes(h.options) == TCP_RAW[20:]
    assert TCP_HEADER.pack(h.src_port, h.dst_port, h.seq, h.ack, h.header_length // 4 << 4 | h.reserved, h.flags, h.window,
                           h.checksum, h.urgent) + bytes(h.options) == TCP_RAW


UDP_RAW = bytes.fromhex(
    "9c40"  # source port 40000
    "12b5"  # destination port 4789
    "000c"  # length 12
    "0000"  # checksum: none
) + b"abcd"


def test_udp_header_table_both_ways():
    h = UDPHeader.parse(UDP_RAW)
    assert h == (40000, 4789, 12, 0)
    assert UDP_HEADER.pack(*h) == UDP_RAW[:8]
    with pytest.raises(DecodeError, match="UDP length 12"):
        UDPHeader.parse(UDP_RAW + b"x")


L4_ERRORS = [
    ("TCP data offset below 20", TCPHeader, TCP_RAW[:12] + b"\x40" + TCP_RAW[13:], "below 20"),
    ("TCP options past the end", TCPHeader, TCP_RAW[:28], "runs past"),
    ("TCP header truncated", TCPHeader, TCP_RAW[:19], "need 20"),
    ("UDP header truncated", UDPHeader, UDP_RAW[:7], "need 8"),
]


@pytest.mark.parametrize("name,cls,raw,match", L4_ERRORS, ids=[c[0] for c in L4_ERRORS])
def test_l4_errors(name, cls, raw, match):
    with pytest.raises(DecodeError, match=match):
        cls.parse(raw)


def test_l4_end_must_lie_in_the_buffer():
    with pytest.raises(DecodeError, match="past the buffer"):
        TCPHeader.parse(TCP_RAW, 0, len(TCP_RAW) + 1)


# ---------------------------------------------------------------------------
# parse_ip and transport checksums
# ---------------------------------------------------------------------------

PACKETS = [
    ("tcp4", tcp4(b"hello world", flags=ACK | PSH), 4, 6, 20, 40),
    ("tcp4 with IP and TCP options", tcp4(b"x" * 33, ip_options=bytes.fromhex("94040000"), options=bytes(12)), 4, 6, 24, 56),
    ("udp4", udp4(b"datagram!"), 4, 17, 20, 28),
    ("tcp6", tcp6(b"\x00" * 7), 6, 6, 40, 60),
    ("tcp6 behind hop-by-hop", tcp6(b"abc", ext=_ext(6, 8), ext_first=0), 6, 6, 48, 68),
    ("udp6", udp6(b"q" * 100), 6, 17, 40, 48),
]


@pytest.mark.parametrize("name,pkt,version,proto,l4off,payoff", PACKETS, ids=[c[0] for c in PACKETS])
def test_parse_ip_and_checksums(name, pkt, version, proto, l4off, payoff):
    p = parse_ip(pkt)
    assert (p.family, p.protocol, p.l4_offset, p.payload_offset, p.end) == (version, proto, l4off, payoff, len(pkt))
    stored = struct.unpack_from("!H", pkt, l4off + (16 if proto == 6 else 6))[0]
    assert transport_checksum(pkt) == stored
    assert transport_checksum_ok(pkt)
    assert transport_checksum_ok(memoryview(pkt), p)
    bad = bytearray(pkt)
    bad[-1] ^= 0x01
    assert not transport_checksum_ok(bad)
    if version == 4:
        assert ipv4_header_checksum(pkt, 0, l4off) == struct.unpack_from("!H", pkt, 10)[0] == ref_checksum(
            pkt[:10] + b"\0\0" + pkt[12:l4off])


def test_udp_checksum_zero_rules():
    none4 = udp4(b"abc", csum=0)
    assert transport_checksum_ok(none4)  # IPv4: 0 means no checksum
    assert not transport_checksum_ok(udp6(b"abc", csum=0))  # IPv6: mandatory
    # a datagram whose checksum computes to 0 carries 0xFFFF: find one by adjusting two bytes
    base = udp4(b"\x00\x00" + b"payload")
    need = transport_checksum(base)  # = ~sum, so adding it as a word makes the sum 0xFFFF
    fixed = udp4(struct.pack("!H", need) + b"payload")
    assert transport_checksum(fixed) == 0xFFFF
    assert transport_checksum_ok(fixed)


def test_parse_ip_fragment_has_no_l4():
    frag = bytearray(tcp4(b"abcdefgh"))
    frag[6:8] = b"\x20\x00"  # MF
    p = parse_ip(bytes(frag))
    assert p.l4 is None and p.payload_offset is None
    with pytest.raises(DecodeError, match="no TCP/UDP"):
        transport_checksum(bytes(frag))


PARSE_ERRORS = [
    ("empty", b"", "empty"),
    ("version 5", b"\x55" + bytes(39), "version 5"),
    ("IPv4 total length past the buffer", tcp4(b"abc")[:-1], "total length"),
    ("IPv4 IHL below 5", b"\x44" + tcp4()[1:], "IHL"),
    ("IPv6 truncated", tcp6()[:39], "need 40"),
    ("IPv6 payload length past the buffer", tcp6(b"abc")[:-1], "payload length"),
    ("TCP header past the IP length", tcp4()[:2] + b"\x00\x24" + tcp4()[4:], "TCP header"),
]


@pytest.mark.parametrize("name,raw,match", PARSE_ERRORS, ids=[c[0] for c in PARSE_ERRORS])
def test_parse_ip_errors(name, raw, match):
    with pytest.raises(DecodeError, match=match):
        parse_ip(raw)


# ---------------------------------------------------------------------------
# Fuzz: only DecodeError escapes, and successful parses stay inside the buffer
# ---------------------------------------------------------------------------

_FUZZ_SEEDS = [tcp4(b"abcdef"), tcp6(b"x" * 30, ext=_ext(43, 16) + _ext(6, 8), ext_first=0), udp4(b"u" * 9), udp6(b""),
               tcp4(b"o", ip_options=bytes(8), options=bytes(8))]


def _mutants(rng: random.Random, count: int):
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 120))
        else:
            b = bytearray(rng.choice(_FUZZ_SEEDS))
            if kind == 1 and b:
                del b[rng.randrange(len(b)) :]
            for _ in range(rng.randrange(1, 6)):
                if b:
                    b[rng.randrange(len(b))] = rng.randrange(256)
            if kind == 3:
                b += rng.randbytes(rng.randrange(0, 16))
            yield bytes(b)


def test_fuzz_decoders_raise_only_decode_error():
    rng = random.Random(7)
    parsed = 0
    for raw in _mutants(rng, 4000):
        for decode in (parse_ip, IPv4Header.parse, IPv6Header.parse, TCPHeader.parse, UDPHeader.parse, transport_checksum_ok):
            try:
                r = decode(raw)
            except DecodeError:
                continue
            parsed += 1
            if decode is parse_ip:
                assert r.l4_offset <= r.end <= len(raw)
                assert r.payload_offset is None or r.l4_offset <= r.payload_offset <= r.end
                assert r.ip.header_length <= r.end
    assert parsed > 1000  # the loop exercised the success paths too, not just the errors


# -- ICMP errors a router sends (build_too_big, moved here from the tunnel) --------------------------
def test_too_big_ipv6_gets_packet_too_big():
    from support_tunnel import checksum, ipv6_udp
    from tunkit.packet.ip import build_too_big

    big = ipv6_udp("2001:db8::a", "2001:db8::b", 1, 2, bytes(1500))
    me = ipaddress.ip_address("2001:db8::1").packed
    icmp = build_too_big(big, 1280, {6: me})
    assert icmp[6] == 58 and icmp[8:24] == me and icmp[24:40] == big[8:24]
    assert len(icmp) == 1280
    pseudo = icmp[8:40] + struct.pack("!II", len(icmp) - 40, 58)
    assert checksum(pseudo + icmp[40:]) == 0
    assert struct.unpack_from("!BBHI", icmp, 40)[::3] == (2, 1280)
    # no error about an error
    assert build_too_big(icmp, 1280, {6: me}) is None


def test_too_big_ipv4_gets_frag_needed_and_nothing_for_later_fragments_or_errors():
    from support_tunnel import checksum, ipv4_udp
    from tunkit.packet.ip import build_too_big

    big = ipv4_udp("198.18.0.1", "198.18.0.2", 1, 2, bytes(1400))
    icmp = build_too_big(big, 1300, {4: bytes([198, 18, 0, 9])})
    assert icmp[9] == 1 and icmp[12:16] == bytes([198, 18, 0, 9]) and icmp[16:20] == big[12:16]
    assert checksum(icmp[:20]) == 0 and checksum(icmp[20:]) == 0
    assert struct.unpack_from("!BBHHH", icmp, 20)[::4] == (3, 1300) and icmp[21] == 4
    assert icmp[28:] == big[: 576 - 28]  # as much of the packet as fits 576 bytes
    assert build_too_big(big, 1300, {4: None})[12:16] == big[16:20]  # no address: from the destination
    later = big[:6] + b"\x00\x10" + big[8:]  # fragment offset 16: not the first fragment
    assert build_too_big(later, 1300, {}) is None
    assert build_too_big(icmp, 576, {}) is None  # no error about an error
