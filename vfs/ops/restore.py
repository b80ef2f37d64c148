"""``dvfs restore``: git's verbs to undo a change to PATHs, from the index, HEAD or a revision.

The files are written as a checkout writes them (``vfs.ops.checkout``: the data a
remote holds fetched first, temporary siblings renamed over, ``.dvfs/restoring``
marked meanwhile); HEAD never moves.
"""

from __future__ import annotations

import contextlib
import stat as statmod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from vfs._os.beneath import Walker
from vfs.errors import DvfsError, ObjectError, UsageError
from vfs.model.codec import Entry
from vfs.ops.checkout import (
    fetch_missing,
    names_of,
    remove_temporaries_after_crash,
    restoring,
    under_any,
)
from vfs.ops.status import WorkState, head_files, quiet, work_state
from vfs.quoting import quote_given, quoted, shell_word
from vfs.repo import cut_short
from vfs.repo.cut_short import CutShort
from vfs.repo.repository import Repository
from vfs.repo.stage import Index, Staged, not_checked_out, staged_from_entry
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.remove import remove_path, tracked_dir_only
from vfs.worktree.restore import restore_many
from vfs.worktree.scan import Found, Warn, lstat_or_none, show, special_kind


@dataclass
class RestoreReport:
    """What ``dvfs restore`` did."""

    # where the content came from: "the index", "HEAD", a revision, or None (--staged
    # before the first commit: nothing, the paths are unstaged and stay untracked)
    source: str | None
    unstaged: int = 0  # index entries set back to the source (--staged)
    written: int = 0  # working files written
    deleted: int = 0  # working files deleted: a merge's side settled on deleted them
    # (or a whole checkout cut short wrote them: "checkout to v3", see restore)
    left_by: str | None = None
    unchanged: int = 0  # working files that held the content already
    fetched: int = 0  # chunks downloaded first (vfs.remote.ondemand)
    failed: dict[bytes, DvfsError] = field(default_factory=dict)  # not restored, and why
    # a merge's conflicts left unsettled because a file of the side chosen for them
    # could not be written (vfs.ops.merge.resolve)
    unsettled: list[bytes] = field(default_factory=list)
    settled: int = 0  # the conflicts it settled (vfs.ops.merge.resolve)


