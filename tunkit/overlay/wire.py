"""The tunkit overlay wire format: header codec, sealing and opening, trains and freshness rules; pure, no I/O.

A message is one IP packet (or a whole TSO/USO super-packet, see ``gso_*``
below) followed by a 16-byte tag.  A message that fits one datagram travels
as ``DATA``: a 36-byte header, then the message::

    +--------------------+---------------------------------+---------+
    | header (36 bytes)  | IP packet or super-packet       | tag (16)|
    +--------------------+---------------------------------+---------+
    |<------------------ covered by the tag --------------->|

A bigger message (a super-packet) travels as a *train* of ``FRAG``
datagrams, each a copy of the first header (only ``frag_index`` differs)
followed by the next slice of the message.  All datagrams of a train but the
last have the same size, so the sender hands the whole train to the kernel
in one ``sendmsg`` with ``UDP_SEGMENT``; it stays one GSO packet through
veth, bridges and NICs that can, and a receiver with ``UDP_GRO`` usually
reads it back in one ``recvmsg``.  The tag covers the first header and the
whole packet.  Until that tag verifies, a train's fragments are
unauthenticated, so the receiver bounds what they may hold per peer (a few
trains and bytes, for about a second; see :class:`Opener`), keys each train by
its whole first header, and never lets a forged fragment cancel a train.

The tag is HMAC-SHA256 truncated to 128 bits (RFC 4868's HMAC-SHA-256-128)
over header and packet, keyed by a 32-byte pre-shared key.  HMAC-SHA256 was
measured against keyed BLAKE2b on this machine (see docs/tunnel.md): BLAKE2b
wins only below ~256 bytes; from 1,400 bytes up HMAC-SHA256 (SHA-NI) is 1.2x
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

(Why this module is over 600 lines: the header layout, the sealer and the
opener with its bounded train store are one security boundary that shares
the layout's private offsets; they are read and reviewed together.  The MAC
and the replay window live in :mod:`tunkit.overlay.auth`.)
"""

from __future__ import annotations

import enum
import functools
import hmac
import struct
from dataclasses import dataclass
from typing import NamedTuple

from tunkit.errors import DecodeError
from tunkit.packet.offload import VirtioNetHdr
from tunkit.overlay.auth import DEFAULT_WINDOW, TAG_LEN, Mac, ReplayWindow
from tunkit.overlay.auth import KEY_LEN as KEY_LEN  # re-exported: spec and keyfile take the key length from here

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
    "B"  # 32 frag_index: this datagram's place in its train (0 for DATA)
    "B"  # 33 frag_count: datagrams in the train (1 for DATA, 2..MAX_FRAGS for FRAG)
    "H"  # 34 reserved: 0
)
_FRAG_INDEX = 32  # offset of frag_index: the only byte in which a train's headers differ
_INDEXES = bytes(range(256))  # frag_index values 0, 1, 2, ... (sliced; no per-datagram bytes objects)
_FRAGS = bytes([2]) * 256  # the type byte of a run of FRAG datagrams
MAX_FRAGS = 64  # the kernel sends at most 64 segments per UDP_SEGMENT call
OVERHEAD = HEADER.size + TAG_LEN  # per-message bytes added to the IP packet (52)
DEFAULT_MTU = 1300  # inner MTU of the overlay unless configured (nebula's default tun.mtu)

COUNTER_MAX = 2**64 - 1
DEFAULT_MAX_AGE_MS = 10_000  # how far a timestamp may be from the receiver's clock
# Unauthenticated input a peer can make one Opener hold (fragments before the train's tag verifies):
MAX_PENDING_TRAINS = 8  # unfinished trains
MAX_PENDING_BYTES = 512 * 1024  # bytes they reserve (frag_count x first datagram size each)
TRAIN_TTL_MS = 1000  # an unfinished train older than this (receiver's clock) is dropped
MAX_CANDIDATES = 2  # trains sharing one first header (a forged twin) kept until one authenticates
_NEVER = float("inf")


