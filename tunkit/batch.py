"""Offload-aware packet I/O on TUN devices: split super-packets on read, coalesce on write; does I/O.

A thin layer between :mod:`tunkit.device` (which moves bytes) and
:mod:`tunkit.offload` (which does the arithmetic).  It works on any device
opened by :func:`tunkit.device.open_tun`, with or without a vnet header, so a
packet loop can use one API either way:

    from tunkit.batch import OffloadIO
    from tunkit.device import open_tun

    dev = open_tun("tk%d", vnet_hdr=True)       # offloads negotiated by the device layer
    io = OffloadIO(dev)
    packets = io.read_batch(timeout=1.0)         # wire-sized IP packets, super-packets split
    io.write(packets)                            # coalesced into super-packets again

* :meth:`OffloadIO.read` splits one read into the packets the kernel would
  have sent (:func:`tunkit.offload.gso_split`); :meth:`OffloadIO.read_super`
  returns the super-packet and its header for callers that can use it.
  A read whose virtio_net_hdr or headers are malformed is dropped and counted
  in :attr:`OffloadIO.stats` (``dropped``); nothing is raised for it.
* :meth:`OffloadIO.write` runs the packets through a
  :class:`tunkit.offload.Coalescer` and writes each result with
  ``os.writev([virtio_net_hdr, ip+l4 header, payload views...])``, so the
  10-byte header and the headers stay apart from payload bytes (no copies).
* Known kernel regressions have made TUN refuse valid GSO writes with EINVAL.
  When that happens the packets of that write are sent one by one, coalescing
  is switched off for the device (``coalescing`` becomes ``False``), and a
  warning is logged once (logger ``tunkit.batch``).
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass

from tunkit._uapi import VIRTIO_NET_HDR_LEN, TunOffload
from tunkit.errors import DecodeError, DeviceError
from tunkit.offload import DATA_VALID_HDR, ZERO_HDR, Coalescer, VirtioNetHdr, gso_split

__all__ = ["OffloadIO", "OffloadStats"]

log = logging.getLogger("tunkit.batch")

_USO = TunOffload.USO4 | TunOffload.USO6


@dataclass
class OffloadStats:
    """Counters kept by one :class:`OffloadIO` (monotonic; reset by assigning a new instance)."""

    reads: int = 0  # successful reads from the device
    super_packets: int = 0  # reads that carried a GSO super-packet
    packets_read: int = 0  # packets handed to the caller after splitting
    dropped: int = 0  # reads dropped as malformed (DecodeError)
    packets_written: int = 0  # packets given to write() that reached the device
    writes: int = 0  # write system calls
    super_writes: int = 0  # writes that carried a coalesced super-packet
    rejected: int = 0  # single packets the kernel refused with EINVAL (dropped)
    fallbacks: int = 0  # coalesced writes refused with EINVAL and resent one by one


class OffloadIO:
    """Read and write IP packets on ``device``, handling its virtio_net_hdr and offloads.

    ``device`` is a :class:`tunkit.device.Device` (or anything with ``name``,
    ``queues``, ``vnet_hdr_len`` and ``offloads``).  Every method takes
    ``queue``: an index into ``device.queues`` (default 0).

    ``coalesce`` (default: whenever the device has a vnet header) turns
    coalescing on writes on or off; UDP datagrams are coalesced only when the
    device negotiated USO.  ``verify_checksums`` is passed to the coalescer:
    leave it on unless the packets were built by the caller itself.
    """

    def __init__(self, device, *, coalesce: bool | None = None, verify_checksums: bool = True) -> None:
        self.device = device
        self.name = device.name
        self.hdr_len = device.vnet_hdr_len or 0
        if self.hdr_len and self.hdr_len < VIRTIO_NET_HDR_LEN:
            raise ValueError(f"{self.name}: vnet header of {self.hdr_len} bytes is shorter than {VIRTIO_NET_HDR_LEN}")
        self.uso = bool((device.offloads or 0) & _USO)
        self.coalescing = bool(self.hdr_len) if coalesce is None else (coalesce and bool(self.hdr_len))
        self.stats = OffloadStats()
        self._coalescer = Coalescer(uso=self.uso, verify_checksums=verify_checksums)
        pad = bytes(self.hdr_len - VIRTIO_NET_HDR_LEN) if self.hdr_len else b""
        self._pad = pad  # a 12-byte header (TUNSETVNETHDRSZ 12) ends in num_buffers, written as 0
        self._zero = ZERO_HDR.encode() + pad
        self._valid = DATA_VALID_HDR.encode() + pad

    def __repr__(self) -> str:
        return f"<OffloadIO {self.name} vnet_hdr_len={self.hdr_len} coalescing={self.coalescing} uso={self.uso}>"

    def _queue(self, queue: int):
        return self.device.queues[queue]

    # -- reading --------------------------------------------------------------
    def read_super(self, timeout: float | None = None, *, queue: int = 0):
        """One read, unsplit: ``(VirtioNetHdr, packet view)``, or ``None`` on timeout.

        Without a vnet header the header is :data:`~tunkit.offload.ZERO_HDR`.
        Raises :class:`DecodeError` for a malformed virtio_net_hdr (counted in
        ``stats.dropped``); the packet itself is not checked here.
        """
        raw = self._queue(queue).read(timeout)
        if raw is None:
            return None
        self.stats.reads += 1
        if not self.hdr_len:
            return ZERO_HDR, memoryview(raw)
        try:
            hdr = VirtioNetHdr.decode(raw)
        except DecodeError:
            self.stats.dropped += 1
            raise
        return hdr, memoryview(raw)[self.hdr_len :]

    def _split(self, raw) -> list:
        if not self.hdr_len:
            return [raw]
        try:
            hdr = VirtioNetHdr.decode(raw)
            pkts = gso_split(hdr, memoryview(raw)[self.hdr_len :])
        except DecodeError as e:
            self.stats.dropped += 1
            log.debug("%s: dropped a malformed read: %s", self.name, e)
            return []
        if hdr.gso_type:
            self.stats.super_packets += 1
        return pkts

    def read(self, timeout: float | None = None, *, queue: int = 0) -> list | None:
        """One read, split into wire packets (bytes-like); ``None`` on timeout.

        An empty list means the read was malformed and dropped (see ``stats``).
        """
        raw = self._queue(queue).read(timeout)
        if raw is None:
            return None
        self.stats.reads += 1
        pkts = self._split(raw)
        self.stats.packets_read += len(pkts)
        return pkts

    def read_batch(self, max_reads: int = 64, timeout: float | None = None, *, queue: int = 0) -> list:
        """Wait up to ``timeout`` for one read, then take what is queued (at most ``max_reads`` reads).

        Returns the wire packets of all those reads, in order (empty on timeout).
        """
        if max_reads < 1:
            raise ValueError(f"max_reads must be at least 1, not {max_reads}")
        raws = self._queue(queue).read_batch(max_reads, timeout)  # one entry into the queue for the batch
        out: list = []
        for raw in raws:
            out += self._split(raw)
        self.stats.reads += len(raws)
        self.stats.packets_read += len(out)
        return out

    # -- writing --------------------------------------------------------------
    def write(self, packets, *, queue: int = 0) -> int:
        """Write IP packets (bytes-like, one each), coalescing them when possible.

        Returns the number of write system calls made.  Single packets the
        kernel refuses with EINVAL are dropped and counted (``stats.rejected``);
        other errors raise :class:`~tunkit.errors.DeviceError`.
        """
        q = self._queue(queue)
        if not self.hdr_len:
            n = 0
            for p in packets:
                n += self._write_one(q.write, p)
            return n
        if not self.coalescing:
            n = 0
            zero = self._zero
            for p in packets:
                n += self._write_one(q.writev, (zero, p))
            return n
        co = self._coalescer
        for p in packets:
            co.add(p)
        stats = self.stats
        n = 0
        for hdr, bufs in co.flush():
            if not hdr.gso_type:
                n += self._write_one(q.writev, (self._valid if hdr.flags else self._zero, *bufs))
                continue
            if not self.coalescing:  # a fallback happened earlier in this batch
                n += self._write_plain(q, hdr, bufs)
                continue
            try:
                q.writev((hdr.encode() + self._pad, *bufs))
            except DeviceError as e:
                if e.errno != errno.EINVAL:
                    raise
                self._fall_back(e)
                n += self._write_plain(q, hdr, bufs)
                continue
            n += 1
            stats.writes += 1
            stats.super_writes += 1
            stats.packets_written += len(bufs) - 1
        return n

    def _write_one(self, op, arg) -> int:
        """Write one packet; EINVAL (the kernel refused it) drops it.  Returns 1 if written."""
        try:
            op(arg)
        except DeviceError as e:
            if e.errno != errno.EINVAL:
                raise
            self.stats.rejected += 1
            log.debug("%s: kernel refused a packet: %s", self.name, e)
            return 0
        self.stats.writes += 1
        self.stats.packets_written += 1
        return 1

    def _write_plain(self, q, hdr: VirtioNetHdr, bufs) -> int:
        """Send a coalesced result's packets one by one (they verified when coalesced: DATA_VALID)."""
        n = 0
        for pkt in gso_split(hdr, b"".join(bufs)):
            n += self._write_one(q.writev, (self._valid, pkt))
        return n

    def _fall_back(self, err: DeviceError) -> None:
        self.stats.fallbacks += 1
        if self.coalescing:
            self.coalescing = False
            log.warning(
                "%s: the kernel refused a coalesced (GSO) write with EINVAL (%s); writing packets one by one "
                "on this device from now on", self.name, err,
            )
