"""Sharing versions through a remote: push, fetch, pull and clone.

The remote's layout is ``vfs.remote.layout``; the bounds on what is read from one are in
``vfs.remote.reader``; how the objects are packed and uploaded, ``vfs.remote.upload``.

A push uploads packs first (skipping a pack whose name already exists, so an
interrupted push resumes without sending it again), then the index segment naming
them, and moves each ref last with a conditional write: If-Match on the ETag it read,
or If-None-Match to create. Whoever loses that race is told to pull, and nothing it
uploaded is visible under a ref.

Against a remote gc (``vfs.remote.gc``, ``vfs.remote.manifests``): a push reads the
gc's condemnation manifests before the index, relies on no condemned pack or record
(it uploads its own copies, and lays out again a pack whose id is condemned), and
moves its refs within ``PUSH_WINDOW`` of reading the manifests, or reads them again
and stops if a gc condemned something meanwhile. Test hook:
``DVFS_TEST_PUSH_STOP_AT=indexed|uploaded`` makes the push stop itself (SIGSTOP)
after reading the index, or after writing its segments, before any ref moves.
Readers merge every segment (cached locally under
``.dvfs/remotes/<name>/index``, since segments never change; a push caches those it
writes, so that what the remote holds is known here before any fetch).

Everything downloaded is checked against its id before it is stored, versions and
trees are checked before any is kept (``vfs.remote.receive``: reserved names such as
``.git``, numbering, sizes), refs with names a local ref could not have are skipped
with a warning, and a clone or pull that would expand a small download into a huge
checkout stops first unless told ``yes`` (``vfs.remote.receive.check_expansion``).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vfs.backends import parse_url
from vfs.errors import (
    DvfsError,
    FormatError,
    PreconditionFailed,
    RefConflict,
    RemoteError,
    RemoteNotFound,
    RevisionNotFound,
    UsageError,
)
from vfs.ops import branches
from vfs.ops import checkout as co
from vfs.ops import merge as merging
from vfs.ops.restore import restore_not_checked_out
from vfs.ops.status import moved_past, quiet
from vfs.quoting import quote_name
from vfs.remote import audit as remote_audit
from vfs.remote.config import (
    Meter,
    RemoteSpec,
    chain_head,
    checked_spec,
    connect,
    connect_known,
    default_remote,
    get_remote,
    had_versions,
    index_cache,
    note_location,
    remotes,
    tracking_branches,
)
from vfs.remote.layout import (
    MAX_REFS,
    REF_LIMIT,
    bounded,
    encode_ref,
    parse_ref,
    ref_key,
    refs_prefix,
    segment_of,
)
from vfs.remote.manifests import PUSH_WINDOW, Shunned, new_manifests, shunned
from vfs.remote.ondemand import download_chunks, left_unreached, missing_chunks
from vfs.remote.reader import Located, RemoteRepo, repository_at
from vfs.remote.receive import check_expansion, fetch_records
from vfs.remote.upload import closure, upload
from vfs.repo.history import History
from vfs.repo.refs import Head, check_ref_name, twin_refused
from vfs.repo.repository import (
    DEFAULT_BRANCH,
    DVFS_DIR,
    Repository,
    init_leftovers,
    parse_format,
    preferred_branch,
    refuse_inside_metadata,
)
from vfs.worktree.pools import Workers

STOP_ENV = "DVFS_TEST_PUSH_STOP_AT"


def _stop_at(step: str) -> None:
    """Test hook: stop this process (SIGSTOP) if ``DVFS_TEST_PUSH_STOP_AT`` names ``step``."""
    if os.environ.get(STOP_ENV) == step:
        os.kill(os.getpid(), signal.SIGSTOP)


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
    warnings: list[str] = field(default_factory=list)  # refs skipped, and why
    # tags the remote holds at another version: (name, theirs, ours), as ``vN ID``
    refused: list[tuple[str, str, str]] = field(default_factory=list)


# ------------------------------------------------------------------------------- push


def push(
    repo: Repository,
    spec: RemoteSpec,
    branches: list[str],
    workers: Workers,
    *,
    all_branches: bool = False,
    tags: bool = False,
    jobs: int = 8,
    force: bool = False,
) -> Transfer:
    """Send branches (default: the current one) and optionally tags to a remote.

    ``force`` moves a remote branch to a version that does not descend from where it
    is (after ``dvfs branch -f``), with a lease: only if the remote's branch is still
    where this clone last saw it (``NAME/BRANCH``), so that nobody's push since is
    thrown away unseen; the conditional write makes that hold to the end.

    A remote is made (its directory, its format record) only by the first push to
    it. Once this clone has a copy of one of its branches, the remote held versions:
    finding it missing or empty means a NAS that is not mounted, a bucket emptied or
    a URL changed, and a push would start a new remote there, so it stops instead.
    """
    have = repo.refs.branches()
    for b in branches or ([] if all_branches else [repo.history.head().branch]):
        if b not in have:  # checked before the remote is touched (a first push makes it)
            raise UsageError(_no_branch(repo, b))
    seen, gone = had_versions(repo, spec)
    try:
        meter = connect(spec, jobs, create=not seen)
    except RemoteNotFound:
        if not seen:
            raise
        raise RemoteNotFound(f"{quote_name(spec.url)} does not exist, {gone}") from None
    remote = RemoteRepo(meter, index_cache(repo, spec.name))
    hist = repo.history
    local = repo.refs.branches()
    if all_branches:
        branches = sorted(local)
    elif not branches:
        branches = [hist.head().branch]
    report = Transfer()
    with repo.locked():
        if seen:
            remote.check_format(repo, empty=f"{remote.url} holds no dvfs repository, {gone}")
        else:
            remote.ensure_format(
                repo,
                foreign=f"{quote_name(remote.url)} holds files and no dvfs repository: nothing "
                "was pushed there; name a new or empty directory or prefix for the remote "
                f"(`dvfs remote remove {shlex.quote(spec.name)}`, then `dvfs remote add "
                f"{shlex.quote(spec.name)} URL`)",
            )
        plan: list[tuple[str, bytes, bytes | None, str | None]] = []
        for b in branches:
            tip = local.get(b)
            if tip is None:
                raise UsageError(_no_branch(repo, b))
            try:
                theirs, etag = remote.ref_with_etag("heads", b)
            except FormatError as exc:
                raise RemoteError(
                    f"remote {b} cannot be used ({exc}): nothing was pushed; "
                    f"{_MEND_REF.format(b=shlex.quote(b))} (the versions stay on the remote)"
                ) from None
            if theirs == tip:
                # this clone's copy of it may be older (the version came through another
                # remote, or a push was killed after the move): status reads that copy
                ref = f"refs/remotes/{spec.name}/{b}"
                if (mine := repo.refs.get(ref)) != tip:
                    repo.refs.update(ref, tip, mine)
                report.notes.append(f"{b}: already up to date")
                continue
            if theirs is not None and not hist.is_ancestor(theirs, tip):
                known = repo.refs.get(f"refs/remotes/{spec.name}/{b}")
                if force and theirs == known:
                    report.notes.append(
                        f"{b}: forced from {_version_label(repo, theirs)}, which it no longer "
                        "reaches"
                    )
                elif force:
                    last = _version_label(repo, known) if known else "nothing (never fetched)"
                    raise RefConflict(
                        f"remote {b} is at {_version_label(repo, theirs)}, not where this "
                        f"clone last saw it ({last}): nothing was changed on the remote; "
                        f"`dvfs fetch` and look at {spec.name}/{b} before forcing over it"
                    )
                elif not repo.store.has(theirs) and theirs not in remote.index():
                    raise RemoteError(
                        f"remote {b} names version {theirs.hex()[:12]}, which "
                        f"{quote_name(remote.url)} does not hold (the remote is damaged): "
                        f"nothing was changed on the remote; point its refs/heads/{b} back at "
                        "a version it holds, or push another branch"
                    )
                elif (
                    theirs == known
                    and repo.store.has(theirs)
                    and hist.merge_base(theirs, tip) is None
                ):
                    raise RefConflict(
                        f"{_unrelated(spec.name, b)}: nothing was changed on the remote; "
                        + _unrelated_ways(spec.name, b)
                    )
                elif theirs == known and repo.store.has(theirs):
                    raise RefConflict(
                        f"remote {b} is at {_version_label(repo, theirs)}, which {b} here no "
                        "longer follows (a `commit --amend` or `branch -f`): `dvfs push "
                        "--force` replaces it there, `dvfs pull` merges it (nothing was "
                        "changed on the remote)"
                    )
                else:
                    raise RefConflict(
                        f"remote {b} has versions you don't have: run `dvfs pull` "
                        "(nothing was changed on the remote)"
                    )
            plan.append((b, tip, theirs, etag))
        forced: dict[tuple[str, str], bytes | None] = {
            ("heads", b): tip
            for b, tip, theirs, _ in plan
            if theirs is not None and not hist.is_ancestor(theirs, tip)
        }
        if forced:  # (as a deletion, the versions it no longer reaches may be freed)
            _refuse_leaving_data_unreached(repo, spec, remote, forced, "pushed")
        tag_plan = repo.refs.tags() if tags else {}
        tags_there = _listed(meter, "tags") if tag_plan else {}
        new = [("heads", b) for b, _, theirs, _ in plan if theirs is None]
        _refuse_clashes(meter, spec, [*new, *(("tags", t) for t in tag_plan)], tags_there)
        if not plan and not tag_plan:
            report.notes.append("nothing to push")
            report.requests = meter.requests
            return report
        read_at = time.monotonic()
        shun = shunned(meter)  # before the index: see vfs.remote.gc
        index, lost_packs = _held(remote, shun)
        if lost_packs:
            report.warnings.append(
                f"{len(lost_packs):,} pack(s) the index of {remote.url} lists are missing from it "
                f"(packs/{min(lost_packs)[:12]}): what the versions pushed use of them was sent "
                f"again; `dvfs gc --remote {shlex.quote(spec.name)}` drops their listings"
            )
        _stop_at("indexed")
        records: list[bytes] = []
        chunks: list[bytes] = []
        for tip in dict.fromkeys([t for _, t, _, _ in plan] + list(tag_plan.values())):
            more_records, more_chunks = closure(hist, tip, index, whole=bool(lost_packs))
            records += more_records
            chunks += more_chunks
        ids = list(dict.fromkeys(records + chunks))  # records first; each object once
        del records, chunks
        _fetch_missing_first(repo, spec, ids, workers, jobs, report)
        hist.tree.cache_clear()  # the decoded trees are not needed while uploading
        for key, segment in upload(repo, remote, ids, workers, jobs, report, shun.packs):
            meter.put(key, segment)
            if (seg_id := segment_of(key)) is not None:  # (what the remote now holds is
                remote.keep_segment(seg_id, segment)  # known here without a fetch)
        _stop_at("uploaded")
        if time.monotonic() - read_at > PUSH_WINDOW and new_manifests(meter, shun.keys):
            raise UsageError(
                f"the push took over {PUSH_WINDOW / 3600:.0f} h and a remote gc ran meanwhile: "
                "no branch was moved; run `dvfs push` again (what was uploaded is reused)"
            )
        chain = chain_head(repo, spec.name)
        # The remote's audit chain gets the branches' entries before any of them moves
        # (vfs.repo.audit), all at once: its end is found once, not again for each branch.
        remote_audit.append_remote_many(
            meter,
            chain,
            [("push", ref_key("heads", b), theirs, tip, "") for b, tip, theirs, _ in plan],
        )
        lost: list[str] = []
        moved: list[tuple[str, bytes, bytes | None]] = []
        for b, tip, theirs, etag in plan:
            data = encode_ref(tip)
            key = ref_key("heads", b)
            try:
                if theirs is None:
                    meter.put_conditional(key, data, if_none_match=True)
                else:
                    meter.put_conditional(key, data, if_match=etag)
            except PreconditionFailed:
                lost.append(b)  # (its entry names a move that lost its race)
                continue
            ref = f"refs/remotes/{spec.name}/{b}"
            moved.append((ref, tip, repo.refs.get(ref)))
            report.notes.append(f"{b}: {hist.label(tip)} {tip.hex()[:10]}")
        refused = repo.refs.update_many(moved)
        if lost:
            more = f" (and {len(lost) - 1} more branches)" if len(lost) > 1 else ""
            raise RefConflict(
                f"remote {lost[0]}{more} has versions you don't have: run `dvfs pull` "
                "(it moved while pushing; your data is uploaded, the branch was not moved)"
            )
        if refused:
            raise RefConflict(next(iter(refused.values())))

        def differs(t: str, oid: bytes, theirs: bytes | None) -> None:
            there, here = _version_label(repo, theirs), _version_label(repo, oid)
            report.refused.append((t, there, here))
            report.notes.append(
                f"tag {t} differs on the remote ({there} there, {here} here): left as it is"
            )

        fresh: list[tuple[str, bytes]] = []  # the tags the remote lacks
        for t, oid in tag_plan.items():
            if t in tags_there:  # listed: read, not written (a tag never moves by a push)
                if tags_there[t] and tags_there[t] == meter.content_etag(encode_ref(oid)):
                    continue  # its listed ETag is that of these bytes: the same tag
                theirs, _ = remote.ref_with_etag("tags", t)
                if theirs == oid:
                    continue
                if theirs is not None:
                    differs(t, oid, theirs)
                    continue
                # (deleted since it was listed: pushed as a new one)
            fresh.append((t, oid))
        # Their entries first, one PUT each, then the tags, each created only if absent
        # (a tag made meanwhile is left as it is: its entry names a creation that lost
        # its race, as a branch's may).
        remote_audit.append_remote_many(
            meter, chain, [("push", ref_key("tags", t), None, oid, "") for t, oid in fresh]
        )
        for (t, oid), made in zip(fresh, _create_refs(meter, "tags", fresh, jobs), strict=True):
            if made:
                report.notes.append(f"tag {t}: {_version_label(repo, oid)}")
                continue
            theirs, _ = remote.ref_with_etag("tags", t)
            if theirs != oid:
                differs(t, oid, theirs)
    report.requests = meter.requests
    return report


def _held(remote: RemoteRepo, shun: Shunned) -> tuple[dict[bytes, Located], set[str]]:
    """The remote's index as a push relies on it, and the packs it names that the
    listing of ``packs/`` lacks (lost: deleted by hand, or with a disk).

    An object counts as there only in a pack the listing gives (read after the index:
    a pack is uploaded before the segment naming it) and no manifest condemns
    (``Shunned.visible``); one that only lost packs list is absent, and sent again."""
    index = shun.visible(remote.index(avoid=shun.packs))
    lost = {pack_id for pack_id, _ in index.values()} - remote.listed_packs()
    if not lost:
        return index, lost
    again = shun.visible(remote.index(avoid=shun.packs | lost))
    return {oid: hit for oid, hit in again.items() if hit[0] not in lost}, lost


def _create_refs(
    meter: Meter, kind: str, refs: list[tuple[str, bytes]], jobs: int
) -> Sequence[bool]:
    """Create each of the remote's ``kind`` refs ``refs`` (name, version) that it does
    not hold (If-None-Match: a directory remote's exclusive create, its folder fsynced
    once for all), ``jobs`` at once; for each, whether it was made (False: there
    already)."""

    return meter.create_many(
        [(ref_key(kind, name), encode_ref(oid)) for name, oid in refs], jobs=max(1, jobs)
    )


_WHAT = {"heads": "branch", "tags": "tag"}  # a remote ref's kind, as messages name it


def _listed(meter: Meter, kind: str) -> dict[str, str]:
    """The remote's ``kind`` refs by name, each with the ETag its listing gives where
    that ETag is computed from the bytes alone (``Backend.content_etag``: S3), else
    with "" (a listing of names only: a directory remote's ETags would cost a read)."""
    base = refs_prefix(kind)
    if meter.content_etag(b"") is None:
        listing: Iterable[tuple[str, str]] = ((key, "") for key in meter.list(base))
    else:
        listing = ((key, info.etag) for key, info in meter.list_info(base))
    return {
        key[len(base) :]: etag
        for key, etag in bounded(listing, MAX_REFS, meter.url, f"refs under {base}")
    }


def _refuse_clashes(
    meter: Meter, spec: RemoteSpec, refs: list[tuple[str, str]], tags_there: dict[str, str]
) -> None:
    """UsageError, before anything is uploaded or recorded, if one of ``refs`` (kind,
    name) the remote lacks and one it has are a name and a folder of it (``x`` and
    ``x/y``): a directory remote cannot store both, and readers use only ``x``.
    ``tags_there``: the remote's tags as :func:`_listed` gives them, listed already."""
    for kind in sorted({k for k, _ in refs}):
        base = refs_prefix(kind)
        there = (
            sorted(tags_there)
            if kind == "tags"
            else sorted(
                key[len(base) :]
                for key in bounded(meter.list(base), MAX_REFS, meter.url, f"refs under {base}")
            )
        )
        have = set(there)
        for k, name in refs:
            if k != kind or name in have:
                continue
            other = next(
                (o for o in there if o.startswith(f"{name}/") or name.startswith(f"{o}/")), None
            )
            if other is not None:
                what = _WHAT[kind]
                raise UsageError(
                    f"{spec.name} has {what} {quote_name(other)}, and a {what} "
                    f"{quote_name(name)} cannot sit beside it (a name and a folder of that "
                    f"name): nothing was pushed; push yours under another name (`dvfs {what} "
                    f"NEW {shlex.quote(name)}`)"
                )


def _remote_ref(meter: Meter, kind: str, name: str) -> tuple[bytes | None, str] | None:
    """A remote ref as a deletion reads it: (the version it names, its ETag), or None if
    it does not exist. A ref holding no version id (damaged by hand or by a disk) gives
    None for the version: it can still be deleted, which is how such a ref is mended."""
    key = ref_key(kind, name)
    try:
        etag = meter.head(key).etag
        data = meter.get_small(key, REF_LIMIT)
    except RemoteNotFound:
        return None
    try:
        return parse_ref(data, key), etag
    except FormatError:
        return None, etag


def delete_refs(repo: Repository, spec: RemoteSpec, names: list[str], jobs: int = 8) -> Transfer:
    """Delete branches or tags on a remote (``dvfs push --delete``).

    ``refs/heads/NAME`` or ``refs/tags/NAME`` say which; a bare NAME is the remote's
    branch or tag of that name, and UsageError if it has both. Each is checked before
    anything is deleted: it must exist, and name a version this clone stores (so nobody
    deletes a version they never saw: a push from elsewhere since the last fetch stops
    it, with what to run). Then, for each, the remote's audit chain gets its entry and
    the ref is deleted with If-Match on the ETag read, so a push that moved it meanwhile
    wins and nothing of it is lost; this clone's ``NAME/BRANCH`` goes too. The versions
    stay on the remote until ``dvfs gc --remote`` finds nothing reaching them.
    """
    plan: list[tuple[str, str, bytes | None, str]] = []  # kind, name, version, ETag
    meter = connect(spec, jobs)
    remote = RemoteRepo(meter, index_cache(repo, spec.name))
    remote.check_format(repo, empty=f"{remote.url} holds no dvfs repository: nothing to delete")
    for given in dict.fromkeys(names):
        kinds: tuple[str, ...] = ("heads", "tags")
        name = given
        for kind in kinds:
            if given.startswith(f"refs/{kind}/"):
                kinds, name = (kind,), given.removeprefix(f"refs/{kind}/")
        check_ref_name(name, "branch or tag", existing=True)
        found = [(k, got) for k in kinds if (got := _remote_ref(meter, k, name)) is not None]
        if not found:
            what = _WHAT[kinds[0]] if len(kinds) == 1 else "branch or tag"
            raise UsageError(
                f"{quote_name(spec.name)} has no {what} {quote_name(name)}: nothing was "
                f"deleted (`dvfs fetch --remote {shlex.quote(spec.name)}`, then `dvfs branch "
                "-r` and `dvfs tag` list them)"
            )
        if len(found) > 1:
            raise UsageError(
                f"{quote_name(spec.name)} has a branch and a tag named {quote_name(name)}: "
                f"say which, refs/heads/{name} or refs/tags/{name}; nothing was deleted"
            )
        kind, (oid, etag) = found[0]
        if oid is not None and not repo.store.has(oid):
            raise RefConflict(
                f"{spec.name}'s {_WHAT[kind]} {quote_name(name)} is at version {oid.hex()[:12]}, "
                "which this clone has never fetched (pushed from elsewhere since?): nothing "
                "was deleted; `dvfs fetch` and look at it first"
            )
        plan.append((kind, name, oid, etag))
    gone: dict[tuple[str, str], bytes | None] = {(kind, name): None for kind, name, _, _ in plan}
    _refuse_leaving_data_unreached(repo, spec, remote, gone, "deleted")
    report = Transfer()
    deleted: list[str] = []
    chain = chain_head(repo, spec.name)
    with repo.locked():
        for kind, name, oid, etag in plan:
            key, what = ref_key(kind, name), _WHAT[kind]
            remote_audit.append_remote(meter, chain, "delete", key, oid, None)
            try:
                meter.delete_conditional(key, if_match=etag)
            except PreconditionFailed:
                before = f" ({', '.join(deleted)} deleted before it)" if deleted else ""
                raise RefConflict(
                    f"{spec.name}'s {what} {quote_name(name)} moved while it was being "
                    f"deleted (a push from elsewhere): it was left as it is{before}; "
                    "`dvfs fetch` and look at it again"
                ) from None
            deleted.append(f"{what} {quote_name(name)}")
            was = "no version id" if oid is None else _version_label(repo, oid)
            report.notes.append(f"deleted {what} {name} on {spec.name} (it was at {was})")
            if kind == "heads":
                ref = f"refs/remotes/{spec.name}/{name}"
                if (mine := repo.refs.get(ref)) is not None:
                    repo.refs.update(ref, None, mine)
    report.requests = meter.requests
    return report


def _refuse_leaving_data_unreached(
    repo: Repository,
    spec: RemoteSpec,
    remote: RemoteRepo,
    moved: dict[tuple[str, str], bytes | None],
    doing: str,
) -> None:
    """UsageError if moving the refs ``moved`` (kind and name -> the version it is to
    name, None: deleted) leaves data that versions here use, and that only this remote
    holds (pruned here: ``dvfs store prune`` relies on the remote's refs reaching it),
    reached by nothing on the remote: its next gc would delete the last copy. ``doing``
    says what is done (deleted, pushed)."""
    kept = [
        oid
        for kind in ("heads", "tags")
        for name, oid in remote.refs(kind).items()
        if (kind, name) not in moved
    ]
    kept += [oid for oid in moved.values() if oid is not None]
    count, size = left_unreached(repo, spec.name, kept)
    if count:
        names = ", ".join(quote_name(name) for _, name in moved)
        verb = "deleting" if doing == "deleted" else "forcing"
        raise UsageError(
            f"{verb} {names} on {quote_name(spec.name)} would leave {count:,} chunk(s) "
            f"({size:,} bytes) that versions here use, and that the local store lacks "
            "(dropped by `dvfs store prune`, or never downloaded), reached by nothing there: "
            f"its next `dvfs gc --remote` would delete them; nothing was {doing}: delete "
            "here first what uses them (`dvfs branch -D NAME`), or push it to another remote"
        )


def _fetch_missing_first(
    repo: Repository,
    spec: RemoteSpec,
    ids: list[bytes],
    workers: Workers,
    jobs: int,
    report: Transfer,
) -> None:
    """Download from the other remotes (the default one first) the objects of ``ids``
    that this clone does not store: a clone holds the data of what it checked out
    only, and a push to another remote (a backup) needs the rest too.

    RemoteNotFound, before anything is uploaded, if some are on none of them."""
    store = repo.store
    missing = store.missing(ids)
    if not missing:
        return
    default = default_remote(repo)
    others = sorted(remotes(repo), key=lambda n: (n != default, n))
    got = Transfer()
    for name in others:
        if name == spec.name or not missing:
            continue
        meter = connect(get_remote(repo, name), jobs)
        index = RemoteRepo(meter, index_cache(repo, name)).index()
        here = [oid for oid in missing if oid in index]
        if here:
            download_chunks(store, meter, index, here, workers, jobs, got)
            report.notes.append(
                f"{len(here):,} objects this clone did not hold were downloaded from "
                f"remote {name} first"
            )
            missing = store.missing(missing)
    if missing:
        raise RemoteNotFound(
            f"{len(missing):,} object{'s' if len(missing) != 1 else ''} the push needs (such "
            f"as {missing[0].hex()[:12]}) {'are' if len(missing) != 1 else 'is'} neither in "
            "the local store nor on another remote of this clone: nothing was "
            "pushed; push from a repository that has them, or `dvfs remote add` one that does"
        )


def _version_label(repo: Repository, oid: bytes | None) -> str:
    """``vN ID`` of a version, or its id alone if it is not stored here."""
    if oid is None:
        return "nothing"
    if repo.store.has(oid):
        return f"{repo.history.label(oid)} {oid.hex()[:10]}"
    return oid.hex()[:10]


def refused_tags_error(refused: list[tuple[str, str, str]]) -> RefConflict:
    """The error a push ends with when the remote holds some of its tags elsewhere."""
    if len(refused) == 1:
        t, there, here = refused[0]
        return RefConflict(
            f"tag {quote_name(t)} is {there} on the remote and {here} here: it was not "
            f"pushed (the rest was); `dvfs tag -d {shlex.quote(t)} && dvfs fetch` takes the "
            "remote's, or tag yours under another name and push that"
        )
    names = ", ".join(quote_name(t) for t, _, _ in refused[:5])
    names += ", ..." if len(refused) > 5 else ""
    return RefConflict(
        f"{len(refused)} tags are other versions on the remote ({names}): they were not "
        "pushed (the rest was); `dvfs tag -d NAME && dvfs fetch` takes the remote's, or tag "
        "yours under other names and push those"
    )


# ------------------------------------------------------------------------------- fetch


@dataclass
class FetchResult:
    """What a fetch learned."""

    heads: dict[str, bytes]
    tags: dict[str, bytes]
    index: dict[bytes, Located]
    transfer: Transfer
    skipped: dict[str, str] = field(default_factory=dict)  # remote branch -> why left out
    # this clone's NAME/BRANCH for branches deleted on the remote: pruned, or left
    gone: dict[str, bytes] = field(default_factory=dict)
    pruned: bool = False
    damaged: set[str] = field(default_factory=set)  # remote branches holding no version id
    new_tags: dict[str, bytes] = field(default_factory=dict)  # tags this fetch copied here


def fetch_locked(
    repo: Repository,
    spec: RemoteSpec,
    meter: Meter,
    jobs: int,
    *,
    known: bool = False,
    prune: bool = False,
    look_gone: bool = False,
) -> FetchResult:
    """Fetch refs, versions and trees (no file data); caller holds the lock.

    With ``known`` (a clone's configured remote, not a cache's copy of a URL), a
    remote found empty while this clone has branches of it is RemoteNotFound, as for
    a push: a NAS not mounted, a bucket emptied, a URL changed. ``gone`` names this
    clone's branches of the remote that the remote no longer has (not merely skipped:
    their keys are gone), with ``look_gone`` or ``prune``; ``prune`` deletes them
    here, as git's ``fetch --prune`` does.
    """
    note_location(repo, spec)
    remote = RemoteRepo(meter, index_cache(repo, spec.name))
    seen, gone = had_versions(repo, spec) if known else ([], "")
    remote.check_format(
        repo, empty=f"{remote.url} holds no dvfs repository, {gone}" if seen else None
    )
    report = Transfer()
    damaged: dict[str, str] = {}
    held = _held_versions(repo, spec)
    heads = remote.refs("heads", report.warnings, damaged, held)
    tags = remote.refs("tags", report.warnings, known=held)
    index = remote.index() if heads or tags else {}
    skipped = {
        name: f"{why}; {_MEND_REF.format(b=shlex.quote(name))}" for name, why in damaged.items()
    }
    for kind, refs in (("branch", heads), ("tag", tags)):
        for name, oid in list(refs.items()):
            if oid not in index and not repo.store.has(oid):
                why = (
                    f"{remote.url}: remote {kind} {quote_name(name)} skipped: it names version "
                    f"{oid.hex()[:12]}, which the remote does not hold (an interrupted push?)"
                )
                report.warnings.append(why)
                if refs is heads:
                    skipped[name] = why
                del refs[name]
    fetch_records(repo.store, remote, [*heads.values(), *tags.values()], index, jobs, report)
    stale = _gone_branches(repo, spec, meter, heads, skipped) if look_gone or prune else {}
    if prune:  # first: a branch x/y may have taken the place of x
        refused = repo.refs.update_many(
            [(f"refs/remotes/{spec.name}/{b}", None, oid) for b, oid in stale.items()]
        )
        if refused:
            raise RefConflict(next(iter(refused.values())))
    # The remote branches and the new tags are written as one durable step
    # (Refs.update_many): a clone of thousands of tags made five fsyncs a tag.
    changes: list[tuple[str, bytes | None, bytes | None]] = []
    for b, oid in heads.items():
        ref = f"refs/remotes/{spec.name}/{b}"
        changes.append((ref, oid, repo.refs.get(ref)))
    named = remotes(repo)
    new_tags: dict[str, bytes] = {}
    for t, oid in list(tags.items()):
        top, slash, rest = t.partition("/")
        if slash and top in named:  # (as `dvfs tag` refuses it: one would hide the other)
            report.warnings.append(
                f"{remote.url}: remote tag {quote_name(t)} not copied here: it would be read "
                f"as remote {top}'s branch {quote_name(rest)}"
            )
            continue
        mine = repo.refs.get(f"refs/tags/{t}")
        if mine is None and twin_refused(repo.refs, "tag", t):
            report.warnings.append(
                f"{remote.url}: remote tag {quote_name(t)} not copied here: branch "
                f"{quote_name(t)} here would hide it (`dvfs fetch` copies it once no branch "
                "has that name)"
            )
            continue
        if mine is None:
            changes.append((f"refs/tags/{t}", oid, None))
            new_tags[t] = oid
        elif mine != oid:
            report.notes.append(f"tag {t} differs from the remote's: kept yours")
    refused = repo.refs.update_many(changes)
    for b in list(heads):
        conflict = refused.get(f"refs/remotes/{spec.name}/{b}")
        if conflict is not None:
            skipped[b] = f"remote branch {b} was not recorded: {conflict}"
            report.warnings.append(skipped[b])
            del heads[b]
    for t in list(new_tags):
        conflict = refused.get(f"refs/tags/{t}")
        if conflict is not None:
            report.warnings.append(f"remote tag {t} was not recorded: {conflict}")
            del tags[t], new_tags[t]
    _bound_warnings(report.warnings)
    report.requests = meter.requests
    return FetchResult(heads, tags, index, report, skipped, stale, prune, set(damaged), new_tags)


MAX_FETCH_WARNINGS = 50


def _bound_warnings(lines: list[str]) -> None:
    """Keep the first ``MAX_FETCH_WARNINGS`` of a fetch's warnings, and one line saying how
    many more there were: a remote may hold 100,000 refs skipped one warning each."""
    left = len(lines) - MAX_FETCH_WARNINGS
    if left > 1:
        del lines[MAX_FETCH_WARNINGS:]
        lines.append(
            f"{left:,} more warnings like those above not shown (refs of the remote skipped "
            "or not copied here)"
        )


def _held_versions(repo: Repository, spec: RemoteSpec) -> set[bytes]:
    """What this clone's copies of ``spec``'s branches and its tags name: a remote ref
    whose listed ETag says it still names one of them need not be read again."""
    try:
        return {*tracking_branches(repo, spec.name).values(), *repo.refs.tags().values()}
    except DvfsError:  # (a damaged refs folder: reported by the commands that use it)
        return set()


_MEND_REF = "the clone that pushed it last mends it: `dvfs push --delete {b}`, then `dvfs push`"


def _gone_branches(
    repo: Repository,
    spec: RemoteSpec,
    meter: Meter,
    heads: dict[str, bytes],
    skipped: dict[str, str],
) -> dict[str, bytes]:
    """This clone's branches of ``spec`` whose ref the remote no longer has at all."""
    out: dict[str, bytes] = {}
    for b, oid in tracking_branches(repo, spec.name).items():
        if b in heads or b in skipped:
            continue
        try:
            meter.head(ref_key("heads", b))
        except RemoteNotFound:
            out[b] = oid
        except RemoteError:
            continue  # there, but not a ref that can be read (a link, a FIFO): skipped
    return out


def mirror_locked(repo: Repository, spec: RemoteSpec, meter: Meter, jobs: int) -> FetchResult:
    """Make ``repo`` (a metadata repository of its own, ``vfs.remote.read.open_meta``)
    the remote as it is now: :func:`fetch_locked`, then its branches and tags as this
    repository's own (those gone there deleted here) and HEAD on its preferred branch.
    For ``vfs.Repo.remote`` and ``dvfs ui URL``; the caller holds the lock."""
    got = fetch_locked(repo, spec, meter, jobs)
    refs = repo.refs
    for kind, theirs in (("heads", got.heads), ("tags", got.tags)):
        mine = refs.branches() if kind == "heads" else refs.tags()
        gone = [(f"refs/{kind}/{name}", None, mine[name]) for name in set(mine) - set(theirs)]
        moved = [
            (f"refs/{kind}/{name}", oid, mine.get(name))
            for name, oid in theirs.items()
            if mine.get(name) != oid
        ]
        for batch in (gone, moved):  # (the deletions first: x/y may take the place of x)
            refused = refs.update_many(batch)
            if refused:
                raise RefConflict(next(iter(refused.values())))
    if got.heads:
        refs.set_head(Head(preferred_branch(got.heads)))
    return got


def fetch(repo: Repository, spec: RemoteSpec, jobs: int = 8, *, prune: bool = False) -> FetchResult:
    """Fetch refs, versions and trees from a remote (``prune``: see fetch_locked)."""
    meter = connect_known(repo, spec, jobs)
    with repo.locked():
        return fetch_locked(repo, spec, meter, jobs, known=True, prune=prune, look_gone=True)


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
    """Download the chunks of version ``target`` (below ``prefixes``) missing here.

    A chunk the remote's index does not list is left out: the checkout that follows
    finds its files' data nowhere and leaves them not checked out, naming them.
    """
    hist = repo.history
    items = (
        (path, e)
        for path, e in hist.walk(hist.version(target).tree)
        if not prefixes or any(not p or path == p or path.startswith(p + b"/") for p in prefixes)
    )
    need, _ = missing_chunks(repo.store, items)
    here = [oid for oid in need if oid in index]
    download_chunks(repo.store, meter, index, here, workers, jobs, report)


# ------------------------------------------------------------------------------- pull


@dataclass
class PullResult:
    """What a pull did."""

    transfer: Transfer
    checkout: co.CheckoutReport | None
    message: str
    conflicts: int = 0  # a merge (``merge=True``) stopped on this many conflicts
    failed: dict[bytes, DvfsError] = field(default_factory=dict)  # a merge's, not restored
    kept: list[bytes] = field(default_factory=list)  # a merge's, changed meanwhile (MergeReport)
    written: int = 0  # files a merge wrote or deleted
    label: str = ""  # the version a merge made, or the branch's (conflicts)


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
    yes: bool = False,
    merge: bool = False,
) -> PullResult:
    """Fetch, download what REV (or PATHs of it) needs, and bring the working tree there.

    Unless ``yes``, a target that would expand far beyond its distinct data is refused
    before anything is downloaded for it (``vfs.remote.receive.check_expansion``). If the
    branch and the remote's have diverged, ``merge`` merges the remote's into it
    (``vfs.ops.merge``); without it the branch is left alone.
    """
    meter = connect(spec, jobs)
    hist = repo.history
    with repo.locked():
        got = fetch_locked(repo, spec, meter, jobs, known=True)
        co.remove_temporaries_after_crash(repo, got.transfer.warnings.append)
        branch = hist.head().branch
        remote_tip = got.heads.get(branch)
        if rev is not None:
            try:
                target = hist.resolve(rev)
            except RevisionNotFound:
                local = repo.refs.get(f"refs/heads/{branch}")
                theirs = _remote_vn(hist, remote_tip, local, rev)
                # `dvfs pull data/x`: a path of the remote branch, not a revision.
                if theirs is not None:  # `dvfs pull v3` of a branch behind: the remote's v3
                    rev, target = theirs.hex(), theirs
                elif remote_tip is None or not _is_path_of(repo, remote_tip, rev):
                    if rev in remotes(repo):  # git's `pull origin main`
                        raise UsageError(
                            f"{rev} is a remote, not a revision: `dvfs pull --remote {rev}` "
                            "pulls the current branch from it"
                        ) from None
                    raise
                else:
                    paths, rev, target = [rev, *paths], None, remote_tip
        elif remote_tip is None:
            why = got.skipped.get(branch)
            last = repo.refs.get(f"refs/remotes/{spec.name}/{branch}")
            if why is None and last is not None:  # there when last fetched: deleted since
                why = (
                    f"it was deleted there since {spec.name}/{branch} here was fetched "
                    f"({_version_label(repo, last)}); `dvfs push` makes it again"
                )
            if why is None and got.heads:  # (a new repository, a remote whose main is another)
                other = preferred_branch(got.heads)
                names = ", ".join(quote_name(b) for b in sorted(got.heads)[:5])
                why = (
                    f"it has {names}{', ...' if len(got.heads) > 5 else ''}: `dvfs switch -c "
                    f"{shlex.quote(other)} {shlex.quote(f'{spec.name}/{other}')}` makes one here, "
                    "which `dvfs pull` then follows"
                )
            head = f"{spec.name} has no branch {branch}"
            if branch in got.damaged:  # (there, but holding no version id)
                head = f"{spec.name}'s branch {branch} cannot be used"
            raise UsageError(f"{head}: nothing to pull" + (f"; {why}" if why else ""))
        else:
            target = remote_tip
        if paths and rev is None and target == remote_tip:
            target = _path_target(repo, spec, branch, target)
        prefixes = [repo.rel(p) for p in paths]
        if not yes:
            check_expansion(hist, target, prefixes, _label(hist, target))
        download_data(repo, meter, got.index, target, prefixes, workers, jobs, got.transfer)
    got.transfer.requests = meter.requests
    if paths or rev is not None:
        report = co.checkout(repo, rev or target.hex(), paths, workers, force=force, action="pull")
        return PullResult(got.transfer, report, "")
    local = repo.refs.get(f"refs/heads/{branch}")
    if local == target:
        with repo.locked():  # a partial working tree (clone --no-checkout, or killed) is filled
            # The branch moved past the working tree (a pull killed once it had moved the
            # branch, a mount's snapshot): the working tree is brought there, as by switch.
            if moved_past(hist, repo.index()) is not None:
                report = co.restore_version(
                    repo, target, workers, attach=branch, force=force, warn=quiet, action="pull"
                )
                return PullResult(got.transfer, report, "")
            brought = restore_not_checked_out(repo, workers, warn=got.transfer.warnings.append)
        if not brought.written and not brought.failed:
            return PullResult(got.transfer, None, f"{branch} is up to date")
        report = co.CheckoutReport(
            hist.label(target), branch, written=brought.written, unchanged=brought.unchanged,
            fetched=brought.fetched, failed=brought.failed,
        )  # fmt: skip
        return PullResult(
            got.transfer, report, f"{branch} is up to date; the files not checked out are written"
        )
    if local is not None and hist.is_ancestor(target, local):
        return PullResult(
            got.transfer, None, f"{branch} is ahead of {spec.name}/{branch}: `dvfs push` it"
        )
    if local is not None and not hist.is_ancestor(local, target):
        if hist.merge_base(local, target) is None:
            raise UsageError(
                f"{_unrelated(spec.name, branch)}: {branch} was left as it is; "
                + _unrelated_ways(spec.name, branch)
            )
        if merge:
            done = merging.merge(repo, f"{spec.name}/{branch}", workers)
            said = merge_message(done, f"{spec.name}/{branch}")
            return PullResult(
                got.transfer, None, said, len(done.conflicts), done.failed, done.kept,
                done.written + done.deleted, done.label,
            )  # fmt: skip
        raise UsageError(
            f"{_diverged(hist, spec, branch, local, target)}: {branch} was left as it is; "
            f"`dvfs pull --merge` merges {spec.name}/{branch} into it"
        )
    report = co.fast_forward(repo, branch, local, target, workers, force=force)
    return PullResult(got.transfer, report, "")


