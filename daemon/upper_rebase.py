"""Rebasing the upper layer of a kernel-overlay working tree at mount.

What ``daemon.upper``'s docstring says under **Rebasing**: before the overlay is
mounted, ``head`` becomes the lower layer, and upper entries that show just what it
shows are removed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat as statmod
from collections.abc import Callable
from pathlib import Path

from daemon.upper import Layers, Trees, stamp, walk
from vfs import Entry, Kind, fsync_dir

log = logging.getLogger(__name__)
_OVERLAY_XATTRS = (b"trusted.overlay.", b"user.overlay.")


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def rebase(layers: Layers, trees: Trees, root_of: Callable[[bytes | None], Entry | None]) -> None:
    """Make ``head`` the lower layer (before the overlay is mounted: see ``daemon.upper``)."""
    if layers.head == layers.base:
        return
    base, head = root_of(layers.base), root_of(layers.head)
    made = 0
    for d in walk(layers.upper, trees, base, head):
        if d.head is None:
            continue
        # (a name already whited out, over a file of the old lower layer or by a rebase
        # cut short, stays hidden by that whiteout over the new one)
        kept = d.visible() | d.whiteouts
        gone = [e.name for e in d.head.entries if e.name not in kept]
        if d.opaque or not gone:
            continue
        dir_path = layers.upper / os.fsdecode(d.rel) if d.rel else layers.upper
        for name in gone:  # deleted after the snapshot: the new lower layer holds it
            os.mknod(dir_path / os.fsdecode(name), statmod.S_IFCHR | 0o000, 0)
            made += 1
        fsync_dir(dir_path)
    layers.set_base(layers.head, layers.head)
    log.info("the working tree was rebased onto its last snapshot (%d whiteouts)", made)
    drop_shown(layers, trees, head)


def drop_shown(layers: Layers, trees: Trees, base: Entry | None) -> None:
    """Remove upper entries that show just what the lower layer ``base`` shows.

    A file must be recorded and unchanged, with the version's mtime and permission bits
    (a symbolic link: its target and mtime),
    the daemon's owner, one link and no extended attributes of its own; a whiteout must
    hide nothing; a directory must be left empty, not opaque, over a lower directory,
    with the daemon's owner and mode 0755. Then the overlay shows the same through the
    lower layer, and the upper layer stays the size of what changed.
    """
    uid, gid = os.getuid(), os.getgid()
    recorded = dict(layers.recorded)
    dirs = list(walk(layers.upper, trees, base, base))
    emptied: set[bytes] = set()
    dropped = 0
    for d in reversed(dirs):
        dir_path = layers.upper / os.fsdecode(d.rel) if d.rel else layers.upper
        lower = {e.name: e for e in d.lower.entries} if d.lower is not None else {}
        left = 0
        for name in d.whiteouts:
            if name not in lower:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(dir_path / os.fsdecode(name))
                    dropped += 1
            else:
                left += 1
        for name, st in d.names.items():
            p = _join(d.rel, name)
            e = lower.get(name)
            path = dir_path / os.fsdecode(name)
            same = e is not None and st.st_uid == uid and st.st_gid == gid
            if same and e is not None and statmod.S_ISREG(st.st_mode) and e.kind == Kind.FILE:
                same = (
                    recorded.get(p) == stamp(st)
                    and st.st_nlink == 1
                    and statmod.S_IMODE(st.st_mode) == e.mode
                    and st.st_mtime_ns == e.mtime_ns
                    and not _own_xattrs(path)
                )
            elif same and e is not None and statmod.S_ISLNK(st.st_mode) and e.kind == Kind.SYMLINK:
                same = (
                    recorded.get(p) == stamp(st)
                    and st.st_nlink == 1
                    and st.st_mtime_ns == e.mtime_ns
                    and os.fsencode(os.readlink(path)) == e.target
                    and not _own_xattrs(path)
                )
            elif same and e is not None and statmod.S_ISDIR(st.st_mode) and e.kind == Kind.DIR:
                same = p in emptied and statmod.S_IMODE(st.st_mode) == 0o755
            else:
                same = False
            if not same:
                left += 1
                continue
            with contextlib.suppress(OSError):
                if statmod.S_ISDIR(st.st_mode):
                    os.rmdir(path)
                else:
                    os.unlink(path)
                    recorded.pop(p, None)
                dropped += 1
                continue
            left += 1
        if left == 0 and not d.opaque:
            emptied.add(d.rel)
    if dropped:
        fsync_dir(layers.upper)
        layers.set_recorded(recorded)
        log.info("%d upper entries showed the lower layer: removed", dropped)


def _own_xattrs(path: Path) -> bool:
    """True if a file has extended attributes beside overlayfs's own."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return True
    return any(not os.fsencode(n).startswith(_OVERLAY_XATTRS) for n in names)
