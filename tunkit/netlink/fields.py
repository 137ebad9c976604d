"""Field tables for rtnetlink messages: one table drives encode and decode; pure, no I/O.

A message class (a frozen record, :mod:`tunkit.netlink.record`) declares a :class:`Table`: its fixed
header (one ``struct.Struct``) and one :class:`Field` per attribute, in the
order they are encoded.  ``Table.encode(obj)`` and ``Table.decode(payload)``
are the only attribute loops in the rtnetlink codecs (links, addresses,
routes, metrics, nexthops, rules, neighbours and every nested stream use
them), so the bounds check, the absent-means-None rule and the keeping of
unknown attributes are written once:

* an attribute field whose value is ``None`` is not sent; a field the
  kernel did not send stays ``None``;
* attributes without a field are kept in ``unknown`` as ``(type incl.
  NLA_F_* bits, payload)`` pairs and re-emitted after the known ones;
* a bad value on encode raises ``ValueError`` naming the attribute; bad
  input on decode raises :class:`tunkit.errors.DecodeError` naming it;
  nested streams deeper than :data:`MAX_DEPTH` are refused.

A field's :class:`Kind` packs a value into a whole attribute (header,
payload, padding) and unpacks one from a payload slice.  Adding an
attribute to a message is one ``Field`` line.

Speed tricks live in one place, :func:`construct` (a frozen record
built without ``__init__``) and :func:`network` (an ``ipaddress`` network
built without re-parsing): both are probed or tested against the normal
constructors (tests/test_netlink_codec.py).
"""

from __future__ import annotations

import ipaddress
import itertools
import struct
from typing import Any, Callable, NamedTuple

from tunkit._uapi import AF_INET, AF_INET6, NLA_F_NESTED
from tunkit.errors import DecodeError
from tunkit.netlink.attr import MAX_NESTING

__all__ = [
    "ADDR",
    "BOOL8",
    "BYTES",
    "FLAG",
    "MAX_DEPTH",
    "NET",
    "S32",
    "STR",
    "U8",
    "U16",
    "U32",
    "U64",
    "BE16",
    "Codec",
    "Ctx",
    "ctx",
    "Field",
    "Kind",
    "Table",
    "attr_label",
    "bind",
    "construct",
    "custom",
    "nested",
    "network",
    "struct_kind",
]

MAX_DEPTH = MAX_NESTING  # nested streams (attr.py's one bound, 32) (a veth peer inside a veth peer ...) deeper than this are refused

# struct nlattr / rtattr: nla_len u16 (header + payload, unpadded), nla_type u16 (type | NLA_F_* bits)
ATTR_HDR = struct.Struct("=HH")
_U8 = struct.Struct("=HHB3x")  # header, u8 value, 3 pad bytes
_U16 = struct.Struct("=HHH2x")  # header, u16 value, 2 pad bytes
_BE16 = struct.Struct("=HH2s2x")  # header, big-endian u16 (packed by the kind), 2 pad bytes
_U32 = struct.Struct("=HHI")  # header, u32 value
_S32 = struct.Struct("=HHi")  # header, s32 value
_U64 = struct.Struct("=HHQ")  # header, u64 value
V_U16 = struct.Struct("=H")  # a u16 payload
V_BE16 = struct.Struct("!H")  # a big-endian u16 payload (ports)
V_U32 = struct.Struct("=I")  # a u32 payload
V_BE32 = struct.Struct("!I")  # an IPv4 address payload, as an int
V_S32 = struct.Struct("=i")  # an s32 payload
V_U64 = struct.Struct("=Q")  # a u64 payload
PAD = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4
_ADDR_LEN = {AF_INET: 4, AF_INET6: 16}
_V4, _V6 = ipaddress.IPv4Address, ipaddress.IPv6Address
_N4, _N6 = ipaddress.IPv4Network, ipaddress.IPv6Network


def attr_label(attr_type: int, names) -> str:
    """``RTA_DST`` style name of an attribute type, for messages."""
    if names is not None:
        try:
            return f"{names.__name__.upper()}_{names(attr_type).name}"
        except ValueError:
            return f"{names.__name__.upper()}_{int(attr_type)}"
    return f"attribute {int(attr_type)}"


