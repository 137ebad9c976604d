"""tunkit.crypto against RFC 8439, RFC 7748 and draft-irtf-cfrg-xchacha vectors; tamper, in-place, threads."""

from __future__ import annotations

import os
import signal
import threading

import pytest

import tunkit.crypto as c
from tunkit.crypto import (ChaCha20Poly1305, CryptoUnavailable, X25519PrivateKey, hchacha20, public_key,
                           x25519, xchacha20poly1305_open, xchacha20poly1305_seal)

H = bytes.fromhex
SUNSCREEN = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, "
             b"sunscreen would be it.")
KEY = H("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f")
AAD = H("50515253c0c1c2c3c4c5c6c7")
# RFC 8439 section 2.8.2
RFC8439_NONCE = H("070000004041424344454647")
RFC8439_CT = H(
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282fafb69da92728b"
    "1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116")
RFC8439_TAG = H("1ae10b594f09e26a7e902ecbd0600691")
# draft-irtf-cfrg-xchacha-03 section A.3.1
X_NONCE = H("404142434445464748494a4b4c4d4e4f5051525354555657")
X_CT = H(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa6440bf3a82f4eda7e39"
    "ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e")
X_TAG = H("c0875924c1c7987947deafd8780acf49")


def test_libcrypto_is_the_one_hashlib_mapped():
    path = c.libcrypto_path()
    assert os.path.basename(path).startswith("libcrypto.so")
    with open("/proc/self/maps") as f:
        assert path in f.read()


def test_rfc8439_aead_vector_seal_and_open():
    a = ChaCha20Poly1305(KEY)
    assert a.seal(RFC8439_NONCE, SUNSCREEN, AAD) == RFC8439_CT + RFC8439_TAG
    assert a.open(RFC8439_NONCE, RFC8439_CT + RFC8439_TAG, AAD) == SUNSCREEN
    # the context is reused: a second round gives the same answers
    assert a.seal(RFC8439_NONCE, SUNSCREEN, AAD) == RFC8439_CT + RFC8439_TAG
    assert a.open(RFC8439_NONCE, RFC8439_CT + RFC8439_TAG, AAD) == SUNSCREEN


def test_rfc8439_vector_in_place_on_a_memoryview_slice():
    a = ChaCha20Poly1305(KEY)
    buf = bytearray(b"H" * 7 + SUNSCREEN + bytes(16) + b"T" * 5)
    view = memoryview(buf)[7:]
    assert a.seal_into(view, 0, len(SUNSCREEN), RFC8439_NONCE, AAD) == len(SUNSCREEN) + 16
    assert bytes(buf[7:7 + len(SUNSCREEN) + 16]) == RFC8439_CT + RFC8439_TAG
    assert buf[:7] == b"H" * 7 and buf[-5:] == b"T" * 5  # nothing outside the range touched
    assert a.open_into(buf, 7, len(SUNSCREEN) + 16, RFC8439_NONCE, AAD) == len(SUNSCREEN)
    assert bytes(buf[7:7 + len(SUNSCREEN)]) == SUNSCREEN


def test_counter_nonce_is_four_zero_bytes_then_u64_le():
    a = ChaCha20Poly1305(KEY)
    for counter in (0, 1, 0x0102030405060708, (1 << 64) - 1):
        explicit = bytes(4) + counter.to_bytes(8, "little")
        assert a.seal(counter, b"payload", b"") == a.seal(explicit, b"payload", b"")
    with pytest.raises(ValueError):
        a.seal(1 << 64, b"x")
    with pytest.raises(ValueError):
        a.seal(b"short", b"x")


@pytest.mark.parametrize("where", ["ciphertext", "tag", "aad", "nonce"])
def test_tampered_input_never_opens(where):
    a = ChaCha20Poly1305(KEY)
    sealed = RFC8439_CT + RFC8439_TAG
    for i in range(0, len(sealed) if where in ("ciphertext", "tag") else 12, 7):
        ct, aad, nonce = bytearray(sealed), bytearray(AAD), bytearray(RFC8439_NONCE)
        if where == "ciphertext":
            ct[i % len(RFC8439_CT)] ^= 1
        elif where == "tag":
            ct[len(RFC8439_CT) + i % 16] ^= 0x80
        elif where == "aad":
            aad[i % len(aad)] ^= 4
        else:
            nonce[i % 12] ^= 2
        assert a.open(bytes(nonce), bytes(ct), bytes(aad)) is None
    assert a.open(RFC8439_NONCE, sealed, AAD) == SUNSCREEN  # and the context still works


def test_failed_open_in_place_wipes_the_unauthenticated_plaintext():
    a = ChaCha20Poly1305(KEY)
    buf = bytearray(RFC8439_CT + RFC8439_TAG)
    buf[-1] ^= 1
    assert a.open_into(buf, 0, len(buf), RFC8439_NONCE, AAD) == -1
    assert buf[:len(RFC8439_CT)] == bytes(len(RFC8439_CT))  # no garbage plaintext left behind
    assert a.open_into(bytearray(15), 0, 15, 0) == -1        # shorter than a tag


