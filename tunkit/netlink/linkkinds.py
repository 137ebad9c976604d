"""Kind-specific link data (IFLA_INFO_DATA) for bridge, vxlan, macvlan, ipvlan, vlan, vrf and bond links; pure, no I/O.

:class:`VxlanInfo` (IFLA_VXLAN_*), :class:`MacvlanInfo` (IFLA_MACVLAN_*),
:class:`IpvlanInfo` (IFLA_IPVLAN_*), :class:`VlanInfo` (IFLA_VLAN_*), :class:`VrfInfo` (IFLA_VRF_*),
:class:`BondInfo` (IFLA_BOND_*) and :class:`BridgeInfo` (IFLA_BR_*) are
field tables like every rtnetlink message; :data:`tunkit.netlink.rtnl.INFO_DATA`
loads this module the first time a link of one of these kinds is decoded, so
a ``LinkInfo(kind="vxlan")`` decodes its data into a ``VxlanInfo``.  (This
kernel has no vlan, vrf, bond, ipvlan or wireguard drivers: those are tested from codec
tables both ways, and the kernel's refusal is checked.  A wireguard link carries no
IFLA_INFO_DATA at all: its keys and peers travel over the wireguard generic-netlink family.)  A bridge needs no
data to be created.  Same rules: absent is None,
``decode(encode(m)) == m``, unknown attributes kept.
"""

from __future__ import annotations

import enum
import ipaddress
import struct
from typing import Union

from tunkit.netlink.fields import ADDR, BE16, BOOL8, BYTES, FLAG, U8, U16, U32, U64, Codec, Field, Table, bind, struct_kind
from tunkit.netlink.record import make_record, record

