"""``dvfs run``, ``repro``, ``stage``, ``dag`` and ``lineage``: pipelines."""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import sys
from typing import Any

import click

from vfs.cli.history import param_text
from vfs.cli.options import AS_JSON, DvfsCommand, DvfsGroup, FreeText
from vfs.cli.output import count, emit_json, quoted, warn, workers
from vfs.errors import DvfsError, UsageError
from vfs.model.names import VERSIONS_DIR
from vfs.quoting import escape_text, quote_name, shell_word


def pipeline_here(writes: bool = True) -> tuple[Any, Any, Any]:
    """(workspace, pipeline, graph) of the working tree around the current directory
    (``writes`` False: a read-only mount is one too, see ``workspace.find``)."""
    from vfs.pipeline import workspace

    ws = workspace.find(writes=writes)
    p, dag = workspace.load_pipeline(ws)
    return ws, p, dag


def stage_output(as_json: bool) -> Any:
    """Where stage commands' output goes (stderr when stdout carries JSON)."""
    from vfs.pipeline.runner import Output

    return Output(out=sys.stderr.buffer) if as_json else Output()


def say_to(output: Any, as_json: bool) -> Any:
    """A function printing one progress line where the commands' output goes."""

    def say(line: str) -> None:
        output.write(as_json, (escape_text(line) + "\n").encode())

    return say


def _from_here(ws: Any, paths: list[bytes]) -> list[bytes]:
    """Repository paths as `dvfs add` takes them here: from the current directory
    (as `status` shows them), when that is inside the working tree."""
    try:
        here = os.path.relpath(os.getcwdb(), os.fsencode(ws.root))
    except (FileNotFoundError, ValueError):
        return paths
    if here == b"." or outside(os.fsdecode(here)):
        return paths
    return [posixpath.relpath(p, here) for p in paths]


def run_pipeline(ws: Any, dag: Any, opts: Any, as_json: bool, by: str = "`dvfs repro`") -> None:
    """Reproduce with ``opts`` and report: stage lines, failures, then one summary line.
    ``by``: the command, as a refusal of ``add`` meanwhile names it."""
    from vfs.pipeline import repro

    output = stage_output(as_json)
    with workers() as w, ws.exclusive():
        job = repro.Repro(ws, dag, w, say_to(output, as_json), warn, output, by=by)
        out = job.run(opts)
    if out.interrupted and not as_json:
        raise repro.Interrupted(interrupted_line(out))
    if as_json:
        emit_json(out.as_json())
    elif opts.dry_run:
        would = {name: (action, why) for name, action, why in out.would}
        for name in out.planned:  # (in pipeline order, as a run would take them)
            if name not in would:
                click.echo(f"Stage {name} is fresh")
                continue
            action, why = would[name]
            verb = {"run": "Would run", "restore": "Would restore"}.get(action, "May run")
            what = " from the run cache" if action == "restore" else ""
            click.echo(f"{verb} stage {name}{what}: {escape_text('; '.join(why))}")
        if not out.would:
            click.echo("Everything is up to date: nothing would run")
    else:
        parts = []
        if out.ran:
            parts.append(f"{count(len(out.ran), 'stage')} ran")
        if out.restored:
            parts.append(f"{len(out.restored):,} restored from the run cache")
        if out.fresh:
            parts.append(f"{len(out.fresh):,} fresh")
        if out.failed:
            parts.append(f"{len(out.failed):,} failed")
        if out.skipped:
            parts.append(f"{len(out.skipped):,} not run")
        if not parts:
            parts.append("no stages")
        summary = ", ".join(parts)
        if out.ran or out.restored:
            if ws.own_index:
                summary += "; outputs staged: `dvfs commit -m MSG` records them with their lineage"
            elif ws.mount is not None:
                summary += (
                    f"; `dvfs snapshot {shell_word(str(ws.mount))} -m MSG` records them with their "
                    "lineage"
                )
        click.echo(summary)
        if out.unstaged:
            shown = ", ".join(quote_name(p) for p in _from_here(ws, out.unstaged[:5]))
            more = f" and {len(out.unstaged) - 5:,} more" if len(out.unstaged) > 5 else ""
            click.echo(
                f"note: {shown}{more}, which the outputs were made from, "
                f"{'is' if len(out.unstaged) == 1 else 'are'} not staged: `dvfs add` "
                f"{'it' if len(out.unstaged) == 1 else 'them'} so that the commit holds "
                "what made its outputs"
            )
    for name, reason in out.skipped if not as_json and not opts.dry_run else ():
        click.echo(f"dvfs: stage {name} not run: {escape_text(reason)}", err=True)
    if out.interrupted:
        raise repro.Interrupted(interrupted_line(out))
    if out.failed:
        for name, _, tail in out.failed:
            if tail and not as_json:
                click.echo(f"dvfs: last lines of stage {name}'s standard error:", err=True)
                for line in tail:
                    click.echo(f"  {escape_text(line)}", err=True)
        if len(out.failed) == 1:
            raise repro.StageFailed(out.failed[0][1])
        for _, message, _ in out.failed:
            click.echo(f"dvfs: {escape_text(message)}", err=True)
        names = ", ".join(n for n, _, _ in out.failed)
        raise repro.StageFailed(f"{len(out.failed)} stages failed: {names} (see above)")


