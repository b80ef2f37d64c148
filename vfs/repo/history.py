"""Versions and trees read back from the store, and revision names resolved to ids.

Revision grammar (``vfs.repo.history.resolve``)::

    rev   := base step*
    step  := "~" N?     N versions back along first parents (no N: one)
           | "^" N?     the Nth parent (no N: the first; ^0: the version itself)
    base  := "HEAD" | "v" N | branch | remote/branch | tag | hex id prefix (>= 4 characters)

``HEAD~2``, ``main^``, ``v7^2`` (a merge's second parent) and ``HEAD^^~3`` read as git
reads them; neither ``~`` nor ``^`` can be part of a ref name.

``vN`` counts along the first-parent chain of the current branch (or, when HEAD is
detached, of the branch it was detached from): ``v1`` is that chain's first version.

A name is tried in this fixed order, the first that exists wins: ``HEAD``, ``vN``,
a local branch, a remote-tracking branch (``origin/main``), a tag, an id prefix. A
tag therefore never shadows a branch or a remote's branch, and it cannot shadow
``HEAD``, ``vN`` or an id either: ``vfs.repo.refs.check_ref_name`` refuses such names for
branches and tags alike, whether made here or fetched from a remote.

Trees are walked with explicit stacks, never by recursion, so a tree of any depth
can be listed, shown, diffed and checked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Container, Iterator, Sequence
from contextlib import suppress
from functools import lru_cache
from pathlib import Path
from typing import NamedTuple, TypeVar

from vfs._os.gc_pause import paused_gc
from vfs.errors import DvfsError, FormatError, RevisionNotFound, UsageError
from vfs.model.codec import Entry, Kind, Tree, decode_tree
from vfs.model.ids import is_hex_prefix
from vfs.model.version_codec import Version, decode_version
from vfs.quoting import quote_given
from vfs.repo.numbers import REWRITE_AFTER, Numbers
from vfs.repo.refs import Head, Refs, full_ref, is_ref_like
from vfs.store.objects import ObjectStore, ObjKind

CLOSE_VERSIONS = 1000  # newest vN names offered as close to a mistyped revision
_REV_RE = re.compile(r"(?P<base>[^~^]+)(?P<steps>(?:[~^][0-9]*)*)")
_STEP_RE = re.compile(r"([~^])([0-9]*)")
_VN_RE = re.compile(r"v([0-9]+)")  # whole names only (fullmatch)
M = TypeVar("M")
T = TypeVar("T")


NO_VERSIONS = "no versions yet: run `dvfs add PATH` and `dvfs commit -m MSG`"


class History:
    """Read access to versions and trees, with a small decoded-record cache."""

    def __init__(self, store: ObjectStore, refs: Refs, derived: Path | None = None) -> None:
        self.store = store
        self.refs = refs
        self.derived = derived  # where caches of derived data may go (vfs.ops.changed)
        self.version = lru_cache(maxsize=4096)(self._load_version)
        self.tree = lru_cache(maxsize=4096)(self.load_tree)
        self._memos: dict[str, object] = {}
        self._warned: set[str] = set()  # names :meth:`_hidden_tag` warned of

    def memo(self, name: str, make: Callable[[History], M]) -> M:
        """The memory of derived data called ``name`` that lives as long as this history
        (``make(self)`` on first use): what ``vfs.ops.rows`` and ``vfs.ops.changed`` keep."""
        got = self._memos.get(name)
        if got is None:
            got = self._memos.setdefault(name, make(self))  # a lost race: the winner's
        return got  # type: ignore[return-value]

    def _load_version(self, oid: bytes) -> Version:
        try:
            return decode_version(self.store.get(oid))
        except FormatError as exc:
            raise FormatError(f"version {oid.hex()[:12]}: {exc}") from None

    def load_tree(self, oid: bytes) -> Tree:
        """A tree read and decoded, outside the cache of :attr:`tree`."""
        try:
            return decode_tree(self.store.get(oid))
        except FormatError as exc:
            raise FormatError(f"tree {oid.hex()[:12]}: {exc}") from None

    # HEAD and branches ------------------------------------------------------

    def head_id(self) -> bytes | None:
        """The version HEAD names, or None on a branch with no versions yet."""
        return self.refs.head_id()

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

    def _numbered(self) -> tuple[bytes | None, str]:
        """The version that ``vN`` counts back from, and what to call its chain.

        That is the branch's tip, even with HEAD detached on the branch's chain; a HEAD
        detached off it counts along its own chain.
        """
        h = self.refs.head()
        tip = self.refs.get(f"refs/heads/{h.branch}")
        if h.detached is not None and not self.on_chain(tip, h.detached):
            return h.detached, "the detached HEAD"
        return tip, h.branch

    def _vn(self, n: int) -> bytes | None:
        """The version ``vN`` names: down the first-parent chain from the branch's tip,
        only until the kept chain is met (:mod:`vfs.repo.numbers`)."""
        tip = self._numbered()[0]
        if tip is None or n < 1:
            return None
        kept = self._kept_numbers()
        walked: list[bytes] = []  # ids passed on the way down, newest first
        found: bytes | None = None
        met = 0  # where the walk met the kept chain (0: not yet; -1: it did not check)
        for oid, v in self.chain(tip):
            if v.number == n:
                found = oid
            elif v.number < n:
                return None
            elif kept is not None and not met and kept.get(v.number) == oid:
                got = kept.get(n)
                if got is not None and self._numbered_as(got, n):
                    found, met = got, v.number
                else:
                    met = -1  # (it does not check: walked as without it, then kept anew)
            if found is not None:
                if kept is not None and len(walked) >= REWRITE_AFTER:
                    low, low_id = (met, None) if met > 0 else (v.number, found)
                    self._keep_chain(kept, walked, low, low_id)
                return found
            walked.append(oid)
        return None

    def _kept_numbers(self) -> Numbers | None:
        if self.derived is None:
            return None
        got = self._memos.get("numbers")
        if got is None:
            got = self._memos.setdefault("numbers", Numbers(self.derived))
        return got  # type: ignore[return-value]

    def _numbered_as(self, oid: bytes, n: int) -> bool:
        """True if ``oid`` is a stored version numbered ``n`` (a kept id is checked)."""
        try:
            return self.version(oid).number == n
        except DvfsError:
            return False

    def _keep_chain(
        self, kept: Numbers, walked: list[bytes], low: int, low_id: bytes | None
    ) -> None:
        """Keep the chain the walk went down: ``walked`` (newest first) ends just above
        ``low``, which is where it met the kept chain (``low_id`` None), or the version
        ``low_id`` it stopped at, the kept chain not met: then the walk goes on to v1."""
        if low_id is None:
            below = kept.below(low)
        else:
            rest = [oid for oid, _ in self.chain(low_id)]
            below = rest[::-1]
            if len(below) != low:
                return
        if below is None:
            return
        kept.save(below + walked[::-1])

    def on_chain(self, tip: bytes | None, oid: bytes) -> bool:
        """True if ``oid`` is on the first-parent chain ending at ``tip``."""
        if tip is None:
            return False
        n = self.version(oid).number
        kept = self._kept_numbers()
        for cur, v in self.chain(tip):
            if v.number <= n:
                return cur == oid
            if kept is not None and kept.get(v.number) == cur:  # the kept chain, met
                got = kept.get(n)
                if got is not None and self._numbered_as(got, n):
                    return got == oid
                kept = None  # (it does not check: walked as without it)
        return False

    def ahead_behind(self, ours: bytes, theirs: bytes) -> tuple[int, int]:
        """(versions on ``ours``'s first-parent chain that ``theirs``'s lacks, and back).

        The chains are walked down by version number to where they meet, so the cost
        follows how far apart they are, not how long they are (two chains that never
        meet count whole). Chains that seem to diverge are checked through every
        parent: after a merge of the other side, the count is of the versions only
        one side has, so a merged branch is ahead, not diverged.
        """
        a: bytes | None = ours
        b: bytes | None = theirs
        na, nb = self.version(ours).number, self.version(theirs).number
        ahead = behind = 0
        while a != b:
            if na >= nb and a is not None:
                parents = self.version(a).parents
                a = parents[0] if parents else None
                na = self.version(a).number if a is not None else 0
                ahead += 1
            elif b is not None:
                parents = self.version(b).parents
                b = parents[0] if parents else None
                nb = self.version(b).number if b is not None else 0
                behind += 1
        if ahead and behind and (self.is_ancestor(theirs, ours) or self.is_ancestor(ours, theirs)):
            # One side merged the other: count every version only one side has.
            mine, other = self.ancestors(ours), self.ancestors(theirs)
            return len(mine - other), len(other - mine)
        return ahead, behind

    def ancestors(self, tip: bytes) -> set[bytes]:
        """``tip`` and every version below it, following every parent (merges included)."""
        seen = {tip}
        stack = [tip]
        while stack:
            for p in self.version(stack.pop()).parents:
                if p not in seen:
                    seen.add(p)
                    stack.append(p)
        return seen

    def is_ancestor(self, old: bytes, new: bytes) -> bool:
        """True if ``old`` is ``new`` or below it through any parent.

        False if ``old`` is not stored here (a remote's tip this repository never
        fetched cannot be below a local version). The first-parent chain is tried
        first (counting down by number, so it costs the distance); only then is
        everything below ``new`` walked.
        """
        if not self.store.has(old):
            return False
        if old == new or self.on_chain(new, old):
            return True
        return old in self.ancestors(new)

    def merge_base(self, ours: bytes, theirs: bytes) -> bytes | None:
        """The nearest version both are built on, following every parent; None if none.

        Of the common ancestors none of whose descendants is also common, the newest
        (then the smallest id) is taken, so the answer does not depend on the walk.
        """
        bases = self.merge_bases(ours, theirs)
        return bases[0] if bases else None

    def merge_bases(self, ours: bytes, theirs: bytes) -> list[bytes]:
        """The common ancestors of two versions none of whose descendants is also common,
        newest first (then by id): one, but for a criss-cross history (each side merged
        the other), where there are several; empty if none."""
        mine = self.ancestors(ours)
        if theirs in mine:
            return [theirs]
        common: set[bytes] = set()
        seen = {theirs}
        stack = [theirs]
        while stack:
            for p in self.version(stack.pop()).parents:
                if p in seen:
                    continue
                seen.add(p)
                if p in mine:
                    common.add(p)  # not walked further: what is below it is common too
                else:
                    stack.append(p)
        if not common:
            return []
        below: set[bytes] = set()
        for c in common:
            below |= self.ancestors(c) - {c}
        best = [c for c in common if c not in below] or sorted(common)
        return sorted(best, key=lambda c: (self.version(c).time_ns, [-b for b in c]), reverse=True)

    def _by_prefix(self, prefix: str) -> bytes | None:
        """The version whose id starts with ``prefix``, among the packs other processes
        wrote since this store last looked too (a long-lived reader, ``vfs.Repo``, given
        the id of a version committed since); None if there is none."""

        def versions() -> list[bytes]:
            found = self.store.with_prefix(prefix)
            return [oid for oid in found if self.store.kind(oid) == ObjKind.VERSION]

        hits = versions()
        if not hits:
            self.store.refresh()  # (one stat of the packs' folder when none was written)
            hits = versions()
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
                raise RevisionNotFound("HEAD", hint=NO_VERSIONS)
            return oid
        m = _VN_RE.fullmatch(name)
        if m:
            return self._vn(int(m.group(1)))
        full = full_ref(name)
        if full is not None:  # refs/heads/main: that ref alone, as git reads it
            oid = self.refs.get(full)
            if oid is not None and full.startswith("refs/remotes/"):
                self._refuse_moved(full.removeprefix("refs/remotes/"))
            return oid
        if is_ref_like(name):
            for ref in (f"refs/heads/{name}", f"refs/remotes/{name}", f"refs/tags/{name}"):
                oid = self.refs.get(ref)
                if oid is not None:
                    if ref.startswith("refs/heads/"):
                        self._hidden_tag(name, oid)
                    elif ref.startswith("refs/remotes/"):
                        self._refuse_moved(name)
                    return oid
        if is_hex_prefix(name.lower()):
            return self._by_prefix(name.lower())
        return None

    def _refuse_moved(self, copy: str) -> None:
        """RevisionNotFound if ``copy`` (``origin/main``) came from another place than
        where the settings now put its remote (a URL edited by hand since the last
        fetch): it is not the new place's branch (``vfs.repo.remote_copies``)."""
        from vfs.repo import remote_copies  # (the backends' URL forms: 14 ms of imports)

        gone = remote_copies.moved(self.refs.dir, copy)
        if gone is not None:
            raise RevisionNotFound(copy, hint=gone.hint(copy))

    def _hidden_tag(self, name: str, oid: bytes) -> None:
        """Warn (once) that branch ``name``, at ``oid``, hides a tag of that name at
        another version: made before a tag and a branch could no longer share a name
        (``vfs.repo.refs.twin_refused``), the branch is what ``name`` reads."""
        if name in self._warned:
            return
        with suppress(FormatError):  # (a damaged tag: fsck names it)
            tag = self.refs.get(f"refs/tags/{name}")
            if tag is not None and tag != oid:
                self._warned.add(name)
                self.refs.warn(
                    f"{name} names both a branch and a tag: the branch's version is read; "
                    f"`dvfs tag {name}-tag {tag.hex()[:12]}` and `dvfs tag -d {name}` rename "
                    "the tag"
                )

    def resolve(self, rev: str) -> bytes:
        """The version id a revision names; RevisionNotFound with close names if none."""
        m = _REV_RE.fullmatch(rev)  # as typed: " v1" is no name of v1 (nor is "v1\n")
        if not m:
            raise RevisionNotFound(rev, self._close(rev))
        base = m.group("base")
        oid = self._base(base)
        if oid is None:
            if _VN_RE.fullmatch(base):
                tip, chain = self._numbered()
                if tip is None:
                    raise RevisionNotFound(rev, hint=NO_VERSIONS)
                last = self.version(tip).number
                has = "only v1" if last == 1 else f"v1 to v{last}"
                hint = f"{chain} has {has}"
                raise RevisionNotFound(rev, [f"v{last}"], hint=hint)  # the newest is closest
            raise RevisionNotFound(rev, self._close(base))
        at = base  # the revision walked so far, for the messages
        for op, digits in _STEP_RE.findall(m.group("steps")):
            figures = digits.lstrip("0")
            # more than nine figures: past any history (and int() refuses 5,000 of them)
            n = 1 if not digits else int(figures or "0") if len(figures) <= 9 else 10**9
            if op == "~":
                start = self.version(oid).number
                for _ in range(n):
                    v = self.version(oid)
                    if not v.parents:
                        hint = f"{at} is v{start} and v1 has no parent: go back at most {start - 1}"
                        if start == 1:
                            hint = f"{at} is v1, which has no parent"
                        raise RevisionNotFound(rev, hint=hint)
                    oid = v.parents[0]
            elif n:
                parents = self.version(oid).parents
                if len(parents) < n:
                    has = {0: "has no parent", 1: "has one parent"}.get(
                        len(parents), f"has {len(parents)} parents"
                    )
                    label = self.label(oid)
                    hint = f"{label} {has}" if at == label else f"{at} is {label}, which {has}"
                    raise RevisionNotFound(rev, hint=hint)
                oid = parents[n - 1]
            at += op + digits
        return oid

    def _close(self, name: str) -> list[str]:
        names = ["HEAD", *self.refs.tags(), *self.refs.branches()]
        tip = self.head_id()
        if tip is not None:
            last = self.version(tip).number
            names += [f"v{i}" for i in range(max(1, last - CLOSE_VERSIONS), last + 1)]
        import difflib  # only for this error message

        return difflib.get_close_matches(name, names, n=4, cutoff=0.5)

    def label(self, oid: bytes) -> str:
        """``vN`` of a version (its number on its first-parent chain)."""
        return f"v{self.version(oid).number}"

    def revision(self, oid: bytes) -> str:
        """A revision naming the version ``oid`` here: ``vN`` where ``vN`` reads as it
        (on the chain ``vN`` counts along), else the first 10 hex digits of its id: a
        version of another branch has a number of its own chain, which here names
        another version."""
        label = self.label(oid)
        with suppress(DvfsError):
            if self.resolve(label) == oid:
                return label
        return oid.hex()[:10]

    # trees ---------------------------------------------------------------------

    def walk(
        self, tree_id: bytes, prefix: bytes = b"", empty: list[bytes] | None = None
    ) -> Iterator[tuple[bytes, Entry]]:
        """Every file and link below a tree, as (path, entry), depth first in name order.

        The paths of empty directories below it (a snapshot records them) are
        appended to ``empty`` if given. A stack of the directories being listed takes
        the place of recursion, so depth costs memory, not Python frames. The records
        of a directory's subdirectories are asked of the disk together before the
        first is read (:meth:`ObjectStore.will_need`).
        """
        entries = self.tree(tree_id).entries
        if empty is not None and prefix and not entries:
            empty.append(prefix)
        folder = Kind.DIR
        self._read_ahead(entries)
        stack = [(prefix, iter(entries))]
        while stack:
            base, rest = stack[-1]
            for e in rest:
                path = base + b"/" + e.name if base else e.name
                if e.kind == folder:
                    below = self.tree(e.subtree).entries
                    if empty is not None and not below:
                        empty.append(path)
                    self._read_ahead(below)
                    stack.append((path, iter(below)))
                    break
                yield path, e
            else:
                stack.pop()

    def _read_ahead(self, entries: Sequence[Entry]) -> None:
        """Have the records of the subdirectories among ``entries`` read in, if several."""
        folder = Kind.DIR
        subtrees = [e.subtree for e in entries if e.kind == folder]
        if len(subtrees) > 1:
            self.store.will_need(subtrees)

    def extent(self, tree_id: bytes) -> Extent:
        """What checking out a tree would make (see :class:`Extent`), without walking it.

        Each distinct subtree is read once and its totals reused wherever it appears,
        so the cost follows the number of distinct directories, however often they
        repeat: this is how a tree built to expand enormously is measured safely.
        """
        done: dict[bytes, Extent] = {}
        chunks: dict[bytes, int] = {}
        entries_seen = 0
        folder = Kind.DIR

        def finish(tid: bytes, entries: Sequence[Entry]) -> None:
            nonlocal entries_seen
            files = size = dirs = depth = 0
            for e in entries:
                if e.kind == folder:
                    sub = done[e.subtree]
                    files += sub.files
                    size += sub.bytes
                    dirs += sub.dirs + 1
                    depth = max(depth, sub.depth + 1)
                else:
                    files += 1
                    size += e.size
                    for c in e.chunks:
                        chunks[c.oid] = c.size
            entries_seen += len(entries)
            done[tid] = Extent(files, size, dirs, depth, 0, 0)

        bottom_up(
            tree_id, lambda t: self.tree(t).entries,
            lambda entries: [e.subtree for e in entries if e.kind == folder], done, finish,
        )  # fmt: skip
        top = done[tree_id]
        return Extent(top.files, top.bytes, top.dirs, top.depth, entries_seen, sum(chunks.values()))

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


