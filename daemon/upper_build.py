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

import errno
import os
import stat as statmod
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

from daemon.snapshot import FileCounts
from daemon.upper import Dir, Recorded, Stamp, Trees, is_special, read_dir, stamp
from vfs import (
    ABSENT_ERRNOS,
    PERM_BITS,
    READ_BENEATH,
    VERSIONS_DIR,
    ChunkRef,
    DvfsError,
    Entry,
    FileChanged,
    FileUnreadable,
    Found,
    Hasher,
    Kind,
    ObjectStore,
    ObjKind,
    Pending,
    Tree,
    UsageError,
    Walker,
    any_reserved,
    dir_entry,
    encode_tree,
    hash_bytes,
    is_reserved,
    is_reserved_at_root,
)

BATCH_FILES = 64  # small files of one directory hashed per task
BATCH_BYTES = 4 << 20  # and at most about this many bytes of them
SECOND = 1_000_000_000
Hashed = tuple[Entry, Stamp]  # a file's entry (named as its path's last name), as read
Results = dict[bytes, Hashed]  # by path
Failed = dict[bytes, DvfsError]
Batch = list[tuple[bytes, os.stat_result]]  # one directory's small files: name, lstat
_FMT, _DIR, _REG, _LNK = 0o170000, statmod.S_IFDIR, statmod.S_IFREG, statmod.S_IFLNK


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


_UNSET = Tree(())  # a tree not looked up yet (an identity, never a real tree)


@dataclass(eq=False)
class _Node:
    """One upper directory, as walked."""

    d: Dir
    parent: _Node | None
    name: bytes
    stamp_clean: bool  # its names are those recorded
    changed: bool = False  # a file or link in it is not as recorded
    kids: list[_Node] = field(default_factory=list)  # upper subdirectories
    same: list[bytes] = field(default_factory=list)  # files and links recorded unchanged
    links: dict[bytes, bytes] = field(default_factory=dict)  # changed links: targets
    clean: bool = False  # nothing below changed (set children first)
    entry: Entry | None = None
    files: int = 0  # files below it, if the head has no directory at its path
    delta: int | None = None  # else: files below it, less those below the head's
    lower: Tree | None = _UNSET  # the lower directory it shows (None: none)
    head: Tree | None = _UNSET  # the head's directory at its path (None: none)


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


