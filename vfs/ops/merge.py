"""Merging a diverged branch: ``dvfs merge REV``, ``--abort``, and resolving conflicts.

Three-way at path level against the merge base (``History.merge_base``, over every
parent; in a criss-cross history, its several bases merged together:
:func:`merge_base_files`). For each path of the base, of HEAD (*ours*) and of REV
(*theirs*):

- the same on both sides: kept;
- changed on one side only (added, modified, deleted): that side's;
- a file's mode (the executable bit) and content merge apart: changed on one side
  only, or the same way on both, each takes that change (made executable on one side
  or both, edited on the other), as git merges them;
- changed on both sides, differently: a **conflict** (with ``--ours`` or ``--theirs``
  that side wins at once). So is a file on one side where the other has a directory
  (the file's path and the paths below it on the other side). ``dvfs.yaml`` and
  ``dvfs.runs`` changed on both sides are merged stage by stage first
  (:func:`_merge_pipeline_files`); a conflict where one side deleted the path names
  the path it holds that content at now, if any (``merging.renamed``).

If REV is HEAD or below it, nothing happens; if HEAD is below REV, the branch
fast-forwards (a checkout of REV that moves the branch by compare-and-swap). Else:

1. under the repository lock, the working tree must be clean (no staged, modified or
   deleted tracked file: they are listed) and no untracked file may stand where REV
   brings different content, nor an untracked file or link where REV needs a
   directory; the data the merged files need is downloaded first if it is only on a
   remote (``vfs.remote.ondemand``);
2. the merge record ``.dvfs/MERGE`` (``vfs.ops.merging``) is written, not ready;
3. the files theirs changed are written or deleted (``vfs.worktree``) and the index
   takes the merged entries (a path not checked out stays so, with theirs' entry);
   then the record is marked ready;
4. without conflicts, the version is committed at once (``vfs.ops.commit.commit_locked``:
   two parents, the record removed after the branch moved); with conflicts, the
   command stops there, listing them with both sides' sizes and times. Each conflict
   keeps ours in the index and the working tree until it is resolved
   (:func:`resolve`, ``dvfs add``), then ``dvfs commit`` makes the merge version.

A kill or an error during steps 2-3 leaves the record, not ready (``commit`` refuses
it), and a half-written working tree whose
files ``status`` shows as modified: ``dvfs merge --abort`` restores the branch's
version (:func:`abort`), deleting the new files of theirs it wrote before the index
named them. The kill points are ``vfs.ops.merging``'s test hook; see
``tests/test_merge_faults.py``. ``vN`` numbering stays first-parent: a merge version is
its first parent's number plus one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import stat as statmod
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from vfs._os.beneath import Walker
from vfs.errors import (
    DvfsError,
    FormatError,
    KeptChanged,
    StorageFull,
    UncommittedChanges,
    UsageError,
)
from vfs.model import params as version_params
from vfs.model.codec import ChunkRef, Entry, Kind
from vfs.model.ids import hash_bytes
from vfs.ops import checkout as co
from vfs.ops import merging
from vfs.ops import restore as rs
from vfs.ops.behind import same_entry
from vfs.ops.commit import CommitResult, commit, commit_locked
from vfs.ops.diff import diff_maps
from vfs.ops.merging import Conflict, MergeState
from vfs.ops.status import base_files, moved_past, quiet, work_state
from vfs.quoting import quote_given, quoted, shell_word
from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE
from vfs.repo.history import History
from vfs.repo.repository import Repository
from vfs.repo.stage import Index, not_checked_out, same_mode, staged_from_entry
from vfs.store.objects import ObjKind
from vfs.store.reader import read_whole
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.remove import remove_many, remove_path, tracked_dir_only
from vfs.worktree.restore import Identity, restore_many
from vfs.worktree.scan import Found, Warn


@dataclass
class MergeReport:
    """What ``dvfs merge`` did."""

    outcome: str  # "up to date", "fast-forward", "merged", "conflicts"
    label: str = ""  # the version the branch is at afterwards (vN)
    oid: bytes = b""
    written: int = 0
    deleted: int = 0
    fetched: int = 0
    conflicts: list[Conflict] = field(default_factory=list)
    renamed: merging.Renames = field(default_factory=dict)  # (merging.renamed)
    not_checked_out: list[bytes] = field(default_factory=list)  # data unavailable, or failed
    failed: dict[bytes, DvfsError] = field(default_factory=dict)  # not restored, and why
    # changed by someone else after the merge checked them, before it replaced or
    # deleted them: kept as they are (untracked where deleted, modified where written)
    kept: list[bytes] = field(default_factory=list)
    checkout: co.CheckoutReport | None = None  # a fast-forward's


def _same(a: Entry | None, b: Entry | None) -> bool:
    return a is b if a is None or b is None else same_entry(a, b)


def _side(e: Entry | None) -> tuple[int, int] | None:
    return None if e is None else (e.size, e.mtime_ns)


def _above(path: bytes) -> list[bytes]:
    out = []
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        out.append(path)
    return out


def _mode_and_content(b: Entry | None, o: Entry | None, t: Entry | None) -> Entry | None:
    """A file whose mode and content merge apart, each changed on one side only or the
    same way on both (made executable on one side, or both, and edited on the other):
    both changes (as git merges them), or None when the two sides' changes overlap."""
    if b is None or o is None or t is None or not b.kind == o.kind == t.kind == Kind.FILE:
        return None
    if o.mode == t.mode or o.mode == b.mode:
        mode = t.mode
    elif t.mode == b.mode:
        mode = o.mode
    else:
        return None
    o_content, t_content = o._replace(mode=b.mode), t._replace(mode=b.mode)
    if _same(b, o_content):
        return t._replace(mode=mode)  # the content theirs alone changed
    if _same(b, t_content) or _same(o_content, t_content):
        return o._replace(mode=mode)
    return None


