"""tunkit's WireGuard extension on the wire: control and train layouts, GSO metadata checks, bounded reassembly; pure, no I/O.

Two message types that WireGuard does not define (its types are 1..4) carry
the extension; both are sealed with the session's ChaCha20-Poly1305 key and a
nonce taken from the session's own send counter, so one counter space (and
one replay window) covers transport messages, control messages and trains.
See docs/wireguard-extension.md for the byte layouts and the security
argument; :mod:`tunkit.wireguard.extension` drives these pieces.

* A *control* message (type :data:`MSG_EXT_CONTROL`) is the offer: "this
  session may carry trains", with an ACK bit once the other side's offer arrived.
* A *train* (type :data:`MSG_EXT_TRAIN`) is one sealed body (records: GSO
  metadata + IP packet, then the 16-byte tag) cut into equal-sized fragments,
  each behind a 24-byte header that states the whole train's shape, so every
  fragment is checked on its own before anything is held.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from tunkit._uapi import VIRTIO_NET_HDR_GSO_ECN, VirtioNetHdrFlag, VirtioNetHdrGso
from tunkit.errors import DecodeError
from tunkit.packet.offload import VirtioNetHdr, gso_check
from tunkit.wireguard.constants import REJECT_AFTER_MESSAGES
from tunkit.wireguard.replay import WINDOW_SIZE

__all__ = [
    "MSG_EXT_CONTROL", "MSG_EXT_TRAIN", "EXT_TYPES", "CONTROL_HEADER", "CONTROL_BODY", "CONTROL_SIZE",
    "FRAGMENT", "FRAGMENT_HEADER_SIZE", "RECORD", "RECORD_SIZE", "MAGIC", "VERSION", "FLAG_ACK",
    "FLAG_TRAINS", "MAX_BODY", "MAX_FRAGMENTS", "MIN_CHUNK", "MIN_GSO_SIZE", "MAX_GSO_SEGMENTS",
    "Shape", "shape_for", "parse_fragment", "fresh", "check_meta", "Train",
]

MSG_EXT_CONTROL = 0xE0  # type words WireGuard does not define (1..4): dropped unread by wireguard-go and Linux
MSG_EXT_TRAIN = 0xE1
EXT_TYPES = (MSG_EXT_CONTROL, MSG_EXT_TRAIN)
TAG = 16

# Control message header, 16 bytes, little endian (then the sealed CONTROL_BODY + 16-byte tag):
CONTROL_HEADER = struct.Struct(
    "<I"    # type word: MSG_EXT_CONTROL in the low byte, 3 zero bytes
    "I"     # receiver index: the receiving side's index of the session
    "Q"     # counter: the nonce, drawn from the session's send counter (shared with transport)
)
# Control body (plaintext), 16 bytes, little endian; AAD = the 16-byte header:
CONTROL_BODY = struct.Struct(
    "<8s"   # magic b"tunkitX\x01": this is tunkit's extension, layout 1
    "B"     # version: 1
    "B"     # flags: FLAG_TRAINS (we take trains on this session), FLAG_ACK (your offer arrived)
    "H"     # max record: the largest IP packet one record may carry (65535)
    "I"     # reserved, zero
)
CONTROL_SIZE = CONTROL_HEADER.size + CONTROL_BODY.size + TAG  # 48
MAGIC = b"tunkitX\x01"
VERSION = 1
FLAG_TRAINS = 0x01
FLAG_ACK = 0x02

# Train fragment header, 24 bytes, little endian (then this fragment's slice of the sealed body):
FRAGMENT = struct.Struct(
    "<I"    # type word: MSG_EXT_TRAIN in the low byte, 3 zero bytes
    "I"     # receiver index: the receiving side's index of the session
    "Q"     # counter: the train's nonce (one per train) from the session's send counter
    "H"     # index: this fragment's place, 0..count-1
    "H"     # count: fragments in the train, 1..MAX_FRAGMENTS
    "H"     # chunk: body bytes in every fragment but the last
    "H"     # last: body bytes in the last fragment, 1..chunk
)
FRAGMENT_HEADER_SIZE = FRAGMENT.size
_INDEX_AT = 16  # offset of the index field: the only header bytes that differ within one train
# Record header inside the sealed body, 12 bytes, little endian (then `length` bytes of IP packet):
RECORD = struct.Struct(
    "<B"    # flags: virtio_net_hdr flags (NEEDS_CSUM, DATA_VALID)
    "B"     # gso_type: VIRTIO_NET_HDR_GSO_* with the ECN bit
    "H"     # hdr_len: L3 + L4 header length (GSO only; recomputed and checked)
    "H"     # gso_size: payload bytes per segment (GSO only)
    "H"     # csum_start: where the partial checksum starts (NEEDS_CSUM only)
    "H"     # csum_offset: where after csum_start the checksum field is (NEEDS_CSUM only)
    "H"     # length: bytes of IP packet that follow
)
RECORD_SIZE = RECORD.size
assert (CONTROL_HEADER.size, CONTROL_BODY.size, FRAGMENT_HEADER_SIZE, RECORD_SIZE) == (16, 16, 24, 12)

MAX_BODY = RECORD_SIZE + 65535 + TAG  # one record of the largest IP packet, or several small ones
MAX_FRAGMENTS = 128
MIN_CHUNK = 512          # a train of more than one fragment has at least this much body per fragment
MIN_GSO_SIZE = 64        # the smallest gso_size taken: bounds the per-segment work a record can ask for
MAX_GSO_SEGMENTS = 128   # segments one GSO record may describe

_NEEDS_CSUM = int(VirtioNetHdrFlag.NEEDS_CSUM)
_DATA_VALID = int(VirtioNetHdrFlag.DATA_VALID)
_GSO_NONE = int(VirtioNetHdrGso.NONE)
_GSO_TCP = (int(VirtioNetHdrGso.TCPV4), int(VirtioNetHdrGso.TCPV6))
_GSO_KNOWN = (_GSO_NONE, *_GSO_TCP, int(VirtioNetHdrGso.UDP_L4))
_CSUM_FIELDS = (6, 16)   # UDP and TCP checksum offsets inside their headers


class Shape(NamedTuple):
    """How a body of ``(count - 1) * chunk + last`` bytes is cut: ``segment`` is the datagram size."""
    count: int
    chunk: int
    last: int

    @property
    def segment(self) -> int:
        return FRAGMENT_HEADER_SIZE + (self.chunk if self.count > 1 else self.last)

    @property
    def wire_size(self) -> int:
        return (self.count - 1) * (FRAGMENT_HEADER_SIZE + self.chunk) + FRAGMENT_HEADER_SIZE + self.last


def shape_for(body: int, segment: int) -> Shape:
    """The shape of a ``body``-byte train in datagrams of at most ``segment`` bytes (ValueError if impossible)."""
    if not RECORD_SIZE + 1 + TAG <= body <= MAX_BODY:
        raise ValueError(f"train body of {body} bytes is outside {RECORD_SIZE + 1 + TAG}..{MAX_BODY}")
    chunk = segment - FRAGMENT_HEADER_SIZE
    if body <= chunk:
        return Shape(1, body, body)
    if chunk < MIN_CHUNK:
        raise ValueError(f"segment size {segment} leaves {chunk} body bytes per fragment, below {MIN_CHUNK}")
    count = -(-body // chunk)
    if count > MAX_FRAGMENTS:
        raise ValueError(f"a {body}-byte train needs {count} fragments of {segment} bytes, over {MAX_FRAGMENTS}")
    return Shape(count, chunk, body - (count - 1) * chunk)


def parse_fragment(data, n: int):
    """``(receiver, counter, index, shape)`` of a train fragment of ``n`` bytes; DecodeError if it is malformed.

    Every field is checked against the others and against the datagram's
    length, so a fragment that passes fits the train it names exactly.
    """
    if n < FRAGMENT_HEADER_SIZE + 1:
        raise DecodeError(f"train fragment of {n} bytes is shorter than its header + 1")
    word, receiver, counter, index, count, chunk, last = FRAGMENT.unpack_from(data)
    if word != MSG_EXT_TRAIN:
        raise DecodeError(f"train fragment: type word {word:#x} is not {MSG_EXT_TRAIN:#x}")
    if not 1 <= count <= MAX_FRAGMENTS or index >= count:
        raise DecodeError(f"train fragment {index}/{count}: count outside 1..{MAX_FRAGMENTS} or index past it")
    if not 1 <= last <= chunk or (count == 1 and chunk != last) or (count > 1 and chunk < MIN_CHUNK):
        raise DecodeError(f"train fragment: chunk {chunk} / last {last} do not describe a train of {count}")
    body = (count - 1) * chunk + last
    if not RECORD_SIZE + 1 + TAG <= body <= MAX_BODY:
        raise DecodeError(f"train fragment: body of {body} bytes is outside {RECORD_SIZE + 1 + TAG}..{MAX_BODY}")
    want = FRAGMENT_HEADER_SIZE + (chunk if index < count - 1 else last)
    if n != want:
        raise DecodeError(f"train fragment {index}/{count}: {n} bytes, its header says {want}")
    if counter >= REJECT_AFTER_MESSAGES:
        raise DecodeError(f"train fragment: counter {counter} is past REJECT_AFTER_MESSAGES")
    return receiver, counter, index, Shape(count, chunk, last)


def fresh(window, counter: int) -> bool:
    """Would ``window`` (a ReplayWindow) still take ``counter``?  Looks only, changes nothing."""
    last = window.last
    if counter > last:
        return True
    if last - counter > WINDOW_SIZE:
        return False
    return not window.ring[(counter >> 6) & 31] & (1 << (counter & 63))


def check_meta(hdr: VirtioNetHdr, pkt) -> VirtioNetHdr:
    """Validate GSO metadata against the packet it describes; the metadata to use (hdr_len recomputed).

    The same rules decide on both sides (sealing and receiving), so tunkit
    never sends what its peer will refuse.  Raises DecodeError naming the field:
    unknown flags, NEEDS_CSUM with DATA_VALID, an unknown gso type or ECN on
    non-TCP; for a GSO record: no NEEDS_CSUM, gso_size below MIN_GSO_SIZE or
    more than MAX_GSO_SEGMENTS segments, and everything
    :func:`tunkit.packet.offload.gso_check` rejects (IP version, lengths, protocol,
    csum_start/csum_offset not the L4 checksum); for a non-GSO record:
    gso_size not 0, hdr_len past the packet, a checksum field outside the
    packet or not at a TCP/UDP checksum offset.
    """
    flags, gso_type = hdr.flags, hdr.gso_type
    n = len(pkt)
    if flags & ~(_NEEDS_CSUM | _DATA_VALID) or flags == _NEEDS_CSUM | _DATA_VALID:
        raise DecodeError(f"GSO metadata: flags {int(flags):#x} (allowed: NEEDS_CSUM or DATA_VALID)")
    base = gso_type & ~VIRTIO_NET_HDR_GSO_ECN
    if base not in _GSO_KNOWN or (gso_type & VIRTIO_NET_HDR_GSO_ECN and base not in _GSO_TCP):
        raise DecodeError(f"GSO metadata: gso_type {gso_type:#x} is unknown or ECN on non-TCP")
    if base == _GSO_NONE:
        if hdr.gso_size:
            raise DecodeError(f"GSO metadata: gso_size {hdr.gso_size} on a non-GSO packet (must be 0)")
        if hdr.hdr_len > n:
            raise DecodeError(f"GSO metadata: hdr_len {hdr.hdr_len} is past the {n}-byte packet")
        if flags & _NEEDS_CSUM:
            l3 = 20 if pkt[0] >> 4 == 4 else 40
            if (hdr.csum_start < l3 or hdr.csum_offset not in _CSUM_FIELDS
                    or hdr.csum_start + hdr.csum_offset + 2 > n):
                raise DecodeError(f"GSO metadata: csum_start {hdr.csum_start} / csum_offset {hdr.csum_offset}"
                                  f" is not a TCP/UDP checksum inside the {n}-byte packet")
        return hdr
    if not flags & _NEEDS_CSUM:
        raise DecodeError("GSO metadata: a GSO packet without NEEDS_CSUM")
    if hdr.gso_size < MIN_GSO_SIZE:
        raise DecodeError(f"GSO metadata: gso_size {hdr.gso_size} is below {MIN_GSO_SIZE}")
    info = gso_check(hdr, pkt)
    segments = -(-info.payload_len // hdr.gso_size)
    if segments > MAX_GSO_SEGMENTS:
        raise DecodeError(f"GSO metadata: gso_size {hdr.gso_size} makes {segments} segments (at most {MAX_GSO_SEGMENTS})")
    if hdr.hdr_len != info.hdr_len:
        hdr = hdr._replace(hdr_len=info.hdr_len)
    return hdr


class Train:
    """One train being reassembled: its body so far, and a second copy once a fragment was contested.

    ``body`` holds the first copy of every fragment that arrived (first
    wins), ``alt`` (made at the first conflict) the latest differing copy
    (last wins); the tag decides which one, if either, is the real train.
    """

    __slots__ = ("kp", "counter", "shape", "body", "alt", "have", "filled", "deadline")

    def __init__(self, kp, counter: int, shape: Shape, deadline: float, body: bytearray | None = None) -> None:
        self.kp = kp
        self.counter = counter
        self.shape = shape
        self.body = bytearray((shape.count - 1) * shape.chunk + shape.last) if body is None else body
        self.alt: bytearray | None = None
        self.have = 0        # bit i: fragment i arrived
        self.filled = 0
        self.deadline = deadline

    @property
    def held(self) -> int:
        """Unauthenticated bytes this train holds."""
        return len(self.body) * (1 if self.alt is None else 2)

    def aad(self, receiver: int) -> bytes:
        s = self.shape
        return FRAGMENT.pack(MSG_EXT_TRAIN, receiver, self.counter, 0, s.count, s.chunk, s.last)
