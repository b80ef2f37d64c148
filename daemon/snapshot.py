"""``dvfs snapshot``: record the working tree of a mount as a new version.

In order:

1. The write gate closes: writers wait, changes in progress finish. A snapshot is
   refused while ``dvfs repro`` in MNT lists a stage writing its outputs
   (``vfs.pipeline.writing``): the version would record them half-written.
2. Directories whose replayed changes are not loaded yet are loaded, so that the
   tree in memory is complete.
3. In a worker thread, under the repository lock: the branch must still be at the
   working tree's base (else the snapshot is refused and nothing changes; with
   ``--branch NEW`` it goes on a new branch instead). Only upper files are hashed
   (in parallel, their chunks stored); only directories with a change are rebuilt,
   every other subtree is reused by id. Then the commit protocol of ``dvfs commit``
   (``vfs.repo.record.record_version``): the version record is stored, the store
   flushed and its new packs fsynced, the journal notes ``S <id>``, and only then
   does the branch move, by compare-and-swap; then the tag, and, when the repository
   lies in a git work tree, the version records its git commit and ``dvfs.lock`` is
   rewritten if the branch is the one checked out there. A URL mount pushes the
   version and moves the remote's branch with a conditional write.
4. The overlay becomes clean over the new version (its state is written before any
   upper file is removed; if that fails, a full disk say, the answer is the version
   with a warning, and the working tree takes no more change until it is mounted
   again: its records still say the snapshot is being made, and the next mount
   starts clean over the version, so a change made meanwhile would be dropped), the
   gate reopens and the catalog is rebuilt, so ``.versions/vN`` is there when the
   command returns (if that fails, a full disk say, the answer is still the version,
   with a warning that ``.versions`` shows it later). After ``--branch NEW`` the
   mount serves NEW, and its work directory is renamed to NEW's, so that changes
   made from then on are found by the next mount of NEW.

A full disk: if storing the version meets ENOSPC, the chunk cache makes room (when
it shares the disk with the store) and step 3 is made once more; nothing of the
failed attempt is named anywhere.

A crash anywhere leaves the branch at the old version (the upper layer still holds
every change) or at the new one (the next mount sees the ``S`` record naming the
branch head and starts clean over it).

Test hook: with ``DVFS_TEST_KILL_AT=<step>`` in its environment the daemon kills
itself (SIGKILL) when a snapshot reaches that step: ``hashed`` (the upper files'
chunks are stored), ``stored`` (the version record is), ``flushed`` (the store
and its packs are durable), ``journaled`` (the ``S`` record is), ``moved`` (the
branch moved or the remote's did), ``rebase`` (the overlay's new state is written,
its upper files not yet removed). The fault tests use it to check the claim above.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from daemon.fs.versions import VersionsFs
from daemon.overlay import work_dir_name
from daemon.source import RemoteSource, Source
from vfs import (
    MAX_DEPTH,
    DvfsError,
    Entry,
    Kind,
    ObjectMissing,
    RefConflict,
    StorageFull,
    Tree,
    UsageError,
    audit_acting,
    check_ref_name,
    record_version,
    refuse_snapshot,
    shell_word,
    tag_free,
)

log = logging.getLogger(__name__)
SHOW_SKIPPED = 10  # special files a snapshot names (it counts them all)


@dataclass
class Request:
    """What ``dvfs snapshot`` asks for."""

    message: str
    tag: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    branch: str | None = None
    cmd: list[str] = field(default_factory=lambda: ["dvfs", "snapshot"])  # (audit entries)


@dataclass
class Built:
    """The trees of a working tree, stored: its root entry, and what a snapshot reports."""

    root: Entry
    files: int
    hashed: int
    skipped: list[bytes]  # FIFOs, sockets and devices: never in a version


@dataclass
class Recorded:
    """A version made from the working tree."""

    oid: bytes
    number: int
    branch: str
    root: Entry
    skipped: list[bytes]
    files: int
    bytes: int
    hashed: int
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)  # about the lineage recorded


Trees = Callable[[bytes], Tree]  # a tree by id (blocking)
KEEP_COUNTS = 1 << 20  # file counts of trees kept between snapshots (see FileCounts)


class _TreeFold:
    """A number per stored tree, worked out from its entries and its subtrees' numbers
    (:meth:`fold`); each tree is read once, without recursion. A tree's number never
    changes (ids are hashes of content), so ``known`` may be kept from one snapshot to
    the next: unchanged subtrees are then not read again. It is emptied past
    ``KEEP_COUNTS`` trees.
    """

    def __init__(self, trees: Trees, known: dict[bytes, int] | None = None) -> None:
        self.trees = trees
        self.known: dict[bytes, int] = {} if known is None else known
        if len(self.known) > KEEP_COUNTS:
            self.known.clear()

    def fold(self, tree: Tree) -> int:
        """The number of ``tree``, whose subtrees' numbers are in ``known``."""
        raise NotImplementedError

    def __call__(self, tree_id: bytes) -> int:
        pending: dict[bytes, Tree] = {}  # read, waiting for their subtrees' numbers
        stack = [tree_id]
        while stack:
            oid = stack[-1]
            if oid in self.known:
                stack.pop()
                continue
            tree = pending.get(oid)
            if tree is None:
                tree = pending[oid] = self.trees(oid)
                todo = [e.subtree for e in tree.entries if e.kind == Kind.DIR and e.subtree]
                todo = [t for t in todo if t not in self.known]
                if todo:
                    stack.extend(todo)
                    continue
            self.known[oid] = self.fold(tree)
            del pending[oid]
            stack.pop()
        return self.known[tree_id]


