"""The ``dvfs`` command line.

This is the one place where errors become messages and exit codes: a
:class:`~vfs.errors.DvfsError` prints ``dvfs: error: <message>`` on stderr and exits
with its code (1, or 2 for usage errors); anything unexpected prints one line too
(set ``DVFS_DEBUG=1`` for the traceback). Output meant for scripts is available as
``--json`` (or ``--format json``).

Names, messages and every other text that may come from someone else (a remote, a
tree, a working directory, a daemon) pass through :mod:`vfs.quoting` before they
reach the terminal: ``quoted`` for names, ``escape_text`` for free text, and
``fail``/``warn`` escape their whole line. JSON output is exact (``safe_json``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import errno
import inspect
import io
import json
import math
import os
import re
import shlex
import stat as statmod
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from vfs import audit, browse, checkout, merging, settings, workflow
from vfs import params as version_params
from vfs._os.malloc import large_buffers_to_os
from vfs.codec import Entry, Kind
from vfs.diff import Change, ParamChange, flat_params, summary
from vfs.errors import DvfsError, NotARepository, RemoteUnreachable, RevisionNotFound, UsageError
from vfs.gitlink import find_shared_root, git_output
from vfs.grouping import GROUP_OVER, Group, by_directory
from vfs.progress_bar import TerminalProgress, human_size
from vfs.quoting import escape_text, quote_name, safe_json
from vfs.repo import DEFAULT_BRANCH, Repository
from vfs.worktree import Workers, lstat_or_none, show

if TYPE_CHECKING:  # the commands that use these import them: most commands need none
    from click.shell_completion import CompletionItem

    from vfs.remote import transfer as sync

DEFAULT_CACHE_SIZE = "10G"  # `dvfs mount --cache-size` (vfs.launch has the same)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
MAX_SECONDS = 86400.0  # --refresh and --timeout: at most a day
COMPLETE_VAR = "_DVFS_COMPLETE"  # what the shell sets to ask `dvfs` for completions
ROWS_SHOWN = 20  # rows `dvfs diff --rows` shows unless --limit says otherwise


class FreeText(click.types.StringParamType):
    """Text that may be empty (a message); every other string parameter may not."""

    name = "text"


class NotEmpty(click.ParamType[Any]):
    """A parameter's own type, refusing the empty string first.

    ``dvfs rm "$DIR"`` with DIR unset once meant ``dvfs rm ""``: the current directory,
    every tracked file in it removed. An empty value is refused while the command
    line is parsed, before anything is done.
    """

    def __init__(self, inner: click.ParamType[Any]) -> None:
        self.inner = inner
        self.name = inner.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Refuse "" (one line, exit 2); hand anything else to the wrapped type."""
        if value == "":
            raise UsageError(empty_value(param))
        return self.inner.convert(value, param, ctx)

    def get_metavar(self, param: click.Parameter, ctx: click.Context) -> str | None:
        """The wrapped type's metavar (for help)."""
        return self.inner.get_metavar(param, ctx)

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        """Revisions, branches or files for the arguments that take them (``dvfs completion``)."""
        from click.shell_completion import CompletionItem  # only when completing

        if isinstance(param, click.Argument):
            kind = COMPLETE.get(param.name or "") or COMPLETE.get(f"{ctx.info_name} {param.name}")
            if kind == "file":
                return [CompletionItem(incomplete, type="file")]
            if kind == "revisions or files":  # files when no revision matches
                return [CompletionItem(incomplete, type="file"), *complete_refs(kind, incomplete)]
            if kind is not None:
                return complete_refs(kind, incomplete)
        return self.inner.shell_complete(ctx, param, incomplete)


# What the shell completes for an argument, by its name (or "command name").
COMPLETE = {
    "rev": "revisions", "revs": "revisions", "target": "revisions", "names": "revisions",
    "targets": "revisions or files",
    "paths": "file",
    "branches": "branches", "switch name": "branches",
}  # fmt: skip


def complete_refs(kind: str, incomplete: str) -> list[CompletionItem]:
    """Branches (and, for revisions, HEAD, tags and remote branches) starting so."""
    try:
        refs = Repository.find().refs
        names = refs.names("heads")
        if kind.startswith("revisions"):
            names = ["HEAD", *refs.names("tags"), *names, *refs.names("remotes")]
    except (DvfsError, OSError):  # not in a repository: nothing to offer
        return []
    from click.shell_completion import CompletionItem  # only when completing

    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


_ONE = {"paths": "PATH", "revs": "REV", "branches": "BRANCH", "args": "SOURCE or MNT",
        "names": "NAME", "targets": "REV or PATH"}  # fmt: skip


def empty_value(param: click.Parameter | None) -> str:
    """The error for an empty argument or option value."""
    name = (param.name if param else None) or "argument"
    if isinstance(param, click.Option):
        what = f"value for {param.opts[-1] if param.opts else name}"
    elif isinstance(param, click.Argument) and param.metavar and " " not in param.metavar:
        bare = param.metavar[1:-1] if param.metavar.startswith("[") else param.metavar
        what = f"{bare} argument"
    else:
        what = f"{_ONE.get(name, name.upper())} argument"
    hint = "; write '.' for the current directory" if name in ("paths", "directory") else ""
    return f"empty {what} (an unset shell variable?): nothing was done{hint}"


class Token(click.types.StringParamType):
    """A URL, endpoint, region or profile: refused if it holds a control character.

    Such a value is stored in ``.dvfs/config`` and handed to the daemon and to boto3;
    a newline or an escape in it is a mistake or an attack, never a real name.
    """

    name = "text"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The value, if it holds no control character."""
        text = super().convert(value, param, ctx)
        if escape_text(text) != text:
            what = param.opts[-1] if isinstance(param, click.Option) and param.opts else "URL"
            raise UsageError(f"{what} {quote_name(text)} holds a control character")
        return text


class Seconds(click.FloatRange):
    """A finite number of seconds between ``min`` and a day (FloatRange lets NaN pass)."""

    def __init__(self, min: float) -> None:
        super().__init__(min=min, max=MAX_SECONDS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The number, if it is finite and in range."""
        seconds = super().convert(value, param, ctx)
        if not math.isfinite(seconds):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return seconds


EXAMPLES = "\b\nExamples:\n"


def examples_last(cmd: click.Command) -> None:
    """Show a command's examples (the docstring's last paragraph) after its options."""
    text = inspect.cleandoc(cmd.help or "")
    if EXAMPLES in text and cmd.epilog is None:
        text, _, examples = text.partition(EXAMPLES)
        cmd.help = text.rstrip()
        cmd.epilog = EXAMPLES + examples


