"""wg-quick files: tables of files -> settings or ConfigError, a real-world file, and two oracles.

Oracles: ``wg-quick strip`` must print what :attr:`QuickConfig.stripped` holds,
and ``wg setconf`` of that text on tunkit's UAPI socket must give the engine
exactly the configuration :func:`to_interface_config` computes.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import threading
import time

import pytest

from tunkit.crypto import LibCrypto, generate_private_key, public_key
from tunkit.errors import ConfigError
from tunkit.wireguard import Engine, format_key
from tunkit.wireguard import wgquick as q

CRYPTO = LibCrypto()
K1, K2, K3 = (generate_private_key() for _ in range(3))
P1, P2, P3 = (format_key(public_key(k)) for k in (K1, K2, K3))
PSK = format_key(bytes(range(32)))


def public_of(k: bytes) -> bytes:
    return CRYPTO.private_key(k).public


REAL_WORLD = f"""# /etc/wireguard/wg0.conf on a road-warrior laptop
[Interface]
PrivateKey = {format_key(K1)}
Address = 10.200.0.2/32, fd00:200::2/128
Address=10.201.0.2/24
DNS = 10.200.0.1, fd00:200::1, corp.example.com
MTU = 1380
ListenPort = 51820
FwMark = 0xca6c
Table = auto
SaveConfig = false
PreUp = echo pre-up %i
PostUp = iptables -A FORWARD -i %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE
PostUp = logger "wg up"   # a trailing comment is cut, as wg-quick does
PreDown = echo pre-down
PostDown = iptables -D FORWARD -i %i -j ACCEPT

[Peer]
# the office gateway
PublicKey = {P2}
PresharedKey = {PSK}
AllowedIPs = 10.200.0.0/16, fd00:200::/64
AllowedIPs = 192.0.2.0/24
Endpoint = vpn.example.com:51820
PersistentKeepalive = 25

[peer]
publickey = {P3}
allowedips = 198.51.100.7/24, 2001:db8::1
endpoint = [2001:db8::53]:51821
persistentkeepalive = off
"""


def test_real_world_file_interface_settings_and_peers():
    cfg = q.parse(REAL_WORLD, "wg0.conf")
    i = cfg.interface
    assert i.private_key == K1 and i.listen_port == 51820 and i.fwmark == 0xCA6C and i.mtu == 1380
    assert [str(a) for a in i.addresses] == ["10.200.0.2/32", "fd00:200::2/128", "10.201.0.2/24"]
    assert [str(a) for a in i.dns] == ["10.200.0.1", "fd00:200::1"] and i.dns_search == ("corp.example.com",)
    assert i.table == "auto" and i.save_config is False
    assert i.pre_up == ("echo pre-up %i",) and i.pre_down == ("echo pre-down",)
    assert i.post_up == ("iptables -A FORWARD -i %i -j ACCEPT; iptables -t nat -A POSTROUTING -o eth0 -j MASQUERADE",
                         'logger "wg up"')
    a, b = cfg.peers
    assert a.public_key == public_key(K2) and a.preshared_key == bytes(range(32)) and a.persistent_keepalive == 25
    assert [str(n) for n in a.allowed_ips] == ["10.200.0.0/16", "fd00:200::/64", "192.0.2.0/24"]
    assert a.endpoint == q.Endpoint("vpn.example.com", 51820, is_name=True) and a.line == 18
    assert b.endpoint == q.Endpoint("2001:db8::53", 51821) and b.persistent_keepalive == 0
    assert [str(n) for n in b.allowed_ips] == ["198.51.100.0/24", "2001:db8::1/128"]  # masked; no /: a host
    assert "Address" not in cfg.stripped and "PostUp" not in cfg.stripped and "PrivateKey" in cfg.stripped
    ignored, refused = q.support_report(cfg)
    assert ignored == ["wg0.conf: DNS ignored: " + q.SUPPORT["DNS"][1],
                       "wg0.conf: SaveConfig ignored: " + q.SUPPORT["SaveConfig"][1]]
    assert [r.split(":")[1].strip().split()[0] for r in refused] == ["PreUp", "PostUp", "PreDown", "PostDown"]


def test_to_interface_config_follows_setconf_rules():
    text = f"""[Interface]
