"""Linux kernel uapi constants used by tunkit; pure, no I/O.

Every constant names the uapi header it comes from (paths relative to
``include/uapi/``).  Sets of related values are ``IntEnum``/``IntFlag`` types
so that ``str(flags)`` reads like the C names.  ioctl request numbers are
computed with :func:`_IOC` from the per-architecture encoding table below,
never typed in as hex per architecture.

Sections are grouped by header.  Add new constants to the section of the
header they come from, with that header named in the section banner.

(Why this module is over 600 lines: it is a flat table of constants, one
section per kernel header, with no logic beyond :func:`_IOC`.  One module
keeps "where does tunkit get ``RTA_*``/``TUN*``/``IFLA_*`` from" a single
answer, and lets every codec import kernel facts without importing other
codecs; splitting it per header would add a dozen tiny modules that always
change together with the codec that needs them.)
"""

from __future__ import annotations

import enum
from posix import uname as _uname  # platform.machine() is os.uname().machine on Linux; platform.py costs ~1.5 ms at start-up
import struct

# ---------------------------------------------------------------------------
# asm-generic/ioctl.h (and arch/*/include/uapi/asm/ioctl.h overrides)
# ---------------------------------------------------------------------------
# #define _IOC(dir,type,nr,size) \
#     (((dir)  << _IOC_DIRSHIFT) | ((type) << _IOC_TYPESHIFT) | \
#      ((nr)   << _IOC_NRSHIFT)  | ((size) << _IOC_SIZESHIFT))
#
# Most architectures use the asm-generic encoding: 2 direction bits, 14 size
# bits, NONE=0 WRITE=1 READ=2.  powerpc, mips, sparc and alpha use 3 direction
# bits and 13 size bits with NONE=1 READ=2 WRITE=4.


class IocEncoding:
    """The direction/size bit layout of one architecture's ioctl numbers."""

    __slots__ = ("none", "read", "write", "sizebits")

    def __init__(self, none: int, read: int, write: int, sizebits: int) -> None:
        self.none = none
        self.read = read
        self.write = write
        self.sizebits = sizebits


_IOC_GENERIC = IocEncoding(none=0, read=2, write=1, sizebits=14)  # asm-generic/ioctl.h
_IOC_3BIT = IocEncoding(none=1, read=2, write=4, sizebits=13)  # arch/{powerpc,mips,sparc,alpha}

# platform.machine() prefix -> encoding; anything not listed is asm-generic.
_IOC_BY_MACHINE_PREFIX = (
    ("ppc", _IOC_3BIT),
    ("powerpc", _IOC_3BIT),
    ("mips", _IOC_3BIT),
    ("sparc", _IOC_3BIT),
    ("alpha", _IOC_3BIT),
)

_IOC_NRBITS = 8
_IOC_TYPEBITS = 8
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS


def ioc_encoding(machine: str | None = None) -> IocEncoding:
    """Return the ioctl encoding for ``machine`` (default: this host)."""
    m = (_uname().machine if machine is None else machine).lower()
    for prefix, enc in _IOC_BY_MACHINE_PREFIX:
        if m.startswith(prefix):
            return enc
    return _IOC_GENERIC


def _IOC(direction: int, type_: str | int, nr: int, size: int, enc: IocEncoding | None = None) -> int:
    """Compute an ioctl request number as the kernel's ``_IOC`` macro does."""
    enc = enc or _HOST_IOC
    t = ord(type_) if isinstance(type_, str) else type_
    if not 0 <= size < (1 << enc.sizebits):
        raise ValueError(f"ioctl size {size} does not fit in {enc.sizebits} bits")
    dirshift = _IOC_SIZESHIFT + enc.sizebits
    return (direction << dirshift) | (t << _IOC_TYPESHIFT) | (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)


def _IO(type_: str, nr: int, enc: IocEncoding | None = None) -> int:
    enc = enc or _HOST_IOC
    return _IOC(enc.none, type_, nr, 0, enc)


def _IOR(type_: str, nr: int, size: int, enc: IocEncoding | None = None) -> int:
    enc = enc or _HOST_IOC
    return _IOC(enc.read, type_, nr, size, enc)


def _IOW(type_: str, nr: int, size: int, enc: IocEncoding | None = None) -> int:
    enc = enc or _HOST_IOC
    return _IOC(enc.write, type_, nr, size, enc)


_HOST_IOC = ioc_encoding()

