"""Reading a remote without cloning it: its metadata kept locally, its chunks fetched one by one.

Used by a mount of a remote URL (``daemon.source``), by a repository mount or a
``Repo`` whose store lacks some chunks (a ``clone --no-checkout``), and by
``vfs.Repo.remote`` (``vfs.api``): one implementation of what is fetched and how it
is checked.

- :func:`open_meta`: the local repository that holds a remote's versions and trees
  (never file data), made on first use with the remote's format record. They are
  fetched into it with the same code as ``dvfs fetch`` (``vfs.ops.sync.fetch_locked``):
  verified, decoded strictly, stored children first (``vfs.remote.receive``).
- :class:`RemoteChunks`: file chunks by id, one ranged GET each of exactly the
  chunk's stored bytes (``fetch``), or one ranged GET for a run of chunks that lie
  next to each other in a pack (``stream_run``, a sequential reader's read-ahead,
  which yields the chunks of each piece of the answer as it arrives);
  each chunk decompressed and checked against its id here, so nothing unverified
  leaves this module. The remote is connected on first use. Its index (object id ->
  pack, offset, stored length) is merged from its index segments on first use, and
  again when a chunk is not in it (versions pushed since) or the pack it names is
  gone (another clone's ``gc --remote`` merged or dropped it since: the chunk is read
  where it lies now); but not within
  ``REREAD_GAP`` seconds of a reading for a chunk missing that found the index as it
  was: a forged tree naming thousands of chunks the remote lacks made a mount list
  and decode the whole index again for each.
- :func:`repository_chunks`: a repository's remotes as one :class:`RemoteChunks`, as
  commands fetch (``vfs.remote.ondemand``): the default remote first, then, for a
  chunk it lacks or cannot give (a failure, or its copy damaged), each other remote
  whose index, as last read, lists it (``store prune --remote NAME`` may have dropped
  data only NAME holds).

Threading: ``RemoteChunks.fetch`` and ``stream_run`` block (network)
and may be called from several threads at once; the index is replaced whole under a
lock, never changed in place.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import threading
import time
from collections.abc import Callable, Collection, Generator, Sequence
from pathlib import Path
from typing import NamedTuple

from vfs.backends import same_location
from vfs.errors import ObjectCorrupt, ObjectMissing, RemoteError, RemoteNotFound, UsageError
from vfs.remote.config import RemoteSpec, add_remote, connect, default_remote, remotes
from vfs.remote.layout import pack_key
from vfs.remote.reader import Located, RemoteRepo, cached_remote_ids, mend_hint
from vfs.repo.repository import DVFS_DIR, Repository, parse_format
from vfs.store.compression import decode_payload
from vfs.store.packs import PackedObject

log = logging.getLogger(__name__)
GROUP_BYTES = 4 * 1024 * 1024  # stored bytes of a run received into one buffer, at most
REREAD_GAP = 2.0  # seconds after a reading of the index that found nothing new (_locate)


class OtherSource(UsageError):
    """A metadata repository already holds another remote's versions."""


def open_meta(path: Path, spec: RemoteSpec, remote: RemoteRepo) -> Repository:
    """The repository at ``path`` that mirrors ``spec``'s metadata, made on first use.

    A new one takes the remote's format record (chunking parameters) and records
    ``spec`` as its default remote. Two processes opening the same path at once
    both get it. UsageError if the remote holds no repository; OtherSource if
    ``path`` mirrors another URL.
    """
    if not (path / DVFS_DIR).is_dir():
        text = remote.read_format()
        if text is None:
            raise UsageError(f"{spec.url} holds no dvfs repository (no format record)")
        params = parse_format(text, f"{spec.url}/format")
        try:
            Repository.init(path, chunker=params)
        except (UsageError, OSError):
            if not (path / DVFS_DIR).is_dir():  # not a lost race: a real failure
                raise
    repo = Repository(path)
    known = remotes(repo).get(spec.name)
    if known is None and repo.history.head_id() is None and not repo.refs.tags():
        # made by a process that stopped before recording its remote, or just now (then
        # another process may record it meanwhile: checked below)
        with contextlib.suppress(UsageError):
            add_remote(repo, spec, make_default=True)
        known = remotes(repo).get(spec.name)
    if known is None or not same_location(known.url, spec.url):
        other = known.url if known is not None else "another source"
        raise OtherSource(f"{path} holds the versions of {other}")
    return repo


class RunPiece(NamedTuple):
    """A piece of the answer for a run (``RemoteChunks.stream_run``) and its chunks:
    each one's verified bytes or why it has none, with where in ``piece`` its bytes
    lie when they are the chunk (stored uncompressed), else -1."""

    piece: memoryview
    chunks: list[tuple[bytes | memoryview | ObjectCorrupt, int]]


