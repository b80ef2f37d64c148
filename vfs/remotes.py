"""Named remotes of a repository, and the metered backend a command talks to.

Remotes live in ``.dvfs/config`` (JSON)::

    {"remotes": {"origin": {"url": "s3://bucket/prefix", "endpoint_url": null,
                            "region": null, "profile": null}},
     "default_remote": "origin"}

Index segments (``index/<id>`` on a remote, cached in
``.dvfs/remotes/<name>/index/<id>``), format version 1, msgpack::

    {"v": 1, "packs": [[pack id (32 bytes), pack index file (vfs.packs)], ...]}

Only where to connect is stored; credentials always come from boto3's standard chain
(environment, profile, instance role) and are never written or printed: a URL or an
endpoint carrying ``user:password@`` is refused, and one stored by an older version
is shown redacted (:meth:`RemoteSpec.shown`) and refused when used.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
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
from vfs.errors import FormatError, UsageError
from vfs.packs import PackedObject, decode_index
from vfs.refs import check_ref_name
from vfs.repo import Repository


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
# No object a remote describes may claim more than this (chunks are at most 4 MiB).
MAX_OBJECT = 64 * 1024 * 1024


def decode_segment(data: bytes, key: str) -> list[tuple[str, PackedObject]]:
    """The (pack id hex, object) pairs an index segment lists; FormatError if malformed."""
    out = []
    try:
        rec = msgpack.unpackb(data, raw=False)
        assert isinstance(rec, dict) and rec.get("v") == SEGMENT_FORMAT
        for pack_id, idx in rec["packs"]:
            assert isinstance(pack_id, bytes) and len(pack_id) == 32
            for obj in decode_index(idx, key):
                if obj.stored_len > MAX_OBJECT or obj.raw_len > MAX_OBJECT:
                    raise FormatError(f"{key}: object {obj.oid.hex()} claims to be too large")
                out.append((pack_id.hex(), obj))
    except (AssertionError, ValueError, TypeError, KeyError, msgpack.UnpackException):
        raise FormatError(f"remote index segment {key} is malformed: refusing it") from None
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
    for name, rec in (repo.config().get("remotes") or {}).items():
        if isinstance(rec, dict) and isinstance(rec.get("url"), str):
            out[name] = RemoteSpec(
                name, rec["url"], rec.get("endpoint_url"), rec.get("region"), rec.get("profile")
            )
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
