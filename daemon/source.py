"""What a mount serves: a repository on this machine, or a remote alone.

Both give the same three things: ``history`` (versions and trees, read from a local
object store), ``catalog()`` (the names under ``.versions``, built afresh on every
call) and where file chunks come from (``local``, then ``remote``).

- A **repository** mount reads everything from the repository's own store. Chunks
  missing there (a ``clone --no-checkout``, a ``fetch`` without ``pull``) come from
  its default remote, if it has one, and are cached like a URL mount's.
- A **URL** mount keeps a repository of its own in ``<cache dir>/meta`` into which
  the remote's versions and trees (never file data) are fetched with the same code
  as ``dvfs fetch``: verified, decoded strictly, stored children first. Chunks are
  then read from the remote one ranged GET each (``vfs.remote.read``).

Threading: ``catalog()`` blocks (disk, network) and runs in a worker thread; it is
never called twice at once (the refresh loop is the only caller after start-up).
"""

from __future__ import annotations

import abc
import os
from pathlib import Path

from daemon.fs.catalog import Catalog, build
from vfs import (
    Entry,
    FetchResult,
    History,
    MountError,
    ObjectStore,
    OtherSource,
    RemoteChunks,
    RemoteRepo,
    RemoteSpec,
    Repository,
    UsageError,
    Workers,
    connect,
    fetch_locked,
    open_meta,
    preferred_branch,
    push,
    quote_name,
    release_pins,
    repository_chunks,
    take_pins,
)

ORIGIN = "origin"


class Source(abc.ABC):
    """A repository or a remote, ready to be mounted."""

    description: str
    branch: str
    repo: Repository
    history: History
    local: ObjectStore | None
    remote: RemoteChunks | None

    @abc.abstractmethod
    def catalog(self) -> Catalog:
        """The names of versions as they are now (blocking)."""

    def moved(self) -> str | None:
        """What happened to the source, if it is no longer where the mount found it
        (blocking); None while it is there (and always for a remote)."""
        return None

    def root_entry(self, version: bytes | None) -> Entry | None:
        """An entry for a version's root tree, as the working tree's root (blocking)."""
        if version is None:
            return None
        v = self.history.version(version)
        return v.root_entry()


class RepositorySource(Source):
    """A repository directory; chunks from its store, else from its remotes (the
    default first: ``vfs.remote.read.repository_chunks``)."""

    def __init__(self, root: Path, branch: str | None, jobs: int) -> None:
        self.repo = Repository(root)
        self.description = str(root)
        self.history = self.repo.history
        self.local = self.repo.store
        self.branch = branch or self.history.head().branch
        self._pinned: Path | None = None
        self._tips: tuple[bytes, ...] | None = None
        if branch is not None and self.repo.refs.get(f"refs/heads/{branch}") is None:
            have = ", ".join(sorted(self.repo.refs.branches())) or "none yet"
            raise MountError(f"{root} has no branch {branch} (branches: {have})")
        self.remote = repository_chunks(self.repo, jobs)
        self._found = _identity(self.repo.dir)

    def moved(self) -> str | None:
        """The repository is named by its path, which the daemon goes on using: renamed
        or removed while mounted, its ``.dvfs`` is no longer there (or is another's)."""
        if _identity(self.repo.dir) == self._found:
            return None
        return f"the repository {quote_name(self.description)} was moved or removed while mounted"

    def catalog(self) -> Catalog:
        refs = self.repo.refs
        head = refs.get(f"refs/heads/{self.branch}")
        tags, branches = refs.tags(), refs.branches()
        self._pin(head, tags, branches)
        return build(self.history, self.branch, head, tags, branches)

    def _pin(self, head: bytes | None, tags: dict[str, bytes], branches: dict[str, bytes]) -> None:
        """Pin the versions shown (``vfs.store.pins``): ``dvfs gc`` keeps them while we run,
        even if their branch or tag is deleted meanwhile."""
        tips = tuple(sorted({*tags.values(), *branches.values(), *([head] if head else [])}))
        if tips == self._tips:
            return
        old, self._pinned, self._tips = self._pinned, take_pins(self.repo.dir, tips), tips
        if old is not None:
            release_pins(old)


