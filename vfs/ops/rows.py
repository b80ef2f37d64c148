"""Which entries of two directories differ, found by comparing their records' bytes.

Tree records are canonical (``vfs.model.codec``): an entry left as it was has the same
bytes in both records. :func:`differing` finds the entries the two records share from
the start and from the end by comparing bytes (``memcmp`` a block at a time), cuts
only the middles into entries (a msgpack skip each, ~0.3 us), passes over those found
byte for byte on the other side, and decodes the rest, strictly, as a tree record of
their own (:func:`vfs.model.codec.decode_tree`). A version that changed one file of a
20,000-entry directory is told from its parent in about a millisecond, where decoding
both records costs ~0.1 s. The entries passed over are never decoded, and never
answered: everything this module returns has been checked as strictly as a whole
record.

One side of a comparison is cut entry by entry (or was, for the comparison before:
walking a history compares each directory with the next version's); the other
side's cuts are carried over from it where the bytes agree (:func:`_carry`). The last
few directories cut are kept per history, apart from its tree cache: walking a long
history through directories of 20,000 entries would otherwise keep thousands of
them decoded in memory.
"""

from __future__ import annotations

import bisect
import threading
from collections import OrderedDict

import msgpack

from vfs.errors import FormatError
from vfs.model.codec import TREE_FORMAT, Entry, decode_tree, encode_tree
from vfs.repo.history import History

TREES = 8  # directories kept cut into entries, per history


def differing(
    hist: History, x_id: bytes, y_id: bytes
) -> tuple[tuple[Entry, ...], tuple[Entry, ...]]:
    """The entries of tree ``x_id`` that tree ``y_id`` does not hold as they are, and
    back (a name in both lists differs in kind, mode, size, mtime or content), each
    in name order."""
    odd_x, odd_y = _memo(hist).odd_rows(x_id, y_id)
    return _entries(odd_x), _entries(odd_y)


def count(hist: History, oid: bytes) -> int:
    """How many entries tree ``oid`` holds (its record cut, not decoded)."""
    return _memo(hist).cut(oid).count


def entries(hist: History, oid: bytes) -> tuple[Entry, ...]:
    """Every entry of tree ``oid``, decoded strictly without entering the history's
    tree cache (see the module doc)."""
    c = _memo(hist).cut(oid)
    return _entries(c.rows(0, c.count))


class _Cut:
    """A tree record and where each of its entries starts (``cuts[i]``; the last item
    is the record's length)."""

    __slots__ = ("cuts", "data")

    def __init__(self, data: bytes, cuts: list[int]) -> None:
        self.data = data
        self.cuts = cuts

    @property
    def count(self) -> int:
        return len(self.cuts) - 1

    def rows(self, i: int, j: int) -> list[bytes]:
        """The bytes of entries ``i`` to ``j - 1``."""
        d, c = self.data, self.cuts
        return [d[c[k] : c[k + 1]] for k in range(i, j)]


