"""tunkit's extension against a real wireguard-go peer, in throwaway namespaces: its offers go unseen.

Reuses test_wireguard_interop.py's lab (wireguard-go in one namespace, a UDP
socket driving the engine in the other), with the engine's extension on.
"""

from __future__ import annotations

import socket
import time

import pytest

from test_wireguard_interop import TK4, lab  # noqa: F401  (lab: the fixture)
from tunkit.wireguard import train as tr
from tunkit.wireguard.extension import OFFER_ATTEMPTS

pytestmark = pytest.mark.privileged


def _count_sent(lab, sent: list) -> None:
    """Record the type byte of every datagram the engine sends."""
    real_flush = lab.flush

    def flush():
        queued = lab.eng.pop_datagrams()
        for datagram, dest in queued:
            sent.append(datagram[0])
            lab.out_sock.sendto(datagram, dest)
        real_flush()

    lab.flush = flush


def _got_back(sock) -> bool:
    try:
        return sock.recv(2048) == b"FROM WIREGUARD-GO"
    except BlockingIOError:
        return False


@pytest.mark.parametrize("initiator", ["tunkit", "wireguard-go"])
def test_wireguard_go_drops_the_offers_unread_and_traffic_is_plain_wireguard(lab, initiator):  # noqa: F811
    lab.eng.extension = True
    sent: list[int] = []
    _count_sent(lab, sent)
    if initiator == "tunkit":
        assert lab.eng.initiate(lab.peer, time.monotonic())
        assert lab.pump(lambda: lab.events("handshake_complete") == 1, timeout=10), lab._drops()
    else:   # wireguard-go initiates for a packet in its TUN, we answer it
        s4 = lab.udp_from_wg(socket.AF_INET, TK4, b"from wireguard-go")
        try:
            assert lab.answer_udp(lambda: _got_back(s4), timeout=15), lab._drops()
        finally:
            s4.close()
        assert not lab.peer.current.initiator
    for seq in (2, 3):
        lab.echo_roundtrip(4, seq)
        lab.echo_roundtrip(6, seq)
    # let the two offer retries go out (1 s and 2 s after the first), then keep talking
    lab.pump(lambda: sent.count(tr.MSG_EXT_CONTROL) >= OFFER_ATTEMPTS, timeout=6)
    for seq in (4, 5):
        lab.echo_roundtrip(4, seq)
    offers = sent.count(tr.MSG_EXT_CONTROL)
    assert offers == OFFER_ATTEMPTS                       # then never again on this session
    assert tr.MSG_EXT_TRAIN not in sent                    # never a train
    assert not lab.eng.extension_active(lab.peer)
    dump = lab.wg_dump()
    # wireguard-go counted our transport messages but none of the offers (dropped before any lookup)
    assert dump["rx"] <= lab.peer.tx_bytes - offers * tr.CONTROL_SIZE
    assert lab._drops() == {} and not any(lab.eng.ext_drops.values())
    if initiator != "tunkit":
        return
    # a pinned peer: a new session on which not one extension message goes out
    lab.eng.set_plain(lab.peer, True, time.monotonic())
    mark = len(sent)
    assert lab.pump(lambda: lab.events("handshake_complete") >= 2, timeout=10), lab._drops()
    lab.pump(lambda: False, timeout=3.5)
    lab.echo_roundtrip(6, 9)
    assert not [t for t in sent[mark:] if t in tr.EXT_TYPES]
