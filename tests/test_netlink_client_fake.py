"""NetlinkSocket and Rtnl logic against a scripted fake kernel: no root, no real socket."""

from __future__ import annotations

import errno

import pytest

from support_netlink import ack, done, fake_socket, ip4, net, reply
from tunkit._uapi import AF_INET, RT_TABLE_MAIN, RTM, RTPROT_BOOT, RTN, NlmFlag, RtScope
from tunkit.errors import DecodeError, NetlinkError
from tunkit.netlink.client import LinkNotFound, Rtnl
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
        if not _device_exists(m, links):
            return [ack(m, errno.ENODEV)]
        return [ack(m)] if m.flags & NlmFlag.ACK else []  # like the kernel: success is silent without ACK

    return handle


def _device_exists(m, links) -> bool:
    """As the kernel checks: a set/delete link request names an existing link by index or
    IFLA_IFNAME; an address or route request's index exists."""
    if m.type in (RTM.NEWLINK, RTM.DELLINK) and not m.flags & NlmFlag.CREATE:
        req = LinkMessage.decode(m.payload)
        return any(l.index == req.index if req.index else l.ifname == req.ifname for l in links)
    if m.type in (RTM.NEWADDR, RTM.DELADDR):
        return any(l.index == AddressMessage.decode(m.payload).index for l in links)
    if m.type == RTM.NEWROUTE:
        oif = RouteMessage.decode(m.payload).oif
        return oif is None or any(l.index == oif for l in links)
    return True


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
    assert s._sock.datagrams - before == 2  # eight requests, one sendmsg (+1: the failures' device name, asked once)
    assert sum(1 for m in s._sock.sent if m.type == RTM.GETLINK) == 8 + 1
    assert [e.obj for e in errors] == ["198.51.100.32/28 dev tk0", "198.51.100.80/28 dev tk0"]
    assert all(e.errno == errno.EEXIST and e.op == "route add" for e in errors)
    acks = [m.flags & NlmFlag.ACK for m in s._sock.sent if m.type == RTM.NEWROUTE]
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


# --- issue 14 item 7: a name always means the device that carries it now --------------------------------
def test_names_are_looked_up_per_request_never_cached():
    links = [TK0]
    s = fake_socket(kernel(links=links))
    rt = Rtnl(s)
    rt.add_address("tk0", "192.0.2.1/24")
    assert rt.index("tk0") == 3
    links[:] = [LinkMessage(index=3, ifname="other0"), LinkMessage(index=9, ifname="tk0")]  # re-created; 3 reused
    rt.add_address("tk0", "192.0.2.2/24")
    rt.add_route("198.51.100.0/24", dev="tk0")
    msgs = [m for m in s._sock.sent if m.type in (RTM.NEWADDR, RTM.NEWROUTE)]
    assert [AddressMessage.decode(msgs[1].payload).index, RouteMessage.decode(msgs[2].payload).oif] == [9, 9]
    assert rt.index("tk0") == 9 and rt.name(3) == "other0"


def test_set_and_delete_by_name_let_the_kernel_find_the_link():
    s = fake_socket(kernel())
    rt = Rtnl(s)
    rt.set_link("tk0", mtu=1280)
    rt.delete_link("tk0")
    sent = [LinkMessage.decode(m.payload) for m in s._sock.sent]
    assert [(m.index, m.ifname, m.mtu) for m in sent] == [(0, "tk0", 1280), (0, "tk0", None)]  # no lookup first
    rt.set_link("tk0", name="tk5")  # a rename needs the index: looked up, then the new name is sent
    assert [(m.type, LinkMessage.decode(m.payload).index, LinkMessage.decode(m.payload).ifname)
            for m in s._sock.sent[2:]] == [(RTM.GETLINK, 0, "tk0"), (RTM.NEWLINK, 3, "tk5")]