def _path_target(repo: Repository, spec: RemoteSpec, branch: str, theirs: bytes) -> bytes:
    """The version ``dvfs pull PATH`` takes PATH from: the remote's branch ``theirs``
    when it is the branch's or ahead of it (the branch behind: as documented, its
    files at PATH are the remote's); the branch's own when it is ahead, for the
    remote holds nothing newer (its files were once replaced by the remote's older
    ones, staged, reverting the branch's own versions); refused when they diverged,
    as a pull of the whole branch is."""
    hist = repo.history
    local = repo.refs.get(f"refs/heads/{branch}")
    if local is None or local == theirs or hist.is_ancestor(local, theirs):
        return theirs
    if hist.is_ancestor(theirs, local):
        return local
    raise UsageError(
        f"{_diverged(hist, spec, branch, local, theirs)}: the working tree was left as it "
        f"is; `dvfs pull HEAD PATH` brings PATH of {branch}'s version, `dvfs pull --merge` "
        f"merges {spec.name}/{branch} into it"
    )


def _unrelated(remote: str, branch: str) -> str:
    """How a pull or push names a branch and the remote's with no version in common."""
    return (
        f"{branch} and {remote}/{branch} have no version in common (the remote's history "
        "was made anew at this URL, or is another project's), so they cannot be merged"
    )


