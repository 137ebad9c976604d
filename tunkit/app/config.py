"""tunkit's configuration file: schema and validation into typed specs; reads files (I/O).

A configuration is one TOML file (also accepted as JSON: ``.json`` suffix or
content starting with ``{``).  :func:`load` returns a frozen :class:`Config`
or raises :class:`~tunkit.errors.ConfigError` listing *every* problem, each
naming the file, the key path (``unsafe_routes[2].via[0].weight``) and the bad
value.  Validation is one function per section (``_device_section``,
``_network_section``, ...) for what a file spells, then the rules on the
peer/route set, which are :func:`tunkit.overlay.spec.problems`, the very ones the
tunnel runs: ``tunkit check``, ``tunkit up`` and a reload cannot disagree.
``Config.peer_specs``/``route_specs`` are what the tunnel consumes.

Nothing is applied by this module.  Neighbours (re-exported here):
:mod:`tunkit.app.plan` (the kernel routes a config implies, and the reload diff;
pure) and :mod:`tunkit.app.keyfile` (key files and file-permission rules).
(About 880 lines: the schema below, its typed result and one validator per
section, with the file's error wording, are kept together so that a new key
is added in one place; the rules shared with the tunnel, the plan and key
files live in those modules.)

Adding a key: write it in the schema below and in the README's reference,
read it in its section's validator (``_<section>_section``) with the
``_Checker`` getters (type and range named in the message), carry it in the
section's dataclass, show it in :func:`to_json`, and if it cannot change while
running add it to :func:`tunkit.app.plan.plan_reload`'s fixed list.  A rule that
relates peers or routes to each other goes in :func:`tunkit.overlay.spec.problems`,
so that the tunnel enforces it too.

Schema (every key optional unless marked required)::

    [device]
    name = "tunkit%d"        # name or template (%d); at most 15 bytes
    mtu = 1300               # default MTU of the overlay, 576..65535 (1280+ with IPv6)
    txqueuelen = 500
    workers = 1              # worker processes with one TUN queue each; 0 = one per CPU
    offloads = true          # virtio_net_hdr offloads (TSO/USO) when the kernel has them

    [network]
    addresses = ["198.18.0.1/16", "2001:db8:1::1/64"]   # required: this host's overlay addresses
    listen = "0.0.0.0:4800"  # UDP underlay address:port; "[::]:4800" reaches IPv6 and IPv4 endpoints
    key_file = "net.key"     # HMAC mode: pre-shared key for every peer (relative to this file);
                             # authenticates but does not encrypt
    private_key_file = "a.key"   # WireGuard mode (encrypted): this host's private key, wg's base64
                             # ('tunkit genkey'), mode 0600; needs device.name without %d
    insecure = false         # true: raw IP in UDP, no authentication (trusted underlays only)
    partial_checksums = false  # insecure only: TCP super-packets keep the kernel's partial checksum
                             # (faster; every peer must be tunkit, a foo-over-UDP receiver drops them)
    use_system_route_table = false   # mirror kernel routes that point into the overlay

    [[peers]]                # required, at least one
    name = "b"               # required, unique
    endpoint = "198.51.100.2:4800"   # underlay address:port; required except in WireGuard mode
                             # (without one the peer may only initiate to us)
    prefixes = ["198.18.0.2/32"]     # required: overlay prefixes the peer owns (allowed sources;
                             # WireGuard's allowed IPs)
    key_file = "b.key"       # HMAC mode: overrides network.key_file for this peer
    public_key = "base64="   # WireGuard mode, required: the peer's public key ('tunkit pubkey')
    preshared_key_file = "ab.psk"    # WireGuard mode: optional pre-shared key ('tunkit genpsk'), mode 0600
    persistent_keepalive = 25        # WireGuard mode: seconds, 0..65535 (0 = off)

    [[routes]]               # MTU overrides inside the overlay (nebula's tun.routes)
    route = "198.18.5.0/24"  # required, inside one of network.addresses' networks
    mtu = 1200               # required, >= 500

    [[unsafe_routes]]        # networks behind overlay gateways (nebula's tun.unsafe_routes)
    route = "192.0.2.0/24"   # required, its first address outside the overlay networks
    via = "198.18.0.2"       # required: a gateway, or [{gateway = "...", weight = 2}, ...]
    mtu = 1300               # 0 or absent = device MTU, else >= 500
    metric = 100             # kernel route metric, 0..2^31-1
    install = true           # add a kernel route for it

    [logging]
    level = "info"           # debug, info, warning, error
"""

from __future__ import annotations

import base64
import bisect
import ipaddress
import json
import os
import stat
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Union

from tunkit.routing.ecmp import Gateway
from tunkit.errors import ConfigError
from tunkit.overlay.wire import DEFAULT_MTU
from tunkit.ifname import validate_name
from tunkit.app.keyfile import KEY_BYTES, file_warnings, generate_key_file, read_key_file  # noqa: F401 (re-exported)
from tunkit.app.plan import KernelRoute, ReloadPlan, advmss_for, kernel_routes, plan_reload  # noqa: F401 (re-exported)
from tunkit.overlay.spec import PeerSpec, RouteSpec
from tunkit.overlay.spec import problems as spec_problems
from tunkit.overlay.spec import render as render_where

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
IPInterface = Union[ipaddress.IPv4Interface, ipaddress.IPv6Interface]

DEFAULT_PORT = 4800
MIN_ROUTE_MTU = 500  # nebula's lower bound for route MTUs
MAX_MTU = 65535
MAX_METRIC = 2**31 - 1
LOG_LEVELS = ("debug", "info", "warning", "error")
SECTIONS = ("device", "network", "peers", "routes", "unsafe_routes", "logging")
MAX_DEPTH = 16  # tables and arrays nested; the schema needs 5 (unsafe_routes -> entry -> via -> gateway)
WG_OVERHEAD = 80  # outer IPv6 + UDP + WireGuard transport header and tag: the device MTU plus this fits a datagram
MAX_FILE_BYTES = 4 << 20  # a configuration larger than this is not one


# ---------------------------------------------------------------------------
# The validated configuration
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Endpoint:
    """An underlay UDP address and port."""

    address: IPAddress
    port: int

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


@dataclass(frozen=True)
class DeviceConfig:
    name: str = "tunkit%d"
    mtu: int = DEFAULT_MTU
    txqueuelen: int | None = None
    workers: int = 1
    offloads: bool = True


