"""Branches and tags: ``switch``, ``switch -c``, and creating, renaming and deleting
branches and tags.

A switch restores the branch's latest version as a checkout does
(:func:`vfs.ops.checkout.restore_version`); the refs move by compare-and-swap.

A branch may also have a mount's working tree, ``.dvfs/worktrees/<branch>/``
(``daemon.overlay``), found by the branch's name: a rename takes it along, and
neither a rename nor a deletion happens while a mount serves it (:func:`_work_tree`).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from vfs.errors import DvfsError, NameInUse, RefConflict, UsageError
from vfs.mount.mounts import all_records
from vfs.mount.work_dirs import WORKTREES, held_changes, work_dir_name
from vfs.ops import merging
from vfs.ops.checkout import CheckoutReport, restore_version
from vfs.ops.status import quiet
from vfs.quoting import quote_name, shell_word
from vfs.remote.config import remotes, unconfigured_copies
from vfs.repo.gitlink import LockPointer, write_lock
from vfs.repo.history import History
from vfs.repo.refs import Head, check_ref_name, remote_twin, twin_refused
from vfs.repo.repository import Repository
from vfs.store.lock import claim_for_life
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
            delete_branch(repo, name, force=True)  # (made here: it holds nothing of its own)
        raise


def _unborn(repo: Repository, name: str) -> CheckoutReport | None:
    """HEAD moved to branch ``name`` if HEAD's branch has no versions yet, else None."""
    with repo.locked():
        head = repo.refs.head()
        if head.detached is not None or repo.refs.get(f"refs/heads/{head.branch}") is not None:
            return None
        check_ref_name(name, "branch")
        if repo.refs.get(f"refs/heads/{name}") is not None:
            raise NameInUse(f"branch {name} already exists: `dvfs switch {name}` goes there")
        if why := twin_refused(repo.refs, "branch", name):
            raise NameInUse(why)
        repo.refs.set_head(Head(name))
        return CheckoutReport("", name, unchanged=repo.index().count())


def create_branch(repo: Repository, name: str, rev: str | None) -> bytes:
    """Create branch ``name`` at ``rev`` (default HEAD); refuse an existing name."""
    head = repo.refs.head()
    hint = f": `dvfs switch {name}` goes there, `dvfs branch -f {name} REV` moves it"
    if head.detached is None and head.branch == name:
        hint = ": it is the current branch"
    return _create_ref(repo, "branch", f"refs/heads/{name}", name, rev, hint)


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


def rename_branch(repo: Repository, old: str, new: str) -> bytes | None:
    """Rename branch ``old`` to ``new`` (git's ``branch -m``); return the version it names
    (None: the current branch, with no versions yet, which HEAD alone names).

    HEAD follows if it is on ``old`` (attached, or detached from it), so does
    ``dvfs.lock``, and so does the branch's mount working tree, if it has one (refused
    while a mount serves it, or while ``new`` has one of its own). Refused during a
    merge on ``old``: its record names the branch. Crash-safe in this order: ``new`` is
    made, the working tree moved, HEAD moved, ``old`` deleted; a kill between leaves
    both names on the version, and nothing lost.
    """
    check_ref_name(old, "branch", existing=True)
    if new == old:
        raise UsageError(f"branch {old} already has that name: nothing was renamed")
    _check_new_name(repo, "branch", new)
    with repo.locked():
        cur = repo.refs.get(f"refs/heads/{old}")
        head = repo.refs.head()
        if cur is None and head == Head(old) and repo.refs.get(f"refs/heads/{new}") is None:
            if why := twin_refused(repo.refs, "branch", new):
                raise NameInUse(why)
            repo.refs.set_head(Head(new))  # (no versions yet: the first commit makes it)
            return None
        if cur is None:
            raise UsageError(f"no branch named {old}: nothing was renamed")
        if repo.refs.get(f"refs/heads/{new}") is not None:
            raise NameInUse(
                f"branch {new} already exists: delete it first (`dvfs branch -d {new}`) "
                "or pick another name; nothing was renamed"
            )
        if why := twin_refused(repo.refs, "branch", new):
            raise NameInUse(why)
        if (left := merging.live(repo.dir, repo.refs)) is not None and left.branch == old:
            raise UsageError(
                f"a merge of {left.rev} into {old} is in progress: commit it or give it up "
                "(`dvfs merge --abort`) first; nothing was renamed"
            )
        with _work_tree(repo, old, "renamed") as work:
            dest = repo.dir / WORKTREES / work_dir_name(new) if work is not None else None
            if dest is not None and (dest.exists() or dest.is_symlink()):
                raise UsageError(
                    f"{quote_name(str(dest))} holds a mount's working tree left by an earlier "
                    f"branch {new}: move it aside, or pick another name; nothing was renamed"
                )
            try:
                repo.refs.update(f"refs/heads/{new}", cur, None)
            except RefConflict as exc:
                raise UsageError(f"{exc}; nothing was renamed") from None
            if work is not None and dest is not None:
                os.rename(work, dest)
        if head.branch == old:
            repo.refs.set_head(Head(new, head.detached))
            if head.detached is None:
                write_lock(repo.root, LockPointer(new, repo.history.version(cur).number, cur))
        repo.refs.update(f"refs/heads/{old}", None, cur)
        merging.forget_for(repo.dir, repo.refs, (old, new))  # (a merge given up on either)
        return cur


