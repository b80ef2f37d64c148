"""Looking at versions without checking them out: log, show, ls, cat and diff.

Functions here return plain data (dicts, lists, dataclasses); the CLI renders them
as tables, YAML or JSON.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from vfs.errors import FormatError, NotADirectory, NotAFile, PathNotFound, UsageError
from vfs.model.codec import Entry, Kind
from vfs.model.ids import hasher
from vfs.model.params import shown_author, shown_git, shown_message, shown_params
from vfs.model.version_codec import Version
from vfs.ops.changed import first_seen
from vfs.ops.diff import (
    Change,
    ParamChange,
    changed_under,
    diff_maps,
    diff_trees,
    param_changes,
    summary,
    tree_delta_under,
    under,
)
from vfs.ops.status import head_files, quiet, work_state
from vfs.quoting import quote_name
from vfs.repo.history import History, split_rev_path
from vfs.repo.repository import Repository
from vfs.repo.stage import Staged
from vfs.store.reader import false_digest
from vfs.worktree.pools import Workers
from vfs.worktree.scan import Warn
from vfs.worktree.scan import show as show_path


def iso_time(ns: int) -> str:
    """UTC ISO-8601 time of a nanosecond timestamp, to the second."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def version_summary(hist: History, oid: bytes, v: Version) -> dict[str, Any]:
    """The fields ``log`` shows for one version."""
    return {
        "version": f"v{v.number}",
        "id": oid.hex(),
        "created": iso_time(v.time_ns),
        "author": shown_author(v.author),
        "message": shown_message(v.message),
        "git_commit": shown_git(v.git.commit) if v.git else None,
        "git_dirty": v.git.dirty if v.git else None,
        "files": v.files,
        "bytes": v.bytes,
    }


def decorations(repo: Repository) -> dict[bytes, dict[str, list[str]]]:
    """For each version a tag or branch names: its ``tags`` and ``branches``."""
    out: dict[bytes, dict[str, list[str]]] = {}
    for kind, refs in (("tags", repo.refs.tags()), ("branches", repo.refs.branches())):
        for name, oid in refs.items():
            out.setdefault(oid, {"tags": [], "branches": []})[kind].append(name)
    return out


def log(
    repo: Repository,
    rev: str | None = None,
    limit: int | None = None,
    paths: Sequence[bytes] = (),
    names: dict[bytes, dict[str, list[str]]] | None = None,
) -> list[dict[str, Any]]:
    """Versions on the first-parent chain from ``rev`` (default HEAD), newest first.

    With ``paths``, only the versions that changed something at or below one of them
    (against their first parent); see :func:`vfs.ops.diff.changed_under`. Each row names
    the tags and branches at that version (``names``, else this repository's:
    :func:`decorations`), and its parameters.
    """
    hist = repo.history
    start = hist.head_id() if rev is None else hist.resolve(rev)
    refs = decorations(repo) if names is None else names
    out: list[dict[str, Any]] = []
    for oid, v in hist.chain(start):
        if limit is not None and len(out) >= limit:
            break
        if paths:
            parent = hist.version(v.parents[0]).tree if v.parents else None
            if not changed_under(hist, parent, v.tree, paths):
                continue
        out.append(log_row(hist, refs, oid, v))
    return out


SHOWN_REFS = 200  # tags, and branches, a row of log names at most


def log_row(
    hist: History, refs: dict[bytes, dict[str, list[str]]], oid: bytes, v: Version
) -> dict[str, Any]:
    """One row of ``dvfs log --json``: the summary, tags, branches, parameters, parents.

    At most ``SHOWN_REFS`` tags and as many branches are named (a remote may give
    100,000 of each to one version: 20 MB in every log); ``more_tags`` and
    ``more_branches`` count those left out, present only when some are."""
    row = version_summary(hist, oid, v)
    for kind, names in refs.get(oid, {"tags": [], "branches": []}).items():
        row[kind] = names[:SHOWN_REFS]
        if len(names) > SHOWN_REFS:
            row[f"more_{kind}"] = len(names) - SHOWN_REFS
    row["parameters"] = shown_params(v.params)
    row["parents"] = [p.hex() for p in v.parents]
    return row


