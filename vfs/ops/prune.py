"""``dvfs store prune``: the local store as a cache of a remote.

The file data (chunks) of old versions is dropped from the local store when the
remote holds it; every version and tree record stays, so ``log``, ``show``, ``diff``
of names and sizes go on working, and the files come back on demand
(``vfs.remote.ondemand``: ``checkout``, ``restore``, ``cat``) or through a mount.

What the remote holds is read from it at the moment of the prune, never assumed: its
refs, its gc's condemnation manifests and its index segments (``vfs.remote.config``,
``vfs.remote.gc``). A chunk is dropped only if

- the versions whose data stays do not use it: the last ``keep_last`` versions of the
  current branch's first-parent chain (at least 1: the version checked out), the tips
  of every branch with ``keep_branches``, every tagged version with ``keep_tags``,
  the staging index, every mount's working tree, every pinned version and every run
  cache entry's outputs;
- it belongs to a version the remote's refs reach (a remote gc never deletes it) and
  the remote's index lists it in a pack no gc condemned, which the remote lists, long
  enough to hold it (a pack its index names and it lacks is named as a problem);
- with ``pushed_only``, the version it is dropped for is itself on the remote's
  history (without it, any old version's chunks qualify, under the rule above);
- with ``verify``, it read back whole from the remote just now: every chunk about to
  be dropped is fetched (one ranged GET for neighbours in a pack, as ``dvfs fsck
  --remote --data`` reads them) and checked against its id, and one that does not
  verify, or cannot be read, stays here and is named as a problem. Without it the
  remote's index and listing are trusted, as ``fsck --remote`` without ``--data``
  trusts them: a pack damaged in place on the remote would lose its chunks' last
  copy.

The remote unreachable, or its records unreadable, means nothing is pruned ("cannot
verify ..."). The store is then rewritten as ``dvfs gc`` does (``vfs.ops.gc.collect``:
live objects copied into new packs, durable, before any old pack is deleted), every
pack holding a dropped chunk being rewritten. ``dvfs fsck`` counts the chunks that
are absent here and listed by the remote's index (as last read) apart from problems.

``store.max-size`` (``.dvfs/config``, set by ``dvfs config store.max-size 50G``): after
a command that adds data, :func:`shrink` drops versions' data least recently used
first (last made, or moved to by a ref, as the audit log tells) until the store fits,
under the same rules with ``keep_last=1``: data the remote lacks is never dropped, so
the store can stay above the limit.
"""

from __future__ import annotations

import contextlib
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from vfs.errors import DvfsError, RemoteError, StorageFull, UsageError
from vfs.model.codec import Kind, Tree, decode_tree
from vfs.model.version_codec import decode_version
from vfs.ops.gc import GcReport, collect, mark, refuse_while_writing, roots
from vfs.ops.store_limit import MAX_SIZE_KEY
from vfs.remote.check import range_groups, read_group
from vfs.remote.config import (
    Meter,
    RemoteSpec,
    connect_known,
    get_remote,
    had_versions,
    index_cache,
)
from vfs.remote.layout import PACKS, pack_of, packs_listed
from vfs.remote.manifests import shunned
from vfs.remote.reader import RemoteRepo
from vfs.repo import audit
from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore
from vfs.store.packs import PackedObject

_PROTECTED = ("index ", "working tree ", "pin ")  # gc root labels whose data always stays


@dataclass
class PruneReport:
    """What a prune dropped (or, with ``dry_run``, would drop)."""

    remote: str
    dry_run: bool
    versions: int = 0  # versions whose data was looked at
    kept_versions: int = 0  # whose data is all stored here after it
    pruned_versions: int = 0  # that lost at least one chunk here
    chunks: int = 0  # chunks dropped
    bytes: int = 0  # their stored bytes
    verified: int = 0  # with verify: chunks read back from the remote and found whole
    verified_bytes: int = 0  # their bytes
    gc: GcReport = field(default_factory=lambda: GcReport(False))

    @property
    def problems(self) -> list[str]:
        """What kept chunks from being dropped (a full disk, a damaged pack)."""
        return self.gc.problems

    def as_json(self) -> dict[str, Any]:
        """The report as ``dvfs store prune --json`` prints it."""
        return {
            "remote": self.remote,
            "dry_run": self.dry_run,
            "versions": self.versions,
            "kept_versions": self.kept_versions,
            "pruned_versions": self.pruned_versions,
            "chunks_dropped": self.chunks,
            "bytes_dropped": self.bytes,
            "bytes_before": self.gc.bytes_before,
            "bytes_after": self.gc.bytes_after,
            "bytes_freed": self.gc.freed,
            "chunks_verified": self.verified,
            "bytes_verified": self.verified_bytes,
            "problems": self.problems,
        }


