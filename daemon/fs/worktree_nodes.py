"""The working tree's nodes for the request handlers: looking up, listing, forgetting.

The first of three classes that make ``daemon.fs.worktree.WorkingFs`` (this one, then
``daemon.fs.worktree_files`` for open files, then ``daemon.fs.worktree`` for changes
to names and attributes); the module docstring of ``daemon.fs.worktree`` says what
the working tree does. A request for an inode below ``.versions`` goes on to
``daemon.fs.versions.VersionsFs``.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyfuse3
import trio

from daemon.data.fetcher import Fetcher
from daemon.data.open_files import OpenFile
from daemon.errors import handler
from daemon.fs import inodes
from daemon.fs.catalog import Catalog
from daemon.fs.inodes import NodeKind
from daemon.fs.namespace import VERSIONS_NAME, Layout
from daemon.fs.versions import BLOCK, IO_SIZE, VersionsFs
from daemon.overlay import Overlay, WNode, mode_bits
from vfs import MAX_NAME, Kind, is_reserved, is_reserved_at_root

log = logging.getLogger(__name__)
TIMEOUT = 300.0
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
COPY_AHEAD = 8


def fuse_error(code: int) -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(code)


class WriteGate:
    """Lets changes through unless a snapshot holds it closed; then they wait."""

    def __init__(self) -> None:
        self.active = 0
        self._open = trio.Event()
        self._open.set()
        self._idle: trio.Event | None = None
        self._closer = trio.Lock()

    async def enter(self) -> None:
        """Wait until the gate is open, then count one change in progress."""
        while not self._open.is_set():
            await self._open.wait()
        self.active += 1

    def leave(self) -> None:
        """A change is done."""
        self.active -= 1
        if self.active == 0 and self._idle is not None:
            self._idle.set()

    async def close(self) -> None:
        """Hold new changes and wait for those in progress (one closer at a time)."""
        await self._closer.acquire()
        self._open = trio.Event()
        while self.active:
            self._idle = trio.Event()
            await self._idle.wait()
        self._idle = None

    def reopen(self) -> None:
        """Let changes through again."""
        self._open.set()
        self._closer.release()


@dataclass(eq=False)
class Handle:
    """An open file of the working tree, and who opened it (root's writes keep setuid)."""

    node: WNode
    uid: int
    lower: OpenFile | None = None  # reading an untouched file's chunks


class WorkingNodes(VersionsFs):
    """The versions, plus MNT's nodes: looked up, listed, forgotten."""

    def __init__(
        self,
        layout: Layout,
        fetcher: Fetcher,
        overlay: Overlay,
        writable: bool = True,
        marks: Path | None = None,
    ) -> None:
        super().__init__(layout, fetcher, marks)
        self.overlay = overlay
        self.writable = writable
        self.gate = WriteGate()
        self._handles_w: dict[int, Handle] = {}
        self._wdirs: dict[int, list[tuple[bytes, WNode]]] = {}
        self._copying: dict[int, trio.Event] = {}

    async def set_catalog(self, catalog: Catalog) -> None:
        """Show a refreshed catalog; an unchanged working tree follows the branch head."""
        await super().set_catalog(catalog)
        v = catalog.head_version
        root = None if v is None else v.root_entry()
        old = self.overlay.follow(catalog.head, root)
        if old is None:
            return
        new = [e.name for e in (await self.layout.head_tree()).entries]
        for name in set(old) | set(new):  # the new names may be cached as missing
            pyfuse3.invalidate_entry_async(inodes.ROOT, name, ignore_enoent=True)

    def _w(self, ino: int) -> WNode | None:
        """The working-tree node numbered ``ino`` (None: a node of .versions)."""
        if ino == inodes.ROOT or inodes.UPPER_FIRST <= ino < inodes.HASHED_BASE:
            node = self.overlay.nodes.get(ino)
            if node is None:
                raise fuse_error(errno.ESTALE)
            return node
        return None

    async def kids(self, d: WNode) -> dict[bytes, WNode]:
        """A directory's children, loading its base tree the first time."""
        if d.kids is None:
            sub = d.subtree()
            tree = await self.layout.records.tree(sub) if sub is not None else None
            self.overlay.load(d, tree)
        assert d.kids is not None
        return d.kids

    async def _dir(self, ino: int) -> WNode:
        d = self._w(ino)
        if d is None:
            raise fuse_error(errno.EROFS)
        if not d.is_dir:
            raise fuse_error(errno.ENOTDIR)
        await self.kids(d)
        return d

    def wattributes(self, n: WNode) -> pyfuse3.EntryAttributes:
        """The attributes of a working-tree node."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = n.nid
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_mode = mode_bits(n)
        a.st_nlink = 1 if n.is_dir else n.nlink
        a.st_uid = n.uid
        a.st_gid = n.gid
        a.st_rdev = n.rdev
        a.st_size = n.size if n.kind != Kind.DIR and not n.special else 0
        a.st_blksize = IO_SIZE
        a.st_blocks = (a.st_size + BLOCK - 1) // BLOCK if n.kind == Kind.FILE else 0
        a.st_mtime_ns = n.mtime_ns
        a.st_atime_ns = n.atime_ns or n.mtime_ns
        a.st_ctime_ns = n.ctime_ns or n.mtime_ns
        return a

    def _counted(self, n: WNode) -> pyfuse3.EntryAttributes:
        n.lookups += 1
        return self.wattributes(n)

    async def _changing(self) -> None:
        if not self.writable:
            raise fuse_error(errno.EROFS)
        await self.gate.enter()
        if not self.writable:  # (a snapshot that could not settle: Snapshots.take)
            self.gate.leave()
            raise fuse_error(errno.EROFS)

    @staticmethod
    def _reserved(d: WNode, name: bytes) -> bool:
        """True for ``.versions`` in MNT: the version list, never a node of the tree."""
        return d.nid == inodes.ROOT and name == VERSIONS_NAME

    @staticmethod
    def _refused(d: WNode, name: bytes) -> bool:
        """True for a name no node may take in ``d`` (``vfs.model.names``): EPERM.
        ENAMETOOLONG for a name longer than a version holds (or a disk could write)."""
        if len(name) > MAX_NAME:
            raise fuse_error(errno.ENAMETOOLONG)
        return is_reserved_at_root(name) if d.nid == inodes.ROOT else is_reserved(name)

    @handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        d = self._w(parent_inode)
        if d is None:
            return await super().lookup(parent_inode, name, ctx)
        if not d.is_dir:
            raise fuse_error(errno.ENOTDIR)
        if self._reserved(d, name):
            node = self.table.remember(self.layout.fixed[inodes.VERSIONS])
            return self.attributes(node, NodeKind.ROOT)
        kid = (await self.kids(d)).get(name)
        if kid is None:
            miss = pyfuse3.EntryAttributes()
            miss.st_ino = 0
            miss.entry_timeout = TIMEOUT
            return miss
        return self._counted(kid)

    @handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        n = self._w(inode)
        return self.wattributes(n) if n is not None else await super().getattr(inode, ctx)

    @handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        n = self._w(inode)
        if n is None:
            return await super().readlink(inode, ctx)
        if n.kind != Kind.SYMLINK:
            raise fuse_error(errno.EINVAL)
        return n.target

    @handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        n = self._w(inode)
        if n is None:
            return await super().opendir(inode, ctx)
        if not n.is_dir:
            raise fuse_error(errno.ENOTDIR)
        fh = next(self._handles)
        self._wdirs[fh] = sorted((await self.kids(n)).items())
        return fh

    @handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        entries = self._wdirs.get(fh)
        if entries is None:
            return await super().readdir(fh, start_id, token)
        for i in range(start_id, len(entries)):
            name, kid = entries[i]
            kid.lookups += 1
            if not pyfuse3.readdir_reply(token, name, self.wattributes(kid), i + 1):
                kid.lookups -= 1
                return

    @handler
    async def releasedir(self, fh: int) -> None:
        if self._wdirs.pop(fh, None) is None:
            await super().releasedir(fh)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        rest = []
        for ino, count in inode_list:
            n = self.overlay.nodes.get(ino) if self._is_work(ino) else None
            if n is None:
                rest.append((ino, count))
                continue
            n.lookups = max(0, n.lookups - count)
            self.overlay.release_if_unused(n)
            if n.lookups == 0:
                parent = n.parent
                self.overlay.prune(n)
                self.overlay.prune(parent)
        if rest:
            await super().forget(rest)

    @staticmethod
    def _is_work(ino: int) -> bool:
        return ino == inodes.ROOT or inodes.UPPER_FIRST <= ino < inodes.HASHED_BASE

    @handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = os.statvfs(self.overlay.work_fd)
        s = pyfuse3.StatvfsData()
        s.f_bsize = st.f_bsize
        s.f_frsize = st.f_frsize
        s.f_blocks = st.f_blocks
        s.f_bfree = st.f_bfree
        s.f_bavail = st.f_bavail
        s.f_files = st.f_files
        s.f_ffree = st.f_ffree
        s.f_favail = st.f_favail
        s.f_namemax = 255
        return s

    @handler
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        raise fuse_error(errno.EROFS if self._w(inode) is None else errno.ENOTSUP)

    @handler
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise fuse_error(errno.EROFS if self._w(inode) is None else errno.ENOTSUP)
