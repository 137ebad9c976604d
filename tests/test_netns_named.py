"""Named network namespaces (tunkit.netns.add/delete/names/run, tunkit netns ...) against iproute2,
and Rtnl(netns=...) used from a thread that never entered the namespace."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import threading

import pytest

from support import thread_netns_inode

pytestmark = pytest.mark.privileged

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_counter = itertools.count()


def _tunkit(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=ROOT)
    proc = subprocess.run([sys.executable, "-m", "tunkit", *args], capture_output=True, text=True, env=env, timeout=60)
    if check:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def _ip_netns_names() -> list[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return [e["name"] for e in json.loads(out or "[]")]


@pytest.fixture
def ns_name():
    """A name unique to this process and test; whatever happens, its /run/netns file is removed."""
    name = f"tktest-{os.getpid()}-{next(_counter)}"
    yield name
    path = f"/run/netns/{name}"
    if os.path.exists(path):
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    assert not os.path.exists(path)


def test_add_is_seen_by_ip_and_del_removes_it(ns_name):
    from tunkit import netns

    start = thread_netns_inode()
    path = netns.add(ns_name)
    assert path == f"/run/netns/{ns_name}"
    assert thread_netns_inode() == start  # made in a helper thread
    assert ns_name in _ip_netns_names() and ns_name in netns.names()
    assert os.stat(path).st_ino != start  # a namespace of its own, mounted on the file
    links = json.loads(subprocess.run(["ip", "-n", ns_name, "-j", "link"], capture_output=True, text=True,
                                      check=True).stdout)
    assert [(l["ifname"], l["operstate"]) for l in links] == [("lo", "DOWN")]  # as ip netns add leaves it
    with pytest.raises(FileExistsError, match=ns_name):
        netns.add(ns_name)
    netns.delete(ns_name)
    assert ns_name not in _ip_netns_names() and not os.path.exists(path)
    with pytest.raises(FileNotFoundError, match=ns_name):
        netns.delete(ns_name)


def test_namespace_made_by_ip_is_listed_and_deleted_by_tunkit(ns_name):
    subprocess.run(["ip", "netns", "add", ns_name], check=True)
    assert {"name": ns_name} in json.loads(_tunkit("netns", "list", "-j").stdout)
    assert ns_name in _tunkit("netns", "list").stdout.split()
    _tunkit("netns", "del", ns_name)
    assert ns_name not in _ip_netns_names()


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "x" * 256])
def test_bad_names_are_refused_naming_the_value(bad):
    from tunkit import netns

    with pytest.raises(ValueError, match="netns name"):
        netns.netns_path(bad)
    proc = _tunkit("netns", "add", bad, check=False)
    assert proc.returncode == 1 and "netns name" in proc.stderr, proc.stderr


def test_cli_add_exec_del(ns_name):
    _tunkit("netns", "add", ns_name)
    assert ns_name in _ip_netns_names()
    proc = _tunkit("netns", "exec", ns_name, "ip", "-j", "link")
    assert [l["ifname"] for l in json.loads(proc.stdout)] == ["lo"]
    # /sys is remounted for the namespace, as ip netns exec does
    assert _tunkit("netns", "exec", ns_name, "ls", "/sys/class/net").stdout.split() == ["lo"]
    proc = _tunkit("netns", "exec", ns_name, "sh", "-c", "exit 7", check=False)
    assert proc.returncode == 7  # the command's own status (exec replaces tunkit)
    proc = _tunkit("netns", "exec", ns_name, "tk-no-such-command", check=False)
    assert proc.returncode == 2 and 'exec of "tk-no-such-command" failed' in proc.stderr
    proc = _tunkit("netns", "add", ns_name, check=False)
    assert proc.returncode == 2 and "already exists" in proc.stderr and ns_name in proc.stderr
    _tunkit("netns", "del", ns_name)
    proc = _tunkit("netns", "del", ns_name, check=False)
    assert proc.returncode == 2 and "no such namespace" in proc.stderr
    proc = _tunkit("netns", "exec", ns_name, "true", check=False)
    assert proc.returncode == 2 and "no such namespace" in proc.stderr


def test_rtnl_bound_by_name_from_a_thread_that_never_entered_it(ns_name):
    from tunkit import netns
    from tunkit.netlink.client import Rtnl

    netns.add(ns_name)
    host = thread_netns_inode()
    errors: list[BaseException] = []

    def worker() -> None:  # a thread that never calls setns: it stays in the test's (host) namespace
        try:
            inode = thread_netns_inode()
            with Rtnl(netns=ns_name) as rt:
                rt.set_link("lo", up=True)
                rt.add_veth("tkn0", "tkn1")
                rt.set_link("tkn0", up=True, mtu=1400)
                rt.add_address("tkn0", "192.0.2.1/24")
                rt.add_route("198.51.100.0/24", dev="tkn0", metric=7)
                assert {l.ifname for l in rt.links()} == {"lo", "tkn0", "tkn1"}
                with rt.monitor(("link",)) as mon:  # the monitor's socket follows the namespace
                    rt.set_link("tkn1", mtu=1300)
                    events = []
                    for _ in range(20):
                        events += mon.events(timeout=5.0)
                        if any(getattr(e, "link", None) is not None and e.link.ifname == "tkn1" for e in events):
                            break
                    assert any(getattr(e, "link", None) is not None and e.link.ifname == "tkn1" for e in events), events
            assert thread_netns_inode() == inode
        except BaseException as e:  # reported by the test thread
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join(60)
    assert not t.is_alive() and not errors, errors
    assert thread_netns_inode() == host
    ipj = lambda *a: json.loads(subprocess.run(["ip", "-n", ns_name, "-j", *a], capture_output=True, text=True,
                                               check=True).stdout)
    links = {l["ifname"]: l for l in ipj("link", "show")}
    assert set(links) == {"lo", "tkn0", "tkn1"} and links["tkn0"]["mtu"] == 1400 and links["tkn1"]["mtu"] == 1300
    addrs = [(a["local"], a["prefixlen"]) for l in ipj("addr", "show", "dev", "tkn0") for a in l["addr_info"]
             if a["family"] == "inet"]
    assert addrs == [("192.0.2.1", 24)]
    assert [(r["dst"], r.get("metric")) for r in ipj("route", "show", "198.51.100.0/24")] == [("198.51.100.0/24", 7)]
    # nothing of it in this thread's namespace
    assert subprocess.run(["ip", "link", "show", "tkn0"], capture_output=True).returncode != 0
    netns.delete(ns_name)


def test_rtnl_bound_by_path_fd_and_netns_object(netns_factory, ns_name):
    from tunkit import netns
    from tunkit.netlink.client import Rtnl

    path = netns.add(ns_name)
    with Rtnl(netns=path) as rt:
        rt.add_veth("tkp0", "tkp1")
    fd = os.open(path, os.O_RDONLY)
    try:
        with Rtnl(netns=fd) as rt:
            assert {l.ifname for l in rt.links()} >= {"tkp0", "tkp1"}
    finally:
        os.close(fd)
    ns = netns_factory("anon")
    with Rtnl(netns=ns) as rt:
        assert [l.ifname for l in rt.links()] == ["lo"]
    assert ns.run(["ip", "-j", "link"]).stdout.count('"ifname"') == 1
    out = netns.run(ns_name, ["ip", "-j", "link"]).stdout
    assert {l["ifname"] for l in json.loads(out)} == {"lo", "tkp0", "tkp1"}
    with pytest.raises(FileNotFoundError, match="no such namespace"):
        Rtnl(netns=f"{ns_name}-missing")
    netns.delete(ns_name)
