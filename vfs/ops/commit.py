"""Committing: ``commit``, and the tree builder it shares with pipelines.

A commit stores the trees of the staged index rows, then makes the version by the
commit protocol (``vfs.repo.record.record_version``: record stored, store flushed
and synced, the index rewritten to name the new version, the branch moved by
compare-and-swap, then the tag and ``dvfs.lock``), so that a crash at any moment
leaves either the old or the new version on the branch and nothing half-made
reachable. The chunks were stored earlier by ``add`` (the filesystem was flushed
before the index named them).
"""

from __future__ import annotations

import contextlib
import errno
import itertools
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vfs._os.gc_pause import paused_gc
from vfs.errors import DvfsError, StorageFull, UsageError
from vfs.model import params as version_params
from vfs.model.codec import (
    DIR_MODE,
    PERM_BITS,
    Kind,
    dir_row,
    encode_tree_rows,
)
from vfs.model.ids import hash_bytes
from vfs.ops.behind import merge_in_progress, moved_past, quiet
from vfs.quoting import quoted, shell_word
from vfs.repo.record import record_version, tag_free
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import Repository
from vfs.repo.stage import CacheTree, Index, RowAt, Staged, as_row
from vfs.store.objects import ObjectStore, ObjKind
from vfs.worktree.scan import (
    SKIP_DIRS,
    Warn,
    reserved_in,
    reserved_message,
    show,
)

NOT_COMMITTED = "nothing was committed, what is staged stays staged"  # a full disk's line


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
        oid = _store_tree(d, kids, store.put)
        if not d:
            root_id = oid
            continue
        parent, _, name = d.rpartition(b"/")
        children[parent].append(dir_row(name, oid, kids))
    return root_id, files, total


def build_index_trees(store: ObjectStore, index: Index) -> tuple[bytes, int, int]:
    """Store the trees of the staging index; return (root id, files, bytes).

    As git's cache-tree: a directory whose tree the index caches (:meth:`Index.trees`)
    is not built again, so a commit costs what changed, not the size of the index (one
    file added beside 20,000 builds one tree, and decodes one row). A cached tree is
    used only if as many paths lie below the directory as when it was built and the
    store holds it; else the directory is built from its rows. The index is then
    given the trees of every directory, for the next commit.
    """
    names, sizes, mtimes, row_at = index.tree_columns()
    cache = index.trees()
    with paused_gc():
        root, trees = _build_cached(names, sizes, mtimes, row_at, cache, store.has, store.put)
    index.set_trees(trees)
    return root, len(names), sum(sizes)


def index_tree_ids(index: Index) -> CacheTree:
    """Every directory's cache-tree entry (:meth:`Index.trees`) built afresh from the
    index's rows, storing nothing: what ``fsck`` checks the cache-tree against."""
    names, sizes, mtimes, row_at = index.tree_columns()

    def put(_: ObjKind, data: bytes) -> tuple[bytes, int]:
        return hash_bytes(data), 0

    with paused_gc():
        return _build_cached(names, sizes, mtimes, row_at, {}, lambda _: True, put)[1]