PrivateKey = {format_key(K1)}
[Peer]
PublicKey = {P2}
AllowedIPs = 198.18.0.0/24
Endpoint = 192.0.2.2:1
[Peer]
PublicKey = {P3}
AllowedIPs = 198.18.0.0/24, 198.18.1.1/32
[Peer]
PublicKey = {P2}
PersistentKeepalive = 7
[Peer]
PublicKey = {format_key(public_key(K1))}
AllowedIPs = 203.0.113.0/24
"""
    c = q.to_interface_config(q.parse(text, "x.conf"), public_of)
    assert c.private_key == K1 and c.listen_port == 0
    by = {p.public_key: p for p in c.peers}
    assert list(by) == [public_key(K2), public_key(K3)]  # the block with our own key is ignored
    assert by[public_key(K2)].allowed_ips == () and by[public_key(K2)].persistent_keepalive == 7  # merged; replaced
    assert by[public_key(K2)].endpoint == ("192.0.2.2", 1)  # what the second block does not set stays
    assert [str(n) for n in by[public_key(K3)].allowed_ips] == ["198.18.0.0/24", "198.18.1.1/32"]
    named = q.parse(REAL_WORLD, "wg0.conf")
    with pytest.raises(ConfigError, match=r"wg0.conf:18:\[Peer\] Endpoint: vpn.example.com is a name"):
        q.to_interface_config(named, public_of)
    c = q.to_interface_config(named, public_of, resolve=lambda h, p: ("192.0.2.80", p))
    assert c.peers[0].endpoint == ("192.0.2.80", 51820) and c.fwmark == 0xCA6C
    Engine(K2, CRYPTO, wall_offset=0).apply(c)  # the engine takes it as it is


BAD = [
    ("PrivateKey = x\n", "no [Interface]|not 'Key = Value'", ":1"),
    ("[Interface]\nPrivateKey = abc\n", r"x.conf:2:\[Interface\] PrivateKey: 'abc' is not a key", ""),
    ("[Interface]\nListenPort = 65536\n", r"x.conf:2:\[Interface\] ListenPort: 65536 is outside 0..65535", ""),
    ("[Interface]\nListenPort = -1\n", r"ListenPort: '-1' is not a number", ""),
    ("[Interface]\nFwMark = 0x1ffffffff\n", r"FwMark: 0x1ffffffff is outside", ""),
    ("[Interface]\nMTU = big\n", r"x.conf:2:\[Interface\] MTU: 'big' is not a number", ""),
    ("[Interface]\nAddress = 10.0.0.300/24\n", r"Address: '10.0.0.300/24' is not an address", ""),
    ("[Interface]\nSaveConfig = yes\n", r"SaveConfig: 'yes' is neither true nor false", ""),
    ("[Interface]\nTable =\n", r"empty Table", ""),
    ("[Interface]\nBogus = 1\n", r"x.conf:2:\[Interface\] Bogus: unknown key 'Bogus'", ""),
    ("[Interface]\n[Peer]\nAddress = 10.0.0.1/24\n", r"x.conf:3:\[Peer\] Address: unknown key", ""),  # not in [Peer]
    ("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.0/24\n", r"x.conf:2:\[Peer\] PublicKey: a \[Peer\] without PublicKey", ""),
    (f"[Interface]\n[Peer]\nPublicKey = {P2}\nAllowedIPs = 10.0.0.0/33\n", r"x.conf:4:\[Peer\] AllowedIPs", ""),
    (f"[Interface]\n[Peer]\nPublicKey = {P2}\nEndpoint = 2001:db8::1:51820\n", r"an IPv6 address goes in brackets", ""),
    (f"[Interface]\n[Peer]\nPublicKey = {P2}\nEndpoint = bad_name!:1\n", r"neither an IP address nor a host name", ""),
    (f"[Interface]\n[Peer]\nPublicKey = {P2}\nPersistentKeepalive = 65536\n", r"PersistentKeepalive: 65536", ""),
    ("[Interface]\n[Interface]\n", r"x.conf:2: a second \[Interface\]", ""),
    ("[Interface]\n[Server]\n", r"unknown section", ""),
    ("", r"no \[Interface\] section", ""),
]


@pytest.mark.parametrize("text,match,_", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_files_raise_config_error_naming_file_line_and_key(text, match, _):
    with pytest.raises(ConfigError, match=match) as e:
        q.parse(text, "x.conf")
    assert e.value.file.startswith("x.conf")


def test_keys_are_case_insensitive_comments_and_whitespace_ignored():
    text = f"  [INTERFACE]  # c\n  privatekey=  {format_key(K1)}  # secret\n\tLISTENPORT = 7\n#[Peer]\n"
    cfg = q.parse(text)
    assert cfg.interface.private_key == K1 and cfg.interface.listen_port == 7 and cfg.peers == ()
    assert cfg.keys == ("PrivateKey", "ListenPort")


@pytest.mark.skipif(os.geteuid() != 0, reason="wg-quick re-executes itself with sudo unless root")
def test_stripped_is_what_wg_quick_strip_prints(tmp_path):
    if shutil.which("wg-quick") is None:
        pytest.fail("wg-quick is missing: scripts/test.sh installs wireguard-tools")
    path = tmp_path / "wgq0.conf"
    path.write_text(REAL_WORLD)
    out = subprocess.run(["wg-quick", "strip", str(path)], capture_output=True, text=True, check=True, timeout=30)
    assert out.stdout == q.parse(REAL_WORLD, str(path)).stripped + "\n"  # wg-quick's `echo "$WG_CONFIG"` adds one


def test_wg_setconf_of_the_stripped_file_gives_the_engine_what_to_interface_config_says(netns, tmp_path):
    from tunkit.overlay.uapi_server import UapiServer, serve

    name = f"wgq{os.getpid() % 100000}"
    text = REAL_WORLD.replace("vpn.example.com", "192.0.2.80")  # no resolver inside the test
    path = tmp_path / f"{name}.conf"
    path.write_text(q.parse(text, str(path)).stripped)
    eng = Engine(K3, CRYPTO, wall_offset=time.time() - time.monotonic())
    stop = threading.Event()
    with UapiServer(name, eng) as server:
        t = threading.Thread(target=serve, args=(server,), kwargs={"until": stop.is_set, "timeout": 60, "tick": 0.05})
        t.start()
        try:
            subprocess.run(["wg", "setconf", name, str(path)], check=True, capture_output=True, timeout=30)
        finally:
            stop.set()
            t.join()
    want = q.to_interface_config(q.parse(text, str(path)), public_of)
    assert eng.config() == want
    assert ipaddress.ip_network("192.0.2.0/24") in eng.peers[public_key(K2)].allowed_ips


def test_fuzz_mutated_files_raise_only_config_error():
    import random

    rng = random.Random(12)
    parsed = failed = 0
    for i in range(1500):
        b = bytearray(REAL_WORLD.encode())
        if i % 3 == 0:
            b = b[:rng.randrange(len(b))]
        else:
            for _ in range(rng.randrange(1, 6)):
                b[rng.randrange(len(b))] = rng.choice(b"=[]#,:/ \n\t0aZ.-%\x00\xff")
        text = b.decode("utf-8", "replace")
        try:
            cfg = q.parse(text, "f.conf")
        except ConfigError as e:
            assert e.file and e.file.startswith("f.conf")
            failed += 1
            continue
        parsed += 1
        try:
            q.to_interface_config(cfg, public_of, resolve=lambda h, p: ("192.0.2.1", p))
        except ConfigError:
            pass
        except ValueError as e:  # only a low-order key or a limit may still be refused, by the one validation
            assert "low-order" in str(e) or "at most" in str(e), e
    assert parsed > 100 and failed > 100
