"""The UAPI protocol without sockets: tables of requests -> errno and state, wireguard-go's set rules, fuzz.

Every refused set must leave the engine exactly as it was (``Engine.config()``
and the ``get=1`` text compared before and after).
"""

from __future__ import annotations

import random

import pytest

from tunkit.crypto import LibCrypto, public_key
from tunkit.wireguard import Engine, settings
from tunkit.wireguard import uapi as u

CRYPTO = LibCrypto()
KEY_A = bytes.fromhex("a8" + "11" * 30 + "51")  # clamped private keys
KEY_B = bytes.fromhex("b0" + "22" * 30 + "62")
KEY_C = bytes.fromhex("c0" + "33" * 30 + "73")
KEY_D = bytes.fromhex("d0" + "44" * 30 + "44")
PUB_A, PUB_B, PUB_C, PUB_D = (public_key(k) for k in (KEY_A, KEY_B, KEY_C, KEY_D))
HA, HB, HC, HD = (k.hex() for k in (PUB_A, PUB_B, PUB_C, PUB_D))
PSK = bytes(range(32))


def engine(seed: int = 1) -> Engine:
    eng = Engine(KEY_A, CRYPTO, wall_offset=1.7e9, random=random.Random(seed).randbytes)
    return eng


def talk(eng: Engine, data: bytes, chunk: int | None = None, codes: list | None = None) -> tuple[bytes, bool]:
    """Feed ``data`` (then end of file) to a connection serving ``eng``: (answers, closed before the EOF).

    ``codes`` collects the errno of every set that was applied or refused.
    """
    conn = u.UapiConnection()
    out = bytearray()
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    early = False
    for piece in pieces + [b""]:
        early = early or (conn.closed and piece == b"")
        for req in conn.receive_data(piece):
            if req.op == "get":
                out += u.format_get(eng)
            elif req.op == "set":
                err, _ = u.handle_set(eng, req.lines)
                out += b"errno=%d\n\n" % err
                if codes is not None:
                    codes.append(err)
            else:
                out += b"errno=%d\n\n" % req.errno
    return bytes(out), early


def get(eng: Engine) -> str:
    return u.format_get(eng).decode()


def setreq(*lines: str) -> bytes:
    return ("set=1\n" + "".join(line + "\n" for line in lines) + "\n").encode()


BASE = [f"private_key={KEY_A.hex()}", "listen_port=51820", f"public_key={HB}", "endpoint=192.0.2.2:51820",
        "allowed_ip=198.18.0.2/32", f"public_key={HC}", "allowed_ip=198.18.1.0/24", "allowed_ip=2001:db8::/64"]


def based() -> Engine:
    eng = engine()
    assert talk(eng, setreq(*BASE))[0] == b"errno=0\n\n"
    return eng


def test_get_on_a_fresh_interface_and_after_a_full_set_is_wireguard_gos_text():
    eng = engine()
    eng.has_private_key = False  # as the server starts one: no key until wg sets it
    assert talk(eng, b"get=1\n\n") == (b"errno=0\n\n", False)
    req = setreq(f"private_key={KEY_A.hex()}", "listen_port=51820", "fwmark=7", "replace_peers=true",
                 f"public_key={HB}", f"preshared_key={PSK.hex()}", "endpoint=[2001:db8::2]:51821",
                 "persistent_keepalive_interval=0", "replace_allowed_ips=true", "allowed_ip=198.18.0.2/32",
                 "allowed_ip=2001:db8:1::/48", "protocol_version=1")
    assert talk(eng, req)[0] == b"errno=0\n\n"
    assert get(eng) == "\n".join([
        f"private_key={KEY_A.hex()}", "listen_port=51820", "fwmark=7",
        f"public_key={HB}", f"preshared_key={PSK.hex()}", "protocol_version=1", "endpoint=[2001:db8::2]:51821",
        "last_handshake_time_sec=0", "last_handshake_time_nsec=0", "tx_bytes=0", "rx_bytes=0",
        "persistent_keepalive_interval=0", "allowed_ip=198.18.0.2/32", "allowed_ip=2001:db8:1::/48",
        "errno=0", "", ""])


