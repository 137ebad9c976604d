"""Settings of a :class:`tunkit.overlay.tunnel.Tunnel`, validated once and shared by a node's workers; pure, no I/O.

One frozen :class:`TunnelOptions` is built by :class:`tunkit.overlay.node.TunnelNode`
(or a test), checked in ``__post_init__`` (a
:class:`~tunkit.errors.ConfigError` naming the option, its value and its
range), and carried to worker processes as JSON (:meth:`TunnelOptions.to_json`).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tunkit.errors import ConfigError
from tunkit.overlay.wire import DEFAULT_MTU

__all__ = ["TunnelOptions", "DEFAULT_BATCH", "UNDERLAY_MTU"]

DEFAULT_BATCH = 64  # reads per readiness event
UNDERLAY_MTU = 1500


@dataclass(frozen=True)
class TunnelOptions:
    """A tunnel's settings, validated once (:class:`~tunkit.errors.ConfigError` naming the option and its range).

    A node builds one and hands it to every worker (:meth:`to_json` /
    :meth:`from_json` carry it to worker processes); only the sender index
    differs per worker and is passed to :class:`Tunnel` on its own.
    """

    insecure: bool = False  # raw IP in UDP (foo-over-UDP), no authentication
    mtu: int = DEFAULT_MTU  # inner MTU: routes without one of their own use it
    addresses: tuple = ()  # this host's overlay addresses: the source of ICMP errors it sends
    session: int | None = None  # random 32-bit id of this start (None: drawn here); shared by a node's workers
    start_counter: int | None = None  # first message counter (None: the clock in ns)
    batch: int = DEFAULT_BATCH  # TUN reads and UDP reads per readiness event
    udp_gso: bool | None = None  # UDP_SEGMENT sends (None: probe)
    udp_gro: bool | None = None  # UDP_GRO receives (None: try)
    vnet_hdr: bool | None = None  # the queue carries virtio_net_hdr (None: the queue's ``vnet_hdr``, else off)
    coalesce: bool = True  # merge received packets into super-packets before the TUN write (GRO)
    uso: bool = False  # the TUN takes UDP super-packets (USO negotiated)
    max_age_ms: int | None = None  # freshness window (None: overlay.DEFAULT_MAX_AGE_MS)
    underlay_mtu: int = UNDERLAY_MTU  # the underlay's MTU: the largest datagram worth batching
    partial_checksums: bool = False  # insecure only: TCP super-packets keep their partial checksum on the wire
    table_factory: Callable[[], object] | None = field(default=None, compare=False)  # routing table class
    clock_ns: Callable[[], int] = field(default=time.time_ns, compare=False, repr=False)  # wall clock (tests)

    def __post_init__(self) -> None:
        def need(ok: bool, what: str, value, allowed: str) -> None:
            if not ok:
                raise ConfigError(f"tunnel option {what} = {value!r}: want {allowed}")

        for name in ("insecure", "coalesce", "uso", "partial_checksums"):
            need(isinstance(getattr(self, name), bool), name, getattr(self, name), "true or false")
        for name in ("udp_gso", "udp_gro", "vnet_hdr"):
            need(getattr(self, name) in (None, True, False), name, getattr(self, name), "true, false or unset")
        need(_int(self.mtu) and 68 <= self.mtu <= 65535, "mtu", self.mtu, "68..65535")
        need(_int(self.batch) and 1 <= self.batch <= 1024, "batch", self.batch, "1..1024")
        need(_int(self.underlay_mtu) and 576 <= self.underlay_mtu <= 65535, "underlay_mtu", self.underlay_mtu, "576..65535")
        need(self.session is None or (_int(self.session) and 0 <= self.session < 2**32), "session", self.session,
             "0..4294967295")
        need(self.start_counter is None or (_int(self.start_counter) and 0 <= self.start_counter < 2**64 - 1),
             "start_counter", self.start_counter, "0..2**64-2")
        need(self.max_age_ms is None or (_int(self.max_age_ms) and 1 <= self.max_age_ms <= 3_600_000), "max_age_ms",
             self.max_age_ms, "1..3600000")
        if self.partial_checksums and not self.insecure:
            raise ConfigError("partial_checksums is an insecure-mode setting (authenticated messages carry "
                              "the checksum state in their header)")
        try:
            addrs = tuple(ipaddress.ip_address(a) for a in self.addresses)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"tunnel option addresses: {e}") from None
        object.__setattr__(self, "addresses", addrs)

    def replace(self, **changes) -> "TunnelOptions":
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict:
        """The options as JSON values (``table_factory`` as ``module:name``; the clock is not carried)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in ("clock_ns", "table_factory")}
        d["addresses"] = [str(a) for a in self.addresses]
        tf = self.table_factory
        d["table_factory"] = None if tf is None else f"{tf.__module__}:{tf.__qualname__}"
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TunnelOptions":
        """Inverse of :meth:`to_json`; unknown keys are a :class:`~tunkit.errors.ConfigError`."""
        if not isinstance(d, dict):
            raise ConfigError(f"tunnel options: want an object, not {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)} - {"clock_ns"}
        extra = set(d) - known
        if extra:
            raise ConfigError(f"tunnel options: unknown {', '.join(sorted(extra))}")
        d = dict(d)
        if d.get("table_factory") is not None:
            d["table_factory"] = _load_path(d["table_factory"])
        return cls(**d)


def _int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _load_path(path: str):
    import importlib  # noqa: PLC0415

    mod, _, name = str(path).partition(":")
    try:
        obj = importlib.import_module(mod)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"tunnel option table_factory = {path!r}: {e}") from None
    return obj
