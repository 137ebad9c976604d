"""ChaCha20-Poly1305, XChaCha20-Poly1305 and X25519 from the interpreter's own libcrypto; does I/O (ctypes).

The only module in tunkit that touches a native crypto library.  It binds,
through :mod:`ctypes`, the exact ``libcrypto`` file that CPython's
``_hashlib`` loaded (read from ``/proc/self/maps``; ``find_library`` may name
another copy), so no new dependency comes in.

* :class:`ChaCha20Poly1305` -- RFC 8439 AEAD with a fixed key.  One
  ``EVP_CIPHER_CTX`` per object, keyed once; a packet costs four ctypes calls
  (init with the IV, update, final, tag).  :meth:`~ChaCha20Poly1305.seal_into`
  and :meth:`~ChaCha20Poly1305.open_into` work in place on writable buffers
  (``bytearray`` or a ``memoryview`` of one); OpenSSL never writes into
  ``bytes``.  A failed tag is ``-1`` / ``None``; the unauthenticated
  plaintext is wiped first, never handed out.
* :func:`xchacha20poly1305_seal` / :func:`xchacha20poly1305_open` --
  draft-irtf-cfrg-xchacha (HChaCha20 in Python, then the AEAD above).
* :class:`X25519PrivateKey` -- RFC 7748 private key object (the native key is
  built once and cached); :meth:`~X25519PrivateKey.exchange` returns ``None``
  for an all-zero shared secret (a low-order peer key), as WireGuard requires.
* :class:`LibCrypto` -- the provider object the pure WireGuard engine
  (:mod:`tunkit.wireguard`) takes: it is how the engine gets AEAD, X25519 and
  random bytes without importing anything native itself.

Thread safety: each context object holds a lock, so two threads never drive
one ``EVP_CIPHER_CTX`` / ``EVP_PKEY_CTX`` at once (ctypes releases the GIL
during each call, so different objects do run in parallel).  Fork: a child
inherits every key *and every nonce counter*; the nonce rule is the caller's
(see docs/wireguard.md) -- this module seals with whatever nonce it is given.

Without a usable libcrypto every entry point raises :class:`CryptoUnavailable`,
which says what is missing and what still works.  There is no fallback to a
weaker or pure-Python cipher.
"""

from __future__ import annotations

import ctypes
import functools
import os
import struct
import threading
import weakref

from tunkit.wireguard.keys import clamp

__all__ = [
    "CryptoUnavailable", "ChaCha20Poly1305", "X25519PrivateKey", "LibCrypto",
    "hchacha20", "xchacha20poly1305_seal", "xchacha20poly1305_open",
    "x25519", "generate_private_key", "public_key", "clamp", "available", "libcrypto_path", "TAG_SIZE",
]

TAG_SIZE = 16
KEY_SIZE = 32
NONCE_SIZE = 12

_EVP_CTRL_AEAD_GET_TAG = 0x10
_EVP_PKEY_X25519 = 1034  # NID_X25519
_OSSL_PARAM_OCTET_STRING = 5

_c_void_p = ctypes.c_void_p
_c_int = ctypes.c_int
_c_size_t = ctypes.c_size_t
_c_char_p = ctypes.c_char_p
_c_char = ctypes.c_char
_addressof = ctypes.addressof


class CryptoUnavailable(RuntimeError):
    """No usable libcrypto: WireGuard encryption cannot run in this interpreter."""

    def __init__(self, missing: str) -> None:
        super().__init__(
            f"WireGuard encryption needs OpenSSL's libcrypto (>= 3.0) as loaded by Python's hashlib: {missing}. "
            "Insecure (raw IP) mode, netlink and TUN/TAP devices still work; "
            "there is no fallback to weaker protection.")
        self.missing = missing


class _OsslParam(ctypes.Structure):
    _fields_ = [("key", _c_char_p), ("data_type", ctypes.c_uint), ("data", _c_void_p),
                ("data_size", _c_size_t), ("return_size", _c_size_t)]


def libcrypto_path() -> str:
    """Path of the libcrypto file this interpreter's ``_hashlib`` mapped; raises CryptoUnavailable."""
    try:
        import _hashlib  # noqa: F401  (loading it maps libcrypto into the process)
    except ImportError as e:
        raise CryptoUnavailable(f"the _hashlib module cannot be imported ({e})") from None
    try:
        with open("/proc/self/maps", encoding="ascii", errors="replace") as f:
            for line in f:
                path = line.rstrip("\n").split(None, 5)[-1] if line.count(" ") >= 5 else ""
                base = os.path.basename(path)
                if base.startswith("libcrypto") and ".so" in base:
                    return path
    except OSError as e:
        raise CryptoUnavailable(f"/proc/self/maps is unreadable ({e.strerror})") from None
    raise CryptoUnavailable("_hashlib has no shared libcrypto mapped (OpenSSL linked statically or absent)")


