"""wg-quick configuration files (``/etc/wireguard/wg0.conf``) read unchanged, as wg-quick and wg do; pure, no I/O.

    cfg = parse(text, "wg0.conf")          # ConfigError naming file, line and key
    cfg.stripped                           # what `wg-quick strip` prints: the `wg setconf` part
    cfg.interface.addresses, .mtu, .dns, .table, .post_up ...   # what wg-quick itself acts on
    config = to_interface_config(cfg, public_of, resolve=...)   # for Engine.apply (setconf rules)

Reading rules, from wg-quick (bash) and wg (``config.c``): ``#`` starts a
comment; section names and keys are case-insensitive; whitespace around keys
and values does not matter; list keys (Address, DNS, AllowedIPs) take commas
and may repeat; an unknown key is an error.  :data:`SUPPORT` says which keys
``tunkit up`` will act on, ignore with a message, or refuse
(:func:`support_report`); docs/uapi.md has the table.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from dataclasses import dataclass
from typing import Any

from tunkit.errors import ConfigError
from tunkit.wireguard.keys import clamp
from tunkit.wireguard.settings import InterfaceConfig
from tunkit.wireguard.uapi import UapiError, parse_set_line, plan_set

__all__ = ["Endpoint", "QuickPeer", "QuickInterface", "QuickConfig", "parse", "to_interface_config",
           "SUPPORT", "support_report"]

# wg-quick's own [Interface] keys (lower case); everything else goes to `wg setconf`
_QUICK_KEYS = {"address": "Address", "dns": "DNS", "mtu": "MTU", "table": "Table", "preup": "PreUp",
               "postup": "PostUp", "predown": "PreDown", "postdown": "PostDown", "saveconfig": "SaveConfig"}
_WG_INTERFACE = {"privatekey": "PrivateKey", "listenport": "ListenPort", "fwmark": "FwMark"}
_WG_PEER = {"publickey": "PublicKey", "presharedkey": "PresharedKey", "allowedips": "AllowedIPs",
            "endpoint": "Endpoint", "persistentkeepalive": "PersistentKeepalive"}

# what `tunkit up FILE` does with each key: (support, why)
SUPPORT = {
    "PrivateKey": ("supported", ""), "ListenPort": ("supported", ""), "FwMark": ("supported", ""),
    "Address": ("supported", ""), "MTU": ("supported", ""),
    "PublicKey": ("supported", ""), "PresharedKey": ("supported", ""), "AllowedIPs": ("supported", ""),
    "Endpoint": ("supported", ""), "PersistentKeepalive": ("supported", ""),
    "Table": ("supported", "auto and off only; a routing table number or name is refused"),
    "DNS": ("ignored", "tunkit does not change the system's resolver; configure DNS yourself"),
    "SaveConfig": ("ignored", "false is the only behaviour: tunkit never writes the file back (true is refused)"),
    "PreUp": ("refused", "tunkit up runs no shell commands from a configuration; run the file with wg-quick and "
                         "WG_QUICK_USERSPACE_IMPLEMENTATION to keep its hooks"),
}
for _k in ("PostUp", "PreDown", "PostDown"):
    SUPPORT[_k] = SUPPORT["PreUp"]


@dataclass(frozen=True)
class Endpoint:
    """``host`` is an IP address or a name still to be resolved (``is_name``); ``port`` 0..65535."""
    host: str
    port: int
    is_name: bool = False


@dataclass(frozen=True)
class QuickPeer:
    public_key: bytes
    preshared_key: bytes | None = None
    allowed_ips: tuple = ()                      # ip_network, host bits masked (as wg does), in order
    endpoint: Endpoint | None = None
    persistent_keepalive: int | None = None      # None: not in the file (0 and "off" mean off)
    line: int = 0                                # where its [Peer] section starts


@dataclass(frozen=True)
class QuickInterface:
    private_key: bytes | None = None
    listen_port: int | None = None
    fwmark: int | None = None                    # "off" reads as 0
    addresses: tuple = ()                        # ip_interface, e.g. 10.0.0.1/24
    mtu: int | None = None
    dns: tuple = ()                              # ip_address values of DNS
    dns_search: tuple = ()                       # names in DNS (wg-quick's search domains)
    table: str | None = None                     # "auto", "off", or a table number/name as written
    pre_up: tuple = ()
    post_up: tuple = ()
    pre_down: tuple = ()
    post_down: tuple = ()
    save_config: bool = False


@dataclass(frozen=True)
class QuickConfig:
    path: str
    interface: QuickInterface
    peers: tuple
    stripped: str                                # the `wg setconf` subset, line for line as `wg-quick strip`
    keys: tuple                                  # the canonical names of every key used, in order of first use


def _key(value: str, where, what: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(value) != 44 or len(raw) != 32:
        raise ConfigError(f"{value!r} is not a key (44 characters of base64, as wg genkey writes)", **where)
    return raw


def _number(value: str, where, top: int, *, off: bool = False, hex_ok: bool = False) -> int:
    if off and value.lower() == "off":
        return 0
    base = 10
    digits = value
    if hex_ok and value[:2].lower() == "0x":
        base, digits = 16, value[2:]
    try:
        if not digits or not digits.isascii() or not digits.isalnum() or len(digits) > 32:
            raise ValueError
        n = int(digits, base)
    except ValueError:
        raise ConfigError(f"{value!r} is not a number" + (" or off" if off else ""), **where) from None
    if n > top:
        raise ConfigError(f"{value} is outside 0..{top}", **where)
    return n


def _endpoint(value: str, where) -> Endpoint:
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        if not sep or not host:
            raise ConfigError(f"{value!r} is not [IPv6]:PORT", **where)
    else:
        host, sep, port = value.rpartition(":")
        if not sep or not host or ":" in host:
            raise ConfigError(f"{value!r} is not HOST:PORT (an IPv6 address goes in brackets)", **where)
    n = _number(port, where, 65535)
    try:
        return Endpoint(str(ipaddress.ip_address(host)), n)
    except ValueError:
        pass
    labels = host.rstrip(".").split(".")
    if value.startswith("[") or not all(lab and len(lab) <= 63 and lab.replace("-", "").isalnum() and lab.isascii()
                                        for lab in labels) or len(host) > 253:
        raise ConfigError(f"{host!r} is neither an IP address nor a host name", **where)
    return Endpoint(host, n, is_name=True)


def _allowed(value: str, where) -> list:
    out = []
    for item in filter(None, (s.strip() for s in value.split(","))):
        addr, slash, bits = item.partition("/")
        try:
            ip = ipaddress.ip_address(addr)
            n = ip.max_prefixlen if not slash else _number(bits, where, ip.max_prefixlen)
            out.append(ipaddress.ip_network(f"{ip}/{n}", strict=False))
        except ValueError:
            raise ConfigError(f"{item!r} is not an IP prefix (ADDRESS/BITS)", **where) from None
    return out


def _canonical_key(section: str, key: str, lk: str, file: str) -> tuple[dict, str]:
    """The key table a line of ``section`` belongs to and the key's canonical spelling; unknown keys raise."""
    table = _QUICK_KEYS if section == "interface" and lk in _QUICK_KEYS else (
        _WG_INTERFACE if section == "interface" else _WG_PEER)
    canonical = table.get(lk)
    if canonical is None:
        known = ", ".join(list(_WG_INTERFACE.values()) + list(_QUICK_KEYS.values())) if section == "interface" \
            else ", ".join(_WG_PEER.values())
        raise ConfigError(f"unknown key {key!r} (one of {known})", file=file, key=f"[{section.capitalize()}] {key}")
    return table, canonical


