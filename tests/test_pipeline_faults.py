"""``dvfs repro`` stopped by Ctrl-C or killed: finished stages kept, the running one never
recorded, the repository consistent (``fsck``) and ``status`` truthful."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.cli import (
    ERROR_PREFIX,
    Repo,
    assert_error,
    cli_command,
    cli_env,
    init_repo,
    warnings_of,
)
from tests.support.pipeline import PY, staged_paths
from vfs._os.helper_process import process_tag
from vfs.cli.pipeline import pipeline_here
from vfs.model.codec import unpack
from vfs.model.version_codec import StageRecord
from vfs.pipeline import backups, runner
from vfs.pipeline import repro as repro_module
from vfs.pipeline import runs as runs_file
from vfs.pipeline.plan import Options
from vfs.pipeline.repro import Repro
from vfs.pipeline.runner import Finished, Output
from vfs.pipeline.workspace import Workspace
from vfs.worktree.pools import Workers

# Writes a partial output, says it started (with its pid), then waits for a file
# that the test never makes, unless `fast` exists.
SLOW = """
import os, signal, sys, time
signal.signal(signal.SIGINT, lambda *_: sys.exit(130))
open("slow.out", "w").write("partial")
if os.path.exists("fast"):
    open("slow.out", "w").write("slow made " + open("first.out").read())
    sys.exit(0)
open(sys.argv[1], "w").write(str(os.getpid()))
deadline = time.monotonic() + 120
while time.monotonic() < deadline:
    time.sleep(0.05)
sys.exit(5)
"""


@pytest.fixture(name="slow_template", scope="module")
def slow_template_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Repo, Path]:
    """first -> slow, both run once (slow fast) and committed; then first's input
    changed and staged, slow made slow. Made once, copied by ``slow``."""
    top = tmp_path_factory.mktemp("slow")
    repo, marker = init_repo(top / "repo"), top / "started"
    repo.write("slow.py", SLOW)
    repo.write("fast", "")
    repo.write("input.txt", "one\n")
    repo.write("dvfs.yaml", json.dumps({"stages": {
        "first": {"cmd": "cp input.txt first.out", "deps": ["input.txt"], "outs": ["first.out"]},
        "slow": {"cmd": [PY, "slow.py", str(marker)], "deps": ["first.out", "slow.py"],
                 "outs": ["slow.out"]},
    }}))  # fmt: skip
    repo.ok("add", "input.txt")
    repo.ok("repro")
    repo.commit("both ran")
    (repo.root / "fast").unlink()
    repo.write("input.txt", "two\n")
    repo.ok("add", "input.txt")
    return repo, marker


@pytest.fixture(name="slow")
def slow_fixture(slow_template: tuple[Repo, Path], tmp_path: Path) -> tuple[Repo, Path]:
    """A copy of the template's repository, and the marker its stage slow writes."""
    template, marker = slow_template
    marker.unlink(missing_ok=True)
    shutil.copytree(template.root, tmp_path / "repo", symlinks=True)
    return Repo(tmp_path / "repo"), marker


