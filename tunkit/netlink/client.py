"""Rtnl: links, addresses, routes and monitoring over one netlink socket; does I/O.

Everything happens in the network namespace of the thread that created the
:class:`Rtnl` (its socket stays there).  Links are named by name or index
everywhere.  Kernel refusals raise :class:`tunkit.errors.NetlinkError`
(an ``OSError``) whose text names the operation, the object and the
kernel's extended-ack message::

    with Rtnl() as rt:
        rt.add_veth("tk0", "tk1")
        rt.set_link("tk0", up=True, mtu=1400)
        rt.add_address("tk0", "192.0.2.1/24")
        rt.add_route("198.51.100.0/24", dev="tk0", metric=10, mtu=1300)
        rt.add_route("198.51.100.0/24", dev="tk0", metric=10)
        # NetlinkError: route add 198.51.100.0/24 dev tk0 metric 10: File exists

Bulk helpers (:meth:`Rtnl.add_routes`, :meth:`Rtnl.delete_routes`) pipeline
requests: many per datagram, acks collected in bulk, failures reported per
route.
"""

from __future__ import annotations

import errno
import ipaddress
import select
from dataclasses import replace
from typing import Iterable, Iterator, Sequence, Union

from tunkit._uapi import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    RT_TABLE_MAIN,
    RTM,
    RTM_F_FIB_MATCH,
    RTM_F_LOOKUP_TABLE,
    RTN,
    RTPROT_BOOT,
    IfFlag,
    In6AddrGenMode,
    RtnhFlag,
    RtnlGroup,
    RtScope,
)
from tunkit.errors import NetlinkError
from tunkit.netlink.defaults import route_defaults
from tunkit.netlink.events import Event, Monitor
from tunkit.netlink.fields import construct
from tunkit.netlink.objects import LinkKindsMixin, ObjectsMixin  # rules, neighbours, nexthops; link kinds
from tunkit.netlink.rtnl import (
    VERB_FLAGS,
    AddressMessage,
    LinkInfo,
    LinkMessage,
    NextHop,
    RouteMessage,
    RouteMetrics,
    VethInfo,
    decode_message,
)
from tunkit.netlink.socket import Closing, NetlinkSocket

__all__ = ["MONITOR_GROUPS", "Rtnl", "RtnlMonitor"]

LinkRef = Union[str, int]
AddressLike = Union[str, ipaddress.IPv4Interface, ipaddress.IPv6Interface]

# monitor object name -> rtnetlink multicast groups
MONITOR_GROUPS: dict[str, tuple[int, ...]] = {
    "link": (RtnlGroup.LINK,),
    "addr": (RtnlGroup.IPV4_IFADDR, RtnlGroup.IPV6_IFADDR),
    "route": (RtnlGroup.IPV4_ROUTE, RtnlGroup.IPV6_ROUTE),
    "neigh": (RtnlGroup.NEIGH,),
    "rule": (RtnlGroup.IPV4_RULE, 19),  # 19: RTNLGRP_IPV6_RULE (linux/rtnetlink.h)
}

_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)
_ONLINK = int(RtnhFlag.ONLINK)

# IPv6 address-generation modes by iproute2's names (ip link set ... addrgenmode NAME), parsed and printed
ADDR_GEN_MODES = {
    "eui64": In6AddrGenMode.EUI64,
    "none": In6AddrGenMode.NONE,
    "stable_secret": In6AddrGenMode.STABLE_PRIVACY,
    "random": In6AddrGenMode.RANDOM,
}


