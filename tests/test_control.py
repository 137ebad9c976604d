"""Worker control messages: every kind both ways, and malformed or unknown lines refused with a reason."""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import socket

import pytest

from tunkit.overlay import control
from tunkit.overlay.control import AddRoute, ControlError, Reconfigure, RemoveRoute, SetMtu, StatusRequest, WorkerConfig
from tunkit.overlay.tunnel import PeerSpec, RouteSpec, TunnelOptions

NET, IP = ipaddress.ip_network, ipaddress.ip_address
PEER = PeerSpec("b", ("198.51.100.2", 4800), (NET("198.18.0.2/32"), NET("2001:db8::2/128")), bytes(range(32)), 1380)
ROUTE = RouteSpec(NET("192.0.2.0/24"), ((IP("198.18.0.2"), 3),), 1300)
MESSAGES = [
    WorkerConfig(1, ("0.0.0.0", 4800), TunnelOptions(mtu=1400, session=5, start_counter=6, vnet_hdr=True), (PEER,),
                 (ROUTE,)),
    Reconfigure((PEER, PeerSpec("c", ("198.51.100.3", 4800), (), None)), (ROUTE,), 1400),
    Reconfigure((), (), None),
    SetMtu(1280),
    AddRoute(RouteSpec(NET("0.0.0.0/0"), ((IP("198.18.0.2"), 1),))),
    RemoveRoute(NET("192.0.2.0/24")),
    StatusRequest(),
]


@pytest.mark.parametrize("msg", MESSAGES, ids=[type(m).__name__ for m in MESSAGES])
def test_every_message_round_trips(msg):
    line = control.encode(msg)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert control.decode(line) == msg


BAD = [
    (b"not json", "not JSON"),
    (b"[1, 2]", "a list, not an object"),
    (b'{"op": "bogus"}', "unknown control op 'bogus'"),
    (b'{"mtu": 1300}', "unknown control op None"),
    (b'{"op": "mtu"}', "missing mtu"),
    (b'{"op": "mtu", "mtu": "1300"}', "bad mtu '1300'"),
    (b'{"op": "mtu", "mtu": 0}', "bad mtu 0"),
    (b'{"op": "mtu", "mtu": true}', "bad mtu True"),
    (b'{"op": "mtu", "mtu": 1300, "extra": 1}', "unknown field extra"),
    (b'{"op": "unroute", "prefix": "300.0.0.0/8"}', "control unroute"),
    (b'{"op": "route", "prefix": "192.0.2.0/24", "via": [["198.18.0.2", 0]]}', "bad route via"),
    (b'{"op": "route", "prefix": "192.0.2.0/24"}', "missing via"),
    (b'{"op": "reconfigure", "peers": {}, "routes": [], "mtu": null}', "bad peers"),
    (b'{"op": "reconfigure", "peers": [{"name": "x"}], "routes": [], "mtu": null}', "missing endpoint"),
    (b'{"op": "reconfigure", "peers": [{"name": "x", "endpoint": ["198.51.100.2", 70000], "prefixes": [], '
     b'"key": null, "mtu": null}], "routes": [], "mtu": null}', "bad peer endpoint"),
    (b'{"op": "reconfigure", "peers": [{"name": "x", "endpoint": ["198.51.100.2", 1], "prefixes": [], '
     b'"key": "zz", "mtu": null}], "routes": [], "mtu": null}', "peer x"),
    (b'{"op": "configure", "index": 0, "listen": ["0.0.0.0", 1], "options": {"mtu": 5}, "peers": [], '
     b'"routes": []}', "mtu = 5"),
    (b'{"op": "configure", "index": 0, "listen": ["0.0.0.0", 1], "options": {"nope": 1}, "peers": [], '
     b'"routes": []}', "unknown nope"),
    (b"[" * 100000 + b"]" * 100000, "not JSON"),
]


@pytest.mark.parametrize("line,match", BAD, ids=[b[1] for b in BAD])
def test_malformed_or_unknown_lines_are_refused_with_the_reason(line, match):
    with pytest.raises(ControlError, match=match):
        control.decode(line)


def test_fuzz_decode_raises_only_control_error():
    rng = random.Random(11)
    lines = [control.encode(m) for m in MESSAGES]
    for _ in range(3000):
        b = bytearray(rng.choice(lines))
        for _ in range(rng.randrange(1, 4)):
            i = rng.randrange(len(b))
            b[i] = rng.choice(b'{}[]":,0123456789ntfabcdefxyz -.\\')
        try:
            control.decode(bytes(b))
        except ControlError:
            pass


def test_a_worker_logs_and_ignores_a_bad_line_and_keeps_applying_good_ones(caplog):
    from tunkit.overlay.node import handle_line

    class FakeTunnel:
        sender = 3
        mtu = None

        def set_mtu(self, mtu):
            self.mtu = mtu

        def status(self):
            return {"ok": True}

    t = FakeTunnel()
    a, b = socket.socketpair()
    with a, b, caplog.at_level(logging.ERROR, logger="tunkit.overlay.node"):
        handle_line(a, t, b'{"op": "mtu", "mtu": -1}')
        handle_line(a, t, b'{"op": "launch"}')
        assert t.mtu is None
        assert [r.getMessage() for r in caplog.records] == [
            "worker 3: control message refused: control mtu: bad mtu -1",
            "worker 3: control message refused: unknown control op 'launch'",
        ]
        handle_line(a, t, control.encode(SetMtu(1280)).rstrip())
        assert t.mtu == 1280
        handle_line(a, t, control.encode(StatusRequest()))
        assert json.loads(b.recv(100)) == {"ok": True}
