"""WireGuard codecs, keys and the replay window; a frozen handshake checked both ways."""

from __future__ import annotations

import base64
import random
import struct

import pytest

from test_wireguard_engine import A4, ADDR_A, ADDR_B, B4, CRYPTO, KEY_A, KEY_B, Link, ip4
from tunkit.crypto import public_key
from tunkit.wireguard import KeyFormatError, clamp, format_key, parse_key
from tunkit.wireguard import messages as m
from tunkit.wireguard.primitives import HASH, HMAC, kdf1, kdf2, kdf3
from tunkit.wireguard.replay import WINDOW_SIZE, ReplayWindow

# ------------------------------------------------------------------ messages

SAMPLES = [
    m.Initiation(0x01020304, b"e" * 32, b"s" * 48, b"t" * 28, b"1" * 16, b"2" * 16),
    m.Response(0xFFFFFFFF, 0, b"e" * 32, b"x" * 16, b"1" * 16, b"2" * 16),
    m.CookieReply(7, b"n" * 24, b"c" * 32),
]
CODECS = [(m.encode_initiation, m.decode_initiation, 148, 1), (m.encode_response, m.decode_response, 92, 2),
          (m.encode_cookie_reply, m.decode_cookie_reply, 64, 3)]


@pytest.mark.parametrize("msg,codec", list(zip(SAMPLES, CODECS)))
def test_codecs_round_trip_with_exact_sizes(msg, codec):
    enc, dec, size, kind = codec
    data = enc(msg)
    assert len(data) == size and data[0] == kind and data[1:4] == b"\0\0\0"
    assert dec(data) == msg and dec(memoryview(bytes(data))) == msg
    assert m.message_type(data) == kind


def test_transport_header_layout():
    data = m.TRANSPORT_HEADER.pack(4, 0xA1B2C3D4, 2**64 - 1) + bytes(16)
    assert data[:8] == b"\x04\0\0\0\xd4\xc3\xb2\xa1" and data[8:16] == b"\xff" * 8
    assert m.decode_transport_header(data) == (0xA1B2C3D4, 2**64 - 1)


@pytest.mark.parametrize("msg,codec", list(zip(SAMPLES, CODECS)))
def test_codecs_refuse_every_wrong_length_and_type(msg, codec):
    enc, dec, size, kind = codec
    data = bytes(enc(msg))
    for n in range(size + 20):
        if n != size:
            with pytest.raises(m.MessageError, match=str(size)):
                dec((data * 2)[:n])
    for bad in (bytes([kind % 4 + 1]) + data[1:], data[:1] + b"\x01" + data[2:]):
        with pytest.raises(m.MessageError):
            dec(bad)


def test_message_type_refuses_reserved_bits_and_unknown_types():
    for data, text in ((b"", "shorter"), (b"\x01\0\0", "shorter"), (b"\x05\0\0\0", "unknown"),
                       (b"\x00\0\0\0", "unknown"), (b"\x01\0\x01\0", "reserved")):
        with pytest.raises(m.MessageError, match=text):
            m.message_type(data)


def test_encoders_check_index_ranges():
    with pytest.raises(ValueError):
        m.encode_cookie_reply(m.CookieReply(2**32, b"n" * 24, b"c" * 32))


def test_decoders_fuzzed_random_and_truncated():
    rng = random.Random(2024)
    decoders = [m.decode_initiation, m.decode_response, m.decode_cookie_reply, m.decode_transport_header,
                m.message_type]
    real = [bytes(enc(s)) for s, (enc, *_) in zip(SAMPLES, CODECS)]
    for i in range(4000):
        if i % 2:
            data = rng.randbytes(rng.randrange(0, 170))
        else:
            r = rng.choice(real)
            data = r[:rng.randrange(len(r) + 1)]
        if data and i % 3 == 0:
            data = bytes([rng.randrange(1, 5)]) + data[1:]
        for dec in decoders:
            try:
                dec(data)
            except m.MessageError:
                pass  # the only exception a decoder may raise


def test_tai64n_is_big_endian_monotonic_and_whitened():
    t = m.tai64n(1_700_000_000.123456789)
    secs, nanos = struct.unpack(">QI", t)
    assert secs == 2**62 + 10 + 1_700_000_000
    assert nanos % 2**24 == 0 and 123456789 - 2**24 < nanos <= 123456789
    assert m.tai64n(1_700_000_000.2) > t > m.tai64n(1_699_999_999.9)


# ------------------------------------------------------------------ keys

def test_keys_parse_and_format_like_wg():
    raw = bytes(range(32))
    text = format_key(raw)
    assert text == base64.b64encode(raw).decode() and len(text) == 44
    assert parse_key(text) == raw and parse_key(f"  {text}\n") == raw


@pytest.mark.parametrize("bad,why", [
    ("", "44 base64 characters"),
    ("AAAA", "got 4"),
    ("!" * 43 + "=", "not valid base64"),
    (base64.b64encode(bytes(33)).decode()[:44], "decodes to 33 bytes, expected 32"),
    ("A" * 44, "decodes to 33 bytes, expected 32"),
    ("A" * 42 + "B=", "not canonical"),
    (42, "expected a base64 string"),
])
def test_bad_keys_name_the_value_and_the_expected_length(bad, why):
    with pytest.raises(KeyFormatError, match=why) as e:
        parse_key(bad, "peer public_key")
    assert "peer public_key" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_clamp_matches_rfc7748():
    k = clamp(b"\xff" * 32)
    assert k[0] == 0xF8 and k[31] == 0x7F and k[1:31] == b"\xff" * 30
    assert clamp(bytes(32))[31] == 0x40
    with pytest.raises(KeyFormatError):
        clamp(b"short")


