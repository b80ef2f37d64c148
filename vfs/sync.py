"""Sharing versions through a remote: push, fetch, pull and clone.

Remote layout, under the URL's prefix::

    format                 the repository format record (JSON); sharers must agree on it
    packs/<id>             pack files (``vfs.packs``), named by BLAKE3 of their bytes
    index/<id>             index segments, one per push, named by BLAKE3 of their bytes
    refs/heads/<branch>    "<64 hex>\\n"
    refs/tags/<tag>        "<64 hex>\\n"

Index segments are described in ``vfs.remotes``.

A push uploads packs first (skipping a pack whose name already exists, so an
interrupted push resumes without sending it again), then the index segment naming
them, and moves each ref last with a conditional write: If-Match on the ETag it read,
or If-None-Match to create. Whoever loses that race is told to pull, and nothing it
uploaded is visible under a ref. Readers merge every segment (cached locally under
``.dvfs/remotes/<name>/index``, since segments never change).

Everything downloaded is checked against its id before it is stored, trees are
decoded strictly (a name with ``/``, ``..`` or NUL is refused), and no object may
claim more than ``vfs.remotes.MAX_OBJECT`` bytes, so a hostile remote can neither corrupt the
local store nor make a client write outside its repository or exhaust its memory.
"""

from __future__ import annotations

import os
import shutil
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from vfs import checkout as co
from vfs.codec import Kind, Tree, decode_tree, decode_version
from vfs.errors import (
    FormatError,
    ObjectCorrupt,
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    RevisionNotFound,
    UsageError,
)
from vfs.history import History
from vfs.ids import hash_bytes
from vfs.objects import decode_payload
from vfs.packs import (
    PACK_MAGIC,
    TARGET_PACK_SIZE,
    PackedObject,
    encode_index,
    pack_trailer,
)
from vfs.refs import Head
from vfs.remotes import (
    SEGMENT_FORMAT,
    Meter,
    RemoteSpec,
    add_remote,
    connect,
    decode_segment,
)
from vfs.repo import Repository, format_record, parse_format
from vfs.worktree import Workers

# Packs a push holds in memory while they upload (besides the one being built): each is
# ~16 MiB, and two keep a link busy. A push of 20,000 small files to a local SeaweedFS
# took 3.4 s at 237 MiB peak RSS with 8, and 2.5 s at 126 MiB with 2.
PACKS_IN_FLIGHT = 2
# Ranges of one pack closer than this are fetched with one GET.
COALESCE_GAP = 256 * 1024
MAX_RANGE = 16 * 1024 * 1024

Located = tuple[str, PackedObject]  # (pack id hex, where in it)


def parse_ref(data: bytes, what: str) -> bytes:
    """The id a remote ref file holds; FormatError if it is not one."""
    text = data.decode("ascii", "replace").strip()
    try:
        oid = bytes.fromhex(text)
    except ValueError:
        oid = b""
    if len(oid) != 32:
        raise FormatError(f"remote ref {what} is not a version id: refusing it")
    return oid


