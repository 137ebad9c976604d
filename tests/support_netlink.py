"""Helpers for the netlink tests: commented hex, sample messages, a scripted fake kernel."""

from __future__ import annotations

import errno
import ipaddress
import socket
import struct
import threading
from typing import Callable

from tunkit._uapi import NlmFlag, NlmsgType
from tunkit.netlink.message import HEADER, Message, encode_message, parse_messages


def H(text: str) -> bytes:
    """Hex with one field per line and ``#`` comments, e.g. ``"0800 0f00  # rta_len, rta_type"``."""
    return bytes.fromhex("".join(line.split("#", 1)[0] for line in text.splitlines()).replace(" ", ""))


ip4 = ipaddress.IPv4Address
ip6 = ipaddress.IPv6Address
net = ipaddress.ip_network


# ---------------------------------------------------------------------------
# Fake kernel: a socket stand-in driven by a function, after mdlayher's nltest.Dial
# ---------------------------------------------------------------------------
def ack(req: Message, err: int = 0, message: str | None = None, offset: int | None = None) -> bytes:
    """An NLMSG_ERROR reply to ``req`` (capped, with ext-ack TLVs if given)."""
    tlvs = b""
    flags = NlmFlag.CAPPED
    if message is not None:
        raw = message.encode() + b"\0"
        tlvs += struct.pack("=HH", 4 + len(raw), 1) + raw + b"\0" * (-len(raw) & 3)
    if offset is not None:
        tlvs += struct.pack("=HHI", 8, 2, offset)
    if tlvs:
        flags |= NlmFlag.ACK_TLVS
    body = struct.pack("=i", -err) + HEADER.pack(16 + len(req.payload), req.type, req.flags, req.seq, req.pid) + tlvs
    return encode_message(NlmsgType.ERROR, flags, req.seq, req.pid, body)


def reply(req: Message, msg_type: int, payload: bytes, flags: int = 0) -> bytes:
    return encode_message(msg_type, flags, req.seq, req.pid, payload)


def done(req: Message, flags: int = 0) -> bytes:
    return encode_message(NlmsgType.DONE, NlmFlag.MULTI | flags, req.seq, req.pid, struct.pack("=i", 0))


class FakeKernel:
    """Stands in for the socket inside a NetlinkSocket.

    ``handler(msg) -> list[bytes]`` returns the reply datagrams for one
    request message; ``sent`` records every request message (copied).
    """

    def __init__(self, handler: Callable[[Message], list[bytes]]) -> None:
        self.handler = handler
        self.queue: list[bytes] = []
        self.sent: list[Message] = []
        self.datagrams = 0

    def send(self, data: bytes) -> int:
        self.datagrams += 1
        for m in parse_messages(bytes(data)):
            copy = Message(m.type, m.flags, m.seq, m.pid, memoryview(m.payload.tobytes()))
            self.sent.append(copy)
            self.queue.extend(self.handler(copy))
        return len(data)

    def recv_into(self, buf, nbytes: int = 0, flags: int = 0) -> int:
        if not self.queue:
            raise BlockingIOError(errno.EAGAIN, "no reply queued (the fake kernel was not asked)")
        data = self.queue[0]
        if not flags & socket.MSG_PEEK:
            self.queue.pop(0)
        n = min(len(data), len(buf), nbytes or len(buf))
        buf[:n] = data[:n]
        return len(data) if flags & socket.MSG_TRUNC else n

    def close(self) -> None:
        pass


def fake_socket(handler: Callable[[Message], list[bytes]], pid: int = 4242):
    """A NetlinkSocket whose kernel is ``handler`` (no real socket, no root)."""
    from tunkit.netlink.socket import NetlinkSocket

    s = object.__new__(NetlinkSocket)
    s._sock = FakeKernel(handler)
    s.pid = pid
    s._seq = 0
    s._buf = bytearray(64 * 1024)
    s._scratch = bytearray(16)
    s._lock = threading.RLock()
    return s


# ---------------------------------------------------------------------------
# Deeply nested input for the decoders' nesting bound (issue 14 item 10)
# ---------------------------------------------------------------------------
def nla(attr_type: int, data: bytes, nested: bool = False) -> bytes:
    """One attribute (header, payload, padding); ValueError if it cannot fit a u16 length."""
    n = 4 + len(data)
    if n > 0xFFFF:
        raise ValueError(f"attribute of {n} bytes does not fit nla_len")
    return struct.pack("=HH", n, attr_type | (0x8000 if nested else 0)) + data + b"\0" * (-n & 3)


IFINFO0 = struct.pack("=BxHiII", 0, 0, 0, 0, 0)  # an empty struct ifinfomsg


def veth_chain(depth: int) -> bytes:
    """A LinkMessage payload whose veth peer has a veth peer ... ``depth`` links deep
    (IFLA_LINKINFO / IFLA_INFO_KIND "veth" / IFLA_INFO_DATA / VETH_INFO_PEER / ifinfomsg ...)."""
    body = b""
    for _ in range(depth):
        body = nla(18, nla(1, b"veth\0") + nla(2, nla(1, IFINFO0 + body), nested=True), nested=True)
    return IFINFO0 + body


def attr_chain(depth: int, attr_type: int = 200) -> bytes:
    """An attribute stream nesting one NLA_F_NESTED attribute in the next, ``depth`` deep
    (type 200 by default: one no decoder models, so each keeps it as unknown or walks it)."""
    body = b""
    for _ in range(depth):
        body = nla(attr_type, body, nested=True)
    return body


DEEP = (33, 200, 1500)  # just past MAX_NESTING (32), far past, and about as deep as a u16 length allows
