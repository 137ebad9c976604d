"""Interface-name rules, as the kernel's ``dev_valid_name`` applies them; pure, no I/O.

Shared by the device layer (before TUNSETIFF, where the kernel would silently
truncate a long name) and the configuration checker (``device.name``).
"""

from __future__ import annotations

from tunkit._uapi import IFNAMSIZ


def validate_name(name: str, *, template: bool = True) -> bytes:
    """Check an interface name as the kernel's ``dev_valid_name`` would; return its bytes.

    At most 15 bytes (``IFNAMSIZ`` minus the NUL; the kernel would silently
    truncate longer ones), not ``.``/``..``, no ``/``, ``:`` or whitespace.
    With ``template=True`` one ``%d`` is allowed (``tun%d``).  Raises
    ``ValueError`` naming the name and the rule.
    """
    if not isinstance(name, str):
        raise TypeError(f"interface name must be str, not {type(name).__name__}")
    raw = name.encode()
    if not raw:
        raise ValueError("interface name is empty (pass None to let the kernel choose)")
    if len(raw) >= IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is too long: {len(raw)} bytes, at most {IFNAMSIZ - 1}")
    if name in (".", ".."):
        raise ValueError(f"interface name {name!r} is not allowed")
    bad = [c for c in name if c in "/:" or c.isspace()]
    if bad:
        raise ValueError(f"interface name {name!r} contains {bad[0]!r} ('/', ':' and whitespace are not allowed)")
    pct = name.find("%")
    if pct >= 0:
        if not template:
            raise ValueError(f"interface name {name!r} is a template; an existing device's exact name is needed")
        if name[pct + 1 : pct + 2] != "d" or "%" in name[pct + 2 :]:
            raise ValueError(f"interface name template {name!r} must contain exactly one '%d'")
    return raw
