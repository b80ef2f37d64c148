"""What ``dvfs status`` prints: the working tree against HEAD and the index, or a mount's changes.

Without click: ``vfs.cli.main`` runs a plain ``dvfs status`` here directly, and the
click command ``vfs.cli.status.status`` calls the same :func:`show_status`, so that
both print the same report.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from vfs.cli.output import count, echo, emit_json, human, quoted, repo_here, warn, workers
from vfs.errors import DvfsError
from vfs.model.names import MAX_NAME, is_reserved, is_reserved_at_root
from vfs.ops import status as ops_status
from vfs.quoting import escape_text, shell_word
from vfs.repo.repository import Repository
from vfs.worktree.scan import show

if TYPE_CHECKING:
    from vfs.ops import merging
    from vfs.ops.diff import Change
    from vfs.ops.grouping import Group
    from vfs.repo.gitlink import LockPointer


def as_given(path: bytes) -> bytes:
    """A repository path as it is shown: from the root."""
    return path


def from_here(repo: Repository) -> Callable[[bytes], bytes]:
    """How ``status`` shows a repository path: relative to the current directory, as
    git does, so that a path it lists works as typed in ``dvfs add``, ``dvfs restore``
    and the other commands, which take paths relative to the current directory."""
    try:
        here = os.path.relpath(os.getcwdb(), os.fsencode(repo.root))
    except (FileNotFoundError, ValueError):
        return as_given
    if here == b"." or here == b".." or here.startswith(b"../"):
        return as_given
    return lambda path: posixpath.relpath(path or b".", here)


def change_line(c: Change, at: Callable[[bytes], bytes] = as_given) -> str:
    """One line describing a change; an empty directory ends in a slash. ``at`` maps a
    repository path to the path shown."""
    tail = "/" if c.kind == "dir" else ""
    path = quoted(at(c.path)) + tail
    mode = f"mode {c.old_mode or 0:03o} -> {c.new_mode or 0:03o}" if c.mode_changed else ""
    if c.status == "renamed":
        old = quoted(at(c.old_path) if c.old_path is not None else None)
        return f"renamed:  {old}{tail} -> {path}" + (f" ({mode})" if mode else "")
    link = "link, " if c.kind == "link" else ""  # (its size is its target's length)
    if c.status == "modified":
        if c.mode_only:
            return f"modified: {path} ({mode})"
        sizes = f"{link}{human(c.old_size)} -> {human(c.new_size)}"
        if c.old_kind is not None:  # a file that became a link, or the reverse
            sizes = f"{c.old_kind} -> {c.kind}, {human(c.old_size)} -> {human(c.new_size)}"
        return f"modified: {path} ({sizes}{', ' + mode if mode else ''})"
    if c.status == "added":
        return f"added:    {path} ({'empty directory' if tail else link + human(c.new_size)})"
    return f"removed:  {path} ({'empty directory' if tail else link + human(c.old_size)})"


def mount_status(mountpoint: str, as_json: bool) -> None:
    """`dvfs status MNT`: the working tree's changes, as its daemon records them."""
    from vfs.mount import control

    got = control.call(mountpoint, {"op": "status"})
    control.check_answer_fields(got, "added", "modified", "deleted", "renamed", "branch")
    if as_json:
        got.pop("ok", None)
        emit_json(got)
        return
    base = got.get("base_version")
    over = f" over v{escape_text(str(base))}" if base else ""
    echo(f"Working tree of branch {quoted(got['branch'])}{over}")
    lines = [f"  renamed:  {quoted(a)} -> {quoted(b)}" for a, b in got["renamed"]]
    lines += [f"  added:    {quoted(p)}" for p in got["added"]]
    lines += [f"  modified: {quoted(p)}" for p in got["modified"]]
    lines += [f"  deleted:  {quoted(p)}" for p in got["deleted"]]
    mnt = shell_word(mountpoint)  # (as typed: a hint works when pasted)
    record = f"`dvfs snapshot {mnt} -m MSG`"
    if got.get("branch_deleted") or got.get("head"):  # gone, or moved on since it began
        record = f"`dvfs snapshot {mnt} -m MSG --branch NEW`"
    if got.get("branch_deleted"):
        what = f"{record} records these changes on a new branch" if lines else "umount it"
        echo(f"The branch was deleted since this working tree began: {what}.")
    elif got.get("head"):
        now = got.get("head_version")
        at = f"v{escape_text(str(now))}" if now else escape_text(str(got["head"])[:10])
        if lines:
            what = f"{record} records these changes on a new branch"
        elif got.get("kept"):  # (changes no list shows: times, owners, links, special files)
            what = (
                "this working tree keeps changes no version diff shows (times, owners, "
                f"links), so it stays over its version; {record} saves them on a new branch"
            )
        else:
            what = f"mount {mnt} again to show it (a working tree without changes follows"
            what += " its branch)"
        echo(f"The branch has moved to {at} since this working tree began: {what}.")
    if lines:
        echo(f"Changes (use {record} to record them):")
        echo("\n".join(lines))
    elif got.get("kept"):
        echo(
            "No content, link target or permission bits changed; the working tree keeps "
            "changes no version diff shows (times, owners, links, special files)."
        )
    else:
        echo("Nothing to snapshot, working tree clean.")
    odd = got.get("unversionable") or []
    refused = [p for p in odd if not_recordable(str(p))]
    skipped = [p for p in odd if p not in refused]
    if skipped:
        echo("Not versionable (FIFOs, sockets, devices; kept in MNT only, a snapshot skips them):")
        echo("\n".join(f"  not versionable: {quoted(p)}" for p in skipped))
    if refused:
        echo(
            "Not versionable (reserved names, names longer than 255 bytes; a snapshot is "
            "refused until they are renamed or removed in MNT):"
        )
        echo("\n".join(f"  not versionable: {quoted(p)}" for p in refused))


