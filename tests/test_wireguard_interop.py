"""tunkit's WireGuard engine against a real wireguard-go peer, in throwaway namespaces.

Namespace ``wg`` runs wireguard-go with a TUN interface configured by ``wg
set``; namespace ``tk`` holds a plain UDP socket that this test drives the
engine through.  A veth pair carries the underlay (192.0.2.0/24); the tunnel
carries 198.18.0.0/24 and 2001:db8:1::/64.
"""

from __future__ import annotations

import itertools
import os
import select
import socket
import struct
import time

import pytest

from support_wireguard import address_wg_interface, require_wireguard_tools, start_wireguard_go, stop_wireguard_go, veth_between, write_key
from tunkit.crypto import LibCrypto, generate_private_key, public_key
from tunkit.wireguard import Engine, format_key

pytestmark = pytest.mark.privileged

WG_UNDERLAY, TK_UNDERLAY, TK_UNDERLAY2 = "192.0.2.1", "192.0.2.2", "192.0.2.3"
WG_PORT = 51820
WG4, TK4 = "198.18.0.1", "198.18.0.2"
WG6, TK6 = "2001:db8:1::1", "2001:db8:1::2"
_seq = itertools.count(1)


# ---------------------------------------------------------------- inner packets (oracles)

def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def echo4(src: str, dst: str, ident: int, seq: int, *, reply: bool = False, payload: bytes = b"tunkit-wg") -> bytes:
    icmp = bytearray(struct.pack("!BBHHH", 0 if reply else 8, 0, 0, ident, seq) + payload)
    struct.pack_into("!H", icmp, 2, _csum(bytes(icmp)))
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0,
                               socket.inet_aton(src), socket.inet_aton(dst)))
    struct.pack_into("!H", ip, 10, _csum(bytes(ip)))
    return bytes(ip + icmp)


def _icmp6_sum(src: bytes, dst: bytes, icmp: bytes) -> int:
    return _csum(src + dst + struct.pack("!I3xB", len(icmp), 58) + icmp)


def echo6(src: str, dst: str, ident: int, seq: int, *, reply: bool = False, payload: bytes = b"tunkit-wg6") -> bytes:
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    icmp = bytearray(struct.pack("!BBHHH", 129 if reply else 128, 0, 0, ident, seq) + payload)
    struct.pack_into("!H", icmp, 2, _icmp6_sum(s, d, bytes(icmp)))
    return struct.pack("!IHBB16s16s", 6 << 28, len(icmp), 58, 64, s, d) + bytes(icmp)


def parse_echo(pkt: bytes):
    """(version, type, ident, seq, src, dst) of a valid ICMP echo packet, checksums verified; else None."""
    if pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 15) * 4
        if _csum(pkt[:ihl]) != 0 or pkt[9] != 1 or _csum(pkt[ihl:]) != 0:
            return None
        t, _, _, ident, seq = struct.unpack_from("!BBHHH", pkt, ihl)
        return 4, t, ident, seq, socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20])
    if pkt[0] >> 4 == 6 and pkt[6] == 58:
        icmp = pkt[40:]
        if _icmp6_sum(pkt[8:24], pkt[24:40], icmp) != 0:
            return None
        t, _, _, ident, seq = struct.unpack_from("!BBHHH", icmp)
        return (6, t, ident, seq, socket.inet_ntop(socket.AF_INET6, pkt[8:24]),
                socket.inet_ntop(socket.AF_INET6, pkt[24:40]))
    return None


def udp_packet(src: str, dst: str, sport: int, dport: int, payload: bytes) -> bytes:
    """An IPv4 or IPv6 UDP packet with valid checksums."""
    v6 = ":" in src
    fam = socket.AF_INET6 if v6 else socket.AF_INET
    s, d = socket.inet_pton(fam, src), socket.inet_pton(fam, dst)
    udp = bytearray(struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload)
    pseudo = s + d + (struct.pack("!I3xB", len(udp), 17) if v6 else struct.pack("!xBH", 17, len(udp)))
    struct.pack_into("!H", udp, 6, _csum(pseudo + bytes(udp)) or 0xFFFF)
    if v6:
        return struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64, s, d) + bytes(udp)
    ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, s, d))
    struct.pack_into("!H", ip, 10, _csum(bytes(ip)))
    return bytes(ip + udp)