def interrupted_line(out: Any) -> str:
    """The one line of a pipeline stopped by Ctrl-C, SIGINT, SIGTERM or SIGHUP."""
    from vfs.pipeline import repro

    done = len(out.ran) + len(out.restored)
    stopped = [n for n, why in out.skipped if why == "interrupted while it ran"]
    if not stopped:
        return f"interrupted: {count(done, 'stage')} finished and recorded; no stage was running"
    one = len(stopped) == 1
    if out.kept:
        back = repro.not_kept(out.kept)
    elif out.back:
        back = "the previous outputs are back"
    else:
        back = "what was written of the outputs is removed (there were none before)"
    return (
        f"interrupted: {count(done, 'stage')} finished and recorded; "
        f"{'stage' if one else 'stages'} {', '.join(stopped)} {'was' if one else 'were'} "
        f"stopped: {'it' if one else 'they'} recorded nothing and {back} (`dvfs repro` runs "
        f"{'it' if one else 'them'} again)"
    )


CMD_SETTINGS = {"ignore_unknown_options": True, "allow_interspersed_args": False}


def split_params(items: tuple[str, ...], wdir_of: Any) -> list[tuple[bytes, str]]:
    """``-p [FILE:]KEY[,KEY]`` arguments as (repository file, key)."""
    from vfs.pipeline.spec import DEFAULT_PARAMS

    out: list[tuple[bytes, str]] = []
    for item in items:
        file, sep, keys = item.rpartition(":")
        path = wdir_of(file) if sep and file else wdir_of(os.fsdecode(DEFAULT_PARAMS))
        for k in keys.split(","):
            if not k.strip():
                raise UsageError(f"-p {quote_name(item)} names an empty key: write [FILE:]KEY,KEY")
            out.append((path, k.strip()))
    return out


