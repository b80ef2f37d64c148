"""File data fetched when a command needs it: the chunks a checkout, restore or cat
reads that the local store lacks come from the default remote first, then (what the
default lacks, or all when it fails) from each other remote whose index, as last read,
lists some of it: ``store prune --remote NAME`` may have dropped data only NAME holds.

A clone or pull downloads only what its target needs (``--no-checkout``, ``pull
PATH``), so the local store of a repository is often partial. Before a command writes
or prints file data, :func:`ensure_local` finds the chunks it needs that are not
stored here and downloads exactly those from the default remote: several per ranged
GET of a pack, ``jobs`` requests in parallel, with a progress bar counting chunks;
each chunk is verified before it is stored, and the local packs are flushed before
the command goes on, so that the index never names a chunk that is not on disk.

Nothing in the working tree changes before the download is over: if the remote
cannot be reached, or ``--offline`` says not to try, the command stops first and says
which files (by path, never by chunk id) need data and what gets it. A chunk that the
remote does not hold either fails only the files that need it (the caller restores
the others and reports those). A kill at any moment leaves at most a pack under a
temporary name in the store, which ``dvfs fsck`` removes.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from vfs.errors import RemoteError, UsageError
from vfs.model.codec import Entry, decode_tree
from vfs.model.version_codec import decode_version
from vfs.quoting import quote_name
from vfs.remote.config import (
    Meter,
    connect_known,
    default_remote,
    get_remote,
    had_versions,
    index_cache,
    lacking_here,
)
from vfs.remote.config import remotes as configured_remotes
from vfs.remote.reader import Located, RemoteRepo, cached_remote_ids
from vfs.remote.receive import EXPANSION_FLOOR_BYTES, EXPANSION_RATIO, Report
from vfs.repo.reach import reach
from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore
from vfs.worktree.pools import Workers

FILES_NAMED = 5  # files an error names before "and N more"
JOBS = 8  # ranged GETs in flight


@dataclass
class Fetched:
    """What :func:`ensure_local` did."""

    unavailable: dict[bytes, str] = field(default_factory=dict)  # path -> why it has no data
    remote: str | None = None  # where chunks were downloaded from
    objects: int = 0  # chunks downloaded
    bytes: int = 0  # and their bytes, as stored


def missing_chunks(
    store: ObjectStore, items: Iterable[tuple[bytes, Entry]]
) -> tuple[dict[bytes, int], dict[bytes, list[bytes]]]:
    """The chunks of ``items`` not stored here (id -> size), and the paths that need each."""
    need: dict[bytes, int] = {}
    users: dict[bytes, list[bytes]] = {}
    have = store.has
    for path, e in items:
        for c in e.chunks:
            if c.oid in need:
                users[c.oid].append(path)
            elif not have(c.oid):
                need[c.oid] = c.size
                users[c.oid] = [path]
    return need, users


STOP_ENV = "DVFS_TEST_DOWNLOAD_STOP_AFTER"


def _stop(store: ObjectStore) -> None:
    """Test hook (``DVFS_TEST_DOWNLOAD_STOP_AFTER=N``, once ``N`` chunks are downloaded):
    make them durable and stop this process (SIGSTOP), as if killed midway."""
    store.flush()
    os.kill(os.getpid(), signal.SIGSTOP)


def download_chunks(
    store: ObjectStore,
    meter: Meter,
    index: dict[bytes, Located],
    need: Iterable[bytes],
    workers: Workers,
    jobs: int,
    report: Report,
) -> None:
    """Download chunks ``need`` (all in ``index``) into ``store`` and flush it."""
    wanted = list(need)
    if not wanted:
        return
    remote = RemoteRepo(meter, None)
    total = sum(index[o][1].stored_len for o in wanted)
    hook = os.environ.get(STOP_ENV, "")
    stop_after = int(hook) if hook.isdigit() else -1
    workers.progress.start("downloading", len(wanted), total, "chunks")
    try:
        with ThreadPoolExecutor(max(1, jobs)) as pool:
            for obj, payload in remote.download(wanted, index, pool, jobs):
                store.put_stored(obj.oid, obj.kind, obj.compression, payload, obj.raw_len)
                report.objects += 1
                report.bytes += len(payload)
                workers.progress.advance(1, len(payload))
                if report.objects == stop_after:
                    _stop(store)
    finally:
        workers.progress.done()
    store.flush()


def left_unreached(repo: Repository, name: str, kept: Iterable[bytes]) -> tuple[int, int]:
    """The chunks (how many, their bytes) of ``vfs.remote.config.held_only_by`` that none of the
    versions ``kept`` reaches: the refs remote ``name`` keeps after some are deleted
    (``dvfs push --delete``). Its next ``dvfs gc --remote`` deletes them, the last
    copy a version here relies on (its data pruned here because the remote held it).
    A kept version this clone does not store is taken to reach none of them."""
    used, lacking = lacking_here(repo, name, configured_remotes(repo))
    if not lacking:
        return 0, 0
    store = repo.store
    there = reach(
        [("kept", oid) for oid in kept if store.has(oid)],
        lambda oid: decode_version(store.get(oid)),
        lambda tid: decode_tree(store.get(tid)),
    )
    lost = [c for c in lacking if c not in there.chunks]
    return len(lost), sum(used[c] for c in lost)


def names(paths: Iterable[bytes], limit: int = FILES_NAMED) -> str:
    """Some paths, quoted, and how many more there are."""
    shown = sorted(set(paths))
    text = ", ".join(quote_name(p) for p in shown[:limit])
    return text + (f" and {len(shown) - limit:,} more" if len(shown) > limit else "")


def check_files_expansion(items: Sequence[tuple[bytes, Entry]], command: str) -> None:
    """UsageError if writing ``items`` would expand far beyond their distinct data.

    The limits of ``vfs.remote.receive.check_expansion``, for a set of files (``restore``).
    """
    size = sum(e.size for _, e in items)
    distinct = sum({c.oid: c.size for _, e in items for c in e.chunks}.values())
    if size > max(EXPANSION_FLOOR_BYTES, EXPANSION_RATIO * distinct):
        raise UsageError(
            f"{command} would write {size:,} bytes, {size // max(1, distinct):,} times the "
            f"{distinct:,} bytes of distinct data they are made of: refused, nothing was "
            "written; pass --yes only if you expect it"
        )


def ensure_local(
    repo: Repository,
    items: Iterable[tuple[bytes, Entry]],
    workers: Workers,
    *,
    command: str,
    gets_them: str,
    offline: bool = False,
    before: Callable[[], None] | None = None,
    jobs: int = JOBS,
) -> Fetched:
    """Make the chunks of ``items`` local, downloading the missing ones (module docstring).

    ``command`` names what is being done in messages (``checkout v1``); ``gets_them``
    is the command that downloads the data beforehand (``dvfs pull v1``). With
    ``offline`` a missing chunk is a UsageError naming the files; ``before`` runs
    once something is to be downloaded, before any request (the expansion check).
    A remote that fails raises RemoteError saying nothing was changed. Files whose
    data is neither here nor on the remote are returned in ``Fetched.unavailable``.

    What the default remote lacks, or all of it when it fails, is then asked of each
    other configured remote whose index, as last read, lists some of it; the
    default's failure is raised only if some data is still missing then.
    """
    got = Fetched()
    need, users = missing_chunks(repo.store, items)
    if not need:
        return got
    files = [p for oid in need for p in users[oid]]
    if offline:
        raise UsageError(
            f"{command} needs data not in the local store for {names(files)} (--offline): "
            f"nothing was changed; `{gets_them}` downloads it, or run it without --offline"
        )
    name = default_remote(repo)
    if name is None:
        why = "no remote is set to fetch it from (`dvfs remote add NAME URL`)"
        if configured_remotes(repo):
            why = "several remotes and no default to fetch it from (`dvfs remote default NAME`)"
        got.unavailable = dict.fromkeys(files, f"its data is not in the local store, and {why}")
        return got
    got.remote = name
    if before is not None:
        before()
    remaining = list(need)
    failed: tuple[str, RemoteError] | None = None
    tried: list[str] = []
    order = [name]
    while order and remaining:
        here_name = order.pop(0)
        tried.append(here_name)
        try:
            spec = get_remote(repo, here_name)
            meter = connect_known(repo, spec, jobs)
            remote = RemoteRepo(meter, index_cache(repo, here_name))
            index = remote.index()
            download_chunks(
                repo.store, meter, index, [o for o in remaining if o in index], workers, jobs, got
            )
            remaining = [oid for oid in remaining if oid not in index]
            seen, gone = had_versions(repo, spec) if remaining else ([], "")
            if seen:  # (empty: a NAS not mounted, not a remote lacking this data)
                remote.check_format(repo, empty=f"{remote.url} holds no dvfs repository, {gone}")
        except RemoteError as exc:
            try:  # what arrived is verified: kept, so that running it again resumes
                repo.store.flush()
            except Exception:
                repo.store.discard()
            remaining = repo.store.missing(remaining)
            failed = failed or (here_name, exc)
        if remaining and here_name == name:
            # Data the default remote lacks (``store prune --remote`` dropped it here, or
            # the default changed since): each other remote whose index, as last read,
            # lists some of what is left, in turn.
            order = [
                n for n in configured_remotes(repo)
                if n != name and not set(remaining).isdisjoint(cached_remote_ids(repo, [n]))
            ]  # fmt: skip
    if remaining and failed is not None:
        where, error = failed
        raise type(error)(
            f"{command} needs data for {names(files)} from remote {where}, which failed: "
            f"{error}; nothing was changed: run it again when the remote answers"
        ) from None
    looked = " or ".join(f"remote {n}" for n in tried)
    for oid in remaining:
        for p in users[oid]:
            got.unavailable[p] = (
                f"its data is neither in the local store nor on {looked}: "
                "push it from a repository that has it"
            )
    return got
