"""dvfs core library: content-addressed, chunked, versioned data; no FUSE, no trio.

The public names below are what the daemon and other programs use.
"""

from vfs.codec import ChunkRef, Entry, Kind, Tree, Version
from vfs.errors import (
    DvfsError,
    FormatError,
    MountError,
    NotARepository,
    ObjectCorrupt,
    ObjectMissing,
    RemoteError,
    RemoteUnreachable,
    RevisionNotFound,
    StorageFull,
    UsageError,
)
from vfs.history import History
from vfs.ids import hash_bytes
from vfs.launch import DaemonArgs, MountSource, resolve_source
from vfs.mounts import (
    MountRecord,
    check_fuse,
    check_mountpoint,
    is_mounted,
    remove_record,
    write_record,
)
from vfs.objects import ObjectStore, decode_payload
from vfs.remotes import RemoteSpec, add_remote, connect, default_remote
from vfs.remotes import remotes as configured_remotes
from vfs.repo import Repository, parse_format
from vfs.sync import FetchResult, Located, RemoteRepo, fetch_locked

__all__ = [
    "ChunkRef",
    "DaemonArgs",
    "DvfsError",
    "Entry",
    "FetchResult",
    "FormatError",
    "History",
    "Kind",
    "Located",
    "MountError",
    "MountRecord",
    "MountSource",
    "NotARepository",
    "ObjectCorrupt",
    "ObjectMissing",
    "ObjectStore",
    "RemoteError",
    "RemoteRepo",
    "RemoteSpec",
    "RemoteUnreachable",
    "Repository",
    "RevisionNotFound",
    "StorageFull",
    "Tree",
    "UsageError",
    "Version",
    "add_remote",
    "check_fuse",
    "check_mountpoint",
    "configured_remotes",
    "connect",
    "decode_payload",
    "default_remote",
    "fetch_locked",
    "hash_bytes",
    "is_mounted",
    "parse_format",
    "remove_record",
    "resolve_source",
    "write_record",
]