@click.command(cls=DvfsCommand, name="run", context_settings=CMD_SETTINGS)
@click.option("-n", "--name", required=True, help="The stage's name.")
@click.option(
    "-d", "--dep", "deps", multiple=True, metavar="PATH", help="A file or directory it reads."
)
@click.option(
    "-o", "--out", "outs", multiple=True, metavar="PATH", help="A file or directory it makes."
)
@click.option(
    "-p", "--params", "params", multiple=True, metavar="[FILE:]KEY[,KEY]",
    help="Parameters it reads (default file: params.yaml).",
)  # fmt: skip
@click.option(
    "-m", "--metrics", "metrics", multiple=True, metavar="PATH",
    help="A metrics file it makes (JSON or YAML).",
)  # fmt: skip
@click.option("--no-exec", is_flag=True, help="Only write the stage into dvfs.yaml.")
@click.option("--force", "-f", is_flag=True, help="Replace a stage of the same name.")
@click.argument("command", nargs=-1, required=True, type=FreeText())
def run_cmd(
    name: str, deps: tuple[str, ...], outs: tuple[str, ...], params: tuple[str, ...],
    metrics: tuple[str, ...], no_exec: bool, force: bool, command: tuple[str, ...],
) -> None:  # fmt: skip
    """Define a stage in dvfs.yaml and run it.

    Paths are relative to the current directory, where the stage runs (its wdir).
    One COMMAND argument runs under `sh -c` (quote it for pipes and globs); several
    are run as they are, without a shell.

    \b
    Examples:
      dvfs run -n prepare -d data/raw -d prepare.py -o data/prepared -- python prepare.py
      dvfs run -n train -d data/prepared -p train.lr,train.epochs -m metrics.json -- python train.py
      dvfs run -n count -d data -o count.txt "ls data | wc -l > count.txt"
    """
    import posixpath

    from vfs.model.version_codec import STAGE_NAME
    from vfs.pipeline import graph, plan, repro, spec, workspace
    from vfs.pipeline.writing import refuse_left_running
    from vfs.repo.gitlink import PIPELINE_FILE
    from vfs.repo.repository import user_path

    if not "".join(command).strip():
        raise UsageError("the command is empty: give what to run after --")
    if command[0].startswith("-"):  # an option dvfs run lacks: the rest was taken as the command
        raise UsageError(
            f"no such option: {quote_name(command[0].split()[0])} (`dvfs run --help` lists "
            "them); give the options first, then -- and the command"
        )
    ws = workspace.find()
    if not STAGE_NAME.fullmatch(name):
        raise UsageError(
            f"{quote_name(name)} is not a stage name: an ASCII letter, digit or _, then at most "
            "99 ASCII letters, digits, _, . or -"
        )
    here = os.path.relpath(os.path.abspath("."), ws.root)
    if outside(here):
        raise UsageError("run dvfs run inside the working tree")
    wdir = b"" if here == "." else spec.repo_path(here, b"", None, "wdir", "wdir")

    def rel(arg: str, what: str = "path") -> bytes:
        if os.path.isabs(arg):  # taken as add takes it: inside the working tree, no link
            return spec.repo_path(os.fsdecode(user_path(ws.root, arg)), b"", None, what, what)
        return spec.repo_path(os.path.normpath(arg), wdir, None, what, what)

    stage = spec.Stage(
        name=name,
        cmd=command[0] if len(command) == 1 else tuple(command),
        wdir=wdir,
        deps=tuple(dict.fromkeys(rel(d, "dep") for d in deps)),
        outs=tuple(
            dict.fromkeys([*(rel(o, "out") for o in outs), *(rel(m, "metrics") for m in metrics)])
        ),
        params=tuple(dict.fromkeys(split_params(params, lambda f: rel(f, "params file")))),
        metrics=tuple(dict.fromkeys(rel(m, "metrics") for m in metrics)),
    )
    for o in stage.outs:
        if o in spec.OWN_FILES:
            raise UsageError(f"{posixpath.basename(o).decode()} is dvfs's own file: not an output")
    with ws.exclusive():  # read, changed and written while no other run or edit is
        p = spec.read(ws.read(PIPELINE_FILE.encode(), spec.MAX_FILE))
        if name in p.stages and not force:
            raise UsageError(
                f"stage {name} already exists ({PIPELINE_FILE}:{p.stages[name].line}): "
                "use --force to replace it"
            )
        text = spec.with_stage(p, stage)
        # the file as it will be: valid, and its graph too
        new = spec.edited(text, name, "replacing" if name in p.stages else "adding")
        try:
            dag = graph.build(new)
        except UsageError as exc:  # (its line numbers are those of the file not written)
            raise UsageError(
                f"{exc} (in {PIPELINE_FILE} as it would be with stage {name}: it is left as it was)"
            ) from None
        plan.check_outs(ws, [dag.stages[name]])  # an out it could not make or version
        listed = ws.writing_list()
        if not no_exec and listed is not None:  # refused before the file changes, not after
            refuse_left_running(listed)
        if not no_exec and not dag.upstream[name]:
            # A dep or param missing (a typo) is refused before the file changes; one that
            # another stage makes is for the run to name, with the stage added.
            plan.check_inputs(ws, dag, [name], lambda s: repro.param_values(ws, s, {}))
        ws.write(PIPELINE_FILE.encode(), text.encode())
    click.echo(f"{'Replaced' if name in p.stages else 'Added'} stage {name} in {PIPELINE_FILE}")
    if no_exec:
        return
    try:
        run_pipeline(ws, dag, plan.Options(targets=[name], single=True), False, "`dvfs run`")
    except repro.StageFailed as exc:  # (its run is not recorded; the stage itself is)
        raise repro.StageFailed(
            f"{exc}; stage {name} stays in {PIPELINE_FILE}: `dvfs repro {name}` runs it once "
            f"what failed is fixed (`dvfs run --force -n {name} ...` replaces it)"
        ) from None