def not_recordable(path: str) -> bool:
    """Whether a path a mount's daemon lists as not versionable makes a snapshot fail
    (a reserved name, a name too long) rather than be left out of it (a special file)."""
    parent, _, name = path.rpartition("/")
    raw = os.fsencode(name)
    return len(raw) > MAX_NAME or (is_reserved(raw) if parent else is_reserved_at_root(raw))


def show_status(
    mountpoint: str | None, as_json: bool = False, verbose: bool = False
) -> ops_status.Status | None:
    """Print the status of the repository around the current directory (of a mount: ``MNT``).

    Exits 1 if a tracked file could not be read (its state is unknown). Returns the
    status printed (None for a mount), which holds the index it was compared with:
    a caller about to end the process keeps it rather than free it (``vfs.cli.main``).
    """
    if mountpoint is not None:
        mount_status(mountpoint, as_json)
        return None
    repo = repo_here()
    with workers() as w:
        st = ops_status.status(repo, w, warn)
    work = st.work
    if as_json:
        from vfs.ops import browse  # only for --json: a plain status never loads it

        emit_json(
            {
                "branch": st.branch,
                "detached": st.detached,
                "head": st.head,
                "behind": st.behind,
                "staged": [browse.change_json(c) for c in st.staged],
                "modified": [show(p) for p in work.modified],
                "deleted": [show(p) for p in work.deleted],
                "special": [
                    {"path": show(p), "kind": k.split()[-1]} for p, k in work.special.items()
                ],
                "not_checked_out": [show(p) for p in work.not_checked_out],
                "untracked": [show(p) for p in work.untracked],
                "unreadable": [show(p) for p in work.unreadable],
                "remotes": tracking(repo, st),
                "merging": merge_json(st.merge, st.renamed),
                "lock": lock_json(st.lock),
                "cut_short": None
                if st.cut_short is None
                else {
                    "action": st.cut_short.action,
                    "to": st.cut_short.label,
                    "again": st.cut_short.again,
                    "paths": [show(p) for p in st.cut_short.paths],
                },
            }
        )
        if work.unreadable:
            sys.exit(1)
        return st
    branch = quoted(st.branch)
    where = f"HEAD detached at {quoted(st.detached)}" if st.detached else f"On branch {branch}"
    echo(where + (f" ({quoted(st.head)})" if st.head and not st.detached else ""))
    head = repo.refs.head()
    if st.cut_short is not None:
        cut = st.cut_short
        if cut.paths:  # (HEAD does not move for PATHs: the index alone)
            named = ", ".join(quoted(show(p)) for p in cut.paths[:3])
            more = f" and {len(cut.paths) - 3:,} more" if len(cut.paths) > 3 else ""
            echo(
                f"A {cut.action} of {named}{more} from {cut.label} was cut short: the working "
                "tree holds some of its files there, while the index still describes what was "
                f"there before; run `{quoted(cut.again)}` to finish it, or `dvfs restore .` to "
                "put back the index's files."
            )
        else:
            echo(
                f"A {cut.action} to {cut.label} was cut short: the working tree holds some of "
                f"its files, while HEAD and the index still describe what was there before; "
                f"run `{quoted(cut.again)}` to finish it, or `dvfs restore .` to put back "
                "HEAD's files."
            )
    if st.behind and head.detached is not None:
        # (a checkout killed once it had saved the index, before HEAD moved)
        echo(
            f"This working tree is at {quoted(st.behind)}, not at HEAD's version (a checkout "
            "or switch cut short): run it again to finish it, or `dvfs checkout "
            f"{head.detached.hex()[:12]}` to go back."
        )
    elif st.behind:
        echo(
            f"The branch moved past this working tree, which is at {quoted(st.behind)} (a "
            "snapshot of a mount, a pull elsewhere or one cut short): run "
            f"`dvfs switch {branch}` to update it."
        )
    if st.lock is not None:
        lock_line(repo, st.lock, st.behind or st.detached or st.head)
    grouped = False
    at = from_here(repo)
    if st.merge is not None:
        merge_lines(st.merge, at, st.renamed)
    remotes_seen = tracking(repo, st)
    for t in remotes_seen:
        echo(tracking_line(t, len(remotes_seen) > 1))
    if st.head is None:
        echo("No versions yet.")
    if st.staged or work.modified or work.deleted or work.untracked:
        grouped = change_lists(st, verbose, at)
    if work.not_checked_out:
        n = len(work.not_checked_out)
        of = f" of {quoted(st.head)}" if st.head else ""
        pull = "`dvfs pull PATH` or " if configured_remotes(repo) != set() else ""
        echo(f"{count(n, 'file')}{of} not checked out; {pull}`dvfs checkout HEAD PATH` brings them")
    if grouped:
        echo("(long lists are shown by directory: `dvfs status -v` lists every file)")
    if work.unreadable:  # each was named in a warning
        n = len(work.unreadable)
        echo(f"{n} tracked file{'s' if n != 1 else ''} could not be read: state unknown.")
        sys.exit(1)
    if st.merge is not None:  # the last word: nothing else to commit is no clean tree
        echo(merge_hint(st.merge))
    elif not (st.staged or work.modified or work.deleted or work.untracked):
        if work.not_checked_out:
            echo("Nothing to commit; the files checked out are clean.")
        else:
            echo("Nothing to commit, working tree clean.")
    return st


