"""tunkit's WireGuard data path (tunkit.overlay.wg) on a real TUN against wireguard-go, in throwaway namespaces.

Namespace ``wg`` runs wireguard-go (configured with ``wg set``); namespace
``tk`` runs a :class:`tunkit.overlay.wg.WgInterface` in a thread: a TUN device
with offloads, its UDP socket, the engine and a UAPI socket (a name unique to
this test under /var/run/wireguard, so ``wg show`` reads it too).  The kernels
on both sides answer pings and carry TCP; nothing here builds inner packets
except the ICMP echo helper (there is no ping binary).
"""

from __future__ import annotations

import hashlib
import ipaddress
import itertools
import os
import pathlib
import socket
import struct
import subprocess
import threading
import time

import pytest

from support_tunnel import icmp_echo
from support_wireguard import HostThread, address_wg_interface, require_wireguard_tools, start_wireguard_go, stop_wireguard_go, veth_between, write_key
from tunkit.crypto import LibCrypto, generate_private_key, public_key
from tunkit.overlay.uapi_server import SOCKET_DIR
from tunkit.wireguard import Engine, format_key
from tunkit.wireguard.settings import InterfaceConfig, PeerConfig

pytestmark = pytest.mark.privileged

WG_UNDERLAY, TK_UNDERLAY = "192.0.2.1", "192.0.2.2"
WG_PORT, TK_PORT = 51820, 51821
WG4, TK4 = "198.18.0.1", "198.18.0.2"
WG6, TK6 = "2001:db8:1::1", "2001:db8:1::2"
NET = ipaddress.ip_network
_seq = itertools.count(1)


def run_here(args):
    """A command in the calling thread's namespace (no preexec_fn: safe with threads around)."""
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30)


class TunkitSide:
    """A WgInterface running in a thread inside namespace ``ns``."""

    def __init__(self, ns, name: str, config: InterfaceConfig) -> None:
        self.ns, self.name, self.config = ns, name, config
        self.iface = None
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)
        self._thread.start()
        assert self._ready.wait(30), "the tunkit side did not start"
        if self.error is not None:
            raise self.error

    def _main(self) -> None:
        from tunkit.overlay.wg import WgInterface

        try:
            with self.ns.entered():
                self.iface = WgInterface(self.name, self.config, mtu=1420, uapi_dir=SOCKET_DIR)
                run_here(["ip", "addr", "add", f"{TK4}/24", "dev", self.name])
                run_here(["ip", "addr", "add", f"{TK6}/64", "dev", self.name, "nodad"])
                self._ready.set()
                self.iface.run()
        except BaseException as e:  # reported to the test thread
            self.error = e
            self._ready.set()
        finally:
            if self.iface is not None:
                self.iface.close()

    def stop(self) -> None:
        if self.iface is not None:
            self.iface.stop()
        self._thread.join(15)
        assert not self._thread.is_alive()
        if self.error is not None:
            raise self.error

    @property
    def engine(self):
        return self.iface.engine