@contextlib.contextmanager
def _work_tree(repo: Repository, name: str, done: str) -> Iterator[Path | None]:
    """Branch ``name``'s mount working tree (None if it has none), held so that no
    mount starts on it meanwhile; UsageError (nothing ``done``) if a mount serves it,
    or if it is a symbolic link (dvfs follows none out of the repository)."""
    top = repo.dir / WORKTREES
    work = top / work_dir_name(name)
    for p in (top, work):
        if p.is_symlink():
            raise UsageError(
                f"{quote_name(str(p))} is a symbolic link, and a mount's working tree is kept "
                f"inside the repository: remove the link; nothing was {done}"
            )
    if not work.is_dir():
        yield None
        return
    try:
        got = claim_for_life(work / "lock", 0o600)
    except OSError as exc:
        raise UsageError(
            f"cannot tell whether a mount serves branch {name}'s working tree "
            f"{quote_name(str(work))} ({exc.strerror}); nothing was {done}"
        ) from None
    if isinstance(got, str):
        mnt = next((r.mountpoint for r in all_records() if str(r.pid) == got), "MNT")
        raise UsageError(
            f"branch {name} is mounted as a working tree (daemon pid {got}): unmount it "
            f"first (`dvfs umount {shell_word(mnt)}`); nothing was {done}"
        )
    try:
        yield work
    finally:
        os.close(got)


def delete_branch(repo: Repository, name: str, *, force: bool = False) -> bytes:
    """Delete branch ``name`` (not the current one); return the version it named.

    See :func:`delete_branches`.
    """
    return delete_branches(repo, [name], force=force)[name]


