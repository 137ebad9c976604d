"""The WireGuard data path: one TUN queue, one UDP socket, the engine and its timers in one loop; does I/O (orchestration).

:class:`WgPath` drives a :class:`tunkit.wireguard.Engine` (pure) with the I/O
layers below it, in one :class:`tunkit.overlay.loop.PacketLoop`:

* outbound: :meth:`OffloadIO.read_each <tunkit.tun.batch.OffloadIO.read_each>`
  hands packets and super-packets read from the TUN; each is routed by the
  engine (cryptokey routing), a super-packet is cut into MTU-sized packets
  (:func:`tunkit.packet.offload.gso_split`, which also finishes partial
  checksums: a WireGuard peer gets complete packets), sealed in place into one
  arena (``Engine.seal_into``; the segments of a super-packet with
  ``Engine.seal_batch_into``, all of one padded size) and queued on a
  :class:`tunkit.overlay.udp.UdpBatcher`, which sends each run of equal-sized
  datagrams to one peer as one ``UDP_SEGMENT`` send;
* inbound: :func:`tunkit.overlay.udp.recv_batch` reads with ``UDP_GRO`` (one
  read, several datagrams) into one buffer per read (up to ``batch`` reads a
  round), each datagram goes to ``Engine.receive`` (decrypted in place), and
  delivered packets are queued on the ``OffloadIO``, which coalesces them
  into super-packets, across reads, and writes them at the end of the round;
* timers: the engine's ``next_deadline()`` is one loop timer, which calls
  ``tick``; whatever the engine queued (handshakes, keepalives, staged
  packets) leaves after every event;
* the UAPI socket (:class:`tunkit.overlay.uapi_server.UapiServer`), when given a
  name, so ``wg show`` / ``wg set`` work; a new ``listen_port`` is bound and
  ``fwmark`` set (``SO_MARK``) in the engine's ``apply`` prepare hook, so a
  port in use refuses the set and changes nothing.

This module never touches the TUN descriptor or a virtio_net_hdr
(``tests/test_layering.py`` checks it).  One process drives one engine: the
engine's keypairs send only in the process that made them (docs/wireguard.md,
"Worker processes and nonces"), so there are no worker processes here.  The
extension (trains between two tunkit hosts) stays off: ``engine.extension`` is
False and every peer gets standard WireGuard transport messages.

    path = WgInterface(name="wg0", config=interface_config)   # device, socket, engine, UAPI socket
    path.run()                                                  # until path.stop()
"""

from __future__ import annotations

import errno
import logging
import socket
import time

from tunkit.errors import DecodeError
from tunkit.overlay.loop import PacketLoop
from tunkit.overlay.udp import UdpBatcher, enable_gro, open_udp, recv_batch
from tunkit.packet.offload import gso_split
from tunkit.wireguard import format_key

__all__ = ["WgPath", "WgInterface", "ARENA_BYTES", "DRIVER_DROPS"]

log = logging.getLogger("tunkit.overlay.wg")

ARENA_BYTES = 4 << 20   # sealed datagrams of one TUN read round (flushed early when full)
_RECV_BYTES = 65535 + 64
_MAX_ADDRS = 4096       # socket-address translations cached (bounded: sources are peer-controlled)
DRIVER_DROPS = (
    "tun_malformed",    # a super-packet from the TUN whose GSO metadata does not fit it
    "send_error",       # a datagram the kernel refused to send (unreachable, buffer full)
    "no_private_key",   # a packet (either way) while the interface has no private key: nothing is sent
)


def _pad(n: int, mtu: int) -> int:
    p = (n + 15) & ~15
    return (n if n > mtu else mtu) if p > mtu else p