class Lab:
    def __init__(self, netns_factory, tmp_path) -> None:
        require_wireguard_tools()
        self.tmp = tmp_path
        self.proc = self.tk = None
        self.wg = netns_factory("wg")
        self.tkns = netns_factory("tk")
        veth_between(self.wg, self.tkns, "veth-wg", "veth-tk", [WG_UNDERLAY], [TK_UNDERLAY])
        n = next(_seq)
        self.wg_if = f"wgg{os.getpid() % 100000}x{n}"[:15]
        self.tk_if = f"wgt{os.getpid() % 100000}x{n}"[:15]
        self.wg_key, self.tk_key = generate_private_key(), generate_private_key()

    def start_wireguard_go(self, *, endpoint: bool) -> None:
        keyfile = write_key(self.tmp / "wg.key", self.wg_key)
        self.proc = start_wireguard_go(self.wg, self.wg_if)
        cmd = ["wg", "set", self.wg_if, "private-key", keyfile, "listen-port", str(WG_PORT),
               "peer", format_key(public_key(self.tk_key)), "allowed-ips", f"{TK4}/32,{TK6}/128"]
        if endpoint:
            cmd += ["endpoint", f"{TK_UNDERLAY}:{TK_PORT}"]
        self.wg.run(cmd)
        address_wg_interface(self.wg, self.wg_if, WG4, WG6)

    def start_tunkit(self, *, endpoint: bool) -> TunkitSide:
        peer = PeerConfig(public_key(self.wg_key), endpoint=(WG_UNDERLAY, WG_PORT) if endpoint else None,
                          allowed_ips=(NET(f"{WG4}/32"), NET(f"{WG6}/128")))
        cfg = InterfaceConfig(self.tk_key, listen_port=TK_PORT, peers=(peer,))
        self.tk = TunkitSide(self.tkns, self.tk_if, cfg)
        return self.tk

    def close(self) -> None:
        if self.tk is not None:
            self.tk.stop()
        stop_wireguard_go(self.proc, self.wg_if)

    def ping(self, ns, dst: str, tries: int = 5) -> bool:
        with ns.entered():
            return any(icmp_echo(dst, timeout=2.0) for _ in range(tries))

    def dump(self, ifname: str) -> dict:
        """``wg show IF dump``'s peer line (works on both sides: tunkit serves the same socket)."""
        fields = self.wg.run(["wg", "show", ifname, "dump"]).stdout.splitlines()[1].split("\t")
        return {"endpoint": fields[2], "allowed_ips": fields[3], "latest_handshake": int(fields[4]),
                "rx": int(fields[5]), "tx": int(fields[6])}

    def drops(self) -> dict:
        return self.tk.iface.status()["drops"]


@pytest.fixture
def lab(netns_factory, tmp_path):
    lab = Lab(netns_factory, tmp_path)
    try:
        yield lab
    finally:
        lab.close()


def tcp_transfer(client_ns, server_ns, addr: str, port: int, nbytes: int) -> tuple[str, str]:
    """Send ``nbytes`` random bytes over TCP from ``client_ns`` to a server in ``server_ns``: (sent, received) sha256."""
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with server_ns.entered():
        srv = socket.create_server((addr, port), family=fam)
    srv.settimeout(20)
    got = {}

    def serve():
        h = hashlib.sha256()
        try:
            conn, _ = srv.accept()
        except OSError:  # the client gave up
            return
        with conn:
            conn.settimeout(20)
            while data := conn.recv(1 << 16):
                h.update(data)
        got["digest"] = h.hexdigest()

    th = threading.Thread(target=serve, daemon=True)
    th.start()
    data = os.urandom(nbytes)
    try:
        with client_ns.entered():
            c = socket.create_connection((addr, port), timeout=20)
        with c:
            c.sendall(data)
        th.join(30)
    finally:
        srv.close()
    return hashlib.sha256(data).hexdigest(), got.get("digest", "")


@pytest.mark.parametrize("initiator", ["tunkit", "wireguard-go"])
def test_tunkit_and_wireguard_go_ping_and_carry_tcp_both_ways(lab, initiator):
    # only the initiator knows the other's endpoint: the responder learns it from the handshake
    lab.start_wireguard_go(endpoint=initiator == "wireguard-go")
    tk = lab.start_tunkit(endpoint=initiator == "tunkit")
    first = lab.tkns if initiator == "tunkit" else lab.wg
    assert lab.ping(first, WG4 if initiator == "tunkit" else TK4), lab.drops()
    assert lab.ping(lab.tkns, WG6) and lab.ping(lab.wg, TK6), lab.drops()
    assert lab.ping(lab.wg, TK4) and lab.ping(lab.tkns, WG4)
    peer = next(iter(tk.engine.peers.values()))
    assert peer.current is not None and peer.current.initiator == (initiator == "tunkit")
    for client, server, addr in ((lab.tkns, lab.wg, WG4), (lab.wg, lab.tkns, TK4), (lab.tkns, lab.wg, WG6)):
        sent, got = tcp_transfer(client, server, addr, 5001, 3 << 20)
        assert sent == got, f"TCP to {addr} arrived damaged or short; drops {lab.drops()}"
    wg_side = lab.dump(lab.wg_if)   # wireguard-go's view of tunkit
    assert wg_side["latest_handshake"] > 0 and wg_side["endpoint"] == f"{TK_UNDERLAY}:{TK_PORT}"
    assert wg_side["rx"] > 3 * (3 << 20) // 2 and wg_side["tx"] > (3 << 20)
    tk_side = lab.dump(lab.tk_if)   # `wg show` on tunkit's own UAPI socket
    assert tk_side["latest_handshake"] > 0 and tk_side["endpoint"] == f"{WG_UNDERLAY}:{WG_PORT}"
    assert tk_side["allowed_ips"] == f"{WG4}/32,{WG6}/128"
    # the two sides count the same transport datagrams (tunkit also counts its handshake messages)
    assert tk_side["tx"] >= wg_side["rx"] and tk_side["rx"] >= wg_side["tx"]
    st = tk.iface.status()
    assert st["peers"][0]["latest_handshake"] > 0 and st["peers"][0]["tx_bytes"] == peer.tx_bytes
    assert st["tun"]["packets_read"] >= 0 and st["tun"]["writes"] > 0
    assert {k: v for k, v in st["drops"].items() if k != "no_route"} == {}, st["drops"]