def _unrelated_ways(remote: str, branch: str) -> str:
    """The ways out of :func:`_unrelated` (dvfs merges related histories only)."""
    return (
        f"`dvfs push --remote {shlex.quote(remote)} --force {shlex.quote(branch)}` replaces "
        f"the remote's {branch} with yours, or `dvfs switch -c NAME "
        f"{shlex.quote(f'{remote}/{branch}')}` works on theirs"
    )


def _diverged(hist: History, spec: RemoteSpec, branch: str, local: bytes, theirs: bytes) -> str:
    """How a pull names a branch and the remote's that diverged, with both versions."""
    return (
        f"{branch} and {spec.name}/{branch} have diverged ({hist.label(local)} "
        f"{local.hex()[:10]} here, {hist.label(theirs)} {theirs.hex()[:10]} there)"
    )


def _no_branch(repo: Repository, name: str) -> str:
    """Why ``dvfs push NAME`` has nothing to send: NAME is a remote, no branch, or empty."""
    if name in remotes(repo):  # git's `push origin main`
        return (
            f"{name} is a remote, not a branch: `dvfs push --remote {name}` sends the "
            f"current branch to it (`dvfs push --remote {name} BRANCH...` others)"
        )
    if name == repo.history.head().branch:
        return f"branch {name} has no versions to push: commit first"
    return f"there is no branch {quote_name(name)}: `dvfs branch` lists them"


