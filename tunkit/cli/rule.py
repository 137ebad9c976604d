"""``tunkit rule add|del|show|flush``: FIB rules in iproute2's words and ``ip -j`` JSON; does I/O.

The grammar is ``ip rule``'s: ``tunkit rule add from 192.0.2.0/24 table 1000
pref 100``, ``tunkit rule add fwmark 0x10/0xff iif tk0 lookup 200``,
``tunkit rule add not to 198.51.100.0/24 prohibit``.  ``-j`` prints what ``ip
-j rule show`` prints, key for key.  Without ``-6``, like ip, ``show`` and
``flush`` cover IPv4 rules and ``add`` takes the family of its prefixes.
"""

from __future__ import annotations

from typing import Any

from tunkit.cli._common import CliError, parse_int
from tunkit.cli.ip import Words, _family, _lookup, _register_object_command, _rtnl, _show, _u, _words_without_switch
from tunkit.cli.names import dsfield_name, dsfield_value, proto_name, proto_value, realm_text

# fib_rule_hdr.action -> iproute2's word (rtnl_rtntype_n2a for the drop actions)
_ACTION_WORDS = {6: "blackhole", 7: "unreachable", 8: "prohibit"}
_FIB_RULE_INVERT, _FIB_RULE_IIF_DETACHED, _FIB_RULE_OIF_DETACHED, _FIB_RULE_UNRESOLVED = 0x2, 0x8, 0x10, 0x4
_RTPROT_KERNEL = 2


def rule_json(r, details: bool = False) -> dict[str, Any]:
    """One rule as ``ip -j rule show`` prints it (ip/iprule.c print_rule)."""
    u = _u()
    host_len = 128 if r.family == u.AF_INET6 else 32
    out: dict[str, Any] = {"priority": r.priority if r.priority is not None else 0}
    if r.flags & _FIB_RULE_INVERT:
        out["not"] = None
    for key, net in (("src", r.src), ("dst", r.dst)):
        if net is not None:
            out[key] = str(net.network_address)
            if net.prefixlen != host_len:
                out[key + "len"] = net.prefixlen
        elif key == "src":
            out["src"] = "all"
    if r.tos:
        out["tos"] = dsfield_name(r.tos)
    if r.fwmark is not None or r.fwmask is not None:
        out["fwmark"] = hex(r.fwmark or 0)
        if r.fwmask is not None and r.fwmask != 0xFFFFFFFF:
            out["fwmask"] = hex(r.fwmask)
    if r.iifname is not None:
        out["iif"] = r.iifname
        if r.flags & _FIB_RULE_IIF_DETACHED:
            out["iif_detached"] = None
    if r.oifname is not None:
        out["oif"] = r.oifname
        if r.flags & _FIB_RULE_OIF_DETACHED:
            out["oif_detached"] = None
    if r.l3mdev:
        out["l3mdev"] = None
    if r.uid_range is not None:
        out["uid_start"], out["uid_end"] = r.uid_range
    if r.ip_proto is not None:
        out["ipproto"] = proto_name(r.ip_proto)
    for key, rng in (("sport", r.sport_range), ("dport", r.dport_range)):
        if rng is not None:
            if rng[0] == rng[1]:
                out[key] = rng[0]
            else:
                out[key + "_start"], out[key + "_end"] = rng
    if r.table:
        out["table"] = u.RT_TABLE_NAMES.get(r.table, str(r.table))
        if r.suppress_prefixlen is not None and r.suppress_prefixlen != 0xFFFFFFFF:
            out["suppress_prefixlen"] = r.suppress_prefixlen
        if r.suppress_ifgroup is not None and r.suppress_ifgroup != 0xFFFFFFFF:
            out["suppress_ifgroup"] = "default" if r.suppress_ifgroup == 0 else str(r.suppress_ifgroup)
    if r.realm is not None:
        frm, to = r.realm >> 16, r.realm & 0xFFFF
        if frm:
            out["flow_from"] = realm_text(frm)
        out["flow_to"] = realm_text(to)
    if r.action == 2:  # FR_ACT_GOTO
        out["goto"] = r.goto if r.goto is not None else "none"
        if r.flags & _FIB_RULE_UNRESOLVED:
            out["unresolved"] = None
    elif r.action == 3:  # FR_ACT_NOP
        out["nop"] = None
    elif r.action != 1:
        out["action"] = _ACTION_WORDS.get(r.action, str(r.action))
    if r.protocol is not None and ((r.protocol and r.protocol != _RTPROT_KERNEL) or details):
        out["protocol"] = u.RTPROT_NAMES.get(r.protocol, str(r.protocol))
    return out


