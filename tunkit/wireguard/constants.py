"""WireGuard protocol constants (the whitepaper's section 6 table and wireguard-go's constants.go); pure, no I/O."""

from __future__ import annotations

CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"

REKEY_AFTER_MESSAGES = 1 << 60
REJECT_AFTER_MESSAGES = (1 << 64) - (1 << 13) - 1
REKEY_AFTER_TIME = 120.0
REJECT_AFTER_TIME = 180.0
REKEY_ATTEMPT_TIME = 90.0
REKEY_TIMEOUT = 5.0
REKEY_TIMEOUT_JITTER = 0.333          # up to this much added to every REKEY_TIMEOUT wait
KEEPALIVE_TIMEOUT = 10.0
COOKIE_REFRESH_TIME = 120.0           # cookie secret lifetime, and how long a received cookie is used
MAX_TIMER_HANDSHAKES = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)   # 18 retries, then give up
ZERO_KEYS_AFTER = 3 * REJECT_AFTER_TIME                          # 540 s without a new session
# keepKeyFreshReceiving: an initiator whose session is this old starts one last handshake
LAST_MINUTE_HANDSHAKE = REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT
INITIATIONS_PER_SECOND = 50           # flood limit: initiations consumed per peer per second
MIN_INITIATION_INTERVAL = 1.0 / INITIATIONS_PER_SECOND

MAX_STAGED_PACKETS = 128              # per peer, waiting for a session
HANDSHAKE_RATE = 20.0                 # per source IP under load: tokens per second ...
HANDSHAKE_BURST = 5                   # ... and bucket size (wireguard-go's ratelimiter)
RATE_LIMIT_TABLE = 4096               # source IPs tracked at most
PADDING = 16
