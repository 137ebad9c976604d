"""``tunkit-wireguard`` (bin/ and the console script) as wg-quick's userspace implementation, against wireguard-go, in throwaway namespaces.

``WG_QUICK_USERSPACE_IMPLEMENTATION=bin/tunkit-wireguard wg-quick up ./NAME.conf``
runs inside namespace ``tk`` with an unchanged wg-quick file; namespace ``wg``
runs wireguard-go (the Lab of test_wg_datapath).  Interface and file names
carry the pid, so suites running at once do not meet in the shared
/var/run/wireguard directory.
"""

from __future__ import annotations

import itertools
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import time

import pytest

from test_wg_datapath import TK4, TK_PORT, WG4, WG_PORT, WG_UNDERLAY, Lab, tcp_transfer
from tunkit.crypto import generate_private_key, public_key
from tunkit.overlay.uapi_server import SOCKET_DIR
from tunkit.wireguard import format_key

ROOT = pathlib.Path(__file__).resolve().parent.parent
BIN = str(ROOT / "bin" / "tunkit-wireguard")
_seq = itertools.count(1)


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}x{next(_seq)}"[:15]


def daemon_pids(name: str) -> list[int]:
    """Processes running ``tunkit-wireguard NAME`` (this test's unique NAME), from /proc."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = pathlib.Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(a.endswith(b"tunkit-wireguard") for a in argv) and name.encode() in argv:
            pids.append(int(d))
    return pids


def wait_for(pred, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def link_exists(ns, name: str) -> bool:
    return ns.run(["ip", "link", "show", "dev", name], check=False).returncode == 0


@pytest.fixture
def lab(netns_factory, tmp_path):
    if shutil.which("wg-quick") is None:
        pytest.fail("wg-quick is missing: scripts/test.sh installs wireguard-tools")
    lab = Lab(netns_factory, tmp_path)
    lab.quick_if = unique("tkq")
    try:
        yield lab
    finally:
        for pid in daemon_pids(lab.quick_if):
            os.kill(pid, signal.SIGKILL)
        lab.close()
        try:
            os.unlink(f"{SOCKET_DIR}/{lab.quick_if}.sock")
        except FileNotFoundError:
            pass


def wg_quick(lab, *args: str, env=None) -> subprocess.CompletedProcess:
    """wg-quick in namespace tk; output to files (a daemon it starts inherits them: pipes would never close)."""
    out = lab.tmp / f"wg-quick-{next(_seq)}.out"
    with open(out, "w") as f:
        proc = lab.tkns.run(["wg-quick", *args], check=False, capture_output=False, stdout=f, stderr=subprocess.STDOUT,
                            env={**os.environ, "WG_QUICK_USERSPACE_IMPLEMENTATION": BIN, **(env or {})}, timeout=60)
    proc.stdout = out.read_text()
    assert proc.returncode == 0, f"wg-quick {' '.join(args)} failed:\n{proc.stdout}"
    return proc


@pytest.mark.privileged
def test_wg_quick_up_with_tunkit_wireguard_carries_ping_and_tcp_and_down_removes_everything(lab):
    lab.start_wireguard_go(endpoint=False)
    name = lab.quick_if
    conf = lab.tmp / f"{name}.conf"
    marks = lab.tmp / "marks"
    conf.write_text(f"""[Interface]
Address = {TK4}/24
MTU = 1380
ListenPort = {TK_PORT}
PrivateKey = {format_key(lab.tk_key)}
PostUp = echo up %i >> {marks}
PostDown = echo down %i >> {marks}

