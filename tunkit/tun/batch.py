"""The one TUN packet path: offload-aware reads and coalescing writes on one queue; does I/O.

Every data path (the overlay :class:`tunkit.overlay.tunnel.Tunnel`, tools, tests)
moves packets through an :class:`OffloadIO`; nothing above it reads or
writes a TUN descriptor or sees a ``virtio_net_hdr``'s bytes.  The arithmetic
is :mod:`tunkit.packet.offload` (header codec, split) and :mod:`tunkit.packet.coalesce`
(GRO); this module only moves bytes and applies one policy::

    from tunkit.tun.batch import OffloadIO
    from tunkit.tun.device import open_tun

    dev = open_tun("tk%d", vnet_hdr=True)        # offloads negotiated by the device layer
    io = OffloadIO(dev)                           # queue 0; OffloadIO(dev, queue=i) for others
    packets = io.read_batch(timeout=1.0)          # wire-sized IP packets, super-packets split
    io.write(packets)                             # coalesced into super-packets again

The hot path (what :class:`~tunkit.overlay.tunnel.Tunnel` uses) allocates no
buffers: :meth:`OffloadIO.read_each` reads up to ``batch`` packets into
preallocated buffers and calls ``handler(packet_view, header)`` for each,
``header`` being a :class:`~tunkit.packet.offload.VirtioNetHdr` (one object per
packet shape, checked once) or None for a plain packet; a super-packet stays
whole (:func:`tunkit.packet.offload.gso_split` cuts it where a caller needs MTU-sized
packets).  :meth:`OffloadIO.add` queues a packet for coalescing and
:meth:`OffloadIO.flush` writes the results; :meth:`OffloadIO.write_one`
writes one packet or super-packet given as buffers (gathered by ``writev``).
On a device without a vnet header, super-packets are split (and partial
checksums finished) before they are written.

One policy for what the kernel refuses, one set of counters
(:class:`TunStats`):

* a malformed read (bad virtio_net_hdr) is dropped (``malformed``);
* a read error while the device goes away (EIO, EBADFD, EBADF, EFAULT,
  EINVAL) ends the round (``read_errors``);
* a GSO write refused with EINVAL (kernel regressions have done this to valid
  writes) is split and its segments written one by one (``gso_refused``);
  after :data:`GSO_REFUSAL_LIMIT` refusals with no GSO write accepted in
  between, coalescing and GSO writes stop for the queue and a warning is
  logged once (logger ``tunkit.tun.batch``);
* a plain packet refused with EINVAL is dropped (``rejected``); EIO, ENOBUFS,
  EAGAIN, EBADF, EFAULT drop it too (``write_errors``); anything else raises
  :class:`~tunkit.errors.DeviceError`.
"""

from __future__ import annotations

import errno
import logging
import os
import select
from dataclasses import asdict, dataclass

from tunkit._uapi import VIRTIO_NET_HDR_LEN, TunOffload, VirtioNetHdrFlag
from tunkit.packet.coalesce import Coalescer
from tunkit.errors import DecodeError, DeviceError
from tunkit.packet.offload import (
    DATA_VALID_HDR,
    VIRTIO_NET_HDR,
    ZERO_HDR,
    VirtioNetHdr,
    checksum_partial,
    encode_for,
    gso_split,
    read_header,
)

__all__ = ["OffloadIO", "TunStats", "OffloadStats", "GSO_REFUSAL_LIMIT"]

log = logging.getLogger("tunkit.tun.batch")

_USO = TunOffload.USO4 | TunOffload.USO6
GSO_REFUSAL_LIMIT = 8  # EINVAL on this many GSO writes in a row: the kernel will not take them
_MAX_PACKET = 65535 + 64  # largest IP packet (IPv6 payload length 65535 + header) with room to spare
_READ_GONE = (errno.EIO, errno.EBADFD, errno.EBADF, errno.EFAULT, errno.EINVAL)
_WRITE_DROP = (errno.EAGAIN, errno.EIO, errno.ENOBUFS, errno.EBADF, errno.EBADFD, errno.EFAULT)
_UNPACK = VIRTIO_NET_HDR.unpack_from
_NEEDS_CSUM = int(VirtioNetHdrFlag.NEEDS_CSUM)