def _remote_vn(
    hist: History, remote_tip: bytes | None, local: bytes | None, rev: str
) -> bytes | None:
    """The version ``vN`` names on the remote's copy of the branch, when the branch
    here has no such number because it is behind (its tip is on the remote's chain,
    so both count alike); else None."""
    m = re.fullmatch(r"v([1-9][0-9]{0,8})", rev.strip())
    if m is None or remote_tip is None:
        return None
    if local is not None and not hist.on_chain(remote_tip, local):
        return None  # (diverged: the remote's vN is another version than one here would be)
    n = int(m.group(1))
    for oid, v in hist.chain(remote_tip):
        if v.number <= n:
            return oid if v.number == n else None
    return None


def merge_message(m: merging.MergeReport, rev: str) -> str:
    """What a pull that merged says."""
    if m.outcome == "merged":
        return f"merged {rev}: {m.label} {m.oid.hex()[:10]}"
    left = ", ".join(quote_name(os.fsdecode(c.path)) for c in m.conflicts[:10])
    more = f" and {len(m.conflicts) - 10} more" if len(m.conflicts) > 10 else ""
    n = len(m.conflicts)
    return (
        f"merging {rev} stopped: {n} conflict{'s' if n != 1 else ''} ({left}{more}); settle "
        "each with `dvfs restore --ours|--theirs PATH`, then `dvfs commit`; "
        "`dvfs merge --abort` gives it up"
    )


