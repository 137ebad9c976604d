"""tunkit's WireGuard extension between two in-memory engines: negotiation, trains, batches, attacks, fuzz.

A "plain" engine (extension off) stands in for a real WireGuard peer: like
wireguard-go and Linux it drops the unknown message types unread.
"""

from __future__ import annotations

import ipaddress
import random
import struct

import pytest

from test_wireguard_engine import A4, A6, ADDR_A, ADDR_B, B4, B6, CRYPTO, KEY_B, Link, ip4, ip6
from tunkit.packet.offload import ZERO_HDR, VirtioNetHdr, gso_split
from tunkit.wireguard import Engine
from tunkit.wireguard import extension as ext
from tunkit.wireguard import train as tr

NEEDS_CSUM = 1
TCPV4, TCPV6, UDP_L4 = 1, 4, 5


def tcp(version: int, size: int, rng: random.Random, src=None, dst=None) -> bytes:
    """An IPv4/IPv6 TCP packet of ``size`` bytes in all (random payload)."""
    l3 = 20 if version == 4 else 40
    payload = rng.randbytes(size - l3 - 20)
    th = struct.pack("!HHIIBBHHH", 40000, 5201, rng.getrandbits(32), 0, 5 << 4, 0x18, 65535, 0x1234, 0)
    if version == 4:
        return ip4(src or A4, dst or B4, th + payload, proto=6)
    return ip6_proto(src or A6, dst or B6, th + payload, 6)


def ip6_proto(src, dst, payload, proto):
    return struct.pack("!IHBB16s16s", 6 << 28, len(payload), proto, 64, ipaddress.ip_address(src).packed,
                       ipaddress.ip_address(dst).packed) + payload


def tso_meta(pkt: bytes, gso_size: int = 1400) -> VirtioNetHdr:
    v = pkt[0] >> 4
    l3 = 20 if v == 4 else 40
    return VirtioNetHdr(NEEDS_CSUM, TCPV4 if v == 4 else TCPV6, l3 + 20, gso_size, l3, 16)


def ext_link(a_on=True, b_on=True, seed=1) -> Link:
    link = Link(seed)
    link.a.extension = a_on
    link.b.extension = b_on
    return link


def seal_super(eng: Engine, peer, pkt: bytes, meta, now: float):
    buf = bytearray(ext.SUPER_BUFFER)
    buf[ext.SUPER_HEADROOM:ext.SUPER_HEADROOM + len(pkt)] = pkt
    batch = eng.seal_super_into(peer, buf, len(pkt), meta, now)
    return batch, buf


def datagrams(batch, buf) -> list[bytes]:
    return [bytes(buf[o:min(o + batch.segment, batch.size)]) for o in range(0, batch.size, batch.segment)]


def types_sent(link: Link, eng) -> set[int]:
    return {d[0] for s, d in link.wire if s is eng}


# ------------------------------------------------------------------ negotiation


def test_two_tunkit_engines_negotiate_inside_the_session_only():
    link = ext_link()
    link.handshake()
    assert link.a.extension_active(link.pa) and link.b.extension_active(link.pb)
    kinds = [d[0] for _, d in link.wire]
    assert kinds[:2] == [1, 2]   # initiation and response travel before any extension message
    first_ext = min(i for i, k in enumerate(kinds) if k in tr.EXT_TYPES)
    assert first_ext >= 2
    assert sum(k == tr.MSG_EXT_CONTROL for k in kinds) == 2   # one offer each way, nothing more
    link.advance(30)   # no retries once both offers arrived
    assert sum(d[0] == tr.MSG_EXT_CONTROL for _, d in link.wire) == 2
    assert not any(link.a.ext_drops.values()) and not any(link.b.ext_drops.values())


def test_a_plain_wireguard_peer_only_ever_drops_a_few_offers_and_keeps_working():
    link = ext_link(a_on=True, b_on=False)
    link.handshake()
    link.advance(20)
    assert not link.a.extension_active(link.pa) and not link.b.extension_active(link.pb)
    assert tr.MSG_EXT_TRAIN not in types_sent(link, link.a)          # never a train to it
    assert types_sent(link, link.b) <= {1, 2, 3, 4}                    # it speaks only WireGuard
    offers = sum(d[0] == tr.MSG_EXT_CONTROL for s, d in link.wire if s is link.a)
    assert 1 <= offers <= ext.OFFER_ATTEMPTS
    assert link.b.ext_drops["ext_disabled"] == offers                 # dropped unread, like wireguard-go
    assert sum(link.b.drops.values()) == 0                             # nothing counted as a WireGuard error
    rng = random.Random(5)
    pkt = tcp(4, 20000, rng)
    batch, buf = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
    assert not batch.train and batch.count == 15
    got = link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)
    assert [bytes(sp.packet) for sp in got] == [bytes(s) for s in gso_split(tso_meta(pkt), pkt)]
    assert all(sp.meta is None for sp in got)
    link.send(link.b, ip4(B4, A4, b"back"))
    assert link.got[link.a][-1] == ip4(B4, A4, b"back")


