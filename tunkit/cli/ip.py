"""``tunkit link|addr|route|monitor``: iproute2-shaped commands over rtnetlink; does I/O.

The grammar follows ``ip``: ``tunkit route add 198.51.100.0/24 via 192.0.2.2
dev tk0 metric 10 mtu 1400``.  ``-j`` prints the JSON ``ip -j`` prints (same
keys: ``metric`` is the route priority, ``metrics`` the list of RTAX values,
``nexthops`` for multipath).  ``tunkit monitor -j`` prints one JSON object
per event, which ``ip monitor`` cannot do.  Kernel errors print the
kernel's extended-ack text and exit 2; usage errors exit 1, and so does a
device that does not exist (``route add: device "tk9" does not exist``, as
``ip`` exits 1 with ``Cannot find device``).  Numbers are ASCII decimal or
``0x`` hex within the field's range (``weight`` 1..256; ``mtu``, ``table``,
``metric``, lifetimes 0..4294967295), and a refusal names the value and
the range.

Why one module of over 1,000 lines: it is iproute2's grammar and its output for links,
addresses, routes and the monitor, one parser and one formatter per word, and the words share one
vocabulary of names (tables, protocols, scopes, flags) and one JSON shape; the newer object kinds
(rules, neighbours, nexthops, link kinds) live in their own modules beside it.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import sys
from typing import Any, Callable

from tunkit.cli._common import CliError, add_json_flags, emit_json, parse_int, subparser

U32 = 0xFFFFFFFF

# ---------------------------------------------------------------------------
# names iproute2 uses (kept here, not in the codec: they are presentation)
# ---------------------------------------------------------------------------
_IFF_ORDER = ("LOOPBACK", "BROADCAST", "POINTOPOINT", "MULTICAST", "NOARP", "ALLMULTI", "PROMISC", "MASTER",
              "SLAVE", "DEBUG", "DYNAMIC", "AUTOMEDIA", "PORTSEL", "NOTRAILERS", "UP", "LOWER_UP", "DORMANT", "ECHO")
_OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")
_RTN_NAMES = ("unspec", "unicast", "local", "broadcast", "anycast", "multicast", "blackhole", "unreachable",
              "prohibit", "throw", "nat", "xresolve")
_RTNH_FLAG_NAMES = ((1, "dead"), (2, "pervasive"), (4, "onlink"), (8, "offload"), (16, "linkdown"),
                    (32, "unresolved"), (64, "trap"))
_IFA_FLAG_NAMES = ((0x01, "secondary"), (0x02, "nodad"), (0x04, "optimistic"), (0x08, "dadfailed"),
                   (0x10, "homeaddress"), (0x20, "deprecated"), (0x40, "tentative"), (0x100, "mngtmpaddr"),
                   (0x200, "noprefixroute"), (0x400, "autojoin"), (0x800, "stable-privacy"))
_METRIC_ORDER = ("mtu", "window", "rtt", "rttvar", "ssthresh", "cwnd", "advmss", "reordering", "hoplimit",
                 "initcwnd", "features", "rto_min", "initrwnd", "quickack", "cc_algo", "fastopen_no_cookie")
_LINK_TYPES = {1: "ether", 772: "loopback", 65534: "none"}


def _u():
    from tunkit import _uapi

    return _uapi


def _lookup(value: str, names: dict[int, str], what: str, hi: int = 0xFF) -> int:
    """A name from ``names`` (iproute2 tables) or a number in 0..hi, as an int."""
    for k, v in names.items():
        if v == value:
            return k
    try:
        return parse_int(value, what, 0, hi)
    except CliError:
        raise CliError(f"{what} {value!r}: want one of {', '.join(names.values())} or an integer in 0..{hi}") from None


def _name(value: int, names: dict[int, str]) -> str:
    return names.get(value, str(value))


def _mac(b: bytes | None) -> str | None:
    return ":".join(f"{x:02x}" for x in b) if b is not None else None


# ---------------------------------------------------------------------------
# objects -> ip -j JSON
# ---------------------------------------------------------------------------
def link_json(link, names: dict[int, str], details: bool = False, linkmode: bool = True) -> dict[str, Any]:
    """One link as ``ip -j link show`` prints it (``linkmode=False``: as ``ip -j addr show`` does)."""
    u = _u()
    flags = [n for n in _IFF_ORDER if link.flags & u.IfFlag[n]]
    if link.flags & u.IfFlag.UP and not link.flags & u.IfFlag.RUNNING:
        flags.insert(0, "NO-CARRIER")
    out: dict[str, Any] = {"ifindex": link.index}
    if link.link:
        out["link"] = names.get(link.link, f"if{link.link}")
    out["ifname"] = link.ifname
    out["flags"] = flags
    if link.mtu is not None:
        out["mtu"] = link.mtu
    if link.qdisc is not None:
        out["qdisc"] = link.qdisc
    if link.master:
        out["master"] = names.get(link.master, f"if{link.master}")
    if link.operstate is not None:
        out["operstate"] = _OPERSTATES[link.operstate] if link.operstate < len(_OPERSTATES) else str(link.operstate)
    if link.linkmode is not None and linkmode:
        out["linkmode"] = {0: "DEFAULT", 1: "DORMANT"}.get(link.linkmode, str(link.linkmode))
    if link.group is not None:
        out["group"] = "default" if link.group == 0 else str(link.group)
    if link.txqlen is not None:
        out["txqlen"] = link.txqlen
    out["link_type"] = _LINK_TYPES.get(link.type, str(link.type))
    if link.address is not None:
        out["address"] = _mac(link.address)
    if link.broadcast is not None:
        out["broadcast"] = _mac(link.broadcast)
    if details:
        for key in ("promiscuity", "allmulti", "min_mtu", "max_mtu", "num_tx_queues", "num_rx_queues"):
            if getattr(link, key) is not None:
                out[key] = getattr(link, key)
        if link.linkinfo is not None:
            info: dict[str, Any] = {"info_kind": link.linkinfo.kind} if link.linkinfo.kind is not None else {}
            from tunkit.cli.linkkinds import info_data_json

            kind_data = info_data_json(link.linkinfo, names)
            if kind_data is not None:
                info["info_data"] = kind_data
            if link.linkinfo.slave_kind is not None:
                info["info_slave_kind"] = link.linkinfo.slave_kind
            data = link.linkinfo.data
            if data is not None and hasattr(data, "pi"):  # TunInfo, as ip -d shows it
                tun: dict[str, Any] = {"type": "tap" if data.type == 2 else "tun", "pi": bool(data.pi),
                                       "vnet_hdr": bool(data.vnet_hdr), "multi_queue": bool(data.multi_queue)}
                if data.multi_queue:
                    tun["numqueues"] = data.num_queues
                    tun["numdisabled"] = data.num_disabled_queues
                tun["persist"] = bool(data.persist)
                info["info_data"] = tun
            out["linkinfo"] = info
        if link.addr_gen_mode is not None:
            from tunkit.netlink.client import ADDR_GEN_MODES

            names = {int(v): k for k, v in ADDR_GEN_MODES.items()}
            out["inet6_addr_gen_mode"] = names.get(link.addr_gen_mode, str(link.addr_gen_mode))
    if details:
        for key in ("gso_max_size", "gso_max_segs", "tso_max_size", "tso_max_segs", "gro_max_size"):
            if getattr(link, key) is not None:
                out[key] = getattr(link, key)
    if link.ifalias is not None:
        out["ifalias"] = link.ifalias
    if link.stats64 is not None and details:
        s = link.stats64
        out["stats64"] = {
            "rx": {"bytes": s.rx_bytes, "packets": s.rx_packets, "errors": s.rx_errors, "dropped": s.rx_dropped},
            "tx": {"bytes": s.tx_bytes, "packets": s.tx_packets, "errors": s.tx_errors, "dropped": s.tx_dropped},
        }
    return out


def addr_info_json(a) -> dict[str, Any]:
    """One address as an ``addr_info`` entry of ``ip -j addr show``."""
    u = _u()
    local = a.local if a.local is not None else a.address
    out: dict[str, Any] = {"family": "inet6" if a.family == u.AF_INET6 else "inet", "local": str(local)}
    if a.address is not None and a.local is not None and a.address != a.local:
        out["address"] = str(a.address)
    out["prefixlen"] = a.prefixlen
    if a.rt_priority is not None:
        out["metric"] = a.rt_priority
    if a.broadcast is not None:
        out["broadcast"] = str(a.broadcast)
    out["scope"] = _name(a.scope, u.RT_SCOPE_NAMES)
    flags = a.all_flags
    for bit, name in _IFA_FLAG_NAMES:
        if flags & bit:
            out[name] = True
    if not flags & 0x80:  # IFA_F_PERMANENT unset: an address with a lifetime
        out["dynamic"] = True
    if a.label is not None:
        out["label"] = a.label
    if a.cacheinfo is not None:
        out["valid_life_time"] = a.cacheinfo.valid
        out["preferred_life_time"] = a.cacheinfo.preferred
    return out


def _gateway_json(r, names: dict[int, str], out: dict[str, Any]) -> None:
    """gateway, via and dev of a route or of one of its nexthops, as ip names them."""
    if r.gateway is not None:
        out["gateway"] = str(r.gateway)
    if r.via is not None:
        out["via"] = {"family": "inet6" if r.via.version == 6 else "inet", "host": str(r.via)}
    if r.oif:
        out["dev"] = names.get(r.oif, f"if{r.oif}")


def _metrics_json(m) -> dict[str, Any]:
    """RTA_METRICS as ip's "metrics" object: rtt/rttvar in ms (the kernel keeps 8x/4x), features by name."""
    out: dict[str, Any] = {}
    for k in _METRIC_ORDER:
        v = getattr(m, k)
        if v is None or (k == "hoplimit" and v == 0xFFFFFFFF):
            continue
        if k == "rtt":
            v //= 8
        elif k == "rttvar":
            v //= 4
        if k == "features":
            for bit, name in ((1, "ecn"),):
                if v & bit:
                    out[name] = None
            continue
        out["congestion" if k == "cc_algo" else k] = v
    return out


