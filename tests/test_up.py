"""`tunkit up` on two hosts from the example configs: kernel state, traffic, every kind of reload, clean exit.

Two namespaces joined by a veth (underlay 198.51.100.0/24) each run `python -m tunkit up` on a copy
of examples/two-hosts/.  Kernel state is checked with `ip -j`, traffic with a UDP datagram across the
overlay after every change.  Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

import pytest

import support
from tunkit.cli import main as cli_main

ROOT = pathlib.Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def wait_for(cond, what: str, timeout: float = 8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class TwoHosts:
    def __init__(self, netns_factory, tmp: pathlib.Path):
        from tunkit.netlink import Rtnl

        self.tmp = tmp
        self.dir = tmp / "two-hosts"
        shutil.copytree(ROOT / "examples" / "two-hosts", self.dir)
        assert cli_main(["genkey", str(self.dir / "net.key")]) == 0
        self.a, self.b = netns_factory("host-a"), netns_factory("host-b")
        with self.a.entered(), Rtnl() as rt:
            rt.add_veth("ua", "ub", peer_netns=self.b)
            rt.add_address("ua", "198.51.100.1/24")
            rt.set_link("ua", up=True)
        with self.b.entered(), Rtnl() as rt:
            rt.add_address("ub", "198.51.100.2/24")
            rt.set_link("ub", up=True)
        self.procs = {}
        self.logs = {}

    def up(self, host: str):
        ns = self.a if host == "a" else self.b
        log = self.tmp / f"{host}.log"
        self.logs[host] = log
        sock = self.tmp / f"{host}.sock"
        self.procs[host] = ns.popen(
            [sys.executable, "-m", "tunkit", "up", str(self.dir / f"{host}.toml"), "--status-socket", str(sock)],
            env=ENV, stdout=open(log, "a"), stderr=open(log, "a"),
        )
        wait_for(lambda: sock.exists() or self.procs[host].poll() is not None, f"{host} to start")
        assert self.procs[host].poll() is None, log.read_text()

    def log(self, host: str) -> str:
        return self.logs[host].read_text()

    def status(self, host: str) -> dict:
        ns = self.a if host == "a" else self.b
        out = ns.run([sys.executable, "-m", "tunkit", "status", "-j", "--socket", str(self.tmp / f"{host}.sock")], env=ENV)
        return json.loads(out.stdout)[0]

    def reload(self, host: str, text: str):
        (self.dir / f"{host}.toml").write_text(text)
        ns = self.a if host == "a" else self.b
        before = self.log(host).count("reload")
        out = ns.run([sys.executable, "-m", "tunkit", "reload", "--socket", str(self.tmp / f"{host}.sock")], env=ENV)
        assert "reload requested" in out.stdout
        wait_for(lambda: self.log(host).count("reload") > before, f"{host} to log its reload")

    def routes(self, host: str = "a") -> dict:
        ns = self.a if host == "a" else self.b
        return {(r["dst"], r.get("metric")): r for r in support.ip_json("route", "show", "dev", "tunkit0", ns=ns)}

    def link(self, host: str = "a") -> dict:
        ns = self.a if host == "a" else self.b
        return support.ip_json("-d", "link", "show", "tunkit0", ns=ns)[0]

    def send(self, payload: bytes = b"across the overlay", src: str = "a") -> bytes:
        (sns, dns, dst) = (self.a, self.b, "198.18.0.2") if src == "a" else (self.b, self.a, "198.18.0.1")
        with dns.entered():
            srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with sns.entered():
            cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with srv, cli:
            srv.bind((dst, 0))
            srv.settimeout(0.5)
            for _ in range(6):  # bounded: the first datagram may race a fresh reload
                cli.sendto(payload, (dst, srv.getsockname()[1]))
                try:
                    return srv.recv(2048)
                except TimeoutError:
                    continue
        raise AssertionError(f"no datagram crossed the overlay from {src}")

    def stop(self, host: str) -> int:
        p = self.procs.pop(host)
        p.send_signal(signal.SIGTERM)
        return p.wait(timeout=15)

    def close(self):
        for p in self.procs.values():
            p.kill()
            p.wait(timeout=10)


@pytest.fixture
def hosts(netns_factory, tmp_path):
    h = TwoHosts(netns_factory, tmp_path)
    try:
        yield h
    finally:
        h.close()


def test_up_configures_kernel_and_carries_traffic_then_cleans_up(hosts):
    hosts.up("a")
    hosts.up("b")
    link = hosts.link("a")
    assert link["mtu"] == 1400 and "UP" in link["flags"]
    assert link["linkinfo"]["info_kind"] == "tun"
    addrs = {(x["local"], x["prefixlen"]) for x in support.ip_json("addr", "show", "dev", "tunkit0", ns=hosts.a)[0]["addr_info"]}
    assert addrs == {("198.18.0.1", 16), ("2001:db8:100::1", 64)}  # exactly these: no link-local (addrgenmode none)
    r = hosts.routes()[("192.0.2.0/24", 100)]
    assert r["metrics"] == [{"mtu": 1300, "advmss": 1260}]
    assert hosts.send(b"a to b") == b"a to b"
    assert hosts.send(b"b to a", src="b") == b"b to a"
    st = hosts.status("a")
    assert st["peers"][0]["tx_packets"] >= 1 and st["peers"][0]["rx_packets"] >= 1
    assert hosts.stop("a") == 0
    assert "tunkit0" not in {x["ifname"] for x in support.ip_json("link", ns=hosts.a)}
    assert not support.ip_json("route", "show", "192.0.2.0/24", ns=hosts.a)
    assert not (hosts.tmp / "a.sock").exists()


def test_reload_applies_each_kind_of_change(hosts):
    hosts.up("a")
    hosts.up("b")
    base = (hosts.dir / "a.toml").read_text()

    # 1. an unsafe route's metric and MTU change: old route deleted, new one with mtu/advmss
    text = base.replace("mtu = 1300\nmetric = 100", "mtu = 1200\nmetric = 50")
    hosts.reload("a", text)
    routes = wait_for(lambda: (r := hosts.routes()) and ("192.0.2.0/24", 50) in r and r, "metric 50")
    assert ("192.0.2.0/24", 100) not in routes
    assert routes[("192.0.2.0/24", 50)]["metrics"] == [{"mtu": 1200, "advmss": 1160}]
    assert hosts.send() == b"across the overlay"

    # 2. a route added ([[routes]] MTU override) and the unsafe route removed
    text = base.split("# Traffic for 192.0.2.0/24")[0] + '[[routes]]\nroute = "198.18.5.0/24"\nmtu = 1280\n'
    hosts.reload("a", text)
    routes = wait_for(lambda: (r := hosts.routes()) and ("198.18.5.0/24", None) in r and r, "198.18.5.0/24")
    assert routes[("198.18.5.0/24", None)]["metrics"] == [{"mtu": 1280, "advmss": 1240}]
    assert not any(dst == "192.0.2.0/24" for dst, _ in routes)
    assert hosts.send() == b"across the overlay"

    # 3. the device MTU changes: device and tunnel follow
    text = text.replace("mtu = 1400", "mtu = 1380")
    hosts.reload("a", text)
    wait_for(lambda: hosts.link()["mtu"] == 1380, "mtu 1380")
    assert hosts.status("a")["mtu"] == 1380
    assert hosts.send() == b"across the overlay"

    # 4. addresses change: reconciled (the IPv6 one replaced)
    text = text.replace("2001:db8:100::1/64", "2001:db8:100::11/64")
    hosts.reload("a", text)

    def v6():
        info = support.ip_json("addr", "show", "dev", "tunkit0", ns=hosts.a)[0]["addr_info"]
        return {x["local"] for x in info if x["family"] == "inet6"}

    wait_for(lambda: v6() == {"2001:db8:100::11"}, "the new IPv6 address")
    assert hosts.send() == b"across the overlay"

    # 5. a peer's prefixes change: the tunnel takes them without a restart, counters kept
    tx_before = hosts.status("a")["peers"][0]["tx_packets"]
    text = text.replace('prefixes = ["198.18.0.2/32", "2001:db8:100::2/128", "192.0.2.0/24"]',
                        'prefixes = ["198.18.0.2/32", "2001:db8:100::2/128", "198.51.100.128/25"]')
    hosts.reload("a", text)
    wait_for(lambda: "198.51.100.128/25" in hosts.status("a")["peers"][0]["prefixes"], "new prefixes")
    assert hosts.status("a")["peers"][0]["tx_packets"] >= tx_before
    assert hosts.send() == b"across the overlay"

    # 6. a setting that cannot change live is reported, the rest still applies
    hosts.reload("a", text.replace('name = "tunkit0"', 'name = "tunkit9"'))
    wait_for(lambda: "device.name changed" in hosts.log("a"), "the cannot-change-live message")
    assert hosts.link()["ifname"] == "tunkit0"
    assert hosts.send() == b"across the overlay"
    assert hosts.procs["a"].poll() is None


def test_invalid_reload_keeps_running_config(hosts):
    hosts.up("a")
    hosts.up("b")
    before = hosts.routes()
    bad = (hosts.dir / "a.toml").read_text().replace("metric = 100", "metric = -5")
    hosts.reload("a", bad)
    wait_for(lambda: "keeping the running configuration" in hosts.log("a"), "the refusal")
    assert "unsafe_routes[0].metric" in hosts.log("a")
    assert hosts.routes() == before
    assert hosts.procs["a"].poll() is None
    assert hosts.send() == b"across the overlay"


def test_up_with_invalid_config_applies_nothing(netns, tmp_path, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[network]\naddresses = ["198.18.0.1/16"]\ninsecure = true\n'
                   '[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\nprefixes = ["198.18.0.1/32"]\n')
    assert cli_main(["up", str(cfg)]) == 1
    assert "peers[0].prefixes[0]" in capsys.readouterr().err
    assert [x["ifname"] for x in support.ip_json("link")] == ["lo"]


def test_up_refuses_a_taken_device_name_and_leaves_it(netns, tmp_path, capsys):
    from tunkit.tun.device import open_tun

    cfg = tmp_path / "h.toml"
    cfg.write_text('[device]\nname = "tk0"\n[network]\naddresses = ["198.18.0.1/16"]\ninsecure = true\n'
                   '[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\nprefixes = ["198.18.0.2/32"]\n')
    with open_tun("tk0"):
        assert cli_main(["up", str(cfg)]) == 2
        assert "tk0" in capsys.readouterr().err
        assert {x["ifname"] for x in support.ip_json("link")} == {"lo", "tk0"}
        assert not support.ip_json("addr", "show", "dev", "tk0")[0]["addr_info"]


def test_reload_keys_txqueuelen_and_peer_set(hosts):
    hosts.up("a")
    hosts.up("b")
    base_a = (hosts.dir / "a.toml").read_text()
    base_b = (hosts.dir / "b.toml").read_text()

    # txqueuelen (absent before: the kernel default) is set live
    hosts.reload("a", base_a.replace("mtu = 1400", "mtu = 1400\ntxqueuelen = 321"))
    wait_for(lambda: hosts.link()["txqlen"] == 321, "txqueuelen 321")
    assert hosts.send() == b"across the overlay"

    # a new key on both hosts: after both reloads traffic flows again with the new key
    os.unlink(hosts.dir / "net.key")
    assert cli_main(["genkey", str(hosts.dir / "net.key")]) == 0
    hosts.reload("a", base_a.replace("mtu = 1400", "mtu = 1400\ntxqueuelen = 321"))
    with pytest.raises(AssertionError, match="no datagram crossed"):
        hosts.send()  # A seals with the new key, B still checks with the old one
    assert hosts.status("b")["drops"].get("bad_mac", 0) >= 1
    hosts.reload("b", base_b)
    assert hosts.send() == b"across the overlay"
    assert hosts.send(b"back", src="b") == b"back"

    # a peer added, then removed: the tunnel's peer list follows, the old peer keeps working
    extra = '\n[[peers]]\nname = "c"\nendpoint = "198.51.100.3:4800"\nprefixes = ["198.18.0.3/32"]\n'
    hosts.reload("a", base_a + extra)
    wait_for(lambda: [p["name"] for p in hosts.status("a")["peers"]] == ["b", "c"], "peer c added")
    assert hosts.send() == b"across the overlay"
    hosts.reload("a", base_a)
    wait_for(lambda: [p["name"] for p in hosts.status("a")["peers"]] == ["b"], "peer c removed")
    assert hosts.send() == b"across the overlay"


# Configurations that `tunkit check` accepted before and the tunnel refused (so `up` failed after creating
# the device and a reload exited the process after routes had changed).  Now the one validation refuses
# each of them in check, in up (before anything is created) and in a reload (the old configuration runs).
# (name, edit of a.toml, key path or None, fragment of the message)
_PEER_C = '\n[[peers]]\nname = "c"\nendpoint = "{ep}"\nprefixes = ["198.18.0.3/32"]\n'
BAD_FILES = [
    ("two peers with one endpoint", lambda t: t + _PEER_C.format(ep="198.51.100.2:4800"),
     "peers[1].endpoint", "is also the endpoint of peer 'b'"),
    ("IPv6 endpoint while listening on IPv4", lambda t: t + _PEER_C.format(ep="[2001:db8:ff::3]:4800"),
     "peers[1].endpoint", "an IPv6 endpoint needs an IPv6 listen address"),
    # nebula's multipath example: three gateways, all inside one peer's prefix
    ("three gateways inside one peer", lambda t: t.replace('"192.0.2.0/24"]', '"192.0.2.0/24", "198.18.0.8/29"]', 1)
     + '\n[[unsafe_routes]]\nroute = "2001:db8:77::/48"\nvia = [{gateway = "198.18.0.9"}, {gateway = "198.18.0.10"}, '
       '{gateway = "198.18.0.11"}]\n', "unsafe_routes[1].via[1].gateway", "both belong to peer 'b'"),
    ("deeply nested", lambda t: t + "\n[logging.x]\ny = " + "[" * 5000 + "]" * 5000 + "\n", None, "nested 5000 levels deep"),
]


@pytest.mark.parametrize("name,edit,key,fragment", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_check_and_up_refuse_what_the_tunnel_would_refuse(name, edit, key, fragment, netns, tmp_path):
    d = tmp_path / "two-hosts"
    shutil.copytree(ROOT / "examples" / "two-hosts", d)
    assert cli_main(["genkey", str(d / "net.key")]) == 0
    path = d / "a.toml"
    path.write_text(edit(path.read_text()))
    for cmd in (["check", str(path)], ["up", str(path), "--status-socket", str(tmp_path / "s.sock")]):
        out = subprocess.run([sys.executable, "-m", "tunkit", *cmd], env=ENV, capture_output=True, text=True, timeout=60)
        assert out.returncode == 1, (cmd, out.stdout, out.stderr)
        assert fragment in out.stderr and (key is None or f"a.toml:{key}:" in out.stderr), out.stderr
        assert "Traceback" not in out.stderr
    assert [x["ifname"] for x in support.ip_json("link")] == ["lo"]  # up created nothing


def test_every_refused_file_is_refused_by_reload_and_the_old_config_keeps_running(hosts):
    hosts.up("a")
    hosts.up("b")
    base = (hosts.dir / "a.toml").read_text()
    routes, link = hosts.routes(), hosts.link()
    for name, edit, key, fragment in BAD_FILES:
        before = hosts.log("a").count("keeping the running configuration")
        hosts.reload("a", edit(base))
        wait_for(lambda: hosts.log("a").count("keeping the running configuration") > before, f"{name}: the refusal")
        assert fragment in hosts.log("a"), name
        assert hosts.procs["a"].poll() is None, f"{name}: the instance exited:\n{hosts.log('a')}"
        assert hosts.routes() == routes and hosts.link()["mtu"] == link["mtu"], name
        assert hosts.send(name.encode()) == name.encode(), name
        assert [p["name"] for p in hosts.status("a")["peers"]] == ["b"]
    assert "Traceback" not in hosts.log("a")


def _kernel_state(dev: str = "tunkit0"):
    link = support.ip_json("-d", "link", "show", dev)[0]
    addrs = sorted((x["local"], x["prefixlen"]) for x in support.ip_json("addr", "show", "dev", dev)[0]["addr_info"])
    routes = sorted(json.dumps(r, sort_keys=True) for fam in ("-4", "-6") for r in support.ip_json(fam, "route", "show", "dev", dev))
    return link["mtu"], link["txqlen"], addrs, routes


class _Injected(RuntimeError):
    pass


@pytest.mark.parametrize("where", ["route replace", "tunnel reconfigure"])
def test_a_failure_while_applying_rolls_the_kernel_back(where, netns, tmp_path, monkeypatch, caplog):
    """Every kind of kernel change in one reload, then a failure part-way: routes, addresses, MTU and
    txqueuelen are as before, the running configuration is kept, and the reload reports False."""
    from tunkit.app.config import load
    from tunkit.app.up import Host

    d = tmp_path / "two-hosts"
    shutil.copytree(ROOT / "examples" / "two-hosts", d)
    assert cli_main(["genkey", str(d / "net.key")]) == 0
    path = d / "a.toml"
    base = path.read_text()
    host = Host(load(str(path)), status_path=str(tmp_path / "a.sock"))
    host.start()
    try:
        before = _kernel_state()
        path.write_text(base.replace("mtu = 1400", "mtu = 1380\ntxqueuelen = 77")
                        .replace("2001:db8:100::1/64", "2001:db8:100::11/64")
                        .replace("metric = 100", "metric = 50")
                        + '\n[[routes]]\nroute = "198.18.5.0/24"\nmtu = 1280\n')
        during: list = []
        if where == "route replace":
            real = host.rt.replace_route

            def replace_route(dst, **kw):
                if str(dst) == "198.18.5.0/24":  # the last route of the plan: everything else changed already
                    during.append(_kernel_state())
                    raise _Injected("kernel refused")
                return real(dst, **kw)

            monkeypatch.setattr(host.rt, "replace_route", replace_route)
        else:
            def reconfigure(*a, **k):
                during.append(_kernel_state())
                raise _Injected("boom")

            monkeypatch.setattr(host.node, "reconfigure", reconfigure)
        cfg = host.cfg
        assert host.reload() is False
        assert during and during[0][:3] != before[:3]  # MTU, txqueuelen and addresses had changed
        assert _kernel_state() == before
        assert host.cfg is cfg and host.reloads == 0
        assert "rolled back, keeping the running configuration" in caplog.text
        monkeypatch.undo()
        assert host.reload() is True  # the same file applies once nothing fails
        mtu, txqlen, addrs, _ = _kernel_state()
        assert (mtu, txqlen, ("2001:db8:100::11", 64) in addrs) == (1380, 77, True)
    finally:
        host.close()