@dataclass
class TunStats:
    """Counters of one :class:`OffloadIO` (monotonic)."""

    def counters(self) -> dict:
        """The counters as a dict of ints."""
        return asdict(self)

    reads: int = 0  # packets (or super-packets) read from the queue
    super_reads: int = 0  # reads that carried a GSO super-packet (counted by the convenience readers)
    packets_read: int = 0  # packets handed out by read()/read_batch() after splitting
    malformed: int = 0  # reads (or packets to write) dropped as malformed
    read_errors: int = 0  # reads that failed (device going away): the round ended
    writes: int = 0  # write system calls that succeeded
    super_writes: int = 0  # writes that carried a super-packet (coalesced here or handed in)
    packets_written: int = 0  # packets those writes carried (a coalesced super-packet counts its segments)
    rejected: int = 0  # plain packets the kernel refused with EINVAL (dropped)
    gso_refused: int = 0  # GSO writes refused with EINVAL and resent split
    write_errors: int = 0  # writes dropped for EIO, ENOBUFS, EAGAIN, EBADF, EFAULT


OffloadStats = TunStats  # the name before the tunnel used this module too


class OffloadIO:
    """Read and write IP packets on one TUN queue, handling its virtio_net_hdr and offloads.

    ``source`` is a :class:`tunkit.tun.device.Device` (``queue`` picks one of its
    queues; header length and offloads come from the device), or a queue:
    anything with ``fileno()`` whose descriptor is non-blocking and moves one
    packet per read/write (a :class:`tunkit.tun.device.Queue`, an inherited
    descriptor, a datagram socketpair in tests); then pass ``vnet_hdr_len``
    (0: no header) and ``uso``.

    ``coalesce`` (default: whenever there is a vnet header) turns GRO on
    writes on or off; UDP datagrams are merged only with ``uso``.
    ``verify_checksums`` is passed to the coalescer: leave it on unless the
    packets were built by the caller itself.  ``batch`` is the most packets
    :meth:`read_each` takes per call (one preallocated buffer each).
    """

    def __init__(self, source, *, queue: int = 0, vnet_hdr_len: int | None = None, uso: bool | None = None,
                 coalesce: bool | None = None, verify_checksums: bool = True, batch: int = 64,
                 name: str | None = None) -> None:
        q = source.queues[queue] if hasattr(source, "queues") else source
        self.name = name or getattr(source, "name", None) or getattr(q, "name", None) or "tun"
        hl = getattr(source, "vnet_hdr_len", None) if vnet_hdr_len is None else vnet_hdr_len
        self.hdr_len = int(hl or 0)
        if self.hdr_len and self.hdr_len < VIRTIO_NET_HDR_LEN:
            raise ValueError(f"{self.name}: vnet header of {self.hdr_len} bytes is shorter than {VIRTIO_NET_HDR_LEN}")
        if batch < 1:
            raise ValueError(f"{self.name}: batch {batch}: want at least 1")
        self.uso = bool((getattr(source, "offloads", None) or 0) & _USO) if uso is None else bool(uso)
        self.coalescing = bool(self.hdr_len) if coalesce is None else (coalesce and bool(self.hdr_len))
        self.gso_writes = bool(self.hdr_len)  # False once the kernel keeps refusing GSO writes
        self.stats = TunStats()
        self.queue = q
        self._fd = q.fileno()
        self._co = Coalescer(uso=self.uso, verify_checksums=verify_checksums)
        self._refusals = 0  # GSO writes refused since the last one accepted
        self._queued = False  # add() queued something for the next flush()
        self._pad = bytes(self.hdr_len - VIRTIO_NET_HDR_LEN) if self.hdr_len else b""  # a 12-byte header ends in num_buffers
        self._zero = ZERO_HDR.encode() + self._pad if self.hdr_len else b""
        self._valid = DATA_VALID_HDR.encode() + self._pad if self.hdr_len else b""
        size = _MAX_PACKET + self.hdr_len
        # (buffer, the 1-tuple readv takes, its view): built once, so a read allocates no buffer
        self._bufs = [(b, (b,), memoryview(b)) for b in (bytearray(size) for _ in range(batch))]
        self._readv = os.readv  # instance attributes: the hot path looks them up once, tests may replace them
        self._writev = os.writev

    def __repr__(self) -> str:
        return f"<OffloadIO {self.name} vnet_hdr_len={self.hdr_len} coalescing={self.coalescing} uso={self.uso}>"

    def fileno(self) -> int:
        return self._fd

    # -- reading: the hot path ---------------------------------------------------
    def read_each(self, handler) -> int:
        """Read what is queued (at most ``batch`` packets) and call ``handler(packet, header)`` for each.

        ``packet`` is a memoryview into a buffer reused by the next call;
        ``header`` a checked :class:`~tunkit.packet.offload.VirtioNetHdr` or None.
        Returns the number of reads.  Never blocks.
        """
        fd, readv, hl, stats = self._fd, self._readv, self.hdr_len, self.stats
        reads = 0
        for buf, bufs, view in self._bufs:
            try:
                n = readv(fd, bufs)
            except BlockingIOError:  # queue drained
                break
            except OSError as e:  # the device going away: end this round, count it
                stats.read_errors += 1
                if e.errno in _READ_GONE:
                    break
                raise DeviceError(e.errno, self.name, "read failed") from None
            if not n:
                break
            reads += 1
            if not hl:
                handler(view[:n], None)
                continue
            if n < hl:
                stats.malformed += 1
                continue
            flags, gso_type, hdr_len, gso_size, csum_start, csum_offset = _UNPACK(buf)
            hdr = None
            if flags or gso_type:
                try:
                    hdr = read_header(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset)
                except DecodeError:
                    stats.malformed += 1
                    continue
            handler(view[hl:n], hdr)
        stats.reads += reads
        return reads

    # -- reading: convenience (blocking with a timeout, copies) ---------------------
    def wait(self, timeout: float | None = None) -> bool:
        """Wait until the queue is readable; False on timeout."""
        p = select.poll()
        p.register(self._fd, select.POLLIN)
        return bool(p.poll(None if timeout is None else max(0, int(timeout * 1000))))

    def _collect(self, max_reads: int) -> list:
        got: list = []
        bufs = self._bufs[:max_reads]
        saved, self._bufs = self._bufs, bufs
        try:
            self.read_each(lambda pkt, hdr: got.append((hdr, bytes(pkt))))
        finally:
            self._bufs = saved
        return got

    def read_super(self, timeout: float | None = None):
        """One read, unsplit: ``(VirtioNetHdr, packet bytes)``, or ``None`` on timeout (or a dropped read)."""
        if not self.wait(timeout):
            return None
        got = self._collect(1)
        if not got:
            return None
        hdr, pkt = got[0]
        return hdr or ZERO_HDR, pkt

    def _split(self, hdr, pkt) -> list:
        if hdr is None:
            return [pkt]
        try:
            pkts = gso_split(hdr, pkt)
        except DecodeError as e:
            self.stats.malformed += 1
            log.debug("%s: dropped a malformed read: %s", self.name, e)
            return []
        if hdr.gso_type:
            self.stats.super_reads += 1
        return pkts

    def read(self, timeout: float | None = None) -> list | None:
        """One read, split into wire packets; ``None`` on timeout, ``[]`` if it was malformed and dropped."""
        if not self.wait(timeout):
            return None
        got = self._collect(1)
        out = [p for hdr, pkt in got for p in self._split(hdr, pkt)]
        self.stats.packets_read += len(out)
        return out

    def read_batch(self, max_reads: int = 64, timeout: float | None = None) -> list:
        """Wait up to ``timeout`` for one read, then take what is queued (at most ``max_reads`` reads).

        Returns the wire packets of all those reads, in order (empty on timeout).
        """
        if max_reads < 1:
            raise ValueError(f"max_reads must be at least 1, not {max_reads}")
        out: list = []
        while len(out) < max_reads and self.wait(timeout if not out else 0):
            got = self._collect(min(max_reads, len(self._bufs)))
            if not got:
                break
            for hdr, pkt in got:
                out += self._split(hdr, pkt)
        self.stats.packets_read += len(out)
        return out

    # -- writing ---------------------------------------------------------------------
    def add(self, pkt, hdr: VirtioNetHdr | None = None) -> bool:
        """Queue one plain packet for coalescing (written by :meth:`flush`); written at once when not coalescing.

        ``hdr``: None (the checksum is complete), or the packet's own
        NEEDS_CSUM header (partial checksum, trusted; see
        :class:`~tunkit.packet.coalesce.Coalescer`).  Keep ``pkt`` unchanged until
        the flush.  False if it was written at once and dropped.
        """
        if self.coalescing:
            self._co.add(pkt, hdr)
            self._queued = True
            return True
        return self.write_one((pkt,), hdr)

    def pending(self) -> int:
        """Results the next :meth:`flush` writes."""
        return len(self._co)

    def flush(self) -> int:
        """Write everything :meth:`add` queued (coalesced), in order; returns the write calls made."""
        if not self._queued:
            return 0
        self._queued = False
        n = 0
        for hdr, bufs in self._co.flush():
            if not hdr.gso_type:
                vh = self._valid if hdr is DATA_VALID_HDR else self._zero if hdr is ZERO_HDR else encode_for(hdr, bufs[0]) + self._pad
                n += self._write((vh, *bufs), False, 1) == 1
                continue
            r = self._write((hdr.encode() + self._pad, *bufs), True, len(bufs) - 1) if self.gso_writes else -1
            n += r == 1 or (r < 0 and self._write_split(hdr, b"".join(bufs), self._valid))
        return n

    def write_one(self, parts, hdr: VirtioNetHdr | None = None) -> bool:
        """Write one packet or super-packet given as buffers, after what :meth:`add` queued.

        ``hdr`` must be checked (read by this module, or passed
        :func:`tunkit.packet.offload.gso_problem`).  Without a vnet header (or once
        GSO writes stopped) a super-packet is split, and without a vnet header
        a partial checksum is finished, before writing.  False if it was
        dropped (counted).
        """
        if self._queued:
            self.flush()  # keep the order of what came first
        if hdr is None:
            return self._write((self._zero, *parts) if self.hdr_len else parts, False, 1) == 1
        if hdr.gso_type:
            if self.gso_writes:  # the common case of a received super-packet, inline
                try:
                    self._writev(self._fd, (encode_for(hdr, parts[0]) + self._pad, *parts))
                except OSError as e:
                    r = self._failed(e, True)
                    if r >= 0:
                        return False
                else:
                    s = self.stats
                    s.writes += 1
                    s.packets_written += 1
                    s.super_writes += 1
                    self._refusals = 0
                    return True
            return self._write_split(hdr, parts[0] if len(parts) == 1 else b"".join(parts), self._zero) > 0
        if self.hdr_len:
            return self._write((encode_for(hdr, parts[0]) + self._pad, *parts), False, 1) == 1
        if not hdr.flags & _NEEDS_CSUM:
            return self._write(parts, False, 1) == 1
        try:
            pkt = checksum_partial(hdr, parts[0] if len(parts) == 1 else b"".join(parts))
        except DecodeError:
            self.stats.malformed += 1
            return False
        return self._write((pkt,), False, 1) == 1

    def write(self, packets) -> int:
        """Write IP packets (bytes-like, one each), coalescing them when possible; returns the write calls made."""
        before = self.stats.writes
        for p in packets:
            self.add(p)
        self.flush()
        return self.stats.writes - before

    # -- the policy ---------------------------------------------------------------------
    def _write(self, bufs, gso: bool, packets: int) -> int:
        """One writev: 1 if the kernel took it, 0 if it was dropped (counted), -1 for a refused GSO write."""
        try:
            self._writev(self._fd, bufs)
        except OSError as e:
            return self._failed(e, gso)
        s = self.stats
        s.writes += 1
        s.packets_written += packets
        if gso:
            s.super_writes += 1
            self._refusals = 0
        return 1

    def _failed(self, e: OSError, gso: bool) -> int:
        """A refused write: 0 (dropped, counted) or -1 (a GSO write refused with EINVAL: split it); else raise."""
        if e.errno == errno.EINVAL:
            if gso:
                self._refused(e)
                return -1
            self.stats.rejected += 1
            log.debug("%s: kernel refused a packet: %s", self.name, e)
            return 0
        if e.errno in _WRITE_DROP:
            self.stats.write_errors += 1
            return 0
        raise DeviceError(e.errno, self.name, "write failed") from None

    def _write_split(self, hdr: VirtioNetHdr, pkt, plain_hdr: bytes) -> int:
        """Write a super-packet's segments one by one; returns the writes made."""
        try:
            segments = gso_split(hdr, pkt)
        except DecodeError:
            self.stats.malformed += 1
            return 0
        n = 0
        for seg in segments:
            n += self._write((plain_hdr, seg) if self.hdr_len else (seg,), False, 1) == 1
        return n

    def _refused(self, err: OSError) -> None:
        self.stats.gso_refused += 1
        self._refusals += 1
        if self._refusals >= GSO_REFUSAL_LIMIT and self.gso_writes:
            self.gso_writes = self.coalescing = False
            log.warning("%s: the kernel refused %d GSO writes in a row with EINVAL (%s); writing packets one by "
                        "one on this queue from now on", self.name, self._refusals, err)

    def status(self) -> dict:
        """The counters and modes as a JSON-able dict."""
        return {"vnet_hdr_len": self.hdr_len, "coalescing": self.coalescing, "gso_writes": self.gso_writes,
                **asdict(self.stats)}