# (name, restype, argtypes); every pointer-returning function has restype c_void_p.
_SIGNATURES = [
    ("EVP_CIPHER_fetch", _c_void_p, [_c_void_p, _c_char_p, _c_char_p]),
    ("EVP_CIPHER_CTX_new", _c_void_p, []),
    ("EVP_CIPHER_CTX_free", None, [_c_void_p]),
    ("EVP_CipherInit_ex2", _c_int, [_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_int, _c_void_p]),
    ("EVP_CipherUpdate", _c_int, [_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_int]),
    ("EVP_CipherFinal_ex", _c_int, [_c_void_p, _c_void_p, _c_void_p]),
    ("EVP_CIPHER_CTX_ctrl", _c_int, [_c_void_p, _c_int, _c_int, _c_void_p]),
    ("EVP_PKEY_new_raw_private_key", _c_void_p, [_c_int, _c_void_p, _c_char_p, _c_size_t]),
    ("EVP_PKEY_new_raw_public_key", _c_void_p, [_c_int, _c_void_p, _c_char_p, _c_size_t]),
    ("EVP_PKEY_get_raw_public_key", _c_int, [_c_void_p, _c_void_p, _c_void_p]),
    ("EVP_PKEY_free", None, [_c_void_p]),
    ("EVP_PKEY_CTX_new", _c_void_p, [_c_void_p, _c_void_p]),
    ("EVP_PKEY_CTX_free", None, [_c_void_p]),
    ("EVP_PKEY_derive_init", _c_int, [_c_void_p]),
    ("EVP_PKEY_derive_set_peer", _c_int, [_c_void_p, _c_void_p]),
    ("EVP_PKEY_derive", _c_int, [_c_void_p, _c_void_p, _c_void_p]),
    ("ERR_clear_error", None, []),
]


class _Lib:
    """The bound functions plus the fetched cipher; built once per process."""

    def __init__(self, path: str) -> None:
        try:
            dll = ctypes.CDLL(path)
        except OSError as e:
            raise CryptoUnavailable(f"{path} cannot be loaded by ctypes ({e})") from None
        for name, restype, argtypes in _SIGNATURES:
            try:
                fn = getattr(dll, name)
            except AttributeError:
                raise CryptoUnavailable(f"{path} lacks {name} (OpenSSL 3.0 or newer is needed)") from None
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        self.path = path
        self.chacha = self.EVP_CIPHER_fetch(None, b"ChaCha20-Poly1305", None)
        if not self.chacha:
            self.ERR_clear_error()
            raise CryptoUnavailable(f"{path} has no ChaCha20-Poly1305 implementation")


@functools.lru_cache(maxsize=None)
def _lib() -> _Lib:
    return _Lib(libcrypto_path())


def available() -> bool:
    """True when the binding works here (never raises)."""
    try:
        _lib()
    except CryptoUnavailable:
        return False
    return True


def _address(buf, offset: int, size: int):
    """(ctypes anchor, address) of writable ``buf[offset:offset+size]``; TypeError for read-only memory."""
    if offset < 0 or size <= 0 or offset + size > len(buf):
        raise ValueError(f"range {offset}..{offset + size} is outside the {len(buf)}-byte buffer")
    anchor = _c_char.from_buffer(buf, offset)  # raises TypeError for bytes / read-only views
    return anchor, _addressof(anchor)