@click.command(cls=DvfsCommand)
@click.argument("stages", nargs=-1, metavar="[STAGE...]")
@click.option("--dry-run", is_flag=True, help="Say what would run, and why; run nothing.")
@click.option("--force", "-f", is_flag=True, help="Run the stages even if fresh (no run cache).")
@click.option("--downstream", is_flag=True, help="The STAGEs and what depends on them.")
@click.option(
    "--jobs", "-j", type=click.IntRange(min=1, max=64), default=1, show_default=True,
    help="Stages run at once (independent ones; output prefixed with their names).",
)  # fmt: skip
@click.option(
    "--keep-going", "-k", is_flag=True, help="After a failure, run what does not need it."
)
@AS_JSON
def repro(
    stages: tuple[str, ...], dry_run: bool, force: bool, downstream: bool, jobs: int,
    keep_going: bool, as_json: bool,
) -> None:  # fmt: skip
    """Run the stale stages of the pipeline in dvfs.yaml, in order.

    A stage is stale when its command, a dep, a param or an output differs from its
    last run (dvfs.runs); each stage run says why. When its exact inputs ran before,
    its outputs come from the run cache. Outputs are staged: `dvfs commit` records
    them with their lineage. With STAGEs: those and what they need (--downstream:
    those and what needs them).

    \b
    Examples:
      dvfs repro
      dvfs repro --dry-run
      dvfs repro train --force
      dvfs repro prepare --downstream --jobs 4 --keep-going
    """
    from vfs.pipeline.plan import Options

    if downstream and not stages:
        raise UsageError("--downstream needs a STAGE: dvfs repro STAGE --downstream")
    ws, p, dag = pipeline_here()
    if not p.stages:
        raise UsageError("no stages: write them in dvfs.yaml, or add one with `dvfs run`")
    opts = Options(list(stages), dry_run, force, downstream, jobs, keep_going)
    run_pipeline(ws, dag, opts, as_json)


@click.group(cls=DvfsGroup, name="stage")
def stage_group() -> None:
    """List or remove the stages of dvfs.yaml.

    \b
    Examples:
      dvfs stage list
      dvfs stage remove train
    """


def stage_json(s: Any) -> dict[str, Any]:
    """A stage of dvfs.yaml for --json."""
    return {
        "name": s.name,
        "cmd": s.cmd if isinstance(s.cmd, str) else list(s.cmd),
        "wdir": os.fsdecode(s.wdir) if s.wdir else ".",
        "deps": [os.fsdecode(d) for d in s.deps],
        "outs": [os.fsdecode(o) for o in s.outs],
        "params": [{"file": os.fsdecode(f), "key": k} for f, k in s.params],
        "metrics": [os.fsdecode(m) for m in s.metrics],
        "line": s.line,
    }