class RemoteRepo:
    """The layout above, on one backend."""

    def __init__(self, backend: Meter, cache: Path | None) -> None:
        self.backend = backend
        self.url = backend.url
        self.cache = cache

    def read_format(self) -> str | None:
        """The remote's format record, or None if it has none (empty remote)."""
        try:
            return self.backend.get("format").decode("utf-8", "replace")
        except RemoteNotFound:
            # a missing bucket is reported as missing too: tell it from an empty remote
            for _ in self.backend.list("format"):
                break
            return None

    def ensure_format(self, repo: Repository) -> None:
        """Create the remote's format record, or check that it matches ours."""
        mine = format_record(repo.chunker.params)
        try:
            self.backend.put_conditional("format", mine.encode(), if_none_match=True)
            return
        except PreconditionFailed:
            pass
        self.check_format(repo)

    def check_format(self, repo: Repository) -> None:
        """FormatError unless the remote is empty or chunks like ``repo``."""
        text = self.read_format()
        if text is None:
            return
        theirs = parse_format(text, f"{self.url}/format")
        if theirs != repo.chunker.params:
            raise FormatError(
                f"{self.url} uses different chunking parameters than this repository: "
                "clone it instead of adding it as a remote"
            )

    def refs(self, kind: str) -> dict[str, bytes]:
        """Every ``heads`` or ``tags`` ref of the remote."""
        base = f"refs/{kind}/"
        out = {}
        for key in self.backend.list(base):
            name = key[len(base) :]
            out[name] = parse_ref(self.backend.get(key), key)
        return out

    def ref_with_etag(self, kind: str, name: str) -> tuple[bytes | None, str | None]:
        """A ref's value and ETag, or (None, None) if it does not exist."""
        key = f"refs/{kind}/{name}"
        try:
            etag = self.backend.head(key).etag
            return parse_ref(self.backend.get(key), key), etag
        except RemoteNotFound:
            return None, None

    def index(self) -> dict[bytes, Located]:
        """Merge every index segment: object id -> (pack id, location)."""
        out: dict[bytes, Located] = {}
        for key in self.backend.list("index/"):
            data = self._segment(key[len("index/") :])
            for pack_id, obj in decode_segment(data, key):
                out.setdefault(obj.oid, (pack_id, obj))
        return out

    def _segment(self, seg_id: str) -> bytes:
        cached = self.cache / seg_id if self.cache else None
        if cached is not None and cached.exists():
            return cached.read_bytes()
        data = self.backend.get(f"index/{seg_id}")
        if hash_bytes(data).hex() != seg_id:
            raise RemoteError(
                f"index segment {seg_id} on {self.url} is corrupt (hash mismatch): refusing it"
            )
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_name(f".tmp-{seg_id}")
            tmp.write_bytes(data)
            os.replace(tmp, cached)
        return data

    def ranges(
        self, wanted: Iterable[bytes], index: dict[bytes, Located]
    ) -> list[tuple[str, list[PackedObject]]]:
        """``wanted`` as ranged GETs: (pack id, objects), neighbours in a pack coalesced."""
        by_pack: dict[str, list[PackedObject]] = {}
        for oid in wanted:
            hit = index.get(oid)
            if hit is None:
                raise RemoteNotFound(f"object {oid.hex()} is not on {self.url}")
            by_pack.setdefault(hit[0], []).append(hit[1])
        ranges: list[tuple[str, list[PackedObject]]] = []
        for pack_id, objs in by_pack.items():
            objs.sort(key=lambda o: o.offset)
            group: list[PackedObject] = []
            for o in objs:
                if group and (
                    o.offset - (group[-1].offset + group[-1].stored_len) > COALESCE_GAP
                    or o.offset + o.stored_len - group[0].offset > MAX_RANGE
                ):
                    ranges.append((pack_id, group))
                    group = []
                group.append(o)
            if group:
                ranges.append((pack_id, group))
        return ranges

    def fetch_range(
        self, pack_id: str, group: list[PackedObject]
    ) -> list[tuple[PackedObject, bytes]]:
        """One ranged GET for ``group``; each object verified (RemoteError if corrupt)."""
        start = group[0].offset
        end = group[-1].offset + group[-1].stored_len
        data = self.backend.get(f"packs/{pack_id}", start, end - start)
        out = []
        for o in group:
            payload = data[o.offset - start : o.offset - start + o.stored_len]
            how = "truncated" if len(payload) < o.stored_len else ""
            if not how:
                try:
                    decode_payload(o, payload)
                except ObjectCorrupt:
                    how = "hash mismatch"
            if how:
                raise RemoteError(
                    f"object {o.oid.hex()} in pack {pack_id[:12]} on {self.url} is "
                    f"corrupt ({how}): refused, nothing of it was stored; push it again "
                    "from a repository that has it"
                )
            out.append((o, payload))
        return out

    def download(
        self,
        wanted: Iterable[bytes],
        index: dict[bytes, Located],
        pool: ThreadPoolExecutor,
        jobs: int,
    ) -> Iterator[tuple[PackedObject, bytes]]:
        """Fetch objects by id, several per ranged GET; each is verified before it is yielded.

        At most ``2 * jobs`` ranges are in flight, so memory stays bounded.
        """
        pending: deque[Future[list[tuple[PackedObject, bytes]]]] = deque()
        limit = 2 * jobs
        try:
            for pack_id, group in self.ranges(wanted, index):
                pending.append(pool.submit(self.fetch_range, pack_id, group))
                while len(pending) >= limit:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()


