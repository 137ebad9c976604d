"""tunkit: Linux TUN/TAP devices, rtnetlink and an overlay tunnel in pure Python.

This package module does no I/O and imports nothing heavy: submodules are
loaded on first attribute access, so ``import tunkit`` stays cheap for the
CLI.  Layout (lower layers never import higher ones):

* layer 0, pure codecs: ``_uapi`` (kernel constants), ``errors``,
  ``netlink.message/attr/rtnl/events``, ``packet``, ``offload``, ``trie``;
* layer 1, thin I/O: ``netlink.socket/client``, ``device``, ``netns``;
* layer 2, orchestration: ``loop``, ``config``, ``cli``.
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
    "open_tun": "tunkit.device",
    "Device": "tunkit.device",
    "Queue": "tunkit.device",
    "OffloadIO": "tunkit.batch",
    "Rtnl": "tunkit.netlink.client",
    "PrefixTable": "tunkit.trie",
    "GatewaySet": "tunkit.ecmp",
    "NetNS": "tunkit.netns",
    "TunnelNode": "tunkit.node",
    "load_config": "tunkit.config",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
