"""Named remotes of a repository, the layout of a remote, and what is read from one.

Remotes live in ``.dvfs/config`` (JSON)::

    {"remotes": {"origin": {"url": "s3://bucket/prefix", "endpoint_url": null,
                            "region": null, "profile": null}},
     "default_remote": "origin"}

Only where to connect is stored; credentials always come from boto3's standard chain
(environment, profile, instance role) and are never written or printed: a URL or an
endpoint carrying ``user:password@`` is refused, and one stored by an older version
is shown redacted (:meth:`RemoteSpec.shown`) and refused when used.

Remote layout, under the URL's prefix::

    format                 the repository format record (JSON, ``vfs.repo``); sharers
                           must agree on it
    packs/<id>             pack files (``vfs.packs``), named by BLAKE3 of their bytes
    index/<id>             index segments, named by BLAKE3 of their bytes
    refs/heads/<branch>    "<64 hex>\\n"
    refs/tags/<tag>        "<64 hex>\\n"

Index segments (``index/<id>``, cached in ``.dvfs/remotes/<name>/index/<id>``), format
version 1, msgpack::

    {"v": 1, "packs": [[pack id (32 bytes), pack index file (vfs.packs)], ...]}

A push writes one segment per ``SEGMENT_TARGET`` bytes of them (a push of a few
terabytes writes several).

A remote is shared, so what is read from one is bounded before it is read and checked
before it is used (``docs/security.md`` states the whole threat model):

- the format record is at most ``FORMAT_LIMIT`` bytes, a ref ``REF_LIMIT``, an index
  segment ``SEGMENT_LIMIT`` (``Backend.get_small``: a larger object is refused from its
  size, not read); at most ``MAX_REFS`` branches or tags and ``MAX_SEGMENTS`` segments
  are listed; no object a segment describes may claim more than ``MAX_OBJECT`` bytes;
- a branch or tag name is used only if it is one a local ``dvfs branch``/``dvfs tag``
  would accept (``vfs.refs.check_ref_name``) and no other remote name is its folder
  (``main`` beside ``main/x`` keeps ``main``); a ref that does not hold a version id
  is skipped too. Each skipped ref gives one warning; the rest are used.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import msgpack

from vfs.backends import (
    Backend,
    LimitedBackend,
    ObjectInfo,
    open_backend,
    redact_url,
    refuse_credentials,
    valid_bucket,
)
from vfs.errors import (
    FormatError,
    ObjectCorrupt,
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    UsageError,
)
from vfs.ids import from_hex, hash_bytes, is_hex_prefix
from vfs.objects import Compression, ObjKind, decode_payload
from vfs.packs import PackedObject, decode_index
from vfs.quoting import quote_name
from vfs.refs import check_ref_name
from vfs.repo import Repository, format_record, parse_format


@dataclass(frozen=True)
class RemoteSpec:
    """Where a remote is and how to reach it."""

    name: str
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    def record(self) -> dict[str, Any]:
        """The config form (without the name, which is the key)."""
        rec = asdict(self)
        del rec["name"]
        return rec

    def shown(self) -> dict[str, Any]:
        """The config form to print: any ``user:password@`` in a URL hidden."""
        rec = self.record()
        for key in ("url", "endpoint_url"):
            if rec[key] is not None:
                rec[key] = redact_url(rec[key])
        return rec


SEGMENT_FORMAT = 1
# No object a remote describes may claim more than this (chunks are at most 16 MiB,
# vfs.chunking.MAX_SIZE_RANGE).
MAX_OBJECT = 64 * 1024 * 1024
# What a record of each kind may hold at most. A format record is ~200 bytes and a ref
# 65; a segment is 50 bytes per object plus 32 per pack, so SEGMENT_LIMIT holds about
# 5 million objects (5 TiB of 1 MiB chunks), and a push writes a new segment every
# SEGMENT_TARGET bytes (1.3 million objects), far below it.
FORMAT_LIMIT = 64 * 1024
REF_LIMIT = 1024
SEGMENT_LIMIT = 256 * 1024 * 1024
SEGMENT_TARGET = 64 * 1024 * 1024
# Listings longer than this are refused: a remote with more is damaged or hostile.
MAX_REFS = 100_000  # branches, or tags
MAX_SEGMENTS = 1_000_000  # one per push (or per SEGMENT_TARGET of one)
_KINDS = frozenset(int(k) for k in ObjKind)
_COMPRESSIONS = frozenset(int(c) for c in Compression)


def decode_segment(data: bytes, key: str) -> list[tuple[str, PackedObject]]:
    """The (pack id hex, object) pairs an index segment lists; FormatError if malformed."""
    out = []
    malformed = FormatError(f"remote index segment {key} is malformed: refusing it")
    try:
        rec = msgpack.unpackb(data, raw=False)
    except Exception:  # msgpack raises several unrelated types
        raise malformed from None
    if not isinstance(rec, dict) or set(rec) != {"v", "packs"} or rec["v"] != SEGMENT_FORMAT:
        raise malformed
    if not isinstance(rec["packs"], list):
        raise malformed
    for row in rec["packs"]:
        if not isinstance(row, list) or len(row) != 2:
            raise malformed
        pack_id, idx = row
        if not isinstance(pack_id, bytes) or len(pack_id) != 32 or not isinstance(idx, bytes):
            raise malformed
        for obj in decode_index(idx, key):
            if obj.stored_len > MAX_OBJECT or obj.raw_len > MAX_OBJECT:
                raise FormatError(f"{key}: object {obj.oid.hex()} claims to be too large")
            if obj.kind not in _KINDS or obj.compression not in _COMPRESSIONS:
                raise malformed
            out.append((pack_id.hex(), obj))
    return out


def cached_remote_ids(repo: Repository) -> set[bytes]:
    """Ids of objects the remotes hold, as far as the cached index segments tell."""
    out: set[bytes] = set()
    base = repo.dir / "remotes"
    if not base.is_dir():
        return out
    for seg in base.glob("*/index/*"):
        if not seg.name.startswith("."):
            try:
                out.update(obj.oid for _, obj in decode_segment(seg.read_bytes(), seg.name))
            except FormatError:
                continue
    return out


_URL_FORMS = "use s3://bucket/prefix, file:///absolute/path or a directory path"


def check_url(url: str) -> None:
    """UsageError unless ``url`` has the form of a remote URL (nothing is contacted)."""
    scheme, sep, rest = url.partition("://")
    if not url.strip():
        raise UsageError(f"empty remote URL: {_URL_FORMS}")
    refuse_credentials(url, "the remote URL")
    if not sep:
        return
    if scheme == "s3":
        bucket = rest.split("/", 1)[0]
        if not valid_bucket(bucket):
            raise UsageError(f"bad bucket name {bucket!r} in the remote URL {url!r}: {_URL_FORMS}")
        return
    if scheme == "file" and rest.startswith("/"):
        return
    raise UsageError(f"unsupported remote URL {url!r}: {_URL_FORMS}")


def remotes(repo: Repository) -> dict[str, RemoteSpec]:
    """Every configured remote by name."""
    out = {}
    table = repo.config().get("remotes") or {}
    if not isinstance(table, dict):
        raise FormatError(f"{repo.dir / 'config'}: remotes must be a JSON object: fix it")
    for name, rec in table.items():
        if isinstance(rec, dict) and isinstance(rec.get("url"), str):
            extra = [rec.get(k) for k in ("endpoint_url", "region", "profile")]
            if not all(x is None or isinstance(x, str) for x in extra):
                raise FormatError(
                    f"{repo.dir / 'config'}: remote {name!r} has a setting that is not text: "
                    "fix it, or remove and add the remote again"
                )
            out[name] = RemoteSpec(name, rec["url"], *extra)
    return out


def default_remote(repo: Repository) -> str | None:
    """The default remote's name, if one is set or only one exists."""
    cfg = repo.config()
    name = cfg.get("default_remote")
    known = remotes(repo)
    if isinstance(name, str) and name in known:
        return name
    return next(iter(known)) if len(known) == 1 else None


