"""Shared pytest fixtures; the S3 server fixtures live in tests/support/s3server.py, the trained
pipeline repository in tests/support/pipeline.py."""

from __future__ import annotations

import compileall
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import vfs
from vfs._os.mount_table import mount_table

pytest_plugins = ["tests.support.s3server", "tests.support.pipeline"]

# pytest removes the temporary directories of earlier runs with shutil.rmtree, which
# recurses once per level: a tree deeper than the default limit (1,000), left by a run
# that was killed before a deep-tree test removed its own, would end every later
# session in a RecursionError. Tests still remove their deep trees themselves.
sys.setrecursionlimit(max(sys.getrecursionlimit(), 8000))

# A suite started in the background of a shell without job control (`make test &`)
# inherits SIGINT ignored, and so would every dvfs process it starts: the tests of
# Ctrl-C would see it do nothing. Ctrl-C is what they test, as a terminal sends it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# Where the suite's files go: its tmp_path directories, the scratch directories of
# tests/support, and what every dvfs process it starts puts in TMPDIR. By default a
# folder of /dev/shm when that is a tmpfs with room: the suite creates and removes
# hundreds of thousands of files and makes tens of thousands of fsyncs, and on this
# machine's ext4 that took a sixth of its CPU time (the same tests on tmpfs: 38-40
# CPU-seconds against 46-47). What the fsyncs guard against is tested by the power-cut
# harness (tests/support/powercut.py), whatever the filesystem. DVFS_TEST_TMP=DIR
# puts them in DIR instead (DVFS_TEST_TMP= leaves TMPDIR as it is).
TMP_VAR = "DVFS_TEST_TMP"
SHM = Path("/dev/shm")
SHM_ROOM = 8 << 30  # free bytes /dev/shm must have to be chosen
SHM_DIR = SHM / "dvfs-tests"
# TMPDIR as it was before the suite moved its files (set by pytest's first process, read
# by its workers): where ``disk_path`` makes its directories.
DISK_VAR = "DVFS_TEST_DISK_TMP"


def suite_files_home() -> Path | None:
    """The folder the suite's files go in (None: TMPDIR as it is); see TMP_VAR."""
    given = os.environ.get(TMP_VAR)
    if given is not None:
        return Path(given) if given else None
    if mount_table().get(str(SHM)) != "tmpfs":
        return None
    room = os.statvfs(SHM)
    return SHM_DIR if room.f_bavail * room.f_frsize >= SHM_ROOM else None


def pytest_configure(config: pytest.Config) -> None:
    """Choose where the suite's files go (see ``TMP_VAR``), and compile the packages'
    modules to bytecode once, before any test starts a process.

    Thousands of ``dvfs`` processes each import vfs, and every mount's daemon imports
    ``daemon`` too; where PYTHONDONTWRITEBYTECODE is set (a common setting of
    containers) no process leaves its bytecode behind, so each compiled every module it
    imports again: about half the CPU time of a ``dvfs log``. Bytecode found next to
    the source is read whatever that variable says, and is checked against the
    source's time and size as usual. (xdist's workers skip this: the controller did it
    before starting them.)
    """
    if not hasattr(config, "workerinput"):
        home = suite_files_home()
        if home is not None:
            os.environ.setdefault(DISK_VAR, tempfile.gettempdir())
            with contextlib.suppress(FileExistsError):
                home.mkdir(parents=True)
                home.chmod(0o1777)  # shared as /tmp is (mkdir's mode goes through the umask)
            os.environ["TMPDIR"] = str(home)  # xdist's workers start after this
            tempfile.tempdir = None  # (read again from TMPDIR)
        top = Path(vfs.__file__).parent.parent
        for package in ("vfs", "daemon"):
            compileall.compile_dir(top / package, quiet=1)


@pytest.fixture
def disk_path() -> Iterator[Path]:
    """A fresh directory on the filesystem TMPDIR named before the suite's files moved
    to memory (see ``TMP_VAR``), removed after the test: for tests of what dvfs does
    with the page cache (reads and writes past it, probes of it), which a tmpfs is."""
    top = os.environ.get(DISK_VAR) or None
    where = Path(tempfile.mkdtemp(prefix="dvfs-disk-", dir=top))
    yield where
    shutil.rmtree(where, ignore_errors=True)


@contextlib.contextmanager
def mounted(mnt: Path, *args: str) -> Iterator[Path]:
    """``mount ARGS MNT`` (``mnt`` made first) for the block, unmounted after it (lazily
    if something still holds it)."""
    mnt.mkdir()
    subprocess.run(["mount", *args, str(mnt)], check=True)
    try:
        yield mnt
    finally:
        if subprocess.run(["umount", str(mnt)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], check=True)


def tmpfs(mnt: Path, size: str) -> contextlib.AbstractContextManager[Path]:
    """A tmpfs of ``size`` (as mount takes it: "8m") mounted at ``mnt`` for the block."""
    return mounted(mnt, "-t", "tmpfs", "-o", f"size={size}", "tmpfs")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """An 8 MiB tmpfs mounted for the test (we run as root), unmounted afterwards."""
    with tmpfs(tmp_path / "small", "8m") as mnt:
        yield mnt
