"""Netlink message framing: nlmsghdr codec, alignment, acks and extended acks; pure, no I/O.

A netlink datagram is a run of messages, each ``struct nlmsghdr`` followed by
its payload and padded to 4 bytes.  :func:`parse_messages` walks a datagram
and yields :class:`Message` views (payloads are memoryviews into the
caller's buffer, not copies).  :func:`parse_ack` turns an ``NLMSG_ERROR``
payload, or the status word of an ``NLMSG_DONE``, into an :class:`Ack`
carrying the errno and the kernel's extended-ack text and offset.
:func:`validate` checks that a reply belongs to a request (sequence number
and port id) without touching a socket.

Malformed input raises :class:`tunkit.errors.DecodeError` and nothing else.
"""

from __future__ import annotations

import struct
from typing import Iterator, NamedTuple

from tunkit._uapi import NLMSG_ALIGNTO, NLMSG_HDRLEN, NlmFlag, NlmsgerrAttr, NlmsgType
from tunkit.errors import DecodeError

__all__ = [
    "HEADER",
    "Ack",
    "HeaderFlags",
    "MsgType",
    "Message",
    "encode_message",
    "nlmsg_align",
    "nlmsg_length",
    "parse_ack",
    "parse_messages",
    "validate",
]

HeaderFlags = NlmFlag  # nlmsg_flags (the IntFlag lives with the constants in tunkit._uapi)
MsgType = NlmsgType  # NLMSG_NOOP/ERROR/DONE/OVERRUN


# #define NLMSG_ALIGN(len) ( ((len)+NLMSG_ALIGNTO-1) & ~(NLMSG_ALIGNTO-1) )
def nlmsg_align(length: int) -> int:
    """Round ``length`` up to the netlink message alignment (4)."""
    return (length + NLMSG_ALIGNTO - 1) & ~(NLMSG_ALIGNTO - 1)


# #define NLMSG_LENGTH(len) ((len) + NLMSG_HDRLEN)
def nlmsg_length(payload_len: int) -> int:
    """``nlmsg_len`` of a message carrying ``payload_len`` bytes."""
    return payload_len + NLMSG_HDRLEN


# struct nlmsghdr, native byte order:
HEADER = struct.Struct(
    "="
    "I"  # nlmsg_len: length of the message including this header
    "H"  # nlmsg_type: NLMSG_* control type or RTM_* (>= NLMSG_MIN_TYPE)
    "H"  # nlmsg_flags: NLM_F_*
    "I"  # nlmsg_seq: sequence number, echoed in replies
    "I"  # nlmsg_pid: sender port id (0 for the kernel)
)
# struct nlmsgerr: int error (negative errno, 0 for an ack) + the request's nlmsghdr
_ERRNO = struct.Struct("=i")  # error: -errno, or 0 for an ack
_ERR_HEADER = struct.Struct("=iIHHII")  # error, then the echoed request's nlmsghdr fields
# plain ints for parse_ack, which runs once per request (IntFlag/IntEnum operators cost ~1 us each)
_DONE, _ERROR = int(NlmsgType.DONE), int(NlmsgType.ERROR)
_ACK_TLVS, _CAPPED = int(NlmFlag.ACK_TLVS), int(NlmFlag.CAPPED)
_NLA = struct.Struct("=HH")  # struct nlattr: nla_len, nla_type (ext-ack TLVs)
_U32 = struct.Struct("=I")


class Message(NamedTuple):
    """One netlink message: header fields plus a payload view (not a copy)."""

    type: int
    flags: int
    seq: int
    pid: int
    payload: memoryview

    @property
    def is_error(self) -> bool:
        return self.type == NlmsgType.ERROR

    @property
    def is_done(self) -> bool:
        return self.type == NlmsgType.DONE


class Ack(NamedTuple):
    """An ``NLMSG_ERROR``/``NLMSG_DONE`` status: ``errno`` 0 means success.

    ``seq``/``type`` are those of the request the kernel answered (``None``
    for a DONE status word); ``message``/``offset`` are the extended-ack text
    and the byte offset of the offending attribute in that request.
    """

    errno: int
    seq: int | None
    type: int | None
    message: str | None
    offset: int | None


