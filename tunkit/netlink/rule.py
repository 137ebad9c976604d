"""FIB rules (``ip rule``): struct fib_rule_hdr + FRA_* as one field table; pure, no I/O.

A :class:`RuleMessage` is an RTM_NEWRULE/DELRULE/GETRULE payload (IPv4 and
IPv6 alike, linux/fib_rules.h): ``priority`` (ip's ``pref``), ``src``/``dst``
prefixes (``from``/``to``; None is ``all``), ``iifname``/``oifname``,
``fwmark``/``fwmask``, ``table`` (ids >= 256 in FRA_TABLE), ``action``
(:class:`FrAct`: lookup a table, ``goto`` a priority, ``nop``, blackhole,
unreachable, prohibit), ``suppress_prefixlen``, ``uid_range``,
``sport_range``/``dport_range`` (inclusive ``(start, end)`` pairs),
``ip_proto``, ``protocol`` and ``flags`` (``FIB_RULE_INVERT``: ``not``).
Same rules as every rtnetlink message: absent is None, ``decode(encode(m))
== m``, unknown attributes kept.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Union

from tunkit._uapi import AF_INET, AF_INET6, AF_UNSPEC
from tunkit.netlink.fields import NET, STR, U8, U32, Codec, Field, Table, bind, struct_kind
from tunkit.netlink.record import record

__all__ = ["FIB_RULE_INVERT", "FRA", "RTM_DELRULE", "RTM_GETRULE", "RTM_NEWRULE", "FrAct", "RuleMessage"]

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Range = tuple  # (start, end), both inclusive

# linux/rtnetlink.h
RTM_NEWRULE, RTM_DELRULE, RTM_GETRULE = 32, 33, 34
# linux/fib_rules.h: fib_rule_hdr.flags
FIB_RULE_PERMANENT = 0x01
FIB_RULE_INVERT = 0x02  # "not": the selector is negated
FIB_RULE_UNRESOLVED = 0x04  # a goto whose target does not exist
FIB_RULE_IIF_DETACHED = 0x08
FIB_RULE_OIF_DETACHED = 0x10


class FRA(enum.IntEnum):
    """Rule attributes (linux/fib_rules.h), ``FRA_*``."""

    UNSPEC = 0
    DST = 1
    SRC = 2
    IIFNAME = 3
    GOTO = 4
    PRIORITY = 6
    FWMARK = 10
    FLOW = 11
    TUN_ID = 12
    SUPPRESS_IFGROUP = 13
    SUPPRESS_PREFIXLEN = 14
    TABLE = 15
    FWMASK = 16
    OIFNAME = 17
    PAD = 18
    L3MDEV = 19
    UID_RANGE = 20
    PROTOCOL = 21
    IP_PROTO = 22
    SPORT_RANGE = 23
    DPORT_RANGE = 24


class FrAct(enum.IntEnum):
    """``fib_rule_hdr.action`` (linux/fib_rules.h), ``FR_ACT_*``."""

    UNSPEC = 0
    TO_TBL = 1  # look the packet up in ``table``
    GOTO = 2  # continue at rule ``goto``
    NOP = 3
    BLACKHOLE = 6  # drop silently
    UNREACHABLE = 7  # drop, ENETUNREACH
    PROHIBIT = 8  # drop, EACCES


# struct fib_rule_hdr (linux/fib_rules.h)
FIB_RULE_HDR = struct.Struct(
    "="
    "B"  # family: AF_INET / AF_INET6
    "B"  # dst_len: destination prefix length
    "B"  # src_len: source prefix length
    "B"  # tos
    "B"  # table: id < 256 (RT_TABLE_COMPAT in replies when FRA_TABLE holds a larger one)
    "x"  # res1
    "x"  # res2
    "B"  # action: FR_ACT_*
    "I"  # flags: FIB_RULE_*
)
# struct fib_rule_uid_range: start, end (u32 each, inclusive)
UID_RANGE = struct.Struct("=II")
# struct fib_rule_port_range: start, end (u16 each, inclusive)
PORT_RANGE = struct.Struct("=HH")
_BE64 = struct.Struct("!Q")


@record
class RuleMessage(Codec):
    """A FIB rule (see the module docstring); ``family`` defaults from ``src``/``dst``."""

    # struct fib_rule_hdr
    family: int | None = None
    dst: IPNetwork | None = None  # prefix length in dst_len
    src: IPNetwork | None = None  # prefix length in src_len
    tos: int = 0
    table: int | None = None
    action: int = 0  # FrAct
    flags: int = 0  # FIB_RULE_*
    # attributes
    iifname: str | None = None
    oifname: str | None = None
    goto: int | None = None  # the priority an FR_ACT_GOTO rule jumps to
    priority: int | None = None  # ip's "pref"
    fwmark: int | None = None
    fwmask: int | None = None
    realm: int | None = None  # FRA_FLOW: (from << 16) | to
    tun_id: int | None = None
    suppress_ifgroup: int | None = None
    suppress_prefixlen: int | None = None
    l3mdev: int | None = None
    uid_range: Range | None = None
    protocol: int | None = None  # RTPROT_*: who made the rule
    ip_proto: int | None = None  # IPPROTO_*
    sport_range: Range | None = None
    dport_range: Range | None = None
    unknown: tuple = ()

    def __post_init__(self) -> None:
        if self.family is None:
            net = self.src if self.src is not None else self.dst
            object.__setattr__(self, "family", AF_UNSPEC if net is None else AF_INET6 if net.version == 6 else AF_INET)


def _head(r: RuleMessage, attrs: bytes) -> tuple:
    table = r.table
    return (r.family, r.dst.prefixlen if r.dst is not None else 0, r.src.prefixlen if r.src is not None else 0, r.tos,
            table if table is not None and table < 256 else 0, r.action, r.flags)


def _unhead(h: tuple, values: dict):
    family, dst_len, src_len, tos, table, action, flags = h
    values.update(family=family, tos=tos, action=action, flags=flags)
    if table:
        values["table"] = table  # FRA_TABLE (always sent by the kernel) overrides this
    return (family, dst_len, src_len, 0)


def _range(layout: struct.Struct):
    return struct_kind(layout, lambda start, end: (start, end), lambda r: (r[0], r[1]))


_TABLE_KIND = U32._replace(pack=lambda t, v: b"" if 0 < v < 256 else U32.pack(t, v),
                           inline="if not 0 < v < 256: put(U32_PACK(8, {t}, v))")
_BE64_KIND = struct_kind(_BE64, lambda v: v, lambda v: (v,))

bind(RuleMessage, Table(RuleMessage, FRA, [
    Field(FRA.TABLE, "table", _TABLE_KIND),
    Field(FRA.DST, "dst", NET[1]),
    Field(FRA.SRC, "src", NET[2]),
    Field(FRA.IIFNAME, "iifname", STR),
    Field(FRA.OIFNAME, "oifname", STR),
    Field(FRA.GOTO, "goto", U32),
    Field(FRA.PRIORITY, "priority", U32),
    Field(FRA.FWMARK, "fwmark", U32),
    Field(FRA.FWMASK, "fwmask", U32),
    Field(FRA.FLOW, "realm", U32),
    Field(FRA.TUN_ID, "tun_id", _BE64_KIND),
    Field(FRA.SUPPRESS_IFGROUP, "suppress_ifgroup", U32),
    Field(FRA.SUPPRESS_PREFIXLEN, "suppress_prefixlen", U32),
    Field(FRA.L3MDEV, "l3mdev", U8),
    Field(FRA.UID_RANGE, "uid_range", _range(UID_RANGE)),
    Field(FRA.PROTOCOL, "protocol", U8),
    Field(FRA.IP_PROTO, "ip_proto", U8),
    Field(FRA.SPORT_RANGE, "sport_range", _range(PORT_RANGE)),
    Field(FRA.DPORT_RANGE, "dport_range", _range(PORT_RANGE)),
], header=FIB_RULE_HDR, head=_head, unhead=_unhead, what="fib_rule_hdr"))

