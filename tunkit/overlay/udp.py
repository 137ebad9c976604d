"""UDP underlay sockets with GSO sends and GRO receives, falling back at run time; does I/O.

* :func:`open_udp` binds the listen address (``SO_REUSEPORT`` so that every
  worker process has its own socket on the same port), non-blocking, with
  large buffers (the ``*FORCE`` variants are tried first; they need
  CAP_NET_ADMIN).
* :class:`UdpBatcher` queues datagrams given as buffer vectors and flushes
  them with ``sendmsg``: consecutive datagrams to the same address with the
  same size (the last of a run may be shorter) leave in one call with a
  ``UDP_SEGMENT`` control message (at most 64 per call, 65,507 bytes).  If
  the kernel refuses GSO (``EIO`` when the egress device lacks checksum
  offload, ``EINVAL``/``ENOPROTOOPT`` on kernels without it) GSO is switched
  off for the socket and the run is resent one datagram per call.
* :func:`recv_batch` reads up to ``n`` times; with ``UDP_GRO`` on, one read
  may return many datagrams, split here by the ``UDP_GRO`` cmsg size.
"""

from __future__ import annotations

import errno
import logging
import socket
import struct
from collections.abc import Callable, Sequence
from itertools import chain

from tunkit._uapi import SO_RCVBUFFORCE, SO_SNDBUFFORCE, SOL_UDP, UDP_GRO, UDP_MAX_SEGMENTS, UDP_SEGMENT

_U16 = struct.Struct("=H")  # UDP_SEGMENT cmsg payload: u16 gso_size (native order)
_INT = struct.Struct("=i")  # UDP_GRO cmsg payload: int gso_size (native order)
MAX_UDP_PAYLOAD = {socket.AF_INET: 65535 - 20 - 8, socket.AF_INET6: 65535 - 8}
log = logging.getLogger("tunkit.overlay.udp")
_GSO_REFUSED = (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP)