class _Memo:
    """The last few directories of one history cut into entries (module doc)."""

    def __init__(self, hist: History) -> None:
        self.hist = hist
        self.cuts: OrderedDict[bytes, _Cut] = OrderedDict()
        self.lock = threading.Lock()  # the dashboard asks from several threads

    def known(self, oid: bytes) -> _Cut | None:
        with self.lock:
            cut = self.cuts.get(oid)
            if cut is not None:
                self.cuts.move_to_end(oid)
            return cut

    def keep(self, oid: bytes, cut: _Cut) -> _Cut:
        with self.lock:
            self.cuts[oid] = cut
            while len(self.cuts) > TREES:
                self.cuts.popitem(last=False)
            return cut

    def cut(self, oid: bytes) -> _Cut:
        """Tree ``oid`` cut into entries (:func:`_cut`). A record laid out otherwise is
        decoded whole (FormatError saying what is wrong with it, if anything is) and
        cut as it would have been written."""
        known = self.known(oid)
        if known is not None:
            return known
        data = self.hist.store.get(oid)
        try:
            return self.keep(oid, _cut(data))
        except FormatError:
            return self.keep(oid, _cut(encode_tree(self.hist.load_tree(oid).entries)))

    def odd_rows(self, x_id: bytes, y_id: bytes) -> tuple[list[bytes], list[bytes]]:
        """The entries' bytes of tree ``x_id`` not found in tree ``y_id``, and back.

        One side is cut entry by entry (or was, for the version before); the other
        side's cuts are carried over from it where their bytes agree from the start
        and from the end, and only the middle is cut (:func:`_carry`).
        """
        cx, cy = self.known(x_id), self.known(y_id)
        if cx is None and cy is None:
            cy = self.cut(y_id)
        if cx is None or cy is None:
            have, other = (cx, y_id) if cx is not None else (cy, x_id)
            assert have is not None
            carried = _carry(self.hist.store.get(other), have)
            made = self.keep(other, carried) if carried is not None else self.cut(other)
            cx, cy = (have, made) if cx is not None else (made, have)
        i, j, k, m = _middles(cx, cy)
        # Within the middles an entry may still be found byte for byte on the other side.
        xs, ys = cx.rows(i, j), cy.rows(k, m)
        have_x, have_y = set(xs), set(ys)
        return [r for r in xs if r not in have_y], [r for r in ys if r not in have_x]


def _memo(hist: History) -> _Memo:
    return hist.memo("rows", _Memo)


_HEAD = msgpack.packb({"v": TREE_FORMAT, "entries": []}, use_bin_type=True)[:-1]


def _entries(rows: list[bytes]) -> tuple[Entry, ...]:
    """Entries of a tree record's rows (``rows`` in the record's order), decoded and
    checked as strictly as a whole record."""
    if not rows:
        return ()
    array = msgpack.Packer().pack_array_header(len(rows))
    return decode_tree(_HEAD + array + b"".join(rows)).entries


def _start(data: bytes) -> tuple[int, int]:
    """Where the first entry of a canonical tree record starts, and how many there are;
    FormatError if the record is not laid out as
    :func:`vfs.model.codec.encode_tree_rows` writes it."""
    u = msgpack.Unpacker(raw=False, strict_map_key=True)
    u.feed(data[:64])
    try:
        if u.read_map_header() != 2 or u.unpack() != "v" or u.unpack() != TREE_FORMAT:
            raise ValueError
        if u.unpack() != "entries":
            raise ValueError
        count = u.read_array_header()
    except Exception:  # msgpack raises several unrelated types
        raise FormatError("tree record not in canonical layout") from None
    return u.tell(), count


def _cut(data: bytes) -> _Cut:
    """A canonical tree record cut into its entries (a msgpack skip each, ~0.3 us);
    FormatError if it is not laid out canonically."""
    start, count = _start(data)
    u = msgpack.Unpacker(max_buffer_size=len(data) + 1, raw=False, strict_map_key=True)
    u.feed(memoryview(data)[start:])
    cuts = [start]
    try:
        for _ in range(count):
            u.skip()
            cuts.append(start + u.tell())
    except Exception:  # msgpack raises several unrelated types
        raise FormatError("tree record not in canonical layout") from None
    if cuts[-1] != len(data):
        raise FormatError("tree record not in canonical layout")
    return _Cut(data, cuts)


BLOCK = 1 << 16  # bytes compared at a time when looking for where two records part


def _same_from_start(a: bytes, ao: int, b: bytes, bo: int, n: int) -> int:
    """How many bytes ``a[ao:]`` and ``b[bo:]`` agree on from the start, up to ``n``."""
    i = 0
    while i < n:
        m = min(BLOCK, n - i)
        if a[ao + i : ao + i + m] != b[bo + i : bo + i + m]:
            lo, hi = i, i + m  # the first difference lies in [lo, hi)
            while hi - lo > 64:
                mid = (lo + hi) // 2
                if a[ao + lo : ao + mid] == b[bo + lo : bo + mid]:
                    lo = mid
                else:
                    hi = mid
            while a[ao + lo] == b[bo + lo]:
                lo += 1
            return lo
        i += m
    return n


