"""``tunkit demo``: a guided run of tunkit in throwaway network namespaces; does I/O.

Everything happens inside anonymous network namespaces made for the run
(:class:`tunkit.netns.NetNS`): the host's own devices, addresses and routes
are never touched, and the kernel frees every namespace, with its devices,
when the demo exits, even if it is interrupted or killed.  Every wait is
bounded.

Sections, each printing what it does and what the kernel reports:

1. a TUN device: created with offloads negotiated, shown, a datagram sent by
   the kernel read back from it, removed.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable

Out = Callable[[str], None]


class DemoError(RuntimeError):
    """The demo cannot run here (e.g. not root); the message says why and what to do."""


def preflight() -> None:
    """Raise DemoError unless this machine can run the demo."""
    if os.geteuid() != 0:
        raise DemoError("the demo creates network namespaces and TUN devices: run it as root")
    if not os.path.exists("/dev/net/tun"):
        raise DemoError("/dev/net/tun is missing: load the tun module (modprobe tun) or run in a VM/container that has it")


def section_device(out: Out) -> None:
    """Section 1: one TUN device, end to end, in a namespace of its own."""
    from tunkit.device import list_tun_devices, open_tun
    from tunkit.netns import NetNS, assert_not_root_netns

    out("1. A TUN device")
    with NetNS("demo-device") as ns, ns.entered():
        assert_not_root_netns("the demo")
        out(f"   namespace: a fresh one (net inode {ns.inode}), loopback only")
        with open_tun("tunkit%d", vnet_hdr=True) as dev:
            offl = dev.offloads.name if dev.offloads else "none"
            out(f"   created {dev.name}: ifindex {dev.ifindex}, mode {dev.mode}, "
                f"virtio_net_hdr {dev.vnet_hdr_len} bytes, offloads the kernel accepted: {offl}")
            dev.mtu = 1400
            ns.run(["ip", "link", "set", "dev", dev.name, "addrgenmode", "none"])
            ns.run(["ip", "address", "add", "198.18.0.1/32", "dev", dev.name])
            dev.up()
            ns.run(["ip", "route", "add", "198.51.100.0/24", "dev", dev.name])
            info = next(i for i in list_tun_devices() if i.name == dev.name)
            out(f"   shown: mtu {dev.mtu}, up {dev.is_up}, flags {info.flags.name}, "
                f"route 198.51.100.0/24 dev {dev.name}")
            payload = b"hello through a TUN device"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(payload, ("198.51.100.7", 9))
            pkt = dev.read(timeout=2.0)
            if pkt is None:
                raise DemoError(f"{dev.name}: the kernel's datagram did not arrive within 2 s")
            ip_packet = pkt[dev.vnet_hdr_len:]
            src = socket.inet_ntoa(ip_packet[12:16])
            dst = socket.inet_ntoa(ip_packet[16:20])
            out(f"   a UDP datagram to 198.51.100.7:9 came out of {dev.name}: {dev.vnet_hdr_len}-byte header + "
                f"{len(ip_packet)}-byte IPv4 packet {src} -> {dst}, payload {ip_packet[28:]!r}")
            name = dev.name
        gone = all(i.name != name for i in list_tun_devices())
        out(f"   closed {name}: {'removed by the kernel' if gone else 'STILL PRESENT'}")
        if not gone:
            raise DemoError(f"{name} survived close()")
    out("   namespace released: nothing was left behind")


SECTIONS: list[Callable[[Out], None]] = [section_device]


def run(out: Out = print) -> int:
    """Run every section; returns an exit code (0 ok, 2 the system refused, 130 interrupted)."""
    try:
        preflight()
    except DemoError as e:
        print(f"tunkit demo: {e}", file=sys.stderr)
        return 2
    started = time.monotonic()
    out("tunkit demo: everything below runs in throwaway network namespaces; this host's network is untouched.")
    out("")
    try:
        for section in SECTIONS:
            section(out)
            out("")
    except KeyboardInterrupt:
        print("tunkit demo: interrupted; namespaces released", file=sys.stderr)
        return 130
    except (DemoError, OSError) as e:
        print(f"tunkit demo: {e}", file=sys.stderr)
        return 2
    out(f"done in {time.monotonic() - started:.1f} s.")
    return 0
