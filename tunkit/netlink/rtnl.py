"""rtnetlink message types: links, addresses, routes (IPv4 and IPv6); pure, no I/O.

Each message is a frozen dataclass of its fixed header fields plus its
attributes, with ``encode() -> bytes`` (the netlink payload, without the
nlmsghdr) and ``decode(payload)``:

* :class:`LinkMessage`: ``struct ifinfomsg`` + ``IFLA_*`` (name, MTU, MAC,
  txqueuelen, operstate, stats64, kind and tun data in :class:`LinkInfo`,
  the IPv6 address-generation mode from ``IFLA_AF_SPEC``);
* :class:`AddressMessage`: ``struct ifaddrmsg`` + ``IFA_*`` (cacheinfo, flags);
* :class:`RouteMessage`: ``struct rtmsg`` + ``RTA_*`` (dst, src, gateway,
  via, oif, iif, priority, prefsrc, table incl. >= 256, nested
  :class:`RouteMetrics` with lock bits, multipath :class:`NextHop` with
  weights, pref, expires).

Rules: an attribute that is absent is ``None``, never 0 (so metric 0 and
table 0 can be sent); ``decode(m.encode()) == m``; attributes tunkit does
not model are kept in ``unknown`` as ``(type, payload)`` pairs and
re-emitted; malformed input raises :class:`tunkit.errors.DecodeError` only.
:data:`MESSAGE_TYPES` maps ``RTM_*`` to the class and :data:`VERB_FLAGS`
maps request verbs (add, replace, append, delete, dump, ...) to header flags.
"""

from __future__ import annotations

import ipaddress
import itertools
import struct
from dataclasses import dataclass, make_dataclass
from typing import Any, Union

from tunkit._uapi import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    IFA,
    IFLA,
    NLA_F_NESTED,
    RTA,
    RTAX,
    RTM,
    RTNL_LINK_STATS64_FIELDS,
    VETH_INFO_PEER,
    IflaInet6,
    IflaInfo,
    IflaTun,
    NlmFlag,
)
from tunkit.errors import DecodeError
from tunkit.netlink.attr import _HDR as _A_HDR  # one layout per wire struct: attr.py's rtattr/nlattr
from tunkit.netlink.attr import _PAD, _V_U32, Attr, AttrDecoder, AttrEncoder, attr_name
from tunkit.netlink.attr import _U32 as _A_U32

__all__ = [
    "MESSAGE_TYPES",
    "VERB_FLAGS",
    "AddrCacheInfo",
    "AddressMessage",
    "LinkInfo",
    "LinkMessage",
    "LinkStats64",
    "NextHop",
    "RouteMessage",
    "RouteMetrics",
    "TunInfo",
    "VethInfo",
    "decode_message",
]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Unknown = tuple  # tuple[tuple[int, bytes], ...]: (type incl. NLA_F_* bits, payload)

# Request verbs -> nlmsg_flags (NOTES 3.13; the 4.4BSD table in linux/netlink.h).
VERB_FLAGS: dict[str, NlmFlag] = {
    "add": NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.EXCL,
    "replace": NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.REPLACE,
    "append": NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.APPEND,
    "prepend": NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE,
    "change": NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.REPLACE,
    "set": NlmFlag.REQUEST | NlmFlag.ACK,
    "delete": NlmFlag.REQUEST | NlmFlag.ACK,
    "get": NlmFlag.REQUEST,
    "dump": NlmFlag.REQUEST | NlmFlag.DUMP,
}

_V4, _V6 = ipaddress.IPv4Address, ipaddress.IPv6Address
_N4, _N6 = ipaddress.IPv4Network, ipaddress.IPv6Network
_ADDR_LEN = {AF_INET: 4, AF_INET6: 16}


def _new(cls, values: dict):
    """Build a decoded message without running ``__init__``.

    The dataclasses below are frozen but not slotted, so their absent
    fields fall back to the class defaults; setting the present ones in one
    ``__dict__`` update is what keeps decoding a 10,000-route dump cheap.
    """
    obj = object.__new__(cls)
    obj.__dict__.update(values)
    return obj


def _slow_network(version: int, value: int, plen: int) -> IPNetwork:
    return (_N4 if version == 4 else _N6)((value, plen), strict=False)


