"""Per version, the paths whose content it changed: worked out once, then kept.

"Since which version has this file had this content" (``added in``, shown by ``dvfs
show``, a mount's ``.versions/vN/meta`` and the dashboard) walks the first-parent
chain back and asks, at each version, which paths it changed against its first
parent. Decoding both trees whole cost about 0.1 s per version for a directory of
20,000 entries: minutes for every ``dvfs show --json`` over a history of 1,000
versions that each touch such a directory. Only the entries that differ are decoded
now (:mod:`vfs.ops.rows`, a few milliseconds), and as a version's answer never
changes, it is worked out once and kept in the repository as a cache of derived
data::

    .dvfs/changes/<2 hex>/<62 hex>     (the version's id)
    msgpack {"v": 1, "parent": <first parent's id>, "paths": [path, ...]}

``paths`` are the file, link and empty-directory paths of the version whose entry is
new or differs from the first parent's in kind, content, mode or size
(:func:`vfs.ops.diff.same_entry`), sorted. A first version has no record: all of
it is new. Records are written atomically without fsync: a record lost or torn by
a crash fails to decode and is worked out again, as is one that is too large,
names another parent or holds a path that is not a clean relative path. A
repository whose ``.dvfs`` cannot be written (read-only media, a full disk) still
answers, from memory only. ``dvfs gc`` drops the records of versions it deletes
(:func:`prune`).
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Container, Iterable
from functools import lru_cache
from pathlib import Path

import msgpack

from vfs._os.beneath import open_dir
from vfs.errors import DvfsError
from vfs.model.codec import Kind, check_name
from vfs.model.ids import ID_BYTES
from vfs.ops import rows
from vfs.ops.diff import same_entry
from vfs.repo.history import History
from vfs.store.durable import write_atomic_at

CHANGES_DIR = "changes"
RECORD_FORMAT = 1
MAX_RECORD = 256 << 20  # bytes of one record read back (a version changing ~4M paths)
MEMO = 4096  # versions whose answer a process keeps in memory


class _Memo:
    """What one history has worked out: what each version changed."""

    def __init__(self, hist: History) -> None:
        self.changed = lru_cache(maxsize=MEMO)(lambda oid: _changed_paths(hist, oid))


def _memo(hist: History) -> _Memo:
    return hist.memo("changed", _Memo)


def record_path(root: Path, oid: bytes) -> Path:
    """Where the record of version ``oid`` lives below ``root`` (``.dvfs/changes``)."""
    h = oid.hex()
    return root / h[:2] / h[2:]


def changed_paths(hist: History, oid: bytes) -> frozenset[bytes] | None:
    """The paths version ``oid`` changed against its first parent (module doc), or None
    for a version without parents (everything in it is new)."""
    return _memo(hist).changed(oid)


def _changed_paths(hist: History, oid: bytes) -> frozenset[bytes] | None:
    v = hist.version(oid)
    if not v.parents:
        return None
    parent = v.parents[0]
    where = record_path(hist.derived / CHANGES_DIR, oid) if hist.derived is not None else None
    if where is not None:
        kept = _read(where, parent)
        if kept is not None:
            return kept
    paths = compute(hist, hist.version(parent).tree, v.tree)
    if where is not None:
        _write(where, parent, paths)
    return paths


def compute(hist: History, a: bytes | None, b: bytes) -> frozenset[bytes]:
    """Paths of tree ``b`` whose entry is new or differs from tree ``a``'s (module doc).

    Only directories whose ids differ are read, and of those only the entries that
    differ are decoded (:func:`vfs.ops.rows.differing`).
    """
    out: list[bytes] = []
    stack: list[tuple[bytes | None, bytes, bytes]] = [(a, b, b"")]
    while stack:
        x_id, y_id, prefix = stack.pop()
        if x_id == y_id:
            continue
        if x_id is not None:
            odd_x, newer = rows.differing(hist, x_id, y_id)
            older = {e.name: e for e in odd_x}
        else:
            older, newer = {}, rows.entries(hist, y_id)
        for y in newer:
            path = prefix + b"/" + y.name if prefix else y.name
            x = older.get(y.name)
            x_dir = x is not None and x.kind == Kind.DIR
            if y.kind == Kind.DIR:
                if x_dir:
                    assert x is not None
                    stack.append((x.subtree, y.subtree, path))  # ids differ: rows did
                elif rows.count(hist, y.subtree):
                    stack.append((None, y.subtree, path))
                else:
                    out.append(path)  # an empty directory where there was none
            elif x is None or x_dir or not same_entry(x, y):
                out.append(path)
    return frozenset(out)


def _read(where: Path, parent: bytes) -> frozenset[bytes] | None:
    """The record at ``where`` if it is whole, valid and about ``parent``; else None
    (also where a link is on the way: records are read, as written, in directories
    opened without following one)."""
    top = where.parent.parent
    try:
        shard = open_dir(top.parent, f"{top.name}/{where.parent.name}")
    except OSError:
        return None
    try:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(where.name, flags, dir_fd=shard)
    except OSError:
        return None
    finally:
        os.close(shard)
    try:
        st = os.fstat(fd)
        size = st.st_size
        if size > MAX_RECORD or not stat.S_ISREG(st.st_mode):  # (a FIFO: never waited on)
            return None
        data = os.pread(fd, size + 1, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        return _decode(data, parent)
    except Exception:  # msgpack raises several unrelated types; FormatError from a name
        return None


def _decode(data: bytes, parent: bytes) -> frozenset[bytes] | None:
    rec = msgpack.unpackb(data, raw=False, strict_map_key=True)
    if not isinstance(rec, dict) or set(rec) != {"v", "parent", "paths"}:
        return None
    if rec["v"] != RECORD_FORMAT or rec["parent"] != parent:
        return None
    paths = rec["paths"]
    if not isinstance(paths, list):
        return None
    prev = b""
    for p in paths:
        if type(p) is not bytes or not prev < p or len(p) > 4096:
            return None
        for part in p.split(b"/"):
            check_name(part)  # FormatError (or ReservedName, one of them) on a bad part
        prev = p
    return frozenset(paths)


def _write(where: Path, parent: bytes, paths: frozenset[bytes]) -> None:
    """Keep the record; a repository that cannot take it is answered from memory."""
    assert len(parent) == ID_BYTES
    data = msgpack.packb(
        {"v": RECORD_FORMAT, "parent": parent, "paths": sorted(paths)}, use_bin_type=True
    )
    # (nothing is kept where a link points, made before or swapped in: see prune)
    with contextlib.suppress(OSError, DvfsError):
        top = where.parent.parent
        fd = open_dir(top.parent, f"{top.name}/{where.parent.name}", make=True)
        try:
            write_atomic_at(fd, where.name, data, sync=False)
        finally:
            os.close(fd)


def first_seen(
    hist: History,
    oid: bytes,
    paths: Iterable[bytes],
    within: bytes = b"",
    deadline: Callable[[], bool] | None = None,
) -> tuple[dict[bytes, str], str | None]:
    """For each of ``paths`` (entries of version ``oid``), the version since which it
    has had its content there: the first version, walking the first-parent chain back
    from ``oid``, that changed it, named as :meth:`History.revision` names it (``vN``,
    or the id of a version ``vN`` does not read as here: another branch's).

    ``within`` (a directory holding every one of ``paths``) lets versions that left that
    directory's tree untouched be passed over without asking what they changed. If
    ``deadline()`` turns true before every path is placed, the walk stops and also
    answers the version at or before which the rest got their content (they have it
    unchanged from there to ``oid``); otherwise that second value is None.
    """
    pending = set(paths)
    out: dict[bytes, str] = {}
    named: dict[bytes, str] = {}

    def name(o: bytes) -> str:
        if o not in named:
            named[o] = hist.revision(o)
        return named[o]

    cur = oid
    cur_dir = _dir_id(hist, hist.version(oid).tree, within)
    while pending:
        v = hist.version(cur)
        if not v.parents:
            out.update(dict.fromkeys(pending, name(cur)))
            break
        if deadline is not None and deadline():
            return out, name(cur)
        parent = v.parents[0]
        below = _dir_id(hist, hist.version(parent).tree, within)
        if below is None:  # the directory is new here: so is all of it
            out.update(dict.fromkeys(pending, name(cur)))
            break
        if below != cur_dir:
            changed = changed_paths(hist, cur)
            assert changed is not None
            hits = pending & changed if len(pending) < len(changed) else changed & pending
            label = name(cur)
            for p in hits:
                out[p] = label
            pending -= hits
        cur, cur_dir = parent, below
    return out, None


def _dir_id(hist: History, tree: bytes, path: bytes) -> bytes | None:
    """The tree id of the directory ``path`` below ``tree`` (None if it is not one)."""
    if not path:
        return tree
    e = hist.lookup(tree, path)
    return e.subtree if e is not None and e.kind == Kind.DIR else None


def prune(dvfs_dir: Path, live: Container[bytes]) -> int:
    """Delete the records of versions not in ``live`` (``dvfs gc``); how many went.

    A symbolic link in place of the directory or of a shard is not followed (nothing
    outside the repository is deleted).
    """
    gone = 0
    try:
        root = open_dir(dvfs_dir, CHANGES_DIR)  # (deleted in by name: never through a link)
    except OSError:
        return 0
    try:
        for shard in os.listdir(root):
            try:
                fd = open_dir(root, shard)
            except OSError:
                continue
            try:
                for name in os.listdir(fd):
                    try:
                        oid = bytes.fromhex(shard + name)
                    except ValueError:
                        oid = b""  # not a record (a temporary left by a crash): goes too
                    if len(oid) != ID_BYTES or oid not in live:
                        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                            os.unlink(name, dir_fd=fd)
                            gone += 1
            finally:
                os.close(fd)
    finally:
        os.close(root)
    return gone


def work_out(hist: History, tips: Iterable[bytes]) -> int:
    """Work out and keep what each version on the first-parent chains of ``tips``
    changed; how many versions that took (those already kept cost a read)."""
    done = 0
    for tip in tips:
        for oid, _ in hist.chain(tip):
            changed_paths(hist, oid)
            done += 1
    return done
