"""The working tree after a snapshot or a branch move: rebased on a new base version."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from daemon.overlay.copyup import CopyUp
from daemon.overlay.journal import (
    Journal,
)
from daemon.overlay.node import WNode, attrs_of, join
from daemon.overlay.state import DIR_FLAGS
from vfs import Entry, Kind, Tree, fsync_dir


class Rebase(CopyUp):
    """Snapshots mark, rebase on and follow new base versions."""

    def begin_snapshot(self, version: bytes) -> None:
        """Record that ``version`` is being made from this working tree (durably)."""
        self.journal.append(["S", version])
        self.journal.sync()

    def move_to(self, work: Path) -> None:
        """The working tree now belongs to another branch: rename its work directory.

        So that the next mount of that branch, not of the old one, finds the changes
        made from now on. ``work`` must not exist.
        """
        st, own = os.lstat(self.work), os.fstat(self.work_fd)
        if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):  # (a link swapped in)
            raise OSError(errno.ESTALE, "the work directory was replaced", str(self.work))
        os.rename(self.work, work)
        fsync_dir(work.parent)
        self.work, self.data = work, work / "data"
        self.journal.path = work / self.journal.path.name

    def rebase(
        self,
        version: bytes,
        new_root: Entry,
        entries: dict[int, Entry],
        trees: dict[int, Tree],
        midway: Callable[[], None] = lambda: None,
    ) -> None:
        """The working tree became ``version``: make it the clean base.

        ``entries`` gives each node that was rebuilt its entry in the new version, and
        ``trees`` each rebuilt directory its new tree.
        Upper files still open keep their data (they are written later, maybe); the
        others drop it. The new state is written before any data file is removed;
        ``midway`` is called right after that (a test hook).
        """
        keep: dict[int, WNode] = {}
        for n in list(self.nodes.values()):
            e = entries.get(n.nid)
            if e is not None:
                n.entry = e
                if e.kind == Kind.FILE:
                    n.mtime_ns, n.size = e.mtime_ns, e.size
            if n.kind == Kind.DIR:
                n.dirty = False
            if n.upper and n.opens > 0:
                keep[n.nid] = n
            n.changed = False
            n.recorded = n is self.root
        for nid, tree in trees.items():
            self.nodes[nid].base = tree
        self.root.entry = new_root
        self.root.dirty = False
        old_journal = self.journal
        self.base = version
        self.gen += 1
        self._write_state()
        midway()
        self.journal = Journal(self.work_fd, self._journal_path())
        old_journal.remove()
        for n in list(self.nodes.values()):
            if n.upper and n.nid not in keep:
                if n.fd >= 0:
                    with contextlib.suppress(OSError):
                        os.close(n.fd)
                    n.fd = -1
                n.upper = False
        self._clear_data(keep)
        for n in keep.values():  # still open: their data stays a change over the new base
            if n.parent is not None:
                self.record_node(n)
        self._reset_origins(self.root)
        self._record_beyond_base()

    def _record_beyond_base(self) -> None:
        """After a rebase, record again (in one append) what no version shows: owners,
        modes beyond the permission bits, hard links, FIFOs, sockets and devices.

        Not times: after a remount, atime and ctime show the mtime, and a directory the
        mtime its version gives it, as after a checkout (recording every directory a
        snapshot touched would keep its children in memory for good: see ``prune``).
        """
        recs: list[list[Any]] = []
        touched: list[WNode] = []
        for n in list(self.nodes.values()):
            if n.parent is None and n is not self.root:
                continue
            beyond = (n.uid, n.gid) != (self.uid, self.gid) or n.special or n.links
            if not beyond and (n.entry is None or n.mode == attrs_of(n.entry)[0]):
                continue
            if n is self.root:
                recs.append(self._def_record(n))
                continue
            for d, _ in n.names():
                for rec in self._path_records(d):
                    recs.append(rec)
                    if rec[0] == "N":
                        self.nodes[rec[1]].recorded = True
                touched.append(d)
            recs.append(self._def_record(n))
            n.recorded = True
            recs.extend(["L", d.nid, name, n.nid] for d, name in n.names())
        if recs:
            self.journal.append(*recs)
        for d in touched:
            self._mark_dirty(d)

    def _clear_data(self, keep: Mapping[int, WNode]) -> None:
        """Empty ``data/`` but for the files of ``keep``, without waiting for the disk.

        Removing 20,000 files takes half a minute on some filesystems, so ``data/``
        is renamed to ``trash.<gen>``, the files of ``keep`` are moved back, and a
        thread removes the rest (after a crash, the next daemon does).
        """
        trash, work = f"trash.{self.gen}", self.work_fd
        try:
            os.rename("data", trash, src_dir_fd=work, dst_dir_fd=work)
        except OSError:
            for name in os.listdir(self.data_fd):
                if not (name.isdigit() and int(name) in keep):
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=self.data_fd)
            return
        old = self.data_fd  # (now the trash)
        os.mkdir("data", 0o700, dir_fd=work)
        self.data_fd = os.open("data", DIR_FLAGS, dir_fd=work)
        try:
            for nid in keep:
                os.rename(str(nid), str(nid), src_dir_fd=old, dst_dir_fd=self.data_fd)
        finally:
            os.close(old)
        os.fsync(work)
        self._remove_later(trash)

    def follow(self, head: bytes | None, root_entry: Entry | None) -> list[bytes] | None:
        """Show ``head`` if the working tree has no changes; the names MNT held before.

        None if the working tree stays as it is.

        A working tree with changes stays over its base (a snapshot then says the
        branch moved); an unchanged one follows the branch, as a read-only mount does.
        """
        if self.root.dirty or head == self.base:
            return None
        old = dict(self.root.kids or {})
        old_journal = self.journal
        self.base = head
        self.gen += 1
        self._write_state()
        self.journal = Journal(self.work_fd, self._journal_path())
        old_journal.remove()
        root = self.root
        root.entry, root.base, root.pending = root_entry, None, {}
        root.kids = None if root_entry is not None else {}
        if root_entry is not None:
            root.mtime_ns = root_entry.mtime_ns
        for kid in old.values():
            self._detach(kid)
        return list(old)

    def _reset_origins(self, top: WNode) -> None:
        """After a rebase every loaded node's origin is its path."""
        todo = [top]
        while todo:
            d = todo.pop()
            for name, kid in (d.kids or {}).items():
                if kid.parent is d and kid.name == name:  # a hard link's first name
                    kid.origin = join(d.origin or b"", name)
                if kid.is_dir:
                    todo.append(kid)
