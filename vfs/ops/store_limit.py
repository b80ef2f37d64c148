"""``store.max-size``: the local store kept as a cache of the default remote.

After everything that grows the store (``dvfs add``, ``commit`` and ``pull``, the
Python API's ``Repo.add`` and ``Repo.commit``, and ``vfs.track``), the least recently
used data the remote holds is dropped until the store fits (``vfs.ops.prune.shrink``).
While the setting is unset only this module is loaded: ``vfs.ops.prune`` (remotes,
gc) is imported once there is a limit to keep.

Before that, whatever the setting, the small packs many small commits leave are
merged once there are ``vfs.ops.gc.AUTO_MERGE_AT`` of them (a directory listing
finds fewer, and nothing more is done).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vfs.errors import DvfsError, UsageError
from vfs.quoting import quote_given
from vfs.store.packs import SMALL_PACK

if TYPE_CHECKING:
    from vfs.ops.prune import PruneReport
    from vfs.repo.repository import Repository

MAX_SIZE_KEY = "store.max-size"
# What grows the store merges its packs under SMALL_PACK (``vfs.store.packs``) once there
# are this many (256 indexes cost every command ~10 ms); ``dvfs gc`` merges them at 16.
AUTO_MERGE_AT = 256
_STORE_SIZE = r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*"  # (compiled when a size is read)


def parse_store_size(text: str, what: str) -> int:
    """Bytes in ``50G``, ``512M``, ``1.5T`` or a plain number."""
    m = re.fullmatch(_STORE_SIZE, text, re.IGNORECASE)
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    size = float(m.group(1)) * unit[m.group(2).upper()] if m is not None else math.inf
    if math.isinf(size):  # (not a size, or digits past any float: 400 nines)
        raise UsageError(f"{what} {quote_given(text)} is not a size: write e.g. 50G, 512M or 1T")
    return int(size)


class Trimmed(NamedTuple):
    """What keeping the store within ``store.max-size`` dropped (a named tuple: this
    module is loaded after every add and commit, and a frozen dataclass cost 0.4-1.3
    ms of it)."""

    setting: str  # the setting as written ("50G")
    limit: int  # in bytes
    report: PruneReport


def small_packs(root: Path) -> list[Path]:
    """The complete packs of the store at ``root`` under ``SMALL_PACK`` bytes."""
    out: list[Path] = []
    try:
        with os.scandir(root) as it:
            for e in it:
                if e.name.startswith("pack-") and e.name.endswith(".pack"):
                    with contextlib.suppress(OSError):
                        if e.stat(follow_symlinks=False).st_size < SMALL_PACK:
                            out.append(root / e.name)
    except (FileNotFoundError, NotADirectoryError):
        pass
    return sorted(out)


def merged_small_packs(repo: Repository) -> int:
    """``vfs.ops.gc.merge_small_packs`` if the store holds AUTO_MERGE_AT small packs (a
    directory listing tells, without importing gc); how many were merged."""
    if len(small_packs(repo.store.root)) < AUTO_MERGE_AT:
        return 0
    from vfs.ops.gc import merge_small_packs

    return merge_small_packs(repo, AUTO_MERGE_AT)


def keep_within_max_size(repo: Repository, warn: Callable[[str], None]) -> Trimmed | None:
    """With ``store.max-size`` set and the store above it, drop the least recently used
    data the default remote holds; what was dropped, or None (no limit, the store
    fits, or nothing could be done). Never an error: what grew the store has
    succeeded, so a failure (a remote that cannot be checked, a setting edited into
    something that is not a size) is a warning, and nothing is dropped.

    First, the small packs are merged if there are many (:func:`merged_small_packs`)."""
    merged_small_packs(repo)
    text = repo.config().get(MAX_SIZE_KEY)
    if not isinstance(text, str):
        return None
    from vfs.ops.prune import Unverified, shrink

    try:
        limit = parse_store_size(text, MAX_SIZE_KEY)
        r = shrink(repo, limit)
    except DvfsError as exc:
        said = "" if isinstance(exc, Unverified) else "nothing was pruned: "
        warn(f"{MAX_SIZE_KEY} {text}: {said}{exc}")
        return None
    if r is None:
        return None
    for problem in r.problems:
        warn(f"{MAX_SIZE_KEY} {text}: {problem}")
    return Trimmed(text, limit, r)