def _as_from_a_terminal() -> None:
    """The signals a command typed at a terminal starts with: SIGHUP as the default,
    whatever the test runner inherited (the suite may itself run under ``nohup``,
    whose ignored SIGHUP a child inherits, and dvfs keeps ignored)."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


def _ignore_sigint() -> None:
    _as_from_a_terminal()
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_repro(
    repo: Repo, marker: Path, *args: str, sigint_ignored: bool = False
) -> subprocess.Popen[bytes]:
    """``dvfs repro`` (or ``dvfs ARGS``) running, with ``slow`` started (its marker
    written); ``sigint_ignored``: started as a script's background command is, with
    SIGINT ignored."""
    proc = subprocess.Popen(
        cli_command(*(args or ("repro",))), cwd=repo.root, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=_ignore_sigint if sigint_ignored else _as_from_a_terminal,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not marker.exists() or not marker.read_text():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "stage slow never started"
        time.sleep(0.02)
    return proc


def test_ctrl_c_keeps_finished_stages_and_puts_the_running_ones_outputs_back(
    slow: tuple[Repo, Path],
) -> None:
    repo, marker = slow
    before = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    proc = start_repro(repo, marker)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    errors = [ln for ln in err.decode().splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(errors) == 1 and "interrupted: 1 stage finished and recorded" in errors[0]
    assert b"Traceback" not in err
    with_runs = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    assert with_runs["first"] != before["first"]  # recorded
    assert with_runs["slow"] == before["slow"]  # as it was: the stopped run recorded nothing
    assert repo.read("first.out") == b"two\n"
    assert repo.read("slow.out") == b"slow made one\n"  # the previous output is back
    assert not any(p.name.startswith(".tmp-") for p in repo.root.iterdir())
    assert {"first.out", "dvfs.runs"} <= staged_paths(repo)
    assert "slow.out" not in staged_paths(repo)
    assert repo.status()["modified"] == []
    repo.fsck_clean()
    repo.write("fast", "")
    r = repo.ok("repro")
    assert "Stage first is fresh" in r.out and "Running stage slow (dep first.out changed)" in r.out
    repo.fsck_clean()


def test_kill_9_never_records_the_running_stage_and_the_next_repro_recovers(
    slow: tuple[Repo, Path],
) -> None:
    repo, marker = slow
    before = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    proc = start_repro(repo, marker)
    proc.kill()
    proc.communicate(timeout=60)
    os.kill(int(marker.read_text()), signal.SIGKILL)  # its command lives on: stop it too
    repo.fsck_clean()
    runs = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    assert runs["slow"] == before["slow"]  # never recorded
    assert repo.read("slow.out") == b"partial"
    st = repo.status()  # the truth: both outputs differ from what is staged
    assert {"first.out", "slow.out"} <= set(st["modified"])
    repo.write("fast", "")
    r = repo.ok("repro")
    assert "Stage first is fresh" in r.out  # its run was recorded before the kill
    assert "Running stage slow (out slow.out changed)" in r.out or "slow" in r.out
    assert repo.read("slow.out") == b"slow made two\n"
    assert not any(p.name.startswith(".tmp-dvfs-prev") for p in repo.root.iterdir())
    assert {"first.out", "slow.out", "dvfs.runs"} <= staged_paths(repo)
    repo.commit("recovered")
    shown = repo.show()
    assert sorted(s["stage"] for s in shown["pipeline"]) == ["first", "slow"]
    repo.fsck_clean()


def test_after_kill_9_a_command_left_running_is_named_not_run_beside(
    slow: tuple[Repo, Path],
) -> None:
    # the command of a repro killed -9 ran on, writing its outputs, while the next
    # repro ran the stage again beside it and add staged what it was writing
    repo, marker = slow
    proc = start_repro(repo, marker)
    stage = int(marker.read_text())
    listed = repo.root / ".dvfs" / "pipeline.writing"
    deadline = time.monotonic() + 30
    while "slow" not in unpack(listed.read_bytes(), "list").get("groups", {}):
        assert time.monotonic() < deadline, "the command's group was never listed"
    proc.kill()
    proc.communicate(timeout=60)
    try:
        pipeline = repo.read("dvfs.yaml")
        for args in (("repro",), ("add", "slow.out"), ("run", "-n", "more", "--", "true")):
            line = assert_error(repo.run(*args), "the command of stage slow, left running by")
            assert f"(pid {proc.pid}), which was killed, is writing slow.out" in line, line
            assert f"kill -TERM -- -{stage}" in line, line
        assert "slow.out" not in staged_paths(repo)
        assert repo.read("dvfs.yaml") == pipeline  # no stage added that did not run
    finally:
        os.killpg(stage, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while repo.run("add", "slow.out").code != 0:  # once its group has gone
        assert time.monotonic() < deadline, "the command never stopped"
    repo.write("fast", "")
    r = repo.ok("repro")
    assert "Running stage slow" in r.out
    assert repo.read("slow.out") == b"slow made two\n"
    repo.fsck_clean()


def test_a_stage_dvfs_run_is_running_is_said_to_be_dvfs_run_s(slow: tuple[Repo, Path]) -> None:
    """While `dvfs run` ran its stage, `dvfs add` of its output said "`dvfs repro` (pid
    N) is writing"; once it was killed -9, `dvfs run` and `repro` said the command
    writing on was "left running by `dvfs repro`": the user looked for a repro that
    never ran. They name `dvfs run`, the command that did."""
    repo, marker = slow
    proc = start_repro(
        repo, marker, "run", "--force", "-n", "slow", "-d", "first.out", "-d", "slow.py",
        "-o", "slow.out", "--", PY, "slow.py", str(marker), "again",  # (a new command)
    )  # fmt: skip
    stage = int(marker.read_text())
    listed = repo.root / ".dvfs" / "pipeline.writing"
    try:
        line = assert_error(repo.run("add", "slow.out"), "is writing slow.out")
        assert line.startswith(f"dvfs: error: `dvfs run` (pid {proc.pid}) is writing"), line
        deadline = time.monotonic() + 30
        while "slow" not in unpack(listed.read_bytes(), "list").get("groups", {}):
            assert time.monotonic() < deadline, "the command's group was never listed"
        proc.kill()
        proc.communicate(timeout=60)
        for args in (("run", "-n", "more", "--", "true"), ("repro",)):
            line = assert_error(repo.run(*args), "is writing slow.out")
            assert f"left running by `dvfs run` (pid {proc.pid}), which was killed" in line
    finally:
        os.killpg(stage, signal.SIGTERM)
        proc.kill()
        proc.communicate(timeout=60)
    deadline = time.monotonic() + 30
    while repo.run("add", "slow.out").code != 0:  # once its group has gone
        assert time.monotonic() < deadline, "the command never stopped"
    repo.fsck_clean()


@pytest.mark.parametrize("command", [("repro",), ("exp", "run", "-n", "e1")])
@pytest.mark.parametrize(
    "sig",
    # SIGINT to dvfs alone, started as a script's background command is (ignoring it);
    # SIGHUP: the terminal closed, which the stage, in a session of its own, never gets
    # (dvfs died at once, its stage ran on unwatched and wrote its outputs after dvfs
    # had gone, the previous outputs stayed moved aside)
    [signal.SIGINT, signal.SIGHUP],
)
def test_a_signal_to_dvfs_alone_stops_the_running_stage(
    slow: tuple[Repo, Path], command: tuple[str, ...], sig: signal.Signals
) -> None:
    repo, marker = slow
    before = repo.read("dvfs.runs")
    proc = start_repro(repo, marker, *command, sigint_ignored=sig == signal.SIGINT)
    stage = int(marker.read_text())
    os.kill(proc.pid, sig)  # to dvfs alone, not to its process group
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert len(err.decode().splitlines()) == 1 and err.startswith(ERROR_PREFIX.encode()), err
    assert b"interrupted" in err and b"Traceback" not in err
    with pytest.raises(ProcessLookupError):  # the stage was stopped, not left running
        os.kill(stage, 0)
    assert repo.read("slow.out") == b"slow made one\n"  # the previous output is back
    assert not any(p.name.startswith(".tmp-") for p in repo.root.iterdir())
    assert not (repo.root / ".dvfs" / "pipeline.writing").exists()
    if command[0] == "exp":
        assert repo.read("dvfs.runs") == before
        assert "exp/e1" not in repo.ok("branch").out
        assert list((repo.root / ".dvfs" / "exp").iterdir()) == []
    else:
        assert b"stage slow was stopped: it recorded nothing" in err
        runs = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
        assert runs["slow"] == yaml.safe_load(before)["stages"]["slow"]
    repo.fsck_clean()


def test_ctrl_c_as_a_command_starts_stops_it_and_puts_the_previous_output_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a Ctrl-C that came as the command had just started, before it was listed as
    # running, left it running unwatched, its previous output moved aside
    repo = init_repo(tmp_path / "repo")
    repo.write("step.txt", "one\n")
    repo.ok("run", "-n", "s", "-d", "step.txt", "-o", "out.txt", "--", "cp step.txt out.txt")
    repo.commit("ran")
    repo.write("step.txt", "two\n")
    repo.ok("add", "step.txt")
    repo.write("dvfs.yaml", json.dumps({"stages": {"s": {
        "cmd": "cp step.txt out.txt; exec sleep 60", "deps": ["step.txt"], "outs": ["out.txt"],
    }}}))  # fmt: skip
    started: list[subprocess.Popen[bytes]] = []

    class CtrlCAtStart(runner.Running):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            assert self.proc is not None
            started.append(self.proc)
            os.kill(os.getpid(), signal.SIGINT)  # (its handler runs before this returns)

    monkeypatch.setattr(repro_module, "Running", CtrlCAtStart)
    monkeypatch.chdir(repo.root)
    ws, _, dag = pipeline_here()
    try:
        with Workers(2) as w:
            out = Repro(ws, dag, w, lambda _: None, lambda _: None, Output()).run(Options())
        ws.close()
        assert started[0].poll() is not None  # stopped, not left running
    finally:
        if started and started[0].poll() is None:
            os.killpg(started[0].pid, signal.SIGKILL)
            started[0].wait()
    assert out.interrupted
    assert [n for n, why in out.skipped if why == "interrupted while it ran"] == ["s"]
    assert repo.read("out.txt") == b"one\n"  # the previous output is back
    assert not any(p.name.startswith(".tmp-") for p in repo.root.iterdir())
    repo.fsck_clean()


def test_add_refuses_an_output_a_running_stage_is_writing_until_its_repro_is_gone(
    slow: tuple[Repo, Path],
) -> None:
    repo, marker = slow
    proc = start_repro(repo, marker)
    try:
        assert repo.read("slow.out") == b"partial"
        for args in (("add", "slow.out"), ("add", "."), ("commit", "-a", "-m", "partial")):
            line = assert_error(repo.run(*args), "is writing slow.out, an output of stage slow")
            assert f"(pid {proc.pid})" in line and f"kill -INT {proc.pid}" in line, line
            assert "nothing was staged" in line
        assert "slow.out" not in staged_paths(repo)
        repo.write("other.txt", "mine\n")
        repo.ok("add", "other.txt")  # what no stage writes is staged as ever
    finally:
        proc.kill()  # a list left by a repro killed -9 blocks nothing
        proc.communicate(timeout=60)
        os.kill(int(marker.read_text()), signal.SIGKILL)
    assert (repo.root / ".dvfs" / "pipeline.writing").exists()
    repo.ok("add", "slow.out")
    assert "slow.out" in staged_paths(repo)
    repo.fsck_clean()


def test_ctrl_c_stops_parallel_stages_at_once_not_one_after_another() -> None:
    """Each stage got SIGINT only once the one before had stopped: with --jobs 4 and
    commands that take SIGINT slowly, Ctrl-C took up to 4 x 6 s."""
    calls: list[tuple[str, int, int]] = []

    class Command:
        def __init__(self, i: int, stops_on: int) -> None:
            self.i, self.stops_on, self.got = i, stops_on, 0

        def signal(self, sig: int) -> None:
            calls.append(("signal", self.i, sig))
            self.got = sig

        def wait(self, timeout: float | None = None) -> Finished:
            calls.append(("wait", self.i, self.got))
            if self.got != self.stops_on:
                raise subprocess.TimeoutExpired("cmd", timeout or 0)
            return Finished(-self.got, [], 0, 0)

    commands = [Command(0, signal.SIGTERM), Command(1, signal.SIGINT), Command(2, signal.SIGTERM)]
    done = runner.stop_all(commands)  # type: ignore[arg-type]
    assert [f.code for f in done] == [-signal.SIGTERM, -signal.SIGINT, -signal.SIGTERM]
    first_wait = calls.index(("wait", 0, signal.SIGINT))
    assert {c[1] for c in calls[:first_wait] if c[0] == "signal"} == {0, 1, 2}  # all at once
    terms = [c for c in calls if c[0] == "signal" and c[2] == signal.SIGTERM]
    assert [c[1] for c in terms] == [0, 2]  # only those still running
    assert not any(c[2] == signal.SIGKILL for c in calls)


def test_a_previous_output_that_cannot_be_put_back_is_kept_and_said(tmp_path: Path) -> None:
    # the failed command leaves a mount point in its out, which cannot be removed: the
    # previous out stayed at .tmp-dvfs-prev-*, the message said "previous outputs are
    # back", and the next repro deleted it
    repo = init_repo(tmp_path / "repo")
    repo.write("step.sh", "mkdir out && echo one > out/a\n")
    repo.ok("run", "-n", "s", "-d", "step.sh", "-o", "out", "--", "sh step.sh")
    repo.write("step.sh", "mkdir -p out/m && mount -t tmpfs dvfs-test out/m && exit 1\n")
    try:
        repo.fail("repro", fragments=(
            "stage s failed", "the previous outputs could not be put back",
            "they are kept (out as out.dvfs-previous)"))  # fmt: skip
    finally:
        subprocess.run(["umount", str(repo.root / "out" / "m")], check=True)
    assert repo.read("out.dvfs-previous/a") == b"one\n"
    repo.write("step.sh", "rm -r out; mkdir out && echo three > out/a\n")
    repo.ok("repro")
    assert repo.read("out/a") == b"three\n"
    assert repo.read("out.dvfs-previous/a") == b"one\n"
    repo.fsck_clean()


# Makes its out with a mount point inside (which cannot be removed), says it started,
# then waits to be stopped.
MOUNTS = """
import os, subprocess, sys, time
os.makedirs("out/m")
subprocess.run(["mount", "-t", "tmpfs", "dvfs-test", "out/m"], check=True)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(120)
"""


def test_ctrl_c_names_a_previous_output_that_could_not_be_put_back(tmp_path: Path) -> None:
    # Ctrl-C while the stage ran: the previous out could not be put back and was kept as
    # out.dvfs-previous, but the line said "the previous outputs are back"
    repo, marker = init_repo(tmp_path / "repo"), tmp_path / "started"
    repo.write("step.py", "import os; os.mkdir('out'); open('out/a', 'w').write('one')\n")
    repo.ok("run", "-n", "s", "-d", "step.py", "-o", "out", "--", PY, "step.py", str(marker))
    repo.write("step.py", MOUNTS)
    proc = start_repro(repo, marker)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        subprocess.run(["umount", str(repo.root / "out" / "m")], check=True)
    assert proc.returncode == 130, err
    errors = [ln for ln in err.decode().splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, err
    assert "stage s was stopped: it recorded nothing" in errors[0]
    assert "they are kept (out as out.dvfs-previous)" in errors[0], errors[0]
    assert "are back" not in errors[0]
    assert repo.read("out.dvfs-previous/a") == b"one"
    repo.fsck_clean()


def _leftover(repo: Repo, data: str) -> Path:
    """A previous output of ``out`` as a run killed with -9 leaves it, beside ``out``."""
    path = repo.root / os.fsdecode(backups.backup_name(b"out"))
    path.write_text(data)
    return path


def test_a_previous_output_left_by_a_killed_run_and_held_nowhere_else_is_kept(
    tmp_path: Path,
) -> None:
    # the next repro deleted what it found at .tmp-dvfs-prev-*: an out made by hand
    # (neither staged nor committed) moved aside by a run killed with -9 was lost
    repo = init_repo(tmp_path / "repo")
    repo.write("step.sh", "echo made > out\n")
    repo.ok("run", "-n", "s", "-d", "step.sh", "-o", "out", "--no-exec", "--", "sh step.sh")
    leftover = _leftover(repo, "made by hand\n")
    repo.write("out", "partial")
    r = repo.ok("repro")
    assert any(
        "a previous output of out that an earlier run left" in w
        and "kept as out.dvfs-previous" in w
        for w in warnings_of(r)
    ), r.err
    assert not leftover.exists()
    assert repo.read("out.dvfs-previous") == b"made by hand\n"
    assert repo.read("out") == b"made\n"
    repo.fsck_clean()


def test_a_previous_output_that_cannot_be_kept_aside_stops_the_stage(tmp_path: Path) -> None:
    # when even the rename to out.dvfs-previous failed, the previous output stayed at
    # .tmp-dvfs-prev-* (the message named it), and the next repro deleted it
    repo = init_repo(tmp_path / "repo")
    repo.write("step.sh", "echo made > out\n")
    repo.ok("run", "-n", "s", "-d", "step.sh", "-o", "out", "--no-exec", "--", "sh step.sh")
    leftover = _leftover(repo, "the only copy\n")
    for n in range(1, 100):  # every name it could be kept as is taken
        repo.write("out.dvfs-previous" + (f"-{n}" if n > 1 else ""), "")
    repo.fail("repro", fragments=(
        f"stage s did not run: {leftover.name} holds a previous output of out",
        "move it away (or back in place) and run again"))  # fmt: skip
    assert leftover.read_text() == "the only copy\n"
    assert not (repo.root / "out").exists()
    leftover.rename(repo.root / "mine")
    repo.ok("repro")
    assert repo.read("out") == b"made\n"
    repo.fsck_clean()


def _cached_run(repo: Repo) -> bytes:
    """Stage s run with in = 1, then 2: a restore of in = 1 from the run cache is next;
    the pack bytes holding the first run's out/b."""
    repo.write("in", "1\n")
    cmd = "mkdir -p out; cat in > out/a; echo only-in-the-first-run > out/b"
    repo.ok("run", "-n", "s", "-d", "in", "-o", "out", "--", cmd)
    repo.write("in", "2\n")
    repo.ok("repro")
    repo.write("in", "1\n")
    return b"only-in-the-first-run"


