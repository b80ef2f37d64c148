"""A git clone's first ``dvfs pull``: its store made from ``dvfs.toml``, its data restored.

A teammate's ``git clone`` brings the code, ``dvfs.toml`` (the shared remotes,
``vfs.repo.shared``) and ``dvfs.lock`` (the data version the commit was made with,
``vfs.repo.gitlink``), but no ``.dvfs``: git ignores it. ``dvfs pull`` there does in one
step what ``dvfs clone`` does for a new directory:

1. the store is made with the chunking parameters of the default remote (read from
   its format record), HEAD on the branch ``dvfs.lock`` names (else ``main``);
2. refs, versions and trees are fetched, and the chunks of the target downloaded:
   the version ``dvfs.lock`` names, else the remote's ``main`` (or first) branch;
3. the target is restored into the working tree, refusing to replace files that are
   in the way (``--force`` replaces them), and the local branch is made at the
   remote's tip of it: HEAD is on that branch if the target is its tip, else
   detached at the target, as after ``dvfs checkout --lock``.

The local branch is moved only by the restore of step 3, so an interrupted first
pull leaves a store with nothing checked out, and running ``dvfs pull`` again
finishes it (:func:`pending`); the same holds for ``dvfs init`` in such a clone
followed by ``dvfs pull``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vfs.errors import ObjectMissing, UsageError
from vfs.ops import checkout as co
from vfs.ops.sync import Transfer, download_data, fetch_locked
from vfs.remote.config import RemoteSpec, connect, get_remote, shared_remote
from vfs.remote.reader import RemoteRepo
from vfs.remote.receive import check_expansion
from vfs.repo.gitlink import LOCK_FILE, LockPointer, read_lock
from vfs.repo.refs import Head
from vfs.repo.repository import DEFAULT_BRANCH, DVFS_DIR, Repository, parse_format
from vfs.worktree.pools import Workers


@dataclass
class SetUp:
    """What a first pull did."""

    repo: Repository
    remote: str
    branch: str
    target: bytes
    from_lock: bool
    transfer: Transfer
    checkout: co.CheckoutReport


def _lock(root: Path) -> LockPointer | None:
    return read_lock(root) if os.path.lexists(root / LOCK_FILE) else None


def pending(repo: Repository) -> bool:
    """True if a plain ``dvfs pull`` here must finish a set-up: nothing checked out yet
    (HEAD's branch has no version here, nothing staged) and a ``dvfs.lock`` to restore."""
    head = repo.history.head()
    if head.detached is not None or repo.refs.get(f"refs/heads/{head.branch}") is not None:
        return False
    if next(iter(repo.index().paths()), None) is not None:
        return False
    return os.path.lexists(repo.root / LOCK_FILE)


def make_store(root: Path, remote_name: str | None, jobs: int) -> Repository:
    """The store of a clone that has ``dvfs.toml`` but no ``.dvfs`` yet, made from its remote."""
    spec = shared_remote(root, remote_name)
    lock = _lock(root)
    text = RemoteRepo(connect(spec, jobs), None).read_format()
    if text is None:
        raise UsageError(
            f"remote {spec.name} ({spec.shown()['url']}) holds no dvfs data yet: "
            "whoever set it up must `dvfs push` first"
        )
    params = parse_format(text, f"{spec.shown()['url']}/format")
    return Repository.init(root, lock.branch if lock else DEFAULT_BRANCH, params)


def set_up(
    root: Path,
    remote_name: str | None,
    workers: Workers,
    *,
    jobs: int = 8,
    yes: bool = False,
    force: bool = False,
) -> SetUp:
    """Make the store here if there is none, then fetch and restore (module docstring)."""
    has_store = (root / DVFS_DIR).is_dir()
    repo = Repository(root) if has_store else make_store(root, remote_name, jobs)
    spec: RemoteSpec = get_remote(repo, remote_name)
    lock = _lock(root)
    meter = connect(spec, jobs)
    hist = repo.history
    with repo.locked():
        got = fetch_locked(repo, spec, meter, jobs)
        if lock is not None:
            branch, target = lock.branch, lock.oid
            try:
                hist.version(target)
            except ObjectMissing:
                raise UsageError(
                    f"{LOCK_FILE} names {branch} v{lock.number} ({target.hex()[:10]}), which "
                    f"remote {spec.name} does not have: whoever committed it must `dvfs push` it"
                ) from None
        elif not got.heads:
            raise UsageError(f"remote {spec.name} has no branches yet: nothing to pull")
        else:
            branch = DEFAULT_BRANCH if DEFAULT_BRANCH in got.heads else sorted(got.heads)[0]
            target = got.heads[branch]
        repo.refs.set_head(Head(branch))
        if not yes:
            check_expansion(hist, target, [], hist.label(target))
        download_data(repo, meter, got.index, target, [], workers, jobs, got.transfer)
    got.transfer.requests = meter.requests
    tip = got.heads.get(branch)
    if tip == target:
        report = co.fast_forward(repo, branch, None, target, workers, force=force)
    else:
        report = co.checkout(repo, None, [], workers, force=force, from_lock=True, action="pull")
        if tip is not None and repo.refs.get(f"refs/heads/{branch}") is None:
            repo.refs.update(f"refs/heads/{branch}", tip, None)
    return SetUp(repo, spec.name, branch, target, lock is not None, got.transfer, report)