@stage_group.command(name="list")
@AS_JSON
def stage_list(as_json: bool) -> None:
    """List the stages: what each runs, reads and makes.

    \b
    Examples:
      dvfs stage list
      dvfs stage list --json
    """
    _, p, dag = pipeline_here(writes=False)
    if as_json:
        emit_json({"stages": [stage_json(s) for s in p.stages.values()]})
        return
    for s in p.stages.values():
        ups = dag.upstream[s.name]
        after = f"  (after {', '.join(ups)})" if ups else ""
        click.echo(f"{s.name}: {escape_text(s.shown_cmd())}{after}")
        if s.deps:
            click.echo(f"  deps: {', '.join(quoted(d) for d in s.deps)}")
        outs = [o for o in s.outs if o not in s.metrics]
        if outs:
            click.echo(f"  outs: {', '.join(quoted(o) for o in outs)}")
        if s.metrics:
            click.echo(f"  metrics: {', '.join(quoted(m) for m in s.metrics)}")
        if s.params:
            from vfs.pipeline.stale import param_name

            click.echo(
                f"  params: {', '.join(quote_name(param_name(f, k, s.wdir)) for f, k in s.params)}"
            )
    if not p.stages:
        click.echo("no stages (add one with `dvfs run`)")


@stage_group.command(name="remove")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
def stage_remove(names: tuple[str, ...]) -> None:
    """Remove stages from dvfs.yaml (and their runs from dvfs.runs); outputs are kept.

    \b
    Examples:
      dvfs stage remove train
    """
    from vfs.pipeline import runs as runs_file
    from vfs.pipeline import spec
    from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE

    names = tuple(dict.fromkeys(names))  # a name given twice is removed once
    ws = pipeline_here()[0]
    with ws.exclusive():  # dvfs.yaml read again under the lock: what another edit left
        p = spec.read(ws.read(PIPELINE_FILE.encode(), spec.MAX_FILE))
        missing = [n for n in names if n not in p.stages]
        if missing:
            raise UsageError(
                f"no stage {quote_name(missing[0])} in {PIPELINE_FILE}: nothing was removed"
            )
        # each edit checked (another stage may use a YAML anchor of it), the last stage
        # first: an alias names an anchor above it, so a stage and one using its anchor
        # removed together leave no alias without its anchor on the way
        for n in sorted(names, key=lambda n: -p.stages[n].line):
            p = spec.edited(spec.without_stage(p, n), n, "removing")
        text = p.text
        raw = ws.read(RUNS_FILE.encode(), runs_file.MAX_FILE)
        if raw is not None:
            try:
                recorded = runs_file.parse(raw)
            except DvfsError:
                recorded = None
            if recorded is not None and any(n in recorded for n in names):
                for n in names:
                    recorded.pop(n, None)
                ws.write(RUNS_FILE.encode(), runs_file.dump(recorded))
        ws.write(PIPELINE_FILE.encode(), text.encode())
    click.echo(f"Removed {count(len(names), 'stage')} from {PIPELINE_FILE} (outputs kept)")


@click.command(cls=DvfsCommand)
@click.argument("stage", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "json"]), default="text",
    show_default=True, help="How to draw it.",
)  # fmt: skip
@click.option("--outs", is_flag=True, help="Draw outputs and what is made from them.")
def dag(stage: str | None, fmt: str, outs: bool) -> None:
    """Draw the pipeline: each stage after the stages it needs (STAGE: it and those).

    As text, a stage deeper than 16 levels is indented no further and its line starts
    with its level ([17]): its parent is the nearest line above of the level before.

    \b
    Examples:
      dvfs dag
      dvfs dag train --outs
      dvfs dag --format dot | dot -Tsvg > pipeline.svg
      dvfs dag --format mermaid
    """
    from vfs.pipeline import graph

    g = pipeline_here(writes=False)[2]
    if stage is not None and stage not in g.stages:
        raise UsageError(f"no stage {quote_name(stage)} in dvfs.yaml: `dvfs stage list` shows them")
    names = g.closure([stage], down=False) if stage else list(g.stages)
    if fmt == "json":
        click.echo(graph.to_json(g, names, outs), nl=False)
        return
    nodes, edges = graph.edges_of(g, names, outs)
    if fmt == "dot":
        click.echo(graph.to_dot(nodes, edges), nl=False)
    elif fmt == "mermaid":
        click.echo(graph.to_mermaid(nodes, edges), nl=False)
    else:
        shown = [quote_name(n) for n in nodes]
        pairs = [(quote_name(a), quote_name(b)) for a, b in edges]
        for line in graph.to_text(shown, pairs):
            click.echo(line)
        if not nodes and names:
            click.echo("no outputs: no stage drawn lists any under outs or metrics")
        elif not nodes:
            click.echo("no stages (add one with `dvfs run`)")


