"""iproute2's name tables for the CLI (rt_dsfield, rt_realms, /etc/protocols); does I/O (reads them once).

``ip`` prints some numbers by name when its configuration files name them
(``tos AF11``, ``ipproto tcp``).  These helpers read the same files, with
the same fall-backs (``0x%02x`` for an unnamed DS field, ``ipproto-N`` for
an unnamed protocol), so tunkit's text and JSON match ``ip``'s on the same
machine.
"""

from __future__ import annotations

import functools

from tunkit.cli._common import CliError, parse_int

_DIRS = ("/etc/iproute2", "/usr/share/iproute2", "/usr/lib/iproute2")
# the protocols ip meets most, for machines without /etc/protocols (netbase)
_PROTOCOLS = {0: "ip", 1: "icmp", 2: "igmp", 4: "ipencap", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
              51: "ah", 58: "ipv6-icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp", 136: "udplite"}


def _read_table(name: str) -> dict[int, str]:
    for d in _DIRS:
        try:
            with open(f"{d}/{name}", encoding="utf-8", errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        out: dict[int, str] = {}
        for line in lines:
            fields = line.split("#", 1)[0].split()
            if len(fields) >= 2:
                try:
                    out.setdefault(int(fields[0], 0), fields[1])
                except ValueError:
                    continue
        return out
    return {}


@functools.lru_cache(maxsize=None)
def _dsfield() -> dict[int, str]:
    return _read_table("rt_dsfield")


@functools.lru_cache(maxsize=None)
def _realms() -> dict[int, str]:
    return {0: "unknown", **_read_table("rt_realms")}


@functools.lru_cache(maxsize=None)
def _protocols() -> dict[int, str]:
    table: dict[int, str] = {}
    try:
        with open("/etc/protocols", encoding="utf-8", errors="replace") as f:
            for line in f:
                fields = line.split("#", 1)[0].split()
                if len(fields) >= 2 and fields[1].isdigit():
                    table.setdefault(int(fields[1]), fields[0])
    except OSError:
        return dict(_PROTOCOLS)
    return table


def dsfield_name(value: int) -> str:
    """A TOS/DS field as ip prints it: its rt_dsfield name, else ``0x%02x``."""
    return _dsfield().get(value) or f"0x{value:02x}"


def dsfield_value(text: str, what: str) -> int:
    for k, v in _dsfield().items():
        if v == text:
            return k
    try:  # ip reads a DS field number as hex, with or without 0x
        return parse_int(text if text.lower().startswith("0x") else "0x" + text, "tos", 0, 0xFF)
    except CliError:
        raise CliError(f"{what}: tos {text!r}: want a hex number 0x00..0xff or a name from rt_dsfield") from None


def proto_name(value: int) -> str:
    """An IP protocol number as ip prints it (its /etc/protocols name, else ``ipproto-N``)."""
    return _protocols().get(value) or f"ipproto-{value}"


def proto_value(text: str, what: str) -> int:
    for k, v in _protocols().items():
        if v == text:
            return k
    try:
        return parse_int(text, "ipproto", 0, 255)
    except CliError:
        raise CliError(f"{what}: ipproto {text!r}: want a number 0..255 or a name (tcp, udp, icmp, ...)") from None


def realm_text(value: int) -> str:
    return _realms().get(value) or str(value)