def route_json(r, names: dict[int, str], *, get: bool = False, show_table: bool = True,
               omit: frozenset = frozenset()) -> dict[str, Any]:
    """One route as ``ip -j route show`` prints it (ip/iproute.c print_route; ``get``: kept for callers, the
    reply itself (RTM_F_CLONED for IPv4) decides what ``ip -j route get`` shows; earlier text: ``get=True``: as
    ``ip -j route get``; ``show_table=False``: as ip prints a listing filtered by one table;
    ``omit``: keys a ``route show`` filter fixes, which ip leaves out: dev, protocol, scope, gateway)."""
    u = _u()
    from tunkit.cli.names import dsfield_name, realm_text

    out: dict[str, Any] = {}
    if r.type != u.RTN.UNICAST:
        out["type"] = _RTN_NAMES[r.type] if r.type < len(_RTN_NAMES) else str(r.type)
    if r.dst is None:
        out["dst"] = "default"
    elif r.dst.prefixlen == r.dst.max_prefixlen:
        out["dst"] = str(r.dst.network_address)
    else:
        out["dst"] = str(r.dst)
    if r.src is not None:
        out["from"] = str(r.src.network_address) if r.src.prefixlen == r.src.max_prefixlen else str(r.src)
    if r.nhid is not None:
        out["nhid"] = r.nhid
    if r.tos and "tos" not in omit:
        out["tos"] = dsfield_name(r.tos)
    _gateway_json(r, names, out)
    for key in omit & {"dev", "gateway"}:
        out.pop(key, None)
    cloned = r.flags & u.RTM_F_CLONED  # an IPv4 route get answer: ip prints no protocol/scope, and "cache"
    if r.table is not None and r.table != u.RT_TABLE_MAIN and show_table:
        out["table"] = _name(r.table, u.RT_TABLE_NAMES)
    if not cloned:
        if r.protocol != u.RTPROT_BOOT and "protocol" not in omit:
            out["protocol"] = _name(r.protocol, u.RTPROT_NAMES)
        if r.scope != u.RtScope.UNIVERSE and "scope" not in omit:
            out["scope"] = _name(r.scope, u.RT_SCOPE_NAMES)
    if r.prefsrc is not None:
        out["prefsrc"] = str(r.prefsrc)
    if r.priority is not None:
        out["metric"] = r.priority
    out["flags"] = [name for bit, name in _RTNH_FLAG_NAMES if r.flags & bit]
    if r.mark:
        out["mark"] = r.mark
    if r.realm is not None:
        frm, to = r.realm >> 16, r.realm & 0xFFFF
        out["flow"] = {**({"from": realm_text(frm)} if frm else {}), "to": realm_text(to)}
    if r.uid is not None:
        out["uid"] = r.uid
    if cloned and r.family == u.AF_INET:
        out["cache"] = []
    if r.cacheinfo is not None:
        if r.cacheinfo.expires:
            out["expires"] = r.cacheinfo.expires // 100  # clock ticks (USER_HZ) -> seconds, as ip
        if r.cacheinfo.error:
            out["error"] = r.cacheinfo.error
    if r.metrics is not None:
        m = _metrics_json(r.metrics)
        if m:
            out["metrics"] = [m]
    if r.iif and not get:
        out["iif"] = names.get(r.iif, f"if{r.iif}")
    if r.pref is not None:
        out["pref"] = _name(r.pref, u.ROUTER_PREF_NAMES)
    if r.multipath is not None:
        hops = []
        for h in r.multipath:
            hop: dict[str, Any] = {}
            _gateway_json(h, names, hop)
            hop["weight"] = h.weight
            hop["flags"] = [name for bit, name in _RTNH_FLAG_NAMES if h.flags & bit]
            hops.append(hop)
        out["nexthops"] = hops
    return out


