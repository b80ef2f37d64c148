"""dvfs core library: content-addressed, chunked, versioned data; no FUSE, no trio.

The public names below are what the daemon and other programs use.
"""

from vfs.codec import ChunkRef, Entry, Kind, Tree, Version
from vfs.errors import DvfsError
from vfs.history import History
from vfs.objects import ObjectStore
from vfs.repo import Repository

__all__ = [
    "ChunkRef",
    "DvfsError",
    "Entry",
    "History",
    "Kind",
    "ObjectStore",
    "Repository",
    "Tree",
    "Version",
]
