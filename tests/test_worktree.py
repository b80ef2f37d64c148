"""MNT as a writable working tree: POSIX semantics, ``dvfs status MNT`` and ``dvfs snapshot``.

Every test mounts a small repository writable, changes MNT through the kernel and
makes the same changes to a plain copy of the branch head on local disk
(``Worktree.expected``); where the two may differ at all (errnos, what a read
returns) both sides' observations are compared, so MNT is held to what a local
filesystem does. A test ends with ``dvfs snapshot``, a comparison of the new
``.versions/vN`` (and MNT itself) with the expected tree, and ``dvfs fsck``.

The helpers and the ``wt`` fixture are shared with ``test_worktree_tools.py``.
"""

from __future__ import annotations

import ctypes
import errno
import mmap
import os
import random
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from daemon.overlay import COMPACT_ABOVE
from tests.support.cli import (
    Result,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    fsck_clean,
    git,
)
from tests.support.mount import MTIME, Mount, commit, dvfs, stop, write
from tests.support.mount import own_overlay_mounted as mounted
from tests.support.trees import tree_of
from vfs.errors import DvfsError
from vfs.mount import control
from vfs.repo.repository import Repository

MiB = 1024 * 1024
BIG = random.Random(5).randbytes(3 * MiB + 123)  # several chunks
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_libc = ctypes.CDLL(None, use_errno=True)

# -------------------------------------------------------------------------------- helpers


def renameat2(src: Path, dst: Path, flags: int) -> None:
    """rename(2) with flags (RENAME_NOREPLACE, RENAME_EXCHANGE), which os.rename lacks."""
    if _libc.renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), str(src))


def errno_of(fn: Callable[..., object], *args: Any, **kw: Any) -> int:
    """0 if ``fn(*args)`` succeeds, else the errno it failed with."""
    try:
        fn(*args, **kw)
    except OSError as exc:
        return exc.errno or -1
    return 0


def assert_same_tree(got: Path, want: Path, *, mtimes: bool = False) -> None:
    """``got`` holds what ``want`` holds (see tree_of); the message names the differences."""
    a, b = tree_of(got, mtimes=mtimes), tree_of(want, mtimes=mtimes)
    if a != b:
        only_got = sorted(set(a) - set(b))[:10]
        only_want = sorted(set(b) - set(a))[:10]
        differ = [(k, a[k], b[k]) for k in sorted(set(a) & set(b)) if a[k] != b[k]][:10]
        raise AssertionError(
            f"{got} differs from {want}:\n only in {got}: {only_got}\n"
            f" only in {want}: {only_want}\n different: {differ}"
        )


SNAPSHOT_LINE = re.compile(
    r"^v(\d+) ([0-9a-f]{10})(?: \(tag \S+\))? on (\S+): (\d+) files, .+ \((\d+) hashed\) - (.*)$"
)


@dataclass
class Worktree:
    """A repository mounted writable at ``mnt``, and the tree its next version must be."""

    repo: Path
    mnt: Path
    home: Path
    expected: Path  # a local copy of the branch head, changed like MNT
    mount: Mount

    @property
    def data(self) -> Path:
        return self.mnt / "data"

    @property
    def local(self) -> Path:
        return self.expected / "data"

    def dvfs(self, *args: str, timeout: float = 120) -> Result:
        return dvfs(self.repo, self.home, *args, timeout=timeout)

    def snapshot(self, message: str, *extra: str) -> int:
        """``dvfs snapshot MNT -m MESSAGE``; the new version's number (checks the line)."""
        r = assert_ok(self.dvfs("snapshot", str(self.mnt), "-m", message, *extra))
        m = SNAPSHOT_LINE.match(r.out.strip())
        assert m is not None, str(r)
        assert m.group(6) == message
        n = int(m.group(1))
        assert (self.mnt / ".versions" / f"v{n}").is_dir()  # there at once
        return n

    def status(self) -> dict[str, Any]:
        got: dict[str, Any] = assert_ok(self.dvfs("status", str(self.mnt), "--json")).json()
        return got

    def check(self, n: int, *, mtimes: bool = False) -> None:
        """Version ``n`` and MNT both hold the expected tree, and fsck is clean."""
        assert_same_tree(self.mnt / ".versions" / f"v{n}", self.expected, mtimes=mtimes)
        assert_same_tree(self.mnt, self.expected, mtimes=mtimes)
        fsck_clean(self.repo)


def build_repo(root: Path) -> None:
    """One version of data/: files of several modes, a multi-chunk file, a link, subdirs."""
    repo = Repository.init(root)
    write(root, "data/a.txt", b"alpha\n")
    write(root, "data/big.bin", BIG)
    write(root, "data/run.sh", b"#!/bin/sh\necho hi\n", 0o755)
    write(root, "data/ro.txt", b"read only\n", 0o444)
    write(root, "data/sub/b.txt", b"bravo\n")
    write(root, "data/sub/deep/c.txt", b"charlie\n")
    write(root, "data/dir2/x.txt", b"x-ray\n")
    write(root, "data/dir2/y.txt", b"yankee\n")
    os.symlink("a.txt", root / "data" / "link")
    os.utime(root / "data" / "link", (MTIME, MTIME), follow_symlinks=False)
    commit(repo, "base")


