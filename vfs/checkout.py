"""Restoring the working tree to a version: ``checkout``, ``switch`` and branches/tags.

A checkout never destroys work that is not stored in a version unless ``force`` is
given: it refuses when a file it would overwrite or delete has unstaged or staged
changes, or when an untracked file stands where the version has different content.
Deleted files are no conflict (their content is in a version already).

Files are written to a temporary sibling and renamed over the old one, in parallel.
A damaged or missing object fails only the files that need it; everything else is
restored and the failures are reported. The index then records the stat of every
restored file, so the next ``status`` needs no hashing.
"""

from __future__ import annotations

import contextlib
import os
import stat as statmod
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

from vfs.beneath import Walker
from vfs.codec import Entry
from vfs.errors import DvfsError, FormatError, ObjectMissing, UncommittedChanges, UsageError
from vfs.gitlink import LockPointer, read_lock, write_lock
from vfs.names import MAX_DEPTH, reserved_path
from vfs.refs import Head, check_ref_name
from vfs.repo import Repository
from vfs.stage import Index, staged_from_entry
from vfs.workflow import base_files, quiet, same_entry, work_state
from vfs.worktree import (
    Found,
    Hasher,
    Warn,
    Workers,
    ensure_dir,
    lstat_or_none,
    remove_path,
    restore_many,
    show,
    tracked_dir_only,
)


@dataclass
class CheckoutReport:
    """What a checkout did."""

    label: str
    attached: str | None  # branch HEAD is now on, None when detached or PATHs given
    paths: bool = False  # only some paths were restored; HEAD did not move
    written: int = 0
    deleted: int = 0
    unchanged: int = 0
    failed: dict[bytes, DvfsError] = field(default_factory=dict)


def _under(path: bytes, prefixes: Sequence[bytes]) -> bool:
    return any(not p or path == p or path.startswith(p + b"/") for p in prefixes)