def rule_text(j: dict[str, Any]) -> str:
    """A rule JSON object as ``ip rule show`` text."""
    parts = [f"{j['priority']}:\t" + ("not " if "not" in j else "") + "from " + j["src"]
             + (f"/{j['srclen']}" if "srclen" in j else "")]
    if "dst" in j:
        parts.append("to " + j["dst"] + (f"/{j['dstlen']}" if "dstlen" in j else ""))
    if "tos" in j:
        parts.append(f"tos {j['tos']}")
    if "fwmark" in j:
        parts.append(f"fwmark {j['fwmark']}" + (f"/{j['fwmask']}" if "fwmask" in j else ""))
    for key in ("iif", "oif"):
        if key in j:
            parts.append(f"{key} {j[key]}" + (" [detached]" if f"{key}_detached" in j else ""))
    if "l3mdev" in j:
        parts.append("lookup [l3mdev-table]")
    if "uid_start" in j:
        parts.append(f"uidrange {j['uid_start']}-{j['uid_end']}")
    if "ipproto" in j:
        parts.append(f"ipproto {j['ipproto']}")
    for key in ("sport", "dport"):
        if key in j:
            parts.append(f"{key} {j[key]}")
        elif f"{key}_start" in j:
            parts.append(f"{key} {j[key + '_start']}-{j[key + '_end']}")
    if "table" in j:
        parts.append(f"lookup {j['table']}")
        if "suppress_prefixlen" in j:
            parts.append(f"suppress_prefixlength {j['suppress_prefixlen']}")
        if "suppress_ifgroup" in j:
            parts.append(f"suppress_ifgroup {j['suppress_ifgroup']}")
    if "flow_to" in j:
        parts.append("realms " + (f"{j['flow_from']}/" if "flow_from" in j else "") + j["flow_to"])
    if "goto" in j:
        parts.append(f"goto {j['goto']}" + (" [unresolved]" if "unresolved" in j else ""))
    if "nop" in j:
        parts.append("nop")
    if "action" in j:
        parts.append(j["action"])
    if "protocol" in j:
        parts.append(f"proto {j['protocol']}")
    return " ".join(parts)


def _mark(w: Words, word: str) -> tuple[int, int | None]:
    v = w.value(word)
    mark, _, mask = v.partition("/")
    try:
        return parse_int(mark, "fwmark", 0, 0xFFFFFFFF), (parse_int(mask, "mask", 0, 0xFFFFFFFF) if mask else None)
    except CliError:
        raise CliError(f"{w.what}: fwmark {v!r}: want MARK or MARK/MASK, integers in 0..4294967295") from None


def _realms(w: Words, word: str) -> int:
    v = w.value(word)
    frm, _, to = v.rpartition("/")
    try:
        return (parse_int(frm or "0", "realm", 0, 0xFFFF) << 16) | parse_int(to, "realm", 0, 0xFFFF)
    except CliError:
        raise CliError(f"{w.what}: realms {v!r}: want [FROM/]TO, integers in 0..65535") from None


def parse_rule(w: Words) -> dict[str, Any]:
    """``ip rule`` words -> :meth:`Rtnl.rule_message` keywords."""
    u = _u()
    kw: dict[str, Any] = {}
    while w:
        word = w.next()
        if word == "not":
            kw["invert"] = True
        elif word == "from":
            kw["src"] = w.value(word)
        elif word == "to":
            kw["dst"] = w.value(word)
        elif word in ("tos", "dsfield"):
            v = w.value(word)
            kw["tos"] = dsfield_value(v, w.what)
        elif word == "fwmark":
            kw["fwmark"], mask = _mark(w, word)
            if mask is not None:
                kw["fwmask"] = mask
        elif word in ("realms", "realm"):
            kw["realm"] = _realms(w, word)
        elif word in ("table", "lookup"):
            kw["table"] = _lookup(w.value(word), u.RT_TABLE_NAMES, f"{w.what}: table", 0xFFFFFFFF)
        elif word == "suppress_prefixlength":
            kw["suppress_prefixlen"] = w.number(word)
        elif word == "suppress_ifgroup":
            v = w.value(word)
            kw["suppress_ifgroup"] = 0 if v == "default" else _number(w, word, v)
        elif word in ("dev", "iif"):
            kw["iif"] = w.value(word)
        elif word == "oif":
            kw["oif"] = w.value(word)
        elif word == "l3mdev":
            kw["l3mdev"] = True
        elif word == "uidrange":
            kw["uid_range"] = w.value(word)
        elif word == "ipproto":
            kw["ip_proto"] = proto_value(w.value(word), w.what)
        elif word in ("sport", "dport"):
            kw[word] = w.value(word)
        elif word in ("pref", "priority", "preference", "order"):
            kw["priority"] = w.number(word)
        elif word == "goto":
            kw["goto"] = w.number(word)
        elif word == "nop":
            kw["action"] = "nop"
        elif word in ("blackhole", "unreachable", "prohibit"):
            kw["action"] = word
        elif word == "type":
            v = w.value(word)
            kw["action"] = {"unicast": "to_tbl"}.get(v, v)
        elif word in ("protocol", "proto"):
            kw["protocol"] = _lookup(w.value(word), u.RTPROT_NAMES, f"{w.what}: protocol")
        else:
            raise CliError(f"{w.what}: unknown argument {word!r}")
    return kw