def get_remote(repo: Repository, name: str | None) -> RemoteSpec:
    """The remote called ``name`` (default: the default remote); UsageError if unknown."""
    known = remotes(repo)
    if name is None:
        name = default_remote(repo)
        if name is None:
            if not known:
                raise UsageError("no remote is configured: run `dvfs remote add NAME URL`")
            raise UsageError(
                "several remotes and no default: pass --remote NAME or run "
                "`dvfs remote default NAME`"
            )
    spec = known.get(name)
    if spec is None:
        have = ", ".join(sorted(known)) or "none"
        raise UsageError(f"unknown remote {name!r} (remotes: {have}): `dvfs remote add`")
    return spec


def add_remote(repo: Repository, spec: RemoteSpec, make_default: bool = False) -> None:
    """Record a new remote (the URL is checked for form, not contacted)."""
    check_ref_name(spec.name, "remote")
    check_url(spec.url)
    if spec.endpoint_url is not None:
        refuse_credentials(spec.endpoint_url, "the endpoint URL")
    with repo.locked():
        cfg = repo.config()
        table = cfg.setdefault("remotes", {})
        if spec.name in table:
            raise UsageError(f"remote {spec.name} already exists: remove it first")
        table[spec.name] = spec.record()
        if make_default or "default_remote" not in cfg:
            cfg["default_remote"] = spec.name
        repo.save_config(cfg)