def test_a_failed_restore_from_the_run_cache_says_where_the_previous_outputs_are(
    tmp_path: Path,
) -> None:
    # a damaged object failed the restore: the one line named the object alone, not the
    # stage nor that its previous outputs were put back
    repo = init_repo(tmp_path / "repo")
    marker = _cached_run(repo)
    packs = [p for p in (repo.root / ".dvfs/objects").glob("*.pack") if marker in p.read_bytes()]
    assert len(packs) == 1
    good = packs[0].read_bytes()
    packs[0].write_bytes(good.replace(marker, marker.upper()))
    try:
        repo.fail("repro", fragments=(
            "stage s could not be restored from the run cache", "is corrupt",
            "nothing of it was recorded and its previous outputs are back",
            "`dvfs repro --force` runs its command instead"))  # fmt: skip
    finally:
        packs[0].write_bytes(good)
    assert repo.read("out/a") == b"2\n"
    assert not any(p.name.startswith(".tmp-") for p in repo.root.iterdir())
    repo.fsck_clean()


def test_a_failed_restore_names_a_previous_output_it_could_not_put_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the previous out kept as out.dvfs-previous after a failed restore went unsaid
    repo = init_repo(tmp_path / "repo")
    marker = _cached_run(repo)
    packs = [p for p in (repo.root / ".dvfs/objects").glob("*.pack") if marker in p.read_bytes()]
    good = packs[0].read_bytes()
    packs[0].write_bytes(good.replace(marker, marker.upper()))
    real = backups.rename

    def rename(ws: Workspace, src: bytes, dst: bytes) -> None:
        if dst == b"out" and src == backups.backup_name(b"out"):  # what is left cannot go
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        real(ws, src, dst)

    monkeypatch.setattr(backups, "rename", rename)
    monkeypatch.chdir(repo.root)
    ws, _, dag = pipeline_here()
    with Workers(2) as w:
        out = Repro(ws, dag, w, lambda _: None, lambda _: None, Output()).run(Options())
    ws.close()
    packs[0].write_bytes(good)
    assert [n for n, _, _ in out.failed] == ["s"]
    message = out.failed[0][1]
    assert "stage s could not be restored from the run cache" in message
    assert "they are kept (out as out.dvfs-previous)" in message, message
    assert out.kept == [(b"out", b"out.dvfs-previous", os.strerror(errno.EBUSY))]
    assert repo.read("out.dvfs-previous/a") == b"2\n"
    repo.fsck_clean()


