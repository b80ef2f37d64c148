"""One side of a row diff: a file copied into a scratch directory, with its chunk list.

The engine reads files by name, and a version's file exists only as chunks in the
object store (compressed, in packs), so each side is first written out whole, one
verified chunk at a time: memory holds one chunk (at most ``MAX_CHUNK``), the disk
holds the copy. A working-tree file is copied too, read once from a descriptor
opened beneath the repository root without following links (``vfs._os.beneath``) and cut
into chunks as ``dvfs add`` would cut it, so both sides have chunk lists to compare
and the engine reads a file that cannot change or turn into a link while it works.

While copying, each side notes per chunk what the fast path and the line check must
know (``Facts``: quote characters, where its newlines are), so that deciding costs no
second read. The newer side copies the chunks it shares with the older one from the
older one's copy (``copy_file_range``) rather than decompressing them again; two
sides that share less than half their bytes are copied at the same time instead
(``vfs.tables.rowdiff``). A copy that takes chunks from a working-tree file holding
neither version scans them there for their facts as it copies them, on its fetch
threads, rather than after a scan of that whole file.

Those facts depend on a chunk's bytes alone, so a version's file keeps them for the
next diff that copies it (``.dvfs/rowcache/<64 hex>.facts``, the hex the BLAKE3 hash
of its chunk ids and sizes; msgpack ``[1, [[facts of a chunk], ...]]``): the copy
scans none of them again. A cache file that does not decode to facts fitting each
chunk is ignored.

With the facts kept, two versions that share most of their chunks (the fast path's
case) are copied lazily: each copy starts as a hole of the file's size, and a chunk
is fetched (decompressed, verified) and written only when a range of it is asked
for (``Side.fill``): the rows around the changed chunks, the first bytes the dialect
is detected on, the ends the format check reads. ``Side.file`` writes every chunk
left out before it answers, so whatever reads the whole copy reads the whole file;
a diff of one block of rows in a 100 MiB file against a proved older version then
decompresses a few chunks of each side instead of both files.

A version's whole copy is kept too (``.dvfs/rowcache/<64 hex>.copy``, the hex as for
the facts, a second name of the scratch copy's inode: keeping it copies nothing, and
the disk holds it as it holds any file the kernel writes back), for files of
``COPY_MIN`` to ``COPY_MAX`` bytes and up to ``COPIES`` bytes of them in all, the
least recently used removed first, and none while the disk has less than ``COPIES``
bytes free. The next diff that copies the same version
(several versions diffed against one base) links it into its scratch directory and
hashes each chunk's bytes against the chunk's id instead of decompressing the chunks
and writing the copy again: on the benchmark's 100 MiB file, 0.05 s of CPU instead of
0.3 to 0.5 s (decompressing, and writing 100 MiB of fresh page cache, which a virtual
machine that hands freed memory back to its host makes the dearer half). A kept copy
of another size, or whose bytes do not hash to the chunks' ids, is not used.

A version's file that the working tree holds as it is (``from_tree_file``: the
index's record of the working file has the version's content hash, and the file's
stat is the one it was hashed with, outside the racy window) is not copied at all:
the engine reads the working-tree file in place, through ``/proc/self/fd/<fd>`` of a
descriptor opened beneath the repository root without following links, so a link
or a file put in its place later changes nothing read. Its identity (device, inode,
size, modification and change times) is taken when it is opened and again once the
diff is made (``Side.moved``): a write to it in between changes the change time at
least, and the diff is then made again from the store (``vfs.tables.rowdiff``), the
cache entries learned from the file dropped (``vfs.tables.checks.held``). On the
benchmark's 200,000-row cut the newer side is the working tree's file: its copy,
10 MiB decompressed and written, is spared.

Scratch directories are ``.dvfs/rows-<pid>-<start>-<random>`` (the pid and start time
of the process, ``vfs._os.helper_process.process_tag``; ``<random>`` holds no ``-``),
removed when the diff ends; one left by a process that no longer runs (a kill -9) is
removed by the next diff, also once another process has its pid (the
``rows-<pid>-<random>`` of older versions is judged by its pid alone, as they did).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import re
import shutil
import stat
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from vfs._os.beneath import ABSENT, READ, Walker
from vfs._os.helper_process import process_tag, tag_alive
from vfs.errors import FileUnreadable, FormatError, UsageError
from vfs.model.chunking import MAX_SIZE_RANGE, Chunker
from vfs.model.codec import ChunkRef, Entry
from vfs.model.ids import hash_bytes, hasher
from vfs.quoting import quote_name
from vfs.store.objects import ObjectStore
from vfs.tables import checks
from vfs.tables.formats import MAX_LINE

MAX_CHUNK = MAX_SIZE_RANGE[1]  # no chunk dvfs makes is larger
SPECIAL = (b'"', b"'")  # the quote characters, counted for the fast path (vfs.tables.regions)
LOOK = 64 * 1024  # bytes of each end kept for the format check
AHEAD = 4  # chunks fetched (decompressed, verified) ahead of the one being written
_SCRATCH = re.compile(r"rows-([0-9-]+)-[^-]+")  # the process tag (module doc)
_BLANK = re.compile(b"\n\n")
MAX_KEPT = 100_000  # files of more chunks keep no facts (a 130 GiB file: 3 MB of them)
COPY_MIN = 1 << 20  # files smaller than this keep no copy (copying them is cheap)
COPY_MAX = 1 << 30  # nor files larger than this (the copy would hold as much disk)
COPIES = 2 << 30  # bytes of copies kept in all, the most recently used
_BLANK_CR = re.compile(b"\n\r?\n")


@dataclass(frozen=True)
class Facts:
    """What the fast path, the line check and the row count need of one chunk's bytes."""

    holds: tuple[bool, ...]  # whether it holds each SPECIAL byte
    first_nl: int  # offset of its first newline, -1 if none
    last_nl: int  # offset of its last newline, -1 if none
    inner: int  # longest line between the two (measured only past MAX_LINE bytes)
    newlines: int = 0
    lone_cr: int = 0  # carriage returns not followed by a newline inside the chunk
    blank: bool = False  # holds an empty line ("\n\n" or "\n\r\n")
    first2: bytes = b""  # its first and last two bytes, for what spans two chunks
    last2: bytes = b""
    ascii: bool = False  # every byte below 0x80 (so valid UTF-8)

    @classmethod
    def of(cls, data: bytes | memoryview) -> Facts:
        raw = bytes(data) if isinstance(data, memoryview) else data
        first = raw.find(b"\n")
        last = raw.rfind(b"\n")
        inner = 0
        if first >= 0 and len(raw) > MAX_LINE:  # only then can a line inside be too long
            pos = first + 1
            while (nl := raw.find(b"\n", pos)) >= 0:
                inner = max(inner, nl - pos)
                pos = nl + 1
        holds = tuple(b in raw for b in SPECIAL)  # memchr: fast, and faster when absent
        lone = 0
        if b"\r" in raw:
            lone = raw.count(b"\r") - raw.count(b"\r\n")
            blank = _BLANK_CR.search(raw) is not None
        else:
            blank = _BLANK.search(raw) is not None  # faster than `in` for "\n\n" (measured)
        return cls(
            holds, first, last, inner, raw.count(b"\n"), lone, blank, raw[:2], raw[-2:],
            raw.isascii(),
        )  # fmt: skip

    def fields(self) -> list[object]:
        """The facts as a list for msgpack (``kept`` reads it back)."""
        return [
            list(self.holds), self.first_nl, self.last_nl, self.inner, self.newlines,
            self.lone_cr, self.blank, self.first2, self.last2, self.ascii,
        ]  # fmt: skip

    @classmethod
    def kept(cls, row: object, size: int) -> Facts | None:
        """The facts ``fields`` gave for a chunk of ``size`` bytes, or None if ``row``
        cannot be them."""
        if not isinstance(row, list) or len(row) != 10:
            return None
        holds, first, last, inner, newlines, lone, blank, first2, last2, ascii_ = row
        ints = (first, last, inner, newlines, lone)
        if not (
            isinstance(holds, list) and len(holds) == len(SPECIAL)
            and all(type(h) is bool for h in (*holds, blank, ascii_))
            and all(type(n) is int for n in ints)
            and isinstance(first2, bytes) and isinstance(last2, bytes)
            and -1 <= first <= last < size and (first < 0) == (last < 0)
            and 0 <= inner <= size and 0 <= lone <= size
            and (first < 0) == (newlines == 0) and 0 <= newlines <= size
            and len(first2) == len(last2) == min(2, size)
        ):  # fmt: skip
            return None
        return cls(tuple(holds), first, last, inner, newlines, lone, blank, first2, last2, ascii_)