def three_way(
    base: dict[bytes, Entry], ours: dict[bytes, Entry], theirs: dict[bytes, Entry]
) -> tuple[dict[bytes, Entry], list[bytes]]:
    """The merged files (conflicts keep ours) and the conflicting paths, sorted."""
    merged: dict[bytes, Entry] = {}
    conflicts: set[bytes] = set()
    for p in base.keys() | ours.keys() | theirs.keys():
        b, o, t = base.get(p), ours.get(p), theirs.get(p)
        if _same(o, t) or _same(b, t):
            chosen = o
        elif _same(b, o):
            chosen = t
        elif (both := _mode_and_content(b, o, t)) is not None:
            chosen = both
        else:
            conflicts.add(p)
            chosen = o
        if chosen is not None:
            merged[p] = chosen
    # A file on one side where the other made a directory: both are conflicts.
    dirs = {d for p in merged for d in _above(p)}
    for p in [p for p in merged if p in dirs]:
        below = [q for q in merged if q.startswith(p + b"/")]
        conflicts.add(p)
        conflicts.update(below)
        if p in ours:  # ours wins while unresolved: drop theirs' side of the clash
            for q in below:
                if q not in ours:
                    del merged[q]
        else:
            del merged[p]
    return merged, sorted(conflicts)


# A path of a virtual merge base whose bases disagreed and could not be merged: it
# equals no entry, so the path is a conflict unless both sides agree (``merge_base_files``).
UNKNOWN = Entry(b"", Kind.FILE, 0, 0, 0, digest=b"unknown")


def merge_base_files(hist: History, ours: bytes, theirs: bytes, base: bytes) -> dict[bytes, Entry]:
    """The files of the merge base ``base``; for a criss-cross history (each side merged
    the other: several best common ancestors), the files of those bases merged with
    each other against their own merge base (git's recursive strategy, one level), a
    path they disagree on being ``UNKNOWN``.

    Taking one of the bases made changes the other side had merged already look like
    ours' own, and conflict with theirs' later changes to the same paths.
    """
    bases = hist.merge_bases(ours, theirs)
    files = hist.flatten(hist.version(base if len(bases) < 2 else bases[0]).tree)
    for other in bases[1:]:
        below = hist.merge_base(bases[0], other)
        common = hist.flatten(hist.version(below).tree) if below is not None else {}
        files, clashing = three_way(common, files, hist.flatten(hist.version(other).tree))
        for p in clashing:
            files[p] = UNKNOWN
    return files


PIPELINE_FILES = (PIPELINE_FILE.encode(), RUNS_FILE.encode())


