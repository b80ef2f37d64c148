"""What ``dvfs add`` and ``dvfs commit`` do, and their plain command lines without click.

Importing click and building the root group and the command was 44.5 M instructions
(about a tenth) of an ``add`` of one small file in a repository of 20,000, and as
much of a ``commit``: paid twice by every add and commit of a large file, on one core,
before and after the pipeline. :func:`vfs.cli.main` runs a plain command line
(:func:`quick_tracking`) here straight away:

- ``dvfs add PATH...`` with at most ``-f``/``--force`` and ``--json``;
- ``dvfs commit`` with ``-m MSG``/``--message MSG`` (any number: paragraphs) and at
  most ``--json``;

each spelled so, in any order, no argument empty nor beginning with ``-`` but those
(a message may be empty), and no shell asking for completions. Anything else
(``--help``, ``-am``, ``--message=MSG``, ``--``, another option, an abbreviation, a
mistake) goes to click, whose ``add`` and ``commit`` commands
(:mod:`vfs.cli.tracking`) call the same functions: the same checks, output and
errors either way.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from vfs import settings
from vfs.cli.output import (
    count,
    echo,
    emit_json,
    human,
    keep_within_max_size,
    repo_here,
    warn,
    workers,
)
from vfs.quoting import escape_text, quote_name

ADD_FLAGS = {"-f": "force", "--force": "force", "--json": "as_json"}
COMMIT_FLAGS = {"--json": "as_json"}
MESSAGE = ("-m", "--message")


def add_paths(
    paths: tuple[str, ...], force: bool, as_json: bool, say: Callable[[str], None] = echo
) -> None:
    """``dvfs add``: stage PATHS, then say how many files it staged and read (``say``:
    click's command says it with ``click.echo``)."""
    from vfs.ops import workflow

    repo = repo_here()
    with workers() as w:
        r = workflow.add(repo, paths, w, warn, force=force)
    keep_within_max_size(repo)
    if as_json:
        import dataclasses  # (loaded by vfs.ops.workflow)

        emit_json(dataclasses.asdict(r))
        return
    parts = [f"staged {count(r.files, 'file')}"]
    if r.hashed:
        parts.append(f"read {r.hashed:,} ({human(r.bytes_read)})")
    if r.removed:
        parts.append(count(r.removed, "deletion"))
    if r.ignored:
        parts.append(f"skipped {count(r.ignored, 'ignored path')}")
    say(", ".join(parts))


def commit_staged(
    message: str | None, params: tuple[str, ...], params_file: Path | None, tag: str | None,
    stage_all: bool, amend: bool, as_json: bool, say: Callable[[str], None] = echo,
) -> None:  # fmt: skip
    """``dvfs commit``: record what is staged as a new version, and say which (``say``:
    click's command says it with ``click.echo``, which writes UTF-8 to a stream that
    says it takes ASCII only, where :func:`~vfs.cli.output.echo` fails)."""
    from vfs.model import params as version_params  # (commit alone records them)
    from vfs.ops.behind import merge_in_progress  # (vfs.ops.merging only in a merge)
    from vfs.ops.commit import check_message, committable
    from vfs.ops.commit import commit as commit_index

    repo = repo_here()
    # (all is checked before -a stages anything; a merge's commit takes its message)
    in_merge = message is None and merge_in_progress(repo) is not None
    check_message(message, amend=amend, merge=in_merge)
    recorded = version_params.collect(params, params_file)
    if stage_all:
        from vfs.ops import workflow
        from vfs.repo.record import tag_free
        from vfs.repo.refs import check_ref_name

        # what the commit would refuse, refused before -a stages
        committable(repo, amend)
        if tag is not None:
            check_ref_name(tag, "tag")
            tag_free(repo, tag)

        with workers() as w:
            workflow.stage_tracked_changes(repo, w, warn)
    old = repo.history.head_id() if amend else None
    r = commit_index(repo, message, recorded, tag, warn, amend=amend)
    keep_within_max_size(repo)
    if as_json:
        emit_json(
            {"version": f"v{r.number}", "id": r.oid.hex(), "branch": repo.refs.head().branch,
             "tag": tag, "files": r.files, "bytes": r.bytes}
            | ({"amended": old.hex()} if old is not None else {})
        )  # fmt: skip
        return
    tagged = f" (tag {quote_name(tag)})" if tag else ""
    said = message if message is not None else repo.history.version(r.oid).message
    say(
        f"v{r.number} {r.oid.hex()[:10]}{tagged}: {count(r.files, 'file')}, {human(r.bytes)} - "
        f"{escape_text(said)}{' (amended)' if amend else ''}"
    )


def quick_tracking(args: Sequence[str]) -> Callable[[], None] | None:
    """What runs ``dvfs ARGS`` if it is a plain ``add`` or ``commit`` (see above), else
    None; the caller checks that no shell asks for completions."""
    if not args or args[0] not in ("add", "commit"):
        return None
    adding = args[0] == "add"
    flags = ADD_FLAGS if adding else COMMIT_FLAGS
    given = {"force": False, "as_json": False}
    words: list[str] = []  # an add's paths, a commit's messages
    rest = iter(args[1:])
    for arg in rest:
        flag = flags.get(arg)
        if flag is not None:
            given[flag] = True
        elif not adding and arg in MESSAGE:
            value = next(rest, None)
            if value is None or value.startswith("-"):
                return None
            words.append(value)
        elif adding and arg and not arg.startswith("-"):
            words.append(arg)
        else:
            return None
    if not words:
        return None
    if not adding and not all(m.isascii() for m in words) and ascii_output():
        return None  # (click's echo writes UTF-8 to an ASCII stream: its own way)
    if adding:
        paths, force = tuple(words), given["force"]
        return as_click_runs(lambda: add_paths(paths, force, given["as_json"]))
    # several -m: paragraphs, an empty one left out (vfs.cli.options.paragraphs)
    message = "\n\n".join(m for m in words if m)
    return as_click_runs(
        lambda: commit_staged(message, (), None, None, False, False, given["as_json"])
    )


def ascii_output() -> bool:
    """True if standard output says it encodes ASCII only (``PYTHONIOENCODING=ascii``)."""
    import codecs

    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        return codecs.lookup(encoding).name == "ascii"
    except LookupError:
        return True


def as_click_runs(body: Callable[[], None]) -> Callable[[], None]:
    """``body`` run as click's command runs it: the DVFS_* settings checked first
    (``DvfsCommand.invoke``), a closed standard output said as ``ClosedPipe``, and a
    Ctrl-C on a line of its own, after the ``^C`` the terminal shows (click's blank
    line on standard error)."""

    def run() -> None:
        from vfs.cli.output import ClosedPipe

        settings.check_all()
        try:
            body()
        except BrokenPipeError:
            raise ClosedPipe from None
        except KeyboardInterrupt:
            with contextlib.suppress(OSError):
                echo(err=True)
            raise

    return run
