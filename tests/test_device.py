"""tunkit.tun (device, queue, clone, ifreq): ifreq layout and argument checks (pure), queue mechanics on socketpairs
(unprivileged), and every TUN/TAP behaviour against the real kernel inside a namespace
with ``ip -d -j link`` as the oracle."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import pwd
import grp
import selectors
import socket
import struct
import threading
import time

import pytest

import support
import support_device as sd
from tunkit.tun import device as tdev
from tunkit.tun import ifreq as tifreq
from tunkit._uapi import (
    IFNAMSIZ,
    SIOCGIFMTU,
    SIZEOF_IFREQ,
    SIZEOF_IFREQ_32BIT,
    TUNGETVNETHDRSZ,
    TUNSETIFF,
    TUNSETOFFLOAD,
    TUNSETVNETHDRSZ,
    IfFlag,
    TunFlag,
    TunOffload,
)
from tunkit.tun.device import Device, Ifreq, Queue, open_tun
from tunkit.errors import DeviceClosedError, DeviceError

O = TunOffload
FULL = O.CSUM | O.TSO4 | O.TSO6 | O.TSO_ECN | O.USO4 | O.USO6
NO_USO = O.CSUM | O.TSO4 | O.TSO6 | O.TSO_ECN
PLAIN_TSO = O.CSUM | O.TSO4 | O.TSO6


# ---------------------------------------------------------------------------
# the split of tunkit.tun.device (issue 11): every name it offered before is still there
# ---------------------------------------------------------------------------
# name -> the module that defines it now
DEVICE_NAMES = {
    "TUN_PATH": "clone", "MODES": "clone", "OFFLOAD_LADDER": "clone", "offload_ladder": "clone",
    "create_tun_node": "clone",
    "Ifreq": "ifreq", "Ifmap": "ifreq", "IfreqUnion": "ifreq", "Sockaddr": "ifreq", "flag_names": "ifreq",
    "Queue": "queue",
    "Device": "device", "open_tun": "device", "delete": "device", "list_tun_devices": "device",
}


@pytest.mark.parametrize("name,home", sorted(DEVICE_NAMES.items()))
def test_device_module_keeps_every_public_name(name, home):
    import importlib

    module = importlib.import_module(f"tunkit.tun.{home}")
    assert getattr(tdev, name) is getattr(module, name)
    assert name in tdev.__all__
    assert tdev.validate_name("tk0") == b"tk0"  # re-exported from tunkit.ifname, as before


def test_every_ioctl_goes_through_the_one_seam():
    """Only tunkit.tun.ifreq calls fcntl.ioctl; clone, queue and device call ``ifreq.ioctl`` through the
    module (never a name imported from it), so a test that replaces ``tunkit.tun.ifreq.ioctl`` sees every call."""
    import ast
    import pathlib

    import tunkit.tun

    bad, seam = [], 0
    for path in sorted(pathlib.Path(tunkit.tun.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "ioctl" and isinstance(node.value, ast.Name):
                if node.value.id == "fcntl" and path.stem != "ifreq":
                    bad.append(f"{path.name}:{node.lineno}: fcntl.ioctl")
                seam += node.value.id == "ifreq"
            if isinstance(node, ast.ImportFrom) and node.module == "tunkit.tun.ifreq" and any(a.name == "ioctl" for a in node.names):
                bad.append(f"{path.name}:{node.lineno}: imports ioctl by name")
    assert not bad, bad
    assert seam >= 5  # TUNSETIFF, TUNSETOFFLOAD (ladder and replay), TUNSETQUEUE, owner/group, SIOC* ...


# ---------------------------------------------------------------------------
# pure: struct ifreq layout
# ---------------------------------------------------------------------------
def test_ifreq_size_matches_the_c_layout():
    # struct ifmap (unsigned long, unsigned long, unsigned short, 3 x unsigned char), padded to
    # its alignment, is the largest union member: the oracle is struct's native layout.
    ifmap = struct.calcsize("@LLHBBB0L")
    assert ctypes.sizeof(tdev.Ifmap) == ifmap
    assert ctypes.sizeof(Ifreq) == IFNAMSIZ + max(ifmap, 16)
    assert ctypes.sizeof(Ifreq) == (SIZEOF_IFREQ if struct.calcsize("P") == 8 else SIZEOF_IFREQ_32BIT)


@pytest.mark.parametrize("field,offset,size", [
    ("ifr_name", 0, 16),
    ("ifr_flags", 16, 2),
    ("ifr_ifindex", 16, 4),
    ("ifr_mtu", 16, 4),
    ("ifr_qlen", 16, 4),
    ("ifr_hwaddr", 16, 16),
    ("ifr_newname", 16, 16),
])
def test_ifreq_member_offsets(field, offset, size):
    desc = getattr(Ifreq, field)  # union members are reachable on Ifreq (anonymous), at absolute offsets
    assert (desc.offset, desc.size) == (offset, size)


def test_sockaddr_layout():
    assert ctypes.sizeof(tdev.Sockaddr) == 16
    assert tdev.Sockaddr.sa_family.offset == 0 and tdev.Sockaddr.sa_data.offset == 2


# (fields to set, the bytes of struct ifreq up to the end of the member) - checked both ways
IFREQ_CASES = [
    ("flags", {"ifr_name": b"tk0", "ifr_flags": 0x9001},
     b"tk0" + b"\0" * 13 + struct.pack("=H", 0x9001)),
    ("mtu", {"ifr_name": b"tk12345678901ab", "ifr_mtu": 1400},
     b"tk12345678901ab\0" + struct.pack("=i", 1400)),
    ("qlen", {"ifr_name": b"x", "ifr_qlen": -1},
     b"x" + b"\0" * 15 + struct.pack("=i", -1)),
]


@pytest.mark.parametrize("what,fields,wire", IFREQ_CASES, ids=[c[0] for c in IFREQ_CASES])
def test_ifreq_bytes_both_ways(what, fields, wire):
    req = Ifreq()
    for k, v in fields.items():
        setattr(req, k, v)
    raw = bytes(req)
    assert raw[: len(wire)] == wire and raw[len(wire):] == bytes(len(raw) - len(wire))
    back = Ifreq.from_buffer_copy(wire + bytes(ctypes.sizeof(Ifreq) - len(wire)))
    for k, v in fields.items():
        assert getattr(back, k) == v


def test_ifreq_hwaddr_bytes():
    req = Ifreq(ifr_name=b"tap0")
    req.ifr_hwaddr.sa_family = 1
    for i, b in enumerate(bytes.fromhex("020000000001")):
        req.ifr_hwaddr.sa_data[i] = b
    assert bytes(req)[16:24] == struct.pack("=H", 1) + bytes.fromhex("020000000001")


# ---------------------------------------------------------------------------
# pure: argument checks
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["tk0", "a" * 15, "tk%d", "x-y_z.1", "é" * 7])
def test_valid_names(name):
    assert tdev.validate_name(name) == name.encode()


@pytest.mark.parametrize("name,template,match", [
    ("a" * 16, True, "too long: 16 bytes, at most 15"),
    ("é" * 8, True, "too long: 16 bytes"),
    ("", True, "empty"),
    (".", True, "not allowed"),
    ("..", True, "not allowed"),
    ("a/b", True, "contains '/'"),
    ("a:b", True, "contains ':'"),
    ("a b", True, "contains ' '"),
    ("a\tb", True, "contains"),
    ("tk%s", True, "exactly one '%d'"),
    ("tk%d%d", True, "exactly one '%d'"),
    ("tk%d", False, "is a template"),
])
def test_invalid_names(name, template, match):
    with pytest.raises(ValueError, match=match) as exc:
        tdev.validate_name(name, template=template)
    assert repr(name) in str(exc.value) or not name


@pytest.mark.parametrize("requested,ladder", [
    (None, [FULL, NO_USO, PLAIN_TSO]),
    (FULL, [FULL, NO_USO, PLAIN_TSO]),
    (PLAIN_TSO, [PLAIN_TSO]),
    (O.CSUM | O.TSO4 | O.USO4, [O.CSUM | O.TSO4 | O.USO4, O.CSUM | O.TSO4]),
    (O.CSUM, [O.CSUM]),
    (0, [O(0)]),
])
def test_offload_ladder(requested, ladder):
    assert tdev.offload_ladder(requested) == ladder
    assert all(r & ~O(int(requested)) == 0 for r in ladder if requested is not None)


@pytest.mark.parametrize("value,raw", [
    ("02:00:00:00:00:01", bytes.fromhex("020000000001")),
    ("2:0:0:0:0:a", bytes.fromhex("02000000000a")),
    (bytes(6), bytes(6)),
])
def test_parse_mac(value, raw):
    assert tdev._parse_mac(value, "tap0") == raw


@pytest.mark.parametrize("value", ["02:00:00:00:00", "02:00:00:00:00:01:02", "zz:00:00:00:00:01", "020:0:0:0:0:1", b"12345"])
def test_parse_mac_rejects(value):
    with pytest.raises(ValueError, match="tap0: invalid MAC"):
        tdev._parse_mac(value, "tap0")


def test_flag_names():
    assert tdev.flag_names(TunFlag.TUN | TunFlag.NO_PI) == "TUN|NO_PI"
    assert tdev.flag_names(TunOffload(0)) == "0"
    assert tdev.flag_names(None) == "unknown"


@pytest.mark.parametrize("kw,match", [
    ({"mode": "tan"}, "unknown mode 'tan'"),
    ({"queues": 0}, "queues must be a positive int"),
    ({"queues": 2, "multi_queue": False}, "need multi_queue=True"),
    ({"offloads": O.CSUM}, "offloads need vnet_hdr=True"),
    ({"owner": "no-such-user-tunkit"}, "unknown user"),
])
def test_bad_arguments_are_value_errors_before_any_fd(kw, match):
    before = sd.open_fds()
    with pytest.raises(ValueError, match=match) as exc:
        open_tun("tk0", path="/nonexistent/tun", **kw)
    assert "tk0" in str(exc.value)
    assert sd.open_fds() == before


def test_missing_tun_node_names_path_and_fix(tmp_path):
    path = str(tmp_path / "net" / "tun")
    with pytest.raises(DeviceError) as exc:
        open_tun("tk0", path=path)
    e = exc.value
    assert e.errno == errno.ENOENT and e.device == "tk0"
    assert path in str(e) and "mknod" in str(e) and "create_node=True" in str(e)


# ---------------------------------------------------------------------------
# unprivileged: Queue mechanics on a datagram socketpair standing in for a TUN fd
# ---------------------------------------------------------------------------
@pytest.fixture
def qpair():
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.setblocking(False)
    q = Queue(os.dup(a.fileno()), "fake0", read_size=2048)
    a.close()
    yield q, b
    q.close()
    b.close()


def test_queue_read_timeout_returns_none(qpair):
    q, _peer = qpair
    assert q.read(timeout=0) is None
    assert q.read(timeout=0.01) is None
    assert q.readinto(bytearray(10), timeout=0) is None
    assert q.read_batch(8, timeout=0) == []


def test_queue_reads_packets_whole_and_batches(qpair):
    q, peer = qpair
    pkts = [bytes([i]) * (i + 1) for i in range(5)]
    for p in pkts:
        peer.send(p)
    assert q.read(timeout=1) == pkts[0]
    buf = bytearray(100)
    n = q.readinto(buf, timeout=1)
    assert bytes(buf[:n]) == pkts[1]
    assert q.read_batch(2, timeout=1) == pkts[2:4]
    assert q.read_batch(10, timeout=1) == pkts[4:]


def test_queue_writes(qpair):
    q, peer = qpair
    assert q.write(b"abc") == 3
    assert q.writev([b"hdr", memoryview(b"body")]) == 7
    assert q.write_batch([b"1", b"22", b"333"]) == 3
    got = [peer.recv(100) for _ in range(5)]
    assert got == [b"abc", b"hdrbody", b"1", b"22", b"333"]


def _wait_until_inside(*queues, timeout: float = 5.0) -> None:
    """Wait (bounded) until a reader thread is inside a call on each queue, so that
    closing tests the wake-up of a parked reader, not the refusal at entry."""
    deadline = time.monotonic() + timeout
    while any(q._users < 1 for q in queues):
        assert time.monotonic() < deadline, "the reader never entered its call"
        time.sleep(0.001)


@pytest.mark.parametrize("call", ["read", "read_batch", "readinto"])
def test_close_wakes_a_blocked_reader(qpair, call):
    q, _peer = qpair
    result = []
    started = threading.Event()

    def reader():
        started.set()
        try:
            if call == "readinto":
                q.readinto(bytearray(64))
            else:
                getattr(q, call)()
        except DeviceClosedError as e:
            result.append(e)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    started.wait(5)
    _wait_until_inside(q)
    q.close()
    t.join(timeout=1.0)  # liveness: the reader must return promptly
    assert not t.is_alive()
    assert len(result) == 1 and result[0].device == "fake0"


def test_queue_close_is_idempotent_and_final(qpair):
    q, _peer = qpair
    fd = q.fileno()
    q.close()
    q.close()
    assert q.closed
    with pytest.raises(OSError):
        os.fstat(fd)  # the descriptor was released
    for op in (lambda: q.read(0), lambda: q.write(b"x"), q.fileno, q.detach):
        with pytest.raises(DeviceClosedError):
            op()


def test_queue_fd_outlives_a_call_in_progress(qpair):
    """close() while a call holds the fd: the fd is closed only when that call leaves."""
    q, _peer = qpair
    fd = q._enter()
    q.close()
    os.fstat(fd)  # still open: no reuse race for the call in progress
    q._leave()
    with pytest.raises(OSError):
        os.fstat(fd)


# ---------------------------------------------------------------------------
# privileged: the real kernel, inside a namespace
# ---------------------------------------------------------------------------
NAME_CASES = [
    # (name asked, mode, the kernel's name)
    ("tk7", "tun", "tk7"),
    ("tk%d", "tun", "tk0"),
    (None, "tun", "tun0"),
    ("tkp%d", "tap", "tkp0"),
    (None, "tap", "tap0"),
]


@pytest.mark.parametrize("name,mode,want", NAME_CASES)
def test_create_names_and_modes(netns, name, mode, want):
    with open_tun(name, mode=mode) as dev:
        assert (dev.name, dev.mode) == (want, mode)
        entry = sd.link(want)
        assert entry["ifindex"] == dev.ifindex
        assert entry["link_type"] == ("none" if mode == "tun" else "ether")
        info = entry["linkinfo"]["info_data"]
        assert (info["type"], info["pi"], info["vnet_hdr"], info["multi_queue"], info["persist"]) == (mode, False, False, False, False)
    assert want not in sd.link_names()  # not persistent: gone with its last fd


def test_pi_mode_is_reported_and_carries_tun_pi(netns):
    with open_tun("tk0", pi=True) as dev:
        assert sd.tun_info("tk0")["pi"] is True and dev.pi
        sd.route_via("tk0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"pi", ("198.51.100.7", 9))
        pkt = dev.read(timeout=5)
        assert struct.unpack_from("!HH", pkt) == (0, 0x0800)  # tun_pi: flags 0, ETH_P_IP
        assert pkt[4] >> 4 == 4 and pkt.endswith(b"pi")


def test_fds_are_cloexec_and_nonblocking_only_after_tunsetiff(netns, monkeypatch):
    blocking_at_setiff = []
    real = tifreq.ioctl

    def spy(fd, request, arg):
        if request == TUNSETIFF:
            blocking_at_setiff.append(os.get_blocking(fd))
        return real(fd, request, arg)

    monkeypatch.setattr(tifreq, "ioctl", spy)
    with open_tun("tk0", queues=3) as dev:
        assert blocking_at_setiff == [True, True, True]  # the golang/go#30426 lesson
        for q in dev.queues:
            fd = q.fileno()
            assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
            assert not os.get_blocking(fd)
            assert fcntl.fcntl(q._wake, fcntl.F_GETFD) & fcntl.FD_CLOEXEC


def test_exclusive_name_taken(netns):
    with open_tun("tk0"):
        before = sd.open_fds()
        with pytest.raises(DeviceError) as exc:
            open_tun("tk0")
        assert exc.value.errno == errno.EBUSY and exc.value.device == "tk0"
        assert "name is taken" in str(exc.value)
        with pytest.raises(DeviceError, match="not a tun device|name is taken"):
            open_tun("lo")
        assert sd.open_fds() == before  # every fd released on the failure path


def test_kernel_packet_is_read_byte_exact(netns):
    with open_tun("tk0") as dev:
        sd.route_via("tk0")
        payload = os.urandom(100)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 7)
            s.bind(("198.18.0.1", 40000))
            s.sendto(payload, ("198.51.100.7", 9999))
        pkt = dev.read(timeout=5)
        assert pkt is not None
        _vihl, _tos, _tlen, ident, frag, _ttl, _proto, _csum, _src, _dst = sd.IPV4.unpack_from(pkt)
        assert frag in (0, sd.DF)
        want = sd.ipv4_udp("198.18.0.1", "198.51.100.7", 40000, 9999, payload, ident=ident, ttl=7, frag=frag)
        assert pkt == want


def test_packet_written_reaches_a_socket(netns):
    with open_tun("tk0") as dev, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sd.route_via("tk0")
        s.bind(("198.18.0.1", 5555))
        s.settimeout(5)
        pkts = [sd.ipv4_udp("198.51.100.7", "198.18.0.1", 4000 + i, 5555, b"hello %d" % i, ident=i) for i in range(4)]
        assert dev.write(pkts[0]) == len(pkts[0])
        assert dev.writev([pkts[1][:20], pkts[1][20:28], memoryview(pkts[1])[28:]]) == len(pkts[1])
        assert dev.write_batch(pkts[2:]) == 2
        got = [s.recvfrom(100) for _ in range(4)]
        assert got == [(b"hello %d" % i, ("198.51.100.7", 4000 + i)) for i in range(4)]


def test_device_joins_selectors(netns):
    with open_tun("tk0") as dev, selectors.DefaultSelector() as sel:
        sd.route_via("tk0")
        sel.register(dev, selectors.EVENT_READ)
        assert sel.select(timeout=0) == []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"x", ("198.51.100.7", 9))
        (key, events), = sel.select(timeout=5)
        assert key.fileobj is dev and events == selectors.EVENT_READ
        assert dev.read(timeout=0).endswith(b"x")


def test_read_timeout_on_an_idle_device(netns):
    with open_tun("tk0") as dev:
        sd.route_via("tk0")
        assert dev.read(timeout=0.05) is None
        assert dev.read_batch(4, timeout=0) == []


def test_read_batch_takes_what_is_queued(netns):
    with open_tun("tk0") as dev:
        sd.route_via("tk0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(5):
                s.sendto(b"%d" % i, ("198.51.100.7", 9))
        got = []
        for _ in range(10):  # bounded: the five packets are already queued
            got += dev.read_batch(3, timeout=5)
            if len(got) >= 5:
                break
        assert [p[28:] for p in got] == [b"%d" % i for i in range(5)]


def _numqueues(name):
    info = sd.tun_info(name)
    return info["numqueues"], info["numdisabled"]


def test_multi_queue_add_remove_detach_attach(netns):
    with open_tun("tk%d", queues=3) as dev:
        assert dev.multi_queue and len(dev.queues) == 3
        assert _numqueues(dev.name) == (3, 0)
        assert {tifreq.tun_getiff(q.fileno(), None)[0] for q in dev.queues} == {dev.name}
        new = dev.add_queues(2)
        assert len(new) == 2 and dev.queues[-2:] == new
        assert _numqueues(dev.name) == (5, 0)
        dev.remove_queues(1)
        assert _numqueues(dev.name) == (4, 0)
        victim = dev.queues[1]
        dev.remove_queues([victim])
        assert victim.closed and victim not in dev.queues
        assert _numqueues(dev.name) == (3, 0)
        q = dev.queues[2]
        q.detach()
        assert q.detached and _numqueues(dev.name) == (2, 1)
        assert q.tun_flags() & TunFlag.DETACH_QUEUE
        with pytest.raises(DeviceError, match="already detached") as exc:
            q.detach()
        assert exc.value.errno == errno.EINVAL
        q.attach()
        assert not q.detached and _numqueues(dev.name) == (3, 0)
        with pytest.raises(ValueError, match="one must remain"):
            dev.remove_queues(3)
        with pytest.raises(ValueError, match="not one of this device's"):
            dev.remove_queues([victim])


def test_queues_all_carry_traffic(netns):
    """Each kernel queue gets flows by hash; every packet sent comes out of exactly one queue."""
    with open_tun("tk0", queues=4) as dev:
        sd.route_via("tk0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for port in range(20000, 20032):
                s.sendto(b"q", ("198.51.100.7", port))
        got, per_queue = [], [0] * 4
        with selectors.DefaultSelector() as sel:
            for i, q in enumerate(dev.queues):
                sel.register(q, selectors.EVENT_READ, i)
            for _ in range(200):  # bounded; stops as soon as all 32 are in
                if len(got) >= 32:
                    break
                for key, _ev in sel.select(timeout=1):
                    batch = key.fileobj.read_batch(64, timeout=0)
                    per_queue[key.data] += len(batch)
                    got += batch
        ports = sorted(struct.unpack_from("!H", p, 22)[0] for p in got)
        assert ports == list(range(20000, 20032))
        assert sum(1 for n in per_queue if n) > 1  # flows were spread over several queues


def test_detached_queue_gets_no_packets_but_can_write(netns):
    with open_tun("tk0", queues=2) as dev, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        sd.route_via("tk0")
        s.bind(("198.18.0.1", 5555))
        s.settimeout(5)
        live, off = dev.queues
        off.detach()
        for port in range(30000, 30016):
            s.sendto(b"d", ("198.51.100.7", port))
        got = []
        for _ in range(100):  # bounded: all 16 are queued on the live queue
            got += live.read_batch(64, timeout=1)
            if len(got) >= 16:
                break
        assert len(got) == 16 and off.read(timeout=0) is None
        assert off.write(sd.ipv4_udp("198.51.100.7", "198.18.0.1", 7, 5555, b"via detached")) > 0
        assert s.recvfrom(100) == (b"via detached", ("198.51.100.7", 7))


def test_single_queue_device_refuses_add_queues(netns):
    with open_tun("tk0") as dev:
        with pytest.raises(DeviceError, match="not multi-queue"):
            dev.add_queues(1)


def test_blocked_reader_wakes_when_another_thread_closes(netns):
    dev = open_tun("tk0", queues=2)
    results = {}

    def reader(i, q):
        try:
            q.read()
        except DeviceClosedError as e:
            results[i] = e

    threads = [threading.Thread(target=reader, args=(i, q), daemon=True) for i, q in enumerate(dev.queues)]
    for t in threads:
        t.start()
    _wait_until_inside(*dev.queues)
    dev.close()
    for t in threads:
        t.join(timeout=1.0)  # liveness check, not a speed test
    assert not any(t.is_alive() for t in threads)
    assert sorted(results) == [0, 1] and all(e.device == "tk0" for e in results.values())
    assert "tk0" not in sd.link_names()


def test_removing_a_queue_wakes_its_reader(netns):
    with open_tun("tk0", queues=2) as dev:
        q = dev.queues[1]
        out = []
        t = threading.Thread(target=lambda: out.append(pytest.raises(DeviceClosedError, q.read)), daemon=True)
        t.start()
        _wait_until_inside(q)
        dev.remove_queues([q])
        t.join(timeout=1.0)
        assert not t.is_alive() and len(out) == 1
        assert _numqueues("tk0") == (1, 0)


def test_close_twice_and_use_after_close(netns):
    dev = open_tun("tk0", queues=2)
    queues = dev.queues
    dev.close()
    dev.close()
    assert dev.closed and all(q.closed for q in queues)
    for op in (lambda: dev.read(0), lambda: dev.write(b"x"), dev.fileno, lambda: dev.mtu, lambda: dev.add_queues(1)):
        with pytest.raises(DeviceClosedError):
            op()


def test_write_while_down_is_eio_naming_the_device(netns):
    with open_tun("tk0") as dev:
        pkt = sd.ipv4_udp("198.51.100.7", "198.18.0.1", 1, 2, b"x")
        with pytest.raises(DeviceError) as exc:
            dev.write(pkt)
        assert exc.value.errno == errno.EIO and exc.value.device == "tk0" and "down" in str(exc.value)
        with pytest.raises(DeviceError) as exc:
            dev.write_batch([pkt])
        assert exc.value.errno == errno.EIO and "packet 0" in str(exc.value)


def test_persist_owner_group_attach_delete(netns):
    user = pwd.getpwuid(65534).pw_name
    group = grp.getgrgid(100).gr_name
    with open_tun("tk%d", mode="tap", persist=True, owner=user, group=100) as dev:
        name = dev.name
        assert dev.persist
    info = sd.tun_info(name)  # survived its last fd
    assert (info["persist"], info["user"], info["group"], info["type"]) == (True, user, group, "tap")
    with Device.attach(name) as dev:  # mode detected
        assert (dev.name, dev.mode, dev.persist) == (name, "tap", True)
        assert dev.ifindex == sd.link(name)["ifindex"]
        dev.set_owner(0)
        dev.set_group("root")
        dev.persist = False
        info = sd.tun_info(name)
        assert (info["persist"], info["user"], info["group"]) == (False, "root", "root")
        dev.persist = True
    assert [i.ifname for i in tdev.list_tun_devices()] == [name]
    tdev.delete(name)
    assert name not in sd.link_names()
    with pytest.raises(DeviceError) as exc:
        tdev.delete(name)
    assert exc.value.errno == errno.ENODEV and exc.value.device == name
    assert name not in sd.link_names()  # a failed attach never creates the device


def test_attach_multi_queue_detected_and_mismatch_explained(netns):
    support.ip("tuntap", "add", "dev", "tkm", "mode", "tun", "multi_queue")
    support.ip("tuntap", "add", "dev", "tks", "mode", "tap")
    with Device.attach("tkm", queues=2) as dev:
        assert dev.multi_queue and _numqueues("tkm") == (2, 0)
    with Device.attach("tkm") as dev:
        assert dev.multi_queue
    with pytest.raises(DeviceError, match="is a tap device, not tun") as exc:
        Device.attach("tks", mode="tun")
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(DeviceError, match="multi_queue is False on the device"):
        Device.attach("tks", multi_queue=True)
    with pytest.raises(DeviceError, match="lo: not a TUN/TAP device"):
        Device.attach("lo")
    tdev.delete("tkm")
    tdev.delete("tks", mode="tap")
    assert not {"tkm", "tks"} & sd.link_names()


def test_attach_single_queue_in_use_is_ebusy(netns):
    with open_tun("tk0", persist=True):
        with pytest.raises(DeviceError) as exc:
            Device.attach("tk0")
        assert exc.value.errno == errno.EBUSY and "in use" in str(exc.value)
    tdev.delete("tk0")


def test_from_fd_handed_over_by_another_process(netns):
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    code = (
        "import socket\n"
        "from tunkit.tun.device import open_tun\n"
        "dev = open_tun('tkx%d', mode='tap', vnet_hdr=True, vnet_hdr_len=12, pi=True)\n"
        f"s = socket.socket(fileno={child.fileno()})\n"
        "socket.send_fds(s, [dev.name.encode()], [dev.fileno()])\n"
    )
    with parent, child:
        proc = sd.run_python(code, pass_fds=[child.fileno()])
        assert proc.returncode == 0, proc.stderr
        msg, fds, _flags, _addr = socket.recv_fds(parent, 64, 1)
    name = msg.decode()
    dev = Device.from_fd(fds[0])
    try:
        assert (dev.name, dev.mode, dev.vnet_hdr, dev.vnet_hdr_len, dev.pi) == (name, "tap", True, 12, True)
        assert dev.offloads is None  # the kernel cannot report offloads
        assert dev.ifindex == sd.link(name)["ifindex"]
        assert not os.get_blocking(dev.fileno())
        assert fcntl.fcntl(dev.fileno(), fcntl.F_GETFD) & fcntl.FD_CLOEXEC
        assert name in sd.link_names()  # the child exited; our fd keeps the device
    finally:
        dev.close()
    assert name not in sd.link_names()


def test_from_fd_rejects_what_is_not_an_attached_tun(netns):
    r, w = os.pipe()
    try:
        with pytest.raises(DeviceError, match="not a /dev/net/tun file"):
            Device.from_fd(r)
    finally:
        os.close(r)
        os.close(w)
    fd = os.open(tdev.TUN_PATH, os.O_RDWR | os.O_CLOEXEC)
    try:
        with pytest.raises(DeviceError, match="not attached") as exc:
            Device.from_fd(fd)
        assert exc.value.errno == errno.EBADFD
    finally:
        os.close(fd)


def test_vnet_hdr_negotiation_records_the_accepted_mask(netns):
    with open_tun("tk0", vnet_hdr=True) as dev:
        assert dev.vnet_hdr and dev.vnet_hdr_len == 10
        assert dev.offloads in tdev.OFFLOAD_LADDER  # what this kernel took, first rung on 6.2+
        assert sd.tun_info("tk0")["vnet_hdr"] is True
        sd.route_via("tk0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.sendto(b"vnet", ("198.51.100.7", 9))
        pkt = dev.read(timeout=5)
        assert len(pkt) == 10 + 28 + 4 and pkt[10] >> 4 == 4 and pkt.endswith(b"vnet")
        flags, gso_type = pkt[0], pkt[1]
        assert gso_type == 0 and flags in (0, 1, 2)  # GSO_NONE; checksum maybe partial/valid


class RefusingIoctl:
    """Wraps tifreq.ioctl: TUNSETOFFLOAD with a refused mask fails EINVAL; records what was set."""

    def __init__(self, refuse):
        self.refuse = refuse
        self.real = tifreq.ioctl
        self.offloads: list[tuple[int, int]] = []

    def __call__(self, fd, request, arg):
        if request == TUNSETOFFLOAD:
            if self.refuse(TunOffload(arg)):
                raise OSError(errno.EINVAL, "refused by test")
            self.offloads.append((fd, arg))
        return self.real(fd, request, arg)


@pytest.mark.parametrize("refuse,want", [
    (lambda m: bool(m & (O.USO4 | O.USO6)), NO_USO),  # a kernel before 6.2
    (lambda m: bool(m & (O.USO4 | O.USO6 | O.TSO_ECN)), PLAIN_TSO),
])
def test_offload_ladder_steps_down_and_replays_on_every_queue(netns, monkeypatch, refuse, want):
    spy = RefusingIoctl(refuse)
    monkeypatch.setattr(tifreq, "ioctl", spy)
    with open_tun("tk0", vnet_hdr=True, queues=2) as dev:
        new = dev.add_queues(2)
        assert dev.offloads == want and dev.vnet_hdr
        fds = [q.fileno() for q in dev.queues]
        assert spy.offloads == [(fd, int(want)) for fd in fds]  # negotiated once, replayed on each extra queue
        assert len(new) == 2 and _numqueues("tk0") == (4, 0)


def test_offload_ladder_all_refused_reopens_without_vnet_hdr(netns, monkeypatch):
    monkeypatch.setattr(tifreq, "ioctl", RefusingIoctl(lambda m: True))
    before = sd.open_fds()
    with open_tun("tk%d", vnet_hdr=True, queues=2) as dev:
        assert (dev.vnet_hdr, dev.offloads, dev.vnet_hdr_len) == (False, O(0), 0)
        assert sd.tun_info(dev.name)["vnet_hdr"] is False
        assert _numqueues(dev.name) == (2, 0)
        assert [e["ifname"] for e in support.ip_json("link", "show") if e["ifname"] != "lo"] == [dev.name]
    assert sd.open_fds() == before


def test_explicit_offload_mask_is_tried_first(netns, monkeypatch):
    spy = RefusingIoctl(lambda m: False)
    monkeypatch.setattr(tifreq, "ioctl", spy)
    with open_tun("tk0", vnet_hdr=True, offloads=O.CSUM) as dev:
        assert dev.offloads == O.CSUM and [m for _, m in spy.offloads] == [int(O.CSUM)]


def test_vnet_hdr_len_set_and_bad_size_releases_fds(netns):
    with open_tun("tk0", vnet_hdr=True, vnet_hdr_len=12, queues=2) as dev:
        assert dev.vnet_hdr_len == 12
        assert all(tifreq.get_int(q.fileno(), TUNGETVNETHDRSZ) == 12 for q in dev.queues)
    before = sd.open_fds()
    with pytest.raises(DeviceError, match="vnet header size to 8") as exc:
        open_tun("tk0", vnet_hdr=True, vnet_hdr_len=8)
    assert exc.value.errno == errno.EINVAL
    assert sd.open_fds() == before and "tk0" not in sd.link_names()


def test_failure_after_persist_leaves_nothing(netns, monkeypatch):
    real = tifreq.ioctl

    def fail_extra_queue(fd, request, arg):
        if request == TUNSETVNETHDRSZ and fail_extra_queue.calls == 1:
            raise OSError(errno.ENOMEM, "test")
        if request == TUNSETVNETHDRSZ:
            fail_extra_queue.calls += 1
        return real(fd, request, arg)

    fail_extra_queue.calls = 0
    monkeypatch.setattr(tifreq, "ioctl", fail_extra_queue)
    before = sd.open_fds()
    with pytest.raises(DeviceError) as exc:
        open_tun("tk0", vnet_hdr=True, queues=3, persist=True)
    assert exc.value.errno == errno.ENOMEM
    assert sd.open_fds() == before and "tk0" not in sd.link_names()


PROPERTY_CASES = [
    # (attribute, value, ip -j key, expected in ip -j)
    ("mtu", 1280, "mtu", 1280),
    ("mtu", 9000, "mtu", 9000),
    ("txqueuelen", 42, "txqlen", 42),
    ("txqueuelen", 0, "txqlen", None),  # ip -j omits txqlen 0
]


@pytest.mark.parametrize("attr,value,key,want", PROPERTY_CASES)
def test_properties_match_ip(netns, attr, value, key, want):
    with open_tun("tk0") as dev:
        setattr(dev, attr, value)
        assert sd.link("tk0").get(key) == want
        assert getattr(dev, attr) == value
        support.ip("link", "set", "dev", "tk0", key if key != "txqlen" else "txqueuelen", str(value + 1))
        assert getattr(dev, attr) == value + 1  # and the other way: ip sets, tunkit reads


def test_flags_up_down_match_ip(netns):
    with open_tun("tk0") as dev:
        assert dev.flags == IfFlag.POINTOPOINT | IfFlag.MULTICAST | IfFlag.NOARP
        assert set(sd.link("tk0")["flags"]) == {"POINTOPOINT", "MULTICAST", "NOARP"}
        dev.up()
        assert "UP" in sd.link("tk0")["flags"] and dev.is_up
        dev.set_flags(dev.flags | IfFlag.PROMISC)
        assert "PROMISC" in sd.link("tk0")["flags"]
        dev.down()
        assert "UP" not in sd.link("tk0")["flags"] and not dev.is_up
        support.ip("link", "set", "dev", "tk0", "up")
        assert dev.flags & IfFlag.UP


def test_mac_on_tap_and_none_on_tun(netns):
    with open_tun("tk0", mode="tap") as tap, open_tun("tk1") as tun:
        assert tap.mac == sd.link("tk0")["address"]
        tap.mac = "02:00:5e:00:53:01"
        assert sd.link("tk0")["address"] == "02:00:5e:00:53:01" == tap.mac
        support.ip("link", "set", "dev", "tk0", "address", "02:00:5e:00:53:02")
        assert tap.mac == "02:00:5e:00:53:02"
        assert tun.mac is None and "address" not in sd.link("tk1")
        with pytest.raises(ValueError, match="tk1: a TUN device has no MAC"):
            tun.mac = "02:00:00:00:00:01"


def test_bad_mtu_is_a_device_error_naming_value(netns):
    with open_tun("tk0") as dev:
        with pytest.raises(DeviceError) as exc:
            dev.mtu = 70000
        assert exc.value.errno == errno.EINVAL and "tk0" in str(exc.value) and "70000" in str(exc.value)


def test_properties_work_from_a_thread_in_another_namespace(netns, netns_factory):
    """The control socket lives in the device's namespace, whatever thread asks."""
    other = netns_factory("other")
    with open_tun("tk0") as dev:
        dev.mtu = 1300
        out = []

        def elsewhere():
            with other.entered():
                with pytest.raises(DeviceError):  # a socket made here does not see tk0 ...
                    tifreq.interface_probe("tk0", SIOCGIFMTU, "get MTU")
                out.append(dev.mtu)  # ... the device's own control socket does

        t = threading.Thread(target=elsewhere)
        t.start()
        t.join(10)
        assert out == [1300]