_METRIC_WORDS = {"congestion": "congctl", "ecn": "features"}


def route_text(j: dict[str, Any], r=None) -> str:
    """A route JSON object as ``ip route`` text (``r``, the route itself, adds the metric
    locks, which ip's JSON does not carry: ``mtu lock 1400``)."""
    parts = [j["type"]] if "type" in j else []
    parts.append(j["dst"])
    for key in ("from", "nhid", "tos", "gateway", "via", "dev", "table", "protocol", "scope", "prefsrc", "metric"):
        if key in j:
            word = {"gateway": "via", "protocol": "proto", "prefsrc": "src"}.get(key, key)
            value = j[key]
            if key == "via":  # a gateway of the other family (RTA_VIA)
                value = f"{value['family']} {value['host']}"
            parts += [word, str(value)]
    parts += j.get("flags", [])
    if "mark" in j:
        parts += ["mark", str(j["mark"])]
    if "flow" in j:
        f = j["flow"]
        parts += ["realms", f"{f['from']}/{f['to']}"] if "from" in f else ["realm", f["to"]]
    if "uid" in j:
        parts += ["uid", str(j["uid"])]
    if "expires" in j:
        parts += ["expires", f"{j['expires']}sec"]
    metrics = getattr(r, "metrics", None)
    for m in j.get("metrics", []):
        for k, v in m.items():
            name = {"congestion": "cc_algo"}.get(k, "features" if k == "ecn" else k)
            locked = metrics is not None and name in _METRIC_ORDER and metrics.locked(name)
            word = [_METRIC_WORDS.get(k, k)] + (["lock"] if locked else [])
            if k == "ecn":
                parts += word + ["ecn"]
            elif k in ("rtt", "rttvar", "rto_min"):
                parts += word + [f"{v / 1000:g}s" if v >= 1000 else f"{v}ms"]
            else:
                parts += word + [str(v)]
    if "iif" in j:
        parts += ["iif", j["iif"]]
    if "pref" in j:
        parts += ["pref", j["pref"]]
    lines = [" ".join(parts)]
    for h in j.get("nexthops", []):
        hop = ["\tnexthop"]
        if "gateway" in h:
            hop += ["via", h["gateway"]]
        if "via" in h:
            hop += ["via", h["via"]["family"], h["via"]["host"]]
        if "dev" in h:
            hop += ["dev", h["dev"]]
        hop += ["weight", str(h["weight"])] + h["flags"]
        lines.append(" ".join(hop))
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# argument words -> keywords
# ---------------------------------------------------------------------------
class Words:
    """iproute2-style ``key value`` words, consumed left to right."""

    def __init__(self, words: list[str], what: str, args=None) -> None:
        self.words = list(words)
        self.what = what
        if args is not None:  # -j/-p may come after the words, which argparse left in them
            for flag, attr in (("-j", "json"), ("--json", "json"), ("-p", "pretty"), ("--pretty", "pretty"),
                               ("-4", "ipv4"), ("-6", "ipv6")):
                while flag in self.words:
                    self.words.remove(flag)
                    setattr(args, attr, True)

    def __bool__(self) -> bool:
        return bool(self.words)

    def next(self) -> str:
        return self.words.pop(0)

    def peek(self) -> str | None:
        return self.words[0] if self.words else None

    def value(self, key: str) -> str:
        if not self.words:
            raise CliError(f"{self.what}: '{key}' needs a value")
        return self.words.pop(0)

    def number(self, key: str, lo: int = 0, hi: int = U32) -> int:
        """The next word as an integer in lo..hi (default: a u32, as ip's get_unsigned)."""
        return parse_int(self.value(key), f"{self.what}: {key}", lo, hi)

    def parse(self, grammar: dict[str, tuple[str, Any]]) -> dict[str, Any]:
        """Consume every word by ``grammar``: word -> (keyword, how), where how is
        ``str``/``int`` (the next word), a constant (a bare flag word), or a
        function ``f(words, word)`` returning the value."""
        kw: dict[str, Any] = {}
        while self:
            word = self.next()
            if word not in grammar:
                raise CliError(f"{self.what}: unknown argument {word!r}")
            key, how = grammar[word]
            if how is str:
                kw[key] = self.value(word)
            elif how is int:
                kw[key] = self.number(word)
            elif callable(how):
                kw[key] = how(self, word)
            else:
                kw[key] = how
        return kw


@contextlib.contextmanager
def _rtnl(what: str):
    """An Rtnl for command ``what``: a device that does not exist, or a value the
    client refuses, is bad input (exit 1, as ip), named with the command."""
    from tunkit.netlink.client import LinkNotFound, Rtnl

    with Rtnl() as rt:
        try:
            yield rt
        except LinkNotFound as e:
            raise CliError(str(e), 1) from None
        except ValueError as e:
            if isinstance(e, CliError) or str(e).startswith(what):
                raise
            raise CliError(f"{what}: {e}", 1) from None


def _family(args) -> int:
    u = _u()
    return u.AF_INET if getattr(args, "ipv4", False) else u.AF_INET6 if getattr(args, "ipv6", False) else u.AF_UNSPEC


def _show(args, items: list[dict[str, Any]], text: Callable[[dict[str, Any]], str]) -> int:
    try:
        if args.json:
            emit_json(items, args.pretty)
        else:
            for j in items:
                print(text(j))
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (e.g. `| head`) is gone: stop quietly, as ip does
        _quiet_stdout()
    return 0


def _quiet_stdout() -> None:
    import os

    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not fail again
    os.close(devnull)


# ---------------------------------------------------------------------------
# link
# ---------------------------------------------------------------------------
def _link_text(j: dict[str, Any]) -> str:
    name = j["ifname"] + (f"@{j['link']}" if "link" in j else "")
    line = f"{j['ifindex']}: {name}: <{','.join(j['flags'])}> mtu {j.get('mtu')}"
    for key in ("qdisc", "master"):
        if key in j:
            line += f" {key} {j[key]}"
    line += f" state {j.get('operstate', 'UNKNOWN')}"
    if "txqlen" in j:
        line += f" qlen {j['txqlen']}"
    line += f"\n    link/{j['link_type']}"
    if "address" in j:
        line += f" {j['address']}"
    if "broadcast" in j:
        line += f" brd {j['broadcast']}"
    if "linkinfo" in j:
        line += f"\n    {j['linkinfo']['info_kind']}"
    return line


