"""Three hosts in namespaces, joined by a bridge, run the tunnel on real TUN devices.

Each host runs a :class:`TunnelNode` in a thread inside its namespace
(workers > 1 fork processes from that thread).  Traffic is checked byte for
byte; drops are read from the status socket, as ``tunkit status -j`` would.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

import support
from support_tunnel import build_lab, icmp_echo, overlay4, overlay6, underlay4, underlay6
from tunkit.overlay.node import TunnelNode
from tunkit.overlay.status import query
from tunkit.overlay.tunnel import PeerSpec, RouteSpec

KEY = bytes(range(32))
PORT = 4800
NET = ipaddress.ip_network


def peer_spec(j, *, v6=False, key=KEY, extra=()):
    ep = (underlay6(j) if v6 else underlay4(j), PORT)
    pfx = (NET(f"{overlay4(j)}/32"), NET(f"{overlay6(j)}/128"), *map(NET, extra))
    return PeerSpec(f"h{j}", ep, pfx, key)


class Host:
    """A TunnelNode running in a thread inside namespace ``ns``."""

    def __init__(self, ns, i, tmp_path, peers, routes=(), *, v6=False, workers=1, insecure=False, mtu=1400,
                 system_routes=False, tunnel_options=None, offloads=True, before_run=None):
        self.ns, self.i = ns, i
        self.before_run = before_run  # called with the device name after start(), before run()
        self.status_path = str(tmp_path / f"h{i}-{time.monotonic_ns()}.sock")
        self.kw = dict(
            device=f"tk{i}", peers=peers, routes=routes, listen=("::" if v6 else "0.0.0.0", PORT), mtu=mtu,
            addresses=[ipaddress.ip_address(overlay4(i)), ipaddress.ip_address(overlay6(i))],
            insecure=insecure, workers=workers, status_path=self.status_path,
            system_routes=system_routes, tunnel_options=tunnel_options, offloads=offloads,
        )
        self.node = None
        self.error = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"host{i}", daemon=True)

    def start(self):
        self._thread.start()
        assert self._ready.wait(30), "node did not start"
        if self.error:
            raise self.error
        return self

    def _main(self):
        try:
            with self.ns.entered():
                self.node = TunnelNode(**self.kw)
                self.node.start()
                dev = self.node.device_name
                # a plain fork from this thread, already inside the namespace: no preexec_fn with threads around
                run_here(["ip", "addr", "add", f"{overlay4(self.i)}/24", "dev", dev])
                run_here(["ip", "addr", "add", f"{overlay6(self.i)}/64", "dev", dev, "nodad"])
                if self.before_run is not None:
                    self.before_run(dev)
                self._ready.set()
                self.node.run()
        except BaseException as e:  # reported to the test thread by start()/stop()
            self.error = e
            self._ready.set()
        finally:
            if self.node is not None:
                self.node.close()

    def stop(self):
        if self.node is not None:
            self.node.stop()
        self._thread.join(10)
        assert not self._thread.is_alive()

    def status(self):
        return query(self.status_path)

    def tunnel(self):
        return self.node.tunnel


@pytest.fixture
def lab(netns_factory, tmp_path):
    running = []

    def make(n=3):
        return build_lab(netns_factory, n)

    def run(ns, i, peers, routes=(), **kw):
        h = Host(ns, i, tmp_path, peers, routes, **kw).start()
        running.append(h)
        return h

    make.run = run
    yield make
    for h in running:
        h.stop()


def run_here(args):
    """Run a command in the calling thread's namespace (subprocess without preexec_fn: thread-safe)."""
    subprocess.run(args, check=True, capture_output=True, timeout=30)


def run_in(ns, args):
    """Run a command inside ``ns`` from any thread, also while host threads run and fork."""
    with ns.entered():
        run_here(args)


def _echo_server(ns, addr, port):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with ns.entered():
        srv = socket.create_server((addr, port), family=fam)
    srv.settimeout(10)

    def serve():
        try:
            conn, _ = srv.accept()
        except OSError:  # the test gave up
            return
        with conn:
            conn.settimeout(10)
            while data := conn.recv(1 << 16):
                conn.sendall(data)
        srv.close()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    return th


