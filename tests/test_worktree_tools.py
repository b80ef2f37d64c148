"""Real tools at work in the writable working tree, each followed by a snapshot.

git, rsync, tar, sqlite, an editor's save, shutil.copytree, mv and two appending
processes each change MNT the way they change a local disk; the same work is done
on a local copy of the branch head (or the tool's own input is the expected tree).
After each: ``dvfs snapshot``, the new ``.versions/vN`` and MNT compared with the
expected tree (contents, modes, link targets, and mtimes where the tool sets
them), and ``dvfs fsck``.
"""

from __future__ import annotations

import io
import os
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

from tests.support.cli import assert_ok, git
from tests.support.mount import MTIME
from tests.support.trees import tree_of
from tests.test_worktree import Worktree, wt_fixture

__all__ = ["wt_fixture"]  # the fixture, for pytest


def sh(cwd: Path, *args: str) -> str:
    """Run a tool; its standard output (it must succeed)."""
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False, timeout=120)
    assert proc.returncode == 0, f"{' '.join(args)}: {proc.stderr}"
    return proc.stdout


def make_tree(root: Path, files: int, dirs: int = 1, seed: int = 0) -> None:
    """``files`` small files over ``dirs`` directories, with modes, mtimes and links."""
    for i in range(files):
        d = root / f"d{i % dirs:03d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i:05d}.txt"
        p.write_bytes(f"file {i} seed {seed}\n".encode() * (1 + i % 7))
        os.chmod(p, 0o755 if i % 11 == 0 else 0o644)
        os.utime(p, ns=(MTIME * 10**9 + i * 1001, MTIME * 10**9 + i * 1001))
    os.symlink(f"d000/f{0:05d}.txt", root / "first")
    os.symlink("d000", root / "dirlink")
    os.mkdir(root / "empty")


# --------------------------------------------------------------------------------- git


def test_a_bare_git_repository_inside_the_working_tree(wt: Worktree, tmp_path: Path) -> None:
    """git keeps a repository in MNT and pushes to it: objects, packs, renames, unlinks.

    A repository with a ``.git`` cannot be made in MNT (reserved names: see
    test_mount_security); a bare one has none.
    """
    bare = wt.data / "proj.git"
    git(wt.data, "init", "-q", "--bare", "proj.git")
    work = tmp_path / "proj"
    git(tmp_path, "clone", "-q", str(bare), str(work))
    (work / "README").write_text("a project\n")
    (work / "src").mkdir()
    (work / "src" / "main.py").write_text("print('hi')\n")
    os.chmod(work / "src" / "main.py", 0o755)
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "first")
    (work / "README").write_text("a project, edited\n")
    git(work, "mv", "src/main.py", "src/app.py")
    git(work, "commit", "-q", "-am", "second")
    git(work, "push", "-q", "origin", "HEAD")
    git(bare, "gc", "-q")  # packs, then deletes loose objects: renames and unlinks
    head = git(work, "rev-parse", "HEAD")
    assert git(bare, "rev-parse", "HEAD") == head
    shutil.copytree(bare, wt.local / "proj.git", symlinks=True)  # what the version must hold
    n = wt.snapshot("a git repository")
    wt.check(n)
    # the recorded repository is whole: git reads it from the version, read-only
    frozen = wt.mnt / ".versions" / f"v{n}" / "data" / "proj.git"
    assert git(frozen, "rev-parse", "HEAD") == head
    assert git(frozen, "log", "--format=%s") == "second\nfirst"
    git(frozen, "fsck", "--full", "--no-dangling")
    assert git(frozen, "show", "HEAD:README") == "a project, edited"
    # and keeps working in MNT after the snapshot
    (work / "new.txt").write_text("more\n")
    git(work, "add", "new.txt")
    git(work, "commit", "-q", "-m", "third")
    git(work, "push", "-q", "origin", "HEAD")
    shutil.rmtree(wt.local / "proj.git")
    shutil.copytree(bare, wt.local / "proj.git", symlinks=True)
    n = wt.snapshot("a third git commit")
    wt.check(n)
    git(wt.mnt / ".versions" / f"v{n}" / "data" / "proj.git", "fsck", "--full", "--no-dangling")