@pytest.mark.parametrize(
    "cmd", ["rm -r d; mkdir d; exit 1", "mv d d.old; mkdir d; echo two > d/o; exit 1"]
)
def test_a_previous_output_the_command_took_away_with_its_directory_is_said_gone(
    tmp_path: Path, cmd: str
) -> None:
    # the previous d/o, moved aside in d, went with d: the line said it was kept at
    # d/.tmp-dvfs-prev-* (it was not), or "the previous outputs are back" (they were
    # not: the name was put back inside d.old, through a descriptor of the old d)
    repo = init_repo(tmp_path / "repo")
    repo.ok("run", "-n", "s", "-o", "d/o", "--", "mkdir -p d; echo one > d/o")
    repo.write("dvfs.yaml", json.dumps({"stages": {"s": {"cmd": cmd, "outs": ["d/o"]}}}))
    line = repo.fail("repro", fragments=(
        "stage s failed", "nothing of it was recorded and the previous outputs d/o (moved "
        f"aside to d/{os.fsdecode(backups.backup_name(b'o'))}) are no longer there: the "
        "command moved or removed them, or the directory they were in"))  # fmt: skip
    assert "are back" not in line and "kept" not in line
    assert not (repo.root / "d" / "o").exists()
    if cmd.startswith("mv"):
        assert [p.name for p in (repo.root / "d.old").iterdir()] == [
            os.fsdecode(backups.backup_name(b"o"))
        ]
    repo.fsck_clean()