def test_attacks_are_dropped_and_counted_by_reason_while_a_transfer_continues(lab):
    """Garbage, truncated, replayed and tampered transport messages during a TCP transfer; then a replayed
    initiation, a stranger's static key, an unknown receiver index, an inner source outside the allowed IPs."""
    lab.start_wireguard_go(endpoint=True)
    tk = lab.start_tunkit(endpoint=True)
    recorded: list[bytes] = []
    real = tk.engine.receive

    initiations: list[bytes] = []

    def recording(data, addr, now):  # keep copies of real messages to replay later
        if len(data) > 32 and data[0] == 4 and len(recorded) < 64:
            recorded.append(bytes(data))
        elif len(data) == 148 and data[0] == 1:
            initiations.append(bytes(data))
        return real(data, addr, now)

    tk.engine.receive = recording
    assert lab.ping(lab.wg, TK4), lab.drops()   # wireguard-go initiates: its initiation is recorded
    assert recorded and initiations, "no transport message or initiation seen"
    with lab.wg.entered():
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    result = {}

    def transfer():
        result["hashes"] = tcp_transfer(lab.wg, lab.tkns, TK4, 5002, 4 << 20)

    th = threading.Thread(target=transfer, daemon=True)
    th.start()
    rng = __import__("random").Random(12)
    target = (TK_UNDERLAY, TK_PORT)
    sent = {"garbage": 0, "truncated": 0, "replayed": 0, "forged": 0}
    with attacker:
        for i in range(300):
            attacker.sendto(bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))), target)
            sent["garbage"] += 1
            attacker.sendto(recorded[i % len(recorded)][:rng.randrange(1, 31)], target)
            sent["truncated"] += 1
            attacker.sendto(recorded[i % len(recorded)], target)
            sent["replayed"] += 1
            forged = bytearray(recorded[0])
            forged[-1] ^= 1
            forged[8:16] = (10**6 + i).to_bytes(8, "little")   # a fresh counter, but the tag no longer fits
            attacker.sendto(bytes(forged), target)
            sent["forged"] += 1
            if i % 50 == 0:
                time.sleep(0.01)
        # a replayed initiation (its timestamp is not newer), one from a static key that is no peer of
        # ours, a transport message for an index we never gave out
        attacker.sendto(initiations[0], target)
        stranger = Engine(generate_private_key(), LibCrypto(), wall_offset=time.time() - time.monotonic())
        us = stranger.add_peer(public_key(lab.tk_key), endpoint=target)
        assert stranger.initiate(us, time.monotonic())
        for datagram, _ in stranger.pop_datagrams():
            attacker.sendto(bytes(datagram), target)
        attacker.sendto(struct.pack("<IIQ", 4, 0xDEADBEEF, 7) + bytes(48), target)
        sent["handshakes"] = 3
        # an inner source outside wireguard-go's allowed IPs, sealed by wireguard-go itself
        with lab.wg.entered():
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        with raw:
            spoofed = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28, 0, 0x4000, 64, 17, 0,
                                            socket.inet_aton("198.18.0.99"), socket.inet_aton(TK4)))
            spoofed += struct.pack("!HHHH", 9, 9, 8, 0)
            for _ in range(3):
                raw.sendto(bytes(spoofed), (TK4, 0))
    th.join(60)
    hashes = result.get("hashes")
    assert hashes is not None and hashes[0] == hashes[1], f"the transfer broke; drops {lab.drops()}"
    drops = lab.drops()
    assert drops.get("replayed_transport", 0) >= 1, drops
    assert drops.get("decrypt", 0) >= 1, drops
    assert drops.get("malformed", 0) >= 1, drops
    deadline = time.monotonic() + 10   # the last ones may still be in flight
    while time.monotonic() < deadline and not all(lab.drops().get(k) for k in (
            "replayed_initiation", "unknown_peer", "unknown_receiver", "disallowed_source")):
        time.sleep(0.05)
    drops = lab.drops()
    for reason in ("replayed_initiation", "unknown_peer", "unknown_receiver", "disallowed_source"):
        assert drops.get(reason, 0) >= 1, (reason, drops)
    # every attack datagram that arrived is in exactly one counter (garbage can also look like an
    # unknown index or a handshake with a bad mac1); the kernel may drop some under load, never more
    attack = sum(sent.values())
    counted = sum(v for k, v in drops.items() if k in ("malformed", "mac1", "unknown_receiver", "decrypt",
                                                         "replayed_transport", "ext_disabled", "unknown_peer",
                                                         "replayed_initiation", "handshake_invalid"))
    assert 0 < counted <= attack, (counted, attack, drops)
    assert lab.ping(lab.tkns, WG4), "the session survived the attack"


