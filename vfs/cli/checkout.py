"""``dvfs checkout``, ``restore``, ``switch`` and ``merge``: undo and move around."""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import click

from vfs.cli.options import (
    AS_JSON,
    OFFLINE,
    YES,
    DvfsCommand,
    FreeText,
    RevsThenPaths,
    paragraphs,
)
from vfs.cli.output import count, emit_json, fail, quoted, repo_here, warn, workers
from vfs.cli.status_report import conflict_side, describe_side, instead_json, renamed_to
from vfs.cli.targets import DASHDASH
from vfs.errors import DvfsError, RevisionNotFound, UsageError
from vfs.ops import checkout, merging
from vfs.ops.restore import restore as restore_paths
from vfs.quoting import escape_text
from vfs.worktree.scan import show


def checkout_json(r: checkout.CheckoutReport) -> dict[str, Any]:
    """What a checkout did, as JSON (``failed``: each file not restored, and why)."""
    return {
        "version": r.label or None, "branch": r.attached, "paths": r.paths,
        "written": r.written,
        "deleted": r.deleted, "unchanged": r.unchanged,
        "failed": {show(p): str(exc) for p, exc in sorted(r.failed.items())},
        "carried": [show(p) for p in r.carried],
        "kept": [show(p) for p in r.kept],
    }  # fmt: skip


def report_checkout(r: checkout.CheckoutReport, as_json: bool = False) -> None:
    """Print what a checkout did, once it is over; exit 1 if some files were not restored.

    The files that failed are listed first (on stderr), then the summary of what
    was done, then one error line saying in which state they were left.
    """
    if as_json:
        emit_json(checkout_json(r))
        checkout_failures(r)
        return
    if len(r.failed) > 1:
        for p, exc in sorted(r.failed.items()):
            click.echo(f"  {quoted(p)}: {escape_text(str(exc))}", err=True)
    fetched = f"; {count(r.fetched, 'chunk')} downloaded first" if r.fetched else ""
    kept = f", {len(r.kept)} kept as changed meanwhile" if r.kept else ""
    if r.paths:
        failed = f", {len(r.failed)} not restored" if r.failed else ""
        failed += kept
        click.echo(f"restored from {quoted(r.label)}: {r.written} written, {r.deleted} deleted, "
                   f"{r.unchanged} unchanged{failed}{fetched}")  # fmt: skip
    elif not r.label:  # (switch -c on a branch with no versions yet)
        click.echo(
            f"on branch {quoted(r.attached or '')}, which has no versions yet: the first "
            "commit makes it; what is staged stays staged"
        )
    else:
        where = f"on branch {quoted(r.attached)}" if r.attached else "detached"
        failed = f", {len(r.failed)} not checked out" if r.failed else ""
        failed += kept
        click.echo(
            f"{quoted(r.label)} ({where}): {r.written} written, {r.deleted} deleted, "
            f"{r.unchanged} unchanged{failed}{fetched}"
        )
    if r.carried:  # (as git lists them: they are not in the version checked out)
        shown = ", ".join(quoted(show(p)) for p in r.carried[:5])
        more = f" and {len(r.carried) - 5:,} more" if len(r.carried) > 5 else ""
        click.echo(f"local changes kept, not committed: {shown}{more} (`dvfs status` lists them)")
    checkout_failures(r, listed=True)


def checkout_failures(r: checkout.CheckoutReport, *, listed: bool = False) -> None:
    """If some files could not be restored, or were kept as someone changed them
    meanwhile: say which, why and how they were left, on stderr, and exit 1
    (``listed``: the reasons of several failures were printed already)."""
    if r.kept:
        names = ", ".join(quoted(p) for p in r.kept[:10])
        more = f" and {len(r.kept) - 10} more" if len(r.kept) > 10 else ""
        them, it = ("it was", "it") if len(r.kept) == 1 else ("they were", "them")
        line = (
            f"{names}{more} changed while {quoted(r.label)} was being written: {them} kept "
            f"as changed, not made as {quoted(r.label)} has {it} (`dvfs status` shows {it})"
        )
        if not r.failed:
            fail(line)
        click.echo(f"dvfs: error: {escape_text(line)}", err=True)
    if not r.failed:
        return
    failed = sorted(r.failed.items())
    # (only where some were: a restore of one file, kept or failed, restored no other)
    others = ", the other files were restored" if r.written + r.unchanged + r.deleted else ""
    again = "" if r.paths else "; `dvfs checkout HEAD PATH` tries again"
    if len(failed) == 1:
        p, exc = failed[0]
        left = "left as it was" if r.paths else "not checked out"
        fail(f"could not restore {quoted(p)}: {exc}; it is {left}{others}{again}")
    names = ", ".join(quoted(p) for p, _ in failed[:10])
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    if not listed:
        for p, exc in failed:
            click.echo(f"  {quoted(p)}: {escape_text(str(exc))}", err=True)
    left = "left as they were" if r.paths else "not checked out"
    fail(f"could not restore {len(failed)} files ({names}{more}): they are {left}{others}{again}")