def test_a_stage_failing_on_its_first_run_says_it_had_no_previous_outputs(
    tmp_path: Path,
) -> None:
    # the line said "its previous outputs are back", though the stage never had any
    repo = init_repo(tmp_path / "repo")
    line = assert_error(
        repo.run("run", "-n", "a", "-o", "x", "--", "echo part > x; kill -SEGV $$"),
        "stage a failed", "killed by SIGSEGV", "is removed (it had none before)",
    )  # fmt: skip
    assert "are back" not in line
    assert not (repo.root / "x").exists()
    # it said "nothing of it was recorded", and a `dvfs run -n a` with the command
    # mended was then refused: the stage is in dvfs.yaml
    assert line.endswith(
        "; stage a stays in dvfs.yaml: `dvfs repro a` runs it once what failed is fixed "
        "(`dvfs run --force -n a ...` replaces it)"
    ), line
    assert "a" in yaml.safe_load(repo.read("dvfs.yaml"))["stages"]
    line = assert_error(repo.run("run", "-f", "-n", "a", "-o", "x", "--", "true"), "did not make x")
    assert "is removed (it had none before)" in line and "are back" not in line
    repo.write("x", "kept\n")
    assert_error(repo.run("run", "-f", "-n", "a", "-o", "x", "--", "exit 3"), "are back")
    assert repo.read("x") == b"kept\n"
    repo.fsck_clean()