def test_a_pinned_peer_never_receives_an_extension_message():
    link = ext_link()
    link.a.set_plain(link.pa)
    link.handshake()
    link.advance(20)
    rng = random.Random(6)
    for size in (3000, 64000):
        pkt = tcp(4, size, rng)
        batch, buf = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
        assert not batch.train
        for d in datagrams(batch, buf):
            link.deliver(link.a, d)
    assert types_sent(link, link.a) <= {1, 2, 3, 4}
    assert link.a.ext_drops["ext_disabled"] >= 1      # b's offers, dropped
    assert not link.b.extension_active(link.pb)       # so b never sends trains either
    link.send(link.b, ip4(B4, A4, b"x"))
    assert link.got[link.a][-1] == ip4(B4, A4, b"x")


def test_pinning_a_negotiated_peer_falls_back_without_losing_a_train():
    link = ext_link()
    link.handshake()
    rng = random.Random(7)
    pkt = tcp(4, 30000, rng, src=B4, dst=A4)
    batch, buf = seal_super(link.b, link.pb, pkt, tso_meta(pkt), link.now)   # in flight while a pins b
    assert batch.train
    link.now += 1   # (the responder takes at most 50 initiations per second)
    link.a.set_plain(link.pa, True, link.now)
    for d in datagrams(batch, buf):
        link.a.receive(bytearray(d), ADDR_B, link.now)
    assert [bytes(sp.packet) for sp in link.a.pop_super_packets()] == [pkt]
    wire_from = len(link.wire)
    link.pump()   # the forced handshake: a new session without an offer from a
    assert link.pa.current.ext is None and not link.b.extension_active(link.pb)
    later = tcp(4, 30000, rng, src=B4, dst=A4)
    batch, buf = seal_super(link.b, link.pb, later, tso_meta(later), link.now)
    assert not batch.train
    assert all(d[0] not in tr.EXT_TYPES for s, d in link.wire[wire_from:] if s is link.a)


def test_the_offer_is_renegotiated_per_session_and_a_restarted_plain_peer_falls_back():
    link = ext_link()
    link.handshake()
    old = link.pa.current
    rng = random.Random(8)
    link.now += 1
    assert link.a.initiate(link.pa, link.now, force=True)
    link.pump()
    assert link.pa.current is not old and link.a.extension_active(link.pa)
    # b restarts with the same key but without the extension (a WireGuard build): a falls back
    link.b = Engine(KEY_B, CRYPTO, wall_offset=1.7e9 + 1, random=random.Random(99).randbytes)
    link.pb = link.b.add_peer(link.a.public_key, allowed_ips=[f"{A4}/32", f"{A6}/128"], endpoint=ADDR_A)
    link.addr = {link.a: ADDR_A, link.b: ADDR_B}
    link.got[link.b] = []
    link.now += 1
    link.handshake(link.b)
    assert not link.a.extension_active(link.pa)
    pkt = tcp(6, 12000, rng)
    batch, buf = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
    assert not batch.train
    got = link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)
    assert b"".join(bytes(sp.packet)[60:] for sp in got) == pkt[60:]


def test_a_super_packet_before_the_offers_arrive_goes_plain_and_arrives():
    link = ext_link()
    link.filter = lambda s, d: d[0] != tr.MSG_EXT_CONTROL   # offers lost
    link.handshake()
    assert not link.a.extension_active(link.pa)
    rng = random.Random(9)
    pkt = tcp(4, 9000, rng)
    batch, buf = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
    assert not batch.train
    assert len(link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)) == 7
    link.filter = None
    link.advance(5)   # the retried offers get through
    assert link.a.extension_active(link.pa) and link.b.extension_active(link.pb)


# ------------------------------------------------------------------ trains


SIZES4 = [21, 28, 41, 60, 61, 100, 1000, 1419, 1420, 1421, 1452, 1500, 2856, 2857, 9000, 32768, 64000, 65535]
SIZES6 = [41, 61, 100, 1400, 1500, 9000, 40000, 65535]


