"""Staging and committing: ``add``, ``rm``, ``status`` and ``commit``.

A commit stores the trees of the staged index rows, then makes the version by the
commit protocol (``vfs.repo.record.record_version``: record stored, store flushed
and synced, the index rewritten to name the new version, the branch moved by
compare-and-swap, then the tag and ``dvfs.lock``), so that a crash at any moment
leaves either the old or the new version on the branch and nothing half-made
reachable. The chunks were stored earlier by ``add`` (the filesystem was flushed
before the index named them).
"""

from __future__ import annotations

import bisect
import contextlib
import os
import stat as statmod
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from vfs._os.beneath import Walker, rename_noreplace
from vfs._os.gc_pause import paused_gc
from vfs.errors import DvfsError, FileUnreadable, UncommittedChanges, UsageError
from vfs.model import params as version_params
from vfs.model.codec import (
    PERM_BITS,
    Entry,
    Kind,
    dir_row,
    encode_tree_rows,
)
from vfs.model.names import MAX_DEPTH, is_reserved, is_reserved_at_root, reserved_path
from vfs.ops import merging
from vfs.ops.diff import Change, diff_maps
from vfs.repo.gitlink import LOCK_FILE, ignore_paths
from vfs.repo.history import History
from vfs.repo.record import record_version, tag_free
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import Repository
from vfs.repo.stage import Index, Staged, as_row, check_path
from vfs.store.durable import flush_filesystem
from vfs.store.objects import ObjectStore, ObjKind
from vfs.worktree.ignore import Ignores
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.remove import remove_path
from vfs.worktree.scan import (
    SKIP_DIRS,
    Found,
    Warn,
    lstat_or_none,
    reserved_in,
    reserved_message,
    scan,
    show,
    too_deep_message,
)
from vfs.worktree.status import triage_tree


def quiet(_: str) -> None:
    """A warning sink that drops warnings."""


# ----------------------------------------------------------------------------- state


@dataclass
class WorkState:
    """How the working tree differs from the index."""

    current: dict[bytes, Staged] = field(default_factory=dict)  # modified, as on disk
    modified: list[bytes] = field(default_factory=list)
    deleted: list[bytes] = field(default_factory=list)
    not_checked_out: list[bytes] = field(default_factory=list)  # absent by design (vfs.repo.stage)
    untracked: list[bytes] = field(default_factory=list)
    unreadable: list[bytes] = field(default_factory=list)  # stat changed, content unknown
    refreshed: int = 0  # entries whose stat changed but content did not


def tracked_tops(index: Index) -> tuple[set[bytes], list[bytes]]:
    """Top-level directories holding tracked paths, and tracked paths at the root.

    Over the sorted paths, each directory's paths are skipped by bisection: looking
    at each of 20,000 paths was a twentieth of a clean ``status``.
    """
    keys = list(index.paths())
    if keys != sorted(keys):  # (the index is saved sorted: one pass to confirm it)
        keys.sort()
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