# ------------------------------------------------------------------ KDF

def test_kdf_chain_is_hmac_blake2s_as_the_whitepaper_defines():
    key, data = b"k" * 32, b"input"
    t0 = HMAC(key, data)
    t1 = HMAC(t0, b"\x01")
    t2 = HMAC(t0, t1 + b"\x02")
    t3 = HMAC(t0, t2 + b"\x03")
    assert kdf1(key, data) == t1 and kdf2(key, data) == (t1, t2) and kdf3(key, data) == (t1, t2, t3)
    import hashlib
    import hmac

    assert t0 == hmac.new(key, data, hashlib.blake2s).digest()
    assert HASH(b"ab", b"c") == hashlib.blake2s(b"abc").digest()


# ------------------------------------------------------------------ replay window

def test_replay_window_against_a_set_oracle():
    rng = random.Random(99)
    w = ReplayWindow()
    seen: set[int] = set()
    top = 0
    for _ in range(20000):
        c = max(0, top + rng.randrange(-2500, 60))
        want = c not in seen and (c > top or top - c <= WINDOW_SIZE)
        if not seen and c == 0:
            want = True
        assert w.check(c) == want, (c, top)
        if want:
            seen.add(c)
            top = max(top, c)


def test_replay_window_edges():
    w = ReplayWindow()
    assert w.check(0) and not w.check(0)
    assert w.check(10_000)
    assert w.check(10_000 - WINDOW_SIZE) and not w.check(10_000 - WINDOW_SIZE - 1)
    assert w.check(10_000 + 2048 * 3)  # a jump past the whole ring clears it
    assert not w.check(2**64 - 2**13 - 1)  # REJECT_AFTER_MESSAGES


# ------------------------------------------------------------------ a frozen handshake

# Engines a and b of test_wireguard_engine.Link(seed=7): fixed static keys, random sources
# random.Random(7) / random.Random(1007) (indices and ephemeral keys), clock 1000 s, wall offset 1.7e9.
FROZEN_INITIATION = bytes.fromhex(
    "0100000038b4e652d88fdb666e05871d152683b5fcfbbb727362d2e923683939a091a133d760da4af0cb63f2cc5ba5cb071f"
    "370f861aec996e593cf58593bc4ce56f19ab378293d9732b91e940746a0b9d2a98c80cdb08cc9bd03f5e9ec3eec0ce1050aa"
    "f49f04c4c3d23dd67d88a732c2602496b26d3929e74f59d0593c0d49d4449dac00000000000000000000000000000000")
FROZEN_RESPONSE = bytes.fromhex(
    "0200000001d81edb38b4e6526e3a799667a2102e4db278b2f394cc8b989236a681f8f21f2424210a7ddcf772c824c88a5d"
    "511ceff72c61b66e24d1bc6735d59fa71b1728b2808ba1db803a7a00000000000000000000000000000000")
FROZEN_TRANSPORT = bytes.fromhex(  # ip4(A4, B4, b"frozen"), the packet that started the handshake
    "0400000001d81edb000000000000000076a3059f321cce7db931e2350f166508439f5f9ad89b709dc3b8968fc1d0133cb168"
    "0b2d28a942c68be5958ea4f2fa96")


def test_frozen_initiation_fields_come_from_the_injected_randomness():
    r = random.Random(7)
    sender = struct.unpack("<I", r.randbytes(4))[0]
    ephemeral = public_key(clamp(r.randbytes(32)))
    init = m.decode_initiation(FROZEN_INITIATION)
    assert init.sender == sender and init.ephemeral == ephemeral and init.mac2 == bytes(16)


def test_frozen_handshake_initiator_side():
    link = Link(seed=7)
    assert link.a.send(ip4(A4, B4, b"frozen"), link.now) is None
    (init, dest), = link.a.pop_datagrams()
    assert dest == ADDR_B and bytes(init) == FROZEN_INITIATION
    assert link.a.receive(bytearray(FROZEN_RESPONSE), ADDR_B, link.now) is None
    (data, dest), = link.a.pop_datagrams()
    assert bytes(data) == FROZEN_TRANSPORT


def test_frozen_handshake_responder_side():
    link = Link(seed=7)
    assert link.b.receive(bytearray(FROZEN_INITIATION), ADDR_A, link.now) is None
    (resp, dest), = link.b.pop_datagrams()
    assert dest == ADDR_A and bytes(resp) == FROZEN_RESPONSE
    assert bytes(link.b.receive(bytearray(FROZEN_TRANSPORT), ADDR_A, link.now)) == ip4(A4, B4, b"frozen")
    assert link.pb.current is not None and link.pb.next is None


def test_frozen_handshake_keys_are_the_fixed_pairs():
    assert m.decode_response(FROZEN_RESPONSE).receiver == m.decode_initiation(FROZEN_INITIATION).sender
    assert CRYPTO.private_key(KEY_A).public == public_key(KEY_A) != public_key(KEY_B)
