"""The UAPI socket server in a temporary directory: modes, stale and live sockets, many, slow and bad clients.

The server is driven in the test's own thread (``pump``) with a fake clock
for its timeouts, so nothing here races the CPU.  ``wg`` against the real
``/var/run/wireguard`` is tests/test_uapi_wg.py.
"""

from __future__ import annotations

import os
import random
import resource
import socket
import stat
import threading
import time

import pytest

from tunkit.crypto import LibCrypto
from tunkit.overlay.uapi_server import UapiInUse, UapiServer, serve
from tunkit.wireguard import Engine
from tunkit.wireguard import uapi as u

CRYPTO = LibCrypto()
KEY_A = bytes.fromhex("a8" + "11" * 30 + "51")


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def srv(tmp_path):
    clock = Clock()
    eng = Engine(KEY_A, CRYPTO, wall_offset=1.7e9, random=random.Random(3).randbytes)
    server = UapiServer(f"tk{os.getpid()}", eng, directory=str(tmp_path / "wireguard"), clock=clock,
                        request_timeout=5, idle_timeout=30)
    server.clock_ = clock
    yield server
    server.close()


def connect(server) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(server.path)
    s.setblocking(False)
    return s


def pump(server, until, rounds: int = 2000) -> None:
    for _ in range(rounds):
        server.handle_events()
        if until():
            return
        time.sleep(0.001)
    raise AssertionError("condition not reached")


def read_answer(server, s: socket.socket) -> bytes:
    """Everything up to and including the blank line that ends an answer (or b'' when closed)."""
    buf = bytearray()

    def done():
        try:
            chunk = s.recv(1 << 20)
        except BlockingIOError:
            return False
        if not chunk:
            return True
        buf.extend(chunk)
        return buf.endswith(b"\n\n")

    pump(server, done)
    return bytes(buf)


def closed_by_server(server, s: socket.socket) -> bool:
    def gone():
        try:
            return s.recv(4096) == b""
        except BlockingIOError:
            return False
        except ConnectionResetError:
            return True
    pump(server, gone)
    return True


SET = b"set=1\nlisten_port=51820\npublic_key=" + bytes(range(1, 33)).hex().encode() + b"\nallowed_ip=198.18.0.0/24\n\n"


