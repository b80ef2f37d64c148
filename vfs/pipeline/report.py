"""Parameters and metrics of versions and of the working tree: shown, diffed, compared.

**Parameters** of a version: those given to ``commit --param`` (nested ones dotted:
``model.depth``), and those its pipeline's runs read, named by key for the root's
``params.yaml`` (``train.lr``) and ``FILE:KEY`` for any other file (and for a key
that a ``--param`` of the same name takes in any of the versions shown together, so
that a name means one parameter in every row and column). Of the working tree: the
values the stages of ``dvfs.yaml`` would read now.

**Metrics** of a version: the metrics files of its pipeline's runs, read from the
version; of the working tree: the metrics files of ``dvfs.yaml``'s stages and of the
runs its ``dvfs.runs`` records (a ``vfs.track`` block's, which no stage names), as
they are. Each file is flattened to dotted keys (``vfs.pipeline.values``); metrics
are named ``FILE:KEY``, or by key alone when every metric shown comes from one file
(and, in ``compare``, no parameter has that name).

Experiments (``vfs.pipeline.experiments``) are versions on ``exp/`` branches, and
are compared like any version.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

from vfs.errors import DvfsError, UsageError
from vfs.model.codec import Entry, Kind
from vfs.model.params import reads_as_other, shown_message, shown_params
from vfs.model.version_codec import Version
from vfs.ops.browse import iso_time
from vfs.ops.diff import flat_params
from vfs.pipeline import values
from vfs.pipeline.plan import link_above, not_checked_out, params_through_link
from vfs.pipeline.spec import DEFAULT_PARAMS, Pipeline
from vfs.pipeline.workspace import Workspace, load_runs
from vfs.quoting import escape_text, finite, quote_name, shell_word
from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE
from vfs.repo.history import History
from vfs.repo.refs import Refs
from vfs.store.reader import read_whole

EXP_PREFIX = "exp/"
# A version's metrics are read from at most VERSION_FILES files and VERSION_VALUES
# values: a forged version may name thousands of files, each of the same chunk holding
# values.MAX_METRICS values (nothing to its maker), which would take hours and gigabytes
# to read; real pipelines have a few.
VERSION_FILES = 1_000
VERSION_VALUES = 100_000


class _Missing:
    """The value of a name a version or file does not have (shown as ``-``), apart
    from a null value (``null``)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def present(values: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` without those that are MISSING: JSON leaves out a name a side lacks,
    and gives null for a null value."""
    return {k: v for k, v in values.items() if v is not MISSING}


def _file_key(file: bytes, key: str) -> str:
    return f"{os.fsdecode(file)}:{key}"


def _named(pairs: Iterable[tuple[bytes, str, Any]], taken: Container[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f, k, v in pairs:
        name = k if f == DEFAULT_PARAMS and k not in taken else _file_key(f, k)
        out.setdefault(name, v)
    return out


def commit_names(versions: Iterable[Version]) -> set[str]:
    """The names of the ``commit --param`` parameters of ``versions``: a stage's
    ``params.yaml`` key of one of these names is shown as ``params.yaml:KEY`` beside them
    all, so that a name stands for the same parameter in every column or row."""
    return {k for v in versions for k, _ in flat_params(v.params)}


def version_params(v: Version, taken: Iterable[str] = (), own: bool = True) -> dict[str, Any]:
    """Every parameter of a version (module docstring); ``taken``: see
    :func:`commit_names`, for the versions it is shown beside. ``own`` False: only
    those its runs read (beside the working tree, which has no ``commit --param``)."""
    given = dict(flat_params(shown_params(v.params)))
    ran = _named(((f, k, val) for s in v.pipeline for f, k, val in s.params), {*given, *taken})
    return shown_params(dict(sorted({**(given if own else {}), **ran}.items())))


def work_params(
    ws: Workspace, p: Pipeline, taken: Iterable[str] = ()
) -> tuple[dict[str, Any], dict[bytes, str | None]]:
    """The parameters the stages would read now, and each params file they name: None
    if it was read, else why not (it does not exist, or what is wrong with it);
    ``taken``: see :func:`commit_names`, for the versions they are shown beside."""
    found: list[tuple[bytes, str, Any]] = []
    files: dict[bytes, str | None] = {}
    docs: dict[bytes, Any] = {}
    for s in p.stages.values():
        for f, k in s.params:
            if f not in docs:
                try:
                    data = ws.read(f, values.MAX_FILE)
                    docs[f] = None if data is None else values.load(data, f, os.fsdecode(f))
                    link = None if data is not None else link_above(ws, f, s.wdir)
                    files[f] = (
                        None if data is not None
                        else f"{quote_name(f)} is tracked but not checked out (`dvfs pull "
                        f"{shell_word(f)}` brings it)" if not_checked_out(ws, f)
                        else params_through_link(f, link) if link is not None
                        else f"{quote_name(f)} does not exist"
                    )  # fmt: skip
                except DvfsError as exc:
                    docs[f] = None
                    files[f] = str(exc)
            doc = docs[f]
            value = values.lookup(doc, k) if doc is not None else None
            if doc is not None and not values.is_missing(value):
                found.append((f, k, values.plain(value)))
    return dict(sorted(_named(found, set(taken)).items())), files