def _unprivileged_attempts(path):
    out = {}
    try:
        open_tun("tkn0", path=path)
    except DeviceError as e:
        out["create"] = [e.errno, str(e)]
    with Device.attach("tkown", path=path) as dev:
        out["attach_owned"] = dev.name
    try:
        Device.attach("tkroot", path=path)
    except DeviceError as e:
        out["attach_other"] = [e.errno, str(e)]
    return out


def test_missing_privilege_is_eperm_and_owner_may_attach(netns, tmp_path):
    # tkroot is owned by root; a device with neither owner nor group may be attached by anyone
    # who can open the clone device (the kernel checks owner/group only when set).
    with open_tun("tkown", persist=True, owner=65534), open_tun("tkroot", persist=True, owner=0):
        pass
    path = sd.world_usable_tun_node()  # what an unprivileged user can open, as on a stock distro
    out = sd.run_as(65534, lambda: _unprivileged_attempts(path))
    assert "child_error" not in out, out
    assert out["create"][0] == errno.EPERM and "tkn0" in out["create"][1] and "CAP_NET_ADMIN" in out["create"][1]
    assert out["attach_owned"] == "tkown"
    assert out["attach_other"][0] == errno.EPERM and "tkroot" in out["attach_other"][1]
    assert "tkn0" not in sd.link_names()
    tdev.delete("tkown")
    tdev.delete("tkroot")


