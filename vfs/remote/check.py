"""``dvfs fsck --remote NAME``: check a remote in place, writing nothing anywhere.

What a clone, fetch or push relies on is checked as they read it (``vfs.remote.reader``,
``vfs.remote.manifests``), but nothing is written to the remote nor to this repository
(no cached segment, no remote-tracking branch, no record of where the remote is):

- every branch and tag under ``refs/`` holds a version id, and the closure of each
  (versions and their parents, trees, chunks) is listed in the remote's index, where an
  object of a pack a gc manifest condemns, and a record a manifest condemns, count as
  gone (as a pusher counts them); an object listed in a pack the listing of ``packs/``
  lacks (lost) and in another that is there is read from that one, as a remote gc
  reads it (the lost pack is a problem of its own, which that gc mends by dropping
  its listings); versions and trees are read (ranged GETs) and
  decoded to walk them, chunks are only looked up; a version's totals (files, bytes)
  are those of its tree, and a folder's size the bytes below it, as a fetch checks
  them (``vfs.remote.receive``);
- every index segment is its id and decodes; every gc manifest decodes;
- every pack the index names that no manifest condemns exists and is at least as long
  as its entries say (offset plus length of the last object, then a header record each
  and the footer), from the listing of ``packs/`` (no download); one shorter is read
  (footer and header) to tell a truncated pack from a whole one its index segment
  misplaces objects in, which names the segment (``vfs.remote.reader.index_fault``);
- with ``data``: each such pack's footer and header are read and checked (its checksum
  and name), and every object the index lists in it is read back with ranged GETs of
  at most ``MAX_RANGE`` bytes and verified against its id (``DATA_JOBS`` packs at a
  time, so memory stays bounded whatever the remote holds);
- with ``digests``: every distinct file of several chunks is read whole, in order,
  and one whose bytes are not the digest its version records is named: fetches take
  such a file (each chunk is its id), checkouts and reads refuse it. A run of its
  chunks lying in order in one pack (each at most ``COALESCE_GAP`` bytes after the one
  before, at most ``MAX_RANGE`` from the first's start to the last's end) is one
  ranged GET (``RemoteChunks.stream_run``: from S3 received a piece at a time), each
  chunk verified; ``jobs`` files at a time. It downloads every such file once per distinct
  version of it, on top of ``data``'s reading of every pack.

Each problem is one line saying what is wrong and what can be done. A push uploads only
what the remote's index lacks below a version the remote's index lacks (it takes a
version or tree the remote has as complete below it), so it mends a ref naming a
version that is not there only when it pushes that version anew (a tag does: a push
of a branch at that same version finds it up to date); a pack missing from the listing
of ``packs/`` is no copy to it, and a push of a new version then walks below every
version and tree and sends what only that pack held again; a damaged pack that a ref
reaches needs a backup or a new remote.
"""

from __future__ import annotations

import contextlib
import shlex
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from vfs.backends.base import validate_key
from vfs.errors import (
    DvfsError,
    FormatError,
    ObjectCorrupt,
    ObjectMissing,
    RemoteError,
    RemoteNotFound,
    RemoteObjectRefused,
    UsageError,
)
from vfs.model.codec import ChunkRef, Kind, Tree, decode_tree
from vfs.model.ids import hash_bytes, hasher
from vfs.model.version_codec import Version, decode_version
from vfs.quoting import quote_name
from vfs.remote.config import Meter, RemoteSpec, connect
from vfs.remote.layout import (
    FORMAT_KEY,
    INDEX,
    MAX_REFS,
    MAX_SEGMENTS,
    PACKS,
    REF_LIMIT,
    SEGMENTS_TOTAL_LIMIT,
    bounded,
    decode_segment,
    pack_key,
    pack_of,
    packs_listed,
    parse_ref,
    refs_prefix,
    segment_of,
)
from vfs.remote.manifests import decode_manifest, read_manifests
from vfs.remote.read import RemoteChunks
from vfs.remote.reader import (
    COALESCE_GAP,
    MAX_RANGE,
    SEGMENT_RELISTS,
    Located,
    RemoteRepo,
    index_fault,
    mend_hint,
    read_segment,
    segments_too_large,
    unnamed_ref_hint,
    usable_ref_names,
    whole_pack,
)
from vfs.repo.history import Shape, totals
from vfs.repo.repository import Repository, parse_format
from vfs.store.compression import decode_payload
from vfs.store.objects import ObjKind
from vfs.store.packs import FOOTER, RECORD, PackedObject, name_matches, parse_footer, parse_header
from vfs.store.reader import false_digest