def tcp_round_trip(client_ns, server_ns, addr, port, nbytes):
    """Send ``nbytes`` random bytes over TCP to an echo server; True if all came back intact."""
    server = _echo_server(server_ns, addr, port)
    data = os.urandom(nbytes)
    with client_ns.entered():
        c = socket.create_connection((addr, port), timeout=10)
    got = bytearray()
    with c:
        sender = threading.Thread(target=lambda: (c.sendall(data), c.shutdown(socket.SHUT_WR)), daemon=True)
        sender.start()
        while len(got) < nbytes and (chunk := c.recv(1 << 16)):
            got += chunk
        sender.join(10)
    server.join(10)
    return bytes(got) == data


def _ping(ns, addr, *, tries=3, timeout=2.0):
    with ns.entered():
        return any(icmp_echo(addr, timeout=timeout) for _ in range(tries))


def _no_ping(ns, addr):
    return not _ping(ns, addr, tries=1, timeout=0.3)


def _mesh(lab, nss, *, v6=False, workers=1, insecure=False, keys=None, tunnel_options=None, offloads=True):
    hosts = []
    for i, ns in enumerate(nss):
        peers = [peer_spec(j, v6=v6, key=(keys or {}).get((i, j), None if insecure else KEY)) for j in range(len(nss)) if j != i]
        hosts.append(lab.run(ns, i, peers, v6=v6, workers=workers, insecure=insecure, tunnel_options=tunnel_options,
                             offloads=offloads))
    return hosts


@pytest.mark.parametrize("outer", ["v4", "v6"])
def test_ping_and_tcp_cross_the_overlay_both_ways(lab, outer):
    nss = lab(3)
    hosts = _mesh(lab, nss, v6=outer == "v6")
    a, b, c = nss
    for src, dst, j in ((a, b, 1), (b, a, 0), (c, a, 0), (a, c, 2)):
        assert _ping(src, overlay4(j)), f"ping {overlay4(j)}"
        assert _ping(src, overlay6(j)), f"ping {overlay6(j)}"
    assert tcp_round_trip(a, b, overlay4(1), 5001, 3 << 20)
    assert tcp_round_trip(c, a, overlay6(0), 5002, 1 << 20)
    st = hosts[1].status()
    peer_a = next(p for p in st["peers"] if p["name"] == "h0")
    assert peer_a["rx_bytes"] > 3 << 20 and peer_a["tx_bytes"] > 3 << 20
    assert st["drops"].get("bad_mac", 0) == 0


def test_insecure_mode_and_two_workers(lab):
    nss = lab(2)
    _mesh(lab, nss, insecure=True, workers=2)
    assert _ping(nss[0], overlay4(1)) and _ping(nss[1], overlay6(0))
    assert tcp_round_trip(nss[0], nss[1], overlay4(1), 5003, 2 << 20)


def test_insecure_partial_checksums_carry_tcp_intact_both_families(lab):
    """Super-packets cross with the kernel's partial checksum; the receiver's kernel still gets it right."""
    nss = lab(2)
    hosts = _mesh(lab, nss, insecure=True, tunnel_options={"partial_checksums": True})
    assert tcp_round_trip(nss[0], nss[1], overlay4(1), 5004, 3 << 20)
    assert tcp_round_trip(nss[1], nss[0], overlay6(0), 5005, 1 << 20)
    st = hosts[1].status()
    assert st["partial_checksums"] is True and st["mode"] == "insecure" and not st["drops"].get("malformed")
    peer = st["peers"][0]
    assert peer["rx_bytes"] > 3 << 20 and peer["rx_bytes"] / peer["rx_packets"] > 1400  # super-packets came whole


