"""Rtnl's calls for FIB rules, neighbours and nexthop objects (a mixin of Rtnl); does I/O.

:class:`ObjectsMixin` is part of :class:`tunkit.netlink.client.Rtnl`; it
uses the Rtnl's socket and link-name lookup, so it is used only through an
``Rtnl``::

    with Rtnl() as rt:
        rt.add_rule(src="192.0.2.0/24", table=1000, priority=100)
        rt.add_neigh("192.0.2.2", lladdr="02:00:00:00:00:02", dev="tk0")
        rt.add_nexthop(1, gateway="192.0.2.2", dev="tk0")
        rt.add_nexthop(10, group=[(1, 3), (2, 1)])          # (id, weight)
        rt.add_route("198.51.100.0/24", nhid=10)

Requests carry iproute2's defaults (``ip rule add`` looks up table main,
``ip neigh add`` makes a PERMANENT entry); every call raises
:class:`tunkit.errors.NetlinkError` naming the operation and the object.
"""

from __future__ import annotations

import _socket  # inet_pton/inet_ntop for _ipv4_prefix (the C module: socket.py costs start-up time)
import errno
import ipaddress
from typing import Any, Sequence

from tunkit._uapi import AF_INET, AF_INET6, AF_UNSPEC, RT_TABLE_MAIN
from tunkit.errors import NetlinkError
from tunkit.netlink.fields import construct, network
from tunkit.netlink.rtnl import VERB_FLAGS, LinkInfo, LinkMessage, decode_message

# The object modules load on first use (an Rtnl that only lists links never imports them).
_HOMES = {
    "neigh": ("RTM_DELNEIGH", "RTM_GETNEIGH", "RTM_NEWNEIGH", "NeighMessage", "Ntf", "Nud"),
    "nexthop": ("RTM_DELNEXTHOP", "RTM_GETNEXTHOP", "RTM_NEWNEXTHOP", "NexthopGroupMember", "NexthopMessage",
                "ResilientGroup"),
    "rule": ("FIB_RULE_INVERT", "RTM_DELRULE", "RTM_GETRULE", "RTM_NEWRULE", "FrAct", "RuleMessage"),
    "linkkinds": ("BOND_MODES", "IPVLAN_FLAGS", "IPVLAN_MODES", "MACVLAN_MODES", "BondInfo", "IpvlanInfo", "MacvlanInfo",
                  "VlanInfo", "VrfInfo", "VxlanInfo"),
}


class _Lazy:
    """``M.RuleMessage`` and friends, importing their module the first time one is used."""

    def __getattr__(self, name: str):
        import importlib

        for module, names in _HOMES.items():
            if name in names:
                mod = importlib.import_module(f"tunkit.netlink.{module}")
                for n in names:
                    setattr(self, n, getattr(mod, n))
                return getattr(mod, name)
        raise AttributeError(name)


M = _Lazy()

__all__ = ["LinkKindsMixin", "ObjectsMixin", "parse_lladdr"]

_FAMILIES = (AF_UNSPEC, AF_INET, AF_INET6)
_FLAGS = {verb: int(f) for verb, f in VERB_FLAGS.items()}
_NUD_PERMANENT = 0x80  # NUD_PERMANENT (linux/neighbour.h; neigh.Nud.PERMANENT, which loads with neigh.py)  # plain ints: NlmFlag arithmetic costs per request


def _family_check(family: int, op: str) -> int:
    if family not in _FAMILIES:
        raise ValueError(f"{op}: family {family!r}: want AF_UNSPEC (0), AF_INET (2) or AF_INET6 (10)")
    return family