# ---------------------------------------------------------------- tunkit <-> tunkit, both from wg-quick files

def QuickSide(ns, path: str, status_path: str) -> HostThread:
    """``tunkit up NAME.conf``, in a thread inside ``ns`` (``load_wgquick``: the validation `tunkit check` runs)."""
    from tunkit.app.config import load_wgquick
    from tunkit.app.up import WgQuickHost

    return HostThread(ns, WgQuickHost(load_wgquick(path), status_path=status_path))


def test_two_tunkit_hosts_from_unchanged_wg_quick_files(netns_factory, tmp_path):
    a, b = netns_factory("qa"), netns_factory("qb")
    veth_between(a, b, "veth-a", "veth-b", [WG_UNDERLAY], [TK_UNDERLAY])
    ka, kb, psk = generate_private_key(), generate_private_key(), os.urandom(32)
    n = next(_seq)
    names = [f"wqa{os.getpid() % 100000}x{n}"[:15], f"wqb{os.getpid() % 100000}x{n}"[:15]]
    files = []
    for i, (me, other, addr, inner, other_inner) in enumerate((
            (ka, kb, None, (WG4, WG6), (TK4, TK6)),                    # a: no endpoint, b must initiate
            (kb, ka, f"{WG_UNDERLAY}:{WG_PORT}", (TK4, TK6), (WG4, WG6)))):
        text = (f"[Interface]\n# host {'ab'[i]}\nPrivateKey = {format_key(me)}\n"
                f"Address = {inner[0]}/24, {inner[1]}/64\nListenPort = {WG_PORT if i == 0 else TK_PORT}\n"
                f"MTU = 1420\nDNS = 192.0.2.53\n\n[Peer]\nPublicKey = {format_key(public_key(other))}\n"
                f"PresharedKey = {format_key(psk)}\nAllowedIPs = {other_inner[0]}/32\nAllowedIPs = {other_inner[1]}\n"
                + (f"Endpoint = {addr}\nPersistentKeepalive = 25\n" if addr else ""))
        path = tmp_path / f"{names[i]}.conf"
        path.write_text(text)
        path.chmod(0o600)
        files.append(str(path))
    sides = []
    try:
        for i, (ns, f) in enumerate(zip((a, b), files)):
            sides.append(QuickSide(ns, f, str(tmp_path / f"status-{i}-{os.getpid()}.sock")))
        lab = Lab.__new__(Lab)
        assert lab.ping(b, WG4) and lab.ping(a, TK4) and lab.ping(a, TK6) and lab.ping(b, WG6)
        for client, server, addr in ((a, b, TK4), (b, a, WG6)):
            sent, got = tcp_transfer(client, server, addr, 5003, 2 << 20)
            assert sent == got
        for side in sides:
            st = side.host.status()
            assert st["peers"][0]["latest_handshake"] and st["peers"][0]["rx_bytes"] > (2 << 20)
            assert {k: v for k, v in st["drops"].items() if k != "no_route"} == {}, st["drops"]
        assert sides[1].host.status()["peers"][0]["persistent_keepalive"] == 25
        # `wg show` reads tunkit's UAPI socket: b initiated, a learned b's endpoint from it
        dump = subprocess.run(["wg", "show", names[0], "dump"], check=True, capture_output=True,
                              text=True, timeout=10).stdout.splitlines()[1].split("\t")
        assert dump[2] == f"{TK_UNDERLAY}:{TK_PORT}" and dump[1] == format_key(psk)
        # `tunkit status`: the status socket, as `wg show` prints it
        from tunkit.cli.status import format_text
        from tunkit.overlay.status import query

        doc = query(sides[1].host.status_path)
        assert doc["mode"] == "wireguard" and doc["peers"][0]["endpoint"] == f"{WG_UNDERLAY}:{WG_PORT}"
        text = format_text(doc)
        assert f"peer: {format_key(public_key(ka))}" in text and "persistent keepalive: every 25 seconds" in text
        assert "latest handshake: " in text and "never" not in text and "MiB received" in text
        # reload (SIGHUP): a refused file keeps everything, a good one applies live like wg syncconf
        good = pathlib.Path(files[1]).read_text()
        pathlib.Path(files[1]).write_text(good.replace("PersistentKeepalive = 25", "PersistentKeepalive = 300000"))
        assert not sides[1].reload()
        assert sides[1].host.status()["peers"][0]["persistent_keepalive"] == 25
        pathlib.Path(files[1]).write_text(good.replace("PersistentKeepalive = 25", "PersistentKeepalive = 15"))
        session = next(iter(sides[1].host.iface.engine.peers.values())).current
        assert sides[1].reload()
        peer_b = next(iter(sides[1].host.iface.engine.peers.values()))
        assert peer_b.persistent_keepalive == 15 and peer_b.current is session   # the session stayed
        assert lab.ping(b, WG4)
    finally:
        for side in sides:
            side.stop()