SHOWN = 20  # problems of one kind named one by one; the rest are counted in one line
DATA_JOBS = 4  # packs read at a time with --data (each at most MAX_RANGE in memory)
HASH_PIECE = 8 * 1024 * 1024  # a format 1 pack is hashed whole, this much at a time
_KIND: dict[int, str] = {ObjKind.CHUNK: "chunk", ObjKind.TREE: "tree", ObjKind.VERSION: "version"}


@dataclass
class RemoteFsckReport:
    """What ``fsck_remote`` checked and found."""

    remote: str
    data: bool
    branches: int = 0
    tags: int = 0
    versions: int = 0
    trees: int = 0
    chunks: int = 0
    segments: int = 0
    objects_indexed: int = 0
    packs: int = 0  # packs the index names that no manifest condemns
    pack_bytes: int = 0
    condemned_packs: int = 0
    unindexed_packs: int = 0  # in packs/ but in no segment: a gc frees them
    objects_verified: int = 0
    bytes_verified: int = 0
    files_read_whole: int = 0  # with ``digests``
    requests: int = 0  # made to the remote
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """The report as ``dvfs fsck --remote --json`` prints it."""
        return {
            "remote": self.remote, "clean": self.clean, "data": self.data,
            "branches": self.branches, "tags": self.tags, "versions": self.versions,
            "trees": self.trees, "chunks": self.chunks, "segments": self.segments,
            "objects_indexed": self.objects_indexed, "packs": self.packs,
            "pack_bytes": self.pack_bytes, "condemned_packs": self.condemned_packs,
            "unindexed_packs": self.unindexed_packs,
            "objects_verified": self.objects_verified, "bytes_verified": self.bytes_verified,
            "files_read_whole": self.files_read_whole, "requests": self.requests,
            "problems": self.problems, "warnings": self.warnings,
        }  # fmt: skip


def _q(name: str) -> str:
    """A name from the remote, quoted for a message (escaped if it holds controls)."""
    shown = quote_name(name)
    return shown if shown != name else f"'{name}'"