def _peer_key(p: dict, canonical: str, value: str, where) -> None:
    """One ``[Peer]`` line into the peer's fields."""
    if canonical == "PublicKey":
        p["public_key"] = _key(value, where, canonical)
    elif canonical == "PresharedKey":
        p["preshared_key"] = _key(value, where, canonical)
    elif canonical == "AllowedIPs":
        p["allowed_ips"] += _allowed(value, where)
    elif canonical == "Endpoint":
        p["endpoint"] = _endpoint(value, where)
    else:
        p["persistent_keepalive"] = _number(value, where, 65535, off=True)


def _interface_key(iface: dict, canonical: str, value: str, where) -> None:
    """One ``[Interface]`` line (a wg key or a wg-quick one) into the interface's fields."""
    if canonical == "PrivateKey":
        iface["private_key"] = _key(value, where, canonical)
    elif canonical == "ListenPort":
        iface["listen_port"] = _number(value, where, 65535)
    elif canonical == "FwMark":
        iface["fwmark"] = _number(value, where, 0xFFFFFFFF, off=True, hex_ok=True)
    elif canonical == "MTU":
        iface["mtu"] = _number(value, where, 65535)
    elif canonical == "Table":
        if not value:
            raise ConfigError("empty Table (auto, off, or a routing table)", **where)
        iface["table"] = value
    elif canonical == "SaveConfig":
        if value not in ("true", "false"):
            raise ConfigError(f"{value!r} is neither true nor false", **where)
        iface["save_config"] = value == "true"
    elif canonical in ("PreUp", "PostUp", "PreDown", "PostDown"):
        iface[{"PreUp": "pre_up", "PostUp": "post_up", "PreDown": "pre_down", "PostDown": "post_down"}[canonical]
              ].append(value)
    else:  # Address, DNS: comma and/or space separated, as wg-quick splits ${value//,/ }
        for item in value.replace(",", " ").split():
            try:
                if canonical == "Address":
                    iface["addresses"].append(ipaddress.ip_interface(item))
                else:
                    iface["dns"].append(ipaddress.ip_address(item))
            except ValueError:
                if canonical == "Address":
                    raise ConfigError(f"{item!r} is not an address (ADDRESS or ADDRESS/BITS)", **where) from None
                iface["dns_search"].append(item)