@click.command(cls=RevsThenPaths, name="checkout")
@click.argument("rev", required=False)
@click.argument("paths", nargs=-1)
@click.option("--force", "-f", is_flag=True, help="Discard uncommitted changes in the way.")
@click.option("--lock", "from_lock", is_flag=True, help="Restore the version dvfs.lock names.")
@click.option(
    "-b", "new_branch", metavar="NAME", help="Start branch NAME at REV (as dvfs switch -c)."
)  # fmt: skip
@OFFLINE
@YES
@AS_JSON
@click.pass_context
def checkout_cmd(
    ctx: click.Context, rev: str | None, paths: tuple[str, ...], force: bool,
    from_lock: bool, new_branch: str | None, offline: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Restore the working tree (or only PATHS) to version REV.

    Data not in the local store is downloaded from the default remote first.

    \b
    Examples:
      dvfs checkout v1
      dvfs checkout HEAD data/labels.csv
      dvfs checkout -b fix v1    # as dvfs switch -c fix v1
      dvfs checkout --lock       # after a git checkout
    """
    given = (rev is not None) + len(paths)
    if given and ctx.meta.get(DASHDASH) == given:
        # git's `checkout -- PATH` (`--` before every argument): read as a revision, it said
        given_paths = [a for a in (rev, *paths) if a is not None]
        named = shlex.join(given_paths)
        # (a file named with a trailing '/' is refused by restore: the hint names it bare)
        bare = shlex.join(
            a.rstrip("/") if a.endswith("/") and a.rstrip("/") and not os.path.isdir(a) else a
            for a in given_paths
        )
        raise UsageError(
            f"`dvfs checkout -- {named}` names no version: `dvfs restore {bare}` discards "
            f"your changes (as git's checkout -- does), `dvfs checkout REV {bare}` takes "
            "the files from a version"
        )
    if from_lock and (rev or paths or new_branch):
        raise UsageError("--lock takes no revision, paths or -b")
    if new_branch is not None and paths:
        raise UsageError("-b starts a branch of the whole working tree: give no PATHs")
    repo = repo_here()
    with workers() as w:
        if new_branch is not None:
            from vfs.ops import branches  # (and the mounts' and remotes' modules: -b alone)

            r = branches.switch_create(
                repo, new_branch, rev, w, force=force, warn=warn, offline=offline, yes=yes
            )
        else:
            try:
                r = checkout.checkout(
                    repo, rev, paths, w, force=force, from_lock=from_lock, warn=warn,
                    offline=offline, yes=yes,
                )  # fmt: skip
            except RevisionNotFound:
                if rev is None or paths or not os.path.lexists(rev):
                    raise
                # git's `checkout PATH` (no revision): a path, not an unknown revision
                raise UsageError(
                    f"{rev} is a path, not a revision: `dvfs restore {shlex.quote(rev)}` "
                    f"discards your changes, `dvfs checkout REV {shlex.quote(rev)}` takes it "
                    "from a version"
                ) from None
    report_checkout(r, as_json)


@click.command(cls=DvfsCommand)
@click.argument("paths", nargs=-1, required=True)
@click.option("--staged", "-S", is_flag=True, help="Unstage: set the index back to HEAD.")
@click.option(
    "--worktree", "-W", is_flag=True,
    help="Restore the working files (the default; with --staged, both).",
)  # fmt: skip
@click.option("--source", "-s", metavar="REV", help="Take the content from REV instead.")
@click.option("--ours", is_flag=True, help="In a merge: this branch's side.")
@click.option("--theirs", is_flag=True, help="In a merge: the merged side.")
@OFFLINE
@YES
@AS_JSON
def restore(
    paths: tuple[str, ...], staged: bool, worktree: bool, source: str | None, ours: bool,
    theirs: bool, offline: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Undo changes to PATHS: discard working changes, or unstage with --staged.

    Without --staged, the working files take the staged content again (or REV's with
    --source): changes not staged are discarded, deleted files come back. With
    --staged, the index takes HEAD's content (or REV's) and the files stay as they
    are. Nothing is deleted, and an untracked file is never overwritten.

    During a merge, --ours, --theirs and --source stage the content too and mark the
    conflicts at PATHS settled (a side that deleted a path deletes the file); with
    --worktree they write the working files alone, as git does, and the conflicts
    stay until `dvfs add`.

    \b
    Examples:
      dvfs restore data/labels.csv          # discard the changes not staged
      dvfs restore --staged data/           # unstage, keep the files
      dvfs restore --source v1 data/x.csv   # the file as it was at v1
      dvfs restore --theirs data/x.csv      # in a merge: settle a conflict
    """
    from vfs.ops import merge

    side = one_side(ours, theirs)
    repo = repo_here()
    if side is not None and source is not None:
        raise UsageError("--source and --ours/--theirs both choose the content: give one")
    if side is not None and staged:
        raise UsageError(
            f"--{side} settles a conflict in the index and the working files both, and "
            "--staged keeps the files: give one (nothing was done)"
        )
    in_merge = merging.live(repo.dir, repo.refs) is not None
    # (--worktree alone: the working files only, the conflicts left, as git's restore)
    settling = not worktree and (
        side is not None or (in_merge and source is not None and not staged)
    )
    with workers() as w:
        if settling or side is not None:
            r = merge.resolve(
                repo, paths, w, source=side or str(source), warn=warn, offline=offline, yes=yes,
                worktree_only=not settling,
            )  # fmt: skip
        else:
            r = restore_paths(
                repo, paths, w, staged=staged, worktree=worktree or None, source=source,
                offline=offline, yes=yes, warn=warn,
            )  # fmt: skip
    if as_json:
        emit_json(
            {"source": r.source, "unstaged": r.unstaged, "written": r.written,
             "deleted": r.deleted, "unchanged": r.unchanged, "fetched": r.fetched,
             "failed": {show(p): str(exc) for p, exc in sorted(r.failed.items())}}
        )  # fmt: skip
    else:
        done = []
        if staged:
            done.append(f"unstaged {count(r.unstaged, 'path')}")
        if not staged or worktree:
            done.append(f"{r.written} written, {r.unchanged} unchanged")
        if r.deleted and r.left_by is not None:
            done.append(f"{r.deleted} deleted (left by the {quoted(r.left_by)} cut short)")
        elif r.deleted:
            source = r.source if r.source in ("ours", "theirs") else quoted(r.source)
            done.append(f"{r.deleted} deleted (as {source} has no such file)")
        if settling and r.unsettled:
            done.append(f"{count(r.settled, 'conflict')} settled, {len(r.unsettled):,} not (below)")
        elif settling:
            done.append("staged, conflicts there settled")
        elif side is not None:  # (--worktree: the files alone)
            left = f"{count(len(r.unsettled), 'conflict')} there left to settle" + (
                " (`dvfs add PATH` settles one)" if r.unsettled else ""
            )
            done.append(f"nothing staged, {left}")
        fetched = f"; {count(r.fetched, 'chunk')} downloaded first" if r.fetched else ""
        if r.source is None:  # (--staged before the first commit: no version to take)
            click.echo(
                f"{', '.join(done)}: nothing is committed yet, so nothing was restored; "
                "the files stay as they are, untracked"
            )
        else:
            source = r.source if r.source == "the index" else quoted(r.source)
            click.echo(f"restored from {source}: {', '.join(done)}{fetched}")
    if settling and r.unsettled:
        failed = sorted(r.failed.items())
        if len(failed) > 1:
            for p, exc in failed:
                click.echo(f"  {quoted(p)}: {escape_text(str(exc))}", err=True)
        why = f": {failed[0][1]}" if len(failed) == 1 else " (listed above)"
        left = checkout.names_of(r.unsettled)
        fail(
            f"could not restore {checkout.names_of(sorted(r.failed))} from {r.source}{why}; "
            f"{'the conflict at' if len(r.unsettled) == 1 else 'the conflicts at'} {left} "
            f"{'stays' if len(r.unsettled) == 1 else 'stay'}, with the files and the index as "
            "they were: settle it once its data is back, or with the other side, or an edit "
            "and `dvfs add`"
        )
    if r.failed:
        report = checkout.CheckoutReport(
            r.source or "", None, paths=True, written=r.written, deleted=r.deleted,
            unchanged=r.unchanged, failed=r.failed,
        )  # fmt: skip
        checkout_failures(report)


@click.command(cls=DvfsCommand)
@click.argument("name")
@click.argument("rev", required=False)
@click.option("-c", "--create", is_flag=True, help="Create branch NAME at REV (default HEAD).")
@click.option("--force", "-f", is_flag=True, help="Discard uncommitted changes in the way.")
@OFFLINE
@YES
@AS_JSON
def switch(
    name: str, rev: str | None, create: bool, force: bool, offline: bool, yes: bool, as_json: bool
) -> None:
    """Switch to branch NAME and restore its latest version.

    With -c, create NAME first, at REV (default HEAD), as git switch -c does: at HEAD
    every local change stays; if the switch is refused, the new branch is deleted.

    \b
    Examples:
      dvfs switch main
      dvfs switch -c fix v1
    """
    if rev is not None and not create:
        raise UsageError(f"switch takes a branch; to start one at {rev}: dvfs switch -c NAME {rev}")
    from vfs.ops import branches  # (and the mounts' and remotes' modules: see checkout)

    repo = repo_here()
    with workers() as w:
        if create:
            r = branches.switch_create(
                repo, name, rev, w, force=force, warn=warn, offline=offline, yes=yes
            )
        else:
            r = branches.switch(repo, name, w, force=force, warn=warn, offline=offline, yes=yes)
    report_checkout(r, as_json)


def one_side(ours: bool, theirs: bool) -> str | None:
    """The side ``--ours``/``--theirs`` chose (None: neither); both is an error, not the
    last one given."""
    if ours and theirs:
        raise UsageError("choose --ours or --theirs, not both: nothing was done")
    return "ours" if ours else "theirs" if theirs else None


@click.command(cls=DvfsCommand, name="merge")
@click.argument("rev", required=False)
@click.option("--ours", is_flag=True, help="Settle every conflict with this side.")
@click.option("--theirs", is_flag=True, help="Settle every conflict with REV's.")
@click.option(
    "-m", "--message", multiple=True, callback=paragraphs, type=FreeText(),
    help="Message of the merge version (several: paragraphs of it).",
)  # fmt: skip
@click.option("--abort", is_flag=True, help="Give up the merge in progress.")
@click.option(
    "--continue", "finish", is_flag=True,
    help="Record the merge in progress once its conflicts are settled (as `dvfs commit`).",
)  # fmt: skip
@click.option(
    "-f", "--force", is_flag=True,
    help="With --abort: discard the files edited since the merge and not staged too.",
)  # fmt: skip
@OFFLINE
@AS_JSON
def merge_cmd(
    rev: str | None, ours: bool, theirs: bool, message: str | None, abort: bool, finish: bool,
    force: bool, offline: bool, as_json: bool,
) -> None:  # fmt: skip
    """Merge REV into the current branch (a version with two parents).

    Paths changed on one side only are combined; a path both sides changed is a
    conflict: the merge stops, listing them, until each is settled with `dvfs
    restore --ours PATH` or `--theirs PATH` (or edited and `dvfs add`ed); then `dvfs
    commit` (or `dvfs merge --continue`) records the merge. --ours/--theirs here settle
    every conflict at once.

    \b
    Examples:
      dvfs merge origin/main
      dvfs merge exp/lr-sweep --theirs -m "take the sweep's outputs"
      dvfs merge --continue
      dvfs merge --abort
    """
    from vfs.ops import merge

    side = one_side(ours, theirs)
    repo = repo_here()
    if finish:
        if rev or side or abort or force:
            raise UsageError("--continue takes no revision, side, --abort nor --force")
        if message is not None:
            from vfs.model import params as version_params  # (a merge's message alone)

            version_params.message(message)
        made = merge.finish(repo, message, warn)
        if as_json:
            emit_json({"version": f"v{made.number}", "id": made.oid.hex()})
        else:
            said = repo.history.version(made.oid).message
            click.echo(f"v{made.number} {made.oid.hex()[:10]}: merged - {escape_text(said)}")
        return
    if abort:
        if rev or side or message:
            raise UsageError("--abort takes no revision, side or message")
        with workers() as w:
            r = merge.abort(repo, w, warn, force=force)
        if as_json:
            emit_json({"aborted": True, "checkout": checkout_json(r)})
        else:
            click.echo(f"merge aborted: {r.written} written, {r.deleted} deleted")
        checkout_failures(r)  # (kept as changed meanwhile, or not restored: exit 1)
        return
    if rev is None:
        raise UsageError("say what to merge: dvfs merge REV (or --continue, --abort)")
    if force:
        raise UsageError("--force goes with --abort: a merge never overwrites uncommitted work")
    with workers() as w:
        m = merge.merge(repo, rev, w, side=side, message=message, warn=warn, offline=offline)
    if as_json:
        moved = m.renamed
        emit_json(
            {"outcome": m.outcome, "version": m.label, "id": m.oid.hex(), "written": m.written,
             "deleted": m.deleted, "fetched": m.fetched,
             "conflicts": [{"path": show(c.path),
                            "ours": describe_side(c.ours, moved.get((c.path, "ours"))),
                            "theirs": describe_side(c.theirs, moved.get((c.path, "theirs"))),
                            "ours_renamed_to": renamed_to(moved.get((c.path, "ours"))),
                            "theirs_renamed_to": renamed_to(moved.get((c.path, "theirs"))),
                            "ours_instead": instead_json(moved.get((c.path, "ours"))),
                            "theirs_instead": instead_json(moved.get((c.path, "theirs")))}
                           for c in m.conflicts],
             "not_checked_out": [show(p) for p in m.not_checked_out],
             "failed": {show(p): str(exc) for p, exc in sorted(m.failed.items())},
             "kept": [show(p) for p in m.kept]}
        )  # fmt: skip
        merge_failures(
            m.failed, m.label, conflicts=bool(m.conflicts), kept=m.kept, done=m.written + m.deleted
        )
        if m.conflicts:
            sys.exit(1)
        return
    if m.outcome == "up to date":
        click.echo(f"already up to date: {quoted(rev)} is in {quoted(m.label)}")
        return
    if len(m.failed) > 1 and not m.conflicts:
        for p, exc in sorted(m.failed.items()):
            click.echo(f"  {quoted(p)}: {escape_text(str(exc))}", err=True)
    done = f"{m.written} written, {m.deleted} deleted"
    unavailable = [p for p in m.not_checked_out if p not in m.failed]
    if unavailable:
        done += f", {count(len(unavailable), 'file')} not checked out (data unavailable)"
    if m.failed:
        done += f", {len(m.failed)} not checked out"
    if m.kept:
        done += f", {len(m.kept)} kept as changed meanwhile"
    if m.outcome == "fast-forward":
        click.echo(f"fast-forward to {quoted(m.label)} {m.oid.hex()[:10]}: {done}")
        merge_failures(
            m.failed, m.label, conflicts=False, listed=True, kept=m.kept, done=m.written + m.deleted
        )
        return
    if m.outcome == "merged":
        click.echo(f"{quoted(m.label)} {m.oid.hex()[:10]}: merged {quoted(rev)}; {done}")
        merge_failures(
            m.failed, m.label, conflicts=False, listed=True, kept=m.kept, done=m.written + m.deleted
        )
        return
    n = len(m.conflicts)
    click.echo(f"merging {quoted(rev)}: {done}; {count(n, 'conflict')} (changed on both sides):")
    width = min(60, max(len(quoted(c.path)) for c in m.conflicts))
    for c in m.conflicts:
        click.echo(
            f"  {quoted(c.path):<{width}}  "
            f"ours: {conflict_side(c.ours, m.renamed.get((c.path, 'ours')))}   "
            f"theirs: {conflict_side(c.theirs, m.renamed.get((c.path, 'theirs')))}"
        )
    click.echo(
        "Settle each with `dvfs restore --ours PATH` or `dvfs restore --theirs PATH` (or edit "
        "it and `dvfs add PATH`), then `dvfs commit`; `dvfs merge --abort` gives up."
    )
    merge_failures(m.failed, m.label, conflicts=True, kept=m.kept)
    sys.exit(1)


def merge_failures(
    failed: Mapping[bytes, DvfsError], label: str, *, conflicts: bool, listed: bool = False,
    kept: Sequence[bytes] = (), done: int = 1,
) -> None:  # fmt: skip
    """The files a merge took that could not be restored (they are not checked out,
    the merge's entry for them kept), and those ``kept`` as someone changed them after
    the merge checked them: said as a checkout says them, and exit 1; while conflicts
    stop the merge, warned of (the conflicts' exit follows). ``done``: how many files
    the merge wrote or deleted (none: no "other files were restored")."""
    if conflicts:
        for p in kept:
            warn(f"{quoted(p)} changed while the merge was writing: it was kept as changed")
        for p, exc in sorted(failed.items()):
            warn(f"could not restore {quoted(p)}: {exc}; it is not checked out")
        return
    report = checkout.CheckoutReport(
        label, None, written=done, failed=dict(failed), kept=list(kept)
    )
    checkout_failures(report, listed=listed)