def _same_from_end(a: bytes, b: bytes, n: int) -> int:
    """How many bytes ``a`` and ``b`` agree on from their ends, up to ``n``."""
    la, lb = len(a), len(b)
    i = 0
    while i < n:
        m = min(BLOCK, n - i)
        if a[la - i - m : la - i] != b[lb - i - m : lb - i]:
            lo, hi = i, i + m  # the first difference from the end lies in [lo, hi)
            while hi - lo > 64:
                mid = (lo + hi) // 2
                if a[la - mid : la - lo] == b[lb - mid : lb - lo]:
                    lo = mid
                else:
                    hi = mid
            while a[la - lo - 1] == b[lb - lo - 1]:
                lo += 1
            return lo
        i += m
    return n


def _shared(cx: _Cut, cy: _Cut) -> tuple[int, int]:
    """Bytes the entries of two records agree on from their first entry on, and from
    their ends, with the two spans not overlapping."""
    n = min(len(cx.data) - cx.cuts[0], len(cy.data) - cy.cuts[0])
    p = _same_from_start(cx.data, cx.cuts[0], cy.data, cy.cuts[0], n)
    return p, _same_from_end(cx.data, cy.data, n - p)


def _middles(cx: _Cut, cy: _Cut) -> tuple[int, int, int, int]:
    """The entries ``[i, j)`` of ``cx`` and ``[k, m)`` of ``cy`` left once the whole
    entries the two records share from the start and from the end are set aside."""
    p, s = _shared(cx, cy)
    i = bisect.bisect_right(cx.cuts, cx.cuts[0] + p) - 1
    k = bisect.bisect_right(cy.cuts, cy.cuts[0] + p) - 1
    if i != k or cx.cuts[i] - cx.cuts[0] != cy.cuts[k] - cy.cuts[0]:
        i = k = 0  # the entries do not line up (cannot happen for canonical records)
    j = max(i, bisect.bisect_left(cx.cuts, len(cx.data) - s))
    m = max(k, bisect.bisect_left(cy.cuts, len(cy.data) - s))
    if cx.count - j != cy.count - m or len(cx.data) - cx.cuts[j] != len(cy.data) - cy.cuts[m]:
        j, m = cx.count, cy.count
    return min(i, cx.count), j, min(k, cy.count), m


def _carry(data: bytes, known: _Cut) -> _Cut | None:
    """``data`` (a tree record) cut into entries with the cuts of ``known`` carried over
    where the two agree from the start and from the end, only the middle cut anew;
    None if ``data`` is not laid out canonically or the carried cuts do not line up
    (the caller then cuts it whole)."""
    try:
        start, count = _start(data)
    except FormatError:
        return None
    kd, kc = known.data, known.cuts
    n = min(len(kd) - kc[0], len(data) - start)
    p = _same_from_start(kd, kc[0], data, start, n)
    s = _same_from_end(kd, data, n - p)
    i = min(bisect.bisect_right(kc, kc[0] + p) - 1, known.count)  # first not wholly shared
    j = max(i, bisect.bisect_left(kc, len(kd) - s))  # first wholly shared from the end
    shift, delta = start - kc[0], len(data) - len(kd)
    lo, hi = kc[i] + shift, kc[j] + delta
    if not start <= lo <= hi <= len(data):
        return None
    u = msgpack.Unpacker(max_buffer_size=hi - lo + 1, raw=False, strict_map_key=True)
    u.feed(memoryview(data)[lo:hi])
    middle: list[int] = []
    try:
        while u.tell() < hi - lo:
            u.skip()
            middle.append(lo + u.tell())
    except Exception:  # msgpack raises several unrelated types
        return None
    if (middle[-1] if middle else lo) != hi:
        return None
    cuts = [c + shift for c in kc[: i + 1]] + middle + [c + delta for c in kc[j + 1 :]]
    if len(cuts) - 1 != count or cuts[-1] != len(data):
        return None
    return _Cut(data, cuts)
