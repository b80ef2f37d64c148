"""``dvfs params``, ``metrics``, ``compare`` and ``exp``: comparing runs."""

from __future__ import annotations

import json
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from vfs.cli.options import AS_JSON, DvfsCommand, DvfsGroup
from vfs.cli.output import echo, emit_json, quoted, warn, workers
from vfs.cli.pipeline import history_of, path_arg, plain_table, say_to, stage_output
from vfs.errors import UsageError
from vfs.quoting import escape_text, quote_name

if TYPE_CHECKING:
    from vfs.pipeline.experiments import Listed
    from vfs.pipeline.report import Compared

FORMULA_FIRST = ("=", "+", "-", "@")  # a spreadsheet reads a cell starting so as a formula


NO_VERSIONS_LABEL = "(no versions yet)"  # the old side of `params diff` before a commit


def _sides(revs: tuple[str, ...], repo: Any) -> tuple[Any, Any]:
    """(old, new) of a diff: each a version id, or None for the working tree."""
    if len(revs) > 2:
        raise UsageError("give at most two revisions")
    hist = repo.history
    old = hist.resolve(revs[0] if revs else "HEAD")
    new = hist.resolve(revs[1]) if len(revs) == 2 else None
    return old, new


def _labels(repo: Any, revs: tuple[str, ...], old: Any, new: Any) -> tuple[str, str]:
    """The two sides' names: a REV as given (two experiments are both v3 on their own
    branches, so a number alone cannot tell them apart), HEAD by its number, and
    ``workspace``."""
    left = revs[0] if revs else repo.history.label(old)
    return left, "workspace" if new is None else revs[1]


def _fetch_metrics(repo: Any, oids: list[Any], command: str) -> None:
    """Download the metrics files of versions ``oids`` that the local store lacks from
    the remotes, as ``dvfs cat`` does: a clone or pull downloads only the data of what
    it checks out, and these files are a version's record of how its runs did. A
    remote that cannot give them is a warning: their metrics show as missing, each
    named as before."""
    from vfs.errors import DvfsError
    from vfs.pipeline.report import metrics_files

    items = metrics_files(repo.history, oids)
    has = repo.store.has
    if all(has(c.oid) for _, e in items for c in e.chunks):
        return  # the remotes (15 ms to import) only when something is missing
    from vfs.remote import ondemand

    try:
        with workers() as w:
            ondemand.ensure_local(repo, items, w, command=command, gets_them=f"dvfs {command}")
    except DvfsError as exc:
        warn(str(exc))


@click.group(cls=DvfsGroup, name="params")
def params_group() -> None:
    """Compare the parameters of versions and of the working tree.

    \b
    Examples:
      dvfs params diff
      dvfs params diff v3 v5 --all
    """


