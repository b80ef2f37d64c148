"""Processes forked from one that has imported dvfs: each must behave as a process of
its own.

A program that imports dvfs and forks (a ``multiprocessing`` pool, a DataLoader's
workers) gets children that write files beside each other; the suite itself runs
its ``dvfs`` commands as children of one process (``tests/support/forks.py``), which
is only sound if such a child answers exactly as ``python -m vfs.cli`` started anew.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from subprocess import PIPE

import pytest

from tests.support import forks
from tests.support.cli import Repo, RepoFactory, assert_ok, cli_env, run, run_python
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture
from tests.support.mount import Mount, commit, dvfs, mounted, write
from tests.support.ui import get
from vfs.repo.repository import Repository
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


@contextlib.contextmanager
def _ended_after(proc: forks.Spawned) -> Iterator[None]:
    """Kill ``proc`` at the end of the block if it still runs: a check failing half-way
    must not leave a dashboard serving after the suite (its parent, the fork server,
    gone, nothing would stop it)."""
    try:
        yield
    finally:
        if proc.returncode is None:
            proc.kill()  # (through its pidfd: never another process that took the pid)
            proc.wait(timeout=30)


def test_a_spawned_dashboard_is_handled_as_the_popen_of_one_started_anew(
    two_versions: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dvfs ui`` forked and left running: its URL on its stdout pipe, serving from
    the repository until signalled, then SIGTERM's exit 0 and SIGKILL's -9 as
    ``subprocess`` gives them, and nothing on its stderr pipe; exec'd when
    ``DVFS_TESTS_EXEC`` says so."""
    env, root = cli_env(), two_versions.root
    ended = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = forks.spawn(("ui", str(root)), root, env, env, (None, PIPE, PIPE), kind="ui")
        assert isinstance(proc, forks.Spawned) and proc.stdout is not None
        with _ended_after(proc):
            line = proc.stdout.readline().decode()
            assert " at http://127.0.0.1:" in line, line
            assert (
                get(line[line.index("http://") :].split()[0]).status == 200
            )  # (serving: signals caught)
            assert proc.poll() is None and os.readlink(f"/proc/{proc.pid}/cwd") == str(root)
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=0.01)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=30)
            ended.append((proc.returncode, out, b"Traceback" in err))
            assert not _alive(proc.pid)
    assert ended == [(0, b"", False), (-signal.SIGKILL, b"", False)], ended
    monkeypatch.setenv(forks.EXEC_VAR, "1")
    assert forks.spawn(("ui", str(root)), root, env, env, (None, PIPE, PIPE), kind="ui") is None


def test_a_spawned_childs_handle_waits_past_1024_descriptors(
    two_versions: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test process may hold more than 1,024 descriptors (files of repositories it has
    not collected yet): a spawned child's handle still polls, waits and reads its end
    (``select`` refused any descriptor past 1,023)."""
    monkeypatch.delenv(forks.EXEC_VAR, raising=False)
    env, root = cli_env(), two_versions.root
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(1100)]
    try:
        proc = forks.spawn(("ui", str(root)), root, env, env, (None, PIPE, PIPE), kind="ui")
        assert isinstance(proc, forks.Spawned) and proc.stdout is not None
        with _ended_after(proc):
            assert " at http://127.0.0.1:" in proc.stdout.readline().decode()
            assert proc.poll() is None
            proc.terminate()
            proc.communicate(timeout=30)
            assert proc.returncode == 0
    finally:
        for fd in held:
            os.close(fd)


def _daemon_seen(m: Mount, home: Path) -> dict[str, object]:
    """What a mount's daemon is as other processes see it: its pid in the mount record,
    where its standard streams and cache lock go, whether its heap asks for huge pages."""
    rows = assert_ok(dvfs(m.path.parent, home, "mounts", "--json")).json()
    (row,) = [r for r in rows if r["mountpoint"] == str(m.path)]
    fds = {n: os.readlink(f"/proc/{m.proc.pid}/fd/{n}") for n in ("0", "1", "2", "3")}
    smaps = Path(f"/proc/{m.proc.pid}/smaps").read_text()
    return {
        "record's pid is the handle's": row["pid"] == m.proc.pid,
        "fds": fds,
        "huge pages": " hg" in smaps,
    }


def test_a_mount_daemon_forked_is_the_one_process_its_handle_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dvfs mount --foreground`` exec's its daemon: forked, the daemon it hands over
    is the process the handle names (its mount record, its signals, its exit code),
    with the command's streams and cache lock at the same descriptors and malloc's
    huge pages, as when exec'd; a command that fails before it exits as exec'd."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"one\n")
    commit(repo, "one")
    repo.close()
    seen: list[dict[str, object]] = []
    for way in ("forked", "exec'd"):
        if way == "exec'd":
            monkeypatch.setenv(forks.EXEC_VAR, "1")
        home, mnt = tmp_path / f"home-{len(seen)}", tmp_path / f"mnt-{len(seen)}"
        with mounted(str(root), mnt, home) as m:
            assert isinstance(m.proc, forks.Spawned) == (way == "forked")
            assert (mnt / "data" / "a.txt").read_bytes() == b"one\n"
            daemon = _daemon_seen(m, home)
            m.proc.kill()
            daemon["killed"] = m.proc.wait(timeout=30)
        with pytest.raises(AssertionError) as failed, mounted(str(tmp_path / "none"), mnt, home):
            pass
        daemon["failed"] = str(failed.value).split(" before mounting")[0]
        daemon["log"] = (home / f"daemon-{mnt.name}.log").read_text().splitlines()[-1]
        seen.append(daemon)
    forked, started = seen
    cache_lock = str(tmp_path / "home-{}" / "cache-mnt-{}" / "lock")
    for n, daemon in enumerate(seen):
        fds = daemon.pop("fds")
        log = str(tmp_path / f"home-{n}" / f"daemon-mnt-{n}.log")
        assert fds == {"0": "/dev/null", "1": log, "2": log, "3": cache_lock.format(n, n)}, fds
    assert forked == started, seen
    assert forked["killed"] == -signal.SIGKILL and forked["huge pages"], forked
    assert "none does not exist: give a repository directory" in str(forked["log"]), forked


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
