"""What the kernel should carry for a configuration, and what a reload changes; pure (no I/O).

:func:`kernel_routes` is the route set ``tunkit up`` installs; :func:`plan_reload`
compares a running :class:`~tunkit.app.config.Config` with a new one and returns a
:class:`ReloadPlan`, after checking that the configuration it would run
(the new file, with the settings that cannot change live kept) passes the
tunnel's rules, so that a plan always applies.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Union

from tunkit.errors import ConfigError

if TYPE_CHECKING:
    from tunkit.app.config import Config

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


@dataclass(frozen=True, order=True)
class KernelRoute:
    """One route tunkit installs through the overlay device.

    ``mtu``/``advmss`` are ``None`` when the route simply inherits the device MTU.
    Its kernel identity (what replace/delete match) is (dst, metric).
    """

    dst: IPNetwork
    metric: int | None = None
    mtu: int | None = None
    advmss: int | None = None
    src: IPAddress | None = None

    @property
    def identity(self) -> tuple:
        return (self.dst.version, self.dst, self.metric)


def advmss_for(mtu: int, version: int) -> int:
    """TCP MSS for a route MTU: minus 40 bytes of IPv4+TCP, or 60 of IPv6+TCP."""
    return mtu - (40 if version == 4 else 60)


def kernel_routes(cfg: Config) -> list[KernelRoute]:
    """The routes ``tunkit up`` installs on the device for ``cfg``."""
    dev_mtu = cfg.device_mtu
    out: dict[tuple, KernelRoute] = {}

    def add(dst: IPNetwork, mtu: int, metric: int | None, src: IPAddress | None = None) -> None:
        explicit = mtu != dev_mtu
        kr = KernelRoute(
            dst,
            metric=metric,
            mtu=mtu if explicit else None,
            advmss=advmss_for(mtu, dst.version) if explicit else None,
            src=src,
        )
        out[kr.identity] = kr  # a later entry for the same prefix and metric wins, as in the kernel

    if dev_mtu != cfg.device.mtu:
        # The device MTU was raised for some route: connected overlay networks keep the default.
        for a in cfg.addresses:
            add(a.network, cfg.device.mtu, None if a.version == 4 else 256, a.ip)
    for r in cfg.routes:
        add(r.route, r.mtu, None)
    for u in cfg.unsafe_routes:
        if u.install:
            add(u.route, u.mtu or cfg.device.mtu, u.metric)
    return sorted(out.values(), key=lambda k: (k.dst.version, k.dst, k.metric or 0))


@dataclass(frozen=True)
class ReloadPlan:
    """The difference between a running configuration and a new one."""

    routes_delete: tuple[KernelRoute, ...] = ()
    routes_replace: tuple[KernelRoute, ...] = ()
    device_mtu: int | None = None  # new device MTU, or None if unchanged
    txqueuelen: int | None = None
    addresses_changed: bool = False
    peers_added: tuple[str, ...] = ()
    peers_removed: tuple[str, ...] = ()
    peers_changed: tuple[str, ...] = ()  # endpoint, prefixes or key changed
    # (old name, new name): a peer removed and one added with the same endpoint and key, i.e. the same
    # peer under a new name (what identifies a peer on the wire is its endpoint and key, not its name)
    peers_renamed: tuple[tuple[str, str], ...] = ()
    routing_changed: bool = False  # the overlay routing table must be rebuilt
    log_level: str | None = None
    cannot_change_live: tuple[str, ...] = ()  # messages: restart tunkit to apply
    config: Config | None = None  # what runs after the reload: the new file, fixed settings kept

    @property
    def empty(self) -> bool:
        return not (self.routes_delete or self.routes_replace or self.device_mtu or self.txqueuelen
                    or self.addresses_changed or self.peers_added or self.peers_removed or self.peers_changed
                    or self.routing_changed or self.log_level or self.cannot_change_live)


def plan_reload(old: Config, new: Config) -> ReloadPlan:
    """Compare two configurations; pure.  Routes removed are deleted before
    changed or added ones are replaced; unchanged routes are left alone.

    Settings that cannot change while running keep their old values in
    ``plan.config`` (each change is named in ``cannot_change_live``); every
    other difference is computed against that configuration, and that
    configuration is checked with the set rules the tunnel runs
    (:meth:`Config.check_specs`): a plan exists only for something that
    applies, so nothing is touched for a reload that would fail (raises
    :class:`~tunkit.errors.ConfigError`).
    """
    fixed = [
        f"{label} changed from {_fmt(a)} to {_fmt(b)}: cannot change while running; restart tunkit"
        for label, a, b in (
            ("device.name", old.device.name, new.device.name),
            ("device.workers", old.device.workers, new.device.workers),
            ("device.offloads", old.device.offloads, new.device.offloads),
            ("network.listen", old.listen, new.listen),
            ("network.insecure", old.insecure, new.insecure),
            ("network.partial_checksums", old.partial_checksums, new.partial_checksums),
            ("network.use_system_route_table", old.use_system_route_table, new.use_system_route_table),
        )
        if a != b
    ]
    new = replace(
        new,
        device=replace(new.device, name=old.device.name, workers=old.device.workers, offloads=old.device.offloads),
        listen=old.listen,
        insecure=old.insecure,
        partial_checksums=old.partial_checksums,
        use_system_route_table=old.use_system_route_table,
    )
    try:
        new.check_specs()
    except ConfigError as e:
        kept = ", ".join(m.split(" changed", 1)[0] for m in fixed)
        raise ConfigError(f"{e.message}, with {kept} kept as running" if fixed else e.message,
                          file=new.file, key=e.key) from None
    old_k = {k.identity: k for k in kernel_routes(old)}
    new_k = {k.identity: k for k in kernel_routes(new)}
    delete = tuple(k for i, k in old_k.items() if i not in new_k)
    replace_ = tuple(k for i, k in new_k.items() if old_k.get(i) != k)
    op = {p.name: p for p in old.peers}
    np_ = {p.name: p for p in new.peers}
    changed = tuple(
        n for n in np_ if n in op and (op[n] != np_[n] or old.peer_key(op[n]) != new.peer_key(np_[n]))
    )
    gone = [n for n in op if n not in np_]
    renamed = []
    for n in (n for n in np_ if n not in op):
        was = next((g for g in gone if op[g].endpoint == np_[n].endpoint
                    and old.peer_key(op[g]) == new.peer_key(np_[n])), None)
        if was is not None:
            gone.remove(was)
            renamed.append((was, n))
    routing = (
        changed != () or set(op) != set(np_)
        or [(u.route, u.via) for u in old.unsafe_routes] != [(u.route, u.via) for u in new.unsafe_routes]
        or old.addresses != new.addresses
        or old.routes != new.routes
    )
    return ReloadPlan(
        routes_delete=delete,
        routes_replace=replace_,
        device_mtu=new.device_mtu if new.device_mtu != old.device_mtu else None,
        txqueuelen=new.device.txqueuelen if new.device.txqueuelen != old.device.txqueuelen else None,
        addresses_changed=old.addresses != new.addresses,
        peers_added=tuple(n for n in np_ if n not in op),
        peers_removed=tuple(n for n in op if n not in np_),
        peers_changed=changed,
        peers_renamed=tuple(renamed),
        routing_changed=routing,
        log_level=new.log_level if new.log_level != old.log_level else None,
        cannot_change_live=tuple(fixed),
        config=new,
    )


def _fmt(v: Any) -> str:
    """A value as the config file spells it (true/false, quoted strings)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(v) if isinstance(v, str) else str(v)
