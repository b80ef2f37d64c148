"""Running the ``dvfs`` command line as a real process, for the workflow and fault tests.

Every call runs ``python -m vfs.cli`` in a process of its own with a fixed environment
(author, thread count), so each test sees exactly what a user at a shell would see:
exit code, standard output and standard error. :func:`run` forks that process from
one that has imported the command line already (:mod:`tests.support.forks`).
``commit_files`` (and ``add_in_process``/``commit_in_process``/``switch_in_process``)
make the state a test starts from in the test's own process, through the commands'
own steps. The fixtures at the bottom (``repo``, ``make_repo``) are imported by the
test modules that use them, under the names ``repo_fixture`` and ``make_repo_fixture``
so that they do not shadow arguments.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import subprocess
import sys
import threading
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import forks
from vfs import settings
from vfs.quoting import escape_text
from vfs.repo import audit
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers

AUTHOR = "Test Author <test@example.org>"
CLI = [sys.executable, "-P", "-m", "vfs.cli"]  # -P: never import from the test's cwd
BASE_ENV = {"DVFS_AUTHOR": AUTHOR, "DVFS_THREADS": "2", "DVFS_DEBUG": ""}
GIT_ENV = {
    "GIT_AUTHOR_NAME": "Git Tester",
    "GIT_AUTHOR_EMAIL": "git@example.org",
    "GIT_COMMITTER_NAME": "Git Tester",
    "GIT_COMMITTER_EMAIL": "git@example.org",
    "GIT_CONFIG_NOSYSTEM": "1",
}
ERROR_PREFIX = "dvfs: error:"
WARNING_PREFIX = "dvfs: warning:"

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE = 1
_CAP_DAC_READ_SEARCH = 2


def cli_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a dvfs process runs with."""
    env = {**os.environ, **BASE_ENV, **(extra or {})}
    return {k: v for k, v in env.items() if v != ""}


