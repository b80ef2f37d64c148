"""Processes forked from one that has imported dvfs: each must behave as a process of
its own.

A program that imports dvfs and forks (a ``multiprocessing`` pool, a DataLoader's
workers) gets children that write files beside each other; the suite itself runs
its ``dvfs`` commands as children of one process (``tests/support/forks.py``), which
is only sound if such a child answers exactly as ``python -m vfs.cli`` started anew.
"""

from __future__ import annotations

import os
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support import forks
from tests.support.cli import Repo, RepoFactory, assert_ok, run, run_python
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture
from vfs.store.lock import repository_lock

_TWO_WRITERS = """
import os, sys
from pathlib import Path
from vfs.store.durable import write_atomic, write_beside

target = Path(sys.argv[1]) / "main"
write_atomic(target, b"parent")  # the parent has named one temporary file already
ready_r, ready_w = os.pipe()
first = os.fork()
if first == 0:  # a write under way: its temporary file stands until the rename
    write_beside(target, b"first")
    os.write(ready_w, b"x")
    os._exit(0)
os.read(ready_r, 1)
_, status = os.waitpid(first, 0)
assert status == 0, status
second = os.fork()
if second == 0:
    try:
        write_atomic(target, b"second")
    except BaseException as exc:
        print("second writer failed:", exc)
        os._exit(1)
    os._exit(0)
_, status = os.waitpid(second, 0)
print("second writer:", os.waitstatus_to_exitcode(status))
print("file:", target.read_bytes().decode())
"""


def test_forked_writers_of_one_file_never_meet_on_a_temporary_name(tmp_path: Path) -> None:
    """Two children of a process that imported dvfs write the same file, one while the
    other's write is still under way: the second is not refused for a temporary name
    its sibling already holds (both would have counted from the parent's count)."""
    out = run_python(_TWO_WRITERS, str(tmp_path))
    assert "second writer: 0" in out, out
    assert "file: second" in out, out
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "main"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-main."), leftovers


@pytest.fixture(name="two_versions")
def two_versions_fixture(repo: Repo) -> Iterator[Repo]:
    repo.write("data/a.csv", "id,x\n1,2\n")
    repo.write("b.bin", os.urandom(3000))
    repo.ok("add", ".")
    repo.ok("commit", "-m", "one")
    repo.write("data/a.csv", "id,x\n1,3\n2,4\n")
    repo.ok("add", ".")
    repo.ok("commit", "-m", "two", "--param", "lr=0.1")
    yield repo
    repo.fsck_clean()


READ_ONLY = [
    ("status",),
    ("status", "--json"),
    ("log",),
    ("show", "v1", "--format", "json"),
    ("diff", "v1", "v2"),
    ("diff", "v1", "v2", "data/a.csv", "--rows", "--key", "id"),
    ("ls", "v2", "data"),
    ("params", "show"),
    ("--help",),
    ("nonsense",),
    ("show", "v9"),
    ("add", "missing"),
    ("commit", "-m", "nothing"),
]


@pytest.mark.parametrize("args", READ_ONLY, ids=" ".join)
def test_a_forked_command_answers_as_one_started_anew(
    two_versions: Repo, args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Exit code, output and error, byte for byte."""
    forked = two_versions.run(*args)
    monkeypatch.setenv(forks.EXEC_VAR, "1")
    started = two_versions.run(*args)
    assert (forked.code, forked.raw, forked.err) == (started.code, started.raw, started.err)


def test_a_forked_command_past_its_time_is_killed(two_versions: Repo) -> None:
    """``TimeoutExpired`` as ``subprocess.run`` raises it, and the command is gone: it
    never takes the lock it was waiting for."""
    two_versions.write("c.txt", "new")
    with repository_lock(two_versions.root / ".dvfs" / "lock", 0):
        began = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired):
            run(two_versions.root, "add", "c.txt", env={"DVFS_LOCK_TIMEOUT": "60"}, timeout=1)
        assert time.monotonic() - began < 10
        _wait_until(lambda: not _processes_in(two_versions.root), "the add to end")
    staged = [e["path"] for e in two_versions.status()["staged"]]
    assert "c.txt" not in staged


def test_a_command_under_another_umask_is_started_anew(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dvfs reads the umask as it starts: under another umask than the fork server's, a
    command restores files with that umask's bits taken away, and a status counts the
    bits it took as no change."""
    r = make_repo()
    r.write("f.txt", "data")
    (r.root / "f.txt").chmod(0o664)
    r.ok("add", "f.txt")
    r.ok("commit", "-m", "one")
    (r.root / "f.txt").unlink()
    old = os.umask(0o077)
    try:
        assert_ok(run(r.root, "checkout", "v1", "f.txt"))
        assert stat.S_IMODE((r.root / "f.txt").stat().st_mode) == 0o600
        clean = r.status()  # the bits the umask took away are no change
    finally:
        os.umask(old)
    assert clean["modified"] == [] and clean["staged"] == [], clean
    r.fsck_clean()


def test_the_server_goes_with_the_process_that_started_it() -> None:
    """The server watches a pipe only its starter writes: it ends with it, killed or not,
    and removes its socket's directory."""
    code = (
        "import os\n"
        "from tests.support import forks\n"
        "server = forks.server(dict(os.environ))\n"
        "print(server.proc.pid, server.dir, flush=True)\n"
        "os._exit(0)\n"  # no atexit handler: as a test process that was killed
    )
    root = Path(forks.__file__).parents[2]
    pid, home = run_python(code, cwd=root, env={"PYTHONPATH": str(root)}).split()
    _wait_until(lambda: not _alive(int(pid)), f"the fork server (pid {pid}) to end")
    assert not os.path.exists(home), "the server left its socket's directory"


def _wait_until(cond: Callable[[], bool], what: str, timeout: float = 10) -> None:
    give_up = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < give_up, f"timed out waiting for {what}"
        time.sleep(0.005)


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rpartition(b")")[2].split()[0] != b"Z"
    except FileNotFoundError:
        return False


def _processes_in(root: Path) -> list[int]:
    """The running processes whose working directory is ``root``."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if os.readlink(f"/proc/{entry.name}/cwd") == str(root):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