@params_group.command(name="diff")
@click.argument("revs", nargs=-1, metavar="[REV [REV]]")
@click.option("--all", "everything", is_flag=True, help="Also the parameters that did not change.")
@AS_JSON
def params_diff(revs: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """Parameters that differ: HEAD (or REV) against the working tree, or two versions.

    A version's parameters are those of `commit --param` and those its pipeline's
    runs read (params.yaml keys by name, other files as FILE:KEY); against the
    working tree, the second alone (the next commit's --param are not known yet). A
    params file one side has and the other lacks (or cannot read) is named in a
    warning, and under missing_files in --json. A params file a stage names that
    cannot be read in the working tree (missing, not valid YAML/JSON/TOML) is also
    listed under unreadable in --json, and the exit status is 1.

    \b
    Examples:
      dvfs params diff
      dvfs params diff v3
      dvfs params diff v3 v5 --all --json
    """
    from vfs.pipeline import report, workspace

    ws = workspace.find(writes=False)
    repo = history_of(ws)
    if not revs and repo.history.head_id() is None:
        # no versions yet: every parameter of the working tree is new, as `git diff`
        # shows the files of a first commit
        b, files = report.work_params(ws, workspace.load_pipeline(ws)[0])
        changes = report.diff({}, b, everything)
        left, right = NO_VERSIONS_LABEL, "workspace"
        # a file it cannot read is named (every file it reads is new: not said so)
        gaps = [g for g in report.param_file_gaps({}, files, left, None) if g.side == "new"]
    else:
        old, new = _sides(revs, repo)
        sides = [repo.history.version(r) for r in (old, new) if r is not None]
        taken = report.commit_names(sides)  # one name, one parameter, on both sides
        # the working tree has no `commit --param`: beside it, those are not compared
        a = report.version_params(sides[0], taken, own=new is not None)
        if new is None:
            b, files = report.work_params(ws, workspace.load_pipeline(ws)[0], taken)
        else:
            b, files = report.version_params(sides[1], taken), report.run_param_files(sides[1])
        changes = report.diff(a, b, everything)
        left, right = _labels(repo, revs, old, new)
        gaps = report.param_file_gaps(
            report.run_param_files(sides[0]), files, left, None if new is None else right
        )
    for g in gaps:
        warn(g.note)
    unreadable = sorted(f for f, why in files.items() if why is not None) if len(revs) < 2 else []
    if as_json:
        emit_json({
            "old": left, "new": right,
            "params": [{"name": c.name, **report.present({"old": c.old, "new": c.new}),
                        "changed": c.changed, **report.side_texts(c)} for c in changes],
            "missing_files": [{"file": os.fsdecode(g.file), "side": g.side, "note": g.note}
                              for g in gaps],
            "unreadable": [{"file": os.fsdecode(f), "side": "new"} for f in unreadable],
        })  # fmt: skip
    elif changes:
        rows = [[quote_name(c.name), report.shown(c.old), report.shown(c.new)] for c in changes]
        plain_table(["Param", escape_text(left), escape_text(right)], rows)
    if unreadable:  # each named in a warning: its values are unknown, not removed
        sys.exit(1)


@click.group(cls=DvfsGroup, name="metrics")
def metrics_group() -> None:
    """Show or compare the metrics files of stages, in versions and the working tree.

    \b
    Examples:
      dvfs metrics show
      dvfs metrics diff v3
    """


@metrics_group.command(name="show")
@click.argument("revs", nargs=-1, metavar="[REV...]")
@AS_JSON
def metrics_show(revs: tuple[str, ...], as_json: bool) -> None:
    """The metrics of the working tree's stages, or of versions REV...

    Each metrics file that cannot be read (missing, not valid JSON/YAML/TOML, too
    large) is named on its own line, the others are shown, and the exit status is 1.

    \b
    Examples:
      dvfs metrics show
      dvfs metrics show v3 v4 HEAD --json
    """
    from vfs.pipeline import report, workspace

    ws = workspace.find(writes=False)
    sides: list[tuple[str, dict[bytes, dict[str, Any]]]] = []
    notes: list[str] = []
    unreadable: list[bytes] = []
    if not revs:
        m, notes = report.work_metrics(ws, workspace.load_pipeline(ws)[0], unreadable)
        sides.append(("workspace", m))
    else:
        repo = history_of(ws)
        hist = repo.history
        oids = [hist.resolve(r) for r in revs]
        _fetch_metrics(repo, oids, "metrics show")
        for r, oid in zip(revs, oids, strict=True):
            v = hist.version(oid)
            m, why = report.version_metrics(hist, v, unreadable)
            notes += why
            sides.append((r, m))
    for n in notes:
        warn(n)
    if as_json:
        emit_json({
            label: {os.fsdecode(f): kv for f, kv in m.items()} for label, m in sides
        })  # fmt: skip
        if unreadable:
            sys.exit(1)
        return
    keys = sorted({(f, k) for _, m in sides for f, kv in m.items() for k in kv})
    if not keys:
        click.echo(
            "no metrics could be read (the warnings above say why)" if notes else
            "no metrics (a stage of dvfs.yaml lists its metrics files under metrics:, "
            "a vfs.track run logs them with run.log_metrics)"
        )  # fmt: skip
    else:
        gone = report.MISSING
        rows = [
            [quoted(f), quote_name(k), *(report.shown(m.get(f, {}).get(k, gone)) for _, m in sides)]
            for f, k in keys
        ]  # fmt: skip
        plain_table(["Path", "Metric", *(escape_text(label) for label, _ in sides)], rows)
    if unreadable:
        sys.exit(1)


@metrics_group.command(name="diff")
@click.argument("revs", nargs=-1, metavar="[REV [REV]]")
@click.option("--all", "everything", is_flag=True, help="Also the metrics that did not change.")
@AS_JSON
def metrics_diff(revs: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """Metrics that differ: HEAD (or REV) against the working tree, or two versions.

    A metrics file that cannot be read on either side is named (its metrics show as
    missing there, and under unreadable in --json), and the exit status is 1.

    \b
    Examples:
      dvfs metrics diff
      dvfs metrics diff v3 v5 --json
    """
    from vfs.pipeline import report, workspace

    ws = workspace.find(writes=False)
    repo = history_of(ws)
    hist = repo.history
    old, new = _sides(revs, repo)
    gone_old: list[bytes] = []
    gone_new: list[bytes] = []
    _fetch_metrics(repo, [old] if new is None else [old, new], "metrics diff")
    a, notes = report.version_metrics(hist, hist.version(old), gone_old)
    if new is None:
        b, more = report.work_metrics(ws, workspace.load_pipeline(ws)[0], gone_new)
    else:
        b, more = report.version_metrics(hist, hist.version(new), gone_new)
    for n in [*notes, *more]:
        warn(n)
    bare = report.metric_names([a, b])
    changes = report.diff(report.flat_metrics(a, bare), report.flat_metrics(b, bare), everything)
    left, right = _labels(repo, revs, old, new)
    if as_json:
        emit_json({
            "old": left, "new": right,
            "metrics": [{"name": c.name, **report.present({"old": c.old, "new": c.new}),
                         "change": c.delta, **report.side_texts(c)} for c in changes],
            "unreadable": [{"file": os.fsdecode(f), "side": side}
                           for side, gone in (("old", gone_old), ("new", gone_new))
                           for f in gone],
        })  # fmt: skip
    else:
        rows = [
            [quote_name(c.name), report.shown(c.old), report.shown(c.new),
             report.change_text(c.delta)]
            for c in changes
        ]  # fmt: skip
        if rows:
            plain_table(["Metric", escape_text(left), escape_text(right), "Change"], rows)
    if gone_old or gone_new:
        sys.exit(1)


@click.command(cls=DvfsCommand)
@click.argument("revs", nargs=-1, metavar="[REV...]")
@click.option("--params", "only_params", is_flag=True, help="Parameter columns only.")
@click.option("--metrics", "only_metrics", is_flag=True, help="Metric columns only.")
@click.option(
    "--sort",
    "sort_by",
    metavar="NAME",
    help="Sort by a metric or parameter, shown or not (-NAME: descending).",
)
@click.option(
    "--csv", "as_csv", is_flag=True,
    help="CSV, for spreadsheets (text starting with = + - or @ gets a leading ').",
)  # fmt: skip
@AS_JSON
def compare(
    revs: tuple[str, ...], only_params: bool, only_metrics: bool, sort_by: str | None,
    as_csv: bool, as_json: bool,
) -> None:  # fmt: skip
    """One row per version or experiment, one column per parameter and metric.

    Without REVs: the versions of the current branch, newest first, and every
    experiment (`dvfs exp run`) that is not one of them. A metrics file that cannot
    be read (not valid JSON/YAML/TOML, too large) is named in a warning, its metrics
    show as missing, and the exit status is 1.

    \b
    Examples:
      dvfs compare
      dvfs compare v3 v4 exp/lr02 --sort -acc
      dvfs compare --metrics --csv > runs.csv
    """
    from vfs.pipeline import report, workspace

    if as_csv and as_json:
        raise UsageError("--csv and --json ask for two formats: give one")
    repo = history_of(workspace.find(writes=False))
    hist = repo.history
    notes: list[str] = []
    unreadable: list[bytes] = []
    chosen = [(r, hist.resolve(r)) for r in revs] or report.default_choice(hist, repo.refs)
    _fetch_metrics(repo, [oid for _, oid in chosen], "compare")
    done = report.compare(hist, chosen, only_params, only_metrics, sort_by, notes, unreadable)
    for n in notes:
        warn(n)
    _show_compared(done, as_csv, as_json, sort_by)
    if unreadable:  # each named in a warning, its metrics shown as missing
        sys.exit(1)


TABLE_COLUMNS = 40  # parameter and metric columns the table shows (CSV and JSON: all)


def table_columns(
    pcols: list[str], mcols: list[str], sort_by: str | None = None
) -> tuple[list[str], list[str]]:
    """The parameter and metric columns a table of ``dvfs compare`` shows: all of them,
    or past ``TABLE_COLUMNS`` the first of each kind, half of it each (the rest to the
    other kind if one has fewer), and the column sorted by wherever it stands.

    A version may hold 100,000 values: a table of that many columns was thousands of
    columns no terminal shows, each cut to nothing, after seconds of layout."""
    if len(pcols) + len(mcols) <= TABLE_COLUMNS:
        return pcols, mcols
    n_p = min(len(pcols), max(TABLE_COLUMNS // 2, TABLE_COLUMNS - len(mcols)))
    keep_p, keep_m = pcols[:n_p], mcols[: TABLE_COLUMNS - n_p]
    for name in (sort_by, sort_by[1:] if sort_by and sort_by[0] == "-" else None):
        if name is None:
            continue
        if name in mcols:  # (as report.compare reads --sort: a metric first)
            if name not in keep_m:
                keep_m.append(name)
            break
        if name in pcols:
            if name not in keep_p:
                keep_p.append(name)
            break
    return keep_p, keep_m


def _show_compared(done: Compared, as_csv: bool, as_json: bool, sort_by: str | None = None) -> None:
    """Print ``dvfs compare``'s table, CSV or JSON."""
    from vfs.pipeline import report

    if as_json:
        emit_json(report.compare_json(done))
        return
    pcols, mcols, table = done.params, done.metrics, done.rows
    headers = ["rev", "created", "message", *pcols, *mcols]
    if as_csv:
        import csv

        def text(v: str) -> str:
            """Escaped as the table has it (it may be anyone's), and never read as a
            formula by a spreadsheet: text it would take for one gets a leading ' (but
            -.inf, dvfs's spelling of a number, as every output spells it)."""
            v = escape_text(v)
            return "'" + v if v[:1] in FORMULA_FIRST and v != "-.inf" else v

        def cell(v: Any) -> Any:
            if v is report.MISSING:
                return ""
            if isinstance(v, str):
                return text(v)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                return v
            return json.dumps(v)  # null, true, false, lists, mappings (ASCII)

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow([text(h) for h in headers])
        for r, cells in table:
            w.writerow([text(r.label), r.created, text(r.message),
                        *(cell(v) for v in cells.values())])  # fmt: skip
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    pcols, mcols = table_columns(pcols, mcols, sort_by)
    left = len(done.params) + len(done.metrics) - len(pcols) - len(mcols)
    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for h in ["rev", "created", "message"]:
        t.add_column(h, no_wrap=True, overflow="ellipsis", max_width=40 if h == "message" else None)
    for k in pcols:  # (names quoted as `params diff` and `metrics show` quote them)
        t.add_column(quote_name(k), no_wrap=True, justify="right", style="cyan")
    for k in mcols:
        t.add_column(quote_name(k), no_wrap=True, justify="right", style="green")
    for r, cells in table:
        t.add_row(
            Text(escape_text(r.label)), Text(r.created), Text(escape_text(r.message)),
            *(Text(report.shown(cells[f"param:{k}"])) for k in pcols),
            *(Text(report.shown(cells[f"metric:{k}"])) for k in mcols),
        )  # fmt: skip
    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 1000)
    console.print(t)
    if left:
        total = len(done.params) + len(done.metrics)
        echo(
            f"note: the table shows {len(pcols) + len(mcols):,} of the {total:,} parameter "
            f"and metric columns ({left:,} left out): `dvfs compare --json` or `--csv` gives "
            "every one, and `--sort NAME` shows the column it sorts by",
            err=True,
        )


@click.group(cls=DvfsGroup, name="exp")
def exp_group() -> None:
    """Experiments: the pipeline run with changed parameters, each a version of its own.

    \b
    Examples:
      dvfs exp run -S train.lr=0.02 -n lr02
      dvfs exp list
    """


@exp_group.command(name="run")
@click.argument("stages", nargs=-1, metavar="[STAGE...]")
@click.option(
    "-S", "--set-param", "settings", multiple=True, metavar="[FILE:]KEY=VALUE",
    help="Set a parameter a stage reads (default file: params.yaml here), typed as YAML 1.2.",
)  # fmt: skip
@click.option("-n", "--name", help="The experiment's name (default exp-N): branch exp/NAME.")
@click.option(
    "--jobs", "-j", type=click.IntRange(min=1, max=64), default=1, show_default=True,
    help="Stages run at once.",
)  # fmt: skip
@AS_JSON
def exp_run(
    stages: tuple[str, ...], settings: tuple[str, ...], name: str | None, jobs: int, as_json: bool
) -> None:
    """Reproduce the pipeline with changed parameters on a branch exp/NAME.

    The current branch, the working tree and the staging index are left as they
    are: the stages run in a working tree of their own, made from what they read
    in this one, and the result is recorded as a version on exp/NAME.

    \b
    Examples:
      dvfs exp run -S train.lr=0.02
      dvfs exp run -S train.lr=0.05 -S config.json:model.depth=34 -n deep train
      dvfs exp run -n quick --jobs 2 && dvfs switch exp/quick
    """
    from vfs.pipeline import experiments, report, workspace

    ws = workspace.find()
    output = stage_output(as_json)

    def rel(f: str) -> bytes:
        return path_arg(ws, f)

    parsed = experiments.parse_settings(list(settings), rel)
    with workers() as w:
        done = experiments.run(
            ws, parsed, name, list(stages), w, say_to(output, as_json), warn, output
        )
    hist = history_of(ws).history
    v = hist.version(done.oid)
    m, notes = report.version_metrics(hist, v, None, done.branch)
    for n in notes:  # the experiment is recorded: what its metrics files lack is a warning
        warn(n)
    metrics = report.flat_metrics(m, report.metric_names([m]))
    if as_json:
        emit_json({
            "name": done.name, "branch": done.branch, "version": f"v{done.number}",
            "id": done.oid.hex(), "ran": done.outcome.ran,
            "restored": [s for s, _ in done.outcome.restored], "fresh": done.outcome.fresh,
            "metrics": metrics,
        })  # fmt: skip
        return
    shown = ", ".join(f"{quote_name(k)}={report.shown(val)}" for k, val in metrics.items())
    click.echo(
        f"experiment {quote_name(done.name)}: v{done.number} {done.oid.hex()[:10]} on branch "
        f"{quote_name(done.branch)}" + (f"; metrics {shown}" if shown else "")
    )


@exp_group.command(name="list")
@AS_JSON
def exp_list(as_json: bool) -> None:
    """The experiments: branch, version, base, parameters changed and metrics.

    A metrics file that cannot be read is named in a warning, its metrics are left
    out, and the exit status is 1.

    \b
    Examples:
      dvfs exp list
      dvfs exp list --json
    """
    from vfs.pipeline import experiments, report, workspace

    notes: list[str] = []
    unreadable: list[bytes] = []
    ws = workspace.find(writes=False)
    if ws.repo is not None:
        branches = ws.repo.refs.branches()
        tips = [oid for _, oid in report.experiments(ws.repo.history, branches)]
        _fetch_metrics(ws.repo, tips, "exp list")
    found = experiments.listing(ws, notes, unreadable)
    for n in notes:
        warn(n)
    _show_listed(found, as_json)
    if unreadable:  # each named in a warning, its metrics left out
        sys.exit(1)


def _show_listed(found: list[Listed], as_json: bool) -> None:
    """Print ``dvfs exp list``'s lines or JSON."""
    from vfs.ops.browse import iso_time
    from vfs.pipeline import report

    if as_json:
        emit_json([
            {"name": e.name, "branch": e.branch, "version": e.label, "id": e.oid.hex(),
             "base": e.base, "created": iso_time(e.created_ns) if e.created_ns else None,
             "message": e.message,
             "params": {k: report.present({"old": a, "new": b})
                        for k, (a, b) in e.changed.items()},
             "metrics": e.metrics, **report.texts_of(e.metrics)}
            for e in found
        ])  # fmt: skip
        return
    if not found:
        click.echo("no experiments (`dvfs exp run -S KEY=VALUE` makes one)")
        return
    for e in found:
        changed = ", ".join(
            f"{quote_name(k)} {report.shown(a)} -> {report.shown(b)}"
            for k, (a, b) in e.changed.items()
        )
        metrics = ", ".join(f"{quote_name(k)}={report.shown(v)}" for k, v in e.metrics.items())
        base = f" from {e.base}" if e.base else ""
        click.echo(
            f"{quote_name(e.branch)}  {e.label} {e.oid.hex()[:10]}{base}  {escape_text(e.message)}"
        )
        if changed:
            click.echo(f"    params: {changed}")
        if metrics:
            click.echo(f"    metrics: {metrics}")
