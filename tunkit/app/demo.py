"""``tunkit demo``: a guided run of tunkit in throwaway network namespaces; does I/O.

Everything happens inside anonymous network namespaces made for the run
(:class:`tunkit.netns.NetNS`): the host's own devices, addresses and routes
are never touched, and the kernel frees every namespace, with its devices,
when the demo exits, even if it is interrupted or killed.  Every wait is
bounded.

Sections, each printing what it does and what the kernel reports:

1. a TUN device: created with offloads negotiated, shown, a datagram sent by
   the kernel read back from it, removed;
2. the overlay: two hosts (namespaces joined by a veth underlay) each run
   ``tunkit up`` in WireGuard mode (a generated key pair each); ping in both directions, IPv4 and
   IPv6, a TCP transfer with its throughput, the counters, then both hosts
   stopped and everything removed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable

Out = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo cannot run here (e.g. not root); the message says why and what to do."""


def preflight() -> None:
    """Raise DemoError unless this machine can run the demo."""
    from tunkit.netns import namespace_problem

    problem = namespace_problem()
    if problem is not None:
        raise DemoError(f"the demo creates network namespaces and TUN devices, and {problem}; run it as root on Linux")


def section_device(out: Out) -> None:
    """Section 1: one TUN device, end to end, in a namespace of its own."""
    from tunkit.tun.device import list_tun_devices, open_tun
    from tunkit.netlink import Rtnl
    from tunkit.netns import NetNS, assert_not_root_netns

    out("1. A TUN device")
    with NetNS("demo-device") as ns, ns.entered():
        assert_not_root_netns("the demo")
        out(f"   namespace: a fresh one (net inode {ns.inode}), loopback only")
        with open_tun("tunkit%d", vnet_hdr=True) as dev:
            offl = dev.offloads.name if dev.offloads else "none"
            out(f"   created {dev.name}: ifindex {dev.ifindex}, mode {dev.mode}, "
                f"virtio_net_hdr {dev.vnet_hdr_len} bytes, offloads the kernel accepted: {offl}")
            dev.mtu = 1400
            with Rtnl() as rt:  # configured over rtnetlink: no iproute2 needed
                rt.set_link(dev.name, addr_gen_mode="none")
                rt.add_address(dev.name, "198.18.0.1/32")
                dev.up()
                rt.add_route("198.51.100.0/24", dev=dev.name)
            info = next(i for i in list_tun_devices() if i.ifname == dev.name).linkinfo.data  # IFLA_TUN_*
            out(f"   shown: mtu {dev.mtu}, up {dev.is_up}, vnet_hdr {info.vnet_hdr}, pi {info.pi}, "
                f"route 198.51.100.0/24 dev {dev.name}")
            payload = b"hello through a TUN device"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(payload, ("198.51.100.7", 9))
            pkt = dev.read(timeout=2.0)
            if pkt is None:
                raise DemoError(f"{dev.name}: the kernel's datagram did not arrive within 2 s")
            ip_packet = pkt[dev.vnet_hdr_len:]
            src = socket.inet_ntoa(ip_packet[12:16])
            dst = socket.inet_ntoa(ip_packet[16:20])
            out(f"   a UDP datagram to 198.51.100.7:9 came out of {dev.name}: {dev.vnet_hdr_len}-byte header + "
                f"{len(ip_packet)}-byte IPv4 packet {src} -> {dst}, payload {ip_packet[28:]!r}")
            name = dev.name
        gone = all(i.ifname != name for i in list_tun_devices())
        out(f"   closed {name}: {'removed by the kernel' if gone else 'STILL PRESENT'}")
        if not gone:
            raise DemoError(f"{name} survived close()")
    out("   namespace released: nothing was left behind")


HOST_CONFIG = """\
[device]
name = "tunkit0"
mtu = 1420
[network]
addresses = ["198.18.0.{me}/24", "2001:db8:100::{me}/64"]
listen = "198.51.100.{me}:4800"
private_key_file = "host-{me}.key"
[[peers]]
name = "host-{peer}"
public_key = "{peer_public}"
endpoint = "198.51.100.{peer}:4800"
prefixes = ["198.18.0.{peer}/32", "2001:db8:100::{peer}/128"]
"""