@pytest.mark.parametrize("version,size", [(4, s) for s in SIZES4] + [(6, s) for s in SIZES6])
def test_trains_of_every_size_arrive_whole_with_their_metadata(version, size):
    link = ext_link()
    link.handshake()
    rng = random.Random(size * version)
    if size - (20 if version == 4 else 40) > 20:
        pkt = tcp(version, size, rng)
        meta = tso_meta(pkt, 1400 if size > 1500 else 536)
    else:   # too small for TCP: a UDP packet of that size, checksum complete
        payload = rng.randbytes(size - (20 if version == 4 else 40))
        pkt = ip4(A4, B4, payload) if version == 4 else ip6(A6, B6, payload)
        meta = None
    batch, buf = seal_super(link.a, link.pa, pkt, meta, link.now)
    assert batch.train and batch.taken == 1
    assert batch.segment <= link.a.mtu + 32 and batch.count == -(-batch.size // batch.segment)
    dgrams = datagrams(batch, buf)
    assert all(len(d) == batch.segment for d in dgrams[:-1]) and len(dgrams[-1]) <= batch.segment
    assert len({d[:16] for d in dgrams}) == 1   # one type, index and counter: one nonce for the whole train
    got = link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)   # as one GRO block
    assert len(got) == 1 and bytes(got[0].packet) == pkt
    assert got[0].meta == (ZERO_HDR if meta is None else meta)
    # the same size again, fragments one by one in reverse order
    batch, buf = seal_super(link.a, link.pa, pkt, meta, link.now)
    for d in reversed(datagrams(batch, buf)):
        assert link.b.receive(bytearray(d), ADDR_A, link.now) is None
    assert [bytes(sp.packet) for sp in link.b.pop_super_packets()] == [pkt]
    assert link.pb.train_bytes == 0 and not link.pb.trains and link.b._ext_held == 0
    assert not any(link.b.ext_drops.values())


def test_trains_and_transport_messages_share_one_counter_space():
    link = ext_link()
    link.handshake()
    rng = random.Random(10)
    counters = []
    for i in range(6):
        if i % 2:
            pkt = tcp(4, 5000, rng)
            batch, buf = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
            counters.append(struct.unpack_from("<Q", buf, 8)[0])
            link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)
        else:
            d, _ = link.a.send(ip4(A4, B4, b"t%d" % i), link.now)
            counters.append(struct.unpack_from("<Q", d, 8)[0])
            link.b.receive(d, ADDR_A, link.now)
    assert counters == sorted(set(counters))
    assert link.b.drops["replayed_transport"] == 0 and not any(link.b.ext_drops.values())


def test_partial_checksums_and_gso_metadata_travel_unchanged():
    link = ext_link()
    link.handshake()
    rng = random.Random(11)
    payload = rng.randbytes(4000)
    udp = struct.pack("!HHHH", 1000, 2000, 8 + len(payload), 0xBEEF) + payload
    pkt = ip4(A4, B4, udp)
    meta = VirtioNetHdr(NEEDS_CSUM, UDP_L4, 0, 1000, 20, 6)   # hdr_len wrong on purpose: it is recomputed
    batch, buf = seal_super(link.a, link.pa, pkt, meta, link.now)
    got = link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)
    assert bytes(got[0].packet) == pkt and got[0].meta == meta._replace(hdr_len=28)


# ------------------------------------------------------------------ small packets


@pytest.mark.parametrize("extension", [False, True])
def test_several_small_packets_in_one_call_as_equal_sized_datagrams(extension):
    link = ext_link(a_on=extension, b_on=extension)
    link.handshake()
    rng = random.Random(12)
    pkts = [ip4(A4, B4, rng.randbytes(rng.randrange(1, 300))) for _ in range(20)] + [ip6(A6, B6, b"v6")]
    buf = bytearray(ext.SUPER_BUFFER)
    batch = link.a.seal_batch_into(link.pa, pkts, buf, link.now)
    assert batch.train is extension and batch.taken == len(pkts)
    dgrams = datagrams(batch, buf)
    assert all(len(d) == batch.segment for d in dgrams[:-1])
    if not extension:
        assert batch.count == len(pkts) and all(len(d) == batch.segment for d in dgrams)
        assert {d[0] for d in dgrams} == {4}    # standard transport messages
    else:
        assert batch.count == -(-sum(12 + len(p) for p in pkts) // 1428) and dgrams[0][0] == tr.MSG_EXT_TRAIN
    got = link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)
    assert [bytes(sp.packet) for sp in got] == pkts
    assert all(sp.meta == (ZERO_HDR if extension else None) for sp in got)


