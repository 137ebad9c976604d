"""Rtnl: links, addresses, routes and monitoring over one netlink socket; does I/O.

Everything happens in the network namespace of the thread that created the
:class:`Rtnl` (its socket stays there), or in ``Rtnl(netns=...)``'s (a name
under /run/netns, a path, an fd or a :class:`tunkit.netns.NetNS`).  Links are named by name or index
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

Link names are never cached (a name means the device carrying it at the
time of the request), a missing one raises :class:`LinkNotFound` naming the
operation, and one :class:`Rtnl` may be shared by several threads; see
:class:`Rtnl`.

Why one module of over 600 lines: :class:`Rtnl` is the one synchronous client every other
interface is built on (the CLI, ``AsyncRtnl`` replays its methods, ``objects`` adds its mixins);
its link, address and route calls share the name lookup, the per-verb flags and the request
helpers, and splitting the class by object kind would scatter those across files.
"""

from __future__ import annotations

import errno
import ipaddress
import select
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence, TypeVar, Union

from tunkit._uapi import (
    AF_INET,
    AF_INET6,
    AF_UNSPEC,
    RT_TABLE_MAIN,
    RTM,
    RTM_F_FIB_MATCH,
    RTM_F_LOOKUP_TABLE,
    RTN,
    ROUTER_PREF_NAMES,
    RT_SCOPE_NAMES,
    RT_TABLE_NAMES,
    RTEXT_FILTER_SKIP_STATS,
    RTPROT_NAMES,
    IfFlag,
    In6AddrGenMode,
    RtnhFlag,
    RtnlGroup,
    RtScope,
)
from tunkit.errors import NetlinkError
from tunkit.ifname import validate_name
from tunkit.netlink.defaults import route_defaults
from tunkit.netlink.fields import construct
from tunkit.netlink.objects import LinkKindsMixin, ObjectsMixin, _ipv4_prefix  # rules, neighbours, nexthops; link kinds
from tunkit.netlink.record import replace
from tunkit.netlink.rtnl import (
    IFINFOMSG,
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

if TYPE_CHECKING:
    from tunkit.netlink.events import Event  # imported by RtnlMonitor when one is made (start-up cost)

__all__ = ["MONITOR_GROUPS", "LinkNotFound", "Rtnl", "RtnlMonitor"]

T = TypeVar("T")
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


# LinkMessage().encode(), written out: the dump request of `link show`, whose start-up would otherwise
# compile LinkMessage's methods and its 40-field encoder (3 ms) to send 16 zero bytes
# (tests/test_netlink_client_fake.py checks the two are equal).
_LINK_DUMP = IFINFOMSG.pack(0, 0, 0, 0, 0)  # ifinfomsg: family AF_UNSPEC, every field 0, no attributes


def _interface(address: AddressLike):
    if isinstance(address, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
        return address
    return ipaddress.ip_interface(address)


def _ip(address):
    if address is None or isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return address
    return ipaddress.ip_address(address)


def _network(dst, family: int | None):
    """A destination: "default" (the default route), text or a network."""
    if isinstance(dst, str) and dst in ("default", "all", "any"):
        return None
    if isinstance(dst, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return dst
    if isinstance(dst, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return ipaddress.ip_network(dst)
    if isinstance(dst, str):
        net = _ipv4_prefix(dst)
        if net is not None:
            return net
    return ipaddress.ip_network(dst, strict=True)


def _route_metrics(metrics: RouteMetrics | None, mtu, advmss, lock) -> RouteMetrics:
    """RTA_METRICS from ``metrics`` plus route_message()'s mtu/advmss/lock keywords (checked u32s)."""
    if mtu is not None:
        _u32("mtu", mtu)
    if advmss is not None:
        _u32("advmss", advmss)
    if metrics is not None:
        if mtu is None and advmss is None and not lock:
            return metrics
        return replace(metrics, mtu=metrics.mtu if mtu is None else mtu,
                       advmss=metrics.advmss if advmss is None else advmss,
                       lock=((metrics.lock or 0) | RouteMetrics.lock_mask(*lock)) if lock else metrics.lock)
    mv = {"mtu": mtu, "advmss": advmss, "lock": RouteMetrics.lock_mask(*lock) if lock else None}
    return construct(RouteMetrics, {k: v for k, v in mv.items() if v is not None})


def _header_names(type, protocol, scope, table, pref, tos) -> tuple:
    """route_message()'s type/protocol/scope/table/pref as numbers (iproute2's names allowed), tos checked."""
    if type is not None:
        type = _named(type, RTN_NAMES, "type", 0xFF)
    if protocol is not None:
        protocol = _named(protocol, RTPROT_NAMES, "protocol", 0xFF)
    if scope is not None:
        scope = _named(scope, RT_SCOPE_NAMES, "scope", 0xFF)
    if table is not None:
        table = _named(table, RT_TABLE_NAMES, "table", _U32_MAX)
    if pref is not None:
        pref = _named(pref, ROUTER_PREF_NAMES, "pref", 0xFF)
    if tos:
        _named(tos, {}, "tos", 0xFF)
    return type, protocol, scope, table, pref


class LinkNotFound(NetlinkError):
    """A link named in a request does not exist (errno ``ENODEV``):
    ``route add: device "tk9" does not exist``."""

    def __init__(self, op: str, name: str) -> None:
        super().__init__(errno.ENODEV, op=op, obj=name)

    def __str__(self) -> str:
        return f'{self.op}: device "{self.obj}" does not exist'

    def __reduce__(self):
        return (type(self), (self.op, self.obj))


class Rtnl(ObjectsMixin, LinkKindsMixin, Closing):
    """An rtnetlink client (see the module docstring).  Use as a context manager.

    Links given by name are looked up in the kernel for every request that
    needs an index, never remembered: a name always means the device that
    carries it now (if it is deleted and re-created, or its old index goes
    to another device, nothing stale is used).  Where the kernel takes a
    name itself (set, delete) the request carries ``IFLA_IFNAME``; where it
    needs an index and answers ``ENODEV`` (the device went away between
    lookup and request), the name is looked up once more and the request
    retried.  A name that does not exist raises :class:`LinkNotFound`
    naming the operation.  For bulk work (:meth:`route_message` ten
    thousand times) look the index up once and pass it: the index is then
    yours to keep current.

    Thread safety: one ``Rtnl`` may be shared by several threads; each
    request/response exchange holds the socket's lock (see
    :mod:`tunkit.netlink.socket`).  An :class:`RtnlMonitor` belongs to one
    reader thread.
    """

    def __init__(self, sock: NetlinkSocket | None = None, *, netns=None) -> None:
        # netns (a name under /run/netns, a path, an fd or a NetNS): the socket is opened there by a
        # helper thread (tunkit.netns.call_in); this thread never enters it, and monitors follow it.
        self.netns = netns
        self.sock = sock if sock is not None else self._socket()

    def close(self) -> None:
        self.sock.close()

    def _socket(self, **kw) -> NetlinkSocket:
        if self.netns is None:
            return NetlinkSocket(**kw)
        from tunkit.netns import call_in

        return call_in(self.netns, NetlinkSocket, **kw)

    # ------------------------------------------------------------------ links
    def links(self) -> list[LinkMessage]:
        """All links in this namespace, with stats, MTU, flags, kind, txqlen and MAC."""
        return self.sock.dump(RTM.GETLINK, _LINK_DUMP, decode_message, op="link show")

    def link(self, link: LinkRef) -> LinkMessage:
        """One link by name or index (:class:`LinkNotFound` if there is none)."""
        m = self._get_link(link, "link show", 0)
        return LinkMessage.decode(m.payload)

    def _get_link(self, link: LinkRef, op: str, ext_mask: int):
        req = LinkMessage(index=link, ext_mask=ext_mask or None) if isinstance(link, int) else \
            LinkMessage(ifname=_ifname(link), ext_mask=ext_mask or None)
        try:
            replies = self.sock.request(RTM.GETLINK, VERB_FLAGS["get"], req.encode(), op=op, obj=str(link))
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                raise LinkNotFound(op, str(link)) from None
            raise
        for m in replies:
            if m.type == RTM.NEWLINK:
                return m
        raise LinkNotFound(op, str(link))

    def index(self, link: LinkRef, *, op: str = "link show") -> int:
        """The index of a link given by name (asked of the kernel on every call) or index."""
        if isinstance(link, int) and not isinstance(link, bool):
            return link
        m = self._get_link(link, op, RTEXT_FILTER_SKIP_STATS)
        return IFINFOMSG.unpack_from(m.payload, 0)[2]  # ifi_index; the rest is not needed

    def name(self, index: int) -> str:
        """The current name of link ``index`` (``if<N>`` if it has gone; for messages)."""
        try:
            m = self._get_link(index, "link show", RTEXT_FILTER_SKIP_STATS)
            return LinkMessage.decode(m.payload).ifname or f"if{index}"
        except NetlinkError:  # the link is gone: a name is only wanted for messages
            return f"if{index}"

    def _on_link(self, link: LinkRef, op: str, send: Callable[[int], T]) -> T:
        """``send(index)`` for a link by name or index.  A name is looked up now; if the
        kernel answers ENODEV (deleted, maybe re-created, meanwhile) it is looked up
        once more and the request retried with the new index; if it is gone,
        :class:`LinkNotFound`."""
        if isinstance(link, int) and not isinstance(link, bool):
            return send(link)
        idx = self.index(link, op=op)
        try:
            return send(idx)
        except NetlinkError as e:
            if e.errno != errno.ENODEV:
                raise
            again = self.index(link, op=op)  # LinkNotFound if the name is gone
            if again == idx:
                raise
        return send(again)

    def add_link(self, msg: LinkMessage, *, obj: str | None = None) -> None:
        """Create a link from a full :class:`LinkMessage` (RTM_NEWLINK, create+excl)."""
        self.sock.request(RTM.NEWLINK, VERB_FLAGS["add"], msg.encode(), op="link add", obj=obj or msg.ifname or "")

    def add_veth(self, name: str, peer: str, *, mtu: int | None = None, peer_netns=None) -> None:
        """Create a veth pair ``name`` <-> ``peer`` (the peer optionally in another namespace)."""
        peer_msg = LinkMessage(ifname=_ifname(peer), mtu=mtu, net_ns_fd=_netns_fd(peer_netns))
        msg = LinkMessage(ifname=_ifname(name), mtu=mtu, linkinfo=LinkInfo(kind="veth", data=VethInfo(peer=peer_msg)))
        self.add_link(msg, obj=f"{name} type veth peer {peer}")

    def add_dummy(self, name: str, *, mtu: int | None = None) -> None:
        """Create a dummy link (EOPNOTSUPP if the kernel was built without it)."""
        self.add_link(LinkMessage(ifname=_ifname(name), mtu=mtu, linkinfo=LinkInfo(kind="dummy")), obj=f"{name} type dummy")

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
        (a NetNS, an object with ``fileno()`` or an fd).  A link given by name is
        found by the kernel (IFLA_IFNAME) in the same request, unless it is being
        renamed: then its index is looked up first."""
        if isinstance(address, str):
            address = _mac(address)
        if name is not None:
            _ifname(name)
        if isinstance(addr_gen_mode, str):
            try:
                addr_gen_mode = ADDR_GEN_MODES[addr_gen_mode]
            except KeyError:
                raise ValueError(f"addr_gen_mode {addr_gen_mode!r}: want one of {', '.join(ADDR_GEN_MODES)}") from None
        fields = dict(flags=IfFlag.UP if up else 0, change=IfFlag.UP if up is not None else 0, mtu=_u32("mtu", mtu),
                      txqlen=_u32("txqlen", txqlen), address=address, addr_gen_mode=addr_gen_mode,
                      net_ns_fd=_netns_fd(netns))
        obj = str(link)

        def send(idx: int) -> None:
            msg = LinkMessage(index=idx, ifname=name, **fields)
            self.sock.request(RTM.NEWLINK, VERB_FLAGS["set"], msg.encode(), op="link set", obj=obj)

        if name is None and isinstance(link, str):
            self._by_name(RTM.NEWLINK, VERB_FLAGS["set"], LinkMessage(ifname=_ifname(link), **fields), "link set")
        else:
            self._on_link(link, "link set", send)

    def delete_link(self, link: LinkRef) -> None:
        """Delete a link (by name: the kernel finds it in the same request)."""
        if isinstance(link, str):
            self._by_name(RTM.DELLINK, VERB_FLAGS["delete"], LinkMessage(ifname=_ifname(link)), "link del")
        else:
            self.sock.request(RTM.DELLINK, VERB_FLAGS["delete"], LinkMessage(index=link).encode(), op="link del", obj=str(link))

    def _by_name(self, msg_type: int, flags: int, msg: LinkMessage, op: str) -> None:
        """A link request the kernel resolves by IFLA_IFNAME (ifi_index 0)."""
        try:
            self.sock.request(msg_type, flags, msg.encode(), op=op, obj=msg.ifname)
        except NetlinkError as e:
            if e.errno == errno.ENODEV:
                raise LinkNotFound(op, msg.ifname) from None
            raise

    # -------------------------------------------------------------- addresses
    def addresses(self, link: LinkRef | None = None, family: int = AF_UNSPEC) -> list[AddressMessage]:
        """Addresses on one link (filtered by the kernel) or on all links; ``family``
        AF_UNSPEC (all), AF_INET or AF_INET6 (anything else: ``ValueError``)."""
        family = _dump_family(family, "addr show")

        def dump(idx: int) -> list[AddressMessage]:
            req = AddressMessage(family=family, index=idx).encode()
            return self.sock.dump(RTM.GETADDR, req, decode_message, op="addr show", obj=str(link or ""))

        return dump(0) if link is None else self._on_link(link, "addr show", dump)

    def _address_message(self, idx: int, iface, *, peer=None, broadcast=None, label=None,
                         flags: int = 0, scope: int | str | None = None, metric: int | None = None,
                         valid_lft: int | None = None, preferred_lft: int | None = None) -> AddressMessage:
        cacheinfo = None
        if valid_lft is not None or preferred_lft is not None:
            from tunkit.netlink.rtnl import AddrCacheInfo

            valid = 0xFFFFFFFF if valid_lft is None else _u32("valid_lft", valid_lft)
            preferred = valid if preferred_lft is None else _u32("preferred_lft", preferred_lft)
            cacheinfo = AddrCacheInfo(preferred=preferred, valid=valid)
        if scope is None:
            scope = RtScope.HOST if iface.ip.is_loopback else RtScope.UNIVERSE
        return AddressMessage(
            family=AF_INET6 if iface.version == 6 else AF_INET,
            prefixlen=iface.network.prefixlen,
            flags=flags & 0xFF,
            scope=_named(scope, RT_SCOPE_NAMES, "scope", 0xFF),
            index=idx,
            local=iface.ip,
            address=_ip(peer) if peer is not None else iface.ip,
            broadcast=_ip(broadcast),
            label=label,
            extended_flags=flags if flags > 0xFF else None,
            rt_priority=_u32("metric", metric),
            cacheinfo=cacheinfo,
        )

    def add_address(self, link: LinkRef, address: AddressLike, **kw) -> None:
        """Add ``address`` (``"192.0.2.1/24"``) to a link; ``EEXIST`` if present.

        Keywords: ``peer``, ``broadcast``, ``label``, ``flags`` (IfaFlag, e.g.
        NODAD), ``scope`` (a number or iproute2's name), ``metric``,
        ``valid_lft``, ``preferred_lft`` (seconds; 0xFFFFFFFF is forever).
        """
        self._address("add", link, address, kw)

    def replace_address(self, link: LinkRef, address: AddressLike, **kw) -> None:
        """Add ``address``, or update it in place if the link already has it."""
        self._address("replace", link, address, kw)

    def delete_address(self, link: LinkRef, address: AddressLike) -> None:
        iface = _interface(address)

        def send(idx: int) -> None:
            msg = AddressMessage(family=AF_INET6 if iface.version == 6 else AF_INET, prefixlen=iface.network.prefixlen,
                                 index=idx, local=iface.ip)
            self.sock.request(RTM.DELADDR, VERB_FLAGS["delete"], msg.encode(), op="addr del", obj=f"{iface} dev {link}")

        self._on_link(link, "addr del", send)

    def _address(self, verb: str, link: LinkRef, address: AddressLike, kw: dict) -> None:
        iface = _interface(address)
        self._address_message(0, iface, **kw)  # bad keywords fail before any lookup

        def send(idx: int) -> None:
            msg = self._address_message(idx, iface, **kw)
            self.sock.request(RTM.NEWADDR, VERB_FLAGS[verb], msg.encode(), op=f"addr {verb}", obj=f"{iface} dev {link}")

        self._on_link(link, f"addr {verb}", send)

    def add_addresses(self, link: LinkRef, addresses: Iterable[AddressLike], verb: str = "add") -> list[NetlinkError]:
        """Pipelined :meth:`add_address` for many addresses; returns the failures."""
        idx = self.index(link, op=f"addr {verb}")
        msgs = [self._address_message(idx, _interface(a)) for a in addresses]
        reqs = [(int(RTM.NEWADDR), int(VERB_FLAGS[verb]), m.encode()) for m in msgs]
        return [NetlinkSocket.error(ack, f"addr {verb}", f"{msgs[i].interface} dev {link}")
                for i, ack in self.sock.pipeline(reqs)]

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
        (filtered by the kernel: NETLINK_GET_STRICT_CHK).  ``family`` is
        AF_UNSPEC (all), AF_INET or AF_INET6; ``table``, ``protocol`` and
        ``type`` take numbers or iproute2's names.  A table that does not exist
        yet (a fresh namespace) has no routes: an empty list."""
        family = _dump_family(family, "route show")
        fields = dict(family=family, table=None if table is None else _named(table, RT_TABLE_NAMES, "table", _U32_MAX),
                      protocol=_named(protocol, RTPROT_NAMES, "protocol", 0xFF), type=_named(type, RTN_NAMES, "type", 0xFF))

        def dump(oif: int | None) -> list[RouteMessage]:
            req = RouteMessage(oif=oif, **fields)
            try:
                return self.sock.dump(RTM.GETROUTE, req.encode(), _decode_route, op="route show")
            except NetlinkError as e:
                if e.errno == errno.ENOENT and fields["table"] is not None:
                    return []  # "FIB table does not exist" (nothing was ever added to it): no routes, as ip shows
                raise

        return dump(None) if link is None else self._on_link(link, "route show", dump)

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
        table: int | str | None = None,
        scope: int | str | None = None,
        protocol: int | str | None = None,
        type: int | str | None = None,
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

        ``dst`` is a prefix or ``"default"`` (required, as with ip: there is
        no implicit default route).  Table, protocol, scope and type default
        as with ``ip route VERB`` (:func:`tunkit.netlink.defaults.route_defaults`):
        table main (local for local/broadcast/nat/anycast), proto boot, type
        unicast, scope link without a gateway, else global (always global for
        IPv6); delete leaves them unset (any).
        ``table``, ``scope``, ``protocol``, ``type`` and ``pref`` take numbers
        or iproute2's names (``"main"``, ``"link"``, ``"static"``,
        ``"blackhole"``, ``"high"``); an unknown name or an out-of-range
        number raises ``ValueError`` naming it.  ``metric`` is RTA_PRIORITY;
        ``mtu``/``advmss``/``lock`` go into RTA_METRICS; ``nexthops`` are
        :class:`NextHop` objects or dicts ``{"gateway", "dev", "weight"}``
        (weight 1..256).  ``dev`` given by name is looked up now.
        """
        # (written for speed: bulk adds build ten thousand of these)
        if family is not None and family != AF_INET and family != AF_INET6:
            raise ValueError(f"route: family {family!r}: want AF_INET ({AF_INET}) or AF_INET6 ({AF_INET6})")
        if dst is None:
            raise ValueError(f"route {_VERB_OP.get(verb, verb)}: a destination is required (a prefix, or 'default')")
        net = dst if isinstance(dst, _NETWORKS) else _network(dst, family)
        gw = gateway if gateway is None or isinstance(gateway, _ADDRESSES) else ipaddress.ip_address(gateway)
        if via is not None:
            via = _ip(via)
        if prefsrc is not None:
            prefsrc = _ip(prefsrc)
        hops = tuple(self._nexthop(h, verb) for h in nexthops) if nexthops else None
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
        if metrics is not None or mtu is not None or advmss is not None or lock:
            metrics = _route_metrics(metrics, mtu, advmss, lock)
        if metric is not None:
            _u32("metric", metric)
        if type is not None or protocol is not None or scope is not None or table is not None or pref is not None or tos:
            type, protocol, scope, table, pref = _header_names(type, protocol, scope, table, pref, tos)
        table, protocol, scope, rtype = route_defaults(verb, family, table, protocol, scope, type,
                                                       gw is not None or via is not None or hops is not None
                                                       or nhid is not None)
        # Every field is checked above, so the frozen __init__ (about 3 us a route) is skipped:
        # construct() fills the fields that are set, class defaults (None) give the rest.
        d = {"family": family, "dst": net, "tos": tos, "table": table, "protocol": protocol, "scope": scope,
             "type": rtype, "flags": _ONLINK if onlink else 0}
        if dev is not None:
            d["oif"] = self.index(dev, op=f"route {_VERB_OP.get(verb, verb)}")
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

    def _nexthop(self, h: NextHop | dict, verb: str) -> NextHop:
        if isinstance(h, NextHop):
            return h
        h = dict(h)
        dev = h.pop("dev", None)
        onlink = h.pop("onlink", False)
        weight = h.pop("weight", 1)
        if weight.__class__ is not int or not 1 <= weight <= 256:
            raise ValueError(f"nexthop weight {weight!r}: want an integer in 1..256")
        hop = NextHop(
            gateway=_ip(h.pop("gateway", None)),
            via=_ip(h.pop("via", None)),
            oif=self.index(dev, op=f"route {_VERB_OP.get(verb, verb)}") if dev is not None else h.pop("oif", None),
            weight=weight,
            flags=h.pop("flags", 0) | (RtnhFlag.ONLINK if onlink else 0),
        )
        if h:
            raise ValueError(f"nexthop: unknown keys {sorted(h)}")
        return hop

    def describe_route(self, r: RouteMessage, names: dict[int, str] | None = None) -> str:
        """``198.51.100.0/24 via 192.0.2.2 dev tk0 table 1000 metric 5``: a route as ip would name it
        (link names are asked of the kernel; ``names`` memoises them for one batch)."""
        names = {} if names is None else names

        def name(idx: int) -> str:
            if idx not in names:
                names[idx] = self.name(idx)
            return names[idx]

        parts = [str(r.dst) if r.dst is not None else "default"]
        if r.gateway is not None:
            parts += ["via", str(r.gateway)]
        if r.via is not None:
            parts += ["via", str(r.via)]
        if r.oif:
            parts += ["dev", name(r.oif)]
        if r.table is not None and r.table != RT_TABLE_MAIN:
            parts += ["table", str(r.table)]
        if r.priority is not None:
            parts += ["metric", str(r.priority)]
        for h in r.multipath or ():
            gw = h.gateway or h.via
            parts += ["nexthop"] + (["via", str(gw)] if gw is not None else []) + (["dev", name(h.oif)] if h.oif else [])
            parts += ["weight", str(h.weight)]
        return " ".join(parts)

    def _route(self, verb: str, route, kw: dict) -> None:
        msg_type = RTM.DELROUTE if verb == "delete" else RTM.NEWROUTE
        op = f"route {_VERB_OP.get(verb, verb)}"
        by_name = not isinstance(route, RouteMessage) and (
            isinstance(kw.get("dev"), str) or any(isinstance(h, dict) and isinstance(h.get("dev"), str)
                                                 for h in kw.get("nexthops") or ()))
        for attempt in range(2):
            msg = route if isinstance(route, RouteMessage) else self.route_message(route, verb=verb, **kw)
            try:
                self.sock.request(msg_type, VERB_FLAGS[verb], msg.encode(), op=op)
                return
            except NetlinkError as e:
                if e.errno == errno.ENODEV and by_name and not attempt:
                    continue  # a device named in kw went away after its lookup: look it up again
                e.obj = self.describe_route(msg)  # described only on failure: it may need a lookup
                raise

    def add_route(self, dst, **kw) -> None:
        """Add a route: a :class:`RouteMessage`, or ``dst`` (a prefix or ``"default"``)
        plus :meth:`route_message` keywords."""
        self._route("add", dst, kw)

    def replace_route(self, dst, **kw) -> None:
        self._route("replace", dst, kw)

    def append_route(self, dst, **kw) -> None:
        """Add a route even if one with the same prefix and metric exists (another nexthop)."""
        self._route("append", dst, kw)

    def delete_route(self, dst, **kw) -> None:
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
            oif=self.index(dev, op="route get") if dev is not None else None,
            iif=self.index(iif, op="route get") if iif is not None else None,
            mark=mark,
            # RTM_F_LOOKUP_TABLE: report the table the lookup used (IPv4 only: IPv6 refuses the flag)
            flags=(RTM_F_FIB_MATCH if fibmatch else 0) | (RTM_F_LOOKUP_TABLE if family == AF_INET else 0),
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
        names: dict[int, str] = {}
        return [NetlinkSocket.error(ack, op, self.describe_route(routes[i], names)) for i, ack in failed]

    def delete_routes(self, routes: Iterable[RouteMessage]) -> list[NetlinkError]:
        """Pipelined delete of many routes; returns the failures."""
        return self.add_routes(routes, verb="delete")

    # ----------------------------------------------------------------- monitor
    def monitor(self, objects: Iterable[str] = ("link", "addr", "route"), *, rcvbuf: int | None = None,
                initial: bool = True) -> "RtnlMonitor":
        """Subscribe to link/addr/route/neigh/rule notifications (see :class:`RtnlMonitor`)."""
        return RtnlMonitor(self, objects, rcvbuf=rcvbuf, initial=initial)


_U32_MAX = 0xFFFFFFFF
_VERB_OP = {"delete": "del"}  # route_message verb -> the operation's name in messages
RTN_NAMES = {int(t): t.name.lower() for t in RTN}  # route types by iproute2's names (they match the enum's)


def _u32(what: str, value):
    """``value`` if it is None or an integer in 0..2**32-1, else ValueError naming it."""
    if value is None or (value.__class__ is int and 0 <= value <= _U32_MAX):
        return value
    raise ValueError(f"{what} {value!r}: want an integer in 0..{_U32_MAX}")


def _named(value, names: dict[int, str], what: str, hi: int):
    """A number in 0..hi, or one of iproute2's names for it (``names``: number -> name); None passes."""
    if value is None:
        return None
    if isinstance(value, str):
        for k, v in names.items():
            if v == value:
                return k
        raise ValueError(f"{what} {value!r}: unknown name; want one of {', '.join(names.values())} or an integer in 0..{hi}")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        choices = f"one of {', '.join(names.values())} or " if names else ""
        raise ValueError(f"{what} {value!r}: want {choices}an integer in 0..{hi}")
    return int(value)


def _dump_family(family, op: str) -> int:
    if family not in (AF_UNSPEC, AF_INET, AF_INET6) or isinstance(family, bool):
        raise ValueError(f"{op}: family {family!r}: want AF_UNSPEC ({AF_UNSPEC}), AF_INET ({AF_INET}) or AF_INET6 ({AF_INET6})")
    return int(family)


def _ifname(name) -> str:
    """``name`` if it is a valid interface name (tunkit.ifname's rules), else ValueError naming it."""
    if name == "":
        raise ValueError("interface name '' is empty: want 1 to 15 bytes")
    validate_name(name, template=False)
    return name


def _mac(text: str) -> bytes:
    """``"02:00:00:00:00:01"`` (hex bytes separated by ':') as bytes; ValueError naming the text."""
    parts = text.split(":")
    if not all(len(p) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise ValueError(f"address {text!r}: want a link-layer address, hex bytes separated by ':' (02:00:00:00:00:01)")
    return bytes(int(p, 16) for p in parts)


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
        from tunkit.netlink.events import Monitor  # not at module level: `link show` needs no events

        self.rtnl = rtnl
        self.monitor = Monitor()
        self.sock = rtnl._socket(groups=groups, rcvbuf=rcvbuf)  # in the rtnl's namespace
        self.sock.setblocking(False)
        # poll, not select: select() cannot wait on a descriptor numbered 1024 or above
        self._poll = select.poll()
        self._poll.register(self.sock.fileno(), select.POLLIN)
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
        if not self._poll.poll(None if timeout is None else max(0, int(timeout * 1000 + 0.999))):  # ms, rounded up
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