def parse_udp(pkt: bytes):
    """(src, dst, sport, dport, payload) of a UDP packet with a valid checksum; else None."""
    if pkt[0] >> 4 == 4 and pkt[9] == 17 and _csum(pkt[:20]) == 0:
        s, d, udp = pkt[12:16], pkt[16:20], pkt[20:]
        pseudo, fam = s + d + struct.pack("!xBH", 17, len(udp)), socket.AF_INET
    elif pkt[0] >> 4 == 6 and pkt[6] == 17:
        s, d, udp = pkt[8:24], pkt[24:40], pkt[40:]
        pseudo, fam = s + d + struct.pack("!I3xB", len(udp), 17), socket.AF_INET6
    else:
        return None
    if _csum(pseudo + udp) != 0:
        return None
    sport, dport = struct.unpack_from("!HH", udp)
    return socket.inet_ntop(fam, s), socket.inet_ntop(fam, d), sport, dport, bytes(udp[8:])


# ---------------------------------------------------------------- the lab

class Lab:
    """wireguard-go in one namespace, a UDP socket driving an Engine in the other."""

    def __init__(self) -> None:
        self.proc = None
        self.socks = {}
        self.ifname = None

    def start(self, netns_factory, tmp_path) -> None:
        require_wireguard_tools()
        self.wg = netns_factory("wg")
        self.tk = netns_factory("tk")
        veth_between(self.wg, self.tk, "veth-wg", "veth-tk", [WG_UNDERLAY], [TK_UNDERLAY, TK_UNDERLAY2])
        self.ifname = f"wgt{os.getpid() % 100000}x{next(_seq)}"[:15]
        self.wg_key = generate_private_key()
        self.tk_key = generate_private_key()
        keyfile = write_key(tmp_path / "wg.key", self.wg_key)
        self.proc = start_wireguard_go(self.wg, self.ifname)
        self.wg.run(["wg", "set", self.ifname, "private-key", keyfile, "listen-port", str(WG_PORT),
                     "peer", format_key(public_key(self.tk_key)), "allowed-ips", f"{TK4}/32,{TK6}/128",
                     "endpoint", f"{TK_UNDERLAY}:{self.tk_port_hint}"])
        address_wg_interface(self.wg, self.ifname, WG4, WG6)
        with self.tk.entered():
            for a in (TK_UNDERLAY, TK_UNDERLAY2):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((a, self.tk_port_hint))
                s.setblocking(False)
                self.socks[a] = s
        self.out_sock = self.socks[TK_UNDERLAY]
        self.eng = Engine(self.tk_key, LibCrypto(), wall_offset=time.time() - time.monotonic())
        self.peer = self.eng.add_peer(public_key(self.wg_key), allowed_ips=[f"{WG4}/32", f"{WG6}/128"],
                                      endpoint=(WG_UNDERLAY, WG_PORT))
        self.delivered: list[bytes] = []

    tk_port_hint = 51821

    def close(self) -> None:
        """Undo whatever start() got to: sockets, the wireguard-go process, its UAPI socket."""
        for s in self.socks.values():
            s.close()
        stop_wireguard_go(self.proc, self.ifname)

    # -- driving the engine ------------------------------------------------
    def flush(self) -> None:
        for datagram, dest in self.eng.pop_datagrams():
            self.out_sock.sendto(datagram, dest)

    def send_inner(self, pkt: bytes) -> None:
        out = self.eng.send(pkt, time.monotonic())
        if out is not None:
            self.out_sock.sendto(*out)
        self.flush()

    def pump(self, until, timeout: float = 10.0) -> bool:
        """Run the engine (datagrams, timers) until ``until()`` is true or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not until():
            now = time.monotonic()
            if now > deadline:
                return False
            self.eng.tick(now)
            self.flush()
            nxt = self.eng.next_deadline()
            wait = min(deadline, nxt if nxt is not None else deadline) - now
            ready, _, _ = select.select(list(self.socks.values()), [], [], max(0.0, min(wait, 0.2)))
            for s in ready:
                while True:
                    try:
                        data, addr = s.recvfrom(65535)
                    except BlockingIOError:
                        break
                    self.out_sock = s  # answer from the address the peer reached
                    pkt = self.eng.receive(bytearray(data), addr, time.monotonic())
                    if pkt is not None:
                        self.delivered.append(bytes(pkt))
            self.flush()
        return True

    def events(self, kind: str) -> int:
        return sum(1 for e in self.eng.events if e.kind == kind)

    def wg_dump(self) -> dict:
        lines = self.wg.run(["wg", "show", self.ifname, "dump"]).stdout.splitlines()
        fields = lines[1].split("\t")  # public-key psk endpoint allowed-ips latest-handshake rx tx keepalive
        return {"endpoint": fields[2], "latest_handshake": int(fields[4]), "rx": int(fields[5]), "tx": int(fields[6])}

    def udp_from_wg(self, family: int, dst: str, payload: bytes) -> socket.socket:
        """A UDP socket in wireguard-go's namespace that sent ``payload`` to ``dst``:7 (into its TUN)."""
        with self.wg.entered():
            s = socket.socket(family, socket.SOCK_DGRAM)
        s.setblocking(False)
        s.sendto(payload, (dst, 7))
        return s

    def echo_roundtrip(self, version: int, seq: int) -> bytes:
        """Send an echo request over the tunnel; the matching valid reply that came back."""
        ident = 0x7700 + seq
        req = echo4(TK4, WG4, ident, seq) if version == 4 else echo6(TK6, WG6, ident, seq)
        want = (version, 0 if version == 4 else 129, ident, seq, WG4 if version == 4 else WG6,
                TK4 if version == 4 else TK6)
        start = len(self.delivered)
        self.send_inner(req)
        got = lambda: any(parse_echo(p) == want for p in self.delivered[start:])  # noqa: E731
        assert self.pump(got, timeout=10), f"no IPv{version} echo reply; drops {self._drops()}"
        return next(p for p in self.delivered[start:] if parse_echo(p) == want)

    def answer_udp(self, until, timeout: float = 10.0) -> bool:
        """Pump, and echo back (swapped addresses and ports) every UDP packet wireguard-go delivers."""
        answered = set()

        def step():
            for i, p in enumerate(self.delivered):
                u = parse_udp(p)
                if i not in answered and u is not None:
                    answered.add(i)
                    src, dst, sport, dport, payload = u
                    self.send_inner(udp_packet(dst, src, dport, sport, payload.upper()))
            return until()

        return self.pump(step, timeout)

    def _drops(self) -> dict:
        return {k: v for k, v in self.eng.drops.items() if v}