def _in_loop(side: TunkitSide, fn) -> None:
    """Run ``fn()`` in the interface's loop thread (the engine is not thread-safe) and wait for it."""
    done = threading.Event()

    def call():
        try:
            fn()
            side.iface.path._after_event()
        finally:
            done.set()

    side.iface.loop.call_later(0, call)
    assert done.wait(10)


def test_forced_rekeys_during_a_transfer_lose_nothing(lab):
    lab.start_wireguard_go(endpoint=True)
    tk = lab.start_tunkit(endpoint=True)
    assert lab.ping(lab.tkns, WG4), lab.drops()
    peer = next(iter(tk.engine.peers.values()))
    result = {}
    th = threading.Thread(target=lambda: result.update(h=tcp_transfer(lab.tkns, lab.wg, WG4, 5004, 8 << 20)),
                          daemon=True)
    th.start()
    rekeys = 0
    while th.is_alive() and rekeys < 4:
        time.sleep(0.05)
        _in_loop(tk, lambda: tk.engine.initiate(peer, time.monotonic(), force=True))
        rekeys += 1
    th.join(60)
    assert result.get("h") and result["h"][0] == result["h"][1], lab.drops()
    assert rekeys >= 1 and peer.handshakes >= 2, (rekeys, peer.handshakes)
    assert lab.ping(lab.tkns, WG4) and lab.ping(lab.wg, TK4)


def test_endpoints_follow_each_side_to_a_new_underlay_address(lab):
    lab.start_wireguard_go(endpoint=True)
    tk = lab.start_tunkit(endpoint=True)
    assert lab.ping(lab.tkns, WG4), lab.drops()
    # tunkit moves: wireguard-go follows its latest authenticated packet
    # (deleted first: deleting a primary address takes the secondaries of its subnet with it)
    lab.tkns.run(["ip", "addr", "del", f"{TK_UNDERLAY}/24", "dev", "veth-tk"])
    lab.tkns.run(["ip", "addr", "add", "192.0.2.3/24", "dev", "veth-tk"])
    assert lab.ping(lab.tkns, WG4), lab.drops()
    assert lab.dump(lab.wg_if)["endpoint"] == f"192.0.2.3:{TK_PORT}"
    assert lab.ping(lab.wg, TK4)
    # wireguard-go moves (to a new port, as behind a NAT that rebinds): tunkit follows.  (A new address on
    # wireguard-go's side is not used here: Debian's wireguard-go keeps sending from its cached source
    # address after that address is deleted.)
    lab.wg.run(["wg", "set", lab.wg_if, "listen-port", str(WG_PORT + 10)])
    assert lab.ping(lab.wg, TK4), lab.drops()
    assert tk.iface.status()["peers"][0]["endpoint"] == f"{WG_UNDERLAY}:{WG_PORT + 10}"
    assert lab.ping(lab.tkns, WG6)