@dataclass
class Transfer:
    """What a push or pull moved."""

    objects: int = 0
    packs: int = 0
    bytes: int = 0
    requests: int = 0
    kept_packs: int = 0  # packs an interrupted push had uploaded already: not sent again
    kept_bytes: int = 0
    notes: list[str] = field(default_factory=list)


def _cache_dir(repo: Repository, name: str) -> Path:
    return repo.dir / "remotes" / name / "index"


def is_ancestor(hist: History, old: bytes, new: bytes) -> bool:
    """True if ``old`` is ``new`` or on its first-parent chain (both known locally)."""
    if not hist.store.has(old):
        return False
    target = hist.version(old).number
    for oid, v in hist.chain(new):
        if v.number <= target:
            return oid == old
    return False


# ------------------------------------------------------------------------------- push


def _closure(
    hist: History, tip: bytes, remote: dict[bytes, Located]
) -> tuple[list[bytes], list[bytes]]:
    """Objects reachable from ``tip`` that the remote lacks, in a stable order.

    Two lists: versions and trees, then file chunks (in file order). A push packs
    every record before any chunk, so that the records sit together at the start
    of the first pack and a fetch (a URL mount's start) gets them in a few ranged
    GETs instead of one per tree.

    A version or tree the remote has is taken as complete below it: pushes upload a
    whole closure before naming it in a segment.
    """
    records: list[bytes] = []
    chunks: list[bytes] = []
    seen: set[bytes] = set()
    versions = []
    for oid, v in hist.chain(tip):
        if oid in remote:
            break
        versions.append((oid, v))
    for oid, v in versions:
        stack = [v.tree]
        while stack:
            tid = stack.pop()
            if tid in remote or tid in seen:
                continue
            seen.add(tid)
            records.append(tid)
            for e in hist.tree(tid).entries:
                if e.kind == Kind.DIR:
                    stack.append(e.subtree)
                for c in e.chunks:
                    if c.oid not in remote and c.oid not in seen:
                        seen.add(c.oid)
                        chunks.append(c.oid)
        records.append(oid)
    return records, chunks


def _build_packs(repo: Repository, ids: list[bytes]) -> Iterator[tuple[bytes, list[PackedObject]]]:
    """Pack bytes of ~16 MiB, copying payloads exactly as stored locally."""
    parts: list[bytes] = [PACK_MAGIC]
    objs: list[PackedObject] = []
    offset = len(PACK_MAGIC)
    for oid in ids:
        obj, payload = repo.store.read_stored(oid)
        objs.append(
            PackedObject(oid, obj.kind, obj.compression, offset, obj.stored_len, obj.raw_len)
        )
        parts.append(payload)
        offset += len(payload)
        if offset >= TARGET_PACK_SIZE:
            parts.append(pack_trailer(objs))
            yield b"".join(parts), objs
            parts, objs, offset = [PACK_MAGIC], [], len(PACK_MAGIC)
    if objs:
        parts.append(pack_trailer(objs))
        yield b"".join(parts), objs


