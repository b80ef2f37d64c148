"""Inode numbers and the table of inodes the kernel knows.

Number space (64-bit, as FUSE has it)::

    1                  MNT, the mounted branch (FUSE's root inode)
    2 .. 15            fixed virtual nodes: .versions, its tags/branches/ids/meta,
                       latest, and .versions/.control (writable mounts)
    16 .. 2**40 - 1    nodes of the writable working tree (daemon.overlay): numbers
                       handed out by a counter kept in its work directory's state, so
                       a node keeps its number across remounts
    2**40 .. 2**63 - 1 nodes of versions, derived from a key (below) by BLAKE3

Keys of version nodes (bytes; the first byte says what follows)::

    b"d" + tree id + virtual path                   a directory
    b"f" + digest + mode, size, mtime + path        a file
    b"l" + mode, mtime + len(target) + target + path  a symbolic link
    b"r" + virtual path                             a directory of tag or branch names

A key holds what the node is (ids, attributes) and where it is (the virtual path
below MNT), so a number always means the same content, and is the same in every
mount: the kernel may cache attributes and pages without limit, and a file left
unchanged by a new head keeps its number in MNT. The path is there because a
directory may have only one place (the kernel refuses a second alias of a
directory inode), and because equal files at two places sharing a number read as
hard links: ``du v1 v2`` would count them once. Two keys landing on one number
(odds about n**2 / 2**64) are told apart by probing the next number; only then does
a number depend on the order of lookups.

The kernel counts references to each inode (lookups, readdirplus entries) and
returns them with ``forget``; a node leaves the table when its count reaches zero.
Fixed nodes are pinned and never leave.

Threading: the table is used from the trio thread only, never from worker threads,
so it needs no lock; a handler never awaits between reading a node and counting it.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from vfs import Entry, Kind, hash_bytes

ROOT = 1
VERSIONS = 2
TAGS = 3
BRANCHES = 4
IDS = 5
LATEST = 6
CONTROL = 7  # .versions/.control -> the daemon's control socket (writable mounts)
META = 8  # .versions/meta: each version's metadata as YAML (daemon.data.meta)
UPPER_FIRST = 16
HASHED_BASE = 1 << 40
HASHED_SPAN = (1 << 63) - HASHED_BASE
_ATTRS = struct.Struct("<IQq")


class NodeKind(enum.Enum):
    """What a node is, which decides how it is listed and read."""

    ROOT = "root"  # MNT: the head of the mounted branch, plus the hidden .versions
    VERSIONS = "versions"  # .versions
    REFS = "refs"  # tags/, branches/ and directories of names with "/" in them
    IDS = "ids"  # .versions/ids
    META = "meta"  # .versions/meta
    LATEST = "latest"  # .versions/latest -> vN
    DIR = "dir"  # a directory of a version (its root, too)
    FILE = "file"
    SYMLINK = "symlink"


@dataclass(eq=False, slots=True)
class Node:
    """One inode: what it is, where it was first seen, and the kernel's references.

    ``entry`` is the tree entry of a version node (a version's root gets one made
    from the version record); ``path`` is the virtual path below MNT, used in keys
    of directories and in log messages.
    """

    key: bytes
    kind: NodeKind
    path: bytes
    entry: Entry | None = None
    ino: int = 0
    lookups: int = 0
    pinned: bool = False

    @property
    def is_dir(self) -> bool:
        """True for every kind of directory."""
        return self.kind not in (NodeKind.FILE, NodeKind.SYMLINK, NodeKind.LATEST)


def child_path(parent: bytes, name: bytes) -> bytes:
    """The virtual path of ``name`` in the directory at ``parent``."""
    return parent + b"/" + name if parent else name


def entry_node(parent_path: bytes, e: Entry) -> Node:
    """A (not yet counted) node for a tree entry, with its key."""
    path = child_path(parent_path, e.name)
    if e.kind == Kind.DIR:
        return Node(b"d" + e.subtree + path, NodeKind.DIR, path, e)
    if e.kind == Kind.FILE:
        key = b"f" + e.digest + _ATTRS.pack(e.mode, e.size, e.mtime_ns) + path
        return Node(key, NodeKind.FILE, path, e)
    key = b"l" + _ATTRS.pack(e.mode, len(e.target), e.mtime_ns) + e.target + path
    return Node(key, NodeKind.SYMLINK, path, e)


def refs_node(path: bytes) -> Node:
    """A directory of tag or branch names below ``path`` (``.versions/tags/release``)."""
    return Node(b"r" + path, NodeKind.REFS, path)


def number_of(key: bytes) -> int:
    """The inode number a key derives (before probing for a collision)."""
    return HASHED_BASE + int.from_bytes(hash_bytes(key)[:8], "little") % HASHED_SPAN


class InodeTable:
    """The nodes the kernel holds references to, by number and by key."""

    def __init__(self) -> None:
        self._nodes: dict[int, Node] = {}
        self._by_key: dict[bytes, int] = {}

    def pin(self, ino: int, node: Node) -> Node:
        """Add a fixed node under a fixed number; it is never forgotten."""
        node.ino = ino
        node.pinned = True
        self._nodes[ino] = node
        self._by_key[node.key] = ino
        return node

    def get(self, ino: int) -> Node | None:
        """The node numbered ``ino``, if the kernel may still hold it."""
        return self._nodes.get(ino)

    def remember(self, node: Node) -> Node:
        """Count one kernel reference to ``node``'s key; return the node in the table.

        A node already known under the same key is the one counted and returned, so
        its number does not change while the kernel holds it.
        """
        ino = self._by_key.get(node.key)
        if ino is None:
            ino = number_of(node.key)
            while ino in self._nodes:  # a collision: probe (see the module docstring)
                ino = HASHED_BASE + (ino - HASHED_BASE + 1) % HASHED_SPAN
            node.ino = ino
            self._nodes[ino] = node
            self._by_key[node.key] = ino
        known = self._nodes[ino]
        known.lookups += 1
        return known

    def forget(self, ino: int, count: int) -> None:
        """Drop ``count`` kernel references; forget the node when none is left."""
        node = self._nodes.get(ino)
        if node is None or node.pinned:
            return
        node.lookups -= count
        if node.lookups <= 0:
            del self._nodes[ino]
            del self._by_key[node.key]

    def __len__(self) -> int:
        return len(self._nodes)
