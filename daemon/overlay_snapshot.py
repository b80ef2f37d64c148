"""Snapshots of the daemon's own overlay (``daemon.overlay``).

The steps are those of ``daemon.snapshot``; this module reads the overlay's tree:
``Builder`` stores the trees of the changed directories, ``OverlaySnapshots`` holds
writers at the write gate while the version is made and rebases the overlay at once.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio

from daemon.fs.worktree import WorkingFs
from daemon.overlay import Overlay, WNode
from daemon.snapshot import Built, FileCounts, Recorded, Snapshots, reached
from daemon.source import Source
from vfs import (
    PERM_BITS,
    DvfsError,
    Entry,
    Found,
    Hasher,
    Kind,
    ObjKind,
    Staged,
    Tree,
    UsageError,
    Workers,
    dir_entry,
    encode_tree,
    quote_name,
)

HASH_ROUNDS = 3  # a status hashes the files written since their last hashing this often at most


class Builder:
    """Stores the trees of the changed directories (blocking; in a worker thread).

    Trees are walked with explicit stacks, never by recursion: a working tree may be
    thousands of levels deep.
    """

    def __init__(self, source: Source, staged: dict[int, Staged], counts: dict[bytes, int]) -> None:
        self.store = source.history.store
        self.history = source.history
        self.staged = staged
        self.entries: dict[int, Entry] = {}
        self.trees: dict[int, Tree] = {}
        self.count = FileCounts(self.history.tree, counts)
        self.skipped: list[bytes] = []  # special files, by path

    @staticmethod
    def _rebuilt(n: WNode) -> bool:
        """True for a directory whose tree is made anew (changed, or made in the mount)."""
        return n.kind == Kind.DIR and (n.dirty or n.entry is None)

    def entry(self, n: WNode, name: bytes) -> tuple[Entry, int]:
        """(entry, files below it) of a node as it is now (a rebuilt directory's is built)."""
        if n.kind == Kind.DIR:
            e = self.entries[n.nid] if self._rebuilt(n) else n.entry
            assert e is not None
            return (e if e.name == name else _renamed(e, name)), self.count(e.subtree)
        if n.kind == Kind.SYMLINK:
            e = Entry(name, Kind.SYMLINK, 0o777, len(n.target), n.mtime_ns, target=n.target)
            return e, 1
        if n.upper:
            s = self.staged[n.nid]
            mode = n.mode & PERM_BITS
            e = Entry(name, Kind.FILE, mode, s.size, s.mtime_ns, digest=s.digest, chunks=s.chunks)
        else:
            assert n.entry is not None
            b = n.entry
            mode = n.mode & PERM_BITS
            e = Entry(name, Kind.FILE, mode, b.size, n.mtime_ns, digest=b.digest, chunks=b.chunks)
        return e, 1

    def directory(self, top: WNode, name: bytes) -> tuple[Entry, int]:
        """Store the trees of ``top`` and of the rebuilt directories below it.

        Children first (as ``dvfs commit`` stores them): every directory's entry is
        known when its parent's tree is made.
        """
        order = [top]
        for d in order:  # grows as it goes: every rebuilt directory, parents first
            assert d.kids is not None
            order.extend(k for k in d.kids.values() if self._rebuilt(k))
        for d in reversed(order):
            self._store(d, name if d is top else d.name)
        e = self.entries[top.nid]
        return e, self.count.known[e.subtree]

    def _store(self, d: WNode, name: bytes) -> None:
        """Store one changed directory's tree; its rebuilt subdirectories are stored."""
        assert d.kids is not None
        entries: list[Entry] = []
        files = 0
        for kid_name in sorted(d.kids):
            kid = d.kids[kid_name]
            if kid.special:  # a FIFO, socket or device: never in a version
                self.skipped.append(d.path + b"/" + kid_name if d.path else kid_name)
                continue
            e, count = self.entry(kid, kid_name)
            self.entries[kid.nid] = e
            entries.append(e)
            files += count
        oid, _ = self.store.put(ObjKind.TREE, encode_tree(entries))
        self.trees[d.nid] = Tree(tuple(entries))
        self.entries[d.nid] = dir_entry(name, oid, entries, d.mtime_ns)
        self.count.known[oid] = files


def _renamed(e: Entry, name: bytes) -> Entry:
    return Entry(
        name, e.kind, e.mode, e.size, e.mtime_ns,
        digest=e.digest, chunks=e.chunks, subtree=e.subtree, target=e.target,
    )  # fmt: skip


class OverlaySnapshots(Snapshots):
    """Snapshots of the daemon's own overlay (``daemon.overlay``): writers wait at the
    write gate while the version is made, and the overlay is rebased at once."""

    def __init__(
        self,
        fs: WorkingFs,
        source: Source,
        overlay: Overlay,
        on_branch: Callable[[str], None] = lambda branch: None,
    ) -> None:
        super().__init__(fs, source, on_branch)
        self.wfs = fs
        self.overlay = overlay
        self._builder: Builder | None = None

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        await self.wfs.gate.close()
        try:
            while todo := self.overlay.unloaded_dirty():
                for d in todo:
                    await self.wfs.kids(d)
            yield
        finally:
            self.wfs.gate.reopen()

    @property
    def base(self) -> bytes | None:
        base: bytes | None = self.overlay.base
        return base

    @property
    def work(self) -> Path:
        return self.overlay.work

    def _build(self) -> Built:
        ov = self.overlay
        if not ov.root.dirty:
            raise self._nothing()
        reserved = ov.reserved_paths()
        if reserved:
            shown = quote_name(reserved[0]) + (
                f" and {len(reserved) - 1} more" if len(reserved) > 1 else ""
            )
            raise UsageError(
                f"the working tree holds {shown}: no version may hold a name that "
                "git or dvfs reads as its own (.git, .dvfs), .versions at the top, nor "
                "one longer than 255 bytes; rename or remove it in the mount, then "
                "snapshot again"
            )
        staged = self._hash(ov.changed_files())
        self._builder = builder = Builder(self.source, staged, self.counts)
        root, files = builder.directory(ov.root, b"")
        return Built(root, files, len(staged), sorted(builder.skipped))

    def _begin(self, oid: bytes) -> None:
        self.overlay.begin_snapshot(oid)

    def _settle(self, rec: Recorded) -> None:
        builder = self._builder
        assert builder is not None
        self.overlay.rebase(
            rec.oid, rec.root, builder.entries, builder.trees, midway=lambda: reached("rebase")
        )
        self._builder = None

    def _take_no_changes(self) -> None:
        self.wfs.writable = False  # (changes get EROFS until the next mount)

    def _move_to(self, work: Path) -> None:
        self.overlay.move_to(work)

    def _changed_bytes(self) -> int:
        return sum(n.size for n in self.overlay.changed_files())

    async def status(self) -> dict[str, Any]:
        """The working tree's pending changes, from the overlay's records."""
        while todo := self.overlay.unloaded_dirty():
            for d in todo:
                await self.wfs.kids(d)
        trees: dict[bytes, Tree] = {}  # of directories of the base replaced by new ones
        hashes = 0
        while True:
            missing: set[bytes] = set()
            unhashed: dict[int, WNode] = {}
            out: dict[str, Any] = dict(self.overlay.status(trees, missing, unhashed))
            if unhashed and hashes < HASH_ROUNDS:  # (a file written on meanwhile stays modified)
                hashes += 1
                await self._hash_content(list(unhashed.values()))
            elif not missing:
                break
            for oid in missing:
                trees[oid] = await self.fs.layout.records.tree(oid)
        out["kept"] = self.overlay.root.dirty  # (then it does not follow its branch)
        return await self._base_fields(out)

    async def _hash_content(self, files: list[WNode]) -> None:
        """Hash upper files (in a thread, storing nothing), as the on-disk working
        tree's status hashes a file whose stat changed; each digest is kept with the
        count of writes it was read after, so a file written meanwhile is not taken
        for clean."""
        wrote = {n.nid: n.wrote for n in files}
        got = await trio.to_thread.run_sync(self._digests, files)
        for n in files:
            if (digest := got.get(n.nid)) is not None:
                n.hashed = (wrote[n.nid], digest)

    def _digests(self, files: list[WNode]) -> dict[int, bytes]:
        """The digests of upper files that could be read (blocking)."""
        data, repo = self.overlay.data_view, self.source.repo
        found: list[Found] = []
        for n in files:
            with contextlib.suppress(OSError):  # (unlinked meanwhile: modified as it was)
                found.append(Found(str(n.nid).encode(), os.lstat(data / str(n.nid))))
        failed: dict[bytes, DvfsError] = {}  # (kept changing: modified as it is)
        with Workers() as w:
            hashed = Hasher(data, repo.chunker, None, w).stage_many(found, failed)
            return {int(rel): staged.digest for rel, staged in hashed}

    def stats(self) -> dict[str, Any]:
        return {"nodes": len(self.overlay.nodes), "journal_bytes": self.overlay.journal.size}

    def _hash(self, files: list[WNode]) -> dict[int, Staged]:
        """Hash the upper files in parallel, storing their chunks."""
        repo = self.source.repo
        hasher_root = self.overlay.data_view
        by_rel = {str(n.nid).encode(): n for n in files}
        out: dict[int, Staged] = {}
        with Workers() as w:
            hasher = Hasher(hasher_root, repo.chunker, repo.store, w)
            found = [Found(rel, os.lstat(hasher_root / rel.decode())) for rel in by_rel]
            for rel, staged in hasher.stage_many(found):
                out[by_rel[rel].nid] = staged
        return out