def lock_line(repo: Repository, ptr: LockPointer, holds: str | None) -> None:
    """What ``dvfs.lock`` names, which the working tree does not hold, and what brings it:
    ``checkout --lock`` needs the version here (a git pull of a teammate's commit may
    name one not fetched yet); a clone with nothing checked out gets it with ``pull``."""
    try:
        repo.history.version(ptr.oid)
        stored = True
    except DvfsError:  # (not here, or not readable: `checkout --lock` says which)
        stored = False
    names = f"dvfs.lock (as git has it) names v{ptr.number} {ptr.oid.hex()[:10]} of "
    tree = "holds no version yet" if holds is None else f"holds {quoted(holds)}"
    if stored:
        echo(
            f"{names}{quoted(ptr.branch)}, but this working tree {tree}: run "
            "`dvfs checkout --lock` to check that version out."
        )
        return
    todo = "`dvfs pull`" if holds is None else "`dvfs fetch`, then `dvfs checkout --lock`"
    echo(
        f"{names}{quoted(ptr.branch)}, which this repository does not have (this working "
        f"tree {tree}): run {todo} to get it; if no remote has it, whoever committed "
        "dvfs.lock must `dvfs push` it first."
    )


def lock_json(ptr: LockPointer | None) -> dict[str, str] | None:
    """``dvfs status --json``'s ``lock``: what dvfs.lock names, where the tree differs."""
    if ptr is None:
        return None
    return {"branch": ptr.branch, "version": f"v{ptr.number}", "id": ptr.oid.hex()}


