"""The working tree's state: its work directory opened, its journal replayed, its nodes.

Opening a work directory reads ``state`` (format, base version id, journal
generation, next node id), compacts a long journal (``daemon.overlay.compaction``),
replays it over the base version (``daemon.overlay.journal``) and removes what a
crash left behind (data files no node uses, old journals, trash).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import msgpack

from daemon.fs import inodes
from daemon.fs.attrs import MODE_BITS, SPECIAL
from daemon.overlay.compaction import COMPACT_ABOVE, compacted
from daemon.overlay.journal import (
    FORMAT,
    N_FIELDS,
    READ_FORMATS,
    Journal,
    decode_entry,
    fold,
    pack,
)
from daemon.overlay.node import WNode, attrs_of, join, versioned
from daemon.overlay.spares import Spares
from daemon.overlay.workdir import OverlayError, lock_work
from vfs import (
    VERSIONS_DIR,
    Entry,
    FormatError,
    Kind,
    Tree,
    journal_damage,
    missing_state_message,
    newer_format,
    newer_format_message,
    orphaned_changes,
    private_dir,
    quote_name,
    write_atomic_at,
)

log = logging.getLogger("daemon.overlay")

TRASH_WAIT = 2.0  # seconds an unmount waits for trash removal (see OverlayState.close)


# The work directory and its data/ are held open for the daemon's life and every
# operation there goes through them: a link swapped in for either later leads nowhere.
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
MAX_STATE = 1 << 16  # bytes of a state record read at most (it holds four numbers)


def _unreadable_state(work: Path, why: str | None) -> str:
    """What to tell a user whose working tree ``state`` cannot be read (``why``)."""
    return (
        f"the working tree state {quote_name(str(work / 'state'))} cannot be read ({why}): "
        f"move {quote_name(str(work))} aside to start from the branch head (its data/ holds "
        "the changed files)"
    )


def _remove_tree(name: str, dir_fd: int) -> None:
    """Remove the tree ``name`` of the directory open at ``dir_fd``, then close that."""
    try:
        shutil.rmtree(name, ignore_errors=True, dir_fd=dir_fd)
    finally:
        os.close(dir_fd)


class OverlayState:
    """The nodes of the working tree and its work directory, as opened or replayed."""

    def __init__(
        self,
        work: Path,
        head: bytes | None,
        root_of: Callable[[bytes | None], Entry | None],
        lock_fd: int | None = None,
    ) -> None:
        """Open (or create) the work directory ``work``; the branch is at ``head``.

        ``lock_fd``: its lock, already held (``lock_work``); else it is taken here.

        ``root_of`` gives an entry for a version's root tree (None for no version).
        A new work directory starts clean over ``head``. One left by an earlier mount
        keeps its own base, since its changes were made over that version, unless its
        journal says a snapshot was being made and the branch is at that snapshot:
        then the changes are in ``head`` already and the working tree starts clean.
        """
        self.work = work  # (as messages show it; see work_fd)
        self.data = work / "data"
        private_dir(self.work, tighten=True)  # its journal names files that may be private
        private_dir(self.data, tighten=True)
        self._lock_fd = lock_work(work) if lock_fd is None else lock_fd
        self.work_fd = os.open(work, DIR_FLAGS)
        self.data_fd = os.open("data", DIR_FLAGS, dir_fd=self.work_fd)
        self.uid, self.gid = os.getuid(), os.getgid()  # who owns what versions hold
        self.nodes: dict[int, WNode] = {}
        self.on_change: Callable[[WNode], None] = lambda node: None
        self._spares: Spares | None = None  # started by the first new file
        self._trash: list[threading.Thread] = []  # removing emptied data directories
        self._orphans: list[WNode] = []  # nodes of a removed tree, being released
        self._releasing = False
        state = self._read_state()
        if state is not None:
            self.base, self.gen, self.next = state["base"], state["gen"], state["next"]
            self.journal = Journal(self.work_fd, self._journal_path(), state["format"])
            got = self.journal.read()
            if got.damaged_at is not None:
                self._damaged(f"at byte {got.damaged_at} of {self.journal.size}")
            records = got.records
            done = [r for r in records if r[:1] == ["S"] and len(r) == 2 and r[1] == head]
            clean = not any(r[:1] != ["S"] for r in records)
            if not (done or clean):
                self._replay(self._compact(records), root_of(self.base))
                return
            self.journal.remove()
            self.gen += 1  # the snapshot was recorded: start clean over it
        else:
            held = orphaned_changes(work)
            if held is not None:  # (else its files would be taken for strays)
                raise OverlayError(missing_state_message(work, held))
            self.gen, self.next = 1, inodes.UPPER_FIRST
        self.base = head
        self._write_state()
        self._make_root(root_of(head))
        self.journal = Journal(self.work_fd, self._journal_path())
        self._drop_strays({})

    def _journal_path(self) -> Path:
        return self.work / f"journal.{self.gen}"

    def _read_state(self) -> dict[str, Any] | None:
        path = self.work / "state"
        try:  # (without waiting, through no link: a FIFO there must not hold the mount)
            fd = os.open("state", READ_FLAGS, dir_fd=self.work_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:  # a link (ELOOP), a socket (ENXIO)
            raise OverlayError(_unreadable_state(self.work, exc.strerror)) from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OverlayError(_unreadable_state(self.work, "not a regular file"))
            raw = os.read(fd, MAX_STATE + 1)
        finally:
            os.close(fd)
        try:
            st = msgpack.unpackb(raw, raw=False)
            newer = newer_format(st, FORMAT)
            if newer is not None:  # (not damage: refused, and left as it is)
                raise OverlayError(newer_format_message(path, newer, FORMAT))
            ok = (
                isinstance(st, dict)
                and st.get("format") in READ_FORMATS
                and (st.get("base") is None or isinstance(st.get("base"), bytes))
                and isinstance(st.get("gen"), int)
                and isinstance(st.get("next"), int)
            )
        except (ValueError, msgpack.UnpackException):
            ok = False
        if not ok:
            raise OverlayError(
                f"the working tree state {self.work / 'state'} is damaged: move {self.work} "
                "aside to start from the branch head (its data/ holds the changed files)"
            )
        return st  # type: ignore[no-any-return]

    def _damaged(self, where: str) -> NoReturn:
        """Refuse a working tree whose journal cannot be read back: nothing is
        deleted, since the files its lost records named would be taken for strays."""
        self.journal.close()
        raise OverlayError(journal_damage(self.journal.path, where))

    def _write_state(self) -> None:
        record = {"format": FORMAT, "base": self.base, "gen": self.gen, "next": self.next}
        write_atomic_at(self.work_fd, "state", msgpack.packb(record, use_bin_type=True), mode=0o600)

    def _make_root(self, base_root: Entry | None) -> None:
        mode = 0o755
        mtime = base_root.mtime_ns if base_root is not None else time.time_ns()
        root = WNode(inodes.ROOT, Kind.DIR, mode, mtime, entry=base_root, origin=b"")
        root.uid, root.gid = self.uid, self.gid
        root.recorded = True
        if base_root is None:
            root.kids = {}
        self.root = root
        self.nodes = {inodes.ROOT: root}

    def _compact(self, records: list[list[Any]]) -> list[list[Any]]:
        """Rewrite a long journal as the few records that rebuild the same tree, and
        one of an older format framed (its records as they are, unless long).

        A long-lived mount only appends (a file made and deleted leaves three
        records), and replay reads all of it at every mount. The new journal is
        written whole under the next generation, then ``state`` names it, then the
        old one goes: a crash at any point leaves one of the two complete journals.
        """
        old_format = not self.journal.framed
        long = self.journal.size >= COMPACT_ABOVE and not any(r[:1] == ["S"] for r in records)
        if not (long or old_format):
            return records
        folded = fold(records)
        if folded is None:
            return records  # for replay to refuse
        kept = compacted(*folded) if long else records
        data = b"".join(pack([r]) for r in kept)
        if long and len(data) * 2 > self.journal.size:
            if not old_format:
                return records
            kept, data = records, b"".join(pack([r]) for r in records)
        old = self.journal
        self.next = max([self.next, *(nid + 1 for nid in folded[0])])  # dropped ones too
        self.gen += 1
        write_atomic_at(self.work_fd, self._journal_path().name, data, mode=0o600)
        self._write_state()
        self.journal = Journal(self.work_fd, self._journal_path())
        old.remove()
        log.info("journal rewritten from %d to %d bytes", old.size, len(data))
        return kept

    def _replay(self, records: list[list[Any]], base_root: Entry | None) -> None:
        """Rebuild the changed part of the tree from the journal."""
        if base_root is None and self.base is not None:
            raise OverlayError("the base version of the working tree is not readable")
        self._make_root(base_root)
        folded = fold(records)
        if folded is None:
            self._damaged("(a record of an unknown form)")
        defs, over = folded
        self.next = max([self.next, *(nid + 1 for nid in defs)])
        if inodes.ROOT in defs:  # MNT's own attributes were changed
            top = self._node_of(defs[inodes.ROOT])
            if top is not None:
                r = self.root
                r.mode, r.mtime_ns, r.uid, r.gid = top.mode, top.mtime_ns, top.uid, top.gid
                r.atime_ns, r.ctime_ns = top.atime_ns, top.ctime_ns
        built: dict[int, WNode] = {inodes.ROOT: self.root}
        todo = [inodes.ROOT]
        while todo:
            nid = todo.pop()
            node = built[nid]
            for name, kid_nid in over.get(nid, {}).items():
                if kid_nid is None:
                    node.pending[name] = None
                    continue
                if kid_nid not in defs:
                    continue  # an undefined node: ignore the name
                if kid_nid in built:
                    named = built[kid_nid]
                    if named.is_dir or named is self.root:
                        continue  # a loop: ignore the name
                    named.links = [*(named.links or ()), (node, name)]  # a hard link
                    node.pending[name] = named
                    continue
                kid = self._node_of(defs[kid_nid])
                if kid is None:
                    node.pending[name] = None
                    continue
                kid.parent, kid.name = node, name
                built[kid_nid] = kid
                node.pending[name] = kid
                todo.append(kid_nid)
        for node in built.values():
            self.next = max(self.next, node.nid + 1)
            if node.is_dir and node.kids is not None:  # a new directory: no base
                node.kids.update({n: k for n, k in node.pending.items() if k is not None})
                node.pending.clear()
        self.nodes.update(built)
        for node in built.values():
            if node.parent is not None:
                self._mark_dirty(node.parent)
            if over.get(node.nid):  # a name in it changed, maybe only removed
                self._mark_dirty(node)
        self._drop_strays(built)

    def _node_of(self, rec: list[Any]) -> WNode | None:
        _, nid, kind, mode, mtime, origin, entry, upper, target = rec[:9]
        try:
            base = decode_entry(entry)
        except (FormatError, IndexError):
            self._damaged(f"(node {nid} has a base entry that does not decode)")
        node = WNode(
            nid, Kind(kind), mode & MODE_BITS, mtime, entry=base,
            origin=origin, upper=bool(upper), target=target or b"", recorded=True,
        )  # fmt: skip
        if len(rec) == N_FIELDS:
            extra = rec[9:]
            if not all(isinstance(x, int) for x in extra) or extra[4] not in (0, *SPECIAL):
                self._damaged(f"(node {nid} has attributes of no file)")
            node.uid, node.gid, node.atime_ns, node.ctime_ns, node.special, node.rdev = extra
        else:  # format 1: the daemon's owner, times as the mtime
            node.uid, node.gid = self.uid, self.gid
        if node.kind == Kind.DIR and node.entry is None:
            node.kids = {}
        elif node.kind == Kind.SYMLINK:
            node.size = len(node.target)
        elif node.upper:
            try:
                st = os.stat(str(nid), dir_fd=self.data_fd, follow_symlinks=False)
            except FileNotFoundError:
                log.error("%s is missing: file %d of the working tree is dropped", rec[1], nid)
                return None
            node.size, node.mtime_ns = st.st_size, st.st_mtime_ns
            node.ctime_ns = max(node.ctime_ns, st.st_ctime_ns)
        elif node.entry is not None:
            node.size = node.entry.size
        node.changed = not node.upper and (
            node.entry is None or versioned(node) != attrs_of(node.entry)
        )
        return node

    def _drop_strays(self, live: dict[int, WNode]) -> None:
        """Delete data files no node uses and old journals (left by a crash between two steps)."""
        for name in os.listdir(self.data_fd):
            if not (name.isdigit() and int(name) in live and live[int(name)].upper):
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self.data_fd)
        for name in os.listdir(self.work_fd):
            if name.startswith("journal.") and name != self.journal.path.name:
                with contextlib.suppress(OSError):
                    os.unlink(name, dir_fd=self.work_fd)
            elif name.startswith("trash."):
                self._remove_later(name)

    def close(self) -> None:
        """Close every file (the daemon is stopping).

        Trash still being removed gets ``TRASH_WAIT`` seconds: after a snapshot of
        many files that can take a while, and an unmount should not wait for it; the
        next mount removes what is left.
        """
        self._stop_spares()
        deadline = time.monotonic() + TRASH_WAIT
        for t in self._trash:
            t.join(max(0.0, deadline - time.monotonic()))
        for node in self.nodes.values():
            if node.fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(node.fd)
                node.fd = -1
        self.journal.close()
        for fd in (self.data_fd, self.work_fd, self._lock_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _stop_spares(self) -> None:
        if self._spares is not None:
            self._spares.close()
            self._spares = None

    def _remove_later(self, name: str) -> None:
        """Remove the directory tree ``name`` of the work directory in a thread, so that
        no request waits for it (the thread holds the work directory open itself)."""
        self._trash = [t for t in self._trash if t.is_alive()]
        t = threading.Thread(target=_remove_tree, args=(name, os.dup(self.work_fd)))
        t.name = "dvfs-trash"
        t.daemon = True
        t.start()
        self._trash.append(t)

    def new_nid(self) -> int:
        """A number for a new node (its inode number too)."""
        nid: int = self.next
        if nid >= inodes.HASHED_BASE:
            raise OSError(errno.ENOSPC, "no inode numbers left in this working tree")
        self.next += 1
        return nid

    def load(self, d: WNode, base: Tree | None) -> None:
        """Give directory ``d`` its children: the base tree's, then the replayed changes."""
        if d.kids is not None:
            return
        kids: dict[bytes, WNode] = {}
        if base is not None:
            for e in base.entries:
                if d is self.root and e.name == VERSIONS_DIR:  # MNT shows the version list
                    log.warning("the base version's entry .versions is not shown in MNT")
                    continue
                node = self._from_entry(e, d)
                kids[e.name] = node
        for name, kid in d.pending.items():
            if kid is None:
                kids.pop(name, None)
            else:
                kids[name] = kid
        d.pending.clear()
        d.base = base
        d.kids = kids

    def _from_entry(self, e: Entry, parent: WNode) -> WNode:
        origin = None if parent.origin is None else join(parent.origin, e.name)
        mode, mtime = attrs_of(e)
        node = WNode(self.new_nid(), e.kind, mode, mtime, size=e.size, entry=e, origin=origin)
        node.target = e.target
        node.uid, node.gid = self.uid, self.gid
        node.parent, node.name = parent, e.name
        self.nodes[node.nid] = node
        return node

    @property
    def data_view(self) -> Path:
        """A path to ``data/`` as held open (for code that takes a path: the hasher)."""
        return Path(f"/proc/self/fd/{self.data_fd}")

    def open_data(self, n: WNode) -> int:
        """The read-write descriptor of an upper file's content (opened once)."""
        if n.fd < 0:
            n.fd = os.open(
                str(n.nid), os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW, dir_fd=self.data_fd
            )
        return n.fd

    def _mark_dirty(self, d: WNode | None) -> None:
        while d is not None and not d.dirty:
            d.dirty = True
            d = d.parent