class _Walk:
    """One snapshot's walk of the upper layer; its hashing runs beside it."""

    def __init__(
        self, trees: Trees, base: Entry | None, head: Entry | None, recorded: Recorded,
        hasher: Hasher, since: int,
    ) -> None:  # fmt: skip
        self.trees = trees
        self.base, self.head = base, head
        self.recorded = recorded
        self.hasher = hasher
        self.since = since  # stamps at or after this are not recorded
        self.fresh = since - since % SECOND  # mtimes from this on are read again
        self.small = hasher.chunker.params.min_size
        self.nodes: list[_Node] = []  # parents first
        self.new_recorded: Recorded = {}
        self.skipped: list[bytes] = []
        self.reserved: list[bytes] = []
        self.large: list[Found] = []
        self.firsts: dict[tuple[int, int], bytes] = {}  # (dev, ino) -> the path hashed
        self.twins: dict[bytes, bytes] = {}  # another name of an inode -> that path
        self.failed: Failed = {}
        self.futures: list[tuple[bytes, Batch, Future[list[Hashed | None]]]] = []

    def trusted(self, s: Stamp) -> bool:
        """True if a stamp will tell a later change (see the module docstring)."""
        return s[2] < self.since and s[3] < self.since

    def note(self, key: bytes, s: Stamp) -> None:
        if self.trusted(s):
            self.new_recorded[key] = s

    def unchanged(self, key: bytes, s: Stamp) -> bool:
        return self.recorded.get(key) == s and s[2] < self.fresh

    # the walk --------------------------------------------------------------------------

    def run(self, upper: Path) -> None:
        """List every upper directory, parents first, and start hashing what changed."""
        with Walker(upper) as walker:
            stack: list[tuple[bytes, _Node | None, bytes]] = [(b"", None, b"")]
            while stack:
                rel, parent, name = stack.pop()
                d = read_dir(walker, rel, None, None)
                if d is None:  # went meanwhile
                    continue
                key = rel + b"/"
                s = stamp(d.st)
                node = _Node(d, parent, name, self.unchanged(key, s))
                self.nodes.append(node)
                if parent is not None:
                    parent.kids.append(node)
                self.note(key, s)
                subdirs = self._entries(walker, node)
                # Directories not as recorded first (popped last: pushed last), so that
                # their files are being hashed while the unchanged ones are listed
                paths = [_join(rel, n) for n in subdirs]
                order = sorted(
                    range(len(subdirs)),
                    key=lambda i: not self.unchanged(paths[i] + b"/", stamp(d.names[subdirs[i]])),
                )
                stack.extend((paths[i], node, subdirs[i]) for i in order)

    def _entries(self, walker: Walker, node: _Node) -> list[bytes]:
        """Sort one directory's entries; its upper subdirectories' names.

        The loop of the whole snapshot (once per upper entry): written out flat.
        """
        d = node.d
        rel = d.rel
        prefix = rel + b"/" if rel else b""
        subdirs: list[bytes] = []
        batch: Batch = []
        held = 0
        reserved = None  # a recorded directory's names passed already; others are screened
        if not node.stamp_clean and (
            any_reserved(list(d.names)) is not None or (not rel and VERSIONS_DIR in d.names)
        ):
            reserved = is_reserved if rel else is_reserved_at_root
        recorded, new_recorded = self.recorded, self.new_recorded
        fresh, since, small = self.fresh, self.since, self.small
        for name, st in d.names.items():
            if reserved is not None and reserved(name):  # (a recorded directory's passed)
                self.reserved.append(prefix + name)
                node.changed = True
                continue
            kind = st.st_mode & _FMT
            if kind == _DIR:
                subdirs.append(name)
                continue
            p = prefix + name
            if kind != _REG and kind != _LNK:
                self.skipped.append(p)
                continue
            r = recorded.get(p)
            mtime, ctime = st.st_mtime_ns, st.st_ctime_ns
            if (
                r is not None and r[2] == mtime and r[3] == ctime and r[0] == st.st_ino
                and r[1] == st.st_size and mtime < fresh
            ):  # fmt: skip
                node.same.append(name)
                if mtime < since and ctime < since:
                    new_recorded[p] = r
                continue
            node.changed = True
            if kind == _LNK:
                target = _readlink(walker, rel, name)
                if target is not None:
                    node.links[name] = target
                continue
            if st.st_nlink > 1:
                first = self.firsts.setdefault((st.st_dev, st.st_ino), p)
                if first != p:
                    self.twins[p] = first
                    continue
            if st.st_size > small:
                self.large.append(Found(p, st))
                continue
            batch.append((name, st))
            held += st.st_size
            if len(batch) >= BATCH_FILES or held >= BATCH_BYTES:
                self._submit(rel, batch)
                batch, held = [], 0
        if batch:
            self._submit(rel, batch)
        return subdirs

    def _submit(self, rel: bytes, batch: Batch) -> None:
        pool = self.hasher.workers.chunks
        fut = pool.submit(_hash_batch, self.hasher, rel, batch, self.failed)
        self.futures.append((rel, batch, fut))

    def hashed(self) -> Results:
        """Every changed file hashed (large ones here, beside the batches)."""
        out: Results = {}
        try:
            for f in self.large:
                got = _careful(self.hasher, f, self.failed)
                if got is not None:
                    out[f.rel] = got
            for rel, batch, fut in self.futures:
                prefix = rel + b"/" if rel else b""
                for (name, _), got in zip(batch, fut.result(), strict=True):
                    if got is not None:
                        out[prefix + name] = got
        finally:
            self.settle()
        return out

    def settle(self) -> None:
        """Let the hashing tasks end (on failure: cancelled, or waited for)."""
        for _, _, fut in self.futures:
            if not fut.cancel():
                fut.exception()

    # the trees ------------------------------------------------------------------------

    def lower_of(self, node: _Node) -> Tree | None:
        """The lower directory ``node`` shows (None if none or hidden by opacity)."""
        chain = []
        n: _Node | None = node
        while n is not None and n.lower is _UNSET:
            chain.append(n)
            n = n.parent
        for n in reversed(chain):
            if n.d.opaque:
                n.lower = None
            elif n.parent is None:
                n.lower = self._tree(self.base)
            else:
                above = n.parent.lower
                n.lower = self._tree(above.get(n.name) if above is not None else None)
        return node.lower

    def head_of(self, node: _Node) -> Tree | None:
        """The head's directory at ``node``'s path (None if none)."""
        chain = []
        n: _Node | None = node
        while n is not None and n.head is _UNSET:
            chain.append(n)
            n = n.parent
        for n in reversed(chain):
            if n.parent is None:
                n.head = self._tree(self.head)
            else:
                above = n.parent.head
                n.head = self._tree(above.get(n.name) if above is not None else None)
        return node.head

    def _tree(self, e: Entry | None) -> Tree | None:
        return self.trees(e.subtree) if e is not None and e.kind == Kind.DIR else None

    def head_entry(self, node: _Node, name: bytes, kind: Kind) -> Entry | None:
        """The head's entry ``name`` in ``node``, if it is of ``kind``."""
        tree = self.head_of(node)
        e = tree.get(name) if tree is not None else None
        return e if e is not None and e.kind == kind else None


