"""``tunkit up``: run one host of the overlay from a configuration file; does I/O.

:class:`Host` turns a validated :class:`~tunkit.app.config.Config` into a running
overlay: it creates the TUN device (through :class:`~tunkit.overlay.node.TunnelNode`),
configures it over rtnetlink (address-generation mode off, txqueuelen,
addresses reconciled, the routes of :func:`~tunkit.app.config.kernel_routes`
with MTU/advmss/metric), runs the tunnel, and on exit removes what it added:
its routes and addresses go with the device, which the kernel deletes when
the last queue closes.

Reload (SIGHUP, ``tunkit reload``): the file is read again and validated by
the same rules as ``tunkit check`` and ``tunkit up``, and the whole change is
planned (:func:`~tunkit.app.config.plan_reload`) before anything is touched.  An
invalid file or a plan that would not apply keeps the running configuration
and the log says why.  Otherwise only the difference is applied: routes
removed are deleted first, MTU and txqueuelen set, addresses reconciled,
changed and new routes replaced, and peers, keys and routing handed to the
tunnel last, without restarting it, so traffic to unchanged peers keeps
flowing.  If any step fails, the kernel changes already made are undone and
the old configuration keeps running.  A reload never stops the process.
Settings that cannot change live (device name, workers, ...) are logged and
keep their running values.
"""

from __future__ import annotations

import errno
import logging
import os
import time

from tunkit.app.config import Config, ConfigError, KernelRoute, kernel_routes, load, plan_reload

log = logging.getLogger("tunkit.app.up")


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
        from tunkit.overlay.node import TunnelNode

        cfg = self.cfg
        self.node = TunnelNode(
            device=cfg.device.name,
            peers=list(cfg.peer_specs),
            routes=list(cfg.route_specs),
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
                from tunkit.overlay.status import DEFAULT_DIR, socket_path

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
        """Re-read the file and apply the difference; False if it was refused or failed.

        Never raises and never stops the tunnel: an invalid file, a plan that
        would not apply, or a failure while applying is logged and the running
        configuration stays, kernel state included (see :meth:`apply`).
        """
        try:
            new = load(self.cfg.file)
        except ConfigError as e:
            log.error("reload: %s; keeping the running configuration", e)
            return False
        except Exception as e:  # noqa: BLE001 (anything else from reading: logged, never fatal)
            log.error("reload: %s: %s: %s; keeping the running configuration", self.cfg.file, type(e).__name__, e)
            return False
        for w in new.warnings:
            log.warning("reload: %s", w)
        try:
            return self.apply(new)
        except ConfigError as e:
            log.error("reload: %s; keeping the running configuration", e)
        except Exception as e:  # noqa: BLE001 (apply rolled the kernel back before re-raising)
            log.error("reload: %s: %s; rolled back, keeping the running configuration", type(e).__name__, e)
        return False

    def apply(self, new: Config) -> bool:
        """Apply ``new`` over the running configuration (the file is not read).

        The plan is computed and validated completely first
        (:func:`~tunkit.app.config.plan_reload` raises ConfigError for anything
        the tunnel would refuse), so a refused configuration touches nothing.
        Then kernel state changes (routes removed, MTU, txqueuelen, addresses,
        routes added or replaced) and the tunnel takes the new peers last.  If
        any step fails, every kernel change made so far is undone (the old
        routes, addresses, MTU and txqueuelen restored) and the exception is
        raised; the tunnel keeps its old peers.
        """
        if "wireguard" in (new.mode, self.cfg.mode) and new.mode != self.cfg.mode:
            raise ConfigError(f"the new file runs in {new.mode} mode and this host in {self.cfg.mode} mode; "
                              "a mode change needs a restart", file=new.file, key="network")
        plan = plan_reload(self.cfg, new)  # ConfigError: nothing touched
        for msg in plan.cannot_change_live:
            log.warning("reload: %s", msg)
        new = plan.config  # the new file with what cannot change live kept as it runs
        old = self.cfg
        name = self.node.device_name
        before = self._kernel_snapshot(name, plan)
        try:
            for kr in plan.routes_delete:
                self._delete(kr)
            if plan.device_mtu is not None:
                self.rt.set_link(name, mtu=plan.device_mtu)
            if plan.txqueuelen is not None:
                self.rt.set_link(name, txqlen=plan.txqueuelen)
            if plan.addresses_changed:
                self.rt.reconcile_addresses(name, new.addresses)
            for kr in plan.routes_replace:
                self._replace(kr)
            if plan.routing_changed or plan.device_mtu is not None:
                self.node.reconfigure(list(new.peer_specs), list(new.route_specs), mtu=new.device_mtu)
        except BaseException:
            self._restore(name, old, before)
            raise
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
            "".join(f"; peer {a} renamed {b}" for a, b in plan.peers_renamed),
        )
        return True

    def _kernel_snapshot(self, name: str, plan) -> dict:
        """What a rollback restores that the running Config does not say (the kernel's txqueuelen)."""
        snap: dict = {"installed": dict(self.installed)}
        if plan.txqueuelen is not None or plan.device_mtu is not None:
            link = self.rt.link(name)
            snap["txqlen"], snap["mtu"] = link.txqlen, link.mtu
        return snap

    def _restore(self, name: str, old: Config, before: dict) -> None:
        """Put the kernel back as ``old`` had it after a failed apply; logs what it cannot restore."""
        steps = []
        if before.get("mtu") is not None:
            steps.append(("mtu", lambda: self.rt.set_link(name, mtu=before["mtu"])))
        if before.get("txqlen") is not None:
            steps.append(("txqueuelen", lambda: self.rt.set_link(name, txqlen=before["txqlen"])))
        steps.append(("addresses", lambda: self.rt.reconcile_addresses(name, old.addresses)))
        wanted = {kr.identity: kr for kr in before["installed"].values()}
        for ident, kr in list(self.installed.items()):
            if ident not in wanted:
                steps.append((f"route {kr.dst}", lambda kr=kr: self._delete(kr)))
        for kr in wanted.values():  # replace is idempotent: also re-adds routes an address change flushed
            steps.append((f"route {kr.dst}", lambda kr=kr: self._replace(kr)))
        for what, step in steps:
            try:
                step()
            except OSError as e:  # keep restoring the rest
                log.error("reload rollback: %s: %s", what, e)
        self.installed = dict(before["installed"])

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


