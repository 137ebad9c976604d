"""Typed control messages between a node and its worker processes, and their one codec; pure logic, no I/O.

A node talks to each worker over a socketpair, one JSON object per line.
Every message kind is a NamedTuple here; :func:`encode` turns one into a
line and :func:`decode` is the only way back: it returns a message or raises
:class:`ControlError` (a :class:`~tunkit.errors.DecodeError`) naming what is
wrong (unknown ``op``, a missing or extra field, a value of the wrong type or
out of range), so a worker logs the reason and keeps serving.

==============  ============================================================
``configure``   :class:`WorkerConfig`: the first message, a worker's whole set-up
``reconfigure`` :class:`Reconfigure`: new peers, routes and MTU (a reload)
``mtu``         :class:`SetMtu`: the TUN's MTU changed
``route``       :class:`AddRoute`: mirror a kernel route
``unroute``     :class:`RemoveRoute`: stop mirroring a prefix
``status``      :class:`StatusRequest`: answer with the tunnel's status line
==============  ============================================================
"""

from __future__ import annotations

import ipaddress
import json
from typing import NamedTuple

from tunkit.errors import ConfigError, DecodeError
from tunkit.overlay.spec import PeerSpec, RouteSpec
from tunkit.overlay.options import TunnelOptions

__all__ = [
    "ControlError", "WorkerConfig", "Reconfigure", "SetMtu", "AddRoute", "RemoveRoute", "StatusRequest",
    "encode", "decode", "MAX_LINE",
]

MAX_LINE = 16 << 20  # a control line longer than this is refused (a reload of a very large config fits)


class ControlError(DecodeError):
    """A control line that is not a valid message; the text says why."""


class WorkerConfig(NamedTuple):
    index: int  # type: ignore[assignment]  # the worker's queue index (shadows tuple.index on purpose), also its overlay sender index
    listen: tuple[str, int]  # the UDP address every worker binds (SO_REUSEPORT)
    options: TunnelOptions
    peers: tuple[PeerSpec, ...]
    routes: tuple[RouteSpec, ...]


class Reconfigure(NamedTuple):
    peers: tuple[PeerSpec, ...]
    routes: tuple[RouteSpec, ...]
    mtu: int | None


class SetMtu(NamedTuple):
    mtu: int


class AddRoute(NamedTuple):
    route: RouteSpec


class RemoveRoute(NamedTuple):
    prefix: ipaddress.IPv4Network | ipaddress.IPv6Network


class StatusRequest(NamedTuple):
    pass


Message = WorkerConfig | Reconfigure | SetMtu | AddRoute | RemoveRoute | StatusRequest


# -- encoding ------------------------------------------------------------------------------
def _peer_json(p: PeerSpec) -> dict:
    return {"name": p.name, "endpoint": [p.endpoint[0], p.endpoint[1]], "prefixes": [str(x) for x in p.prefixes],
            "key": p.key.hex() if p.key else None, "mtu": p.mtu}


def _route_json(r: RouteSpec) -> dict:
    return {"prefix": str(r.route), "via": [[str(g), w] for g, w in r.via], "mtu": r.mtu}


def encode(msg: Message) -> bytes:
    """One message as a JSON line (ending in a newline)."""
    if isinstance(msg, WorkerConfig):
        d = {"op": "configure", "index": msg.index, "listen": list(msg.listen), "options": msg.options.to_json(),
             "peers": [_peer_json(p) for p in msg.peers], "routes": [_route_json(r) for r in msg.routes]}
    elif isinstance(msg, Reconfigure):
        d = {"op": "reconfigure", "peers": [_peer_json(p) for p in msg.peers],
             "routes": [_route_json(r) for r in msg.routes], "mtu": msg.mtu}
    elif isinstance(msg, SetMtu):
        d = {"op": "mtu", "mtu": msg.mtu}
    elif isinstance(msg, AddRoute):
        d = {"op": "route", **_route_json(msg.route)}
    elif isinstance(msg, RemoveRoute):
        d = {"op": "unroute", "prefix": str(msg.prefix)}
    elif isinstance(msg, StatusRequest):
        d = {"op": "status"}
    else:
        raise TypeError(f"not a control message: {msg!r}")
    return json.dumps(d).encode() + b"\n"