REFUSED = [
    # (lines of the set, errno)
    (["unknown_key=1"], u.EINVAL),
    ([f"public_key={HB}", "unknown_peer_key=1"], u.EINVAL),
    ([f"public_key={HB}", f"private_key={KEY_A.hex()}"], u.EINVAL),  # a device key inside a peer
    (["private_key=" + "zz" * 32], u.EINVAL),
    (["private_key=" + "ab" * 31], u.EINVAL),
    (["private_key=" + "ab" * 32 + "a"], u.EINVAL),
    ([f"public_key={HB[:-2]}"], u.EINVAL),
    ([f"public_key= {HB[1:]}"], u.EINVAL),
    (["listen_port=65536"], u.EINVAL),
    (["listen_port=-1"], u.EINVAL),
    (["listen_port=+1"], u.EINVAL),
    (["listen_port="], u.EINVAL),
    (["listen_port=٣"], u.EINVAL),  # a non-ASCII digit
    (["fwmark=4294967296"], u.EINVAL),
    (["replace_peers=false"], u.EINVAL),
    (["no equals sign"], u.EPROTO),
    ([f"public_key={HD}", "protocol_version=2"], u.EINVAL),
    ([f"public_key={HD}", "remove=1"], u.EINVAL),
    ([f"public_key={HD}", "update_only=yes"], u.EINVAL),
    ([f"public_key={HD}", "replace_allowed_ips=True"], u.EINVAL),
    ([f"public_key={HD}", "persistent_keepalive_interval=65536"], u.EINVAL),
    ([f"public_key={HD}", "endpoint=vpn.example.com:51820"], u.EINVAL),  # wg resolves names, not the socket
    ([f"public_key={HD}", "endpoint=[192.0.2.4]:51820"], u.EINVAL),
    ([f"public_key={HD}", "endpoint=2001:db8::4:51820"], u.EINVAL),
    ([f"public_key={HD}", "endpoint=192.0.2.4:65536"], u.EINVAL),
    ([f"public_key={HD}", "endpoint=192.0.2.4"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=198.18.0.0/33"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=198.18.0.0"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=198.18.0.0/08"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=198.18.0.0/+8"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=fe80::1%eth0/64"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=01.2.3.4/32"], u.EINVAL),
    ([f"public_key={HD}", "allowed_ip=2001:db8::/129"], u.EINVAL),
    ([f"public_key={'00' * 32}"], u.EINVAL),  # a low-order key: the engine refuses it (wireguard-go keeps a dead peer)
    # a valid peer first, then a bad one: nothing of the first may stay
    ([f"public_key={HD}", "allowed_ip=198.51.100.0/24", f"public_key={HB}", "allowed_ip=bad"], u.EINVAL),
    (["listen_port=1", f"public_key={HD}", "endpoint=192.0.2.9:1", "allowed_ip=198.18.0.2/32",
      f"public_key={'00' * 32}"], u.EINVAL),
]


@pytest.mark.parametrize("lines,errno", REFUSED, ids=[str(i) for i in range(len(REFUSED))])
def test_a_refused_set_answers_wireguard_gos_errno_and_changes_nothing(lines, errno):
    eng = based()
    before, config = get(eng), eng.config()
    answer, _ = talk(eng, setreq(*lines))
    assert answer == b"errno=%d\n\n" % errno
    assert get(eng) == before and eng.config() == config


