"""``dvfs gc --remote NAME``: free the packs of a remote that no remote ref reaches.

The protocol, and why a push racing a gc loses nothing, is in docs/architecture.md
("Remote gc", §11); in short: a gc *condemns* dead packs in a manifest, and only a
later run, at least ``grace`` after the manifest was written (by the server's clock),
*sweeps* them if they are still dead. Pushers read the manifests before the index,
ignore condemned packs and records, and move their refs within ``PUSH_WINDOW`` of
reading them. Once there are ``SMALL_PACKS_MERGE`` small packs, a run also merges them
(``vfs.remote.repack``): it copies their live objects into new packs, indexes those
first in the segment that replaces the small ones, and condemns the small packs, which
a later run sweeps as any other.

Records this module writes on the remote:

``gc/lock``
    JSON ``{"host": str, "pid": int, "started": float}``, created with If-None-Match by
    a running gc, deleted when it ends. Its ``LastModified`` is the run's server time.
    Taken over when its process is gone (same host) or after ``LOCK_STALE``.
``gc/condemned-<16 hex>``
    A condemnation manifest (``vfs.remote.manifests``).

Everything read from the remote is bounded and checked as in ``vfs.remote.reader``.

Test hooks: ``DVFS_TEST_GC_KILL_AT=<step>`` kills the gc (SIGKILL) at
``remote-marked`` (everything read, nothing written but the lock),
``remote-repacked`` (the first merged pack written, not read back yet),
``remote-indexed`` (the new segments written, if the replaced ones keep anything),
``remote-condemned`` (its manifest written), ``remote-unindexed`` (the first old
segment deleted) or ``remote-deleted`` (the first pack deleted); ``DVFS_TEST_GC_CLOCK=<seconds>``
adds that much to the run's server time, so that a test can make a grace expire.

A run that deleted, condemned or dropped anything appends a ``gc`` entry to the
remote's audit chain (``vfs.remote.audit.append_remote``) and to the local log.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vfs.backends import Backend, validate_key
from vfs.errors import (
    DvfsError,
    FormatError,
    LockBusy,
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    RemoteObjectRefused,
    UsageError,
)
from vfs.model.codec import decode_tree
from vfs.model.version_codec import decode_version
from vfs.quoting import quote_name
from vfs.remote import audit as remote_audit
from vfs.remote import repack
from vfs.remote.config import (
    Meter,
    RemoteSpec,
    chain_head,
    connect,
    index_cache,
    lacking_here,
    remotes,
)
from vfs.remote.layout import (
    GC_LOCK,
    MAX_REFS,
    REF_LIMIT,
    bounded,
    decode_segment,
    encode_segments,
    new_manifest_key,
    new_probe_key,
    pack_key,
    parse_ref,
    refs_prefix,
    segment_key,
    segment_of,
)
from vfs.remote.manifests import (
    PUSH_WINDOW,
    Manifest,
    decode_manifest,
    encode_manifest,
    read_manifests,
)
from vfs.remote.reader import Located, RemoteRepo, unnamed_ref_hint
from vfs.remote.receive import fetch_records
from vfs.repo.reach import reach
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind
from vfs.store.packs import PackedObject, encode_index

DEFAULT_GRACE = 24 * 3600.0
LOCK_STALE = 12 * 3600.0
LOCK_LIMIT = 4096
MAX_PROBLEMS_SHOWN = 5
KILL_ENV = "DVFS_TEST_GC_KILL_AT"
CLOCK_ENV = "DVFS_TEST_GC_CLOCK"
_RECORDS = (ObjKind.TREE, ObjKind.VERSION)


# What remote gc says when the refs reach objects the remote lacks. A push cannot put
# them back: it sends only what the remote's index does not list, and below a version
# the remote lists it takes everything to be there.
_UNMENDED = (
    "`dvfs fsck --remote` lists every problem; a push cannot mend them in place: restore "
    "the remote from a backup, or from a repository that has the data push it all to a new "
    "remote (`dvfs remote add NAME URL && dvfs push --remote NAME --all --tags`) and use that one"
)


def _reached(step: str) -> None:
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


# the lock ---------------------------------------------------------------------------


def _server_now(backend: Backend) -> float:
    """The server's time: the LastModified of a probe written now (then removed)."""
    key = new_probe_key()
    backend.put(key, b"")
    try:
        return backend.head(key).modified
    finally:
        backend.delete(key)


