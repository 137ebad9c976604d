"""Nexthop objects (``ip nexthop``): struct nhmsg + NHA_*, groups with weights; pure, no I/O.

A :class:`NexthopMessage` is an RTM_NEWNEXTHOP/DELNEXTHOP/GETNEXTHOP payload
(linux/nexthop.h): an ``id``, and either a single nexthop (``oif`` and/or
``gateway``, or ``blackhole``) or a ``group`` of :class:`NexthopGroupMember`
(id, weight 1..256) of ``group_type`` (0 multipath, 1 resilient).  Routes use
one by id (``RouteMessage.nhid``, RTA_NH_ID).  Same rules as every rtnetlink
message: absent is None, ``decode(encode(m)) == m``, unknown attributes kept.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Union

from tunkit._uapi import AF_INET, AF_INET6, AF_UNSPEC
from tunkit.errors import DecodeError
from tunkit.netlink.fields import ADDR, FLAG, U16, U32, U64, Codec, Field, Table, bind, custom, nested
from tunkit.netlink.record import record

__all__ = ["NHA", "RTM_DELNEXTHOP", "RTM_GETNEXTHOP", "RTM_NEWNEXTHOP", "NexthopGroupMember", "NexthopMessage",
           "ResilientGroup"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# linux/rtnetlink.h
RTM_NEWNEXTHOP, RTM_DELNEXTHOP, RTM_GETNEXTHOP = 104, 105, 106
NEXTHOP_GRP_TYPE_MPATH, NEXTHOP_GRP_TYPE_RES = 0, 1  # linux/nexthop.h


class NHA(enum.IntEnum):
    """Nexthop attributes (linux/nexthop.h), ``NHA_*``."""

    UNSPEC = 0
    ID = 1
    GROUP = 2
    GROUP_TYPE = 3
    BLACKHOLE = 4
    OIF = 5
    GATEWAY = 6
    ENCAP_TYPE = 7
    ENCAP = 8
    GROUPS = 9  # dump request only: groups alone
    MASTER = 10  # dump request only: nexthops on this master's ports
    FDB = 11
    RES_GROUP = 12
    RES_BUCKET = 13


# struct nhmsg (linux/nexthop.h)
NHMSG = struct.Struct(
    "="
    "B"  # nh_family: AF_INET / AF_INET6, AF_UNSPEC for groups and blackholes
    "B"  # nh_scope (replies only)
    "B"  # nh_protocol: RTPROT_*
    "x"  # resvd
    "I"  # nh_flags: RTNH_F_*
)
# struct nexthop_grp (linux/nexthop.h): one member of NHA_GROUP
NEXTHOP_GRP = struct.Struct(
    "="
    "I"  # id: a nexthop that exists
    "B"  # weight: weight - 1 (iproute2 shows 1..256)
    "B"  # weight_high (resvd1): 0 on the kernels tunkit knows
    "H"  # resvd2
)


@record
class NexthopGroupMember:
    """One member of a nexthop group: nexthop ``id`` with ``weight`` 1..256."""

    id: int
    weight: int = 1


def _encode_group(members) -> bytes:
    out = []
    for m in members:
        if not isinstance(m.weight, int) or not 1 <= m.weight <= 256:
            raise ValueError(f"nexthop {m.id}: weight {m.weight!r} is out of range 1..256")
        out.append(NEXTHOP_GRP.pack(m.id, m.weight - 1, 0, 0))
    return b"".join(out)


def _decode_group(view, ctx, label) -> tuple[NexthopGroupMember, ...]:
    if len(view) % NEXTHOP_GRP.size:
        raise DecodeError(f"{label}: length {len(view)} is not a multiple of {NEXTHOP_GRP.size}")
    return tuple(NexthopGroupMember(i, w + 1) for i, w, _hi, _r in NEXTHOP_GRP.iter_unpack(view))


class NhaResGroup(enum.IntEnum):
    """Nested in NHA_RES_GROUP (linux/nexthop.h), ``NHA_RES_GROUP_*``."""

    PAD = 0
    BUCKETS = 1
    IDLE_TIMER = 2
    UNBALANCED_TIMER = 3
    UNBALANCED_TIME = 4


@record
class ResilientGroup(Codec):
    """NHA_RES_GROUP of a resilient group: bucket count and timers (clock ticks, USER_HZ 100/s)."""

    buckets: int | None = None
    idle_timer: int | None = None
    unbalanced_timer: int | None = None
    unbalanced_time: int | None = None
    unknown: tuple = ()


bind(ResilientGroup, Table(ResilientGroup, NhaResGroup, [
    Field(NhaResGroup.BUCKETS, "buckets", U16),
    Field(NhaResGroup.IDLE_TIMER, "idle_timer", U32),
    Field(NhaResGroup.UNBALANCED_TIMER, "unbalanced_timer", U32),
    Field(NhaResGroup.UNBALANCED_TIME, "unbalanced_time", U64),
], what="NHA_RES_GROUP"))


@record
class NexthopMessage(Codec):
    """A nexthop object (see the module docstring); ``family`` defaults from ``gateway``."""

    # struct nhmsg
    family: int | None = None
    scope: int = 0
    protocol: int = 0
    flags: int = 0  # RTNH_F_*
    # attributes
    id: int | None = None
    group: tuple[NexthopGroupMember, ...] | None = None
    group_type: int | None = None
    blackhole: bool | None = None
    oif: int | None = None
    gateway: IPAddress | None = None
    encap_type: int | None = None
    groups: bool | None = None  # dump filter: groups only
    master: int | None = None  # dump filter
    fdb: bool | None = None
    res_group: ResilientGroup | None = None
    unknown: tuple = ()

    def __post_init__(self) -> None:
        if self.family is None:
            fam = AF_UNSPEC if self.gateway is None else AF_INET6 if self.gateway.version == 6 else AF_INET
            object.__setattr__(self, "family", fam)


def _unhead(h: tuple, values: dict):
    values["family"], values["scope"], values["protocol"], values["flags"] = h
    return (h[0], 0, 0, 0)


bind(NexthopMessage, Table(NexthopMessage, NHA, [
    Field(NHA.ID, "id", U32),
    Field(NHA.GROUP, "group", custom(_encode_group, _decode_group)),
    Field(NHA.GROUP_TYPE, "group_type", U16),
    Field(NHA.BLACKHOLE, "blackhole", FLAG),
    Field(NHA.OIF, "oif", U32),
    Field(NHA.GATEWAY, "gateway", ADDR),
    Field(NHA.ENCAP_TYPE, "encap_type", U16),
    Field(NHA.GROUPS, "groups", FLAG),
    Field(NHA.MASTER, "master", U32),
    Field(NHA.FDB, "fdb", FLAG),
    Field(NHA.RES_GROUP, "res_group", nested(lambda: ResilientGroup._TABLE)),
], header=NHMSG, head=lambda n, attrs: (n.family, n.scope, n.protocol, n.flags), unhead=_unhead, what="nhmsg"))
