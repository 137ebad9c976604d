"""Benchmark: a 64 KB super-packet sealed and opened as one train vs as 45 standard WireGuard transport messages.

Pure engine API, two engines in memory (no sockets, no namespaces).  Prints,
for each way, the microseconds per super-packet (seal + open, both sides'
CPU on one core) and what that is per GB of inner traffic, best of --rounds.

    python3 bench/bench_train.py [--rounds 7] [--iterations 300] [--size 64000] [--mss 1380]

Ways:
  train          seal_super_into on a negotiated peer + receive_block of the train (one AEAD each way)
  plain-super    seal_super_into on a plain peer (gso_split + one transport message per segment) + receive_block
  plain-prealloc the segments already split: seal_into per segment into one buffer + receive per datagram
"""

from __future__ import annotations

import argparse
import pathlib
import random
import struct
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))

from tunkit.crypto import LibCrypto, public_key  # noqa: E402
from tunkit.packet.offload import VirtioNetHdr, gso_split  # noqa: E402
from tunkit.wireguard import Engine  # noqa: E402
from tunkit.wireguard.extension import SUPER_BUFFER, SUPER_HEADROOM  # noqa: E402

KEY_A = bytes.fromhex("a8" + "11" * 30 + "51")
KEY_B = bytes.fromhex("b0" + "22" * 30 + "62")
ADDR_A, ADDR_B = ("192.0.2.1", 51820), ("192.0.2.2", 51820)


def pair(extension: bool):
    crypto = LibCrypto()
    a = Engine(KEY_A, crypto, wall_offset=1.7e9, random=random.Random(1).randbytes)
    b = Engine(KEY_B, crypto, wall_offset=1.7e9, random=random.Random(2).randbytes)
    a.extension = b.extension = extension
    pa = a.add_peer(public_key(KEY_B), allowed_ips=["198.18.0.2/32"], endpoint=ADDR_B)
    a_peer_on_b = b.add_peer(public_key(KEY_A), allowed_ips=["198.18.0.1/32"], endpoint=ADDR_A)
    a.initiate(pa, 100.0)
    for _ in range(20):
        moved = False
        for s, r, src in ((a, b, ADDR_A), (b, a, ADDR_B)):
            for d, _ in s.pop_datagrams():
                moved = True
                r.receive(bytearray(d), src, 100.0)
        if not moved:
            break
    assert a.extension_active(pa) is extension and (a_peer_on_b.current is not None)
    return a, b, pa


def tcp_packet(size: int) -> bytes:
    payload = random.Random(3).randbytes(size - 40)
    th = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 0, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, size, 0, 0x4000, 64, 6, 0, bytes([198, 18, 0, 1]),
                     bytes([198, 18, 0, 2]))
    return ip + th + payload


def run(way: str, pkt: bytes, meta, iterations: int) -> float:
    a, b, pa = pair(way == "train")
    buf = bytearray(SUPER_BUFFER)
    n = len(pkt)
    now = 100.0
    if way in ("train", "plain-super"):
        t0 = time.perf_counter()
        for _ in range(iterations):
            buf[SUPER_HEADROOM:SUPER_HEADROOM + n] = pkt
            batch = a.seal_super_into(pa, buf, n, meta, now)
            got = b.receive_block(memoryview(buf)[:batch.size], batch.segment, ADDR_A, now)
        dt = time.perf_counter() - t0
        assert sum(len(sp.packet) for sp in got) >= n
        return dt / iterations
    segs = [bytes(s) for s in gso_split(meta, pkt)]
    seg_size = 16 + ((max(len(s) for s in segs) + 15) & ~15) + 16
    t0 = time.perf_counter()
    for _ in range(iterations):
        off = 0
        for s in segs:
            buf[off + 16:off + 16 + len(s)] = s
            off += a.seal_into(pa, buf, len(s), now, off)
        mv = memoryview(buf)
        for o in range(0, off, seg_size):
            b.receive(mv[o:min(o + seg_size, off)], ADDR_A, now)
    dt = time.perf_counter() - t0
    return dt / iterations


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--size", type=int, default=64000, help="inner super-packet size in bytes (<= 65535)")
    ap.add_argument("--mss", type=int, default=1380, help="gso_size: TCP payload per segment (1380 fills a 1420 MTU)")
    args = ap.parse_args()
    pkt = tcp_packet(args.size)
    meta = VirtioNetHdr(1, 1, 40, args.mss, 20, 16)   # NEEDS_CSUM, TCPV4: segments of mss + 40 bytes
    segments = len(gso_split(meta, pkt))
    print(f"super-packet {args.size} bytes = {segments} segments of MSS {args.mss}; best of {args.rounds} rounds "
          f"x {args.iterations}; seal + open, both engines on one core")
    results = {}
    for way in ("train", "plain-super", "plain-prealloc"):
        best = min(run(way, pkt, meta, args.iterations) for _ in range(args.rounds))
        results[way] = best
        per_gb = best / args.size * 1e9   # seconds per GB
        print(f"  {way:15s} {best * 1e6:8.1f} us per super-packet   {per_gb * 1e6:12,.0f} us per GB of inner traffic")
    print(f"  train is {results['plain-super'] / results['train']:.1f}x faster than plain-super, "
          f"{results['plain-prealloc'] / results['train']:.1f}x faster than plain-prealloc")


if __name__ == "__main__":
    main()
