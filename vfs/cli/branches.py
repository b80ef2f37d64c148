"""``dvfs branch`` and ``dvfs tag``."""

from __future__ import annotations

import shlex
import sys
from typing import Any

import click

from vfs.cli.options import AS_JSON, DvfsCommand
from vfs.cli.output import emit_json, quoted, repo_here, warn
from vfs.errors import FormatError, ObjectError, UsageError
from vfs.repo.repository import Repository


def name_and_rev(names: tuple[str, ...], what: str) -> tuple[str | None, str | None]:
    """``[NAME [REV]]`` of ``dvfs branch``/``dvfs tag`` without --delete."""
    if len(names) > 2:
        raise UsageError(
            f"give one {what} name and at most one revision (to delete several, use -d)"
        )
    return (names[0] if names else None), (names[1] if len(names) > 1 else None)


@click.command(cls=DvfsCommand)
@click.argument("names", nargs=-1, metavar="[NAME [REV]]")
@click.option(
    "-d", "--delete", is_flag=True,
    help="Delete the branches named, if no version would be left that only they hold.",
)  # fmt: skip
@click.option(
    "-D", "force_delete", is_flag=True,
    help="Delete the branches named, even with versions only they hold (-d --force).",
)  # fmt: skip
@click.option(
    "-f", "--force", is_flag=True,
    help="Move the existing branch NAME to REV (not the current); with -d, as -D.",
)  # fmt: skip
@click.option(
    "-m", "--move", "rename", is_flag=True,
    help="Rename branch OLD (default: the current one) to NEW: -m [OLD] NEW.",
)  # fmt: skip
@click.option(
    "-r", "--remotes", is_flag=True,
    help="List the remotes' branches as last fetched (REMOTE/BRANCH).",
)  # fmt: skip
@click.option("-a", "--all", "list_all", is_flag=True, help="List both kinds.")
@AS_JSON
def branch(
    names: tuple[str, ...], delete: bool, force_delete: bool, force: bool, rename: bool,
    remotes: bool, list_all: bool, as_json: bool,
) -> None:  # fmt: skip
    """List branches, or create NAME at REV (default HEAD).

    With -d, delete the branches named (not the current one), refused while one
    holds versions no other branch, tag or remote copy holds (they would be left to
    gc): -D (or -d -f) deletes them anyway. With -f, move the branch NAME to REV (not
    the current one: switch away first). With -m, rename a branch: HEAD, and the
    branch's mount working tree if it has one, follow. With -r, list the remotes' branches as the
    last push, fetch or pull saw them (`dvfs fetch` brings them up to date; `dvfs push
    --delete` deletes one on its remote); -a lists both.

    \b
    Examples:
      dvfs branch
      dvfs branch fix v1
      dvfs branch -d fix old
      dvfs branch -D spike
      dvfs branch -f fix v2
      dvfs branch -m fix fix-old
      dvfs branch -a
    """
    repo = repo_here()
    if force_delete or (delete and force):
        delete, force_delete, force = True, True, False
    if rename:
        if delete or force_delete or force or remotes or list_all or len(names) not in (1, 2):
            raise UsageError("-m renames one branch: `dvfs branch -m [OLD] NEW`")
        _rename(repo, names, as_json)
        return
    if force:
        if delete or remotes or list_all or len(names) != 2:
            raise UsageError("-f moves one branch: `dvfs branch -f NAME REV`")
        from vfs.ops import branches as ops  # (not for a listing: it loads checkout, mounts...)

        was, now = ops.move_branch(repo, names[0], names[1])
        if as_json:
            emit_json({**ref_json(repo, names[0], now), "was": was.hex()})
            return
        label = quoted(repo.history.label(now))
        click.echo(
            f"branch {quoted(names[0])} at {label} {now.hex()[:10]} (was "
            f"{quoted(repo.history.label(was))} {was.hex()[:10]})"
        )
        return
    if remotes or list_all:
        if names or delete:
            raise UsageError(
                "-r and -a only list: `dvfs branch -d NAME` deletes a branch here, "
                "`dvfs push --delete NAME` one on a remote"
            )
        _list(repo, as_json, local=list_all)
        return
    if delete:
        if not names:
            raise UsageError("name the branches to delete: dvfs branch -d NAME...")
        names = tuple(dict.fromkeys(names))  # a name given twice is deleted once
        damaged = missing_refs(repo, "heads", names, "branch")
        head = repo.refs.head()
        if head.detached is None and head.branch in names:
            raise UsageError(
                f"{quoted(head.branch)} is the current branch: switch to another one first; "
                "nothing was deleted"
            )
        from vfs.ops import branches as ops

        tips = ops.delete_branches(
            repo, [n for n in names if n not in damaged], force=force_delete, warn=warn
        )
        gone: list[dict[str, Any]] = []
        for n in names:
            if n in damaged and ops.delete_unreadable(repo, "heads", n):
                gone.append(unreadable_json(n))
                if not as_json:
                    click.echo(f"deleted branch {quoted(n)} (was unreadable)")
                continue
            if n not in tips:  # (a damaged ref mended meanwhile: deleted as any other)
                tips.update(ops.delete_branches(repo, [n], force=force_delete, warn=warn))
            was = tips[n]
            gone.append(ref_json(repo, n, was))
            if not as_json:
                label = quoted(repo.history.label(was))
                click.echo(f"deleted branch {quoted(n)} (was {label} {was.hex()[:10]})")
        if as_json:  # ("deleted": the names alone, as before; `dvfs branch NAME ID` undoes)
            emit_json({"deleted": list(names), "branches": gone})
        return
    name, rev = name_and_rev(names, "branch")
    if name:
        from vfs.ops import branches as ops

        oid = ops.create_branch(repo, name, rev)
        if as_json:
            emit_json(ref_json(repo, name, oid))
            return
        click.echo(f"branch {quoted(name)} at {quoted(repo.history.label(oid))} {oid.hex()[:10]}")
        return
    _list(repo, as_json, local=True, remote=False)