def _build_cached(
    names: Sequence[bytes],
    sizes: Sequence[int],
    mtimes: Sequence[int],
    row_at: RowAt,
    cache: CacheTree,
    has: Callable[[bytes], bool],
    put: Callable[[ObjKind, bytes], tuple[bytes, int]],
) -> tuple[bytes, CacheTree]:
    """The root tree id of sorted ``names`` and the trees of every directory.

    The paths below a directory ``d`` are the contiguous run of ``names`` from
    ``d + "/"`` up to ``d + "0"`` ("0" follows "/"), found by bisection; a cached
    directory's run is skipped whole, its size and mtime for the entry in its parent
    summed from the columns. Directories are built deepest first from an explicit
    stack (a path may have thousands of components).
    """
    out: CacheTree = {}
    kept: list[bytes] = []  # cached directories used as they are
    n = len(names)

    def usable(d: bytes, lo: int, hi: int) -> tuple[int, int, int, bytes] | None:
        hit = cache.get(d)
        if hit is None or hit[:3] != _sums(sizes, mtimes, lo, hi) or not has(hit[3]):
            return None
        kept.append(d)
        return hit

    if n and (top := usable(b"", 0, n)) is not None:
        root = top[3]
    else:
        # A frame: [directory, first row, end row, next row to look at, its rows].
        stack: list[list[Any]] = [[b"", 0, n, 0, []]]
        root = b""
        while stack:
            frame = stack[-1]
            d, lo, hi, i, kids = frame
            cut = len(d) + 1 if d else 0
            pushed = False
            while i < hi:
                name = names[i]
                slash = name.find(b"/", cut)
                if slash < 0:
                    r = row_at(i)
                    kind = r[1]
                    payload = (r[7], r[8]) if kind == Kind.FILE else r[9]
                    kids.append([name[cut:], kind, r[2] & PERM_BITS, r[3], r[4], payload])
                    i += 1
                    continue
                sub = name[:slash]
                j = bisect_left(names, sub + b"0", i, hi)
                hit = usable(sub, i, j)
                if hit is None:
                    frame[3] = i
                    stack.append([sub, i, j, i, []])
                    pushed = True
                    break
                kids.append(_dir_entry(name[cut:slash], hit))
                i = j
            if pushed:
                continue
            built = out[d] = (*_sums(sizes, mtimes, lo, hi), _store_tree(d, kids, put))
            stack.pop()
            if not stack:
                root = built[3]
                break
            parent = stack[-1]
            pcut = len(parent[0]) + 1 if parent[0] else 0
            parent[4].append(_dir_entry(d[pcut:], built))
            parent[3] = hi
    if b"" in kept:  # nothing built: every cached tree still holds
        out = dict(cache)
    elif kept:  # the cached trees at and below a directory used as it is still hold
        below = tuple(k + b"/" for k in kept)
        out.update((d, hit) for d, hit in cache.items() if d.startswith(below))
        out.update((k, cache[k]) for k in kept)
    return root, out


def _sums(sizes: Sequence[int], mtimes: Sequence[int], lo: int, hi: int) -> tuple[int, int, int]:
    """Paths, bytes and newest mtime of rows ``lo`` to ``hi`` (a directory's, cached)."""
    return hi - lo, sum(sizes[lo:hi]), max(mtimes[lo:hi], default=0)


def _dir_entry(name: bytes, tree: tuple[int, int, int, bytes]) -> list[Any]:
    """The row, in its parent, of directory ``name`` whose cache-tree entry is ``tree``
    (as :func:`dir_row`: size the sum of its paths', mtime the newest)."""
    _, size, mtime, oid = tree
    return [name, int(Kind.DIR), DIR_MODE, size, mtime, oid]


def _store_tree(
    d: bytes, kids: list[list[Any]], put: Callable[[ObjKind, bytes], tuple[bytes, int]]
) -> bytes:
    """Store directory ``d``'s tree of rows ``kids``; its id. UsageError for a name an
    older dvfs staged that no tree may hold now."""
    kids.sort(key=lambda row: row[0])
    names = [k[0] for k in kids]
    bad = reserved_in(names, at_root=not d) or [n for n in names if n in SKIP_DIRS]
    if bad:  # (staged by an older dvfs: add refuses them now)
        path = d + b"/" + bad[0] if d else bad[0]
        raise UsageError(
            f"the index holds {reserved_message(path)}: run `dvfs rm --cached "
            f"{shell_word(show(path))}`, then commit"
        )
    twice = next((a for a, b in itertools.pairwise(names) if a == b), None)
    if twice is not None:  # a file and paths below it: no tree may hold the name twice
        raise UsageError(both_message(d + b"/" + twice if d else twice))
    return put(ObjKind.TREE, encode_tree_rows(kids))[0]


def both_message(path: bytes) -> str:
    """What to do about an index that stages ``path`` as a file and paths below it."""
    return (
        f"the index stages {quoted(path)} both as a file and as a directory: run "
        f"`dvfs add {shell_word(path)}` to stage what the working tree holds there"
    )


class CommitResult(NamedTuple):
    """The version a commit made (a named tuple: made at less cost than a dataclass,
    see ``vfs.model.chunking.ChunkerParams``)."""

    oid: bytes
    number: int
    files: int
    bytes: int