class Extent(NamedTuple):
    """The size of a tree as a checkout would make it, and of what it is made of.

    ``files`` counts files and links at every path, ``bytes`` their sizes, ``dirs``
    the directories below the tree, ``depth`` the levels of directories below it.
    ``distinct_entries`` counts the entries of the distinct directory records, and
    ``distinct_bytes`` the bytes of the distinct chunks: what a store holds for it.
    """

    files: int
    bytes: int
    dirs: int
    depth: int
    distinct_entries: int
    distinct_bytes: int


class Shape(NamedTuple):
    """What one tree holds itself: its files and links, their bytes, its subtrees (and
    the names and sizes its entries give them)."""

    files: int
    size: int
    subtrees: list[bytes]
    folders: list[tuple[bytes, int]]  # (name, size the entry claims), as ``subtrees``

    @classmethod
    def of(cls, tree: Tree) -> Shape:
        files = size = 0
        subtrees, folders = [], []
        for e in tree.entries:
            if e.kind == Kind.DIR:
                subtrees.append(e.subtree)
                folders.append((e.name, e.size))
            else:
                files += 1
                size += e.size
        return cls(files, size, subtrees, folders)

    def wrong_folder(self, done: dict[bytes, tuple[int, int]]) -> tuple[bytes, int, int] | None:
        """The first folder whose entry claims another size than the bytes below it
        (counted in ``done``: :func:`totals`), as (name, claimed, held); None if none."""
        for sub, (name, claimed) in zip(self.subtrees, self.folders, strict=True):
            held = done[sub][1]
            if held != claimed:
                return name, claimed, held
        return None