def test_limits_too_many_peers_allowed_ips_long_lines_and_huge_requests():
    eng = based()
    before = get(eng)
    many = [f"public_key={i.to_bytes(32, 'big').hex()}" for i in range(1, settings.MAX_PEERS + 2)]
    assert talk(eng, setreq(*many))[0] == b"errno=%d\n\n" % u.EINVAL  # refused before any X25519
    blocks = [f"public_key={HD}"] * (u.MAX_PEER_BLOCKS + 1)
    assert talk(eng, setreq(*blocks))[0] == b"errno=%d\n\n" % u.EINVAL
    ips = [f"public_key={HD}"] + [f"allowed_ip=10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}/32"
                                  for i in range(settings.MAX_ALLOWED_IPS + 1)]
    assert talk(eng, setreq(*ips))[0] == b"errno=%d\n\n" % u.EINVAL
    assert talk(eng, b"set=1\nlisten_port=" + b"1" * u.MAX_LINE_BYTES) == (b"errno=%d\n\n" % u.EIO, True)
    conn = u.UapiConnection()  # a long line that arrives whole in one read, digits Python's int() would refuse
    assert conn.receive_data(b"set=1\nlisten_port=" + b"9" * 10000 + b"\n\n")[0].errno == u.EIO and conn.closed
    assert talk(eng, setreq("listen_port=" + "0" * 40 + "1"))[0] == b"errno=%d\n\n" % u.EINVAL
    huge = b"set=1\n" + b"listen_port=1\n" * (u.MAX_REQUEST_BYTES // 14 + 1) + b"\n"
    assert talk(eng, huge, chunk=65536) == (b"errno=%d\n\n" % u.EMSGSIZE, True)
    assert get(eng) == before


def test_framing_chunks_crlf_pipelining_get_trailer_unknown_op_and_eof():
    req = setreq(*BASE) + b"get=1\n\n"
    whole, _ = talk(engine(), req)
    for chunk in (1, 2, 7, 64):
        assert talk(engine(), req, chunk) == (whole, False)
    assert whole.startswith(b"errno=0\n\nprivate_key=")
    crlf = b"set=1\n" + b"".join(line.encode() + b"\r\n" for line in BASE) + b"\r\n"
    eng = engine()
    assert talk(eng, crlf)[0] == b"errno=0\n\n" and get(eng) == get(based())
    assert talk(engine(), b"get=1\nx") == (b"errno=%d\n\n" % u.EINVAL, True)
    assert talk(engine(), b"bogus=1\nget=1\n\n") == (b"", True)   # wireguard-go closes without an answer
    assert talk(engine(), b"set=1\r\n\n") == (b"", True)
    conn = u.UapiConnection()
    assert conn.receive_data(b"\x00garbage without a newline") == [] and conn.closed  # at once, no timeout
    assert not u.UapiConnection().receive_data(b"se") and not u.UapiConnection().closed
    eng = based()
    before = get(eng)
    answer, closed = talk(eng, b"set=1\nlisten_port=9\n")  # end of file without the blank line
    assert answer == b"errno=%d\n\n" % u.EPROTO and get(eng) == before
    assert talk(eng, b"set=1\n\xff\xfe=1\n\nget=1\n\n")[0].startswith(b"errno=%d\n\nprivate_key=" % u.EINVAL)
    # after a refused line the rest of that request is discarded, the next one is served
    answer, closed = talk(eng, setreq("bogus=1", "listen_port=5") + setreq("listen_port=6"))
    assert answer == b"errno=-22\n\nerrno=0\n\n" and not closed and eng.listen_port == 6


def test_wireguard_go_set_rules():
    eng = based()
    # re-adding a prefix moves it to the end; a prefix another peer has moves to this one; host bits are masked
    assert talk(eng, setreq(f"public_key={HC}", "allowed_ip=198.18.1.0/24", "allowed_ip=198.18.0.2/32",
                            "allowed_ip=198.51.100.77/24"))[0] == b"errno=0\n\n"
    peers = {p.public_key: [str(n) for n in p.allowed_ips] for p in eng.config().peers}
    assert peers == {PUB_B: [], PUB_C: ["2001:db8::/64", "198.18.1.0/24", "198.18.0.2/32", "198.51.100.0/24"]}
    # removing a prefix the peer does not have is a no-op; -prefix removes its own
    talk(eng, setreq(f"public_key={HB}", "allowed_ip=-198.18.1.0/24", f"public_key={HC}", "allowed_ip=-2001:db8::/64"))
    assert [str(n) for n in eng.peers[PUB_C].allowed_ips] == ["198.18.1.0/24", "198.18.0.2/32", "198.51.100.0/24"]
    # update_only: an existing peer is updated, a new one is not created
    talk(eng, setreq(f"public_key={HB}", "update_only=true", "persistent_keepalive_interval=5",
                     f"public_key={HD}", "update_only=true", "allowed_ip=198.18.1.0/24"))
    assert eng.peers[PUB_B].persistent_keepalive == 5 and PUB_D not in eng.peers
    assert eng.allowed.lookup(bytes([198, 18, 1, 9])) is eng.peers[PUB_C]
    # update_only after lines that stole a prefix: the new peer goes, and the prefix with it (as wireguard-go)
    talk(eng, setreq(f"public_key={HD}", "allowed_ip=198.18.0.2/32", "update_only=true"))
    assert PUB_D not in eng.peers and eng.allowed.lookup(bytes([198, 18, 0, 2])) is None
    # a block for our own public key is ignored, its values still checked
    assert talk(eng, setreq(f"public_key={HA}", "allowed_ip=198.18.9.0/24"))[0] == b"errno=0\n\n"
    assert PUB_A not in eng.peers
    assert talk(eng, setreq(f"public_key={HA}", "allowed_ip=198.18.9.0/99"))[0] == b"errno=-22\n\n"
    # remove, then the same key again in one request: created afresh
    talk(eng, setreq(f"public_key={HB}", "remove=true", f"public_key={HB}", "allowed_ip=192.0.2.0/24"))
    assert eng.peers[PUB_B].persistent_keepalive == 0 and list(map(str, eng.peers[PUB_B].allowed_ips)) == ["192.0.2.0/24"]
    # replace_allowed_ips, zero preshared key means none
    talk(eng, setreq(f"public_key={HC}", "replace_allowed_ips=true", f"preshared_key={'00' * 32}"))
    assert not eng.peers[PUB_C].allowed_ips and eng.config().peers[0].preshared_key is None
    # a new private key whose public key is a peer's removes that peer (wireguard-go's SetPrivateKey)
    talk(eng, setreq(f"private_key={KEY_C.hex()}"))
    assert PUB_C not in eng.peers and eng.public_key == PUB_C
    # an all-zero private key removes the key: get shows none
    talk(eng, setreq(f"private_key={'00' * 32}"))
    assert not eng.has_private_key and "private_key" not in get(eng)
    # private keys are clamped, as wg does
    talk(eng, setreq("private_key=" + "ff" * 32))
    assert eng.private_key == bytes([0xf8]) + b"\xff" * 30 + bytes([0x7f])
    # replace_peers empties the table
    talk(eng, setreq("replace_peers=true", f"public_key={HD}"))
    assert list(eng.peers) == [PUB_D]


def test_sessions_survive_sets_that_do_not_touch_their_peer_and_die_with_a_new_private_key():
    from test_wireguard_engine import Link, ip4

    link = Link()
    link.handshake()
    kp = link.pa.current
    assert kp is not None
    pub_b = link.pa.public_key.hex()
    assert talk(link.a, setreq(f"public_key={HD}", "allowed_ip=198.51.100.0/24",
                               f"public_key={pub_b}", "persistent_keepalive_interval=9"))[0] == b"errno=0\n\n"
    assert link.a.peers[link.pa.public_key] is link.pa and link.pa.current is kp
    assert talk(link.a, setreq(f"public_key={pub_b}", f"preshared_key={PSK.hex()}"))[0] == b"errno=0\n\n"
    assert link.pa.current is kp and link.pa.remote.psk == PSK  # as wg: the next handshake uses it
    talk(link.a, setreq(f"private_key={KEY_D.hex()}"))
    assert link.pa.current is None and link.a.public_key == PUB_D


def test_prepare_hook_refusal_answers_eaddrinuse_and_changes_nothing():
    eng = based()
    before = get(eng)

    def prepare(config):
        raise OSError(98, "Address already in use")

    conn = u.UapiConnection()
    (req,) = conn.receive_data(setreq("listen_port=4000", f"public_key={HD}"))
    assert u.handle_set(eng, req.lines, prepare=prepare)[0] == u.EADDRINUSE
    assert get(eng) == before


def _as_set(get_text: str) -> bytes:
    stats = ("last_handshake_time_sec", "last_handshake_time_nsec", "tx_bytes", "rx_bytes", "errno")
    lines = [ln for ln in get_text.split("\n") if ln and ln.split("=")[0] not in stats]
    return setreq("replace_peers=true", *lines)


def test_get_output_replayed_as_a_set_reproduces_the_interface():
    eng = based()
    talk(eng, setreq("fwmark=51", f"public_key={HB}", f"preshared_key={PSK.hex()}",
                     "persistent_keepalive_interval=25", "endpoint=[2001:db8::2]:7"))
    other = engine(2)
    assert talk(other, _as_set(get(eng)))[0] == b"errno=0\n\n"
    assert get(other) == get(eng) and other.config() == eng.config()


def _consistent(eng: Engine) -> None:
    settings.validate(eng.config(), eng.public_key)
    for p in eng.peers.values():
        for net in p.allowed_ips:
            assert eng.allowed.get(net) is p
    assert len(eng.allowed) == sum(len(p.allowed_ips) for p in eng.peers.values())


def test_fuzz_random_garbage_and_truncated_requests_never_raise_and_never_half_apply():
    rng = random.Random(1217)
    valid = setreq(*BASE[2:], f"public_key={HD}", "update_only=true", "replace_allowed_ips=true",
                   "allowed_ip=-198.18.0.2/32", f"preshared_key={PSK.hex()}", "persistent_keepalive_interval=3")
    words = [b"set=1\n", b"get=1\n", b"\n", b"=", b"public_key=", HB.encode(), b"allowed_ip=", b"198.18.0.0/24",
             b"remove=true", b"endpoint=[", b"]:1", b"listen_port=", b"99999", b"\r", b"\x00", b"-"]
    applied = refused = 0
    for i in range(1500):
        kind = i % 4
        if kind == 0:
            data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200)))
        elif kind == 1:
            data = valid[:rng.randrange(len(valid))]
        elif kind == 2:
            b = bytearray(valid)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
            data = bytes(b)
        else:
            data = b"".join(rng.choice(words) for _ in range(rng.randrange(1, 30)))
        eng = based()
        before, config = get(eng), eng.config()
        codes: list[int] = []
        talk(eng, data, chunk=rng.choice((None, 1, 5, 33)), codes=codes)
        _consistent(eng)
        if not any(c == 0 for c in codes):
            assert get(eng) == before and eng.config() == config, data
            refused += 1
        else:
            applied += 1
    assert applied > 20 and refused > 500  # both paths were exercised


