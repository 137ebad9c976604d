"""The WireGuard UAPI socket (``/var/run/wireguard/NAME.sock``) that ``wg`` talks to, served without blocking; does I/O.

    server = UapiServer("wg0", engine)      # binds the socket (a live one is refused, a stale one replaced)
    loop.add_reader(server, server.handle_events)   # any selector: server.fileno() is an epoll fd
    loop.call_every(1.0, server.handle_events)      # timeouts (or call it by server.next_deadline())
    ...
    server.close()                          # closes every client and removes the socket file

The protocol is :mod:`tunkit.wireguard.uapi` (pure); this module only moves
bytes.  Every socket is non-blocking and :meth:`UapiServer.handle_events`
never waits, so the data path's loop that calls it is never stalled: each
client may hold at most one request being received (bounded by the limits in
``uapi``) and the answers not yet written; all clients together at most
``budget`` bytes of requests.  A client that does not finish a request within
``request_timeout``, stops reading answers for ``request_timeout``, or sits
idle for ``idle_timeout`` is disconnected.  Sets are applied to the engine
through :meth:`tunkit.wireguard.Engine.apply`, one at a time, all or nothing.
:func:`serve` runs a server alone (tests, a process with no data path).
"""

from __future__ import annotations

import errno as _errno
import os
import selectors
import socket
import stat
import time

from tunkit.ifname import validate_name
from tunkit.wireguard.uapi import ENOMEM, UapiConnection, format_get, handle_set

__all__ = ["SOCKET_DIR", "MAX_CLIENTS", "MAX_BUFFERED_BYTES", "UapiServer", "UapiInUse", "serve", "socket_path",
           "request"]

SOCKET_DIR = "/var/run/wireguard"  # wireguard-go's (ipc/uapi_unix.go); directory 0755, socket 0700
MAX_CLIENTS = 256                  # connections at once; more are accepted and closed at once
MAX_BUFFERED_BYTES = 32 << 20      # requests being received, all clients together -> ENOMEM, closed
MAX_OUTPUT_BYTES = 64 << 20        # answers not yet read, all clients together: past it a get closes its client
MAX_CLIENT_OUTPUT = 16 << 20       # answers one client has not read (it pipelined requests): past it, closed
REQUEST_TIMEOUT = 10.0             # seconds to finish a request (or to read its answer)
IDLE_TIMEOUT = 60.0                # seconds a connection may sit between requests
_READ = 65536


class UapiInUse(OSError):
    """Another live process serves this interface's socket (as wireguard-go, tunkit will not take it over)."""


def socket_path(name: str, directory: str = SOCKET_DIR) -> str:
    validate_name(name, template=False)
    return os.path.join(directory, f"{name}.sock")


class _Client:
    __slots__ = ("sock", "conn", "out", "deadline", "eof", "counted")

    def __init__(self, sock: socket.socket, now: float, idle: float) -> None:
        self.sock = sock
        self.conn = UapiConnection()
        self.out = bytearray()
        self.deadline = now + idle
        self.eof = False
        self.counted = 0  # this client's share of the server's request budget


