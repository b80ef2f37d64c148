"""``dvfs remote``, ``push``, ``fetch``, ``pull`` and ``clone``."""

from __future__ import annotations

import contextlib
import dataclasses
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from vfs.cli.branches import ref_json
from vfs.errors import NotARepository, RemoteUnreachable, UsageError
from vfs.quoting import escape_text
from vfs.repo.gitlink import find_shared_root
from vfs.repo.repository import Repository

if TYPE_CHECKING:
    from vfs.ops import sync

from vfs._os.malloc import large_buffers_to_os
from vfs.cli.options import AS_JSON, JOBS, REMOTE, YES, DvfsCommand, DvfsGroup, OnOff, Token
from vfs.cli.output import (
    emit_json,
    human,
    keep_within_max_size,
    quoted,
    repo_here,
    warn,
    workers,
)


def transfer_line(verb: str, t: sync.Transfer) -> str:
    """The closing line of a transfer: objects, packs, bytes and requests."""
    packs = f" in {t.packs} pack{'s' if t.packs != 1 else ''}" if t.packs else ""
    objects = f"{t.objects} object{'s' if t.objects != 1 else ''}"
    line = f"{verb} {objects}{packs} ({human(t.bytes)}), {t.requests} requests"
    if t.kept_packs:
        s = "s" if t.kept_packs != 1 else ""
        line += (
            f"; {t.kept_packs} pack{s} ({human(t.kept_bytes)}) already on the remote, "
            "not sent again"
        )
    return line


@contextlib.contextmanager
def resumable(command: str) -> Iterator[None]:
    """When a remote stops answering, also say that nothing was lost and what to run.

    What to run is the command as it was typed (``dvfs push --remote backup``): a bare
    ``dvfs push`` would send to the default remote, not the one that did not answer.
    """
    try:
        yield
    except RemoteUnreachable as exc:
        then = "to resume" if command != "clone" else "(the partial clone was removed)"
        typed = sys.argv[1:]
        line = shlex.join(typed) if typed[:1] == [command] else command
        hint = f"nothing was lost; run `dvfs {line}` again {then}"
        raise RemoteUnreachable(f"{exc}; {hint}") from None