SIZEOF_INT = 4  # C int on every Linux ABI
SIZEOF_POINTER = struct.calcsize("P")
SIZEOF_SOCK_FPROG = 2 * SIZEOF_POINTER  # linux/filter.h struct sock_fprog: u16 len (padded) + pointer

# ---------------------------------------------------------------------------
# linux/if.h
# ---------------------------------------------------------------------------
IFNAMSIZ = 16  # linux/if.h: includes the trailing NUL, so names are at most 15 bytes
SIZEOF_IFREQ = 40  # linux/if.h struct ifreq: 16-byte name + 24-byte union (on 64-bit ABIs)
SIZEOF_IFREQ_32BIT = 32  # linux/if.h struct ifreq on 32-bit ABIs (struct ifmap is 16 bytes there)


class IfFlag(enum.IntFlag):
    """``net_device_flags`` (linux/if.h), read and written with SIOC[GS]IFFLAGS."""

    UP = 0x1
    BROADCAST = 0x2
    DEBUG = 0x4
    LOOPBACK = 0x8
    POINTOPOINT = 0x10
    NOTRAILERS = 0x20
    RUNNING = 0x40
    NOARP = 0x80
    PROMISC = 0x100
    ALLMULTI = 0x200
    MASTER = 0x400
    SLAVE = 0x800
    MULTICAST = 0x1000
    PORTSEL = 0x2000
    AUTOMEDIA = 0x4000
    DYNAMIC = 0x8000
    LOWER_UP = 0x10000
    DORMANT = 0x20000
    ECHO = 0x40000


# ---------------------------------------------------------------------------
# linux/sockios.h
# ---------------------------------------------------------------------------
SIOCGIFNAME = 0x8910  # linux/sockios.h: ifindex -> name
SIOCGIFFLAGS = 0x8913  # linux/sockios.h
SIOCSIFFLAGS = 0x8914  # linux/sockios.h
SIOCGIFMTU = 0x8921  # linux/sockios.h
SIOCSIFMTU = 0x8922  # linux/sockios.h
SIOCSIFNAME = 0x8923  # linux/sockios.h
SIOCSIFHWADDR = 0x8924  # linux/sockios.h
SIOCGIFHWADDR = 0x8927  # linux/sockios.h
SIOCGIFINDEX = 0x8933  # linux/sockios.h
SIOCGIFTXQLEN = 0x8942  # linux/sockios.h
SIOCSIFTXQLEN = 0x8943  # linux/sockios.h

# ---------------------------------------------------------------------------
# linux/if_arp.h
# ---------------------------------------------------------------------------
ARPHRD_ETHER = 1  # linux/if_arp.h
ARPHRD_NONE = 0xFFFE  # linux/if_arp.h: TUN devices report this
ETH_ALEN = 6  # linux/if_ether.h: octets in an Ethernet (TAP) hardware address

# ---------------------------------------------------------------------------
# linux/sched.h
# ---------------------------------------------------------------------------
CLONE_NEWNET = 0x40000000  # linux/sched.h: new network namespace (unshare/setns)

