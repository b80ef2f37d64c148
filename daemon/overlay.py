"""The writable working tree of a mount: a copy-on-write overlay over one version.

MNT shows a *base* version (the branch head when the working tree was clean) plus
the changes made through the mount. The changes live in a *work directory* on local
disk, one per source and branch, so that they survive a daemon crash or a reboot and
are picked up by the next mount. It is the daemon user's alone (0700, its files 0600;
``vfs.mounts.private_dir``)::

    lock            flock held by the daemon serving this working tree
    state           msgpack: format, base version id, journal generation, next node id
    journal.<gen>   msgpack records appended as the namespace changes (below)
    data/<nid>      the content of a file copied up or created through the mount
    trash.<gen>     the data/ a snapshot emptied, being removed by a thread

In memory the working tree is a tree of :class:`WNode`. A directory loads its
children from its base tree the first time it is looked into; a file keeps its base
entry (chunks, read lazily like a version's) until its first write copies it up into
``data/<nid>``. A node's number (``nid``) is its inode number, handed out by a
counter from ``inodes.UPPER_FIRST`` up and kept in ``state``, so a node recorded in
the journal keeps its number across remounts.

Journal records (msgpack arrays; each is an assignment, so replaying one already
applied changes nothing). Format 2 (``state`` says which; format 1 journals, whose
``N`` records end at ``target``, are replayed with the daemon's owner and times equal
to the mtime)::

    ["N", nid, kind, mode, mtime_ns, origin|nil, entry|nil, upper, target|nil,
     uid, gid, atime_ns, ctime_ns, special, rdev]
        what node ``nid`` is: ``entry`` is its base entry (a directory's base tree,
        a file's chunks), ``upper`` says its content is ``data/<nid>``, ``origin``
        its path in the base version (nil for a node made through the mount);
        ``mode`` holds the setuid, setgid and sticky bits too; ``special`` is the
        file type of a FIFO, socket or device (0 for anything else) and ``rdev`` a
        device's number (``daemon.attrs``)
    ["L", dir nid, name, nid]    the name now means node ``nid`` in that directory
                                 (a file named twice is a hard link)
    ["U", dir nid, name]         the name is gone from that directory
    ["S", version id]            a snapshot of this working tree is being recorded

A change touches only the nodes on the path to it: before a name changes in a
directory, that directory and its ancestors are recorded (``N`` and ``L``) once.
Data is never journaled: a write goes straight to ``data/<nid>``, and an upper
file's size and mtime (and its ctime, if later than the recorded one) are read back
from it on replay. Records are appended with one
``write`` each, so a killed daemon loses nothing it acknowledged; ``fsync`` of any
file also syncs the journal, so what was fsynced survives a power cut too. A torn
last record (a crash mid-append, a full disk) is cut off.

Nothing here blocks on anything but the local disk, nor awaits: the FUSE layer
(``daemon.writable``) loads base trees and copies files up, then calls in here.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import os
import shutil
import stat
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from daemon import inodes
from daemon.attrs import MODE_BITS, SPECIAL
from vfs import DvfsError, Entry, Kind, MountError, Tree, private_dir
from vfs._os.tmpfile import link_unnamed, unnamed_file
from vfs.codec import PERM_BITS, decode_tree, encode_tree
from vfs.durable import fsync_dir, write_atomic
from vfs.lock import claim_for_life
from vfs.names import VERSIONS_DIR, any_reserved, is_reserved

FORMAT = 2  # of state and journal; format 1 is still read
READ_FORMATS = (1, 2)
log = logging.getLogger(__name__)
_PERM = PERM_BITS  # what versions record of a mode: no setuid, setgid or sticky bit
_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
SPARES = 256  # empty files kept ready for new files (see Spares)
TRASH_WAIT = 2.0  # seconds an unmount waits for trash removal (see Overlay.close)
COMPACT_ABOVE = 256 << 10  # journals this long are compacted at mount (see Overlay._compact)


class OverlayError(DvfsError):
    """The work directory cannot be used (damaged state, held by another daemon)."""


@dataclass(eq=False, slots=True)
class WNode:
    """One file, directory or symbolic link of the working tree.

    ``entry`` is the base entry the node came from (None for a node made through the
    mount). ``upper``: a file whose content is ``data/<nid>``. ``changed``: what a
    version records of it (permission bits, mtime) differs from ``entry`` (content
    changes make it ``upper`` instead). ``dirty``: a directory with a change at or
    below it. ``origin`` is the node's path in the base version, which is how
    renames are told apart from additions. ``parent`` and ``name`` are its first
    name; a file with hard links has its other names in ``links``. A FIFO, socket
    or device has kind FILE, its file type in ``special``, and is never upper.
    """

    nid: int
    kind: Kind
    mode: int
    mtime_ns: int
    size: int = 0
    entry: Entry | None = None
    origin: bytes | None = None
    upper: bool = False
    changed: bool = False
    target: bytes = b""
    parent: WNode | None = None
    name: bytes = b""
    kids: dict[bytes, WNode] | None = None  # a directory's children, once loaded
    pending: dict[bytes, WNode | None] = field(default_factory=dict)  # replayed, not loaded
    base: Tree | None = None  # a loaded directory's base tree
    dirty: bool = False
    recorded: bool = False  # an N record for it is in the journal
    lookups: int = 0  # the kernel's references
    opens: int = 0  # open file handles
    fd: int = -1  # data/<nid>, while open or while written
    uid: int = 0
    gid: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    special: int = 0  # stat.S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK (daemon.attrs.SPECIAL)
    rdev: int = 0
    links: list[tuple[WNode, bytes]] | None = None  # its other (directory, name)s

    @property
    def nlink(self) -> int:
        """Its names (1 for a directory: "unknown", as for versions' directories)."""
        return 1 + len(self.links or ())

    def names(self) -> list[tuple[WNode, bytes]]:
        """Every (directory, name) it has (none once unlinked)."""
        first = [] if self.parent is None else [(self.parent, self.name)]
        return first + list(self.links or ())

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return self.kind == Kind.DIR

    @property
    def path(self) -> bytes:
        """The node's path below MNT (b"" for MNT itself)."""
        parts: list[bytes] = []
        node: WNode | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return b"/".join(reversed(parts))

    @property
    def loaded(self) -> bool:
        """True once a directory's children are known."""
        return self.kids is not None

    def subtree(self) -> bytes | None:
        """The base tree a directory's children are loaded from (None: none)."""
        return self.entry.subtree if self.entry is not None and self.entry.subtree else None


def _encode_entry(e: Entry | None) -> bytes | None:
    return None if e is None else encode_tree([e])


def _decode_entry(data: bytes | None) -> Entry | None:
    return None if data is None else decode_tree(data).entries[0]


def work_dir_name(branch: str) -> str:
    """A file name for a branch's work directory (branch names may hold "/")."""
    return branch.replace("%", "%25").replace("/", "%2F")


Defs = dict[int, list[Any]]  # node id -> its last N record
N_FIELDS = 15  # of a format 2 N record (format 1: 9)
Names = dict[int, dict[bytes, int | None]]  # dir id -> name -> node id (None: removed)


def fold(records: list[list[Any]]) -> tuple[Defs, Names] | None:
    """What replay keeps of ``records``: the last ``N`` of each node and the last
    ``L``/``U`` of each name, names in first-seen order. None if a record is bad.
    """
    defs: Defs = {}
    over: Names = {inodes.ROOT: {}}
    for rec in records:
        tag = rec[0]
        if tag == "N" and len(rec) in (9, N_FIELDS):
            defs[rec[1]] = rec
            over.setdefault(rec[1], {})
        elif tag == "L" and len(rec) == 4:
            over.setdefault(rec[1], {})[rec[2]] = rec[3]
        elif tag == "U" and len(rec) == 3:
            over.setdefault(rec[1], {})[rec[2]] = None
        elif not (tag == "S" and len(rec) == 2):  # S: read by the Overlay constructor
            return None
    return defs, over


def compacted(defs: Defs, over: Names) -> list[list[Any]]:
    """The records that rebuild what :func:`fold` gave, with nothing replay skips.

    Replay builds the nodes reachable from the root (see ``Overlay._replay``); their
    definitions and their directories' names are all it needs, and each directory's
    names keep their order, which is the order replay walks them in.
    """
    seen = {inodes.ROOT}
    todo = [inodes.ROOT]
    while todo:
        for kid in over.get(todo.pop(), {}).values():
            if kid is not None and kid in defs and kid not in seen:
                seen.add(kid)
                todo.append(kid)
    out = [defs[nid] for nid in sorted(seen) if nid in defs]
    for nid in sorted(seen):
        for name, kid in over.get(nid, {}).items():
            out.append(["U", nid, name] if kid is None else ["L", nid, name, kid])
    return out


class Journal:
    """The append-only record of namespace changes (see the module docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        self.size = os.fstat(self.fd).st_size
        self.unsynced = False

    def read(self) -> list[list[Any]]:
        """Every whole record; a torn tail is cut off the file."""
        with open(self.path, "rb") as f:
            data = f.read()
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(data)
        out: list[list[Any]] = []
        good = 0
        try:
            for rec in unpacker:
                if not isinstance(rec, list) or not rec:
                    break
                out.append(rec)
                good = unpacker.tell()
        except (ValueError, msgpack.UnpackException):
            pass
        if good != len(data):
            os.ftruncate(self.fd, good)
            self.size = good
        return out

    def append(self, *records: list[Any]) -> None:
        """Append records in one write; on failure the journal is as it was."""
        data = b"".join(msgpack.packb(r, use_bin_type=True) for r in records)
        try:
            n = os.write(self.fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, "short write to the journal")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)
        self.unsynced = True

    def sync(self) -> None:
        """Make the appended records durable."""
        if self.unsynced:
            os.fsync(self.fd)
            self.unsynced = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)


class Spares:
    """Empty files made ahead by a thread; a new file takes one and links it into place.

    Making a file costs 0.1-1 ms on some filesystems (ext4 looks for an inode it may
    reuse) and holds the directory locked meanwhile; linking one made with
    ``O_TMPFILE`` costs about 20 us. So ``tar x`` into MNT does not wait for that on
    every file. A spare has no name: those a daemon did not use vanish with it.
    """

    def __init__(self, where: Path, count: int = SPARES) -> None:
        self.count = count
        self.ready: collections.deque[int] = collections.deque()
        self._dir_fd = os.open(where, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._want = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="dvfs-spares", daemon=True)
        self._thread.start()

    def link(self, path: Path) -> int | None:
        """A spare linked at ``path``, its read-write descriptor; None: make one yourself."""
        try:
            fd = self.ready.popleft()
        except IndexError:
            return None
        finally:
            self._want.set()
        try:
            link_unnamed(fd, path, self._dir_fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EEXIST):
                self._stop = True  # no /proc, say: spares would only be wasted
            return None
        return fd

    def _run(self) -> None:
        while not self._stop:
            while len(self.ready) < self.count and not self._stop:
                try:
                    self.ready.append(unnamed_file(self._dir_fd))
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE):
                        break  # try again when the next file is made
                    return  # no O_TMPFILE on this filesystem: files are made as they come
            self._want.wait()
            self._want.clear()

    def close(self) -> None:
        """Stop the thread and close the spares (their inodes are freed)."""
        self._stop = True
        self._want.set()
        self._thread.join()
        while self.ready:
            with contextlib.suppress(OSError):
                os.close(self.ready.popleft())
        os.close(self._dir_fd)


class Overlay:
    """The working tree: its nodes, its work directory, and every change to them."""

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
        self.work = work
        self.data = work / "data"
        private_dir(self.work, tighten=True)  # its journal names files that may be private
        private_dir(self.data, tighten=True)
        self._lock_fd = lock_work(work) if lock_fd is None else lock_fd
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
            self.journal = Journal(self._journal_path())
            records = self.journal.read()
            done = [r for r in records if r[:1] == ["S"] and len(r) == 2 and r[1] == head]
            clean = not any(r[:1] != ["S"] for r in records)
            if not (done or clean):
                self._replay(self._compact(records), root_of(self.base))
                return
            self.journal.close()
            with contextlib.suppress(OSError):
                os.unlink(self.journal.path)
            self.gen += 1  # the snapshot was recorded: start clean over it
        else:
            self.gen, self.next = 1, inodes.UPPER_FIRST
        self.base = head
        self._write_state()
        self._make_root(root_of(head))
        self.journal = Journal(self._journal_path())
        self._drop_strays({})

    # state ----------------------------------------------------------------------------

    def _journal_path(self) -> Path:
        return self.work / f"journal.{self.gen}"

    def _read_state(self) -> dict[str, Any] | None:
        try:
            raw = (self.work / "state").read_bytes()
        except FileNotFoundError:
            return None
        try:
            st = msgpack.unpackb(raw, raw=False)
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

    def _write_state(self) -> None:
        record = {"format": FORMAT, "base": self.base, "gen": self.gen, "next": self.next}
        write_atomic(self.work / "state", msgpack.packb(record, use_bin_type=True), mode=0o600)

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
        """Rewrite a long journal as the few records that rebuild the same tree.

        A long-lived mount only appends (a file made and deleted leaves three
        records), and replay reads all of it at every mount. The new journal is
        written whole under the next generation, then ``state`` names it, then the
        old one goes: a crash at any point leaves one of the two complete journals.
        """
        if self.journal.size < COMPACT_ABOVE or any(r[:1] == ["S"] for r in records):
            return records
        folded = fold(records)
        if folded is None:
            return records  # for replay to refuse
        kept = compacted(*folded)
        data = b"".join(msgpack.packb(r, use_bin_type=True) for r in kept)
        if len(data) * 2 > self.journal.size:
            return records
        old = self.journal
        self.next = max([self.next, *(nid + 1 for nid in folded[0])])  # dropped ones too
        self.gen += 1
        write_atomic(self._journal_path(), data, mode=0o600)
        self._write_state()
        self.journal = Journal(self._journal_path())
        old.close()
        with contextlib.suppress(OSError):
            os.unlink(old.path)
        log.info("journal compacted from %d to %d bytes", old.size, len(data))
        return kept

    def _replay(self, records: list[list[Any]], base_root: Entry | None) -> None:
        """Rebuild the changed part of the tree from the journal."""
        if base_root is None and self.base is not None:
            raise OverlayError("the base version of the working tree is not readable")
        self._make_root(base_root)
        folded = fold(records)
        if folded is None:
            raise OverlayError(f"the journal {self.journal.path} holds a bad record")
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
        node = WNode(
            nid, Kind(kind), mode & MODE_BITS, mtime, entry=_decode_entry(entry),
            origin=origin, upper=bool(upper), target=target or b"", recorded=True,
        )  # fmt: skip
        if len(rec) == N_FIELDS:
            extra = rec[9:]
            if not all(isinstance(x, int) for x in extra) or extra[4] not in (0, *SPECIAL):
                log.error("node %d of the journal has bad attributes: dropped", nid)
                return None
            node.uid, node.gid, node.atime_ns, node.ctime_ns, node.special, node.rdev = extra
        else:  # format 1: the daemon's owner, times as the mtime
            node.uid, node.gid = self.uid, self.gid
        if node.kind == Kind.DIR and node.entry is None:
            node.kids = {}
        elif node.kind == Kind.SYMLINK:
            node.size = len(node.target)
        elif node.upper:
            try:
                st = os.stat(self.data / str(nid))
            except FileNotFoundError:
                log.error("%s is missing: file %d of the working tree is dropped", rec[1], nid)
                return None
            node.size, node.mtime_ns = st.st_size, st.st_mtime_ns
            node.ctime_ns = max(node.ctime_ns, st.st_ctime_ns)
        elif node.entry is not None:
            node.size = node.entry.size
        node.changed = not node.upper and (
            node.entry is None or _versioned(node) != _attrs_of(node.entry)
        )
        return node

    def _drop_strays(self, live: dict[int, WNode]) -> None:
        """Delete data files no node uses and old journals (left by a crash between two steps)."""
        for name in os.listdir(self.data):
            if not (name.isdigit() and int(name) in live and live[int(name)].upper):
                with contextlib.suppress(OSError):
                    os.unlink(self.data / name)
        for name in os.listdir(self.work):
            if name.startswith("journal.") and self.work / name != self.journal.path:
                with contextlib.suppress(OSError):
                    os.unlink(self.work / name)
            elif name.startswith("trash."):
                self._remove_later(self.work / name)

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
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def _stop_spares(self) -> None:
        if self._spares is not None:
            self._spares.close()
            self._spares = None

    # reading ---------------------------------------------------------------------------

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
        origin = None if parent.origin is None else _join(parent.origin, e.name)
        mode, mtime = _attrs_of(e)
        node = WNode(self.new_nid(), e.kind, mode, mtime, size=e.size, entry=e, origin=origin)
        node.target = e.target
        node.uid, node.gid = self.uid, self.gid
        node.parent, node.name = parent, e.name
        self.nodes[node.nid] = node
        return node

    # recording changes -------------------------------------------------------------------

    def _def_record(self, n: WNode) -> list[Any]:
        target = n.target if n.kind == Kind.SYMLINK else None
        entry = None if n is self.root else n.entry  # MNT's is the base's root (in state)
        return [
            "N", n.nid, int(n.kind), n.mode, n.mtime_ns, n.origin,
            _encode_entry(entry), n.upper, target,
            n.uid, n.gid, n.atime_ns, n.ctime_ns, n.special, n.rdev,
        ]  # fmt: skip

    def _dir_records(self, dirs: list[WNode]) -> list[list[Any]]:
        """Names change in ``dirs``: their mtime and ctime are now, and the records that
        make them known with those times (a remount shows them, as a disk would)."""
        now = time.time_ns()
        out: list[list[Any]] = []
        for d in dirs:
            d.mtime_ns = d.ctime_ns = now
            out += self._path_records(d) if not d.recorded else [self._def_record(d)]
        return out

    def _path_records(self, d: WNode) -> list[list[Any]]:
        """Records that make ``d`` and its ancestors known to the journal."""
        out: list[list[Any]] = []
        node: WNode | None = d
        chain: list[WNode] = []
        while node is not None and not node.recorded:
            chain.append(node)
            node = node.parent
        for n in reversed(chain):
            assert n.parent is not None
            out.append(self._def_record(n))
            out.append(["L", n.parent.nid, n.name, n.nid])
        return out

    def _commit(self, records: list[list[Any]], touched: list[WNode]) -> None:
        """Append ``records``; then mark what they recorded.

        On a full disk the records that only give a recorded directory its new times
        are left out, so that unlinking still frees room (the times are then lost at
        the next mount, not the change).
        """
        try:
            self.journal.append(*records)
        except OSError as exc:
            needed = [r for r in records if not self._times_only(r)]
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or len(needed) == len(records):
                raise
            self.journal.append(*needed)
        for rec in records:
            if rec[0] == "N":
                self.nodes[rec[1]].recorded = True
        for n in touched:
            self._mark_dirty(n)

    def _times_only(self, rec: list[Any]) -> bool:
        """True for a record that redefines a directory the journal knows already."""
        n = self.nodes.get(rec[1]) if rec[0] == "N" else None
        return n is not None and n.recorded and n.is_dir

    def _mark_dirty(self, d: WNode | None) -> None:
        while d is not None and not d.dirty:
            d.dirty = True
            d = d.parent

    def record_node(self, n: WNode) -> None:
        """Record ``n``'s current definition (after an attribute change or copy-up)."""
        assert n.parent is not None
        recs = self._path_records(n.parent)
        recs.append(self._def_record(n))
        if not n.recorded:
            recs.append(["L", n.parent.nid, n.name, n.nid])
        self._commit(recs, [n.parent])
        self.on_change(n)

    def attach(self, d: WNode, name: bytes, n: WNode) -> WNode | None:
        """Put a new node ``n`` at ``name`` in ``d``; return the node it replaced."""
        assert d.kids is not None
        recs = self._dir_records([d])
        recs.append(self._def_record(n))
        recs.append(["L", d.nid, name, n.nid])
        self.nodes[n.nid] = n
        try:
            self._commit(recs, [d])
        except BaseException:
            del self.nodes[n.nid]
            raise
        old = d.kids.get(name)
        n.parent, n.name = d, name
        d.kids[name] = n
        if old is not None:
            self._unname(old, d, name)
        return old

    def link(self, n: WNode, d: WNode, name: bytes) -> None:
        """A hard link: ``n`` (not a directory) is also ``name`` in ``d`` (a free name)."""
        assert d.kids is not None and n.parent is not None and not n.is_dir
        recs = self._path_records(n.parent) + self._dir_records([d])
        n.ctime_ns = d.ctime_ns
        recs.append(self._def_record(n))
        if not n.recorded:  # its first name, made known with the node
            recs.append(["L", n.parent.nid, n.name, n.nid])
        recs.append(["L", d.nid, name, n.nid])
        self._commit(recs, [n.parent, d])
        d.kids[name] = n
        n.links = [*(n.links or ()), (d, name)]
        self.on_change(n)

    def remove(self, d: WNode, name: bytes) -> WNode:
        """Remove ``name`` from ``d``; return the node (its data goes once unused)."""
        assert d.kids is not None
        n = d.kids[name]
        recs = self._dir_records([d])
        recs.append(["U", d.nid, name])
        self._commit(recs, [d])
        del d.kids[name]
        self._unname(n, d, name)
        return n

    def move(self, src: WNode, name: bytes, dst: WNode, new: bytes) -> WNode | None:
        """Rename ``src/name`` to ``dst/new``; return the node it replaced, if any."""
        assert src.kids is not None and dst.kids is not None
        n = src.kids[name]
        recs = self._dir_records([src] if src is dst else [src, dst])
        n.ctime_ns = src.ctime_ns
        recs.append(self._def_record(n))
        recs.append(["U", src.nid, name])
        recs.append(["L", dst.nid, new, n.nid])
        self._commit(recs, [src, dst])
        old = dst.kids.get(new)
        del src.kids[name]
        dst.kids[new] = n
        if n.parent is src and n.name == name:
            n.parent, n.name = dst, new
        else:  # another of its names
            n.links = [(dst, new) if (p is src and m == name) else (p, m) for p, m in n.links or ()]
        if old is not None and old is not n:
            self._unname(old, dst, new)
        self.on_change(n)
        return old

    def _unname(self, n: WNode, d: WNode, name: bytes) -> None:
        """``n`` lost its name ``name`` in ``d``; it leaves the tree with its last name."""
        if n.links and n.parent is d and n.name == name:
            n.parent, n.name = n.links.pop(0)
        elif n.links:
            n.links = [(p, m) for p, m in n.links if not (p is d and m == name)]
        else:
            self._detach(n)
            return
        n.ctime_ns = time.time_ns()

    def _detach(self, n: WNode) -> None:
        """``n`` left the tree: forget it (and its data) once nothing holds it."""
        n.parent = None
        self.release_if_unused(n)

    def release_if_unused(self, n: WNode) -> None:
        """Free a node out of the tree that the kernel and every handle let go of.

        Its data goes as soon as no handle is open, as a filesystem frees an unlinked
        file's blocks at its last close: the kernel's FORGET comes later, and a writer
        filling the space just freed must not meet ENOSPC meanwhile. The node itself
        stays while the kernel may still ask for its attributes.
        """
        if n.parent is not None or n is self.root or n.opens > 0:
            return
        if n.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(n.fd)
            n.fd = -1
        if n.upper:
            with contextlib.suppress(OSError):
                os.unlink(self.data / str(n.nid))
        if n.lookups > 0:
            return
        self.nodes.pop(n.nid, None)
        for kid in list((n.kids or {}).values()):  # a whole tree may go: no recursion
            kid.parent = None
            self._orphans.append(kid)
        if self._orphans and not self._releasing:
            self._releasing = True
            try:
                while self._orphans:
                    self.release_if_unused(self._orphans.pop())
            finally:
                self._releasing = False

    def prune(self, d: WNode | None) -> None:
        """Forget the children of a clean directory the kernel let go of.

        They are made again from its base tree when it is next looked into, so the
        daemon holds no more of an unchanged tree than the kernel does (a ``find``
        over a million files does not keep a million nodes).
        """
        if d is None or d is self.root or d.kids is None or d.lookups or d.opens:
            return
        if d.dirty or d.recorded or d.changed or not _as_in(d):
            return
        for k in d.kids.values():
            busy = k.lookups or k.opens or k.recorded or k.upper or k.changed or k.dirty
            if busy or (k.is_dir and k.kids is not None) or not _as_in(k):
                return
        for k in d.kids.values():
            self.nodes.pop(k.nid, None)
            k.parent = None
        d.kids = None
        d.base = None

    # files ---------------------------------------------------------------------------------

    def data_path(self, n: WNode) -> Path:
        """Where an upper file's content lives."""
        return self.data / str(n.nid)

    def open_data(self, n: WNode) -> int:
        """The read-write descriptor of an upper file's content (opened once)."""
        if n.fd < 0:
            n.fd = os.open(self.data_path(n), os.O_RDWR | os.O_CLOEXEC)
        return n.fd

    def _new(self, kind: Kind, mode: int, owner: tuple[int, int], **kw: Any) -> WNode:
        """A node made through the mount, owned by ``owner`` (uid, gid), times now."""
        now = time.time_ns()
        n = WNode(self.new_nid(), kind, mode & MODE_BITS, now, atime_ns=now, ctime_ns=now, **kw)
        n.uid, n.gid = owner
        return n

    def create_file(self, d: WNode, name: bytes, mode: int, owner: tuple[int, int]) -> WNode:
        """A new empty file ``name`` in ``d`` (replacing what was there)."""
        n = self._new(Kind.FILE, mode, owner, upper=True)
        fd = self._new_data(n)
        n.fd = fd
        try:
            self.attach(d, name, n)
        except BaseException:
            os.close(fd)
            n.fd = -1
            with contextlib.suppress(OSError):
                os.unlink(self.data_path(n))
            raise
        return n

    def _new_data(self, n: WNode) -> int:
        """Make ``data/<nid>``, from a spare if one is ready; its descriptor.

        Its mtime is set to the node's, which replay reads back.
        """
        if self._spares is None:
            self._spares = Spares(self.work)
        fd = self._spares.link(self.data_path(n))
        if fd is None:
            fd = os.open(self.data_path(n), _NEW_FILE, 0o600)
        try:
            os.utime(fd, ns=(n.mtime_ns, n.mtime_ns))
        except BaseException:
            os.close(fd)
            os.unlink(self.data_path(n))
            raise
        return fd

    def start_copy(self, n: WNode) -> int:
        """Begin copying ``n`` up: a descriptor of its temporary data file."""
        tmp = self.data / f"{n.nid}.tmp"
        return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)

    def finish_copy(self, n: WNode, fd: int, size: int) -> None:
        """The copy holds ``size`` bytes: make it ``n``'s content and record that."""
        os.utime(fd, ns=(n.mtime_ns, n.mtime_ns))
        os.rename(self.data / f"{n.nid}.tmp", self.data_path(n))
        n.upper, n.fd, n.size = True, fd, size
        try:
            self.record_node(n)
        except BaseException:
            n.upper, n.fd = False, -1
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.data_path(n))
            raise

    def abort_copy(self, n: WNode, fd: int) -> None:
        """A copy failed: remove what it wrote."""
        if n.fd != fd:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(self.data / f"{n.nid}.tmp")

    def release_fd(self, n: WNode) -> None:
        """Close an upper file's descriptor when no handle uses it."""
        if n.opens == 0 and n.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(n.fd)
            n.fd = -1

    def mkdir(self, d: WNode, name: bytes, mode: int, owner: tuple[int, int]) -> WNode:
        """A new empty directory."""
        n = self._new(Kind.DIR, mode, owner, kids={})
        n.dirty = True
        self.attach(d, name, n)
        return n

    def symlink(self, d: WNode, name: bytes, target: bytes, owner: tuple[int, int]) -> WNode:
        """A new symbolic link."""
        n = self._new(Kind.SYMLINK, 0o777, owner, size=len(target))
        n.target = target
        self.attach(d, name, n)
        return n

    def special(self, d: WNode, name: bytes, mode: int, rdev: int, owner: tuple[int, int]) -> WNode:
        """A new FIFO, socket or device node (``mode`` holds its type): kept, never versioned."""
        n = self._new(Kind.FILE, stat.S_IMODE(mode), owner, special=stat.S_IFMT(mode), rdev=rdev)
        self.attach(d, name, n)
        return n

    def set_attrs(
        self,
        n: WNode,
        *,
        mode: int | None = None,
        mtime_ns: int | None = None,
        atime_ns: int | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        """chmod, chown, utimens (ctime is now): kept in the journal; an upper file's
        mtime on its data file too, which replay reads."""
        if mode is not None:
            n.mode = mode & MODE_BITS
        if owner is not None:
            n.uid, n.gid = owner
        if atime_ns is not None:
            n.atime_ns = atime_ns
        if mtime_ns is not None:
            n.mtime_ns = mtime_ns
            if n.upper:
                os.utime(self.open_data(n), ns=(mtime_ns, mtime_ns))
        n.ctime_ns = time.time_ns()
        if n is self.root:
            self._commit([self._def_record(n)], [])
            return
        if n.parent is None:
            return  # an unlinked node: nothing to record
        n.changed = not n.upper and (n.entry is None or _versioned(n) != _attrs_of(n.entry))
        self.record_node(n)

    def sync(self, n: WNode | None, data_only: bool) -> None:
        """fsync: the node's data, then the journal and the data directory."""
        if n is not None and n.upper and n.fd >= 0:
            (os.fdatasync if data_only else os.fsync)(n.fd)
        self.journal.sync()
        fsync_dir(self.data)

    # snapshots -----------------------------------------------------------------------------

    def begin_snapshot(self, version: bytes) -> None:
        """Record that ``version`` is being made from this working tree (durably)."""
        self.journal.append(["S", version])
        self.journal.sync()

    def move_to(self, work: Path) -> None:
        """The working tree now belongs to another branch: rename its work directory.

        So that the next mount of that branch, not of the old one, finds the changes
        made from now on. ``work`` must not exist.
        """
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
        self.journal = Journal(self._journal_path())
        old_journal.close()
        with contextlib.suppress(OSError):
            os.unlink(old_journal.path)
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
            if not beyond and (n.entry is None or n.mode == _attrs_of(n.entry)[0]):
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
        trash = self.work / f"trash.{self.gen}"
        try:
            os.rename(self.data, trash)
        except OSError:
            for name in os.listdir(self.data):
                if not (name.isdigit() and int(name) in keep):
                    with contextlib.suppress(OSError):
                        os.unlink(self.data / name)
            return
        os.mkdir(self.data, 0o700)
        for nid in keep:
            os.rename(trash / str(nid), self.data / str(nid))
        fsync_dir(self.work)
        self._remove_later(trash)

    def _remove_later(self, path: Path) -> None:
        """Remove a directory tree in a thread, so that no request waits for it."""
        self._trash = [t for t in self._trash if t.is_alive()]
        t = threading.Thread(target=shutil.rmtree, args=(path, True), name="dvfs-trash")
        t.daemon = True
        t.start()
        self._trash.append(t)

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
        self.journal = Journal(self._journal_path())
        old_journal.close()
        with contextlib.suppress(OSError):
            os.unlink(old_journal.path)
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
                    kid.origin = _join(d.origin or b"", name)
                if kid.is_dir:
                    todo.append(kid)

    def reserved_paths(self) -> list[bytes]:
        """Paths of nodes whose names no version may hold (``vfs.names``), sorted.

        Only changed directories are looked into: the others are versions' trees,
        which decode only without such names. Nodes made through the mount cannot
        take one either; a working tree left by an older version may hold some.
        """
        out: list[bytes] = []
        todo = [self.root]
        while todo:
            d = todo.pop()
            names = list(d.kids or {})
            if d is self.root and VERSIONS_DIR in names:
                out.append(VERSIONS_DIR)
            if any_reserved(names) is not None:
                out.extend(_join(d.path, n) for n in names if is_reserved(n))
            todo.extend(k for k in (d.kids or {}).values() if k.is_dir and k.dirty)
        return sorted(out)

    def changed_files(self) -> list[WNode]:
        """Every upper file of the working tree (what a snapshot hashes), once each."""
        out: dict[int, WNode] = {}
        todo = [self.root] if self.root.dirty else []
        while todo:
            for kid in (todo.pop().kids or {}).values():
                if kid.is_dir and kid.dirty:
                    todo.append(kid)
                elif kid.upper and kid.kind == Kind.FILE:
                    out[kid.nid] = kid
        return list(out.values())

    def unloaded_dirty(self) -> list[WNode]:
        """Dirty directories whose children are not loaded yet (replayed changes)."""
        out: list[WNode] = []
        todo = [self.root]
        while todo:
            d = todo.pop()
            if not d.dirty:
                continue
            if d.kids is None:
                out.append(d)
                continue
            todo.extend(k for k in d.kids.values() if k.is_dir)
        return out

    def status(
        self, trees: Mapping[bytes, Tree] | None = None, missing: set[bytes] | None = None
    ) -> dict[str, list[Any]]:
        """Pending changes: added, modified, deleted and renamed paths, and what no
        version may hold (FIFOs, sockets, devices, reserved names: ``unversionable``).

        Read from the changed part of the tree only (call when ``unloaded_dirty`` is
        empty). A directory that was added, deleted or renamed is one line ending in
        "/"; a renamed file whose content also changed is listed in both; a hard
        link's other names are added files. A directory
        made where the base version had one is compared with that one's tree, taken
        from ``trees``; the ids of those not there are added to ``missing`` (then call
        again with them).
        """
        trees = trees or {}
        added: list[str] = []
        modified: list[str] = []
        renamed: list[list[str]] = []
        seen: set[bytes] = set()
        gone: list[tuple[bytes, Entry]] = []
        odd: list[str] = [os.fsdecode(p) for p in self.reserved_paths()]

        def show(p: bytes, n: WNode | Entry) -> str:
            return os.fsdecode(p) + ("/" if n.kind == Kind.DIR else "")

        # A walk of the changed directories, depth first, with a stack of frames (a
        # tree may be thousands of levels deep). A frame: a directory's path,
        # the directory of the base version it stands for (base tree and origin; a
        # new directory made in place of one stands for that one), in_added (below
        # an added directory, whose one line covers the new nodes in it), and the
        # iterator over its children, and the directory itself.
        Frame = tuple[bytes, Tree | None, bytes | None, bool, Iterator[tuple[bytes, WNode]], WNode]
        stack: list[Frame] = []

        def enter(
            d: WNode, path: bytes, base: Tree | None, origin: bytes | None, in_added: bool
        ) -> None:
            assert d.kids is not None
            stack.append((path, base, origin, in_added, iter(sorted(d.kids.items())), d))

        if self.root.dirty and self.root.kids is not None:
            enter(self.root, b"", self.root.base, self.root.origin, False)
        while stack:
            dpath, base, origin, in_added, kids, d = stack[-1]
            step = next(kids, None)
            if step is None:
                stack.pop()
                if base is not None and origin is not None:
                    gone.extend((_join(origin, e.name), e) for e in base.entries)
                continue
            name, kid = step
            p = _join(dpath, name)
            if kid.special:
                odd.append(os.fsdecode(p))
                continue
            here = None if origin is None else _join(origin, name)
            changed = kid.upper or kid.changed
            first = kid.parent is d and kid.name == name  # not a hard link's other name
            came_from = kid.origin if first else None
            if came_from is None:
                prior = base.get(name) if base is not None else None
                if prior is not None and here is not None and prior.kind == kid.kind:
                    seen.add(here)
                    if not first:  # another name of a file: changed if it shows another
                        if changed or kid.entry is None or _differs(kid.entry, prior):
                            modified.append(show(p, kid))
                    elif kid.is_dir:
                        sub = trees.get(prior.subtree) if prior.subtree else None
                        if prior.subtree and sub is None and missing is not None:
                            missing.add(prior.subtree)
                        enter(kid, p, sub, here, False)
                    else:
                        modified.append(show(p, kid))
                elif kid.is_dir:
                    if not in_added:
                        added.append(show(p, kid))
                    enter(kid, p, None, None, True)  # for what was moved into it
                elif not in_added:
                    added.append(show(p, kid))
                continue
            seen.add(came_from)
            if came_from != here:
                renamed.append([show(came_from, kid), show(p, kid)])
            if kid.is_dir:
                if kid.dirty and kid.kids is not None:
                    enter(kid, p, kid.base, kid.origin, False)
            elif changed:
                modified.append(show(p, kid))
        deleted = sorted(show(p, e) for p, e in gone if p not in seen)
        return {
            "added": added,
            "modified": sorted(set(modified)),
            "deleted": _outermost(deleted),
            "renamed": renamed,
            "unversionable": sorted(odd),
        }


def _differs(a: Entry, b: Entry) -> bool:
    """True if two file entries do not record the same content and attributes."""
    return (a.digest, a.mode, a.mtime_ns, a.size) != (b.digest, b.mode, b.mtime_ns, b.size)


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths inside a listed directory ("a/" covers "a/b")."""
    out: list[str] = []
    for p in sorted(paths):
        if out and out[-1].endswith("/") and p.startswith(out[-1]):
            continue
        out.append(p)
    return out


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def _as_in(n: WNode) -> bool:
    """True if a node shows its base entry's mode and mtime (a directory made again
    from its base entry would show the entry's), with no other name."""
    return n.entry is not None and not n.links and (n.mode, n.mtime_ns) == _attrs_of(n.entry)


def _versioned(n: WNode) -> tuple[int, int]:
    """(mode, mtime) of a node as a version records them."""
    return (n.mode & _PERM if n.kind != Kind.SYMLINK else 0o777), n.mtime_ns


def _attrs_of(e: Entry) -> tuple[int, int]:
    """(mode, mtime) a base entry shows in the working tree."""
    return (e.mode & _PERM if e.kind != Kind.SYMLINK else 0o777), e.mtime_ns


def lock_work(work: Path) -> int:
    """Hold the work directory for this daemon (made if missing); MountError if another
    one has it."""
    private_dir(work, tighten=True)  # its journal names files that may be private
    got = claim_for_life(work / "lock", 0o600)
    if isinstance(got, str):
        raise MountError(
            f"the working tree {work} is in use by another dvfs mount (pid {got}): "
            "unmount it first, or mount it elsewhere with --read-only"
        )
    return got


def mode_bits(n: WNode) -> int:
    """st_mode for a node."""
    if n.kind == Kind.DIR:
        return stat.S_IFDIR | n.mode
    if n.kind == Kind.FILE:
        return (n.special or stat.S_IFREG) | n.mode
    return stat.S_IFLNK | 0o777
