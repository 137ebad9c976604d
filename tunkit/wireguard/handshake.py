"""The engine's handshake half: MAC/cookie gate, initiation, response, cookie reply; pure, no I/O.

A mixin of :class:`tunkit.wireguard.engine.Engine`; see there for the API.
"""

from __future__ import annotations

import random as _random
import struct

from tunkit.wireguard import messages as m
from tunkit.wireguard import noise
from tunkit.wireguard.constants import (KEEPALIVE_TIMEOUT, MAX_TIMER_HANDSHAKES, MIN_INITIATION_INTERVAL, REKEY_TIMEOUT,
                                        REKEY_TIMEOUT_JITTER, ZERO_KEYS_AFTER)
from tunkit.wireguard.keys import clamp
from tunkit.wireguard.peer import Handshake, Keypair, Peer

_U32 = struct.Struct("<I")  # a sender/receiver index at a known offset


class HandshakeMixin:
    """Handshake processing; uses the engine's index table, outbox, counters and timers."""

    # ------------------------------------------------------------- receiving

    def _receive_handshake(self, buf, kind: int, addr, now: float) -> None:
        if kind == m.MSG_COOKIE:
            return self._receive_cookie(buf, now)
        size, mac1_at = ((m.INITIATION_SIZE, m.INITIATION_MAC1) if kind == m.MSG_INITIATION
                         else (m.RESPONSE_SIZE, m.RESPONSE_MAC1))
        if len(buf) != size:
            return self._drop("malformed")
        if not self.checker.mac1_ok(buf, mac1_at):
            return self._drop("mac1")
        if self.under_load:
            if not self.checker.mac2_ok(buf, mac1_at, addr, now):
                sender = _U32.unpack_from(buf, 4)[0]
                self._emit(self.checker.reply(buf, mac1_at, sender, addr, now), addr)
                return self._drop("cookie_sent")
            host = addr[0] if isinstance(addr, tuple) and addr else addr
            if not self.limiter.allow(host, now):
                return self._drop("rate_limited")
        if kind == m.MSG_INITIATION:
            return self._consume_initiation(buf, addr, now)
        return self._consume_response(buf, addr, now)

    def _consume_initiation(self, buf, addr, now: float) -> None:
        msg = m.decode_initiation(buf)
        got = noise.consume_initiation(self.crypto, self.local, msg)
        if got is None:
            return self._drop("handshake_invalid")
        peer = self.peers.get(got.remote_public)
        if peer is None:
            return self._drop("unknown_peer")
        got = noise.open_timestamp(self.crypto, peer.remote, got)
        if got is None:
            return self._drop("handshake_invalid")
        if got.timestamp <= peer.last_timestamp:
            return self._drop("replayed_initiation")
        last = peer.last_initiation_consumed
        if last is not None and now - last < MIN_INITIATION_INTERVAL:
            return self._drop("initiation_flood")
        peer.last_timestamp = got.timestamp
        peer.last_initiation_consumed = now
        self._drop_handshake(peer)
        index = self._new_index()
        res = noise.create_response(self.crypto, peer.remote, got, index, msg.sender, self._ephemeral())
        if res is None:
            return self._drop("handshake_invalid")
        out, session = res
        kp = Keypair(peer, self.crypto.aead(session.send_key), self.crypto.aead(session.recv_key),
                     index, msg.sender, now, False, self.owner)
        self._index[index] = kp
        self._forget(peer.next)
        self._forget(peer.previous)
        peer.next, peer.previous = kp, None   # not used for sending until the initiator confirms it
        self._authenticated_from(peer, addr, len(buf), now)
        self._arm_zero(peer, now)
        peer.cookies.add_macs(out, m.RESPONSE_MAC1, now)
        self._send_control(peer, out, now)

    def _consume_response(self, buf, addr, now: float) -> None:
        msg = m.decode_response(buf)
        hs = self._index.get(msg.receiver)
        if type(hs) is not Handshake or hs.state is None:
            return self._drop("unknown_receiver")
        peer = hs.peer
        session = noise.consume_response(self.crypto, self.local, peer.remote, hs.state, msg)
        if session is None:
            return self._drop("handshake_invalid")
        kp = Keypair(peer, self.crypto.aead(session.send_key), self.crypto.aead(session.recv_key),
                     hs.local_index, msg.sender, now, True, self.owner)
        self._index[hs.local_index] = kp
        peer.handshake = None
        if peer.next is not None:
            self._forget(peer.current)
            self._forget(peer.previous)
            peer.previous, peer.next = peer.next, None
        else:
            self._forget(peer.previous)
            peer.previous = peer.current
        peer.current = kp
        self._authenticated_from(peer, addr, len(buf), now)
        self._arm_zero(peer, now)
        self._handshake_complete(peer, now)
        if not self._flush_staged(peer, now):
            self._send_keepalive(peer, now)

    def _receive_cookie(self, buf, now: float) -> None:
        if len(buf) != m.COOKIE_SIZE:
            return self._drop("malformed")
        reply = m.decode_cookie_reply(buf)
        entry = self._index.get(reply.receiver)
        if entry is None:
            return self._drop("unknown_receiver")
        if not entry.peer.cookies.consume(reply.nonce, reply.cookie, now):
            return self._drop("cookie_invalid")
        self._event("cookie", entry.peer)

    # ------------------------------------------------------------- sending

    def _initiate(self, peer: Peer, now: float, retry: bool = False, force: bool = False) -> bool:
        """Send a handshake initiation unless one went out less than REKEY_TIMEOUT ago."""
        if not retry:
            peer.handshake_attempts = 0
        last = peer.last_sent_handshake
        if not force and last is not None and now - last < REKEY_TIMEOUT:
            return False
        if peer.endpoint is None:
            return False  # a peer without an endpoint can only initiate to us
        peer.last_sent_handshake = now
        self._drop_handshake(peer)
        index = self._new_index()
        ts = m.tai64n(now + self.wall_offset)
        res = noise.create_initiation(self.crypto, self.local, peer.remote, index, self._ephemeral(), ts)
        if res is None:
            return False
        out, state = res
        peer.handshake = hs = Handshake(peer, index, state)
        self._index[index] = hs
        peer.cookies.add_macs(out, m.INITIATION_MAC1, now)
        self._send_control(peer, out, now)
        self._arm(peer, "t_retransmit", now + REKEY_TIMEOUT + self._jitter())
        return True

    def _send_control(self, peer: Peer, out: bytearray, now: float) -> None:
        """Queue a handshake message or keepalive to the peer's endpoint, with the 'sent' timers."""
        self._emit(out, peer.endpoint)
        peer.tx_bytes += len(out)
        peer.t_keepalive = None
        if peer.persistent_keepalive:
            self._arm(peer, "t_persistent", now + peer.persistent_keepalive)

    def _handshake_complete(self, peer: Peer, now: float) -> None:
        peer.t_retransmit = None
        peer.handshake_attempts = 0
        peer.sent_last_minute_handshake = False
        peer.last_handshake = now + self.wall_offset
        peer.handshakes += 1
        self._event("handshake_complete", peer)

    def _arm_zero(self, peer: Peer, now: float) -> None:
        self._arm(peer, "t_zero", now + ZERO_KEYS_AFTER)

    def _drop_handshake(self, peer: Peer) -> None:
        hs, peer.handshake = peer.handshake, None
        if hs is not None:
            if self._index.get(hs.local_index) is hs:
                del self._index[hs.local_index]
            hs.state = None

    def _new_index(self) -> int:
        for _ in range(64):
            i = _U32.unpack(self.random(4))[0]
            if i not in self._index:
                return i
        raise RuntimeError("the random source keeps returning receiver indices already in use")

    def _ephemeral(self) -> bytes:
        return clamp(self.random(32))

    def _jitter(self) -> float:
        """0..REKEY_TIMEOUT_JITTER seconds; timing jitter needs no secrecy, so a PRNG seeded once."""
        rng = self._jitter_rng
        if rng is None:
            rng = self._jitter_rng = _random.Random(self.random(16))
        return rng.random() * REKEY_TIMEOUT_JITTER

    # ------------------------------------------------------------- timers

    def _fire(self, peer: Peer, now: float) -> None:
        """Run every timer of ``peer`` that is due."""
        if peer.t_retransmit is not None and peer.t_retransmit <= now:
            peer.t_retransmit = None
            if peer.handshake_attempts >= MAX_TIMER_HANDSHAKES:
                self._drop("handshake_timeout", len(peer.staged))
                peer.staged.clear()
                self._drop_handshake(peer)
                self._event("handshake_failed", peer)
                if peer.t_zero is None:
                    self._arm_zero(peer, now)
            else:
                peer.handshake_attempts += 1
                self._initiate(peer, now, retry=True)
        if peer.t_keepalive is not None and peer.t_keepalive <= now:
            peer.t_keepalive = None
            self._send_keepalive(peer, now)
            if peer.need_another_keepalive:
                peer.need_another_keepalive = False
                self._arm(peer, "t_keepalive", now + KEEPALIVE_TIMEOUT)
        if peer.t_new_handshake is not None and peer.t_new_handshake <= now:
            peer.t_new_handshake = None
            self._initiate(peer, now)
        if peer.t_zero is not None and peer.t_zero <= now:
            peer.t_zero = None
            self._zero_keys(peer)
        if peer.t_persistent is not None and peer.t_persistent <= now:
            peer.t_persistent = None
            if peer.persistent_keepalive:
                self._send_keepalive(peer, now)

    def _zero_keys(self, peer: Peer) -> None:
        for kp in peer.keypairs():
            self._forget(kp)
        peer.current = peer.previous = peer.next = None
        self._drop_handshake(peer)
        self._event("keys_zeroed", peer)