def test_a_batch_bigger_than_one_train_is_taken_in_parts():
    link = ext_link()
    link.handshake()
    pkts = [ip4(A4, B4, bytes([i]) * 1380) for i in range(60)]
    buf = bytearray(ext.SUPER_BUFFER)
    sent = []
    while pkts[len(sent):]:
        batch = link.a.seal_batch_into(link.pa, pkts[len(sent):], buf, link.now)
        assert batch.train and 1 <= batch.taken and batch.size <= tr.MAX_BODY + 24 * batch.count
        got = link.b.receive_block(bytearray(buf[:batch.size]), batch.segment, ADDR_A, link.now)
        sent += [bytes(sp.packet) for sp in got]
    assert sent == pkts


def test_with_no_session_super_packets_and_batches_are_staged_then_sent_plain():
    link = ext_link()
    rng = random.Random(13)
    pkt = tcp(4, 5000, rng)
    batch, _ = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
    assert batch is None and len(link.pa.staged) == 4
    assert link.a.seal_batch_into(link.pa, [ip4(A4, B4, b"s")], bytearray(2000), link.now) is None
    link.pump()
    assert len(link.got[link.b]) == 5


# ------------------------------------------------------------------ attacks on trains


def negotiated(seed=1) -> Link:
    link = ext_link(seed=seed)
    link.handshake()
    return link


def legit_train(link: Link, size=30000, seed=0):
    rng = random.Random(seed)
    pkt = tcp(4, size, rng)
    batch, buf = seal_super(link.a, link.pa, pkt, tso_meta(pkt), link.now)
    return pkt, datagrams(batch, buf)


def feed(link: Link, dgrams) -> list[bytes]:
    for d in dgrams:
        link.b.receive(bytearray(d), ADDR_A, link.now)
    return [bytes(sp.packet) for sp in link.b.pop_super_packets()]


def forge(d: bytes, rng: random.Random) -> bytes:
    return d[:24] + rng.randbytes(len(d) - 24)


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_forged_fragment_neither_cancels_nor_corrupts_the_train(when):
    link = negotiated()
    rng = random.Random(14)
    pkt, dg = legit_train(link)
    bad = forge(dg[3], rng)
    order = dg[:3] + ([bad, dg[3]] if when == "before" else [dg[3], bad]) + dg[4:]
    assert feed(link, order) == [pkt]
    x = link.b.ext_drops
    assert x["train_conflict"] == 1 and x["train_decrypt"] == (1 if when == "before" else 0)
    assert link.pb.train_bytes == 0


def test_forged_copies_of_every_fragment_before_the_real_ones_still_deliver():
    link = negotiated()
    rng = random.Random(15)
    pkt, dg = legit_train(link)
    assert feed(link, [forge(d, rng) for d in dg] + dg) == [pkt]   # the alternate (last wins) is the real train
    assert link.b.ext_drops["train_decrypt"] == 1


def test_replayed_fragments_and_trains_are_dropped():
    link = negotiated()
    pkt, dg = legit_train(link)
    assert feed(link, dg) == [pkt]
    assert feed(link, dg) == []
    assert link.b.ext_drops["train_replayed"] == len(dg) and link.pb.train_bytes == 0


