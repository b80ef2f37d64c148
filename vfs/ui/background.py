"""Work the dashboard starts beside itself: what every branch's versions changed.

"Added in" of a directory past ``vfs.ui.data.ADDED_MAX`` entries is searched for
within a time budget per request (``vfs.ui.data.added``); what each version changed is
kept once worked out (``vfs.ops.changed``), so the answers become exact as those
records fill in. A new interpreter, at a low priority, works them all out when the
server starts: on the other core, rather than competing with the requests for this
one's interpreter lock. It writes only ``.dvfs/changes``, exits when done, and is
stopped with the server.

    python -m vfs.ui.background REPOSITORY_ROOT
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path


def start(root: Path) -> subprocess.Popen[bytes]:
    """Start working out, in a process of its own, what the versions of ``root`` changed.
    (``-P``: ``python -m`` would import first from the directory `dvfs ui` runs in,
    a repository's working tree, whose ``vfs/__init__.py`` would then run.)"""
    return subprocess.Popen(
        [sys.executable, "-P", "-m", "vfs.ui.background", os.fspath(root)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop it (if it has not finished) and reap it."""
    if proc.poll() is None:
        proc.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)
        return
    proc.kill()
    proc.wait()


def main(argv: list[str]) -> int:
    from vfs.ops.changed import work_out
    from vfs.repo.repository import Repository

    with contextlib.suppress(OSError):
        os.nice(10)
    repo = Repository(Path(argv[0]))
    tips = {t for t in [repo.history.head_id(), *repo.refs.branches().values()] if t}
    work_out(repo.history, sorted(tips))
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main(sys.argv[1:]))
