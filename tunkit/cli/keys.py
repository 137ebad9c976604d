"""``tunkit check``, ``genkey``, ``genpsk``, ``pubkey``: validate a configuration, make keys; does I/O."""

from __future__ import annotations

import sys

from tunkit.cli._common import EXIT_OK, EXIT_SYSTEM, EXIT_USAGE, add_json_flags, emit_json, subparser

CHECK_EPILOG = """\
examples:
  tunkit check /etc/tunkit/host-a.toml
  tunkit check -j examples/two-hosts/a.toml     # the validated config and the kernel routes it implies

Every problem is reported with the file, the key path and the bad value, e.g.
  host.toml:unsafe_routes[2].via[0].weight: 0 is not an integer weight in 1..2147483647
Exit status 0 if the file is valid, 1 if not.
"""

GENKEY_EPILOG = """\
examples:
  tunkit genkey > wg0.key                     # a WireGuard private key, as 'wg genkey' prints it
  tunkit genkey | tee wg0.key | tunkit pubkey  # and its public key
  tunkit genkey --psk /etc/tunkit/net.key     # a pre-shared key file for tunkit's HMAC mode

Without --psk: a new X25519 private key (clamped, 32 bytes) in wg's base64 on
standard output; keep it secret (umask 077).  With --psk FILE: 32 random
bytes in base64 written to FILE with mode 0600, for key_file = "net.key" in a
TOML configuration; an existing file is never overwritten.  'tunkit genkey
FILE' (the old form) still writes such a pre-shared key file, with a note.
"""

PUBKEY_EPILOG = """\
examples:
  tunkit pubkey < wg0.key                     # as 'wg pubkey': private key in, public key out
"""


def register(sub) -> None:
    p = subparser(sub, "check", "validate a configuration file (nothing is applied)", epilog=CHECK_EPILOG)
    p.add_argument("config", metavar="CONFIG", help="TOML (or JSON) configuration file")
    add_json_flags(p)
    p.set_defaults(func=cmd_check)

    p = subparser(sub, "genkey", "print a new WireGuard private key (--psk FILE: an HMAC-mode key file)",
                  epilog=GENKEY_EPILOG)
    p.add_argument("path", nargs="?", metavar="FILE", help=argparse_suppress())
    p.add_argument("--psk", metavar="FILE", dest="psk", help="write a pre-shared key file for HMAC mode (mode 0600)")
    p.set_defaults(func=cmd_genkey)

    p = subparser(sub, "genpsk", "print a new WireGuard preshared key (as 'wg genpsk')")
    p.set_defaults(func=cmd_genpsk)

    p = subparser(sub, "pubkey", "read a WireGuard private key on stdin, print its public key", epilog=PUBKEY_EPILOG)
    p.set_defaults(func=cmd_pubkey)


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


def cmd_check(args) -> int:
    from tunkit.app.config import is_wgquick, kernel_routes, load, to_json

    if is_wgquick(args.config):
        return _check_wgquick(args)
    cfg = load(args.config)  # a ConfigError (ValueError) exits 1 through tunkit.cli.main
    for w in cfg.warnings:
        print(f"tunkit: warning: {w}", file=sys.stderr)
    if cfg.mode == "wireguard":
        from tunkit.app.config import wireguard_file

        wireguard_file(cfg)  # what 'tunkit up' runs, built the same way
    if args.json:
        emit_json(to_json(cfg), pretty=args.pretty)
        return EXIT_OK
    pc = "; partial checksums: tunkit peers only" if cfg.partial_checksums else ""
    mode = {"wireguard": "WireGuard mode (encrypted)", "insecure": f"insecure (no authentication{pc})",
            "hmac": "HMAC mode (authenticated, not encrypted)"}[cfg.mode]
    print(f"{cfg.file}: valid")
    print(f"  mode: {mode}")
    if cfg.mode == "hmac":
        print("  note: HMAC mode authenticates but does not encrypt: anyone on the underlay can read the traffic. "
              "To encrypt, switch to WireGuard mode: set network.private_key_file (tunkit genkey > FILE; chmod 600 "
              "FILE), give each peer public_key (tunkit pubkey < FILE on the peer) and optionally "
              "preshared_key_file, and remove network.key_file and the peers' key_file")
    print(f"  device {cfg.device.name} mtu {cfg.device_mtu} workers {cfg.device.workers or 'auto'}")
    print(f"  addresses {' '.join(map(str, cfg.addresses))}; listen {cfg.listen}")
    for p in cfg.peers:
        at = f"at {p.endpoint}" if p.endpoint is not None else "(no endpoint: it initiates)"
        print(f"  peer {p.name} {at}: {' '.join(map(str, p.prefixes))}")
    for r in kernel_routes(cfg):
        extra = "".join(
            f" {k} {v}" for k, v in (("metric", r.metric), ("mtu", r.mtu), ("advmss", r.advmss), ("src", r.src)) if v is not None
        )
        print(f"  route {r.dst} dev {cfg.device.name}{extra}")
    return EXIT_OK


