"""What a set of versions reaches: the walk that gc, remote gc and fsck share.

From root versions, each labelled with what names it (``branch main``), every parent
is followed (the label gains a ``~`` a step), then the tree of every version found,
in the order they were found, and every tree below it, collecting the chunks of file
entries. Each record is visited once. A record that cannot be read or decoded is a
:class:`Problem`, not an error: the caller decides (``vfs.ops.gc`` and ``vfs.remote.gc``
stop before deleting anything, ``vfs.ops.fsck`` reports). Optional trees (the outputs
of run cache entries) are walked last; one that cannot be read is skipped silently.

The records are read through the two functions the caller gives: gc decodes straight
from the store, fsck goes through ``History``'s cache (it reads them again to name
the paths of a damaged chunk).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from vfs.errors import DvfsError
from vfs.model.codec import Kind, Tree
from vfs.model.version_codec import Version


@dataclass(frozen=True)
class Problem:
    """A record below the roots that could not be read."""

    kind: str  # "version" or "tree"
    oid: bytes
    label: str  # a version's: what names it; a tree's: where it was reached (see ``place``)
    error: DvfsError


@dataclass
class Reached:
    """Everything the roots reach, and what could not be read."""

    versions: dict[bytes, Version] = field(default_factory=dict)  # in the order found
    trees: set[bytes] = field(default_factory=set)  # decoded
    chunks: dict[bytes, int] = field(default_factory=dict)  # id -> size, in the order found
    problems: list[Problem] = field(default_factory=list)


def reach(
    roots: Iterable[tuple[str, bytes]],
    version: Callable[[bytes], Version],
    tree: Callable[[bytes], Tree],
    *,
    optional_trees: Iterable[bytes] = (),
    place: Callable[[Version], str] | None = None,
) -> Reached:
    """Walk from ``roots`` (label, version id); see the module docstring.

    ``place``, if given, names where a version's root tree is (``v3:``); a subtree's
    place is its parent's followed by its name and ``/``, and a tree's problem is
    labelled with the place it was first reached at. Without it, tree labels are "".
    """
    out = Reached()
    seen: set[bytes] = set()
    stack = list(roots)
    while stack:
        label, oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        try:
            v = version(oid)
        except DvfsError as exc:
            out.problems.append(Problem("version", oid, label, exc))
            continue
        out.versions[oid] = v
        stack.extend((label + "~", p) for p in v.parents)
    visited: set[bytes] = set()

    def walk(start: bytes, where: str, required: bool) -> None:
        todo = [(start, where)]
        while todo:
            tid, here = todo.pop()
            if tid in visited:
                continue
            visited.add(tid)
            try:
                t = tree(tid)
            except DvfsError as exc:
                if required:
                    out.problems.append(Problem("tree", tid, here, exc))
                continue
            out.trees.add(tid)
            for e in t.entries:
                if e.kind == Kind.DIR:
                    below = here + os.fsdecode(e.name) + "/" if place else ""
                    todo.append((e.subtree, below))
                else:
                    for c in e.chunks:
                        out.chunks[c.oid] = c.size

    for v in list(out.versions.values()):
        walk(v.tree, place(v) if place else "", True)
    for tid in optional_trees:
        walk(tid, "", False)
    return out