def test_enodev_after_the_lookup_looks_the_name_up_again_and_retries():
    links = [TK0]
    base = kernel(links=links)
    state = {"n": 0}

    def handle(m):
        if m.type == RTM.NEWADDR and state["n"] == 0:  # deleted and re-created between lookup and request
            state["n"] = 1
            links[:] = [LinkMessage(index=7, ifname="tk0")]
            return [ack(m, errno.ENODEV)]
        return base(m)

    s = fake_socket(handle)
    Rtnl(s).add_address("tk0", "192.0.2.1/24")
    indexes = [AddressMessage.decode(m.payload).index for m in s._sock.sent if m.type == RTM.NEWADDR]
    assert indexes == [3, 7]


@pytest.mark.parametrize("call,op", [
    (lambda rt: rt.set_link("nope0", up=True), "link set"),
    (lambda rt: rt.set_link("nope0", name="x"), "link set"),
    (lambda rt: rt.delete_link("nope0"), "link del"),
    (lambda rt: rt.add_address("nope0", "192.0.2.1/24"), "addr add"),
    (lambda rt: rt.delete_address("nope0", "192.0.2.1/24"), "addr del"),
    (lambda rt: rt.addresses("nope0"), "addr show"),
    (lambda rt: rt.add_route("198.51.100.0/24", dev="nope0"), "route add"),
    (lambda rt: rt.delete_route("198.51.100.0/24", dev="nope0"), "route del"),
    (lambda rt: rt.add_route("198.51.100.0/24", nexthops=[{"gateway": "192.0.2.2", "dev": "nope0"}]), "route add"),
    (lambda rt: rt.routes(link="nope0"), "route show"),
    (lambda rt: rt.get_route("198.51.100.1", dev="nope0"), "route get"),
    (lambda rt: rt.link("nope0"), "link show"),
])
def test_a_missing_device_is_named_with_the_operation(call, op):
    with pytest.raises(LinkNotFound) as ei:
        call(Rtnl(fake_socket(kernel())))
    e = ei.value
    assert isinstance(e, NetlinkError) and e.errno == errno.ENODEV
    assert str(e) == f'{op}: device "nope0" does not exist'


# --- issue 14 item 11: no implicit default route, no unknown family --------------------------------------
@pytest.mark.parametrize("call,match", [
    (lambda rt: rt.add_route(None, dev="tk0"), "route add: a destination is required"),
    (lambda rt: rt.delete_route(None, dev="tk0"), "route del: a destination is required"),
    (lambda rt: rt.route_message(None, dev="tk0"), "a destination is required"),
    (lambda rt: rt.addresses(family=8), "addr show: family 8"),
    (lambda rt: rt.routes(family=8), "route show: family 8"),
    (lambda rt: rt.route_message("198.51.100.0/24", family=8), "family 8"),
])
def test_missing_destination_and_unknown_family_are_refused(call, match):
    s = fake_socket(kernel())
    with pytest.raises(ValueError, match=match):
        call(Rtnl(s))
    assert not [m for m in s._sock.sent if m.type != RTM.GETLINK]  # nothing sent


def test_add_route_requires_its_destination_argument():
    with pytest.raises(TypeError):
        Rtnl(fake_socket(kernel())).add_route(dev="tk0")
    rt = Rtnl(s := fake_socket(kernel()))
    rt.add_route("default", dev="tk0")
    assert RouteMessage.decode(s._sock.sent[-1].payload).dst is None  # an explicit default is fine


# --- issue 14 item 13: iproute2's names for types, protocols, scopes, tables; ranges named --------------
def test_route_fields_take_iproute2_names():
    s = fake_socket(kernel())
    Rtnl(s).add_route("198.51.100.0/24", type="blackhole", protocol="static", scope="host", table="local", pref="high")
    r = RouteMessage.decode(s._sock.sent[-1].payload)
    assert (r.type, r.protocol, r.scope, r.table, r.pref) == (RTN.BLACKHOLE, 4, RtScope.HOST, 255, 1)
    routes = Rtnl(fake_socket(kernel())).routes(table="main", protocol="kernel", type="unicast")
    assert routes == []