class MsgType(enum.IntEnum):
    """The ``type`` byte."""

    DATA = 1  # a whole message in one datagram
    FRAG = 2  # one datagram of a train carrying a bigger message


class DropReason(enum.Enum):
    """Why :meth:`Opener.open` refused a datagram (the ``reason`` of :class:`OverlayError`)."""

    TRUNCATED = "truncated"  # shorter than header + tag
    VERSION = "version"  # unknown version byte
    TYPE = "type"  # unknown message type
    UNKNOWN_KEY = "unknown_key"  # key_id not configured for this peer
    STALE = "stale"  # timestamp outside max_age_ms, or before the receiver started
    REPLAY = "replay"  # counter seen, too old for the window, or an older session
    BAD_MAC = "bad_mac"  # the tag does not verify (wrong key, tampering, garbage)
    FRAGMENT = "fragment"  # a train fragment that continues no train, or a duplicate first fragment
    FRAG_BUDGET = "frag_budget"  # a new train while the peer's unfinished trains use their whole budget


class OverlayError(DecodeError):
    """A datagram the overlay refuses; ``reason`` is a :class:`DropReason`."""

    def __init__(self, reason: DropReason, message: str) -> None:
        super().__init__(f"{reason.value}: {message}")
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Header:
    """A decoded header; ``gso`` is None for a plain packet whose flags are 0."""

    type: MsgType
    key_id: int
    sender: int
    session: int
    counter: int
    timestamp_ms: int
    gso: VirtioNetHdr | None = None  # flags, gso_type, gso_size, csum_start, csum_offset (hdr_len 0)
    frag_index: int = 0
    frag_count: int = 1
    version: int = VERSION

    def encode(self) -> bytes:
        g = self.gso or _NO_GSO
        return HEADER.pack(
            self.version, self.type, self.key_id, self.sender, self.session, self.counter,
            self.timestamp_ms, g.gso_type, g.flags, g.gso_size, g.csum_start, g.csum_offset,
            self.frag_index, self.frag_count, 0,
        )

    @classmethod
    def decode(cls, buf, offset: int = 0) -> "Header":
        """Decode the header at ``offset``; raises :class:`OverlayError` (TRUNCATED/VERSION/TYPE/FRAGMENT)."""
        if len(buf) - offset < HEADER.size:
            raise OverlayError(DropReason.TRUNCATED, f"{len(buf) - offset} bytes, header needs {HEADER.size}")
        (version, mtype, key_id, sender, session, counter, ts, gtype, gflags, gsize, cstart, coff, index, count,
         _reserved) = HEADER.unpack_from(buf, offset)
        if version != VERSION:
            raise OverlayError(DropReason.VERSION, f"version {version}, want {VERSION}")
        try:
            mtype = MsgType(mtype)
        except ValueError:
            raise OverlayError(DropReason.TYPE, f"message type {mtype}") from None
        _check_frag(mtype, index, count)
        return cls(mtype, key_id, sender, session, counter, ts, _gso_of(gtype, gflags, gsize, cstart, coff), index, count,
                   version)


def _check_frag(mtype: int, index: int, count: int) -> None:
    if mtype == MsgType.DATA:
        if index != 0 or count != 1:
            raise OverlayError(DropReason.FRAGMENT, f"DATA with fragment {index}/{count}")
    elif not (2 <= count <= MAX_FRAGS and index < count):
        raise OverlayError(DropReason.FRAGMENT, f"fragment {index}/{count}")


_NO_GSO = VirtioNetHdr()


