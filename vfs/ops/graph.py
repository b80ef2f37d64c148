"""The history as a graph: versions in topological order and the lines that draw it.

``dvfs log --graph`` shows every version below a start (every parent of a merge
followed), newest first but never a version before one built on it, each with a
prefix drawn in columns as ``git log --graph`` does::

    *    v5 merge exp into main
    |\\
    | *  v2 exp: more data
    * |  v4 cleaned
    |/
    *    v1 raw

Each column is a line of descent waiting for the version it names; ``*`` marks the
version shown, ``\\`` a merge's further parent opening a column, ``/`` a column
closing into the one on its left (two lines of descent reaching the same version,
or a first version ending its own). Only ASCII is drawn; texts are the caller's.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import NamedTuple

from vfs.model.version_codec import Version
from vfs.repo.history import History


def topo_order(
    hist: History, start: bytes, limit: int | None = None
) -> Iterator[tuple[bytes, Version]]:
    """Versions below ``start`` (itself included), newest first, children before parents."""
    reach = hist.ancestors(start)
    waiting = dict.fromkeys(reach, 0)  # children not yet shown
    for oid in reach:
        for p in set(hist.version(oid).parents):
            waiting[p] += 1
    ready = [(-hist.version(start).time_ns, start)]
    shown = 0
    while ready and (limit is None or shown < limit):
        _, oid = heapq.heappop(ready)
        v = hist.version(oid)
        yield oid, v
        shown += 1
        for p in dict.fromkeys(v.parents):
            waiting[p] -= 1
            if waiting[p] == 0:
                heapq.heappush(ready, (-hist.version(p).time_ns, p))


class GraphLine(NamedTuple):
    """One line of the drawing: a version's (``oid`` set) or a connector's."""

    prefix: str
    oid: bytes | None = None
    version: Version | None = None


def _line(cells: list[str]) -> str:
    return "".join(cells).rstrip()


def draw(order: Iterator[tuple[bytes, Version]]) -> Iterator[GraphLine]:
    """The lines drawing ``order`` (as :func:`topo_order` gives it)."""
    cols: list[bytes] = []
    for oid, v in order:
        if oid not in cols:
            cols.append(oid)
        i = cols.index(oid)
        for j in reversed([j for j in range(i + 1, len(cols)) if cols[j] == oid]):
            yield GraphLine(_line(_closing(len(cols), j)))  # two lines of descent meet here
            del cols[j]
        width = max(len(cols), 1)
        cells = ["| " for _ in range(width)]
        cells[i] = "* "
        yield GraphLine(_line(cells), oid, v)
        parents = list(dict.fromkeys(v.parents))
        if not parents:
            if i < len(cols) - 1:
                yield GraphLine(_line(_closing(len(cols), i + 1, first="  ")))
            del cols[i]
            continue
        cols[i] = parents[0]
        for n, p in enumerate(parents[1:], 1):  # (a column for each, closed where they meet)
            cols.insert(i + n, p)
            yield GraphLine(_line(_opening(len(cols), i + n)))


def _closing(n: int, j: int, first: str = "| ") -> list[str]:
    """Column ``j`` of ``n`` closes into the one on its left; those right of it shift."""
    cells = ["| " for _ in range(j)]
    if first != "| " and j:
        cells[j - 1] = first
    cells[-1] = cells[-1][0] + "/" if cells else "/"
    cells += [" /" for _ in range(j + 1, n)]
    return cells


def _opening(n: int, j: int) -> list[str]:
    """Column ``j`` of ``n`` opens from the one on its left; those right of it shift."""
    cells = ["| " for _ in range(j)]
    cells[-1] = "|\\"
    cells += [" \\" for _ in range(j + 1, n)]
    return cells