def change_lists(st: ops_status.Status, verbose: bool, at: Callable[[bytes], bytes]) -> bool:
    """Print the staged, not staged and untracked changes; True if a list was shown by
    directory. ``at`` maps a repository path to the path shown.

    Apart from :func:`show_status` so that :mod:`vfs.ops.grouping` is loaded only when
    there is a change to list: a clean status never imports it.
    """
    from vfs.ops.grouping import GROUP_OVER, by_directory

    work = st.work
    grouped = False
    if st.staged:
        echo("Staged for commit (use `dvfs restore --staged PATH` to unstage):")
        if verbose or len(st.staged) <= GROUP_OVER:
            for c in st.staged:
                echo("  " + change_line(c, at))
        else:
            grouped = True
            for state in ("added", "modified", "renamed", "removed"):
                changes = [c for c in st.staged if c.status == state]
                for g in by_directory([c.path for c in changes]):
                    echo("  " + group_line(state, g, [changes[i] for i in g.members], at))
    if work.modified or work.deleted:
        echo("Not staged (use `dvfs add PATH` to stage, `dvfs restore PATH` to undo):")
        for state, paths in (("modified", work.modified), ("deleted", work.deleted)):
            groups = by_directory(paths, 1 << 62 if verbose else GROUP_OVER)
            grouped = grouped or len(groups) < len(paths)
            for g in groups:
                kind = None if g.is_dir else work.special.get(g.path)
                there = f" ({kind} is there now, never stored)" if kind else ""
                echo(f"  {state + ':':<9} {group_name(g, at)}{there}")
    if work.untracked:
        echo("Untracked files in tracked directories (use `dvfs add PATH`):")
        groups = by_directory(work.untracked, 1 << 62 if verbose else GROUP_OVER)
        grouped = grouped or len(groups) < len(work.untracked)
        for g in groups:
            echo(f"  {group_name(g, at)}")
    return grouped


def merge_json(
    m: merging.MergeState | None, renamed: merging.Renames | None = None
) -> dict[str, Any] | None:
    """A merge in progress as ``status --json`` shows it."""
    if m is None:
        return None
    moved = renamed or {}

    return {
        "rev": m.rev, "theirs": m.theirs.hex(), "base": m.base.hex(), "message": m.message,
        "complete": m.ready,
        "conflicts": [{"path": show(c.path),
                       "ours": describe_side(c.ours, moved.get((c.path, "ours"))),
                       "theirs": describe_side(c.theirs, moved.get((c.path, "theirs"))),
                       "ours_renamed_to": renamed_to(moved.get((c.path, "ours"))),
                       "theirs_renamed_to": renamed_to(moved.get((c.path, "theirs"))),
                       "ours_instead": instead_json(moved.get((c.path, "ours"))),
                       "theirs_instead": instead_json(moved.get((c.path, "theirs"))),
                       "resolved": c.resolved} for c in m.conflicts],
    }  # fmt: skip


