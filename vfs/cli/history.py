"""``dvfs log``, ``show``, ``ls`` and ``cat``: looking at versions.

Each command imports :mod:`vfs.ops.browse` itself: a row diff needs nothing browse
loads. Revisions and paths on a command line are told apart in :mod:`vfs.cli.targets`.
"""

from __future__ import annotations

import json
import os
import stat as statmod
import sys
from typing import Any

import click

from vfs.cli.options import AS_JSON, OFFLINE, DvfsCommand, RevsThenPaths
from vfs.cli.output import count, emit_json, fail, human, quoted, repo_here, warn, workers
from vfs.cli.targets import DASHDASH, REVISION_LIKE, revs_and_paths
from vfs.errors import DvfsError, RevisionNotFound, UsageError
from vfs.model.codec import Entry, Kind
from vfs.model.params import reads_as_other
from vfs.ops.diff import flat_params
from vfs.quoting import escape_text, quote_given, quote_name
from vfs.repo.history import NO_VERSIONS
from vfs.repo.repository import Repository
from vfs.worktree.scan import show


def param_text(value: Any) -> str:
    """A parameter's value on one line: text as it is (in double quotes if it would
    read as another value: ``"2"``), anything else as compact JSON."""
    if isinstance(value, str):
        return escape_text(
            json.dumps(value, ensure_ascii=False) if reads_as_other(value) else value
        )
    return escape_text(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


def decorated(r: dict[str, Any]) -> list[str]:
    """A log row's tags and branches as its line names them, and how many more."""
    refs = [f"tag: {quoted(t)}" for t in r["tags"]]
    refs += [f"{r['more_tags']:,} more tags"] if r.get("more_tags") else []
    refs += [quoted(b) for b in r["branches"]]
    refs += [f"{r['more_branches']:,} more branches"] if r.get("more_branches") else []
    return refs


@click.command(cls=RevsThenPaths)
@click.argument("targets", nargs=-1, metavar="[REV] [[--] PATH...]")
@click.option("-n", "limit", type=click.IntRange(min=0), help="Show at most N versions.")
@click.option("--params", "with_params", is_flag=True, help="Show each version's parameters.")
@click.option(
    "--oneline", is_flag=True,
    help="One line a version: number, id, names, message (--params: a line each below).",
)  # fmt: skip
@click.option("--graph", is_flag=True, help="Every version below, merges drawn as a graph.")
@AS_JSON
@click.option(
    "--remote", "remote_name", metavar="NAME",
    help="List the versions of a remote's branch: REV, else the current branch's.",
)  # fmt: skip
@click.pass_context
def log(
    ctx: click.Context, targets: tuple[str, ...], limit: int | None, with_params: bool,
    oneline: bool, graph: bool, as_json: bool, remote_name: str | None,
) -> None:  # fmt: skip
    """List versions, newest first, with their tags and branches.

    With PATHs, only the versions that changed something at or below them.

    \b
    Examples:
      dvfs log
      dvfs log -n 5 main
      dvfs log --params
      dvfs log -- data/labels.csv
      dvfs log --remote origin
      dvfs log --remote origin feature  # its branch feature
      dvfs log --graph --oneline       # merges and the lines they join
    """
    from vfs.ops import browse
    from vfs.ops import graph as drawing

    repo = repo_here()
    branch = None
    remote_names = None  # the remote's names of its versions, with --remote
    if remote_name is not None:  # REV is a branch of the remote, unknown here before a fetch
        before = len(targets) - (ctx.meta.get(DASHDASH) or 0)
        if before and not is_path(repo, targets[0]):
            branch, targets = targets[0], targets[1:]
    revs, paths = revs_and_paths(repo, ctx, targets, 1)
    rev = revs[0] if revs else None
    if remote_name is not None:
        if rev is not None:
            raise UsageError("--remote lists one branch of the remote: give one BRANCH")
        from vfs.ops import sync  # (with its remotes code: only for --remote)
        from vfs.remote import config as remotes

        spec = remotes.get_remote(repo, remote_name)
        rev, notes, remote_names = sync.log_remote(repo, spec, branch)
        for line in notes:
            warn(line)
    if rev is None and repo.history.head_id() is None:
        raise UsageError(NO_VERSIONS)
    hist = repo.history
    lines: list[drawing.GraphLine] = []
    if graph:
        if paths:
            raise UsageError("--graph draws whole versions: give no PATH")
        start = hist.head_id() if rev is None else hist.resolve(rev)
        assert start is not None
        lines = list(drawing.draw(drawing.topo_order(hist, start, limit)))
        decor = browse.decorations(repo) if remote_names is None else remote_names
        rows = []
        for ln in lines:
            if ln.oid is not None and ln.version is not None:
                rows.append(browse.log_row(hist, decor, ln.oid, ln.version))
    else:
        rows = browse.log(repo, rev, limit, paths, remote_names)
    if as_json:
        if graph:
            drawn = iter(ln.prefix for ln in lines if ln.oid is not None)
            for r in rows:
                r["graph"] = next(drawn)
        emit_json(rows)
        return
    if graph:
        log_graph(lines, rows, oneline, with_params)
        return
    for r in rows:
        git = (
            f"  git {escape_text(r['git_commit'][:10])}{'+' if r['git_dirty'] else ''}"
            if r["git_commit"]
            else ""
        )
        refs = decorated(r)
        names = f"  ({', '.join(refs)})" if refs else ""
        if oneline:
            first = r["message"].split("\n", 1)[0]
            click.echo(f"{r['version']:>5}  {r['id'][:10]}{names}  {escape_text(first)}")
        else:
            click.echo(
                f"{r['version']:>5}  {r['id'][:10]}  {r['created']}  {escape_text(r['author'])}"
                f"{git}{names}\n       {escape_text(r['message'])}"
            )
        if with_params:
            for k, v in sorted(flat_params(r["parameters"])):
                click.echo(f"       {quote_name(k)} = {param_text(v)}")


def log_graph(
    lines: list[Any], rows: list[dict[str, Any]], oneline: bool, with_params: bool
) -> None:
    """``dvfs log --graph``: each version's text beside its line of the drawing."""
    by_id = {r["id"]: r for r in rows}
    width = max((len(ln.prefix) for ln in lines), default=0) + 2
    for ln in lines:
        if ln.oid is None:
            click.echo(ln.prefix)
            continue
        r = by_id[ln.oid.hex()]
        refs = decorated(r)
        names = f"  ({', '.join(refs)})" if refs else ""
        merge = "  merge" if len(r["parents"]) > 1 else ""
        pad = ln.prefix.ljust(width)
        bar = "".join(c if c in "|" else " " for c in ln.prefix.replace("*", "|")).ljust(width)
        if oneline:
            first = r["message"].split("\n", 1)[0]
            click.echo(f"{pad}{r['version']}  {r['id'][:10]}{names}{merge}  {escape_text(first)}")
        else:
            click.echo(
                f"{pad}{r['version']}  {r['id'][:10]}  {r['created']}  {escape_text(r['author'])}"
                f"{names}{merge}"
            )
            click.echo(f"{bar}{escape_text(r['message'])}")
        if with_params:
            for k, v in sorted(flat_params(r["parameters"])):
                click.echo(f"{bar}{quote_name(k)} = {param_text(v)}")


@click.command(cls=DvfsCommand, name="show")
@click.argument("rev", required=False)
@click.option("--files", "list_files", is_flag=True, help="List every file (hash, size, origin).")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "yaml", "json"]), default="text",
    show_default=True, help="Output format (yaml and json always hold every file).",
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (--format json).")
def show_cmd(rev: str | None, list_files: bool, fmt: str, as_json: bool) -> None:
    """Show one version: metadata, parameters, what changed and its largest directories.

    --files lists every file with its hash, size and the version it has had that
    content since.

    \b
    Examples:
      dvfs show
      dvfs show v3 --files
      dvfs show v3 --format yaml
    """
    if as_json and fmt not in ("text", "json"):
        raise UsageError(f"--json and --format {fmt} ask for two formats: give one")
    if rev is not None and ":" in rev:
        raise UsageError(f"show takes a revision: `dvfs cat {rev}` prints a file of a version")
    from vfs.ops import browse

    machine = as_json or fmt != "text"
    repo = repo_here()
    if fmt == "yaml":  # (the very text of a mount's .versions/meta/vN.yaml)
        hist = repo.history
        click.echo(browse.version_yaml(hist, hist.resolve(rev or "HEAD")), nl=False)
        return
    data = browse.show(repo, rev, files=machine or list_files)
    if as_json or fmt == "json":
        emit_json(data)
        return
    click.echo(f"version  {data['version']}  {data['id']}")
    if len(data["parents"]) > 1:  # a merge: its parents, the first the branch's own
        sides = [f"{repo.history.label(bytes.fromhex(p))} {p[:10]}" for p in data["parents"]]
        click.echo(f"merge    {' + '.join(sides)}")
    click.echo(f"author   {escape_text(data['author'])}")
    click.echo(f"created  {data['created']}")
    if data["git_commit"]:
        dirty = " (dirty)" if data["git_dirty"] else ""
        click.echo(f"git      {escape_text(data['git_commit'])}{dirty}")
    for k, v in flat_params(data["parameters"]):
        click.echo(f"param    {quote_name(k)} = {param_text(v)}")
    click.echo(f"\n    {escape_text(data['message'])}\n")
    t, c = data["totals"], data["changes"]
    dirs = f"{t['directories']:,} director{'y' if t['directories'] == 1 else 'ies'}"
    click.echo(f"{count(t['files'], 'file')}, {human(t['bytes'])} in {dirs}")
    since = f"since {c['since']}" if c["since"] else "first version"
    click.echo(
        f"{since}: {c['added']:,} added, {c['modified']:,} modified, {c['removed']:,} removed, "
        f"{c['renamed']:,} renamed (+{human(c['bytes_added'])}, -{human(c['bytes_removed'])})"
    )
    if list_files:
        click.echo()
        for path, f in data["files"].items():
            if "link" in f:
                target = quote_name(f["link"])
                click.echo(f"  {'link':>10}  {f['added']:>5}  {quoted(path)} -> {target}")
            else:
                click.echo(
                    f"  {human(f['size']):>10}  {f['added']:>5}  {f['hash'][:12]}  {quoted(path)}"
                )
        return
    top = data["top_directories"]
    where = f" in {quoted(top['in'])}/" if top["in"] else ""
    if top["directories"]:
        click.echo(f"\nlargest directories{where}:")
        for d in top["directories"]:
            click.echo(
                f"  {human(d['bytes']):>10}  {files_count(d['files'])}  {quoted(d['path'])}/"
            )
        if top["more"]:
            click.echo(f"  ... and {top['more']:,} more")
    loose = top["loose"]
    if loose["files"] and top["directories"]:
        click.echo(
            f"  {human(loose['bytes']):>10}  {files_count(loose['files'])}  "
            f"{'directly in ' + quoted(top['in']) + '/' if top['in'] else 'at the top'}"
        )
    click.echo(f"\n(`dvfs show {escape_text(rev or 'HEAD')} --files` lists every file)")