def work_state(repo: Repository, index: Index, workers: Workers, warn: Warn = quiet) -> WorkState:
    """Compare the working tree with the index, hashing only files whose stat changed.

    ``WorkState.current`` holds the files that had to be hashed; a tracked path that is
    in none of ``current``, ``deleted``, ``not_checked_out`` and ``unreadable`` is
    unchanged. A path marked not checked out (``vfs.repo.stage.NOT_CHECKED_OUT``) that is
    missing is listed in ``not_checked_out``, never as deleted; a file found there is
    compared like any other. Files whose
    stat changed but content did not get their index entry refreshed in ``index`` (in
    memory; ``WorkState.refreshed`` counts them). A file that cannot be read (or kept
    changing while it was) gets one warning and is listed in ``unreadable``; the
    others are compared all the same.
    """
    st = WorkState()
    dirs, root_files = tracked_tops(index)
    tops = [top for top in sorted(dirs) if lstat_or_none(repo.root, top) is not None]
    at_root = []
    for p in root_files:
        s = lstat_or_none(repo.root, p)
        if s is not None and p not in dirs:
            at_root.append(Found(p, s))
    skipped: list[bytes] = []  # directories that cannot be read
    with paused_gc():  # a tuple and a stat result per file: see ``paused_gc``
        st.untracked, to_hash, st.deleted = triage_tree(
            repo.root, tops, at_root, index, warn, skipped
        )
    if st.untracked:  # (a clean tree reads no ignore file and matches nothing)
        with Ignores(repo.root, lambda: sorted(index.paths()), warn) as ign:
            st.untracked = ign.keep(st.untracked)
    if st.deleted and (absent := set(index.absent())):
        st.not_checked_out = [p for p in st.deleted if p in absent]
        st.deleted = [p for p in st.deleted if p not in absent]
    if skipped:  # what is tracked below them is unknown, not deleted
        below = tuple(d + b"/" for d in skipped)
        st.unreadable = [p for p in st.deleted if p.startswith(below) or p in skipped]
        st.deleted = [p for p in st.deleted if not (p.startswith(below) or p in skipped)]
    hasher = Hasher(repo.root, repo.chunker, None, workers)
    failed: dict[bytes, DvfsError] = {}
    for rel, staged in hasher.stage_many(to_hash, failed):
        old = index.get(rel)
        if old is not None and staged.same_on_disk(old):
            index.entries[rel] = replace(staged, mode=old.mode)
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


def head_files(hist: History) -> dict[bytes, Entry]:
    """Every path of the version HEAD names (empty before the first commit)."""
    oid = hist.head_id()
    return {} if oid is None else hist.flatten(hist.version(oid).tree)


def _behind(hist: History, index: Index) -> tuple[bytes, dict[bytes, Entry]] | None:
    """(version, its files) if the branch moved past the working tree's version.

    Moved past means: the branch changed a path after that version and the index
    does not hold the change, so committing the index would undo it. A branch that
    moved to exactly what the index holds (a commit whose index could not be saved)
    is not behind.
    """
    tip = hist.head_id()
    base = index.base
    if base is None or tip is None or base == tip or hist.head().detached is not None:
        return None
    if not hist.on_chain(tip, base):  # a commit killed before its branch moved
        return None
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


def same_entry(a: Entry, b: Entry) -> bool:
    """True if two entries hold the same thing (kind, mode, content or target)."""
    return (a.kind, a.mode, a.digest, a.target, a.size) == (
        b.kind,
        b.mode,
        b.digest,
        b.target,
        b.size,
    )


def base_files(hist: History, index: Index) -> dict[bytes, Entry]:
    """Every path of the version the working tree was last made equal to.

    That is HEAD unless the branch moved past the working tree (``Index.base``).
    """
    behind = _behind(hist, index)
    return head_files(hist) if behind is None else behind[1]


def moved_past(hist: History, index: Index) -> str | None:
    """The label of the working tree's version if the branch has moved past it."""
    behind = _behind(hist, index)
    return None if behind is None else hist.label(behind[0])


@dataclass
class Status:
    """What ``dvfs status`` reports."""

    branch: str
    detached: str | None
    head: str | None
    staged: list[Change]
    work: WorkState
    behind: str | None = None  # the working tree's version, if the branch moved past it
    merge: merging.MergeState | None = None  # a merge in progress (vfs.ops.merging)


def status(repo: Repository, workers: Workers, warn: Warn = quiet) -> Status:
    """Staged changes (index vs HEAD) and unstaged ones (working tree vs index)."""
    index = repo.index()
    hist = repo.history
    head = hist.head()
    head_id = hist.head_id()
    behind = moved_past(hist, index)
    if head_id is not None and index.head == head_id:
        staged: list[Change] = []  # the index was made equal to HEAD and not staged since
    else:
        staged = diff_maps(base_files(hist, index), index.entries)
    work = work_state(repo, index, workers, warn)
    if work.refreshed:
        try:
            with repo.locked(wait=0):
                index.save()
        except Exception:  # refreshing is an optimisation; never fail status for it
            pass
    return Status(
        branch=head.branch,
        detached=None if head.detached is None else hist.label(head.detached),
        head=None if head_id is None else hist.label(head_id),
        staged=staged,
        work=work,
        behind=behind,
        merge=merging.live(repo.dir, repo.refs),
    )