def test_socket_file_mode_directory_and_removal(srv, tmp_path):
    st = os.stat(srv.path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700  # as wireguard-go (umask 077)
    assert stat.S_IMODE(os.stat(tmp_path / "wireguard").st_mode) == 0o755 & ~_umask()
    assert srv.clients == {}
    srv.close()
    assert not os.path.exists(srv.path)
    srv.close()  # idempotent


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_a_live_socket_is_refused_a_stale_one_replaced_a_file_left_alone(srv, tmp_path):
    d = str(tmp_path / "wireguard")
    with pytest.raises(UapiInUse, match="another live process"):
        UapiServer(srv.name, srv.engine, directory=d)
    stale = os.path.join(d, "stale0.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()  # the file stays, nobody listens: a dead process's socket
    with UapiServer("stale0", srv.engine, directory=d) as other:
        c = connect(other)
        c.sendall(b"get=1\n\n")
        assert read_answer(other, c).endswith(b"errno=0\n\n")
        c.close()
    assert not os.path.exists(stale)
    plain = os.path.join(d, "plain0.sock")
    open(plain, "w").close()
    with pytest.raises(UapiInUse, match="not a socket"):
        UapiServer("plain0", srv.engine, directory=d)
    assert os.path.exists(plain)
    with pytest.raises(ValueError, match="interface name"):
        UapiServer("../etc/x", srv.engine, directory=d)


def test_close_does_not_remove_a_socket_another_server_put_in_its_place(srv, tmp_path):
    os.unlink(srv.path)
    with UapiServer(srv.name, srv.engine, directory=str(tmp_path / "wireguard")):
        srv.close()
        assert os.path.exists(srv.path)


def test_set_then_get_and_errno_on_the_socket(srv):
    c = connect(srv)
    c.sendall(SET)
    assert read_answer(srv, c) == b"errno=0\n\n"
    c.sendall(b"get=1\n\n")
    ans = read_answer(srv, c)
    assert b"listen_port=51820\n" in ans and b"allowed_ip=198.18.0.0/24\n" in ans and ans.endswith(b"errno=0\n\n")
    c.sendall(b"set=1\nlisten_port=65536\n\n")
    assert read_answer(srv, c) == b"errno=-22\n\n"
    assert srv.engine.listen_port == 51820
    c.sendall(b"nonsense\n")
    assert closed_by_server(srv, c)
    c.close()


def test_200_clients_at_once_each_answered(srv):
    clients = []
    for _ in range(200):
        clients.append(connect(srv))
        srv.handle_events()  # accept as they come: a full backlog would make connect() wait
    for i, c in enumerate(clients):
        c.sendall(SET if i % 2 else b"get=1\n\n")
    answers = [read_answer(srv, c) for c in clients]
    assert all(a.endswith(b"errno=0\n\n") for a in answers)
    for c in clients:
        c.close()
    pump(srv, lambda: not srv.clients)


def test_more_clients_than_the_limit_are_closed_the_others_served(tmp_path):
    eng = Engine(KEY_A, CRYPTO, wall_offset=1.7e9)
    with UapiServer("lim0", eng, directory=str(tmp_path), max_clients=3) as server:
        clients = []
        for _ in range(5):
            clients.append(connect(server))
            server.handle_events()
        pump(server, lambda: len(server.clients) == 3)
        closed = 0
        for c in clients:
            try:
                c.sendall(b"get=1\n\n")
            except BrokenPipeError:
                pass  # closed by the server already
            ans = read_answer(server, c)
            closed += ans == b""
            assert ans in (b"", b"private_key=" + KEY_A.hex().encode() + b"\nerrno=0\n\n")
        assert closed == 2


def test_half_a_request_and_staying_connected_times_out_with_nothing_applied(srv):
    before = u.format_get(srv.engine)
    c = connect(srv)
    c.sendall(b"set=1\nlisten_port=1\n")  # no blank line, and the client waits
    pump(srv, lambda: len(srv.clients) == 1 and next(iter(srv.clients.values())).conn.in_request)
    other = connect(srv)
    other.sendall(b"get=1\n\n")
    assert read_answer(srv, other) == before  # the stalled client blocks nobody
    srv.clock_.t += 6  # past request_timeout
    srv.handle_events()
    assert closed_by_server(srv, c)
    assert u.format_get(srv.engine) == before
    srv.clock_.t += 31  # the other one idles out too
    srv.handle_events()
    assert not srv.clients


def test_a_half_closed_client_gets_its_answer_then_eof(srv):
    c = connect(srv)
    c.sendall(b"get=1\n\n")
    c.shutdown(socket.SHUT_WR)
    assert read_answer(srv, c).endswith(b"errno=0\n\n")
    assert closed_by_server(srv, c)
    c = connect(srv)
    c.sendall(b"set=1\nlisten_port=77\n")  # half-closed before the blank line: refused, not applied
    c.shutdown(socket.SHUT_WR)
    assert read_answer(srv, c) == b"errno=-71\n\n" and srv.engine.listen_port == 0


def test_a_client_that_never_reads_its_answers_is_not_served_more_and_times_out(srv):
    lines = [b"set=1"] + [b"public_key=%s\nallowed_ip=10.%d.%d.0/24" % (os.urandom(32).hex().encode(), i >> 8, i & 255)
                          for i in range(2000)]
    c = connect(srv)
    c.sendall(b"\n".join(lines) + b"\n\n")
    assert read_answer(srv, c) == b"errno=0\n\n"
    c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.sendall(b"get=1\n\n" * 20)  # pipelined; each answer is about 400 kB and the client reads none
    pump(srv, lambda: any(cl.out for cl in srv.clients.values()))
    other = connect(srv)
    other.sendall(b"get=1\n\n")
    assert read_answer(srv, other).endswith(b"errno=0\n\n")
    (slow,) = [cl for cl in srv.clients.values() if cl.out]
    assert len(slow.out) < 25 << 20
    srv.clock_.t += 6
    srv.handle_events()
    assert slow.sock.fileno() == -1  # closed


def test_a_100_mb_request_is_refused_and_memory_stays_bounded(srv):
    before = u.format_get(srv.engine)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(srv.path)
    result = {}

    def flood():
        chunk = b"listen_port=1\n" * 75000  # about 1 MB
        sent = 0
        try:
            c.sendall(b"set=1\n")
            while sent < 100 << 20:
                c.sendall(chunk)
                sent += len(chunk)
        except OSError as e:
            result["error"] = e.errno
        result["sent"] = sent

    t = threading.Thread(target=flood)
    t.start()
    pump(srv, lambda: not t.is_alive(), rounds=100000)
    t.join()
    assert result["sent"] < 100 << 20 and "error" in result  # cut off, not swallowed
    assert u.format_get(srv.engine) == before and not srv.clients
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0 < 64 << 10  # kB: under 64 MB more
    c.close()


def test_the_servers_request_budget_across_clients(tmp_path):
    eng = Engine(KEY_A, CRYPTO, wall_offset=1.7e9)
    with UapiServer("bud0", eng, directory=str(tmp_path), budget=4000) as server:
        a, b = connect(server), connect(server)
        a.sendall(b"set=1\n" + b"listen_port=1\n" * 200)  # 2.8 kB, no blank line yet
        pump(server, lambda: server._buffered > 2000)
        b.sendall(b"set=1\n" + b"listen_port=2\n" * 200)
        assert read_answer(server, b) == b"errno=%d\n\n" % u.ENOMEM
        a.sendall(b"\n")
        assert read_answer(server, a) == b"errno=0\n\n" and eng.listen_port == 1
        assert server._buffered == 0


def test_serve_runs_a_server_alone_and_registers_with_any_selector(srv):
    done = threading.Event()
    t = threading.Thread(target=serve, args=(srv,), kwargs={"until": done.is_set, "timeout": 30, "tick": 0.05})
    t.start()
    try:
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.settimeout(10)
        c.connect(srv.path)
        c.sendall(SET)
        assert c.recv(100) == b"errno=0\n\n"
        c.close()
    finally:
        done.set()
        t.join()
