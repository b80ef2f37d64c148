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
- **Reserved names** (``vfs.model.names``: ``.git``, ``.dvfs`` and the spellings that some
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
import os
import stat

import pyfuse3

from daemon.errors import handler
from daemon.fs.attrs import SPECIAL, after_chown
from daemon.fs.worktree_files import WorkingFiles
from daemon.fs.worktree_nodes import (
    RENAME_EXCHANGE,
    RENAME_NOREPLACE,
    fuse_error,
)
from daemon.overlay import WNode
from vfs import Kind


class WorkingFs(WorkingFiles):
    """The versions, plus MNT as a writable working tree."""

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
                    raise fuse_error(errno.EISDIR if n.is_dir else errno.EINVAL)
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

    async def _remove(self, parent_inode: int, name: bytes, *, directory: bool) -> None:
        """unlink (``directory`` False) or rmdir, through the write gate."""
        d = await self._dir(parent_inode)
        await self._changing()
        try:
            if self._reserved(d, name):
                raise fuse_error(errno.EPERM)
            kid = (d.kids or {}).get(name)
            if kid is None:
                raise fuse_error(errno.ENOENT)
            if kid.is_dir != directory:
                raise fuse_error(errno.ENOTDIR if directory else errno.EISDIR)
            if directory and await self.kids(kid):
                raise fuse_error(errno.ENOTEMPTY)
            self.overlay.remove(d, name)
        finally:
            self.gate.leave()

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        kind = stat.S_IFMT(mode)
        if kind != stat.S_IFREG and kind not in SPECIAL:
            raise fuse_error(errno.EINVAL)

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
            raise fuse_error(errno.EROFS if self.writable else errno.EXDEV)
        src = await self._dir(parent_inode_old)
        dst = await self._dir(parent_inode_new)
        if flags & RENAME_EXCHANGE:
            raise fuse_error(errno.EINVAL)
        await self._changing()
        try:
            # a reserved name left by an older version may be renamed away, not to
            if self._reserved(src, name_old) or self._refused(dst, name_new):
                raise fuse_error(errno.EPERM)
            n = (src.kids or {}).get(name_old)
            if n is None:
                raise fuse_error(errno.ENOENT)
            old = (dst.kids or {}).get(name_new)
            if old is n:
                return
            if old is not None:
                if flags & RENAME_NOREPLACE:
                    raise fuse_error(errno.EEXIST)
                if old.is_dir and not n.is_dir:
                    raise fuse_error(errno.EISDIR)
                if n.is_dir and not old.is_dir:
                    raise fuse_error(errno.ENOTDIR)
                if old.is_dir and await self.kids(old):
                    raise fuse_error(errno.ENOTEMPTY)
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
            raise fuse_error(errno.EROFS)
        if n is None:  # a file of a version: read-only, on the same mount
            raise fuse_error(errno.EXDEV)
        if n.is_dir:
            raise fuse_error(errno.EPERM)
        if n.parent is None:  # unlinked meanwhile
            raise fuse_error(errno.ENOENT)

        def make(d: WNode) -> WNode:
            self.overlay.link(n, d, new_name)
            return n

        return self._counted(await self._make(new_parent_inode, new_name, make))