class FileCounts(_TreeFold):
    """Files below stored trees (:class:`_TreeFold`)."""

    def fold(self, tree: Tree) -> int:
        return sum(self._files(e) for e in tree.entries)

    def _files(self, e: Entry) -> int:
        if e.kind != Kind.DIR:
            return 1
        return self.known[e.subtree] if e.subtree else 0


class Depths(_TreeFold):
    """How deep the paths below stored trees go (:class:`_TreeFold`): for a tree, the
    most directories any path below it has above its last name (-1 for an empty tree).
    """

    def fold(self, tree: Tree) -> int:
        depth = -1 if not tree.entries else 0
        for e in tree.entries:
            if e.kind == Kind.DIR and e.subtree:
                depth = max(depth, 1 + self.known[e.subtree])
        return depth

    def deepest(self, tree_id: bytes, limit: int) -> bytes:
        """The start of the deepest path below ``tree_id`` (after a call), ``limit``
        bytes at most."""
        path = b""
        oid: bytes | None = tree_id
        while oid is not None and len(path) < limit:
            depth = self.known[oid]
            below = (
                e for e in self.trees(oid).entries
                if e.kind == Kind.DIR and e.subtree and 1 + self.known[e.subtree] == depth
            )  # fmt: skip
            e = next(below, None)
            if e is None:
                break
            path += e.name + b"/"
            oid = e.subtree
        return path[:limit]


def reached(step: str) -> None:
    """Test hook: die at once if ``DVFS_TEST_KILL_AT`` names this step (see above)."""
    if os.environ.get("DVFS_TEST_KILL_AT") == step:
        os.kill(os.getpid(), signal.SIGKILL)


