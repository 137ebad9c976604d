"""tunkit.netlink.record against the frozen dataclass it replaces (oracle: dataclasses itself)."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
import subprocess
import sys

import pytest

from test_layering import ROOT

from tunkit.netlink import record as rec
from tunkit.netlink.fields import construct
from tunkit.netlink.rtnl import LinkMessage, LinkStats64, RouteMessage


def _pair():
    """The same class written as a record and as a frozen dataclass."""
    ns = {}
    src = (
        "class Base:\n"
        "    note: str  # annotation of a non-record base: not a field (as with dataclasses)\n"
        "class X(Base):\n"
        "    a: int\n"
        "    b: 'int | None' = None\n"
        "    c: tuple = ()\n"
        "    k: ClassVar[int] = 7\n"
        "    def __post_init__(self):\n"
        "        if self.b is None:\n"
        "            object.__setattr__(self, 'b', self.a + 1)\n"
    )
    code = compile("from typing import ClassVar\n" + src, "<pair>", "exec", dont_inherit=True)  # real annotations
    exec(code, ns)  # noqa: S102
    r = rec.record(ns["X"])
    ns2 = {}
    exec(code, ns2)  # noqa: S102
    d = dataclasses.dataclass(frozen=True)(ns2["X"])
    return r, d


@pytest.mark.parametrize("args, kw", [((1,), {}), ((1, 5), {}), ((), {"a": 2, "c": (1, 2)}), ((3,), {"b": None})])
def test_record_behaves_as_the_frozen_dataclass(args, kw):
    R, D = _pair()
    r, d, r2, d2 = R(*args, **kw), D(*args, **kw), R(*args, **kw), D(*args, **kw)
    assert repr(r) == repr(d)
    assert (r == r2) is (d == d2) is True
    assert hash(r) == hash(r2) and hash(r) == hash(d)  # the same tuple hash
    assert (r != R(99)) is (d != D(99)) is True
    assert r != d and (r == (r.a, r.b, r.c)) is False  # another class is never equal
    assert R.__match_args__ == D.__match_args__ == ("a", "b", "c")
    assert vars(r) == vars(d)
    params = lambda c: [(p.name, p.default, p.kind) for p in inspect.signature(c).parameters.values()]  # noqa: E731
    assert params(R) == params(D)
    for bad in (lambda o: setattr(o, "a", 5), lambda o: setattr(o, "new", 1), lambda o: delattr(o, "a")):
        with pytest.raises(AttributeError):
            bad(d)
        with pytest.raises(rec.FrozenInstanceError):
            bad(r)
    assert rec.replace(r, a=10) == R(10, r.b, r.c) and rec.replace(r, b=None).b == r.a + 1  # __post_init__ runs
    assert rec.fields(r) == tuple(f.name for f in dataclasses.fields(d))
    # the dataclasses functions work on records too (__dataclass_fields__ is built on demand)
    assert dataclasses.is_dataclass(R) and dataclasses.is_dataclass(r)
    assert [f.name for f in dataclasses.fields(r)] == [f.name for f in dataclasses.fields(d)]
    assert [f.default for f in dataclasses.fields(R)] == [f.default for f in dataclasses.fields(D)]
    assert dataclasses.asdict(r) == dataclasses.asdict(d)
    assert dataclasses.replace(r, c=(9,)) == R(r.a, r.b, (9,))
    assert copy.deepcopy(r) == r and copy.copy(r) == r


def test_a_string_classvar_annotation_is_no_field():  # how tunkit's modules (future annotations) write one
    R = rec.record(type("R", (), {"__annotations__": {"a": "int", "k": "ClassVar[int]", "t": "typing.ClassVar[str]"},
                                  "k": 1, "t": ""}))
    assert R.__record_fields__ == ("a",) and R(2).k == 1 and repr(R(2)) == "R(a=2)"


def test_record_refuses_what_dataclasses_refuses():
    with pytest.raises(TypeError, match="non-default argument"):
        rec.record(type("Bad", (), {"__annotations__": {"a": "int", "b": "int"}, "a": 1}))
    with pytest.raises(ValueError, match="mutable default"):
        rec.record(type("Bad", (), {"__annotations__": {"a": "list"}, "a": []}))
    R, _ = _pair()
    with pytest.raises(TypeError):
        R()  # a is required
    with pytest.raises(TypeError):
        R(1, nosuch=2)


def test_record_bases_contribute_their_fields_first():
    A = rec.record(type("A", (), {"__annotations__": {"x": "int", "y": "int"}, "y": 2}))
    B = rec.record(type("B", (A,), {"__annotations__": {"z": "int", "x": "int"}, "z": 3, "x": 0}))
    assert B.__record_fields__ == ("x", "y", "z") and B() == B(0, 2, 3) and B(1).x == 1
    assert B(1) != A(1) and A(1) == A(1, 2)


def test_messages_are_records_that_pickle_construct_and_compare():
    m = RouteMessage(table=1000, priority=5)
    assert pickle.loads(pickle.dumps(m)) == m and RouteMessage.decode(m.encode()) == m
    assert construct(LinkMessage, {"ifname": "x"}) == LinkMessage(ifname="x")
    s = LinkStats64(rx_packets=1)
    assert s.rx_bytes is None and s == LinkStats64(rx_packets=1) and "rx_packets=1" in repr(s)
    assert LinkStats64.__module__ == "tunkit.netlink.rtnl"


def test_message_modules_do_not_import_dataclasses():
    """The record exists so that the link-show path does not pay for dataclasses and inspect."""
    code = ("import sys, tunkit.netlink.client, tunkit.netlink.rule, tunkit.netlink.neigh, tunkit.netlink.nexthop,"
            " tunkit.netlink.linkkinds, tunkit.netlink.events\n"
            "print(' '.join(m for m in ('dataclasses', 'inspect', 'platform') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""