def _lock_is_stale(backend: Backend) -> tuple[bool, str]:
    """Whether the lock's holder is gone, and who holds it (for the message)."""
    try:
        info = backend.head(GC_LOCK)
        raw = backend.get_small(GC_LOCK, LOCK_LIMIT)
    except RemoteNotFound:
        return True, "nobody"
    holder: dict[str, Any] = {}
    with contextlib.suppress(ValueError, RecursionError):  # (nested past the stack)
        rec = json.loads(raw)
        if isinstance(rec, dict):
            holder = rec
    host, pid = holder.get("host"), holder.get("pid")
    who = f"pid {pid} on {host}" if isinstance(host, str) and isinstance(pid, int) else "unknown"
    if host == socket.gethostname() and isinstance(pid, int) and pid > 0:
        try:
            os.kill(pid, 0)
        except (ProcessLookupError, OverflowError):  # (no process has a pid that large)
            return True, who
        except PermissionError:
            pass
    return _server_now(backend) - info.modified > LOCK_STALE, who


def _take_lock(backend: Backend) -> tuple[str, float]:
    """Create ``gc/lock``; (its ETag, its LastModified). LockBusy if a live gc holds it."""
    body = json.dumps(
        {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    ).encode()
    for _ in range(2):
        try:
            etag = backend.put_conditional(GC_LOCK, body, if_none_match=True)
            return etag, backend.head(GC_LOCK).modified
        except PreconditionFailed:
            stale, who = _lock_is_stale(backend)
            if not stale:
                raise LockBusy(
                    f"another gc of {backend.url} is running ({who}): run `dvfs gc --remote` "
                    f"again when it has finished (a lock left by a crash expires after "
                    f"{LOCK_STALE / 3600:.0f} h)"
                ) from None
            backend.delete(GC_LOCK)
    raise LockBusy(f"another gc of {backend.url} took the lock first: try again")


def _release_lock(backend: Backend, etag: str) -> None:
    with contextlib.suppress(RemoteError):
        if backend.head(GC_LOCK).etag == etag:
            backend.delete(GC_LOCK)


# the report -------------------------------------------------------------------------


@dataclass
class RemoteGcReport:
    """What a remote gc found and did (or, with ``dry_run``, would do)."""

    remote: str
    dry_run: bool
    grace: float
    refs: int = 0
    versions: int = 0
    trees: int = 0
    live_objects: int = 0
    packs: int = 0
    dead_packs: int = 0
    condemned_packs: int = 0  # newly condemned by this run
    condemned_bytes: int = 0
    condemned_records: int = 0
    pending_packs: int = 0  # condemned earlier, not due yet
    deleted_packs: int = 0
    deleted_bytes: int = 0
    dropped_records: int = 0
    pardoned_packs: int = 0
    segments_replaced: int = 0
    segments_written: int = 0
    merged_packs: int = 0  # small packs merged into new ones (condemned, or with grace 0 deleted)
    merged_bytes: int = 0
    merged_into: int = 0  # the new packs
    merged_into_bytes: int = 0
    manifests_swept: int = 0
    temporaries: int = 0  # files of interrupted writes removed
    temporary_bytes: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report as ``dvfs gc --remote --json`` prints it."""
        return {
            "remote": self.remote, "dry_run": self.dry_run, "grace_seconds": self.grace,
            "refs": self.refs, "versions": self.versions, "trees": self.trees,
            "live_objects": self.live_objects, "packs": self.packs,
            "dead_packs": self.dead_packs, "condemned_packs": self.condemned_packs,
            "condemned_bytes": self.condemned_bytes,
            "condemned_records": self.condemned_records,
            "pending_packs": self.pending_packs, "deleted_packs": self.deleted_packs,
            "bytes_freed": self.deleted_bytes, "dropped_records": self.dropped_records,
            "pardoned_packs": self.pardoned_packs,
            "segments_replaced": self.segments_replaced,
            "segments_written": self.segments_written,
            "merged_packs": self.merged_packs, "merged_bytes": self.merged_bytes,
            "merged_into": self.merged_into, "merged_into_bytes": self.merged_into_bytes,
            "manifests_swept": self.manifests_swept, "temporaries": self.temporaries,
            "temporary_bytes": self.temporary_bytes, "warnings": self.warnings,
        }  # fmt: skip


@dataclass
class _Fetched:
    """Where ``fetch_records`` counts what it stored (``vfs.remote.receive.Report``)."""

    objects: int = 0
    bytes: int = 0


# reading the remote -------------------------------------------------------------------


@dataclass
class _Remote:
    """Everything a gc reads, in the order the protocol says."""

    manifests: list[Manifest]
    bad_manifests: list[str]
    tips: dict[str, bytes]
    segments: dict[str, list[tuple[str, list[PackedObject]]]]  # segment -> its packs
    segment_sizes: dict[str, int]
    where: dict[bytes, list[str]]  # object -> packs listing it
    index: dict[bytes, Located]  # object -> first listing in a pack there (else the first)
    packs: set[str]  # in the listing of packs/


def _read(remote: RemoteRepo, report: RemoteGcReport) -> _Remote:
    backend = remote.backend
    manifests: list[Manifest] = []
    bad: list[str] = []
    for key, data, modified in read_manifests(backend, modified=True):
        try:
            packs, records = decode_manifest(data, key)
        except FormatError as exc:
            bad.append(key)
            report.warnings.append(f"{exc}: deleted (its packs are condemned again if dead)")
            continue
        manifests.append(Manifest(key, modified, packs, records))
    tips = _ref_tips(remote, report)
    segments: dict[str, list[tuple[str, list[PackedObject]]]] = {}
    sizes: dict[str, int] = {}
    where: dict[bytes, list[str]] = {}
    index: dict[bytes, Located] = {}
    for seg_id, data in remote.segments():
        rows: dict[str, list[PackedObject]] = {}
        for pack_id, obj in decode_segment(data, segment_key(seg_id)):
            rows.setdefault(pack_id, []).append(obj)
            where.setdefault(obj.oid, []).append(pack_id)
            index.setdefault(obj.oid, (pack_id, obj))
        segments[seg_id] = list(rows.items())
        sizes[seg_id] = len(data)
    odd = _NoPacks()  # (a name that is no pack's is not ours to delete either)
    listed = remote.listed_packs(refused=odd)
    odd.warn(report)
    lost = {oid for oid, (pack_id, _) in index.items() if pack_id not in listed}
    if lost:  # (a pack deleted by hand: an object another pack lists is read there)
        for held in segments.values():
            for pack_id, objs in held:
                for obj in objs if pack_id in listed else ():
                    if obj.oid in lost:
                        index[obj.oid] = (pack_id, obj)
                        lost.discard(obj.oid)
    return _Remote(manifests, bad, tips, segments, sizes, where, index, listed)


@dataclass
class _NoPacks:
    """What the listing of ``packs/`` left out as no object (a link or a FIFO in a
    directory remote, never followed nor opened): the first refusals, and how many."""

    shown: list[str] = field(default_factory=list)
    count: int = 0

    def __call__(self, exc: RemoteObjectRefused) -> None:
        self.count += 1
        if len(self.shown) < MAX_PROBLEMS_SHOWN:
            self.shown.append(str(exc))

    def warn(self, report: RemoteGcReport) -> None:
        """One warning line each, the first few; then one line counting the rest."""
        report.warnings += [f"{why}; passed over, as no pack" for why in self.shown]
        if self.count > len(self.shown):
            report.warnings.append(
                f"{self.count - len(self.shown):,} more object(s) of packs/ that are no "
                "pack (links, FIFOs) were passed over"
            )


def _ref_tips(remote: RemoteRepo, report: RemoteGcReport) -> dict[str, bytes]:
    """Every ref of the remote that holds a version id, by key.

    Unlike a fetch, a name a local ref could not have (``main`` beside ``main/x``, odd
    characters) is no reason to skip a ref here: what it names stays live. A ref that
    holds no id (damaged by hand or by a disk), or whose key no backend reads (a
    control character in its name), stops the gc, as a bad ref stops git's: what it
    named is unknown, so nothing can be called garbage.
    """
    backend = remote.backend
    out: dict[str, bytes] = {}
    for kind in ("heads", "tags"):
        listed = backend.list(refs_prefix(kind))
        for key in bounded(listed, MAX_REFS, remote.url, f"refs under refs/{kind}"):
            name = key[len(refs_prefix(kind)) :]
            what = "branch" if kind == "heads" else "tag"
            try:
                validate_key(key)
            except UsageError:
                raise DvfsError(
                    f"remote gc stopped before changing anything: {quote_name(key)} is no "
                    "name dvfs can read (clones and fetches skip it), so what it reaches is "
                    f"unknown; nothing was changed; {unnamed_ref_hint(name, what)}; then run "
                    "the gc again"
                ) from None
            try:
                out[key] = parse_ref(backend.get_small(key, REF_LIMIT), key)
            except RemoteNotFound:
                continue  # deleted since it was listed
            except (FormatError, RemoteError) as exc:
                by_hand = unnamed_ref_hint(name, what)
                if by_hand:
                    raise DvfsError(
                        f"remote gc stopped before changing anything: {quote_name(key)} "
                        f"cannot be read ({exc}), so what it reaches is unknown; nothing was "
                        f"changed; {by_hand}; then run the gc again"
                    ) from None
                shown = f"{report.remote}/{name}" if kind == "heads" else name
                raise DvfsError(
                    f"remote gc stopped before changing anything: {quote_name(key)} holds no "
                    f"version id ({exc}), so what it reaches is unknown; nothing was changed; "
                    f"write there the id it should hold (in a clone that fetched it, `dvfs log "
                    f"-n 1 {quote_name(shown)}` shows it) or, if that ref is gone for good, "
                    f"`dvfs push --remote {shlex.quote(report.remote)} --delete "
                    f"{shlex.quote(key)}`; then run the gc again"
                ) from None
    return out


def _mark(
    repo: Repository, got: _Remote, report: RemoteGcReport
) -> tuple[set[bytes], dict[bytes, int]]:
    """Every object the remote's refs reach; DvfsError if the remote lacks one. Also
    each version's place in the order the walk from the refs found them (newest first)."""
    store = repo.store
    reached = reach(
        got.tips.items(),
        lambda oid: decode_version(store.get(oid)),
        lambda tid: decode_tree(store.get(tid)),
    )
    problems = [
        f"{p.label}: version {p.oid.hex()[:12]}: {p.error}"
        if p.kind == "version"
        else f"tree {p.oid.hex()[:12]}: {p.error}"
        for p in reached.problems
    ]
    live = set(reached.chunks)
    live.update(reached.versions)
    live |= reached.trees
    missing = [oid for oid in live if oid not in got.where]
    problems += [f"object {oid.hex()[:12]} is in no index segment" for oid in missing[:5]]
    if problems:
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        raise DvfsError(
            f"remote gc stopped before changing anything: the remote lacks objects its refs "
            f"reach ({len(problems)} problem(s): {shown}); {_UNMENDED}"
        )
    report.versions = len(reached.versions)
    report.trees = len(reached.trees)
    report.live_objects = len(live)
    live |= _relied_on_here(repo, got, live, report)
    return live, {oid: n for n, oid in enumerate(reached.versions)}


def _relied_on_here(
    repo: Repository, got: _Remote, live: set[bytes], report: RemoteGcReport
) -> set[bytes]:
    """The chunks the remote holds that no ref of it reaches, and that versions here use,
    the local store lacks and no other configured remote holds (dropped by ``dvfs store
    prune`` while a ref reached them, which another clone moved or deleted since): kept
    live, with a warning, since deleting them would lose the last copy this clone knows."""
    used, lacking = lacking_here(repo, report.remote, remotes(repo))
    kept: set[bytes] = set()
    for c in lacking:
        there = [p for p in got.where.get(c, ()) if p in got.packs]
        if there and c not in live:
            got.where[c] = there  # (a listing of it in a pack that is gone is no copy)
            kept.add(c)
    if kept:
        report.warnings.append(
            f"kept {len(kept):,} chunk(s) ({sum(used[c] for c in kept):,} bytes) that no ref "
            f"of {report.remote} reaches: versions here use them, and the local store lacks "
            "them (dropped by `dvfs store prune`, or never downloaded) and no other remote "
            "holds them; push what uses them (`dvfs push --all`), or delete it here (`dvfs "
            "branch -D NAME`), and a later gc frees them"
        )
    return kept


# the whole gc -----------------------------------------------------------------------


def gc_remote(
    repo: Repository,
    spec: RemoteSpec,
    *,
    grace: float = DEFAULT_GRACE,
    dry_run: bool = False,
    jobs: int = 8,
) -> RemoteGcReport:
    """Condemn and sweep the remote's dead packs, and merge its small ones (see the
    module docstring)."""
    if grace < 0:
        raise UsageError("--grace cannot be negative")
    if not dry_run:  # (the remote is changed before the local audit entry is written)
        repo.check_writable(f"dvfs gc --remote {spec.name}")
    report = RemoteGcReport(spec.name, dry_run, grace)
    meter = connect(spec, jobs)
    remote = RemoteRepo(meter, index_cache(repo, spec.name))
    if remote.read_format() is None:
        raise UsageError(f"{remote.url} holds no dvfs repository (no format record)")
    remote.check_format(repo)
    with repo.locked():
        if dry_run:
            etag, t0 = None, time.time()
        else:
            etag, t0 = _take_lock(meter)
        started = time.monotonic()
        try:
            t0 += float(os.environ.get(CLOCK_ENV, "0") or 0)
            _run(repo, remote, meter, report, t0, started, jobs)
        finally:
            if etag is not None:
                _release_lock(meter, etag)
        if not dry_run:
            note = (
                f"deleted {report.deleted_packs} packs ({report.deleted_bytes} bytes), "
                f"condemned {report.condemned_packs}"
            )
            if report.merged_packs:
                note += f", merged {report.merged_packs} small packs into {report.merged_into}"
            repo.refs.record("gc", f"remote {spec.name}: {note}")
            changed = report.deleted_packs or report.condemned_packs or report.merged_packs
            if changed or report.dropped_records:
                head = chain_head(repo, spec.name)
                try:
                    remote_audit.append_remote(meter, head, "gc", "", None, None, note)
                except DvfsError as exc:
                    report.warnings.append(f"the remote's audit chain has no entry for it: {exc}")
    return report


def _heads(meter: Meter, keys: list[str], jobs: int) -> dict[str, tuple[int, float]]:
    """(size, LastModified) of each key that exists, asked in parallel (``stat``:
    a directory remote reads nothing of the packs)."""

    def one(key: str) -> tuple[str, tuple[int, float] | None]:
        try:
            info = meter.stat(key)
        except (RemoteNotFound, RemoteObjectRefused):  # (gone, or no pack since listed)
            return key, None
        return key, (info.size, info.modified)

    out = {}
    with ThreadPoolExecutor(jobs) as pool:
        for key, got in pool.map(one, keys):
            if got is not None:
                out[key] = got
    return out


def _run(
    repo: Repository,
    remote: RemoteRepo,
    meter: Meter,
    report: RemoteGcReport,
    t0: float,
    started: float,
    jobs: int,
) -> None:
    grace = report.grace
    got = _read(remote, report)
    report.refs = len(got.tips)
    report.packs = len(got.packs)
    missing_tips = [label for label, oid in got.tips.items() if oid not in got.where]
    if missing_tips:
        raise DvfsError(
            f"remote gc stopped before changing anything: {', '.join(missing_tips[:5])} "
            f"name(s) a version the remote's index does not hold (an interrupted push?); "
            "push it again, or remove that ref"
        )
    tips = list(dict.fromkeys(got.tips.values()))
    fetch_records(repo.store, remote, tips, got.index, jobs, _Fetched())
    live, order = _mark(repo, got, report)

    # Each live object counts in one pack: one no manifest condemns if there is one,
    # else one condemned by a manifest not yet due, else any that is there (a pack the
    # listing of packs/ lacks, lost, only when no other lists it: the gc stops below).
    due = [m for m in got.manifests if m.modified + grace <= t0]
    due_packs = {p for m in due for p in m.packs}
    pending_packs = {p for m in got.manifests if m not in due for p in m.packs}

    def rank(pack: str) -> int:
        if pack not in got.packs:
            return 3
        return 2 if pack in due_packs else 1 if pack in pending_packs else 0

    homes = {oid: min(got.where[oid], key=rank) for oid in live}
    live_packs = set(homes.values())
    missing = sorted(live_packs - got.packs)
    if missing:
        raise DvfsError(
            f"remote gc stopped before changing anything: {len(missing)} pack(s) holding "
            f"objects the refs reach are missing (packs/{missing[0]}); {_UNMENDED}"
        )
    indexed = {p for rows in got.segments.values() for p, _ in rows}
    dead = (got.packs | indexed) - live_packs
    report.dead_packs = len(dead & got.packs)
    objects_of = {p: objs for rows in got.segments.values() for p, objs in rows}

    # sweep: what due manifests condemned and is still dead
    drop_packs = due_packs & dead
    report.pardoned_packs = len(due_packs & live_packs)
    drop_records = {r for m in due for r in m.records if r not in live}
    report.pending_packs = len(pending_packs & dead - drop_packs)

    # condemn: dead packs older than the grace that no manifest names; dead records in
    # packs that stay
    named = due_packs | pending_packs
    named_records = {r for m in got.manifests for r in m.records}
    unnamed = sorted(dead & got.packs - named)
    mixed = sorted(
        p
        for p in live_packs
        if any(o.kind in _RECORDS and o.oid not in live for o in objects_of.get(p, []))
    )
    info = _heads(meter, [pack_key(p) for p in unnamed + mixed], jobs)
    old = {p for p in unnamed + mixed if pack_key(p) in info and info[pack_key(p)][1] + grace <= t0}
    new_packs = {p for p in unnamed if p in old}
    new_records = {
        o.oid
        for p in mixed
        if p in old
        for o in objects_of.get(p, [])
        if o.kind in _RECORDS and o.oid not in live and o.oid not in named_records
    }
    report.condemned_packs = len(new_packs)
    report.condemned_bytes = sum(info[pack_key(p)][0] for p in new_packs)
    report.condemned_records = len(new_records)
    if grace == 0:  # no second run: drop at once (docs: what it risks)
        drop_packs |= new_packs
        drop_records |= new_records
    drop_packs |= dead & indexed - got.packs  # listed but gone: entries to drop
    merging = repack.plan(
        got.segments, got.segment_sizes, live, homes, got.packs - named - drop_packs
    )
    _reached("remote-marked")
    if report.dry_run:  # (the sizes a run would read before deleting)
        doomed = drop_packs | (set(merging.packs) if grace == 0 else set())
        sizes = _heads(meter, [pack_key(p) for p in sorted(doomed & got.packs)], jobs)
        report.deleted_packs = len(sizes)
        report.deleted_bytes = sum(size for size, _ in sizes.values())
        report.dropped_records = len(drop_records)
        report.merged_packs = len(merging.packs)
        report.merged_bytes = sum(merging.sizes.values())
        return
    if time.monotonic() - started > LOCK_STALE / 2:
        raise LockBusy(
            "remote gc took so long that its lock may be taken over: nothing was deleted; "
            "run it again"
        )
    repack.copy(remote, merging, named | new_packs, order, report.warnings, _reached)
    merged = set(merging.merged)
    report.merged_packs, report.merged_bytes = len(merged), merging.merged_bytes
    report.merged_into, report.merged_into_bytes = len(merging.new), merging.new_bytes
    if grace == 0:
        drop_packs |= merged

    # new segment(s) first (the new packs, then what the replaced ones keep), then the
    # manifest, then the old segments, then the packs, then the swept manifests
    touched = [
        seg
        for seg, rows in got.segments.items()
        if seg in merging.segments
        or any(p in drop_packs or any(o.oid in drop_records for o in objs) for p, objs in rows)
    ]
    kept: dict[str, list[PackedObject]] = {}
    for seg in touched:
        for p, objs in got.segments[seg]:
            if p in drop_packs:
                continue
            rest = [o for o in objs if o.oid not in drop_records]
            if rest:
                kept.setdefault(p, rest)
    fresh = [(bytes.fromhex(p), encode_index(objs)) for p, objs, _ in merging.new]
    made = {p for p, _, _ in merging.new}
    rows = fresh + [
        (bytes.fromhex(p), encode_index(kept[p])) for p in sorted(kept) if p not in made
    ]
    written = encode_segments(rows) if touched else []
    for key, data in written:
        meter.put(key, data)
        seg_id = segment_of(key)
        if seg_id is not None:  # (as a push keeps its own: what the remote holds is known)
            remote.keep_segment(seg_id, data)
    report.segments_written = len(written)
    if touched:
        _reached("remote-indexed")
    condemn = new_packs | merged
    if grace > 0 and (condemn or new_records):
        key = new_manifest_key()
        meter.put(key, encode_manifest(condemn, new_records))
        _reached("remote-condemned")
    cache = remote.cache
    # a segment written again with the same bytes (after a run killed before it deleted
    # the ones it replaced) is its own replacement: it stays
    replaced = [seg for seg in touched if segment_key(seg) not in dict(written)]
    for seg in replaced:
        meter.delete(segment_key(seg))
        if cache is not None:
            (cache / seg).unlink(missing_ok=True)
        _reached("remote-unindexed")
    report.segments_replaced = len(replaced)
    sizes = _heads(meter, [pack_key(p) for p in sorted(drop_packs & got.packs)], jobs)
    for key, (size, _) in sorted(sizes.items()):
        meter.delete(key)
        report.deleted_packs += 1
        report.deleted_bytes += size
        _reached("remote-deleted")
    report.dropped_records = len(drop_records)
    for m in due:
        meter.delete(m.key)
        report.manifests_swept += 1
    for key in got.bad_manifests:
        meter.delete(key)
    # What killed pushes left half-written (a directory remote's .tmp-* files): no put
    # takes an hour, so one older than that, and than the grace, is nobody's.
    report.temporaries, report.temporary_bytes = meter.remove_temporaries(
        t0 - max(grace, PUSH_WINDOW)
    )