@pytest.mark.parametrize("kw,match", [
    (dict(type="blackhol"), r"type 'blackhol': unknown name; want one of unspec, unicast"),
    (dict(protocol="statik"), r"protocol 'statik': unknown name"),
    (dict(scope="planet"), r"scope 'planet': unknown name"),
    (dict(table="mian"), r"table 'mian': unknown name"),
    (dict(type=300), r"type 300: want one of .* an integer in 0..255"),
    (dict(table=2**32), r"table 4294967296: want .* 0..4294967295"),
    (dict(metric=-1), r"metric -1: want an integer in 0..4294967295"),
    (dict(mtu=99999999999), r"mtu 99999999999: want an integer in 0..4294967295"),
    (dict(advmss=-1), r"advmss -1: want an integer"),
    (dict(nexthops=[{"gateway": "192.0.2.2", "weight": 0}]), r"nexthop weight 0: want an integer in 1..256"),
    (dict(nexthops=[{"gateway": "192.0.2.2", "weight": 300}]), r"nexthop weight 300: want an integer in 1..256"),
])
def test_bad_route_fields_are_named_with_their_range(kw, match):
    s = fake_socket(kernel())
    with pytest.raises(ValueError, match=match):
        Rtnl(s).add_route("198.51.100.0/24", dev="tk0", **kw)
    assert not [m for m in s._sock.sent if m.type == RTM.NEWROUTE]


@pytest.mark.parametrize("call,match", [
    (lambda rt: rt.set_link("tk0", address="zz:00:00:00:00:01"), r"address 'zz:00:00:00:00:01': want a link-layer address"),
    (lambda rt: rt.set_link("tk0", name=""), r"interface name '' is empty"),
    (lambda rt: rt.set_link("tk0", name="a/b"), r"'a/b' contains '/'"),
    (lambda rt: rt.set_link("tk0", mtu=2**32), r"mtu 4294967296: want an integer in 0..4294967295"),
    (lambda rt: rt.add_address("tk0", "192.0.2.1/24", valid_lft=-1), r"valid_lft -1: want an integer"),
    (lambda rt: rt.add_address("tk0", "192.0.2.1/24", scope="planet"), r"scope 'planet'"),
])
def test_bad_link_and_address_values_are_named(call, match):
    s = fake_socket(kernel())
    with pytest.raises(ValueError, match=match):
        call(Rtnl(s))
    assert not [m for m in s._sock.sent if m.type in (RTM.NEWLINK, RTM.NEWADDR)]


def test_request_ack_fast_path_gives_what_the_general_path_gives():
    """One success ack: []; replies before the ack (echo), error acks, short acks: the general path decides."""
    from tunkit.netlink.message import encode_message as enc

    def run(handler, flags=0x5):
        return fake_socket(handler).request(16, flags, b"\0" * 16, op="t")

    assert run(lambda m: [ack(m)]) == []
    echo = lambda m: [enc(16, 0, m.seq, 4242, b"\1" * 16) + ack(m)]  # noqa: E731
    assert [bytes(r.payload) for r in run(echo)] == [b"\1" * 16]
    with pytest.raises(NetlinkError) as ei:
        run(lambda m: [ack(m, errno.EEXIST)])
    assert ei.value.errno == errno.EEXIST
    with pytest.raises(DecodeError):
        run(lambda m: [enc(2, 0x100, m.seq, 4242, b"\0" * 8)])  # too short for nlmsgerr: parse_ack refuses


def test_link_dump_request_is_the_empty_link_message():
    from tunkit.netlink import client

    assert client._LINK_DUMP == LinkMessage().encode()
    s = fake_socket(lambda m: [done(m)])
    assert Rtnl(s).links() == [] and bytes(s._sock.sent[0].payload) == LinkMessage().encode()
