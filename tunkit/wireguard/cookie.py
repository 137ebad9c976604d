"""MAC1/MAC2, cookie replies under load and the per-source handshake rate limiter; pure, no I/O.

* :class:`CookieChecker` -- the receiving side: checks mac1 (always) and mac2
  (under load), and seals cookie replies.  Its secret rotates every
  COOKIE_REFRESH_TIME (120 s).
* :class:`CookieGenerator` -- the sending side, one per peer: writes mac1 and,
  while a cookie from that peer is fresh, mac2; consumes their cookie replies.
* :class:`RateLimiter` -- a token bucket per source IP (20/s, burst 5) with a
  bounded table, applied to handshakes under load.
"""

from __future__ import annotations

import hmac

from tunkit.wireguard.constants import (COOKIE_REFRESH_TIME, HANDSHAKE_BURST, HANDSHAKE_RATE,
                                        RATE_LIMIT_TABLE)
from tunkit.wireguard.messages import CookieReply, encode_cookie_reply
from tunkit.wireguard.primitives import MAC, Crypto

__all__ = ["CookieChecker", "CookieGenerator", "RateLimiter", "source_bytes"]

_compare = hmac.compare_digest


def source_bytes(addr) -> bytes:
    """The bytes a cookie is bound to: the source address and port of a datagram."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}|{addr[1]}".encode()
    return repr(addr).encode()


class CookieChecker:
    """Checks MACs of handshake messages sent to us; makes cookie replies."""

    __slots__ = ("crypto", "mac1_key", "cookie_key", "_secret", "_secret_time")

    def __init__(self, crypto: Crypto, mac1_key: bytes, cookie_key: bytes) -> None:
        self.crypto = crypto
        self.mac1_key = mac1_key
        self.cookie_key = cookie_key
        self._secret = b""
        self._secret_time = None

    def mac1_ok(self, msg, mac1_at: int) -> bool:
        return _compare(MAC(self.mac1_key, msg[:mac1_at]), msg[mac1_at:mac1_at + 16])

    def _cookie(self, src: bytes) -> bytes:
        return MAC(self._secret, src)

    def mac2_ok(self, msg, mac1_at: int, addr, now: float) -> bool:
        if self._secret_time is None or now - self._secret_time > COOKIE_REFRESH_TIME:
            return False
        mac2 = MAC(self._cookie(source_bytes(addr)), msg[:mac1_at + 16])
        return _compare(mac2, msg[mac1_at + 16:mac1_at + 32])

    def reply(self, msg, mac1_at: int, receiver: int, addr, now: float) -> bytearray:
        """A 64-byte cookie reply to ``msg`` (which came from ``addr``)."""
        if self._secret_time is None or now - self._secret_time > COOKIE_REFRESH_TIME:
            self._secret = self.crypto.random(32)
            self._secret_time = now
        nonce = self.crypto.random(24)
        sealed = self.crypto.xaead_seal(self.cookie_key, nonce, self._cookie(source_bytes(addr)),
                                        bytes(msg[mac1_at:mac1_at + 16]))
        return encode_cookie_reply(CookieReply(receiver, nonce, sealed))


class CookieGenerator:
    """Adds mac1/mac2 to the handshake messages we send one peer; takes that peer's cookies."""

    __slots__ = ("crypto", "mac1_key", "cookie_key", "last_mac1", "cookie", "cookie_time")

    def __init__(self, crypto: Crypto, mac1_key: bytes, cookie_key: bytes) -> None:
        self.crypto = crypto
        self.mac1_key = mac1_key      # HASH("mac1----" || their static public key)
        self.cookie_key = cookie_key  # HASH("cookie--" || their static public key)
        self.last_mac1: bytes | None = None
        self.cookie: bytes | None = None
        self.cookie_time = 0.0

    def add_macs(self, msg: bytearray, mac1_at: int, now: float) -> None:
        mac1 = MAC(self.mac1_key, memoryview(msg)[:mac1_at])
        msg[mac1_at:mac1_at + 16] = mac1
        self.last_mac1 = mac1
        if self.cookie is not None and now - self.cookie_time < COOKIE_REFRESH_TIME:
            msg[mac1_at + 16:mac1_at + 32] = MAC(self.cookie, memoryview(msg)[:mac1_at + 16])
        else:
            msg[mac1_at + 16:mac1_at + 32] = bytes(16)

    def consume(self, nonce: bytes, sealed: bytes, now: float) -> bool:
        """Take a cookie reply; False if we sent nothing it can answer or it does not decrypt."""
        if self.last_mac1 is None:
            return False
        cookie = self.crypto.xaead_open(self.cookie_key, nonce, sealed, self.last_mac1)
        if cookie is None or len(cookie) != 16:
            return False
        self.cookie = cookie
        self.cookie_time = now
        self.last_mac1 = None  # one cookie per message sent
        return True


class RateLimiter:
    """Token bucket per source IP; never more than RATE_LIMIT_TABLE sources remembered."""

    __slots__ = ("_table", "rate", "burst", "limit")

    def __init__(self, rate: float = HANDSHAKE_RATE, burst: int = HANDSHAKE_BURST,
                 limit: int = RATE_LIMIT_TABLE) -> None:
        self._table: dict = {}
        self.rate, self.burst, self.limit = rate, burst, limit

    def __len__(self) -> int:
        return len(self._table)

    def allow(self, ip, now: float) -> bool:
        entry = self._table.get(ip)
        if entry is None:
            if len(self._table) >= self.limit:
                self._expire(now)
                if len(self._table) >= self.limit:
                    return False  # table full of active sources: refuse newcomers until some go idle
            self._table[ip] = [now, self.burst - 1.0]
            return True
        tokens = min(self.burst, entry[1] + (now - entry[0]) * self.rate)
        entry[0] = now
        if tokens < 1.0:
            entry[1] = tokens
            return False
        entry[1] = tokens - 1.0
        return True

    def _expire(self, now: float) -> None:
        idle = self.burst / self.rate  # a bucket refills completely in this time: forgetting it changes nothing
        for ip in [ip for ip, (t, _) in self._table.items() if now - t >= idle]:
            del self._table[ip]