# ---------------------------------------------------------------------------
# linux/if_tun.h
# ---------------------------------------------------------------------------
TUNSETNOCSUM = _IOW("T", 200, SIZEOF_INT)  # linux/if_tun.h
TUNSETDEBUG = _IOW("T", 201, SIZEOF_INT)  # linux/if_tun.h
TUNSETIFF = _IOW("T", 202, SIZEOF_INT)  # linux/if_tun.h
TUNSETPERSIST = _IOW("T", 203, SIZEOF_INT)  # linux/if_tun.h
TUNSETOWNER = _IOW("T", 204, SIZEOF_INT)  # linux/if_tun.h
TUNSETLINK = _IOW("T", 205, SIZEOF_INT)  # linux/if_tun.h
TUNSETGROUP = _IOW("T", 206, SIZEOF_INT)  # linux/if_tun.h
TUNGETFEATURES = _IOR("T", 207, SIZEOF_INT)  # linux/if_tun.h (unsigned int)
TUNSETOFFLOAD = _IOW("T", 208, SIZEOF_INT)  # linux/if_tun.h (unsigned int)
TUNSETTXFILTER = _IOW("T", 209, SIZEOF_INT)  # linux/if_tun.h (unsigned int)
TUNGETIFF = _IOR("T", 210, SIZEOF_INT)  # linux/if_tun.h (unsigned int)
TUNGETSNDBUF = _IOR("T", 211, SIZEOF_INT)  # linux/if_tun.h
TUNSETSNDBUF = _IOW("T", 212, SIZEOF_INT)  # linux/if_tun.h
TUNATTACHFILTER = _IOW("T", 213, SIZEOF_SOCK_FPROG)  # linux/if_tun.h
TUNDETACHFILTER = _IOW("T", 214, SIZEOF_SOCK_FPROG)  # linux/if_tun.h
TUNGETVNETHDRSZ = _IOR("T", 215, SIZEOF_INT)  # linux/if_tun.h
TUNSETVNETHDRSZ = _IOW("T", 216, SIZEOF_INT)  # linux/if_tun.h
TUNSETQUEUE = _IOW("T", 217, SIZEOF_INT)  # linux/if_tun.h
TUNSETIFINDEX = _IOW("T", 218, SIZEOF_INT)  # linux/if_tun.h (unsigned int)
TUNGETFILTER = _IOR("T", 219, SIZEOF_SOCK_FPROG)  # linux/if_tun.h
TUNSETVNETLE = _IOW("T", 220, SIZEOF_INT)  # linux/if_tun.h
TUNGETVNETLE = _IOR("T", 221, SIZEOF_INT)  # linux/if_tun.h
TUNSETVNETBE = _IOW("T", 222, SIZEOF_INT)  # linux/if_tun.h
TUNGETVNETBE = _IOR("T", 223, SIZEOF_INT)  # linux/if_tun.h
TUNSETSTEERINGEBPF = _IOR("T", 224, SIZEOF_INT)  # linux/if_tun.h (sic: _IOR in the header)
TUNSETFILTEREBPF = _IOR("T", 225, SIZEOF_INT)  # linux/if_tun.h (sic: _IOR in the header)
TUNSETCARRIER = _IOW("T", 226, SIZEOF_INT)  # linux/if_tun.h
TUNGETDEVNETNS = _IO("T", 227)  # linux/if_tun.h


class TunFlag(enum.IntFlag):
    """``ifr_flags`` for TUNSETIFF/TUNGETIFF/TUNSETQUEUE (linux/if_tun.h)."""

    TUN = 0x0001
    TAP = 0x0002
    NAPI = 0x0010
    NAPI_FRAGS = 0x0020
    NO_CARRIER = 0x0040
    MULTI_QUEUE = 0x0100
    ATTACH_QUEUE = 0x0200
    DETACH_QUEUE = 0x0400
    PERSIST = 0x0800
    NO_PI = 0x1000
    ONE_QUEUE = 0x2000  # obsolete, ignored by the kernel
    VNET_HDR = 0x4000
    TUN_EXCL = 0x8000


TUN_TYPE_MASK = 0x000F  # linux/if_tun.h
# linux/if_tun.h: TUNGETIFF also reports "no socket filter attached" as IFF_NOFILTER,
# which has the same value as IFF_NO_PI, so NO_PI cannot be read back with TUNGETIFF.
IFF_NOFILTER = 0x1000  # linux/if_tun.h
TUN_PI_LEN = 4  # linux/if_tun.h: sizeof(struct tun_pi), prepended to packets without IFF_NO_PI
MISC_MAJOR = 10  # linux/major.h: /dev/net/tun is a misc character device ...
TUN_MINOR = 200  # include/linux/miscdevice.h (kernel-internal): ... with minor 200


class TunOffload(enum.IntFlag):
    """TUNSETOFFLOAD bits, ``TUN_F_*`` (linux/if_tun.h)."""

    CSUM = 0x01  # the reader may receive packets with partial checksums
    TSO4 = 0x02
    TSO6 = 0x04
    TSO_ECN = 0x08
    UFO = 0x10
    USO4 = 0x20  # Linux 6.2+; missing from older installed headers
    USO6 = 0x40  # Linux 6.2+


# struct tun_pi (linux/if_tun.h): flags u16, proto be16; prepended without IFF_NO_PI.
TUN_PKT_STRIP = 0x0001  # linux/if_tun.h: tun_pi.flags, packet was truncated

# ---------------------------------------------------------------------------
# linux/virtio_net.h
# ---------------------------------------------------------------------------
VIRTIO_NET_HDR_LEN = 10  # linux/virtio_net.h: sizeof(struct virtio_net_hdr), legacy layout
VIRTIO_NET_HDR_MRG_RXBUF_LEN = 12  # linux/virtio_net.h: sizeof(struct virtio_net_hdr_mrg_rxbuf) (+ num_buffers)