def delete_branches(
    repo: Repository, names: Sequence[str], *, force: bool = False, warn: Warn = quiet
) -> dict[str, bytes]:
    """Delete the branches ``names`` (none current); return the version each named.

    While HEAD is detached, no branch is current: HEAD still names the branch it
    came from (to count ``vN`` along), but that branch may go, as in git. Unless
    ``force`` (git's ``branch -D``), nothing is deleted while one of them holds
    versions that no other branch, tag, remote copy nor a detached HEAD holds
    (:func:`held_alone`): they would be reachable by id alone, and ``gc`` would
    drop them. All is decided under the lock before the first ref goes.

    A branch a mount serves as its working tree is not deleted, even with ``force``
    (git keeps a branch a worktree has checked out). One whose mount working tree holds
    changes (:func:`vfs.mount.work_dirs.held_changes`) is deleted only with ``force``,
    and the working tree stays, with a warning: a branch of that name mounted again
    shows them.
    """
    for name in names:
        check_ref_name(name, "branch", existing=True)
    with repo.locked():
        head = repo.refs.head()
        tips: dict[str, bytes] = {}
        for name in names:
            cur = repo.refs.get(f"refs/heads/{name}")
            if cur is None:
                raise UsageError(f"no branch named {name}: nothing was deleted")
            if head.branch == name and head.detached is None:
                raise UsageError(
                    f"{name} is the current branch: switch to another one first; "
                    "nothing was deleted"
                )
            tips[name] = cur
        if not force and (alone := held_alone(repo, tips)):
            name, versions = next(iter(alone.items()))
            raise UsageError(_unmerged(repo, name, versions, len(tips) > 1))
        with contextlib.ExitStack() as held:
            kept: dict[str, tuple[Path, str]] = {}
            for name in tips:
                work = held.enter_context(_work_tree(repo, name, "deleted"))
                changes = held_changes(work) if work is not None else None
                if work is not None and changes is not None:
                    kept[name] = (work, changes)
            if kept and not force:
                name, (work, changes) = next(iter(kept.items()))
                raise UsageError(
                    f"branch {name} has a mount's working tree ({quote_name(str(work))}) "
                    f"holding changes no version records ({changes}): mount the branch and "
                    f"`dvfs snapshot` them, or `dvfs branch -D {name}` deletes the branch and "
                    "keeps them there; nothing was deleted"
                )
            for name, cur in tips.items():
                repo.refs.update(f"refs/heads/{name}", None, cur)
            merging.forget_for(repo.dir, repo.refs, tips)  # (a merge given up on one)
            for name, (work, changes) in kept.items():
                warn(
                    f"the working tree of branch {name}'s mount stays in "
                    f"{quote_name(str(work))} with its changes ({changes}): "
                    f"`dvfs branch {name} {tips[name].hex()[:10]}` and a mount of it show "
                    "them again"
                )
        return tips


def held_alone(repo: Repository, tips: dict[str, bytes]) -> dict[str, list[bytes]]:
    """The versions each branch of ``tips`` (name: its version) reaches that no ref
    outside them reaches: no other branch, tag or remote copy, nor a detached HEAD.
    Newest first; a branch whose versions are all held elsewhere is left out.

    A copy of a remote no settings name any more holds nothing: it is listed as one
    to delete (``dvfs remote remove NAME`` does), and then gc would drop what only
    it held.

    A version not stored here (a ref to one never fetched) is nothing to lose; a
    version that cannot be read ends the walk below it.
    """
    hist = repo.history
    refs = repo.refs
    others: list[bytes] = []
    head = refs.head()
    if head.detached is not None:
        others.append(head.detached)
    stray = set(unconfigured_copies(repo)) if refs.names("remotes") else set()
    for kind in ("heads", "tags", "remotes"):
        for n in refs.names(kind):
            if (kind == "heads" and n in tips) or (kind == "remotes" and n in stray):
                continue
            with contextlib.suppress(DvfsError):  # (a damaged ref holds nothing to keep)
                if (oid := refs.get(f"refs/{kind}/{n}")) is not None:
                    others.append(oid)
    # (missing, not has: packs another process wrote since this one looked count)
    absent = set(repo.store.missing([*others, *tips.values()]))
    held = {o for o in others if o not in absent}
    todo = {n: t for n, t in tips.items() if t not in absent and t not in held}
    # The first-parent chain of another ref is tried first: it costs the distance.
    todo = {
        n: t for n, t in todo.items()
        if not any(_on_chain(hist, o, t) for o in held)
    }  # fmt: skip
    if not todo:
        return {}
    reached = _below(hist, held, set())
    out: dict[str, list[bytes]] = {}
    for name, tip in todo.items():
        alone = _below(hist, [tip], reached) - reached
        if alone:
            out[name] = sorted(alone, key=lambda o: -hist.version(o).number)
    return out


def _on_chain(hist: History, tip: bytes, oid: bytes) -> bool:
    """:meth:`History.on_chain`, False where a version cannot be read."""
    try:
        return hist.on_chain(tip, oid)
    except DvfsError:
        return False


