"""Changes to the working tree's namespace and attributes, each recorded in the journal.

A change touches only the nodes on the path to it: before a name changes in a
directory, that directory and its ancestors are recorded (``N`` and ``L``) once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from typing import Any

from daemon.fs.attrs import MODE_BITS
from daemon.overlay.journal import (
    encode_entry,
)
from daemon.overlay.node import WNode, as_in, attrs_of, versioned
from daemon.overlay.state import OverlayState
from vfs import Kind


class Changes(OverlayState):
    """Names made, linked, removed and moved; attributes set; nodes released."""

    def _def_record(self, n: WNode) -> list[Any]:
        target = n.target if n.kind == Kind.SYMLINK else None
        entry = None if n is self.root else n.entry  # MNT's is the base's root (in state)
        return [
            "N", n.nid, int(n.kind), n.mode, n.mtime_ns, n.origin,
            encode_entry(entry), n.upper, target,
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

    def _commit(self, records: list[list[Any]], touched: list[WNode], new: bool = False) -> None:
        """Append ``records``; then mark what they recorded.

        On a full disk the records that only give a recorded directory its new times
        are left out, so that unlinking still frees room (the times are then lost at
        the next mount, not the change). ``new``: they make or link a name, which a
        full disk refuses first (``Journal.append``).
        """
        try:
            self.journal.append(*records, new=new)
        except OSError as exc:
            needed = [r for r in records if not self._times_only(r)]
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or len(needed) == len(records):
                raise
            self.journal.append(*needed, new=new)
        for rec in records:
            if rec[0] == "N":
                self.nodes[rec[1]].recorded = True
        for n in touched:
            self._mark_dirty(n)

    def _times_only(self, rec: list[Any]) -> bool:
        """True for a record that redefines a directory the journal knows already."""
        n = self.nodes.get(rec[1]) if rec[0] == "N" else None
        return n is not None and n.recorded and n.is_dir

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
            self._commit(recs, [d], new=True)
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
        self._commit(recs, [n.parent, d], new=True)
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
                os.unlink(str(n.nid), dir_fd=self.data_fd)
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
        if d.dirty or d.recorded or d.changed or not as_in(d):
            return
        for k in d.kids.values():
            busy = k.lookups or k.opens or k.recorded or k.upper or k.changed or k.dirty
            if busy or (k.is_dir and k.kids is not None) or not as_in(k):
                return
        for k in d.kids.values():
            self.nodes.pop(k.nid, None)
            k.parent = None
        d.kids = None
        d.base = None

    def _new(self, kind: Kind, mode: int, owner: tuple[int, int], **kw: Any) -> WNode:
        """A node made through the mount, owned by ``owner`` (uid, gid), times now."""
        now = time.time_ns()
        n = WNode(self.new_nid(), kind, mode & MODE_BITS, now, atime_ns=now, ctime_ns=now, **kw)
        n.uid, n.gid = owner
        return n

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
        n.changed = not n.upper and (n.entry is None or versioned(n) != attrs_of(n.entry))
        self.record_node(n)

    def sync(self, n: WNode | None, data_only: bool) -> None:
        """fsync: the node's data, then the journal and the data directory."""
        if n is not None and n.upper and n.fd >= 0:
            (os.fdatasync if data_only else os.fsync)(n.fd)
        self.journal.sync()
        os.fsync(self.data_fd)