def restore(
    repo: Repository,
    paths: Sequence[str],
    workers: Workers,
    *,
    staged: bool = False,
    worktree: bool | None = None,
    source: str | None = None,
    offline: bool = False,
    yes: bool = False,
    warn: Warn = quiet,
    only: Callable[[bytes], bool] | None = None,
    named: str | None = None,
    unstage_failed: bool = False,
    sides: Mapping[bytes, Sequence[Entry]] | None = None,
) -> RestoreReport:
    """``dvfs restore``: git's verbs to undo a change to PATHs.

    - ``restore PATH``: the working files take the content staged in the index again
      (unstaged changes are discarded; deleted and not checked out files come back);
    - ``restore --staged PATH``: the index takes HEAD's content again (an addition is
      unstaged, a staged deletion undone); the working files are not touched;
    - ``--source REV``: REV's content instead of the index's (or HEAD's);
    - ``--staged --worktree``: both, the working files from the same source.

    ``only``: of the paths at or below PATHs, those it is true for are restored, the
    others left as they are (a merge's conflicts: ``vfs.ops.merge.resolve``). ``named``:
    how the report and messages name ``source`` (a merge's side: "theirs").
    ``unstage_failed``: with ``staged`` and ``worktree``, a file that could not be
    written (its data damaged, or on no remote) keeps its index entry as it was, so
    that what is staged is what the working tree holds (a merge's conflict there is
    not settled: ``vfs.ops.merge.resolve``). ``sides``: paths the index does not
    track and what each may hold (a merge's conflicts, and the files its sides have
    there): a working file there holding one of them is replaced where it stands in
    the way, as a tracked one unchanged is (its content is in a version); and so is a
    directory of tracked files unchanged where the source has a file (ours' ``d/f``,
    theirs' file ``d``), as the file ``d`` is where the source has the directory.

    Restore never deletes a working file (a path the source lacks is left as it is)
    and never overwrites an untracked file with other content, with one exception:
    ``restore .`` after a checkout that was cut short (``vfs.repo.cut_short``)
    also deletes the files that checkout wrote which the index does not track, where
    they still hold its target's content exactly (that version keeps it), so that the
    working tree is as it was before it. Data only on the
    default remote is downloaded first, unless ``offline`` (``vfs.remote.ondemand``).
    """
    if not paths:
        raise UsageError("name the paths to restore: dvfs restore PATH... ('.' for all)")
    write = not staged if worktree is None else worktree
    with repo.locked():
        hist = repo.history
        rels = [repo.rel(p) for p in paths]
        # The whole index takes the source's content: a damaged one is rebuilt, the
        # working files left as they are (what the damaged-index message says to run).
        index = repo.index(rebuild=staged and b"" in rels)
        rels = [repo.rel(p, index) for p in paths]  # (d/a/ is no tracked file d/a)

        def chosen(p: bytes) -> bool:
            return under_any(p, rels) and (only is None or only(p))

        src: dict[bytes, Entry] | None = None
        label = "the index"
        if source is not None:
            target = hist.resolve(source)
            src = hist.flatten(hist.version(target).tree)
            label = named or source
        elif staged:
            src = head_files(hist)
            label = "HEAD" if hist.head_id() is not None else ""
        if index.damaged is not None:
            warn(
                f"the staging index was not readable: it is rebuilt from {label or 'nothing'}; "
                "the working files are kept and compared with it"
            )
            index.entries = {}  # (every path of the source is staged below, as unknown)
        for arg, rel in zip(paths, rels, strict=True):
            in_src = src is not None and any(under_any(q, [rel]) for q in src)
            if not index.under(rel) and not in_src:
                where = "" if src is None or not label else f" and not in {label}"
                raise UsageError(f"{quote_given(arg)} is not tracked{where}: nothing was restored")
            if source is not None and not staged and not in_src:
                # (restore never deletes a file: nothing would be written for it)
                raise UsageError(
                    f"{quote_given(arg)} is not in {label}: nothing was restored (restore "
                    f"never deletes a file; `dvfs rm {shell_word(arg)}` does)"
                )
        report = RestoreReport(label or None)
        unstaged: set[bytes] = set()  # unchanged tracked files unstaged: may be replaced
        before: dict[bytes, Staged | None] = {}  # entries this stages anew, as they were
        edited: list[bytes] = []  # and those with changes (not replaced: refused)
        if staged:
            assert src is not None
            dropped = [p for p in dict.fromkeys(q for r in rels for q in index.under(r))]
            dropped = [p for p in dropped if p not in src and (only is None or only(p))]
            # a file staged where the source has a directory above PATHs (d/x staged,
            # d/x/y restored): the index holds one or the other, never both
            above = {d for p in src if chosen(p) for d in _folders(p)}
            listed = set(dropped)
            dropped += sorted(d for d in above if d not in listed and index.get(d) is not None)
            if write and dropped:
                unstaged = _unchanged(repo, index, dropped, workers, warn)
                edited = [p for p in dropped if p not in unstaged]
            for p in dropped:
                before[p] = index.get(p)
                index.remove(p)  # an addition unstaged: the file stays, untracked
                report.unstaged += 1
            index.note_untracked(dropped)
            for p, e in src.items():
                if not chosen(p):
                    continue
                cur = index.get(p)
                if cur is None or not cur.same_content(e):
                    # (not checked out before, or when `rm` took it out: so again)
                    keep_absent = p in index.removed_absent if cur is None else not cur.checked_out
                    before[p] = cur
                    index.put(p, not_checked_out(e) if keep_absent else staged_from_entry(e, None))
                    report.unstaged += 1
                index.removed_absent.discard(p)
            index.head = None
        if write:
            if sides:
                unstaged |= _holding(repo, index, sides, workers)
            if source is not None:
                assert src is not None
                want = {p: e for p, e in src.items() if chosen(p)}
            else:
                want = {}
                for rel in rels:
                    for p in index.under(rel):
                        s = index.get(p)
                        assert s is not None
                        want[p] = s.to_entry(p.rpartition(b"/")[2])
            _refuse_edited_in_way(edited, want)
            if sides:
                unstaged |= _unchanged_below(repo, index, want, workers, warn)
            if not staged:  # (staged: a file above was unstaged with them, and checked)
                _refuse_changed_above(repo, index, want, workers, warn)
            _restore_files(
                repo, index, want, report, workers, offline=offline, yes=yes, warn=warn,
                unstaged=unstaged,
            )  # fmt: skip
            if unstage_failed and staged and report.failed:
                # (and what was unstaged where it would have gone: a file, or the files
                # of a directory, the other side has at that path)
                lost = list(report.failed)
                for p, was in before.items():
                    if under_any(p, lost) or any(under_any(f, [p]) for f in lost):
                        report.unstaged -= 1
                        if was is None:
                            index.remove(p)
                        else:
                            index.put(p, was)
        whole = write and source is None and only is None and b"" in rels
        if whole and not report.failed:
            left = cut_short.read(repo.dir, index.base)
            if left is not None:
                report.deleted += _remove_left_by(repo, index, left, workers)
                report.left_by = f"{left.action} to {left.label}"
        index.save()
        if whole and not report.failed:
            cut_short.end(repo.dir)  # (HEAD's files are back: no checkout is left to finish)
    return report