class VirtioNetHdrFlag(enum.IntFlag):
    """``virtio_net_hdr.flags``, ``VIRTIO_NET_HDR_F_*`` (linux/virtio_net.h)."""

    NEEDS_CSUM = 1  # checksum partial: sum from csum_start to the end, store at csum_start+csum_offset
    DATA_VALID = 2  # the checksum is known to be valid
    RSC_INFO = 4  # csum_* fields carry RSC information (never from or to a TUN device)


class VirtioNetHdrGso(enum.IntEnum):
    """``virtio_net_hdr.gso_type`` without the ECN bit, ``VIRTIO_NET_HDR_GSO_*`` (linux/virtio_net.h)."""

    NONE = 0  # not a GSO frame
    TCPV4 = 1  # IPv4 TCP (TSO)
    UDP = 3  # IPv4 UDP fragmentation offload (UFO, legacy; tunkit rejects it)
    TCPV6 = 4  # IPv6 TCP
    UDP_L4 = 5  # UDP segmentation offload (USO), IPv4 or IPv6; Linux 6.2+, missing from older headers


VIRTIO_NET_HDR_GSO_ECN = 0x80  # linux/virtio_net.h: ORed onto a TCP gso_type: CWR set on the first segment

# ---------------------------------------------------------------------------
# linux/netlink.h
# ---------------------------------------------------------------------------
NETLINK_ROUTE = 0  # linux/netlink.h: routing/device hook (rtnetlink)
SOL_NETLINK = 270  # linux/socket.h: setsockopt level for the options below

# struct nlmsghdr (linux/netlink.h): len u32, type u16, flags u16, seq u32, pid u32
NLMSG_ALIGNTO = 4  # linux/netlink.h
NLMSG_HDRLEN = 16  # linux/netlink.h: NLMSG_ALIGN(sizeof(struct nlmsghdr))
# struct nlattr (linux/netlink.h): len u16, type u16
NLA_ALIGNTO = 4  # linux/netlink.h
NLA_HDRLEN = 4  # linux/netlink.h: NLA_ALIGN(sizeof(struct nlattr))
NLA_F_NESTED = 1 << 15  # linux/netlink.h: payload is a nested attribute stream
NLA_F_NET_BYTEORDER = 1 << 14  # linux/netlink.h: payload is in network byte order
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF  # linux/netlink.h


class NlmsgType(enum.IntEnum):
    """Control message types below ``NLMSG_MIN_TYPE`` (linux/netlink.h)."""

    NOOP = 0x1  # nothing
    ERROR = 0x2  # error, or an ack when the error is 0
    DONE = 0x3  # end of a multipart (dump) reply
    OVERRUN = 0x4  # data lost


NLMSG_MIN_TYPE = 0x10  # linux/netlink.h: < 0x10 is reserved for control messages


class NlmFlag(enum.IntFlag):
    """``nlmsg_flags`` (linux/netlink.h).

    The 0x100-0x800 bits mean different things for GET, NEW, DELETE requests
    and for acks; the NEW names come first so ``str()`` reads like a change
    request, and the other meanings are aliases.
    """

    REQUEST = 0x01  # it is a request message
    MULTI = 0x02  # multipart message, terminated by NLMSG_DONE
    ACK = 0x04  # reply with an ack, with zero or an error code
    ECHO = 0x08  # receive the resulting notifications
    DUMP_INTR = 0x10  # dump was inconsistent due to a sequence change
    DUMP_FILTERED = 0x20  # dump was filtered as requested
    # modifiers to NEW requests
    REPLACE = 0x100  # override existing
    EXCL = 0x200  # do not touch, if it exists
    CREATE = 0x400  # create, if it does not exist
    APPEND = 0x800  # add to end of list
    # modifiers to GET requests (aliases)
    ROOT = 0x100  # specify tree root
    MATCH = 0x200  # return all matching
    ATOMIC = 0x400  # atomic GET
    DUMP = 0x300  # ROOT|MATCH
    # modifiers to DELETE requests (aliases)
    NONREC = 0x100  # do not delete recursively
    BULK = 0x200  # delete multiple objects
    # flags for ACK messages (aliases)
    CAPPED = 0x100  # request was capped (NETLINK_CAP_ACK)
    ACK_TLVS = 0x200  # extended ACK TLVs were included


# setsockopt(SOL_NETLINK, ...) options (linux/netlink.h)
NETLINK_ADD_MEMBERSHIP = 1  # linux/netlink.h: join a multicast group (int group number)
NETLINK_DROP_MEMBERSHIP = 2  # linux/netlink.h
NETLINK_NO_ENOBUFS = 5  # linux/netlink.h: silently drop instead of reporting overflow
NETLINK_CAP_ACK = 10  # linux/netlink.h: acks carry only the request header, not its payload
NETLINK_EXT_ACK = 11  # linux/netlink.h: acks may carry NLMSGERR_ATTR_* TLVs
NETLINK_GET_STRICT_CHK = 12  # linux/netlink.h: strict header/attribute checks on GET/dump requests


