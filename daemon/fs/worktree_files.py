"""Open files of the working tree: copy-up, reading, writing, syncing.

The second of the three classes that make ``daemon.fs.worktree.WorkingFs``.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable

import pyfuse3
import trio

from daemon.data.open_files import OpenFile
from daemon.errors import handler
from daemon.fs.attrs import after_write, new_owner
from daemon.fs.inodes import Node, NodeKind
from daemon.fs.worktree_nodes import (
    COPY_AHEAD,
    Handle,
    WorkingNodes,
    fuse_error,
)
from daemon.overlay import WNode
from vfs import Kind


class WorkingFiles(WorkingNodes):
    """Files of MNT opened, read, written and synced."""

    async def copy_up(self, n: WNode, truncate: bool) -> None:
        """Make ``n`` an upper file (its chunks copied, or empty if ``truncate``); a
        file whose bytes are not its base entry's digest is not copied (FormatError,
        or EIO once known: ``daemon.data.digests``)."""
        while n.nid in self._copying:  # another opener is copying it: wait for that
            await self._copying[n.nid].wait()
        if n.upper:
            return
        done = self._copying[n.nid] = trio.Event()
        digest = None if truncate or n.entry is None else self.digests.of(n.entry)
        if digest is not None:
            digest.opened(None)
        try:
            fd = self.overlay.start_copy(n)
            try:
                size = 0
                chunks = () if truncate or n.entry is None else n.entry.chunks
                for i, ref in enumerate(chunks):
                    self.fetcher.prefetch(chunks, i + 1, i + 1 + COPY_AHEAD, extend=True)
                    data = await self.fetcher.get(ref)
                    if digest is not None:
                        digest.refuse_if_false()
                        digest.take(i, data)
                        await digest.digests.keep_up()
                    await self._pwrite(fd, data, size)
                    size += len(data)
                if digest is not None:
                    where = n.path if n.origin is None else n.origin
                    shown = self.shown(where, self.overlay.base)
                    await digest.settle(data, shown, lambda j: self.fetcher.get(chunks[j]))
                self.overlay.finish_copy(n, fd, size)
            except BaseException:
                self.overlay.abort_copy(n, fd)
                raise
        finally:
            if digest is not None:
                digest.closed()
            del self._copying[n.nid]
            done.set()

    def _open_handle(self, n: WNode, uid: int) -> int:
        """A new file handle on ``n`` for ``uid`` (its data file opened, or its chunks
        ready to read)."""
        h = Handle(n, uid)
        if n.upper:
            self.overlay.open_data(n)
        elif n.entry is not None:
            shown = self.shown(n.path if n.origin is None else n.origin, self.overlay.base)
            h.lower = OpenFile.of(self._lower_node(n), self.digests, shown)
        n.opens += 1
        fh = next(self._handles)
        self._handles_w[fh] = h
        return fh

    @staticmethod
    def _lower_node(n: WNode) -> Node:
        return Node(b"w", NodeKind.FILE, n.path, n.entry, n.nid)

    @handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        n = self._w(inode)
        if n is None:
            return await super().open(inode, flags, ctx)
        if n.kind != Kind.FILE or n.special:  # the kernel opens those itself
            raise fuse_error(errno.EISDIR if n.is_dir else errno.EINVAL)
        writing = bool(flags & (os.O_WRONLY | os.O_RDWR))
        keep = True  # (the kernel's pages of the file may be kept: see Digests.ready)
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
            if n.entry is not None and not n.upper:
                keep = await self.digests.ready(n.entry, inode)
            fh = self._open_handle(n, ctx.uid)
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

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

    async def _pwrite(self, fd: int, data: bytes | memoryview, off: int) -> int:
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
        n.wrote += 1
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
        if h.lower is not None:
            h.lower.close()
        n = h.node
        n.opens -= 1
        self.overlay.release_fd(n)
        self.overlay.release_if_unused(n)

    async def _make(self, parent_inode: int, name: bytes, make: Callable[[WNode], WNode]) -> WNode:
        """Make a new name in a directory through the write gate (EEXIST if taken)."""
        d = await self._dir(parent_inode)
        await self._changing()
        try:
            if self._refused(d, name):
                raise fuse_error(errno.EPERM)
            if name in (d.kids or {}):
                raise fuse_error(errno.EEXIST)
            return make(d)
        finally:
            self.gate.leave()