# ------------------------------------------------------------------------------- rsync


def test_rsync_a_into_the_working_tree(wt: Worktree, tmp_path: Path) -> None:
    src = tmp_path / "src"
    make_tree(src, 300, dirs=10)
    sh(tmp_path, "rsync", "-a", f"{src}/", f"{wt.data}/synced/")
    shutil.copytree(src, wt.local / "synced", symlinks=True)
    n = wt.snapshot("rsync")
    wt.check(n, mtimes=True)
    # a second run over it: changed files are replaced (temp file + rename), others kept
    for i in (3, 150, 299):
        p = src / f"d{i % 10:03d}" / f"f{i:05d}.txt"
        p.write_bytes(b"changed by the second run\n")
        os.utime(p, ns=(MTIME * 10**9 + 5, MTIME * 10**9 + 5))
    os.unlink(src / "d004" / "f00004.txt")
    os.chmod(src / "d005" / "f00005.txt", 0o600)
    out = sh(tmp_path, "rsync", "-a", "--delete", "-i", f"{src}/", f"{wt.data}/synced/")
    assert "*deleting   d004/f00004.txt" in out.splitlines()
    shutil.rmtree(wt.local / "synced")
    shutil.copytree(src, wt.local / "synced", symlinks=True)
    n = wt.snapshot("rsync again")
    wt.check(n, mtimes=True)
    # rsync finds nothing to do against what the working tree now holds
    assert sh(tmp_path, "rsync", "-a", "-i", f"{src}/", f"{wt.data}/synced/") == ""


# --------------------------------------------------------------------------------- tar


def tar_of_tree(archive: Path, files: int, dirs: int) -> None:
    """A tar archive at ``archive`` of what ``make_tree(root, files, dirs)`` makes, as
    ``tar cf`` of it writes it (mtimes in whole seconds), written without the tree."""
    with tarfile.open(archive, "w", format=tarfile.GNU_FORMAT) as tar:

        def add(name: str, kind: bytes, mode: int, data: bytes = b"", link: str = "") -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime, info.size, info.linkname = (
                kind, mode, MTIME, len(data), link
            )  # fmt: skip
            tar.addfile(info, io.BytesIO(data))

        add(".", tarfile.DIRTYPE, 0o755)
        for d in range(dirs):
            add(f"./d{d:03d}", tarfile.DIRTYPE, 0o755)
        for i in range(files):
            data = f"file {i} seed 0\n".encode() * (1 + i % 7)
            add(
                f"./d{i % dirs:03d}/f{i:05d}.txt",
                tarfile.REGTYPE,
                0o755 if i % 11 == 0 else 0o644,
                data,
            )
        add("./first", tarfile.SYMTYPE, 0o777, link="d000/f00000.txt")
        add("./dirlink", tarfile.SYMTYPE, 0o777, link="d000")
        add("./empty", tarfile.DIRTYPE, 0o755)


def test_tar_x_of_thousands_of_files(wt: Worktree, tmp_path: Path) -> None:
    archive = tmp_path / "t.tar"
    tar_of_tree(archive, 3000, dirs=30)
    (wt.data / "t").mkdir()
    sh(tmp_path, "tar", "xf", str(archive), "-C", str(wt.data / "t"))
    (wt.local / "t").mkdir()
    sh(tmp_path, "tar", "xf", str(archive), "-C", str(wt.local / "t"))
    got = assert_ok(wt.dvfs("snapshot", str(wt.mnt), "-m", "tar x", "--json")).json()
    assert got["hashed"] == 3000
    wt.check(got["number"], mtimes=True)


# ------------------------------------------------------------------------------ sqlite


