"""Linux kernel uapi constants used by tunkit; pure, no I/O.

Every constant names the uapi header it comes from (paths relative to
``include/uapi/``).  Sets of related values are ``IntEnum``/``IntFlag`` types
so that ``str(flags)`` reads like the C names.  ioctl request numbers are
computed with :func:`_IOC` from the per-architecture encoding table below,
never typed in as hex per architecture.

Sections are grouped by header.  Add new constants to the section of the
header they come from, with that header named in the section banner.
"""

from __future__ import annotations

import enum
import platform
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
    m = (platform.machine() if machine is None else machine).lower()
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
# linux/mount.h, asm-generic/unistd.h  (detached sysfs mounts: tun_flags of this netns)
# ---------------------------------------------------------------------------
# sysfs shows the network namespace it was mounted in, not the caller's.  A
# detached mount made with fsopen/fsconfig/fsmount (Linux 5.2+) is tagged with
# the calling thread's namespace, without touching any mount table.
FSOPEN_CLOEXEC = 0x00000001  # linux/mount.h
FSCONFIG_CMD_CREATE = 6  # linux/mount.h: enum fsconfig_command
FSMOUNT_CLOEXEC = 0x00000001  # linux/mount.h
# System call numbers: unified across architectures since 5.1 (alpha adds 110).
_SYSCALL_BASE = 110 if platform.machine().lower().startswith("alpha") else 0
NR_FSOPEN = 430 + _SYSCALL_BASE  # asm-generic/unistd.h __NR_fsopen
NR_FSCONFIG = 431 + _SYSCALL_BASE  # asm-generic/unistd.h __NR_fsconfig
NR_FSMOUNT = 432 + _SYSCALL_BASE  # asm-generic/unistd.h __NR_fsmount

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
# linux/netlink.h  (netlink work adds this section)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# linux/rtnetlink.h  (netlink work adds this section)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# linux/if_link.h  (netlink work adds this section)
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# linux/if_addr.h  (netlink work adds this section)
# ---------------------------------------------------------------------------

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
# (add new headers' sections above this line, one banner per header)
# ---------------------------------------------------------------------------
