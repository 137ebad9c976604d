"""Monitor (sans-IO): notification datagrams in, typed events out; resync after overflow."""

from __future__ import annotations

from support_netlink import ip4, net
from tunkit._uapi import AF_INET, RTM, IfFlag
from tunkit.netlink.events import AddressEvent, LinkEvent, Monitor, Resync, RouteEvent
from tunkit.netlink.message import encode_message
from tunkit.netlink.rtnl import AddressMessage, LinkMessage, RouteMessage

UP_RUNNING = IfFlag.UP | IfFlag.RUNNING | IfFlag.LOWER_UP


def dgram(*msgs) -> bytes:
    """One datagram of notifications: (RTM_*, message) pairs, as the kernel multicasts them."""
    return b"".join(encode_message(t, 0, 0, 0, m.encode()) for t, m in msgs)


def link(flags=0, mtu=1500, name="tk0"):
    return LinkMessage(index=3, flags=flags, ifname=name, mtu=mtu)


ROUTE = RouteMessage(family=AF_INET, dst=net("198.51.100.0/24"), table=254, protocol=3, type=1, oif=3)
ADDR = AddressMessage(family=AF_INET, prefixlen=24, index=3, local=ip4("192.0.2.1"), address=ip4("192.0.2.1"))


def test_link_lifecycle_up_mtu_down_removed():
    mon = Monitor()
    (ev,) = mon.feed(dgram((RTM.NEWLINK, link())))
    assert (ev.action, ev.index, ev.ifname, ev.up, ev.running, ev.mtu) == ("added", 3, "tk0", False, False, 1500)
    (ev,) = mon.feed(dgram((RTM.NEWLINK, link(UP_RUNNING))))
    assert ev.action == "changed" and ev.up and ev.running and ev.changed == {"up", "running", "lower_up"}
    (ev,) = mon.feed(dgram((RTM.NEWLINK, link(UP_RUNNING, mtu=1400))))
    assert ev.changed == {"mtu"} and ev.mtu == 1400
    assert mon.feed(dgram((RTM.NEWLINK, link(UP_RUNNING, mtu=1400)))) == []  # nothing tracked changed
    (ev,) = mon.feed(dgram((RTM.NEWLINK, link(IfFlag.UP, mtu=1400))))
    assert ev.changed == {"running", "lower_up"} and ev.up and not ev.running
    (ev,) = mon.feed(dgram((RTM.DELLINK, link(0, mtu=1400))))
    assert ev.action == "removed" and 3 not in mon.links


def test_address_and_route_events_in_one_datagram():
    mon = Monitor()
    events = mon.feed(dgram((RTM.NEWADDR, ADDR), (RTM.NEWROUTE, ROUTE), (RTM.DELROUTE, ROUTE), (RTM.DELADDR, ADDR)))
    assert [(type(e).__name__, e.action) for e in events] == [
        ("AddressEvent", "added"), ("RouteEvent", "added"), ("RouteEvent", "removed"), ("AddressEvent", "removed"),
    ]
    assert str(events[0].address) == "192.0.2.1/24" and events[1].route == ROUTE
    assert mon.addresses == {} and mon.routes == {}


def test_unmodelled_message_types_are_ignored():
    assert Monitor().feed(encode_message(36, 0, 0, 0, b"\0" * 20)) == []  # RTM_NEWQDISC


def test_resync_reports_what_changed_while_notifications_were_lost():
    mon = Monitor()
    old_route = RouteMessage(family=AF_INET, dst=net("198.51.101.0/24"), table=254, protocol=3, type=1, oif=3)
    mon.feed(dgram((RTM.NEWLINK, link(UP_RUNNING)), (RTM.NEWADDR, ADDR), (RTM.NEWROUTE, old_route)))
    other = LinkMessage(index=4, ifname="tk1", mtu=1500)
    events = mon.resync([link(UP_RUNNING, mtu=1280), other], [ADDR], [ROUTE], reason="ENOBUFS")
    assert events[0] == Resync("ENOBUFS", links=2, addresses=1, routes=1)
    kinds = {(type(e).__name__, e.action, getattr(e, "index", None)) for e in events[1:]}
    assert kinds == {("LinkEvent", "changed", 3), ("LinkEvent", "added", 4), ("RouteEvent", "removed", None),
                     ("RouteEvent", "added", None)}
    changed = next(e for e in events if isinstance(e, LinkEvent) and e.action == "changed")
    assert changed.changed == {"mtu"}
    removed = next(e for e in events if isinstance(e, RouteEvent) and e.action == "removed")
    assert removed.route == old_route
    assert not any(isinstance(e, AddressEvent) for e in events)  # the address survived
    assert set(mon.links) == {3, 4} and list(mon.routes.values()) == [ROUTE]


def test_package_import_is_lazy_and_names_resolve():
    import subprocess
    import sys

    code = "import sys, tunkit.netlink as n; print(sorted(m for m in sys.modules if m.startswith('tunkit.netlink.')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    import tunkit.netlink as n

    assert n.RouteMessage is RouteMessage and n.Monitor is Monitor


def test_neighbour_and_rule_events_and_their_resync():
    from tunkit.netlink.events import NeighEvent, RuleEvent
    from tunkit.netlink.neigh import NeighMessage
    from tunkit.netlink.rule import RuleMessage

    n = NeighMessage(family=AF_INET, index=3, state=0x02, dst=ip4("192.0.2.2"), lladdr=b"\x02\0\0\0\0\x02")
    stale = NeighMessage(family=AF_INET, index=3, state=0x04, dst=ip4("192.0.2.2"), lladdr=b"\x02\0\0\0\0\x02")
    rule = RuleMessage(family=AF_INET, src=net("192.0.2.0/24"), table=1000, action=1, priority=100)
    mon = Monitor()
    (ev,) = mon.feed(dgram((28, n)))
    assert isinstance(ev, NeighEvent) and ev.action == "added" and ev.neigh == n
    (ev,) = mon.feed(dgram((28, stale)))
    assert ev.action == "changed" and ev.neigh.state == 0x04
    assert mon.feed(dgram((28, stale))) == []  # the same state again: nothing changed
    (ev,) = mon.feed(dgram((32, rule)))
    assert isinstance(ev, RuleEvent) and ev.action == "added" and ev.rule == rule
    (ev,) = mon.feed(dgram((33, rule)))
    assert ev.action == "removed" and not mon.rules
    # notifications lost: the re-dump finds the neighbour gone and a new rule
    other = RuleMessage(family=AF_INET, table=7, action=1, priority=7)
    events = mon.resync([], [], [], "ENOBUFS", neighbours=[], rules=[other])
    assert events[0] == Resync("ENOBUFS", 0, 0, 0, 0, 1)
    assert [(type(e).__name__, e.action) for e in events[1:]] == [("NeighEvent", "removed"), ("RuleEvent", "added")]
    assert mon.rules and not mon.neighbours