class NlmsgerrAttr(enum.IntEnum):
    """Extended-ack TLVs after ``struct nlmsgerr`` (linux/netlink.h)."""

    UNUSED = 0
    MSG = 1  # error message string
    OFFS = 2  # u32 offset of the invalid attribute in the original message
    COOKIE = 3  # arbitrary subsystem-specific cookie
    POLICY = 4  # policy for a rejected attribute (nested)
    MISS_TYPE = 5  # u32 type of a missing required attribute
    MISS_NEST = 6  # u32 offset of the nest where an attribute was missing


# ---------------------------------------------------------------------------
# linux/rtnetlink.h
# ---------------------------------------------------------------------------


class RTM(enum.IntEnum):
    """rtnetlink message types (linux/rtnetlink.h), ``RTM_*``."""

    NEWLINK = 16
    DELLINK = 17
    GETLINK = 18
    SETLINK = 19
    NEWADDR = 20
    DELADDR = 21
    GETADDR = 22
    NEWROUTE = 24
    DELROUTE = 25
    GETROUTE = 26


class RTN(enum.IntEnum):
    """Route types, ``rtm_type`` (linux/rtnetlink.h)."""

    UNSPEC = 0
    UNICAST = 1  # gateway or direct route
    LOCAL = 2  # accept locally
    BROADCAST = 3  # accept locally as broadcast, send as broadcast
    ANYCAST = 4  # accept locally as broadcast, but send as unicast
    MULTICAST = 5  # multicast route
    BLACKHOLE = 6  # drop
    UNREACHABLE = 7  # destination is unreachable
    PROHIBIT = 8  # administratively prohibited
    THROW = 9  # not in this table
    NAT = 10  # translate this address
    XRESOLVE = 11  # use external resolver


# rtm_protocol values (linux/rtnetlink.h): an open set, so a name table, not an enum.
RTPROT_UNSPEC = 0  # linux/rtnetlink.h
RTPROT_REDIRECT = 1  # linux/rtnetlink.h: installed by ICMP redirects
RTPROT_KERNEL = 2  # linux/rtnetlink.h: installed by the kernel
RTPROT_BOOT = 3  # linux/rtnetlink.h: installed during boot (iproute2's default for "add")
RTPROT_STATIC = 4  # linux/rtnetlink.h: installed by the administrator
RTPROT_NAMES = {  # linux/rtnetlink.h values, iproute2's names (/usr/share/iproute2/rt_protos)
    0: "unspec", 1: "redirect", 2: "kernel", 3: "boot", 4: "static", 8: "gated", 9: "ra",
    10: "mrt", 11: "zebra", 12: "bird", 13: "dnrouted", 14: "xorp", 15: "ntk", 16: "dhcp",
    17: "mrouted", 18: "keepalived", 42: "babel", 99: "openr", 186: "bgp", 187: "isis",
    188: "ospf", 189: "rip", 192: "eigrp",
}


class RtScope(enum.IntEnum):
    """``rtm_scope`` / ``ifa_scope`` (linux/rtnetlink.h), ``RT_SCOPE_*``."""

    UNIVERSE = 0
    SITE = 200
    LINK = 253
    HOST = 254
    NOWHERE = 255


RT_SCOPE_NAMES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}  # iproute2's names

RTM_F_NOTIFY = 0x100  # linux/rtnetlink.h: notify the user of a route change
RTM_F_CLONED = 0x200  # linux/rtnetlink.h: this route is cloned
RTM_F_LOOKUP_TABLE = 0x1000  # linux/rtnetlink.h: set rtm_table to the FIB lookup result
RTM_F_FIB_MATCH = 0x2000  # linux/rtnetlink.h: return the full FIB lookup match

# Reserved table ids (linux/rtnetlink.h)
RT_TABLE_UNSPEC = 0  # linux/rtnetlink.h
RT_TABLE_COMPAT = 252  # linux/rtnetlink.h
RT_TABLE_DEFAULT = 253  # linux/rtnetlink.h
RT_TABLE_MAIN = 254  # linux/rtnetlink.h
RT_TABLE_LOCAL = 255  # linux/rtnetlink.h
RT_TABLE_NAMES = {253: "default", 254: "main", 255: "local"}  # iproute2's names