class _Problems:
    """Problem lines, at most ``SHOWN`` of each kind, the rest counted."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.more: dict[str, tuple[int, str]] = {}
        self.shown: dict[str, int] = {}
        self.kinds: list[tuple[str, str]] = []  # every problem, shown or not
        self.summaries: dict[str, str] = {}

    def add(self, kind: str, line: str, summary: str) -> None:
        self.kinds.append((kind, line))
        self.summaries[kind] = summary
        n = self.shown.get(kind, 0)
        self.shown[kind] = n + 1
        if n < SHOWN:
            self.lines.append(line)
        else:
            extra, _ = self.more.get(kind, (0, summary))
            self.more[kind] = (extra + 1, summary)

    def without(self, kind: str) -> _Problems:
        """These problems but those of ``kind`` (read again)."""
        out = _Problems()
        for k, line in self.kinds:
            if k != kind:
                out.add(k, line, self.summaries[k])
        return out

    def all(self) -> list[str]:
        return self.lines + [f"{n:,} more {summary}" for n, summary in self.more.values()]


def fsck_remote(
    repo: Repository,
    spec: RemoteSpec,
    *,
    data: bool = False,
    digests: bool = False,
    jobs: int = 8,
) -> RemoteFsckReport:
    """Check remote ``spec`` in place (see the module docstring); nothing is written."""
    report = RemoteFsckReport(spec.name, data)
    meter = connect(spec, jobs)
    remote = RemoteRepo(meter, None)  # (no cache: nothing is written here)
    problems = _Problems()
    fix_new = (
        "from a repository that has the data push it all to a new remote (`dvfs remote add "
        "NAME URL && dvfs push --remote NAME --all --tags`) and use that one"
    )
    text = remote.read_format()
    if text is None and next(iter(meter.list(INDEX)), None) is None:
        raise UsageError(
            f"{remote.url} holds no dvfs repository (no format record, no index): nothing "
            "to check; a first `dvfs push` makes one"
        )
    try:
        if text is None:
            raise FormatError(f"{remote.url} has an index but no format record")
        parse_format(text, f"{remote.url}/format")
    except FormatError as exc:
        problems.add(
            "format",
            f"{exc}: fetches refuse it; put back the format record of a repository that "
            f"shares this one's chunking (`{FORMAT_KEY}`, from a backup or a clone's "
            f".dvfs/format), or {fix_new}",
            "",
        )

    condemned_packs: set[str] = set()
    condemned_records: set[bytes] = set()
    for key, raw, _ in read_manifests(meter):
        try:
            packs, records = decode_manifest(raw, key)
        except FormatError as exc:
            problems.add(
                "manifest",
                f"{exc}: pushes stop on it; `dvfs gc --remote {shlex.quote(spec.name)}` deletes it",
                "",
            )
            continue
        condemned_packs |= packs
        condemned_records |= records

    tips = _refs(meter, spec.name, report, problems)
    for _ in range(SEGMENT_RELISTS + 1):
        try:
            home, entries = _index(meter, report, problems, condemned_packs, condemned_records)
            break
        except RemoteNotFound:  # a segment went while read: a gc replaced it, list again
            report.segments = 0
            problems = problems.without("segment")
    else:
        raise RemoteError(
            f"the index segments of {remote.url} kept changing while they were read (a "
            "remote gc running?): run the check again once it is over"
        )

    sizes = _pack_sizes(meter)
    _rehome(home, entries, sizes, condemned_packs)
    walk = _Walk(remote, home, problems, fix_new)
    labels = {oid: label for label, (_, oid) in reversed(list(tips.items()))}
    for label, (kind, oid) in tips.items():
        if oid in home:
            continue
        name = label.split(" ", 1)[1]
        if kind == "tags":
            how = (
                f"from a clone that holds it and the tag, `dvfs push --remote "
                f"{shlex.quote(spec.name)} --tags` uploads it"
            )
        else:
            how = (
                f"from a clone that holds it, `dvfs tag KEEP {oid.hex()[:12]} && dvfs push "
                f"--remote {shlex.quote(spec.name)} --tags` uploads it (a push of the "
                "branch at that same version finds it up to date and uploads nothing)"
            )
        problems.add(
            "ref",
            f"{label} names version {oid.hex()[:12]}, which the remote's index does not "
            f"hold (an interrupted push, or data lost): {how}; or write in "
            f"{quote_name(refs_prefix(kind) + name)} a version the remote holds",
            "",
        )
    walk.run([(labels[oid], oid) for oid in labels if oid in home], jobs)
    walk.check_totals()
    report.versions, report.trees, report.chunks = walk.versions, walk.trees, len(walk.chunks)

    _packs(meter, spec.name, report, problems, entries, condemned_packs, walk, sizes)
    if data:
        _verify(meter, spec.name, report, problems, entries, condemned_packs, walk, sizes)
    if digests:
        _read_whole(remote, home, report, problems, walk, jobs)
    report.problems = problems.all()
    report.requests = meter.requests
    return report


def _read_whole(
    remote: RemoteRepo,
    home: dict[bytes, Located],
    report: RemoteFsckReport,
    problems: _Problems,
    walk: _Walk,
    jobs: int,
) -> None:
    """Read every distinct file of several chunks whole, in order (``jobs`` files at a
    time, each a run of its chunks at a time: see the module docstring), and name each
    one whose bytes are not its digest. A file with a chunk the index lacks is left to
    the walk's problem about it."""
    chunks = RemoteChunks(lambda: remote, follow=False)
    chunks.set_index(home)

    def digest_of(refs: tuple[ChunkRef, ...]) -> bytes:
        whole = hasher()
        for pack_id, run in _runs([home[c.oid] for c in refs]):
            with contextlib.closing(chunks.stream_run(pack_id, run)) as pieces:
                for _, got in pieces:
                    for item, _ in got:
                        if isinstance(item, ObjectCorrupt):
                            raise item
                        whole.update(item)
        return whole.digest()

    files = [
        (f, place) for f, place in walk.files.items() if all(c.oid in walk.chunks for c in f[1])
    ]
    with ThreadPoolExecutor(jobs, "dvfs-fsck-digest") as pool:
        done = [pool.submit(digest_of, refs) for (_, refs), _ in files]
        for ((digest, _), place), fut in zip(files, done, strict=True):
            try:
                got = fut.result()
            except (ObjectCorrupt, ObjectMissing, RemoteError) as exc:
                problems.add(
                    "digest",
                    f"{place} could not be read whole: {exc}",
                    "files could not be read whole or are not the digest their version records",
                )
                continue
            report.files_read_whole += 1
            if got != digest:
                problems.add(
                    "digest",
                    f"{false_digest(place, got, digest, 'its')}: checkouts and reads of it "
                    "fail; point the refs that reach it at other versions, or delete them",
                    "files could not be read whole or are not the digest their version records",
                )