@dataclass
class Side:
    """A file as one side of a diff: where its copy is and what it is made of."""

    label: str  # how messages name this side: "v3", "the working tree"
    path: bytes  # its path in the repository
    copy: Path  # its copy in the scratch directory (whole once ``file`` was asked)
    size: int = 0
    chunks: list[ChunkRef] = field(default_factory=list)
    holds: dict[bytes, bool] = field(default_factory=lambda: dict.fromkeys(SPECIAL, False))
    head: bytes = b""  # the first LOOK bytes
    tail: bytes = b""  # the last LOOK bytes
    present: bool = True  # False: the file is not on this side (an empty stand-in)
    longest_line: int = 0  # bytes of the longest line, its newline left out
    facts: dict[bytes, Facts] = field(default_factory=dict)  # by chunk id
    offsets: dict[bytes, int] = field(default_factory=dict)  # where a chunk is in the copy
    ascii: bool = True  # every chunk is ASCII (``Facts.ascii``)
    _open_line: int = 0  # bytes since the last newline so far
    _newlines: int = 0
    _lone_cr: int = 0
    _blank: bool = False
    _uncounted: bool = False  # its lines are not all rows, whatever the facts say
    _last2: bytes = b""
    _starts: list[int] = field(default_factory=list)  # each chunk's offset, in file order
    _holes: set[int] = field(default_factory=set)  # the chunks not written yet, by index
    _fetch: Callable[[ChunkRef], bytes] | None = None  # a chunk's verified bytes
    _threads: int = 2
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _fd: int = -1  # the working-tree file read in place (from_tree_file), else -1
    _seen: tuple[int, ...] = ()  # its identity when it was vouched for

    @property
    def in_place(self) -> bool:
        """True if the engine reads the working-tree file itself (``from_tree_file``)."""
        return self._fd >= 0

    def moved(self) -> bool:
        """True if this side is a working-tree file read in place that is no longer as
        it was when the index vouched for it (module doc); False for a copy."""
        if self._fd < 0:
            return False
        try:
            return _identity(os.fstat(self._fd)) != self._seen
        except OSError:
            return True

    def close(self) -> None:
        """Let go of the working-tree file read in place (once the engine is closed:
        another file may take its descriptor's number)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def file(self) -> Path:
        """The copy, with every chunk in it (those left out so far are written now)."""
        return self.fill(0, self.size)

    def fill(self, start: int, end: int) -> Path:
        """Write the chunks overlapping bytes [start, end) that are not written yet
        (module doc); the copy's path."""
        with self._lock:
            if not self._holes or end <= start:
                return self.copy
            first = max(0, bisect.bisect_right(self._starts, start) - 1)
            last = bisect.bisect_left(self._starts, end)
            todo = [i for i in range(first, last) if i in self._holes]
            if not todo:
                return self.copy
            assert self._fetch is not None
            fetch = self._fetch
            with (
                open(self.copy, "r+b") as out,
                ThreadPoolExecutor(max(1, self._threads)) as pool,
            ):
                pending: deque[tuple[int, Future[bytes]]] = deque()
                queue = iter(todo)
                while True:
                    while len(pending) < AHEAD and (i := next(queue, None)) is not None:
                        pending.append((i, pool.submit(fetch, self.chunks[i])))
                    if not pending:
                        break
                    i, fut = pending.popleft()
                    try:
                        data = fut.result()
                    except BaseException:
                        for _, f in pending:
                            f.cancel()
                        raise
                    os.pwrite(out.fileno(), data, self._starts[i])
                    self._holes.discard(i)
            return self.copy

    def prefix(self, n: int) -> bytes:
        """What identifies the file's first ``n`` bytes and whether it has more: the ids
        and sizes of the chunks that hold them (``vfs.tables.checks``: its sniff)."""
        return prefix_key(self.chunks, n)

    def _take(self, ref: ChunkRef, facts: Facts) -> None:
        """Account for the next chunk of the file (already written)."""
        for b, held in zip(SPECIAL, facts.holds, strict=True):
            self.holds[b] = self.holds[b] or held
        self.facts.setdefault(ref.oid, facts)
        self.offsets.setdefault(ref.oid, self.size)
        self._starts.append(self.size)
        self.chunks.append(ref)
        self._newlines += facts.newlines
        self._lone_cr += facts.lone_cr
        seam = self._last2 + facts.first2  # what spans the previous chunk and this one
        if not self.chunks[:-1]:
            seam = b"\n" + facts.first2  # an empty first line is a blank line too
        self._blank = self._blank or facts.blank or b"\n\n" in seam or b"\n\r\n" in seam
        self.ascii = self.ascii and facts.ascii
        if self._last2[-1:] == b"\r" and facts.first2[:1] == b"\n":
            self._lone_cr -= 1  # the previous chunk's last "\r" starts a "\r\n" after all
        self._last2 = (self._last2 + facts.last2)[-2:] if ref.size < 2 else facts.last2
        self.size += ref.size
        if facts.first_nl < 0:
            self._open_line += ref.size
        else:
            longest = max(self._open_line + facts.first_nl, facts.inner)
            self.longest_line = max(self.longest_line, longest)
            self._open_line = ref.size - facts.last_nl - 1
        self.longest_line = max(self.longest_line, self._open_line)

    def rows(self, has_header: bool, quote: str | None) -> int | None:
        """Rows the engine will read from this file, counted from its newlines, or None.

        Exact only for files whose every line is a row: no empty line, no carriage
        return but before a newline, no ``quote`` character (a quoted field may hold
        a newline). Anything else gives None, and the caller counts with the engine.
        """
        if not self.present or self.size == 0:
            return 0
        if self._blank or self._lone_cr or self._uncounted:
            return None
        mark = quote.encode() if quote else b""
        if mark and self.holds.get(mark, True):
            return None
        unended = 0 if self._last2[-1:] == b"\n" else 1
        return self._newlines + unended - (1 if has_header else 0)

    def uncount(self) -> None:
        """Count this file's rows with the engine from now on (``rows`` gives None): the
        engine read fewer than its newlines say (a JSON Lines line of blanks, which it
        skips as it skips an empty one, and which the facts do not see)."""
        self._uncounted = True

    def _ends(self, fd: int) -> None:
        """Keep the first and last LOOK bytes of the written copy."""
        self.fill(0, LOOK)
        self.fill(max(0, self.size - LOOK), self.size)
        self.head = os.pread(fd, min(LOOK, self.size), 0)
        self.tail = os.pread(fd, min(LOOK, self.size), max(0, self.size - LOOK))


