"""Bad input and faults: every one must end in one clear line and a consistent repository.

Each error is checked the same way (``assert_error``): a non-zero exit, exactly one
``dvfs: error:`` line saying what went wrong, and no traceback. Each test that
changes state ends with ``dvfs fsck`` finding nothing wrong.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import random
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import blake3
import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    add_in_process,
    assert_error,
    assert_ok,
    cli_env,
    commit_in_process,
    finish,
    git,
    go,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_python,
    spawn_ready,
    warnings_of,
)
from tests.support.data import rand
from tests.test_sync_faults import KILLED_AT_INDEX_SAVE
from vfs.ops.fsck import fsck
from vfs.ops.workflow import add
from vfs.repo.gitlink import read_lock
from vfs.repo.repository import Repository
from vfs.store.durable import is_tmp_leaf
from vfs.store.lock import repository_lock
from vfs.worktree.pools import Workers
from vfs.worktree.restore import LARGE_FILE

KiB = 1024
MiB = 1024 * KiB


def committed(repo: Repo, files: Mapping[str, bytes | str], message: str = "base") -> str:
    """Write ``files``, add and commit them; return the new version id.

    As processes: the tests of restore helpers and full disks take the store's layout
    as a ``dvfs add`` process makes it (one that forks a helper for small files, which
    a process with other threads, as the test's, does not)."""
    for rel, data in files.items():
        repo.write(rel, data)
    repo.ok("add", *sorted({rel.split("/")[0] for rel in files}))
    return repo.commit(message)


# ---------------------------------------------------------------------------------- where and what


NOT_A_REPO = "dvfs: error: not a dvfs repository (or any parent): run `dvfs init`"


@pytest.mark.parametrize(
    "args",
    [("status",), ("add", "x"), ("commit", "-m", "m"), ("cat", "HEAD:x"), ("checkout", "v1"),
     ("fsck",)],
    ids=lambda a: a[0],
)  # fmt: skip
def test_outside_a_repository(tmp_path: Path, args: tuple[str, ...]) -> None:
    (tmp_path / "x").write_text("x")
    r = run(tmp_path, *args)
    assert_error(r)
    assert r.err.strip() == NOT_A_REPO
    assert not (tmp_path / ".dvfs").exists()


def test_add_a_missing_path(repo: Repo) -> None:
    repo.write("d/real.txt", "here")
    repo.fail("add", "d/real.txt", "d/ghost.txt", fragments=("d/ghost.txt", "does not exist"),
              code=2)  # fmt: skip
    assert repo.status()["staged"] == []  # not even the file that does exist
    repo.ok("add", "d/real.txt")
    repo.ok("commit", "-m", "one")
    repo.fsck_clean()


def test_add_a_path_outside_the_repository(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours")
    repo.write("in.txt", "ours")
    for arg in (str(outside), "../outside.txt", "in.txt/../../outside.txt"):
        repo.fail("add", arg, fragments=(arg, "outside the repository"), code=2)
    repo.fail("add", ".dvfs/format", fragments=(".dvfs",), code=2)
    assert repo.status()["staged"] == []
    repo.ok("add", "in.txt")
    repo.ok("commit", "-m", "one")
    assert set(repo.show()["files"]) == {"in.txt"}
    repo.fsck_clean()


def test_a_path_into_the_repository_through_a_link_above_it(repo: Repo, tmp_path: Path) -> None:
    """A home directory reached through a link, or a shell's logical $PWD: an absolute
    path that enters the repository through a link outside it names the path inside,
    as git reads it; a link inside the repository is still never followed."""
    via = tmp_path / "via"
    via.symlink_to(repo.root)
    repo.write("d/a.txt", "a")
    os.symlink(repo.root / "d", repo.root / "inner")
    repo.ok("add", str(via / "d" / "a.txt"))
    assert [c["path"] for c in repo.status()["staged"]] == ["d/a.txt"]
    repo.fail("add", str(via / "inner" / "a.txt"), fragments=("symbolic link inner",), code=2)
    repo.fail("add", str(via / ".." / "outside.txt"), fragments=("outside the repository",),
              code=2)  # fmt: skip
    repo.ok("commit", "-m", "one")
    assert repo.cat("HEAD:d/a.txt") == b"a"
    repo.fsck_clean()


def test_fifo_socket_and_device_are_skipped_with_a_warning(repo: Repo) -> None:
    d = repo.root / "d"
    repo.write("d/ok.txt", "fine")
    os.mkfifo(d / "fifo")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(d / "sock"))
    os.mknod(d / "null", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    try:
        r = repo.ok("add", "d")
        assert r.out.startswith("staged 1 file")
        found = warnings_of(r)
        assert len(found) == 3, str(r)
        for name in ("d/fifo", "d/sock", "d/null"):
            assert any(name in w and "skipping" in w for w in found), (name, str(r))
        # Named directly: refused (as git refuses it), never a hang, nothing staged.
        for named, kind in (("d/fifo", "a FIFO"), ("d/sock", "a socket"), ("d/null", "a device")):
            repo.write("d/new.txt", "new")
            repo.fail("add", "d/new.txt", named, fragments=(f"{named} is {kind}",), code=2)
            (d / "new.txt").unlink()
        assert [c["path"] for c in repo.status()["staged"]] == ["d/ok.txt"]
        repo.ok("commit", "-m", "only the regular file")
        assert set(repo.show()["files"]) == {"d/ok.txt"}
        st = repo.status()
        assert st["untracked"] == [] and st["modified"] == []
    finally:
        sock.close()
    repo.fsck_clean()


def test_a_tracked_file_that_became_a_fifo_stages_its_removal(repo: Repo) -> None:
    repo.write("d/a.txt", "a")
    repo.write("d/b.txt", "b")
    add_in_process(repo, "d")
    repo.ok("commit", "-m", "one")
    (repo.root / "d/b.txt").unlink()
    os.mkfifo(repo.root / "d/b.txt")
    assert repo.status()["deleted"] == ["d/b.txt"]
    repo.ok("add", "d/b.txt")  # what status says to run
    assert [(c["status"], c["path"]) for c in repo.status()["staged"]] == [("removed", "d/b.txt")]
    repo.ok("commit", "-m", "two")
    assert set(repo.show()["files"]) == {"d/a.txt"}
    repo.fsck_clean()


class OpenWatch:
    """Whether a path is opened, from inotify's IN_OPEN (queued as the open happens)."""

    IN_OPEN = 0x20

    def __init__(self, path: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        assert self.fd >= 0 and self.libc.inotify_add_watch(
            self.fd, os.fsencode(path), self.IN_OPEN
        ) >= 0, ctypes.get_errno()  # fmt: skip

    def opened(self) -> bool:
        try:
            return bool(os.read(self.fd, 4096))
        except BlockingIOError:
            return False

    def close(self) -> None:
        os.close(self.fd)


def test_commit_all_stages_files_whose_directory_became_a_link_as_deleted(
    repo: Repo, tmp_path: Path
) -> None:
    """d/ replaced by a link to a directory outside: status said "deleted: d/a.txt",
    but `commit -a` failed with "/abs/path/d/a.txt goes through the symbolic link d",
    a path the user never typed. It stages the deletions (as git does), follows no
    link, and leaves the link untracked."""
    committed(repo, {"d/a.txt": "a", "top.txt": "t"})
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.txt").write_text("not ours")
    shutil.rmtree(repo.root / "d")
    os.symlink(outside, repo.root / "d")
    repo.write("top.txt", "t2")
    assert repo.status()["deleted"] == ["d/a.txt"]
    repo.ok("commit", "-am", "two")
    assert [f["name"] for f in repo.json("ls", "-r", "--json")] == ["top.txt"]
    assert (outside / "a.txt").read_text() == "not ours"
    repo.fsck_clean()


def test_a_fifo_at_a_tracked_path_is_never_opened_nor_replaced_unasked(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "a", "d/b.txt": "b", "top.txt": "t"})
    repo.ok("tag", "one")
    repo.write("d/b.txt", "b2")
    repo.ok("commit", "-am", "two")
    for rel in ("d/a.txt", "top.txt"):  # below the root and at it
        (repo.root / rel).unlink()
        os.mkfifo(repo.root / rel)
    watches = [OpenWatch(repo.root / rel) for rel in ("d/a.txt", "top.txt")]
    try:
        st = repo.status()
        assert st["deleted"] == ["d/a.txt", "top.txt"] and st["unreadable"] == []
        assert st["special"] == [
            {"path": "d/a.txt", "kind": "FIFO"}, {"path": "top.txt", "kind": "FIFO"}
        ]  # fmt: skip
        assert "  deleted:  top.txt (a FIFO is there now, never stored)\n" in repo.ok("status").out
        for args in (("checkout", "one"), ("checkout", "HEAD"), ("checkout", "one", "top.txt")):
            line = assert_error(repo.run(*args), "would replace", "a FIFO", "--force")
            assert ("d/a.txt" in line) == (len(args) == 2), line
            for rel in ("d/a.txt", "top.txt"):
                assert stat.S_ISFIFO(os.lstat(repo.root / rel).st_mode), (args, rel)
        assert not any(w.opened() for w in watches)
    finally:
        for w in watches:
            w.close()
    repo.ok("checkout", "--force", "one")
    assert repo.read("d/a.txt") == b"a" and repo.read("top.txt") == b"t"
    assert repo.status()["deleted"] == []
    repo.fsck_clean()


def test_an_untracked_fifo_in_the_way_is_named_as_one(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "a", "e/b.txt": "b"})
    repo.ok("rm", "d/a.txt", "e/b.txt")
    os.mkfifo(repo.root / "d")  # where the version has a directory
    os.mkdir(repo.root / "e")
    os.mkfifo(repo.root / "e/b.txt")  # where it has a file
    for args in (("checkout", "HEAD", "d", "e"), ("restore", "--source", "HEAD", "d")):
        line = repo.fail(*args)
        assert "d (a FIFO, not tracked, where v1 has a directory)" in line or (
            "d is a FIFO, not tracked, where restore needs a directory" in line
        ), line
    line = repo.fail("restore", "--source", "HEAD", "e")
    assert "e/b.txt is a FIFO, not tracked, where restore writes a file" in line, line
    line = repo.fail("checkout", "HEAD", "e")
    assert "e/b.txt (a FIFO, not tracked, where v1 has a file)" in line, line
    # the line went on "(a symbolic link is replaced, never followed)": no link is there
    assert line.endswith("use --force to replace it"), line
    assert stat.S_ISFIFO(os.lstat(repo.root / "d").st_mode)
    os.unlink(repo.root / "d")
    os.unlink(repo.root / "e/b.txt")
    repo.ok("checkout", "HEAD", "d", "e")
    repo.fsck_clean()


def test_commit_all_commits_nothing_while_a_tracked_file_cannot_be_read(repo: Repo) -> None:
    """`dvfs commit -a` with a changed tracked file it could not read warned, then
    committed the other changes and exited 0: the version passed for one of every
    change, and the unread edit stayed out of it (`add` of the directory is refused).
    Nothing is staged nor committed now, and the line says what to do."""
    committed(repo, {"d/a.txt": "a1", "d/b.txt": "b1", "e/c.txt": "c1"})
    repo.write("d/a.txt", "a2")
    repo.write("d/b.txt", "b2")
    (repo.root / "d" / "b.txt").chmod(0)
    (repo.root / "e").chmod(0)
    try:
        r = repo.run("commit", "-a", "-m", "two", unprivileged=True)
    finally:
        (repo.root / "d" / "b.txt").chmod(0o644)
        (repo.root / "e").chmod(0o755)
    line = assert_error(r, "cannot read d/b.txt, e/c.txt to stage their changes", code=2)
    assert "nothing was staged or committed" in line and "without -a" in line, line
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == ["d/a.txt", "d/b.txt"], st
    assert [v["message"] for v in repo.json("log", "--json")] == ["base"]
    repo.ok("commit", "-a", "-m", "two", unprivileged=True)
    assert repo.cat("HEAD:d/b.txt") == b"b2"
    repo.fsck_clean()


def test_an_unreadable_file_stages_nothing(repo: Repo) -> None:
    v1 = committed(repo, {"d/a.txt": "a1", "d/b.bin": rand(400 * KiB), "d/z.txt": "z1"})
    repo.write("d/a.txt", "a2")
    repo.write("d/z.txt", "z2")
    secret = repo.write("d/secret.bin", rand(300 * KiB, seed=3))
    secret.chmod(0)
    r = repo.run("add", "d", unprivileged=True)  # as root, a mode-000 file is readable
    assert_error(r, "d/secret.bin", "permission denied", "nothing was staged", ".dvfsignore")
    st = repo.status()
    assert st["staged"] == []  # nothing half-staged: not a.txt, not z.txt
    assert st["modified"] == ["d/a.txt", "d/z.txt"]
    assert st["untracked"] == ["d/secret.bin"]

    sub = repo.root / "d" / "locked"
    sub.mkdir()
    (sub / "inside.txt").write_text("i")
    sub.chmod(0)
    secret.chmod(0o644)
    try:
        r = repo.run("add", "d", unprivileged=True)
        assert_error(r, "d/locked", "permission denied", "nothing was staged", ".dvfsignore")
        assert repo.status()["staged"] == []
    finally:
        sub.chmod(0o755)
    repo.ok("add", "d", unprivileged=True)
    repo.ok("commit", "-m", "readable again")
    assert repo.show("v1")["id"] == v1
    assert repo.cat("HEAD:d/secret.bin") == rand(300 * KiB, seed=3)
    repo.fsck_clean()


def test_a_store_this_user_may_not_write_says_so(repo: Repo) -> None:
    """A repository of another user (or a read-only one): the line names the directory
    and the cause, not the temporary file dvfs tried to make."""
    committed(repo, {"d/a.txt": "a"})
    repo.write("d/b.bin", rand(100 * KiB, seed=5))
    objects = repo.root / ".dvfs" / "objects"
    objects.chmod(0o555)
    try:
        r = repo.run("add", "d", unprivileged=True)  # as root, any directory is writable
        line = assert_error(r, "cannot write in", str(objects), "Permission denied", "user")
        assert ".tmp-" not in line, line
    finally:
        objects.chmod(0o755)
    assert repo.status()["staged"] == []
    repo.ok("add", "d")
    repo.ok("commit", "-m", "two")
    repo.fsck_clean()


@contextlib.contextmanager
def read_only(top: Path, below: bool = True) -> Iterator[None]:
    """``top``, and unless not ``below`` everything below it, without write permission."""
    modes = {p: p.stat().st_mode for p in [top, *(top.rglob("*") if below else ())]}
    for p, mode in modes.items():
        p.chmod(stat.S_IMODE(mode) & ~0o222)
    try:
        yield
    finally:
        for p, mode in modes.items():
            p.chmod(stat.S_IMODE(mode))


def test_a_repository_this_user_may_not_write_is_checked_and_named(repo: Repo) -> None:
    """Another user's repository (or one on a read-only filesystem): fsck checks it,
    and a command that writes names the directory it cannot write in, not the lock
    file it did not need to write."""
    v1 = committed(repo, {"d/a.txt": "a", "d/b.bin": rand(100 * KiB, seed=6)})
    dvfs = repo.root / ".dvfs"
    repo.write("d/a.txt", "a2")
    with read_only(dvfs):
        r = assert_ok(repo.run("fsck", unprivileged=True))  # as root, anything is writable
        assert "no problems" in r.out
        for args, where in (
            (("tag", "t1"), dvfs / "refs" / "tags"),
            (("branch", "b"), dvfs / "refs" / "heads"),
            (("commit", "-a", "-m", "two"), dvfs / "objects"),
        ):
            r = repo.run(*args, unprivileged=True)
            assert_error(r, "cannot write in", str(where), "Permission denied", "user")
    assert repo.head_id() == v1
    repo.fsck_clean()


def test_gc_in_a_repository_this_user_may_not_write_changes_nothing(repo: Repo) -> None:
    """gc deletes packs before it writes its audit entry: where it may not write that
    entry (``.dvfs`` read-only, its store writable), or anything at all, it says so in
    one line before it deletes anything."""
    committed(repo, {"d/a.txt": "a"})
    repo.write("junk.bin", rand(300 * KiB, seed=8))
    add_in_process(repo, "junk.bin")
    repo.ok("rm", "--cached", "junk.bin")
    repo.ok("remote", "add", "origin", str(repo.root.parent / "remote"))
    repo.ok("push")
    dvfs = repo.root / ".dvfs"
    packs = sorted((dvfs / "objects").glob("pack-*"))
    for below in (False, True):
        with read_only(dvfs, below=below):
            for args in (("gc",), ("gc", "--remote", "origin")):
                r = repo.run(*args, unprivileged=True)
                assert_error(r, "repository cannot be written here", str(dvfs), "changed nothing")
            dry = assert_ok(repo.run("gc", "--dry-run", "--json", unprivileged=True)).json()
            assert dry["bytes_freed"] > 0
        assert sorted((dvfs / "objects").glob("pack-*")) == packs
    assert repo.json("gc", "--json")["bytes_freed"] > 0
    repo.fsck_clean()


def test_a_read_only_store_without_index_files_is_read(repo: Repo) -> None:
    """Packs without their index files (copied without them, say) in a store this
    user may not write: the index is rebuilt from each header in memory, and the
    versions read, rather than every command failing to write the index file."""
    v1 = committed(repo, {"d/a.txt": "a", "d/b.bin": rand(100 * KiB, seed=7)})
    dvfs = repo.root / ".dvfs"
    for idx in (dvfs / "objects").glob("*.idx"):
        idx.unlink()
    with read_only(dvfs):
        log = assert_ok(repo.run("log", "--json", unprivileged=True)).json()
        assert [v["id"] for v in log] == [v1]
        r = assert_ok(repo.run("cat", "HEAD:d/b.bin", unprivileged=True))
        assert r.raw == rand(100 * KiB, seed=7)
        assert "no problems" in assert_ok(repo.run("fsck", unprivileged=True)).out
    repo.fsck_clean()


def test_a_working_directory_this_user_may_not_write_is_named(repo: Repo) -> None:
    """A checkout or restore that may not write, or delete, in a directory of the
    working tree names the path and the directory, not "." or a link's target."""
    committed(repo, {"d/sub/a.txt": "a", "d/b.txt": "b"})
    repo.write("d/sub/n.txt", "n")
    os.symlink("a.txt", repo.root / "d" / "sub" / "l")
    add_in_process(repo, "d")
    commit_in_process(repo, "two")
    sub = repo.root / "d" / "sub"
    with read_only(sub, below=False):
        r = repo.run("checkout", "v1", unprivileged=True)
        assert_error(r, "cannot delete d/sub/", "Permission denied", "write in d/sub ")
    repo.ok("checkout", "v1")
    with read_only(sub, below=False):
        r = repo.run("checkout", "v2", unprivileged=True)
        assert_error(r, "cannot write d/sub/", "Permission denied", "write in d/sub ")
        for name in ("l", "n.txt"):
            r = repo.run("restore", "--source", "v2", f"d/sub/{name}", unprivileged=True)
            assert_error(r, f"cannot write d/sub/{name}:", "write in d/sub ")
    repo.ok("switch", "main")
    assert repo.status()["modified"] == [] and (sub / "l").readlink() == Path("a.txt")
    repo.fsck_clean()


def test_symlinks_are_never_followed_out_of_the_repository(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = rand(4 * KiB, seed=11)
    (outside / "secret.bin").write_bytes(secret)
    (outside / "f.txt").write_text("outside f")
    repo.write("d/f.txt", "inside f")
    os.symlink(str(outside), repo.root / "ext")
    os.symlink(str(outside / "secret.bin"), repo.root / "d" / "secret_link")

    repo.fail("add", "ext/secret.bin", fragments=("symbolic link", "ext"), code=2)
    repo.ok("add", "ext", "d")
    repo.ok("commit", "-m", "links")
    files = repo.show()["files"]
    assert files["ext"] == {"link": str(outside), "added": "v1"}
    assert files["d/secret_link"] == {"link": str(outside / "secret.bin"), "added": "v1"}
    assert set(files) == {"ext", "d/f.txt", "d/secret_link"}
    for pack in (repo.root / ".dvfs" / "objects").iterdir():  # the content was never read
        assert secret not in pack.read_bytes()

    # A tracked directory replaced by a link to the outside: dvfs neither reads
    # through it nor writes through it.
    (repo.root / "d" / "f.txt").unlink()
    (repo.root / "d" / "secret_link").unlink()
    (repo.root / "d").rmdir()
    os.symlink(str(outside), repo.root / "d")
    repo.fail("add", "d/f.txt", fragments=("symbolic link",), code=2)
    repo.fail("rm", "d/f.txt", fragments=("symbolic link",), code=2)
    assert repo.status()["deleted"] == ["d/f.txt", "d/secret_link"]
    # The link is the user's: replaced only when asked to, and then as a link.
    repo.fail("checkout", "HEAD", fragments=("d (a symbolic link", "--force"), code=2)
    assert repo.status()["deleted"] == ["d/f.txt", "d/secret_link"]
    repo.ok("checkout", "--force", "HEAD")
    assert not (repo.root / "d").is_symlink()
    assert repo.read("d/f.txt") == b"inside f"
    assert sorted(os.listdir(outside)) == ["f.txt", "secret.bin"]
    assert (outside / "f.txt").read_text() == "outside f"
    assert (outside / "secret.bin").read_bytes() == secret
    repo.fsck_clean()


# -------------------------------------------------------------------- a file changing while hashed


class Writer(threading.Thread):
    """Keeps changing a file until stopped (or until it has written ``limit`` bytes)."""

    def __init__(self, path: Path, mode: str, limit: int = 48 * MiB) -> None:
        super().__init__(daemon=True)
        self.path = path
        self.mode = mode
        self.limit = limit
        self.stop = threading.Event()
        self.started_writing = threading.Event()

    def run(self) -> None:
        block = bytearray(rand(64 * KiB, seed=5))
        flags = os.O_WRONLY | (os.O_APPEND if self.mode == "append" else 0)
        fd = os.open(self.path, flags)
        size = os.fstat(fd).st_size
        rng = random.Random(9)
        try:
            written = n = 0
            while not self.stop.is_set() and written < self.limit:
                n += 1
                block[:8] = n.to_bytes(8, "little")
                if self.mode == "append":
                    os.write(fd, block)
                elif self.mode == "truncate":  # cut short, then grown back by a write
                    os.ftruncate(fd, rng.randrange(0, size - len(block)))
                    os.pwrite(fd, block, size - len(block))
                else:
                    os.pwrite(fd, block, rng.randrange(0, size - len(block)))
                written += len(block)
                self.started_writing.set()
                time.sleep(0.0005)
        finally:
            os.close(fd)
            self.started_writing.set()


@pytest.mark.parametrize(
    ("mode", "limit"),
    [
        ("append", 48 * MiB),
        ("overwrite", 48 * MiB),
        ("truncate", 48 * MiB),
        ("append", 2 * MiB),
        ("overwrite", 2 * MiB),
        ("truncate", 2 * MiB),
    ],
    ids=[
        "append-on",
        "overwrite-on",
        "truncate-on",
        "append-burst",
        "overwrite-burst",
        "truncate-burst",
    ],
)
def test_a_file_changing_while_it_is_hashed(repo: Repo, mode: str, limit: int) -> None:
    """A writer keeps changing a file (or changes it in one burst) while add reads it.

    Either the file is staged, and then what was stored is exactly what the index
    says (and, for appends, a prefix of the file), or add says it kept changing.
    A file cut short under the reader must not end the command either (a reader
    that mapped the file would die of SIGBUS touching the pages cut off).
    """
    path = repo.write("big.bin", rand(3 * MiB, seed=4))
    args = ("add", "big.bin")
    proc = spawn_ready(repo.root, *args)
    writer = Writer(path, mode, limit)
    writer.start()
    writer.started_writing.wait()
    go(proc)
    try:
        r = finish(proc, args)
    finally:
        writer.stop.set()
        writer.join()
    final = path.read_bytes()
    if r.code == 0:  # staged: what was stored must be exactly what the index says
        assert_ok(r)
        repo.ok("commit", "-m", "caught a consistent moment")
        rec = repo.show()["files"]["big.bin"]
        stored = repo.cat("HEAD:big.bin")
        assert len(stored) == rec["size"]
        assert blake3.blake3(stored).hexdigest() == rec["hash"]
        if mode == "append":
            assert stored == final[: len(stored)]
        if stored != final:  # changed again after it was read: status must see that
            assert repo.status()["modified"] == ["big.bin"]
    else:
        assert_error(r, "big.bin", "kept changing")
        assert repo.status()["staged"] == []
    repo.fsck_clean()


# --------------------------------------------------------------------------------------- revisions


def test_an_unknown_revision_lists_the_closest_names(repo: Repo) -> None:
    committed(repo, {"f.txt": "1"})
    repo.ok("tag", "baseline")
    repo.write("f.txt", "2")
    repo.ok("add", "f.txt")
    repo.commit("two")
    repo.ok("branch", "feature")
    cases = [
        (("show", "baselin"), ("unknown revision baselin", "baseline")),
        (("checkout", "featur"), ("unknown revision featur", "feature")),
        (("diff", "basline", "HEAD"), ("basline", "baseline")),
        (("cat", "v9:f.txt"), ("v9: main has v1 to v2",)),
        (("ls", "HEAD~5"), ("HEAD~5: HEAD is v2 and v1 has no parent: go back at most 1",)),
        (("log", "HAED"), ("HAED", "HEAD")),
        (("show", "dead"), ("unknown revision dead",)),
        (("tag", "t", "nowhere"), ("unknown revision nowhere",)),
    ]
    for args, fragments in cases:
        repo.fail(*args, fragments=fragments)
    assert repo.status()["head"] == "v2"
    repo.ok("checkout", "v1")  # detached on main's chain: numbers still count along main
    repo.fail("show", "v3", fragments=("v3: main has v1 to v2",))
    repo.fail("show", "HEAD~1", fragments=("HEAD~1: HEAD is v1, which has no parent",))
    repo.ok("switch", "main")
    repo.fsck_clean()


# ----------------------------------------------------------------------------- uncommitted changes


def feature_changes_a(repo: Repo) -> None:
    """Branch ``feature`` off main with d/a.txt changed in one commit; back on main."""
    repo.ok("branch", "feature")
    repo.ok("switch", "feature")
    repo.write("d/a.txt", "feature")
    repo.ok("add", "d")
    repo.commit("on feature")
    repo.ok("switch", "main")


def test_checkout_over_uncommitted_changes_is_refused(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "a1", "d/b.txt": "b1", "d/x.txt": "x1"}, "first")
    repo.write("d/a.txt", "a2")
    (repo.root / "d" / "x.txt").unlink()
    add_in_process(repo, "d")
    commit_in_process(repo, "second")

    repo.write("d/a.txt", "my unstaged edit")
    repo.write("d/b.txt", "my staged edit")
    add_in_process(repo, "d/b.txt")
    repo.write("d/x.txt", "an untracked file where v1 has another")
    line = repo.fail("checkout", "v1", fragments=("d/a.txt", "d/x.txt", "--force"))
    assert "checkout would overwrite" in line
    assert "d/b.txt" not in line  # v1 leaves b.txt as v2 has it: that edit would be carried
    assert repo.read("d/a.txt") == b"my unstaged edit"
    assert repo.read("d/b.txt") == b"my staged edit"
    assert repo.read("d/x.txt") == b"an untracked file where v1 has another"
    assert repo.status()["head"] == "v2" and repo.status()["detached"] is None

    repo.ok("checkout", "--force", "v1")
    assert repo.read("d/a.txt") == b"a1"
    assert repo.read("d/b.txt") == b"b1"
    assert repo.read("d/x.txt") == b"x1"
    st = repo.status()
    assert st["detached"] == "v1" and st["staged"] == [] and st["modified"] == []
    repo.fsck_clean()


def test_checkout_of_a_path_an_older_version_shares_replaces_or_refuses(repo: Repo) -> None:
    """`dvfs checkout v2 d/a.txt`, where v2 holds HEAD's d/a.txt, said "restored from
    v2: 0 written" and exited 0, leaving the local change: a change to a path the
    version does not change was carried, as a whole checkout carries it. A path asked
    for by name is refused over a change, as for HEAD, and written with --force."""
    committed(repo, {"d/a.txt": "two", "d/b.txt": "b"})
    repo.write("d/b.txt", "b2")
    repo.ok("add", "d")
    repo.commit("v2: b changed, a as it was")
    for staged in (False, True):
        repo.write("d/a.txt", "mine")
        if staged:
            repo.ok("add", "d/a.txt")
        for rev in ("v1", "HEAD"):
            r = repo.run("checkout", rev, "d/a.txt")
            assert_error(r, "would overwrite uncommitted changes in d/a.txt", "--force")
            assert repo.read("d/a.txt") == b"mine"
    r = repo.ok("checkout", "--force", "v1", "d/a.txt")
    assert "1 written" in r.out and repo.read("d/a.txt") == b"two"
    assert repo.status()["staged"] == [] and repo.status()["modified"] == []
    repo.fsck_clean()


def test_switch_over_uncommitted_changes_is_refused(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "main"})
    feature_changes_a(repo)

    repo.write("d/a.txt", "work in progress")
    repo.fail("switch", "feature", fragments=("switch would overwrite", "d/a.txt", "--force"))
    assert repo.read("d/a.txt") == b"work in progress"
    assert repo.status()["branch"] == "main"
    repo.ok("switch", "--force", "feature")
    assert repo.read("d/a.txt") == b"feature"
    st = repo.status()
    assert st["branch"] == "feature" and st["modified"] == []
    repo.fsck_clean()