def _fast_network(version: int, value: int, plen: int) -> IPNetwork:
    """``IPv4Network((value, plen), strict=False)`` without re-parsing its input.

    ipaddress's constructor costs about 1.5 us, a third of decoding a route
    from a dump.  This sets the same attributes its ``__init__`` sets.  It is
    used only if :func:`_probe_fast_network` found it equal to the real
    constructor on this Python (style guide: probe, do not assume).
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


def _probe_fast_network():
    samples = [(4, 0xC6336401, 24), (4, 0, 0), (4, 0xC0000201, 32), (4, 0xC0000200, 31),
               (6, 0x20010DB8 << 96, 48), (6, 1, 128), (6, 0, 0)]
    try:
        for version, value, plen in samples:
            fast, slow = _fast_network(version, value, plen), _slow_network(version, value, plen)
            if (fast != slow or hash(fast) != hash(slow) or str(fast) != str(slow)
                    or fast.broadcast_address != slow.broadcast_address
                    or list(itertools.islice(fast.hosts(), 2)) != list(itertools.islice(slow.hosts(), 2))):
                return _slow_network
    except (AttributeError, TypeError, ValueError):  # ipaddress internals differ on this Python: use the real constructor
        return _slow_network
    return _fast_network


_make_network = _probe_fast_network()


def _family_of(*addresses) -> int:
    for a in addresses:
        if a is not None:
            return AF_INET6 if a.version == 6 else AF_INET
    return AF_UNSPEC


def _address(a: Attr, family: int) -> IPAddress:
    want = _ADDR_LEN.get(family)
    n = len(a.data)
    if want is not None and n != want:
        raise DecodeError(f"{a.name}: want {want} bytes for family {family}, got {n}")
    if n == 4:
        return _V4(a.data.tobytes())
    if n == 16:
        return _V6(a.data.tobytes())
    raise DecodeError(f"{a.name}: want 4 or 16 address bytes, got {n}")


def _unknown(a: Attr) -> tuple[int, bytes]:
    return (a.type | a.flags, a.data.tobytes())


def _put_unknown(enc: AttrEncoder, unknown) -> None:
    for t, data in unknown:
        enc.bytes(t, data)


def _finish(enc: AttrEncoder, unknown, header: struct.Struct, what: str, *fields) -> bytes:
    """Fixed header + the encoder's attributes + the kept unknown ones (a message's payload)."""
    _put_unknown(enc, unknown)
    attrs = enc.finish()
    try:
        return header.pack(*fields) + attrs
    except struct.error as e:
        raise ValueError(f"{what}: bad header field ({e})") from None


def _header(fmt: struct.Struct, payload, what: str) -> tuple:
    if len(payload) < fmt.size:
        raise DecodeError(f"{what}: want at least {fmt.size} header bytes, got {len(payload)}")
    return fmt.unpack_from(payload, 0)


# ---------------------------------------------------------------------------
# Links: struct ifinfomsg + IFLA_*
# ---------------------------------------------------------------------------
# struct ifinfomsg (linux/rtnetlink.h)
IFINFOMSG = struct.Struct(
    "="
    "B"  # ifi_family: AF_UNSPEC
    "x"  # __ifi_pad
    "H"  # ifi_type: ARPHRD_*
    "i"  # ifi_index: link index (0: none / let the kernel pick)
    "I"  # ifi_flags: IFF_* (linux/if.h)
    "I"  # ifi_change: IFF_* change mask, for set requests
)

LinkStats64 = make_dataclass(
    "LinkStats64",
    [(name, "int | None", None) for name in RTNL_LINK_STATS64_FIELDS],
    frozen=True,
    namespace={"__doc__": "``struct rtnl_link_stats64`` (IFLA_STATS64); fields a kernel did not send are None."},
)
LinkStats64.__module__ = __name__


def _encode_stats64(stats) -> bytes:
    values = [getattr(stats, n) for n in RTNL_LINK_STATS64_FIELDS]
    while values and values[-1] is None:
        values.pop()
    if None in values:
        raise ValueError(f"IFLA_STATS64: field {RTNL_LINK_STATS64_FIELDS[values.index(None)]} is None but later ones are set")
    return struct.pack(f"={len(values)}Q", *values)


def _decode_stats64(a: Attr):
    n = len(a.data)
    if n % 8:
        raise DecodeError(f"{a.name}: length {n} is not a multiple of 8")
    count = min(n // 8, len(RTNL_LINK_STATS64_FIELDS))
    values = struct.unpack_from(f"={count}Q", a.data, 0)
    return _new(LinkStats64, dict(zip(RTNL_LINK_STATS64_FIELDS, values)))


@dataclass(frozen=True)
class TunInfo:
    """IFLA_INFO_DATA of a ``tun`` link (IFLA_TUN_*)."""

    owner: int | None = None
    group: int | None = None
    type: int | None = None  # IFF_TUN (1) or IFF_TAP (2)
    pi: bool | None = None
    vnet_hdr: bool | None = None
    persist: bool | None = None
    multi_queue: bool | None = None
    num_queues: int | None = None
    num_disabled_queues: int | None = None

    _U32_FIELDS = {IflaTun.OWNER: "owner", IflaTun.GROUP: "group", IflaTun.NUM_QUEUES: "num_queues",
                   IflaTun.NUM_DISABLED_QUEUES: "num_disabled_queues"}
    _U8_FIELDS = {IflaTun.TYPE: "type"}
    _BOOL_FIELDS = {IflaTun.PI: "pi", IflaTun.VNET_HDR: "vnet_hdr", IflaTun.PERSIST: "persist",
                    IflaTun.MULTI_QUEUE: "multi_queue"}

    def encode_into(self, enc: AttrEncoder) -> None:
        for t in IflaTun:
            if (name := self._U32_FIELDS.get(t)) and getattr(self, name) is not None:
                enc.u32(t, getattr(self, name))
            elif (name := self._U8_FIELDS.get(t)) and getattr(self, name) is not None:
                enc.u8(t, getattr(self, name))
            elif (name := self._BOOL_FIELDS.get(t)) and getattr(self, name) is not None:
                enc.u8(t, int(getattr(self, name)))

    @classmethod
    def decode(cls, data) -> "TunInfo":
        values: dict[str, Any] = {}
        for a in AttrDecoder(data, IflaTun):
            if name := cls._U32_FIELDS.get(a.type):
                values[name] = a.u32()
            elif name := cls._U8_FIELDS.get(a.type):
                values[name] = a.u8()
            elif name := cls._BOOL_FIELDS.get(a.type):
                values[name] = bool(a.u8())
        return _new(cls, values)


@dataclass(frozen=True)
class VethInfo:
    """IFLA_INFO_DATA of a ``veth`` link: the peer to create (VETH_INFO_PEER)."""

    peer: "LinkMessage | None" = None

    def encode_into(self, enc: AttrEncoder) -> None:
        if self.peer is not None:
            try:
                enc.bytes(VETH_INFO_PEER, self.peer.encode())
            except ValueError as e:
                enc.error(VETH_INFO_PEER, f"peer: {e}")

    @classmethod
    def decode(cls, data) -> "VethInfo":
        peer = None
        for a in AttrDecoder(data):
            if a.type == VETH_INFO_PEER:
                peer = LinkMessage.decode(a.data)
        return _new(cls, {"peer": peer})


_INFO_DATA = {"tun": TunInfo, "veth": VethInfo}


@dataclass(frozen=True)
class LinkInfo:
    """IFLA_LINKINFO: the link ``kind`` and its kind-specific ``data``.

    ``data`` is a :class:`TunInfo` or :class:`VethInfo` for those kinds, the
    raw nested payload (bytes) for other kinds, or None.
    """

    kind: str | None = None
    data: "TunInfo | VethInfo | bytes | None" = None
    slave_kind: str | None = None
    unknown: Unknown = ()

    def encode_into(self, enc: AttrEncoder) -> None:
        if self.kind is not None:
            enc.str(IflaInfo.KIND, self.kind)
        if isinstance(self.data, (bytes, bytearray)):
            enc.bytes(IflaInfo.DATA, bytes(self.data))
        elif self.data is not None:
            enc.nested(IflaInfo.DATA, self.data.encode_into)
        if self.slave_kind is not None:
            enc.str(IflaInfo.SLAVE_KIND, self.slave_kind)
        _put_unknown(enc, self.unknown)

    @classmethod
    def decode(cls, data) -> "LinkInfo":
        values: dict[str, Any] = {}
        raw_data = None
        unknown = []
        for a in AttrDecoder(data, IflaInfo):
            t = a.type
            if t == IflaInfo.KIND:
                values["kind"] = a.str()
            elif t == IflaInfo.DATA:
                raw_data = a.data
            elif t == IflaInfo.SLAVE_KIND:
                values["slave_kind"] = a.str()
            else:
                unknown.append(_unknown(a))
        if raw_data is not None:
            kind_cls = _INFO_DATA.get(values.get("kind"))
            values["data"] = kind_cls.decode(raw_data) if kind_cls else raw_data.tobytes()
        if unknown:
            values["unknown"] = tuple(unknown)
        return _new(cls, values)


@dataclass(frozen=True)
class LinkMessage:
    """A link (RTM_NEWLINK/DELLINK/GETLINK/SETLINK): ifinfomsg + IFLA_* attributes."""

    # struct ifinfomsg
    family: int = AF_UNSPEC
    type: int = 0  # ARPHRD_*
    index: int = 0
    flags: int = 0  # IFF_* (tunkit._uapi.IfFlag)
    change: int = 0  # IFF_* bits this request changes
    # attributes
    ifname: str | None = None
    address: bytes | None = None  # hardware address (MAC)
    broadcast: bytes | None = None
    perm_address: bytes | None = None
    mtu: int | None = None
    min_mtu: int | None = None
    max_mtu: int | None = None
    link: int | None = None
    master: int | None = None
    txqlen: int | None = None
    operstate: int | None = None  # IfOper
    linkmode: int | None = None
    group: int | None = None
    promiscuity: int | None = None
    num_tx_queues: int | None = None
    num_rx_queues: int | None = None
    carrier: int | None = None
    carrier_changes: int | None = None
    qdisc: str | None = None
    ifalias: str | None = None
    link_netnsid: int | None = None
    net_ns_fd: int | None = None  # request only: move to the namespace behind this fd
    net_ns_pid: int | None = None  # request only: move to this process's namespace
    ext_mask: int | None = None  # request only: RTEXT_FILTER_*
    linkinfo: LinkInfo | None = None
    stats64: Any = None  # LinkStats64
    addr_gen_mode: int | None = None  # IFLA_AF_SPEC / AF_INET6 / IFLA_INET6_ADDR_GEN_MODE
    unknown: Unknown = ()

    def encode(self) -> bytes:
        enc = AttrEncoder()
        if self.ifname is not None:
            enc.str(IFLA.IFNAME, self.ifname)
        for t, name in _LINK_BYTES.items():
            if (v := getattr(self, name)) is not None:
                enc.bytes(t, v)
        for t, name in _LINK_U32.items():
            if (v := getattr(self, name)) is not None:
                enc.u32(t, v)
        for t, name in _LINK_U8.items():
            if (v := getattr(self, name)) is not None:
                enc.u8(t, v)
        for t, name in _LINK_STR.items():
            if (v := getattr(self, name)) is not None:
                enc.str(t, v)
        if self.link_netnsid is not None:
            enc.s32(IFLA.LINK_NETNSID, self.link_netnsid)
        if self.linkinfo is not None:
            enc.nested(IFLA.LINKINFO, self.linkinfo.encode_into)
        if self.stats64 is not None:
            try:
                enc.bytes(IFLA.STATS64, _encode_stats64(self.stats64))
            except ValueError as e:
                enc.error(IFLA.STATS64, e)
        if self.addr_gen_mode is not None:
            mode = self.addr_gen_mode
            enc.nested(IFLA.AF_SPEC, lambda spec: spec.nested(AF_INET6, lambda v6: v6.u8(IflaInet6.ADDR_GEN_MODE, mode)))
        return _finish(enc, self.unknown, IFINFOMSG, "ifinfomsg", self.family, self.type, self.index, self.flags, self.change)

    @classmethod
    def decode(cls, payload) -> "LinkMessage":
        family, typ, index, flags, change = _header(IFINFOMSG, payload, "ifinfomsg")
        values: dict[str, Any] = {"family": family, "type": typ, "index": index, "flags": flags, "change": change}
        unknown = []
        for a in AttrDecoder(memoryview(payload)[IFINFOMSG.size :], IFLA):
            t = a.type
            if t == IFLA.IFNAME:
                values["ifname"] = a.str()
            elif name := _LINK_U32.get(t):
                values[name] = a.u32()
            elif name := _LINK_BYTES.get(t):
                values[name] = a.bytes()
            elif name := _LINK_U8.get(t):
                values[name] = a.u8()
            elif name := _LINK_STR.get(t):
                values[name] = a.str()
            elif t == IFLA.LINK_NETNSID:
                values["link_netnsid"] = a.s32()
            elif t == IFLA.LINKINFO:
                values["linkinfo"] = LinkInfo.decode(a.data)
            elif t == IFLA.STATS64:
                values["stats64"] = _decode_stats64(a)
            elif t == IFLA.AF_SPEC:
                for fam in a.nested():
                    if fam.type == AF_INET6:
                        for v6 in fam.nested(IflaInet6):
                            if v6.type == IflaInet6.ADDR_GEN_MODE:
                                values["addr_gen_mode"] = v6.u8()
            else:
                unknown.append(_unknown(a))
        if unknown:
            values["unknown"] = tuple(unknown)
        return _new(cls, values)

    @property
    def kind(self) -> str | None:
        return self.linkinfo.kind if self.linkinfo is not None else None


_LINK_BYTES = {IFLA.ADDRESS: "address", IFLA.BROADCAST: "broadcast", IFLA.PERM_ADDRESS: "perm_address"}
_LINK_U32 = {
    IFLA.MTU: "mtu", IFLA.MIN_MTU: "min_mtu", IFLA.MAX_MTU: "max_mtu", IFLA.LINK: "link",
    IFLA.MASTER: "master", IFLA.TXQLEN: "txqlen", IFLA.GROUP: "group", IFLA.PROMISCUITY: "promiscuity",
    IFLA.NUM_TX_QUEUES: "num_tx_queues", IFLA.NUM_RX_QUEUES: "num_rx_queues",
    IFLA.CARRIER_CHANGES: "carrier_changes", IFLA.NET_NS_FD: "net_ns_fd", IFLA.NET_NS_PID: "net_ns_pid",
    IFLA.EXT_MASK: "ext_mask",
}
_LINK_U8 = {IFLA.OPERSTATE: "operstate", IFLA.LINKMODE: "linkmode", IFLA.CARRIER: "carrier"}
_LINK_STR = {IFLA.QDISC: "qdisc", IFLA.IFALIAS: "ifalias"}


# ---------------------------------------------------------------------------
# Addresses: struct ifaddrmsg + IFA_*
# ---------------------------------------------------------------------------
# struct ifaddrmsg (linux/if_addr.h)
IFADDRMSG = struct.Struct(
    "="
    "B"  # ifa_family: AF_INET / AF_INET6
    "B"  # ifa_prefixlen
    "B"  # ifa_flags: IFA_F_* (low 8 bits; IFA_FLAGS carries all 32)
    "B"  # ifa_scope: RT_SCOPE_*
    "I"  # ifa_index: link index
)
# struct ifa_cacheinfo (linux/if_addr.h)
IFA_CACHEINFO = struct.Struct(
    "="
    "I"  # ifa_prefered: preferred lifetime, seconds (0xFFFFFFFF: forever)
    "I"  # ifa_valid: valid lifetime, seconds (0xFFFFFFFF: forever)
    "I"  # cstamp: created, hundredths of a second since boot
    "I"  # tstamp: updated, hundredths of a second since boot
)


@dataclass(frozen=True)
class AddrCacheInfo:
    """IFA_CACHEINFO: lifetimes in seconds (0xFFFFFFFF = forever) and timestamps."""

    preferred: int
    valid: int
    cstamp: int = 0
    tstamp: int = 0


@dataclass(frozen=True)
class AddressMessage:
    """An address (RTM_NEWADDR/DELADDR/GETADDR): ifaddrmsg + IFA_* attributes."""

    # struct ifaddrmsg
    family: int | None = None  # None: taken from address/local
    prefixlen: int = 0
    flags: int = 0  # IFA_F_* low byte
    scope: int = 0
    index: int = 0
    # attributes
    address: IPAddress | None = None  # IFA_ADDRESS (prefix address / peer)
    local: IPAddress | None = None  # IFA_LOCAL
    label: str | None = None
    broadcast: IPAddress | None = None
    anycast: IPAddress | None = None
    cacheinfo: AddrCacheInfo | None = None
    extended_flags: int | None = None  # IFA_FLAGS (all 32 bits)
    rt_priority: int | None = None  # IFA_RT_PRIORITY: metric of the prefix route
    proto: int | None = None  # IFA_PROTO
    unknown: Unknown = ()

    def __post_init__(self) -> None:
        if self.family is None:
            object.__setattr__(self, "family", _family_of(self.local, self.address))

    @property
    def all_flags(self) -> int:
        """IFA_F_* flags: IFA_FLAGS if present, else the header byte."""
        return self.extended_flags if self.extended_flags is not None else self.flags

    @property
    def interface(self) -> "ipaddress.IPv4Interface | ipaddress.IPv6Interface | None":
        """The local address with its prefix length, e.g. ``192.0.2.1/24``."""
        addr = self.local if self.local is not None else self.address
        if addr is None:
            return None
        cls = ipaddress.IPv4Interface if addr.version == 4 else ipaddress.IPv6Interface
        return cls((int(addr), self.prefixlen))

    def encode(self) -> bytes:
        enc = AttrEncoder()
        for t, name in _ADDR_IP.items():
            if (v := getattr(self, name)) is not None:
                enc.ip(t, v)
        if self.label is not None:
            enc.str(IFA.LABEL, self.label)
        if self.cacheinfo is not None:
            ci = self.cacheinfo
            try:
                enc.bytes(IFA.CACHEINFO, IFA_CACHEINFO.pack(ci.preferred, ci.valid, ci.cstamp, ci.tstamp))
            except struct.error as e:
                enc.error(IFA.CACHEINFO, e)
        if self.extended_flags is not None:
            enc.u32(IFA.FLAGS, self.extended_flags)
        if self.rt_priority is not None:
            enc.u32(IFA.RT_PRIORITY, self.rt_priority)
        if self.proto is not None:
            enc.u8(IFA.PROTO, self.proto)
        return _finish(enc, self.unknown, IFADDRMSG, "ifaddrmsg", self.family, self.prefixlen, self.flags, self.scope, self.index)

    @classmethod
    def decode(cls, payload) -> "AddressMessage":
        family, prefixlen, flags, scope, index = _header(IFADDRMSG, payload, "ifaddrmsg")
        if prefixlen > 8 * _ADDR_LEN.get(family, 16):
            raise DecodeError(f"ifaddrmsg: prefix length {prefixlen} is too long for family {family}")
        values: dict[str, Any] = {"family": family, "prefixlen": prefixlen, "flags": flags, "scope": scope, "index": index}
        unknown = []
        for a in AttrDecoder(memoryview(payload)[IFADDRMSG.size :], IFA):
            t = a.type
            if name := _ADDR_IP.get(t):
                values[name] = _address(a, family)
            elif t == IFA.LABEL:
                values["label"] = a.str()
            elif t == IFA.CACHEINFO:
                if len(a.data) != IFA_CACHEINFO.size:
                    raise DecodeError(f"{a.name}: want {IFA_CACHEINFO.size} bytes, got {len(a.data)}")
                values["cacheinfo"] = AddrCacheInfo(*IFA_CACHEINFO.unpack_from(a.data, 0))
            elif t == IFA.FLAGS:
                values["extended_flags"] = a.u32()
            elif t == IFA.RT_PRIORITY:
                values["rt_priority"] = a.u32()
            elif t == IFA.PROTO:
                values["proto"] = a.u8()
            else:
                unknown.append(_unknown(a))
        if unknown:
            values["unknown"] = tuple(unknown)
        return _new(cls, values)


_ADDR_IP = {IFA.ADDRESS: "address", IFA.LOCAL: "local", IFA.BROADCAST: "broadcast", IFA.ANYCAST: "anycast"}


# ---------------------------------------------------------------------------
# Routes: struct rtmsg + RTA_*
# ---------------------------------------------------------------------------
# struct rtmsg (linux/rtnetlink.h)
RTMSG = struct.Struct(
    "="
    "B"  # rtm_family: AF_INET / AF_INET6
    "B"  # rtm_dst_len: destination prefix length
    "B"  # rtm_src_len: source prefix length
    "B"  # rtm_tos
    "B"  # rtm_table: RT_TABLE_* (RT_TABLE_UNSPEC when the id is >= 256: see RTA_TABLE)
    "B"  # rtm_protocol: RTPROT_*
    "B"  # rtm_scope: RT_SCOPE_*
    "B"  # rtm_type: RTN_*
    "I"  # rtm_flags: RTM_F_* | RTNH_F_*
)
# struct rtnexthop (linux/rtnetlink.h), followed by the nexthop's own RTA_* attributes
RTNEXTHOP = struct.Struct(
    "="
    "H"  # rtnh_len: this record including its attributes
    "B"  # rtnh_flags: RTNH_F_*
    "B"  # rtnh_hops: weight - 1
    "i"  # rtnh_ifindex
)
# struct rtvia (linux/rtnetlink.h): rtvia_family (__kernel_sa_family_t, u16) + address bytes
RTVIA_FAMILY = struct.Struct("=H")

_METRIC_NAMES = {
    RTAX.LOCK: "lock", RTAX.MTU: "mtu", RTAX.WINDOW: "window", RTAX.RTT: "rtt", RTAX.RTTVAR: "rttvar",
    RTAX.SSTHRESH: "ssthresh", RTAX.CWND: "cwnd", RTAX.ADVMSS: "advmss", RTAX.REORDERING: "reordering",
    RTAX.HOPLIMIT: "hoplimit", RTAX.INITCWND: "initcwnd", RTAX.FEATURES: "features", RTAX.RTO_MIN: "rto_min",
    RTAX.INITRWND: "initrwnd", RTAX.QUICKACK: "quickack", RTAX.FASTOPEN_NO_COOKIE: "fastopen_no_cookie",
}


@dataclass(frozen=True)
class RouteMetrics:
    """RTA_METRICS: nested RTAX_* values (all u32 but ``cc_algo``, a string).

    ``lock`` is the RTAX_LOCK bit mask: bit ``1 << RTAX.MTU`` set means
    ``mtu lock``.  Use :meth:`locked`/:meth:`lock_mask` rather than bit maths.
    """

    lock: int | None = None
    mtu: int | None = None
    window: int | None = None
    rtt: int | None = None
    rttvar: int | None = None
    ssthresh: int | None = None
    cwnd: int | None = None
    advmss: int | None = None
    reordering: int | None = None
    hoplimit: int | None = None
    initcwnd: int | None = None
    features: int | None = None
    rto_min: int | None = None
    initrwnd: int | None = None
    quickack: int | None = None
    cc_algo: str | None = None
    fastopen_no_cookie: int | None = None
    unknown: Unknown = ()

    @staticmethod
    def lock_mask(*names: str) -> int:
        """RTAX_LOCK mask for metric names, e.g. ``lock_mask("mtu")``."""
        return sum(1 << RTAX[name.upper()] for name in names)

    def locked(self, name: str) -> bool:
        return bool(self.lock and self.lock & (1 << RTAX[name.upper()]))

    def encode_into(self, enc: AttrEncoder) -> None:
        for t, name in _METRIC_NAMES.items():
            if (v := getattr(self, name)) is not None:
                enc.u32(t, v)
        if self.cc_algo is not None:
            enc.str(RTAX.CC_ALGO, self.cc_algo)
        _put_unknown(enc, self.unknown)

    @classmethod
    def decode(cls, data) -> "RouteMetrics":
        view = data if isinstance(data, memoryview) else memoryview(data)
        values: dict[str, Any] = {}
        unknown = []
        off, end = 0, len(view)
        while end - off >= 4:  # AttrDecoder, flattened: one in four routes of a dump has metrics
            n, t = _A_HDR.unpack_from(view, off)
            if n < 4 or n > end - off:
                raise DecodeError(f"{attr_name(t & 0x3FFF, RTAX)} at offset {off}: bad length {n} ({end - off} bytes left)")
            t &= 0x3FFF
            if name := _METRIC_NAMES.get(t):
                if n != 8:
                    raise DecodeError(f"RTAX_{name.upper()}: want 4 bytes, got {n - 4}")
                values[name] = _V_U32.unpack_from(view, off + 4)[0]
            elif t == RTAX.CC_ALGO:
                values["cc_algo"] = Attr(t, 0, view[off + 4 : off + n], RTAX).str()
            else:
                unknown.append((t, view[off + 4 : off + n].tobytes()))
            off += (n + 3) & ~3
        if unknown:
            values["unknown"] = tuple(unknown)
        return _new(cls, values)


@dataclass(frozen=True)
class NextHop:
    """One nexthop of a multipath route (struct rtnexthop + its RTA_* attributes).

    ``weight`` is 1..256 (``rtnh_hops + 1``); ``via`` is a gateway of the other
    address family (RTA_VIA), ``gateway`` one of the route's own (RTA_GATEWAY).
    """

    gateway: IPAddress | None = None
    via: IPAddress | None = None
    oif: int | None = None
    weight: int = 1
    flags: int = 0  # RTNH_F_*
    unknown: Unknown = ()

    def encode(self) -> bytes:
        enc = AttrEncoder()
        if self.gateway is not None:
            enc.ip(RTA.GATEWAY, self.gateway)
        if self.via is not None:
            enc.bytes(RTA.VIA, _encode_via(self.via))
        _put_unknown(enc, self.unknown)
        attrs = enc.finish()
        try:
            return RTNEXTHOP.pack(RTNEXTHOP.size + len(attrs), self.flags, self.weight - 1, self.oif or 0) + attrs
        except struct.error as e:
            raise ValueError(f"RTA_MULTIPATH nexthop: bad field (weight {self.weight}, flags {self.flags}): {e}") from None


def _encode_via(via: IPAddress) -> bytes:
    return RTVIA_FAMILY.pack(AF_INET6 if via.version == 6 else AF_INET) + via.packed


def _decode_via(a: Attr) -> IPAddress:
    if len(a.data) < 2:
        raise DecodeError(f"{a.name}: want at least 2 bytes, got {len(a.data)}")
    (fam,) = RTVIA_FAMILY.unpack_from(a.data, 0)
    want = _ADDR_LEN.get(fam)
    if want is None or len(a.data) != 2 + want:
        raise DecodeError(f"{a.name}: family {fam} with {len(a.data) - 2} address bytes")
    raw = a.data[2:].tobytes()
    return _V4(raw) if want == 4 else _V6(raw)


def _decode_multipath(a: Attr, family: int) -> tuple[NextHop, ...]:
    data = a.data
    off, end = 0, len(data)
    hops = []
    while end - off >= RTNEXTHOP.size:
        length, flags, hopcount, ifindex = RTNEXTHOP.unpack_from(data, off)
        if length < RTNEXTHOP.size or length > end - off:
            raise DecodeError(f"{a.name}: rtnexthop at offset {off}: bad rtnh_len {length} ({end - off} bytes left)")
        values: dict[str, Any] = {"weight": hopcount + 1, "flags": flags}
        if ifindex:
            values["oif"] = ifindex
        unknown = []
        for na in AttrDecoder(data[off + RTNEXTHOP.size : off + length], RTA):
            if na.type == RTA.GATEWAY:
                values["gateway"] = _address(na, family)
            elif na.type == RTA.VIA:
                values["via"] = _decode_via(na)
            else:
                unknown.append(_unknown(na))
        if unknown:
            values["unknown"] = tuple(unknown)
        hops.append(_new(NextHop, values))
        off += (length + 3) & ~3
    return tuple(hops)


@dataclass(frozen=True)
class RouteMessage:
    """A route (RTM_NEWROUTE/DELROUTE/GETROUTE): rtmsg + RTA_* attributes.

    ``dst``/``src`` are networks whose prefix lengths fill rtm_dst_len and
    rtm_src_len; ``dst=None`` means no RTA_DST (the default route when
    dst_len is 0).  ``table`` goes into RTA_TABLE (and into rtm_table when
    below 256).  ``priority`` is iproute2's ``metric``; ``metrics`` holds
    RTAX_* values such as mtu and advmss.  ``family`` defaults from the
    addresses given.
    """

    # struct rtmsg
    family: int | None = None
    dst: IPNetwork | None = None
    src: IPNetwork | None = None
    tos: int = 0
    table: int | None = None
    protocol: int = 0  # RTPROT_*
    scope: int = 0  # RT_SCOPE_*
    type: int = 0  # RTN_*
    flags: int = 0  # RTM_F_* | RTNH_F_*
    # attributes
    oif: int | None = None
    iif: int | None = None
    gateway: IPAddress | None = None
    via: IPAddress | None = None
    priority: int | None = None
    prefsrc: IPAddress | None = None
    metrics: RouteMetrics | None = None
    multipath: tuple[NextHop, ...] | None = None
    pref: int | None = None  # IPv6 router preference (ICMPV6_ROUTER_PREF_*)
    expires: int | None = None  # seconds
    mark: int | None = None
    uid: int | None = None  # RTA_UID: the uid a lookup was made for (route get)
    unknown: Unknown = ()

    def __post_init__(self) -> None:
        if self.family is None:
            object.__setattr__(self, "family", _family_of(self.dst, self.src, self.gateway, self.prefsrc))

    # Routes come by the ten thousand (dumps, bulk adds), so encode/decode are
    # written out flat with one precompiled Struct per attribute layout instead
    # of going through AttrEncoder/AttrDecoder objects; the wire format and the
    # errors are the same.
    def encode(self) -> bytes:
        parts: list[bytes] = []
        put = parts.append
        table, dst, src = self.table, self.dst, self.src
        head = None
        try:
            if self.family == AF_INET and table is not None and dst is not None and src is None and dst.version == 4:
                # the usual IPv4 route: rtmsg (+ RTA_TABLE) + RTA_DST in a single pack
                if 0 < table < 256:
                    head = _RT4_DST.pack(AF_INET, dst.prefixlen, 0, self.tos, table, self.protocol, self.scope,
                                         self.type, self.flags, 8, _RTA_DST, dst.network_address.packed)
                else:
                    head = _RT4_TABLE_DST.pack(AF_INET, dst.prefixlen, 0, self.tos, 0, self.protocol, self.scope,
                                               self.type, self.flags, 8, _RTA_TABLE, table,
                                               8, _RTA_DST, dst.network_address.packed)
            else:
                if table is not None and not 0 < table < 256:  # as ip does: ids 1-255 fit rtm_table
                    put(_A_U32.pack(8, _RTA_TABLE, table))
                if dst is not None:
                    packed = dst.network_address.packed
                    put(_A_HDR.pack(4 + len(packed), _RTA_DST) + packed)
                if src is not None:
                    packed = src.network_address.packed
                    put(_A_HDR.pack(4 + len(packed), _RTA_SRC) + packed)
            if self.iif is not None:
                put(_A_U32.pack(8, _RTA_IIF, self.iif))
            if self.oif is not None:
                put(_A_U32.pack(8, _RTA_OIF, self.oif))
            if self.gateway is not None:
                packed = self.gateway.packed
                put(_A_HDR.pack(4 + len(packed), _RTA_GATEWAY) + packed)
            if self.via is not None:
                packed = _encode_via(self.via)
                put(_A_HDR.pack(4 + len(packed), _RTA_VIA) + packed + _PAD[len(packed) & 3])
            if self.priority is not None:
                put(_A_U32.pack(8, _RTA_PRIORITY, self.priority))
            if self.prefsrc is not None:
                packed = self.prefsrc.packed
                put(_A_HDR.pack(4 + len(packed), _RTA_PREFSRC) + packed)
        except struct.error as e:
            raise ValueError(f"{self._bad_field()}: {e}") from None
        except AttributeError as e:  # an address field that is not an ipaddress object
            raise ValueError(f"route: want ipaddress objects for dst/src/gateway/prefsrc ({e})") from None
        metrics = self.metrics
        if metrics is not None and metrics.cc_algo is None and not metrics.unknown:
            try:  # all-u32 metrics (the usual mtu/advmss/lock): packed here, without an AttrEncoder
                # (the instance dict holds the fields that were set; RTAX order as the kernel lists them)
                items = sorted([(_METRIC_TYPES[k], v) for k, v in metrics.__dict__.items() if v is not None and k in _METRIC_TYPES])
                inner = b"".join([_A_U32.pack(8, t, v) for t, v in items])
            except struct.error as e:
                raise ValueError(f"RTA_METRICS: {e}") from None
            put(_A_HDR.pack(4 + len(inner), _RTA_METRICS_NESTED) + inner)
            metrics = None
        if metrics is not None or self.multipath is not None or self.mark is not None or self.pref is not None \
                or self.expires is not None or self.uid is not None or self.unknown:
            enc = AttrEncoder()
            if metrics is not None:
                enc.nested(RTA.METRICS, metrics.encode_into)
            if self.multipath is not None:
                try:
                    enc.bytes(RTA.MULTIPATH, b"".join(h.encode() for h in self.multipath))
                except ValueError as e:
                    enc.error(RTA.MULTIPATH, e)
            if self.mark is not None:
                enc.u32(RTA.MARK, self.mark)
            if self.pref is not None:
                enc.u8(RTA.PREF, self.pref)
            if self.expires is not None:
                enc.u32(RTA.EXPIRES, self.expires)
            if self.uid is not None:
                enc.u32(RTA.UID, self.uid)
            _put_unknown(enc, self.unknown)
            put(enc.finish())
        if head is not None:
            return head + b"".join(parts)
        try:
            head = RTMSG.pack(
                self.family,
                dst.prefixlen if dst is not None else 0,
                src.prefixlen if src is not None else 0,
                self.tos,
                table if table is not None and table < 256 else 0,
                self.protocol,
                self.scope,
                self.type,
                self.flags,
            )
        except struct.error as e:
            raise ValueError(f"rtmsg: bad header field ({e})") from None
        return head + b"".join(parts)

    def _bad_field(self) -> str:
        for name, t in (("table", RTA.TABLE), ("iif", RTA.IIF), ("oif", RTA.OIF), ("priority", RTA.PRIORITY)):
            v = getattr(self, name)
            if v is not None and not (isinstance(v, int) and 0 <= v <= 0xFFFFFFFF):
                return f"RTA_{t.name}: {v!r} is not a u32"
        return "route"

    @classmethod
    def decode(cls, payload) -> "RouteMessage":
        view = payload if isinstance(payload, memoryview) else memoryview(payload)
        end = len(view)
        if end < 12:
            raise DecodeError(f"rtmsg: want at least 12 header bytes, got {end}")
        family, dst_len, src_len, tos, table, protocol, scope, typ, flags = RTMSG.unpack_from(view, 0)
        obj = object.__new__(cls)  # as _new(), but filling the instance dict in place
        values = obj.__dict__
        values["family"] = family
        values["tos"] = tos
        values["protocol"] = protocol
        values["scope"] = scope
        values["type"] = typ
        values["flags"] = flags
        if table:
            values["table"] = table
        alen = _ADDR_LEN.get(family)
        unknown = None
        off = 12
        while end - off >= 4:
            n, t = _A_HDR.unpack_from(view, off)
            if n < 4 or n > end - off:
                raise DecodeError(f"{attr_name(t & 0x3FFF, RTA)} at offset {off}: bad length {n} ({end - off} bytes left)")
            spec = _RTA_DECODE.get(t & 0x3FFF)
            if spec is None:
                unknown = unknown or []
                unknown.append((t, view[off + 4 : off + n].tobytes()))
            else:
                kind, name = spec
                size = n - 4
                if kind == _K_U32:
                    if size != 4:
                        raise DecodeError(f"RTA_{name.upper()}: want 4 bytes, got {size}")
                    values[name] = _V_U32.unpack_from(view, off + 4)[0]
                elif kind == _K_ADDR or kind == _K_NET:
                    if size != alen:
                        raise DecodeError(f"RTA_{name.upper()}: want {alen} bytes for family {family}, got {size}")
                    if size == 4:
                        a = _V_BE32.unpack_from(view, off + 4)[0]
                    else:
                        a = int.from_bytes(view[off + 4 : off + n], "big")
                    if kind == _K_NET:
                        plen = dst_len if name == "dst" else src_len
                        try:
                            values[name] = _make_network(4 if size == 4 else 6, a, plen)
                        except ValueError as e:  # NetmaskValueError: prefix length out of range
                            raise DecodeError(f"RTA_{name.upper()}: bad prefix length {plen} ({e})") from None
                    else:
                        values[name] = _V4(a) if size == 4 else _V6(a)
                else:
                    a = Attr(t & 0x3FFF, t & 0xC000, view[off + 4 : off + n], RTA)
                    if kind == _K_METRICS:
                        values[name] = RouteMetrics.decode(a.data)
                    elif kind == _K_MULTIPATH:
                        values[name] = _decode_multipath(a, family)
                    elif kind == _K_VIA:
                        values[name] = _decode_via(a)
                    else:  # _K_U8
                        values[name] = a.u8()
            off += (n + 3) & ~3
        if unknown:
            values["unknown"] = tuple(unknown)
        return obj


_RT4_DST = struct.Struct(RTMSG.format + "HH4s")  # rtmsg, RTA_DST (an IPv4 address)
_RT4_TABLE_DST = struct.Struct(RTMSG.format + "HHI" + "HH4s")  # rtmsg, RTA_TABLE (u32), RTA_DST
_V_BE32 = struct.Struct("!I")  # an IPv4 address payload, as an int
_RTA_TABLE, _RTA_DST, _RTA_SRC, _RTA_IIF, _RTA_OIF = int(RTA.TABLE), int(RTA.DST), int(RTA.SRC), int(RTA.IIF), int(RTA.OIF)
_RTA_GATEWAY, _RTA_VIA, _RTA_PRIORITY, _RTA_PREFSRC = int(RTA.GATEWAY), int(RTA.VIA), int(RTA.PRIORITY), int(RTA.PREFSRC)
_RTA_METRICS_NESTED = int(RTA.METRICS) | NLA_F_NESTED
_METRIC_TYPES = {name: int(t) for t, name in _METRIC_NAMES.items()}
_K_U32, _K_ADDR, _K_NET, _K_METRICS, _K_MULTIPATH, _K_VIA, _K_U8 = range(7)
_RTA_DECODE = {  # RTA_* -> (how to decode it, RouteMessage field)
    RTA.TABLE: (_K_U32, "table"), RTA.OIF: (_K_U32, "oif"), RTA.IIF: (_K_U32, "iif"),
    RTA.PRIORITY: (_K_U32, "priority"), RTA.MARK: (_K_U32, "mark"), RTA.EXPIRES: (_K_U32, "expires"),
    RTA.UID: (_K_U32, "uid"),
    RTA.GATEWAY: (_K_ADDR, "gateway"), RTA.PREFSRC: (_K_ADDR, "prefsrc"),
    RTA.DST: (_K_NET, "dst"), RTA.SRC: (_K_NET, "src"),
    RTA.METRICS: (_K_METRICS, "metrics"), RTA.MULTIPATH: (_K_MULTIPATH, "multipath"),
    RTA.VIA: (_K_VIA, "via"), RTA.PREF: (_K_U8, "pref"),
}


# RTM_* -> message class, for dispatching replies and notifications.
MESSAGE_TYPES: dict[int, type] = {
    RTM.NEWLINK: LinkMessage,
    RTM.DELLINK: LinkMessage,
    RTM.GETLINK: LinkMessage,
    RTM.SETLINK: LinkMessage,
    RTM.NEWADDR: AddressMessage,
    RTM.DELADDR: AddressMessage,
    RTM.GETADDR: AddressMessage,
    RTM.NEWROUTE: RouteMessage,
    RTM.DELROUTE: RouteMessage,
    RTM.GETROUTE: RouteMessage,
}


def decode_message(msg_type: int, payload):
    """Decode an rtnetlink payload by its RTM_* type; None for types tunkit does not model."""
    cls = MESSAGE_TYPES.get(msg_type)
    return cls.decode(payload) if cls is not None else None