@pytest.fixture
def lab(netns_factory, tmp_path):
    lab = Lab()
    try:
        lab.start(netns_factory, tmp_path)
        yield lab
    finally:
        lab.close()


def test_tunkit_initiates_to_wireguard_go_and_pings_both_families(lab):
    assert lab.eng.initiate(lab.peer, time.monotonic())
    assert lab.pump(lambda: lab.events("handshake_complete") == 1, timeout=10), lab._drops()
    assert lab.peer.current is not None and lab.peer.current.initiator
    # the engine sent a keepalive right after the response, so wireguard-go switched to the session
    assert lab.peer.current.send_counter == 1
    for seq in (1, 2, 3):
        lab.echo_roundtrip(4, seq)
        lab.echo_roundtrip(6, seq)
    dump = lab.wg_dump()
    assert dump["latest_handshake"] > 0
    assert dump["endpoint"] == f"{TK_UNDERLAY}:{lab.tk_port_hint}"
    # wg counts transport bytes; ours count the same datagrams (plus the handshake messages)
    assert dump["rx"] >= 6 * 32 and dump["tx"] >= 6 * 32
    assert dump["rx"] <= lab.peer.tx_bytes and dump["tx"] <= lab.peer.rx_bytes
    assert lab._drops() == {}


def _recv_within(sock: socket.socket, lab: Lab, timeout: float) -> bytes | None:
    got = []

    def arrived():
        try:
            got.append(sock.recv(65535))
        except BlockingIOError:
            return False
        return True

    lab.answer_udp(arrived, timeout)
    return got[0] if got else None


