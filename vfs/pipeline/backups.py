"""A stage's outputs moved aside while its command runs, and back if it fails.

Before a command runs, each of its outputs is renamed in its directory to
``.tmp-dvfs-prev-*`` (which ``status`` does not list), so the command starts without
them and an output it does not make is noticed; after a failure what it wrote is
removed and the previous outputs moved back, after a success they are deleted. A
previous output that cannot be moved back (what the command wrote there cannot be
removed: a mount point, an immutable file) is renamed ``OUT.dvfs-previous`` (numbered
if taken), a name ``status`` lists and no run replaces. What the next run finds at
``.tmp-dvfs-prev-*`` (a run killed with -9 left it, or it could not even be renamed)
is deleted only if its content is held elsewhere (the caller says: the index or the
last version); else it is renamed ``OUT.dvfs-previous`` too, and if that fails the
stage does not run. Nothing here deletes a previous output kept nowhere else.
The directories made for the outputs are removed at the end of the run if they are
empty then (a failed command left nothing in them; no other stage wrote there).
Every path is reached through the workspace's walker (no link followed).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from collections.abc import Callable
from dataclasses import dataclass

from vfs._os.beneath import Walker
from vfs.model.ids import hash_bytes
from vfs.pipeline.spec import Stage
from vfs.pipeline.workspace import Workspace
from vfs.worktree.remove import remove_path, remove_tree
from vfs.worktree.restore import ensure_dir

BACKUP_PREFIX = b".tmp-dvfs-prev-"
KEPT_SUFFIX = b".dvfs-previous"


def backup_name(out: bytes) -> bytes:
    """Where ``out`` is moved aside: beside it, named after it."""
    parent, _, leaf = out.rpartition(b"/")
    name = BACKUP_PREFIX + hash_bytes(leaf)[:4].hex().encode() + b"-" + leaf[:200]
    return parent + b"/" + name if parent else name


def remove(ws: Workspace, rel: bytes) -> None:
    """Remove a file or a whole directory of the working tree, if there."""
    w = ws.walker()
    st = w.lstat(rel)
    if st is None:
        return
    if statmod.S_ISDIR(st.st_mode):
        remove_tree(w, rel)
    else:
        remove_path(w, rel)
    w.forget(rel)


def rename(ws: Workspace, src: bytes, dst: bytes) -> None:
    """Rename a path of the working tree."""
    w = ws.walker()
    sdir, sleaf = w.parent(src)
    sdir = os.dup(sdir)  # (the walker's descriptor is valid until its next call)
    try:
        ddir, dleaf = w.parent(dst)
        os.rename(sleaf, dleaf, src_dir_fd=sdir, dst_dir_fd=ddir)
    finally:
        os.close(sdir)
    w.forget(src)
    w.forget(dst)


def move_aside(ws: Workspace, stage: Stage, made: list[bytes]) -> dict[bytes, bytes]:
    """Move the stage's outputs aside; make the directories they go in (those made are
    added to ``made``, parents first, for :func:`remove_empty`)."""
    moved: dict[bytes, bytes] = {}
    w = ws.walker()
    try:
        for o in stage.outs:
            parent = o.rpartition(b"/")[0]
            if parent:
                missing = _missing(w, parent)
                ensure_dir(w, parent, lambda _: False)
                made += missing
            backup = backup_name(o)
            if w.lstat(backup) is not None:  # (never replaced: see clear_leftover)
                raise OSError(errno.EEXIST, "a previous output is still kept there", backup)
            if w.lstat(o) is not None:
                rename(ws, o, backup)
                moved[o] = backup
    except BaseException:
        move_back(ws, moved)
        raise
    return moved


def _missing(w: Walker, rel_dir: bytes) -> list[bytes]:
    """The directories ``rel_dir`` and its parents that are not there, parents first."""
    parts = rel_dir.split(b"/")
    paths = [b"/".join(parts[: i + 1]) for i in range(len(parts))]
    for i, p in enumerate(paths):
        if w.lstat(p) is None:
            return paths[i:]
    return []


def remove_empty(ws: Workspace, dirs: list[bytes]) -> None:
    """Remove those of ``dirs`` (made by :func:`move_aside`) that are empty now,
    children first: what a failed command was to fill and did not."""
    w = ws.walker()
    w.forget(b"")
    for d in sorted(set(dirs), key=lambda p: p.count(b"/"), reverse=True):
        with contextlib.suppress(OSError):  # (not empty, gone, replaced: left as it is)
            parent, leaf = w.parent(d)
            os.rmdir(leaf, dir_fd=parent)
        w.forget(d)


@dataclass(frozen=True)
class Kept:
    """A previous output that could not be put back: where it is (empty: no longer
    there, the command moved or removed it), and why."""

    at: bytes
    why: str


def move_back(ws: Workspace, moved: dict[bytes, bytes]) -> dict[bytes, Kept]:
    """Remove what a failed command wrote, and put the previous outputs back; the
    outputs whose previous one could not be put back, and where each is kept."""
    kept: dict[bytes, Kept] = {}
    for o, backup in moved.items():
        try:
            remove(ws, o)
            rename(ws, backup, o)
        except OSError as exc:
            if ws.lstat(backup) is None:  # the command moved or removed it (or its directory)
                kept[o] = Kept(b"", "gone")
                continue
            kept[o] = Kept(keep(ws, o, backup), exc.strerror or str(exc))
    return kept


def keep(ws: Workspace, out: bytes, backup: bytes) -> bytes:
    """Rename ``backup`` beside ``out`` to ``OUT.dvfs-previous`` (numbered if taken), out
    of the next run's way; where it is then (still ``backup`` if it cannot be renamed)."""
    parent, _, leaf = out.rpartition(b"/")
    for n in range(1, 100):
        name = leaf[:200] + KEPT_SUFFIX + (b"-%d" % n if n > 1 else b"")
        dst = parent + b"/" + name if parent else name
        if ws.lstat(dst) is not None:
            continue
        try:
            rename(ws, backup, dst)
        except OSError:
            return backup
        return dst
    return backup


def clear_leftover(ws: Workspace, out: bytes, saved: Callable[[bytes], bool]) -> bytes | None:
    """What an earlier run left at ``out``'s backup name: deleted if ``saved(backup)``
    (its content is held elsewhere), else renamed ``OUT.dvfs-previous``; where it is
    kept (None: nothing is left there; the backup name itself if it cannot be renamed)."""
    backup = backup_name(out)
    if ws.lstat(backup) is None:
        return None
    if saved(backup):
        remove(ws, backup)
        return None
    return keep(ws, out, backup)


def drop_backups(ws: Workspace, moved: dict[bytes, bytes]) -> None:
    """Delete the previous outputs (the new ones are recorded)."""
    for backup in moved.values():
        with contextlib.suppress(OSError):
            remove(ws, backup)
