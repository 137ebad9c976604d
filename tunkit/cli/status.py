"""``tunkit status``: the counters of a running tunnel, read from its unix socket; does I/O."""

from __future__ import annotations

import glob
import os

from tunkit.cli._common import EXIT_OK, EXIT_SYSTEM, EXIT_USAGE, CliError, add_json_flags, emit_json, subparser

EPILOG = """\
examples:
  tunkit status                 # every instance listening in /run/tunkit
  tunkit status tunkit0         # the instance serving device tunkit0
  tunkit status -j -p tunkit0   # JSON: peers with rx/tx packets and bytes, drops by reason
  tunkit status --socket /tmp/tk.sock

Drop reasons: no_route, too_big (an ICMP error went back), unknown_endpoint,
not_allowed (inner source outside the peer's prefixes), truncated, version,
type, unknown_key, stale, replay, bad_mac, malformed, gso_unsupported,
tun_write, tun_read, send_error.
A WireGuard-mode instance ('tunkit up NAME.conf') prints what 'wg show'
prints per peer (endpoint, allowed ips, latest handshake, transfer,
persistent keepalive) and its drops by the engine's reasons (malformed, mac1,
handshake_invalid, unknown_peer, replayed_initiation, unknown_receiver,
decrypt, replayed_transport, disallowed_source, no_route, ...: see
docs/wireguard.md), plus tun_malformed and send_error.
Exit status 0, 1 if no instance is found, 2 if one does not answer.
"""


def register(sub) -> None:
    p = subparser(sub, "status", "show a running tunnel's peers and counters", epilog=EPILOG)
    p.add_argument("device", nargs="?", metavar="DEVICE", help="device name of the instance (default: all)")
    p.add_argument("--socket", metavar="PATH", help="status socket path (default /run/tunkit/DEVICE.sock)")
    add_json_flags(p)
    p.set_defaults(func=cmd_status)


def instance_paths(device: str | None, socket: str | None) -> list[str]:
    """The status sockets named by ``--socket``, DEVICE, or every one in /run/tunkit (CliError: none)."""
    from tunkit.overlay.status import DEFAULT_DIR, socket_path

    if socket:
        return [socket]
    if device:
        return [socket_path(device)]
    paths = sorted(glob.glob(os.path.join(DEFAULT_DIR, "*.sock")))
    if not paths:
        raise CliError(f"no running instance (no socket in {DEFAULT_DIR})", EXIT_USAGE)
    return paths


def ask_instances(device: str | None, socket: str | None) -> list[dict]:
    """Status documents of the running instances named by ``--socket``, DEVICE, or all of them.

    Raises CliError (exit 1: none found; exit 2: one did not answer).
    """
    from tunkit.overlay.status import query

    docs = []
    for path in instance_paths(device, socket):
        try:
            doc = query(path)
        except FileNotFoundError:
            raise CliError(f"{path}: no such socket (is the instance running?)", EXIT_USAGE) from None
        except (OSError, ValueError) as e:  # refused, timed out, or half-written JSON
            raise CliError(f"{path}: {e}", EXIT_SYSTEM) from None
        doc.setdefault("socket", path)
        docs.append(doc)
    return docs


def cmd_status(args) -> int:
    docs = ask_instances(args.device, args.socket)
    if args.json:
        emit_json(docs, pretty=args.pretty)
        return EXIT_OK
    for doc in docs:
        print(format_text(doc))
    return EXIT_OK


def _drops(d: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(d.items())) or "none"


def _bytes(n: int) -> str:
    """Bytes as ``wg show`` prints them (1024-based units, two decimals)."""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def _ago(wall: int | None, now: float) -> str:
    if not wall:
        return "never"
    secs = max(0, int(now - wall))
    parts = [(secs // 3600, "hour"), (secs // 60 % 60, "minute"), (secs % 60, "second")]
    text = ", ".join(f"{v} {u}{'s' if v != 1 else ''}" for v, u in parts if v)
    return f"{text or '0 seconds'} ago"


def format_wireguard(doc: dict, now: float | None = None) -> str:
    """A WireGuard-mode instance as ``wg show`` prints it, plus tunkit's drop counters and I/O modes."""
    import time

    now = time.time() if now is None else now
    udp = doc.get("udp", {})
    lines = [f"interface: {doc.get('device', '?')} (WireGuard, {doc.get('socket', '')})"]
    if doc.get("public_key"):
        lines.append(f"  public key: {doc['public_key']}")
    lines.append(f"  listening port: {doc.get('listen_port')}")
    if doc.get("fwmark"):
        lines.append(f"  fwmark: {doc['fwmark']:#x}")
    lines.append(f"  udp gso {'on' if udp.get('gso') else 'off'}, gro {'on' if udp.get('gro') else 'off'}")
    for p in doc.get("peers", []):
        lines.append("")
        lines.append(f"peer: {p['public_key']}")
        if p.get("endpoint"):
            lines.append(f"  endpoint: {p['endpoint']}")
        lines.append(f"  allowed ips: {', '.join(p.get('allowed_ips', [])) or '(none)'}")
        lines.append(f"  latest handshake: {_ago(p.get('latest_handshake'), now)}")
        lines.append(f"  transfer: {_bytes(p.get('rx_bytes', 0))} received, {_bytes(p.get('tx_bytes', 0))} sent")
        if p.get("persistent_keepalive"):
            lines.append(f"  persistent keepalive: every {p['persistent_keepalive']} seconds")
    lines.append("")
    lines.append(f"drops: {_drops(doc.get('drops', {}))}")
    return "\n".join(lines)


def format_text(doc: dict) -> str:
    if doc.get("mode") == "wireguard":
        return format_wireguard(doc)
    udp = doc.get("udp", {})
    lines = [
        f"{doc.get('device', '?')}: {doc.get('mode', '?')}, {doc.get('workers', 1)} worker(s), "
        f"udp gso {'on' if udp.get('gso') else 'off'}, gro {'on' if udp.get('gro') else 'off'}"
        f" ({doc.get('socket', '')})",
    ]
    for p in doc.get("peers", []):
        lines.append(f"  peer {p['name']} at {p['endpoint']}  {' '.join(p.get('prefixes', []))}")
        lines.append(
            f"    rx {p['rx_packets']} packets {p['rx_bytes']} bytes   tx {p['tx_packets']} packets {p['tx_bytes']} bytes"
        )
        if p.get("drops"):
            lines.append(f"    drops: {_drops(p['drops'])}")
    lines.append(f"  drops: {_drops(doc.get('drops', {}))}")
    return "\n".join(lines)
