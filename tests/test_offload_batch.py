"""tunkit.tun.batch on a fake device: split on read, coalesce on write, drops counted, the EINVAL fallback."""

from __future__ import annotations

import errno
import logging
import socket
import struct

import pytest

from support_offload import ACK, PSH, tcp4, tcp_stream, udp_stream
from tunkit._uapi import TunOffload
from tunkit.tun.batch import GSO_REFUSAL_LIMIT, OffloadIO
from tunkit.errors import DeviceError
from tunkit.packet.coalesce import coalesce
from tunkit.packet.offload import DATA_VALID_HDR, ZERO_HDR, VirtioNetHdr, gso_split


class FakeQueue:
    """A TUN queue stand-in on a datagram socketpair: ``reads`` are queued for the reader; what is written
    is collected from the other end (each write's bytes).  ``refuse``: a predicate on a write's bytes,
    True -> EINVAL (installed into the OffloadIO by :func:`_io`)."""

    def __init__(self, reads=(), refuse=None):
        self._s, self.host = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        for x in (self._s, self.host):
            x.setblocking(False)
            x.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        for r in reads:
            self.host.send(r)
        self.refuse = refuse
        self._written: list[bytes] = []

    def fileno(self):
        return self._s.fileno()

    @property
    def written(self) -> list[bytes]:
        while True:
            try:
                self._written.append(self.host.recv(70000))
            except BlockingIOError:
                return list(self._written)


def _io(dev, **kw) -> OffloadIO:
    io = OffloadIO(dev, **kw)
    q = dev.queues[0]
    if q.refuse is not None:
        real = io._writev

        def writev(fd, bufs):
            if q.refuse(b"".join(bytes(b) for b in bufs)):
                raise OSError(errno.EINVAL, "Invalid argument")
            return real(fd, bufs)

        io._writev = writev
    return io


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
    io = _io(FakeDevice(q))
    assert io.read() == segs
    got = io.read()
    assert [bytes(p) for p in got] == [plain]
    assert io.read(timeout=0) is None
    assert (io.stats.reads, io.stats.super_reads, io.stats.packets_read) == (2, 1, 6)


def test_read_batch_drains_and_drops_malformed_reads():
    segs = tcp_stream(3, 400)
    hdr, body = _super(segs)
    bad_hdr = VirtioNetHdr(4).encode() + body  # RSC_INFO: never valid from a TUN
    bad_pkt = hdr.encode() + body[:-1]  # IP length no longer matches
    q = FakeQueue([hdr.encode() + body, bad_hdr, bad_pkt, ZERO_HDR.encode() + segs[0], hdr.encode() + body])
    io = _io(FakeDevice(q))
    got = io.read_batch(max_reads=4, timeout=0)
    assert [bytes(p) for p in got] == segs + [segs[0]]
    assert (io.stats.reads, io.stats.malformed) == (4, 2)
    assert io.read_batch(max_reads=4) == segs  # the fifth read; then nothing is queued
    assert io.read_batch(timeout=0) == []
    with pytest.raises(ValueError, match="max_reads must be at least 1, not 0"):
        io.read_batch(max_reads=0)


def test_read_super_returns_header_and_packet():
    hdr, body = _super(tcp_stream(2, 300))
    io = _io(FakeDevice(FakeQueue([hdr.encode() + body, b"\x00" * 5])))
    h, pkt = io.read_super()
    assert h == hdr._replace(hdr_len=0) and bytes(pkt) == body  # hdr_len is never trusted: recomputed on write
    assert io.read_super(timeout=0) is None  # a 5-byte read: dropped and counted, nothing raised
    assert io.stats.malformed == 1
    assert io.read_super(timeout=0) is None


def test_write_coalesces_and_keeps_headers_apart():
    segs = tcp_stream(10, 1000, last_len=10)
    q = FakeQueue()
    io = _io(FakeDevice(q))
    assert io.write(segs + [tcp4(b"", seq=1)]) == 2  # one super-packet, one pure ACK
    hdr = VirtioNetHdr.decode(q.written[0])
    assert hdr.gso_type == 1 and hdr.gso_size == 1000
    assert gso_split(hdr, q.written[0][10:]) == segs
    assert q.written[1][:10] == ZERO_HDR.encode()
    assert (io.stats.writes, io.stats.super_writes, io.stats.packets_written) == (2, 1, 11)


def test_write_single_segments_carry_data_valid():
    q = FakeQueue()
    io = _io(FakeDevice(q))
    p = tcp4(b"x" * 10, flags=ACK | PSH)
    io.write([p])
    assert q.written == [DATA_VALID_HDR.encode() + p]


