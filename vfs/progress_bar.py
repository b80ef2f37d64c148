"""A rich progress bar on stderr for long operations, shown only on a terminal.

``rich`` is imported when a bar is first needed rather than at start-up: importing
it costs about 70 ms, which quick commands such as ``status`` should not pay.
"""

from __future__ import annotations

import sys
import time
from typing import Any

# Phases shorter than this never show a bar.
SHOW_AFTER = 0.5


class TerminalProgress:
    """Implements ``vfs.worktree.Progress`` with a rich bar (files and bytes)."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self._bar: Any = None
        self._task: Any = None
        self._label = ""
        self._files = (0, 0)
        self._bytes = (0, 0)
        self._started = 0.0

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Begin a phase; the bar appears only if it lasts over SHOW_AFTER seconds."""
        self.done()
        self._label = label
        self._files = (0, files)
        self._bytes = (0, nbytes)
        self._started = time.monotonic()

    def _open(self) -> None:
        import rich.console  # deferred: see the module docstring
        import rich.progress as rp

        self._bar = rp.Progress(
            rp.TextColumn("{task.description}"),
            rp.BarColumn(),
            rp.TextColumn("{task.fields[files]}"),
            rp.DownloadColumn(binary_units=True),
            rp.TransferSpeedColumn(),
            rp.TimeRemainingColumn(),
            console=rich.console.Console(stderr=True),
            transient=True,
        )
        self._bar.start()
        self._task = self._bar.add_task(self._label, total=self._bytes[1] or None, files="")

    def advance(self, files: int, nbytes: int) -> None:
        """Record progress and redraw when a bar is showing."""
        self._files = (self._files[0] + files, self._files[1])
        self._bytes = (self._bytes[0] + nbytes, self._bytes[1])
        if not self.enabled:
            return
        if self._bar is None:
            if time.monotonic() - self._started < SHOW_AFTER:
                return
            self._open()
        self._bar.update(
            self._task,
            completed=self._bytes[0],
            files=f"{self._files[0]}/{self._files[1]} files",
        )

    def done(self) -> None:
        """Remove the bar, if one is showing."""
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
