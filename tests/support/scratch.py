"""Directories of a test process's own in ``/tmp``, named after its pid.

A test process removes its directories as it exits (``atexit``); one killed first
(``kill -9``, a CI timeout) cannot. The next process to make a directory of the same
kind removes those whose process no longer runs: whole where nothing outlives the
process that made it, only if empty where something may (a mount's daemon keeps
its socket in a mount's runtime directory).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from vfs._os.helper_process import alive


def scratch_dir(kind: str, *, outlived: bool = False) -> Path:
    """A new directory ``/tmp/dvfs-KIND-PID-XXXXXXXX``, after removing those of ``kind``
    left by processes that have ended (only the empty ones if ``outlived``: something
    of theirs may still use them)."""
    prefix = f"dvfs-{kind}-"
    top = Path(tempfile.gettempdir())
    mine = re.compile(re.escape(prefix) + r"([0-9]+)-[^/]+")
    with contextlib.suppress(OSError), os.scandir(top) as entries:
        for entry in entries:
            found = mine.fullmatch(entry.name)
            if found is None or alive(int(found.group(1))):
                continue
            if not entry.is_dir(follow_symlinks=False):
                continue
            if outlived:
                with contextlib.suppress(OSError):
                    os.rmdir(entry.path)
            else:
                shutil.rmtree(entry.path, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=top))