def _merge_pipeline_files(
    repo: Repository, base: dict[bytes, Entry], ours: dict[bytes, Entry],
    theirs: dict[bytes, Entry], merged: dict[bytes, Entry], clashing: list[bytes],
    side: str | None = None,
) -> list[bytes]:  # fmt: skip
    """The conflicts left once ``dvfs.yaml`` and ``dvfs.runs`` changed on both sides are
    merged stage by stage (``vfs.pipeline.merge3``); ``merged`` takes their entries,
    the merged bytes stored. A file either side deleted, or one not read (its data
    not here, or its bytes not the digest its version records), stays a conflict.
    ``side`` (``--ours``/``--theirs``): a stage both sides changed takes that side's,
    the other stages merged all the same."""
    if not any(p in PIPELINE_FILES for p in clashing):
        return clashing
    left = []
    for p in clashing:
        o = ours.get(p)
        data = _pipeline_merged(repo, p, base.get(p), o, theirs.get(p), side)
        if o is None or data is None:
            left.append(p)
            continue
        chunks = []
        for piece in repo.chunker.stream(io.BytesIO(data)):
            oid, _ = repo.store.put(ObjKind.CHUNK, piece)
            chunks.append(ChunkRef(oid, len(piece)))
        merged[p] = o._replace(
            size=len(data), mtime_ns=time.time_ns(), digest=hash_bytes(data),
            chunks=tuple(chunks),
        )  # fmt: skip
    if len(left) < len(clashing):
        repo.store.sync()  # before the index or a version names them
    return left


def _pipeline_merged(
    repo: Repository, p: bytes, b: Entry | None, o: Entry | None, t: Entry | None,
    side: str | None,
) -> bytes | None:  # fmt: skip
    """``dvfs.yaml`` or ``dvfs.runs`` (``p``) merged stage by stage, or None where it stays
    a conflict (another path, a side that deleted it or holds no file, a stage both
    sides changed without ``side``, its data not here or not its digest)."""
    from vfs.pipeline.merge3 import merge_runs, merge_spec  # (YAML: only for these)

    how = dict(zip(PIPELINE_FILES, (merge_spec, merge_runs), strict=True)).get(p)
    files = [e for e in (o, t, b) if e is not None]
    if (
        how is None or o is None or t is None or b is UNKNOWN
        or any(e.kind != Kind.FILE for e in files)
    ):  # fmt: skip
        return None
    try:
        return how(
            None if b is None else _content(repo, p, b), _content(repo, p, o),
            _content(repo, p, t), side,
        )  # fmt: skip
    except DvfsError:
        return None


def _content(repo: Repository, p: bytes, e: Entry) -> bytes:
    """A pipeline file's bytes (bounded: spec and runs files are at most tens of MiB);
    FormatError if they are not the digest its version records (a forged record)."""
    if e.size > 64 << 20:
        raise DvfsError("too large to merge")
    return read_whole(quoted(p), e.chunks, e.digest, repo.store.get)


def merge(
    repo: Repository,
    rev: str,
    workers: Workers,
    *,
    side: str | None = None,
    message: str | None = None,
    warn: Warn = quiet,
    offline: bool = False,
) -> MergeReport:
    """Merge revision ``rev`` into the current branch (see the module docstring).

    ``side`` ("ours" or "theirs") settles every conflict that way at once.
    """
    if side not in (None, "ours", "theirs"):
        raise UsageError("choose --ours or --theirs, not both")
    if message is not None:  # (checked as a commit's: the merge version gets it)
        if not message.strip():
            raise UsageError(
                f"the merge's message is empty: give -m a text, or leave it out for "
                f"'merge {rev} into {repo.history.head().branch}'; nothing was merged"
            )
        version_params.message(message)
    with repo.locked():
        hist = repo.history
        head = hist.head()
        if (going := merging.live(repo.dir, repo.refs)) is not None:
            if not going.ready:
                raise UsageError(
                    f"a merge is in progress, and it stopped midway: `dvfs merge --abort`, "
                    f"then `dvfs merge {going.rev}` again"
                )
            if going.unresolved():
                raise UsageError(
                    "a merge is in progress: settle its conflicts, then `dvfs commit` records "
                    "it; or `dvfs merge --abort` gives it up"
                )
            raise UsageError(
                "a merge is in progress, every conflict settled: `dvfs commit` records it, "
                "or `dvfs merge --abort` gives it up"
            )
        if head.detached is not None:
            raise UsageError(
                f"HEAD is detached at {hist.label(head.detached)}: merge into a branch "
                f"(`dvfs switch {head.branch}`, or `dvfs switch -c NAME`)"
            )
        branch = head.branch
        ours = repo.refs.get(f"refs/heads/{branch}")
        theirs = hist.resolve(rev)
        if ours is None:
            raise UsageError(
                f"{branch} has no versions yet: `dvfs checkout {rev}` or "
                f"`dvfs switch -c NAME {rev}` starts from {rev}"
            )
        if hist.is_ancestor(theirs, ours):
            return MergeReport("up to date", hist.label(ours), ours)
        index = _refuse_changes(repo, workers, warn)
        if not hist.is_ancestor(ours, theirs):
            base = hist.merge_base(ours, theirs)
            if base is None:
                raise UsageError(
                    f"{branch} and {rev} have no version in common (unrelated histories): "
                    f"nothing was merged; dvfs merges related histories only: `dvfs switch -c "
                    f"NAME {rev}` works on {rev}'s"
                )
            try:
                return _merge_locked(
                    repo, index, branch, rev, ours, theirs, base, workers,
                    side=side, message=message, warn=warn, offline=offline,
                )  # fmt: skip
            except StorageFull:
                going = merging.live(repo.dir, repo.refs)
                if going is None or going.ready:
                    raise  # (nothing changed yet, or the commit's own: as a commit says)
                raise StorageFull(
                    f"the disk is full while merging {shell_word(rev)}: the merge stopped "
                    "midway, some of its files written; free some space, then `dvfs merge "
                    f"--abort` and `dvfs merge {shell_word(rev)}` again"
                ) from None
    # A fast-forward: a checkout of theirs, the branch moved by compare-and-swap.
    report = co.fast_forward(repo, branch, ours, theirs, workers, offline=offline, merging_rev=rev)
    out = MergeReport("fast-forward", hist.label(theirs), theirs, checkout=report)
    out.written, out.deleted, out.fetched = report.written, report.deleted, report.fetched
    out.failed, out.kept = report.failed, report.kept
    return out


