"""Staging: ``add``, ``rm`` and ``mv``, the index changed to match the working tree.

``add`` stores the chunks first and flushes the filesystem before the index names
them. ``status`` is ``vfs.ops.status``, ``commit`` is ``vfs.ops.commit``.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import stat as statmod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from vfs._os.beneath import Walker, rename_noreplace
from vfs._os.gc_pause import paused_gc
from vfs.errors import DvfsError, FileUnreadable, UncommittedChanges, UsageError
from vfs.model.codec import Entry, Kind, check_name
from vfs.model.names import (
    MAX_DEPTH,
    any_reserved,
    is_reserved,
    is_reserved_at_root,
    reserved_path,
)
from vfs.ops.behind import merge_in_progress, quiet
from vfs.pipeline.writing import refuse_partial
from vfs.quoting import quote_given, quoted, shell_word
from vfs.repo.gitlink import LOCK_FILE, ignore_paths
from vfs.repo.repository import DVFS_DIR, Repository
from vfs.repo.stage import Index, Row, check_path
from vfs.worktree.ignore import Ignores
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.scan import (
    Found,
    Warn,
    lstat_or_none,
    reserved_message,
    scan_lists,
    show,
    special_kind,
    too_deep_message,
)

if TYPE_CHECKING:
    from vfs._os.threads import Task

NAME_MAX = 255  # bytes of one name (Linux's NAME_MAX; vfs.model.codec.check_name)
FEW_NEW = 64  # files staged by an add up to which _tracked_dirs bisects rather than sets
# Bytes to hash from which add lets go of the index while hashing and reads it again
# after (see add): a few milliseconds for 20,000 paths, against seconds of hashing.
LET_GO_BYTES = 256 << 20


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


def _tracked_dirs(index: Index, asked: int) -> Callable[[bytes], bool]:
    """Whether a path is a directory of the paths ``index`` tracks now (as they are
    now: later changes are not seen), for ``asked`` questions.

    A few are answered by bisecting the sorted paths: adding one file to 20,000
    tracked ones spent 4 ms collecting every path's directory into a set first, which
    pays only for many questions.
    """
    if asked <= FEW_NEW:
        tracked = index.sorted_paths()

        def below(rel: bytes) -> bool:
            slash = rel + b"/"
            i = bisect.bisect_left(tracked, slash)
            return i < len(tracked) and tracked[i].startswith(slash)

        return below
    parents = {p.rpartition(b"/")[0] for p in index.paths()}  # few: then their ancestors
    return {a for d in parents if d for a in (d, *_ancestors(d))}.__contains__


def ignoring_rule(repo: Repository, ign: Ignores, rel: bytes, is_dir: bool = False) -> str | None:
    """The rule that ignores ``rel`` if it is untracked and ignored, so that ``add``
    given it by name refuses it (as ``git add``); else None. ``is_dir``: take it for
    a directory even if it does not exist yet."""
    if not rel or ign.is_tracked(rel):
        return None
    st = lstat_or_none(repo.root, rel)
    is_dir = is_dir or (st is not None and statmod.S_ISDIR(st.st_mode))
    if is_dir and ign.holds_tracked(rel):
        return None
    m = ign.match(rel, is_dir=is_dir)
    return m.rule() if m is not None and m.ignored else None


def _refuse_ignored(repo: Repository, ign: Ignores, arg: str, rel: bytes) -> None:
    """UsageError if ``arg``, given by name, is untracked and ignored (as ``git add``)."""
    rule = ignoring_rule(repo, ign, rel)
    st = lstat_or_none(repo.root, rel) if rule is not None else None
    m = ign.match(rel, is_dir=st is not None and statmod.S_ISDIR(st.st_mode)) if rule else None
    nested = m.repository if m is not None else None
    if nested is not None:
        where = (
            nested_note(nested).partition(", ")[2] if nested == rel else f"in {nested_note(nested)}"
        )
        raise UsageError(
            f"{quote_given(arg)} is {where}: `dvfs add --force {shell_word(arg)}` adds it "
            "here all the same; nothing was staged"
        )
    if rule is not None:
        raise UsageError(
            f"{quote_given(arg)} is ignored by {rule}: `dvfs add --force {shell_word(arg)}` "
            "adds it all the same; nothing was staged"
        )


def nested_note(d: bytes) -> str:
    """A directory that is a dvfs repository of its own, named for a message."""
    return f"{quoted(d)}/, a dvfs repository of its own (`dvfs add` inside it tracks its files)"


UNREADABLE = (
    "nothing was staged: make it readable (or, if it is not tracked, keep it out with a "
    ".dvfsignore rule)"
)


def _unreadable_stages_nothing(listed: Iterator[list[Found]]) -> Iterator[list[Found]]:
    """``listed``, with a directory that cannot be read said to stage nothing."""
    try:
        yield from listed
    except FileUnreadable as exc:
        raise FileUnreadable(f"{exc}; {UNREADABLE}") from None


def _not_ignored(ign: Ignores, files: list[Found]) -> list[Found]:
    """The files of one directory that are tracked or not ignored, in their order."""
    untracked = [f.rel for f in files if not ign.is_tracked(f.rel)]
    if not untracked:
        return files
    kept = set(ign.keep(untracked))
    if len(kept) == len(untracked):
        return files
    return [f for f in files if f.rel in kept or ign.is_tracked(f.rel)]


def add(
    repo: Repository,
    args: Iterable[str],
    workers: Workers,
    warn: Warn = quiet,
    *,
    force: bool = False,
    paths: Sequence[bytes] | None = None,
    locked: bool = False,
) -> AddReport:
    """Stage files, directories or links (or the deletion of vanished tracked paths).

    ``paths``: the repository paths ``args`` name, as a scan found them (``commit -a``),
    taken as they are: a tracked file whose directory became a link is then staged as
    deleted, where an argument naming it is refused (the link is not followed).
    ``locked``: the caller holds the repository lock (``vfs.track``, which stages and
    commits under one hold).

    Untracked paths that ignore rules (``vfs.worktree.ignore``) match are left out of the
    directories given, and counted; one given by name is refused. ``force`` adds them
    all the same.

    The cyclic garbage collector is paused meanwhile: a path, its lstat and its
    staged record per file found, none of them garbage, that it walked again and
    again while they were hashed (a few percent of the CPU time of adding 20,000
    small files, all of it holding the GIL the hashing threads wait for); and what was
    made meanwhile is counted as long-lived before it resumes, where its first pass
    walked all of it (15 ms for 20,000 files, after the work).
    """
    report = AddReport()
    args = list(args)
    held = contextlib.nullcontext() if locked else repo.locked()
    with held, paused_gc(kept=True):  # (see the docstring)
        index = repo.index()
        rels = [repo.rel(a, index) for a in args] if paths is None else list(paths)
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
        refuse_partial(repo.dir, rels)  # a stage's output being written (and once hashed)
        settled = deleted_conflicts(repo, index, rels)
        for a, rel in zip(args, rels, strict=True):
            st = lstat_or_none(repo.root, rel)
            if index.under(rel):
                continue  # (a tracked file now a FIFO: its removal is staged)
            if st is None:
                if rel in settled:
                    continue  # a conflict the merge left deleted: staged as it is
                raise UsageError(
                    f"{quote_given(a)} does not exist and is not tracked: nothing was staged"
                )
            if (kind := special_kind(st.st_mode)) is not None:
                raise UsageError(
                    f"{quote_given(a)} is {kind} and is not tracked: dvfs stores regular "
                    "files, directories and symbolic links; nothing was staged"
                )
        found: dict[bytes, Found] = {}
        # The files to hash are handed over as the scan finds them (ingest.Feed).
        hasher = Hasher(repo.root, repo.chunker, repo.store, workers)
        feed = hasher.feed()
        fresh = index.fresh
        with Ignores(repo.root, lambda: sorted(index.paths()), warn) as ign:
            nested: set[bytes] = set()  # repositories of their own warned about

            def skipping(d: bytes) -> None:
                """Warn, once, of the repository of its own that directory ``d`` is
                in, if any, as something in it is skipped."""
                m = ign.match(d, is_dir=True)
                top = m.repository if m is not None and m.ignored else None
                if top is None or top in nested:
                    return
                nested.add(top)
                what = "what is untracked in " if ign.holds_tracked(top) else ""
                warn(f"skipping {what}{nested_note(top)}")

            def passed_over(p: bytes) -> bool:
                """Whether a name dvfs never stores is ignored (left out silently)."""
                st = lstat_or_none(repo.root, p)
                if not ign.ignored(p, is_dir=st is not None and statmod.S_ISDIR(st.st_mode)):
                    return False
                report.ignored += 1
                return True

            def enter(d: bytes) -> bool:
                if ign.ignored(d, is_dir=True):
                    report.ignored += 1
                    skipping(d)
                    return False
                return True

            if not force:
                for a, rel in zip(args, rels, strict=True):
                    _refuse_ignored(repo, ign, a, rel)
            checked = {b""}  # directories whose names were checked (each once, not per file)
            lock = LOCK_FILE.encode()
            for rel in rels:
                if rel in settled and lstat_or_none(repo.root, rel) is None:
                    continue
                if paths is not None and _file_now_a_directory(repo, index, rel):
                    continue  # (commit -a: the file's removal; what the directory holds
                    # is untracked, and stays so, as status lists it)
                # A directory's files at a time: its path checked once, the names of its
                # files screened together, the ignore rules for them gathered once.
                enter_dir, pass_over = (None, None) if force else (enter, passed_over)
                listed = scan_lists(
                    repo.root, rel, warn, strict=True, enter=enter_dir, passed_over=pass_over
                )
                for files in _unreadable_stages_nothing(listed):
                    if not files:
                        continue
                    d = files[0].rel.rpartition(b"/")[0]  # (all in one directory)
                    if not d:
                        files = [f for f in files if f.rel != lock]
                    if not force:
                        kept = _not_ignored(ign, files)
                        report.ignored += len(files) - len(kept)
                        if d and len(kept) < len(files):
                            skipping(d)  # (tracked files in it, so it was entered)
                        files = kept
                    if not files:
                        continue
                    if d not in checked:
                        checked.add(check_path(d))
                    # Names listed in a directory are never empty, ".", "..", nor hold
                    # "/" or NUL: only a reserved-looking one needs the whole check (a
                    # path given alone gets it anyway).
                    leaves = [f.rel.rpartition(b"/")[2] for f in files]
                    if len(leaves) == 1 or any_reserved(leaves) is not None:
                        for leaf in leaves:
                            check_name(leaf)
                    to_hash = []
                    for f in files:
                        if f.rel not in found:  # (found before: a path given twice)
                            found[f.rel] = f
                            if not fresh(f.rel, f.st):
                                to_hash.append(f)
                    feed.add(to_hash)
        let_go = feed.nbytes >= LET_GO_BYTES
        if let_go:
            # The index and the ignore rules' set of tracked paths (about 450 bytes a
            # path) wait unused while large files are hashed: freed, that memory holds
            # the buffer the files are read into (vfs.worktree.ingest.REGIONS) instead.
            del index, ign, enter, fresh
        try:
            new = dict(feed.stage_rows())
        except BaseException as exc:
            repo.store.discard()
            if isinstance(exc, FileUnreadable):
                raise FileUnreadable(f"{exc}; {UNREADABLE}") from None
            raise
        try:
            refuse_partial(repo.dir, rels)  # a stage started while they were read
        except BaseException:
            repo.store.discard()
            raise
        # The objects are made durable on a thread of their own while the index is
        # brought up to date and written beside the old one: it takes the old one's
        # name once they are (the index must never name objects not on disk).
        syncing = _started(repo.store.sync)
        try:
            if let_go:
                index = repo.index()  # (unchanged: the lock is held)
            report.removed += _put_staged(index, rels, found, new)
            index.head = None
            index.save(ready=syncing.result)
        finally:
            syncing.exception()  # (waits: nothing goes on while the store syncs)
        resolved(repo, rels)
        ignore_paths(repo.root, [r for r in rels if r], warn)
    report.files = len(found)
    report.hashed = feed.files
    report.bytes_read = hasher.bytes_read
    return report


def _put_staged(
    index: Index, rels: list[bytes], found: dict[bytes, Found], new: dict[bytes, Row]
) -> int:
    """Change ``index`` in one go for an ``add`` of ``rels``: the files hashed (``new``,
    their rows) put in, the tracked paths below ``rels`` that the scan no longer
    ``found`` taken out; how many were. Through put_row/remove, so its other records
    are never built."""
    removed = 0
    for rel in rels:
        for p in index.under(rel):
            if p not in found and not index.is_absent(p):  # (not checked out: kept)
                index.remove(p)
                removed += 1
    is_dir = _tracked_dirs(index, len(new))
    # A directory now where a tracked file was: each directory once, not once per
    # file below it (no path of ``new`` is above another one).
    for d in {rel.rpartition(b"/")[0] for rel in new}:
        if d:
            for anc in (d, *_ancestors(d)):
                index.remove(anc)
    for rel, row in new.items():
        if is_dir(rel):  # a file now where a tracked directory was
            for p in index.under(rel):
                index.remove(p)
        index.put_row(rel, row)
    return removed


def _started(work: Callable[[], object]) -> Task[None]:
    """``work()`` running on a thread of its own; the end of it."""
    import threading

    from vfs._os.threads import Task

    done: Task[None] = Task()

    def run() -> None:
        try:
            work()
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(None)

    threading.Thread(target=run, name="dvfs-sync", daemon=True).start()
    return done


def _file_now_a_directory(repo: Repository, index: Index, rel: bytes) -> bool:
    """Whether ``rel`` is tracked as a file or link and a directory stands there now."""
    entry = index.get(rel)
    if entry is None or entry.kind == Kind.DIR:
        return False
    st = lstat_or_none(repo.root, rel)
    return st is not None and statmod.S_ISDIR(st.st_mode)


def stage_tracked_changes(repo: Repository, workers: Workers, warn: Warn = quiet) -> AddReport:
    """Stage every modified or deleted tracked file (``commit -a``); untracked ones stay.

    UsageError, and nothing staged, after a checkout cut short
    (``vfs.repo.cut_short``): the changes are its files, which a commit would record
    as a version of this branch mixing two versions.

    FileUnreadable, and nothing staged, if a tracked file cannot be read (status warned
    why): whether it changed is unknown, and a commit without it would pass for one of
    every change, as ``add`` of its directory is refused too.
    """
    from vfs.ops.status import status  # (not `add`'s: 2.5 ms of its start-up)
    from vfs.repo import cut_short

    work = status(repo, workers, warn).work
    if work.unreadable:
        its, them = ("its", "it") if len(work.unreadable) == 1 else ("their", "them")
        more = len(work.unreadable) - 5
        shown = ", ".join(quoted(p) for p in work.unreadable[:5]) + (
            f" and {more} more" if more > 0 else ""
        )
        raise FileUnreadable(
            f"cannot read {shown} to stage {its} changes: nothing was staged or committed; make "
            f"{them} readable, or `dvfs add` what to commit and commit without -a"
        )
    changed = [*work.modified, *work.deleted]
    if not changed:
        return AddReport()
    left = cut_short.read(repo.dir, repo.index().base)
    if left is not None:  # (the changes are that checkout's files, not the user's work)
        raise UsageError(
            f"the working tree holds files of {left.label} that a {left.action} cut short "
            f"left: `{left.again}` finishes it, `dvfs restore .` puts back "
            f"{'the index' if left.paths else 'HEAD'}'s files; "
            "nothing was staged or committed (to commit what is there, `dvfs add` it and "
            "commit without -a)"
        )
    return add(repo, [show(p) for p in changed], workers, warn, paths=changed)


def rm(
    repo: Repository, args: Iterable[str], workers: Workers, *, cached: bool, force: bool
) -> list[bytes]:
    """Stop tracking paths; delete the working files too unless ``cached``."""
    with repo.locked():
        index = repo.index()
        targets: list[bytes] = []
        rels = [repo.rel(a, index) for a in args]
        settled = deleted_conflicts(repo, index, rels)
        for a, rel in zip(args, rels, strict=True):
            under = index.under(rel)
            if not under and rel not in settled:
                raise UsageError(f"{quote_given(a)} is not tracked: nothing was removed")
            targets.extend(under)
        gone: dict[bytes, tuple[int, int, int]] | None = None  # (none: --force, or --cached)
        if not cached and not force:
            from vfs.ops.status import work_state

            sub = Index(index.path)
            sub.written_ns = index.written_ns
            sub.entries = {p: s for p in targets if (s := index.get(p)) is not None}
            state = work_state(repo, sub, workers)
            if state.unreadable:
                shown = ", ".join(quoted(p) for p in state.unreadable[:10])
                raise UsageError(
                    f"cannot read {shown} to check for unstaged changes: "
                    "nothing was removed; use --force to remove anyway"
                )
            changed = {p for p in state.modified if p in sub.entries}
            changed.update(staged_since_head(repo, sub, rels))
            if changed:
                raise UncommittedChanges(
                    "rm", [quoted(p) for p in sorted(changed)], verb="delete",
                    what="nothing was removed; commit them first, or use --cached to stop "
                    "tracking and keep the files, or --force to delete them anyway",
                )  # fmt: skip
            # Each file as checked: deleted below only if it is still that file.
            absent = set(state.deleted)
            gone = {p: (s.ino, s.size, s.mtime_ns) for p, s in sub.entries.items()
                    if s.ctime_ns >= 0 and p not in absent}  # fmt: skip
        targets = list(dict.fromkeys(targets))  # (paths named twice, or a file and its directory)
        index.head = None
        index.removed_absent.update(p for p in targets if index.is_absent(p))
        # Unstaged one by one, not through ``entries``: the cache-tree of the other
        # directories stays, and the next commit builds only the trees above these.
        for p in targets:
            index.remove(p)
        if cached:
            index.note_untracked(targets)
        # The index first: one that cannot be saved (a full disk) leaves every file
        # where it was, tracked as before; a file left after it is saved is untracked.
        index.save()
        kept: list[bytes] = []
        if not cached:
            from vfs.worktree.remove import remove_many

            remove_many(repo.root, targets, workers, gone, kept)
        resolved(repo, rels)  # (every conflict at or below them: what they hold is gone)
    if kept:
        shown = ", ".join(quoted(p) for p in sorted(kept)[:10])
        more = f" and {len(kept) - 10} more" if len(kept) > 10 else ""
        raise DvfsError(
            f"{shown}{more} changed while rm deleted the files: kept as changed, and "
            "untracked now (`dvfs add` tracks them again); the others were removed"
        )
    return targets


def staged_since_head(repo: Repository, index: Index, rels: Sequence[bytes]) -> list[bytes]:
    """The paths of ``index`` whose staged content HEAD does not hold (added, or changed
    and staged): the working file is then the only copy a commit reaches, and deleting
    it loses the change. ``rels``: the paths given, at or below which ``index`` lies."""
    from vfs.ops.diff import outermost  # (here: `add` needs neither it nor the row diff)

    hist = repo.history
    head = hist.head_id()
    committed: dict[bytes, Entry] = {}
    if head is not None:
        tree = hist.version(head).tree
        for rel in outermost(rels):
            e = hist.lookup(tree, rel) if rel else hist.version(head).root_entry()
            if e is not None and e.kind == Kind.DIR:
                committed.update(hist.walk(e.subtree, rel))
            elif e is not None:
                committed[rel] = e
    return [
        p
        for p, s in index.entries.items()
        if (c := committed.get(p)) is None or not s.same_content(c)
    ]


def deleted_conflicts(repo: Repository, index: Index, rels: Sequence[bytes]) -> set[bytes]:
    """Those of ``rels`` that hold an unresolved conflict of the merge in progress and
    nothing tracked: the side the merge kept deleted the path (``ours: deleted``), so
    ``rm`` or ``add`` of it settles the conflict as it stands, as ``git rm`` does."""
    merge = merge_in_progress(repo)  # (vfs.ops.merging loaded only in a merge)
    if merge is None:
        return set()
    left = merge.unresolved()
    return {
        r
        for r in rels
        if not index.under(r) and any(p == r or p.startswith(r + b"/") for p in left)
    }


def resolved(repo: Repository, paths: Sequence[bytes]) -> None:
    """Mark the conflicts of a merge in progress at or below ``paths`` resolved (the
    caller holds the lock and has staged what they hold now)."""
    merge = merge_in_progress(repo)  # (vfs.ops.merging loaded only in a merge)
    if merge is not None and merge.unresolved():
        from vfs.ops import merging

        merging.save(repo.dir, merge.resolving(paths))


class Move(NamedTuple):
    """One path ``dvfs mv`` moved, and how many tracked paths it held (a named tuple:
    made at less cost than a dataclass by every ``add``, which never uses it)."""

    src: bytes
    dst: bytes
    tracked: int


def _move_target(index: Index, walker: Walker, src: bytes, dst: bytes) -> None:
    """Refuse moving ``src`` to ``dst`` unless the result can be staged as it is."""
    if dst == src:
        raise UsageError(f"{quoted(src)} is already there: nothing was moved")
    if under_path(dst, src):
        raise UsageError(
            f"cannot move {quoted(src)} into itself ({quoted(dst)}): nothing was moved"
        )
    bad = reserved_path([dst])
    if bad is not None:
        raise UsageError(f"cannot move to {reserved_message(bad)}; nothing was moved")
    if dst == LOCK_FILE.encode():
        raise UsageError(f"{LOCK_FILE} is dvfs's own record for git: nothing was moved")
    if any(len(n) > NAME_MAX for n in dst.split(b"/")):
        raise UsageError(
            f"cannot move to {quoted(dst[:200])}{'...' if len(dst) > 200 else ''}: a name "
            f"there is longer than {NAME_MAX} bytes, which no filesystem takes; nothing "
            "was moved"
        )
    try:
        check_path(dst)
    except DvfsError as exc:
        raise UsageError(f"cannot move to {quoted(dst)} ({exc}); nothing was moved") from None
    deepest = max((p.count(b"/") - src.count(b"/") for p in index.under(src)), default=0)
    if dst.count(b"/") + deepest > MAX_DEPTH:
        raise UsageError(f"cannot move to {too_deep_message(dst)}; nothing was moved")
    if walker.lstat(dst) is None and index.under(dst):  # tracked, not in the working tree
        how = "never checked out" if all(map(index.is_absent, index.under(dst))) else "deleted"
        raise UsageError(
            f"{quoted(dst)} is tracked, though not in the working tree ({how}): mv never "
            f"replaces anything; `dvfs rm {shell_word(show(dst))}` first drops it; nothing "
            "was moved"
        )
    if walker.lstat(dst) is not None:
        raise UsageError(
            f"{quoted(dst)} already exists{' (tracked)' if index.under(dst) else ''}: "
            "mv never replaces anything; nothing was moved"
        )
    parent = dst.rpartition(b"/")[0]
    st = walker.lstat(parent)
    if st is None or not statmod.S_ISDIR(st.st_mode):
        raise UsageError(
            f"{quoted(parent)} is not a directory of the working tree: create it first "
            "(`mkdir -p`); nothing was moved"
        )
    nested = _repository_above(walker, parent)
    if nested is not None:  # (whose files that one tracks: as add, which asks --force)
        raise UsageError(
            f"cannot move to {quoted(dst)}: it is in {nested_note(nested)}; nothing was "
            "moved (to track it there all the same: mv it, then `dvfs add --force` both paths)"
        )


def _repository_above(walker: Walker, d: bytes) -> bytes | None:
    """The outermost directory at or above ``d`` (the root aside) holding a ``.dvfs``
    directory, a dvfs repository of its own; None if none does."""
    parts = d.split(b"/") if d else []
    for i in range(1, len(parts) + 1):
        top = b"/".join(parts[:i])
        st = walker.lstat(top + b"/" + DVFS_DIR.encode())
        if st is not None and statmod.S_ISDIR(st.st_mode):
            return top
    return None


def _missing_source(arg: str, tracked: Sequence[bytes], index: Index) -> str:
    """Why ``dvfs mv`` cannot move ``arg``, tracked (``tracked``) but missing from the
    working tree, and what brings it back."""
    if all(index.is_absent(p) for p in tracked):
        return (
            f"{quote_given(arg)} is tracked but was never checked out (not in the working tree): "
            f"`dvfs restore {shell_word(arg)}` checks it out, then it can be moved; nothing was "
            "moved"
        )
    return (
        f"{quote_given(arg)} is tracked but not in the working tree (deleted): `dvfs restore "
        f"{shell_word(arg)}` brings it back to move it, or `dvfs rm {shell_word(arg)}` stages "
        "its removal; nothing was moved"
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
    the new ones untracked, and ``dvfs add`` of both records the move: a destination
    whose top-level name holds no tracked file, where ``status`` would look for none,
    is noted in the index (``Index.note_untracked``) before anything moves).
    """
    with repo.locked(), Walker(repo.root) as walker, Walker(repo.root) as other:
        index = repo.index()
        dst = repo.rel(dest, index)
        st = walker.lstat(dst)
        into = st is not None and statmod.S_ISDIR(st.st_mode) and not index.get(dst)
        if len(sources) > 1 and not into:
            raise UsageError(
                f"moving several paths needs a directory: {quote_given(dest)} is not one"
            )
        plan: list[Move] = []
        for a in sources:
            src = repo.rel(a, index)
            if not src:
                raise UsageError("cannot move the repository itself: nothing was moved")
            tracked = index.under(src)
            if any(src == m.src or under_path(src, m.src) or under_path(m.src, src) for m in plan):
                raise UsageError(
                    f"{quote_given(a)} is given twice, or inside another source: nothing was moved"
                )
            st = walker.lstat(src)
            if not tracked and st is None:
                raise UsageError(
                    f"{quote_given(a)} does not exist and is not tracked: nothing was moved"
                )
            if not tracked:
                raise UsageError(
                    f"{quote_given(a)} is not tracked: move it with mv, then `dvfs add` it"
                )
            if st is None:
                raise UsageError(_missing_source(a, tracked, index))
            is_dir = statmod.S_ISDIR(st.st_mode)
            entry = index.get(src)  # (a file or link; an empty directory's entry is one too)
            if (kind := special_kind(st.st_mode)) is not None:  # moved, it would be staged
                was = "a directory" if entry is None or entry.kind == Kind.DIR else "a file"
                raise UsageError(  # as what it replaced, which no working file holds
                    f"{quote_given(a)} is {kind} now, where dvfs tracks {was}, and dvfs stores "
                    f"no {kind.partition(' ')[2]}: move it away (`dvfs restore {shell_word(a)}` "
                    "then brings back what is tracked); nothing was moved"
                )
            if is_dir == (entry is not None and entry.kind != Kind.DIR):  # a file now a dir, or
                now, was = ("a directory", "a file") if is_dir else ("a file", "a directory")
                raise UsageError(
                    f"{quote_given(a)} is {now} now, where dvfs tracks {was}: "
                    f"`dvfs add {shell_word(a)}` records what is there, then move it; nothing "
                    "was moved"
                )
            if dest.endswith("/") and not into and not statmod.S_ISDIR(st.st_mode):
                # (as git: a file moves into DST/, which must be a directory)
                raise UsageError(
                    f"{quote_given(dest)} is not a directory: create it first (`mkdir -p`); "
                    "nothing was moved"
                )
            target = dst + b"/" + src.rpartition(b"/")[2] if into and dst else (
                src.rpartition(b"/")[2] if into else dst
            )  # fmt: skip
            if any(target == m.dst or under_path(target, m.dst) for m in plan):
                raise UsageError(f"two paths would move to {quoted(target)}: nothing was moved")
            _move_target(index, walker, src, target)
            plan.append(Move(src, target, len(tracked)))
        _refuse_conflicts(repo, [m.src for m in plan])
        # Where status would not look for untracked files (a new top-level name), the
        # destinations are noted before anything moves: a crash after the renames then
        # leaves them listed, as untracked, beside the sources listed as deleted.
        tops = {m.dst.partition(b"/")[0] for m in plan} - index.untracked_tops
        dsts = {m.dst for m in plan}
        noted = {top for top in tops if top in dsts or not index.under(top)}
        if noted:
            index.note_untracked(noted)
            index.save()
        done: list[Move] = []
        try:
            for m in plan:
                old_dir, old_leaf = walker.parent(m.src)
                new_dir, new_leaf = other.parent(m.dst)
                before = os.stat(old_leaf, dir_fd=old_dir, follow_symlinks=False)
                try:
                    rename_noreplace(old_dir, old_leaf, new_dir, new_leaf)
                except OSError as exc:
                    if exc.errno != errno.EXDEV:
                        raise
                    raise UsageError(
                        f"cannot move {quoted(m.src)} to {quoted(m.dst)}: they are on different "
                        "filesystems (a mount point lies between), where mv only renames; "
                        "nothing was moved (move it with mv, then `dvfs add` both paths)"
                    ) from None
                done.append(m)
                walker.forget(m.src)
                _restage(index, walker, m, before)
            index.untracked_tops -= noted  # (tracked there now)
            index.head = None
            index.save()
        except BaseException:
            for m in reversed(done):  # put back what moved: the index on disk is the old one
                with contextlib.suppress(OSError):
                    new_dir, new_leaf = other.parent(m.dst)
                    old_dir, old_leaf = walker.parent(m.src)
                    rename_noreplace(new_dir, new_leaf, old_dir, old_leaf)
            raise
        # Moved and recorded: a .gitignore that cannot be written now (a full disk) is
        # said as it is by add, and never undoes the move the index names.
        ignore_paths(repo.root, [m.dst for m in plan], warn)
    return plan


def _refuse_conflicts(repo: Repository, sources: list[bytes]) -> None:
    """UsageError if a conflict of the merge in progress lies at or below one of
    ``sources``: moved, it would stay a conflict under a name nothing holds (as git,
    which refuses to move an unmerged path)."""
    merge = merge_in_progress(repo)  # (vfs.ops.merging loaded only in a merge)
    if merge is None:
        return
    left = merge.unresolved()
    hit = sorted(p for p in left if any(p == s or under_path(p, s) for s in sources))
    if hit:
        shown = ", ".join(quoted(p) for p in hit[:5]) + (
            f" and {len(hit) - 5:,} more" if len(hit) > 5 else ""
        )
        it = "it" if len(hit) == 1 else "them"
        raise UsageError(
            f"{shown} {'is' if len(hit) == 1 else 'are'} in conflict in the merge of "
            f"{merge.rev}: settle {it} first (`dvfs restore --ours|--theirs PATH`, or edit "
            f"and `dvfs add PATH`), then move {it}; nothing was moved"
        )


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
                staged = staged._replace(ctime_ns=after.st_ctime_ns)
        index.put(new, staged)
