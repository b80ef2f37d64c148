"""The writable working tree of a mount: a copy-on-write overlay over one version.

MNT shows a *base* version (the branch head when the working tree was clean) plus
the changes made through the mount. The changes live in a *work directory* on local
disk, one per source and branch, so that they survive a daemon crash or a reboot and
are picked up by the next mount. It is the daemon user's alone (0700, its files 0600;
``vfs.mount.mounts.private_dir``)::

    lock            flock held by the daemon serving this working tree
    state           msgpack: format, base version id, journal generation, next node id
    journal.<gen>   msgpack records appended as the namespace changes, each append one
                    frame with its length and CRC-32 (below)
    data/<nid>      the content of a file copied up or created through the mount
    trash.<gen>     the data/ a snapshot emptied, being removed by a thread

The work directory and its ``data/`` are held open from the start (``O_NOFOLLOW``) and
every operation there is made relative to those descriptors, so that a link swapped
in for either later leads no write elsewhere.

In memory the working tree is a tree of :class:`WNode`. A directory loads its
children from its base tree the first time it is looked into; a file keeps its base
entry (chunks, read lazily like a version's) until its first write copies it up into
``data/<nid>``. A node's number (``nid``) is its inode number, handed out by a
counter from ``inodes.UPPER_FIRST`` up and kept in ``state``, so a node recorded in
the journal keeps its number across remounts.

The journal's record format, and why replay and a torn tail are safe, are in
:mod:`daemon.overlay.journal`.

Nothing here blocks on anything but the local disk, nor awaits: the FUSE layer
(``daemon.fs.worktree``) loads base trees and copies files up, then calls in here.

The overlay in modules, each building on the one before:

- :mod:`daemon.overlay.node`: :class:`WNode`, one node, and what versions record of it.
- :mod:`daemon.overlay.journal`: the journal format, appends, and what replay keeps.
- :mod:`daemon.overlay.compaction`: rewriting a long journal as fewer records.
- :mod:`daemon.overlay.workdir`: the work directory's name and lock.
- :mod:`daemon.overlay.spares`: empty files made ahead for new files.
- :mod:`daemon.overlay.state`: opening the work directory, replay, loading directories.
- :mod:`daemon.overlay.changes`: namespace and attribute changes, recorded.
- :mod:`daemon.overlay.copyup`: new files and copy-up of base files.
- :mod:`daemon.overlay.rebase`: snapshots mark, rebase and follow the branch.
- :mod:`daemon.overlay.status`: pending changes (``dvfs status``).
- :mod:`daemon.overlay.tree`: :class:`Overlay`, all of the above as one object.
"""

from daemon.overlay.compaction import COMPACT_ABOVE
from daemon.overlay.node import WNode, mode_bits
from daemon.overlay.tree import Overlay
from daemon.overlay.workdir import OverlayError, lock_work
from vfs import work_dir_name

__all__ = [
    "COMPACT_ABOVE",
    "Overlay",
    "OverlayError",
    "WNode",
    "lock_work",
    "mode_bits",
    "work_dir_name",
]
