"""The namespace harness itself: fresh, isolated, always left, freed on close."""

from __future__ import annotations

import os
import socket

import pytest

import support
from tunkit.netns import NetNS, assert_not_root_netns, current_netns_inode, protected_netns_inodes


def test_fixture_runs_body_in_a_fresh_namespace(netns):
    assert current_netns_inode() == netns.inode
    assert netns.inode not in protected_netns_inodes()
    links = support.ip_json("link", "show")
    assert [link["ifname"] for link in links] == ["lo"]  # nothing but loopback: not the host's
    assert "UP" in links[0]["flags"]


def test_loopback_works_inside(netns):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:
        a.bind(("127.0.0.1", 0))
        b.sendto(b"x", a.getsockname())
        a.settimeout(2)
        assert a.recv(10) == b"x"


def test_two_namespaces_are_separate(netns_factory):
    a, b = netns_factory("a"), netns_factory("b")
    assert a.inode != b.inode
    a.run(["ip", "link", "add", "tkv0", "type", "veth", "peer", "name", "tkv1"])
    assert {x["ifname"] for x in support.ip_json("link", ns=a)} == {"lo", "tkv0", "tkv1"}
    assert {x["ifname"] for x in support.ip_json("link", ns=b)} == {"lo"}


def test_entered_returns_even_when_body_raises(netns_factory):
    ns = netns_factory("raises")
    before = current_netns_inode()
    with pytest.raises(ZeroDivisionError):
        with ns.entered():
            assert current_netns_inode() == ns.inode
            1 / 0
    assert current_netns_inode() == before


def test_close_releases_the_namespace_and_is_idempotent(netns_factory):
    ns = NetNS("short-lived")
    fd = ns.fd
    assert os.readlink(f"/proc/self/fd/{fd}").startswith("net:[")
    ns.close()
    ns.close()
    assert ns.closed
    with pytest.raises(ValueError, match="closed"):
        ns.run(["true"])
    with pytest.raises(OSError):
        os.fstat(fd)


def test_guard_refuses_the_host_namespace():
    with pytest.raises(RuntimeError, match="host's network namespace"):
        assert_not_root_netns("a test")


def test_namespace_problem_names_what_is_missing(monkeypatch):
    from tunkit import netns

    monkeypatch.setattr(netns.os, "geteuid", lambda: 1000)
    assert netns.namespace_problem() == "not running as root"
    monkeypatch.setattr(netns.os, "geteuid", lambda: 0)
    real = netns.os.path.exists
    monkeypatch.setattr(netns.os.path, "exists", lambda p: p != "/dev/net/tun" and real(p))
    assert "/dev/net/tun is missing" in netns.namespace_problem()