class RTA(enum.IntEnum):
    """Route attributes (linux/rtnetlink.h), ``RTA_*``."""

    UNSPEC = 0
    DST = 1
    SRC = 2
    IIF = 3
    OIF = 4
    GATEWAY = 5
    PRIORITY = 6
    PREFSRC = 7
    METRICS = 8
    MULTIPATH = 9
    PROTOINFO = 10  # no longer used
    FLOW = 11
    CACHEINFO = 12
    SESSION = 13  # no longer used
    MP_ALGO = 14  # no longer used
    TABLE = 15
    MARK = 16
    MFC_STATS = 17
    VIA = 18
    NEWDST = 19
    PREF = 20
    ENCAP_TYPE = 21
    ENCAP = 22
    EXPIRES = 23
    PAD = 24
    UID = 25
    TTL_PROPAGATE = 26
    IP_PROTO = 27
    SPORT = 28
    DPORT = 29
    NH_ID = 30


class RtnhFlag(enum.IntFlag):
    """``rtnh_flags`` of a nexthop (linux/rtnetlink.h), ``RTNH_F_*``; also in ``rtm_flags``."""

    DEAD = 1  # nexthop is dead (used by multipath)
    PERVASIVE = 2  # do recursive gateway lookup
    ONLINK = 4  # gateway is forced on link
    OFFLOAD = 8  # nexthop is offloaded
    LINKDOWN = 16  # carrier-down on nexthop
    UNRESOLVED = 32  # the entry is unresolved (ipmr)
    TRAP = 64  # nexthop is trapping packets


# struct rtnexthop (linux/rtnetlink.h): len u16, flags u8, hops u8, ifindex int
RTNH_ALIGNTO = 4  # linux/rtnetlink.h


class RTAX(enum.IntEnum):
    """Route metrics nested in RTA_METRICS (linux/rtnetlink.h), ``RTAX_*``."""

    UNSPEC = 0
    LOCK = 1  # bit (1 << RTAX_x) set: metric x is locked
    MTU = 2
    WINDOW = 3
    RTT = 4
    RTTVAR = 5
    SSTHRESH = 6
    CWND = 7
    ADVMSS = 8
    REORDERING = 9
    HOPLIMIT = 10
    INITCWND = 11
    FEATURES = 12
    RTO_MIN = 13
    INITRWND = 14
    QUICKACK = 15
    CC_ALGO = 16  # string
    FASTOPEN_NO_COOKIE = 17


# RTA_PREF values: IPv6 router preference (linux/icmpv6.h ICMPV6_ROUTER_PREF_*)
ICMPV6_ROUTER_PREF_MEDIUM = 0x0  # linux/icmpv6.h
ICMPV6_ROUTER_PREF_HIGH = 0x1  # linux/icmpv6.h
ICMPV6_ROUTER_PREF_LOW = 0x3  # linux/icmpv6.h
ROUTER_PREF_NAMES = {0: "medium", 1: "high", 3: "low"}  # iproute2's names


class RtnlGroup(enum.IntEnum):
    """Multicast groups for NETLINK_ADD_MEMBERSHIP (linux/rtnetlink.h), ``RTNLGRP_*``."""

    LINK = 1
    NOTIFY = 2
    NEIGH = 3
    TC = 4
    IPV4_IFADDR = 5
    IPV4_MROUTE = 6
    IPV4_ROUTE = 7
    IPV4_RULE = 8
    IPV6_IFADDR = 9
    IPV6_MROUTE = 10
    IPV6_ROUTE = 11


RTEXT_FILTER_VF = 1 << 0  # linux/rtnetlink.h: IFLA_EXT_MASK bit
RTEXT_FILTER_SKIP_STATS = 1 << 3  # linux/rtnetlink.h: IFLA_EXT_MASK bit

# ---------------------------------------------------------------------------
# linux/if_link.h
# ---------------------------------------------------------------------------