def test_read_only_memory_is_refused_and_ranges_are_checked():
    a = ChaCha20Poly1305(KEY)
    with pytest.raises(TypeError):
        a.seal_into(bytes(32), 0, 16, 0)
    with pytest.raises(TypeError):
        a.open_into(memoryview(bytes(32)), 0, 32, 0)
    with pytest.raises(ValueError):
        a.seal_into(bytearray(31), 0, 16, 0)  # no room for the tag
    with pytest.raises(ValueError):
        ChaCha20Poly1305(b"short key")


def test_empty_plaintext_seals_to_a_tag_only():
    a = ChaCha20Poly1305(KEY)
    sealed = a.seal(5, b"", b"")
    assert len(sealed) == 16 and a.open(5, sealed) == b"" and a.open(6, sealed) is None


def test_threads_sharing_one_context_get_correct_results():
    a = ChaCha20Poly1305(KEY)
    want = {n: ChaCha20Poly1305(KEY).seal(n, bytes([n]) * 1400) for n in range(8)}
    errors = []

    def worker(n):
        for _ in range(300):
            if a.seal(n, bytes([n]) * 1400) != want[n] or a.open(n, want[n]) != bytes([n]) * 1400:
                errors.append(n)
                return

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors


def test_hchacha20_draft_vector():
    key = bytes(range(32))
    nonce = H("000000090000004a0000000031415927")
    assert hchacha20(key, nonce) == H("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")


def test_xchacha20poly1305_draft_vector_and_tamper():
    sealed = xchacha20poly1305_seal(KEY, X_NONCE, SUNSCREEN, AAD)
    assert sealed == X_CT + X_TAG
    assert xchacha20poly1305_open(KEY, X_NONCE, sealed, AAD) == SUNSCREEN
    assert xchacha20poly1305_open(KEY, X_NONCE, sealed[:-1] + b"\0", AAD) is None
    assert xchacha20poly1305_open(KEY, X_NONCE[:23] + b"\0", sealed, AAD) is None
    with pytest.raises(ValueError):
        xchacha20poly1305_seal(KEY, X_NONCE[:12], SUNSCREEN)


# RFC 7748 section 5.2: (scalar, u-coordinate, output)
X25519_52 = [
    ("a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4",
     "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c",
     "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552"),
    ("4b66e9d4d1b4673c5ad22691957d6af5c11b6421e0ea01d42ca4169e7918ba0d",
     "e5210f12786811d3f4b7959d0538ae2c31dbe7106fc03c3efc4cd549c715a493",
     "95cbde9476e8907d7aade45cb4b873f88b595a68799fa152e6f8f7647aac7957"),
]


@pytest.mark.parametrize("scalar,u,out", X25519_52)
def test_rfc7748_section_5_2(scalar, u, out):
    assert x25519(H(scalar), H(u)) == H(out)


def test_rfc7748_section_6_1_diffie_hellman():
    a = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    b = H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
    assert public_key(a) == H("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
    assert public_key(b) == H("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    k = H("4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742")
    assert x25519(a, public_key(b)) == k == x25519(b, public_key(a))
    assert X25519PrivateKey(a).exchange(public_key(b)) == k  # an uncached key object agrees


@pytest.mark.parametrize("low_order", [
    bytes(32),                                                        # u = 0
    (1).to_bytes(32, "little"),                                       # u = 1
    H("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),  # order 8
])
def test_all_zero_shared_secret_is_refused(low_order):
    a = H("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    assert x25519(a, low_order) is None
    assert x25519(a, public_key(H("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")))  # still works


def test_generated_keys_are_clamped_and_distinct():
    keys = {c.generate_private_key() for _ in range(20)}
    assert len(keys) == 20
    for k in keys:
        assert k[0] & 7 == 0 and k[31] & 0x80 == 0 and k[31] & 0x40


def test_missing_libcrypto_is_one_clear_error():
    with pytest.raises(CryptoUnavailable) as e:
        c._Lib("/nonexistent/libcrypto.so.3")
    text = str(e.value)
    assert "/nonexistent/libcrypto.so.3" in text
    assert "Insecure (raw IP) mode, netlink and TUN/TAP devices still work" in text
    assert "no fallback" in text
    assert isinstance(e.value, RuntimeError)


def test_a_library_without_the_functions_is_refused(tmp_path):
    import ctypes.util

    libc = ctypes.util.find_library("c")
    with pytest.raises(CryptoUnavailable, match="lacks EVP_CIPHER_fetch"):
        c._Lib(libc)


def test_a_forked_child_can_use_a_context_whose_lock_was_held_at_fork():
    a = ChaCha20Poly1305(KEY)
    r, w = os.pipe()
    with a._lock:  # as if another thread were inside seal() when the process forked
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            signal.alarm(10)  # a deadlocked child dies, and the test fails instead of hanging
            try:
                os.write(w, a.seal(RFC8439_NONCE, SUNSCREEN, AAD))
            finally:
                os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 4096):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    assert data == RFC8439_CT + RFC8439_TAG