# --------------------------------------------------------------------------- Engine.apply directly


def test_apply_is_all_or_nothing_and_reports_what_changed():
    from tunkit.wireguard.settings import InterfaceConfig, PeerConfig

    eng = based()
    config = eng.config()
    assert eng.apply(config) == ((), (), False, False, False)  # a no-op
    low_order = PeerConfig(bytes(32))
    new = InterfaceConfig(KEY_D, 1, 2, config.peers[1:] + (PeerConfig(PUB_B, PSK), low_order))
    with pytest.raises(ValueError, match="low-order"):
        eng.apply(new)
    assert eng.config() == config and eng.public_key == PUB_A
    seen = []

    def refuse(c):
        seen.append(c)
        raise OSError(98, "in use")

    with pytest.raises(OSError):
        eng.apply(InterfaceConfig(KEY_D, 1, 2, new.peers[:-1]), prepare=refuse)
    assert seen and eng.config() == config
    done = eng.apply(InterfaceConfig(KEY_D, 1, 2, new.peers[:-1]))
    assert done.added == () and done.removed == () and done.private_key and done.listen_port and done.fwmark
    assert [p.public_key for p in eng.config().peers] == [PUB_B, PUB_C]  # B stays where it was, re-keyed
    assert eng.peers[PUB_B].remote.psk == PSK and not eng.peers[PUB_B].allowed_ips
    with pytest.raises(ValueError, match="listed twice"):
        eng.apply(InterfaceConfig(KEY_D, peers=(PeerConfig(PUB_B), PeerConfig(PUB_B))))
    net = config.peers[0].allowed_ips[0]
    with pytest.raises(ValueError, match="also on peer"):
        eng.apply(InterfaceConfig(KEY_D, peers=(PeerConfig(PUB_B, allowed_ips=(net,)),
                                                PeerConfig(PUB_C, allowed_ips=(net,)))))