def push(
    repo: Repository,
    spec: RemoteSpec,
    branches: list[str],
    workers: Workers,
    *,
    all_branches: bool = False,
    tags: bool = False,
    jobs: int = 8,
) -> Transfer:
    """Send branches (default: the current one) and optionally tags to a remote."""
    meter = connect(spec, jobs, create=True)
    remote = RemoteRepo(meter, _cache_dir(repo, spec.name))
    hist = repo.history
    local = repo.refs.branches()
    if all_branches:
        branches = sorted(local)
    elif not branches:
        branches = [hist.head().branch]
    report = Transfer()
    with repo.locked():
        remote.ensure_format(repo)
        plan: list[tuple[str, bytes, bytes | None, str | None]] = []
        for b in branches:
            tip = local.get(b)
            if tip is None:
                raise UsageError(f"branch {b} has no versions to push")
            theirs, etag = remote.ref_with_etag("heads", b)
            if theirs == tip:
                report.notes.append(f"{b}: already up to date")
                continue
            if theirs is not None and not is_ancestor(hist, theirs, tip):
                raise UsageError(
                    f"remote {b} has versions you don't have: run `dvfs pull` "
                    "(nothing was changed on the remote)"
                )
            plan.append((b, tip, theirs, etag))
        tag_plan = repo.refs.tags() if tags else {}
        if not plan and not tag_plan:
            report.notes.append("nothing to push")
            report.requests = meter.requests
            return report
        index = remote.index()
        records: list[bytes] = []
        chunks: list[bytes] = []
        for tip in [t for _, t, _, _ in plan] + list(tag_plan.values()):
            more_records, more_chunks = _closure(hist, tip, index)
            records += more_records
            chunks += more_chunks
        ids = list(dict.fromkeys(records + chunks))  # records first; each object once
        del records, chunks
        hist.tree.cache_clear()  # the decoded trees are not needed while uploading
        segment = _upload(repo, remote, ids, workers, jobs, report)
        if segment:
            key = hash_bytes(segment).hex()
            meter.put(f"index/{key}", segment)
        for b, tip, theirs, etag in plan:
            data = (tip.hex() + "\n").encode()
            try:
                if theirs is None:
                    meter.put_conditional(f"refs/heads/{b}", data, if_none_match=True)
                else:
                    meter.put_conditional(f"refs/heads/{b}", data, if_match=etag)
            except PreconditionFailed:
                raise UsageError(
                    f"remote {b} has versions you don't have: run `dvfs pull` "
                    "(it moved while pushing; your data is uploaded, the branch was not moved)"
                ) from None
            ref = f"refs/remotes/{spec.name}/{b}"
            repo.refs.update(ref, tip, repo.refs.get(ref))
            report.notes.append(f"{b}: {hist.label(tip)} {tip.hex()[:10]}")
        for t, oid in tag_plan.items():
            data = (oid.hex() + "\n").encode()
            try:
                meter.put_conditional(f"refs/tags/{t}", data, if_none_match=True)
            except PreconditionFailed:
                theirs, _ = remote.ref_with_etag("tags", t)
                if theirs != oid:
                    report.notes.append(f"tag {t} differs on the remote: left as it is")
    report.requests = meter.requests
    return report


def _upload(
    repo: Repository,
    remote: RemoteRepo,
    ids: list[bytes],
    workers: Workers,
    jobs: int,
    report: Transfer,
) -> bytes:
    """Upload the objects in packs (skipping packs already there); return the segment."""
    meter = remote.backend
    total = sum(repo.store.locate(oid)[1].stored_len for oid in ids)
    workers.progress.start("uploading", len(ids), total)
    entries: list[list[bytes]] = []

    def send(data: bytes, pack_id: str) -> bool:
        """Upload a pack unless it is there; True if it was sent."""
        try:
            meter.head(f"packs/{pack_id}")
            return False  # uploaded by an interrupted push: same objects, bytes and name
        except RemoteNotFound:
            meter.put(f"packs/{pack_id}", data)
            return True

    def settle(fut: Future[bool], n: int, size: int) -> None:
        if fut.result():
            report.packs += 1
            report.objects += n
            report.bytes += size
        else:
            report.kept_packs += 1
            report.kept_bytes += size
        workers.progress.advance(n, size)

    in_flight = max(1, min(jobs, PACKS_IN_FLIGHT))
    with ThreadPoolExecutor(in_flight) as pool:
        pending: deque[tuple[Future[bool], int, int]] = deque()
        for data, objs in _build_packs(repo, ids):
            pack_id = hash_bytes(data)
            entries.append([pack_id, encode_index(objs)])
            pending.append((pool.submit(send, data, pack_id.hex()), len(objs), len(data)))
            while len(pending) >= in_flight:
                settle(*pending.popleft())
        while pending:
            settle(*pending.popleft())
    workers.progress.done()
    if not entries:
        return b""
    out: bytes = msgpack.packb({"v": SEGMENT_FORMAT, "packs": entries}, use_bin_type=True)
    return out


