"""WireGuard keys in ``wg``'s base64 format: parse, format, clamp; pure, no I/O.

Generating a key needs randomness (I/O): ``tunkit.crypto.generate_private_key``
does it and :func:`clamp` here is the pure half.  The public key of a private
key needs X25519: ``tunkit.crypto.public_key``.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["KEY_LEN", "KeyFormatError", "parse_key", "format_key", "clamp"]

KEY_LEN = 32
_B64_LEN = 44  # 32 bytes in base64 with one '=' of padding


class KeyFormatError(ValueError):
    """A key that is not 32 bytes of standard base64; the message names the value and what was expected."""


def parse_key(text: str, what: str = "key") -> bytes:
    """32 raw bytes from ``wg``'s base64 (44 characters ending in '='); raises :class:`KeyFormatError`."""
    if not isinstance(text, str):
        raise KeyFormatError(f"{what}: expected a base64 string, got {type(text).__name__}")
    s = text.strip()
    shown = s if len(s) <= 60 else s[:57] + "..."
    if len(s) != _B64_LEN:
        raise KeyFormatError(f"{what} {shown!r}: expected {_B64_LEN} base64 characters ({KEY_LEN} bytes), got {len(s)}")
    try:
        raw = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFormatError(f"{what} {shown!r}: not valid base64 (expected {_B64_LEN} characters of A-Z a-z 0-9 + / "
                        f"ending in '=')") from None
    if len(raw) != KEY_LEN:
        raise KeyFormatError(f"{what} {shown!r}: decodes to {len(raw)} bytes, expected {KEY_LEN}")
    if base64.b64encode(raw).decode() != s:
        raise KeyFormatError(f"{what} {shown!r}: not canonical base64 (the last character before '=' has "
                             f"padding bits set; wg writes {base64.b64encode(raw).decode()!r})")
    return raw


def format_key(raw: bytes) -> str:
    """``wg``'s base64 form of a 32-byte key."""
    if len(raw) != KEY_LEN:
        raise KeyFormatError(f"key must be {KEY_LEN} bytes, got {len(raw)}")
    return base64.b64encode(bytes(raw)).decode()


def clamp(private: bytes) -> bytes:
    """RFC 7748 clamping of a 32-byte X25519 private key, as ``wg genkey`` applies it."""
    if len(private) != KEY_LEN:
        raise KeyFormatError(f"private key must be {KEY_LEN} bytes, got {len(private)}")
    b = bytearray(private)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)
