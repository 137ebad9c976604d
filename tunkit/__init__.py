"""tunkit: Linux TUN/TAP devices, rtnetlink and an overlay tunnel in pure Python; importing it does no I/O.

The names below are loaded on first attribute access (PEP 562), so
``import tunkit`` stays cheap for the CLI; type checkers see them as real
imports (the ``if TYPE_CHECKING:`` block).

The packages and their layers (lower never imports higher; ARCHITECTURE.md
has the map, tests/test_layering.py enforces it):

* pure (codecs and decisions): ``_uapi``, ``errors``, ``ifname``,
  ``packet`` (ip, offload, coalesce), ``routing`` (trie, ecmp), the
  ``netlink`` codecs, ``wireguard`` (the sans-IO engine), ``overlay.wire``,
  ``overlay.auth``, ``overlay.spec``, ``app.plan``;
* I/O (thin wrappers over one kernel interface): ``tun`` (ifreq, clone,
  queue, device, batch, aio), ``netlink.{socket,client,objects,aio}``,
  ``netns``, ``crypto`` (libcrypto through ctypes),
  ``overlay.{udp,loop,status,uapi_server}``, ``app.keyfile``;
* orchestration: ``overlay.{tunnel,node,options,control}``, ``app``
  (config, up, demo), ``cli``.
"""

from __future__ import annotations

from tunkit._lazy import lazy_exports

__version__ = "0.1.0"

# public name -> submodule that defines it (loaded lazily, PEP 562)
_LAZY = {
    "TunkitError": "tunkit.errors",
    "DecodeError": "tunkit.errors",
    "NetlinkError": "tunkit.errors",
    "DeviceError": "tunkit.errors",
    "DeviceClosedError": "tunkit.errors",
    "ConfigError": "tunkit.errors",
    "open_tun": "tunkit.tun.device",
    "Device": "tunkit.tun.device",
    "Queue": "tunkit.tun.device",
    "OffloadIO": "tunkit.tun.batch",
    "Rtnl": "tunkit.netlink.client",
    "PrefixTable": "tunkit.routing.trie",
    "GatewaySet": "tunkit.routing.ecmp",
    "NetNS": "tunkit.netns",
    "TunnelNode": "tunkit.overlay.node",
    "load_config": "tunkit.app.config",
}

__all__ = ["__version__", *_LAZY]


# What type checkers see: the same names, imported for real (never run: TYPE_CHECKING is
# False here, and mypy and pyright take any module-level TYPE_CHECKING to be True).
# tests/test_public_api.py checks that these names and modules equal _LAZY's.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from tunkit.tun.batch import OffloadIO as OffloadIO
    from tunkit.app.config import load_config as load_config
    from tunkit.tun.device import Device as Device, Queue as Queue, open_tun as open_tun
    from tunkit.routing.ecmp import GatewaySet as GatewaySet
    from tunkit.errors import (
        ConfigError as ConfigError,
        DecodeError as DecodeError,
        DeviceClosedError as DeviceClosedError,
        DeviceError as DeviceError,
        NetlinkError as NetlinkError,
        TunkitError as TunkitError,
    )
    from tunkit.netlink.client import Rtnl as Rtnl
    from tunkit.netns import NetNS as NetNS
    from tunkit.overlay.node import TunnelNode as TunnelNode
    from tunkit.routing.trie import PrefixTable as PrefixTable

__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