def test_udp_coalesced_only_with_uso():
    dgrams = udp_stream(4, 300)
    q = FakeQueue()
    _io(FakeDevice(q)).write(dgrams)
    assert len(q.written) == 4
    q = FakeQueue()
    _io(FakeDevice(q, offloads=TunOffload.CSUM | TunOffload.TSO4 | TunOffload.USO4 | TunOffload.USO6)).write(dgrams)
    assert len(q.written) == 1 and VirtioNetHdr.decode(q.written[0]).gso_type == 5


def test_einval_on_gso_writes_resends_split_and_stops_after_the_limit_logging_once(caplog):
    q = FakeQueue(refuse=lambda data: data[1] != 0)  # any GSO write
    io = _io(FakeDevice(q))
    with caplog.at_level(logging.WARNING, logger="tunkit.tun.batch"):
        for i in range(GSO_REFUSAL_LIMIT + 2):
            assert io.write(tcp_stream(6, 500, seq=1000 + i * 3000)) == 6  # every packet still arrives
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["fk0"]  # said once
    assert "one by one" in caplog.records[0].getMessage()
    assert not io.coalescing and not io.gso_writes
    assert io.stats.gso_refused == GSO_REFUSAL_LIMIT  # after the limit nothing is tried as GSO
    assert [w[10:] for w in q.written[:6]] == tcp_stream(6, 500)  # the refused write's packets, in order
    assert all(w[:10] in (ZERO_HDR.encode(), DATA_VALID_HDR.encode()) for w in q.written)


def test_an_accepted_gso_write_resets_the_refusal_count():
    refuse = [True]
    q = FakeQueue(refuse=lambda data: data[1] != 0 and refuse[0])
    io = _io(FakeDevice(q))
    for i in range(GSO_REFUSAL_LIMIT * 2):
        refuse[0] = i % 2 == 0  # every other GSO write is refused: never the limit in a row
        io.write(tcp_stream(4, 500, seq=1000 + i * 2000))
    assert io.coalescing and io.gso_writes and io.stats.gso_refused == GSO_REFUSAL_LIMIT


def test_einval_on_a_single_packet_is_counted_not_raised_and_other_errors_propagate():
    q = FakeQueue(refuse=lambda data: data.endswith(b"bad"))
    io = _io(FakeDevice(q))
    assert io.write([b"\x45bad", tcp4(b"ok")]) == 1
    assert io.stats.rejected == 1
    io = _io(FakeDevice(FakeQueue()))

    def down(fd, bufs):
        raise OSError(errno.EIO, "Input/output error")

    io._writev = down
    assert io.write([tcp4(b"x")]) == 0 and io.stats.write_errors == 1  # the device is down: dropped, counted

    def denied(fd, bufs):
        raise OSError(errno.EPERM, "Operation not permitted")

    io._writev = denied
    with pytest.raises(DeviceError) as exc:
        io.write([tcp4(b"x")])
    assert exc.value.errno == errno.EPERM


def test_devices_without_vnet_header_and_twelve_byte_headers():
    q = FakeQueue([b"raw packet"])
    io = _io(FakeDevice(q, vnet_hdr_len=0, offloads=TunOffload(0)))
    assert io.read() == [b"raw packet"] and not io.coalescing
    segs = tcp_stream(3, 100)
    io.write(segs)
    assert q.written == segs  # plain writes, no header
    q = FakeQueue()
    io = _io(FakeDevice(q, vnet_hdr_len=12))
    io.write(segs)
    (w,) = q.written
    assert len(w) == 12 + 40 + 300 and w[10:12] == b"\0\0"  # num_buffers 0
    assert gso_split(VirtioNetHdr.decode(w), w[12:]) == segs
    q = FakeQueue()
    _io(FakeDevice(q), coalesce=False).write(segs)
    assert q.written == [ZERO_HDR.encode() + s for s in segs]
    with pytest.raises(ValueError, match="shorter"):
        _io(FakeDevice(q, vnet_hdr_len=8))


def test_unverified_write_trusts_the_caller():
    segs = tcp_stream(3, 100)
    bad = bytearray(segs[1])
    bad[-1] ^= 1
    q = FakeQueue()
    _io(FakeDevice(q), verify_checksums=False).write([segs[0], bytes(bad), segs[2]])
    assert len(q.written) == 1
    q = FakeQueue()
    _io(FakeDevice(q)).write([segs[0], bytes(bad), segs[2]])
    assert len(q.written) == 3 and struct.unpack_from("!B", q.written[1], 1)[0] == 0
