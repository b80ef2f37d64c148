"""``dvfs init``, ``add``, ``check-ignore``, ``rm``, ``mv`` and ``commit``.

``vfs.ops.workflow`` (and the hashing, ignore and removal modules it brings) is
imported by the commands that use it: a plain ``commit`` needs none of them; and
``vfs.ops.commit`` (with the version records and pipelines it brings) by ``commit``
alone: ``add`` spent 15 ms importing it. What ``add`` and ``commit`` do is in
:mod:`vfs.cli.staging`, which runs their plain command lines without click.
"""

from __future__ import annotations

import stat as statmod
import sys
from pathlib import Path

import click

from vfs.cli.options import AS_JSON, PARAM, PARAMS_FILE, DvfsCommand, FreeText, once, paragraphs
from vfs.cli.output import (
    count,
    emit_json,
    quoted,
    repo_here,
    warn,
    workers,
)
from vfs.cli.staging import add_paths, commit_staged
from vfs.errors import UsageError
from vfs.quoting import escape_text, quote_name
from vfs.repo.repository import DEFAULT_BRANCH, Repository
from vfs.worktree.scan import lstat_or_none, show


@click.command(cls=DvfsCommand)
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--branch", default=DEFAULT_BRANCH, show_default=True, help="First branch name.")
def init(directory: Path | None, branch: str) -> None:
    """Create a repository in DIRECTORY (default: the current directory).

    \b
    Examples:
      dvfs init
      dvfs init datasets/cats --branch trunk
    """
    from vfs.mount.mounts import enclosing  # (a repository in a mount is never versioned)

    where = (directory or Path.cwd()).absolute()
    top = enclosing(str(where), at_top=True)
    if top is not None:
        raise UsageError(
            f"{where} is in the dvfs mount {top}: no snapshot takes a repository made "
            "there; run `dvfs init` outside the mount"
        )
    repo = Repository.init(where, branch)
    click.echo(f"Initialized empty dvfs repository in {quote_name(str(repo.dir))}")


@click.command(cls=DvfsCommand)
@click.argument("paths", nargs=-1, required=True)
@click.option("--force", "-f", is_flag=True, help="Add ignored files too (.dvfsignore).")
@AS_JSON
def add(paths: tuple[str, ...], force: bool, as_json: bool) -> None:
    """Stage files or directories: hash them and store their chunks.

    Untracked files that .dvfsignore files (or the built-in rules: __pycache__/,
    *.pyc, .DS_Store, ...) ignore are skipped; `dvfs check-ignore -v PATH` says why.

    \b
    Examples:
      dvfs add data/
      dvfs add labels.csv images/train
      dvfs add --force data/cache/keep.pyc
    """
    add_paths(paths, force, as_json, click.echo)


@click.command(cls=DvfsCommand, name="check-ignore")
@click.argument("paths", nargs=-1, required=True)
@click.option("-v", "--verbose", is_flag=True, help="Also show the rule: FILE:LINE:PATTERN.")
@AS_JSON
def check_ignore(paths: tuple[str, ...], verbose: bool, as_json: bool) -> None:
    """Say which PATHS ignore rules keep out of `add` and `status`, and by which rule.

    Prints the ignored paths (with -v, also paths a `!` rule brings back, each after
    the rule that decided: FILE:LINE:PATTERN, the file being a .dvfsignore or
    "(built-in)"). A tracked path is never ignored. Exits 0 if a path is ignored,
    1 if none is.

    \b
    Examples:
      dvfs check-ignore data/__pycache__/x.pyc
      dvfs check-ignore -v data/*
    """
    from vfs.worktree.ignore import Ignores

    repo = repo_here()
    index = repo.index()
    rows = []
    with Ignores(repo.root, lambda: sorted(index.paths()), warn) as ign:
        for arg in paths:
            rel = repo.rel(arg)
            if not rel:
                raise UsageError("the repository root itself is never ignored: name paths in it")
            st = lstat_or_none(repo.root, rel)
            is_dir = st is not None and statmod.S_ISDIR(st.st_mode)
            tracked = ign.is_tracked(rel) or (is_dir and ign.holds_tracked(rel))
            m = None if tracked else ign.match(rel, is_dir=is_dir)
            rows.append((arg, tracked, m))
    if as_json:
        emit_json(
            [{"path": a, "ignored": bool(m and m.ignored), "tracked": tr,
              "source": m.source if m else None, "line": m.line if m else None,
              "pattern": m.pattern if m else None} for a, tr, m in rows]
        )  # fmt: skip
    else:
        for arg, _, m in rows:
            if m is not None and (m.ignored or verbose):
                shown = quoted(arg)
                click.echo(f"{escape_text(m.rule())}\t{shown}" if verbose else shown)
    if not any(m is not None and m.ignored for _, _, m in rows):
        sys.exit(1)


