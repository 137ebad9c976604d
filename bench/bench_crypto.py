"""Benchmark tunkit.crypto and the WireGuard engine's per-packet and handshake costs; prints figures.

Run:  python3 bench/bench_crypto.py [--rounds 5] [--quick]

Measured in one process on one core, best of the rounds (the machine is
shared with other work: the best round is the least disturbed one):

* ChaCha20-Poly1305 seal_into / open_into in place, 64 / 1,420 / 65,000 bytes;
* X25519 exchange with a cached private key object; sealing a cookie reply's cookie;
* the engine: Engine.seal (allocates the datagram), Engine.seal_into (in
  place) and Engine.receive (decrypt in place, window, routing check) for a
  1,420-byte inner packet;
* handshake processing: creating an initiation, consuming it and creating the
  response (responder), consuming the response (initiator).
"""

from __future__ import annotations

import argparse
import os
import random
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tunkit.crypto import (ChaCha20Poly1305, LibCrypto, generate_private_key, public_key,  # noqa: E402
                           xchacha20poly1305_seal)
from tunkit.wireguard import Engine  # noqa: E402


def best_us(fn, n: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best * 1e6


def bench_aead(rounds: int, quick: bool) -> None:
    aead = ChaCha20Poly1305(os.urandom(32))
    for size in (64, 1420, 65000):
        n = (200 if quick else 2000) if size == 65000 else (2000 if quick else 20000)
        buf = bytearray(size + 16)
        seal = best_us(lambda: aead.seal_into(buf, 0, size, 7), n, rounds)
        def round_trip():  # open needs a fresh ciphertext each time: time seal+open, subtract seal
            aead.seal_into(buf, 0, size, 7)
            aead.open_into(buf, 0, size + 16, 7)

        both = best_us(round_trip, n, rounds)
        print(f"chacha20-poly1305 {size:6d} B: seal {seal:7.2f} us   open {both - seal:7.2f} us   "
              f"({size * 8 / seal / 1e3:6.2f} Gbit/s sealing)")


def bench_x25519(rounds: int, quick: bool) -> None:
    key = LibCrypto.private_key(generate_private_key())
    peer = public_key(generate_private_key())
    print(f"x25519 exchange (cached key): {best_us(lambda: key.exchange(peer), 200 if quick else 2000, rounds):7.1f} us")
    k, nonce, cookie, mac1 = os.urandom(32), os.urandom(24), os.urandom(16), os.urandom(16)
    x = best_us(lambda: xchacha20poly1305_seal(k, nonce, cookie, mac1), 200 if quick else 2000, rounds)
    print(f"xchacha20-poly1305 seal of a cookie (HChaCha20 in Python): {x:7.1f} us")


def _ip4(size: int) -> bytes:
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 0, 0, 64, 17, 0, bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2]))
    return h + bytes(size - 20)


def _pair():
    c = LibCrypto()
    ka, kb = generate_private_key(), generate_private_key()
    a = Engine(ka, c, wall_offset=0, random=random.Random(1).randbytes)
    b = Engine(kb, c, wall_offset=0, random=random.Random(2).randbytes)
    pa = a.add_peer(public_key(kb), allowed_ips=["198.18.0.2/32"], endpoint="B")
    pb = b.add_peer(public_key(ka), allowed_ips=["198.18.0.1/32"], endpoint="A")
    return a, b, pa, pb


def bench_engine(rounds: int, quick: bool) -> None:
    a, b, pa, pb = _pair()
    a.initiate(pa, 1.0)
    for d, _ in a.pop_datagrams():
        b.receive(d, "A", 1.0)
    for d, _ in b.pop_datagrams():
        a.receive(d, "B", 1.0)
    for d, _ in a.pop_datagrams():
        b.receive(d, "A", 1.0)
    pkt = _ip4(1420)
    n = 2000 if quick else 20000
    seal = best_us(lambda: a.send(pkt, 2.0), n, rounds)
    buf = bytearray(16 + 1420 + 16)

    def seal_in_place():
        buf[16:16 + 1420] = pkt
        a.seal_into(pa, buf, 1420, 2.0)

    in_place = best_us(seal_in_place, n, rounds)
    datagrams = [a.send(pkt, 2.0)[0] for _ in range(n * rounds)]
    it = iter(datagrams)
    recv = best_us(lambda: b.receive(next(it), "A", 2.0), n, rounds)
    assert b.drops["decrypt"] == 0 and b.drops["replayed_transport"] == 0
    print(f"engine 1420 B inner packet: send {seal:6.2f} us   seal_into {in_place:6.2f} us   receive {recv:6.2f} us")


def bench_handshake(rounds: int, quick: bool) -> None:
    n = 50 if quick else 300
    t_init = t_resp = t_done = float("inf")
    for _ in range(rounds):
        pairs = [_pair() for _ in range(n)]
        t = time.perf_counter()
        for a, b, pa, pb in pairs:
            a.initiate(pa, 1.0)
        t_init = min(t_init, (time.perf_counter() - t) / n)
        inits = [a.pop_datagrams()[0][0] for a, _, _, _ in pairs]
        t = time.perf_counter()
        for (a, b, pa, pb), d in zip(pairs, inits):
            b.receive(d, "A", 1.0)
        t_resp = min(t_resp, (time.perf_counter() - t) / n)
        resps = [b.pop_datagrams()[0][0] for _, b, _, _ in pairs]
        t = time.perf_counter()
        for (a, b, pa, pb), d in zip(pairs, resps):
            a.receive(d, "B", 1.0)
        t_done = min(t_done, (time.perf_counter() - t) / n)
        assert all(pa.current is not None for _, _, pa, _ in pairs)
    print(f"handshake: create initiation {t_init * 1e6:6.0f} us   consume initiation + create response "
          f"{t_resp * 1e6:6.0f} us   consume response (+ keepalive) {t_done * 1e6:6.0f} us")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (a smoke run)")
    args = ap.parse_args()
    bench_aead(args.rounds, args.quick)
    bench_x25519(args.rounds, args.quick)
    bench_engine(args.rounds, args.quick)
    bench_handshake(args.rounds, args.quick)


if __name__ == "__main__":
    main()
