"""Named remotes of a repository, the layout of a remote, and what is read from one.

Remotes live in two places. Those shared with everyone who clones the git repository
are in ``dvfs.toml`` at the root (``vfs.shared``: committed with the code); those of
this clone alone are in ``.dvfs/config`` (JSON)::

    {"remotes": {"origin": {"url": "s3://bucket/prefix", "endpoint_url": null,
                            "region": null, "profile": null}},
     "default_remote": "origin"}

A local remote overrides the shared one of the same name, and a local
``default_remote`` the shared one. ``dvfs remote add`` writes to ``dvfs.toml`` inside
a git work tree (where sharing it is the point), to ``.dvfs/config`` outside one or
with ``--local``.

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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import msgpack

from vfs.backends import (
    Backend,
    ObjectInfo,
    open_backend,
    redact_url,
    refuse_credentials,
)
from vfs.errors import (
    FormatError,
    ObjectCorrupt,
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    UsageError,
)
from vfs.gitlink import SHARED_FILE, in_git
from vfs.ids import from_hex, hash_bytes, is_hex_prefix
from vfs.objects import Compression, ObjKind, decode_payload
from vfs.packs import PackedObject, decode_index
from vfs.quoting import quote_name
from vfs.refs import check_ref_name
from vfs.repo import Repository, format_record, parse_format
from vfs.shared import REMOTE_KEYS, SharedConfig
from vfs.shared import check_url as check_url  # (vfs.launch checks mount URLs with it)
from vfs.shared import load as load_shared
from vfs.shared import save as save_shared


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
SEGMENT_RELISTS = 2  # listings read again when a listed segment is gone (a remote gc)
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


LOCAL_PLACE = ".dvfs/config"


def _shared_specs(root: Path, team: SharedConfig) -> dict[str, RemoteSpec]:
    """The remotes of a dvfs.toml; relative directory paths are taken from ``root``."""
    out = {}
    for name, rec in team.remotes.items():
        url = rec["url"]
        if "://" not in url and not os.path.isabs(url):
            url = os.path.normpath(root / url)
        out[name] = RemoteSpec(name, url, *(rec.get(k) for k in REMOTE_KEYS[1:]))
    return out


def shared_remote(root: Path, name: str | None) -> RemoteSpec:
    """Remote ``name`` (default: the default one) of the dvfs.toml at ``root``.

    For a git clone that has no store yet (``vfs.gitclone``).
    """
    team = load_shared(root)
    known = _shared_specs(root, team)
    if not known:
        raise UsageError(
            f"{root / SHARED_FILE} names no remote: add one with `dvfs remote add NAME URL` "
            "where the data was committed, and commit the file"
        )
    if name is None:
        if team.default_remote in known:
            name = team.default_remote
        elif len(known) == 1:
            name = next(iter(known))
        else:
            raise UsageError(f"{SHARED_FILE} names several remotes and no default: pass --remote")
    if name not in known:
        have = ", ".join(sorted(known))
        raise UsageError(f"unknown remote {name!r} (in {SHARED_FILE}: {have})")
    return known[name]


def remotes(repo: Repository) -> dict[str, RemoteSpec]:
    """Every configured remote by name: dvfs.toml's, then .dvfs/config's (which win)."""
    out = _shared_specs(repo.root, load_shared(repo.root))
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


def local_names(repo: Repository) -> set[str]:
    """Names of the remotes set in .dvfs/config (this clone's own)."""
    table = repo.config().get("remotes") or {}
    return set(table) if isinstance(table, dict) else set()


def default_remote(repo: Repository) -> str | None:
    """The default remote's name: set locally, else in dvfs.toml, else the only one."""
    known = remotes(repo)
    for name in (repo.config().get("default_remote"), load_shared(repo.root).default_remote):
        if isinstance(name, str) and name in known:
            return name
    return next(iter(known)) if len(known) == 1 else None


def shared_by_default(repo: Repository) -> bool:
    """Whether ``dvfs remote`` changes dvfs.toml when not told: inside a git work tree."""
    return in_git(repo.root)


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


def add_remote(
    repo: Repository, spec: RemoteSpec, make_default: bool = False, *, shared: bool = False
) -> None:
    """Record a new remote (the URL is checked for form, not contacted).

    ``shared`` puts it in dvfs.toml, else in .dvfs/config. A local remote may take the
    name of a shared one (it overrides it here); no other name may be taken twice.
    """
    check_ref_name(spec.name, "remote")
    check_url(spec.url)
    if "://" not in spec.url:  # a directory: as seen from here, kept relative to the root
        path = os.path.abspath(spec.url)
        if shared and not os.path.isabs(spec.url):
            path = os.path.relpath(path, repo.root)
        spec = replace(spec, url=path)
    if spec.endpoint_url is not None:
        refuse_credentials(spec.endpoint_url, "the endpoint URL")
    with repo.locked():
        cfg = repo.config()
        table = cfg.setdefault("remotes", {})
        team = load_shared(repo.root)
        if spec.name in table or (shared and spec.name in team.remotes):
            raise UsageError(f"remote {spec.name} already exists: remove it first")
        if shared:
            team.remotes[spec.name] = {k: v for k, v in spec.record().items() if v is not None}
            if make_default or team.default_remote is None:
                team.default_remote = spec.name
            save_shared(repo.root, team)
            return
        table[spec.name] = spec.record()
        if make_default or "default_remote" not in cfg:
            cfg["default_remote"] = spec.name
        repo.save_config(cfg)


def remove_remote(repo: Repository, name: str, *, only: str | None = None) -> list[str]:
    """Forget a remote (``only``: "local" or "shared" for one place); where it was.

    Its remote-tracking refs go once no place defines it any more.
    """
    with repo.locked():
        cfg = repo.config()
        table = cfg.get("remotes") or {}
        team = load_shared(repo.root)
        places = []
        if only != "shared" and name in table:
            del table[name]
            if cfg.get("default_remote") == name:
                cfg.pop("default_remote")
            repo.save_config(cfg)
            places.append(LOCAL_PLACE)
        if only != "local" and name in team.remotes:
            del team.remotes[name]
            if team.default_remote == name:
                team.default_remote = None
            save_shared(repo.root, team)
            places.append(SHARED_FILE)
        if not places:
            where = {"local": f" in {LOCAL_PLACE}", "shared": f" in {SHARED_FILE}"}.get(only or "")
            raise UsageError(f"unknown remote {name!r}{where or ''}")
        if name not in remotes(repo):
            for branch in repo.refs.names(f"remotes/{name}"):
                ref = f"refs/remotes/{name}/{branch}"
                repo.refs.update(ref, None, repo.refs.get(ref))
        return places


def set_default(repo: Repository, name: str, *, shared: bool = False) -> None:
    """Make ``name`` the default remote, in dvfs.toml if ``shared``, else for this clone."""
    get_remote(repo, name)
    with repo.locked():
        if shared:
            team = load_shared(repo.root)
            team.default_remote = name
            save_shared(repo.root, team)
            return
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
        """Merge every index segment: object id -> (pack id, location).

        A segment listed but gone when read was replaced by a remote gc, which writes
        the replacement first: the listing is read again (at most ``SEGMENT_RELISTS``
        times).
        """
        relists = 0
        while True:
            out: dict[bytes, Located] = {}
            listed: set[str] = set()
            try:
                for seg_id, data in self.segments():
                    listed.add(seg_id)
                    for pack_id, obj in decode_segment(data, f"index/{seg_id}"):
                        out.setdefault(obj.oid, (pack_id, obj))
                self._forget_unlisted(listed)
                return out
            except RemoteNotFound:
                relists += 1
                if relists > SEGMENT_RELISTS:
                    raise

    def _forget_unlisted(self, listed: set[str]) -> None:
        """Remove cached segments the remote no longer lists (a remote gc replaced them),
        so that the cache tells what the remote held when last read (``dvfs fsck``)."""
        if self.cache is None or not self.cache.is_dir():
            return
        for name in os.listdir(self.cache):
            if len(name) == 64 and is_hex_prefix(name) and name not in listed:
                (self.cache / name).unlink(missing_ok=True)

    def segments(self) -> Iterator[tuple[str, bytes]]:
        """Every index segment (its id and bytes, verified), one at a time."""
        for n, key in enumerate(self.backend.list("index/"), 1):
            if n > MAX_SEGMENTS:
                raise RemoteError(
                    f"{self.url} lists more than {MAX_SEGMENTS:,} index segments: refusing "
                    "to read them (the remote is damaged or hostile)"
                )
            seg_id = key[len("index/") :]
            if len(seg_id) != 64 or not is_hex_prefix(seg_id):
                continue  # not a segment: segments are named by their hash
            yield seg_id, self._segment(seg_id)

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
        jobs=jobs,
    )
    return Meter(backend)
