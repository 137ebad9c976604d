"""A WireGuard peer's state: keypairs, handshake, timers and counters; pure, no I/O.

The engine (:mod:`tunkit.wireguard.engine`) drives these objects; a data path
reads them (``endpoint``, ``current``) and statistics code reads the counters.
"""

from __future__ import annotations

import ipaddress
from collections import deque

from tunkit.wireguard.constants import MAX_STAGED_PACKETS, REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME
from tunkit.wireguard.cookie import CookieGenerator
from tunkit.wireguard.noise import InitiatorState, Remote
from tunkit.wireguard.primitives import Aead
from tunkit.wireguard.replay import ReplayWindow

__all__ = ["Keypair", "Handshake", "Peer"]


class Keypair:
    """One session: send/receive AEADs, both indices, the send counter and the replay window.

    ``owner`` is the engine owner token that may send on it (see
    :meth:`tunkit.wireguard.Engine.reown`); ``send_step`` > 1 when the counter
    space is partitioned between processes.
    """

    __slots__ = ("peer", "send", "recv", "local_index", "remote_index", "created", "initiator",
                 "send_counter", "send_step", "replay", "owner", "ext")

    def __init__(self, peer: "Peer", send: Aead, recv: Aead, local_index: int, remote_index: int,
                 created: float, initiator: bool, owner: object) -> None:
        self.peer = peer
        self.send = send
        self.recv = recv
        self.local_index = local_index
        self.remote_index = remote_index
        self.created = created
        self.initiator = initiator
        self.send_counter = 0
        self.send_step = 1
        self.replay = ReplayWindow()
        self.owner = owner
        self.ext = None  # tunkit's extension state on this session (extension._KpExt), None: plain

    def can_send(self, now: float, owner: object) -> bool:
        return (self.owner is owner and now - self.created < REJECT_AFTER_TIME
                and self.send_counter < REJECT_AFTER_MESSAGES)

    def __repr__(self) -> str:
        role = "initiator" if self.initiator else "responder"
        return f"<Keypair {role} local={self.local_index:#010x} remote={self.remote_index:#010x} sent={self.send_counter}>"


class Handshake:
    """A handshake in flight: either our initiation (``state`` set) or nothing.

    Registered in the engine's index table under ``local_index`` so a
    response or cookie reply finds it.
    """

    __slots__ = ("peer", "local_index", "state")

    def __init__(self, peer: "Peer", local_index: int, state: InitiatorState) -> None:
        self.peer = peer
        self.local_index = local_index
        self.state: InitiatorState | None = state


class Peer:
    """Everything the engine knows about one peer.

    Read-only for callers except through the engine's methods.  Times are the
    engine's monotonic ``now``; ``last_handshake`` is wall-clock seconds.
    """

    def __init__(self, remote: Remote, cookies: CookieGenerator, *, endpoint=None,
                 persistent_keepalive: float = 0.0) -> None:
        self.remote = remote
        self.public_key = remote.public
        self.cookies = cookies
        self.endpoint = endpoint
        self.persistent_keepalive = float(persistent_keepalive)
        # in order (as wg shows them); a dict used as an ordered set
        self.allowed_ips: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, None] = {}
        self.current: Keypair | None = None
        self.previous: Keypair | None = None
        self.next: Keypair | None = None
        self.handshake: Handshake | None = None
        self.last_timestamp = bytes(12)           # greatest TAI64N accepted from this peer
        self.last_initiation_consumed: float | None = None
        self.last_sent_handshake: float | None = None
        self.handshake_attempts = 0
        self.sent_last_minute_handshake = False
        self.need_another_keepalive = False
        self.staged: deque = deque()
        # timer deadlines (None: not armed)
        self.t_retransmit: float | None = None
        self.t_keepalive: float | None = None
        self.t_new_handshake: float | None = None
        self.t_zero: float | None = None
        self.t_persistent: float | None = None
        # tunkit's extension (extension.py): pinned to plain WireGuard, trains being reassembled
        self.plain = False
        self.trains: dict = {}
        self.train_bytes = 0
        self.t_ext: float | None = None
        # statistics
        self.last_handshake: float | None = None  # wall-clock seconds of the latest completed handshake
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.handshakes = 0

    def stage(self, packet) -> bool:
        """Keep a copy of ``packet`` until a session exists; False if the oldest had to go."""
        full = len(self.staged) >= MAX_STAGED_PACKETS
        if full:
            self.staged.popleft()
        self.staged.append(bytes(packet))
        return not full

    def keypairs(self) -> list[Keypair]:
        return [kp for kp in (self.current, self.previous, self.next) if kp is not None]

    def deadlines(self) -> list[float]:
        return [t for t in (self.t_retransmit, self.t_keepalive, self.t_new_handshake, self.t_zero,
                            self.t_persistent, self.t_ext) if t is not None]

    def __repr__(self) -> str:
        import base64

        return f"<Peer {base64.b64encode(self.public_key).decode()} endpoint={self.endpoint}>"