def parse(text: str, path: str = "<config>") -> QuickConfig:
    """Read a wg-quick file; raises :class:`ConfigError` naming ``path:line`` and ``[Section] Key``."""
    section = None
    iface: dict = {"addresses": [], "dns": [], "dns_search": [], "pre_up": [], "post_up": [], "pre_down": [],
                   "post_down": []}
    peers: list[dict] = []
    stripped: list[str] = []
    keys: dict[str, None] = {}
    seen_interface = False
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            stripped.append(raw)
            continue
        file = f"{path}:{lineno}"
        where: dict[str, str | None] = {"file": file, "key": None}
        if line.startswith("["):
            name = line.lower()
            if name == "[interface]":
                if seen_interface:
                    raise ConfigError("a second [Interface] section", file=where["file"])
                section, seen_interface = "interface", True
            elif name == "[peer]":
                section = "peer"
                peers.append({"allowed_ips": [], "line": lineno})
            else:
                raise ConfigError(f"unknown section {line!r} (expected [Interface] or [Peer])", file=where["file"])
            stripped.append(raw)
            continue
        key, eq, value = line.partition("=")
        key, value = key.strip(), value.strip()
        lk = key.lower()
        if section is None or not eq:
            raise ConfigError(f"{line!r} is not 'Key = Value' inside [Interface] or [Peer]", file=where["file"])
        table, canonical = _canonical_key(section, key, lk, file)
        where["key"] = f"[{section.capitalize()}] {canonical}"
        keys[canonical] = None
        if table is not _QUICK_KEYS:
            stripped.append(raw)
        if section == "peer":
            _peer_key(peers[-1], canonical, value, where)
        else:
            _interface_key(iface, canonical, value, where)
    if not seen_interface:
        raise ConfigError("no [Interface] section", file=path)
    out = []
    for p in peers:
        if "public_key" not in p:
            raise ConfigError("a [Peer] without PublicKey", file=f"{path}:{p['line']}", key="[Peer] PublicKey")
        p["allowed_ips"] = tuple(p["allowed_ips"])
        out.append(QuickPeer(**p))
    for k in ("addresses", "dns", "dns_search", "pre_up", "post_up", "pre_down", "post_down"):
        iface[k] = tuple(iface[k])
    return QuickConfig(path, QuickInterface(**iface), tuple(out), "\n".join(stripped) + "\n", tuple(keys))


def to_interface_config(cfg: QuickConfig, public_of, *, resolve=None, base: InterfaceConfig | None = None
                        ) -> InterfaceConfig:
    """The configuration ``wg setconf`` would make from ``cfg`` (``base``: what is there now, for ListenPort/FwMark
    left out of the file).

    The same rules as the UAPI set (:func:`tunkit.wireguard.uapi.plan_set`):
    a peer listed twice is merged, a prefix on two peers goes to the later
    one, a peer with the interface's own key is ignored.  ``resolve(host,
    port) -> (ip, port)`` turns host names into addresses (I/O; without it a
    name is a ConfigError).  ``public_of(private_key)`` is X25519.
    """
    i = cfg.interface
    lines: list[tuple[str, Any]] = [("replace_peers", True)]
    if i.private_key is not None:  # wg passes it on and the implementation clamps it; zero removes the key
        lines.append(("private_key", clamp(i.private_key) if any(i.private_key) else None))
    if i.listen_port is not None:
        lines.append(("listen_port", i.listen_port))
    if i.fwmark is not None:
        lines.append(("fwmark", i.fwmark))
    for p in cfg.peers:
        lines += [("public_key", p.public_key), ("replace_allowed_ips", True)]
        if p.preshared_key is not None:
            lines.append(("preshared_key", p.preshared_key if any(p.preshared_key) else None))
        if p.endpoint is not None:
            host, port = p.endpoint.host, p.endpoint.port
            if p.endpoint.is_name:
                if resolve is None:
                    raise ConfigError(f"{host} is a name and nothing resolves it here", file=f"{cfg.path}:{p.line}",
                                      key="[Peer] Endpoint")
                host, port = resolve(host, port)[:2]
            try:
                lines.append(parse_set_line(f"endpoint={_fmt(host, port)}", True))
            except UapiError as e:
                raise ConfigError(str(e), file=f"{cfg.path}:{p.line}", key="[Peer] Endpoint") from None
        if p.persistent_keepalive is not None:
            lines.append(("persistent_keepalive_interval", p.persistent_keepalive))
        lines += [("allowed_ip", (False, net)) for net in p.allowed_ips]
    return plan_set(base or InterfaceConfig(), lines, public_of)


def _fmt(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def support_report(cfg: QuickConfig) -> tuple[list[str], list[str]]:
    """``(ignored, refused)`` messages for ``tunkit up``, each naming the file and key; empty lists: all supported."""
    ignored, refused = [], []
    for key in cfg.keys:
        level, why = SUPPORT[key]
        if key == "Table" and cfg.interface.table not in ("auto", "off"):
            refused.append(f"{cfg.path}: Table = {cfg.interface.table}: {why}")
        elif key == "SaveConfig" and cfg.interface.save_config:
            refused.append(f"{cfg.path}: SaveConfig = true: {why}")
        elif level == "ignored":
            ignored.append(f"{cfg.path}: {key} ignored: {why}")
        elif level == "refused":
            refused.append(f"{cfg.path}: {key} refused: {why}")
    return ignored, refused