class WgPath:
    """The data path of one WireGuard interface: ``io`` (an OffloadIO), ``sock`` (bound UDP), ``engine``.

    ``clock`` is monotonic seconds (the engine's ``now``).  ``udp_gro`` /
    ``udp_gso`` None: use them when the kernel has them.
    """

    def __init__(self, io, sock: socket.socket, engine, *, clock=time.monotonic, batch: int = 64,
                 udp_gro: bool | None = None, udp_gso: bool | None = None) -> None:
        self.io = io
        self.engine = engine
        self.clock = clock
        self.batch = batch
        self.udp_gso = udp_gso
        self.udp_gro_wanted = udp_gro
        self.drops = dict.fromkeys(DRIVER_DROPS, 0)
        self.loop = None
        self._timer = None
        self._arena = bytearray(ARENA_BYTES)
        self._mv = memoryview(self._arena)
        self._used = 0
        # one receive buffer per read of a round: the packets of every read stay valid until the one
        # flush at the end, so the OffloadIO can merge a flow across reads (single datagrams, no GRO)
        self._rbufs = [bytearray(_RECV_BYTES) for _ in range(batch)]
        self._now = clock()
        self._to_sock: dict = {}
        self._from_sock: dict = {}
        self._pending_sock: socket.socket | None = None
        self.udp_reads = 0       # recvmsg calls that returned data
        self.udp_datagrams = 0   # datagrams they held (more than udp_reads: UDP_GRO merged some)
        self._install_socket(sock)

    # -- sockets -----------------------------------------------------------------------
    def _install_socket(self, sock: socket.socket) -> None:
        self.sock = sock
        self.v6 = sock.family == socket.AF_INET6
        want = self.udp_gro_wanted
        self.udp_gro = enable_gro(sock) if want is None else (want and enable_gro(sock))
        self.batcher = UdpBatcher(sock, gso=self.udp_gso, max_segment=65535, on_error=self._send_failed)
        self._to_sock.clear()
        self._from_sock.clear()

    @property
    def port(self) -> int:
        """The UDP port bound now."""
        return self.sock.getsockname()[1]

    def prepare(self, config) -> None:
        """``Engine.apply``'s prepare hook: bind a changed listen port, set the fwmark; OSError refuses the change."""
        sock = self.sock
        if config.listen_port and config.listen_port != self.port:
            sock = open_udp("::" if self.v6 else "0.0.0.0", config.listen_port, reuseport=False)
        try:
            if config.fwmark != self.engine.fwmark or sock is not self.sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, config.fwmark)
        except OSError:
            if sock is not self.sock:
                sock.close()
            raise
        if self._pending_sock is not None:
            self._pending_sock.close()
        self._pending_sock = sock if sock is not self.sock else None

    def applied(self, _applied=None) -> None:
        """After a successful ``apply``: switch to the socket ``prepare`` bound, send what the engine queued."""
        new, self._pending_sock = self._pending_sock, None
        if new is not None:
            old = self.sock
            if self.loop is not None:
                self.loop.remove_reader(old)
            self._install_socket(new)
            if self.loop is not None:
                self.loop.add_reader(new, self.on_udp_readable)
            old.close()
        self._after_event()

    def _sockaddr(self, ep):
        """The engine's ``(host, port)`` as this socket's address (IPv4 mapped on an IPv6 socket)."""
        a = self._to_sock.get(ep)
        if a is None:
            host, port = ep[0], ep[1]
            a = (("::ffff:" + host) if self.v6 and ":" not in host else host, port)
            if len(self._to_sock) >= _MAX_ADDRS:
                self._to_sock.clear()
            self._to_sock[ep] = a
        return a

    def _peer_addr(self, addr):
        """A socket source address as the engine's ``(host, port)`` (a mapped IPv4 address unmapped)."""
        a = self._from_sock.get(addr)
        if a is None:
            host = addr[0]
            if host.startswith("::ffff:") and "." in host:
                host = host[7:]
            a = (host, addr[1])
            if len(self._from_sock) >= _MAX_ADDRS:
                self._from_sock.clear()
            self._from_sock[addr] = a
        return a

    def _send_failed(self, addr, size, exc) -> None:
        self.drops["send_error"] += 1

    # -- the loop ----------------------------------------------------------------------
    def attach(self, loop: PacketLoop) -> None:
        """Register the TUN queue and the socket with ``loop`` and arm the engine's timer."""
        self.loop = loop
        loop.add_reader(self.io, self.on_tun_readable)
        loop.add_reader(self.sock, self.on_udp_readable)
        self._after_event()

    def detach(self) -> None:
        if self.loop is not None:
            self.loop.remove_reader(self.io)
            self.loop.remove_reader(self.sock)
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None
            self.loop = None

    def _after_event(self) -> None:
        """Send what the engine queued, flush the batch, and move the loop timer to the engine's deadline."""
        add = self.batcher.add
        datagrams = self.engine.pop_datagrams()
        if not self.engine.has_private_key:  # as wireguard-go: a device without a key sends nothing
            self.drops["no_private_key"] += len(datagrams)
            datagrams = ()
        for datagram, dest in datagrams:
            add(self._sockaddr(dest), len(datagram), [datagram])
        self.batcher.flush()
        self._used = 0
        if self.loop is None:
            return
        d = self.engine.next_deadline()
        t = self._timer
        if d is None or (t is not None and not t.cancelled and t.when <= d):
            return
        if t is not None:
            t.cancel()
        self._timer = self.loop.call_later(max(0.0, d - self.clock()), self.on_timer)

    def on_timer(self) -> None:
        self._timer = None
        now = self._now = self.clock()
        self.engine.tick(now)
        self._after_event()

    # -- outbound: TUN -> UDP ------------------------------------------------------------
    def on_tun_readable(self) -> None:
        self._now = self.clock()
        self.io.read_each(self._outbound)
        self._after_event()

    def _reserve(self, size: int) -> int:
        """An offset in the arena with ``size`` free bytes (flushing what is queued when it is full)."""
        off = self._used
        if off + size > ARENA_BYTES:
            for datagram, dest in self.engine.pop_datagrams():
                self.batcher.add(self._sockaddr(dest), len(datagram), [datagram])
            self.batcher.flush()
            off = 0
        return off

    def _outbound(self, pkt, hdr) -> None:
        eng = self.engine
        if not eng.has_private_key:
            self.drops["no_private_key"] += 1
            return
        peer = eng.route(pkt)
        if peer is None:
            eng.drops["no_route"] += 1
            return
        if hdr is not None:
            try:
                segs = gso_split(hdr, pkt)
            except DecodeError:
                self.drops["tun_malformed"] += 1
                return
            if len(segs) > 1:
                self._seal_segments(peer, segs)
                return
            pkt = segs[0]
        n = len(pkt)
        size = 32 + _pad(n, eng.mtu)
        off = self._reserve(size)
        self._mv[off + 16:off + 16 + n] = pkt
        size = eng.seal_into(peer, self._arena, n, self._now, off)
        if size < 0:  # staged until a session exists; the engine queued a handshake
            return
        self._used = off + size
        self.batcher.add(self._sockaddr(peer.endpoint), size, [self._mv[off:off + size]])

    def _seal_segments(self, peer, segs: list) -> None:
        """A super-packet's segments: standard transport messages of one padded size (one UDP_SEGMENT run)."""
        eng, mv, add = self.engine, self._mv, self.batcher.add
        seg = 32 + _pad(max(map(len, segs)), eng.mtu)
        while segs:
            off = self._reserve(seg * min(64, len(segs)))
            b = eng.seal_batch_into(peer, segs, self._arena, self._now, off)
            if b is None:  # staged, all of them
                return
            addr = self._sockaddr(peer.endpoint)
            for i in range(b.count):
                o = off + i * b.segment
                add(addr, b.segment, [mv[o:o + b.segment]])
            self._used = off + b.size
            segs = segs[b.taken:]

    # -- inbound: UDP -> TUN ---------------------------------------------------------------
    def on_udp_readable(self) -> None:
        self._now = self.clock()
        sock, inbound, gro = self.sock, self._inbound, self.udp_gro
        try:
            for buf in self._rbufs:
                if not recv_batch(sock, buf, inbound, max_reads=1, gro=gro):
                    break  # drained (or an ICMP error read): the loop calls again while readable
        finally:
            self.io.flush()
        self._after_event()

    def _inbound(self, block, addr, seg: int) -> None:
        if self.v6 or len(addr) != 2:  # an IPv6 socket's 4-tuple, or a mapped IPv4 address: as (host, port)
            addr = self._peer_addr(addr)
        if not self.engine.has_private_key:
            self.drops["no_private_key"] += 1
            return
        receive, add, now = self.engine.receive, self.io.add, self._now
        n = len(block)
        self.udp_reads += 1
        self.udp_datagrams += -(-n // seg) if seg else 1
        off = 0
        while off < n:
            p = receive(block[off:off + seg], addr, now)
            if p is not None:
                add(p)
            off += seg

    # -- status ------------------------------------------------------------------------------
    def status(self) -> dict:
        """What ``wg show`` shows per peer, plus the drop counters by reason and the I/O counters."""
        eng = self.engine
        peers = []
        for p in eng.peers.values():
            ep = p.endpoint
            peers.append({
                "public_key": format_key(p.public_key),
                "endpoint": None if ep is None else (f"[{ep[0]}]:{ep[1]}" if ":" in ep[0] else f"{ep[0]}:{ep[1]}"),
                "allowed_ips": [str(n) for n in p.allowed_ips],
                "latest_handshake": int(p.last_handshake) if getattr(p, "last_handshake", None) else None,
                "rx_bytes": p.rx_bytes,
                "tx_bytes": p.tx_bytes,
                "persistent_keepalive": int(p.persistent_keepalive) or None,
                "handshakes": p.handshakes,
            })
        drops = {k: v for k, v in eng.drops.items() if v}
        drops.update({k: v for k, v in self.drops.items() if v})
        drops.update({k: v for k, v in getattr(eng, "ext_drops", {}).items() if v})
        return {
            "public_key": format_key(eng.public_key) if eng.has_private_key else None,
            "listen_port": self.port,
            "fwmark": eng.fwmark or None,
            "peers": peers,
            "drops": drops,
            "tun": self.io.status(),
            "udp": {"gro": self.udp_gro, "gso": self.batcher.gso, "syscalls": self.batcher.syscalls,
                    "gso_sends": self.batcher.gso_sends, "gso_fallbacks": self.batcher.gso_fallbacks,
                    "reads": self.udp_reads, "datagrams": self.udp_datagrams},
        }


class WgInterface:
    """A whole WireGuard interface in this process: a TUN device, a UDP socket, the engine, the UAPI socket.

    ``config`` is a :class:`tunkit.wireguard.settings.InterfaceConfig` (applied
    through ``Engine.apply``, the one validation).  ``uapi_dir`` None serves
    no UAPI socket; else ``uapi_dir/NAME.sock``.  The device is made here
    (``vnet_hdr`` with offloads when the kernel has them); addresses, MTU and
    routes are the caller's; the MTU is set and the link brought up here.
    """

    def __init__(self, name: str, config, *, mtu: int = 1420, uapi_dir: str | None = None, crypto=None,
                 listen_host: str | None = None, offloads: bool = True) -> None:
        from tunkit.crypto import LibCrypto, generate_private_key
        from tunkit.overlay.uapi_server import UapiServer
        from tunkit.tun.batch import OffloadIO
        from tunkit.tun.device import open_tun
        from tunkit.wireguard import Engine

        crypto = crypto if crypto is not None else LibCrypto()
        self.engine = Engine(config.private_key or generate_private_key(), crypto, mtu=mtu,
                             wall_offset=time.time() - time.monotonic())
        self.loop = PacketLoop()
        self.device = self.uapi = None
        sock = None
        try:
            self.device = open_tun(name, vnet_hdr=offloads)
            self.name = self.device.name
            self.device.mtu = mtu
            self.device.up()
            sock = _bind(listen_host, config.listen_port)
            io = OffloadIO(self.device, name=self.name)
            self.path = WgPath(io, sock, self.engine)
            sock = None
            self.engine.apply(config, now=time.monotonic(), prepare=self.path.prepare)
            self.path.applied()
            self.path.attach(self.loop)
            if uapi_dir is not None:
                self.uapi = UapiServer(self.name, self.engine, directory=uapi_dir, prepare=self.path.prepare,
                                       on_applied=self.path.applied, log=log.warning)
                self.loop.add_reader(self.uapi, self.uapi.handle_events)
                self.loop.call_every(1.0, self.uapi.handle_events)
        except BaseException:
            if sock is not None:
                sock.close()
            self.close()
            raise

    def run(self, timeout: float | None = None) -> None:
        self.loop.run(timeout)

    def stop(self) -> None:
        """Make :meth:`run` return (from any thread or a signal handler)."""
        self.loop.stop()

    def status(self) -> dict:
        """The status document (``tunkit status -j``): ``device``, ``mode`` "wireguard", and :meth:`WgPath.status`."""
        return {"device": self.name, "mode": "wireguard", "workers": 1, **self.path.status()}

    def close(self) -> None:
        if self.uapi is not None:
            self.uapi.close()
            self.uapi = None
        path = getattr(self, "path", None)
        if path is not None:
            path.detach()
            path.sock.close()
        self.loop.close()
        if self.device is not None:
            self.device.close()
            self.device = None


def _bind(host: str | None, port: int) -> socket.socket:
    """The interface's UDP socket: dual-stack ``::`` unless IPv6 is missing (then ``0.0.0.0``)."""
    if host is not None:
        return open_udp(host, port, reuseport=False)
    try:
        return open_udp("::", port, reuseport=False)
    except OSError as e:
        if e.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
            raise
        return open_udp("0.0.0.0", port, reuseport=False)