# ----------------------------------------------------------------------------- add / rm


@dataclass
class AddReport:
    """What ``dvfs add`` did."""

    files: int = 0  # paths now staged by this call
    hashed: int = 0  # files that had to be read
    bytes_read: int = 0
    removed: int = 0  # deletions staged
    ignored: int = 0  # untracked paths (files, or whole directories) skipped by ignore rules


def _ancestors(path: bytes) -> Iterator[bytes]:
    """The directories above a repository path, nearest first."""
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        yield path


def _refuse_ignored(repo: Repository, ign: Ignores, arg: str, rel: bytes) -> None:
    """UsageError if ``arg``, given by name, is untracked and ignored (as ``git add``)."""
    if not rel or ign.is_tracked(rel):
        return
    st = lstat_or_none(repo.root, rel)
    is_dir = st is not None and statmod.S_ISDIR(st.st_mode)
    if is_dir and ign.holds_tracked(rel):
        return
    m = ign.match(rel, is_dir=is_dir)
    if m is not None and m.ignored:
        raise UsageError(
            f"{arg} is ignored by {m.rule()}: `dvfs add --force {arg}` adds it all the same; "
            "nothing was staged"
        )


def add(
    repo: Repository,
    args: Iterable[str],
    workers: Workers,
    warn: Warn = quiet,
    *,
    force: bool = False,
) -> AddReport:
    """Stage files, directories or links (or the deletion of vanished tracked paths).

    Untracked paths that ignore rules (``vfs.worktree.ignore``) match are left out of the
    directories given, and counted; one given by name is refused. ``force`` adds them
    all the same.
    """
    report = AddReport()
    args = list(args)
    rels = [repo.rel(a) for a in args]
    for rel in rels:
        bad = reserved_path([rel])
        if bad is not None:
            parts = bad.split(b"/")
            at = (
                0
                if is_reserved_at_root(parts[0])
                else next(i for i, n in enumerate(parts) if i and is_reserved(n))
            )
            name = b"/".join(parts[: at + 1])
            raise UsageError(f"cannot add {reserved_message(name)}; nothing was staged")
    with repo.locked():
        index = repo.index()
        for a, rel in zip(args, rels, strict=True):
            if lstat_or_none(repo.root, rel) is None and not index.under(rel):
                raise UsageError(f"{a} does not exist and is not tracked: nothing was staged")
        found: dict[bytes, Found] = {}
        with Ignores(repo.root, lambda: sorted(index.paths()), warn) as ign:

            def enter(d: bytes) -> bool:
                if ign.ignored(d, is_dir=True):
                    report.ignored += 1
                    return False
                return True

            if not force:
                for a, rel in zip(args, rels, strict=True):
                    _refuse_ignored(repo, ign, a, rel)
            for rel in rels:
                for f in scan(repo.root, rel, warn, strict=True, enter=None if force else enter):
                    if f.rel == LOCK_FILE.encode():
                        continue
                    if not force and ign.ignored(f.rel):
                        report.ignored += 1
                        continue
                    found[check_path(f.rel)] = f
        to_hash = [f for f in found.values() if not index.fresh(f.rel, f.st)]
        hasher = Hasher(repo.root, repo.chunker, repo.store, workers)
        try:
            new = dict(hasher.stage_many(to_hash))
        except BaseException as exc:
            repo.store.discard()
            if isinstance(exc, FileUnreadable):
                raise FileUnreadable(f"{exc}; nothing was staged") from None
            raise
        # Everything is hashed and stored: now change the index in one go.
        # The index is changed through put/remove, so its other records are never built.
        for rel in rels:
            for p in index.under(rel):
                if p not in found and not index.is_absent(p):  # (not checked out: kept)
                    index.remove(p)
                    report.removed += 1
        parents = {p.rpartition(b"/")[0] for p in index.paths()}  # few: then their ancestors
        dirs = {a for d in parents if d for a in (d, *_ancestors(d))}
        for rel, staged in new.items():
            for anc in _ancestors(rel):  # a file now where a tracked file was a directory
                index.remove(anc)
            if rel in dirs:  # a file now where a tracked directory was
                for p in index.under(rel):
                    index.remove(p)
            index.put(rel, staged)
        repo.store.flush()
        flush_filesystem(repo.dir)  # the index must never name objects not on disk
        index.head = None
        index.save()
        resolved(repo, rels)
        ignore_paths(repo.root, [r for r in rels if r], warn)
    report.files = len(found)
    report.hashed = len(to_hash)
    report.bytes_read = hasher.bytes_read
    return report