def _closure(
    store: ObjectStore, tips: list[bytes], memo: dict[bytes, set[bytes]]
) -> dict[bytes, set[bytes]]:
    """Each version below ``tips`` (all parents) -> its chunks; trees memoized in ``memo``."""
    out: dict[bytes, set[bytes]] = {}
    stack = list(tips)
    while stack:
        oid = stack.pop()
        if oid in out:
            continue
        v = decode_version(store.get(oid))
        out[oid] = _tree_chunks(store, v.tree, memo)
        stack.extend(v.parents)
    return out


def _tree_chunks(store: ObjectStore, root: bytes, memo: dict[bytes, set[bytes]]) -> set[bytes]:
    """Every chunk below tree ``root`` (each tree decoded once; results kept in ``memo``)."""
    if root in memo:
        return memo[root]
    order: list[tuple[bytes, Tree]] = []
    todo = [root]
    seen: set[bytes] = set()
    while todo:  # subtrees first, then their parents, so each is built from its children
        tid = todo.pop()
        if tid in seen or tid in memo:
            continue
        seen.add(tid)
        tree = decode_tree(store.get(tid))
        order.append((tid, tree))
        todo.extend(e.subtree for e in tree.entries if e.kind == Kind.DIR)
    for tid, tree in reversed(order):
        chunks: set[bytes] = set()
        for e in tree.entries:
            if e.kind == Kind.DIR:
                chunks |= memo[e.subtree]
            else:
                chunks.update(c.oid for c in e.chunks)
        memo[tid] = chunks
    return memo[root]


@dataclass
class _RemoteView:
    """What the remote holds, as read at the moment of the prune."""

    tips: list[bytes]  # its branches' and tags' versions
    held: set[bytes]  # ids its index lists in packs no gc condemned, there and long enough
    lacking: list[str]  # packs its index lists that it does not hold whole
    where: dict[bytes, tuple[str, PackedObject]]  # each held id's pack and place in it
    backend: Meter  # to read them back with (``verify``)


class Unverified(RemoteError):
    """What the remote holds could not be read, so nothing was pruned (its message
    says both)."""


def _remote_view(repo: Repository, spec: RemoteSpec, jobs: int) -> _RemoteView:
    """The remote's ref tips, the ids it holds and the packs its index names in vain.

    An id counts as held only if the pack the index places it in is listed, no gc
    condemned it, and it is long enough to hold the id's bytes (sizes from the listing,
    as ``dvfs fsck --remote`` checks them): a pack deleted or cut short on the remote
    by hand or by a disk would otherwise have its objects' last copy dropped here."""
    try:
        meter = connect_known(repo, spec, jobs)
        remote = RemoteRepo(meter, index_cache(repo, spec.name))
        seen, gone = had_versions(repo, spec)
        remote.check_format(
            repo, empty=f"{remote.url} holds no dvfs repository, {gone}" if seen else None
        )
        tips = [*remote.refs("heads").values(), *remote.refs("tags").values()]
        shun = shunned(meter)
        visible = shun.visible(remote.index(avoid=shun.packs))
        sizes = {
            pack_id: info.size
            for key, info in packs_listed(meter.list_info(PACKS, etags=False), meter.url)
            if (pack_id := pack_of(key)) is not None
        }
    except RemoteError as exc:
        raise Unverified(
            f"cannot verify what remote {spec.name} holds, so nothing was pruned: {exc}"
        ) from None
    held: set[bytes] = set()
    lacking: set[str] = set()
    for oid, (pack_id, obj) in visible.items():
        if obj.offset + obj.stored_len <= sizes.get(pack_id, -1):
            held.add(oid)
        else:
            lacking.add(pack_id)
    return _RemoteView(tips, held, sorted(lacking), visible, meter)


