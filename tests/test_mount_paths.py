"""How a user names a mount: through a symbolic link, or by a directory inside it.

A mount point reached through a link is the directory the link leads to: that is
where the kernel mounts, what ``/proc/self/mountinfo`` lists and what a process
inside sees as its cwd, so the record, ``dvfs mounts`` and ``dvfs umount`` must
all name it, whichever spelling the user typed. A directory inside a mount is not
the mount: the commands that take MNT say which mount it is inside.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import assert_error, assert_ok, run, run_python
from tests.support.mount import (
    commit,
    dvfs,
    force_unmount,
    home_env,
    in_mount_table,
    mounted,
    push_to,
    write,
)
from vfs.repo.repository import Repository


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"one\n")
    commit(repo, "one")
    return root


def rows(tmp_path: Path, home: Path) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = assert_ok(dvfs(tmp_path, home, "mounts", "--json")).json()
    return [r for r in got if Path(r["mountpoint"]).is_relative_to(tmp_path)]


@pytest.mark.parametrize("overlay", ["kernel", "daemon"])
def test_a_mount_point_named_through_a_link_is_the_directory_it_leads_to(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    home, real, link = tmp_path / "home", tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to("real")
    try:
        r = assert_ok(dvfs(tmp_path, home, "mount", str(repo), "link", "--overlay", overlay))
        assert f" at {real}; daemon pid " in r.out
        assert (real / "data" / "a.txt").read_bytes() == b"one\n"
        (row,) = rows(tmp_path, home)
        assert row["mountpoint"] == str(real) and row["state"] == "mounted"
        assert row["source"] == str(repo)
        (link / "data" / "b.txt").write_bytes(b"b\n")
        assert assert_ok(dvfs(tmp_path, home, "status", "link", "--json")).json()["added"] == [
            "data/b.txt"
        ]
        r = assert_ok(dvfs(tmp_path, home, "umount", "link"))
        assert r.out.strip() == f"unmounted {real}"
        assert not in_mount_table(real)
        assert rows(tmp_path, home) == []
    finally:
        force_unmount(real)


def test_a_directory_inside_a_mount_is_named_as_inside_it(repo: Path, tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    try:
        assert_ok(dvfs(tmp_path, home, "mount", str(repo), str(mnt)))
        (mnt / "data" / "b.txt").write_bytes(b"b\n")
        for inner in (mnt / "data", mnt / ".versions" / "v1" / "data"):
            for args in (("status", str(inner)), ("snapshot", str(inner), "-m", "m")):
                line = assert_error(dvfs(mnt / "data", home, *args), code=1)
                assert f"{inner} is inside the dvfs mount {mnt}: give its mount point" in line, line
            line = assert_error(dvfs(tmp_path, home, "umount", str(inner)), code=1)
            assert f"{inner} is inside the dvfs mount {mnt}: run `dvfs umount {mnt}`" in line
        line = assert_error(dvfs(mnt / "data", home, "snapshot", ".", "-m", "m"), code=1)
        assert f"{mnt / 'data'} is inside the dvfs mount {mnt}" in line
        assert in_mount_table(mnt)  # nothing was recorded nor unmounted
        assert assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()["added"] == [
            "data/b.txt"
        ]
        assert_ok(dvfs(tmp_path, home, "umount", str(mnt)))
    finally:
        force_unmount(mnt)


@pytest.mark.parametrize("overlay", ["kernel", "daemon"])
def test_repository_commands_inside_a_mount_point_to_it_and_init_is_refused(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    try:
        assert_ok(dvfs(tmp_path, home, "mount", str(repo), str(mnt), "--overlay", overlay))
        for cwd in (mnt, mnt / "data"):
            for args in (("status",), ("log",), ("diff",)):
                line = assert_error(dvfs(cwd, home, *args), code=1)
                assert f"{cwd} is in the dvfs mount {mnt}" in line, line
                assert f"`dvfs status {mnt}`" in line and str(repo) in line, line
                assert "dvfs init" not in line, line
            # not a repository made inside the working tree, which no snapshot would take
            line = assert_error(dvfs(cwd, home, "init"))
            assert f"{cwd} is in the dvfs mount {mnt}" in line, line
            assert not (cwd / ".dvfs").exists()
        st = assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()
        assert st["added"] == [] and st["unversionable"] == []
        assert_ok(dvfs(tmp_path, home, "umount", str(mnt)))
    finally:
        force_unmount(mnt)


def test_a_cache_or_work_directory_that_cannot_be_made_is_one_clear_line(
    repo: Path, tmp_path: Path
) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    mnt.mkdir()
    remote = tmp_path / "remote"
    push_to(Repository(repo), str(remote))
    (tmp_path / "file").write_bytes(b"")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    cases = [
        ((str(repo), str(mnt), "--cache-dir", str(tmp_path / "file" / "cache")), {}),
        ((str(repo), str(mnt), "--cache-dir", str(tmp_path / "dangling")), {}),
        ((str(remote), str(mnt), "--writable"), {"XDG_DATA_HOME": str(tmp_path / "file")}),
        ((str(remote), str(mnt)), {"XDG_CACHE_HOME": str(tmp_path / "file")}),
    ]
    try:
        for args, env in cases:
            r = run(tmp_path, "mount", *args, env={**home_env(home), **env})
            line = assert_error(r, "cannot make", "choose another", code=1)
            assert "internal error" not in line and str(tmp_path) in line, line
            assert not in_mount_table(mnt)
    finally:
        force_unmount(mnt)


def test_the_status_of_a_mount_names_it_in_its_hint(repo: Path, tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "my mnt"
    mnt.mkdir()
    try:
        assert_ok(dvfs(tmp_path, home, "mount", str(repo), str(mnt)))
        (mnt / "data" / "b.txt").write_bytes(b"b\n")
        out = assert_ok(dvfs(tmp_path, home, "status", "my mnt")).out
        assert "Changes (use `dvfs snapshot 'my mnt' -m MSG` to record them):" in out, out
        assert_ok(dvfs(tmp_path, home, "umount", str(mnt)))
    finally:
        force_unmount(mnt)


def test_naming_a_mount_never_waits_for_its_daemon(repo: Path, tmp_path: Path) -> None:
    """`dvfs umount --force` is for a daemon that no longer answers: finding the mount
    point it names (through a link, or below it) must not look into the mount."""
    home, mnt, link = tmp_path / "home", tmp_path / "mnt", tmp_path / "link"
    link.symlink_to("mnt")
    script = (
        "import sys\n"
        "from vfs.mount.mounts import enclosing, mount_path\n"
        "print(mount_path(sys.argv[1]), mount_path(sys.argv[2]), enclosing(sys.argv[3]))\n"
    )
    with mounted(str(repo), mnt, home) as m:
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            out = run_python(script, str(mnt), str(link), str(link / "data"), timeout=20)
        finally:
            os.kill(m.proc.pid, signal.SIGCONT)
    assert out.split() == [str(mnt), str(mnt), str(mnt)]