def stage_tracked_changes(repo: Repository, workers: Workers, warn: Warn = quiet) -> AddReport:
    """Stage every modified or deleted tracked file (``commit -a``); untracked ones stay."""
    work = status(repo, workers, warn).work
    changed = [*work.modified, *work.deleted]
    if not changed:
        return AddReport()
    root = os.fsencode(repo.root)
    return add(repo, [os.fsdecode(os.path.join(root, p)) for p in changed], workers, warn)


def rm(
    repo: Repository, args: Iterable[str], workers: Workers, *, cached: bool, force: bool
) -> list[bytes]:
    """Stop tracking paths; delete the working files too unless ``cached``."""
    with repo.locked():
        index = repo.index()
        targets: list[bytes] = []
        for a in args:
            under = index.under(repo.rel(a))
            if not under:
                raise UsageError(f"{a} is not tracked: nothing was removed")
            targets.extend(under)
        if not cached and not force:
            sub = Index(index.path)
            sub.written_ns = index.written_ns
            sub.entries = {p: index.entries[p] for p in targets}
            state = work_state(repo, sub, workers)
            if state.unreadable:
                shown = ", ".join(show(p) for p in state.unreadable[:10])
                raise UsageError(
                    f"cannot read {shown} to check for unstaged changes: "
                    "nothing was removed; use --force to remove anyway"
                )
            changed = [p for p in state.modified if p in sub.entries]
            if changed:
                raise UncommittedChanges("rm", [show(p) for p in changed])
        index.head = None
        with Walker(repo.root) as walker:
            for p in targets:
                del index.entries[p]
                if not cached:
                    remove_path(walker, p)
        index.save()
        resolved(repo, targets)
    return targets


def resolved(repo: Repository, paths: Sequence[bytes]) -> None:
    """Mark the conflicts of a merge in progress at or below ``paths`` resolved (the
    caller holds the lock and has staged what they hold now)."""
    merge = merging.live(repo.dir, repo.refs)
    if merge is not None and merge.unresolved():
        merging.save(repo.dir, merge.resolving(paths))


@dataclass(frozen=True)
class Move:
    """One path ``dvfs mv`` moved, and how many tracked paths it held."""

    src: bytes
    dst: bytes
    tracked: int


