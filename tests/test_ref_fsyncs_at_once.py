"""A commit moves its branch in two disk round trips, not five in a row, and a failed
fsync on the way leaves the branch, the audit log and the index as a crash there would:
nothing committed lost, ``dvfs fsck`` and ``dvfs audit verify`` clean.

The fsyncs are told apart by the file each is made on, in the command's own process
(as ``tests/test_fsyncs_at_once.py`` does for the store's): each of the first round
waits at a barrier for the others of its round, so the command ends only if they were
under way at once; or one of them fails with EIO, as a disk does.
"""

from __future__ import annotations

import json

import pytest

from tests.support.cli import ERROR_PREFIX, Repo, add_in_process, fsck_clean, run_as_dvfs
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture

# Which fsync of a commit an open file is: the branch's new file, the audit head's new
# file, the audit log, ``.dvfs`` (the index renamed into place, later the audit head)
# or ``refs/heads`` (the branch renamed into place).
KIND = """
import os, sys, threading
from vfs.cli import main
def kind(fd):
    path = os.readlink(f"/proc/self/fd/{fd}")
    name = os.path.basename(path)
    if name.startswith(".tmp-main."):
        return "ref file"
    if name.startswith(".tmp-audit.head."):
        return "audit head"
    if name == "audit.log":
        return "audit log"
    if path.endswith("/.dvfs"):
        return "dvfs folder"
    if path.endswith("/.dvfs/refs/heads"):
        return "refs folder"
    return None
seen = []
lock = threading.Lock()
def counted(fd):
    k = kind(fd)
    with lock:
        seen.append(k)
        return k, seen.count(k)
"""

# ``python -c AT_ONCE ARGS``: ``dvfs ARGS`` in which the fsyncs of the branch's new
# file, the audit head's, the log and the index's folder each wait for the three others;
# then the fsyncs of ``.dvfs`` (the head renamed) and ``refs/heads`` for each other.
AT_ONCE = (
    KIND
    + """
first = threading.Barrier(4, timeout=20)
second = threading.Barrier(2, timeout=20)
rounds = {("ref file", 1): first, ("audit head", 1): first, ("audit log", 1): first,
          ("dvfs folder", 1): first, ("dvfs folder", 2): second, ("refs folder", 1): second}
def waiting(real):
    def call(fd):
        barrier = rounds.get(counted(fd))
        if barrier is not None:
            barrier.wait()
        return real(fd)
    return call
os.fsync, os.fdatasync = waiting(os.fsync), waiting(os.fdatasync)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""
)

# ``python -c FAILING KIND ARGS``: ``dvfs ARGS`` whose first fsync of KIND fails with
# EIO (the file's data may not be on the disk), as a failing disk's does.
FAILING = (
    KIND
    + """
import errno
failing = sys.argv.pop(1)
def failing_on(real):
    def call(fd):
        if counted(fd) == (failing, 1):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real(fd)
    return call
os.fsync, os.fdatasync = failing_on(os.fsync), failing_on(os.fdatasync)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""
)


def _audit_entries(repo: Repo) -> list[dict[str, object]]:
    """The audit log's entries, after checking its chain is intact."""
    assert repo.json("audit", "verify", "--json")["intact"] is True
    entries: list[dict[str, object]] = json.loads(repo.ok("audit", "--json").out)
    return entries


def test_a_commit_moves_its_branch_in_two_round_trips(repo: Repo) -> None:
    """The branch's new file, the audit log with its head's new file, and the index's
    folder are fsynced at once; then ``refs/heads`` and ``.dvfs``, once the new file
    and the head are renamed into place, at once too (five in a row before, each a
    round trip to the disk of 3-8 ms on the benchmark machine)."""
    repo.write("data/a.csv", "x,y\n1,2\n" * 1000)
    add_in_process(repo, "data")
    proc = run_as_dvfs(repo.root, AT_ONCE, "commit", "-m", "first")
    assert proc.returncode == 0, proc.stderr
    assert "first" in repo.ok("log").out
    assert _audit_entries(repo)[-1]["op"] == "branch create"
    fsck_clean(repo.root)


@pytest.mark.parametrize("kind", ["ref file", "audit head", "audit log", "dvfs folder"])
@pytest.mark.parametrize("branch", ["made", "moved"])
def test_a_failed_fsync_before_the_branch_moves_commits_nothing(
    repo: Repo, kind: str, branch: str
) -> None:
    """A commit whose fsync of the branch's new file, of the audit log, of its head's
    new file or of the index's folder fails says so in one line and leaves the branch
    where it was (or unmade), the audit log without the change (its chain intact) and
    the repository clean; the commit run again records the staged data."""
    repo.write("data/a.csv", "x,y\n1,2\n")
    if branch == "moved":
        add_in_process(repo, "data")
        repo.ok("commit", "-m", "first")
        repo.write("data/a.csv", "x,y\n3,4\n")
    add_in_process(repo, "data")
    before = _audit_entries(repo)
    proc = run_as_dvfs(repo.root, FAILING, kind, "commit", "-m", "second")
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    assert [ln for ln in proc.stderr.splitlines() if ln.startswith(ERROR_PREFIX)], proc.stderr
    log = repo.run("log")
    assert "second" not in log.out
    assert (log.code == 0 and "first" in log.out) == (branch == "moved"), str(log)
    assert _audit_entries(repo) == before
    fsck_clean(repo.root)
    repo.ok("commit", "-m", "second")
    assert "second" in repo.ok("log").out
    assert repo.read("data/a.csv") == (b"x,y\n3,4\n" if branch == "moved" else b"x,y\n1,2\n")
    assert repo.ok("status").out.count("data/a.csv") == 0
    assert _audit_entries(repo)[-1]["op"] == f"branch {'move' if branch == 'moved' else 'create'}"
    fsck_clean(repo.root)


# ``python -c KILLED ARGS``: ``dvfs ARGS`` killed with SIGKILL once the first round is
# done (the entry logged, the index renamed), as the branch's new file is renamed.
KILLED = """
import os, signal, sys
from vfs.cli import main
from vfs.repo import refs
refs.put_in_place = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


def test_a_first_commit_killed_before_its_branch_is_renamed_is_made_again(repo: Repo) -> None:
    """Killed after its entry and its index were written, before its branch exists,
    a first commit leaves the repository clean; the commit run again makes the branch,
    and the log says the first creation was never made."""
    repo.write("data/a.csv", "x,y\n1,2\n")
    add_in_process(repo, "data")
    killed = run_as_dvfs(repo.root, KILLED, "commit", "-m", "first")
    assert killed.returncode == -9, killed.stderr
    assert not (repo.root / ".dvfs" / "refs" / "heads" / "main").exists()
    fsck_clean(repo.root)
    assert _audit_entries(repo)[-1]["op"] == "branch create"
    repo.ok("commit", "-m", "first")
    assert "first" in repo.ok("log").out
    assert repo.ok("status").out.count("data/a.csv") == 0
    entries = _audit_entries(repo)
    assert [e["op"] for e in entries[-3:]] == ["branch create", "branch delete", "branch create"]
    assert "never made" in str(entries[-2]["note"])
    fsck_clean(repo.root)