[Peer]
PublicKey = {format_key(public_key(lab.wg_key))}
AllowedIPs = {WG4}/32
Endpoint = {WG_UNDERLAY}:{WG_PORT}
""")
    conf.chmod(0o600)
    up = wg_quick(lab, "up", str(conf), env={"LOG_LEVEL": "verbose"})
    assert f"{BIN} {name}" in up.stdout  # wg-quick fell back to the userspace implementation: ours
    assert marks.read_text() == f"up {name}\n"
    pids = daemon_pids(name)
    assert len(pids) == 1, pids
    sock = f"{SOCKET_DIR}/{name}.sock"
    assert os.path.exists(sock)
    (link,) = json.loads(lab.tkns.run(["ip", "-j", "link", "show", "dev", name]).stdout)
    assert link["mtu"] == 1380 and "UP" in link["flags"]

    assert lab.ping(lab.tkns, WG4), "no ping answer through the tunnel"
    sent, got = tcp_transfer(lab.tkns, lab.wg, WG4, 5201, 2 << 20)
    assert sent == got
    sent, got = tcp_transfer(lab.wg, lab.tkns, TK4, 5202, 1 << 20)
    assert sent == got

    show = lab.tkns.run(["wg", "show", name]).stdout
    wg_pub = format_key(public_key(lab.wg_key))
    for line in (f"interface: {name}", f"public key: {format_key(public_key(lab.tk_key))}", "private key: (hidden)",
                 f"listening port: {TK_PORT}", f"peer: {wg_pub}", f"endpoint: {WG_UNDERLAY}:{WG_PORT}",
                 f"allowed ips: {WG4}/32", "latest handshake:", "transfer:"):
        assert line in show, (line, show)
    showconf = lab.tkns.run(["wg", "showconf", name]).stdout
    assert showconf.split("\n\n")[0].splitlines() == [
        "[Interface]", f"ListenPort = {TK_PORT}", f"PrivateKey = {format_key(lab.tk_key)}"]
    assert showconf.split("\n\n")[1].splitlines() == [
        "[Peer]", f"PublicKey = {wg_pub}", f"AllowedIPs = {WG4}/32", f"Endpoint = {WG_UNDERLAY}:{WG_PORT}"]

    compare_with_wireguard_go(lab, name, showconf)

    # the peer removed with wg: its traffic stops at once
    lab.tkns.run(["wg", "set", name, "peer", wg_pub, "remove"])
    assert lab.tkns.run(["wg", "show", name, "peers"]).stdout.strip() == ""
    assert not lab.ping(lab.tkns, WG4, tries=2)
    assert not lab.ping(lab.wg, TK4, tries=2)

    wg_quick(lab, "down", str(conf))
    assert marks.read_text() == f"up {name}\ndown {name}\n"
    assert not link_exists(lab.tkns, name)
    wait_for(lambda: not daemon_pids(name), "tunkit-wireguard to exit after the interface was deleted")
    assert not os.path.exists(sock)
    log = up.stdout
    assert f"({name})" in log and "UAPI listener started" in log  # LOG_LEVEL=verbose: the daemon logged to wg-quick's stdout


@pytest.mark.privileged
def test_wg_quick_default_route_uses_the_fwmark_and_policy_rules_inside_the_namespace(lab):
    """``AllowedIPs = 0.0.0.0/0``: wg-quick sets fwmark 51820 (tunkit marks its UDP socket) and routes all else in."""
    if shutil.which("nft") is None and shutil.which("iptables-restore") is None:
        pytest.fail("nft is missing: scripts/test.sh installs nftables (wg-quick's default-route path needs it)")
    lab.start_wireguard_go(endpoint=False)
    name = lab.quick_if
    conf = lab.tmp / f"{name}.conf"
    conf.write_text(f"""[Interface]
Address = {TK4}/24
ListenPort = {TK_PORT}
PrivateKey = {format_key(lab.tk_key)}

[Peer]
PublicKey = {format_key(public_key(lab.wg_key))}
AllowedIPs = 0.0.0.0/0
Endpoint = {WG_UNDERLAY}:{WG_PORT}
""")
    conf.chmod(0o600)
    wg_quick(lab, "up", str(conf))
    assert lab.tkns.run(["wg", "show", name, "fwmark"]).stdout.strip() == "0xca6c"
    rules = json.loads(lab.tkns.run(["ip", "-j", "-4", "rule", "show"]).stdout)
    assert {"not": None, "fwmark": "0xca6c", "table": "51820"}.items() <= next(
        r for r in rules if r.get("table") == "51820").items(), rules  # not fwmark 51820 lookup 51820
    assert any(r.get("suppress_prefixlen") == 0 and r.get("table") == "main" for r in rules), rules
    routes = json.loads(lab.tkns.run(["ip", "-j", "-4", "route", "show", "table", "51820"]).stdout)
    assert [(r["dst"], r["dev"]) for r in routes] == [("default", name)], routes
    # the underlay endpoint is still reached (marked datagrams use the main table), everything else goes in
    assert lab.ping(lab.tkns, WG4), "no ping answer through the default-route tunnel"
    sent, got = tcp_transfer(lab.tkns, lab.wg, WG4, 5203, 1 << 20)
    assert sent == got
    wg_quick(lab, "down", str(conf))
    assert not link_exists(lab.tkns, name)
    assert "51820" not in lab.tkns.run(["ip", "-4", "rule", "show"]).stdout
    wait_for(lambda: not daemon_pids(name), "tunkit-wireguard to exit")
    assert not os.path.exists(f"{SOCKET_DIR}/{name}.sock")


def compare_with_wireguard_go(lab, name: str, showconf: str) -> None:
    """A wireguard-go interface in the same namespace given tunkit's showconf (another port): wg prints the same."""
    from test_uapi_wg import normalise

    go = unique("tkg")
    port = TK_PORT + 100
    conf = lab.tmp / "go.conf"
    conf.write_text(showconf.replace(f"ListenPort = {TK_PORT}", f"ListenPort = {port}"))
    conf.chmod(0o600)
    proc = lab.tkns.popen(["wireguard-go", "-f", go], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          env={**os.environ, "LOG_LEVEL": "silent"})
    try:
        wait_for(lambda: os.path.exists(f"{SOCKET_DIR}/{go}.sock") or proc.poll() is not None, "wireguard-go's socket")
        lab.tkns.run(["wg", "setconf", go, str(conf)])
        for view in (("show", "IFACE"), ("show", "IFACE", "dump"), ("showconf", "IFACE")):
            args = [a.replace("IFACE", go) for a in view]
            want = normalise(view, lab.tkns.run(["wg", *args]).stdout, go).replace(str(port), str(TK_PORT))
            args = [a.replace("IFACE", name) for a in view]
            got = normalise(view, lab.tkns.run(["wg", *args]).stdout, name)
            assert got == want, f"wg {' '.join(view)}:\n--- wireguard-go\n{want}\n--- tunkit\n{got}"
        # wg show all dump (every socket in the shared directory): our two interfaces' lines match
        lines = lab.tkns.run(["wg", "show", "all", "dump"]).stdout.splitlines()

        def mine(n):
            return [ln.split("\t") for ln in lines if ln.split("\t")[0] == n]

        def stable(rows, n):
            return [[f.replace(n, "IFACE").replace(str(port), str(TK_PORT)) for f in (r[:5] if len(r) == 5 else r[:5] + r[8:])]
                    for r in rows]

        assert stable(mine(name), name) == stable(mine(go), go) and len(mine(name)) == 2
    finally:
        proc.terminate()
        proc.wait(10)
        try:
            os.unlink(f"{SOCKET_DIR}/{go}.sock")
        except FileNotFoundError:
            pass


