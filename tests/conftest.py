"""pytest glue: privilege gate, throwaway network namespaces, the CI no-skip rule.

* ``@pytest.mark.privileged`` tests need root and ``/dev/net/tun``.  Without
  them they skip with the reason, except under ``CI=true`` where they fail:
  CI must run them.
* The ``netns`` fixture runs the test body inside a fresh anonymous network
  namespace (see :mod:`tunkit.netns`) and always leaves it, even on failure;
  the namespace dies with its last reference.  ``netns_factory`` makes more
  (for multi-host tests).  Using either marks the test privileged.
* After each test the thread must be back in the namespace it started in;
  otherwise the session stops at once rather than run anything in the wrong
  namespace.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # so tests can `import support`

import support  # noqa: E402


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if {"netns", "netns_factory"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.privileged)


def pytest_runtest_setup(item):
    if item.get_closest_marker("privileged") is None:
        return
    reason = support.privilege_problem()
    if reason is None:
        return
    if _in_ci():
        pytest.fail(f"privileged test cannot run under CI=true: {reason}", pytrace=False)
    pytest.skip(f"needs privileges: {reason}")


_start_inode = None
_privileged_skips: list[str] = []


def pytest_sessionstart(session):
    global _start_inode
    _start_inode = support.thread_netns_inode()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield  # fixtures are finalised inside; check the namespace after them
    if support.thread_netns_inode() != _start_inode:
        pytest.exit(f"{item.nodeid} left the test thread in another network namespace", returncode=3)


def pytest_runtest_logreport(report):
    if report.skipped and "privileged" in report.keywords:
        _privileged_skips.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    if _in_ci() and _privileged_skips:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        msg = f"CI=true but {len(_privileged_skips)} privileged test(s) skipped: " + ", ".join(_privileged_skips[:10])
        if tr is not None:
            tr.write_line(msg, red=True)
        else:
            print(msg, file=sys.stderr)
        session.exitstatus = 1


@pytest.fixture
def netns_factory():
    """Make fresh namespaces: ``ns = netns_factory("hostA")``; all closed at teardown."""
    made = []

    def make(name: str = "netns"):
        from tunkit.netns import NetNS

        ns = NetNS(name)
        made.append(ns)
        return ns

    yield make
    for ns in made:
        ns.close()


@pytest.fixture
def netns(netns_factory):
    """Run the test body inside a fresh network namespace (loopback up); yields the NetNS."""
    from tunkit.netns import assert_not_root_netns

    ns = netns_factory("test")
    with ns.entered():
        assert_not_root_netns("running a privileged test")
        yield ns