# ------------------------------------------------------------------------------- clone


def default_dir(url: str) -> str:
    """The directory a clone of ``url`` goes to when none is given: the last part of
    the remote's path as it resolves (``/srv/cats/.`` gives ``cats``, never the current
    directory), else of the S3 prefix, else the bucket."""
    try:
        where = parse_url(url)
    except UsageError:
        return "dvfs-clone"  # (the clone itself says what is wrong with the URL)
    if where.path is not None:
        name = os.path.basename(os.path.abspath(where.path))
    else:
        name = where.prefix.rsplit("/", 1)[-1] or where.bucket
    return name if name not in ("", ".", "..") else "dvfs-clone"


def clone(
    url: str,
    directory: Path,
    workers: Workers,
    *,
    rev: str | None = None,
    no_checkout: bool = False,
    endpoint_url: str | None = None,
    jobs: int = 8,
    yes: bool = False,
) -> tuple[Repository, Transfer, str, co.CheckoutReport | None]:
    """Make a new repository from a remote and check out its main branch (or ``rev``:
    one of the remote's branches is made here and checked out, as ``git clone -b``
    does; any other revision is checked out detached).

    Returns the repository, what was transferred, the branch, and what the checkout did
    (None with ``no_checkout``): files whose data no remote holds are in its ``failed``.

    Unless ``yes``, a version that would expand far beyond its distinct data is not
    checked out (``vfs.remote.receive.check_expansion``), and the clone is removed.
    """
    spec = RemoteSpec("origin", url, endpoint_url)
    refuse_inside_metadata(directory)  # (before the remote is asked anything)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory: clone into another one")
    above = next((p for p in directory.absolute().parents if os.path.lexists(p)), None)
    if above is not None and not above.is_dir():  # (mkdir would say "Not a directory")
        raise UsageError(f"{above} is not a directory: clone into a directory below one")
    if directory.is_dir() and set(directory.iterdir()) - set(init_leftovers(directory)):
        if (directory / DVFS_DIR).is_dir():
            raise UsageError(
                f"{directory} is already a dvfs repository: if it is a clone that was "
                "interrupted, `dvfs pull` in it finishes it; else clone into another directory"
            )
        raise UsageError(
            f"{directory} exists and is not an empty directory: clone into another one"
        )
    meter = connect(spec, jobs)
    probe = RemoteRepo(meter, None)
    text = probe.read_format()
    if text is None and (there := repository_at(url)) is not None:
        raise UsageError(
            f"{quote_name(str(there))} is a dvfs repository, not a remote: dvfs clones a "
            "remote, which `dvfs push` writes; in that repository, `dvfs remote add NAME "
            f"DIR` (a new directory) and `dvfs push --remote NAME`, then `dvfs clone DIR "
            f"{shlex.quote(str(directory))}`"
        )
    if text is None:
        raise _nothing_to_clone(f"{url} holds no dvfs repository", spec, directory)
    params = parse_format(text, f"{url}/format")
    made = not directory.exists()
    kept = checked_spec(directory.absolute(), spec)  # (before anything is made)
    try:  # (with its remote from the start: a clone killed at any time is finished by pull)
        settings = {"remotes": {spec.name: kept.record()}, "default_remote": spec.name}
        repo = Repository.init(directory, chunker=params, config=settings)
        with repo.locked():
            got = fetch_locked(repo, spec, meter, jobs)
            if not got.heads and (not got.tags or rev is None):
                if got.tags:  # (a remote whose branches were deleted, its tags kept)
                    raise _only_tags(spec, directory, got)
                skipped = "".join(f"; {w}" for w in got.transfer.warnings[:3])
                raise _nothing_to_clone(f"{url} has no branches yet", spec, directory, skipped)
            # --rev naming one of the remote's branches makes that branch, as git's -b
            on_branch = rev is not None and rev in got.heads
            tip: bytes | None = None
            if on_branch or got.heads:
                branch = rev if rev is not None and on_branch else preferred_branch(got.heads)
                tip = got.heads[branch]
                repo.refs.update(f"refs/heads/{branch}", tip, None)
            else:  # only tags: HEAD is detached at --rev, on a branch with no versions yet
                branch = DEFAULT_BRANCH
            repo.refs.set_head(Head(branch))
            try:
                target = repo.history.resolve(rev) if rev and not on_branch else got.heads[branch]
            except RevisionNotFound as exc:
                raise unknown_in_clone(exc, spec, directory, got) from None
            if not yes:
                check_expansion(
                    repo.history, target, [], _label(repo.history, target), paths_only=no_checkout
                )
            if no_checkout:
                co.nothing_checked_out(repo, target, branch, attached=target == tip)
            if not no_checkout:
                download_data(repo, meter, got.index, target, [], workers, jobs, got.transfer)
        report = None
        if not no_checkout:
            if rev and not on_branch:
                report = co.checkout(repo, rev, [], workers)
            else:
                report = branches.switch(repo, branch, workers, force=True)
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
    return repo, got.transfer, branch, report