def _move_target(index: Index, walker: Walker, src: bytes, dst: bytes) -> None:
    """Refuse moving ``src`` to ``dst`` unless the result can be staged as it is."""
    if dst == src:
        raise UsageError(f"{show(src)} is already there: nothing was moved")
    if under_path(dst, src):
        raise UsageError(f"cannot move {show(src)} into itself ({show(dst)}): nothing was moved")
    bad = reserved_path([dst])
    if bad is not None:
        raise UsageError(f"cannot move to {reserved_message(bad)}; nothing was moved")
    if dst == LOCK_FILE.encode():
        raise UsageError(f"{LOCK_FILE} is dvfs's own record for git: nothing was moved")
    try:
        check_path(dst)
    except DvfsError as exc:
        raise UsageError(f"cannot move to {show(dst)} ({exc}); nothing was moved") from None
    deepest = max((p.count(b"/") - src.count(b"/") for p in index.under(src)), default=0)
    if dst.count(b"/") + deepest > MAX_DEPTH:
        raise UsageError(f"cannot move to {too_deep_message(dst)}; nothing was moved")
    if walker.lstat(dst) is not None or index.under(dst):
        raise UsageError(
            f"{show(dst)} already exists{' (tracked)' if index.under(dst) else ''}: "
            "mv never replaces anything; nothing was moved"
        )
    parent = dst.rpartition(b"/")[0]
    st = walker.lstat(parent)
    if st is None or not statmod.S_ISDIR(st.st_mode):
        raise UsageError(
            f"{show(parent)} is not a directory of the working tree: create it first "
            "(`mkdir -p`); nothing was moved"
        )


def mv(repo: Repository, sources: Sequence[str], dest: str, warn: Warn = quiet) -> list[Move]:
    """Move tracked files or directories in the working tree and in the index (``dvfs mv``).

    ``dvfs mv SRC DST`` renames SRC to DST; with an existing directory DST (or several
    sources), each source moves into it under its own name. Sources must be tracked
    (staged paths not yet committed included) and present in the working tree;
    untracked files inside a moved directory move with it. Nothing is ever replaced
    (``renameat2`` with ``RENAME_NOREPLACE``), no path may leave the repository or
    pass through a link, and no reserved name may appear: every check is made
    before anything moves. The moved paths keep their staged content, so the next
    commit records a rename (``diff`` shows it as one); inside a git work tree the
    new paths are git-ignored as ``add`` does. If a rename or writing the index
    fails, what was renamed is renamed back; a crash in between leaves the files
    moved and the index as it was (``status`` then shows the old paths deleted and
    the new ones untracked, and ``dvfs add`` of both records the move).
    """
    with repo.locked(), Walker(repo.root) as walker, Walker(repo.root) as other:
        index = repo.index()
        dst = repo.rel(dest)
        st = walker.lstat(dst)
        into = st is not None and statmod.S_ISDIR(st.st_mode) and not index.get(dst)
        if len(sources) > 1 and not into:
            raise UsageError(f"moving several paths needs a directory: {dest} is not one")
        plan: list[Move] = []
        for a in sources:
            src = repo.rel(a)
            if not src:
                raise UsageError("cannot move the repository itself: nothing was moved")
            tracked = index.under(src)
            if any(src == m.src or under_path(src, m.src) or under_path(m.src, src) for m in plan):
                raise UsageError(f"{a} is given twice, or inside another source: nothing was moved")
            if not tracked and walker.lstat(src) is None:
                raise UsageError(f"{a} does not exist and is not tracked: nothing was moved")
            if not tracked:
                raise UsageError(f"{a} is not tracked: move it with mv, then `dvfs add` it")
            if walker.lstat(src) is None:
                raise UsageError(
                    f"{a} is not in the working tree (deleted?): `dvfs rm` it, or bring it "
                    "back first; nothing was moved"
                )
            target = dst + b"/" + src.rpartition(b"/")[2] if into and dst else (
                src.rpartition(b"/")[2] if into else dst
            )  # fmt: skip
            if any(target == m.dst or under_path(target, m.dst) for m in plan):
                raise UsageError(f"two paths would move to {show(target)}: nothing was moved")
            _move_target(index, walker, src, target)
            plan.append(Move(src, target, len(tracked)))
        done: list[Move] = []
        try:
            for m in plan:
                old_dir, old_leaf = walker.parent(m.src)
                new_dir, new_leaf = other.parent(m.dst)
                before = os.stat(old_leaf, dir_fd=old_dir, follow_symlinks=False)
                rename_noreplace(old_dir, old_leaf, new_dir, new_leaf)
                done.append(m)
                walker.forget(m.src)
                _restage(index, walker, m, before)
            index.head = None
            index.save()
            ignore_paths(repo.root, [m.dst for m in plan], warn)
        except BaseException:
            for m in reversed(done):  # put back what moved: the index on disk is the old one
                with contextlib.suppress(OSError):
                    new_dir, new_leaf = other.parent(m.dst)
                    old_dir, old_leaf = walker.parent(m.src)
                    rename_noreplace(new_dir, new_leaf, old_dir, old_leaf)
            raise
    return plan