def plain_table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns aligned with two spaces between them (cells already safe to print)."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    for r in [headers, *rows]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def history_of(ws: Any) -> Any:
    """The repository of a pipeline's working tree; UsageError for a remote's mount."""
    if ws.repo is None:
        raise UsageError("this mount shows a remote: versions are read in a repository")
    return ws.repo


def outside(rel: str) -> bool:
    """True if ``rel`` (from ``os.path.relpath``) leads out of the directory it is
    relative to: ``..`` or below it, not a name that starts with two dots (``..data``)."""
    return rel == os.pardir or rel.startswith(os.pardir + os.sep)


VERSIONS = VERSIONS_DIR.decode()  # a mount's list of versions, at its root
_VERSION_DIR = re.compile(r"v[1-9][0-9]{0,18}")
_FULL_ID = re.compile(r"[0-9a-f]{64}")


def path_arg(ws: Any, arg: str) -> bytes:
    """A path argument as a path of the working tree (lexical: it may not exist now);
    a path in a mount's ``.versions`` is none (:func:`version_path_arg` reads one)."""
    rel = _rel(ws, arg)
    if _below_versions(ws, rel) is not None:
        raise UsageError(
            f"{quote_name(arg)} is in the mount's list of versions ({VERSIONS}), not in its "
            "working tree"
        )
    return os.fsencode(rel)


def version_path_arg(ws: Any, arg: str, rev: str | None, command: str) -> tuple[bytes, str | None]:
    """A path argument of a command that reads a version (default HEAD), and that
    version: in a mount's ``.versions/vN`` (or ``.versions/ids/ID``), the path there
    is that version's, as ``ls`` shows it (``cd MNT/.versions/v2/models && dvfs
    lineage model.pt`` reads ``models/model.pt`` of v2). A REV that names another
    version, or a path elsewhere in ``.versions`` (tags/, branches/, latest), is a
    UsageError saying what to run."""
    rel = _rel(ws, arg)
    below = _below_versions(ws, rel)
    if below is None:
        return os.fsencode(rel), rev
    if below and _VERSION_DIR.fullmatch(below[0]):
        name, rest = below[0], below[1:]
    elif len(below) > 1 and below[0] == "ids" and _FULL_ID.fullmatch(below[1]):
        name, rest = below[1], below[2:]
    else:
        raise UsageError(
            f"{quote_name(arg)} is in the mount's list of versions ({VERSIONS}), not in a "
            f"version's directory (vN): run `dvfs {command} PATH REV`, PATH from the mount's "
            "root"
        )
    path = "/".join(rest)
    if not rest or (rev is not None and rev != name):
        hint = f"`dvfs {command} {shell_word(path or 'PATH')} {shell_word(rev or name)}`"
        raise UsageError(
            f"{quote_name(arg)} is {'the root of ' + name if not rest else 'a path of ' + name}"
            f" in the mount's list of versions: run {hint}"
        )
    return os.fsencode(path), name


def _rel(ws: Any, arg: str) -> str:
    """``arg`` from the working tree's root; UsageError if it is not below it."""
    rel = os.path.relpath(os.path.abspath(arg), ws.root)
    if rel == "." or outside(rel):
        raise UsageError(
            f"{quote_name(arg)} is not a path inside the working tree {quote_name(str(ws.root))}"
        )
    return rel


