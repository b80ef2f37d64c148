"""The walk of a kernel overlay's upper layer that a snapshot makes, and the hashing
of the changed files that runs beside it (``daemon.upper_build`` says how and why).
"""

from __future__ import annotations

import errno
import os
import stat as statmod
from dataclasses import dataclass, field
from pathlib import Path

from daemon.upper import Dir, Recorded, Stamp, Trees, read_dir, stamp
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
    ObjKind,
    Pending,
    Task,
    Tree,
    Walker,
    any_reserved,
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

_UNSET = Tree(())  # a tree not looked up yet (an identity, never a real tree)


@dataclass(eq=False)
class Node:
    """One upper directory, as walked."""

    d: Dir
    parent: Node | None
    name: bytes
    stamp_clean: bool  # its names are those recorded
    changed: bool = False  # a file or link in it is not as recorded
    kids: list[Node] = field(default_factory=list)  # upper subdirectories
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


class Walk:
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
        self.nodes: list[Node] = []  # parents first
        self.new_recorded: Recorded = {}
        self.skipped: list[bytes] = []
        self.reserved: list[bytes] = []
        self.large: list[Found] = []
        self.firsts: dict[tuple[int, int], bytes] = {}  # (dev, ino) -> the path hashed
        self.twins: dict[bytes, bytes] = {}  # another name of an inode -> that path
        self.failed: Failed = {}
        self.futures: list[tuple[bytes, Batch, Task[list[Hashed | None]]]] = []

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
            stack: list[tuple[bytes, Node | None, bytes]] = [(b"", None, b"")]
            while stack:
                rel, parent, name = stack.pop()
                d = read_dir(walker, rel, None, None)
                if d is None:  # went meanwhile
                    continue
                key = rel + b"/"
                s = stamp(d.st)
                node = Node(d, parent, name, self.unchanged(key, s))
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

    def _entries(self, walker: Walker, node: Node) -> list[bytes]:
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
                target = read_target(walker, rel, name)
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
                got = careful(self.hasher, f, self.failed)
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

    def lower_of(self, node: Node) -> Tree | None:
        """The lower directory ``node`` shows (None if none or hidden by opacity)."""
        return node.lower if node.lower is not _UNSET else self._look_up(node, "lower")

    def head_of(self, node: Node) -> Tree | None:
        """The head's directory at ``node``'s path (None if none)."""
        return node.head if node.head is not _UNSET else self._look_up(node, "head")

    def _look_up(self, node: Node, side: str) -> Tree | None:
        """Set ``side`` ("lower" or "head") of ``node`` and of the nodes above it that
        have none yet, top down (a loop up the parents: no recursion)."""
        lower = side == "lower"
        chain = []
        n: Node | None = node
        while n is not None and getattr(n, side) is _UNSET:
            chain.append(n)
            n = n.parent
        for n in reversed(chain):
            tree: Tree | None
            if lower and n.d.opaque:
                tree = None
            elif n.parent is None:
                tree = self._tree(self.base if lower else self.head)
            else:
                above: Tree | None = getattr(n.parent, side)
                tree = self._tree(above.get(n.name) if above is not None else None)
            setattr(n, side, tree)
        got: Tree | None = getattr(node, side)
        return got

    def _tree(self, e: Entry | None) -> Tree | None:
        return self.trees(e.subtree) if e is not None and e.kind == Kind.DIR else None

    def head_entry(self, node: Node, name: bytes, kind: Kind) -> Entry | None:
        """The head's entry ``name`` in ``node``, if it is of ``kind``."""
        tree = self.head_of(node)
        e = tree.get(name) if tree is not None else None
        return e if e is not None and e.kind == kind else None


def read_target(walker: Walker, rel: bytes, name: bytes) -> bytes | None:
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
                got = careful(hasher, Found(prefix + name, st), failed, sink)
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


def careful(
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