def _runs(located: list[Located]) -> Iterator[tuple[str, list[PackedObject]]]:
    """``located`` (a file's chunks, in order) as runs of neighbours: chunks of one pack,
    each at most ``COALESCE_GAP`` bytes after the end of the one before it, at most
    ``MAX_RANGE`` bytes from the first's start to the last's end (one chunk if larger)."""
    run: list[PackedObject] = []
    pack = ""
    for pack_id, o in located:
        if run and (
            pack_id != pack
            or not 0 <= o.offset - (run[-1].offset + run[-1].stored_len) <= COALESCE_GAP
            or o.offset + o.stored_len - run[0].offset > MAX_RANGE
        ):
            yield pack, run
            run = []
        pack = pack_id
        run.append(o)
    if run:
        yield pack, run


def _refs(
    meter: Meter, name: str, report: RemoteFsckReport, problems: _Problems
) -> dict[str, tuple[str, bytes]]:
    """Each readable branch and tag: label (``branch 'main'``) -> (kind, version id)."""
    out: dict[str, tuple[str, bytes]] = {}
    for kind, what in (("heads", "branch"), ("tags", "tag")):
        base = refs_prefix(kind)
        names = []
        for key in bounded(meter.list(base), MAX_REFS, meter.url, f"refs under {base}"):
            names.append(key[len(base) :])
        _, notes = usable_ref_names(names, what)
        report.warnings += [f"{note} (clones and fetches skip it)" for note in notes]
        for ref in sorted(names):
            key = base + ref
            try:
                validate_key(key)
            except UsageError:
                continue  # no key dvfs reads or writes (clones skip it: warned above)
            label = f"{what} {_q(ref)}"
            shown = shlex.quote(f"{name}/{ref}" if kind == "heads" else ref)
            try:
                oid = parse_ref(meter.get_small(key, REF_LIMIT), key)
            except RemoteNotFound:
                continue  # deleted since it was listed
            except (FormatError, RemoteError) as exc:
                by_hand = unnamed_ref_hint(ref, what)
                problems.add(
                    "ref",
                    f"{label} cannot be read ({exc}): "
                    + (
                        by_hand
                        or f"write in {quote_name(key)} the id it should hold (`dvfs log -n 1 "
                        f"{shown}` in a clone that fetched it shows it), or delete it (`dvfs "
                        f"push --remote {shlex.quote(name)} --delete {shlex.quote(key)}`)"
                    ),
                    "",
                )
                continue
            out[label] = (kind, oid)
            if kind == "heads":
                report.branches += 1
            else:
                report.tags += 1
    return out