class UapiServer:
    """One interface's UAPI socket, serving ``engine`` (a :class:`tunkit.wireguard.Engine`).

    ``prepare(config)`` is passed to ``Engine.apply`` (the data path binds a
    new ``listen_port`` / sets ``fwmark`` there; an OSError answers
    EADDRINUSE and changes nothing).  ``on_applied(applied)`` is called after
    each successful set.  ``log(message)`` receives one line per refused
    request.  ``clock`` is monotonic seconds.
    """

    def __init__(self, name: str, engine, *, directory: str = SOCKET_DIR, prepare=None, on_applied=None, log=None,
                 clock=time.monotonic, max_clients: int = MAX_CLIENTS, budget: int = MAX_BUFFERED_BYTES,
                 request_timeout: float = REQUEST_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT) -> None:
        self.name = name
        self.path = socket_path(name, directory)
        self.engine = engine
        self.prepare, self.on_applied, self.log, self.clock = prepare, on_applied, log, clock
        self.max_clients, self.budget = max_clients, budget
        self.request_timeout, self.idle_timeout = request_timeout, idle_timeout
        self.clients: dict[int, _Client] = {}
        self._buffered = 0
        self._output = 0
        self._listener = self._listen(directory)
        self._inode = os.stat(self.path).st_ino
        self._sel = selectors.EpollSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, None)

    # ------------------------------------------------------------ socket file

    def _listen(self, directory: str) -> socket.socket:
        os.makedirs(directory, 0o755, exist_ok=True)
        for attempt in (1, 2):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
            os.fchmod(s.fileno(), 0o700)  # the mode bind gives the file (wireguard-go: umask 077); no umask race
            try:
                s.bind(self.path)
                s.listen(socket.SOMAXCONN)
                return s
            except OSError as e:
                s.close()
                if e.errno != _errno.EADDRINUSE or attempt == 2:
                    raise
            self._remove_stale()
        raise AssertionError("unreachable")

    def _remove_stale(self) -> None:
        st = os.lstat(self.path)
        if not stat.S_ISSOCK(st.st_mode):
            raise UapiInUse(_errno.EEXIST, f"{self.path} exists and is not a socket; not removed")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        probe.settimeout(1.0)
        try:
            probe.connect(self.path)
        except OSError:
            os.unlink(self.path)  # nobody listens: a dead process's socket
            return
        finally:
            probe.close()
        raise UapiInUse(_errno.EADDRINUSE, f"{self.path} is served by another live process (is {self.name} up?)")

    # ------------------------------------------------------------ loop integration

    def fileno(self) -> int:
        """An fd that is readable whenever :meth:`handle_events` has work (the inner epoll)."""
        return self._sel.fileno()

    def next_deadline(self) -> float | None:
        """The earliest client timeout (monotonic seconds), or None with no client."""
        return min((c.deadline for c in self.clients.values()), default=None)

    def handle_events(self) -> None:
        """Accept, read, answer and time out whatever is ready; never blocks."""
        for key, mask in self._sel.select(0):
            if key.data is None:
                self._accept()
            else:
                c = key.data
                if mask & selectors.EVENT_WRITE:
                    self._write(c)
                if mask & selectors.EVENT_READ and c.sock.fileno() in self.clients and not c.out:
                    self._read(c)
        now = self.clock()
        for c in [c for c in self.clients.values() if c.deadline <= now]:
            self._drop(c, "timed out")

    def _accept(self) -> None:
        for _ in range(64):
            try:
                s, _addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: try again on the next event
                self._note(f"accept failed: {e}")
                return
            if len(self.clients) >= self.max_clients:
                self._note(f"more than {self.max_clients} clients; one closed")
                s.close()
                continue
            s.setblocking(False)
            c = _Client(s, self.clock(), self.idle_timeout)
            self.clients[s.fileno()] = c
            self._sel.register(s, selectors.EVENT_READ, c)

    def _read(self, c: _Client) -> None:
        try:
            data = c.sock.recv(_READ)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return self._drop(c)
        if not data:
            c.eof = True
        now = self.clock()
        for req in c.conn.receive_data(data):
            if req.op == "get":
                if self._output > MAX_OUTPUT_BYTES or len(c.out) > MAX_CLIENT_OUTPUT:
                    return self._drop(c, f"answers not read ({len(c.out)} bytes queued, {self._output} in all)")
                self._send(c, format_get(self.engine))
            elif req.op == "set":
                err, msg = handle_set(self.engine, req.lines, now=now, prepare=self.prepare)
                if err:
                    self._note(f"set refused, nothing changed: {msg}")
                elif self.on_applied is not None:
                    self.on_applied(self.engine)
                self._send(c, b"errno=%d\n\n" % err)
            else:
                self._note(f"request refused: {req.message}")
                self._send(c, b"errno=%d\n\n" % req.errno)
        self._account(c)
        c.deadline = now + (self.request_timeout if c.conn.in_request or c.out else self.idle_timeout)
        self._write(c)

    def _account(self, c: _Client) -> None:
        self._buffered += c.conn.pending - c.counted
        c.counted = c.conn.pending
        if self._buffered > self.budget and c.counted:
            self._note(f"requests being received exceed {self.budget} bytes; a client closed")
            c.conn.closed = True
            self._buffered -= c.counted
            c.counted = 0
            self._send(c, b"errno=%d\n\n" % ENOMEM)

    def _send(self, c: _Client, data: bytes) -> None:
        c.out += data
        self._output += len(data)

    def _write(self, c: _Client) -> None:
        """Write what is queued; then wait for reading (nothing queued) or writing (the rest), or close."""
        if c.out:
            try:
                n = c.sock.send(c.out)
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError:
                return self._drop(c)
            del c.out[:n]
            self._output -= n
            if n:
                c.deadline = self.clock() + (self.request_timeout if c.out or c.conn.in_request else self.idle_timeout)
        if c.out:  # a client reads its answers before it may send more (bounds what it makes us queue)
            self._sel.modify(c.sock, selectors.EVENT_WRITE, c)
        elif c.conn.closed or c.eof:
            self._drop(c)
        else:
            self._sel.modify(c.sock, selectors.EVENT_READ, c)

    def _drop(self, c: _Client, why: str | None = None) -> None:
        if why:
            self._note(f"client {why}; closed")
        if self.clients.pop(c.sock.fileno(), None) is None:
            return
        self._buffered -= c.counted
        self._output -= len(c.out)
        self._sel.unregister(c.sock)
        c.sock.close()

    def _note(self, message: str) -> None:
        if self.log is not None:
            self.log(f"{self.name}: UAPI: {message}")

    # ------------------------------------------------------------ closing

    def close(self) -> None:
        """Close every client and the listener; remove the socket file if it is still ours."""
        if self._listener is None:
            return
        for c in list(self.clients.values()):
            self._drop(c)
        self._sel.close()
        self._listener.close()
        self._listener = None
        try:
            if os.stat(self.path).st_ino == self._inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass

    @property
    def closed(self) -> bool:
        return self._listener is None

    def __enter__(self) -> "UapiServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def serve(server: UapiServer, *, until=None, timeout: float | None = None, tick: float = 0.5) -> None:
    """Run ``server`` alone until ``until()`` is true or ``timeout`` seconds passed (both optional)."""
    sel = selectors.DefaultSelector()
    sel.register(server.fileno(), selectors.EVENT_READ)
    end = None if timeout is None else time.monotonic() + timeout
    try:
        while not server.closed and not (until is not None and until()):
            wait = tick
            dl = server.next_deadline()
            if dl is not None:
                wait = max(0.0, min(wait, dl - server.clock()))
            if end is not None:
                left = end - time.monotonic()
                if left <= 0:
                    return
                wait = min(wait, left)
            sel.select(wait)
            server.handle_events()
    finally:
        sel.close()


def request(path: str, data: bytes, *, timeout: float = 10.0) -> bytes:
    """A client: send one request on a new connection to ``path`` and return its answer.

    The answer ends with its blank line, or is what came before the server
    closed the connection (``b""`` when it answered nothing).
    """
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(timeout)
        s.connect(path)
        try:
            s.sendall(data)
        except BrokenPipeError:
            pass  # closed early (a refused request); what it answered is still readable
        answer = bytearray()
        while not answer.endswith(b"\n\n"):
            try:
                chunk = s.recv(1 << 20)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        return bytes(answer)
