"""Netlink attributes (struct nlattr / rtattr): encoder and decoder; pure, no I/O.

:class:`AttrEncoder` builds an attribute stream with typed methods and keeps
the first error: later calls do nothing and :meth:`AttrEncoder.finish`
raises it once, naming the attribute, so building code reads top to bottom
with one error check at the end::

    enc = AttrEncoder()
    enc.ip(RTA.DST, dst.network_address)
    enc.u32(RTA.OIF, 3)
    enc.nested(RTA.METRICS, lambda m: m.u32(RTAX.MTU, 1400))
    payload = enc.finish()

:class:`AttrDecoder` iterates a stream as :class:`Attr` values (type, flags,
data view).  Typed getters check the length exactly and raise
:class:`DecodeError` naming the attribute, e.g. ``RTA_PRIORITY: want 4
bytes, got 2``.  A length shorter than the header or past the end raises
too; the cursor always moves forward, so no input can make it loop, and
nesting deeper than :data:`MAX_NESTING` raises too, so none can recurse
without bound.
"""

from __future__ import annotations

import enum
import ipaddress
import contextvars
import struct
from typing import Callable, Iterator, NamedTuple

from tunkit._uapi import NLA_ALIGNTO, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_HDRLEN, NLA_TYPE_MASK
from tunkit.errors import DecodeError

__all__ = ["MAX_NESTING", "Attr", "AttrDecoder", "AttrEncoder", "attr_name", "nla_align"]


# #define NLA_ALIGN(len) (((len) + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1))
def nla_align(length: int) -> int:
    """Round ``length`` up to the attribute alignment (4)."""
    return (length + NLA_ALIGNTO - 1) & ~(NLA_ALIGNTO - 1)


# struct nlattr: nla_len u16 (header + payload, unpadded), nla_type u16 (type | NLA_F_* bits).
# Each layout packs the header and the value in one call; the x's are the NLA_ALIGN padding.
_HDR = struct.Struct("=HH")  # nla_len, nla_type
_U8 = struct.Struct("=HHB3x")  # header, u8 value, 3 pad bytes
_U16 = struct.Struct("=HHH2x")  # header, u16 value, 2 pad bytes
_U32 = struct.Struct("=HHI")  # header, u32 value
_S32 = struct.Struct("=HHi")  # header, s32 value
_U64 = struct.Struct("=HHQ")  # header, u64 value

_V_U16 = struct.Struct("=H")
_V_U32 = struct.Struct("=I")
_V_S32 = struct.Struct("=i")
_V_U64 = struct.Struct("=Q")
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4


def attr_name(attr_type: int, names: type[enum.IntEnum] | None = None) -> str:
    """``RTA_DST`` style name of an attribute type, for error messages."""
    if names is not None:
        try:
            attr_type = names(attr_type)
        except ValueError:
            return f"{names.__name__}_{int(attr_type)}"
    if isinstance(attr_type, enum.Enum):
        return f"{type(attr_type).__name__.upper()}_{attr_type.name}"
    return f"attribute {int(attr_type)}"


