"""Frozen record classes for the netlink messages, made without the dataclasses module; pure, no I/O.

``@record`` on a class with annotated fields gives what ``@dataclass(frozen=True)`` gives
these messages: ``__init__`` (keyword or positional, class-level defaults, ``__post_init__``),
``__repr__``, ``__eq__`` (same class, fields compared as a tuple), ``__hash__``,
``__match_args__``, and assignment refused with :class:`FrozenInstanceError`.  The methods
are compiled on first use, all four at once, one ``exec`` per class.  Instances keep
a ``__dict__``, so :func:`tunkit.netlink.fields.construct` fills them the same way.

Why not dataclasses: importing it costs ``inspect`` (about 9 ms on the benchmark VM) and each
``@dataclass`` compiles six small functions (about 1 ms a class); ``tunkit link show -j``
paid 20+ ms for that before it read one link (``bench/bench_startup.py --profile``).  A
record compiles nothing until its methods are first called; decoding (``construct``) calls none.

The records still work with the dataclasses functions (``dataclasses.fields``, ``replace``,
``asdict``, ``is_dataclass``): ``__dataclass_fields__`` is built on first access (importing
dataclasses then).  Inside tunkit use :func:`replace` and :func:`fields` from here, which
need no import.  ``tests/test_netlink_record.py`` checks a record against the equivalent
dataclass: equality, hash, repr, frozenness, defaults, ``__post_init__`` and the
dataclasses functions.
"""

from __future__ import annotations

from typing import dataclass_transform  # typing is loaded anyway (NamedTuple in attr/fields/message)

__all__ = ["FrozenInstanceError", "fields", "make_record", "record", "replace"]

_MISSING = object()


class FrozenInstanceError(AttributeError):
    """Assigning to or deleting a field of a record (as dataclasses' error of that name)."""


class _DataclassFields:
    """``__dataclass_fields__`` on demand: real ``dataclasses.Field`` objects, made on first access."""

    def __get__(self, obj, owner):
        import dataclasses  # only code that asks dataclasses about a record pays for the import

        result = {}
        for name in owner.__record_fields__:
            default = owner.__record_defaults__.get(name, _MISSING)
            f = dataclasses.field() if default is _MISSING else dataclasses.field(default=default)
            f.name, f.type, f._field_type = name, owner.__record_types__.get(name, "Any"), dataclasses._FIELD
            result[name] = f
        type.__setattr__(owner, "__dataclass_fields__", result)  # cached: later lookups skip this
        return result


def _own_fields(cls) -> tuple[list[str], dict, dict]:
    names: list[str] = []
    defaults: dict = {}
    types: dict = {}
    for base in reversed(cls.__mro__[1:]):  # fields of record bases first, as dataclasses orders them
        if "__record_fields__" in base.__dict__:
            for n in base.__record_fields__:
                if n not in names:
                    names.append(n)
            defaults.update(base.__record_defaults__)
            types.update(base.__record_types__)
    for name, ann in cls.__dict__.get("__annotations__", {}).items():  # noqa: RUF063 (inspect is what this avoids)
        text = (ann if isinstance(ann, str) else repr(ann)).strip("'\" ")
        if text.startswith(("ClassVar", "typing.ClassVar")):  # a class attribute, not a field
            continue
        if name not in names:
            names.append(name)
        types[name] = ann
        if name in cls.__dict__:
            defaults[name] = cls.__dict__[name]
        else:
            defaults.pop(name, None)
    seen_default = False
    for n in names:
        if n in defaults:
            seen_default = True
        elif seen_default:
            raise TypeError(f"non-default argument {n!r} follows default argument")
    return names, defaults, types


def _frozen_setattr(self, name, value):
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenInstanceError(f"cannot delete field {name!r}")


_GENERATED = ("__init__", "__repr__", "__eq__", "__hash__")


