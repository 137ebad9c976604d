"""PrefixTable against a linear longest-match oracle, plus edge and error cases."""

from __future__ import annotations

import contextlib
import copy
import io
import ipaddress
import pathlib
import pickle
import random
import re

import pytest

from tunkit.routing.trie import PrefixTable, _prefix

V4 = ipaddress.IPv4Network
V6 = ipaddress.IPv6Network
NET = {32: V4, 128: V6}


class SlowTable:
    """The oracle: a dict of exact prefixes and a linear scan for the longest match."""

    def __init__(self):
        self.d = {}  # (width, net, plen) -> value

    def lookup(self, width, key):
        best = None
        for (w, net, plen), value in self.d.items():
            if w == width and key >> (width - plen) == net >> (width - plen):
                if best is None or plen > best[0]:
                    best = (plen, net, value)
        return best

    def items(self):
        rows = sorted(self.d.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2]))
        return [(NET[w]((net, plen)), v) for (w, net, plen), v in rows]


def random_prefix(rng, width, tops):
    """A prefix under one of a few top bytes, its other bytes mostly from a small set,
    so prefixes nest and share nodes at every level."""
    if width == 32:
        plen = rng.choice([0, 1, 4, 8, 9, 12, 15, 16, 17, 18, 19, 20, 22, 23, 24, 24, 25, 26, 27, 30, 31, 32])
    else:
        plen = rng.choice([0, 3, 8, 12, 16, 17, 18, 24, 29, 32, 33, 34, 40, 44, 47, 48, 48, 56, 63, 64, 65, 96, 120, 127, 128])
    net = rng.choice(tops)
    for _ in range(width // 8 - 1):
        net = (net << 8) | (rng.choice((0, 1, 0x40, 0x80, 0xFF)) if rng.random() < 0.8 else rng.getrandbits(8))
    net = net >> (width - plen) << (width - plen) if plen else 0
    return width, net, plen


def as_input(rng, width, net, plen):
    """The same prefix in one of the accepted input forms."""
    form = rng.randrange(4)
    if form == 0:
        return f"{ipaddress.ip_address(net) if width == 32 else ipaddress.IPv6Address(net)}/{plen}"
    if form == 1:
        return NET[width]((net, plen))
    if form == 2:
        return (net.to_bytes(width // 8, "big"), plen)
    return (ipaddress.IPv4Address(net) if width == 32 else ipaddress.IPv6Address(net), plen)


def key_bytes(width, key, rng):
    raw = key.to_bytes(width // 8, "big")
    form = rng.randrange(3)
    if form == 0:
        return raw
    if form == 1:  # a slice of a packet buffer, as the packet loop passes it
        return memoryview(b"\xaa" * 16 + raw + b"\xbb" * 4)[16 : 16 + len(raw)]
    return bytearray(raw)


def probe_keys(rng, width, oracle, tops, n):
    keys = []
    prefixes = [p for p in oracle.d if p[0] == width]
    for _ in range(n):
        r = rng.random()
        if prefixes and r < 0.6:  # inside a stored prefix, often at its edges
            _, net, plen = rng.choice(prefixes)
            host = width - plen
            low = rng.choice([0, (1 << host) - 1, rng.getrandbits(host) if host else 0])
            keys.append(net | low)
        elif r < 0.85:
            keys.append((rng.choice(tops) << (width - 8)) | rng.getrandbits(width - 8))
        else:
            keys.append(rng.getrandbits(width))
    return keys


def check_against(table, oracle, rng, tops, n=60):
    assert len(table) == len(oracle.d)
    for width in (32, 128):
        for key in probe_keys(rng, width, oracle, tops[width], n):
            best = oracle.lookup(width, key)
            want = None if best is None else best[2]
            assert table.lookup(key_bytes(width, key, rng)) == want, (width, hex(key))
            got_prefix = table.lookup_prefix(key.to_bytes(width // 8, "big"))
            if best is None:
                assert got_prefix is None
            else:
                assert got_prefix == (NET[width]((best[1], best[0])), best[2])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_inserts_deletes_replaces_and_snapshots_match_the_oracle(seed):
    rng = random.Random(seed)
    tops = {32: [rng.getrandbits(8) for _ in range(3)], 128: [0x20, rng.getrandbits(8)]}
    table, oracle = PrefixTable(), SlowTable()
    snapshots = []
    for step in range(1500):
        width = 32 if rng.random() < 0.6 else 128
        action = rng.random()
        if oracle.d and action < 0.3:
            victim = rng.choice(list(oracle.d))
            w, net, plen = victim
            assert table.delete(as_input(rng, w, net, plen)) == oracle.d.pop(victim)
        else:
            p = random_prefix(rng, width, tops[width])
            value = ("v", step)
            old = table.insert(as_input(rng, *p), value)
            assert old == oracle.d.get(p)
            oracle.d[p] = value
        if step % 25 == 0:
            check_against(table, oracle, rng, tops, n=20)
        if step % 150 == 0:
            snapshots.append((table.snapshot(), SlowTable()))
            snapshots[-1][1].d = dict(oracle.d)
    check_against(table, oracle, rng, tops, n=300)
    assert list(table.items()) == oracle.items()
    for width, net, plen in list(oracle.d)[:200]:
        p = NET[width]((net, plen))
        assert p in table and table[p] == oracle.d[(width, net, plen)] == table.get(str(p))
    # every snapshot still shows the table exactly as it was when taken
    for snap, frozen in snapshots:
        check_against(snap, frozen, rng, tops, n=100)
        assert list(snap.items()) == frozen.items()


def filled(rng, tops, count):
    """A table and its oracle with *count* random inserts (values: the step number)."""
    table, oracle = PrefixTable(), SlowTable()
    for step in range(count):
        width = rng.choice((32, 128))
        p = random_prefix(rng, width, tops[width])
        table.insert(as_input(rng, *p), step)
        oracle.d[p] = step
    return table, oracle


def test_deleting_everything_leaves_an_empty_table():
    rng = random.Random(7)
    tops = {32: [198, 10], 128: [0x20]}
    table, oracle = filled(rng, tops, 600)
    for p in rng.sample(list(oracle.d), len(oracle.d)):
        table.delete(NET[p[0]]((p[1], p[2])))
        del oracle.d[p]
        if len(oracle.d) % 50 == 0:
            check_against(table, oracle, rng, tops, n=30)
    assert len(table) == 0 and not table and list(table.items()) == []
    assert all(node is None for node in table._c4) and all(node is None for node in table._c6)
    assert all(v is None for v in table._v4) and all(v is None for v in table._v6)


def test_copy_is_writable_and_independent_both_ways():
    rng = random.Random(11)
    tops = {32: [192, 198], 128: [0x20]}
    a, oracle_a = filled(rng, tops, 300)
    b = a.copy()
    oracle_b = SlowTable()
    oracle_b.d = dict(oracle_a.d)
    for step in range(300):
        for table, oracle in ((a, oracle_a), (b, oracle_b)):
            width = rng.choice((32, 128))
            if rng.random() < 0.4:
                p = rng.choice(list(oracle.d))
                table.delete(NET[p[0]]((p[1], p[2])))
                del oracle.d[p]
            else:
                p = random_prefix(rng, width, tops[width])
                table.insert(as_input(rng, *p), (id(table), step))
                oracle.d[p] = (id(table), step)
    check_against(a, oracle_a, rng, tops, n=200)
    check_against(b, oracle_b, rng, tops, n=200)
    assert not a.readonly and not b.readonly


def test_a_write_after_a_snapshot_copies_only_the_path():
    table = PrefixTable()
    for third in range(256):
        for second in (0, 1, 2, 3):
            table.insert(f"198.{18 + (second & 1)}.{second * 64 + (third & 63)}.0/24", third)
            table.insert(f"10.{third}.{second}.128/25", second)
    snap = table.snapshot()
    table.insert("10.7.3.0/26", "new")
    changed = [h for h in range(65536) if table._c4[h] is not snap._c4[h]]
    assert changed == [(10 << 8) | 7]  # one level-1 node copied, every other one shared
    old_l1, new_l1 = snap._c4[changed[0]], table._c4[changed[0]]
    changed_l2 = [s for s in old_l1 if old_l1[s] is not new_l1.get(s)]
    assert changed_l2 == [3]  # and one level-2 node below it
    assert snap.lookup(bytes([10, 7, 3, 1])) is None and table.lookup(bytes([10, 7, 3, 1])) == "new"
    assert table._v4 is snap._v4  # no root prefix changed, so the value array is still shared


@pytest.mark.parametrize(
    "prefix, probes",
    [
        ("0.0.0.0/0", [("0.0.0.0", True), ("255.255.255.255", True), ("192.0.2.1", True), ("::", False)]),
        ("::/0", [("::", True), ("ffff::1", True), ("0.0.0.0", False)]),
        ("192.0.2.7/32", [("192.0.2.7", True), ("192.0.2.6", False), ("192.0.2.8", False)]),
        ("2001:db8::7/128", [("2001:db8::7", True), ("2001:db8::6", False), ("2001:db8::8", False)]),
        ("198.51.100.128/25", [("198.51.100.128", True), ("198.51.100.255", True), ("198.51.100.127", False)]),
        ("198.18.0.0/15", [("198.18.0.0", True), ("198.19.255.255", True), ("198.20.0.0", False), ("198.17.255.255", False)]),
        ("2001:db8:8000::/33", [("2001:db8:8000::", True), ("2001:db8:ffff:ffff::", True), ("2001:db8:7fff::", False)]),
        ("128.0.0.0/1", [("128.0.0.0", True), ("255.0.0.1", True), ("127.255.255.255", False)]),
        ("::ffff:0:0/96", [("::ffff:192.0.2.1", True), ("192.0.2.1", False)]),  # never mapped to IPv4
    ],
)
def test_single_prefix_edges(prefix, probes):
    table = PrefixTable({prefix: "x"})
    for addr, covered in probes:
        want = "x" if covered else None
        assert table.lookup(addr) == want, addr
        assert table.lookup(ipaddress.ip_address(addr)) == want
        assert table.lookup(ipaddress.ip_address(addr).packed) == want
        got = table.lookup_prefix(addr)
        assert got == ((ipaddress.ip_network(prefix), "x") if covered else None)


def test_nested_prefixes_and_deleting_a_parent_keeps_the_children():
    table = PrefixTable()
    table["0.0.0.0/0"] = "default"
    table["198.18.0.0/15"] = "bench"
    table["198.18.0.0/16"] = "left"
    table["198.18.5.0/24"] = "five"
    table["198.18.5.128/25"] = "upper"
    table["198.18.5.200/32"] = "host"
    cases = {
        "198.18.5.200": "host",
        "198.18.5.201": "upper",
        "198.18.5.1": "five",
        "198.18.6.1": "left",
        "198.19.0.1": "bench",
        "192.0.2.1": "default",
    }
    for addr, want in cases.items():
        assert table.lookup(addr) == want
    assert table.delete("198.18.5.0/24") == "five"
    assert table.lookup("198.18.5.1") == "left"  # falls back to the next shorter prefix
    assert table.lookup("198.18.5.201") == "upper" and table.lookup("198.18.5.200") == "host"
    assert table.delete("198.18.0.0/15") == "bench"
    assert table.lookup("198.19.0.1") == "default" and table.lookup("198.18.6.1") == "left"
    assert table.delete("0.0.0.0/0") == "default"
    assert table.lookup("192.0.2.1") is None and table.lookup("198.18.5.200") == "host"
    assert table.delete("198.18.5.128/25") == "upper"
    assert table.lookup("198.18.5.201") == "left" and table.lookup("198.18.5.200") == "host"
    assert [str(n) for n in table] == ["198.18.0.0/16", "198.18.5.200/32"]


def test_ipv6_nesting_across_upper_and_lower_lengths_of_a_node():
    # 2001:db8::/32 sits in the node for lengths 17..32; /20 and /24 are its
    # lengths 1..8 (kept apart from the expanded slots), /32 a full slot, /48
    # a child node below that slot.
    table = PrefixTable({"2001::/20": "20", "2001:d00::/24": "24", "2001:db8::/32": "32", "2001:db8:1::/48": "48"})
    probes = {"2001:db8:1::9": "48", "2001:db8:2::9": "32", "2001:dbf::1": "24", "2001:e00::1": "20", "2002::1": None}
    assert {a: table.lookup(a) for a in probes} == probes
    table.delete("2001:db8::/32")  # the /48's node now inherits the /24
    probes.update({"2001:db8:2::9": "24"})
    assert {a: table.lookup(a) for a in probes} == probes
    assert table.lookup_prefix("2001:db8:2::9") == (V6("2001:d00::/24"), "24")
    table.delete("2001:d00::/24")  # ... and then the /20
    probes.update({"2001:db8:2::9": "20", "2001:dbf::1": "20"})
    assert {a: table.lookup(a) for a in probes} == probes
    table.insert("2001:db8::/31", "31")  # a length 9..16 prefix over the child's slot
    probes.update({"2001:db8:2::9": "31", "2001:db9::1": "31"})
    assert {a: table.lookup(a) for a in probes} == probes
    table.delete("2001:db8:1::/48")  # the child goes, its slot takes the /31 again
    probes.update({"2001:db8:1::9": "31"})
    assert {a: table.lookup(a) for a in probes} == probes
    assert [str(n) for n in table] == ["2001::/20", "2001:db8::/31"]


def test_replace_semantics():
    table = PrefixTable()
    assert table.insert("192.0.2.0/24", "a") is None
    assert table.insert("192.0.2.0/24", "b") == "a"
    with pytest.raises(KeyError, match=r"192\.0\.2\.0/24"):
        table.insert("192.0.2.0/24", "c", replace=False)
    assert table["192.0.2.0/24"] == "b" and len(table) == 1
    assert table.insert("2001:db8::/32", "v6", replace=False) is None
    assert len(table) == 2


def test_items_order_is_ipv4_then_ipv6_by_address_then_length():
    prefixes = ["2001:db8::/32", "198.51.100.0/24", "0.0.0.0/0", "198.51.100.0/25", "::/0", "192.0.2.0/24", "2001:db8::/48"]
    table = PrefixTable((p, i) for i, p in enumerate(prefixes))
    want = sorted((ipaddress.ip_network(p) for p in prefixes), key=lambda n: (n.version, n))
    assert list(table) == want
    assert [v for _, v in table.items()] == [prefixes.index(str(n)) for n in want]


def test_snapshot_is_read_only_and_cheap_to_take_again():
    table = PrefixTable({"192.0.2.0/24": 1})
    snap = table.snapshot()
    assert snap.readonly and snap.snapshot() is snap
    for write in (lambda: snap.insert("198.51.100.0/24", 2), lambda: snap.delete("192.0.2.0/24"), snap.clear):
        with pytest.raises(TypeError, match="read-only"):
            write()
    writable = snap.copy()
    writable.insert("198.51.100.0/24", 2)
    assert len(snap) == 1 and len(writable) == 2 and len(table) == 1
    table.clear()
    assert len(table) == 0 and snap.lookup("192.0.2.9") == 1


def test_pickle_and_deepcopy_keep_content_and_read_only_flag():
    table = PrefixTable({"192.0.2.0/24": 1, "192.0.2.128/25": (2, "x"), "2001:db8::/32": 3, "0.0.0.0/0": 4})
    for original in (table, table.snapshot()):
        for clone in (pickle.loads(pickle.dumps(original)), copy.deepcopy(original)):
            assert list(clone.items()) == list(original.items())
            assert clone.readonly == original.readonly
            assert clone.lookup("192.0.2.200") == (2, "x") and clone.lookup("198.51.100.1") == 4
    clone = copy.deepcopy(table)
    clone.insert("192.0.2.0/26", 5)
    assert table.lookup("192.0.2.1") == 1 and clone.lookup("192.0.2.1") == 5


def test_lookup4_and_lookup6_take_ints_and_check_the_family():
    table = PrefixTable({"192.0.2.0/24": "v4", "2001:db8::/32": "v6"})
    assert table.lookup4(int(ipaddress.IPv4Address("192.0.2.9"))) == "v4"
    assert table.lookup6(int(ipaddress.IPv6Address("2001:db8::9"))) == "v6"
    assert table.lookup4(b"\xc0\x00\x02\x01") == "v4" and table.lookup6("2001:db8::1") == "v6"
    with pytest.raises(ValueError, match="2001:db8::1"):
        table.lookup4("2001:db8::1")
    with pytest.raises(ValueError, match="IPv6"):
        table.lookup6(b"\xc0\x00\x02\x01")
    with pytest.raises(ValueError, match="4294967296"):
        table.lookup4(2**32)
    with pytest.raises(TypeError, match="lookup4"):
        table.lookup(3221225985)


@pytest.mark.parametrize(
    "prefix, fragment",
    [
        ("192.0.2.1/24", "host bits"),
        ("2001:db8::1/32", "host bits"),
        ("192.0.2.0/33", "192.0.2.0/33"),
        ("2001:db8::/129", "2001:db8::/129"),
        ("192.0.2.256/24", "192.0.2.256/24"),
        ("not-a-prefix", "not-a-prefix"),
        ("", "''"),
        ((b"\xc0\x00\x02\x00", 33), "0..32"),
        ((b"\xc0\x00\x02\x00", 64), "IPv4"),  # an IPv6 length on an IPv4 address
        ((b"\xc0\x00\x02\x00", -1), "-1"),
        ((b"\xc0\x00\x02\x00", True), "True"),
        ((b"\xc0\x00\x02\x01", 24), "host bits"),
        ((ipaddress.IPv6Address("2001:db8::1"), 64), "host bits"),
        ((b"\xc0\x00\x02", 24), "3"),
        ((3221225984, 24), "ambiguous"),
        (("2001:db8::", 200), "200"),
    ],
)
def test_bad_prefixes_raise_value_error_naming_the_value(prefix, fragment):
    table = PrefixTable()
    for call in (lambda: table.insert(prefix, 1), lambda: table.get(prefix), lambda: prefix in table):
        with pytest.raises(ValueError) as info:
            call()
        assert fragment in str(info.value)
    assert len(table) == 0


def test_bad_addresses_and_types():
    table = PrefixTable({"192.0.2.0/24": 1})
    with pytest.raises(ValueError, match="5"):
        table.lookup(b"\x01\x02\x03\x04\x05")
    with pytest.raises(ValueError, match="'192.0.2'"):
        table.lookup("192.0.2")
    with pytest.raises(TypeError, match="float"):
        table.lookup(1.5)
    with pytest.raises(TypeError, match="list"):
        table.lookup([192, 0, 2, 1])  # has a length of 4 but is no buffer
    with pytest.raises(TypeError, match="float"):
        table.insert(1.5, 1)
    with pytest.raises(ValueError, match="None"):
        table.insert("198.51.100.0/24", None)
    with pytest.raises(KeyError, match=r"198\.51\.100\.0/24"):
        table.delete("198.51.100.0/24")
    with pytest.raises(KeyError):
        table["198.51.100.0/24"]
    assert table.lookup("1::1") is None  # a 4-character string is text, not 4 raw bytes


def test_random_lengths_of_raw_bytes_only_raise_value_error():
    rng = random.Random(5)
    table = PrefixTable({"0.0.0.0/0": 4, "::/0": 6})
    for _ in range(400):
        raw = rng.randbytes(rng.randrange(0, 40))
        if len(raw) in (4, 16):
            assert table.lookup(raw) == {4: 4, 16: 6}[len(raw)]
        else:
            with pytest.raises(ValueError):
                table.lookup(raw)


def test_fast_text_parser_agrees_with_ipaddress():
    rng = random.Random(9)
    samples = ["0.0.0.0/0", "255.255.255.255/32", "192.0.2.0/24", "192.0.2.0", "01.2.3.0/24", "1.2.3.0/08", "1.2.3.0/", "1..3.4/8"]
    samples += ["١.2.3.0/24", "1.2.3.0/ 8", "+1.2.3.0/24", "1_0.2.3.0/24", "256.0.0.0/8", "1.2.3.4/33", "1.2.3.0//24"]
    samples += ["1.2.3.0/24/", "1.2.3.0/24 ", " 1.2.3.0/24", "1.2.3.0/0x18", "1.2.3.0/255.255.255.0", "1.2.3.4/-1"]
    for _ in range(3000):
        samples.append("".join(rng.choice("0123456789./") for _ in range(rng.randrange(1, 18))))
    for text in samples:
        try:
            net = ipaddress.ip_network(text)
            want = (net.max_prefixlen, int(net.network_address), net.prefixlen)
        except ValueError:
            want = None
        try:
            got = _prefix(text)
        except ValueError:
            got = None
        assert got == want, text


def test_the_example_in_docs_runs():
    doc = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "trie.md").read_text()
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/trie.md", "exec"), {})
    printed = re.search(r"^# (\[.*\])$", code, re.M).group(1)
    assert out.getvalue().strip() == printed