def bottom_up(
    top: bytes, read: Callable[[bytes], T], subtrees: Callable[[T], Sequence[bytes]],
    done: Container[bytes], finish: Callable[[bytes, T], None],
) -> None:  # fmt: skip
    """Visit tree ``top`` and each distinct tree below it once, every subtree before the
    tree holding it, without recursion (a forged tree may nest a million deep): ``read``
    gives what a tree holds, ``subtrees`` its subtrees' ids, and ``finish`` records the
    tree in ``done`` once all of them are there. FormatError if a tree holds itself."""
    opened: set[bytes] = set()
    stack = [top]
    while stack:
        tid = stack[-1]
        if tid in done:
            stack.pop()
            continue
        got = read(tid)
        missing = [t for t in subtrees(got) if t not in done]
        if missing:
            if tid in opened:
                raise FormatError(f"tree {tid.hex()[:12]} contains itself")
            opened.add(tid)
            stack += missing
            continue
        finish(tid, got)
        stack.pop()


def totals(
    top: bytes, shape: Callable[[bytes], Shape], done: dict[bytes, tuple[int, int]]
) -> tuple[int, int]:
    """(files, bytes) below tree ``top`` as a version records them: the files and links
    at every path, and their sizes. Each distinct tree's ``shape`` is asked once and
    its totals kept in ``done`` (shared between the versions a caller checks), without
    recursion; FormatError if a tree holds itself."""

    def finish(tid: bytes, got: Shape) -> None:
        done[tid] = (
            got.files + sum(done[t][0] for t in got.subtrees),
            got.size + sum(done[t][1] for t in got.subtrees),
        )

    bottom_up(top, shape, lambda got: got.subtrees, done, finish)
    return done[top]


class RevPath(NamedTuple):
    """A ``REV:PATH`` argument split in two (PATH may be empty)."""

    rev: str
    path: bytes
    directory: bool = False  # PATH was written as a directory's (``d/a/``, ``d/a/.``)


def names_directory(path: str) -> bool:
    """True if ``path`` ends with ``/`` (or ``/.``) after a name: written as a
    directory's path, which a file's is not (as the kernel has it)."""
    parts = path.split("/")
    return len(parts) > 1 and parts[-1] in ("", ".") and any(p not in ("", ".") for p in parts)


def split_rev_path(arg: str) -> RevPath:
    """Split ``REV:PATH``; a bare ``REV`` means the root."""
    rev, _, path = arg.partition(":")
    clean = path.strip("/")
    parts = [p for p in clean.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UsageError(f"paths in {quote_given(arg)} cannot contain '..'")
    return RevPath(rev or "HEAD", os.fsencode("/".join(parts)), names_directory(path))