def _restore(
    repo: Repository,
    target: bytes,
    workers: Workers,
    *,
    attach: str | None,
    paths: Sequence[str] = (),
    force: bool,
    warn: Warn,
    action: str = "checkout",
) -> CheckoutReport:
    """The shared body of checkout, switch and pull (caller holds the lock)."""
    hist = repo.history
    version = hist.version(target)
    empty: list[bytes] = []
    wanted = hist.flatten(version.tree, empty)
    _check_writable(f"v{version.number}", wanted, empty)
    index = repo.index()
    rels = [repo.rel(p) for p in paths]
    if rels:
        for arg, rel in zip(paths, rels, strict=True):
            if not any(_under(q, [rel]) for q in chain(wanted, empty)) and not index.under(rel):
                raise UsageError(f"{arg} is not in v{version.number} and is not tracked")
        wanted = {p: e for p, e in wanted.items() if _under(p, rels)}
        empty = [p for p in empty if _under(p, rels)]
        scope = {p: s for p, s in index.entries.items() if _under(p, rels)}
    else:
        scope = dict(index.entries)
    sub = Index(index.path)
    sub.written_ns = index.written_ns
    sub.entries = scope
    state = work_state(repo, sub, workers, warn)
    index.entries.update(sub.entries)  # stats refreshed by work_state
    unknown = set(state.unreadable)  # tracked, changed, and not readable: content unknown

    def tracked(rel: bytes) -> bool:
        return rel in index.entries or rel in scope

    # Untracked files where the version has something: adopt if equal, else conflict.
    # Untracked things that are not files where the version has a file or link, or not
    # directories where it needs a directory (a link, say), are replaced only by --force.
    untracked_here: list[Found] = []
    blocked: list[tuple[bytes, str]] = []
    with Walker(repo.root) as walker:
        for p in wanted:
            if p in scope or (st := walker.lstat(p)) is None:
                continue
            if statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode):
                untracked_here.append(Found(p, st))
            elif not statmod.S_ISDIR(st.st_mode):
                blocked.append((p, "not a regular file, directory or link"))
            elif not tracked_dir_only(repo.root, p, tracked):
                blocked.append((p, "a directory with untracked files"))
        for d in sorted(_directories(wanted, empty)):
            st = walker.lstat(d)
            if st is None or statmod.S_ISDIR(st.st_mode) or (tracked(d) and d not in wanted):
                continue  # missing, a directory, or tracked and removed below
            what = "a symbolic link" if statmod.S_ISLNK(st.st_mode) else "a file"
            blocked.append((d, f"{what}, not tracked, where v{version.number} has a directory"))
    on_disk = dict(Hasher(repo.root, repo.chunker, None, workers).stage_many(untracked_here))
    deleted = set(state.deleted)
    current = {p: s for p, s in sub.entries.items() if p not in deleted}
    current.update(state.current)
    current.update(on_disk)
    # Moving to another version carries a local change to a path that version leaves
    # as it was (git's rule); restoring the version itself overwrites nothing unasked.
    carry: set[bytes] = set()
    if not force:
        if blocked:
            shown = ", ".join(f"{show(p)} ({why})" for p, why in blocked[:5])
            more = f" and {len(blocked) - 5} more" if len(blocked) > 5 else ""
            raise UsageError(
                f"{action} would replace {shown}{more}: move it away, or use --force to "
                "replace it (a symbolic link is replaced, never followed)"
            )
        committed = base_files(hist, index)
        moving = target != (index.base or hist.head_id())
        conflicts = []
        unreadable = []
        for p in set(state.modified) | set(on_disk) | unknown:
            e = wanted.get(p)
            if e is not None and p not in unknown and current[p].same_on_disk(e):
                continue
            if moving and (p in state.modified or p in unknown) and _same(committed.get(p), e):
                carry.add(p)
            elif p in unknown:
                unreadable.append(p)
            else:
                conflicts.append(p)
        for p, s in scope.items():  # staged but not committed, and would be replaced
            c = committed.get(p)
            staged_new = c is None or not s.same_content(c)
            e = wanted.get(p)
            if staged_new and (e is None or not s.same_content(e)):
                if moving and _same(c, e):
                    carry.add(p)
                else:
                    conflicts.append(p)
        if unreadable:
            shown = ", ".join(show(p) for p in sorted(unreadable)[:10])
            raise UsageError(
                f"{action} cannot read {shown} to check for uncommitted changes: "
                "nothing was changed; make it readable, or use --force to replace it"
            )
        if conflicts:
            raise UncommittedChanges(action, sorted({show(p) for p in conflicts}))
    report = CheckoutReport(f"v{version.number}", None if paths else attach, bool(paths))
    with Walker(repo.root) as walker:
        for p in sorted(scope):
            if p not in wanted and p not in carry:
                report.deleted += remove_path(walker, p)
                index.entries.pop(p, None)
    todo: list[tuple[bytes, Entry]] = []
    with Walker(repo.root) as walker:
        for p, e in wanted.items():
            if p in carry:
                continue
            cur = current.get(p)
            st = None if cur is None or p in unknown else walker.lstat(p)
            if cur is not None and st is not None and cur.same_on_disk(e):
                if st.st_mtime_ns != e.mtime_ns:  # same bytes: only align the recorded mtime
                    if st.st_nlink > 1:  # shared with another name: never change that one
                        todo.append((p, e))
                        continue
                    dir_fd, leaf = walker.parent(p)
                    os.utime(
                        leaf, ns=(e.mtime_ns, e.mtime_ns), dir_fd=dir_fd, follow_symlinks=False
                    )
                    st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
                index.entries[p] = staged_from_entry(e, st)
                report.unchanged += 1
            else:
                todo.append((p, e))

    def replace(rel: bytes) -> bool:  # something else stands where the version has rel
        if force:
            return True
        st = lstat_or_none(repo.root, rel)
        if st is not None and statmod.S_ISDIR(st.st_mode):
            return tracked_dir_only(repo.root, rel, tracked)
        return tracked(rel)

    stats, report.failed = restore_many(repo.root, todo, repo.store, workers, replace)
    with Walker(repo.root) as walker:
        for p in empty:  # the version's empty directories (a snapshot of a mount records them)
            try:
                ensure_dir(walker, p, lambda _: False)
            except UsageError:
                warn(f"{show(p)}: not made as an empty directory: something else is in the way")
    for p, _ in todo:
        if p in stats:
            index.entries[p] = stats[p]
            report.written += 1
    if not paths:
        for p in list(index.entries):
            if p not in wanted and p not in report.failed and p not in carry:
                del index.entries[p]
        index.head = None if carry else target
        index.base = target
    else:
        index.head = None
    index.save()
    if not paths:
        branch = attach or hist.head().branch
        repo.refs.set_head(Head(branch) if attach else Head(branch, target))
        write_lock(repo.root, LockPointer(branch, version.number, target))
    return report