def test_reordered_and_duplicated_fragments():
    link = negotiated()
    rng = random.Random(16)
    for seed in range(5):
        pkt, dg = legit_train(link, 20000 + seed * 7000, seed)
        order = dg + dg[: len(dg) // 2]
        rng.shuffle(order)
        got = feed(link, order)
        assert got == [pkt]
    assert link.b.ext_drops["train_duplicate"] > 0 and link.b.ext_drops["train_decrypt"] == 0


def test_truncated_fragments_are_dropped_and_a_train_missing_one_times_out():
    link = negotiated()
    pkt, dg = legit_train(link)
    assert feed(link, [dg[0][:-1], dg[1][:30]] + dg) == [pkt]
    assert link.b.ext_drops["train_malformed"] == 2
    pkt2, dg2 = legit_train(link, seed=2)
    assert feed(link, dg2[:-1] + [dg2[-1][:-5]]) == []
    assert link.pb.train_bytes > 0
    link.advance(ext.TRAIN_TIMEOUT + 0.1)
    assert link.b.ext_drops["train_timeout"] == 1 and link.pb.train_bytes == 0 and link.b._ext_held == 0
    pkt3, dg3 = legit_train(link, seed=3)
    assert feed(link, dg3) == [pkt3]


def test_a_spoofed_first_fragment_during_a_legit_train():
    link = negotiated()
    rng = random.Random(17)
    pkt, dg = legit_train(link)
    w, recv, ctr, idx, count, chunk, last = tr.FRAGMENT.unpack_from(dg[0])
    other_shape = tr.FRAGMENT.pack(w, recv, ctr, 0, 2, 600, 100) + rng.randbytes(600)
    same_shape = forge(dg[0], rng)
    got = feed(link, dg[:5] + [other_shape, same_shape] + dg[5:])
    assert got == [pkt]
    assert link.b.ext_drops["train_replayed"] == 1      # the other-shape twin, thrown out once the counter is used
    assert link.pb.train_bytes == 0 and not link.pb.trains


def test_a_flood_of_distinct_train_ids_holds_bounded_memory_and_evicts_no_legit_train():
    link = negotiated()
    rng = random.Random(18)
    pkt, dg = legit_train(link, 65000)
    recv = tr.FRAGMENT.unpack_from(dg[0])[1]
    high = link.pb.trains
    peak = 0
    assert feed(link, dg[:10]) == [] and len(link.pb.trains) == 1
    for i in range(2000):
        shape_count = rng.randrange(2, 46)
        hdr = tr.FRAGMENT.pack(tr.MSG_EXT_TRAIN, recv, 10 + i, 0, shape_count, 1428, 1000)
        link.b.receive(bytearray(hdr + rng.randbytes(1428)), ("203.0.113.9", 1), link.now)
        peak = max(peak, link.pb.train_bytes)
        assert len(high) <= ext.MAX_PENDING_TRAINS
    assert peak <= ext.MAX_PENDING_BYTES and link.b._ext_held <= ext.ENGINE_PENDING_BYTES
    assert link.b.ext_drops["train_table_full"] > 1900
    assert feed(link, dg[10:]) == [pkt]          # the legit train was never evicted
    link.advance(ext.TRAIN_TIMEOUT + 0.1)       # the forged ones expire, counted
    assert link.pb.train_bytes == 0 and link.b.ext_drops["train_timeout"] >= 1
    pkt2, dg2 = legit_train(link, 65000, seed=4)
    assert feed(link, dg2) == [pkt2]
    assert link.b.drops["decrypt"] == 0
    assert link.pb.endpoint == ADDR_A            # unauthenticated fragments never move the endpoint


def _seal_records(link: Link, records: bytes):
    """A train from a key holder with records we write by hand (bypassing the sender's checks)."""
    a, pa = link.a, link.pa
    buf = bytearray(ext.SUPER_BUFFER)
    buf[24:24 + len(records)] = records
    shape = tr.shape_for(len(records) + 16, a.mtu + 32)
    a._seal_train(pa, pa.current, buf, 0, len(records), shape, link.now)
    return bytes(buf[:shape.wire_size]), shape.segment


BAD_META = [
    (NEEDS_CSUM, TCPV4, 40, 1, 20, 16),         # gso_size 1: unbounded segments
    (NEEDS_CSUM, TCPV4, 40, 63, 20, 16),        # below the minimum
    (NEEDS_CSUM, TCPV4, 40, 1400, 65535, 16),   # csum_start past the packet
    (NEEDS_CSUM, TCPV4, 40, 1400, 20, 6),       # csum_offset not TCP's
    (0, TCPV4, 40, 1400, 20, 16),               # GSO without NEEDS_CSUM
    (NEEDS_CSUM, TCPV6, 40, 1400, 20, 16),      # TCPV6 on IPv4
    (NEEDS_CSUM, UDP_L4, 40, 1400, 20, 16),     # UDP_L4 on TCP
    (NEEDS_CSUM, 3, 40, 1400, 20, 16),          # legacy UFO
    (NEEDS_CSUM, 0x81, 40, 1400, 20, 16),       # ECN on TCPV4 is valid: the control row, delivered
    (NEEDS_CSUM | 2, TCPV4, 40, 1400, 20, 16),  # NEEDS_CSUM and DATA_VALID
    (8, 0, 0, 0, 0, 0),                         # unknown flag
    (0, 0, 0, 1400, 0, 0),                      # gso_size on a non-GSO packet
    (NEEDS_CSUM, 0, 0, 0, 20, 100),             # checksum field not at a TCP/UDP checksum offset
    (NEEDS_CSUM, 0, 0, 0, 19990, 16),           # checksum field past the end of the packet
    (0, 0, 65535, 0, 0, 0),                     # hdr_len past the packet
]


@pytest.mark.parametrize("meta", BAD_META)
def test_gso_metadata_from_a_key_holder_is_checked_before_use(meta):
    link = negotiated()
    pkt = tcp(4, 20000, random.Random(19))
    rec = tr.RECORD.pack(*meta, len(pkt)) + pkt
    block, seg = _seal_records(link, rec)
    got = link.b.receive_block(bytearray(block), seg, ADDR_A, link.now)
    if meta[1] == 0x81:   # ECN on TCPV4 is valid: the control row
        assert len(got) == 1 and got[0].meta.gso_type == 0x81
        return
    assert got == [] and link.b.ext_drops["bad_gso"] == 1
    pkt2, dg = legit_train(link)
    assert feed(link, dg) == [pkt2]


def test_records_that_do_not_add_up_and_disallowed_sources_are_dropped():
    link = negotiated()
    good = ip4(A4, B4, b"ok")
    rows = [
        (tr.RECORD.pack(0, 0, 0, 0, 0, 0, 500) + good, "bad_record"),                  # length past the body
        (tr.RECORD.pack(0, 0, 0, 0, 0, 0, len(good)) + good + bytes(8), "bad_record"),  # a cut record header
        (tr.RECORD.pack(0, 0, 0, 0, 0, 0, len(good) + 1) + good + b"x", "bad_inner_packet"),  # IP length differs
        (tr.RECORD.pack(0, 0, 0, 0, 0, 0, 5) + b"\x00" * 5, "bad_inner_packet"),      # not IP
        (tr.RECORD.pack(0, 0, 0, 0, 0, 0, len(good)) + ip4("198.51.100.7", B4, b"ok"), "disallowed_source"),
    ]
    for rec, reason in rows:
        before = dict(link.b.drops, **link.b.ext_drops)
        block, seg = _seal_records(link, rec + tr.RECORD.pack(0, 0, 0, 0, 0, 0, len(good)) + good
                                   if reason != "bad_record" else rec)
        got = link.b.receive_block(bytearray(block), seg, ADDR_A, link.now)
        after = dict(link.b.drops, **link.b.ext_drops)
        assert after[reason] == before[reason] + 1, reason
        if reason != "bad_record":
            assert [bytes(sp.packet) for sp in got] == [good]   # the good record after it still arrives


def test_trains_on_a_session_without_our_offer_are_dropped():
    link = ext_link(a_on=True, b_on=True)
    link.b.set_plain(link.pb)   # b never offers, so it takes no trains
    link.handshake()
    kp = link.pa.current
    kp.ext = kp.ext or ext._KpExt()
    kp.ext.remote = True        # a misbehaving sender that sends trains anyway
    pkt, dg = legit_train(link)
    assert feed(link, dg) == [] and link.b.ext_drops["ext_disabled"] >= len(dg)
    assert link.pb.train_bytes == 0


# ------------------------------------------------------------------ fuzz


def test_fuzz_the_train_decoder_random_and_truncated():
    link = negotiated()
    rng = random.Random(20)
    pkt, dg = legit_train(link, 40000)
    recv = tr.FRAGMENT.unpack_from(dg[0])[1]
    ctr = tr.FRAGMENT.unpack_from(dg[0])[2]
    peak = 0
    for i in range(6000):
        r = rng.random()
        if r < 0.3:
            d = rng.choice(dg)[:rng.randrange(0, 1452)]                       # truncated
        elif r < 0.6:
            d = bytes([tr.MSG_EXT_TRAIN, 0, 0, 0]) + rng.randbytes(rng.randrange(0, 1500))  # random
        elif r < 0.8:                                                          # plausible header, random body
            count = rng.randrange(0, 140)
            hdr = tr.FRAGMENT.pack(tr.MSG_EXT_TRAIN, rng.choice([recv, rng.getrandbits(32)]),
                                   ctr + rng.randrange(-3, 3000), rng.randrange(0, 150), count,
                                   rng.choice([0, 511, 512, 1428, 65535]), rng.randrange(0, 1500))
            d = hdr + rng.randbytes(rng.choice([0, 100, 512, 1428, 1500]))
        else:                                                                  # bit flips of real fragments
            d = bytearray(rng.choice(dg))
            d[rng.randrange(len(d))] ^= 1 << rng.randrange(8)
            d = bytes(d)
        if rng.random() < 0.05:
            d = bytes([tr.MSG_EXT_CONTROL]) + d[1:]
        link.b.receive(bytearray(d), ADDR_A, link.now + i * 1e-4)
        peak = max(peak, link.pb.train_bytes)
    assert peak <= ext.MAX_PENDING_BYTES
    assert link.b.pop_super_packets() == []
    link.now += 1
    link.advance(1)
    assert link.pb.train_bytes == 0 and link.b._ext_held == 0
    pkt2, dg2 = legit_train(link, 40000, seed=9)
    assert feed(link, dg2) == [pkt2]


def test_fuzz_check_meta_never_raises_anything_but_decode_error():
    from tunkit.errors import DecodeError

    rng = random.Random(21)
    pkts = [tcp(4, 3000, rng), tcp(6, 3000, rng), ip4(A4, B4, rng.randbytes(300))]
    for _ in range(5000):
        hdr = VirtioNetHdr(rng.choice([0, 1, 2, 3, 4, 8]), rng.choice([0, 1, 3, 4, 5, 0x81, 0x85, 7]),
                           rng.randrange(65536), rng.choice([0, 1, 63, 64, 536, 1400, 65535, rng.randrange(65536)]),
                           rng.choice([20, 40, rng.randrange(65536)]), rng.choice([6, 16, rng.randrange(65536)]))
        p = rng.choice(pkts)
        p = p[:rng.randrange(1, len(p) + 1)] if rng.random() < 0.3 else p
        try:
            out = tr.check_meta(hdr, memoryview(p))
        except DecodeError:
            continue
        assert out.gso_size == 0 or out.gso_size >= tr.MIN_GSO_SIZE


def test_shape_and_fragment_header_round_trip():
    for body in (29, 1428, 1429, 65563):
        s = tr.shape_for(body, 1452)
        assert (s.count - 1) * s.chunk + s.last == body and s.count <= tr.MAX_FRAGMENTS
        for i in range(s.count):
            n = 24 + (s.chunk if i < s.count - 1 else s.last)
            h = tr.FRAGMENT.pack(tr.MSG_EXT_TRAIN, 7, 9, i, s.count, s.chunk, s.last) + bytes(n - 24)
            assert tr.parse_fragment(h, n) == (7, 9, i, s)
    with pytest.raises(ValueError):
        tr.shape_for(65564, 1452)
    with pytest.raises(ValueError):
        tr.shape_for(5000, 500)


def test_a_gro_block_with_an_injected_fragment_falls_back_to_per_fragment_reassembly():
    link = negotiated()
    rng = random.Random(22)
    pkt, dg = legit_train(link)
    block = b"".join(dg[:4] + [forge(dg[4], rng)] + dg[4:])   # an injected copy breaks the in-order run
    got = link.b.receive_block(bytearray(block), len(dg[0]), ADDR_A, link.now)
    assert [bytes(sp.packet) for sp in got] == [pkt]
    assert link.b.ext_drops["train_conflict"] == 1 and link.pb.train_bytes == 0


def test_a_forged_whole_train_block_before_the_real_one_is_dropped_and_holds_nothing():
    link = negotiated()
    rng = random.Random(23)
    pkt, dg = legit_train(link)
    forged = b"".join(forge(d, rng) for d in dg)
    assert link.b.receive_block(bytearray(forged), len(dg[0]), ADDR_A, link.now) == []
    assert link.b.ext_drops["train_decrypt"] == 1 and link.pb.train_bytes == 0 and not link.pb.trains
    got = link.b.receive_block(bytearray(b"".join(dg)), len(dg[0]), ADDR_A, link.now)
    assert [bytes(sp.packet) for sp in got] == [pkt]
    assert link.b.receive_block(bytearray(b"".join(dg)), len(dg[0]), ADDR_A, link.now) == []   # replayed block
    assert link.b.ext_drops["train_replayed"] == len(dg)


# ------------------------------------------------------------------ the doc


def test_the_extension_doc_matches_the_code():
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "wireguard-extension.md").read_text()
    assert all(f"| `{r}` |" in text for r in ext.EXT_DROP_REASONS)
    assert f"### Control message (the offer): {tr.CONTROL_SIZE} bytes" in text
    assert f"{tr.FRAGMENT_HEADER_SIZE}-byte header" in text and f"SUPER_HEADROOM` = {ext.SUPER_HEADROOM}" in text
    assert f"`0x{tr.MSG_EXT_CONTROL:02X}`" in text and f"`0x{tr.MSG_EXT_TRAIN:02X}`" in text
    # the sizes table: train fragments and wire bytes from shape_for, plain segments of MSS 1,380
    rows = re.findall(r"^\| ([\d,]+) B \| (\d+) \| ([\d,]+) \| (\d+) \| ([\d,]+) \|$", text, re.M)
    assert len(rows) == 3
    for size, frags, wire, segs, plain in rows:
        n = int(size.replace(",", ""))
        s = tr.shape_for(tr.RECORD_SIZE + n + 16, 1452)
        k = -(-(n - 40) // 1380)
        assert (int(frags), int(wire.replace(",", "")), int(segs), int(plain.replace(",", ""))) == \
            (s.count, s.wire_size, k, k * 1452)
    assert f"at most `OFFER_ATTEMPTS` = {ext.OFFER_ATTEMPTS} per session" in text
    assert f"`TRAIN_TIMEOUT` = {ext.TRAIN_TIMEOUT} s" in text and f"{ext.MAX_PENDING_TRAINS} incomplete trains" in text


def test_the_engine_wide_limit_holds_and_a_removed_peers_trains_free_it(monkeypatch):
    monkeypatch.setattr(ext, "ENGINE_PENDING_BYTES", 100_000)
    link = negotiated()
    rng = random.Random(24)
    recv = link.pa.current.remote_index
    for i in range(50):
        hdr = tr.FRAGMENT.pack(tr.MSG_EXT_TRAIN, recv, 100 + i, 0, 40, 1428, 1000)
        link.b.receive(bytearray(hdr + rng.randbytes(1428)), ADDR_A, link.now)
        assert link.b._ext_held <= 100_000
    assert link.b.ext_drops["train_table_full"] == 50 - 100_000 // (39 * 1428 + 1000)
    link.b.remove_peer(link.pb)   # its held trains go with it; the engine's count is stale until recounted
    link.pb = link.b.add_peer(link.a.public_key, allowed_ips=[f"{A4}/32", f"{A6}/128"], endpoint=ADDR_A)
    link.now += 6   # past REKEY_TIMEOUT: a may initiate again
    link.handshake()
    assert link.b.extension_active(link.pb) and link.b._ext_held > 0   # stale until a train needs room
    pkt, dg = legit_train(link, 60000)
    assert feed(link, dg) == [pkt]


def test_seal_super_into_refuses_a_small_buffer_before_using_a_counter():
    for extension in (True, False):
        link = ext_link(extension, extension)
        link.handshake()
        pkt = tcp(4, 30000, random.Random(25))
        buf = bytearray(ext.SUPER_HEADROOM + len(pkt) + 100)
        buf[ext.SUPER_HEADROOM:ext.SUPER_HEADROOM + len(pkt)] = pkt
        before = link.pa.current.send_counter
        with pytest.raises(ValueError):
            link.a.seal_super_into(link.pa, buf, len(pkt), tso_meta(pkt), link.now)
        assert link.pa.current.send_counter == before
        with pytest.raises(ValueError):
            link.a.seal_super_into(link.pa, buf, len(buf), None, link.now)   # no packet that long in the buffer


def test_a_local_super_packet_with_bad_metadata_is_dropped_not_sent():
    link = negotiated()
    pkt = tcp(4, 30000, random.Random(26))
    batch, _ = seal_super(link.a, link.pa, pkt, tso_meta(pkt, gso_size=8), link.now)
    assert batch is None and link.a.ext_drops["bad_gso"] == 1
    batch, _ = seal_super(link.a, link.pa, pkt[:-1], tso_meta(pkt), link.now)   # IP length disagrees
    assert batch is None and link.a.ext_drops["bad_gso"] == 2


def test_releasing_the_pin_negotiates_on_a_new_session():
    link = ext_link()
    link.a.set_plain(link.pa)
    link.handshake()
    assert not link.a.extension_active(link.pa)
    link.now += 6
    link.a.set_plain(link.pa, False, link.now)
    link.pump()
    assert link.a.extension_active(link.pa) and link.b.extension_active(link.pb)
    pkt, dg = legit_train(link)
    assert feed(link, dg) == [pkt]


def test_offers_never_stand_in_for_a_keepalive_a_wireguard_peer_expects():
    link = ext_link(a_on=True, b_on=False)
    link.handshake()
    link.send(link.b, ip4(B4, A4, b"data from the plain peer"))   # a owes b a keepalive in 10 s
    mark = len(link.wire)
    link.advance(10.5)
    from_a = [d for s, d in link.wire[mark:] if s is link.a]
    assert sum(d[0] == tr.MSG_EXT_CONTROL for d in from_a) == ext.OFFER_ATTEMPTS - 1   # the two retries ...
    assert any(d[0] == 4 and len(d) == 32 for d in from_a)                              # ... and the keepalive
