"""The test processes' scratch directories in /tmp (``tests/support/scratch.py``): those
of a process killed before its exit handlers ran go with the next process's."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests.support.scratch import scratch_dir


def _ended_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_the_directories_of_ended_processes_go_and_those_of_running_ones_stay() -> None:
    top = Path(tempfile.gettempdir())
    dead = _ended_pid()
    made = []
    try:
        left_ui = top / f"dvfs-ui-{dead}-a1"
        (left_ui / "repo").mkdir(parents=True)
        (left_ui / "repo" / "f").write_bytes(b"x")
        empty_run = top / f"dvfs-run-{dead}-b2"
        empty_run.mkdir()
        used_run = top / f"dvfs-run-{dead}-c3"  # a daemon of the killed session still runs
        used_run.mkdir()
        (used_run / "mount.sock").write_bytes(b"")
        live_ui = top / f"dvfs-ui-{os.getpid()}-d4"
        live_ui.mkdir()
        made = [left_ui, empty_run, used_run, live_ui]

        made.append(scratch_dir("ui"))
        made.append(scratch_dir("run", outlived=True))

        assert not left_ui.exists() and not empty_run.exists()
        assert (used_run / "mount.sock").exists() and live_ui.is_dir()
        assert made[-2].name.startswith(f"dvfs-ui-{os.getpid()}-") and made[-2].is_dir()
    finally:
        for path in made:
            subprocess.run(["rm", "-rf", str(path)], check=True)