def cmd_link_show(args) -> int:
    with _rtnl("link show") as rt:
        links = rt.links()
        names = {l.index: l.ifname for l in links}
        if args.dev:
            links = [l for l in links if l.ifname == args.dev]
            if not links:
                raise CliError(f'Device "{args.dev}" does not exist.', 1)
        return _show(args, [link_json(l, names, args.details) for l in links], _link_text)


LINK_SET_GRAMMAR: dict[str, tuple[str, Any]] = {
    "up": ("up", True), "down": ("up", False), "mtu": ("mtu", int),
    "txqlen": ("txqlen", int), "txqueuelen": ("txqlen", int), "qlen": ("txqlen", int),
    "name": ("name", str), "address": ("address", str),
    "addrgenmode": ("addr_gen_mode", lambda w, word: w.value(word)),
    "netns": ("netns", lambda w, word: _open_netns(w.value(word))),
}


def cmd_link_set(args) -> int:
    from tunkit.cli import linkkinds  # master/nomaster/alias/promisc/allmulticast

    words, extra = linkkinds.split_set_words(args.words)
    kw = Words(words, "link set").parse(LINK_SET_GRAMMAR)
    if extra:
        with _rtnl("link set") as rt:
            linkkinds.apply_set(rt, args.dev, extra)
        if not kw:
            return 0
    if not kw:
        raise CliError("link set: nothing to change (up, down, mtu N, txqlen N, name NAME, address MAC, addrgenmode MODE, netns PATH|PID)")
    try:
        with _rtnl("link set") as rt:
            rt.set_link(args.dev, **kw)
    finally:
        if "netns" in kw:
            import os

            os.close(kw["netns"])
    return 0


def _open_netns(ref: str) -> int:
    import os

    path = f"/proc/{ref}/ns/net" if ref.isascii() and ref.isdigit() else ref if "/" in ref else f"/run/netns/{ref}"
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise CliError(f"netns {ref}: cannot open {path}: {e.strerror}") from None


def _peer_name(w: Words, word: str) -> str:
    if w.peek() == "name":
        w.next()
    return w.value("peer name")


LINK_ADD_GRAMMAR: dict[str, tuple[str, Any]] = {"type": ("kind", str), "peer": ("peer", _peer_name), "mtu": ("mtu", int)}


def cmd_link_add(args) -> int:
    from tunkit.cli import linkkinds  # bridge, vxlan, macvlan

    if linkkinds.kind_of(args.words) in linkkinds.KINDS:
        return linkkinds.cmd_link_add(args, lambda: _rtnl("link add"))
    kw = Words(args.words, "link add").parse(LINK_ADD_GRAMMAR)
    kind, peer, mtu = kw.get("kind"), kw.get("peer"), kw.get("mtu")
    with _rtnl("link add") as rt:
        if kind == "veth":
            if peer is None:
                raise CliError("link add: type veth needs 'peer name NAME'")
            rt.add_veth(args.name, peer, mtu=mtu)
        elif kind == "dummy":
            rt.add_dummy(args.name, mtu=mtu)
        else:
            raise CliError(f"link add: type {kind!r} is not supported (veth, dummy, bridge, vxlan, macvlan, ipvlan, vlan, vrf, bond, wireguard; "
                           "TUN/TAP: 'tunkit tuntap')")
    return 0


def cmd_link_del(args) -> int:
    with _rtnl("link del") as rt:
        rt.delete_link(args.dev)
    return 0


# ---------------------------------------------------------------------------
# addr
# ---------------------------------------------------------------------------
def _addr_text(j: dict[str, Any]) -> str:
    lines = [_link_text(j)]
    for a in j["addr_info"]:
        flags = " ".join([n for _, n in _IFA_FLAG_NAMES if a.get(n)] + (["dynamic"] if a.get("dynamic") else []))
        if "address" in a:  # a point-to-point address: ip prints the peer with the prefix length
            line = f"    {a['family']} {a['local']} peer {a['address']}/{a['prefixlen']}"
        else:
            line = f"    {a['family']} {a['local']}/{a['prefixlen']}"
        if "broadcast" in a:
            line += f" brd {a['broadcast']}"
        line += f" scope {a['scope']}" + (f" {flags}" if flags else "") + (f" {a['label']}" if "label" in a else "")
        lines.append(line)
        if "valid_life_time" in a:
            life = [("forever" if a[k] == 0xFFFFFFFF else f"{a[k]}sec") for k in ("valid_life_time", "preferred_life_time")]
            lines.append(f"       valid_lft {life[0]} preferred_lft {life[1]}")
    return "\n".join(lines)


def cmd_addr_show(args) -> int:
    with _rtnl("addr show") as rt:
        links = rt.links()
        names = {l.index: l.ifname for l in links}
        addrs = rt.addresses(args.dev, family=_family(args)) if args.dev else rt.addresses(family=_family(args))
        out = []
        for l in links:
            if args.dev and l.ifname != args.dev:
                continue
            j = link_json(l, names, linkmode=False)
            j["addr_info"] = [addr_info_json(a) for a in addrs if a.index == l.index]
            out.append(j)
        return _show(args, out, _addr_text)


def _lifetime(w: Words, word: str) -> int:
    v = w.value(word)
    return U32 if v == "forever" else parse_int(v, f"{w.what}: {word}", 0, U32)


_ADDR_FLAG_WORDS = {"nodad": 0x02, "noprefixroute": 0x200, "home": 0x10, "mngtmpaddr": 0x100, "autojoin": 0x400}
ADDR_GRAMMAR: dict[str, tuple[str, Any]] = {
    "dev": ("dev", str), "peer": ("peer", str), "broadcast": ("broadcast", str), "brd": ("broadcast", str),
    "label": ("label", str), "metric": ("metric", int),
    "scope": ("scope", lambda w, word: _lookup(w.value(word), _u().RT_SCOPE_NAMES, f"{w.what}: scope")),
    "valid_lft": ("valid_lft", _lifetime), "preferred_lft": ("preferred_lft", _lifetime),
    **{name: (f"flag_{name}", bit) for name, bit in _ADDR_FLAG_WORDS.items()},
}


def cmd_addr_change(args) -> int:
    kw = Words(args.words, f"addr {args.verb}").parse(ADDR_GRAMMAR)
    dev = kw.pop("dev", None)
    flags = sum(kw.pop(k) for k in [k for k in kw if k.startswith("flag_")])
    if dev is None:
        raise CliError(f"addr {args.verb}: 'dev DEV' is required")
    try:
        iface = ipaddress.ip_interface(args.address)
    except ValueError as e:
        raise CliError(f"addr {args.verb}: {e}") from None
    with _rtnl(f"addr {args.verb}") as rt:
        if args.verb == "del":
            rt.delete_address(dev, iface)
        elif args.verb == "replace":
            rt.replace_address(dev, iface, flags=flags, **kw)
        else:
            rt.add_address(dev, iface, flags=flags, **kw)
    return 0


