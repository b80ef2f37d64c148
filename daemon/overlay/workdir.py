"""A working tree's work directory: its lock, and the error when it is unusable (its name:
``vfs.mount.work_dirs.work_dir_name``, which the repository's side uses too)."""

from __future__ import annotations

import os
from pathlib import Path

from vfs import DvfsError, MountError, claim_for_life, private_dir, quote_name


class OverlayError(DvfsError):
    """The work directory cannot be used (damaged state, held by another daemon)."""


def lock_work(work: Path) -> int:
    """Hold the work directory for this daemon (made if missing); MountError if another
    one has it, or if it holds a symbolic link (its upper layer, scratch directory, data
    or journal elsewhere: written, and emptied, wherever they point)."""
    private_dir(work, tighten=True)  # its journal names files that may be private
    with os.scandir(work) as entries:
        linked = sorted(e.name for e in entries if e.is_symlink())
    if linked:
        raise MountError(
            f"the working tree {quote_name(str(work))} holds the symbolic link "
            f"{quote_name(linked[0])}: dvfs follows no link out of a working tree; remove "
            "it, then mount again"
        )
    got = claim_for_life(work / "lock", 0o600)
    if isinstance(got, str):
        raise MountError(
            f"the working tree {work} is in use by another dvfs mount (pid {got}): "
            "unmount it first, or mount it elsewhere with --read-only"
        )
    return got
