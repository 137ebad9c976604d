"""``tunkit check`` and ``tunkit genkey``: validate a configuration, make key files; does I/O."""

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
  tunkit genkey /etc/tunkit/net.key     # then: key_file = "net.key" in [network] or a [[peers]] entry

The key is 32 random bytes in base64, written with mode 0600.  An existing file
is never overwritten.  Copy the same file to every host that shares the key.
"""


def register(sub) -> None:
    p = subparser(sub, "check", "validate a configuration file (nothing is applied)", epilog=CHECK_EPILOG)
    p.add_argument("config", metavar="CONFIG", help="TOML (or JSON) configuration file")
    add_json_flags(p)
    p.set_defaults(func=cmd_check)

    p = subparser(sub, "genkey", "write a new pre-shared key file (mode 0600)", epilog=GENKEY_EPILOG)
    p.add_argument("path", metavar="FILE", help="where to write the key; must not exist")
    p.set_defaults(func=cmd_genkey)


def cmd_check(args) -> int:
    from tunkit.app.config import kernel_routes, load, to_json

    cfg = load(args.config)  # a ConfigError (ValueError) exits 1 through tunkit.cli.main
    for w in cfg.warnings:
        print(f"tunkit: warning: {w}", file=sys.stderr)
    if args.json:
        emit_json(to_json(cfg), pretty=args.pretty)
        return EXIT_OK
    pc = "; partial checksums: tunkit peers only" if cfg.partial_checksums else ""
    mode = f"insecure (no authentication{pc})" if cfg.insecure else "authenticated"
    print(f"{cfg.file}: valid")
    print(f"  device {cfg.device.name} mtu {cfg.device_mtu} workers {cfg.device.workers or 'auto'}")
    print(f"  addresses {' '.join(map(str, cfg.addresses))}; listen {cfg.listen}; {mode}")
    for p in cfg.peers:
        print(f"  peer {p.name} at {p.endpoint}: {' '.join(map(str, p.prefixes))}")
    for r in kernel_routes(cfg):
        extra = "".join(
            f" {k} {v}" for k, v in (("metric", r.metric), ("mtu", r.mtu), ("advmss", r.advmss), ("src", r.src)) if v is not None
        )
        print(f"  route {r.dst} dev {cfg.device.name}{extra}")
    return EXIT_OK


def cmd_genkey(args) -> int:
    from tunkit.app.config import generate_key_file

    try:
        generate_key_file(args.path)
    except FileExistsError:
        print(f"tunkit: {args.path} exists; refusing to overwrite a key", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"tunkit: {args.path}: {e.strerror}", file=sys.stderr)
        return EXIT_SYSTEM
    print(f"wrote {args.path} (mode 0600)")
    return EXIT_OK
