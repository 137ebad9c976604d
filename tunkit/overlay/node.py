"""Runs the overlay on one host: TUN device, worker loops, status socket, signals; does I/O.

:class:`TunnelNode` opens the TUN device (multi-queue when ``workers > 1``,
in virtio_net_hdr mode with TSO/USO offloads when the kernel has them), sets
its MTU and brings it up, and runs one :class:`~tunkit.overlay.tunnel.Tunnel` per
queue:

* ``workers == 1``: in the calling thread (any thread; signal handlers only
  when it is the main thread);
* ``workers > 1``: in forked worker processes, each with its own TUN queue
  and its own ``SO_REUSEPORT`` UDP socket on the listen port, all sharing the
  session id and the configuration; the parent answers ``tunkit status`` by
  asking every worker over a socketpair and merging the answers, and stops
  the workers on SIGTERM/SIGINT.  A worker whose parent disappears stops.

Link and route events (when :mod:`tunkit.netlink` is available): the node
watches its TUN over rtnetlink.  An MTU change reaches every worker (routes
without an MTU of their own follow it); the TUN going down or up is logged
and shown in the status.  With ``system_routes=True`` (nebula's
``use_system_route_table``) kernel routes through the TUN whose gateways are
peers' overlay addresses are mirrored into the routing table, one event at a
time; after a netlink overflow the monitor re-reads the kernel's state and
the differences are applied the same way.

Addresses and kernel routes are not this module's business: ``tunkit up``
(or a test) configures them; the node only owns the data path.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable

from tunkit.overlay import control
from tunkit.overlay.control import AddRoute, ControlError, Reconfigure, RemoveRoute, SetMtu, StatusRequest, WorkerConfig
from tunkit.errors import ConfigError
from tunkit.overlay.loop import PacketLoop
from tunkit.overlay.status import StatusServer, merge
from tunkit.overlay.tunnel import DEFAULT_MTU, PeerSpec, RouteSpec, Tunnel, TunnelOptions
from tunkit.overlay.udp import open_udp

log = logging.getLogger("tunkit.overlay.node")

# Largest super-packet the kernel may hand us, so that a train (header per datagram, packet, tag)
# fits the 65,507 bytes of one UDP send: 46 datagrams x 36 header bytes + 16 tag bytes + 63,000.
GSO_MAX_SIZE = 63000


class TunnelNode:
    """The tunnel of one host; ``start()`` then ``run()`` (blocks) then ``close()``."""

    def __init__(
        self,
        *,
        device: str,
        peers: Iterable[PeerSpec],
        routes: Iterable[RouteSpec] = (),
        listen: tuple[str, int],
        mtu: int = DEFAULT_MTU,
        addresses: Iterable = (),
        insecure: bool = False,
        workers: int = 1,
        offloads: bool = True,
        status_path: str | None = None,
        table_factory: Callable[[], object] | None = None,
        tunnel_options: dict | None = None,
        events: bool = True,
        system_routes: bool = False,
    ) -> None:
        if workers == 0:  # one per CPU, as the config's "workers = 0" asks
            workers = os.cpu_count() or 1
        if workers < 1:
            raise ValueError(f"workers {workers}: want at least 1 (0: one per CPU)")
        self.device_name = device
        self.peers = list(peers)
        self.routes = list(routes)
        self.listen = listen
        self.mtu = mtu
        self.workers = workers
        self.offloads = offloads
        self.status_path = status_path
        # one options object, validated here once, shared by every worker (only the sender index differs)
        self.options = TunnelOptions(insecure=insecure, mtu=mtu, addresses=tuple(addresses),
                                     session=int.from_bytes(os.urandom(4), "big"), start_counter=time.time_ns(),
                                     table_factory=table_factory, **dict(tunnel_options or {}))
        self.insecure = insecure
        self.device = None
        self.tunnel: Tunnel | None = None  # workers == 1
        self.loop: PacketLoop | None = None
        self.events = events
        self.system_routes = system_routes
        self.link_up: bool | None = None
        self._children: list[tuple[int, socket.socket]] = []
        self._status: StatusServer | None = None
        self._rtnl = None
        self._monitor = None

    # -- set-up -------------------------------------------------------------------------
    def start(self) -> None:
        from tunkit.tun.device import open_tun  # noqa: PLC0415 (lazy: ctypes only when a device is made)

        self.device = open_tun(
            self.device_name, queues=self.workers, multi_queue=self.workers > 1, vnet_hdr=self.offloads,
        )
        self.device_name = self.device.name
        self.device.mtu = self.mtu
        if self.device.vnet_hdr:
            limit_gso_size(self.device.ifindex, GSO_MAX_SIZE, self.device_name)
        self.device.up()
        self.options = self.options.replace(vnet_hdr=self.device.vnet_hdr, uso=self._uso(), mtu=self.mtu)
        log.info("%s: %d queue(s), vnet_hdr %s, offloads %s", self.device.name, self.workers,
                 self.device.vnet_hdr, self.device.offloads.name if self.device.offloads else "none")

    def _make_tunnel(self, index: int) -> Tunnel:
        sock = open_udp(*self.listen, reuseport=True)
        try:
            return Tunnel(self.device.queues[index], sock, self.peers, self.routes, self._options(), sender=index)
        except BaseException:
            sock.close()
            raise

    def status(self) -> dict:
        docs = [self.tunnel.status()] if self.tunnel is not None else self._ask_workers()
        doc = merge(docs)
        doc["worker_mtu"] = sorted({d.get("mtu") for d in docs if d.get("mtu") is not None})
        doc["device"] = self.device_name
        doc["pid"] = os.getpid()
        doc["mtu"] = self.mtu
        doc["link_up"] = self.link_up
        return doc

    # -- running ------------------------------------------------------------------------
    def run(self, *, signals: dict | None = None) -> None:
        """Serve until :meth:`stop`, SIGTERM or SIGINT (signals only in the main thread).

        ``signals`` maps more signal numbers to handlers run in the loop's
        thread (``tunkit up`` maps SIGHUP to its reload).
        """
        if self.device is None:
            self.start()
        self.loop = loop = PacketLoop()
        if self.status_path:
            self._status = StatusServer(self.status_path, self.status)
            loop.add_reader(self._status, self._status.on_readable)
        import threading  # noqa: PLC0415

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, loop.stop)
            for sig, handler in (signals or {}).items():
                loop.add_signal_handler(sig, handler)
        if self.workers == 1:
            self.tunnel = self._make_tunnel(0)
            self.tunnel.attach(loop)
        else:
            self._spawn_workers()
            loop.call_every(0.5, self._reap)
        if self.events:
            self._start_events(loop)
        try:
            loop.run()
        finally:
            self._stop_workers()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()

    def reconfigure(self, peers: Iterable[PeerSpec], routes: Iterable[RouteSpec] = (), *, mtu: int | None = None) -> None:
        """Apply new peers/routes (and MTU) to every worker; unchanged peers keep their state.

        Call from the loop's thread (e.g. a SIGHUP handler added with
        ``node.loop.add_signal_handler``).  Validated here first, so an invalid
        set raises :class:`~tunkit.errors.ConfigError` and changes nothing.
        """
        peers, routes = list(peers), list(routes)
        if self.tunnel is not None:
            self.tunnel.reconfigure(peers, routes, mtu=mtu)
        else:  # check in a scratch tunnel-less way: the same rules run in every worker
            from tunkit.overlay.tunnel import check_config  # noqa: PLC0415

            check_config(peers, routes, insecure=self.insecure, v6sock=":" in self.listen[0],
                         table_factory=self.options.table_factory)
            self._broadcast(Reconfigure(tuple(peers), tuple(routes), mtu))
        self.peers, self.routes = peers, routes
        if mtu is not None:
            self.mtu = mtu

    def close(self) -> None:
        self._stop_workers()
        for obj in (self._monitor, self._rtnl):
            if obj is not None:
                obj.close()
        self._monitor = self._rtnl = None
        if self.loop is not None:
            self.loop.close()
        if self._status is not None:
            self._status.close()
            self._status = None
        if self.tunnel is not None:
            self.tunnel.sock.close()
            self.tunnel = None
        if self.device is not None:
            self.device.close()
            self.device = None

    # -- link and route events ---------------------------------------------------------------
    def _start_events(self, loop: PacketLoop) -> None:
        from tunkit.netlink.client import Rtnl, RtnlMonitor  # noqa: PLC0415

        self._rtnl = Rtnl()
        self._monitor = RtnlMonitor(self._rtnl, ["link", "route"] if self.system_routes else ["link"])
        loop.add_reader(self._monitor, self._on_netlink)
        # subscribed first, then read: a change made before the subscription (while workers started)
        # is seen here, one made after it arrives as an event
        self.link_up = self.device.is_up
        mtu = self.device.mtu
        if mtu != self.mtu:
            log.info("%s: MTU %d -> %d", self.device_name, self.mtu, mtu)
            self.mtu = mtu
            self._broadcast(SetMtu(mtu))
        if self.system_routes:
            for r in self._rtnl.routes():
                self._mirror(r, True)

    def _on_netlink(self) -> None:
        from tunkit.netlink.events import LinkEvent, Resync, RouteEvent  # noqa: PLC0415

        for ev in self._monitor.events(timeout=0):
            if isinstance(ev, LinkEvent):
                if ev.index != self.device.ifindex:
                    continue
                if ev.action == "removed":
                    log.warning("%s: the device was deleted; stopping", self.device_name)
                    self.stop()
                    return
                if "mtu" in ev.changed and ev.mtu:
                    log.info("%s: MTU %d -> %d", self.device_name, self.mtu, ev.mtu)
                    self.mtu = ev.mtu
                    self._broadcast(SetMtu(ev.mtu))
                if ev.up != self.link_up:
                    log.info("%s: link %s", self.device_name, "up" if ev.up else "down")
                    self.link_up = ev.up
            elif isinstance(ev, RouteEvent) and self.system_routes:
                self._mirror(ev.route, ev.action != "removed")
            elif isinstance(ev, Resync):
                log.warning("%s: netlink overflow (%s): state re-read, differences applied", self.device_name, ev.reason)

    def _mirror(self, r, add: bool) -> None:
        """A kernel route through our TUN via gateways: into (or out of) every worker's table."""
        spec = route_spec_from_kernel(r, self.device.ifindex)
        if spec is None:
            if add and r.dst is not None and r.oif == self.device.ifindex:
                # replaced by a route without a gateway (or another kind): stop mirroring that prefix
                self._broadcast(RemoveRoute(r.dst))
            return
        self._broadcast(AddRoute(spec) if add else RemoveRoute(spec.route))

    def _broadcast(self, msg: control.Message) -> None:
        """Apply a control message here (one worker) or send it to every worker process."""
        if self.tunnel is not None:
            apply_control(self.tunnel, msg)
            return
        line = control.encode(msg)
        for _pid, s in self._children:
            try:
                s.sendall(line)
            except OSError as e:  # a worker that died is reaped by _reap
                log.warning("worker control: %s", e)

    # -- worker processes -------------------------------------------------------------------
    def _spawn_workers(self) -> None:
        """Start one worker process per queue: a fresh interpreter (fork+exec, safe with threads)
        that inherits only its TUN queue and a control socket, and gets its configuration over it."""
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        for i in range(self.workers):
            parent_end, child_end = socket.socketpair()
            qfd = self.device.queues[i].fileno()
            try:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "tunkit.overlay.node", "--worker", str(child_end.fileno()), str(qfd)],
                    pass_fds=(child_end.fileno(), qfd), env=env, stdin=subprocess.DEVNULL,
                )
            finally:
                child_end.close()
            self._children.append((proc, parent_end))
            parent_end.sendall(control.encode(WorkerConfig(i, tuple(self.listen), self._options(), tuple(self.peers),
                                                           tuple(self.routes))))

    def _options(self) -> TunnelOptions:
        """The one options object, with the MTU as it is now (a link event may have changed it)."""
        return self.options if self.options.mtu == self.mtu else self.options.replace(mtu=self.mtu)

    def _uso(self) -> bool:
        """USO negotiated: merged UDP datagrams may be written to the TUN."""
        from tunkit._uapi import TunOffload  # noqa: PLC0415

        off = self.device.offloads or 0
        return bool(off & TunOffload.USO4 and off & TunOffload.USO6)

    def _ask_workers(self, timeout: float = 2.0) -> list[dict]:
        docs = []
        for _pid, s in self._children:
            try:
                _drain(s)  # a reply that came after an earlier timeout must not answer this request
                s.sendall(control.encode(StatusRequest()))
                s.settimeout(timeout)
                buf = b""
                while not buf.endswith(b"\n"):
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                if buf:
                    docs.append(json.loads(buf))
            except (OSError, ValueError) as e:  # a worker that died or hangs: report the others
                log.warning("worker status: %s", e)
        return docs

    def _reap(self) -> None:
        for proc, _ in self._children:
            if proc.poll() is not None:
                log.warning("worker %d exited (status %d); stopping", proc.pid, proc.returncode)
                if self.loop is not None:
                    self.loop.stop()
                return

    def _stop_workers(self, timeout: float = 5.0) -> None:
        children, self._children = self._children, []
        for proc, s in children:
            if proc.poll() is None:
                proc.terminate()
            s.close()  # a worker also stops when its control socket closes
        for proc, _ in children:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def __enter__(self) -> "TunnelNode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def limit_gso_size(ifindex: int, size: int, name: str = "") -> bool:
    """Cap the super-packets the kernel hands the TUN (``IFLA_GSO_MAX_SIZE``) so that one fits,
    with the overlay's headers, in the 65,507 bytes of one UDP send.  False if not possible here."""
    try:
        from tunkit._uapi import IFLA, RTM  # noqa: PLC0415
        from tunkit.netlink.attr import AttrEncoder  # noqa: PLC0415
        from tunkit.netlink.rtnl import VERB_FLAGS, LinkMessage  # noqa: PLC0415
        from tunkit.netlink.socket import NetlinkSocket  # noqa: PLC0415
    except ImportError:  # no rtnetlink layer: trains of a full 64 KB super-packet take two sends
        return False
    enc = AttrEncoder()
    enc.u32(IFLA.GSO_MAX_SIZE, size)
    try:
        with NetlinkSocket() as nl:
            nl.request(RTM.NEWLINK, VERB_FLAGS["set"], LinkMessage(index=ifindex).encode() + enc.finish(),
                       op="link set", obj=f"{name} gso_max_size {size}")
    except OSError as e:  # older kernels refuse changing it: super-packets are then just sent in two parts
        log.info("%s: cannot set gso_max_size %d: %s", name, size, e)
        return False
    return True