def test_a_failed_stage_leaves_no_empty_directory_made_for_its_outputs(tmp_path: Path) -> None:
    # models/deep/ and keep/sub/, made for the outputs before the command ran, stayed
    # behind empty once it failed
    repo = init_repo(tmp_path / "repo")
    (repo.root / "keep").mkdir()
    r = repo.run("run", "-n", "a", "-o", "models/deep/m", "-o", "keep/sub/x", "--", "exit 3")
    assert_error(r, "stage a failed", "exited with 3")
    assert sorted(p.name for p in repo.root.iterdir()) == [".dvfs", "dvfs.yaml", "keep"]
    assert list((repo.root / "keep").iterdir()) == []
    repo.write("dvfs.yaml", json.dumps({"stages": {
        "bad": {"cmd": "exit 3", "outs": ["both/bad/x"]},
        "good": {"cmd": "echo fine > both/good", "outs": ["both/good"]},
    }}))  # fmt: skip
    assert_error(repo.run("repro", "--keep-going", "--jobs", "2"), "stage bad failed")
    assert [p.name for p in (repo.root / "both").iterdir()] == ["good"]  # what a stage made
    repo.fsck_clean()


def test_ctrl_c_on_a_stage_without_previous_outputs_says_there_were_none(
    slow: tuple[Repo, Path],
) -> None:
    repo, marker = slow
    (repo.root / "slow.out").unlink()
    proc = start_repro(repo, marker)
    os.kill(proc.pid, signal.SIGINT)  # to dvfs alone: it stops the stage
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    errors = [ln for ln in err.decode().splitlines() if ln.startswith(ERROR_PREFIX)]
    assert len(errors) == 1, err
    assert "stage slow was stopped: it recorded nothing" in errors[0]
    assert "is removed (there were none before)" in errors[0], errors[0]
    assert "are back" not in errors[0]
    assert not (repo.root / "slow.out").exists()
    repo.fsck_clean()