def _index(
    meter: Meter,
    report: RemoteFsckReport,
    problems: _Problems,
    condemned_packs: set[str],
    condemned_records: set[bytes],
) -> tuple[dict[bytes, Located], dict[str, dict[bytes, PackedObject]]]:
    """(object -> where readers find it, pack -> its entries) from every index segment.

    An object is found in the first segment that lists it in a pack no manifest
    condemns (then in one that is there: :func:`_rehome`); a condemned record is found
    nowhere (a pusher ignores both).
    RemoteNotFound if a listed segment is gone when read (a gc replaced it)."""
    home: dict[bytes, Located] = {}
    entries: dict[str, dict[bytes, PackedObject]] = {}
    total = 0
    for key in bounded(meter.list(INDEX), MAX_SEGMENTS, meter.url, "index segments"):
        seg_id = segment_of(key)
        if seg_id is None:
            continue
        try:
            raw = read_segment(meter, key, SEGMENTS_TOTAL_LIMIT - total)
        except RemoteNotFound:
            raise
        except RemoteError as exc:
            problems.add("segment", f"{exc}; " + mend_hint(key), "")
            continue
        if raw is None:  # (read no further than the bound)
            raise segments_too_large(meter.url, SEGMENTS_TOTAL_LIMIT)
        total += len(raw)
        report.segments += 1
        if hash_bytes(raw).hex() != seg_id:
            problems.add(
                "segment",
                f"index segment {seg_id[:12]} is corrupt (hash mismatch): readers refuse "
                "the remote; " + mend_hint(key),
                "",
            )
            continue
        try:
            rows = decode_segment(raw, key)
        except FormatError as exc:
            problems.add("segment", f"{exc}; " + mend_hint(key), "")
            continue
        for pack_id, obj in rows:
            entries.setdefault(pack_id, {}).setdefault(obj.oid, obj)
            if pack_id not in condemned_packs and obj.oid not in condemned_records:
                home.setdefault(obj.oid, (pack_id, obj))
    report.objects_indexed = len(home)
    return home, entries


def read_group(
    meter: Meter, pack_id: str, group: list[PackedObject]
) -> list[tuple[PackedObject, bytes | None, str]]:
    """One ranged GET for ``group``: each object decoded and verified, or why not."""
    start = group[0].offset
    end = group[-1].offset + group[-1].stored_len
    try:
        got = meter.get(pack_key(pack_id), start, end - start)
    except RemoteNotFound:
        return [(o, None, f"its pack {pack_id[:12]} is missing") for o in group]
    except RemoteObjectRefused as exc:  # (a link or a FIFO in a directory's packs/)
        return [(o, None, f"its pack {pack_id[:12]} cannot be read ({exc})") for o in group]
    out: list[tuple[PackedObject, bytes | None, str]] = []
    for o in group:
        try:
            raw = decode_payload(o, got[o.offset - start : o.offset - start + o.stored_len])
        except ObjectCorrupt as exc:
            out.append((o, None, f"it is corrupt in pack {pack_id[:12]} ({exc.detail})"))
        else:
            out.append((o, raw, ""))
    return out