@dataclass(frozen=True)
class MtuRoute:
    """``[[routes]]``: an MTU override for part of the overlay."""

    route: IPNetwork
    mtu: int


@dataclass(frozen=True)
class UnsafeRoute:
    """``[[unsafe_routes]]``: a network reached through overlay gateways."""

    route: IPNetwork
    via: tuple[Gateway, ...]
    mtu: int | None = None
    metric: int | None = None
    install: bool = True


@dataclass(frozen=True)
class Peer:
    name: str
    endpoint: Endpoint | None  # None only in WireGuard mode (the peer initiates)
    prefixes: tuple[IPNetwork, ...]
    key: bytes | None = field(default=None, repr=False)  # None: network key (or insecure)
    key_file: str | None = None
    public_key: bytes | None = None  # WireGuard mode
    preshared_key: bytes | None = field(default=None, repr=False)
    preshared_key_file: str | None = None
    persistent_keepalive: int = 0


@dataclass(frozen=True)
class Config:
    file: str
    device: DeviceConfig
    addresses: tuple[IPInterface, ...]
    listen: Endpoint
    peers: tuple[Peer, ...]
    routes: tuple[MtuRoute, ...] = ()
    unsafe_routes: tuple[UnsafeRoute, ...] = ()
    key: bytes | None = field(default=None, repr=False)
    key_file: str | None = None
    private_key: bytes | None = field(default=None, repr=False)  # WireGuard mode (clamped)
    private_key_file: str | None = None
    insecure: bool = False
    partial_checksums: bool = False
    use_system_route_table: bool = False
    log_level: str = "info"
    warnings: tuple[str, ...] = ()  # allowed but unsafe (e.g. a file others can write); logged by check and up

    @property
    def mode(self) -> str:
        """``"wireguard"`` (encrypted), ``"hmac"`` (authenticated, not encrypted) or ``"insecure"`` (raw IP)."""
        if self.private_key_file is not None:
            return "wireguard"
        return "insecure" if self.insecure else "hmac"

    def interface_config(self):
        """WireGuard mode: the :class:`tunkit.wireguard.settings.InterfaceConfig` the engine runs (what a
        wg-quick file becomes too); validated by :func:`validate` with the engine's own rules."""
        from tunkit.wireguard.settings import InterfaceConfig, PeerConfig

        return InterfaceConfig(private_key=self.private_key, listen_port=self.listen.port, peers=tuple(
            PeerConfig(p.public_key, p.preshared_key,
                       (str(p.endpoint.address), p.endpoint.port) if p.endpoint is not None else None,
                       p.persistent_keepalive, p.prefixes) for p in self.peers))

    @property
    def peer_specs(self) -> tuple[PeerSpec, ...]:
        """The peers as the tunnel runs them (key resolved, endpoint as (address, port)); HMAC/insecure modes."""
        if self.mode == "wireguard":
            raise ValueError("a WireGuard-mode configuration runs as Config.interface_config(), not peer specs")
        return tuple(PeerSpec(p.name, (str(p.endpoint.address), p.endpoint.port), p.prefixes, self.peer_key(p))
                     for p in self.peers)

    @property
    def route_specs(self) -> tuple[RouteSpec, ...]:
        """The ``unsafe_routes`` as the tunnel runs them (installed in the kernel or not)."""
        return tuple(RouteSpec(r.route, tuple((g.address, g.weight) for g in r.via), r.mtu or None)
                     for r in self.unsafe_routes)

    def check_specs(self) -> None:
        """Raise ConfigError (naming this file) unless the tunnel accepts these specs with these settings.

        :func:`validate` has run the same rules with key paths; this is for a
        configuration combined by :func:`plan_reload` (new file, running settings).
        """
        found, _ = spec_problems(self.peer_specs, self.route_specs, insecure=self.insecure,
                                 v6sock=self.listen.address.version == 6)
        if found:
            where, message = found[0]
            more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
            raise ConfigError(message + more, file=self.file, key=render_where(where))

    @property
    def networks(self) -> tuple[IPNetwork, ...]:
        """The overlay networks (the networks of this host's addresses)."""
        return tuple(a.network for a in self.addresses)

    def peer_key(self, peer: Peer) -> bytes | None:
        """The key that authenticates traffic with ``peer`` (None in insecure mode)."""
        if self.insecure:
            return None
        return peer.key if peer.key is not None else self.key

    @property
    def device_mtu(self) -> int:
        """The MTU the device gets: the largest of the default and every route MTU."""
        mtus = [self.device.mtu]
        mtus += [r.mtu for r in self.routes]
        mtus += [r.mtu for r in self.unsafe_routes if r.mtu]
        return max(mtus)


# ---------------------------------------------------------------------------
# Loading and validation
# ---------------------------------------------------------------------------
class _Checker:
    """Collects every problem with a key path; raises them together at the end."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[tuple[str, str]] = []

    def bad(self, key: str, message: str) -> None:
        self.problems.append((key, message))

    def bad_once(self, key: str, message: str) -> None:
        """A problem unless one is recorded at ``key`` already (a set rule restating a field's problem)."""
        if not any(k == key for k, _ in self.problems):
            self.problems.append((key, message))

    def finish(self) -> None:
        if not self.problems:
            return
        if len(self.problems) == 1:
            key, message = self.problems[0]
            err = ConfigError(message, file=self.file, key=key)
        else:
            lines = "\n  ".join(f"{self.file}:{k}: {m}" for k, m in self.problems)
            err = ConfigError(f"{len(self.problems)} problems:\n  {lines}", file=self.file)
        err.problems = list(self.problems)
        raise err

    # -- typed getters: return the value, or None after recording a problem ------
    def table(self, data: Any, key: str) -> dict:
        if not isinstance(data, dict):
            self.bad(key, f"expected a table, got {_show(data)}")
            return {}
        return data

    def known(self, data: dict, path: str, allowed: tuple[str, ...]) -> None:
        for k in data:
            if k not in allowed:
                where = f"{path}.{k}" if path else k
                self.bad(where, f"unknown key (expected one of: {', '.join(allowed)})")

    def _get(self, data: dict, path: str, key: str, ok: Callable[[Any], bool], expected: str, default, required: bool):
        """The value at ``path.key`` if present and of the right type, else ``default`` (problem recorded)."""
        where = f"{path}.{key}" if path else key
        if key not in data:
            if required:
                self.bad(where, "is required")
            return default, None
        v = data[key]
        if not ok(v):
            self.bad(where, f"expected {expected}, got {_show(v)}")
            return default, None
        return v, where

    def integer(self, data: dict, path: str, key: str, lo: int, hi: int, default=None, required=False):
        v, where = self._get(data, path, key, _is_int, "an integer", default, required)
        if where is not None and not lo <= v <= hi:
            self.bad(where, f"{v} is out of range {lo}..{hi}")
            return default
        return v

    def boolean(self, data: dict, path: str, key: str, default: bool) -> bool:
        return self._get(data, path, key, lambda v: isinstance(v, bool), "true or false", default, False)[0]

    def string(self, data: dict, path: str, key: str, default=None, required=False):
        return self._get(data, path, key, lambda v: isinstance(v, str), "a string", default, required)[0]

    def array(self, data: dict, path: str, key: str, required=False) -> list:
        return self._get(data, path, key, lambda v: isinstance(v, list), "a list", [], required)[0]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _show(v: Any) -> str:
    if isinstance(v, str):
        return repr(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return f"a {type(v).__name__} {json.dumps(v, default=str)[:60]}"
    return repr(v)


def parse_network(text: str) -> IPNetwork:
    """Parse a prefix strictly (host bits must be zero)."""
    return ipaddress.ip_network(text, strict=True)


def parse_endpoint(text: str, default_port: int | None = None) -> Endpoint:
    """Parse ``1.2.3.4:5``, ``[2001:db8::1]:5`` (or a bare address with ``default_port``)."""
    text = text.strip()
    port: int | None = default_port
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"{text!r}: missing ']'")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"{text!r}: expected ':PORT' after ']'")
            port = _port(rest[1:], text)
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = _port(p, text)
    else:
        host = text
    if port is None:
        raise ValueError(f"{text!r}: a port is required (ADDRESS:PORT)")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{text!r}: {host!r} is not an IP address (host names are not resolved)") from None
    return Endpoint(addr, port)


