"""Configuration: every validation rule (key path + value in the message), keys, route plan, reload diff."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import stat

import pytest

from tunkit.app.config import (
    ConfigError,
    KernelRoute,
    advmss_for,
    generate_key_file,
    kernel_routes,
    loads,
    parse_endpoint,
    plan_reload,
    read_key_file,
    to_json,
)

BASE = """
[device]
name = "tk%d"
mtu = 1400
[network]
addresses = ["198.18.0.1/16", "2001:db8:1::1/64"]
listen = "[::]:4800"
insecure = true
[[peers]]
name = "b"
endpoint = "198.51.100.2:4800"
prefixes = ["198.18.0.2/32", "2001:db8:1::2/128"]
[[peers]]
name = "c"
endpoint = "[2001:db8:ff::3]:4800"
prefixes = ["198.18.0.3/32"]
"""


def cfg(extra: str = "", base: str = BASE, **kw):
    return loads(base + extra, file="t.toml", **kw)


def test_valid_minimal_and_defaults():
    c = cfg()
    assert c.device.name == "tk%d" and c.device.mtu == 1400 and c.device.workers == 1 and c.device.offloads
    assert [str(a) for a in c.addresses] == ["198.18.0.1/16", "2001:db8:1::1/64"]
    assert str(c.listen) == "[::]:4800"
    assert [p.name for p in c.peers] == ["b", "c"]
    assert str(c.peers[1].endpoint) == "[2001:db8:ff::3]:4800"
    assert c.peer_key(c.peers[0]) is None  # insecure


def test_json_is_accepted_and_equivalent():
    doc = {
        "device": {"name": "tk%d", "mtu": 1400},
        "network": {"addresses": ["198.18.0.1/16", "2001:db8:1::1/64"], "listen": "[::]:4800", "insecure": True},
        "peers": [
            {"name": "b", "endpoint": "198.51.100.2:4800", "prefixes": ["198.18.0.2/32", "2001:db8:1::2/128"]},
            {"name": "c", "endpoint": "[2001:db8:ff::3]:4800", "prefixes": ["198.18.0.3/32"]},
        ],
    }
    a = loads(json.dumps(doc), file="t.json")
    b = cfg()
    assert to_json(a) | {"file": ""} == to_json(b) | {"file": ""}


# (name, extra TOML appended to BASE or a replacement document, key path, fragment of the message)
INVALID = [
    ("unknown top key", "[tunnel]\nx = 1\n", "tunnel", "unknown key"),
    ("unknown device key", None, "device.mut", "unknown key"),
    ("mtu too small", None, "device.mtu", "out of range 576..65535"),
    ("mtu not int", None, "device.mtu", "expected an integer, got '1400'"),
    ("bool as int", None, "device.workers", "expected an integer, got true"),
    ("name too long", None, "device.name", "'averyveryverylongname' is too long: 21 bytes, at most 15"),
    ("name two templates", None, "device.name", "'t%d%d' must contain exactly one '%d'"),
    ("name is a dot", None, "device.name", "'.' is not allowed"),
    ("ipv6 below 1280", None, "device.mtu", "below 1280"),
    ("address without length", None, "network.addresses[0]", "needs a prefix length"),
    ("address overlap", None, "network.addresses[1]", "overlaps network.addresses[0]"),
    ("address is network", None, "network.addresses[0]", "is the network address"),
    ("no network", None, "network", "is required"),
    ("listen bad port", None, "network.listen", "port '99999' is not 1..65535"),
    ("listen hostname", None, "network.listen", "is not an IP address"),
    ("insecure not bool", None, "network.insecure", "expected true or false"),
    ("partial checksums not bool", None, "network.partial_checksums", "expected true or false"),
    ("partial checksums authenticated", None, "network.partial_checksums", "needs network.insecure = true"),
    ("no peers", None, "peers", "is required"),
    ("peer no name", None, "peers[0].name", "is required"),
    ("peer dup name", None, "peers[1].name", "already the name of peers[0]"),
    ("peer bad endpoint", None, "peers[0].endpoint", "a port is required"),
    ("peer host bits", None, "peers[0].prefixes[0]", "has host bits set (did you mean 198.18.0.0/24?)"),
    ("peer owns me", None, "peers[0].prefixes[0]", "contains this host's own address 198.18.0.1"),
    ("peers overlap", None, "peers[1].prefixes[0]", "overlaps 198.18.0.0/24 of peer 'b'"),
    ("peer no key", None, "peers[0].key_file", "no key"),
    ("peer empty prefixes", None, "peers[0].prefixes", "at least one prefix"),
    ("route outside overlay", '[[routes]]\nroute = "192.0.2.0/24"\nmtu = 1300\n', "routes[0].route", "not inside any overlay network"),
    ("route mtu missing", '[[routes]]\nroute = "198.18.5.0/24"\n', "routes[0].mtu", "is required"),
    ("route mtu small", '[[routes]]\nroute = "198.18.5.0/24"\nmtu = 499\n', "routes[0].mtu", "out of range 500..65535"),
    ("route missing", '[[routes]]\nmtu = 1300\n', "routes[0].route", "is required"),
    ("unsafe inside overlay", '[[unsafe_routes]]\nroute = "198.18.9.0/24"\nvia = "198.18.0.2"\n', "unsafe_routes[0].route", "starts inside the overlay network"),
    ("unsafe no via", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\n', "unsafe_routes[0].via", "is required"),
    ("unsafe via type", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = 5\n', "unsafe_routes[0].via", "expected a gateway address"),
    ("unsafe via empty", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = []\n', "unsafe_routes[0].via", "non-empty list"),
    ("via no gateway", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{weight = 2}]\n', "unsafe_routes[0].via[0].gateway", "is required"),
    ("via weight zero", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.2", weight = 0}]\n', "unsafe_routes[0].via[0].weight", "0 is not an integer weight"),
    ("via weight huge", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.2", weight = 2147483648}]\n', "unsafe_routes[0].via[0].weight", "2147483648 is not"),
    ("via weight string", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.2", weight = "3"}]\n', "unsafe_routes[0].via[0].weight", "'3' is not"),
    ("via outside overlay", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "203.0.113.1"\n', "unsafe_routes[0].via", "not inside any overlay network"),
    ("via no peer", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.9"\n', "unsafe_routes[0].via", "belongs to no peer"),
    ("via twice", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.2"}, {gateway = "198.18.0.2"}]\n', "unsafe_routes[0].via[1].gateway", "listed twice"),
    ("unsafe mtu small", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmtu = 300\n', "unsafe_routes[0].mtu", "below 500"),
    ("unsafe metric negative", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmetric = -1\n', "unsafe_routes[0].metric", "out of range"),
    ("unsafe install string", '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\ninstall = "t"\n', "unsafe_routes[0].install", "expected true or false"),
    ("log level", '[logging]\nlevel = "loud"\n', "logging.level", "'loud' is not one of"),
]

REPLACEMENTS = {
    "unknown device key": ('mtu = 1400', 'mut = 1400'),
    "mtu too small": ('mtu = 1400', 'mtu = 100'),
    "mtu not int": ('mtu = 1400', 'mtu = "1400"'),
    "bool as int": ('mtu = 1400', 'mtu = 1400\nworkers = true'),
    "name too long": ('name = "tk%d"', 'name = "averyveryverylongname"'),
    "name two templates": ('name = "tk%d"', 'name = "t%d%d"'),
    "name is a dot": ('name = "tk%d"', 'name = "."'),
    "ipv6 below 1280": ('mtu = 1400', 'mtu = 1200'),
    "address without length": ('"198.18.0.1/16", ', '"198.18.0.1", '),
    "address overlap": ('"2001:db8:1::1/64"', '"198.18.7.1/24"'),
    "address is network": ('"198.18.0.1/16"', '"198.18.0.0/16"'),
    "no network": ('[network]\naddresses = ["198.18.0.1/16", "2001:db8:1::1/64"]\nlisten = "[::]:4800"\ninsecure = true\n', ''),
    "listen bad port": ('listen = "[::]:4800"', 'listen = "0.0.0.0:99999"'),
    "listen hostname": ('listen = "[::]:4800"', 'listen = "example.org:4800"'),
    "insecure not bool": ('insecure = true', 'insecure = 1'),
    "partial checksums not bool": ('insecure = true', 'insecure = true\npartial_checksums = "yes"'),
    "partial checksums authenticated": ('insecure = true', 'key_file = "net.key"\npartial_checksums = true'),
    "no peers": (BASE[BASE.index("[[peers]]"):], ''),
    "peer no name": ('name = "b"\n', ''),
    "peer dup name": ('name = "c"', 'name = "b"'),
    "peer bad endpoint": ('"198.51.100.2:4800"', '"198.51.100.2"'),
    "peer host bits": ('"198.18.0.2/32", "2001:db8:1::2/128"', '"198.18.0.2/24"'),
    "peer owns me": ('"198.18.0.2/32", "2001:db8:1::2/128"', '"198.18.0.0/24"'),
    "peers overlap": ('"198.18.0.2/32", "2001:db8:1::2/128"', '"198.18.0.0/24"'),
    "peer no key": ('insecure = true', 'insecure = false'),
    "peer empty prefixes": ('["198.18.0.2/32", "2001:db8:1::2/128"]', '[]'),
}


@pytest.mark.parametrize("name,extra,key,fragment", INVALID, ids=[c[0] for c in INVALID])
def test_each_rule_names_key_and_value(name, extra, key, fragment):
    base = BASE
    if name in REPLACEMENTS:
        old, new = REPLACEMENTS[name]
        assert old in base, name
        base = base.replace(old, new, 1)
        if name == "peer owns me":  # make the peer's prefix contain this host's address
            base = base.replace('prefixes = ["198.18.0.3/32"]', 'prefixes = ["198.18.1.3/32"]')
        if name == "peers overlap":  # .0/24 contains our .1, so move us out of it
            base = base.replace('"198.18.0.1/16"', '"198.18.9.1/16"')
    with pytest.raises(ConfigError) as ei:
        loads(base + (extra or ""), file="t.toml")
    e = ei.value
    assert isinstance(e, ValueError)
    keys = [k for k, _ in e.problems]
    assert key in keys, f"{name}: {key} not in {e.problems}"
    msg = dict(e.problems)[key]
    assert fragment in msg, f"{name}: {fragment!r} not in {msg!r}"
    assert "t.toml" in str(e)


def test_many_problems_reported_together():
    with pytest.raises(ConfigError) as ei:
        cfg('[[routes]]\nroute = "192.0.2.0/24"\nmtu = 1\n[logging]\nlevel = "x"\n')
    assert len(ei.value.problems) == 3
    assert str(ei.value).startswith("t.toml: 3 problems:")


def test_syntax_errors_name_the_file():
    with pytest.raises(ConfigError, match=r"^t.toml: not valid TOML"):
        loads("[device\n", file="t.toml")
    with pytest.raises(ConfigError, match=r"^t.json: not valid JSON"):
        loads("{", file="t.json")
    with pytest.raises(ConfigError, match="expected a table"):
        loads("[1, 2]", file="t.json")


@pytest.mark.parametrize(
    "text,want",
    [
        ("198.51.100.2:4800", ("198.51.100.2", 4800)),
        ("[2001:db8::2]:53", ("2001:db8::2", 53)),
        ("2001:db8::2", None),
        ("198.51.100.2", None),
        ("[2001:db8::2", None),
        ("198.51.100.2:0", None),
        ("host:80", None),
    ],
)
def test_parse_endpoint(text, want):
    if want is None:
        with pytest.raises(ValueError):
            parse_endpoint(text)
    else:
        e = parse_endpoint(text)
        assert (str(e.address), e.port) == want
    assert str(parse_endpoint("2001:db8::2", default_port=7)) == "[2001:db8::2]:7"


def test_key_files(tmp_path):
    k = tmp_path / "net.key"
    generate_key_file(str(k))
    assert stat.S_IMODE(os.stat(k).st_mode) == 0o600
    key = read_key_file(str(k))
    assert len(key) == 32
    with pytest.raises(FileExistsError):
        generate_key_file(str(k))  # never overwrites
    os.chmod(k, 0o644)
    with pytest.raises(ValueError, match="accessible by its group and other users .mode 0644."):
        read_key_file(str(k))
    bad = tmp_path / "bad.key"
    bad.write_text("not base64!!\n")
    os.chmod(bad, 0o600)
    with pytest.raises(ValueError, match="does not hold a base64 key"):
        read_key_file(str(bad))
    short = tmp_path / "short.key"
    short.write_text(base64.b64encode(b"x" * 16).decode())
    os.chmod(short, 0o600)
    with pytest.raises(ValueError, match="16-byte key, expected 32"):
        read_key_file(str(short))


def test_keys_resolve_relative_to_config_and_per_peer_override(tmp_path):
    generate_key_file(str(tmp_path / "net.key"))
    generate_key_file(str(tmp_path / "b.key"))
    text = BASE.replace("insecure = true", 'key_file = "net.key"').replace('name = "b"', 'name = "b"\nkey_file = "b.key"')
    path = tmp_path / "host.toml"
    path.write_text(text)
    from tunkit.app.config import load

    c = load(str(path))
    b, cc = c.peers
    assert c.peer_key(b) == read_key_file(str(tmp_path / "b.key"))
    assert c.peer_key(cc) == read_key_file(str(tmp_path / "net.key"))
    assert c.peer_key(b) != c.peer_key(cc)
    os.chmod(tmp_path / "b.key", 0o604)
    with pytest.raises(ConfigError) as ei:
        load(str(path))
    assert ei.value.key == "peers[0].key_file"


def test_missing_key_file_says_how_to_make_one(tmp_path):
    path = tmp_path / "h.toml"
    path.write_text(BASE.replace("insecure = true", 'key_file = "nope.key"'))
    from tunkit.app.config import load

    with pytest.raises(ConfigError, match="tunkit genkey nope.key"):
        load(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        load(str(tmp_path / "absent.toml"))


def N(s):
    return ipaddress.ip_network(s)


def test_kernel_routes_mtu_advmss_metric():
    c = cfg(
        '[[routes]]\nroute = "198.18.5.0/24"\nmtu = 1200\n'
        '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmetric = 0\n'
        '[[unsafe_routes]]\nroute = "198.51.100.0/24"\nvia = "198.18.0.3"\nmtu = 1300\ninstall = false\n'
        '[[unsafe_routes]]\nroute = "2001:db8:9::/48"\nvia = "198.18.0.2"\nmtu = 1300\nmetric = 7\n'
    )
    assert c.device_mtu == 1400
    got = kernel_routes(c)
    assert got == [
        KernelRoute(N("192.0.2.0/24"), metric=0),  # metric 0 is kept (absent would be None)
        KernelRoute(N("198.18.5.0/24"), mtu=1200, advmss=1160),
        KernelRoute(N("2001:db8:9::/48"), metric=7, mtu=1300, advmss=1240),
    ]
    assert advmss_for(1400, 4) == 1360 and advmss_for(1400, 6) == 1340


def test_device_mtu_is_the_largest_and_connected_routes_keep_default():
    c = cfg('[[routes]]\nroute = "198.18.5.0/24"\nmtu = 9000\n[[routes]]\nroute = "198.18.6.0/24"\nmtu = 1500\n')
    assert c.device_mtu == 9000  # not "the last one above the old value" (nebula quirk)
    got = {str(k.dst): k for k in kernel_routes(c)}
    assert got["198.18.0.0/16"] == KernelRoute(N("198.18.0.0/16"), mtu=1400, advmss=1360, src=ipaddress.ip_address("198.18.0.1"))
    assert got["2001:db8:1::/64"].metric == 256
    assert got["198.18.5.0/24"].mtu is None  # equals the device MTU: inherits it
    assert got["198.18.6.0/24"].mtu == 1500


def test_reload_plan_unchanged_is_empty():
    assert plan_reload(cfg(), cfg()).empty


def test_reload_plan_routes_added_removed_changed():
    old = cfg('[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmtu = 1300\n'
              '[[unsafe_routes]]\nroute = "198.51.100.0/24"\nvia = "198.18.0.2"\n')
    new = cfg('[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmtu = 1200\n'
              '[[unsafe_routes]]\nroute = "2001:db8:7::/48"\nvia = "198.18.0.3"\n')
    p = plan_reload(old, new)
    assert [str(r.dst) for r in p.routes_delete] == ["198.51.100.0/24"]
    assert sorted(str(r.dst) for r in p.routes_replace) == ["192.0.2.0/24", "2001:db8:7::/48"]
    assert p.routing_changed and not p.cannot_change_live and p.device_mtu is None


def test_reload_plan_metric_change_is_delete_plus_add():
    old = cfg('[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmetric = 5\n')
    new = cfg('[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = "198.18.0.2"\nmetric = 6\n')
    p = plan_reload(old, new)
    assert [(str(r.dst), r.metric) for r in p.routes_delete] == [("192.0.2.0/24", 5)]
    assert [(str(r.dst), r.metric) for r in p.routes_replace] == [("192.0.2.0/24", 6)]


def test_reload_plan_mtu_peers_and_fixed_settings():
    new = cfg(base=BASE.replace("mtu = 1400", "mtu = 1380\nworkers = 2").replace('"198.51.100.2:4800"', '"198.51.100.9:4800"')
              .replace('name = "c"\nendpoint = "[2001:db8:ff::3]:4800"\nprefixes = ["198.18.0.3/32"]',
                       'name = "d"\nendpoint = "198.51.100.4:4800"\nprefixes = ["198.18.0.4/32"]'))
    p = plan_reload(cfg(), new)
    assert p.device_mtu == 1380
    assert p.peers_changed == ("b",) and p.peers_added == ("d",) and p.peers_removed == ("c",)
    assert len(p.cannot_change_live) == 1 and "device.workers changed from 1 to 2" in p.cannot_change_live[0]
    assert p.config.device.workers == 1 and p.config.device.mtu == 1380  # fixed kept, the rest taken
    assert plan_reload(cfg(), p.config).cannot_change_live == ()


def test_partial_checksums_default_off_and_fixed_while_running():
    assert not cfg().partial_checksums
    on = cfg(base=BASE.replace("insecure = true", "insecure = true\npartial_checksums = true"))
    assert on.partial_checksums and to_json(on)["network"]["partial_checksums"] is True
    p = plan_reload(cfg(), on)
    assert p.cannot_change_live == ("network.partial_checksums changed from false to true: cannot change while "
                                    "running; restart tunkit",) and not p.config.partial_checksums


def test_reload_plan_key_change_counts_as_peer_change(tmp_path):
    def keyed(seed):
        key = bytes([seed]) * 32
        return loads(BASE.replace("insecure = true", 'key_file = "k"'), file="t.toml", key_reader=lambda p: key)

    p = plan_reload(keyed(1), keyed(2))
    assert set(p.peers_changed) == {"b", "c"}


@pytest.mark.parametrize("mode", [0o640, 0o660, 0o620, 0o604, 0o602, 0o610, 0o700 | 0o040])
def test_key_files_open_to_the_group_or_others_are_refused_naming_file_and_mode(tmp_path, mode):
    k = tmp_path / "net.key"
    generate_key_file(str(k))
    os.chmod(k, mode)
    with pytest.raises(ValueError) as ei:
        read_key_file(str(k))
    assert str(k) in str(ei.value) and f"mode {mode:04o}" in str(ei.value) and "chmod 600" in str(ei.value)
    os.chmod(k, 0o400)  # read-only for the owner is fine
    assert len(read_key_file(str(k))) == 32


def test_a_key_of_the_wrong_length_names_the_file_and_both_lengths(tmp_path):
    k = tmp_path / "long.key"
    k.write_text(base64.b64encode(b"x" * 45).decode())
    os.chmod(k, 0o600)
    with pytest.raises(ValueError, match=r"long.key holds a 45-byte key, expected 32"):
        read_key_file(str(k))


@pytest.mark.parametrize("mode,warned", [(0o600, False), (0o644, False), (0o664, True), (0o646, True)])
def test_a_config_file_others_can_write_is_warned_about(tmp_path, mode, warned, capsys):
    from tunkit.cli import main
    from tunkit.app.config import load

    path = tmp_path / "h.toml"
    path.write_text(BASE)
    os.chmod(path, mode)
    c = load(str(path))
    assert bool(c.warnings) == warned
    if warned:
        assert str(path) in c.warnings[0] and f"mode {mode:04o}" in c.warnings[0]
    assert main(["check", str(path)]) == 0
    err = capsys.readouterr().err
    assert ("warning:" in err) == warned


def test_port_digits_are_ascii_only():
    with pytest.raises(ValueError, match="port"):
        parse_endpoint("198.51.100.2:\uff14\uff18\uff10\uff10")  # full-width 4800


# -- fuzz: loads() raises only ConfigError, whatever the text ------------------------------------------
def _random_value(rng, depth):
    kind = rng.randrange(8 if depth < 6 else 5)
    if kind == 0:
        return rng.randrange(-2**40, 2**40)
    if kind == 1:
        return rng.choice(["198.18.0.2", "192.0.2.0/24", "x", "", "[::]:4800", "tk%d", "\uff11\uff12"])
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return rng.random() * 1e6
    if kind == 4:
        return None
    if kind == 5:
        return [_random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    keys = ["name", "mtu", "route", "via", "gateway", "weight", "prefixes", "endpoint", "addresses", "peers",
            "device", "network", "unsafe_routes", "routes", "logging", "level", "insecure", "listen", "key_file"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randrange(5))}


def _must_be_config_error(text, file):
    try:
        loads(text, file=file, key_reader=lambda p: bytes(32))
    except ConfigError as e:
        assert file in str(e)


def test_fuzz_random_documents_raise_only_config_error():
    import random

    rng = random.Random(1414)
    for _ in range(400):
        doc = {k: _random_value(rng, 1) for k in rng.sample(["device", "network", "peers", "routes",
                                                             "unsafe_routes", "logging", "x"], rng.randrange(1, 5))}
        if rng.random() < 0.5:
            doc["peers"] = [_random_value(rng, 2) for _ in range(rng.randrange(3))]
        _must_be_config_error(json.dumps(doc), "f.json")


def test_fuzz_truncated_and_mutated_files_raise_only_config_error():
    import random

    rng = random.Random(1415)
    good = BASE + '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.2", weight = 2}]\n'
    for _ in range(300):
        cut = good[: rng.randrange(len(good))]
        _must_be_config_error(cut, "t.toml")
        b = bytearray(good.encode())
        for _ in range(rng.randrange(1, 6)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        _must_be_config_error(bytes(b), "t.toml")


@pytest.mark.parametrize("text,file", [
    ("x = " + "[" * 100_000 + "]" * 100_000, "deep.toml"),  # arrays, far past the recursion limit
    ("x = " + "{a = " * 5000 + "1" + "}" * 5000, "deep.toml"),  # inline tables
    ("[" * 100_000, "deep.toml"),  # unterminated
    ("{" + '"a": {' * 100_000 + "}" * 100_001, "deep.json"),
    ("[" * 100_000 + "]" * 100_000, "deep.json"),
    ("{" + '"a": [' * 17 + "]" * 17 + "}", "d.json"),  # just past MAX_DEPTH
    ("a" + ".a" * 100_000 + " = 1", "dotted.toml"),  # no bracket at all; tomllib is quadratic in the parts
    ("[" + "a." * 50_000 + "a]\nx = 1", "dotted.toml"),  # a table header
    ('x = {' + 'a."b".' * 20_000 + 'c = 1}', "dotted.toml"),  # quoted parts, inside an inline table
])
def test_deep_nesting_is_a_config_error_naming_the_file(text, file):
    with pytest.raises(ConfigError, match=rf"^{file}: .*nested"):
        loads(text, file=file)


def test_floats_and_quoted_dots_do_not_count_as_nesting():
    c = cfg('[[routes]]\nroute = "198.18.5.0/24"\nmtu = 1280\n', base=BASE.replace(
        'name = "tk%d"', 'name = "tk%d"  # a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r.s'))
    assert c.routes[0].mtu == 1280
    from tunkit.app.config import _bracket_depth

    assert _bracket_depth(json.dumps({"x": [1.5] * 100, "y": "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q"})) == 2
    assert _bracket_depth('a."b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q.r".s = 1') == 3  # a quoted part is one part


def test_nesting_inside_strings_and_comments_does_not_count():
    c = cfg(base=BASE.replace('name = "tk%d"', 'name = "tk%d"  # ' + "[" * 100))
    assert c.device.name == "tk%d"
    with pytest.raises(ConfigError, match=r"device.name"):  # a name of brackets is refused by the name rule
        cfg(base=BASE.replace('name = "tk%d"', 'name = "' + "[" * 40 + '"'))


def test_validate_refuses_deep_data_without_recursion():
    from tunkit.app.config import validate

    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(ConfigError, match="nested more than 16 levels"):
        validate({"device": deep}, file="api")


# The set rules (tunkit.overlay.spec) as the file reports them: the tunnel refused each of these while check passed.
_D = '\n[[peers]]\nname = "d"\nendpoint = "{ep}"\nprefixes = ["198.18.0.4/32"]\n'
SET_RULES = [
    ("one endpoint, two peers", BASE + _D.format(ep="198.51.100.2:4800"), "peers[2].endpoint",
     "198.51.100.2:4800 is also the endpoint of peer 'b' (peers[0])"),
    ("one endpoint spelled twice", BASE + _D.format(ep="[2001:DB8:FF::3]:4800"), "peers[2].endpoint",
     "also the endpoint of peer 'c'"),
    ("IPv4 and IPv4-mapped are one endpoint", BASE + _D.format(ep="[::ffff:198.51.100.2]:4800"), "peers[2].endpoint",
     "also the endpoint of peer 'b'"),
    ("IPv6 endpoint, IPv4 listen", BASE.replace('listen = "[::]:4800"', 'listen = "198.51.100.1:4800"'),
     "peers[1].endpoint", "an IPv6 endpoint needs an IPv6 listen address"),
    ("IPv4 endpoint, one IPv6 listen address", BASE.replace('listen = "[::]:4800"', 'listen = "[2001:db8:ff::1]:4800"'),
     "peers[0].endpoint", "is IPv4 and network.listen ([2001:db8:ff::1]:4800) a specific IPv6 address"),
    ("three gateways in one peer (nebula's multipath example)",
     BASE.replace('["198.18.0.3/32"]', '["198.18.0.8/29"]')
     + '[[unsafe_routes]]\nroute = "192.0.2.0/24"\nvia = [{gateway = "198.18.0.9"}, {gateway = "198.18.0.10"}, '
       '{gateway = "198.18.0.11"}]\n', "unsafe_routes[0].via[2].gateway",
     "198.18.0.11 and 198.18.0.9 (via[0]) both belong to peer 'c'"),
]


@pytest.mark.parametrize("name,text,key,fragment", SET_RULES, ids=[c[0] for c in SET_RULES])
def test_set_rules_name_the_key(name, text, key, fragment):
    with pytest.raises(ConfigError) as ei:
        loads(text, file="t.toml")
    problems = dict(ei.value.problems)
    assert key in problems and fragment in problems[key], ei.value.problems


def test_the_same_rules_refuse_the_specs_directly():
    """The tunnel's check_config is the config's rule set: what a file is refused for, specs are too."""
    from tunkit.overlay.spec import check_config

    c = cfg()
    assert len(check_config(c.peer_specs, c.route_specs, insecure=True, v6sock=True)) == 2
    dup = [*c.peer_specs, replace_spec(c.peer_specs[0], name="z")]
    with pytest.raises(ConfigError, match=r"peers\[2\].endpoint: .*also the endpoint of peer 'b'"):
        check_config(dup, insecure=True, v6sock=True)
    with pytest.raises(ConfigError, match="an IPv6 endpoint needs an IPv6 listen address"):
        check_config(c.peer_specs, insecure=True, v6sock=False)


def replace_spec(spec, **kw):
    import dataclasses

    return dataclasses.replace(spec, **kw)


def test_a_wrong_length_key_is_refused_by_the_set_rules_too():
    text = BASE.replace("insecure = true", 'key_file = "k"')
    with pytest.raises(ConfigError, match=r"peers\[0\].key_file: peer b: a 45-byte key; keys are 32 bytes"):
        loads(text, file="t.toml", key_reader=lambda p: b"x" * 45)  # a key file's base64 text read raw
    assert len(loads(text, file="t.toml", key_reader=lambda p: bytes(32)).peer_specs[0].key) == 32


def test_reload_plan_is_refused_when_the_kept_settings_break_the_new_file():
    old = cfg(base=BASE.replace('listen = "[::]:4800"', 'listen = "[::]:4800"'))
    v4 = BASE.replace('listen = "[::]:4800"', 'listen = "0.0.0.0:4800"').replace(
        'endpoint = "[2001:db8:ff::3]:4800"', 'endpoint = "198.51.100.3:4800"')
    new_v4 = cfg(base=v4)
    plan_reload(old, new_v4)  # IPv4 endpoints on the kept [::] socket: fine
    back = cfg(base=v4)
    with_v6 = cfg(base=BASE)  # needs [::] again
    with pytest.raises(ConfigError, match="IPv6 listen address, with network.listen kept as running"):
        plan_reload(back, with_v6)


def test_reload_plan_names_a_renamed_peer():
    new = cfg(base=BASE.replace('name = "c"', 'name = "c2"'))
    p = plan_reload(cfg(), new)
    assert p.peers_renamed == (("c", "c2"),) and p.peers_added == ("c2",) and p.peers_removed == ("c",)


def test_first_overlaps_matches_the_pairwise_oracle():
    import random

    from tunkit.app.config import first_overlaps

    rng = random.Random(77)
    for _ in range(1500):
        nets = []
        for _ in range(rng.randrange(1, 12)):
            v6 = rng.random() < 0.3
            length = rng.randrange(100, 129) if v6 else rng.randrange(20, 33)
            base = (0x20010DB8 << 96) if v6 else (198 << 24 | 18 << 16)
            addr = base | rng.randrange(0, 2**12) << (8 if v6 else 0)
            nets.append(ipaddress.ip_network((addr, length), strict=False))
        got = first_overlaps(nets)
        oracle = {i for i in range(len(nets)) if any(nets[j].overlaps(nets[i]) for j in range(i))}
        assert set(got) == oracle, nets
        assert all(b < a and nets[a].overlaps(nets[b]) for a, b in got.items())


def test_a_fifo_or_directory_is_refused_without_blocking(tmp_path):
    from tunkit.app.config import load

    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load(str(fifo))  # no writer: a plain open() would block here forever
    with pytest.raises(ConfigError, match="not a regular file"):
        load(str(tmp_path))
