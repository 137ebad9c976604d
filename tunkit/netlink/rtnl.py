"""rtnetlink message types: links, addresses, routes (IPv4 and IPv6); pure, no I/O.

Each message is a frozen record (:mod:`tunkit.netlink.record`) of its fixed header fields plus its
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

(This module is about 750 lines: three message families, links with their kind data, addresses and
routes with metrics and nexthops, each a record class plus its table.  Rules, neighbours, nexthop
objects and further link kinds live in rule.py, neigh.py, nexthop.py and linkkinds.py.)

Every message is described by one field table (:mod:`tunkit.netlink.fields`)
that drives both ``encode`` and ``decode``; adding an attribute is one line
in its table.  Rules: an attribute that is absent is ``None``, never 0 (so metric 0 and
table 0 can be sent); ``decode(m.encode()) == m``; attributes tunkit does
not model are kept in ``unknown`` as ``(type, payload)`` pairs and
re-emitted; malformed input raises :class:`tunkit.errors.DecodeError` only.
:data:`MESSAGE_TYPES` maps ``RTM_*`` to the class and :data:`VERB_FLAGS`
maps request verbs (add, replace, append, delete, dump, ...) to header flags.
"""

from __future__ import annotations

import ipaddress
import struct
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
from tunkit.netlink.fields import (
    ADDR,
    BOOL8,
    BYTES,
    DEPTH,
    FAMILY,
    NET,
    S32,
    STR,
    U8,
    U32,
    Field,
    Codec,
    Table,
    bind as _bind,
    construct,
    custom,
    nested,
    pack_attr,
    struct_kind,
    unpack_address,
)
from tunkit.netlink.record import make_record, record