def merge_lines(
    m: merging.MergeState, at: Callable[[bytes], bytes], renamed: merging.Renames | None = None
) -> None:
    """What ``status`` says first of a merge in progress: what is merged, and each
    conflict left (:func:`merge_hint` ends the report with how to finish it)."""
    moved = renamed or {}
    left = [c for c in m.conflicts if not c.resolved]
    state = f"{count(len(left), 'conflict')} to settle" if left else "every conflict settled"
    if not m.ready:
        state = "stopped before it had staged its files"
    echo(f"Merging {quoted(m.rev)} ({m.theirs.hex()[:10]}): {state}")
    for c in left:
        echo(
            f"  conflict: {quoted(at(c.path))}  "
            f"ours: {conflict_side(c.ours, moved.get((c.path, 'ours')))}   "
            f"theirs: {conflict_side(c.theirs, moved.get((c.path, 'theirs')))}"
        )


def merge_hint(m: merging.MergeState) -> str:
    """The last line of ``status`` while a merge is in progress: how to finish or abort it."""
    if not m.ready:
        return (
            f"A merge stopped midway: `dvfs merge --abort` goes back to the branch's version, "
            f"then `dvfs merge {shell_word(m.rev)}` merges again."
        )
    if any(not c.resolved for c in m.conflicts):
        return (
            "A merge is in progress: settle each conflict (`dvfs restore --ours|--theirs PATH`, "
            "or edit it and `dvfs add PATH`), then `dvfs commit` records the merge; "
            "`dvfs merge --abort` gives it up."
        )
    return "A merge is in progress: `dvfs commit` records it; `dvfs merge --abort` gives it up."


def configured_remotes(repo: Repository) -> set[str] | None:
    """The names of the remotes the shared and this clone's settings configure; None
    if the settings do not read (the commands that use remotes say why)."""
    from vfs.repo.shared import remote_names  # (not vfs.remote.config: 15 ms of imports)

    try:
        local = repo.config().get("remotes") or {}
        return remote_names(repo.root) | (set(local) if isinstance(local, dict) else set())
    except DvfsError:
        return None


def tracking(repo: Repository, st: ops_status.Status) -> list[dict[str, Any]]:
    """How the current branch stands against each remote's copy of it, as last seen
    (by a push, pull or fetch: no remote is asked).

    Only configured remotes count: a remote renamed in a dvfs.toml that came from git
    leaves this clone's copies under the old name, which no command takes any more;
    and the copies of a remote whose URL changed since are not its (they are dropped).
    Where the remote settings do not read, every copy is shown (the commands that
    use remotes say what is wrong with them)."""
    if st.detached or st.head is None:
        return []
    mine = repo.refs.head_id()
    seen = repo.refs.names("remotes")  # (none: neither the settings nor the history read)
    if not seen or mine is None:
        return []
    names = configured_remotes(repo)
    if names is not None:
        from vfs.remote.config import remotes  # (15 ms: only with copies of remote branches)

        with contextlib.suppress(DvfsError):  # (the commands that use remotes say why)
            remotes(repo)  # (copies kept from where a remote no longer is are dropped first)
        pairs = [
            (r, repo.refs.get(f"refs/remotes/{r}/{st.branch}"))
            for r in sorted(names)
            # (not a copy of remote r's branch but one of a remote named inside r's name)
            if not any(
                o.startswith(r + "/") and st.branch.startswith(o[len(r) + 1 :] + "/") for o in names
            )
        ]
    else:
        pairs = [
            (remote, repo.refs.get(f"refs/remotes/{name}"))
            for name in seen
            for remote, _, branch in [name.partition("/")]
            if branch == st.branch
        ]
    out = []
    for remote_name, theirs in pairs:
        if theirs is None:
            continue
        from vfs.repo.remote_copies import moved  # (10 ms of imports: only with copies)

        if moved(repo.dir, f"{remote_name}/{st.branch}") is not None:
            continue  # (the copy of where the remote was: held back there)
        ahead, behind = repo.history.ahead_behind(mine, theirs)
        name = f"{remote_name}/{st.branch}"
        out.append({"remote": remote_name, "name": name, "ahead": ahead, "behind": behind})
    return out


