"""NetlinkSocket and Rtnl logic against a scripted fake kernel: no root, no real socket."""

from __future__ import annotations

import errno

import pytest

from support_netlink import ack, done, fake_socket, ip4, net, reply
from tunkit._uapi import AF_INET, RT_TABLE_MAIN, RTM, RTPROT_BOOT, RTN, NlmFlag, RtScope
from tunkit.errors import DecodeError, NetlinkError
from tunkit.netlink.client import Rtnl
from tunkit.netlink.message import encode_message
from tunkit.netlink.rtnl import AddressMessage, LinkMessage, RouteMessage
from tunkit.netlink.socket import PIPELINE_WINDOW

TK0 = LinkMessage(index=3, ifname="tk0", mtu=1500)


def kernel(routes=(), links=(TK0,), addrs=(), fail=None, intr=0):
    """A handler: answers link lookups/dumps, route/addr dumps, acks everything else.

    ``fail(msg) -> (errno, ext-ack text) | None`` makes chosen requests fail;
    ``intr`` marks that many route dumps NLM_F_DUMP_INTR.
    """
    state = {"intr": intr}

    def handle(m):
        if fail is not None and (f := fail(m)):
            return [ack(m, *f)]
        is_dump = m.flags & NlmFlag.DUMP == NlmFlag.DUMP
        if m.type == RTM.GETLINK and not is_dump:
            req = LinkMessage.decode(m.payload)
            for l in links:
                if l.ifname == req.ifname or l.index == req.index:
                    return [reply(m, RTM.NEWLINK, l.encode())]
            return [ack(m, errno.ENODEV)]
        if is_dump:
            objs = {RTM.GETLINK: (RTM.NEWLINK, links), RTM.GETROUTE: (RTM.NEWROUTE, routes),
                    RTM.GETADDR: (RTM.NEWADDR, addrs)}[m.type]
            flags = NlmFlag.MULTI
            if m.type == RTM.GETROUTE and state["intr"]:
                state["intr"] -= 1
                flags |= NlmFlag.DUMP_INTR
            # two parts in two datagrams, as a kernel dump arrives
            parts = [reply(m, objs[0], o.encode(), flags) for o in objs[1]]
            return [b"".join(parts[:1]), b"".join(parts[1:]) + done(m, flags)]
        return [ack(m)] if m.flags & NlmFlag.ACK else []  # like the kernel: success is silent without ACK

    return handle


def test_add_route_sends_iproute2_defaults_and_succeeds():
    s = fake_socket(kernel())
    rt = Rtnl(s)
    rt.add_route("198.51.100.0/24", dev="tk0", metric=10, mtu=1400, advmss=1360, lock=["mtu"])
    sent = s._sock.sent[-1]
    assert sent.type == RTM.NEWROUTE and sent.flags == NlmFlag.REQUEST | NlmFlag.ACK | NlmFlag.CREATE | NlmFlag.EXCL
    assert sent.pid == 4242 and sent.seq == s._seq
    r = RouteMessage.decode(sent.payload)
    assert (r.table, r.protocol, r.scope, r.type, r.oif, r.priority) == (RT_TABLE_MAIN, RTPROT_BOOT, RtScope.LINK, RTN.UNICAST, 3, 10)
    assert (r.metrics.mtu, r.metrics.advmss, r.metrics.locked("mtu")) == (1400, 1360, True)
    rt.add_route("198.51.101.0/24", gateway="192.0.2.1")
    assert RouteMessage.decode(s._sock.sent[-1].payload).scope == RtScope.UNIVERSE  # a gateway: global scope


def test_kernel_error_becomes_netlink_error_with_op_obj_and_ext_ack():
    s = fake_socket(kernel(fail=lambda m: (errno.EEXIST, "Route exists") if m.type == RTM.NEWROUTE else None))
    with pytest.raises(NetlinkError) as ei:
        Rtnl(s).add_route("198.51.100.0/24", dev="tk0")
    e = ei.value
    assert isinstance(e, OSError) and e.errno == errno.EEXIST
    assert (e.op, e.obj, e.message) == ("route add", "198.51.100.0/24 dev tk0", "Route exists")
    assert str(e) == "route add 198.51.100.0/24 dev tk0: File exists (Route exists)"