def _port(p: str, text: str) -> int:
    # ASCII digits only: str.isdigit() and int() also take full-width and other Unicode digits
    if not (p.isascii() and p.isdigit()) or not 0 < int(p) < 65536:
        raise ValueError(f"{text!r}: port {p!r} is not 1..65535")
    return int(p)


def _read_file(path: str) -> tuple[bytes, os.stat_result]:
    """A configuration file's bytes (at most MAX_FILE_BYTES) and its stat; ConfigError if it cannot be read."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # a FIFO must not hang a reload
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", file=path) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError("not a regular file", file=path)
        with os.fdopen(fd, "rb", closefd=False) as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"cannot read: {e.strerror}", file=path) from None
    finally:
        os.close(fd)
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(f"larger than {MAX_FILE_BYTES} bytes; not a tunkit configuration", file=path)
    return raw, st


def is_wgquick(path: str) -> bool:
    """Whether ``path`` names a wg-quick file (``NAME.conf``), which ``tunkit up``/``check`` run in WireGuard mode."""
    return path.endswith(".conf")


@dataclass(frozen=True)
class WgQuickFile:
    """A wg-quick file checked for ``tunkit up``: the interface name (the file's stem, as wg-quick takes it),
    the engine configuration, MTU, addresses, the routes Table = auto implies, and what is ignored."""

    file: str
    name: str
    interface: object      # tunkit.wireguard.settings.InterfaceConfig
    mtu: int
    addresses: tuple
    routes: tuple          # allowed IPs to route to the device (empty with Table = off)
    ignored: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    listen_host: str | None = None  # None: dual-stack '::' (wg-quick); a TOML file's network.listen address
    offloads: bool = True


def wireguard_file(cfg: Config) -> WgQuickFile:
    """A WireGuard-mode TOML configuration as the interface ``tunkit up`` runs: the same :class:`WgQuickFile` a
    wg-quick file gives, so both run one code path (:class:`tunkit.app.up.WgQuickHost`).  Nothing is checked
    here: :func:`validate` ran every rule.  Routes: each peer prefix outside this host's overlay networks (those
    inside are reached through the addresses' own routes)."""
    if cfg.mode != "wireguard":
        raise ConfigError(f"runs in {cfg.mode} mode, not WireGuard mode (set network.private_key_file)",
                          file=cfg.file, key="network")
    routes = [pfx for p in cfg.peers for pfx in p.prefixes
              if not any(pfx.version == n.version and pfx.subnet_of(n) for n in cfg.networks)]
    return WgQuickFile(cfg.file, cfg.device.name, cfg.interface_config(), cfg.device.mtu, cfg.addresses,
                       tuple(routes), (), cfg.warnings, str(cfg.listen.address), cfg.device.offloads)


def load_wireguard(path: str) -> WgQuickFile:
    """The WireGuard interface a file describes: a wg-quick file, or a TOML file in WireGuard mode (ConfigError
    for a TOML file in another mode); what ``tunkit up`` and every reload of such a host read."""
    return load_wgquick(path) if is_wgquick(path) else wireguard_file(load(path))


def resolve_endpoint(host: str, port: int) -> tuple[str, int]:
    """A wg-quick Endpoint host name to its first address (as wg does, once, at start-up); ConfigError if none."""
    import socket

    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except socket.gaierror as e:
        raise ConfigError(f"{host}: cannot resolve: {e.strerror}", key="[Peer] Endpoint") from None
    return info[0][4][0], port


def load_wgquick(path: str, *, resolve=resolve_endpoint) -> WgQuickFile:
    """Read and validate a wg-quick file for ``tunkit up`` (the one validation ``check``, ``up`` share).

    ConfigError (naming the file and key) for anything wg-quick would refuse,
    for a key tunkit refuses (hooks, SaveConfig = true, a table number: all
    of them are listed), for a default route with Table = auto (wg-quick's
    fwmark policy routing is not done: set Table = off and route yourself),
    and for what the engine's ``settings.validate`` refuses.
    """
    from tunkit.crypto import public_key
    from tunkit.wireguard import settings, wgquick

    raw, st = _read_file(path)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"not UTF-8 text (byte {e.start})", file=path) from None
    q = wgquick.parse(text, path)
    ignored, refused = wgquick.support_report(q)
    name = os.path.basename(path)[: -len(".conf")]
    try:
        validate_name(name, template=False)
    except ValueError as e:
        refused.append(f"{path}: the interface name {name!r} (the file name without .conf) is not valid: {e}")
    if q.interface.private_key is None:
        refused.append(f"{path}: [Interface] PrivateKey missing: tunkit up needs the interface's key")
    routes = []
    if q.interface.table != "off":
        for p in q.peers:
            for net in p.allowed_ips:
                if net.prefixlen == 0:
                    refused.append(f"{path}:{p.line}: [Peer] AllowedIPs = {net} with Table = auto needs wg-quick's "
                                   "fwmark policy routing, which tunkit up does not do; set Table = off and "
                                   "route it yourself")
                elif net not in routes:
                    routes.append(net)
    if refused:
        raise ConfigError("; ".join(refused), file=path)
    try:
        cfg = wgquick.to_interface_config(q, public_key, resolve=resolve)
    except ConfigError as e:
        if e.file is None:  # from the resolver: name the file
            raise ConfigError(e.message, file=path, key=e.key) from None
        raise
    try:
        settings.validate(cfg, public_key(cfg.private_key) if cfg.private_key else None)
    except ValueError as e:
        raise ConfigError(str(e), file=path) from None
    mtu = q.interface.mtu or 1420
    if not 1280 <= mtu <= 65535 - 80:
        raise ConfigError(f"{mtu} is outside 1280..65455", file=path, key="[Interface] MTU")
    return WgQuickFile(path, name, cfg, mtu, tuple(q.interface.addresses), tuple(routes), tuple(ignored),
                       tuple(file_warnings(path, st)))


