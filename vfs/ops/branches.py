"""Branches and tags: ``switch``, ``switch -c``, and creating and deleting branches and tags.

A switch restores the branch's latest version as a checkout does
(:func:`vfs.ops.checkout.restore_version`); the refs move by compare-and-swap.
"""

from __future__ import annotations

import contextlib

from vfs.errors import DvfsError, UsageError
from vfs.ops import merging
from vfs.ops.checkout import CheckoutReport, restore_version
from vfs.ops.status import quiet
from vfs.remote.config import remotes
from vfs.repo.gitlink import LockPointer, write_lock
from vfs.repo.refs import Head, check_ref_name
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers
from vfs.worktree.scan import Warn


def switch(
    repo: Repository,
    name: str,
    workers: Workers,
    *,
    force: bool = False,
    warn: Warn = quiet,
    offline: bool = False,
    yes: bool = False,
) -> CheckoutReport:
    """Make ``name`` the current branch and restore its latest version (see :func:`checkout`)."""
    with repo.locked():
        target = repo.refs.get(f"refs/heads/{name}")
        if target is None:
            raise UsageError(no_branch(repo, name))
        return restore_version(
            repo, target, workers, attach=name, force=force, warn=warn, action="switch",
            source=name, offline=offline, yes=yes,
        )  # fmt: skip


def no_branch(repo: Repository, name: str) -> str:
    """Why ``switch NAME`` found no branch NAME, and a command that does what was meant.

    A tag, ``vN``, an id or a remote's branch is a revision, not a branch: switching
    there is a checkout (HEAD detached) or a new branch started at it. Any other name
    can be made a branch, if it is a valid name.
    """
    have = ", ".join(repo.refs.branches()) or "none yet"
    try:
        repo.history.resolve(name)
    except DvfsError:
        pass
    else:
        remote, _, branch = name.partition("/")
        if repo.refs.get(f"refs/remotes/{name}") is not None and branch:
            return (
                f"no branch named {name}: it is remote {remote}'s branch {branch}; "
                f"`dvfs switch -c {branch} {name}` makes a branch of it here (branches: {have})"
            )
        return (
            f"no branch named {name}: it names a version, not a branch; `dvfs checkout {name}` "
            f"goes there (HEAD detached), `dvfs switch -c NAME {name}` starts a branch there "
            f"(branches: {have})"
        )
    try:
        check_ref_name(name, "branch")
    except UsageError:
        return f"no branch named {name} (branches: {have})"
    theirs = [r for r in repo.refs.names("remotes") if r.partition("/")[2] == name]
    if theirs:  # (a clone of another branch: the remote's main is there, not main)
        return (
            f"no branch named {name} (branches: {have}); `dvfs switch -c {name} {theirs[0]}` "
            f"makes it from remote {theirs[0].partition('/')[0]}'s"
        )
    return f"no branch named {name} (branches: {have}); `dvfs switch -c {name}` makes it at HEAD"


def switch_create(
    repo: Repository,
    name: str,
    rev: str | None,
    workers: Workers,
    *,
    force: bool = False,
    warn: Warn = quiet,
    offline: bool = False,
    yes: bool = False,
) -> CheckoutReport:
    """Create branch ``name`` at ``rev`` (default HEAD) and switch to it (git switch -c).

    At the version HEAD is at, nothing is restored: HEAD moves to the new branch and
    every local change, staged or not, stays as it is; a merge in progress does not
    follow (its record names the branch it began on), and a warning says so.
    Elsewhere it is :func:`switch`; if that is refused, the new branch is deleted again.
    On a branch with no versions yet (and ``rev`` HEAD), the new name is the branch
    the first commit makes, as git's ``switch -c`` does there: the report's label is
    empty.
    """
    if rev in (None, "HEAD") and (unborn := _unborn(repo, name)) is not None:
        return unborn
    target = create_branch(repo, name, rev)
    with repo.locked():
        if target == repo.history.head_id():
            number = repo.history.version(target).number
            left = merging.live(repo.dir, repo.refs)
            repo.refs.set_head(Head(name))
            if left is not None:
                warn(
                    f"the merge of {left.rev} into {left.branch} in progress is given up: "
                    f"what it staged stays staged on {name}, and a commit here records no "
                    "merge"
                )
            write_lock(repo.root, LockPointer(name, number, target))
            return CheckoutReport(f"v{number}", name, unchanged=repo.index().count())
    try:
        return switch(repo, name, workers, force=force, warn=warn, offline=offline, yes=yes)
    except BaseException:
        with contextlib.suppress(DvfsError):
            delete_branch(repo, name)
        raise


