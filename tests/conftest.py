"""Shared pytest fixtures; the S3 server fixtures live in tests/support/s3server.py, the trained
pipeline repository in tests/support/pipeline.py."""

from __future__ import annotations

import compileall
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import vfs

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


def pytest_configure(config: pytest.Config) -> None:
    """Compile the packages' modules to bytecode once, before any test starts a process.

    Thousands of ``dvfs`` processes each import vfs, and every mount's daemon imports
    ``daemon`` too; where PYTHONDONTWRITEBYTECODE is set (a common setting of
    containers) no process leaves its bytecode behind, so each compiled every module it
    imports again: about half the CPU time of a ``dvfs log``. Bytecode found next to
    the source is read whatever that variable says, and is checked against the
    source's time and size as usual. (xdist's workers skip this: the controller did it
    before starting them.)
    """
    if not hasattr(config, "workerinput"):
        top = Path(vfs.__file__).parent.parent
        for package in ("vfs", "daemon"):
            compileall.compile_dir(top / package, quiet=1)


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
