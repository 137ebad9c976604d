"""AsyncRtnl and AsyncMonitor: asyncio counterparts of Rtnl and RtnlMonitor; does I/O.

Every public call of :class:`tunkit.netlink.client.Rtnl` has an awaitable
twin with the same name, arguments, results and errors::

    async with AsyncRtnl() as rt:
        await rt.add_veth("tk0", "tk1")
        links, routes = await asyncio.gather(rt.links(), rt.routes())
        async with rt.monitor(("link",)) as events:
            async for ev in events:
                ...

How it stays one implementation: the async call runs the synchronous
``Rtnl`` method itself (message building, codecs, error texts, caches) on a
private copy whose socket is a *replay* socket.  When the method reaches its
next request, dump or pipeline, the replay socket stops it; the request is
sent on the real socket without blocking and awaited; then the method runs
again from the start with every earlier answer replayed, until it returns.
Only the I/O is new: it sits on :class:`AsyncNetlinkSocket`, which reads the
socket from ``loop.add_reader`` and hands each reply to the request with its
sequence number, so calls from many tasks may be in flight at once.  A copy's
link-name cache changes are merged back when its call completes.

* A cancelled call's request has been sent; its late reply is discarded
  (counted in :attr:`AsyncNetlinkSocket.discarded`) and later calls work.  A
  cancelled dump keeps the socket's dump slot until the kernel's last part
  has been read (the kernel allows one dump per socket at a time), so the
  next dump waits instead of failing with ``EBUSY``.
* At most ``max_in_flight`` single requests plus one pipelined batch are
  unanswered at a time, so their acks always fit the receive buffer.  Should
  the kernel still drop replies (``ENOBUFS``), every waiting call fails with
  that error instead of hanging.
* :meth:`AsyncRtnl.monitor` gives an :class:`AsyncMonitor`: ``async for``
  over the events of :class:`RtnlMonitor` (same groups, same ``ENOBUFS``
  resync), closed by ``async with`` or :meth:`AsyncMonitor.aclose`, which
  also ends an ``async for`` waiting in another task.  Its initial state and
  resync dumps run synchronously on its own socket (milliseconds).

An instance belongs to the event loop of its first call.  ``netns=`` (a
name, path, fd or :class:`tunkit.netns.NetNS`) works as for ``Rtnl``.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import errno
import functools
from typing import Any, Callable

from tunkit._uapi import NlmFlag, NlmsgType
from tunkit.errors import DecodeError, NetlinkError
from tunkit.netlink.client import Rtnl, RtnlMonitor
from tunkit.netlink.message import Message, encode_message, parse_ack, parse_messages
from tunkit.netlink.socket import DUMP_RETRIES, PIPELINE_BYTES, PIPELINE_WINDOW, NetlinkSocket, Reply

__all__ = ["AsyncMonitor", "AsyncNetlinkSocket", "AsyncRtnl"]

_ERROR, _DONE = int(NlmsgType.ERROR), int(NlmsgType.DONE)
_DUMP_INTR = int(NlmFlag.DUMP_INTR)
_DUMP_FLAGS = int(NlmFlag.REQUEST | NlmFlag.DUMP)
MAX_IN_FLIGHT = 128  # single requests awaiting their answer (plus one pipelined batch)
MAX_STEPS = 256  # requests one replayed call may make before it is taken for a runaway
_READS_PER_WAKEUP = 64  # datagrams read per readiness callback before other callbacks run


# ---------------------------------------------------------------------------
# waiters: what the reader hands each reply to (keyed by sequence number)
# ---------------------------------------------------------------------------
class _Waiter:
    __slots__ = ("future", "on_done")

    def __init__(self, future: asyncio.Future, on_done: Callable[[], None]) -> None:
        self.future = future
        self.on_done = on_done  # releases the in-flight slot / dump slot, even if the caller was cancelled

    def finish(self, result=None, error: BaseException | None = None) -> None:
        on_done, self.on_done = self.on_done, None
        if on_done is not None:
            on_done()
        if self.future.done():  # the caller was cancelled: its late answer is dropped here
            return
        if error is not None:
            self.future.set_exception(error)
        else:
            self.future.set_result(result)


class _RequestWaiter(_Waiter):
    __slots__ = ("reply",)

    def __init__(self, future, on_done, reply: Reply) -> None:
        super().__init__(future, on_done)
        self.reply = reply

    def feed(self, m: Message) -> bool:
        if not self.reply.feed(m):
            return False
        if self.reply.error is not None:
            self.finish(error=self.reply.error)
        else:
            self.finish(self.reply.replies)
        return True


class _DumpWaiter(_Waiter):
    """Decodes a dump's parts as they arrive (``decode`` is the synchronous dump's own)."""

    __slots__ = ("decode", "items", "interrupted", "error", "op", "obj", "seq")

    def __init__(self, future, on_done, decode, op: str, obj: str, seq: int) -> None:
        super().__init__(future, on_done)
        self.decode, self.op, self.obj, self.seq = decode, op, obj, seq
        self.items: list = []
        self.interrupted = False
        self.error: BaseException | None = None

    def feed(self, m: Message) -> bool:
        if m.flags & _DUMP_INTR:
            self.interrupted = True
        if m.type == _DONE or m.type == _ERROR:
            ack = parse_ack(m)
            if ack.errno and self.error is None:
                self.error = NetlinkSocket.error(ack, self.op, self.obj, self.seq)
            if self.error is not None:
                self.finish(error=self.error)
            else:
                self.finish((self.items, self.interrupted))
            return True
        if self.error is None:
            try:
                item = self.decode(m.type, m.payload)
            except (DecodeError, ValueError) as e:  # reported at the end: the dump's parts are read to its end
                self.error = e
            else:
                if item is not None:
                    self.items.append(item)
        return False


class _BatchWaiter(_Waiter):
    """The error acks of one pipelined datagram, up to its last request's ack."""

    __slots__ = ("first_seq", "last_seq", "count", "failures")

    def __init__(self, future, on_done, first_seq: int, last_seq: int, count: int) -> None:
        super().__init__(future, on_done)
        self.first_seq, self.last_seq, self.count = first_seq, last_seq, count
        self.failures: list = []

    def feed(self, m: Message) -> bool:
        if m.type != _ERROR:
            return False
        ack = parse_ack(m)
        if ack.errno:
            self.failures.append(((m.seq - self.first_seq) & 0xFFFFFFFF, ack))
        if m.seq == self.last_seq:
            self.finish(self.failures)
            return True
        return False