def _rename(repo: Repository, names: tuple[str, ...], as_json: bool) -> None:
    """``dvfs branch -m [OLD] NEW``: OLD defaults to the current branch."""
    if len(names) == 1:
        head = repo.refs.head()
        if head.detached is not None:
            raise UsageError(
                "HEAD is detached, so no branch is current: `dvfs branch -m OLD NEW` "
                "names the branch to rename"
            )
        names = (head.branch, names[0])
    old, new = names
    from vfs.ops import branches as ops

    oid = ops.rename_branch(repo, old, new)
    if oid is None:  # (no versions yet)
        if as_json:
            emit_json({"name": new, "version": None, "id": None, "was": old})
        else:
            click.echo(f"renamed branch {quoted(old)} to {quoted(new)} (no versions yet)")
        return
    if as_json:
        emit_json({**ref_json(repo, new, oid), "was": old})
        return
    click.echo(
        f"renamed branch {quoted(old)} to {quoted(new)} "
        f"({quoted(repo.history.label(oid))} {oid.hex()[:10]})"
    )


def _list(repo: Repository, as_json: bool, *, local: bool, remote: bool = True) -> None:
    """The branches of this repository (``local``) and the remotes' (``remote``), the
    current one marked; with ``remote``, JSON entries say which kind each is."""
    head = repo.refs.head()
    branches = repo.refs.branches() if local else {}
    # copies of a remote no settings name any more: listed, and said to be so; those
    # of a remote whose URL changed since are dropped first (they are not its)
    orphans: set[str] = set()
    if remote and repo.refs.names("remotes"):
        from vfs.remote.config import unconfigured_copies  # (15 ms: only with remote copies)

        orphans = set(unconfigured_copies(repo))
    theirs = {}
    for n in repo.refs.names("remotes") if remote else ():
        if (oid := repo.refs.get(f"refs/remotes/{n}")) is not None:
            theirs[n] = oid
    current = head.branch if head.detached is None else None
    if as_json:
        kind: dict[str, Any] = {"remote": False} if remote else {}  # (-r and -a only)
        rows = [
            {**ref_json(repo, n, oid), "current": n == current, **kind}
            for n, oid in branches.items()
        ]
        rows += [
            {**ref_json(repo, n, oid), "current": False, "remote": True,
             "configured": n not in orphans}
            for n, oid in theirs.items()
        ]  # fmt: skip
        if local and head.detached is not None:  # (the text's `* (HEAD detached at vN ID)`,
            # last and not `current`, a branch's mark: scripts find the branches as before)
            rows.append(
                {**ref_json(repo, "HEAD", head.detached), "current": False, **kind,
                 "detached": True}
            )  # fmt: skip
        emit_json(rows)
        if any(r["version"] is None for r in rows):
            sys.exit(1)  # (as the listing does)
        return
    if local and head.detached is not None:
        label = quoted(repo.history.label(head.detached))
        click.echo(f"* (HEAD detached at {label} {head.detached.hex()[:10]})")
    elif local and head.branch not in branches:
        click.echo(f"* {quoted(head.branch)} (no versions yet)")
    lost: list[str] = []
    for n, oid in branches.items():
        mark = "*" if n == current else " "
        click.echo(f"{mark} {_listed(repo, n, oid, lost)}")
    for n, oid in theirs.items():
        line = f"  {_listed(repo, n, oid, lost)}"
        if n in orphans:
            gone = n.partition("/")[0]
            line += (
                f"  (no remote {quoted(gone)} is configured: `dvfs remote remove "
                f"{shlex.quote(gone)}` deletes it here)"
            )
        click.echo(line)
    if lost:
        sys.exit(1)