# ---------------------------------------------------------------------------
# route
# ---------------------------------------------------------------------------
def _parse_route(w: Words) -> dict[str, Any]:
    u = _u()
    kw: dict[str, Any] = {"lock": []}
    hops: list[dict[str, Any]] = []
    hop: dict[str, Any] | None = None
    while w:
        word = w.next()
        if word == "nexthop":
            hop = {}
            hops.append(hop)
            continue
        target = hop if hop is not None and word in ("via", "dev", "weight", "onlink") else kw
        if word == "via":
            v = w.value(word)
            if v in ("inet", "inet6"):
                v = w.value(word)
            target["gateway"] = v
        elif word in ("dev", "oif"):
            target["dev"] = w.value(word)
        elif word == "weight":
            target["weight"] = w.number(word, 1, 256)
        elif word == "onlink":
            target["onlink"] = True
        elif word == "src":
            kw["prefsrc"] = w.value(word)
        elif word == "from":
            kw["src"] = w.value(word)
        elif word in ("metric", "priority", "preference"):
            kw["metric"] = w.number(word)
        elif word == "table":
            v = w.value(word)
            kw["table"] = _lookup(v, u.RT_TABLE_NAMES, f"{w.what}: table", U32)
        elif word == "scope":
            kw["scope"] = _lookup(w.value(word), u.RT_SCOPE_NAMES, f"{w.what}: scope")
        elif word in ("proto", "protocol"):
            kw["protocol"] = _lookup(w.value(word), u.RTPROT_NAMES, f"{w.what}: proto")
        elif word in ("mtu", "advmss"):
            v = w.value(word)
            if v == "lock":
                kw["lock"].append(word)
                v = w.value(word)
            kw[word] = parse_int(v, f"{w.what}: {word}", 0, U32)
        elif word in _MORE_ROUTE_WORDS:  # tos, realms, nhid, metrics beyond mtu/advmss (see _route_word)
            _route_word(w, word, kw)
        elif word == "pref":
            kw["pref"] = _lookup(w.value(word), u.ROUTER_PREF_NAMES, f"{w.what}: pref")
        elif word == "expires":
            kw["expires"] = w.number(word)
        elif word == "type" or word in _RTN_NAMES[1:]:
            name = w.value(word) if word == "type" else word
            if name not in _RTN_NAMES:
                raise CliError(f"{w.what}: type {name!r}: want one of {', '.join(_RTN_NAMES)}")
            kw["type"] = _RTN_NAMES.index(name)
            if word != "type" and w.peek() and not kw.get("_dst_set"):
                kw["dst"] = w.next()
                kw["_dst_set"] = True
        elif not kw.get("_dst_set"):
            kw["dst"] = word
            kw["_dst_set"] = True
        else:
            raise CliError(f"{w.what}: unknown argument {word!r}")
    kw.pop("_dst_set", None)
    if hops:
        kw["nexthops"] = hops
    if "_metrics" in kw:
        from tunkit.netlink.rtnl import RouteMetrics

        kw["metrics"] = RouteMetrics(**kw.pop("_metrics"))
    return kw


# route words beyond the basic ones: metric name -> RouteMetrics field ("lock" may precede the value)
_ROUTE_METRIC_WORDS = {"window": "window", "rtt": "rtt", "rttvar": "rttvar", "ssthresh": "ssthresh", "cwnd": "cwnd",
                       "initcwnd": "initcwnd", "initrwnd": "initrwnd", "reordering": "reordering",
                       "hoplimit": "hoplimit", "rto_min": "rto_min", "quickack": "quickack",
                       "fastopen_no_cookie": "fastopen_no_cookie", "congctl": "cc_algo", "features": "features"}
_MORE_ROUTE_WORDS = {"tos", "dsfield", "realm", "realms", "nhid", *_ROUTE_METRIC_WORDS}
_TIME_UNITS = (("usecs", 0.001), ("usec", 0.001), ("us", 0.001), ("msecs", 1), ("msec", 1), ("ms", 1),
               ("secs", 1000), ("sec", 1000), ("s", 1000))


def _rtt_ms(w: Words, word: str, v: str) -> tuple[int, bool]:
    """``12ms``, ``1.5s``, ``200us`` -> (milliseconds, False); a bare number -> (it, True: kernel units), as ip."""
    for unit, scale in _TIME_UNITS:
        if v.endswith(unit) and v[: -len(unit)]:
            try:
                return int(float(v[: -len(unit)]) * scale), False
            except ValueError:
                break
    try:
        return parse_int(v, f"{w.what}: {word}", 0, U32), True
    except CliError:
        raise CliError(f"{w.what}: {word} {v!r}: want a time such as 12ms or 1.5s, or a number") from None


def _route_word(w: Words, word: str, kw: dict[str, Any]) -> None:
    """One of _MORE_ROUTE_WORDS and its value into ``kw`` (metrics gather in kw["_metrics"])."""
    from tunkit.cli.names import dsfield_value, realm_text  # noqa: F401

    if word in ("tos", "dsfield"):
        kw["tos"] = dsfield_value(w.value(word), w.what)
    elif word in ("realm", "realms"):
        v = w.value(word)
        frm, _, to = v.rpartition("/")
        try:
            kw["realm"] = (parse_int(frm or "0", "realm", 0, 0xFFFF) << 16) | parse_int(to, "realm", 0, 0xFFFF)
        except CliError:
            raise CliError(f"{w.what}: realms {v!r}: want [FROM/]TO, integers in 0..65535") from None
    elif word == "nhid":
        kw["nhid"] = w.number(word)
    else:
        name = _ROUTE_METRIC_WORDS[word]
        v = w.value(word)
        if v == "lock":
            kw["lock"].append(name)
            v = w.value(word)
        metrics = kw.setdefault("_metrics", {})
        if name == "cc_algo":
            metrics[name] = v
        elif name == "features":
            if v != "ecn":
                raise CliError(f"{w.what}: features {v!r}: want ecn")
            metrics[name] = metrics.get(name, 0) | 1  # RTAX_FEATURE_ECN
        elif name in ("rtt", "rttvar", "rto_min"):
            ms, raw = _rtt_ms(w, word, v)
            metrics[name] = ms if raw or name == "rto_min" else ms * (8 if name == "rtt" else 4)
        else:
            metrics[name] = parse_int(v, f"{w.what}: {word}", 0, U32)


def cmd_route_change(args) -> int:
    kw = _parse_route(Words(args.words, f"route {args.verb}", args))
    dst = kw.pop("dst", None)
    if dst is None:
        raise CliError(f"route {args.verb}: a destination (PREFIX or 'default') is required")
    verb = {"del": "delete"}.get(args.verb, args.verb)
    family = _family(args) or None
    with _rtnl(f"route {args.verb}") as rt:
        try:
            msg = rt.route_message(dst, verb=verb, family=family, **kw)
        except ValueError as e:
            raise CliError(f"route {args.verb}: {e}") from None
        getattr(rt, f"{verb}_route")(msg)
    return 0


