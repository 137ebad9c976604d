"""WireGuard message codecs (initiation, response, cookie reply, transport) and TAI64N; pure, no I/O.

Every layout is one precompiled :class:`struct.Struct`; decoders take any
buffer (``bytes``, ``bytearray``, ``memoryview``), check the exact length and
the type/reserved bytes and raise :class:`MessageError` (a ``ValueError``)
naming what was wrong.  Nothing a peer sends can make them raise anything else.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

__all__ = [
    "MessageError", "MSG_INITIATION", "MSG_RESPONSE", "MSG_COOKIE", "MSG_TRANSPORT",
    "INITIATION_SIZE", "RESPONSE_SIZE", "COOKIE_SIZE", "TRANSPORT_HEADER_SIZE", "TRANSPORT_MIN_SIZE",
    "Initiation", "Response", "CookieReply", "message_type", "decode_initiation", "decode_response",
    "decode_cookie_reply", "decode_transport_header", "encode_initiation", "encode_response",
    "encode_cookie_reply", "TRANSPORT_HEADER", "tai64n", "TAI64N_SIZE",
]

MSG_INITIATION, MSG_RESPONSE, MSG_COOKIE, MSG_TRANSPORT = 1, 2, 3, 4
TAG = 16

# Handshake initiation, 148 bytes, little endian:
INITIATION = struct.Struct(
    "<I"    # type (1) in the low byte, 3 reserved zero bytes above it
    "I"     # sender index: the initiator's receiver index for this handshake
    "32s"   # unencrypted ephemeral public key
    "48s"   # encrypted static public key (32) + tag (16)
    "28s"   # encrypted TAI64N timestamp (12) + tag (16)
    "16s"   # mac1: MAC(HASH("mac1----" || responder static), bytes 0..115)
    "16s"   # mac2: MAC(cookie, bytes 0..131), or zeros
)
# Handshake response, 92 bytes, little endian:
RESPONSE = struct.Struct(
    "<I"    # type (2) + 3 reserved zero bytes
    "I"     # sender index: the responder's receiver index
    "I"     # receiver index: the initiator's sender index being answered
    "32s"   # unencrypted ephemeral public key
    "16s"   # encrypted empty payload: the tag only
    "16s"   # mac1: MAC(HASH("mac1----" || initiator static), bytes 0..59)
    "16s"   # mac2: MAC(cookie, bytes 0..75), or zeros
)
# Cookie reply, 64 bytes, little endian:
COOKIE = struct.Struct(
    "<I"    # type (3) + 3 reserved zero bytes
    "I"     # receiver index: the sender index of the message it answers
    "24s"   # XChaCha20 nonce (random)
    "32s"   # encrypted cookie (16) + tag (16); AAD = mac1 of the message it answers
)
# Transport data header, 16 bytes, little endian (then ciphertext + 16-byte tag):
TRANSPORT_HEADER = struct.Struct(
    "<I"    # type (4) + 3 reserved zero bytes
    "I"     # receiver index: the index the receiving side chose for this session
    "Q"     # counter: the nonce, 64-bit
)
INITIATION_SIZE = INITIATION.size
RESPONSE_SIZE = RESPONSE.size
COOKIE_SIZE = COOKIE.size
TRANSPORT_HEADER_SIZE = TRANSPORT_HEADER.size
TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + TAG  # a keepalive
assert (INITIATION_SIZE, RESPONSE_SIZE, COOKIE_SIZE, TRANSPORT_HEADER_SIZE) == (148, 92, 64, 16)

# offsets of mac1 and mac2 in each handshake message
INITIATION_MAC1 = INITIATION_SIZE - 32
RESPONSE_MAC1 = RESPONSE_SIZE - 32

_TYPE = struct.Struct("<I")  # type + reserved, the first word of every message


class MessageError(ValueError):
    """A datagram that is not a well-formed WireGuard message; the text says why."""


class Initiation(NamedTuple):
    sender: int
    ephemeral: bytes
    static: bytes       # 48 bytes: encrypted static key + tag
    timestamp: bytes    # 28 bytes: encrypted TAI64N + tag
    mac1: bytes
    mac2: bytes


class Response(NamedTuple):
    sender: int
    receiver: int
    ephemeral: bytes
    empty: bytes        # 16 bytes: the tag of the encrypted empty payload
    mac1: bytes
    mac2: bytes


class CookieReply(NamedTuple):
    receiver: int
    nonce: bytes
    cookie: bytes       # 32 bytes: encrypted cookie + tag


def message_type(data) -> int:
    """The message type (1..4) of a datagram; MessageError if short or the reserved bytes are set."""
    if len(data) < 4:
        raise MessageError(f"datagram of {len(data)} bytes is shorter than a message header (4)")
    word = _TYPE.unpack_from(data)[0]
    if word > 0xFF:
        raise MessageError(f"reserved header bytes are not zero (first word {word:#010x})")
    if not MSG_INITIATION <= word <= MSG_TRANSPORT:
        raise MessageError(f"unknown message type {word} (expected 1..4)")
    return word


def _check(data, layout: struct.Struct, kind: int, name: str) -> None:
    if len(data) != layout.size:
        raise MessageError(f"{name} must be {layout.size} bytes, got {len(data)}")
    if _TYPE.unpack_from(data)[0] != kind:
        raise MessageError(f"{name}: type word {_TYPE.unpack_from(data)[0]:#x} is not {kind}")


def decode_initiation(data) -> Initiation:
    _check(data, INITIATION, MSG_INITIATION, "handshake initiation")
    return Initiation(*INITIATION.unpack_from(data)[1:])


def decode_response(data) -> Response:
    _check(data, RESPONSE, MSG_RESPONSE, "handshake response")
    return Response(*RESPONSE.unpack_from(data)[1:])


def decode_cookie_reply(data) -> CookieReply:
    _check(data, COOKIE, MSG_COOKIE, "cookie reply")
    return CookieReply(*COOKIE.unpack_from(data)[1:])


def decode_transport_header(data) -> tuple[int, int]:
    """``(receiver index, counter)`` of a transport message; MessageError if too short or mistyped."""
    if len(data) < TRANSPORT_MIN_SIZE:
        raise MessageError(f"transport message of {len(data)} bytes is shorter than {TRANSPORT_MIN_SIZE}")
    word, receiver, counter = TRANSPORT_HEADER.unpack_from(data)
    if word != MSG_TRANSPORT:
        raise MessageError(f"transport message: type word {word:#x} is not 4")
    return receiver, counter


def _index(v: int) -> int:
    if not 0 <= v <= 0xFFFFFFFF:
        raise ValueError(f"index {v} is outside 0..2**32-1")
    return v


def encode_initiation(m: Initiation) -> bytearray:
    buf = bytearray(INITIATION_SIZE)
    INITIATION.pack_into(buf, 0, MSG_INITIATION, _index(m.sender), m.ephemeral, m.static, m.timestamp, m.mac1, m.mac2)
    return buf


def encode_response(m: Response) -> bytearray:
    buf = bytearray(RESPONSE_SIZE)
    RESPONSE.pack_into(buf, 0, MSG_RESPONSE, _index(m.sender), _index(m.receiver), m.ephemeral, m.empty, m.mac1, m.mac2)
    return buf


def encode_cookie_reply(m: CookieReply) -> bytearray:
    buf = bytearray(COOKIE_SIZE)
    COOKIE.pack_into(buf, 0, MSG_COOKIE, _index(m.receiver), m.nonce, m.cookie)
    return buf


# TAI64N: 8-byte big-endian seconds since 1970 plus 2**62 + 10 (TAI offset), 4-byte big-endian nanoseconds.
TAI64N = struct.Struct(">QI")
TAI64N_SIZE = TAI64N.size
_TAI_BASE = (1 << 62) + 10
_WHITEN = 0x1000000  # nanoseconds are rounded down to 2**24 ns (~16.8 ms), as wireguard-go does


def tai64n(wall: float) -> bytes:
    """TAI64N label of UNIX time ``wall`` (precision reduced to ~16.8 ms so it leaks no fine timing)."""
    ns = int(wall * 1e9)
    secs, nanos = divmod(ns, 1_000_000_000)
    return TAI64N.pack(_TAI_BASE + secs, nanos - nanos % _WHITEN)
