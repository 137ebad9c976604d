"""The overlay's message authentication (HMAC-SHA256-128) and RFC 6479 replay window; pure, no I/O.

The two primitives :mod:`tunkit.overlay.wire` seals and opens messages with
(re-exported there): :class:`Mac` hashes the key's pads once so a tag costs
two hash-state copies plus the bytes, and :class:`ReplayWindow` accepts each
counter once within a bounded window.
"""

from __future__ import annotations

import hashlib
import hmac

__all__ = ["Mac", "ReplayWindow", "TAG_LEN", "KEY_LEN", "DEFAULT_WINDOW"]

TAG_LEN = 16  # bytes of HMAC-SHA256 kept (RFC 4868 truncation)
KEY_LEN = 32  # pre-shared key bytes
_SHA256_BLOCK = 64
DEFAULT_WINDOW = 4096  # replay window in counters (RFC 6479 bitmap bits)


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

    def tag2(self, a, b) -> bytes:
        """``tag(a, b)`` without the argument tuple and loop: the per-packet path."""
        inner = self._inner.copy()
        inner.update(a)
        inner.update(b)
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
