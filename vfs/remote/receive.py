"""What a fetch receives from a remote, checked before any of it is kept or expanded.

A remote is shared storage: a teammate's push, a bucket others can write. Everything
downloaded is verified against its id (``vfs.remote.config``) and decoded strictly
(``vfs.model.codec``: names, sizes, modes, types); on top of that, before a record is
stored or a ref moves, :func:`fetch_records` refuses a version when

- one of its trees holds ``.git``, ``.dvfs`` or a lookalike (``vfs.model.names``): the error
  names the version and the path (``v3 holds data/.git, which dvfs never stores``);
- its root tree holds ``.versions``, the name under which a mount lists versions;
- a file's chunk sizes disagree with what the remote's index says of the chunks;
- its number is not its first parent's plus one (or 1 without a parent), so that
  ``vN`` names one version and counting along a chain stays bounded;
- its totals (files and bytes) are not those of its tree, which ``log``, ``show`` and
  ``du`` give as the version's size, or a folder's size (``ls``) is not the bytes of
  the files below it: the tree is read anyway (a subtree stored here already counts
  as it is stored, each distinct one read once);
- a ref, a version or a tree names as a version or a tree an object that is not one:
  a branch naming a tree, a folder naming a chunk. An object stored here already is
  checked too (:meth:`_Fetch.check_local`), not taken as what the remote calls it.

A refusal stores nothing of what the fetch downloaded and moves no ref.

Then, before a clone or pull writes a version's files, :func:`check_expansion`
compares what the checkout would make with the distinct data it is made of: a tree
that repeats one subtree at every level, or a file that repeats one chunk, is tiny
to download and enormous to write. Beyond ``EXPANSION_RATIO`` times the distinct
data, and past ``EXPANSION_FLOOR_BYTES`` or ``EXPANSION_FLOOR_PATHS``, the command
stops and says how large the result would be, unless the user said ``--yes``. Real
datasets repeat little (identical files across splits, a few copies of a directory);
the one real case that reaches the limit is a version made almost only of one
repeated block, such as a zero-filled disk image of more than 256 MiB.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import Protocol

from vfs.errors import FormatError, ReservedName, UsageError
from vfs.model.codec import Kind, Tree, decode_tree, root_refusal
from vfs.model.version_codec import decode_version
from vfs.quoting import quote_given, quote_name
from vfs.remote.reader import Located, RemoteRepo
from vfs.repo.history import Extent, History, Shape, totals
from vfs.store.compression import decode_payload
from vfs.store.objects import ObjectStore, ObjKind
from vfs.store.packs import PackedObject

# A checkout may make this many times the paths and bytes of the distinct data it is
# made of, and any amount below the floors, without asking.
EXPANSION_RATIO = 1000
EXPANSION_FLOOR_BYTES = 256 * 1024 * 1024
EXPANSION_FLOOR_PATHS = 100_000


class Report(Protocol):
    """Where the bytes and objects a fetch stored are counted (``vfs.ops.sync.Transfer``)."""

    objects: int
    bytes: int


class _Fetch:
    """One pipelined download of the versions and trees reachable from some tips."""

    def __init__(self, store: ObjectStore, remote: RemoteRepo, index: dict[bytes, Located]):
        self.store = store
        self.remote = remote
        self.index = index
        self.got: dict[bytes, tuple[PackedObject, bytes]] = {}
        self.below: dict[bytes, list[bytes]] = {}  # record -> the records it names, fetched here
        self.versions: set[bytes] = set()  # records wanted as versions
        self.queue: list[bytes] = []
        self.reached: dict[bytes, tuple[bytes, bytes]] = {}  # tree -> (version, path) first seen
        self.numbers: dict[bytes, int] = {}  # versions decoded here -> their number
        self.first_parent: dict[bytes, bytes] = {}
        self.roots: dict[bytes, bytes] = {}  # root tree -> a version decoded here with it
        self.refused_at_root: dict[bytes, bytes] = {}  # tree decoded here -> name it holds
        self.claims: dict[bytes, tuple[bytes, int, int]] = {}  # version -> tree, files, bytes
        self.shapes: dict[bytes, Shape] = {}  # tree decoded here -> what it holds itself

    def want(self, oid: bytes, version: bool, reached: tuple[bytes, bytes] | None) -> bool:
        """Queue ``oid`` unless it is stored or already wanted; True if fetched here."""
        if reached is not None:
            self.reached.setdefault(oid, reached)
        if oid in self.below:
            if version != (oid in self.versions):  # (no record decodes as both)
                raise FormatError(
                    f"{self.remote.url} names object {oid.hex()[:12]} both as a version "
                    "and as a tree: refused, nothing was fetched"
                )
            return True
        if self.store.has(oid):
            self.check_local(oid, version)
            return False
        if version:
            self.versions.add(oid)
        self.below[oid] = []
        self.queue.append(oid)
        return True

    def check_local(self, oid: bytes, version: bool) -> None:
        """Refuse a record that names ``oid``, stored here, as a version (``version``) or
        a tree when it is not one: a remote's branch naming a tree, a version whose tree
        is a chunk, were kept, and the ref moved to them (``dvfs fsck``: malformed). The
        kind the store records is checked; an object recorded as another kind (a
        chunk whose bytes are a tree record: kinds are not part of an id) is decoded."""
        want = ObjKind.VERSION if version else ObjKind.TREE
        kind = self.store.kind(oid)
        if kind == want:
            return
        try:
            data = self.store.get(oid)
            decode_version(data) if version else decode_tree(data)
        except FormatError:
            what = "a version" if version else "a tree"
            kinds = {int(k): f"a {k.name.lower()}" for k in ObjKind}
            raise FormatError(
                f"{self.remote.url} names object {oid.hex()[:12]} as {what}, but it is "
                f"{kinds.get(kind, 'another object')} here: refused, nothing was fetched"
            ) from None

    def run(self, tips: list[bytes], jobs: int) -> None:
        """Download everything missing below ``tips``, decoding each record on arrival."""
        for t in tips:
            self.want(t, True, None)
        running: set[Future[list[tuple[PackedObject, bytes]]]] = set()
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            try:
                while self.queue or running:
                    if self.queue:
                        for pack_id, group in self.remote.ranges(self.queue, self.index):
                            running.add(pool.submit(self.remote.fetch_range, pack_id, group))
                        self.queue = []
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        for obj, payload in fut.result():
                            self.got[obj.oid] = (obj, payload)
                            self.below[obj.oid] = self.decode(obj, payload)
            finally:
                for fut in running:
                    fut.cancel()

    def decode(self, obj: PackedObject, payload: bytes) -> list[bytes]:
        """Check a downloaded record; queue what it names; return those fetched here."""
        out = []
        oid = obj.oid
        if oid in self.versions:
            with self.refusing("version", oid):
                v = decode_version(decode_payload(obj, payload))
            self.numbers[oid] = v.number
            self.claims[oid] = (v.tree, v.files, v.bytes)
            if v.parents:
                self.first_parent[oid] = v.parents[0]
            self.roots.setdefault(v.tree, oid)
            out += [p for p in v.parents if self.want(p, True, None)]
            if self.want(v.tree, False, (oid, b"")):
                out.append(v.tree)
            return out
        with self.refusing("tree", oid):
            tree = decode_tree(decode_payload(obj, payload))
            _check_chunk_sizes(tree, self.index)
        bad = root_refusal(tree)
        if bad is not None:
            self.refused_at_root[oid] = bad
        self.shapes[oid] = Shape.of(tree)
        version, path = self.reached.get(oid, (b"", b""))
        for e in tree.entries:
            if e.kind == Kind.DIR:
                where = (version, path + b"/" + e.name if path else e.name)
                if self.want(e.subtree, False, where):
                    out.append(e.subtree)
        return out

    @contextmanager
    def refusing(self, kind: str, oid: bytes) -> Iterator[None]:
        """Say which record of which remote was malformed (corruption names itself)."""
        try:
            yield
        except ReservedName as exc:
            raise self.reserved(oid, exc.name) from None
        except FormatError as exc:
            raise FormatError(
                f"{kind} {oid.hex()[:12]} on {self.remote.url}: {exc}; refusing it"
            ) from None

    def label(self, version: bytes) -> str:
        number = self.numbers.get(version)
        return f"v{number}" if number is not None else f"version {version.hex()[:12]}"

    def reserved(self, tree: bytes, name: bytes) -> ReservedName:
        version, path = self.reached.get(tree, (b"", b""))
        full = path + b"/" + name if path else name
        return ReservedName(
            f"{self.label(version)} holds {quote_name(full)}, which dvfs never stores: version "
            f"{version.hex()[:12]} on {self.remote.url} was refused and nothing was fetched",
            name,
        )

    def check(self) -> None:
        """The checks that need every record: roots, numbers and totals (module docstring)."""
        for root, version in self.roots.items():
            if root in self.got:
                bad = self.refused_at_root.get(root)
            else:  # a tree stored before, reused as a root
                bad = root_refusal(self.local_tree(root))
            if bad is not None:
                raise ReservedName(
                    f"{self.label(version)} holds {quote_name(bad)} at its root, which dvfs never "
                    "stores there (a mount lists versions under that name): version "
                    f"{version.hex()[:12]} on {self.remote.url} was refused and nothing "
                    "was fetched",
                    bad,
                )
        for version, number in self.numbers.items():
            parent = self.first_parent.get(version)
            expected = 1 if parent is None else self.number_of(parent) + 1
            if number != expected:
                raise FormatError(
                    f"version {version.hex()[:12]} on {self.remote.url} calls itself "
                    f"v{number}, but its place on its history makes it v{expected}: "
                    "refused, nothing was fetched"
                )

        done: dict[bytes, tuple[int, int]] = {}
        for version, (tree, files, size) in self.claims.items():
            held = totals(tree, self.shape, done)
            if held != (files, size):
                raise FormatError(
                    f"{self.label(version)} (version {version.hex()[:12]} on {self.remote.url}) "
                    f"claims {_count(files, 'file')} of {size:,} bytes, but its tree holds "
                    f"{_count(held[0], 'file')} of {held[1]:,} bytes: refused, nothing was fetched"
                )
        for tree in self.got.keys() - self.versions:
            totals(tree, self.shape, done)
            wrong = self.shapes[tree].wrong_folder(done)
            if wrong is not None:
                name, claimed, below = wrong
                version, path = self.reached.get(tree, (b"", b""))
                full = path + b"/" + name if path else name
                raise FormatError(
                    f"{self.label(version)} (version {version.hex()[:12]} on {self.remote.url}) "
                    f"says folder {quote_name(full + b'/')} holds {claimed:,} bytes, but the "
                    f"files below it hold {below:,}: refused, nothing was fetched"
                )

    def shape(self, tree: bytes) -> Shape:
        """What ``tree`` holds itself, fetched here or stored before."""
        got = self.shapes.get(tree)
        if got is None:
            got = self.shapes[tree] = Shape.of(self.local_tree(tree))
        return got

    def number_of(self, version: bytes) -> int:
        if version in self.numbers:
            return self.numbers[version]
        return decode_version(self.store.get(version)).number

    def local_tree(self, oid: bytes) -> Tree:
        try:
            return decode_tree(self.store.get(oid))
        except ReservedName as exc:
            raise self.reserved(oid, exc.name) from None

    def store_all(self, tips: list[bytes], report: Report) -> None:
        """Store what was fetched, each record after everything it names."""
        for oid in _children_first(tips, self.below):
            obj, payload = self.got[oid]
            report.bytes += len(payload)
            report.objects += 1
            kind = ObjKind.VERSION if oid in self.versions else ObjKind.TREE
            self.store.put_stored(oid, kind, obj.compression, payload, obj.raw_len)
        self.store.sync()  # durable before a ref names them (a power cut, not only a kill)


def fetch_records(
    store: ObjectStore,
    remote: RemoteRepo,
    tips: Iterable[bytes],
    index: dict[bytes, Located],
    jobs: int,
    report: Report,
) -> None:
    """Download and check every version and tree reachable from ``tips`` missing here.

    Pipelined: a record's children are requested as soon as it is decoded, not
    when its whole level has arrived, so decoding overlaps the requests still out
    and a deep tree costs no round trip per level. Nothing is stored until every
    record has arrived and passed the checks of the module docstring; then records
    are stored children first (subtrees before trees, a version's tree and parents
    before it), so that a record present locally always has everything below it.
    """
    fetch = _Fetch(store, remote, index)
    tips = list(dict.fromkeys(tips))  # (tags repeat heads)
    for t in tips:
        if store.has(t):
            fetch.check_local(t, True)
    wanted = [t for t in tips if not store.has(t)]
    fetch.run(wanted, jobs)
    fetch.check()
    fetch.store_all(wanted, report)


def _children_first(tips: list[bytes], below: dict[bytes, list[bytes]]) -> list[bytes]:
    """Every record reachable from ``tips`` in ``below``, each after all it names."""
    out: list[bytes] = []
    placed: set[bytes] = set()
    for tip in tips:
        stack = [(tip, iter(below[tip]))]
        placed.add(tip)
        while stack:
            oid, rest = stack[-1]
            nxt = next(rest, None)
            if nxt is None:
                stack.pop()
                out.append(oid)
            elif nxt not in placed:
                placed.add(nxt)
                stack.append((nxt, iter(below[nxt])))
    return out


def _check_chunk_sizes(tree: Tree, index: dict[bytes, Located]) -> None:
    """FormatError if a file entry claims a chunk size the remote's index contradicts."""
    for e in tree.entries:
        for c in e.chunks:
            hit = index.get(c.oid)
            if hit is not None and hit[1].raw_len != c.size:
                raise FormatError(
                    f"{quote_given(e.name)} claims chunk {c.oid.hex()} holds {c.size} bytes, "
                    f"but it holds {hit[1].raw_len}"
                )