def _below(hist: History, starts: Iterable[bytes], stop: set[bytes]) -> set[bytes]:
    """``starts`` and every version below them, through every parent, not entering
    ``stop``; a version that cannot be read is in, its parents are not."""
    seen: set[bytes] = set()
    stack = [o for o in starts if o not in stop]
    while stack:
        oid = stack.pop()
        if oid in seen:
            continue
        seen.add(oid)
        try:
            parents = hist.version(oid).parents
        except DvfsError:
            continue
        stack.extend(p for p in parents if p not in seen and p not in stop)
    return seen


def _unmerged(repo: Repository, name: str, alone: list[bytes], several: bool) -> str:
    """Why branch ``name`` is not deleted: the versions ``alone`` only it holds (or
    only it and the ``several`` branches deleted with it)."""
    shown = [f"{repo.history.label(o)} {o.hex()[:10]}" for o in alone[:3]]
    more = f" and {len(alone) - 3} more" if len(alone) > 3 else ""
    which = "a version" if len(alone) == 1 else f"{len(alone)} versions"
    holders = _stray_holders(repo, alone)
    if not holders:
        return (
            f"branch {name} holds {which} ({', '.join(shown)}{more}) that no "
            f"{'remaining' if several else 'other'} branch, tag or remote copy holds: merge "
            f"or tag it to keep them, or `dvfs branch -D {name}` deletes it anyway (gc may "
            "then drop them); nothing was deleted"
        )
    gone = sorted({copy.partition("/")[0] for copy in holders})
    one = len(holders) == 1
    return (
        f"branch {name} holds {which} ({', '.join(shown)}{more}) that no "
        f"{'remaining' if several else 'other'} branch, tag or copy of a configured remote "
        "holds, only "
        f"{' and '.join(quote_name(c) for c in holders)}, "
        f"{'a copy' if one else 'copies'} of remote{'s' if len(gone) > 1 else ''} "
        f"{' and '.join(quote_name(g) for g in gone)}, which no settings name any more "
        f"(`dvfs remote remove {gone[0] if len(gone) == 1 else 'NAME'}` deletes "
        f"{'it' if one else 'them'}, and gc then drops what only "
        f"{'it holds' if one else 'they hold'}): merge or tag it to keep them, or "
        f"`dvfs branch -D {name}` deletes it anyway; nothing was deleted"
    )


def _stray_holders(repo: Repository, alone: list[bytes]) -> list[str]:
    """The copies of remotes no settings name any more (``NAME/BRANCH``) that reach one
    of the versions ``alone``: :func:`held_alone` does not count them as holders, and
    the refusal says they are the only ones."""
    want = set(alone)
    return [
        copy
        for copy, oid in sorted(unconfigured_copies(repo).items())
        if _below(repo.history, [oid], set()) & want
    ]


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
    _check_new_name(repo, kind, name)
    with repo.locked():
        if repo.refs.get(ref) is not None:
            raise NameInUse(f"{kind} {name} already exists{hint}")
        if why := twin_refused(repo.refs, kind, name):
            raise NameInUse(why)
        target = repo.history.resolve(rev or "HEAD")
        repo.refs.update(ref, target, None)
        return target


def _check_new_name(repo: Repository, kind: str, name: str) -> None:
    """UsageError if ``name`` cannot be a new branch or tag (``kind``): not a valid ref
    name, or one that reads as a remote's branch."""
    check_ref_name(name, kind)
    if why := remote_twin(kind, name, remotes(repo)):
        raise UsageError(why)


def delete_tag(repo: Repository, name: str) -> bytes:
    """Delete tag ``name``; return the version it named."""
    check_ref_name(name, "tag", existing=True)
    with repo.locked():
        cur = repo.refs.get(f"refs/tags/{name}")
        if cur is None:
            raise UsageError(f"no tag named {name}")
        repo.refs.update(f"refs/tags/{name}", None, cur)
        return cur