def drop_file_override() -> None:
    """In a child before exec: drop root's power to read files whatever their mode.

    Tests run as root, which reads a mode-000 file anyway; without these two
    capabilities in the bounding set, the exec'd process is refused like any user.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@dataclass(frozen=True)
class Result:
    """What one dvfs process did."""

    args: tuple[str, ...]
    code: int
    raw: bytes  # standard output, undecoded
    err: str

    @property
    def out(self) -> str:
        return self.raw.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.raw)

    def __str__(self) -> str:
        return (
            f"dvfs {' '.join(self.args)} -> exit {self.code}\n"
            f"--- stdout\n{self.out}--- stderr\n{self.err}"
        )


def run_python(
    script: str,
    *args: str,
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> str:
    """Run ``script`` in a fresh interpreter (no thread of the test process); its stdout.

    For tests that fork helper processes: a fork of the test process could copy a
    lock some other thread holds. Fails the test if the script fails.
    """
    proc = subprocess.run(
        [sys.executable, "-P", "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=cli_env(env),
        check=False,
    )
    assert proc.returncode == 0, f"script failed ({proc.returncode}):\n{proc.stderr}"
    return proc.stdout


def cli_command(*args: str) -> list[str]:
    """The argv that runs ``dvfs ARGS``."""
    return [*CLI, *args]


def run_as_dvfs(cwd: Path, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -P -c CODE ARGS`` in ``cwd``, with dvfs's environment: a dvfs process
    whose code first patches something (a failing fsync, a barrier) before ``main()``."""
    return subprocess.run(
        [sys.executable, "-P", "-c", code, *args],
        cwd=cwd,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def run(
    cwd: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    input: bytes | None = None,
    timeout: float = 120,
    unprivileged: bool = False,
) -> Result:
    """Run ``dvfs ARGS`` in ``cwd`` and wait for it.

    The process is forked by :mod:`tests.support.forks`'s server, or started anew
    where a fork would differ (see there). ``unprivileged`` drops root's
    file-permission override (see drop_file_override).
    """
    full_env = cli_env(env)
    proc = None if unprivileged else forks.run(args, cwd, full_env, cli_env(), input, timeout)
    if proc is None:
        proc = subprocess.run(
            cli_command(*args),
            cwd=cwd,
            env=full_env,
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
            preexec_fn=drop_file_override if unprivileged else None,
        )
    return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


# A dvfs process that imports everything, says "ready", and runs only once told to
# (one line on stdin): so that a test can start commands at the same moment, or kill
# one at a chosen point of its work rather than while Python is still starting.
_READY_DRIVER = """
import sys
import vfs.cli
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.readline()
sys.argv = ["dvfs", *sys.argv[1:]]
vfs.cli.main()
"""


def spawn_ready(
    cwd: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``dvfs ARGS`` in ``cwd``, wait until it is ready; :func:`go` lets it run."""
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", _READY_DRIVER, *args],
        cwd=cwd,
        env=cli_env(env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == b"ready\n", (line, proc.stderr.read() if proc.stderr else b"")
    return proc


def go(proc: subprocess.Popen[bytes]) -> None:
    """Let a process from :func:`spawn_ready` run."""
    assert proc.stdin is not None
    proc.stdin.write(b"go\n")
    proc.stdin.flush()


def finish(proc: subprocess.Popen[bytes], args: tuple[str, ...], timeout: float = 60) -> Result:
    """Wait for a process from :func:`spawn_ready` and collect what it printed."""
    out, err = proc.communicate(timeout=timeout)
    return Result(args, proc.returncode, out, err.decode(errors="replace"))


def assert_ok(r: Result) -> Result:
    """``r`` succeeded without a traceback or an error line."""
    assert r.code == 0, str(r)
    assert "Traceback" not in r.err, str(r)
    assert ERROR_PREFIX not in r.err, str(r)
    return r


def assert_error(r: Result, *fragments: str, code: int | None = None) -> str:
    """``r`` failed with exactly one ``dvfs: error:`` line holding every fragment.

    Returns that line. Fragments are matched case-insensitively.
    """
    assert r.code != 0, str(r)
    if code is not None:
        assert r.code == code, str(r)
    assert "Traceback" not in r.err, str(r)
    lines = [ln for ln in r.err.splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(lines) == 1, str(r)
    for f in fragments:
        assert f.lower() in lines[0].lower(), f"{f!r} not in the error line\n{r}"
    return lines[0]


def warnings_of(r: Result) -> list[str]:
    """The ``dvfs: warning:`` lines of ``r``."""
    return [ln for ln in r.err.splitlines() if ln.startswith(WARNING_PREFIX)]


# The MonkeyPatch objects that have replaced code or data a check in this process would
# run with and not yet put it back (every one, however made: the fixture,
# ``MonkeyPatch.context()``, its own).
_PATCHING: set[pytest.MonkeyPatch] = set()
_PYTEST_OWN = ("_pytest", "pytest", "pluggy", "xdist")


def _changes_code(method: str, args: tuple[Any, ...]) -> bool:
    """Whether a ``MonkeyPatch.METHOD(*ARGS)`` may change what a check in this process
    does. Not a change of the environment (a check in this process gets the
    environment a process would: :func:`as_command`), nor of pytest's own objects (its
    temporary-directory factory is set so for the whole session); anything else is."""
    if not args:
        return True
    target = args[0]
    if method in ("setitem", "delitem"):
        return target is not os.environ
    if isinstance(target, str):  # ("package.module.name", value)
        return True
    if isinstance(target, types.ModuleType):
        owner = target.__name__
    elif isinstance(target, type):
        owner = target.__module__
    else:
        owner = type(target).__module__
    return owner.partition(".")[0] not in _PYTEST_OWN


def _note_patches() -> None:
    """Have every ``pytest.MonkeyPatch`` note in ``_PATCHING`` that it has replaced code
    or data of this process (``setattr``, ``delattr``, ``setitem``, ``delitem``: see
    :func:`_changes_code`), until its ``undo``: :func:`fsck_clean` then checks in a
    process of its own, which runs the code as it is on disk, not as the test has
    changed it."""
    cls = pytest.MonkeyPatch
    if getattr(cls, "_dvfs_noted", False):
        return

    def noting(method: str, real: Callable[..., None]) -> Callable[..., None]:
        def noted(self: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> None:
            if _changes_code(method, args):
                _PATCHING.add(self)
            real(self, *args, **kwargs)

        return noted

    for method in ("setattr", "delattr", "setitem", "delitem"):
        setattr(cls, method, noting(method, getattr(cls, method)))
    real_undo = cls.undo

    def undo(self: pytest.MonkeyPatch) -> None:
        try:
            real_undo(self)
        finally:
            _PATCHING.discard(self)

    cls.undo = undo  # type: ignore[method-assign]
    cls._dvfs_noted = True  # type: ignore[attr-defined]


_note_patches()


def fsck_in_process(repo_dir: Path) -> dict[str, Any]:
    """What ``dvfs fsck --json`` run in ``repo_dir`` prints, parsed, computed in this
    process: the command's own steps (``vfs.cli.store.fsck_cmd``: the same repository
    lookup from the directory, the same ``vfs.ops.fsck.fsck``, the same JSON), with the
    environment and audit command line of a process (:func:`as_command`).

    Nothing is shared with the test's other work: a fresh ``Repository`` reads every
    ref, index, pack and object from disk, its store and worker threads are closed
    after, and the directory of this process is not changed.
    """
    from vfs.ops.fsck import fsck
    from vfs.quoting import safe_json

    with as_command(["dvfs", "fsck", "--json"]):
        # (a process started in repo_dir sees it as getcwd() names it: links resolved)
        found = Repository.find(Path(os.path.realpath(repo_dir)))
        found.refs.warn = _warn
        try:
            with Workers(settings.threads()) as w:
                r = fsck(found, w)
        finally:
            found.close()
    report: dict[str, Any] = json.loads(safe_json(r.as_json()))
    return report


def fsck_clean(repo_dir: Path) -> dict[str, Any]:
    """Assert that ``dvfs fsck`` finds no problem in the repository at ``repo_dir``;
    its JSON report.

    It runs in this process (:func:`fsck_in_process`: a process start and its imports
    cost more than the check of a test's repository), unless the test has replaced
    code or data of this process with ``monkeypatch`` and not yet undone it: then as
    ``dvfs fsck --json``, a process that runs the code as it is on disk.
    """
    if _PATCHING:
        r = run(repo_dir, "fsck", "--json")
        assert r.code == 0, str(r)
        report: dict[str, Any] = r.json()
        shown = str(r)
    else:
        report = fsck_in_process(repo_dir)
        shown = f"dvfs fsck --json (in this process) in {repo_dir}:\n{json.dumps(report, indent=2)}"
    assert report["clean"] is True, shown
    assert report["problems"] == [], shown
    return report


def tree_size(path: Path) -> int:
    """Total bytes of the regular files below ``path``."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            p = os.path.join(dirpath, f)
            if not os.path.islink(p):
                total += os.path.getsize(p)
    return total


def git(cwd: Path, *args: str) -> str:
    """Run git with a fixed identity; return its standard output (stripped)."""
    proc = subprocess.run(
        ["git", "-c", "init.defaultBranch=master", "-c", "advice.detachedHead=false", *args],
        cwd=cwd,
        env={**os.environ, **GIT_ENV},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


class Repo:
    """A dvfs repository under test, driven through the command line."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str, **kw: Any) -> Result:
        """Run ``dvfs ARGS`` at the repository root."""
        return run(self.root, *args, **kw)

    def ok(self, *args: str, **kw: Any) -> Result:
        """Run ``dvfs ARGS`` and assert it succeeded."""
        return assert_ok(self.run(*args, **kw))

    def json(self, *args: str) -> Any:
        """Run ``dvfs ARGS`` (which must print JSON) and parse its output."""
        return self.ok(*args).json()

    def fail(self, *args: str, fragments: tuple[str, ...] = (), code: int | None = None) -> str:
        """Run ``dvfs ARGS`` and assert one clean error line holding ``fragments``."""
        return assert_error(self.run(*args), *fragments, code=code)

    def write(self, rel: str, data: bytes | str) -> Path:
        """Write a working file (making its directories)."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p

    def read(self, rel: str) -> bytes:
        return (self.root / rel).read_bytes()

    def show(self, rev: str = "HEAD") -> dict[str, Any]:
        """``dvfs show REV --format json``."""
        data: dict[str, Any] = self.json("show", rev, "--format", "json")
        return data

    def head_id(self) -> str:
        """The id HEAD names (read in this process: cheaper than starting one)."""
        oid = Repository(self.root).history.head_id()
        assert oid is not None, "no versions yet"
        return oid.hex()

    def status(self) -> dict[str, Any]:
        data: dict[str, Any] = self.json("status", "--json")
        return data

    def cat(self, target: str) -> bytes:
        return self.ok("cat", target).raw

    def commit(self, message: str, *extra: str) -> str:
        """Commit; return the new version's id.

        A plain commit (no options) runs in this process (:func:`commit_in_process`):
        it makes the versions a test then looks at, and ``dvfs commit`` itself is
        tested as a process (``ok("commit", ...)``). With options, or while the test
        has patched code of this process, it runs as a ``dvfs commit`` process.
        """
        if extra or _PATCHING:
            self.ok("commit", "-m", message, *extra)
            return self.head_id()
        return commit_in_process(self, message)

    def objects_size(self) -> int:
        """Bytes stored in the local object cache."""
        return tree_size(self.root / ".dvfs" / "objects")

    def fsck_clean(self) -> dict[str, Any]:
        return fsck_clean(self.root)


RepoFactory = Callable[..., Repo]


@contextlib.contextmanager
def as_command(argv: list[str], env: Mapping[str, str] | None = None) -> Iterator[None]:
    """For the block, this process as a ``dvfs`` process started by :func:`run` would
    be: the environment :func:`cli_env` gives (author, thread count, no debug), and
    audit entries naming ``argv`` as their command line (as ``vfs.cli.main`` sets it).

    Only the variables that differ are changed, and put back after: the test's other
    threads never see an environment without the rest.
    """
    wanted = cli_env(env)
    saved = {
        k: os.environ.get(k) for k in {*wanted, *os.environ} if os.environ.get(k) != wanted.get(k)
    }
    for k in saved:
        if k in wanted:
            os.environ[k] = wanted[k]
        else:
            del os.environ[k]
    try:
        with audit.acting(argv):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _warn(message: str) -> None:
    """What ``vfs.cli.output.warn`` prints, on this process's standard error."""
    print(f"{WARNING_PREFIX} {escape_text(message)}", file=sys.stderr)


@contextlib.contextmanager
def no_helper_fork() -> Iterator[None]:
    """For the block, one more thread in this process, so that it is never forked: a
    process with another thread hashes small files in its own threads
    (``vfs._os.helper_process.spare_cpus``), the same path whatever runs the test,
    where a lone thread would fork a helper."""
    idle = threading.Event()
    other = threading.Thread(target=idle.wait, name="no-helper-fork", daemon=True)
    other.start()
    try:
        yield
    finally:
        idle.set()
        other.join()


def add_in_process(repo: Repo, *paths: str) -> None:
    """``dvfs add PATHS`` at the repository root, run in this process.

    For tests whose subject comes after the add (``dvfs add`` itself is tested through
    the command line): the command's own steps (``vfs.cli.staging.add_paths``), the same
    repository lookup, worker threads, ignore rules, lock, ``.gitignore`` additions,
    store limit and audit command line, without the start of a process. Warnings go
    to standard error as the command prints them; an error fails the test.
    """
    from vfs.ops import store_limit, workflow

    with no_helper_fork(), as_command(["dvfs", "add", *paths]):
        found = Repository.find(repo.root)
        found.refs.warn = _warn
        try:
            with Workers(settings.threads()) as w:
                workflow.add(found, [os.path.join(repo.root, p) for p in paths], w, _warn)
            store_limit.keep_within_max_size(found, _warn)
        finally:
            found.close()


def commit_in_process(repo: Repo, message: str) -> str:
    """``dvfs commit -m MESSAGE`` at the repository root, run in this process (as
    :func:`add_in_process`: ``vfs.cli.staging.commit_staged``'s steps); the new version's id."""
    from vfs.model import params as version_params
    from vfs.ops import merging, store_limit
    from vfs.ops.commit import check_message, commit

    with as_command(["dvfs", "commit", "-m", message]):
        found = Repository.find(repo.root)
        found.refs.warn = _warn
        try:
            check_message(
                message, amend=False, merge=merging.live(found.dir, found.refs) is not None
            )
            made = commit(found, message, version_params.collect((), None), None, _warn)
            store_limit.keep_within_max_size(found, _warn)
        finally:
            found.close()
    return made.oid.hex()


def switch_in_process(repo: Repo, name: str, *, create: bool = False) -> None:
    """``dvfs switch [-c] NAME`` at the repository root, run in this process (as
    :func:`add_in_process`: ``vfs.cli.checkout.switch``'s steps), for tests whose
    subject comes after the switch; a file it could not restore fails the test."""
    from vfs.ops import branches

    argv = ["dvfs", "switch", *(["-c"] if create else []), name]
    with no_helper_fork(), as_command(argv):
        found = Repository.find(repo.root)
        found.refs.warn = _warn
        try:
            with Workers(settings.threads()) as w:
                if create:
                    r = branches.switch_create(found, name, None, w, warn=_warn)
                else:
                    r = branches.switch(found, name, w, warn=_warn)
        finally:
            found.close()
    assert not r.failed, r


def commit_files(repo: Repo, files: Mapping[str, bytes | str], message: str) -> str:
    """Write ``files``, add their top directories, commit; return the version id.

    The add and the commit run in this process (:func:`add_in_process`,
    :func:`commit_in_process`): this sets up what a test then looks at.
    """
    for rel, data in files.items():
        repo.write(rel, data)
    add_in_process(repo, *sorted({rel.split("/")[0] for rel in files}))
    return commit_in_process(repo, message)


def init_repo(root: Path, *, git_repo: bool = False) -> Repo:
    """Create a repository at ``root`` as ``dvfs init ROOT`` does; optionally a git work
    tree first.

    It runs in this process (``dvfs init`` itself is tested through the command line):
    the same ``Repository.init`` the command calls, its audit entry naming the same
    command line, without a process start for each of the suite's repositories.
    """
    root.mkdir(parents=True, exist_ok=True)
    if git_repo:
        git(root, "init", "-q")
    with audit.acting(["dvfs", "init", str(root)]):
        Repository.init(root).close()
    return Repo(root)


@pytest.fixture(name="make_repo")
def make_repo_fixture(tmp_path: Path) -> Iterator[RepoFactory]:
    """A factory of fresh repositories: ``make_repo(name="repo", git_repo=False)``."""

    def factory(name: str = "repo", *, git_repo: bool = False) -> Repo:
        return init_repo(tmp_path / name, git_repo=git_repo)

    yield factory


@pytest.fixture(name="repo")
def repo_fixture(make_repo: RepoFactory) -> Repo:
    """A fresh, empty repository."""
    return make_repo()
