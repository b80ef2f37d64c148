"""``dvfs install`` and the git hooks it installs (``dvfs hook``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vfs._os.program import set_command
from vfs.cli.checkout import report_checkout
from vfs.cli.options import DvfsCommand
from vfs.cli.output import quoted, repo_here, warn, workers
from vfs.cli.sync import push, transfer_line
from vfs.errors import NotARepository, UsageError
from vfs.quoting import escape_text
from vfs.repo.gitlink import LockPointer, find_shared_root, git_output
from vfs.repo.repository import Repository


def dvfs_root_here() -> Path:
    """The root of the repository here, or of a git clone that has dvfs.toml but no store."""
    try:
        return repo_here().root
    except NotARepository:
        root = find_shared_root(Path.cwd())
        if root is None:
            raise
        return root


def hook_list(names: list[str]) -> str:
    return ", ".join(names)


@click.command(cls=DvfsCommand)
@click.option("--uninstall", is_flag=True, help="Remove what `dvfs install` added.")
@click.option(
    "--shared", is_flag=True,
    help="Also in git's hooks folder when it is outside this repository's .git "
    "(core.hooksPath), where other git repositories may use the same hooks.",
)  # fmt: skip
def install(uninstall: bool, shared: bool) -> None:
    """Add git hooks, so that the data follows `git checkout`, `git pull` and `git push`.

    post-checkout, post-merge, post-rewrite (after a rebase), post-commit (after a
    cherry-pick, a revert, a merge that `git commit` concluded) and reference-transaction
    (after `git reset --hard`) run `dvfs checkout --lock` when dvfs.lock changed;
    pre-push offers `dvfs push` when a commit being pushed names a version the dvfs
    remote lacks (it asks on the terminal; without one it only says so). Hooks that
    were there are kept and run first. A hooks folder outside this repository's .git
    (core.hooksPath) may be other repositories' too: changed only with --shared.

    \b
    Examples:
      dvfs install
      dvfs install --uninstall
      dvfs install --shared      # core.hooksPath set for every repository
    """
    import shutil

    from vfs.ops import githooks

    root = dvfs_root_here()
    if uninstall:
        done = githooks.uninstall(root, shared=shared)
        where = quoted(str(done.hooks_dir))
        if done.removed:
            click.echo(f"removed dvfs from the git hooks {hook_list(done.removed)} in {where}")
        if done.written:
            click.echo(
                f"took this repository out of the git hooks {hook_list(done.written)} in "
                f"{where}: they still run dvfs for the other repositories they list"
            )
        if not done.removed and not done.written:
            click.echo("no git hook of this repository to remove")
        if done.restored:
            click.echo(f"put back the hooks it had chained: {hook_list(done.restored)}")
        for name in done.foreign:
            warn(f"{name} was left alone: dvfs did not write it")
        return
    done = githooks.install(root, shared=shared)
    where = quoted(str(done.hooks_dir))
    if done.written:
        click.echo(f"installed the git hooks {hook_list(done.written)} in {where}")
    else:
        click.echo(f"the git hooks are already installed in {where}")
    if done.chained:
        click.echo(f"kept the hooks that were there, run first: {hook_list(done.chained)}")
    if shutil.which("dvfs") is None:
        warn("the dvfs command is not on PATH, where the git hooks look for it: add it there")


HOOK_INPUT_LIMIT = 1 << 20  # bytes of a pre-push hook's input read


@click.command(cls=DvfsCommand, name="hook", hidden=True)
@click.argument(
    "name",
    type=click.Choice(
        [
            "post-checkout",
            "post-commit",
            "post-merge",
            "post-rewrite",
            "pre-push",
            "reference-transaction",
        ]
    ),
)
@click.option("--in", "dirs", multiple=True, help="A dvfs repository, from the work tree's top.")
@click.argument("args", nargs=-1)
@click.pass_context
def hook_cmd(ctx: click.Context, name: str, dirs: tuple[str, ...], args: tuple[str, ...]) -> None:
    """Run the dvfs part of a git hook (the hooks `dvfs install` writes call it).

    \b
    Examples:
      dvfs hook post-checkout --in . -- OLD-COMMIT NEW-COMMIT 1
    """
    from vfs.ops import githooks

    top = Path(git_output(Path.cwd(), "rev-parse", "--show-toplevel") or Path.cwd())
    if name == "pre-push":
        # git's arguments are the remote's name and URL, which may hold a password: a
        # push made here records the hook alone (its audit entries reach the dvfs remote)
        set_command(["dvfs", "hook", name, *(arg for d in dirs for arg in ("--in", d))])
        # (bytes: git's ref names need not be UTF-8, and the locale may read them strictly)
        lines = os.fsdecode(sys.stdin.buffer.read(HOOK_INPUT_LIMIT)).splitlines()
        remote = args[0] if args else ""
        pre_push(ctx, top, dirs, remote, githooks.pushed_commits(lines))
        return
    new: str | None
    written = name in ("post-commit", "reference-transaction")  # (only a lock git wrote)
    if name == "post-checkout":
        if len(args) != 3 or args[2] != "1":  # a checkout of files, not of a commit
            return
        old, new = args[0], args[1]
    elif name == "post-rewrite" and args[:1] != ("rebase",):  # (`commit --amend`)
        return
    elif name == "post-commit":  # (cherry-pick, revert, a merge that `git commit` concludes)
        old, new = "HEAD^1", "HEAD"
    elif name == "reference-transaction":  # (`git reset`: the script let nothing else by)
        lines = os.fsdecode(sys.stdin.buffer.read(HOOK_INPUT_LIMIT)).splitlines()
        moved = githooks.moved_head(lines) if args[:1] == ("committed",) else None
        if moved is None:
            return
        old, new = moved
    elif name == "post-merge" and args[:1] == ("1",):  # a squash merge: nothing committed
        old, new = "HEAD", None  # (its dvfs.lock is in the work tree and the index)
    else:  # post-merge, or post-rewrite at the end of a rebase
        old, new = "ORIG_HEAD", "HEAD"
    for d in dirs:
        if name not in ("post-merge", "post-rewrite") and githooks.rebasing(top, d):
            continue  # (post-rewrite follows the lock at the rebase's end)
        root = top / d
        if not (root / ".dvfs").is_dir():
            if (root / "dvfs.lock").exists() and (
                not written or githooks.lock_changed(top, d, old, new)
            ):
                click.echo(f"dvfs: {no_store_yet(top, d)}", err=True)
            continue
        # (`git reset --hard` of HEAD itself writes the lock again: it is looked at all the same)
        changed = githooks.lock_changed(top, d, old, new)
        if changed or name == "reference-transaction":
            if written and not githooks.lock_in_work_tree(top, root, d, new or "HEAD"):
                continue  # (`git reset --soft`: the work tree's lock and data are left)
            where = "" if d == "." else f" of {quoted(d)}"
            if not os.path.lexists(root / "dvfs.lock"):  # (a commit from before the data)
                if not changed:
                    continue
                click.echo(
                    f"dvfs: this commit names no data (it has no dvfs.lock{where}): the data "
                    "was left as it is",
                    err=True,
                )
                continue
            if (written or name == "post-merge") and githooks.at_lock(Repository(root)):
                continue  # (the data is there: a commit of the user's own, `dvfs pull` first)
            click.echo(f"dvfs: dvfs.lock{where} changed: restoring the data it names", err=True)
            with workers() as w:
                done = githooks.follow_lock(Repository(root), w)
            if done.transfer is not None:
                click.echo(transfer_line(f"downloaded from {done.fetched_from}:", done.transfer))
            report_checkout(done.checkout)


def no_store_yet(top: Path, d: str) -> str:
    """What to tell a git work tree whose dvfs repository ``d`` has no store yet: a
    clone, or a work tree ``git worktree add`` made beside the one that has it."""
    git_dir, common = (
        git_output(top, "rev-parse", "--path-format=absolute", what)
        for what in ("--git-dir", "--git-common-dir")
    )
    if git_dir and common and os.path.realpath(git_dir) != os.path.realpath(common):
        of, where = ("", "") if d == "." else (f" for {quoted(d)}", f" in {quoted(d)}")
        return (
            f"this git work tree (made by `git worktree add`) has no dvfs store of its "
            f"own{of}: run `dvfs pull`{where} here to make one and get the data dvfs.lock names"
        )
    where = "this clone" if d == "." else quoted(d)
    return f"{where} has no data yet: run `dvfs pull` to get it"


def ask_on_terminal(question: str) -> bool | None:
    """The answer to a yes/no question asked on the terminal; None if there is none."""
    try:
        fd = os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:  # no controlling terminal: an IDE, CI, a cron job
        return None
    with open(fd, "rb", buffering=0) as tty:
        os.write(fd, question.encode())
        answer = tty.readline(256).decode(errors="replace").strip().lower()
    return answer in ("", "y", "yes")


def pre_push(
    ctx: click.Context,
    top: Path,
    dirs: tuple[str, ...],
    remote: str,
    pushed: list[tuple[str, str]],
) -> None:
    """Offer `dvfs push` for the versions the pushed commits' dvfs.lock name, if missing."""
    from vfs.ops import githooks
    from vfs.remote import config as remotes

    missing: list[tuple[str, Path, str, LockPointer]] = []
    stranded: list[tuple[str, Path, str, LockPointer]] = []  # its branch no longer holds it
    unasked: dict[str, str] = {}  # remotes whose tags could not be read, with why
    for d in dirs:
        root = top / d
        if not (root / ".dvfs").is_dir():
            continue
        repo = Repository(root)
        found: list[tuple[str, Path, str, LockPointer]] = []
        spec = None
        for commit in githooks.lock_commits(top, d, remote, pushed):
            ptr = githooks.lock_at(top, d, commit)
            if ptr is None:
                continue
            try:
                spec = remotes.get_remote(repo, None)
            except UsageError as exc:
                warn(f"{d}: {exc}: teammates cannot get the data dvfs.lock names")
                break
            item = (d, root, spec.name, ptr)
            if item not in found and githooks.needs_push(repo, spec.name, ptr):
                found.append(item)  # (once, though several commits name it)
        if not found or spec is None:
            continue
        # Not on the remote's branches as this clone last saw them: on one of its tags?
        held, why = githooks.tagged_on_remote(repo, spec, [p.oid for *_, p in found])
        if why is not None:
            unasked[spec.name] = why
        for item in found:
            if item[3].oid not in held:
                (missing if githooks.on_branch(repo, item[3]) else stranded).append(item)
    for d, _, s, p in stranded:
        oid = p.oid.hex()[:10]
        warn(
            f"the commits being pushed name {quoted(p.branch)} v{p.number} {oid}"
            f"{'' if d == '.' else f' of {quoted(d)}'}, which branch {quoted(p.branch)} here "
            f"no longer holds (moved since, or deleted): `dvfs push` of the branch "
            f"does not send that version to {quoted(s)}, and teammates' `dvfs pull` fails; "
            f"`dvfs branch NAME {oid}`, then `dvfs push NAME`, sends it"
        )
    if not missing:
        return
    names = "; ".join(
        f"{quoted(p.branch)} v{p.number}{'' if d == '.' else f' of {quoted(d)}'} on {quoted(s)}"
        for d, _, s, p in missing
    )
    what = f"the commits being pushed name data the dvfs remote does not have: {names}"
    lacks = "teammates' `dvfs pull` fails until `dvfs push`"
    if any(s in unasked for _, _, s, _ in missing):  # (asked once, briefly: see tagged_on_remote)
        why = "; ".join(f"{quoted(s)}: {w}" for s, w in unasked.items())
        what = (
            f"could not check whether the dvfs remote has {names}, which the commits being "
            "pushed name: no branch of it holds it, as last seen here, and its tags could "
            f"not be read ({why})"
        )
        lacks = f"if it lacks it, {lacks}"
    answer = ask_on_terminal(f"dvfs: {escape_text(what)}. Push it now? [Y/n] ")
    if not answer:
        warn(f"{what}; pushed without it: {lacks}")
        return
    for root, remote_name, branch in dict.fromkeys((r, s, p.branch) for _, r, s, p in missing):
        os.chdir(root)
        ctx.invoke(push, branches=(branch,), remote_name=remote_name)