def added_in(hist: History, oid: bytes, paths: Iterable[bytes] | None = None) -> dict[bytes, str]:
    """For each file of a version (or each of ``paths``, files of it), the version since
    which it has had this content (:func:`vfs.ops.changed.first_seen`)."""
    wanted = hist.flatten(hist.version(oid).tree) if paths is None else paths
    return first_seen(hist, oid, wanted)[0]


def added_in_dir(
    hist: History, oid: bytes, path: bytes, names: Iterable[bytes]
) -> dict[bytes, str]:
    """:func:`added_in` of the files ``names`` of the directory ``path`` of a version.

    Versions that left the directory's tree as it was are passed over at the cost of
    a lookup: the cost follows the versions that changed the directory.
    """
    return added_in_dir_until(hist, oid, path, names, None)[0]


def added_in_dir_until(
    hist: History, oid: bytes, path: bytes, names: Iterable[bytes], deadline: float | None
) -> tuple[dict[bytes, str], str | None]:
    """:func:`added_in_dir`, stopping at ``deadline`` (``time.monotonic()``) if given:
    then also the version at or before which the names not found yet got their
    content (they are the same from there to ``oid``), else None.

    What each version changed is kept once worked out (:mod:`vfs.ops.changed`), so a
    search cut short by its deadline gets further each time it is asked again.
    """
    top = hist.lookup(hist.version(oid).tree, path)
    if top is None or top.kind != Kind.DIR:
        return {}, None
    current = hist.tree(top.subtree)
    prefix = path + b"/" if path else b""
    full = {prefix + n: n for n in names if current.get(n) is not None}
    late = None if deadline is None else (lambda: time.monotonic() > deadline)
    found, bound = first_seen(hist, oid, full, within=path, deadline=late)
    return {full[p]: label for p, label in found.items()}, bound


def _file_record(e: Entry, added: str | None) -> dict[str, Any]:
    if e.kind == Kind.SYMLINK:
        return {"link": os.fsdecode(e.target), "added": added}
    return {"hash": e.digest.hex(), "size": e.size, "added": added}


TOP_DIRECTORIES = 10  # directories `dvfs show` lists, largest first
# About the text of one file's record in YAML, less its path and link target
# (``  PATH: {hash: <64 hex digits>, size: N, added: vN}``), for ``files_bytes``.
FILE_RECORD_BYTES = 100


def show(repo: Repository, rev: str | None, files: bool = True) -> dict[str, Any]:
    """Everything about one version, ready to export: metadata, what changed since its
    parent, its largest directories and (if ``files``) every file.

    Listing the files reads the whole tree and the history back to each file's
    origin; the rest reads only what differs from the parent and each directory once.
    """
    hist = repo.history
    return show_version(hist, hist.resolve(rev or "HEAD"), files)


def version_changes(hist: History, oid: bytes) -> dict[str, Any]:
    """``show``'s ``changes`` of the version ``oid``: what changed since its first parent
    (``since``, None for a first version), counted per kind, with the bytes added and
    removed. It compares the two trees, which costs a read of each directory that
    differs: ``dvfs ui`` asks for it apart, after the rest of the version is shown."""
    v = hist.version(oid)
    parent = v.parents[0] if v.parents else None
    changes = diff_trees(hist, hist.version(parent).tree if parent is not None else None, v.tree)
    since = hist.revision(parent) if parent is not None else None  # (off this branch: its id)
    return {"since": since, **summary(changes)}


def _bounded_stage(described: dict[str, Any]) -> dict[str, Any]:
    """A stage as ``show`` gives it, each params file's values bounded as a version's
    parameters are (``vfs.model.params.shown_params``)."""
    params = described.get("params")
    if isinstance(params, dict):
        described["params"] = {f: shown_params(values) for f, values in params.items()}
    return described


