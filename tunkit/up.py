"""``tunkit up``: run one host of the overlay from a configuration file; does I/O.

:class:`Host` turns a validated :class:`~tunkit.config.Config` into a running
overlay: it creates the TUN device (through :class:`~tunkit.node.TunnelNode`),
configures it over rtnetlink (address-generation mode off, txqueuelen,
addresses reconciled, the routes of :func:`~tunkit.config.kernel_routes`
with MTU/advmss/metric), runs the tunnel, and on exit removes what it added:
its routes and addresses go with the device, which the kernel deletes when
the last queue closes.

Reload (SIGHUP, ``tunkit reload``): the file is read again; if it is invalid
the running configuration stays and the log says why.  Otherwise only the
difference is applied (:func:`~tunkit.config.plan_reload`): routes removed
are deleted first, changed and new ones replaced, MTU and txqueuelen set,
addresses reconciled, and peers, keys and routing handed to the tunnel
without restarting it, so traffic to unchanged peers keeps flowing.
Settings that cannot change live (device name, workers, ...) are logged and
keep their running values.
"""

from __future__ import annotations

import errno
import logging
import os

from tunkit.config import Config, ConfigError, KernelRoute, kernel_routes, load, plan_reload

log = logging.getLogger("tunkit.up")


def worker_count(cfg: Config) -> int:
    return cfg.device.workers or os.cpu_count() or 1


class Host:
    """One host's overlay: ``start()``, ``run()`` (blocks), ``close()``; ``reload()`` any time in the loop."""

    def __init__(self, cfg: Config, *, status_path: str | None = None, status_dir: str | None = None) -> None:
        self.cfg = cfg
        self.status_path = status_path
        self.status_dir = status_dir
        self.node = None
        self.rt = None
        self.installed: dict[tuple, KernelRoute] = {}
        self.reloads = 0

    # -- bring-up ------------------------------------------------------------------------
    def start(self) -> None:
        from tunkit.netlink.client import Rtnl
        from tunkit.node import TunnelNode
        from tunkit.tunnel import specs_from_config

        cfg = self.cfg
        peers, routes = specs_from_config(cfg)
        self.node = TunnelNode(
            device=cfg.device.name,
            peers=peers,
            routes=routes,
            listen=(str(cfg.listen.address), cfg.listen.port),
            mtu=cfg.device_mtu,
            addresses=[a.ip for a in cfg.addresses],  # ICMP errors are sourced from these
            insecure=cfg.insecure,
            tunnel_options={"partial_checksums": True} if cfg.partial_checksums else None,
            workers=worker_count(cfg),
            offloads=cfg.device.offloads,
            system_routes=cfg.use_system_route_table,
        )
        try:
            self.node.start()  # device created with its MTU, up
            name = self.node.device_name
            if self.status_path is None:
                from tunkit.status import DEFAULT_DIR, socket_path

                self.status_path = socket_path(name, self.status_dir or DEFAULT_DIR)
            self.node.status_path = self.status_path
            self.rt = Rtnl()
            self.rt.set_link(name, addr_gen_mode="none", txqlen=cfg.device.txqueuelen)
            self.rt.reconcile_addresses(name, cfg.addresses)
            self.rt.set_link(name, up=True)
            for kr in kernel_routes(cfg):
                self._replace(kr)
            log.info("%s up: %s; %d peer(s), %d kernel route(s), mtu %d, %d worker(s)", name,
                     " ".join(map(str, cfg.addresses)), len(cfg.peers), len(self.installed), cfg.device_mtu,
                     worker_count(cfg))
        except BaseException:
            self.close()
            raise

    def _route_kw(self, kr: KernelRoute) -> dict:
        kw = {"dev": self.node.device_name, "metric": kr.metric, "mtu": kr.mtu, "advmss": kr.advmss}
        if kr.src is not None:
            kw["prefsrc"] = kr.src
        return {k: v for k, v in kw.items() if v is not None}

    def _replace(self, kr: KernelRoute) -> None:
        self.rt.replace_route(kr.dst, **self._route_kw(kr))
        self.installed[kr.identity] = kr

    def _delete(self, kr: KernelRoute) -> None:
        from tunkit.errors import NetlinkError

        try:
            self.rt.delete_route(kr.dst, **self._route_kw(kr))
        except NetlinkError as e:  # ESRCH: someone removed it already; the goal holds
            if e.errno != errno.ESRCH:
                raise
        self.installed.pop(kr.identity, None)

    # -- running -------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until SIGINT/SIGTERM; SIGHUP reloads the configuration file."""
        import signal

        self.node.run(signals={signal.SIGHUP: self.reload})

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()

    # -- reload --------------------------------------------------------------------------
    def reload(self) -> bool:
        """Re-read the file and apply the difference; False (and the old config kept) if invalid."""
        try:
            new = load(self.cfg.file)
        except ConfigError as e:
            log.error("reload: %s; keeping the running configuration", e)
            return False
        return self.apply(new)

    def apply(self, new: Config) -> bool:
        """Apply ``new`` over the running configuration (the file is not read)."""
        from tunkit.tunnel import specs_from_config

        plan = plan_reload(self.cfg, new)
        for msg in plan.cannot_change_live:
            log.warning("reload: %s", msg)
        new = plan.config  # the new file with what cannot change live kept as it runs
        name = self.node.device_name
        errors = self._each(self._delete, plan.routes_delete)
        if plan.device_mtu is not None:
            self.rt.set_link(name, mtu=plan.device_mtu)
        if plan.txqueuelen is not None:
            self.rt.set_link(name, txqlen=plan.txqueuelen)
        if plan.addresses_changed:
            self.rt.reconcile_addresses(name, new.addresses)
        errors += self._each(self._replace, plan.routes_replace)
        if plan.routing_changed or plan.device_mtu is not None:
            peers, routes = specs_from_config(new)
            self.node.reconfigure(peers, routes, mtu=new.device_mtu)
        if plan.log_level:
            logging.getLogger("tunkit").setLevel(plan.log_level.upper())
        self.cfg = new
        self.reloads += 1
        log.info(
            "reload: %d route(s) deleted, %d replaced%s%s; peers +%d -%d ~%d%s",
            len(plan.routes_delete), len(plan.routes_replace),
            f", mtu {plan.device_mtu}" if plan.device_mtu else "",
            ", addresses reconciled" if plan.addresses_changed else "",
            len(plan.peers_added), len(plan.peers_removed), len(plan.peers_changed),
            f"; {errors} error(s)" if errors else "",
        )
        return errors == 0

    @staticmethod
    def _each(action, routes) -> int:
        """Apply ``action`` to every route, logging (not raising) kernel refusals; how many failed."""
        failed = 0
        for kr in routes:
            try:
                action(kr)
            except OSError as e:  # one refused route must not stop the rest of the reload
                failed += 1
                log.error("reload: %s", e)
        return failed

    # -- tear-down -----------------------------------------------------------------------
    def close(self) -> None:
        """Remove what this host added and stop the tunnel; safe to call twice."""
        if self.rt is not None and self.node is not None and self.node.device is not None:
            for kr in list(self.installed.values()):
                try:
                    self._delete(kr)
                except OSError as e:  # the device may already be gone; its routes went with it
                    log.debug("close: %s", e)
        self.installed.clear()
        if self.node is not None:
            self.node.close()  # closes every queue: the kernel deletes the device and its addresses
            self.node = None
        if self.rt is not None:
            self.rt.close()
            self.rt = None
