"""``tunkit link add NAME type bridge|vxlan|macvlan ...`` and ``link set ... master|nomaster|alias|promisc|allmulticast``; does I/O.

The words are ip's: ``tunkit link add vx0 type vxlan id 42 remote 192.0.2.2
local 192.0.2.1 dev tk0 dstport 4789``, ``tunkit link add m0 link tk0 type
macvlan mode bridge``, ``tunkit link set tk1 master br0``.  ``link show -d
-j`` prints a vxlan's or macvlan's ``info_data`` as ``ip -d -j`` does.
"""

from __future__ import annotations

from typing import Any

from tunkit.cli._common import CliError, parse_int

KINDS = ("bridge", "vxlan", "macvlan", "ipvlan", "vlan", "vrf", "bond", "wireguard")
_DF_NAMES = {0: "unset", 1: "set", 2: "inherit"}
_MODE_NAMES = {1: "private", 2: "vepa", 4: "bridge", 8: "passthru", 16: "source"}


def kind_of(words: list[str]) -> str | None:
    return words[words.index("type") + 1] if "type" in words[:-1] else None


def _take(words: list[str], i: int, what: str) -> str:
    if i + 1 >= len(words):
        raise CliError(f"link add: '{what}' needs a value")
    return words[i + 1]


def _num(v: str, what: str, top: int) -> int:
    try:
        return parse_int(v, what, 0, top)
    except CliError:
        raise CliError(f"link add: {what} {v!r}: want 0..{top}") from None


def cmd_link_add(args, rtnl) -> int:
    """``link add NAME [link DEV] [mtu N] type KIND ARGS`` for the kinds in :data:`KINDS`."""
    words, kind = list(args.words), kind_of(args.words)
    kw: dict[str, Any] = {}
    lower = None
    i = 0
    flags = {"nolearning": ("learning", False), "learning": ("learning", True), "udpcsum": ("udp_csum", True),
             "noudpcsum": ("udp_csum", False), "udp6zerocsumtx": ("udp6_zero_csum_tx", True),
             "noudp6zerocsumtx": ("udp6_zero_csum_tx", False), "udp6zerocsumrx": ("udp6_zero_csum_rx", True),
             "noudp6zerocsumrx": ("udp6_zero_csum_rx", False)}
    while i < len(words):
        w = words[i]
        if w == "type":
            i += 2
            continue
        if w in flags and kind == "vxlan":
            kw[flags[w][0]] = flags[w][1]
            i += 1
            continue
        if w in ("bridge", "private", "vepa") and kind == "ipvlan":
            kw["flags"] = w
            i += 1
            continue
        v = _take(words, i, w)
        if w == "link":
            lower = v
        elif w == "mtu":
            kw["mtu"] = _num(v, "mtu", 0xFFFFFFFF)
        elif kind == "vxlan" and w in ("id", "vni"):
            kw["vni"] = _num(v, "id", (1 << 24) - 1)
        elif kind == "vxlan" and w in ("remote", "group", "local"):
            kw[w] = v
        elif kind == "vxlan" and w == "dev":
            kw["dev"] = v
        elif kind == "vxlan" and w in ("dstport", "port"):
            kw["port"] = _num(v, "dstport", 0xFFFF)
        elif kind == "vxlan" and w == "srcport":
            kw["port_range"] = (_num(v, "srcport", 0xFFFF), _num(_take(words, i + 1, "srcport"), "srcport", 0xFFFF))
            i += 1
        elif kind == "vxlan" and w in ("ttl", "hoplimit"):
            kw["ttl"] = _num(v, "ttl", 255)
        elif kind == "vxlan" and w == "tos":
            kw["tos"] = _num(v if v.startswith("0x") else "0x" + v, "tos", 255)
        elif kind == "vxlan" and w == "ageing":
            kw["ageing"] = _num(v, "ageing", 0xFFFFFFFF)
        elif kind in ("macvlan", "bond", "ipvlan") and w == "mode":
            kw["mode"] = v
        elif kind == "vlan" and w == "id":
            kw["vid"] = _num(v, "id", 4095)
        elif kind == "vlan" and w == "protocol":
            kw["protocol"] = v
        elif kind == "vrf" and w == "table":
            kw["table"] = _num(v, "table", 0xFFFFFFFF)
        elif kind == "bond" and w == "miimon":
            kw["miimon"] = _num(v, "miimon", 0xFFFFFFFF)
        else:
            raise CliError(f"link add: unknown argument {w!r} for type {kind}")
        i += 2
    with rtnl() as rt:
        try:
            if kind == "bridge":
                rt.add_bridge(args.name, mtu=kw.get("mtu"))
            elif kind == "vxlan":
                if "vni" not in kw:
                    raise CliError("link add: type vxlan needs 'id VNI'")
                rt.add_vxlan(args.name, kw.pop("vni"), **kw)
            elif kind == "vrf":
                if "table" not in kw:
                    raise CliError("link add: type vrf needs 'table T'")
                rt.add_vrf(args.name, kw["table"])
            elif kind == "bond":
                rt.add_bond(args.name, **kw)
            elif kind == "wireguard":
                rt.add_wireguard(args.name, **kw)
            else:
                if lower is None:
                    raise CliError(f"link add: type {kind} needs 'link DEV'")
                if kind == "vlan":
                    if "vid" not in kw:
                        raise CliError("link add: type vlan needs 'id VID'")
                    rt.add_vlan(args.name, lower, kw.pop("vid"), **kw)
                elif kind == "ipvlan":
                    rt.add_ipvlan(args.name, lower, **kw)
                else:
                    rt.add_macvlan(args.name, lower, **kw)
        except ValueError as e:
            raise CliError(f"link add: {e}") from None
    return 0


