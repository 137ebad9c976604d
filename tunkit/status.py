"""Counters of a running tunnel over a unix socket: server, client and merging; does I/O.

A running tunkit instance listens on a unix stream socket (by default
``/run/tunkit/<device>.sock``, mode 0600).  A client connects and reads one
JSON document followed by a newline; the server closes the connection.
:func:`merge` sums the per-worker documents of a multi-worker instance into
one (counters added, per peer and per drop reason).

    srv = StatusServer(path, tunnel.status)
    loop.add_reader(srv, srv.on_readable)
    ...
    query(path)  # -> {"peers": [...], "drops": {...}, ...}
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Iterable

DEFAULT_DIR = "/run/tunkit"


def socket_path(device: str, directory: str = DEFAULT_DIR) -> str:
    """Where the instance serving ``device`` listens."""
    return os.path.join(directory, f"{device}.sock")


class StatusServer:
    """Answers every connection with ``provider()`` as JSON; removes its socket file on close."""

    def __init__(self, path: str, provider: Callable[[], dict]) -> None:
        self.path = path
        self.provider = provider
        os.makedirs(os.path.dirname(path) or ".", mode=0o755, exist_ok=True)
        try:
            os.unlink(path)  # a stale socket from an instance that died
        except FileNotFoundError:  # the normal case
            pass
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old = os.umask(0o177)
            try:
                self._sock.bind(path)
            finally:
                os.umask(old)
            self._sock.listen(8)
            self._sock.setblocking(False)
        except BaseException:
            self._sock.close()
            raise

    def fileno(self) -> int:
        return self._sock.fileno()

    def on_readable(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except BlockingIOError:  # no more pending connections
                return
            with conn:
                conn.settimeout(1.0)
                try:
                    conn.sendall(json.dumps(self.provider(), separators=(",", ":")).encode() + b"\n")
                except OSError:  # the client went away or stalled: its problem, not the tunnel's
                    pass

    def close(self) -> None:
        if self._sock.fileno() >= 0:
            self._sock.close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:  # already removed (e.g. by a new instance)
                pass


def query(path: str, timeout: float = 3.0) -> dict:
    """Ask the instance listening on ``path`` for its counters."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return json.loads(b"".join(chunks))


_PEER_COUNTERS = ("rx_packets", "rx_bytes", "tx_packets", "tx_bytes")


def _add(into: dict, more: dict) -> None:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v


def merge(docs: Iterable[dict]) -> dict:
    """One status document from the per-worker ones: counters summed, peers matched by name."""
    docs = list(docs)
    if not docs:
        return {"workers": 0, "peers": [], "drops": {}}
    out = {k: v for k, v in docs[0].items() if k not in ("peers", "drops", "tun", "udp", "sender")}
    out["workers"] = len(docs)
    out["drops"], out["tun"], out["udp"] = {}, {}, {}
    peers: dict[str, dict] = {}
    for d in docs:
        _add(out["drops"], d.get("drops", {}))
        _add(out["tun"], d.get("tun", {}))
        for k, v in d.get("udp", {}).items():
            if isinstance(v, bool):
                out["udp"][k] = out["udp"].get(k, True) and v
            else:
                out["udp"][k] = out["udp"].get(k, 0) + v
        for p in d.get("peers", []):
            q = peers.get(p["name"])
            if q is None:
                peers[p["name"]] = q = {k: v for k, v in p.items() if k not in _PEER_COUNTERS and k != "drops"}
                q.update({k: 0 for k in _PEER_COUNTERS}, drops={})
            for k in _PEER_COUNTERS:
                q[k] += p.get(k, 0)
            _add(q["drops"], p.get("drops", {}))
    out["peers"] = list(peers.values())
    return out
