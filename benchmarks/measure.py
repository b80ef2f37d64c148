"""Measuring child processes and directories: wall time, peak RSS, bytes on disk.

Each command runs as a child in its own session; ``os.wait4`` returns its resource
usage, whose ``ru_maxrss`` on Linux is the peak RSS of the child and of every
descendant it waited for (DVC's ``git`` calls count). A step that runs several
commands reports the sum of their wall times and the largest of their peaks.

Commands are started by a small helper process (``spawner.py``), not by the benchmark
itself: Linux carries the peak RSS a process had before ``exec`` over to the program it
runs, so a command forked by the benchmark would report at least the benchmark's own
peak. What remains, the floor under every figure, is measured by ``rss_floor``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DROP_CACHES = Path("/proc/sys/vm/drop_caches")


def timed(cmd: list[str]) -> float:
    """Seconds a command takes, its output discarded (it must succeed)."""
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system, every thread) a running process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss(pid: int) -> int:
    """Bytes of a running process's peak resident set (VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


SPAWNER = Path(__file__).with_name("spawner.py")
TAIL = 2000  # characters of a failed command's output kept for the report


@dataclass
class Proc:
    """One finished command."""

    argv: list[str]
    wall_s: float
    maxrss_kib: int
    returncode: int
    output_tail: str
    cpu_s: float = 0.0  # user + system time, its threads and waited-for children included


@dataclass
class Measurement:
    """The commands of one tool's step, and what they added up to."""

    procs: list[Proc] = field(default_factory=list)

    @property
    def wall_s(self) -> float:
        """Total wall time of all commands."""
        return sum(p.wall_s for p in self.procs)

    @property
    def maxrss_kib(self) -> int:
        """Largest peak RSS of any command."""
        return max((p.maxrss_kib for p in self.procs), default=0)

    @property
    def failed(self) -> Proc | None:
        """The first command that exited non-zero, if any."""
        return next((p for p in self.procs if p.returncode != 0), None)


class Spawner:
    """The helper process that starts commands; see ``spawner.py`` for its protocol."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-S", str(SPAWNER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def _ask(self, message: dict[str, object] | None = None) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if message is not None:
            self.proc.stdin.write(json.dumps(message) + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the spawner exited ({self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise OSError(answer["error"])
        return answer

    def run(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Proc:
        """Run ``argv`` to completion and measure it; output goes to a temporary file.

        On an interrupt the command's process group is killed, so nothing is left behind.
        """
        with tempfile.NamedTemporaryFile() as out:
            request: dict[str, object] = {"argv": list(argv), "cwd": str(cwd), "env": dict(env)}
            pid = self._ask({**request, "out": out.name})["pid"]
            try:
                done = self._ask()
            except BaseException:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                raise
            text = out.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(done["status"])
        return Proc(
            list(argv), done["wall_s"], done["maxrss_kib"], code, text[-TAIL:], done["cpu_s"]
        )

    def close(self) -> None:
        """Let the helper exit (it does when its input closes) and reap it."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


_spawner: Spawner | None = None


def run(argv: Sequence[str], cwd: Path, env: Mapping[str, str]) -> Proc:
    """Run and measure one command through the helper, started on first use."""
    global _spawner
    if _spawner is None:
        _spawner = Spawner()
        atexit.register(_spawner.close)
    return _spawner.run(argv, cwd, env)


def rss_floor(cwd: Path, env: Mapping[str, str]) -> int:
    """Peak RSS in KiB that a do-nothing command reports: the floor under every figure."""
    return run(["true"], cwd, env).maxrss_kib


def run_all(commands: Sequence[Sequence[str]], cwd: Path, env: Mapping[str, str]) -> Measurement:
    """Run commands in order, stopping at the first that fails."""
    m = Measurement()
    for argv in commands:
        m.procs.append(run(argv, cwd, env))
        if m.procs[-1].returncode != 0:
            break
    return m


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes on disk (allocated blocks) and apparent bytes under ``path``, like ``du``.

    Hard-linked files count once. A missing path is 0.
    """
    seen: set[tuple[int, int]] = set()
    on_disk = apparent = 0
    if not path.exists():
        return 0, 0
    for dirpath, dirnames, filenames in os.walk(path):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            on_disk += st.st_blocks * 512
            apparent += st.st_size
    return on_disk, apparent


def check_drop_caches() -> None:
    """Fail early, with a message, when the page cache cannot be dropped here."""
    if not os.access(DROP_CACHES, os.W_OK):
        raise SystemExit(f"--drop-caches needs write access to {DROP_CACHES} (run as root)")


def settle(drop_caches: bool) -> None:
    """Flush dirty pages before a timed step, and drop the page cache if asked.

    The flush keeps one step's pending writeback from being billed to the next.
    """
    os.sync()
    if drop_caches:
        DROP_CACHES.write_text("3\n")


WARM_SCRIPT = """
import mmap, sys
size = int(sys.argv[1])
step = 1 << 30
for start in range(0, size, step):
    m = mmap.mmap(-1, min(step, size - start))
    for i in range(0, len(m), 4096):
        m[i] = 1
    m.close()
"""


def warm_memory(fraction: float = 0.6) -> int:
    """Touch most of the free memory once, in a child process, then give it back.

    On virtual machines whose guest memory is backed lazily, the first touch of each
    page costs far more than later ones; whichever tool ran first would pay for it.
    Touching the memory up front makes both tools run on equal terms. Returns bytes.
    """
    with open("/proc/meminfo") as fh:
        info = dict(line.split(":", 1) for line in fh)
    available = int(info["MemAvailable"].split()[0]) * 1024
    size = int(available * fraction)
    subprocess.run([sys.executable, "-c", WARM_SCRIPT, str(size)], check=True)
    return size


def unwind_on_sigterm() -> None:
    """On SIGTERM, unwind as on Ctrl-C (``SystemExit``): the running command is killed
    and the data deleted by the same ``finally`` blocks."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
