"""Benchmark tunkit.routing.trie.PrefixTable against a dict-per-length reference; prints figures.

Run:  python3 bench/bench_trie.py [--rounds 3] [--quick]

Everything is measured in the same run, on one core, pure Python:

* IPv4: 100,000 prefixes with a BGP-like length mix (mostly /24, many
  /16-/23, a few /8-/15) at uniformly random places; build time (best of the
  rounds) and memory (tracemalloc); 1,000,000 lookups of random 4-byte keys,
  of keys inside stored prefixes ("hits") and of ``pkt[16:20]`` memoryview
  slices of packets, each beside the reference;
* IPv6: 1,000 and 10,000 prefixes with a BGP-like mix clustered under 64
  /12s of 2000::/3; random 16-byte keys, random global-unicast keys and hits;
* snapshots: snapshot(), the first write after one, batched writes;
* ECMP: flow_hash_packet() and GatewaySet.choose() per second.

The reference is the simple, fast design people write first: one dict per
populated prefix length keyed by the masked address int, lengths tried
longest-first, only the populated ones.

Values are 64 shared gateway objects, as in a routing table.  Lookup rates
count every key once: the keys are timed in 10 chunks, the table and the
reference alternating chunk by chunk, and each chunk keeps its best time
over the rounds (the machine is shared, so slow rounds measure the
neighbours, not the code).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import time
import tracemalloc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from tunkit.routing.ecmp import GatewaySet, flow_hash_packet  # noqa: E402
from tunkit.routing.trie import PrefixTable  # noqa: E402

# Share of each length in the IPv4 table, roughly the public BGP table's.
MIX4 = {24: 60.0, 23: 10.0, 22: 12.0, 21: 5.0, 20: 4.3, 19: 2.7, 18: 1.2, 17: 0.8, 16: 2.5,
        15: 0.3, 14: 0.3, 13: 0.25, 12: 0.2, 11: 0.15, 10: 0.12, 9: 0.1, 8: 0.08}  # fmt: skip
# Share of each length in the IPv6 table, roughly the public BGP table's.
MIX6 = {48: 45, 32: 12, 44: 7, 40: 6, 36: 3, 29: 2.5, 46: 2, 47: 2, 45: 1.5, 42: 1.5, 43: 1, 41: 1,
        38: 1, 34: 1, 33: 1.5, 35: 1, 37: 1, 39: 1, 28: 1, 24: 0.5, 20: 0.3, 19: 0.2, 56: 2, 64: 2,
        52: 0.5, 60: 0.5}  # fmt: skip


class DictPerLength:
    """Reference: one dict per populated length, tried longest-first."""

    def __init__(self, width: int, rows) -> None:
        tables: dict[int, dict[int, object]] = {}
        for net, plen, value in rows:
            tables.setdefault(plen, {})[net >> (width - plen)] = value
        self.order = [(width - plen, tables[plen]) for plen in sorted(tables, reverse=True)]

    def lookup(self, addr):
        key = int.from_bytes(addr, "big")
        for shift, table in self.order:
            value = table.get(key >> shift)
            if value is not None:
                return value
        return None


def make_prefixes(rng, n, width, mix, top=None):
    lengths, weights = list(mix), list(mix.values())
    seen = set()
    while len(seen) < n:
        plen = rng.choices(lengths, weights)[0]
        net = rng.getrandbits(width) if top is None else (rng.choice(top) << (width - 12)) | rng.getrandbits(width - 12)
        seen.add((net >> (width - plen) << (width - plen), plen))
    return sorted(seen)


def hit_keys(rng, prefixes, n, width):
    out = []
    for _ in range(n):
        net, plen = prefixes[rng.randrange(len(prefixes))]
        out.append((net | rng.getrandbits(width - plen)).to_bytes(width // 8, "big"))
    return out


def _timed(fn, keys):
    gc.collect()
    t0 = time.perf_counter()
    for k in keys:
        fn(k)
    return time.perf_counter() - t0


def _timed_packets(fn, packets):
    """fn(pkt[16:20]) over (memoryview of 20-byte IPv4 headers, count)."""
    mv, count = packets
    gc.collect()
    t0 = time.perf_counter()
    for off in range(0, count * 20, 20):
        fn(mv[off + 16 : off + 20])
    return time.perf_counter() - t0


def rate(fn, keys, rounds):
    """Best calls/s of one function (see rates)."""
    return rates([fn], keys, rounds)[0]


def rates(fns, keys, rounds, timer=_timed, chunks=10):
    """Calls/s of each function over all keys, robust to a shared machine.

    The keys are cut into *chunks*; each round times every function on every
    chunk, alternating functions chunk by chunk, and each chunk keeps its best
    time.  A burst of load from a neighbour therefore spoils one chunk of one
    round, not a whole measurement, and hits every function alike.
    """
    if timer is _timed_packets:
        mv, count = keys
        step = count // chunks
        parts = [(mv[i * step * 20 : (i + 1) * step * 20], step) for i in range(chunks)]
        total = step * chunks
    else:
        step = len(keys) // chunks
        parts = [keys[i * step : (i + 1) * step] for i in range(chunks)]
        total = step * chunks
    best = [[float("inf")] * chunks for _ in fns]
    for _ in range(rounds):
        for c, part in enumerate(parts):
            for i, fn in enumerate(fns):
                best[i][c] = min(best[i][c], timer(fn, part))
    return [total / sum(b) for b in best]


def build(rows_in, rounds):
    """(best seconds, table) building a PrefixTable from (prefix, value) pairs."""
    best, table = float("inf"), None
    for _ in range(rounds):
        table = None
        gc.collect()
        t0 = time.perf_counter()
        table = PrefixTable()
        insert = table.insert
        for prefix, value in rows_in:
            insert(prefix, value)
        best = min(best, time.perf_counter() - t0)
    return best, table


def traced(make):
    gc.collect()
    tracemalloc.start()
    obj = make()
    size = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return size, obj


def line(label, value, unit=""):
    print(f"  {label:<54} {value}{unit}")


def ipv4_section(rng, gws, n_prefixes, n_lookups, rounds):
    print(f"IPv4: {n_prefixes:,} prefixes, {n_lookups:,} lookups per measurement")
    pre = make_prefixes(rng, n_prefixes, 32, MIX4)
    counts = {}
    for _, plen in pre:
        counts[plen] = counts.get(plen, 0) + 1
    mix_text = " ".join(f"/{p}:{counts[p]}" for p in sorted(counts, reverse=True))
    print(f"  length mix: {mix_text}")
    as_bytes = [((net.to_bytes(4, "big"), plen), gws[i % len(gws)]) for i, (net, plen) in enumerate(pre)]
    as_text = [(f"{net >> 24}.{net >> 16 & 255}.{net >> 8 & 255}.{net & 255}/{plen}", v) for (_, plen), v, net in
               ((p, v, n) for (p, v), (n, _) in zip(as_bytes, pre))]  # fmt: skip
    rows = [(net, plen, v) for (net, plen), (_, v) in zip(pre, as_bytes)]

    t_bytes, table = build(as_bytes, rounds)
    t_text, _ = build(as_text, rounds)
    t0 = time.perf_counter()
    ref = DictPerLength(32, rows)
    t_ref = time.perf_counter() - t0
    mem, _ = traced(lambda: build(as_bytes, 1)[1])
    mem_ref, _ = traced(lambda: DictPerLength(32, rows))
    line("build from (bytes, len) pairs (best)", f"{t_bytes:.3f}", " s")
    line("build from 'a.b.c.d/n' strings (best)", f"{t_text:.3f}", " s")
    line("build reference", f"{t_ref:.3f}", " s")
    line("memory PrefixTable (tracemalloc)", f"{mem / 1e6:.1f}", " MB")
    line("memory reference (tracemalloc)", f"{mem_ref / 1e6:.1f}", " MB")

    rand = [rng.getrandbits(32).to_bytes(4, "big") for _ in range(n_lookups)]
    hits = hit_keys(rng, pre, n_lookups, 32)
    for k in rand[:20000] + hits[:20000]:
        assert table.lookup(k) == ref.lookup(k), k
    r_t, r_r = rates([table.lookup, ref.lookup], rand, rounds)
    line("lookups/s random 4-byte keys: PrefixTable", f"{r_t:,.0f}")
    line("lookups/s random 4-byte keys: reference", f"{r_r:,.0f}")
    line("  speed-up", f"{r_t / r_r:.2f}", "x")
    h_t, h_r = rates([table.lookup, ref.lookup], hits, rounds)
    line("lookups/s keys inside stored prefixes: PrefixTable", f"{h_t:,.0f}")
    line("lookups/s keys inside stored prefixes: reference", f"{h_r:,.0f}")
    line("  speed-up", f"{h_t / h_r:.2f}", "x")
    buf = b"".join(b"\x45" + bytes(15) + k for k in rand)
    p_t, p_r = rates([table.lookup, ref.lookup], (memoryview(buf), n_lookups), rounds, _timed_packets)
    line("lookups/s lookup(pkt[16:20]) memoryview: PrefixTable", f"{p_t:,.0f}")
    line("lookups/s lookup(pkt[16:20]) memoryview: reference", f"{p_r:,.0f}")
    line("  speed-up", f"{p_t / p_r:.2f}", "x")
    return table, as_bytes


def ipv6_section(rng, gws, n_prefixes, n_lookups, rounds):
    print(f"IPv6: {n_prefixes:,} prefixes, {n_lookups:,} lookups per measurement")
    top = [0x200 | rng.getrandbits(9) for _ in range(64)]  # 64 /12s inside 2000::/3
    pre = make_prefixes(rng, n_prefixes, 128, MIX6, top)
    as_bytes = [((net.to_bytes(16, "big"), plen), gws[i % len(gws)]) for i, (net, plen) in enumerate(pre)]
    rows = [(net, plen, v) for (net, plen), (_, v) in zip(pre, as_bytes)]
    t_build, table = build(as_bytes, rounds)
    mem, _ = traced(lambda: build(as_bytes, 1)[1])
    ref = DictPerLength(128, rows)
    line("build (best)", f"{t_build * 1e3:.1f}", " ms")
    line("memory PrefixTable (tracemalloc)", f"{mem / 1e6:.2f}", " MB")
    kinds = {
        "random 16-byte keys": [rng.getrandbits(128).to_bytes(16, "big") for _ in range(n_lookups)],
        "random keys in 2000::/3": [((1 << 125) | rng.getrandbits(125)).to_bytes(16, "big") for _ in range(n_lookups)],
        "keys inside stored prefixes": hit_keys(rng, pre, n_lookups, 128),
    }
    for name, keys in kinds.items():
        for k in keys[:20000]:
            assert table.lookup(k) == ref.lookup(k)
        r_t, r_r = rates([table.lookup, ref.lookup], keys, rounds)
        line(f"lookups/s {name}: PrefixTable", f"{r_t:,.0f}")
        line(f"lookups/s {name}: reference", f"{r_r:,.0f}", f"   ({r_t / r_r:.2f}x)")


def snapshot_section(table, as_bytes, rounds):
    print(f"Snapshots (IPv4 table of {len(table):,} prefixes)")
    n = 10000
    t0 = time.perf_counter()
    for _ in range(n):
        table.snapshot()
    line("snapshot()", f"{(time.perf_counter() - t0) / n * 1e6:.2f}", " us")
    writes = [(p, "new") for p, _ in as_bytes[::500]]  # 200 prefixes spread over the table
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        for p, v in writes:
            current = table.snapshot()  # readers switch to the newest; older ones are dropped
            table.insert(p, v)
        best = min(best, (time.perf_counter() - t0) / len(writes))
    del current
    line("snapshot() + one insert (first write copies roots)", f"{best * 1e3:.3f}", " ms")
    table.snapshot()
    t0 = time.perf_counter()
    for p, v in as_bytes[:2000]:
        table.insert(p, v)
    line("insert, batched between snapshots", f"{(time.perf_counter() - t0) / 2000 * 1e6:.1f}", " us")
    snap = table.snapshot()
    gc.collect()
    tracemalloc.start()
    table.insert(as_bytes[0][0], "x")
    grown = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    line("memory of the first write after a snapshot", f"{grown / 1e6:.2f}", " MB")
    assert snap.lookup(as_bytes[0][0][0]) != "x" or as_bytes[0][1] == "x"
    t0 = time.perf_counter()
    n_items = sum(1 for _ in table.items())
    line(f"items() ({n_items:,} networks)", f"{time.perf_counter() - t0:.2f}", " s")


def ecmp_section(rng, gws, n, rounds):
    print(f"ECMP: {n:,} packets")
    pkts = []
    for i in range(n):
        src, dst = rng.getrandbits(32).to_bytes(4, "big"), rng.getrandbits(32).to_bytes(4, "big")
        if i % 2:  # UDP with ports
            pkts.append(b"\x45\x00\x00\x1c" + bytes(5) + b"\x11" + bytes(2) + src + dst + rng.randbytes(4) + bytes(4))
        else:  # ICMP echo
            pkts.append(b"\x45\x00\x00\x1c" + bytes(5) + b"\x01" + bytes(2) + src + dst + b"\x08" + bytes(7))
    line("flow_hash_packet()/s (half UDP, half ICMP)", f"{rate(flow_hash_packet, pkts, rounds):,.0f}")
    gset = GatewaySet([(gws[0], 3), (gws[1], 2), (gws[2], 1)])
    hashes = [flow_hash_packet(p) for p in pkts]
    line("GatewaySet.choose()/s (3 gateways)", f"{rate(gset.choose, hashes, rounds):,.0f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3, help="repeat each measurement, keep each chunk's best (default 3)")
    ap.add_argument("--quick", action="store_true", help="10x fewer lookups (for a smoke run)")
    args = ap.parse_args(argv)
    scale = 10 if args.quick else 1
    rng = random.Random(20240601)
    gws = [object() for _ in range(64)]
    print(f"tunkit.routing.trie benchmark: Python {sys.version.split()[0]}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f},"
          f" best of {args.rounds} rounds per chunk")  # fmt: skip
    table, as_bytes = ipv4_section(rng, gws, 100_000, 1_000_000 // scale, args.rounds)
    ipv6_section(rng, gws, 1_000, 1_000_000 // scale, args.rounds)
    ipv6_section(rng, gws, 10_000, 1_000_000 // scale, args.rounds)
    snapshot_section(table, as_bytes, args.rounds)
    ecmp_section(rng, gws, 200_000 // scale, args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