class IFLA(enum.IntEnum):
    """Link attributes (linux/if_link.h), ``IFLA_*``."""

    UNSPEC = 0
    ADDRESS = 1
    BROADCAST = 2
    IFNAME = 3
    MTU = 4
    LINK = 5
    QDISC = 6
    STATS = 7
    COST = 8
    PRIORITY = 9
    MASTER = 10
    WIRELESS = 11
    PROTINFO = 12
    TXQLEN = 13
    MAP = 14
    WEIGHT = 15
    OPERSTATE = 16
    LINKMODE = 17
    LINKINFO = 18
    NET_NS_PID = 19
    IFALIAS = 20
    NUM_VF = 21
    VFINFO_LIST = 22
    STATS64 = 23
    VF_PORTS = 24
    PORT_SELF = 25
    AF_SPEC = 26
    GROUP = 27
    NET_NS_FD = 28
    EXT_MASK = 29
    PROMISCUITY = 30
    NUM_TX_QUEUES = 31
    NUM_RX_QUEUES = 32
    CARRIER = 33
    PHYS_PORT_ID = 34
    CARRIER_CHANGES = 35
    PHYS_SWITCH_ID = 36
    LINK_NETNSID = 37
    PHYS_PORT_NAME = 38
    PROTO_DOWN = 39
    GSO_MAX_SEGS = 40
    GSO_MAX_SIZE = 41
    PAD = 42
    XDP = 43
    EVENT = 44
    NEW_NETNSID = 45
    IF_NETNSID = 46
    CARRIER_UP_COUNT = 47
    CARRIER_DOWN_COUNT = 48
    NEW_IFINDEX = 49
    MIN_MTU = 50
    MAX_MTU = 51
    PROP_LIST = 52
    ALT_IFNAME = 53
    PERM_ADDRESS = 54


class IflaInfo(enum.IntEnum):
    """Nested in IFLA_LINKINFO (linux/if_link.h), ``IFLA_INFO_*``."""

    UNSPEC = 0
    KIND = 1  # string: "veth", "dummy", "tun", ...
    DATA = 2  # nested, kind-specific
    XSTATS = 3
    SLAVE_KIND = 4
    SLAVE_DATA = 5


class IflaInet6(enum.IntEnum):
    """Nested in IFLA_AF_SPEC / AF_INET6 (linux/if_link.h), ``IFLA_INET6_*``."""

    UNSPEC = 0
    FLAGS = 1
    CONF = 2
    STATS = 3
    MCAST = 4
    CACHEINFO = 5
    ICMP6STATS = 6
    TOKEN = 7
    ADDR_GEN_MODE = 8  # u8, an In6AddrGenMode
    RA_MTU = 9


class In6AddrGenMode(enum.IntEnum):
    """IPv6 link-local address generation (linux/if_link.h), ``IN6_ADDR_GEN_MODE_*``."""

    EUI64 = 0
    NONE = 1
    STABLE_PRIVACY = 2
    RANDOM = 3


class IfOper(enum.IntEnum):
    """RFC 2863 operational state, IFLA_OPERSTATE (linux/if.h), ``IF_OPER_*``."""

    UNKNOWN = 0
    NOTPRESENT = 1
    DOWN = 2
    LOWERLAYERDOWN = 3
    TESTING = 4
    DORMANT = 5
    UP = 6


class IflaTun(enum.IntEnum):
    """Nested in IFLA_INFO_DATA for kind "tun" (linux/if_link.h), ``IFLA_TUN_*``."""

    UNSPEC = 0
    OWNER = 1  # u32 uid
    GROUP = 2  # u32 gid
    TYPE = 3  # u8: IFF_TUN or IFF_TAP
    PI = 4  # u8 bool
    VNET_HDR = 5  # u8 bool
    PERSIST = 6  # u8 bool
    MULTI_QUEUE = 7  # u8 bool
    NUM_QUEUES = 8  # u32
    NUM_DISABLED_QUEUES = 9  # u32


# struct rtnl_link_stats64 (linux/if_link.h): these u64 fields, in this order; newer
# kernels append fields, older ones send fewer (rx_nohandler and later are recent).
RTNL_LINK_STATS64_FIELDS = (
    "rx_packets", "tx_packets", "rx_bytes", "tx_bytes", "rx_errors", "tx_errors",
    "rx_dropped", "tx_dropped", "multicast", "collisions", "rx_length_errors",
    "rx_over_errors", "rx_crc_errors", "rx_frame_errors", "rx_fifo_errors",
    "rx_missed_errors", "tx_aborted_errors", "tx_carrier_errors", "tx_fifo_errors",
    "tx_heartbeat_errors", "tx_window_errors", "rx_compressed", "tx_compressed",
    "rx_nohandler", "rx_otherhost_dropped",
)

# ---------------------------------------------------------------------------
# linux/if_addr.h
# ---------------------------------------------------------------------------