def _route_filters(w: Words) -> dict[str, Any]:
    """``route show`` selector words: table ID|all, dev, proto, scope, type, via, tos, and a PREFIX (root/exact)."""
    u = _u()
    f: dict[str, Any] = {"table": u.RT_TABLE_MAIN}
    while w:
        word = w.next()
        if word == "table":
            v = w.value(word)
            f["table"] = None if v in ("all", "0") else _lookup(v, u.RT_TABLE_NAMES, "route show: table", U32)
        elif word in ("dev", "oif"):
            f["dev"] = w.value(word)
        elif word in ("proto", "protocol"):
            f["protocol"] = _lookup(w.value(word), u.RTPROT_NAMES, "route show: proto")
        elif word == "scope":
            f["scope"] = _lookup(w.value(word), u.RT_SCOPE_NAMES, "route show: scope")
        elif word == "type":
            name = w.value(word)
            if name not in _RTN_NAMES:
                raise CliError(f"route show: type {name!r}: want one of {', '.join(_RTN_NAMES[1:])}")
            f["type"] = _RTN_NAMES.index(name)
        elif word == "via":
            v = w.value(word)
            if v in ("inet", "inet6"):
                v = w.value(word)
            try:
                f["via"] = ipaddress.ip_address(v)
            except ValueError as e:
                raise CliError(f"route show: via {v!r}: {e}") from None
        elif word in ("tos", "dsfield"):
            from tunkit.cli.names import dsfield_value

            f["tos"] = dsfield_value(w.value(word), "route show")
        else:
            raise CliError(f"route show: unknown argument {word!r}")
    return f


def _route_matches(r, f: dict[str, Any]) -> bool:
    if "protocol" in f and r.protocol != f["protocol"]:
        return False
    if "scope" in f and r.scope != f["scope"]:
        return False
    if "type" in f and r.type != f["type"]:
        return False
    if "tos" in f and r.tos != f["tos"]:
        return False
    if "via" in f:
        gws = [r.gateway, r.via] + [g for h in (r.multipath or ()) for g in (h.gateway, h.via)]
        if f["via"] not in gws:
            return False
    return True


def cmd_route_show(args) -> int:
    u = _u()
    f = _route_filters(Words(args.words, "route show", args))
    table = f["table"]
    family = _family(args)
    if not family and table is not None:
        family = u.AF_INET  # like ip: IPv4 unless -6, or 'table all' (every family)
    omit = frozenset(key for k, key in (("dev", "dev"), ("protocol", "protocol"), ("scope", "scope"), ("via", "gateway"),
                                        ("tos", "tos"))
                     if k in f)
    with _rtnl("route show") as rt:
        names = {l.index: l.ifname for l in rt.links()}
        routes = rt.routes(family=family, table=table, link=f.get("dev"))  # [] for a table not made yet, as ip
        pairs = [(route_json(r, names, show_table=table is None or table == u.RT_TABLE_MAIN, omit=omit), r)
                 for r in routes if _route_matches(r, f)]
        return _show_pairs(args, pairs, route_text)


def _show_pairs(args, pairs: list, text) -> int:
    """As _show, for (JSON, object) pairs: the text needs what the JSON leaves out (metric locks)."""
    if args.json:
        return _show(args, [j for j, _ in pairs], str)
    try:
        for j, obj in pairs:
            print(text(j, obj))
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_stdout()
    return 0


ROUTE_GET_GRAMMAR: dict[str, tuple[str, Any]] = {
    "from": ("src", str), "oif": ("dev", str), "dev": ("dev", str), "iif": ("iif", str), "mark": ("mark", int),
    "fibmatch": ("fibmatch", True),
}


def cmd_route_get(args) -> int:
    if args.address == "fibmatch" and args.words:  # ip takes "route get fibmatch ADDR" too
        args.address, args.words = args.words[0], ["fibmatch", *args.words[1:]]
    kw = Words(args.words, "route get", args).parse(ROUTE_GET_GRAMMAR)
    try:
        ipaddress.ip_address(args.address)
    except ValueError as e:
        raise CliError(f"route get: {e}") from None
    with _rtnl("route get") as rt:
        r = rt.get_route(args.address, **kw)
        names = {l.index: l.ifname for l in rt.links()}
        return _show(args, [route_json(r, names, get=not kw.get("fibmatch"))], route_text)


# ---------------------------------------------------------------------------
# monitor
# ---------------------------------------------------------------------------
def event_json(ev, names: dict[int, str]) -> dict[str, Any]:
    """One monitor event as a JSON object (``{"event": "link"|"addr"|"route"|"resync", ...}``)."""
    from tunkit.netlink.events import AddressEvent, LinkEvent, Resync

    if isinstance(ev, LinkEvent):
        out = {"event": "link", "action": ev.action, "ifindex": ev.index, "ifname": ev.ifname,
               "up": ev.up, "running": ev.running, "mtu": ev.mtu}
        if ev.changed:
            out["changed"] = sorted(ev.changed)
        return out
    if isinstance(ev, AddressEvent):
        j = addr_info_json(ev.message)
        return {"event": "addr", "action": ev.action, "ifindex": ev.index, "dev": names.get(ev.index, f"if{ev.index}"), **j}
    if isinstance(ev, Resync):
        return {"event": "resync", "reason": ev.reason, "links": ev.links, "addresses": ev.addresses, "routes": ev.routes,
                "neighbours": ev.neighbours, "rules": ev.rules}
    if hasattr(ev, "neigh"):  # NeighEvent
        from tunkit.cli.neigh import neigh_json

        return {"event": "neigh", "action": ev.action, **neigh_json(ev.neigh, names)}
    if hasattr(ev, "rule"):  # RuleEvent
        from tunkit.cli.rule import rule_json

        return {"event": "rule", "action": ev.action, **rule_json(ev.rule)}
    return {"event": "route", "action": ev.action, **route_json(ev.route, names)}


def _event_text(j: dict[str, Any]) -> str:
    prefix = "Deleted " if j.get("action") == "removed" else ""
    if j["event"] == "link":
        state = ("UP" if j["up"] else "DOWN") + (",RUNNING" if j["running"] else "")
        changed = f" changed {','.join(j['changed'])}" if "changed" in j else ""
        return f"{prefix}link {j['ifindex']}: {j['ifname']} {state} mtu {j['mtu']}{changed}"
    if j["event"] == "addr":
        return f"{prefix}addr {j['dev']} {j['family']} {j['local']}/{j['prefixlen']} scope {j['scope']}"
    if j["event"] == "resync":
        return (f"resync ({j['reason']}): {j['links']} links, {j['addresses']} addresses, {j['routes']} routes, "
                f"{j['neighbours']} neighbours, {j['rules']} rules")
    if j["event"] in ("neigh", "rule"):
        from tunkit.cli.neigh import neigh_text
        from tunkit.cli.rule import rule_text

        body = {k: v for k, v in j.items() if k not in ("event", "action")}
        return prefix + (neigh_text(body) if j["event"] == "neigh" else rule_text(body))
    body = {k: v for k, v in j.items() if k not in ("event", "action")}
    return f"{prefix}route {route_text(body)}"