__all__ = [
    "MESSAGE_TYPES",
    "VERB_FLAGS",
    "AddrCacheInfo",
    "AddressMessage",
    "LinkInfo",
    "LinkMessage",
    "LinkStats64",
    "NextHop",
    "RouteCacheInfo",
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

_ADDR_LEN = {AF_INET: 4, AF_INET6: 16}


def _family_of(*addresses) -> int:
    for a in addresses:
        if a is not None:
            return AF_INET6 if a.version == 6 else AF_INET
    return AF_UNSPEC


_Codec = Codec  # the base of every message class here (fields.py)


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

LinkStats64 = make_record(
    "LinkStats64",
    [(name, "int | None", None) for name in RTNL_LINK_STATS64_FIELDS],
    namespace={"__doc__": "``struct rtnl_link_stats64`` (IFLA_STATS64); fields a kernel did not send are None."},
    module=__name__,
)


def _encode_stats64(stats) -> bytes:
    values = [getattr(stats, n) for n in RTNL_LINK_STATS64_FIELDS]
    while values and values[-1] is None:
        values.pop()
    if None in values:
        raise ValueError(f"field {RTNL_LINK_STATS64_FIELDS[values.index(None)]} is None but later ones are set")
    return struct.pack(f"={len(values)}Q", *values)


def _decode_stats64(view, ctx, label):
    n = len(view)
    if n % 8:
        raise DecodeError(f"{label}: length {n} is not a multiple of 8")
    count = min(n // 8, len(RTNL_LINK_STATS64_FIELDS))
    return construct(LinkStats64, dict(zip(RTNL_LINK_STATS64_FIELDS, struct.unpack_from(f"={count}Q", view, 0))))


@record
class TunInfo(_Codec):
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


_bind(TunInfo, Table(TunInfo, IflaTun, [
    Field(IflaTun.OWNER, "owner", U32),
    Field(IflaTun.GROUP, "group", U32),
    Field(IflaTun.TYPE, "type", U8),
    Field(IflaTun.PI, "pi", BOOL8),
    Field(IflaTun.VNET_HDR, "vnet_hdr", BOOL8),
    Field(IflaTun.PERSIST, "persist", BOOL8),
    Field(IflaTun.MULTI_QUEUE, "multi_queue", BOOL8),
    Field(IflaTun.NUM_QUEUES, "num_queues", U32),
    Field(IflaTun.NUM_DISABLED_QUEUES, "num_disabled_queues", U32),
], what="IFLA_INFO_DATA (tun)"))


@record
class VethInfo(_Codec):
    """IFLA_INFO_DATA of a ``veth`` link: the peer to create (VETH_INFO_PEER)."""

    peer: "LinkMessage | None" = None


# the peer is a whole ifinfomsg + IFLA_* message, one nesting level down
_PEER = custom(lambda peer: peer.encode(), lambda view, ctx, label: LinkMessage.decode(view, ctx[DEPTH] + 1))
_bind(VethInfo, Table(VethInfo, None, [Field(VETH_INFO_PEER, "peer", _PEER)], what="IFLA_INFO_DATA (veth)"))

class _KindData(dict):
    """IFLA_INFO_KIND -> the class of its IFLA_INFO_DATA (others stay bytes); vxlan, macvlan, ipvlan, vlan,
    vrf, bond and bridge come from linkkinds.py, imported the first time a link of theirs is decoded."""

    def get(self, kind, default=None):
        if kind in ("vxlan", "macvlan", "ipvlan", "vlan", "vrf", "bond", "bridge") and not dict.__contains__(self, kind):
            from tunkit.netlink import linkkinds

            self.update(linkkinds.KINDS)
        return dict.get(self, kind, default)


INFO_DATA: dict[str, type] = _KindData(tun=TunInfo, veth=VethInfo)


@record
class LinkInfo(_Codec):
    """IFLA_LINKINFO: the link ``kind`` and its kind-specific ``data``.

    ``data`` is the class :data:`INFO_DATA` has for the kind (:class:`TunInfo`,
    :class:`VethInfo`, ...), the raw nested payload (bytes) for other kinds,
    or None; ``slave_data`` likewise (bytes) for the port's master kind.
    """

    kind: str | None = None
    data: Any = None
    slave_kind: str | None = None
    slave_data: Any = None
    unknown: Unknown = ()


def _pack_info_data(t: int, data) -> bytes:
    if isinstance(data, (bytes, bytearray)):
        return pack_attr(t, bytes(data))
    return pack_attr(t | NLA_F_NESTED, data._TABLE.encode_attrs(data))


_RAW = custom(bytes, lambda view, ctx, label: view)  # kept as a view until the kind is known
_INFO_DATA_KIND = _RAW._replace(pack=_pack_info_data, inline="")


def _linkinfo_post(values: dict, ctx) -> None:
    for key, kind_key in (("data", "kind"), ("slave_data", "slave_kind")):
        raw = values.get(key)
        if raw is not None:
            cls = INFO_DATA.get(values.get(kind_key)) if key == "data" else SLAVE_DATA.get(values.get(kind_key))
            values[key] = cls._TABLE.decode_attrs(raw, 0, (0, 0, 0, ctx[DEPTH] + 1)) if cls else raw.tobytes()


SLAVE_DATA: dict[str, type] = {}  # IFLA_INFO_SLAVE_KIND -> class of IFLA_INFO_SLAVE_DATA
_bind(LinkInfo, Table(LinkInfo, IflaInfo, [
    Field(IflaInfo.KIND, "kind", STR),
    Field(IflaInfo.DATA, "data", _INFO_DATA_KIND),
    Field(IflaInfo.SLAVE_KIND, "slave_kind", STR),
    Field(IflaInfo.SLAVE_DATA, "slave_data", _INFO_DATA_KIND),
], post=_linkinfo_post, what="IFLA_LINKINFO"))


@record
class _Inet6Spec:
    addr_gen_mode: int | None = None


@record
class _AfSpec:
    inet6: _Inet6Spec | None = None


_INET6_SPEC = Table(_Inet6Spec, IflaInet6, [Field(IflaInet6.ADDR_GEN_MODE, "addr_gen_mode", U8)], what="AF_INET6")
_AF_SPEC = Table(_AfSpec, None, [Field(AF_INET6, "inet6", nested(lambda: _INET6_SPEC))], what="IFLA_AF_SPEC")
# IFLA_AF_SPEC / AF_INET6 / IFLA_INET6_ADDR_GEN_MODE, flattened to one LinkMessage field
_ADDR_GEN_MODE = custom(
    lambda mode: _AF_SPEC.encode_attrs(_AfSpec(_Inet6Spec(mode))),
    lambda view, ctx, label: getattr(_AF_SPEC.decode_attrs(view, 0, (0, 0, 0, ctx[DEPTH] + 1)).inet6, "addr_gen_mode", None),
    NLA_F_NESTED,
)


@record
class LinkMessage(_Codec):
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
    gso_max_size: int | None = None
    gso_max_segs: int | None = None
    gro_max_size: int | None = None
    tso_max_size: int | None = None
    tso_max_segs: int | None = None
    allmulti: int | None = None  # IFLA_ALLMULTI: the allmulti count (read only)
    unknown: Unknown = ()

    @property
    def kind(self) -> str | None:
        return self.linkinfo.kind if self.linkinfo is not None else None


# linux/if_link.h, after IFLA_PERM_ADDRESS (54): PROTO_DOWN_REASON, PARENT_DEV_NAME, PARENT_DEV_BUS_NAME, then
_IFLA_GRO_MAX_SIZE, _IFLA_TSO_MAX_SIZE, _IFLA_TSO_MAX_SEGS, _IFLA_ALLMULTI = 58, 59, 60, 61


def _link_unhead(h: tuple, values: dict):
    values["family"], values["type"], values["index"], values["flags"], values["change"] = h
    return (h[0], 0, 0, 0)


_bind(LinkMessage, Table(LinkMessage, IFLA, [
    Field(IFLA.IFNAME, "ifname", STR),
    Field(IFLA.ADDRESS, "address", BYTES),
    Field(IFLA.BROADCAST, "broadcast", BYTES),
    Field(IFLA.PERM_ADDRESS, "perm_address", BYTES),
    Field(IFLA.MTU, "mtu", U32),
    Field(IFLA.MIN_MTU, "min_mtu", U32),
    Field(IFLA.MAX_MTU, "max_mtu", U32),
    Field(IFLA.LINK, "link", U32),
    Field(IFLA.MASTER, "master", U32),
    Field(IFLA.TXQLEN, "txqlen", U32),
    Field(IFLA.GROUP, "group", U32),
    Field(IFLA.PROMISCUITY, "promiscuity", U32),
    Field(IFLA.NUM_TX_QUEUES, "num_tx_queues", U32),
    Field(IFLA.NUM_RX_QUEUES, "num_rx_queues", U32),
    Field(IFLA.CARRIER_CHANGES, "carrier_changes", U32),
    Field(IFLA.NET_NS_FD, "net_ns_fd", U32),
    Field(IFLA.NET_NS_PID, "net_ns_pid", U32),
    Field(IFLA.EXT_MASK, "ext_mask", U32),
    Field(IFLA.OPERSTATE, "operstate", U8),
    Field(IFLA.LINKMODE, "linkmode", U8),
    Field(IFLA.CARRIER, "carrier", U8),
    Field(IFLA.QDISC, "qdisc", STR),
    Field(IFLA.IFALIAS, "ifalias", STR),
    Field(IFLA.LINK_NETNSID, "link_netnsid", S32),
    Field(IFLA.LINKINFO, "linkinfo", nested(lambda: LinkInfo._TABLE)),
    Field(IFLA.STATS64, "stats64", custom(_encode_stats64, _decode_stats64)),
    Field(IFLA.AF_SPEC, "addr_gen_mode", _ADDR_GEN_MODE),
    Field(IFLA.GSO_MAX_SIZE, "gso_max_size", U32),
    Field(IFLA.GSO_MAX_SEGS, "gso_max_segs", U32),
    Field(_IFLA_GRO_MAX_SIZE, "gro_max_size", U32),
    Field(_IFLA_TSO_MAX_SIZE, "tso_max_size", U32),
    Field(_IFLA_TSO_MAX_SEGS, "tso_max_segs", U32),
    Field(_IFLA_ALLMULTI, "allmulti", U32),
], header=IFINFOMSG, head=lambda m, attrs: (m.family, m.type, m.index, m.flags, m.change),
    unhead=_link_unhead, what="ifinfomsg"))


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


@record
class AddrCacheInfo:
    """IFA_CACHEINFO: lifetimes in seconds (0xFFFFFFFF = forever) and timestamps."""

    preferred: int
    valid: int
    cstamp: int = 0
    tstamp: int = 0


@record
class AddressMessage(_Codec):
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


def _addr_unhead(h: tuple, values: dict):
    family, prefixlen = h[0], h[1]
    if prefixlen > 8 * _ADDR_LEN.get(family, 16):
        raise DecodeError(f"ifaddrmsg: prefix length {prefixlen} is too long for family {family}")
    values["family"], values["prefixlen"], values["flags"], values["scope"], values["index"] = h
    return (family, 0, 0, 0)


_bind(AddressMessage, Table(AddressMessage, IFA, [
    Field(IFA.ADDRESS, "address", ADDR),
    Field(IFA.LOCAL, "local", ADDR),
    Field(IFA.BROADCAST, "broadcast", ADDR),
    Field(IFA.ANYCAST, "anycast", ADDR),
    Field(IFA.LABEL, "label", STR),
    Field(IFA.CACHEINFO, "cacheinfo", struct_kind(IFA_CACHEINFO, AddrCacheInfo,
                                                  lambda c: (c.preferred, c.valid, c.cstamp, c.tstamp))),
    Field(IFA.FLAGS, "extended_flags", U32),
    Field(IFA.RT_PRIORITY, "rt_priority", U32),
    Field(IFA.PROTO, "proto", U8),
], header=IFADDRMSG, head=lambda a, attrs: (a.family, a.prefixlen, a.flags, a.scope, a.index),
    unhead=_addr_unhead, what="ifaddrmsg"))


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
# struct rta_cacheinfo (linux/rtnetlink.h), RTA_CACHEINFO of a dumped route
RTA_CACHEINFO = struct.Struct(
    "="
    "I"  # rta_clntref
    "I"  # rta_lastuse: jiffies
    "i"  # rta_expires: jiffies left, 0 if the route does not expire
    "I"  # rta_error
    "I"  # rta_used
    "I"  # rta_id
    "I"  # rta_ts
    "I"  # rta_tsage
)


@record
class RouteCacheInfo:
    """RTA_CACHEINFO (struct rta_cacheinfo); ``expires`` is in clock ticks (USER_HZ, 100/s)."""

    clntref: int = 0
    lastuse: int = 0
    expires: int = 0
    error: int = 0
    used: int = 0
    id: int = 0
    ts: int = 0
    tsage: int = 0


@record
class RouteMetrics(_Codec):
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


_bind(RouteMetrics, Table(RouteMetrics, RTAX, [
    Field(t, t.name.lower(), STR if t == RTAX.CC_ALGO else U32) for t in RTAX if t != RTAX.UNSPEC
], what="RTA_METRICS"))
METRIC_NAMES = tuple(f.name for f in RouteMetrics._TABLE.fields)  # RTAX order, as the kernel lists them


@record
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
        return _NEXTHOP.encode(self)


def _encode_via(via: IPAddress) -> bytes:
    return RTVIA_FAMILY.pack(AF_INET6 if via.version == 6 else AF_INET) + via.packed


def _decode_via(view, ctx, label) -> IPAddress:
    if len(view) < 2:
        raise DecodeError(f"{label}: want at least 2 bytes, got {len(view)}")
    (fam,) = RTVIA_FAMILY.unpack_from(view, 0)
    if fam not in _ADDR_LEN:
        raise DecodeError(f"{label}: family {fam} with {len(view) - 2} address bytes")
    return unpack_address(view, 2, len(view), fam, label)


_VIA = custom(_encode_via, _decode_via)


def _nexthop_head(h: NextHop, attrs: bytes) -> tuple:
    if not isinstance(h.weight, int) or not 1 <= h.weight <= 256:
        raise ValueError(f"nexthop weight {h.weight!r} is out of range 1..256")
    return (RTNEXTHOP.size + len(attrs), h.flags, h.weight - 1, h.oif or 0)


_NEXTHOP = Table(NextHop, RTA, [Field(RTA.GATEWAY, "gateway", ADDR), Field(RTA.VIA, "via", _VIA)],
                 header=RTNEXTHOP, head=_nexthop_head, what="rtnexthop")


def _encode_multipath(hops) -> bytes:
    return b"".join([_NEXTHOP.encode(h) for h in hops])


def _decode_multipath(view, ctx, label) -> tuple[NextHop, ...]:
    off, end = 0, len(view)
    hops = []
    sub = (ctx[FAMILY], 0, 0, ctx[DEPTH] + 1)
    while end - off >= RTNEXTHOP.size:
        length, flags, hopcount, ifindex = RTNEXTHOP.unpack_from(view, off)
        if length < RTNEXTHOP.size or length > end - off:
            raise DecodeError(f"{label}: rtnexthop at offset {off}: bad rtnh_len {length} ({end - off} bytes left)")
        values: dict[str, Any] = {"weight": hopcount + 1, "flags": flags}
        if ifindex:
            values["oif"] = ifindex
        hops.append(_NEXTHOP.decode_attrs(view[off : off + length], RTNEXTHOP.size, sub, values))
        off += (length + 3) & ~3
    return tuple(hops)


@record
class RouteMessage(_Codec):
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
    expires: int | None = None  # seconds (a request: RTA_EXPIRES)
    mark: int | None = None
    uid: int | None = None  # RTA_UID: the uid a lookup was made for (route get)
    nhid: int | None = None  # RTA_NH_ID: a nexthop object (ip nexthop)
    realm: int | None = None  # RTA_FLOW: realms, (from << 16) | to
    cacheinfo: RouteCacheInfo | None = None  # RTA_CACHEINFO of a dumped route (expiry in ticks)
    ttl_propagate: int | None = None  # RTA_TTL_PROPAGATE (MPLS)
    unknown: Unknown = ()

    def __post_init__(self) -> None:
        if self.family is None:
            object.__setattr__(self, "family", _family_of(self.dst, self.src, self.gateway, self.prefsrc))


def _route_head(r: RouteMessage, attrs: bytes) -> tuple:
    dst, src, table = r.dst, r.src, r.table
    return (r.family, dst.prefixlen if dst is not None else 0, src.prefixlen if src is not None else 0, r.tos,
            table if table is not None and table < 256 else 0, r.protocol, r.scope, r.type, r.flags)


def _route_unhead(h: tuple, values: dict):
    family, dst_len, src_len, tos, table, protocol, scope, typ, flags = h
    values["family"] = family
    values["tos"] = tos
    values["protocol"] = protocol
    values["scope"] = scope
    values["type"] = typ
    values["flags"] = flags
    if table:
        values["table"] = table
    return (family, dst_len, src_len, 0)


def _pack_table(t: int, table: int) -> bytes:
    return b"" if 0 < table < 256 else U32.pack(t, table)  # as ip does: ids 1-255 fit rtm_table alone


_bind(RouteMessage, Table(RouteMessage, RTA, [
    Field(RTA.TABLE, "table", U32._replace(pack=_pack_table, inline="if not 0 < v < 256: put(U32_PACK(8, {t}, v))")),
    Field(RTA.DST, "dst", NET[1]),
    Field(RTA.SRC, "src", NET[2]),
    Field(RTA.IIF, "iif", U32),
    Field(RTA.OIF, "oif", U32),
    Field(RTA.GATEWAY, "gateway", ADDR),
    Field(RTA.VIA, "via", _VIA),
    Field(RTA.PRIORITY, "priority", U32),
    Field(RTA.PREFSRC, "prefsrc", ADDR),
    Field(RTA.METRICS, "metrics", nested(lambda: RouteMetrics._TABLE)),
    Field(RTA.MULTIPATH, "multipath", custom(_encode_multipath, _decode_multipath)),
    Field(RTA.MARK, "mark", U32),
    Field(RTA.PREF, "pref", U8),
    Field(RTA.EXPIRES, "expires", U32),
    Field(RTA.UID, "uid", U32),
    Field(RTA.NH_ID, "nhid", U32),
    Field(RTA.FLOW, "realm", U32),
    Field(RTA.CACHEINFO, "cacheinfo", struct_kind(RTA_CACHEINFO, RouteCacheInfo,
                                                  lambda c: (c.clntref, c.lastuse, c.expires, c.error, c.used,
                                                             c.id, c.ts, c.tsage))),
    Field(RTA.TTL_PROPAGATE, "ttl_propagate", U8),
], header=RTMSG, head=_route_head, unhead=_route_unhead, what="rtmsg"))


class _MessageTypes(dict):
    """RTM_* -> message class.  Rules, neighbours and nexthop objects live in their own modules,
    imported on first use (``MESSAGE_TYPES[32]``): a CLI that lists links never pays for them."""

    _LAZY = {32: "rule", 33: "rule", 34: "rule", 28: "neigh", 29: "neigh", 30: "neigh",
             104: "nexthop", 105: "nexthop", 106: "nexthop"}
    _CLASS = {"rule": "RuleMessage", "neigh": "NeighMessage", "nexthop": "NexthopMessage"}

    def __missing__(self, msg_type: int) -> type:
        module = self._LAZY.get(msg_type)
        if module is None:
            raise KeyError(msg_type)
        import importlib

        cls = getattr(importlib.import_module(f"tunkit.netlink.{module}"), self._CLASS[module])
        for t, m in self._LAZY.items():
            if m == module:
                self[t] = cls
        return cls


# RTM_* -> message class, for dispatching replies and notifications.
MESSAGE_TYPES: dict[int, type] = _MessageTypes({
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
})


def decode_message(msg_type: int, payload):
    """Decode an rtnetlink payload by its RTM_* type; None for types tunkit does not model."""
    try:
        cls = MESSAGE_TYPES[msg_type]
    except KeyError:
        return None
    return cls.decode(payload)
