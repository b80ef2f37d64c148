"""``dvfs mount``, ``dvfs mounts`` and ``dvfs umount`` as a user runs them.

The background mode is the CLI's own: it must return once the mount is up (exit
0) or print one error line (exit 1), and leave a daemon that ``dvfs mounts``
reports and ``dvfs umount`` stops. The failures a user meets before a mount is made
each get one clear line; a daemon killed outright leaves a mount that ``dvfs
umount`` clears; SIGTERM and SIGINT unmount cleanly.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import (
    Result,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    fsck_clean,
    run,
)
from tests.support.mount import (
    commit,
    dvfs,
    env_for,
    force_unmount,
    home_env,
    in_mount_table,
    mounted,
    stop,
    write,
)
from vfs import ChunkRef, Entry, Kind
from vfs._os.malloc import huge_heap_environment
from vfs.errors import DvfsError, UncommittedChanges, error_kind, from_kind
from vfs.model.codec import encode_tree
from vfs.model.version_codec import encode_version
from vfs.mount import control
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Path:
    """A repository with two versions."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"one\n")
    commit(repo, "one")
    write(root, "data/a.txt", b"two\n")
    commit(repo, "two")
    return root


def wait_gone(pid: int, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while os.path.exists(f"/proc/{pid}"):
        stat = Path(f"/proc/{pid}/stat").read_text() if os.path.exists(f"/proc/{pid}") else ""
        if ") Z" in stat:
            return
        assert time.monotonic() < deadline, f"pid {pid} still running"
        time.sleep(0.05)


def mounts_under(where: Path, home: Path) -> list[dict[str, Any]]:
    """`dvfs mounts --json` rows of mounts below ``where`` (others may exist on the machine)."""
    rows: list[dict[str, Any]] = assert_ok(dvfs(where, home, "mounts", "--json")).json()
    return [r for r in rows if Path(r["mountpoint"]).is_relative_to(where)]


def test_mount_in_background_then_mounts_and_umount(repo: Path, tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    try:
        r = assert_ok(dvfs(repo, home, "mount", str(mnt), "--cache-size", "1G"))  # SOURCE: cwd
        assert r.out.startswith(f"mounted {repo} (branch main) at {mnt}; daemon pid ")
        assert os.path.ismount(mnt)
        assert (mnt / "data" / "a.txt").read_bytes() == b"two\n"
        assert (mnt / ".versions" / "v1" / "data" / "a.txt").read_bytes() == b"one\n"
        (listed,) = mounts_under(tmp_path, home)
        assert listed["mountpoint"] == str(mnt)
        assert listed["source"] == str(repo)
        assert listed["branch"] == "main"
        assert listed["state"] == "mounted"
        assert listed["cache_size"] == 1 << 30
        pid = listed["pid"]
        text = assert_ok(dvfs(tmp_path, home, "mounts")).out
        assert f"{mnt}  {repo}  branch main  cache 0 B of 1.0 GiB  pid {pid}" in text
        log = Path(listed["cache_dir"], "daemon.log")
        assert "mounted" in log.read_text()
        assert log.stat().st_mode & 0o777 == 0o600  # it may name private paths
        r = assert_ok(dvfs(tmp_path, home, "umount", str(mnt)))
        assert r.out.strip() == f"unmounted {mnt}"
        assert not in_mount_table(mnt)
        wait_gone(pid)
        assert mounts_under(tmp_path, home) == []
        assert_error(dvfs(tmp_path, home, "umount", str(mnt)), "is not mounted", code=2)
    finally:
        force_unmount(mnt)


def _huge_page_areas(pid: int) -> int:
    """How many memory areas of a running process are marked for huge pages
    (``madvise(MADV_HUGEPAGE)``: ``hg`` among their ``VmFlags``)."""
    text = Path(f"/proc/{pid}/smaps").read_text()
    return sum(1 for line in text.splitlines() if line.startswith("VmFlags:") and " hg" in line)


def test_the_daemon_asks_for_huge_pages_for_its_heap(repo: Path, tmp_path: Path) -> None:
    """The kernel pins each chunk buffer for every cache write and reply: on huge pages
    that costs a page-table entry per 2 MiB, not per 4 KiB. In the foreground and in
    the background alike."""
    home, mnt, bg = tmp_path / "home", tmp_path / "mnt", tmp_path / "bg"
    with mounted(str(repo), mnt, home) as m:
        assert (mnt / "data" / "a.txt").read_bytes() == b"two\n"
        assert _huge_page_areas(m.proc.pid) > 0
    bg.mkdir()
    try:
        r = assert_ok(dvfs(repo, home, "mount", str(bg)))
        pid = int(r.out.rsplit("daemon pid ", 1)[1].split(",")[0])
        assert (bg / "data" / "a.txt").read_bytes() == b"two\n"
        assert _huge_page_areas(pid) > 0
    finally:
        assert_ok(dvfs(tmp_path, home, "umount", str(bg)))
        force_unmount(bg)


def test_the_users_own_malloc_tunables_are_kept_for_the_daemon() -> None:
    assert huge_heap_environment({"HOME": "/h"}) == {
        "HOME": "/h", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1",
    }  # fmt: skip
    mine = huge_heap_environment({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"})
    assert mine["GLIBC_TUNABLES"] == "glibc.malloc.tcache_count=7:glibc.malloc.hugetlb=1"
    off = {"GLIBC_TUNABLES": "glibc.malloc.hugetlb=0"}
    assert huge_heap_environment(off) == off  # the user's choice stands


def test_a_mount_point_with_a_control_character_is_quoted_in_every_line(
    repo: Path, tmp_path: Path
) -> None:
    """A read-only mount's refusal of a snapshot printed the mount point escaped but
    not quoted (`/tmp/x\\ny is a read-only dvfs mount`), where other lines quote it."""
    home = tmp_path / "home"
    mnt = tmp_path / "x\ny"
    with mounted(str(repo), mnt, home, "--read-only"):
        for args in (("snapshot", str(mnt), "-m", "m"), ("status", str(mnt))):
            line = assert_error(dvfs(tmp_path, home, *args), "is a read-only dvfs mount")
            assert f'"{tmp_path}/x\\ny" is a read-only dvfs mount' in line, line


def test_a_mount_point_with_a_carriage_return_or_an_escape_is_listed_and_logged_quoted(
    repo: Path, tmp_path: Path
) -> None:
    """The kernel's mount table escapes only space, tab, newline and backslash: a mount
    point holding a carriage return was read as two lines, so `dvfs mounts` said "no
    dvfs mounts" beside it; the daemon's log wrote such a path raw (a forged line, an
    escape sequence acting on the terminal of whoever reads the log)."""
    home = tmp_path / "home"
    mnt = tmp_path / "x\ry\x1b[2Jz\nw"
    shown = f'"{tmp_path}/x\\ry\\033[2Jz\\nw"'
    with mounted(str(repo), mnt, home) as m:
        (listed,) = mounts_under(tmp_path, home)
        assert listed["mountpoint"] == str(mnt)
        text = assert_ok(dvfs(tmp_path, home, "mounts")).out
        assert f"\n{shown}  {repo}  branch main" in "\n" + text, text
        assert "\x1b" not in text and "\r" not in text
        r = assert_ok(dvfs(tmp_path, home, "umount", str(mnt)))
        assert r.out == f"unmounted {shown}\n"
        wait_gone(listed["pid"])
    said = m.log.read_text()
    assert "\x1b" not in said and "\r" not in said
    lines = said.splitlines()
    assert [ln for ln in lines if "mounted" in ln and f"{tmp_path}/x\\ry\\033[2Jz\\nw" in ln]
    assert all(ln[:4].isdigit() for ln in lines), said  # each a line of its own
    fsck_clean(repo)


def test_a_mount_point_that_is_not_utf8_stops_no_command(repo: Path, tmp_path: Path) -> None:
    """The mount table was read as UTF-8 text: with any mount at a path that is not, every
    command that looks for its repository stopped with "internal error
    (UnicodeDecodeError ...)"."""
    home = tmp_path / "home"
    mnt = tmp_path / os.fsdecode(b"x\xffy")
    with mounted(str(repo), mnt, home, "--read-only"):
        assert_ok(dvfs(repo, home, "log", "--oneline"))
        (listed,) = mounts_under(tmp_path, home)
        assert os.fsencode(listed["mountpoint"]) == os.fsencode(mnt)
        text = assert_ok(dvfs(tmp_path, home, "mounts")).out
        assert f'"{tmp_path}/x\\377y"  {repo}' in text, text
    fsck_clean(repo)


def test_a_status_hint_names_a_mount_point_with_a_control_character_as_quoted(
    repo: Path, tmp_path: Path
) -> None:
    """The hints of `dvfs status MNT`, and of a snapshot refused because the branch
    moved, put the mount point in single quotes with its newline escaped
    (`'/tmp/x\\ny'`): pasted, that names a path with a backslash. They quote it as
    every other line quotes it."""
    home = tmp_path / "home"
    mnt = tmp_path / "x\ny"
    with mounted(str(repo), mnt, home):
        (mnt / "new").write_bytes(b"new\n")
        out = assert_ok(dvfs(tmp_path, home, "status", str(mnt))).out
        assert f'use `dvfs snapshot "{tmp_path}/x\\ny" -m MSG` to record them' in out, out
        write(repo, "data/moved.txt", b"moved\n")
        commit(Repository(repo), "moved")
        said = assert_error(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "m"), "moved to v3")
        assert f'run `dvfs snapshot "{tmp_path}/x\\ny" -m m --branch NEW`' in said, said
    fsck_clean(repo)


def test_mount_failures_are_one_clear_line(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    plain = tmp_path / "plain"
    plain.mkdir()
    empty = tmp_path / "empty"
    empty.mkdir()
    inner = repo / "inner"  # `dvfs add inner` would copy the repository into itself
    inner.mkdir()
    # a mount point or an option to change is a usage error (exit 2), as everywhere
    usage = [
        ((str(repo), str(inner), "--read-only"), ("inside the repository",)),
        ((str(repo), str(tmp_path / "missing")), ("does not exist",)),
        ((str(repo), str(full)), ("is not empty",)),
        ((str(repo), str(full / "x")), ("is not a directory",)),
        ((str(repo), str(empty), "--cache-size", "lots"), ("is not a size",)),
        # the repository's own lock would be the cache's, held while mounted
        ((str(repo), str(empty), "--cache-dir", str(repo / ".dvfs")), ("inside the repository",)),
        ((str(repo), str(empty), "--cache-dir", str(repo / "cache")), ("inside the repository",)),
    ]
    for args, fragments in usage:
        assert_error(dvfs(tmp_path, home, "mount", *args), *fragments, code=2)
    cases = [
        ((str(plain), str(empty)), ("neither a dvfs repository nor a dvfs remote",)),
        ((str(tmp_path / "nowhere"), str(empty)), ("does not exist",)),
        (("file://" + str(plain), str(empty)), ("holds no dvfs repository",)),
        (("file://" + str(tmp_path / "gone"), str(empty)), ("does not exist",)),
        (("ftp://x/y", str(empty)), ("unsupported remote url",)),
        ((str(repo), str(empty), "--branch", "nope"), ("has no branch nope",)),
    ]
    for args, fragments in cases:
        assert_error(dvfs(tmp_path, home, "mount", *args), *fragments)
        assert not in_mount_table(empty) and not in_mount_table(inner)
    inner.rmdir()
    with mounted(str(repo), tmp_path / "busy", home):
        assert_error(
            dvfs(tmp_path, home, "mount", str(repo), str(tmp_path / "busy")),
            "is already mounted", code=1,
        )  # fmt: skip
        # a second mount of the same repository with the same cache is refused too
        other = tmp_path / "other"
        other.mkdir()
        assert_error(
            dvfs(tmp_path, home, "mount", str(repo), str(other), "--cache-dir",
                 str(home / "cache-busy")),
            f"is in use by the mount at {tmp_path / 'busy'}", "pass another --cache-dir", code=1,
        )  # fmt: skip
        assert not in_mount_table(other)


def test_writable_and_read_only_together_are_refused(repo: Path, tmp_path: Path) -> None:
    """Both flags given is a usage error, whichever comes last; one given twice is fine."""
    home, empty = tmp_path / "home", tmp_path / "empty"
    empty.mkdir()
    for flags in (("--writable", "--read-only"), ("--read-only", "--writable", "--read-only")):
        r = dvfs(tmp_path, home, "mount", str(repo), str(empty), *flags)
        if in_mount_table(empty):
            force_unmount(empty)
            pytest.fail(f"mounted with {flags}")
        assert_error(r, "--writable and --read-only are mutually exclusive", code=2)
    with mounted(str(repo), empty, home, "--read-only", "--read-only"):
        with pytest.raises(OSError) as err:
            (empty / "new.txt").write_bytes(b"x")
        assert err.value.errno == errno.EROFS
    fsck_clean(repo)


def test_an_endpoint_beside_a_repository_or_a_directory_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    """`--endpoint-url` was accepted and dropped for a repository or a directory
    source: an s3:// SOURCE alone is reached through an endpoint (a repository's
    remotes keep their own); `dvfs ui` took it as silently."""
    home, empty = tmp_path / "home", tmp_path / "empty"
    empty.mkdir()
    for source, kind in ((str(repo), "a repository"), ("file:///nowhere", "a directory")):
        r = dvfs(tmp_path, home, "mount", source, str(empty), "--endpoint-url", "http://h:9")
        if in_mount_table(empty):
            force_unmount(empty)
            pytest.fail(f"mounted {source}")
        assert_error(r, f"--endpoint-url goes with an s3:// SOURCE, and {source} is {kind}", code=2)
        r = dvfs(tmp_path, home, "ui", source, "--endpoint-url", "http://h:9", "--port", "0")
        assert_error(r, "--endpoint-url goes with an s3:// SOURCE", code=2)
    fsck_clean(repo)


def test_a_cache_directory_inside_the_mount_point_is_refused_leaving_it_empty(
    repo: Path, tmp_path: Path
) -> None:
    """A cache directory at or inside MNT (a link too) is refused before it is made:
    made, it would leave MNT not empty, failing this mount and every later one there."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    (tmp_path / "link").symlink_to(mnt)
    for cache in (mnt / "cache", mnt, tmp_path / "link" / "c"):
        r = dvfs(tmp_path, home, "mount", str(repo), str(mnt), "--cache-dir", str(cache))
        if in_mount_table(mnt):
            force_unmount(mnt)
        assert_error(r, "is inside the mount point", "pass a --cache-dir outside it", code=2)
        assert list(mnt.iterdir()) == []
    with mounted(str(repo), mnt, home, "--read-only"):
        assert (mnt / "data" / "a.txt").read_bytes() == b"two\n"
    fsck_clean(repo)


def test_a_mount_of_a_repository_on_a_full_disk_says_so(small_disk: Path, tmp_path: Path) -> None:
    """The daemon pins the versions it shows (a file in .dvfs/pins): on a full disk that
    is one line saying the disk is full, not an internal error."""
    root, home, mnt = small_disk / "repo", tmp_path / "home", tmp_path / "mnt"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"one\n")
    commit(repo, "one")
    mnt.mkdir()
    filler = small_disk / "filler"
    with open(filler, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * (1 << 16))
    r = dvfs(tmp_path, home, "mount", str(root), str(mnt), "--read-only")
    if in_mount_table(mnt):
        force_unmount(mnt)
    line = assert_error(r, "the disk is full", "free some space", code=1)
    assert "internal error" not in line, line
    filler.unlink()
    with mounted(str(root), mnt, home, "--read-only"):
        assert (mnt / "data" / "a.txt").read_bytes() == b"one\n"
    fsck_clean(root)


def test_a_kernel_working_tree_whose_upper_layer_was_removed_mounts(
    repo: Path, tmp_path: Path
) -> None:
    """``rm -r .dvfs/worktrees/main/upper`` (changes thrown away by hand) failed the next
    mount with an internal error; it mounts, over the branch, with nothing changed."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay="kernel"):
        (mnt / "data" / "kept.txt").write_bytes(b"kept\n")
        assert_ok(dvfs(repo, home, "snapshot", str(mnt), "-m", "three"))
        (mnt / "data" / "thrown.txt").write_bytes(b"thrown away\n")
    shutil.rmtree(repo / ".dvfs" / "worktrees" / "main" / "upper")
    with mounted(str(repo), mnt, home):
        assert sorted(os.listdir(mnt / "data")) == ["a.txt", "kept.txt"]
        got = assert_ok(dvfs(repo, home, "status", str(mnt), "--json")).json()
        assert (got["added"], got["modified"], got["deleted"]) == ([], [], [])
    fsck_clean(repo)


def test_no_fuse_is_one_clear_line(repo: Path, tmp_path: Path) -> None:
    """With /dev/fuse hidden (in a private mount namespace), mounting says so."""
    fake = tmp_path / "not-fuse"
    fake.write_text("")
    (tmp_path / "mnt").mkdir()
    mount_cmd = " ".join(cli_command("mount", str(repo), str(tmp_path / "mnt")))
    proc = subprocess.run(
        ["unshare", "--mount", "sh", "-c", f"mount --bind {fake} /dev/fuse && exec {mount_cmd}"],
        capture_output=True, text=True, timeout=60, check=False,
        env=env_for(tmp_path / "home"),
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("dvfs: error:")]
    assert len(lines) == 1 and "FUSE is not available" in lines[0], proc.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_unmounts_cleanly(repo: Path, tmp_path: Path, signum: int) -> None:
    home = tmp_path / "home"
    with mounted(str(repo), tmp_path / "mnt", home) as m:
        assert (m.path / "data" / "a.txt").read_bytes() == b"two\n"
        m.proc.send_signal(signum)
        assert m.proc.wait(timeout=15) == 0, m.log_text()
        assert not in_mount_table(m.path)
        assert "unmounted" in m.log_text()
        assert mounts_under(tmp_path, home) == []


def test_umount_clears_the_mount_of_a_killed_daemon(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with mounted(str(repo), tmp_path / "mnt", home) as m:
        (m.path / "data" / "a.txt").read_bytes()
        m.proc.kill()
        m.proc.wait(timeout=15)
        assert in_mount_table(m.path)
        with pytest.raises(OSError) as info:
            os.listdir(m.path)
        assert info.value.errno == 107  # ENOTCONN: "Transport endpoint is not connected"
        (row,) = mounts_under(tmp_path, home)
        assert row["state"] == "dead"
        assert_error(
            dvfs(tmp_path, home, "mount", str(repo), str(m.path)), "daemon that died", "dvfs umount"
        )
        assert "daemon died" in assert_ok(dvfs(tmp_path, home, "mounts")).out
        assert_ok(dvfs(tmp_path, home, "umount", str(m.path)))
        assert not in_mount_table(m.path)
        assert mounts_under(tmp_path, home) == []
        assert stop(m) is not None


def test_umount_of_the_versions_of_a_kernel_overlay_names_the_mount_point(
    repo: Path, tmp_path: Path
) -> None:
    """With the kernel's overlay, MNT/.versions is a mount of its own: `dvfs umount
    MNT/.versions` unmounted it alone ("unmounted MNT/.versions"), which left MNT
    without its versions and `dvfs umount MNT` failing ("Invalid argument: close the
    files and programs using it") until --force."""
    home = tmp_path / "home"
    with mounted(str(repo), tmp_path / "mnt", home, overlay="kernel") as m:
        versions = m.path / ".versions"
        assert in_mount_table(versions)
        for extra in ((), ("--force",)):
            line = assert_error(dvfs(tmp_path, home, "umount", *extra, str(versions)), code=1)
            assert line == (
                f"dvfs: error: {versions} is part of the dvfs mount {m.path}: run "
                f"`dvfs umount {m.path}`"
            ), line
        assert in_mount_table(versions)
        assert (versions / "v2" / "data" / "a.txt").read_bytes() == b"two\n"
        assert_ok(dvfs(tmp_path, home, "umount", str(m.path)))
        assert not in_mount_table(m.path) and not in_mount_table(versions)
        assert m.proc.wait(timeout=15) == 0
    fsck_clean(repo)


def test_umount_of_a_busy_mount_needs_force(repo: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with mounted(str(repo), tmp_path / "mnt", home) as m:
        fd = os.open(m.path / "data" / "a.txt", os.O_RDONLY)
        try:
            assert_error(dvfs(tmp_path, home, "umount", str(m.path)), "--force", code=1)
            assert os.path.ismount(m.path)
            assert_ok(dvfs(tmp_path, home, "umount", "--force", str(m.path)))
            assert not in_mount_table(m.path)
            assert m.proc.wait(timeout=15) == 0
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)


def test_a_stopped_daemon_is_named_by_status_and_snapshot(repo: Path, tmp_path: Path) -> None:
    """A look into a mount whose daemon is stopped waits in the kernel for ever:
    `dvfs status MNT` and `dvfs snapshot MNT` give up and say what to do."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    env = {**home_env(home), control.LOOK_WAIT_ENV: "1"}
    with mounted(str(repo), mnt, home, "--writable") as m:
        (mnt / "data" / "b.txt").write_bytes(b"b\n")
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            for args in (("status", str(mnt)), ("snapshot", str(mnt), "-m", "b")):
                r = run(tmp_path, *args, env=env, timeout=30)
                assert_error(
                    r, f"(pid {m.proc.pid}) does not answer", f"dvfs umount --force {mnt}", code=1
                )
        finally:
            os.kill(m.proc.pid, signal.SIGCONT)
        assert "added:    data/b.txt" in assert_ok(dvfs(tmp_path, home, "status", str(mnt))).out
    fsck_clean(repo)


# Waits for a byte on stdin, then runs the command in its arguments: a process whose
# current directory was entered while the mount's daemon still answered.
_WAIT_THEN_EXEC = "import os, sys\nsys.stdin.buffer.read(1)\nos.execv(sys.argv[1], sys.argv[1:])\n"


def status_inside(where: Path, home: Path, then: Callable[[], None]) -> Result:
    """``dvfs status`` run with its current directory ``where``, entered before ``then``."""
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", _WAIT_THEN_EXEC, *cli_command("status")],
        cwd=where, env=cli_env(home_env(home)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        then()
        out, err = proc.communicate(b"go", timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return Result(("status",), proc.returncode, out, err.decode(errors="replace"))


def test_status_inside_a_mount_whose_daemon_stopped_or_died(repo: Path, tmp_path: Path) -> None:
    """`dvfs status` run in a mount's working tree looks for a repository without looking
    into the mount: with the daemon stopped it waited for ever, with the daemon killed
    it said "Transport endpoint is not connected" alone; now one line says what to run."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, "--writable") as m:
        pid = m.proc.pid
        try:
            r = status_inside(mnt / "data", home, lambda: os.kill(pid, signal.SIGSTOP))
        finally:
            os.kill(pid, signal.SIGCONT)
        assert_error(r, f"(pid {pid}) is stopped", f"kill -CONT {pid}", f"umount --force {mnt}")

        def kill() -> None:
            m.proc.kill()
            m.proc.wait()

        r = status_inside(mnt / "data", home, kill)
        assert_error(r, f"(pid {pid}) is gone", f"dvfs umount --force {mnt}", code=1)
        assert_ok(dvfs(tmp_path, home, "umount", "--force", str(mnt)))
    fsck_clean(repo)


@pytest.mark.parametrize("overlay", ["auto", "daemon"])
def test_a_repository_moved_while_mounted_is_named(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """The daemon names its repository by path: renamed while mounted, `dvfs status MNT`
    said "No such file or directory: REPO/.dvfs/worktrees/main/upper" (or, with the
    daemon's overlay, that the branch was deleted), `dvfs snapshot MNT` the same of
    REPO/.dvfs/lock. Both now say the repository moved and what to do."""
    home, mnt, moved = tmp_path / "home", tmp_path / "mnt", tmp_path / "moved"
    with mounted(str(repo), mnt, home, "--writable", overlay=overlay):
        (mnt / "data" / "b.txt").write_bytes(b"b\n")
        repo.rename(moved)
        try:
            for args in (("status", str(mnt)), ("snapshot", str(mnt), "-m", "b")):
                assert_error(
                    dvfs(tmp_path, home, *args),
                    f"the repository {repo} was moved or removed while mounted: move it back",
                    f"`dvfs umount {mnt}` and mount it from where it is now",
                    code=1,
                )
        finally:
            moved.rename(repo)
        assert "added:    data/b.txt" in assert_ok(dvfs(tmp_path, home, "status", str(mnt))).out
    fsck_clean(repo)


def test_a_snapshot_interrupted_once_sent_says_the_daemon_goes_on(tmp_path: Path) -> None:
    """Ctrl-C while the daemon records a snapshot stops only the CLI: the daemon goes on
    and records it. The CLI said "nothing half-written is visible, run the command
    again", and running it again made a second version; it now says the daemon goes
    on, and how to see whether it recorded the snapshot. (A listener of this process,
    named as a daemon's socket, stands for the daemon: it takes the request and does
    not answer.)"""
    where = Path(tempfile.mkdtemp(dir="/tmp"))  # (a socket's path must fit 108 bytes)
    try:
        sock_path = where / f"ctl-{os.getpid()}.sock"
        mnt = tmp_path / "mnt"
        (mnt / ".versions").mkdir(parents=True)
        (mnt / ".versions" / ".control").symlink_to(sock_path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as server:
            server.bind(str(sock_path))
            server.listen(1)
            server.settimeout(60)
            proc = subprocess.Popen(
                cli_command("snapshot", str(mnt), "-m", "two"),
                env=cli_env(home_env(tmp_path / "home")),
                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                conn, _ = server.accept()
                with conn:
                    request = b""
                    while not request.endswith(b"\n"):
                        request += conn.recv(65536)
                    assert json.loads(request)["op"] == "snapshot"
                    proc.send_signal(signal.SIGINT)
                    out, err = proc.communicate(timeout=60)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
    finally:
        shutil.rmtree(where)
    r = Result(("snapshot",), proc.returncode, out, err.decode(errors="replace"))
    assert_error(r, "daemon of", "goes on recording the snapshot", f"dvfs status {mnt}", code=130)


def test_mounts_names_a_stopped_daemon(repo: Path, tmp_path: Path) -> None:
    """A daemon stopped (Ctrl-Z on `dvfs mount --foreground`, SIGSTOP) makes every look
    into its mount wait; `dvfs mounts` listed it as mounted and well. It now says it
    is stopped and what to run."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home) as m:
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            out = assert_ok(dvfs(tmp_path, home, "mounts")).out
            (row,) = mounts_under(tmp_path, home)
        finally:
            os.kill(m.proc.pid, signal.SIGCONT)
        assert f"(daemon stopped: `kill -CONT {m.proc.pid}` resumes it;" in out, out
        assert f"`dvfs umount --force {mnt}` unmounts it)" in out, out
        assert row["state"] == "stopped"
        (row,) = mounts_under(tmp_path, home)
        assert row["state"] == "mounted"


def test_ctrl_c_while_the_daemon_starts_leaves_nothing_mounted(tmp_path: Path) -> None:
    """`dvfs mount` waits for its daemon, which runs in a session of its own: Ctrl-C
    ended the command with "nothing half-written is visible, run the command again"
    while the daemon went on and mounted (running it again: "already mounted"). The
    daemon is now stopped, and the line says nothing is mounted. (Its start is held
    by a remote that takes the connection and never answers.)"""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        server.settimeout(60)
        endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
        keys = {"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s"}
        proc = subprocess.Popen(
            cli_command("mount", "s3://bucket/data", str(mnt), "--endpoint-url", endpoint),
            env=cli_env({**home_env(home), **keys}),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            conn, _ = server.accept()  # the daemon asks the remote: it is starting
            with conn:
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    r = Result(("mount",), proc.returncode, out, err.decode(errors="replace"))
    line = assert_error(r, "interrupted: the daemon (pid", f"nothing is mounted at {mnt}", code=130)
    wait_gone(int(line.split("(pid ", 1)[1].split(")", 1)[0]))
    assert not in_mount_table(mnt)
    assert mounts_under(tmp_path, home) == []


def test_a_mount_moved_with_its_parent_says_what_to_do(repo: Path, tmp_path: Path) -> None:
    """A directory above a mount point renamed moves the mount with it; its daemon
    serves the path it mounted and refused `dvfs status NEW` with "this daemon serves
    OLD, not NEW" alone. The refusal now says what to do."""
    home, top, moved = tmp_path / "home", tmp_path / "top", tmp_path / "moved"
    with mounted(str(repo), top / "mnt", home, "--writable"):
        (top / "mnt" / "data" / "b.txt").write_bytes(b"b\n")
        top.rename(moved)
        try:
            r = dvfs(tmp_path, home, "status", str(moved / "mnt"))
        finally:
            moved.rename(top)
        assert_error(
            r, f"this daemon serves {top / 'mnt'}, not {moved / 'mnt'}: if that is its mount "
            f"moved", "rename it back", f"`dvfs umount --force {moved / 'mnt'}`", code=2,
        )  # fmt: skip
        assert (
            "added:    data/b.txt"
            in assert_ok(dvfs(tmp_path, home, "status", str(top / "mnt"))).out
        )
    fsck_clean(repo)


def test_umount_force_clears_the_mount_of_a_stopped_daemon(repo: Path, tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    env = {**home_env(home), control.LOOK_WAIT_ENV: "1"}
    with mounted(str(repo), mnt, home) as m:
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            assert_ok(run(tmp_path, "umount", "--force", str(mnt), env=env, timeout=60))
            assert not in_mount_table(mnt)
            assert m.proc.wait(timeout=30) == 0
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(m.proc.pid, signal.SIGCONT)
        assert mounts_under(tmp_path, home) == []
    fsck_clean(repo)


def test_names_not_valid_on_linux_are_refused(repo: Path, tmp_path: Path) -> None:
    """A tree naming "evil/name" (written past the codec's checks) fails to list: EIO."""
    r = Repository(repo)
    store, hist = r.store, r.history
    head = hist.head_id()
    assert head is not None
    v = hist.version(head)
    chunk, _ = store.put(ObjKind.CHUNK, b"abc")
    bad = Entry(b"evil/name", Kind.FILE, 0o644, 3, 0, chunk, (ChunkRef(chunk, 3),))
    bad_dir, _ = store.put(ObjKind.TREE, encode_tree([bad]))
    root_entries = [
        *hist.tree(v.tree).entries,
        Entry(b"bad", Kind.DIR, 0o755, 3, 0, subtree=bad_dir),
    ]
    root, _ = store.put(ObjKind.TREE, encode_tree(root_entries))
    made = v._replace(tree=root, parents=(head,), number=v.number + 1, message="bad")
    oid, _ = store.put(ObjKind.VERSION, encode_version(made))
    store.flush()
    r.refs.update("refs/heads/main", oid, head)
    with mounted(str(repo), tmp_path / "mnt", tmp_path / "home") as m:
        with pytest.raises(OSError) as info:
            os.listdir(m.path / "bad")
        assert info.value.errno == errno.EIO
        assert (m.path / "data" / "a.txt").read_bytes() == b"two\n"  # the rest still reads
        assert "invalid name evil/name" in m.log_text()
        assert bad_dir.hex()[:12] in m.log_text()


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_repository_mount_with_refresh_shows_new_commits(tmp_path: Path, overlay: str) -> None:
    """An empty branch mounts as an empty directory; commits appear without remounting.

    In MNT too while its working tree is clean, with the daemon's overlay; the kernel's
    shows the branch as it was at mount (its lower layer cannot change under it) until
    the next mount.
    """
    root = tmp_path / "repo"
    repo = Repository.init(root)
    home = tmp_path / "home"
    with mounted(str(root), tmp_path / "mnt", home, "--refresh", "0.2", overlay=overlay) as m:
        assert os.listdir(m.path) == []
        assert os.listdir(m.path / ".versions") == ["tags", "branches", "ids", "meta"]
        write(root, "data/a.txt", b"first\n")
        commit(repo, "one", tag="t")
        deadline = time.monotonic() + 10
        # the branch moves before the tag is made: a refresh may see one without the other
        while not os.listdir(m.path / ".versions" / "tags") or (
            overlay == "daemon" and not (m.path / "data" / "a.txt").exists()
        ):
            assert time.monotonic() < deadline, m.log_text()
            time.sleep(0.05)
        assert (m.path / ".versions" / "v1" / "data" / "a.txt").read_bytes() == b"first\n"
        assert os.readlink(m.path / ".versions" / "latest") == "v1"
        assert os.listdir(m.path / ".versions" / "tags") == ["t"]
        assert "refreshed: main is at v1" in m.log_text()
        assert os.listdir(m.path) == ([] if overlay == "kernel" else ["data"])
    with mounted(str(root), tmp_path / "mnt", home, overlay=overlay) as m:
        assert (m.path / "data" / "a.txt").read_bytes() == b"first\n"


def test_mounts_shows_the_branch_a_snapshot_moved_to(repo: Path, tmp_path: Path) -> None:
    """`snapshot --branch NEW` moves the mount to NEW: `dvfs mounts` says so, then and
    after a remount; `dvfs mounts --json` and `dvfs status MNT --json` agree."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home):
        (row,) = mounts_under(tmp_path, home)
        assert (row["branch"], row["work_dir"]) == ("main", str(repo / ".dvfs/worktrees/main"))
        (mnt / "data" / "b.txt").write_bytes(b"b\n")
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "b", "--branch", "side"))
        (row,) = mounts_under(tmp_path, home)
        assert (row["branch"], row["work_dir"]) == ("side", str(repo / ".dvfs/worktrees/side"))
        assert f"{mnt}  {repo}  branch side  " in assert_ok(dvfs(tmp_path, home, "mounts")).out
        (mnt / "data" / "c.txt").write_bytes(b"c\n")  # pending on side
        got = assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()
        assert (got["branch"], got["base_version"], got["added"]) == ("side", 3, ["data/c.txt"])
    with mounted(str(repo), mnt, home, "--branch", "side"):
        (row,) = mounts_under(tmp_path, home)
        assert row["branch"] == "side"
        got = assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()
        assert (got["branch"], got["added"]) == ("side", ["data/c.txt"])
    with mounted(str(repo), mnt, home):  # the repository's own branch, clean
        (row,) = mounts_under(tmp_path, home)
        assert row["branch"] == "main"
        got = assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()
        assert (got["branch"], got["added"]) == ("main", [])
        assert not (mnt / "data" / "b.txt").exists()
    fsck_clean(repo)


def test_errors_cross_the_control_socket_as_their_own_class() -> None:
    """A daemon's failure exits as the same failure in the CLI would (``kind``)."""
    for name in ("StorageFull", "RefConflict", "UsageError", "ObjectMissing", "MountError"):
        exc = from_kind(name, "what happened")
        assert type(exc).__name__ == name and str(exc) == "what happened"
        assert error_kind(exc) == name
    assert from_kind("StorageFull", "x").exit_code == 1
    assert from_kind("UsageError", "x").exit_code == 2
    # a kind this version does not know, or none, is a failure, not the user's typo
    for unknown in ("NoSuchError", None, 7, "Exception"):
        exc = from_kind(unknown, "x")
        assert type(exc) is DvfsError and exc.exit_code == 1

    class Local(UncommittedChanges):  # a subclass outside vfs.errors: its nearest class
        pass

    assert error_kind(Local("switch", ["a"])) == "UncommittedChanges"


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_branch_takes_its_mount_working_tree_along_when_renamed(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """A mount's working tree is found by its branch's name: `branch -m` left it behind
    (there was no rename), and `branch -d` deleted a branch whose mount held changes
    no version records without a word, leaving them under a name nothing showed. Now
    a rename takes the working tree along, neither happens while a mount serves the
    branch, and -d is refused while the changes are there (-D keeps them, and says
    where). The refusal names the mount point to unmount (it said `dvfs umount MNT`)."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    assert_ok(dvfs(repo, home, "branch", "side"))
    with mounted(str(repo), mnt, home, "--branch", "side", overlay=overlay):
        (mnt / "data" / "new.txt").write_bytes(b"new\n")
        for args, done in ((("-m", "side", "s2"), "renamed"), (("-D", "side"), "deleted")):
            line = assert_error(dvfs(repo, home, "branch", *args), "is mounted", code=2)
            assert line == (
                f"dvfs: error: branch side is mounted as a working tree (daemon pid "
                f"{m_pid(repo, 'side')}): unmount it first (`dvfs umount {mnt}`); "
                f"nothing was {done}"
            )
    assert_ok(dvfs(repo, home, "branch", "-m", "side", "s2"))
    assert not (repo / ".dvfs/worktrees/side").exists()
    with mounted(str(repo), mnt, home, "--branch", "s2", overlay=overlay):
        got = assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()
        assert (got["branch"], got["added"]) == ("s2", ["data/new.txt"])
    line = assert_error(dvfs(repo, home, "branch", "-d", "s2"), "holding changes", code=2)
    held = "1 file(s) in data/" if overlay == "daemon" else "files in upper/"
    assert line == (
        f"dvfs: error: branch s2 has a mount's working tree ({repo}/.dvfs/worktrees/s2) "
        f"holding changes no version records ({held}): mount the branch and `dvfs snapshot` "
        "them, or `dvfs branch -D s2` deletes the branch and keeps them there; nothing was "
        "deleted"
    )
    r = assert_ok(dvfs(repo, home, "branch", "-D", "s2"))
    assert "stays in" in r.err and "a mount of it show them again" in r.err
    assert (repo / ".dvfs/worktrees/s2").is_dir()
    assert_ok(dvfs(repo, home, "branch", "s2", "main"))  # as the warning says
    with mounted(str(repo), mnt, home, "--branch", "s2", overlay=overlay):
        assert (mnt / "data" / "new.txt").read_bytes() == b"new\n"
    fsck_clean(repo)


def m_pid(repo: Path, branch: str) -> str:
    """The pid the daemon serving ``branch``'s working tree wrote into its lock."""
    return (repo / ".dvfs/worktrees" / branch / "lock").read_text().strip()
