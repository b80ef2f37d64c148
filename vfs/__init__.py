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
    from vfs._os.beneath import Walker as Walker, listing as listing
    from vfs._os.beneath import open_kept as open_kept, remove_tree as remove_tree
    from vfs._os.beneath import ABSENT as _ABSENT_ERRNOS
    from vfs._os.beneath import READ as _READ_BENEATH
    from vfs._os.threads import Task as Task
    from vfs._os.direct_io import (
        open_direct as open_direct,
        read_range as read_range,
        read_range_view as read_range_view,
        reserve_blocks as reserve_blocks,
        set_direct as set_direct,
        write_at as write_at,
        write_new as write_new,
    )
    from vfs._os.mount_api import (
        fsconfig_create as fsconfig_create,
        fsconfig_string as fsconfig_string,
        fsmount as fsmount,
        fsopen as fsopen,
        move_mount as move_mount,
        open_tree_clone as open_tree_clone,
        umount2 as umount2,
    )
    from vfs._os.heap import adjoining as adjoining
    from vfs._os.malloc import chunk_buffers_reused as chunk_buffers_reused
    from vfs._os.page_cache import set_bdi_read_ahead as set_bdi_read_ahead
    from vfs._os.tmpfile import link_unnamed as link_unnamed, unnamed_file as unnamed_file
    from vfs.api import (
        Repo as Repo,
        open as open,
        read_bytes as read_bytes,
        read_text as read_text,
    )
    from vfs.api_types import (
        DvfsWarning as DvfsWarning,
        FileChange as FileChange,
        FileInfo as FileInfo,
        VersionInfo as VersionInfo,
    )
    from vfs.backends import preconnect as preconnect
    from vfs.ops.browse import version_yaml as version_yaml
    from vfs.model.codec import (
        ChunkRef as ChunkRef,
        Entry as Entry,
        Kind as Kind,
        PERM_BITS as PERM_BITS,
        Tree as Tree,
        decode_tree as decode_tree,
        dir_entry as dir_entry,
        encode_tree as encode_tree,
    )
    from vfs.model.version_codec import Version as Version, encode_version as encode_version
    from vfs.store.durable import (
        fsync_dir as fsync_dir,
        storage_error as storage_error,
        write_atomic as write_atomic,
        write_atomic_at as write_atomic_at,
    )
    from vfs.errors import (
        DvfsError as DvfsError,
        FileChanged as FileChanged,
        FileUnreadable as FileUnreadable,
        FormatError as FormatError,
        MountError as MountError,
        NotADirectory as NotADirectory,
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
    from vfs.repo.history import History as History
    from vfs.model.ids import hash_bytes as hash_bytes, hasher as hasher
    from vfs.store.reader import false_digest as false_digest
    from vfs.mount.launch import (
        DIGESTS_NAME as DIGESTS_NAME,
        DaemonArgs as DaemonArgs,
        MountSource as MountSource,
        resolve_source as resolve_source,
        work_root as work_root,
    )
    from vfs.store.lock import claim_for_life as claim_for_life
    from vfs.mount.mounts import (
        MountRecord as MountRecord,
        check_fuse as check_fuse,
        check_mountpoint as check_mountpoint,
        identity as identity,
        is_mounted as is_mounted,
        private_dir as private_dir,
        remove_record as remove_record,
        runtime_dir as runtime_dir,
        pipeline_file as pipeline_file,
        write_record as write_record,
    )
    from vfs.mount.work_dirs import (
        JOURNAL_FRAMED as JOURNAL_FRAMED,
        JournalRecords as JournalRecords,
        journal_frame as journal_frame,
        journal_damage as journal_damage,
        missing_state_message as missing_state_message,
        newer_format as newer_format,
        newer_format_message as newer_format_message,
        STATE_FORMAT as STATE_FORMAT,
        LAYERS_FORMAT as LAYERS_FORMAT,
        orphaned_changes as orphaned_changes,
        read_journal as read_journal,
        work_dir_name as work_dir_name,
    )
    from vfs.model.names import (
        MAX_DEPTH as MAX_DEPTH,
        MAX_NAME as MAX_NAME,
        VERSIONS_DIR as VERSIONS_DIR,
        any_reserved as any_reserved,
        is_reserved as is_reserved,
        is_reserved_at_root as is_reserved_at_root,
    )
    from vfs.store.compression import decode_payload as decode_payload
    from vfs.store.objects import ObjKind as ObjKind, ObjectStore as ObjectStore
    from vfs.store.packs import PackedObject as PackedObject
    from vfs.store.pins import release as _release_pins
    from vfs.store.pins import take as _take_pins
    from vfs.pipeline.record import version_pipeline as version_pipeline
    from vfs.pipeline.writing import refuse_snapshot as refuse_snapshot
    from vfs.progress_bar import human_size as human_size
    from vfs.quoting import escape_text as escape_text
    from vfs.quoting import quote_name as quote_name, shell_word as shell_word
    from vfs.repo.refs import check_ref_name as check_ref_name
    from vfs.remote.config import (
        RemoteSpec as RemoteSpec,
        add_remote as add_remote,
        connect as connect,
        default_remote as default_remote,
    )
    from vfs.remote.config import remotes as _configured_remotes
    from vfs.remote.read import (
        OtherSource as OtherSource,
        RemoteChunks as RemoteChunks,
        open_meta as open_meta,
        repository_chunks as repository_chunks,
    )
    from vfs.remote.reader import Located as Located, RemoteRepo as RemoteRepo
    from vfs.ops.sync import (
        FetchResult as FetchResult,
        fetch_locked as fetch_locked,
        push as push,
    )
    from vfs.repo.repository import (
        Repository as Repository,
        parse_format as parse_format,
        preferred_branch as preferred_branch,
    )
    from vfs.repo.audit import acting as _audit_acting
    from vfs.repo.record import record_version as record_version, tag_free as tag_free
    from vfs.repo.stage import Staged as Staged
    from vfs.tracking import Run as Run, track as track
    from vfs.worktree.ingest import Hasher as Hasher, Pending as Pending
    from vfs.worktree.pools import Workers as Workers
    from vfs.worktree.scan import Found as Found

    # isort: on
    ABSENT_ERRNOS = _ABSENT_ERRNOS
    READ_BENEATH = _READ_BENEATH
    release_pins = _release_pins
    take_pins = _take_pins
    configured_remotes = _configured_remotes
    audit_acting = _audit_acting

# name -> "module" or "module:attribute" (where the name there differs)
PUBLIC: dict[str, str] = {
    # the public API
    "DvfsError": "vfs.errors",
    "DvfsWarning": "vfs.api_types",
    "FileChange": "vfs.api_types",
    "FileInfo": "vfs.api_types",
    "NotADirectory": "vfs.errors",
    "NotAFile": "vfs.errors",
    "PathNotFound": "vfs.errors",
    "Repo": "vfs.api",
    "RevisionNotFound": "vfs.errors",
    "Run": "vfs.tracking",
    "VersionInfo": "vfs.api_types",
    "open": "vfs.api",
    "read_bytes": "vfs.api",
    "read_text": "vfs.api",
    "track": "vfs.tracking",
    # lower layers (the daemon's; they may change)
    "ABSENT_ERRNOS": "vfs._os.beneath:ABSENT",
    "ChunkRef": "vfs.model.codec",
    "DIGESTS_NAME": "vfs.mount.launch",
    "DaemonArgs": "vfs.mount.launch",
    "Entry": "vfs.model.codec",
    "FetchResult": "vfs.ops.sync",
    "FileChanged": "vfs.errors",
    "FileUnreadable": "vfs.errors",
    "FormatError": "vfs.errors",
    "Found": "vfs.worktree.scan",
    "Hasher": "vfs.worktree.ingest",
    "History": "vfs.repo.history",
    "Kind": "vfs.model.codec",
    "Located": "vfs.remote.reader",
    "MountError": "vfs.errors",
    "MountRecord": "vfs.mount.mounts",
    "MountSource": "vfs.mount.launch",
    "NotARepository": "vfs.errors",
    "ObjKind": "vfs.store.objects",
    "ObjectCorrupt": "vfs.errors",
    "ObjectMissing": "vfs.errors",
    "ObjectStore": "vfs.store.objects",
    "PackedObject": "vfs.store.packs",
    "OtherSource": "vfs.remote.read",
    "PERM_BITS": "vfs.model.codec",
    "Pending": "vfs.worktree.ingest",
    "READ_BENEATH": "vfs._os.beneath:READ",
    "RefConflict": "vfs.errors",
    "RemoteChunks": "vfs.remote.read",
    "RemoteError": "vfs.errors",
    "RemoteRepo": "vfs.remote.reader",
    "RemoteSpec": "vfs.remote.config",
    "RemoteUnreachable": "vfs.errors",
    "Repository": "vfs.repo.repository",
    "Staged": "vfs.repo.stage",
    "StorageFull": "vfs.errors",
    "Task": "vfs._os.threads",
    "Tree": "vfs.model.codec",
    "UsageError": "vfs.errors",
    "MAX_DEPTH": "vfs.model.names",
    "MAX_NAME": "vfs.model.names",
    "VERSIONS_DIR": "vfs.model.names",
    "Version": "vfs.model.version_codec",
    "Walker": "vfs._os.beneath",
    "Workers": "vfs.worktree.pools",
    "add_remote": "vfs.remote.config",
    "audit_acting": "vfs.repo.audit:acting",
    "any_reserved": "vfs.model.names",
    "adjoining": "vfs._os.heap",
    "check_fuse": "vfs.mount.mounts",
    "check_mountpoint": "vfs.mount.mounts",
    "check_ref_name": "vfs.repo.refs",
    "chunk_buffers_reused": "vfs._os.malloc",
    "claim_for_life": "vfs.store.lock",
    "configured_remotes": "vfs.remote.config:remotes",
    "connect": "vfs.remote.config",
    "decode_payload": "vfs.store.compression",
    "decode_tree": "vfs.model.codec",
    "default_remote": "vfs.remote.config",
    "dir_entry": "vfs.model.codec",
    "encode_tree": "vfs.model.codec",
    "encode_version": "vfs.model.version_codec",
    "error_kind": "vfs.errors",
    "fetch_locked": "vfs.ops.sync",
    "fsconfig_create": "vfs._os.mount_api",
    "fsconfig_string": "vfs._os.mount_api",
    "fsmount": "vfs._os.mount_api",
    "fsopen": "vfs._os.mount_api",
    "fsync_dir": "vfs.store.durable",
    "hash_bytes": "vfs.model.ids",
    "hasher": "vfs.model.ids",
    "false_digest": "vfs.store.reader",
    "human_size": "vfs.progress_bar",
    "identity": "vfs.mount.mounts",
    "is_mounted": "vfs.mount.mounts",
    "is_reserved": "vfs.model.names",
    "is_reserved_at_root": "vfs.model.names",
    "link_unnamed": "vfs._os.tmpfile",
    "listing": "vfs._os.beneath",
    "move_mount": "vfs._os.mount_api",
    "open_direct": "vfs._os.direct_io",
    "reserve_blocks": "vfs._os.direct_io",
    "open_kept": "vfs._os.beneath",
    "open_meta": "vfs.remote.read",
    "open_tree_clone": "vfs._os.mount_api",
    "parse_format": "vfs.repo.repository",
    "preconnect": "vfs.backends",
    "preferred_branch": "vfs.repo.repository",
    "private_dir": "vfs.mount.mounts",
    "push": "vfs.ops.sync",
    "escape_text": "vfs.quoting",
    "quote_name": "vfs.quoting",
    "shell_word": "vfs.quoting",
    "read_range": "vfs._os.direct_io",
    "read_range_view": "vfs._os.direct_io",
    "record_version": "vfs.repo.record",
    "release_pins": "vfs.store.pins:release",
    "remove_tree": "vfs._os.beneath",
    "repository_chunks": "vfs.remote.read",
    "remove_record": "vfs.mount.mounts",
    "resolve_source": "vfs.mount.launch",
    "runtime_dir": "vfs.mount.mounts",
    "set_bdi_read_ahead": "vfs._os.page_cache",
    "set_direct": "vfs._os.direct_io",
    "write_at": "vfs._os.direct_io",
    "write_new": "vfs._os.direct_io",
    "storage_error": "vfs.store.durable",
    "tag_free": "vfs.repo.record",
    "take_pins": "vfs.store.pins:take",
    "umount2": "vfs._os.mount_api",
    "unnamed_file": "vfs._os.tmpfile",
    "version_pipeline": "vfs.pipeline.record",
    "refuse_snapshot": "vfs.pipeline.writing",
    "pipeline_file": "vfs.mount.mounts",
    "version_yaml": "vfs.ops.browse",
    "work_root": "vfs.mount.launch",
    "write_atomic": "vfs.store.durable",
    "write_atomic_at": "vfs.store.durable",
    "write_record": "vfs.mount.mounts",
    "JOURNAL_FRAMED": "vfs.mount.work_dirs",
    "journal_frame": "vfs.mount.work_dirs",
    "JournalRecords": "vfs.mount.work_dirs",
    "journal_damage": "vfs.mount.work_dirs",
    "read_journal": "vfs.mount.work_dirs",
    "missing_state_message": "vfs.mount.work_dirs",
    "newer_format": "vfs.mount.work_dirs",
    "newer_format_message": "vfs.mount.work_dirs",
    "STATE_FORMAT": "vfs.mount.work_dirs",
    "LAYERS_FORMAT": "vfs.mount.work_dirs",
    "orphaned_changes": "vfs.mount.work_dirs",
    "work_dir_name": "vfs.mount.work_dirs",
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
