"""What ``dvfs ui SOURCE`` shows: a repository, or a remote read without cloning it.

- A **repository** (a directory inside one; default ``.``): its versions, trees and
  file chunks come from its own store.
- A **remote**: a URL (``s3://bucket/prefix``, ``file:///path``) or a directory that
  holds a remote (its ``format`` record at the top, no ``.dvfs``). Its versions and
  trees (never file data) are fetched into a metadata repository of its own under
  ``$XDG_CACHE_HOME/dvfs/ui/<name>-<hash>/meta`` with the code of ``vfs.Repo.remote``
  (``vfs.remote.read.open_meta``, ``vfs.ops.sync.mirror_locked``: verified, decoded
  strictly, only what is new since the last time), its branches and tags mirrored as
  that repository's own; file chunks are read from the remote when a page needs them,
  one ranged GET each, verified (``vfs.remote.read.RemoteChunks``). The view is the
  remote as it was when the server started. It is read-only whatever the flags:
  nothing here writes to a remote.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vfs.errors import UsageError
from vfs.mount.launch import MountSource
from vfs.mount.mounts import private_dir, user_cache_dir
from vfs.ops.sync import mirror_locked
from vfs.remote.config import RemoteSpec, connect
from vfs.remote.layout import FORMAT_KEY
from vfs.remote.read import OtherSource, RemoteChunks, open_meta
from vfs.remote.reader import RemoteRepo
from vfs.repo.repository import DVFS_DIR, Repository
from vfs.ui.files import Getter

JOBS = 8  # connections to a remote


@dataclass
class Source:
    """A repository to show, where its chunks come from, and the remote's URL if any."""

    repo: Repository
    get: Getter
    remote: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def description(self) -> str:
        return self.remote if self.remote is not None else str(self.repo.root)


def is_remote_dir(where: Path) -> bool:
    """A directory holding a remote (its format record) rather than a repository."""
    return (where / FORMAT_KEY).is_file() and not (where / DVFS_DIR).exists()


def open_source(
    source: str, endpoint_url: str | None = None, cache_dir: Path | None = None
) -> Source:
    """The repository at (or around) ``source``, or the remote it names (module doc)."""
    if "://" not in source:
        where = Path(source)
        if not where.is_dir():
            raise UsageError(f"{source} is not a directory: give a repository or a remote")
        if not is_remote_dir(where):
            repo = Repository.find(where)
            return Source(repo, repo.store.get)
        source = os.path.abspath(source)  # a directory remote, as `dvfs remote add` keeps it
    spec = RemoteSpec("origin", source, endpoint_url)
    meter = connect(spec, JOBS)
    remote = RemoteRepo(meter, None)
    base = cache_dir or user_cache_dir() / "ui" / MountSource("remote", source).cache_name()
    private_dir(base)
    try:
        meta = open_meta(base / "meta", spec, remote)
    except OtherSource:
        raise UsageError(f"{base} holds another remote's versions: remove it") from None
    with meta.locked():
        got = mirror_locked(meta, spec, meter, JOBS)
    chunks = RemoteChunks(lambda: remote)
    chunks.set_index(got.index)
    return Source(meta, chunks.fetch, source, tuple(got.transfer.warnings))