def test_every_bad_datagram_is_dropped_and_counted_while_traffic_continues(lab):
    nss = lab(3)
    # c holds a wrong key for a
    hosts = _mesh(lab, nss, keys={(2, 0): bytes(32)})
    a, b, c = nss
    ha, hb = hosts[0], hosts[1]
    assert _ping(a, overlay4(1))
    assert _no_ping(c, overlay4(0))  # every one of c's packets fails the tag at a
    tb = hb.tunnel()
    peer = next(p for p in tb.peers if p.name == "h0")
    from support_tunnel import ipv4_udp

    now = lambda: time.time_ns() // 1_000_000  # noqa: E731
    spoofed = ipv4_udp("198.18.0.99", overlay4(0), 1, 2, b"spoof")
    hdr, tag = peer.sealer.seal(spoofed, now())
    tb.sock.sendto(hdr + spoofed + tag, peer.addr)  # authentic, but the inner source is not b's
    good = ipv4_udp(overlay4(1), overlay4(0), 1, 2, b"replayed")
    hdr, tag = peer.sealer.seal(good, now())
    tb.sock.sendto(hdr + good + tag, peer.addr)
    tb.sock.sendto(hdr + good + tag, peer.addr)  # the replay
    tb.sock.sendto((hdr + good + tag)[:30], peer.addr)  # truncated
    tb.sock.sendto(os.urandom(200), peer.addr)  # garbage
    with b.entered():
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with stranger:
        stranger.sendto(hdr + good + tag, (underlay4(0), PORT))  # right bytes, unknown endpoint
    assert _ping(a, overlay4(1))  # traffic continues
    deadline = time.monotonic() + 5
    want = {"bad_mac", "not_allowed", "replay", "truncated", "unknown_endpoint"}
    while time.monotonic() < deadline:
        drops = ha.status()["drops"]
        if want <= set(drops) and sum(drops.values()) >= 6:
            break
        time.sleep(0.05)
    # garbage lands in one of version/type/stale/bad_mac depending on its first bytes
    assert want <= set(drops), drops
    assert drops["replay"] == 1 and drops["not_allowed"] == 1 and drops["unknown_endpoint"] == 1
    by_peer = {p["name"]: p["drops"] for p in ha.status()["peers"]}
    assert by_peer["h2"].get("bad_mac", 0) >= 1


def test_route_with_two_gateways_spreads_flows(lab, netns_factory):
    nss = lab(3)
    a, b, c = nss
    for ns in (b, c):
        run_in(ns, ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"])
    route = RouteSpec(NET("192.0.2.0/24"), ((ipaddress.ip_address(overlay4(1)), 1), (ipaddress.ip_address(overlay4(2)), 1)))
    lab.run(a, 0, [peer_spec(1, extra=["192.0.2.0/24"]), peer_spec(2, extra=["192.0.2.0/24"])], [route])
    lab.run(b, 1, [peer_spec(0)])
    lab.run(c, 2, [peer_spec(0)])
    run_in(a, ["ip", "route", "add", "192.0.2.0/24", "dev", "tk0"])
    servers = []
    for ns in (b, c):
        with ns.entered():
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with ns.entered():
            s.bind(("192.0.2.1", 9000))
        s.settimeout(0.2)
        servers.append(s)
    with a.entered():
        clients = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(32)]
    seen = [set(), set()]
    try:
        for _ in range(3):  # a few rounds: the first packets of a flow may race the neighbour set-up
            for k, cl in enumerate(clients):
                cl.sendto(b"flow %d" % k, ("192.0.2.1", 9000))
            for idx, s in enumerate(servers):
                while True:
                    try:
                        seen[idx].add(s.recv(100))
                    except socket.timeout:
                        break
    finally:
        for s in servers + clients:
            s.close()
    assert seen[0] and seen[1], seen
    assert not seen[0] & seen[1]  # each flow stays on one gateway
    assert len(seen[0] | seen[1]) == 32


def test_killing_and_restarting_one_side_recovers(lab, tmp_path):
    nss = lab(2)
    ha, hb = _mesh(lab, nss)
    assert tcp_round_trip(nss[0], nss[1], overlay4(1), 5004, 256 << 10)
    hb.stop()  # b goes away: device, sockets and replay state with it
    assert _no_ping(nss[0], overlay4(1))
    lab.run(nss[1], 1, [peer_spec(0)])  # a new b: new session, fresh counters, nothing done at a
    assert _ping(nss[0], overlay4(1))
    assert tcp_round_trip(nss[1], nss[0], overlay4(0), 5005, 256 << 10)
    assert ha.status()["drops"].get("replay", 0) == 0


def _wait_for(pred, timeout=15.0):  # generous: returns as soon as pred holds
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


@pytest.mark.parametrize("workers", [1, 2])
def test_mtu_change_and_link_state_reach_the_workers(lab, workers):

    nss = lab(2)
    ha, _ = _mesh(lab, nss, workers=workers)
    a = nss[0]
    run_in(a, ["ip", "link", "set", "dev", "tk0", "mtu", "1200"])
    assert _wait_for(lambda: ha.status()["worker_mtu"] == [1200])  # every worker follows
    run_in(a, ["ip", "link", "set", "dev", "tk0", "down"])
    assert _wait_for(lambda: ha.status()["link_up"] is False)
    run_in(a, ["ip", "link", "set", "dev", "tk0", "up"])
    run_in(a, ["ip", "addr", "replace", f"{overlay4(0)}/24", "dev", "tk0"])
    assert _wait_for(lambda: ha.status()["link_up"] is True)
    assert _ping(a, overlay4(1)) and tcp_round_trip(a, nss[1], overlay4(1), 5006, 256 << 10)