# Ctrl-C once half of the files a checkout writes are written: the real signal, in the
# dvfs process, at a point a test can name (a hook loaded at its start-up).
HALF_THEN_CTRL_C = """
import signal
import vfs.ops.checkout as co

real = co.restore_many


def half(root, todo, *args, **kw):
    real(root, todo[: len(todo) // 2], *args, **kw)
    signal.raise_signal(signal.SIGINT)
    raise AssertionError("not reached: Ctrl-C stops the checkout")


co.restore_many = half
"""


def test_ctrl_c_while_a_switch_writes_says_what_the_tree_holds(repo: Repo, tmp_path: Path) -> None:
    """Every file is replaced whole, but only some are: HEAD and the index still name
    the branch left, so status lists the files written as changed and the next switch
    refuses to overwrite them. The line at Ctrl-C says so, and how to finish or go back."""
    names = [f"d/f{i:02d}.txt" for i in range(40)]
    committed(repo, {n: f"main {n}\n" for n in names})
    repo.ok("branch", "feature")
    repo.ok("switch", "feature")
    committed(repo, {n: f"feature {n}\n" for n in names})
    repo.ok("switch", "main")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(HALF_THEN_CTRL_C)
    ctrl_c = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}

    line = assert_error(
        repo.run("switch", "feature", env=ctrl_c),
        "interrupted while writing the files of v2: some are written",
        "run `dvfs switch feature` again to finish, or `dvfs restore .`",
        code=130,
    )
    assert "\n" not in line
    st = repo.status()
    assert st["branch"] == "main" and st["head"] == "v1"
    written = [n for n in names if repo.read(n).startswith(b"feature")]
    assert st["modified"] == written and len(written) == len(names) // 2
    repo.ok("switch", "feature")  # what the line says finishes it
    assert all(repo.read(n) == f"feature {n}\n".encode() for n in names)
    assert repo.status()["modified"] == []

    assert_error(repo.run("switch", "main", env=ctrl_c), "interrupted while writing", code=130)
    repo.ok("restore", ".")  # or go back
    st = repo.status()
    assert st["branch"] == "feature" and st["modified"] == []
    assert all(repo.read(n) == f"feature {n}\n".encode() for n in names)
    repo.fsck_clean()