# Says it started (a file named after its pid in argv[1]), then waits for argv[1]/go.
WAITS = """
import os, sys, time
open(os.path.join(sys.argv[1], str(os.getpid())), "w").write("")
deadline = time.monotonic() + 120
while not os.path.exists(os.path.join(sys.argv[1], "go")) and time.monotonic() < deadline:
    time.sleep(0.02)
open("out", "w").write("made")
"""


def test_two_experiments_run_at_once_without_a_name_take_two_names(tmp_path: Path) -> None:
    # both took exp-1; the second was refused once its stages had run, with a hint to
    # change the -n NAME it was never given
    repo, started = init_repo(tmp_path / "repo"), tmp_path / "started"
    started.mkdir()
    repo.write("waits.py", WAITS)
    repo.ok("add", "waits.py")
    repo.ok("run", "--no-exec", "-n", "s", "-d", "waits.py", "-o", "out", "--",
            PY, "waits.py", str(started))  # fmt: skip
    repo.ok("add", "dvfs.yaml")
    repo.commit("a stage")
    procs = []
    for n in (1, 2):
        procs.append(subprocess.Popen(
            cli_command("exp", "run"), cwd=repo.root, env=cli_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        ))  # fmt: skip
        deadline = time.monotonic() + 60
        while len(list(started.iterdir())) < n:
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "an experiment's stage never started"
            time.sleep(0.02)
    line = assert_error(repo.run("exp", "run", "-n", "exp-2"), "experiment exp-2 is being run")
    assert "choose another -n NAME" in line and len(list(started.iterdir())) == 2  # ran nothing
    (started / "go").write_text("")
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert b"experiment exp-1:" in outs[0][0] and b"experiment exp-2:" in outs[1][0], outs
    assert {e["name"] for e in repo.json("exp", "list", "--json")} == {"exp-1", "exp-2"}
    assert list((repo.root / ".dvfs" / "exp").iterdir()) == []
    repo.fsck_clean()


def test_a_failed_experiment_names_no_kept_output_in_its_deleted_tree(tmp_path: Path) -> None:
    # the line said the previous output was "kept (out as out.dvfs-previous)", a path in
    # the experiment's working tree, which was then deleted; the working tree's out was
    # as it was all along
    repo = init_repo(tmp_path / "repo")
    repo.write("step.sh", "mkdir -p out && echo one > out/a\n")
    repo.ok("run", "-n", "s", "-d", "step.sh", "-o", "out", "--", "sh", "step.sh")
    repo.ok("add", "step.sh")
    repo.commit("one")
    repo.write("step.sh", "rm -r out; mkdir -p out/m; mount -t tmpfs dvfs-test out/m; exit 1\n")
    repo.ok("add", "step.sh")
    repo.commit("mounts")
    r = repo.run("exp", "run")
    exp = repo.root / ".dvfs" / "exp"
    for m in exp.glob("*/out/m"):
        subprocess.run(["umount", str(m)], check=True)
    line = assert_error(r, "stage s failed", "the working tree's outputs are as they were")
    assert "dvfs-previous" not in line and "the experiment recorded nothing" in line
    left = warnings_of(r)
    assert len(left) == 1 and "could not be removed entirely" in left[0], r.err
    assert repo.read("out/a") == b"one\n"
    assert not list(repo.root.glob("*.dvfs-previous"))
    repo.write("step.sh", "mkdir -p out && echo two > out/a\n")
    repo.ok("add", "step.sh")
    repo.commit("two")
    repo.ok("exp", "run")  # the tree left is removed now its command is gone
    assert list(exp.iterdir()) == []
    repo.fsck_clean()