def _interface(address: AddressLike):
    if isinstance(address, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return address
    return ipaddress.ip_interface(address)


def _ip(address):
    if address is None or isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    return ipaddress.ip_address(address)


def _network(dst, family: int | None):
    """A destination: None/"default" (the default route), text or a network."""
    if dst is None or (isinstance(dst, str) and dst in ("default", "all", "any")):
        return None
    if isinstance(dst, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return dst
    if isinstance(dst, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_network(dst)
    return ipaddress.ip_network(dst, strict=True)


class Rtnl(ObjectsMixin, LinkKindsMixin, Closing):
    """An rtnetlink client (see the module docstring).  Use as a context manager."""

    def __init__(self, sock: NetlinkSocket | None = None) -> None:
        self.sock = sock if sock is not None else NetlinkSocket()
        self._index_by_name: dict[str, int] = {}
        self._name_by_index: dict[int, str] = {}

    def close(self) -> None:
        self.sock.close()

    # ------------------------------------------------------------------ links
    def _remember(self, link: LinkMessage) -> LinkMessage:
        if link.ifname is not None and link.index:
            self._index_by_name[link.ifname] = link.index
            self._name_by_index[link.index] = link.ifname
        return link

    def links(self) -> list[LinkMessage]:
        """All links in this namespace, with stats, MTU, flags, kind, txqlen and MAC."""
        links = self.sock.dump(RTM.GETLINK, LinkMessage().encode(), decode_message, op="link show")
        self._index_by_name.clear()
        self._name_by_index.clear()
        return [self._remember(link) for link in links]

    def link(self, link: LinkRef) -> LinkMessage:
        """One link by name or index (``NetlinkError`` ENODEV if there is none)."""
        if isinstance(link, int):
            req = LinkMessage(index=link)
        else:
            req = LinkMessage(ifname=link)
        replies = self.sock.request(RTM.GETLINK, VERB_FLAGS["get"], req.encode(), op="link show", obj=str(link))
        for m in replies:
            if m.type == RTM.NEWLINK:
                return self._remember(LinkMessage.decode(m.payload))
        raise NetlinkError(errno.ENODEV, op="link show", obj=str(link))

    def index(self, link: LinkRef) -> int:
        """The index of a link given by name or index (names are cached)."""
        if isinstance(link, int):
            return link
        idx = self._index_by_name.get(link)
        if idx is None:
            idx = self.link(link).index
        return idx

    def name(self, index: int) -> str:
        """The name of link ``index`` (cached; ``if<N>`` if it has gone)."""
        name = self._name_by_index.get(index)
        if name is None:
            try:
                name = self.link(index).ifname or f"if{index}"
            except NetlinkError:  # the link is gone: a name is only wanted for messages
                name = f"if{index}"
        return name

    def add_link(self, msg: LinkMessage, *, obj: str | None = None) -> None:
        """Create a link from a full :class:`LinkMessage` (RTM_NEWLINK, create+excl)."""
        self.sock.request(RTM.NEWLINK, VERB_FLAGS["add"], msg.encode(), op="link add", obj=obj or msg.ifname or "")

    def add_veth(self, name: str, peer: str, *, mtu: int | None = None, peer_netns=None) -> None:
        """Create a veth pair ``name`` <-> ``peer`` (the peer optionally in another namespace)."""
        peer_msg = LinkMessage(ifname=peer, mtu=mtu, net_ns_fd=_netns_fd(peer_netns))
        msg = LinkMessage(ifname=name, mtu=mtu, linkinfo=LinkInfo(kind="veth", data=VethInfo(peer=peer_msg)))
        self.add_link(msg, obj=f"{name} type veth peer {peer}")

    def add_dummy(self, name: str, *, mtu: int | None = None) -> None:
        """Create a dummy link (EOPNOTSUPP if the kernel was built without it)."""
        self.add_link(LinkMessage(ifname=name, mtu=mtu, linkinfo=LinkInfo(kind="dummy")), obj=f"{name} type dummy")

    def set_link(
        self,
        link: LinkRef,
        *,
        up: bool | None = None,
        mtu: int | None = None,
        txqlen: int | None = None,
        name: str | None = None,
        address: bytes | str | None = None,
        addr_gen_mode: int | str | None = None,
        netns=None,
    ) -> None:
        """Change a link in one request: up/down, MTU, txqueuelen, name, MAC,
        IPv6 address-generation mode (``"none"``, ``"eui64"``, ...) or namespace
        (a NetNS, an object with ``fileno()`` or an fd)."""
        idx = self.index(link)
        if isinstance(address, str):
            address = bytes.fromhex(address.replace(":", ""))
        if isinstance(addr_gen_mode, str):
            try:
                addr_gen_mode = ADDR_GEN_MODES[addr_gen_mode]
            except KeyError:
                raise ValueError(f"addr_gen_mode {addr_gen_mode!r}: want one of {', '.join(ADDR_GEN_MODES)}") from None
        msg = LinkMessage(
            index=idx,
            flags=IfFlag.UP if up else 0,
            change=IfFlag.UP if up is not None else 0,
            mtu=mtu,
            txqlen=txqlen,
            ifname=name,
            address=address,
            addr_gen_mode=addr_gen_mode,
            net_ns_fd=_netns_fd(netns),
        )
        self.sock.request(RTM.NEWLINK, VERB_FLAGS["set"], msg.encode(), op="link set", obj=self._link_obj(link, idx))
        if name is not None or netns is not None:
            self._forget(idx)

    def delete_link(self, link: LinkRef) -> None:
        idx = self.index(link)
        self.sock.request(RTM.DELLINK, VERB_FLAGS["delete"], LinkMessage(index=idx).encode(), op="link del", obj=self._link_obj(link, idx))
        self._forget(idx)

    def _forget(self, idx: int) -> None:
        old = self._name_by_index.pop(idx, None)
        if old is not None:
            self._index_by_name.pop(old, None)

    def _link_obj(self, link: LinkRef, idx: int) -> str:
        return link if isinstance(link, str) else self.name(idx)

    # -------------------------------------------------------------- addresses
    def addresses(self, link: LinkRef | None = None, family: int = AF_UNSPEC) -> list[AddressMessage]:
        """Addresses on one link (filtered by the kernel) or on all links."""
        idx = self.index(link) if link is not None else 0
        req = AddressMessage(family=family, index=idx).encode()
        return self.sock.dump(RTM.GETADDR, req, decode_message, op="addr show", obj=str(link or ""))

    def _address_message(self, link: LinkRef, address: AddressLike, *, peer=None, broadcast=None, label=None,
                         flags: int = 0, scope: int | None = None, metric: int | None = None,
                         valid_lft: int | None = None, preferred_lft: int | None = None) -> AddressMessage:
        iface = _interface(address)
        idx = self.index(link)
        cacheinfo = None
        if valid_lft is not None or preferred_lft is not None:
            from tunkit.netlink.rtnl import AddrCacheInfo

            valid = 0xFFFFFFFF if valid_lft is None else valid_lft
            cacheinfo = AddrCacheInfo(preferred=valid if preferred_lft is None else preferred_lft, valid=valid)
        if scope is None:
            scope = RtScope.HOST if iface.ip.is_loopback else RtScope.UNIVERSE
        return AddressMessage(
            family=AF_INET6 if iface.version == 6 else AF_INET,
            prefixlen=iface.network.prefixlen,
            flags=flags & 0xFF,
            scope=scope,
            index=idx,
            local=iface.ip,
            address=_ip(peer) if peer is not None else iface.ip,
            broadcast=_ip(broadcast),
            label=label,
            extended_flags=flags if flags > 0xFF else None,
            rt_priority=metric,
            cacheinfo=cacheinfo,
        )

    def add_address(self, link: LinkRef, address: AddressLike, **kw) -> None:
        """Add ``address`` (``"192.0.2.1/24"``) to a link; ``EEXIST`` if present.

        Keywords: ``peer``, ``broadcast``, ``label``, ``flags`` (IfaFlag, e.g.
        NODAD), ``scope``, ``metric``, ``valid_lft``, ``preferred_lft``.
        """
        self._address("add", link, address, kw)

    def replace_address(self, link: LinkRef, address: AddressLike, **kw) -> None:
        """Add ``address``, or update it in place if the link already has it."""
        self._address("replace", link, address, kw)

    def delete_address(self, link: LinkRef, address: AddressLike) -> None:
        iface = _interface(address)
        msg = AddressMessage(
            family=AF_INET6 if iface.version == 6 else AF_INET,
            prefixlen=iface.network.prefixlen,
            index=self.index(link),
            local=iface.ip,
        )
        self.sock.request(RTM.DELADDR, VERB_FLAGS["delete"], msg.encode(), op="addr del", obj=f"{iface} dev {self._link_obj(link, msg.index)}")

    def _address(self, verb: str, link: LinkRef, address: AddressLike, kw: dict) -> None:
        msg = self._address_message(link, address, **kw)
        obj = f"{_interface(address)} dev {self._link_obj(link, msg.index)}"
        self.sock.request(RTM.NEWADDR, VERB_FLAGS[verb], msg.encode(), op=f"addr {verb}", obj=obj)

    def add_addresses(self, link: LinkRef, addresses: Iterable[AddressLike], verb: str = "add") -> list[NetlinkError]:
        """Pipelined :meth:`add_address` for many addresses; returns the failures."""
        msgs = [self._address_message(link, a) for a in addresses]
        reqs = [(int(RTM.NEWADDR), int(VERB_FLAGS[verb]), m.encode()) for m in msgs]
        return [
            NetlinkSocket.error(ack, f"addr {verb}", f"{msgs[i].interface} dev {self._link_obj(link, msgs[i].index)}")
            for i, ack in self.sock.pipeline(reqs)
        ]

    def reconcile_addresses(self, link: LinkRef, wanted: Iterable[AddressLike]) -> tuple[list, list]:
        """Make ``link`` carry exactly ``wanted`` (nebula's behaviour).

        Every wanted address is *replaced* (added, or updated in place), then
        every other address on the link, of any family, is deleted.  Addresses
        are equal when address and prefix length match.  Returns
        ``(replaced, removed)`` as lists of interfaces.
        """
        want = [_interface(a) for a in wanted]
        for iface in want:
            self.replace_address(link, iface)
        keep = set(want)
        removed = []
        for a in self.addresses(link):
            iface = a.interface
            if iface is not None and iface not in keep:
                try:
                    self.delete_address(link, iface)
                except NetlinkError as e:  # already gone (e.g. removed with its primary): the goal holds
                    if e.errno != errno.EADDRNOTAVAIL:
                        raise
                removed.append(iface)
        return want, removed

    # ------------------------------------------------------------------ routes
    def routes(
        self,
        *,
        family: int = AF_UNSPEC,
        table: int | None = None,
        link: LinkRef | None = None,
        protocol: int = 0,
        type: int = 0,
    ) -> list[RouteMessage]:
        """Routes of every table, or of ``table``, optionally only via ``link``
        (filtered by the kernel: NETLINK_GET_STRICT_CHK)."""
        req = RouteMessage(family=family, table=table, oif=self.index(link) if link is not None else None,
                           protocol=protocol, type=type)
        return self.sock.dump(RTM.GETROUTE, req.encode(), _decode_route, op="route show")

    def route_message(
        self,
        dst=None,
        *,
        verb: str = "add",
        family: int | None = None,
        gateway=None,
        via=None,
        dev: LinkRef | None = None,
        prefsrc=None,
        src=None,
        metric: int | None = None,
        table: int | None = None,
        scope: int | None = None,
        protocol: int | None = None,
        type: int | None = None,
        tos: int = 0,
        mtu: int | None = None,
        advmss: int | None = None,
        lock: Sequence[str] = (),
        metrics: RouteMetrics | None = None,
        nexthops: Sequence[NextHop | dict] | None = None,
        onlink: bool = False,
        pref: int | None = None,
        expires: int | None = None,
        nhid: int | None = None,
        realm: int | None = None,
    ) -> RouteMessage:
        """Build a :class:`RouteMessage` from iproute2-style arguments with ip's defaults.

        Table, protocol, scope and type default as with ``ip route VERB``
        (:func:`tunkit.netlink.defaults.route_defaults`): table main (local
        for local/broadcast/nat/anycast), proto boot, type unicast, scope link
        without a gateway, else global; delete leaves them unset (any).  ``metric`` is RTA_PRIORITY;
        ``mtu``/``advmss``/``lock`` go into RTA_METRICS; ``nexthops`` are
        :class:`NextHop` objects or dicts ``{"gateway", "dev", "weight"}``.
        """
        # (written for speed: bulk adds build ten thousand of these)
        net = dst if isinstance(dst, _NETWORKS) else _network(dst, family)
        gw = gateway if gateway is None or isinstance(gateway, _ADDRESSES) else ipaddress.ip_address(gateway)
        if via is not None:
            via = _ip(via)
        if prefsrc is not None:
            prefsrc = _ip(prefsrc)
        hops = tuple(self._nexthop(h) for h in nexthops) if nexthops else None
        if family is None:
            first = net if net is not None else gw if gw is not None else prefsrc if prefsrc is not None else (
                hops[0].gateway if hops else None)
            family = AF_INET6 if first is not None and first.version == 6 else AF_INET
        v6 = family == AF_INET6
        if gw is not None and (gw.version == 6) != v6:  # a gateway of the other family: RTA_VIA (RFC 5549)
            gw, via = None, gw
        if hops and any(h.gateway is not None and (h.gateway.version == 6) != v6 for h in hops):
            hops = tuple(replace(h, gateway=None, via=h.gateway) if h.gateway is not None and (h.gateway.version == 6) != v6
                         else h for h in hops)
        if metrics is not None:
            if mtu is not None or advmss is not None or lock:
                metrics = replace(metrics, mtu=metrics.mtu if mtu is None else mtu,
                                  advmss=metrics.advmss if advmss is None else advmss,
                                  lock=((metrics.lock or 0) | RouteMetrics.lock_mask(*lock)) if lock else metrics.lock)
        elif mtu is not None or advmss is not None or lock:
            mv = {"mtu": mtu, "advmss": advmss, "lock": RouteMetrics.lock_mask(*lock) if lock else None}
            metrics = construct(RouteMetrics, {k: v for k, v in mv.items() if v is not None})
        table, protocol, scope, rtype = route_defaults(verb, family, table, protocol, scope, type,
                                                       gw is not None or via is not None or hops is not None
                                                       or nhid is not None)
        # Every field is checked above, so the frozen __init__ (about 3 us a route) is skipped:
        # construct() fills the fields that are set, class defaults (None) give the rest.
        d = {"family": family, "dst": net, "tos": tos, "table": table, "protocol": protocol, "scope": scope,
             "type": rtype, "flags": _ONLINK if onlink else 0}
        if dev is not None:
            d["oif"] = self._index_by_name.get(dev) or self.index(dev)
        if metric is not None:
            d["priority"] = metric
        if metrics is not None:
            d["metrics"] = metrics
        if gw is not None:
            d["gateway"] = gw
        if src is not None or via is not None or prefsrc is not None or hops or pref is not None or expires is not None \
                or nhid is not None or realm is not None:
            rare = {"src": _network(src, family) if src is not None else None, "via": via, "prefsrc": prefsrc,
                    "multipath": hops, "pref": pref, "expires": expires, "nhid": nhid, "realm": realm}
            d.update((k, v) for k, v in rare.items() if v is not None)
        return construct(RouteMessage, d)

    def _nexthop(self, h: NextHop | dict) -> NextHop:
        if isinstance(h, NextHop):
            return h
        h = dict(h)
        dev = h.pop("dev", None)
        onlink = h.pop("onlink", False)
        hop = NextHop(
            gateway=_ip(h.pop("gateway", None)),
            via=_ip(h.pop("via", None)),
            oif=self.index(dev) if dev is not None else h.pop("oif", None),
            weight=h.pop("weight", 1),
            flags=h.pop("flags", 0) | (RtnhFlag.ONLINK if onlink else 0),
        )
        if h:
            raise ValueError(f"nexthop: unknown keys {sorted(h)}")
        return hop

    def describe_route(self, r: RouteMessage) -> str:
        """``198.51.100.0/24 via 192.0.2.2 dev tk0 table 1000 metric 5``: a route as ip would name it."""
        parts = [str(r.dst) if r.dst is not None else "default"]
        if r.gateway is not None:
            parts += ["via", str(r.gateway)]
        if r.via is not None:
            parts += ["via", str(r.via)]
        if r.oif:
            parts += ["dev", self.name(r.oif)]
        if r.table is not None and r.table != RT_TABLE_MAIN:
            parts += ["table", str(r.table)]
        if r.priority is not None:
            parts += ["metric", str(r.priority)]
        for h in r.multipath or ():
            parts += ["nexthop", "via", str(h.gateway or h.via)] + (["dev", self.name(h.oif)] if h.oif else [])
            parts += ["weight", str(h.weight)]
        return " ".join(parts)

    def _route(self, verb: str, route, kw: dict) -> None:
        msg = route if isinstance(route, RouteMessage) else self.route_message(route, verb=verb, **kw)
        msg_type = RTM.DELROUTE if verb == "delete" else RTM.NEWROUTE
        op = "route del" if verb == "delete" else f"route {verb}"
        try:
            self.sock.request(msg_type, VERB_FLAGS[verb], msg.encode(), op=op)
        except NetlinkError as e:
            e.obj = self.describe_route(msg)  # described only on failure: it may need a lookup
            raise

    def add_route(self, dst=None, **kw) -> None:
        """Add a route: a :class:`RouteMessage`, or ``dst`` plus :meth:`route_message` keywords."""
        self._route("add", dst, kw)

    def replace_route(self, dst=None, **kw) -> None:
        self._route("replace", dst, kw)

    def append_route(self, dst=None, **kw) -> None:
        """Add a route even if one with the same prefix and metric exists (another nexthop)."""
        self._route("append", dst, kw)

    def delete_route(self, dst=None, **kw) -> None:
        self._route("delete", dst, kw)

    def get_route(self, dst, *, src=None, dev: LinkRef | None = None, iif: LinkRef | None = None,
                  mark: int | None = None, fibmatch: bool = False, table: int | None = None) -> RouteMessage:
        """Ask the kernel which route it would use for ``dst`` (``ip route get``); the reply's
        ``table`` is the table the lookup found it in (RTM_F_LOOKUP_TABLE), or ``table`` alone is searched."""
        addr = _ip(dst)
        family = AF_INET6 if addr.version == 6 else AF_INET
        req = RouteMessage(
            family=family,
            dst=ipaddress.ip_network(addr),
            src=ipaddress.ip_network(_ip(src)) if src is not None else None,
            oif=self.index(dev) if dev is not None else None,
            iif=self.index(iif) if iif is not None else None,
            mark=mark,
            table=table,
            flags=(RTM_F_FIB_MATCH if fibmatch else 0) | RTM_F_LOOKUP_TABLE,
        )
        for m in self.sock.request(RTM.GETROUTE, VERB_FLAGS["get"], req.encode(), op="route get", obj=str(addr)):
            if m.type == RTM.NEWROUTE:
                return RouteMessage.decode(m.payload)
        raise NetlinkError(errno.ENETUNREACH, op="route get", obj=str(addr))

    def add_routes(self, routes: Iterable[RouteMessage], verb: str = "add") -> list[NetlinkError]:
        """Pipelined add/replace/append/delete of many routes.

        Returns one :class:`NetlinkError` per failed route (its ``obj`` names
        the route), in order; an empty list means every route succeeded.
        """
        msg_type = int(RTM.DELROUTE if verb == "delete" else RTM.NEWROUTE)
        flags = int(VERB_FLAGS[verb])  # a plain int: IntFlag operators run in Python, per request
        routes = routes if isinstance(routes, (list, tuple)) else list(routes)
        failed = self.sock.pipeline([(msg_type, flags, r.encode()) for r in routes])
        op = "route del" if verb == "delete" else f"route {verb}"
        return [NetlinkSocket.error(ack, op, self.describe_route(routes[i])) for i, ack in failed]

    def delete_routes(self, routes: Iterable[RouteMessage]) -> list[NetlinkError]:
        """Pipelined delete of many routes; returns the failures."""
        return self.add_routes(routes, verb="delete")

    # ----------------------------------------------------------------- monitor
    def monitor(self, objects: Iterable[str] = ("link", "addr", "route"), *, rcvbuf: int | None = None,
                initial: bool = True) -> "RtnlMonitor":
        """Subscribe to link/addr/route/neigh/rule notifications (see :class:`RtnlMonitor`)."""
        return RtnlMonitor(self, objects, rcvbuf=rcvbuf, initial=initial)


def _decode_route(msg_type: int, payload) -> RouteMessage | None:
    return RouteMessage.decode(payload) if msg_type == RTM.NEWROUTE else None


def _netns_fd(netns) -> int | None:
    if netns is None or isinstance(netns, int):
        return netns
    if hasattr(netns, "fd"):
        return netns.fd
    return netns.fileno()


class RtnlMonitor(Closing):
    """Notifications as typed events, surviving overflow.

    Joins the groups of ``objects`` (``link``, ``addr``, ``route``, ``neigh``, ``rule``) on its own
    socket, then (``initial=True``) reads the current state so that later
    link events can say what changed.  :meth:`events` waits up to
    ``timeout`` seconds and returns the events of every datagram queued.
    If the kernel reports ``ENOBUFS`` (notifications were dropped), the
    state is re-dumped and the events start with a
    :class:`tunkit.netlink.events.Resync`.  ``fileno()`` lets a selector wait.
    """

    def __init__(self, rtnl: Rtnl, objects: Iterable[str], *, rcvbuf: int | None = None, initial: bool = True) -> None:
        self.objects = tuple(objects)
        groups = []
        for o in self.objects:
            if o not in MONITOR_GROUPS:
                raise ValueError(f"monitor: unknown object {o!r}; want one of {', '.join(MONITOR_GROUPS)}")
            groups += MONITOR_GROUPS[o]
        self.rtnl = rtnl
        self.monitor = Monitor()
        self.sock = NetlinkSocket(groups=groups, rcvbuf=rcvbuf)
        self.sock.setblocking(False)
        self.resyncs = 0
        if initial:
            self._resync("initial")

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def _resync(self, reason: str) -> list[Event]:
        links = self.rtnl.links() if "link" in self.objects else []
        addrs = self.rtnl.addresses() if "addr" in self.objects else []
        routes = self.rtnl.routes() if "route" in self.objects else []
        neighbours = self.rtnl.neighbours() if "neigh" in self.objects else []
        rules = self.rtnl.rules() if "rule" in self.objects else []
        return self.monitor.resync(links, addrs, routes, reason, neighbours, rules)

    def events(self, timeout: float | None = None) -> list[Event]:
        """Wait up to ``timeout`` seconds (None: forever) for notifications; return their events."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        events: list[Event] = []
        while True:
            try:
                data = self.sock.recv()
            except BlockingIOError:  # queue drained
                return events
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                # The kernel dropped notifications.  What is still queued predates the
                # loss, so drop it too, then re-read the whole state.
                self._drain()
                self.resyncs += 1
                events.extend(self._resync("ENOBUFS"))
                continue
            events.extend(self.monitor.feed(data))

    def _drain(self) -> None:
        while True:
            try:
                self.sock.recv()
            except BlockingIOError:  # nothing left
                return
            except OSError as e:  # a second overflow while draining: keep draining
                if e.errno != errno.ENOBUFS:
                    raise

    def __iter__(self) -> Iterator[Event]:
        while True:
            yield from self.events(None)

