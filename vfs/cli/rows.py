"""``dvfs diff --rows``: the rows of one data file, without click.

``dvfs diff REV REV PATH --rows`` with at most ``--key``, ``--limit`` and ``--json``,
each spelled so (:func:`quick_rows`), runs here straight from :func:`vfs.cli.main`:
importing click and building the root group and the ``diff`` command was about
0.015 CPU-s of the 0.45 a row diff of 200,000 rows costs. Any other command line
(``--help``, ``--key=id``, ``--``, an abbreviation, a mistake) goes to click, whose
``diff`` command calls :func:`row_diff` too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vfs import settings
from vfs._os.malloc import chunk_buffers_reused
from vfs.cli.output import echo, emit_json, fail, quoted, repo_here, workers
from vfs.cli.targets import revs_and_paths
from vfs.errors import UsageError
from vfs.model.codec import Kind
from vfs.repo.repository import Repository
from vfs.worktree.scan import show

ROWS_SHOWN = 20  # rows `dvfs diff --rows` shows unless --limit says otherwise
QUICK_FLAGS = {"--rows": "rows", "--json": "as_json"}


def quick_rows(args: Sequence[str]) -> dict[str, Any] | None:
    """The arguments of ``dvfs ARGS`` if it is a plain row diff, else None.

    Plain: ``diff``, then words that do not begin with ``-`` (revisions and the path),
    ``--rows``, and at most ``--json``, ``--key COL`` (any number) and one ``--limit N``
    (N in ASCII digits), a value never empty nor beginning with ``-``, and no shell
    asking for completions (the caller checks). Everything else is click's.
    """
    if not args or args[0] != "diff":
        return None
    given: dict[str, Any] = {"rows": False, "as_json": False, "key": [], "limit": None}
    targets = []
    words = iter(args[1:])
    for arg in words:
        flag = QUICK_FLAGS.get(arg)
        if flag is not None:
            given[flag] = True
        elif arg in ("--key", "--limit"):
            value = next(words, "")
            if not value or value.startswith("-"):
                return None
            if arg == "--key":
                given["key"].append(value)
            elif given["limit"] is None and value.isascii() and value.isdigit():
                given["limit"] = int(value)
            else:
                return None
        elif arg and not arg.startswith("-"):
            targets.append(arg)
        else:
            return None
    if not given["rows"]:
        return None
    return {**given, "targets": tuple(targets), "key": tuple(given["key"])}


class Plain:
    """The invocation of a plain row diff, as :func:`revs_and_paths` reads it: no ``--``."""

    def __init__(self) -> None:
        self.meta: dict[str, Any] = {}
        self.command_path = "dvfs diff"


def quick_row_diff(
    targets: tuple[str, ...], rows: bool, key: tuple[str, ...], limit: int | None,
    as_json: bool,
) -> None:  # fmt: skip
    """``dvfs diff TARGETS --rows ...`` as click's ``diff`` command runs it."""
    repo = repo_here()
    revs, paths = revs_and_paths(repo, Plain(), targets, 2)
    row_diff(repo, revs, paths, rows, key, limit, False, as_json)


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
        echo(line)


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