@pytest.fixture(name="wt")
def wt_fixture(tmp_path: Path) -> Iterator[Worktree]:
    """The base repository mounted writable, and a local copy of its head."""
    root = tmp_path / "repo"
    build_repo(root)
    expected = tmp_path / "expected"
    expected.mkdir()
    shutil.copytree(root / "data", expected / "data", symlinks=True)
    home = tmp_path / "home"
    with mounted(str(root), tmp_path / "mnt", home) as m:
        yield Worktree(root, m.path, home, expected, m)


def both(wt: Worktree, fn: Callable[[Path], list[Any]]) -> list[Any]:
    """Run ``fn`` on MNT/data and on the local copy; they must observe the same."""
    want = fn(wt.local)
    got = fn(wt.data)
    assert got == want
    return got


# ------------------------------------------------------------------------- file contents


def file_ops(d: Path) -> list[Any]:
    """Creating, opening with every flag, writing anywhere, truncating, unlinking."""
    seen: list[Any] = []
    # create, then O_EXCL on the existing name
    fd = os.open(d / "new.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    os.write(fd, b"brand new\n")
    os.fsync(fd)
    os.close(fd)
    seen.append(errno_of(os.open, d / "new.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL))
    seen.append(errno_of(os.open, d / "a.txt", os.O_RDONLY | os.O_CREAT | os.O_EXCL))
    # O_TRUNC of a file of the version
    with open(d / "a.txt", "wb") as f:
        f.write(b"short")
    # O_APPEND: every write lands at the end, whatever the offset
    fd = os.open(d / "sub" / "b.txt", os.O_WRONLY | os.O_APPEND)
    os.write(fd, b"one\n")
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, b"two\n")
    os.close(fd)
    # random-offset writes into a multi-chunk file: inside, across the end, past it
    fd = os.open(d / "big.bin", os.O_RDWR)
    os.pwrite(fd, b"M" * 5000, MiB + 5)
    os.pwrite(fd, b"E" * 10, len(BIG) - 3)
    os.pwrite(fd, b"H", len(BIG) + 100_000)  # leaves a hole that reads as zeros
    seen.append(os.fstat(fd).st_size)
    seen.append(os.pread(fd, 20, len(BIG) - 5))
    seen.append(os.pread(fd, 4, len(BIG) + 50_000))
    os.fsync(fd)
    os.close(fd)
    # a reader opened before the first write sees the written data
    reader = os.open(d / "dir2" / "x.txt", os.O_RDONLY)
    with open(d / "dir2" / "x.txt", "r+b") as f:
        f.seek(2)
        f.write(b"Z")
    seen.append(os.pread(reader, 100, 0))
    os.close(reader)
    # truncate by path (a file of the version), ftruncate up and down, truncate to 0
    os.truncate(d / "run.sh", 5)
    fd = os.open(d / "new.txt", os.O_RDWR)
    os.ftruncate(fd, 10_000)
    seen.append(os.pread(fd, 16, 9_990))
    os.ftruncate(fd, 3)
    os.close(fd)
    os.truncate(d / "dir2" / "y.txt", 0)
    # unlink: of the version, of a new file while open (still readable), errors
    os.unlink(d / "ro.txt")
    fd = os.open(d / "tmp.txt", os.O_RDWR | os.O_CREAT, 0o600)
    os.write(fd, b"soon gone")
    os.unlink(d / "tmp.txt")
    seen.append(os.pread(fd, 100, 0))
    os.close(fd)
    seen.append(errno_of(os.unlink, d / "ro.txt"))
    seen.append(errno_of(os.unlink, d / "sub"))
    seen.append(errno_of(os.open, d / "missing" / "f", os.O_WRONLY | os.O_CREAT))
    # a shared writable mapping, written back by msync
    fd = os.open(d / "mapped.bin", os.O_RDWR | os.O_CREAT, 0o644)
    os.ftruncate(fd, 3 * 4096)
    with mmap.mmap(fd, 3 * 4096) as m:
        m[4000:4200] = b"m" * 200
        m.flush()
    os.close(fd)
    seen.append(sorted(os.listdir(d)))
    return seen


def test_files_are_created_written_truncated_and_unlinked_as_on_disk(wt: Worktree) -> None:
    both(wt, file_ops)
    assert (wt.data / "big.bin").read_bytes() == (wt.local / "big.bin").read_bytes()
    # every change lands in the version; what was not touched is shared with v1
    assert wt.snapshot("file changes") == 2
    wt.check(2)
    assert (wt.mnt / ".versions" / "v1" / "data" / "a.txt").read_bytes() == b"alpha\n"
    assert (wt.mnt / ".versions" / "v1" / "data" / "big.bin").read_bytes() == BIG


# ---------------------------------------------------------------------------- namespace


def namespace_ops(d: Path) -> list[Any]:
    """mkdir, rmdir, rename in all its forms, symlinks, chmod and utime."""
    seen: list[Any] = []
    os.mkdir(d / "d1")
    os.mkdir(d / "d1" / "e1", 0o700)
    os.mkdir(d / "keep")  # stays empty: versions record empty directories
    (d / "d1" / "f.txt").write_bytes(b"in d1\n")
    seen.append(errno_of(os.mkdir, d / "sub"))
    # rmdir: only empty directories
    seen.append(errno_of(os.rmdir, d / "sub"))
    seen.append(errno_of(os.rmdir, d / "d1"))
    seen.append(errno_of(os.rmdir, d / "a.txt"))
    seen.append(errno_of(os.rmdir, d / "nope"))
    os.rmdir(d / "d1" / "e1")
    os.unlink(d / "sub" / "deep" / "c.txt")
    os.rmdir(d / "sub" / "deep")  # a directory of the version, emptied
    # rename files: to a new name, over an existing file, across directories
    os.rename(d / "a.txt", d / "a2.txt")
    os.rename(d / "d1" / "f.txt", d / "run.sh")  # replaces a file of the version
    os.rename(d / "dir2" / "x.txt", d / "sub" / "b.txt")
    # rename directories: over an empty directory, refused over a non-empty one
    os.mkdir(d / "target")
    os.rename(d / "dir2", d / "target")
    os.mkdir(d / "full")
    (d / "full" / "z").write_bytes(b"z")
    seen.append(errno_of(os.rename, d / "target", d / "full"))
    seen.append(errno_of(os.rename, d / "a2.txt", d / "full"))
    seen.append(errno_of(os.rename, d / "full", d / "a2.txt"))
    seen.append(errno_of(os.rename, d / "sub", d / "sub" / "inside"))
    seen.append(errno_of(os.rename, d / "nope", d / "nope2"))
    # RENAME_NOREPLACE: refused over anything, a plain rename otherwise
    seen.append(errno_of(renameat2, d / "big.bin", d / "a2.txt", RENAME_NOREPLACE))
    seen.append(errno_of(renameat2, d / "full", d / "target", RENAME_NOREPLACE))
    renameat2(d / "full", d / "full2", RENAME_NOREPLACE)
    # a renamed directory keeps its content and takes changes at its new place
    (d / "full2" / "z").write_bytes(b"zz")
    (d / "target" / "y.txt").write_bytes(b"yankee 2\n")
    # symlinks: relative, to a directory, dangling, absolute
    os.symlink("a2.txt", d / "l1")
    os.symlink("target", d / "ldir")
    os.symlink("/nowhere/at/all", d / "dangling")
    seen.append(errno_of(os.symlink, "x", d / "l1"))
    seen.append([os.readlink(d / n) for n in ("l1", "ldir", "dangling", "link")])
    seen.append(errno_of(os.readlink, d / "a2.txt"))
    seen.append((d / "ldir" / "y.txt").read_bytes())
    os.rename(d / "link", d / "sub" / "link")  # now dangling: the target is relative
    seen.append(os.path.exists(d / "sub" / "link"))
    # chmod and utime, of version files and new ones
    os.chmod(d / "big.bin", 0o600)
    os.chmod(d / "sub" / "b.txt", 0o755)
    os.chmod(d / "target", 0o700)
    os.utime(d / "a2.txt", ns=(MTIME * 10**9 + 7, MTIME * 10**9 + 7))
    os.utime(d / "full2" / "z", ns=(123_456_789_000, 123_456_789_000))
    seen.append(oct(os.stat(d / "target").st_mode))
    seen.append(os.stat(d / "a2.txt").st_mtime_ns)
    for dirpath, dirnames, filenames in sorted(os.walk(d)):
        seen.append((os.path.relpath(dirpath, d), sorted(dirnames), sorted(filenames)))
    return seen


def test_directories_renames_links_and_attributes_as_on_disk(wt: Worktree) -> None:
    both(wt, namespace_ops)
    assert wt.snapshot("namespace changes") == 2
    wt.check(2)
    v2 = wt.mnt / ".versions" / "v2" / "data"
    assert os.stat(v2 / "a2.txt").st_mtime_ns == MTIME * 10**9 + 7
    assert os.stat(v2 / "full2" / "z").st_mtime_ns == 123_456_789_000
    assert (v2 / "keep").is_dir() and os.listdir(v2 / "keep") == []


def test_unsupported_operations_answer_an_errno_and_change_nothing(wt: Worktree) -> None:
    """What the daemon's overlay still refuses (README lists it); hard links, special
    files and owners are in ``test_worktree_posix.py``."""
    f = wt.data / "a.txt"
    assert errno_of(os.setxattr, f, "user.x", b"1") == errno.ENOTSUP
    assert errno_of(os.removexattr, f, "user.x") == errno.ENOTSUP
    assert errno_of(os.getxattr, f, "user.x") == errno.ENOTSUP
    assert errno_of(os.listxattr, f) == errno.ENOTSUP
    assert errno_of(renameat2, f, wt.data / "run.sh", RENAME_EXCHANGE) == errno.EINVAL
    st = os.statvfs(wt.mnt)
    assert st.f_bsize > 0 and st.f_blocks > 0 and st.f_namemax == 255
    assert os.statvfs(wt.data).f_bsize == st.f_bsize  # the same filesystem everywhere
    assert sorted(os.listdir(wt.data)) == sorted(os.listdir(wt.local))
    # nothing changed, so there is nothing to snapshot: one line, exit 1
    assert wt.status()["added"] == []
    r = wt.dvfs("snapshot", str(wt.mnt), "-m", "nothing")
    assert_error(r, "nothing to snapshot")
    assert not (wt.mnt / ".versions" / "v2").exists()
    assert_same_tree(wt.mnt, wt.expected)
    fsck_clean(wt.repo)


def test_versions_cannot_be_created_removed_renamed_or_written(wt: Worktree) -> None:
    vs = wt.mnt / ".versions"
    v1 = vs / "v1" / "data"
    assert ".versions" not in os.listdir(wt.mnt)
    # the name .versions at the top is taken
    assert errno_of(os.mkdir, vs) == errno.EEXIST
    assert errno_of(os.open, vs, os.O_WRONLY | os.O_CREAT | os.O_EXCL) == errno.EEXIST
    assert errno_of(os.symlink, "data", vs) == errno.EEXIST
    assert errno_of(os.rmdir, vs) == errno.EPERM
    assert errno_of(os.unlink, vs) in (errno.EISDIR, errno.EPERM)
    assert errno_of(os.rename, vs, wt.mnt / "old") == errno.EPERM
    (wt.data / "moveme").write_bytes(b"m")
    os.mkdir(wt.data / "emptydir")
    assert errno_of(os.rename, wt.data / "emptydir", vs) == errno.EPERM
    assert errno_of(os.rename, wt.data / "moveme", vs) in (errno.EISDIR, errno.EPERM)
    # below it, every write is EROFS
    writes: list[tuple[str, Callable[[], object]]] = [
        ("open for writing", lambda: os.open(v1 / "a.txt", os.O_WRONLY)),
        ("create", lambda: os.open(v1 / "new", os.O_WRONLY | os.O_CREAT)),
        ("truncate", lambda: os.truncate(v1 / "a.txt", 0)),
        ("mkdir", lambda: os.mkdir(v1 / "d")),
        ("mkdir in .versions", lambda: os.mkdir(vs / "v9")),
        ("unlink", lambda: os.unlink(v1 / "a.txt")),
        ("rmdir", lambda: os.rmdir(v1 / "sub" / "deep")),
        ("symlink", lambda: os.symlink("x", v1 / "l")),
        ("chmod", lambda: os.chmod(v1 / "a.txt", 0o600)),
        ("utime", lambda: os.utime(v1 / "a.txt", (1, 1))),
        ("setxattr", lambda: os.setxattr(v1 / "a.txt", "user.x", b"1")),
        ("rename inside", lambda: os.rename(v1 / "a.txt", v1 / "b")),
        ("rename out", lambda: os.rename(v1 / "a.txt", wt.data / "stolen")),
        ("rename in", lambda: os.rename(wt.data / "moveme", v1 / "moveme")),
        ("link", lambda: os.link(wt.data / "moveme", v1 / "hard")),
    ]
    for what, fn in writes:
        assert errno_of(fn) == errno.EROFS, what
    # a .versions below the top is an ordinary name
    os.mkdir(wt.data / ".versions")
    (wt.data / ".versions" / "notes").write_bytes(b"mine\n")
    os.rmdir(wt.data / "emptydir")
    os.makedirs(wt.local / ".versions")
    (wt.local / ".versions" / "notes").write_bytes(b"mine\n")
    shutil.copy2(wt.data / "moveme", wt.local / "moveme")
    assert wt.snapshot("dot versions below the top") == 2
    wt.check(2)
    assert (vs / "v1" / "data" / "a.txt").read_bytes() == b"alpha\n"


# ---------------------------------------------------------------- status and snapshot


def test_status_lists_added_modified_deleted_and_renamed(wt: Worktree) -> None:
    d = wt.data
    (d / "a.txt").write_bytes(b"changed\n")
    os.chmod(d / "run.sh", 0o700)  # a mode change is a modification too
    (d / "new.txt").write_bytes(b"new\n")
    os.mkdir(d / "empty")
    os.makedirs(d / "fresh" / "inner")
    (d / "fresh" / "inner" / "f.txt").write_bytes(b"f\n")
    os.unlink(d / "ro.txt")
    shutil.rmtree(d / "dir2")
    os.rename(d / "sub" / "b.txt", d / "b2.txt")
    os.rename(d / "sub" / "deep", d / "deep2")
    (d / "deep2" / "c.txt").write_bytes(b"charlie 2\n")  # renamed, then modified
    os.rename(d / "big.bin", d / "fresh" / "big.bin")  # into a new directory
    got = wt.status()
    assert got["branch"] == "main" and got["base_version"] == 1
    assert got["added"] == ["data/empty/", "data/fresh/", "data/new.txt"]
    assert got["modified"] == ["data/a.txt", "data/deep2/c.txt", "data/run.sh"]
    assert got["deleted"] == ["data/dir2/", "data/ro.txt"]
    assert sorted(got["renamed"]) == [
        ["data/big.bin", "data/fresh/big.bin"],
        ["data/sub/b.txt", "data/b2.txt"],
        ["data/sub/deep/", "data/deep2/"],
    ]
    text = assert_ok(wt.dvfs("status", str(wt.mnt))).out.splitlines()
    assert text[0] == "Working tree of branch main over v1"
    assert "  renamed:  data/sub/deep/ -> data/deep2/" in text
    assert "  added:    data/fresh/" in text
    assert "  modified: data/run.sh" in text
    assert "  deleted:  data/dir2/" in text
    assert len(text) == 2 + 3 + 3 + 3 + 2
    # the expected tree, for the comparison after the snapshot
    e = wt.local
    (e / "a.txt").write_bytes(b"changed\n")
    os.chmod(e / "run.sh", 0o700)
    (e / "new.txt").write_bytes(b"new\n")
    os.mkdir(e / "empty")
    os.makedirs(e / "fresh" / "inner")
    (e / "fresh" / "inner" / "f.txt").write_bytes(b"f\n")
    os.unlink(e / "ro.txt")
    shutil.rmtree(e / "dir2")
    os.rename(e / "sub" / "b.txt", e / "b2.txt")
    os.rename(e / "sub" / "deep", e / "deep2")
    (e / "deep2" / "c.txt").write_bytes(b"charlie 2\n")
    os.rename(e / "big.bin", e / "fresh" / "big.bin")
    assert wt.snapshot("status") == 2
    wt.check(2)
    clean = wt.status()
    assert [clean[k] for k in ("added", "modified", "deleted", "renamed")] == [[], [], [], []]
    assert clean["base_version"] == 2
    out = assert_ok(wt.dvfs("status", str(wt.mnt))).out.splitlines()
    assert out == [
        "Working tree of branch main over v2",
        "Nothing to snapshot, working tree clean.",
    ]
    r = wt.dvfs("snapshot", str(wt.mnt), "-m", "again")
    assert_error(r, "nothing to snapshot")
    assert r.out == ""
    fsck_clean(wt.repo)


def test_status_of_directories_removed_and_made_again(wt: Worktree) -> None:
    for root in (wt.data, wt.local):
        shutil.rmtree(root / "sub")  # made again, one level deeper too
        os.makedirs(root / "sub" / "deep")
        (root / "sub" / "deep" / "c.txt").write_bytes(b"charlie, again\n")
        (root / "sub" / "new").write_bytes(b"new\n")
        os.unlink(root / "ro.txt")  # a file that became a directory
        os.mkdir(root / "ro.txt")
    got = wt.status()
    assert got["added"] == ["data/ro.txt/", "data/sub/new"]
    assert got["modified"] == ["data/sub/deep/c.txt"]
    assert got["deleted"] == ["data/ro.txt", "data/sub/b.txt"]
    assert got["renamed"] == []
    assert wt.snapshot("made again") == 2
    wt.check(2)


def test_snapshot_in_a_git_work_tree_links_the_commit_and_rewrites_dvfs_lock(
    wt: Worktree,
) -> None:
    # The repository lies in a git work tree: a snapshot records git's HEAD commit
    # and rewrites dvfs.lock, as `dvfs commit` does (vfs.repo.record).
    write(wt.repo, "README.md", b"code\n")
    git(wt.repo, "init", "-q")
    git(wt.repo, "add", "README.md")
    git(wt.repo, "commit", "-q", "-m", "code")
    g0 = git(wt.repo, "rev-parse", "HEAD")
    for root in (wt.data, wt.local):
        (root / "a.txt").write_bytes(b"changed in the mount\n")
    assert wt.snapshot("in git") == 2
    shown = assert_ok(wt.dvfs("show", "v2", "--format", "json")).json()
    assert (shown["git_commit"], shown["git_dirty"]) == (g0, False)
    lock = yaml.safe_load((wt.repo / "dvfs.lock").read_text())
    assert lock == {"branch": "main", "version": "v2", "id": shown["id"]}
    wt.check(2)


def test_snapshot_records_tag_params_and_refuses_when_the_branch_moved(wt: Worktree) -> None:
    (wt.data / "a.txt").write_bytes(b"tagged\n")
    r = assert_ok(
        wt.dvfs(
            "snapshot", str(wt.mnt), "-m", "with extras", "--tag", "t1",
            "--param", "lr=0.5", "--param", "name=run", "--json",
        )
    )  # fmt: skip
    got = r.json()
    assert got["version"] == "v2" and got["branch"] == "main" and got["tag"] == "t1"
    assert got["hashed"] == 1
    assert (wt.mnt / ".versions" / "tags" / "t1" / "data" / "a.txt").read_bytes() == b"tagged\n"
    shown = assert_ok(wt.dvfs("show", "t1", "--format", "json")).json()
    assert shown["parameters"] == {"lr": 0.5, "name": "run"}
    assert shown["message"] == "with extras"
    assert shown["id"] == got["id"]
    # the snapshot's ref changes are audit entries, in an intact chain
    entries = assert_ok(wt.dvfs("audit", "--json")).json()
    made = {(e["op"], e["ref"]) for e in entries if e["new"] == got["id"]}
    assert made == {("branch move", "refs/heads/main"), ("tag create", "refs/tags/t1")}
    typed = ["dvfs", "snapshot", str(wt.mnt), "-m", "with extras", "--tag", "t1"]
    assert all(e["cmd"][: len(typed)] == typed for e in entries if e["new"] == got["id"])
    assert assert_ok(wt.dvfs("audit", "verify", "--json")).json()["intact"] is True
    # the branch moves under the mount (a commit from the repository's own working tree)
    (wt.data / "b.new").write_bytes(b"pending\n")
    assert_ok(wt.dvfs("checkout", "main", "--force"))
    write(wt.repo, "data/other.txt", b"from the cli\n")
    assert_ok(wt.dvfs("add", "data"))
    assert_ok(wt.dvfs("commit", "-m", "cli commit"))
    # status says so before a snapshot is refused for it
    moved = wt.status()
    assert (moved["base_version"], moved["head_version"]) == (2, 3)
    said = assert_ok(wt.dvfs("status", str(wt.mnt))).out
    assert "The branch has moved to v3 since this working tree began" in said
    assert f"dvfs snapshot {wt.mnt} -m MSG --branch NEW" in said
    r = wt.dvfs("snapshot", str(wt.mnt), "-m", "late")
    assert_error(r, "main moved", "--branch")
    assert wt.status()["added"] == ["data/b.new"]  # the working tree is kept
    assert (wt.data / "b.new").read_bytes() == b"pending\n"
    r = assert_ok(wt.dvfs("snapshot", str(wt.mnt), "-m", "on the side", "--branch", "side"))
    assert " on side: " in r.out
    assert "head" not in wt.status()  # the new branch is where its working tree began
    side = wt.mnt / ".versions" / "branches" / "side" / "data"
    assert (side / "b.new").read_bytes() == b"pending\n"
    assert (side / "a.txt").read_bytes() == b"tagged\n"
    assert not (side / "other.txt").exists()
    fsck_clean(wt.repo)


def test_a_snapshot_is_audited_as_the_command_that_asked_for_it(wt: Worktree) -> None:
    """The daemon moves the branch; the audit entry names the client's command line
    (or ``dvfs snapshot MNT`` for a request without one), never the daemon's argv."""
    for root in (wt.data, wt.local):
        (root / "a.txt").write_bytes(b"one\n")
    with pytest.raises(DvfsError, match=r"bad request \(cmd\)"):
        control.call(str(wt.mnt), {"op": "snapshot", "message": "m", "cmd": "rm -rf /"})
    got = control.call(str(wt.mnt), {"op": "snapshot", "message": "no cmd"})
    assert got["ok"] and got["version"] == "v2"
    entry = assert_ok(wt.dvfs("audit", "--json")).json()[-1]
    assert (entry["op"], entry["new"]) == ("branch move", got["id"])
    assert entry["cmd"] == ["dvfs", "snapshot", os.path.realpath(wt.mnt)]
    assert assert_ok(wt.dvfs("audit", "verify", "--json")).json()["intact"] is True
    wt.check(2)


def test_the_repository_catches_up_with_a_snapshot_before_it_commits(wt: Worktree) -> None:
    """A snapshot moves the branch past the repository's own working tree (still at v1).

    A commit there would silently undo the snapshot, so it is refused; `dvfs switch`
    brings the snapshot's files in (and its empty directories) and carries what was
    staged meanwhile.
    """
    (wt.data / "a.txt").write_bytes(b"from the mount\n")
    (wt.data / "sub" / "b.txt").unlink()
    os.makedirs(wt.data / "made" / "empty")
    assert wt.snapshot("from the mount") == 2
    write(wt.repo, "data/local.txt", b"made in the repository\n")
    assert_ok(wt.dvfs("add", "data/local.txt"))
    st = assert_ok(wt.dvfs("status", "--json")).json()
    assert st["behind"] == "v1" and [c["path"] for c in st["staged"]] == ["data/local.txt"]
    r = wt.dvfs("commit", "-m", "would undo v2")
    assert_error(r, "main moved to v2", "dvfs switch main")
    assert_ok(wt.dvfs("switch", "main"))
    assert (wt.repo / "data" / "a.txt").read_bytes() == b"from the mount\n"
    assert not (wt.repo / "data" / "sub" / "b.txt").exists()
    assert os.listdir(wt.repo / "data" / "made" / "empty") == []
    assert (wt.repo / "data" / "local.txt").read_bytes() == b"made in the repository\n"
    r = assert_ok(wt.dvfs("commit", "-m", "on top of v2"))
    assert r.out.startswith("v3 ")
    assert assert_ok(wt.dvfs("cat", "v3:data/a.txt")).out == "from the mount\n"
    assert assert_ok(wt.dvfs("cat", "v3:data/local.txt")).out == "made in the repository\n"
    # diff between versions shows the empty directory the snapshot recorded, and that a
    # commit from the staging index (files and links only) does not keep it
    made = [c for c in assert_ok(wt.dvfs("diff", "v1", "v2", "--json")).json()["changes"]
            if c["kind"] == "dir"]  # fmt: skip
    assert made == [{"status": "added", "path": "data/made/empty", "kind": "dir",
                     "old_size": None, "new_size": 0}]  # fmt: skip
    assert (
        "added:    data/made/empty/ (empty directory)" in assert_ok(wt.dvfs("diff", "v1", "v2")).out
    )
    assert (
        "removed:  data/made/empty/ (empty directory)" in assert_ok(wt.dvfs("diff", "v2", "v3")).out
    )
    fsck_clean(wt.repo)


def test_working_tree_survives_unmount_and_remount(wt: Worktree) -> None:
    def change(d: Path) -> list[Any]:
        with open(d / "big.bin", "r+b") as f:
            f.seek(2 * MiB)
            f.write(b"kept across mounts")
            f.flush()
            os.fsync(f.fileno())
        (d / "a.txt").write_bytes(b"a, remounted\n")
        os.makedirs(d / "n1" / "n2")
        (d / "n1" / "n2" / "n.txt").write_bytes(b"nested\n")
        os.mkdir(d / "hollow")
        os.unlink(d / "ro.txt")
        os.rename(d / "sub", d / "sub-moved")
        os.rename(d / "dir2" / "x.txt", d / "x-moved.txt")
        os.chmod(d / "run.sh", 0o700)
        os.symlink("n1/n2/n.txt", d / "ln")
        return []

    both(wt, change)
    before = wt.status()
    work = wt.repo / ".dvfs" / "worktrees" / "main"
    assert (work / "state").is_file() and (work / "data").is_dir()
    assert stop(wt.mount) is not None
    assert not os.path.ismount(wt.mnt)
    with mounted(str(wt.repo), wt.mnt, wt.home) as again:
        wt.mount = again
        assert wt.status() == before
        assert_same_tree(wt.mnt, wt.expected)
        (wt.data / "after.txt").write_bytes(b"written after the remount\n")
        (wt.local / "after.txt").write_bytes(b"written after the remount\n")
        assert wt.snapshot("after a remount") == 2
        wt.check(2)
    with mounted(str(wt.repo), wt.mnt, wt.home) as third:  # clean over v2 now
        wt.mount = third
        clean = wt.status()
        assert clean["base_version"] == 2 and clean["added"] == clean["modified"] == []
        assert_same_tree(wt.mnt, wt.expected)
    fsck_clean(wt.repo)


def test_a_long_journal_is_compacted_at_the_next_mount(wt: Worktree) -> None:
    """Churn (files made, renamed over, deleted) grows the journal; a remount shrinks it.

    The working tree after the remount is the same, and so is what a snapshot records.
    """
    work = wt.repo / ".dvfs" / "worktrees" / "main"

    def churn(d: Path) -> list[Any]:
        os.makedirs(d / "logs" / "old")
        for i in range(1500):  # a journal of about 370 KiB: past COMPACT_ABOVE (256 KiB)
            name = f"f{i % 40}"
            (d / "logs" / f"{name}.tmp").write_bytes(b"%d\n" % i)
            os.rename(d / "logs" / f"{name}.tmp", d / "logs" / name)
            if i % 3 == 0:
                os.unlink(d / "logs" / name)
            if i % 500 == 0:
                os.rename(d / "logs" / "old", d / f"old{i}")
                os.mkdir(d / "logs" / "old")
        return []

    both(wt, churn)
    before = wt.status()
    journal = [p for p in work.iterdir() if p.name.startswith("journal.")]
    assert len(journal) == 1 and journal[0].stat().st_size > COMPACT_ABOVE
    long_size = journal[0].stat().st_size
    assert stop(wt.mount) is not None
    with mounted(str(wt.repo), wt.mnt, wt.home) as again:
        wt.mount = again
        now = [p for p in work.iterdir() if p.name.startswith("journal.")]
        assert len(now) == 1 and now[0].stat().st_size * 20 < long_size
        assert wt.status() == before
        assert_same_tree(wt.mnt, wt.expected)
        assert wt.snapshot("after the churn") == 2
        wt.check(2)
    fsck_clean(wt.repo)


def test_a_file_open_for_writing_across_a_snapshot(wt: Worktree) -> None:
    new = os.open(wt.data / "log.txt", os.O_WRONLY | os.O_CREAT, 0o644)
    old = os.open(wt.data / "a.txt", os.O_WRONLY | os.O_APPEND)
    try:
        os.write(new, b"first\n")
        os.write(old, b"first\n")
        assert wt.snapshot("while open") == 2
        v2 = wt.mnt / ".versions" / "v2" / "data"
        assert (v2 / "log.txt").read_bytes() == b"first\n"
        assert (v2 / "a.txt").read_bytes() == b"alpha\nfirst\n"
        os.write(new, b"second\n")
        os.write(old, b"second\n")
    finally:
        os.close(new)
        os.close(old)
    assert wt.status()["modified"] == ["data/a.txt", "data/log.txt"]
    assert wt.snapshot("after closing") == 3
    (wt.local / "log.txt").write_bytes(b"first\nsecond\n")
    os.chmod(wt.local / "log.txt", 0o644)
    (wt.local / "a.txt").write_bytes(b"alpha\nfirst\nsecond\n")
    wt.check(3)
    assert (wt.mnt / ".versions" / "v2" / "data" / "log.txt").read_bytes() == b"first\n"


def test_the_daemon_forgets_an_unchanged_tree_the_kernel_forgot(wt: Worktree) -> None:
    """Memory follows what the kernel holds: a walk of many files is not kept for ever."""

    def nodes() -> int:
        got: int = control.call(str(wt.mnt), {"op": "stats"})["nodes"]
        return got

    for d in (wt.data, wt.local):
        for i in range(400):
            write(d.parent, f"data/many/d{i % 8}/f{i:03d}", b"%d\n" % i)
    n = wt.snapshot("many files")
    assert stop(wt.mount) is not None
    with mounted(str(wt.repo), wt.mnt, wt.home) as again:  # a fresh daemon over v2
        wt.mount = again
        subprocess.run(["find", str(wt.mnt)], check=True, capture_output=True)
        walked = nodes()
        assert walked > 400
        deadline = time.monotonic() + 10
        while nodes() > walked // 4 and time.monotonic() < deadline:
            Path("/proc/sys/vm/drop_caches").write_text("2\n")  # the kernel forgets inodes
            time.sleep(0.2)
        assert nodes() <= walked // 4
        # what was forgotten is found again, and a change to it is recorded as before
        many = wt.data / "many" / "d7"
        assert (many / "f007").read_bytes() == b"7\n"
        for d in (wt.data, wt.local):
            (d / "many" / "d7" / "f007").write_bytes(b"seven\n")
        assert wt.status()["modified"] == ["data/many/d7/f007"]
        assert wt.snapshot("after forgetting") == n + 1
        wt.check(n + 1)


def test_every_kind_of_change_survives_a_remount(wt: Worktree) -> None:
    both(wt, file_ops)
    both(wt, namespace_ops)
    before, shown = wt.status(), tree_of(wt.mnt, mtimes=True)
    assert stop(wt.mount) is not None
    with mounted(str(wt.repo), wt.mnt, wt.home) as again:
        wt.mount = again
        assert wt.status() == before
        assert tree_of(wt.mnt, mtimes=True) == shown  # modes and mtimes too
        assert wt.snapshot("replayed") == 2
        wt.check(2)


def test_second_snapshot_builds_on_the_first(wt: Worktree) -> None:
    both(wt, namespace_ops)
    assert wt.snapshot("first") == 2
    v2 = tree_of(wt.mnt / ".versions" / "v2", mtimes=True)
    # the new base is v2: what v2 added is now renamed, modified or deleted, not added
    for root in (wt.data, wt.local):
        os.rename(root / "a2.txt", root / "a3.txt")
        (root / "full2" / "z").write_bytes(b"z again")
        os.rename(root / "target", root / "keep" / "target")
        shutil.rmtree(root / "sub")
        os.unlink(root / "l1")
    got = wt.status()
    assert sorted(got["renamed"]) == [
        ["data/a2.txt", "data/a3.txt"],
        ["data/target/", "data/keep/target/"],
    ]
    assert got["modified"] == ["data/full2/z"]
    assert got["deleted"] == ["data/l1", "data/sub/"]
    assert got["added"] == []
    assert wt.snapshot("second") == 3
    wt.check(3)
    assert tree_of(wt.mnt / ".versions" / "v2", mtimes=True) == v2  # v2 is as it was


def test_a_change_undone_leaves_nothing_to_snapshot(wt: Worktree) -> None:
    (wt.data / "tmp").write_bytes(b"scratch")
    os.mkdir(wt.data / "tmpdir")
    os.rename(wt.data / "a.txt", wt.data / "a.moved")
    os.unlink(wt.data / "tmp")
    os.rmdir(wt.data / "tmpdir")
    os.rename(wt.data / "a.moved", wt.data / "a.txt")
    r = wt.dvfs("snapshot", str(wt.mnt), "-m", "nothing")
    assert_error(r, "nothing to snapshot")
    assert not (wt.mnt / ".versions" / "v2").exists()
    assert_same_tree(wt.mnt, wt.expected, mtimes=True)
    fsck_clean(wt.repo)


def test_touch_sets_the_time_to_now_or_to_the_given_one(wt: Worktree) -> None:
    before = time.time_ns()
    for root in (wt.data, wt.local):  # a file of the version, a new one, a given time
        subprocess.run(["touch", str(root / "a.txt"), str(root / "new")], check=True)
        subprocess.run(["touch", "-m", "-d", "@1234567890", str(root / "run.sh")], check=True)
    for name in ("a.txt", "new"):
        assert before - 10**9 <= os.stat(wt.data / name).st_mtime_ns <= time.time_ns(), name
    assert os.stat(wt.data / "run.sh").st_mtime_ns == 1234567890 * 10**9
    n = wt.snapshot("touched")
    wt.check(n)
    v = wt.mnt / ".versions" / f"v{n}" / "data"
    assert os.stat(v / "run.sh").st_mtime_ns == 1234567890 * 10**9
    assert os.stat(v / "a.txt").st_mtime_ns == os.stat(wt.data / "a.txt").st_mtime_ns


def test_two_snapshots_at_once_and_mounts_that_take_none(wt: Worktree) -> None:
    reader = os.open(wt.data / "big.bin", os.O_RDONLY)  # still read after unlink and snapshot
    try:
        os.unlink(wt.data / "big.bin")
        os.unlink(wt.local / "big.bin")
        (wt.data / "n.txt").write_bytes(b"n\n")
        (wt.local / "n.txt").write_bytes(b"n\n")
        env = cli_env({"XDG_CACHE_HOME": str(wt.home)})
        procs = [
            subprocess.Popen(
                cli_command("snapshot", str(wt.mnt), "-m", f"race {i}"),
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(2)
        ]
        results = [
            Result(("snapshot",), p.returncode, out, err.decode())
            for p in procs
            for out, err in [p.communicate(timeout=60)]
        ]
        won = [r for r in results if r.code == 0]
        assert len(won) == 1, [str(r) for r in results]
        assert SNAPSHOT_LINE.match(won[0].out.strip())
        (lost,) = [r for r in results if r.code != 0]
        assert_error(lost, "nothing to snapshot")
        assert os.pread(reader, len(BIG) + 1, 0) == BIG
    finally:
        os.close(reader)
    wt.check(2)
    assert not (wt.mnt / ".versions" / "v3").exists()
    # snapshot and status need the mount point of a writable mount
    for args in (("snapshot", "-m", "x"), ("status",)):
        assert_error(
            wt.dvfs(args[0], str(wt.data), *args[1:]),
            "is inside the dvfs mount",
            "give its mount point",
        )
    with mounted(str(wt.repo), wt.mnt.parent / "ro", wt.home, "--read-only") as ro:
        assert errno_of((ro.path / "data" / "z").write_bytes, b"z") == errno.EROFS
        for args in (("snapshot", "-m", "x"), ("status",)):
            r = wt.dvfs(args[0], str(ro.path), *args[1:])
            assert_error(r, "read-only dvfs mount", "--read-only")
    fsck_clean(wt.repo)
