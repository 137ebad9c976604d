"""The layering rule, enforced by package: pure code imports no I/O, and no layer imports a higher one.

Every module of ``tunkit`` has a layer, declared below per package (a package's entry covers
every module in it; a longer entry overrides it for one module or sub-package):

* ``pure``: codecs and decisions; imports no I/O standard module and only pure tunkit modules;
* ``io``: thin I/O (sockets, fds, ioctls, processes); imports no orchestration module;
* ``orchestration``: runs things (tunnel, node, config files, CLI); may import anything.

The table is written for the package layout (``tunkit/packet/``, ``tunkit/routing/``, ...).
Until the re-layout lands, ``OLD_LOCATION`` says where each module still sits; the re-layout tool
deletes that block.  (relayout: new-layout; the tool leaves the names in this file alone.)
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "tunkit"

PURE, IO, ORCH = "pure", "io", "orchestration"
RANK = {PURE: 0, IO: 1, ORCH: 2}

# package or module -> layer; the longest entry that covers a module decides.  Entries for modules
# that do not exist (yet) are allowed: the WireGuard engine and its libcrypto binding have their place.
LAYERS = {
    "tunkit": PURE,  # the package module only: lazy re-exports, loads nothing (never a prefix for others)
    "tunkit.__main__": ORCH,
    "tunkit._uapi": PURE,
    "tunkit._lazy": PURE,
    "tunkit.errors": PURE,
    "tunkit.ifname": PURE,
    "tunkit.packet": PURE,  # ip (header views, checksums), offload (virtio_net_hdr, split, coalesce)
    "tunkit.routing": PURE,  # trie (LPM), ecmp
    "tunkit.netlink": PURE,  # message, attr, fields, rtnl, rule, neigh, nexthop, linkkinds, defaults, events
    "tunkit.netlink.socket": IO,
    "tunkit.netlink.client": IO,
    "tunkit.netlink.objects": IO,  # Rtnl's rule/neigh/nexthop/link-kind calls (a mixin of the client)
    "tunkit.netlink.aio": IO,  # asyncio client (rtnlb branch)
    "tunkit.crypto": IO,  # the libcrypto binding (ctypes): the one native library besides libc
    "tunkit.wireguard": PURE,  # sans-IO protocol engine: bytes in, bytes and timers out
    "tunkit.tun": IO,  # ifreq (structs, ioctls), clone (/dev/net/tun), queue (raw packet I/O), device, batch (offload-aware path), aio
    "tunkit.netns": IO,
    "tunkit.overlay": IO,  # udp, loop, status
    "tunkit.overlay.wire": PURE,
    "tunkit.overlay.auth": PURE,  # HMAC-SHA256-128 and the RFC 6479 replay window
    "tunkit.overlay.options": ORCH,  # TunnelOptions, validated once and shared by a node's workers
    "tunkit.overlay.control": ORCH,  # typed node <-> worker messages
    "tunkit.overlay.uapi_server": IO,  # WireGuard's UAPI control socket (/var/run/wireguard/NAME.sock)
    "tunkit.overlay.spec": PURE,  # typed peer/route specs and their rules (tunkit/spec.py on the cfghard branch)
    "tunkit.overlay.tunnel": ORCH,
    "tunkit.overlay.node": ORCH,
    "tunkit.overlay.wg": ORCH,  # the WireGuard data path: engine + OffloadIO + UDP socket + timers + UAPI socket
    "tunkit.app": ORCH,  # config, up, demo
    "tunkit.app.plan": PURE,  # the kernel routes a configuration implies and the reload diff
    "tunkit.app.keyfile": IO,
    "tunkit.app.wgimpl": ORCH,  # tunkit-wireguard IFNAME: wg-quick's userspace implementation (TUN + UAPI socket, detaches)  # reads key files, checking their owner and mode
    "tunkit.cli": ORCH,
}

# standard modules that mean I/O (or threads, signals, processes); a pure module imports none
FORBIDDEN = {"socket", "fcntl", "os", "selectors", "ctypes", "subprocess", "threading", "signal", "select", "mmap",
             "asyncio", "io", "pathlib", "shutil", "tempfile", "time", "multiprocessing", "logging"}
# the exceptions, each with its reason
ALLOWED = {
    # the libcrypto binding: ctypes to call the library hashlib loaded; os for os.urandom (keys) and
    # register_at_fork (a child drops the parent's cipher contexts); threading for the lock that lets
    # threads share a context.  It computes; it opens no socket or device.
    "tunkit.crypto": {"ctypes", "os", "threading"},
}
# what a pure module must not pull in at run time, even through another module
RUNTIME_FORBIDDEN = ("socket", "fcntl", "selectors", "ctypes", "subprocess", "select", "threading", "asyncio")

# new name -> where the module sits before the re-layout
OLD_LOCATION: dict[str, str] = {}
NEW_NAME = {old: new for new, old in OLD_LOCATION.items()} if (PKG / "trie.py").exists() else {}


def canonical(mod: str) -> str:
    """The package-layout name of a module of this tree (itself once the re-layout is done)."""
    for old in sorted(NEW_NAME, key=len, reverse=True):
        if mod == old or mod.startswith(old + "."):
            return NEW_NAME[old] + mod[len(old):]
    return mod


def actual(new: str) -> str:
    """The importable name, in this tree, of a module given by its package-layout name."""
    for n in sorted(OLD_LOCATION, key=len, reverse=True):
        if NEW_NAME and (new == n or new.startswith(n + ".")):
            return OLD_LOCATION[n] + new[len(n):]
    return new


def layer_of(mod: str) -> str | None:
    """The declared layer of a module (package-layout name), or None if nothing declares it."""
    parts = mod.split(".")
    for i in range(len(parts), 0, -1):
        key = ".".join(parts[:i])
        if key == "tunkit" and mod != "tunkit":
            break
        if key in LAYERS:
            return LAYERS[key]
    return None


def modules() -> dict[str, pathlib.Path]:
    """Every module in the tree: package-layout name -> file."""
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = list(path.relative_to(PKG.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[canonical(".".join(parts))] = path
    return out


def _type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")
    )


def imports(path: pathlib.Path, mod: str) -> list[str]:
    """Absolute names of the modules a file imports at run time (``if TYPE_CHECKING:`` blocks excluded)."""
    tree = ast.parse(path.read_text(), str(path))
    skip = {id(n) for blk in ast.walk(tree) if _type_checking_block(blk) for stmt in blk.body for n in ast.walk(stmt)}
    out = []
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = actual(mod).split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            out.append(name)
            # ``from tunkit.x import y`` may import a module y
            out += [f"{name}.{a.name}" for a in node.names if (PKG.parent / (name + "." + a.name).replace(".", "/")).with_suffix(".py").exists()
                    or (PKG.parent / (name + "." + a.name).replace(".", "/") / "__init__.py").exists()]
    return out


MODULES = modules()


def test_every_module_has_a_declared_layer():
    missing = [m for m in MODULES if layer_of(m) is None]
    assert not missing, f"declare these modules' layer in LAYERS (tests/test_layering.py): {missing}"


def test_the_old_layout_block_is_a_one_to_one_map():
    """Each flat module has one place in the package layout, and no two share it."""
    assert len(set(OLD_LOCATION.values())) == len(OLD_LOCATION)
    assert all(layer_of(new) is not None for new in OLD_LOCATION), "every new place has a declared layer"


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_no_module_imports_a_higher_layer(mod):
    layer = layer_of(mod)
    if layer is None:
        pytest.skip("undeclared (see test_every_module_has_a_declared_layer)")
    bad = []
    for name in imports(MODULES[mod], mod):
        top = name.split(".")[0]
        if top == "tunkit":
            target = canonical(name)
            tl = layer_of(target)
            if tl is not None and RANK[tl] > RANK[layer]:
                bad.append(f"{target} ({tl})")
        elif layer == PURE and top in FORBIDDEN - ALLOWED.get(mod, set()):
            bad.append(f"{name} (I/O standard module)")
    assert not bad, f"{mod} ({layer}) imports {bad}"


def allowed_closure(mod: str, seen: frozenset[str] = frozenset()) -> set[str]:
    """The I/O standard modules ``mod`` may pull in: its own allowance and those of what it imports."""
    out = set(ALLOWED.get(mod, ()))
    for name in imports(MODULES[mod], mod):
        target = canonical(name)
        if target in MODULES and target != mod and target not in seen and layer_of(target) == PURE:
            out |= allowed_closure(target, seen | {mod})
    return out


def test_pure_modules_pull_in_no_io_module_transitively():
    groups: dict[frozenset[str], list[str]] = {}
    for m in MODULES:
        if layer_of(m) == PURE:
            groups.setdefault(frozenset(allowed_closure(m)), []).append(actual(m))
    assert groups
    for allowed, mods in groups.items():
        forbidden = [n for n in RUNTIME_FORBIDDEN if n not in allowed]
        code = (  # against what the bare interpreter already loaded (site may import threading)
            "import sys\n"
            "before = set(sys.modules)\n"
            f"for m in {sorted(mods)!r}: __import__(m)\n"
            f"print(' '.join(sorted(n for n in {forbidden!r} if n in sys.modules and n not in before)))\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
        assert out.stdout.strip() == "", f"pure modules {sorted(mods)} pulled in: {out.stdout.strip()}"


def test_the_layer_checker_catches_a_violation(tmp_path):
    """The checker is not vacuous: a pure module importing socket, or an I/O one importing the tunnel, fails."""
    pure = tmp_path / "p.py"
    pure.write_text("import socket\nfrom tunkit.errors import DecodeError\n")
    io_mod = tmp_path / "i.py"
    io_mod.write_text(f"from {actual('tunkit.overlay.tunnel')} import Tunnel\nif TYPE_CHECKING:\n    import {actual('tunkit.app.config')}\n")
    assert "socket" in imports(pure, "tunkit.packet.fake")
    got = [canonical(n) for n in imports(io_mod, "tunkit.tun.fake")]
    assert "tunkit.overlay.tunnel" in got and not any(n.startswith("tunkit.app") for n in got)
    assert layer_of("tunkit.tun.fake") == IO and layer_of("tunkit.overlay.tunnel") == ORCH
    assert layer_of("tunkit.packet.fake") == PURE and layer_of("tunkit.crypto2") is None
    assert layer_of("tunkit.overlay.wire") == PURE and layer_of("tunkit.overlay.udp") == IO


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


def _module_of(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    return canonical(".".join(p for p in rel.parts if p != "__init__"))


def test_only_the_tun_io_module_reads_or_writes_a_tun_descriptor_or_packs_a_virtio_header():
    """Issue 11: one TUN packet path.  Only tunkit.tun.batch (the TUN I/O module) and the queue's
    raw byte I/O (tunkit.tun.queue: Queue.read/write, which interpret nothing) call os.read/readv/write/writev on a
    descriptor (the key-file module reads and writes files); only tunkit.tun.batch and the codec
    tunkit.packet.offload touch the virtio_net_hdr layout."""
    allowed_io = {"tunkit.tun.batch", "tunkit.tun.queue", "tunkit.app.keyfile"}
    allowed_vnet = {"tunkit.tun.batch", "tunkit.packet.offload"}
    bad = []
    for path in sorted(PKG.rglob("*.py")):
        mod = _module_of(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr in ("read", "readv", "write", "writev")
                    and isinstance(node.value, ast.Name) and node.value.id == "os" and mod not in allowed_io):
                bad.append(f"{mod}:{node.lineno}: os.{node.attr}")
            name = getattr(node, "id", None) or getattr(node, "name", None) if isinstance(node, (ast.Name, ast.alias)) else None
            if name in ("VIRTIO_NET_HDR", "_VNET", "_VNET_UNPACK") and mod not in allowed_vnet:
                bad.append(f"{mod}:{getattr(node, 'lineno', '?')}: virtio_net_hdr layout")
    assert not bad, bad


def test_cli_parser_does_not_load_the_io_layers():
    """Building the whole CLI (what --help and every command do first) stays cheap."""
    heavy = [actual(m) for m in ("tunkit.tun.device", "tunkit.tun.queue", "tunkit.tun.ifreq", "tunkit.netlink.client", "tunkit.netlink.socket", "tunkit.overlay.tunnel",
                                 "tunkit.overlay.node", "tunkit.app.config", "tunkit.packet.offload", "tunkit.routing.trie")]
    heavy += ["ctypes", "socket", "selectors"]
    code = (
        "import sys\n"
        "from tunkit.cli import build_parser\n"
        "build_parser()\n"
        f"print(' '.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"building the parser imported: {out.stdout.strip()}"
