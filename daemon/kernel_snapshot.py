"""``dvfs snapshot`` and ``dvfs status MNT`` of a working tree served by the kernel's overlayfs.

The steps of ``daemon.snapshot`` but for these: nothing holds writers (the upper
layer is read as they go on, each file checked not to have changed while hashed;
only what changed since the last snapshot is hashed and stored, ``daemon.upper_build``),
and the working tree is not rebased when the version is made:
the overlay's lower layer cannot change under a mount, so ``head`` moves to the new
version at once and the upper layer is rebased onto it at the next mount. The
``S`` record of the daemon's overlay is ``pending`` here (``daemon.upper.Layers``):
a crash leaves the branch at the old version (the snapshot is forgotten at the next
mount) or at the new one (the next mount makes it the head).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import trio

from daemon import upper, upper_build
from daemon.fs.versions import VersionsFs
from daemon.snapshot import Built, FileCounts, Recorded, Snapshots
from daemon.source import Source
from daemon.upper import Layers
from vfs import DvfsError, Entry, Found, Hasher, UsageError, Workers


class UpperSnapshots(Snapshots):
    """Makes versions of the upper layer over the base, one at a time."""

    def __init__(
        self,
        fs: VersionsFs,
        source: Source,
        layers: Layers,
        on_branch: Callable[[str], None] = lambda branch: None,
    ) -> None:
        super().__init__(fs, source, on_branch)
        self.layers = layers
        self._one = trio.Lock()
        self._built: upper_build.Built | None = None
        # Upper files found to hold the head's bytes: path -> (stamp then, digest).
        self._proved: dict[bytes, tuple[upper.Stamp, bytes]] = {}

    @contextlib.asynccontextmanager
    async def _held(self) -> AsyncIterator[None]:
        async with self._one:
            yield

    @property
    def base(self) -> bytes | None:
        return self.layers.head

    @property
    def work(self) -> Path:
        return self.layers.work

    def _roots(self) -> tuple[Entry | None, Entry | None]:
        """Root entries of the lower layer's version and of the head."""
        layers, root_of = self.layers, self.source.root_entry
        base = root_of(layers.base)
        return base, (base if layers.head == layers.base else root_of(layers.head))

    def _build(self) -> Built:
        repo, hist = self.source.repo, self.source.history
        base, head = self._roots()
        head_files = hist.version(self.layers.head).files if self.layers.head else 0
        since = upper_build.fs_clock(self.layers.work)
        with Workers() as w:
            built = upper_build.build(
                self.layers.upper, hist.tree, base, head, self.layers.recorded,
                Hasher(self.layers.upper, repo.chunker, repo.store, w), repo.store,
                FileCounts(hist.tree, self.counts), head_files, since,
            )  # fmt: skip
        if built.reserved:
            raise UsageError(upper.reserved_message(built.reserved))
        self._built = built
        return Built(built.root, built.files, built.hashed, built.skipped)

    def _begin(self, oid: bytes) -> None:
        assert self._built is not None
        self.layers.begin(oid, self._built.recorded)

    def _settle(self, rec: Recorded) -> None:
        assert self._built is not None
        self.layers.finish(rec.oid, self.layers.gen + 1, self._built.recorded)
        self._built = None

    def _take_no_changes(self) -> None:
        """Writes reach the upper layer through the kernel's overlay, not through this
        daemon: nothing here can hold them."""

    def _move_to(self, work: Path) -> None:
        self.layers.move_to(work)

    def _changed_bytes(self) -> int:
        total = 0
        for dirpath, _, files in os.walk(self.layers.upper):
            for name in files:
                with contextlib.suppress(OSError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total

    async def status(self) -> dict[str, Any]:
        """What changed since the head, read from the upper layer (in a thread)."""
        base, head = await trio.to_thread.run_sync(self._roots)
        got = await trio.to_thread.run_sync(
            lambda: upper.status(
                self.layers.upper,
                self.source.history.tree,
                base,
                head,
                self.layers.recorded,
                self._same,
            )
        )
        return await self._base_fields(dict(got))

    def _same(self, maybe: list[upper.Candidate]) -> set[bytes]:
        """The upper files of ``maybe`` that hold their entry's bytes (blocking).

        Each is hashed as the on-disk working tree's status hashes a file whose stat
        changed, storing nothing, unless proved so at its present stamp before. A proof
        is kept only for a stamp older than the filesystem's clock when hashing began
        (``upper_build.fs_clock``): a change within the same tick would not move it.
        """
        proved, out = self._proved, set()
        todo: dict[bytes, tuple[upper.Stamp, bytes]] = {}
        for p, st, e in maybe:
            got = proved.get(p)
            if got is not None and got == (upper.stamp(st), e.digest):
                out.add(p)
            else:
                todo[p] = (upper.stamp(st), e.digest)
        if not todo:
            return out
        since = upper_build.fs_clock(self.layers.work)
        found = [Found(p, st) for p, st, _ in maybe if p in todo]
        failed: dict[bytes, DvfsError] = {}  # (kept changing: modified as it is)
        with Workers() as w:
            hasher = Hasher(self.layers.upper, self.source.repo.chunker, None, w)
            for p, staged in hasher.stage_many(found, failed):
                was, digest = todo[p]
                now = (staged.ino, staged.size, staged.mtime_ns, staged.ctime_ns)
                if now != was or staged.digest != digest:
                    continue
                out.add(p)
                if max(staged.mtime_ns, staged.ctime_ns) < since:
                    proved[p] = (now, digest)
        return out

    def stats(self) -> dict[str, Any]:
        return {"recorded": len(self.layers.recorded), "kind": "kernel"}
