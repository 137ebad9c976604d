"""WireGuard's cross-platform configuration protocol (UAPI, what ``wg`` speaks): framing, get and set; pure, no I/O.

Three pieces, all without sockets (``tunkit.overlay.uapi_server`` is the I/O layer):

* :class:`UapiConnection`, a sans-I/O state machine for one client: bytes in
  (:meth:`~UapiConnection.receive_data`), requests out, every size bounded
  by the named limits below.
* :func:`format_get`: the answer to ``get=1``, the interface and every peer
  in wireguard-go's keys and order, then ``errno=0``.
* :func:`plan_set`: a parsed ``set=1`` applied to the current configuration
  with wireguard-go's rules (``replace_peers``, ``remove``, ``update_only``,
  ``replace_allowed_ips``, ``allowed_ip=-...``), giving the new
  :class:`~tunkit.wireguard.settings.InterfaceConfig` that
  :meth:`tunkit.wireguard.Engine.apply` installs all or nothing.
  :func:`handle_set` does both and returns the errno.

Errors are wireguard-go's negative POSIX codes (``errno=-22``); see docs/uapi.md.
"""

from __future__ import annotations

import errno as _errno
import functools
import ipaddress
from typing import NamedTuple

from tunkit.errors import TunkitError
from tunkit.wireguard.keys import clamp
from tunkit.wireguard.settings import MAX_ALLOWED_IPS, MAX_PEERS, InterfaceConfig, PeerConfig

__all__ = ["UapiError", "UapiConnection", "Request", "format_get", "parse_set_line", "iter_set_lines", "plan_set",
           "handle_set", "format_endpoint", "parse_endpoint", "MAX_LINE_BYTES", "MAX_REQUEST_BYTES", "MAX_PEER_BLOCKS",
           "MAX_ALLOWED_IP_LINES", "EIO", "EPROTO", "EINVAL", "EADDRINUSE", "EMSGSIZE", "ENOMEM"]

# Limits (docs/uapi.md).  No valid line is longer than about 120 bytes.
MAX_LINE_BYTES = 4096                      # one line (wireguard-go: 64 KiB, bufio.Scanner's limit) -> EIO
MAX_REQUEST_BYTES = 8 << 20                # one set request; 8,192 peers take about 3 MB -> EMSGSIZE
MAX_PEER_BLOCKS = 2 * MAX_PEERS            # public_key lines in one set (syncconf removes + adds) -> EINVAL
MAX_ALLOWED_IP_LINES = 2 * MAX_ALLOWED_IPS  # allowed_ip lines in one set -> EINVAL

# wireguard-go's codes (ipc/uapi_unix.go), negative as it sends them
EIO = -_errno.EIO                # a line too long (a read failure)
EPROTO = -_errno.EPROTO          # a line without '=', or the client ended a set without the blank line
EINVAL = -_errno.EINVAL          # an unknown key, a bad value, too many peers or allowed IPs
EADDRINUSE = -_errno.EADDRINUSE  # the listen port (or fwmark) could not be applied to the sockets
EMSGSIZE = -_errno.EMSGSIZE      # tunkit's own: a set request over MAX_REQUEST_BYTES
ENOMEM = -_errno.ENOMEM          # tunkit's own: the server's budget for buffered requests is spent

_DEVICE_KEYS = ("private_key", "listen_port", "fwmark", "replace_peers")
_PEER_KEYS = ("public_key", "remove", "update_only", "preshared_key", "endpoint", "persistent_keepalive_interval",
              "replace_allowed_ips", "allowed_ip", "protocol_version")
_ZERO = bytes(32)


class UapiError(TunkitError, ValueError):
    """A request the protocol refuses: ``errno`` is the negative code sent back, the message says why."""

    def __init__(self, errno: int, message: str) -> None:
        super().__init__(message)
        self.errno = errno


class Request(NamedTuple):
    """One complete request from a client: ``op`` 'get' or 'set' (``lines``: its checked lines, as bytes), or 'error'.

    For 'error', ``errno`` is to be sent back and ``close`` says whether the
    connection must be closed after it; ``message`` is for the log.
    """
    op: str
    lines: bytes = b""
    errno: int = 0
    close: bool = False
    message: str = ""


