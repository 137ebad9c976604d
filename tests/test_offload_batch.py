"""tunkit.batch on a fake device: split on read, coalesce on write, drops counted, the EINVAL fallback."""

from __future__ import annotations

import errno
import logging
import struct

import pytest

from support_device import FakeQueue
from support_offload import ACK, PSH, tcp4, tcp_stream, udp_stream
from tunkit._uapi import TunOffload
from tunkit.batch import OffloadIO
from tunkit.errors import DecodeError, DeviceError
from tunkit.offload import DATA_VALID_HDR, ZERO_HDR, VirtioNetHdr, coalesce, gso_split


class FakeDevice:
    def __init__(self, queue, *, vnet_hdr_len=10, offloads=TunOffload.CSUM | TunOffload.TSO4 | TunOffload.TSO6):
        self.name = "fk0"
        self.queues = [queue]
        self.vnet_hdr_len = vnet_hdr_len
        self.offloads = offloads


def _super(segs, **kw):
    ((hdr, bufs),) = coalesce(segs, **kw)
    return hdr, b"".join(bufs)


def test_read_splits_super_packets_and_passes_plain_ones():
    segs = tcp_stream(5, 500, last_len=100, flags=ACK)
    hdr, body = _super(segs)
    plain = tcp4(b"single")
    q = FakeQueue([hdr.encode() + body, ZERO_HDR.encode() + plain])
    io = OffloadIO(FakeDevice(q))
    assert io.read() == segs
    got = io.read()
    assert [bytes(p) for p in got] == [plain]
    assert io.read(timeout=0) is None
    assert (io.stats.reads, io.stats.super_packets, io.stats.packets_read) == (2, 1, 6)


def test_read_batch_drains_and_drops_malformed_reads():
    segs = tcp_stream(3, 400)
    hdr, body = _super(segs)
    bad_hdr = VirtioNetHdr(4).encode() + body  # RSC_INFO: never valid from a TUN
    bad_pkt = hdr.encode() + body[:-1]  # IP length no longer matches
    q = FakeQueue([hdr.encode() + body, bad_hdr, bad_pkt, ZERO_HDR.encode() + segs[0], hdr.encode() + body])
    io = OffloadIO(FakeDevice(q))
    got = io.read_batch(max_reads=4, timeout=0)
    assert [bytes(p) for p in got] == segs + [segs[0]]
    assert (io.stats.reads, io.stats.dropped) == (4, 2)
    assert io.read_batch(max_reads=4) == segs  # the fifth read; then nothing is queued
    assert io.read_batch() == []
    with pytest.raises(ValueError, match="max_reads must be at least 1, not 0"):
        io.read_batch(max_reads=0)


def test_read_super_returns_header_and_view():
    hdr, body = _super(tcp_stream(2, 300))
    io = OffloadIO(FakeDevice(FakeQueue([hdr.encode() + body, b"\x00" * 5])))
    h, pkt = io.read_super()
    assert h == hdr and bytes(pkt) == body and isinstance(pkt, memoryview)
    with pytest.raises(DecodeError, match="need 10"):
        io.read_super()
    assert io.stats.dropped == 1
    assert io.read_super() is None


def test_write_coalesces_and_keeps_headers_apart():
    segs = tcp_stream(10, 1000, last_len=10)
    q = FakeQueue()
    io = OffloadIO(FakeDevice(q))
    assert io.write(segs + [tcp4(b"", seq=1)]) == 2  # one super-packet, one pure ACK
    hdr = VirtioNetHdr.decode(q.written[0])
    assert hdr.gso_type == 1 and hdr.gso_size == 1000
    assert gso_split(hdr, q.written[0][10:]) == segs
    assert q.written[1][:10] == ZERO_HDR.encode()
    assert (io.stats.writes, io.stats.super_writes, io.stats.packets_written) == (2, 1, 11)