def _refuse_changes(repo: Repository, workers: Workers, warn: Warn) -> Index:
    """UsageError listing the staged, modified or deleted tracked files, if any; else
    the index, its files' stat as found clean here (what the merge may replace)."""
    hist = repo.history
    index = repo.index()
    behind = moved_past(hist, index)
    if behind is not None:
        raise UsageError(
            f"this working tree is at {behind}, behind its branch: run "
            f"`dvfs switch {hist.head().branch}` first; nothing was merged"
        )
    changed: set[bytes] = set()
    if index.head is None or index.head != hist.head_id():
        changed.update(c.path for c in diff_maps(base_files(hist, index), index.entries))
    state = work_state(repo, index, workers, warn)
    changed.update(state.modified, state.deleted, state.unreadable)
    if changed:
        paths = sorted(changed)
        shown = ", ".join(quoted(p) for p in paths[:10])
        more = f" and {len(paths) - 10} more" if len(paths) > 10 else ""
        raise UsageError(
            f"merge needs a clean working tree; uncommitted changes in {shown}{more}: "
            "commit them or `dvfs restore` them first; nothing was merged"
        )
    return index


def _merge_locked(
    repo: Repository,
    index: Index,
    branch: str,
    rev: str,
    ours: bytes,
    theirs: bytes,
    base: bytes,
    workers: Workers,
    *,
    side: str | None,
    message: str | None,
    warn: Warn,
    offline: bool,
) -> MergeReport:
    hist = repo.history
    mine = hist.flatten(hist.version(ours).tree)
    other = hist.flatten(hist.version(theirs).tree)
    before = merge_base_files(hist, ours, theirs, base)
    merged, clashing = three_way(before, mine, other)
    clashing = _merge_pipeline_files(repo, before, mine, other, merged, clashing, side)
    if side == "theirs":
        for p in clashing:
            merged.pop(p, None)
        for p in clashing:
            if p in other:
                merged[p] = other[p]
        # a theirs-side file where ours had a directory: ours' paths below it go
        dirs = {a for q in merged for a in _above(q)}
        for d in [p for p in merged if p in dirs]:
            for q in [q for q in merged if q.startswith(d + b"/") and q not in other]:
                del merged[q]
    conflicts = (
        [] if side else [Conflict(p, _side(mine.get(p)), _side(other.get(p))) for p in clashing]
    )
    msg = message or f"merge {rev} into {branch}"
    write = {p: e for p, e in merged.items() if not _same(mine.get(p), e)}
    gone = sorted(p for p in mine if p not in merged)
    # Untracked files where a merged file goes: the same content is adopted, other
    # content (or something that is not a file) stops the merge before anything changes.
    todo: list[tuple[bytes, Entry]] = []
    absent: dict[bytes, Entry] = {}
    untracked: list[Found] = []
    emptied: list[bytes] = []
    # What stood where a file is written, or is deleted, as checked clean (a user's
    # write after the check is kept: vfs.worktree.restore._swap_in, remove_many).
    checked: dict[bytes, Identity] = {}
    with Walker(repo.root) as walker:
        for p, e in sorted(write.items()):
            cur = index.get(p)
            if cur is not None and not cur.checked_out:
                absent[p] = e  # not checked out here: stays so, with the merged entry
                continue
            todo.append((p, e))
            if cur is not None and cur.ctime_ns >= 0:
                checked[p] = (cur.ino, cur.size, cur.mtime_ns)
            elif cur is None and (st := walker.lstat(p)) is None:
                checked[p] = None
            elif cur is None and st is not None:
                if not statmod.S_ISDIR(st.st_mode):
                    untracked.append(Found(p, st))
                elif not tracked_dir_only(repo.root, p, lambda q: index.get(q) is not None):
                    emptied.append(p)  # a directory of ours' files (gone) and untracked ones
        # An untracked file or link where a directory of theirs' files goes.
        in_way = emptied + [
            d
            for d in sorted({d for p, _ in todo for d in _above(p)})
            if index.get(d) is None
            and (st := walker.lstat(d)) is not None
            and not statmod.S_ISDIR(st.st_mode)
        ]
    on_disk = dict(Hasher(repo.root, repo.chunker, None, workers).stage_many(untracked))
    clash = sorted(
        [
            f.rel
            for f in untracked
            if f.rel not in on_disk or not on_disk[f.rel].same_on_disk(write[f.rel])
        ]
        + in_way
    )
    if clash:
        raise UsageError(
            f"merge would overwrite untracked {co.names_of(clash)}: move them away; "
            "nothing was merged"
        )
    for p, rec in on_disk.items():  # theirs' content already: replaced only if still so
        checked[p] = (rec.ino, rec.size, rec.mtime_ns)
    unavailable, fetched = co.fetch_missing(
        repo, todo, workers, command=f"merge {rev}", gets_them=f"dvfs pull {rev}",
        offline=offline, expansion=(),
    )  # fmt: skip
    state = MergeState(branch, ours, theirs, base, rev, msg, tuple(conflicts), ready=False)
    merging.save(repo.dir, state)
    merging.reached("recorded")
    report = MergeReport("conflicts" if conflicts else "merged", fetched=fetched)
    report.conflicts = conflicts
    report.renamed = merging.renamed(conflicts, before, mine, other)
    todo = [(p, e) for p, e in todo if p not in unavailable]
    doomed = [p for p in gone if not index.is_absent(p)]
    gone_as = {p: (was.ino, was.size, was.mtime_ns) for p in doomed
             if (was := index.get(p)) is not None and was.ctime_ns >= 0}  # fmt: skip
    report.deleted = remove_many(repo.root, doomed, workers, gone_as, report.kept)
    for p in gone:  # (one kept is left untracked: theirs deleted it)
        index.entries.pop(p, None)
    merging.reached("removed")

    removed = set(gone) - set(report.kept)

    def replace(rel: bytes) -> bool:  # a tracked file (or folder of them) may be replaced
        if index.get(rel) is not None or index.under(rel):
            return True
        return tracked_dir_only(repo.root, rel, lambda q: index.get(q) is not None or q in removed)

    with co.restoring(repo) if todo else contextlib.nullcontext():
        stats, failed = restore_many(repo.root, todo, repo.store, workers, replace, checked=checked)
    index.entries.update(stats)
    changed = [p for p, exc in failed.items() if isinstance(exc, KeptChanged)]
    for p in changed:  # (the merged entry, no stat: `status` hashes it, says modified)
        del failed[p]
        index.entries[p] = staged_from_entry(write[p], None)
    report.kept = sorted(report.kept + changed)
    report.written = len(stats)
    merging.reached("written")
    lost = sorted(set(unavailable) | set(failed))
    # not checked out: truthful, and a later pull or checkout brings it (ours' copy
    # deleted as checked: one changed since is kept, and `status` shows it modified)
    doomed = [p for p in lost if (cur := index.get(p)) is not None and cur.checked_out]
    clean = {p: seen for p in doomed if (seen := checked.get(p)) is not None}
    remove_many(repo.root, doomed, workers, clean, report.kept)
    report.kept.sort()
    for p in lost:
        absent[p] = write[p]
    for p, e in absent.items():
        index.entries[p] = not_checked_out(e)
    report.not_checked_out = lost
    report.failed = failed
    index.head = None
    index.save()
    merging.save(repo.dir, dataclasses.replace(state, ready=True))
    merging.reached("indexed")
    co.keep_ignored(repo, list(stats), warn)
    if conflicts:
        report.label, report.oid = hist.label(ours), ours
        return report
    r = commit_locked(repo, msg, {}, None, warn)
    report.label, report.oid = f"v{r.number}", r.oid
    return report


