"""Typed peer and route specs the tunnel consumes, and the one set of rules a peer/route set obeys; pure (no I/O).

:class:`PeerSpec` and :class:`RouteSpec` are what :class:`tunkit.overlay.tunnel.Tunnel`
runs on.  A configuration file is validated into them by :mod:`tunkit.app.config`
(``tunkit check``, ``tunkit up`` and every reload); an API user builds them
directly.  Either way the rules on a peer/route *set* are written once, here,
in :func:`problems`:

* a peer's name is 1-64 characters of ``A-Z a-z 0-9 _ . -`` and unique;
* with authentication on, every peer has a key of :data:`~tunkit.overlay.wire.KEY_LEN` (32) bytes,
  what ``tunkit genkey`` makes (a 45-byte key is a key file's base64 text read raw);
* an endpoint is an IP address and a port 1..65535, reachable from the
  socket's family (no IPv6 endpoint on an IPv4 socket), and no two peers
  share one (compared as the socket reports them, so ``2001:DB8::1`` and
  ``2001:db8::1``, or ``198.51.100.2`` and ``::ffff:198.51.100.2``, are one);
* every peer owns at least one prefix (prefixes of different peers may
  overlap here: the longest match routes; a configuration file refuses
  overlaps, see :mod:`tunkit.app.config`);
* every gateway of a route lies in some peer's prefixes, weights are
  1..2^31-1, and the gateways of one route are different peers: three
  gateway addresses inside one peer's prefix would all reach that one peer,
  so ECMP over them would be a no-op, and it is refused rather than
  silently collapsed (see the README's config reference).

Each problem carries a *where* tuple (``("peers", 1, "endpoint")``,
``("routes", 0, "via", 2, "weight")``) so that the config layer can name the
file's key path; :func:`check_config` raises them as one
:class:`~tunkit.errors.ConfigError`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from tunkit.routing.ecmp import MAX_WEIGHT
from tunkit.errors import ConfigError
from tunkit.overlay.wire import KEY_LEN
from tunkit.routing.trie import PrefixTable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PEER_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Where = tuple  # a path into the peer/route set: ("peers", i, field...) or ("routes", i, field...)
Problem = tuple  # (where, message)


@dataclass(frozen=True)
class PeerSpec:
    """A peer: its underlay endpoint, the overlay prefixes it owns, its key."""

    name: str
    endpoint: tuple[str, int]  # underlay (address, port), IPv4 or IPv6
    prefixes: tuple[IPNetwork, ...]
    key: bytes | None = field(default=None, repr=False)  # None only in insecure mode
    mtu: int | None = None  # largest inner packet toward this peer; None: the tunnel's mtu


@dataclass(frozen=True)
class RouteSpec:
    """A network behind one or several gateway peers (``unsafe_routes``)."""

    route: IPNetwork
    via: tuple[tuple[IPAddress, int], ...]  # (gateway overlay address, weight)
    mtu: int | None = None


def render(where: Where) -> str:
    """``("routes", 0, "via", 2, "weight")`` -> ``routes[0].via[2].weight``."""
    out = ""
    for part in where:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def sockaddr(endpoint: tuple[str, int], v6sock: bool) -> tuple:
    """The address ``recvfrom`` reports for ``endpoint`` on a UDP socket of the given family.

    Raises ``ValueError`` for something that is not an address and port, or an
    IPv6 endpoint on an IPv4 socket.
    """
    host, port = endpoint
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"port {port!r} is not 1..65535")
    try:
        a = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if v6sock:
        if a.version == 4:
            a = ipaddress.IPv6Address("::ffff:" + str(a))
        return (str(a), port, 0, 0)
    if a.version == 6:
        raise ValueError(f"{fmt_endpoint(endpoint)}: an IPv6 endpoint needs an IPv6 listen address")
    return (str(a), port)


def fmt_endpoint(ep: tuple[str, int]) -> str:
    host, port = ep
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


def problems(peers: Sequence[PeerSpec], routes: Sequence[RouteSpec] = (), *, insecure: bool = False,
             v6sock: bool = False, table_factory: Callable[[], Any] | None = None,
             wireguard: bool = False) -> tuple[list[Problem], list]:
    """Every rule on a peer/route set: ``(problems, socket addresses)``; pure.

    ``wireguard``: the set of a WireGuard-mode configuration: keys are not
    checked here (the engine's ``settings.validate`` checks public keys) and a
    peer's endpoint may be ``None`` (it may only initiate to us).

    ``problems`` is a list of ``(where, message)``; the socket addresses (one
    per peer, ``None`` where the endpoint is bad) are normalised for the
    socket's family, as :meth:`Tunnel.reconfigure` keys its peers by them.
    """
    out: list[Problem] = []
    table = (table_factory or PrefixTable)()  # prefix -> peer index, for the gateway rule
    names: dict[str, int] = {}
    owners: dict[tuple, int] = {}
    addrs: list = []
    for i, spec in enumerate(peers):
        if not isinstance(spec.name, str) or not PEER_NAME_RE.match(spec.name):
            out.append((("peers", i, "name"), f"{spec.name!r} must be 1-64 characters of A-Z a-z 0-9 _ . -"))
        elif spec.name in names:
            out.append((("peers", i, "name"), f"{spec.name!r} is already the name of peers[{names[spec.name]}]"))
        else:
            names[spec.name] = i
        if not insecure and not wireguard:
            if not spec.key:
                out.append((("peers", i, "key"), f"peer {spec.name}: no key (authentication is on; set a key "
                                                 "or insecure mode)"))
            elif not isinstance(spec.key, (bytes, bytearray)) or len(spec.key) != KEY_LEN:
                # the length or the type, never the value: this message is logged
                what = (f"a {len(spec.key)}-byte key" if isinstance(spec.key, (bytes, bytearray))
                        else f"a key of type {type(spec.key).__name__}")
                out.append((("peers", i, "key"), f"peer {spec.name}: {what}; keys are {KEY_LEN} bytes (a key file "
                                                 "holds base64: read it with tunkit.app.config.read_key_file)"))
        addr = None
        try:
            if spec.endpoint is not None or not wireguard:
                addr = sockaddr(spec.endpoint, v6sock)
        except (TypeError, ValueError) as e:
            out.append((("peers", i, "endpoint"), str(e)))
        if addr is not None:
            if addr in owners:
                j = owners[addr]
                out.append((("peers", i, "endpoint"), f"{fmt_endpoint(spec.endpoint)} is also the endpoint of peer "
                                                      f"{peers[j].name!r} (peers[{j}]): each peer needs its own"))
            else:
                owners[addr] = i
        addrs.append(addr)
        if not spec.prefixes:
            out.append((("peers", i, "prefixes"), "must list at least one prefix (the peer's overlay address)"))
        for j, pfx in enumerate(spec.prefixes):
            if not isinstance(pfx, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                out.append((("peers", i, "prefixes", j), f"{pfx!r} is not an ipaddress network"))
                continue
            table.insert(pfx, i)  # overlapping prefixes: the longest match routes (the file refuses overlaps)
    for i, r in enumerate(routes):
        out += _route_problems(i, r, table, peers)
    return out, addrs


def _route_problems(i: int, r: RouteSpec, table, peers: Sequence[PeerSpec]) -> list[Problem]:
    out: list[Problem] = []
    if not r.via:
        return [(("routes", i, "via"), f"route {r.route}: needs at least one gateway")]
    by_peer: dict[int, tuple[int, IPAddress]] = {}
    for j, (gw, weight) in enumerate(r.via):
        if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= MAX_WEIGHT:
            out.append((("routes", i, "via", j, "weight"), f"{weight!r} is not an integer weight in 1..{MAX_WEIGHT}"))
        try:
            addr = ipaddress.ip_address(gw)
        except ValueError:
            out.append((("routes", i, "via", j), f"{gw!r} is not an IP address"))
            continue
        owner = table.lookup(addr.packed)
        if owner is None:
            out.append((("routes", i, "via", j), f"{addr} belongs to no peer's prefixes: no peer could carry "
                                                 f"route {r.route}"))
            continue
        if owner in by_peer:
            k, first = by_peer[owner]
            if first == addr:
                out.append((("routes", i, "via", j), f"{addr} is listed twice"))
            else:
                out.append((("routes", i, "via", j),
                            f"{addr} and {first} (via[{k}]) both belong to peer {peers[owner].name!r}: the gateways "
                            "of a route must be different peers (give each gateway host its own peer entry)"))
            continue
        by_peer[owner] = (j, addr)
    return out


def check_config(peers: Iterable[PeerSpec], routes: Iterable[RouteSpec] = (), *, insecure: bool = False,
                 v6sock: bool = False, table_factory: Callable[[], Any] | None = None) -> list:
    """Raise :class:`~tunkit.errors.ConfigError` listing every broken rule; else each peer's socket address.

    The same rules :mod:`tunkit.app.config` applies to a file (it calls
    :func:`problems`), for callers that build specs themselves.
    """
    found, addrs = problems(list(peers), list(routes), insecure=insecure, v6sock=v6sock, table_factory=table_factory)
    if found:
        if len(found) == 1:
            where, msg = found[0]
            err = ConfigError(msg, key=render(where))
        else:
            lines = "\n  ".join(f"{render(w)}: {m}" for w, m in found)
            err = ConfigError(f"{len(found)} problems:\n  {lines}")
        err.problems = [(render(w), m) for w, m in found]
        raise err
    return addrs
