"""The Noise_IKpsk2 handshake of WireGuard: build and consume initiation and response; pure, no I/O.

Functions here are the cryptographic core only: they take the identities,
the ephemeral key and the timestamp as arguments and return new state or
``None`` when a message does not authenticate.  MACs, cookies, indices,
replay and timers are the engine's (:mod:`tunkit.wireguard.engine`).
"""

from __future__ import annotations

from typing import NamedTuple

from tunkit.wireguard import messages as m
from tunkit.wireguard.constants import CONSTRUCTION, IDENTIFIER, LABEL_COOKIE, LABEL_MAC1
from tunkit.wireguard.primitives import HASH, Crypto, KeyObject, kdf1, kdf2, kdf3, mix_hash

__all__ = ["INITIAL_CHAIN", "INITIAL_HASH", "Local", "Remote", "InitiatorState", "ConsumedInitiation",
           "Session", "create_initiation", "consume_initiation", "open_timestamp", "create_response", "consume_response"]

INITIAL_CHAIN = HASH(CONSTRUCTION)
INITIAL_HASH = HASH(INITIAL_CHAIN, IDENTIFIER)
ZERO_PSK = bytes(32)


class Local:
    """This side's static identity with what every handshake reuses."""

    __slots__ = ("key", "public", "initial_hash", "mac1_key", "cookie_key")

    def __init__(self, crypto: Crypto, private: bytes) -> None:
        if len(private) != 32:
            raise ValueError(f"private key must be 32 bytes, got {len(private)}")
        self.key: KeyObject = crypto.private_key(bytes(private))
        self.public = self.key.public
        self.initial_hash = mix_hash(INITIAL_HASH, self.public)   # responder's starting hash
        self.mac1_key = HASH(LABEL_MAC1, self.public)             # checks mac1 of messages to us
        self.cookie_key = HASH(LABEL_COOKIE, self.public)         # seals cookies we send


class Remote:
    """A peer's static key with its precomputed values (static-static DH, MAC keys)."""

    __slots__ = ("public", "psk", "static_static", "initial_hash", "mac1_key", "cookie_key")

    def __init__(self, local: Local, public: bytes, psk: bytes | None = None) -> None:
        if len(public) != 32:
            raise ValueError(f"peer public key must be 32 bytes, got {len(public)}")
        if psk is not None and len(psk) != 32:
            raise ValueError(f"preshared key must be 32 bytes, got {len(psk)}")
        ss = local.key.exchange(bytes(public))
        if ss is None:
            raise ValueError("peer public key gives an all-zero shared secret (a low-order point); refused")
        self.public = bytes(public)
        self.psk = ZERO_PSK if psk is None else bytes(psk)
        self.static_static = ss
        self.initial_hash = mix_hash(INITIAL_HASH, self.public)   # initiator's starting hash
        self.mac1_key = HASH(LABEL_MAC1, self.public)             # mac1 of messages we send them
        self.cookie_key = HASH(LABEL_COOKIE, self.public)         # opens cookies they send us


class InitiatorState(NamedTuple):
    """What an initiator keeps until the response: the ephemeral key, hash and chaining key."""
    ephemeral: KeyObject
    hash: bytes
    chain: bytes


class ConsumedInitiation(NamedTuple):
    """A decrypted initiation: who sent it, its timestamp and the responder's running state."""
    remote_public: bytes
    timestamp: bytes
    remote_ephemeral: bytes
    hash: bytes
    chain: bytes


class Session(NamedTuple):
    """The transport keys a completed handshake derives."""
    send_key: bytes
    recv_key: bytes


def create_initiation(crypto: Crypto, local: Local, remote: Remote, sender: int,
                      ephemeral_private: bytes, timestamp: bytes) -> tuple[bytearray, InitiatorState] | None:
    """The 148-byte initiation (MACs zero) and the state to keep; None if a DH result is zero."""
    e = crypto.ephemeral(ephemeral_private)
    h = mix_hash(remote.initial_hash, e.public)
    c = kdf1(INITIAL_CHAIN, e.public)
    ss = e.exchange(remote.public)
    if ss is None:
        return None
    c, k = kdf2(c, ss)
    static = crypto.aead(k).seal(0, local.public, h)
    h = mix_hash(h, static)
    c, k = kdf2(c, remote.static_static)
    ts = crypto.aead(k).seal(0, timestamp, h)
    h = mix_hash(h, ts)
    msg = m.encode_initiation(m.Initiation(sender, e.public, static, ts, bytes(16), bytes(16)))
    return msg, InitiatorState(e, h, c)


def consume_initiation(crypto: Crypto, local: Local, msg: m.Initiation) -> ConsumedInitiation | None:
    """Decrypt an initiation addressed to ``local``; None if it does not authenticate."""
    h = mix_hash(local.initial_hash, msg.ephemeral)
    c = kdf1(INITIAL_CHAIN, msg.ephemeral)
    ss = local.key.exchange(msg.ephemeral)
    if ss is None:
        return None
    c, k = kdf2(c, ss)
    remote_public = crypto.aead(k).open(0, msg.static, h)
    if remote_public is None:
        return None
    h = mix_hash(h, msg.static)
    return ConsumedInitiation(remote_public, msg.timestamp, msg.ephemeral, h, c)


def open_timestamp(crypto: Crypto, remote: Remote, got: ConsumedInitiation) -> ConsumedInitiation | None:
    """Second half of consuming an initiation, once the sender's static key is known to be a peer."""
    c, k = kdf2(got.chain, remote.static_static)
    ts = crypto.aead(k).open(0, got.timestamp, got.hash)
    if ts is None or len(ts) != m.TAI64N_SIZE:
        return None
    return got._replace(timestamp=ts, hash=mix_hash(got.hash, got.timestamp), chain=c)


def create_response(crypto: Crypto, remote: Remote, got: ConsumedInitiation, sender: int, receiver: int,
                    ephemeral_private: bytes) -> tuple[bytearray, Session] | None:
    """The 92-byte response (MACs zero) and the responder's session keys; None if a DH result is zero."""
    e = crypto.ephemeral(ephemeral_private)
    h = mix_hash(got.hash, e.public)
    c = kdf1(got.chain, e.public)
    ee = e.exchange(got.remote_ephemeral)
    se = e.exchange(remote.public)
    if ee is None or se is None:
        return None
    c = kdf1(kdf1(c, ee), se)
    c, tau, k = kdf3(c, remote.psk)
    h = mix_hash(h, tau)
    empty = crypto.aead(k).seal(0, b"", h)
    msg = m.encode_response(m.Response(sender, receiver, e.public, empty, bytes(16), bytes(16)))
    recv_key, send_key = kdf2(c, b"")
    return msg, Session(send_key, recv_key)


def consume_response(crypto: Crypto, local: Local, remote: Remote, state: InitiatorState,
                     msg: m.Response) -> Session | None:
    """The initiator's session keys from a response, or None if it does not authenticate."""
    h = mix_hash(state.hash, msg.ephemeral)
    c = kdf1(state.chain, msg.ephemeral)
    ee = state.ephemeral.exchange(msg.ephemeral)
    se = local.key.exchange(msg.ephemeral)
    if ee is None or se is None:
        return None
    c = kdf1(kdf1(c, ee), se)
    c, tau, k = kdf3(c, remote.psk)
    h = mix_hash(h, tau)
    if crypto.aead(k).open(0, msg.empty, h) is None:
        return None
    send_key, recv_key = kdf2(c, b"")
    return Session(send_key, recv_key)
