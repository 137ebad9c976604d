"""The request path's fast parsers (objects.py) against the ipaddress/general paths they shortcut (oracles)."""

from __future__ import annotations

import ipaddress
import random

import pytest

from tunkit.netlink.objects import ObjectsMixin, _ipv4_address, _ipv4_prefix, _prefix, parse_lladdr
from tunkit.netlink.rule import RuleMessage

TEXTS = ["198.19.0.1/32", "198.19.0.1", "198.18.0.0/15", "0.0.0.0/0", "192.0.2.0/24", "192.0.2.1/24",
         "192.0.2.01/32", "1.2.3", "256.1.1.1", "1.2.3.4/33", "1.2.3.4/+1", "1.2.3.4/ 8", "1.2.3.4/008",
         " 1.2.3.4", "1.2.3.4\0", "١.2.3.4", "2001:db8::/32", "", "/", "1.2.3.4/"]


def _oracle(fn, *args):
    try:
        return fn(*args)
    except ValueError as e:
        return type(e)


@pytest.mark.parametrize("text", TEXTS)
def test_ipv4_prefix_is_ip_network_or_declines(text):
    got = _ipv4_prefix(text)
    if got is not None:  # when it answers, it is exactly ipaddress's answer (strict: no host bits)
        want = ipaddress.ip_network(text)
        assert got == want and str(got) == str(want) and hash(got) == hash(want) and got.prefixlen == want.prefixlen
    assert _oracle(_prefix, text, "from") == _oracle(ipaddress.ip_network, text, False)  # a network, or ValueError both


@pytest.mark.parametrize("text", TEXTS + ["10.0.0.1", "010.0.0.1", "1.1.1.1 "])
def test_ipv4_address_is_ip_address_or_declines(text):
    got = _ipv4_address(text)
    if got is not None:
        assert got == ipaddress.ip_address(text) and str(got) == text
    else:
        assert _oracle(ipaddress.ip_address, text) is ValueError or ipaddress.ip_address(text).version == 6


def test_ipv4_fast_parsers_random():
    rng = random.Random(15)
    for _ in range(2000):
        a = ipaddress.IPv4Address(rng.getrandbits(32))
        n = rng.randrange(33)
        text = f"{a}/{n}"
        net = _prefix(text, "from")
        assert net == ipaddress.ip_network(text, strict=False)
        assert _ipv4_address(str(a)) == a


@pytest.mark.parametrize("text", ["02:00:00:00:00:02", "AA:bb:cc:dd:ee:ff", "0g:00:00:00:00:02", "02:00:00:00:00",
                                  "2:0:0:0:0:2", "02:00:00:00:00: 2", "02-00-00-00-00-02", "02:00:00:00:00:0٢", ""])
def test_lladdr_fast_path_equals_general_path(text):
    def general(t):  # the checks the fast path skips, written out
        parts = t.split(":")
        if not t or not all(len(p) in (1, 2) and all(c in "0123456789abcdefABCDEF" for c in p) for p in parts):
            raise ValueError(t)
        return bytes(int(p, 16) for p in parts)

    assert _oracle(parse_lladdr, text) == _oracle(general, text)


def test_rule_message_equals_the_constructor():
    m = ObjectsMixin().rule_message("add", src="198.19.0.1/32", table=1000, priority=1000)
    want = RuleMessage(**{n: getattr(m, n) for n in RuleMessage.__record_fields__})
    assert m == want and hash(m) == hash(want) and repr(m) == repr(want)
    assert RuleMessage.decode(m.encode()) == m and m.encode() == want.encode()
