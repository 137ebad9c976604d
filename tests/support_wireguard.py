"""Helpers for the tests that run wireguard-go next to tunkit: tools check, veth underlay, wireguard-go start/stop; test-only I/O."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from tunkit.overlay.uapi_server import SOCKET_DIR
from tunkit.wireguard import format_key


def require_wireguard_tools() -> None:
    """Fail (never skip) when wireguard-go or wg is missing: scripts/test.sh installs both."""
    for tool in ("wireguard-go", "wg"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/test.sh installs wireguard-go and wireguard-tools")


def veth_between(a, b, a_name: str, b_name: str, a_addrs, b_addrs) -> None:
    """A veth pair ``a_name`` in namespace ``a`` to ``b_name`` in ``b``, each end up with its /24 addresses."""
    holder = b.popen(["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        a.run(["ip", "link", "add", a_name, "type", "veth", "peer", "name", b_name, "netns", str(holder.pid)])
    finally:
        holder.kill()
        holder.wait()
    for ns, name, addrs in ((a, a_name, a_addrs), (b, b_name, b_addrs)):
        for addr in addrs:
            ns.run(["ip", "addr", "add", f"{addr}/24", "dev", name])
        ns.run(["ip", "link", "set", name, "up"])


def write_key(path, key: bytes) -> str:
    """``key`` in wg's base64 form at ``path`` (mode 0600), as ``wg set ... private-key`` reads it."""
    path.write_text(format_key(key) + "\n")
    path.chmod(0o600)
    return str(path)


def socket_path(ifname: str) -> str:
    return f"{SOCKET_DIR}/{ifname}.sock"


def start_wireguard_go(ns, ifname: str, timeout: float = 10) -> subprocess.Popen:
    """wireguard-go in the foreground in ``ns``; returns once its UAPI socket exists (fails the test otherwise)."""
    proc = ns.popen(["wireguard-go", "-f", ifname], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                    env={**os.environ, "LOG_LEVEL": "error"})
    path = socket_path(ifname)
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if proc.poll() is not None:
            pytest.fail(f"wireguard-go exited: {proc.stderr.read().decode(errors='replace')}")
        if time.monotonic() > deadline:
            proc.terminate()
            proc.wait()
            proc.stderr.close()
            pytest.fail(f"wireguard-go did not create {path} within {timeout:g} s")
        time.sleep(0.02)
    return proc


def stop_wireguard_go(proc: subprocess.Popen | None, *ifnames: str | None) -> None:
    """Terminate ``proc`` (killed after 5 s) and remove the UAPI sockets of ``ifnames``; any may be None."""
    if proc is not None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        proc.stderr.close()
    for name in filter(None, ifnames):
        try:
            os.unlink(socket_path(name))
        except FileNotFoundError:
            pass


def address_wg_interface(ns, ifname: str, addr4: str, addr6: str, mtu: int = 1420) -> None:
    """``addr4``/24 and ``addr6``/64 (no DAD) on ``ifname``, then MTU and up."""
    ns.run(["ip", "addr", "add", f"{addr4}/24", "dev", ifname])
    ns.run(["ip", "addr", "add", f"{addr6}/64", "dev", ifname, "nodad"])
    ns.run(["ip", "link", "set", ifname, "mtu", str(mtu), "up"])


class HostThread:
    """``tunkit up`` minus the signal handling: a :class:`tunkit.app.up.WgQuickHost` serving in a
    thread inside ``ns``.  An error while starting is raised in the test thread; :meth:`reload` runs
    what SIGHUP runs, in the loop thread."""

    def __init__(self, ns, host) -> None:
        import threading

        self.ns, self.host = ns, host
        self.error: BaseException | None = None
        ready = threading.Event()

        def main():
            try:
                with ns.entered():
                    self.host.start()
                    ready.set()
                    self.host.run()
            except BaseException as e:  # reported to the test thread
                self.error = e
                ready.set()
            finally:
                self.host.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert ready.wait(30), "host did not start"
        if self.error is not None:
            raise self.error

    def reload(self) -> bool:
        import threading

        got, done = [], threading.Event()
        self.host.iface.loop.call_later(0, lambda: (got.append(self.host.reload()), done.set()))
        assert done.wait(10), "reload did not run"
        return got[0]

    def stop(self) -> None:
        self.host.stop()
        self.thread.join(15)
        assert not self.thread.is_alive()
