"""tunkit's negotiated WireGuard extension: offers, super-packet trains, small-packet batches; pure, no I/O.

A mixin of :class:`tunkit.wireguard.engine.Engine`.  Two tunkit engines find
each other inside an established session (a sealed offer in a message type
WireGuard does not define, which WireGuard implementations drop unread) and
then carry super-packets (up to 64 KB, with their GSO metadata) sealed once
as a train of equal-sized datagrams.  A peer that never offers (any real
WireGuard peer) keeps getting standard transport messages; ``set_plain(peer,
True)`` pins a peer so that it never receives an extension message at all.

    batch = eng.seal_super_into(peer, buf, length, meta, now)   # packet at buf[SUPER_HEADROOM:]
    sock.sendmsg([buf[:batch.size]], [(SOL_UDP, UDP_SEGMENT, batch.segment)], 0, peer.endpoint)
    for sp in eng.receive_block(gro_block, gro_segment, src, now):
        tun.write(sp.meta, sp.packet)          # meta None: a standard transport message's packet

Wire format and security argument: docs/wireguard-extension.md.

Why one module of over 600 lines: the offer, the train sealer and the bounded reassembly are
one mechanism with one security argument (docs/wireguard-extension.md); the wire layouts live in
:mod:`tunkit.wireguard.train`.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import NamedTuple

from tunkit.errors import DecodeError
from tunkit.packet.offload import ZERO_HDR, VirtioNetHdr, gso_split
from tunkit.wireguard.constants import (KEEPALIVE_TIMEOUT, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME,
                                        REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME, REKEY_TIMEOUT)
from tunkit.wireguard.peer import Keypair, Peer
from tunkit.wireguard.train import (CONTROL_BODY, CONTROL_HEADER, CONTROL_SIZE, EXT_TYPES, FLAG_ACK, FLAG_TRAINS,
                                    FRAGMENT, FRAGMENT_HEADER_SIZE, MAGIC, MAX_BODY, MSG_EXT_CONTROL, MSG_EXT_TRAIN,
                                    RECORD, RECORD_SIZE, TAG, VERSION, Train, check_meta, fresh, parse_fragment,
                                    shape_for)

__all__ = ["ExtensionMixin", "SuperPacket", "Batch", "EXT_DROP_REASONS", "SUPER_HEADROOM", "SUPER_BUFFER",
           "TRAIN_TIMEOUT", "MAX_PENDING_TRAINS", "MAX_PENDING_BYTES", "ENGINE_PENDING_BYTES", "OFFER_ATTEMPTS"]

EXT_DROP_REASONS = (
    "ext_disabled",      # an extension message for a peer pinned to plain, an engine with it off, or a
                         # train on a session where we made no offer
    "train_malformed",   # a fragment whose header, shape or length is inconsistent
    "train_replayed",    # a fragment or train whose counter the session's window already has or left behind
    "train_duplicate",   # an identical copy of a fragment already held
    "train_conflict",    # a differing copy of a held fragment (kept as the train's one alternate, if room)
    "train_table_full",  # a fragment of a new train while the peer (or engine) holds its limit
    "train_timeout",     # an incomplete train thrown away after TRAIN_TIMEOUT
    "train_decrypt",     # a complete train (or its alternate) whose tag does not verify
    "bad_gso",           # GSO metadata that does not fit its packet (either direction)
    "bad_record",        # an authenticated train whose records do not add up
    "delivered_full",    # a super-packet lost because pop_super_packets() was not called
)

SUPER_HEADROOM = FRAGMENT_HEADER_SIZE + RECORD_SIZE  # 36: where seal_super_into expects the packet
SUPER_BUFFER = 256 * 1024   # enough for any super-packet in either form (train or plain fallback)
TRAIN_TIMEOUT = 0.5         # seconds an incomplete train is held
MAX_PENDING_TRAINS = 8      # incomplete trains per peer
MAX_PENDING_BYTES = 4 * MAX_BODY          # unauthenticated bytes per peer (alternates included)
ENGINE_PENDING_BYTES = 16 * 1024 * 1024   # unauthenticated bytes over all peers
OFFER_ATTEMPTS = 3          # offers per session to a peer that has not answered (a WireGuard peer never does)
OFFER_RETRY = 1.0           # seconds between them (times the attempt number)
MAX_DELIVERED = 4096        # super-packets queued for pop_super_packets()
_IP16 = struct.Struct("!H")  # IPv4 total length / IPv6 payload length
_INDEXES = bytes(range(128))  # the low index bytes of a whole train (the high bytes are 0: count <= 128)


class SuperPacket(NamedTuple):
    """A delivered inner packet: ``meta`` is its checked GSO metadata, or None for a standard transport message."""
    packet: memoryview
    meta: VirtioNetHdr | None


class Batch(NamedTuple):
    """Datagrams sealed into one buffer: ``buf[offset:offset+size]``, each ``segment`` bytes but the last.

    ``train``: one extension train (else standard transport messages);
    ``taken``: how many of the given packets went in (call again for the rest).
    """
    segment: int
    count: int
    size: int
    train: bool
    taken: int


class _KpExt:
    """Extension state of one session (keypair)."""
    __slots__ = ("offers", "remote", "ack_sent", "next_try")

    def __init__(self) -> None:
        self.offers = 0        # offers we sent on this session
        self.remote = False    # the peer offered trains on this session: we may send them
        self.ack_sent = False  # one of our offers carried FLAG_ACK
        self.next_try = 0.0


def _pad(n: int, mtu: int) -> int:
    p = (n + 15) & ~15
    if p > mtu:
        p = n if n > mtu else mtu
    return p


class ExtensionMixin:
    """The extension half of the engine; see the module docstring and docs/wireguard-extension.md."""

    def _ext_init(self) -> None:
        self.extension = False   # opt in (a data path that sends trains sets True); False: never offers, drops them all
        self.train_segment: int | None = None   # datagram size of trains (None: mtu + 32, a full transport message)
        self.super_packets: deque = deque()     # trains completed through receive()
        self._ext_held = 0                      # unauthenticated train bytes over all peers
        self.ext_drops = dict.fromkeys(EXT_DROP_REASONS, 0)   # the extension's own reasons (drops has the rest)

    def _xdrop(self, reason: str, count: int = 1) -> None:
        self.ext_drops[reason] += count

    # ------------------------------------------------------------- configuration

    def set_plain(self, peer: Peer, plain: bool = True, now: float | None = None) -> None:
        """Pin ``peer`` to plain WireGuard (it never receives an extension message), or release the pin.

        Pinning takes effect at once for what we send (no train, no offer); the
        peer's trains on sessions negotiated before still open, and with
        ``now`` a new handshake starts at once: its session has no offer from
        us, so the peer falls back to plain without losing anything.
        Releasing the pin takes effect with the next session: at once (a new
        handshake) if ``now`` is given.
        """
        peer.plain = bool(plain)
        if plain:
            for kp in peer.keypairs():
                if kp.ext is not None:
                    kp.ext.remote = False   # we send no more trains; trains it sends on these sessions still open
            if now is not None:
                self._initiate(peer, now, force=True)   # the new session carries no offer: it falls back to plain
        elif now is not None:
            self._initiate(peer, now, force=True)   # a new session, negotiated from its start

    def extension_active(self, peer: Peer) -> bool:
        """Whether the next super-packet to ``peer`` goes as a train (the current session negotiated it)."""
        kp = peer.current
        return (kp is not None and kp.ext is not None and kp.ext.remote and self.extension
                and not peer.plain)

    def pop_super_packets(self) -> list:
        out = list(self.super_packets)
        self.super_packets.clear()
        return out

    # ------------------------------------------------------------- sending

    def seal_super_into(self, peer: Peer, buf, length: int, meta: VirtioNetHdr | None, now: float,
                        offset: int = 0) -> Batch | None:
        """Seal one super-packet for ``peer``; the packet is at ``buf[offset+SUPER_HEADROOM:][:length]``.

        ``meta`` is its GSO metadata as read from a vnet-header TUN (None: a
        plain packet with a complete checksum).  With the extension
        negotiated on the current session, the packet is sealed once, in
        place, and spread into a train; otherwise it is segmented
        (``tunkit.packet.offload.gso_split``) and each segment sealed as a standard
        transport message, all of one padded size.  Either way the datagrams
        are ``buf[offset:offset+batch.size]``, ready for one UDP_SEGMENT send
        of ``batch.segment`` (a send carries at most 65,507 bytes on IPv4 and 64
        segments on older kernels: the data path then sends it in slices at
        segment boundaries).  Returns None if it was staged (no session yet) or
        dropped (``bad_gso``).  ValueError if ``buf`` is too small (nothing
        sealed, no counter used); ``SUPER_BUFFER`` bytes always suffice.
        """
        start = offset + SUPER_HEADROOM
        pkt = memoryview(buf)[start:start + length]
        if length < 1 or len(pkt) != length:
            raise ValueError(f"buffer of {len(buf)} bytes has no {length}-byte packet at offset {start}")
        try:
            meta = _check_outbound(ZERO_HDR if meta is None else meta, pkt)
        except DecodeError:
            self._xdrop("bad_gso")
            return None
        kp = peer.current
        if kp is None or peer.endpoint is None or not kp.can_send(now, self.owner):
            for seg in gso_split(meta, pkt):   # check_meta passed, so this cannot raise
                self._no_session(peer, seg, now)
            return None
        if not self.extension_active(peer):
            segs = [bytes(s) for s in gso_split(meta, pkt)]
            return self._seal_plain_run(peer, kp, segs, buf, offset, now, whole=True)
        rs = offset + FRAGMENT_HEADER_SIZE
        shape = shape_for(RECORD_SIZE + length + TAG, self._train_segment())
        if len(buf) < offset + shape.wire_size:
            raise ValueError(f"buffer of {len(buf)} bytes cannot hold a {shape.wire_size}-byte train at {offset}")
        RECORD.pack_into(buf, rs, int(meta.flags), meta.gso_type, meta.hdr_len, meta.gso_size, meta.csum_start,
                         meta.csum_offset, length)
        self._seal_train(peer, kp, buf, offset, RECORD_SIZE + length, shape, now)
        return Batch(shape.segment, shape.count, shape.wire_size, True, 1)

    def seal_batch_into(self, peer: Peer, packets, buf, now: float, offset: int = 0) -> Batch | None:
        """Seal several small IP packets for ``peer`` into ``buf`` as equal-sized datagrams (one UDP_SEGMENT send).

        To a plain peer each packet is a standard transport message, all
        padded to the same length (the receiver trims to the IP length); to an
        extension peer they go together as records of one train (one AEAD
        call).  ``batch.taken`` packets went in (as many as the buffer, one
        train or 64 datagrams hold); seal the rest with another call.  None:
        staged (no session yet; all of them).  ValueError if not even the
        first packet fits.
        """
        packets = list(packets)
        if not packets:
            raise ValueError("seal_batch_into needs at least one packet")
        kp = peer.current
        if kp is None or peer.endpoint is None or not kp.can_send(now, self.owner):
            for p in packets:
                self._no_session(peer, p, now)
            return None
        if not self.extension_active(peer):
            return self._seal_plain_run(peer, kp, packets[:64], buf, offset, now)
        body, taken = 0, 0
        for p in packets:
            if not 1 <= len(p) <= 65535 or body + RECORD_SIZE + len(p) + TAG > MAX_BODY:
                break
            body += RECORD_SIZE + len(p)
            taken += 1
        if not taken:
            raise ValueError(f"packet of {len(packets[0])} bytes cannot be sealed (1..65535)")
        shape = shape_for(body + TAG, self._train_segment())
        if len(buf) < offset + shape.wire_size:
            raise ValueError(f"buffer of {len(buf)} bytes cannot hold a {shape.wire_size}-byte train at {offset}")
        pos = offset + FRAGMENT_HEADER_SIZE
        for p in packets[:taken]:
            n = len(p)
            RECORD.pack_into(buf, pos, 0, 0, 0, 0, 0, 0, n)
            buf[pos + RECORD_SIZE:pos + RECORD_SIZE + n] = p
            pos += RECORD_SIZE + n
        self._seal_train(peer, kp, buf, offset, body, shape, now)
        return Batch(shape.segment, shape.count, shape.wire_size, True, taken)

    def _train_segment(self) -> int:
        return self.train_segment or self.mtu + 32

    def _seal_plain_run(self, peer: Peer, kp: Keypair, packets: list, buf, offset: int, now: float,
                        whole: bool = False) -> Batch:
        """Standard transport messages of one padded size, back to back from ``offset`` (``whole``: all or none)."""
        mtu = self.mtu
        padded = max(_pad(len(p), mtu) for p in packets)
        seg = padded + 32
        fit = min(len(packets), (len(buf) - offset) // seg if offset >= 0 else 0)
        if fit < 1 or (whole and fit < len(packets)):
            raise ValueError(f"buffer of {len(buf)} bytes has no room at offset {offset} for"
                             f" {len(packets) if whole else 1} datagram(s) of {seg} bytes")
        mv = memoryview(buf)
        for i in range(fit):
            p = packets[i]
            n = len(p)
            off = offset + i * seg
            mv[off + 16:off + 16 + n] = p
            if padded > n:
                mv[off + 16 + n:off + 16 + padded] = bytes(padded - n)
            self._seal_with(peer, kp, buf, n, padded, now, off)
        return Batch(seg, fit, fit * seg, False, fit)

    def _seal_train(self, peer: Peer, kp: Keypair, buf, offset: int, plain: int, shape, now: float) -> None:
        """Seal ``plain`` bytes at ``buf[offset+24:]`` once, then spread them into ``shape``'s fragments."""
        counter = kp.send_counter
        kp.send_counter = counter + kp.send_step
        h0 = FRAGMENT.pack(MSG_EXT_TRAIN, kp.remote_index, counter, 0, shape.count, shape.chunk, shape.last)
        kp.send.seal_into(buf, offset + FRAGMENT_HEADER_SIZE, plain, counter, h0)
        mv = memoryview(buf)
        chunk, count = shape.chunk, shape.count
        seg = FRAGMENT_HEADER_SIZE + chunk
        src = offset + FRAGMENT_HEADER_SIZE
        for i in range(count - 1, 0, -1):   # the last first: every move goes forward into free space
            size = shape.last if i == count - 1 else chunk
            d = offset + i * seg + FRAGMENT_HEADER_SIZE
            s = src + i * chunk
            mv[d:d + size] = mv[s:s + size]
        # the headers: one strided write per header byte (not one per fragment); then the indexes
        end = offset + (count - 1) * seg + 1
        for k in range(FRAGMENT_HEADER_SIZE):
            mv[offset + k:end + k:seg] = h0[k:k + 1] * count
        mv[offset + 16:end + 16:seg] = _INDEXES[:count]
        # the same bookkeeping a data message gets (_seal_with)
        peer.tx_bytes += shape.wire_size
        peer.t_keepalive = None
        if peer.t_new_handshake is None:
            self._arm(peer, "t_new_handshake", now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + self._jitter())
        if peer.persistent_keepalive:
            self._arm(peer, "t_persistent", now + peer.persistent_keepalive)
        if kp.send_counter > REKEY_AFTER_MESSAGES or (kp.initiator and now - kp.created > REKEY_AFTER_TIME):
            self._initiate(peer, now)

    def _ext_offer(self, peer: Peer, kp: Keypair, now: float) -> None:
        """Send our offer on ``kp`` (never to a pinned peer, never from an engine with the extension off)."""
        if not self.extension or peer.plain or peer.endpoint is None or not kp.can_send(now, self.owner):
            return
        ext = kp.ext
        if ext is None:
            ext = kp.ext = _KpExt()
        flags = FLAG_TRAINS | (FLAG_ACK if ext.remote else 0)
        out = bytearray(CONTROL_SIZE)
        counter = kp.send_counter
        kp.send_counter = counter + kp.send_step
        CONTROL_HEADER.pack_into(out, 0, MSG_EXT_CONTROL, kp.remote_index, counter)
        CONTROL_BODY.pack_into(out, 16, MAGIC, VERSION, flags, 65535, 0)
        kp.send.seal_into(out, 16, CONTROL_BODY.size, counter, bytes(out[:16]))
        # no timer is touched: to a WireGuard peer this message does not exist, so it must not stand in
        # for a keepalive or count as traffic
        self._emit(out, peer.endpoint)
        peer.tx_bytes += CONTROL_SIZE
        ext.offers += 1
        ext.ack_sent = ext.ack_sent or ext.remote
        if not ext.remote and ext.offers < OFFER_ATTEMPTS:
            ext.next_try = now + OFFER_RETRY * ext.offers
            self._ext_arm(peer, ext.next_try)

    # ------------------------------------------------------------- hooks into the engine

    def _handshake_complete(self, peer: Peer, now: float) -> None:
        super()._handshake_complete(peer, now)
        if self.extension and not peer.plain and peer.current is not None:
            self._ext_offer(peer, peer.current, now)

    def _fire(self, peer: Peer, now: float) -> None:
        super()._fire(peer, now)
        t = peer.t_ext
        if t is None or t > now:
            return
        peer.t_ext = None
        expired = [k for k, tr in peer.trains.items() if tr.deadline <= now]
        if expired:
            self._xdrop("train_timeout", len(expired))
            self._ext_release(peer, expired)
        kp = peer.current
        ext = kp.ext if kp is not None else None
        if (ext is not None and not ext.remote and 0 < ext.offers < OFFER_ATTEMPTS and ext.next_try <= now):
            self._ext_offer(peer, kp, now)
        self._ext_rearm(peer)

    def _ext_rearm(self, peer: Peer) -> None:
        when = [tr.deadline for tr in peer.trains.values()]
        kp = peer.current
        ext = kp.ext if kp is not None else None
        if ext is not None and not ext.remote and 0 < ext.offers < OFFER_ATTEMPTS:
            when.append(ext.next_try)
        if when:
            self._ext_arm(peer, min(when))

    def _ext_arm(self, peer: Peer, when: float) -> None:
        if peer.t_ext is None or when < peer.t_ext:
            self._arm(peer, "t_ext", when)

    def _ext_room(self, peer: Peer, size: int) -> bool:
        """Whether ``size`` more unauthenticated bytes fit the peer's and the engine's limits."""
        if peer.train_bytes + size > MAX_PENDING_BYTES:
            return False
        if self._ext_held + size > ENGINE_PENDING_BYTES:   # recount: a removed peer's trains leave with it
            self._ext_held = sum(p.train_bytes for p in self.peers.values())
        return self._ext_held + size <= ENGINE_PENDING_BYTES

    def _ext_release(self, peer: Peer, keys) -> None:
        for k in keys:
            tr = peer.trains.pop(k, None)
            if tr is not None:
                peer.train_bytes -= tr.held
                self._ext_held -= tr.held

    # ------------------------------------------------------------- receiving

    def receive_block(self, block, segment: int, addr, now: float) -> list:
        """Process a UDP_GRO block (datagrams of ``segment`` bytes, the last maybe shorter) or one datagram.

        Returns a list of :class:`SuperPacket`, in order: standard transport
        messages give ``meta`` None; a completed train gives each of its
        records with its checked metadata.  ``block`` is decrypted in place
        when writable.
        """
        n = len(block)
        mv = memoryview(block if not isinstance(block, bytes) else bytearray(block))
        if mv.readonly:
            mv = memoryview(bytearray(mv))
        if segment <= 0 or segment > n:
            segment = n
        out: list = []
        off = 0
        while off < n:
            d = mv[off:off + segment]
            if len(d) >= 4 and d[0] in EXT_TYPES:
                if d[0] == MSG_EXT_TRAIN and d[16] == 0 and d[17] == 0:
                    took = self._train_block(mv, off, n, segment, addr, now, out)
                    if took:
                        off += took
                        continue
                self._ext_receive(d, len(d), addr, now, out)
                off += segment
                continue
            off += segment
            p = self.receive(d, addr, now)
            if p is not None:
                out.append(SuperPacket(p, None))
        return out

    def _ext_receive(self, data, n: int, addr, now: float, out=None) -> None:
        """An extension message (type byte 0xE0/0xE1): count, hold or deliver; never raises for content."""
        if out is None:
            out = self.super_packets
        if n < 4 or data[1] or data[2] or data[3]:
            return self._drop("malformed")
        if not self.extension:
            return self._xdrop("ext_disabled")
        if data[0] == MSG_EXT_CONTROL:
            return self._ext_control(data, n, addr, now)
        try:
            receiver, counter, index, shape = parse_fragment(data, n)
        except DecodeError:
            return self._xdrop("train_malformed")
        kp = self._index.get(receiver)
        if type(kp) is not Keypair:
            return self._drop("unknown_receiver")
        if now - kp.created >= REJECT_AFTER_TIME:
            return self._drop("expired_session")
        peer = kp.peer
        if kp.ext is None or not kp.ext.offers:   # we made no offer on this session: no trains on it
            return self._xdrop("ext_disabled")
        if not fresh(kp.replay, counter):
            return self._xdrop("train_replayed")
        tr = self._train_add(peer, kp, counter, index, shape, data, n, now)
        if tr is not None:
            self._train_open(peer, kp, tr, addr, now, out)

    def _train_block(self, mv, off: int, n: int, segment: int, addr, now: float, out) -> int:
        """A whole train, in order, at ``mv[off:]`` of a GRO block: checked and opened at once.

        Only when nothing of it is held yet and every fragment is there; the
        headers are compared with strided slices (one per header byte, not one
        per fragment).  Returns the bytes it took, or 0 to let the
        per-fragment path handle them (which counts whatever is wrong).
        """
        try:
            receiver, counter, index, shape = parse_fragment(mv[off:off + segment], min(segment, n - off))
        except DecodeError:
            return 0
        count, seg = shape.count, FRAGMENT_HEADER_SIZE + shape.chunk
        size = shape.wire_size
        if count < 2 or seg != segment or off + size > n:
            return 0
        kp = self._index.get(receiver)
        if (type(kp) is not Keypair or now - kp.created >= REJECT_AFTER_TIME or kp.ext is None or not kp.ext.offers
                or not fresh(kp.replay, counter) or (kp.local_index, counter, shape) in kp.peer.trains):
            return 0
        end = off + (count - 1) * seg + 1
        head = mv[off:off + FRAGMENT_HEADER_SIZE].tobytes()
        for k in range(FRAGMENT_HEADER_SIZE):
            if k == 16:
                if mv[off + 16:end + 16:seg] != _INDEXES[:count]:
                    return 0
            elif mv[off + k:end + k:seg] != head[k:k + 1] * count:
                return 0
        body = bytearray((count - 1) * shape.chunk + shape.last)
        dst = memoryview(body)   # a memoryview target copies straight (a bytearray slice copies via a temporary)
        chunk = shape.chunk
        src = off + FRAGMENT_HEADER_SIZE
        for i in range(count - 1):
            dst[i * chunk:(i + 1) * chunk] = mv[src:src + chunk]
            src += seg
        dst[(count - 1) * chunk:] = mv[src:src + shape.last]
        dst.release()
        tr = Train(kp, counter, shape, now, body)
        self._train_open(kp.peer, kp, tr, addr, now, out)
        return size

    def _ext_control(self, data, n: int, addr, now: float) -> None:
        if n != CONTROL_SIZE:
            return self._drop("malformed")
        buf = bytearray(data)
        _, receiver, counter = CONTROL_HEADER.unpack_from(buf)
        kp = self._index.get(receiver)
        if type(kp) is not Keypair:
            return self._drop("unknown_receiver")
        if now - kp.created >= REJECT_AFTER_TIME or counter >= REJECT_AFTER_MESSAGES:
            return self._drop("expired_session")
        peer = kp.peer
        if peer.plain:
            return self._xdrop("ext_disabled")
        if kp.recv.open_into(buf, 16, n - 16, counter, bytes(buf[:16])) < 0:
            return self._drop("decrypt")
        if not kp.replay.check(counter):
            return self._drop("replayed_transport")
        magic, version, flags, _max, _ = CONTROL_BODY.unpack_from(buf, 16)
        ok = magic == MAGIC and version == VERSION
        ext = kp.ext
        if ext is None:
            ext = kp.ext = _KpExt()
        if ok and flags & FLAG_TRAINS:
            ext.remote = True   # before a rotation below sends our own offer, so that it carries the ACK
        self._transport_authenticated(peer, kp, addr, n, now, data=False)
        if not ok:
            return self._drop("malformed")   # authenticated, but a layout we do not speak: stay plain
        if not flags & FLAG_ACK and not ext.ack_sent and kp is peer.current:
            self._ext_offer(peer, kp, now)

    def _train_add(self, peer: Peer, kp: Keypair, counter: int, index: int, shape, data, n: int, now: float):
        """Hold one fragment; the train if it is now complete (taken out of the table), else None."""
        key = (kp.local_index, counter, shape)
        tr = peer.trains.get(key)
        if tr is None:
            expired = [k for k, t in peer.trains.items() if t.deadline <= now]
            if expired:
                self._xdrop("train_timeout", len(expired))
                self._ext_release(peer, expired)
            size = (shape.count - 1) * shape.chunk + shape.last
            if len(peer.trains) >= MAX_PENDING_TRAINS or not self._ext_room(peer, size):
                return self._xdrop("train_table_full")   # never evicts a train already held
            tr = peer.trains[key] = Train(kp, counter, shape, now + TRAIN_TIMEOUT)
            peer.train_bytes += size
            self._ext_held += size
            self._ext_arm(peer, tr.deadline)
        pos = index * shape.chunk
        end = pos + n - FRAGMENT_HEADER_SIZE
        piece = data[FRAGMENT_HEADER_SIZE:n]
        bit = 1 << index
        if tr.have & bit:
            if memoryview(tr.body)[pos:end] == piece or (tr.alt is not None and memoryview(tr.alt)[pos:end] == piece):
                return self._xdrop("train_duplicate")
            self._xdrop("train_conflict")
            if tr.alt is None:
                size = len(tr.body)
                if not self._ext_room(peer, size):
                    return None
                tr.alt = bytearray(tr.body)
                peer.train_bytes += size
                self._ext_held += size
            tr.alt[pos:end] = piece   # the latest differing copy: the alternate is "last wins"
            return None
        tr.body[pos:end] = piece
        if tr.alt is not None:
            tr.alt[pos:end] = piece
        tr.have |= bit
        tr.filled += 1
        if tr.filled < shape.count:
            return None
        self._ext_release(peer, [key])
        return tr

    def _train_open(self, peer: Peer, kp: Keypair, tr: Train, addr, now: float, out) -> None:
        """Authenticate a complete train once (its alternate second), then deliver its records."""
        if self._index.get(kp.local_index) is not kp:
            return self._drop("unknown_receiver")
        aad = tr.aad(kp.local_index)
        plen = -1
        body = None
        for candidate in (tr.body, tr.alt):
            if candidate is None:
                continue
            plen = kp.recv.open_into(candidate, 0, len(candidate), tr.counter, aad)
            if plen >= 0:
                body = candidate
                break
            self._xdrop("train_decrypt")
        if body is None:
            return None
        if not kp.replay.check(tr.counter):
            return self._xdrop("train_replayed")
        twins = [k for k in peer.trains if k[0] == kp.local_index and k[1] == tr.counter]
        if twins:   # other shapes claiming this counter: forgeries, now certain
            self._xdrop("train_replayed", len(twins))
            self._ext_release(peer, twins)
        self._transport_authenticated(peer, kp, addr, tr.shape.wire_size, now, data=True)
        self._ext_records(peer, memoryview(body)[:plen], plen, out)

    def _ext_records(self, peer: Peer, body, plen: int, out) -> None:
        pos = 0
        lookup = self.allowed.lookup
        while pos < plen:
            if plen - pos < RECORD_SIZE:
                return self._xdrop("bad_record")
            flags, gso_type, hdr_len, gso_size, csum_start, csum_offset, length = RECORD.unpack_from(body, pos)
            start = pos + RECORD_SIZE
            end = start + length
            if not length or end > plen:
                return self._xdrop("bad_record")
            pos = end
            pkt = body[start:end]
            version = pkt[0] >> 4
            if version == 4 and length >= 20:
                total, src = _IP16.unpack_from(pkt, 2)[0], pkt[12:16]
            elif version == 6 and length >= 40:
                total, src = 40 + _IP16.unpack_from(pkt, 4)[0], pkt[8:24]
            else:
                self._drop("bad_inner_packet")
                continue
            if total != length:
                self._drop("bad_inner_packet")
                continue
            if lookup(src) is not peer:
                self._drop("disallowed_source")
                continue
            try:
                meta = check_meta(VirtioNetHdr(flags, gso_type, hdr_len, gso_size, csum_start, csum_offset), pkt)
            except DecodeError:
                self._xdrop("bad_gso")
                continue
            if len(out) >= MAX_DELIVERED:
                self._xdrop("delivered_full")
                continue
            out.append(SuperPacket(pkt, meta))


def _check_outbound(meta: VirtioNetHdr, pkt) -> VirtioNetHdr:
    """The inbound rules (check_meta) plus the IP version and exact length, for a packet we are about to seal."""
    n = len(pkt)
    version = pkt[0] >> 4
    if version == 4 and n >= 20:
        total = _IP16.unpack_from(pkt, 2)[0]
    elif version == 6 and n >= 40:
        total = 40 + _IP16.unpack_from(pkt, 4)[0]
    else:
        raise DecodeError(f"super-packet of {n} bytes is not IPv4/IPv6")
    if total != n:
        raise DecodeError(f"super-packet: IP length {total} but {n} bytes")
    return check_meta(meta, pkt)
