"""Typed rtnetlink events from notification datagrams (sans-IO Monitor); pure, no I/O.

:class:`Monitor` keeps what it has seen of links, addresses and routes.
``feed(datagram)`` returns the events one notification datagram carries:

* :class:`LinkEvent`: a link appeared, changed (up/down, running, MTU, name,
  ...; ``changed`` names what) or was removed;
* :class:`AddressEvent`: an address was added or removed;
* :class:`RouteEvent`: a route was added or removed.

When the kernel drops notifications (``ENOBUFS`` on the socket) the caller
re-dumps everything and passes the dumps to :meth:`Monitor.resync`, which
returns a :class:`Resync` event followed by the differences between what
was known and what is true now, so nothing is lost silently.  The socket
side lives in :class:`tunkit.netlink.client.RtnlMonitor`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import Iterable, Union

from tunkit._uapi import RTM, IfFlag
from tunkit.netlink.message import parse_messages
from tunkit.netlink.rtnl import AddressMessage, LinkMessage, RouteMessage, decode_message

__all__ = ["AddressEvent", "Event", "LinkEvent", "Monitor", "Resync", "RouteEvent"]

ADDED, CHANGED, REMOVED = "added", "changed", "removed"

# LinkEvent fields compared with the last known state to fill ``changed``.
_LINK_TRACKED = ("ifname", "up", "running", "lower_up", "mtu", "operstate", "txqlen", "address")


@dataclass(frozen=True)
class LinkEvent:
    """A link was added, changed or removed; ``changed`` names the fields that differ
    from the last known state (empty for added/removed)."""

    action: str
    index: int
    ifname: str | None
    up: bool
    running: bool
    lower_up: bool
    mtu: int | None
    operstate: int | None
    txqlen: int | None
    address: bytes | None
    changed: frozenset = frozenset()
    link: LinkMessage | None = None

    @classmethod
    def from_link(cls, action: str, link: LinkMessage, changed: frozenset = frozenset()) -> "LinkEvent":
        return cls(
            action=action,
            index=link.index,
            ifname=link.ifname,
            up=bool(link.flags & IfFlag.UP),
            running=bool(link.flags & IfFlag.RUNNING),
            lower_up=bool(link.flags & IfFlag.LOWER_UP),
            mtu=link.mtu,
            operstate=link.operstate,
            txqlen=link.txqlen,
            address=link.address,
            changed=changed,
            link=link,
        )


@dataclass(frozen=True)
class AddressEvent:
    """An address was added to or removed from link ``index``."""

    action: str
    index: int
    address: "ipaddress.IPv4Interface | ipaddress.IPv6Interface | None"
    message: AddressMessage


@dataclass(frozen=True)
class RouteEvent:
    """A route was added or removed (``route`` is the kernel's description of it)."""

    action: str
    route: RouteMessage


@dataclass(frozen=True)
class Resync:
    """Notifications were lost (``reason``, e.g. ``"ENOBUFS"``); state was re-read
    from full dumps and the events that follow are the differences found."""

    reason: str
    links: int
    addresses: int
    routes: int


Event = Union[LinkEvent, AddressEvent, RouteEvent, Resync]


def _addr_key(a: AddressMessage) -> tuple:
    return (a.index, a.family, a.local if a.local is not None else a.address, a.prefixlen)


def _route_key(r: RouteMessage) -> tuple:
    # the kernel's identity of a route (table, prefix, tos, metric) plus its nexthops,
    # so appended routes that differ only by nexthop stay distinct
    return (r.family, r.table, r.dst, r.src, r.tos, r.priority, r.type, r.oif, r.gateway, r.via, r.multipath)


class Monitor:
    """Sans-IO: turns rtnetlink notification datagrams into typed events."""

    def __init__(self) -> None:
        self.links: dict[int, LinkEvent] = {}
        self.addresses: dict[tuple, AddressMessage] = {}
        self.routes: dict[tuple, RouteMessage] = {}

    def feed(self, datagram) -> list[Event]:
        """Events carried by one datagram of notifications (malformed: DecodeError)."""
        events: list[Event] = []
        for m in parse_messages(datagram):
            obj = decode_message(m.type, m.payload)
            if obj is not None:
                events.extend(self._apply(m.type, obj))
        return events

    def _apply(self, msg_type: int, obj) -> list[Event]:
        if msg_type == RTM.NEWLINK:
            return self._link(obj)
        if msg_type == RTM.DELLINK:
            self.links.pop(obj.index, None)
            return [LinkEvent.from_link(REMOVED, obj)]
        if msg_type == RTM.NEWADDR:
            self.addresses[_addr_key(obj)] = obj
            return [AddressEvent(ADDED, obj.index, obj.interface, obj)]
        if msg_type == RTM.DELADDR:
            self.addresses.pop(_addr_key(obj), None)
            return [AddressEvent(REMOVED, obj.index, obj.interface, obj)]
        if msg_type == RTM.NEWROUTE:
            self.routes[_route_key(obj)] = obj
            return [RouteEvent(ADDED, obj)]
        if msg_type == RTM.DELROUTE:
            self.routes.pop(_route_key(obj), None)
            return [RouteEvent(REMOVED, obj)]
        return []

    def _link(self, link: LinkMessage) -> list[Event]:
        new = LinkEvent.from_link(ADDED, link)
        old = self.links.get(link.index)
        self.links[link.index] = new
        if old is None:
            return [new]
        changed = frozenset(f for f in _LINK_TRACKED if getattr(old, f) != getattr(new, f))
        if not changed:
            return []  # statistics or other untracked attributes only
        return [replace(new, action=CHANGED, changed=changed)]

    def resync(
        self,
        links: Iterable[LinkMessage],
        addresses: Iterable[AddressMessage],
        routes: Iterable[RouteMessage],
        reason: str,
    ) -> list[Event]:
        """Replace the known state by full dumps; return a :class:`Resync` event
        followed by the events that turn the old state into the new one."""
        links, addresses, routes = list(links), list(addresses), list(routes)
        events: list[Event] = [Resync(reason, len(links), len(addresses), len(routes))]
        old_links, self.links = self.links, {}
        for link in links:
            prev = old_links.pop(link.index, None)
            if prev is not None:
                self.links[link.index] = prev
            events.extend(self._link(link))
        events.extend(LinkEvent.from_link(REMOVED, e.link) for e in old_links.values())
        new_addrs = {_addr_key(a): a for a in addresses}
        events.extend(AddressEvent(REMOVED, a.index, a.interface, a) for k, a in self.addresses.items() if k not in new_addrs)
        events.extend(AddressEvent(ADDED, a.index, a.interface, a) for k, a in new_addrs.items() if k not in self.addresses)
        self.addresses = new_addrs
        new_routes = {_route_key(r): r for r in routes}
        events.extend(RouteEvent(REMOVED, r) for k, r in self.routes.items() if k not in new_routes)
        events.extend(RouteEvent(ADDED, r) for k, r in new_routes.items() if k not in self.routes)
        self.routes = new_routes
        return events
