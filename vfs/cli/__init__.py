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

The commands are click commands, in :mod:`vfs.cli.root` and the modules it names.
Importing click and building the commands is a third of what a clean ``dvfs status``
of 20,000 files costs, so :func:`main` runs ``dvfs status`` with no argument but
``-v``/``--verbose`` and ``--json`` without click (:func:`quick_status`): the same
code prints the same report (:mod:`vfs.cli.status_report`); likewise a plain ``dvfs
add`` or ``dvfs commit -m`` (:mod:`vfs.cli.staging`) and ``dvfs diff --rows``
(:mod:`vfs.cli.rows`). Any other command line,
``--help``, a mount point, an option spelled otherwise or a mistake, goes to click,
which says what it always said. This module imports neither; ``vfs.cli.cli`` (the root
group), ``COMMANDS`` and ``NotEmpty`` load :mod:`vfs.cli.root` on first use (PEP 562).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from vfs import settings
from vfs._os.deferred import defer
from vfs._os.gc_pause import paused_gc
from vfs.errors import DvfsError, NotARepository
from vfs.quoting import quote_name

if TYPE_CHECKING:
    from vfs.cli.root import COMMANDS as COMMANDS
    from vfs.cli.root import NotEmpty as NotEmpty
    from vfs.cli.root import cli as cli

__all__ = ["COMMANDS", "NotEmpty", "cli", "main", "quick_status"]

COMPLETE_VAR = "_DVFS_COMPLETE"  # what the shell sets to ask `dvfs` for completions
# Commands that leave nothing to do once they return (their files written and synced,
# their helpers ended, their pools idle, their lock let go): the process then ends
# without the interpreter's teardown (:func:`exit_now`). Freeing every module and the
# thread pools one by one took 20-36 ms of an ``add`` and 17 of a ``commit``; freeing
# a version's entries and the index after a ``checkout`` of 20,000 files that had
# nothing to write, 0.2-0.3 s of 1.1-1.6. A ``diff`` has removed its scratch copies by
# then, its engine's threads ended and its connection left open (``Engine.close``'s
# linger): a first row diff of 200,000 rows, 0.475 s to 0.442 (median of 15 alternating
# runs).
QUICK_EXIT = frozenset({"add", "commit", "checkout", "diff"})
QUICK_STATUS_FLAGS = {"-v": "verbose", "--verbose": "verbose", "--json": "as_json"}


