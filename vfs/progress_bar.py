"""A rich progress bar on stderr for long operations, shown only on a terminal, and
the one way dvfs writes sizes and speeds.

Every amount of data dvfs prints, in a bar or in a command's closing line, is in
binary units (:func:`human_size`: B, KiB, MiB, GiB, TiB) and every speed in the same
units per second (``MiB/s``). A bar counts what its phase works on, in that phase's
unit (``files``, ``chunks``, ``objects``...), and the bytes below them::

    restoring ━━━━━━━━━━━━━━━━━━━━━━━━━           812/2,000 files  1.2/3.0 GiB  250.3 MiB/s  0:00:07

A phase with no bytes to speak of (deleting files) shows its count and a rate of
that unit per second instead.

``rich`` is imported when a bar is first needed rather than at start-up: importing
it costs about 70 ms, which quick commands such as ``status`` should not pay. A label
is shown as plain text: control characters escaped, no rich markup, so that a label
holding a file name cannot rewrite the terminal.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import IO, Any

from vfs.quoting import escape_text

# Phases shorter than this never show a bar.
SHOW_AFTER = 0.5
# The speed shown is that of the last few seconds.
RATE_WINDOW = 3.0
# The text beside the bar is rebuilt at most this often.
REDRAW_EVERY = 0.1

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(n: float) -> str:
    """``n`` bytes in binary units: ``512 B``, ``1.5 KiB``, ``3.2 MiB``, ``1.0 GiB``."""
    size = float(n)
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def human_rate(per_second: float) -> str:
    """A speed in bytes per second, in the units of :func:`human_size` (``12.3 MiB/s``)."""
    return f"{human_size(per_second)}/s"


class TerminalProgress:
    """Implements ``vfs.worktree.pools.Progress`` with a rich bar (a count and bytes).

    The bar goes to stderr when it is a terminal, or to ``file`` (drawn as for a
    terminal) when one is given; it appears once a phase has lasted ``show_after``
    seconds.
    """

    def __init__(self, file: IO[str] | None = None, show_after: float = SHOW_AFTER) -> None:
        self.enabled = file is not None or sys.stderr.isatty()
        self._file = file
        self._show_after = show_after
        self._bar: Any = None
        self._task: Any = None
        self._label = ""
        self._unit = "files"
        self._count = (0, 0)
        self._bytes = (0, 0)
        self._started = 0.0
        self._drawn = 0.0
        self._samples: deque[tuple[float, int, int]] = deque()

    def start(self, label: str, files: int, nbytes: int, unit: str = "files") -> None:
        """Begin a phase of ``files`` things (counted as ``unit``) and ``nbytes`` bytes.

        The bar appears only if the phase lasts over ``show_after`` seconds.
        """
        self.done()
        self._label = escape_text(label)
        self._unit = escape_text(unit)
        self._count = (0, files)
        self._bytes = (0, nbytes)
        self._started = time.monotonic()
        self._samples.clear()

    def _open(self) -> None:
        import rich.console  # deferred: see the module docstring
        import rich.progress as rp

        self._bar = rp.Progress(
            rp.TextColumn("{task.description}", markup=False),
            rp.BarColumn(),
            rp.TextColumn("{task.fields[amounts]}", markup=False),
            rp.TimeRemainingColumn(),
            console=(
                rich.console.Console(stderr=True)
                if self._file is None
                else rich.console.Console(file=self._file, force_terminal=True)
            ),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self._label, total=self._total() or None, amounts="")

    def _total(self) -> int:
        """What the bar fills up with: bytes, or the count when there are none."""
        return self._bytes[1] or self._count[1]

    def amounts(self, now: float) -> str:
        """The text beside the bar: count, bytes and speed."""
        done, total = self._count
        parts = [f"{done:,}/{total:,} {self._unit}"]
        self._samples.append((now, done, self._bytes[0]))
        while len(self._samples) > 2 and now - self._samples[0][0] > RATE_WINDOW:
            self._samples.popleft()
        then, done_then, bytes_then = self._samples[0]
        elapsed = now - then
        if self._bytes[1]:
            parts.append(f"{human_size(self._bytes[0])}/{human_size(self._bytes[1])}")
            if elapsed > 0:
                parts.append(human_rate((self._bytes[0] - bytes_then) / elapsed))
        elif elapsed > 0:
            parts.append(f"{(done - done_then) / elapsed:,.0f} {self._unit}/s")
        return "  ".join(parts)

    def advance(self, files: int, nbytes: int) -> None:
        """Record progress and redraw when a bar is showing."""
        self._count = (self._count[0] + files, self._count[1])
        self._bytes = (self._bytes[0] + nbytes, self._bytes[1])
        if not self.enabled:
            return
        now = time.monotonic()
        if self._bar is None:
            if now - self._started < self._show_after:
                return
            self._open()
        elif now - self._drawn < REDRAW_EVERY:
            return
        self._drawn = now
        completed = self._bytes[0] if self._bytes[1] else self._count[0]
        self._bar.update(self._task, completed=completed, amounts=self.amounts(now))

    def done(self) -> None:
        """Remove the bar, if one is showing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
