"""WireGuard (Noise_IKpsk2) as a sans-I/O engine: codecs, handshake, timers, sessions, routing; pure, no I/O.

Crypto primitives are injected: pass ``tunkit.crypto.LibCrypto()`` (the I/O
layer) as ``crypto``.  See docs/wireguard.md.
"""

from tunkit.wireguard.engine import DROP_REASONS, Engine, Event
from tunkit.wireguard.keys import KeyFormatError, clamp, format_key, parse_key
from tunkit.wireguard.peer import Keypair, Peer
from tunkit.wireguard.primitives import Crypto

__all__ = ["Engine", "Event", "Peer", "Keypair", "Crypto", "DROP_REASONS",
           "KeyFormatError", "parse_key", "format_key", "clamp"]