SET_WORDS = ("master", "nomaster", "alias", "promisc", "allmulticast", "allmulti")


def split_set_words(words: list[str]) -> tuple[list[str], dict[str, Any]]:
    """``link set`` words: (the ones ip.py's grammar takes, {master/alias/promisc/allmulti settings})."""
    rest: list[str] = []
    extra: dict[str, Any] = {}
    i = 0
    while i < len(words):
        w = words[i]
        if w == "nomaster":
            extra["master"] = None
            i += 1
            continue
        if w not in SET_WORDS:
            rest.append(w)
            i += 1
            continue
        if i + 1 >= len(words):
            raise CliError(f"link set: '{w}' needs a value")
        v = words[i + 1]
        if w == "master":
            extra["master"] = v
        elif w == "alias":
            extra["alias"] = v
        else:
            if v not in ("on", "off"):
                raise CliError(f"link set: {w} {v!r}: want on or off")
            extra["promisc" if w == "promisc" else "allmulti"] = v == "on"
        i += 2
    return rest, extra


def apply_set(rt, dev: str, extra: dict[str, Any]) -> None:
    if "master" in extra:
        rt.set_master(dev, extra["master"])
    if "alias" in extra:
        try:
            rt.set_alias(dev, extra["alias"])
        except ValueError as e:
            raise CliError(str(e)) from None
    if "promisc" in extra or "allmulti" in extra:
        rt.set_link_flags(dev, promisc=extra.get("promisc"), allmulti=extra.get("allmulti"))


def info_data_json(linkinfo, names: dict[int, str]) -> dict[str, Any] | None:
    """``info_data`` of a vxlan, macvlan, ipvlan or bridge link as ``ip -d -j`` prints it (iplink_vxlan.c,
    iplink_macvlan.c, iplink_ipvlan.c, iplink_bridge.c)."""
    from tunkit.netlink.linkkinds import BridgeInfo, IpvlanInfo, MacvlanInfo, VxlanInfo

    d = linkinfo.data
    if isinstance(d, BridgeInfo):
        return _bridge_json(d)
    if isinstance(d, IpvlanInfo):  # iplink_ipvlan.c: "mode" as a word, then one of private/vepa/bridge as true
        out = {}
        if d.mode is not None:
            out["mode"] = {0: "l2", 1: "l3", 2: "l3s"}.get(d.mode, "unknown")
        if d.flags is not None:
            out["private" if d.flags & 1 else "vepa" if d.flags & 2 else "bridge"] = True
        return out
    if isinstance(d, MacvlanInfo):
        out: dict[str, Any] = {}
        if d.mode is not None:
            out["mode"] = _MODE_NAMES.get(d.mode, "unknown")
        if d.flags:
            out["flags"] = d.flags
        if d.bc_queue_len is not None:
            out["bcqueuelen"] = d.bc_queue_len
        if d.bc_queue_len_used is not None:
            out["usedbcqueuelen"] = d.bc_queue_len_used
        return out
    if not isinstance(d, VxlanInfo):
        return None
    out = {}
    if d.id is not None:
        out["id"] = d.id
    for key, addr in (("", d.group), ("6", d.group6)):
        if addr is not None and not addr.is_unspecified:
            out[("group" if addr.is_multicast else "remote") + key] = str(addr)
    if d.local is not None and not d.local.is_unspecified:
        out["local"] = str(d.local)
    if d.local6 is not None and not d.local6.is_unspecified:
        out["local6"] = str(d.local6)
    if d.link:
        out["link"] = names.get(d.link, f"if{d.link}")
    if d.port_range is not None:
        out["port_range"] = {"low": d.port_range[0], "high": d.port_range[1]}
    if d.port is not None:
        out["port"] = d.port
    if d.learning is not None:
        out["learning"] = d.learning
    for key in ("proxy", "rsc", "l2miss", "l3miss"):
        if getattr(d, key):
            out[key] = True
    if d.tos:
        out["tos"] = "inherit" if d.tos == 1 else f"{d.tos:#x}"
    if d.ttl_inherit:
        out["ttl"] = "auto"
    elif d.ttl is not None:
        out["ttl"] = d.ttl
    if d.df is not None:
        out["df"] = _DF_NAMES.get(d.df, str(d.df))
    if d.label:
        out["label"] = f"{d.label:#x}"
    if d.ageing is not None:
        out["ageing"] = d.ageing
    if d.limit:
        out["limit"] = d.limit
    for key in ("udp_csum", "udp_zero_csum6_tx", "udp_zero_csum6_rx"):
        if getattr(d, key) is not None:
            out[key] = getattr(d, key)
    return out


