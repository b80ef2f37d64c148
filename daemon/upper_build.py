"""The trees of the version ``dvfs snapshot`` makes of a kernel overlay's upper layer.

A snapshot costs what changed since the last one (``head``), not the size of the upper
layer, which keeps every file changed since the mount (``daemon.upper``):

- ``recorded`` (``daemon.upper.Layers``) holds the stamp (inode, size, mtime, ctime) of
  every upper file, symbolic link and directory as the snapshot that made ``head``
  found it; a directory's under its path and a slash (``/`` for MNT itself).
- Every upper directory is listed and each entry's ``lstat`` read: a file written in
  place changes no directory, so nothing cheaper tells it unchanged. That is all a
  snapshot does with what did not change.
- An upper directory is *clean* if its own stamp is the recorded one (no name added,
  removed or renamed in it, no opacity change), every file and link in it is
  recorded with its stamp, and every upper directory below it is clean. The entry of
  a clean directory is the head's, by id: none of its trees is read, encoded or
  stored. Only the directories on the path of a change are rebuilt, from the lower
  layer's entries they show, the head's entries of what did not change in them, and
  the new files' hashes.
- New and changed files are hashed while the walk goes on (directories not as
  recorded are walked first, the unchanged ones meanwhile), in batches of one
  directory's files on the ``chunks`` pool (one thread per core): a small file is
  opened beside its directory's descriptor, read whole and ``fstat``-ed, and kept if
  its stamp is still the one the walk saw (else it is read again the careful way, by
  ``vfs.worktree.ingest.Hasher``, which retries while it changes); a large file goes through
  the Hasher, which spreads its chunks over the pool.
- The version's file count is the head's plus what changed in the rebuilt
  directories (an entry the head holds as it is counts nothing): only a directory
  removed or replaced since the head is counted through.

Threads: the walk, the trees and the count are made in the calling thread; a hashing
task only reads its files, puts chunks in the store (which may be called from any
thread) and notes a file it could not read in ``failed`` (one assignment, under the
GIL). Nothing else is shared while they run.

**Racily clean stamps** (git's word for its index): a stamp tells "unchanged" only if
any later change moves it. The filesystem's clock is read first (``fs_clock``: the
ctime of the work directory, touched, so in the upper layer's own granularity: a
filesystem of whole seconds gives whole seconds); a change after that is stamped at
or after it. So an entry whose mtime or ctime is at or after that instant is not
recorded (it may change again within the same tick without its stamp moving), and
the next snapshot hashes or lists it again. And a file or directory whose mtime falls
in the snapshot's start second, or later (a future mtime), is read again even if its
stamp is the recorded one.
"""

from __future__ import annotations

import os
import stat as statmod
from dataclasses import dataclass
from pathlib import Path

from daemon.snapshot import FileCounts
from daemon.upper import Recorded, Trees, is_special, stamp
from daemon.upper_walk import Node, Results, Walk, careful, read_target
from vfs import (
    Entry,
    FileChanged,
    Found,
    Hasher,
    Kind,
    ObjectStore,
    ObjKind,
    UsageError,
    Walker,
    dir_entry,
    encode_tree,
    quote_name,
)


def fs_clock(work: Path) -> int:
    """The upper layer's filesystem's time now, in its own granularity (ns): ``work``
    (on that filesystem, not in MNT) is touched and its ctime read."""
    os.utime(work)
    return os.stat(work).st_ctime_ns


@dataclass
class Built:
    """What a walk of the upper layer made: the root entry and what a snapshot reports."""

    root: Entry
    files: int
    hashed: int
    recorded: Recorded
    skipped: list[bytes]  # FIFOs, sockets and devices left out
    reserved: list[bytes]  # names no version may hold


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def build(
    upper: Path,
    trees: Trees,
    base: Entry | None,
    head: Entry | None,
    recorded: Recorded,
    hasher: Hasher,
    store: ObjectStore,
    counts: FileCounts,
    head_files: int,
    since: int,
) -> Built:
    """Store the trees of the working tree the upper layer and ``base`` make (blocking).

    ``head``: the version the working tree was last recorded as (``head_files`` files),
    with ``recorded`` the stamps its snapshot found; ``since``: the filesystem's clock
    when this snapshot began (``fs_clock``). See the module docstring.
    """
    w = Walk(trees, base, head, recorded, hasher, since)
    try:
        w.run(upper)
    except BaseException:
        w.settle()
        raise
    staged = w.hashed()
    for p, exc in w.failed.items():
        if isinstance(exc, FileChanged) and os.path.lexists(upper / os.fsdecode(p)):
            raise UsageError(
                f"{quote_name(os.fsdecode(p))} kept changing while it was read: snapshot "
                "again when it is no longer being written"
            )
        if not isinstance(exc, FileChanged):
            raise exc
    hashed = len(staged)
    if not w.nodes:
        raise UsageError(f"the working tree's upper layer {upper} is gone: remount it")
    # Clean directories, children first; then the entry of each topmost one is the head's
    # (or, if the head has none there, it is rebuilt after all).
    for node in reversed(w.nodes):
        node.clean = node.stamp_clean and not node.changed and all(k.clean for k in node.kids)
    for node in w.nodes:
        if not node.clean or (node.parent is not None and node.parent.clean):
            continue
        h = head if node.parent is None else w.head_entry(node.parent, node.name, Kind.DIR)
        if h is None:
            node.clean = False
            continue
        node.entry = h
    late = _late(w, staged)  # recorded files the head lacks (cannot be, but then: hash)
    for f in late:
        got = careful(hasher, f, w.failed)
        if got is not None:
            staged[f.rel] = got
    for node in reversed(w.nodes):
        if node.entry is None and not node.clean:
            _store_dir(w, node, staged, store, counts)
    root = w.nodes[0]
    assert root.entry is not None
    if root.clean:
        files = head_files
    else:
        files = root.files if root.delta is None else head_files + root.delta
    return Built(
        root.entry, files, hashed + len(late), w.new_recorded, sorted(w.skipped),
        sorted(w.reserved),
    )  # fmt: skip