def test_a_killed_experiment_s_tree_goes_once_another_process_has_its_pid(
    tmp_path: Path,
) -> None:
    # the tree a killed `exp run` left was kept, and its name refused as "being run by
    # another command now", for as long as any process had the dead command's pid
    repo, started = init_repo(tmp_path / "repo"), tmp_path / "started"
    started.mkdir()
    repo.write("waits.py", WAITS)
    repo.ok("add", "waits.py")
    repo.ok("run", "--no-exec", "-n", "s", "-d", "waits.py", "-o", "out", "--",
            PY, "waits.py", str(started))  # fmt: skip
    repo.ok("add", "dvfs.yaml")
    repo.commit("a stage")
    proc = subprocess.Popen(
        cli_command("exp", "run", "-n", "one"), cwd=repo.root, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not list(started.iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline, "the stage never started"
        time.sleep(0.02)
    stage = int(next(started.iterdir()).name)
    proc.kill()
    proc.wait()
    os.kill(stage, signal.SIGKILL)
    exp = repo.root / ".dvfs" / "exp"
    [left] = list(exp.iterdir())
    tree, _, tag = left.name.rpartition(".tmp-")
    dead, dash, rest = tag.partition("-")
    assert tree == "one" and int(dead) == proc.pid
    left.rename(exp / f"{tree}.tmp-{os.getpid()}{dash}{rest}")  # as if its pid were reused
    (started / "go").write_text("")
    assert "experiment one:" in repo.ok("exp", "run", "-n", "one").out
    assert list(exp.iterdir()) == []
    repo.fsck_clean()


def test_a_directory_output_moved_aside_is_neither_listed_nor_staged(tmp_path: Path) -> None:
    # while a stage ran, and after its repro was killed -9, the previous output it had
    # moved aside (out/.tmp-dvfs-prev-...-d/f) was listed as untracked, and `dvfs add
    # out` staged it: the next commit recorded dvfs's backup in the version
    repo, started = init_repo(tmp_path / "repo"), tmp_path / "started"
    started.mkdir()
    (started / "go").write_text("")
    repo.write("waits.py", WAITS.replace('open("out", "w").write("made")\n', ""))
    repo.write("in", "1\n")
    repo.ok("add", "in", "waits.py")
    hold = shlex.join([PY, "waits.py", str(started)])
    repo.ok("run", "-n", "s", "-d", "in", "-o", "out/d", "--",
            f"mkdir -p out/d && cp in out/d/f && {hold}")  # fmt: skip
    repo.commit("one")
    (started / "go").unlink()
    repo.write("in", "2\n")
    proc = subprocess.Popen(
        cli_command("repro"), cwd=repo.root, env=cli_env(),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(list(started.iterdir())) < 2:
        assert proc.poll() is None and time.monotonic() < deadline, "the stage never started"
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    for pid in started.iterdir():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid.name), signal.SIGKILL)
    [aside] = [p.name for p in (repo.root / "out").iterdir() if p.name != "d"]
    assert aside.startswith(".tmp-dvfs-prev-")  # what the next repro deals with
    assert ".tmp-" not in json.dumps(repo.status())
    repo.ok("add", "out")
    assert not any(".tmp-" in p for p in staged_paths(repo))
    repo.fsck_clean()


def test_experiments_a_slash_b_and_a_underscore_b_run_at_once(tmp_path: Path) -> None:
    # `/` became `_` in the name of an experiment's working tree: while `exp run -n a_b`
    # ran, `exp run -n a/b` was refused as "being run by another command now"
    repo = init_repo(tmp_path / "repo")
    repo.write("step.sh", "echo made > out\n")
    repo.ok("run", "-n", "s", "-d", "step.sh", "-o", "out", "--", "sh", "step.sh")
    repo.ok("add", "step.sh")
    repo.commit("a stage")
    exp = repo.root / ".dvfs" / "exp"
    busy = exp / f"a_b.tmp-{process_tag()}"  # what a command that runs `-n a_b` holds
    busy.mkdir(parents=True)
    repo.ok("exp", "run", "-n", "a/b")
    assert_error(repo.run("exp", "run", "-n", "a_b"), "experiment a_b is being run")
    busy.rmdir()
    (exp / f"a%b.tmp-{process_tag()}").mkdir()  # and one that runs `-n a/b`
    repo.ok("exp", "run", "-n", "a_b")
    (exp / f"a%b.tmp-{process_tag()}").rmdir()
    assert {e["name"] for e in repo.json("exp", "list", "--json")} == {"a/b", "a_b"}
    repo.fsck_clean()


def test_repro_of_a_chain_makes_each_stage_s_runs_text_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dvfs.runs, written after each stage, was made anew from every stage's record each
    # time: a chain of N stages made N * (N + 1) / 2 stage texts (a 1024-stage repro
    # took minutes). Each stage's text is made once now; the file is still written
    # whole after each stage (what a kill -9 leaves: test_kill_9_never_records_...)
    repo = init_repo(tmp_path / "repo")
    n = 20
    repo.write("s0", "0\n")
    repo.ok("add", "s0")
    lines = ["stages:"]
    for i in range(1, n + 1):
        lines += [
            f"  s{i}:",
            f"    cmd: echo {i} > s{i}",
            f"    deps: [s{i - 1}]",
            f"    outs: [s{i}]",
        ]
    repo.write("dvfs.yaml", "\n".join(lines) + "\n")
    made: list[str] = []
    real = runs_file._plain

    def plain(s: StageRecord) -> dict[str, object]:
        made.append(s.name)
        return real(s)

    monkeypatch.setattr(runs_file, "_plain", plain)
    monkeypatch.chdir(repo.root)
    ws, _, dag = pipeline_here()
    with Workers(2) as w:
        out = Repro(ws, dag, w, lambda _: None, lambda _: None, Output()).run(Options())
    ws.close()
    assert not out.failed and sorted(made) == sorted(f"s{i}" for i in range(1, n + 1))
    data = repo.read("dvfs.runs")
    assert data == runs_file.dump(runs_file.parse(data))
    assert repo.read(f"s{n}") == f"{n}\n".encode()
    repo.fsck_clean()