@dataclass_transform(frozen_default=True)  # type checkers see the generated __init__ and frozenness (PEP 681)
def record(cls):
    """Make ``cls`` a frozen record (see the module docstring); returns ``cls``.

    The generated methods are compiled on the first call of any of them (:func:`_materialize`):
    a class only decoded (``construct`` fills instances without ``__init__``) and never compared
    or printed costs no compile at all, which is most of them in one command.
    """
    names, defaults, types = _own_fields(cls)
    for n in names:
        if n in defaults and defaults[n].__class__ in (list, dict, set):
            raise ValueError(f"mutable default {defaults[n].__class__} for field {n} is not allowed")
    cls.__match_args__ = tuple(names)  # type: ignore[misc]  # set on a class being made, as dataclasses does
    cls.__record_fields__ = tuple(names)
    cls.__record_defaults__ = defaults
    cls.__record_types__ = types
    cls.__dataclass_fields__ = _DataclassFields()
    cls.__setattr__ = _frozen_setattr
    cls.__delattr__ = _frozen_delattr
    for meth in _GENERATED:
        setattr(cls, meth, _stub(cls, meth))
    return cls


def _stub(cls, meth: str):
    def stub(self, *args, **kw):
        if cls.__dict__[meth] is stub:
            _materialize(cls)
        return cls.__dict__[meth](self, *args, **kw)

    stub.__qualname__ = f"{cls.__qualname__}.{meth}"
    stub.__module__ = cls.__module__
    return stub


def _materialize(cls) -> None:
    """Compile ``cls``'s ``__init__``, ``__repr__``, ``__eq__`` and ``__hash__`` (one ``exec``)."""
    names, defaults = cls.__record_fields__, cls.__record_defaults__
    env = {"_d_" + n: defaults[n] for n in names if n in defaults}
    params = "".join(f", {n}=_d_{n}" if n in defaults else f", {n}" for n in names)
    sets = "".join(f"    d[{n!r}] = {n}\n" for n in names) or "    pass\n"
    post = "    self.__post_init__()\n" if hasattr(cls, "__post_init__") else ""
    tup = "".join(f"self.{n}, " for n in names)
    otup = "".join(f"other.{n}, " for n in names)
    shown = ", ".join(f"{n}={{self.{n}!r}}" for n in names)
    src = (
        f"def __init__(self{params}):\n"
        f"    d = self.__dict__\n{sets}{post}"
        f"def __repr__(self):\n"
        f"    return f'{{self.__class__.__qualname__}}({shown})'\n"
        f"def __eq__(self, other):\n"
        f"    if other.__class__ is self.__class__:\n"
        f"        return ({tup}) == ({otup})\n"
        f"    return NotImplemented\n"
        f"def __hash__(self):\n"
        f"    return hash(({tup}))\n"
    )
    exec(compile(src, f"<record {cls.__qualname__}>", "exec"), env)  # noqa: S102 (source built from field names)
    for meth in _GENERATED:
        fn = env[meth]
        fn.__qualname__ = f"{cls.__qualname__}.{meth}"
        fn.__module__ = cls.__module__
        type.__setattr__(cls, meth, fn)


def make_record(name: str, spec: list[tuple[str, str, object]], *, bases: tuple = (), namespace: dict | None = None,
                module: str | None = None):
    """``record`` of a class built from ``(name, type, default)`` triples (``make_dataclass``'s shape)."""
    ns = dict(namespace or {})
    ns["__annotations__"] = {n: t for n, t, _ in spec}
    ns.update({n: d for n, _, d in spec})
    if module is not None:
        ns["__module__"] = module
    return record(type(name, bases, ns))


def fields(obj_or_cls) -> tuple[str, ...]:
    """The field names of a record (class or instance), in order."""
    return obj_or_cls.__record_fields__


def replace(obj, **changes):
    """A copy of the record ``obj`` with ``changes`` (``dataclasses.replace``; ``__post_init__`` runs)."""
    values = {n: getattr(obj, n) for n in obj.__record_fields__}
    values.update(changes)
    return obj.__class__(**values)
