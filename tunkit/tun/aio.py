"""AsyncQueue and AsyncDevice: asyncio reads and writes of TUN/TAP packets; does I/O.

The packet I/O is :class:`tunkit.tun.device.Queue`'s own: an async read calls
``Queue.read(timeout=0)`` (the non-blocking read), and only when nothing is
queued waits for the descriptor with ``loop.add_reader``; an async write
calls ``Queue.write`` once the descriptor polls writable (``loop.add_writer``
otherwise).  Headers (vnet_hdr, tun_pi) are as the device was opened::

    dev = AsyncDevice(open_tun("tk%d"))
    pkt = await dev.read()                     # bytes; waits without blocking the loop
    await dev.write(pkt)
    pkts = await dev.queues[1].read_batch(64)  # one AsyncQueue per queue

While waiting, the queue's descriptors are held open (``Queue.held``), and
its close eventfd is watched too: closing the device or queue, from any task
or thread, ends every waiting call with
:class:`~tunkit.errors.DeviceClosedError`.  Any number of tasks may wait on
one queue; use one :class:`AsyncQueue` per queue (:class:`AsyncDevice`
makes them), because the event loop keeps one callback per descriptor.
"""

from __future__ import annotations

import asyncio
import select
from collections.abc import Iterable

from tunkit.tun.device import Device, Queue
from tunkit.errors import DeviceClosedError

__all__ = ["AsyncDevice", "AsyncQueue"]


class AsyncQueue:
    """Awaitable reads and writes on one :class:`Queue` (see the module docstring)."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self._readers: list[asyncio.Future] = []
        self._writers: list[asyncio.Future] = []
        self._poll: select.poll | None = None
        self._poll_fd = -1

    @property
    def name(self) -> str:
        return self.queue.name

    async def read(self) -> bytes:
        """The next packet (with its vnet header / tun_pi if enabled)."""
        while True:
            pkt = self.queue.read(timeout=0)
            if pkt is not None:
                return pkt
            await self._wait(False)

    async def readinto(self, buf) -> int:
        """Read the next packet into ``buf``; its length (longer packets are truncated)."""
        while True:
            n = self.queue.readinto(buf, timeout=0)
            if n is not None:
                return n
            await self._wait(False)

    async def read_batch(self, max_packets: int = 64) -> list[bytes]:
        """Wait for one packet, then take what is queued, up to ``max_packets`` (never empty)."""
        while True:
            pkts = self.queue.read_batch(max_packets, timeout=0)
            if pkts:
                return pkts
            await self._wait(False)

    async def write(self, packet) -> int:
        """Write one packet; returns the bytes written."""
        await self._writable()
        return self.queue.write(packet)

    async def writev(self, buffers) -> int:
        await self._writable()
        return self.queue.writev(buffers)

    async def write_batch(self, packets: Iterable) -> int:
        """Write each packet in turn, waiting for room when the queue has none; how many were written."""
        n = 0
        for pkt in packets:
            await self._writable()
            self.queue.write(pkt)
            n += 1
        return n

    # -- waiting ---------------------------------------------------------------
    async def _writable(self) -> None:
        """Return once a write will not block (TUN descriptors almost always poll writable)."""
        while True:
            fd = self.queue.fileno()  # raises DeviceClosedError once closed
            poll = self._poll
            if poll is None or self._poll_fd != fd:
                poll = self._poll = select.poll()
                poll.register(fd, select.POLLOUT)
                self._poll_fd = fd
            if poll.poll(0):  # writable, or an error the write itself will report
                return
            await self._wait(True)

    def _wake(self, waiters: list) -> None:
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)
        waiters.clear()

    def _wake_all(self) -> None:
        self._wake(self._readers)
        self._wake(self._writers)

    async def _wait(self, write: bool) -> None:
        loop = asyncio.get_running_loop()
        waiters = self._writers if write else self._readers
        with self.queue.held() as (fd, wake):  # the fds stay valid (not reused) until we unregister
            fut = loop.create_future()
            if not self._readers and not self._writers:
                loop.add_reader(wake, self._wake_all)  # readable once the queue is closed
            if not waiters:
                (loop.add_writer if write else loop.add_reader)(fd, self._wake, waiters)
            waiters.append(fut)
            try:
                await fut
            finally:
                if fut in waiters:
                    waiters.remove(fut)
                if not waiters:
                    (loop.remove_writer if write else loop.remove_reader)(fd)
                if not self._readers and not self._writers:
                    loop.remove_reader(wake)
        if self.queue.closed:
            raise DeviceClosedError(self.queue.name, "device closed while waiting")


class AsyncDevice:
    """A :class:`Device` with an :class:`AsyncQueue` per queue; reads/writes use the first.

    Closing (``close()``, ``async with``) closes the device.
    """

    def __init__(self, device: Device) -> None:
        self.device = device
        self.queues = [AsyncQueue(q) for q in device.queues]
        if not self.queues:
            raise DeviceClosedError(device.name, "device has no open queue")

    @property
    def name(self) -> str:
        return self.device.name

    async def read(self) -> bytes:
        return await self.queues[0].read()

    async def readinto(self, buf) -> int:
        return await self.queues[0].readinto(buf)

    async def read_batch(self, max_packets: int = 64) -> list[bytes]:
        return await self.queues[0].read_batch(max_packets)

    async def write(self, packet) -> int:
        return await self.queues[0].write(packet)

    async def writev(self, buffers) -> int:
        return await self.queues[0].writev(buffers)

    async def write_batch(self, packets: Iterable) -> int:
        return await self.queues[0].write_batch(packets)

    def close(self) -> None:
        self.device.close()

    async def __aenter__(self) -> "AsyncDevice":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
