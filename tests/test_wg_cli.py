"""WireGuard mode on the command line: genkey/genpsk/pubkey in wg's format, `tunkit check NAME.conf`, load_wgquick."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from tunkit.app.config import load_wgquick
from tunkit.cli import main
from tunkit.crypto import generate_private_key, public_key
from tunkit.errors import ConfigError
from tunkit.wireguard import format_key, parse_key

KEY_A, KEY_B = generate_private_key(), generate_private_key()
GOOD = f"""[Interface]
PrivateKey = {format_key(KEY_A)}
Address = 198.18.0.2/24, 2001:db8:1::2/64
ListenPort = 51900
MTU = 1400
DNS = 192.0.2.53

[Peer]
PublicKey = {format_key(public_key(KEY_B))}
AllowedIPs = 198.18.0.1/32, 2001:db8:1::1
Endpoint = 192.0.2.1:51820
PersistentKeepalive = 25
"""


def _tunkit(*args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunkit", *args], input=stdin, capture_output=True, text=True,
                          timeout=60, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_genkey_and_pubkey_speak_wgs_format():
    priv = _tunkit("genkey").stdout.strip()
    raw = parse_key(priv)
    assert raw[0] & 7 == 0 and raw[31] & 0x80 == 0 and raw[31] & 0x40   # clamped as wg genkey clamps
    pub = _tunkit("pubkey", stdin=priv + "\n").stdout.strip()
    assert pub == format_key(public_key(raw))
    if shutil.which("wg"):  # the reference tool agrees (scripts/test.sh installs it)
        assert subprocess.run(["wg", "pubkey"], input=priv, capture_output=True, text=True,
                              check=True).stdout.strip() == pub
    assert len(parse_key(_tunkit("genpsk").stdout.strip())) == 32
    bad = _tunkit("pubkey", stdin="not a key\n")
    assert bad.returncode == 1 and "44 base64 characters" in bad.stderr and not bad.stdout


def test_genkey_psk_writes_the_hmac_key_file_and_the_old_form_says_what_it_did(tmp_path, capsys):
    k = tmp_path / "net.key"
    assert main(["genkey", "--psk", str(k)]) == 0
    assert stat.S_IMODE(os.stat(k).st_mode) == 0o600 and len(k.read_text().strip()) == 44
    assert main(["genkey", "--psk", str(k)]) == 1   # never overwritten
    old = tmp_path / "old.key"
    assert main(["genkey", str(old)]) == 0
    assert "HMAC-mode pre-shared key" in capsys.readouterr().err and old.exists()


def _write(tmp_path, text: str, name: str = "wgt0.conf") -> str:
    p = tmp_path / name
    p.write_text(text)
    p.chmod(0o600)
    return str(p)


def test_a_wg_quick_file_is_checked_once_for_check_and_up(tmp_path, capsys):
    path = _write(tmp_path, GOOD)
    wq = load_wgquick(path)
    assert wq.name == "wgt0" and wq.mtu == 1400 and wq.interface.listen_port == 51900
    assert [str(r) for r in wq.routes] == ["198.18.0.1/32", "2001:db8:1::1/128"]
    assert any("DNS ignored" in m for m in wq.ignored)
    peer = wq.interface.peers[0]
    assert peer.endpoint == ("192.0.2.1", 51820) and peer.persistent_keepalive == 25
    assert main(["check", path]) == 0
    out = capsys.readouterr()
    assert "WireGuard mode, encrypted" in out.out and "DNS ignored" in out.err
    assert main(["check", "-j", path]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["mode"] == "wireguard" and doc["peers"][0]["allowed_ips"] == ["198.18.0.1/32", "2001:db8:1::1/128"]


@pytest.mark.parametrize("edit, name, message", [
    (lambda t: t.replace("DNS = 192.0.2.53", "PostUp = iptables -A FORWARD"), "wgt0.conf", "PostUp refused"),
    (lambda t: t.replace("DNS = 192.0.2.53", "SaveConfig = true"), "wgt0.conf", "SaveConfig = true"),
    (lambda t: t.replace("DNS = 192.0.2.53", "Table = 1234"), "wgt0.conf", "Table = 1234"),
    (lambda t: t.replace("AllowedIPs = 198.18.0.1/32", "AllowedIPs = 0.0.0.0/0"), "wgt0.conf",
     "0.0.0.0/0 with Table = auto"),
    (lambda t: t.replace("ListenPort = 51900", "ListenPort = 70000"), "wgt0.conf", "ListenPort"),
    (lambda t: t.replace("MTU = 1400", "MTU = 1000"), "wgt0.conf", "1280..65455"),
    (lambda t: "\n".join(x for x in t.splitlines() if not x.startswith("PrivateKey")), "wgt0.conf",
     "PrivateKey missing"),
    (lambda t: t, "a-very-long-interface-name.conf", "interface name"),
    (lambda t: t.replace("Endpoint = 192.0.2.1:51820", "Endpoint = no-such-host.invalid:51820"), "wgt0.conf",
     "cannot resolve"),
])
def test_what_tunkit_up_refuses_in_a_wg_quick_file_check_refuses_too(tmp_path, capsys, edit, name, message):
    path = _write(tmp_path, edit(GOOD), name)
    with pytest.raises(ConfigError, match=message) as e:
        load_wgquick(path)
    assert path in str(e.value)
    assert main(["check", path]) == 1
    assert message in capsys.readouterr().err
