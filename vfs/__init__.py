"""dvfs from Python: versioned, chunked data you can read without checking it out.

The public API (``vfs.api``; each name has a docstring with an example)::

    import vfs
    repo = vfs.Repo(".")                    # or vfs.Repo.clone(url, dir), vfs.Repo.remote(url)
    repo.versions(), repo.show("v3"), repo.ls("v3", "data"), repo.walk("v3")
    repo.diff("v1", "v3"), repo.add(["data"]), repo.commit("msg", params={"lr": 3e-4})
    with vfs.open("data/train.csv", rev="v3", repo=".") as f: ...
    vfs.read_bytes(path, rev=...), vfs.read_text(path, rev=...)
    with vfs.track(message="train", params={"lr": 3e-4}) as run: ...   # vfs.track

The fsspec filesystem ``dvfs://`` is ``vfs.filesystem`` (extra ``dvfs[fsspec]``).

Every public name is declared once, in ``PUBLIC`` below: the stable API first, then the
library's lower layers, which the mount daemon uses (the daemon imports nothing else of
``vfs``) and which may change between releases. ``__all__`` and the loader come from that
table: each name is imported on first use (PEP 562), so that a command importing one
module of the package does not pay for all the others. The ``TYPE_CHECKING`` imports
repeat the table for type checkers; ``tests/test_layering.py`` checks that they agree.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the table again, for type checkers (``X as X`` re-exports X)
    # isort: off
    from vfs.api import (
        DvfsWarning as DvfsWarning,
        FileChange as FileChange,
        FileInfo as FileInfo,
        Repo as Repo,
        VersionInfo as VersionInfo,
        open as open,
        read_bytes as read_bytes,
        read_text as read_text,
    )
    from vfs.browse import version_yaml as version_yaml
    from vfs.codec import (
        ChunkRef as ChunkRef,
        Entry as Entry,
        Kind as Kind,
        Tree as Tree,
        Version as Version,
    )
    from vfs.errors import (
        DvfsError as DvfsError,
        FormatError as FormatError,
        MountError as MountError,
        NotAFile as NotAFile,
        NotARepository as NotARepository,
        ObjectCorrupt as ObjectCorrupt,
        ObjectMissing as ObjectMissing,
        PathNotFound as PathNotFound,
        RefConflict as RefConflict,
        RemoteError as RemoteError,
        RemoteUnreachable as RemoteUnreachable,
        RevisionNotFound as RevisionNotFound,
        StorageFull as StorageFull,
        UsageError as UsageError,
        error_kind as error_kind,
    )
    from vfs.history import History as History
    from vfs.ids import hash_bytes as hash_bytes
    from vfs.launch import (
        DaemonArgs as DaemonArgs,
        MountSource as MountSource,
        resolve_source as resolve_source,
    )
    from vfs.mounts import (
        MountRecord as MountRecord,
        check_fuse as check_fuse,
        check_mountpoint as check_mountpoint,
        identity as identity,
        is_mounted as is_mounted,
        private_dir as private_dir,
        remove_record as remove_record,
        runtime_dir as runtime_dir,
        write_record as write_record,
    )
    from vfs.objects import ObjectStore as ObjectStore, decode_payload as decode_payload
    from vfs.pipeline.record import version_pipeline as version_pipeline
    from vfs.remote.config import (
        Located as Located,
        RemoteRepo as RemoteRepo,
        RemoteSpec as RemoteSpec,
        add_remote as add_remote,
        connect as connect,
        default_remote as default_remote,
    )
    from vfs.remote.config import remotes as _configured_remotes
    from vfs.remote.transfer import FetchResult as FetchResult, fetch_locked as fetch_locked
    from vfs.repo import (
        Repository as Repository,
        parse_format as parse_format,
        preferred_branch as preferred_branch,
    )
    from vfs.track import Run as Run, track as track

    # isort: on
    configured_remotes = _configured_remotes

# name -> "module" or "module:attribute" (where the name there differs)
PUBLIC: dict[str, str] = {
    # the public API
    "DvfsError": "vfs.errors",
    "DvfsWarning": "vfs.api",
    "FileChange": "vfs.api",
    "FileInfo": "vfs.api",
    "NotAFile": "vfs.errors",
    "PathNotFound": "vfs.errors",
    "Repo": "vfs.api",
    "RevisionNotFound": "vfs.errors",
    "Run": "vfs.track",
    "VersionInfo": "vfs.api",
    "open": "vfs.api",
    "read_bytes": "vfs.api",
    "read_text": "vfs.api",
    "track": "vfs.track",
    # lower layers (the daemon's; they may change)
    "ChunkRef": "vfs.codec",
    "DaemonArgs": "vfs.launch",
    "Entry": "vfs.codec",
    "FetchResult": "vfs.remote.transfer",
    "FormatError": "vfs.errors",
    "History": "vfs.history",
    "Kind": "vfs.codec",
    "Located": "vfs.remote.config",
    "MountError": "vfs.errors",
    "MountRecord": "vfs.mounts",
    "MountSource": "vfs.launch",
    "NotARepository": "vfs.errors",
    "ObjectCorrupt": "vfs.errors",
    "ObjectMissing": "vfs.errors",
    "ObjectStore": "vfs.objects",
    "RefConflict": "vfs.errors",
    "RemoteError": "vfs.errors",
    "RemoteRepo": "vfs.remote.config",
    "RemoteSpec": "vfs.remote.config",
    "RemoteUnreachable": "vfs.errors",
    "Repository": "vfs.repo",
    "StorageFull": "vfs.errors",
    "Tree": "vfs.codec",
    "UsageError": "vfs.errors",
    "Version": "vfs.codec",
    "add_remote": "vfs.remote.config",
    "check_fuse": "vfs.mounts",
    "check_mountpoint": "vfs.mounts",
    "configured_remotes": "vfs.remote.config:remotes",
    "connect": "vfs.remote.config",
    "decode_payload": "vfs.objects",
    "default_remote": "vfs.remote.config",
    "error_kind": "vfs.errors",
    "fetch_locked": "vfs.remote.transfer",
    "hash_bytes": "vfs.ids",
    "identity": "vfs.mounts",
    "is_mounted": "vfs.mounts",
    "parse_format": "vfs.repo",
    "preferred_branch": "vfs.repo",
    "private_dir": "vfs.mounts",
    "remove_record": "vfs.mounts",
    "resolve_source": "vfs.launch",
    "runtime_dir": "vfs.mounts",
    "version_pipeline": "vfs.pipeline.record",
    "version_yaml": "vfs.browse",
    "write_record": "vfs.mounts",
}
__all__ = list(PUBLIC)


def __getattr__(name: str) -> Any:
    """Import a public name's module on first access."""
    try:
        module, _, attr = PUBLIC[name].partition(":")
    except KeyError:
        raise AttributeError(f"module 'vfs' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attr or name)
    globals()[name] = value
    return value