# --------------------------------------------------------------------------- values


def _uint(value: str, bits: int, what: str) -> int:
    # strconv.ParseUint(value, 10, bits): ASCII digits only, no sign, leading zeros allowed
    if not value or not value.isascii() or not value.isdigit() or len(value) > 32:
        raise UapiError(EINVAL, f"{what} {value[:40]!r} is not a decimal number (of at most 32 digits)")
    n = int(value)
    if n >= 1 << bits:
        raise UapiError(EINVAL, f"{what} {value} is outside 0..{(1 << bits) - 1}")
    return n


def _hex_key(value: str, what: str) -> bytes:
    if len(value) != 64:
        raise UapiError(EINVAL, f"{what}: expected 64 hex digits (32 bytes), got {len(value)} characters")
    try:
        return bytes.fromhex(value) if value.isascii() and value.isalnum() else _bad_hex(what)
    except ValueError:
        _bad_hex(what)


def _bad_hex(what: str):
    raise UapiError(EINVAL, f"{what}: not hexadecimal")


def _bool(value: str, key: str) -> bool:
    if value != "true":
        raise UapiError(EINVAL, f"{key}={value!r}: the only value is 'true'")
    return True


def _prefix(value: str):
    # netip.ParsePrefix: address without zone, '/', decimal bits without sign or leading zero; then masked
    addr, slash, bits = value.partition("/")
    if (not slash or not bits or not bits.isascii() or not bits.isdigit() or (len(bits) > 1 and bits[0] == "0")
            or len(bits) > 3
            or "%" in addr):
        raise UapiError(EINVAL, f"allowed_ip {value!r} is not ADDRESS/BITS")
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        raise UapiError(EINVAL, f"allowed_ip {value!r}: {addr!r} is not an IPv4 or IPv6 address") from None
    n = int(bits)
    if n > ip.max_prefixlen:
        raise UapiError(EINVAL, f"allowed_ip {value!r}: prefix length {n} is outside 0..{ip.max_prefixlen}")
    return ipaddress.ip_network(f"{ip}/{n}", strict=False)