def cmd_monitor(args) -> int:
    objects = args.objects or ["link", "addr", "route"]
    if "all" in objects:
        objects = ["link", "addr", "route", "neigh", "rule"]
    bad = [o for o in objects if o not in ("link", "addr", "address", "route", "neigh", "rule")]
    if bad:
        raise CliError(f"monitor: unknown object(s) {', '.join(bad)}; want link, addr, route, neigh, rule")
    objects = ["addr" if o == "address" else o for o in objects]
    import time

    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    count = 0
    with _rtnl("monitor") as rt, rt.monitor(objects, initial=True) as mon:
        names = {l.index: l.ifname for l in rt.links()}
        while deadline is None or time.monotonic() < deadline:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            for ev in mon.events(wait):
                link = getattr(ev, "index", None)
                if link is not None and getattr(ev, "ifname", None):
                    names[link] = ev.ifname
                j = event_json(ev, names)
                try:
                    print(json.dumps(j, separators=(",", ":")) if args.json else _event_text(j), flush=True)
                except BrokenPipeError:  # the reader is gone
                    _quiet_stdout()
                    return 0
                count += 1
                if args.count and count >= args.count:
                    return 0
    return 0


# ---------------------------------------------------------------------------
# argparse wiring
# ---------------------------------------------------------------------------
LINK_EPILOG = """\
examples:
  tunkit link show                       every link, like 'ip link show'
  tunkit link show tk0 -j -d             one link as JSON with kind and details
  tunkit link add tk0 type veth peer name tk1
  tunkit link set tk0 up mtu 1400 txqlen 500 addrgenmode none
  tunkit link set tk1 netns /run/netns/blue
  tunkit link add br0 type bridge
  tunkit link set tk1 master br0 alias "uplink" promisc on
  tunkit link add vx0 type vxlan id 42 remote 192.0.2.2 local 192.0.2.1 dev tk0 dstport 4789
  tunkit link add m0 link tk0 type macvlan mode bridge
  tunkit link del tk0
"""
ADDR_EPILOG = """\
examples:
  tunkit addr add 192.0.2.1/24 dev tk0
  tunkit addr add 2001:db8::1/64 dev tk0 nodad
  tunkit addr replace 192.0.2.1/24 dev tk0 metric 100
  tunkit addr del 192.0.2.1/24 dev tk0
  tunkit addr show dev tk0 -j           'ip -j addr show' JSON
"""
ROUTE_EPILOG = """\
'metric' is the route's priority; 'mtu', 'advmss' (optionally 'lock'ed) go
into its metrics, as with ip.  -j prints ip's JSON: "metric" and
"metrics":[{"mtu":..,"advmss":..}] are two different things.  Numbers are
ASCII decimal or 0x hex: weight 1..256; mtu, advmss, metric, table 0..4294967295;
proto, scope, pref and type also take iproute2's names.  A device that does
not exist is bad input (exit 1).

examples:
  tunkit route add 198.51.100.0/24 via 192.0.2.2 dev tk0 metric 10 mtu 1400 advmss 1360
  tunkit route add 198.51.101.0/24 dev tk0 table 1000 mtu lock 1300
  tunkit route replace default via 192.0.2.254
  tunkit route add 198.51.102.0/24 nexthop via 192.0.2.2 weight 3 nexthop via 192.0.2.3 dev tk0 weight 1
  tunkit route append 198.51.103.0/24 via 192.0.2.4
  tunkit route del 198.51.100.0/24 dev tk0 metric 10
  tunkit route -6 add 2001:db8:1::/48 via 2001:db8::2 pref high
  tunkit route show table all -j
  tunkit route get 198.51.100.7 -j
"""
MONITOR_EPILOG = """\
Prints one line per event; with -j one JSON object per line (a JSON-lines
stream), e.g.
  {"event":"link","action":"changed","ifindex":3,"ifname":"tk0","up":true,"running":true,"mtu":1400,"changed":["mtu"]}
  {"event":"route","action":"added","dst":"198.51.100.0/24","dev":"tk0",...}
If the kernel drops notifications (buffer overflow) the state is re-read and a
{"event":"resync",...} line is followed by what changed meanwhile.

examples:
  tunkit monitor                       links, addresses and routes
  tunkit monitor neigh rule -j         neighbour states and FIB rules, JSON lines
  tunkit monitor all                   all five
  tunkit monitor route -j              routes only, JSON lines
  tunkit monitor link --count 1        exit after the first event
"""


def _arg_int(name: str, lo: int, hi: int) -> Callable[[str], int]:
    """An argparse ``type`` with parse_int's rules (argparse reports the error, exit 1)."""

    def parse(text: str) -> int:
        try:
            return parse_int(text, name, lo, hi)
        except CliError as e:
            raise argparse.ArgumentTypeError(str(e)) from None

    return parse


def _arg_seconds(text: str) -> float:
    import math

    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not 0 <= value < 1e9:
        raise argparse.ArgumentTypeError(f"--timeout {text!r} is not a number of seconds in 0..1e9")
    return value


def _family_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("-4", dest="ipv4", action="store_true", help="IPv4 only")
    g.add_argument("-6", dest="ipv6", action="store_true", help="IPv6 only")


