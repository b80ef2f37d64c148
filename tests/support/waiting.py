"""Waiting for a condition: polled, bounded, failing with what was awaited."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable

import pytest


def wait_for(
    cond: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    what: str,
    *,
    log: Callable[[], str] | None = None,
    timeout: float = 60,
) -> None:
    """Poll ``cond`` until true; fail if ``proc`` ends first or ``timeout`` s pass.

    A failure names ``what`` was awaited, with the process's output and ``log()``.
    """
    give_up = time.monotonic() + timeout
    while not cond():
        if proc.poll() is not None:
            out, err = proc.communicate()
            extra = log() if log is not None else ""
            pytest.fail(
                f"the process ended before {what}: {proc.returncode}\n{out!r}\n{err!r}\n{extra}"
            )
        if time.monotonic() >= give_up:
            extra = log() if log is not None else ""
            pytest.fail(f"timed out waiting for {what}\n{extra}")
        time.sleep(0.005)