class ChaCha20Poly1305:
    """ChaCha20-Poly1305 (RFC 8439) under one 32-byte key, with a reused native context.

    ``nonce`` everywhere is either 12 bytes or an int counter ``c``, meaning
    the WireGuard nonce: four zero bytes then ``c`` as 64-bit little endian.
    """

    __slots__ = ("_ctx", "_lock", "_iv", "_iv_anchor", "_iv_addr", "_outl", "_outl_ref",
                 "_tag_param", "_params", "_params_addr", "_lib", "__weakref__")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"ChaCha20-Poly1305 key must be {KEY_SIZE} bytes, got {len(key)}")
        lib = self._lib = _lib()
        self._ctx = None
        ctx = lib.EVP_CIPHER_CTX_new()
        if not ctx:
            raise MemoryError("EVP_CIPHER_CTX_new failed")
        self._ctx = ctx
        if lib.EVP_CipherInit_ex2(ctx, lib.chacha, bytes(key), None, 1, None) != 1:
            lib.ERR_clear_error()
            raise CryptoUnavailable("EVP_CipherInit_ex2 refused a ChaCha20-Poly1305 key")
        self._lock = threading.Lock()
        _locked_objects.add(self)
        self._iv = bytearray(NONCE_SIZE)
        self._iv_anchor, self._iv_addr = _address(self._iv, 0, NONCE_SIZE)
        self._outl = _c_int(0)
        self._outl_ref = ctypes.byref(self._outl)
        params = (_OsslParam * 2)()
        params[0].key = b"tag"
        params[0].data_type = _OSSL_PARAM_OCTET_STRING
        params[0].data_size = TAG_SIZE
        self._params = params  # params[1] stays all zero: the end marker
        self._tag_param = params[0]
        self._params_addr = ctypes.addressof(params)

    def __del__(self) -> None:
        ctx, self._ctx = getattr(self, "_ctx", None), None
        if ctx:
            self._lib.EVP_CIPHER_CTX_free(ctx)

    def _set_iv(self, nonce) -> None:
        if type(nonce) is int:
            if not 0 <= nonce < 1 << 64:
                raise ValueError(f"nonce counter {nonce} is outside 0..2**64-1")
            _NONCE.pack_into(self._iv, 0, 0, nonce)
        elif len(nonce) == NONCE_SIZE:
            self._iv[:] = nonce
        else:
            raise ValueError(f"nonce must be {NONCE_SIZE} bytes or an int counter, got {len(nonce)} bytes")

    def seal_into(self, buf, offset: int, length: int, nonce, aad: bytes = b"") -> int:
        """Encrypt ``buf[offset:offset+length]`` in place and write the tag right after it.

        ``buf`` must be writable and hold ``length + 16`` bytes from ``offset``.
        Returns ``length + 16``.
        """
        anchor, addr = _address(buf, offset, length + TAG_SIZE)
        lib, ctx, outl = self._lib, self._ctx, self._outl_ref
        with self._lock:
            self._set_iv(nonce)
            ok = lib.EVP_CipherInit_ex2(ctx, None, None, self._iv_addr, 1, None)
            if aad:
                ok &= lib.EVP_CipherUpdate(ctx, None, outl, aad, len(aad))
            if length:
                ok &= lib.EVP_CipherUpdate(ctx, addr, outl, addr, length)
            ok &= lib.EVP_CipherFinal_ex(ctx, addr + length, outl)
            ok &= lib.EVP_CIPHER_CTX_ctrl(ctx, _EVP_CTRL_AEAD_GET_TAG, TAG_SIZE, addr + length)
        del anchor
        if ok != 1:
            ctypes.memset(_address(buf, offset, length + TAG_SIZE)[1], 0, length + TAG_SIZE)
            lib.ERR_clear_error()
            raise RuntimeError("ChaCha20-Poly1305 seal failed inside libcrypto")
        return length + TAG_SIZE

    def open_into(self, buf, offset: int, length: int, nonce, aad: bytes = b"") -> int:
        """Decrypt ``buf[offset:offset+length]`` (ciphertext then 16-byte tag) in place.

        Returns the plaintext length (``length - 16``), or ``-1`` when the tag
        does not verify; then the decrypted bytes are zeroed, never exposed.
        """
        n = length - TAG_SIZE
        if n < 0:
            return -1
        anchor, addr = _address(buf, offset, length)
        lib, ctx, outl = self._lib, self._ctx, self._outl_ref
        with self._lock:
            self._set_iv(nonce)
            self._tag_param.data = addr + n
            ok = lib.EVP_CipherInit_ex2(ctx, None, None, self._iv_addr, 0, self._params_addr)
            if aad:
                ok &= lib.EVP_CipherUpdate(ctx, None, outl, aad, len(aad))
            if n:
                ok &= lib.EVP_CipherUpdate(ctx, addr, outl, addr, n)
            ok &= lib.EVP_CipherFinal_ex(ctx, addr + n, outl)
            if ok != 1:
                ctypes.memset(addr, 0, n)
                lib.ERR_clear_error()
                n = -1
        del anchor
        return n

    def seal(self, nonce, plaintext, aad: bytes = b"") -> bytes:
        """Ciphertext || tag of ``plaintext`` (a new ``bytes``)."""
        buf = bytearray(len(plaintext) + TAG_SIZE)
        buf[: len(plaintext)] = plaintext
        self.seal_into(buf, 0, len(plaintext), nonce, aad)
        return bytes(buf)

    def open(self, nonce, ciphertext, aad: bytes = b"") -> bytes | None:
        """Plaintext of ``ciphertext`` (with its tag), or ``None`` when it does not authenticate."""
        buf = bytearray(ciphertext)
        n = self.open_into(buf, 0, len(buf), nonce, aad)
        return None if n < 0 else bytes(buf[:n])