class DvfsCommand(click.Command):
    """A dvfs command: no argument or option value may be empty, unless it is FreeText."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        examples_last(self)
        for p in self.params:
            if isinstance(p.type, (click.types.StringParamType, click.Path)) and not isinstance(
                p.type, FreeText
            ):
                p.type = NotEmpty(p.type)


# `dvfs --help` lists commands by what they are for, as `git help` does; a command
# not named here is listed under "Other commands".
SECTIONS = {
    "Start and track": ["init", "add", "rm", "mv", "status", "commit", "check-ignore"],
    "Undo and move around": ["restore", "checkout", "switch", "branch", "tag"],
    "Look at versions": ["log", "show", "diff", "ls", "cat", "ui"],
    "Share": ["remote", "push", "fetch", "pull", "clone", "install"],
    "Mount": ["mount", "umount", "mounts", "snapshot"],
    "Pipelines": [
        "run",
        "repro",
        "stage",
        "dag",
        "lineage",
        "params",
        "metrics",
        "compare",
        "exp",
    ],
    "Maintain": ["fsck", "cache", "completion"],
}


class DvfsGroup(click.Group):
    """The dvfs command groups: their commands are DvfsCommands, their groups DvfsGroups.

    Their help lists each command with its whole first sentence (click cuts it to
    the terminal's width), the root's in sections.
    """

    command_class = DvfsCommand
    group_class = type

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        examples_last(self)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries, wrapped rather than cut."""
        shown = {}
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                shown[name] = cmd.get_short_help_str(limit=1 << 16)
        width = max(map(len, shown), default=0)  # one column for every section
        rows = {name: (name.ljust(width), text) for name, text in shown.items()}
        sections = SECTIONS if ctx.parent is None else {}
        for title, names in sections.items():
            section = [rows.pop(n) for n in names if n in rows]
            if section:
                with formatter.section(title):
                    formatter.write_dl(section)
        if rows:
            with formatter.section("Other commands" if sections else "Commands"):
                formatter.write_dl(list(rows.values()))


def human(n: int | None) -> str:
    """Bytes in binary units, as every bar and summary shows them (``-`` if unknown)."""
    return "-" if n is None else human_size(n)


def count(n: int, noun: str) -> str:
    """``1 file``, ``2 files``, ``12,345 files``."""
    return f"{n:,} {noun}{'s' if n != 1 else ''}"


def quoted(path: bytes | str | None) -> str:
    """A path or name for human output: quoted if it must be, ``.`` for the root."""
    return quote_name(path) if path else "."


def warn(msg: str) -> None:
    """Print a warning on stderr (on one line, whatever names it holds)."""
    click.echo(f"dvfs: warning: {escape_text(msg)}", err=True)


AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
YES = click.option(
    "--yes", "-y", is_flag=True,
    help="Check out even a version that expands to over 1,000 times its distinct data.",
)  # fmt: skip
OFFLINE = click.option(
    "--offline", is_flag=True,
    help="Use only the local store: refuse, naming the files, if data is only on a remote.",
)  # fmt: skip


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON (exact; see vfs.quoting.safe_json)."""
    click.echo(safe_json(data))


@contextlib.contextmanager
def workers() -> Iterator[Workers]:
    """Thread pools sized for this machine (DVFS_THREADS overrides)."""
    n = settings.threads()
    progress = TerminalProgress()
    w = Workers(n, progress)
    try:
        yield w
    finally:
        progress.done()
        w.close()


def repo_here() -> Repository:
    """The repository around the current directory."""
    return Repository.find()


@click.group(cls=DvfsGroup, context_settings=CONTEXT)
@click.version_option(package_name="dvfs", prog_name="dvfs")
def cli() -> None:
    """dvfs: version datasets and models like code, and mount every version.

    \b
    Examples:
      dvfs init && dvfs add data/ && dvfs commit -m "raw data"
      dvfs log
      dvfs diff v1 v2
      dvfs checkout v1
      dvfs COMMAND --help     # each command's options and examples
    """


# ------------------------------------------------------------------------ init / add / rm


@cli.command()
@click.argument("directory", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--branch", default=DEFAULT_BRANCH, show_default=True, help="First branch name.")
def init(directory: Path | None, branch: str) -> None:
    """Create a repository in DIRECTORY (default: the current directory).

    \b
    Examples:
      dvfs init
      dvfs init datasets/cats --branch trunk
    """
    repo = Repository.init(directory or Path.cwd(), branch)
    click.echo(f"Initialized empty dvfs repository in {quote_name(str(repo.dir))}")


@cli.command()
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
    repo = repo_here()
    with workers() as w:
        r = workflow.add(repo, paths, w, warn, force=force)
    keep_within_max_size(repo)
    if as_json:
        emit_json(dataclasses.asdict(r))
        return
    parts = [f"staged {r.files} file{'s' if r.files != 1 else ''}"]
    if r.hashed:
        parts.append(f"read {r.hashed} ({human(r.bytes_read)})")
    if r.removed:
        parts.append(f"{r.removed} deletion{'s' if r.removed != 1 else ''}")
    if r.ignored:
        parts.append(f"skipped {r.ignored} ignored path{'s' if r.ignored != 1 else ''}")
    click.echo(", ".join(parts))


@cli.command(name="check-ignore")
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
    from vfs.ignore import Ignores

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


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--cached", is_flag=True, help="Stop tracking but keep the working files.")
@click.option("--force", "-f", is_flag=True, help="Delete files even with unstaged changes.")
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
    repo = repo_here()
    with workers() as w:
        gone = workflow.rm(repo, paths, w, cached=cached, force=force)
    if as_json:
        emit_json({"untracked" if cached else "removed": [show(p) for p in gone]})
        return
    verb = "untracked" if cached else "removed"
    click.echo(f"{verb} {len(gone)} file{'s' if len(gone) != 1 else ''}")


@cli.command()
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


# ------------------------------------------------------------------------ commit

PARAM = click.option(
    "--param", "params", multiple=True, metavar="K=V",
    help="Record a parameter, typed as YAML 1.2: lr=3e-4 is a number, opt=yes text, "
    "sizes=[1, 2] a list.",
)  # fmt: skip
PARAMS_FILE = click.option(
    "--params-file", type=click.Path(path_type=Path),
    help="YAML 1.2 mapping of parameters to record (a file of at most 1 MiB).",
)  # fmt: skip


@cli.command()
@click.option("-m", "--message", required=True, type=FreeText(), help="What this version is.")
@PARAM
@PARAMS_FILE
@click.option("--tag", help="Also tag the new version.")
@click.option(
    "-a", "--all", "stage_all", is_flag=True,
    help="First stage every modified or deleted tracked file (not untracked ones).",
)  # fmt: skip
@AS_JSON
def commit(
    message: str, params: tuple[str, ...], params_file: Path | None, tag: str | None,
    stage_all: bool, as_json: bool,
) -> None:  # fmt: skip
    """Record the staged data as a new version.

    \b
    Examples:
      dvfs commit -m "raw data" --tag raw
      dvfs commit -am "cleaned"        # stage the changed tracked files first
      dvfs commit -m "run 7" --param lr=3e-4 --param "layers=[64, 64]"
      dvfs commit -m "tuned" --params-file params.yaml
    """
    version_params.message(message)
    recorded = version_params.collect(params, params_file)
    repo = repo_here()
    if stage_all:
        with workers() as w:
            workflow.stage_tracked_changes(repo, w, warn)
    r = workflow.commit(repo, message, recorded, tag, warn)
    keep_within_max_size(repo)
    if as_json:
        emit_json(
            {"version": f"v{r.number}", "id": r.oid.hex(), "branch": repo.refs.head().branch,
             "tag": tag, "files": r.files, "bytes": r.bytes}
        )  # fmt: skip
        return
    tagged = f" (tag {quote_name(tag)})" if tag else ""
    click.echo(
        f"v{r.number} {r.oid.hex()[:10]}{tagged}: {count(r.files, 'file')}, {human(r.bytes)} - "
        f"{escape_text(message)}"
    )


@cli.command()
@click.argument("mountpoint", metavar="MNT")
@click.option("-m", "--message", required=True, type=FreeText(), help="What this version is.")
@PARAM
@PARAMS_FILE
@click.option("--tag", help="Also tag the new version.")
@click.option("--branch", "new_branch", metavar="NEW", help="Record it on a new branch.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def snapshot(
    mountpoint: str, message: str, params: tuple[str, ...], params_file: Path | None,
    tag: str | None, new_branch: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Record the working tree of the mount at MNT as a new version.

    \b
    Examples:
      dvfs snapshot /mnt/data -m "run 7" --param lr=3e-4 --tag run7
      dvfs snapshot /mnt/data -m "an idea" --branch idea
    """
    from vfs import control

    version_params.message(message)
    recorded = version_params.collect(params, params_file)
    request = {
        "op": "snapshot", "message": message, "tag": tag, "params": recorded,
        "branch": new_branch,
    }  # fmt: skip
    got = control.call(mountpoint, request)
    control.check_answer_fields(got, "version", "id", "branch", "files", "bytes", "hashed")
    for w in got.get("warnings") or []:
        warn(str(w))
    if as_json:
        got.pop("ok", None)
        emit_json(got)
        return
    tagged = f" (tag {quote_name(tag)})" if tag else ""
    click.echo(
        f"{escape_text(str(got['version']))} {escape_text(str(got['id'])[:10])}{tagged} on "
        f"{quoted(got['branch'])}: {count(got['files'], 'file')}, {human(got['bytes'])} "
        f"({got['hashed']} hashed) - {escape_text(message)}"
    )
    skipped = got.get("skipped") or 0
    if skipped:
        named = got.get("skipped_paths") or []
        shown = ", ".join(quoted(p) for p in named)
        more = f" and {skipped - len(named)} more" if skipped > len(named) else ""
        warn(
            f"skipped {count(skipped, 'special file')} (FIFOs, sockets, devices: not "
            f"versionable, kept in MNT): {shown}{more}"
        )


# ------------------------------------------------------------------------ status / log / show


def change_line(c: Change) -> str:
    """One line describing a change; an empty directory ends in a slash."""
    tail = "/" if c.kind == "dir" else ""
    path = quoted(c.path) + tail
    if c.status == "renamed":
        return f"renamed:  {quoted(c.old_path)}{tail} -> {path}"
    if c.status == "modified":
        return f"modified: {path} ({human(c.old_size)} -> {human(c.new_size)})"
    if c.status == "added":
        return f"added:    {path} ({'empty directory' if tail else human(c.new_size)})"
    return f"removed:  {path} ({'empty directory' if tail else human(c.old_size)})"


def mount_status(mountpoint: str, as_json: bool) -> None:
    """`dvfs status MNT`: the working tree's changes, as its daemon records them."""
    from vfs import control

    got = control.call(mountpoint, {"op": "status"})
    control.check_answer_fields(got, "added", "modified", "deleted", "renamed", "branch")
    if as_json:
        got.pop("ok", None)
        emit_json(got)
        return
    base = got.get("base_version")
    over = f" over v{escape_text(str(base))}" if base else ""
    click.echo(f"Working tree of branch {quoted(got['branch'])}{over}")
    lines = [f"  renamed:  {quoted(a)} -> {quoted(b)}" for a, b in got["renamed"]]
    lines += [f"  added:    {quoted(p)}" for p in got["added"]]
    lines += [f"  modified: {quoted(p)}" for p in got["modified"]]
    lines += [f"  deleted:  {quoted(p)}" for p in got["deleted"]]
    if lines:
        click.echo("Changes (use `dvfs snapshot MNT -m MSG` to record them):")
        click.echo("\n".join(lines))
    else:
        click.echo("Nothing to snapshot, working tree clean.")
    odd = got.get("unversionable") or []
    if odd:
        click.echo("Not versionable (FIFOs, sockets, devices, reserved names; kept in MNT only):")
        click.echo("\n".join(f"  not versionable: {quoted(p)}" for p in odd))


@cli.command()
@click.argument("mountpoint", metavar="[MNT]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "-v", "--verbose", is_flag=True,
    help=f"List every file (past {GROUP_OVER} in a section, files are shown by directory).",
)  # fmt: skip
def status(mountpoint: str | None, as_json: bool, verbose: bool) -> None:
    """Show staged, modified, deleted and untracked files.

    With MNT, the pending changes of that mount's working tree instead.

    \b
    Examples:
      dvfs status
      dvfs status --json
      dvfs status /mnt/data      # a mount's working tree
    """
    if mountpoint is not None:
        mount_status(mountpoint, as_json)
        return
    repo = repo_here()
    with workers() as w:
        st = workflow.status(repo, w, warn)
    work = st.work
    if as_json:
        emit_json(
            {
                "branch": st.branch,
                "detached": st.detached,
                "head": st.head,
                "behind": st.behind,
                "staged": [browse.change_json(c) for c in st.staged],
                "modified": [show(p) for p in work.modified],
                "deleted": [show(p) for p in work.deleted],
                "not_checked_out": [show(p) for p in work.not_checked_out],
                "untracked": [show(p) for p in work.untracked],
                "unreadable": [show(p) for p in work.unreadable],
                "remotes": tracking(repo, st),
                "merging": merge_json(st.merge),
            }
        )
        if work.unreadable:
            sys.exit(1)
        return
    branch = quoted(st.branch)
    where = f"HEAD detached at {quoted(st.detached)}" if st.detached else f"On branch {branch}"
    click.echo(where + (f" ({quoted(st.head)})" if st.head and not st.detached else ""))
    if st.behind:
        click.echo(
            f"The branch moved past this working tree, which is at {quoted(st.behind)} (a "
            f"snapshot of a mount, or a pull elsewhere): run `dvfs switch {branch}` to update it."
        )
    if st.merge is not None:
        merge_lines(st.merge)
    remotes_seen = tracking(repo, st)
    for t in remotes_seen:
        click.echo(tracking_line(t, len(remotes_seen) > 1))
    if st.head is None:
        click.echo("No versions yet.")
    grouped = False
    if st.staged:
        click.echo("Staged for commit (use `dvfs restore --staged PATH` to unstage):")
        if verbose or len(st.staged) <= GROUP_OVER:
            for c in st.staged:
                click.echo("  " + change_line(c))
        else:
            grouped = True
            for state in ("added", "modified", "renamed", "removed"):
                changes = [c for c in st.staged if c.status == state]
                for g in by_directory([c.path for c in changes]):
                    click.echo("  " + group_line(state, g, [changes[i] for i in g.members]))
    if work.modified or work.deleted:
        click.echo("Not staged (use `dvfs add PATH` to stage, `dvfs restore PATH` to undo):")
        for state, paths in (("modified", work.modified), ("deleted", work.deleted)):
            groups = by_directory(paths, 1 << 62 if verbose else GROUP_OVER)
            grouped = grouped or len(groups) < len(paths)
            for g in groups:
                click.echo(f"  {state + ':':<9} {group_name(g)}")
    if work.untracked:
        click.echo("Untracked files in tracked directories (use `dvfs add PATH`):")
        groups = by_directory(work.untracked, 1 << 62 if verbose else GROUP_OVER)
        grouped = grouped or len(groups) < len(work.untracked)
        for g in groups:
            click.echo(f"  {group_name(g)}")
    if work.not_checked_out:
        n = len(work.not_checked_out)
        of = f" of {quoted(st.head)}" if st.head else ""
        click.echo(
            f"{count(n, 'file')}{of} not checked out; `dvfs pull PATH` or "
            "`dvfs checkout HEAD PATH` brings them"
        )
    if grouped:
        click.echo("(long lists are shown by directory: `dvfs status -v` lists every file)")
    if work.unreadable:  # each was named in a warning
        n = len(work.unreadable)
        click.echo(f"{n} tracked file{'s' if n != 1 else ''} could not be read: state unknown.")
        sys.exit(1)
    if not (st.staged or work.modified or work.deleted or work.untracked):
        if work.not_checked_out:
            click.echo("Nothing to commit; the files checked out are clean.")
        else:
            click.echo("Nothing to commit, working tree clean.")


def merge_json(m: merging.MergeState | None) -> dict[str, Any] | None:
    """A merge in progress as ``status --json`` shows it."""
    if m is None:
        return None

    def side(s: tuple[int, int] | None) -> dict[str, int] | None:
        return None if s is None else {"size": s[0], "mtime_ns": s[1]}

    return {
        "rev": m.rev, "theirs": m.theirs.hex(), "base": m.base.hex(), "message": m.message,
        "conflicts": [{"path": show(c.path), "ours": side(c.ours), "theirs": side(c.theirs),
                       "resolved": c.resolved} for c in m.conflicts],
    }  # fmt: skip


def merge_lines(m: merging.MergeState) -> None:
    """What ``status`` says of a merge in progress."""
    left = [c for c in m.conflicts if not c.resolved]
    click.echo(
        f"Merging {quoted(m.rev)} ({m.theirs.hex()[:10]}): "
        + (
            f"{count(len(left), 'conflict')} to settle (`dvfs restore --ours|--theirs PATH`), "
            if left
            else "every conflict settled: "
        )
        + "then `dvfs commit -m MSG`; `dvfs merge --abort` gives up"
    )
    for c in left:
        click.echo(
            f"  conflict: {quoted(c.path)}  ours: {conflict_side(c.ours)}   "
            f"theirs: {conflict_side(c.theirs)}"
        )


def tracking(repo: Repository, st: workflow.Status) -> list[dict[str, Any]]:
    """How the current branch stands against each remote's copy of it, as last seen
    (by a push, pull or fetch: no remote is asked)."""
    if st.detached or st.head is None:
        return []
    hist = repo.history
    mine = hist.head_id()
    out = []
    for name in repo.refs.names("remotes"):
        remote_name, _, branch = name.partition("/")
        theirs = repo.refs.get(f"refs/remotes/{name}")
        if branch != st.branch or theirs is None or mine is None:
            continue
        ahead, behind = hist.ahead_behind(mine, theirs)
        out.append({"remote": remote_name, "name": name, "ahead": ahead, "behind": behind})
    return out


def tracking_line(t: dict[str, Any], several: bool) -> str:
    """One line of ``dvfs status`` about a remote's copy of the branch (``several``:
    other remotes have one too, so the hint names this remote)."""
    name, ahead, behind = quoted(t["name"]), t["ahead"], t["behind"]
    remote = f" --remote {quoted(t['remote'])}" if several else ""

    if ahead and behind:
        return (
            f"Diverged from {name}: {count(ahead, 'version')} here and "
            f"{count(behind, 'version')} there that the other lacks."
        )
    if ahead:
        them = "them" if ahead > 1 else "it"
        return (
            f"Ahead of {name} by {count(ahead, 'version')}: `dvfs push{remote}` publishes {them}."
        )
    if behind:
        them = "them" if behind > 1 else "it"
        return f"Behind {name} by {count(behind, 'version')}: `dvfs pull{remote}` brings {them}."
    return f"Up to date with {name}."


def group_name(g: Group) -> str:
    """A path, or a directory with how many of the listed paths it holds."""
    if not g.is_dir:
        return quoted(g.path)
    return f"{quoted(g.path)}/ ({g.count:,} files)"


def group_line(state: str, g: Group, changes: list[Change]) -> str:
    """A staged change, or a directory of changes of one kind with their count and size."""
    if not g.is_dir:
        return change_line(changes[0])
    before = sum(c.old_size or 0 for c in changes)
    after = sum(c.new_size or 0 for c in changes)
    size = human(before) if state == "removed" else human(after)
    return f"{state + ':':<9} {quoted(g.path)}/ ({g.count:,} files, {size})"


DASHDASH = "dvfs.after_dashdash"  # ctx.meta: how many arguments followed `--`
REVISION_LIKE = re.compile(r"^(v\d+|HEAD|.*~\d*)$")  # never taken for a path by mistake


class RevsThenPaths(DvfsCommand):
    """A command taking ``[REV...] [--] [PATH...]``: it notes how many arguments followed
    ``--`` (click drops the ``--`` itself), which are paths whatever they look like."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse as usual, after counting what follows ``--``."""
        if "--" in args:
            ctx.meta[DASHDASH] = len(args) - args.index("--") - 1
        return super().parse_args(ctx, args)


def revs_and_paths(
    repo: Repository, ctx: click.Context, args: tuple[str, ...], most: int
) -> tuple[list[str], list[bytes]]:
    """Split ``[REV...] [--] [PATH...]`` into at most ``most`` revisions and paths.

    After ``--`` every argument is a path. Before it, leading arguments that name a
    revision are revisions and the rest paths, which must exist in the working tree
    or in HEAD, as git asks: a name that is both is ambiguous, and one that is
    neither is an error rather than an empty answer.
    """
    after = ctx.meta.get(DASHDASH)
    head = repo.history.head_id()
    at_most = "one revision" if most == 1 else "two revisions"
    if after is not None:
        cut = len(args) - after
        revs, rest = list(args[:cut]), list(args[cut:])
        if len(revs) > most:
            raise UsageError(f"give at most {at_most} before --")
        for r in revs:
            repo.history.resolve(r)  # RevisionNotFound, with close names
        return revs, [repo.rel(a) for a in rest]
    revs = []
    rest = list(args)
    while rest and len(revs) < most and is_revision(repo, rest[0]):
        if os.path.lexists(rest[0]):
            raise UsageError(
                f"{quoted(rest[0])} is both a revision and a path: write `-- {rest[0]}` "
                f"for the path, or `{rest[0]} --` for the revision"
            )
        revs.append(rest.pop(0))
    paths = []
    for a in rest:
        rel = repo.rel(a)
        known = os.path.lexists(a) or (
            head is not None and repo.history.lookup(repo.history.version(head).tree, rel)
        )
        if not known and is_revision(repo, a):
            raise UsageError(f"{ctx.command_path} takes at most {at_most}")
        if not known:
            if REVISION_LIKE.match(a):  # v9, HEAD~5: meant as a revision, whatever else
                repo.history.resolve(a)  # RevisionNotFound, saying what exists
            close = close_revisions(repo, a)
            like = f"; did you mean: {', '.join(close)}" if close else ""
            raise UsageError(
                f"{quoted(a)} is neither a revision nor a path of the working tree or HEAD"
                f"{like} (a path that existed in an older version: write `-- {a}`)"
            )
        paths.append(rel)
    return revs, paths


def close_revisions(repo: Repository, arg: str) -> list[str]:
    """Names close to ``arg`` that do name versions (a mistyped tag or branch)."""
    try:
        repo.history.resolve(arg)
    except RevisionNotFound as exc:
        return exc.candidates
    except DvfsError:
        pass
    return []


def is_revision(repo: Repository, arg: str) -> bool:
    """True if ``arg`` names a version."""
    try:
        repo.history.resolve(arg)
    except DvfsError:
        return False
    return True


def param_text(value: Any) -> str:
    """A parameter's value on one line: text as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return escape_text(value)
    return escape_text(json.dumps(value, ensure_ascii=False, separators=(", ", ": ")))


@cli.command(cls=RevsThenPaths)
@click.argument("targets", nargs=-1, metavar="[REV] [[--] PATH...]")
@click.option("-n", "limit", type=click.IntRange(min=1), help="Show at most N versions.")
@click.option("--params", "with_params", is_flag=True, help="Show each version's parameters.")
@click.option("--oneline", is_flag=True, help="One line a version: number, id, names, message.")
@click.option("--graph", is_flag=True, help="Every version below, merges drawn as a graph.")
@AS_JSON
@click.option("--remote", "remote_name", metavar="NAME", help="List the versions on a remote.")
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
      dvfs log --graph --oneline       # merges and the lines they join
    """
    from vfs import graph as drawing
    from vfs.remote import config as remotes
    from vfs.remote import transfer as sync

    repo = repo_here()
    revs, paths = revs_and_paths(repo, ctx, targets, 1)
    rev = revs[0] if revs else None
    if remote_name is not None:
        rev = rev or sync.log_remote(repo, remotes.get_remote(repo, remote_name))
    if rev is None and repo.history.head_id() is None:
        raise UsageError("no versions yet: run `dvfs add PATH` and `dvfs commit -m MSG`")
    hist = repo.history
    lines: list[drawing.GraphLine] = []
    if graph:
        if paths:
            raise UsageError("--graph draws whole versions: give no PATH")
        start = hist.head_id() if rev is None else hist.resolve(rev)
        assert start is not None
        lines = list(drawing.draw(drawing.topo_order(hist, start, limit)))
        decor = browse.decorations(repo)
        rows = []
        for ln in lines:
            if ln.oid is not None and ln.version is not None:
                rows.append(browse.log_row(hist, decor, ln.oid, ln.version))
    else:
        rows = browse.log(repo, rev, limit, paths)
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
        refs = [f"tag: {quoted(t)}" for t in r["tags"]] + [quoted(b) for b in r["branches"]]
        names = f"  ({', '.join(refs)})" if refs else ""
        if oneline:
            first = r["message"].split("\n", 1)[0]
            click.echo(f"{r['version']:>5}  {r['id'][:10]}{names}  {escape_text(first)}")
            continue
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
        refs = [f"tag: {quoted(t)}" for t in r["tags"]] + [quoted(b) for b in r["branches"]]
        names = f"  ({', '.join(refs)})" if refs else ""
        merge = "  merge" if len(r["parents"]) > 1 else ""
        pad = ln.prefix.ljust(width)
        if oneline:
            first = r["message"].split("\n", 1)[0]
            click.echo(f"{pad}{r['version']}  {r['id'][:10]}{names}{merge}  {escape_text(first)}")
            continue
        bar = "".join(c if c in "|" else " " for c in ln.prefix.replace("*", "|")).ljust(width)
        click.echo(
            f"{pad}{r['version']}  {r['id'][:10]}  {r['created']}  {escape_text(r['author'])}"
            f"{names}{merge}"
        )
        click.echo(f"{bar}{escape_text(r['message'])}")
        if with_params:
            for k, v in sorted(flat_params(r["parameters"])):
                click.echo(f"{bar}{quote_name(k)} = {param_text(v)}")


@cli.command(name="show")
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


@cli.command(name="ls")
@click.argument("target", default="HEAD", metavar="REV[:DIR]")
@click.option(
    "-r", "--recursive", is_flag=True, help="Every file and link below DIR, by its path."
)  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def ls_cmd(target: str, recursive: bool, as_json: bool) -> None:
    """List a directory of a version without checking it out.

    \b
    Examples:
      dvfs ls
      dvfs ls v2:data/images --json
      dvfs ls -r v2:data          # every file below data/
    """
    rows = browse.ls(repo_here(), target, recursive)
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
    for name, e in rows:
        suffix = "/" if e.kind == Kind.DIR else f" -> {quoted(e.target)}" if e.target else ""
        click.echo(
            f"{mode_string(e)}  {human(e.size):>10}  {browse.iso_time(e.mtime_ns)}  "
            f"{quoted(name)}{suffix}"
        )


@cli.command()
@click.argument("target", metavar="REV:PATH")
@OFFLINE
def cat(target: str, offline: bool) -> None:
    """Write a file of a version to standard output.

    Data not in the local store is downloaded from the default remote first.

    \b
    Examples:
      dvfs cat v1:data/labels.csv > labels-v1.csv
    """
    from vfs import ondemand

    repo = repo_here()
    rev = target.partition(":")[0] or "HEAD"

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


@cli.command(name="diff", cls=RevsThenPaths)
@click.argument("targets", nargs=-1, metavar="[REV [REV]] [[--] PATH...]")
@click.option("--stat", "stat_only", is_flag=True, help="Only counts and sizes.")
@click.option("--name-only", is_flag=True, help="Only the changed paths, one a line.")
@click.option(
    "--rows", is_flag=True,
    help="Compare the rows of one CSV, TSV, JSON Lines or Parquet file (needs dvfs[tables]).",
)  # fmt: skip
@click.option("--key", metavar="COL[,COL]", help="With --rows: match rows by these columns.")
@click.option(
    "--limit", type=click.IntRange(min=0), metavar="N",
    help=f"With --rows: show at most N rows (default {ROWS_SHOWN}).",
)  # fmt: skip
@AS_JSON
@click.pass_context
def diff_cmd(
    ctx: click.Context, targets: tuple[str, ...], stat_only: bool, name_only: bool,
    rows: bool, key: str | None, limit: int | None, as_json: bool,
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
    repo = repo_here()
    revs, paths = revs_and_paths(repo, ctx, targets, 2)
    if rows or key is not None or limit is not None:
        row_diff(repo, revs, paths, rows, key, limit, stat_only or name_only, as_json)
        return
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
    repo: Repository, revs: list[str], paths: list[bytes], rows: bool, key: str | None,
    limit: int | None, other_format: bool, as_json: bool,
) -> None:  # fmt: skip
    """``dvfs diff --rows``: the rows of one data file (see vfs.tables.rowdiff)."""
    if not rows:
        raise UsageError("--key and --limit go with --rows")
    if other_format:
        raise UsageError("--rows shows rows: leave out --stat and --name-only")
    if len(paths) != 1:
        raise UsageError("--rows compares one file: give its PATH after the revisions")
    columns = [c.strip() for c in key.split(",")] if key is not None else []
    if any(not c for c in columns):
        raise UsageError(f"--key {quote_name(key or '')} holds an empty column name")
    try:  # the engine is an optional dependency: only --rows loads it
        from vfs.tables import render, rowdiff
    except ModuleNotFoundError as exc:
        if exc.name not in ("duckdb", "_duckdb"):
            raise
        raise UsageError(
            "--rows needs the table engine: pip install 'dvfs[tables]' (DuckDB)"
        ) from None
    fetch_versions_of(repo, revs or ["HEAD"], paths[0], "diff --rows")
    result = rowdiff.diff_path(
        repo.history, repo.store, repo.chunker, repo.root, repo.dir, revs, paths[0],
        columns, ROWS_SHOWN if limit is None else limit, settings.threads(),
    )  # fmt: skip
    if as_json:
        emit_json(render.as_json(result))
        return
    for line in render.lines(result):
        click.echo(line)


def fetch_versions_of(repo: Repository, revs: list[str], path: bytes, command: str) -> None:
    """Download the chunks of ``path`` at ``revs`` that the local store lacks (vfs.ondemand)."""
    from vfs import ondemand

    hist = repo.history
    items = []
    for rev in revs:
        e = hist.lookup(hist.version(hist.resolve(rev)).tree, path)
        if e is not None and e.kind == Kind.FILE:
            items.append((path, e))
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


# ------------------------------------------------------------------------ checkout & refs


def checkout_json(r: checkout.CheckoutReport) -> dict[str, Any]:
    """What a checkout did, as JSON (``failed``: each file not restored, and why)."""
    return {
        "version": r.label, "branch": r.attached, "paths": r.paths, "written": r.written,
        "deleted": r.deleted, "unchanged": r.unchanged,
        "failed": {show(p): str(exc) for p, exc in sorted(r.failed.items())},
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
    if r.paths:
        failed = f", {len(r.failed)} not restored" if r.failed else ""
        click.echo(f"restored from {quoted(r.label)}: {r.written} written, {r.deleted} deleted, "
                   f"{r.unchanged} unchanged{failed}{fetched}")  # fmt: skip
    else:
        where = f"on branch {quoted(r.attached)}" if r.attached else "detached"
        failed = f", {len(r.failed)} not checked out" if r.failed else ""
        click.echo(
            f"{quoted(r.label)} ({where}): {r.written} written, {r.deleted} deleted, "
            f"{r.unchanged} unchanged{failed}{fetched}"
        )
    checkout_failures(r, listed=True)


def checkout_failures(r: checkout.CheckoutReport, *, listed: bool = False) -> None:
    """If some files could not be restored: say which, why and how they were left, on
    stderr, and exit 1 (``listed``: the reasons of several were printed already)."""
    if not r.failed:
        return
    failed = sorted(r.failed.items())
    if len(failed) == 1:
        p, exc = failed[0]
        left = "left as it was" if r.paths else "not checked out"
        fail(
            f"could not restore {quoted(p)}: {exc}; it is {left}, the other files were "
            f"restored{'' if r.paths else '; `dvfs checkout HEAD PATH` tries again'}"
        )
    names = ", ".join(quoted(p) for p, _ in failed[:10])
    more = f" and {len(failed) - 10} more" if len(failed) > 10 else ""
    if not listed:
        for p, exc in failed:
            click.echo(f"  {quoted(p)}: {escape_text(str(exc))}", err=True)
    left = "left as they were" if r.paths else "not checked out"
    fail(
        f"could not restore {len(failed)} files ({names}{more}): they are {left}, the other "
        f"files were restored{'' if r.paths else '; `dvfs checkout HEAD PATH` tries again'}"
    )


@cli.command(name="checkout")
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
def checkout_cmd(
    rev: str | None, paths: tuple[str, ...], force: bool, from_lock: bool,
    new_branch: str | None, offline: bool, yes: bool, as_json: bool,
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
    if from_lock and (rev or paths or new_branch):
        raise UsageError("--lock takes no revision, paths or -b")
    if new_branch is not None and paths:
        raise UsageError("-b starts a branch of the whole working tree: give no PATHs")
    repo = repo_here()
    with workers() as w:
        if new_branch is not None:
            r = checkout.switch_create(
                repo, new_branch, rev, w, force=force, warn=warn, offline=offline, yes=yes
            )
        else:
            r = checkout.checkout(
                repo, rev, paths, w, force=force, from_lock=from_lock, warn=warn,
                offline=offline, yes=yes,
            )  # fmt: skip
    report_checkout(r, as_json)


@cli.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--staged", "-S", is_flag=True, help="Unstage: set the index back to HEAD.")
@click.option(
    "--worktree", "-W", is_flag=True,
    help="Restore the working files (the default; with --staged, both).",
)  # fmt: skip
@click.option("--source", "-s", metavar="REV", help="Take the content from REV instead.")
@click.option("--ours", "side", flag_value="ours", help="In a merge: this branch's side.")
@click.option("--theirs", "side", flag_value="theirs", help="In a merge: the merged side.")
@OFFLINE
@YES
@AS_JSON
def restore(
    paths: tuple[str, ...], staged: bool, worktree: bool, source: str | None, side: str | None,
    offline: bool, yes: bool, as_json: bool,
) -> None:  # fmt: skip
    """Undo changes to PATHS: discard working changes, or unstage with --staged.

    Without --staged, the working files take the staged content again (or REV's with
    --source): changes not staged are discarded, deleted files come back. With
    --staged, the index takes HEAD's content (or REV's) and the files stay as they
    are. Nothing is deleted, and an untracked file is never overwritten.

    During a merge, --ours, --theirs and --source stage the content too and mark the
    conflicts at PATHS settled (a side that deleted a path deletes the file).

    \b
    Examples:
      dvfs restore data/labels.csv          # discard the changes not staged
      dvfs restore --staged data/           # unstage, keep the files
      dvfs restore --source v1 data/x.csv   # the file as it was at v1
      dvfs restore --theirs data/x.csv      # in a merge: settle a conflict
    """
    from vfs import merge

    repo = repo_here()
    if side is not None and source is not None:
        raise UsageError("--source and --ours/--theirs both choose the content: give one")
    in_merge = merging.live(repo.dir, repo.refs) is not None
    settling = side is not None or (in_merge and source is not None and not staged)
    with workers() as w:
        if settling:
            r = merge.resolve(
                repo, paths, w, source=side or str(source), warn=warn, offline=offline, yes=yes
            )
        else:
            r = checkout.restore(
                repo, paths, w, staged=staged, worktree=worktree or None, source=source,
                offline=offline, yes=yes, warn=warn,
            )  # fmt: skip
    if as_json:
        emit_json(
            {"source": r.source, "unstaged": r.unstaged, "written": r.written,
             "unchanged": r.unchanged, "fetched": r.fetched,
             "failed": {show(p): str(exc) for p, exc in sorted(r.failed.items())}}
        )  # fmt: skip
    else:
        done = []
        if staged:
            done.append(f"unstaged {count(r.unstaged, 'path')}")
        if not staged or worktree:
            done.append(f"{r.written} written, {r.unchanged} unchanged")
        if settling:
            done.append("staged, conflicts there settled")
        fetched = f"; {count(r.fetched, 'chunk')} downloaded first" if r.fetched else ""
        source = r.source if r.source == "the index" else quoted(r.source)
        click.echo(f"restored from {source}: {', '.join(done)}{fetched}")
    if r.failed:
        report = checkout.CheckoutReport(r.source, None, paths=True, failed=r.failed)
        checkout_failures(report)


@cli.command()
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
    repo = repo_here()
    with workers() as w:
        if create:
            r = checkout.switch_create(
                repo, name, rev, w, force=force, warn=warn, offline=offline, yes=yes
            )
        else:
            r = checkout.switch(repo, name, w, force=force, warn=warn, offline=offline, yes=yes)
    report_checkout(r, as_json)


def conflict_side(s: tuple[int, int] | None) -> str:
    """One side of a merge conflict: its size and time, or that it deleted the path."""
    return "deleted" if s is None else f"{human(s[0])} {browse.iso_time(s[1])}"


@cli.command(name="merge")
@click.argument("rev", required=False)
@click.option("--ours", "side", flag_value="ours", help="Settle every conflict with this side.")
@click.option("--theirs", "side", flag_value="theirs", help="Settle every conflict with REV's.")
@click.option("-m", "--message", type=FreeText(), help="Message of the merge version.")
@click.option("--abort", is_flag=True, help="Give up the merge in progress.")
@OFFLINE
@AS_JSON
def merge_cmd(
    rev: str | None, side: str | None, message: str | None, abort: bool, offline: bool,
    as_json: bool,
) -> None:  # fmt: skip
    """Merge REV into the current branch (a version with two parents).

    Paths changed on one side only are combined; a path both sides changed is a
    conflict: the merge stops, listing them, until each is settled with `dvfs
    restore --ours PATH` or `--theirs PATH` (or edited and `dvfs add`ed); then `dvfs
    commit` records the merge. --ours/--theirs here settle every conflict at once.

    \b
    Examples:
      dvfs merge origin/main
      dvfs merge exp/lr-sweep --theirs -m "take the sweep's outputs"
      dvfs merge --abort
    """
    from vfs import merge

    repo = repo_here()
    if abort:
        if rev or side or message:
            raise UsageError("--abort takes no revision, side or message")
        with workers() as w:
            r = merge.abort(repo, w, warn)
        if as_json:
            emit_json({"aborted": True, "checkout": checkout_json(r)})
        else:
            click.echo(f"merge aborted: {r.written} written, {r.deleted} deleted")
        return
    if rev is None:
        raise UsageError("say what to merge: dvfs merge REV (or --abort)")
    if message is not None:
        version_params.message(message)
    with workers() as w:
        m = merge.merge(repo, rev, w, side=side, message=message, warn=warn, offline=offline)
    if as_json:
        emit_json(
            {"outcome": m.outcome, "version": m.label, "id": m.oid.hex(), "written": m.written,
             "deleted": m.deleted, "fetched": m.fetched,
             "conflicts": [{"path": show(c.path), "ours": merge.describe_side(c.ours),
                            "theirs": merge.describe_side(c.theirs)} for c in m.conflicts],
             "not_checked_out": [show(p) for p in m.not_checked_out]}
        )  # fmt: skip
        if m.conflicts:
            sys.exit(1)
        return
    if m.outcome == "up to date":
        click.echo(f"already up to date: {quoted(rev)} is in {quoted(m.label)}")
        return
    done = f"{m.written} written, {m.deleted} deleted"
    if m.not_checked_out:
        done += f", {count(len(m.not_checked_out), 'file')} not checked out (data unavailable)"
    if m.outcome == "fast-forward":
        click.echo(f"fast-forward to {quoted(m.label)} {m.oid.hex()[:10]}: {done}")
        return
    if m.outcome == "merged":
        click.echo(f"{quoted(m.label)} {m.oid.hex()[:10]}: merged {quoted(rev)}; {done}")
        return
    n = len(m.conflicts)
    click.echo(f"merging {quoted(rev)}: {done}; {count(n, 'conflict')} (changed on both sides):")
    width = min(60, max(len(quoted(c.path)) for c in m.conflicts))
    for c in m.conflicts:
        click.echo(
            f"  {quoted(c.path):<{width}}  ours: {conflict_side(c.ours)}   "
            f"theirs: {conflict_side(c.theirs)}"
        )
    click.echo(
        "Settle each with `dvfs restore --ours PATH` or `dvfs restore --theirs PATH` (or edit "
        "it and `dvfs add PATH`), then `dvfs commit -m MSG`; `dvfs merge --abort` gives up."
    )
    sys.exit(1)


def name_and_rev(names: tuple[str, ...], what: str) -> tuple[str | None, str | None]:
    """``[NAME [REV]]`` of ``dvfs branch``/``dvfs tag`` without --delete."""
    if len(names) > 2:
        raise UsageError(
            f"give one {what} name and at most one revision (to delete several, use -d)"
        )
    return (names[0] if names else None), (names[1] if len(names) > 1 else None)


@cli.command()
@click.argument("names", nargs=-1, metavar="[NAME [REV]]")
@click.option("-d", "--delete", is_flag=True, help="Delete the branches named.")
@AS_JSON
def branch(names: tuple[str, ...], delete: bool, as_json: bool) -> None:
    """List branches, or create NAME at REV (default HEAD).

    With -d, delete the branches named (not the current one).

    \b
    Examples:
      dvfs branch
      dvfs branch fix v1
      dvfs branch -d fix old
    """
    repo = repo_here()
    if delete:
        if not names:
            raise UsageError("name the branches to delete: dvfs branch -d NAME...")
        missing_refs(repo, "heads", names, "branch")
        for n in names:
            was = checkout.delete_branch(repo, n)
            if not as_json:
                label = quoted(repo.history.label(was))
                click.echo(f"deleted branch {quoted(n)} (was {label} {was.hex()[:10]})")
        if as_json:
            emit_json({"deleted": list(names)})
        return
    name, rev = name_and_rev(names, "branch")
    if name:
        oid = checkout.create_branch(repo, name, rev)
        if as_json:
            emit_json(ref_json(repo, name, oid))
            return
        click.echo(f"branch {quoted(name)} at {quoted(repo.history.label(oid))} {oid.hex()[:10]}")
        return
    head = repo.refs.head()
    branches = repo.refs.branches()
    current = head.branch if head.detached is None else None
    if as_json:
        emit_json(
            [{**ref_json(repo, n, oid), "current": n == current} for n, oid in branches.items()]
        )
        return
    if head.branch not in branches:
        click.echo(f"* {quoted(head.branch)} (no versions yet)")
    for n, oid in branches.items():
        mark = "*" if n == current else " "
        click.echo(f"{mark} {quoted(n)}  {quoted(repo.history.label(oid))}  {oid.hex()[:10]}")


def missing_refs(repo: Repository, kind: str, names: tuple[str, ...], what: str) -> None:
    """Refuse a deletion naming a branch or tag that does not exist, before any is deleted."""
    missing = [n for n in names if repo.refs.get(f"refs/{kind}/{n}") is None]
    if missing:
        listed = ", ".join(quoted(n) for n in missing)
        raise UsageError(f"no {what} named {listed}: nothing was deleted")


def ref_json(repo: Repository, name: str, oid: bytes) -> dict[str, Any]:
    """A branch or tag as JSON: its name, and the number and id of its version."""
    return {"name": name, "version": repo.history.label(oid), "id": oid.hex()}


@cli.command()
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
        missing_refs(repo, "tags", names, "tag")
        for n in names:
            checkout.delete_tag(repo, n)
            if not as_json:
                click.echo(f"deleted tag {quoted(n)}")
        if as_json:
            emit_json({"deleted": list(names)})
        return
    name, rev = name_and_rev(names, "tag")
    if name:
        oid = checkout.create_tag(repo, name, rev)
        if as_json:
            emit_json(ref_json(repo, name, oid))
            return
        click.echo(f"tag {quoted(name)} -> {quoted(repo.history.label(oid))} {oid.hex()[:10]}")
        return
    tags = repo.refs.tags()
    if as_json:
        emit_json([ref_json(repo, n, oid) for n, oid in tags.items()])
        return
    for n, oid in tags.items():
        click.echo(f"{quoted(n)}  {quoted(repo.history.label(oid))}  {oid.hex()[:10]}")


@cli.command(name="fsck")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def fsck_cmd(as_json: bool) -> None:
    """Verify every reachable object's hash and every reference.

    \b
    Examples:
      dvfs fsck
      dvfs fsck --json
    """
    from vfs.fsck import fsck as run_fsck

    repo = repo_here()
    with workers() as w:
        r = run_fsck(repo, w)
    if as_json:
        emit_json(
            {"clean": r.clean, "versions": r.versions, "trees": r.trees, "chunks": r.chunks,
             "bytes": r.bytes, "temporaries_removed": r.temporaries, "remote_only": r.remote_only,
             "problems": r.problems}
        )  # fmt: skip
    else:
        for p in r.problems:
            click.echo(f"problem: {escape_text(p)}")
        if r.temporaries:
            click.echo(f"removed {r.temporaries} temporary file(s) of an interrupted write")
        if r.remote_only:
            click.echo(
                f"{r.remote_only} chunk(s) are not stored here (never downloaded, or pruned): "
                "a remote's index, as last read, lists them; commands fetch them when needed"
            )
        state = "no problems" if r.clean else f"{len(r.problems)} problem(s)"
        click.echo(
            f"checked {r.versions} versions, {r.trees} trees, {r.chunks} chunks "
            f"({human(r.bytes)}): {state}"
        )
    if not r.clean:
        sys.exit(1)


@cli.command(name="gc")
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be freed; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--remote", "remote_name", metavar="NAME", help="Collect a remote's packs instead.")
@click.option(
    "--grace",
    metavar="DURATION",
    help="With --remote: how long a pack stays condemned before it is deleted "
    "(default 24h; 0 deletes at once, unsafe while anyone pushes).",
)
def gc_cmd(dry_run: bool, as_json: bool, remote_name: str | None, grace: str | None) -> None:
    """Free the space of objects no branch, tag, mount or run cache entry reaches.

    Packs with under half of their bytes alive are rewritten. Waits for the
    repository lock; safe to interrupt at any moment.

    With --remote NAME: packs of the remote that no remote branch or tag reaches are
    condemned, and deleted by a later run once --grace has passed (safe while others
    push; see docs/architecture.md, "Remote gc").

    \b
    Examples:
      dvfs gc --dry-run
      dvfs gc --json
      dvfs gc --remote origin
      dvfs gc --remote origin --grace 0
    """
    from vfs.gc import gc as run_gc

    if remote_name is not None:
        _remote_gc(remote_name, grace, dry_run, as_json)
        return
    if grace is not None:
        raise UsageError("--grace applies to a remote gc: add --remote NAME")
    r = run_gc(repo_here(), dry_run=dry_run)
    if as_json:
        emit_json(r.as_json())
        sys.exit(1 if r.problems else 0)
    for p in r.problems:
        click.echo(f"problem: {escape_text(p)}")
    verb = "would free" if dry_run else "freed"
    click.echo(
        f"{verb} {human(r.freed)} ({human(r.bytes_before)} -> {human(r.bytes_after)}): "
        f"{r.dead_objects} unreachable object(s); {r.packs_deleted} of {r.packs_before} "
        f"pack(s) {'to delete' if dry_run else 'deleted'}, {r.packs_rewritten} of them "
        f"rewritten ({human(r.bytes_copied)} of live objects copied); kept {r.live_objects} "
        f"object(s) reachable from {r.roots} root(s)"
    )
    if r.problems:
        sys.exit(1)


def parse_duration(text: str, what: str) -> float:
    """Seconds in ``90s``, ``30m``, ``24h``, ``7d`` or a plain number of seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if m is None:
        raise UsageError(f"{what} {text!r} is not a duration: write e.g. 90s, 30m, 24h or 7d")
    return float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]


def _remote_gc(name: str, grace_text: str | None, dry_run: bool, as_json: bool) -> None:
    """``dvfs gc --remote NAME``."""
    from vfs.remote.config import get_remote
    from vfs.remote.gc import DEFAULT_GRACE, gc_remote
    from vfs.remote.manifests import PUSH_WINDOW

    grace = DEFAULT_GRACE if grace_text is None else parse_duration(grace_text, "--grace")
    repo = repo_here()
    spec = get_remote(repo, name)
    if grace < PUSH_WINDOW:
        warn(
            f"--grace {grace_text} is shorter than the longest a push may take "
            f"({PUSH_WINDOW / 3600:.0f} h): a push running now may lose packs it relies on; "
            "use it only when nobody pushes"
        )
    r = gc_remote(repo, spec, grace=grace, dry_run=dry_run)
    if as_json:
        emit_json(r.as_json())
        return
    for w in r.warnings:
        warn(w)
    verb, condemn = ("would delete", "would condemn") if dry_run else ("deleted", "condemned")
    click.echo(
        f"{name}: {verb} {r.deleted_packs} pack(s) ({human(r.deleted_bytes)}); "
        f"{condemn} {r.condemned_packs} pack(s) ({human(r.condemned_bytes)}), "
        f"{r.pending_packs} condemned earlier and not due yet, {r.pardoned_packs} pardoned; "
        f"kept {r.packs - r.dead_packs} of {r.packs} pack(s), {r.live_objects} object(s) "
        f"reachable from {r.refs} ref(s)"
    )
    if r.condemned_packs and grace > 0 and not dry_run:
        click.echo(
            f"condemned packs are deleted by a `dvfs gc --remote {name}` run "
            f"{grace_text or '24h'} from now or later"
        )


@cli.group(name="store")
def store_group() -> None:
    """The local store as a cache of the default remote: drop data it holds.

    \b
    Examples:
      dvfs store prune --dry-run
      dvfs store prune --keep-last 3 --keep-tags
    """


@store_group.command(name="prune")
@click.option(
    "--keep-last",
    type=int,
    default=1,
    show_default=True,
    metavar="N",
    help="Keep the data of the last N versions of the current branch (at least 1).",
)
@click.option("--keep-tags", is_flag=True, help="Keep the data of every tagged version.")
@click.option("--keep-branches", is_flag=True, help="Keep the data of every branch's tip.")
@click.option(
    "--pushed-only",
    is_flag=True,
    help="Drop only the data of versions on the remote's history.",
)
@click.option(
    "--remote", "remote_name", metavar="NAME", help="The remote (default: the default one)."
)
@click.option("--dry-run", "-n", is_flag=True, help="Say what would be dropped; change nothing.")
@AS_JSON
def store_prune(
    keep_last: int,
    keep_tags: bool,
    keep_branches: bool,
    pushed_only: bool,
    remote_name: str | None,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Drop the file data of old versions that the remote holds (checked now).

    Versions stay in `log` and `show`; their files come back when a command needs
    them (checkout, restore, cat) or through a mount.

    \b
    Examples:
      dvfs store prune
      dvfs store prune --keep-last 3 --keep-tags --dry-run
    """  # fmt: skip
    from vfs.remote.config import get_remote
    from vfs.remote.prune import prune

    repo = repo_here()
    spec = get_remote(repo, remote_name)
    r = prune(
        repo, spec, keep_last=keep_last, keep_tags=keep_tags, keep_branches=keep_branches,
        pushed_only=pushed_only, dry_run=dry_run,
    )  # fmt: skip
    if as_json:
        emit_json(r.as_json())
        return
    verb = "would drop" if dry_run else "dropped"
    click.echo(
        f"{verb} {r.chunks} chunk(s) ({human(r.bytes)}) of {r.pruned_versions} version(s) "
        f"that {spec.name} holds; kept the data of {r.kept_versions} version(s); store "
        f"{human(r.gc.bytes_before)} -> {human(r.gc.bytes_after)}"
    )


_STORE_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", re.IGNORECASE)
CONFIG_KEYS = ("store.max-size",)


def parse_store_size(text: str, what: str) -> int:
    """Bytes in ``50G``, ``512M``, ``1.5T`` or a plain number."""
    m = _STORE_SIZE.fullmatch(text)
    if m is None:
        raise UsageError(f"{what} {text!r} is not a size: write e.g. 50G, 512M or 1T")
    unit = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}[m.group(2).upper()]
    return int(float(m.group(1)) * unit)


def keep_within_max_size(repo: Repository) -> None:
    """With ``store.max-size`` set: drop the least recently used data the remote holds."""
    text = repo.config().get("store.max-size")
    if not isinstance(text, str):
        return
    from vfs.remote.prune import MAX_SIZE_KEY, shrink  # only then: add and commit stay lean

    try:
        r = shrink(repo, parse_store_size(text, MAX_SIZE_KEY))
    except DvfsError as exc:
        warn(f"{MAX_SIZE_KEY} {text}: nothing was pruned: {exc}")
        return
    if r is not None:
        click.echo(
            f"{MAX_SIZE_KEY} {text}: dropped the data of {count(r.pruned_versions, 'version')} "
            f"that {r.remote} holds ({human(r.gc.freed)} freed, store now "
            f"{human(r.gc.bytes_after)})",
            err=True,
        )


@cli.command(name="config")
@click.argument("key", metavar="KEY")
@click.argument("value", required=False)
@click.option("--unset", is_flag=True, help="Remove the setting.")
def config_cmd(key: str, value: str | None, unset: bool) -> None:
    """Show or set a setting of this clone (kept in .dvfs/config).

    store.max-size SIZE: after add, commit and pull, the data of the least recently
    used versions that the default remote holds is dropped until the store fits
    (data the remote lacks is never dropped; `dvfs store prune` does it by hand).

    \b
    Examples:
      dvfs config store.max-size 50G
      dvfs config store.max-size
      dvfs config --unset store.max-size
    """
    if key not in CONFIG_KEYS:
        raise UsageError(f"unknown setting {key!r} (known: {', '.join(CONFIG_KEYS)})")
    repo = repo_here()
    if value is None and not unset:
        got = repo.config().get(key)
        if got is None:
            raise UsageError(f"{key} is not set")
        click.echo(got)
        return
    if value is not None and unset:
        raise UsageError("give a value or --unset, not both")
    if value is not None:
        parse_store_size(value, key)
    with repo.locked():
        cfg = repo.config()
        if unset:
            cfg.pop(key, None)
        else:
            cfg[key] = (value or "").strip()
        repo.save_config(cfg)
    if not unset:
        keep_within_max_size(repo)


@cli.command(name="du")
@click.argument("revs", nargs=-1, metavar="[REV...]")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def du_cmd(revs: tuple[str, ...], as_json: bool) -> None:
    """Sizes of versions: logical, after dedup, stored; what each alone costs.

    Without REV: every version a branch, tag or remote-tracking branch reaches.
    "unique" is what dropping that version alone would free (`dvfs gc`).

    \b
    Examples:
      dvfs du
      dvfs du v3 v4 --json
    """
    from vfs.du import usage

    u = usage(repo_here(), list(revs))
    if as_json:
        emit_json(u.as_json())
        return
    click.echo(f"{count(len(u.versions), 'version')}")
    click.echo(f"  logical   {human(u.logical):>10}  every file of every version")
    click.echo(f"  distinct  {human(u.distinct):>10}  after dedup ({u.dedup_ratio:.2f}x)")
    click.echo(
        f"  stored    {human(u.stored):>10}  in the local store "
        f"(compression {u.compression_ratio:.2f}x)"
    )
    if u.not_local:
        click.echo(f"  not local {human(u.not_local):>10}  held by a remote only")
    click.echo("unique to each version (what dropping it alone would free):")
    for v in u.versions:
        click.echo(f"  {v.label:>6} {v.oid.hex()[:10]}  {human(v.unique):>10}")
    if u.biggest:
        click.echo("biggest files:")
        for size, path, label in u.biggest:
            click.echo(f"  {human(size):>10}  {quoted(path)}  ({label})")


def remote_chain(repo: Repository, name: str) -> tuple[Any, Path]:
    """A remote's backend and this clone's record of where its audit chain ended."""
    from vfs.remote import config as remotes

    spec = remotes.get_remote(repo, name)
    return remotes.connect(spec, 16), repo.dir / "remotes" / spec.name / audit.REMOTE_HEAD


@cli.group(name="audit", invoke_without_command=True)
@click.option("--since", metavar="DATE", help="Only entries from DATE on (YYYY-MM-DD[THH:MM]).")
@click.option("--remote", "remote_name", metavar="NAME", help="The remote's chain (its pushes).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def audit_cmd(
    ctx: click.Context, since: str | None, remote_name: str | None, as_json: bool
) -> None:
    """Who changed which branch or tag, when, with what command.

    Every change of a local ref is an entry of .dvfs/audit.log, each holding the
    hash of the one before; `dvfs audit verify` checks the chain. A remote keeps
    its own chain of the pushes it received (--remote NAME).

    \b
    Examples:
      dvfs audit --since 2026-01-01
      dvfs audit verify
      dvfs audit --remote origin
      dvfs audit verify --remote origin
    """
    if ctx.invoked_subcommand is not None:
        if since is not None or remote_name is not None:
            raise UsageError(
                "give --since and --remote after `verify`: dvfs audit verify --remote NAME"
            )
        return
    repo = repo_here()
    start = 0
    if since is not None:
        try:
            when = datetime.datetime.fromisoformat(since)
        except ValueError:
            raise UsageError(f"--since {since!r} is not a date: write YYYY-MM-DD") from None
        if when.tzinfo is None:
            when = when.astimezone()
        start = int(when.timestamp() * 1e9)
    if remote_name is not None:
        backend, _ = remote_chain(repo, remote_name)
        found = audit.remote_entries(backend)
    else:
        found = list(audit.entries(repo.dir))
    picked = [e for e in found if e.time_ns >= start]
    if as_json:
        emit_json([e.as_json() for e in picked])
        return
    for e in picked:
        at = datetime.datetime.fromtimestamp(e.time_ns / 1e9).astimezone().isoformat("T", "seconds")
        ids = f"{(e.old or '-')[:10]} -> {(e.new or '-')[:10]}" if e.ref != "HEAD" else ""
        what = " ".join(x for x in (e.ref, ids, e.note) if x)
        click.echo(
            f"{e.seq:>5} {at} {escape_text(e.user)}@{escape_text(e.host)} {e.op}: "
            f"{escape_text(what)}  ({escape_text(shlex.join(e.cmd))})"
        )


@audit_cmd.command(name="verify")
@click.option("--remote", "remote_name", metavar="NAME", help="Check the remote's chain.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit_verify(remote_name: str | None, as_json: bool) -> None:
    """Check that no audit entry was edited, deleted, inserted or reordered.

    \b
    Examples:
      dvfs audit verify
      dvfs audit verify --remote origin
    """
    repo = repo_here()
    if remote_name is not None:
        backend, head = remote_chain(repo, remote_name)
        v = audit.verify_remote(backend, head)
    else:
        v = audit.verify(repo.dir)
    if as_json:
        emit_json(v.as_json())
    else:
        for p in v.problems:
            click.echo(f"problem: {escape_text(p)}")
        if v.torn:
            click.echo("the last line is incomplete (a crash while it was written); ignored")
        state = "intact" if not v.problems else "NOT intact"
        click.echo(f"{v.entries:,} entr{'y' if v.entries == 1 else 'ies'}: {state}")
    if v.problems:
        sys.exit(1)


# ------------------------------------------------------------------------ remotes

JOBS = click.option(
    "--jobs", "-j", type=click.IntRange(min=1, max=64), default=8, show_default=True,
    help="Parallel transfers.",
)  # fmt: skip
REMOTE = click.option(
    "--remote", "remote_name", metavar="NAME", help="Remote (default: the default)."
)


def transfer_line(verb: str, t: sync.Transfer) -> str:
    """The closing line of a transfer: objects, packs, bytes and requests."""
    packs = f" in {t.packs} pack{'s' if t.packs != 1 else ''}" if t.packs else ""
    line = f"{verb} {t.objects} objects{packs} ({human(t.bytes)}), {t.requests} requests"
    if t.kept_packs:
        s = "s" if t.kept_packs != 1 else ""
        line += (
            f"; {t.kept_packs} pack{s} ({human(t.kept_bytes)}) already on the remote, "
            "not sent again"
        )
    return line


@contextlib.contextmanager
def resumable(command: str) -> Iterator[None]:
    """When a remote stops answering, also say that nothing was lost and what to run."""
    try:
        yield
    except RemoteUnreachable as exc:
        then = "to resume" if command != "clone" else "(the partial clone was removed)"
        raise RemoteUnreachable(
            f"{exc}; nothing was lost; run `dvfs {command}` again {then}"
        ) from None


@cli.group(invoke_without_command=True)
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
    "--shared/--local", "shared", default=None,
    help="In dvfs.toml, committed to git (default inside a git work tree), or in this clone only.",
)  # fmt: skip


def in_shared(repo: Repository, shared: bool | None) -> bool:
    """Whether a remote setting goes to dvfs.toml: as asked, else inside a git work tree."""
    from vfs.remote import config as remotes

    return remotes.shared_by_default(repo) if shared is None else shared


def place_note(shared: bool) -> str:
    """Where a setting was written, for the line that reports it."""
    if shared:
        return " (in dvfs.toml: commit it, and clones of this git repository have it)"
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

    repo = repo_here()
    share = in_shared(repo, shared)
    remotes.add_remote(
        repo, remotes.RemoteSpec(name, url, endpoint_url, region, profile), make_default,
        shared=share,
    )  # fmt: skip
    click.echo(f"added remote {quoted(name)} -> {quoted(url)}{place_note(share)}")


@remote.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def remote_list(as_json: bool) -> None:
    """List remotes (the default one is marked *).

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
    "--shared/--local", "shared", default=None,
    help="Only from dvfs.toml, or only from this clone (default: from both).",
)  # fmt: skip
def remote_remove(name: str, shared: bool | None) -> None:
    """Forget remote NAME (nothing on the remote is touched).

    \b
    Examples:
      dvfs remote remove backup
      dvfs remote remove origin --local    # drop this clone's override of origin
    """
    from vfs.remote import config as remotes

    only = None if shared is None else "shared" if shared else "local"
    places = remotes.remove_remote(repo_here(), name, only=only)
    click.echo(f"removed remote {quoted(name)} from {' and '.join(places)}")


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
    click.echo(f"default remote: {quoted(name)}{place_note(share)}")


@cli.command()
@click.argument("branches", nargs=-1)
@REMOTE
@click.option("--all", "all_branches", is_flag=True, help="Push every branch.")
@click.option("--tags", is_flag=True, help="Push tags too.")
@JOBS
@AS_JSON
def push(
    branches: tuple[str, ...], remote_name: str | None, all_branches: bool, tags: bool, jobs: int,
    as_json: bool,
) -> None:  # fmt: skip
    """Send versions of BRANCHES (default: the current one) to a remote.

    \b
    Examples:
      dvfs push
      dvfs push --all --tags
      dvfs push --remote backup main
    """
    from vfs.remote import config as remotes
    from vfs.remote import transfer as sync

    repo = repo_here()
    spec = remotes.get_remote(repo, remote_name)
    large_buffers_to_os()
    with workers() as w, resumable("push"):
        t = sync.push(
            repo, spec, list(branches), w, all_branches=all_branches, tags=tags, jobs=jobs
        )
    if as_json:
        emit_json(dataclasses.asdict(t))
        return
    for note in t.notes:
        click.echo(escape_text(note))
    click.echo(transfer_line("pushed", t))


@cli.command()
@REMOTE
@JOBS
@AS_JSON
def fetch(remote_name: str | None, jobs: int, as_json: bool) -> None:
    """Fetch refs, versions and trees from a remote (no file data).

    \b
    Examples:
      dvfs fetch
      dvfs fetch --remote backup
    """
    from vfs.remote import config as remotes
    from vfs.remote import transfer as sync

    repo = repo_here()
    spec = remotes.get_remote(repo, remote_name)
    with resumable("fetch"):
        got = sync.fetch(repo, spec, jobs)
    for w in got.transfer.warnings:
        warn(w)
    if as_json:
        heads = [ref_json(repo, f"{spec.name}/{b}", oid) for b, oid in sorted(got.heads.items())]
        emit_json({"branches": heads, "transfer": dataclasses.asdict(got.transfer)})
        return
    for b, oid in sorted(got.heads.items()):
        label = quoted(repo.history.label(oid))
        click.echo(f"{quoted(f'{spec.name}/{b}')}  {label}  {oid.hex()[:10]}")
    for note in got.transfer.notes:
        click.echo(escape_text(note))
    click.echo(transfer_line("fetched", got.transfer))


@cli.command()
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
    from vfs import gitclone
    from vfs.remote import config as remotes
    from vfs.remote import transfer as sync

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
             "conflicts": r.conflicts}
        )  # fmt: skip
        if r.checkout is not None:
            checkout_failures(r.checkout)
        if r.conflicts:
            sys.exit(1)
        return
    if r.message:
        click.echo(escape_text(r.message))
    click.echo(transfer_line("downloaded", r.transfer))
    if r.checkout is not None:
        report_checkout(r.checkout)
    if r.conflicts:
        sys.exit(1)


def first_pull(
    root: Path, remote_name: str | None, force: bool, yes: bool, jobs: int, as_json: bool
) -> None:
    """`dvfs pull` in a git clone with no data yet: make the store, restore dvfs.lock's version."""
    from vfs import gitclone

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


@cli.command(name="clone")
@click.argument("url", type=Token())
@click.argument("directory", required=False, type=click.Path(path_type=Path))
@click.option("--rev", help="Check out this revision instead of the main branch.")
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
    from vfs.remote import transfer as sync

    target = directory or Path(sync.default_dir(url))
    with workers() as w, resumable("clone"):
        repo, t, branch = sync.clone(
            url, target, w, rev=rev, no_checkout=no_checkout, endpoint_url=endpoint_url,
            jobs=jobs, yes=yes,
        )  # fmt: skip
    for line in t.warnings:
        warn(line)
    if as_json:
        emit_json({"path": str(repo.root), "branch": branch, "transfer": dataclasses.asdict(t)})
        return
    click.echo(f"cloned {quoted(url)} into {quoted(str(repo.root))} (branch {quoted(branch)})")
    click.echo(transfer_line("downloaded", t))


# ------------------------------------------------------------------------ git hooks


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


@cli.command()
@click.option("--uninstall", is_flag=True, help="Remove what `dvfs install` added.")
def install(uninstall: bool) -> None:
    """Add git hooks, so that the data follows `git checkout`, `git pull` and `git push`.

    post-checkout and post-merge run `dvfs checkout --lock` when dvfs.lock changed;
    pre-push offers `dvfs push` when a commit being pushed names a version the dvfs
    remote lacks (it asks on the terminal; without one it only says so). Hooks that
    were there are kept and run first.

    \b
    Examples:
      dvfs install
      dvfs install --uninstall
    """
    import shutil

    from vfs import githooks

    root = dvfs_root_here()
    if uninstall:
        done = githooks.uninstall(root)
        if done.removed or done.written:
            changed = hook_list(done.removed + done.written)
            click.echo(
                f"removed dvfs from the git hooks {changed} in {quoted(str(done.hooks_dir))}"
            )
        else:
            click.echo("no git hook of this repository to remove")
        if done.restored:
            click.echo(f"put back the hooks it had chained: {hook_list(done.restored)}")
        for name in done.foreign:
            warn(f"{name} was left alone: dvfs did not write it")
        return
    done = githooks.install(root)
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


@cli.command(name="hook", hidden=True)
@click.argument("name", type=click.Choice(["post-checkout", "post-merge", "pre-push"]))
@click.option("--in", "dirs", multiple=True, help="A dvfs repository, from the work tree's top.")
@click.argument("args", nargs=-1)
@click.pass_context
def hook_cmd(ctx: click.Context, name: str, dirs: tuple[str, ...], args: tuple[str, ...]) -> None:
    """Run the dvfs part of a git hook (the hooks `dvfs install` writes call it).

    \b
    Examples:
      dvfs hook post-checkout --in . -- OLD-COMMIT NEW-COMMIT 1
    """
    from vfs import githooks

    top = Path(git_output(Path.cwd(), "rev-parse", "--show-toplevel") or Path.cwd())
    if name == "pre-push":
        lines = sys.stdin.read(HOOK_INPUT_LIMIT).splitlines()
        pre_push(ctx, top, dirs, githooks.pushed_commits(lines))
        return
    if name == "post-checkout":
        if len(args) != 3 or args[2] != "1":  # a checkout of files, not of a commit
            return
        old, new = args[0], args[1]
    else:
        old, new = "ORIG_HEAD", "HEAD"
    for d in dirs:
        root = top / d
        if not (root / ".dvfs").is_dir():
            if (root / "dvfs.lock").exists():
                where = "this clone" if d == "." else quoted(d)
                click.echo(f"dvfs: {where} has no data yet: run `dvfs pull` to get it", err=True)
            continue
        if githooks.lock_changed(top, d, old, new):
            where = "" if d == "." else f" of {quoted(d)}"
            click.echo(f"dvfs: dvfs.lock{where} changed: restoring the data it names", err=True)
            with workers() as w:
                done = githooks.follow_lock(Repository(root), w)
            if done.transfer is not None:
                click.echo(transfer_line(f"downloaded from {done.fetched_from}:", done.transfer))
            report_checkout(done.checkout)


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


def pre_push(ctx: click.Context, top: Path, dirs: tuple[str, ...], commits: list[str]) -> None:
    """Offer `dvfs push` for the versions the pushed commits' dvfs.lock name, if missing."""
    from vfs import githooks
    from vfs.remote import config as remotes

    missing = []
    for d in dirs:
        root = top / d
        if not (root / ".dvfs").is_dir():
            continue
        repo = Repository(root)
        for commit in commits:
            ptr = githooks.lock_at(top, d, commit)
            if ptr is None:
                continue
            try:
                spec = remotes.get_remote(repo, None)
            except UsageError as exc:
                warn(f"{d}: {exc}: teammates cannot get the data dvfs.lock names")
                break
            if githooks.needs_push(repo, spec.name, ptr):
                missing.append((d, root, spec.name, ptr))
    if not missing:
        return
    names = "; ".join(
        f"{quoted(p.branch)} v{p.number}{'' if d == '.' else f' of {quoted(d)}'} on {quoted(s)}"
        for d, _, s, p in missing
    )
    what = f"the commits being pushed name data the dvfs remote does not have: {names}"
    answer = ask_on_terminal(f"dvfs: {escape_text(what)}. Push it now? [Y/n] ")
    if not answer:
        warn(f"{what}; pushed without it: teammates' `dvfs pull` fails until `dvfs push`")
        return
    for _, root, remote_name, ptr in missing:
        os.chdir(root)
        ctx.invoke(push, branches=(ptr.branch,), remote_name=remote_name)


# ------------------------------------------------------------------------ mounts


@cli.command(name="mount")
@click.argument("args", nargs=-1, required=True, metavar="[SOURCE] MNT")
@click.option("--branch", help="Branch shown at MNT (default: the current one, or main).")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Where fetched chunks and metadata go (default: under ~/.cache/dvfs).",
)  # fmt: skip
@click.option(
    "--cache-size", default=DEFAULT_CACHE_SIZE, show_default=True,
    help="Most disk the chunk cache may use (K, M, G, T).",
)  # fmt: skip
@click.option("--foreground", is_flag=True, help="Run the daemon here, logging to stderr.")
@click.option(
    "--refresh", type=Seconds(min=0.1), metavar="SECONDS",
    help="Look for new versions this often (versions pushed by others appear).",
)  # fmt: skip
@click.option(
    "--timeout", type=Seconds(min=0.1), default=30.0, show_default=True,
    metavar="SECONDS", help="Fail a read (EIO) whose data does not arrive in this time.",
)  # fmt: skip
@click.option("--endpoint-url", type=Token(), help="S3 endpoint (MinIO, SeaweedFS, Ceph, R2...).")
@click.option("--allow-other", is_flag=True, help="Let other users read the mount.")
@click.option("--debug", is_flag=True, help="Log every fetch.")
@click.option(
    "--writable/--read-only", default=None,
    help="MNT as a writable working tree (default: writable for a repository, "
    "read-only for a URL).",
)  # fmt: skip
@click.option(
    "--overlay", type=click.Choice(["auto", "kernel", "daemon"]), default="auto",
    show_default=True,
    help="What makes MNT writable: the kernel's overlayfs (fast, root only) or the "
    "daemon's own; auto takes the kernel's where it can.",
)  # fmt: skip
@AS_JSON
def mount_cmd(
    args: tuple[str, ...], branch: str | None, cache_dir: Path | None, cache_size: str,
    foreground: bool, refresh: float | None, timeout: float, endpoint_url: str | None,
    allow_other: bool, debug: bool, writable: bool | None, overlay: str, as_json: bool,
) -> None:  # fmt: skip
    """Mount every version of SOURCE at MNT, and its branch as a working tree.

    SOURCE is a repository (default: the current one) or a remote URL
    (s3://bucket/prefix, file:///path). MNT shows the branch head as a writable
    working tree (`dvfs snapshot MNT` records it); MNT/.versions holds v1..vN,
    latest, tags/, branches/ and ids/, read-only.

    \b
    Examples:
      dvfs mount . /mnt/data
      dvfs mount s3://bucket/cats /mnt/cats --cache-size 50G --refresh 60
    """
    from vfs import launch, mounts

    if len(args) > 2:
        raise UsageError("give at most two arguments: [SOURCE] MNT")
    source = launch.resolve_source(args[0] if len(args) == 2 else None)
    mountpoint = mounts.check_mountpoint(args[-1])
    mounts.check_fuse()
    settings.check_all()  # the daemon inherits the environment: fail here, not there
    size = launch.parse_size(cache_size)
    # locked here and handed to the daemon: two mounts never take the same cache
    chosen, lock_fd = launch.claim_cache(source, cache_dir.absolute() if cache_dir else None)
    daemon_args = launch.DaemonArgs(
        source, mountpoint, chosen, size, branch, refresh, timeout, endpoint_url,
        allow_other, debug, source.kind == "repository" if writable is None else writable,
        lock_fd, overlay,
    )  # fmt: skip
    if foreground:
        sys.stdout.flush()
        sys.stderr.flush()
        os.set_inheritable(lock_fd, True)
        os.execv(sys.executable, daemon_args.argv())
    pid, shown = launch.start(daemon_args)
    if as_json:
        emit_json(
            {"mountpoint": str(mountpoint), "source": source.location, "branch": shown,
             "pid": pid, "log": str(daemon_args.log_path)}
        )  # fmt: skip
        return
    click.echo(
        f"mounted {quoted(source.location)} (branch {quoted(shown)}) at "
        f"{quoted(str(mountpoint))}; daemon pid {pid}, log {quoted(str(daemon_args.log_path))}"
    )


@cli.command(name="umount")
@click.argument("mountpoint", metavar="MNT")
@click.option("--force", "-f", is_flag=True, help="Unmount even while files are open.")
def umount_cmd(mountpoint: str, force: bool) -> None:
    """Unmount MNT and stop its daemon (also clears a mount whose daemon died).

    \b
    Examples:
      dvfs umount /mnt/data
      dvfs umount --force /mnt/data
    """
    from vfs import mounts

    mounts.unmount(mountpoint, force=force)
    click.echo(f"unmounted {quoted(os.path.abspath(mountpoint))}")


@cli.command(name="mounts")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def mounts_cmd(as_json: bool) -> None:
    """List active dvfs mounts: source, branch, cache use and daemon pid.

    \b
    Examples:
      dvfs mounts
      dvfs mounts --json
    """
    from vfs import mounts

    rows = mounts.statuses()
    if as_json:
        emit_json([r.as_json() for r in rows])
        return
    if not rows:
        click.echo("no dvfs mounts")
    for r in rows:
        cache = f"{human(r.cache_used)} of {human(r.cache_size)}" if r.cache_size else "-"
        mnt = quoted(str(r.mountpoint))
        line = (
            f"{mnt}  {quoted(r.source)}  branch {quoted(r.branch)}  cache {cache}  "
            f"pid {r.pid or '-'}"
        )
        if r.state == "dead":
            line += f"  (daemon died: run `dvfs umount {mnt}`)"
        elif r.state == "unrecorded":
            line += "  (not started here: no record)"
        click.echo(line)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell code that completes dvfs commands, options, revisions and paths.

    Load it from your shell's start-up file (bash 4.4 or later).

    \b
    Examples:
      eval "$(dvfs completion bash)"      # in ~/.bashrc
      eval "$(dvfs completion zsh)"       # in ~/.zshrc
      dvfs completion fish > ~/.config/fish/completions/dvfs.fish
    """
    from click.shell_completion import get_completion_class

    complete = get_completion_class(shell)
    assert complete is not None  # the choices are the shells click knows
    click.echo(complete(cli, {}, "dvfs", COMPLETE_VAR).source())


@cli.group(name="cache")
def cache_group() -> None:
    """Free the disk that mounts' caches use (never a working tree's changes).

    \b
    Examples:
      dvfs cache clean
      dvfs cache clean --all
    """


@cache_group.command(name="clean")
@click.option("--all", "everything", is_flag=True, help="Also remove metadata and logs.")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Clean this cache directory (default: every one under ~/.cache/dvfs).",
)  # fmt: skip
@AS_JSON
def cache_clean(everything: bool, cache_dir: Path | None, as_json: bool) -> None:
    """Delete the cached data of mounts that are not running.

    Cached chunks are deleted (they are fetched again when read); with --all, the
    versions and trees fetched for URL mounts and the logs too. A cache that a
    running mount uses is left alone: unmount it first. Working trees of mounts are
    never in a cache, and are never touched.

    \b
    Examples:
      dvfs cache clean
      dvfs cache clean --all --cache-dir /scratch/dvfs-cache
    """
    from vfs import launch

    dirs = [cache_dir.absolute()] if cache_dir else launch.cache_dirs()
    done = launch.clean_caches(dirs, everything)
    if as_json:
        emit_json(
            {
                "freed": done.freed,
                "cleaned": [str(d) for d in done.cleaned],
                "in_use": [{"cache_dir": str(d), "by": who} for d, who in done.in_use],
                "kept_work": [str(d) for d in done.kept_work],
            }
        )
        return
    for d, who in done.in_use:
        warn(f"{quoted(str(d))} is in use by {who}: unmount it to clean it")
    for d in done.kept_work:
        warn(f"{quoted(str(d))} holds a working tree of an older dvfs: kept (mount it to move it)")
    n = len(done.cleaned)
    click.echo(f"freed {human(done.freed)} in {n} cache director{'y' if n == 1 else 'ies'}")


# ------------------------------------------------------------------------ pipelines


def pipeline_here() -> tuple[Any, Any, Any]:
    """(workspace, pipeline, graph) of the working tree around the current directory."""
    from vfs.pipeline import workspace

    ws = workspace.find()
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


def run_pipeline(ws: Any, dag: Any, opts: Any, as_json: bool) -> None:
    """Reproduce with ``opts`` and report: stage lines, failures, then one summary line."""
    from vfs.pipeline import repro

    output = stage_output(as_json)
    with workers() as w, ws.exclusive():
        job = repro.Repro(ws, dag, w, say_to(output, as_json), warn, output)
        out = job.run(opts)
    if as_json:
        emit_json(out.as_json())
    elif opts.dry_run:
        for name, action, why in out.would:
            verb = {"run": "Would run", "restore": "Would restore"}.get(action, "May run")
            what = " from the run cache" if action == "restore" else ""
            click.echo(f"{verb} stage {name}{what}: {escape_text('; '.join(why))}")
        for name in out.fresh:
            click.echo(f"Stage {name} is fresh")
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
                    f"; `dvfs snapshot {quoted(str(ws.mount))} -m MSG` records them with their "
                    "lineage"
                )
        click.echo(summary)
    for name, reason in out.skipped if not as_json and not opts.dry_run else ():
        click.echo(f"dvfs: stage {name} not run: {escape_text(reason)}", err=True)
    if out.interrupted:
        done = len(out.ran) + len(out.restored)
        raise repro.Interrupted(
            f"interrupted: {count(done, 'stage')} finished and recorded; the stage that was "
            "running recorded nothing and its previous outputs are back"
        )
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


@cli.command(name="run", context_settings=CMD_SETTINGS)
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

    from vfs.codec import STAGE_NAME
    from vfs.gitlink import PIPELINE_FILE
    from vfs.pipeline import graph, repro, spec, workspace

    if not "".join(command).strip():
        raise UsageError("the command is empty: give what to run after --")
    ws = workspace.find()
    p = spec.read(ws.read(PIPELINE_FILE.encode(), spec.MAX_FILE))
    if name in p.stages and not force:
        raise UsageError(
            f"stage {name} already exists ({PIPELINE_FILE}:{p.stages[name].line}): "
            "use --force to replace it"
        )
    if not STAGE_NAME.fullmatch(name):
        raise UsageError(
            f"{quote_name(name)} is not a stage name: a letter, digit or _, then at most 99 "
            "letters, digits, _, . or -"
        )
    here = os.path.relpath(os.path.abspath("."), ws.root)
    if here.startswith(".."):
        raise UsageError("run dvfs run inside the working tree")
    wdir = b"" if here == "." else os.fsencode(here)

    def rel(arg: str, what: str = "path") -> bytes:
        return spec.repo_path(os.path.normpath(arg), wdir, 0, what, what)

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
    text = spec.with_stage(p, stage)
    new = spec.parse(text)  # the file as it will be: valid, and its graph too
    dag = graph.build(new)
    ws.write(PIPELINE_FILE.encode(), text.encode())
    click.echo(f"{'Replaced' if name in p.stages else 'Added'} stage {name} in {PIPELINE_FILE}")
    if no_exec:
        return
    run_pipeline(ws, dag, repro.Options(targets=[name], single=True), False)


@cli.command()
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
    from vfs.pipeline import repro as repro_mod

    if downstream and not stages:
        raise UsageError("--downstream needs a STAGE: dvfs repro STAGE --downstream")
    ws, p, dag = pipeline_here()
    if not p.stages:
        raise UsageError("no stages: write them in dvfs.yaml, or add one with `dvfs run`")
    opts = repro_mod.Options(list(stages), dry_run, force, downstream, jobs, keep_going)
    run_pipeline(ws, dag, opts, as_json)


@cli.group(name="stage")
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
    _, p, dag = pipeline_here()
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
            from vfs.pipeline.repro import param_name

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
    from vfs.gitlink import PIPELINE_FILE, RUNS_FILE
    from vfs.pipeline import runs as runs_file
    from vfs.pipeline import spec

    ws, p, _ = pipeline_here()
    missing = [n for n in names if n not in p.stages]
    if missing:
        raise UsageError(f"no stage {missing[0]} in {PIPELINE_FILE}: nothing was removed")
    with ws.exclusive():
        text = p.text
        for n in names:
            text = spec.without_stage(spec.parse(text), n)
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


@cli.command()
@click.argument("stage", required=False)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "dot", "mermaid", "json"]), default="text",
    show_default=True, help="How to draw it.",
)  # fmt: skip
@click.option("--outs", is_flag=True, help="Draw outputs and what is made from them.")
def dag(stage: str | None, fmt: str, outs: bool) -> None:
    """Draw the pipeline: each stage after the stages it needs (STAGE: it and those).

    \b
    Examples:
      dvfs dag
      dvfs dag train --outs
      dvfs dag --format dot | dot -Tsvg > pipeline.svg
      dvfs dag --format mermaid
    """
    from vfs.pipeline import graph

    g = pipeline_here()[2]
    if stage is not None and stage not in g.stages:
        raise UsageError(f"no stage {stage} in dvfs.yaml: `dvfs stage list` shows them")
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
        for line in graph.to_text(nodes, edges):
            click.echo(escape_text(line))
        if not nodes:
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


def path_arg(ws: Any, arg: str) -> bytes:
    """A path argument as a path of the working tree (lexical: it may not exist now)."""
    absolute = os.path.abspath(arg)
    rel = os.path.relpath(absolute, ws.root)
    if rel == "." or rel.startswith(".."):
        raise UsageError(f"{arg} is not a path inside the working tree {ws.root}")
    return os.fsencode(rel)


@cli.command()
@click.argument("path")
@click.argument("rev", required=False)
@click.option("--downstream", is_flag=True, help="What is made from PATH instead.")
@AS_JSON
def lineage(path: str, rev: str | None, downstream: bool, as_json: bool) -> None:
    """How PATH of a version (default HEAD) was made: stages, commands and inputs.

    Each input is shown with its id as the run saw it and the version that
    introduced those bytes; inputs made by another stage are followed upstream.
    --downstream lists the stages that read PATH, and what reads their outputs.

    \b
    Examples:
      dvfs lineage models/model.pt
      dvfs lineage models/model.pt v7 --json
      dvfs lineage data/raw --downstream
    """
    import shlex

    from vfs.pipeline import lineage as lin
    from vfs.pipeline import workspace
    from vfs.pipeline.record import describe, iso_ns
    from vfs.pipeline.repro import param_name

    ws = workspace.find()
    hist = history_of(ws).history
    oid = hist.resolve(rev or "HEAD")
    v = hist.version(oid)
    rel = path_arg(ws, path)
    label = f"v{v.number}"
    since = lin.origin(hist, oid, rel)
    if downstream:
        found = lin.downstream(hist, oid, rel)
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
            click.echo(f"no stage of {label}'s pipeline reads {quoted(rel)}")
            return
        click.echo(f"{quoted(rel)} in {label} is read by:")
        for s, d, depth in found:
            outs = ", ".join(quoted(o) for o, _ in s.outs)
            click.echo(f"{'  ' * (depth + 1)}stage {s.name} (reads {quoted(d)}) -> {outs}")
        return
    steps = lin.upstream(hist, oid, rel)
    if as_json:
        emit_json({
            "path": os.fsdecode(rel), "version": label, "id": oid.hex(), "since": since,
            "stages": [
                {**describe(st.stage),
                 "made": [os.fsdecode(o) for o in st.outputs],
                 "input": [
                     {"path": os.fsdecode(i.path), "id": i.id.hex(), "since": i.since,
                      "in_version": i.now, "made_by": i.made_by}
                     for i in st.inputs
                 ]}
                for st in steps
            ],
        })  # fmt: skip
        return
    if since is None and not steps:
        raise UsageError(f"{quoted(rel)} is not in {label}")
    where = f" (since {since})" if since else ""
    if not steps:
        click.echo(
            f"{quoted(rel)} in {label}{where} was not made by a stage of its pipeline: it is data "
            "added as it is"
        )
        return
    click.echo(f"{quoted(rel)} in {label}{where}")
    for st in steps:
        s = st.stage
        cmd = escape_text(s.cmd if isinstance(s.cmd, str) else shlex.join(s.cmd))
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
            if i.since and not i.now:
                origin += f" ({label} holds other bytes)"
            by = f", made by stage {i.made_by}" if i.made_by else ""
            click.echo(f"  input {quoted(i.path)}  {i.id.hex()[:10]}  {origin}{by}")
        for f, k, val in s.params:
            click.echo(f"  param {quote_name(param_name(f, k, s.wdir))} = {param_text(val)}")


def _sides(revs: tuple[str, ...], repo: Any) -> tuple[Any, Any]:
    """(old, new) of a diff: each a version id, or None for the working tree."""
    if len(revs) > 2:
        raise UsageError("give at most two revisions")
    hist = repo.history
    old = hist.resolve(revs[0] if revs else "HEAD")
    new = hist.resolve(revs[1]) if len(revs) == 2 else None
    return old, new


def _side_label(repo: Any, oid: Any) -> str:
    return "workspace" if oid is None else repo.history.label(oid)


@cli.group(name="params")
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
    runs read (params.yaml keys by name, other files as FILE:KEY).

    \b
    Examples:
      dvfs params diff
      dvfs params diff v3
      dvfs params diff v3 v5 --all --json
    """
    from vfs.pipeline import report, workspace

    ws = workspace.find()
    repo = history_of(ws)
    old, new = _sides(revs, repo)
    a = report.version_params(repo.history.version(old))
    if new is None:
        b, notes = report.work_params(ws, workspace.load_pipeline(ws)[0])
        for n in notes:
            warn(n)
    else:
        b = report.version_params(repo.history.version(new))
    changes = report.diff(a, b, everything)
    left, right = _side_label(repo, old), _side_label(repo, new)
    if as_json:
        emit_json({
            "old": left, "new": right,
            "params": [{"name": c.name, "old": c.old, "new": c.new, "changed": c.changed}
                       for c in changes],
        })  # fmt: skip
        return
    if changes:
        rows = [[quote_name(c.name), report.shown(c.old), report.shown(c.new)] for c in changes]
        plain_table(["Param", left, right], rows)