def _check_writable(label: str, wanted: dict[bytes, Entry], empty: list[bytes]) -> None:
    """FormatError naming a path of the version that dvfs never writes into a working tree.

    Such a version cannot be decoded in the first place (``vfs.codec``); this is the
    last line, for a name that got through: a reserved one, or one nested deeper than
    ``MAX_DEPTH``.
    """
    bad = reserved_path(chain(wanted, empty))
    if bad is not None:
        raise FormatError(
            f"{label} holds {show(bad)}, a name dvfs never writes into a working tree "
            "(.git, .dvfs or a lookalike, or .versions at the top): nothing was changed"
        )
    deep = next((p for p in chain(wanted, empty) if p.count(b"/") > MAX_DEPTH), None)
    if deep is not None:
        raise FormatError(
            f"{label} holds {show(deep)[:200]}..., nested more than {MAX_DEPTH} directories "
            "deep: nothing was changed"
        )


def _directories(wanted: dict[bytes, Entry], empty: list[bytes]) -> set[bytes]:
    """Every directory the version needs: above its files and links, and its empty ones."""
    out: set[bytes] = set()
    for d in {p.rpartition(b"/")[0] for p in wanted}.union(empty):
        while d and d not in out:
            out.add(d)
            d = d.rpartition(b"/")[0]
    return out


def _same(a: Entry | None, b: Entry | None) -> bool:
    """True if two versions hold the same thing at a path (both nothing counts)."""
    return a is b if a is None or b is None else same_entry(a, b)


def checkout(
    repo: Repository,
    rev: str | None,
    paths: Sequence[str],
    workers: Workers,
    *,
    force: bool = False,
    from_lock: bool = False,
    warn: Warn = quiet,
) -> CheckoutReport:
    """Restore the working tree (or just ``paths``) to a revision.

    Without paths, HEAD follows: onto the branch when ``rev`` names a branch or the
    current branch's latest version, else detached at that version.
    """
    with repo.locked():
        hist = repo.history
        head = hist.head()
        if from_lock:
            ptr = read_lock(repo.root)
            target = ptr.oid
            try:
                hist.version(target)
            except ObjectMissing:
                raise UsageError(
                    f"dvfs.lock names version {target.hex()[:12]} ({ptr.branch} v{ptr.number}), "
                    "which this repository does not have: fetch it from a remote first"
                ) from None
            branch = ptr.branch
        else:
            if rev is None:
                raise UsageError("say which version to check out (for example HEAD or v1)")
            target = hist.resolve(rev)
            branch = rev if repo.refs.get(f"refs/heads/{rev}") == target else head.branch
        attach = branch if repo.refs.get(f"refs/heads/{branch}") == target else None
        if attach is None and from_lock:
            repo.refs.set_head(Head(branch, head.detached))
        return _restore(repo, target, workers, attach=attach, paths=paths, force=force, warn=warn)


