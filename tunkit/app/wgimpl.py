"""``tunkit-wireguard IFNAME``: tunkit as wg-quick's userspace implementation (drop-in for wireguard-go); does I/O (orchestration).

``wg-quick up`` on a kernel without the WireGuard module runs
``${WG_QUICK_USERSPACE_IMPLEMENTATION:-wireguard-go} IFNAME`` and then
configures the interface with ``ip`` and ``wg setconf``.  This command does
what wireguard-go does there:

* creates the TUN device ``IFNAME`` (MTU 1420, up) and serves
  ``/var/run/wireguard/IFNAME.sock`` with an engine that has no private key
  (``wg show`` shows none; the data path sends nothing until ``wg`` sets one);
* detaches into the background unless ``WG_PROCESS_FOREGROUND=1`` (or
  ``-f``): the parent waits until the child serves the socket and exits 0, or
  reports the child's error and exits non-zero (1 bad usage, 2 the system
  refused);
* logs to standard output at ``LOG_LEVEL`` ``error`` (the default),
  ``verbose``/``debug`` or ``silent``;
* exits 0, removing the socket, when the interface is deleted (``wg-quick
  down`` runs ``ip link delete``) or on SIGTERM / SIGINT (the TUN device goes
  with the process).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import sys

__all__ = ["main", "MTU", "LOG_LEVELS"]

MTU = 1420                      # wireguard-go's default (device.DefaultMTU)
READY_TIMEOUT = 60.0            # seconds the parent waits for the child to serve the socket
LINK_CHECK_INTERVAL = 0.5       # seconds between checks that the interface still exists
LOG_LEVELS = {"verbose": logging.DEBUG, "debug": logging.DEBUG, "error": logging.ERROR, "silent": None}
USAGE = "usage: tunkit-wireguard [-f/--foreground] INTERFACE-NAME\n"

log = logging.getLogger("tunkit")


class _UsageError(ValueError):
    pass


def _parse(argv: list[str]) -> tuple[str, bool]:
    foreground = os.environ.get("WG_PROCESS_FOREGROUND") == "1"
    names = []
    for a in argv:
        if a in ("-f", "--foreground"):
            foreground = True
        elif a.startswith("-") and a != "-":
            raise _UsageError(f"unknown option {a!r}")
        else:
            names.append(a)
    if len(names) != 1:
        raise _UsageError("exactly one interface name is required")
    from tunkit.ifname import validate_name

    try:
        validate_name(names[0], template=False)
    except ValueError as e:
        raise _UsageError(f"interface name {names[0]!r}: {e}") from None
    return names[0], foreground


def _setup_logging(name: str) -> None:
    level_name = os.environ.get("LOG_LEVEL", "error")
    level = LOG_LEVELS.get(level_name, logging.ERROR)  # as wireguard-go: anything else means error
    root = logging.getLogger("tunkit")
    for h in list(root.handlers):
        root.removeHandler(h)
    root.propagate = False
    if level is None:
        root.addHandler(logging.NullHandler())
        root.setLevel(logging.CRITICAL + 1)
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter(f"%(levelname)s: ({name}) %(asctime)s %(message)s", "%Y/%m/%d %H:%M:%S"))
    root.addHandler(handler)
    root.setLevel(level)


class _Runner:
    """The interface in this process and what ends it (link gone, signal)."""

    def __init__(self, name: str) -> None:
        from tunkit.overlay.uapi_server import SOCKET_DIR
        from tunkit.overlay.wg import WgInterface
        from tunkit.wireguard.settings import InterfaceConfig

        self.name = name
        self.reason = ""
        self.iface = WgInterface(name, InterfaceConfig(), mtu=MTU, uapi_dir=SOCKET_DIR)
        self.ifindex = socket.if_nametoindex(name)
        self.iface.loop.call_every(LINK_CHECK_INTERVAL, self._check_link)

    def _check_link(self) -> None:
        try:
            index = socket.if_nametoindex(self.name)
        except OSError:
            index = 0
        if index != self.ifindex:
            self.stop("the interface was deleted")

    def stop(self, reason: str) -> None:
        if not self.reason:
            self.reason = reason
        self.iface.stop()

    def run(self) -> None:
        while not self.reason:
            try:
                self.iface.run()
            except OSError as e:
                if e.errno not in (errno.EBADFD, errno.ENODEV, errno.EIO):
                    raise
                self.stop("the interface was deleted")  # the TUN device went away under a read
            else:
                if not self.reason:
                    self.reason = "stopped"

    def close(self) -> None:
        self.iface.close()


def _serve(name: str, ready) -> int:
    """Build the interface, call ``ready(None)`` (or ``ready(error, code)``), run until it ends."""
    try:
        runner = _Runner(name)
    except (OSError, ValueError) as e:
        code = 2 if isinstance(e, OSError) else 1
        ready(f"{name}: {e}", code)
        return code
    try:
        def on_signal(signum, _frame):
            runner.stop(f"received {signal.Signals(signum).name}")

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)
        log.info("UAPI listener started on %s", runner.iface.uapi.path)
        ready(None, 0)
        runner.run()
        log.info("shutting down: %s", runner.reason)
        return 0
    except Exception as e:  # logged where LOG_LEVEL says, then a non-zero exit
        log.error("%s", e)
        return 2
    finally:
        runner.close()


def _detach(name: str) -> int:
    """Fork; the child serves, the parent reports whether it got as far as serving the socket."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)  # the child's one report
    pid = os.fork()
    if pid == 0:  # child
        parent.close()
        try:
            os.setsid()
            os.chdir("/")  # hold no directory (a mount) busy
            null = os.open(os.devnull, os.O_RDWR)
            os.dup2(null, 0)
            if os.environ.get("LOG_LEVEL") == "silent":
                os.dup2(null, 1)
                os.dup2(null, 2)
            os.close(null)

            def ready(error, code):
                child.sendall(bytes([code]) + (error or "").encode(errors="replace")[:4000])
                child.close()

            code = _serve(name, ready)
        except BaseException:
            code = 2
        os._exit(code)
    child.close()
    chunks = []
    parent.settimeout(READY_TIMEOUT)
    with parent:
        try:
            while b := parent.recv(4096):
                chunks.append(b)
        except TimeoutError:
            os.kill(pid, signal.SIGKILL)  # our own child, by its pid
            os.waitpid(pid, 0)
            print(f"tunkit-wireguard: {name}: the background process did not serve the socket within "
                  f"{READY_TIMEOUT:.0f} s; killed", file=sys.stderr)
            return 2
    msg = b"".join(chunks)
    if not msg:  # the child died before reporting
        _, status = os.waitpid(pid, 0)
        print(f"tunkit-wireguard: {name}: the background process exited (status {status}) before serving",
              file=sys.stderr)
        return 2
    if msg[0] != 0:
        os.waitpid(pid, 0)
        print(f"tunkit-wireguard: {msg[1:].decode(errors='replace')}", file=sys.stderr)
        return msg[0]
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE + "\nCreates the TUN device, serves /var/run/wireguard/INTERFACE-NAME.sock for `wg`,\n"
                         "and runs in the background unless -f or WG_PROCESS_FOREGROUND=1.\n"
                         "LOG_LEVEL: error (default), verbose, silent.  Ends when the interface is deleted.\n")
        return 0
    if argv and argv[0] in ("-v", "--version"):
        from tunkit import __version__

        print(f"tunkit-wireguard {__version__} (userspace WireGuard, tunkit)")
        return 0
    try:
        name, foreground = _parse(argv)
    except _UsageError as e:
        sys.stderr.write(f"tunkit-wireguard: {e}\n{USAGE}")
        return 1
    _setup_logging(name)
    if not foreground:
        return _detach(name)

    def ready(error, code):
        if error:
            print(f"tunkit-wireguard: {error}", file=sys.stderr)

    try:
        return _serve(name, ready)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