def _remove_left_by(repo: Repository, index: Index, left: CutShort, workers: Workers) -> int:
    """Delete the untracked files ``left``'s target holds (at or below its PATHs, if it
    named some) that the cut-short checkout wrote, those still holding the target's
    content (see :func:`restore`); how many."""
    hist = repo.history
    try:
        files = hist.flatten(hist.version(left.to).tree)
    except ObjectError:  # (the target is not all here: what it wrote cannot be told)
        return 0
    if left.paths:
        files = {p: e for p, e in files.items() if under_any(p, left.paths)}
    found: list[Found] = []
    deleted = 0
    with Walker(repo.root) as walker:
        for p in files:
            st = walker.lstat(p) if index.get(p) is None else None
            if st is not None and (statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode)):
                found.append(Found(p, st))
        hashed = Hasher(repo.root, repo.chunker, None, workers).stage_many(found)
        for p, s in hashed:
            if s.same_on_disk(files[p]) and remove_path(walker, p):
                deleted += 1
    return deleted


def _holding(
    repo: Repository, index: Index, sides: Mapping[bytes, Sequence[Entry]], workers: Workers
) -> set[bytes]:
    """Those of the untracked paths of ``sides`` whose working file (or link) holds
    one of the entries ``sides`` gives it (see :func:`restore`)."""
    found: list[Found] = []
    with Walker(repo.root) as walker:
        for p, entries in sides.items():
            st = walker.lstat(p) if index.get(p) is None and entries else None
            if st is not None and (statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode)):
                found.append(Found(p, st))
    hashed = Hasher(repo.root, repo.chunker, None, workers).stage_many(found)
    return {p for p, s in hashed if any(s.same_on_disk(e) for e in sides[p])}


def _folders(path: bytes) -> Iterator[bytes]:
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        yield path


def _refuse_edited_in_way(edited: list[bytes], want: dict[bytes, Entry]) -> None:
    """UsageError if a file with changes, unstaged by this command, stands where ``want``
    has a directory, or below a file of ``want``: replacing it would lose the changes."""
    dirs = {d for q in want for d in _folders(q)}
    blocked = [p for p in edited if p in dirs or any(d in want for d in _folders(p))]
    if blocked:
        raise UsageError(
            f"{names_of(sorted(blocked))} changed since staged, where the version restored "
            "has a directory or a file: `dvfs add` them or move them away first; nothing was "
            "restored"
        )


def _refuse_changed_above(
    repo: Repository, index: Index, want: dict[bytes, Entry], workers: Workers, warn: Warn
) -> None:
    """UsageError if a tracked file with changes not staged stands where ``want`` needs
    a directory (the file ``d``, restoring ``d/x``): the directory would replace it,
    and the changes would be lost. One that holds what is staged (its content is in
    the store) or is not there is replaced."""
    above = sorted({d for p in want for d in _folders(p)})
    sub, state = _state_of(repo, index, above, workers, warn)
    if sub.entries:
        _refuse_edited_in_way(sorted({*state.modified, *state.unreadable, *state.special}), want)