class IFA(enum.IntEnum):
    """Address attributes (linux/if_addr.h), ``IFA_*``."""

    UNSPEC = 0
    ADDRESS = 1  # the prefix address; the peer on point-to-point links
    LOCAL = 2  # the local address
    LABEL = 3  # string
    BROADCAST = 4
    ANYCAST = 5
    CACHEINFO = 6  # struct ifa_cacheinfo
    MULTICAST = 7
    FLAGS = 8  # u32, extends the u8 ifa_flags
    RT_PRIORITY = 9  # u32, metric of the prefix route
    TARGET_NETNSID = 10
    PROTO = 11  # u8, address protocol


class IfaFlag(enum.IntFlag):
    """Address flags, ``ifa_flags`` and IFA_FLAGS (linux/if_addr.h), ``IFA_F_*``."""

    SECONDARY = 0x01  # also TEMPORARY for IPv6
    NODAD = 0x02
    OPTIMISTIC = 0x04
    DADFAILED = 0x08
    HOMEADDRESS = 0x10
    DEPRECATED = 0x20
    TENTATIVE = 0x40
    PERMANENT = 0x80
    MANAGETEMPADDR = 0x100
    NOPREFIXROUTE = 0x200
    MCAUTOJOIN = 0x400
    STABLE_PRIVACY = 0x800


INFINITY_LIFE_TIME = 0xFFFFFFFF  # linux/if_addr.h: ifa_cacheinfo lifetime meaning "forever"

# ---------------------------------------------------------------------------
# linux/in.h, linux/in6.h  (IP protocol numbers and socket options)
# ---------------------------------------------------------------------------
IPPROTO_ICMP = 1  # linux/in.h
IPPROTO_TCP = 6  # linux/in.h
IPPROTO_UDP = 17  # linux/in.h
IPPROTO_IPV6 = 41  # linux/in.h
IPPROTO_ICMPV6 = 58  # linux/in6.h
IPPROTO_HOPOPTS = 0  # linux/in6.h: IPv6 hop-by-hop options header
IPPROTO_ROUTING = 43  # linux/in6.h: IPv6 routing header
IPPROTO_FRAGMENT = 44  # linux/in6.h: IPv6 fragment header
IPPROTO_ESP = 50  # linux/in.h: encapsulating security payload (ends the IPv6 header walk)
IPPROTO_AH = 51  # linux/in.h: authentication header (length in 4-byte units, minus 2)
IPPROTO_NONE = 59  # linux/in6.h: IPv6 "no next header"
IPPROTO_DSTOPTS = 60  # linux/in6.h: IPv6 destination options header
IPPROTO_MH = 135  # linux/in6.h: IPv6 mobility header

# ---------------------------------------------------------------------------
# linux/udp.h  (UDP socket options: GSO on send, GRO on receive)
# ---------------------------------------------------------------------------
SOL_UDP = 17  # linux/socket.h: the option level for UDP (= IPPROTO_UDP)
UDP_SEGMENT = 103  # linux/udp.h: u16 gso_size, setsockopt or cmsg on send
UDP_GRO = 104  # linux/udp.h: int on/off; cmsg on receive carries the u16 gso_size
UDP_MAX_SEGMENTS = 64  # include/linux/udp.h (kernel-internal): 64 on older kernels, raised later; 64 is safe everywhere

# ---------------------------------------------------------------------------
# linux/veth.h
# ---------------------------------------------------------------------------
VETH_INFO_PEER = 1  # linux/veth.h: nested in IFLA_INFO_DATA; ifinfomsg + IFLA_* of the peer

# ---------------------------------------------------------------------------
# linux/socket.h  (address families used in netlink headers)
# ---------------------------------------------------------------------------
AF_UNSPEC = 0  # linux/socket.h
AF_INET = 2  # linux/socket.h
AF_INET6 = 10  # linux/socket.h
AF_NETLINK = 16  # linux/socket.h
# asm-generic/socket.h; alpha, parisc and sparc number these from 0x1000, mips differs for SNDBUFFORCE.
# Python 3.11's socket module lacks them, so they are kept here.
_MACHINE = _uname().machine.lower()
_SOCKET_H_1000 = _MACHINE.startswith(("alpha", "parisc", "sparc"))
SO_SNDBUFFORCE = 0x100A if _SOCKET_H_1000 else 31 if _MACHINE.startswith("mips") else 32  # asm-generic/socket.h
SO_RCVBUFFORCE = 0x100B if _SOCKET_H_1000 else 33  # asm-generic/socket.h

# ---------------------------------------------------------------------------
# (add new headers' sections above this line, one banner per header)
# ---------------------------------------------------------------------------