def load(path: str) -> Config:
    """Read, parse and validate a configuration file; raises ConfigError (ValueError).

    ``Config.warnings`` lists what is allowed but unsafe (a file others can write).
    """
    raw, st = _read_file(path)
    cfg = loads(raw, file=path)
    warnings = file_warnings(path, st)
    return replace(cfg, warnings=tuple(warnings)) if warnings else cfg


load_config = load  # the name the tunkit package exports


def loads(raw: bytes | str, *, file: str = "<config>", key_reader: Callable[[str], bytes] = read_key_file) -> Config:
    """Parse and validate configuration text (TOML, or JSON if it starts with '{').

    Raises only :class:`~tunkit.errors.ConfigError`, also for text nested too
    deeply (at most :data:`MAX_DEPTH` levels of tables and arrays).
    """
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    is_json = file.endswith(".json") or text.lstrip().startswith("{")
    kind = "JSON" if is_json else "TOML"
    depth = _bracket_depth(text)
    if depth > MAX_DEPTH:  # before parsing: the parsers recurse once per level
        raise ConfigError(f"nested {depth} levels deep; a tunkit configuration needs at most {MAX_DEPTH}", file=file)
    try:
        data = json.loads(text) if is_json else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"not valid {kind}: {e}", file=file) from None
    except RecursionError:  # the pre-scan bounds nesting; this guards what it cannot see
        raise ConfigError(f"not valid {kind}: nested too deeply", file=file) from None
    return validate(data, file=file, key_reader=key_reader)


_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_- \t")