def _late(w: Walk, staged: Results) -> list[Found]:
    """Files recorded unchanged in rebuilt directories whose head entry is missing."""
    out: list[Found] = []
    for node in w.nodes:
        if node.entry is not None or node.clean:
            continue
        for name in node.same:
            st = node.d.names[name]
            kind = Kind.SYMLINK if statmod.S_ISLNK(st.st_mode) else Kind.FILE
            if w.head_entry(node, name, kind) is not None:
                continue
            p = _join(node.d.rel, name)
            w.new_recorded.pop(p, None)
            if kind == Kind.FILE:
                out.append(Found(p, st))
                continue
            with Walker(w.hasher.root) as walker:
                target = read_target(walker, node.d.rel, name)
            if target is not None:
                node.links[name] = target
    return out


def _store_dir(
    w: Walk, node: Node, staged: Results, store: ObjectStore, counts: FileCounts
) -> None:
    """Build and store one changed directory's tree (its subdirectories' entries known)."""
    d = node.d
    entries: list[Entry] = []
    lower = w.lower_of(node)
    if lower is not None:
        covered = d.names.keys() | d.whiteouts
        entries.extend(e for e in lower.entries if e.name not in covered)
    kids = {k.name: k for k in node.kids}
    rebuilt: dict[bytes, Node] = {}
    same = set(node.same)
    bad = set(w.reserved) if w.reserved else set()
    for name, st in d.names.items():
        p = _join(d.rel, name)
        if p in bad or is_special(st):
            continue
        mode = st.st_mode
        if statmod.S_ISDIR(mode):
            kid = kids.get(name)
            if kid is None or kid.entry is None:  # went while walked
                continue
            e = kid.entry
            entries.append(e if e.name == name else _renamed(e, name))
            if not kid.clean:
                rebuilt[name] = kid
            continue
        if name in same:
            kind = Kind.SYMLINK if statmod.S_ISLNK(mode) else Kind.FILE
            h = w.head_entry(node, name, kind)
            if h is not None:
                entries.append(h)
                continue
        if statmod.S_ISLNK(mode):
            target = node.links.get(name)
            if target is not None:
                entries.append(
                    Entry(name, Kind.SYMLINK, 0o777, len(target), st.st_mtime_ns, target=target)
                )
                w.note(p, stamp(st))
            continue
        got = staged.get(w.twins.get(p, p))
        if got is None:  # went while read
            continue
        e, s = got
        entries.append(e if e.name == name else _renamed(e, name))
        w.note(p, s)
    entries.sort(key=lambda e: e.name)
    oid, _ = store.put(ObjKind.TREE, encode_tree(entries))
    node.entry = dir_entry(node.name, oid, entries, d.st.st_mtime_ns)
    _count(w, node, entries, rebuilt, counts)


def _count(
    w: Walk, node: Node, entries: list[Entry], rebuilt: dict[bytes, Node], counts: FileCounts
) -> None:
    """Files below a rebuilt directory: against the head's directory at its path, what
    changed (``node.delta``); where the head has none, all of them (``node.files``).

    Entries the head holds as they are count nothing, so nothing unchanged is read:
    only a directory removed or replaced since the head is counted through.
    """

    def below(e: Entry | None) -> int:
        if e is None:
            return 0
        return counts(e.subtree) if e.kind == Kind.DIR else 1

    head = w.head_of(node)
    if head is None:
        files = 0
        for e in entries:
            kid = rebuilt.get(e.name)
            files += kid.files if kid is not None else below(e)
        node.files = files
        assert node.entry is not None
        counts.known[node.entry.subtree] = files
        return
    delta = 0
    for e in entries:
        h = head.get(e.name)
        if h == e:
            continue
        kid = rebuilt.get(e.name)
        if kid is None:
            delta += below(e) - below(h)
        elif kid.delta is not None:  # a directory in the head too
            delta += kid.delta
        else:
            delta += kid.files - below(h)
    shown = {e.name for e in entries}
    delta -= sum(below(h) for h in head.entries if h.name not in shown)
    node.delta = delta


def _renamed(e: Entry, name: bytes) -> Entry:
    return Entry(
        name, e.kind, e.mode, e.size, e.mtime_ns,
        digest=e.digest, chunks=e.chunks, subtree=e.subtree, target=e.target,
    )  # fmt: skip