def run_param_files(v: Version) -> dict[bytes, str | None]:
    """The params files the runs of a version read (each None, as :func:`work_params`
    gives a file it read)."""
    return {f: None for s in v.pipeline for f, _, _ in s.params}


@dataclass(frozen=True)
class FileGap:
    """A params file whose parameters one side of a diff has and the other lacks
    (``side``: ``old`` or ``new``, the side without it), and what to tell the user."""

    file: bytes
    side: str
    note: str


def param_file_gaps(
    old: Mapping[bytes, str | None],
    new: Mapping[bytes, str | None],
    left: str,
    right: str | None,
) -> list[FileGap]:
    """The params files read on one side of a diff and not on the other (each side as
    :func:`work_params` or :func:`run_param_files` gives it; ``right`` None: the new
    side is the working tree): without a word, every parameter of such a file would
    show as added or removed as if its values had."""

    def why(side: Mapping[bytes, str | None], f: bytes, label: str | None) -> str:
        if f not in side and label is None:
            return f"no stage of {PIPELINE_FILE} reads {quote_name(f)} now"
        if f not in side:
            return f"no run of {label} read {quote_name(f)}"
        text = side[f] or ""
        return f"{text} in the working tree" if text.endswith(" does not exist") else text

    out = []
    for f in sorted(set(old) | set(new)):
        read_old, read_new = f in old and old[f] is None, f in new and new[f] is None
        if read_old and not read_new:
            note = f"{why(new, f, right)}: its parameters are shown as removed"
            out.append(FileGap(f, "new", note))
        elif read_new and not read_old:
            note = f"{why(old, f, left)}: its parameters are shown as added"
            out.append(FileGap(f, "old", note))
        elif not read_new and not read_old and f in new and new[f] is not None:
            out.append(FileGap(f, "new", new[f] or ""))  # named even if neither side has it
    return out


def _read_tree_file(
    hist: History, tree: bytes, path: bytes, get: Callable[[bytes], bytes] | None = None
) -> bytes | None:
    """The bytes of file ``path`` of a version's tree (None if absent), its chunks read
    by ``get`` (default: the history's store); DvfsError, said as the working tree's
    would be, if it is not a file or is too large to be read (FormatError if its bytes
    are not the digest the tree records for it)."""
    e = hist.lookup(tree, path)
    if e is None:
        return None
    if e.kind != Kind.FILE:
        what = "a symbolic link" if e.kind == Kind.SYMLINK else "a directory"
        raise DvfsError(f"{quote_name(path)} cannot be read ({what})")
    if e.size > values.MAX_FILE:
        raise DvfsError(f"{quote_name(path)} cannot be read (larger than {values.MAX_FILE} bytes)")
    get = hist.store.get if get is None else get
    return read_whole(quote_name(path), e.chunks, e.digest, get)


