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
routes) and exits 0.  SIGHUP (or 'tunkit reload') re-reads CONFIG, validates it
as 'tunkit check' does and applies only the difference; an invalid file keeps
the running configuration, and a failure while applying undoes the kernel
changes made so far.  A reload never stops the process.

A TOML file with network.private_key_file runs in WireGuard mode too (peers
with public_key; same interface, UAPI socket and reload as a wg-quick file).
A wg-quick file (NAME.conf, unchanged) runs in WireGuard mode instead: the
interface NAME with the file's keys, peers, addresses and MTU, a route per
allowed IP (Table = auto), and the UAPI socket /var/run/wireguard/NAME.sock,
so 'wg show NAME' works.  SIGHUP ('tunkit reload NAME') re-reads the file and
applies keys and peers live, like 'wg syncconf' (all or nothing; addresses,
MTU and routes apply at the next start).  Keys tunkit does not do are named: DNS is ignored
with a warning; PreUp/PostUp/PreDown/PostDown, SaveConfig = true, a table
number and a /0 AllowedIPs with Table = auto are refused (exit 1).

examples:
  tunkit up /etc/tunkit/host-a.toml
  tunkit up wg0.conf                     # WireGuard mode (peers may be wireguard-go, the kernel, phones)
  tunkit up host-a.toml --status-socket /tmp/tk.sock -v
  tunkit check host-a.toml && tunkit up host-a.toml

exit status: 0 stopped cleanly, 1 invalid configuration, 2 the system refused
(e.g. no permission, the device name is taken, the port is in use).
"""

RELOAD_EPILOG = """\
Asks a running 'tunkit up' to re-read its configuration file (sends SIGHUP to
the process behind the status socket).  The instance logs what it changed, or
why the new file was refused.

The socket is /run/tunkit/DEVICE.sock unless 'tunkit up --status-socket' chose
another path; it is mode 0600, so only the user running the instance (normally
root) may use it.  Before signalling anything, reload checks that the socket's
directory is not writable by others, that the socket belongs to you, and that
the process serving it runs as you (SO_PEERCRED, from the kernel); it signals
that process, never a pid the server merely claims.  A check that fails exits 2.

examples:
  tunkit reload                 # the only running instance
  tunkit reload tunkit0         # the instance serving tunkit0
  tunkit reload --socket /tmp/tk.sock
"""


def register(sub) -> None:
    p = subparser(sub, "up", "run one host of the overlay from a configuration file", epilog=UP_EPILOG)
    p.add_argument("config", metavar="CONFIG",
                   help="TOML (or JSON) configuration file, or a wg-quick file NAME.conf (WireGuard mode)")
    p.add_argument("--status-socket", metavar="PATH",
                   help="unix socket for 'tunkit status' and 'tunkit reload' (default /run/tunkit/DEVICE.sock)")
    p.add_argument("--uapi-dir", metavar="DIR",
                   help="WireGuard mode: directory of the UAPI socket NAME.sock (default /var/run/wireguard)")
    p.add_argument("-v", "--verbose", action="store_true", help="log at debug level (overrides logging.level)")
    p.set_defaults(func=cmd_up)

    p = subparser(sub, "reload", "make a running 'tunkit up' re-read its configuration", epilog=RELOAD_EPILOG)
    p.add_argument("device", nargs="?", metavar="DEVICE", help="device name of the instance (default: the only one)")
    p.add_argument("--socket", metavar="PATH", help="status socket path (default /run/tunkit/DEVICE.sock)")
    p.set_defaults(func=cmd_reload)


def cmd_up(args) -> int:
    from tunkit.app.config import is_wgquick, load
    from tunkit.app.up import Host

    if is_wgquick(args.config):
        return _up_wgquick(args)
    cfg = load(args.config)  # a ConfigError (ValueError) exits 1 through tunkit.cli.main
    if cfg.mode == "wireguard":
        from tunkit.app.config import wireguard_file

        return _up_wgquick(args, wireguard_file(cfg), getattr(logging, cfg.log_level.upper()))
    level = logging.DEBUG if args.verbose else getattr(logging, cfg.log_level.upper())
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tunkit").setLevel(level)
    for w in cfg.warnings:
        logging.getLogger("tunkit.app.up").warning("%s", w)
    host = Host(cfg, status_path=args.status_socket)
    try:
        host.start()
        host.run()
    except KeyboardInterrupt:  # Ctrl-C is how a foreground 'tunkit up' stops: a clean exit
        pass
    finally:  # an OSError (exit 2) is reported by tunkit.cli.main, after the clean-up
        host.close()
    return EXIT_OK


def _up_wgquick(args, wq=None, level: int = logging.INFO) -> int:
    """``tunkit up NAME.conf`` (a wg-quick file) or a TOML file in WireGuard mode (``wq`` given): one code path
    (see docs/wireguard.md)."""
    from tunkit.app.config import load_wgquick
    from tunkit.app.up import WgQuickHost

    if wq is None:
        wq = load_wgquick(args.config)  # a ConfigError (ValueError) exits 1 through tunkit.cli.main
    level = logging.DEBUG if args.verbose else level
    logging.basicConfig(level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tunkit").setLevel(level)
    log = logging.getLogger("tunkit.app.up")
    for w in (*wq.warnings, *wq.ignored):
        log.warning("%s", w)
    host = WgQuickHost(wq, status_path=args.status_socket, uapi_dir=getattr(args, "uapi_dir", None))
    try:
        host.start(signals=True)
        host.run()
    except KeyboardInterrupt:
        pass
    finally:
        host.close()
    return EXIT_OK


def cmd_reload(args) -> int:
    from tunkit.cli.status import instance_paths
    from tunkit.overlay.status import UntrustedSocket, trusted_query

    paths = instance_paths(args.device, args.socket)
    if len(paths) != 1:
        raise CliError(f"{len(paths)} instances are running ({', '.join(paths)}): name one", EXIT_USAGE)
    path = paths[0]
    try:
        doc, pid = trusted_query(path)
    except UntrustedSocket as e:
        raise CliError(f"reload refused: {e}", EXIT_SYSTEM) from None
    except FileNotFoundError:
        raise CliError(f"{path}: no such socket (is the instance running?)", EXIT_USAGE) from None
    except (OSError, ValueError) as e:  # refused, timed out, or half-written JSON
        raise CliError(f"{path}: {e}", EXIT_SYSTEM) from None
    try:
        _signal(pid, signal.SIGHUP)
    except OSError as e:
        raise CliError(f"{path}: cannot signal the instance (pid {pid}): {e.strerror}", EXIT_SYSTEM) from None
    print(f"reload requested from {doc.get('device', '?')} (pid {pid})")
    return EXIT_OK


def _signal(pid: int, sig: int) -> None:
    """Signal ``pid`` through a pidfd where there is one (a pid reused since the check is not hit)."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # no pidfd_open (Linux < 5.3): a plain kill
        os.kill(pid, sig)
        return
    try:
        signal.pidfd_send_signal(fd, sig)
    finally:
        os.close(fd)
