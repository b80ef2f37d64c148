"""A stage's outputs moved aside while its command runs, and back if it fails.

Before a command runs, each of its outputs is renamed in its directory to
``.tmp-dvfs-prev-*`` (which ``status`` does not list), so the command starts without
them and an output it does not make is noticed; after a failure what it wrote is
removed and the previous outputs moved back, after a success they are deleted.
Every path is reached through the workspace's walker (no link followed).
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod

from vfs.model.ids import hash_bytes
from vfs.pipeline.spec import Stage
from vfs.pipeline.workspace import Workspace
from vfs.worktree.remove import remove_path, remove_tree
from vfs.worktree.restore import ensure_dir

BACKUP_PREFIX = b".tmp-dvfs-prev-"


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


def move_aside(ws: Workspace, stage: Stage) -> dict[bytes, bytes]:
    """Move the stage's outputs aside; make the directories they go in."""
    moved: dict[bytes, bytes] = {}
    w = ws.walker()
    try:
        for o in stage.outs:
            parent = o.rpartition(b"/")[0]
            if parent:
                ensure_dir(w, parent, lambda _: False)
            backup = backup_name(o)
            remove(ws, backup)  # one left by a run killed before it could move it back
            if w.lstat(o) is not None:
                rename(ws, o, backup)
                moved[o] = backup
    except BaseException:
        move_back(ws, moved)
        raise
    return moved


def move_back(ws: Workspace, moved: dict[bytes, bytes]) -> None:
    """Remove what a failed command wrote, and put the previous outputs back."""
    for o, backup in moved.items():
        with contextlib.suppress(OSError):
            remove(ws, o)
            rename(ws, backup, o)


def drop_backups(ws: Workspace, moved: dict[bytes, bytes]) -> None:
    """Delete the previous outputs (the new ones are recorded)."""
    for backup in moved.values():
        with contextlib.suppress(OSError):
            remove(ws, backup)
