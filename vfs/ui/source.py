"""What ``dvfs ui SOURCE`` shows: a repository, or a remote read without cloning it.

- A **repository** (a directory inside one; default ``.``): its versions, trees and
  file chunks come from its own store; the chunks a page needs that the store lacks
  (a clone's older versions) are downloaded from its remotes into it, as ``dvfs cat``
  downloads them (``vfs.ui.fetch``).
- A **remote**: a URL (``s3://bucket/prefix``, ``file:///path``) or a directory that
  holds a remote (its ``format`` record at the top, no ``.dvfs``). Its versions and
  trees (never file data) are fetched into a metadata repository of its own under
  ``$XDG_CACHE_HOME/dvfs/ui/<name>-<hash>/meta`` with the code of ``vfs.Repo.remote``
  (``vfs.remote.read.open_meta``, ``vfs.ops.sync.mirror_locked``: verified, decoded
  strictly, only what is new since the last time), its branches and tags mirrored as
  that repository's own; file chunks are read from the remote when a page needs them,
  one ranged GET each, verified (``vfs.remote.read.RemoteChunks``). The view follows
  the remote: the versions page, when its last look is older than ``--refresh``
  seconds (``REFRESH``), fetches what was pushed since (:class:`Refresher`). It is
  read-only whatever the flags: nothing here writes to a remote.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from vfs.backends import parse_url
from vfs.errors import (
    DvfsError,
    ObjectCorrupt,
    ObjectMissing,
    RemoteError,
    RemoteNotFound,
    UsageError,
)
from vfs.mount.launch import hold_mirror, mirror_dir
from vfs.ops.sync import mirror_locked
from vfs.quoting import quote_given
from vfs.remote.config import Meter, RemoteSpec, connect
from vfs.remote.layout import FORMAT_KEY
from vfs.remote.read import OtherSource, RemoteChunks, open_meta
from vfs.remote.reader import RemoteRepo
from vfs.repo.repository import DVFS_DIR, Repository
from vfs.ui.fetch import Fetcher
from vfs.ui.files import Getter, Need

JOBS = 8  # connections to a remote
REFRESH = 30.0  # seconds a remote's view is taken as current (``dvfs ui --refresh``)


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Refresher:
    """Brings a remote's view up to date with what was pushed since it last looked.

    :meth:`maybe` looks again when the last look is older than ``every`` seconds, one
    request at a time (a request that finds another one looking goes on with the view
    it has). What is new is fetched as at start (verified, decoded strictly, into the
    metadata repository, under its lock); a remote that cannot be reached, or no
    longer holds a repository, leaves the view as it was, with the reason in
    :attr:`error` until a look succeeds.
    """

    def __init__(
        self, meta: Repository, spec: RemoteSpec, meter: Meter, remote: RemoteRepo,
        chunks: RemoteChunks, every: float,
    ) -> None:  # fmt: skip
        self.meta, self.spec, self.meter, self.remote = meta, spec, meter, remote
        self.chunks, self.every = chunks, every
        self.as_of = _now()  # when the view last matched the remote
        self.error: str | None = None
        self._looked = time.monotonic()
        self._lock = threading.Lock()

    def maybe(self, every: float | None = None) -> bool:
        """Look again if the last look is older than ``every`` seconds (default: the
        server's ``--refresh``); True if this call looked and the view is current."""
        age = self.every if every is None else every
        if time.monotonic() - self._looked < age or not self._lock.acquire(False):
            return False
        try:
            # A remote gone (a directory moved away, a prefix deleted) lists no branches:
            # it must not pass for one whose branches were all deleted.
            if self.remote.read_format() is None:
                raise UsageError(f"{self.spec.url} holds no dvfs repository (no format record)")
            with self.meta.locked():
                got = mirror_locked(self.meta, self.spec, self.meter, JOBS)
            self.chunks.set_index(got.index)
            self.as_of, self.error = _now(), None
            return True
        except (DvfsError, OSError) as exc:
            self.error = str(exc)
            return False
        finally:
            self._looked = time.monotonic()
            self._lock.release()


@dataclass
class Source:
    """A repository to show, where its chunks come from, and the remote's URL if any."""

    repo: Repository
    get: Getter
    remote: str | None = None
    warnings: tuple[str, ...] = ()
    refresher: Refresher | None = None  # a remote's
    held: int | None = None  # a remote's mirror, locked shared (vfs.mount.launch.hold_mirror)
    fetcher: Fetcher | None = None  # a repository's: what its store lacks (vfs.ui.fetch)

    @property
    def need(self) -> Need | None:
        """What makes a file's data readable before a page reads it (a repository's)."""
        return self.fetcher.need_file if self.fetcher is not None else None

    @property
    def description(self) -> str:
        return self.remote if self.remote is not None else str(self.repo.root)


def is_remote_dir(where: Path) -> bool:
    """A directory holding a remote (its format record) rather than a repository."""
    return (where / FORMAT_KEY).is_file() and not (where / DVFS_DIR).exists()


def open_source(
    source: str, endpoint_url: str | None = None, cache_dir: Path | None = None,
    refresh: float | None = None,
) -> Source:  # fmt: skip
    """The repository at (or around) ``source``, or the remote it names (module doc).

    ``refresh`` (``REFRESH`` if None) is for a remote; given for a repository, which
    every page reads as it is then, it is refused rather than ignored."""
    if endpoint_url is not None and parse_url(source).path is not None:
        raise UsageError(
            f"--endpoint-url goes with an s3:// SOURCE, and {quote_given(source)} is a "
            "directory: leave it out"
        )
    if "://" not in source:
        where = Path(source)
        if not where.is_dir():
            raise UsageError(f"{source} is not a directory: give a repository or a remote")
        if not is_remote_dir(where):
            repo = Repository.find(where)
            if refresh is not None:
                raise UsageError(
                    f"--refresh goes with a remote SOURCE, and {quote_given(source)} is a "
                    "repository, which each page reads as it is then: leave it out"
                )
            fetcher = Fetcher(repo)
            return Source(repo, fetcher.get, fetcher=fetcher)
        source = os.path.abspath(source)  # a directory remote, as `dvfs remote add` keeps it
    spec = RemoteSpec("origin", source, endpoint_url)
    meter = connect(spec, JOBS)
    remote = RemoteRepo(meter, None)
    base = cache_dir or mirror_dir("ui", source)
    held = hold_mirror(base)  # for the server's life: `dvfs cache clean` leaves it alone
    try:
        try:
            meta = open_meta(base / "meta", spec, remote)
        except OtherSource:
            raise UsageError(f"{base} holds another remote's versions: remove it") from None
        with meta.locked():
            got = mirror_locked(meta, spec, meter, JOBS)
    except BaseException:
        os.close(held)
        raise
    chunks = RemoteChunks(lambda: remote)
    chunks.set_index(got.index)
    refresher = Refresher(
        meta, spec, meter, remote, chunks, REFRESH if refresh is None else refresh
    )
    warned = tuple(got.transfer.warnings)
    return Source(meta, remote_getter(chunks, source), source, warned, refresher, held)


def remote_getter(chunks: RemoteChunks, url: str) -> Getter:
    """``chunks.fetch``, where a chunk the remote's index does not list (the remote lost
    it, or a gc removed it since) is a RemoteNotFound naming the remote, as a lost pack
    is, and a damaged copy a RemoteError: not an ObjectMissing or ObjectCorrupt, whose
    "`dvfs pull` it" and "run `dvfs fsck`" say nothing true of a remote's view."""

    def get(oid: bytes) -> bytes:
        try:
            return chunks.fetch(oid)
        except ObjectMissing:
            raise RemoteNotFound(f"chunk {oid.hex()} is not listed in {url}") from None
        except ObjectCorrupt as exc:
            raise RemoteError(
                f"the copy of chunk {oid.hex()} in {url} is damaged ({exc.detail})"
            ) from None

    return get