@contextlib.contextmanager
def scratch(parent: Path) -> Iterator[Path]:
    """A fresh scratch directory below ``parent`` (``.dvfs``), removed afterwards.

    Directories that dead processes left behind are removed first. In a repository
    this user may only read (``.dvfs`` not writable, or on a read-only filesystem),
    it is made in the system's temporary directory instead: reading rows writes
    nothing of the repository's.
    """
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            m = _SCRATCH.fullmatch(name)
            if m and tag_alive(m.group(1)) is False:
                shutil.rmtree(parent / name, ignore_errors=True)
    try:
        path = Path(tempfile.mkdtemp(prefix=f"rows-{process_tag()}-", dir=parent))
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        path = Path(tempfile.mkdtemp(prefix=f"dvfs-rows-{process_tag()}-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def prefix_key(chunks: Sequence[ChunkRef], n: int) -> bytes:
    """``Side.prefix`` of the file made of ``chunks``, known before it is copied."""
    h = hasher()
    size = sum(c.size for c in chunks)
    h.update(b"dvfs prefix 1 %d %d\n" % (n, size > n))
    start = 0
    for c in chunks:
        if start >= n:
            break
        h.update(c.oid + c.size.to_bytes(8, "big"))
        start += c.size
    return bytes(h.digest())


def empty_side(label: str, path: bytes, dest: Path) -> Side:
    """A side where the file does not exist: an empty file stands in for it."""
    dest.write_bytes(b"")
    return Side(label, path, dest, present=False)


def _kept_name(chunks: Sequence[ChunkRef]) -> str:
    return f"{checks.entry_name(b'dvfs chunk facts 1', chunks)}.facts"


def kept_facts(cache: Path | None, chunks: Sequence[ChunkRef]) -> list[Facts] | None:
    """The facts of each of ``chunks`` kept by an earlier copy (module doc), or None."""
    if not chunks or len(chunks) > MAX_KEPT:
        return None
    rows = checks.read_record(cache, _kept_name(chunks), 200 * (len(chunks) + 1))
    if not isinstance(rows, list) or len(rows) != len(chunks):
        return None
    out = [Facts.kept(r, c.size) for r, c in zip(rows, chunks, strict=True)]
    return None if any(f is None for f in out) else [f for f in out if f is not None]


def keep_facts(cache: Path | None, chunks: Sequence[ChunkRef], facts: Sequence[Facts]) -> None:
    """Keep the facts of ``chunks`` for the next copy of the same file (best effort)."""
    if not chunks or len(chunks) > MAX_KEPT or len(facts) != len(chunks):
        return
    checks.write_record(cache, _kept_name(chunks), [f.fields() for f in facts])


def _copy_name(chunks: Sequence[ChunkRef]) -> str:
    return f"{checks.entry_name(b'dvfs file copy 1', chunks)}.copy"


def kept_copy(
    cache: Path | None, chunks: Sequence[ChunkRef], dest: Path, known: Sequence[Facts] | None
) -> list[Facts] | None:
    """Link the copy of the file made of ``chunks`` that an earlier diff kept (module
    doc) to ``dest`` and return each chunk's facts (``known``, or scanned now), once
    every chunk's bytes in it hash to the chunk's id; None (and no ``dest``) when
    there is no such copy."""
    size = sum(c.size for c in chunks)
    if cache is None or not COPY_MIN <= size <= COPY_MAX:
        return None
    where = checks.open_read(cache)  # (never through a link)
    if where is None:
        return None
    try:
        os.link(_copy_name(chunks), dest, src_dir_fd=where, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(where)
    facts: list[Facts] = []
    try:
        fd = os.open(dest, checks.READ_FLAGS)  # a link is refused, a FIFO does not block
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size == size:
                view = memoryview(bytearray(max(c.size for c in chunks)))
                pos = 0
                for i, c in enumerate(chunks):
                    part = view[: c.size]
                    if os.preadv(fd, [part], pos) != c.size or hash_bytes(part) != c.oid:
                        break
                    facts.append(known[i] if known is not None else Facts.of(part))
                    pos += c.size
                else:
                    with contextlib.suppress(OSError):
                        os.utime(fd)  # used now: the last copy evicted (keep_copy)
                    return facts
        finally:
            os.close(fd)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        os.unlink(dest)
    return None


def keep_copy(cache: Path | None, chunks: Sequence[ChunkRef], copy: Path) -> None:
    """Keep ``copy``, the whole file made of ``chunks``, for the next diff (module doc):
    a second name of it in the row cache, replacing one that was not used; then
    remove the least recently used copies beyond ``COPIES`` bytes. With less than
    ``COPIES`` bytes free on the disk, keep none and remove those kept (best effort)."""
    size = sum(c.size for c in chunks)
    if cache is None or not COPY_MIN <= size <= COPY_MAX:
        return
    where = checks.open_cache(cache)  # (deleted in by name: never through a link)
    if where is None:
        return
    try:
        with contextlib.suppress(OSError):
            _keep_copy(where, _copy_name(chunks), copy)
    finally:
        os.close(where)


def _keep_copy(where: int, name: str, copy: Path) -> None:
    """:func:`keep_copy` in the row cache open at ``where``."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=where)  # one that was kept could not be used: damaged
    disk = os.statvfs(where)
    room = disk.f_bavail * disk.f_frsize >= COPIES
    if room:
        os.link(copy, name, dst_dir_fd=where)
    kept = []
    for e in os.scandir(where):
        if e.name.endswith(".copy") and e.is_file(follow_symlinks=False):
            st = e.stat(follow_symlinks=False)
            kept.append((e.name == name, st.st_mtime_ns, st.st_size, e.name))
    total = 0
    for mine, _, n, leaf in sorted(kept, reverse=True):
        total += n
        if not room or (total > COPIES and not mine):
            with contextlib.suppress(FileNotFoundError):  # another diff removed it
                os.unlink(leaf, dir_fd=where)


def from_version(
    store: ObjectStore, entry: Entry, label: str, path: bytes, dest: Path,
    reuse: Side | None = None, threads: int | None = None, cache: Path | None = None,
    lazy: bool = False, ready: tuple[int, Callable[[], None]] | None = None,
) -> Side:  # fmt: skip
    """Write the file ``entry`` describes to ``dest``, verifying every chunk.

    Chunks are fetched ``AHEAD`` at a time on ``threads`` threads (decompressing and
    hashing release the GIL). A chunk that ``reuse`` (the other side, already
    written, or the working tree's file read in place, ``from_tree_file``) holds is
    copied from its copy by the kernel instead. ``cache``: the
    ``.dvfs`` directory whose kept facts spare scanning the chunks (module doc).
    ``lazy``: where the facts of every chunk were kept, write none of them yet, only
    what ``Side.fill`` is asked for (module doc). Otherwise a copy an earlier diff
    kept is used, checked against the chunks' ids; a whole copy written here is kept.
    ``ready``: (n, call): ``call()`` once the copy holds its first ``n`` bytes (or the
    whole file, if smaller), while the rest is written; not for a lazy copy.
    """
    side = Side(label, path, dest)
    due = min(ready[0], entry.size) if ready is not None else -1

    def written() -> None:  # the copy holds side.size bytes
        nonlocal due
        if ready is not None and 0 <= due <= side.size:
            due = -1
            ready[1]()

    known = kept_facts(cache, entry.chunks)
    for c in entry.chunks:
        if c.size > MAX_CHUNK:
            raise FormatError(
                f"{quote_name(path)} in {label} names a chunk of {c.size:,} bytes, more "
                f"than dvfs ever makes ({MAX_CHUNK:,}): run `dvfs fsck`"
            )

    def verified(c: ChunkRef) -> bytes:
        data = store.get(c.oid)  # verified against its id
        if len(data) != c.size:
            raise FormatError(
                f"{quote_name(path)} in {label}: a chunk holds {len(data):,} bytes, "
                f"its record says {c.size:,}: run `dvfs fsck`"
            )
        return data

    def fetch(c: ChunkRef, i: int) -> tuple[bytes, Facts]:
        data = verified(c)
        return data, known[i] if known is not None else Facts.of(data)

    def scanned(src: int, at: int, size: int) -> Facts:  # a shared chunk's, from ``reuse``
        data = os.pread(src, size, at)
        if len(data) != size:
            raise OSError(f"the file copied from ended at byte {at + len(data):,}")
        return Facts.of(data)

    if (
        not (lazy and known is not None)
        and (kept := kept_copy(cache, entry.chunks, dest, known)) is not None
    ):
        with open(dest, "rb") as linked:
            for ref, facts in zip(entry.chunks, kept, strict=True):
                side._take(ref, facts)
            side._ends(linked.fileno())
        written()
        if known is None:
            keep_facts(cache, entry.chunks, kept)
        return side

    if lazy and known is not None:
        with open(dest, "w+b") as out:
            for ref, facts in zip(entry.chunks, known, strict=True):
                side._take(ref, facts)
            os.ftruncate(out.fileno(), side.size)
            side._holes = set(range(len(entry.chunks)))
            side._fetch = verified
            side._threads = max(1, threads or 2)
            side._ends(out.fileno())
        return side

    with open(dest, "w+b") as out, ThreadPoolExecutor(max(1, threads or 2)) as pool:
        fd = out.fileno()
        src = os.open(reuse.copy, os.O_RDONLY | os.O_CLOEXEC) if reuse is not None else -1
        try:
            # each chunk: fetched out of the store (bytes and facts), or shared with
            # ``reuse`` (copied by the kernel, its facts ``reuse``'s, else scanned
            # from its bytes there on the pool while the chunks before it are copied)
            pending: deque[
                tuple[int, ChunkRef, Future[tuple[bytes, Facts]] | None, Future[Facts] | None]
            ] = deque()
            todo = enumerate(entry.chunks)
            every: list[Facts] = []
            while True:
                while len(pending) < AHEAD and (nxt := next(todo, None)) is not None:
                    i, ref = nxt
                    if reuse is None or ref.oid not in reuse.offsets:
                        pending.append((i, ref, pool.submit(fetch, ref, i), None))
                    elif known is None and ref.oid not in reuse.facts:
                        at = reuse.offsets[ref.oid]
                        reuse.fill(at, at + ref.size)  # (before it is read)
                        pending.append((i, ref, None, pool.submit(scanned, src, at, ref.size)))
                    else:
                        pending.append((i, ref, None, None))
                if not pending:
                    break
                i, ref, fut, scan = pending.popleft()
                if fut is None:
                    assert reuse is not None
                    at = reuse.offsets[ref.oid]
                    reuse.fill(at, at + ref.size)  # a lazy copy: written now if not yet
                    copy_range(src, at, ref.size, fd)
                    shared = scan.result() if scan is not None else reuse.facts.get(ref.oid)
                    if shared is None:  # (not scanned: kept)
                        assert known is not None
                        shared = known[i]
                    facts = shared
                else:
                    data, facts = fut.result()
                    out.write(data)
                    out.flush()  # before the kernel appends a shared chunk after it
                side._take(ref, facts)
                every.append(facts)
                written()
        finally:
            for _, _, f, g in pending:
                for job in (f, g):
                    if job is not None:
                        job.cancel()
            if src >= 0:
                os.close(src)
        side._ends(fd)
    if known is None:
        keep_facts(cache, entry.chunks, every)
    keep_copy(cache, entry.chunks, dest)
    return side


def copy_range(src: int, pos: int, n: int, dst: int) -> None:
    """Append ``n`` bytes of ``src`` from ``pos`` to ``dst`` (in the kernel where it can)."""
    end = pos + n
    while pos < end:
        try:
            done = os.copy_file_range(src, dst, min(end - pos, 1 << 24), pos)
        except OSError:
            data = os.pread(src, min(end - pos, 1 << 20), pos)
            done = os.write(dst, data) if data else 0
        if done <= 0:
            raise OSError(f"the scratch copy ended at byte {pos:,}, before {end:,}")
        pos += done


def write_ranges(
    src_fd: int, ranges: Sequence[tuple[int, int]], out_fd: int, header: bytes = b""
) -> None:
    """Append ``header``, then the byte ranges [start, end) of ``src_fd``, to ``out_fd``."""
    if header:
        os.write(out_fd, header)
    for start, end in ranges:
        copy_range(src_fd, start, end - start, out_fd)


def _identity(st: os.stat_result) -> tuple[int, ...]:
    """What changes when a file is written, replaced or truncated (its change time
    at least, which no call sets back)."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode)


def from_tree_file(
    root: Path, rel: bytes, entry: Entry, label: str,
    vouched: Callable[[os.stat_result], bool], cache: Path | None = None,
    ready: Callable[[Path], None] | None = None, scan: bool = True,
) -> Side | None:  # fmt: skip
    """The working tree's file ``rel`` as the side of version ``label``, whose file
    ``entry`` describes, read in place rather than copied (module doc); None where it
    cannot be: the file is missing, a link, not regular, another size, or
    ``vouched`` (the index) does not say that a file of its stat holds ``entry``'s
    bytes. The side's ``copy`` names the open descriptor (``/proc/self/fd``): the
    caller closes the side (``Side.close``) after the engine, and checks
    ``Side.moved`` once the diff is made.

    ``ready(path)``: called with the side's ``copy`` once the index vouched for the
    file, before its chunks are scanned for their facts (the file is whole: its
    dialect may be detected meanwhile). Where it was called and the file then
    turns out not to be the version's after all (it changed meanwhile), None is
    still returned: the caller must not trust what ``ready`` began.

    ``scan`` False: the file is only where another version's copy takes the chunks
    the two share (``from_version``'s ``reuse``), which scans them for its own facts
    as it copies them: where each chunk lies is noted, its facts are not (unless
    kept), so that the copy need not wait for a scan of the whole file first."""
    try:
        with Walker(root) as walker:
            dir_fd, leaf = walker.parent(rel)
            fd = os.open(leaf, READ, dir_fd=dir_fd)  # a link is refused
    except OSError:
        return None
    side = Side(label, rel, Path(_PROC_FD % fd), _fd=fd)
    if any(c.size > MAX_CHUNK for c in entry.chunks):  # from_version says what is wrong
        side.close()
        return None
    try:
        st = os.fstat(fd)
        if not (stat.S_ISREG(st.st_mode) and st.st_size == entry.size and vouched(st)):
            side.close()
            return None
        side._seen = _identity(st)
        named = os.stat(side.copy)  # the engine opens the file by this name
        if (named.st_dev, named.st_ino) != (st.st_dev, st.st_ino):
            side.close()
            return None
        if ready is not None:
            ready(side.copy)
        known = kept_facts(cache, entry.chunks)
        scanned: list[Facts] = []
        if known is None and not scan:
            for ref in entry.chunks:
                side.offsets.setdefault(ref.oid, side.size)
                side._starts.append(side.size)
                side.chunks.append(ref)
                side.size += ref.size
            if side.moved():
                side.close()
                return None
            return side
        if known is None:
            view = memoryview(bytearray(max((c.size for c in entry.chunks), default=0)))
            pos = 0
            for c in entry.chunks:
                part = view[: c.size]
                if os.preadv(fd, [part], pos) != c.size:
                    side.close()
                    return None
                scanned.append(Facts.of(part))
                pos += c.size
        for ref, facts in zip(entry.chunks, known or scanned, strict=True):
            side._take(ref, facts)
        side._ends(fd)
        if side.moved() or side.size != entry.size:
            side.close()
            return None
        if known is None:
            keep_facts(cache, entry.chunks, scanned)
        return side
    except OSError:
        side.close()
        return None
    except BaseException:
        side.close()
        raise


_PROC_FD = "/proc/self/fd/%d"


def from_working(root: Path, rel: bytes, chunker: Chunker, dest: Path) -> Side:
    """Copy the working file ``rel`` to ``dest`` and cut it into chunks on the way."""
    side = Side("the working tree", rel, dest)
    with Walker(root) as walker:
        try:
            dir_fd, leaf = walker.parent(rel)
            fd = os.open(leaf, READ, dir_fd=dir_fd)
        except PermissionError:
            raise FileUnreadable(f"cannot read {quote_name(rel)}: permission denied") from None
        except OSError as exc:
            if exc.errno in ABSENT:
                raise UsageError(
                    f"{quote_name(rel)} is not a file of the working tree "
                    "(give two revisions to compare versions)"
                ) from None
            raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # (before fdopen, which refuses a directory)
        os.close(fd)
        raise UsageError(f"{quote_name(rel)} is not a regular file")
    with os.fdopen(fd, "rb") as fh, open(dest, "w+b") as out:
        for data in chunker.stream(fh):
            out.write(data)
            side._take(ChunkRef(hash_bytes(data), len(data)), Facts.of(data))
        out.flush()
        side._ends(out.fileno())
    return side
