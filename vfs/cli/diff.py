"""``dvfs diff``: two versions, a version and the working tree, or rows of a table."""

from __future__ import annotations

import sys

import click

from vfs import settings
from vfs._os.malloc import chunk_buffers_reused
from vfs.cli.history import param_text, revs_and_paths
from vfs.cli.options import AS_JSON, ROWS_SHOWN, RevsThenPaths
from vfs.cli.output import emit_json, fail, human, quoted, repo_here, warn, workers
from vfs.errors import UsageError
from vfs.model.codec import Kind
from vfs.ops.diff import ParamChange, summary
from vfs.quoting import quote_name
from vfs.repo.repository import Repository
from vfs.worktree.scan import show


@click.command(name="diff", cls=RevsThenPaths)
@click.argument("targets", nargs=-1, metavar="[REV [REV]] [[--] PATH...]")
@click.option("--stat", "stat_only", is_flag=True, help="Only counts and sizes.")
@click.option("--name-only", is_flag=True, help="Only the changed paths, one a line.")
@click.option(
    "--rows", is_flag=True,
    help="Compare the rows of one CSV, TSV, JSON Lines or Parquet file (needs dvfs[tables]).",
)  # fmt: skip
@click.option(
    "--key", metavar="COL[,COL]", multiple=True,
    help="With --rows: match rows by these columns (--key a,b or --key a --key b; a value "
    "that is exactly a column's name is that column).",
)  # fmt: skip
@click.option(
    "--limit", type=click.IntRange(min=0), metavar="N",
    help=f"With --rows: show at most N rows (default {ROWS_SHOWN}).",
)  # fmt: skip
@AS_JSON
@click.pass_context
def diff_cmd(
    ctx: click.Context, targets: tuple[str, ...], stat_only: bool, name_only: bool,
    rows: bool, key: tuple[str, ...], limit: int | None, as_json: bool,
) -> None:  # fmt: skip
    """Show added, removed, modified and renamed files, and changed parameters.

    No REV: HEAD against the working tree; one REV: REV against the working tree;
    two: the first against the second, parameters included. PATHs limit it to what
    is at or below them.

    --rows compares the rows of one data file: schema changes, counts, then rows
    added, removed and (with --key) changed, column by column.

    \b
    Examples:
      dvfs diff                  # HEAD against the working tree
      dvfs diff v1 v2 --stat
      dvfs diff v1 v2 data/labels.csv images/
      dvfs diff v1 v2 --json
      dvfs diff v1 v2 data/train.csv --rows --key id
    """
    if stat_only and name_only and not rows:
        raise UsageError("--stat and --name-only ask for two formats: give one")
    repo = repo_here()
    revs, paths = revs_and_paths(repo, ctx, targets, 2)
    if rows or key or limit is not None:
        row_diff(repo, revs, paths, rows, key, limit, stat_only or name_only, as_json)
        return
    # Only here: a row diff loads neither (the status and pipeline modules they import
    # are a tenth of what `dvfs diff --rows` of a small file costs to start).
    from vfs.cli.status_report import change_line
    from vfs.ops import browse

    unreadable: list[bytes] = []  # each named in a warning
    with workers() as w:
        changes = browse.diff(repo, revs, w, warn, unreadable, paths)
    params = [] if paths else browse.diff_params(repo, revs)  # PATHs ask about files
    s = summary(changes)
    if as_json:
        emit_json(browse.diff_json(changes, params, stat_only))
    elif name_only:
        for c in changes:
            click.echo(quoted(c.path) + ("/" if c.kind == "dir" else ""))
    else:
        if not stat_only:
            for c in changes:
                click.echo(change_line(c))
            for pc in params:
                click.echo(param_line(pc))
        n = len(params)
        changed = f", {n} parameter{'s' if n != 1 else ''} changed" if n else ""
        click.echo(
            f"{s['added']} added, {s['removed']} removed, {s['modified']} modified, "
            f"{s['renamed']} renamed (+{human(s['bytes_added'])}, -{human(s['bytes_removed'])})"
            f"{changed}"
        )
    if unreadable:
        sys.exit(1)


def row_diff(
    repo: Repository, revs: list[str], paths: list[bytes], rows: bool, key: tuple[str, ...],
    limit: int | None, other_format: bool, as_json: bool,
) -> None:  # fmt: skip
    """``dvfs diff --rows``: the rows of one data file (see vfs.tables.rowdiff)."""
    if not rows:
        raise UsageError("--key and --limit go with --rows")
    if other_format:
        raise UsageError("--rows shows rows: leave out --stat and --name-only")
    if len(paths) != 1:
        raise UsageError("--rows compares one file: give its PATH after the revisions")
    try:  # the engine is an optional dependency: only --rows loads it
        from vfs.tables import engine
    except ModuleNotFoundError as exc:
        if exc.name not in ("duckdb", "_duckdb"):
            raise
        raise UsageError(
            "--rows needs the table engine: pip install 'dvfs[tables]' (DuckDB)"
        ) from None
    # Before the copy threads start: the sides' decompressed chunks (under 8 MiB each
    # with the default chunker, freed once written) reuse heap memory, not fresh pages
    # faulted in one by one (vfs._os.malloc). bench_rowdiff.py random 1%: 0.1-0.3 s less
    # system time of 0.7-1.5 s (three pairs of runs, load 4-6).
    chunk_buffers_reused()
    engine.warm(settings.threads())  # opened while the rest is imported and looked up
    from vfs.tables import render, rowdiff

    fetch_versions_of(repo, revs or ["HEAD"], paths[0], "diff --rows")
    # linger: a diff that succeeded ends the process at once (vfs.cli.QUICK_EXIT)
    result = rowdiff.diff_path(
        repo.history, repo.store, repo.chunker, repo.root, repo.dir, revs, paths[0],
        key, ROWS_SHOWN if limit is None else limit, settings.threads(), linger=True,
    )  # fmt: skip
    if as_json:
        emit_json(render.as_json(result))
        return
    for line in render.lines(result):
        click.echo(line)


def fetch_versions_of(repo: Repository, revs: list[str], path: bytes, command: str) -> None:
    """Download the chunks of ``path`` at ``revs`` that the local store lacks."""
    hist = repo.history
    items = []
    for rev in revs:
        e = hist.lookup(hist.version(hist.resolve(rev)).tree, path)
        if e is not None and e.kind == Kind.FILE:
            items.append((path, e))
    has = repo.store.has
    if all(has(c.oid) for _, e in items for c in e.chunks):
        return  # as checkout: the remotes (15 ms to import) only when something is missing
    from vfs.remote import ondemand

    with workers() as w:
        got = ondemand.ensure_local(
            repo, items, w, command=command, gets_them=f"dvfs pull {revs[0]} {show(path)}"
        )
    for why in got.unavailable.values():
        fail(f"cannot read {quoted(path)}: {why}")


def param_line(c: ParamChange) -> str:
    """One line of ``dvfs diff`` for a parameter."""
    name = quote_name(c.name)
    if c.status == "added":
        return f"param added:    {name} = {param_text(c.new)}"
    if c.status == "removed":
        return f"param removed:  {name} = {param_text(c.old)}"
    return f"param changed:  {name}: {param_text(c.old)} -> {param_text(c.new)}"
