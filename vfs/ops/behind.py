"""Where the working tree stands against its branch, without scanning it: whether the
branch moved past the version the working tree was last made equal to
(:func:`moved_past`), and whether a merge is in progress (:func:`merge_in_progress`).

What ``commit`` asks before it builds anything: apart from :mod:`vfs.ops.status`,
whose scanning and comparing (with ``vfs.worktree.status``) a commit never runs and
whose import was 3 ms of its start-up. ``vfs.ops.status`` gives these names too.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from vfs.errors import FormatError

if TYPE_CHECKING:
    from vfs.model.codec import Entry
    from vfs.ops import merging
    from vfs.repo.history import History
    from vfs.repo.refs import Head
    from vfs.repo.repository import Repository
    from vfs.repo.stage import Index

MERGE_RECORD = "MERGE"  # (in .dvfs: vfs.ops.merging's, imported only where there is one)


def quiet(_: str) -> None:
    """A warning sink that drops warnings."""


def merge_in_progress(repo: Repository) -> merging.MergeState | None:
    """The merge in progress (``vfs.ops.merging.live``). Where ``.dvfs`` holds no merge
    record, as it does not but during a merge, that module is not even imported (its
    making is 2 ms of a clean status)."""
    if not os.path.lexists(repo.dir / MERGE_RECORD):
        return None
    from vfs.ops import merging

    return merging.live(repo.dir, repo.refs)


def moved_past(hist: History, index: Index) -> str | None:
    """The label of the working tree's version if the branch has moved past it (with
    its id when it is not on the branch: its number is another chain's)."""
    behind = past_base(hist, index)
    if behind is None:
        return None
    oid = behind[0]
    label = hist.label(oid)
    return label if hist.on_chain(hist.head_id(), oid) else f"{label} {oid.hex()[:10]}"


def may_be_behind(head: Head, tip: bytes | None, index: Index) -> bool:
    """False if the branch (or a detached HEAD) certainly has not moved past the working
    tree (:func:`past_base`): the index names no base, or HEAD's version ``tip``, or HEAD
    has no version.

    Answered from the refs alone, so that a clean ``status`` reads no version.
    """
    base = index.base
    return base is not None and tip is not None and tip != base


def past_base(hist: History, index: Index) -> tuple[bytes, dict[bytes, Entry]] | None:
    """(version, its files) if the branch moved past the working tree's version.

    Moved past means: the branch changed a path after that version and the index
    does not hold the change, so committing the index would undo it. A branch that
    moved to exactly what the index holds (a commit whose index could not be saved)
    is not behind. With HEAD detached it is HEAD's version the working tree is not
    at: a checkout killed once it had saved the index, before HEAD moved (no commit
    is made there).
    """
    head = hist.head()
    tip, base = hist.refs.head_id(head), index.base
    if not may_be_behind(head, tip, index):
        return None
    assert tip is not None and base is not None  # (may_be_behind says so)
    attached = head.detached is None
    if attached and not hist.on_chain(tip, base) and _unnamed_child(hist, tip, base):
        return None  # a commit killed before its branch moved: its changes are staged
    old = hist.flatten(hist.version(base).tree)
    new = hist.flatten(hist.version(tip).tree)
    for p in old.keys() | new.keys():
        a, b = old.get(p), new.get(p)
        if a is not None and b is not None and same_entry(a, b):
            continue
        s = index.get(p)
        if (s is None) != (b is None) or (
            s is not None and b is not None and not s.same_content(b)
        ):
            return base, old
    return None


def _unnamed_child(hist: History, tip: bytes, base: bytes) -> bool:
    """True if version ``base`` was made on ``tip`` and no ref names it: a commit (or
    merge) killed before it moved its branch. Any other version off the branch's
    chain was brought into the working tree by a switch or checkout killed before
    HEAD moved, whose files are not changes of this branch's."""
    if hist.version(base).parents[:1] != (tip,):
        return False
    refs = hist.refs
    for kind in ("heads", "tags", "remotes"):
        for name in refs.names(kind):
            with contextlib.suppress(FormatError):  # (a damaged ref is fsck's to name)
                if refs.get(f"refs/{kind}/{name}") == base:
                    return False
    return True


def same_entry(a: Entry, b: Entry) -> bool:
    """True if two entries hold the same thing (kind, mode, content or target)."""
    return (a.kind, a.mode, a.digest, a.target, a.size) == (
        b.kind,
        b.mode,
        b.digest,
        b.target,
        b.size,
    )
