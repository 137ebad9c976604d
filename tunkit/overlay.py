"""The tunkit overlay wire format: header codec, MAC, replay window and freshness rules; pure, no I/O.

One UDP datagram carries one message: a 32-byte header, one IP packet (or a
whole TSO/USO super-packet, see ``gso_*`` below) and a 16-byte tag::

    +--------------------+---------------------------------+---------+
    | header (32 bytes)  | IP packet or super-packet       | tag (16)|
    +--------------------+---------------------------------+---------+
    |<------------------ covered by the tag --------------->|

The tag is HMAC-SHA256 truncated to 128 bits (RFC 4868's HMAC-SHA-256-128)
over header and packet, keyed by a 32-byte pre-shared key.  HMAC-SHA256 was
measured against keyed BLAKE2b on this machine (see docs/tunnel.md): BLAKE2b
wins only below ~256 bytes; from 1,400 bytes up HMAC-SHA256 (SHA-NI) is 1.4x
to 2.7x faster, and whole super-packets are where the bytes are.

Nothing here touches a socket or a clock: callers pass ``now_ms`` (wall clock,
milliseconds since the Unix epoch) and the random ``session``.  The per-packet
paths (:meth:`Sealer.seal`, :meth:`Opener.open`) allocate only the header and
tag they return.

Replay and freshness, also across restarts (the design; limits in docs/tunnel.md):

* Each sending process picks a random 32-bit ``session`` when it starts, and
  each sender (worker, ``sender`` index) numbers its messages with a 64-bit
  ``counter`` that starts at the start time in nanoseconds, so counters keep
  growing across restarts even if a session id repeats.
* Every message carries the sender's wall-clock ``timestamp_ms``.  A receiver
  drops messages older or newer than ``max_age_ms`` (stale), and messages sent
  before the receiver itself started (``not_before_ms``): a restarted receiver
  has an empty replay window, and this is what stops old captures being
  replayed into it.
* Per (peer, sender index) the receiver keeps the current session, an RFC
  6479 sliding-window bitmap of counters seen, and the newest timestamp it
  accepted.  A message of another session is accepted only if its timestamp
  is newer than every timestamp accepted so far from that sender: that is a
  restart of the sender; replayed messages of an older session fail it.
* The window and the timestamp are updated only after the tag verified.

Insecure mode has no header at all: the UDP payload is the bare IP packet, as
foo-over-UDP (``ip fou add port P ipproto 4|41``) expects.  This module is
not used for it.

Every malformed, forged, replayed or stale datagram makes :meth:`Opener.open`
raise :class:`OverlayError` (a :class:`~tunkit.errors.DecodeError`), whose
``reason`` is one of :class:`DropReason`; nothing else escapes for any input.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass

from tunkit.errors import DecodeError

VERSION = 1

# The header, network byte order.  One Struct, one comment per field.
HEADER = struct.Struct(
    "!"
    "B"  # 0  version: VERSION (1); anything else is dropped as DropReason.VERSION
    "B"  # 1  type: MsgType (DATA = 1)
    "B"  # 2  key_id: which pre-shared key made the tag (0 unless keys are rotated)
    "B"  # 3  sender: the sending worker's index; receivers keep one replay window per index
    "I"  # 4  session: random per start of the sending process; a new one marks a restart
    "Q"  # 8  counter: per (session, sender), +1 per message, starts at the start time in ns
    "Q"  # 16 timestamp_ms: sender's wall clock when sealing, ms since the Unix epoch
    "B"  # 24 gso_type: virtio_net_hdr gso_type of a super-packet (ECN bit included); 0 = plain packet
    "B"  # 25 gso_flags: virtio_net_hdr flags of the packet (NEEDS_CSUM = 1, DATA_VALID = 2)
    "H"  # 26 gso_size: segment payload size of a super-packet; 0 = plain packet
    "H"  # 28 csum_start: with NEEDS_CSUM, offset where the L4 checksum sum starts, else 0
    "H"  # 30 csum_offset: with NEEDS_CSUM, offset of the checksum field from csum_start, else 0
)
TAG_LEN = 16  # bytes of HMAC-SHA256 kept (RFC 4868 truncation)
OVERHEAD = HEADER.size + TAG_LEN  # per-message bytes added to the IP packet (48)
KEY_LEN = 32  # pre-shared key bytes
_SHA256_BLOCK = 64

COUNTER_MAX = 2**64 - 1
DEFAULT_MAX_AGE_MS = 10_000  # how far a timestamp may be from the receiver's clock
DEFAULT_WINDOW = 4096  # replay window in counters (RFC 6479 bitmap bits)


class MsgType(enum.IntEnum):
    """The ``type`` byte."""

    DATA = 1  # one IP packet or one super-packet


class DropReason(enum.Enum):
    """Why :meth:`Opener.open` refused a datagram (the ``reason`` of :class:`OverlayError`)."""

    TRUNCATED = "truncated"  # shorter than header + tag
    VERSION = "version"  # unknown version byte
    TYPE = "type"  # unknown message type
    UNKNOWN_KEY = "unknown_key"  # key_id not configured for this peer
    STALE = "stale"  # timestamp outside max_age_ms, or before the receiver started
    REPLAY = "replay"  # counter seen, too old for the window, or an older session
    BAD_MAC = "bad_mac"  # the tag does not verify (wrong key, tampering, garbage)


class OverlayError(DecodeError):
    """A datagram the overlay refuses; ``reason`` is a :class:`DropReason`."""

    def __init__(self, reason: DropReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Gso:
    """Super-packet metadata carried from the sender's TUN to the receiver's (virtio_net_hdr fields)."""

    type: int  # virtio gso_type (TCPV4 1, TCPV6 4, UDP_L4 5, | 0x80 ECN)
    flags: int  # virtio flags (NEEDS_CSUM 1)
    size: int  # segment payload bytes (MSS)
    csum_start: int
    csum_offset: int


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded header; ``gso`` is None for a plain packet whose flags are 0."""

    type: MsgType
    key_id: int
    sender: int
    session: int
    counter: int
    timestamp_ms: int
    gso: Gso | None = None
    version: int = VERSION

    def encode(self) -> bytes:
        g = self.gso or _NO_GSO
        return HEADER.pack(
            self.version, self.type, self.key_id, self.sender, self.session, self.counter,
            self.timestamp_ms, g.type, g.flags, g.size, g.csum_start, g.csum_offset,
        )

    @classmethod
    def decode(cls, buf, offset: int = 0) -> "Header":
        """Decode the header at ``offset``; raises :class:`OverlayError` (TRUNCATED/VERSION/TYPE)."""
        if len(buf) - offset < HEADER.size:
            raise OverlayError(DropReason.TRUNCATED, f"{len(buf) - offset} bytes, header needs {HEADER.size}")
        (version, mtype, key_id, sender, session, counter, ts, gtype, gflags, gsize, cstart, coff) = (
            HEADER.unpack_from(buf, offset)
        )
        if version != VERSION:
            raise OverlayError(DropReason.VERSION, f"version {version}, want {VERSION}")
        try:
            mtype = MsgType(mtype)
        except ValueError:
            raise OverlayError(DropReason.TYPE, f"message type {mtype}") from None
        gso = None if (gtype | gflags | gsize | cstart | coff) == 0 else Gso(gtype, gflags, gsize, cstart, coff)
        return cls(mtype, key_id, sender, session, counter, ts, gso, version)