def metrics_files(hist: History, oids: Iterable[bytes]) -> list[tuple[bytes, Entry]]:
    """The metrics files versions ``oids`` record (each version once), those small
    enough to be read (``values.MAX_FILE``) and among the first ``VERSION_FILES`` of
    their version: what a reader of their metrics downloads first. A version that
    cannot be read is passed over: its metrics say why."""
    found: list[tuple[bytes, Entry]] = []
    for oid in dict.fromkeys(oids):
        try:
            v = hist.version(oid)
            for m in _metrics_paths(v)[:VERSION_FILES]:
                e = hist.lookup(v.tree, m)
                if e is not None and e.kind == Kind.FILE and e.size <= values.MAX_FILE:
                    found.append((m, e))
        except DvfsError:
            continue
    return found


def version_metrics(
    hist: History, v: Version, unreadable: list[bytes] | None = None, label: str | None = None,
    get: Callable[[bytes], bytes] | None = None,
) -> tuple[dict[bytes, dict[str, Any]], list[str]]:  # fmt: skip
    """Each metrics file of a version's pipeline, flattened; and notes, each starting
    with ``label`` (default ``vN``; an experiment's is its branch, as its ``vN`` is
    also a version of the branch it started from): on what a file read leaves out,
    and one on each file that cannot be read (added to ``unreadable``)."""
    out: dict[bytes, dict[str, Any]] = {}
    notes: list[str] = []
    label = label or f"v{v.number}"
    stage_of = {m: s.name for s in reversed(v.pipeline) for m in s.metrics}
    paths = _metrics_paths(v)
    count = 0  # values read
    for i, m in enumerate(paths):
        if i >= VERSION_FILES or count >= VERSION_VALUES:
            notes.append(
                f"{label}: {len(paths) - i:,} more metrics files not read: a version's metrics "
                f"are read from at most {VERSION_FILES:,} files and {VERSION_VALUES:,} values"
            )
            break
        try:
            data = _read_tree_file(hist, v.tree, m, get)
            if data is None:
                raise DvfsError(
                    f"{quote_name(m)}, a metrics file of stage {stage_of[m]}, is not in the version"
                )
            out[m], why = values.metrics_of(data, m, quote_name(m))
            count += len(out[m])
            notes += [f"{label}: {w}" for w in why]
        except DvfsError as exc:
            notes.append(f"{label}: {exc}: its metrics are not shown")
            if unreadable is not None:
                unreadable.append(m)
    return out, notes


def _metrics_paths(v: Version) -> list[bytes]:
    """The metrics files of a version's pipeline, each once, in its stages' order."""
    return list(dict.fromkeys(m for s in v.pipeline for m in s.metrics))


def work_metrics(
    ws: Workspace, p: Pipeline, unreadable: list[bytes] | None = None
) -> tuple[dict[bytes, dict[str, Any]], list[str]]:
    """Each metrics file of ``dvfs.yaml``'s stages and of the runs in ``dvfs.runs``, as
    the working tree holds it, flattened; and notes: on what a file read leaves out, and
    one on each file that cannot be read (added to ``unreadable``; ``dvfs.runs`` itself
    if it cannot be read)."""
    out: dict[bytes, dict[str, Any]] = {}
    notes: list[str] = []
    files = [m for s in p.stages.values() for m in s.metrics]
    gone: list[bytes] = []
    try:
        files += [m for s in load_runs(ws).values() for m in s.metrics]
    except DvfsError as exc:
        notes.append(f"{exc}: the metrics of its runs are not shown")
        gone.append(RUNS_FILE.encode())
    for m in dict.fromkeys(files):
        try:
            data = ws.read(m, values.MAX_FILE)
            if data is None and not_checked_out(ws, m):  # a partial working tree
                notes.append(
                    f"{quote_name(m)} is tracked but not checked out: `dvfs pull "
                    f"{shell_word(m)}` or `dvfs checkout HEAD {shell_word(m)}` brings it"
                )
                gone.append(m)
            elif data is None:
                notes.append(f"{quote_name(m)} does not exist (`dvfs repro` makes a stage's)")
                gone.append(m)
            else:
                out[m], why = values.metrics_of(data, m, quote_name(m))
                notes += why
        except DvfsError as exc:
            notes.append(f"{exc}: fix it, or make it again (`dvfs repro` makes a stage's)")
            gone.append(m)
    if unreadable is not None:
        unreadable += gone
    return out, notes


