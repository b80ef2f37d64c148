"""dvfs from Python: versioned, chunked data you can read without checking it out.

The public API (``vfs.api``; each name has a docstring with an example)::

    import vfs
    repo = vfs.Repo(".")                    # or vfs.Repo.clone(url, dir), vfs.Repo.remote(url)
    repo.versions(), repo.show("v3"), repo.ls("v3", "data"), repo.walk("v3")
    repo.diff("v1", "v3"), repo.add(["data"]), repo.commit("msg", params={"lr": 3e-4})
    with vfs.open("data/train.csv", rev="v3", repo=".") as f: ...
    vfs.read_bytes(path, rev=...), vfs.read_text(path, rev=...)
    with vfs.track(message="train", params={"lr": 3e-4}) as run: ...   # vfs.track

with its records ``VersionInfo``, ``FileInfo`` and ``FileChange``, and its errors:
``RevisionNotFound``, ``PathNotFound`` (a ``FileNotFoundError``), ``NotAFile`` (an
``IsADirectoryError``), all ``DvfsError`` subclasses, and the warnings category
``DvfsWarning``. The fsspec filesystem ``dvfs://`` is ``vfs.filesystem`` (extra
``dvfs[fsspec]``).

The other names are the library's lower layers, which the mount daemon uses; they
may change between releases. Every name is imported on first use (PEP 562), so that
a command importing one module of the package does not pay for all the others.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vfs.api import (
        DvfsWarning,
        FileChange,
        FileInfo,
        Repo,
        VersionInfo,
        open,
        read_bytes,
        read_text,
    )
    from vfs.browse import version_yaml
    from vfs.codec import ChunkRef, Entry, Kind, Tree, Version
    from vfs.errors import (
        DvfsError,
        FormatError,
        MountError,
        NotAFile,
        NotARepository,
        ObjectCorrupt,
        ObjectMissing,
        PathNotFound,
        RefConflict,
        RemoteError,
        RemoteUnreachable,
        RevisionNotFound,
        StorageFull,
        UsageError,
        error_kind,
    )
    from vfs.history import History
    from vfs.ids import hash_bytes
    from vfs.launch import DaemonArgs, MountSource, resolve_source
    from vfs.mounts import (
        MountRecord,
        check_fuse,
        check_mountpoint,
        identity,
        is_mounted,
        private_dir,
        remove_record,
        runtime_dir,
        write_record,
    )
    from vfs.objects import ObjectStore, decode_payload
    from vfs.pipeline.record import version_pipeline
    from vfs.remote.config import (
        Located,
        RemoteRepo,
        RemoteSpec,
        add_remote,
        connect,
        default_remote,
    )
    from vfs.remote.config import remotes as configured_remotes
    from vfs.remote.transfer import FetchResult, fetch_locked
    from vfs.repo import Repository, parse_format, preferred_branch
    from vfs.track import Run, track

_SOURCES: dict[str, tuple[str, str]] = {
    # the public API
    "DvfsWarning": ("vfs.api", "DvfsWarning"),
    "FileChange": ("vfs.api", "FileChange"),
    "FileInfo": ("vfs.api", "FileInfo"),
    "NotAFile": ("vfs.errors", "NotAFile"),
    "PathNotFound": ("vfs.errors", "PathNotFound"),
    "Repo": ("vfs.api", "Repo"),
    "VersionInfo": ("vfs.api", "VersionInfo"),
    "open": ("vfs.api", "open"),
    "read_bytes": ("vfs.api", "read_bytes"),
    "read_text": ("vfs.api", "read_text"),
    "track": ("vfs.track", "track"),
    "Run": ("vfs.track", "Run"),
    # lower layers (the daemon's)
    "ChunkRef": ("vfs.codec", "ChunkRef"),
    "DaemonArgs": ("vfs.launch", "DaemonArgs"),
    "DvfsError": ("vfs.errors", "DvfsError"),
    "Entry": ("vfs.codec", "Entry"),
    "FetchResult": ("vfs.remote.transfer", "FetchResult"),
    "FormatError": ("vfs.errors", "FormatError"),
    "History": ("vfs.history", "History"),
    "Kind": ("vfs.codec", "Kind"),
    "Located": ("vfs.remote.config", "Located"),
    "MountError": ("vfs.errors", "MountError"),
    "MountRecord": ("vfs.mounts", "MountRecord"),
    "MountSource": ("vfs.launch", "MountSource"),
    "NotARepository": ("vfs.errors", "NotARepository"),
    "ObjectCorrupt": ("vfs.errors", "ObjectCorrupt"),
    "ObjectMissing": ("vfs.errors", "ObjectMissing"),
    "ObjectStore": ("vfs.objects", "ObjectStore"),
    "RefConflict": ("vfs.errors", "RefConflict"),
    "RemoteError": ("vfs.errors", "RemoteError"),
    "RemoteRepo": ("vfs.remote.config", "RemoteRepo"),
    "RemoteSpec": ("vfs.remote.config", "RemoteSpec"),
    "RemoteUnreachable": ("vfs.errors", "RemoteUnreachable"),
    "Repository": ("vfs.repo", "Repository"),
    "RevisionNotFound": ("vfs.errors", "RevisionNotFound"),
    "StorageFull": ("vfs.errors", "StorageFull"),
    "Tree": ("vfs.codec", "Tree"),
    "UsageError": ("vfs.errors", "UsageError"),
    "Version": ("vfs.codec", "Version"),
    "add_remote": ("vfs.remote.config", "add_remote"),
    "check_fuse": ("vfs.mounts", "check_fuse"),
    "check_mountpoint": ("vfs.mounts", "check_mountpoint"),
    "configured_remotes": ("vfs.remote.config", "remotes"),
    "connect": ("vfs.remote.config", "connect"),
    "decode_payload": ("vfs.objects", "decode_payload"),
    "default_remote": ("vfs.remote.config", "default_remote"),
    "error_kind": ("vfs.errors", "error_kind"),
    "fetch_locked": ("vfs.remote.transfer", "fetch_locked"),
    "hash_bytes": ("vfs.ids", "hash_bytes"),
    "identity": ("vfs.mounts", "identity"),
    "is_mounted": ("vfs.mounts", "is_mounted"),
    "parse_format": ("vfs.repo", "parse_format"),
    "preferred_branch": ("vfs.repo", "preferred_branch"),
    "private_dir": ("vfs.mounts", "private_dir"),
    "remove_record": ("vfs.mounts", "remove_record"),
    "resolve_source": ("vfs.launch", "resolve_source"),
    "version_pipeline": ("vfs.pipeline.record", "version_pipeline"),
    "version_yaml": ("vfs.browse", "version_yaml"),
    "runtime_dir": ("vfs.mounts", "runtime_dir"),
    "write_record": ("vfs.mounts", "write_record"),
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access."""
    try:
        module, attr = _SOURCES[name]
    except KeyError:
        raise AttributeError(f"module 'vfs' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


__all__ = [  # the public API
    "DvfsError",
    "DvfsWarning",
    "FileChange",
    "FileInfo",
    "NotAFile",
    "PathNotFound",
    "Repo",
    "RevisionNotFound",
    "Run",
    "VersionInfo",
    "open",
    "read_bytes",
    "read_text",
    "track",
]
__all__ += [  # lower layers (the daemon's; they may change)
    "ChunkRef",
    "DaemonArgs",
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
    "RefConflict",
    "RemoteError",
    "RemoteRepo",
    "RemoteSpec",
    "RemoteUnreachable",
    "Repository",
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
    "error_kind",
    "fetch_locked",
    "hash_bytes",
    "identity",
    "is_mounted",
    "parse_format",
    "preferred_branch",
    "private_dir",
    "remove_record",
    "resolve_source",
    "runtime_dir",
    "version_pipeline",
    "version_yaml",
    "write_record",
]