@click.command(cls=DvfsCommand)
@click.argument("paths", nargs=-1, required=True)
@click.option("--cached", is_flag=True, help="Stop tracking but keep the working files.")
@click.option(
    "--force", "-f", is_flag=True, help="Delete files even with changes no version holds."
)
@click.option(
    "-r", "recursive", is_flag=True, hidden=True,
    help="Accepted for git's habit: a directory is always removed with what it holds.",
)  # fmt: skip
@AS_JSON
def rm(paths: tuple[str, ...], cached: bool, force: bool, recursive: bool, as_json: bool) -> None:
    """Stop tracking PATHS (and delete them unless --cached).

    \b
    Examples:
      dvfs rm data/old.csv
      dvfs rm --cached data/raw/       # keep the files, stop tracking
    """
    from vfs.ops import workflow

    repo = repo_here()
    with workers() as w:
        gone = workflow.rm(repo, paths, w, cached=cached, force=force)
    if as_json:
        emit_json({"untracked" if cached else "removed": [show(p) for p in gone]})
        return
    verb = "untracked" if cached else "removed"
    click.echo(f"{verb} {count(len(gone), 'file')}")


@click.command(cls=DvfsCommand)
@click.argument("paths", nargs=-1, required=True, metavar="SRC... DST")
@AS_JSON
def mv(paths: tuple[str, ...], as_json: bool) -> None:
    """Move or rename tracked files and directories; the next commit records a rename.

    With several SRCs, or a DST that is a directory, each SRC moves into DST. Nothing
    is ever replaced, and untracked files inside a moved directory move with it.

    \b
    Examples:
      dvfs mv data/raw.csv data/train.csv
      dvfs mv images/ data/images
      dvfs mv a.csv b.csv archive/
    """
    if len(paths) < 2:
        raise UsageError("give a source and a destination: dvfs mv SRC... DST")
    from vfs.ops import workflow

    moves = workflow.mv(repo_here(), paths[:-1], paths[-1], warn)
    if as_json:
        emit_json(
            {"moved": [{"from": show(m.src), "to": show(m.dst), "tracked": m.tracked}
                       for m in moves]}
        )  # fmt: skip
        return
    for m in moves:
        n = f" ({m.tracked:,} tracked files)" if m.tracked > 1 else ""
        click.echo(f"renamed {quoted(m.src)} -> {quoted(m.dst)}{n}")


@click.command(cls=DvfsCommand)
@click.option(
    "-m", "--message", multiple=True, callback=paragraphs, type=FreeText(),
    help="What this version is (several: paragraphs of it); required but with --amend "
    "and for a merge in progress (its message).",
)  # fmt: skip
@PARAM
@PARAMS_FILE
@click.option(
    "--tag", multiple=True, callback=once, help="Also tag the new version (`dvfs tag` adds more)."
)  # fmt: skip
@click.option(
    "-a", "--all", "stage_all", is_flag=True,
    help="First stage every modified or deleted tracked file (not untracked ones).",
)  # fmt: skip
@click.option(
    "--amend", is_flag=True,
    help="Replace the branch's latest version: its message unless -m, its parameters "
    "updated with --param.",
)  # fmt: skip
@AS_JSON
def commit(
    message: str | None, params: tuple[str, ...], params_file: Path | None, tag: str | None,
    stage_all: bool, amend: bool, as_json: bool,
) -> None:  # fmt: skip
    """Record the staged data as a new version.

    With --amend, the new version replaces the branch's latest one, as git's
    `commit --amend`: the same parents and number, with what is staged now. Its tags
    stay on the version replaced, and a remote that has it needs `dvfs push --force`.

    \b
    Examples:
      dvfs commit -m "raw data" --tag raw
      dvfs commit -am "cleaned"        # stage the changed tracked files first
      dvfs commit -m "run 7" --param lr=3e-4 --param "layers=[64, 64]"
      dvfs commit -m "tuned" --params-file params.yaml
      dvfs commit --amend -m "raw data, fixed"
    """
    commit_staged(message, params, params_file, tag, stage_all, amend, as_json, click.echo)