def remove_remote(repo: Repository, name: str) -> None:
    """Forget a remote and its remote-tracking refs."""
    with repo.locked():
        cfg = repo.config()
        table = cfg.get("remotes") or {}
        if name not in table:
            raise UsageError(f"unknown remote {name!r}")
        del table[name]
        if cfg.get("default_remote") == name:
            cfg.pop("default_remote")
        repo.save_config(cfg)
        for branch in repo.refs.names(f"remotes/{name}"):
            ref = f"refs/remotes/{name}/{branch}"
            repo.refs.update(ref, None, repo.refs.get(ref))


def set_default(repo: Repository, name: str) -> None:
    """Make ``name`` the default remote."""
    get_remote(repo, name)
    with repo.locked():
        cfg = repo.config()
        cfg["default_remote"] = name
        repo.save_config(cfg)


def _named(name: str) -> str:
    """A ref name from a remote, quoted for a message (escaped if it holds controls)."""
    shown = quote_name(name)
    return shown if shown != name else f"'{name}'"


def usable_ref_names(names: Iterable[str], what: str) -> tuple[list[str], list[str]]:
    """The names among ``names`` that can be used here, sorted; and why the rest cannot.

    A name must pass ``check_ref_name`` (as a local one would) and must not lie below
    another name (``main/x`` beside ``main``): a directory cannot hold both files.
    """
    kept: list[str] = []
    taken: set[str] = set()
    notes = []
    for name in sorted(set(names)):
        try:
            check_ref_name(name, what)
        except UsageError:
            notes.append(f"remote {what} {_named(name)} skipped: not a valid {what} name here")
            continue
        parts = name.split("/")
        above = next(
            ("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in taken),
            None,
        )
        if above is not None:
            notes.append(
                f"remote {what} {_named(name)} skipped: it clashes with {what} {_named(above)}"
            )
            continue
        taken.add(name)
        kept.append(name)
    return kept, notes


# Ranges of one pack closer than this are fetched with one GET.
COALESCE_GAP = 256 * 1024
MAX_RANGE = 16 * 1024 * 1024

Located = tuple[str, PackedObject]  # (pack id hex, where in it)


def parse_ref(data: bytes, what: str) -> bytes:
    """The id a remote ref file holds; FormatError if it is not one."""
    try:
        return from_hex(data.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError is one too
        raise FormatError(f"remote ref {what} is not a version id: refusing it") from None


class RemoteRepo:
    """The layout above, on one backend, read within the bounds above."""

    def __init__(self, backend: Meter, cache: Path | None) -> None:
        self.backend = backend
        self.url = backend.url
        self.cache = cache

    def read_format(self) -> str | None:
        """The remote's format record, or None if it has none (empty remote)."""
        try:
            return self.backend.get_small("format", FORMAT_LIMIT).decode("utf-8", "replace")
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

    def refs(self, kind: str, skipped: list[str] | None = None) -> dict[str, bytes]:
        """Every usable ``heads`` or ``tags`` ref of the remote (see the module docstring).

        A ref that is not usable is left out, with one line saying why appended to
        ``skipped``.
        """
        base = f"refs/{kind}/"
        what = "branch" if kind == "heads" else "tag"
        names = []
        for n, key in enumerate(self.backend.list(base), 1):
            if n > MAX_REFS:
                raise RemoteError(
                    f"{self.url} lists more than {MAX_REFS:,} {what}es: refusing to read them "
                    "(the remote is damaged or hostile)"
                )
            names.append(key[len(base) :])
        usable, notes = usable_ref_names(names, what)
        out = {}
        for name in usable:
            key = base + name
            try:
                out[name] = parse_ref(self.backend.get_small(key, REF_LIMIT), key)
            except (FormatError, RemoteError) as exc:
                if isinstance(exc, RemoteNotFound):
                    continue  # deleted since it was listed
                notes.append(f"remote {what} {_named(name)} skipped: {exc}")
        if skipped is not None:
            skipped += [f"{self.url}: {note}" for note in notes]
        return out

    def ref_with_etag(self, kind: str, name: str) -> tuple[bytes | None, str | None]:
        """A ref's value and ETag, or (None, None) if it does not exist."""
        key = f"refs/{kind}/{name}"
        try:
            etag = self.backend.head(key).etag
            return parse_ref(self.backend.get_small(key, REF_LIMIT), key), etag
        except RemoteNotFound:
            return None, None

    def index(self) -> dict[bytes, Located]:
        """Merge every index segment: object id -> (pack id, location)."""
        out: dict[bytes, Located] = {}
        for n, key in enumerate(self.backend.list("index/"), 1):
            if n > MAX_SEGMENTS:
                raise RemoteError(
                    f"{self.url} lists more than {MAX_SEGMENTS:,} index segments: refusing "
                    "to read them (the remote is damaged or hostile)"
                )
            seg_id = key[len("index/") :]
            if len(seg_id) != 64 or not is_hex_prefix(seg_id):
                continue  # not a segment: segments are named by their hash
            data = self._segment(seg_id)
            for pack_id, obj in decode_segment(data, key):
                out.setdefault(obj.oid, (pack_id, obj))
        return out

    def _segment(self, seg_id: str) -> bytes:
        cached = self.cache / seg_id if self.cache else None
        if cached is not None and cached.exists():
            return cached.read_bytes()
        data = self.backend.get_small(f"index/{seg_id}", SEGMENT_LIMIT)
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


class Meter(Backend):
    """Counts requests and bytes through a backend (thread-safe)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.requests = 0
        self.sent = 0
        self.received = 0
        self._lock = threading.Lock()

    def _count(self, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests += 1
            self.sent += sent
            self.received += received

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._count(sent=len(data))

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, start, length)
        self._count(received=len(data))
        return data

    def head(self, key: str) -> ObjectInfo:
        self._count()
        return self.inner.head(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._count()
        for n, key in enumerate(self.inner.list(prefix), 1):
            if n % 1000 == 0:
                self._count()
            yield key

    def delete(self, key: str) -> None:
        self._count()
        self.inner.delete(key)

    def put_conditional(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        self._count(sent=len(data))
        return self.inner.put_conditional(key, data, if_match=if_match, if_none_match=if_none_match)


def connect(spec: RemoteSpec, jobs: int, *, create: bool = False) -> Meter:
    """A metered, concurrency-limited backend for ``spec``."""
    backend = open_backend(
        spec.url,
        endpoint_url=spec.endpoint_url,
        region=spec.region,
        profile=spec.profile,
        create=create,
    )
    return Meter(LimitedBackend(backend, max(1, jobs)))
