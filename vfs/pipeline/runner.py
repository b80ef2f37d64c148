"""Running one stage's command: its environment, directory, output and signals.

- **Command**: a ``cmd`` written as text runs under ``sh -c`` (as DVC runs it, so
  pipes and globs work); a ``cmd`` written as a list is the argv itself, run with no
  shell at all (the first item looked up in ``PATH``).
- **Directory**: the stage's ``wdir`` below the working tree's root, opened from the
  root one name at a time without following a symbolic link (``vfs._os.beneath``); the
  command starts in the directory that descriptor names (``/proc/self/fd/N``), so a
  link swapped in meanwhile is not followed either.
- **Environment**, clean and the same wherever the pipeline runs: only ``PASSED``
  and the ``LC_*`` variables are passed on from dvfs's own environment (``PATH``
  defaulting to ``os.defpath``), plus ``DVFS_STAGE`` (the stage's name) and
  ``DVFS_ROOT`` (the working tree's root). Nothing else reaches a stage: not a
  credential, not a setting that would make a run depend on the shell it came from.
- **Input**: ``/dev/null``. **Output**: copied to dvfs's own standard output and
  error as it comes; with ``prefix``, each line starts with ``[stage] `` (parallel
  stages interleave whole lines). The last ``TAIL`` lines of standard error are kept
  for the message if the command fails, each as a terminal shows it (a progress bar
  redrawn after carriage returns: its last drawing). The stage is done when its command
  exits: what the pipes hold then is copied, and a process it left running in the
  background (``server &``), which keeps the pipes open, is not waited for; what that
  process writes later is not shown (it gets EPIPE or SIGPIPE: redirect its output).
- **Signals**: each command runs in a session of its own (so a Ctrl-C reaches dvfs,
  not every command at once); :meth:`Running.stop` sends it SIGINT, then SIGTERM
  after ``GRACE`` seconds, then SIGKILL, to its whole process group (:func:`stop_all`
  does so for several commands at once).
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from vfs.pipeline.spec import Stage

PASSED = (
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "TERM", "TZ", "TMPDIR", "LANG", "LANGUAGE",
    "VIRTUAL_ENV", "CONDA_PREFIX", "CUDA_VISIBLE_DEVICES",
)  # fmt: skip
TAIL = 10
GRACE = 3.0
READ_SIZE = 64 * 1024


def environment(root: Path, stage: Stage) -> dict[str, str]:
    """The environment a stage's command runs with (see the module docstring)."""
    env = {k: v for k, v in os.environ.items() if k in PASSED or k.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env["DVFS_STAGE"] = stage.name
    env["DVFS_ROOT"] = str(root)
    return env


def argv(stage: Stage) -> list[str]:
    """What is executed: ``sh -c CMD`` for text, the list itself otherwise."""
    return ["sh", "-c", stage.cmd] if isinstance(stage.cmd, str) else list(stage.cmd)


def _pending(fd: int) -> int:
    """How many bytes pipe ``fd`` holds now (FIONREAD)."""
    buf = array.array("i", [0])
    try:
        fcntl.ioctl(fd, termios.FIONREAD, buf, True)
    except OSError:
        return 0
    return buf[0]


def _read(fd: int, size: int) -> bytes:
    """Up to ``size`` bytes of ``fd``; empty at its end, or if it cannot be read."""
    try:
        return os.read(fd, size)
    except OSError:
        return b""


def _as_shown(line: bytes) -> str:
    """A line of standard error as a terminal leaves it: a progress bar redrawn after
    each carriage return (tqdm's) is its last drawing, not every one of them."""
    drawn = [piece for piece in line.split(b"\r") if piece.strip()]
    return (drawn[-1] if drawn else b"")[-1000:].decode("utf-8", "replace")


class Output:
    """Where the commands' output goes: dvfs's stdout and stderr, one writer at a time."""

    def __init__(self, out: IO[bytes] | None = None, err: IO[bytes] | None = None) -> None:
        self.out = out or sys.stdout.buffer
        self.err = err or sys.stderr.buffer
        self.lock = threading.Lock()

    def write(self, to_err: bool, data: bytes) -> None:
        """Write and flush ``data`` (the terminal sees it at once)."""
        sink = self.err if to_err else self.out
        with self.lock, contextlib.suppress(OSError, ValueError):  # a closed pipe: nothing to say
            sink.write(data)
            sink.flush()


@dataclass
class Finished:
    """How a command ended."""

    code: int  # its exit status; a negative number -N when signal N killed it
    stderr_tail: list[str]
    started_ns: int
    duration_ns: int
    error: str | None = None  # it could not be started at all: why

    def why(self) -> str:
        """``exited with 3``, ``was killed by SIGKILL``, or why it could not start."""
        if self.error is not None:
            return self.error
        if self.code < 0:
            try:
                name = signal.Signals(-self.code).name
            except ValueError:
                name = f"signal {-self.code}"
            return f"was killed by {name}"
        return f"exited with {self.code}"


class Running:
    """One command started; :meth:`wait` for it, :meth:`stop` to end it early."""

    def __init__(
        self, stage: Stage, root: Path, output: Output, prefix: bool, wdir_fd: int
    ) -> None:
        """Start ``stage``'s command in the directory ``wdir_fd`` (a descriptor of its
        wdir: see the module docstring)."""
        self.stage = stage
        self.output = output
        self.prefix = f"[{stage.name}] ".encode() if prefix else b""
        self.tail: deque[str] = deque(maxlen=TAIL)
        self.started_ns = time.time_ns()
        self._t0 = time.monotonic()
        self.error: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._readers: list[threading.Thread] = []
        self._exited_r, self._exited_w = os.pipe2(os.O_CLOEXEC)  # (made readable by wait)
        self._exited_lock = threading.Lock()
        try:
            self.proc = subprocess.Popen(
                argv(stage),
                cwd=f"/proc/self/fd/{wdir_fd}",  # (the child's copy of the descriptor)
                env=environment(root, stage),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
            )
        except OSError as exc:
            what = argv(stage)[0]
            self.error = f"could not be started ({what}: {exc.strerror or exc})"
            return
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for pipe, is_err in ((self.proc.stdout, False), (self.proc.stderr, True)):
            t = threading.Thread(target=self._relay, args=(pipe, is_err), daemon=True)
            t.start()
            self._readers.append(t)

    def _relay(self, pipe: IO[bytes], is_err: bool) -> None:
        """Copy one of the command's streams to ours (prefixed by line), keeping the tail,
        until it ends, or until the command has exited: then what the pipe holds at that
        moment is copied, and no more (see :meth:`wait`)."""
        at_start = True
        partial = b""
        fd = pipe.fileno()

        def copy(data: bytes) -> None:
            nonlocal at_start, partial
            if is_err:
                lines = (partial + data).split(b"\n")
                partial = lines.pop()[-4096:]
                for line in lines:
                    self.tail.append(_as_shown(line))
            if self.prefix:
                pieces = data.split(b"\n")
                out = bytearray()
                for i, piece in enumerate(pieces):
                    last = i == len(pieces) - 1
                    if last and not piece:
                        break  # the data ended a line: the next one starts afresh
                    if at_start:
                        out += self.prefix
                    out += piece
                    if last:
                        at_start = False  # a line continued by the next read
                    else:
                        out += b"\n"
                        at_start = True
                data = bytes(out)
            self.output.write(is_err, data)

        poller = select.poll()
        poller.register(fd, select.POLLIN)
        poller.register(self._exited_r, select.POLLIN)
        while True:
            ready = {f for f, _ in poller.poll()}
            if self._exited_r in ready:  # (checked first: a process left behind may write on)
                left = _pending(fd)
                while left > 0:
                    data = _read(fd, min(left, READ_SIZE))
                    if not data:
                        break
                    left -= len(data)
                    copy(data)
                break
            data = _read(fd, READ_SIZE)
            if not data:
                break
            copy(data)
        if self.prefix and not at_start:
            self.output.write(is_err, b"\n")
        if is_err and partial:
            self.tail.append(_as_shown(partial))
        with contextlib.suppress(OSError):
            pipe.close()

    def poll(self) -> bool:
        """True once the command has ended (or never started)."""
        return self.proc is None or self.proc.poll() is not None

    def wait(self, timeout: float | None = None) -> Finished:
        """Wait for the command to exit (TimeoutExpired after ``timeout``) and for its
        output: all it wrote, but not what a process it left running in the background
        writes later, which holds the pipes open (the stage is done when its command is;
        such a process gets EPIPE, or SIGPIPE, if it writes after that)."""
        code = -1
        if self.proc is not None:
            code = self.proc.wait(timeout)
        with self._exited_lock:  # (stop() may wait while another thread waits too)
            if self._exited_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._exited_w, b"x")
        for t in self._readers:
            t.join()
        with self._exited_lock:
            for fd in (self._exited_r, self._exited_w):
                if fd >= 0:
                    os.close(fd)
            self._exited_r = self._exited_w = -1
        return Finished(
            code=code,
            stderr_tail=list(self.tail),
            started_ns=self.started_ns,
            duration_ns=int((time.monotonic() - self._t0) * 1e9),
            error=self.error,
        )

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the command's process group (if it still runs)."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)

    def stop(self) -> Finished:
        """End the command: SIGINT, then SIGTERM and SIGKILL if it does not stop."""
        return stop_all([self])[0]


def stop_all(commands: list[Running]) -> list[Finished]:
    """End every command at once: SIGINT to all, then SIGTERM and SIGKILL to those
    still running ``GRACE`` seconds later (so stopping N stages takes at most twice
    ``GRACE``, not N times)."""
    done: dict[int, Finished] = {}
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
        left = [i for i in range(len(commands)) if i not in done]
        for i in left:
            commands[i].signal(sig)
        deadline = time.monotonic() + GRACE
        for i in left:
            try:
                done[i] = commands[i].wait(
                    None if sig == signal.SIGKILL else max(0.0, deadline - time.monotonic())
                )
            except subprocess.TimeoutExpired:
                continue
    return [done[i] for i in range(len(commands))]