@cli.group(name="metrics")
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

    \b
    Examples:
      dvfs metrics show
      dvfs metrics show v3 v4 HEAD --json
    """
    from vfs.pipeline import report, workspace

    ws = workspace.find()
    sides: list[tuple[str, dict[bytes, dict[str, Any]]]] = []
    notes: list[str] = []
    if not revs:
        m, notes = report.work_metrics(ws, workspace.load_pipeline(ws)[0])
        sides.append(("workspace", m))
    else:
        hist = history_of(ws).history
        for r in revs:
            v = hist.version(hist.resolve(r))
            m, why = report.version_metrics(hist, v)
            notes += why
            sides.append((r, m))
    for n in notes:
        warn(n)
    if as_json:
        emit_json({
            label: {os.fsdecode(f): kv for f, kv in m.items()} for label, m in sides
        })  # fmt: skip
        return
    keys = sorted({(f, k) for _, m in sides for f, kv in m.items() for k in kv})
    if not keys:
        click.echo("no metrics (a stage lists its metrics files under metrics:)")
        return
    rows = [
        [quoted(f), quote_name(k), *(report.shown(m.get(f, {}).get(k)) for _, m in sides)]
        for f, k in keys
    ]
    plain_table(["Path", "Metric", *(escape_text(label) for label, _ in sides)], rows)


@metrics_group.command(name="diff")
@click.argument("revs", nargs=-1, metavar="[REV [REV]]")
@click.option("--all", "everything", is_flag=True, help="Also the metrics that did not change.")
@AS_JSON
def metrics_diff(revs: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """Metrics that differ: HEAD (or REV) against the working tree, or two versions.

    \b
    Examples:
      dvfs metrics diff
      dvfs metrics diff v3 v5 --json
    """
    from vfs.pipeline import report, workspace

    ws = workspace.find()
    repo = history_of(ws)
    hist = repo.history
    old, new = _sides(revs, repo)
    a, notes = report.version_metrics(hist, hist.version(old))
    if new is None:
        b, more = report.work_metrics(ws, workspace.load_pipeline(ws)[0])
    else:
        b, more = report.version_metrics(hist, hist.version(new))
    for n in [*notes, *more]:
        warn(n)
    bare = report.metric_names([a, b])
    changes = report.diff(report.flat_metrics(a, bare), report.flat_metrics(b, bare), everything)
    left, right = _side_label(repo, old), _side_label(repo, new)
    if as_json:
        emit_json({
            "old": left, "new": right,
            "metrics": [{"name": c.name, "old": c.old, "new": c.new, "change": c.delta}
                        for c in changes],
        })  # fmt: skip
        return
    rows = [
        [quote_name(c.name), report.shown(c.old), report.shown(c.new),
         "-" if c.delta is None else f"{c.delta:+.6g}"]
        for c in changes
    ]  # fmt: skip
    if rows:
        plain_table(["Metric", left, right, "Change"], rows)


@cli.command()
@click.argument("revs", nargs=-1, metavar="[REV...]")
@click.option("--params", "only_params", is_flag=True, help="Parameter columns only.")
@click.option("--metrics", "only_metrics", is_flag=True, help="Metric columns only.")
@click.option(
    "--sort", "sort_by", metavar="NAME", help="Sort by a metric or parameter (-NAME: descending)."
)
@click.option("--csv", "as_csv", is_flag=True, help="CSV, for spreadsheets.")
@AS_JSON
def compare(
    revs: tuple[str, ...], only_params: bool, only_metrics: bool, sort_by: str | None,
    as_csv: bool, as_json: bool,
) -> None:  # fmt: skip
    """One row per version or experiment, one column per parameter and metric.

    Without REVs: the versions of the current branch, newest first, and every
    experiment (`dvfs exp run`).

    \b
    Examples:
      dvfs compare
      dvfs compare v3 v4 exp/lr02 --sort -acc
      dvfs compare --metrics --csv > runs.csv
    """
    from vfs.pipeline import report, workspace

    if as_csv and as_json:
        raise UsageError("--csv and --json ask for two formats: give one")
    repo = history_of(workspace.find())
    hist = repo.history
    notes: list[str] = []
    chosen = [(r, hist.resolve(r)) for r in revs] or report.default_choice(hist, repo.refs)
    done = report.compare(hist, chosen, only_params, only_metrics, sort_by, notes)
    for n in notes:
        warn(n)
    if as_json:
        emit_json(report.compare_json(done))
        return
    pcols, mcols, table = done.params, done.metrics, done.rows
    headers = ["rev", "created", "message", *pcols, *mcols]
    if as_csv:
        import csv

        w = csv.writer(sys.stdout, lineterminator="\n")
        w.writerow(headers)
        for r, cells in table:
            w.writerow([r.label, r.created, r.message, *(
                "" if v is None else v if isinstance(v, (int, float, str)) else json.dumps(v)
                for v in cells.values()
            )])  # fmt: skip
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    t = Table(show_edge=False, pad_edge=False, header_style="bold")
    for h in ["rev", "created", "message"]:
        t.add_column(h, no_wrap=True, overflow="ellipsis", max_width=40 if h == "message" else None)
    for k in pcols:
        t.add_column(escape_text(k), no_wrap=True, justify="right", style="cyan")
    for k in mcols:
        t.add_column(escape_text(k), no_wrap=True, justify="right", style="green")
    for r, cells in table:
        t.add_row(
            Text(escape_text(r.label)), Text(r.created), Text(escape_text(r.message)),
            *(Text(report.shown(v)) for v in cells.values()),
        )  # fmt: skip
    console = Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 1000)
    console.print(t)


@cli.group(name="exp")
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
    help="Set a parameter (default file params.yaml), typed as YAML 1.2.",
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
    m, _ = report.version_metrics(hist, v)
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

    \b
    Examples:
      dvfs exp list
      dvfs exp list --json
    """
    from vfs.pipeline import experiments, report, workspace
    from vfs.pipeline.record import iso_ns

    found = experiments.listing(workspace.find())
    if as_json:
        emit_json([
            {"name": e.name, "branch": e.branch, "version": e.label, "id": e.oid.hex(),
             "base": e.base, "created": iso_ns(e.created_ns) if e.created_ns else None,
             "message": e.message,
             "params": {k: {"old": a, "new": b} for k, (a, b) in e.changed.items()},
             "metrics": e.metrics}
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
        click.echo(f"{quote_name(e.branch)}  {e.label}{base}  {escape_text(e.message)}")
        if changed:
            click.echo(f"    params: {changed}")
        if metrics:
            click.echo(f"    metrics: {metrics}")


# ------------------------------------------------------------------------ entry point


# ------------------------------------------------------------------------ dashboard


@cli.command(name="ui")
@click.argument("source", default=".", metavar="[SOURCE]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True,
    help="Port to listen on (0: a free one).",
)  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.option("--token", type=Token(), help="Every request must carry T (needed off loopback).")
def ui_cmd(source: str, host: str, port: int, open_browser: bool, token: str | None) -> None:
    """Serve a read-only web dashboard of the repository at SOURCE (default: here).

    Versions, a version's files with previews, diffs (rows of tables too), lineage,
    experiments and the store. It listens on 127.0.0.1 unless --host says otherwise,
    which needs --token; it prints the URL to open and runs until Ctrl-C.

    \b
    Examples:
      dvfs ui
      dvfs ui ~/data/project --port 8700 --open
      dvfs ui --host 0.0.0.0 --token "$(openssl rand -hex 24)"
    """
    try:  # the server is an optional dependency: only `dvfs ui` loads it
        from vfs.ui import data, serve
    except ModuleNotFoundError as exc:
        if exc.name not in ("starlette", "uvicorn", "anyio"):
            raise
        raise UsageError("dvfs ui needs its web server: pip install 'dvfs[ui]'") from None
    serve.serve(data.open_repository(source), host, port, token, open_browser, click.echo)


def fail(message: str, code: int = 1) -> NoReturn:
    """Print one error line (whatever names it holds) and exit."""
    click.echo(f"dvfs: error: {escape_text(message)}", err=True)
    sys.exit(code)


def show_click_error(exc: click.ClickException) -> None:
    """Print click's own error as one ``dvfs: error:`` line (help, when it is the answer).

    ``dvfs`` or ``dvfs remote`` alone print their help, as click does.
    """
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        buf = io.StringIO()
        exc.show(file=buf)
        for line in buf.getvalue().splitlines():
            click.echo(escape_text(line), err=True)
        return
    msg = "; ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    msg = msg[:1].lower() + msg[1:].rstrip(".")
    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx is not None else "dvfs"
        msg += f" (see `{path} --help`)"
    click.echo(f"dvfs: error: {escape_text(msg)}", err=True)


def main() -> None:
    """Console entry point: run the CLI, turning every error into one line."""
    audit.set_command(["dvfs", *sys.argv[1:]])
    try:
        cli.main(prog_name="dvfs", complete_var=COMPLETE_VAR, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        show_click_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        fail("interrupted", 130)
    except KeyboardInterrupt:
        fail("interrupted; nothing half-written is visible, run the command again", 130)
    except DvfsError as exc:
        fail(str(exc), exc.exit_code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(141)
    except OSError as exc:
        if settings.debug():
            raise
        name = exc.filename
        where = (
            f": {quote_name(os.fsdecode(name) if isinstance(name, bytes) else str(name))}"
            if name
            else ""
        )
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            fail(f"the disk is full ({exc.strerror}{where}): free some space and run it again")
        fail(f"{exc.strerror or exc}{where}")
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if settings.debug():
            raise
        fail(f"internal error ({type(exc).__name__}: {exc}); rerun with DVFS_DEBUG=1 and report it")


if __name__ == "__main__":
    main()