class AttrEncoder:
    """Builds an attribute stream; keeps the first error and raises it at :meth:`finish`."""

    __slots__ = ("_parts", "_error")

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._error: ValueError | None = None

    def error(self, attr_type: int, why: object) -> None:
        """Record a problem the caller found with ``attr_type`` (kept if it is the first)."""
        if self._error is None:
            self._error = ValueError(f"{attr_name(attr_type)}: {why}")

    # -- fixed-size integers -------------------------------------------------
    def _int(self, layout: struct.Struct, length: int, kind: str, attr_type: int, value: int) -> None:
        if self._error is None:
            try:
                self._parts.append(layout.pack(length, attr_type, value))
            except struct.error as e:
                self.error(attr_type, f"{value!r} is not {kind} ({e})")

    def u8(self, attr_type: int, value: int) -> None:
        self._int(_U8, 5, "a u8", attr_type, value)

    def u16(self, attr_type: int, value: int) -> None:
        self._int(_U16, 6, "a u16", attr_type, value)

    def u32(self, attr_type: int, value: int) -> None:
        self._int(_U32, 8, "a u32", attr_type, value)

    def s32(self, attr_type: int, value: int) -> None:
        self._int(_S32, 8, "an s32", attr_type, value)

    def u64(self, attr_type: int, value: int) -> None:
        self._int(_U64, 12, "a u64", attr_type, value)

    # -- variable-size payloads ----------------------------------------------
    def bytes(self, attr_type: int, value: bytes) -> None:
        if self._error is None:
            n = NLA_HDRLEN + len(value)
            if n > 0xFFFF:
                self.error(attr_type, f"{len(value)} bytes do not fit in one attribute")
                return
            try:
                self._parts.append(_HDR.pack(n, attr_type) + value + _PAD[n & 3])
            except (struct.error, TypeError) as e:
                self.error(attr_type, f"bad value {value!r} ({e})")

    def str(self, attr_type: int, value: str) -> None:
        """A NUL-terminated string (NLA_NUL_STRING / NLA_STRING)."""
        if self._error is None:
            if not isinstance(value, str) or "\0" in value:
                self.error(attr_type, f"{value!r} is not a string without NUL bytes")
                return
            self.bytes(attr_type, value.encode() + b"\0")

    def flag(self, attr_type: int, present: bool = True) -> None:
        """A zero-length flag attribute, emitted only if ``present``."""
        if self._error is None and present:
            self._parts.append(_HDR.pack(NLA_HDRLEN, attr_type))

    def ip(self, attr_type: int, address) -> None:
        """An IPv4/IPv6 address (``ipaddress`` object or text) as packed bytes."""
        if self._error is None:
            try:
                packed = address.packed if hasattr(address, "packed") else ipaddress.ip_address(address).packed
            except ValueError as e:
                self.error(attr_type, e)
                return
            self.bytes(attr_type, packed)

    def nested(self, attr_type: int, build: Callable[["AttrEncoder"], object]) -> None:
        """A nested attribute stream: ``build(sub_encoder)`` fills it in."""
        if self._error is None:
            sub = AttrEncoder()
            build(sub)
            if sub._error is not None:
                self.error(attr_type, sub._error)
                return
            self.bytes(attr_type | NLA_F_NESTED, b"".join(sub._parts))

    def raw(self, data: bytes) -> None:
        """Already-encoded attributes (e.g. kept unknown ones), appended as is."""
        if self._error is None:
            self._parts.append(bytes(data))

    # -- result -------------------------------------------------------------
    def finish(self) -> bytes:
        """The encoded stream; raises the first error (a ``ValueError``) if any call failed."""
        if self._error is not None:
            raise self._error
        return b"".join(self._parts)