def metric_names(sets: Iterable[Mapping[bytes, Mapping[str, Any]]]) -> bool:
    """True if every metric of ``sets`` comes from one file (then named by key alone)."""
    files = {f for s in sets for f in s}
    return len(files) <= 1


def flat_metrics(m: Mapping[bytes, Mapping[str, Any]], bare: bool) -> dict[str, Any]:
    """Metrics by name (``FILE:KEY``, or ``KEY`` if ``bare``)."""
    return {k if bare else _file_key(f, k): v for f, kv in m.items() for k, v in kv.items()}


@dataclass
class Change:
    """One name's value on each side (MISSING: absent), and whether it differs."""

    name: str
    old: Any
    new: Any
    changed: bool
    delta: float | None = None  # None where no finite number tells it (see _delta)


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


_INFINITIES = {".inf": math.inf, "-.inf": -math.inf}  # as values record them (quoting.finite)


def _sort_number(x: Any) -> float | int | None:
    """``x`` as the number it sorts as (an infinity too); None if it is none."""
    if _number(x):
        return cast(float, x)
    return _INFINITIES.get(x) if type(x) is str else None  # (not a values.FloatText)


def _delta(a: float, b: float) -> float | None:
    """``b - a``, exact between integers; None if it is no finite number (an integer
    too large for a float beside a float, two floats near the largest apart)."""
    try:
        d = b - a
    except OverflowError:
        return None
    return None if isinstance(d, float) and not math.isfinite(d) else d


def change_text(delta: float | None) -> str:
    """A change in a table cell: ``-`` for none, an integer in full (as its values are
    shown), a float to 6 significant digits, each with its sign."""
    if delta is None:
        return "-"
    return f"{delta:+d}" if isinstance(delta, int) else f"{delta:+.6g}"


def diff(old: Mapping[str, Any], new: Mapping[str, Any], everything: bool) -> list[Change]:
    """The names whose values differ (all of them if ``everything``), sorted."""
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, MISSING), new.get(name, MISSING)
        changed = (name in old) != (name in new) or not values.same(a, b)
        if not changed and not everything:
            continue
        delta = _delta(a, b) if _number(a) and _number(b) else None
        out.append(Change(name, a, b, changed, delta))
    return out


@dataclass
class Row:
    """One version (or experiment) of ``dvfs compare``."""

    label: str  # vN, or the experiment's branch
    id: str
    created: str
    message: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[bytes, dict[str, Any]] = field(default_factory=dict)


def experiments(hist: History, branches: Mapping[str, bytes]) -> list[tuple[str, bytes]]:
    """(branch, tip) of every experiment branch, newest first."""
    found = [(b, oid) for b, oid in branches.items() if b.startswith(EXP_PREFIX)]
    return sorted(found, key=lambda x: -hist.version(x[1]).time_ns)


def row_of(
    hist: History, label: str, oid: bytes, notes: list[str], taken: Iterable[str] = (),
    unreadable: list[bytes] | None = None, get: Callable[[bytes], bytes] | None = None,
) -> Row:  # fmt: skip
    """The compare row of version ``oid`` (``taken``: see :func:`commit_names`; each
    metrics file that cannot be read is named in ``notes`` and added to ``unreadable``)."""
    v = hist.version(oid)
    m, why = version_metrics(hist, v, unreadable, escape_text(label), get)
    notes += why
    message = shown_message(v.message)
    return Row(label, oid.hex(), iso_time(v.time_ns), message, version_params(v, taken), m)