def parse_lladdr(value) -> bytes:
    """A link-layer address: bytes, or text like ``02:00:00:00:00:02`` (ValueError naming it)."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    text = str(value)
    if len(text) == 17 and text[2::3] == ":::::":  # the common 6-byte spelling, without the checks' generators
        digits = text.replace(":", "")
        if len(digits) == 12 and digits.isascii() and digits.isalnum():
            try:
                return bytes.fromhex(digits)
            except ValueError:  # not hex: the general path names the problem
                pass
    parts = text.split(":")
    if not text or not all(len(p) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
        raise ValueError(f"lladdr {text!r}: want hex bytes separated by ':', e.g. 02:00:00:00:00:02")
    return bytes(int(p, 16) for p in parts)


def _ipv4_prefix(text: str) -> ipaddress.IPv4Network | None:
    """``a.b.c.d[/n]`` written as ipaddress accepts it (canonical dotted decimal, n in 0..32 as
    at most two ASCII digits, no host bits) as an IPv4Network, else None, and ipaddress decides
    with its own errors.  Bulk route building from text spent half its time in ``ip_network``;
    this takes a third of that (rules and routes use it: bench/bench_netlink.py)."""
    addr, slash, plen = text.partition("/")
    if not slash:
        plen = "32"
    elif not (plen.isdigit() and plen.isascii() and len(plen) <= 2):
        return None
    try:
        packed = _socket.inet_pton(AF_INET, addr)
    except (OSError, ValueError):  # not a dotted quad (or embedded NUL, non-ASCII): ipaddress decides
        return None
    if _socket.inet_ntop(AF_INET, packed) != addr:  # only the canonical spelling, exactly as ipaddress accepts
        return None
    value, n = int.from_bytes(packed, "big"), int(plen)
    if n > 32 or value & ((1 << (32 - n)) - 1):
        return None
    return network(4, value, n)


def _ipv4_address(text: str) -> ipaddress.IPv4Address | None:
    """``a.b.c.d`` in canonical dotted decimal as an IPv4Address (from its integer: no re-parse), else None."""
    try:
        packed = _socket.inet_pton(AF_INET, text)
    except (OSError, ValueError, TypeError):
        return None
    if _socket.inet_ntop(AF_INET, packed) != text:
        return None
    return ipaddress.IPv4Address(int.from_bytes(packed, "big"))


def _prefix(value, what: str):
    if value is None or (isinstance(value, str) and value in ("all", "default", "any")):
        return None
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value
    if isinstance(value, str):
        net = _ipv4_prefix(value)
        if net is not None:
            return net
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError as e:
        raise ValueError(f"{what} {value!r}: {e}") from None


def _range(value, what: str, top: int):
    """``N``, ``(start, end)`` or ``"start-end"`` as an inclusive pair checked against 0..top."""
    if value is None:
        return None
    if isinstance(value, str):
        a, sep, b = value.partition("-")
        try:
            pair = (int(a), int(b) if sep else int(a))
        except ValueError:
            raise ValueError(f"{what} {value!r}: want N or START-END") from None
    elif isinstance(value, int):
        pair = (value, value)
    else:
        pair = (int(value[0]), int(value[1]))
    if not (0 <= pair[0] <= pair[1] <= top):
        raise ValueError(f"{what} {value!r}: want 0 <= start <= end <= {top}")
    return pair


class ObjectsMixin:
    """Rules, neighbours and nexthop objects for :class:`tunkit.netlink.client.Rtnl`."""

    sock: Any  # Rtnl's NetlinkSocket; Rtnl also provides index(link)

    # ------------------------------------------------------------------ rules
    def rules(self, family: int = AF_UNSPEC) -> list[M.RuleMessage]:
        """Every FIB rule (IPv4 and IPv6, or one ``family``), in priority order as the kernel lists them."""
        req = M.RuleMessage(family=_family_check(family, "rule show")).encode()
        return self.sock.dump(M.RTM_GETRULE, req, _only(M.RTM_NEWRULE), op="rule show")

    def rule_message(self, verb: str = "add", *, family: int | None = None, priority: int | None = None,
                     src=None, dst=None, table: int | None = None, action: int | str | None = None,
                     iif: str | None = None, oif: str | None = None, fwmark: int | None = None,
                     fwmask: int | None = None, goto: int | None = None, tos: int = 0, invert: bool = False,
                     suppress_prefixlen: int | None = None, suppress_ifgroup: int | None = None,
                     uid_range=None, sport=None, dport=None, ip_proto: int | None = None,
                     protocol: int | None = None, realm: int | None = None, l3mdev: bool = False) -> M.RuleMessage:
        """A :class:`M.RuleMessage` from ``ip rule`` style arguments, with ip's defaults.

        ``action`` is a :class:`M.FrAct` or its name (``"blackhole"``, ...);
        adding without an action looks up ``table`` (main if none is given),
        ``goto`` makes a goto rule.  ``src``/``dst`` are prefixes (None:
        ``all``); ``uid_range``/``sport``/``dport`` are ``N``, ``(start, end)`` or
        ``"start-end"``.
        """
        src, dst = _prefix(src, "from"), _prefix(dst, "to")
        if family is None:
            net = src if src is not None else dst
            family = AF_INET6 if net is not None and net.version == 6 else AF_INET
        if isinstance(action, str):
            try:
                action = M.FrAct[action.upper()]
            except KeyError:
                names = ", ".join(a.name.lower() for a in M.FrAct if a)
                raise ValueError(f"rule {verb}: action {action!r}: want one of {names}") from None
        if action is None:
            action = M.FrAct.GOTO if goto is not None else M.FrAct.TO_TBL if verb != "delete" or table is not None else 0
        if table is None and verb != "delete" and action == M.FrAct.TO_TBL and not l3mdev:
            table = RT_TABLE_MAIN  # ip rule add: "lookup main" unless told otherwise
        for net, what in ((src, "from"), (dst, "to")):
            if net is not None and (net.version == 6) != (family == AF_INET6):
                raise ValueError(f"rule {verb}: {what} {net} is not of the rule's family")
        values = {"family": family, "dst": dst, "src": src, "tos": tos, "table": table, "action": int(action),
                  "flags": M.FIB_RULE_INVERT if invert else 0, "iifname": iif, "oifname": oif, "goto": goto,
                  "priority": priority, "fwmark": fwmark, "fwmask": fwmask, "realm": realm,
                  "suppress_ifgroup": suppress_ifgroup, "suppress_prefixlen": suppress_prefixlen,
                  "l3mdev": 1 if l3mdev else None, "uid_range": _range(uid_range, "uidrange", 0xFFFFFFFF),
                  "protocol": protocol, "ip_proto": ip_proto, "sport_range": _range(sport, "sport", 0xFFFF),
                  "dport_range": _range(dport, "dport", 0xFFFF)}
        return construct(M.RuleMessage, values)  # every field given, family set: equals RuleMessage(**values)

    def _rule(self, verb: str, msg: M.RuleMessage) -> None:
        msg_type = M.RTM_DELRULE if verb == "delete" else M.RTM_NEWRULE
        op = "rule del" if verb == "delete" else f"rule {verb}"
        obj = f"priority {msg.priority}" if msg.priority is not None else ""
        self.sock.request(msg_type, _FLAGS[verb], msg.encode(), op=op, obj=obj)

    def add_rule(self, msg: M.RuleMessage | None = None, **kw) -> None:
        """Add a FIB rule: a :class:`M.RuleMessage`, or :meth:`rule_message` keywords."""
        self._rule("add", msg if msg is not None else self.rule_message("add", **kw))

    def delete_rule(self, msg: M.RuleMessage | None = None, **kw) -> None:
        """Delete the first rule matching every given field (``ip rule del``)."""
        self._rule("delete", msg if msg is not None else self.rule_message("delete", **kw))

    def flush_rules(self, family: int = AF_UNSPEC, match=None) -> list[M.RuleMessage]:
        """Delete every rule but priority 0 (as ``ip rule flush``), or those ``match(rule)`` accepts.

        The main and default rules go too, as with ip.  Returns the rules deleted.
        """
        gone = []
        for r in self.rules(family):
            if r.priority is None or (match is not None and not match(r)):
                continue
            try:
                self.sock.request(M.RTM_DELRULE, VERB_FLAGS["delete"], r.encode(), op="rule flush",
                                  obj=f"priority {r.priority}")
            except NetlinkError as e:
                if e.errno != errno.ENOENT:  # gone meanwhile: the goal holds
                    raise
            gone.append(r)
        return gone

    # ------------------------------------------------------------- neighbours
    def neighbours(self, family: int = AF_UNSPEC, link=None, *, proxy: bool = False) -> list[M.NeighMessage]:
        """Neighbour entries (``proxy=True``: the proxy entries, which a plain dump leaves out)."""
        idx = self.index(link) if link is not None else None  # NDA_IFINDEX: strict dumps refuse ndm_ifindex
        req = M.NeighMessage(family=_family_check(family, "neigh show"), ifindex=idx,
                           flags=M.Ntf.PROXY if proxy else 0).encode()
        return self.sock.dump(M.RTM_GETNEIGH, req, _only(M.RTM_NEWNEIGH), op="neigh show", obj=str(link or ""))

    def neigh_message(self, dst, *, dev=None, lladdr=None, state: int | str | None = None, proxy: bool = False,
                      router: bool = False, extern_learn: bool = False, protocol: int | None = None) -> M.NeighMessage:
        """A :class:`M.NeighMessage` as ``ip neigh add ADDR [lladdr L] dev D [nud S] [router] [proxy]`` builds it
        (state PERMANENT unless told; ``state`` is a :class:`M.Nud` or its name)."""
        try:
            addr = dst if isinstance(dst, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else (
                (isinstance(dst, str) and _ipv4_address(dst)) or ipaddress.ip_address(dst))
        except ValueError as e:
            raise ValueError(f"neigh: {e}") from None
        if isinstance(state, str):
            try:
                state = M.Nud[state.upper()]
            except KeyError:
                names = ", ".join(n.name.lower() for n in M.Nud)
                raise ValueError(f"neigh: nud {state!r}: want one of {names}") from None
        if dev is None:
            raise ValueError(f"neigh {addr}: a device ('dev DEV') is required")
        flags = (M.Ntf.PROXY if proxy else 0) | (M.Ntf.ROUTER if router else 0) | (M.Ntf.EXT_LEARNED if extern_learn else 0)
        values = {"family": AF_INET6 if addr.version == 6 else AF_INET, "index": self.index(dev),
                  "state": _NUD_PERMANENT if state is None else int(state), "flags": int(flags), "dst": addr,
                  "lladdr": parse_lladdr(lladdr) if lladdr is not None else None, "protocol": protocol}
        return construct(M.NeighMessage, values)  # family set (the only __post_init__ rule): equals NeighMessage(**values)

    def _neigh(self, verb: str, dst, kw: dict) -> None:
        msg = dst if isinstance(dst, M.NeighMessage) else self.neigh_message(dst, **kw)
        msg_type = M.RTM_DELNEIGH if verb == "delete" else M.RTM_NEWNEIGH
        op = "neigh del" if verb == "delete" else f"neigh {verb}"
        self.sock.request(msg_type, _FLAGS[verb], msg.encode(), op=op, obj=msg.dst)  # str()'d only in an error

    def add_neigh(self, dst, **kw) -> None:
        """Add a neighbour entry (EEXIST if there is one): :meth:`neigh_message` keywords."""
        self._neigh("add", dst, kw)

    def replace_neigh(self, dst, **kw) -> None:
        """Add a neighbour entry or overwrite the existing one."""
        self._neigh("replace", dst, kw)

    def change_neigh(self, dst, **kw) -> None:
        """Change an existing neighbour entry (ENOENT if there is none)."""
        self._neigh("change", dst, kw)

    def delete_neigh(self, dst, **kw) -> None:
        self._neigh("delete", dst, kw)

    def flush_neighbours(self, family: int = AF_UNSPEC, link=None, *, states: int | None = None,
                         proxy: bool = False, match=None) -> list[M.NeighMessage]:
        """Delete the entries whose state is in ``states`` (default: all but PERMANENT and NOARP,
        as ``ip neigh flush``), or those ``match(entry)`` accepts; ``proxy=True`` flushes
        proxy entries.  Returns those deleted."""
        if states is None:
            states = 0xFF & ~(M.Nud.PERMANENT | M.Nud.NOARP)
        gone = []
        for n in self.neighbours(family, link, proxy=proxy):
            if match is not None:
                if not match(n):
                    continue
            elif not proxy and not n.state & states:
                continue
            req = M.NeighMessage(family=n.family, index=n.index, state=n.state, flags=n.flags & M.Ntf.PROXY, dst=n.dst)
            try:
                self.sock.request(M.RTM_DELNEIGH, VERB_FLAGS["delete"], req.encode(), op="neigh flush", obj=str(n.dst))
            except NetlinkError as e:
                if e.errno != errno.ENOENT:
                    raise
            gone.append(n)
        return gone

    # --------------------------------------------------------------- nexthops
    def nexthops(self, *, family: int = AF_UNSPEC, groups: bool = False, link=None) -> list[M.NexthopMessage]:
        """Nexthop objects (``groups=True``: groups only; ``link``: those using that device)."""
        req = M.NexthopMessage(family=_family_check(family, "nexthop show"), groups=True if groups else None,
                             oif=self.index(link) if link is not None else None).encode()
        return self.sock.dump(M.RTM_GETNEXTHOP, req, _only(M.RTM_NEWNEXTHOP), op="nexthop show")

    def nexthop(self, nhid: int) -> M.NexthopMessage:
        """One nexthop object by id (``NetlinkError`` ENOENT if there is none)."""
        for m in self.sock.request(M.RTM_GETNEXTHOP, VERB_FLAGS["get"], M.NexthopMessage(id=nhid).encode(),
                                   op="nexthop get", obj=f"id {nhid}"):
            if m.type == M.RTM_NEWNEXTHOP:
                return M.NexthopMessage.decode(m.payload)
        raise NetlinkError(errno.ENOENT, op="nexthop get", obj=f"id {nhid}")

    def nexthop_message(self, nhid: int, *, gateway=None, dev=None, blackhole: bool = False,
                        group: Sequence | None = None, group_type: int | None = None, onlink: bool = False,
                        protocol: int | None = None, fdb: bool = False, family: int | None = None,
                        buckets: int | None = None, idle_timer: int | None = None,
                        unbalanced_timer: int | None = None) -> M.NexthopMessage:
        """A :class:`M.NexthopMessage` as ``ip nexthop add id N ...`` builds it.

        ``group`` members are ids, ``(id, weight)`` pairs or
        :class:`M.NexthopGroupMember`; weights are 1..256.
        """
        if not isinstance(nhid, int) or not 1 <= nhid <= 0xFFFFFFFF:
            raise ValueError(f"nexthop: id {nhid!r} is out of range 1..4294967295")
        gw = None
        if gateway is not None:
            gw = gateway if isinstance(gateway, (ipaddress.IPv4Address, ipaddress.IPv6Address)) else ipaddress.ip_address(gateway)
        members = None
        if group is not None:
            members = tuple(_member(g) for g in group)
            if not members:
                raise ValueError(f"nexthop {nhid}: an empty group")
            if gw is not None or dev is not None or blackhole:
                raise ValueError(f"nexthop {nhid}: a group takes no gateway, dev or blackhole")
        if family is None:
            family = AF_UNSPEC if gw is None else AF_INET6 if gw.version == 6 else AF_INET
            if gw is None and members is None and (dev is not None or blackhole):
                family = AF_INET  # ip nexthop add id N dev D|blackhole: IPv4 unless -6
        res = None
        if buckets is not None or idle_timer is not None or unbalanced_timer is not None:
            group_type = 1 if group_type is None else group_type  # NEXTHOP_GRP_TYPE_RES
            res = M.ResilientGroup(buckets=buckets, idle_timer=None if idle_timer is None else idle_timer * 100,
                                 unbalanced_timer=None if unbalanced_timer is None else unbalanced_timer * 100)
        return construct(M.NexthopMessage, {k: v for k, v in {
            "family": family, "scope": 0, "protocol": 0 if protocol is None else protocol,  # unspec, as ip
            "flags": 4 if onlink else 0, "id": nhid, "group": members, "group_type": group_type,
            "blackhole": True if blackhole else None, "oif": self.index(dev) if dev is not None else None,
            "gateway": gw, "fdb": True if fdb else None, "res_group": res}.items() if v is not None})

    def _nexthop_request(self, verb: str, msg: M.NexthopMessage) -> None:
        msg_type = M.RTM_DELNEXTHOP if verb == "delete" else M.RTM_NEWNEXTHOP
        op = "nexthop del" if verb == "delete" else f"nexthop {verb}"
        self.sock.request(msg_type, VERB_FLAGS[verb], msg.encode(), op=op, obj=f"id {msg.id}")

    def add_nexthop(self, nhid, **kw) -> None:
        """Add a nexthop object: a :class:`M.NexthopMessage`, or an id plus :meth:`nexthop_message` keywords."""
        self._nexthop_request("add", nhid if isinstance(nhid, M.NexthopMessage) else self.nexthop_message(nhid, **kw))

    def replace_nexthop(self, nhid, **kw) -> None:
        self._nexthop_request("replace", nhid if isinstance(nhid, M.NexthopMessage) else self.nexthop_message(nhid, **kw))

    def delete_nexthop(self, nhid: int) -> None:
        self._nexthop_request("delete", M.NexthopMessage(id=nhid))

    def flush_nexthops(self, match=None) -> list[M.NexthopMessage]:
        """Delete every nexthop object (groups first, so members are free), or those ``match`` accepts."""
        found = [n for n in self.nexthops() if match is None or match(n)]
        found.sort(key=lambda n: n.group is None)
        for n in found:
            try:
                self.delete_nexthop(n.id)
            except NetlinkError as e:
                if e.errno != errno.ENOENT:  # removed with its group or meanwhile
                    raise
        return found


class LinkKindsMixin:
    """Bridge, vxlan and macvlan links, and master/alias/promisc/allmulti settings, for Rtnl."""

    sock: Any

    def add_bridge(self, name: str, *, mtu: int | None = None) -> None:
        """Create a bridge (``ip link add NAME type bridge``)."""
        self.add_link(LinkMessage(ifname=name, mtu=mtu, linkinfo=LinkInfo(kind="bridge")), obj=f"{name} type bridge")

    def add_vxlan(self, name: str, vni: int, *, remote=None, group=None, local=None, dev=None, port: int = 4789,
                  port_range: tuple | None = None, ttl: int | None = None, tos: int | None = None,
                  learning: bool | None = None, ageing: int | None = None, udp_csum: bool | None = None,
                  udp6_zero_csum_tx: bool | None = None, udp6_zero_csum_rx: bool | None = None,
                  mtu: int | None = None) -> None:
        """Create a vxlan link (``ip link add NAME type vxlan id VNI [remote|group A] [local A] [dev D]
        [dstport P]``; ip's default port is 0, tunkit's the IANA 4789)."""
        if not isinstance(vni, int) or not 0 <= vni < 1 << 24:
            raise ValueError(f"vxlan {name}: id {vni!r} is out of range 0..16777215")
        peer = _ip_or_none(remote if remote is not None else group, "remote/group")
        src = _ip_or_none(local, "local")
        data = {"id": vni, "link": self.index(dev) if dev is not None else None, "ttl": ttl, "tos": tos,
                "learning": learning, "ageing": ageing, "port_range": port_range, "port": port, "udp_csum": udp_csum,
                "udp_zero_csum6_tx": udp6_zero_csum_tx, "udp_zero_csum6_rx": udp6_zero_csum_rx}
        if peer is not None:
            data["group6" if peer.version == 6 else "group"] = peer
        if src is not None:
            data["local6" if src.version == 6 else "local"] = src
        info = M.VxlanInfo(**{k: v for k, v in data.items() if v is not None})
        self.add_link(LinkMessage(ifname=name, mtu=mtu, linkinfo=LinkInfo(kind="vxlan", data=info)),
                      obj=f"{name} type vxlan id {vni}")

    def add_macvlan(self, name: str, link, *, mode: str | int = "vepa", mtu: int | None = None) -> None:
        """Create a macvlan on ``link`` (``ip link add link DEV name NAME type macvlan mode MODE``)."""
        if isinstance(mode, str):
            if mode not in M.MACVLAN_MODES:
                raise ValueError(f"macvlan {name}: mode {mode!r}: want one of {', '.join(M.MACVLAN_MODES)}")
            mode = M.MACVLAN_MODES[mode]
        msg = LinkMessage(ifname=name, link=self.index(link), mtu=mtu,
                          linkinfo=LinkInfo(kind="macvlan", data=M.MacvlanInfo(mode=mode)))
        self.add_link(msg, obj=f"{name} link {link} type macvlan")

    def add_ipvlan(self, name: str, link, *, mode: str | int | None = None, flags: str | int | None = None,
                   mtu: int | None = None) -> None:
        """Create an ipvlan on ``link`` (``ip link add link DEV name NAME type ipvlan [mode l2|l3|l3s]
        [bridge|private|vepa]``); what is not given is not sent (the kernel's default: l3, bridge)."""
        for value, table, what in ((mode, M.IPVLAN_MODES, "mode"), (flags, M.IPVLAN_FLAGS, "flag")):
            if isinstance(value, str) and value not in table:
                raise ValueError(f"ipvlan {name}: {what} {value!r}: want one of {', '.join(table)}")
            if isinstance(value, int) and value not in table.values():
                raise ValueError(f"ipvlan {name}: {what} {value!r}: want one of {sorted(set(table.values()))}")
        mode = M.IPVLAN_MODES[mode] if isinstance(mode, str) else mode
        flags = M.IPVLAN_FLAGS[flags] if isinstance(flags, str) else flags
        msg = LinkMessage(ifname=name, link=self.index(link), mtu=mtu,
                          linkinfo=LinkInfo(kind="ipvlan", data=M.IpvlanInfo(mode=mode, flags=flags)))
        self.add_link(msg, obj=f"{name} link {link} type ipvlan")

    def add_wireguard(self, name: str, *, mtu: int | None = None) -> None:
        """Create a kernel WireGuard link (``ip link add NAME type wireguard``): IFLA_INFO_KIND only;
        keys and peers are set over the wireguard generic-netlink family (``wg``), not here."""
        self.add_link(LinkMessage(ifname=name, mtu=mtu, linkinfo=LinkInfo(kind="wireguard")),
                      obj=f"{name} type wireguard")

    def add_vlan(self, name: str, link, vid: int, *, protocol: str | int = "802.1Q", mtu: int | None = None) -> None:
        """Create a vlan on ``link`` (``ip link add link DEV name NAME type vlan id VID [protocol 802.1ad]``)."""
        if not isinstance(vid, int) or not 0 <= vid <= 4095:
            raise ValueError(f"vlan {name}: id {vid!r} is out of range 0..4095")
        proto = {"802.1Q": 0x8100, "802.1q": 0x8100, "802.1ad": 0x88A8}.get(protocol, protocol) if isinstance(protocol, str) else protocol
        if proto not in (0x8100, 0x88A8):
            raise ValueError(f"vlan {name}: protocol {protocol!r}: want 802.1Q or 802.1ad")
        msg = LinkMessage(ifname=name, link=self.index(link), mtu=mtu,
                          linkinfo=LinkInfo(kind="vlan", data=M.VlanInfo(id=vid, protocol=proto)))
        self.add_link(msg, obj=f"{name} link {link} type vlan id {vid}")

    def add_vrf(self, name: str, table: int) -> None:
        """Create a VRF bound to routing table ``table`` (``ip link add NAME type vrf table T``)."""
        if not isinstance(table, int) or not 1 <= table <= 0xFFFFFFFF:
            raise ValueError(f"vrf {name}: table {table!r} is out of range 1..4294967295")
        self.add_link(LinkMessage(ifname=name, linkinfo=LinkInfo(kind="vrf", data=M.VrfInfo(table=table))),
                      obj=f"{name} type vrf table {table}")

    def add_bond(self, name: str, *, mode: str | int = "balance-rr", miimon: int | None = None) -> None:
        """Create a bond (``ip link add NAME type bond mode MODE [miimon MS]``)."""
        if isinstance(mode, str):
            if mode not in M.BOND_MODES:
                raise ValueError(f"bond {name}: mode {mode!r}: want one of {', '.join(M.BOND_MODES)}")
            mode = M.BOND_MODES[mode]
        self.add_link(LinkMessage(ifname=name, linkinfo=LinkInfo(kind="bond", data=M.BondInfo(mode=mode, miimon=miimon))),
                      obj=f"{name} type bond")

    def set_master(self, link, master) -> None:
        """Enslave ``link`` to bridge/bond ``master`` (``ip link set L master M``); None: ``nomaster``."""
        idx = self.index(link)
        msg = LinkMessage(index=idx, master=self.index(master) if master is not None else 0)
        obj = f"{link} {'master ' + str(master) if master is not None else 'nomaster'}"
        self.sock.request(16, VERB_FLAGS["set"], msg.encode(), op="link set", obj=obj)  # RTM_NEWLINK

    def set_alias(self, link, alias: str) -> None:
        """Set the link's alias (``ip link set L alias TEXT``; "" clears it)."""
        if not isinstance(alias, str) or len(alias.encode()) > 255:
            raise ValueError(f"link set {link}: alias {alias!r}: want a string of at most 255 bytes")
        msg = LinkMessage(index=self.index(link), ifalias=alias)
        self.sock.request(16, VERB_FLAGS["set"], msg.encode(), op="link set", obj=f"{link} alias")

    def set_link_flags(self, link, *, promisc: bool | None = None, allmulti: bool | None = None) -> None:
        """Turn IFF_PROMISC / IFF_ALLMULTI on or off (``ip link set L promisc on allmulticast off``)."""
        flags = change = 0
        for on, bit in ((promisc, 0x100), (allmulti, 0x200)):  # IFF_PROMISC, IFF_ALLMULTI (linux/if.h)
            if on is not None:
                change |= bit
                flags |= bit if on else 0
        if change:
            msg = LinkMessage(index=self.index(link), flags=flags, change=change)
            self.sock.request(16, VERB_FLAGS["set"], msg.encode(), op="link set", obj=str(link))


def _ip_or_none(value, what: str):
    if value is None or isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    try:
        return ipaddress.ip_address(value)
    except ValueError as e:
        raise ValueError(f"vxlan: {what} {value!r}: {e}") from None


def _member(g) -> M.NexthopGroupMember:
    if isinstance(g, M.NexthopGroupMember):
        return g
    if isinstance(g, int):
        return M.NexthopGroupMember(g)
    i, w = g
    return M.NexthopGroupMember(int(i), int(w))


def _only(msg_type: int):
    def decode(t: int, payload):
        return decode_message(t, payload) if t == msg_type else None

    return decode