def _number(w: Words, word: str, v: str) -> int:
    return parse_int(v, f"{w.what}: {word}", 0, 0xFFFFFFFF)



def _flags(args) -> list[str]:
    """The words with ``-d``/``--details`` taken out (they may follow the words, as with ip)."""
    return _words_without_switch(args, "details", "-d", "--details")

def cmd_rule_change(args) -> int:
    w = Words(_flags(args), f"rule {args.verb}", args)
    kw = parse_rule(w)
    if not kw:
        raise CliError(f'rule {args.verb}: "ip rule {args.verb}" requires arguments')
    verb = "delete" if args.verb == "del" else "add"
    family = _family(args) or None
    with _rtnl(f"rule {getattr(args, 'verb', 'change')}") as rt:
        try:
            msg = rt.rule_message(verb, family=family, **kw)
        except ValueError as e:
            raise CliError(str(e)) from None
        (rt.delete_rule if verb == "delete" else rt.add_rule)(msg)
    return 0


def _matcher(kw: dict[str, Any], rt, family: int):
    """A filter on decoded rules from ``ip rule show`` selector words (those ip filters on)."""
    if not kw:
        return None
    want = rt.rule_message("delete", family=family, **kw)
    checks = []
    for key in ("priority", "iifname", "oifname", "fwmark", "fwmask", "goto", "realm", "uid_range", "ip_proto",
                "sport_range", "dport_range", "protocol", "suppress_prefixlen", "table"):
        v = getattr(want, key)
        if v is not None:
            checks.append(lambda r, key=key, v=v: getattr(r, key) == v)
    for key in ("src", "dst"):
        v = getattr(want, key)
        if v is not None:
            checks.append(lambda r, key=key, v=v: getattr(r, key) == v)
    if want.tos:
        checks.append(lambda r: r.tos == want.tos)
    if kw.get("invert"):
        checks.append(lambda r: bool(r.flags & _FIB_RULE_INVERT))
    if "action" in kw:
        checks.append(lambda r: r.action == want.action)
    return lambda r: all(c(r) for c in checks)


def cmd_rule_show(args) -> int:
    u = _u()
    kw = parse_rule(Words(_flags(args), "rule show", args))
    family = _family(args) or u.AF_INET  # as ip: IPv4 unless -6
    with _rtnl("rule show") as rt:
        try:
            match = _matcher(kw, rt, family)
        except ValueError as e:
            raise CliError(f"rule show: {e}") from None
        rules = [r for r in rt.rules(family) if match is None or match(r)]
        return _show(args, [rule_json(r, args.details) for r in rules], rule_text)


def cmd_rule_flush(args) -> int:
    u = _u()
    kw = parse_rule(Words(_flags(args), "rule flush", args))
    family = _family(args) or u.AF_INET
    with _rtnl("rule flush") as rt:
        try:
            match = _matcher(kw, rt, family)
        except ValueError as e:
            raise CliError(f"rule flush: {e}") from None
        rt.flush_rules(family, match)
    return 0


RULE_EPILOG = """\
examples:
  tunkit rule add from 192.0.2.0/24 table 1000 pref 100
  tunkit rule add fwmark 0x10/0xff iif tk0 lookup 200
  tunkit rule add ipproto tcp dport 80 uidrange 1000-2000 table 8
  tunkit rule add not to 198.51.100.0/24 prohibit pref 300
  tunkit rule add table main suppress_prefixlength 0
  tunkit rule -6 add from 2001:db8::/32 table 1000
  tunkit rule del pref 100
  tunkit rule show -j               'ip -j rule show' JSON
  tunkit rule flush table 1000      delete the matching rules (no selector: all but priority 0)
"""


def register(sub) -> None:
    _register_object_command(
        sub, "rule", "show and change FIB rules (like 'ip rule')", RULE_EPILOG, cmd_rule_change,
        (("add", "add a rule: [not] [from P] [to P] [fwmark M[/K]] [iif D] [oif D] ... "
                 "[table T | goto N | nop | blackhole | unreachable | prohibit] [pref N]"),
         ("del", "delete the first rule matching the selector")),
        (("show", cmd_rule_show, "list rules, optionally only those matching a selector"),
         ("list", cmd_rule_show, "the same as show"),
         ("flush", cmd_rule_flush, "delete the rules matching a selector (all but priority 0)")),
        ("-d", "--details", "also the protocol of every rule"))