def shown(value: Any) -> str:
    """A value in a table cell: text as it is (in double quotes if it would read as
    another value: ``"2"``, see :func:`vfs.model.params.reads_as_other`), ``-`` for
    absent, anything else as JSON (a null value is ``null``). A number with a fraction
    is shown to 6 significant digits when they tell it exactly, else in full (two
    values shown alike are equal), and with a ``.0`` when it is whole (``1.0`` is
    another value than ``1``)."""
    import json

    if value is MISSING:
        return "-"
    if isinstance(value, str):
        if reads_as_other(value) or isinstance(value, values.FloatText):
            return escape_text(json.dumps(value, ensure_ascii=False))
        return quote_name(value)
    if isinstance(value, float):
        value = finite(value) if value != 0 else 0.0  # (-0.0 recorded before: as 0.0)
        if isinstance(value, str):
            return value
        text = f"{value:.6g}"
        if float(text) != value:
            text = repr(value)  # the shortest text that reads back as this value
        return text + ".0" if text.lstrip("-").isdigit() else text
    return escape_text(json.dumps(value, ensure_ascii=False, sort_keys=True))


@dataclass
class Compared:
    """``dvfs compare``: its parameter and metric columns, and its rows with their cells
    (keyed ``param:NAME`` and ``metric:NAME``, MISSING where a row has no value)."""

    params: list[str]
    metrics: list[str]
    rows: list[tuple[Row, dict[str, Any]]]


def default_choice(hist: History, refs: Refs) -> list[tuple[str, bytes]]:
    """What ``dvfs compare`` shows without REVs: the current branch's versions, newest
    first, and every experiment that is not one of them (on an experiment's branch, or
    a branch it was fast-forwarded into, its version is a row already)."""
    head = hist.head_id()
    chosen = [(f"v{v.number}", oid) for oid, v in hist.chain(head)] if head is not None else []
    shown = {oid for _, oid in chosen}
    return chosen + [(b, oid) for b, oid in experiments(hist, refs.branches()) if oid not in shown]


