"""Neighbours (``ip neigh``: ARP/NDP entries, proxy entries): struct ndmsg + NDA_*; pure, no I/O.

A :class:`NeighMessage` is an RTM_NEWNEIGH/DELNEIGH/GETNEIGH payload
(linux/neighbour.h): the link ``index``, ``state`` (:class:`Nud` bits:
PERMANENT, REACHABLE, STALE, ...), ``flags`` (:class:`Ntf`: PROXY, ROUTER,
...), the neighbour's address ``dst`` and its link-layer address
``lladdr``, plus the cache timers in ``cacheinfo``.  A proxy entry (ARP
proxy / NDP proxy) is one with ``Ntf.PROXY`` in ``flags``; the kernel dumps
those only for a request that carries that flag.  Same rules as every
rtnetlink message: absent is None, ``decode(encode(m)) == m``, unknown
attributes kept.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Union

from tunkit._uapi import AF_INET, AF_INET6, AF_UNSPEC
from tunkit.netlink.fields import ADDR, BE16, BYTES, S32, U8, U16, U32, Codec, Field, Table, bind, struct_kind
from tunkit.netlink.record import record

__all__ = ["NDA", "RTM_DELNEIGH", "RTM_GETNEIGH", "RTM_NEWNEIGH", "NdaCacheInfo", "NeighMessage", "Ntf", "Nud"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

# linux/rtnetlink.h
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30


class NDA(enum.IntEnum):
    """Neighbour attributes (linux/neighbour.h), ``NDA_*``."""

    UNSPEC = 0
    DST = 1
    LLADDR = 2
    CACHEINFO = 3
    PROBES = 4
    VLAN = 5
    PORT = 6
    VNI = 7
    IFINDEX = 8
    MASTER = 9
    LINK_NETNSID = 10
    SRC_VNI = 11
    PROTOCOL = 12
    NH_ID = 13
    FDB_EXT_ATTRS = 14
    FLAGS_EXT = 15


class Nud(enum.IntFlag):
    """Neighbour states, ``ndm_state`` (linux/neighbour.h), ``NUD_*``; iproute2 prints them in this order."""

    NONE = 0x00
    INCOMPLETE = 0x01
    REACHABLE = 0x02
    STALE = 0x04
    DELAY = 0x08
    PROBE = 0x10
    FAILED = 0x20
    NOARP = 0x40
    PERMANENT = 0x80


class Ntf(enum.IntFlag):
    """``ndm_flags`` (linux/neighbour.h), ``NTF_*``."""

    USE = 1 << 0
    SELF = 1 << 1
    MASTER = 1 << 2
    PROXY = 1 << 3
    EXT_LEARNED = 1 << 4
    OFFLOADED = 1 << 5
    STICKY = 1 << 6
    ROUTER = 1 << 7


NTF_EXT_MANAGED = 1 << 0  # linux/neighbour.h: NDA_FLAGS_EXT bit

# struct ndmsg (linux/neighbour.h)
NDMSG = struct.Struct(
    "="
    "B"  # ndm_family: AF_INET / AF_INET6 (AF_BRIDGE for fdb entries)
    "x"  # ndm_pad1
    "xx"  # ndm_pad2
    "i"  # ndm_ifindex
    "H"  # ndm_state: NUD_*
    "B"  # ndm_flags: NTF_*
    "B"  # ndm_type: RTN_* (unicast for a plain entry)
)
# struct nda_cacheinfo (linux/neighbour.h): clock ticks (USER_HZ) since each event, and the refcount
NDA_CACHEINFO = struct.Struct(
    "="
    "I"  # ndm_confirmed
    "I"  # ndm_used
    "I"  # ndm_updated
    "I"  # ndm_refcnt
)


@record
class NdaCacheInfo:
    """NDA_CACHEINFO: ticks (USER_HZ, 100 a second) since the entry was confirmed, used, updated."""

    confirmed: int = 0
    used: int = 0
    updated: int = 0
    refcnt: int = 0


@record
class NeighMessage(Codec):
    """A neighbour entry (see the module docstring); ``family`` defaults from ``dst``."""

    # struct ndmsg
    family: int | None = None
    index: int = 0
    state: int = 0  # Nud
    flags: int = 0  # Ntf
    type: int = 0  # RTN_*
    # attributes
    dst: IPAddress | None = None
    lladdr: bytes | None = None
    cacheinfo: NdaCacheInfo | None = None
    probes: int | None = None
    vlan: int | None = None
    port: int | None = None
    vni: int | None = None
    ifindex: int | None = None
    master: int | None = None
    link_netnsid: int | None = None
    src_vni: int | None = None
    protocol: int | None = None
    nh_id: int | None = None
    flags_ext: int | None = None
    unknown: tuple = ()

    def __post_init__(self) -> None:
        if self.family is None:
            fam = AF_UNSPEC if self.dst is None else AF_INET6 if self.dst.version == 6 else AF_INET
            object.__setattr__(self, "family", fam)


def _unhead(h: tuple, values: dict):
    values["family"], values["index"], values["state"], values["flags"], values["type"] = h
    return (h[0], 0, 0, 0)


bind(NeighMessage, Table(NeighMessage, NDA, [
    Field(NDA.DST, "dst", ADDR),
    Field(NDA.LLADDR, "lladdr", BYTES),
    Field(NDA.CACHEINFO, "cacheinfo", struct_kind(NDA_CACHEINFO, NdaCacheInfo,
                                                  lambda c: (c.confirmed, c.used, c.updated, c.refcnt))),
    Field(NDA.PROBES, "probes", U32),
    Field(NDA.VLAN, "vlan", U16),
    Field(NDA.PORT, "port", BE16),
    Field(NDA.VNI, "vni", U32),
    Field(NDA.IFINDEX, "ifindex", U32),
    Field(NDA.MASTER, "master", U32),
    Field(NDA.LINK_NETNSID, "link_netnsid", S32),
    Field(NDA.SRC_VNI, "src_vni", U32),
    Field(NDA.PROTOCOL, "protocol", U8),
    Field(NDA.NH_ID, "nh_id", U32),
    Field(NDA.FLAGS_EXT, "flags_ext", U32),
], header=NDMSG, head=lambda n, attrs: (n.family, n.index, n.state, n.flags, n.type), unhead=_unhead, what="ndmsg"))