def route_spec_from_kernel(r, ifindex: int) -> RouteSpec | None:
    """The overlay route a kernel route (RouteMessage) describes, or None if it is not one.

    Only main-table unicast routes whose next hops leave through ``ifindex``
    via a gateway count; weights come from the nexthops (``rtnh_hops + 1``).
    """
    if r.table not in (None, 254) or (r.type not in (0, 1)):  # RT_TABLE_MAIN, RTN_UNICAST
        return None
    via = []
    if r.multipath:
        for nh in r.multipath:
            gw = nh.gateway or nh.via
            if nh.oif == ifindex and gw is not None:
                via.append((gw, nh.weight))
    elif r.oif == ifindex and (r.gateway or r.via) is not None:
        via.append((r.gateway or r.via, 1))
    if not via:
        return None
    dst = r.dst
    if dst is None:
        dst = ipaddress.ip_network("::/0" if via[0][0].version == 6 else "0.0.0.0/0")
    mtu = r.metrics.mtu if r.metrics is not None and getattr(r.metrics, "mtu", None) else None
    return RouteSpec(dst, tuple(via), mtu)


def apply_control(tunnel: Tunnel, msg: control.Message) -> None:
    """Apply one control message (from the parent, or the node itself) to a worker's tunnel."""
    if isinstance(msg, Reconfigure):
        tunnel.reconfigure(msg.peers, msg.routes, mtu=msg.mtu)
    elif isinstance(msg, SetMtu):
        tunnel.set_mtu(msg.mtu)
    elif isinstance(msg, AddRoute):
        if not tunnel.set_route(msg.route):
            log.info("kernel route %s: no gateway is a peer (or it is configured); not mirrored", msg.route.route)
    elif isinstance(msg, RemoveRoute):
        tunnel.remove_route(msg.prefix)
    else:
        log.warning("control message %r does not apply to a tunnel", msg)