def check_message(message: str | None, *, amend: bool = False, merge: bool = False) -> None:
    """UsageError unless ``message`` can be a version's: not blank, UTF-8, bounded; None
    only for an amend (which keeps the amended version's) or the commit of a merge in
    progress (``merge``: it takes the message the merge recorded)."""
    if message is None:
        if amend or merge:
            return
        raise UsageError(
            "missing option '-m' / '--message': say what this version is (see `dvfs commit --help`)"
        )
    if not message.strip():
        raise UsageError("the commit message is empty: pass -m MESSAGE")
    version_params.message(message)


def commit(
    repo: Repository,
    message: str | None,
    params: dict[str, Any],
    tag: str | None = None,
    warn: Warn = quiet,
    *,
    amend: bool = False,
    locked: bool = False,
) -> CommitResult:
    """Record the staged data as a new version on the current branch.

    Once the branch has moved the version is committed; if recording it elsewhere
    then fails (the tag, ``dvfs.lock``, the index: say the disk just filled up), that
    is a warning saying what to run, not an error claiming nothing was committed.
    ``message`` and ``params`` are checked against the bounds of :mod:`vfs.model.params`.

    With ``amend`` (git's ``commit --amend``) the new version replaces the branch's
    latest one: it gets that version's parents (so its number), its message unless
    ``message`` is given, and its parameters updated with ``params``. ``locked``: the
    caller holds the repository lock.
    """
    in_merge = message is None and merge_in_progress(repo) is not None
    check_message(message, amend=amend, merge=in_merge)
    params = version_params.check(params)
    if tag is not None:
        check_ref_name(tag, "tag")
    with contextlib.nullcontext() if locked else repo.locked():
        try:
            return commit_locked(repo, message, params, tag, warn, amend=amend)
        except StorageFull as exc:  # (raised before the branch moved: see above)
            raise StorageFull(f"{NOT_COMMITTED}: {exc}") from exc
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            raise StorageFull(
                f"{NOT_COMMITTED}: the disk is full ({exc.strerror}): free some space and run "
                "it again"
            ) from exc


def committable(repo: Repository, amend: bool = False) -> tuple[bytes | None, Index]:
    """UsageError if a commit on HEAD is refused whatever is staged: HEAD detached, an
    amend with no version, a working tree the branch moved past; else the branch's
    version and the index. ``commit -a`` asks first, so that a refused commit stages
    nothing (as git's ``commit -a``, which stages into an index of its own)."""
    hist = repo.history
    head = hist.head()
    if head.detached is not None:
        back = (  # the branch HEAD came from, unless it was deleted since
            f", or `dvfs switch {head.branch}`"
            if repo.refs.get(f"refs/heads/{head.branch}") is not None
            else ""
        )
        raise UsageError(
            f"HEAD is detached at {hist.label(head.detached)}: run `dvfs switch -c NAME` "
            f"to commit on a new branch from here (your changes stay){back}"
        )
    parent = repo.refs.get(f"refs/heads/{head.branch}")
    if amend and parent is None:
        raise UsageError(f"nothing to amend: {head.branch} has no versions yet; commit first")
    index = repo.index()
    behind = moved_past(hist, index)
    if behind is not None:
        raise UsageError(
            f"{head.branch} moved to {hist.label(parent) if parent else '?'} since this "
            f"working tree was at {behind} (a snapshot of a mount, a pull elsewhere or one "
            f"cut short): run `dvfs switch {head.branch}` to bring it up to date, then commit"
        )
    return parent, index


