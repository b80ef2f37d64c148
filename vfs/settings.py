"""The ``DVFS_*`` environment variables, each parsed here and checked against a fixed range.

Every variable is checked before any command runs (:func:`check_all`, called by every
CLI command and the quick paths), never at import, so that a bad value cannot break
``dvfs --help``, and is found before a command has done anything (a ``dvfs run`` ran
its stage, then refused to take the lock); a bad value raises
:class:`~vfs.errors.UsageError` (exit 2) with one line naming the variable, its value
and what it accepts. An empty value counts as unset.

==================== ======================================== ==========
variable             accepted                                 default
==================== ======================================== ==========
DVFS_LOCK_TIMEOUT    seconds to wait for the lock, 0 to 86400 10
DVFS_RETRY_ATTEMPTS  attempts per S3 request, 1 to 100        6
DVFS_RETRY_DEADLINE  seconds of retrying per request, 0-86400 60
DVFS_THREADS         worker threads, 1 to 256                 CPU count
DVFS_AUTHOR          up to 1,024 characters, no control chars git's user
DVFS_DEBUG           any value but 0/false/no/off turns it on off
==================== ======================================== ==========
"""

from __future__ import annotations

import math
import os
import re

from vfs.errors import UsageError
from vfs.quoting import escape_text

MAX_SECONDS = 86400
MAX_ATTEMPTS = 100
MAX_THREADS = 256
MAX_AUTHOR = 1024
_SHOWN = 60  # characters of a bad value repeated in the error


def _raw(name: str) -> str | None:
    value = os.environ.get(name)
    return value if value else None


def _bad(name: str, value: str, wanted: str) -> UsageError:
    shown = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
    return UsageError(f"{name}={escape_text(shown)} is not {wanted}")


# Numbers as a user writes them: ASCII digits, no "_" between them (Python's int and
# float read "1_0" as 10, and "\u0665" as 5); blanks around them are dropped.
_WHOLE = re.compile(r"\s*[+-]?[0-9]+\s*")
_DECIMAL = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*")


def _seconds(name: str, default: float) -> float:
    value = _raw(name)
    if value is None:
        return default
    seconds = float(value) if _DECIMAL.fullmatch(value) else math.nan
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_SECONDS):
        raise _bad(name, value, f"a number of seconds (0 to {MAX_SECONDS})")
    return seconds


def _count(name: str, low: int, high: int) -> int | None:
    value = _raw(name)
    if value is None:
        return None
    n = int(value) if _WHOLE.fullmatch(value) else low - 1
    if not low <= n <= high:
        raise _bad(name, value, f"a whole number from {low} to {high}")
    return n


def lock_timeout() -> float:
    """DVFS_LOCK_TIMEOUT: seconds to wait for another command's repository lock."""
    return _seconds("DVFS_LOCK_TIMEOUT", 10.0)


def retry_attempts() -> int:
    """DVFS_RETRY_ATTEMPTS: attempts of an S3 request that got no answer."""
    n = _count("DVFS_RETRY_ATTEMPTS", 1, MAX_ATTEMPTS)
    return 6 if n is None else n


def retry_deadline() -> float:
    """DVFS_RETRY_DEADLINE: seconds after which an S3 request is not retried again."""
    return _seconds("DVFS_RETRY_DEADLINE", 60.0)


def threads() -> int | None:
    """DVFS_THREADS: worker threads for hashing and storing (None: one per CPU)."""
    return _count("DVFS_THREADS", 1, MAX_THREADS)


def author() -> str | None:
    """DVFS_AUTHOR: who commits (None: ask the config, then git)."""
    value = _raw("DVFS_AUTHOR")
    if value is None:
        return None
    if len(value) > MAX_AUTHOR or escape_text(value) != value:
        wanted = f"a name of at most {MAX_AUTHOR} characters without control characters"
        raise _bad("DVFS_AUTHOR", value, wanted)
    return value


def debug() -> bool:
    """DVFS_DEBUG: show the traceback of an unexpected error. Never fails."""
    value = (os.environ.get("DVFS_DEBUG") or "").strip().lower()
    return value not in ("", "0", "false", "no", "off")


def check_all() -> None:
    """Parse every variable now, before a command (or a mount's daemon) does anything
    that a bad one would stop halfway."""
    lock_timeout()
    retry_attempts()
    retry_deadline()
    threads()
    author()