def show_version(
    hist: History,
    oid: bytes,
    files: bool = True,
    changes: bool = True,
    files_bytes: int | None = None,
) -> dict[str, Any]:
    """:func:`show` of the version ``oid``; without ``changes`` (see
    :func:`version_changes`) if not ``changes``. ``files_bytes``, if given, bounds
    the files listed: the first ones in path order whose records come to about that
    many bytes of text (``FILE_RECORD_BYTES`` each, and their path and link target),
    and ``files_not_listed`` then counts the others: a version of millions of files
    is never held whole."""
    from vfs.pipeline.record import describe_all  # (and the pipeline's modules: for this alone)

    v = hist.version(oid)
    extent = hist.extent(v.tree)
    data: dict[str, Any] = {
        "version": f"v{v.number}",
        "id": oid.hex(),
        "parents": [p.hex() for p in v.parents],
        "message": shown_message(v.message),
        "author": shown_author(v.author),
        "created": iso_time(v.time_ns),
        "git_commit": shown_git(v.git.commit) if v.git else None,
        "git_dirty": v.git.dirty if v.git else None,
        "parameters": shown_params(v.params),
        "pipeline": [_bounded_stage(s) for s in describe_all(v.pipeline)],
        "totals": {"files": v.files, "bytes": v.bytes, "directories": extent.dirs},
        "changes": version_changes(hist, oid) if changes else None,
        "top_directories": top_directories(hist, v.tree),
    }  # fmt: skip
    if not changes:
        del data["changes"]
    if files:
        listed: list[tuple[bytes, Entry]] = []
        room = files_bytes
        for p, e in hist.walk(v.tree):
            if room is not None:
                room -= len(p) + len(e.target) + FILE_RECORD_BYTES
                if room < 0:
                    break
            listed.append((p, e))
        cut = files_bytes is not None and extent.files > len(listed)
        added = added_in(hist, oid, [p for p, _ in listed] if cut else None)
        data["files"] = {os.fsdecode(p): _file_record(e, added.get(p)) for p, e in listed}
        if cut:
            data["files_not_listed"] = extent.files - len(listed)
    return data


def version_yaml(hist: History, oid: bytes, files_bytes: int | None = None) -> str:
    """``dvfs show REV --format yaml`` of version ``oid`` (also a mount's ``.versions/meta``,
    which lists files up to about ``files_bytes`` of text: see :func:`show_version`)."""
    from vfs.model import yaml12

    return yaml12.dump(show_version(hist, oid, files=True, files_bytes=files_bytes))


def top_directories(hist: History, tree: bytes, limit: int = TOP_DIRECTORIES) -> dict[str, Any]:
    """The largest directories of a tree (files and bytes below each), largest first.

    They are listed where the tree first branches out: a version holding everything
    in ``data/`` lists the directories inside ``data/``. ``loose`` counts the files
    directly in that directory, ``more`` the directories left out.
    """
    prefix = b""
    entries = hist.tree(tree).entries
    while len(entries) == 1 and entries[0].kind == Kind.DIR:
        prefix = prefix + b"/" + entries[0].name if prefix else entries[0].name
        entries = hist.tree(entries[0].subtree).entries
    rows: list[tuple[int, int, str]] = []
    loose = {"files": 0, "bytes": 0}
    for e in entries:
        if e.kind == Kind.DIR:
            x = hist.extent(e.subtree)
            path = prefix + b"/" + e.name if prefix else e.name
            rows.append((x.bytes, x.files, os.fsdecode(path)))
        else:
            loose["files"] += 1
            loose["bytes"] += e.size
    rows.sort(key=lambda r: (-r[0], -r[1], r[2]))
    return {
        "in": os.fsdecode(prefix),
        "directories": [{"path": p, "files": f, "bytes": b} for b, f, p in rows[:limit]],
        "more": max(0, len(rows) - limit),
        "loose": loose,
    }