__all__ = ["BOND_MODES", "IPVLAN_FLAGS", "IPVLAN_MODES", "KINDS", "MACVLAN_MODES", "BondInfo", "BridgeInfo", "IpvlanInfo",
           "MacvlanInfo", "VlanInfo", "VrfInfo", "VxlanInfo"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


class IflaVxlan(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of a vxlan link (linux/if_link.h), ``IFLA_VXLAN_*``."""

    ID = 1
    GROUP = 2  # the IPv4 group or remote
    LINK = 3
    LOCAL = 4
    TTL = 5
    TOS = 6
    LEARNING = 7
    AGEING = 8
    LIMIT = 9
    PORT_RANGE = 10  # source ports, big-endian
    PROXY = 11
    RSC = 12
    L2MISS = 13
    L3MISS = 14
    PORT = 15  # destination port, big-endian
    GROUP6 = 16
    LOCAL6 = 17
    UDP_CSUM = 18
    UDP_ZERO_CSUM6_TX = 19
    UDP_ZERO_CSUM6_RX = 20
    REMCSUM_TX = 21
    REMCSUM_RX = 22
    GBP = 23  # flag
    REMCSUM_NOPARTIAL = 24  # flag
    COLLECT_METADATA = 25
    LABEL = 26  # IPv6 flow label, big-endian u32
    GPE = 27  # flag
    TTL_INHERIT = 28
    DF = 29


class IflaMacvlan(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of a macvlan link (linux/if_link.h), ``IFLA_MACVLAN_*``."""

    MODE = 1
    FLAGS = 2
    BC_QUEUE_LEN = 7
    BC_QUEUE_LEN_USED = 8


# MACVLAN_MODE_* (linux/if_link.h) by iproute2's names
MACVLAN_MODES = {"private": 1, "vepa": 2, "bridge": 4, "passthru": 8, "source": 16}
# struct ifla_vxlan_port_range (linux/if_link.h): low, high, both big-endian
PORT_RANGE = struct.Struct("!HH")
_BE32 = struct.Struct("!I")  # IFLA_VXLAN_LABEL


@record
class VxlanInfo(Codec):
    """A vxlan link's IFLA_INFO_DATA: ``id`` (VNI), ``group`` (remote or multicast group, v4 or v6),
    ``local``, underlying ``link`` index, ``port`` (destination), ``port_range``, ``ttl``, ``tos``,
    ``learning``, ``ageing``, checksum options and ``df``."""

    id: int | None = None
    group: IPAddress | None = None  # IFLA_VXLAN_GROUP (IPv4)
    group6: IPAddress | None = None  # IFLA_VXLAN_GROUP6
    link: int | None = None
    local: IPAddress | None = None
    local6: IPAddress | None = None
    ttl: int | None = None
    tos: int | None = None
    learning: bool | None = None
    ageing: int | None = None
    limit: int | None = None
    port_range: tuple | None = None  # (low, high)
    proxy: bool | None = None
    rsc: bool | None = None
    l2miss: bool | None = None
    l3miss: bool | None = None
    port: int | None = None
    udp_csum: bool | None = None
    udp_zero_csum6_tx: bool | None = None
    udp_zero_csum6_rx: bool | None = None
    remcsum_tx: bool | None = None
    remcsum_rx: bool | None = None
    collect_metadata: bool | None = None  # "external"
    label: int | None = None
    ttl_inherit: bool | None = None
    df: int | None = None  # 0 unset, 1 set, 2 inherit
    unknown: tuple = ()


bind(VxlanInfo, Table(VxlanInfo, IflaVxlan, [
    Field(IflaVxlan.ID, "id", U32),
    Field(IflaVxlan.GROUP, "group", ADDR),
    Field(IflaVxlan.GROUP6, "group6", ADDR),
    Field(IflaVxlan.LINK, "link", U32),
    Field(IflaVxlan.LOCAL, "local", ADDR),
    Field(IflaVxlan.LOCAL6, "local6", ADDR),
    Field(IflaVxlan.TTL, "ttl", U8),
    Field(IflaVxlan.TOS, "tos", U8),
    Field(IflaVxlan.LEARNING, "learning", BOOL8),
    Field(IflaVxlan.AGEING, "ageing", U32),
    Field(IflaVxlan.LIMIT, "limit", U32),
    Field(IflaVxlan.PORT_RANGE, "port_range", struct_kind(PORT_RANGE, lambda lo, hi: (lo, hi), lambda r: (r[0], r[1]))),
    Field(IflaVxlan.PROXY, "proxy", BOOL8),
    Field(IflaVxlan.RSC, "rsc", BOOL8),
    Field(IflaVxlan.L2MISS, "l2miss", BOOL8),
    Field(IflaVxlan.L3MISS, "l3miss", BOOL8),
    Field(IflaVxlan.PORT, "port", BE16),
    Field(IflaVxlan.UDP_CSUM, "udp_csum", BOOL8),
    Field(IflaVxlan.UDP_ZERO_CSUM6_TX, "udp_zero_csum6_tx", BOOL8),
    Field(IflaVxlan.UDP_ZERO_CSUM6_RX, "udp_zero_csum6_rx", BOOL8),
    Field(IflaVxlan.REMCSUM_TX, "remcsum_tx", BOOL8),
    Field(IflaVxlan.REMCSUM_RX, "remcsum_rx", BOOL8),
    Field(IflaVxlan.COLLECT_METADATA, "collect_metadata", BOOL8),
    Field(IflaVxlan.LABEL, "label", struct_kind(_BE32, lambda v: v, lambda v: (v,))),
    Field(IflaVxlan.TTL_INHERIT, "ttl_inherit", BOOL8),
    Field(IflaVxlan.DF, "df", U8),
], what="IFLA_INFO_DATA (vxlan)"))


@record
class MacvlanInfo(Codec):
    """A macvlan link's IFLA_INFO_DATA: ``mode`` (MACVLAN_MODES), ``flags``, broadcast queue lengths."""

    mode: int | None = None
    flags: int | None = None
    bc_queue_len: int | None = None
    bc_queue_len_used: int | None = None
    unknown: tuple = ()


bind(MacvlanInfo, Table(MacvlanInfo, IflaMacvlan, [
    Field(IflaMacvlan.MODE, "mode", U32),
    Field(IflaMacvlan.FLAGS, "flags", U16),
    Field(IflaMacvlan.BC_QUEUE_LEN, "bc_queue_len", U32),
    Field(IflaMacvlan.BC_QUEUE_LEN_USED, "bc_queue_len_used", U32),
], what="IFLA_INFO_DATA (macvlan)"))


class IflaIpvlan(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of an ipvlan link (linux/if_link.h), ``IFLA_IPVLAN_*``."""

    MODE = 1  # u16: IPVLAN_MODE_L2 0, IPVLAN_MODE_L3 1, IPVLAN_MODE_L3S 2
    FLAGS = 2  # u16: IPVLAN_F_PRIVATE 0x01, IPVLAN_F_VEPA 0x02 (neither: bridge)


# ip's words (iplink_ipvlan.c) -> IPVLAN_MODE_* / IPVLAN_F_*
IPVLAN_MODES = {"l2": 0, "l3": 1, "l3s": 2}
IPVLAN_FLAGS = {"bridge": 0, "private": 0x01, "vepa": 0x02}


@record
class IpvlanInfo(Codec):
    """An ipvlan link's IFLA_INFO_DATA: ``mode`` (IPVLAN_MODES; the kernel's default is l3) and ``flags``."""

    mode: int | None = None
    flags: int | None = None
    unknown: tuple = ()


bind(IpvlanInfo, Table(IpvlanInfo, IflaIpvlan, [
    Field(IflaIpvlan.MODE, "mode", U16),
    Field(IflaIpvlan.FLAGS, "flags", U16),
], what="IFLA_INFO_DATA (ipvlan)"))


class IflaVlan(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of a vlan link (linux/if_link.h), ``IFLA_VLAN_*``."""

    ID = 1
    FLAGS = 2  # struct ifla_vlan_flags
    EGRESS_QOS = 3
    INGRESS_QOS = 4
    PROTOCOL = 5  # big-endian ethertype: 0x8100 (802.1Q) or 0x88a8 (802.1ad)


# struct ifla_vlan_flags (linux/if_link.h)
VLAN_FLAGS = struct.Struct(
    "="
    "I"  # flags: VLAN_FLAG_* (REORDER_HDR 1, GVRP 2, LOOSE_BINDING 4, MVRP 8, BRIDGE_BINDING 16)
    "I"  # mask: the flags this request sets
)


@record
class VlanInfo(Codec):
    """A vlan link's IFLA_INFO_DATA: ``id`` (1..4094), ``protocol`` (0x8100 or 0x88a8), ``flags`` as (flags, mask)."""

    id: int | None = None
    flags: tuple | None = None
    protocol: int | None = None
    unknown: tuple = ()


bind(VlanInfo, Table(VlanInfo, IflaVlan, [
    Field(IflaVlan.ID, "id", U16),
    Field(IflaVlan.FLAGS, "flags", struct_kind(VLAN_FLAGS, lambda f, m: (f, m), lambda v: (v[0], v[1]))),
    Field(IflaVlan.PROTOCOL, "protocol", BE16),
], what="IFLA_INFO_DATA (vlan)"))


class IflaVrf(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of a vrf link (linux/if_link.h), ``IFLA_VRF_*``."""

    TABLE = 1


@record
class VrfInfo(Codec):
    """A vrf link's IFLA_INFO_DATA: the routing ``table`` it binds."""

    table: int | None = None
    unknown: tuple = ()


bind(VrfInfo, Table(VrfInfo, IflaVrf, [Field(IflaVrf.TABLE, "table", U32)], what="IFLA_INFO_DATA (vrf)"))


class IflaBond(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of a bond link (linux/if_link.h), ``IFLA_BOND_*`` (the scalar ones)."""

    MODE = 1
    ACTIVE_SLAVE = 2
    MIIMON = 3
    UPDELAY = 4
    DOWNDELAY = 5
    USE_CARRIER = 6
    ARP_INTERVAL = 7
    ARP_VALIDATE = 9
    ARP_ALL_TARGETS = 10
    PRIMARY = 11
    PRIMARY_RESELECT = 12
    FAIL_OVER_MAC = 13
    XMIT_HASH_POLICY = 14
    RESEND_IGMP = 15
    NUM_PEER_NOTIF = 16
    ALL_SLAVES_ACTIVE = 17
    MIN_LINKS = 18
    LP_INTERVAL = 19
    PACKETS_PER_SLAVE = 20
    AD_LACP_RATE = 21
    AD_SELECT = 22
    TLB_DYNAMIC_LB = 27


# BOND_MODE_* (linux/if_bonding.h) by iproute2's names
BOND_MODES = {"balance-rr": 0, "active-backup": 1, "balance-xor": 2, "broadcast": 3, "802.3ad": 4,
              "balance-tlb": 5, "balance-alb": 6}


@record
class BondInfo(Codec):
    """A bond link's IFLA_INFO_DATA: ``mode`` (BOND_MODES), MII monitoring, ARP monitoring, hashing and LACP."""

    mode: int | None = None
    active_slave: int | None = None
    miimon: int | None = None
    updelay: int | None = None
    downdelay: int | None = None
    use_carrier: int | None = None
    arp_interval: int | None = None
    arp_validate: int | None = None
    arp_all_targets: int | None = None
    primary: int | None = None
    primary_reselect: int | None = None
    fail_over_mac: int | None = None
    xmit_hash_policy: int | None = None
    resend_igmp: int | None = None
    num_peer_notif: int | None = None
    all_slaves_active: int | None = None
    min_links: int | None = None
    lp_interval: int | None = None
    packets_per_slave: int | None = None
    ad_lacp_rate: int | None = None
    ad_select: int | None = None
    tlb_dynamic_lb: int | None = None
    unknown: tuple = ()


_BOND_U8 = {"mode", "use_carrier", "primary_reselect", "fail_over_mac", "xmit_hash_policy", "num_peer_notif",
            "all_slaves_active", "ad_lacp_rate", "ad_select", "tlb_dynamic_lb"}
bind(BondInfo, Table(BondInfo, IflaBond, [
    Field(t, t.name.lower(), U8 if t.name.lower() in _BOND_U8 else U32) for t in IflaBond
], what="IFLA_INFO_DATA (bond)"))

class IflaBr(enum.IntEnum):
    """Nested in IFLA_INFO_DATA of a bridge (linux/if_link.h), ``IFLA_BR_*``."""

    FORWARD_DELAY = 1
    HELLO_TIME = 2
    MAX_AGE = 3
    AGEING_TIME = 4
    STP_STATE = 5
    PRIORITY = 6
    VLAN_FILTERING = 7
    VLAN_PROTOCOL = 8
    GROUP_FWD_MASK = 9
    ROOT_ID = 10
    BRIDGE_ID = 11
    ROOT_PORT = 12
    ROOT_PATH_COST = 13
    TOPOLOGY_CHANGE = 14
    TOPOLOGY_CHANGE_DETECTED = 15
    HELLO_TIMER = 16
    TCN_TIMER = 17
    TOPOLOGY_CHANGE_TIMER = 18
    GC_TIMER = 19
    GROUP_ADDR = 20
    FDB_FLUSH = 21
    MCAST_ROUTER = 22
    MCAST_SNOOPING = 23
    MCAST_QUERY_USE_IFADDR = 24
    MCAST_QUERIER = 25
    MCAST_HASH_ELASTICITY = 26
    MCAST_HASH_MAX = 27
    MCAST_LAST_MEMBER_CNT = 28
    MCAST_STARTUP_QUERY_CNT = 29
    MCAST_LAST_MEMBER_INTVL = 30
    MCAST_MEMBERSHIP_INTVL = 31
    MCAST_QUERIER_INTVL = 32
    MCAST_QUERY_INTVL = 33
    MCAST_QUERY_RESPONSE_INTVL = 34
    MCAST_STARTUP_QUERY_INTVL = 35
    NF_CALL_IPTABLES = 36
    NF_CALL_IP6TABLES = 37
    NF_CALL_ARPTABLES = 38
    VLAN_DEFAULT_PVID = 39
    PAD = 40
    VLAN_STATS_ENABLED = 41
    MCAST_STATS_ENABLED = 42
    MCAST_IGMP_VERSION = 43
    MCAST_MLD_VERSION = 44
    VLAN_STATS_PER_PORT = 45
    MULTI_BOOLOPT = 46


# struct ifla_bridge_id (linux/if_link.h): priority (2 bytes, big-endian) + MAC address
BRIDGE_ID = struct.Struct(
    "="
    "2s"  # prio[2]
    "6s"  # addr[ETH_ALEN]
)
# struct br_boolopt_multi (linux/if_bridge.h): bits BR_BOOLOPT_* (NO_LL_LEARN 0, MCAST_VLAN_SNOOPING 1, MST_ENABLE 2)
BOOLOPT_MULTI = struct.Struct(
    "="
    "I"  # optval
    "I"  # optmask
)
_BR_U8 = {"vlan_filtering", "topology_change", "topology_change_detected", "mcast_router", "mcast_snooping",
          "mcast_query_use_ifaddr", "mcast_querier", "nf_call_iptables", "nf_call_ip6tables", "nf_call_arptables",
          "vlan_stats_enabled", "mcast_stats_enabled", "mcast_igmp_version", "mcast_mld_version", "vlan_stats_per_port"}
_BR_U16 = {"priority", "group_fwd_mask", "root_port", "vlan_default_pvid"}
_BR_U64 = {"hello_timer", "tcn_timer", "topology_change_timer", "gc_timer", "mcast_last_member_intvl",
           "mcast_membership_intvl", "mcast_querier_intvl", "mcast_query_intvl", "mcast_query_response_intvl",
           "mcast_startup_query_intvl"}
_BR_SPECIAL = {"vlan_protocol": BE16, "root_id": struct_kind(BRIDGE_ID, lambda p, a: (p, a), lambda v: (v[0], v[1])),
               "bridge_id": struct_kind(BRIDGE_ID, lambda p, a: (p, a), lambda v: (v[0], v[1])),
               "group_addr": BYTES, "fdb_flush": FLAG,
               "multi_boolopt": struct_kind(BOOLOPT_MULTI, lambda v, m: (v, m), lambda v: (v[0], v[1]))}
_BR_FIELDS = [t for t in IflaBr if t != IflaBr.PAD]

BridgeInfo = make_record(
    "BridgeInfo",
    [(t.name.lower(), "Any", None) for t in _BR_FIELDS] + [("unknown", "tuple", ())],
    bases=(Codec,),
    module=__name__,
    namespace={"__doc__": "A bridge's IFLA_INFO_DATA (IFLA_BR_*): STP timers and ids, VLAN filtering, multicast "
                          "settings; ids and timers as the kernel sends them (timers in clock ticks, USER_HZ 100/s)."},
)
bind(BridgeInfo, Table(BridgeInfo, IflaBr, [
    Field(t, n, _BR_SPECIAL.get(n) or (U8 if n in _BR_U8 else U16 if n in _BR_U16 else U64 if n in _BR_U64 else U32))
    for t in _BR_FIELDS for n in (t.name.lower(),)
], what="IFLA_INFO_DATA (bridge)"))

# IFLA_INFO_KIND -> data class, for rtnl.INFO_DATA
KINDS = {"vxlan": VxlanInfo, "macvlan": MacvlanInfo, "ipvlan": IpvlanInfo, "vlan": VlanInfo, "vrf": VrfInfo, "bond": BondInfo,
         "bridge": BridgeInfo}