def test_wireguard_go_initiates_and_gets_answers_both_families(lab):
    s4 = lab.udp_from_wg(socket.AF_INET, TK4, b"hello over wireguard-go")
    try:
        # wireguard-go initiates for the packet in its TUN, we respond, it sends the packet
        assert _recv_within(s4, lab, 15) == b"HELLO OVER WIREGUARD-GO", lab._drops()
    finally:
        s4.close()
    assert lab.events("handshake_complete") == 1
    assert lab.peer.current is not None and not lab.peer.current.initiator
    assert lab.peer.next is None  # confirmed by wireguard-go's first transport message
    s6 = lab.udp_from_wg(socket.AF_INET6, TK6, b"and over ipv6")
    try:
        assert _recv_within(s6, lab, 10) == b"AND OVER IPV6", lab._drops()
    finally:
        s6.close()
    # and our own echo requests ride the same session
    lab.echo_roundtrip(4, 9)
    lab.echo_roundtrip(6, 9)
    dump = lab.wg_dump()
    assert dump["latest_handshake"] > 0 and dump["rx"] > 0 and dump["tx"] > 0
    assert lab.events("handshake_complete") == 1
    assert lab._drops() == {}


def test_forced_rekey_and_roaming_with_wireguard_go(lab):
    lab.eng.initiate(lab.peer, time.monotonic())
    assert lab.pump(lambda: lab.events("handshake_complete") == 1, timeout=10)
    lab.echo_roundtrip(4, 1)
    first = lab.peer.current
    # a forced rekey: a second handshake; the old session becomes "previous"
    assert lab.eng.initiate(lab.peer, time.monotonic(), force=True)
    assert lab.pump(lambda: lab.events("handshake_complete") == 2, timeout=10)
    assert lab.peer.current is not first and lab.peer.previous is first
    lab.echo_roundtrip(4, 2)
    lab.echo_roundtrip(6, 2)
    # roam: send from the second underlay address; wireguard-go's endpoint follows
    lab.out_sock = lab.socks[TK_UNDERLAY2]
    lab.echo_roundtrip(4, 3)
    assert lab.wg_dump()["endpoint"] == f"{TK_UNDERLAY2}:{lab.tk_port_hint}"
    assert lab._drops() == {}


def test_garbage_from_the_underlay_is_counted_while_wireguard_go_traffic_continues(lab):
    lab.eng.initiate(lab.peer, time.monotonic())
    assert lab.pump(lambda: lab.events("handshake_complete") == 1, timeout=10)
    lab.echo_roundtrip(4, 1)
    with lab.wg.entered():
        attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        attacker.bind((WG_UNDERLAY, 0))
        import random

        rng = random.Random(5)
        index = lab.peer.current.local_index
        junk = [rng.randbytes(rng.randrange(1, 200)) for _ in range(40)]
        junk += [struct.pack("<IIQ", 4, index, 10**6 + i) + rng.randbytes(48) for i in range(40)]  # forged transport
        junk += [bytes([1, 0, 0, 0]) + rng.randbytes(144) for _ in range(20)]  # initiations with a bad mac1
        for d in junk:
            attacker.sendto(d, (TK_UNDERLAY, lab.tk_port_hint))
        assert lab.pump(lambda: sum(lab.eng.drops.values()) >= len(junk), timeout=10), lab._drops()
    finally:
        attacker.close()
    assert lab.eng.drops["decrypt"] == 40 and lab.eng.drops["mac1"] >= 20
    assert sum(lab.eng.drops.values()) == len(junk)
    assert lab.peer.endpoint == (WG_UNDERLAY, WG_PORT)  # the attacker's address was never taken
    lab.echo_roundtrip(4, 2)
    lab.echo_roundtrip(6, 2)