def _bracket_depth(text: str) -> int:
    """How deeply TOML or JSON text nests, outside strings and comments; no recursion, one pass.

    Run before parsing: the stdlib parsers recurse once per ``[``/``{`` level,
    and tomllib takes quadratic time in the parts of one dotted key
    (``a.a.a...``), so both are bounded here: the result is the larger of the
    bracket depth and the longest dotted key (parts + 1).  Strings are skipped
    as TOML spells them (``"..."`` with escapes, ``'...'``, and the
    triple-quoted forms), which covers JSON's; ``#`` starts a comment.  An
    unterminated string ends the scan (the parser reports it).
    """
    depth = top = run = 0
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "[{":
            depth += 1
            top = max(top, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
        elif ch == ".":
            run += 1  # a dotted key's parts (a float has one dot: harmless)
            top = max(top, run + 1)
            i += 1
            continue
        elif ch == "#":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        elif ch in "\"'":
            quote = ch * 3 if text.startswith(ch * 3, i) else ch
            i += len(quote)
            while i < n and not text.startswith(quote, i):
                i += 2 if ch == '"' and text[i] == "\\" else 1
            i += len(quote)
            continue  # a quoted key part continues a dotted key
        if ch not in _KEY_CHARS:
            run = 0
        i += 1
    return top


def _tree_depth(data: Any) -> int:
    """Nesting depth of parsed data, without recursion."""
    top = 0
    stack = [(data, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            v = list(v.values())
        if isinstance(v, list):
            top = max(top, d)
            if d <= MAX_DEPTH:
                stack.extend((x, d + 1) for x in v)
    return top


# ---------------------------------------------------------------------------
# Per-section validators: each reads one section, records problems, returns typed values
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class _Network:
    addresses: tuple[IPInterface, ...]
    listen: Endpoint
    insecure: bool
    partial_checksums: bool
    use_system_route_table: bool
    key_file: str | None
    key: bytes | None
    private_key_file: str | None = None
    private_key: bytes | None = None

    @property
    def wireguard(self) -> bool:
        return self.private_key_file is not None

    @property
    def networks(self) -> list[IPNetwork]:
        return [a.network for a in self.addresses]

    def own_address_in(self, pfx: IPNetwork) -> IPAddress | None:
        """One of this host's addresses inside ``pfx``, or None; a bisection, not a scan."""
        ips = sorted(int(a.ip) for a in self.addresses if a.version == pfx.version)
        k = bisect.bisect_left(ips, int(pfx.network_address))
        if k < len(ips) and ips[k] <= int(pfx.broadcast_address):
            return ipaddress.ip_address(ips[k]) if pfx.version == 4 else ipaddress.IPv6Address(ips[k])
        return None


@dataclass
class _Paths:
    """Where a typed peer or route came from in the file, to name key paths for the set rules."""

    peers: list[dict] = field(default_factory=list)  # per Peer: {"": "peers[i]", "prefixes": [...]}
    routes: list[dict] = field(default_factory=list)  # per UnsafeRoute: {"": "unsafe_routes[i]", "via": [...]}
    key_failed: set[int] = field(default_factory=set)  # Peer indexes whose key file was named but not read

    def key_path(self, where: tuple) -> str:
        kind, i, *rest = where
        base = (self.peers if kind == "peers" else self.routes)[i]
        if not rest:
            return base[""]
        name = rest[0]
        if name == "key":
            return f"{base['']}.key_file"
        if len(rest) >= 2 and name in ("prefixes", "via"):
            path = base[name][rest[1]]
            if len(rest) == 3:  # ("via", j, "weight")
                return path.rsplit(".", 1)[0] + ".weight" if path.endswith(".gateway") else path
            return path
        return f"{base['']}.{name}"


def validate(data: Any, *, file: str = "<config>", key_reader: Callable[[str], bytes] = read_key_file) -> Config:
    """Validate an already parsed document (a dict) into a Config: every problem reported together."""
    if _tree_depth(data) > MAX_DEPTH:
        raise ConfigError(f"nested more than {MAX_DEPTH} levels deep", file=file)
    c = _Checker(file)
    base_dir = os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else os.getcwd()
    top = c.table(data, "(top level)")
    c.known(top, "", SECTIONS)
    device = _device_section(c, c.table(top.get("device", {}), "device"))
    net = _network_section(c, top, device, base_dir, key_reader)
    paths = _Paths()
    peers = _peers_section(c, top, net, base_dir, key_reader, paths)
    routes = _routes_section(c, top, net.networks)
    unsafe = _unsafe_routes_section(c, top, net.networks, paths)
    if net.wireguard:
        for section, items in (("routes", routes), ("unsafe_routes", unsafe)):
            if items:
                c.bad(section, f"{len(items)} entr{'y' if len(items) == 1 else 'ies'}: not supported in WireGuard "
                      "mode (network.private_key_file); route networks behind a peer by adding them to its prefixes")
    level = _logging_section(c, top)
    cfg = Config(
        file=file,
        device=device,
        addresses=net.addresses,
        listen=net.listen,
        peers=tuple(peers),
        routes=tuple(routes),
        unsafe_routes=tuple(unsafe),
        key=net.key,
        key_file=net.key_file,
        private_key=net.private_key,
        private_key_file=net.private_key_file,
        insecure=net.insecure,
        partial_checksums=net.partial_checksums,
        use_system_route_table=net.use_system_route_table,
        log_level=level,
    )
    _peer_set_rules(c, cfg, paths)
    c.finish()
    return cfg


def _device_section(c: _Checker, d: dict) -> DeviceConfig:
    c.known(d, "device", ("name", "mtu", "txqueuelen", "workers", "offloads"))
    name = c.string(d, "device", "name", default="tunkit%d")
    if name is not None:
        try:
            validate_name(name)
        except ValueError as e:  # the kernel's rule, with its own wording of what is wrong
            c.bad("device.name", str(e))
    return DeviceConfig(
        name=name or "tunkit%d",
        mtu=c.integer(d, "device", "mtu", 576, MAX_MTU, default=DEFAULT_MTU),
        txqueuelen=c.integer(d, "device", "txqueuelen", 1, 1_000_000),
        workers=c.integer(d, "device", "workers", 0, 256, default=1),
        offloads=c.boolean(d, "device", "offloads", True),
    )


def _network_section(c: _Checker, top: dict, device: DeviceConfig, base_dir: str, key_reader) -> _Network:
    n = c.table(top.get("network", {}), "network")
    c.known(n, "network", ("addresses", "listen", "key_file", "private_key_file", "insecure", "partial_checksums",
                           "use_system_route_table"))
    if "network" not in top:
        c.bad("network", "is required (at least network.addresses)")
    addresses = _addresses(c, n, required="network" in top)
    if any(a.version == 6 for a in addresses) and device.mtu < 1280:
        c.bad("device.mtu", f"{device.mtu} is below 1280, the IPv6 minimum, and network.addresses has IPv6")
    listen = Endpoint(ipaddress.ip_address("0.0.0.0"), DEFAULT_PORT)
    ltext = c.string(n, "network", "listen")
    if ltext is not None:
        try:
            listen = parse_endpoint(ltext, default_port=DEFAULT_PORT)
        except ValueError as e:
            c.bad("network.listen", str(e))
    insecure = c.boolean(n, "network", "insecure", False)
    partial = c.boolean(n, "network", "partial_checksums", False)
    if partial and not insecure:
        c.bad("network.partial_checksums", "true needs network.insecure = true (authenticated messages already "
              "carry the kernel's partial checksum)")
    key_file = c.string(n, "network", "key_file")
    key = _load_key(c, "network.key_file", key_file, base_dir, key_reader) if key_file else None
    private_key_file = c.string(n, "network", "private_key_file")
    private_key = None
    system_table = c.boolean(n, "network", "use_system_route_table", False)
    if private_key_file is not None:  # WireGuard mode: what it cannot combine with, each named
        private_key = _load_key(c, "network.private_key_file", private_key_file, base_dir, key_reader,
                                make="tunkit genkey > {path} && chmod 600 {path}")
        if private_key is not None:
            from tunkit.wireguard.keys import clamp

            private_key = clamp(private_key)  # as wg does with a PrivateKey
        for key_, set_ in (("key_file", key_file is not None), ("insecure", insecure), ("partial_checksums", partial),
                           ("use_system_route_table", system_table)):
            if set_:
                c.bad(f"network.{key_}", f"{_show(n[key_])} cannot be combined with network.private_key_file "
                      "(WireGuard mode, encrypted): remove one of them")
        if device.mtu > MAX_MTU - WG_OVERHEAD:
            c.bad("device.mtu", f"{device.mtu} is above {MAX_MTU - WG_OVERHEAD} in WireGuard mode "
                  f"({WG_OVERHEAD} bytes of UDP and WireGuard headers must fit in 65535)")
        if "%" in device.name:
            c.bad("device.name", f"{device.name!r} is a template; WireGuard mode needs a fixed name (set "
                  "device.name, e.g. \"wg0\"; its UAPI socket is /var/run/wireguard/NAME.sock)")
        for key_, bad in (("workers", device.workers != 1), ("txqueuelen", device.txqueuelen is not None)):
            if bad:
                c.bad(f"device.{key_}", f"{getattr(device, key_)}: not supported in WireGuard mode (one process, "
                      "the kernel's default queue length): leave it out")
    return _Network(tuple(addresses), listen, insecure, bool(partial), system_table, key_file, key,
                    private_key_file, private_key)


def _addresses(c: _Checker, n: dict, required: bool) -> list[IPInterface]:
    addresses: list[IPInterface] = []
    wheres: list[int] = []  # each address's index in the file
    for i, a in enumerate(c.array(n, "network", "addresses", required=required)):
        where = f"network.addresses[{i}]"
        if not isinstance(a, str):
            c.bad(where, f"expected an address with prefix length like '198.18.0.1/16', got {_show(a)}")
            continue
        try:
            iface = ipaddress.ip_interface(a)
        except ValueError:
            c.bad(where, f"{a!r} is not an address with prefix length like '198.18.0.1/16'")
            continue
        if "/" not in a:
            c.bad(where, f"{a!r} needs a prefix length (e.g. '{a}/24'): it defines the overlay network")
            continue
        if iface.ip == iface.network.network_address and iface.network.prefixlen < iface.max_prefixlen - 1:
            c.bad(where, f"{a!r} is the network address itself, not a host address")
            continue
        addresses.append(iface)
        wheres.append(i)
    for later, earlier in sorted(first_overlaps([x.network for x in addresses]).items()):
        c.bad(f"network.addresses[{wheres[later]}]", f"{str(addresses[later])!r} overlaps "
              f"network.addresses[{wheres[earlier]}] ({addresses[earlier]})")
    bad = set(first_overlaps([x.network for x in addresses]))
    addresses = [x for k, x in enumerate(addresses) if k not in bad]
    if "addresses" in n and not addresses and not any(k.startswith("network.addresses") for k, _ in c.problems):
        c.bad("network.addresses", "must list at least one address")
    return addresses


def _peers_section(c: _Checker, top: dict, net: _Network, base_dir: str, key_reader, paths: _Paths) -> list[Peer]:
    """``[[peers]]``: each entry's own fields; the rules between peers are the set rules (tunkit.overlay.spec),
    except that prefixes may not overlap, a file's rule (each inner source belongs to exactly one peer)."""
    raw_peers = c.array(top, "", "peers", required=True)
    if "peers" in top and isinstance(top["peers"], list) and not raw_peers:
        c.bad("peers", "must list at least one peer")
    entries = [_peer_entry(c, f"peers[{i}]", c.table(p, f"peers[{i}]"), net, base_dir, key_reader)
               for i, p in enumerate(raw_peers)]
    flat = [(pfx, where, e) for e in entries for pfx, where in e["prefixes"]]
    for later, earlier in first_overlaps([pfx for pfx, _, _ in flat]).items():
        pfx, where, e = flat[later]
        other, _, owner = flat[earlier]
        c.bad(where, f"{pfx} overlaps {other} of peer {owner['name'] or owner['path']!r}: each source must belong "
              "to one peer")
        e["prefixes"] = [(x, w) for x, w in e["prefixes"] if w != where]
    peers: list[Peer] = []
    for e in entries:
        if e["name"] is not None and (e["endpoint"] is not None or e["initiates"]) and e["prefixes"] \
                and not e["wg_failed"]:
            if e["key_failed"]:
                paths.key_failed.add(len(peers))
            peers.append(Peer(e["name"], e["endpoint"], tuple(x for x, _ in e["prefixes"]), e["key"], e["key_file"],
                              e["public_key"], e["preshared_key"], e["preshared_key_file"],
                              e["persistent_keepalive"]))
            paths.peers.append({"": e["path"], "prefixes": [w for _, w in e["prefixes"]]})
    return peers


def _peer_entry(c: _Checker, path: str, p: dict, net: _Network, base_dir: str, key_reader) -> dict:
    """One ``[[peers]]`` entry's fields, each checked on its own."""
    c.known(p, path, ("name", "endpoint", "prefixes", "key_file", "public_key", "preshared_key_file",
                      "persistent_keepalive"))
    pname = c.string(p, path, "name", required=True)
    endpoint = None
    etext = c.string(p, path, "endpoint", required=not net.wireguard)
    if etext is not None:
        try:
            endpoint = parse_endpoint(etext)
        except ValueError as e:
            c.bad(f"{path}.endpoint", str(e))
    if endpoint is not None and endpoint.address.version == 4 and net.listen.address.version == 6 \
            and not net.listen.address.is_unspecified:
        c.bad(f"{path}.endpoint", f"{endpoint} is IPv4 and network.listen ({net.listen}) a specific IPv6 "
              "address: listen on [::] or an IPv4 address to reach it")
        endpoint = None
    prefixes: list[tuple[IPNetwork, str]] = []
    for j, pre in enumerate(c.array(p, path, "prefixes", required=True)):
        where = f"{path}.prefixes[{j}]"
        pfx = _network(c, where, pre)
        if pfx is None:
            continue
        mine = net.own_address_in(pfx)
        if mine is not None:
            c.bad(where, f"{pfx} contains this host's own address {mine}")
            continue
        if net.wireguard and pfx.prefixlen == 0:
            c.bad(where, f"{pfx}: a default route through WireGuard needs policy routing, which tunkit up does "
                  "not do; list the networks behind the peer")
            continue
        prefixes.append((pfx, where))
    if "prefixes" in p and isinstance(p["prefixes"], list) and not p["prefixes"]:
        c.bad(f"{path}.prefixes", "must list at least one prefix (the peer's overlay address)")
    key_file = c.string(p, path, "key_file")
    wg = _peer_wireguard(c, path, p, net, base_dir, key_reader)
    if net.wireguard:
        if key_file is not None:
            c.bad(f"{path}.key_file", f"{key_file!r}: HMAC mode's key; in WireGuard mode (network.private_key_file) "
                  "a peer has public_key (and optionally preshared_key_file)")
        return {"path": path, "name": pname, "endpoint": endpoint, "prefixes": prefixes, "key": None,
                "key_file": None, "key_failed": False, **wg}
    key = _load_key(c, f"{path}.key_file", key_file, base_dir, key_reader) if key_file else None
    if not net.insecure and key_file is None and net.key_file is None:
        c.bad(f"{path}.key_file", "no key: set network.private_key_file and each peer's public_key (WireGuard mode, "
              "encrypted), or network.key_file or this peer's key_file (HMAC mode: authenticated, not encrypted), "
              "or network.insecure = true")
    failed = bool((key_file and key is None) or (not key_file and net.key_file and net.key is None))
    return {"path": path, "name": pname, "endpoint": endpoint, "prefixes": prefixes, "key": key,
            "key_file": key_file, "key_failed": failed, **wg}


def _peer_wireguard(c: _Checker, path: str, p: dict, net: _Network, base_dir: str, key_reader) -> dict:
    """A peer's WireGuard keys (``public_key``, ``preshared_key_file``, ``persistent_keepalive``): each checked
    on its own; outside WireGuard mode each is refused, naming the key that turns the mode on."""
    from tunkit.wireguard.keys import parse_key

    out = {"public_key": None, "preshared_key": None, "preshared_key_file": None, "persistent_keepalive": 0,
           "wg_failed": False, "initiates": net.wireguard and "endpoint" not in p}  # no endpoint: it initiates
    if not net.wireguard:
        for k in ("public_key", "preshared_key_file", "persistent_keepalive"):
            if k in p:
                c.bad(f"{path}.{k}", f"{_show(p[k])}: a WireGuard key; it needs network.private_key_file "
                      "(WireGuard mode), and then network.key_file and the peers' key_file go")
        return out
    text = c.string(p, path, "public_key", required=True)
    if text is not None:
        try:
            out["public_key"] = parse_key(text, "public key")
        except ValueError as e:
            c.bad(f"{path}.public_key", str(e))
    psk_file = c.string(p, path, "preshared_key_file")
    if psk_file is not None:
        out["preshared_key_file"] = psk_file
        out["preshared_key"] = _load_key(c, f"{path}.preshared_key_file", psk_file, base_dir, key_reader,
                                         make="tunkit genpsk > {path} && chmod 600 {path}")
    out["persistent_keepalive"] = c.integer(p, path, "persistent_keepalive", 0, 65535, default=0)
    out["wg_failed"] = out["public_key"] is None or (psk_file is not None and out["preshared_key"] is None)
    return out


def first_overlaps(nets: list[IPNetwork]) -> dict[int, int]:
    """For each network that overlaps one listed before it, the index of one it overlaps; O(n log n).

    CIDR blocks either nest or are disjoint, so after sorting by start
    (shorter prefix first) a block overlaps an earlier one exactly when it lies
    inside a block still open on a stack of nested blocks.
    """
    order = sorted(range(len(nets)), key=lambda i: (nets[i].version, int(nets[i].network_address), nets[i].prefixlen))
    out: dict[int, int] = {}
    stack: list[int] = []  # indexes of nested blocks containing the current start
    for i in order:
        net = nets[i]
        while stack and (nets[stack[-1]].version != net.version
                         or int(nets[stack[-1]].broadcast_address) < int(net.network_address)):
            stack.pop()
        if stack:  # net lies inside every block on the stack: report the later one of a pair
            j = min(stack)  # the first listed of the blocks containing it
            a, b = (i, j) if i > j else (j, i)
            out.setdefault(a, b)
        stack.append(i)
    return out


def _routes_section(c: _Checker, top: dict, networks: list[IPNetwork]) -> list[MtuRoute]:
    routes: list[MtuRoute] = []
    for i, r in enumerate(c.array(top, "", "routes")):
        path = f"routes[{i}]"
        r = c.table(r, path)
        c.known(r, path, ("route", "mtu"))
        mtu = c.integer(r, path, "mtu", MIN_ROUTE_MTU, MAX_MTU, required=True)
        net = _network(c, f"{path}.route", r.get("route"), required="route" not in r)
        if net is not None and not any(vn.version == net.version and net.subnet_of(vn) for vn in networks):
            c.bad(f"{path}.route", f"{net} is not inside any overlay network ({', '.join(map(str, networks)) or 'none'})")
            net = None
        if net is not None and mtu is not None:
            routes.append(MtuRoute(net, mtu))
    return routes


def _unsafe_routes_section(c: _Checker, top: dict, networks: list[IPNetwork], paths: _Paths) -> list[UnsafeRoute]:
    unsafe: list[UnsafeRoute] = []
    for i, r in enumerate(c.array(top, "", "unsafe_routes")):
        path = f"unsafe_routes[{i}]"
        r = c.table(r, path)
        c.known(r, path, ("route", "via", "mtu", "metric", "install"))
        net = _network(c, f"{path}.route", r.get("route"), required="route" not in r)
        mtu = c.integer(r, path, "mtu", 0, MAX_MTU)
        if mtu is not None and 0 < mtu < MIN_ROUTE_MTU:
            c.bad(f"{path}.mtu", f"{mtu} is below {MIN_ROUTE_MTU} (use 0 or leave it out for the device MTU)")
            mtu = None
        metric = c.integer(r, path, "metric", 0, MAX_METRIC)
        install = c.boolean(r, path, "install", True)
        if net is not None:
            inside = next((vn for vn in networks if net.network_address in vn), None)
            if inside is not None:
                c.bad(f"{path}.route", f"{net} starts inside the overlay network {inside}; use [[routes]] for that")
                net = None
        via = _via(c, f"{path}.via", r, networks)
        if net is None or via is None:
            continue
        unsafe.append(UnsafeRoute(net, tuple(Gateway(a, w) for a, w, _ in via), mtu or None, metric, install))
        paths.routes.append({"": path, "via": [gpath for _, _, gpath in via]})
    return unsafe


def _logging_section(c: _Checker, top: dict) -> str:
    lg = c.table(top.get("logging", {}), "logging")
    c.known(lg, "logging", ("level",))
    level = c.string(lg, "logging", "level", default="info")
    if level is not None and level.lower() not in LOG_LEVELS:
        c.bad("logging.level", f"{level!r} is not one of {', '.join(LOG_LEVELS)}")
        level = "info"
    return (level or "info").lower()


def _peer_set_rules(c: _Checker, cfg: Config, paths: _Paths) -> None:
    """The rules between peers and routes: :func:`tunkit.overlay.spec.problems`, the same ones the tunnel runs;
    in WireGuard mode also the engine's own (:func:`_wireguard_rules`)."""
    if cfg.mode == "wireguard":
        specs = [PeerSpec(p.name, (str(p.endpoint.address), p.endpoint.port) if p.endpoint else None, p.prefixes)
                 for p in cfg.peers]
        found, _ = spec_problems(specs, (), wireguard=True, v6sock=cfg.listen.address.version == 6)
        for where, message in found:
            c.bad_once(paths.key_path(where), message)
        if cfg.private_key is not None and not c.problems:
            _wireguard_rules(c, cfg, paths)
        return
    peers = list(cfg.peer_specs)
    for i in paths.key_failed:  # already reported at the key file: check the rest as if it had been read
        peers[i] = replace(peers[i], key=bytes(KEY_BYTES))
    routes = list(cfg.route_specs) if peers else []  # no peers: "peers is required" says it all
    found, _ = spec_problems(peers, routes, insecure=cfg.insecure, v6sock=cfg.listen.address.version == 6)
    for where, message in found:
        c.bad_once(paths.key_path(where), message)


def _wireguard_rules(c: _Checker, cfg: Config, paths: _Paths) -> None:
    """The engine's rules on the configuration it will run, run here: ``settings.validate`` (the first peer it
    refuses found by bisection, to name its key path) and each peer key's static-static DH (a low-order point is
    refused), exactly what ``Engine.apply`` runs at ``tunkit up`` and every reload."""
    from tunkit.wireguard import settings

    ic = cfg.interface_config()
    try:
        from tunkit.crypto import LibCrypto
        from tunkit.wireguard.noise import Local, Remote

        local = Local(LibCrypto(), cfg.private_key)
    except (OSError, RuntimeError) as e:  # no usable libcrypto: WireGuard mode cannot run here
        c.bad("network.private_key_file", f"WireGuard mode needs libcrypto: {e}")
        return
    try:
        settings.validate(ic, local.public)
    except ValueError as e:
        lo, hi = 0, len(ic.peers)  # peers[:hi] fails; find the shortest failing prefix of the list
        while lo < hi:
            mid = (lo + hi) // 2
            try:
                settings.validate(replace(ic, peers=ic.peers[: mid + 1]), local.public)
                lo = mid + 1
            except ValueError:
                hi = mid
        c.bad(paths.peers[lo][""] if lo < len(paths.peers) else "peers", str(e))
        return
    for i, p in enumerate(ic.peers):
        try:
            Remote(local, p.public_key, p.preshared_key)
        except ValueError as e:
            c.bad(f"{paths.peers[i]['']}.public_key", str(e))


def _network(c: _Checker, where: str, value: Any, required: bool = False) -> IPNetwork | None:
    if value is None:
        if required:
            c.bad(where, "is required")
        return None
    if not isinstance(value, str):
        c.bad(where, f"expected a prefix like '192.0.2.0/24', got {_show(value)}")
        return None
    try:
        return parse_network(value)
    except ValueError as e:
        if "has host bits set" in str(e):
            fixed = ipaddress.ip_network(value, strict=False)
            c.bad(where, f"{value!r} has host bits set (did you mean {fixed}?)")
        else:
            c.bad(where, f"{value!r} is not a prefix like '192.0.2.0/24'")
        return None


def _via(c: _Checker, where: str, r: dict, networks: list) -> list[tuple[IPAddress, Any, str]] | None:
    """The gateways of one unsafe route: (address, weight as written, key path of the gateway).

    Checked here: the shape, and that each gateway is an address inside the
    overlay.  Weights and which peer each gateway is are set rules (tunkit.overlay.spec).
    """
    if "via" not in r:
        c.bad(where, "is required: a gateway address or a list of {gateway, weight}")
        return None
    v = r["via"]
    items: list[tuple[str, Any, Any]] = []  # (key path, gateway text, weight)
    if isinstance(v, str):
        items.append((where, v, 1))
    elif isinstance(v, list) and v:
        for j, g in enumerate(v):
            gpath = f"{where}[{j}]"
            if not isinstance(g, dict):
                c.bad(gpath, f"expected a table {{gateway = ..., weight = ...}}, got {_show(g)}")
                continue
            c.known(g, gpath, ("gateway", "weight"))
            if "gateway" not in g:
                c.bad(f"{gpath}.gateway", "is required")
                continue
            items.append((f"{gpath}.gateway", g["gateway"], g.get("weight", 1)))
    else:
        c.bad(where, f"expected a gateway address or a non-empty list of {{gateway, weight}}, got {_show(v)}")
        return None
    gws: list[tuple[IPAddress, Any, str]] = []
    ok = True
    for gpath, gtext, weight in items:
        if not isinstance(gtext, str):
            c.bad(gpath, f"expected a gateway address, got {_show(gtext)}")
            ok = False
            continue
        try:
            addr = ipaddress.ip_address(gtext)
        except ValueError:
            c.bad(gpath, f"{gtext!r} is not an IP address")
            ok = False
            continue
        if not any(addr in vn for vn in networks):
            c.bad(gpath, f"{addr} is not inside any overlay network ({', '.join(map(str, networks)) or 'none'})")
            ok = False
            continue
        gws.append((addr, weight, gpath))
    return gws if ok and gws else None


def _load_key(c: _Checker, where: str, path: str, base_dir: str, reader: Callable[[str], bytes],
              make: str = "tunkit genkey {path}") -> bytes | None:
    full = path if os.path.isabs(path) else os.path.join(base_dir, path)
    try:
        return reader(full)
    except FileNotFoundError:
        c.bad(where, f"{full}: no such file (make one with '{make.format(path=path)}')")
    except ValueError as e:
        c.bad(where, str(e))
    except OSError as e:
        c.bad(where, f"{full}: {e.strerror}")
    return None


def to_json(cfg: Config) -> dict:
    """A JSON-ready view of a Config (keys never printed; ``tunkit check -j``)."""
    return {
        "file": cfg.file,
        "device": {
            "name": cfg.device.name,
            "mtu": cfg.device.mtu,
            "device_mtu": cfg.device_mtu,
            "txqueuelen": cfg.device.txqueuelen,
            "workers": cfg.device.workers,
            "offloads": cfg.device.offloads,
        },
        "mode": cfg.mode,
        "network": {
            "addresses": [str(a) for a in cfg.addresses],
            "listen": str(cfg.listen),
            "key_file": cfg.key_file,
            "private_key_file": cfg.private_key_file,
            "insecure": cfg.insecure,
            "partial_checksums": cfg.partial_checksums,
            "use_system_route_table": cfg.use_system_route_table,
        },
        "peers": [
            {"name": p.name, "endpoint": str(p.endpoint) if p.endpoint else None,
             "prefixes": [str(x) for x in p.prefixes], "key_file": p.key_file,
             **({"public_key": base64.b64encode(p.public_key).decode(), "preshared_key_file": p.preshared_key_file,
                 "persistent_keepalive": p.persistent_keepalive} if cfg.mode == "wireguard" else {})}
            for p in cfg.peers
        ],
        "routes": [{"route": str(r.route), "mtu": r.mtu} for r in cfg.routes],
        "unsafe_routes": [
            {
                "route": str(u.route),
                "via": [{"gateway": str(g.address), "weight": g.weight} for g in u.via],
                "mtu": u.mtu,
                "metric": u.metric,
                "install": u.install,
            }
            for u in cfg.unsafe_routes
        ],
        "kernel_routes": [
            {k: v for k, v in (("dst", str(r.dst)), ("metric", r.metric), ("mtu", r.mtu), ("advmss", r.advmss),
                               ("prefsrc", str(r.src) if r.src else None)) if v is not None}
            for r in kernel_routes(cfg)
        ],
        "logging": {"level": cfg.log_level},
        "warnings": list(cfg.warnings),
    }