def cmd_genkey(args) -> int:
    path = args.psk or args.path
    if path is None:
        from tunkit.crypto import generate_private_key
        from tunkit.wireguard import format_key

        print(format_key(generate_private_key()))
        return EXIT_OK
    from tunkit.app.config import generate_key_file

    if args.psk and args.path:
        print("tunkit: genkey takes --psk FILE or nothing, not both", file=sys.stderr)
        return EXIT_USAGE
    try:
        generate_key_file(path)
    except FileExistsError:
        print(f"tunkit: {path} exists; refusing to overwrite a key", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"tunkit: {path}: {e.strerror}", file=sys.stderr)
        return EXIT_SYSTEM
    print(f"wrote {path} (mode 0600)")
    if args.path:
        print(f"tunkit: note: that is an HMAC-mode pre-shared key (the same as 'tunkit genkey --psk {path}'); "
              "for a WireGuard private key run 'tunkit genkey > FILE'", file=sys.stderr)
    return EXIT_OK


def cmd_genpsk(args) -> int:
    import os

    from tunkit.wireguard import format_key

    print(format_key(os.urandom(32)))
    return EXIT_OK


def cmd_pubkey(args) -> int:
    from tunkit.crypto import public_key
    from tunkit.wireguard import KeyFormatError, format_key, parse_key

    text = sys.stdin.read(4096).strip()
    try:
        key = parse_key(text)
    except KeyFormatError as e:
        print(f"tunkit: pubkey: standard input: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(format_key(public_key(key)))
    return EXIT_OK


def _check_wgquick(args) -> int:
    from tunkit.app.config import load_wgquick
    from tunkit.wireguard import format_key

    wq = load_wgquick(args.config)  # a ConfigError exits 1 through tunkit.cli.main
    for w in (*wq.warnings, *wq.ignored):
        print(f"tunkit: warning: {w}", file=sys.stderr)
    cfg = wq.interface
    if args.json:
        emit_json({"file": wq.file, "mode": "wireguard", "interface": wq.name, "mtu": wq.mtu,
                   "addresses": [str(a) for a in wq.addresses], "listen_port": cfg.listen_port,
                   "fwmark": cfg.fwmark, "routes": [str(r) for r in wq.routes], "ignored": list(wq.ignored),
                   "peers": [{"public_key": format_key(p.public_key), "preshared_key": p.preshared_key is not None,
                              "endpoint": None if p.endpoint is None else f"{p.endpoint[0]}:{p.endpoint[1]}",
                              "persistent_keepalive": p.persistent_keepalive,
                              "allowed_ips": [str(n) for n in p.allowed_ips]} for p in cfg.peers]},
                  pretty=args.pretty)
        return EXIT_OK
    print(f"{wq.file}: valid (WireGuard mode, encrypted)")
    print(f"  interface {wq.name} mtu {wq.mtu} listen port {cfg.listen_port or 'any'}; "
          f"addresses {' '.join(map(str, wq.addresses)) or 'none'}")
    for p in cfg.peers:
        ep = "no endpoint (it must initiate)" if p.endpoint is None else f"at {p.endpoint[0]}:{p.endpoint[1]}"
        print(f"  peer {format_key(p.public_key)} {ep}: {' '.join(map(str, p.allowed_ips))}")
    for r in wq.routes:
        print(f"  route {r} dev {wq.name}")
    return EXIT_OK