# ---------------------------------------------------------------------------
# Sealing and opening
# ---------------------------------------------------------------------------
class Sealer:
    """The sending half for one key: numbers, stamps and tags messages.

    ``seal(packet, now_ms)`` returns ``(header, tag)``; the datagram is
    ``header + packet + tag`` (send the three as one ``sendmsg`` vector).
    ``seal_train(...)`` cuts a bigger message into a train and returns the
    ``sendmsg`` vector and the segment size for ``UDP_SEGMENT``.
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

    def _next(self) -> int:
        c = self.counter
        if c >= COUNTER_MAX:  # 2^64 messages: restart with a new session instead of wrapping
            raise OverflowError("overlay counter exhausted; restart the sender")
        self.counter = c + 1
        return c

    def seal(self, packet, now_ms: int, gso: VirtioNetHdr | None = None) -> tuple[bytes, bytes]:
        c = self.counter
        if c >= COUNTER_MAX:  # as _next(), inline: this runs once per packet
            raise OverflowError("overlay counter exhausted; restart the sender")
        self.counter = c + 1
        if gso is None:
            hdr = self._pack(VERSION, 1, self.key_id, self.sender, self.session, c, now_ms, 0, 0, 0, 0, 0, 0, 1, 0)
        else:
            flags, gtype, _, size, start, off = gso
            hdr = self._pack(VERSION, 1, self.key_id, self.sender, self.session, c, now_ms, gtype, flags, size, start, off,
                             0, 1, 0)
        return hdr, self._mac.tag2(hdr, packet)

    def seal_train(self, packet, now_ms: int, gso: VirtioNetHdr | None, max_datagram: int) -> tuple[list, int]:
        """Cut ``packet`` + tag into datagrams of at most ``max_datagram`` bytes.

        Returns ``(datagrams, segment_size)``: per datagram, its buffers
        (header, packet slice, tag or part of it; no copy of the packet), and
        the size of every datagram but the last.  Raises ``ValueError`` if
        the message needs more than :data:`MAX_FRAGS` datagrams.
        """
        chunk = max_datagram - HEADER.size
        total = len(packet) + TAG_LEN
        count = -(-total // chunk)
        if count < 2:
            hdr, tag = self.seal(packet, now_ms, gso)
            return [[hdr, packet, tag]], HEADER.size + total
        if count > MAX_FRAGS or chunk <= TAG_LEN:
            raise ValueError(f"a {len(packet)}-byte packet needs {count} datagrams of {max_datagram} (max {MAX_FRAGS})")
        g = gso or _NO_GSO
        h0 = self._pack(
            VERSION, 2, self.key_id, self.sender, self.session, self._next(), now_ms,
            g.gso_type, g.flags, g.gso_size, g.csum_start, g.csum_offset, 0, count, 0,
        )
        tag = self._mac.tag(h0, packet)
        mv = packet if isinstance(packet, memoryview) else memoryview(packet)
        n = len(mv)
        hs = HEADER.size
        # all the train's headers in one buffer: copies of h0 with frag_index set by one slice assignment
        heads = bytearray(h0 * count)
        heads[_FRAG_INDEX::hs] = _INDEXES[:count]
        hv = memoryview(heads)
        full = n // chunk  # datagrams that hold packet bytes only
        out: list[list[bytes | memoryview]] = [
            [hv[h : h + hs], mv[p : p + chunk]] for h, p in zip(range(0, full * hs, hs), range(0, n - chunk + 1, chunk))
        ]
        for i in range(full, count):
            head = hv[i * hs : (i + 1) * hs]
            start = i * chunk
            end = start + chunk
            if start < n:  # the packet's tail, then as much of the tag as belongs here
                out.append([head, mv[start:n], tag[: end - n]])
            else:
                out.append([head, tag[start - n : end - n]])
        return out, HEADER.size + chunk


class _SenderState:
    """What a receiver remembers about one (peer, sender index): session, replay window, newest timestamp."""

    __slots__ = ("session", "window", "newest_ms")

    def __init__(self, window: int) -> None:
        self.session: int | None = None
        self.window = ReplayWindow(window)
        self.newest_ms = -1


class _Train:
    """One unfinished train (a candidate: several may share a first header until one authenticates)."""

    __slots__ = ("head", "parts", "next", "reserved", "seg", "started_ms", "fields")

    def __init__(self, head: bytes, first, reserved: int, started_ms: int, fields: tuple, seg: int) -> None:
        self.head = head  # the first datagram's header (frag_index 0): the key, and what the tag covers
        self.parts = [first]
        self.next = 1  # the frag_index this candidate takes next
        self.reserved = reserved  # bytes charged to the budget: frag_count x the first datagram's size
        self.seg = seg  # the first datagram's size: no later one may be bigger (the reservation holds)
        self.started_ms = started_ms  # receiver's clock at fragment 0
        self.fields = fields  # (key_id, sender, session, counter, ts, gso)


class Opened(NamedTuple):
    """An accepted message: the packet as a list of buffers (one for DATA), and its metadata.

    The buffers are memoryviews into the datagram(s) (or copies made by
    :meth:`Opener.stabilise`); write them with one ``writev``.  A NamedTuple
    (cheap to make: one per received datagram).
    """

    parts: list
    length: int
    gso: VirtioNetHdr | None
    sender: int
    session: int
    counter: int

    @property
    def packet(self) -> bytes | memoryview:
        """The packet in one buffer (joins a train's parts: a copy)."""
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


@functools.lru_cache(maxsize=256)  # bounded: a peer chooses these fields
def _gso_of(gtype: int, gflags: int, gsize: int, cstart: int, coff: int) -> VirtioNetHdr | None:
    """The header fields of a message as one value (None: a plain packet); checked by the caller."""
    if not (gtype | gflags | gsize | cstart | coff):
        return None
    return VirtioNetHdr(gflags, gtype, 0, gsize, cstart, coff)


class Opener:
    """The receiving half for one peer: verifies tag, freshness and replay; reassembles trains.

    ``keys`` maps key_id to key bytes.  ``not_before_ms`` is the receiver's
    own start time (or the reload that made this opener): messages stamped
    earlier are stale.  State is bounded: per sender index (256 at most, made
    only once a tag verified) one :class:`ReplayWindow`; unfinished trains,
    whose fragments are not authenticated until the last one arrives, at most
    ``max_trains`` holding ``max_train_bytes`` (charged as frag_count times
    the first datagram's size when a train starts) for ``train_ttl_ms``.
    A train is keyed by its whole first header, so a forged first fragment
    starts a train of its own (or is refused when the budget is spent) and
    never cancels one in progress; a fragment that does not continue any
    train is dropped alone.  Trains are dropped only when they authenticate,
    fail their tag, or expire (counted in :attr:`expired`).
    """

    def __init__(
        self,
        keys: dict[int, bytes],
        *,
        not_before_ms: int,
        max_age_ms: int = DEFAULT_MAX_AGE_MS,
        window: int = DEFAULT_WINDOW,
        max_trains: int = MAX_PENDING_TRAINS,
        max_train_bytes: int = MAX_PENDING_BYTES,
        train_ttl_ms: int = TRAIN_TTL_MS,
    ) -> None:
        self._macs = {k: Mac(v) for k, v in keys.items()}
        self.not_before_ms = not_before_ms
        self.max_age_ms = max_age_ms
        self._window = window
        self._senders: dict[int, _SenderState] = {}
        self._unpack = HEADER.unpack_from
        self.pending = False  # some train holds views into a receive buffer (see stabilise)
        self.max_trains, self.max_train_bytes, self.train_ttl_ms = max_trains, max_train_bytes, train_ttl_ms
        self._trains: dict[bytes, list[_Train]] = {}  # first header -> candidates, oldest first
        self.train_count = 0
        self.train_bytes = 0  # reserved by unfinished trains
        self.expired = 0  # trains dropped unfinished after train_ttl_ms
        self._next_expiry = _NEVER  # receiver time (ms) after which the oldest train has expired

    def _admit(self, key_id, sender, session, counter, ts, now_ms):
        """Checks before the tag: key, freshness, replay.  Returns (mac, state or None)."""
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
        return mac, st

    def _accept(self, st, sender, session, counter, ts) -> None:
        """After the tag verified: record the counter (and a sender restart)."""
        if st is None:
            st = self._senders[sender] = _SenderState(self._window)
        if session != st.session:  # first message, or the sender restarted
            st.session = session
            st.window.reset()
        st.window.update(counter)
        if ts > st.newest_ms:
            st.newest_ms = ts

    def open(self, datagram, now_ms: int) -> Opened | None:
        """Check one datagram; the message, ``None`` (a train is not complete yet), or :class:`OverlayError`."""
        mv = datagram if isinstance(datagram, memoryview) else memoryview(datagram)
        n = len(mv)
        if n < HEADER.size + 1:
            raise OverlayError(DropReason.TRUNCATED, f"{n} bytes, a datagram needs more than {HEADER.size}")
        (version, mtype, key_id, sender, session, counter, ts, gtype, gflags, gsize, cstart, coff, index, count,
         _reserved) = self._unpack(mv)
        if version != VERSION:
            raise OverlayError(DropReason.VERSION, f"version {version}, want {VERSION}")
        if mtype == 1:
            if index != 0 or count != 1:
                raise OverlayError(DropReason.FRAGMENT, f"DATA with fragment {index}/{count}")
            if n < OVERHEAD:
                raise OverlayError(DropReason.TRUNCATED, f"{n} bytes, a message needs at least {OVERHEAD}")
            mac, st = self._admit(key_id, sender, session, counter, ts, now_ms)
            body = mv[HEADER.size : n - TAG_LEN]
            if not hmac.compare_digest(mac.tag2(mv[: HEADER.size], body), mv[n - TAG_LEN :]):
                raise OverlayError(DropReason.BAD_MAC, f"tag does not verify (key id {key_id})")
            self._accept(st, sender, session, counter, ts)
            gso = _gso_of(gtype, gflags, gsize, cstart, coff) if gtype | gflags | gsize | cstart | coff else None
            return Opened([body], n - OVERHEAD, gso, sender, session, counter)
        if mtype != 2:
            raise OverlayError(DropReason.TYPE, f"message type {mtype}")
        _check_frag(mtype, index, count)
        fields = (key_id, sender, session, counter, ts, _gso_of(gtype, gflags, gsize, cstart, coff))
        if index == 0:
            self._start_train(mv, fields, count, now_ms)
            return None
        return self._fragment(mv, index, count, now_ms)[0]

    # -- trains -------------------------------------------------------------------------------
    def _expire(self, now_ms: int) -> None:
        self._next_expiry = _NEVER
        for key, cands in list(self._trains.items()):
            keep = [t for t in cands if now_ms - t.started_ms <= self.train_ttl_ms]
            for t in cands:
                if t not in keep:
                    self._release(t)
                    self.expired += 1
            if keep:
                self._trains[key] = keep
                self._next_expiry = min(self._next_expiry, *(t.started_ms + self.train_ttl_ms for t in keep))
            else:
                del self._trains[key]

    def _release(self, t: _Train) -> None:
        self.train_count -= 1
        self.train_bytes -= t.reserved

    def _start_train(self, mv, fields, count: int, now_ms: int) -> _Train:
        key_id, sender, session, counter, ts, _g = fields
        if now_ms > self._next_expiry:
            self._expire(now_ms)
        self._admit(key_id, sender, session, counter, ts, now_ms)
        head = bytes(mv[: HEADER.size])
        cands = self._trains.get(head)
        if cands is not None and len(cands) >= MAX_CANDIDATES:
            raise OverlayError(DropReason.FRAGMENT, f"sender {sender}: first fragment of counter {counter} seen already")
        reserve = count * len(mv)
        if self.train_count >= self.max_trains or self.train_bytes + reserve > self.max_train_bytes:
            raise OverlayError(DropReason.FRAG_BUDGET, f"{self.train_count} unfinished trains hold "
                               f"{self.train_bytes} bytes (at most {self.max_trains} / {self.max_train_bytes})")
        t = _Train(head, mv[HEADER.size :], reserve, now_ms, fields, len(mv))
        self._trains.setdefault(head, []).append(t)
        if now_ms + self.train_ttl_ms < self._next_expiry:
            self._next_expiry = now_ms + self.train_ttl_ms
        self.train_count += 1
        self.train_bytes += reserve
        self.pending = True
        return t

    def _fragment(self, mv, index: int, count: int, now_ms: int) -> tuple[Opened | None, _Train | None]:
        """A fragment after the first: extend the candidate(s) waiting for it; never cancels a train.

        Returns ``(message, None)`` when a train completed, else ``(None, a candidate that took it)``.
        """
        if now_ms > self._next_expiry:
            self._expire(now_ms)
        head = bytes(mv[:_FRAG_INDEX]) + b"\0" + bytes(mv[_FRAG_INDEX + 1 : HEADER.size])
        cands = self._trains.get(head, ())
        n = len(mv)  # no bigger than the train's first datagram: what its reservation counted
        takers = [t for t in cands if t.next == index and n <= t.seg]
        if not takers:
            have = next((t for t in cands if t.next > index and n <= t.seg), None)
            if have is None or len(cands) >= MAX_CANDIDATES or self.train_count >= self.max_trains or (
                self.train_bytes + have.reserved > self.max_train_bytes
            ):
                raise OverlayError(DropReason.FRAGMENT, f"fragment {index}/{count} continues no train")
            # a second fragment of this index: keep both until one authenticates
            fork = _Train(head, None, have.reserved, have.started_ms, have.fields, have.seg)
            fork.parts = have.parts[:index]
            self._trains[head].append(fork)
            self.train_count += 1
            self.train_bytes += fork.reserved
            takers = [fork]
        body = mv[HEADER.size :]
        for t in takers:
            t.parts.append(body)
            t.next = index + 1
        self.pending = True
        if index + 1 < count:
            return None, takers[0]
        err = None
        for t in takers:
            try:
                return self._finish_train(t), None
            except OverlayError as e:  # a forged candidate: the others still may verify
                err = e
        assert err is not None  # takers is never empty: every candidate failed
        raise err

    def _finish_train(self, t: _Train) -> Opened:
        """The last fragment arrived: split off the tag (it may straddle two parts) and check it.

        ``t`` and its fellow candidates leave the store; if ``t`` fails, the others go back.
        """
        cands = self._trains.pop(t.head, None) or ()
        for c in cands:
            self.train_count -= 1
            self.train_bytes -= c.reserved
        try:
            return self._verify_train(t)
        except OverlayError:
            others = [c for c in cands if c is not t]
            if others:
                self._trains[t.head] = others
                self.train_count += len(others)
                self.train_bytes += sum(c.reserved for c in others)
            raise

    def _verify_train(self, t: _Train) -> Opened:
        key_id, sender, session, counter, ts, gso = t.fields
        parts = t.parts
        mac = self._macs.get(key_id)
        tag = b""
        while len(tag) < TAG_LEN and parts:
            last = parts[-1]
            need = TAG_LEN - len(tag)
            if len(last) > need:
                tag = bytes(last[len(last) - need :]) + tag
                parts[-1] = last[: len(last) - need]
            else:
                tag = bytes(last) + tag
                parts.pop()
        if mac is None or len(tag) < TAG_LEN or not parts:
            raise OverlayError(DropReason.TRUNCATED, f"sender {sender}: train too short")
        if not hmac.compare_digest(mac.tag(t.head, *parts), tag):
            raise OverlayError(DropReason.BAD_MAC, f"train tag does not verify (key id {key_id})")
        st = self._senders.get(sender)
        # the admission checks ran for fragment 0; the window may have moved since (another train)
        if st is not None and session == st.session and not st.window.check(counter):
            raise OverlayError(DropReason.REPLAY, f"sender {sender} counter {counter} already seen")
        self._accept(st, sender, session, counter, ts)
        return Opened(parts, sum(map(len, parts)), gso, sender, session, counter)

    def open_frags(self, block: memoryview, seg: int, now_ms: int) -> tuple[Opened | None, int]:
        """Take the consecutive fragments of one train at the start of ``block``.

        ``block`` is a ``UDP_GRO`` read cut every ``seg`` bytes, starting with
        a FRAG datagram.  The first datagram is checked in full; the ones that
        follow it in the block are taken by position (type and index bytes
        checked) while they continue the train: the tag over the whole train
        is what vouches for their contents.  Returns ``(message or None,
        bytes consumed)``; raises :class:`OverlayError` for a bad first
        datagram (the caller skips ``seg`` bytes).
        """
        n = len(block)
        first = block[: min(seg, n)]
        if len(first) < HEADER.size + 1:
            raise OverlayError(DropReason.TRUNCATED, f"{len(first)} bytes, a datagram needs more than {HEADER.size}")
        (version, mtype, key_id, sender, session, counter, ts, gtype, gflags, gsize, cstart, coff, index, count,
         _reserved) = self._unpack(first)
        if version != VERSION:
            raise OverlayError(DropReason.VERSION, f"version {version}, want {VERSION}")
        if mtype != 2:
            raise OverlayError(DropReason.TYPE, f"message type {mtype} where a fragment was expected")
        _check_frag(mtype, index, count)
        t: _Train | None
        if index == 0:
            fields = (key_id, sender, session, counter, ts, _gso_of(gtype, gflags, gsize, cstart, coff))
            t = self._start_train(first, fields, count, now_ms)
        else:
            got, t = self._fragment(first, index, count, now_ms)
            if t is None:
                return got, len(first)
        off = len(first)
        parts = t.parts
        nxt = t.next
        hsize = HEADER.size
        k = min(count - nxt, (n - off) // seg)  # whole datagrams left in the block that the train may take
        if k > 1:  # check their type and index bytes with two strided slices, not one by one
            stop = off + k * seg
            if bytes(block[off + 1 : stop : seg]) == _FRAGS[:k] and bytes(block[off + _FRAG_INDEX : stop : seg]) == _INDEXES[nxt : nxt + k]:
                body = seg - hsize
                parts += [block[a : a + body] for a in range(off + hsize, stop, seg)]
                nxt += k
                off = stop
        while off < n and nxt < count:
            end = off + seg if off + seg < n else n
            if end - off <= hsize or block[off + 1] != 2 or block[off + _FRAG_INDEX] != nxt:
                break
            parts.append(block[off + hsize : end])
            nxt += 1
            off = end
        if nxt > t.next:
            for other in self._trains.get(t.head, ()):  # candidates at the same place take the same parts
                if other is not t and other.next == t.next:
                    other.parts += parts[t.next :]
                    other.next = nxt
        t.next = nxt
        if nxt < count:
            return None, off
        return self._finish_train(t), off

    def stabilise(self) -> None:
        """Copy unfinished trains' parts out of the receive buffer before it is reused."""
        if not self.pending:
            return
        for cands in self._trains.values():
            for t in cands:
                t.parts = [p if type(p) is bytes else bytes(p) for p in t.parts]
        self.pending = False

    def forget(self) -> None:
        """Drop all replay state and unfinished trains (as a restart would); ``not_before_ms`` still protects."""
        self._senders.clear()
        self._trains.clear()
        self.train_count = self.train_bytes = 0
        self._next_expiry = _NEVER


def seal_datagram(sealer: Sealer, packet, now_ms: int, gso: VirtioNetHdr | None = None) -> bytes:
    """Convenience for tests and tools: the whole datagram as one bytes object."""
    hdr, tag = sealer.seal(packet, now_ms, gso)
    return b"".join((hdr, bytes(packet), tag))


def split_train(datagrams: list, segment: int) -> list[bytes]:
    """The datagrams a ``seal_train`` result becomes on the wire (what ``UDP_SEGMENT`` does), as bytes."""
    out = [b"".join(bytes(b) for b in d) for d in datagrams]
    if any(len(d) != segment for d in out[:-1]) or len(out[-1]) > segment:
        raise ValueError("datagrams of a train must all be the segment size but the last")
    return out