def missing_refs(repo: Repository, kind: str, names: tuple[str, ...], what: str) -> set[str]:
    """Refuse a deletion naming a branch or tag that does not exist, before any is deleted;
    the names whose ref is damaged (there, holding no id: deleted all the same)."""
    missing: list[str] = []
    damaged: set[str] = set()
    for n in names:
        try:
            if repo.refs.get(f"refs/{kind}/{n}") is None:
                missing.append(n)
        except FormatError:
            damaged.add(n)
    if missing:
        listed = ", ".join(quoted(n) for n in missing)
        raise UsageError(f"no {what} named {listed}: nothing was deleted")
    return damaged


def ref_json(repo: Repository, name: str, oid: bytes) -> dict[str, Any]:
    """A branch or tag as JSON: its name, and the number (None if the version is not
    stored here) and id of its version."""
    return {"name": name, "version": label_of(repo, oid), "id": oid.hex()}


def label_of(repo: Repository, oid: bytes) -> str | None:
    """``vN`` of a version, or None if it is not stored here (damage: fsck names it)."""
    try:
        return repo.history.label(oid)
    except ObjectError:
        return None


def _listed(repo: Repository, name: str, oid: bytes, lost: list[str]) -> str:
    """``NAME  vN  ID`` of a branch or tag in a listing; one whose version is not stored
    here is listed so, and added to ``lost`` (the listing then exits 1)."""
    label = label_of(repo, oid)
    if label is None:
        lost.append(name)
        return f"{quoted(name)}  (version {oid.hex()[:10]} is not stored here: `dvfs fsck`)"
    return f"{quoted(name)}  {quoted(label)}  {oid.hex()[:10]}"


def unreadable_json(name: str) -> dict[str, Any]:
    """A deleted branch or tag whose ref held no id, as JSON (:func:`ref_json`'s keys)."""
    return {"name": name, "version": None, "id": None}


@click.command(cls=DvfsCommand)
@click.argument("names", nargs=-1, metavar="[NAME [REV]]")
@click.option("-d", "--delete", is_flag=True, help="Delete the tags named.")
@AS_JSON
def tag(names: tuple[str, ...], delete: bool, as_json: bool) -> None:
    """List tags, or tag REV (default HEAD) as NAME.

    With -d, delete the tags named.

    \b
    Examples:
      dvfs tag
      dvfs tag best v4
      dvfs tag -d best
    """
    repo = repo_here()
    if delete:
        if not names:
            raise UsageError("name the tags to delete: dvfs tag -d NAME...")
        names = tuple(dict.fromkeys(names))  # a name given twice is deleted once
        damaged = missing_refs(repo, "tags", names, "tag")
        from vfs.ops import branches as ops  # (not for a listing: it loads checkout, mounts...)

        gone: list[dict[str, Any]] = []
        for n in names:
            if n in damaged and ops.delete_unreadable(repo, "tags", n):
                gone.append(unreadable_json(n))
                if not as_json:
                    click.echo(f"deleted tag {quoted(n)} (was unreadable)")
                continue
            was = ops.delete_tag(repo, n)
            gone.append(ref_json(repo, n, was))
            if not as_json:
                label = quoted(repo.history.label(was))
                click.echo(f"deleted tag {quoted(n)} (was {label} {was.hex()[:10]})")
        if as_json:  # ("deleted": the names alone, as before; `dvfs tag NAME ID` undoes)
            emit_json({"deleted": list(names), "tags": gone})
        return
    name, rev = name_and_rev(names, "tag")
    if name:
        from vfs.ops import branches as ops

        oid = ops.create_tag(repo, name, rev)
        if as_json:
            emit_json(ref_json(repo, name, oid))
            return
        click.echo(f"tag {quoted(name)} -> {quoted(repo.history.label(oid))} {oid.hex()[:10]}")
        return
    tags = repo.refs.tags()
    if as_json:
        rows = [ref_json(repo, n, oid) for n, oid in tags.items()]
        emit_json(rows)
        if any(r["version"] is None for r in rows):
            sys.exit(1)  # (as the listing does)
        return
    lost: list[str] = []
    for n, oid in tags.items():
        click.echo(_listed(repo, n, oid, lost))
    if lost:
        sys.exit(1)
