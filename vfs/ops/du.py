"""``dvfs du``: how much the versions hold, and what each one costs the store.

For a set of versions (the revisions given, else every version reachable from a
branch, tag, remote-tracking branch or a detached HEAD):

- **logical**: the bytes of every file of every version, as a checkout of each
  would write them (the versions' own ``bytes`` fields);
- **distinct**: the raw bytes of their distinct chunks: what is left after dedup;
- **stored**: what those chunks, trees and versions take in the local store's packs
  (compressed); chunks not stored here (a partial clone) are counted apart;
- **unique** to each version: the stored bytes of the chunks that no other version
  reachable from a ref (nor the staging index) uses: what dropping that version
  alone and running ``dvfs gc`` would free;
- the biggest files of those versions (not of the others, which count only for what
  is unique), each distinct content once, with a path and version holding it (the
  first met walking from the refs: usually the newest).

Each tree is read once (only the fields used here, each checked for its type); a
version's walk visits a subtree shared within it once. 20,000 files x 5 versions
(half the files replaced in each): see the commit that added this module.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import compress, repeat
from typing import Any

import msgpack

from vfs._os.gc_pause import paused_gc
from vfs.errors import FormatError
from vfs.model.ids import ID_BYTES
from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore

BIGGEST = 10


@dataclass
class VersionUsage:
    """One version's figures."""

    oid: bytes
    label: str
    logical: int
    unique: int  # stored bytes no other version (nor the index) uses


@dataclass
class Usage:
    """What ``dvfs du`` reports."""

    versions: list[VersionUsage] = field(default_factory=list)
    logical: int = 0
    distinct: int = 0
    stored: int = 0
    records_stored: int = 0  # of that, trees and versions
    not_local: int = 0  # raw bytes of chunks the local store does not hold
    # size, path, label and id of the version (each branch numbers its own chain)
    biggest: list[tuple[int, bytes, str, bytes]] = field(default_factory=list)
    # the versions above named by a revision that reads them here (History.revision):
    # another branch's vN names another version here
    revisions: dict[bytes, str] = field(default_factory=dict)

    @property
    def dedup_ratio(self) -> float:
        """Logical bytes per distinct byte (1.0: no sharing)."""
        return self.logical / self.distinct if self.distinct else 1.0

    @property
    def compression_ratio(self) -> float:
        """Distinct raw chunk bytes per stored chunk byte (local chunks only)."""
        stored_chunks = self.stored - self.records_stored
        local = self.distinct - self.not_local
        return local / stored_chunks if stored_chunks else 1.0

    def as_json(self) -> dict[str, Any]:
        """The report as ``dvfs du --json`` prints it."""
        return {
            "logical": self.logical,
            "distinct": self.distinct,
            "stored": self.stored,
            "not_local": self.not_local,
            "dedup_ratio": round(self.dedup_ratio, 3),
            "compression_ratio": round(self.compression_ratio, 3),
            "versions": [
                {
                    "id": v.oid.hex(),
                    "version": v.label,
                    "revision": self.revisions[v.oid],
                    "logical": v.logical,
                    "unique": v.unique,
                }
                for v in self.versions
            ],
            "biggest": [
                {
                    "path": p.decode(errors="surrogateescape"),
                    "size": s,
                    "version": label,
                    "revision": self.revisions[oid],
                    "id": oid.hex(),
                }
                for s, p, label, oid in self.biggest
            ],
        }


def ref_versions(repo: Repository) -> list[bytes]:
    """Every version reachable from a branch, tag, remote-tracking branch or HEAD."""
    refs = repo.refs
    tips = []
    head = refs.head()
    if head.detached is not None:
        tips.append(head.detached)
    for kind in ("heads", "tags", "remotes"):
        for name in refs.names(kind):
            oid = refs.get(f"refs/{kind}/{name}")
            if oid is not None:
                tips.append(oid)
    seen: dict[bytes, None] = {}
    hist = repo.history
    while tips:
        oid = tips.pop()
        if oid in seen:
            continue
        seen[oid] = None
        tips.extend(hist.version(oid).parents)
    return list(seen)


@dataclass(slots=True)
class _Dir:
    """What du needs of one tree record."""

    subtrees: list[tuple[bytes, bytes]]  # (name, id)
    chunks: dict[bytes, int]  # id -> raw size, of every file's chunks
    files: list[tuple[int, bytes, bytes]]  # (size, digest, name)
    top: int  # the size of its largest file (-1: none)


