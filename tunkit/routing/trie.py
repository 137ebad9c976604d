"""Longest-prefix-match routing table for IPv4 and IPv6 with cheap snapshots; pure, no I/O.

:class:`PrefixTable` maps prefixes (``192.0.2.0/24``, ``2001:db8::/32``) to
values and answers "which value does the longest matching prefix carry" for
an address, the question a packet loop asks once per packet::

    table = PrefixTable({"198.51.100.0/24": "gw1", "0.0.0.0/0": "gw0"})
    table.lookup(pkt[16:20])            # raw IPv4 destination -> "gw1" / "gw0"
    reader_view = table.snapshot()      # O(1); later writes do not show through

Families are kept apart: IPv4 and IPv6 live in separate structures, a
4-byte key is always IPv4 and a 16-byte key always IPv6 (``::ffff:a.b.c.d``
is an IPv6 address here, never mapped to IPv4).

Layout (a fixed-stride multibit trie: strides 16-8-8 for IPv4, 16 then
7 x 16 for IPv6):

* root, one slot per top 16 bits: ``_v4[h]`` holds the value of the longest
  prefix of length 0..16 covering the slot (precomputed, "leaf pushed") and
  ``_c4[h]`` the level-1 node or ``None``; the root prefixes themselves are
  in the dict ``_x4`` under ``1 << length | network >> (32 - length)``;
* a level-``i`` node (a ``dict`` subclass) covers the next ``S`` address bits
  (``S`` = 8 for IPv4, 16 for IPv6) below one slot of its parent.  Its keys
  ``0..2**S-1`` ("slots") map to the value of the longest of the node's own
  prefixes covering the slot (leaf pushed within the node), or to the child
  node one stride further down, whose ``default`` then carries that value.
  The node's own prefixes are kept in the same dict under "exact" keys
  ``X + (1 << r | bits)`` (``r`` = length within the node), so exact get,
  delete and iteration need no second structure;
* in the 16-bit IPv6 nodes only lengths ``r`` 9..16 are expanded into slots
  (at most 128 each); lengths 1..8 are expanded into 256 "upper" keys
  ``65536 + (slot >> 8)``, which a lookup tries when the slot is empty.  That
  keeps a /33 from filling 32,768 slots while a /48 is two hops below the
  root instead of four.

An IPv4 lookup is therefore one ``struct`` unpack, one list index, one
``dict.get`` and, only under a /24 that has longer prefixes, one more; an
IPv6 lookup takes one or two ``dict.get`` per 16 bits past /16.

Updates and snapshots (copy-on-write with path copying):
:meth:`PrefixTable.snapshot` and :meth:`PrefixTable.copy` are O(1): both
tables share every structure, and a table never mutates a structure it did
not create or copy since the last fork (nodes carry the generation token of
the table that owns them).  The first write to a family after a fork copies
the root arrays of that family it touches (65,536 pointers each, about
0.3 ms for a 100,000-prefix IPv4 table); each write then copies only the
nodes on the path to the prefix (at most 2 for IPv4, 7 for IPv6) plus, when
a prefix of a node changes, the child nodes directly under its range whose
inherited value changes.  A writer that takes a snapshot after every single
update therefore pays about one root-array copy per update; one that batches
updates between snapshots pays it once per batch.  The whole table is never
copied.

Values may be any object except ``None`` (``lookup`` returns ``None`` for
"no route").  Not thread-safe for concurrent writers; readers on a snapshot
need no lock.

(Why this module is over 600 lines: it is one data structure.  The lookup,
the leaf-pushed write path and the copy-on-write ownership rules above are
one invariant that every method relies on, and the layout notes that explain
it take a tenth of the file; they are read and changed together.  The
address and prefix parsing at the bottom (about 90 lines) is the only part
that could stand alone; it is private to this table's API and stays beside it.)
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

__all__ = ["PrefixTable"]

IPv4Network = ipaddress.IPv4Network
IPv6Network = ipaddress.IPv6Network

# IPv4 key: ! big-endian; H = top 16 bits (root slot), B = 3rd byte (level 1),
# B = 4th byte (level 2).
_K4 = struct.Struct("!HBB")
# IPv6 key: ! big-endian; H = top 16 bits (root slot), 7 x H = the 16-bit
# slots of levels 1..7.
_K6 = struct.Struct("!8H")
_unpack4 = _K4.unpack
_unpack6 = _K6.unpack
_StructError = struct.error

_UPPER = 65536  # IPv6 nodes: key of the "upper" entry for slot s is _UPPER + (s >> 8)


class _Family(NamedTuple):
    """How one address family is laid out."""

    width: int  # address bits
    stride: int  # bits per node below the 16-bit root
    mask: int  # (1 << stride) - 1
    upper: int  # own lengths 1..upper go to the upper keys (0: none, all expanded into slots)
    xoff: int  # exact key of own prefix (r, bits) is xoff + (1 << r | bits)
    cname: str  # attribute: root list of level-1 nodes
    vname: str  # attribute: root list of leaf-pushed values of lengths 0..16
    xname: str  # attribute: root dict of the prefixes of length 0..16
    name: str
    net: type


_V4 = _Family(32, 8, 0xFF, 0, 512, "_c4", "_v4", "_x4", "IPv4", IPv4Network)
_V6 = _Family(128, 16, 0xFFFF, 8, 1 << 17, "_c6", "_v6", "_x6", "IPv6", IPv6Network)
_FAMILIES = {32: _V4, 128: _V6}
# IPv4 exact keys as one canonical int object each, so the ~100k stored keys
# share 510 objects.
_XK = tuple(range(512, 1024))
_EMPTY_ROOT = [None] * 65536  # shared, never written: a family with no prefix yet


def _xkey(f: _Family, r: int, bits: int) -> int:
    return _XK[(1 << r) | bits] if f.xoff == 512 else f.xoff + ((1 << r) | bits)


class _Node(dict[Any, Any]):
    """One stride (8 or 16 bits): slot -> value | child node; own prefixes under exact keys."""

    __slots__ = ("default", "gen")
    default: Any  # the value of the covering prefix inside this stride
    gen: object  # the snapshot generation that owns the node


def _new_node(default: Any, gen: object) -> _Node:
    node = _Node()
    node.default = default
    node.gen = gen
    return node


class PrefixTable:
    """A longest-prefix-match table holding IPv4 and IPv6 prefixes.

    Prefixes may be given as ``"192.0.2.0/24"`` strings (a bare address means a
    host route), ``ipaddress`` network objects, or ``(address, length)`` pairs
    whose address is a string, 4/16 raw bytes or an ``ipaddress`` address.
    Host bits set, a bad length or an unparsable prefix raise ``ValueError``
    naming the value.

    Addresses for lookups may be 4 or 16 raw bytes (``bytes``, ``bytearray``,
    ``memoryview``), ``ipaddress`` addresses or strings; plain ints are
    ambiguous and go through :meth:`lookup4` / :meth:`lookup6`.

    ``PrefixTable(items)`` builds from a mapping or an iterable of
    ``(prefix, value)`` pairs (later duplicates replace earlier ones).
    """

    __slots__ = ("_c4", "_v4", "_x4", "_c6", "_v6", "_x6", "_len", "_gen", "_own", "_frozen")

    def __init__(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]] | None = None) -> None:
        self._c4 = self._v4 = _EMPTY_ROOT
        self._c6 = self._v6 = _EMPTY_ROOT
        self._x4: dict[int, Any] = {}
        self._x6: dict[int, Any] = {}
        self._len = 0
        self._gen = object()
        self._own: set[str] = {"_x4", "_x6"}
        self._frozen = False
        if items is not None:
            self.update(items)

    # ------------------------------------------------------------------ lookups

    def lookup(self, addr: Any) -> Any:
        """Value of the longest prefix containing *addr*, or ``None``.

        The fast path is 4 or 16 raw address bytes, e.g. ``pkt[16:20]`` of an
        IPv4 packet or ``pkt[24:40]`` of an IPv6 one.  ``ipaddress`` addresses
        and strings also work; a plain int raises ``TypeError`` (use
        :meth:`lookup4` / :meth:`lookup6`).
        """
        try:
            n = len(addr)
            if n == 4:
                h, b3, b4 = _unpack4(addr)
                node = self._c4[h]
                if node is not None:
                    v = node.get(b3)
                    if v is not None:
                        if type(v) is not _Node:
                            return v
                        x = v.get(b4)
                        if x is not None:
                            return x
                        x = v.default
                        if x is not None:
                            return x
                return self._v4[h]
            if n == 16:
                t = _unpack6(addr)
                h = t[0]
                best = self._v6[h]
                node = self._c6[h]
                if node is None:
                    return best
                i = 1
                while True:
                    s = t[i]
                    v = node.get(s)
                    if v is None:  # no own prefix of length 9..16 here: try lengths 1..8
                        v = node.get(_UPPER + (s >> 8))
                        return best if v is None else v
                    if type(v) is not _Node:
                        return v
                    node = v
                    if v.default is not None:
                        best = v.default
                    i += 1
        except (TypeError, _StructError):
            pass  # not a 4/16-byte buffer: str, ipaddress object, odd memoryview; parsed below
        width, key = _address(addr)
        return self.lookup(key.to_bytes(width >> 3, "big"))

    def lookup4(self, addr: Any) -> Any:
        """:meth:`lookup` for an IPv4 address; also takes an int 0..2**32-1."""
        return self.lookup(_address_of(addr, 32).to_bytes(4, "big"))

    def lookup6(self, addr: Any) -> Any:
        """:meth:`lookup` for an IPv6 address; also takes an int 0..2**128-1."""
        return self.lookup(_address_of(addr, 128).to_bytes(16, "big"))

    def lookup_prefix(self, addr: Any) -> tuple[IPv4Network | IPv6Network, Any] | None:
        """``(network, value)`` of the longest prefix containing *addr*, or ``None``.

        Takes what :meth:`lookup` takes (a plain int raises ``TypeError`` the
        same way); slower than :meth:`lookup`.
        """
        width, key = _address(addr)
        found = self._match(width, key)
        if found is None:
            return None
        plen, value = found
        shift = width - plen
        return _FAMILIES[width].net((key >> shift << shift, plen)), value

    def _match(self, width: int, key: int) -> tuple[int, Any] | None:
        f = _FAMILIES[width]
        h = key >> (width - 16)
        best = None
        v = getattr(self, f.vname)[h]
        if v is not None:
            exact = getattr(self, f.xname)
            plen = 16
            while (1 << plen) | (key >> (width - plen)) not in exact:
                plen -= 1
            best = (plen, v)
        node = getattr(self, f.cname)[h]
        depth, shift = 16, width - 16 - f.stride
        while node is not None:
            s = (key >> shift) & f.mask
            e = node.get(s)
            own = e.default if type(e) is _Node else e
            if e is None and f.upper:
                own = node.get(_UPPER + (s >> 8))
            if own is not None:
                best = (depth + _own_length(f, node, s), own)
            if type(e) is not _Node:
                break
            node, depth, shift = e, depth + f.stride, shift - f.stride
        return best

    # ------------------------------------------------------------ exact access

    def get(self, prefix: Any, default: Any = None) -> Any:
        """The value stored for exactly *prefix*, or *default*."""
        v = self._get(*_prefix(prefix))
        return default if v is None else v

    def __getitem__(self, prefix: Any) -> Any:
        v = self._get(*_prefix(prefix))
        if v is None:
            raise KeyError(prefix)
        return v

    def __contains__(self, prefix: Any) -> bool:
        """Whether exactly *prefix* is in the table (not whether it is covered)."""
        return self._get(*_prefix(prefix)) is not None

    def __len__(self) -> int:
        return self._len

    def __bool__(self) -> bool:
        return self._len > 0

    def _get(self, width: int, net: int, plen: int) -> Any:
        f = _FAMILIES[width]
        if plen <= 16:
            return getattr(self, f.xname).get((1 << plen) | (net >> (width - plen)))
        node = getattr(self, f.cname)[net >> (width - 16)]
        stride = f.stride
        shift = width - 16 - stride
        for _ in range((plen - 17) // stride):
            if node is None:
                return None
            node = node.get((net >> shift) & f.mask)
            if type(node) is not _Node:
                return None
            shift -= stride
        if node is None:
            return None
        r = plen - (width - shift - stride)
        return node.get(_xkey(f, r, ((net >> shift) & f.mask) >> (stride - r)))

    # -------------------------------------------------------------- iteration

    def items(self) -> Iterator[tuple[IPv4Network | IPv6Network, Any]]:
        """``(network, value)`` pairs: IPv4 first, then by address, then by length.

        The list is taken when called, so the table may change while the
        caller iterates.
        """
        out: list[tuple[IPv4Network | IPv6Network, Any]] = []
        for width in (32, 128):
            rows = self._rows(width)
            rows.sort(key=_row_order)
            cls = _FAMILIES[width].net
            out.extend((cls((net, plen)), value) for net, plen, value in rows)
        return iter(out)

    def __iter__(self) -> Iterator[IPv4Network | IPv6Network]:
        return (net for net, _ in self.items())

    def _rows(self, width: int) -> list[tuple[int, int, Any]]:
        f = _FAMILIES[width]
        stride, xmin = f.stride, f.xoff + 2
        rows = []
        for k, value in getattr(self, f.xname).items():
            plen = k.bit_length() - 1
            rows.append(((k ^ (1 << plen)) << (width - plen), plen, value))
        stack = [(node, h << (width - 16), 16) for h, node in enumerate(getattr(self, f.cname)) if node is not None]
        while stack:
            node, base, depth = stack.pop()
            shift = width - depth - stride
            for k, e in node.items():
                if k >= xmin:
                    i = k - f.xoff
                    r = i.bit_length() - 1
                    rows.append((base | ((i ^ (1 << r)) << (shift + stride - r)), depth + r, e))
                elif type(e) is _Node:
                    stack.append((e, base | (k << shift), depth + stride))
        return rows

    def __repr__(self) -> str:
        kind = "snapshot" if self._frozen else "table"
        return f"<PrefixTable {kind}: {self._len} prefixes>"

    # ---------------------------------------------------------------- updates

    def insert(self, prefix: Any, value: Any, *, replace: bool = True) -> Any:
        """Map *prefix* to *value*; return the value it replaced, or ``None``.

        With ``replace=False`` an existing prefix raises ``KeyError`` and the
        table is left unchanged.  ``value`` must not be ``None``.
        """
        if self._frozen:
            raise TypeError("this PrefixTable is a read-only snapshot; use copy() for a writable one")
        if value is None:
            raise ValueError(f"value for {prefix!r} is None; None means 'no route' in lookups")
        width, net, plen = _prefix(prefix)
        if not replace and self._get(width, net, plen) is not None:
            raise KeyError(f"{_text(width, net, plen)} is already in the table")
        f = _FAMILIES[width]
        if plen <= 16:
            exact = self._writable(f.xname)
            key = (1 << plen) | (net >> (width - plen))
            old = exact.get(key)
            exact[key] = value
            self._refill_root(f, net, plen)
        else:
            path, r, bits = self._path(f, net, plen)
            node = path[-1][0]
            key = _xkey(f, r, bits)
            old = node.get(key)
            node[key] = value
            if r == f.stride:  # a full-stride prefix is the longest in its node: its slot takes it
                self._fill(f, node, bits, bits + 1, value)
            else:
                self._refill(f, node, r, bits)
        if old is None:
            self._len += 1
        return old

    __setitem__ = insert

    def delete(self, prefix: Any) -> Any:
        """Remove exactly *prefix* and return its value; ``KeyError`` if absent.

        Longer prefixes under it stay (deleting 10.0.0.0/8 keeps 10.1.0.0/16).
        """
        if self._frozen:
            raise TypeError("this PrefixTable is a read-only snapshot; use copy() for a writable one")
        width, net, plen = _prefix(prefix)
        old = self._get(width, net, plen)
        if old is None:
            raise KeyError(f"{_text(width, net, plen)} is not in the table")
        f = _FAMILIES[width]
        if plen <= 16:
            del self._writable(f.xname)[(1 << plen) | (net >> (width - plen))]
            self._refill_root(f, net, plen)
        else:
            path, r, bits = self._path(f, net, plen)
            node = path[-1][0]
            del node[_xkey(f, r, bits)]
            self._refill(f, node, r, bits)
            self._prune(f, path)
        self._len -= 1
        return old

    def __delitem__(self, prefix: Any) -> None:
        self.delete(prefix)

    def update(self, items: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> None:
        """Insert every ``(prefix, value)`` of a mapping or iterable (replacing)."""
        pairs = items.items() if isinstance(items, Mapping) else items
        insert = self.insert
        for prefix, value in pairs:
            insert(prefix, value)

    def clear(self) -> None:
        """Remove every prefix (snapshots taken before keep theirs)."""
        if self._frozen:
            raise TypeError("this PrefixTable is a read-only snapshot; use copy() for a writable one")
        PrefixTable.__init__(self)

    # ----------------------------------------------------------- snapshots

    def snapshot(self) -> PrefixTable:
        """A read-only view of the table as it is now; O(1).

        Later writes to this table never show through.  Writes to the
        snapshot raise ``TypeError``.  See the module docstring for what the
        next writes cost.
        """
        if self._frozen:
            return self
        return self._fork(frozen=True)

    def copy(self) -> PrefixTable:
        """A writable, independent copy; O(1) (structures are shared copy-on-write)."""
        return self._fork(frozen=False)

    __copy__ = copy

    def __reduce__(self):  # pickle and deepcopy by content, not by internal layout
        return _restore, (list(self.items()), self._frozen)

    @property
    def readonly(self) -> bool:
        """True for a snapshot."""
        return self._frozen

    def _fork(self, frozen: bool) -> PrefixTable:
        other = PrefixTable.__new__(PrefixTable)
        for name in ("_c4", "_v4", "_x4", "_c6", "_v6", "_x6", "_len"):
            setattr(other, name, getattr(self, name))
        other._gen = object()
        other._own = set()
        other._frozen = frozen
        # Everything is shared now: this table must copy before its next write.
        self._gen = object()
        self._own = set()
        return other

    # ------------------------------------------------------ copy-on-write core

    def _writable(self, name: str) -> Any:
        """The root structure *name*, copied first if it may be shared."""
        obj = getattr(self, name)
        if name not in self._own:
            obj = obj.copy()
            setattr(self, name, obj)
            self._own.add(name)
        return obj

    def _mine(self, node: _Node) -> _Node:
        """*node* itself if this table owns it, else a private copy (caller stores it)."""
        if node.gen is self._gen:
            return node
        copy = _Node(node)
        copy.default = node.default
        copy.gen = self._gen
        return copy

    def _path(self, f: _Family, net: int, plen: int) -> tuple[list[tuple[_Node, int]], int, int]:
        """Writable nodes from level 1 down to the one holding *plen*, created as needed.

        Returns ``(path, r, bits)``: ``path`` lists ``(node, slot)`` pairs, each
        node with the slot it hangs from in its parent (the root slot for level
        1); ``r`` and ``bits`` locate the prefix inside the last node.
        """
        gen, stride, mask = self._gen, f.stride, f.mask
        h = net >> (f.width - 16)
        children = self._writable(f.cname)
        node = children[h]
        if node is None:
            node = children[h] = _new_node(None, gen)
        elif node.gen is not gen:
            node = children[h] = self._mine(node)
        path = [(node, h)]
        shift = f.width - 16 - stride
        for _ in range((plen - 17) // stride):
            slot = (net >> shift) & mask
            e = node.get(slot)
            if type(e) is _Node:
                if e.gen is not gen:
                    e = node[slot] = self._mine(e)
            else:  # the slot's own best (or None) becomes the new child's default
                if e is None and f.upper:
                    e = node.get(_UPPER + (slot >> 8))
                e = node[slot] = _new_node(e, gen)
            node, shift = e, shift - stride
            path.append((node, slot))
        r = plen - (f.width - shift - stride)
        return path, r, ((net >> shift) & mask) >> (stride - r)

    def _prune(self, f: _Family, path: list[tuple[_Node, int]]) -> None:
        """Drop the nodes a delete left empty, bottom-up (a node is empty iff it has no key)."""
        for i in range(len(path) - 1, 0, -1):
            node, slot = path[i]
            if node:
                return
            parent = path[i - 1][0]
            value = _slot_value(f, parent, slot)
            if value is None:
                del parent[slot]
            else:
                parent[slot] = value
        node, h = path[0]
        if not node:
            self._writable(f.cname)[h] = None

    def _set_default(self, node: _Node, s: int, child: _Node, value: Any) -> None:
        if child.default is not value:
            if child.gen is not self._gen:
                child = node[s] = self._mine(child)
            child.default = value

    def _fill(self, f: _Family, node: _Node, lo: int, hi: int, value: Any) -> None:
        """Make *value* (maybe None) the own best of slots lo..hi-1 (upper keys aside)."""
        get = node.get
        for s in range(lo, hi):
            e = get(s)
            if type(e) is _Node:  # a child: its default carries the slot's own best
                if value is None and f.upper:
                    self._set_default(node, s, e, get(_UPPER + (s >> 8)))
                else:
                    self._set_default(node, s, e, value)
            elif value is not None:
                node[s] = value
            elif e is not None:
                del node[s]

    def _refill(self, f: _Family, node: _Node, r: int, bits: int) -> None:
        """Recompute what the node's own prefix (r, bits) covers after it changed."""
        if r <= f.upper:
            self._refill_upper(f, node, r, bits)
            return
        stride = f.stride
        span = stride - r
        lo = bits << span
        base = None
        for rr in range(r, f.upper, -1):  # longest own prefix covering the whole range
            base = node.get(_xkey(f, rr, lo >> (stride - rr)))
            if base is not None:
                break
        more = _more_specific(f, node, r, bits, stride)
        self._fill(f, node, lo, lo + (1 << span), base)
        for rr, b, value in more:
            self._fill(f, node, b << (stride - rr), (b + 1) << (stride - rr), value)

    def _refill_upper(self, f: _Family, node: _Node, r: int, bits: int) -> None:
        """As _refill, for an own prefix of length 1..8 in a 16-bit node."""
        span = 8 - r
        lo, hi = bits << span, (bits + 1) << span
        base = None
        for rr in range(r, 0, -1):
            base = node.get(_xkey(f, rr, lo >> (8 - rr)))
            if base is not None:
                break
        best = [base] * (hi - lo)
        for rr, b, value in _more_specific(f, node, r, bits, 8):
            first = b << (8 - rr)
            best[first - lo : first - lo + (1 << (8 - rr))] = [value] * (1 << (8 - rr))
        for u, value in enumerate(best, lo):
            if value is not None:
                node[_UPPER + u] = value
            else:
                node.pop(_UPPER + u, None)
        # children in the range whose slot has no own prefix of length 9..16 inherit the new value
        shift = f.stride - 8
        for s, child in [(s, e) for s, e in node.items() if type(e) is _Node and lo <= s >> shift < hi]:
            self._set_default(node, s, child, _slot_value(f, node, s, upper=True))

    def _refill_root(self, f: _Family, net: int, plen: int) -> None:
        """Recompute the root slots covered by (net, plen) after a change (plen <= 16)."""
        width = f.width
        exact = getattr(self, f.xname)
        base = None
        for pl in range(plen, -1, -1):
            base = exact.get((1 << pl) | (net >> (width - pl)))
            if base is not None:
                break
        values = self._writable(f.vname)
        lo, n = net >> (width - 16), 1 << (16 - plen)
        values[lo : lo + n] = [base] * n
        if plen == 16:
            return
        top = net >> (width - plen)
        more = []
        if (2 << (16 - plen)) < len(exact):  # probing every candidate is cheaper than a scan
            for pl in range(plen + 1, 17):
                first = top << (pl - plen)
                for b in range(first, first + (1 << (pl - plen))):
                    v = exact.get((1 << pl) | b)
                    if v is not None:
                        more.append((pl, b, v))
        else:
            for k, v in exact.items():
                pl = k.bit_length() - 1
                if pl > plen and (k ^ (1 << pl)) >> (pl - plen) == top:
                    more.append((pl, k ^ (1 << pl), v))
            more.sort(key=_first)
        for pl, b, v in more:
            n = 1 << (16 - pl)
            lo = b << (16 - pl)
            values[lo : lo + n] = [v] * n


