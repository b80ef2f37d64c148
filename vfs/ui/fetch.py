"""File data a page of a repository's dashboard needs that its store lacks, fetched.

A clone holds the data of what it checked out, not of older versions: ``dvfs cat``,
``dvfs metrics``, ``dvfs compare`` download what they read from the remotes
(``vfs.remote.ondemand``), and so does the dashboard, through :class:`Fetcher`:

- **From where.** The repository's remotes as a mount reads them
  (``vfs.remote.read.repository_chunks``): the default remote first, then each other
  remote whose index, as last read, lists a chunk the default lacks; one ranged GET
  per chunk, ``JOBS`` at once, each chunk verified against its id before anything
  else sees it.
- **How much.** What one page reads: a preview's head, a table up to
  ``vfs.ui.files.TABLE_MAX``, a download, a per-step history, the metrics files of a
  page of experiments. A page needing more than ``FETCH_MAX`` bytes it lacks is
  refused, naming the ``dvfs pull`` that gets them.
- **How long.** A page waits at most ``FETCH_WAIT`` seconds, then says the download
  goes on and to reload; a remote that failed is not asked again for ``DOWN_FOR``
  seconds (a page of 200 experiments does not wait out 200 timeouts), each page
  saying why meanwhile.
- **Where it goes.** Into the repository's store, as the CLI's downloads go, so that
  the next page, ``dvfs cat`` or a checkout reads it locally. The chunks arrive in
  memory (``held``, ``HELD_MAX`` bytes at most); they are written under the
  repository lock, taken without waiting and held only while at most
  ``STORE_BATCH`` bytes are appended and their pack is closed, compression done
  before. So a ``dvfs gc`` (under the lock throughout) or ``dvfs fsck`` (while it
  checks the store) never runs while the dashboard writes, and a CLI command waits
  for a moment at most. When the lock is taken (a commit, a gc under way), the page
  is answered from memory and the chunks are written after a later request, or when
  the server stops. Until they are stored they are read from memory. A version deleted
  (and collected) between the download and the write leaves unreachable chunks,
  which the next ``dvfs gc`` removes.

Errors name the file and its version and say what to do: no remote set (as before:
``dvfs pull`` it), the remote not answering (503; reload when it answers), the data
on no remote (push it from a repository that has it), too large (``dvfs pull``).
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_for

from vfs.errors import (
    DvfsError,
    LockBusy,
    ObjectCorrupt,
    ObjectMissing,
    RemoteError,
    RemoteNotFound,
    RemoteUnreachable,
    UsageError,
)
from vfs.model.codec import ChunkRef, Kind
from vfs.quoting import quote_name, shell_word
from vfs.remote.config import default_remote, get_remote
from vfs.remote.read import RemoteChunks, repository_chunks
from vfs.repo.repository import Repository
from vfs.store.compression import compress
from vfs.store.objects import ObjKind
from vfs.ui.files import FileRef

log = logging.getLogger(__name__)

JOBS = 8  # chunks downloaded at once
FETCH_MAX = 64 << 20  # bytes a page fetches at most (a table preview's TABLE_MAX)
FETCH_WAIT = 15.0  # seconds a page waits for its download; it goes on after
DOWN_FOR = 10.0  # seconds a remote that failed is not asked again
HELD_MAX = 128 << 20  # bytes of fetched chunks kept in memory until they are stored
STORE_BATCH = 8 << 20  # bytes stored per hold of the repository lock (compressed)


class Fetcher:
    """Chunks of a repository: from its store, else fetched (see the module doc).

    :meth:`get` is a ``vfs.ui.files.Getter``; :meth:`need` fetches what a page reads
    before it reads it. Every method may be called from several threads."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self._mu = threading.Lock()
        self._storing = threading.Lock()
        self._remote: RemoteChunks | None = None
        self._name = ""  # the default remote's name and URL, for messages
        self._held: OrderedDict[bytes, bytes] = OrderedDict()
        self._held_bytes = 0
        self._inflight: dict[bytes, Future[bytes]] = {}
        self._queue: queue.SimpleQueue[tuple[bytes, Future[bytes]]] = queue.SimpleQueue()
        self._workers = 0  # downloading threads started
        self._idle = 0  # and waiting for a download
        self._failed: dict[bytes | None, tuple[float, DvfsError]] = {}  # None: the remote

    # reading -------------------------------------------------------------------

    def _have(self, oid: bytes) -> bool:
        if self.repo.store.has(oid):
            return True
        with self._mu:
            return oid in self._held

    def get(self, oid: bytes) -> bytes:
        """The chunk's verified bytes: stored, held, or fetched now (for at most
        ``FETCH_WAIT`` seconds); ObjectMissing if there is no remote to ask."""
        with self._mu:  # (first: one being stored is read from memory until it is)
            data = self._held.get(oid)
        if data is not None:
            return data
        try:
            return self.repo.store.get(oid)
        except ObjectMissing:
            pass
        self._remotes(ObjectMissing(oid.hex()))
        self._check_failed(None, [oid])
        try:
            data = self._start(oid).result(timeout=FETCH_WAIT)
        except FutureTimeout:
            raise self._late(None) from None
        except DvfsError as exc:
            raise self._said(None, exc) from None
        self._settle_soon()
        return data

    def get_local(self, oid: bytes) -> bytes:
        """The chunk's verified bytes if stored or held; ObjectMissing, fetching
        nothing, if not."""
        with self._mu:
            data = self._held.get(oid)
        return data if data is not None else self.repo.store.get(oid)

    def need(self, what: str, chunks: Iterable[ChunkRef], pull: str) -> None:
        """Make ``chunks`` (those of file ``what``, ``data/x.csv of v1``) readable by
        :meth:`get`, fetching those the store lacks; ``pull`` is the command that gets
        them otherwise (``dvfs pull v1 data/x.csv``). Raises, naming ``what``, for the
        reasons of the module doc."""
        missing = {c.oid: c.size for c in chunks if not self._have(c.oid)}
        if not missing:
            return
        self._remotes(ObjectMissing(next(iter(missing)).hex(), what))
        total = sum(missing.values())
        if total > FETCH_MAX:
            raise UsageError(
                f"{what}: {total:,} bytes of its data are not in the local store, more than "
                f"the {FETCH_MAX >> 20} MiB a page downloads: `{pull}` downloads them"
            )
        self._check_failed(what, missing)
        pending = [self._start(oid) for oid in missing]
        _, late = wait_for(pending, timeout=FETCH_WAIT)
        self._settle_soon()
        if late:
            raise self._late(what)
        for f in pending:
            exc = f.exception()
            if isinstance(exc, DvfsError):
                raise self._said(what, exc) from None
            if exc is not None:
                raise exc

    def need_file(self, f: FileRef, upto: int | None = None) -> None:
        """:meth:`need` of file ``f``'s chunks: those holding its first ``upto`` bytes
        (None: all of it)."""
        if f.entry.kind != Kind.FILE:
            return
        wanted, at = [], 0
        for c in f.entry.chunks:
            if upto is not None and at >= upto:
                break
            wanted.append(c)
            at += c.size
        pull = f"dvfs pull {self.repo.history.revision(f.id)} {shell_word(f.path)}"
        self.need(_named(f), wanted, pull)

    def need_stored(self, f: FileRef) -> None:
        """:meth:`need_file` of all of ``f``, its chunks written into the store before
        this returns, for what reads the store itself (a row diff); LockBusy if another
        command holds the repository lock meanwhile."""
        self.need_file(f)
        if f.entry.kind != Kind.FILE:
            return
        self.settle(wait=True)
        if self.repo.store.missing(c.oid for c in f.entry.chunks):
            raise LockBusy(
                f"{_named(f)}: its data was downloaded, and another command holds the "
                "repository lock, so it is not stored yet: reload when that command has finished"
            )

    # fetching ------------------------------------------------------------------

    def _remotes(self, missing: ObjectMissing) -> RemoteChunks:
        """The repository's remotes (looked for again while none is set: one may be
        added while the server runs); ``missing`` if there is none."""
        with self._mu:
            if self._remote is not None:
                return self._remote
        remote = repository_chunks(self.repo, JOBS)
        name = default_remote(self.repo)
        if remote is None or name is None:
            raise missing
        url = get_remote(self.repo, name).url
        with self._mu:
            if self._remote is None:
                self._remote, self._name = remote, f"remote {name} ({quote_name(url)})"
            return self._remote

    def _check_failed(self, what: str | None, oids: Iterable[bytes]) -> None:
        """A failure again while it is recent (``DOWN_FOR``): the remote's, or that of
        a chunk of ``oids`` it did not hold."""
        now = time.monotonic()
        with self._mu:
            for key in (None, *oids):
                hit = self._failed.get(key)
                if hit is not None and now - hit[0] < DOWN_FOR:
                    raise self._said(what, hit[1])

    def _start(self, oid: bytes) -> Future[bytes]:
        """The download of ``oid``, queued unless under way."""
        with self._mu:
            f = self._inflight.get(oid)
            if f is not None:
                return f
            f = self._inflight[oid] = Future()
            if self._workers < JOBS and self._queue.qsize() >= self._idle:
                self._workers += 1
                threading.Thread(target=self._work, daemon=True).start()
        self._queue.put((oid, f))
        return f

    def _work(self) -> None:
        """A downloading thread (a daemon: a remote that hangs never holds up the
        server's stop); ``JOBS`` of them at most, started as downloads are queued."""
        while True:
            with self._mu:
                self._idle += 1
            oid, f = self._queue.get()
            with self._mu:
                self._idle -= 1
            self._fetch(oid, f)

    def _fetch(self, oid: bytes, f: Future[bytes]) -> None:
        """Download ``oid`` into ``held``; ``f`` tells the pages waiting for it."""
        remote = self._remote
        assert remote is not None
        try:
            with self._mu:
                down = self._failed.get(None)
            if down is not None and time.monotonic() - down[0] < DOWN_FOR:
                raise down[1]  # (queued before the remote failed: not asked again)
            data = remote.fetch(oid)
        except BaseException as exc:
            with self._mu:
                del self._inflight[oid]
                if isinstance(exc, DvfsError):
                    key = oid if isinstance(exc, (ObjectMissing, ObjectCorrupt)) else None
                    self._failed[key] = (time.monotonic(), exc)
                    while len(self._failed) > 1024:  # (the oldest first)
                        del self._failed[next(iter(self._failed))]
            f.set_exception(exc)
            return
        with self._mu:
            if oid not in self._held:
                self._held[oid] = data
                self._held_bytes += len(data)
            while self._held_bytes > HELD_MAX and len(self._held) > 1:
                _, old = self._held.popitem(last=False)  # (fetched again if asked for)
                self._held_bytes -= len(old)
            self._failed.pop(None, None)
            del self._inflight[oid]
        f.set_result(data)

    def _late(self, what: str | None) -> RemoteUnreachable:
        return RemoteUnreachable(
            f"{what + ': ' if what else ''}its data is being downloaded from {self._name} "
            f"and took more than {FETCH_WAIT:.0f} s; the download goes on: reload in a moment"
        )

    def _said(self, what: str | None, exc: DvfsError) -> DvfsError:
        """``exc`` of a download of the data of ``what`` (None: a file the caller
        names), as a page says it."""
        of = f"{what}: " if what else ""
        if isinstance(exc, ObjectCorrupt):
            return RemoteError(
                f"{of}the copy of its data on {self._name} is damaged ({exc.detail}): push it "
                "again from a repository that has it intact"
            )
        if isinstance(exc, ObjectMissing):
            return RemoteNotFound(
                f"{of}its data is neither in the local store nor on {self._name}: push it "
                "from a repository that has it"
            )
        if isinstance(exc, RemoteUnreachable):
            return RemoteUnreachable(
                f"{of}its data is not in the local store, and {self._name} did not answer "
                f"({exc}): reload when it answers"
            )
        return type(exc)(
            f"{of}its data is not in the local store, and {self._name} cannot give it "
            f"({exc}): reload once the remote is set right"
        )

    # storing -------------------------------------------------------------------

    def _settle_soon(self) -> None:
        """:meth:`settle` in a thread of its own, unless one is storing already: the page
        is answered meanwhile."""
        if self._held and not self._storing.locked():
            threading.Thread(target=self.settle, daemon=True).start()

    def settle(self, wait: bool = False) -> None:
        """Write the chunks held in memory into the store, ``STORE_BATCH`` bytes per
        hold of the repository lock, taken only if free (module doc); what cannot be
        written now stays held for the next time. ``wait``: for a write under way
        first (the server stops)."""
        if not self._storing.acquire(blocking=wait):
            return
        try:
            with self._mu:
                todo = list(self._held.items())
            batch: list[tuple[bytes, int, bytes | memoryview, int]] = []
            size = 0
            for oid, data in todo:
                method, payload = compress(data)
                batch.append((oid, int(method), payload, len(data)))
                size += len(payload)
                if size >= STORE_BATCH:
                    if not self._write(batch):
                        return
                    batch, size = [], 0
            if batch:
                self._write(batch)
        finally:
            self._storing.release()

    def _write(self, batch: list[tuple[bytes, int, bytes | memoryview, int]]) -> bool:
        """Store ``batch`` under the repository lock; False if it was not (the lock
        taken; the disk full, said in the server's log): it stays held."""
        store = self.repo.store
        try:
            with self.repo.locked(wait=0):
                try:
                    for oid, method, payload, raw_len in batch:
                        store.put_stored(oid, ObjKind.CHUNK, method, bytes(payload), raw_len)
                    store.flush()
                except BaseException:
                    store.discard()
                    raise
        except LockBusy:
            return False
        except (DvfsError, OSError) as exc:
            log.warning("downloaded data kept in memory, not stored: %s", exc)
            return False
        with self._mu:
            for oid, *_ in batch:
                data = self._held.pop(oid, None)
                if data is not None:
                    self._held_bytes -= len(data)
        return True

    def close(self) -> None:
        """Write what is held, once a write under way is done (the server stops);
        nothing waits for the downloads under way."""
        with contextlib.suppress(DvfsError, OSError):
            self.settle(wait=True)


def _named(f: FileRef) -> str:
    """File ``f`` as messages name it: ``data/x.csv of v1``."""
    return f"{quote_name(f.path)} of {f.version}"
