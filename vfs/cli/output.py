"""What every command prints with: sizes, counts, quoted names, warnings, JSON, errors.

Without click (``vfs.cli`` prints a plain ``dvfs status`` without importing it):
:func:`echo` writes a line as ``click.echo`` does, to the stream ``sys.stdout`` or
``sys.stderr`` names at the time, and flushes it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any, NoReturn

from vfs import settings
from vfs.progress_bar import TerminalProgress, human_size
from vfs.quoting import escape_text, safe_json
from vfs.quoting import quoted as quoted  # (the commands' name for it)
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers


def echo(line: str = "", err: bool = False) -> None:
    """Print one line on stdout (stderr if ``err``) and flush it, as ``click.echo`` does."""
    stream = sys.stderr if err else sys.stdout
    if stream is None:  # (no console at all: nowhere to print)
        return
    stream.write(line + "\n")
    stream.flush()


def human(n: int | None) -> str:
    """Bytes in binary units, as every bar and summary shows them (``-`` if unknown)."""
    return "-" if n is None else human_size(n)


def count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``12,345 files``."""
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def warn(msg: str) -> None:
    """Print a warning on stderr (on one line, whatever names it holds)."""
    echo(f"dvfs: warning: {escape_text(msg)}", err=True)


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (exact; see vfs.quoting.safe_json)."""
    echo(safe_json(data))


@contextlib.contextmanager
def workers() -> Iterator[Workers]:
    """Thread pools sized for this machine (DVFS_THREADS overrides)."""
    n = settings.threads()
    progress = TerminalProgress()
    w = Workers(n, progress)
    try:
        yield w
    finally:
        progress.done()
        w.close()


def repo_here() -> Repository:
    """The repository around the current directory (its warnings printed: ``Refs.warn``)."""
    repo = Repository.find()
    repo.refs.warn = warn
    return repo


# Ctrl-C: every write is whole (temp + rename) and refs move last, so a rerun finishes
# (a checkout says more: vfs.ops.checkout.CheckoutInterrupted).
INTERRUPTED = "interrupted; nothing half-written is visible, run the command again"
CLOSED_PIPE = 141  # the exit of a command whose reader went away (128 + SIGPIPE, as git's)


class ClosedPipe(Exception):
    """Standard output's reader went away (``dvfs log | head``).

    Raised in place of the BrokenPipeError, which click turns into exit 1 without a
    word (another exit than the one the plain ``status`` gives the same failure).
    """


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line (whatever names it holds) and exit."""
    echo(f"dvfs: error: {escape_text(message)}", err=True)
    sys.exit(code)


def keep_within_max_size(repo: Repository) -> None:
    """With ``store.max-size`` set: drop the least recently used data the remote holds
    (``vfs.ops.store_limit``), and say what went on standard error."""
    from vfs.ops.store_limit import MAX_SIZE_KEY  # (add, commit, pull)
    from vfs.ops.store_limit import keep_within_max_size as keep

    got = keep(repo, warn)
    if got is None:
        return
    r, text = got.report, got.setting
    over = ""
    if r.gc.bytes_after > got.limit:  # say why, or the setting looks ignored
        over = (
            f"; it stays above {text}: the rest is data {r.remote} lacks (`dvfs push` "
            "sends it) or that the newest version, the working tree, the index or a "
            "mount needs"
        )
    echo(
        f"{MAX_SIZE_KEY} {text}: dropped the data of {count(r.pruned_versions, 'version')} "
        f"that {r.remote} holds ({human(r.gc.freed)} freed, store now "
        f"{human(r.gc.bytes_after)}){over}",
        err=True,
    )