def _restore(items: list, frozen: bool) -> PrefixTable:
    table = PrefixTable(items)
    return table.snapshot() if frozen else table


def _first(row: tuple) -> int:
    return row[0]


def _row_order(row: tuple) -> tuple[int, int]:
    return row[0], row[1]


def _more_specific(f: _Family, node: _Node, r: int, bits: int, top: int) -> list[tuple[int, int, Any]]:
    """Own prefixes of *node* inside (r, bits) with lengths r+1..top, shortest first."""
    more = []
    if r < top:
        xmin = f.xoff + 2
        for k in node:
            if k >= xmin:
                i = k - f.xoff
                rr = i.bit_length() - 1
                if r < rr <= top and (i ^ (1 << rr)) >> (rr - r) == bits:
                    more.append((rr, i ^ (1 << rr), node[k]))
        more.sort(key=_first)
    return more


def _slot_value(f: _Family, node: _Node, s: int, upper: bool = False) -> Any:
    """The longest own prefix value of *node* covering slot *s*: lengths above
    ``f.upper`` only (what the slot itself holds), or all lengths with *upper*."""
    stride = f.stride
    for r in range(stride, f.upper, -1):
        v = node.get(_xkey(f, r, s >> (stride - r)))
        if v is not None:
            return v
    return node.get(_UPPER + (s >> 8)) if upper and f.upper else None


