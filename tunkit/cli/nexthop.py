"""``tunkit nexthop add|replace|del|show|flush``: nexthop objects and groups as ``ip nexthop``; does I/O.

``tunkit nexthop add id 1 via 192.0.2.2 dev tk0``, ``tunkit nexthop add id 10
group 1,3/2`` (members ``ID[,WEIGHT]`` joined by ``/``, weights 1..256),
``tunkit route add 198.51.100.0/24 nhid 10``.  ``-j`` prints what ``ip -j
nexthop show`` prints.
"""

from __future__ import annotations

from typing import Any

from tunkit.cli._common import CliError, parse_int
from tunkit.cli.ip import _RTNH_FLAG_NAMES, Words, _family, _lookup, _register_object_command, _rtnl, _show, _u, _words_without_switch

_USER_HZ = 100


def nexthop_json(n, names: dict[int, str], details: bool = False) -> dict[str, Any]:
    """One nexthop object as ``ip -j nexthop show`` prints it (ip/ipnexthop.c print_nexthop)."""
    u = _u()
    out: dict[str, Any] = {}
    if n.id is not None:
        out["id"] = n.id
    if n.group is not None:
        out["group"] = [{"id": m.id, **({"weight": m.weight} if m.weight != 1 else {})} for m in n.group]
    if n.group_type == 1:
        out["type"] = "resilient"
    if n.res_group is not None:
        r = n.res_group
        out["resilient_args"] = {"buckets": r.buckets or 0, "idle_timer": (r.idle_timer or 0) // _USER_HZ,
                                 "unbalanced_timer": (r.unbalanced_timer or 0) // _USER_HZ,
                                 "unbalanced_time": (r.unbalanced_time or 0) // _USER_HZ}
    if n.gateway is not None:
        out["gateway"] = str(n.gateway)
    if n.oif:
        out["dev"] = names.get(n.oif, f"if{n.oif}")
    if n.scope != u.RtScope.UNIVERSE or details:
        out["scope"] = u.RT_SCOPE_NAMES.get(n.scope, str(n.scope))
    if n.blackhole:
        out["blackhole"] = None
    if n.protocol or details:
        out["protocol"] = u.RTPROT_NAMES.get(n.protocol, str(n.protocol))
    out["flags"] = [name for bit, name in _RTNH_FLAG_NAMES if n.flags & bit]
    if n.fdb:
        out["fdb"] = None
    return out


def nexthop_text(j: dict[str, Any]) -> str:
    parts = [f"id {j['id']}"]
    if "group" in j:
        parts.append("group " + "/".join(str(m["id"]) + (f",{m['weight']}" if "weight" in m else "") for m in j["group"]))
    if "type" in j:
        parts.append(f"type {j['type']}")
    if "resilient_args" in j:
        parts += [f"{k} {v}" for k, v in j["resilient_args"].items()]
    if "gateway" in j:
        parts.append(f"via {j['gateway']}")
    for key, word in (("dev", "dev"), ("scope", "scope")):
        if key in j:
            parts.append(f"{word} {j[key]}")
    if "blackhole" in j:
        parts.append("blackhole")
    if "protocol" in j:
        parts.append(f"proto {j['protocol']}")
    parts += j["flags"]
    if "fdb" in j:
        parts.append("fdb")
    return " ".join(parts)


def _group(w: Words, word: str) -> list[tuple[int, int]]:
    v = w.value(word)
    members = []
    for part in v.split("/"):
        nhid, _, weight = part.partition(",")
        try:
            members.append((parse_int(nhid, "id", 1, 0xFFFFFFFF), parse_int(weight, "weight", 1, 256) if weight else 1))
        except CliError as e:
            raise CliError(f"{w.what}: group {v!r}: {e} (want ID[,WEIGHT]/ID[,WEIGHT]...)") from None
    return members



def _flags(args) -> list[str]:
    """The words with ``-d``/``--details`` taken out (they may follow the words, as with ip)."""
    return _words_without_switch(args, "details", "-d", "--details")

def cmd_nexthop_change(args) -> int:
    u = _u()
    w = Words(_flags(args), f"nexthop {args.verb}", args)
    kw: dict[str, Any] = {}
    nhid = None
    while w:
        word = w.next()
        if word == "id":
            nhid = w.number(word)
        elif word == "via":
            v = w.value(word)
            kw["gateway"] = w.value(word) if v in ("inet", "inet6") else v
        elif word == "dev":
            kw["dev"] = w.value(word)
        elif word == "onlink":
            kw["onlink"] = True
        elif word == "blackhole":
            kw["blackhole"] = True
        elif word == "fdb":
            kw["fdb"] = True
        elif word == "group":
            kw["group"] = _group(w, word)
        elif word == "type":
            v = w.value(word)
            if v not in ("mpath", "resilient"):
                raise CliError(f"{w.what}: type {v!r}: want mpath or resilient")
            kw["group_type"] = 0 if v == "mpath" else 1
        elif word in ("buckets", "idle_timer", "unbalanced_timer"):
            kw[word] = w.number(word)
        elif word in ("protocol", "proto"):
            kw["protocol"] = _lookup(w.value(word), u.RTPROT_NAMES, f"{w.what}: protocol")
        else:
            raise CliError(f"{w.what}: unknown argument {word!r}")
    if nhid is None:
        raise CliError(f"{w.what}: 'id ID' is required")
    family = _family(args) or None
    with _rtnl(f"nexthop {getattr(args, 'verb', 'change')}") as rt:
        if args.verb == "del":
            rt.delete_nexthop(nhid)
            return 0
        try:
            msg = rt.nexthop_message(nhid, family=family, **kw)
        except ValueError as e:
            raise CliError(f"{w.what}: {e}") from None
        (rt.replace_nexthop if args.verb == "replace" else rt.add_nexthop)(msg)
    return 0


def _selector(w: Words) -> dict[str, Any]:
    sel: dict[str, Any] = {}
    while w:
        word = w.next()
        if word == "id":
            sel["id"] = w.number(word)
        elif word == "dev":
            sel["dev"] = w.value(word)
        elif word == "groups":
            sel["groups"] = True
        else:
            raise CliError(f"{w.what}: unknown argument {word!r}")
    return sel


def cmd_nexthop_show(args) -> int:
    sel = _selector(Words(_flags(args), "nexthop show", args))
    with _rtnl("nexthop show") as rt:
        names = {l.index: l.ifname for l in rt.links()}
        if "id" in sel:
            found = [rt.nexthop(sel["id"])]
        else:
            found = rt.nexthops(family=_family(args), groups=bool(sel.get("groups")), link=sel.get("dev"))
        return _show(args, [nexthop_json(n, names, args.details) for n in found], nexthop_text)


def cmd_nexthop_flush(args) -> int:
    sel = _selector(Words(_flags(args), "nexthop flush", args))
    with _rtnl("nexthop flush") as rt:
        idx = rt.index(sel["dev"]) if "dev" in sel else None
        rt.flush_nexthops(lambda n: (idx is None or n.oif == idx) and (not sel.get("groups") or n.group is not None)
                          and ("id" not in sel or n.id == sel["id"]))
    return 0


NEXTHOP_EPILOG = """\
examples:
  tunkit nexthop add id 1 via 192.0.2.2 dev tk0
  tunkit nexthop add id 2 via 192.0.2.3 dev tk0 onlink
  tunkit nexthop add id 10 group 1,3/2                   weights 3 and 1
  tunkit nexthop add id 11 group 1/2 type resilient buckets 32
  tunkit route add 198.51.100.0/24 nhid 10
  tunkit nexthop show -j                                 'ip -j nexthop show' JSON
  tunkit nexthop del id 10
  tunkit nexthop flush
"""


def register(sub) -> None:
    _register_object_command(
        sub, "nexthop", "show and change nexthop objects and groups (like 'ip nexthop')", NEXTHOP_EPILOG,
        cmd_nexthop_change,
        (("add", "add: id ID [via ADDR] [dev DEV] [onlink] | id ID blackhole | id ID group ID[,W]/..."),
         ("replace", "add or replace a nexthop object"), ("del", "delete: id ID")),
        (("show", cmd_nexthop_show, "list nexthop objects: [id ID] [dev DEV] [groups]"),
         ("list", cmd_nexthop_show, "the same as show"),
         ("flush", cmd_nexthop_flush, "delete nexthop objects: [dev DEV] [groups]")),
        ("-d", "--details", "with scope and protocol"))