def switch(
    repo: Repository, name: str, workers: Workers, *, force: bool = False, warn: Warn = quiet
) -> CheckoutReport:
    """Make ``name`` the current branch and restore its latest version."""
    with repo.locked():
        target = repo.refs.get(f"refs/heads/{name}")
        if target is None:
            have = ", ".join(repo.refs.branches()) or "none yet"
            raise UsageError(f"no branch named {name} (branches: {have}); `dvfs branch {name}`")
        return _restore(repo, target, workers, attach=name, force=force, warn=warn, action="switch")


def switch_create(
    repo: Repository,
    name: str,
    rev: str | None,
    workers: Workers,
    *,
    force: bool = False,
    warn: Warn = quiet,
) -> CheckoutReport:
    """Create branch ``name`` at ``rev`` (default HEAD) and switch to it (git switch -c).

    At the version HEAD is at, nothing is restored: HEAD moves to the new branch and
    every local change, staged or not, stays as it is. Elsewhere it is :func:`switch`;
    if that is refused, the new branch is deleted again.
    """
    target = create_branch(repo, name, rev)
    with repo.locked():
        if target == repo.history.head_id():
            number = repo.history.version(target).number
            repo.refs.set_head(Head(name))
            write_lock(repo.root, LockPointer(name, number, target))
            return CheckoutReport(f"v{number}", name, unchanged=repo.index().count())
    try:
        return switch(repo, name, workers, force=force, warn=warn)
    except BaseException:
        with contextlib.suppress(DvfsError):
            delete_branch(repo, name)
        raise


def fast_forward(
    repo: Repository,
    branch: str,
    old: bytes | None,
    new: bytes,
    workers: Workers,
    *,
    force: bool = False,
) -> CheckoutReport:
    """Move ``branch`` from ``old`` to its descendant ``new`` and restore ``new``.

    The working tree is checked for conflicts first; the branch moves only after the
    files are restored, by compare-and-swap.
    """
    with repo.locked():
        report = _restore(repo, new, workers, attach=branch, force=force, warn=quiet, action="pull")
        repo.refs.update(f"refs/heads/{branch}", new, old)
        return report


def create_branch(repo: Repository, name: str, rev: str | None) -> bytes:
    """Create branch ``name`` at ``rev`` (default HEAD); refuse an existing name."""
    check_ref_name(name, "branch")
    with repo.locked():
        if repo.refs.get(f"refs/heads/{name}") is not None:
            raise UsageError(f"branch {name} already exists")
        target = repo.history.resolve(rev or "HEAD")
        repo.refs.update(f"refs/heads/{name}", target, None)
        return target


def delete_branch(repo: Repository, name: str) -> None:
    """Delete branch ``name`` (not the current one)."""
    with repo.locked():
        cur = repo.refs.get(f"refs/heads/{name}")
        if cur is None:
            raise UsageError(f"no branch named {name}")
        head = repo.refs.head()
        if head.branch == name:
            raise UsageError(f"{name} is the current branch: switch to another one first")
        repo.refs.update(f"refs/heads/{name}", None, cur)


def create_tag(repo: Repository, name: str, rev: str | None) -> bytes:
    """Tag ``rev`` (default HEAD) as ``name``; refuse an existing tag."""
    check_ref_name(name, "tag")
    with repo.locked():
        if repo.refs.get(f"refs/tags/{name}") is not None:
            raise UsageError(f"tag {name} already exists: delete it first with --delete")
        target = repo.history.resolve(rev or "HEAD")
        repo.refs.update(f"refs/tags/{name}", target, None)
        return target


def delete_tag(repo: Repository, name: str) -> None:
    """Delete tag ``name``."""
    with repo.locked():
        cur = repo.refs.get(f"refs/tags/{name}")
        if cur is None:
            raise UsageError(f"no tag named {name}")
        repo.refs.update(f"refs/tags/{name}", None, cur)
