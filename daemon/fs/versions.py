"""The FUSE request handlers: a read-only view of the versions of a store.

Every handler is async, runs in the trio thread and is wrapped by
``daemon.errors.handler`` (so it raises only FUSEError). Blocking work never
happens here: records come through ``daemon.data.record_cache`` and chunks through
``daemon.data.fetcher``, both of which go to worker threads.

Caching by the kernel: the content of a version node never changes (its number is
derived from what it is, see ``daemon.fs.inodes``), so its attributes are cached for
``LONG`` seconds, its pages are kept across opens (``keep_cache``), and names
looked up inside a version directory are cached as long. What does change with a
refresh is which version a name in MNT or under ``.versions`` means: those names,
and the attributes of the virtual directories, are cached for ``SHORT`` seconds.

Writes: every handler that would change something answers EROFS; in a writable
mount, MNT outside ``.versions`` is served by ``daemon.fs.worktree`` instead (or, for a
root mount, by the kernel's overlayfs over this read-only view: ``daemon.kernel_overlay``).
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import pyfuse3
import trio

from daemon.data.digests import Digests
from daemon.data.fetcher import Fetcher
from daemon.data.open_files import OpenFile
from daemon.errors import handler
from daemon.fs import inodes
from daemon.fs.catalog import Catalog
from daemon.fs.inodes import InodeTable, Node, NodeKind
from daemon.fs.namespace import VERSIONS_NAME, Layout
from vfs import Kind, quote_name, set_bdi_read_ahead

log = logging.getLogger(__name__)
LONG = 24 * 3600.0
SHORT = 1.0
BLOCK = 512
IO_SIZE = 128 * 1024
FRAGMENT = 4096
# Kernel read-ahead for the mount (FUSE's default is 128 KiB, which also caps each
# read request at 128 KiB): see ``widen_readahead``.
READAHEAD_KIB = 1024
_MUTABLE = (
    NodeKind.ROOT, NodeKind.VERSIONS, NodeKind.REFS, NodeKind.IDS, NodeKind.LATEST, NodeKind.META,
)  # fmt: skip
CONTROL_NAME = b".control"
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_TRUNC | os.O_CREAT


def widen_readahead(mountpoint: Path, kib: int = READAHEAD_KIB) -> bool:
    """Let the kernel read ahead ``kib`` KiB in the mount; True if it could be set.

    FUSE starts a mount at 128 KiB of read-ahead, which is also the largest read
    it then sends: a sequential reader costs a request (a round trip through this
    process, and a chunk lookup) per 128 KiB. At 1 MiB the kernel sends 1 MiB
    requests (libfuse allows 256 pages): streaming 1 GiB from the chunk cache took
    ~1.3 CPU-s here instead of ~1.7. The setting is the mount's backing device's,
    in sysfs, writable by root only; anyone else keeps the default. The device
    number comes from mountinfo, not stat: stat would ask this very process,
    which is not serving yet.
    """
    where = str(mountpoint)
    for char, code in (("\\", "\\134"), (" ", "\\040"), ("\t", "\\011"), ("\n", "\\012")):
        where = where.replace(char, code)  # mountinfo's escapes
    device = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="surrogateescape") as f:
            for line in f:
                fields = line.split(" ")
                if len(fields) > 4 and fields[4] == where:
                    device = fields[2]  # the last one wins: the newest mount there
        if device is None:
            return False
        set_bdi_read_ahead(device, kib)
    except OSError as exc:
        log.debug("kernel read-ahead left at its default: %s", exc)
        return False
    return True


def _erofs() -> pyfuse3.FUSEError:
    return pyfuse3.FUSEError(errno.EROFS)


class VersionsFs(pyfuse3.Operations):
    """Handlers over an inode table, a layout and a fetcher."""

    supports_dot_lookup = False
    mountpoint: Path | None = None  # set before mounting, for ``init``

    def __init__(self, layout: Layout, fetcher: Fetcher, marks: Path | None = None) -> None:
        """``marks``: where the digests of files found true are kept across mounts
        (``Digests``; None: not kept)."""
        super().__init__()
        self.layout = layout
        self.fetcher = fetcher
        self.table = InodeTable()
        for ino, node in layout.fixed.items():
            self.table.pin(ino, node)
        self.uid = os.getuid()
        self.gid = os.getgid()
        # .versions/.control links to this (the control socket; writable mounts only)
        self.control_path = b""
        self._handles = itertools.count(1)
        self._files: dict[int, OpenFile] = {}
        self.digests = Digests(marks)  # of the files read, as their chunks are served
        self._dirs: dict[int, tuple[Node, list[tuple[bytes, Node]]]] = {}

    def init(self) -> None:
        """FUSE INIT: widen the kernel's read-ahead once it has our answer.

        The kernel sets the mount's read-ahead from INIT's reply, which pyfuse3
        sends right after this returns; the task runs after that, when the
        session loop next yields.
        """
        if self.mountpoint is not None:
            trio.lowlevel.spawn_system_task(self._widen_readahead, self.mountpoint)

    async def _widen_readahead(self, mountpoint: Path) -> None:
        # a small read and write of procfs and sysfs: not worth a thread
        try:
            widen_readahead(mountpoint)
        except Exception:  # a system task must not raise: it would end the daemon
            log.exception("could not widen the kernel read-ahead")

    # catalog --------------------------------------------------------------------

    async def set_catalog(self, catalog: Catalog) -> None:
        """Show a refreshed catalog; make the kernel drop the names that may differ."""
        old = self.layout.catalog
        old_root = await self.layout.head_tree()
        self.layout.catalog = catalog
        if old.head != catalog.head and not self.layout.pinned:
            for e in old_root.entries:
                pyfuse3.invalidate_entry_async(inodes.ROOT, e.name, ignore_enoent=True)
        for ino, kind in ((inodes.TAGS, "tags"), (inodes.BRANCHES, "branches")):
            before, after = old.refs(kind), catalog.refs(kind)
            for name in set(before) | set(after):
                if before.get(name) != after.get(name):
                    top = name.split("/", 1)[0].encode()
                    pyfuse3.invalidate_entry_async(ino, top, ignore_enoent=True)

    # attributes -------------------------------------------------------------------

    def attributes(self, node: Node, parent: NodeKind | None = None) -> pyfuse3.EntryAttributes:
        """The attributes of ``node``, found in a directory of kind ``parent``."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = SHORT if self._mutable(parent) else LONG
        a.attr_timeout = SHORT if self._mutable(node.kind) else LONG
        a.st_uid = self.uid
        a.st_gid = self.gid
        a.st_blksize = IO_SIZE
        e = node.entry
        if e is None:  # virtual
            catalog = self.layout.catalog
            t = catalog.time_ns
            if node.kind == NodeKind.LATEST:
                a.st_mode = stat.S_IFLNK | 0o777
                a.st_size = len(b"v%d" % catalog.latest)
            else:
                a.st_mode = stat.S_IFDIR | (0o755 if node.kind == NodeKind.ROOT else 0o555)
                a.st_size = 0
        else:
            t = e.mtime_ns
            # permission bits only: a setuid file of a version copied out by root
            # (cp -a, rsync -a) must not become a setuid file elsewhere
            if e.kind == Kind.DIR:
                a.st_mode = stat.S_IFDIR | (e.mode & 0o777)
                a.st_size = 0
            elif e.kind == Kind.FILE:
                a.st_mode = stat.S_IFREG | (e.mode & 0o777)
                a.st_size = e.size
            else:
                a.st_mode = stat.S_IFLNK | 0o777
                a.st_size = len(e.target)
        # Directories say 1 link: "unknown", so no tool counts subdirectories by it.
        a.st_nlink = 1
        a.st_blocks = (a.st_size + BLOCK - 1) // BLOCK if stat.S_ISREG(a.st_mode) else 0
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = t
        return a

    def _mutable(self, kind: NodeKind | None) -> bool:
        """True for what a refresh may change (MNT itself only if it follows the branch)."""
        return kind in _MUTABLE and not (kind == NodeKind.ROOT and self.layout.pinned)

    def control_attributes(self) -> pyfuse3.EntryAttributes:
        """``.versions/.control``: a link to the control socket, not listed anywhere."""
        a = pyfuse3.EntryAttributes()
        a.st_ino = inodes.CONTROL
        a.entry_timeout = a.attr_timeout = SHORT
        a.st_mode = stat.S_IFLNK | 0o777
        a.st_nlink = 1
        a.st_uid, a.st_gid = self.uid, self.gid
        a.st_size = len(self.control_path)
        t = self.layout.catalog.made_ns
        a.st_atime_ns = a.st_mtime_ns = a.st_ctime_ns = t
        return a

    def _node(self, ino: int) -> Node:
        node = self.table.get(ino)
        if node is None:
            raise pyfuse3.FUSEError(errno.ESTALE)
        return node

    # reading the namespace -------------------------------------------------------------

    @handler
    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        if parent_inode == inodes.VERSIONS and name == CONTROL_NAME and self.control_path:
            return self.control_attributes()
        parent = self._node(parent_inode)
        if not parent.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        found = await self.layout.lookup(parent, name)
        if found is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self.attributes(self.table.remember(found), parent.kind)

    @handler
    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if inode == inodes.CONTROL and self.control_path:
            return self.control_attributes()
        return self.attributes(self._node(inode))

    @handler
    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        if inode == inodes.CONTROL and self.control_path:
            return self.control_path
        node = self._node(inode)
        if node.kind == NodeKind.LATEST:
            return b"v%d" % self.layout.catalog.latest
        if node.kind != NodeKind.SYMLINK or node.entry is None:
            raise pyfuse3.FUSEError(errno.EINVAL)
        return node.entry.target

    @handler
    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        node = self._node(inode)
        if not node.is_dir:
            raise pyfuse3.FUSEError(errno.ENOTDIR)
        fh = next(self._handles)
        self._dirs[fh] = (node, await self.layout.listing(node))
        return fh

    @handler
    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        parent, entries = self._dirs[fh]
        for i in range(start_id, len(entries)):
            name, node = entries[i]
            known = self.table.remember(node)
            if not pyfuse3.readdir_reply(token, name, self.attributes(known, parent.kind), i + 1):
                self.table.forget(known.ino, 1)
                return

    @handler
    async def releasedir(self, fh: int) -> None:
        self._dirs.pop(fh, None)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, count in inode_list:
            self.table.forget(ino, count)

    @handler
    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        v = self.layout.catalog.head_version
        s = pyfuse3.StatvfsData()
        s.f_bsize = IO_SIZE
        s.f_frsize = FRAGMENT
        s.f_blocks = (v.bytes + FRAGMENT - 1) // FRAGMENT if v is not None else 0
        s.f_bfree = s.f_bavail = 0
        s.f_files = v.files if v is not None else 0
        s.f_ffree = s.f_favail = 0
        s.f_namemax = 255
        return s

    @handler
    async def getxattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> bytes:
        # ENOSYS: the kernel stops asking and answers ENOTSUP itself, which spares
        # `ls -l` two round trips per file (it asks for ACLs and SELinux labels).
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @handler
    async def listxattr(self, inode: int, ctx: pyfuse3.RequestContext) -> Sequence[bytes]:
        raise pyfuse3.FUSEError(errno.ENOSYS)

    # reading files ----------------------------------------------------------------------

    @handler
    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        node = self._node(inode)
        if flags & _WRITE_FLAGS:
            raise _erofs()
        if node.kind != NodeKind.FILE:
            raise pyfuse3.FUSEError(errno.EISDIR if node.is_dir else errno.EINVAL)
        assert node.entry is not None
        keep = await self.digests.ready(node.entry, inode)
        fh = next(self._handles)
        version = self.layout.root_version if self.layout.pinned else self.layout.catalog.head
        self._files[fh] = OpenFile.of(node, self.digests, self.shown(node.path, version))
        return pyfuse3.FileInfo(fh=fh, keep_cache=keep)

    @handler
    async def read(self, fh: int, off: int, size: int) -> bytes:
        """The bytes, or a memoryview of a chunk typed as bytes: pass it on, never edit it.

        pyfuse3 replies from any contiguous buffer (its stub says bytes), and a view
        saves copying every byte once more; a caller wanting real bytes takes bytes().
        """
        f = self._files[fh]
        log.debug("read %r: %d bytes at %d", f.node.path, size, off)
        return cast(bytes, await f.view(self.fetcher, off, size))

    @handler
    async def flush(self, fh: int) -> None:
        # Nothing to do on close (writes reach the disk as they come): ENOSYS and the
        # kernel stops sending FLUSH, one round trip less for every close.
        raise pyfuse3.FUSEError(errno.ENOSYS)

    @handler
    async def release(self, fh: int) -> None:
        f = self._files.pop(fh, None)
        if f is not None:
            f.close()

    def shown(self, path: bytes, version: bytes | None) -> Callable[[], str]:
        """How messages name the file at ``path`` below MNT, a file of ``version``
        unless the path names its version (``.versions/v2/a``): ``v3:a``."""

        def name() -> str:
            if version is None or path.startswith(VERSIONS_NAME + b"/"):
                return quote_name(path)
            numbers = {oid: n for n, oid in self.layout.catalog.numbered.items()}
            n = numbers.get(version)
            label = f"v{n}" if n is not None else version.hex()[:10]
            return quote_name(f"{label}:{os.fsdecode(path)}")

        return name

    # writing: refused ---------------------------------------------------------------------

    @handler
    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        raise _erofs()

    @handler
    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _erofs()

    @handler
    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _erofs()

    @handler
    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise _erofs()

    @handler
    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise _erofs()

    @handler
    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _erofs()

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
        raise _erofs()

    @handler
    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise _erofs()

    @handler
    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        raise _erofs()

    @handler
    async def write(self, fh: int, off: int, buf: bytes) -> int:
        raise _erofs()

    @handler
    async def setxattr(
        self, inode: int, name: bytes, value: bytes, ctx: pyfuse3.RequestContext
    ) -> None:
        raise _erofs()

    @handler
    async def removexattr(self, inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        raise _erofs()