def __getattr__(name: str) -> Any:
    """The root group and its table, from :mod:`vfs.cli.root` (imported on first use)."""
    if name in ("cli", "COMMANDS", "NotEmpty"):
        return getattr(importlib.import_module("vfs.cli.root"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def quick_status(args: Sequence[str]) -> dict[str, bool] | None:
    """The options of ``dvfs ARGS`` if it is a plain ``dvfs status``, else None.

    Plain: ``status`` followed only by ``-v``, ``--verbose`` and ``--json``, spelled so
    (click's abbreviations, ``-h`` and everything else are left to click), and no shell
    asking for completions.
    """
    if not args or args[0] != "status" or os.environ.get(COMPLETE_VAR):
        return None
    flags = {"as_json": False, "verbose": False}
    for arg in args[1:]:
        name = QUICK_STATUS_FLAGS.get(arg)
        if name is None:
            return None
        flags[name] = True
    return flags


def quick_row_diff(args: Sequence[str]) -> Callable[[], None] | None:
    """What runs ``dvfs ARGS`` if it is a plain ``dvfs diff --rows`` (without click:
    :mod:`vfs.cli.rows`), else None."""
    if not args or args[0] != "diff" or os.environ.get(COMPLETE_VAR):
        return None
    rows = importlib.import_module("vfs.cli.rows")
    given = rows.quick_rows(args)
    if given is None:
        return None

    def run() -> None:
        settings.check_all()
        rows.quick_row_diff(**given)

    return run


def quick_tracking(args: Sequence[str]) -> Callable[[], None] | None:
    """What runs ``dvfs ARGS`` if it is a plain ``dvfs add`` or ``dvfs commit`` (without
    click: :mod:`vfs.cli.staging`), else None."""
    if not args or args[0] not in ("add", "commit") or os.environ.get(COMPLETE_VAR):
        return None
    staging = importlib.import_module("vfs.cli.staging")
    run: Callable[[], None] | None = staging.quick_tracking(args)
    return run


def main() -> None:
    """Console entry point: run the command, turning every error into one line.

    The cyclic garbage collector is paused while the command's modules are imported
    (this module imports none of them): tens of thousands of objects, none of them
    garbage, that it walked 17 times for a plain status (2-3 ms). They are handed to
    its oldest generation unwalked when the pause ends (``kept``): its first
    collections after it walked them all, 4-7 ms of every command. Click's commands
    run with it as it was; a plain status ends the process with it still paused
    (:func:`quick`). An ``add``, ``commit``, ``checkout`` or ``diff`` that succeeded ends
    it at once too (``QUICK_EXIT``); a failure, and every other command, goes through the
    usual exit.
    """
    args = sys.argv[1:]
    try:
        with paused_gc(kept=True):
            defer_inspect()
            flags = quick_status(args)
            if flags is not None:
                quick(flags)
            from vfs._os.program import set_command

            set_command(["dvfs", *args])
            run = (
                quick_row_diff(args)
                or quick_tracking(args)
                or importlib.import_module("vfs.cli.root").run
            )
    except KeyboardInterrupt:
        interrupted_at_start()
    try:
        guarded(run)
    finally:
        settle()
    if args and args[0] in QUICK_EXIT:
        try:
            flush()
        except OSError:
            return  # (a closed pipe, say: the usual exit says so)
        exit_now(0)


def defer_inspect() -> None:
    """Have :mod:`inspect` run its module code on first use rather than when imported,
    unless it is loaded already.

    :mod:`dataclasses` imports it for one purpose, the docstring of a class that has
    none, and the modules of every command define dataclasses: loading ``inspect`` and
    what it imports (``ast``, ``dis``, ``tokenize``...) was 6 ms of CPU of a plain
    ``status``, a twentieth of a clean one of 20,000 files. Click cleans every
    option's help with ``inspect.cleandoc`` as the commands are built: the module
    answers that one without running (:func:`cleandoc`).

    :mod:`urllib.parse` likewise: :mod:`pathlib` imports it (and it :mod:`ipaddress`)
    for ``Path.as_uri`` alone, which no command calls: 10.7 M instructions of every
    command's start-up, a sixteenth of a clean ``status``. The one name pathlib takes
    from it, ``quote_from_bytes``, loads it when first called (:func:`defer`).

    And :mod:`platform`: click imports :mod:`uuid` (for a parameter type dvfs does not
    use), which asks ``platform.system()`` once as it is imported, and
    :mod:`zstandard` asks ``platform.python_implementation()``: loading ``platform``
    for those was 8 M instructions of every command click runs. The module answers
    them from ``os.uname()`` and ``sys.implementation``, where its own looks too.
    """
    defer("inspect", cleandoc=cleandoc)
    platform = defer("platform", system=system)
    if platform is not None:
        run = platform  # (not None, as mypy sees it from the closure)

        def python_implementation() -> str:
            """``platform.python_implementation()``: CPython's answered, else the module's."""
            if sys.implementation.name == "cpython":
                return "CPython"
            real: Callable[[], str] = run("python_implementation")
            return real()

        sys.modules["platform"].__dict__["python_implementation"] = python_implementation
    parsing = defer("urllib.parse")
    if parsing is not None:
        fetch = parsing  # (not None, as mypy sees it from the closure)

        def quote_from_bytes(bs: bytes, safe: str = "/") -> str:
            """``urllib.parse.quote_from_bytes``, running the module first."""
            real: Callable[[bytes, str], str] = fetch("quote_from_bytes")
            return real(bs, safe)

        sys.modules["urllib.parse"].__dict__["quote_from_bytes"] = quote_from_bytes


def system() -> str:
    """``platform.system()``, as Linux answers it (``os.uname()``'s system name)."""
    return os.uname().sysname


def cleandoc(doc: str) -> str:
    """``inspect.cleandoc`` (Python 3.11's), answered without loading :mod:`inspect`.

    Click cleans the help of every option it builds with it, and the commands of every
    ``dvfs`` command line have options: this copy spares them ``inspect`` and what it
    imports (``ast``, ``dis``, ``tokenize``: 3-4 ms of every ``add`` or ``commit``).
    The module's own, once something else loads it, is the same function.
    """
    lines = doc.expandtabs().split("\n")
    content = [len(line) - len(line.lstrip()) for line in lines[1:] if line.lstrip()]
    margin = min(content, default=0)
    lines = [lines[0].lstrip()] + [line[margin:] for line in lines[1:]]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    return "\n".join(lines)


def settle() -> None:
    """Once the command has ended and said how: a Ctrl-C has nothing left to stop.

    It is ignored from then on. The interpreter's teardown gives SIGINT its default
    action back before its last steps, so a Ctrl-C landing there killed the process
    (exit "by SIGINT", not its code) after it had done its work, or said it was
    interrupted. And a Ctrl-C caught where it interrupted code run by ``exec`` of a
    string (the methods of a dataclass, made as a command's modules are imported)
    stays marked as never caught in CPython 3.11: run as ``python -m vfs.cli``, the
    process then killed itself with SIGINT after its "interrupted" line. The next
    ``exec`` of a string clears that mark.

    Through :mod:`_signal`, which the interpreter loads as it starts: ``add`` and
    ``commit`` did not load :mod:`signal` otherwise, and its enums cost 3.3 M
    instructions to make.
    """
    signals = importlib.import_module("_signal")  # (the same function, without enums)
    with contextlib.suppress(ValueError):  # (not the main thread: nothing to ignore)
        signals.signal(signals.SIGINT, signals.SIG_IGN)
    exec("")  # (a string: see above)


def interrupted_at_start() -> NoReturn:
    """Ctrl-C while the command's modules are loaded (a fifth of a second): nothing has
    been done yet. One line and exit 130, as :func:`guarded` says it, never the
    traceback of the import it stopped."""
    with contextlib.suppress(OSError):
        os.write(2, b"dvfs: error: interrupted before it began: nothing was changed\n")
    os._exit(130)


def quick(flags: dict[str, bool]) -> NoReturn:
    """Print a plain status (``flags``: its options) and end the process (:func:`exit_now`).

    Called with the collector paused, which it leaves so: what the status made is kept
    until the process ends, and the one collection that followed the scan (paused
    there too) walked every row of the index, 6-10 ms of a status of 20,000 files.
    """
    report = importlib.import_module("vfs.cli.status_report")
    kept: list[object] = []  # what the status read, freed by the end of the process

    def run() -> None:
        settings.check_all()
        kept.append(report.show_status(None, **flags))
        flush()

    try:
        guarded(run)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    exit_now(code)


def flush() -> None:
    """Flush stdout and stderr (what :func:`exit_now` would otherwise lose)."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None and not stream.closed:
            stream.flush()


def exit_now(code: object) -> NoReturn:
    """End the process with ``code`` (as ``sys.exit`` takes it), skipping the interpreter's
    teardown.

    After a status of 20,000 files, freeing every module and object one by one takes
    longer than anything but the scan itself, for a process that ends anyway: the
    quick status has flushed what it printed, ended its helpers and threads, and holds
    no lock or temporary file by then. For the same reason :func:`main` keeps the
    status it printed, and the index in it, until then.

    Under a profiler (``python -m cProfile``) or a tracer (coverage) it is the usual
    exit: they write out what they gathered as the interpreter ends.
    """
    if sys.getprofile() is not None or sys.gettrace() is not None:
        raise SystemExit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):  # a message: printed, then 1, as sys.exit does
        try:
            print(code, file=sys.stderr)
            flush()
        except OSError:
            pass
        code = 1
    os._exit(code & 0xFF)


def _in_mount(exc: DvfsError) -> str | None:
    """For "not a dvfs repository" in a mount's working tree: where its repository is
    (``dvfs init`` there would make one no snapshot takes)."""
    if type(exc) is not NotARepository or str(exc) != str(NotARepository()):
        return None
    from vfs.mount.mounts import not_a_repository  # (only then)

    try:
        return not_a_repository(os.getcwd())
    except OSError:
        return None


def _temporary(path: str) -> bool:
    """Whether ``path`` is of the form of dvfs's temporary files (``.tmp-*``)."""
    return os.path.basename(path).startswith(".tmp-")


def guarded(run: Callable[[], None]) -> None:
    """Call ``run``; any error it raises becomes one line and an exit code."""
    from vfs.cli.output import CLOSED_PIPE, INTERRUPTED, ClosedPipe, fail  # (see main)

    try:
        run()
    except KeyboardInterrupt:
        fail(INTERRUPTED, 130)
    except DvfsError as exc:
        fail(_in_mount(exc) or str(exc), exc.exit_code)
    except (BrokenPipeError, ClosedPipe):
        # Nothing more reaches the reader: no line, and no flush at exit to fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        exit_now(CLOSED_PIPE)
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
        path = os.fsdecode(name) if isinstance(name, (str, bytes)) else ""
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and _temporary(path):
            # (a temporary name is only ever made to write: say where, not its name)
            fail(
                f"cannot write in {quote_name(os.path.dirname(path))}: {exc.strerror}: "
                "run the command as a user who may write there (does the repository "
                "belong to another user, or lie on a read-only filesystem?)"
            )
        fail(f"{exc.strerror or exc}{where}")
    except Exception as exc:  # the last line of defence: one line, never a traceback
        if settings.debug():
            raise
        fail(f"internal error ({type(exc).__name__}: {exc}); rerun with DVFS_DEBUG=1 and report it")