def encode_message(msg_type: int, flags: int, seq: int, pid: int, payload: bytes = b"") -> bytes:
    """One netlink message (header + payload), padded to the alignment."""
    n = NLMSG_HDRLEN + len(payload)
    pad = nlmsg_align(n) - n
    return HEADER.pack(n, msg_type, flags, seq, pid) + payload + b"\0" * pad


def parse_messages(buf) -> Iterator[Message]:
    """Yield every message in one datagram ``buf`` (bytes, bytearray or memoryview).

    Raises :class:`DecodeError` for a truncated header or a length that is
    shorter than the header or runs past the end of the buffer.  Every step
    advances by at least one header, so hostile input cannot loop.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    end = len(view)
    off = 0
    unpack = HEADER.unpack_from
    while off < end:
        if end - off < NLMSG_HDRLEN:
            raise DecodeError(f"netlink message at offset {off}: truncated header ({end - off} of {NLMSG_HDRLEN} bytes)")
        length, mtype, flags, seq, pid = unpack(view, off)
        if length < NLMSG_HDRLEN or length > end - off:
            raise DecodeError(f"netlink message at offset {off}: bad nlmsg_len {length} ({end - off} bytes left)")
        yield Message(mtype, flags, seq, pid, view[off + NLMSG_HDRLEN : off + length])
        off += (length + 3) & ~3


def parse_ack(msg: Message) -> Ack:
    """Decode an ``NLMSG_ERROR`` (ack/error) or ``NLMSG_DONE`` (dump status) message.

    The extended-ack TLVs (NLMSGERR_ATTR_MSG/_OFFS) are read when the kernel
    set ``NLM_F_ACK_TLVS``; they follow the echoed request header, and the
    request payload too unless ``NLM_F_CAPPED`` says it was left out.
    """
    p = msg.payload
    if msg.type == _DONE:
        if len(p) < 4:  # old kernels send an empty DONE: success
            return Ack(0, None, None, None, None)
        (err,) = _ERRNO.unpack_from(p, 0)
        message, offset = _parse_ext_ack(p, 4) if msg.flags & _ACK_TLVS else (None, None)
        return Ack(-err, None, None, message, offset)
    if msg.type != _ERROR:
        raise DecodeError(f"netlink message type {msg.type} is not NLMSG_ERROR or NLMSG_DONE")
    if len(p) < _ERR_HEADER.size:
        raise DecodeError(f"NLMSG_ERROR: want at least {_ERR_HEADER.size} bytes, got {len(p)}")
    err, req_len, req_type, _req_flags, req_seq, _req_pid = _ERR_HEADER.unpack_from(p, 0)
    message = offset = None
    if msg.flags & _ACK_TLVS:
        start = _ERR_HEADER.size
        if not msg.flags & _CAPPED:  # the request's payload is echoed before the TLVs
            start = 4 + nlmsg_align(req_len)
        message, offset = _parse_ext_ack(p, start)
    return Ack(-err, req_seq, req_type, message, offset)


def _parse_ext_ack(p: memoryview, start: int) -> tuple[str | None, int | None]:
    message = offset = None
    off, end = start, len(p)
    while off + 4 <= end:
        nla_len, nla_type = _NLA.unpack_from(p, off)
        if nla_len < 4 or nla_len > end - off:
            raise DecodeError(f"extended ack attribute at offset {off}: bad length {nla_len}")
        data = p[off + 4 : off + nla_len]
        t = nla_type & 0x3FFF
        if t == NlmsgerrAttr.MSG:
            message = bytes(data).split(b"\0", 1)[0].decode("utf-8", "replace")
        elif t == NlmsgerrAttr.OFFS:
            if len(data) != 4:
                raise DecodeError(f"NLMSGERR_ATTR_OFFS: want 4 bytes, got {len(data)}")
            (offset,) = _U32.unpack_from(data, 0)
        off += (nla_len + 3) & ~3
    return message, offset


def validate(msg: Message, seq: int, pid: int) -> None:
    """Check that ``msg`` answers request ``seq`` sent from port ``pid``.

    Raises :class:`DecodeError` naming both numbers on a mismatch.  A port id
    of 0 in the reply is accepted (some kernel paths leave it unset).
    """
    if msg.seq != seq:
        raise DecodeError(f"netlink reply sequence {msg.seq} does not match request {seq}")
    if msg.pid not in (pid, 0):
        raise DecodeError(f"netlink reply port id {msg.pid} does not match socket {pid}")