# -- decoding ------------------------------------------------------------------------------
def _fields(d: dict, op: str, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> None:
    missing = [k for k in required if k not in d]
    extra = sorted(set(d) - set(required) - set(optional) - {"op"})
    if missing:
        raise ControlError(f"control {op}: missing {', '.join(missing)}")
    if extra:
        raise ControlError(f"control {op}: unknown field {', '.join(extra)}")


def _want(ok: bool, op: str, what: str, value) -> None:
    if not ok:
        raise ControlError(f"control {op}: bad {what} {value!r}")


def _int(v, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _mtu(v, op: str) -> int | None:
    _want(v is None or _int(v, 68, 65535), op, "mtu", v)
    return v


def _peer(d, op: str) -> PeerSpec:
    _want(isinstance(d, dict), op, "peer", d)
    _fields(d, op + " peer", ("name", "endpoint", "prefixes", "key", "mtu"))
    name, ep, key = d["name"], d["endpoint"], d["key"]
    _want(isinstance(name, str) and name != "", op, "peer name", name)
    _want(isinstance(ep, list) and len(ep) == 2 and isinstance(ep[0], str) and _int(ep[1], 0, 65535), op,
          "peer endpoint", ep)
    _want(key is None or isinstance(key, str), op, "peer key", "...")
    _want(isinstance(d["prefixes"], list), op, "peer prefixes", d["prefixes"])
    try:
        ipaddress.ip_address(ep[0])
        prefixes = tuple(ipaddress.ip_network(x) for x in d["prefixes"])
        raw = bytes.fromhex(key) if key else None
    except (TypeError, ValueError) as e:
        raise ControlError(f"control {op}: peer {name}: {e}") from None
    return PeerSpec(name, (ep[0], ep[1]), prefixes, raw, _mtu(d["mtu"], op))


def _route(d, op: str) -> RouteSpec:
    _want(isinstance(d, dict), op, "route", d)
    _fields(d, op + " route", ("prefix", "via"), ("mtu",))
    via = d["via"]
    _want(isinstance(via, list) and all(isinstance(v, list) and len(v) == 2 and _int(v[1], 1, 256) for v in via),
          op, "route via", via)
    try:
        return RouteSpec(ipaddress.ip_network(d["prefix"]), tuple((ipaddress.ip_address(g), w) for g, w in via),
                         _mtu(d.get("mtu"), op))
    except (TypeError, ValueError) as e:
        raise ControlError(f"control {op}: route {d.get('prefix')!r}: {e}") from None


def _list(v, op: str, what: str) -> list:
    _want(isinstance(v, list), op, what, v)
    return v


def decode(line: bytes | str) -> Message:
    """The message on one line; :class:`ControlError` (with the reason) for anything else."""
    if len(line) > MAX_LINE:
        raise ControlError(f"control line of {len(line)} bytes (at most {MAX_LINE})")
    try:
        d = json.loads(line)
    except (ValueError, RecursionError) as e:  # JSONDecodeError and bad UTF-8 are ValueErrors
        raise ControlError(f"control line is not JSON: {e}") from None
    if not isinstance(d, dict):
        raise ControlError(f"control line is a {type(d).__name__}, not an object")
    op = d.get("op")
    if op == "status":
        _fields(d, op, ())
        return StatusRequest()
    if op == "mtu":
        _fields(d, op, ("mtu",))
        _want(_int(d["mtu"], 68, 65535), op, "mtu", d["mtu"])
        return SetMtu(d["mtu"])
    if op == "unroute":
        _fields(d, op, ("prefix",))
        try:
            return RemoveRoute(ipaddress.ip_network(d["prefix"]))
        except (TypeError, ValueError) as e:
            raise ControlError(f"control unroute: {e}") from None
    if op == "route":
        return AddRoute(_route(d, op))
    if op == "reconfigure":
        _fields(d, op, ("peers", "routes", "mtu"))
        return Reconfigure(tuple(_peer(p, op) for p in _list(d["peers"], op, "peers")),
                           tuple(_route(r, op) for r in _list(d["routes"], op, "routes")), _mtu(d["mtu"], op))
    if op == "configure":
        _fields(d, op, ("index", "listen", "options", "peers", "routes"))
        _want(_int(d["index"], 0, 255), op, "index", d["index"])
        ls = d["listen"]
        _want(isinstance(ls, list) and len(ls) == 2 and isinstance(ls[0], str) and _int(ls[1], 0, 65535), op,
              "listen", ls)
        try:
            options = TunnelOptions.from_json(d["options"])
        except (ConfigError, TypeError) as e:
            raise ControlError(f"control configure: {e}") from None
        return WorkerConfig(d["index"], (ls[0], ls[1]), options,
                            tuple(_peer(p, op) for p in _list(d["peers"], op, "peers")),
                            tuple(_route(r, op) for r in _list(d["routes"], op, "routes")))
    raise ControlError(f"unknown control op {op!r}")