def lookup(
    repo: Repository, rev: str, path: bytes, *, directory: bool = False
) -> tuple[bytes, Entry]:
    """The version ``rev`` names and its entry at ``path`` (the root: ``b""``).

    PathNotFound, naming both, if the version holds nothing there; NotADirectory if
    ``path`` was written as a directory's (``d/a/``: ``directory``) and is a file or
    a link there, as the working tree's paths (``Repository.rel``) and the kernel's.
    """
    hist = repo.history
    oid = hist.resolve(rev)
    v = hist.version(oid)
    if not path:
        return oid, v.root_entry()
    e = hist.lookup(v.tree, path)
    named = f"v{v.number}" if rev.strip() == f"v{v.number}" else f"v{v.number} ({rev})"
    if e is None:
        raise PathNotFound(f"{quote_name(path)} does not exist in {named}")
    if directory and e.kind != Kind.DIR:
        what = "a symbolic link" if e.kind == Kind.SYMLINK else "a file"
        raise NotADirectory(
            f"{quote_name(path)} is {what} in {named}, not a directory: name it without "
            "the trailing '/'"
        )
    return oid, e


def ls(repo: Repository, arg: str, recursive: bool = False) -> Iterable[tuple[bytes, Entry]]:
    """Entries of ``REV[:DIR]`` (one entry if it names a file), in name order.

    ``recursive``: every file and link below DIR instead, by its path from the root,
    walked as it is listed (the tree is never held whole).
    """
    rp = split_rev_path(arg)
    return ls_entries(repo, rp.rev, rp.path, recursive, directory=rp.directory)


def ls_entries(
    repo: Repository, rev: str, path: bytes, recursive: bool = False, *, directory: bool = False
) -> Iterable[tuple[bytes, Entry]]:
    """:func:`ls` of ``path`` in ``rev``: (name, entry) rows, or (path, entry) if recursive;
    ``directory``: ``path`` was written as a directory's (see :func:`lookup`)."""
    _, e = lookup(repo, rev, path, directory=directory)
    if e.kind != Kind.DIR:
        return [(path, e)]
    if recursive:
        return repo.history.walk(e.subtree, path)
    return [(x.name, x) for x in repo.history.tree(e.subtree).entries]


def cat(
    repo: Repository, arg: str, before: Callable[[bytes, Entry], None] | None = None
) -> Iterator[bytes]:
    """The content of ``REV:PATH``, chunk by chunk, each verified; a file of several
    chunks against its version's digest too, on the way: FormatError instead of its
    last chunk if they do not make it (a file of one chunk or none has the digest
    decoding checked, ``vfs.model.codec``).

    ``before`` is called with the path and entry of the file before its chunks are
    read (the CLI downloads those the local store lacks: ``vfs.remote.ondemand``).
    """
    rp = split_rev_path(arg)
    oid, e = lookup(repo, rp.rev, rp.path, directory=rp.directory)
    if e.kind == Kind.DIR:
        raise NotAFile(f"{quote_name(rp.path) if rp.path else '.'} is a directory: use `dvfs ls`")
    if e.kind == Kind.SYMLINK:
        yield e.target
        return
    if before is not None:
        before(rp.path, e)
    yield from digest_checked(
        (repo.store.get(c.oid) for c in e.chunks),
        e,
        lambda: quote_name(f"{repo.history.label(oid)}:{os.fsdecode(rp.path)}"),
        "its last chunk was not written out",
    )


def digest_checked(
    pieces: Iterable[bytes], e: Entry, name: Callable[[], str], then: str
) -> Iterator[bytes]:
    """``pieces``, the chunks of file ``e`` in order, the last held back until they are
    known to make the digest its version records: FormatError instead of it if they do
    not, naming the file (``name()``) and ending with ``then`` (a file of one chunk or
    none has the digest decoding checked, ``vfs.model.codec``).

    Each chunk is taken into the digest on a thread of its own (BLAKE3 lets the GIL
    go) while it is written out and the next is read: on the main thread, the hash
    made `cat` of 1 GiB 21% slower."""
    count = len(e.chunks) if e.kind == Kind.FILE else 0
    if count < 2:
        yield from pieces
        return
    whole = hasher()
    with ThreadPoolExecutor(1, "dvfs-digest") as pool:
        hashing: Future[object] | None = None
        for k, data in enumerate(pieces, 1):
            if hashing is not None:
                hashing.result()
            hashing = pool.submit(whole.update, data)
            if k == count:
                hashing.result()
                if whole.digest() != e.digest:
                    raise FormatError(f"{false_digest(name(), whole.digest(), e.digest)}: {then}")
            yield data