class _Walk:
    """The versions, trees and chunks the refs reach, as far as the index holds them."""

    def __init__(
        self, remote: RemoteRepo, home: dict[bytes, Located], problems: _Problems, fix: str
    ) -> None:
        self.remote = remote
        self.home = home
        self.problems = problems
        self.fix = fix
        self.seen: set[bytes] = set()
        self.place: dict[bytes, str] = {}  # record -> where it was first reached
        self.is_version: set[bytes] = set()
        self.queue: list[bytes] = []
        self.versions = 0
        self.trees = 0
        self.chunks: set[bytes] = set()  # reached and indexed
        # every distinct file of several chunks -> where it was first reached
        self.files: dict[tuple[bytes, tuple[ChunkRef, ...]], str] = {}
        self.records: set[bytes] = set()  # reached and indexed
        self._live: dict[str, int] | None = None
        self.claims: list[tuple[str, bytes, Version]] = []  # (label, id, version) read
        self.shapes: dict[bytes, Shape] = {}  # tree read -> what it holds itself

    def want(self, oid: bytes, version: bool, place: str) -> None:
        if oid in self.seen:
            return
        self.seen.add(oid)
        what = "version" if version else "tree"
        if oid not in self.home:
            self.problems.add(
                what,
                f"{what} {oid.hex()[:12]} ({place}) is not in the remote's index: a push "
                f"cannot mend it (it takes what is above it as complete); {self.fix}",
                f"{what}(s) are not in the remote's index",
            )
            return
        self.records.add(oid)
        self.place[oid] = place
        if version:
            self.is_version.add(oid)
        self.queue.append(oid)

    def run(self, tips: list[tuple[str, bytes]], jobs: int) -> None:
        for label, oid in tips:
            self.want(oid, True, label)
        running: set[Future[list[tuple[PackedObject, bytes | None, str]]]] = set()
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            try:
                while self.queue or running:
                    if self.queue:
                        for pack_id, group in self.remote.ranges(self.queue, self.home):
                            running.add(
                                pool.submit(read_group, self.remote.backend, pack_id, group)
                            )
                        self.queue = []
                    done, running = wait(running, return_when=FIRST_COMPLETED)
                    for fut in done:
                        for obj, raw, why in fut.result():
                            self.decode(obj, raw, why)
            finally:
                for fut in running:
                    fut.cancel()

    def decode(self, obj: PackedObject, raw: bytes | None, why: str) -> None:
        oid = obj.oid
        place = self.place[oid]
        what = "version" if oid in self.is_version else "tree"
        try:
            if raw is not None and what == "version":
                v = decode_version(raw)
                self.versions += 1
                label = f"v{v.number}"
                self.claims.append((f"{label} {oid.hex()[:12]} ({place})", oid, v))
                for n, p in enumerate(v.parents):
                    self.want(p, True, f"parent {n + 1} of {label}")
                self.want(v.tree, False, f"{label}:")
            elif raw is not None:
                tree = decode_tree(raw)
                self.shapes[oid] = Shape.of(tree)
                self.walk_tree(tree, place)
        except DvfsError as exc:
            why = f"it does not decode ({exc})"
        if why:
            self.problems.add(
                "unreadable",
                f"{what} {oid.hex()[:12]} ({place}) cannot be read: {why}; " + self.fix,
                "versions or trees cannot be read",
            )

    def check_totals(self) -> None:
        """A problem for each version read whose files and bytes are not its tree's, and
        each tree read holding a folder whose size is not the bytes below it (one whose
        trees could not all be read is named for that already)."""
        done: dict[bytes, tuple[int, int]] = {}
        for label, _, v in self.claims:
            try:
                held = totals(v.tree, self.shapes.__getitem__, done)
            except (KeyError, FormatError):
                continue
            if held != (v.files, v.bytes):
                self.problems.add(
                    "totals",
                    f"{label} claims {_files(v.files, v.bytes)}, but its tree holds "
                    f"{_files(*held)}: clones and fetches refuse it; point the refs that reach "
                    "it at other versions, or delete them",
                    "versions claim totals their trees do not hold",
                )
        for tree, shape in self.shapes.items():
            try:
                totals(tree, self.shapes.__getitem__, done)
            except (KeyError, FormatError):
                continue  # (below it, a tree that could not be read: named already)
            wrong = shape.wrong_folder(done)
            if wrong is not None:
                name, claimed, below = wrong
                self.problems.add(
                    "totals",
                    f"tree {tree.hex()[:12]} ({self.place[tree]}) says folder "
                    f"{quote_name(name + b'/')} holds {claimed:,} bytes, but the files below "
                    f"it hold {below:,}: clones and fetches refuse it; point the refs that "
                    "reach it at other versions, or delete them",
                    "versions claim totals their trees do not hold",
                )

    def walk_tree(self, tree: Tree, place: str) -> None:
        self.trees += 1
        for e in tree.entries:
            path = place + quote_name(e.name)
            if e.kind == Kind.DIR:
                self.want(e.subtree, False, path + "/")
                continue
            if len(e.chunks) > 1:
                self.files.setdefault((e.digest, e.chunks), path)
            for c in e.chunks:
                if c.oid in self.seen:
                    continue
                self.seen.add(c.oid)
                hit = self.home.get(c.oid)
                if hit is None:
                    self.problems.add(
                        "chunk",
                        f"chunk {c.oid.hex()[:12]} of {path} is not in the remote's index: a "
                        "push cannot mend it (the remote's index holds the versions above "
                        f"it); {self.fix}",
                        "chunks are not in the remote's index",
                    )
                elif hit[1].raw_len != c.size:
                    self.problems.add(
                        "chunk",
                        f"{path} claims chunk {c.oid.hex()[:12]} holds {c.size:,} bytes, but "
                        f"the remote's index says {hit[1].raw_len:,}: clones refuse it; "
                        + self.fix,
                        "chunks are not in the remote's index",
                    )
                else:
                    self.chunks.add(c.oid)

    def live(self, pack_id: str) -> int:
        """How many objects the refs reach are read from pack ``pack_id``."""
        if self._live is None:
            self._live = {}
            for oid in (*self.records, *self.chunks):
                p = self.home[oid][0]
                self._live[p] = self._live.get(p, 0) + 1
        return self._live.get(pack_id, 0)