def test_wg_set_listen_port_and_fwmark_go_through_the_prepare_hook(lab):
    lab.start_wireguard_go(endpoint=True)
    tk = lab.start_tunkit(endpoint=True)
    assert lab.ping(lab.tkns, WG4), lab.drops()
    with lab.tkns.entered():
        busy = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        busy.bind(("::", 51998))
    with busy:
        # a port in use refuses the whole set (EADDRINUSE): the fwmark in it is not applied either
        r = lab.tkns.run(["wg", "set", lab.tk_if, "listen-port", "51998", "fwmark", "0x42"], check=False)
        assert r.returncode != 0 and "Address already in use" in (r.stderr if isinstance(r.stderr, str) else r.stderr.decode())
        assert tk.iface.path.port == TK_PORT and tk.engine.fwmark == 0
    lab.tkns.run(["wg", "set", lab.tk_if, "listen-port", "51999", "fwmark", "0x42"])
    assert tk.iface.path.port == 51999
    assert tk.iface.path.sock.getsockopt(socket.SOL_SOCKET, socket.SO_MARK) == 0x42
    show = lab.tkns.run(["wg", "show", lab.tk_if]).stdout
    show = show if isinstance(show, str) else show.decode()
    assert "listening port: 51999" in show and "fwmark: 0x42" in show
    # tunkit now sends from the new port; wireguard-go follows it there
    assert lab.ping(lab.tkns, WG4), lab.drops()
    assert lab.dump(lab.wg_if)["endpoint"] == f"{TK_UNDERLAY}:51999"
    assert lab.ping(lab.wg, TK4)


def test_tunkit_up_runs_a_wg_quick_file_and_stops_cleanly_on_sigterm(netns_factory, tmp_path):
    import signal
    import sys

    ns = netns_factory("up")
    name = f"wqu{os.getpid() % 100000}x{next(_seq)}"[:15]
    conf = tmp_path / f"{name}.conf"
    peer = format_key(public_key(generate_private_key()))
    conf.write_text(f"[Interface]\nPrivateKey = {format_key(generate_private_key())}\nAddress = {TK4}/24\n"
                    f"ListenPort = {TK_PORT}\nDNS = 192.0.2.53\n\n[Peer]\nPublicKey = {peer}\n"
                    f"AllowedIPs = {WG4}/32, 198.51.100.0/24\nEndpoint = 192.0.2.1:51820\n")
    conf.chmod(0o600)
    status = str(tmp_path / f"{name}-status.sock")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = ns.popen([sys.executable, "-m", "tunkit", "up", str(conf), "--status-socket", status],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=root)
    try:
        deadline = time.monotonic() + 30
        while not os.path.exists(status):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no status socket"
            time.sleep(0.05)
        out = subprocess.run([sys.executable, "-m", "tunkit", "status", "--socket", status], capture_output=True,
                             text=True, timeout=30, cwd=root)
        assert out.returncode == 0 and f"peer: {peer}" in out.stdout and "198.51.100.0/24" in out.stdout
        routes = ns.run(["ip", "-j", "route", "show", "dev", name]).stdout
        assert "198.51.100.0/24" in str(routes) and WG4 in str(routes)
        wg = ns.run(["wg", "show", name, "endpoints"]).stdout
        assert "192.0.2.1:51820" in str(wg)
        proc.send_signal(signal.SIGHUP)   # reload: the same file applied again (the loop takes signals in order)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert "DNS ignored" in err and "reloaded" in err
        assert name not in str(ns.run(["ip", "-j", "link", "show"]).stdout)   # the device went with it
        assert not os.path.exists(f"{SOCKET_DIR}/{name}.sock") and not os.path.exists(status)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
