"""The transport counter sliding window (RFC 6479 style, 2048-bit ring); pure, no I/O."""

from __future__ import annotations

from tunkit.wireguard.constants import REJECT_AFTER_MESSAGES

__all__ = ["ReplayWindow", "WINDOW_SIZE"]

_WORD_BITS = 64
_RING_WORDS = 32                                  # 32 x 64 = 2048 bits
WINDOW_SIZE = (_RING_WORDS - 1) * _WORD_BITS      # 1984 counters behind the newest are still accepted


class ReplayWindow:
    """Accepts each counter at most once, and none older than WINDOW_SIZE behind the newest.

    Call :meth:`check` only for an authenticated message (after the AEAD
    verified it): a forged counter must never move the window.
    """

    __slots__ = ("last", "ring")

    def __init__(self) -> None:
        self.last = 0
        self.ring = [0] * _RING_WORDS

    def check(self, counter: int) -> bool:
        """True (and remember it) if ``counter`` is new and inside the window."""
        if counter >= REJECT_AFTER_MESSAGES:
            return False
        ring = self.ring
        index = counter >> 6
        last = self.last
        if counter > last:
            current = last >> 6
            diff = index - current
            if diff > _RING_WORDS:
                diff = _RING_WORDS
            for i in range(current + 1, current + diff + 1):
                ring[i & 31] = 0
            self.last = counter
        elif last - counter > WINDOW_SIZE:
            return False
        bit = 1 << (counter & 63)
        w = index & 31
        if ring[w] & bit:
            return False
        ring[w] |= bit
        return True
