"""A user's script against tunkit's public API, type-checked by ``mypy --strict`` (scripts/check.sh); pure part runs in tests.

It imports only what ``tunkit`` and ``tunkit.netlink`` export and uses the results with their
real types, so a re-export that erases a type (``from tunkit import Rtnl`` seen as ``object``)
or a public signature without annotations fails the check.  ``routing_demo`` is pure and
tests/test_public_api.py runs it; the device and netlink functions need root and a network
namespace, so they are type-checked only.
"""

from __future__ import annotations

import ipaddress

from tunkit import (
    ConfigError,
    Device,
    GatewaySet,
    NetlinkError,
    NetNS,
    PrefixTable,
    Queue,
    Rtnl,
    TunkitError,
    load_config,
    open_tun,
)
from tunkit.netlink import LinkMessage, Monitor, RouteMessage


def routing_demo() -> list[str]:
    """Longest-prefix match and a weighted ECMP choice (pure)."""
    table = PrefixTable()
    table.insert("198.18.0.0/15", "overlay")
    table["192.0.2.0/24"] = "lab"
    gateways = GatewaySet([("198.51.100.1", 1), ("198.51.100.2", 3)])
    out: list[str] = [str(table.lookup("198.18.7.1")), str(table.lookup(ipaddress.ip_address("192.0.2.9")))]
    out.append(str(gateways.choose(12345)))
    hit = table.lookup_prefix("198.19.255.255")
    if hit is not None:
        prefix, value = hit
        out.append(f"{prefix} -> {value}")
    out.append(str(len(table)))
    return out


def device_demo() -> int:
    """Open a TUN device with two queues and write one packet (needs root, in a namespace)."""
    dev: Device = open_tun("tk%d", queues=2, vnet_hdr=True)
    with dev:
        dev.mtu = 1400
        dev.up()
        q: Queue = dev.queues[0]
        pkt = q.read(timeout=0.1)
        return q.write(pkt or b"") + len(dev.name)


def netlink_demo() -> list[str]:
    """List links and routes; errors are OSError subclasses with errno (needs a namespace)."""
    try:
        with NetNS("typing-demo"), Rtnl() as rt:
            links: list[LinkMessage] = rt.links()
            routes: list[RouteMessage] = rt.routes()
            rt.set_link("lo", up=True)
            return [link.ifname or "?" for link in links] + [rt.describe_route(r) for r in routes]
    except NetlinkError as exc:
        return [f"{exc.errno}: {exc}"]


def events_demo(datagram: bytes) -> int:
    """The sans-IO monitor: bytes in, typed events out."""
    mon = Monitor()
    return len(mon.feed(datagram))


def config_demo(path: str) -> str:
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        return str(exc)
    except TunkitError as exc:
        return repr(exc)
    return repr(cfg)


if __name__ == "__main__":
    print("\n".join(routing_demo()))