class AsyncNetlinkSocket:
    """A :class:`NetlinkSocket` driven by an asyncio loop; replies dispatched by sequence number.

    ``request``, ``dump`` and ``pipeline`` take the arguments and give the
    results of the synchronous socket's methods of the same names.
    """

    def __init__(self, sock: NetlinkSocket, *, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._pending: dict[int, _Waiter] = {}
        self._slots = asyncio.Semaphore(max_in_flight)
        self._dump_slot = asyncio.Lock()  # the kernel runs one dump per socket at a time
        self._batch_slot = asyncio.Lock()  # one pipelined datagram in flight
        self._closed = False
        self.discarded = 0  #: answers nobody waited for any more (cancelled calls) or never asked for
        sock.setblocking(False)
        self._fd = sock.fileno()
        self._loop.add_reader(self._fd, self._on_readable)

    # -- reading -------------------------------------------------------------
    def _on_readable(self) -> None:
        pid = self.sock.pid
        for _ in range(_READS_PER_WAKEUP):
            try:
                view = self.sock.recv()
            except BlockingIOError:  # drained
                return
            except OSError as e:  # ENOBUFS: the kernel dropped replies; nobody can tell whose
                self._fail_all(NetlinkError(e.errno or errno.EIO, op="netlink receive",
                                            message="replies were lost; the request may or may not have been applied"))
                return
            try:
                for m in parse_messages(view):
                    if m.pid != pid and m.pid != 0:
                        raise DecodeError(f"netlink reply port id {m.pid} does not match socket {pid}")
                    w = self._pending.get(m.seq)
                    if w is None:
                        self.discarded += 1
                    elif w.feed(m):
                        self._forget(w)
                        if w.future.cancelled():
                            self.discarded += 1
            except DecodeError as e:
                self._fail_all(e)
                return

    def _forget(self, w: _Waiter) -> None:
        if isinstance(w, _BatchWaiter):
            for k in range(w.count):
                self._pending.pop((w.first_seq + k) & 0xFFFFFFFF or 1, None)
        else:
            self._pending.pop(w.seq if isinstance(w, _DumpWaiter) else w.reply.seq, None)

    def _fail_all(self, error: BaseException) -> None:
        waiters = {id(w): w for w in self._pending.values()}
        self._pending.clear()
        for w in waiters.values():
            w.finish(error=error)

    # -- sending -------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise NetlinkError(errno.EBADF, op="netlink", message="the asyncio netlink socket is closed")

    async def request(self, msg_type: int, flags: int, payload: bytes, *, op: str = "", obj: str = "") -> list[Message]:
        self._check_open()
        await self._slots.acquire()
        seq = None
        try:
            self._check_open()
            seq = self.sock.next_seq()
            fut = self._loop.create_future()
            self._pending[seq] = _RequestWaiter(fut, self._slots.release, Reply(seq, flags, op, obj))
            self.sock.send(encode_message(msg_type, flags, seq, self.sock.pid, payload))
        except BaseException:  # not sent: no reply will come to free the slot
            self._pending.pop(seq, None)
            self._slots.release()
            raise
        return await fut  # cancelled: w stays until its reply comes, then releases the slot

    async def dump(self, msg_type: int, payload: bytes, decode, *, op: str = "dump", obj: str = "",
                   retries: int = DUMP_RETRIES) -> list:
        for _attempt in range(retries + 1):
            self._check_open()
            await self._dump_slot.acquire()
            seq = None
            try:
                self._check_open()
                seq = self.sock.next_seq()
                fut = self._loop.create_future()
                self._pending[seq] = _DumpWaiter(fut, self._dump_slot.release, decode, op, obj, seq)
                self.sock.send(encode_message(msg_type, _DUMP_FLAGS, seq, self.sock.pid, payload))
            except BaseException:  # not sent
                self._pending.pop(seq, None)
                self._dump_slot.release()
                raise
            items, interrupted = await fut  # cancelled: the slot is freed at the dump's last part
            if not interrupted:
                return items
        raise NetlinkError(errno.EINTR, op=op, obj=obj, message=f"dump still inconsistent after {retries} retries")

    async def pipeline(self, requests, *, window: int = PIPELINE_WINDOW, max_bytes: int = PIPELINE_BYTES) -> list:
        failures: list = []
        index = 0
        for first_seq, last_seq, count, data in self.sock.batches(requests, window=window, max_bytes=max_bytes):
            self._check_open()
            await self._batch_slot.acquire()
            fut = self._loop.create_future()
            w = _BatchWaiter(fut, self._batch_slot.release, first_seq, last_seq, count)
            try:
                self._check_open()
                for k in range(count):
                    self._pending[(first_seq + k) & 0xFFFFFFFF or 1] = w
                self.sock.send(data)
            except BaseException:  # not sent
                self._forget(w)
                self._batch_slot.release()
                raise
            failures += [(index + k, ack) for k, ack in await fut]
            index += count
        return failures

    def close(self) -> None:
        """Stop reading and close the socket; calls still waiting fail with ``EBADF``."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._fail_all(NetlinkError(errno.EBADF, op="netlink", message="socket closed while waiting"))
        self.sock.close()


# ---------------------------------------------------------------------------
# replaying the synchronous client
# ---------------------------------------------------------------------------
class _Need(BaseException):
    """Raised by the replay socket at a call's next I/O (a BaseException: no ``except Exception`` eats it)."""

    def __init__(self, kind: str, key: tuple, args: tuple, kw: dict) -> None:
        super().__init__(kind)
        self.kind, self.key, self.args, self.kw = kind, key, args, kw


class _ReplaySocket:
    """Answers a call's I/O from ``done`` in order; stops the call at the first new one."""

    def __init__(self, real: NetlinkSocket, done: list) -> None:
        self._real = real
        self._done = done
        self._next = 0

    def __getattr__(self, name: str):
        """Plain attributes of the real socket (pid, its lock...) and ``error``; any other
        method would do I/O behind the event loop's back, so it is refused by name."""
        value = getattr(self._real, name)
        if callable(value) and name != "error" and not hasattr(value, "__enter__"):
            raise NotImplementedError(f"AsyncRtnl cannot replay NetlinkSocket.{name}(); only request, dump and pipeline")
        return value

    def _io(self, kind: str, key: tuple, args: tuple, kw: dict):
        i = self._next
        if i < len(self._done):
            done_key, ok, value = self._done[i]
            if done_key != key:
                raise RuntimeError(f"asyncio replay diverged at {kind} #{i}: the call is not deterministic")
            self._next = i + 1
            if not ok:
                raise value
            return value
        raise _Need(kind, key, args, kw)

    def request(self, msg_type: int, flags: int, payload: bytes, **kw):
        payload = bytes(payload)
        return self._io("request", ("request", int(msg_type), int(flags), payload), (msg_type, flags, payload), kw)

    def dump(self, msg_type: int, payload: bytes, decode, **kw):
        payload = bytes(payload)
        return self._io("dump", ("dump", int(msg_type), payload), (msg_type, payload, decode), kw)

    def pipeline(self, requests, **kw):
        reqs = [(int(t), int(f), bytes(p)) for t, f, p in requests]
        return self._io("pipeline", ("pipeline", len(reqs), hash(tuple(reqs))), (reqs,), kw)


_NOT_ASYNC = frozenset({"close", "monitor"})


class AsyncRtnl:
    """The asyncio twin of :class:`Rtnl` (see the module docstring).  ``async with`` closes it."""

    def __init__(self, *, netns=None, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._rtnl = Rtnl(netns=netns)  # the template: its socket is the one AsyncNetlinkSocket drives
        self._max_in_flight = max_in_flight
        self._asock: AsyncNetlinkSocket | None = None

    @property
    def netns(self):
        return self._rtnl.netns

    @property
    def sock(self) -> AsyncNetlinkSocket:
        """The asyncio socket (made on first use, in the running loop)."""
        if self._asock is None:
            self._asock = AsyncNetlinkSocket(self._rtnl.sock, max_in_flight=self._max_in_flight)
        return self._asock

    def __getattr__(self, name: str):
        attr = getattr(Rtnl, name, None)
        if name.startswith("_") or name in _NOT_ASYNC or not callable(attr):
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

        @functools.wraps(attr)
        async def call(*args, **kw):
            return await self._call(name, args, kw)

        return call

    def __dir__(self) -> list[str]:
        names = {n for n in dir(Rtnl) if not n.startswith("_") and n not in _NOT_ASYNC and callable(getattr(Rtnl, n))}
        return sorted(set(super().__dir__()) | names)

    async def _call(self, name: str, args: tuple, kw: dict) -> Any:
        asock = self.sock
        base, snapshot = self._snapshot()
        done: list = []
        for _step in range(MAX_STEPS):
            clone = self._clone(base, snapshot)  # every run starts from the state the call began with
            clone.sock = _ReplaySocket(self._rtnl.sock, done)
            try:
                result = getattr(clone, name)(*args, **kw)
            except _Need as need:
                try:
                    value = await getattr(asock, need.kind)(*need.args, **need.kw)
                except (OSError, ValueError) as e:  # NetlinkError, DecodeError: replayed to the method
                    done.append((need.key, False, e))
                else:
                    done.append((need.key, True, value))
                continue
            except BaseException:
                self._merge(clone, snapshot)
                raise
            self._merge(clone, snapshot)
            return result
        raise RuntimeError(f"AsyncRtnl.{name}: more than {MAX_STEPS} requests in one call")

    def _snapshot(self) -> tuple[Rtnl, dict]:
        """A shallow copy of the template and copies of its dict caches, as the call begins."""
        base = copy.copy(self._rtnl)
        return base, {k: dict(v) for k, v in vars(base).items() if type(v) is dict}

    @staticmethod
    def _clone(base: Rtnl, snapshot: dict) -> Rtnl:
        clone = copy.copy(base)
        for k, v in snapshot.items():
            setattr(clone, k, dict(v))
        return clone

    def _merge(self, clone: Rtnl, snapshot: dict) -> None:
        """Apply what the call learned or forgot to the shared caches (entries, not whole dicts)."""
        for k, before in snapshot.items():
            after, shared = getattr(clone, k), getattr(self._rtnl, k)
            for key in before.keys() - after.keys():
                shared.pop(key, None)
            for key, v in after.items():
                if key not in before or before[key] != v:
                    shared[key] = v

    # -- monitor and lifetime -------------------------------------------------
    def monitor(self, objects=("link", "addr", "route"), *, rcvbuf: int | None = None,
                initial: bool = True) -> "AsyncMonitor":
        """Events as an async iterator (see :class:`AsyncMonitor`), in this client's namespace."""
        return AsyncMonitor(objects, netns=self.netns, rcvbuf=rcvbuf, initial=initial)

    def close(self) -> None:
        if self._asock is not None:
            self._asock.close()
        else:
            self._rtnl.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncRtnl":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()


class AsyncMonitor:
    """``async for event in monitor``: the events of an :class:`RtnlMonitor`, awaited.

    Made by :meth:`AsyncRtnl.monitor`.  Waits with ``loop.add_reader`` on the
    monitor's socket, then takes what :meth:`RtnlMonitor.events` returns
    (including its ``ENOBUFS`` resync).  :meth:`aclose` (or leaving
    ``async with``) ends the iteration, also in a task waiting for the next
    event, and closes the sockets.
    """

    def __init__(self, objects=("link", "addr", "route"), *, netns=None, rcvbuf: int | None = None,
                 initial: bool = True) -> None:
        self._rtnl = Rtnl(netns=netns)  # a private synchronous client for the initial state and resyncs
        try:
            self._mon = RtnlMonitor(self._rtnl, objects, rcvbuf=rcvbuf, initial=initial)
        except BaseException:
            self._rtnl.close()
            raise
        self._queue: collections.deque = collections.deque()
        self._closed = False
        self._waiter: asyncio.Future | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def monitor(self) -> RtnlMonitor:
        return self._mon

    @property
    def closed(self) -> bool:
        return self._closed

    def __aiter__(self) -> "AsyncMonitor":
        return self

    async def __anext__(self):
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise StopAsyncIteration
            events = self._mon.events(timeout=0)
            if events:
                self._queue.extend(events)
                continue
            await self._readable()

    async def next(self, timeout: float | None = None):
        """The next event, or ``None`` if none came within ``timeout`` seconds (or the monitor closed)."""
        try:
            return await asyncio.wait_for(self.__anext__(), timeout)
        except (asyncio.TimeoutError, StopAsyncIteration):
            return None

    async def _readable(self) -> None:
        if self._waiter is not None:
            raise RuntimeError("AsyncMonitor: another task is already waiting for events")
        loop = self._loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        fd = self._mon.fileno()
        loop.add_reader(fd, lambda: fut.done() or fut.set_result(None))
        try:
            await fut
        finally:
            self._waiter = None
            if not self._closed:  # after close the fd is gone (its number may be someone else's)
                loop.remove_reader(fd)

    def close(self) -> None:
        """Stop: a task waiting in ``async for`` gets ``StopAsyncIteration``; the sockets are closed."""
        if self._closed:
            return
        self._closed = True
        self._queue.clear()
        if self._waiter is not None and self._loop is not None:
            self._loop.remove_reader(self._mon.fileno())
            if not self._waiter.done():
                self._waiter.set_result(None)
        self._mon.close()
        self._rtnl.close()

    async def aclose(self) -> None:
        self.close()

    async def __aenter__(self) -> "AsyncMonitor":
        return self

    async def __aexit__(self, *exc) -> None:
        self.close()