def _verify(report: PruneReport, view: _RemoteView, plan: _Plan, jobs: int) -> None:
    """Read every chunk ``plan`` would drop back from the remote, checked against its
    id; take those that do not verify (or cannot be read) out of the plan and name
    them as a problem. Payloads are let go as soon as they are checked: at most
    ``jobs`` ranges of ``MAX_RANGE`` bytes are held at once."""
    packs: dict[str, list[PackedObject]] = {}
    for c in set().union(*plan.droppable.values()):  # (versions may share a chunk)
        pack_id, obj = view.where[c]
        packs.setdefault(pack_id, []).append(obj)
    work = [
        (pack_id, group)
        for pack_id, objs in sorted(packs.items())
        for group in range_groups(sorted(objs, key=lambda o: o.offset))
    ]

    def check(item: tuple[str, list[PackedObject]]) -> tuple[int, int, list[tuple[bytes, str]]]:
        got = read_group(view.backend, *item)
        whole = [o for o, raw, _ in got if raw is not None]
        return (
            len(whole),
            sum(o.raw_len for o in whole),
            [(o.oid, why) for o, raw, why in got if raw is None],
        )

    bad: dict[bytes, str] = {}
    with ThreadPoolExecutor(max(1, jobs)) as pool:
        for count, nbytes, failed in pool.map(check, work):
            report.verified += count
            report.verified_bytes += nbytes
            bad.update(failed)
    if not bad:
        return
    for oid in list(plan.droppable):
        plan.droppable[oid] -= bad.keys()
        if not plan.droppable[oid]:
            del plan.droppable[oid]
    first, why = min(bad.items())
    report.problems.append(
        f"{len(bad):,} chunk(s) did not read back whole from remote {report.remote} (first: "
        f"{first.hex()[:12]}, {why}): they were kept here; `dvfs fsck --remote "
        f"{report.remote} --data` says what is wrong there"
    )


def _lacking(report: PruneReport, view: _RemoteView) -> None:
    """Name, as a problem, the packs the remote's index lists and it lacks."""
    if view.lacking:
        shown = ", ".join(p[:12] for p in view.lacking[:3])
        more = f" and {len(view.lacking) - 3:,} more" if len(view.lacking) > 3 else ""
        report.problems.append(
            f"remote {report.remote}'s index lists {len(view.lacking):,} pack(s) it does not "
            f"hold whole ({shown}{more}): what they hold was kept here; `dvfs fsck --remote "
            f"{report.remote}` says what to do"
        )


@dataclass
class _Plan:
    """What may be dropped: each version's chunks that nothing kept uses."""

    live: set[bytes]  # everything gc keeps
    droppable: dict[bytes, set[bytes]]  # version -> chunks it alone (among candidates) frees
    chunks: dict[bytes, set[bytes]]  # every version looked at -> its chunks
    stored: set[bytes]  # those of them stored here now

    def whole(self, gone: set[bytes]) -> int:
        """The versions whose data is all stored here once ``gone`` is dropped."""
        left = self.stored - gone
        return sum(1 for chunks in self.chunks.values() if chunks <= left)


def _plan(
    repo: Repository,
    report: PruneReport,
    remote_tips: list[bytes],
    held: set[bytes],
    *,
    keep_last: int,
    keep_tags: bool,
    keep_branches: bool,
    pushed_only: bool,
) -> _Plan:
    """The rules of the module docstring; the caller holds the lock."""
    store = repo.store
    live = mark(repo, report.gc)
    versions, run_trees, staged = roots(repo)
    hist = repo.history
    keep: set[bytes] = set()
    head = hist.head_id()
    if head is not None:
        for n, (oid, _) in enumerate(hist.chain(head)):
            if n >= keep_last:
                break
            keep.add(oid)
    for label, oid in versions.items():
        if (
            label.startswith(_PROTECTED)
            or (keep_branches and label.startswith("branch "))
            or (keep_tags and label.startswith("tag "))
        ):
            keep.add(oid)
    memo: dict[bytes, set[bytes]] = {}
    everything = _closure(store, list(versions.values()), memo)
    on_remote = _closure(store, [t for t in remote_tips if store.has(t)], memo)
    safe: set[bytes] = set()
    for chunks in on_remote.values():
        safe |= chunks
    safe &= held
    protected = set(staged)
    for oid in keep & set(everything):
        protected |= everything[oid]
    for tid in run_trees:
        try:
            protected |= _tree_chunks(store, tid, memo)
        except DvfsError:
            continue  # a run cache entry whose tree is gone: nothing to protect
    candidates = on_remote if pushed_only else everything
    droppable: dict[bytes, set[bytes]] = {}
    for oid, chunks in candidates.items():
        if oid not in keep:
            mine = {c for c in (chunks & safe) - protected if store.has(c)}
            if mine:
                droppable[oid] = mine
    used = set().union(*everything.values())
    return _Plan(live, droppable, everything, {c for c in used if store.has(c)})