def _below_versions(ws: Any, rel: str) -> list[str] | None:
    """The names below a mount's ``.versions`` on the way to ``rel``, or None when
    ``rel`` is not in it (nor in a mount)."""
    parts = rel.split(os.sep)
    return parts[1:] if ws.mount is not None and parts[0] == VERSIONS else None


def _fetch_runs(repo: Any, tree: bytes, rev: str) -> None:
    """Download the ``dvfs.runs`` of a version's ``tree`` if the local store lacks it, as
    ``dvfs cat`` does (a clone holds the data of its checkout alone); RemoteError if a
    remote fails. One no remote has is left to the read that follows, which says so."""
    from vfs.model.codec import Kind
    from vfs.pipeline.runs import MAX_FILE
    from vfs.repo.gitlink import RUNS_FILE

    name = RUNS_FILE.encode()
    e = repo.history.lookup(tree, name)
    if e is None or e.kind != Kind.FILE or e.size > MAX_FILE:
        return
    if all(repo.store.has(c.oid) for c in e.chunks):
        return  # the remotes (15 ms to import) only when something is missing
    from vfs.remote import ondemand

    with workers() as w:
        ondemand.ensure_local(
            repo,
            [(name, e)],
            w,
            command="lineage",
            gets_them=f"dvfs pull {shell_word(rev)} {RUNS_FILE}",
        )