class WgQuickHost:
    """``tunkit up NAME.conf``: an unchanged wg-quick file as a WireGuard interface served by this process;
    also ``tunkit up FILE.toml`` in WireGuard mode (:func:`tunkit.app.config.wireguard_file`, the same shape).

    ``start()`` makes the interface (:class:`tunkit.overlay.wg.WgInterface`: the
    TUN device with the file's MTU, the UDP socket on ListenPort, the engine,
    the UAPI socket ``uapi_dir/NAME.sock`` so ``wg`` works), gives it the
    file's addresses and, with Table = auto, a route to the device for every
    allowed IP (as wg-quick does); ``run()`` blocks; ``close()`` removes the
    device (its addresses and routes go with it) and the socket.
    """

    def __init__(self, wq, *, uapi_dir: str | None = None, status_path: str | None = None) -> None:
        self.wq = wq
        self.uapi_dir = uapi_dir
        self.status_path = status_path
        self.iface = None
        self.status_server = None
        self.reloads = 0

    def start(self, *, signals: bool = False) -> None:
        """Bring it up; ``signals`` (main thread only): SIGINT/SIGTERM stop, SIGHUP reloads, installed before
        the status socket exists (so a ``tunkit reload`` can never meet the default action of SIGHUP)."""
        from tunkit.netlink.client import Rtnl
        from tunkit.overlay.uapi_server import SOCKET_DIR
        from tunkit.overlay.wg import WgInterface

        wq = self.wq
        self.iface = WgInterface(wq.name, wq.interface, mtu=wq.mtu,
                                 uapi_dir=self.uapi_dir if self.uapi_dir is not None else SOCKET_DIR,
                                 listen_host=wq.listen_host, offloads=wq.offloads)
        try:
            with Rtnl() as rt:
                rt.set_link(wq.name, addr_gen_mode="none")
                rt.reconcile_addresses(wq.name, wq.addresses)
                rt.set_link(wq.name, up=True)
                for net in wq.routes:
                    rt.replace_route(net, dev=wq.name)
            if signals:
                import signal

                for sig in (signal.SIGINT, signal.SIGTERM):
                    self.iface.loop.add_signal_handler(sig, self.stop)
                self.iface.loop.add_signal_handler(signal.SIGHUP, self.reload)  # tunkit reload: like wg syncconf
            from tunkit.overlay.status import DEFAULT_DIR, StatusServer, socket_path

            self.status_path = self.status_path or socket_path(wq.name, DEFAULT_DIR)
            self.status_server = StatusServer(self.status_path, self.iface.status)
            self.iface.loop.add_reader(self.status_server, self.status_server.on_readable)
            log.info("%s up (WireGuard, %s): %s; %d peer(s), %d route(s), mtu %d, port %d", wq.name, wq.file,
                     " ".join(map(str, wq.addresses)), len(wq.interface.peers), len(wq.routes), wq.mtu,
                     self.iface.path.port)
        except BaseException:
            self.close()
            raise

    def run(self) -> None:
        self.iface.run()

    def stop(self) -> None:
        if self.iface is not None:
            self.iface.stop()

    def status(self) -> dict:
        return self.iface.status()

    def reload(self) -> bool:
        """Re-read the file and apply its keys and peers live, like ``wg syncconf`` (in the loop thread).

        Validated as ``tunkit check`` does, then one ``Engine.apply``: all or
        nothing, peers that stay keep their sessions.  Address, MTU or route
        changes are logged and not applied (restart for those).  False (and
        the running configuration stays) if the file is refused.
        """
        from tunkit.app.config import load_wireguard

        try:
            new = load_wireguard(self.wq.file)  # a TOML file that left WireGuard mode: ConfigError
            if new.name != self.wq.name:
                raise ConfigError(f"the interface name changed from {self.wq.name} to {new.name}", file=new.file)
            self.iface.engine.apply(new.interface, now=time.monotonic(), prepare=self.iface.path.prepare)
        except (ValueError, OSError) as e:
            log.error("%s: reload refused, the running configuration stays: %s", self.wq.file, e)
            return False
        self.iface.path.applied()
        kept = [what for what, a, b in (("Address", new.addresses, self.wq.addresses), ("MTU", new.mtu, self.wq.mtu),
                                        ("routes", new.routes, self.wq.routes),
                                        ("listen address", new.listen_host, self.wq.listen_host)) if a != b]
        if kept:
            log.warning("%s: reload: %s changed; they apply at the next start", self.wq.file, ", ".join(kept))
        from dataclasses import replace

        self.wq = replace(new, addresses=self.wq.addresses, mtu=self.wq.mtu, routes=self.wq.routes,
                          listen_host=self.wq.listen_host)  # what runs
        self.reloads += 1
        log.info("%s: reloaded: %d peer(s)", self.wq.file, len(new.interface.peers))
        return True

    def close(self) -> None:
        if self.status_server is not None:
            self.status_server.close()
            self.status_server = None
        if self.iface is not None:
            self.iface.close()
            self.iface = None