def _files(files: int, size: int) -> str:
    return f"{files:,} file{'s' if files != 1 else ''} of {size:,} bytes"


def _pack_hint(name: str, pack_id: str, live: int, gone: bool) -> str:
    if live:
        return "the refs reach objects in it; " + mend_hint(pack_key(pack_id))
    does = (
        "drops its index entries"
        if gone
        else "condemns it once it is older than the grace, and deletes it a grace later"
    )
    return f"no ref reaches it: `dvfs gc --remote {shlex.quote(name)}` {does}"


def _min_size(objs: dict[bytes, PackedObject]) -> int:
    """The least a pack holding ``objs`` can measure: its last object, then a header
    record for each (a pack may hold more than its entries say) and the footer."""
    end = max((o.offset + o.stored_len for o in objs.values()), default=4)
    return end + RECORD.size * len(objs) + FOOTER.size


def _pack_sizes(meter: Meter) -> dict[str, int]:
    """The size of each pack the listing of ``packs/`` gives (read after the index: a
    pack a segment lists was uploaded before it, so it is there unless lost)."""
    sizes: dict[str, int] = {}
    for key, info in packs_listed(meter.list_info(PACKS, etags=False), meter.url):
        pack_id = pack_of(key)
        if pack_id is not None:
            sizes[pack_id] = info.size
    return sizes


def _rehome(
    home: dict[bytes, Located],
    entries: dict[str, dict[bytes, PackedObject]],
    sizes: dict[str, int],
    condemned: set[str],
) -> None:
    """Find an object whose pack is not there (lost) in another pack that lists it, is
    there and is not condemned, as a remote gc reads it (which then drops the lost
    pack's listings): the lost pack is a problem of its own, not every object in it."""
    lost = {oid for oid, (pack_id, _) in home.items() if pack_id not in sizes}
    if not lost:
        return
    for pack_id, objs in entries.items():
        if pack_id in sizes and pack_id not in condemned:
            for oid in lost & objs.keys():
                home[oid] = (pack_id, objs[oid])
                lost.discard(oid)


def _packs(
    meter: Meter,
    name: str,
    report: RemoteFsckReport,
    problems: _Problems,
    entries: dict[str, dict[bytes, PackedObject]],
    condemned: set[str],
    walk: _Walk,
    sizes: dict[str, int],
) -> None:
    """Each pack the index names exists and is long enough (``sizes``: from the listing,
    :func:`_pack_sizes`)."""
    report.condemned_packs = len(condemned & sizes.keys())
    report.unindexed_packs = len(sizes.keys() - entries.keys())
    for pack_id in sorted(entries.keys() - condemned):
        objs = entries[pack_id]
        report.packs += 1
        size = sizes.get(pack_id)
        if size is None:
            hint = _pack_hint(name, pack_id, walk.live(pack_id), True)
            problems.add(
                "pack",
                f"pack {pack_id[:12]} is missing ({len(objs):,} object(s) indexed in it): " + hint,
                "packs are missing or truncated",
            )
            continue
        report.pack_bytes += size
        need = _min_size(objs)
        if size < need:
            faults = _index_faults(meter, pack_id, objs.values(), size)
            if faults:
                problems.add("segment", faults, "")
                continue
            hint = _pack_hint(name, pack_id, walk.live(pack_id), False)
            problems.add(
                "pack",
                f"pack {pack_id[:12]} is truncated: {size:,} bytes, its index entries need "
                f"at least {need:,}: " + hint,
                "packs are missing or truncated",
            )


def _index_faults(
    meter: Meter, pack_id: str, objs: Iterable[PackedObject], size: int
) -> str | None:
    """What to say if the index places some of ``objs`` where whole pack ``pack_id``
    does not hold them: the first such entry's segment is named; None if none."""
    listed = whole_pack(meter, pack_id, size)
    wrong = [] if listed is None else [o for o in objs if o not in listed]
    if not wrong:
        return None
    more = f" ({len(wrong):,} entries of it in all)" if len(wrong) > 1 else ""
    return (index_fault(meter, pack_id, wrong[0], size) or "") + more