def _unborn(repo: Repository, name: str) -> CheckoutReport | None:
    """HEAD moved to branch ``name`` if HEAD's branch has no versions yet, else None."""
    with repo.locked():
        head = repo.refs.head()
        if head.detached is not None or repo.refs.get(f"refs/heads/{head.branch}") is not None:
            return None
        check_ref_name(name, "branch")
        if repo.refs.get(f"refs/heads/{name}") is not None:
            raise UsageError(f"branch {name} already exists: `dvfs switch {name}` goes there")
        repo.refs.set_head(Head(name))
        return CheckoutReport("", name, unchanged=repo.index().count())


def create_branch(repo: Repository, name: str, rev: str | None) -> bytes:
    """Create branch ``name`` at ``rev`` (default HEAD); refuse an existing name."""
    return _create_ref(repo, "branch", f"refs/heads/{name}", name, rev, "")


def move_branch(repo: Repository, name: str, rev: str) -> tuple[bytes, bytes]:
    """Point the existing branch ``name`` at ``rev`` (git's ``branch -f``): (was, now).

    Not the current branch: its files, index and ``dvfs.lock`` follow HEAD's version,
    and would silently disagree with it; ``switch`` to another branch first. The
    versions it leaves stay stored, reachable by id until a gc finds nothing reaching
    them.
    """
    check_ref_name(name, "branch", existing=True)
    with repo.locked():
        cur = repo.refs.get(f"refs/heads/{name}")
        if cur is None:
            raise UsageError(f"no branch named {name}: `dvfs branch {name} {rev}` makes it")
        head = repo.refs.head()
        if head.branch == name and head.detached is None:
            raise UsageError(
                f"{name} is the current branch, whose files follow it: switch to another "
                f"branch first (`dvfs switch -c tmp {rev}`), then move it"
            )
        target = repo.history.resolve(rev)
        repo.refs.update(f"refs/heads/{name}", target, cur)
        return cur, target


def delete_branch(repo: Repository, name: str) -> bytes:
    """Delete branch ``name`` (not the current one); return the version it named.

    While HEAD is detached, no branch is current: HEAD still names the branch it
    came from (to count ``vN`` along), but that branch may go, as in git. Its
    versions stay in the store, reachable by id.
    """
    check_ref_name(name, "branch", existing=True)
    with repo.locked():
        cur = repo.refs.get(f"refs/heads/{name}")
        if cur is None:
            raise UsageError(f"no branch named {name}")
        head = repo.refs.head()
        if head.branch == name and head.detached is None:
            raise UsageError(f"{name} is the current branch: switch to another one first")
        repo.refs.update(f"refs/heads/{name}", None, cur)
        return cur


def delete_unreadable(repo: Repository, kind: str, name: str) -> bool:
    """Delete branch (``kind`` "heads") or tag ("tags") ``name`` if its ref is damaged
    (holds no id, so :func:`delete_branch` and :func:`delete_tag` cannot read it);
    return whether it was. The current branch is kept, as by :func:`delete_branch`."""
    check_ref_name(name, "branch" if kind == "heads" else "tag", existing=True)
    with repo.locked():
        head = repo.refs.head()
        if kind == "heads" and head.branch == name and head.detached is None:
            raise UsageError(f"{name} is the current branch: switch to another one first")
        return repo.refs.delete_unreadable(f"refs/{kind}/{name}")


def create_tag(repo: Repository, name: str, rev: str | None) -> bytes:
    """Tag ``rev`` (default HEAD) as ``name``; refuse an existing tag."""
    return _create_ref(
        repo, "tag", f"refs/tags/{name}", name, rev, f": delete it first (`dvfs tag -d {name}`)"
    )


def _create_ref(
    repo: Repository, kind: str, ref: str, name: str, rev: str | None, hint: str
) -> bytes:
    """Point the new ref ``ref`` at ``rev`` (default HEAD); refuse a name in use."""
    check_ref_name(name, kind)
    top, slash, rest = name.partition("/")
    if slash and top in remotes(repo):
        raise UsageError(
            f"{kind} {name} would share its name with remote {top}'s branch {rest}, and "
            f"one would hide the other wherever a revision is read: name the {kind} otherwise"
        )
    with repo.locked():
        if repo.refs.get(ref) is not None:
            raise UsageError(f"{kind} {name} already exists{hint}")
        target = repo.history.resolve(rev or "HEAD")
        repo.refs.update(ref, target, None)
        return target


def delete_tag(repo: Repository, name: str) -> bytes:
    """Delete tag ``name``; return the version it named."""
    check_ref_name(name, "tag", existing=True)
    with repo.locked():
        cur = repo.refs.get(f"refs/tags/{name}")
        if cur is None:
            raise UsageError(f"no tag named {name}")
        repo.refs.update(f"refs/tags/{name}", None, cur)
        return cur
