"""A rich progress bar on stderr for long operations, shown only on a terminal.

``rich`` is imported when a bar is first needed rather than at start-up: importing
it costs about 70 ms, which quick commands such as ``status`` should not pay. A label
is shown as plain text: control characters escaped, no rich markup, so that a label
holding a file name cannot rewrite the terminal.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from vfs.quoting import escape_text

# Phases shorter than this never show a bar.
SHOW_AFTER = 0.5


class TerminalProgress:
    """Implements ``vfs.worktree.Progress`` with a rich bar (files and bytes).

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
        self._files = (0, 0)
        self._bytes = (0, 0)
        self._started = 0.0

    def start(self, label: str, files: int, nbytes: int) -> None:
        """Begin a phase; the bar appears only if it lasts over ``show_after`` seconds."""
        self.done()
        self._label = escape_text(label)
        self._files = (0, files)
        self._bytes = (0, nbytes)
        self._started = time.monotonic()

    def _open(self) -> None:
        import rich.console  # deferred: see the module docstring
        import rich.progress as rp

        self._bar = rp.Progress(
            rp.TextColumn("{task.description}", markup=False),
            rp.BarColumn(),
            rp.TextColumn("{task.fields[files]}"),
            rp.DownloadColumn(binary_units=True),
            rp.TransferSpeedColumn(),
            rp.TimeRemainingColumn(),
            console=(
                rich.console.Console(stderr=True)
                if self._file is None
                else rich.console.Console(file=self._file, force_terminal=True)
            ),
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
            if time.monotonic() - self._started < self._show_after:
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