def open_udp(host: str, port: int, *, reuseport: bool = True, bufsize: int = 8 << 20) -> socket.socket:
    """A bound, non-blocking UDP socket for ``host:port`` (IPv6 wildcard also takes IPv4)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if reuseport:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        for force, plain in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, bufsize)
            except PermissionError:  # FORCE needs CAP_NET_ADMIN; the plain option is capped by rmem_max
                sock.setsockopt(socket.SOL_SOCKET, plain, bufsize)
        sock.bind((host, port))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def enable_gro(sock: socket.socket) -> bool:
    """Turn ``UDP_GRO`` on; False if this kernel refuses it."""
    try:
        sock.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError as e:  # ENOPROTOOPT on kernels before 5.0: fall back to one datagram per read
        if e.errno in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return True


def gso_supported(sock: socket.socket) -> bool:
    """True if the kernel knows ``UDP_SEGMENT`` (getsockopt succeeds), as wireguard-go probes."""
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
    except OSError as e:  # ENOPROTOOPT: no UDP GSO in this kernel
        if e.errno in (errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP):
            return False
        raise
    return True


class UdpBatcher:
    """Queue datagrams (lists of buffers) and send them with as few syscalls as possible.

    ``on_error(address, nbytes, exc)`` is called for a datagram the kernel
    refused (e.g. ``ENETUNREACH``); it is dropped, the rest still go.
    ``max_segment`` is the largest datagram worth batching (bigger ones, such
    as super-packets the kernel will IP-fragment, go alone).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        gso: bool | None = None,
        max_segment: int = 1472,
        on_error: Callable[[object, int, OSError], None] | None = None,
    ) -> None:
        self.sock = sock
        self.gso = gso_supported(sock) if gso is None else gso
        self.max_segment = max_segment
        self.max_total = MAX_UDP_PAYLOAD.get(sock.family, 65507)
        self.on_error = on_error
        self.syscalls = 0
        self.gso_sends = 0  # sendmsg calls that carried more than one datagram
        self.gso_fallbacks = 0
        self._q: list[tuple[object, int, list]] = []  # (address, size, buffers)

    def add(self, address, size: int, buffers: list) -> None:
        self._q.append((address, size, buffers))

    def add_train(self, address, datagrams: list, segment: int) -> None:
        """Queue a train: per datagram its buffers, each ``segment`` bytes but the last."""
        self._q.append((address, -segment, datagrams))

    def __len__(self) -> int:
        return len(self._q)

    def flush(self) -> None:
        q = self._q
        if not q:
            return
        self._q = []
        i, n = 0, len(q)
        while i < n:
            addr, size, bufs = q[i]
            j = i + 1
            if size < 0:  # a train: one UDP_SEGMENT send, or one send per datagram
                self._send_train(addr, -size, bufs)
                i = j
                continue
            if self.gso and size <= self.max_segment:
                total = size
                vec = None  # built only once a second datagram joins the run
                while j < n and j - i < UDP_MAX_SEGMENTS:
                    a2, s2, b2 = q[j]
                    if a2 != addr or not 0 < s2 <= size or total + s2 > self.max_total:  # s2 < 0: a train
                        break
                    if vec is None:
                        vec = list(bufs)
                    vec += b2
                    total += s2
                    j += 1
                    if s2 < size:  # a shorter datagram ends the run
                        break
                if j - i > 1:
                    if self._send_gso(vec, size, addr, q[i:j]):
                        i = j
                        continue
                    j = i + 1
            self._send_one(bufs, addr, size)
            i = j

    def _send_gso(self, vec, size, addr, run) -> bool:
        """Send ``run`` (its (address, size, buffers) entries, or a train's datagrams) as one GSO send."""
        try:
            self.sock.sendmsg(vec, [(SOL_UDP, UDP_SEGMENT, _U16.pack(size))], 0, addr)
        except BlockingIOError:  # socket buffer full: the datagrams are lost like on a full link
            self._report(addr, _run_size(run, size), None)
            return True
        except OSError as e:
            if e.errno in _GSO_REFUSED:  # no GSO for this path: switch it off and resend singly
                log.warning("UDP GSO refused (%s, %d datagrams of %d bytes to %s); sending one datagram per call",
                            errno.errorcode.get(e.errno, e.errno), len(run), size, addr)
                self.gso = False
                self.gso_fallbacks += 1
                for a, s, b in _run_entries(run, addr, size):
                    self._send_one(b, a, s)
                return True
            # unreachable, too big...: these datagrams are lost, the socket stays usable
            self._report(addr, _run_size(run, size), e)
            return True
        self.syscalls += 1
        self.gso_sends += 1
        return True

    def _send_train(self, addr, segment: int, datagrams: list) -> None:
        """One UDP_SEGMENT send per 65,507 bytes (and 64 datagrams), or one send per datagram."""
        per = max(1, min(UDP_MAX_SEGMENTS, self.max_total // segment))
        for k in range(0, len(datagrams), per):
            group = datagrams[k : k + per]
            if self.gso and len(group) > 1:
                self._send_gso(list(chain.from_iterable(group)), segment, addr, group)
            else:
                for d in group:
                    self._send_one(d, addr, segment)

    def _send_one(self, bufs, addr, size) -> None:
        self.syscalls += 1
        try:
            self.sock.sendmsg(bufs, (), 0, addr)
        except OSError as e:  # unreachable, too big, buffer full: drop this datagram, keep going
            self._report(addr, size, e)

    def _report(self, addr, size, exc) -> None:
        if self.on_error is not None:
            self.on_error(addr, size, exc)


def _run_entries(run, addr, size: int) -> list:
    """A GSO run as (address, size, buffers): a train's datagrams are all ``size`` bytes but the last."""
    if run and isinstance(run[0], tuple):
        return run
    return [(addr, size if i < len(run) - 1 else sum(map(len, d)), d) for i, d in enumerate(run)]


def _run_size(run, size: int) -> int:
    return sum(s for _, s, _ in _run_entries(run, None, size))


def recv_batch(
    sock: socket.socket,
    buf: bytearray,
    deliver: Callable[[memoryview, object, int], None],
    *,
    max_reads: int = 64,
    gro: bool = False,
    after_read: Callable[[], None] | None = None,
) -> int:
    """Read up to ``max_reads`` times into ``buf``; call ``deliver(block, address, segment)`` per read.

    With ``gro`` a read may hold several datagrams: ``block`` is then cut
    every ``segment`` bytes (the last datagram may be shorter); otherwise
    ``segment == len(block)``.  ``buf`` is reused: ``deliver`` must not keep the
    memoryview past ``after_read()``, which runs after each read's datagrams.
    Returns the number of datagrams delivered.
    """
    mv = memoryview(buf)
    count = 0
    anc = socket.CMSG_SPACE(_INT.size) if gro else 0
    ancdata: Sequence[tuple[int, int, bytes]]
    for _ in range(max_reads):
        try:
            if gro:
                n, ancdata, _flags, addr = sock.recvmsg_into([buf], anc)
            else:
                n, addr = sock.recvfrom_into(buf)
                ancdata = ()
        except BlockingIOError:  # drained
            break
        except ConnectionRefusedError:  # ICMP port unreachable from an earlier send; nothing to read
            continue
        seg = 0
        for level, ctype, data in ancdata:
            if level == SOL_UDP and ctype == UDP_GRO and len(data) >= 2:
                seg = _INT.unpack_from(data.ljust(_INT.size, b"\0"))[0] if len(data) >= 4 else _U16.unpack_from(data)[0]
        if not seg or seg >= n:
            seg = n or 1  # an empty datagram is delivered too (the receiver counts it), never a 0 step
        deliver(mv[:n], addr, seg)
        count += -(-n // seg) or 1
        if after_read is not None:
            after_read()
    return count
