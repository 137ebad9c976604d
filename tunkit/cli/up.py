"""``tunkit up`` and ``tunkit reload``: run one overlay host from a config file, reload it; does I/O."""

from __future__ import annotations

import logging
import os
import signal
import sys

from tunkit.cli._common import EXIT_OK, EXIT_SYSTEM, EXIT_USAGE, CliError, subparser

UP_EPILOG = """\
Creates the TUN device, sets its MTU and txqueuelen, makes it carry exactly the
configured addresses, installs the configured routes (with mtu, advmss,
metric), and runs the tunnel in the foreground with logs on stderr.  On SIGINT
or SIGTERM it removes what it added (the device, and with it its addresses and
routes) and exits 0.  SIGHUP (or 'tunkit reload') re-reads CONFIG and applies
only the difference; an invalid file keeps the running configuration.

examples:
  tunkit up /etc/tunkit/host-a.toml
  tunkit up host-a.toml --status-socket /tmp/tk.sock -v
  tunkit check host-a.toml && tunkit up host-a.toml

exit status: 0 stopped cleanly, 1 invalid configuration, 2 the system refused
(e.g. no permission, the device name is taken, the port is in use).
"""

RELOAD_EPILOG = """\
Asks a running 'tunkit up' to re-read its configuration file (sends SIGHUP to
the process behind the status socket).  The instance logs what it changed, or
why the new file was refused.

examples:
  tunkit reload                 # the only running instance
  tunkit reload tunkit0         # the instance serving tunkit0
  tunkit reload --socket /tmp/tk.sock
"""


def register(sub) -> None:
    p = subparser(sub, "up", "run one host of the overlay from a configuration file", epilog=UP_EPILOG)
    p.add_argument("config", metavar="CONFIG", help="TOML (or JSON) configuration file")
    p.add_argument("--status-socket", metavar="PATH",
                   help="unix socket for 'tunkit status' and 'tunkit reload' (default /run/tunkit/DEVICE.sock)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level (overrides logging.level)")
    p.set_defaults(func=cmd_up)

    p = subparser(sub, "reload", "make a running 'tunkit up' re-read its configuration", epilog=RELOAD_EPILOG)
    p.add_argument("device", nargs="?", metavar="DEVICE", help="device name of the instance (default: the only one)")
    p.add_argument("--socket", metavar="PATH", help="status socket path (default /run/tunkit/DEVICE.sock)")
    p.set_defaults(func=cmd_reload)


def cmd_up(args) -> int:
    from tunkit.config import load
    from tunkit.up import Host

    cfg = load(args.config)  # a ConfigError (ValueError) exits 1 through tunkit.cli.main
    level = logging.DEBUG if args.verbose else getattr(logging, cfg.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tunkit").setLevel(level)
    for w in cfg.warnings:
        logging.getLogger("tunkit.up").warning("%s", w)
    host = Host(cfg, status_path=args.status_socket)
    try:
        host.start()
        host.run()
    except KeyboardInterrupt:  # Ctrl-C is how a foreground 'tunkit up' stops: a clean exit
        pass
    finally:  # an OSError (exit 2) is reported by tunkit.cli.main, after the clean-up
        host.close()
    return EXIT_OK


def cmd_reload(args) -> int:
    from tunkit.cli.status import ask_instances

    docs = ask_instances(args.device, args.socket)
    if len(docs) != 1:
        names = ", ".join(d.get("device", d["socket"]) for d in docs)
        raise CliError(f"{len(docs)} instances are running ({names}): name one", EXIT_USAGE)
    doc = docs[0]
    try:
        pid = int(doc["pid"])
        os.kill(pid, signal.SIGHUP)
    except (OSError, KeyError, ValueError) as e:
        raise CliError(f"{doc['socket']}: cannot signal the instance: {e}", EXIT_SYSTEM) from None
    print(f"reload requested from {doc.get('device', '?')} (pid {pid})")
    return EXIT_OK