def working_files(
    repo: Repository, workers: Workers, warn: Warn = quiet, unreadable: list[bytes] | None = None
) -> dict[bytes, Staged]:
    """The tracked data as it is in the working tree now (staged and unstaged).

    A file that cannot be read is taken as staged, after a warning, and added to
    ``unreadable`` if given.
    """
    index = repo.index()
    state = work_state(repo, index, workers, warn)
    if unreadable is not None:
        unreadable += state.unreadable
    files = dict(index.entries)
    files.update(state.current)
    for p in state.deleted:
        files.pop(p, None)
    return files


def diff(
    repo: Repository,
    revs: Sequence[str],
    workers: Workers,
    warn: Warn = quiet,
    unreadable: list[bytes] | None = None,
    paths: Sequence[bytes] = (),
) -> list[Change]:
    """No rev: HEAD vs working tree. One: REV vs working tree. Two: REV vs REV.

    With ``paths``, only what is at or below them (between two versions, only the
    trees on the way to them are read).
    """
    hist = repo.history
    if len(revs) > 2:
        raise UsageError("diff takes at most two revisions")
    if len(revs) == 2:
        return diff_versions(repo, revs[0], revs[1], paths)
    if revs:
        old: dict[bytes, Entry] = hist.flatten(hist.version(hist.resolve(revs[0])).tree)
    else:
        old = head_files(hist)
    new = working_files(repo, workers, warn, unreadable)
    if paths:
        old = {p: e for p, e in old.items() if under(p, paths)}
        new = {p: e for p, e in new.items() if under(p, paths)}
    return diff_maps(old, new)


def diff_versions(
    repo: Repository, old: str, new: str, paths: Sequence[bytes] = ()
) -> list[Change]:
    """The changes from version ``old`` to version ``new`` (see :func:`diff`)."""
    hist = repo.history
    a, b = (hist.version(hist.resolve(r)).tree for r in (old, new))
    return diff_maps(*tree_delta_under(hist, a, b, paths)) if paths else diff_trees(hist, a, b)


def diff_params(repo: Repository, revs: Sequence[str]) -> list[ParamChange]:
    """How the parameters changed between two versions (none against a working tree)."""
    if len(revs) != 2:
        return []
    hist = repo.history
    a, b = (shown_params(hist.version(hist.resolve(r)).params) for r in revs)
    return param_changes(a, b)


def change_json(c: Change) -> dict[str, Any]:
    """A change as a JSON object (``dvfs diff --json``, ``dvfs status --json``, the UI)."""
    out: dict[str, Any] = {"status": c.status, "path": show_path(c.path), "kind": c.kind}
    if c.old_path is not None:
        out["old_path"] = show_path(c.old_path)
    out["old_size"] = c.old_size
    out["new_size"] = c.new_size
    if c.old_kind is not None:  # a file that became a link, or the reverse
        out["old_kind"] = c.old_kind
    if c.mode_changed:  # as `ls --json` writes a mode
        out["old_mode"] = oct(c.old_mode or 0)
        out["new_mode"] = oct(c.new_mode or 0)
    return out


def param_json(c: ParamChange) -> dict[str, Any]:
    """A parameter's change as JSON (``old``/``new`` absent where it did not exist)."""
    out: dict[str, Any] = {"status": c.status, "name": c.name}
    if c.status != "added":
        out["old"] = c.old
    if c.status != "removed":
        out["new"] = c.new
    return out


def diff_json(
    changes: Sequence[Change], params: Sequence[ParamChange], stat_only: bool = False
) -> dict[str, Any]:
    """``dvfs diff --json``: the summary, then each change of a file and of a parameter."""
    return {
        "summary": {**summary(list(changes)), "parameters": len(params)},
        "changes": [] if stat_only else [change_json(c) for c in changes],
        "parameters": [] if stat_only else [param_json(c) for c in params],
    }