# ------------------------------------------------------------------------------- fetch


@dataclass
class FetchResult:
    """What a fetch learned."""

    heads: dict[str, bytes]
    tags: dict[str, bytes]
    index: dict[bytes, Located]
    transfer: Transfer


def _fetch_metadata(
    repo: Repository,
    remote: RemoteRepo,
    tips: Iterable[bytes],
    index: dict[bytes, Located],
    jobs: int,
    report: Transfer,
) -> None:
    """Download every version and tree reachable from ``tips`` that is missing here.

    Pipelined: a record's children are requested as soon as it is decoded, not
    when its whole level has arrived, so decoding overlaps the requests still out
    and a deep tree costs no round trip per level. Records are stored children
    first (subtrees before trees, a version's tree and parents before it), so that
    a record present locally always has everything below it.
    """
    store = repo.store
    got: dict[bytes, tuple[PackedObject, bytes]] = {}
    below: dict[bytes, list[bytes]] = {}  # record -> the records it names, fetched here
    is_version: set[bytes] = set()
    queue: list[bytes] = []

    def want(oid: bytes, version: bool) -> bool:
        """Queue ``oid`` unless it is stored or already wanted; True if fetched here."""
        if oid in below:
            return True
        if store.has(oid):
            return False
        if version:
            is_version.add(oid)
        below[oid] = []
        queue.append(oid)
        return True

    tips = list(dict.fromkeys(t for t in tips if not store.has(t)))  # tags repeat heads
    for t in tips:
        want(t, True)
    running: set[Future[list[tuple[PackedObject, bytes]]]] = set()
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        try:
            while queue or running:
                if queue:
                    for pack_id, group in remote.ranges(queue, index):
                        running.add(pool.submit(remote.fetch_range, pack_id, group))
                    queue = []
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    for obj, payload in fut.result():
                        got[obj.oid] = (obj, payload)
                        below[obj.oid] = _decode_record(obj, payload, obj.oid in is_version,
                                                        index, remote.url, want)  # fmt: skip
        finally:
            for fut in running:
                fut.cancel()
    for oid in _children_first(tips, below):
        obj, payload = got[oid]
        report.bytes += len(payload)
        report.objects += 1
        store.put_stored(oid, obj.kind, obj.compression, payload, obj.raw_len)
    store.flush()


def _decode_record(
    obj: PackedObject,
    payload: bytes,
    version: bool,
    index: dict[bytes, Located],
    url: str,
    want: Callable[[bytes, bool], bool],
) -> list[bytes]:
    """Check a downloaded version or tree; queue what it names; return those fetched here."""
    out = []
    if version:
        with _refusing("version", obj.oid, url):
            v = decode_version(decode_payload(obj, payload))
        for p in v.parents:
            if want(p, True):
                out.append(p)
        if want(v.tree, False):
            out.append(v.tree)
        return out
    with _refusing("tree", obj.oid, url):
        tree = decode_tree(decode_payload(obj, payload))
        _check_chunk_sizes(tree, index)
    for e in tree.entries:
        if e.kind == Kind.DIR and want(e.subtree, False):
            out.append(e.subtree)
    return out


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


@contextmanager
def _refusing(kind: str, oid: bytes, url: str) -> Iterator[None]:
    """Say which record of which remote was malformed (corruption names itself)."""
    try:
        yield
    except FormatError as exc:
        raise FormatError(f"{kind} {oid.hex()[:12]} on {url}: {exc}; refusing it") from None