@pytest.mark.parametrize("workers", [1, 2])
def test_an_mtu_change_before_the_loop_runs_is_not_missed(lab, workers):
    """The node subscribes to link events, then reads the device: a change made between start() and
    run() (while workers start) reaches every worker instead of being lost."""
    nss = lab(2)
    peers = [peer_spec(1, key=KEY)]
    ha = lab.run(nss[0], 0, peers, workers=workers,
                 before_run=lambda dev: run_here(["ip", "link", "set", "dev", dev, "mtu", "1200"]))

    def follows():
        try:
            st = ha.status()
        except OSError:  # the status socket appears once run() has started
            return False
        return st["mtu"] == 1200 and st["worker_mtu"] == [1200]

    assert _wait_for(follows, timeout=20)


def test_kernel_routes_into_the_overlay_are_mirrored(lab):
    nss = lab(2)
    a, b = nss
    ha = lab.run(a, 0, [peer_spec(1)], system_routes=True)
    lab.run(b, 1, [peer_spec(0)])
    with a.entered():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def tx():
        return ha.status()["peers"][0]["tx_packets"]

    with s:
        run_in(a, ["ip", "route", "add", "203.0.113.0/24", "dev", "tk0"])  # into the TUN, no gateway
        s.sendto(b"x", ("203.0.113.5", 9))
        assert _wait_for(lambda: ha.status()["drops"].get("no_route", 0) >= 1)  # not mirrored: no route
        run_in(a, ["ip", "route", "replace", "203.0.113.0/24", "via", overlay4(1), "dev", "tk0"])
        before = tx()
        assert _wait_for(lambda: (s.sendto(b"y", ("203.0.113.5", 9)), tx() > before)[1])  # mirrored: to b
        run_in(a, ["ip", "route", "replace", "203.0.113.0/24", "dev", "tk0"])  # gateway gone again
        assert _wait_for(lambda: ha.node.tunnel.extra_routes == {})
        drops = ha.status()["drops"].get("no_route", 0)
        s.sendto(b"z", ("203.0.113.5", 9))
        assert _wait_for(lambda: ha.status()["drops"].get("no_route", 0) > drops)


@pytest.mark.parametrize("workers", [1, 2])
def test_reload_adds_a_route_and_keeps_traffic(lab, workers):
    from tunkit.errors import ConfigError

    nss = lab(2)
    a, b = nss
    run_in(b, ["ip", "addr", "add", "192.0.2.1/32", "dev", "lo"])
    ha = lab.run(a, 0, [peer_spec(1)], workers=workers)
    lab.run(b, 1, [peer_spec(0)])
    run_in(a, ["ip", "route", "add", "192.0.2.0/24", "dev", "tk0"])
    assert _no_ping(a, "192.0.2.1")  # b's prefixes do not include it yet: no route at a
    node = ha.node
    with pytest.raises(ConfigError):
        node.reconfigure([peer_spec(1)], [RouteSpec(NET("192.0.2.0/24"), ((ipaddress.ip_address("198.18.9.9"), 1),))])
    done = threading.Event()
    node.loop.call_later(0, lambda: (node.reconfigure([peer_spec(1, extra=["192.0.2.0/24"])]), done.set()))
    assert done.wait(5)
    assert _wait_for(lambda: _ping(a, "192.0.2.1", tries=1, timeout=0.5))
    assert ha.status()["peers"][0]["prefixes"][-1] == "192.0.2.0/24"


def _host_process(ns, i, peers, workers=1):
    cfg = {
        "device": f"tk{i}", "listen": ["0.0.0.0", PORT], "mtu": 1400, "workers": workers,
        "address4": overlay4(i), "address6": overlay6(i),
        "peers": [{"name": p.name, "endpoint": list(p.endpoint), "prefixes": [str(x) for x in p.prefixes],
                   "key": p.key.hex()} for p in peers],
    }
    script = os.path.join(os.path.dirname(__file__), "tunnel_host.py")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with ns.entered():  # a plain fork+exec from this thread: the process starts inside ns
        proc = subprocess.Popen([sys.executable, script, json.dumps(cfg)], stdout=subprocess.PIPE, text=True, env=env)
    ready = proc.stdout.readline()
    assert ready.strip() == "ready", ready
    return proc