def _bridge_id(value) -> str:
    """struct ifla_bridge_id as ip prints it: ``8000.0:0:0:0:0:0`` (priority hex, ether_ntoa's MAC)."""
    prio, addr = value
    return f"{prio[0]:02x}{prio[1]:02x}." + ":".join(f"{b:x}" for b in addr)


# (JSON key, BridgeInfo field, how) in iproute2's order (ip/iplink_bridge.c bridge_print_opt)
_BRIDGE_KEYS = (
    ("forward_delay", "forward_delay", int), ("hello_time", "hello_time", int), ("max_age", "max_age", int),
    ("ageing_time", "ageing_time", int), ("stp_state", "stp_state", int), ("priority", "priority", int),
    ("vlan_filtering", "vlan_filtering", int), ("vlan_protocol", "vlan_protocol", "proto"),
    ("bridge_id", "bridge_id", "id"), ("root_id", "root_id", "id"), ("root_port", "root_port", int),
    ("root_path_cost", "root_path_cost", int), ("topology_change", "topology_change", int),
    ("topology_change_detected", "topology_change_detected", int), ("hello_timer", "hello_timer", "timer"),
    ("tcn_timer", "tcn_timer", "timer"), ("topology_change_timer", "topology_change_timer", "timer"),
    ("gc_timer", "gc_timer", "timer"), ("vlan_default_pvid", "vlan_default_pvid", int),
    ("vlan_stats_enabled", "vlan_stats_enabled", int), ("vlan_stats_per_port", "vlan_stats_per_port", int),
    ("group_fwd_mask", "group_fwd_mask", "hex"), ("group_addr", "group_addr", "mac"),
    ("mcast_snooping", "mcast_snooping", int), ("no_linklocal_learn", "multi_boolopt", 0),
    ("mcast_vlan_snooping", "multi_boolopt", 1), ("mcast_router", "mcast_router", int),
    ("mcast_query_use_ifaddr", "mcast_query_use_ifaddr", int), ("mcast_querier", "mcast_querier", int),
    ("mcast_hash_elasticity", "mcast_hash_elasticity", int), ("mcast_hash_max", "mcast_hash_max", int),
    ("mcast_last_member_cnt", "mcast_last_member_cnt", int), ("mcast_startup_query_cnt", "mcast_startup_query_cnt", int),
    ("mcast_last_member_intvl", "mcast_last_member_intvl", int), ("mcast_membership_intvl", "mcast_membership_intvl", int),
    ("mcast_querier_intvl", "mcast_querier_intvl", int), ("mcast_query_intvl", "mcast_query_intvl", int),
    ("mcast_query_response_intvl", "mcast_query_response_intvl", int),
    ("mcast_startup_query_intvl", "mcast_startup_query_intvl", int), ("mcast_stats_enabled", "mcast_stats_enabled", int),
    ("mcast_igmp_version", "mcast_igmp_version", int), ("mcast_mld_version", "mcast_mld_version", int),
    ("nf_call_iptables", "nf_call_iptables", int), ("nf_call_ip6tables", "nf_call_ip6tables", int),
    ("nf_call_arptables", "nf_call_arptables", int),
)


def _bridge_json(d) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, field, how in _BRIDGE_KEYS:
        v = getattr(d, field)
        if v is None:
            continue
        if how == "proto":
            out[key] = {0x8100: "802.1Q", 0x88A8: "802.1ad"}.get(v, f"{v:#x}")
        elif how == "id":
            out[key] = _bridge_id(v)
        elif how == "timer":
            out[key] = round(v / 100, 2)  # clock ticks -> seconds, ip's %.2f
        elif how == "hex":
            out[key] = f"{v:#x}" if v else "0"  # C's %#x: 0 prints as "0"
        elif how == "mac":
            out[key] = ":".join(f"{b:02x}" for b in v)
        elif isinstance(how, int) and not isinstance(how, bool) and how is not int:  # a BR_BOOLOPT_* bit
            if v[1] & (1 << how):
                out[key] = (v[0] >> how) & 1
        else:
            out[key] = v
    return out
