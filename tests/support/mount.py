"""Real FUSE mounts for the mount tests: a daemon in a subprocess, always unmounted.

``mounted()`` starts ``dvfs mount --foreground`` as a child process (forked, as is
the daemon it exec's, where :mod:`tests.support.forks` can: see ``Spawned``), polls
``os.path.ismount`` until the mount is up and fails at once (with the daemon's
log) if the process died first; on the way out it unmounts (lazily if it must) and
reaps the daemon, whatever the test did. Repositories are built with the library
(no process per command), with fixed mtimes, so that what a mount shows can be
compared with what was committed.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from daemon.overlay import work_dir_name
from tests.support import forks
from tests.support.cli import AUTHOR, Result, cli_command, cli_env, run
from tests.support.scratch import scratch_dir
from vfs._os.malloc import huge_heap_environment
from vfs._os.mount_table import mount_table
from vfs.mount import launch
from vfs.ops import branches, sync, workflow
from vfs.ops.commit import commit as commit_staged
from vfs.remote import config as remotes
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers

MOUNT_WAIT = 30.0
MTIME = 1_600_000_000


# Mount records and control sockets of this test session (not the machine's /run/dvfs,
# which other sessions share); a short path, since a socket's path must fit 108 bytes.
RUNTIME = scratch_dir("run", outlived=True)
atexit.register(shutil.rmtree, RUNTIME, True)


def home_env(home: Path) -> dict[str, str]:
    """Where a dvfs process puts caches (``home``), URL mounts' working trees
    (``home/share``) and mount records (the session's)."""
    return {
        "XDG_CACHE_HOME": str(home),
        "XDG_DATA_HOME": str(home / "share"),
        "XDG_RUNTIME_DIR": str(RUNTIME),
    }


def url_work(home: Path, url: str, branch: str = "main") -> Path:
    """The working tree of a URL mount of ``url`` started with ``home_env(home)``."""
    source = launch.MountSource("remote", url)
    return home / "share" / "dvfs" / "work" / source.cache_name() / work_dir_name(branch)


def env_for(home: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a dvfs process whose caches go to ``home``."""
    return cli_env({**home_env(home), "DVFS_AUTHOR": AUTHOR, **(extra or {})})


def dvfs(cwd: Path, home: Path, *args: str, timeout: float = 60) -> Result:
    """Run ``dvfs ARGS`` with the test's cache home."""
    return run(cwd, *args, env=home_env(home), timeout=timeout)


def in_mount_table(path: Path) -> bool:
    """True if ``path`` is a mount point (also a dead one, which ismount misses; the
    kernel's table writes a space in a path as ``\\040``: read as the CLI reads it)."""
    return str(path) in mount_table()


def force_unmount(path: Path) -> None:
    """Unmount ``path`` whatever state it is in (teardown)."""
    for cmd in (["fusermount3", "-u", str(path)], ["fusermount3", "-uz", str(path)]):
        if not in_mount_table(path):
            return
        subprocess.run(cmd, capture_output=True, check=False, timeout=30)
    if in_mount_table(path):
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False, timeout=30)


@dataclass
class Mount:
    """A running daemon and its mount point."""

    proc: subprocess.Popen[bytes]
    path: Path
    cache: Path
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def versions(self) -> Path:
        return self.path / ".versions"


def announced(path: Path, log: Path) -> bool:
    """Whether the daemon has mounted ``path`` and announced it (its record written).

    The mount shows in the table a moment before the daemon writes its record and logs
    "mounted ... chunk cache ..."; a test that kills the daemon must not fall between.
    """
    return os.path.ismount(path) and b"; chunk cache " in log.read_bytes()


def wait_mounted(proc: subprocess.Popen[bytes], path: Path, log: Path) -> None:
    """Poll until ``path`` is mounted and announced; fail with the log if the daemon exits."""
    deadline = time.monotonic() + MOUNT_WAIT
    while not announced(path, log):
        code = proc.poll()
        if code is not None:
            raise AssertionError(f"the daemon exited ({code}) before mounting:\n{log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} not mounted after {MOUNT_WAIT} s:\n{log.read_text()}")
        time.sleep(0.02)


def stop(m: Mount) -> int | None:
    """Unmount and reap the daemon; return its exit code."""
    force_unmount(m.path)
    try:
        return m.proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        m.proc.kill()
        m.proc.wait(timeout=15)
        return None


@contextlib.contextmanager
def mounted(
    source: str,
    path: Path,
    home: Path,
    *extra: str,
    env: Mapping[str, str] | None = None,
    cache: Path | None = None,
    overlay: str = "auto",
) -> Iterator[Mount]:
    """A foreground daemon serving ``source`` at ``path`` (made if missing), its cache
    in ``cache`` (default ``home/cache-<name of path>``); ``overlay``: what makes a
    writable MNT (``dvfs mount --overlay``)."""
    if overlay != "auto":
        extra = (*extra, "--overlay", overlay)
    path.mkdir(parents=True, exist_ok=True)
    home.mkdir(parents=True, exist_ok=True)
    cache = cache or home / f"cache-{path.name}"
    log = home / f"daemon-{path.name}.log"
    command = ("mount", "--foreground", source, str(path), "--cache-dir", str(cache), *extra)
    full_env = env_for(home, env)
    with open(log, "wb") as err:
        proc: subprocess.Popen[bytes] | None = forks.spawn(
            command, "/", full_env, cli_env(), (subprocess.DEVNULL, err, err),
            daemon_server_env=huge_heap_environment(cli_env()),
        )  # fmt: skip
        if proc is None:
            proc = subprocess.Popen(
                cli_command(*command), env=full_env, stdin=subprocess.DEVNULL, stdout=err,
                stderr=err, cwd="/",
            )  # fmt: skip
    m = Mount(proc, path, cache, log)
    try:
        wait_mounted(proc, path, log)
        yield m
    finally:
        stop(m)


# The daemon's own overlay, whoever mounts (root mounts take the kernel's by default):
# for the tests of its journal, write gate and copy-up.
own_overlay_mounted = functools.partial(mounted, overlay="daemon")


# ---------------------------------------------------------------------------- building data


def write(root: Path, rel: str, data: bytes, mode: int = 0o644, mtime: int = MTIME) -> None:
    """Write a file with a fixed mode and mtime."""
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    os.chmod(p, mode)
    os.utime(p, (mtime, mtime))


def commit(repo: Repository, message: str, tag: str | None = None, top: str = "data") -> bytes:
    """Stage ``top`` and commit it; return the new version's id."""
    with Workers(2) as w:
        workflow.add(repo, [str(repo.root / top)], w)
    return commit_staged(repo, message, {}, tag).oid


def make_branch(repo: Repository, name: str, rev: str) -> bytes:
    """Create a branch at ``rev``."""
    return branches.create_branch(repo, name, rev)


def push_to(
    repo: Repository, url: str, name: str = "origin", endpoint_url: str | None = None
) -> None:
    """Push every branch and tag of ``repo`` to ``url`` (added as remote ``name``)."""
    spec = remotes.RemoteSpec(name, url, endpoint_url)
    if name not in remotes.remotes(repo):
        remotes.add_remote(repo, spec)
    with Workers(2) as w:
        sync.push(repo, spec, [], w, all_branches=True, tags=True)


def copy_tree(src: Path, dst: Path) -> None:
    """Copy a directory tree, links as links."""
    shutil.copytree(src, dst, symlinks=True)
