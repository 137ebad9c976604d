"""WireGuard's hash/KDF functions and the crypto-provider Protocol the engine is given; pure, no I/O.

BLAKE2s, keyed BLAKE2s and HMAC-BLAKE2s come from :mod:`hashlib`/:mod:`hmac`.
The AEAD, X25519 and the random source come from a provider object that
satisfies :class:`Crypto` (``tunkit.crypto.LibCrypto`` in production), so this
package never imports anything native.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

__all__ = ["Aead", "Crypto", "KeyObject", "HASH", "MAC", "HMAC", "kdf1", "kdf2", "kdf3", "mix_hash"]

_blake2s = hashlib.blake2s


class Aead(Protocol):
    """ChaCha20-Poly1305 under one fixed key (see ``tunkit.crypto.ChaCha20Poly1305``)."""

    def seal_into(self, buf, offset: int, length: int, nonce, aad: bytes = b"") -> int: ...
    def open_into(self, buf, offset: int, length: int, nonce, aad: bytes = b"") -> int: ...
    def seal(self, nonce, plaintext, aad: bytes = b"") -> bytes: ...
    def open(self, nonce, ciphertext, aad: bytes = b"") -> bytes | None: ...


class KeyObject(Protocol):
    """An X25519 private key: ``public`` (32 bytes) and ``exchange(peer) -> secret | None``."""

    public: bytes

    def exchange(self, peer_public: bytes) -> bytes | None: ...


class Crypto(Protocol):
    """What the engine needs from a crypto provider.

    ``exchange`` returns ``None`` for an all-zero shared secret.  ``random(n)``
    returns ``n`` unpredictable bytes (``os.urandom`` in the I/O layer).
    """

    def aead(self, key: bytes) -> Aead: ...
    def xaead_seal(self, key: bytes, nonce24: bytes, plaintext, aad: bytes = b"") -> bytes: ...
    def xaead_open(self, key: bytes, nonce24: bytes, ciphertext, aad: bytes = b"") -> bytes | None: ...
    def private_key(self, private: bytes) -> KeyObject: ...
    def ephemeral(self, private: bytes) -> KeyObject: ...
    def random(self, n: int) -> bytes: ...


def HASH(*parts) -> bytes:
    """BLAKE2s-256 of the concatenation of ``parts``."""
    h = _blake2s()
    for p in parts:
        h.update(p)
    return h.digest()


def mix_hash(h: bytes, data) -> bytes:
    """Noise MixHash: HASH(h || data)."""
    x = _blake2s(h)
    x.update(data)
    return x.digest()


def MAC(key: bytes, data) -> bytes:
    """Keyed BLAKE2s with a 16-byte output (WireGuard's MAC)."""
    return _blake2s(data, digest_size=16, key=key).digest()


def HMAC(key: bytes, data) -> bytes:
    """HMAC-BLAKE2s-256."""
    return hmac.digest(key, data, _blake2s)


def kdf1(key: bytes, data) -> bytes:
    t0 = HMAC(key, data)
    return HMAC(t0, b"\x01")


def kdf2(key: bytes, data) -> tuple[bytes, bytes]:
    t0 = HMAC(key, data)
    t1 = HMAC(t0, b"\x01")
    return t1, HMAC(t0, t1 + b"\x02")


def kdf3(key: bytes, data) -> tuple[bytes, bytes, bytes]:
    t0 = HMAC(key, data)
    t1 = HMAC(t0, b"\x01")
    t2 = HMAC(t0, t1 + b"\x02")
    return t1, t2, HMAC(t0, t2 + b"\x03")
