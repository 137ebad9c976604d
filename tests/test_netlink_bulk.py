"""Bulk-path helpers: the fast IPv4 prefix parser agrees with ipaddress (oracle, seeded fuzz),
and a dump pauses the cyclic GC only while it decodes."""

from __future__ import annotations

import gc
import ipaddress
import random

import pytest

from support_netlink import done, fake_socket, reply
from tunkit._uapi import RTM
from tunkit.netlink.client import _ipv4_prefix, _network

TABLE = [
    "198.18.0.0/30", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.4", "1.2.3.0/024", "01.2.3.4/32", "1.2.3.4/33",
    "1.2.3.4/24", "256.1.1.1/32", "1.2.3/24", "1.2.3.4.5/32", "\u0661.2.3.4/32", "1.2.3.4/\u0663", "1.2.3.4/ 24",
    " 1.2.3.4/32", "1.2.3.4/", "/24", "a.b.c.d/1", "1.2.3.4/255.255.255.255", "::/0", "2001:db8::/32",
    "1..3.4/32", "00.0.0.0/32", "1.2.3.4\x00/32", "0x1.2.3.4/32", "1.2.3.4 /32", "198.51.100.0/24", "",
]


def _outcome(fn, text):
    try:
        net = fn(text)
    except ValueError as e:
        return "error", str(e)
    return type(net).__name__, net


def _cases(seed: int = 15, n: int = 20_000):
    rng = random.Random(seed)
    yield from TABLE
    octets = ["0", "00", "01", "1", "10", "99", "255", "256", "099", "0x1", " 1", "1 ", "\u0661"]
    for _ in range(n):
        k = rng.randrange(4)
        if k == 0:
            yield ".".join(str(rng.randrange(300)) for _ in range(4)) + "/" + str(rng.randrange(40))
        elif k == 1:
            yield ".".join(rng.choice(octets) for _ in range(rng.choice((3, 4, 4, 5)))) + rng.choice(
                ["", "/", "/0", "/8", "/32", "/08", "/x", "/033", "/255.0.0.0"])
        elif k == 2:
            plen = rng.randrange(33)
            yield str(ipaddress.IPv4Network((rng.getrandbits(32) >> (32 - plen) << (32 - plen) if plen else 0, plen)))
        else:
            yield "".join(rng.choice("0123456789./ x:") for _ in range(rng.randrange(0, 18)))


def test_route_destination_text_parses_exactly_as_ipaddress_does():
    hits = 0
    for text in _cases():
        want = _outcome(lambda t: ipaddress.ip_network(t, strict=True), text)
        assert _outcome(lambda t: _network(t, None), text) == want, repr(text)
        fast = _ipv4_prefix(text)
        if fast is not None:
            hits += 1
            assert want == ("IPv4Network", fast), repr(text)
    assert hits > 5_000  # the fast path is taken for the common spelling


@pytest.mark.parametrize("enabled", [True, False])
def test_dump_pauses_the_gc_while_decoding_and_restores_it(enabled):
    states = []

    def handler(req):
        return [reply(req, RTM.NEWLINK, b"x" * 16) + reply(req, RTM.NEWLINK, b"y" * 16), done(req)]

    s = fake_socket(handler)
    was = gc.isenabled()
    (gc.enable if enabled else gc.disable)()
    try:
        items = s.dump(RTM.GETLINK, b"", lambda t, p: states.append(gc.isenabled()) or bytes(p))
        assert items == [b"x" * 16, b"y" * 16]
        assert states == [False, False]
        assert gc.isenabled() is enabled

        def failing(t, p):
            raise ValueError("bad item")

        with pytest.raises(ValueError):
            s.dump(RTM.GETLINK, b"", failing)
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