def _unchanged_below(
    repo: Repository, index: Index, want: dict[bytes, Entry], workers: Workers, warn: Warn
) -> set[bytes]:
    """The tracked files below a path where ``want`` has a file (ours' directory ``d``
    where theirs has a file ``d``) that hold what is staged: replaced with it, as a
    tracked file unchanged is where ``want`` has a directory. UsageError if one has
    changes not staged (they would be lost)."""
    below = [q for q in index.paths() if any(d in want for d in _folders(q))]
    sub, state = _state_of(repo, index, below, workers, warn)
    _refuse_edited_in_way(sorted({*state.modified, *state.unreadable, *state.special}), want)
    changed = {*state.modified, *state.deleted, *state.unreadable, *state.not_checked_out}
    return {p for p in sub.entries if p not in changed}


def _unchanged(
    repo: Repository, index: Index, paths: list[bytes], workers: Workers, warn: Warn
) -> set[bytes]:
    """Those of ``paths`` whose working file holds what the index has staged."""
    sub, state = _state_of(repo, index, paths, workers, warn)
    changed = set(state.modified) | set(state.deleted) | set(state.unreadable)
    return {p for p in sub.entries if p not in changed and p not in state.not_checked_out}


def _state_of(
    repo: Repository, index: Index, paths: list[bytes], workers: Workers, warn: Warn
) -> tuple[Index, WorkState]:
    """The tracked and checked-out ones of ``paths`` (as an index of their own) and how
    their working files stand against it (nothing is hashed when there are none)."""
    sub = Index(index.path)
    sub.written_ns = index.written_ns
    sub.entries = {p: s for p in paths if (s := index.get(p)) is not None and s.checked_out}
    return sub, work_state(repo, sub, workers, warn) if sub.entries else WorkState()


def restore_not_checked_out(
    repo: Repository, workers: Workers, *, warn: Warn = quiet
) -> RestoreReport:
    """Write every file the index marks not checked out, as staged (caller holds the lock).

    What a ``pull`` of a branch already up to date does for a partial working tree: a
    ``clone --no-checkout``, or a clone killed before its checkout, gets its files.
    The rest of the working tree is not looked at; a file that cannot be written stays
    not checked out (``report.failed``).
    """
    index = repo.index()
    report = RestoreReport("the index")
    want = {}
    for p in index.absent():
        s = index.get(p)
        assert s is not None
        want[p] = s.to_entry(p.rpartition(b"/")[2])
    if want:  # (the version's size was checked by the caller, as for the whole checkout)
        _restore_files(repo, index, want, report, workers, offline=False, yes=True, warn=warn)
        index.save()
    return report


def _refuse_in_the_way(repo: Repository, d: bytes, replace: Callable[[bytes], bool]) -> None:
    """UsageError, before anything is written, if an untracked file or link stands
    where directory ``d`` (or one above it) must be (restore never replaces one)."""
    parts = d.split(b"/") if d else []
    for i in range(1, len(parts) + 1):
        cur = b"/".join(parts[:i])
        st = lstat_or_none(repo.root, cur)
        if st is None:
            return
        if not statmod.S_ISDIR(st.st_mode):
            if not replace(cur):
                what = "a symbolic link" if statmod.S_ISLNK(st.st_mode) else "an untracked file"
                if (kind := special_kind(st.st_mode)) is not None:
                    what = f"{kind}, not tracked,"
                raise UsageError(
                    f"{quoted(cur)} is {what} where restore needs a directory: move it away; "
                    "nothing was restored"
                )
            return