def compare(
    hist: History, chosen: list[tuple[str, bytes]], only_params: bool = False,
    only_metrics: bool = False, sort_by: str | None = None, notes: list[str] | None = None,
    unreadable: list[bytes] | None = None, get: Callable[[bytes], bytes] | None = None,
    among: list[tuple[str, bytes]] | None = None,
) -> Compared:  # fmt: skip
    """The compare table of the versions ``chosen`` (label, id), sorted by a metric or
    parameter if ``sort_by`` names one (``-NAME``: descending; UsageError otherwise).
    ``among``: the versions ``chosen`` is a page of (default: ``chosen``), whose
    parameters' names name each row's as in the whole table (:func:`commit_names`).

    Why a metrics file could not be read is added to ``notes``, and the file to
    ``unreadable`` (once for each version it cannot be read in). ``get`` reads the
    files' chunks (default: the history's store; a remote's view reads its remote).
    """
    why: list[str] = [] if notes is None else notes
    taken = commit_names(hist.version(oid) for _, oid in (chosen if among is None else among))
    rows = [row_of(hist, label, oid, why, taken, unreadable, get) for label, oid in chosen]
    # Metrics by key alone if they come from one file, unless a key is also a
    # parameter's name: two columns, or a --sort, would not tell which is which.
    pnames = {k for r in rows for k in r.params}
    bare = metric_names([r.metrics for r in rows]) and not any(
        k in pnames for r in rows for kv in r.metrics.values() for k in kv
    )
    metric_rows = [flat_metrics(r.metrics, bare) for r in rows]
    all_p = sorted({k for r in rows for k in r.params})
    all_m = sorted({k for m in metric_rows for k in m})
    pcols = [] if only_metrics and not only_params else all_p
    mcols = [] if only_params and not only_metrics else all_m
    # every column, so that a table of one kind sorts by a column of the other
    # (`--params --sort -acc`: the parameters, best run first); those shown kept below
    table = [
        (r, {**{f"param:{k}": r.params.get(k, MISSING) for k in all_p},
             **{f"metric:{k}": m.get(k, MISSING) for k in all_m}})
        for r, m in zip(rows, metric_rows, strict=True)
    ]  # fmt: skip
    if sort_by:

        def column(name: str) -> str | None:
            return f"metric:{name}" if name in all_m else f"param:{name}" if name in all_p else None

        # NAME ascending, -NAME descending (a name that starts with - itself: as it is)
        col, desc = column(sort_by), False
        if col is None and sort_by.startswith("-"):
            col, desc = column(sort_by[1:]), True
        if col is None and sort_by == "-":
            raise UsageError(
                "--sort - names no column: give a metric or parameter (NAME ascending, "
                "-NAME descending)"
            )
        if col is None:
            name = quote_name(sort_by.removeprefix("-"))
            names = [*all_p, *all_m]
            some = ", ".join(quote_name(n) for n in names[:8])
            more = f" and {len(names) - 8} more" if len(names) > 8 else ""
            hint = f": the columns are {some}{more}" if names else ": these versions have none"
            raise UsageError(f"no metric or parameter {name} to sort by{hint}")

        # Numbers (the infinities too, kept as their YAML text), then text (anything else
        # as it is shown), then rows without a value (a null one, then none); each group
        # in the order asked, ties in the order chosen.
        def gap(x: Any) -> bool:
            return x is None or x is MISSING

        numbers = [t for t in table if _sort_number(t[1][col]) is not None]
        texts = [t for t in table if not gap(t[1][col]) and _sort_number(t[1][col]) is None]
        numbers.sort(key=lambda t: cast(float, _sort_number(t[1][col])), reverse=desc)
        texts.sort(key=lambda t: shown(t[1][col]), reverse=desc)
        nulls = [t for t in table if t[1][col] is None]
        table = numbers + texts + nulls + [t for t in table if t[1][col] is MISSING]
    shown_cols = [*(f"param:{k}" for k in pcols), *(f"metric:{k}" for k in mcols)]
    return Compared(pcols, mcols, [(r, {c: cells[c] for c in shown_cols}) for r, cells in table])


def compare_json(c: Compared) -> list[dict[str, Any]]:
    """``dvfs compare --json``: one object per row (a name the row lacks is left out;
    a null value is null). JSON gives a NaN or infinite float metric as YAML spells it
    (``".inf"``), as it gives the text ``".inf"``: ``texts`` names the row's metrics that
    are such text (``values.FloatText``), and ``param_texts`` the row's stage
    parameters that are, each present only when there are any."""
    rows = []
    for r, cells in c.rows:
        row = {"rev": r.label, "id": r.id, "created": r.created, "message": r.message,
               "params": present({k: cells[f"param:{k}"] for k in c.params}),
               "metrics": present({k: cells[f"metric:{k}"] for k in c.metrics})}  # fmt: skip
        row.update(texts_of({k: cells[f"metric:{k}"] for k in c.metrics}))
        if texts := texts_of({k: cells[f"param:{k}"] for k in c.params}):
            row["param_texts"] = texts["texts"]
        rows.append(row)
    return rows


def side_texts(c: Change) -> dict[str, list[str]]:
    """``{"texts": [...]}`` naming the sides of a ``metrics diff`` or ``params diff``
    row (``old``, ``new``) that are text reading as a NaN or an infinity, which JSON
    gives as it gives such a float (see :func:`texts_of`); empty when there are none."""
    sides = [k for k, v in (("old", c.old), ("new", c.new)) if isinstance(v, values.FloatText)]
    return {"texts": sides} if sides else {}


def texts_of(metrics: Mapping[str, Any]) -> dict[str, list[str]]:
    """``{"texts": [...]}`` naming the metrics that are text reading as a NaN or an
    infinity (``values.FloatText``), which JSON gives as it gives such a float; empty when
    there are none. ``compare --json`` and ``exp list --json`` rows carry it alike."""
    texts = [k for k, v in metrics.items() if isinstance(v, values.FloatText)]
    return {"texts": texts} if texts else {}
