"""NetlinkSocket: a raw AF_NETLINK socket with requests, acks, dumps and pipelining; does I/O.

The socket is opened in the calling thread's network namespace and stays
there whatever thread uses it later.  On open it turns on the kernel's
extended acks (``NETLINK_EXT_ACK``: error text and offset), strict request
checking (``NETLINK_GET_STRICT_CHK``: dump filters are honoured, bad headers
rejected) and capped acks (``NETLINK_CAP_ACK``: acks do not echo the
request), each where the kernel supports it.

* :meth:`NetlinkSocket.request` sends one message and waits for its ack or
  reply; an error ack raises :class:`tunkit.errors.NetlinkError`.
* :meth:`NetlinkSocket.dump` runs a dump, decoding each part while its
  buffer is valid (with the cyclic GC paused), and restarts it (bounded)
  when the kernel flags ``NLM_F_DUMP_INTR``.
* :meth:`NetlinkSocket.pipeline` sends many requests packed into few
  datagrams, collects the acks in bulk and reports each failure against
  the request that caused it.

Every reply is checked against this socket's port id and matched to its
request by sequence number, as :func:`tunkit.netlink.message.validate` does;
replies to older requests (e.g. one abandoned after an exception) are skipped.

Thread safety: :meth:`~NetlinkSocket.request`, :meth:`~NetlinkSocket.dump`
and :meth:`~NetlinkSocket.pipeline` each hold the socket's lock for their
whole exchange (send, then every reply up to the ack or DONE), so threads
sharing one socket take turns and never read each other's replies or
buffer.  The raw :meth:`~NetlinkSocket.send`/:meth:`~NetlinkSocket.recv`
are for a single reader (a monitor socket).
Set ``NLDEBUG=1`` in the environment to trace messages on stderr.
"""

from __future__ import annotations

import errno
import gc
import os
import _socket  # the C module: socket.py (with selectors and its enums) costs ~2 ms at start-up
import struct
import sys
from _thread import RLock  # threading's RLock itself; threading.py is start-up cost `link show` need not pay
from typing import Callable, Iterable, Iterator, TypeVar

from tunkit._uapi import (
    NETLINK_ADD_MEMBERSHIP,
    NETLINK_CAP_ACK,
    NETLINK_DROP_MEMBERSHIP,
    NETLINK_EXT_ACK,
    NETLINK_GET_STRICT_CHK,
    NETLINK_ROUTE,
    SO_RCVBUFFORCE,
    SOL_NETLINK,
    NlmFlag,
    NlmsgType,
)
from tunkit.errors import DecodeError, NetlinkError
from tunkit.netlink.message import HEADER, Ack, Message, encode_message, parse_ack, parse_messages

__all__ = ["Closing", "NetlinkSocket", "Reply"]

T = TypeVar("T")

_DEBUG = os.environ.get("NLDEBUG", "") not in ("", "0")
_ERROR, _DONE = int(NlmsgType.ERROR), int(NlmsgType.DONE)
_MULTI, _DUMP_INTR, _ACK = int(NlmFlag.MULTI), int(NlmFlag.DUMP_INTR), int(NlmFlag.ACK)
# nlmsghdr followed by nlmsgerr.error: the part of an ack the bulk path needs
_ACK_HEAD = struct.Struct("=IHHIIi")
_ACK_FULL = 16 + 20  # nlmsghdr + struct nlmsgerr with the echoed header: the least parse_ack accepts

DEFAULT_RCVBUF = 1 << 20  # room for a pipelined window of acks plus a dump part
DUMP_RETRIES = 5  # restarts of a dump the kernel flagged NLM_F_DUMP_INTR
PIPELINE_WINDOW = 128  # requests per datagram; even if all fail, their error acks fit a 1 MiB buffer
PIPELINE_BYTES = 60 * 1024  # bytes per sendmsg (one datagram)


def _trace(direction: str, data) -> None:
    try:
        for m in parse_messages(data):
            print(f"nl {direction} type={m.type} flags={m.flags:#x} seq={m.seq} pid={m.pid} len={len(m.payload)}", file=sys.stderr)
    except DecodeError as e:
        print(f"nl {direction} undecodable: {e}", file=sys.stderr)