def test_sqlite_creates_and_updates_a_database(wt: Worktree) -> None:
    db = wt.data / "db.sqlite"
    with sqlite3.connect(db) as con:  # rollback journal: db-journal created, then deleted
        con.execute("create table t (k integer primary key, v text)")
        con.executemany("insert into t values (?, ?)", ((i, f"v{i}" * 50) for i in range(2000)))
    with sqlite3.connect(db) as con:
        con.execute("update t set v = 'updated' where k % 3 = 0")
        con.execute("delete from t where k % 7 = 0")
    con.close()
    assert sorted(os.listdir(wt.data)) == sorted([*os.listdir(wt.local), "db.sqlite"])
    shutil.copy2(db, wt.local / "db.sqlite")
    n = wt.snapshot("sqlite")
    wt.check(n)
    frozen = wt.mnt / ".versions" / f"v{n}" / "data" / "db.sqlite"
    want = rows(wt.local / "db.sqlite")
    assert len(want) == 2000 - 286
    assert rows(frozen) == want
    # WAL mode: the -wal and -shm files (mmap'ed) come and go; the database is updated
    con = sqlite3.connect(db)
    assert con.execute("pragma journal_mode=wal").fetchone() == ("wal",)
    with con:
        con.execute("insert into t values (5000, 'in wal')")
    with con:
        con.execute("update t set v = 'wal update' where k < 10")
    con.close()  # the last connection checkpoints and removes the -wal file
    assert not (wt.data / "db.sqlite-wal").exists()
    shutil.copy2(db, wt.local / "db.sqlite")
    n = wt.snapshot("sqlite wal")
    wt.check(n)
    got = rows(wt.mnt / ".versions" / f"v{n}" / "data" / "db.sqlite")
    assert (5000, "in wal") in got and (1, "wal update") in got
    assert len(got) == len(want) + 1


def rows(db: Path) -> list[tuple[int, str]]:
    """The table of ``db``, opened read-only (it may be in a version); checks integrity."""
    con = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        assert con.execute("pragma integrity_check").fetchone() == ("ok",)
        return list(con.execute("select k, v from t order by k"))
    finally:
        con.close()


# ------------------------------------------------------------------------------ editor


