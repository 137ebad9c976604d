"""Typed rtnetlink events from notification datagrams (sans-IO Monitor); pure, no I/O.

:class:`Monitor` keeps what it has seen of links, addresses and routes.
``feed(datagram)`` returns the events one notification datagram carries:

* :class:`LinkEvent`: a link appeared, changed (up/down, running, MTU, name,
  ...; ``changed`` names what) or was removed;
* :class:`AddressEvent`: an address was added or removed;
* :class:`RouteEvent`: a route was added or removed;
* :class:`NeighEvent`: a neighbour entry appeared, changed state or went;
* :class:`RuleEvent`: a FIB rule was added or removed.

When the kernel drops notifications (``ENOBUFS`` on the socket) the caller
re-dumps everything and passes the dumps to :meth:`Monitor.resync`, which
returns a :class:`Resync` event followed by the differences between what
was known and what is true now, so nothing is lost silently.  The socket
side lives in :class:`tunkit.netlink.client.RtnlMonitor`.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Iterable, Union

from tunkit._uapi import RTM, IfFlag
from tunkit.netlink.message import parse_messages
from tunkit.netlink.record import record, replace
from tunkit.netlink.rtnl import AddressMessage, LinkMessage, RouteMessage, decode_message

if TYPE_CHECKING:  # imported when a notification of theirs arrives (decode_message), not before
    from tunkit.netlink.neigh import NeighMessage
    from tunkit.netlink.rule import RuleMessage

RTM_NEWNEIGH, RTM_DELNEIGH, RTM_NEWRULE, RTM_DELRULE = 28, 29, 32, 33  # linux/rtnetlink.h
_NTF_PROXY = 0x08  # NTF_PROXY (linux/neighbour.h)

__all__ = ["AddressEvent", "Event", "LinkEvent", "Monitor", "NeighEvent", "Resync", "RouteEvent", "RuleEvent"]

ADDED, CHANGED, REMOVED = "added", "changed", "removed"

# LinkEvent fields compared with the last known state to fill ``changed``.
_LINK_TRACKED = ("ifname", "up", "running", "lower_up", "mtu", "operstate", "txqlen", "address")


@record
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


@record
class AddressEvent:
    """An address was added to or removed from link ``index``."""

    action: str
    index: int
    address: "ipaddress.IPv4Interface | ipaddress.IPv6Interface | None"
    message: AddressMessage


@record
class RouteEvent:
    """A route was added or removed (``route`` is the kernel's description of it)."""

    action: str
    route: RouteMessage


@record
class Resync:
    """Notifications were lost (``reason``, e.g. ``"ENOBUFS"``); state was re-read
    from full dumps and the events that follow are the differences found."""

    reason: str
    links: int
    addresses: int
    routes: int
    neighbours: int = 0
    rules: int = 0


@record
class NeighEvent:
    """A neighbour entry was added, changed (state, lladdr, flags) or removed."""

    action: str
    neigh: NeighMessage


@record
class RuleEvent:
    """A FIB rule was added or removed."""

    action: str
    rule: RuleMessage


Event = Union[LinkEvent, AddressEvent, RouteEvent, NeighEvent, RuleEvent, Resync]


def _neigh_key(n: "NeighMessage") -> tuple:
    return (n.family, n.index, n.dst, n.flags & _NTF_PROXY)


def _neigh_state(n: "NeighMessage") -> tuple:
    return (n.state, n.lladdr, n.flags)


def _rule_key(r: "RuleMessage") -> "RuleMessage":
    return replace(r, unknown=())


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
        self.neighbours: dict[tuple, "NeighMessage"] = {}
        self.rules: dict["RuleMessage", "RuleMessage"] = {}

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
        return self._apply_objects(msg_type, obj)

    def _apply_objects(self, msg_type: int, obj) -> list[Event]:
        """Neighbours and rules (RTM_NEWNEIGH/DELNEIGH, RTM_NEWRULE/DELRULE)."""
        if msg_type == RTM_NEWNEIGH:
            key = _neigh_key(obj)
            old = self.neighbours.get(key)
            self.neighbours[key] = obj
            if old is None:
                return [NeighEvent(ADDED, obj)]
            return [NeighEvent(CHANGED, obj)] if _neigh_state(old) != _neigh_state(obj) else []
        if msg_type == RTM_DELNEIGH:
            self.neighbours.pop(_neigh_key(obj), None)
            return [NeighEvent(REMOVED, obj)]
        if msg_type == RTM_NEWRULE:
            self.rules[_rule_key(obj)] = obj
            return [RuleEvent(ADDED, obj)]
        if msg_type == RTM_DELRULE:
            self.rules.pop(_rule_key(obj), None)
            return [RuleEvent(REMOVED, obj)]
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
        neighbours: Iterable["NeighMessage"] = (),
        rules: Iterable["RuleMessage"] = (),
    ) -> list[Event]:
        """Replace the known state by full dumps; return a :class:`Resync` event
        followed by the events that turn the old state into the new one."""
        links, addresses, routes = list(links), list(addresses), list(routes)
        neighbours, rules = list(neighbours), list(rules)
        events: list[Event] = [Resync(reason, len(links), len(addresses), len(routes), len(neighbours), len(rules))]
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
        events.extend(self._resync_objects(neighbours, rules))
        return events

    def _resync_objects(self, neighbours: list, rules: list) -> list[Event]:
        events: list[Event] = []
        new_neigh = {_neigh_key(n): n for n in neighbours}
        events.extend(NeighEvent(REMOVED, n) for k, n in self.neighbours.items() if k not in new_neigh)
        for k, n in new_neigh.items():
            old = self.neighbours.get(k)
            if old is None:
                events.append(NeighEvent(ADDED, n))
            elif _neigh_state(old) != _neigh_state(n):
                events.append(NeighEvent(CHANGED, n))
        self.neighbours = new_neigh
        new_rules = {_rule_key(r): r for r in rules}
        events.extend(RuleEvent(REMOVED, r) for k, r in self.rules.items() if k not in new_rules)
        events.extend(RuleEvent(ADDED, r) for k, r in new_rules.items() if k not in self.rules)
        self.rules = new_rules
        return events