def test_write_single_segments_carry_data_valid():
    q = FakeQueue()
    io = OffloadIO(FakeDevice(q))
    p = tcp4(b"x" * 10, flags=ACK | PSH)
    io.write([p])
    assert q.written == [DATA_VALID_HDR.encode() + p]


def test_udp_coalesced_only_with_uso():
    dgrams = udp_stream(4, 300)
    q = FakeQueue()
    OffloadIO(FakeDevice(q)).write(dgrams)
    assert len(q.written) == 4
    q = FakeQueue()
    OffloadIO(FakeDevice(q, offloads=TunOffload.CSUM | TunOffload.TSO4 | TunOffload.USO4 | TunOffload.USO6)).write(dgrams)
    assert len(q.written) == 1 and VirtioNetHdr.decode(q.written[0]).gso_type == 5


def test_einval_on_a_coalesced_write_falls_back_once_and_logs_once(caplog):
    segs = tcp_stream(6, 500)
    q = FakeQueue(refuse=lambda data: data[1] != 0)  # any GSO write
    io = OffloadIO(FakeDevice(q))
    with caplog.at_level(logging.WARNING, logger="tunkit.batch"):
        assert io.write(segs) == 6
        assert io.write(tcp_stream(6, 500, seq=4000)) == 6
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["fk0"]  # said once
    assert "one by one" in caplog.records[0].getMessage()
    assert not io.coalescing and io.stats.fallbacks == 1
    assert [w[10:] for w in q.written[:6]] == segs  # the refused write's packets, in order
    assert all(w[:10] in (ZERO_HDR.encode(), DATA_VALID_HDR.encode()) for w in q.written)


def test_einval_on_a_single_packet_is_counted_not_raised_and_other_errors_propagate():
    q = FakeQueue(refuse=lambda data: data.endswith(b"bad"))
    io = OffloadIO(FakeDevice(q))
    assert io.write([b"\x45bad", tcp4(b"ok")]) == 1
    assert io.stats.rejected == 1

    class Down(FakeQueue):
        def writev(self, bufs):
            raise DeviceError(errno.EIO, "fk0", "writev: the device is down")

    with pytest.raises(DeviceError) as exc:
        OffloadIO(FakeDevice(Down())).write([tcp4(b"x")])
    assert exc.value.errno == errno.EIO


def test_devices_without_vnet_header_and_twelve_byte_headers():
    q = FakeQueue([b"raw packet"])
    io = OffloadIO(FakeDevice(q, vnet_hdr_len=0, offloads=TunOffload(0)))
    assert io.read() == [b"raw packet"] and not io.coalescing
    segs = tcp_stream(3, 100)
    io.write(segs)
    assert q.written == segs  # plain writes, no header
    q = FakeQueue()
    io = OffloadIO(FakeDevice(q, vnet_hdr_len=12))
    io.write(segs)
    (w,) = q.written
    assert len(w) == 12 + 40 + 300 and w[10:12] == b"\0\0"  # num_buffers 0
    assert gso_split(VirtioNetHdr.decode(w), w[12:]) == segs
    q = FakeQueue()
    OffloadIO(FakeDevice(q), coalesce=False).write(segs)
    assert q.written == [ZERO_HDR.encode() + s for s in segs]
    with pytest.raises(ValueError, match="shorter"):
        OffloadIO(FakeDevice(q, vnet_hdr_len=8))


def test_unverified_write_trusts_the_caller():
    segs = tcp_stream(3, 100)
    bad = bytearray(segs[1])
    bad[-1] ^= 1
    q = FakeQueue()
    OffloadIO(FakeDevice(q), verify_checksums=False).write([segs[0], bytes(bad), segs[2]])
    assert len(q.written) == 1
    q = FakeQueue()
    OffloadIO(FakeDevice(q)).write([segs[0], bytes(bad), segs[2]])
    assert len(q.written) == 3 and struct.unpack_from("!B", q.written[1], 1)[0] == 0