_NO_GSO = Gso(0, 0, 0, 0, 0)


# ---------------------------------------------------------------------------
# The MAC
# ---------------------------------------------------------------------------
class Mac:
    """HMAC-SHA256-128 with the key's inner and outer pads hashed once.

    ``tag(a, b)`` equals ``hmac.digest(key, a + b, "sha256")[:16]`` without
    concatenating ``a`` and ``b``: the per-message cost is two hash-state
    copies and the bytes themselves.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if not 16 <= len(key) <= _SHA256_BLOCK:
            raise ValueError(f"overlay key: {len(key)} bytes, want 16..64 (normally {KEY_LEN})")
        k = bytes(key).ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in k))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in k))

    def tag(self, *parts) -> bytes:
        inner = self._inner.copy()
        for p in parts:
            inner.update(p)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()[:TAG_LEN]

    def verify(self, tag, *parts) -> bool:
        return hmac.compare_digest(self.tag(*parts), tag)


# ---------------------------------------------------------------------------
# Replay window (RFC 6479)
# ---------------------------------------------------------------------------
class ReplayWindow:
    """RFC 6479 anti-replay bitmap: a ring of 64-bit blocks, no bit shifting.

    Accepts each counter at most once, and nothing more than ``size``
    counters below the highest seen.  Memory is bounded: ``size/64 + 1``
    ints.  :meth:`check` has no side effect (call it before the MAC);
    :meth:`update` records a counter (after the MAC verified).
    """

    __slots__ = ("size", "_blocks", "_nblocks", "top")

    def __init__(self, size: int = DEFAULT_WINDOW) -> None:
        if size < 64 or size & (size - 1):
            raise ValueError(f"replay window size {size}: want a power of two >= 64")
        self.size = size
        # one spare block, so that the block holding `top` never overlaps the window's tail
        self._nblocks = size // 64 + 1
        self._blocks = [0] * self._nblocks
        self.top: int | None = None  # highest counter recorded; None before the first

    def check(self, counter: int) -> bool:
        """True if ``counter`` would be accepted (not seen, not too old)."""
        top = self.top
        if top is None or counter > top:
            return True
        if top - counter >= self.size:
            return False
        block = (counter >> 6) % self._nblocks
        return not (self._blocks[block] >> (counter & 63)) & 1

    def update(self, counter: int) -> None:
        """Record ``counter`` (which :meth:`check` accepted)."""
        top = self.top
        blocks = self._blocks
        n = self._nblocks
        if top is None:
            blocks[:] = [0] * n
            top = counter
        elif counter > top:
            cur = top >> 6
            new = counter >> 6
            # clear every block between the old top's block and the new one
            for i in range(min(new - cur, n)):
                blocks[(cur + 1 + i) % n] = 0
            top = counter
        self.top = top
        blocks[(counter >> 6) % n] |= 1 << (counter & 63)

    def reset(self) -> None:
        self.top = None
        self._blocks = [0] * self._nblocks


# ---------------------------------------------------------------------------
# Sealing and opening
# ---------------------------------------------------------------------------
class Sealer:
    """The sending half for one key: numbers, stamps and tags messages.

    ``seal(packet, now_ms)`` returns ``(header, tag)``; the datagram is
    ``header + packet + tag`` (send the three as one ``sendmsg`` vector).
    """

    __slots__ = ("_mac", "key_id", "sender", "session", "counter", "_pack")

    def __init__(self, key: bytes, *, session: int, start_counter: int, sender: int = 0, key_id: int = 0) -> None:
        if not 0 <= sender <= 255 or not 0 <= key_id <= 255:
            raise ValueError(f"sender {sender} / key_id {key_id}: want 0..255")
        if not 0 <= session < 2**32:
            raise ValueError(f"session {session}: want a 32-bit value")
        if not 0 <= start_counter < COUNTER_MAX:
            raise ValueError(f"start counter {start_counter}: want a 64-bit value")
        self._mac = Mac(key)
        self.key_id = key_id
        self.sender = sender
        self.session = session
        self.counter = start_counter
        self._pack = HEADER.pack

    def seal(self, packet, now_ms: int, gso: Gso | None = None) -> tuple[bytes, bytes]:
        c = self.counter
        if c >= COUNTER_MAX:  # 2^64 messages: restart with a new session instead of wrapping
            raise OverflowError("overlay counter exhausted; restart the sender")
        self.counter = c + 1
        if gso is None:
            hdr = self._pack(VERSION, 1, self.key_id, self.sender, self.session, c, now_ms, 0, 0, 0, 0, 0)
        else:
            hdr = self._pack(
                VERSION, 1, self.key_id, self.sender, self.session, c, now_ms,
                gso.type, gso.flags, gso.size, gso.csum_start, gso.csum_offset,
            )
        return hdr, self._mac.tag(hdr, packet)


class _SenderState:
    """What a receiver remembers about one (peer, sender index)."""

    __slots__ = ("session", "window", "newest_ms")

    def __init__(self, window: int) -> None:
        self.session: int | None = None
        self.window = ReplayWindow(window)
        self.newest_ms = -1


@dataclass(frozen=True, slots=True)
class Opened:
    """An accepted message: the packet (a memoryview into the datagram) and its metadata."""

    packet: memoryview
    gso: Gso | None
    sender: int
    session: int
    counter: int


class Opener:
    """The receiving half for one peer: verifies tag, freshness and replay.

    ``keys`` maps key_id to key bytes.  ``not_before_ms`` is the receiver's
    own start time: messages stamped earlier are stale.  Per sender index the
    state is bounded (256 indices at most, each one :class:`ReplayWindow`).
    """

    def __init__(
        self,
        keys: dict[int, bytes],
        *,
        not_before_ms: int,
        max_age_ms: int = DEFAULT_MAX_AGE_MS,
        window: int = DEFAULT_WINDOW,
    ) -> None:
        self._macs = {k: Mac(v) for k, v in keys.items()}
        self.not_before_ms = not_before_ms
        self.max_age_ms = max_age_ms
        self._window = window
        self._senders: dict[int, _SenderState] = {}
        self._unpack = HEADER.unpack_from

    def open(self, datagram, now_ms: int) -> Opened:
        """Check one datagram; return the packet or raise :class:`OverlayError`."""
        mv = datagram if isinstance(datagram, memoryview) else memoryview(datagram)
        n = len(mv)
        if n < OVERHEAD:
            raise OverlayError(DropReason.TRUNCATED, f"{n} bytes, a message needs at least {OVERHEAD}")
        (version, mtype, key_id, sender, session, counter, ts, gtype, gflags, gsize, cstart, coff) = self._unpack(mv)
        if version != VERSION:
            raise OverlayError(DropReason.VERSION, f"version {version}, want {VERSION}")
        if mtype != 1:
            raise OverlayError(DropReason.TYPE, f"message type {mtype}")
        mac = self._macs.get(key_id)
        if mac is None:
            raise OverlayError(DropReason.UNKNOWN_KEY, f"key id {key_id} is not configured")
        if ts < self.not_before_ms or abs(now_ms - ts) > self.max_age_ms:
            raise OverlayError(DropReason.STALE, f"timestamp {ts} ms, now {now_ms} ms")
        st = self._senders.get(sender)
        if st is not None:
            if session == st.session:
                if not st.window.check(counter):
                    raise OverlayError(DropReason.REPLAY, f"sender {sender} counter {counter} already seen or too old")
            elif ts <= st.newest_ms:
                raise OverlayError(DropReason.REPLAY, f"sender {sender} session {session:#x} is older than the current one")
        body = mv[HEADER.size : n - TAG_LEN]
        if not hmac.compare_digest(mac.tag(mv[: HEADER.size], body), mv[n - TAG_LEN :]):
            raise OverlayError(DropReason.BAD_MAC, f"tag does not verify (key id {key_id})")
        if st is None:
            st = self._senders[sender] = _SenderState(self._window)
        if session != st.session:  # first message, or the sender restarted
            st.session = session
            st.window.reset()
        st.window.update(counter)
        if ts > st.newest_ms:
            st.newest_ms = ts
        gso = None if (gtype | gflags | gsize | cstart | coff) == 0 else Gso(gtype, gflags, gsize, cstart, coff)
        return Opened(body, gso, sender, session, counter)

    def forget(self) -> None:
        """Drop all replay state (as a restart would); ``not_before_ms`` still protects."""
        self._senders.clear()


def seal_datagram(sealer: Sealer, packet, now_ms: int, gso: Gso | None = None) -> bytes:
    """Convenience for tests and tools: the whole datagram as one bytes object."""
    hdr, tag = sealer.seal(packet, now_ms, gso)
    return b"".join((hdr, bytes(packet), tag))
