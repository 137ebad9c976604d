"""The WireGuard protocol as a sans-I/O engine: datagrams and packets in, datagrams and packets out; pure, no I/O.

    eng = Engine(private_key, LibCrypto(), wall_offset=time.time() - time.monotonic())
    peer = eng.add_peer(their_public, allowed_ips=["198.18.0.2/32"], endpoint=("192.0.2.2", 51820))
    out = eng.send(ip_packet, now)         # -> (datagram, endpoint) or None (staged; a handshake is queued)
    pkt = eng.receive(datagram, src, now)  # -> memoryview of the inner packet, or None
    for datagram, dest in eng.pop_datagrams(): ...   # handshakes, keepalives, cookie replies, staged data
    eng.tick(now); eng.next_deadline()     # timers

Every input takes ``now`` (monotonic seconds); TAI64N timestamps use
``now + wall_offset``.  Nothing a peer sends raises: a bad datagram is
dropped and counted in :attr:`Engine.drops` by reason.  Not thread-safe: one
engine is driven by one thread at a time.
"""

from __future__ import annotations

import ipaddress
import math
import struct
from collections import deque
from typing import Any, NamedTuple

from tunkit.routing.trie import PrefixTable
from tunkit.wireguard import messages as m
from tunkit.wireguard.constants import (KEEPALIVE_TIMEOUT, LAST_MINUTE_HANDSHAKE, REJECT_AFTER_MESSAGES,
                                        REJECT_AFTER_TIME, REKEY_AFTER_MESSAGES, REKEY_AFTER_TIME,
                                        REKEY_TIMEOUT)
from tunkit.wireguard.cookie import CookieChecker, CookieGenerator, RateLimiter
from tunkit.wireguard.extension import ExtensionMixin
from tunkit.wireguard.train import EXT_TYPES
from tunkit.wireguard.handshake import HandshakeMixin
from tunkit.wireguard.keys import clamp, format_key
from tunkit.wireguard.noise import Local, Remote
from tunkit.wireguard.peer import Keypair, Peer
from tunkit.wireguard.primitives import Crypto
from tunkit.wireguard.settings import InterfaceConfig, PeerConfig, validate

__all__ = ["Engine", "Event", "Applied", "DROP_REASONS"]

DROP_REASONS = (
    "malformed",            # wrong type, reserved bits, or length for its type (garbage, truncated)
    "mac1",                 # handshake message whose mac1 is not for us
    "cookie_sent",          # under load without a valid mac2: answered with a cookie reply
    "rate_limited",         # under load, the source exceeded its handshake rate
    "handshake_invalid",    # initiation/response that does not decrypt
    "unknown_peer",         # initiation from a static key that is not a peer
    "replayed_initiation",  # TAI64N not greater than the last one from that peer
    "initiation_flood",     # initiations from one peer faster than 50/s
    "unknown_receiver",     # response/cookie/transport for an index we do not have
    "cookie_invalid",       # cookie reply that does not decrypt
    "expired_session",      # transport on a session past REJECT_AFTER_TIME/MESSAGES
    "decrypt",              # transport message whose tag does not verify
    "replayed_transport",   # counter seen before or left behind by the window
    "disallowed_source",    # inner source address not in the sending peer's allowed IPs
    "bad_inner_packet",     # decrypted payload is not an IPv4/IPv6 packet that fits
    "no_route",             # outbound packet whose destination no peer's allowed IPs cover
    "staged_overflow",      # outbound packet pushed out of a full wait-for-session queue
    "handshake_timeout",    # staged packets thrown away when the handshake gave up
    "outbox_full",          # output datagram dropped because pop_datagrams() was not called
)  # tunkit's extension counts its own reasons in Engine.ext_drops (extension.py)

_HDR = m.TRANSPORT_HEADER
_pack_hdr = _HDR.pack_into
_U16 = struct.Struct("!H")  # IPv4 total length / IPv6 payload length
_OUTBOX_LIMIT = 4096
_INF = math.inf
_PAD = [bytes(k) for k in range(16)]  # zero padding, 0..15 bytes, without allocating per packet
_EXT_TYPES = EXT_TYPES


class Event(NamedTuple):
    """Something that happened: ``kind`` is handshake_complete, endpoint_changed, handshake_failed,
    keys_zeroed or cookie; ``detail`` is kind-specific (the new endpoint for endpoint_changed)."""
    kind: str
    peer: Peer
    detail: Any = None