@pytest.mark.privileged
def test_foreground_serves_a_keyless_interface_and_sigterm_removes_the_socket(netns_factory, tmp_path):
    ns = netns_factory("tkf")
    name = unique("tkf")
    out = tmp_path / "out"
    with open(out, "w") as f:
        proc = ns.popen([BIN, name], stdout=f, stderr=subprocess.STDOUT,
                        env={**os.environ, "WG_PROCESS_FOREGROUND": "1", "LOG_LEVEL": "verbose"})
    sock = f"{SOCKET_DIR}/{name}.sock"
    try:
        wait_for(lambda: os.path.exists(sock) or proc.poll() is not None, "the socket")
        assert proc.poll() is None, out.read_text()
        (link,) = json.loads(ns.run(["ip", "-j", "link", "show", "dev", name]).stdout)
        assert link["mtu"] == 1420 and "UP" in link["flags"]
        dump = ns.run(["wg", "show", name, "dump"]).stdout.splitlines()
        assert dump[0].split("\t")[:2] == ["(none)", "(none)"], dump  # no private key yet
        # a peer with an endpoint (a socket here) but still no private key: nothing is sent to it
        with ns.entered():
            listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            listener.bind(("127.0.0.1", 0))
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        listener.settimeout(1.5)
        peer = format_key(public_key(generate_private_key()))
        ns.run(["ip", "addr", "add", "198.18.5.1/24", "dev", name])
        ns.run(["wg", "set", name, "peer", peer, "allowed-ips", "198.18.5.2/32",
                "endpoint", f"127.0.0.1:{listener.getsockname()[1]}", "persistent-keepalive", "1"])
        with listener, s:
            s.sendto(b"x", ("198.18.5.2", 9))
            with pytest.raises(TimeoutError):
                listener.recvfrom(2048)  # no handshake initiation, no keepalive
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, out.read_text()
        assert not os.path.exists(sock)
        assert not link_exists(ns, name)
        assert "shutting down: received SIGTERM" in out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.unlink(sock)
        except FileNotFoundError:
            pass


def test_the_console_script_and_the_bin_file_run_the_same_main():
    import tomllib

    from tunkit.app import wgimpl

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, func = scripts["tunkit-wireguard"].partition(":")
    assert getattr(__import__(module, fromlist=[func]), func) is wgimpl.main
    assert os.access(BIN, os.X_OK)
    # from anywhere, without PYTHONPATH: the wrapper finds its checkout
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([BIN, "--version"], capture_output=True, text=True, timeout=30, cwd="/", env=env)
    assert r.returncode == 0 and r.stdout.startswith("tunkit-wireguard "), r
    r = subprocess.run([BIN, "--help"], capture_output=True, text=True, timeout=30, cwd="/", env=env)
    assert r.returncode == 0 and "WG_PROCESS_FOREGROUND" in r.stdout


@pytest.mark.privileged
def test_errors_before_serving_are_reported_by_the_parent(netns_factory, tmp_path):
    ns = netns_factory("tke")
    bad = subprocess.run([BIN, "no/slash"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 1 and "no/slash" in bad.stderr
    assert subprocess.run([BIN], capture_output=True, text=True, timeout=30).returncode == 1
    # a socket already served by a live process: the parent says so and exits 2, and that one keeps serving
    name = unique("tke")
    sock = f"{SOCKET_DIR}/{name}.sock"
    holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    os.makedirs(SOCKET_DIR, exist_ok=True)
    holder.bind(sock)
    holder.listen(4)
    try:
        with open(tmp_path / "out", "w") as f:
            r = ns.run([BIN, name], check=False, capture_output=False, stdout=f, stderr=subprocess.PIPE)
        assert r.returncode == 2, r.stderr
        assert sock in r.stderr and "another live process" in r.stderr
        assert not daemon_pids(name)
        assert not link_exists(ns, name)
        assert os.path.exists(sock)
    finally:
        holder.close()
        os.unlink(sock)
