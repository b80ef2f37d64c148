"""The fast path's geometry: the rows two versions of a file share through shared chunks.

Two versions of a file are cut into chunks at content-defined points, so an edit
changes the chunks around it and leaves the others, with the same ids, in both chunk
lists. A run of chunks both lists hold in the same order (found as the matching
blocks of the two id sequences) is a byte range the two files share. Inside such a
range, every complete row is a row of both files, unchanged: only the rows outside
the shared ranges, plus the rows cut by a range's edges, need the engine.

Why a row inside a shared range is the same row of both files. A row is a line that
ends with ``\\n`` (``\\r\\n`` keeps its ``\\r`` in the row), which holds when a newline
always ends a row: always in JSON Lines (a JSON string cannot hold a raw newline) and
in CSV when no field is quoted, the caller's condition (the quote character appears
nowhere in either file, or the dialect has none; see ``vfs.tables.rowdiff``). Then
the rows of a shared range start after its first newline (or at its start, when the
range starts a row in both files the same way: right after the header in both, or
right after a newline in both) and end at its last newline. Those bytes are equal in
both files and parse to the same rows wherever they are: a parser starts a row after
every newline whatever came before. The rows between the shared ranges (the changed
ranges) are complete rows too, since every range starts and ends on a row boundary.

So for the engine: old = header + changed(old) + shared, new = header + changed(new)
+ shared, as multisets of rows; the shared rows are parsed once, and only the changed
rows are compared. The header (the first line, when the dialect has one) must be
byte-for-byte the same in both files, or there is no fast path.

A range's edges are found by reading outwards from them in ``STEP`` blocks, so a
range without a newline (a 1 GB line) costs reads, never memory.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vfs.model.codec import ChunkRef

STEP = 64 * 1024
MAX_HEADER = 1024 * 1024  # a first line longer than this: no fast path
MAX_CHUNKS = 1_000_000  # chunk lists longer than this are not matched (a 1 TiB file)

Range = tuple[int, int]  # [start, end) byte offsets


@dataclass(frozen=True)
class Plan:
    """Where the rows are: the header's length in each file, shared and changed ranges.

    ``shared`` holds (old start, new start, length) of each shared run of rows;
    ``old_changed`` and ``new_changed`` the ranges of each file outside them (after
    its header), in file order.
    """

    old_header: int
    new_header: int
    shared: list[tuple[int, int, int]]
    old_changed: list[Range]
    new_changed: list[Range]

    @property
    def shared_bytes(self) -> int:
        """Bytes of rows the two files share."""
        return sum(n for _, _, n in self.shared)


def _whole(start: int, end: int) -> object:
    return None  # a copy with every byte written: nothing to fill in


class _File:
    """Positional reads of one side's copy; ``fill(start, end)`` is called before
    bytes [start, end) are read (a lazy copy writes them then, ``vfs.tables.source``)."""

    def __init__(self, fd: int, size: int, fill: Callable[[int, int], object] = _whole) -> None:
        self.fd = fd
        self.size = size
        self.fill = fill

    def read(self, n: int, pos: int) -> bytes:
        self.fill(pos, pos + n)
        return os.pread(self.fd, n, pos)

    def byte(self, pos: int) -> bytes:
        return self.read(1, pos) if 0 <= pos < self.size else b""

    def find(self, start: int, end: int) -> int:
        """Offset of the first newline in [start, end), or -1."""
        pos = start
        while pos < end:
            block = self.read(min(STEP, end - pos), pos)
            if not block:
                return -1
            i = block.find(b"\n")
            if i >= 0:
                return pos + i
            pos += len(block)
        return -1

    def rfind(self, start: int, end: int) -> int:
        """Offset of the last newline in [start, end), or -1."""
        pos = end
        while pos > start:
            n = min(STEP, pos - start)
            block = self.read(n, pos - n)
            i = block.rfind(b"\n")
            if i >= 0:
                return pos - n + i
            pos -= n
        return -1


def header_end(f: _File, has_header: bool) -> int | None:
    """Where the first row after the header starts (0 without one); None if unknown."""
    if not has_header:
        return 0
    nl = f.find(0, min(f.size, MAX_HEADER))
    return None if nl < 0 else nl + 1


def matching_runs(old: Sequence[ChunkRef], new: Sequence[ChunkRef]) -> list[tuple[int, int, int]]:
    """(old offset, new offset, length) of each run of chunks both lists hold in order."""
    a = [c.oid for c in old]
    b = [c.oid for c in new]
    if not a or not b or len(a) > MAX_CHUNKS or len(b) > MAX_CHUNKS:
        return []
    starts_a = _offsets(old)
    starts_b = _offsets(new)
    out = []
    for i, j, n in difflib.SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks():
        if n:
            length = starts_a[i + n] - starts_a[i]
            out.append((starts_a[i], starts_b[j], length))
    return out


def _offsets(chunks: Sequence[ChunkRef]) -> list[int]:
    out = [0]
    for c in chunks:
        out.append(out[-1] + c.size)
    return out


def plan(
    old_fd: int,
    old: Sequence[ChunkRef],
    new_fd: int,
    new: Sequence[ChunkRef],
    has_header: bool,
    old_fill: Callable[[int, int], object] = _whole,
    new_fill: Callable[[int, int], object] = _whole,
) -> Plan | None:
    """The shared and changed row ranges of two files, or None if none can be proven.

    ``old_fd``/``new_fd`` read the files the chunk lists describe; ``old_fill`` and
    ``new_fill`` are called with the byte range of each read before it (``_File``).
    """
    a = _File(old_fd, sum(c.size for c in old), old_fill)
    b = _File(new_fd, sum(c.size for c in new), new_fill)
    ha, hb = header_end(a, has_header), header_end(b, has_header)
    if ha is None or hb is None:
        return None
    if ha != hb or a.read(ha, 0) != b.read(hb, 0):
        return None
    if has_header and not a.read(ha, 0).strip():
        return None  # a blank first line: the header is further down
    shared: list[tuple[int, int, int]] = []
    for a0, b0, n in matching_runs(old, new):
        skip = max(0, ha - a0, hb - b0)
        if skip >= n:
            continue
        a0, b0, n = a0 + skip, b0 + skip, n - skip
        both_after_header = a0 == ha and b0 == hb
        both_after_newline = (
            a0 > 0 and b0 > 0 and a.byte(a0 - 1) == b"\n" and b.byte(b0 - 1) == b"\n"
        )
        if both_after_header or both_after_newline:
            first = 0
        else:
            nl = a.find(a0, a0 + n)
            if nl < 0:
                continue
            first = nl + 1 - a0
        last = a.rfind(a0 + first, a0 + n)
        if last < 0:
            continue
        length = last + 1 - a0 - first
        if length > 0:
            shared.append((a0 + first, b0 + first, length))
    return Plan(
        ha, hb, shared,
        _outside(ha, a.size, [(s, s + n) for s, _, n in shared]),
        _outside(hb, b.size, [(s, s + n) for _, s, n in shared]),
    )  # fmt: skip


def _outside(start: int, end: int, inside: list[Range]) -> list[Range]:
    """The parts of [start, end) that no range of ``inside`` (sorted, disjoint) covers."""
    out = []
    pos = start
    for s, e in inside:
        if s > pos:
            out.append((pos, s))
        pos = max(pos, e)
    if pos < end:
        out.append((pos, end))
    return out


def narrowed(plan: Plan, old_fd: int, old_size: int, new_fd: int, new_size: int) -> Plan:
    """``plan`` with each pair of changed ranges (the old and the new bytes between the
    same two shared runs) rid of the whole rows both begin with alike and the whole
    rows both end with alike: rows of both files as they are, like those of a shared
    run, which the chunks alone do not show. An edit of a few rows changes a chunk or
    two around them (about 1 MiB each with the default chunker); the engine then
    compares the rows edited and a row or so around them, not every row of those
    chunks. Each range starts and ends on a row boundary (module doc), so the rows
    cut off are whole rows, found by comparing ``STEP`` blocks from each end. The
    shared runs (and ``shared_bytes``) are left as the chunks gave them.
    """
    starts_a = [plan.old_header] + [s + n for s, _, n in plan.shared]
    starts_b = [plan.new_header] + [s + n for _, s, n in plan.shared]
    ends_a = [s for s, _, _ in plan.shared] + [old_size]
    ends_b = [s for _, s, _ in plan.shared] + [new_size]
    gaps = list(zip(starts_a, ends_a, starts_b, ends_b, strict=True))
    if any(a1 < a0 or b1 < b0 for a0, a1, b0, b1 in gaps):
        return plan  # (runs out of order: the ranges stay as _outside found them)
    old_changed: list[Range] = []
    new_changed: list[Range] = []
    for a0, a1, b0, b1 in gaps:
        if a1 > a0 and b1 > b0:
            head = _alike_head(old_fd, a0, new_fd, b0, min(a1 - a0, b1 - b0))
            a0, b0 = a0 + head, b0 + head
            tail = _alike_tail(old_fd, a1, new_fd, b1, min(a1 - a0, b1 - b0))
            a1, b1 = a1 - tail, b1 - tail
        if a1 > a0:
            old_changed.append((a0, a1))
        if b1 > b0:
            new_changed.append((b0, b1))
    return Plan(plan.old_header, plan.new_header, plan.shared, old_changed, new_changed)


def _differ_at(x: bytes, y: bytes) -> int:
    """The first index at which ``x`` and ``y`` (unequal, of one length) differ."""
    lo, hi = 0, len(x)  # x[:lo] == y[:lo]; they differ before hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if x[lo:mid] == y[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


def _alike_head(a_fd: int, a0: int, b_fd: int, b0: int, limit: int) -> int:
    """The bytes of the whole rows both files hold alike from ``a0`` and ``b0`` (each a
    row's start), within ``limit`` bytes: up to the last newline of the bytes alike."""
    pos, cut = 0, 0
    while pos < limit:
        n = min(STEP, limit - pos)
        x, y = os.pread(a_fd, n, a0 + pos), os.pread(b_fd, n, b0 + pos)
        if len(x) != n or len(y) != n:
            return cut  # (a file shorter than its plan: left to the engine)
        same = n if x == y else _differ_at(x, y)
        nl = x.rfind(b"\n", 0, same)
        if nl >= 0:
            cut = pos + nl + 1
        if same < n:
            break
        pos += n
    return cut


def _alike_tail(a_fd: int, a1: int, b_fd: int, b1: int, limit: int) -> int:
    """The bytes of the whole rows both files hold alike before ``a1`` and ``b1`` (each
    a row's end), within ``limit`` bytes: from after the first newline of the bytes
    alike (the row before it may begin otherwise in each file)."""
    pos, cut = 0, 0  # pos: bytes alike so far, counted back from the ends
    while pos < limit:
        n = min(STEP, limit - pos)
        x, y = os.pread(a_fd, n, a1 - pos - n), os.pread(b_fd, n, b1 - pos - n)
        if len(x) != n or len(y) != n:
            return cut
        same = n if x == y else _differ_at(x[::-1], y[::-1])  # alike: x[n - same:]
        nl = x.find(b"\n", n - same)
        if nl >= 0:
            cut = pos + n - nl - 1
        if same < n:
            break
        pos += n
    return cut