def _readlink(walker: Walker, rel: bytes, name: bytes) -> bytes | None:
    """The target of link ``name`` in upper directory ``rel``; None if it is not one now."""
    try:
        return os.readlink(name, dir_fd=walker.dir(rel))
    except OSError as exc:
        if exc.errno in ABSENT_ERRNOS or exc.errno == errno.EINVAL:
            return None
        raise


def _hash_batch(hasher: Hasher, rel: bytes, batch: Batch, failed: Failed) -> list[Hashed | None]:
    """Hash small files of directory ``rel``, storing their chunks together (a task)."""
    out: list[Hashed | None] = []
    sink: list[Pending] = []
    prefix = rel + b"/" if rel else b""
    with Walker(hasher.root) as walker:
        try:
            dir_fd = walker.dir(rel)
        except OSError as exc:
            if exc.errno not in ABSENT_ERRNOS:
                raise
            dir_fd = -1
        for name, st in batch:
            got = _read_small(dir_fd, name, st, sink) if dir_fd >= 0 else None
            if got is None:  # not as listed: the careful way
                got = _careful(hasher, Found(prefix + name, st), failed, sink)
            out.append(got)
    if sink and hasher.store is not None:
        hasher.store.put_many(sink)
    return out


def _read_small(dir_fd: int, name: bytes, st: os.stat_result, sink: list[Pending]) -> Hashed | None:
    """A small file read at once; None if it is not as the walk saw it (or unreadable)."""
    try:
        fd = os.open(name, READ_BENEATH, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        data = os.read(fd, st.st_size + 1)
        after = os.fstat(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    s = stamp(st)
    if len(data) != st.st_size or stamp(after) != s or after.st_mode != st.st_mode:
        return None
    oid = hash_bytes(data)
    chunks: tuple[ChunkRef, ...] = ()
    if data:
        sink.append((oid, ObjKind.CHUNK, data))
        chunks = (ChunkRef(oid, len(data)),)
    mode = st.st_mode & PERM_BITS
    return Entry(name, Kind.FILE, mode, len(data), s[2], digest=oid, chunks=chunks), s


def _careful(
    hasher: Hasher, f: Found, failed: Failed, sink: list[Pending] | None = None
) -> Hashed | None:
    """``Hasher.stage_one``: read again while the file changes; None if it cannot be."""
    try:
        got = hasher.stage_one(f, sink)
    except (FileChanged, FileUnreadable) as exc:
        failed[f.rel] = exc
        return None
    name = f.rel.rpartition(b"/")[2]
    e = Entry(name, Kind.FILE, got.mode, got.size, got.mtime_ns, digest=got.digest,
              chunks=got.chunks)  # fmt: skip
    return e, (got.ino, got.size, got.mtime_ns, got.ctime_ns)


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
    w = _Walk(trees, base, head, recorded, hasher, since)
    try:
        w.run(upper)
    except BaseException:
        w.settle()
        raise
    staged = w.hashed()
    for p, exc in w.failed.items():
        if isinstance(exc, FileChanged) and os.path.lexists(upper / os.fsdecode(p)):
            raise UsageError(f"{exc}: snapshot again when it is not being written")
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
        got = _careful(hasher, f, w.failed)
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


def _late(w: _Walk, staged: Results) -> list[Found]:
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
                target = _readlink(walker, node.d.rel, name)
            if target is not None:
                node.links[name] = target
    return out


def _store_dir(
    w: _Walk, node: _Node, staged: Results, store: ObjectStore, counts: FileCounts
) -> None:
    """Build and store one changed directory's tree (its subdirectories' entries known)."""
    d = node.d
    entries: list[Entry] = []
    lower = w.lower_of(node)
    if lower is not None:
        covered = d.names.keys() | d.whiteouts
        entries.extend(e for e in lower.entries if e.name not in covered)
    kids = {k.name: k for k in node.kids}
    rebuilt: dict[bytes, _Node] = {}
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
    w: _Walk, node: _Node, entries: list[Entry], rebuilt: dict[bytes, _Node], counts: FileCounts
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
