"""``dvfs diff``: two versions, a version and the working tree, or rows of a table."""

from __future__ import annotations

import sys

import click

from vfs.cli.history import param_text
from vfs.cli.options import AS_JSON, RevsThenPaths
from vfs.cli.output import emit_json, human, quoted, repo_here, warn, workers
from vfs.cli.rows import ROWS_SHOWN, row_diff
from vfs.cli.targets import revs_and_paths
from vfs.errors import UsageError
from vfs.ops.diff import ParamChange, summary
from vfs.quoting import quote_name


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


def param_line(c: ParamChange) -> str:
    """One line of ``dvfs diff`` for a parameter."""
    name = quote_name(c.name)
    if c.status == "added":
        return f"param added:    {name} = {param_text(c.new)}"
    if c.status == "removed":
        return f"param removed:  {name} = {param_text(c.old)}"
    return f"param changed:  {name}: {param_text(c.old)} -> {param_text(c.new)}"
