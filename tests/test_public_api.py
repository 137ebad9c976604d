"""The public re-exports: lazy at run time, the same names visible to type checkers, and every one importable."""

from __future__ import annotations

import ast
import importlib
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ["tunkit", "tunkit.netlink"]


def _init(pkg: str) -> pathlib.Path:
    return ROOT / pkg.replace(".", "/") / "__init__.py"


def type_checking_imports(pkg: str) -> dict[str, str]:
    """name -> module of every ``from M import N as N`` in the package's ``if TYPE_CHECKING:`` block."""
    tree = ast.parse(_init(pkg).read_text())
    blocks = [n for n in tree.body if isinstance(n, ast.If) and isinstance(n.test, ast.Name) and n.test.id == "TYPE_CHECKING"]
    assert len(blocks) == 1, f"{pkg}: expected one module-level `if TYPE_CHECKING:` block"
    out = {}
    for stmt in blocks[0].body:
        assert isinstance(stmt, ast.ImportFrom) and stmt.level == 0, f"{pkg}: only absolute from-imports in the block"
        for a in stmt.names:
            # "X as X" marks an explicit re-export (mypy --strict has no implicit re-exports)
            assert a.asname == a.name, f"{pkg}: write `{a.name} as {a.name}`"
            out[a.name] = stmt.module
    return out


@pytest.mark.parametrize("pkg", PACKAGES)
def test_type_checking_names_equal_the_lazy_table(pkg):
    lazy = importlib.import_module(pkg)._LAZY
    assert type_checking_imports(pkg) == lazy


@pytest.mark.parametrize("pkg", PACKAGES)
def test_every_lazy_name_resolves_to_its_module_object(pkg):
    mod = importlib.import_module(pkg)
    for name, where in mod._LAZY.items():
        value = getattr(mod, name)
        assert value is getattr(importlib.import_module(where), name), f"{pkg}.{name}"
        assert name in mod.__all__ and name in dir(mod)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mod.nope  # noqa: B018 (the attribute access is the test)


def test_importing_the_packages_loads_no_submodule_and_no_io_module():
    code = (
        "import sys\n"
        "before = set(sys.modules)\n"
        "import tunkit, tunkit.netlink\n"
        "new = sorted(set(sys.modules) - before)\n"
        "print(' '.join(m for m in new if m not in ('tunkit', 'tunkit._lazy', 'tunkit.netlink', '__future__')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"import tunkit loaded: {out.stdout.strip()}"


def test_the_package_is_marked_typed():
    assert (ROOT / "tunkit" / "py.typed").is_file()


def test_the_typed_user_script_runs_its_pure_part():
    """tests/typing/user_script.py (mypy --strict in scripts/check.sh) is a real program, not just types."""
    sys.path.insert(0, str(ROOT / "tests" / "typing"))
    try:
        import user_script
    finally:
        sys.path.pop(0)
    out = user_script.routing_demo()
    assert out[:2] == ["overlay", "lab"]
    assert out[2] in ("198.51.100.1", "198.51.100.2")
    assert out[3:] == ["198.18.0.0/15 -> overlay", "2"]