def editor_save(path: Path, text: bytes) -> None:
    """Save as editors do: write a temp file, fsync, keep the mode, rename over the file."""
    tmp = path.with_name(f".{path.name}.swp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, text)
        os.fsync(fd)
        os.fchmod(fd, os.stat(path).st_mode & 0o7777)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def test_editor_style_save_replaces_files_in_place(wt: Worktree) -> None:
    for root in (wt.data, wt.local):
        editor_save(root / "a.txt", b"alpha, saved by an editor\n")  # a file of the version
        editor_save(root / "run.sh", b"#!/bin/sh\necho saved\n")  # keeps its 0755
        (root / "notes.md").write_bytes(b"draft\n")
        editor_save(root / "notes.md", b"final\n")  # a new file, saved twice
        shutil.copy2(root / "sub" / "b.txt", root / "sub" / "b.txt~")  # a backup copy
        editor_save(root / "sub" / "b.txt", b"bravo, saved\n")
    assert (wt.data / "a.txt").read_bytes() == b"alpha, saved by an editor\n"
    assert not (wt.data / ".a.txt.swp").exists()
    st = wt.status()
    assert st["modified"] == ["data/a.txt", "data/run.sh", "data/sub/b.txt"]
    assert st["added"] == ["data/notes.md", "data/sub/b.txt~"]
    assert st["deleted"] == [] and st["renamed"] == []
    n = wt.snapshot("editor saves")
    wt.check(n)
    assert os.stat(wt.mnt / ".versions" / f"v{n}" / "data" / "run.sh").st_mode & 0o777 == 0o755


# ---------------------------------------------------------------- copytree and mv


def test_shutil_copytree_from_a_version_and_from_local_disk(wt: Worktree, tmp_path: Path) -> None:
    v1 = wt.mnt / ".versions" / "v1" / "data"
    shutil.copytree(v1, wt.data / "copy-of-v1", symlinks=True)
    shutil.copytree(wt.repo / "data", wt.local / "copy-of-v1", symlinks=True)
    src = tmp_path / "src"
    make_tree(src, 200, dirs=8, seed=1)
    shutil.copytree(src, wt.data / "imported", symlinks=True)
    shutil.copytree(src, wt.local / "imported", symlinks=True)
    n = wt.snapshot("copytree")
    wt.check(n)
    # copy2 kept the mtimes: those of the imported tree, and of v1's files
    imported = wt.mnt / ".versions" / f"v{n}" / "data" / "imported"
    assert tree_of(imported, mtimes=True) == tree_of(src, mtimes=True)
    assert tree_of(wt.data / "copy-of-v1", mtimes=True) == tree_of(v1, mtimes=True)


def test_mv_of_directories_across_directories(wt: Worktree) -> None:
    for root in (wt.data, wt.local):
        os.makedirs(root / "archive" / "2024")
        (root / "new").mkdir()
        (root / "new" / "inner").mkdir()
        (root / "new" / "inner" / "n.txt").write_bytes(b"new file\n")
        sh(root, "mv", "sub", "archive/2024/")  # a directory of the version, never opened
        sh(root, "mv", "new", "archive/")  # a directory made through the mount
        sh(root, "mv", "dir2", "archive/2024/sub/deep/")  # into the one just moved
        (root / "archive" / "2024" / "sub" / "b.txt").write_bytes(b"edited after mv\n")
    st = wt.status()
    assert sorted(st["renamed"]) == [
        ["data/dir2/", "data/archive/2024/sub/deep/dir2/"],
        ["data/sub/", "data/archive/2024/sub/"],
    ]
    assert st["added"] == ["data/archive/"]
    assert st["modified"] == ["data/archive/2024/sub/b.txt"]
    assert st["deleted"] == []
    n = wt.snapshot("mv")
    wt.check(n)
    # and back again, after the snapshot
    for root in (wt.data, wt.local):
        sh(root, "mv", "archive/2024/sub", ".")
        sh(root, "mv", "archive", "sub/")
    assert sorted(wt.status()["renamed"]) == [
        ["data/archive/", "data/sub/archive/"],
        ["data/archive/2024/sub/", "data/sub/"],
    ]
    n = wt.snapshot("mv back")
    wt.check(n)


# ------------------------------------------------------------------------------- appends

APPENDER = textwrap.dedent(
    """
    import os, sys
    path, tag, count, lockstep = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    for i in range(count):
        if lockstep:
            sys.stdin.buffer.read(1)
        record = f"{tag} {i:06d} ".encode() + tag.encode() * (40 + i % 60) + b"\\n"
        assert os.write(fd, record) == len(record)
        if lockstep:
            sys.stdout.buffer.write(b"."); sys.stdout.flush()
    os.close(fd)
    """
)


def appender(path: Path, tag: str, count: int, lockstep: bool) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(path), tag, str(count), "1" if lockstep else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )


def record(tag: str, i: int) -> bytes:
    return f"{tag} {i:06d} ".encode() + tag.encode() * (40 + i % 60) + b"\n"


def test_appends_from_two_processes_keep_every_record(wt: Worktree) -> None:
    log = wt.data / "a.txt"  # a file of the version, appended to by two writers
    # lockstep: A and B take turns, so the file must be exactly A0 B0 A1 B1 ...
    a, b = appender(log, "A", 200, True), appender(log, "B", 200, True)
    for _ in range(200):
        for p in (a, b):
            assert p.stdin is not None and p.stdout is not None
            p.stdin.write(b"g")
            p.stdin.flush()
            assert p.stdout.read(1) == b"."
    assert a.wait(30) == 0 and b.wait(30) == 0
    want = b"alpha\n" + b"".join(record("A", i) + record("B", i) for i in range(200))
    assert log.read_bytes() == want
    # free-running: interleaved as it happens, each record whole and in its writer's order
    c, d = (
        appender(wt.data / "free.log", "C", 1500, False),
        appender(wt.data / "free.log", "D", 1500, False),
    )
    assert c.wait(60) == 0 and d.wait(60) == 0
    lines = (wt.data / "free.log").read_bytes().splitlines(keepends=True)
    assert len(lines) == 3000
    for tag in ("C", "D"):
        assert [ln for ln in lines if ln.startswith(tag.encode())] == [
            record(tag, i) for i in range(1500)
        ]
    (wt.local / "a.txt").write_bytes(want)
    (wt.local / "free.log").write_bytes(b"".join(lines))
    n = wt.snapshot("two appenders")
    wt.check(n)
