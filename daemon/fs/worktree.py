"""MNT as a writable working tree: the FUSE handlers over ``daemon.overlay``.

``.versions`` and everything below it stay as ``daemon.fs.versions.VersionsFs`` serves them
(read-only, EROFS on writes). Every other node of MNT is a :class:`WNode` of the
overlay, numbered from ``inodes.UPPER_FIRST`` (MNT itself is inode 1).

- **Reading** an untouched file reads its chunks like a version's (lazily, through
  the fetcher); an upper file is read from ``data/<nid>``.
- **Writing** copies a file up on its first open for writing (all its chunks, or
  nothing with O_TRUNC) and then writes to ``data/<nid>`` directly. Disk calls on
  the upper directory are made from the trio thread: they hit the page cache, and a
  thread hop per 128 KiB write would cost more than the write. ``fsync`` goes to a
  thread.
- **A full disk**: a write (or a copy-up) that meets ENOSPC asks the chunk cache to
  make room, when the cache shares the working tree's disk, and is tried once more:
  cached chunks can be fetched again, the data being written cannot.
- **Holding writes**: every handler that changes something passes the write gate,
  which a snapshot closes while it reads the tree; a writer then waits until the
  snapshot is done.
- **Reserved names** (``vfs.names``: ``.git``, ``.dvfs`` and the spellings that some
  filesystem folds to them, anywhere; ``.versions`` in MNT): creating one, or
  renaming anything to one, fails with EPERM. A version holding one cannot be read
  (its tree does not decode: EIO for that directory); a working tree of an older
  version that holds one can rename or remove it, and ``dvfs snapshot`` refuses
  until it does.
- **Owners, modes and times** follow POSIX (``daemon.fs.attrs``; the kernel checks who
  may change them): nodes belong to whoever made them, chown clears setuid and
  setgid, a write by anyone but root too, atime, mtime and ctime are kept apart.
  Versions record permission bits and mtimes only.
- **Hard links** are one node with several names (``daemon.overlay``); a snapshot
  records each name as a file, the same content stored once.
- **FIFOs, sockets and device nodes** (devices for root only: the kernel checks) live
  in the working tree and its journal, never in a version: ``dvfs status MNT`` lists
  them as not versionable and ``dvfs snapshot`` skips them.
- **Not supported**, with the errno a filesystem without them gives: extended
  attributes (ENOTSUP), RENAME_EXCHANGE (EINVAL). Directory times are kept while
  mounted but not recorded in versions (as with ``dvfs commit``).

Caching by the kernel: names and attributes in MNT change only through this mount,
so they are cached for ``TIMEOUT`` seconds, missing names included, and file pages
are kept across opens.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import pyfuse3
import trio

from daemon.data.fetcher import Fetcher
from daemon.data.open_files import OpenFile
from daemon.errors import handler
from daemon.fs import inodes
from daemon.fs.attrs import SPECIAL, after_chown, after_write, new_owner
from daemon.fs.catalog import Catalog
from daemon.fs.inodes import Node, NodeKind
from daemon.fs.namespace import VERSIONS_NAME, Layout
from daemon.fs.versions import BLOCK, IO_SIZE, VersionsFs
from daemon.overlay import Overlay, WNode, mode_bits
from vfs import Kind, is_reserved, is_reserved_at_root

log = logging.getLogger(__name__)
TIMEOUT = 300.0
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
COPY_AHEAD = 8


def _err(code: int) -> pyfuse3.FUSEError:
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


class WorkingFs(VersionsFs):
    """The versions, plus MNT as a writable working tree."""

    def __init__(
        self, layout: Layout, fetcher: Fetcher, overlay: Overlay, writable: bool = True
    ) -> None:
        super().__init__(layout, fetcher)
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

    # nodes --------------------------------------------------------------------------

    def _w(self, ino: int) -> WNode | None:
        """The working-tree node numbered ``ino`` (None: a node of .versions)."""
        if ino == inodes.ROOT or inodes.UPPER_FIRST <= ino < inodes.HASHED_BASE:
            node = self.overlay.nodes.get(ino)
            if node is None:
                raise _err(errno.ESTALE)
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
            raise _err(errno.EROFS)
        if not d.is_dir:
            raise _err(errno.ENOTDIR)
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
            raise _err(errno.EROFS)
        await self.gate.enter()

    @staticmethod
    def _reserved(d: WNode, name: bytes) -> bool:
        """True for ``.versions`` in MNT: the version list, never a node of the tree."""
        return d.nid == inodes.ROOT and name == VERSIONS_NAME

    @staticmethod
    def _refused(d: WNode, name: bytes) -> bool:
        """True for a name no node may take in ``d`` (``vfs.names``): EPERM."""
        return is_reserved_at_root(name) if d.nid == inodes.ROOT else is_reserved(name)

    # reading the namespace ----------------------------------------------------------

    @handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        d = self._w(parent_inode)
        if d is None:
            return await super().lookup(parent_inode, name, ctx)
        if not d.is_dir:
            raise _err(errno.ENOTDIR)
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
            raise _err(errno.EINVAL)
        return n.target

    @handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        n = self._w(inode)
        if n is None:
            return await super().opendir(inode, ctx)
        if not n.is_dir:
            raise _err(errno.ENOTDIR)
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
        st = os.statvfs(self.overlay.work)
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

    # extended attributes ---------------------------------------------------------------

    @handler
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        raise _err(errno.EROFS if self._w(inode) is None else errno.ENOTSUP)

    @handler
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise _err(errno.EROFS if self._w(inode) is None else errno.ENOTSUP)

    # files -----------------------------------------------------------------------------

    async def copy_up(self, n: WNode, truncate: bool) -> None:
        """Make ``n`` an upper file (its chunks copied, or empty if ``truncate``)."""
        while n.nid in self._copying:  # another opener is copying it: wait for that
            await self._copying[n.nid].wait()
        if n.upper:
            return
        done = self._copying[n.nid] = trio.Event()
        try:
            fd = self.overlay.start_copy(n)
            try:
                size = 0
                chunks = () if truncate or n.entry is None else n.entry.chunks
                for i, ref in enumerate(chunks):
                    self.fetcher.prefetch(chunks[i + 1 : i + 1 + COPY_AHEAD])
                    data = await self.fetcher.get(ref)
                    await self._pwrite(fd, data, size)
                    size += len(data)
                self.overlay.finish_copy(n, fd, size)
            except BaseException:
                self.overlay.abort_copy(n, fd)
                raise
        finally:
            del self._copying[n.nid]
            done.set()

    def _open_handle(self, n: WNode, uid: int) -> int:
        """A new file handle on ``n`` for ``uid`` (its data file opened, or its chunks
        ready to read)."""
        h = Handle(n, uid)
        if n.upper:
            self.overlay.open_data(n)
        elif n.entry is not None:
            h.lower = OpenFile.of(self._lower_node(n))
        n.opens += 1
        fh = next(self._handles)
        self._handles_w[fh] = h
        return fh

    @staticmethod
    def _lower_node(n: WNode) -> Node:
        return Node(b"w", NodeKind.FILE, n.path, n.entry)

    @handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        n = self._w(inode)
        if n is None:
            return await super().open(inode, flags, ctx)
        if n.kind != Kind.FILE or n.special:  # the kernel opens those itself
            raise _err(errno.EISDIR if n.is_dir else errno.EINVAL)
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
        if writing or flags & os.O_TRUNC:
            await self._changing()
            try:
                truncate = bool(flags & os.O_TRUNC)
                if not n.upper:
                    await self.copy_up(n, truncate)
                elif truncate and n.size:
                    os.ftruncate(self.overlay.open_data(n), 0)
                    self._touch(n, 0)
                if truncate:
                    self._kill_privs(n, ctx.uid)
                fh = self._open_handle(n, ctx.uid)
            finally:
                self.gate.leave()
        else:
            fh = self._open_handle(n, ctx.uid)
        return pyfuse3.FileInfo(fh=fh, keep_cache=True)

    @handler
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        n = await self._make(
            parent_inode,
            name,
            lambda d: self.overlay.create_file(d, name, *self._owned(d, mode, ctx)),
        )
        fh = self._open_handle(n, ctx.uid)
        return pyfuse3.FileInfo(fh=fh, keep_cache=True), self._counted(n)

    @staticmethod
    def _owned(
        d: WNode, mode: int, ctx: pyfuse3.RequestContext, *, directory: bool = False
    ) -> tuple[int, tuple[int, int]]:
        """(mode, (uid, gid)) of a node ``ctx``'s caller makes in ``d``."""
        uid, gid, mode = new_owner(ctx.uid, ctx.gid, mode, d.gid, d.mode, directory=directory)
        return mode, (uid, gid)

    def _kill_privs(self, n: WNode, uid: int) -> None:
        """A write or truncation by ``uid``: clear setuid and setgid unless root wrote."""
        mode = after_write(n.mode, uid)
        if mode != n.mode:
            self.overlay.set_attrs(n, mode=mode)
            pyfuse3.invalidate_inode(n.nid, attr_only=True)  # no writeback cache: safe here

    @handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        h = self._handles_w.get(fh)
        if h is None:
            return await super().read(fh, off, size)
        n = h.node
        if n.upper:
            return os.pread(self.overlay.open_data(n), size, off)
        if h.lower is None:
            return b""
        return await h.lower.read(self.fetcher, off, size)

    @handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        h = self._handles_w.get(fh)
        if h is None:
            return await super().write(fh, off, buf)
        await self._changing()
        try:
            n = h.node
            if not n.upper:  # a snapshot made it clean while it was open
                await self.copy_up(n, False)
            done = await self._pwrite(self.overlay.open_data(n), buf, off)
            self._touch(n, max(n.size, off + done))
            if n.mode & (stat.S_ISUID | stat.S_ISGID):
                self._kill_privs(n, h.uid)
        finally:
            self.gate.leave()
        return done

    async def _pwrite(self, fd: int, data: bytes, off: int) -> int:
        """``os.pwrite``; on ENOSPC, once more after the chunk cache made room."""
        try:
            return os.pwrite(fd, data, off)
        except OSError as exc:
            cache = self.fetcher.cache
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or cache is None:
                raise
            freed = await trio.to_thread.run_sync(cache.shed, len(data), self.overlay.work)
            if not freed:
                raise
        return os.pwrite(fd, data, off)

    def _touch(self, n: WNode, size: int) -> None:
        """After a write or truncate: mtime and ctime are the data file's, which a
        remount reads."""
        n.size = size
        st = os.fstat(self.overlay.open_data(n))
        n.mtime_ns, n.ctime_ns = st.st_mtime_ns, st.st_ctime_ns

    @handler
    async def fsync(self, fh: int, datasync: bool) -> None:
        h = self._handles_w.get(fh)
        if h is not None:
            await self._sync(h.node, datasync)

    async def _sync(self, n: WNode | None, datasync: bool) -> None:
        """fsync in a thread, through the write gate: a snapshot's rebase swaps the journal."""
        await self.gate.enter()
        try:
            await trio.to_thread.run_sync(self.overlay.sync, n, datasync)
        finally:
            self.gate.leave()

    @handler
    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        if fh in self._wdirs:
            await self._sync(None, datasync)

    @handler
    async def release(self, fh: int) -> None:
        h = self._handles_w.pop(fh, None)
        if h is None:
            await super().release(fh)
            return
        n = h.node
        n.opens -= 1
        self.overlay.release_fd(n)
        self.overlay.release_if_unused(n)

    # attributes -----------------------------------------------------------------------------

    @handler
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        n = self._w(inode)
        if n is None:
            return await super().setattr(inode, attr, fields, fh, ctx)
        await self._changing()
        try:
            if fields.update_size:
                if n.kind != Kind.FILE or n.special:
                    raise _err(errno.EISDIR if n.is_dir else errno.EINVAL)
                if not n.upper:
                    await self.copy_up(n, attr.st_size == 0)
                os.ftruncate(self.overlay.open_data(n), attr.st_size)
                self._touch(n, attr.st_size)
                self._kill_privs(n, ctx.uid)
            # The kernel allowed the change (default_permissions): apply it as POSIX says.
            mode = stat.S_IMODE(attr.st_mode) if fields.update_mode else None
            owner = None
            if fields.update_uid or fields.update_gid:
                uid = attr.st_uid if fields.update_uid else n.uid
                gid = attr.st_gid if fields.update_gid else n.gid
                owner = (uid, gid)
                mode = after_chown(n.mode if mode is None else mode, directory=n.is_dir)
            mtime = None
            if fields.update_mtime:
                mtime = attr.st_mtime_ns
            elif fields.update_size:
                mtime = n.mtime_ns
            atime = attr.st_atime_ns if fields.update_atime else None
            if fields.update_size or (mode, owner, mtime, atime) != (None, None, None, None):
                self.overlay.set_attrs(n, mode=mode, mtime_ns=mtime, atime_ns=atime, owner=owner)
        finally:
            self.gate.leave()
        return self.wattributes(n)

    # the namespace ----------------------------------------------------------------------------

    async def _make(self, parent_inode: int, name: bytes, make: Callable[[WNode], WNode]) -> WNode:
        """Make a new name in a directory through the write gate (EEXIST if taken)."""
        d = await self._dir(parent_inode)
        await self._changing()
        try:
            if self._refused(d, name):
                raise _err(errno.EPERM)
            if name in (d.kids or {}):
                raise _err(errno.EEXIST)
            return make(d)
        finally:
            self.gate.leave()

    async def _remove(self, parent_inode: int, name: bytes, *, directory: bool) -> None:
        """unlink (``directory`` False) or rmdir, through the write gate."""
        d = await self._dir(parent_inode)
        await self._changing()
        try:
            if self._reserved(d, name):
                raise _err(errno.EPERM)
            kid = (d.kids or {}).get(name)
            if kid is None:
                raise _err(errno.ENOENT)
            if kid.is_dir != directory:
                raise _err(errno.ENOTDIR if directory else errno.EISDIR)
            if directory and await self.kids(kid):
                raise _err(errno.ENOTEMPTY)
            self.overlay.remove(d, name)
        finally:
            self.gate.leave()

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        kind = stat.S_IFMT(mode)
        if kind != stat.S_IFREG and kind not in SPECIAL:
            raise _err(errno.EINVAL)

        def make(d: WNode) -> WNode:
            perm, owner = self._owned(d, stat.S_IMODE(mode), ctx)
            if kind != stat.S_IFREG:  # (the kernel let only root make a device)
                return self.overlay.special(d, name, kind | perm, rdev, owner)
            n = self.overlay.create_file(d, name, perm, owner)
            self.overlay.release_fd(n)
            return n

        return self._counted(await self._make(parent_inode, name, make))

    @handler
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        made = await self._make(
            parent_inode,
            name,
            lambda d: self.overlay.mkdir(d, name, *self._owned(d, mode, ctx, directory=True)),
        )
        return self._counted(made)

    @handler
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        made = await self._make(
            parent_inode,
            name,
            lambda d: self.overlay.symlink(d, name, target, self._owned(d, 0o777, ctx)[1]),
        )
        return self._counted(made)

    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, directory=False)

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        await self._remove(parent_inode, name, directory=True)

    @handler
    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        if self._w(parent_inode_old) is None or self._w(parent_inode_new) is None:
            raise _err(errno.EROFS if self.writable else errno.EXDEV)
        src = await self._dir(parent_inode_old)
        dst = await self._dir(parent_inode_new)
        if flags & RENAME_EXCHANGE:
            raise _err(errno.EINVAL)
        await self._changing()
        try:
            # a reserved name left by an older version may be renamed away, not to
            if self._reserved(src, name_old) or self._refused(dst, name_new):
                raise _err(errno.EPERM)
            n = (src.kids or {}).get(name_old)
            if n is None:
                raise _err(errno.ENOENT)
            old = (dst.kids or {}).get(name_new)
            if old is n:
                return
            if old is not None:
                if flags & RENAME_NOREPLACE:
                    raise _err(errno.EEXIST)
                if old.is_dir and not n.is_dir:
                    raise _err(errno.EISDIR)
                if n.is_dir and not old.is_dir:
                    raise _err(errno.ENOTDIR)
                if old.is_dir and await self.kids(old):
                    raise _err(errno.ENOTEMPTY)
            if n.is_dir:
                await self.kids(n)  # moved whole: its base stays reachable by id
            self.overlay.move(src, name_old, dst, name_new)
        finally:
            self.gate.leave()

    @handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        n = self._w(inode)
        if self._w(new_parent_inode) is None:
            raise _err(errno.EROFS)
        if n is None:  # a file of a version: read-only, on the same mount
            raise _err(errno.EXDEV)
        if n.is_dir:
            raise _err(errno.EPERM)
        if n.parent is None:  # unlinked meanwhile
            raise _err(errno.ENOENT)

        def make(d: WNode) -> WNode:
            self.overlay.link(n, d, new_name)
            return n

        return self._counted(await self._make(new_parent_inode, new_name, make))
