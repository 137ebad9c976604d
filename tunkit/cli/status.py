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


def format_text(doc: dict) -> str:
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
