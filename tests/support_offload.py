"""Packet builders and reference checksums for the packet/offload tests.

Everything here is written independently of tunkit.packet.ip and tunkit.packet.offload
(plain ``struct`` and a word-by-word RFC 1071 loop), so it can serve as the
oracle those modules are checked against.  Addresses come from 192.0.2.0/24,
198.51.100.0/24 and 2001:db8::/32.
"""

from __future__ import annotations

import ipaddress
import struct

SRC4, DST4 = "192.0.2.1", "198.51.100.2"
SRC6, DST6 = "2001:db8::1", "2001:db8:1::2"

ACK, PSH, FIN, SYN, RST, URG, ECE, CWR = 0x10, 0x08, 0x01, 0x02, 0x04, 0x20, 0x40, 0x80


def ref_checksum(data: bytes) -> int:
    """RFC 1071 checksum, the obvious way: 16-bit words, end-around carry, complement."""
    s = 0
    for i in range(0, len(data) - 1, 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    if len(data) & 1:
        s += data[-1] << 8
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ref_sum(data: bytes) -> int:
    """The folded, not inverted, sum (what NEEDS_CSUM stores): the complement of ref_checksum."""
    return ~ref_checksum(data) & 0xFFFF


def _packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def pseudo(src: str, dst: str, proto: int, length: int) -> bytes:
    s, d = _packed(src), _packed(dst)
    if len(s) == 4:
        return s + d + struct.pack("!BBH", 0, proto, length)
    return s + d + struct.pack("!IxxxB", length, proto)


def ipv4_header(src, dst, proto, payload_len, *, ident=0x1234, df=True, ttl=64, tos=0, options=b"", frag=0) -> bytes:
    ihl = 20 + len(options)
    flags = (0x4000 if df else 0) | frag
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl // 4, tos, ihl + payload_len, ident, flags, ttl, proto, 0, _packed(src), _packed(dst)) + options
    c = ref_checksum(h)
    return h[:10] + struct.pack("!H", c) + h[12:]


def ipv6_header(src, dst, next_header, payload_len, *, hlim=64, tclass=0, flow=0x12345) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28 | tclass << 20 | flow, payload_len, next_header, hlim, _packed(src), _packed(dst))


def tcp_segment(src, dst, sport, dport, seq, ack, flags, payload, *, window=502, options=b"", urg=0, csum="full", reserved=0) -> bytes:
    """A TCP header + payload.  csum: "full" (valid), "partial" (pseudo sum, as NEEDS_CSUM) or an int."""
    off = (20 + len(options)) // 4
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, off << 4 | reserved, flags, window, 0, urg) + options
    seg = h + payload
    ph = pseudo(src, dst, 6, len(seg))
    c = ref_checksum(ph + seg) if csum == "full" else ref_sum(ph) if csum == "partial" else csum
    return seg[:16] + struct.pack("!H", c) + seg[18:]


def udp_datagram(src, dst, sport, dport, payload, *, csum="full") -> bytes:
    """A UDP header + payload.  csum: "full" (valid, 0 sent as 0xFFFF), "partial", or an int."""
    length = 8 + len(payload)
    seg = struct.pack("!HHHH", sport, dport, length, 0) + payload
    ph = pseudo(src, dst, 17, length)
    if csum == "full":
        c = ref_checksum(ph + seg) or 0xFFFF
    elif csum == "partial":
        c = ref_sum(ph)
    else:
        c = csum
    return seg[:6] + struct.pack("!H", c) + seg[8:]


def tcp4(payload=b"", *, seq=1000, ack=2000, flags=ACK, sport=40000, dport=5201, src=SRC4, dst=DST4, ident=0x1234, df=True, ttl=64,
         tos=0, window=502, options=b"", ip_options=b"", csum="full", urg=0) -> bytes:
    seg = tcp_segment(src, dst, sport, dport, seq, ack, flags, payload, window=window, options=options, csum=csum, urg=urg)
    return ipv4_header(src, dst, 6, len(seg), ident=ident, df=df, ttl=ttl, tos=tos, options=ip_options) + seg


def tcp6(payload=b"", *, seq=1000, ack=2000, flags=ACK, sport=40000, dport=5201, src=SRC6, dst=DST6, hlim=64, tclass=0, flow=0x12345,
         window=502, options=b"", csum="full", ext=b"", ext_first=None) -> bytes:
    """IPv6 TCP; ``ext`` is raw extension headers placed before TCP, ``ext_first`` their first type."""
    seg = tcp_segment(src, dst, sport, dport, seq, ack, flags, payload, window=window, options=options, csum=csum)
    nh = 6 if not ext else ext_first
    return ipv6_header(src, dst, nh, len(ext) + len(seg), hlim=hlim, tclass=tclass, flow=flow) + ext + seg


def udp4(payload=b"", *, sport=40000, dport=4789, src=SRC4, dst=DST4, ident=0x1234, df=False, ttl=64, tos=0, csum="full") -> bytes:
    seg = udp_datagram(src, dst, sport, dport, payload, csum=csum)
    return ipv4_header(src, dst, 17, len(seg), ident=ident, df=df, ttl=ttl, tos=tos) + seg


def udp6(payload=b"", *, sport=40000, dport=4789, src=SRC6, dst=DST6, hlim=64, tclass=0, flow=0x12345, csum="full") -> bytes:
    seg = udp_datagram(src, dst, sport, dport, payload, csum=csum)
    return ipv6_header(src, dst, 17, len(seg), hlim=hlim, tclass=tclass, flow=flow) + seg


def vnet(flags=0, gso_type=0, hdr_len=0, gso_size=0, csum_start=0, csum_offset=0) -> bytes:
    """The 10-byte virtio_net_hdr in host order."""
    return struct.pack("=BBHHHH", flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)


def payload_bytes(n: int, seed: int = 0) -> bytes:
    """Deterministic, varied payload of n bytes."""
    import random

    return random.Random(seed).randbytes(n)


def tcp_stream(n_segments: int, mss: int, *, v6=False, seq=1000, ident=0x1234, last_len=None, df=True, seed=0, **kw) -> list[bytes]:
    """Consecutive data segments of one flow, as a sender without offloads would emit them."""
    out = []
    data = payload_bytes(mss * n_segments, seed)
    for i in range(n_segments):
        ln = mss if (i < n_segments - 1 or last_len is None) else last_len
        p = data[i * mss : i * mss + ln]
        if v6:
            out.append(tcp6(p, seq=(seq + i * mss) & 0xFFFFFFFF, **kw))
        else:
            out.append(tcp4(p, seq=(seq + i * mss) & 0xFFFFFFFF, ident=(ident + i) & 0xFFFF, df=df, **kw))
    return out


def udp_stream(n: int, size: int, *, v6=False, ident=0x1234, last_len=None, df=False, seed=0, **kw) -> list[bytes]:
    data = payload_bytes(size * n, seed)
    out = []
    for i in range(n):
        ln = size if (i < n - 1 or last_len is None) else last_len
        p = data[i * size : i * size + ln]
        out.append(udp6(p, **kw) if v6 else udp4(p, ident=(ident + i) & 0xFFFF, df=df, **kw))
    return out
