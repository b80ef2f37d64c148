"""The commit protocol: the one way a version is made.

``dvfs commit`` (and ``dvfs merge``, ``vfs.Repo.commit``, ``vfs.track``, through
``vfs.ops.commit.commit_locked``), ``dvfs snapshot`` of a mount (``daemon.snapshot``)
and ``dvfs exp run`` (``vfs.pipeline.experiments``) all call :func:`record_version`
once their trees are stored. It owns, in this order:

1. the version record: number = first parent's + 1 (v1 without parents), author
   (``Repository.author``), params sorted by name, the lineage of its outputs
   (``vfs.pipeline.record``), the git commit of the working tree around the
   repository (``vfs.repo.gitlink.git_link``), files and bytes; stored in the open pack;
2. the store flushed (the pack renamed into place), then made durable
   (``ObjectStore.sync``: the packs this process finished, fsynced as each was
   finished, and those other processes finished that it may name: see
   ``vfs.store.pack_files.Durability``);
3. the caller's note that this version is being made (the staging index of a
   commit, the journal's ``S`` record of a snapshot), after the data it names is
   durable and before the branch names the version (a commit writes and fsyncs the
   new index beside the old one while step 2 runs on a thread, and renames it into
   place only once step 2 is done: ``noting``; the fsync of its folder after that
   rename is made with step 4's first ones);
4. the branch moved last, by compare-and-swap from where the caller found it
   (``Refs.update``: its new file, its audit entry and the note's folder fsynced at
   once, then the rename and the folders' fsyncs at once: two disk round trips);
5. after the branch moved, nothing can undo the version: the tag and ``dvfs.lock``
   (rewritten inside a git work tree when the version goes on the branch HEAD names)
   are written, and a failure there is a warning saying what to run, never an error
   claiming nothing was recorded.

Crash safety: until step 4 nothing that is read names the new objects (fsck walks
from refs, HEAD and the index; a note of step 3 naming a version its branch never
got is ignored by its reader), so a kill leaves the old version and at worst an
unreferenced pack; from step 4 on the branch names a version all of whose objects
were made durable in step 2. ``docs/architecture.md`` (section 11) walks through
each step and what a kill there leaves.

The caller holds the repository lock (``Repository.locked``) and has checked its
input (message and params bounds, ref names, :func:`tag_free`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vfs.errors import DvfsError, StorageFull, UsageError
from vfs.model.version_codec import Version, encode_version
from vfs.pipeline.record import version_pipeline
from vfs.repo.gitlink import LOCK_FILE, LockPointer, git_link, write_lock
from vfs.repo.refs import remote_twin, twin_message, twin_refused
from vfs.repo.repository import Repository
from vfs.store.durable import fsync_dir
from vfs.store.objects import ObjKind

Warn = Callable[[str], None]


def _quiet(_: str) -> None:
    """Drop a warning."""


def _nothing(_: str) -> None:
    """No hook at a step."""


class Made(NamedTuple):
    """A version :func:`record_version` stored (and, unless told not to, put on its branch)."""

    oid: bytes
    version: Version


def tag_free(repo: Repository, tag: str | None) -> None:
    """UsageError if ``tag`` exists already, or names a branch, the one HEAD names
    before its first version included, or a remote's branch (``origin/x``), as ``dvfs
    tag`` refuses them (checked before anything is stored)."""
    if tag is None:
        return
    if repo.refs.get(f"refs/tags/{tag}") is not None:
        raise UsageError(f"tag {tag} already exists: choose another name")
    if why := twin_refused(repo.refs, "tag", tag):
        raise UsageError(why)
    head = repo.refs.head()
    if head.detached is None and head.branch == tag:  # (a first commit makes the branch)
        raise UsageError(twin_message("tag", tag))
    if "/" in tag and (why := remote_twin("tag", tag, _remote_names(repo))):
        raise UsageError(why)


def _remote_names(repo: Repository) -> set[str]:
    """The remotes the shared and this clone's settings name (``vfs.remote.config``
    reads and checks their settings; a tag's name needs only the names)."""
    # (imported here: a commit without such a tag reads no dvfs.toml, and its start
    # stays free of that module's imports and its settings record, as status's is)
    from vfs.repo.shared import remote_names

    local = repo.config().get("remotes") or {}
    return remote_names(repo.root) | (set(local) if isinstance(local, dict) else set())