def commit_locked(
    repo: Repository,
    message: str | None,
    params: dict[str, Any],
    tag: str | None = None,
    warn: Warn = quiet,
    *,
    amend: bool = False,
) -> CommitResult:
    """:func:`commit` for a caller that holds the repository lock and checked its input.

    While a merge is in progress (``vfs.ops.merging``), the version gets the merged
    version as its second parent, and is refused while a conflict is unresolved;
    the merge record is removed once the branch has moved. ``message`` None: the
    amended version's (``amend``), or the message the merge in progress recorded
    (``dvfs merge -m``, else "merge REV into BRANCH"), as git's ``MERGE_MSG``.
    """
    hist = repo.history
    head = hist.head()
    parent, index = committable(repo, amend)
    tag_free(repo, tag)
    if index.count() == 0 and parent is None:
        raise UsageError("nothing to commit: run `dvfs add PATH` first")
    merge = merge_in_progress(repo)  # (vfs.ops.merging is loaded only where there is one)
    if merge is not None and amend:
        raise UsageError(
            f"a merge of {merge.rev} is in progress: commit it (without --amend) or give it "
            "up (`dvfs merge --abort`) first"
        )
    if merge is not None and not merge.ready:
        raise UsageError(
            f"the merge of {merge.rev} stopped before it had staged its files, so the index "
            f"does not hold it: `dvfs merge --abort`, then `dvfs merge {merge.rev}` again"
        )
    if merge is not None and (left := merge.unresolved()):
        shown = ", ".join(quoted(p) for p in left[:5]) + (
            f" and {len(left) - 5} more" if len(left) > 5 else ""
        )
        raise UsageError(
            f"{len(left)} path{'s' if len(left) != 1 else ''} of the merge of {merge.rev} "
            f"{'are' if len(left) != 1 else 'is'} still in conflict ({shown}): choose with "
            "`dvfs restore --ours PATH` or `--theirs PATH` (or edit and `dvfs add PATH`), "
            "then commit; `dvfs merge --abort` gives up the merge"
        )
    tree, files, total = build_index_trees(repo.store, index)
    parent_v = hist.version(parent) if parent is not None else None
    parents: tuple[bytes, ...] = (
        () if parent is None else (parent,) if merge is None else (parent, merge.theirs)
    )
    if amend and parent_v is not None:
        message = parent_v.message if message is None else message
        params = {**parent_v.params, **params}
        parents = parent_v.parents
        if (tree, message, params) == (parent_v.tree, parent_v.message, parent_v.params):
            raise UsageError(
                f"nothing to amend: the staged data, message and parameters equal "
                f"v{parent_v.number}'s; run `dvfs add PATH` to stage changes, or give -m"
            )
    elif parent_v is not None and parent_v.tree == tree and merge is None:
        raise UsageError(
            f"nothing to commit: the staged data equals v{parent_v.number}; "
            "run `dvfs add PATH` to stage changes"
        )
    if message is None and merge is not None and not amend:
        message = merge.message
    if message is None:  # (only an amend takes the version's own)
        raise UsageError("the commit message is missing: pass -m MESSAGE")

    # The index names the new version before the branch does: killed in between,
    # it names a version the branch never got, which is ignored (``vfs.ops.status``);
    # the other way round, the next commit would seem to undo this one. It is written
    # and fsynced beside the old one while the objects are made durable, and takes
    # its name once they are (``ready``); nothing is read from the store meanwhile.
    number = hist.version(parents[0]).number + 1 if parents else 1  # (record_version's)

    def noting(oid: bytes, ready: Callable[[], object]) -> Path:
        index.head = index.base = oid
        index.numbers[oid] = number  # (status names it without reading it)
        index.removed_absent.clear()  # (their removal is this version's)
        index.save(ready=ready, settle=False)  # (its folder fsynced with the branch's file)
        return index.path.parent

    made = record_version(
        repo, tree, message, params, branch=head.branch, parents=parents,
        expect=parent, files=files, size=total, tag=tag, noting=noting, warn=warn,
    )  # fmt: skip
    if amend and parent is not None:
        _amended(repo, head.branch, parent, warn)
    if merge is not None:
        from vfs.ops import merging

        merging.reached("moved")
        merging.remove(repo.dir)  # (killed before this, the record is stale: ignored)
    return CommitResult(made.oid, made.version.number, files, total)


def _amended(repo: Repository, branch: str, old: bytes, warn: Warn) -> None:
    """Say what still names the version an amend replaced: its tags stay on it (as
    git's), and a remote that has it needs ``push --force`` to take the new one."""
    tags = sorted(n for n, oid in repo.refs.tags().items() if oid == old)
    if tags:
        warn(
            f"tag {tags[0]}{f' (and {len(tags) - 1} more)' if len(tags) > 1 else ''} still "
            f"names the amended version {old.hex()[:10]}: `dvfs tag -d {tags[0]}` and "
            f"`dvfs tag {tags[0]}` move it to the new one"
        )
    with contextlib.suppress(DvfsError):
        for name in repo.refs.names("remotes"):
            if name.partition("/")[2] == branch and repo.refs.get(f"refs/remotes/{name}") == old:
                warn(
                    f"{name} has the amended version: `dvfs push --force` replaces it "
                    "there (refused if someone pushed since)"
                )
