"""One node of the working tree, and what versions record of it.

In memory the working tree is a tree of :class:`WNode`. A directory loads its
children from its base tree the first time it is looked into; a file keeps its base
entry (chunks, read lazily like a version's) until its first write copies it up into
``data/<nid>``. A node's number (``nid``) is its inode number, handed out by a
counter from ``inodes.UPPER_FIRST`` up and kept in ``state``, so a node recorded in
the journal keeps its number across remounts.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from vfs import PERM_BITS, Entry, Kind, Tree

PERM = PERM_BITS  # what versions record of a mode: no setuid, setgid or sticky bit


@dataclass(eq=False, slots=True)
class WNode:
    """One file, directory or symbolic link of the working tree.

    ``entry`` is the base entry the node came from (None for a node made through the
    mount). ``upper``: a file whose content is ``data/<nid>``. ``changed``: what a
    version records of it (permission bits, mtime) differs from ``entry`` (content
    changes make it ``upper`` instead). ``dirty``: a directory with a change at or
    below it. ``origin`` is the node's path in the base version, which is how
    renames are told apart from additions. ``parent`` and ``name`` are its first
    name; a file with hard links has its other names in ``links``. A FIFO, socket
    or device has kind FILE, its file type in ``special``, and is never upper.
    """

    nid: int
    kind: Kind
    mode: int
    mtime_ns: int
    size: int = 0
    entry: Entry | None = None
    origin: bytes | None = None
    upper: bool = False
    changed: bool = False
    target: bytes = b""
    parent: WNode | None = None
    name: bytes = b""
    kids: dict[bytes, WNode] | None = None  # a directory's children, once loaded
    pending: dict[bytes, WNode | None] = field(default_factory=dict)  # replayed, not loaded
    base: Tree | None = None  # a loaded directory's base tree
    dirty: bool = False
    recorded: bool = False  # an N record for it is in the journal
    lookups: int = 0  # the kernel's references
    opens: int = 0  # open file handles
    fd: int = -1  # data/<nid>, while open or while written
    uid: int = 0
    gid: int = 0
    atime_ns: int = 0
    ctime_ns: int = 0
    special: int = 0  # stat.S_IFIFO, S_IFSOCK, S_IFCHR or S_IFBLK (daemon.fs.attrs.SPECIAL)
    rdev: int = 0
    links: list[tuple[WNode, bytes]] | None = None  # its other (directory, name)s
    wrote: int = 0
    hashed: tuple[int, bytes] | None = None

    @property
    def nlink(self) -> int:
        """Its names (0 once unlinked; 1 for a directory: "unknown", as for versions'
        directories)."""
        return len(self.names())

    def names(self) -> list[tuple[WNode, bytes]]:
        """Every (directory, name) it has (none once unlinked)."""
        first = [] if self.parent is None else [(self.parent, self.name)]
        return first + list(self.links or ())

    @property
    def is_dir(self) -> bool:
        """True for a directory."""
        return self.kind == Kind.DIR

    @property
    def path(self) -> bytes:
        """The node's path below MNT (b"" for MNT itself)."""
        parts: list[bytes] = []
        node: WNode | None = self
        while node is not None and node.parent is not None:
            parts.append(node.name)
            node = node.parent
        return b"/".join(reversed(parts))

    @property
    def loaded(self) -> bool:
        """True once a directory's children are known."""
        return self.kids is not None

    def subtree(self) -> bytes | None:
        """The base tree a directory's children are loaded from (None: none)."""
        return self.entry.subtree if self.entry is not None and self.entry.subtree else None


def mode_bits(n: WNode) -> int:
    """st_mode for a node."""
    if n.kind == Kind.DIR:
        return stat.S_IFDIR | n.mode
    if n.kind == Kind.FILE:
        return (n.special or stat.S_IFREG) | n.mode
    return stat.S_IFLNK | 0o777


def join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def as_in(n: WNode) -> bool:
    """True if a node shows its base entry's mode and mtime (a directory made again
    from its base entry would show the entry's), with no other name."""
    return n.entry is not None and not n.links and (n.mode, n.mtime_ns) == attrs_of(n.entry)


def versioned(n: WNode) -> tuple[int, int]:
    """(mode, mtime) of a node as a version records them."""
    return (n.mode & PERM if n.kind != Kind.SYMLINK else 0o777), n.mtime_ns


def attrs_of(e: Entry) -> tuple[int, int]:
    """(mode, mtime) a base entry shows in the working tree."""
    return (e.mode & PERM if e.kind != Kind.SYMLINK else 0o777), e.mtime_ns
