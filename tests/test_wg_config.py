"""WireGuard mode in tunkit's own TOML configuration: validation shared by check/up/reload, and two hosts."""

from __future__ import annotations

import os
import pathlib

import pytest

from tunkit.app.config import ConfigError, load, load_wireguard, wireguard_file
from tunkit.cli import main
from tunkit.crypto import generate_private_key, public_key
from tunkit.wireguard import format_key

from support_wireguard import HostThread

PEER_PUB = format_key(public_key(generate_private_key()))
OTHER_PUB = format_key(public_key(generate_private_key()))
LOW_ORDER = format_key(bytes(32))  # the all-zero point: every shared secret with it is zero


def _write(path: pathlib.Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def wg_file(tmp_path, *, network: str = "", peer: str = "", extra: str = "", device: str = 'name = "wgt0"\n') -> str:
    _write(tmp_path / "a.key", format_key(generate_private_key()) + "\n")
    _write(tmp_path / "ab.psk", format_key(os.urandom(32)) + "\n")
    return _write(tmp_path / "a.toml", (
        f"[device]\n{device}[network]\naddresses = [\"198.18.0.1/16\"]\nprivate_key_file = \"a.key\"\n{network}"
        f"[[peers]]\nname = \"b\"\npublic_key = \"{PEER_PUB}\"\nprefixes = [\"198.18.0.2/32\"]\n{peer}{extra}"),
        0o644)


# (what, [network] additions, [[peers]] additions, more sections, device section, key path named, message part)
BAD = [
    ("key_file too", 'key_file = "a.key"\n', "", "", None, "network.key_file", "cannot be combined"),
    ("insecure too", "insecure = true\n", "", "", None, "network.insecure", "cannot be combined"),
    ("peer key_file", "", 'key_file = "a.key"\n', "", None, "peers[0].key_file", "HMAC mode's key"),
    ("bad public key", "", "", "", None, "peers[0].public_key", "base64"),
    ("low-order key", "", "", "", None, "peers[0].public_key", "low-order"),
    ("keepalive range", "", "persistent_keepalive = 70000\n", "", None, "peers[0].persistent_keepalive",
     "70000 is out of range 0..65535"),
    ("psk missing", "", 'preshared_key_file = "nope.psk"\n', "", None, "peers[0].preshared_key_file",
     "no such file"),
    ("psk mode", "", 'preshared_key_file = "ab.psk"\n', "", "psk-0644", "peers[0].preshared_key_file",
     "chmod 600"),
    ("private key mode", "", "", "", "key-0640", "network.private_key_file", "accessible by its group"),
    ("template name", "", "", "", 'name = "wg%d"\n', "device.name", "fixed name"),
    ("workers", "", "", "", 'name = "wgt0"\nworkers = 2\n', "device.workers", "not supported in WireGuard mode"),
    ("unsafe routes", "", "", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\n', None,
     "unsafe_routes", "not supported in WireGuard mode"),
    ("default route", "", "", "", None, "peers[0].prefixes[1]", "policy routing"),
    ("own key", "", "", "", None, "peers[0]", "own public key"),
    ("same key twice", "", "", f'[[peers]]\nname = "c"\npublic_key = "{PEER_PUB}"\nprefixes = ["198.18.0.3/32"]\n',
     None, "peers[1]", "listed twice"),
    ("ipv6 endpoint, ipv4 socket", "", 'endpoint = "[2001:db8::2]:51820"\n', "", None, "peers[0].endpoint",
     "IPv6 listen address"),
    ("duplicate name", "", "", f'[[peers]]\nname = "b"\npublic_key = "{OTHER_PUB}"\nprefixes = ["198.18.0.3/32"]\n',
     None, "peers[1].name", "already the name"),
]


def _bad_file(tmp_path, what, network, peer, extra, device) -> str:
    kw = {"device": device} if device and "=" in device else {}
    path = wg_file(tmp_path, network=network, peer=peer, extra=extra, **kw)
    text = pathlib.Path(path).read_text()
    if what == "bad public key":
        text = text.replace(PEER_PUB, PEER_PUB[:-2] + "!=")
    elif what == "low-order key":
        text = text.replace(PEER_PUB, LOW_ORDER)
    elif what == "default route":
        text = text.replace('prefixes = ["198.18.0.2/32"]', 'prefixes = ["198.18.0.2/32", "::/0"]')
    elif what == "own key":
        own = format_key(public_key(__import__("base64").b64decode((tmp_path / "a.key").read_text())))
        text = text.replace(PEER_PUB, own)
    elif device == "psk-0644":
        (tmp_path / "ab.psk").chmod(0o644)
    elif device == "key-0640":
        (tmp_path / "a.key").chmod(0o640)
    pathlib.Path(path).write_text(text)
    return path


@pytest.mark.parametrize("what,network,peer,extra,device,key,message", BAD, ids=[b[0] for b in BAD])
def test_check_and_up_refuse_the_same_bad_files_alike(tmp_path, capsys, what, network, peer, extra, device, key,
                                                      message):
    path = _bad_file(tmp_path, what, network, peer, extra, device)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert any(k == key and message in m for k, m in getattr(e.value, "problems", [(e.value.key, e.value.message)])), \
        (key, message, str(e.value))
    assert main(["check", path]) == 1
    check_err = capsys.readouterr().err
    assert f"{path}:{key}" in check_err and message in check_err
    assert main(["up", path]) == 1  # refused before any device, socket or route exists
    assert capsys.readouterr().err == check_err
    with pytest.raises(ConfigError) as e2:  # what a reload reads
        load_wireguard(path)
    assert str(e2.value) == str(e.value)


def test_a_good_file_runs_the_interface_config_a_wg_quick_file_would(tmp_path, capsys):
    path = wg_file(tmp_path, network='listen = "0.0.0.0:51820"\n',
                   peer='endpoint = "198.51.100.2:51820"\npersistent_keepalive = 25\npreshared_key_file = "ab.psk"\n'
                        'prefixes = ["198.18.0.2/32", "192.0.2.0/24"]\n'.replace("prefixes", "#"))
    text = pathlib.Path(path).read_text().replace('prefixes = ["198.18.0.2/32"]', 'prefixes = ["198.18.0.2/32", '
                                                                                  '"192.0.2.0/24"]')
    pathlib.Path(path).write_text(text)
    cfg = load(path)
    assert cfg.mode == "wireguard"
    wq = wireguard_file(cfg)
    import base64

    key = base64.b64decode((tmp_path / "a.key").read_text())
    assert public_key(wq.interface.private_key) == public_key(key)
    (p,) = wq.interface.peers
    assert format_key(p.public_key) == PEER_PUB and p.endpoint == ("198.51.100.2", 51820)
    assert p.persistent_keepalive == 25 and p.preshared_key == base64.b64decode((tmp_path / "ab.psk").read_text())
    assert [str(x) for x in p.allowed_ips] == ["198.18.0.2/32", "192.0.2.0/24"]
    assert [str(r) for r in wq.routes] == ["192.0.2.0/24"]  # 198.18.0.2 is reached through the address's route
    assert wq.interface.listen_port == 51820 and wq.listen_host == "0.0.0.0" and wq.name == "wgt0"
    assert main(["check", path]) == 0
    out = capsys.readouterr().out
    assert "mode: WireGuard mode (encrypted)" in out and "HMAC" not in out
    assert main(["check", "-j", path]) == 0
    doc = __import__("json").loads(capsys.readouterr().out)
    assert doc["mode"] == "wireguard" and doc["peers"][0]["public_key"] == PEER_PUB
    assert key.hex() not in str(doc) and base64.b64encode(key).decode() not in str(doc)


def test_a_peer_without_an_endpoint_is_accepted_only_in_wireguard_mode(tmp_path):
    cfg = load(wg_file(tmp_path))
    assert cfg.peers[0].endpoint is None and cfg.interface_config().peers[0].endpoint is None
    hmac = _write(tmp_path / "h.toml", '[network]\naddresses = ["198.18.0.1/16"]\ninsecure = true\n'
                  '[[peers]]\nname = "b"\nprefixes = ["198.18.0.2/32"]\n')
    with pytest.raises(ConfigError, match=r"peers\[0\]\.endpoint: is required"):
        load(hmac)


def test_wireguard_keys_outside_wireguard_mode_name_the_switch(tmp_path):
    _write(tmp_path / "net.key", format_key(os.urandom(32)) + "\n")
    path = _write(tmp_path / "h.toml", '[network]\naddresses = ["198.18.0.1/16"]\nkey_file = "net.key"\n'
                  f'[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\npublic_key = "{PEER_PUB}"\n'
                  'prefixes = ["198.18.0.2/32"]\n')
    with pytest.raises(ConfigError, match=r"peers\[0\]\.public_key: .*needs network\.private_key_file"):
        load(path)


def test_check_on_an_hmac_config_says_it_does_not_encrypt_and_how_to_switch(tmp_path, capsys):
    _write(tmp_path / "net.key", format_key(os.urandom(32)) + "\n")
    path = _write(tmp_path / "h.toml", '[network]\naddresses = ["198.18.0.1/16"]\nkey_file = "net.key"\n'
                  '[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\nprefixes = ["198.18.0.2/32"]\n')
    assert main(["check", path]) == 0
    out = capsys.readouterr().out
    assert "mode: HMAC mode (authenticated, not encrypted)" in out
    note = [line for line in out.splitlines() if "does not encrypt" in line]
    assert len(note) == 1 and "network.private_key_file" in note[0] and "public_key" in note[0]
    assert "remove network.key_file" in note[0]
    with pytest.raises(ConfigError, match="not WireGuard mode"):
        load_wireguard(path)


# ---------------------------------------------------------------- two tunkit hosts from TOML files (privileged)

def TomlSide(ns, path: str, status_path: str, uapi_dir: str) -> HostThread:
    """``tunkit up FILE.toml`` in WireGuard mode, in a thread inside ``ns``."""
    from tunkit.app.up import WgQuickHost

    return HostThread(ns, WgQuickHost(wireguard_file(load(path)), status_path=status_path, uapi_dir=uapi_dir))


@pytest.mark.privileged
def test_two_tunkit_hosts_from_toml_files_ping_carry_tcp_and_reload_live(netns_factory, tmp_path):
    import subprocess

    from test_wg_datapath import tcp_transfer
    from support_tunnel import icmp_echo

    a, b = netns_factory("ta"), netns_factory("tb")
    holder = b.popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        a.run(["ip", "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b", "netns", str(holder.pid)])
    finally:
        holder.kill()
        holder.wait()
    for ns, dev, addr in ((a, "veth-a", "192.0.2.1"), (b, "veth-b", "192.0.2.2")):
        ns.run(["ip", "addr", "add", f"{addr}/24", "dev", dev])
        ns.run(["ip", "link", "set", dev, "up"])
    keys = [generate_private_key(), generate_private_key()]
    _write(tmp_path / "ab.psk", format_key(os.urandom(32)) + "\n")
    files = []
    for i in range(2):
        d = tmp_path / "ab"[i]
        d.mkdir()
        _write(d / "me.key", format_key(keys[i]) + "\n")
        _write(d / "ab.psk", (tmp_path / "ab.psk").read_text())
        other = format_key(public_key(keys[1 - i]))
        peer = ('endpoint = "192.0.2.1:51820"\npersistent_keepalive = 25\n' if i == 1 else "")  # b initiates
        files.append(_write(d / "host.toml", (
            f'[device]\nname = "tw{"ab"[i]}{os.getpid() % 100000}"\nmtu = 1420\n'
            f'[network]\naddresses = ["198.18.0.{i + 1}/24", "2001:db8:7::{i + 1}/64"]\n'
            f'listen = "[::]:{51820 + i}"\nprivate_key_file = "me.key"\n'
            f'[[peers]]\nname = "{"ba"[i]}"\npublic_key = "{other}"\npreshared_key_file = "ab.psk"\n{peer}'
            f'prefixes = ["198.18.0.{2 - i}/32", "2001:db8:7::{2 - i}/128"]\n')))
        assert main(["check", files[-1]]) == 0
    uapi = tmp_path / "uapi"
    uapi.mkdir()
    sides = []
    try:
        for i, (ns, f) in enumerate(zip((a, b), files)):
            sides.append(TomlSide(ns, f, str(tmp_path / f"status-{i}-{os.getpid()}.sock"), str(uapi)))

        def ping(ns, dst):
            with ns.entered():
                return any(icmp_echo(dst, timeout=2.0) for _ in range(5))

        assert ping(b, "198.18.0.1") and ping(a, "198.18.0.2") and ping(a, "2001:db8:7::2")
        for client, server, addr in ((a, b, "198.18.0.2"), (b, a, "2001:db8:7::1")):
            sent, got = tcp_transfer(client, server, addr, 5007, 2 << 20)
            assert sent == got
        for side in sides:
            st = side.host.status()
            assert st["peers"][0]["latest_handshake"] and st["peers"][0]["rx_bytes"] > (2 << 20)
            assert {k: v for k, v in st["drops"].items() if k != "no_route"} == {}, st["drops"]
        # reload: a refused file keeps everything; a good one applies live through Engine.apply
        good = pathlib.Path(files[1]).read_text()
        pathlib.Path(files[1]).write_text(good.replace("persistent_keepalive = 25", "persistent_keepalive = 70000"))
        assert not sides[1].reload()
        assert sides[1].host.status()["peers"][0]["persistent_keepalive"] == 25
        pathlib.Path(files[1]).write_text(good.replace("persistent_keepalive = 25", "persistent_keepalive = 15"))
        peer = next(iter(sides[1].host.iface.engine.peers.values()))
        session = peer.current
        assert sides[1].reload()
        peer = next(iter(sides[1].host.iface.engine.peers.values()))
        assert peer.persistent_keepalive == 15 and peer.current is session  # the session stayed
        # a reload into HMAC mode is refused: the running interface stays
        pathlib.Path(files[1]).write_text(good.replace('private_key_file = "me.key"', "insecure = true")
                                          .replace('preshared_key_file = "ab.psk"\n', "").replace(
                                              "persistent_keepalive = 25\n", "").replace(
                                              f'public_key = "{format_key(public_key(keys[0]))}"\n', ""))
        assert not sides[1].reload()
        assert ping(b, "198.18.0.1")
    finally:
        for side in sides:
            side.stop()


def test_an_hmac_host_refuses_a_reload_into_wireguard_mode_and_keeps_running(tmp_path, caplog):
    from tunkit.app.up import Host

    _write(tmp_path / "net.key", format_key(os.urandom(32)) + "\n")
    path = _write(tmp_path / "h.toml", '[device]\nname = "wgt0"\n[network]\naddresses = ["198.18.0.1/16"]\n'
                  'key_file = "net.key"\n[[peers]]\nname = "b"\nendpoint = "198.51.100.2:4800"\n'
                  'prefixes = ["198.18.0.2/32"]\n')
    host = Host(load(path))  # not started: a refused reload touches neither the kernel nor the tunnel
    _write(tmp_path / "a.key", format_key(generate_private_key()) + "\n")
    pathlib.Path(path).write_text(pathlib.Path(path).read_text().replace(
        'key_file = "net.key"', 'private_key_file = "a.key"').replace(
        'endpoint = "198.51.100.2:4800"', f'public_key = "{PEER_PUB}"'))
    assert load(path).mode == "wireguard"
    assert host.reload() is False and host.cfg.mode == "hmac" and host.reloads == 0
    assert "a mode change needs a restart" in caplog.text