def _own_length(f: _Family, node: _Node, s: int) -> int:
    """Length within *node* of its longest own prefix covering slot *s* (one exists)."""
    stride = f.stride
    for r in range(stride, 0, -1):
        if _xkey(f, r, s >> (stride - r)) in node:
            return r
    raise AssertionError("slot value without an own prefix")  # pragma: no cover


def _text(width: int, net: int, plen: int) -> str:
    return str(_FAMILIES[width].net((net, plen)))


# ------------------------------------------------------------------ parsing


def _address(addr: Any) -> tuple[int, int]:
    """(width, int) of an address given as 4/16 bytes, ipaddress object or string."""
    if isinstance(addr, (bytes, bytearray, memoryview)):
        raw = addr.tobytes() if isinstance(addr, memoryview) else addr
        if len(raw) == 4:
            return 32, int.from_bytes(raw, "big")
        if len(raw) == 16:
            return 128, int.from_bytes(raw, "big")
        raise ValueError(f"an address must be 4 (IPv4) or 16 (IPv6) bytes, got {len(raw)}: {bytes(raw)!r}")
    if isinstance(addr, ipaddress.IPv4Address):
        return 32, int(addr)
    if isinstance(addr, ipaddress.IPv6Address):
        return 128, int(addr)
    if isinstance(addr, str):
        try:
            a = ipaddress.ip_address(addr)
        except ValueError:
            raise ValueError(f"{addr!r} is not an IPv4 or IPv6 address") from None
        return a.max_prefixlen, int(a)
    if isinstance(addr, int):
        raise TypeError(f"the int address {addr!r} is ambiguous; use lookup4()/lookup6() or an ipaddress object")
    raise TypeError(f"cannot use {type(addr).__name__} {addr!r} as an address")


