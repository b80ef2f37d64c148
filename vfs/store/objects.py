"""The local object store: objects packed into ``.dvfs/objects/pack-<id>.pack``.

Objects are not stored one file each: creating and writing a small file cost
0.1 to 0.6 ms on the ext4 volumes dvfs was measured on (mostly inode and block
allocation), so 20,000 small files spent up to 12 s on that alone; appending the
same objects to a few packs costs a few hundred milliseconds. Objects are appended
to a pack (format in ``vfs.store.packs``) that is written
under a temporary name and, once it reaches LOCAL_PACK_SIZE or the writer flushes,
closed with its header, renamed to its id (the BLAKE3 of that header, see
``vfs.store.packs``) and given an index file. A crash
therefore never leaves a half pack under a real name, and a pack whose index is
missing (crash between the two renames) gets its index rebuilt from its header.

The id of an object is BLAKE3 of its uncompressed bytes; the kind is a field, so
identical bytes are stored once whatever they are used as. Payloads are zstd
compressed (level 1) when that saves at least 1/32. Payloads over 64 KiB are first
probed: eight samples of up to 4 KiB (at most an eighth of the payload in all)
spread over the payload are compressed (a few microseconds), and if they do not
shrink by 1/64 the payload is stored as it is.
Random data (media, already compressed files) is common in datasets, and compressing
it only to throw the result away was a sixth of the CPU time of adding a 1 GiB random
file. A payload whose redundancy is only long-range (a 64 KiB random block repeated)
is stored uncompressed. Level 1 rather than 3: on the benchmark's CSV files it was a
quarter faster and compressed as well (0.38 of the size against 0.39).
Every read is verified against the id.

Each finished pack is fsynced on a thread of its own as soon as it is finished
(``vfs.store.pack_files.Durability``); callers call :meth:`ObjectStore.sync` before
anything that names the objects becomes durable (the staging index, a ref).

Memory: storing objects needs only to know which ids exist: the index files are kept
as read, plus a set of their ids (about 100 bytes per object). Reading many objects
merges the indexes into one dict, about 300 bytes per object (a 1 TiB store of 1 MiB
chunks: about 300 MB).

Writes to the open pack are gathered in the blocks of a ``vfs._os.direct_io.DirectAppender``:
one system call per 2 MiB block instead of one per object (20,000
small objects would cost 20,000 writes).

Size: this module is one class, :class:`ObjectStore` (its pack table, index lookups,
reads and writes share one lock and one table of packs), so it stays whole past the
usual 500 lines; the pack files and compression are in the modules beside it.

Threading: every method may be called from several threads. Compression happens
outside the lock; appending to the open pack happens under it (a pack that fills up is
finished on a thread of its own meanwhile, :meth:`ObjectStore._finish`), and
:meth:`ObjectStore.put_many` appends a whole batch under one acquisition.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import TYPE_CHECKING

from vfs._os import reflink
from vfs._os.direct_io import (
    ALIGN,
    WRITE_DEPTH,
    open_direct,
    read_range,
    read_range_into,
    settled,
)
from vfs._os.page_cache import cached, read_cached
from vfs._os.reflink import BLOCK
from vfs.errors import FormatError, ObjectCorrupt, ObjectMissing, StorageFull
from vfs.model.ids import hash_bytes
from vfs.store.compression import Compression, compress, compress_many, decode_payload
from vfs.store.durable import TMP_PREFIX, storage_error, write_atomic
from vfs.store.pack_files import (
    AWAY,
    LINKED_PACK,
    READ_FLAGS,
    Descriptors,
    Durability,
    PackWriter,
    read_index_file,
    read_pack_header,
)
from vfs.store.packs import (
    TARGET_PACK_SIZE,
    PackedObject,
    check_index,
    decode_index,
    encode_index,
    index_ids,
    search_index,
)

if TYPE_CHECKING:  # imported where first used: commands like `status` need neither
    import mmap

    from vfs._os.threads import Threads, Waitable


READ_DIRECT = 256 * 1024  # payloads this large are read past the page cache when not in it
# Packs of objects added here are closed at 64 MiB, not the remotes' 16 MiB (a push
# builds its own): closing one waits for its last blocks, and every object
# store waits meanwhile. Adding 1 GiB: median 1.5 s with 16 MiB packs, 1.25 s with
# 64 MiB. Downloaded objects keep TARGET_PACK_SIZE: an interrupted pull keeps every
# pack it closed, so it resumes in 16 MiB steps.
LOCAL_PACK_SIZE = 64 * 1024 * 1024
# Lookups answered by bisecting index files before they are merged into one dict.
MERGE_AFTER = 64
# Ids asked whether stored (``has``, a put) answered by bisecting the index files not
# merged before the set of all their ids is built: a commit asks about two or three
# trees and its version, and a set of the 21,000 ids of a repository of 20,000 files
# cost it 3-7 ms of CPU where bisecting its 22 index files costs tens of microseconds.
PROBE_IDS = 64
# Ids found stored in index files not merged, remembered to tell which packs a sync
# must make durable (``_relied_on``); past this many, every candidate pack is synced.
RELIED_IDS = 1024
# read_many: bytes of a pack read at most with one pread, and gaps read through.
READ_RUN = 2 << 20
RUN_GAP = 64 << 10
_PEEK = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # the store's, listed


class ObjKind(enum.IntEnum):
    """What an object is used as; informational, never part of the id."""

    CHUNK = 0
    TREE = 1
    VERSION = 2


class ObjectStore:
    """The packed objects of one repository (or one cache directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.RLock()
        self._entries: dict[bytes, tuple[int, PackedObject]] = {}
        self._packs: list[Path] = []
        self._known: set[str] = set()
        self._unreadable: list[Path] = []  # packs neither whose index nor header reads
        self._fds = Descriptors()  # (slot, direct) -> descriptor; -1: O_DIRECT refused
        self._writer: PackWriter | None = None
        self._writing: Threads | None = None  # writes the open pack's blocks
        self._closing: list[tuple[int, Path]] = []  # finished packs, to make durable
        # Packs full and sealed, being finished on the ``_finisher`` thread while the
        # next one fills (see :meth:`_finish`): slot -> the future of that work.
        self._finishing: dict[int, Waitable[None]] = {}
        self._finisher: Threads | None = None
        self._failed: list[tuple[PackWriter, BaseException]] = []  # finishes that failed
        self._durable = Durability(root)
        self._loaded = False
        self._scanned_at = -1  # mtime of the directory when it was last listed
        # Index files not merged into _entries yet: (slot, file bytes, object count).
        self._raw: list[tuple[int, bytes, int]] = []
        # The ids in those index files, for has() without decoding the records.
        self._ids: set[bytes] | None = None
        self._merged = False
        self._lookups = 0
        self._probes = 0  # ids asked about by bisection (see PROBE_IDS)
        self._dead: set[int] = set()  # slots of packs found deleted (see _vanished)
        # Objects found stored, which this process may name without storing them: the
        # slots of their packs, and the ids found in index files not merged (None: too
        # many to remember). A sync makes those packs durable (``_relied_on``).
        self._relied: set[int] = set()
        self._relied_ids: set[bytes] | None = set()

    @staticmethod
    def create(root: Path) -> ObjectStore:
        """Make the directory for a new, empty store."""
        root.mkdir(parents=True, exist_ok=True)
        return ObjectStore(root)

    # loading -------------------------------------------------------------------

    def _add_pack(self, path: Path, objs: list[PackedObject]) -> None:
        slot = len(self._packs)
        self._packs.append(path)
        self._known.add(path.name)
        for o in objs:
            self._entries.setdefault(o.oid, (slot, o))

    def refresh(self) -> None:
        """Take note of the packs other processes wrote or deleted since this store last
        looked (one ``stat`` of the folder when nothing changed): for a reader that lives
        long (``dvfs ui``), so that what a ``dvfs gc`` deleted meanwhile is no longer
        found, as a command run now would not find it."""
        self._scan()

    def _scan(self) -> None:
        """Take note of every pack not seen yet (rebuilding missing indexes), and forget
        the objects of packs deleted since (by ``dvfs gc``: see :meth:`_forget`).

        Until enough lookups have been made to pay for it, index files are kept as
        they are and searched by bisection; then they are merged into one dict.
        """
        with self._lock:
            self._loaded = True
            try:
                # A new pack is a new name: unchanged directory, nothing new to list.
                # A stamp younger than a second is not trusted (coarse timestamps:
                # a rename in the same tick would leave it unchanged).
                stamp = os.stat(self.root).st_mtime_ns
                if stamp == self._scanned_at:
                    return
                self._scanned_at = stamp if stamp < time.time_ns() - 1_000_000_000 else -1
                names = sorted(os.listdir(self.root))
            except (FileNotFoundError, NotADirectoryError):  # (fsck names it: open_folder)
                return
            listed = set(names)
            gone = {
                s for s, path in enumerate(self._packs)
                if s not in self._dead and path.name.endswith(".pack") and path.name not in listed
                and not os.path.lexists(path)  # (finished by another thread since the listing)
            }  # fmt: skip
            if gone:
                self._forget(gone)
            for name in names:
                if not (name.startswith("pack-") and name.endswith(".pack")):
                    continue
                if name in self._known:
                    continue
                pack = self.root / name
                idx = pack.with_suffix(".idx")
                if not _regular(pack):  # no pack is read through a link, or from a FIFO
                    self._known.add(pack.name)  # or device: damaged, named by fsck
                    self._unreadable.append(pack)
                    continue
                try:
                    data = read_index_file(idx)
                    count = check_index(data, str(idx))
                except (FileNotFoundError, FormatError):
                    try:
                        objs = self._rebuild_index(pack)
                    except FormatError:
                        # Neither its index nor its header reads (cut short by a power
                        # loss, not a regular file): nothing in it can be found, so it
                        # holds nothing here; fsck names it, and --repair puts it aside.
                        self._known.add(pack.name)
                        self._unreadable.append(pack)
                        continue
                    self._add_pack(pack, objs)
                    continue
                if self._merged:
                    self._add_pack(pack, decode_index(data, str(idx)))
                else:
                    self._raw.append((len(self._packs), data, count))
                    if self._ids is not None:
                        self._ids.update(index_ids(data, count))
                    self._packs.append(pack)
                    self._known.add(pack.name)

    def _merge(self) -> None:
        """Decode every raw index into the dict (worth it for many lookups)."""
        with self._lock:
            if not self._loaded:
                self._scan()
            for slot, data, _ in self._raw:
                for o in decode_index(data, str(self._packs[slot])):
                    self._entries.setdefault(o.oid, (slot, o))
            self._raw = []
            self._ids = None
            self._merged = True

    def _rebuild_index(self, pack: Path) -> list[PackedObject]:
        fd = _open_pack(pack)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise FormatError(f"{pack} is not a regular file: remove it, then run `dvfs fsck`")
            objs = read_pack_header(fd, st.st_size, str(pack))
        finally:
            os.close(fd)
        # The index file only saves reading the header next time: a store this user may
        # not write (a read-only filesystem, another user's) or a full disk goes on
        # without it.
        with contextlib.suppress(OSError, StorageFull):
            write_atomic(pack.with_suffix(".idx"), encode_index(objs), sync=False)
        return objs

    def _lookup(self, oid: bytes) -> tuple[int, PackedObject] | None:
        hit = self._entries.get(oid)
        if hit is not None or self._merged:
            return hit
        self._lookups += 1
        if self._lookups > MERGE_AFTER:
            self._merge()
            return self._entries.get(oid)
        for slot, data, count in self._raw:
            obj = search_index(data, count, oid)
            if obj is not None:
                return slot, obj
        return None

    def _find(self, oid: bytes) -> tuple[int, PackedObject] | None:
        if not self._loaded:
            self._scan()
        hit = self._lookup(oid)
        if hit is None:  # another process may have written packs since we looked
            self._scan()
            hit = self._lookup(oid)
        if hit is not None:
            self._relied.add(hit[0])
        return hit

    def _rely(self, oid: bytes) -> None:
        """Note that ``oid`` was found stored (see ``_relied``)."""
        hit = self._entries.get(oid)
        if hit is not None:
            self._relied.add(hit[0])
            return
        ids = self._relied_ids
        if ids is not None:
            ids.add(oid)
            if len(ids) > RELIED_IDS:
                self._relied_ids = None

    def _relied_on(self, names: list[str]) -> set[str] | None:
        """Which of the packs ``names`` hold objects this process found stored since the
        last sync (None: too many ids to tell); runs in :meth:`sync`."""
        with self._lock:
            slots, ids = self._relied, self._relied_ids
            self._relied, self._relied_ids = set(), set()
            if ids is None:
                return None
            wanted = set(names)
            left = []
            for oid in ids:  # (merged since they were found, or stored by this process)
                hit = self._entries.get(oid)
                if hit is None:
                    left.append(oid)
                else:
                    slots.add(hit[0])
            out = {self._packs[s].name for s in slots if s < len(self._packs)} & wanted
            for slot, data, count in self._raw:
                name = self._packs[slot].name
                if (
                    name in wanted
                    and name not in out
                    and any(search_index(data, count, oid) is not None for oid in left)
                ):
                    out.add(name)
            return out

    # writing --------------------------------------------------------------------

    def _raw_ids(self) -> set[bytes] | None:
        """The ids in index files not merged yet (None once everything is merged).

        Storing objects needs to know only whether an id is present: a set of the ids
        costs a tenth of the time and a third of the memory of decoding every record.
        """
        with self._lock:
            if not self._loaded:
                self._scan()
            if self._merged:
                return None
            if self._ids is None:
                self._ids = set()
                for _, data, count in self._raw:
                    self._ids.update(index_ids(data, count))
            return self._ids

    def _raw_has(self, count: int) -> Callable[[bytes], bool]:
        """A test of whether an id is in the index files not merged yet, for ``count``
        ids to be tested: bisecting each file while few ids have been asked about
        (``PROBE_IDS``), then in the set of their ids (:meth:`_raw_ids`, built once)."""
        with self._lock:
            if not self._loaded:
                self._scan()
            if self._merged:
                return _never
            if self._ids is None and self._probes + count <= PROBE_IDS:
                self._probes += count
                return self._bisect_raw
        ids = self._raw_ids()
        return _never if ids is None else ids.__contains__

    def _bisect_raw(self, oid: bytes) -> bool:
        """Whether ``oid`` is in an index file not merged, found by bisection."""
        return any(search_index(data, count, oid) is not None for _, data, count in self._raw)

    def has(self, oid: bytes) -> bool:
        """True if the object is stored (not verified); noted as relied on if so."""
        if oid in self._entries or self._raw_has(1)(oid):
            self._rely(oid)
            return True
        return False

    def missing(self, oids: Iterable[bytes]) -> list[bytes]:
        """The ids of ``oids`` that are not stored. Unlike :meth:`has` (for which a
        miss costs only a second copy), packs written since this store last looked
        (by another process, such as ``add``'s helper) are looked for first."""
        out = [oid for oid in oids if not self.has(oid)]
        if not out:
            return out
        self._scan()  # once: each miss of _find would list a directory changed this second
        still = []
        for oid in out:
            if self._lookup(oid) is None:
                still.append(oid)
            else:
                self._rely(oid)
        return still

    def put(
        self, kind: ObjKind, data: bytes | memoryview, oid: bytes | None = None
    ) -> tuple[bytes, int]:
        """Store ``data`` unless present; return its id and the bytes written (0 if present).

        ``oid`` may be passed when the caller already hashed ``data``.
        """
        if oid is None:
            oid = hash_bytes(data)
        if self.has(oid):
            return oid, 0
        method, payload = compress(data)
        return oid, self._append(
            [(oid, int(kind), int(method), payload, len(data))], LOCAL_PACK_SIZE
        )

    def put_lent(
        self, kind: ObjKind, data: memoryview, oid: bytes, phase: int
    ) -> tuple[int, Waitable[None] | None]:
        """:meth:`put_lent_many` of one payload ``data`` (already hashed to ``oid``),
        starting ``phase`` bytes into a page of its page-aligned buffer: the bytes
        written, and the future of the write of its lent pages (None if none were)."""
        written, futs = self.put_lent_many(kind, data, [(oid, 0, len(data))], phase)
        return written, futs[0] if futs else None

    def put_lent_many(
        self,
        kind: ObjKind,
        block: memoryview,
        pieces: Sequence[tuple[bytes, int, int]],
        phase: int = 0,
    ) -> tuple[int, list[Waitable[None]]]:
        """Store the payloads ``block[start:end]`` of ``pieces`` (id, start, end; already
        hashed, in order) unless present, writing the whole pages of raw ones from the
        caller's memory. ``block`` starts ``phase`` bytes into a page of a page-aligned
        buffer.

        Returns the bytes written and the futures of the writes of lent pages: the
        caller leaves the buffer unchanged until they are done (an error of a write is
        raised by a later store, ``flush`` or ``sync``; one raised here is raised once
        the writes started by this call are done). A payload that compresses is stored
        compressed, as by :meth:`put`. Raw payloads that lie back to back go to the
        pack as one stretch, under one acquisition of the lock: a large file's region
        of about four chunks, stored a chunk at a time, cost the lock, a lent write and
        a wake-up of a pack writer per chunk, and the disk got the chunk alone whenever
        the writer found the queue empty.
        """
        written = 0
        futs: list[Waitable[None]] = []
        run: list[tuple[bytes, int, int]] = []  # raw payloads back to back, to lend as one
        try:
            for oid, start, end in pieces:
                if self.has(oid):
                    continue
                method, payload = compress(block[start:end])
                if method == Compression.NONE:
                    if run and run[-1][2] != start:
                        written += self._lend(kind, block, phase, run, futs)
                    run.append((oid, start, end))
                    continue
                written += self._lend(kind, block, phase, run, futs)
                item = (oid, int(kind), int(method), payload, end - start)
                written += self._append([item], LOCAL_PACK_SIZE)  # (one held at a time)
            written += self._lend(kind, block, phase, run, futs)
        except BaseException:
            settled(futs)  # (the buffer must not be reused while they read it)
            raise
        return written, futs

    def _lend(
        self,
        kind: ObjKind,
        block: memoryview,
        phase: int,
        run: list[tuple[bytes, int, int]],
        futs: list[Waitable[None]],
    ) -> int:
        """Append the raw payloads of ``run`` (id, start, end; back to back in ``block``)
        to the open pack, lent as one stretch, or as several around those stored
        meanwhile (or twice in it); empty ``run``; the bytes written. The futures of
        the writes are added to ``futs``."""
        if not run:
            return 0
        written = 0
        stretch: list[tuple[bytes, int, int]] = []

        def lend() -> None:
            nonlocal written
            if not stretch:
                return
            first, end = stretch[0][1], stretch[-1][2]
            w = self._writer or self._new_writer()
            objs, fut = w.lend(
                int(kind), block[first:end], (phase + first) % ALIGN,
                [(oid, s - first, e - s) for oid, s, e in stretch],
            )  # fmt: skip
            for obj in objs:
                self._entries[obj.oid] = (w.slot, obj)
            if fut is not None:
                futs.append(fut)
            written += end - first
            stretch.clear()
            if w.offset >= LOCAL_PACK_SIZE:
                self._finish(wait=False)

        with self._changing():
            ids = self._raw_ids() or set()
            taken: set[bytes] = set()
            for oid, start, end in run:
                if oid in self._entries or oid in ids or oid in taken:
                    self._rely(oid)
                    lend()  # (the bytes after it are not next to those before)
                    continue
                stretch.append((oid, start, end))
                taken.add(oid)
            lend()
        run.clear()
        return written

    def put_many(self, items: Iterable[tuple[bytes, ObjKind, bytes | memoryview]]) -> int:
        """Store several (id, kind, data) at once; return the bytes written.

        Compression happens outside the lock, the whole batch in one call into zstd
        (``compression.compress_many``), and the appends under one acquisition of
        the lock, which is what makes staging thousands of small files cheap.
        ``data`` is not referenced after the call returns (the caller may reuse its
        buffer).
        """
        ids = self._raw_ids() or set()
        new = []
        for item in items:
            if item[0] not in self._entries and item[0] not in ids:
                new.append(item)
            else:
                self._rely(item[0])
        encoded = compress_many([data for _, _, data in new])
        todo = [
            (oid, int(kind), int(method), payload, len(data))
            for (oid, kind, data), (method, payload) in zip(new, encoded, strict=True)
        ]
        return self._append(todo, LOCAL_PACK_SIZE)

    def put_stored(self, oid: bytes, kind: int, method: int, payload: bytes, raw_len: int) -> int:
        """Store an already encoded payload (as read from a pack and verified).

        Returns the bytes written, 0 if the object was present.
        """
        return self._append([(oid, kind, method, payload, raw_len)], TARGET_PACK_SIZE)

    def _append(
        self, todo: Sequence[tuple[bytes, int, int, bytes | memoryview, int]], close_at: int
    ) -> int:
        """Append encoded objects to the open pack, skipping those already stored.

        The pack is closed once it holds ``close_at`` bytes.
        """
        written = 0
        with self._changing():
            stored = self._raw_has(len(todo))
            for oid, kind, method, payload, raw_len in todo:
                if oid in self._entries or stored(oid):
                    self._rely(oid)
                    continue
                w = self._writer or self._new_writer()
                obj = w.append(oid, kind, method, payload, raw_len)
                self._entries[oid] = (w.slot, obj)
                written += len(payload)
                if w.offset >= close_at:
                    self._finish(wait=False)
        return written

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the lock while the open pack changes; drop the pack on an OSError.

        Packs finished meanwhile start being made durable after the lock is let go.
        """
        with self._lock:
            self._raise_failed()
            try:
                yield
            except OSError as exc:
                self._abandon()
                raise storage_error(exc, "objects") from exc
            closing, self._closing = self._closing, []
        for fd, pack in closing:
            self._durable.finished(fd, pack)

    def _new_writer(self) -> PackWriter:
        """Start a pack (and, the first time, the threads that write packs)."""
        if self._writing is None:
            from vfs._os.threads import Threads

            self._writing = Threads(WRITE_DEPTH, "dvfs-packwrite")
            self._finisher = Threads(1, "dvfs-packfinish")
        self._writer = PackWriter(self.root, len(self._packs), self._writing)
        self._packs.append(self._writer.tmp)
        return self._writer

    def read_stored(self, oid: bytes) -> tuple[PackedObject, bytes]:
        """An object's record and its payload exactly as stored (not verified)."""
        while True:
            hit = self._find(oid)
            if hit is None:
                raise ObjectMissing(oid.hex())
            try:
                return self._read_stored(*hit)
            except FileNotFoundError:
                self._vanished(hit[0])

    def _read_stored(self, slot: int, obj: PackedObject) -> tuple[PackedObject, bytes]:
        # The open pack is finished under the lock, and it stays ``_writer`` until its
        # file has its final name, or until its finishing is handed to the finisher
        # (``_finishing``): whichever this read sees, it never reads the temporary file
        # while writes to it are in flight.
        w = self._writer
        if w is not None and w.slot == slot:
            with self._lock:
                if self._writer is w:
                    w.drain()  # the object may still be in the write buffer
        self._ready(slot)
        if (w is None or w.slot != slot) and obj.stored_len >= READ_DIRECT:
            data = self._read_uncached(slot, obj)
            if data is not None:
                return obj, data
        with self._fd(slot) as fd:
            return obj, os.pread(fd, obj.stored_len, obj.offset)

    def _vanished(self, slot: int) -> None:
        """Pack ``slot`` is gone: ``dvfs gc`` deleted it, after writing its live objects
        to other packs. Its objects are looked for again in the packs there are now.

        Raises FileNotFoundError if the pack was already known to be gone (a lookup
        that keeps failing is not retried for ever).
        """
        with self._lock:
            if slot in self._dead:
                raise FileNotFoundError(errno.ENOENT, "pack vanished", str(self._packs[slot]))
            self._forget({slot})
            self._scanned_at = -1
            self._scan()

    def _forget(self, slots: set[int]) -> None:
        """Packs ``slots`` are deleted: drop their objects (and close their descriptors),
        keeping those that other packs known already hold copies of. (Under the lock;
        packs new since are added by the listing that follows.)"""
        self._merge()
        self._dead |= slots
        for slot in slots:
            self._known.discard(self._packs[slot].name)
            self._fds.drop(slot)
        gone = {oid for oid, (s, _) in self._entries.items() if s in slots}
        for oid in gone:
            del self._entries[oid]
        for s, path in enumerate(self._packs):  # copies of them in packs known already
            if s in self._dead or not path.name.endswith(".pack"):
                continue
            idx = path.with_suffix(".idx")
            try:
                objs = decode_index(read_index_file(idx), str(idx))
            except (OSError, FormatError):
                continue
            for o in objs:
                if o.oid in gone:
                    self._entries.setdefault(o.oid, (s, o))

    def read_into(self, oid: bytes, buf: mmap.mmap, *, verify: bool = True) -> bytes | memoryview:
        """The object's bytes, verified, read into ``buf`` where that saves a copy.

        For reading many large objects in a row (restoring a large file): a payload
        stored whole comes back as a view of ``buf``, valid until ``buf`` is reused;
        one not in the page cache is read past it (``O_DIRECT``), as in
        :meth:`read_stored`. ``buf`` is page-aligned and holds at least the payload
        and ``2 * direct_io.ALIGN`` bytes; anything else (a compressed payload, one too
        large for ``buf``, one in the pack being written) comes back as bytes.
        ``verify`` false: a payload read into ``buf`` is not hashed (the caller proves
        it: ``decode_payload``); its length is still checked.
        """
        hit = self._find(oid)
        if hit is None:
            raise ObjectMissing(oid.hex())
        slot, obj = hit
        self._ready(slot)
        w = self._writer
        if (
            obj.compression != Compression.NONE
            or obj.stored_len + 2 * ALIGN > len(buf)
            or (w is not None and w.slot == slot)
        ):
            return self.get(oid)
        view = None
        try:
            with self._fd(slot) as fd:
                if cached(fd, obj.offset, obj.stored_len) is not False:  # as read_cached()
                    n = os.preadv(fd, [memoryview(buf)[: obj.stored_len]], obj.offset)
                    view = memoryview(buf)[:n]
            if view is None:
                with self._fds.borrow((slot, True), self._direct_opener(slot)) as fd:
                    if fd >= 0:
                        view = read_range_into(fd, obj.offset, obj.stored_len, buf)
        except FileNotFoundError:  # deleted by gc: read from where it is now
            self._vanished(slot)
        if view is None:
            return self.get(oid)
        return decode_payload(obj, view, verify=verify)

    def _direct_opener(self, slot: int) -> Callable[[], int]:
        """Opens pack ``slot`` for direct reads; -1 where the filesystem has no O_DIRECT."""

        def opener() -> int:
            try:
                return open_direct(self._packs[slot], READ_FLAGS)
            except OSError as exc:
                raise _linked(exc, self._packs[slot]) from None

        return opener

    def _read_uncached(self, slot: int, obj: PackedObject) -> bytes | None:
        """A large payload from the page cache if it is there, else read direct.

        Packs are written past the page cache (``vfs._os.direct_io``), so a large object
        read soon after is usually not cached; reading it direct does not fill the
        cache with a copy that will not be read again. None: read it buffered.
        """
        with self._fd(slot) as fd:
            data = read_cached(fd, obj.offset, obj.stored_len)
        if data is not None:
            return data
        with self._fds.borrow((slot, True), self._direct_opener(slot)) as fd:
            return None if fd < 0 else read_range(fd, obj.offset, obj.stored_len)

    def _finish(self, *, wait: bool = True) -> None:
        """Close the open pack (under the lock): header, rename to its id, index file.

        ``wait`` false (a pack that filled up): the pack is sealed here and the rest
        (waiting for its writes still in flight, the header, the rename, the index
        file) is left to the ``_finisher`` thread, so that the next objects go to a
        new pack at once. Done here, every thread storing objects waited under the
        lock for the pack's last writes to drain, and the disk was idle from the last
        of them until the next pack's first; adding 1 GiB closes 16 packs. Its objects
        are read only once it is finished (:meth:`_ready`); an error is raised by the
        next store or :meth:`flush`.
        """
        w = self._writer
        if w is None:
            return
        final = w.seal(self.root)
        self._known.add(final.name)  # (a listing meanwhile must not take it for another's)
        if not wait and self._finisher is not None:
            self._finishing = {s: f for s, f in self._finishing.items() if not f.done()}
            self._finishing[w.slot] = self._finisher.submit(self._finish_off, w)
            self._writer = None  # (after: a read that sees no writer finds the future)
            return
        try:
            final, fd = w.finish(self.root)
        except BaseException:
            self._writer = None
            self._drop(w)  # its temporary file would only take space
            raise
        self._closing.append((fd, final))
        self._packs[w.slot] = final
        self._writer = None  # (last: a read that sees no writer reads the final file)

    def _finish_off(self, w: PackWriter) -> None:
        """Runs on the ``_finisher`` thread: finish a sealed pack and start its fsync.

        Takes no lock (``flush`` waits for this under the store's): the pack's entry in
        ``_packs`` is replaced in one step, and a failure is left in ``_failed``.
        """
        try:
            final, fd = w.finish(self.root)
        except BaseException as exc:
            with contextlib.suppress(Exception):
                w.abandon()
            self._failed.append((w, exc))
            raise
        self._packs[w.slot] = final
        self._durable.finished(fd, final)

    def _ready(self, slot: int) -> None:
        """Wait until pack ``slot`` is finished if it is being finished (its objects
        are read only from there). A failure is raised by the next store or flush;
        the objects are gone from the table by then."""
        fut = self._finishing.get(slot)
        if fut is not None and not fut.done():
            settled([fut])

    def _await_finishing(self) -> None:
        """Wait for every pack being finished (errors: see :meth:`_raise_failed`)."""
        settled(list(self._finishing.values()))

    def _raise_failed(self) -> None:
        """Forget the objects of packs that failed to finish and raise the first error."""
        if not self._failed:
            return
        first: BaseException | None = None
        while self._failed:  # (popped one by one: the finisher may append meanwhile)
            w, exc = self._failed.pop(0)
            self._drop(w, abandoned=True)
            first = first or exc
        assert first is not None
        if isinstance(first, OSError):
            raise storage_error(first, "objects") from first
        raise first

    def _drop(self, w: PackWriter, *, abandoned: bool = False) -> None:
        """Forget a pack that will not be finished and delete its temporary file
        (``abandoned``: deleted already)."""
        for o in w.objs:
            hit = self._entries.get(o.oid)
            if hit is not None and hit[0] == w.slot:
                del self._entries[o.oid]
        self._known.discard(w.seal(self.root).name)
        if not abandoned:
            w.abandon()

    def _abandon(self) -> None:
        w = self._writer
        if w is None:
            return
        self._writer = None
        self._drop(w)

    def flush(self) -> None:
        """Close the open pack so that everything written so far has a real name."""
        with self._changing():
            self._finish()
            self._await_finishing()
            self._raise_failed()

    def sync(self) -> None:
        """Close the open pack and make every object stored so far durable.

        Called before anything that names the objects becomes durable (the staging
        index, a ref): see ``pack_files.Durability``.
        """
        self.flush()
        try:
            self._durable.wait(self._relied_on)
        except OSError as exc:
            self._relied_ids = None  # (forgotten by the failed wait: the next syncs all)
            raise storage_error(exc, "to disk") from exc

    def discard(self) -> None:
        """Drop the open pack and everything written to it since the last flush.

        For a command that failed half-way: nothing it stored is named anywhere yet,
        and the temporary file would only take space (the disk may be full).
        """
        with self._lock:
            self._abandon()

    def close_idle(self) -> None:
        """Close the packs' descriptors no read holds (:meth:`Descriptors.close_idle`);
        the store stays open, and a read opens a pack again."""
        self._fds.close_idle()

    def close(self) -> None:
        """Flush and close every file descriptor."""
        with self._lock:  # held throughout: no new pack may start with the old threads
            self.flush()
            self._fds.close()
            if self._writing is not None:
                self._writing.shutdown()
                self._writing = None
            if self._finisher is not None:
                self._finisher.shutdown()
                self._finisher = None
        self._durable.close()

    # reading ---------------------------------------------------------------------

    def _fd(self, slot: int) -> contextlib.AbstractContextManager[int]:
        """A descriptor of pack ``slot``, for the ``with`` block (see :class:`Descriptors`)."""
        path = self._packs[slot]
        return self._fds.borrow((slot, False), lambda: _open_pack(path))

    def locate(self, oid: bytes) -> tuple[Path, PackedObject]:
        """The pack holding an object and where it lies in it; ObjectMissing if absent."""
        hit = self._find(oid)
        if hit is None:
            raise ObjectMissing(oid.hex())
        self._ready(hit[0])
        return self._packs[hit[0]], hit[1]

    def read_order(self, oids: Iterable[bytes]) -> dict[bytes, tuple[int, int]]:
        """(pack, offset) of each stored id, for reading many objects in file order
        (:meth:`read_ahead_packs` then asks the kernel for their packs); an id left
        out is not stored. Also the test of whether many ids are stored: each found
        is noted as relied on (as :meth:`has` notes it).

        One pass under the lock: the indexes merged first when there are more ids than
        MERGE_AFTER (one by one, the lookups would merge them after as many), the
        ids missed looked for again once after the folder is listed again (packs
        another process wrote since). A checkout of 20,000 files asked :meth:`has`
        once per chunk, then this again per file: 21,722 calls and two lock
        acquisitions each (4-108 ms), and 33-60 ms more.
        """
        wanted = oids if isinstance(oids, (list, tuple, set, frozenset)) else list(oids)
        out: dict[bytes, tuple[int, int]] = {}
        with self._lock:
            if not self._loaded:
                self._scan()
            if not self._merged and len(wanted) > MERGE_AFTER:
                self._merge()
            missed = self._place(wanted, out)
            if missed:
                self._scan()
                self._place(missed, out)
        return out

    def _place(self, oids: Iterable[bytes], out: dict[bytes, tuple[int, int]]) -> list[bytes]:
        """Put (pack, offset) of each of ``oids`` found into ``out``, noting its pack
        as relied on; return the ids not found (:meth:`read_order`, lock held)."""
        missed = []
        slots = set()
        lookup = self._entries.get if self._merged else self._lookup
        for oid in oids:
            hit = lookup(oid)
            if hit is None:
                missed.append(oid)
            else:
                out[oid] = (hit[0], hit[1].offset)
                slots.add(hit[0])
        self._relied |= slots
        return missed

    def read_ahead_packs(self, where: Mapping[bytes, tuple[int, int]]) -> None:
        """Ask the kernel to read ahead the packs of ``where`` (from :meth:`read_order`).

        One POSIX_FADV_WILLNEED per pack, so that restoring many small files streams
        the packs from disk instead of seeking once per object when they are not
        cached. The call queues the reads and may wait for room in the disk's queue
        (20-300 ms for the benchmark's 20,000 files on a busy disk).
        """
        for slot in {slot for slot, _ in where.values()}:
            self._ready(slot)
            with contextlib.suppress(OSError, FormatError), self._fd(slot) as fd:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)

    def will_need(self, oids: Iterable[bytes]) -> None:
        """Ask the kernel to read in the stretches of packs holding ``oids``, all at once.

        For objects about to be read one by one (the directories below a tree, read
        as a checkout walks it): packs are written past the page cache, so each read
        of a record would otherwise wait for the disk on its own (202 directory
        records of the benchmark's version: 3 ms each on a busy virtio disk). Objects
        lying within RUN_GAP of each other are asked for as one range
        (``POSIX_FADV_WILLNEED``, which reads nothing already cached). Unknown ids,
        large payloads (read direct) and the pack being written are left out.
        """
        if not self._loaded:
            self._scan()
        w = self._writer
        found = []
        for oid in oids:
            hit = self._lookup(oid)
            if hit is None or (w is not None and w.slot == hit[0]):
                continue
            slot, obj = hit
            if obj.stored_len < READ_DIRECT:
                found.append((slot, obj.offset, obj.offset + obj.stored_len))
        found.sort()
        at = 0
        while at < len(found):
            slot, start, stop = found[at]
            at += 1
            while at < len(found) and found[at][0] == slot and found[at][1] <= stop + RUN_GAP:
                stop = max(stop, found[at][2])
                at += 1
            self._ready(slot)
            with contextlib.suppress(OSError, FormatError), self._fd(slot) as fd:
                os.posix_fadvise(fd, start, stop - start, os.POSIX_FADV_WILLNEED)

    def read_many(self, oids: Iterable[bytes]) -> dict[bytes, bytes | memoryview]:
        """The bytes of many small objects, verified, read a run of a pack at a time.

        For restoring many small files: objects lying next to each other in a pack
        (as a batch of files added together does) come in with one ``pread`` per run
        of up to READ_RUN bytes instead of one per object, and without the lookups
        and locking of :meth:`get` for each. Gaps of up to RUN_GAP bytes between them
        are read through. A value may be a view of the run's buffer, which stays
        alive as long as the view.

        Only what reads back intact is returned: an object missing, damaged, in the
        pack being written, of READ_DIRECT bytes or more, or in a pack that vanished
        is left out, for the caller to ask :meth:`get`, which reads it (the usual
        way) or raises the error that names it.
        """
        if not self._loaded:
            self._scan()
        w = self._writer
        found: list[tuple[int, PackedObject]] = []
        for oid in dict.fromkeys(oids):  # (once each, in the order given)
            hit = self._lookup(oid)
            if hit is None or hit[1].stored_len >= READ_DIRECT:
                continue
            if w is not None and w.slot == hit[0]:
                continue
            found.append(hit)
        found.sort(key=lambda h: (h[0], h[1].offset))
        out: dict[bytes, bytes | memoryview] = {}
        at = 0
        while at < len(found):
            slot, first = found[at]
            end = at + 1
            stop = first.offset + first.stored_len
            while end < len(found):
                s, o = found[end]
                if s != slot or o.offset > stop + RUN_GAP:
                    break
                if o.offset + o.stored_len - first.offset > READ_RUN:
                    break
                stop = max(stop, o.offset + o.stored_len)
                end += 1
            run = found[at:end]
            at = end
            self._ready(slot)
            try:
                with self._fd(slot) as fd:
                    data = os.pread(fd, stop - first.offset, first.offset)
            except FileNotFoundError:
                continue  # deleted by gc: get() finds them where they are now
            whole = memoryview(data)
            for _, obj in run:
                start = obj.offset - first.offset
                try:
                    out[obj.oid] = decode_payload(obj, whole[start : start + obj.stored_len])
                except ObjectCorrupt:
                    continue  # (get() raises it, for the file that uses it)
        return out

    def share_into(self, fd: int, objects: Sequence[tuple[bytes, int]]) -> bool:
        """Make the empty file ``fd`` hold the bytes of ``objects`` (id, length) back to
        back by sharing the packs' blocks (``vfs._os.reflink``), where its filesystem
        can; False, with the file left empty, where it cannot.

        Only objects stored whole (not compressed) in finished packs are shared: a large
        file's raw chunks are (:meth:`put_lent_many`), each at the same place within a
        block of its pack as within a block of the file (``DirectAppender.lend``). So
        the whole blocks of each run of objects lying back to back in one pack are
        shared, and the partial blocks at the run's ends copied. Nothing is read or
        verified beyond those: the caller reads the file back. False where an object is
        missing, compressed, of another length or in the pack being written, where a
        run of more than two blocks lies at another place within a block (packs written
        otherwise), where no run has a whole block to share, where a pack vanished
        (gc), and where the filesystem refuses (asked once per process:
        ``reflink.refused``).
        """
        if reflink.refused(fd):
            return False
        w = self._writer
        runs: list[list[int]] = []  # [pack slot, offset there, length, offset in the file]
        size = 0
        for oid, length in objects:
            hit = self._find(oid)  # (as every read finds an object)
            if hit is None:
                return False
            slot, obj = hit
            if obj.compression != Compression.NONE or obj.stored_len != length:
                return False
            if w is not None and w.slot == slot:
                return False
            last = runs[-1] if runs else None
            if last is not None and last[0] == slot and last[1] + last[2] == obj.offset:
                last[2] += obj.stored_len
            else:
                runs.append([slot, obj.offset, obj.stored_len, size])
            size += obj.stored_len
        if any(n > 2 * BLOCK and at % BLOCK != start % BLOCK for _, at, n, start in runs):
            return False
        os.ftruncate(fd, size)
        shared = False
        try:
            for slot, at, n, start in runs:
                self._ready(slot)
                with self._fd(slot) as src:
                    head = min(n, -start % BLOCK)
                    whole = (n - head) // BLOCK * BLOCK if at % BLOCK == start % BLOCK else 0
                    if whole and reflink.clone_range(src, at + head, whole, fd, start + head):
                        shared = True
                        _copy_range(src, at, head, fd, start)
                        tail = head + whole
                        _copy_range(src, at + tail, n - tail, fd, start + tail)
                    elif shared or not whole:
                        _copy_range(src, at, n, fd, start)
                    else:  # the filesystem refused the first run: nothing is shared
                        break
        except FileNotFoundError:  # a pack deleted by gc: the caller reads where they are now
            shared = False
        if not shared:
            os.ftruncate(fd, 0)
        return shared

    def stored_lengths(self, oids: Iterable[bytes]) -> dict[bytes, int]:
        """The stored (compressed) length of each of ``oids`` held here (absent: not held).

        Built with set and ``map`` operations, no Python statement per id: ``dvfs du``
        asks this for every chunk of every version."""
        self._merge()
        entries = self._entries
        held = entries.keys() & set(oids)
        found = map(itemgetter(1), map(entries.__getitem__, held))
        return dict(zip(held, map(attrgetter("stored_len"), found), strict=True))

    def kind(self, oid: bytes) -> int:
        """The recorded kind of a stored object."""
        return self.locate(oid)[1].kind

    def get(self, oid: bytes) -> bytes:
        """The object's bytes, verified against its id."""
        obj, payload = self.read_stored(oid)
        return decode_payload(obj, payload)

    def verify(self, oid: bytes) -> None:
        """Raise ObjectMissing/ObjectCorrupt unless the object reads back intact."""
        self.get(oid)

    def iter_ids(self) -> Iterator[bytes]:
        """Every stored object id."""
        self._merge()
        yield from list(self._entries)

    def with_prefix(self, prefix: str) -> list[bytes]:
        """Ids whose hex form starts with ``prefix`` (noted as relied on: may be named)."""
        self._merge()
        found = [oid for oid in self._entries if oid.hex().startswith(prefix)]
        for oid in found:
            self._rely(oid)
        return found

    def pack_paths(self) -> list[Path]:
        """Every complete pack file (those that cannot be read too)."""
        self._await_finishing()
        self._scan()
        unreadable = [p for p in self._unreadable if os.path.lexists(p)]  # (not put aside)
        return [p for p in self._packs if p.name.endswith(".pack")] + unreadable

    def open_folder(self) -> int:
        """A descriptor of the store's folder, for listing, opened without following a
        link; the caller closes it. Whatever deletes in the store deletes through it
        (``unlinkat``), so that a folder that is a symbolic link (``.dvfs/objects ->
        /elsewhere``, made by hand or found in a repository from someone else) never
        makes dvfs delete outside the repository. FormatError if it is a link."""
        parent = os.open(self.root.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            return os.open(self.root.name, _FOLDER, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                raise FormatError(
                    f"{self.root} is missing: every object stored in this repository is "
                    "gone with it; put it back from a backup, or clone the repository again"
                ) from None
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):  # (named in full, as by path)
                raise OSError(exc.errno, exc.strerror, str(self.root)) from None
            raise FormatError(
                f"{self.root} is a symbolic link or not a folder: dvfs deletes nothing "
                "through a link out of the repository; move the folder it points to into "
                "its place, then run the command again"
            ) from None
        finally:
            os.close(parent)

    def remove_temporaries(self) -> int:
        """Delete temporary files left by an interrupted write; return how many.

        Call only under the repository lock. A pack another process is writing without
        it (``cat`` and ``diff`` store what they download) is locked by its writer
        (``PackWriter``) and left. A folder of that name is left alone (dvfs makes none);
        a link is removed, never followed; FormatError if the store's folder itself is
        a link (:meth:`open_folder`).
        """
        self._await_finishing()
        mine = self._writer.tmp.name if self._writer is not None else None
        fd = self.open_folder()
        try:
            with os.scandir(fd) as it:
                names = [e.name for e in it if e.name.startswith(TMP_PREFIX) and e.name != mine]
            n = 0
            for name in names:
                if _being_written(fd, name):
                    continue
                try:
                    os.unlink(name, dir_fd=fd)
                except (FileNotFoundError, IsADirectoryError):
                    continue
                n += 1
            return n
        finally:
            os.close(fd)


def _regular(path: Path) -> bool:
    """Whether ``path`` is a regular file (not a link, FIFO, device or folder); True if
    it is gone (removed since it was listed: the reader finds it gone)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return True


def _open_pack(path: Path) -> int:
    """Pack ``path`` opened for reading (``READ_FLAGS``); FormatError if it is a link,
    or not a regular file (a FIFO or a device put in a pack's place: reading it would
    fail with "Illegal seek", or block)."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        raise _linked(exc, path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FormatError(f"pack {path.name} is not a regular file: {AWAY}; then run `dvfs fsck`")
    return fd


def _linked(exc: OSError, path: Path) -> OSError | FormatError:
    """``exc`` of opening pack ``path``, as FormatError if it is one of a symbolic link
    (a damaged pack: one put in a pack's place after the store listed them)."""
    if exc.errno != errno.ELOOP:
        return exc
    return FormatError(f"pack {path.name} {LINKED_PACK}; then run `dvfs fsck`")


def _being_written(folder: int, name: str) -> bool:
    """Whether file ``name`` of ``folder`` is locked by a live writer (``PackWriter``)."""
    try:
        fd = os.open(name, _PEEK, dir_fd=folder)
    except OSError:  # gone, a link, unreadable: nobody writes it through the store
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)
    return False


def _never(_: bytes) -> bool:
    """The test of :meth:`ObjectStore._raw_has` once no index file is left unmerged."""
    return False


def _copy_range(src: int, at: int, n: int, dst: int, start: int) -> None:
    """Copy ``n`` bytes at ``at`` of file ``src`` to ``start`` of file ``dst``, a MiB at a
    time; a source that ends early leaves the rest a hole (a reader checking the bytes
    against their ids finds it)."""
    while n > 0:
        data = os.pread(src, min(n, 1 << 20), at)
        if not data:
            return
        done = 0
        while done < len(data):
            done += os.pwrite(dst, memoryview(data)[done:], start + done)
        at, start, n = at + len(data), start + len(data), n - len(data)
