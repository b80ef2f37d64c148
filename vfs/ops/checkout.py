"""Restoring the working tree to a version: ``checkout``, and pull's fast-forward.

``switch`` restores through :func:`restore_version` too (``vfs.ops.branches``, with the
branch and tag commands); ``dvfs restore`` of PATHs is ``vfs.ops.restore``.

A checkout never destroys work that is not stored in a version unless ``force`` is
given: it refuses when a file it would overwrite or delete has unstaged or staged
changes (a staged removal, by ``rm --cached`` or ``mv``, included), or when an
untracked file stands where the version has different content. Moving to another
version carries a change to a path that version holds as the current one does (git's
rule). Deleted files are no conflict (their content is in a version already).

Everything is decided before anything changes: which files go, which are already
right, which are written. The chunks the files need that are only on a remote are
downloaded next (``vfs.remote.ondemand``): a remote that fails, or ``--offline``, stops the
checkout there, with HEAD, the index and the files as they were. Then files are
deleted, and written to a temporary sibling that is renamed over the old one, in
parallel.

A damaged object, or one that no remote holds, fails only the files that need it;
everything else is restored and the failures are reported. After a checkout of a
whole version (HEAD moves), such a file is *not checked out*: whatever stood there is
removed and the index holds the version's entry marked so (``vfs.repo.stage``), so that
``status`` says so and a later checkout, pull or restore brings it. After a checkout
of some PATHs (HEAD stays), a file that failed is left as it was, with its index
entry. The index then records the stat of every restored file, so the next
``status`` needs no hashing; it is written before HEAD moves.

A checkout killed while it writes files leaves temporary files beside them; a marker
in ``.dvfs`` says so, and the next checkout (or ``dvfs fsck``) removes them
(:func:`remove_temporaries_after_crash`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat as statmod
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from vfs._os.beneath import Walker
from vfs._os.gc_pause import paused_gc
from vfs.errors import (
    DvfsError,
    FormatError,
    KeptChanged,
    ObjectError,
    ObjectMissing,
    StorageFull,
    UncommittedChanges,
    UsageError,
)
from vfs.model.codec import Entry
from vfs.model.names import MAX_DEPTH, directories_above, reserved_path
from vfs.ops import merging
from vfs.ops.behind import same_entry
from vfs.ops.status import base_files, moved_past, quiet, work_state
from vfs.ops.workflow import resolved
from vfs.quoting import quoted, shell_word
from vfs.repo import cut_short
from vfs.repo.gitlink import GITIGNORE, LockPointer, ignore_paths, read_lock, write_lock
from vfs.repo.history import History
from vfs.repo.refs import Head
from vfs.repo.repository import Repository
from vfs.repo.stage import (
    Index,
    Staged,
    not_checked_out,
    row_same_content,
    staged_from_entry,
)  # fmt: skip
from vfs.store.durable import (
    at_once,
    fsync_dir,
    fsync_file,
    put_in_place,
    write_atomic,
    write_beside,
)
from vfs.store.pins import live_pins
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.remove import remove_many, remove_path, remove_temporaries, tracked_dir_only
from vfs.worktree.restore import (
    Identity,
    WrittenAhead,
    ensure_dir,
    identity,
    restore_many,
    write_ahead,
)
from vfs.worktree.scan import Found, Warn, lstat_or_none, special_kind

if TYPE_CHECKING:
    from vfs.model.version_codec import Version

# Test hook: ``DVFS_TEST_CHECKOUT_KILL_AT=written`` kills the process (SIGKILL) once a
# checkout has written its files, before the index and HEAD say so.
KILL_ENV = "DVFS_TEST_CHECKOUT_KILL_AT"


def _reached(step: str) -> None:
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class CheckoutReport:
    """What a checkout did."""

    label: str
    attached: str | None  # branch HEAD is now on, None when detached or PATHs given
    paths: bool = False  # only some paths were restored; HEAD did not move
    written: int = 0
    deleted: int = 0
    unchanged: int = 0
    fetched: int = 0  # chunks downloaded from the default remote first (vfs.remote.ondemand)
    failed: dict[bytes, DvfsError] = field(default_factory=dict)  # not restored, and why
    # changed by someone else after they were checked, before they were replaced: kept
    # as they were then, the version's file not written (vfs.worktree.restore._swap_in)
    kept: list[bytes] = field(default_factory=list)
    carried: list[bytes] = field(default_factory=list)  # local changes taken along, as they were


def under_any(path: bytes, prefixes: Sequence[bytes]) -> bool:
    """True if ``path`` is one of ``prefixes`` or below one (an empty prefix: everything)."""
    return any(not p or path == p or path.startswith(p + b"/") for p in prefixes)


@paused_gc(kept=True)
def restore_version(
    repo: Repository,
    target: bytes,
    workers: Workers,
    *,
    attach: str | None,
    paths: Sequence[str] = (),
    force: bool,
    warn: Warn,
    action: str = "checkout",
    source: str | None = None,
    offline: bool = False,
    yes: bool = False,
    rebuild_index: bool = False,
    detached_on: str | None = None,
    move_branch: Callable[[], None] | None = None,
    forcible: bool = True,
    keep_untracked: str | None = None,
) -> CheckoutReport:
    """The shared body of checkout, switch and pull (caller holds the lock).

    A whole checkout puts HEAD on ``attach``, else detaches it at ``target``, on the
    branch ``detached_on`` (default: HEAD's), once the working tree holds the version:
    a checkout that stops moves nothing. ``move_branch`` (pull's fast-forward moves
    the branch to ``target``) is called once the files are written, before the index
    is saved: a kill in between leaves a branch that moved past the working tree
    (``status`` says so; ``switch`` or ``pull`` finishes), never an index that holds
    a version its branch does not, which ``status`` would show as changes staged and
    ``commit`` would record as a version of its own.

    ``action`` is the command as messages name it; ``source`` the revision as the user
    wrote it, for hints (default: vN); ``forcible``: whether that command has
    ``--force`` (a merge's fast-forward has not), which refusals name only then.
    ``rebuild_index``: a damaged index is read as absent and written anew
    (``checkout --force`` of the whole tree), not refused. ``keep_untracked`` (the
    command, for its message: ``merge --abort``): with ``force``, tracked changes are
    replaced but an untracked file of other content, or a directory holding one, where
    the version has something is still refused, naming them.

    The cyclic garbage collector is paused throughout (``paused_gc``): a checkout
    makes a few objects per file, and its collections walked them all again and
    again (about 4% of the CPU time of restoring 20,000 files and 1 GiB). The
    restore helper process inherits the pause. The objects are handed to the
    collector's oldest generation when it ends (``kept``): its first collection
    walked them all otherwise, after the last file was written.
    """
    hist = repo.history
    version = hist.version(target)
    # (a whole checkout moves HEAD to the target's chain, where vN names it; PATHs leave
    # HEAD where it is, where another branch's vN may name another version)
    label = hist.revision(target) if paths else f"v{version.number}"
    empty: list[bytes] = []
    wanted = hist.flatten(version.tree, empty)
    whole = wanted  # (before PATHS narrow it: the base version's files, if it is this one)
    _check_writable(label, wanted, empty)
    index = repo.index(rebuild=rebuild_index)
    if index.damaged is not None:
        warn(f"the staging index was not readable: it is rebuilt from {label} and the working tree")
    rels = [repo.rel(p, index) for p in paths]
    if rels:
        for arg, rel in zip(paths, rels, strict=True):
            if not any(under_any(q, [rel]) for q in chain(wanted, empty)) and not index.under(rel):
                raise UsageError(f"{arg} is not in {label} and is not tracked")
        wanted = {p: e for p, e in wanted.items() if under_any(p, rels)}
        empty = [p for p in empty if under_any(p, rels)]
    # Large files nothing stands at are written unnamed meanwhile (vfs.worktree.restore)
    ahead = write_ahead(repo.root, wanted, repo.store)
    marks = None
    try:
        if ahead is not None:  # (a checkout that writes: its marks are fsynced meanwhile)
            marks = _Marks(repo, cut_short.CutShort(
                action, target, label, index.base, _again(action, source or label, paths),
                tuple(rels),
            ))  # fmt: skip
        return _decide_and_write(
            repo, target, workers, version, label, wanted, whole, empty, index, rels, ahead,
            marks, attach=attach, paths=paths, force=force, warn=warn, action=action,
            source=source, offline=offline, yes=yes, detached_on=detached_on,
            move_branch=move_branch, forcible=forcible, keep_untracked=keep_untracked,
        )  # fmt: skip
    finally:
        if marks is not None:
            marks.close()
        if ahead is not None:
            ahead.close()


def _decide_and_write(
    repo: Repository,
    target: bytes,
    workers: Workers,
    version: Version,
    label: str,
    wanted: dict[bytes, Entry],
    whole: dict[bytes, Entry],
    empty: list[bytes],
    index: Index,
    rels: list[bytes],
    ahead: WrittenAhead | None,
    marks: _Marks | None,
    *,
    attach: str | None,
    paths: Sequence[str],
    force: bool,
    warn: Warn,
    action: str,
    source: str | None,
    offline: bool,
    yes: bool,
    detached_on: str | None,
    move_branch: Callable[[], None] | None,
    forcible: bool,
    keep_untracked: str | None,
) -> CheckoutReport:
    """The rest of :func:`restore_version`, once the version's files are known."""
    hist = repo.history
    # What is tracked in scope: records (PATHs), or, for the whole tree, the index's
    # rows, whose records are built only for the files found in the working tree
    # (``rows``; the index's records are replaced at the end: see ``fresh``).
    rows = not rels and index.holds_rows()
    scope: Mapping[bytes, Any] = {}
    same_content: Callable[[Any, Entry], bool] = row_same_content
    if rows:
        pass  # (scope: the rows once work_state has refreshed them)
    elif rels:
        scope = {p: s for p, s in index.entries.items() if under_any(p, rels)}
        # a file tracked where the paths need a directory (d/x, for d/x/y) goes with
        # them: the index never stages a path both as a file and as a directory
        entries = index.entries
        scope.update((d, entries[d]) for d in _directories(wanted, empty) if d in entries)
        same_content = Staged.same_content
    else:
        scope, same_content = dict(index.entries), Staged.same_content
    remove_temporaries_after_crash(repo, warn)
    if marks is not None:
        marks.join()  # (no other thread may run where work_state forks its helpers)
    if rows:  # (untracked files are not looked for: they are no concern here)
        untracked_tops, index.untracked_tops = index.untracked_tops, set()
        try:
            state = work_state(repo, index, workers, warn, valid=whole)  # (stats refreshed)
        finally:
            index.untracked_tops = untracked_tops
        scope = index.row_table() or {}  # (as refreshed)
        staged: Callable[[bytes], Staged | None] = index.get
    else:
        sub = Index(index.path)
        sub.written_ns = index.written_ns
        sub.entries = cast("dict[bytes, Staged]", scope)
        state = work_state(repo, sub, workers, warn, valid=whole)
        index.entries.update(sub.entries)  # stats refreshed by work_state
        staged = cast("Callable[[bytes], Staged | None]", sub.entries.get)
    unknown = set(state.unreadable)  # tracked, changed, and not readable: content unknown
    fresh: dict[bytes, Staged] = {}  # records made by this checkout (the whole tree: rows)

    def tracked(rel: bytes) -> bool:
        return rel in scope if rows else rel in index.entries or rel in scope

    # Untracked files where the version has something: adopt if equal, else conflict.
    # Untracked things that are not files where the version has a file or link, or not
    # directories where it needs a directory (a link, say), are replaced only by --force.
    untracked_here: list[Found] = []
    nothing: set[bytes] = set()  # paths where the version has a file and nothing stands
    # A FIFO, socket or device at a tracked path (deleted, or never checked out):
    # replaced (never opened) only by --force, as an untracked one.
    blocked = [(p, f"{kind} at a tracked path") for p, kind in state.special.items()]
    with Walker(repo.root) as walker:
        for p in wanted:
            if p in scope:
                continue
            if (st := walker.lstat(p)) is None:
                nothing.add(p)
                continue
            if statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode):
                untracked_here.append(Found(p, st))
            elif (kind := special_kind(st.st_mode)) is not None:
                blocked.append((p, f"{kind}, not tracked, where {label} has a file"))
            elif not tracked_dir_only(repo.root, p, tracked):
                blocked.append((p, "a directory with untracked files"))
        for d in sorted(_directories(wanted, empty)):
            st = walker.lstat(d)
            if st is None or statmod.S_ISDIR(st.st_mode) or (tracked(d) and d not in wanted):
                continue  # missing, a directory, or tracked and removed below
            what = "a symbolic link" if statmod.S_ISLNK(st.st_mode) else "a file"
            what = special_kind(st.st_mode) or what  # (a FIFO is no file to a user)
            blocked.append((d, f"{what}, not tracked, where {label} has a directory"))
    on_disk = dict(Hasher(repo.root, repo.chunker, None, workers).stage_many(untracked_here))
    deleted = set(state.deleted) | set(state.not_checked_out)
    current: dict[bytes, Staged] = {}
    for p in scope:
        if p not in deleted and (rec := staged(p)) is not None:
            current[p] = rec
    current.update(state.current)
    current.update(on_disk)
    if force and keep_untracked is not None:
        in_way = [
            (f.rel, "an untracked file")
            for f in untracked_here
            if f.rel not in on_disk or not on_disk[f.rel].same_on_disk(wanted[f.rel])
        ] + blocked
        if in_way:
            shown = ", ".join(f"{quoted(p)} ({why})" for p, why in sorted(in_way)[:5])
            more = f" and {len(in_way) - 5:,} more" if len(in_way) > 5 else ""
            raise UsageError(
                f"{keep_untracked} would replace {shown}{more}: move them away first, or "
                "use --force to replace them"
            )
    # Moving to another version carries a local change to a path that version leaves
    # as it was (git's rule); restoring the version itself overwrites nothing unasked.
    carry: set[bytes] = set()
    if not force:
        if blocked:
            shown = ", ".join(f"{quoted(p)} ({why})" for p, why in blocked[:5])
            more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
            # (said of a link alone: of a FIFO or a file it is no answer to anything)
            links = any(why.startswith("a symbolic link") for _, why in blocked[:5])
            note = " (a symbolic link is replaced, never followed)" if links else ""
            raise UsageError(
                f"{action} would replace {shown}{more}: move it away, or use --force to "
                f"replace it{note}"
                if forcible
                else f"{action} would replace {shown}{more}: move it away; nothing was changed"
            )
        committed = base_files(hist, index, known=(version.tree, whole))
        # `checkout REV PATH` asks for PATH as REV has it: a change there is never
        # carried (it is refused, as for HEAD's); pull's PATHs say what to download.
        carries = not paths or action == "pull"
        # (to another branch, even at the same version, is a move too: `dvfs branch b`
        # then `dvfs switch b` takes the changes along, as git does)
        now = hist.head()
        elsewhere = attach is not None and (attach != now.branch or now.detached is not None)
        moving = carries and (target != (index.base or hist.head_id()) or elsewhere)
        conflicts = []
        loose: set[bytes] = set()  # untracked files whose bytes would be replaced
        removals: set[bytes] = set()  # staged removals the version's file would undo
        unreadable = []
        for p in set(state.modified) | set(on_disk) | unknown:
            e = wanted.get(p)
            if e is not None and p not in unknown and current[p].same_on_disk(e):
                continue
            if moving and (p in state.modified or p in unknown) and _same(committed.get(p), e):
                carry.add(p)
            elif p in unknown:
                unreadable.append(p)
            else:
                conflicts.append(p)
                if p in on_disk:
                    loose.add(p)
        for p, s in scope.items():  # staged but not committed, and would be replaced
            c = committed.get(p)
            staged_new = c is None or not same_content(s, c)
            e = wanted.get(p)
            if staged_new and (e is None or not same_content(s, e)):
                if moving and _same(c, e):
                    carry.add(p)
                else:
                    conflicts.append(p)
        if not paths:  # staged removals (`rm --cached`, `mv`'s old name): the same rule
            in_index = scope if rows else index.entries
            for p, c in committed.items():
                e = wanted.get(p)
                if p in in_index or e is None:
                    continue  # (not removed, or the version lacks it too: stays removed)
                if moving and _same(c, e):
                    carry.add(p)
                else:
                    conflicts.append(p)
                    removals.add(p)
        if unreadable:
            shown = ", ".join(quoted(p) for p in sorted(unreadable)[:10])
            raise UsageError(
                f"{action} cannot read {shown} to check for uncommitted changes: "
                "nothing was changed; make it readable"
                + (", or use --force to replace it" if forcible else "")
            )
        if conflicts:
            advice = (
                _in_merge(repo)
                or _cut_short(repo, index.base)
                or (_behind(hist, index, now.branch, target) if forcible and not paths else None)
            )
            if advice is None and not forcible:
                advice = (
                    "move the untracked files away (or `dvfs add` and commit them); "
                    "nothing was changed"
                )
            raise UncommittedChanges(
                action,
                sorted({quoted(p) for p in conflicts}),
                [quoted(p) for p in loose],
                removed=[quoted(p) for p in removals],
                what=advice,
            )
    report = CheckoutReport(label, None if paths else attach, bool(paths), carried=sorted(carry))
    # What to do, decided before anything changes: files to delete, files that hold
    # the version's bytes already (recorded in the index, which is saved only at the
    # end; or their mtime to align first), files to write.
    doomed = [p for p in sorted(scope) if p not in wanted and p not in carry]
    retime: list[tuple[bytes, Entry]] = []
    todo: list[tuple[bytes, Entry]] = []
    # What stood where a file is written, as checked here: it is replaced only if it
    # is still that (a user's write meanwhile is kept: vfs.worktree.restore._swap_in).
    checked: dict[bytes, Identity] = dict.fromkeys(nothing)
    with Walker(repo.root) as walker:
        for p, e in wanted.items():
            if p in carry:
                continue
            cur = current.get(p)
            st = None if cur is None or p in unknown else walker.lstat(p)
            if cur is None or st is None or not cur.same_on_disk(e):
                todo.append((p, e))
                if cur is not None and p not in unknown:
                    checked[p] = _checked_as(cur, st)
            elif st.st_mtime_ns == e.mtime_ns:
                fresh[p] = staged_from_entry(e, st)
                report.unchanged += 1
            elif st.st_nlink > 1:
                todo.append((p, e))  # same bytes, shared with another name: never changed
                checked[p] = _checked_as(cur, st)
            else:
                retime.append((p, e))
                checked[p] = _checked_as(cur, st)  # (not written: to tell a change since)
    # The data the files need, fetched now if it is only on a remote: a remote that
    # fails, or --offline, stops the checkout here, before anything has changed.
    where: dict[bytes, tuple[int, int]] = {}  # (the chunks' places, if all are here)
    unavailable, report.fetched = fetch_missing(
        repo, todo, workers, command=f"{action} {source or label}",
        gets_them=f"dvfs pull {source or label}{''.join(' ' + a for a in paths)}",
        offline=offline, expansion=None if yes else (target, rels, label), where=where,
    )  # fmt: skip
    for p, why in unavailable.items():
        report.failed[p] = ObjectError(why)
    todo = [(p, e) for p, e in todo if p not in report.failed]
    if ahead is not None:
        ahead.only(p for p, _ in todo)  # (the others written ahead stop now)
    again = "dvfs pull" if action == "pull" else (
        f"dvfs {action} {source or label}{''.join(' ' + a for a in paths)}"
    )  # fmt: skip
    # (before the first file changes: see vfs.repo.cut_short; a switch that changes no
    # file needs no room for it). PATHs leave another checkout's record as it is, unless
    # they finish it: the same version, at or below these PATHs.
    prior = cut_short.read(repo.dir, index.base) if paths else None
    finishes = (
        prior is not None and bool(prior.paths) and prior.to == target
        and all(under_any(q, rels) for q in prior.paths)
    )  # fmt: skip
    recorded = bool(doomed or retime or todo) and (prior is None or finishes)
    ready = _durable
    pending = None
    if marks is not None:
        marks.place(record=recorded, restoring=bool(todo))
        ready, pending = marks.wait, marks.pending
    else:
        record = cut_short.CutShort(
            action, target, label, index.base, _again(action, source or label, paths), tuple(rels)
        ) if recorded else None  # fmt: skip
        _mark_writing(repo, record, restoring=bool(todo))
    with _interrupted(label, again, report):
        if doomed or retime:
            ready()
        # (as checked: a file changed since is kept, not deleted)
        gone = {p: (r.ino, r.size, r.mtime_ns) for p in doomed
                if (r := current.get(p)) is not None and r.ctime_ns >= 0}  # fmt: skip
        report.deleted = remove_many(repo.root, doomed, workers, gone, report.kept)
        if not rows:
            for p in doomed:
                if p not in report.kept:  # (PATHs: a file kept keeps its entry)
                    index.entries.pop(p, None)
        with Walker(repo.root) as walker:
            for p, e in retime:  # same bytes: only align the recorded mtime
                dir_fd, leaf = walker.parent(p)
                was = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
                if identity(was) != checked[p]:  # changed since: no stat, `status` hashes it
                    fresh[p] = staged_from_entry(e, None)
                    report.kept.append(p)
                    continue
                os.utime(leaf, ns=(e.mtime_ns, e.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
                st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
                same = (st.st_ino, st.st_size) == (was.st_ino, was.st_size)
                fresh[p] = staged_from_entry(e, st if same else None)
                report.unchanged += 1

        def replace(rel: bytes) -> bool:  # something else stands where the version has rel
            if force:
                return True
            st = lstat_or_none(repo.root, rel)
            if st is not None and statmod.S_ISDIR(st.st_mode):
                return tracked_dir_only(repo.root, rel, tracked)
            return tracked(rel)

        def encode_ahead(done: Mapping[bytes, Staged]) -> None:
            """Encode the index's records as they will most likely be (see the end),
            while the large files' last writes are in flight."""
            writing = dict(todo)
            guess: dict[bytes, Staged] = {}
            for p in chain(wanted, carry):
                rec = done.get(p) or fresh.get(p)
                if rec is None:
                    e = writing.get(p)
                    rec = staged(p) if e is None else staged_from_entry(e, None)
                if rec is not None:
                    guess[p] = rec
            index.encode_ahead(guess)

        stats, failed = restore_many(
            repo.root, todo, repo.store, workers, replace, ahead, ready, where or None, pending,
            None if paths else encode_ahead, checked,
        )  # fmt: skip
        ready()  # (restore_many has called it, unless it had nothing to write)
        if todo:
            drop_marker(repo.dir / RESTORING)
        _reached("written")
        changed = [p for p, exc in failed.items() if isinstance(exc, KeptChanged)]
        for p in changed:
            del failed[p]
            if not paths:  # (the version's entry, no stat: `status` hashes it, says modified)
                fresh[p] = staged_from_entry(wanted[p], None)
        report.kept = sorted(report.kept + changed)
        report.failed.update(failed)
        with Walker(repo.root) as walker:
            for p in empty:  # the version's empty directories (a snapshot of a mount records them)
                try:
                    ensure_dir(walker, p, lambda _: False)
                except UsageError:
                    warn(
                        f"{quoted(p)}: not made as an empty directory: something else is in the way"
                    )
    for p, _ in todo:
        if p in stats:
            fresh[p] = stats[p]
            report.written += 1
    if not paths:
        # A file that could not be restored is not checked out: whatever stood there
        # (committed bytes of the version left, or what --force discards) is removed,
        # and the index holds the version's entry, so `status` says so and a later
        # checkout, pull or restore brings it.
        with Walker(repo.root) as walker:
            for p in sorted(report.failed):
                st = walker.lstat(p)
                if st is not None and not statmod.S_ISDIR(st.st_mode):
                    remove_path(walker, p)
                fresh[p] = not_checked_out(wanted[p])
        # The version's paths and those carried: as made here, else as staged before.
        made: dict[bytes, Staged] = {}
        for p in chain(wanted, carry):
            if (rec := fresh.get(p)) is not None or (rec := staged(p)) is not None:
                made[p] = rec
        index.entries = made
        index.head = None if carry else target
        index.base = target
        index.removed_absent.clear()  # (the index is the version's now: see vfs.repo.stage)
        index.numbers[target] = version.number  # (status names it without reading it)
    else:
        index.entries.update(fresh)
        index.head = None  # (a path not restored keeps its entry, and its file, as they were)
    if move_branch is not None:
        move_branch()
    index.save()
    if paths and (recorded or finishes):
        cut_short.end(repo.dir)  # (the index holds what it wrote)
    if not paths:
        branch = attach or detached_on or hist.head().branch
        left = None
        with contextlib.suppress(FormatError):  # (a damaged record: merge --abort's to say)
            left = merging.live(repo.dir, repo.refs)
        repo.refs.set_head(Head(branch) if attach else Head(branch, target))
        merging.remove(repo.dir)  # a whole checkout leaves a merge in progress (vfs.ops.merging)
        write_lock(repo.root, LockPointer(branch, version.number, target))
        cut_short.end(repo.dir)
        if left is not None and (attach != left.branch or target != left.ours):
            kept = f": changes to {names_of(sorted(carry))} stay" if carry else ""
            warn(  # (as `switch -c` says it; HEAD back at the merge's start is an abort)
                f"the merge of {left.rev} into {left.branch} in progress is given up{kept}, "
                "and a commit here records no merge"
            )
    keep_ignored(repo, list(stats), warn)
    return report


def _again(action: str, rev: str, paths: Sequence[str]) -> str:
    """The command that finishes ``action`` to ``rev`` of ``paths`` (all: none given),
    as a shell takes it."""
    if not paths or action == "pull":
        return f"dvfs {action}" if action == "pull" else f"dvfs {action} {shell_word(rev)}"
    named = " ".join(shell_word(p) for p in paths)
    if len(named) > 4096:  # (the record is bounded: cut_short.MAX_RECORD)
        named = f"PATH... (the {len(paths):,} PATHs given)"
    return f"dvfs {action} {shell_word(rev)} -- {named}"


def keep_ignored(repo: Repository, written: list[bytes], warn: Warn) -> None:
    """Keep the root ``.gitignore`` naming the data, as ``dvfs add`` does
    (``vfs.repo.gitlink.ignore_paths``), for the top-level names of files a checkout,
    switch, pull or merge ``written``: new data they bring is not shown untracked by
    ``git status``. Called once the files and refs are in place: a ``.gitignore``
    that cannot be written (a full disk) is a warning, never a failed checkout."""
    tops = sorted({p.partition(b"/")[0] for p in written})
    try:
        ignore_paths(repo.root, tops, warn)
    except (DvfsError, OSError) as exc:
        warn(f"{GITIGNORE} was not updated ({exc}): `dvfs add` of the new data updates it")


class CheckoutInterrupted(DvfsError):
    """Ctrl-C stopped a checkout while it changed the working tree."""

    exit_code = 130


@contextlib.contextmanager
def _interrupted(label: str, again: str, report: CheckoutReport) -> Iterator[None]:
    """Turn Ctrl-C, or a full disk, while the working tree changes into a line saying
    what it holds.

    Each file is replaced whole (never half-written), but some of ``label``'s files
    are there and others not (files it does not have may be deleted already), and
    the index and HEAD, written last, still describe what was there before: so
    ``status`` lists the files written as changed (and that the checkout was cut
    short, naming its paths if it was given any: ``vfs.repo.cut_short``), and the
    next checkout refuses to
    overwrite them. The line says so, and what finishes the checkout (``again``) or,
    for a whole checkout, what puts HEAD's files back.
    """
    paths = report.paths
    back = "" if paths else ", or `dvfs restore .` to put back the files HEAD holds"
    held = "the index" if paths else "HEAD and the index"
    try:
        yield
    except KeyboardInterrupt:
        raise CheckoutInterrupted(
            f"interrupted while writing the files of {label}: some are written, and "
            f"{held} still describe what was there before, so status lists them as "
            f"changed; run `{again}` again to finish{back}"
        ) from None
    except StorageFull:
        gone = f"{report.deleted:,} files {label} does not have were deleted and " if (
            report.deleted
        ) else ""  # fmt: skip
        raise StorageFull(
            f"the disk is full while writing the files of {label}: {gone}some of its "
            f"files may be written, while {held} still describe what was there before "
            f"(status says so); free some space and run `{again}` again to finish{back}"
        ) from None


RESTORING = "restoring"  # .dvfs/restoring: files are being written into the working tree


@contextlib.contextmanager
def restoring(repo: Repository) -> Iterator[None]:
    """Mark ``.dvfs/restoring`` (an empty file) while files are written into the working tree.

    A marker left behind (the process was killed, or failed) makes the next checkout
    remove the temporary files the writes may have left (see
    :func:`remove_temporaries_after_crash`); it is removed once the writes are over.
    """
    marker = repo.dir / RESTORING
    drop_marker(marker)  # (one of another kind fails here, before any file is written)
    write_atomic(marker, b"")
    yield
    drop_marker(marker)


def _durable() -> None:
    """Nothing to wait for: :func:`_mark_writing` made its marks durable already."""


def _mark_writing(repo: Repository, record: cut_short.CutShort | None, *, restoring: bool) -> None:
    """Write ``record`` (``vfs.repo.cut_short``) and, if ``restoring``, the
    ``.dvfs/restoring`` marker (see :func:`restoring`), durably, before the first
    file of the working tree changes.

    Each is written beside its name, both fsynced at once, renamed in, and the
    directory fsynced once: two disk round trips, where writing them one after the
    other took four. Those waited behind the large file's direct writes, which have
    begun by then (:func:`~vfs.worktree.restore.write_ahead`), with nothing else to
    do meanwhile: 0.03-0.17 s on the benchmark's disk, 0.35-0.47 s on a loop device,
    before the first small file.
    """
    items: list[tuple[Path, bytes]] = []
    if restoring:
        marker = repo.dir / RESTORING
        drop_marker(marker)  # (one of another kind fails here, before any file is written)
        items.append((marker, b""))
    if record is not None:
        items.append((repo.dir / cut_short.RECORD, cut_short.encoded(record)))
    if not items:
        return
    beside: list[Path] = []
    try:
        for path, data in items:
            beside.append(write_beside(path, data, sync=False))
        failed = [e for e in at_once([partial(fsync_file, t) for t in beside], "dvfs-mark") if e]
        if failed:
            raise failed[0]
    except BaseException:
        for tmp in beside:
            with contextlib.suppress(OSError):
                tmp.unlink()
        raise
    for (path, _), tmp in zip(items, beside, strict=True):
        put_in_place(tmp, path, sync=False)
    fsync_dir(repo.dir)


class _Marks:
    """What :func:`_mark_writing` writes, begun while the checkout decides.

    A checkout that writes a large file ahead (:func:`~vfs.worktree.restore.write_ahead`)
    has its direct writes queued by the time it has decided, and each fsync waits
    behind them. So the record (as :func:`~vfs.repo.cut_short.begin` writes it) and
    the marker are written beside their names at once, and fsynced on a thread while
    the index's records are read; :meth:`place` renames in those the checkout needs
    and fsyncs the directory on a thread, while the small files are sorted and
    batched; :meth:`wait` returns once that is done, before the first file changes.
    Until :meth:`place` nothing is seen under their names: a checkout that stops,
    or writes nothing, leaves neither (:meth:`close` removes the temporary files; a
    kill leaves them to ``dvfs fsck``, as it does those of any atomic write).
    """

    def __init__(self, repo: Repository, record: cut_short.CutShort) -> None:
        self._dir = repo.dir
        self._items = [
            (repo.dir / RESTORING, b""),
            (repo.dir / cut_short.RECORD, cut_short.encoded(record)),
        ]
        self._beside: list[Path] = []
        self._failed: BaseException | None = None
        self._thread: threading.Thread | None = None
        try:
            for path, data in self._items:
                self._beside.append(write_beside(path, data, sync=False))
        except BaseException:
            self.close()
            raise
        self._thread = threading.Thread(target=self._sync, name="dvfs-mark", daemon=True)
        self._thread.start()

    def _sync(self) -> None:
        errors = at_once([partial(fsync_file, t) for t in self._beside], "dvfs-mark")
        self._failed = next((e for e in errors if e is not None), None)

    def join(self) -> None:
        """Wait for the fsyncs: before a helper process may be forked (no other
        thread may run then: ``vfs._os.helper_process``)."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def place(self, *, record: bool, restoring: bool) -> None:
        """Put the record and the marker (each if asked) in place; the directory's
        fsync, which makes them durable, runs on a thread till :meth:`wait`."""
        self.join()
        try:
            if self._failed is not None:
                raise self._failed
            if not (record or restoring):
                return
            if restoring:
                drop_marker(self._items[0][0])  # (one of another kind fails here)
            for (path, _), tmp, wanted in zip(
                self._items, self._beside, (restoring, record), strict=True
            ):
                if wanted:
                    put_in_place(tmp, path, sync=False)
        finally:
            self.close()
        self._thread = threading.Thread(target=self._sync_dir, name="dvfs-mark", daemon=True)
        self._thread.start()

    def _sync_dir(self) -> None:
        try:
            fsync_dir(self._dir)
        except BaseException as exc:
            self._failed = exc

    def pending(self) -> bool:
        """Whether :meth:`wait` would still wait for the fsyncs."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self) -> None:
        """Wait till what :meth:`place` put in place is durable: before the first
        file changes (the small files' order is worked out meanwhile:
        :func:`~vfs.worktree.restore.restore_many`'s ``ready``)."""
        self.join()
        if self._failed is not None:
            raise self._failed

    def close(self) -> None:
        """Remove the temporary files not put in place."""
        self.join()
        for tmp in self._beside:
            with contextlib.suppress(OSError):
                tmp.unlink()
        self._beside = []


def drop_marker(marker: Path) -> None:
    """Remove ``.dvfs/restoring``; FormatError, saying what to do, if a directory is
    there (an archive made oddly), which no checkout could mark or unmark."""
    try:
        marker.unlink(missing_ok=True)
    except IsADirectoryError:
        raise FormatError(
            f"{marker} is a directory, where dvfs marks a checkout writing files: move it "
            "away, then run the command again"
        ) from None


def remove_temporaries_after_crash(repo: Repository, warn: Warn) -> int:
    """If a restore was killed (``.dvfs/restoring`` is there), remove its temporary files.

    The caller holds the repository lock, so no other dvfs command is writing them;
    a pipeline run writes without it, so while one lives (a writing pin,
    ``vfs.store.pins``) the marker and the files are left for later. Returns how many were
    removed.
    """
    marker = repo.dir / RESTORING
    if not marker.exists() or any(p.writing for p in live_pins(repo.dir)):
        return 0
    index = repo.index()
    removed = remove_temporaries(repo.root, lambda p: index.get(p) is not None)
    drop_marker(marker)
    if removed:
        warn(
            f"removed {removed:,} temporary files an interrupted checkout left in the working tree"
        )
    return removed


def _cut_short(repo: Repository, base: bytes | None) -> str | None:
    """What to do about changes a whole checkout that was cut short left (its files,
    not the user's work: ``vfs.repo.cut_short``), or None if none was."""
    rec = cut_short.read(repo.dir, base)
    if rec is None:
        return None
    return (
        f"they are files of {rec.label} that a {rec.action} cut short left: run "
        f"`{rec.again}` to finish it, or use --force to replace them"
    )


def _behind(hist: History, index: Index, branch: str, target: bytes) -> str | None:
    """What to do about changes in the way of bringing a working tree the branch moved
    past (a snapshot of a mount, a pull elsewhere) up to date, or None if that is not
    what is asked: commit refuses there, so "commit them" would lead back here."""
    behind = moved_past(hist, index)
    if behind is None or index.base is None or target != hist.head_id():
        return None
    return (
        f"{branch} moved to {hist.label(target)} since this working tree was at {behind}, "
        f"and changed them too: keep your changes on a branch of their own (`dvfs switch -c "
        f"NAME {hist.revision(index.base)}` takes them along), commit them there, then "
        f"`dvfs switch {branch}` and `dvfs merge NAME`; or use --force to discard them"
    )


def _in_merge(repo: Repository) -> str | None:
    """What keeps changes a checkout would overwrite while a merge with conflicts is in
    progress (no commit is taken until they are settled), or one stopped midway (no
    commit is taken at all: ``merge --abort`` leaves it), or None if there is none."""
    merge = merging.live(repo.dir, repo.refs)
    if merge is not None and not merge.ready:
        return (
            "the merge in progress stopped midway, so no commit can keep them: `dvfs merge "
            "--abort` goes back to the branch's version (then `dvfs merge "
            f"{shell_word(merge.rev)}` again); or use --force to discard them"
        )
    left = [] if merge is None else merge.unresolved()
    if not left:
        return None
    shown = ", ".join(quoted(p) for p in left[:5]) + (
        f" and {len(left) - 5} more" if len(left) > 5 else ""
    )
    return (
        f"the merge in progress has conflicts left ({shown}), so no commit can keep them "
        "yet: settle each conflict (`dvfs restore --ours|--theirs PATH`, or edit it and "
        "`dvfs add PATH`) and `dvfs commit`, or give the merge up with `dvfs merge --abort`; "
        "or use --force to discard them"
    )


def _check_writable(label: str, wanted: dict[bytes, Entry], empty: list[bytes]) -> None:
    """FormatError naming a path of the version that dvfs never writes into a working tree.

    Such a version cannot be decoded in the first place (``vfs.model.codec``); this is the
    last line, for a name that got through: a reserved one, or one nested deeper than
    ``MAX_DEPTH``.
    """
    bad = reserved_path(chain(wanted, empty))
    if bad is not None:
        raise FormatError(
            f"{label} holds {quoted(bad)}, a name dvfs never writes into a working tree "
            "(.git, .dvfs or a lookalike, or .versions at the top): nothing was changed"
        )
    deep = next((p for p in chain(wanted, empty) if p.count(b"/") > MAX_DEPTH), None)
    if deep is not None:
        raise FormatError(
            f"{label} holds {quoted(deep[:200])}..., nested more than {MAX_DEPTH} directories "
            "deep: nothing was changed"
        )


def _directories(wanted: dict[bytes, Entry], empty: list[bytes]) -> set[bytes]:
    """Every directory the version needs: above its files and links, and its empty ones."""
    return directories_above(chain(wanted, empty)) | set(empty)


def _checked_as(cur: Staged, st: os.stat_result | None) -> Identity:
    """The identity of a working file ``cur`` records, which lstat ``st`` found now
    (None: not there), for :func:`~vfs.worktree.restore.restore_many`'s ``checked``:
    one no file has if it changed since ``cur``'s stat was taken."""
    if st is None:
        return None
    if cur.ctime_ns >= 0 and (st.st_ino, st.st_mtime_ns, st.st_ctime_ns) != (
        cur.ino, cur.mtime_ns, cur.ctime_ns,
    ):  # fmt: skip
        return -1, -1, -1
    return identity(st)


def _same(a: Entry | None, b: Entry | None) -> bool:
    """True if two versions hold the same thing at a path (both nothing counts)."""
    return a is b if a is None or b is None else same_entry(a, b)


def checkout(
    repo: Repository,
    rev: str | None,
    paths: Sequence[str],
    workers: Workers,
    *,
    force: bool = False,
    from_lock: bool = False,
    warn: Warn = quiet,
    offline: bool = False,
    yes: bool = False,
    action: str = "checkout",
    keep_untracked: str | None = None,
) -> CheckoutReport:
    """Restore the working tree (or just ``paths``) to a revision.

    Without paths, HEAD follows: onto the branch when ``rev`` names a branch or the
    current branch's latest version, else detached at that version. Data that is
    only on the default remote is downloaded first unless ``offline`` (see the
    module docstring); ``yes`` allows a download that expands far
    (``vfs.remote.receive.check_expansion``). ``action``: the command messages name
    (``pull`` checks out this way too). PATHs of a merge in progress are staged as
    REV holds them, so their conflicts are settled, as git's ``checkout REV -- PATH``.
    ``keep_untracked``: as :func:`restore_version`'s.
    """
    with repo.locked():
        hist = repo.history
        head = hist.head()
        if from_lock:
            ptr = read_lock(repo.root)
            target = ptr.oid
            try:
                hist.version(target)
            except ObjectMissing:
                raise UsageError(
                    f"dvfs.lock names version {target.hex()[:12]} ({ptr.branch} v{ptr.number}), "
                    "which this repository does not have: `dvfs fetch` gets it from a remote "
                    "that has it (if none has, whoever committed dvfs.lock must `dvfs push` it)"
                ) from None
            branch = ptr.branch
        else:
            if rev is None:
                raise UsageError("say which version to check out (for example HEAD or v1)")
            target = hist.resolve(rev)
            branch = rev if repo.refs.get(f"refs/heads/{rev}") == target else head.branch
        attach = branch if repo.refs.get(f"refs/heads/{branch}") == target else None
        report = restore_version(
            repo, target, workers, attach=attach, paths=paths, force=force, warn=warn,
            detached_on=branch if from_lock else None,
            source=rev if rev is not None and not _is_id(rev, target) else None,
            offline=offline, yes=yes, action=action,
            rebuild_index=force and not paths, keep_untracked=keep_untracked,
        )  # fmt: skip
        if paths:  # staged as REV holds them: a merge's conflicts there are settled,
            # but for one a file of which was not restored (its entry and file as they were)
            rels = [repo.rel(p) for p in paths]
            if report.failed and (merge := merging.live(repo.dir, repo.refs)) is not None:
                rels = [
                    c
                    for c in merge.unresolved()
                    if under_any(c, rels) and not any(under_any(f, [c]) for f in report.failed)
                ]
            resolved(repo, rels)
        return report


def _is_id(rev: str, oid: bytes) -> bool:
    """True if ``rev`` is (a prefix of) the hex id ``oid``: pull passes ids, users names."""
    return len(rev) >= 4 and oid.hex().startswith(rev.lower())


def fetch_missing(
    repo: Repository,
    items: Sequence[tuple[bytes, Entry]],
    workers: Workers,
    *,
    command: str,
    gets_them: str,
    offline: bool,
    expansion: tuple[bytes, list[bytes], str] | tuple[()] | None,
    where: dict[bytes, tuple[int, int]] | None = None,
) -> tuple[dict[bytes, str], int]:
    """Download the chunks of ``items`` that the local store lacks (``vfs.remote.ondemand``).

    Returns the files whose data no remote holds (path -> why) and how many chunks
    were downloaded; raises as ``ondemand.ensure_local`` does (``--offline``, a
    remote that fails). Before a download, ``expansion`` (version, paths, label) is
    checked with ``vfs.remote.receive.check_expansion``, ``()`` checks the files themselves,
    None (``--yes``) nothing. vfs.remote.ondemand, with the remotes and their backends, is
    imported only when something is missing: 25 ms that a checkout of local data, and
    every branch or tag command, do not pay.

    The chunks are looked up in one pass (``ObjectStore.read_order``); when all are
    here, ``where`` (if given) receives their places, for ``restore_many`` to read
    them in pack order without looking them up again.
    """
    oids = {c.oid for _, e in items for c in e.chunks}
    found = repo.store.read_order(oids)
    if len(found) == len(oids):
        if where is not None:
            where.update(found)
        return {}, 0
    from vfs.remote import ondemand, receive

    def check() -> None:
        if expansion:
            receive.check_expansion(repo.history, *expansion)
        else:
            ondemand.check_files_expansion(items, command)

    got = ondemand.ensure_local(
        repo, items, workers, command=command, gets_them=gets_them, offline=offline,
        before=None if expansion is None else check,
    )  # fmt: skip
    return got.unavailable, got.objects


def names_of(paths: Sequence[bytes]) -> str:
    """Some paths for a message, and how many more."""
    shown = ", ".join(quoted(p) for p in paths[:5])
    return shown + (f" and {len(paths) - 5:,} more" if len(paths) > 5 else "")


def nothing_checked_out(repo: Repository, target: bytes, branch: str, *, attached: bool) -> None:
    """Put HEAD at ``target`` with none of its files in the working tree (``clone
    --no-checkout``): the index holds every path of it marked not checked out
    (``vfs.repo.stage``), so ``status`` says so and ``commit`` keeps them. The caller holds
    the lock; the working tree is not touched.
    """
    hist = repo.history
    index = Index(repo.dir / "index")
    index.entries = {p: not_checked_out(e) for p, e in hist.walk(hist.version(target).tree)}
    index.head = index.base = target
    index.numbers[target] = hist.version(target).number
    index.save()
    repo.refs.set_head(Head(branch) if attached else Head(branch, target))


def fast_forward(
    repo: Repository,
    branch: str,
    old: bytes | None,
    new: bytes,
    workers: Workers,
    *,
    force: bool = False,
    offline: bool = False,
    merging_rev: str | None = None,
) -> CheckoutReport:
    """Move ``branch`` from ``old`` to its descendant ``new`` and restore ``new``.

    The working tree is checked for conflicts first; the branch moves only after the
    files are restored, by compare-and-swap, and before the index says the working
    tree holds ``new`` (``restore_version``'s ``move_branch``). Messages name ``dvfs
    pull``, or ``dvfs merge REV`` for ``merging_rev`` (which has no ``--force``).
    """
    with repo.locked():
        return restore_version(
            repo, new, workers, attach=branch, force=force, warn=quiet,
            action="pull" if merging_rev is None else "merge", source=merging_rev,
            offline=offline, forcible=merging_rev is None,
            move_branch=lambda: repo.refs.update(f"refs/heads/{branch}", new, old),
        )  # fmt: skip