def _usage_errors_exit_1(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """argparse exits 2 on a usage error; tunkit's convention is 1 (2 means the kernel refused)."""

    def error(message: str):
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(1)

    parser.error = error  # type: ignore[method-assign]
    return parser


def register(sub) -> None:
    _register(sub)


def _subparser(sub, name: str, help: str, **kw) -> argparse.ArgumentParser:
    return _usage_errors_exit_1(subparser(sub, name, help, **kw))


def _words_without_switch(args, attr: str, *switches: str) -> list[str]:
    """``args.words`` with the command's own ``switches`` taken out (they may follow the words, as with ip).

    Any of them found sets ``args.<attr>`` true, as if it had come before the words.
    """
    words = list(args.words)
    for switch in switches:
        while switch in words:
            words.remove(switch)
            setattr(args, attr, True)
    return words


def _register_object_command(sub, name: str, help: str, epilog: str, change_func, changes, listings,
                             flag: tuple[str, str, str]) -> None:
    """Register ``tunkit NAME [-4|-6] VERB WORDS...`` as rule, neigh and nexthop share it.

    ``changes`` are (verb, help) pairs run by ``change_func`` with ``verb`` set; ``listings`` are
    (name, func, help) triples that take ``-j``/``-p`` and the extra switch ``flag`` (short, long,
    help); a bare ``tunkit NAME`` runs the first listing with no words.
    """
    p = _subparser(sub, name, help, epilog=epilog)
    _family_flags(p)
    s = p.add_subparsers(dest=f"{name}_cmd", metavar="COMMAND")
    for verb, help_ in changes:
        q = _subparser(s, verb, help_, epilog=epilog)
        q.add_argument("words", nargs=argparse.REMAINDER, help=f"as with 'ip {name}'")
        q.set_defaults(func=change_func, verb=verb)
    short, long, flag_help = flag
    for cmd, func, help_ in listings:
        q = _subparser(s, cmd, help_, epilog=epilog)
        q.add_argument("words", nargs=argparse.REMAINDER)
        q.add_argument(short, long, action="store_true", help=flag_help)
        add_json_flags(q)
        q.set_defaults(func=func)
    p.set_defaults(func=listings[0][1], words=[], json=False, pretty=False, **{long.lstrip("-").replace("-", "_"): False})


def _register(sub) -> None:
    # link
    p = _subparser(sub, "link", "show and change network links (like 'ip link')", epilog=LINK_EPILOG)
    lsub = p.add_subparsers(dest="link_cmd", metavar="COMMAND")
    q = _subparser(lsub, "show", "list links", epilog=LINK_EPILOG)
    q.add_argument("dev", nargs="?", help="only this link")
    q.add_argument("-d", "--details", action="store_true", help="kind, queues, stats and more")
    add_json_flags(q)
    q.set_defaults(func=cmd_link_show)
    q = _subparser(lsub, "set", "change a link: up|down, mtu N, txqlen N, name NAME, address MAC, addrgenmode MODE, "
                                "netns NS, master BR|nomaster, alias TEXT, promisc on|off, allmulticast on|off",
                  epilog=LINK_EPILOG)
    q.add_argument("dev")
    q.add_argument("words", nargs=argparse.REMAINDER, help="changes, as with 'ip link set'")
    q.set_defaults(func=cmd_link_set)
    q = _subparser(lsub, "add", "create a link: NAME type veth peer name PEER | NAME type dummy|bridge | "
                                "NAME type vxlan id VNI [remote A] [local A] [dev D] [dstport P] | "
                                "NAME link DEV type macvlan mode MODE | NAME link DEV type vlan id VID | "
                                "NAME link DEV type ipvlan [mode l2|l3|l3s] [bridge|private|vepa] | "
                                "NAME type vrf table T | NAME type bond mode MODE | NAME type wireguard", epilog=LINK_EPILOG)
    q.add_argument("name")
    q.add_argument("words", nargs=argparse.REMAINDER)
    q.set_defaults(func=cmd_link_add)
    q = _subparser(lsub, "del", "delete a link", epilog=LINK_EPILOG)
    q.add_argument("dev")
    q.set_defaults(func=cmd_link_del)
    p.set_defaults(func=cmd_link_show, dev=None, details=False, json=False, pretty=False)

    # addr
    p = _subparser(sub, "addr", "show and change addresses (like 'ip addr')", epilog=ADDR_EPILOG)
    asub = p.add_subparsers(dest="addr_cmd", metavar="COMMAND")
    for verb, help_ in (("add", "add an address"), ("replace", "add or update an address"), ("del", "delete an address")):
        q = _subparser(asub, verb, f"{help_}: ADDR/PLEN dev DEV [nodad] [metric N] [label L] [peer P]", epilog=ADDR_EPILOG)
        q.add_argument("address", help="e.g. 192.0.2.1/24 or 2001:db8::1/64")
        q.add_argument("words", nargs=argparse.REMAINDER)
        q.set_defaults(func=cmd_addr_change, verb=verb)
    q = _subparser(asub, "show", "list addresses per link", epilog=ADDR_EPILOG)
    q.add_argument("words", nargs=argparse.REMAINDER, metavar="[dev] DEV", help="only this link")
    _family_flags(q)
    add_json_flags(q)
    q.set_defaults(func=_addr_show_entry)
    p.set_defaults(func=_addr_show_entry, words=[], json=False, pretty=False, ipv4=False, ipv6=False)

    # route
    p = _subparser(sub, "route", "show and change routes (like 'ip route')", epilog=ROUTE_EPILOG)
    _family_flags(p)
    rsub = p.add_subparsers(dest="route_cmd", metavar="COMMAND")
    for verb, help_ in (("add", "add a route"), ("replace", "add or replace a route"),
                        ("append", "add a route next to an equal one"), ("del", "delete a route")):
        q = _subparser(rsub, verb, f"{help_}: PREFIX [via A] [dev D] [metric N] [mtu N] [advmss N] [table T] ...",
                      epilog=ROUTE_EPILOG)
        q.add_argument("words", nargs=argparse.REMAINDER, help="as with 'ip route'")
        q.set_defaults(func=cmd_route_change, verb=verb)
    q = _subparser(rsub, "show", "list routes: [table ID|all] [dev DEV]", epilog=ROUTE_EPILOG)
    q.add_argument("words", nargs=argparse.REMAINDER)
    add_json_flags(q)
    q.set_defaults(func=cmd_route_show)
    q = _subparser(rsub, "get", "ask the kernel which route it uses: ADDR [from SRC] [oif DEV]", epilog=ROUTE_EPILOG)
    q.add_argument("address")
    q.add_argument("words", nargs=argparse.REMAINDER)
    add_json_flags(q)
    q.set_defaults(func=cmd_route_get)
    p.set_defaults(func=cmd_route_show, words=[], json=False, pretty=False)

    # monitor
    p = _subparser(sub, "monitor", "print link/address/route/neigh/rule events as they happen (-j: JSON lines)",
                   epilog=MONITOR_EPILOG)
    p.add_argument("objects", nargs="*", metavar="OBJECT",
                   help="link, addr, route, neigh, rule or all (default: link addr route)")
    p.add_argument("-j", "--json", action="store_true", help="one JSON object per event")
    p.add_argument("--count", type=_arg_int("--count", 0, 2**31 - 1), default=0, help="exit after N events")
    p.add_argument("--timeout", type=_arg_seconds, default=None, help="exit after SECONDS")
    p.set_defaults(func=cmd_monitor)


def _addr_show_entry(args) -> int:
    w = Words(args.words, "addr show", args)
    args.dev = None
    if w.peek() == "dev":
        w.next()
        args.dev = w.value("dev")
    elif w:
        args.dev = w.next()
    if w:
        raise CliError(f"addr show: unexpected argument {w.peek()!r}")
    return cmd_addr_show(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run 'python -m tunkit'")