def tracking_line(t: dict[str, Any], several: bool) -> str:
    """One line of ``dvfs status`` about a remote's copy of the branch (``several``:
    other remotes have one too, so the hint names this remote)."""
    name, ahead, behind = quoted(t["name"]), t["ahead"], t["behind"]
    remote = f" --remote {quoted(t['remote'])}" if several else ""

    if ahead and behind:
        return (
            f"Diverged from {name}: {count(ahead, 'version')} here and "
            f"{count(behind, 'version')} there that the other lacks."
        )
    if ahead:
        them = "them" if ahead > 1 else "it"
        return (
            f"Ahead of {name} by {count(ahead, 'version')}: `dvfs push{remote}` publishes {them}."
        )
    if behind:
        them = "them" if behind > 1 else "it"
        return f"Behind {name} by {count(behind, 'version')}: `dvfs pull{remote}` brings {them}."
    return f"Up to date with {name}."


def group_name(g: Group, at: Callable[[bytes], bytes]) -> str:
    """A path, or a directory with how many of the listed paths it holds."""
    if not g.is_dir:
        return quoted(at(g.path))
    return f"{quoted(at(g.path))}/ ({g.count:,} files)"


def group_line(state: str, g: Group, changes: list[Change], at: Callable[[bytes], bytes]) -> str:
    """A staged change, or a directory of changes of one kind with their count and size."""
    if not g.is_dir:
        return change_line(changes[0], at)
    before = sum(c.old_size or 0 for c in changes)
    after = sum(c.new_size or 0 for c in changes)
    size = human(before) if state == "removed" else human(after)
    return f"{state + ':':<9} {quoted(at(g.path))}/ ({g.count:,} files, {size})"


def conflict_side(s: tuple[int, int] | None, instead: merging.Instead | None = None) -> str:
    """One side of a merge conflict: its size and time (a link: its target), or that it
    deleted the path, or what it holds instead (``merging.renamed``): renamed to another
    path, a directory there, or a file at a directory above it."""
    from vfs.ops import browse  # only while a merge is in progress

    if s is not None and instead is not None and instead.kind == "link":
        return f"link -> {quoted(instead.path)}"
    if s is not None:
        return f"{human(s[0])} {browse.iso_time(s[1])}"
    if instead is None:
        return "deleted"
    if instead.kind == "directory":
        return "a directory"
    if instead.kind == "file":
        return f"a file at {quoted(instead.path)}"
    return f"renamed to {quoted(instead.path)}"


def describe_side(
    s: tuple[int, int] | None, instead: merging.Instead | None = None
) -> dict[str, int | str] | None:
    """A side of a conflict as ``--json`` shows it; a link's with its ``link`` target."""
    if s is None:
        return None
    link = {"link": show(instead.path)} if instead is not None and instead.kind == "link" else {}
    return {"size": s[0], "mtime_ns": s[1], **link}


def instead_json(instead: merging.Instead | None) -> dict[str, str] | None:
    """What a side holds instead of a conflict's path, as ``--json`` shows it (a link
    at the path is in the side itself: ``describe_side``)."""
    if instead is None or instead.kind == "link":
        return None
    return {"kind": instead.kind, "path": show(instead.path)}


def renamed_to(instead: merging.Instead | None) -> str | None:
    """The path a side renamed a conflict's path to, for ``--json``."""
    return show(instead.path) if instead is not None and instead.kind == "renamed" else None