def _verify(
    meter: Meter,
    name: str,
    report: RemoteFsckReport,
    problems: _Problems,
    entries: dict[str, dict[bytes, PackedObject]],
    condemned: set[str],
    walk: _Walk,
    sizes: dict[str, int],
) -> None:
    """``--data``: read back every object of every pack the index names (module docstring)."""
    todo = [p for p in sorted(entries.keys() - condemned) if p in sizes]
    with ThreadPoolExecutor(DATA_JOBS) as pool:
        for pack_id, (count, nbytes, bad) in zip(
            todo,
            pool.map(lambda p: _verify_pack(meter, p, sizes[p], entries[p]), todo),
            strict=True,
        ):
            report.objects_verified += count
            report.bytes_verified += nbytes
            if bad:
                faults = _index_faults(meter, pack_id, entries[pack_id].values(), sizes[pack_id])
                if faults:
                    # the pack is whole: what does not verify, the index misplaces
                    if faults not in problems.lines:  # (told already from its size)
                        problems.add("segment", faults, "")
                    continue
                hint = _pack_hint(name, pack_id, walk.live(pack_id), False)
                problems.add(
                    "data",
                    f"pack {pack_id[:12]} is damaged: {'; '.join(bad)}: " + hint,
                    "packs are damaged",
                )


def _verify_pack(
    meter: Meter, pack_id: str, size: int, objs: dict[bytes, PackedObject]
) -> tuple[int, int, list[str]]:
    """(objects verified, their bytes, what is wrong) for one pack."""
    key = pack_key(pack_id)
    bad: list[str] = []
    what = f"pack {pack_id[:12]}"
    try:
        footer = meter.get(key, size - FOOTER.size, FOOTER.size) if size >= FOOTER.size else b""
        _, hlen, hhash = parse_footer(footer, size, what)
        header = meter.get(key, size - FOOTER.size - hlen, hlen)
        listed = parse_header(header, hhash, size - FOOTER.size - hlen, what)
        if not name_matches(pack_id, hhash, lambda: _whole_hash(meter, key, size)):
            bad.append("its name is not the hash of its header nor of its bytes")
        in_header = set(listed)
        wrong = [o for o in objs.values() if o not in in_header]
        if wrong:
            bad.append(
                f"{len(wrong):,} index entr{'y' if len(wrong) == 1 else 'ies'} disagree "
                f"with its header (first: {_KIND.get(wrong[0].kind, 'object')} "
                f"{wrong[0].oid.hex()[:12]})"
            )
    except FormatError as exc:
        bad.append(str(exc).removeprefix(f"{what}: "))
    except RemoteNotFound:
        return 0, 0, []  # deleted since it was listed (a gc): not this check's to judge
    verified, nbytes, corrupt = 0, 0, []
    for group in range_groups(sorted(objs.values(), key=lambda o: o.offset)):
        for o, raw, why in read_group(meter, pack_id, group):
            if raw is None:
                corrupt.append((o, why))
            else:
                verified += 1
                nbytes += o.raw_len
    if corrupt:
        o, why = corrupt[0]
        first = why.replace(f" in pack {pack_id[:12]}", "").removeprefix("it is ")
        bad.append(
            f"{len(corrupt):,} object(s) do not verify (first: {_KIND.get(o.kind, 'object')} "
            f"{o.oid.hex()[:12]}, {first})"
        )
    return verified, nbytes, bad


def range_groups(objs: list[PackedObject]) -> Iterator[list[PackedObject]]:
    """Neighbouring objects in ranges of at most ``MAX_RANGE`` bytes (one if larger)."""
    group: list[PackedObject] = []
    for o in objs:
        if group and o.offset + o.stored_len - group[0].offset > MAX_RANGE:
            yield group
            group = []
        group.append(o)
    if group:
        yield group


def _whole_hash(meter: Meter, key: str, size: int) -> bytes:
    """BLAKE3 of a whole pack (a format 1 pack's name), read ``HASH_PIECE`` at a time."""
    h = hasher()
    for start in range(0, size, HASH_PIECE):
        h.update(meter.get(key, start, min(HASH_PIECE, size - start)))
    return bytes(h.digest())