def _check_chunk_sizes(tree: Tree, index: dict[bytes, Located]) -> None:
    """FormatError if a file entry claims a chunk size the remote's index contradicts."""
    for e in tree.entries:
        for c in e.chunks:
            hit = index.get(c.oid)
            if hit is not None and hit[1].raw_len != c.size:
                raise FormatError(
                    f"{e.name!r} claims chunk {c.oid.hex()} holds {c.size} bytes, "
                    f"but it holds {hit[1].raw_len}"
                )


def fetch_locked(repo: Repository, spec: RemoteSpec, meter: Meter, jobs: int) -> FetchResult:
    """Fetch refs, versions and trees (no file data); caller holds the lock."""
    remote = RemoteRepo(meter, _cache_dir(repo, spec.name))
    remote.check_format(repo)
    heads = remote.refs("heads")
    tags = remote.refs("tags")
    report = Transfer()
    index = remote.index() if heads or tags else {}
    _fetch_metadata(repo, remote, [*heads.values(), *tags.values()], index, jobs, report)
    for b, oid in heads.items():
        ref = f"refs/remotes/{spec.name}/{b}"
        repo.refs.update(ref, oid, repo.refs.get(ref))
    for t, oid in tags.items():
        mine = repo.refs.get(f"refs/tags/{t}")
        if mine is None:
            repo.refs.update(f"refs/tags/{t}", oid, None)
        elif mine != oid:
            report.notes.append(f"tag {t} differs from the remote's: kept yours")
    report.requests = meter.requests
    return FetchResult(heads, tags, index, report)


def fetch(repo: Repository, spec: RemoteSpec, jobs: int = 8) -> FetchResult:
    """Fetch refs, versions and trees from a remote."""
    meter = connect(spec, jobs)
    with repo.locked():
        return fetch_locked(repo, spec, meter, jobs)


def download_data(
    repo: Repository,
    meter: Meter,
    index: dict[bytes, Located],
    target: bytes,
    prefixes: list[bytes],
    workers: Workers,
    jobs: int,
    report: Transfer,
) -> None:
    """Download the chunks of version ``target`` (below ``prefixes``) missing here."""
    hist = repo.history
    store = repo.store
    need: dict[bytes, int] = {}
    for path, e in hist.walk(hist.version(target).tree):
        if prefixes and not any(not p or path == p or path.startswith(p + b"/") for p in prefixes):
            continue
        for c in e.chunks:
            if c.oid not in need and not store.has(c.oid):
                need[c.oid] = c.size
    if not need:
        return
    remote = RemoteRepo(meter, None)
    total = sum(index[o][1].stored_len for o in need if o in index)
    workers.progress.start("downloading", len(need), total)
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for obj, payload in remote.download(list(need), index, pool, jobs):
            store.put_stored(obj.oid, obj.kind, obj.compression, payload, obj.raw_len)
            report.objects += 1
            report.bytes += len(payload)
            workers.progress.advance(1, len(payload))
    workers.progress.done()
    store.flush()


# ------------------------------------------------------------------------------- pull


@dataclass
class PullResult:
    """What a pull did."""

    transfer: Transfer
    checkout: co.CheckoutReport | None
    message: str


def _is_path_of(repo: Repository, version: bytes, arg: str) -> bool:
    """True if ``arg`` names a path of ``version`` (relative to the working directory)."""
    try:
        rel = repo.rel(arg)
    except UsageError:
        return False
    hist = repo.history
    return hist.lookup(hist.version(version).tree, rel) is not None