def pack_attr(attr_type: int, payload: bytes) -> bytes:
    """One attribute: header + payload + padding (ValueError if it cannot fit)."""
    n = 4 + len(payload)
    if n > 0xFFFF:
        raise ValueError(f"{len(payload)} bytes do not fit in one attribute")
    return ATTR_HDR.pack(n, attr_type) + payload + PAD[n & 3]


# ---------------------------------------------------------------------------
# The speed helpers (probed/tested against the normal constructors)
# ---------------------------------------------------------------------------
def construct(cls, values: dict):
    """``cls(**values)`` for a frozen, unslotted dataclass, without running ``__init__``.

    Fields not in ``values`` fall back to the class defaults, so the result
    equals ``cls(**values)`` when every field with a ``__post_init__`` rule
    is given; tests/test_netlink_codec.py checks that for every message
    class.  Decoding a 10,000-route dump this way saves about 3 us a route.
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def _slow_network(version: int, value: int, plen: int):
    return (_N4 if version == 4 else _N6)((value, plen), strict=False)


def _fast_network(version: int, value: int, plen: int):
    """``IPv4Network((value, plen), strict=False)`` without re-parsing its input.

    ipaddress's constructor costs about 1.5 us, a third of decoding a route
    from a dump.  This sets the same attributes its ``__init__`` sets; it is
    used only if :func:`_probe_network` found it equal to the real
    constructor on this Python (probe, do not assume).
    """
    cls, addr_cls = (_N4, _V4) if version == 4 else (_N6, _V6)
    maxlen = cls._max_prefixlen
    if not 0 <= plen <= maxlen:
        raise ValueError(f"{plen} is not a valid netmask")
    net = object.__new__(cls)
    netmask, _ = cls._make_netmask(plen)
    net.network_address = addr_cls(value & int(netmask))
    net.netmask = netmask
    net._prefixlen = plen
    if plen == maxlen - 1:
        net.hosts = net.__iter__
    elif plen == maxlen:
        net.hosts = lambda: [addr_cls(value)]
    return net


def _probe_network():
    samples = [(4, 0xC6336401, 24), (4, 0, 0), (4, 0xC0000201, 32), (4, 0xC0000200, 31),
               (6, 0x20010DB8 << 96, 48), (6, 1, 128), (6, 0, 0)]
    try:
        for version, value, plen in samples:
            fast, slow = _fast_network(version, value, plen), _slow_network(version, value, plen)
            if (fast != slow or hash(fast) != hash(slow) or str(fast) != str(slow)
                    or fast.broadcast_address != slow.broadcast_address
                    or list(itertools.islice(fast.hosts(), 2)) != list(itertools.islice(slow.hosts(), 2))):
                return _slow_network
    except (AttributeError, TypeError, ValueError):  # ipaddress internals differ on this Python
        return _slow_network
    return _fast_network


network: Callable[[int, int, int], Any] = _probe_network()  # (version, int value, prefix length) -> network


# ---------------------------------------------------------------------------
# Kinds: how one attribute's value is packed and unpacked
# ---------------------------------------------------------------------------
# What a payload decoder may need besides its bytes, as a plain tuple (built once per
# message, so no NamedTuple): (address family, rtm_dst_len, rtm_src_len, nesting depth).
Ctx = tuple
FAMILY, DST_LEN, SRC_LEN, DEPTH = range(4)


def ctx(family: int = 0, dst_len: int = 0, src_len: int = 0, depth: int = 0) -> Ctx:
    return (family, dst_len, src_len, depth)


# code values the decode loop handles inline (the others call Kind.unpack); K_NET_DST/K_NET_SRC - 2
# is the Ctx index of the prefix length
K_OTHER, K_U32, K_ADDR, K_NET_DST, K_NET_SRC = range(5)


class Kind(NamedTuple):
    """How a field travels: ``pack(type, value) -> attribute bytes``;
    ``unpack(view, start, end, ctx, label) -> value`` from the payload slice;
    ``what`` names the allowed values in encode errors (e.g. ``a u32 (0..4294967295)``)."""

    code: int
    pack: Callable[[int, Any], bytes]
    unpack: Callable[[memoryview, int, int, Ctx, str], Any]
    what: str = ""
    # the packing as one line of Python for the generated encoder ({t}: the type, v: the value,
    # put: append the bytes; HDR_PACK/U32_PACK: the attribute layouts); "" calls ``pack``.
    # A kind made with _replace(pack=...) must replace ``inline`` too.
    inline: str = ""


def _want(label: str, n: int, got: int) -> None:
    if n != got:
        raise DecodeError(f"{label}: want {n} bytes, got {got}")


def _fixed(layout: struct.Struct, value_layout: struct.Struct, what: str, code: int = K_OTHER,
           convert: Callable[[int], Any] = int) -> Kind:
    length, size = layout.size - (-value_layout.size & 3), value_layout.size

    def unpack(view, start, end, ctx, label):
        _want(label, size, end - start)
        return convert(value_layout.unpack_from(view, start)[0])

    return Kind(code, lambda t, v: layout.pack(length, t, v), unpack, what,
                f"put(L{layout.format[1:]}.pack({length}, {{t}}, v))")


U8 = _fixed(_U8, struct.Struct("=B"), "a u8 (0..255)")
BOOL8 = _fixed(_U8, struct.Struct("=B"), "a bool", convert=bool)  # a u8 0/1 shown as False/True
U16 = _fixed(_U16, V_U16, "a u16 (0..65535)")
U32 = _fixed(_U32, V_U32, "a u32 (0..4294967295)", K_U32)
S32 = _fixed(_S32, V_S32, "an s32 (-2147483648..2147483647)")
U64 = _fixed(_U64, V_U64, "a u64 (0..18446744073709551615)")
BE16 = Kind(K_OTHER, lambda t, v: _BE16.pack(6, t, V_BE16.pack(v)),
            lambda view, s, e, ctx, label: (_want(label, 2, e - s), V_BE16.unpack_from(view, s)[0])[1],
            "a u16 (0..65535)")


def _unpack_str(view, start, end, ctx, label):
    raw = view[start:end].tobytes()
    cut = raw.find(b"\0")
    try:
        return (raw if cut < 0 else raw[:cut]).decode()
    except UnicodeDecodeError as e:
        raise DecodeError(f"{label}: not UTF-8 ({e.reason})") from None


def _pack_str(t: int, v: str) -> bytes:
    if not isinstance(v, str) or "\0" in v:
        raise ValueError(f"{v!r} is not a string without NUL bytes")
    return pack_attr(t, v.encode() + b"\0")


STR = Kind(K_OTHER, _pack_str, _unpack_str)
BYTES = Kind(K_OTHER, lambda t, v: pack_attr(t, bytes(v)), lambda view, s, e, ctx, label: view[s:e].tobytes())
FLAG = Kind(K_OTHER, lambda t, v: ATTR_HDR.pack(4, t) if v else b"",
            lambda view, s, e, ctx, label: (_want(label, 0, e - s), True)[1])


def unpack_address(view, start: int, end: int, family: int, label: str):
    """An address payload checked against ``family`` (any 4 or 16 bytes if the family is not IP)."""
    n = end - start
    want = _ADDR_LEN.get(family)
    if want is not None and n != want:
        raise DecodeError(f"{label}: want {want} bytes for family {family}, got {n}")
    if n == 4:
        return _V4(V_BE32.unpack_from(view, start)[0])
    if n == 16:
        return _V6(int.from_bytes(view[start:end], "big"))
    raise DecodeError(f"{label}: want 4 or 16 address bytes, got {n}")


def _pack_addr(t: int, v) -> bytes:
    packed = v.packed
    return ATTR_HDR.pack(4 + len(packed), t) + packed


ADDR = Kind(K_ADDR, _pack_addr, lambda view, s, e, ctx, label: unpack_address(view, s, e, ctx[FAMILY], label),
            inline="p = v.packed; put(HDR_PACK(4 + len(p), {t}) + p)")


def _net_kind(which: int) -> Kind:
    """A network whose prefix length lives in the header (rtm_dst_len: 1, rtm_src_len: 2)."""

    def unpack(view, start, end, ctx, label):
        n = end - start
        want = _ADDR_LEN.get(ctx[FAMILY])
        if want is not None and n != want:
            raise DecodeError(f"{label}: want {want} bytes for family {ctx[FAMILY]}, got {n}")
        if n == 4:  # no address object on the way: a dump decodes ten thousand of these
            version, value = 4, V_BE32.unpack_from(view, start)[0]
        elif n == 16:
            version, value = 6, int.from_bytes(view[start:end], "big")
        else:
            raise DecodeError(f"{label}: want 4 or 16 address bytes, got {n}")
        plen = ctx[which]
        try:
            return network(version, value, plen)
        except ValueError as e:  # NetmaskValueError: prefix length out of range
            raise DecodeError(f"{label}: bad prefix length {plen} ({e})") from None

    return Kind(K_NET_DST if which == DST_LEN else K_NET_SRC, lambda t, v: _pack_addr(t, v.network_address), unpack,
                inline="p = v.network_address.packed; put(HDR_PACK(4 + len(p), {t}) + p)")


NET = (None, _net_kind(1), _net_kind(2))  # NET[1]: the destination, NET[2]: the source


def custom(pack_payload: Callable[[Any], bytes], unpack_payload: Callable[[memoryview, Ctx, str], Any],
           flags: int = 0) -> Kind:
    """A kind from payload functions: ``pack_payload(value) -> bytes``,
    ``unpack_payload(view_slice, ctx, label) -> value`` (NLA_F_* ``flags`` on the type)."""
    return Kind(K_OTHER, lambda t, v: pack_attr(t | flags, pack_payload(v)),
                lambda view, s, e, ctx, label: unpack_payload(view[s:e], ctx, label))


def struct_kind(layout: struct.Struct, build: Callable[..., Any], fields: Callable[[Any], tuple]) -> Kind:
    """A payload that is one fixed struct: ``build(*unpacked)``, ``fields(value) -> tuple``."""

    def unpack(view, ctx, label):
        _want(label, layout.size, len(view))
        return build(*layout.unpack_from(view, 0))

    return custom(lambda v: layout.pack(*fields(v)), unpack)


def nested(get_table: Callable[[], "Table"]) -> Kind:
    """A nested attribute stream described by another table (looked up lazily)."""

    def pack(v):
        return get_table().encode_attrs(v)

    def unpack(view, ctx, label):
        return get_table().decode_attrs(view, 0, (ctx[FAMILY], 0, 0, ctx[DEPTH] + 1))

    return custom(pack, unpack, NLA_F_NESTED)


class Field(NamedTuple):
    """One attribute of a message: its type, the dataclass field and how it travels."""

    type: int
    name: str
    kind: Kind


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------
class Table:
    """Encode and decode one message type (see the module docstring).

    ``header`` is the fixed struct before the attributes (None for a bare
    attribute stream); ``head(obj, attrs) -> tuple`` gives its fields for
    encoding (``attrs`` is the encoded attribute bytes), and
    ``unhead(tuple, values) -> Ctx`` stores the decoded header fields in
    ``values`` and returns the decoding context.  ``post(values, ctx)``
    runs after the attributes are read (e.g. to decode kind-specific data).
    """

    def __init__(self, cls, names, fields: list[Field], *, header: struct.Struct | None = None,
                 head: Callable | None = None, unhead: Callable | None = None,
                 post: Callable | None = None, what: str = "") -> None:
        self.cls = cls
        self.names = names
        self.header = header
        self.head = head
        self.unhead = unhead
        self.post = post
        self.what = what or cls.__name__
        self.fields = fields
        self._enc = [(f.name, int(f.type), f.kind.pack, attr_label(f.type, names), f.kind.what) for f in fields]
        self._dec = {int(f.type): (f.kind.code, f.name, f.kind.unpack, attr_label(f.type, names)) for f in fields}
        defaults = getattr(cls, "__record_defaults__", {})
        for f in fields:  # absent means None: d.get() below relies on it
            if f.name not in defaults or defaults[f.name] is not None:
                raise TypeError(f"{cls.__name__}.{f.name}: an attribute field needs the default None")

    # -- encode ------------------------------------------------------------
    # encode(obj) and encode_attrs(obj) are generated per table by _compile() (see there), on first
    # use (a table compiles in about a millisecond: start-up pays only for what a command encodes);
    # _encode_attrs/_encode_slow are the same work one field at a time, run after an error to name it.
    def compiled(self) -> tuple[Callable[[Any], bytes], Callable[[Any], bytes]]:
        """The generated ``(encode, encode_attrs)``, made on the first call."""
        if "encode" not in self.__dict__:
            self.encode, self.encode_attrs = self._compile()  # instance attributes: later calls skip this
        return self.encode, self.encode_attrs

    def encode(self, obj) -> bytes:  # type: ignore[no-redef]  # until compiled()
        """Header (if any) + attributes: the netlink payload of ``obj``."""
        return self.compiled()[0](obj)

    def encode_attrs(self, obj) -> bytes:  # type: ignore[no-redef]  # until compiled()
        """The attribute stream of ``obj`` (its known fields in table order, then ``unknown``)."""
        return self.compiled()[1](obj)

    def _encode_attrs(self, d: dict) -> bytes:
        parts = []
        put = parts.append
        for name, t, pack, label, what in self._enc:
            v = d.get(name)
            if v is not None:
                try:
                    put(pack(t, v))
                except (struct.error, ValueError, TypeError, AttributeError, OverflowError) as e:
                    if what:
                        raise ValueError(f"{label}: {v!r} is not {what}") from None
                    raise ValueError(f"{label}: bad value {v!r} ({e})") from None
        unknown = d.get("unknown")
        if unknown:
            try:
                parts += [pack_attr(t, data) for t, data in unknown]
            except (struct.error, ValueError, TypeError) as e:
                raise ValueError(f"{self.what}: bad unknown attribute ({e})") from None
        return b"".join(parts)

    def _encode_slow(self, obj) -> bytes:
        attrs = self._encode_attrs(obj.__dict__)
        if self.header is None:
            return attrs
        try:
            return self.header.pack(*self.head(obj, attrs)) + attrs
        except (struct.error, TypeError, ValueError) as e:
            raise ValueError(f"{self.what}: bad header field ({e})") from None

    def _compile(self) -> tuple[Callable[[Any], bytes], Callable[[Any], bytes]]:
        """``encode(obj)`` (header + attributes) and ``encode_attrs(obj)``, unrolled for this table.

        The same packing as :meth:`_encode_slow`, generated from the table
        (never written by hand) with each kind's ``inline`` form, so routes
        are encoded by the ten thousand at about a microsecond each.  Any
        error reruns the slow path, which raises a ValueError naming the field.
        A class uses ``encode`` as its method (rtnl's ``_bind``).
        """
        env: dict[str, Any] = {"HDR_PACK": ATTR_HDR.pack, "U32_PACK": _U32.pack, "pack_attr": pack_attr,
                               "ERRORS": (struct.error, ValueError, TypeError, AttributeError, OverflowError),
                               "slow": self._encode_slow, "slow_attrs": lambda obj: self._encode_attrs(obj.__dict__),
                               "head": self.head, "HEADER_PACK": self.header.pack if self.header is not None else None}
        env.update((f"L{layout.format[1:]}", layout) for layout in (_U8, _U16, _U32, _S32, _U64))
        body = ["    d = obj.__dict__", "    parts = []", "    put = parts.append", "    try:"]
        for i, (f, (name, t, pack, _label, _what)) in enumerate(zip(self.fields, self._enc)):
            body += [f"        if {name!r} in d:", f"            v = d[{name!r}]", "            if v is not None:"]
            if f.kind.inline:
                body.append("                " + f.kind.inline.format(t=t))
            else:
                env[f"pack{i}"] = pack
                body.append(f"                put(pack{i}({t}, v))")
        body += ["        unknown = d.get('unknown')", "        if unknown:",
                 "            parts += [pack_attr(t, data) for t, data in unknown]",
                 "        attrs = b''.join(parts)"]
        full = "        return HEADER_PACK(*head(obj, attrs)) + attrs" if self.header is not None else "        return attrs"
        src = "\n".join(["def encode(obj):", *body, full, "    except ERRORS:", "        return slow(obj)",
                         "def encode_attrs(obj):", *body, "        return attrs", "    except ERRORS:",
                         "        return slow_attrs(obj)"])
        exec(src, env)  # noqa: S102 -- source built above from the table's own fields
        return env["encode"], env["encode_attrs"]

    # -- decode ------------------------------------------------------------
    def decode_attrs(self, view: memoryview, start: int, ctx: Ctx, values: dict | None = None):
        """Build the object from the attributes in ``view[start:]`` (plus ``values`` already known)."""
        obj = object.__new__(self.cls)  # as construct(): fields not seen keep their class default (None)
        d = obj.__dict__
        if values:
            d.update(values)
        self._fill(d, view, start, ctx)
        return obj

    def _fill(self, values: dict, view: memoryview, start: int, ctx: Ctx) -> None:
        """Read the attributes in ``view[start:]`` into ``values`` (an instance dict)."""
        if ctx[DEPTH] > MAX_DEPTH:
            raise DecodeError(f"{self.what}: nested more than {MAX_DEPTH} levels deep")
        unknown = None
        dec = self._dec
        family = ctx[FAMILY]
        end = len(view)
        off = start
        unpack_hdr = ATTR_HDR.unpack_from
        while end - off >= 4:  # fewer than 4 trailing bytes are ignored, as nla_parse does
            n, t = unpack_hdr(view, off)
            if n < 4 or n > end - off:  # the one bounds check of every rtnetlink attribute stream
                raise DecodeError(f"{attr_label(t & 0x3FFF, self.names)} at offset {off}: "
                                  f"bad length {n} ({end - off} bytes left)")
            spec = dec.get(t & 0x3FFF)
            if spec is None:
                if unknown is None:
                    unknown = []
                unknown.append((t, view[off + 4 : off + n].tobytes()))
            else:
                code, name, unpack, label = spec
                if code == K_U32:
                    if n != 8:
                        raise DecodeError(f"{label}: want 4 bytes, got {n - 4}")
                    values[name] = V_U32.unpack_from(view, off + 4)[0]
                elif n == 8 and family == AF_INET and code == K_ADDR:
                    values[name] = _V4(V_BE32.unpack_from(view, off + 4)[0])
                elif n == 8 and family == AF_INET and code >= K_NET_DST:  # an IPv4 prefix: the common case
                    try:
                        values[name] = network(4, V_BE32.unpack_from(view, off + 4)[0], ctx[code - 2])
                    except ValueError as e:
                        raise DecodeError(f"{label}: bad prefix length {ctx[code - 2]} ({e})") from None
                else:
                    values[name] = unpack(view, off + 4, off + n, ctx, label)
            off += (n + 3) & ~3
        if unknown:
            values["unknown"] = tuple(unknown)
        if self.post is not None:
            self.post(values, ctx)

    def decode(self, payload, depth: int = 0):
        """Decode one message payload (header + attributes)."""
        view = payload if isinstance(payload, memoryview) else memoryview(payload)
        if self.header is None:
            return self.decode_attrs(view, 0, (0, 0, 0, depth))
        size = self.header.size
        if len(view) < size:
            raise DecodeError(f"{self.what}: want at least {size} header bytes, got {len(view)}")
        obj = object.__new__(self.cls)  # filled in place: the decoded fields, class defaults for the rest
        d = obj.__dict__
        ctx = self.unhead(self.header.unpack_from(view, 0), d)
        if depth:
            ctx = (ctx[FAMILY], ctx[DST_LEN], ctx[SRC_LEN], depth)
        self._fill(d, view, size, ctx)
        return obj


class Codec:
    """Base of a message class: ``encode()``/``decode()`` from its ``_TABLE`` (set by :func:`bind`)."""

    _TABLE: Table

    def encode(self) -> bytes:  # replaced by the table's generated encoder in bind()
        return self._TABLE.encode(self)

    def encode_into(self, enc) -> None:
        """Append this object's attribute stream to an :class:`AttrEncoder` (for nesting by hand)."""
        try:
            enc.raw(self._TABLE.encode_attrs(self))
        except ValueError as e:
            enc.error(0, e)

    @classmethod
    def decode(cls, payload, depth: int = 0):
        return cls._TABLE.decode(payload, depth)


def bind(cls, table: Table) -> Table:
    """Make ``table`` the codec of ``cls``: its generated encoder becomes ``cls.encode`` (on first use)."""
    cls._TABLE = table

    def encode(self) -> bytes:
        fast = table.compiled()[0]
        cls.encode = fast  # from now on the generated function is the method itself
        return fast(self)

    encode.__doc__ = f"The netlink payload of this {cls.__name__} ({table.what} + attributes)."
    cls.encode = encode
    return table