def _identity(path: Path) -> tuple[int, int] | None:
    """The device and inode of ``path``; None if it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class RemoteSource(Source):
    """A remote URL alone, with its metadata kept in ``<cache dir>/meta``."""

    def __init__(
        self, url: str, cache_dir: Path, branch: str | None, endpoint_url: str | None, jobs: int
    ) -> None:
        self.spec = RemoteSpec(ORIGIN, url, endpoint_url)
        self.meter = connect(self.spec, jobs)
        self.jobs = jobs
        self.description = url
        remote = RemoteRepo(self.meter, None)
        self.repo = self._open_meta(cache_dir / "meta", remote)
        self.history = self.repo.history
        self.local = None
        self.chunks = RemoteChunks(lambda: remote)
        self.remote = self.chunks
        self.wanted = branch
        self.branch = branch or ""
        self._first = True

    def _open_meta(self, path: Path, remote: RemoteRepo) -> Repository:
        """The cache's metadata repository, made on first use from the remote's format."""
        try:
            return open_meta(path, self.spec, remote)
        except OtherSource:
            raise MountError(
                f"the cache directory {path.parent} holds another source's data: "
                "pass another --cache-dir"
            ) from None
        except UsageError as exc:
            raise MountError(str(exc)) from None

    def _fetch(self) -> FetchResult:
        with self.repo.locked():
            return fetch_locked(self.repo, self.spec, self.meter, self.jobs)

    def catalog(self) -> Catalog:
        got = self._fetch()
        self.chunks.set_index(got.index)
        if self._first:
            self._first = False
            self.branch = self._choose_branch(got.heads)
        return build(self.history, self.branch, got.heads.get(self.branch), got.tags, got.heads)

    def remote_head(self, branch: str) -> bytes | None:
        """Where ``branch`` is on the remote now (blocking)."""
        return RemoteRepo(self.meter, None).ref_with_etag("heads", branch)[0]

    def publish(self, branch: str, oid: bytes, expected: bytes | None, tag: str | None) -> None:
        """Push version ``oid`` (stored in the metadata repository) as ``branch``.

        The remote's branch moves from ``expected`` by a conditional write; if it
        moved meanwhile, UsageError, and the remote's branch is left as it was.
        """
        refs = self.repo.refs
        refs.update(f"refs/heads/{branch}", oid, refs.get(f"refs/heads/{branch}"))
        if tag is not None:
            refs.update(f"refs/tags/{tag}", oid, refs.get(f"refs/tags/{tag}"))
        try:
            with Workers() as w:
                push(self.repo, self.spec, [branch], w, tags=tag is not None, jobs=self.jobs)
        except UsageError as exc:
            raise UsageError(
                f"the snapshot was not published ({exc}); the working tree is kept: run "
                "`dvfs snapshot MNT -m MSG --branch NEW` to save it on a new branch"
            ) from None

    def _choose_branch(self, heads: dict[str, bytes]) -> str:
        """The branch asked for, else ``main``, else the first; MountError if none fits."""
        if self.wanted is not None:
            if self.wanted not in heads:
                have = ", ".join(sorted(heads)) or "none yet"
                raise MountError(f"{self.spec.url} has no branch {self.wanted} (branches: {have})")
            return self.wanted
        if not heads:
            raise MountError(f"{self.spec.url} has no branches yet: nothing to mount")
        return preferred_branch(heads)


def open_source(
    kind: str,
    location: str,
    cache_dir: Path,
    branch: str | None,
    endpoint_url: str | None,
    jobs: int,
) -> Source:
    """Open what ``dvfs mount`` was given (see ``vfs.mount.launch.MountSource``)."""
    if kind == "repository":
        return RepositorySource(Path(location), branch, jobs)
    return RemoteSource(location, cache_dir, branch, endpoint_url, jobs)