class Snapshots(abc.ABC):
    """Makes versions of one mount's working tree, one at a time (the steps above).

    What is shared by both kinds of working tree: the checks, the version record,
    the branch's compare-and-swap and the answer. A subclass reads its own tree:
    ``daemon.overlay_snapshot`` the daemon's overlay, ``daemon.kernel_snapshot`` the
    upper layer of the kernel's.
    """

    def __init__(self, fs: VersionsFs, source: Source, on_branch: Callable[[str], None]) -> None:
        self.fs = fs
        self.source = source
        self.on_branch = on_branch  # told the branch served after --branch NEW
        self.writing: Path | None = None  # where `dvfs repro` in MNT lists what it writes
        self.counts: dict[bytes, int] = {}  # files below trees, kept (see FileCounts)
        self.depths: dict[bytes, int] = {}  # how deep paths below trees go (see Depths)

    async def take(self, req: Request) -> dict[str, Any]:
        """Record the working tree; returns what the CLI prints."""
        if not req.message.strip():
            raise UsageError("the snapshot message is empty: pass -m MESSAGE")
        if req.tag is not None:
            check_ref_name(req.tag, "tag")
        if req.branch is not None:
            check_ref_name(req.branch, "branch")
        started = time.perf_counter()
        async with self._held():
            if self.writing is not None:  # (a stage starting from now on waits: step 1)
                await trio.to_thread.run_sync(refuse_snapshot, self.writing)
            rec = await self._record_with_room(req)
            try:
                self._settle(rec)
            except OSError as exc:  # the version is recorded: the answer must say so
                log.error(
                    "v%d is recorded, but the working tree was not rebased: %s", rec.number, exc
                )
                self._take_no_changes()
                rec.warnings.append(
                    f"v{rec.number} is recorded, but the working tree could not be made clean "
                    f"over it ({exc.strerror or exc}): it takes no more changes; unmount it and "
                    "mount it again"
                )
                return self._answer(req, rec, started)
            if rec.branch != self.source.branch:
                self._move_to(self._work_of(rec.branch))
                self.source.branch = rec.branch
                self.on_branch(rec.branch)
        try:
            catalog = await trio.to_thread.run_sync(self.source.catalog)
        except Exception as exc:  # the version is recorded: the answer must say so
            log.warning("v%d is recorded, but the catalog was not rebuilt: %s", rec.number, exc)
            rec.warnings.append(
                f"v{rec.number} is recorded, but MNT/.versions does not show it yet ({exc}); "
                "it will after the next refresh, or the next mount"
            )
        else:
            await self.fs.set_catalog(catalog)
        return self._answer(req, rec, started)

    def _answer(self, req: Request, rec: Recorded, started: float) -> dict[str, Any]:
        """What the CLI prints of a recorded version."""
        rec.seconds = time.perf_counter() - started
        return {
            "version": f"v{rec.number}",
            "number": rec.number,
            "id": rec.oid.hex(),
            "branch": rec.branch,
            "files": rec.files,
            "bytes": rec.bytes,
            "hashed": rec.hashed,
            "warnings": rec.warnings,
            "tag": req.tag,
            "seconds": round(rec.seconds, 3),
            "skipped": len(rec.skipped),
            "skipped_paths": [os.fsdecode(p) for p in rec.skipped[:SHOW_SKIPPED]],
        }

    # what each kind of working tree provides ------------------------------------------

    @abc.abstractmethod
    def _held(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Held while the version is made (writers wait, or not) and settled."""

    @property
    @abc.abstractmethod
    def base(self) -> bytes | None:
        """The version the working tree was last recorded as (the branch must be there)."""

    @abc.abstractmethod
    def _build(self) -> Built:
        """Store the working tree's trees (blocking, under the repository lock).

        UsageError if there is nothing to record or it holds a name no version may.
        """

    @abc.abstractmethod
    def _begin(self, oid: bytes) -> None:
        """Note durably that version ``oid`` is being made of this working tree."""

    @abc.abstractmethod
    def _settle(self, rec: Recorded) -> None:
        """The branch is at ``rec.oid``: the working tree is clean over it."""

    @abc.abstractmethod
    def _take_no_changes(self) -> None:
        """The working tree could not be settled over the version recorded from it: its
        records on disk still say the snapshot is being made, and the next mount starts
        clean over the version, so it must take no change until then."""

    @abc.abstractmethod
    def _move_to(self, work: Path) -> None:
        """Rename the work directory (the branch served changed)."""

    @property
    @abc.abstractmethod
    def work(self) -> Path:
        """The work directory."""

    @abc.abstractmethod
    def _changed_bytes(self) -> int:
        """About how many bytes a snapshot will hash (the room it needs)."""

    @abc.abstractmethod
    async def status(self) -> dict[str, Any]:
        """The working tree's pending changes (``dvfs status MNT``)."""

    @abc.abstractmethod
    def stats(self) -> dict[str, Any]:
        """Figures about the working tree (for diagnosis and tests)."""

    # shared ---------------------------------------------------------------------------

    async def _record_with_room(self, req: Request) -> Recorded:
        """Record the version (step 3); once more if the chunk cache made room for it."""
        for attempt in (1, 2):
            try:
                return await trio.to_thread.run_sync(self._record_as, req)
            except BaseException as exc:  # nothing it wrote is named yet: drop it
                self.source.repo.store.discard()
                if attempt == 2 or not _disk_full(exc) or not await self._make_room():
                    raise
                log.info("the disk was full: the snapshot is stored again, in the room made")
        raise AssertionError("unreachable")

    async def _make_room(self) -> bool:
        """Evict cached chunks from the store's disk, for a snapshot; True if any went."""
        cache = self.fs.fetcher.cache
        if cache is None:
            return False
        need = self._changed_bytes()
        freed = await trio.to_thread.run_sync(cache.shed, need, self.source.repo.dir)
        return freed > 0

    async def _base_fields(self, out: dict[str, Any]) -> dict[str, Any]:
        """``branch``, ``base`` and ``base_version`` of a status answer, and ``head``
        and ``head_version`` where the branch has moved past the base since the
        working tree began (a commit in the repository, a push seen by a refresh), or
        ``branch_deleted`` where it was deleted since: then a snapshot is refused
        unless it goes to a new branch, and MNT still shows the base, which the user
        is told rather than left to find out."""
        base = self.base
        out["branch"] = self.source.branch
        out["base"] = None if base is None else base.hex()
        records = self.fs.layout.records
        if base is not None:
            out["base_version"] = (await records.version(base)).number
        head = await trio.to_thread.run_sync(self._head_known)
        if base is not None and (head is None or self.fs.layout.branch_deleted):
            out["branch_deleted"] = True  # a snapshot is refused as when it moved
        elif head is not None and head != base:
            out["head"] = head.hex()
            with contextlib.suppress(DvfsError, OSError):  # (not fetched yet: no number)
                out["head_version"] = (await records.version(head)).number
        return out

    def _head_known(self) -> bytes | None:
        """Where the branch is, as known without the network: the repository's ref,
        or for a URL mount the remote's as the last refresh saw it."""
        if isinstance(self.source, RemoteSource):
            return self.fs.layout.catalog.head
        return self.source.repo.refs.get(f"refs/heads/{self.source.branch}")

    def _head(self, branch: str) -> bytes | None:
        if isinstance(self.source, RemoteSource):
            return self.source.remote_head(branch)
        return self.source.repo.refs.get(f"refs/heads/{branch}")

    def _record_as(self, req: Request) -> Recorded:
        """``_record`` with the refs it moves audited as the client's command."""
        with audit_acting(req.cmd):
            return self._record(req)

    def _record(self, req: Request) -> Recorded:
        src = self.source
        repo = src.repo
        with repo.locked():
            branch = req.branch or src.branch
            head = self._head(branch)
            hist = src.history
            base = self.base
            if req.branch is not None:
                if head is not None:
                    raise UsageError(f"branch {branch} already exists: choose another name")
                if self._work_of(branch).exists():
                    raise UsageError(
                        f"{self._work_of(branch)} holds a working tree of an earlier branch "
                        f"{branch}: move it aside or choose another name"
                    )
            elif head != base:
                moved = (
                    f"{branch} was deleted"
                    if head is None
                    else f"{branch} moved to {self._label(head)}"
                )
                again = (
                    " ".join(shell_word(a) for a in [*req.cmd, "--branch", "NEW"])
                    if req.cmd[:2] == ["dvfs", "snapshot"] and len(req.cmd) > 2
                    else "dvfs snapshot MNT -m MSG --branch NEW"
                )
                raise RefConflict(
                    f"{moved} since this working tree was started: the working tree is kept "
                    f"as it is; run `{again}` to save it on a new branch"
                )
            tag_free(repo, req.tag)
            built = self._build()
            reached("hashed")
            root = built.root
            self._check_depth(root)
            parent = hist.version(base) if base is not None else None
            if parent is not None and parent.tree == root.subtree:  # changes that were undone
                raise self._nothing()
            said: list[str] = []  # (the lineage of the outputs: vfs.pipeline.record)
            local = not isinstance(src, RemoteSource)  # (a URL mount publishes it below)
            made = record_version(
                repo, root.subtree, req.message, req.params, branch=branch,
                parents=() if base is None else (base,), expect=head, files=built.files,
                size=root.size, tag=req.tag, git=local, move=local, noted=self._noted,
                step=reached, warn=said.append,
            )  # fmt: skip
        if isinstance(src, RemoteSource):
            src.publish(branch, made.oid, head, req.tag)
            reached("moved")
        return Recorded(
            made.oid, made.version.number, branch, root, built.skipped, built.files, root.size,
            built.hashed, warnings=said,
        )  # fmt: skip

    def _check_depth(self, root: Entry) -> None:
        """UsageError if a path of the working tree is nested deeper than a checkout
        restores (``MAX_DEPTH`` directories above its last name): nothing is recorded."""
        if root.subtree is None:
            return
        depths = Depths(self.source.history.tree, self.depths)
        if depths(root.subtree) > MAX_DEPTH:
            shown = os.fsdecode(depths.deepest(root.subtree, 200))
            raise UsageError(
                f"the working tree holds {shown}..., nested more than {MAX_DEPTH} "
                "directories deep, which no checkout could restore: move it higher in the "
                "mount, then snapshot again"
            )

    def _noted(self, oid: bytes) -> None:
        """Step 3 of the commit protocol: the working tree notes the version durably."""
        self._begin(oid)
        reached("journaled")

    def _nothing(self) -> UsageError:
        """ "Nothing to snapshot" (the working tree equals its base)."""
        base = self.base
        label = self.source.history.label(base) if base is not None else "an empty branch"
        return UsageError(f"nothing to snapshot: the working tree equals {label}")

    def _work_of(self, branch: str) -> Path:
        """Where ``branch``'s working tree lives (next to this one's)."""
        return self.work.parent / work_dir_name(branch)

    def _label(self, head: bytes | None) -> str:
        """``vN`` of where the branch is now; its id if it is not here yet (a remote's)."""
        if head is None:
            return "nothing"
        try:
            return self.source.history.label(head)
        except ObjectMissing:
            return f"version {head.hex()[:10]}"


def _disk_full(exc: BaseException) -> bool:
    """True for the errors a full disk gives."""
    if isinstance(exc, StorageFull):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)
