"""Lazy re-exports for package ``__init__`` modules (PEP 562); pure, no I/O.

A package lists ``public name -> defining module`` and gets a module-level
``__getattr__``/``__dir__`` pair that imports the defining module on first
use and caches the value, so importing the package itself stays cheap.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def lazy_exports(package: str, table: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return ``(__getattr__, __dir__)`` for ``package`` serving the names in ``table``."""

    def __getattr__(name: str):
        mod = table.get(name)
        if mod is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        __import__(mod)  # not importlib.import_module: the importlib package costs start-up time
        value = getattr(sys.modules[mod], name)
        setattr(sys.modules[package], name, value)  # later lookups skip __getattr__
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(table))

    return __getattr__, __dir__
