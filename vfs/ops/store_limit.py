"""``store.max-size``: the local store kept as a cache of the default remote.

After everything that grows the store (``dvfs add``, ``commit`` and ``pull``, the
Python API's ``Repo.add`` and ``Repo.commit``, and ``vfs.track``), the least recently
used data the remote holds is dropped until the store fits (``vfs.ops.prune.shrink``).
While the setting is unset only this module is loaded: ``vfs.ops.prune`` (remotes,
gc) is imported once there is a limit to keep.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vfs.errors import DvfsError, UsageError
from vfs.quoting import quote_given

if TYPE_CHECKING:
    from vfs.ops.prune import PruneReport
    from vfs.repo.repository import Repository

MAX_SIZE_KEY = "store.max-size"
_STORE_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)


def parse_store_size(text: str, what: str) -> int:
    """Bytes in ``50G``, ``512M``, ``1.5T`` or a plain number."""
    m = _STORE_SIZE.fullmatch(text)
    if m is None:
        raise UsageError(f"{what} {quote_given(text)} is not a size: write e.g. 50G, 512M or 1T")
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * unit)


@dataclass(frozen=True)
class Trimmed:
    """What keeping the store within ``store.max-size`` dropped."""

    setting: str  # the setting as written ("50G")
    limit: int  # in bytes
    report: PruneReport


def keep_within_max_size(repo: Repository, warn: Callable[[str], None]) -> Trimmed | None:
    """With ``store.max-size`` set and the store above it, drop the least recently used
    data the default remote holds; what was dropped, or None (no limit, the store
    fits, or nothing could be done). Never an error: what grew the store has
    succeeded, so a failure (a remote that cannot be checked, a setting edited into
    something that is not a size) is a warning, and nothing is dropped."""
    text = repo.config().get(MAX_SIZE_KEY)
    if not isinstance(text, str):
        return None
    from vfs.ops.prune import shrink

    try:
        limit = parse_store_size(text, MAX_SIZE_KEY)
        r = shrink(repo, limit)
    except DvfsError as exc:
        warn(f"{MAX_SIZE_KEY} {text}: nothing was pruned: {exc}")
        return None
    if r is None:
        return None
    for problem in r.problems:
        warn(f"{MAX_SIZE_KEY} {text}: {problem}")
    return Trimmed(text, limit, r)