def _read_dir(store: ObjectStore, tid: bytes) -> _Dir:
    """The parts of a tree du uses, unpacked by shape (FormatError if it has another).

    The record was checked in full by ``vfs.model.codec.decode_tree`` when it was stored or
    fetched, and its bytes are verified against its id when read; decoding it in full
    again cost du five times this for trees it only counts. No Python statement runs per
    file: the entries are split into columns (``zip``), the files picked out with
    ``compress``, and the types checked over the whole tree at once (``map`` runs in C).
    """
    try:
        entries = msgpack.unpackb(store.get(tid), raw=False, strict_map_key=True)["entries"]
        fine = isinstance(entries, list) and set(map(len, entries)) <= {6}
        names, kinds, _, sizes, _, payloads = zip(*entries, strict=True) if entries else ((),) * 6
        is_file = list(map((0).__eq__, kinds))
        is_dir = list(map((1).__eq__, kinds))
        held = list(compress(payloads, is_file))
        fine = fine and set(map(len, held)) <= {2}
        digests, css = zip(*held, strict=True) if held else ((), ())
        chunks: dict[bytes, int] = {}
        deque(map(chunks.update, css), 0)
        file_sizes = list(compress(sizes, is_file))
        files = list(zip(file_sizes, digests, compress(names, is_file), strict=True))
        subtrees = list(zip(compress(names, is_dir), compress(payloads, is_dir), strict=True))
        fine = fine and set(map(type, chunks)) <= {bytes} and set(map(type, file_sizes)) <= {int}
        fine = fine and set(map(type, chunks.values())) <= {int}
        fine = fine and min(chunks.values(), default=0) >= 0
        fine = fine and all(isinstance(t, bytes) and len(t) == ID_BYTES for _, t in subtrees)
    except (ValueError, TypeError, KeyError, msgpack.UnpackException):
        fine = False
    if not fine:
        raise FormatError(f"tree {tid.hex()[:12]} is malformed: run `dvfs fsck`")
    return _Dir(subtrees, chunks, files, max(file_sizes, default=-1))


def _once(sets: Iterable[Iterable[bytes]]) -> set[bytes]:
    """The ids that are in exactly one of ``sets`` (set operations only, no per-id loop)."""
    once: set[bytes] = set()
    more: set[bytes] = set()
    for s in sets:
        more |= once.intersection(s)
        once.symmetric_difference_update(s)
        once -= more
    return once


def usage(repo: Repository, revs: list[str]) -> Usage:
    """The figures for ``revs`` (all versions reachable from refs when empty).

    The cyclic garbage collector is paused meanwhile: du builds some 100,000 acyclic
    objects (tree columns, id sets, the store's index), and the collector's passes over
    them took a quarter of its time.
    """
    with paused_gc():
        return _usage(repo, revs)


def _usage(repo: Repository, revs: list[str]) -> Usage:
    hist = repo.history
    store = repo.store
    every = ref_versions(repo)
    chosen = list(dict.fromkeys(hist.resolve(r) for r in revs)) if revs else every
    counted = list(dict.fromkeys([*chosen, *every]))  # (the chosen first)
    is_chosen = set(chosen).__contains__
    dirs: dict[bytes, _Dir] = {}
    sizes: dict[bytes, int] = {}

    def read(tid: bytes) -> _Dir:
        d = dirs.get(tid)
        if d is None:
            d = dirs[tid] = _read_dir(store, tid)
            sizes.update(d.chunks)
        return d

    sets: list[set[bytes]] = []  # the chunks of each counted version (and the index)
    per_version: dict[bytes, set[bytes]] = {}
    out = Usage()
    big: list[tuple[int, bytes, bytes, str, bytes]] = []  # min-heap: size, digest, path, label, id
    big_seen: set[bytes] = set()
    walked: set[bytes] = set()  # trees already looked through for the biggest files
    records: set[bytes] = set(chosen)  # versions and trees of the chosen versions
    for oid in counted:
        v = hist.version(oid)
        label = f"v{v.number}"
        biggest = is_chosen(oid)  # (the others count only for what is unique)
        mine: set[bytes] = set()
        seen: set[bytes] = set()
        stack = [(v.tree, b"")]
        while stack:
            tid, prefix = stack.pop()
            if tid in seen:
                continue
            seen.add(tid)
            d = read(tid)
            mine.update(d.chunks)
            stack.extend((sub, prefix + name + b"/") for name, sub in d.subtrees)
            if not biggest or tid in walked:
                continue
            walked.add(tid)
            if len(big) == BIGGEST and d.top <= big[0][0]:
                continue  # no file here would enter the list
            for size, digest, name in d.files:
                if digest in big_seen or (len(big) == BIGGEST and size <= big[0][0]):
                    continue
                item = (size, digest, prefix + name, label, oid)
                if len(big) < BIGGEST:
                    heapq.heappush(big, item)
                else:
                    big_seen.discard(heapq.heapreplace(big, item)[1])
                big_seen.add(digest)
        sets.append(mine)
        if oid in per_version or oid not in chosen:
            continue
        per_version[oid] = mine
        records |= seen
        out.logical += v.bytes
    sets.append({c[0] for _, row in repo.index().rows() for c in row[8]})
    single = _once(sets)
    wanted: set[bytes] = set().union(*per_version.values())
    stored = store.stored_lengths(wanted | records)
    out.distinct = sum(map(sizes.__getitem__, wanted))
    out.not_local = sum(map(sizes.__getitem__, wanted.difference(stored)))
    out.records_stored = sum(map(stored.get, records, repeat(0)))
    out.stored = sum(stored.values())
    for oid in chosen:
        v = hist.version(oid)
        unique = sum(map(stored.get, per_version[oid] & single, repeat(0)))
        out.versions.append(VersionUsage(oid, f"v{v.number}", v.bytes, unique))
    out.biggest = [(s, p, label, oid) for s, _, p, label, oid in sorted(big, reverse=True)]
    named = {*chosen, *(oid for *_, oid in out.biggest)}
    out.revisions = {oid: hist.revision(oid) for oid in named}
    return out
