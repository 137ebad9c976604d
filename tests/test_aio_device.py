"""asyncio TUN I/O (tunkit.tun.aio): reads and writes through the device layer, closing wakes waiters."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

import support_device as sd
from tunkit.errors import DeviceClosedError


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def _tun():
    from tunkit.tun.device import open_tun
    from tunkit.netlink.client import Rtnl

    dev = open_tun("tka%d")
    with Rtnl() as rt:
        rt.set_link(dev.name, addr_gen_mode="none")  # no IPv6 link-local: no RS/MLD packets of its own
        rt.set_link(dev.name, up=True)
        rt.add_address(dev.name, "198.18.0.1/24")
    return dev


def test_async_read_and_write_move_packets(netns):
    from tunkit.tun.aio import AsyncDevice

    dev = _tun()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("198.18.0.1", 0))
    rx.settimeout(10)
    port = rx.getsockname()[1]
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def main():
        async with AsyncDevice(dev) as adev:
            reader = asyncio.ensure_future(adev.read())  # waits: nothing queued yet
            await asyncio.sleep(0.01)
            assert not reader.done()
            tx.sendto(b"to the tun", ("198.18.0.2", 4000))  # routed into the device
            pkt = await reader
            assert pkt[9] == 17 and pkt.endswith(b"to the tun") and pkt[16:20] == bytes([198, 18, 0, 2])
            # write: a packet from 198.18.0.2 to the bound socket, delivered by the kernel
            out = sd.ipv4_udp("198.18.0.2", "198.18.0.1", 4000, port, b"from the tun")
            assert await adev.write(out) == len(out)
            assert await adev.write_batch([sd.ipv4_udp("198.18.0.2", "198.18.0.1", 4000, port, b"#%d" % i)
                                           for i in range(3)]) == 3
            for _ in range(5):
                tx.sendto(b"burst", ("198.18.0.2", 4001))
            batch = []
            while len(batch) < 5:
                batch += await adev.read_batch(64)
            assert all(p.endswith(b"burst") for p in batch)
            buf = bytearray(2048)
            tx.sendto(b"into", ("198.18.0.2", 4002))
            n = await adev.readinto(buf)
            assert bytes(buf[:n]).endswith(b"into")
        assert dev.closed

    run(main())
    assert [rx.recvfrom(100)[0] for _ in range(4)] == [b"from the tun", b"#0", b"#1", b"#2"]
    rx.close()
    tx.close()


def test_close_from_another_thread_ends_every_waiting_read(netns):
    from tunkit.tun.aio import AsyncDevice

    dev = _tun()

    async def main():
        loop = asyncio.get_running_loop()
        adev = AsyncDevice(dev)
        q = adev.queues[0]
        readers = [asyncio.ensure_future(adev.read()) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert len(q._readers) == 3 and not any(r.done() for r in readers)
        fd = dev.fileno()
        threading.Thread(target=dev.close).start()  # Queue.close from a thread: the eventfd wakes the loop
        for res in await asyncio.gather(*readers, return_exceptions=True):
            assert isinstance(res, DeviceClosedError), res
        assert fd not in loop._selector.get_map() and not q._readers
        with pytest.raises(DeviceClosedError):
            await adev.read()
        with pytest.raises(DeviceClosedError):
            await adev.write(b"\x45" + b"\0" * 19)

    run(main())


def test_a_cancelled_read_unregisters_and_leaves_other_readers_waiting(netns):
    from tunkit.tun.aio import AsyncDevice

    dev = _tun()
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def main():
        loop = asyncio.get_running_loop()
        async with AsyncDevice(dev) as adev:
            a = asyncio.ensure_future(adev.read())
            b = asyncio.ensure_future(adev.read())
            await asyncio.sleep(0.01)
            a.cancel()
            with pytest.raises(asyncio.CancelledError):
                await a
            assert dev.fileno() in loop._selector.get_map()  # b still waits
            tx.sendto(b"for b", ("198.18.0.2", 4000))
            assert (await b).endswith(b"for b")
            assert dev.fileno() not in loop._selector.get_map()

    run(main())
    tx.close()