def under_path(path: bytes, top: bytes) -> bool:
    """True if ``path`` is strictly below directory ``top``."""
    return path.startswith(top + b"/")


def _restage(index: Index, walker: Walker, m: Move, before: os.stat_result) -> None:
    """Stage the tracked paths below ``m.src`` at ``m.dst``, with their staged content.

    A renamed file's ctime changes: if its stat matched the index before, the new
    ctime is recorded, so that ``status`` need not read the file again.
    """
    for p in index.under(m.src):
        staged = index.get(p)
        assert staged is not None
        index.remove(p)
        new = m.dst + p[len(m.src) :]
        if p == m.src and index.unchanged(staged, before):
            after = walker.lstat(new)
            if after is not None and after.st_ino == staged.ino:
                staged = replace(staged, ctime_ns=after.st_ctime_ns)
        index.put(new, staged)


# ----------------------------------------------------------------------------- commit


def build_trees(store: ObjectStore, entries: dict[bytes, Staged]) -> tuple[bytes, int, int]:
    """Store the trees for a set of staged paths; return (root id, files, bytes)."""
    return build_tree_rows(store, ((p, as_row(p, s)) for p, s in entries.items()))


def build_tree_rows(
    store: ObjectStore, rows: Iterable[tuple[bytes, Sequence[Any]]]
) -> tuple[bytes, int, int]:
    """Store the trees for staged index rows; return (root id, files, bytes).

    The tree records are made straight from the rows (``vfs.model.codec.encode_tree_rows``:
    the bytes ``encode_tree`` gives, so the same ids): building a record and an entry
    object per file first was most of a commit's time.
    """
    with paused_gc():
        return _build_tree_rows(store, rows)


def _build_tree_rows(
    store: ObjectStore, rows: Iterable[tuple[bytes, Sequence[Any]]]
) -> tuple[bytes, int, int]:
    children: dict[bytes, list[list[Any]]] = defaultdict(list)
    dirs: set[bytes] = {b""}
    files = 0
    total = 0
    for path, r in rows:
        _, kind, mode, size, mtime, _, _, digest, chunks, target = r[:10]  # (not the flags)
        parent, _, name = path.rpartition(b"/")
        payload = (digest, chunks) if kind == Kind.FILE else target
        children[parent].append([name, kind, mode & PERM_BITS, size, mtime, payload])
        files += 1
        total += size
        while parent and parent not in dirs:
            dirs.add(parent)
            parent = parent.rpartition(b"/")[0]
    root_id = b""
    for d in sorted(dirs, key=lambda p: -p.count(b"/") if p else 1):
        kids = children.pop(d, [])
        kids.sort(key=lambda row: row[0])
        names = [k[0] for k in kids]
        bad = reserved_in(names, at_root=not d) or [n for n in names if n in SKIP_DIRS]
        if bad:  # (staged by an older dvfs: add refuses them now)
            path = d + b"/" + bad[0] if d else bad[0]
            raise UsageError(
                f"the index holds {reserved_message(path)}: run `dvfs rm --cached "
                f"{show(path)}`, then commit"
            )
        oid, _ = store.put(ObjKind.TREE, encode_tree_rows(kids))
        if not d:
            root_id = oid
            continue
        parent, _, name = d.rpartition(b"/")
        children[parent].append(dir_row(name, oid, kids))
    return root_id, files, total