@click.command(cls=DvfsCommand)
@click.argument("path")
@click.argument("rev", required=False)
@click.option("--downstream", is_flag=True, help="What is made from PATH instead.")
@AS_JSON
def lineage(path: str, rev: str | None, downstream: bool, as_json: bool) -> None:
    """How PATH of a version (default HEAD) was made: stages, commands and inputs.

    Each input is shown with its id as the run saw it and the version that
    introduced those bytes; inputs made by another stage are followed upstream.
    --downstream lists the stages that read PATH, and what reads their outputs, each
    indented by its depth (past 16, indented no further and its depth said: [17]).
    When no stage of the version made (or reads) PATH and its dvfs.runs cannot be
    read (a clone downloads it), the lineage is unknown: an error says why.

    \b
    Examples:
      dvfs lineage models/model.pt
      dvfs lineage models/model.pt v7 --json
      dvfs lineage data/raw --downstream
    """

    from vfs.model.params import shown_commands
    from vfs.pipeline import graph, workspace
    from vfs.pipeline import lineage as lin
    from vfs.pipeline.record import describe_all, iso_ns, read_runs
    from vfs.pipeline.stale import param_name
    from vfs.repo.gitlink import RUNS_FILE

    ws = workspace.find(writes=False)
    rel, rev = version_path_arg(ws, path, rev, "lineage")
    hist = history_of(ws).history
    oid = hist.resolve(rev or "HEAD")
    v = hist.version(oid)
    label = f"v{v.number}"  # (--json, beside the id)
    named = hist.revision(oid)  # in a line: another branch's vN names another version here
    since = lin.origin(hist, oid, rel)
    if not lin.known(hist, oid, rel, since):
        raise UsageError(f"{quoted(rel)} is not in {named}")
    if downstream:
        found = lin.downstream(hist, oid, rel)
        if not found:  # none reads it; or the runs file the pipeline comes from is unreadable
            try:
                _fetch_runs(history_of(ws), v.tree, rev or "HEAD")
                read_runs(hist, v.tree)
            except DvfsError as exc:
                raise DvfsError(
                    f"what reads {quoted(rel)} in {named} is unknown: {RUNS_FILE} could not be "
                    f"read ({exc})"
                ) from None
        if as_json:
            emit_json({
                "path": os.fsdecode(rel), "version": label, "id": oid.hex(),
                "downstream": [
                    {"stage": s.name, "reads": os.fsdecode(d), "depth": depth,
                     "outputs": [os.fsdecode(o) for o, _ in s.outs]}
                    for s, d, depth in found
                ],
            })  # fmt: skip
            return
        if not found:
            click.echo(f"no stage of {named}'s pipeline reads {quoted(rel)}")
            return
        click.echo(f"{quoted(rel)} in {named} is read by:")
        deepest = graph.TEXT_DEPTH
        for s, d, depth in found:  # (past TEXT_DEPTH levels: no deeper, its level said)
            outs = ", ".join(quoted(o) for o, _ in s.outs)
            level = f"[{depth}] " if depth > deepest else ""
            click.echo(
                f"{'  ' * (min(depth, deepest) + 1)}{level}stage {s.name} (reads {quoted(d)}) "
                f"-> {outs}"
            )
        return
    steps = lin.upstream(hist, oid, rel)
    cut = sum(i.cut for st in steps for i in st.inputs)
    if cut:
        warn(
            f"the walk back through the versions was cut short after {lin.budget():,} of them: "
            f"the version that introduced the bytes of {cut:,} input{'s' if cut > 1 else ''} "
            "is not known"
        )
    where = f" (since {since})" if since else ""
    maker = None
    if not steps:  # no stage of the version made it; or its runs file, which says, is unreadable
        try:
            _fetch_runs(history_of(ws), v.tree, rev or "HEAD")
            maker = lin.unrecorded_maker(hist, oid, rel)
        except DvfsError as exc:
            raise DvfsError(
                f"{quoted(rel)} in {named}{where}: its lineage is unknown: {RUNS_FILE} could "
                f"not be read ({exc})"
            ) from None
    if as_json:
        emit_json({
            "path": os.fsdecode(rel), "version": label, "id": oid.hex(), "since": since,
            "stages": [
                {**described,
                 "made": [os.fsdecode(o) for o in st.outputs],
                 "input": [
                     {"path": os.fsdecode(i.path), "id": i.id.hex(), "since": i.since,
                      "in_version": i.now, "made_by": i.made_by, "kind": i.kind,
                      "since_cut": i.cut}
                     for i in st.inputs
                 ]}
                for st, described in zip(
                    steps, describe_all([st.stage for st in steps]), strict=True
                )
            ],
        })  # fmt: skip
        return
    if not steps:
        if maker is not None:
            click.echo(
                f"{quoted(rel)} in {named}{where} is not as stage {maker}'s last run made it "
                f"(changed after it ran): {named} records no lineage for it; `dvfs repro` "
                "makes it again"
            )
            return
        click.echo(
            f"{quoted(rel)} in {named}{where} was not made by a stage of its pipeline: it is data "
            "added as it is"
        )
        return
    click.echo(f"{quoted(rel)} in {named}{where}")
    for st, given in zip(steps, shown_commands(st.stage.cmd for st in steps), strict=True):
        s = st.stage
        cmd = escape_text(given if isinstance(given, str) else shlex.join(given))
        made = ", ".join(quoted(o) for o in st.outputs)
        click.echo(f"stage {s.name} made {made}: {cmd}")
        r = s.run
        click.echo(
            f"  ran {iso_ns(r.started_ns)} on {escape_text(r.host)} for "
            f"{r.duration_ns / 1e9:.1f} s (dvfs {escape_text(r.dvfs)}, Python "
            f"{escape_text(r.python)}{', git ' + escape_text(r.git[:10]) if r.git else ''})"
        )
        for i in st.inputs:
            origin = f"since {i.since}" if i.since else "in no version"
            if i.cut:
                origin = "since an unknown version (walk cut short)"
            if i.since and not i.now:
                origin += f" ({named} holds other bytes)"
            by = f", made by stage {i.made_by}" if i.made_by else ""
            what = "params file" if i.kind == "params" else "input"
            click.echo(f"  {what} {quoted(i.path)}  {i.id.hex()[:10]}  {origin}{by}")
        for f, k, val in s.params:
            click.echo(f"  param {quote_name(param_name(f, k, s.wdir))} = {param_text(val)}")