def finish(repo: Repository, message: str | None, warn: Warn = quiet) -> CommitResult:
    """``dvfs merge --continue``: commit the merge in progress once every conflict is
    settled, as ``dvfs commit`` does (git's ``merge --continue``), with the message the
    merge recorded unless ``message``."""
    if merging.live(repo.dir, repo.refs) is None:
        raise UsageError("no merge is in progress: nothing to continue")
    return commit(repo, message, {}, None, warn)


def abort(
    repo: Repository, workers: Workers, warn: Warn = quiet, *, force: bool = False
) -> co.CheckoutReport:
    """Leave the merge in progress: the working tree and index back to the branch's
    version (settled conflicts and staged changes are dropped), the record removed.

    A file edited since the merge wrote it, and not staged, is the user's work (an
    edit to a file the merge never touched, a resolution not yet added): the abort
    is refused, naming them, unless ``force``; so is an untracked file (or a
    directory holding one) made where the branch's version has something, as git's
    abort refuses it. A merge starts from a clean working tree, so only such files
    can be lost.
    """
    removed = 0  # files a killed merge wrote, deleted here (the checkout does not see them)
    kept: list[bytes] = []  # such files changed after they were found the merge's
    with repo.locked():
        try:
            state = merging.load(repo.dir)
        except FormatError:  # what its message says to run: leave it all the same
            if not force:  # (which files the merge wrote is lost: no edit is taken for one)
                work = work_state(repo, repo.index(), workers, warn)
                if work.modified or work.unreadable:
                    paths = sorted(work.modified + work.unreadable)
                    raise UncommittedChanges(
                        "merge --abort", [quoted(p) for p in paths],
                        what="copy them elsewhere first (no commit is made while the merge "
                        "record is damaged), or use --force to discard them",
                    ) from None  # fmt: skip
            warn(
                f".dvfs/{merging.MERGE} was damaged: going back to the branch's version; "
                "files the merge added and no version records stay, untracked"
            )
        else:
            if state is None:
                raise UsageError("no merge is in progress")
            if merging.live(repo.dir, repo.refs) is None:
                why = _stale(repo, state)
                merging.remove(repo.dir)  # stale: its commit was made, or HEAD moved away
                raise UsageError(f"no merge is in progress: {why}")
            if not force:
                _refuse_edited(repo, state, workers, warn)
            removed = _remove_unrecorded(repo, state.ours, state.theirs, workers, kept)
    # Killed from here on, the record stays and `--abort` runs again.
    report = co.checkout(
        repo, "HEAD", (), workers, force=True, warn=warn,
        keep_untracked=None if force else "merge --abort",
    )  # fmt: skip
    report.deleted += removed
    report.kept = sorted(report.kept + kept)
    with repo.locked():
        merging.remove(repo.dir)
    return report