@pytest.mark.parametrize("workers", [1, 2])
def test_sigkill_and_restart_of_a_host_process_recovers(lab, workers):
    nss = lab(2)
    a, b = nss
    proc = _host_process(b, 1, [peer_spec(0)], workers)
    try:
        ha = lab.run(a, 0, [peer_spec(1)])
        assert tcp_round_trip(a, b, overlay4(1), 5007, 512 << 10)
        proc.kill()  # SIGKILL: no clean-up at all; the kernel drops its TUN device (and workers follow)
        proc.wait(10)
        assert _wait_for(lambda: not support.ip_json("link", "show", ns=b) or
                         all(link["ifname"] != "tk1" for link in support.ip_json("link", "show", ns=b)))
        assert _no_ping(a, overlay4(1))
        proc = _host_process(b, 1, [peer_spec(0)], workers)  # same name, new session
        assert _wait_for(lambda: _ping(a, overlay4(1), tries=1, timeout=0.5))
        assert tcp_round_trip(b, a, overlay4(0), 5008, 512 << 10)
        assert ha.status()["drops"].get("replay", 0) == 0 and ha.status()["drops"].get("stale", 0) == 0
    finally:
        proc.kill()
        proc.wait(10)


@pytest.mark.parametrize("offloads", [True, False], ids=["vnet-tun", "plain-tun"])
def test_out_of_range_gso_fields_from_a_key_holder_are_dropped_by_name_while_traffic_continues(lab, offloads):
    """Issue 14 item 2: one datagram with a bad GSO field used to crash the receiver (csum_start 65535: a
    struct.error packing the virtio header; gso_size 0 on a plain TUN: range() step 0; gso_size 1: 173 ms of
    CPU per message).  Each is sealed with the right key, so only the field check stands in the way."""
    from support_tunnel import ipv4_tcp
    from tunkit.packet.offload import VirtioNetHdr

    nss = lab(2)
    hosts = _mesh(lab, nss, offloads=offloads)
    a, b = nss
    assert hosts[0].status()["vnet_hdr"] is offloads
    assert _ping(b, overlay4(0))
    tb = hosts[1].tunnel()
    peer = next(p for p in tb.peers if p.name == "h0")
    pkt = ipv4_tcp(overlay4(1), overlay4(0), 40000, 5201, bytes(1000), flags=0x10)
    bad = {  # header -> the reason it must be counted under
        VirtioNetHdr(1, 1, 0, 500, 65535, 16): "csum_start",
        VirtioNetHdr(1, 0, 0, 0, 65535, 16): "csum_start",
        VirtioNetHdr(1, 0, 0, 0, 20, 65535): "csum_offset",
        VirtioNetHdr(1, 1, 0, 0, 20, 16): "gso_size",
        VirtioNetHdr(1, 1, 0, 1, 20, 16): "gso_size",
        VirtioNetHdr(1, 3, 0, 500, 20, 16): "gso_type",
        VirtioNetHdr(5, 1, 0, 500, 20, 16): "gso_flags",
        VirtioNetHdr(1, 4, 0, 500, 20, 16): "gso_headers",
    }
    for hdr in bad:
        h, tag = peer.sealer.seal(pkt, time.time_ns() // 1_000_000, hdr)
        tb.sock.sendto(h + pkt + tag, peer.addr)
    want = {}
    for reason in bad.values():
        want[reason] = want.get(reason, 0) + 1
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        drops = hosts[0].status()["drops"]
        if all(drops.get(r, 0) >= n for r, n in want.items()):
            break
        time.sleep(0.05)
    assert {r: drops.get(r, 0) for r in want} == want, drops
    by_peer = {p["name"]: p["drops"] for p in hosts[0].status()["peers"]}
    assert {r: by_peer["h1"].get(r, 0) for r in want} == want
    assert _ping(b, overlay4(0))  # the receiver is alive and traffic continues, super-packets included
    assert tcp_round_trip(b, a, overlay4(0), 5011, 1 << 20)