def _drop(
    repo: Repository,
    report: PruneReport,
    live: set[bytes],
    droppable: dict[bytes, set[bytes]],
    why: str,
) -> set[bytes]:
    """Rewrite the store without the chunks ``droppable`` gives each version; audit
    entry unless a dry run; the chunks that went (or would go). Only what went is
    counted: a pack that could not be rewritten (a full disk, a damaged object) keeps
    its chunks, and says why in ``report.problems``."""
    drop: set[bytes] = set()
    for chunks in droppable.values():
        drop |= chunks
    sizes = {c: repo.store.locate(c)[1].stored_len for c in drop}
    stays = collect(repo, live - drop, report.gc, repack_below=1.0)
    gone = drop - stays
    report.chunks = len(gone)
    report.bytes = sum(sizes[c] for c in gone)
    report.pruned_versions = sum(1 for chunks in droppable.values() if chunks & gone)
    if not report.dry_run:
        try:
            repo.refs.record(
                "prune",
                f"remote {report.remote}{why}: dropped {report.chunks} chunks of "
                f"{report.pruned_versions} versions, freed {report.gc.freed} bytes",
            )
        except StorageFull:  # (what was freed is freed: say so, as gc does)
            report.problems.append(
                "the disk is full: the audit entry of this prune was not written"
            )
    return gone


def prune(
    repo: Repository,
    spec: RemoteSpec,
    *,
    keep_last: int = 1,
    keep_tags: bool = False,
    keep_branches: bool = False,
    pushed_only: bool = False,
    verify: bool = False,
    dry_run: bool = False,
    jobs: int = 8,
) -> PruneReport:
    """Drop the data of old versions that ``spec`` holds (see the module docstring)."""
    if keep_last < 1:
        raise UsageError(
            "--keep-last must be at least 1: the version checked out keeps its data "
            "(older versions are dropped with --keep-last 1)"
        )
    if not dry_run:
        repo.check_writable("dvfs store prune")
    report = PruneReport(spec.name, dry_run, gc=GcReport(dry_run))
    view = _remote_view(repo, spec, jobs)
    with repo.locked():
        refuse_while_writing(repo, dry_run, "dvfs store prune")
        repo.store.flush()
        plan = _plan(
            repo, report, view.tips, view.held, keep_last=keep_last, keep_tags=keep_tags,
            keep_branches=keep_branches, pushed_only=pushed_only,
        )  # fmt: skip
        report.versions = len(plan.chunks)
        if verify:
            _verify(report, view, plan, jobs)
        gone = _drop(repo, report, plan.live, plan.droppable, "")
        report.kept_versions = plan.whole(gone)
    _lacking(report, view)
    return report


# store.max-size (vfs.ops.store_limit) --------------------------------------------------


def store_bytes(repo: Repository) -> int:
    """Bytes of the local store's packs and their index files."""
    root = repo.store.root
    total = 0
    for name in os.listdir(root):
        if name.startswith("pack-"):
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(root / name).st_size
    return total


def _last_used(repo: Repository, versions: list[bytes]) -> dict[bytes, int]:
    """When each version was last made or moved to by a ref (audit log), in ns."""
    out = {v: decode_version(repo.store.get(v)).time_ns for v in versions}
    wanted = {v.hex(): v for v in versions}
    with contextlib.suppress(DvfsError):
        for e in audit.entries(repo.dir):
            if e.new in wanted:
                oid = wanted[e.new]
                out[oid] = max(out[oid], e.time_ns)
    return out


def shrink(repo: Repository, limit: int, *, jobs: int = 8) -> PruneReport | None:
    """Prune least-recently-used versions first until the store fits in ``limit`` bytes.

    None when it fits already. Only what the default remote holds is dropped (the rules
    of :func:`prune` with ``keep_last=1``), so the store may stay above the limit.
    """
    size = store_bytes(repo)
    if size <= limit:
        return None
    spec = get_remote(repo, None)
    view = _remote_view(repo, spec, jobs)
    report = PruneReport(spec.name, False, gc=GcReport(False))
    _lacking(report, view)
    with repo.locked():
        refuse_while_writing(repo, False, "dvfs store prune")
        repo.store.flush()
        plan = _plan(
            repo, report, view.tips, view.held, keep_last=1, keep_tags=False,
            keep_branches=False, pushed_only=False,
        )  # fmt: skip
        report.versions = len(plan.chunks)
        used = _last_used(repo, list(plan.droppable))
        excess = size - limit
        drop: set[bytes] = set()
        chosen: dict[bytes, set[bytes]] = {}
        freed = 0
        for oid in sorted(plan.droppable, key=lambda v: (used[v], v)):
            if freed >= excess:
                break
            new = plan.droppable[oid] - drop
            drop |= new
            freed += sum(repo.store.locate(c)[1].stored_len for c in new)
            chosen[oid] = plan.droppable[oid]
        gone = _drop(repo, report, plan.live, chosen, f" ({MAX_SIZE_KEY} {limit})")
        report.kept_versions = plan.whole(gone)
    return report