def test_dump_spans_datagrams_and_restarts_when_interrupted():
    routes = [RouteMessage(family=AF_INET, dst=net(f"198.51.100.{i * 16}/28"), table=254, oif=3) for i in range(3)]
    s = fake_socket(kernel(routes=routes, intr=2))
    assert Rtnl(s).routes(table=254) == routes
    assert sum(1 for m in s._sock.sent if m.type == RTM.GETROUTE) == 3  # two interrupted, one clean


def test_dump_that_stays_interrupted_is_an_error_not_partial_data():
    s = fake_socket(kernel(routes=[RouteMessage(family=AF_INET, table=254)], intr=100))
    with pytest.raises(NetlinkError) as ei:
        Rtnl(s).routes()
    assert ei.value.errno == errno.EINTR and "inconsistent" in str(ei.value)


def test_stale_replies_are_skipped_and_foreign_port_ids_rejected():
    stale = encode_message(2, 0x100, 999, 4242, b"\0" * 20)

    def handle(m):
        return [stale, ack(m)]

    s = fake_socket(handle)
    Rtnl(s).set_link(3, up=True)  # the seq-999 ack is not taken for ours

    def foreign(m):
        return [encode_message(2, 0x100, m.seq, 7, b"\0" * 20)]

    with pytest.raises(DecodeError, match="port id 7"):
        Rtnl(fake_socket(foreign)).set_link(3, up=True)


def test_pipeline_packs_requests_and_reports_each_failure_against_its_route():
    bad = {net("198.51.100.32/28"), net("198.51.100.80/28")}

    def fail(m):
        if m.type == RTM.NEWROUTE and RouteMessage.decode(m.payload).dst in bad:
            return (errno.EEXIST, None)
        return None

    s = fake_socket(kernel(fail=fail))
    rt = Rtnl(s)
    routes = [rt.route_message(f"198.51.100.{i * 16}/28", dev="tk0") for i in range(8)]
    before = s._sock.datagrams
    errors = rt.add_routes(routes)
    assert s._sock.datagrams - before == 1  # eight requests, one sendmsg
    assert [e.obj for e in errors] == ["198.51.100.32/28 dev tk0", "198.51.100.80/28 dev tk0"]
    assert all(e.errno == errno.EEXIST and e.op == "route add" for e in errors)
    acks = [m.flags & NlmFlag.ACK for m in s._sock.sent[-8:]]
    assert acks == [0] * 7 + [NlmFlag.ACK]  # only the batch's last request asks for an ack
    s._sock.datagrams = 0
    assert rt.delete_routes(routes[:3] * 100) == []  # 300 requests: bounded windows
    assert s._sock.datagrams == -(-300 // PIPELINE_WINDOW)


def test_reconcile_replaces_wanted_then_deletes_the_rest():
    have = [AddressMessage(family=AF_INET, prefixlen=24, index=3, local=ip4(a), address=ip4(a))
            for a in ("192.0.2.1", "192.0.2.9")]
    s = fake_socket(kernel(addrs=have))
    replaced, removed = Rtnl(s).reconcile_addresses("tk0", ["192.0.2.1/24", "198.51.100.1/24"])
    assert [str(a) for a in replaced] == ["192.0.2.1/24", "198.51.100.1/24"]
    assert [str(a) for a in removed] == ["192.0.2.9/24"]
    verbs = [(m.type, m.flags & (NlmFlag.REPLACE | NlmFlag.CREATE)) for m in s._sock.sent if m.type in (RTM.NEWADDR, RTM.DELADDR)]
    assert verbs == [(RTM.NEWADDR, NlmFlag.REPLACE | NlmFlag.CREATE)] * 2 + [(RTM.DELADDR, 0)]


def test_unknown_link_name_raises_enodev():
    with pytest.raises(NetlinkError) as ei:
        Rtnl(fake_socket(kernel())).set_link("nope0", up=True)
    assert ei.value.errno == errno.ENODEV and "nope0" in str(ei.value)


def test_pipeline_fails_instead_of_hanging_when_the_kernel_skips_the_last_ack():
    def skip_last(m):
        return []  # as netlink_rcv_skb does for a request interrupted by a signal

    with pytest.raises(NetlinkError) as ei:
        Rtnl(fake_socket(skip_last)).add_routes([RouteMessage(family=AF_INET, dst=net("198.51.100.0/24"))])
    assert ei.value.errno == errno.EINTR and "no ack" in str(ei.value)