class Attr(NamedTuple):
    """One attribute: ``type`` without the NLA_F_* bits, those bits in ``flags``,
    the payload as a memoryview, and the enum used to name it in errors."""

    type: int
    flags: int
    data: memoryview
    names: type[enum.IntEnum] | None = None

    @property
    def name(self) -> str:
        return attr_name(self.type, self.names)

    @property
    def nested_flag(self) -> bool:
        return bool(self.flags & NLA_F_NESTED)

    def _want(self, n: int) -> None:
        if len(self.data) != n:
            raise DecodeError(f"{self.name}: want {n} bytes, got {len(self.data)}")

    def u8(self) -> int:
        self._want(1)
        return self.data[0]

    def u16(self) -> int:
        self._want(2)
        return _V_U16.unpack_from(self.data)[0]

    def be16(self) -> int:
        self._want(2)
        return int.from_bytes(self.data, "big")

    def u32(self) -> int:
        self._want(4)
        return _V_U32.unpack_from(self.data)[0]

    def s32(self) -> int:
        self._want(4)
        return _V_S32.unpack_from(self.data)[0]

    def u64(self) -> int:
        self._want(8)
        return _V_U64.unpack_from(self.data)[0]

    def flag(self) -> bool:
        self._want(0)
        return True

    def bytes(self) -> bytes:
        return bytes(self.data)

    def str(self) -> str:
        """A string attribute; the trailing NUL (if any) and anything after it are dropped."""
        raw = bytes(self.data)
        cut = raw.find(b"\0")
        if cut >= 0:
            raw = raw[:cut]
        try:
            return raw.decode()
        except UnicodeDecodeError as e:
            raise DecodeError(f"{self.name}: not UTF-8 ({e.reason})") from None

    def ip(self, family: int | None = None):
        """An ``IPv4Address`` (4 bytes) or ``IPv6Address`` (16 bytes).

        With ``family`` (AF_INET/AF_INET6) the length must match it exactly.
        """
        n = len(self.data)
        want = {2: 4, 10: 16}.get(family) if family is not None else None
        if want is not None and n != want:
            raise DecodeError(f"{self.name}: want {want} bytes for family {family}, got {n}")
        if n == 4:
            return ipaddress.IPv4Address(bytes(self.data))
        if n == 16:
            return ipaddress.IPv6Address(bytes(self.data))
        raise DecodeError(f"{self.name}: want 4 or 16 address bytes, got {n}")

    def nested(self, names: type[enum.IntEnum] | None = None) -> "AttrDecoder":
        """Iterate the nested attribute stream in this attribute's payload."""
        return AttrDecoder(self.data, names)

    def raw(self) -> bytes:
        """The attribute re-encoded (header + payload + padding), to keep unknown ones."""
        n = NLA_HDRLEN + len(self.data)
        return _HDR.pack(n, self.type | self.flags) + bytes(self.data) + _PAD[n & 3]


# How deep attribute streams may nest: the decoders recurse (a veth peer is a
# whole LinkMessage inside IFLA_LINKINFO/IFLA_INFO_DATA/VETH_INFO_PEER), so
# hostile input could otherwise nest until RecursionError.  Real messages
# nest well under 10 deep; the kernel's own policies stop at 10.
MAX_NESTING = 32
# AttrDecoder iterations running one inside another, per thread (and per asyncio task)
_depth: contextvars.ContextVar[int] = contextvars.ContextVar("tunkit_attr_nesting", default=0)


class AttrDecoder:
    """Iterate the attributes in ``data`` (a bytes-like object) as :class:`Attr`.

    ``names`` (an IntEnum such as ``RTA``) only names attributes in errors.
    Raises :class:`DecodeError` for an attribute whose length is below the
    header size or beyond the end of ``data``.  Fewer than 4 trailing bytes
    are ignored, as the kernel's nla_parse does.

    Nesting is bounded here, once for every decoder built on this class:
    an iteration started while :data:`MAX_NESTING` others are running in
    the same thread (a decoder descending into nested attributes) raises
    :class:`DecodeError` instead of recursing on.
    """

    __slots__ = ("_data", "_names")

    def __init__(self, data, names: type[enum.IntEnum] | None = None) -> None:
        self._data = data if isinstance(data, memoryview) else memoryview(data)
        self._names = names

    def __iter__(self) -> Iterator[Attr]:
        data, names = self._data, self._names
        end = len(data)
        off = 0
        unpack = _HDR.unpack_from
        depth = _depth.get() + 1
        _depth.set(depth)
        try:
            if depth > MAX_NESTING:
                raise DecodeError(f"attributes nested more than {MAX_NESTING} deep")
            while end - off >= NLA_HDRLEN:
                n, t = unpack(data, off)
                if n < NLA_HDRLEN or n > end - off:
                    raise DecodeError(
                        f"{attr_name(t & NLA_TYPE_MASK, names)} at offset {off}: bad length {n} ({end - off} bytes left)"
                    )
                yield Attr(t & NLA_TYPE_MASK, t & (NLA_F_NESTED | NLA_F_NET_BYTEORDER), data[off + NLA_HDRLEN : off + n], names)
                off += (n + 3) & ~3
        finally:
            _depth.set(_depth.get() - 1)

    def to_dict(self) -> dict[int, Attr]:
        """The attributes by type (the last one wins, as in the kernel's nla_parse)."""
        return {a.type: a for a in self}