# nonce: I = four zero bytes (WireGuard's fixed prefix), Q = 64-bit counter, little endian
_NONCE = struct.Struct("<IQ")


# Every object with a lock, so a forked child can renew them (see _after_fork_in_child).
_locked_objects: "weakref.WeakSet" = weakref.WeakSet()


# ---------------------------------------------------------------- XChaCha20-Poly1305

_SIGMA = (0x61707865, 0x3320646E, 0x79622D32, 0x6B206574)  # "expand 32-byte k"
_WORDS8 = struct.Struct("<8I")  # a 32-byte key (or HChaCha20 output) as eight u32 LE
_WORDS4 = struct.Struct("<4I")  # a 16-byte nonce as four u32 LE
_M = 0xFFFFFFFF


def _quarter(s: list, a: int, b: int, c: int, d: int) -> None:
    s[a] = (s[a] + s[b]) & _M; x = s[d] ^ s[a]; s[d] = ((x << 16) | (x >> 16)) & _M  # noqa: E702
    s[c] = (s[c] + s[d]) & _M; x = s[b] ^ s[c]; s[b] = ((x << 12) | (x >> 20)) & _M  # noqa: E702
    s[a] = (s[a] + s[b]) & _M; x = s[d] ^ s[a]; s[d] = ((x << 8) | (x >> 24)) & _M  # noqa: E702
    s[c] = (s[c] + s[d]) & _M; x = s[b] ^ s[c]; s[b] = ((x << 7) | (x >> 25)) & _M  # noqa: E702


def hchacha20(key: bytes, nonce16: bytes) -> bytes:
    """HChaCha20 (draft-irtf-cfrg-xchacha section 2.2): a 32-byte subkey; pure Python."""
    if len(key) != KEY_SIZE or len(nonce16) != 16:
        raise ValueError(f"HChaCha20 takes a 32-byte key and a 16-byte nonce, got {len(key)} and {len(nonce16)}")
    s = [*_SIGMA, *_WORDS8.unpack(key), *_WORDS4.unpack(nonce16)]
    for _ in range(10):
        _quarter(s, 0, 4, 8, 12); _quarter(s, 1, 5, 9, 13); _quarter(s, 2, 6, 10, 14); _quarter(s, 3, 7, 11, 15)  # noqa: E702
        _quarter(s, 0, 5, 10, 15); _quarter(s, 1, 6, 11, 12); _quarter(s, 2, 7, 8, 13); _quarter(s, 3, 4, 9, 14)  # noqa: E702
    return _WORDS8.pack(*s[0:4], *s[12:16])


def _xchacha(key: bytes, nonce24: bytes) -> tuple[ChaCha20Poly1305, bytes]:
    if len(nonce24) != 24:
        raise ValueError(f"XChaCha20-Poly1305 nonce must be 24 bytes, got {len(nonce24)}")
    return ChaCha20Poly1305(hchacha20(key, bytes(nonce24[:16]))), b"\0\0\0\0" + bytes(nonce24[16:])


def xchacha20poly1305_seal(key: bytes, nonce24: bytes, plaintext, aad: bytes = b"") -> bytes:
    """XChaCha20-Poly1305 ciphertext || tag."""
    aead, nonce = _xchacha(key, nonce24)
    return aead.seal(nonce, plaintext, aad)


def xchacha20poly1305_open(key: bytes, nonce24: bytes, ciphertext, aad: bytes = b"") -> bytes | None:
    """XChaCha20-Poly1305 plaintext, or ``None`` when it does not authenticate."""
    aead, nonce = _xchacha(key, nonce24)
    return aead.open(nonce, ciphertext, aad)


# ---------------------------------------------------------------- X25519