class Applied(NamedTuple):
    """What :meth:`Engine.apply` changed: public keys added and removed, and which interface settings."""
    added: tuple
    removed: tuple
    private_key: bool
    listen_port: bool
    fwmark: bool


class Engine(ExtensionMixin, HandshakeMixin):
    """One WireGuard interface: a private key, its peers and their sessions.

    ``crypto`` provides AEAD/X25519/randomness (``tunkit.crypto.LibCrypto``);
    ``random`` overrides its random source (tests inject a seeded one).
    ``mtu`` bounds padding.  ``owner`` tags the keypairs this process may send
    on (see :meth:`partition`, :meth:`adopt`).  Set :attr:`under_load` while
    the handshake queue is long: handshakes then need a cookie (mac2) and are
    rate limited per source IP.
    """

    def __init__(self, private_key: bytes, crypto: Crypto, *, wall_offset: float, mtu: int = 1420,
                 random=None, under_load: bool = False) -> None:
        if not 576 <= mtu <= 65535:
            raise ValueError(f"mtu {mtu} is outside 576..65535")
        self.crypto = crypto
        self.random = random if random is not None else crypto.random
        self.local = Local(crypto, private_key)
        self.public_key = self.local.public
        self.private_key = bytes(private_key)
        self.wall_offset = float(wall_offset)
        self.mtu = mtu
        self.under_load = under_load
        self.owner: object = object()
        self.peers: dict[bytes, Peer] = {}
        self.allowed = PrefixTable()
        self.checker = CookieChecker(crypto, self.local.mac1_key, self.local.cookie_key)
        self.limiter = RateLimiter()
        self.drops = dict.fromkeys(DROP_REASONS, 0)
        self.events: deque[Event] = deque(maxlen=1024)
        self._index: dict[int, Any] = {}       # receiver index -> Handshake or Keypair
        self._outbox: deque = deque()
        self._next = _INF
        self._jitter_rng = None
        watch = getattr(crypto, "watch_fork", None)
        if watch is not None:
            watch(self)  # the I/O layer calls forked() in a child process
        self._ext_init()

    # ------------------------------------------------------------- peers

    def add_peer(self, public_key: bytes, *, preshared_key: bytes | None = None, allowed_ips=(),
                 endpoint=None, persistent_keepalive: float = 0) -> Peer:
        """Add a peer (ValueError if it exists, or its key is ours or low-order)."""
        public_key = bytes(public_key)
        if public_key in self.peers:
            raise ValueError("peer already exists")
        if public_key == self.public_key:
            raise ValueError("a peer cannot have this interface's own public key")
        if not 0 <= persistent_keepalive <= 65535:
            raise ValueError(f"persistent_keepalive {persistent_keepalive} is outside 0..65535 seconds")
        peer = self._insert_peer(Remote(self.local, public_key, preshared_key), endpoint, persistent_keepalive)
        self.set_allowed_ips(peer, allowed_ips)
        return peer

    def _insert_peer(self, remote: Remote, endpoint, persistent_keepalive: float) -> Peer:
        peer = Peer(remote, CookieGenerator(self.crypto, remote.mac1_key, remote.cookie_key),
                    endpoint=endpoint, persistent_keepalive=persistent_keepalive)
        self.peers[remote.public] = peer
        return peer

    def remove_peer(self, peer: Peer) -> None:
        """Forget a peer, its sessions, indices and allowed IPs."""
        self.set_allowed_ips(peer, ())
        for kp in peer.keypairs():
            self._forget(kp)
        peer.current = peer.previous = peer.next = None
        self._drop_handshake(peer)
        peer.staged.clear()
        self.peers.pop(peer.public_key, None)

    def set_allowed_ips(self, peer: Peer, prefixes) -> None:
        """Replace the peer's allowed IPs, kept in order; a prefix another peer had moves to this one (as in wg)."""
        nets = dict.fromkeys(ipaddress.ip_network(p, strict=True) if isinstance(p, str) else ipaddress.ip_network(p)
                             for p in prefixes)
        for net in peer.allowed_ips.keys() - nets.keys():
            if self.allowed.get(net) is peer:
                self.allowed.delete(net)
        for net in nets:
            other = self.allowed.get(net)
            if other is not None and other is not peer:
                other.allowed_ips.pop(net, None)
            self.allowed.insert(net, peer)
        peer.allowed_ips = nets

    def set_endpoint(self, peer: Peer, endpoint) -> None:
        peer.endpoint = endpoint

    def set_preshared_key(self, peer: Peer, preshared_key: bytes | None) -> None:
        """Change a peer's PSK; the running sessions stay, the next handshake uses it (as wg does)."""
        self._set_remote(peer, Remote(self.local, peer.public_key, preshared_key))

    def set_private_key(self, private_key: bytes) -> None:
        """Change this interface's key: every peer is re-derived and every session dropped.

        Raises ValueError, changing nothing, if the key is malformed or a peer's
        key would give an all-zero shared secret with it.
        """
        local = Local(self.crypto, private_key)
        if local.public in self.peers:
            raise ValueError("the new private key's public key is one of the peers'")
        remotes = {pk: Remote(local, pk, p.remote.psk) for pk, p in self.peers.items()}
        self._install_local(local, bytes(private_key), remotes)

    def _install_local(self, local: Local, private_key: bytes, remotes: dict, has_key: bool = True) -> None:
        self.local, self.public_key, self.private_key = local, local.public, private_key
        self.has_private_key = has_key
        self.checker = CookieChecker(self.crypto, local.mac1_key, local.cookie_key)
        for pk, peer in self.peers.items():
            self._set_remote(peer, remotes[pk])
            for kp in peer.keypairs():
                self._forget(kp)
            peer.current = peer.previous = peer.next = None
            self._drop_handshake(peer)

    def _set_remote(self, peer: Peer, remote: Remote) -> None:
        peer.remote = remote
        peer.cookies = CookieGenerator(self.crypto, remote.mac1_key, remote.cookie_key)

    # ------------------------------------------------------------- configuration: the one writer

    has_private_key = True  # False after apply() with private_key None: the key is a random stand-in
    listen_port = 0         # interface settings the I/O layer reads (0: none / any port)
    fwmark = 0

    def config(self) -> InterfaceConfig:
        """The configuration now in force (what ``wg showconf`` shows), for :meth:`apply` to change."""
        return InterfaceConfig(
            self.private_key if self.has_private_key else None, self.listen_port, self.fwmark,
            tuple(PeerConfig(pk, None if p.remote.psk == bytes(32) else p.remote.psk, p.endpoint,
                             int(p.persistent_keepalive), tuple(p.allowed_ips)) for pk, p in self.peers.items()))

    def apply(self, config: InterfaceConfig, *, now: float | None = None, prepare=None) -> "Applied":
        """Make ``config`` the configuration, all or nothing; the only writer (UAPI set, wg-quick, reload).

        Raises ValueError, changing nothing, if :func:`~tunkit.wireguard.settings.validate`
        refuses it or a peer key is a low-order point.  ``prepare(config)`` runs
        after every check and before the first change (the I/O layer binds a new
        listen port there); whatever it raises propagates and nothing changes.
        Peers that stay keep their sessions unless the private key changes
        (then every session is dropped, as in wireguard-go).  With ``now``, a
        peer whose persistent keepalive is turned on sends a keepalive at once.
        """
        key_changed = (config.private_key is None) == self.has_private_key or (
            config.private_key is not None and config.private_key != self.private_key)
        local, private = self.local, self.private_key
        if key_changed:
            private = config.private_key
            if private is None:
                private = clamp(bytes(self.random(32)))
            local = Local(self.crypto, private)
        validate(config, local.public if config.private_key is not None else None)
        remotes: dict[bytes, Remote] = {}
        for pc in config.peers:
            cur = self.peers.get(pc.public_key)
            psk = pc.preshared_key or bytes(32)
            if key_changed or cur is None or cur.remote.psk != psk:
                try:
                    remotes[pc.public_key] = Remote(local, pc.public_key, psk)
                except ValueError as e:
                    raise ValueError(f"peer {format_key(pc.public_key)}: {e}") from None
        if prepare is not None:
            prepare(config)
        # ---- commit: nothing below raises
        wanted = {pc.public_key for pc in config.peers}
        removed = tuple(pk for pk in self.peers if pk not in wanted)
        for pk in removed:
            self.remove_peer(self.peers[pk])
        if key_changed:
            self._install_local(local, private, {pk: remotes[pk] for pk in self.peers}, config.private_key is not None)
        added, turned_on = [], []
        for pc in config.peers:
            peer = self.peers.get(pc.public_key)
            if peer is None:
                peer = self._insert_peer(remotes[pc.public_key], pc.endpoint, 0)
                added.append(pc.public_key)
            elif pc.public_key in remotes and not key_changed:
                self._set_remote(peer, remotes[pc.public_key])
            peer.endpoint = pc.endpoint
            if not peer.persistent_keepalive and pc.persistent_keepalive:
                turned_on.append(peer)
            peer.persistent_keepalive = float(pc.persistent_keepalive)
        for pc in config.peers:
            for net in self.peers[pc.public_key].allowed_ips.keys() - set(pc.allowed_ips):
                self.allowed.delete(net)  # first free every prefix that moves, so no peer takes one twice
                self.peers[pc.public_key].allowed_ips.pop(net)
        for pc in config.peers:
            self.set_allowed_ips(self.peers[pc.public_key], pc.allowed_ips)
        port_changed, mark_changed = config.listen_port != self.listen_port, config.fwmark != self.fwmark
        self.listen_port, self.fwmark = config.listen_port, config.fwmark
        if now is not None and self.has_private_key:
            for peer in turned_on:  # after every change: as wireguard-go, a keepalive when it is switched on
                self._send_keepalive(peer, now)
        return Applied(tuple(added), removed, key_changed, port_changed, mark_changed)

    # ------------------------------------------------------------- outputs

    def pop_datagrams(self) -> list:
        """Every ``(datagram, destination)`` queued since the last call (handshakes, keepalives, ...)."""
        out = list(self._outbox)
        self._outbox.clear()
        return out

    def pop_events(self) -> list[Event]:
        out = list(self.events)
        self.events.clear()
        return out

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`tick` has work (it may be early, never late), or None."""
        return None if self._next == _INF else self._next

    def tick(self, now: float) -> None:
        """Run the timers that are due at ``now``."""
        if now < self._next:
            return
        nxt = _INF
        for peer in list(self.peers.values()):
            self._fire(peer, now)
            for t in peer.deadlines():
                if t < nxt:
                    nxt = t
        self._next = nxt

    # ------------------------------------------------------------- sending

    def send(self, packet, now: float):
        """Encrypt an inner IP packet for the peer its destination routes to.

        Returns ``(datagram, endpoint)``, or None when it was staged (a
        handshake is then queued) or dropped (counted).
        """
        peer = self.route(packet)
        if peer is None:
            self._drop("no_route")
            return None
        return self.seal(peer, packet, now)

    def route(self, packet) -> Peer | None:
        """The peer whose allowed IPs cover the packet's destination (cryptokey routing), or None."""
        n = len(packet)
        if n >= 20 and packet[0] >> 4 == 4:
            return self.allowed.lookup(packet[16:20])
        if n >= 40 and packet[0] >> 4 == 6:
            return self.allowed.lookup(packet[24:40])
        return None

    def seal(self, peer: Peer, packet, now: float):
        """Encrypt ``packet`` for ``peer``: ``(datagram, endpoint)`` or None (staged)."""
        n = len(packet)
        kp = peer.current
        if kp is None or peer.endpoint is None or not kp.can_send(now, self.owner):
            self._no_session(peer, packet, now)
            return None
        padded = (n + 15) & ~15
        if padded > self.mtu:
            padded = n if n > self.mtu else self.mtu
        out = bytearray(padded + 32)
        out[16:16 + n] = packet
        self._seal_with(peer, kp, out, n, padded, now)
        return out, peer.endpoint

    def seal_into(self, peer: Peer, buf, length: int, now: float, offset: int = 0) -> int:
        """In-place :meth:`seal`: the packet is at ``buf[offset+16:offset+16+length]``.

        The header goes in the 16 bytes before it, padding and the tag after
        it, so ``buf`` needs ``16 + round_up(length, 16) + 16`` writable bytes
        from ``offset`` (with less room the packet is sealed unpadded; with no
        room for the tag, ValueError).  Several datagrams can be sealed into
        one buffer at different offsets (a UDP_SEGMENT batch).  Returns the
        datagram length, to be sent to ``peer.endpoint``; or -1 if the packet
        was staged (copied) because there is no usable session.
        """
        start = offset + 16
        kp = peer.current
        if kp is None or peer.endpoint is None or not kp.can_send(now, self.owner):
            self._no_session(peer, memoryview(buf)[start:start + length], now)
            return -1
        room = len(buf) - offset - 32
        if length > room or offset < 0:
            raise ValueError(f"buffer of {len(buf)} bytes has no room at offset {offset} for a {length}-byte "
                             "packet's header and tag")
        padded = (length + 15) & ~15
        if padded > self.mtu:
            padded = length if length > self.mtu else self.mtu
        if padded > room:
            padded = length
        if padded != length:
            buf[start + length:start + padded] = _PAD[padded - length]
        self._seal_with(peer, kp, buf, length, padded, now, offset)
        return padded + 32

    def _seal_with(self, peer: Peer, kp: Keypair, buf, n: int, padded: int, now: float, offset: int = 0) -> None:
        counter = kp.send_counter
        kp.send_counter = counter + kp.send_step
        _pack_hdr(buf, offset, m.MSG_TRANSPORT, kp.remote_index, counter)
        kp.send.seal_into(buf, offset + 16, padded, counter)
        peer.tx_bytes += padded + 32
        peer.t_keepalive = None
        if n and peer.t_new_handshake is None:
            self._arm(peer, "t_new_handshake", now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + self._jitter())
        if peer.persistent_keepalive:
            self._arm(peer, "t_persistent", now + peer.persistent_keepalive)
        if kp.send_counter > REKEY_AFTER_MESSAGES or (kp.initiator and now - kp.created > REKEY_AFTER_TIME):
            self._initiate(peer, now)

    def _no_session(self, peer: Peer, packet, now: float) -> None:
        if not peer.stage(packet):
            self._drop("staged_overflow")
        self._initiate(peer, now)

    def _send_keepalive(self, peer: Peer, now: float) -> None:
        kp = peer.current
        if kp is None or peer.endpoint is None or not kp.can_send(now, self.owner):
            self._initiate(peer, now)
            return
        out = bytearray(32)
        self._seal_with(peer, kp, out, 0, 0, now)
        self._emit(out, peer.endpoint)

    def _flush_staged(self, peer: Peer, now: float) -> bool:
        """Send what waited for a session; False if nothing was staged."""
        if not peer.staged:
            return False
        for _ in range(len(peer.staged)):  # a packet that cannot go yet is staged again, not retried here
            out = self.seal(peer, peer.staged.popleft(), now)
            if out is not None:
                self._emit(*out)
        return True

    def initiate(self, peer: Peer, now: float, *, force: bool = False) -> bool:
        """Start a handshake with ``peer`` now (a rekey); ``force`` skips the REKEY_TIMEOUT rate limit."""
        return self._initiate(peer, now, force=force)

    # ------------------------------------------------------------- receiving

    def receive(self, data, addr, now: float):
        """Process one datagram from ``addr``; returns the inner packet to deliver or None.

        Transport messages are decrypted in place when ``data`` is writable
        (a ``bytearray`` or a writable memoryview); the result is a
        memoryview into it.  Handshake answers go to :meth:`pop_datagrams`.
        """
        n = len(data)
        if n >= 32 and data[0] == m.MSG_TRANSPORT:
            buf = data if type(data) is bytearray or (type(data) is memoryview and not data.readonly) else bytearray(data)
            return self._receive_transport(buf, n, addr, now)
        if n >= 4 and data[0] in _EXT_TYPES:  # tunkit's extension; completed trains go to super_packets
            return self._ext_receive(data, n, addr, now)
        try:
            kind = m.message_type(data)
            if kind == m.MSG_TRANSPORT:  # reserved bytes set, or shorter than a keepalive
                return self._drop("malformed")
            self._receive_handshake(bytes(data), kind, addr, now)
        except m.MessageError:
            self._drop("malformed")
        return None

    def _receive_transport(self, buf, n: int, addr, now: float):
        word, receiver, counter = _HDR.unpack_from(buf)
        if word != m.MSG_TRANSPORT:
            return self._drop("malformed")
        kp = self._index.get(receiver)
        if type(kp) is not Keypair:
            return self._drop("unknown_receiver")
        if now - kp.created >= REJECT_AFTER_TIME or counter >= REJECT_AFTER_MESSAGES:
            return self._drop("expired_session")
        size = kp.recv.open_into(buf, 16, n - 16, counter)
        if size < 0:
            return self._drop("decrypt")
        if not kp.replay.check(counter):
            return self._drop("replayed_transport")
        peer = kp.peer
        self._transport_authenticated(peer, kp, addr, n, now, data=size != 0)
        if size == 0:
            return None  # keepalive
        return self._inner(buf, size, peer)

    def _transport_authenticated(self, peer: Peer, kp: Keypair, addr, n: int, now: float, data: bool) -> None:
        """What any authenticated transport (or extension) message does: confirm ``next``, timers, roaming.

        ``data``: it carried a packet (not a keepalive or a control message), so a keepalive is owed.
        """
        if kp is peer.next:
            self._forget(peer.previous)
            peer.previous, peer.current, peer.next = peer.current, kp, None
            self._handshake_complete(peer, now)
            self._flush_staged(peer, now)
        cur = peer.current
        if (cur is not None and cur.initiator and not peer.sent_last_minute_handshake
                and now - cur.created > LAST_MINUTE_HANDSHAKE):
            peer.sent_last_minute_handshake = True
            self._initiate(peer, now)
        self._authenticated_from(peer, addr, n, now)
        if data:
            if peer.t_keepalive is None:
                self._arm(peer, "t_keepalive", now + KEEPALIVE_TIMEOUT)
            else:
                peer.need_another_keepalive = True

    def _inner(self, buf, size: int, peer: Peer):
        version = buf[16] >> 4
        if version == 4 and size >= 20:
            total = _U16.unpack_from(buf, 18)[0]
            src = buf[28:32]
            if total < 20:
                return self._drop("bad_inner_packet")
        elif version == 6 and size >= 40:
            total = 40 + _U16.unpack_from(buf, 20)[0]
            src = buf[24:40]
        else:
            return self._drop("bad_inner_packet")
        if total > size:
            return self._drop("bad_inner_packet")
        if self.allowed.lookup(src) is not peer:
            return self._drop("disallowed_source")
        return memoryview(buf)[16:16 + total]

    def _authenticated_from(self, peer: Peer, addr, n: int, now: float) -> None:
        """Roaming, receive counters and the 'received' timers, for any authenticated message."""
        if peer.endpoint != addr:
            peer.endpoint = addr
            self._event("endpoint_changed", peer, addr)
        peer.rx_bytes += n
        peer.t_new_handshake = None
        if peer.persistent_keepalive:
            self._arm(peer, "t_persistent", now + peer.persistent_keepalive)

    # ------------------------------------------------------------- processes

    def partition(self, count: int) -> None:
        """Before forking ``count - 1`` workers: this process keeps counters base + k*count.

        Each child then calls :meth:`adopt` with its worker number 1..count-1
        and sends on base + worker + k*count: no nonce is used twice.
        """
        if not 1 <= count <= 1024:
            raise ValueError(f"partition count {count} is outside 1..1024")
        for peer in self.peers.values():
            for kp in peer.keypairs():
                if kp.send_step != 1:
                    raise ValueError(f"keypair {kp!r} is already partitioned")
                kp.send_step = count

    def forked(self) -> None:
        """In a forked child (the I/O layer calls this): no inherited keypair may send any more."""
        self.owner = object()

    def adopt(self, worker: int) -> None:
        """In a forked child after :meth:`partition`: send on inherited keypairs at offset ``worker``."""
        for peer in self.peers.values():
            for kp in peer.keypairs():
                if kp.owner is self.owner:
                    continue  # made in this process
                if not 1 <= worker < kp.send_step:
                    raise ValueError(f"worker {worker} is outside 1..{kp.send_step - 1} (the partition count)")
                kp.owner = self.owner
                kp.send_counter += worker

    # ------------------------------------------------------------- internals

    def _drop(self, reason: str, count: int = 1) -> None:
        self.drops[reason] += count

    def _event(self, kind: str, peer: Peer, detail=None) -> None:
        self.events.append(Event(kind, peer, detail))

    def _emit(self, datagram, dest) -> None:
        if len(self._outbox) >= _OUTBOX_LIMIT:
            self._drop("outbox_full")
            return
        self._outbox.append((datagram, dest))

    def _arm(self, peer: Peer, name: str, when: float) -> None:
        setattr(peer, name, when)
        if when < self._next:
            self._next = when

    def _forget(self, kp: Keypair | None) -> None:
        if kp is not None and self._index.get(kp.local_index) is kp:
            del self._index[kp.local_index]