def unknown_in_clone(
    exc: RevisionNotFound, spec: RemoteSpec, directory: Path, got: FetchResult
) -> RevisionNotFound:
    """``clone --rev REV`` of a REV the remote lacks: the clone is removed, so the usual
    hint (`dvfs log` here) cannot be run; the remote's branches and tags are named,
    and how to list every version instead."""
    if exc.hint or exc.candidates:
        guess = exc.hint or "did you mean: " + ", ".join(exc.candidates)
        return RevisionNotFound(exc.rev, exc.candidates, f"{guess}; nothing was cloned")

    def names(kind: str, plural: str, found: dict[str, bytes]) -> str:
        if not found:
            return f"no {plural}"
        shown = ", ".join(quote_name(n) for n in sorted(found)[:10])
        more = f" and {len(found) - 10} more" if len(found) > 10 else ""
        return f"{kind if len(found) == 1 else plural} {shown}{more}"

    endpoint = f" --endpoint-url {shlex.quote(spec.endpoint_url)}" if spec.endpoint_url else ""
    return RevisionNotFound(
        exc.rev,
        hint=(
            f"{quote_name(spec.url)} has {names('branch', 'branches', got.heads)} and "
            f"{names('tag', 'tags', got.tags)}; nothing was cloned: `dvfs clone --no-checkout"
            f"{endpoint} {shlex.quote(spec.url)} {shlex.quote(str(directory))}` fetches no "
            "file data, and `dvfs log` there lists every version"
        ),
    )