class RemoteChunks:
    """Chunks of one remote, by id; with ``also``, a chunk this remote lacks or cannot
    give is fetched from the first other one whose ids (read on first need) list it.
    With ``follow=False``, the index given to :meth:`set_index` is never read again: a
    pack it names that is gone is lost (``dvfs fsck --remote`` checks the remote as
    that index says, and would download every segment again for each such pack)."""

    def __init__(
        self,
        opener: Callable[[], RemoteRepo],
        also: Sequence[tuple[Callable[[], Collection[bytes]], RemoteChunks]] = (),
        *,
        follow: bool = True,
    ) -> None:
        self._opener = opener
        self._follow = follow
        self._remote: RemoteRepo | None = None
        self._index: dict[bytes, Located] | None = None
        self._quiet_until = 0.0  # (time.monotonic() before which a miss is not read again)
        self._lock = threading.Lock()
        self._rereading = threading.Lock()  # (one reading of the index at a time)
        self._also = also
        self._listed: list[Collection[bytes]] | None = None

    def _open(self) -> RemoteRepo:
        """The remote, connected on first use (a repository mount may never need it)."""
        with self._lock:
            if self._remote is None:
                self._remote = self._opener()
            return self._remote

    def set_index(self, index: dict[bytes, Located]) -> None:
        """Use a freshly merged index (after a metadata refresh)."""
        with self._lock:
            self._index, self._quiet_until = index, 0.0

    def _locate(self, oid: bytes) -> Located:
        """Where the remote holds ``oid``: from the index in memory, else from the index
        read again, unless a reading for a missing chunk found nothing new less than
        ``REREAD_GAP`` seconds ago (readers missing chunks at once wait for one)."""
        with self._lock:
            index = self._index
        hit = index.get(oid) if index is not None else None
        if hit is None:
            with self._rereading:
                with self._lock:
                    index, quiet_until = self._index, self._quiet_until
                hit = index.get(oid) if index is not None else None
                if hit is None and (index is None or time.monotonic() >= quiet_until):
                    fresh = self._open().index()
                    same = index is not None and len(fresh) == len(index)
                    with self._lock:
                        self._index = fresh
                        self._quiet_until = time.monotonic() + REREAD_GAP if same else 0.0
                    hit = fresh.get(oid)
        if hit is None:
            raise ObjectMissing(
                oid.hex(),
                f"a file; it is not on {self._open().url} either",
                "push it there from a repository that has it",
            )
        return hit

    def fetch(self, oid: bytes) -> bytes:
        """The chunk's bytes: one ranged GET, decompressed and verified (ObjectCorrupt if
        not); from another remote (``also``) if this one lacks it, fails or holds it
        damaged."""
        try:
            return self._fetch_here(oid)
        except (ObjectMissing, ObjectCorrupt, RemoteError):
            other = self._other_for(oid)
            if other is None:
                raise
            log.debug("chunk %s: from %s", oid.hex(), other._open().url)
            return other.fetch(oid)

    def _other_for(self, oid: bytes) -> RemoteChunks | None:
        """The first remote of ``also`` whose ids list ``oid``, if any."""
        with self._lock:
            if self._listed is None:
                self._listed = [ids() for ids, _ in self._also]
            listed = self._listed
        for ids, (_, other) in zip(listed, self._also, strict=True):
            if oid in ids:
                return other
        return None

    def _moved(self, oid: bytes, gone: str) -> Located | None:
        """Where the remote holds ``oid`` now that pack ``gone``, where the index in
        memory places it, is not there (a remote gc merged or dropped it since the index
        was read; or it was lost, and another pack lists the object too): from the index
        read again, avoiding ``gone``, unless a reading less than ``REREAD_GAP``
        seconds ago found it no better (as ``_locate``); None if nowhere else. The index
        read again is kept only if it places ``oid`` elsewhere: a remote that is away
        (a directory unmounted, renamed) lists no segment, and its index read then, empty,
        would make every chunk missing once it is back."""
        if not self._follow:
            return None
        with self._rereading:
            with self._lock:
                index, quiet_until = self._index, self._quiet_until
            hit = index.get(oid) if index is not None else None
            if (hit is None or hit[0] == gone) and time.monotonic() >= quiet_until:
                fresh = self._open().index(avoid=(gone,))
                hit = fresh.get(oid)
                with self._lock:
                    if hit is None or hit[0] == gone:
                        self._quiet_until = time.monotonic() + REREAD_GAP
                    else:
                        self._index, self._quiet_until = fresh, 0.0
        return None if hit is None or hit[0] == gone else hit

    def _fetch_here(self, oid: bytes) -> bytes:
        """The chunk's bytes from this remote alone."""
        remote = self._open()
        pack_id, obj = self._locate(oid)
        try:
            payload = remote.backend.get(pack_key(pack_id), obj.offset, obj.stored_len)
        except RemoteNotFound:
            moved = self._moved(oid, pack_id)
            if moved is None:
                raise remote.lost_pack(pack_id) from None
            pack_id, obj = moved
            payload = remote.pack_bytes(pack_id, obj.offset, obj.stored_len)
        log.debug("ranged GET of pack %s: 1 chunks, %d bytes", pack_id, len(payload))
        log.debug("fetched chunk %s: %d bytes from pack %s", oid.hex(), len(payload), pack_id)
        try:
            return decode_payload(obj, payload)
        except ObjectCorrupt as exc:
            raise self._damaged(pack_id, exc) from None

    def _damaged(self, pack_id: str, exc: ObjectCorrupt) -> ObjectCorrupt:
        """``exc``, of a chunk read from pack ``pack_id``, saying where the damage lies and
        how it is mended: ``dvfs fsck`` checks a local store, not a remote's packs."""
        return ObjectCorrupt(
            exc.oid,
            exc.detail,
            advice=f"pack {pack_id[:12]} on {self._open().url} holds it damaged; "
            + mend_hint(pack_key(pack_id)),
        )

    def where(self, oid: bytes) -> Located | None:
        """Where the remote holds ``oid``, if the index in memory says (no I/O: any thread)."""
        index = self._index
        return index.get(oid) if index is not None else None

    def stream_run(
        self, pack_id: str, objs: Sequence[PackedObject]
    ) -> Generator[RunPiece, None, None]:
        """Chunks ``objs`` of pack ``pack_id``, in order, a piece at a time as they arrive,
        from one ranged GET from the first one's offset to the last one's end (sorted
        by offset, apart; gaps between them are read and dropped).

        The answer is received in pieces of up to ``GROUP_BYTES``, each a run of whole
        chunks (and the gaps between them) in one buffer: from S3 a page-aligned one,
        which the chunk cache writes as it is, with one write per piece. A chunk
        stored uncompressed is a view of its piece, so the chunks of a piece lie
        back to back in memory, and a read that spans two of them is served from
        that memory without joining them (``daemon.data.open_files``). The range is
        never held whole. Each chunk is decompressed and verified on its own once its
        piece is in: a damaged one is an ObjectCorrupt in its place, so one flipped
        byte costs that chunk only. A failed request raises once the pieces before
        the failure were given. If the pack is gone (a remote gc merged or dropped it
        since the index was read) and the index read again places the first chunk
        elsewhere, each chunk is fetched where it lies now, a piece each.
        """
        start = objs[0].offset
        groups: list[list[PackedObject]] = []
        at = start
        for obj in objs:
            if obj.offset < at:
                raise ValueError(f"chunks of pack {pack_id} out of order or overlapping")
            if not groups or obj.offset + obj.stored_len - groups[-1][0].offset > GROUP_BYTES:
                groups.append([])
            groups[-1].append(obj)
            at = obj.offset + obj.stored_len
        lengths = [
            (groups[k + 1][0].offset if k + 1 < len(groups) else at) - g[0].offset
            for k, g in enumerate(groups)
        ]
        log.debug("ranged GET of pack %s: %d chunks, %d bytes", pack_id, len(objs), at - start)
        parts = self._open().backend.get_parts(pack_key(pack_id), start, lengths)
        try:
            first = next(parts)
        except RemoteNotFound:
            parts.close()
            if self._moved(objs[0].oid, pack_id) is None:
                raise self._open().lost_pack(pack_id) from None
            yield from self._one_by_one(objs)
            return
        pieces = itertools.chain([first], parts)
        try:
            for group, piece in zip(groups, pieces, strict=True):
                view = memoryview(piece)
                base = group[0].offset
                chunks: list[tuple[bytes | memoryview | ObjectCorrupt, int]] = []
                for chunk in group:
                    where = chunk.offset - base
                    payload = view[where : where + chunk.stored_len]
                    log.debug(
                        "fetched chunk %s: %d bytes from pack %s",
                        chunk.oid.hex(),
                        len(payload),
                        pack_id,
                    )
                    try:
                        good: bytes | memoryview | ObjectCorrupt = decode_payload(chunk, payload)
                    except ObjectCorrupt as exc:
                        good = self._damaged(pack_id, exc)
                    chunks.append((good, where if good is payload else -1))
                yield RunPiece(view, chunks)
        finally:
            parts.close()

    def _one_by_one(self, objs: Sequence[PackedObject]) -> Generator[RunPiece, None, None]:
        """Chunks ``objs`` fetched one by one, each where the index places it, a piece each."""
        for obj in objs:
            try:
                data = self._fetch_here(obj.oid)
            except ObjectCorrupt as exc:
                yield RunPiece(memoryview(b""), [(exc, -1)])
                continue
            yield RunPiece(memoryview(data), [(data, 0)])


def repository_chunks(repo: Repository, jobs: int) -> RemoteChunks | None:
    """The chunks a repository's store lacks, from its remotes (see the module doc):
    its default remote, then each other one whose cached index lists a chunk the
    default lacks or cannot give; None if it has no default remote. Each is
    connected on first use."""
    name = default_remote(repo)
    if name is None:
        return None
    specs = remotes(repo)
    also = [
        (functools.partial(cached_remote_ids, repo, [n]), RemoteChunks(_connector(spec, jobs)))
        for n, spec in specs.items()
        if n != name
    ]
    return RemoteChunks(_connector(specs[name], jobs), also)


def _connector(spec: RemoteSpec, jobs: int) -> Callable[[], RemoteRepo]:
    """What connects to the remote ``spec`` when first called."""
    return lambda: RemoteRepo(connect(spec, jobs), None)