def test_ctrl_c_in_any_command_says_a_rerun_finishes_it(repo: Repo, tmp_path: Path) -> None:
    """An add stopped while it hashes: nothing is staged, and running it again works."""
    committed(repo, {"d/a.txt": "a\n"})
    repo.write("d/b.txt", "b\n")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import signal\n"
        "from vfs.worktree.ingest import Feed\n"
        "def stopped(*args, **kw):\n"
        "    signal.raise_signal(signal.SIGINT)\n"
        "    raise AssertionError('not reached')\n"
        "Feed._stage = stopped\n"
    )
    ctrl_c = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    line = assert_error(repo.run("add", "d", env=ctrl_c), code=130)
    assert line == (
        "dvfs: error: interrupted; nothing half-written is visible, run the command again"
    )
    assert repo.status()["staged"] == []
    repo.ok("add", "d")
    assert [c["path"] for c in repo.status()["staged"]] == ["d/b.txt"]
    repo.fsck_clean()


@pytest.mark.parametrize("args", [("add", "d"), ("commit", "-m", "m"), ("log",)], ids=str)
def test_ctrl_c_while_the_command_starts_is_one_line(
    repo: Repo, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Ctrl-C in the fifth of a second a command takes to load its modules printed
    the traceback of the import it stopped, ending in KeyboardInterrupt. It is one
    line and exit 130 now, as for a command stopped later."""
    committed(repo, {"d/a.txt": "a\n"})
    repo.write("d/b.txt", "b\n")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(
        "import signal, sys\n"
        "class Stop:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name in ('vfs.cli.root', 'vfs.cli.staging'):\n"
        "            signal.raise_signal(signal.SIGINT)\n"
        "sys.meta_path.insert(0, Stop())\n"
    )
    ctrl_c = {"PYTHONPATH": os.pathsep.join([str(hook), os.environ.get("PYTHONPATH", "")])}
    line = assert_error(repo.run(*args, env=ctrl_c), code=130)
    assert line == "dvfs: error: interrupted before it began: nothing was changed"
    assert [c["path"] for c in repo.status()["staged"]] == []
    repo.ok("add", "d")
    assert [c["path"] for c in repo.status()["staged"]] == ["d/b.txt"]
    repo.fsck_clean()


def two_branches(repo: Repo) -> str:
    """main at v1 (d/a.txt) then v3 (d/m.txt added), other at v2 (d/o.txt added), on
    main; returns other's version id."""
    committed(repo, {"d/a.txt": "a"})
    repo.ok("switch", "-c", "other")
    repo.write("d/o.txt", "o")
    repo.ok("add", "d")
    other = repo.commit("other")
    repo.ok("switch", "main")
    repo.write("d/m.txt", "m")
    repo.ok("add", "d")
    repo.commit("main two")
    return other


def kill_at_index_save(repo: Repo, command: tuple[str, ...]) -> None:
    """Run ``dvfs COMMAND``, killed with SIGKILL right after it saved the index."""
    killed = subprocess.run(
        [sys.executable, "-P", "-c", KILLED_AT_INDEX_SAVE, "after", *command],
        cwd=repo.root, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr


@pytest.mark.parametrize("command", [("switch", "other"), ("checkout", "other")])
def test_a_switch_killed_before_head_moved_stages_nothing(
    repo: Repo, command: tuple[str, ...]
) -> None:
    """A switch killed once it had saved the index, before HEAD moved: the working
    tree and the index hold the other branch's version. Status lists none of it as
    staged (a commit would have recorded the other branch's files on this one), and
    running the switch again finishes it."""
    other = two_branches(repo)
    main = repo.head_id()
    kill_at_index_save(repo, command)
    st = repo.status()
    assert (st["branch"], st["staged"], st["modified"]) == ("main", [], []), st
    assert repo.run("commit", "-a", "-m", "mine").code != 0
    assert repo.head_id() == main
    repo.ok(*command)
    st = repo.status()
    assert (st["branch"], st["staged"], st["behind"]) == ("other", [], None), st
    assert repo.head_id() == other and not (repo.root / "d" / "m.txt").exists()
    repo.fsck_clean()


@pytest.mark.parametrize("again", [True, False])
@pytest.mark.parametrize("command", [("switch", "other"), ("checkout", "other")])
def test_a_checkout_killed_on_a_detached_head_stages_nothing(
    repo: Repo, command: tuple[str, ...], again: bool
) -> None:
    """As above, from a detached HEAD: status listed the other branch's files as
    staged. It says now that the working tree is at that version, not HEAD's, and
    how to finish or go back; each works."""
    other = two_branches(repo)
    v1 = repo.json("log", "v1", "-n", "1", "--json")[0]["id"]
    repo.ok("checkout", "v1")
    kill_at_index_save(repo, command)
    st = repo.status()
    assert (st["detached"], st["staged"], st["modified"]) == ("v1", [], []), st
    assert st["behind"] == f"v2 {other[:10]}"
    assert repo.ok("status").out.splitlines()[1] == (
        f"This working tree is at v2 {other[:10]}, not at HEAD's version (a checkout or "
        f"switch cut short): run it again to finish it, or `dvfs checkout {v1[:12]}` to go "
        "back."
    )
    repo.fsck_clean()
    if again:
        repo.ok(*command)
        st = repo.status()
        assert (st["branch"], st["detached"], st["staged"], st["behind"]) == (
            "other",
            None,
            [],
            None,
        ), st
        assert repo.head_id() == other and repo.read("d/o.txt") == b"o"
    else:
        repo.ok("checkout", v1[:12])
        st = repo.status()
        assert (st["detached"], st["staged"], st["behind"]) == ("v1", [], None), st
        assert not (repo.root / "d" / "o.txt").exists()
    repo.fsck_clean()


def test_switch_carries_changes_to_files_the_target_leaves_alone(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "main", "d/keep.txt": "k1", "d/gone.txt": "g1"})
    feature_changes_a(repo)

    repo.write("d/keep.txt", "unstaged edit")
    repo.write("d/new.txt", "staged new file")
    add_in_process(repo, "d/new.txt")
    repo.ok("switch", "feature")
    assert repo.read("d/a.txt") == b"feature"
    assert repo.read("d/keep.txt") == b"unstaged edit"
    assert repo.read("d/new.txt") == b"staged new file"
    st = repo.status()
    assert st["branch"] == "feature" and st["modified"] == ["d/keep.txt"]
    assert [c["path"] for c in st["staged"]] == ["d/new.txt"]
    repo.commit("carried")
    assert repo.status()["staged"] == []
    repo.ok("checkout", "--force", "HEAD")
    assert repo.read("d/keep.txt") == b"k1"
    repo.fsck_clean()


def test_switch_says_which_local_changes_it_took_along(repo: Repo) -> None:
    """`dvfs switch -c keep v1` took an edit of d/keep.txt along, as git does, and said
    only "v1 (on branch keep): 1 written, 0 deleted, 0 unchanged": nothing told that
    the working tree was not v1. It names the changes kept now (git lists them too)."""
    committed(repo, {"d/a.txt": "main", "d/keep.txt": "k1"})
    committed(repo, {"d/a.txt": "main 2"})
    repo.write("d/keep.txt", "unstaged edit")
    out = repo.ok("switch", "-c", "keep", "v1").out.splitlines()
    assert out[-1] == "local changes kept, not committed: d/keep.txt (`dvfs status` lists them)"
    assert repo.json("switch", "main", "--json")["carried"] == ["d/keep.txt"]
    assert repo.json("switch", "--force", "keep", "--json")["carried"] == []
    assert repo.read("d/keep.txt") == b"k1"
    repo.fsck_clean()


def test_switch_to_a_branch_at_the_same_version_takes_the_changes_along(repo: Repo) -> None:
    """`dvfs branch b` then `dvfs switch b` with changes was refused: "switch would
    overwrite uncommitted changes in d/a: commit them, or use --force to discard them",
    though nothing needed overwriting, and --force would have discarded the work. As
    git does, the changes come along now, staged or not, from a detached HEAD too; a
    checkout of the branch already checked out still refuses."""
    committed(repo, {"d/a.txt": "one", "d/b.txt": "bee"})
    repo.ok("branch", "b")
    repo.ok("checkout", "v1")  # (detached, at the version both branches hold)
    repo.write("d/a.txt", "staged edit")
    repo.ok("add", "d/a.txt")
    repo.write("d/b.txt", "unstaged edit")
    for branch in ("b", "main"):
        repo.ok("switch", branch)
        st = repo.status()
        assert st["branch"] == branch and st["modified"] == ["d/b.txt"], st
        assert [c["path"] for c in st["staged"]] == ["d/a.txt"]
        assert repo.read("d/a.txt") == b"staged edit"
        assert repo.read("d/b.txt") == b"unstaged edit"
    repo.fail("checkout", "main", fragments=("would overwrite uncommitted changes",))
    repo.ok("checkout", "--force", "main")
    assert repo.read("d/a.txt") == b"one" and repo.read("d/b.txt") == b"bee"
    repo.fsck_clean()


# ------------------------------------------------------------------------------ a corrupted object


def flip_byte_of(objects: Path, content: bytes) -> tuple[Path, int]:
    """Flip one byte in the middle of the one stored copy of ``content``; return where."""
    hits = []
    for f in sorted(objects.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            at = data.find(content)
            while at >= 0:
                hits.append((f, at))
                at = data.find(content, at + 1)
    assert len(hits) == 1, f"expected one stored copy (uncompressed, deduplicated): {hits}"
    path, at = hits[0]
    pos = at + len(content) // 2
    with open(path, "r+b") as fh:
        fh.seek(pos)
        byte = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([byte[0] ^ 0x01]))
    return path, pos


def flip_back(path: Path, pos: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(pos)
        byte = fh.read(1)
        fh.seek(pos)
        fh.write(bytes([byte[0] ^ 0x01]))


def test_a_corrupted_object(repo: Repo) -> None:
    bad = rand(50 * KiB, seed=21)  # one chunk, stored uncompressed
    good_big = rand(600 * KiB, seed=22)
    committed(repo, {"d/good.txt": "good", "d/good_big.bin": good_big, "d/bad.bin": bad}, "v1")
    repo.write("e/more.txt", "more")
    add_in_process(repo, "e")
    commit_in_process(repo, "v2")
    chunk_id = repo.show()["files"]["d/bad.bin"]["hash"]  # a one-chunk file: digest = chunk id
    where = flip_byte_of(repo.root / ".dvfs" / "objects", bad)

    r = repo.run("fsck")
    assert r.code == 1 and "Traceback" not in r.err, str(r)
    problems = [ln for ln in r.out.splitlines() if ln.startswith("problem:")]
    assert len(problems) == 1, str(r)
    for fragment in (chunk_id, "corrupt", "v1:d/bad.bin", "v2:d/bad.bin"):
        assert fragment in problems[0], (fragment, str(r))

    assert_error(repo.run("cat", "v1:d/bad.bin"), chunk_id, "corrupt")
    assert repo.cat("v1:d/good_big.bin") == good_big

    for rel in ("d/good.txt", "d/good_big.bin", "d/bad.bin", "e/more.txt"):
        (repo.root / rel).unlink()
    r = repo.run("checkout", "--force", "v2")
    assert_error(r, "d/bad.bin")
    assert repo.read("d/good.txt") == b"good"
    assert repo.read("d/good_big.bin") == good_big
    assert repo.read("e/more.txt") == b"more"
    assert not (repo.root / "d" / "bad.bin").exists()  # never a file with wrong bytes
    assert_error(repo.run("checkout", "v1", "d/bad.bin"), "d/bad.bin")
    assert not (repo.root / "d" / "bad.bin").exists()
    repo.ok("status")

    flip_back(*where)
    repo.fsck_clean()
    repo.ok("checkout", "--force", "main")
    assert repo.read("d/bad.bin") == bad
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["staged"] == []
    repo.fsck_clean()


def test_fsck_names_a_damaged_file_of_another_branch_by_a_revision_that_reads_it(
    repo: Repo,
) -> None:
    """Each branch numbers its own chain: a version of another branch was named by its
    number (v2 of side), which here is another version (v2 of main): `dvfs cat` of what
    fsck said read main's file, not the damaged one."""
    damaged = rand(50 * KiB, seed=41)
    committed(repo, {"d/x.bin": rand(50 * KiB, seed=40)})
    repo.ok("switch", "-c", "side")
    repo.write("d/x.bin", damaged)
    repo.ok("add", "d")
    side = repo.commit("side")
    repo.ok("switch", "main")
    repo.write("d/y.txt", "y")
    repo.ok("add", "d")
    repo.commit("main two")
    where = flip_byte_of(repo.root / ".dvfs" / "objects", damaged)
    r = repo.run("fsck")
    assert r.code == 1, str(r)
    (problem,) = [ln for ln in r.out.splitlines() if ln.startswith("problem:")]
    used = problem.rpartition("used by ")[2]
    assert used == f"{side[:10]}:d/x.bin", problem
    assert_error(repo.run("cat", used), "corrupt")  # the damaged file, named as it reads
    flip_back(*where)
    repo.fsck_clean()


def test_fsck_repair_lets_a_good_copy_mend_a_damaged_chunk(repo: Repo) -> None:
    """A damaged chunk stays stored until ``fsck --repair`` drops it: adding a good copy
    of its file stored nothing (the store held the id). The working tree's unchanged
    file mends it at once; a file no longer there is named, and adding a copy mends it."""
    kept, gone, other = rand(50 * KiB, seed=31), rand(50 * KiB, seed=32), rand(50 * KiB, seed=33)
    committed(repo, {"d/kept.bin": kept, "d/gone.bin": gone, "d/other.bin": other})
    objects = repo.root / ".dvfs" / "objects"
    flip_byte_of(objects, kept)
    flip_byte_of(objects, gone)
    (repo.root / "d" / "gone.bin").unlink()
    repo.write("d/gone.bin", gone)  # a good copy, added again: the store keeps the bad one
    add_in_process(repo, "d")
    r = repo.run("fsck")
    assert r.code == 1 and len([ln for ln in r.out.splitlines() if "corrupt" in ln]) == 2, str(r)
    assert "dvfs fsck --repair" in r.out, str(r)
    (repo.root / "d" / "gone.bin").unlink()

    r = repo.run("fsck", "--repair", "--json")
    assert r.code == 1, str(r)
    report = r.json()
    assert len(report["repaired"]) == 1 and "stored again from d/kept.bin" in report["repaired"][0]
    (problem,) = report["problems"]
    assert "v1:d/gone.bin" in problem and "dvfs add" in problem, problem
    assert repo.cat("v1:d/kept.bin") == kept and repo.cat("v1:d/other.bin") == other

    repo.write("back/gone.bin", gone)  # a good copy, anywhere in the working tree
    repo.ok("add", "back")
    repo.fsck_clean()
    repo.ok("restore", "d/gone.bin")
    assert repo.read("d/gone.bin") == gone
    repo.fsck_clean()


def test_fsck_repair_writes_unreadable_refs_back_from_the_audit_log(repo: Repo) -> None:
    """A HEAD or branch that cannot be read stopped every command with "run `dvfs
    fsck`", and fsck said the same: ``fsck --repair`` writes them back as the audit log
    last recorded them."""
    committed(repo, {"d/a.txt": "a"}, "one")
    repo.ok("switch", "-c", "side")
    side = committed(repo, {"d/b.txt": "b"}, "two")
    repo.ok("tag", "t", "main")
    dvfs_dir = repo.root / ".dvfs"
    (dvfs_dir / "HEAD").unlink()
    (dvfs_dir / "refs" / "heads" / "side").write_text("garbage\n")
    (dvfs_dir / "refs" / "tags" / "t").write_text("")
    line = assert_error(repo.run("status"), "HEAD")
    assert "dvfs fsck --repair" in line
    r = repo.run("fsck")
    assert r.code == 1 and "dvfs fsck --repair" in r.out, str(r)

    report = repo.run("fsck", "--repair", "--json").json()
    assert report["problems"] == [] and len(report["repaired"]) == 3, report
    st = repo.status()
    assert st["branch"] == "side" and st["staged"] == [] and st["modified"] == []
    assert repo.head_id() == side
    assert repo.cat("t:d/a.txt") == b"a"
    repo.fsck_clean()


def test_a_fifo_or_a_link_for_head_or_a_ref_is_refused_never_waited_on(
    repo: Repo, tmp_path: Path
) -> None:
    """A FIFO at .dvfs/HEAD or at a branch's file hung every command for good; a link
    there was read through."""
    v1 = committed(repo, {"d/a.txt": "a"}, "one")
    dvfs_dir = repo.root / ".dvfs"
    elsewhere = tmp_path / "HEAD"
    elsewhere.write_text("ref: refs/heads/main\n")
    for kind in ("fifo", "link"):
        (dvfs_dir / "HEAD").unlink()
        if kind == "fifo":
            os.mkfifo(dvfs_dir / "HEAD")
        else:
            (dvfs_dir / "HEAD").symlink_to(elsewhere)
        line = assert_error(repo.run("status", timeout=30), "HEAD is", "dvfs fsck --repair")
        assert ("symbolic link" in line) == (kind == "link"), line
        assert repo.ok("fsck", "--repair", timeout=30).out.startswith("repaired: HEAD was")
        assert (dvfs_dir / "HEAD").read_text() == "ref: refs/heads/main\n"
    main = dvfs_dir / "refs" / "heads" / "main"
    main.unlink()
    os.mkfifo(main)
    line = assert_error(repo.run("log", timeout=30), "refs/heads/main is not a regular file")
    assert "dvfs fsck --repair" in line
    repo.ok("fsck", "--repair", timeout=30)
    assert repo.head_id() == v1 and elsewhere.read_text() == "ref: refs/heads/main\n"
    repo.fsck_clean()


def test_a_folder_of_refs_that_is_a_link_is_never_followed_and_repair_mends_it(
    repo: Repo, tmp_path: Path
) -> None:
    """.dvfs/refs/heads made a link to a directory elsewhere: every branch was read from
    there and `dvfs branch` and `commit` wrote there, outside the repository; with no
    file there, status said "No versions yet" and fsck found nothing wrong."""
    v1 = committed(repo, {"d/a.txt": "a"}, "one")
    heads = repo.root / ".dvfs" / "refs" / "heads"
    outside = tmp_path / "heads"
    shutil.move(heads, outside)
    heads.symlink_to(outside)
    for args in (("status",), ("branch", "side"), ("commit", "-m", "x")):
        assert_error(repo.run(*args), "refs/heads in", "is a symbolic link", "fsck --repair")
    assert sorted(p.name for p in outside.iterdir()) == ["main"]  # nothing written there
    fsck = repo.run("fsck", "--json").json()
    assert any("refs/heads in" in p for p in fsck["problems"]), fsck
    repaired = repo.run("fsck", "--repair", "--json").json()["repaired"]
    assert repaired[0].startswith(f"refs/heads was a symbolic link (to {outside})"), repaired
    assert heads.is_dir() and not heads.is_symlink() and (outside / "main").is_file()
    assert repo.head_id() == v1  # (main's creation was the log's last entry)
    repo.fsck_clean()


def test_fsck_names_a_branch_or_tag_whose_file_is_gone_and_repair_writes_it_back(
    repo: Repo,
) -> None:
    """A ref file deleted by hand (or lost with a disk): status said "No versions yet"
    of main and fsck found nothing wrong. fsck now names each such ref from the audit
    log, and --repair writes it back; a creation cut short by a crash (the log's last
    entry, no file yet) is no problem."""
    committed(repo, {"d/a.txt": "a"}, "one")
    repo.ok("tag", "t")
    v2 = committed(repo, {"d/a.txt": "b"}, "two")
    refs = repo.root / ".dvfs" / "refs"
    (refs / "heads" / "main").unlink()
    (refs / "tags" / "t").unlink()
    problems = repo.run("fsck", "--json").json()["problems"]
    assert [p.split(",")[0] for p in problems] == [
        "branch main is missing",
        "tag t is missing",
    ]
    assert all("`dvfs fsck --repair` writes it back" in p for p in problems)
    repaired = repo.run("fsck", "--repair", "--json").json()
    assert repaired["problems"] == [] and len(repaired["repaired"]) == 2
    assert repo.head_id() == v2 and repo.cat("t:d/a.txt") == b"a"
    # a tag whose creation was logged but whose file was never written (kill -9 there)
    repo.ok("tag", "late")
    (refs / "tags" / "late").unlink()
    repo.fsck_clean()


def test_a_corrupted_chunk_of_a_large_file(repo: Repo) -> None:
    """Large files are restored beside the small ones: a bad chunk fails only its file."""
    large_bad, large_good = rand(9 * MiB, seed=23), rand(10 * MiB, seed=24)
    files: dict[str, bytes | str] = {f"d/s{i:02}.txt": f"small {i}" for i in range(40)}
    files |= {"d/large_bad.bin": large_bad, "e/large_good.bin": large_good}
    committed(repo, files)
    where = flip_byte_of(repo.root / ".dvfs" / "objects", large_bad[: 100 * KiB])

    for rel in files:
        (repo.root / rel).unlink()
    r = repo.run("checkout", "--force", "HEAD")
    assert_error(r, "d/large_bad.bin", "corrupt")
    assert not (repo.root / "d" / "large_bad.bin").exists()  # never a file with wrong bytes
    assert repo.read("e/large_good.bin") == large_good
    for rel, data in files.items():
        if rel != "d/large_bad.bin":
            assert repo.read(rel) == (data.encode() if isinstance(data, str) else data)
    left = [p.name for p in repo.root.rglob(".tmp-*") if ".dvfs" not in p.parts]
    assert left == [], "a failed restore left its temporary file"

    flip_back(*where)
    repo.ok("checkout", "--force", "HEAD")
    assert repo.read("d/large_bad.bin") == large_bad
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["staged"] == []
    repo.fsck_clean()


def test_a_large_file_is_restored_without_filling_the_page_cache(disk_path: Path) -> None:
    """Checkout reads a large file's chunks once, past the page cache, when not cached.

    Neither a readahead of its packs nor a cached-read probe may pull them in: the
    chunks would come from the disk twice, once into pages nobody reads.
    """
    from vfs._os import page_cache
    from vfs.repo.repository import Repository
    from vfs.worktree.restore import LARGE_FILE

    repo = init_repo(disk_path / "repo")

    data = rand(LARGE_FILE + 3 * MiB, seed=41)
    committed(repo, {"d/large.bin": data, "d/small.txt": "small"})
    (repo.root / "d" / "large.bin").unlink()
    handle = Repository.find(repo.root)
    hist = handle.history
    head = hist.head_id()
    assert head is not None
    entry = hist.flatten(hist.version(head).tree)[b"d/large.bin"]
    where = [handle.store.locate(c.oid) for c in entry.chunks]
    handle.store.close()
    for pack in {p for p, _ in where}:
        fd = os.open(pack, os.O_RDONLY)
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    repo.ok("checkout", "HEAD")
    assert repo.read("d/large.bin") == data
    cached_pages = 0
    for pack, obj in where:
        fd = os.open(pack, os.O_RDONLY)
        for at in range(obj.offset, obj.offset + obj.stored_len, 4096):
            cached_pages += bool(page_cache.cached(fd, at, 1))
        os.close(fd)
    assert cached_pages <= 2 * len(where), f"{cached_pages} pages of its chunks were cached"
    repo.fsck_clean()


def _many_small_files() -> dict[str, bytes]:
    """More small files than one process restores alone (a helper takes half)."""
    from vfs.worktree.restore import RESTORE_SPLIT

    return {
        f"t{i % 23:02}/f{i:05}.bin": random.Random(i).randbytes(100 + i % 900)
        for i in range(RESTORE_SPLIT + 300)
    }


def _many_small(repo: Repo) -> dict[str, bytes]:
    """:func:`_many_small_files` committed, then removed from the working tree."""
    files = _many_small_files()
    committed(repo, files)
    for rel in files:
        (repo.root / rel).unlink()
    return files


def _temporaries(repo: Repo, *, ours: bool = False) -> list[str]:
    """Names of ``.tmp-*`` files in the working tree (``ours``: of dvfs's form only)."""
    names = [p.name for p in repo.root.rglob(".tmp-*") if ".dvfs" not in p.parts]
    return [n for n in names if is_tmp_leaf(n.encode())] if ours else names


def test_many_small_files_restored_by_two_processes(repo: Repo) -> None:
    """Past the split, a helper restores half: every file comes back, recorded in the index."""
    files = _many_small(repo)
    bad = sorted({rel.split("/")[0]: rel for rel in files}.values())  # one per directory:
    flipped = [flip_byte_of(repo.root / ".dvfs" / "objects", files[b]) for b in bad]  # both halves
    r = repo.run("checkout", "--force", "HEAD")
    assert_error(r, f"could not restore {len(bad)} files")
    for b in bad:  # each named, on a line of its own, with its object
        assert any(b in ln and "corrupt" in ln for ln in r.err.splitlines()), (b, str(r))
    for rel, data in files.items():
        if rel in bad:
            assert not (repo.root / rel).exists()
        else:
            assert repo.read(rel) == data, rel
    assert _temporaries(repo) == []
    st = repo.status()  # the files not restored are not checked out, not deleted
    assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []
    assert st["not_checked_out"] == bad

    for where in flipped:
        flip_back(*where)
    repo.ok("checkout", "--force", "HEAD")
    assert all(repo.read(b) == files[b] for b in bad)
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["staged"] == []
    repo.fsck_clean()


RESTORE_HELPER_DIES = """
import os, sys, time
from pathlib import Path
from vfs.ops.checkout import checkout
from vfs._os.helper_process import Helper, Tickets
from vfs.repo.repository import Repository
from vfs.worktree import restore
from vfs.worktree.pools import Workers

real_share, real_start, real_claim = restore._restore_share, Helper.start, Tickets.claim
parent, forked = os.getpid(), []

def slow_claim(self):  # the parent leaves the helper time to claim its tickets
    if os.getpid() == parent:
        time.sleep(0.02)
    return real_claim(self)

def dies(channel, tickets, *rest):
    claims = []

    def claim():  # three tickets' directories restored and reported; then one taken
        claims.append(real_claim(tickets))  # and lost: the helper fails before its end
        if len(claims) > 3:
            os.write(1, b"the helper broke\\n")
            raise RuntimeError("the helper broke")
        return claims[-1]

    tickets.claim = claim
    real_share(channel, tickets, *rest)

def start(work):
    helper = real_start(work)
    forked.append(helper is not None)
    return helper

Tickets.claim = slow_claim
restore._restore_share = dies
Helper.start = start
restore.spare_cpus = lambda limit: 1
handle = Repository.find(Path(sys.argv[1]))
with Workers() as workers:
    checkout(handle, "HEAD", [], workers, force=True)
handle.store.close()
print(forked)
"""


def test_a_restore_helper_that_dies_leaves_its_files_to_the_parent(repo: Repo) -> None:
    """What a helper did not report is restored by the parent: the result is whole."""
    files = _many_small(repo)
    out = run_python(RESTORE_HELPER_DIES, str(repo.root))
    assert out.split() == ["the", "helper", "broke", "[True]"], (
        f"the split was not exercised: {out}"
    )
    for rel, data in files.items():
        assert repo.read(rel) == data, rel
    assert _temporaries(repo) == []
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []
    repo.fsck_clean()


RESTORE_PARENT_KILLED = """
import os, signal, sys
from pathlib import Path
from vfs.ops.checkout import checkout
from vfs._os.helper_process import Helper
from vfs.repo.repository import Repository
from vfs.worktree import restore
from vfs.worktree.pools import Workers

gate = int(sys.argv[2])
real_share, real_start = restore._restore_share, Helper.start

def share(*args):  # the helper waits for the test, then does its share
    os.read(gate, 1)
    real_share(*args)

def start(work):  # the command is killed as soon as its helper runs
    helper = real_start(work)
    os.write(1, f"{helper.pid}\\n".encode())
    os.kill(os.getpid(), signal.SIGKILL)

restore._restore_share = share
Helper.start = start
restore.spare_cpus = lambda limit: 1
handle = Repository.find(Path(sys.argv[1]))
with Workers() as workers:
    checkout(handle, "HEAD", [], workers, force=True)
"""


def test_a_restore_helper_ends_with_its_killed_command(repo: Repo) -> None:
    """A checkout killed with SIGKILL left its restore helper running: it went on
    writing its share of the files into the working tree after the command was gone
    (and `status` saw them change). It ends with the command now."""
    files = _many_small(repo)
    gate_r, gate_w = os.pipe()
    out = repo.root.parent / "killed.out"  # (a file: a pipe would stay open in the helper)
    try:
        with out.open("wb") as fh:
            proc = subprocess.run(
                [sys.executable, "-P", "-c", RESTORE_PARENT_KILLED, str(repo.root), str(gate_r)],
                pass_fds=(gate_r,), stdout=fh, stderr=fh, env=cli_env(), timeout=120,
                check=False,
            )  # fmt: skip
        assert proc.returncode == -signal.SIGKILL, out.read_text()
        try:
            pidfd: int | None = os.pidfd_open(int(out.read_text()))
        except ProcessLookupError:
            pidfd = None
        os.write(gate_w, b"go")  # a helper still running does its share now
        if pidfd is not None:  # and then ends, its frames going nowhere
            assert select.select([pidfd], [], [], 120)[0], "the helper did not end"
            os.close(pidfd)
    finally:
        os.close(gate_r)
        os.close(gate_w)
    assert [rel for rel in files if (repo.root / rel).exists()] == []
    assert _temporaries(repo) == []
    assert sorted(repo.status()["deleted"]) == sorted(files)
    repo.ok("checkout", "--force", "HEAD")
    assert all(repo.read(rel) == data for rel, data in files.items())
    repo.fsck_clean()


CHECKOUT_WITH_NAMED_TEMPORARIES = """
import sys
from pathlib import Path
from vfs.ops.checkout import checkout
from vfs.repo.repository import Repository
from vfs.worktree import restore
from vfs.worktree.pools import Workers

restore._anonymous[0] = False  # as on a filesystem without O_TMPFILE
handle = Repository.find(Path(sys.argv[1]))
with Workers() as workers:
    checkout(handle, "HEAD", [], workers, force=True)
handle.store.close()
"""


def test_small_files_are_restored_alike_with_and_without_unnamed_files(repo: Repo) -> None:
    """Small files are written unnamed and linked in (O_TMPFILE), or written under a
    temporary name and renamed where the filesystem has no such files: the same
    bytes, modes and clean status either way, over files in the way as well."""
    files = _many_small_files()
    modes = {rel: 0o600 if i % 3 == 0 else 0o755 if i % 3 == 1 else 0o644 for i, rel in
             enumerate(files)}  # fmt: skip
    for rel, mode in modes.items():
        repo.write(rel, files[rel])
        os.chmod(repo.root / rel, mode)
    repo.ok("add", *sorted({rel.split("/")[0] for rel in files}))  # (as committed() does)
    repo.commit("modes")

    def check() -> None:
        for rel, data in files.items():
            assert repo.read(rel) == data, rel
            assert stat.S_IMODE(os.lstat(repo.root / rel).st_mode) == modes[rel], rel
        assert _temporaries(repo) == []
        st = repo.status()
        assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []

    for rel in files:
        (repo.root / rel).unlink()
    run_python(CHECKOUT_WITH_NAMED_TEMPORARIES, str(repo.root))
    check()
    for rel in files:
        (repo.root / rel).unlink()
    repo.ok("checkout", "HEAD")
    check()
    some = list(files)[::50]
    for rel in some:
        repo.write(rel, "in the way")
    repo.ok("checkout", "--force", "HEAD")
    check()
    repo.fsck_clean()


def test_temporaries_of_a_killed_checkout_are_removed_by_the_next_one(repo: Repo) -> None:
    """kill -9 while checkout writes a large file: its temporary file stays beside it,
    hidden from status; the next checkout removes it (so does fsck), and nothing else.
    (In a directory the checkout makes: into one that is there, a large file is written
    unnamed, and a kill leaves nothing: tests/test_checkout_ahead.py.)"""
    big = rand(6 * LARGE_FILE, seed=5)  # 48 MiB: slow enough to be caught being written
    committed(repo, {"d/e/big.bin": big, "d/small.txt": "small"})
    shutil.rmtree(repo.root / "d" / "e")
    repo.write("d/.tmp-notes", "mine")  # a user's file of a similar name stays
    repo.write("d/.tmp-x.bin.0123abcd", "mine too")  # (no serial: not dvfs's form)
    proc = spawn_ready(repo.root, "checkout", "HEAD")
    go(proc)
    give_up = time.monotonic() + 60
    while not (left := _temporaries(repo, ours=True)):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < give_up, "no temporary file appeared"
        time.sleep(0.001)
    proc.kill()
    proc.communicate()
    assert left and all(n.startswith(".tmp-big.bin.") for n in left), left
    st = repo.status()  # the temporary file is not the user's: not listed
    assert st["untracked"] == [] and st["deleted"] == ["d/e/big.bin"]
    r = repo.ok("checkout", "HEAD")
    assert any("removed 1 temporary files" in w for w in warnings_of(r)), str(r)
    assert _temporaries(repo, ours=True) == []
    assert sorted(_temporaries(repo)) == [".tmp-notes", ".tmp-x.bin.0123abcd"]
    assert repo.read("d/e/big.bin") == big
    st = repo.status()
    assert st["deleted"] == [] and st["modified"] == []
    # and fsck removes one whatever left it (an older dvfs, a crash before the marker)
    (repo.root / "d" / ".tmp-small.txt.9f8e7d6c12").write_text("half")
    assert repo.fsck_clean()["temporaries_removed"] == 1
    assert sorted(_temporaries(repo)) == [".tmp-notes", ".tmp-x.bin.0123abcd"]


# --------------------------------------------------------------------------------------- disk full


def fill(path: Path) -> None:
    """Write ``path`` until the filesystem is full."""
    block = b"\0" * 4096
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        while True:
            os.write(fd, block)
    except OSError as exc:
        assert exc.errno == 28, exc  # ENOSPC
    finally:
        os.close(fd)


def test_disk_full_during_add(small_disk: Path) -> None:
    repo = init_repo(small_disk / "repo")
    committed(repo, {"d/small.txt": "small"})
    before = repo.objects_size()
    repo.write("d/big.bin", rand(5 * MiB, seed=31))  # the disk cannot hold it twice
    assert_error(repo.run("add", "d"), "disk is full")
    # Asserted last, so that the rest is checked even while this fails.
    leftovers = [f.name for f in (repo.root / ".dvfs").rglob(".tmp-*")]
    grown = repo.objects_size() - before
    st = repo.status()
    assert st["head"] == "v1" and st["staged"] == [] and st["untracked"] == ["d/big.bin"]
    repo.fsck_clean()

    (repo.root / "d" / "big.bin").unlink()
    repo.write("d/medium.bin", rand(1 * MiB, seed=32))
    repo.ok("add", "d")
    repo.ok("commit", "-m", "fits")
    assert repo.cat("HEAD:d/medium.bin") == rand(1 * MiB, seed=32)
    repo.fsck_clean()
    assert leftovers == [], "the failed add left a partial pack taking the space it lacked"
    assert grown == 0


def test_ref_changes_a_full_disk_stops_leave_the_audit_log_true(small_disk: Path) -> None:
    """Tags, branches and switches that a full disk stopped: each said so, and none
    left a trace. Before, the log got entries for changes never made (the ref could
    not be written after them), fsck named those tags as lost, and the log's head
    fell behind it, so `audit verify` called the later entries added by hand."""
    repo = init_repo(small_disk / "repo")
    committed(repo, {"a.txt": "a"})
    made = len(repo.json("audit", "--json"))
    for round_ in range(4):
        fill(small_disk / "fill")
        for args in (
            ("tag", f"t{round_}"),
            ("branch", f"b{round_}"),
            ("switch", "-c", f"s{round_}"),
        ):
            assert_error(repo.run(*args), "disk is full")
        (small_disk / "fill").unlink()
        repo.ok("tag", f"kept{round_}")  # room again: a change goes through, audited
        made += 1
    entries = repo.json("audit", "--json")
    assert [e["ref"] for e in entries[-4:]] == [f"refs/tags/kept{i}" for i in range(4)]
    assert len(entries) == made
    assert sorted(os.listdir(repo.root / ".dvfs" / "refs" / "tags")) == [
        f"kept{i}" for i in range(4)
    ]
    assert os.listdir(repo.root / ".dvfs" / "refs" / "heads") == ["main"]
    assert repo.status()["branch"] == "main"
    assert_ok(repo.run("audit", "verify"))
    repo.fsck_clean()


def test_a_fetch_with_nothing_new_needs_no_room(small_disk: Path, tmp_path: Path) -> None:
    """`dvfs fetch` rewrote each remote branch's copy even when it had not moved, so a
    fetch with nothing new failed on a full disk ("disk is full while writing
    .dvfs/refs/remotes/origin/main"). A copy that stays put is not written again."""
    repo = init_repo(small_disk / "repo")
    committed(repo, {"a.txt": "a"})
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    made = len(repo.json("audit", "--json"))
    fill(small_disk / "fill")
    got = repo.json("fetch", "--json")
    assert [b["name"] for b in got["branches"]] == ["origin/main"]
    (small_disk / "fill").unlink()
    assert len(repo.json("audit", "--json")) == made
    repo.fsck_clean()


def test_disk_full_during_init_leaves_nothing(small_disk: Path) -> None:
    """init failed on a full disk with one line but left its half-made .dvfs.init-PID."""
    with open(small_disk / "fill", "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * MiB)
    assert_error(run(small_disk, "init", "repo"), "disk is full")
    assert os.listdir(small_disk / "repo") == []
    (small_disk / "fill").unlink()
    assert_ok(run(small_disk, "init", "repo"))
    assert os.listdir(small_disk / "repo") == [".dvfs"]
    Repo(small_disk / "repo").fsck_clean()


def test_gc_on_a_full_disk_frees_what_it_can(tmp_path: Path) -> None:
    """gc is what a full disk calls for: packs holding nothing live go without taking
    room, and a pack to rewrite that does not fit is kept, said so, not a failure."""
    from tests.conftest import tmpfs

    with tmpfs(tmp_path / "disk", "32m") as disk:
        repo = init_repo(disk / "repo")
        keep = rand(2 * MiB, seed=51)
        repo.write("d/keep.bin", keep)
        repo.write("d/junk1.bin", rand(5 * MiB, seed=52))
        repo.ok("add", "d")  # one pack: keep.bin and junk1.bin
        repo.ok("rm", "--cached", "d/junk1.bin")
        repo.commit("keep")
        (repo.root / "d" / "junk1.bin").unlink()
        fill(disk / "fill")
        r = repo.run("gc", "--json")  # the pack is to be rewritten: no room to copy keep.bin
        assert r.code == 1 and r.raw, str(r)
        report = r.json()
        assert report["packs_rewritten"] == 0, report
        assert any("to rewrite were kept" in p and "dvfs gc" in p for p in report["problems"])
        assert repo.cat("HEAD:d/keep.bin") == keep
        repo.fsck_clean()

        (disk / "fill").unlink()
        repo.write("d/junk2.bin", rand(8 * MiB, seed=53))
        repo.ok("add", "d")  # a pack of junk2.bin alone
        repo.ok("rm", "--cached", "d/junk2.bin")
        (repo.root / "d" / "junk2.bin").unlink()
        fill(disk / "fill")
        report = repo.json("gc", "--json")  # junk2.bin's pack freed first: room to rewrite
        assert report["packs_deleted"] == 2 and report["packs_rewritten"] == 1, report
        assert report["problems"] == []
        assert repo.cat("HEAD:d/keep.bin") == keep
        repo.fsck_clean()


@pytest.mark.parametrize("room_mib", [3, 11, 17])
def test_disk_full_during_checkout(tmp_path: Path, room_mib: int) -> None:
    """A checkout that runs out of space fails cleanly, wherever it stops.

    Past RESTORE_SPLIT small files a helper process restores some of them, beside
    the lane of a large file: whichever meets the full disk, the command says so in
    one line and leaves no temporary file, and once there is room a checkout
    restores everything.
    """
    from tests.conftest import tmpfs
    from vfs.worktree.restore import LARGE_FILE, RESTORE_SPLIT

    with tmpfs(tmp_path / "disk", "64m") as disk:
        repo = init_repo(disk / "repo")
        files = {
            f"t{i % 23:02}/f{i:05}.bin": rand(100 + i % 900, seed=i)
            for i in range(RESTORE_SPLIT + 300)
        }
        files["big/large.bin"] = rand(LARGE_FILE + MiB, seed=77)
        committed(repo, files)
        for rel in files:
            (repo.root / rel).unlink()
        filler = disk / "filler"  # the restored files need about 19 MiB
        fill(filler)
        os.truncate(filler, filler.stat().st_size - room_mib * MiB)
        r = repo.run("checkout", "HEAD")
        assert_error(r, "disk is full")
        assert _temporaries(repo) == []
        filler.unlink()
        repo.ok("checkout", "HEAD")
        for rel, data in files.items():
            assert repo.read(rel) == data, rel
        st = repo.status()
        assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []
        repo.fsck_clean()


PAGE = 4096


@pytest.mark.parametrize("first", [True, False], ids=["first-commit", "later-commit"])
def test_disk_full_at_every_step_of_a_commit(small_disk: Path, first: bool) -> None:
    """Free one more page each round until the commit fits: every failure is clean.

    A commit that fails leaves HEAD where it was; one that succeeds has moved it, and
    anything it could not record afterwards is a warning saying what to run.
    """
    repo = init_repo(small_disk / "repo")
    old = None if first else committed(repo, {"d/a.txt": "a1"})
    repo.write("d/a.txt", "a2")
    repo.write("d/sub/new.txt", "new")
    add_in_process(repo, "d")
    filler = small_disk / "filler"
    for pages in range(64):
        fill(filler)
        os.truncate(filler, filler.stat().st_size - pages * PAGE)
        r = repo.run("commit", "-m", "squeezed", "--tag", "squeezed")
        filler.unlink()
        if r.code == 0:
            break
        assert_error(r, "nothing was committed, what is staged stays staged", "disk is full")
        st = repo.status()
        assert st["head"] == (None if first else "v1"), (pages, str(r))
        assert {c["path"] for c in st["staged"]} == {"d/a.txt", "d/sub/new.txt"}
        with Workers(2) as w:
            report = fsck(Repository(repo.root), w)  # in this process: faster
        assert report.clean, (pages, report.problems)
    assert_ok(r)
    assert pages > 0  # the full disk did refuse at least once
    new = repo.show()
    assert new["message"] == "squeezed" and new["parents"] == ([] if first else [old])
    assert repo.cat("HEAD:d/sub/new.txt") == b"new"
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == []
    for line in warnings_of(r):  # each names what to run to finish the job
        assert "is committed, but" in line and "run `dvfs" in line, str(r)
        repo.ok(*line.rsplit("run `dvfs ", 1)[1].split("`")[0].split())
    assert repo.show("squeezed")["id"] == new["id"]
    repo.fsck_clean()


# ---------------------------------------------------------------------------- two commands at once


def test_a_held_lock_with_zero_timeout_fails_cleanly(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "1"})
    repo.write("d/a.txt", "2")
    add_in_process(repo, "d")
    with repository_lock(repo.root / ".dvfs" / "lock", 0):
        r = repo.run("commit", "-m", "blocked", env={"DVFS_LOCK_TIMEOUT": "0"})
        assert_error(r, "another dvfs command", f"pid {os.getpid()}", "lock")
        r = repo.run("add", "d", env={"DVFS_LOCK_TIMEOUT": "0"})
        assert_error(r, "another dvfs command", "lock")
    assert repo.status()["head"] == "v1"
    repo.ok("commit", "-m", "after the lock was released", env={"DVFS_LOCK_TIMEOUT": "0"})
    assert repo.status()["head"] == "v2"
    repo.fsck_clean()


def test_a_commit_waits_for_the_lock(repo: Repo) -> None:
    committed(repo, {"d/a.txt": "1"})
    repo.write("d/a.txt", "2")
    add_in_process(repo, "d")
    args = ("commit", "-m", "waited")
    with repository_lock(repo.root / ".dvfs" / "lock", 0):
        proc = spawn_ready(repo.root, *args)  # the default timeout is seconds long
        go(proc)
        time.sleep(0.5)
        assert proc.poll() is None, finish(proc, args)  # still waiting for the lock
    r = assert_ok(finish(proc, args))
    assert r.out.startswith("v2 ")
    assert repo.show()["message"] == "waited"
    repo.fsck_clean()


@pytest.mark.parametrize("timeout", ["10", "0"])
def test_two_commits_at_once(repo: Repo, timeout: str) -> None:
    v1 = committed(repo, {"d/a.txt": "1"})
    repo.write("d/a.txt", "2")
    add_in_process(repo, "d")
    env = {"DVFS_LOCK_TIMEOUT": timeout}
    runs = [("commit", "-m", f"racer {i}") for i in range(2)]
    procs = [spawn_ready(repo.root, *a, env=env) for a in runs]
    for p in procs:
        go(p)
    results = [finish(p, a) for p, a in zip(procs, runs, strict=True)]
    winners = [r for r in results if r.code == 0]
    losers = [r for r in results if r.code != 0]
    assert len(winners) == 1 and len(losers) == 1, "\n".join(map(str, results))
    assert_ok(winners[0])
    line = assert_error(losers[0])
    # The loser either waited and found the data committed, or was told about the lock.
    assert "nothing to commit" in line or "another dvfs command" in line, line
    log = repo.json("log", "--json")
    assert [v["version"] for v in log] == ["v2", "v1"]
    assert log[1]["id"] == v1
    assert log[0]["message"] == winners[0].args[2]
    assert repo.status()["staged"] == []
    repo.fsck_clean()


# ----------------------------------------------------------------------------------------- kill -9


KILLS = 20


def test_kill_9_at_any_moment_of_a_commit(make_repo: RepoFactory) -> None:
    """Kill commits at random moments; each time the repository must be whole.

    The repository is inside a git work tree, so a commit also asks git for its HEAD
    and rewrites dvfs.lock: every step a commit takes is a place it can be killed.
    """
    repo = make_repo(git_repo=True)
    repo.write("README.md", "code\n")
    git(repo.root, "add", "README.md")
    git(repo.root, "commit", "-q", "-m", "code")
    for i in range(40):  # enough files and directories to give the commit some work
        repo.write(f"d{i % 8}/sub{i % 3}/f{i}.txt", f"file {i}")
    repo.ok("add", *(f"d{i}" for i in range(8)))
    repo.ok("commit", "-m", "base")
    rng = random.Random(1234)
    root = repo.root

    def stage(i: int) -> None:
        (root / "d0" / "sub0" / "f0.txt").write_text(f"change {i}")
        (root / f"d{i % 8}" / "sub1" / f"new{i}.txt").write_text(f"new {i}")
        with Workers(2) as w:
            add(Repository(root), [str(root / "d0"), str(root / f"d{i % 8}")], w)

    def head() -> bytes:
        oid = Repository(root).history.head_id()
        assert oid is not None
        return oid

    # How long a commit runs once started (not asserted: it only spreads the kills).
    stage(-1)
    args = ("commit", "-m", "timed")
    proc = spawn_ready(root, *args)
    t0 = time.monotonic()
    go(proc)
    assert_ok(finish(proc, args))
    span = time.monotonic() - t0

    outcomes = {"old": 0, "new": 0}
    for i in range(KILLS):
        old = head()
        stage(i)
        args = ("commit", "-m", f"attempt {i}")
        proc = spawn_ready(root, *args)
        go(proc)
        time.sleep(rng.uniform(0, span * 1.2))
        proc.kill()
        proc.communicate()

        r = Repository(root)
        with Workers(2) as w:
            report = fsck(r, w)
        assert report.clean, (i, report.problems)
        now = head()
        if now == old:
            outcomes["old"] += 1
        else:
            v = r.history.version(now)
            assert v.parents == (old,) and v.message == f"attempt {i}", (i, v)
            outcomes["new"] += 1
        # dvfs.lock names a version of the branch: the new one, or an older one when
        # the kill came between moving the branch and rewriting the file.
        chain = [oid for oid, _ in r.history.chain(now)]
        assert read_lock(root).oid in chain, i
        r.index()  # the staging index is always readable

    print(f"kill -9 over {span * 1000:.0f} ms commits: {outcomes}")
    log = repo.json("log", "--json")
    numbers = [int(v["version"][1:]) for v in log]
    assert numbers == list(range(len(log), 0, -1))
    assert len(log) == 2 + outcomes["new"]
    st = repo.status()
    assert st["detached"] is None and st["modified"] == [] and st["deleted"] == []
    stage(KILLS)
    last = repo.commit("not killed")  # a finished commit leaves everything in step
    assert read_lock(root).oid.hex() == last
    assert repo.status()["staged"] == []
    repo.fsck_clean()


def test_rm_stopped_by_a_full_disk_deletes_nothing(small_disk: Path) -> None:
    """`dvfs rm` deleted the files, then failed to save the index on a full disk:
    status then listed every one as deleted, though the rm had "failed". The index is
    saved first now: a failed rm leaves the files and the index as they were."""
    repo = init_repo(small_disk / "repo")
    files = {f"d/f{i}.txt": "" for i in range(20)}  # (empty: deleting them frees no room)
    committed(repo, {**files, "keep.txt": "kept"})
    fill(small_disk / "fill")
    assert_error(repo.run("rm", "d"), "disk is full")
    assert all(repo.read(name) == text.encode() for name, text in files.items())
    (small_disk / "fill").unlink()
    st = repo.status()
    assert st["staged"] == [] and st["deleted"] == [] and st["untracked"] == [], st
    repo.ok("rm", "d")
    assert not (repo.root / "d").exists()
    assert [c["path"] for c in repo.status()["staged"]] == sorted(files)
    repo.fsck_clean()


def test_a_killed_checkout_is_named_by_status_and_by_the_next_refusal(repo: Repo) -> None:
    """After `kill -9` of `dvfs checkout v1` (files written, index and HEAD not yet),
    `dvfs checkout main` was refused with "uncommitted changes ... commit them", though
    the files were v1's committed content, and status said nothing of the checkout cut
    short. Now status says so, and the refusal says to run it again or use --force."""
    from vfs.ops.checkout import KILL_ENV

    names = [f"d/f{i:03d}.txt" for i in range(60)]
    committed(repo, {n: f"one {n}\n" for n in names})
    committed(repo, {**{n: f"two {n}\n" for n in names}, "d/new.txt": "new\n"})
    assert repo.run("checkout", "v1", env={KILL_ENV: "written"}).code == -9
    st = repo.status()
    assert st["head"] == "v2" and st["cut_short"] == {
        "action": "checkout", "to": "v1", "again": "dvfs checkout v1", "paths": []
    }  # fmt: skip
    human = repo.ok("status").out
    assert "A checkout to v1 was cut short" in human and "`dvfs checkout v1`" in human, human
    line = assert_error(
        repo.run("checkout", "main"),
        "they are files of v1 that a checkout cut short left",
        "run `dvfs checkout v1` to finish it, or use --force",
    )
    assert "commit them" not in line
    repo.ok("checkout", "v1")  # what the line says finishes it
    st = repo.status()
    assert st["cut_short"] is None and st["detached"] == "v1" and st["modified"] == []
    assert all(repo.read(n) == f"one {n}\n".encode() for n in names)
    assert "cut short" not in repo.ok("status").out

    assert repo.run("switch", "main", env={KILL_ENV: "written"}).code == -9
    assert repo.status()["cut_short"]["again"] == "dvfs switch main"
    repo.ok("restore", ".")  # or go back: HEAD's files, and nothing cut short left
    st = repo.status()
    assert st["cut_short"] is None and st["modified"] == [] and st["detached"] == "v1"
    repo.fsck_clean()


def test_restore_after_a_killed_checkout_takes_back_the_files_it_wrote(repo: Repo) -> None:
    """`dvfs restore .`, which status offers to go back after a checkout cut short,
    put back HEAD's files but left those only the target has: d/new.txt stayed, an
    untracked file nobody had made, and a top-level one was not even listed. They are
    deleted when they hold the target's content; anything else stays."""
    from vfs.ops.checkout import KILL_ENV

    names = [f"d/f{i:03d}.txt" for i in range(20)]
    committed(repo, {n: f"one {n}\n" for n in names})
    committed(repo, {**{n: f"two {n}\n" for n in names}, "d/new.txt": "new\n", "top.txt": "t\n",
                     "d/edited.txt": "theirs\n"})  # fmt: skip
    repo.ok("checkout", "v1")
    assert repo.run("switch", "main", env={KILL_ENV: "written"}).code == -9
    assert repo.read("d/new.txt") == b"new\n" and repo.read("top.txt") == b"t\n"
    repo.write("d/edited.txt", "changed by hand since\n")
    repo.write("d/mine.txt", "the user's own\n")
    out = repo.ok("restore", ".").out
    assert "2 deleted (left by the switch to v2 cut short)" in out, out
    assert not (repo.root / "d/new.txt").exists() and not (repo.root / "top.txt").exists()
    assert repo.read("d/edited.txt") == b"changed by hand since\n"
    assert repo.read("d/mine.txt") == b"the user's own\n"
    assert all(repo.read(n) == f"one {n}\n".encode() for n in names)
    st = repo.status()
    assert st["cut_short"] is None and st["modified"] == [] and st["detached"] == "v1"
    assert st["untracked"] == ["d/edited.txt", "d/mine.txt"]
    repo.fsck_clean()


def test_a_checkout_stopped_by_a_full_disk_says_what_it_did(small_disk: Path) -> None:
    """A checkout stopped by a full disk once it had deleted the files the target
    lacks said "nothing half-written was kept; free some space and run the command
    again", as if nothing had changed, and status said nothing of it. Now the line
    says what was done and what finishes it, and status says the checkout was cut short."""
    repo = init_repo(small_disk / "repo")
    committed(repo, {"d/big.bin": rand(3 * MiB, seed=41), "d/a.txt": "a\n"})
    repo.ok("rm", "d/big.bin")
    committed(repo, {f"d/only{i}.txt": f"{i}\n" for i in range(5)}, "two")
    (small_disk / "room").write_bytes(b"\0" * MiB)  # (room for the records, not for big.bin)
    fill(small_disk / "fill")
    (small_disk / "room").unlink()
    line = assert_error(
        repo.run("checkout", "v1"),
        "the disk is full while writing the files of v1: 5 files v1 does not have were deleted",
        "free some space and run `dvfs checkout v1` again to finish",
    )
    assert "nothing half-written was kept" not in line
    assert not (repo.root / "d" / "only0.txt").exists()
    (small_disk / "fill").unlink()
    st = repo.status()
    assert st["head"] == "v2" and st["cut_short"]["again"] == "dvfs checkout v1", st
    repo.ok("checkout", "v1")
    st = repo.status()
    assert st["cut_short"] is None and st["detached"] == "v1" and st["modified"] == []
    assert repo.read("d/big.bin") == rand(3 * MiB, seed=41)
    repo.fsck_clean()


def test_a_killed_checkout_of_paths_is_told_by_status_and_commit_all(repo: Repo) -> None:
    """`kill -9` of `dvfs checkout v1 -- d` once it had written v1's files left no
    record: status called them changes to commit, and `dvfs commit -a` recorded them as
    v3 of main, a version mixing v1's and v2's files. Status names the checkout cut
    short now, and what finishes it; commit -a refuses; running it again finishes it."""
    from vfs.ops.checkout import KILL_ENV

    committed(repo, {"d/a.txt": "one\n", "d/b.txt": "bee\n", "e/c.txt": "c1\n"})
    committed(repo, {"d/a.txt": "two\n", "d/b.txt": "bee 2\n", "e/c.txt": "c2\n"})
    assert repo.run("checkout", "v1", "--", "d", env={KILL_ENV: "written"}).code == -9
    st = repo.status()
    assert st["cut_short"] == {
        "action": "checkout", "to": "v1", "again": "dvfs checkout v1 -- d", "paths": ["d"]
    }, st  # fmt: skip
    out = repo.ok("status").out
    assert "A checkout of d from v1 was cut short" in out and "dvfs checkout v1 -- d" in out
    line = assert_error(repo.run("commit", "-a", "-m", "mixed"), code=2)
    assert "files of v1 that a checkout cut short left: `dvfs checkout v1 -- d`" in line
    assert repo.head_id() == repo.json("log", "-n", "1", "--json")[0]["id"]
    assert len(repo.json("log", "--json")) == 2  # nothing committed
    repo.ok("checkout", "v1", "--", "d")  # what the line says finishes it
    st = repo.status()
    assert st["cut_short"] is None and repo.read("d/a.txt") == b"one\n", st
    assert repo.read("e/c.txt") == b"c2\n"
    repo.fsck_clean()


def test_a_checkout_of_paths_leaves_a_whole_checkout_s_record(repo: Repo) -> None:
    """A checkout of PATHs after a whole one was cut short leaves its record: the
    working tree still holds what the whole one left elsewhere."""
    from vfs.ops.checkout import KILL_ENV

    committed(repo, {"d/a.txt": "one\n", "e/c.txt": "c1\n"})
    committed(repo, {"d/a.txt": "two\n", "e/c.txt": "c2\n"})
    assert repo.run("checkout", "v1", env={KILL_ENV: "written"}).code == -9
    repo.ok("checkout", "--force", "v2", "--", "d")
    st = repo.status()
    assert st["cut_short"] is not None and st["cut_short"]["paths"] == [], st
    repo.ok("checkout", "v1")
    assert repo.status()["cut_short"] is None
    repo.fsck_clean()


def test_commit_all_after_a_killed_checkout_records_nothing(repo: Repo) -> None:
    """After `kill -9` of `dvfs checkout v1` (v1's files written, HEAD still main at v2),
    `dvfs commit -a` staged the files the checkout had written as changes and recorded
    them as v3 of main: a version mixing v1's and v2's files that nobody made. It is
    refused now, naming what finishes the checkout and what goes back."""
    from vfs.ops.checkout import KILL_ENV

    committed(repo, {"d/a.txt": "one\n"})
    committed(repo, {"d/a.txt": "two\n", "d/new.txt": "new\n"})
    assert repo.run("checkout", "v1", env={KILL_ENV: "written"}).code == -9
    line = assert_error(repo.run("commit", "-a", "-m", "mixed"), code=2)
    assert "files of v1 that a checkout cut short left: `dvfs checkout v1` finishes it" in line
    assert "nothing was staged or committed" in line
    st = repo.status()
    assert st["head"] == "v2" and st["staged"] == [] and st["cut_short"] is not None, st
    repo.ok("checkout", "v1")  # what the line says finishes it
    assert repo.read("d/a.txt") == b"one\n" and repo.status()["cut_short"] is None
    repo.fsck_clean()
