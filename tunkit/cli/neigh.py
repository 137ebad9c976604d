"""``tunkit neigh add|del|replace|change|show|flush``: ARP/NDP entries as ``ip neigh``; does I/O.

``tunkit neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev tk0`` makes a
PERMANENT entry (``nud STATE`` for another state); ``tunkit neigh add proxy
192.0.2.9 dev tk0`` a proxy entry.  ``show`` lists entries with their states
(``-s``: with cache timers); ``-j`` prints what ``ip -j neigh show`` prints.
``flush`` needs a selector, as with ip, and leaves PERMANENT and NOARP
entries unless ``nud`` names them.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tunkit.cli._common import CliError
from tunkit.cli.ip import Words, _family, _lookup, _mac, _register_object_command, _rtnl, _show, _u, _words_without_switch

_NUD_ORDER = ((0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"), (0x10, "PROBE"),
              (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT"))
_NUD_WORDS = {"permanent": 0x80, "reachable": 0x02, "stale": 0x04, "delay": 0x08, "probe": 0x10, "failed": 0x20,
              "noarp": 0x40, "incomplete": 0x01, "none": 0x00}
_NTF_PROXY, _NTF_ROUTER, _NTF_EXT_LEARNED, _NTF_OFFLOADED = 0x08, 0x80, 0x10, 0x20
_USER_HZ = 100


def neigh_json(n, names: dict[int, str], *, stats: bool = False, show_dev: bool = True) -> dict[str, Any]:
    """One entry as ``ip -j neigh show`` prints it (ip/ipneigh.c print_neigh)."""
    u = _u()
    out: dict[str, Any] = {}
    if n.dst is not None:
        out["dst"] = str(n.dst)
    if show_dev and n.index:
        out["dev"] = names.get(n.index, f"if{n.index}")
    if n.lladdr is not None:
        out["lladdr"] = _mac(n.lladdr)
    if n.flags & _NTF_ROUTER:
        out["router"] = None
    if n.flags & _NTF_PROXY:
        out["proxy"] = None
    if n.flags & _NTF_EXT_LEARNED:
        out["extern_learn"] = None
    if n.flags & _NTF_OFFLOADED:
        out["offload"] = None
    if stats:
        ci = n.cacheinfo
        if ci is not None:
            if ci.refcnt:
                out["refcnt"] = ci.refcnt
            out["used"], out["confirmed"], out["updated"] = ci.used // _USER_HZ, ci.confirmed // _USER_HZ, ci.updated // _USER_HZ
        if n.probes is not None:
            out["probes"] = n.probes
    if n.state:
        out["state"] = [name for bit, name in _NUD_ORDER if n.state & bit]
    if n.protocol:
        out["protocol"] = u.RTPROT_NAMES.get(n.protocol, str(n.protocol))
    return out


def neigh_text(j: dict[str, Any]) -> str:
    parts = [j.get("dst", "")]
    if "dev" in j:
        parts.append(f"dev {j['dev']}")
    if "lladdr" in j:
        parts.append(f"lladdr {j['lladdr']}")
    parts += [k for k in ("router", "proxy", "extern_learn", "offload") if k in j]
    if "used" in j:
        parts.append(f"used {j['used']}/{j['confirmed']}/{j['updated']}")
    if "probes" in j:
        parts.append(f"probes {j['probes']}")
    parts += j.get("state", [])
    if "protocol" in j:
        parts.append(f"proto {j['protocol']}")
    return " ".join(parts)


def _nud(w: Words, word: str) -> int:
    v = w.value(word)
    if v == "all":
        return 0x1FF  # every state, NUD_NONE (0) included (0x100)
    if v.lower() in _NUD_WORDS:
        return _NUD_WORDS[v.lower()]
    raise CliError(f"{w.what}: nud {v!r}: want one of {', '.join(_NUD_WORDS)} or all")



def _flags(args) -> list[str]:
    """The words with ``-s``/``--stats`` taken out (they may follow the words, as with ip)."""
    return _words_without_switch(args, "stats", "-s", "--stats")

def cmd_neigh_change(args) -> int:
    u = _u()
    w = Words(_flags(args), f"neigh {args.verb}", args)
    kw: dict[str, Any] = {}
    dst = None
    while w:
        word = w.next()
        if word == "lladdr":
            kw["lladdr"] = w.value(word)
        elif word == "dev":
            kw["dev"] = w.value(word)
        elif word == "nud":
            kw["state"] = _nud(w, word)
            if kw["state"] == 0x1FF:
                raise CliError(f"{w.what}: nud all is only a filter")
        elif word == "proxy":
            kw["proxy"] = True
            dst = w.value(word)
        elif word == "router":
            kw["router"] = True
        elif word == "extern_learn":
            kw["extern_learn"] = True
        elif word in ("protocol", "proto"):
            kw["protocol"] = _lookup(w.value(word), u.RTPROT_NAMES, f"{w.what}: protocol")
        elif word == "to" or dst is None:
            dst = w.value(word) if word == "to" else word
        else:
            raise CliError(f"{w.what}: unknown argument {word!r}")
    if dst is None:
        raise CliError(f"{w.what}: an address is required (ADDR lladdr LLADDR dev DEV)")
    if "dev" not in kw:
        raise CliError(f"{w.what}: 'dev DEV' is required")
    verb = {"del": "delete"}.get(args.verb, args.verb)
    with _rtnl(f"neigh {getattr(args, 'verb', 'change')}") as rt:
        try:
            msg = rt.neigh_message(dst, **kw)
        except ValueError as e:
            raise CliError(f"{w.what}: {e}") from None
        getattr(rt, f"{verb}_neigh")(msg)
    return 0


def _selector(w: Words) -> dict[str, Any]:
    sel: dict[str, Any] = {}
    while w:
        word = w.next()
        if word == "dev":
            sel["dev"] = w.value(word)
        elif word == "nud":
            sel["states"] = sel.get("states", 0) | _nud(w, word)
        elif word == "proxy":
            sel["proxy"] = True
        elif word == "to":
            sel["to"] = w.value(word)
        elif word == "all":
            sel["all"] = True
        else:
            try:
                ipaddress.ip_network(word, strict=False)
            except ValueError:
                raise CliError(f"{w.what}: unknown argument {word!r}") from None
            sel["to"] = word
    if "to" in sel:
        try:
            sel["to"] = ipaddress.ip_network(sel["to"], strict=False)
        except ValueError as e:
            raise CliError(f"{w.what}: to {sel['to']!r}: {e}") from None
    return sel


def _selected(n, sel: dict[str, Any], states: int) -> bool:
    if "to" in sel and (n.dst is None or n.dst.version != sel["to"].version or n.dst not in sel["to"]):
        return False
    if n.flags & (_NTF_PROXY | _NTF_EXT_LEARNED):
        return True
    if n.state:
        return bool(n.state & states)
    return bool(states & 0x100)  # NUD_NONE: only with 'nud all'


def cmd_neigh_show(args) -> int:
    sel = _selector(Words(_flags(args), "neigh show", args))
    states = sel.get("states", 0xFF & ~0x40)  # as ip: everything but NOARP entries
    with _rtnl("neigh show") as rt:
        names = {l.index: l.ifname for l in rt.links()}
        entries = rt.neighbours(_family(args), sel.get("dev"), proxy=bool(sel.get("proxy")))
        shown = [neigh_json(n, names, stats=args.stats, show_dev="dev" not in sel)
                 for n in entries if _selected(n, sel, states)]
        return _show(args, shown, neigh_text)


def cmd_neigh_flush(args) -> int:
    sel = _selector(Words(_flags(args), "neigh flush", args))
    if not sel:
        raise CliError("neigh flush: Flush requires arguments (dev DEV, to PREFIX, nud STATE, proxy or all)")
    states = sel.get("states", 0xFF & ~(0x80 | 0x40))  # as ip: all but PERMANENT and NOARP
    with _rtnl("neigh flush") as rt:
        rt.flush_neighbours(_family(args), sel.get("dev"), proxy=bool(sel.get("proxy")), states=states & 0xFF,
                            match=lambda n: _selected(n, sel, states))
    return 0


NEIGH_EPILOG = """\
examples:
  tunkit neigh add 192.0.2.2 lladdr 02:00:00:00:00:02 dev tk0           a PERMANENT entry
  tunkit neigh replace 2001:db8::2 lladdr 02:00:00:00:00:04 dev tk0 router nud reachable
  tunkit neigh add proxy 192.0.2.9 dev tk0                             answer ARP for it
  tunkit neigh del 192.0.2.2 dev tk0
  tunkit neigh show dev tk0 -j                                         'ip -j neigh show' JSON
  tunkit neigh show nud all -s                                         every state, with timers
  tunkit neigh flush dev tk0                                           all but PERMANENT/NOARP
"""


def register(sub) -> None:
    _register_object_command(
        sub, "neigh", "show and change ARP/NDP neighbour entries (like 'ip neigh')", NEIGH_EPILOG, cmd_neigh_change,
        (("add", "add an entry: ADDR lladdr LLADDR dev DEV [nud STATE] [router] | proxy ADDR dev DEV"),
         ("replace", "add or overwrite an entry"), ("change", "change an existing entry"),
         ("del", "delete an entry: ADDR dev DEV | proxy ADDR dev DEV")),
        (("show", cmd_neigh_show, "list entries: [dev DEV] [nud STATE|all] [proxy] [to PREFIX]"),
         ("flush", cmd_neigh_flush, "delete entries matching a selector")),
        ("-s", "--stats", "with used/confirmed/updated seconds and probes"))