class X25519PrivateKey:
    """An X25519 private key with its native key and derive context cached."""

    __slots__ = ("_lib", "_pkey", "_dctx", "_lock", "public", "__weakref__")

    def __init__(self, private: bytes) -> None:
        if len(private) != KEY_SIZE:
            raise ValueError(f"X25519 private key must be {KEY_SIZE} bytes, got {len(private)}")
        lib = self._lib = _lib()
        self._pkey = self._dctx = None
        self._pkey = lib.EVP_PKEY_new_raw_private_key(_EVP_PKEY_X25519, None, bytes(private), KEY_SIZE)
        if not self._pkey:
            lib.ERR_clear_error()
            raise CryptoUnavailable("EVP_PKEY_new_raw_private_key refused an X25519 key")
        pub = ctypes.create_string_buffer(KEY_SIZE)
        size = _c_size_t(KEY_SIZE)
        if lib.EVP_PKEY_get_raw_public_key(self._pkey, pub, ctypes.byref(size)) != 1 or size.value != KEY_SIZE:
            lib.ERR_clear_error()
            raise CryptoUnavailable("EVP_PKEY_get_raw_public_key failed for X25519")
        self.public = pub.raw
        self._dctx = lib.EVP_PKEY_CTX_new(self._pkey, None)
        if not self._dctx or lib.EVP_PKEY_derive_init(self._dctx) != 1:
            lib.ERR_clear_error()
            raise CryptoUnavailable("EVP_PKEY_derive_init failed for X25519")
        self._lock = threading.Lock()
        _locked_objects.add(self)

    def __del__(self) -> None:
        lib = getattr(self, "_lib", None)
        if lib is None:
            return
        if getattr(self, "_dctx", None):
            lib.EVP_PKEY_CTX_free(self._dctx)
        if getattr(self, "_pkey", None):
            lib.EVP_PKEY_free(self._pkey)
        self._dctx = self._pkey = None

    def exchange(self, peer_public) -> bytes | None:
        """The 32-byte shared secret with ``peer_public``, or ``None`` when it is all zero."""
        if len(peer_public) != KEY_SIZE:
            raise ValueError(f"X25519 public key must be {KEY_SIZE} bytes, got {len(peer_public)}")
        lib = self._lib
        peer = lib.EVP_PKEY_new_raw_public_key(_EVP_PKEY_X25519, None, bytes(peer_public), KEY_SIZE)
        if not peer:
            lib.ERR_clear_error()
            return None
        out = ctypes.create_string_buffer(KEY_SIZE)
        size = _c_size_t(KEY_SIZE)
        try:
            with self._lock:
                ok = lib.EVP_PKEY_derive_set_peer(self._dctx, peer) == 1 and \
                    lib.EVP_PKEY_derive(self._dctx, out, ctypes.byref(size)) == 1
        finally:
            lib.EVP_PKEY_free(peer)
        if not ok:  # OpenSSL refuses an all-zero result (low-order point); so do we
            lib.ERR_clear_error()
            return None
        secret = out.raw
        return None if secret == bytes(KEY_SIZE) or size.value != KEY_SIZE else secret


@functools.lru_cache(maxsize=64)
def _cached_key(private: bytes) -> X25519PrivateKey:
    return X25519PrivateKey(private)


def x25519(private: bytes, peer_public: bytes) -> bytes | None:
    """X25519(private, peer_public) (RFC 7748); ``None`` for an all-zero result."""
    return _cached_key(bytes(private)).exchange(peer_public)


def generate_private_key() -> bytes:
    """A fresh clamped X25519 private key from ``os.urandom`` (``wg genkey``)."""
    return clamp(os.urandom(KEY_SIZE))


def public_key(private: bytes) -> bytes:
    """The X25519 public key of ``private`` (``wg pubkey``)."""
    return _cached_key(bytes(private)).public


class LibCrypto:
    """The crypto provider the pure engine (:mod:`tunkit.wireguard`) is given.

    Implements :class:`tunkit.wireguard.primitives.Crypto`; holds no state
    besides a bounded cache of private-key objects.
    """

    def __init__(self) -> None:
        _lib()  # raise CryptoUnavailable now, not on the first packet

    aead = staticmethod(ChaCha20Poly1305)
    xaead_seal = staticmethod(xchacha20poly1305_seal)
    xaead_open = staticmethod(xchacha20poly1305_open)

    @staticmethod
    def private_key(private: bytes) -> X25519PrivateKey:
        """A key object for a long-lived private key (cached)."""
        return _cached_key(bytes(private))

    @staticmethod
    def ephemeral(private: bytes) -> X25519PrivateKey:
        """A key object for a one-handshake private key (not cached)."""
        return X25519PrivateKey(private)

    random = staticmethod(os.urandom)

    @staticmethod
    def watch_fork(engine) -> None:
        """Call ``engine.forked()`` in every child this process forks (the engine cannot see forks)."""
        _fork_watchers.add(engine)


_fork_watchers: "weakref.WeakSet" = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # a lock another thread held at fork time would stay held forever in the child: renew them all
    for obj in list(_locked_objects):
        obj._lock = threading.Lock()
    for engine in list(_fork_watchers):
        engine.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)