def parse_endpoint(value: str) -> tuple:
    """``IP:PORT`` or ``[IPv6]:PORT`` (numeric, as netip.ParseAddrPort) -> ``(host, port)``; UapiError EINVAL."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
        ok = sep and ":" in host
    else:
        host, sep, port = value.rpartition(":")
        ok = sep and ":" not in host
    if not ok:
        raise UapiError(EINVAL, f"endpoint {value!r} is not IP:PORT or [IPv6]:PORT")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise UapiError(EINVAL, f"endpoint {value!r}: {host!r} is not a numeric IP address") from None
    if ip.version == 4 and value.startswith("["):
        raise UapiError(EINVAL, f"endpoint {value!r}: brackets are for IPv6 addresses")
    return (str(ip), _uint(port, 16, "endpoint port"))


def format_endpoint(endpoint) -> str | None:
    """``(host, port, ...)`` as wireguard-go prints it (``[v6]:port``), or None for what is not an address."""
    if not isinstance(endpoint, tuple) or len(endpoint) < 2 or not isinstance(endpoint[0], str):
        return None
    host, port = endpoint[0], endpoint[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


# --------------------------------------------------------------------------- get

_net_text = functools.lru_cache(maxsize=2 * MAX_ALLOWED_IPS)(str)  # str() of an IPv6 network is the slow part


def format_get(engine) -> bytes:
    """The whole ``get=1`` answer for ``engine``, ending in ``errno=0`` and the blank line."""
    out = []
    add = out.append
    if engine.has_private_key:
        add(f"private_key={engine.private_key.hex()}")
    if engine.listen_port:
        add(f"listen_port={engine.listen_port}")
    if engine.fwmark:
        add(f"fwmark={engine.fwmark}")
    for pk, p in engine.peers.items():
        add(f"public_key={pk.hex()}")
        add(f"preshared_key={p.remote.psk.hex()}")
        add("protocol_version=1")
        ep = format_endpoint(p.endpoint)
        if ep is not None:
            add(f"endpoint={ep}")
        ns = 0 if p.last_handshake is None else max(0, round(p.last_handshake * 1e9))
        add(f"last_handshake_time_sec={ns // 1_000_000_000}")
        add(f"last_handshake_time_nsec={ns % 1_000_000_000}")
        add(f"tx_bytes={p.tx_bytes}")
        add(f"rx_bytes={p.rx_bytes}")
        add(f"persistent_keepalive_interval={int(p.persistent_keepalive)}")
        for net in p.allowed_ips:
            add("allowed_ip=" + _net_text(net))
    add("errno=0\n\n")
    return "\n".join(out).encode()


# --------------------------------------------------------------------------- set


def parse_set_line(line: str, in_peer: bool):
    """One ``key=value`` line of a set -> ``(key, parsed value)``; raises UapiError (EPROTO, EINVAL)."""
    key, eq, value = line.partition("=")
    if not eq:
        raise UapiError(EPROTO, f"line {line[:80]!r} has no '='")
    if key == "public_key":
        return key, _hex_key(value, "public_key")
    if not in_peer:
        if key == "private_key":
            raw = _hex_key(value, "private_key")
            return key, None if raw == _ZERO else clamp(raw)
        if key == "listen_port":
            return key, _uint(value, 16, "listen_port")
        if key == "fwmark":
            return key, _uint(value, 32, "fwmark")
        if key == "replace_peers":
            return key, _bool(value, key)
        raise UapiError(EINVAL, f"invalid UAPI device key {key[:80]!r} (one of {', '.join(_DEVICE_KEYS)}, "
                                "then public_key)")
    if key in ("remove", "update_only", "replace_allowed_ips"):
        return key, _bool(value, key)
    if key == "preshared_key":
        raw = _hex_key(value, "preshared_key")
        return key, None if raw == _ZERO else raw
    if key == "endpoint":
        return key, parse_endpoint(value)
    if key == "persistent_keepalive_interval":
        return key, _uint(value, 16, "persistent_keepalive_interval")
    if key == "allowed_ip":
        remove = value.startswith("-")
        return key, (remove, _prefix(value[1:] if remove else value))
    if key == "protocol_version":
        if value != "1":
            raise UapiError(EINVAL, f"invalid protocol version {value[:20]!r} (only 1)")
        return key, 1
    raise UapiError(EINVAL, f"invalid UAPI peer key {key[:80]!r} (one of {', '.join(_PEER_KEYS)})")


def iter_set_lines(raw: bytes):
    """The ``(key, value)`` pairs of a set's lines (``\n``-separated, no blank line), parsed one at a time.

    The request is kept as its bytes (what the client sent, about 1x) and
    parsed again here, lazily, while :func:`plan_set` runs: parsed values
    (networks) take about ten times the bytes.
    """
    in_peer = False
    for line in bytes(raw).split(b"\n"):
        if line:
            item = parse_set_line(line.decode("ascii"), in_peer)
            in_peer = in_peer or item[0] == "public_key"
            yield item


class _Peer:
    __slots__ = ("psk", "endpoint", "keepalive", "allowed")

    def __init__(self, psk=None, endpoint=None, keepalive=0, allowed=()) -> None:
        self.psk, self.endpoint, self.keepalive = psk, endpoint, keepalive
        self.allowed = dict.fromkeys(allowed)


def plan_set(current: InterfaceConfig, lines, public_of) -> InterfaceConfig:
    """The configuration after a set of parsed ``lines`` (``(key, value)``), by wireguard-go's rules.

    ``public_of(private_key)`` gives a key's public half (X25519).  A peer
    block for this interface's own public key is ignored, as wireguard-go
    does.  Limits and the rest of validation are the engine's
    (:func:`tunkit.wireguard.settings.validate`, run by ``apply``).
    """
    private, port, mark = current.private_key, current.listen_port, current.fwmark
    peers = {p.public_key: _Peer(p.preshared_key, p.endpoint, p.persistent_keepalive, p.allowed_ips)
             for p in current.peers}
    owner = {net: pk for pk, p in peers.items() for net in p.allowed}
    own_public = public_of(private) if private is not None else None
    pk = None
    peer: _Peer | None = None  # None while the block is a dummy (own key, removed, update_only)
    created = False

    def drop(key):
        for net in peers.pop(key).allowed:
            del owner[net]

    for key, value in lines:
        if key == "public_key":
            pk = value
            peer = None if value == own_public else peers.get(value)
            created = peer is None and value != own_public
            if created:
                peer = peers[pk] = _Peer()
                if len(peers) > 2 * MAX_PEERS:  # stop early (a syncconf holds old and new at once); validate() limits
                    raise ValueError(f"more than {MAX_PEERS} peers on the interface")
        elif pk is None:  # device keys come before the first public_key
            if key == "private_key":
                if value != private:
                    private = value
                    own_public = public_of(value) if value is not None else None
                    if own_public in peers:
                        drop(own_public)  # wireguard-go removes a peer that has the new key
            elif key == "listen_port":
                port = value
            elif key == "fwmark":
                mark = value
            elif key == "replace_peers":
                peers.clear()
                owner.clear()
        elif key == "remove" or (key == "update_only" and created):
            if peer is not None:
                drop(pk)
            peer = None
        elif peer is None:
            continue  # a dummy block: values were checked by parse_set_line, nothing is kept
        elif key == "preshared_key":
            peer.psk = value
        elif key == "endpoint":
            peer.endpoint = value
        elif key == "persistent_keepalive_interval":
            peer.keepalive = value
        elif key == "replace_allowed_ips":
            for net in peer.allowed:
                del owner[net]
            peer.allowed.clear()
        elif key == "allowed_ip":
            remove, net = value
            if remove:
                if owner.get(net) == pk:
                    del owner[net]
                    del peer.allowed[net]
            else:
                other = owner.get(net)
                if other is not None:
                    del peers[other].allowed[net]
                peer.allowed[net] = None  # a re-added prefix moves to the end, as in wireguard-go
                owner[net] = pk
                if len(owner) > 2 * MAX_ALLOWED_IPS:  # stop early (a syncconf may hold old and new at once)
                    raise ValueError(f"more than {MAX_ALLOWED_IPS} allowed IPs on the interface")
    return InterfaceConfig(private, port, mark, tuple(
        PeerConfig(k, p.psk, p.endpoint, p.keepalive, tuple(p.allowed)) for k, p in peers.items()))


def handle_set(engine, lines, *, now: float | None = None, prepare=None) -> tuple[int, str]:
    """Plan and apply a complete set on ``engine``, all or nothing: ``(errno, message)``, errno 0 on success.

    ``lines`` is a Request's bytes or ``(key, value)`` pairs.  ``prepare(config)``
    is :meth:`Engine.apply`'s hook (bind a new port):
    an OSError from it answers EADDRINUSE, as wireguard-go does, and changes nothing.
    """
    if isinstance(lines, (bytes, bytearray)):
        lines = iter_set_lines(lines)
    try:
        config = plan_set(engine.config(), lines, lambda k: engine.crypto.private_key(k).public)
        engine.apply(config, now=now, prepare=prepare)
    except OSError as e:
        return EADDRINUSE, f"listen port {engine.listen_port} / fwmark could not be applied: {e}"
    except ValueError as e:
        return EINVAL, str(e)
    return 0, ""


# --------------------------------------------------------------------------- framing


class UapiConnection:
    """One client's byte stream as requests, sans I/O; every buffer bounded.

    Feed what the socket read to :meth:`receive_data` (``b""`` for end of
    file); it returns the complete :class:`Request` s.  A set's lines are
    parsed as they arrive, so a bad one is answered at once; the rest of that
    request (up to its blank line) is then read and discarded.  A limit
    exceeded, an unknown operation or end of file mid-request ends the
    connection (:attr:`closed`).  :attr:`pending` is the size of the request
    being received (the server's budget counts it).
    """

    def __init__(self, *, max_line: int = MAX_LINE_BYTES, max_request: int = MAX_REQUEST_BYTES) -> None:
        self.max_line = max_line
        self.max_request = max_request
        self.closed = False
        self.pending = 0            # bytes of the set request in progress
        self._buf = bytearray()     # an incomplete line, at most max_line bytes
        self._state = "op"          # op | get | set | discard
        self._raw = bytearray()     # the set's checked lines so far
        self._peers = 0
        self._ips = 0

    @property
    def in_request(self) -> bool:
        """Whether a request has started and is not complete (the server times it out)."""
        return bool(self._buf) or self._state != "op"

    def receive_data(self, data: bytes) -> list[Request]:
        out: list[Request] = []
        if self.closed:
            return out
        if not data:
            if self.in_request:
                self.closed = True
                if self._state == "set":
                    out.append(Request("error", errno=EPROTO, close=True,
                                       message="end of file before the blank line that ends a set; nothing applied"))
            self.closed = True
            return out
        buf = self._buf
        buf += data
        start = 0
        while not self.closed:
            if self._state == "get":  # the byte after get=1\n must be \n
                if start >= len(buf):
                    break
                ok = buf[start] == 10
                start += 1
                self._state = "op"
                out.append(Request("get") if ok else Request("error", errno=EINVAL, close=True,
                                                             message="trailing character in UAPI get"))
                self.closed = not ok
                continue
            nl = buf.find(b"\n", start)
            if nl < 0:
                break
            line = bytes(buf[start:nl])
            start = nl + 1
            self._line(line, out)
        del buf[:start]
        if self._state == "op" and buf and not (b"get=1".startswith(buf) or b"set=1".startswith(buf)):
            self.closed = True  # no operation starts so: garbage is closed at once, not after a timeout
        elif not self.closed and len(buf) > self.max_line:
            self._fail(out, EIO, f"a line longer than {self.max_line} bytes")
        if self.closed:
            buf.clear()
        return out

    def _fail(self, out: list, errno: int, message: str) -> None:
        out.append(Request("error", errno=errno, close=True, message=message))
        self.closed = True
        self._raw = bytearray()

    def _line(self, line: bytes, out: list) -> None:
        state = self._state
        if state == "op":
            if line == b"get=1":
                self._state = "get"
            elif line == b"set=1":
                self._state, self._raw, self._peers, self._ips, self.pending = "set", bytearray(), 0, 0, 6
            else:  # wireguard-go closes the connection without an answer
                self.closed = True
            return
        self.pending += len(line) + 1
        if len(line) > self.max_line:  # a long line can arrive whole in one read
            return self._fail(out, EIO, f"a line longer than {self.max_line} bytes")
        if self.pending > self.max_request:
            return self._fail(out, EMSGSIZE, f"set request over {self.max_request} bytes")
        if line.endswith(b"\r"):  # bufio.ScanLines drops it
            line = line[:-1]
        if not line:  # the blank line ends the request
            if state == "set":
                out.append(Request("set", bytes(self._raw)))
            self._state, self._raw, self.pending = "op", bytearray(), 0
            return
        if state == "discard":
            return
        try:
            text = line.decode("ascii")
            key, value = parse_set_line(text, self._peers > 0)
        except UnicodeDecodeError:
            return self._error(out, EINVAL, f"a line that is not ASCII: {line[:40]!r}")
        except UapiError as e:
            return self._error(out, e.errno, str(e))
        if key == "public_key":
            self._peers += 1
            if self._peers > MAX_PEER_BLOCKS:
                return self._error(out, EINVAL, f"more than {MAX_PEER_BLOCKS} peers in one set")
        elif key == "allowed_ip":
            self._ips += 1
            if self._ips > MAX_ALLOWED_IP_LINES:
                return self._error(out, EINVAL, f"more than {MAX_ALLOWED_IP_LINES} allowed_ip lines in one set")
        self._raw += line
        self._raw += b"\n"

    def _error(self, out: list, errno: int, message: str) -> None:
        out.append(Request("error", errno=errno, message=message))
        self._state, self._raw = "discard", bytearray()