def files_count(n: int) -> str:
    """``1 file``, ``12,345 files``, right-aligned for a table."""
    return f"{n:>9,} file{'s' if n != 1 else ' '}"


def mode_string(e: Entry) -> str:
    """``ls -l`` style type and permission letters."""
    kind = {Kind.DIR: statmod.S_IFDIR, Kind.SYMLINK: statmod.S_IFLNK}.get(e.kind, statmod.S_IFREG)
    return statmod.filemode(kind | e.mode)


@click.command(cls=DvfsCommand, name="ls")
@click.argument("target", default="HEAD", metavar="[REV[:DIR]]")
@click.argument("path", required=False, metavar="[DIR]")
@click.option(
    "-r", "--recursive", is_flag=True, help="Every file and link below DIR, by its path."
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ls_cmd(target: str, path: str | None, recursive: bool, as_json: bool) -> None:
    """List a directory of a version without checking it out.

    The directory follows the revision as a second argument, from the current
    directory (default: the current directory), or after a colon, from the root of
    the repository, as git reads REV:PATH. A DIR alone that is no revision is one of
    HEAD. Paths listed by -r are shown from the current directory (--json: from the
    root).

    \b
    Examples:
      dvfs ls
      dvfs ls v2:data/images --json
      dvfs ls v2 data/images      # the same, at the root
      dvfs ls data                # data/ of HEAD
      dvfs ls -r v2:data          # every file below data/
    """
    from vfs.cli.status_report import as_given, from_here
    from vfs.ops import browse

    repo = repo_here()
    rev, where, directory = located(repo, target, path, "DIR")
    _, entry = browse.lookup(repo, rev, where, directory=directory)
    rows = browse.ls_entries(repo, rev, where, recursive)
    if as_json:
        emit_json(
            [
                {"name": show(n), "type": e.kind.name.lower(), "mode": oct(e.mode),
                 "size": e.size, "mtime": browse.iso_time(e.mtime_ns),
                 **({"target": show(e.target)} if e.kind == Kind.SYMLINK else {})}
                for n, e in rows
            ]
        )  # fmt: skip
        return
    # Paths (-r, or a file named) as status shows them; a directory's entries by name.
    at = from_here(repo) if recursive or entry.kind != Kind.DIR else as_given
    for name, e in rows:
        suffix = "/" if e.kind == Kind.DIR else f" -> {quoted(e.target)}" if e.target else ""
        click.echo(
            f"{mode_string(e)}  {human(e.size):>10}  {browse.iso_time(e.mtime_ns)}  "
            f"{quoted(at(name))}{suffix}"
        )


def joined(target: str, path: str | None, what: str) -> str:
    """``REV:PATH`` from ``REV:PATH`` alone or from ``REV`` and ``PATH`` given apart."""
    if path is None:
        return target
    if ":" in target:
        raise UsageError(
            f"give REV:{what} or REV {what}, not both ({quote_given(target)} and "
            f"{quote_given(path)})"
        )
    return f"{target}:{path}"


def located(repo: Repository, target: str, path: str | None, what: str) -> tuple[str, bytes, bool]:
    """The revision and repository path that ``REV[:PATH] [PATH]`` name, and whether
    the path was written as a directory's (``d/a/``: a file there is refused).

    After a colon the path is from the root, as git reads ``REV:PATH``; given apart it
    is from the current directory, as every other path argument is; with neither, the
    current directory (the root if the current directory is not below it).
    """
    from vfs.repo.history import names_directory, split_rev_path

    if path is not None:
        joined(target, path, what)  # REV:PATH and PATH: refused
        rev = target or "HEAD"
        return rev, repo.rel(path), names_directory(path)
    if ":" in target:
        rp = split_rev_path(target)
        return rp.rev, rp.path, rp.directory
    rev = target or "HEAD"
    try:
        repo.history.resolve(rev)
    except RevisionNotFound:
        # `dvfs ls data`: a path of the working tree or HEAD, not a revision.
        if REVISION_LIKE.match(rev) or not is_path(repo, rev):
            raise
        return "HEAD", repo.rel(rev), names_directory(rev)
    try:
        here = repo.rel(".")
    except (UsageError, FileNotFoundError):  # (not below the root: a DVFS_DIR, say)
        here = b""
    return rev, here, False


def is_path(repo: Repository, arg: str) -> bool:
    """True if ``arg`` names something in the working tree or in HEAD."""
    if os.path.lexists(arg):
        return True
    try:
        rel = repo.rel(arg)
        head = repo.history.head_id()
    except DvfsError:
        return False
    hist = repo.history
    return head is not None and hist.lookup(hist.version(head).tree, rel) is not None


@click.command(cls=DvfsCommand)
@click.argument("target", metavar="REV:PATH")
@click.argument("path", required=False, metavar="[PATH]")
@OFFLINE
def cat(target: str, path: str | None, offline: bool) -> None:
    """Write a file of a version to standard output.

    The path follows the revision after a colon, from the root of the repository, as
    git reads REV:PATH, or as a second argument, from the current directory. Data not
    in the local store is downloaded from the default remote first.

    \b
    Examples:
      dvfs cat v1:data/labels.csv > labels-v1.csv
      dvfs cat v1 data/labels.csv > labels-v1.csv   # the same, at the root
    """
    from vfs.ops import browse
    from vfs.remote import ondemand

    repo = repo_here()
    rev, where, directory = located(repo, target, path, "PATH")
    target = f"{rev}:{os.fsdecode(where)}{'/' if directory and where else ''}"

    def fetch(path: bytes, e: Entry) -> None:
        with workers() as w:
            got = ondemand.ensure_local(
                repo, [(path, e)], w, command=f"cat {target}",
                gets_them=f"dvfs pull {rev} {show(path)}", offline=offline,
            )  # fmt: skip
        for why in got.unavailable.values():
            fail(f"cannot show {quoted(path)}: {why}")

    out = sys.stdout.buffer
    for piece in browse.cat(repo, target, fetch):
        out.write(piece)
    out.flush()