class Reply:
    """What one request waits for, fed message by message (sans-IO; shared with the asyncio client).

    :meth:`feed` takes the replies carrying the request's sequence number and
    returns True once the request is answered: by its ack (``NLM_F_ACK``), the
    end of a multipart reply, or else its first non-multipart reply.
    :meth:`result` then returns the reply messages (payloads copied) or raises
    the :class:`NetlinkError` of an error ack.
    """

    __slots__ = ("seq", "flags", "op", "obj", "replies", "error")

    def __init__(self, seq: int, flags: int, op: str = "", obj: str = "") -> None:
        self.seq, self.flags, self.op, self.obj = seq, flags, op, obj
        self.replies: list[Message] = []
        self.error: NetlinkError | None = None

    def feed(self, m: Message) -> bool:
        if m.type == _ERROR or m.type == _DONE:
            ack = parse_ack(m)
            if ack.errno:
                self.error = NetlinkSocket.error(ack, self.op, self.obj, self.seq)
            return True
        self.replies.append(Message(m.type, m.flags, m.seq, m.pid, memoryview(m.payload.tobytes())))
        return not self.flags & _ACK and not m.flags & _MULTI

    def result(self) -> list[Message]:
        if self.error is not None:
            raise self.error
        return self.replies


class Closing:
    """``with obj:`` closes ``obj`` at the end (for classes with a ``close()``)."""

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NetlinkSocket(Closing):
    """A netlink socket bound to a kernel-assigned port id.

    Parameters: ``protocol`` (``NETLINK_ROUTE``), ``groups`` (multicast
    group numbers to join, e.g. ``RtnlGroup.LINK``), ``rcvbuf`` (bytes;
    ``SO_RCVBUFFORCE`` is tried first, needing CAP_NET_ADMIN), ``timeout``
    (seconds for blocking receives; ``None`` waits: the kernel answers
    requests synchronously, so a reply is always already queued).
    """

    def __init__(
        self,
        protocol: int = NETLINK_ROUTE,
        *,
        groups: Iterable[int] = (),
        rcvbuf: int | None = DEFAULT_RCVBUF,
        timeout: float | None = None,
    ) -> None:
        self._sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, protocol)
        try:
            for opt in (NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK, NETLINK_CAP_ACK):
                try:
                    self._sock.setsockopt(SOL_NETLINK, opt, 1)
                except OSError as e:  # ENOPROTOOPT: an older kernel without this option; run without it
                    if e.errno != errno.ENOPROTOOPT:
                        raise
            if rcvbuf:
                self.set_rcvbuf(rcvbuf)
            self._sock.bind((0, 0))
            self.pid: int = self._sock.getsockname()[0]
            for g in groups:
                self.join(g)
            self._sock.settimeout(timeout)
        except BaseException:
            self._sock.close()
            raise
        self._seq = 0
        self._buf = bytearray(64 * 1024)
        self._scratch = bytearray(16)
        self._lock = RLock()  # one request/response exchange at a time (see the module docstring)

    # -- plumbing -----------------------------------------------------------
    def fileno(self) -> int:
        return self._sock.fileno()

    def close(self) -> None:
        self._sock.close()

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def settimeout(self, timeout: float | None) -> None:
        self._sock.settimeout(timeout)

    def set_rcvbuf(self, size: int) -> None:
        """Set the receive buffer, beyond rmem_max if privileged (SO_RCVBUFFORCE)."""
        try:
            self._sock.setsockopt(_socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
        except PermissionError:  # not CAP_NET_ADMIN: the kernel caps SO_RCVBUF at rmem_max instead
            self._sock.setsockopt(_socket.SOL_SOCKET, _socket.SO_RCVBUF, size)

    def join(self, group: int) -> None:
        """Join multicast group ``group`` (an RTNLGRP_* number)."""
        self._sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, int(group))

    def leave(self, group: int) -> None:
        self._sock.setsockopt(SOL_NETLINK, NETLINK_DROP_MEMBERSHIP, int(group))

    def next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFFFFFF or 1
        return self._seq

    def send(self, data: bytes) -> None:
        if _DEBUG:
            _trace("send", data)
        self._sock.send(data)

    def recv(self) -> memoryview:
        """Receive one datagram into the socket's buffer, sized by peeking first.

        The view is valid until the next receive on this socket.
        """
        n = self._sock.recv_into(self._scratch, len(self._scratch), _socket.MSG_PEEK | _socket.MSG_TRUNC)
        if n > len(self._buf):
            self._buf = bytearray(n)
        n = self._sock.recv_into(self._buf)
        view = memoryview(self._buf)[:n]
        if _DEBUG:
            _trace("recv", view)
        return view

    def _message(self, msg_type: int, flags: int, payload: bytes) -> tuple[int, bytes]:
        seq = self.next_seq()
        return seq, encode_message(msg_type, flags, seq, self.pid, payload)

    def _check(self, m: Message, seq: int) -> bool:
        """True if ``m`` answers ``seq``; stale replies to older requests are skipped."""
        if m.pid != self.pid and m.pid != 0:
            raise DecodeError(f"netlink reply port id {m.pid} does not match socket {self.pid}")
        return m.seq == seq

    # -- one request -------------------------------------------------------
    def request(self, msg_type: int, flags: int, payload: bytes, *, op: str = "", obj="") -> list[Message]:
        """Send one request; return its reply messages (payloads copied).

        ``obj`` names the object in an error: text, or a value turned into text only if there is one.

        With ``NLM_F_ACK`` this waits for the ack; otherwise for the first
        non-multipart reply (or the end of a multipart one).  An error ack
        raises :class:`NetlinkError` with ``op`` and ``obj`` in its text.
        """
        with self._lock:
            return self._request(msg_type, flags, payload, op, obj)

    def _request(self, msg_type: int, flags: int, payload: bytes, op: str, obj: str) -> list[Message]:
        seq, data = self._message(msg_type, flags, payload)
        self.send(data)
        view = self.recv()
        # Fast path (one request at a time: rule/neighbour/route add and delete): the first datagram
        # starts with the success ack of this request.  The general loop below would return [] for
        # it too (Reply.feed: an ERROR with errno 0 ends the request with no replies); this skips its
        # Message/Reply/Ack objects, a third of the Python time per request (bench/bench_netlink.py).
        if flags & _ACK and len(view) >= _ACK_FULL:
            length, mtype, _f, mseq, mpid, err = _ACK_HEAD.unpack_from(view, 0)
            if mtype == _ERROR and err == 0 and mseq == seq and _ACK_FULL <= length <= len(view) and (
                    mpid == self.pid or mpid == 0):
                return []
        reply = Reply(seq, flags, op, obj)
        while True:
            for m in parse_messages(view):
                if self._check(m, seq) and reply.feed(m):
                    return reply.result()
            view = self.recv()

    @staticmethod
    def error(ack: Ack, op: str, obj, seq: int | None = None) -> NetlinkError:
        """The error of an error ack; ``obj`` is text or a value whose ``str()`` names the object (an address:
        a request path that succeeds never pays for formatting it)."""
        return NetlinkError(ack.errno, op=op, obj=obj if obj.__class__ is str else str(obj), message=ack.message,
                            offset=ack.offset, seq=seq)

    # -- dumps ------------------------------------------------------------
    def dump(
        self,
        msg_type: int,
        payload: bytes,
        decode: Callable[[int, memoryview], T | None],
        *,
        op: str = "dump",
        obj: str = "",
        retries: int = DUMP_RETRIES,
    ) -> list[T]:
        """Run a dump request; ``decode(type, payload)`` turns each reply into an
        item (``None`` items are dropped).  Restarted up to ``retries`` times if
        the kernel reports the dump inconsistent (``NLM_F_DUMP_INTR``).

        The cyclic garbage collector is paused while the parts are decoded (if
        it was on): a dump makes tens of thousands of acyclic objects, and the
        full collections they would trigger walk the caller's whole heap, which
        cost 30-60% of a 10,000-route dump with a few such lists alive."""
        paused = gc.isenabled()
        if paused:
            gc.disable()
        try:
            with self._lock:
                return self._dump(msg_type, payload, decode, op, obj, retries)
        finally:
            if paused:
                gc.enable()

    def _dump(self, msg_type: int, payload: bytes, decode, op: str, obj: str, retries: int) -> list:
        for _attempt in range(retries + 1):
            seq, data = self._message(msg_type, int(NlmFlag.REQUEST | NlmFlag.DUMP), payload)
            self.send(data)
            items: list[T] = []
            interrupted = False
            done = False
            pid = self.pid
            unpack = HEADER.unpack_from
            while not done:
                # parse_messages, flattened: dumps carry thousands of messages
                view = self.recv()
                end = len(view)
                off = 0
                while off < end:
                    if end - off < 16:
                        raise DecodeError(f"netlink message at offset {off}: truncated header ({end - off} of 16 bytes)")
                    length, mtype, mflags, mseq, mpid = unpack(view, off)
                    if length < 16 or length > end - off:
                        raise DecodeError(f"netlink message at offset {off}: bad nlmsg_len {length} ({end - off} bytes left)")
                    if mpid != pid and mpid != 0:
                        raise DecodeError(f"netlink reply port id {mpid} does not match socket {pid}")
                    if mseq == seq:
                        if mflags & _DUMP_INTR:
                            interrupted = True
                        if mtype == _DONE or mtype == _ERROR:
                            ack = parse_ack(Message(mtype, mflags, mseq, mpid, view[off + 16 : off + length]))
                            if ack.errno:
                                raise self.error(ack, op, obj, seq)
                            done = True
                            break
                        item = decode(mtype, view[off + 16 : off + length])
                        if item is not None:
                            items.append(item)
                    off += (length + 3) & ~3
            if not interrupted:
                return items
        raise NetlinkError(errno.EINTR, op=op, obj=obj, message=f"dump still inconsistent after {retries} retries")

    # -- pipelining ---------------------------------------------------------
    def pipeline(
        self,
        requests: Iterable[tuple[int, int, bytes]],
        *,
        window: int = PIPELINE_WINDOW,
        max_bytes: int = PIPELINE_BYTES,
    ) -> list[tuple[int, Ack]]:
        """Send ``(type, flags, payload)`` requests, many per datagram; report failures per request.

        The kernel handles a datagram's messages in order, synchronously in
        ``sendmsg``, goes on after a failure, and answers a message without
        ``NLM_F_ACK`` only if it fails.  So only the last request of each
        datagram asks for an ack: once that ack is read, every error of the
        batch is already queued before it, and a batch of ``window`` requests
        costs one ``sendmsg`` and, when all succeed, one ``recv``.  At most
        ``window`` requests are in flight, so even all-failing batches fit the
        receive buffer.  Returns ``(index, ack)`` for each failed request, in
        order (empty: all succeeded).
        """
        with self._lock:
            return self._pipeline(requests, window, max_bytes)

    def _pipeline(self, requests: Iterable[tuple[int, int, bytes]], window: int, max_bytes: int) -> list[tuple[int, Ack]]:
        failures: list[tuple[int, Ack]] = []
        index = 0
        for first_seq, last_seq, count, data in self.batches(requests, window=window, max_bytes=max_bytes):
            self.send(data)
            self._collect(first_seq, last_seq, count, index, failures)
            index += count
        return failures

    def batches(self, requests: Iterable[tuple[int, int, bytes]], *, window: int = PIPELINE_WINDOW,
                max_bytes: int = PIPELINE_BYTES) -> Iterator[tuple[int, int, int, bytes]]:
        """Frame ``(type, flags, payload)`` requests into datagrams of at most ``window``
        requests / about ``max_bytes`` bytes; yields ``(first_seq, last_seq, count, datagram)``.

        Only each datagram's last request asks for an ack (see :meth:`pipeline`);
        sequence numbers are taken from this socket as each datagram is framed.
        Shared by :meth:`pipeline` and the asyncio client (:mod:`tunkit.netlink.aio`).
        """
        pack = HEADER.pack
        pid = self.pid
        it = iter(requests)
        exhausted = False
        while not exhausted:
            first_seq = (self._seq + 1) & 0xFFFFFFFF or 1
            parts: list[bytes] = []
            size = count = 0
            seq = self._seq
            last = -1
            for msg_type, flags, payload in it:
                seq = (seq + 1) & 0xFFFFFFFF or 1
                n = 16 + len(payload)
                last = len(parts)
                parts.append(pack(n, msg_type, flags & ~_ACK, seq, pid))
                parts.append(payload)
                if n & 3:
                    parts.append(b"\0" * (-n & 3))
                count += 1
                size += n + 3
                if count >= window or size >= max_bytes:
                    break
            else:
                exhausted = True
            if not count:
                break
            n, msg_type, flags, _, _ = HEADER.unpack(parts[last])
            parts[last] = pack(n, msg_type, flags | _ACK, seq, pid)  # the batch's sync point
            self._seq = seq
            yield first_seq, seq, count, b"".join(parts)

    def _collect(self, first_seq: int, last_seq: int, count: int, base: int, failures: list) -> None:
        """Read error acks of the batch ``first_seq..last_seq`` until the last one's ack."""
        buf = self._buf
        sock = self._sock
        unpack = _ACK_HEAD.unpack_from
        while True:
            # rtnetlink answers inside sendmsg, so everything is already queued: never wait.
            # (Should the kernel skip a message -- netlink_rcv_skb does so on EINTR -- the
            # batch's ack would never come; fail instead of hanging.)
            try:
                n = sock.recv_into(buf, len(buf), _socket.MSG_TRUNC | _socket.MSG_DONTWAIT)
            except BlockingIOError:
                raise NetlinkError(errno.EINTR, op="netlink batch", obj=f"requests {first_seq}..{last_seq}",
                                   message="the kernel sent no ack for the batch's last request") from None
            if n > len(buf):
                raise DecodeError(f"netlink ack datagram of {n} bytes overflowed a {len(buf)}-byte buffer")
            off = 0
            while off + 20 <= n:
                length, mtype, mflags, seq, pid, err = unpack(buf, off)
                if length < 16 or length > n - off:
                    raise DecodeError(f"netlink message at offset {off}: bad nlmsg_len {length}")
                if pid != self.pid and pid != 0:
                    raise DecodeError(f"netlink reply port id {pid} does not match socket {self.pid}")
                k = (seq - first_seq) & 0xFFFFFFFF
                if mtype == _ERROR and k < count:
                    if err:
                        view = memoryview(buf)[off + 16 : off + length]
                        failures.append((base + k, parse_ack(Message(mtype, mflags, seq, pid, view))))
                    if seq == last_seq:
                        return
                off += (length + 3) & ~3