@click.group(cls=DvfsGroup, invoke_without_command=True)
@click.option("-v", "--verbose", is_flag=True, hidden=True, help="As git remote -v: the list.")
@click.pass_context
def remote(ctx: click.Context, verbose: bool) -> None:
    """Manage remotes (S3 buckets or directories that hold shared versions).

    Without a command, list them (as `dvfs remote list`).

    \b
    Examples:
      dvfs remote add origin s3://bucket/datasets/cats --endpoint-url http://minio:9000
      dvfs remote list
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(remote_list, as_json=False)


SCOPE = click.option(
    "--shared/--local", "shared", cls=OnOff, default=None,
    help="In dvfs.toml, committed to git (default inside a git work tree), or in this clone only.",
)  # fmt: skip


def in_shared(repo: Repository, shared: bool | None) -> bool:
    """Whether a remote setting goes to dvfs.toml: as asked, else inside a git work tree."""
    from vfs.remote import config as remotes

    return remotes.shared_by_default(repo) if shared is None else shared


def place_note(shared: bool, kept_as: str = "") -> str:
    """Where a setting was written (``kept_as``: how, where not as the line shows it),
    for the line that reports it."""
    if shared:
        return f" (in dvfs.toml{kept_as}: commit it, and clones of this git repository have it)"
    return " (in .dvfs/config: this clone only)"


@remote.command(name="add")
@click.argument("name")
@click.argument("url", type=Token())
@click.option("--endpoint-url", type=Token(), help="S3 endpoint (MinIO, SeaweedFS, Ceph, R2...).")
@click.option("--region", type=Token(), help="S3 region.")
@click.option("--profile", type=Token(), help="AWS profile for credentials.")
@click.option("--default", "make_default", is_flag=True, help="Make it the default remote.")
@SCOPE
def remote_add(
    name: str, url: str, endpoint_url: str | None, region: str | None, profile: str | None,
    make_default: bool, shared: bool | None,
) -> None:  # fmt: skip
    """Add remote NAME at URL (s3://bucket/prefix, file:///path or a directory).

    Inside a git work tree it goes to dvfs.toml, to be committed, so that a
    `git clone` followed by `dvfs pull` finds it; --local keeps it to this clone.

    \b
    Examples:
      dvfs remote add origin s3://bucket/datasets/cats --endpoint-url http://minio:9000
      dvfs remote add backup /mnt/nas/cats --default --local
    """
    from vfs.remote import config as remotes
    from vfs.repo.remote_copies import settings_url

    repo = repo_here()
    share = in_shared(repo, shared)
    kept = remotes.add_remote(
        repo, remotes.RemoteSpec(name, url, endpoint_url, region, profile), make_default,
        shared=share,
    )  # fmt: skip
    # a relative directory: the one it names from here, kept relative to the root
    where = settings_url(repo.root, kept.url)
    kept_as = f" as {quoted(kept.url)}, from the repository root" if where != kept.url else ""
    click.echo(f"added remote {quoted(name)} -> {quoted(where)}{place_note(share, kept_as)}")


@remote.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def remote_list(as_json: bool) -> None:
    """List remotes (the default one is marked *).

    A directory remote inside the repository (a dvfs.toml written by hand may name
    one) is listed with a warning: push, fetch and pull refuse it.

    \b
    Examples:
      dvfs remote list
      dvfs remote list --json
    """
    from vfs.remote import config as remotes

    repo = repo_here()
    known = remotes.remotes(repo)
    default = remotes.default_remote(repo)
    local = remotes.local_names(repo)
    for spec in known.values():
        try:
            remotes.refuse_inside(
                repo.root, spec, "(`dvfs remote remove NAME`, then `dvfs remote add NAME DIR`): "
                "push, fetch and pull refuse it as it is",
            )  # fmt: skip
        except UsageError as exc:
            warn(str(exc))
    if as_json:
        emit_json(
            [{**s.shown(), "name": n, "default": n == default,
              "scope": "local" if n in local else "shared"} for n, s in known.items()]
        )  # fmt: skip
        return
    for n, spec in known.items():
        shown = spec.shown()
        extra = f"  (endpoint {quoted(shown['endpoint_url'])})" if spec.endpoint_url else ""
        extra += "  [this clone only]" if n in local else "  [dvfs.toml]"
        click.echo(f"{'*' if n == default else ' '} {quoted(n)}  {quoted(shown['url'])}{extra}")


@remote.command(name="remove")
@click.argument("name")
@click.option(
    "--shared/--local", "shared", cls=OnOff, default=None,
    help="Only from dvfs.toml, or only from this clone (default: from both).",
)  # fmt: skip
@click.option(
    "--force", "-f", is_flag=True,
    help="Remove it even if it alone holds data that versions here use.",
)  # fmt: skip
def remote_remove(name: str, shared: bool | None, force: bool) -> None:
    """Forget remote NAME (nothing on the remote is touched).

    Its branches here (NAME/BRANCH) go with it. A remote that no settings name any
    more (dvfs.toml changed by a `git pull`) but whose branches this clone still
    holds, as `dvfs branch -r` shows, is removed the same way. A remote that alone
    holds data versions here use and the local store lacks (never downloaded, or
    pruned) is kept unless --force.

    \b
    Examples:
      dvfs remote remove backup
      dvfs remote remove origin --local    # drop this clone's override of origin
    """
    from vfs.remote import config as remotes

    only = None if shared is None else "shared" if shared else "local"
    done = remotes.remove_remote(repo_here(), name, only=only, force=force)
    if done.places:
        click.echo(f"removed remote {quoted(name)} from {' and '.join(done.places)}")
        return
    for b in done.branches:
        click.echo(f"{quoted(b)}  deleted")
    click.echo(
        f"removed what this clone kept of remote {quoted(name)} (no settings name it any more)"
    )


@remote.command(name="rename")
@click.argument("old")
@click.argument("new")
def remote_rename(old: str, new: str) -> None:
    """Rename remote OLD to NEW, with its branches here (OLD/BRANCH becomes NEW/BRANCH).

    Wherever OLD is defined: this clone's settings, dvfs.toml (commit the change, so
    that teammates get it), or both. Nothing on the remote is touched.

    \b
    Examples:
      dvfs remote rename origin upstream
    """
    from vfs.remote import config as remotes

    places = remotes.rename_remote(repo_here(), old, new)
    click.echo(f"renamed remote {quoted(old)} to {quoted(new)} in {' and '.join(places)}")


@remote.command(name="default")
@click.argument("name")
@SCOPE
def remote_default(name: str, shared: bool | None) -> None:
    """Make NAME the default remote.

    \b
    Examples:
      dvfs remote default origin
      dvfs remote default backup --local    # for this clone only
    """
    from vfs.remote import config as remotes

    repo = repo_here()
    share = in_shared(repo, shared)
    remotes.set_default(repo, name, shared=share)
    here = remotes.default_remote(repo)
    still = (
        f"; this clone's own default, {quoted(here)} (.dvfs/config), still wins here: "
        f"`dvfs remote default {shlex.quote(name)} --local` changes it"
        if here is not None and here != name
        else ""
    )
    click.echo(f"default remote: {quoted(name)}{place_note(share)}{still}")


@click.command(cls=DvfsCommand)
@click.argument("branches", nargs=-1)
@REMOTE
@click.option("--all", "all_branches", is_flag=True, help="Push every branch.")
@click.option("--tags", is_flag=True, help="Push tags too.")
@click.option(
    "--delete",
    "-d",
    "delete",
    is_flag=True,
    help="Delete the named branches or tags on the remote instead.",
)
@click.option(
    "--force", "-f", is_flag=True,
    help="Move remote branches even to versions that do not follow theirs, if they are "
    "where this clone last saw them.",
)  # fmt: skip
@JOBS
@AS_JSON
def push(
    branches: tuple[str, ...], remote_name: str | None, all_branches: bool, tags: bool,
    delete: bool, force: bool, jobs: int, as_json: bool,
) -> None:  # fmt: skip
    """Send versions of BRANCHES (default: the current one) to a remote.

    With --delete, remove the named branches or tags from the remote instead (a
    name both are: refs/heads/NAME or refs/tags/NAME). Only a version this clone has
    fetched is deleted, and the remote's audit chain records it. With --force, a
    branch moved back (`dvfs branch -f`) is moved back on the remote too, if the
    remote's is still where this clone last saw it.

    \b
    Examples:
      dvfs push
      dvfs push --all --tags
      dvfs push --remote backup main
      dvfs push --delete old-experiment
      dvfs push --force main
    """
    from vfs.ops import sync
    from vfs.remote import config as remotes

    repo = repo_here()
    spec = remotes.get_remote(repo, remote_name)
    if delete:
        if not branches or all_branches or tags or force:
            raise UsageError(
                "--delete takes the names of the branches or tags to delete, and none of "
                "--all, --tags, --force: `dvfs push --delete NAME...`"
            )
        with resumable("push"):
            t = sync.delete_refs(repo, spec, list(branches), jobs)
    else:
        large_buffers_to_os()
        with workers() as w, resumable("push"):
            t = sync.push(
                repo, spec, list(branches), w, all_branches=all_branches, tags=tags, jobs=jobs,
                force=force,
            )  # fmt: skip
    for line in t.warnings:
        warn(line)
    if as_json:
        emit_json(dataclasses.asdict(t))
    else:
        for note in t.notes:
            click.echo(escape_text(note))
        if not delete:
            click.echo(transfer_line("pushed", t))
    if t.refused:
        raise sync.refused_tags_error(t.refused)


@click.command(cls=DvfsCommand, context_settings={"allow_extra_args": True})
@REMOTE
@click.option(
    "--prune", "-p", is_flag=True,
    help="Delete this clone's REMOTE/BRANCH of branches the remote no longer has.",
)  # fmt: skip
@click.option(
    "--force", "-f", is_flag=True,
    help="Read a remote whose URL changed even if only its old place holds data here.",
)  # fmt: skip
@JOBS
@AS_JSON
@click.pass_context
def fetch(
    ctx: click.Context, remote_name: str | None, prune: bool, force: bool, jobs: int,
    as_json: bool,
) -> None:  # fmt: skip
    """Fetch refs, versions and trees from a remote (no file data).

    A remote whose URL changed (dvfs.toml edited, or changed by a `git pull`) while
    its old place alone holds data versions here use (dropped by `dvfs store prune`,
    or never downloaded) is refused, naming the old place, unless --force: what this
    clone kept of the old place then goes, and that data cannot be read from here.

    \b
    Examples:
      dvfs fetch
      dvfs fetch --remote backup
      dvfs fetch --prune
    """
    from vfs.ops import sync
    from vfs.remote import config as remotes

    repo = repo_here()
    if ctx.args:  # (git's `fetch origin`: a remote is named with --remote here)
        first = ctx.args[0]
        if remote_name is None and len(ctx.args) == 1 and first in remotes.remotes(repo):
            raise UsageError(
                f"{quoted(first)} is a remote: `dvfs fetch --remote {first}` fetches from it"
            )
        raise UsageError(
            f"`dvfs fetch` takes no argument ({quoted(first)}): name a remote with "
            "`--remote NAME` (see `dvfs fetch --help`)"
        )
    spec = remotes.get_remote(repo, remote_name, force=force)
    with resumable("fetch"):
        got = sync.fetch(repo, spec, jobs, prune=prune)
    for w in got.transfer.warnings:
        warn(w)
    gone = [f"{spec.name}/{b}" for b in sorted(got.gone)]
    # --prune prunes the remote fetched; copies of a remote no settings name are named
    stray = sorted(remotes.unconfigured_copies(repo)) if prune else []
    if as_json:
        heads = [ref_json(repo, f"{spec.name}/{b}", oid) for b, oid in sorted(got.heads.items())]
        emit_json(
            {
                "branches": heads,
                "new_tags": [ref_json(repo, t, oid) for t, oid in sorted(got.new_tags.items())],
                "gone": gone,
                "pruned": got.pruned,
                **({"unconfigured": stray} if prune else {}),
                "transfer": dataclasses.asdict(got.transfer),
            }
        )
        return
    for b, oid in sorted(got.heads.items()):
        label = quoted(repo.history.label(oid))
        click.echo(f"{quoted(f'{spec.name}/{b}')}  {label}  {oid.hex()[:10]}")
    for t, oid in sorted(got.new_tags.items()):
        click.echo(f"new tag {quoted(t)}  {quoted(repo.history.label(oid))}  {oid.hex()[:10]}")
    for name in gone:
        click.echo(
            f"{quoted(name)}  deleted: gone from the remote"
            if got.pruned
            else f"{quoted(name)}  gone from the remote (`dvfs fetch --prune` deletes it here)"
        )
    for name in stray:
        top = name.partition("/")[0]
        click.echo(
            f"{quoted(name)}  kept: no remote {quoted(top)} is configured (`dvfs remote remove "
            f"{shlex.quote(top)}` deletes it here)"
        )
    for note in got.transfer.notes:
        click.echo(escape_text(note))
    click.echo(transfer_line("fetched", got.transfer))


@click.command(cls=DvfsCommand)
@click.argument("rev", required=False)
@click.argument("paths", nargs=-1)
@REMOTE
@click.option("--force", "-f", is_flag=True, help="Discard uncommitted changes in the way.")
@click.option("--merge", "do_merge", is_flag=True, help="Merge the remote's branch if diverged.")
@YES
@JOBS
@AS_JSON
def pull(
    rev: str | None, paths: tuple[str, ...], remote_name: str | None, force: bool,
    do_merge: bool, yes: bool, jobs: int, as_json: bool,
) -> None:  # fmt: skip
    """Fetch, download what REV (default: the remote's branch) needs, and check it out.

    In a git clone that has dvfs.toml but no store yet, the store is made from
    the shared remote first, and the version dvfs.lock names is restored.

    \b
    Examples:
      dvfs pull
      dvfs pull v3 images/train    # only the chunks of images/train at v3
      dvfs pull images/val
      dvfs pull --merge            # the branch and the remote's diverged: merge them
    """
    if do_merge and (rev or paths):
        raise UsageError("--merge merges the remote's branch: give no REV or PATH")
    from vfs.cli.checkout import checkout_failures, checkout_json, merge_failures, report_checkout
    from vfs.ops import gitclone, sync
    from vfs.remote import config as remotes
    from vfs.worktree.scan import show

    try:
        repo = repo_here()
    except NotARepository:
        root = find_shared_root(Path.cwd())
        if root is None:
            raise
        if not rev and not paths:
            return first_pull(root, remote_name, force, yes, jobs, as_json)
        with resumable("pull"):
            repo = gitclone.make_store(root, remote_name, jobs)
    if not rev and not paths and gitclone.pending(repo):
        return first_pull(repo.root, remote_name, force, yes, jobs, as_json)
    spec = remotes.get_remote(repo, remote_name)
    with workers() as w, resumable("pull"):
        r = sync.pull(
            repo, spec, rev, list(paths), w, jobs=jobs, force=force, yes=yes, merge=do_merge
        )
    keep_within_max_size(repo)
    for line in r.transfer.warnings:
        warn(line)
    if as_json:
        emit_json(
            {"message": r.message or None, "transfer": dataclasses.asdict(r.transfer),
             "checkout": checkout_json(r.checkout) if r.checkout is not None else None,
             "conflicts": r.conflicts,
             "failed": {show(p): str(exc) for p, exc in sorted(r.failed.items())},
             "kept": [show(p) for p in r.kept]}
        )  # fmt: skip
        if r.checkout is not None:
            checkout_failures(r.checkout)
        merge_failures(r.failed, r.label, conflicts=bool(r.conflicts), kept=r.kept, done=r.written)
        if r.conflicts:
            sys.exit(1)
        return
    if r.message and not r.conflicts:
        click.echo(escape_text(r.message))
    click.echo(transfer_line("downloaded", r.transfer))
    if r.checkout is not None:
        report_checkout(r.checkout)
    merge_failures(r.failed, r.label, conflicts=bool(r.conflicts), kept=r.kept, done=r.written)
    if r.conflicts:  # a merge that stopped: the last word, what to do now
        if r.message:
            click.echo(escape_text(r.message))
        sys.exit(1)


def first_pull(
    root: Path, remote_name: str | None, force: bool, yes: bool, jobs: int, as_json: bool
) -> None:
    """`dvfs pull` in a git clone with no data yet: make the store, restore dvfs.lock's version."""
    from vfs.cli.checkout import checkout_failures, checkout_json, report_checkout
    from vfs.ops import gitclone

    with workers() as w, resumable("pull"):
        s = gitclone.set_up(root, remote_name, w, jobs=jobs, yes=yes, force=force)
    for line in s.transfer.warnings:
        warn(line)
    if as_json:
        emit_json(
            {"message": None, "transfer": dataclasses.asdict(s.transfer),
             "checkout": checkout_json(s.checkout),
             "set_up": {"remote": s.remote, "branch": s.branch, "id": s.target.hex(),
                        "from_lock": s.from_lock}}
        )  # fmt: skip
        checkout_failures(s.checkout)
        return
    what = "the version dvfs.lock names" if s.from_lock else f"branch {quoted(s.branch)}"
    click.echo(f"set up the store from dvfs.toml (remote {quoted(s.remote)}); restoring {what}")
    click.echo(transfer_line("downloaded", s.transfer))
    report_checkout(s.checkout)


@click.command(cls=DvfsCommand, name="clone")
@click.argument("url", type=Token())
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option(
    "--rev", help="Check out this revision (or branch of the remote) instead of the main branch."
)
@click.option("--no-checkout", is_flag=True, help="Fetch versions only; download no data.")
@click.option("--endpoint-url", type=Token(), help="S3 endpoint (MinIO, SeaweedFS, Ceph, R2...).")
@YES
@JOBS
@AS_JSON
def clone_cmd(
    url: str, directory: Path | None, rev: str | None, no_checkout: bool,
    endpoint_url: str | None, yes: bool, jobs: int, as_json: bool,
) -> None:  # fmt: skip
    """Make a new repository from a remote at URL.

    \b
    Examples:
      dvfs clone s3://bucket/datasets/cats cats --endpoint-url http://minio:9000
      dvfs clone /mnt/nas/cats --no-checkout
    """
    from vfs.cli.checkout import checkout_failures
    from vfs.ops import sync

    target = directory or Path(sync.default_dir(url))
    with workers() as w, resumable("clone"):
        repo, t, branch, report = sync.clone(
            url, target, w, rev=rev, no_checkout=no_checkout, endpoint_url=endpoint_url,
            jobs=jobs, yes=yes,
        )  # fmt: skip
    for line in t.warnings:
        warn(line)
    if as_json:
        emit_json({"path": str(repo.root), "branch": branch, "transfer": dataclasses.asdict(t)})
    else:
        click.echo(f"cloned {quoted(url)} into {quoted(str(repo.root))} (branch {quoted(branch)})")
        click.echo(transfer_line("downloaded", t))
    if report is not None:
        checkout_failures(report)  # (the clone stays: its other files are there)
