"""The layering rule, enforced: pure modules import no I/O modules."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "tunkit"

# Layer 0: pure codecs.  A module listed here that does not exist yet is skipped
# by the import test but still named in the docstring test once it exists.
PURE_MODULES = [
    "tunkit._uapi",
    "tunkit._lazy",
    "tunkit.ifname",
    "tunkit.errors",
    "tunkit.netlink.message",
    "tunkit.netlink.attr",
    "tunkit.netlink.rtnl",
    "tunkit.netlink.events",
    "tunkit.packet",
    "tunkit.offload",
    "tunkit.trie",
    "tunkit.ecmp",
    "tunkit.overlay",
    "tunkit.wireguard.__init__",
    "tunkit.wireguard.constants",
    "tunkit.wireguard.primitives",
    "tunkit.wireguard.keys",
    "tunkit.wireguard.messages",
    "tunkit.wireguard.noise",
    "tunkit.wireguard.cookie",
    "tunkit.wireguard.replay",
    "tunkit.wireguard.peer",
    "tunkit.wireguard.handshake",
    "tunkit.wireguard.engine",
    "tunkit.wireguard.settings",
    "tunkit.wireguard.uapi",
    "tunkit.wireguard.wgquick",
]
FORBIDDEN = {"socket", "fcntl", "os", "selectors", "ctypes", "subprocess", "threading", "signal", "select", "mmap"}


def _existing(mods):
    return [m for m in mods if (PKG.parent / (m.replace(".", "/") + ".py")).exists()]


@pytest.mark.parametrize("mod", _existing(PURE_MODULES))
def test_pure_module_imports_no_io_module(mod):
    path = PKG.parent / (mod.replace(".", "/") + ".py")
    tree = ast.parse(path.read_text(), str(path))
    bad = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bad += [a.name for a in node.names if a.name.split(".")[0] in FORBIDDEN]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.split(".")[0] in FORBIDDEN:
                bad.append(node.module)
    assert not bad, f"{mod} imports I/O modules {bad}"


def test_pure_modules_pull_in_no_io_module_transitively():
    mods = _existing(PURE_MODULES)
    code = (
        "import sys\n"
        f"for m in {mods!r}: __import__(m)\n"
        "print(' '.join(sorted(n for n in ('socket','fcntl','selectors','ctypes','subprocess','select') if n in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"pure modules pulled in: {out.stdout.strip()}"


def test_every_module_docstring_says_what_it_is_for_and_whether_it_does_io():
    missing = []
    for path in sorted(PKG.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        first = (doc or "").splitlines()[0] if doc else ""
        if not first or not any(w in first.lower() for w in ("i/o", "pure", "no i/o")):
            missing.append(f"{path.relative_to(ROOT)}: {first!r}")
    assert not missing, "first docstring line must say whether the module does I/O:\n" + "\n".join(missing)


def test_no_third_party_imports():
    stdlib = set(sys.stdlib_module_names) | {"tunkit"}
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            bad += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] not in stdlib]
    assert not bad, bad


def test_no_bare_except():
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and node.type is None:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not bad, bad


def test_cli_parser_does_not_load_the_io_layers():
    """Building the whole CLI (what --help and every command do first) stays cheap."""
    code = (
        "import sys\n"
        "from tunkit.cli import build_parser\n"
        "build_parser()\n"
        "heavy = ('tunkit.device', 'tunkit.netlink.client', 'tunkit.netlink.socket', 'tunkit.tunnel', 'tunkit.node',\n"
        "         'tunkit.config', 'tunkit.offload', 'tunkit.trie', 'ctypes', 'socket', 'selectors')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"building the parser imported: {out.stdout.strip()}"