def _write_secret(path: str, text: str) -> None:
    """A key file as 'tunkit genkey > FILE; chmod 600 FILE' leaves it (mode 0600 from the start)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)

ICMP_ECHO = struct.Struct("!BBHHH")  # type, code, checksum, identifier, sequence


def ping(dst: str, *, count: int = 3, timeout: float = 1.0) -> list[float]:
    """ICMP/ICMPv6 echo from the calling thread's namespace (raw socket: root); round-trip times in ms."""
    from tunkit.packet.ip import internet_checksum

    v6 = ":" in dst
    fam, proto, req_type, rep_type = (
        (socket.AF_INET6, socket.IPPROTO_ICMPV6, 128, 129) if v6 else (socket.AF_INET, socket.IPPROTO_ICMP, 8, 0)
    )
    rtts = []
    with socket.socket(fam, socket.SOCK_RAW, proto) as s:
        s.settimeout(timeout)
        ident = os.getpid() & 0xFFFF
        for seq in range(1, count + 1):
            body = b"tunkit demo ping"
            csum = 0 if v6 else internet_checksum(ICMP_ECHO.pack(req_type, 0, 0, ident, seq) + body)
            start = time.perf_counter()
            s.sendto(ICMP_ECHO.pack(req_type, 0, csum, ident, seq) + body, (dst, 0))  # the kernel fills ICMPv6's sum
            deadline = start + timeout
            while time.perf_counter() < deadline:
                try:
                    data = s.recv(2048)
                except TimeoutError:
                    break
                icmp = data if v6 else data[(data[0] & 0x0F) * 4:]  # IPv4 raw sockets include the IP header
                if len(icmp) >= 8:
                    t, _c, _s, i, q = ICMP_ECHO.unpack_from(icmp)
                    if t == rep_type and i == ident and q == seq:
                        rtts.append((time.perf_counter() - start) * 1000)
                        break
    return rtts


def tcp_transfer(server_ns, client_ns, dst: str, nbytes: int, seconds: float = 10.0) -> tuple[int, float]:
    """Send ``nbytes`` over TCP from client_ns to dst:port in server_ns; (bytes received, seconds)."""
    with server_ns.entered():
        srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.bind((dst, 0))
    srv.listen(1)
    srv.settimeout(seconds)
    got = [0]

    def receive() -> None:
        try:
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(seconds)
                while True:
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    got[0] += len(chunk)
        except OSError:  # timed out or reset: the byte count says how far it got
            pass

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    with client_ns.entered():
        cli = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    block = b"\x5a" * (1 << 20)
    start = time.perf_counter()
    with cli:
        cli.settimeout(seconds)
        cli.connect((dst, srv.getsockname()[1]))
        sent = 0
        while sent < nbytes and time.perf_counter() - start < seconds:
            sent += cli.send(block[: min(len(block), nbytes - sent)])
        cli.shutdown(socket.SHUT_WR)
        t.join(seconds)
    elapsed = time.perf_counter() - start
    srv.close()
    return got[0], elapsed