def _stale(repo: Repository, state: merging.MergeState) -> str:
    """What became of the merge a stale record (``merging.live`` is None) names, and
    where HEAD is now: committed, or left when HEAD or its branch moved."""
    hist = repo.history
    what = f"the merge of {state.rev} into {state.branch}"
    head = repo.refs.head()
    if head.detached is not None:
        here = f"HEAD is detached at {hist.label(head.detached)}"
    else:
        here = f"you are on branch {head.branch}"
    if head.detached is not None or head.branch != state.branch:
        return (
            f"{what} was given up when HEAD moved away from {state.branch} ({here}); nothing "
            f"to abort: what it had staged stays as it is (`dvfs status` shows it), and "
            f"`dvfs switch {state.branch}` goes back"
        )
    tip = repo.refs.get(f"refs/heads/{state.branch}")
    if tip is not None and hist.version(tip).parents == (state.ours, state.theirs):
        return f"{what} was committed as {hist.label(tip)}; {here}"
    return f"{what} was given up when {state.branch} moved on from where it began; {here}"


def _refuse_edited(repo: Repository, state: MergeState, workers: Workers, warn: Warn) -> None:
    """UncommittedChanges if a tracked file differs from the index, and not because the
    merge wrote its content there (a merge killed before it saved the index): theirs',
    or both sides' changes combined (a mode and a content; ``dvfs.yaml`` and
    ``dvfs.runs`` merged stage by stage, with or without a side)."""
    work = work_state(repo, repo.index(), workers, warn)
    if not (work.modified or work.unreadable):
        return
    hist = repo.history
    mine = hist.flatten(hist.version(state.ours).tree)
    other = hist.flatten(hist.version(state.theirs).tree)
    before = merge_base_files(hist, state.ours, state.theirs, state.base)
    merged, _ = three_way(before, mine, other)

    def wrote(p: bytes) -> bool:
        now = work.current.get(p)
        if now is None:
            return False
        if any(e is not None and now.same_on_disk(e) for e in (other.get(p), merged.get(p))):
            return True
        if p not in PIPELINE_FILES or (o := mine.get(p)) is None or not same_mode(now.mode, o.mode):
            return False
        b, t = before.get(p), other.get(p)
        return any(
            data is not None and now.kind == Kind.FILE and now.digest == hash_bytes(data)
            for data in (_pipeline_merged(repo, p, b, o, t, s) for s in (None, "ours", "theirs"))
        )

    edited = [p for p in work.modified if not wrote(p)]
    if edited or work.unreadable:
        paths = sorted(edited + work.unreadable)
        raise UncommittedChanges(
            "merge --abort", [quoted(p) for p in paths],
            what="copy them elsewhere first (the abort drops what the merge staged, and a "
            "commit would record the merge), or use --force to discard them",
        )  # fmt: skip


