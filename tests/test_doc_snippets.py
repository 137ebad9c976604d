"""Every Python snippet in README.md and docs/*.md runs, as written, and prints what the text says.

Each fenced ``python`` block is run in a fresh interpreter.  A snippet that needs root (it makes a
device, a namespace or a netlink socket) runs from a test thread inside a fresh network namespace,
and must itself make the namespace it configures (``NetNS``): no snippet may configure whatever
namespace it is run in, as a reader's copy would then change the reader's own network.  What each
prints is checked against the comments beside it (:data:`EXPECT`).  A snippet that cannot run goes in
:data:`CANNOT_RUN` with the reason; there are none today.
"""

from __future__ import annotations

import pathlib
import re

import pytest

import support_device as sd

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PRIVILEGED_NAMES = ("NetNS", "open_tun", "Rtnl", "TunnelNode", "subprocess", "socket.socket")

SNIPPETS = [
    (f"{doc.relative_to(ROOT)}#{i}", code)
    for doc in DOCS
    for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", doc.read_text(), re.S | re.M))
]

# snippet id -> regular expressions its stdout lines must match, in order (fullmatch)
EXPECT = {
    "README.md#0": [r"tk0 (CSUM|TSO4|TSO6|TSO_ECN|USO4|USO6)(\|(CSUM|TSO4|TSO6|TSO_ECN|USO4|USO6))*"],
    "README.md#1": [re.escape("198.51.101.0/24 [('192.0.2.3', 3), ('192.0.2.4', 1)]")],
    "README.md#2": [r"198\.18\.0\.[23]"],
    "docs/device.md#0": [r"tk0 tun \S+ 10", re.escape("33 b'hello'"), "DeviceClosedError"],
    "docs/netlink.md#0": [re.escape("route add 198.51.100.0/24 via 192.0.2.2 metric 10: File exists"),
                          r"tk0 1400 500 veth \d+"],
    "docs/offload.md#0": ["TCPV4 1000 40 5", "True True"],
    "docs/offload.md#1": [re.escape("[1028, 1028, 1028, 528]"), "(True 1|False 0)"],
    "docs/trie.md#0": [re.escape("['0.0.0.0/0', '192.0.2.0/24', '198.51.100.0/24', '2001:db8::/32']")],
    "docs/tunnel.md#0": ["45" + "0" * 38, r"replay: sender 0 counter \d+ already seen or too old"],
    "docs/tunnel.md#1": ["32 tunkit0"],
    "docs/asyncio.md#0": [re.escape("['lo', 'tk0', 'tk1'] 100"),
                          re.escape("route add 198.18.7.0/24 dev tk0 metric 10: File exists")],
    "docs/asyncio.md#1": ["changed tk1 1300", "monitor closed"],
    "docs/asyncio.md#2": [re.escape("33 b'hello'"), "33"],
    "docs/netns.md#0": ["True", re.escape("['192.0.2.1']"), "1500", "False"],
    "docs/uapi.md#0": ["0o140700", "errno=0", "", "errno=-22", "", "listen_port=51820", "public_key=PEER",
                       "preshared_key=0{64}", "protocol_version=1", re.escape("endpoint=[2001:db8::2]:51820"),
                       "last_handshake_time_sec=0", "last_handshake_time_nsec=0", "tx_bytes=0", "rx_bytes=0",
                       "persistent_keepalive_interval=0", re.escape("allowed_ip=198.18.0.0/24"), "errno=0", "",
                       "False"],
    "docs/uapi.md#1": [re.escape("['10.0.0.2/24', 'fd00::2/64'] 1380"),
                       re.escape("['10.0.0.0/24', '2001:db8::1/128'] Endpoint(host='2001:db8::53', port=51820, "
                                 "is_name=False)"),
                       re.escape("['[Interface]', 'PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=', '']"),
                       re.escape('["wg0.conf: DNS ignored: tunkit does not change the system\'s resolver; configure '
                                 'DNS yourself"]'),
                       re.escape("wg0.conf:5:[Interface] MTU: 'big' is not a number")],
    "docs/wireguard.md#0": ["44", "None", "True True True", re.escape("64 ('192.0.2.1', 51820)"),
                            re.escape("b'world'"), "None 1", re.escape("['handshake_complete']")],
    "docs/wireguard.md#1": ["wireguard", "None 25", re.escape("['192.0.2.0/24']"),
                            re.escape("a.toml:peers[0].persistent_keepalive: 70000 is out of range 0..65535")],
}

CANNOT_RUN: dict[str, str] = {}  # snippet id -> why it cannot run as a test


def test_snippets_are_found_and_each_is_checked():
    ids = [i for i, _ in SNIPPETS]
    assert len(ids) >= 10 and "README.md#0" in ids
    assert set(EXPECT) | set(CANNOT_RUN) == set(ids), "a snippet without an expectation, or one that went away"


def _privileged(code: str) -> bool:
    return any(name in code for name in PRIVILEGED_NAMES)


_PURE = [s for s in SNIPPETS if not _privileged(s[1])]
_PRIV = [s for s in SNIPPETS if _privileged(s[1])]


@pytest.mark.parametrize("sid,code", _PURE, ids=[s[0] for s in _PURE])
def test_pure_snippet_runs_anywhere(sid, code):
    _run_and_check(sid, code)


def _own_namespace(code: str) -> bool:
    """The snippet configures only a namespace it makes: an anonymous NetNS it enters or hands to a
    client (``netns=ns``), or a named one it adds, uses by name and deletes."""
    anonymous = "NetNS(" in code and ("ns.entered()" in code or "netns=ns" in code)
    named = "netns.add(" in code and "netns.delete(" in code and "netns=name" in code
    return anonymous or named


@pytest.mark.parametrize("sid,code", _PRIV, ids=[s[0] for s in _PRIV])
def test_privileged_snippet_runs_in_a_namespace_of_its_own(sid, code, netns):
    assert _own_namespace(code), f"{sid} would configure the namespace it runs in"
    _run_and_check(sid, code)  # started from this thread: inside the test's namespace, and makes its own


def _run_and_check(sid: str, code: str) -> None:
    if sid in CANNOT_RUN:
        pytest.skip(CANNOT_RUN[sid])
    proc = sd.run_python(code, timeout=60)
    assert proc.returncode == 0, f"{sid}:\n{proc.stderr}"
    lines = proc.stdout.splitlines()
    want = EXPECT[sid]
    assert len(lines) == len(want), f"{sid} printed {lines}"
    for line, pattern in zip(lines, want):
        assert re.fullmatch(pattern, line), f"{sid}: {line!r} does not match {pattern!r}"
