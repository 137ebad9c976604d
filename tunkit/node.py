"""Runs the overlay on one host: TUN device, worker loops, status socket, signals; does I/O.

:class:`TunnelNode` opens the TUN device (multi-queue when ``workers > 1``,
in virtio_net_hdr mode with TSO/USO offloads when the kernel has them), sets
its MTU and brings it up, and runs one :class:`~tunkit.tunnel.Tunnel` per
queue:

* ``workers == 1``: in the calling thread (any thread; signal handlers only
  when it is the main thread);
* ``workers > 1``: in forked worker processes, each with its own TUN queue
  and its own ``SO_REUSEPORT`` UDP socket on the listen port, all sharing the
  session id and the configuration; the parent answers ``tunkit status`` by
  asking every worker over a socketpair and merging the answers, and stops
  the workers on SIGTERM/SIGINT.  A worker whose parent disappears stops.

Addresses and kernel routes are not this module's business: ``tunkit up``
(or a test) configures them; the node only owns the data path.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import socket
import time
from collections.abc import Callable, Iterable

from tunkit.loop import PacketLoop
from tunkit.status import StatusServer, merge
from tunkit.tunnel import DEFAULT_MTU, PeerSpec, RouteSpec, Tunnel
from tunkit.udp import open_udp

log = logging.getLogger("tunkit.node")

# Largest super-packet the kernel may hand us, so that header + packet + tag fit one UDP datagram.
GSO_MAX_SIZE = 65000


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
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers {workers}: want at least 1")
        self.device_name = device
        self.peers = list(peers)
        self.routes = list(routes)
        self.listen = listen
        self.mtu = mtu
        self.addresses = list(addresses)
        self.insecure = insecure
        self.workers = workers
        self.offloads = offloads
        self.status_path = status_path
        self.table_factory = table_factory
        self.tunnel_options = dict(tunnel_options or {})
        self.session = int.from_bytes(os.urandom(4), "big")
        self.start_counter = time.time_ns()
        self.device = None
        self.tunnel: Tunnel | None = None  # workers == 1
        self.loop: PacketLoop | None = None
        self._children: list[tuple[int, socket.socket]] = []
        self._status: StatusServer | None = None

    # -- set-up -------------------------------------------------------------------------
    def start(self) -> None:
        from tunkit.device import open_tun  # noqa: PLC0415 (lazy: ctypes only when a device is made)

        self.device = open_tun(
            self.device_name, queues=self.workers, multi_queue=self.workers > 1, vnet_hdr=self.offloads,
        )
        self.device_name = self.device.name
        self.device.mtu = self.mtu
        self.device.up()
        log.info("%s: %d queue(s), vnet_hdr %s, offloads %s", self.device.name, self.workers,
                 self.device.vnet_hdr, self.device.offloads)

    def _make_tunnel(self, index: int) -> Tunnel:
        sock = open_udp(*self.listen, reuseport=True)
        try:
            return Tunnel(
                self.device.queues[index], sock, self.peers, self.routes,
                insecure=self.insecure, mtu=self.mtu, addresses=self.addresses, sender=index,
                session=self.session, start_counter=self.start_counter, vnet_hdr=self.device.vnet_hdr,
                table_factory=self.table_factory, **self.tunnel_options,
            )
        except BaseException:
            sock.close()
            raise

    def status(self) -> dict:
        if self.tunnel is not None:
            doc = merge([self.tunnel.status()])
        else:
            doc = merge(self._ask_workers())
        doc["device"] = self.device_name
        doc["pid"] = os.getpid()
        return doc

    # -- running ------------------------------------------------------------------------
    def run(self) -> None:
        """Serve until :meth:`stop`, SIGTERM or SIGINT (signals only in the main thread)."""
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
        if self.workers == 1:
            self.tunnel = self._make_tunnel(0)
            self.tunnel.attach(loop)
        else:
            self._fork_workers()
            loop.call_every(0.5, self._reap)
        try:
            loop.run()
        finally:
            self._stop_workers()

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.stop()

    def close(self) -> None:
        self._stop_workers()
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

    # -- worker processes -------------------------------------------------------------------
    def _fork_workers(self) -> None:
        for i in range(self.workers):
            parent_end, child_end = socket.socketpair()
            pid = os.fork()
            if pid == 0:  # the worker: never returns
                code = 0
                try:
                    parent_end.close()
                    for _, s in self._children:
                        s.close()
                    self._worker_main(i, child_end)
                except BaseException:  # a worker must never unwind into the parent's code
                    log.exception("worker %d failed", i)
                    code = 1
                finally:
                    os._exit(code)
            child_end.close()
            self._children.append((pid, parent_end))

    def _worker_main(self, index: int, ctl: socket.socket) -> None:
        if self._status is not None:
            self._status._sock.close()  # the parent's; do not unlink it
            self._status = None
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
        loop = PacketLoop()
        loop.add_signal_handler(signal.SIGTERM, loop.stop)
        tunnel = self._make_tunnel(index)
        tunnel.attach(loop)
        ctl.setblocking(False)

        def on_ctl() -> None:
            try:
                req = ctl.recv(16)
            except BlockingIOError:  # spurious wake-up
                return
            if not req:  # the parent is gone
                loop.stop()
                return
            ctl.setblocking(True)
            ctl.sendall(json.dumps(tunnel.status()).encode() + b"\n")
            ctl.setblocking(False)

        loop.add_reader(ctl, on_ctl)
        loop.run()

    def _ask_workers(self, timeout: float = 2.0) -> list[dict]:
        docs = []
        for _pid, s in self._children:
            try:
                s.sendall(b"?")
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
        alive = []
        for pid, s in self._children:
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # already reaped
                done, status = pid, 0
            if done:
                log.warning("worker %d exited (status %d); stopping", pid, status)
                s.close()
                if self.loop is not None:
                    self.loop.stop()
            else:
                alive.append((pid, s))
        self._children = alive

    def _stop_workers(self, timeout: float = 5.0) -> None:
        children, self._children = self._children, []
        for pid, _ in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:  # already gone
                pass
        deadline = time.monotonic() + timeout
        for pid, s in children:
            while True:
                try:
                    done, _ = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:  # reaped elsewhere
                    break
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                    break
                select.select([], [], [], 0.02)
            s.close()

    def __enter__(self) -> "TunnelNode":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
