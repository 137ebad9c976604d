"""Counters of a running tunnel over a unix socket: server, client and merging; does I/O.

A running tunkit instance listens on a unix stream socket (by default
``/run/tunkit/<device>.sock``, mode 0600 in a directory made 0755: only the
instance's own user, normally root, may connect).  A client connects and reads one
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
import logging
import os
import socket
import stat
import struct
from collections.abc import Callable, Iterable

DEFAULT_DIR = "/run/tunkit"

log = logging.getLogger("tunkit.overlay.status")


def socket_path(device: str, directory: str = DEFAULT_DIR) -> str:
    """Where the instance serving ``device`` listens."""
    return os.path.join(directory, f"{device}.sock")


class StatusServer:
    """Answers every connection with ``provider()`` as JSON; removes its socket file on close."""

    def __init__(self, path: str, provider: Callable[[], dict]) -> None:
        self.path = path
        self.provider = provider
        directory = os.path.dirname(path) or "."
        os.makedirs(directory, mode=0o755, exist_ok=True)
        st = os.stat(directory)
        if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not st.st_mode & stat.S_ISVTX:
            log.warning("%s: others may write to the status socket's directory (mode %04o): they can replace "
                        "the socket, and 'tunkit reload' will refuse it; use a directory only you can write",
                        directory, stat.S_IMODE(st.st_mode))
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


_UCRED = struct.Struct("iII")  # struct ucred (linux/socket.h): pid_t pid, uid_t uid, gid_t gid


class UntrustedSocket(OSError):
    """A status socket whose file, directory or server is not the caller's own user's."""


def _check_owner(path: str, st: os.stat_result, what: str, uid: int) -> None:
    if st.st_uid not in (uid, 0):
        raise UntrustedSocket(f"{path}: {what} is owned by uid {st.st_uid}, not by you (uid {uid}) or root")


def trusted_query(path: str, timeout: float = 3.0) -> tuple[dict, int]:
    """Ask the instance at ``path`` for its status, after checking it may be trusted: ``(doc, pid)``.

    For ``tunkit reload``, which signals the process behind the socket.  Raises
    :class:`UntrustedSocket` unless all of these hold:

    * the socket's directory is owned by the caller or root and no one else
      may write to it (or it is sticky, like ``/tmp``);
    * the path is a socket (not a symlink), owned by the caller and not
      writable by group or others;
    * the process serving it (``SO_PEERCRED``, which the kernel fills in, not
      the server) runs as the caller's user, and the pid the document claims
      is that process.

    The pid returned is the kernel's, never the document's.
    """
    uid = os.geteuid()
    directory = os.path.dirname(os.path.abspath(path))
    dst = os.lstat(directory)
    _check_owner(directory, dst, "the directory", uid)
    if dst.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not dst.st_mode & stat.S_ISVTX:
        raise UntrustedSocket(f"{directory}: others may write to the directory (mode {stat.S_IMODE(dst.st_mode):04o}), "
                              "so anyone could have put the socket there")
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        raise UntrustedSocket(f"{path}: not a unix socket" + (" (a symlink)" if stat.S_ISLNK(st.st_mode) else ""))
    if st.st_uid != uid:
        raise UntrustedSocket(f"{path}: the socket is owned by uid {st.st_uid}, not by you (uid {uid})")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedSocket(f"{path}: the socket is writable by others (mode {stat.S_IMODE(st.st_mode):04o})")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(path)
        pid, peer_uid, _gid = _UCRED.unpack(s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size))
        if peer_uid != uid:
            raise UntrustedSocket(f"{path}: served by pid {pid} running as uid {peer_uid}, not as you (uid {uid}); "
                                  "reload an instance as the user that runs it")
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    doc = json.loads(b"".join(chunks))
    claimed = doc.get("pid") if isinstance(doc, dict) else None
    if claimed != pid:
        raise UntrustedSocket(f"{path}: the server says it is pid {claimed!r} but the kernel says pid {pid}")
    return doc, pid


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