def test_create_tun_node(netns, tmp_path):
    path = str(tmp_path / "dev" / "net" / "tun")
    assert tdev.create_tun_node(path) is True
    st = os.stat(path)
    assert (os.major(st.st_rdev), os.minor(st.st_rdev)) == (10, 200) and (st.st_mode & 0o777) == 0o666
    assert tdev.create_tun_node(path) is False
    nodev = os.statvfs(str(tmp_path)).f_flag & os.ST_NODEV
    other = str(tmp_path / "other" / "tun")
    if nodev:  # a node on a nodev mount cannot be opened: the error must say so
        with pytest.raises(DeviceError, match="no permission"):
            open_tun("tk0", path=other, create_node=True)
    else:
        with open_tun("tk0", path=other, create_node=True) as dev:
            assert dev.name == "tk0" and "tk0" in sd.link_names()


def test_list_tun_devices_sees_this_namespace_not_the_host(netns):
    assert tdev.list_tun_devices() == []
    with open_tun("tk%d", queues=2, vnet_hdr=True) as a, open_tun("tkp", mode="tap", pi=True):
        links = {i.ifname: i for i in tdev.list_tun_devices()}
        assert set(links) == {a.name, "tkp"}
        for name, link in links.items():
            info, data = link.linkinfo.data, sd.tun_info(name)
            assert ({1: "tun", 2: "tap"}[info.type], info.pi, info.vnet_hdr, info.multi_queue, info.persist) == (
                data["type"], data["pi"], data["vnet_hdr"], data["multi_queue"], data["persist"])
            assert link.index == sd.link(name)["ifindex"]