def _only_tags(spec: RemoteSpec, directory: Path, got: FetchResult) -> UsageError:
    """A clone without ``--rev`` of a remote that has tags but no branch: which to give."""
    endpoint = f" --endpoint-url {shlex.quote(spec.endpoint_url)}" if spec.endpoint_url else ""
    names = sorted(got.tags)
    shown = ", ".join(quote_name(n) for n in names[:10])
    more = f" and {len(names) - 10} more" if len(names) > 10 else ""
    return UsageError(
        f"{quote_name(spec.url)} has no branches, only tags ({shown}{more}): nothing was "
        f"cloned; `dvfs clone --rev {shlex.quote(names[-1])}{endpoint} {shlex.quote(spec.url)} "
        f"{shlex.quote(str(directory))}` checks one out"
    )


def _nothing_to_clone(
    what: str, spec: RemoteSpec, directory: Path, skipped: str = ""
) -> UsageError:
    """A clone of a remote nobody pushed to: how to start it instead. A directory
    given relative to here is named from the root (the hint's `remote add` runs in
    the new repository, where the relative name would point inside it)."""
    endpoint = f" --endpoint-url {shlex.quote(spec.endpoint_url)}" if spec.endpoint_url else ""
    url = spec.url if "://" in spec.url else os.path.abspath(os.path.expanduser(spec.url))
    return UsageError(
        f"{what}: nothing to clone; to start it, `dvfs init {shlex.quote(str(directory))}`, "
        f"then in it `dvfs remote add origin {shlex.quote(url)}{endpoint}`, commit and "
        f"`dvfs push`{skipped}"
    )


