"""asyncio rtnetlink (tunkit.netlink.aio): dispatch by sequence number, cancellation, monitor closing.

The first part drives AsyncNetlinkSocket against a scripted peer on a socketpair
(no privileges: replies delivered out of order, lost, or never); the second runs
AsyncRtnl against the kernel in a fresh namespace and checks it against ip -j and
against the synchronous Rtnl (the same codec).
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import struct

import pytest

import support
from support_netlink import ack, done, reply
from tunkit._uapi import RTM, NlmFlag
from tunkit.errors import NetlinkError
from tunkit.netlink.message import Message, parse_messages
from tunkit.netlink.socket import NetlinkSocket

PID = 4242


class Peer:
    """The 'kernel' end of a SOCK_SEQPACKET pair: reads requests, answers when and how the test says."""

    def __init__(self) -> None:
        self.a, self.b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.b.setblocking(False)
        s = object.__new__(NetlinkSocket)
        s._sock, s.pid, s._seq = self.a, PID, 0
        s._buf, s._scratch = bytearray(64 * 1024), bytearray(16)
        self.nl = s

    def requests(self) -> list[Message]:
        out = []
        while True:
            try:
                data = self.b.recv(1 << 20)
            except BlockingIOError:
                return out
            out += [Message(m.type, m.flags, m.seq, m.pid, memoryview(m.payload.tobytes())) for m in parse_messages(data)]

    def answer(self, *datagrams: bytes) -> None:
        for d in datagrams:
            self.b.send(d)

    def close(self) -> None:
        self.a.close()
        self.b.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _until(cond, what: str) -> None:
    for _ in range(10_000):
        if cond():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def test_replies_out_of_order_reach_their_own_requests():
    from tunkit.netlink.aio import AsyncNetlinkSocket

    async def main():
        peer = Peer()
        asock = AsyncNetlinkSocket(peer.nl)
        tasks = [asyncio.ensure_future(asock.request(RTM.GETLINK, int(NlmFlag.REQUEST), struct.pack("=I", i),
                                                     op="link show", obj=f"#{i}")) for i in range(20)]
        await _until(lambda: len(asock._pending) == 20, "20 requests sent")
        reqs = peer.requests()
        assert len(reqs) == 20 and len({r.seq for r in reqs}) == 20
        for r in reversed(reqs):  # answered last first, each reply echoing its request's payload
            if r.payload.tobytes() == struct.pack("=I", 7):
                peer.answer(ack(r, errno.ENODEV, "no such device"))
            else:
                peer.answer(reply(r, RTM.NEWLINK, b"reply" + r.payload.tobytes()))
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for i, res in enumerate(results):
            if i == 7:
                assert isinstance(res, NetlinkError) and res.errno == errno.ENODEV
                assert "link show #7" in str(res) and "no such device" in str(res)
            else:
                assert [m.payload.tobytes() for m in res] == [b"reply" + struct.pack("=I", i)]
        assert not asock._pending and asock.discarded == 0
        asock.close()
        peer.close()

    run(main())


def test_cancelled_request_late_reply_is_discarded_and_later_requests_work():
    from tunkit.netlink.aio import AsyncNetlinkSocket

    async def main():
        peer = Peer()
        asock = AsyncNetlinkSocket(peer.nl)
        t = asyncio.ensure_future(asock.request(RTM.GETLINK, int(NlmFlag.REQUEST | NlmFlag.ACK), b"old"))
        await _until(lambda: asock._pending, "request sent")
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        (old,) = peer.requests()
        t2 = asyncio.ensure_future(asock.request(RTM.GETLINK, int(NlmFlag.REQUEST | NlmFlag.ACK), b"new"))
        await _until(lambda: len(asock._pending) == 2, "second request sent")
        (new,) = peer.requests()
        peer.answer(reply(old, RTM.NEWLINK, b"stale"), ack(old), reply(new, RTM.NEWLINK, b"fresh"), ack(new))
        assert [m.payload.tobytes() for m in await t2] == [b"fresh"]
        assert asock.discarded == 1 and not asock._pending
        # the cancelled request's in-flight slot came back with its late reply
        assert asock._slots._value == 128
        asock.close()
        peer.close()

    run(main())


def test_lost_replies_fail_every_waiter_instead_of_hanging():
    from tunkit.netlink.aio import AsyncNetlinkSocket

    async def main():
        peer = Peer()
        asock = AsyncNetlinkSocket(peer.nl)
        tasks = [asyncio.ensure_future(asock.request(RTM.GETLINK, int(NlmFlag.REQUEST | NlmFlag.ACK), b"x"))
                 for _ in range(3)]
        await _until(lambda: len(asock._pending) == 3, "requests sent")
        real_recv = peer.nl.recv

        def enobufs():
            peer.nl.recv = real_recv
            raise OSError(errno.ENOBUFS, "No buffer space available")

        peer.nl.recv = enobufs
        peer.answer(b"wake")  # makes the socket readable; the receive then reports the overflow
        for res in await asyncio.gather(*tasks, return_exceptions=True):
            assert isinstance(res, NetlinkError) and res.errno == errno.ENOBUFS
        peer.requests()
        t = asyncio.ensure_future(asock.request(RTM.GETLINK, int(NlmFlag.REQUEST | NlmFlag.ACK), b"y"))
        await _until(lambda: asock._pending, "request sent")
        (r,) = peer.requests()
        peer.answer(ack(r))
        assert await t == []
        asock.close()
        peer.close()

    run(main())


def test_pipeline_batches_and_a_dump_interleave():
    from tunkit.netlink.aio import AsyncNetlinkSocket

    async def main():
        peer = Peer()
        asock = AsyncNetlinkSocket(peer.nl)
        reqs = [(int(RTM.NEWROUTE), int(NlmFlag.REQUEST | NlmFlag.CREATE), struct.pack("=I", i)) for i in range(300)]
        bulk = asyncio.ensure_future(asock.pipeline(reqs, window=128))
        dump = asyncio.ensure_future(asock.dump(RTM.GETLINK, b"", lambda t, p: p.tobytes()))
        answered = 0
        while not bulk.done():
            await asyncio.sleep(0)
            for r in peer.requests():
                if r.flags & NlmFlag.DUMP:
                    peer.answer(reply(r, RTM.NEWLINK, b"a", NlmFlag.MULTI) + reply(r, RTM.NEWLINK, b"b", NlmFlag.MULTI))
                    peer.answer(done(r))
                    continue
                i = struct.unpack("=I", r.payload)[0]
                answered += 1
                if i in (5, 200):
                    peer.answer(ack(r, errno.EEXIST))
                elif r.flags & NlmFlag.ACK:  # only each datagram's last request asks
                    peer.answer(ack(r))
        failures = await bulk
        assert [(i, a.errno) for i, a in failures] == [(5, errno.EEXIST), (200, errno.EEXIST)]
        assert answered == 300
        assert await dump == [b"a", b"b"]
        asock.close()
        peer.close()

    run(main())


def test_close_fails_waiting_calls():
    from tunkit.netlink.aio import AsyncNetlinkSocket

    async def main():
        peer = Peer()
        asock = AsyncNetlinkSocket(peer.nl)
        t = asyncio.ensure_future(asock.request(RTM.GETLINK, int(NlmFlag.REQUEST | NlmFlag.ACK), b"x"))
        await _until(lambda: asock._pending, "request sent")
        asock.close()
        with pytest.raises(NetlinkError) as e:
            await t
        assert e.value.errno == errno.EBADF
        with pytest.raises(NetlinkError):
            await asock.request(RTM.GETLINK, int(NlmFlag.REQUEST), b"")
        peer.b.close()

    run(main())


# ---------------------------------------------------------------------------
# against the kernel
# ---------------------------------------------------------------------------
def _veth(rt_sync) -> None:
    rt_sync.add_veth("tka0", "tka1")
    rt_sync.set_link("tka0", up=True)
    rt_sync.set_link("tka1", up=True)


def test_concurrent_calls_from_many_tasks_match_ip_and_the_sync_client(netns):
    from tunkit.netlink.aio import AsyncRtnl
    from tunkit.netlink.client import Rtnl

    with Rtnl() as sync:
        _veth(sync)

    async def main():
        async with AsyncRtnl() as rt:
            nets = [f"198.18.{i}.0/24" for i in range(64)]
            adds = [rt.add_route(n, dev="tka0", metric=i % 3 + 1) for i, n in enumerate(nets)]
            adds.append(rt.add_route(nets[3], dev="tka0", metric=1))  # a duplicate of the fourth
            results = await asyncio.gather(*adds, rt.links(), rt.addresses(), rt.set_link("tka1", mtu=1300),
                                           return_exceptions=True)
            errs = [r for r in results[:65] if isinstance(r, BaseException)]
            assert len(errs) == 1 and isinstance(errs[0], NetlinkError) and errs[0].errno == errno.EEXIST
            assert "route add 198.18.3.0/24 dev tka0 metric 1" in str(errs[0])
            assert {l.ifname for l in results[65]} >= {"lo", "tka0", "tka1"}
            routes, links, one = await asyncio.gather(rt.routes(table=254), rt.links(), rt.link("tka1"))
            assert one.mtu == 1300
            return routes, links

    routes, links = run(main())
    shown = {(r["dst"], r.get("metric")) for r in support.ip_json("route", "show", "dev", "tka0")}
    assert {(str(r.dst), r.priority) for r in routes if r.oif and r.dst is not None and r.dst.prefixlen == 24} == shown
    assert len(shown) == 64
    with Rtnl() as sync:  # the same codec: equal objects (stats aside)
        assert sorted(map(str, (r.dst for r in sync.routes(table=254)))) == sorted(map(str, (r.dst for r in routes)))
        by_index = {l.index: l for l in sync.links()}
        for l in links:
            assert l.ifname == by_index[l.index].ifname and l.mtu == by_index[l.index].mtu


def test_cancelled_dump_and_pipeline_leave_the_socket_usable(netns):
    from tunkit.netlink.aio import AsyncRtnl
    from tunkit.netlink.client import Rtnl

    with Rtnl() as sync:
        _veth(sync)
        base = int(ipaddress.IPv4Address("198.18.0.0"))
        msgs = [sync.route_message(ipaddress.IPv4Network((base + 4 * i, 30)), dev="tka0") for i in range(3000)]
        assert not sync.add_routes(msgs)

    async def main():
        async with AsyncRtnl() as rt:
            dump = asyncio.ensure_future(rt.routes(table=254))
            await _until(lambda: rt.sock._pending, "dump started")
            dump.cancel()
            more = [await rt.route_message(f"198.19.{i}.0/24", dev="tka0") for i in range(200)]
            bulk = asyncio.ensure_future(rt.add_routes(more * 3))  # 600 requests, 5 datagrams
            await _until(lambda: rt.sock._batch_slot.locked(), "first batch sent")
            bulk.cancel()
            for t in (dump, bulk):
                with pytest.raises(asyncio.CancelledError):
                    await t
            routes = await rt.routes(table=254)  # waits for the cancelled dump's end, no EBUSY
            assert rt.sock.discarded >= 1
            link = await rt.link("tka0")
            assert not rt.sock._pending
            return routes, link

    routes, link = run(main())
    assert link.ifname == "tka0"
    dsts = {str(r.dst) for r in routes if r.oif == link.index and r.dst is not None and r.dst.version == 4}
    assert len([d for d in dsts if d.startswith("198.18.")]) == 3000
    assert len([d for d in dsts if d.startswith("198.19.")]) <= 200  # the first batch (128), maybe more
    assert len(support.ip_json("route", "show", "dev", "tka0")) == len(dsts)


def test_async_errors_read_like_the_sync_ones(netns):
    from tunkit.netlink.aio import AsyncRtnl
    from tunkit.netlink.client import Rtnl

    with Rtnl() as sync:
        _veth(sync)
        sync.add_route("198.51.100.0/24", dev="tka0")
        with pytest.raises(NetlinkError) as want:
            sync.add_route("198.51.100.0/24", dev="tka0")
        with pytest.raises(NetlinkError) as want_dev:
            sync.set_link("nosuch", up=True)

    async def main():
        async with AsyncRtnl() as rt:
            with pytest.raises(NetlinkError) as got:
                await rt.add_route("198.51.100.0/24", dev="tka0")
            with pytest.raises(NetlinkError) as got_dev:
                await rt.set_link("nosuch", up=True)
            with pytest.raises(ValueError):
                await rt.add_route("198.51.100.1/24", dev="tka0")  # host bits set: refused before any I/O
            return got.value, got_dev.value

    got, got_dev = run(main())
    assert (str(got), got.errno) == (str(want.value), want.value.errno)
    assert (str(got_dev), got_dev.errno) == (str(want_dev.value), want_dev.value.errno)


def test_monitor_iterator_yields_events_and_closes_cleanly(netns):
    from tunkit.netlink.aio import AsyncRtnl
    from tunkit.netlink.client import Rtnl

    with Rtnl() as sync:
        _veth(sync)

    async def main():
        loop = asyncio.get_running_loop()
        async with AsyncRtnl() as rt:
            mon = rt.monitor(("link", "addr"))
            seen: list = []

            async def consume():
                async for ev in mon:
                    seen.append(ev)
                return "ended"

            consumer = asyncio.ensure_future(consume())
            await rt.set_link("tka1", mtu=1280)
            await rt.add_address("tka0", "192.0.2.1/24")
            await _until(lambda: any(getattr(e, "ifname", None) == "tka1" and "mtu" in e.changed for e in seen)
                         and any(type(e).__name__ == "AddressEvent" for e in seen), "events seen")
            fd = mon.monitor.fileno()
            await mon.aclose()  # ends the iteration waiting in the other task
            assert await asyncio.wait_for(consumer, 10) == "ended"
            assert mon.closed and fd not in loop._selector.get_map()
            with pytest.raises(StopAsyncIteration):
                await mon.__anext__()
            # a monitor in a cancelled task is closed by async with, leaving no reader behind
            async with rt.monitor(("link",)) as mon2:
                t = asyncio.ensure_future(mon2.__anext__())
                await asyncio.sleep(0.01)
                t.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await t
                fd2 = mon2.monitor.fileno()
            assert fd2 not in loop._selector.get_map()
            assert await mon2.next(timeout=0.01) is None

    run(main())


@pytest.mark.privileged
def test_rtnl_in_another_namespace_from_asyncio():
    """AsyncRtnl(netns=...) (and its monitor) work in a namespace the loop thread never enters."""
    from tunkit.netlink.aio import AsyncRtnl
    from tunkit.netns import NetNS

    start = support.thread_netns_inode()
    with NetNS("aio") as ns:

        async def main():
            async with AsyncRtnl(netns=ns) as rt:
                await rt.add_veth("tkq0", "tkq1")
                async with rt.monitor(("link",)) as mon:
                    await rt.set_link("tkq0", up=True)
                    ev = await mon.next(timeout=10)
                    assert ev is not None and ev.ifname in ("tkq0", "tkq1")
                return sorted(l.ifname for l in await rt.links())

        assert run(main()) == ["lo", "tkq0", "tkq1"]
        assert {l["ifname"] for l in support.ip_json("link", ns=ns)} == {"lo", "tkq0", "tkq1"}
    assert support.thread_netns_inode() == start


def test_async_rtnl_mirrors_every_public_rtnl_call():
    from tunkit.netlink.aio import AsyncRtnl
    from tunkit.netlink.client import Rtnl

    rt = AsyncRtnl()  # a plain netlink socket: no privileges needed to open one
    try:
        public = {n for n in dir(Rtnl) if not n.startswith("_") and callable(getattr(Rtnl, n))}
        assert public - {"close", "monitor"} <= set(dir(rt))
        for name in public - {"close", "monitor"}:
            assert asyncio.iscoroutinefunction(getattr(rt, name)), name
            assert getattr(rt, name).__doc__ == getattr(Rtnl, name).__doc__
        with pytest.raises(AttributeError):
            rt.no_such_call
        with pytest.raises(AttributeError):
            rt._route  # private helpers are not exposed
    finally:
        rt.close()


def test_replay_socket_refuses_raw_io():
    from tunkit.netlink.aio import _ReplaySocket

    peer = Peer()
    replay = _ReplaySocket(peer.nl, [])
    assert replay.pid == PID
    for name in ("send", "recv", "setblocking"):
        with pytest.raises(NotImplementedError, match=name):
            getattr(replay, name)
    peer.close()
