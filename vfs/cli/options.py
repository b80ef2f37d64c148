"""Parameter types, shared options and the command classes of the ``dvfs`` commands."""

from __future__ import annotations

import inspect
import itertools
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.parser import _OptionParser

from vfs import settings
from vfs.cli.output import ClosedPipe
from vfs.cli.targets import DASHDASH
from vfs.errors import DvfsError, UsageError
from vfs.quoting import escape_text, quote_given, quote_name
from vfs.repo.refs import misnamed
from vfs.repo.repository import Repository

if TYPE_CHECKING:
    from collections.abc import Callable

    from click.parser import _ParsingState
    from click.shell_completion import CompletionItem


DEFAULT_CACHE_SIZE = "10G"  # `dvfs mount --cache-size` (vfs.mount.launch has the same)
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}
MAX_SECONDS = 86400.0  # --refresh and --timeout: at most a day


def paragraphs(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """The messages of several ``-m`` joined as paragraphs, as git joins them (an empty
    one left out); None if none was given."""
    return "\n\n".join(v for v in value if v) if value else None


def once(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> str | None:
    """The one value of an option that takes one (None if not given): given twice, it
    is refused rather than the last one kept and the others dropped unsaid."""
    if len(value) > 1:
        name = param.opts[-1] if param.opts else param.name
        shown = ", ".join(quote_given(v) for v in value)
        raise UsageError(f"{name} was given {len(value)} times ({shown}): give it once")
    return value[0] if value else None


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
        """Revisions, branches, remotes, stages or files for the arguments and options
        that take them (``dvfs completion``)."""
        from click.shell_completion import CompletionItem  # only when completing

        # an argument by its name, an option by its long name (--remote)
        name = max(param.opts, key=len) if isinstance(param, click.Option) else param.name or ""
        kind = COMPLETE.get(f"{ctx.info_name} {name}") or COMPLETE.get(name)
        if kind is not None:
            if kind == "stages":
                return complete_stages(incomplete)
            if kind == "remotes":
                return complete_remotes(incomplete)
            if kind == "paths of the revision":  # checkout REV PATH: deleted files too
                rev = ctx.params.get("rev")
                held = complete_in_versions(ctx, kind, incomplete) if rev else []
                return held or [CompletionItem(incomplete, type="file")]
            if kind in ("versions", "version paths"):
                return complete_in_versions(ctx, kind, incomplete)
            if kind == "own refs":  # branch -d/-D/-m names branches, tag -d tags
                if any(ctx.params.get(f) for f in ("delete", "force_delete", "rename")):
                    own = "branches" if ctx.info_name == "branch" else "tags"
                    return complete_refs(own, incomplete)
                return complete_refs("revisions", incomplete)  # NAME, then the REV
            if kind in ("file", "dir"):
                return [CompletionItem(incomplete, type=kind)]
            if kind == "revisions or files":  # files when no revision matches
                given = ctx.params.get(param.name or "") or ()
                if DASHDASH in ctx.meta or len(given) >= MOST_REVISIONS[ctx.info_name or ""]:
                    return [CompletionItem(incomplete, type="file")]  # paths from here on
                return [CompletionItem(incomplete, type="file"), *complete_refs(kind, incomplete)]
            return complete_refs(kind, incomplete)
        return self.inner.shell_complete(ctx, param, incomplete)


# What the shell completes for an argument or option, by "command name" (or its name
# alone); an option is named by its long name.
COMPLETE = {
    "rev": "revisions", "revs": "revisions", "target": "revisions",
    "branch names": "own refs", "tag names": "own refs",
    "ls target": "versions", "cat target": "versions",
    "ls path": "version paths", "cat path": "version paths",
    "checkout paths": "paths of the revision", "pull paths": "paths of the revision",
    "targets": "revisions or files",
    "paths": "file",
    "branches": "branches", "switch name": "branches",
    "stages": "stages", "dag stage": "stages", "remove names": "stages",
    "mountpoint": "dir", "mount args": "dir", "ui source": "dir", "lineage path": "file",
    "clone url": "dir", "add url": "dir",
    "remove name": "remotes", "rename old": "remotes", "default name": "remotes",
    "--remote": "remotes", "--source": "revisions", "mount --branch": "branches",
    "--dep": "file", "--out": "file", "--metrics": "file",
}  # fmt: skip
# How many revisions come before the paths of the commands taking "revisions or files".
MOST_REVISIONS = {"log": 1, "diff": 2}


MOST_REFS = 1000  # refs offered at one TAB


def complete_refs(kind: str, incomplete: str) -> list[CompletionItem]:
    """Branches or tags (for revisions: HEAD, tags, branches and remote branches)
    starting so.

    Only names a command can name (:func:`misnamed`): a ref made by hand may hold a
    newline, which would make a second candidate, an escape that would reach the
    terminal, bytes that are not UTF-8, or a space or ``*`` that bash would split or
    glob as it inserts the name. At most :data:`MOST_REFS`.
    """
    try:
        refs = Repository.find().refs
        names = refs.names("tags" if kind == "tags" else "heads")
        if kind.startswith("revisions"):
            names = ["HEAD", *refs.names("tags"), *names, *refs.names("remotes")]
    except (DvfsError, OSError):  # not in a repository: nothing to offer
        return []
    from click.shell_completion import CompletionItem  # only when completing

    fit = (n for n in names if n.startswith(incomplete) and not misnamed(n))
    return [CompletionItem(n) for n in itertools.islice(fit, MOST_REFS)]


def complete_in_versions(ctx: click.Context, kind: str, incomplete: str) -> list[CompletionItem]:
    """For ``ls`` and ``cat``: revisions, and the paths of a version after ``REV:``
    (``versions``); for them, ``checkout`` and ``pull``: the paths of the version after
    ``REV`` (from the current directory). ``ls`` also takes a directory of HEAD alone."""
    from vfs.cli.completion import version_paths  # only when completing

    if kind != "versions":  # the paths after REV (ls, cat: target; checkout, pull: rev)
        rev = ctx.params.get("target") or ctx.params.get("rev")
        if not rev or ":" in rev:
            return []
        return version_paths(rev, incomplete, "", here=True)
    rev, colon, typed = incomplete.partition(":")
    if colon:
        return version_paths(rev, typed, f"{rev}:") if rev else []
    refs = complete_refs("revisions", incomplete)
    if ctx.info_name == "ls":  # `dvfs ls data`: data/ of HEAD
        return [*refs, *version_paths("HEAD", incomplete, "", here=True)]
    return refs


def complete_remotes(incomplete: str) -> list[CompletionItem]:
    """The configured remotes starting so (none outside a repository)."""
    from click.shell_completion import CompletionItem  # only when completing

    from vfs.remote import config  # only when completing a remote

    try:
        names = config.configured_names(Repository.find())
    except (DvfsError, OSError):
        return []
    return [CompletionItem(n) for n in names if n.startswith(incomplete)]


def complete_stages(incomplete: str) -> list[CompletionItem]:
    """The stages of the working tree's ``dvfs.yaml`` starting so (none if it cannot be
    read: completion says nothing)."""
    from click.shell_completion import CompletionItem  # only when completing

    from vfs.pipeline import workspace  # only when completing a stage

    try:
        pipeline, _ = workspace.load_pipeline(workspace.find(writes=False))
    except (DvfsError, OSError):
        return []
    return [CompletionItem(n) for n in pipeline.stages if n.startswith(incomplete)]


_ONE = {"paths": "PATH", "revs": "REV", "branches": "BRANCH", "args": "SOURCE or MNT",
        "names": "NAME", "targets": "REV or PATH"}  # fmt: skip


def empty_value(param: click.Parameter | None) -> str:
    """The error for an empty argument or option value."""
    name = (param.name if param else None) or "argument"
    if isinstance(param, click.Option):
        what = f"value for {param.opts[-1] if param.opts else name}"
    elif isinstance(param, click.Argument) and param.metavar and " " not in param.metavar:
        shown = param.metavar.removeprefix("[")  # ([KEY, [VALUE]], [REV...], [REV[:DIR]])
        while shown.count("]") > shown.count("["):
            shown = shown[:-1]
        what = f"{shown.removesuffix('...')} argument"
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
            self.fail(f"{quote_given(str(value))} is not a number of seconds", param, ctx)
        return seconds


class OnOff(click.Option):
    """A ``--this/--that`` flag pair: one or the other, and both a usage error.

    click keeps the last of the two given, so `--writable --read-only` read as
    `--read-only` and `--read-only --writable` as the opposite.
    """

    def add_to_parser(self, parser: _OptionParser, ctx: click.Context) -> None:
        """Each side appends its value, so that both given are seen."""
        for opts, value in ((self.opts, True), (self.secondary_opts, False)):
            parser.add_option(
                obj=self, opts=opts, dest=self.name, action="append_const", const=value
            )

    def handle_parse_result(
        self, ctx: click.Context, opts: Any, args: list[str]
    ) -> tuple[Any, list[str]]:
        """The side given; both sides given is a usage error."""
        given = opts.get(self.name)
        if isinstance(given, list):
            if len(set(given)) > 1:
                raise UsageError(
                    f"{self.opts[0]} and {self.secondary_opts[0]} are mutually exclusive: "
                    "give one of them; nothing was done"
                )
            opts[self.name] = given[0]
        return super().handle_parse_result(ctx, opts, args)


EXAMPLES = "\b\nExamples:\n"


def examples_last(cmd: click.Command) -> None:
    """Show a command's examples (the docstring's last paragraph) after its options."""
    text = inspect.cleandoc(cmd.help or "")
    if EXAMPLES in text and cmd.epilog is None:
        text, _, examples = text.partition(EXAMPLES)
        cmd.help = text.rstrip()
        cmd.epilog = EXAMPLES + examples


def parse_in(
    ctx: click.Context, args: list[str], parse: Callable[[click.Context, list[str]], list[str]]
) -> list[str]:
    """``parse(ctx, args)``, with the command's context on every usage error.

    click's parser raises "option '-m' requires an argument" without one, and the
    error line then pointed at `dvfs --help` rather than at the command's own help.
    """
    try:
        return parse(ctx, args)
    except click.UsageError as exc:
        if exc.ctx is None:
            exc.ctx = ctx
        raise


class ShortFirstParser(_OptionParser):
    """click's parser, taking ``-m`` for what it is, a short option, at once.

    click looks every option up as a long one first; for ``-m`` the miss raised
    ``NoSuchOption``, whose "did you mean" suggestions import and run :mod:`difflib`
    (1 ms of every ``dvfs commit -m``), before the error was caught and ``-m`` tried as
    short options, as here. Anything else, ``-m=x`` and long options alike, is click's.
    """

    def _process_opts(self, arg: str, state: _ParsingState) -> None:
        if arg[:2] in self._opt_prefixes or "=" in arg or arg in self._long_opt:
            super()._process_opts(arg, state)
        else:
            self._match_short_opt(arg, state)


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

    def make_parser(self, ctx: click.Context) -> _OptionParser:
        parser = ShortFirstParser(ctx)
        for param in self.get_params(ctx):
            param.add_to_parser(parser, ctx)
        return parser

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return parse_in(ctx, args, super().parse_args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command once every DVFS_* setting has been checked (after --help,
        which a bad one must not break): a bad DVFS_LOCK_TIMEOUT is refused before
        ``dvfs run`` runs an hour-long stage, not after it."""
        settings.check_all()
        return super().invoke(ctx)


# `dvfs --help` lists commands by what they are for, as `git help` does; a command
# not named here is listed under "Other commands".
SECTIONS = {
    "Start and track": ["init", "add", "rm", "mv", "status", "commit", "check-ignore"],
    "Undo, branch and merge": ["restore", "checkout", "switch", "branch", "tag", "merge"],
    "Look at versions": ["log", "show", "diff", "ls", "cat", "du", "audit", "ui"],
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
    "Maintain": ["fsck", "gc", "store", "cache", "config", "completion"],
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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return parse_in(ctx, args, super().parse_args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except BrokenPipeError:  # (as ClosedPipe: click would end it with exit 1)
            raise ClosedPipe from None

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


AS_JSON = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
YES = click.option(
    "--yes", "-y", is_flag=True,
    help="Check out even a version that expands to over 1,000 times its distinct data.",
)  # fmt: skip
OFFLINE = click.option(
    "--offline", is_flag=True,
    help="Use only the local store: refuse, naming the files, if data is only on a remote.",
)  # fmt: skip

PARAM = click.option(
    "--param", "params", multiple=True, metavar="K=V",
    help="Record a parameter, typed as YAML 1.2: lr=3e-4 is a number, opt=yes text, "
    "sizes=[1, 2] a list.",
)  # fmt: skip
PARAMS_FILE = click.option(
    "--params-file", type=click.Path(path_type=Path),
    help="YAML 1.2 mapping of parameters to record, TOML for a .toml name (a file of at "
    "most 1 MiB).",
)  # fmt: skip

JOBS = click.option(
    "--jobs", "-j", type=click.IntRange(min=1, max=64), default=8, show_default=True,
    help="Parallel transfers.",
)  # fmt: skip
REMOTE = click.option(
    "--remote", "remote_name", metavar="NAME", help="Remote (default: the default)."
)


class RevsThenPaths(DvfsCommand):
    """A command taking ``[REV...] [--] [PATH...]``: it notes how many arguments followed
    ``--`` (click drops the ``--`` itself), which are paths whatever they look like."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse as usual, after counting what follows ``--``."""
        if "--" in args:
            ctx.meta[DASHDASH] = len(args) - args.index("--") - 1
        return super().parse_args(ctx, args)