@dataclass
class CommitResult:
    """The version a commit made."""

    oid: bytes
    number: int
    files: int
    bytes: int


def commit(
    repo: Repository,
    message: str,
    params: dict[str, Any],
    tag: str | None = None,
    warn: Warn = quiet,
) -> CommitResult:
    """Record the staged data as a new version on the current branch.

    Once the branch has moved the version is committed; if recording it elsewhere
    then fails (the tag, ``dvfs.lock``, the index: say the disk just filled up), that
    is a warning saying what to run, not an error claiming nothing was committed.
    ``message`` and ``params`` are checked against the bounds of :mod:`vfs.model.params`.
    """
    if not message.strip():
        raise UsageError("the commit message is empty: pass -m MESSAGE")
    version_params.message(message)
    params = version_params.check(params)
    if tag is not None:
        check_ref_name(tag, "tag")
    with repo.locked():
        return commit_locked(repo, message, params, tag, warn)


def commit_locked(
    repo: Repository,
    message: str,
    params: dict[str, Any],
    tag: str | None = None,
    warn: Warn = quiet,
) -> CommitResult:
    """:func:`commit` for a caller that holds the repository lock and checked its input.

    While a merge is in progress (``vfs.ops.merging``), the version gets the merged
    version as its second parent, and is refused while a conflict is unresolved;
    the merge record is removed once the branch has moved.
    """
    hist = repo.history
    head = hist.head()
    if head.detached is not None:
        raise UsageError(
            f"HEAD is detached at {hist.label(head.detached)}: run `dvfs switch -c NAME` "
            f"to commit on a new branch from here (your changes stay), or `dvfs switch "
            f"{head.branch}`"
        )
    parent = repo.refs.get(f"refs/heads/{head.branch}")
    tag_free(repo, tag)
    index = repo.index()
    behind = moved_past(hist, index)
    if behind is not None:
        raise UsageError(
            f"{head.branch} moved to {hist.label(parent) if parent else '?'} since this "
            f"working tree was at {behind} (a snapshot of a mount, or a pull elsewhere): "
            f"run `dvfs switch {head.branch}` to bring it up to date, then commit"
        )
    if index.count() == 0 and parent is None:
        raise UsageError("nothing to commit: run `dvfs add PATH` first")
    merge = merging.live(repo.dir, repo.refs)
    if merge is not None and (left := merge.unresolved()):
        shown = ", ".join(show(p) for p in left[:5]) + (
            f" and {len(left) - 5} more" if len(left) > 5 else ""
        )
        raise UsageError(
            f"{len(left)} path{'s' if len(left) != 1 else ''} of the merge of {merge.rev} "
            f"{'are' if len(left) != 1 else 'is'} still in conflict ({shown}): choose with "
            "`dvfs restore --ours PATH` or `--theirs PATH` (or edit and `dvfs add PATH`), "
            "then commit; `dvfs merge --abort` gives up the merge"
        )
    tree, files, total = build_tree_rows(repo.store, index.rows())
    parent_v = hist.version(parent) if parent is not None else None
    if parent_v is not None and parent_v.tree == tree and merge is None:
        raise UsageError(
            f"nothing to commit: the staged data equals v{parent_v.number}; "
            "run `dvfs add PATH` to stage changes"
        )

    # The index names the new version before the branch does: killed in between,
    # it names a version the branch never got, which is ignored (see ``_behind``);
    # the other way round, the next commit would seem to undo this one.
    def noted(oid: bytes) -> None:
        index.head = index.base = oid
        index.save()

    made = record_version(
        repo, tree, message, params, branch=head.branch,
        parents=() if parent is None else (parent,) if merge is None else (parent, merge.theirs),
        expect=parent, files=files, size=total, tag=tag, noted=noted, warn=warn,
    )  # fmt: skip
    if merge is not None:
        merging.remove(repo.dir)  # (killed before this, the record is stale: ignored)
    return CommitResult(made.oid, made.version.number, files, total)