def _label(hist: History, oid: bytes) -> str:
    return f"{hist.label(oid)} ({oid.hex()[:10]})"


def log_remote(
    repo: Repository, spec: RemoteSpec, branch: str | None = None, jobs: int = 8
) -> tuple[str, list[str], dict[bytes, dict[str, list[str]]]]:
    """Fetch metadata; return the remote-tracking ref to list, of the remote's ``branch``
    (default: the current branch's, else the remote's main one), the warnings to show
    (the fetch's, and which branch is listed when it is not the current one), and the
    remote's names of its versions, as :func:`vfs.ops.browse.decorations` gives this
    repository's: its tags, and its branches as ``NAME/BRANCH`` (this repository's
    own tags and branches are not the remote's)."""
    got = fetch(repo, spec, jobs)
    warnings = got.transfer.warnings
    names: dict[bytes, dict[str, list[str]]] = {}
    for kind, refs in (("tags", got.tags), ("branches", got.heads)):
        for name, oid in sorted(refs.items()):
            shown = name if kind == "tags" else f"{spec.name}/{name}"
            names.setdefault(oid, {"tags": [], "branches": []})[kind].append(shown)
    if branch is not None:
        if branch not in got.heads:
            have = ", ".join(quote_name(b) for b in sorted(got.heads)[:10]) or "none"
            raise UsageError(
                f"{quote_name(spec.name)} has no branch {quote_name(branch)} (its branches: "
                f"{have}): `dvfs log --remote {shlex.quote(spec.name)} BRANCH` lists one"
            )
        return f"{spec.name}/{branch}", warnings, names
    branch = repo.history.head().branch
    if branch not in got.heads:
        if not got.heads and got.tags:
            name = sorted(got.tags)[-1]
            raise UsageError(
                f"{quote_name(spec.name)} has no branches, only tags (fetched here now): "
                f"`dvfs log {shlex.quote(name)}` lists the versions of one, `dvfs tag` names them"
            )
        if not got.heads:
            raise UsageError(f"{spec.name} has no versions yet")
        other = preferred_branch(got.heads)
        warnings.append(
            f"{quote_name(spec.name)} has no branch {quote_name(branch)}: listing its "
            f"branch {quote_name(other)}"
        )
        branch = other
    return f"{spec.name}/{branch}", warnings, names
