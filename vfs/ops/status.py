"""How the working tree differs from the index, and the index from HEAD: ``status``.

Only files whose stat changed are hashed (:func:`work_state`); checkout, restore, rm
and commit compare through the same functions, and through :func:`base_files` (the
version the working tree was last made equal to, which is HEAD unless the branch moved
past it: :func:`moved_past`).

The ignore rules, the hasher and the comparison of trees are imported when first
needed: a clean ``status`` of a tree whose index was made equal to HEAD uses none of
them, and importing them was a few per cent of its time.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import stat as statmod
from itertools import chain
from typing import TYPE_CHECKING

from vfs._os.beneath import Walker
from vfs._os.gc_pause import paused_gc
from vfs.errors import DvfsError, UsageError
from vfs.ops.behind import may_be_behind, merge_in_progress, past_base
from vfs.ops.behind import moved_past as moved_past
from vfs.ops.behind import quiet as quiet
from vfs.repo.repository import Repository
from vfs.repo.stage import INDEX_FORMAT, Index, Staged
from vfs.worktree.pools import Workers
from vfs.worktree.scan import (
    Found,
    Warn,
    lstat_or_none,
    odd_warning,
    special_kind,
)
from vfs.worktree.status import triage_tree

if TYPE_CHECKING:
    from collections.abc import Container

    from vfs.model.codec import Entry
    from vfs.ops import merging
    from vfs.ops.diff import Change
    from vfs.repo.cut_short import CutShort
    from vfs.repo.gitlink import LockPointer
    from vfs.repo.history import History
    from vfs.worktree.ignore import Ignores

    Flat = tuple[bytes, dict[bytes, Entry]]  # a tree id and its files (History.flatten)

LOCK_FILE = "dvfs.lock"  # (vfs.repo.gitlink's: that module is imported only where one is)
CUT_SHORT = "checking-out"  # (vfs.repo.cut_short's record: imported only where there is one)


class _Record:
    """Fields set from the constructor's arguments, compared and shown as a dataclass's
    are. (A plain class: making the two dataclasses of this module was 1 ms of every
    ``status``, generating and compiling their methods at import.)"""

    __slots__: tuple[str, ...] = ()
    _hidden: tuple[str, ...] = ()  # fields left out of ``==`` and ``repr``

    def _shown(self) -> list[tuple[str, object]]:
        return [(k, getattr(self, k)) for k in self.__slots__ if k not in self._hidden]

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, _Record)
        return self._shown() == other._shown()

    __hash__ = None  # type: ignore[assignment]  # (mutable, as a dataclass with eq)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._shown())
        return f"{self.__class__.__qualname__}({fields})"


class WorkState(_Record):
    """How the working tree differs from the index."""

    __slots__ = (
        "current", "deleted", "modified", "not_checked_out", "refreshed", "special",
        "unreadable", "untracked",
    )  # fmt: skip

    def __init__(
        self,
        current: dict[bytes, Staged] | None = None,  # modified, as on disk
        modified: list[bytes] | None = None,
        deleted: list[bytes] | None = None,
        not_checked_out: list[bytes] | None = None,  # absent by design (vfs.repo.stage)
        untracked: list[bytes] | None = None,
        unreadable: list[bytes] | None = None,  # stat changed, content unknown
        refreshed: int = 0,  # entries whose stat changed but content did not
        # Deleted (or not checked out) paths where a FIFO, socket or device is now, and
        # what it is: never opened, never stored (``add`` stages the removal); checkout
        # replaces one only with --force.
        special: dict[bytes, str] | None = None,
    ) -> None:
        self.current: dict[bytes, Staged] = {} if current is None else current
        self.modified: list[bytes] = [] if modified is None else modified
        self.deleted: list[bytes] = [] if deleted is None else deleted
        self.not_checked_out: list[bytes] = [] if not_checked_out is None else not_checked_out
        self.untracked: list[bytes] = [] if untracked is None else untracked
        self.unreadable: list[bytes] = [] if unreadable is None else unreadable
        self.refreshed = refreshed
        self.special: dict[bytes, str] = {} if special is None else special


def tracked_tops(index: Index) -> tuple[set[bytes], list[bytes]]:
    """Top-level directories holding tracked paths, and tracked paths at the root.

    Over the sorted paths, each directory's paths are skipped by bisection: looking
    at each of 20,000 paths was a twentieth of a clean ``status``.
    """
    keys = index.sorted_paths()
    dirs: set[bytes] = set()
    files: list[bytes] = []
    i, n = 0, len(keys)
    while i < n:
        p = keys[i]
        cut = p.find(b"/")
        if cut < 0:
            files.append(p)
            i += 1
            continue
        top = p[:cut]
        dirs.add(top)
        i = bisect.bisect_left(keys, top + b"0", i + 1)  # "0" sorts right after "/"
    return dirs, files


def work_state(
    repo: Repository,
    index: Index,
    workers: Workers,
    warn: Warn = quiet,
    valid: Container[bytes] = (),
) -> WorkState:
    """Compare the working tree with the index, hashing only files whose stat changed.

    ``WorkState.current`` holds the files that had to be hashed; a tracked path that is
    in none of ``current``, ``deleted``, ``not_checked_out`` and ``unreadable`` is
    unchanged. A path marked not checked out (``vfs.repo.stage.NOT_CHECKED_OUT``) that is
    missing is listed in ``not_checked_out``, never as deleted; a file found there is
    compared like any other. Files whose
    stat changed but content did not get their index entry refreshed in ``index`` (in
    memory; ``WorkState.refreshed`` counts them). A file that cannot be read (or kept
    changing while it was) gets one warning and is listed in ``unreadable``; the
    others are compared all the same. ``valid``: paths known to be ones a tree may
    hold (a version's, whose names were checked when its trees were decoded), which
    are not checked again where found deleted (a checkout of 20,000 files moved away
    spent 55 ms checking each name of each).
    """
    st = WorkState()
    dirs, root_files = tracked_tops(index)
    index.check_paths(chain(dirs, root_files))  # looked up here: the index's own names
    tops = [top for top in sorted(dirs) if lstat_or_none(repo.root, top) is not None]
    at_root = []
    # Top-level paths unstaged with their files kept (``Index.untracked_tops``): their
    # files are untracked, and listed as such even where no tracked file is.
    named = sorted(index.untracked_tops - dirs - set(root_files)) if index.untracked_tops else []
    index.check_paths(named)
    for p in named:
        s = lstat_or_none(repo.root, p)
        if s is not None and statmod.S_ISDIR(s.st_mode):
            bisect.insort(tops, p)
        elif s is not None and special_kind(s.st_mode) is None:
            at_root.append(Found(p, s))
    for p in root_files:
        s = lstat_or_none(repo.root, p)
        # A directory where a file or link was tracked: that one is deleted (the
        # directory is new, and not listed until `add` names it), not read as a file.
        if s is not None and p not in dirs and not statmod.S_ISDIR(s.st_mode):
            if special_kind(s.st_mode) is None:
                at_root.append(Found(p, s))
            else:  # (as below the root: never opened, and deleted as far as dvfs can tell)
                warn(odd_warning(p))
    skipped: list[bytes] = []  # directories that cannot be read
    with paused_gc(), contextlib.ExitStack() as opened:  # (paused: a tuple and a stat per file)
        rules: list[Ignores] = []

        def ignored_name(p: bytes) -> bool:
            """Whether a name dvfs never stores is ignored (passed over without a
            warning, as ``add`` leaves it out); the rules are read only if one is met."""
            if not rules:
                from vfs.worktree.ignore import Ignores  # (see the module doc)

                rules.append(
                    opened.enter_context(Ignores(repo.root, lambda: sorted(index.paths()), warn))
                )
            s = lstat_or_none(repo.root, p)
            return rules[0].ignored(p, is_dir=s is not None and statmod.S_ISDIR(s.st_mode))

        st.untracked, to_hash, st.deleted = triage_tree(
            repo.root, tops, at_root, index, warn, skipped, ignored_name
        )
    if st.untracked:  # (a clean tree reads no ignore file and matches nothing)
        from vfs.worktree.ignore import Ignores  # (nor imports it: see the module doc)

        with Ignores(repo.root, lambda: sorted(index.paths()), warn) as ign:
            st.untracked = ign.keep(st.untracked)
    # (the other paths were found in the working tree)
    index.check_paths([p for p in st.deleted if p not in valid] if valid else st.deleted)
    if st.deleted and (absent := set(index.absent())):
        st.not_checked_out = [p for p in st.deleted if p in absent]
        st.deleted = [p for p in st.deleted if p not in absent]
    if skipped:  # what is tracked below them is unknown, not deleted
        below = tuple(d + b"/" for d in skipped)
        st.unreadable = [p for p in st.deleted if p.startswith(below) or p in skipped]
        st.deleted = [p for p in st.deleted if not (p.startswith(below) or p in skipped)]
    if st.deleted or st.not_checked_out:
        # (a directory found missing is not looked into again for each path below it:
        # a checkout of 20,000 files moved away spent 0.1 CPU-s failing to open it)
        gone, looked = b"\0", b""
        with Walker(repo.root) as walker:
            for p in chain(st.deleted, st.not_checked_out):
                if p.startswith(gone):
                    continue
                found = walker.lstat(p)
                if found is None:
                    parent = p.rpartition(b"/")[0]
                    if parent and parent != looked:
                        looked = parent
                        if walker.lstat(parent) is None:
                            gone = parent + b"/"
                elif (kind := special_kind(found.st_mode)) is not None:
                    st.special[p] = kind
    failed: dict[bytes, DvfsError] = {}
    if to_hash:
        from vfs.worktree.ingest import Hasher  # (a clean tree hashes nothing)

        hashed = Hasher(repo.root, repo.chunker, None, workers).stage_many(to_hash, failed)
    else:
        hashed = iter(())
    for rel, staged in hashed:
        old = index.get(rel)
        if old is not None and staged.same_on_disk(old):
            index.put(rel, staged._replace(mode=old.mode))
            st.refreshed += 1
        else:
            st.current[rel] = staged
            st.modified.append(rel)
    for rel in sorted(failed):  # (all tracked: untracked files are not read)
        warn(f"{failed[rel]} (its state is unknown)")
        st.unreadable.append(rel)
    st.unreadable.sort()
    st.modified.sort()
    st.untracked.sort()
    return st


def head_files(hist: History, known: Flat | None = None) -> dict[bytes, Entry]:
    """Every path of the version HEAD names (empty before the first commit).

    ``known``: a tree id and its files, flattened already; used if HEAD's tree is it
    (a checkout of HEAD need not walk the same 20,000 entries twice).
    """
    oid = hist.head_id()
    if oid is None:
        return {}
    tree = hist.version(oid).tree
    return known[1] if known is not None and known[0] == tree else hist.flatten(tree)


def base_files(hist: History, index: Index, known: Flat | None = None) -> dict[bytes, Entry]:
    """Every path of the version the working tree was last made equal to.

    That is HEAD unless the branch moved past the working tree (``Index.base``).
    ``known`` as for :func:`head_files`.
    """
    behind = past_base(hist, index)
    return head_files(hist, known) if behind is None else behind[1]


class Status(_Record):
    """What ``dvfs status`` reports."""

    __slots__ = (
        "behind", "branch", "cut_short", "detached", "head", "index", "lock", "merge",
        "renamed", "staged", "work",
    )  # fmt: skip
    _hidden = ("index",)

    def __init__(
        self,
        branch: str,
        detached: str | None,
        head: str | None,
        staged: list[Change],
        work: WorkState,
        behind: str | None = None,  # the working tree's version, if the branch moved past it
        merge: merging.MergeState | None = None,  # a merge in progress (vfs.ops.merging)
        renamed: merging.Renames | None = None,  # its conflicts' (merging.renamed)
        index: Index | None = None,  # as compared
        lock: LockPointer | None = None,  # what dvfs.lock names, if not what the tree holds
        cut_short: CutShort | None = None,  # a whole checkout left unfinished
    ) -> None:
        self.branch = branch
        self.detached = detached
        self.head = head
        self.staged = staged
        self.work = work
        self.behind = behind
        self.merge = merge
        self.renamed: merging.Renames = {} if renamed is None else renamed
        self.index = index
        self.lock = lock
        self.cut_short = cut_short


def status(repo: Repository, workers: Workers, warn: Warn = quiet) -> Status:
    """Staged changes (index vs HEAD) and unstaged ones (working tree vs index).

    The garbage collector is paused throughout: the index's rows are tens of thousands
    of tuples, none in a cycle, and each collection while they live walks them all
    (a tenth of the CPU time of a clean ``status`` of 20,000 files).
    """
    with paused_gc():
        return _status(repo, workers, warn)


def label(repo: Repository, index: Index, oid: bytes) -> str:
    """``vN`` of version ``oid``: noted in the index if it is the index's head or base
    (``Index.numbers``), else read from the store."""
    number = index.number(oid)
    return f"v{number}" if number is not None else repo.history.label(oid)


def _status(repo: Repository, workers: Workers, warn: Warn) -> Status:
    """:func:`status`. A clean working tree whose index was made equal to HEAD, and
    knows its number, is told from the refs and the index alone: no version is read
    and the history and store modules are not even imported."""
    index = repo.index()
    head = repo.refs.head()
    head_id = repo.refs.head_id(head)
    behind = moved_past(repo.history, index) if may_be_behind(head, head_id, index) else None
    if head_id is not None and index.head == head_id:
        staged: list[Change] = []  # the index was made equal to HEAD and not staged since
    else:
        from vfs.ops.diff import diff_maps  # (nothing staged: nothing to compare)

        staged = diff_maps(base_files(repo.history, index), index.entries)
    work = work_state(repo, index, workers, warn)
    if staged:
        _untracked_unstaged(repo, index, staged, work, warn)
    if work.refreshed or (index.version != INDEX_FORMAT and index.on_disk and not work.unreadable):
        try:  # (an index of an older format is rewritten: the next status reads it faster)
            with repo.locked(wait=0):
                index.save()
        except Exception:  # refreshing is an optimisation; never fail status for it
            pass
    merge = merge_in_progress(repo)
    return Status(
        branch=head.branch,
        detached=None if head.detached is None else label(repo, index, head.detached),
        head=None if head_id is None else label(repo, index, head_id),
        staged=staged,
        work=work,
        behind=behind,
        merge=merge,
        renamed=_renamed(repo, merge) if merge is not None else {},
        index=index,
        lock=lock_apart(repo, index.base or head_id, head_id if behind else None),
        cut_short=_cut_short(repo, index),
    )


def _cut_short(repo: Repository, index: Index) -> CutShort | None:
    """The record of a checkout left unfinished (``vfs.repo.cut_short.read``), if there
    is one: where there is none, that module (a dataclass made at import, 0.5 ms) is
    not imported."""
    if not os.path.lexists(repo.dir / CUT_SHORT):
        return None
    from vfs.repo import cut_short

    return cut_short.read(repo.dir, index.base)


def _untracked_unstaged(
    repo: Repository, index: Index, staged: list[Change], work: WorkState, warn: Warn
) -> None:
    """Add to ``work.untracked`` the files staged for removal that are still on disk.

    ``dvfs rm --cached`` (or a rename staged from a copy) leaves the old file in place;
    :func:`work_state` looks for untracked files only in the directories the index
    names, so a whole directory or a top-level file staged for removal would otherwise
    be reported as "removed" and nothing more, as if it were gone from the disk.
    """
    gone = [c.path for c in staged if c.status == "removed"]
    gone += [c.old_path for c in staged if c.status == "renamed" and c.old_path is not None]
    gone = [p for p in gone if index.get(p) is None]
    if not gone:
        return
    seen = set(work.untracked)
    found: list[bytes] = []
    with Walker(repo.root) as walker:
        for p in gone:
            s = walker.lstat(p)
            if (
                s is not None
                and p not in seen
                and (statmod.S_ISREG(s.st_mode) or statmod.S_ISLNK(s.st_mode))
            ):
                found.append(p)
    if found:
        from vfs.worktree.ignore import Ignores

        with Ignores(repo.root, lambda: sorted(index.paths()), warn) as ign:
            work.untracked = sorted(work.untracked + ign.keep(found))


def _renamed(repo: Repository, m: merging.MergeState) -> merging.Renames:
    """``merging.renamed`` of the conflicts left (the three versions read only then)."""
    left = [c for c in m.conflicts if not c.resolved]
    if not left:
        return {}
    hist = repo.history
    try:
        base, ours, theirs = (
            hist.flatten(hist.version(v).tree) for v in (m.base, m.ours, m.theirs)
        )
    except DvfsError:  # (a version not readable: the conflicts are shown as they are)
        return {}
    from vfs.ops import merging

    return merging.renamed(left, base, ours, theirs)


def lock_apart(repo: Repository, holds: bytes | None, tip: bytes | None) -> LockPointer | None:
    """What ``dvfs.lock`` names, if that is not ``holds``, the version the working tree
    holds: git checked out a commit made with other data (``dvfs checkout --lock``
    brings it). None if there is no readable lock, or it names ``tip``, the branch
    head the working tree is behind (``dvfs switch`` brings that one).

    Where there is no ``dvfs.lock`` at all, :mod:`vfs.repo.gitlink` is not even imported.
    """
    if not os.path.lexists(repo.root / LOCK_FILE):
        return None
    from vfs.repo.gitlink import read_lock

    try:
        ptr = read_lock(repo.root)
    except (UsageError, OSError):  # none, or unreadable: `checkout --lock` says why
        return None
    return None if ptr.oid in (holds, tip) else ptr
