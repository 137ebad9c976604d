"""rtnetlink over raw AF_NETLINK sockets: codec (pure) and client (I/O); importing it does no I/O.

Layout (lower layers never import higher ones):

* pure, no I/O: ``message`` (nlmsghdr, acks), ``attr`` (attributes),
  ``fields`` (the field tables every message codec is made of),
  ``rtnl`` (link/address/route messages), ``rule``, ``neigh``, ``nexthop``,
  ``linkkinds`` (FIB rules, neighbours, nexthop objects, link-kind data),
  ``defaults`` (iproute2's route defaults), ``events`` (sans-IO Monitor);
* thin I/O: ``socket`` (NetlinkSocket), ``client`` (Rtnl, RtnlMonitor),
  ``objects`` (Rtnl's rule/neigh/nexthop/link-kind calls),
  ``aio`` (AsyncRtnl, AsyncMonitor: the same calls awaited under asyncio).

Names are loaded on first use (PEP 562), so ``import tunkit.netlink`` costs
well under a millisecond: ``from tunkit.netlink import Rtnl`` imports the
client only then.
"""

from __future__ import annotations

from tunkit._lazy import lazy_exports

# public name -> submodule that defines it
_LAZY = {
    "Rtnl": "tunkit.netlink.client",
    "RtnlMonitor": "tunkit.netlink.client",
    "LinkNotFound": "tunkit.netlink.client",
    "AsyncRtnl": "tunkit.netlink.aio",
    "AsyncMonitor": "tunkit.netlink.aio",
    "NetlinkSocket": "tunkit.netlink.socket",
    "LinkMessage": "tunkit.netlink.rtnl",
    "LinkInfo": "tunkit.netlink.rtnl",
    "TunInfo": "tunkit.netlink.rtnl",
    "VethInfo": "tunkit.netlink.rtnl",
    "LinkStats64": "tunkit.netlink.rtnl",
    "AddressMessage": "tunkit.netlink.rtnl",
    "AddrCacheInfo": "tunkit.netlink.rtnl",
    "RouteMessage": "tunkit.netlink.rtnl",
    "RouteMetrics": "tunkit.netlink.rtnl",
    "NextHop": "tunkit.netlink.rtnl",
    "MESSAGE_TYPES": "tunkit.netlink.rtnl",
    "VERB_FLAGS": "tunkit.netlink.rtnl",
    "Monitor": "tunkit.netlink.events",
    "LinkEvent": "tunkit.netlink.events",
    "AddressEvent": "tunkit.netlink.events",
    "RouteEvent": "tunkit.netlink.events",
    "Resync": "tunkit.netlink.events",
    "AttrEncoder": "tunkit.netlink.attr",
    "AttrDecoder": "tunkit.netlink.attr",
    "Attr": "tunkit.netlink.attr",
    "Message": "tunkit.netlink.message",
    "parse_messages": "tunkit.netlink.message",
}

__all__ = sorted(_LAZY)


# What type checkers see: the same names, imported for real (never run: TYPE_CHECKING is
# False here, and mypy and pyright take any module-level TYPE_CHECKING to be True).
# tests/test_public_api.py checks that these names and modules equal _LAZY's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from tunkit.netlink.aio import AsyncMonitor as AsyncMonitor, AsyncRtnl as AsyncRtnl
    from tunkit.netlink.attr import Attr as Attr, AttrDecoder as AttrDecoder, AttrEncoder as AttrEncoder
    from tunkit.netlink.client import LinkNotFound as LinkNotFound, Rtnl as Rtnl, RtnlMonitor as RtnlMonitor
    from tunkit.netlink.events import (
        AddressEvent as AddressEvent,
        LinkEvent as LinkEvent,
        Monitor as Monitor,
        Resync as Resync,
        RouteEvent as RouteEvent,
    )
    from tunkit.netlink.message import Message as Message, parse_messages as parse_messages
    from tunkit.netlink.rtnl import (
        MESSAGE_TYPES as MESSAGE_TYPES,
        VERB_FLAGS as VERB_FLAGS,
        AddrCacheInfo as AddrCacheInfo,
        AddressMessage as AddressMessage,
        LinkInfo as LinkInfo,
        LinkMessage as LinkMessage,
        LinkStats64 as LinkStats64,
        NextHop as NextHop,
        RouteMessage as RouteMessage,
        RouteMetrics as RouteMetrics,
        TunInfo as TunInfo,
        VethInfo as VethInfo,
    )
    from tunkit.netlink.socket import NetlinkSocket as NetlinkSocket

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
