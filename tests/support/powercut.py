"""A filesystem that loses what was not made durable: power cuts, for the tests.

``PowerCutFs`` is a FUSE filesystem (pyfuse3 + trio) passing every operation through
to a backing directory while it keeps, beside it, what a power cut would leave:

- a file's data (and its mode and mtime) as of its last ``fsync``/``fdatasync`` (or a
  write through a descriptor opened ``O_SYNC``/``O_DSYNC``); a file never synced holds
  nothing (empty, with its mode and mtime of when it was made);
- a directory's entries as of its last ``fsync`` (of a descriptor of the directory):
  a name created, renamed or removed in it since is as it was before (a file renamed
  from one directory into another shows in both, or in neither, as each directory's
  last fsync left it; a directory's own entries are kept with it wherever it shows);
- what stood at the mount's start is durable.

This is what POSIX promises and no more: each fsync makes durable the one object it
names, and nothing else is assumed (not the rename ordering or the ``auto_da_alloc``
of ext4, not the journal committing a new file's name with its fsync). What ext4 with
``data=ordered`` may lose after a crash is a subset: it loses whole unsynced
operations in order, never more than this model does. Two variants of the data of
files: ``lost`` (the default: unsynced data is gone) and ``kept`` (every completed
write is there, as after ``kill -9``, but names are still only the durable ones); and
``names``: every name as the command left it (a filesystem may write a rename back
before the data), data only as last fsynced.
Metadata besides mode and mtime (owner, times of directories) is taken as it is.

A power cut happens before the ``cut_at``-th mutating operation (create, mkdir,
symlink, link, unlink, rmdir, rename, setattr, write, fsync, fsyncdir), or at unmount
if the count was not reached: the state that is durable then is written as a fresh
plain directory (``out``), every later operation fails with EIO, and the process
group of the process whose operation was cut is killed (SIGKILL). Writes must reach
this filesystem to be counted: it asks the kernel for no writeback cache, so every
``write``, ``pwritev`` and ``O_DIRECT`` write is sent as it is made (dvfs writes
files through descriptors only; it maps files only to read them).

``fsync_delay``: each file's fsync is answered that many seconds after it was asked
(other operations go on meanwhile), so that fsyncs a command runs at the same time
complete in another order than they were asked in, as a disk may complete them.

``python -m tests.support.powercut serve BACKING MNT --out DIR --cut-at N`` serves one
mount (foreground, until unmounted) and prints ``{"ops": count, "cut": bool}`` when it
ends. ``python -m tests.support.powercut --seeds N`` runs the scenarios of
``tests/test_powercut.py`` with N seeded cut points each.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyfuse3
import trio

EIO = pyfuse3.FUSEError(errno.EIO)


@dataclass(eq=False)
class Node:
    """One inode of the backing directory and what of it is durable."""

    ino: int
    fd: int  # O_PATH descriptor of the backing inode (follows renames)
    kind: str  # "f" file, "d" directory, "l" symbolic link
    data: bytes = b""  # files: the data as of the last fsync
    mode: int = 0o644
    mtime_ns: int = 0
    entries: dict[bytes, Node] = field(default_factory=dict)  # directories: durable names
    target: bytes = b""  # links


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return "f"


def _proc(fd: int) -> str:
    return f"/proc/self/fd/{fd}"


_libc = ctypes.CDLL(None, use_errno=True)


def _group(pid: int) -> int:
    """The process group of ``pid`` (0 if it is gone)."""
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return 0


def _renameat2(old_fd: int, old: bytes, new_fd: int, new: bytes, flags: int) -> None:
    """``renameat2`` (RENAME_NOREPLACE, RENAME_EXCHANGE), which os has not."""
    if _libc.syscall(316, old_fd, old, new_fd, new, flags) != 0:  # SYS_renameat2, x86_64
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class PowerCutFs(pyfuse3.Operations):
    """Pass-through to ``backing``, remembering what is durable (see the module)."""

    def __init__(
        self, backing: Path, out: Path, cut_at: int, variant: str = "lost", fsync_delay: float = 0
    ) -> None:
        super().__init__()
        self.fsync_delay = fsync_delay
        self.log: list[tuple[str, str]] = []  # each mutating operation: what, on what
        self.out = out
        self.cut_at = cut_at
        self.variant = variant
        self.ops = 0
        self.frozen = False
        self.nodes: dict[int, Node] = {}
        self.live: dict[tuple[int, int], Node] = {}
        self.dirs: dict[int, tuple[Node, int]] = {}  # directory handle: node, opener's group
        self.handles: dict[int, tuple[Node, int]] = {}  # file handle: node, opener's process group
        self.synced: set[int] = set()  # handles opened O_SYNC or O_DSYNC
        self.next_ino = pyfuse3.ROOT_INODE
        self.next_dir = 1
        root_fd = os.open(backing, os.O_PATH | os.O_DIRECTORY)
        self.root = self._adopt(root_fd, os.stat(root_fd), durable=True)
        self._walk(self.root)

    # ------------------------------------------------------------------ nodes

    def _adopt(self, fd: int, st: os.stat_result, *, durable: bool) -> Node:
        node = Node(self.next_ino, fd, _kind(st.st_mode), mode=st.st_mode, mtime_ns=st.st_mtime_ns)
        self.next_ino += 1
        self.nodes[node.ino] = node
        self.live[(st.st_dev, st.st_ino)] = node
        if durable and node.kind == "f":
            node.data = self._current(node)
        return node

    def _walk(self, dir_node: Node) -> None:
        """Take what stands below ``dir_node`` at the start as durable."""
        dir_node.entries = {}
        for name, st in self._listing(dir_node):
            child = self._child(dir_node, name, st, durable=True)
            dir_node.entries[name] = child
            if child.kind == "d":
                self._walk(child)

    def _child(self, parent: Node, name: bytes, st: os.stat_result, *, durable: bool) -> Node:
        node = self.live.get((st.st_dev, st.st_ino))
        if node is not None:
            return node
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW, dir_fd=parent.fd)
        node = self._adopt(fd, st, durable=durable)
        if node.kind == "l":
            node.target = os.readlink(name, dir_fd=parent.fd)
        return node

    def _listing(self, node: Node) -> list[tuple[bytes, os.stat_result]]:
        fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY, dir_fd=node.fd)
        try:
            names = sorted(os.fsencode(n) for n in os.listdir(fd))
            return [(n, os.stat(n, dir_fd=fd, follow_symlinks=False)) for n in names]
        finally:
            os.close(fd)

    def _current(self, node: Node) -> bytes:
        with open(_proc(node.fd), "rb") as f:
            return f.read()

    def _retire(self, node: Node | None) -> None:
        """Forget the inode number of ``node`` once no name links it (it may be reused)."""
        if node is None:
            return
        st = os.stat(node.fd)
        if st.st_nlink == 0 or (node.kind == "d" and st.st_nlink <= 1):
            for key, n in list(self.live.items()):
                if n is node:
                    del self.live[key]

    def _attr(self, node: Node) -> pyfuse3.EntryAttributes:
        st = os.stat(node.fd)
        a = pyfuse3.EntryAttributes()
        for name in ("st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size"):
            setattr(a, name, getattr(st, name))
        a.st_atime_ns, a.st_mtime_ns, a.st_ctime_ns = st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns
        a.st_blksize, a.st_blocks = st.st_blksize, st.st_blocks
        a.st_ino = node.ino
        a.generation = 0
        a.entry_timeout = 0
        a.attr_timeout = 0
        return a

    def _node(self, inode: int) -> Node:
        try:
            return self.nodes[inode]
        except KeyError:
            raise pyfuse3.FUSEError(errno.ENOENT) from None

    def _lookup(self, parent: Node, name: bytes) -> Node | None:
        try:
            st = os.stat(name, dir_fd=parent.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        return self._child(parent, name, st, durable=False)

    # ------------------------------------------------------------ durability

    def _sync_file(self, node: Node) -> None:
        if node.kind != "f":
            return
        node.data = self._current(node)
        st = os.stat(node.fd)
        node.mode, node.mtime_ns = st.st_mode, st.st_mtime_ns

    def _sync_dir(self, node: Node) -> None:
        node.entries = {n: self._child(node, n, st, durable=False) for n, st in self._listing(node)}
        node.mode = os.stat(node.fd).st_mode

    def _mutating(self, group: int, op: str = "", node: Node | None = None) -> None:
        """Count a mutating operation of process group ``group`` (``op``, on ``node``:
        logged); cut the power before the ``cut_at``-th."""
        if self.frozen:
            raise EIO
        self.ops += 1
        where = ""
        if node is not None:
            where = os.path.relpath(os.readlink(_proc(node.fd)), os.readlink(_proc(self.root.fd)))
        self.log.append((op, where))
        if self.ops == self.cut_at:
            self.cut(group)
            raise EIO

    def _alive(self) -> None:
        if self.frozen:
            raise EIO

    def cut(self, group: int) -> None:
        """Freeze, write the durable state to ``out``, kill process group ``group``."""
        self.frozen = True
        if self.variant == "names":  # every name written back, as the command left it
            for node in {id(n): n for n in self.live.values() if n.kind == "d"}.values():
                self._sync_dir(node)
        tmp = self.out.with_name(self.out.name + ".partial")
        write_durable(self.root, tmp, self.variant, self._current)
        os.rename(tmp, self.out)
        if group > 0 and group != os.getpgrp():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    # ------------------------------------------------------------ operations

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._alive()
        parent = self._node(parent_inode)
        if name == b".":
            return self._attr(parent)
        node = self._lookup(parent, name) if name != b".." else None
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attr(node)

    async def forget(self, inode_list: Any) -> None:
        return None

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        self._alive()
        return self._attr(self._node(inode))

    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        self._mutating(_group(ctx.pid), "setattr")
        node = self._node(inode)
        path = _proc(node.fd)
        try:
            if fields.update_size:
                if fh is not None:
                    os.ftruncate(fh, attr.st_size)
                else:
                    os.truncate(path, attr.st_size)
            if fields.update_mode and node.kind != "l":
                os.chmod(path, stat.S_IMODE(attr.st_mode))
            if fields.update_uid or fields.update_gid:
                uid = attr.st_uid if fields.update_uid else -1
                gid = attr.st_gid if fields.update_gid else -1
                os.chown(path, uid, gid, follow_symlinks=node.kind != "l")
            if (fields.update_atime or fields.update_mtime) and node.kind != "l":
                st = os.stat(node.fd)
                atime = attr.st_atime_ns if fields.update_atime else st.st_atime_ns
                mtime = attr.st_mtime_ns if fields.update_mtime else st.st_mtime_ns
                os.utime(path, ns=(atime, mtime))
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        return self._attr(node)

    async def readlink(self, inode: int, ctx: pyfuse3.RequestContext) -> bytes:
        self._alive()
        return self._node(inode).target

    async def _made(self, parent: Node, name: bytes) -> pyfuse3.EntryAttributes:
        node = self._lookup(parent, name)
        assert node is not None
        return self._attr(node)

    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._mutating(_group(ctx.pid), "mkdir")
        parent = self._node(parent_inode)
        try:
            os.mkdir(name, mode, dir_fd=parent.fd)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        return await self._made(parent, name)

    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._mutating(_group(ctx.pid), "symlink")
        parent = self._node(parent_inode)
        try:
            os.symlink(target, name, dir_fd=parent.fd)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        return await self._made(parent, name)

    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._mutating(_group(ctx.pid), "link")
        node, parent = self._node(inode), self._node(new_parent_inode)
        try:
            os.link(_proc(node.fd), new_name, dst_dir_fd=parent.fd, follow_symlinks=True)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        return self._attr(node)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._mutating(_group(ctx.pid), "unlink")
        parent = self._node(parent_inode)
        node = self._lookup(parent, name)
        try:
            os.unlink(name, dir_fd=parent.fd)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self._retire(node)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._mutating(_group(ctx.pid), "rmdir")
        parent = self._node(parent_inode)
        node = self._lookup(parent, name)
        try:
            os.rmdir(name, dir_fd=parent.fd)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self._retire(node)

    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._mutating(_group(ctx.pid), "rename")
        old, new = self._node(parent_inode_old), self._node(parent_inode_new)
        replaced = self._lookup(new, name_new)
        try:
            if flags:
                _renameat2(old.fd, name_old, new.fd, name_new, flags)
            else:
                os.rename(name_old, name_new, src_dir_fd=old.fd, dst_dir_fd=new.fd)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        self._retire(replaced)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        self._alive()
        node = self._node(inode)
        fd = os.open(_proc(node.fd), flags & os.O_ACCMODE)
        if flags & (os.O_SYNC | os.O_DSYNC):
            self.synced.add(fd)
        self.handles[fd] = (node, _group(ctx.pid))
        return pyfuse3.FileInfo(fh=fd)

    async def create(
        self,
        parent_inode: int,
        name: bytes,
        mode: int,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._mutating(_group(ctx.pid), "create")
        parent = self._node(parent_inode)
        keep = os.O_ACCMODE | os.O_EXCL | os.O_TRUNC
        try:
            fd = os.open(name, (flags & keep) | os.O_CREAT | os.O_NOFOLLOW, mode, dir_fd=parent.fd)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        node = self._lookup(parent, name)
        assert node is not None
        if flags & (os.O_SYNC | os.O_DSYNC):
            self.synced.add(fd)
        self.handles[fd] = (node, _group(ctx.pid))
        return pyfuse3.FileInfo(fh=fd), self._attr(node)

    async def read(self, fh: int, off: int, size: int) -> bytes:
        self._alive()
        return os.pread(fh, size, off)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        node, pid = self.handles[fh]
        self._mutating(pid, "write")
        try:
            n = os.pwrite(fh, buf, off)
        except OSError as exc:
            raise pyfuse3.FUSEError(exc.errno or errno.EIO) from None
        if fh in self.synced:
            self._sync_file(node)
        return n

    async def flush(self, fh: int) -> None:
        return None

    async def release(self, fh: int) -> None:
        self.synced.discard(fh)
        self.handles.pop(fh, None)
        os.close(fh)

    async def fsync(self, fh: int, datasync: bool) -> None:
        node, pid = self.handles[fh]
        if self.fsync_delay:  # the disk answers the file's fsync after what comes meanwhile
            await trio.sleep(self.fsync_delay)
        self._mutating(pid, "fsync", node)
        self._sync_file(node)

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> int:
        self._alive()
        self.next_dir += 1
        self.dirs[self.next_dir] = (self._node(inode), _group(ctx.pid))
        return self.next_dir

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        self._alive()
        node = self.dirs[fh][0]
        listing = self._listing(node)
        for i, (name, st) in enumerate(listing[start_id:], start_id):
            child = self._child(node, name, st, durable=False)
            if not pyfuse3.readdir_reply(token, name, self._attr(child), i + 1):
                break

    async def releasedir(self, fh: int) -> None:
        self.dirs.pop(fh, None)

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        node, pid = self.dirs[fh]
        self._mutating(pid, "fsyncdir", node)
        self._sync_dir(node)

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        self._alive()
        st = os.statvfs(_proc(self.root.fd))
        s = pyfuse3.StatvfsData()
        for name in ("f_bsize", "f_frsize", "f_blocks", "f_bfree", "f_bavail", "f_files"):
            setattr(s, name, getattr(st, name))
        s.f_ffree, s.f_favail, s.f_namemax = st.f_ffree, st.f_favail, st.f_namemax
        return s

    async def access(self, inode: int, mode: int, ctx: pyfuse3.RequestContext) -> bool:
        self._alive()
        return True


# -------------------------------------------------------------------- the durable state


def write_durable(root: Node, out: Path, variant: str, current: Any) -> None:
    """Write what is durable below ``root`` as a plain directory ``out``.

    ``variant`` ``kept``: files hold their current data (``current(node)``), names are
    still only the durable ones. A file linked under several durable names is written
    once and linked.
    """
    written: dict[int, bytes] = {}

    def emit(node: Node, path: bytes, above: frozenset[int]) -> None:
        if node.kind == "d":
            os.mkdir(path, 0o700)
            for name, child in sorted(node.entries.items()):
                if child.ino not in above:  # a directory moved below itself: not twice
                    emit(child, os.path.join(path, name), above | {child.ino})
            os.chmod(path, stat.S_IMODE(node.mode))
        elif node.kind == "l":
            os.symlink(node.target, path)
        elif node.ino in written:
            os.link(written[node.ino], path)
        else:
            data = current(node) if variant == "kept" else node.data
            with open(path, "wb") as f:
                f.write(data)
            os.chmod(path, stat.S_IMODE(node.mode))
            if variant != "kept":
                os.utime(path, ns=(node.mtime_ns, node.mtime_ns))
            written[node.ino] = path

    emit(root, os.fsencode(out), frozenset({root.ino}))


# ----------------------------------------------------------------------------- serving


def serve(
    backing: Path, mnt: Path, out: Path, cut_at: int, variant: str, fsync_delay: float = 0
) -> dict[str, Any]:
    """Serve ``backing`` at ``mnt`` until unmounted; cut the power before the
    ``cut_at``-th mutating operation, or at the end. What it counted."""
    os.umask(0)  # the kernel applied the caller's umask already
    fs = PowerCutFs(backing, out, cut_at, variant, fsync_delay)
    options = set(pyfuse3.default_options) | {"fsname=powercut"}
    pyfuse3.init(fs, str(mnt), options)
    try:
        trio.run(pyfuse3.main)
    finally:
        pyfuse3.close(unmount=False)
    cut = fs.frozen
    if not cut:
        fs.cut(0)
    return {"ops": fs.ops, "cut": cut, "log": fs.log}


@dataclass
class Served:
    """A power-cut mount being served by a child process."""

    proc: subprocess.Popen[bytes]
    mnt: Path
    out: Path


def start(
    backing: Path, mnt: Path, out: Path, cut_at: int, variant: str = "lost", fsync_delay: float = 0
) -> Served:
    """Serve ``backing`` at ``mnt`` from a child process (see :func:`serve`); returns
    once it is mounted."""
    mnt.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable, "-P", "-m", "tests.support.powercut", "serve", str(backing),
            str(mnt), "--out", str(out), "--cut-at", str(cut_at), "--variant", variant,
            "--fsync-delay", str(fsync_delay),
        ],
        cwd=Path(__file__).resolve().parents[2],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    give_up = time.monotonic() + 30
    while not os.path.ismount(mnt):
        if proc.poll() is not None or time.monotonic() > give_up:
            proc.kill()
            _, err = proc.communicate()
            raise RuntimeError(f"the power-cut mount did not come up: {err.decode()}")
        time.sleep(0.005)
    return Served(proc, mnt, out)


def _mounted(path: Path) -> bool:
    with open("/proc/self/mounts", encoding="utf-8", errors="replace") as f:
        return any(line.split()[1] == str(path) for line in f)


def finish(served: Served) -> dict[str, Any]:
    """Unmount, wait for the server (which writes the durable state if the power was
    not cut before); what it counted."""
    for cmd in (["fusermount3", "-u", str(served.mnt)], ["fusermount3", "-uz", str(served.mnt)]):
        if not _mounted(served.mnt):  # (not ismount: a frozen mount answers EIO)
            break
        subprocess.run(cmd, capture_output=True, check=False, timeout=30)
    out, err = served.proc.communicate(timeout=60)
    if served.proc.returncode != 0:
        raise RuntimeError(f"the power-cut server failed: {err.decode()}")
    report: dict[str, Any] = json.loads(out)
    return report


@dataclass
class Outcome:
    """One run of a command under a power cut."""

    cut_at: int
    ops: int  # mutating operations counted (up to the cut)
    cut: bool  # cut during the command (else at its end)
    log: list[tuple[str, str]]  # the mutating operations counted: what, on what (fsyncs)
    code: int  # the command's exit status (negative: killed)
    stderr: str
    state: Path  # the durable state, a plain directory


def run_cut(
    backing: Path,
    work: Path,
    cwd_rel: str,
    argv: list[str],
    env: dict[str, str],
    cut_at: int,
    variant: str = "lost",
    fsync_delay: float = 0,
) -> Outcome:
    """Run ``argv`` in ``MNT/cwd_rel``, ``backing`` served at ``MNT`` = ``work/mnt``, with
    the power cut before its ``cut_at``-th mutating operation (or after it ends).

    The durable state is then put at ``MNT`` (unmounted): what was written there,
    absolute paths in the repository's settings included, is read back where it was
    written, as after a reboot."""
    mnt, state = work / "mnt", work / "state"
    served = start(backing, mnt, state, cut_at, variant, fsync_delay)
    try:
        proc = subprocess.run(
            argv,
            cwd=mnt / cwd_rel,
            env=env,
            capture_output=True,
            start_new_session=True,  # its own process group: what the cut kills
            timeout=120,
            check=False,
        )
    finally:
        report = finish(served)
    os.rmdir(mnt)
    os.rename(state, mnt)
    return Outcome(
        cut_at,
        report["ops"],
        report["cut"],
        [tuple(x) for x in report["log"]],
        proc.returncode,
        proc.stderr.decode(),
        mnt,
    )


def walk_files(root: Path, skip: str = ".dvfs") -> Iterator[tuple[str, bytes]]:
    """Every regular file below ``root`` (not in ``skip``): relative path, bytes."""
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != skip)
        for f in sorted(files):
            p = Path(dirpath) / f
            if p.is_file() and not p.is_symlink():
                yield p.relative_to(root).as_posix(), p.read_bytes()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.powercut")
    parser.add_argument("--seeds", type=int, default=0, help="cut points per scenario")
    parser.add_argument("--scenario", action="append", default=[], help="only these")
    parser.add_argument("--data", choices=("lost", "kept", "names"), default="lost", help="variant")
    parser.add_argument("--fsync-delay", type=float, default=0, help="seconds")
    sub = parser.add_subparsers(dest="cmd")
    s = sub.add_parser("serve")
    s.add_argument("backing", type=Path)
    s.add_argument("mnt", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--cut-at", type=int, default=0)
    s.add_argument("--variant", choices=("lost", "kept", "names"), default="lost")
    s.add_argument("--fsync-delay", type=float, default=0)
    args = parser.parse_args(argv)
    if args.cmd == "serve":
        print(
            json.dumps(
                serve(args.backing, args.mnt, args.out, args.cut_at, args.variant, args.fsync_delay)
            )
        )
        return 0
    from tests import test_powercut  # the scenarios

    return test_powercut.run_seeds(max(args.seeds, 1), args.scenario, args.data, args.fsync_delay)


if __name__ == "__main__":
    sys.exit(main())