def _restore_files(
    repo: Repository,
    index: Index,
    want: dict[bytes, Entry],
    report: RestoreReport,
    workers: Workers,
    *,
    offline: bool,
    yes: bool,
    warn: Warn,
    unstaged: frozenset[bytes] | set[bytes] = frozenset(),
) -> None:
    """Write ``want`` into the working tree where it differs (see :func:`restore`).

    ``unstaged``: paths this command took out of the index, which were tracked and
    unchanged (their content is in the store): a file of them where ``want`` has a
    directory (or the reverse: a file of the source's side of a file/directory
    conflict) is replaced like a tracked one.
    """
    remove_temporaries_after_crash(repo, warn)
    sub = Index(index.path)
    sub.written_ns = index.written_ns
    sub.entries = {p: s for p in want if (s := index.get(p)) is not None}
    state = work_state(repo, sub, workers, warn)
    for p, s in sub.entries.items():
        index.put(p, s)  # stats refreshed by work_state
    changed = set(state.modified) | set(state.deleted) | set(state.not_checked_out)
    changed |= set(state.unreadable)
    untracked: list[Found] = []
    with Walker(repo.root) as walker:
        for p in want:
            if p not in sub.entries and (st := walker.lstat(p)) is not None:
                if not (statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode)):
                    if statmod.S_ISDIR(st.st_mode) and index.under(p) and not unstaged:
                        raise UsageError(
                            f"{quoted(p)} is a directory of tracked files where restore "
                            "writes a file, and restore never deletes a file: `dvfs rm -r` "
                            "it first; nothing was restored"
                        )
                    if statmod.S_ISDIR(st.st_mode) and index.under(p):
                        # (a merge's side's directory, its files unchanged: see restore)
                        if tracked_dir_only(repo.root, p, unstaged.__contains__):
                            continue
                        raise UsageError(
                            f"{quoted(p)} is a directory holding untracked files where "
                            "restore writes a file: move it away; nothing was restored"
                        )
                    what = special_kind(st.st_mode) or "a directory"
                    raise UsageError(
                        f"{quoted(p)} is {what}, not tracked, where restore writes a file: "
                        "move it away; nothing was restored"
                    )
                untracked.append(Found(p, st))
    on_disk = dict(Hasher(repo.root, repo.chunker, None, workers).stage_many(untracked))
    clash = sorted(p for p, s in on_disk.items() if not s.same_on_disk(want[p]))
    if clash:
        raise UsageError(
            f"restore would overwrite untracked {names_of(clash)}: move them away; "
            "nothing was restored"
        )
    todo: list[tuple[bytes, Entry]] = []
    # Files as checked here: replaced only if still so (a write meanwhile is kept, and
    # the file reported not restored: vfs.worktree.restore._swap_in).
    checked: dict[bytes, tuple[int, int, int]] = {}
    for p, e in want.items():
        if p in on_disk:  # untracked, and holding the content already
            report.unchanged += 1
            continue
        if p in state.current:  # modified: as hashed
            disk = state.current.get(p)
        elif p in changed or p not in sub.entries:  # not there (or not readable)
            disk = None
        else:  # as staged
            disk = sub.entries[p]
        if disk is not None and disk.same_on_disk(e):
            report.unchanged += 1
        else:
            todo.append((p, e))
            if disk is not None and disk.ctime_ns >= 0:
                checked[p] = (disk.ino, disk.size, disk.mtime_ns)
    where: dict[bytes, tuple[int, int]] = {}  # (the chunks' places, if all are here)
    unavailable, report.fetched = fetch_missing(
        repo, todo, workers, command="restore",
        gets_them=f"dvfs pull {report.source if report.source != 'the index' else 'HEAD'} "
        + " ".join(shell_word(show(p)) for p, _ in todo[:5]),
        offline=offline, expansion=None if yes else (), where=where,
    )  # fmt: skip
    for p, why in unavailable.items():
        report.failed[p] = ObjectError(why)
    todo = [(p, e) for p, e in todo if p not in report.failed]

    def tracked(rel: bytes) -> bool:
        return index.get(rel) is not None or rel in unstaged

    def replace(rel: bytes) -> bool:  # something else stands where a file goes
        st = lstat_or_none(repo.root, rel)
        if st is not None and statmod.S_ISDIR(st.st_mode):
            return tracked_dir_only(repo.root, rel, tracked)
        return tracked(rel)

    for d in sorted({p.rpartition(b"/")[0] for p, _ in todo}):
        _refuse_in_the_way(repo, d, replace)
    for p, _ in todo:  # (a tracked file not changed is a file: no need to look)
        st = lstat_or_none(repo.root, p) if p in changed or p not in sub.entries else None
        if st is not None and statmod.S_ISDIR(st.st_mode) and not replace(p):
            raise UsageError(
                f"{quoted(p)} is a directory holding untracked files where restore writes a "
                "file: move it away; nothing was restored"
            )
    with restoring(repo) if todo else contextlib.nullcontext():
        stats, failed = restore_many(
            repo.root, todo, repo.store, workers, replace, where=where or None, checked=checked
        )
    report.failed.update(failed)
    for p, _ in todo:
        got = stats.get(p)
        if got is None:
            continue
        report.written += 1
        cur = index.get(p)
        if cur is not None and cur.same_content(got):
            index.put(p, got)  # the file holds what is staged: its stat is recorded