def pull(
    repo: Repository,
    spec: RemoteSpec,
    rev: str | None,
    paths: list[str],
    workers: Workers,
    *,
    jobs: int = 8,
    force: bool = False,
) -> PullResult:
    """Fetch, download what REV (or PATHs of it) needs, and bring the working tree there."""
    meter = connect(spec, jobs)
    hist = repo.history
    with repo.locked():
        got = fetch_locked(repo, spec, meter, jobs)
        branch = hist.head().branch
        remote_tip = got.heads.get(branch)
        if rev is not None:
            try:
                target = hist.resolve(rev)
            except RevisionNotFound:
                # `dvfs pull data/x`: a path of the remote branch, not a revision.
                if remote_tip is None or not _is_path_of(repo, remote_tip, rev):
                    raise
                paths, rev, target = [rev, *paths], None, remote_tip
        elif remote_tip is None:
            raise UsageError(f"{spec.name} has no branch {branch}: nothing to pull")
        else:
            target = remote_tip
        prefixes = [repo.rel(p) for p in paths]
        download_data(repo, meter, got.index, target, prefixes, workers, jobs, got.transfer)
    got.transfer.requests = meter.requests
    if paths or rev is not None:
        report = co.checkout(repo, rev or target.hex(), paths, workers, force=force)
        return PullResult(got.transfer, report, "")
    local = repo.refs.get(f"refs/heads/{branch}")
    if local == target:
        return PullResult(got.transfer, None, f"{branch} is up to date")
    if local is not None and is_ancestor(hist, target, local):
        return PullResult(
            got.transfer, None, f"{branch} is ahead of {spec.name}/{branch}: `dvfs push` it"
        )
    if local is not None and not is_ancestor(hist, local, target):
        raise UsageError(
            f"{branch} and {spec.name}/{branch} have diverged ({hist.label(local)} "
            f"{local.hex()[:10]} here, {hist.label(target)} {target.hex()[:10]} there): "
            f"{branch} was left as it is; the remote's versions are reachable as "
            f"{spec.name}/{branch}"
        )
    report = co.fast_forward(repo, branch, local, target, workers, force=force)
    return PullResult(got.transfer, report, "")


# ------------------------------------------------------------------------------- clone


def default_dir(url: str) -> str:
    """The directory a clone of ``url`` goes to when none is given."""
    name = url.rstrip("/").rsplit("/", 1)[-1].split("://")[-1]
    return name or "dvfs-clone"


def clone(
    url: str,
    directory: Path,
    workers: Workers,
    *,
    rev: str | None = None,
    no_checkout: bool = False,
    endpoint_url: str | None = None,
    jobs: int = 8,
) -> tuple[Repository, Transfer, str]:
    """Make a new repository from a remote and check out its main branch (or ``rev``)."""
    spec = RemoteSpec("origin", url, endpoint_url)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise UsageError(f"{directory} exists and is not an empty directory")
    meter = connect(spec, jobs)
    probe = RemoteRepo(meter, None)
    text = probe.read_format()
    if text is None:
        raise UsageError(f"{url} holds no dvfs repository (no format record)")
    params = parse_format(text, f"{url}/format")
    made = not directory.exists()
    try:
        repo = Repository.init(directory, chunker=params)
        add_remote(repo, spec, make_default=True)
        with repo.locked():
            got = fetch_locked(repo, spec, meter, jobs)
            if not got.heads:
                raise UsageError(f"{url} has no branches yet: nothing to clone")
            branch = "main" if "main" in got.heads else sorted(got.heads)[0]
            tip = got.heads[branch]
            repo.refs.update(f"refs/heads/{branch}", tip, None)
            repo.refs.set_head(Head(branch))
            target = repo.history.resolve(rev) if rev else tip
            if not no_checkout:
                download_data(repo, meter, got.index, target, [], workers, jobs, got.transfer)
        if not no_checkout:
            if rev:
                co.checkout(repo, rev, [], workers)
            else:
                co.switch(repo, branch, workers, force=True)
    except BaseException:
        if made:
            shutil.rmtree(directory, ignore_errors=True)
        else:
            for child in directory.iterdir():
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    got.transfer.requests = meter.requests
    return repo, got.transfer, branch


def log_remote(repo: Repository, spec: RemoteSpec, jobs: int = 8) -> str:
    """Fetch metadata and return the remote-tracking ref to list for the current branch."""
    got = fetch(repo, spec, jobs)
    branch = repo.history.head().branch
    if branch not in got.heads:
        if not got.heads:
            raise UsageError(f"{spec.name} has no versions yet")
        branch = "main" if "main" in got.heads else sorted(got.heads)[0]
    return f"{spec.name}/{branch}"