class _QueueFd:
    """A worker's TUN queue: the inherited descriptor (non-blocking, one packet per read/write)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def fileno(self) -> int:
        return self.fd


def worker_main(ctl_fd: int, queue_fd: int) -> int:
    """Body of a worker process (``python -m tunkit.overlay.node --worker CTL_FD QUEUE_FD``)."""
    ctl = socket.socket(fileno=ctl_fd)
    buf = bytearray()
    while (nl := buf.find(b"\n")) < 0:
        chunk = ctl.recv(65536)
        if not chunk:
            return 1
        buf += chunk
    try:
        cfg = control.decode(bytes(buf[:nl]))
        if not isinstance(cfg, WorkerConfig):
            raise ControlError(f"the first control message must be a configure, not {type(cfg).__name__}")
    except ControlError as e:
        log.error("worker: %s", e)
        return 1
    del buf[: nl + 1]
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    sock = open_udp(*cfg.listen, reuseport=True)
    tunnel = Tunnel(_QueueFd(queue_fd), sock, cfg.peers, cfg.routes, cfg.options, sender=cfg.index)
    loop = PacketLoop()
    loop.add_signal_handler(signal.SIGTERM, loop.stop)
    tunnel.attach(loop)
    ctl.setblocking(False)

    def on_ctl() -> None:
        try:
            data = ctl.recv(65536)
        except BlockingIOError:  # spurious wake-up
            return
        if not data:  # the parent is gone
            loop.stop()
            return
        buf.extend(data)
        if len(buf) > control.MAX_LINE and buf.find(b"\n") < 0:
            log.error("worker %d: control line over %d bytes: dropped", tunnel.sender, control.MAX_LINE)
            buf.clear()
        process()

    def process() -> None:
        while (nl := buf.find(b"\n")) >= 0:
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            handle_line(ctl, tunnel, line)

    loop.add_reader(ctl, on_ctl)
    process()  # messages that came with the configuration
    try:
        loop.run()
    finally:
        loop.close()
        sock.close()
        ctl.close()
    return 0


def handle_line(ctl: socket.socket, tunnel: Tunnel, line: bytes) -> None:
    """One control line in a worker: decoded (refused with a logged reason), then applied or answered."""
    try:
        msg = control.decode(line)
    except ControlError as e:
        log.error("worker %d: control message refused: %s", tunnel.sender, e)
        return
    if isinstance(msg, StatusRequest):
        ctl.setblocking(True)
        ctl.sendall(json.dumps(tunnel.status()).encode() + b"\n")
        ctl.setblocking(False)
        return
    try:
        apply_control(tunnel, msg)
    except ConfigError as e:  # the parent checked the same rules; if one slips, keep serving
        log.error("worker %d: control %s refused: %s", tunnel.sender, type(msg).__name__, e)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        sys.exit(worker_main(int(sys.argv[2]), int(sys.argv[3])))
    print("usage: python -m tunkit.overlay.node --worker CTL_FD QUEUE_FD (started by TunnelNode)", file=sys.stderr)
    sys.exit(1)


def _drain(s: socket.socket) -> None:
    """Discard what is already waiting on a worker's control socket (stale status replies)."""
    s.setblocking(False)
    try:
        while s.recv(65536):
            pass
    except (BlockingIOError, InterruptedError):
        pass
    finally:
        s.setblocking(True)
