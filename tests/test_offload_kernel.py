"""Offloads against the real kernel, in throwaway namespaces.

* Read path: a TCP (or UDP_SEGMENT) sender in namespace A talks through a
  vnet-header TUN; a relay copies packets to a TUN in namespace B where the
  receiver is.  The super-packets read from A are then written into a third
  namespace that *forwards* them out of a TUN without offloads, so the
  kernel's own software segmentation produces "the same traffic without
  offloads".  tunkit's split must match it byte for byte (the forwarded copy
  has its TTL/hop limit one lower, which the comparison accounts for).
* Write path: coalesced TCP segments and UDP datagrams written into a TUN are
  accepted and delivered to a socket byte-exact; a corrupt segment is not
  healed (the kernel counts a checksum error and TCP waits for the resend).
* A relay that splits on read and coalesces on write carries a TCP transfer
  byte-exact.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct
import threading
import time

import pytest

import support
from support_offload import ACK, PSH, SYN, ref_checksum, tcp4, tcp6, udp4, udp6
from tunkit._uapi import UDP_SEGMENT, TunOffload
from tunkit.tun.batch import OffloadIO
from tunkit.tun.device import open_tun
from tunkit.packet.offload import VirtioNetHdr, gso_split

A4, B4 = "198.18.0.1", "198.18.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"
DEADLINE = 20.0  # seconds any single exchange may take before the test fails


def _tun(ns, name, addrs=(), **kw):
    """A TUN created inside ``ns`` (its fd usable from any thread), with addresses, up, no link-local noise."""
    with ns.entered():
        dev = open_tun(name, **kw)
    ns.run(["ip", "link", "set", "dev", name, "addrgenmode", "none"])
    for a in addrs:
        ns.run(["ip", "address", "add", a, "dev", name, *(["nodad"] if ":" in a else [])])
    ns.run(["ip", "link", "set", "dev", name, "up"])
    return dev


class Relay:
    """Copy packets between two devices in two threads; ``fwd``/``back`` map a read to what is written."""

    def __init__(self, a, b, fwd, back):
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, args=(a, b, fwd), daemon=True),
                        threading.Thread(target=self._run, args=(b, a, back), daemon=True)]

    def _run(self, src, dst, fn):
        try:
            while not self.stop.is_set():
                fn(src, dst)
        except BaseException as e:  # reported by close(): a relay failure must fail the test
            self.errors.append(e)

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(5)
        assert not any(t.is_alive() for t in self.threads), "relay thread did not stop"
        if self.errors and exc[0] is None:
            raise self.errors[0]


def _two_hosts(netns_factory, **kw):
    a, b = netns_factory("a"), netns_factory("b")
    ta = _tun(a, "tka", (f"{A4}/24", f"{A6}/64"), vnet_hdr=True, **kw)
    tb = _tun(b, "tkb", (f"{B4}/24", f"{B6}/64"), vnet_hdr=True, **kw)
    return a, b, ta, tb


def _passthrough(record):
    def step(src, dst):
        p = src.read(timeout=0.1)
        if p is not None:
            if record is not None:
                record.append(p)
            dst.write(p)
    return step


def _tcp_transfer(a, b, dst, data: bytes) -> bytes:
    """Send ``data`` from a socket in ``a`` to one in ``b`` (at ``dst``); what the receiver got."""
    family = socket.AF_INET6 if ":" in dst else socket.AF_INET
    with b.entered():
        srv = socket.socket(family, socket.SOCK_STREAM)
    got = bytearray()
    with srv:
        srv.bind((dst, 5201))
        srv.listen(1)
        srv.settimeout(DEADLINE)

        def receive():
            conn, _ = srv.accept()
            with conn:
                conn.settimeout(DEADLINE)
                while len(got) < len(data):
                    chunk = conn.recv(1 << 20)
                    if not chunk:
                        break
                    got.extend(chunk)

        t = threading.Thread(target=receive, daemon=True)
        t.start()
        with a.entered():
            cl = socket.socket(family, socket.SOCK_STREAM)
        with cl:
            cl.settimeout(DEADLINE)
            cl.connect((dst, 5201))
            cl.sendall(data)
        t.join(DEADLINE)
    return bytes(got)


def _oracle(netns_factory, v6: bool):
    """A namespace forwarding from a vnet-header TUN (in) to a TUN without offloads (out)."""
    c = netns_factory("oracle")
    tin = _tun(c, "tkin", vnet_hdr=True)
    tout = _tun(c, "tkout")
    c.run(["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward; echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter;"
                       "echo 1 > /proc/sys/net/ipv6/conf/all/forwarding"])
    c.run(["ip", "route", "add", "2001:db8::/64" if v6 else "198.18.0.0/24", "dev", "tkout"])
    return tin, tout


def _forwarded(pkt: bytes) -> bytes:
    """What forwarding does to a packet: TTL (and the IPv4 header checksum) or hop limit one lower."""
    b = bytearray(pkt)
    if b[0] >> 4 == 4:
        b[8] -= 1
        ihl = (b[0] & 0x0F) * 4
        b[10:12] = b"\0\0"
        b[10:12] = struct.pack("!H", ref_checksum(bytes(b[:ihl])))
    else:
        b[7] -= 1
    return bytes(b)


def _flow_of(pkt) -> tuple:
    """(version, protocol, addresses) of an IP packet."""
    if pkt[0] >> 4 == 4:
        return 4, pkt[9], bytes(pkt[12:20])
    return 6, pkt[6], bytes(pkt[8:40])


def _compare_with_kernel_segmentation(tin, tout, supers, max_supers=25):
    """Write each super-packet into the oracle and compare its output with gso_split's."""
    compared = 0
    for raw in supers[:max_supers]:
        hdr = VirtioNetHdr.decode(raw)
        mine = gso_split(hdr, memoryview(raw)[10:])
        tin.write(raw)
        theirs = []
        deadline = time.monotonic() + DEADLINE
        while len(theirs) < len(mine) and time.monotonic() < deadline:
            p = tout.read(timeout=1.0)
            if p is not None and _flow_of(p) == _flow_of(mine[0]):  # not MLD reports and other chatter
                theirs.append(p)
        assert len(theirs) == len(mine), f"kernel sent {len(theirs)} packets, tunkit split into {len(mine)}"
        for i, (m, t) in enumerate(zip(mine, theirs)):
            assert _forwarded(m) == t, f"segment {i} of {len(mine)} (gso_size {hdr.gso_size}) differs"
        compared += len(mine)
    return compared


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_tso_reads_split_exactly_like_the_kernel(netns_factory, v6):
    a, b, ta, tb = _two_hosts(netns_factory)
    assert ta.offloads & (TunOffload.TSO4 | TunOffload.TSO6)
    reads: list[bytes] = []
    data = hashlib.shake_256(b"tso").digest(400_000)
    with Relay(ta, tb, _passthrough(reads), _passthrough(None)):
        got = _tcp_transfer(a, b, B6 if v6 else B4, data)
    assert got == data
    supers = [r for r in reads if VirtioNetHdr.decode(r).gso_type & 0x7F]
    assert supers, "the sender produced no super-packets"
    assert {VirtioNetHdr.decode(r).gso_type & 0x7F for r in supers} == {4 if v6 else 1}
    tin, tout = _oracle(netns_factory, v6)
    assert _compare_with_kernel_segmentation(tin, tout, supers) > len(supers[:25])


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_uso_reads_split_exactly_like_the_kernel(netns_factory, v6):
    a, b, ta, tb = _two_hosts(netns_factory)
    if not ta.offloads & TunOffload.USO4:
        pytest.skip(f"this kernel did not accept USO (offloads {ta.offloads!r})")
    reads: list[bytes] = []
    family = socket.AF_INET6 if v6 else socket.AF_INET
    dst = B6 if v6 else B4
    with b.entered():
        rx = socket.socket(family, socket.SOCK_DGRAM)
    with a.entered():
        tx = socket.socket(family, socket.SOCK_DGRAM)
    messages = [hashlib.shake_256(b"uso%d" % i).digest(7000 + 333 * i) for i in range(6)]
    with rx, tx, Relay(ta, tb, _passthrough(reads), _passthrough(None)):
        rx.bind((dst, 4789))
        rx.settimeout(DEADLINE)
        tx.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 1000)
        for m in messages:
            tx.sendto(m, (dst, 4789))
        got = [rx.recv(2000) for _ in range(sum(-(-len(m) // 1000) for m in messages))]
    assert got == [m[i : i + 1000] for m in messages for i in range(0, len(m), 1000)]
    supers = [r for r in reads if VirtioNetHdr.decode(r).gso_type & 0x7F == 5]
    assert len(supers) == len(messages)
    tin, tout = _oracle(netns_factory, v6)
    assert _compare_with_kernel_segmentation(tin, tout, supers) == len(got)


def _split_coalesce(src_io, dst_io):
    def step(src, dst):
        pkts = src_io[src].read_batch(16, timeout=0.1)
        if pkts:
            dst_io[dst].write(pkts)
    return step


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_relay_splitting_and_coalescing_carries_tcp_byte_exact(netns_factory, v6):
    a, b, ta, tb = _two_hosts(netns_factory)
    io = {ta: OffloadIO(ta), tb: OffloadIO(tb)}
    data = hashlib.shake_256(b"relay").digest(2_000_000)
    step = _split_coalesce(io, io)
    with Relay(ta, tb, step, step):
        got = _tcp_transfer(a, b, B6 if v6 else B4, data)
    assert got == data
    assert io[ta].stats.super_reads > 0, "nothing to split: the sender sent no super-packets"
    assert io[tb].stats.super_writes > 0, "nothing was coalesced"
    assert io[tb].stats.gso_refused == 0 and io[tb].coalescing
    assert io[ta].stats.malformed == io[tb].stats.malformed == 0


def _tcp_stats() -> dict:
    with open("/proc/thread-self/net/snmp") as f:
        lines = [ln.split() for ln in f if ln.startswith("Tcp:")]
    return dict(zip(lines[0][1:], map(int, lines[1][1:])))


def _recv_exactly(conn, n: int) -> bytes:
    got = bytearray()
    while len(got) < n:  # bounded by the socket timeout
        chunk = conn.recv(n - len(got))
        assert chunk, f"connection closed after {len(got)} of {n} bytes"
        got += chunk
    return bytes(got)


def _read_tcp(io, want_flags, timeout=DEADLINE):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in io.read(timeout=0.5) or ():
            p = bytes(p)
            l3 = 20 if p[0] >> 4 == 4 else 40
            proto = p[9] if l3 == 20 else p[6]
            if proto == 6 and p[l3 + 13] & want_flags == want_flags:
                return p, l3
    raise AssertionError(f"no TCP packet with flags {want_flags:#x} within {timeout} s")


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_coalesced_tcp_writes_reach_a_socket_and_corruption_is_not_healed(netns, v6):
    dev = _tun(netns, "tk0", (f"{B4}/24", f"{B6}/64"), vnet_hdr=True)
    io = OffloadIO(dev)
    mk = tcp6 if v6 else tcp4
    me, peer = (A6, B6) if v6 else (A4, B4)
    family = socket.AF_INET6 if v6 else socket.AF_INET
    with dev, socket.socket(family, socket.SOCK_STREAM) as srv:
        srv.bind((peer, 5201))
        srv.listen(1)
        srv.settimeout(DEADLINE)
        addr = dict(src=me, dst=peer, sport=40000, dport=5201, window=65535)
        # handshake by hand: SYN (MSS 1460), the kernel's SYN-ACK, our ACK
        isn = 1_000_000
        io.write([mk(b"", seq=isn, ack=0, flags=SYN, options=bytes.fromhex("020405b4"), **addr)])
        synack, l3 = _read_tcp(io, SYN | ACK)
        their_seq = struct.unpack_from("!I", synack, l3 + 4)[0]
        ack = (their_seq + 1) & 0xFFFFFFFF
        io.write([mk(b"", seq=isn + 1, ack=ack, **addr)])
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(DEADLINE)
            data = hashlib.shake_256(b"write").digest(12 * 1000)
            extra = (lambda i: {}) if v6 else (lambda i: dict(ident=100 + i, df=True))
            segs = [mk(data[i * 1000 : (i + 1) * 1000], seq=isn + 1 + i * 1000, ack=ack, flags=ACK | (PSH if i == 11 else 0),
                       **addr, **extra(i)) for i in range(12)]
            bad = bytearray(segs[5])
            bad[-1] ^= 0xFF
            before = _tcp_stats()
            writes = io.write(segs[:5] + [bytes(bad)] + segs[6:])
            assert writes == 3 and io.stats.super_writes == 2  # [0..4], the corrupt one alone, [6..11]
            got = _recv_exactly(conn, 5000)
            assert got == data[:5000]  # in order up to the hole the corrupt segment left
            assert _tcp_stats()["InCsumErrors"] == before["InCsumErrors"] + 1  # dropped by the kernel, not healed
            io.write([segs[5]])  # the "retransmission" fills the hole
            assert got + _recv_exactly(conn, len(data) - 5000) == data


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_coalesced_udp_writes_reach_a_socket(netns, v6):
    dev = _tun(netns, "tk0", (f"{B4}/24", f"{B6}/64"), vnet_hdr=True)
    if not dev.offloads & TunOffload.USO4:
        pytest.skip(f"this kernel did not accept USO (offloads {dev.offloads!r})")
    io = OffloadIO(dev)
    me, peer = (A6, B6) if v6 else (A4, B4)
    payloads = [hashlib.shake_256(b"udp%d" % i).digest(1200 if i < 19 else 300) for i in range(20)]
    mk = (lambda p, i: udp6(p, src=me, dst=peer, dport=4789)) if v6 else (lambda p, i: udp4(p, src=me, dst=peer, dport=4789, ident=7 + i))
    with dev, socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind((peer, 4789))
        rx.settimeout(DEADLINE)
        assert io.write([mk(p, i) for i, p in enumerate(payloads)]) == 1 and io.stats.super_writes == 1
        got = [rx.recvfrom(2000) for _ in payloads]
    assert [g[0] for g in got] == payloads
    assert {g[1][:2] for g in got} == {(me, 40000)}


def test_coalesced_ipv4_without_df_is_delivered(netns):
    """IPv4 without DF: segments with sequential IDs coalesce, and the kernel takes the super-packet."""
    dev = _tun(netns, "tk0", (f"{B4}/24",), vnet_hdr=True)
    io = OffloadIO(dev)
    assert support.ip_json("link", "show", "dev", "tk0")[0]["operstate"] in ("UNKNOWN", "UP")
    with dev, socket.socket(socket.AF_INET, socket.SOCK_STREAM) as srv:
        srv.bind((B4, 5202))
        srv.listen(1)
        srv.settimeout(DEADLINE)
        addr = dict(src=A4, dst=B4, sport=40001, dport=5202, window=65535, df=False)
        io.write([tcp4(b"", seq=5, ack=0, flags=SYN, ident=1, **addr)])
        synack, l3 = _read_tcp(io, SYN | ACK)
        ack = (struct.unpack_from("!I", synack, l3 + 4)[0] + 1) & 0xFFFFFFFF
        io.write([tcp4(b"", seq=6, ack=ack, ident=2, **addr)])
        conn, _ = srv.accept()
        with conn:
            conn.settimeout(DEADLINE)
            data = os.urandom(4 * 536)  # no MSS option: the default 536
            io.write([tcp4(data[i * 536 : (i + 1) * 536], seq=6 + i * 536, ack=ack, ident=3 + i, **addr) for i in range(4)])
            assert io.stats.super_writes == 1
            assert _recv_exactly(conn, len(data)) == data
