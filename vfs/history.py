"""Versions and trees read back from the store, and revision names resolved to ids.

Revision grammar (``vfs.history.resolve``)::

    rev   := base ("~" N)?
    base  := "HEAD" | "v" N | tag | branch | remote/branch | hex id prefix (>= 4 characters)

``vN`` counts along the first-parent chain of the current branch (or, when HEAD is
detached, of the branch it was detached from): ``v1`` is that chain's first version.
Tags win over branches, which win over id prefixes, as names are checked in that
order after ``HEAD`` and ``vN``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from vfs.codec import Entry, Kind, Tree, Version, decode_tree, decode_version
from vfs.errors import FormatError, RevisionNotFound, UsageError
from vfs.ids import is_hex_prefix
from vfs.objects import ObjectStore, ObjKind
from vfs.refs import Head, Refs
from vfs.stage import paused_gc

_REV_RE = re.compile(r"^(?P<base>.+?)(?:~(?P<back>\d*))?$")
_VN_RE = re.compile(r"^v(\d+)$")


class History:
    """Read access to versions and trees, with a small decoded-record cache."""

    def __init__(self, store: ObjectStore, refs: Refs) -> None:
        self.store = store
        self.refs = refs
        self.version = lru_cache(maxsize=4096)(self._load_version)
        self.tree = lru_cache(maxsize=4096)(self._load_tree)

    def _load_version(self, oid: bytes) -> Version:
        try:
            return decode_version(self.store.get(oid))
        except FormatError as exc:
            raise FormatError(f"version {oid.hex()[:12]}: {exc}") from None

    def _load_tree(self, oid: bytes) -> Tree:
        try:
            return decode_tree(self.store.get(oid))
        except FormatError as exc:
            raise FormatError(f"tree {oid.hex()[:12]}: {exc}") from None

    # HEAD and branches ------------------------------------------------------

    def head_id(self) -> bytes | None:
        """The version HEAD names, or None on a branch with no versions yet."""
        h = self.refs.head()
        if h.detached is not None:
            return h.detached
        return self.refs.get(f"refs/heads/{h.branch}")

    def head(self) -> Head:
        """HEAD as parsed from disk."""
        return self.refs.head()

    def chain(self, start: bytes | None) -> Iterator[tuple[bytes, Version]]:
        """The first-parent chain from ``start`` back to the first version."""
        oid = start
        seen = 0
        while oid is not None:
            v = self.version(oid)
            yield oid, v
            seen += 1
            if v.number != 1 and not v.parents:
                raise FormatError(f"version {oid.hex()[:12]} has no parent but is v{v.number}")
            oid = v.parents[0] if v.parents else None
            if seen > 10_000_000:
                raise FormatError("version chain does not end (a cycle?)")

    # resolving -----------------------------------------------------------------

    def _vn(self, n: int) -> bytes | None:
        h = self.refs.head()
        tip = self.refs.get(f"refs/heads/{h.branch}")
        if h.detached is not None and not self.on_chain(tip, h.detached):
            tip = h.detached  # detached off the branch: count along its own chain
        if tip is None or n < 1:
            return None
        for oid, v in self.chain(tip):
            if v.number == n:
                return oid
            if v.number < n:
                return None
        return None

    def on_chain(self, tip: bytes | None, oid: bytes) -> bool:
        """True if ``oid`` is on the first-parent chain ending at ``tip``."""
        if tip is None:
            return False
        n = self.version(oid).number
        for cur, v in self.chain(tip):
            if v.number <= n:
                return cur == oid
        return False

    def _by_prefix(self, prefix: str) -> bytes | None:
        hits = [
            oid for oid in self.store.with_prefix(prefix) if self.store.kind(oid) == ObjKind.VERSION
        ]
        if len(hits) > 1:
            raise UsageError(
                f"id prefix {prefix} is ambiguous: "
                + ", ".join(h.hex()[:12] for h in hits[:5])
                + "; give more characters"
            )
        return hits[0] if hits else None

    def _base(self, name: str) -> bytes | None:
        if name == "HEAD":
            oid = self.head_id()
            if oid is None:
                raise RevisionNotFound("HEAD", ["(no versions yet: run `dvfs commit`)"])
            return oid
        m = _VN_RE.match(name)
        if m:
            return self._vn(int(m.group(1)))
        if ".." not in name and not name.startswith("/"):
            for ref in (f"refs/tags/{name}", f"refs/heads/{name}", f"refs/remotes/{name}"):
                oid = self.refs.get(ref)
                if oid is not None:
                    return oid
        if is_hex_prefix(name.lower()):
            return self._by_prefix(name.lower())
        return None

    def resolve(self, rev: str) -> bytes:
        """The version id a revision names; RevisionNotFound with close names if none."""
        m = _REV_RE.match(rev.strip())
        if not m or not rev.strip():
            raise RevisionNotFound(rev, self._close(rev))
        base, back = m.group("base"), m.group("back")
        oid = self._base(base)
        if oid is None:
            m_vn = _VN_RE.match(base)
            tip = self.head_id()
            if m_vn and tip is not None:
                head = self.refs.head()
                raise RevisionNotFound(
                    rev, [f"v1 to v{self.version(tip).number} exist on {head.branch}"]
                )
            raise RevisionNotFound(rev, self._close(base))
        steps = 0 if back is None else int(back or "1")
        for _ in range(steps):
            v = self.version(oid)
            if not v.parents:
                raise RevisionNotFound(
                    rev, [f"{base} is v{self.version(oid).number}; it has no parent"]
                )
            oid = v.parents[0]
        return oid

    def _close(self, name: str) -> list[str]:
        names = ["HEAD", *self.refs.tags(), *self.refs.branches()]
        tip = self.head_id()
        if tip is not None:
            names += [f"v{i}" for i in range(1, self.version(tip).number + 1)]
        import difflib  # only for this error message

        return difflib.get_close_matches(name, names, n=4, cutoff=0.5)

    def label(self, oid: bytes) -> str:
        """``vN`` of a version (its number on its first-parent chain)."""
        return f"v{self.version(oid).number}"

    # trees ---------------------------------------------------------------------

    def walk(
        self, tree_id: bytes, prefix: bytes = b"", empty: list[bytes] | None = None
    ) -> Iterator[tuple[bytes, Entry]]:
        """Every file and link below a tree, as (path, entry), in path order.

        The paths of empty directories below it (a snapshot records them) are
        appended to ``empty`` if given.
        """
        tree = self.tree(tree_id)
        if empty is not None and prefix and not tree.entries:
            empty.append(prefix)
        for e in tree.entries:
            path = prefix + b"/" + e.name if prefix else e.name
            if e.kind == Kind.DIR:
                yield from self.walk(e.subtree, path, empty)
            else:
                yield path, e

    def flatten(self, tree_id: bytes, empty: list[bytes] | None = None) -> dict[bytes, Entry]:
        """Map of every file and link path below a tree to its entry (see :meth:`walk`)."""
        with paused_gc():
            return dict(self.walk(tree_id, empty=empty))

    def lookup(self, tree_id: bytes, path: bytes) -> Entry | None:
        """The entry at ``path`` below a tree (None if absent); b"" is the root itself."""
        if not path:
            return Entry(b"", Kind.DIR, 0o755, 0, 0, subtree=tree_id)
        tree = self.tree(tree_id)
        parts = path.split(b"/")
        for i, part in enumerate(parts):
            e = tree.get(part)
            if e is None:
                return None
            if i == len(parts) - 1:
                return e
            if e.kind != Kind.DIR:
                return None
            tree = self.tree(e.subtree)
        return None


@dataclass(frozen=True)
class RevPath:
    """A ``REV:PATH`` argument split in two (PATH may be empty)."""

    rev: str
    path: bytes


def split_rev_path(arg: str) -> RevPath:
    """Split ``REV:PATH``; a bare ``REV`` means the root."""
    rev, _, path = arg.partition(":")
    clean = path.strip("/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UsageError(f"paths in {arg!r} cannot contain '..'")
    return RevPath(rev or "HEAD", os.fsencode("/".join(parts)))