def record_version(
    repo: Repository,
    tree: bytes,
    message: str,
    params: Mapping[str, Any],
    *,
    branch: str,
    parents: Sequence[bytes],
    expect: bytes | None,
    files: int,
    size: int,
    tag: str | None = None,
    git: bool = True,
    move: bool = True,
    noted: Callable[[bytes], None] | None = None,
    noting: Callable[[bytes, Callable[[], object]], Path | None] | None = None,
    step: Callable[[str], None] = _nothing,
    warn: Warn = _quiet,
) -> Made:
    """Record the stored tree ``tree`` as a new version on ``branch`` (steps above).

    ``parents``: the first is the version it follows (its number + 1 is this one's),
    a merge's second the version merged; ``expect``: where ``branch`` must still be
    (None: it must not exist). ``files`` and ``size`` count the tree's files and
    bytes. ``git``: whether the working tree around the repository is asked for its
    git commit and ``dvfs.lock`` (False for a mount's cache of a remote). ``move``:
    False leaves the branch, the tag and ``dvfs.lock`` to the caller, which publishes
    the version itself (a mount of a URL moves the remote's branch once the
    repository lock is released). ``noted`` is step 3; or ``noting``, called while
    step 2 runs on a thread of its own, with a function that returns once it is done
    (raising its error): the note is prepared meanwhile and published only after
    that function returns; it may return a folder whose fsync is still to be made
    (its note renamed into place), which is made with the branch's first fsyncs
    (``Refs.update``: ``also``). ``step`` is told ``stored``,
    ``flushed`` and ``moved`` (after step 5) as they are done (the daemon's
    fault-injection hook). Warnings of the lineage and of step 5 go to ``warn``.
    """
    hist = repo.history
    checked_out = git and move and _checked_out(repo, branch)
    parent = hist.version(parents[0]) if parents else None
    link = git_link(repo.root) if git else None
    version = Version(
        tree=tree,
        parents=tuple(dict.fromkeys(parents)),  # (each once, as decode_version wants)
        number=1 if parent is None else parent.number + 1,
        message=message,
        author=repo.author(),
        time_ns=time.time_ns(),
        params={k: params[k] for k in sorted(params)},
        pipeline=version_pipeline(hist, tree, parent, warn),  # the lineage of its outputs
        git=link,
        files=files,
        bytes=size,
    )
    oid, _ = repo.store.put(ObjKind.VERSION, encode_version(version))
    step("stored")
    unsynced: Path | None = None
    if noting is None:
        repo.store.sync()
        step("flushed")
        if noted is not None:
            noted(oid)
    else:
        unsynced = _note_while_syncing(repo, oid, noting, step)
    if not move:
        if unsynced is not None:
            fsync_dir(unsynced)
        return Made(oid, version)
    also = () if unsynced is None else (unsynced,)
    repo.refs.update(f"refs/heads/{branch}", oid, expect, also=also)
    _after_move(repo, branch, oid, version, tag, checked_out, warn)
    step("moved")
    return Made(oid, version)


def _note_while_syncing(
    repo: Repository,
    oid: bytes,
    noting: Callable[[bytes, Callable[[], object]], Path | None],
    step: Callable[[str], None],
) -> Path | None:
    """Steps 2 and 3 at once: ``ObjectStore.sync`` on a thread while ``noting`` writes
    its note beside the old one, which it publishes only after the sync is done; what
    ``noting`` returns (a folder still to fsync).

    Each fsync is a round trip to the disk: a commit's index written and fsynced
    after the sync waited for one more in a row."""
    import threading

    done = threading.Event()
    failed: list[BaseException] = []

    def sync() -> None:
        try:
            repo.store.sync()
        except BaseException as exc:
            failed.append(exc)
        finally:
            done.set()

    told = False

    def ready() -> None:
        nonlocal told
        if not done.is_set():  # (while the disk works: what moving the branch needs)
            from vfs.repo import audit

            audit.warm()
        done.wait()
        if failed:
            raise failed[0]
        if not told:
            told = True
            step("flushed")

    threading.Thread(target=sync, name="dvfs-sync", daemon=True).start()
    try:
        unsynced = noting(oid, ready)
    finally:
        done.wait()  # (nothing goes on while the store syncs)
    ready()  # (the sync's error, had ``noting`` not asked)
    return unsynced


def _after_move(
    repo: Repository, branch: str, oid: bytes, version: Version, tag: str | None,
    checked_out: bool, warn: Warn,
) -> None:  # fmt: skip
    """Step 5: the tag and ``dvfs.lock``; a failure is a warning saying what to run."""
    label = f"v{version.number}"
    try:
        if tag is not None:
            repo.refs.update(f"refs/tags/{tag}", oid, None)
    except (DvfsError, OSError) as exc:
        warn(
            f"{label} is committed, but tag {tag} was not made ({_why(exc)}): "
            f"run `dvfs tag {tag} {label}`"
        )
    if not checked_out:
        return  # dvfs.lock names the version of the branch HEAD names
    try:
        write_lock(repo.root, LockPointer(branch, version.number, oid))
    except (DvfsError, OSError) as exc:
        warn(
            f"{label} is committed, but {LOCK_FILE} was not updated ({_why(exc)}): "
            "run `dvfs checkout HEAD` to rewrite it"
        )


def _checked_out(repo: Repository, branch: str) -> bool:
    """True if HEAD names ``branch`` (read before anything is stored: see step 5)."""
    head = repo.history.head()
    return head.detached is None and head.branch == branch


def _why(exc: Exception) -> str:
    """A short reason for a warning (storage messages speak of whole commands)."""
    return "the disk is full" if isinstance(exc, StorageFull) else str(exc)