def test_apply_turning_persistent_keepalive_on_sends_at_once_with_now():
    from tunkit.wireguard.settings import InterfaceConfig, PeerConfig

    eng = based()
    eng.pop_datagrams()
    peers = tuple(PeerConfig(p.public_key, p.preshared_key, p.endpoint, 25 if p.public_key == PUB_B else 0,
                             p.allowed_ips) for p in eng.config().peers)
    eng.apply(InterfaceConfig(KEY_A, 51820, 0, peers), now=1000.0)
    (datagram, dest), = eng.pop_datagrams()  # no session yet: the keepalive becomes an initiation
    assert dest == ("192.0.2.2", 51820) and datagram[0] == 1
    eng.apply(InterfaceConfig(KEY_A, 51820, 0, peers), now=1001.0)
    assert eng.pop_datagrams() == []  # already on: nothing new


def test_a_request_being_received_is_held_as_its_bytes_not_as_parsed_objects():
    import tracemalloc

    data = b"set=1\npublic_key=" + b"11" * 32 + b"\n" + b"".join(
        b"allowed_ip=10.%d.%d.0/24\n" % (i >> 8 & 255, i & 255) for i in range(20000))
    conn = u.UapiConnection()
    tracemalloc.start()
    try:
        for i in range(0, len(data), 65536):
            assert conn.receive_data(data[i:i + 65536]) == []
        held = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert conn.pending == len(data) and held < 2 * len(data)  # parsed, it would be about ten times as much