def section_overlay(out: Out) -> None:
    """Section 2: two tunkit hosts and the overlay between them."""
    from tunkit.crypto import generate_private_key, public_key
    from tunkit.netlink import Rtnl
    from tunkit.wireguard import format_key
    from tunkit.netns import NetNS

    out("2. The overlay: two hosts, each running 'tunkit up'")
    tmp = tempfile.mkdtemp(prefix="tunkit-demo-")
    procs: list[subprocess.Popen] = []
    hosts = {1: NetNS("demo-host-1"), 2: NetNS("demo-host-2")}
    try:
        with hosts[1].entered(), Rtnl() as rt:
            rt.add_veth("under1", "under2", peer_netns=hosts[2])
            rt.add_address("under1", "198.51.100.1/24")
            rt.set_link("under1", up=True)
        with hosts[2].entered(), Rtnl() as rt:
            rt.add_address("under2", "198.51.100.2/24")
            rt.set_link("under2", up=True)
        out(f"   underlay: host-1 198.51.100.1 <-veth-> host-2 198.51.100.2 (namespaces, net inodes "
            f"{hosts[1].inode} and {hosts[2].inode})")
        keys = {i: generate_private_key() for i in (1, 2)}  # what 'tunkit genkey' prints
        names = {i: format_key(public_key(keys[3 - i])) for i in (1, 2)}  # public keys, by the host of the peer
        for i in (1, 2):
            _write_secret(os.path.join(tmp, f"host-{i}.key"), format_key(keys[i]) + "\n")
        env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        for me, peer in ((1, 2), (2, 1)):
            cfg = os.path.join(tmp, f"host-{me}.toml")
            with open(cfg, "w") as f:
                f.write(HOST_CONFIG.format(me=me, peer=peer, peer_public=names[me]))
            log = open(os.path.join(tmp, f"host-{me}.log"), "w")
            procs.append(hosts[me].popen(  # the UAPI socket in the run's directory: two hosts share no path
                [sys.executable, "-m", "tunkit", "up", cfg, "--status-socket", os.path.join(tmp, f"host-{me}.sock"),
                 "--uapi-dir", os.path.join(tmp, f"wg-{me}")], env=env, stdout=log, stderr=log))
        deadline = time.monotonic() + 10
        while not all(os.path.exists(os.path.join(tmp, f"host-{i}.sock")) for i in (1, 2)):
            dead = [p for p in procs if p.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "".join(open(os.path.join(tmp, f"host-{i}.log")).read() for i in (1, 2))
                raise DemoError(f"a tunkit host did not start:\n{logs}")
            time.sleep(0.05)
        out("   both hosts up: tunkit0 with 198.18.0.N/24 and 2001:db8:100::N/64, WireGuard mode (encrypted: "
            "a key pair each, Noise handshake, ChaCha20-Poly1305)")

        for src, dst in ((1, "198.18.0.2"), (2, "198.18.0.1"), (1, "2001:db8:100::2")):
            with hosts[src].entered():
                rtts = ping(dst)
            if not rtts:
                raise DemoError(f"ping from host-{src} to {dst} got no answer")
            out(f"   ping host-{src} -> {dst}: {len(rtts)}/3 replies, {min(rtts):.2f} ms fastest")

        got, secs = tcp_transfer(hosts[2], hosts[1], "198.18.0.2", 200 << 20, seconds=60)  # bounded, not a race
        if got == 0:
            raise DemoError("the TCP transfer moved no data")
        out(f"   TCP host-1 -> host-2: {got / 1e6:.0f} MB in {secs:.2f} s = {got * 8 / secs / 1e9:.2f} Gbit/s "
            f"(pure-Python data path; see README 'Performance')")

        with hosts[1].entered():
            status = subprocess.run(
                [sys.executable, "-m", "tunkit", "status", "-j", "--socket", os.path.join(tmp, "host-1.sock")],
                capture_output=True, text=True, env=env, timeout=10, check=True)
        doc = json.loads(status.stdout)[0]
        for p in doc["peers"]:
            name = "host-2" if p["public_key"] == names[1] else p["public_key"]
            out(f"   counters on host-1, peer {name} (public key {p['public_key']}): tx {p['tx_bytes']} bytes, "
                f"rx {p['rx_bytes']} bytes, {p['handshakes']} handshake(s)")
        drops = doc.get("drops") or {}
        out(f"   drops on host-1: {', '.join(f'{k} {v}' for k, v in drops.items()) or 'none'}")

        for p in procs:
            p.send_signal(signal.SIGTERM)
        codes = [p.wait(timeout=15) for p in procs]
        procs.clear()
        left = []
        for i in (1, 2):
            with hosts[i].entered(), Rtnl() as rt:
                left += [link.ifname for link in rt.links() if link.ifname == "tunkit0"]
        out(f"   hosts stopped (exit {codes[0]} and {codes[1]}): "
            f"{'tunkit0 removed on both' if not left else 'LEFT BEHIND: ' + ', '.join(left)}")
        if left or any(codes):
            raise DemoError("a host did not stop cleanly")
    finally:
        for p in procs:  # interrupted or failed: stop what is still running
            p.kill()
            p.wait(timeout=10)
        for ns in hosts.values():
            ns.close()
        shutil.rmtree(tmp, ignore_errors=True)
    out("   namespaces released: nothing was left behind")


SECTIONS: list[Callable[[Out], None]] = [section_device, section_overlay]


def run(out: Out = print) -> int:
    """Run every section; returns an exit code (0 ok, 2 the system refused, 130 interrupted)."""
    try:
        preflight()
    except DemoError as e:
        print(f"tunkit demo: {e}", file=sys.stderr)
        return 2
    started = time.monotonic()
    out("tunkit demo: everything below runs in throwaway network namespaces; this host's network is untouched.")
    out("")
    try:
        for section in SECTIONS:
            section(out)
            out("")
    except KeyboardInterrupt:
        print("tunkit demo: interrupted; namespaces released", file=sys.stderr)
        return 130
    except (DemoError, OSError) as e:
        print(f"tunkit demo: {e}", file=sys.stderr)
        return 2
    out(f"done in {time.monotonic() - started:.1f} s.")
    return 0