def _remove_unrecorded(
    repo: Repository, ours: bytes, theirs: bytes, workers: Workers, kept: list[bytes]
) -> int:
    """Delete the files a merge killed before it saved the index wrote, and only those;
    how many. One changed after it was hashed is left, and added to ``kept``.

    Such a file is in neither ours nor the index, so a checkout of ours leaves it
    where it is. A path that theirs adds is deleted only if it is untracked and holds
    exactly theirs' content there (a file found with other content is the user's: the
    merge never overwrites one, it refuses to start).
    """
    hist = repo.history
    index = repo.index()
    mine = hist.flatten(hist.version(ours).tree)
    other = hist.flatten(hist.version(theirs).tree)
    found: list[Found] = []
    with Walker(repo.root) as walker:
        for p in sorted(other.keys() - mine.keys()):
            if index.get(p) is None and (st := walker.lstat(p)) is not None:
                found.append(Found(p, st))
    hashed = Hasher(repo.root, repo.chunker, None, workers).stage_many(found, {})
    theirs_as = {
        p: (s.ino, s.size, s.mtime_ns) for p, s in hashed if s.same_on_disk(other[p])
    }  # (as hashed: deleted only if still so)
    return remove_many(repo.root, sorted(theirs_as), workers, theirs_as, kept)


def _side_files(
    repo: Repository, state: merging.MergeState, named: Sequence[bytes]
) -> dict[bytes, list[Entry]]:
    """The files (and links) ours and theirs have at or below each conflict at or
    below ``named``: what a restore may replace where the index tracks nothing
    (theirs' ``x/f`` that ``restore --theirs --worktree x`` wrote over ours' file
    ``x``; ours' ``x/g``, which the merge deleted, that ``restore --ours --worktree
    x`` wrote with ours' directory ``x``)."""
    hist = repo.history
    trees = [hist.version(v).tree for v in (state.ours, state.theirs)]
    out: dict[bytes, list[Entry]] = {}
    for c in state.conflicts:
        if co.under_any(c.path, list(named)):
            out.setdefault(c.path, [])
            for t in trees:
                e = hist.lookup(t, c.path)
                if e is not None and e.kind == Kind.DIR:
                    for p, f in hist.walk(e.subtree, c.path):
                        out.setdefault(p, []).append(f)
                elif e is not None:
                    out[c.path].append(e)
    return out


def _refuse_lacking(
    repo: Repository,
    state: merging.MergeState,
    paths: Sequence[str],
    named: Sequence[bytes],
    rev: str,
    source: str,
) -> None:
    """UsageError if a PATH holding a conflict is not in ``source`` (a side that
    deleted it): ``restore --worktree`` writes a side's files and deletes none, and
    the settling restore (without ``--worktree``) is what takes the side there."""
    hist = repo.history
    tree = hist.version(hist.resolve(rev)).tree
    clashing = [c.path for c in state.conflicts]
    for arg, r in zip(paths, named, strict=True):
        if any(co.under_any(c, [r]) for c in clashing) and hist.lookup(tree, r) is None:
            other = "theirs" if source == "ours" else "ours"
            raise UsageError(
                f"{quote_given(arg)} is in conflict and not in {source} ({other} has it), and "
                f"--worktree deletes no file: `dvfs restore --{source} {shell_word(arg)}` "
                f"settles it as {source} has it; nothing was restored"
            )


