"""Real ``wg`` against tunkit's UAPI server and against wireguard-go, side by side, in a throwaway namespace.

Both interfaces get the same commands (``wg set``, ``setconf``, ``syncconf``,
``set ... remove``); ``wg show``, ``wg show dump`` and ``wg showconf`` must
print the same (the interface name, handshake times and byte counts aside,
and peers sorted: wireguard-go lists them in Go map order).  Then bad
requests go straight to the socket: tunkit answers the errno wireguard-go
answers (where wireguard-go refuses at all) and its configuration stays
exactly as it was.  The engine behind tunkit's socket has no data path yet.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import threading
import time

import pytest

from support_wireguard import require_wireguard_tools, start_wireguard_go, stop_wireguard_go, write_key
from tunkit.crypto import LibCrypto, generate_private_key, public_key
from tunkit.overlay.uapi_server import UapiServer, request, serve
from tunkit.wireguard import Engine, format_key

pytestmark = pytest.mark.privileged
RUN_DIR = "/var/run/wireguard"


def keyfile(tmp_path, name: str, key: bytes) -> str:
    return write_key(tmp_path / name, key)


def stable_get(path: str) -> str:
    """get=1 without the counters that traffic changes."""
    text = request(path, b"get=1\n\n").decode()
    return "\n".join(ln for ln in text.split("\n")
                     if not ln.startswith(("last_handshake_time", "tx_bytes", "rx_bytes")))


class Pair:
    """wireguard-go (``go``) and tunkit (``tk``) interfaces, same commands for both."""

    def __init__(self, ns, tmp_path) -> None:
        self.proc = self.server = self.thread = None
        self.stop = threading.Event()
        self.ns, self.tmp = ns, tmp_path
        tag = f"{os.getpid() % 100000}"
        self.go, self.tk = f"wgg{tag}", f"wgu{tag}"

    def start(self) -> None:
        ns = self.ns
        require_wireguard_tools()
        self.proc = start_wireguard_go(ns, self.go)
        self.engine = Engine(generate_private_key(), LibCrypto(), wall_offset=time.time() - time.monotonic())
        self.engine.has_private_key = False  # as a fresh wireguard-go: no key until wg sets one
        self.server = UapiServer(self.tk, self.engine)
        self.thread = threading.Thread(target=serve, args=(self.server,),
                                       kwargs={"until": self.stop.is_set, "timeout": 120, "tick": 0.05})
        self.thread.start()

    @staticmethod
    def path(name: str) -> str:
        return f"{RUN_DIR}/{name}.sock"

    def close(self) -> None:
        """Undo whatever start() got to."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join(30)
        if self.server is not None:
            self.server.close()
        stop_wireguard_go(self.proc, self.go, self.tk)

    def wg(self, name: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns.run(["wg", *[a.replace("IFACE", name) for a in args]], check=check)

    def both(self, *args: str) -> None:
        for name in (self.go, self.tk):
            self.wg(name, *args)

    def same(self) -> None:
        for view in (("show", "IFACE"), ("show", "IFACE", "dump"), ("showconf", "IFACE")):
            go = normalise(view, self.wg(self.go, *view).stdout, self.go)
            tk = normalise(view, self.wg(self.tk, *view).stdout, self.tk)
            assert tk == go, f"wg {' '.join(view)} differs:\n--- wireguard-go\n{go}\n--- tunkit\n{tk}"


def normalise(view, text: str, name: str) -> str:
    text = text.replace(name, "IFACE")
    if view[-1] == "dump":
        lines = text.strip().split("\n")
        head, peers = lines[0], [ln.split("\t") for ln in lines[1:]]
        return "\n".join([head] + sorted("\t".join(p[:4] + p[7:]) for p in peers))  # no handshake, rx, tx
    blocks = re.split(r"\n\n+", text.strip())
    blocks = [re.sub(r"\n  (latest handshake|transfer): [^\n]*", "", b) for b in blocks]
    return "\n\n".join(blocks[:1] + sorted(blocks[1:]))


@pytest.fixture
def pair(netns, tmp_path):
    p = Pair(netns, tmp_path)
    try:
        p.start()
        yield p
    finally:
        p.close()


KEYS = [generate_private_key() for _ in range(5)]
PUBS = [format_key(public_key(k)) for k in KEYS]


def test_wg_set_show_showconf_setconf_syncconf_remove_match_wireguard_go(pair, tmp_path):
    priv = keyfile(tmp_path, "priv", KEYS[0])
    psk = keyfile(tmp_path, "psk", os.urandom(32))
    assert stat_mode(pair.path(pair.tk)) == stat_mode(pair.path(pair.go)) == 0o140700
    # fresh: wireguard-go shows the random port it bound; tunkit has no data path (no UDP socket) yet
    assert pair.wg(pair.tk, "show", "IFACE").stdout == f"interface: {pair.tk}\n"
    pair.both("set", "IFACE", "private-key", priv, "listen-port", "51820", "fwmark", "0x33",
              "peer", PUBS[1], "allowed-ips", "198.18.0.0/24,2001:db8:1::/64", "endpoint", "192.0.2.1:51820",
              "persistent-keepalive", "25",
              "peer", PUBS[2], "preshared-key", psk, "allowed-ips", "198.18.1.2/32", "endpoint", "[2001:db8::2]:51821")
    pair.same()
    pair.both("set", "IFACE", "peer", PUBS[3], "allowed-ips", "198.18.1.2/32,198.51.100.7/24")  # steals, masks
    pair.same()
    pair.both("set", "IFACE", "peer", PUBS[1], "remove")
    pair.same()
    conf = tmp_path / "wg.conf"
    conf.write_text(f"""[Interface]
PrivateKey = {format_key(KEYS[4])}
ListenPort = 51999

[Peer]
PublicKey = {PUBS[2]}
AllowedIPs = 198.18.2.0/24, 2001:db8:2::/48
Endpoint = 192.0.2.2:4000

[Peer]
PublicKey = {PUBS[0]}
PresharedKey = {format_key(os.urandom(32))}
AllowedIPs = 198.18.3.3/32
PersistentKeepalive = 5
""")
    pair.both("setconf", "IFACE", str(conf))
    pair.same()
    conf.write_text(f"""[Interface]
PrivateKey = {format_key(KEYS[4])}
ListenPort = 52000
FwMark = 7

[Peer]
PublicKey = {PUBS[2]}
AllowedIPs = 198.18.2.0/24
Endpoint = [2001:db8::9]:4001

[Peer]
PublicKey = {PUBS[1]}
AllowedIPs = 0.0.0.0/0, ::/0
""")
    pair.both("syncconf", "IFACE", str(conf))
    pair.same()
    out = pair.wg(pair.tk, "show", "IFACE", "allowed-ips").stdout
    assert "0.0.0.0/0 ::/0" in out
    pair.both("set", "IFACE", "private-key", "/dev/null")  # an empty key file removes the key
    pair.same()
    names = pair.ns.run(["wg", "show", "interfaces"]).stdout.split()
    assert pair.tk in names and pair.go in names


def stat_mode(path: str) -> int:
    return os.stat(path).st_mode


BAD = [
    # (request, compare with wireguard-go's errno)
    (b"set=1\nunknown_key=1\n\n", True),
    (b"set=1\nprivate_key=" + b"zz" * 32 + b"\n\n", True),
    (b"set=1\nprivate_key=" + b"ab" * 31 + b"\n\n", True),
    (b"set=1\npublic_key=" + b"ab" * 33 + b"\n\n", True),
    (b"set=1\nlisten_port=65536\n\n", True),
    (b"set=1\nfwmark=-1\n\n", True),
    (b"set=1\nlisten_port\n\n", True),
    (b"set=1\npublic_key=" + b"cd" * 32 + b"\nendpoint=example.com:1\n\n", True),
    (b"set=1\npublic_key=" + b"cd" * 32 + b"\nallowed_ip=198.18.0.0/40\n\n", True),
    (b"get=1\nx\n", True),
    (b"\x00\xff\x13garbage\x00" * 100, False),  # closed without an answer
    (b"set=1\n" + b"".join(b"public_key=%064x\n" % (i + 1) for i in range(10000)) + b"\n", False),
]


def test_bad_requests_on_the_socket_get_wireguard_gos_errno_and_change_nothing(pair, tmp_path):
    priv = keyfile(tmp_path, "priv", KEYS[0])
    pair.both("set", "IFACE", "private-key", priv, "listen-port", "51820",
              "peer", PUBS[1], "allowed-ips", "198.18.0.0/24", "endpoint", "192.0.2.1:51820")
    tk = pair.path(pair.tk)
    before = stable_get(tk)
    for data, compare in BAD:
        answer = request(tk, data)
        if compare:
            go_answer = request(pair.path(pair.go), data)
            assert answer == go_answer and answer.startswith(b"errno=-"), (data[:60], answer, go_answer)
        elif data.startswith(b"\x00"):
            assert answer == b""
        elif b"public_key" in data:
            assert answer == b"errno=-22\n\n"  # more than MAX_PEERS (8,192) on the interface
        assert stable_get(tk) == before, data[:60]
    # half a request and stay connected: others are served meanwhile; then half-close: refused
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(tk)
        s.sendall(b"set=1\nlisten_port=3\n")
        assert stable_get(tk) == before
        s.shutdown(socket.SHUT_WR)
        assert s.recv(100) == b"errno=-71\n\n"
    assert stable_get(tk) == before
    # 200 clients at once
    socks = []
    try:
        for _ in range(200):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(tk)
            socks.append(s)
        for s in socks:
            s.sendall(b"get=1\n\n")
        for s in socks:
            buf = b""
            while not buf.endswith(b"\n\n"):
                chunk = s.recv(65536)
                assert chunk
                buf += chunk
            assert buf.endswith(b"errno=0\n\n")
    finally:
        for s in socks:
            s.close()
    assert stable_get(tk) == before
    assert pair.wg(pair.tk, "show", "IFACE", "dump").returncode == 0


def normal_get(text: str) -> str:
    """A get answer with the counters removed and the peers sorted (wireguard-go's map order is random)."""
    drop = ("last_handshake_time", "tx_bytes", "rx_bytes", "errno")
    keep = [ln for ln in text.split("\n") if ln and not ln.startswith(drop)]
    head, peers, cur = [], [], None
    for ln in keep:
        if ln.startswith("public_key="):
            cur = [ln]
            peers.append(cur)
        elif cur is None:
            head.append(ln)
        else:
            cur.append(ln)
    return "\n".join(head + sorted("\n".join(p) for p in peers))


def test_raw_sets_follow_wireguard_gos_rules_step_by_step(pair):
    h = [public_key(k).hex() for k in KEYS]
    steps = [
        f"private_key={KEYS[0].hex()}\nlisten_port=51830\nfwmark=9\npublic_key={h[1]}\nallowed_ip=198.18.0.0/24\n"
        f"allowed_ip=2001:db8::/64\nendpoint=192.0.2.1:1\npublic_key={h[2]}\nallowed_ip=198.18.1.0/24\n",
        f"public_key={h[2]}\nallowed_ip=198.18.0.0/24\nallowed_ip=198.18.1.0/24\nallowed_ip=198.51.100.99/24\n",
        # (no allowed_ip=-PREFIX: Debian's wireguard-go v0.0.20220316 predates it; tests/test_wireguard_uapi.py has it)
        f"public_key={h[1]}\nallowed_ip=2001:db8::/64\npersistent_keepalive_interval=0\nendpoint=192.0.2.7:7\n",
        f"public_key={h[3]}\nupdate_only=true\nallowed_ip=203.0.113.0/24\npublic_key={h[1]}\nupdate_only=true\n"
        f"endpoint=[2001:db8::1]:2\n",
        f"public_key={h[3]}\nallowed_ip=198.18.0.0/24\nupdate_only=true\n",
        f"public_key={h[0]}\nallowed_ip=192.0.2.0/24\npublic_key={h[4]}\npreshared_key={'00' * 32}\n",
        f"public_key={h[4]}\nremove=true\npublic_key={h[4]}\nallowed_ip=192.0.2.128/25\nreplace_allowed_ips=true\n"
        "allowed_ip=192.0.2.0/25\n",
        f"private_key={KEYS[2].hex()}\n",  # the new public key is a peer's: wireguard-go removes that peer
        f"fwmark=0\npublic_key={h[1]}\nreplace_allowed_ips=true\nprotocol_version=1\n",
        f"replace_peers=true\npublic_key={h[3]}\nallowed_ip=0.0.0.0/0\nallowed_ip=::/0\n",
    ]
    for i, body in enumerate(steps):
        req = f"set=1\n{body}\n".encode()
        go_ans, tk_ans = request(pair.path(pair.go), req), request(pair.path(pair.tk), req)
        assert tk_ans == go_ans == b"errno=0\n\n", (i, go_ans, tk_ans)
        go = normal_get(request(pair.path(pair.go), b"get=1\n\n").decode())
        tk = normal_get(request(pair.path(pair.tk), b"get=1\n\n").decode())
        assert tk == go, f"step {i}:\n--- wireguard-go\n{go}\n--- tunkit\n{tk}"