def _address_of(addr: Any, width: int) -> int:
    """The int of an address that must belong to the family of *width*; ints allowed."""
    if isinstance(addr, int) and not isinstance(addr, bool):
        if not 0 <= addr < (1 << width):
            raise ValueError(f"{addr!r} is out of range for an {_FAMILIES[width].name} address")
        return addr
    got, key = _address(addr)
    if got != width:
        raise ValueError(f"{addr!r} is an {_FAMILIES[got].name} address, expected {_FAMILIES[width].name}")
    return key


def _prefix(prefix: Any) -> tuple[int, int, int]:
    """(width, network int, length) of a prefix; ValueError naming it when invalid."""
    if type(prefix) is tuple and len(prefix) == 2:  # fast path: (raw bytes, int) from netlink
        addr, plen = prefix
        if type(addr) is bytes and type(plen) is int:
            width = len(addr) << 3
            if (width == 32 or width == 128) and 0 <= plen <= width:
                net = int.from_bytes(addr, "big")
                if not net & ((1 << (width - plen)) - 1):
                    return width, net, plen
    if isinstance(prefix, str):
        fast = _parse_v4_text(prefix)
        if fast is not None:
            return fast
        try:
            prefix = ipaddress.ip_network(prefix)
        except ValueError as exc:
            raise ValueError(f"invalid prefix {prefix!r}: {exc}") from None
    if isinstance(prefix, (IPv4Network, IPv6Network)):
        return prefix.max_prefixlen, int(prefix.network_address), prefix.prefixlen
    if isinstance(prefix, tuple) and len(prefix) == 2:
        addr, plen = prefix
        if isinstance(addr, int) and not isinstance(addr, bool):
            raise ValueError(f"prefix {prefix!r}: an int address is ambiguous, use bytes or an ipaddress object")
        width, net = _address(addr)
        if not isinstance(plen, int) or isinstance(plen, bool) or not 0 <= plen <= width:
            raise ValueError(f"prefix {prefix!r}: length must be 0..{width} for {_FAMILIES[width].name}, got {plen!r}")
        if net & ((1 << (width - plen)) - 1):
            raise ValueError(f"prefix {prefix!r} has host bits set (the network is {_text(width, net >> (width - plen) << (width - plen), plen)})")
        return width, net, plen
    raise TypeError(f"cannot use {type(prefix).__name__} {prefix!r} as a prefix")


_OCTETS = {str(i): i for i in range(256)}  # canonical decimal text only: no "01", "+1", " 1"
_V4_LENGTHS = {str(i): i for i in range(33)}


def _parse_v4_text(text: str) -> tuple[int, int, int] | None:
    """Fast path for canonical "a.b.c.d/n" text; None means "let ipaddress decide"."""
    addr, slash, length = text.partition("/")
    parts = addr.split(".")
    if len(parts) != 4:
        return None
    try:
        a, b, c, d = map(_OCTETS.__getitem__, parts)
        plen = _V4_LENGTHS[length] if slash else 32
    except KeyError:
        return None
    net = (a << 24) | (b << 16) | (c << 8) | d
    if net & ((1 << (32 - plen)) - 1):
        return None  # host bits set: ipaddress words the error
    return 32, net, plen
