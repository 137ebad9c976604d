"""Key files and the permission rules for tunkit's secrets: read, write, and warn; does I/O (files).

A key file is what ``tunkit genkey`` writes: the base64 of :data:`KEY_BYTES`
random bytes and a newline, mode 0600.  :func:`read_key_file` is the one
reader (the configuration, the docs and API users call it).
"""

from __future__ import annotations

import base64
import os
import stat

from tunkit.overlay.wire import KEY_LEN

KEY_BYTES = KEY_LEN  # the overlay's pre-shared key length

# Permission bits that make a secret readable or writable by someone other than its owner.
_KEY_MODE_BAD = stat.S_IRWXG | stat.S_IRWXO


def read_key_file(path: str) -> bytes:
    """Read a key file written by ``tunkit genkey``: base64 of 32 random bytes.  The one key reader.

    Raises ``ValueError`` naming the file if it is not a regular file, if its
    group or other users may read or write it (any of mode 0077: 0640, 0660,
    0620 and 0604 are refused alike), if it is not base64, or if it decodes
    to anything but 32 bytes; ``OSError`` if it cannot be read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)  # O_NONBLOCK: a FIFO cannot hang us
    try:
        st = os.fstat(fd)  # the file read is the file checked
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path} is not a regular file")
        if st.st_mode & _KEY_MODE_BAD:
            who = " and ".join(w for w, bits in (("its group", stat.S_IRWXG), ("other users", stat.S_IRWXO))
                               if st.st_mode & bits)
            raise ValueError(f"{path} is accessible by {who} (mode {stat.S_IMODE(st.st_mode):04o}); "
                             f"chmod 600 {path}")
        text = os.read(fd, 4096).strip()
    finally:
        os.close(fd)
    try:
        key = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError(f"{path} does not hold a base64 key (make one with 'tunkit genkey')") from None
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} holds a {len(key)}-byte key, expected {KEY_BYTES} (make one with 'tunkit genkey')")
    return key


def generate_key_file(path: str) -> None:
    """Write a new random key to ``path`` (mode 0600); refuses to overwrite."""
    key = base64.b64encode(os.urandom(KEY_BYTES)) + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask may have narrowed it; never widened
        os.write(fd, key)
    finally:
        os.close(fd)


def file_warnings(path: str, st: os.stat_result) -> list[str]:
    """Warnings about a configuration file others may change (it names the key files and routes)."""
    bits = stat.S_IMODE(st.st_mode) & (stat.S_IWGRP | stat.S_IWOTH)
    if not bits:
        return []
    who = " and ".join(w for w, b in (("its group", stat.S_IWGRP), ("other users", stat.S_IWOTH)) if bits & b)
    return [f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o}): they can change routes and keys "
            f"at the next reload; chmod go-w {path}"]