# ----------------------------------------------------------------------- expansion


def check_expansion(
    hist: History, version: bytes, paths: list[bytes], label: str, *, paths_only: bool = False
) -> None:
    """UsageError if checking out ``paths`` of ``version`` (all if empty) expands too far.

    See the module docstring; ``label`` names the version in the message.
    ``paths_only`` checks the number of paths alone: a ``clone --no-checkout``
    writes no file, but records every path in the index.
    """
    tree = hist.version(version).tree
    if not paths:
        extent = hist.extent(tree)
    else:
        parts = []
        for p in paths:
            e = hist.lookup(tree, p)
            if e is None:
                continue
            if e.kind == Kind.DIR:
                parts.append(hist.extent(e.subtree))
            else:
                distinct = sum({c.oid: c.size for c in e.chunks}.values())
                parts.append(Extent(1, e.size, 0, 0, 1, distinct))
        extent = Extent(
            sum(x.files for x in parts), sum(x.bytes for x in parts),
            sum(x.dirs for x in parts), max((x.depth for x in parts), default=0),
            sum(x.distinct_entries for x in parts), sum(x.distinct_bytes for x in parts),
        )  # fmt: skip
    paths_made = extent.files + extent.dirs
    too_many = paths_made > max(EXPANSION_FLOOR_PATHS, EXPANSION_RATIO * extent.distinct_entries)
    too_big = not paths_only and extent.bytes > max(
        EXPANSION_FLOOR_BYTES, EXPANSION_RATIO * extent.distinct_bytes
    )
    if not (too_many or too_big):
        return
    ratio = (
        extent.bytes // max(1, extent.distinct_bytes)
        if too_big
        else paths_made // max(1, extent.distinct_entries)
    )
    made = _count(extent.files, "file") + (
        f" and {_count(extent.dirs, 'directory', 'directories')}" if extent.dirs else ""
    )
    raise UsageError(
        f"{label} would write {_size(extent.bytes)} in {made}, "
        f"{ratio:,} times the {_size(extent.distinct_bytes)} "
        f"of distinct data they are made of: refused, nothing was written; a remote built "
        "to fill the disk looks like this, so pass --yes only if you expect it"
    )


def _count(n: int, one: str, many: str = "") -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _size(n: int) -> str:
    """Bytes as a short human-readable size."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} PiB"