def resolve(
    repo: Repository,
    paths: Sequence[str],
    workers: Workers,
    *,
    source: str,
    warn: Warn = quiet,
    offline: bool = False,
    yes: bool = False,
    worktree_only: bool = False,
) -> rs.RestoreReport:
    """Settle conflicts of the merge in progress: the conflicts at or below PATHs take
    ``source``'s content in the index and the working tree ("ours", "theirs", or any
    revision), and are marked resolved; a path the source lacks is deleted (and so are
    the paths below a conflict the source has a file at). The paths merged without
    conflict stay as merged (a PATH with no conflict at or below it
    takes the source's content whole, as named).

    A conflict whose file of ``source`` cannot be written (its data damaged, or on no
    remote) is not settled: its index entry stays as it was, and ``report.unsettled``
    names it; a conflict is settled only by content the working tree holds.
    (With ``worktree_only``, ``report.unsettled`` names the conflicts at PATHs left.)

    ``worktree_only`` (``restore --ours|--theirs --worktree``, as git's ``restore
    --ours``): the same files take the side's content in the working tree alone; the
    index and the conflicts stay as they are (``dvfs add`` settles them then)."""
    state = merging.live(repo.dir, repo.refs)
    if state is None:
        raise UsageError("--ours and --theirs choose a side of a merge, and none is in progress")
    rev = {"ours": state.ours.hex(), "theirs": state.theirs.hex()}.get(source, source)
    clashing = [c.path for c in state.conflicts]
    named = [repo.rel(p) for p in paths]
    settled = [r for r in named if any(co.under_any(c, [r]) for c in clashing)]

    def only(p: bytes) -> bool:  # at or below a conflict, or below a PATH that holds none
        return any(q in conflicting for q in (p, *_above(p))) or not co.under_any(p, settled)

    conflicting = set(clashing)
    sides = _side_files(repo, state, named)
    if worktree_only:
        _refuse_lacking(repo, state, paths, named, rev, source)
        report = rs.restore(
            repo, paths, workers, staged=False, worktree=True, source=rev, offline=offline,
            yes=yes, warn=warn, only=only, named=source, sides=sides,
        )  # fmt: skip
        report.unsettled = [p for p in state.unresolved() if co.under_any(p, named)]
        return report
    with repo.locked():  # PATHs of conflicts the side deleted, that ours did too:
        hist, index = repo.history, repo.index()  # nothing to restore, settled below
        tree = hist.version(hist.resolve(rev)).tree
        gone = {
            r for r in named
            if any(co.under_any(c, [r]) for c in clashing)
            and not index.under(r) and hist.lookup(tree, r) is None
        }  # fmt: skip
    rest = [p for p, r in zip(paths, named, strict=True) if r not in gone]
    report = rs.restore(
        repo, rest, workers, staged=True, worktree=True, source=rev, offline=offline,
        yes=yes, warn=warn, only=only, named=source, unstage_failed=True, sides=sides,
    ) if rest else rs.RestoreReport(source)  # fmt: skip
    with repo.locked():
        hist = repo.history
        rels = [repo.rel(p) for p in paths]
        tree = hist.version(hist.resolve(rev)).tree
        index = repo.index()
        hits = [c for c in state.conflicts if co.under_any(c.path, rels)]
        report.unsettled = [
            c.path for c in hits if any(co.under_any(f, [c.path]) for f in report.failed)
        ]
        with Walker(repo.root) as walker:
            for c in hits:
                if hist.lookup(tree, c.path) is None and index.get(c.path) is None:
                    report.deleted += remove_path(walker, c.path)  # the chosen side deleted it
        # A conflict above a PATH (ours a file d, the source a directory d holding d/f)
        # is settled as the source's when its file made way for the source's directory:
        # it holds nothing else either side could take there.
        made_way = [
            c for c in state.conflicts
            if c not in hits and any(r.startswith(c.path + b"/") for r in rels)
            and index.get(c.path) is None
            and (e := hist.lookup(tree, c.path)) is not None and e.kind == Kind.DIR
        ]  # fmt: skip
        now = merging.live(repo.dir, repo.refs)
        if now is not None:
            left = set(report.unsettled)
            done = [c.path for c in (*hits, *made_way) if c.path not in left]
            report.settled = len(done)
            # Each at its path alone: the conflicts below the file d that made way (theirs'
            # d/g beside the d/f restored), or below one whose file failed, stay until
            # settled themselves (they were marked settled with it, unwritten).
            merging.save(repo.dir, now.resolving(done, below=False))
    return report
