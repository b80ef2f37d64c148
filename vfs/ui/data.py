"""What the dashboard's JSON API answers, as plain data (docs/ui.md lists the routes).

Every function takes the repository and the request's already-parsed arguments and
returns what JSON can hold; it computes with the functions behind the CLI's
``--json`` (``dvfs log``, ``show``, ``ls``, ``diff``, ``diff --rows``, ``du``,
``audit``, ``compare``, a version's recorded pipeline), so the two never disagree.

Everything a request names is untrusted: paths go through
``vfs.ui.arguments.check_path`` (relative, ``/``-separated, no empty, ``.`` or ``..``
part, no NUL) and are only ever looked up in a version's trees, never opened in the
working tree; revisions go through ``History.resolve`` (``RevisionNotFound`` names the
closest ones). Lists are paginated (``arguments.MAX_PAGE`` rows at most); a file's
bytes and previews are ``vfs.ui.files``'.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import math
import os
import time
from typing import Any

from vfs.errors import DvfsError, NotADirectory, PathNotFound, UsageError
from vfs.model.codec import Entry, Kind
from vfs.model.params import MAX_MESSAGE, SHOWN_AUTHOR
from vfs.model.version_codec import Version
from vfs.mount import control
from vfs.mount.mounts import statuses
from vfs.ops import browse
from vfs.ops.diff import changed_under
from vfs.ops.du import usage
from vfs.pipeline import report
from vfs.pipeline.lineage import Origins, pipeline_inputs, stage_edges
from vfs.pipeline.record import describe_all
from vfs.pipeline.values import history_name
from vfs.repo import audit
from vfs.repo.history import History
from vfs.repo.repository import Repository
from vfs.ui.arguments import BadPath, page
from vfs.ui.fetch import Fetcher
from vfs.ui.files import FileRef, Getter, Need, chunks, whole
from vfs.worktree.scan import show

try:  # the table engine (DuckDB) is the optional extra dvfs[tables]
    from vfs.tables import engine as table_engine
    from vfs.tables import render, rowdiff
    from vfs.tables.formats import format_of
    from vfs.tables.result import PAGE
except ModuleNotFoundError as exc:  # pragma: no cover - tests install it
    if exc.name not in ("duckdb", "_duckdb"):
        raise
    table_engine = None  # type: ignore[assignment]

ADDED_MAX = 2000  # entries of a directory up to which its files' "added in" is found
ADDED_BUDGET = 0.5  # seconds the added route looks back in a larger directory
ROWS_SHOWN = 50  # row-diff rows unless asked for fewer
PENDING_PATHS = 20  # paths of a mount's pending changes listed, of each kind
STEPS_MAX = 16 * 1024 * 1024  # bytes of a per-step history file plotted, at most
STEPS_PAGE = 1000  # rows of a per-step history in one answer unless asked for fewer or more
STEPS_PAGE_MAX = 10_000  # rows of a per-step history in one answer, at most
STEPS_FILES = 32  # per-step histories in one answer without a path, at most
STEPS_READ = 64 * 1024 * 1024  # bytes of per-step histories one answer reads, at most
EXPERIMENTS_PAGE = 200  # rows of the experiments table in one answer unless asked for others
EXPERIMENTS_PAGE_MAX = 1000  # rows of the experiments table in one answer, at most
NOTE_LABELS = 10  # versions an experiments note names before "and N more"
REFS_SHOWN = 200  # branch names, and tag names, a versions page names at most
STATUS_WAIT = 10.0  # seconds a mount's daemon has to say what is pending


# ------------------------------------------------------------------------ versions


def _matches(text: str, oid: bytes, v: Version) -> bool:
    """Whether the search ``text`` is in the message as shown (its first MAX_MESSAGE
    characters: a forged one of megabytes is not lowercased whole at every query), or
    starts ``oid``, or names ``v`` as vN."""
    t = text.lower()
    return t in v.message[:MAX_MESSAGE].lower() or oid.hex().startswith(t) or t == f"v{v.number}"


def versions(
    repo: Repository, branch: str | None = None, tag: str | None = None,
    author: str | None = None, text: str | None = None, offset: int = 0, limit: int = 50,
    path: bytes = b"",
) -> dict[str, Any]:  # fmt: skip
    """A page of ``dvfs log --json`` rows from ``branch`` (any revision; default HEAD),
    newest first, keeping those tagged ``tag``, by an author containing ``author`` and
    whose message contains ``text`` (or whose id starts with it, or that it names as vN)
    and, with ``path``, that changed something at or below it (as ``dvfs log -- PATH``).

    ``total`` counts every row kept, so the pages can be numbered. Without a filter it
    is the first version's number (``vN`` counts along the first-parent chain), and the
    chain is read only down to the page: a cold first page of a 1,000-version history
    decodes 50 versions, not 1,000.
    """
    offset, limit = page(offset, limit)
    hist = repo.history
    start = hist.resolve(branch) if branch else hist.head_id()
    refs = browse.decorations(repo)
    rows: list[dict[str, Any]] = []
    total = 0
    if start is not None and not (tag or author or text or path):
        total = hist.version(start).number
        for i, (oid, v) in enumerate(hist.chain(start)):
            if i >= offset + limit:
                break
            if i >= offset:
                rows.append(browse.log_row(hist, refs, oid, v))
    elif start is not None:
        for oid, v in hist.chain(start):
            if tag and tag not in refs.get(oid, {}).get("tags", []):
                continue
            if author and author.lower() not in v.author[:SHOWN_AUTHOR].lower():
                continue
            if text and not _matches(text, oid, v):
                continue
            if path:
                parent = hist.version(v.parents[0]).tree if v.parents else None
                if not changed_under(hist, parent, v.tree, [path]):
                    continue
            if offset <= total < offset + limit:
                rows.append(browse.log_row(hist, refs, oid, v))
            total += 1
    head = hist.head()
    branches, tags = sorted(repo.refs.branches()), sorted(repo.refs.tags())
    return {
        "total": total, "offset": offset, "limit": limit, "versions": rows,
        "branches": _some(branches, head.branch, branch), "branches_total": len(branches),
        "tags": _some(tags, tag), "tags_total": len(tags),
        "current_branch": head.branch if head.detached is None else None,  # (as `dvfs branch`)
    }  # fmt: skip


def _some(names: list[str], *wanted: str | None) -> list[str]:
    """The first ``REFS_SHOWN`` of ``names`` (sorted), with those of ``wanted`` it holds
    (the current branch, the one asked for), so that a page names what it shows."""
    if len(names) <= REFS_SHOWN:
        return names
    held = set(names)
    return sorted({*names[:REFS_SHOWN], *(w for w in wanted if w is not None and w in held)})


@functools.lru_cache(maxsize=256)
def _shown(hist: History, oid: bytes) -> dict[str, Any]:
    """``browse.show_version`` without files and changes: a version never changes, so
    neither does this."""
    return browse.show_version(hist, oid, files=False, changes=False)


def version(repo: Repository, rev: str) -> dict[str, Any]:
    """``dvfs show REV --json`` without the file list and ``changes``, with its tags and
    branches. ``changes`` compares two trees (0.4 s or more cold for a 20,000-file
    directory), so it is a route of its own, :func:`version_changes`, which the page
    asks for once it has shown the rest."""
    hist = repo.history
    oid = hist.resolve(rev)
    refs = browse.decorations(repo).get(oid, {"tags": [], "branches": []})
    return {**copy.deepcopy(_shown(hist, oid)), **refs}


@functools.lru_cache(maxsize=256)
def _changes(hist: History, oid: bytes) -> dict[str, Any]:
    return browse.version_changes(hist, oid)


def version_changes(repo: Repository, rev: str) -> dict[str, Any]:
    """``dvfs show REV --json``'s ``changes`` (computed by the same function), with the
    version's label and id: what the version route leaves out."""
    hist = repo.history
    oid = hist.resolve(rev)
    return {"version": hist.label(oid), "id": oid.hex(), "changes": dict(_changes(hist, oid))}


def warm(repo: Repository) -> None:
    """Read what the first requests of the dashboard would otherwise pay for, once,
    before the server takes requests: the store's pack indexes (one file per pack: a
    repository of 1,000 packs has 1,000 to read), the newest page of the history and
    HEAD's version with its trees (0.2 s to decode a 20,000-entry directory, which
    its totals and its file listing read)."""
    versions(repo)
    head = repo.history.head_id()
    if head is not None:
        version(repo, head.hex())


@functools.lru_cache(maxsize=64)
def _listing(hist: History, tree: bytes) -> tuple[Entry, ...]:
    """A directory's entries as the file browser lists them: directories first, then
    files, each in name order (kept per tree id: a tree never changes, and sorting
    20,000 entries for each page of them costs more than the page)."""
    return tuple(sorted(hist.tree(tree).entries, key=lambda x: (x.kind != Kind.DIR, x.name)))


def files(
    repo: Repository, rev: str, path: bytes, offset: int = 0, limit: int = 200
) -> dict[str, Any]:
    """A page of the directory ``path`` of ``rev`` (``dvfs ls REV:DIR --json`` rows, with
    the version since which each file has had its content: ``show --files``'s
    ``added``, for directories of at most ``ADDED_MAX`` entries: ``added_known``).
    Directories first, then files, each in name order."""
    offset, limit = page(offset, limit)
    hist = repo.history
    oid, e = browse.lookup(repo, rev, path)
    if e.kind != Kind.DIR:
        raise NotADirectory(_not_a_dir(path, e) + ": preview it instead")
    entries = _listing(hist, e.subtree)
    chosen = entries[offset : offset + limit]

    def full(x: Entry) -> bytes:
        return path + b"/" + x.name if path else x.name

    names = [x.name for x in chosen if x.kind != Kind.DIR]
    # Each version that changed the directory is read back whole: past ADDED_MAX
    # entries that costs seconds, so "added" is left out (None) there.
    added = browse.added_in_dir(hist, oid, path, names) if len(entries) <= ADDED_MAX else {}
    rows = []
    for x in chosen:
        row: dict[str, Any] = {
            "name": show(x.name), "path": show(full(x)), "type": x.kind.name.lower(),
            "mode": oct(x.mode), "size": x.size, "mtime": browse.iso_time(x.mtime_ns),
            "added": added.get(x.name),
        }  # fmt: skip
        if x.kind == Kind.SYMLINK:
            row["target"] = show(x.target)
        rows.append(row)
    return {
        "version": hist.label(oid), "id": oid.hex(), "dir": show(path) if path else "",
        "total": len(entries), "offset": offset, "limit": limit, "entries": rows,
        "added_known": len(entries) <= ADDED_MAX,
    }  # fmt: skip


def _not_a_dir(path: bytes, e: Entry) -> str:
    """What ``path`` is, asked for as a directory: a file, or a link (never followed:
    its target is only a name, as ``dvfs ls`` lists it)."""
    if e.kind == Kind.SYMLINK:
        return (
            f"{show(path)} is a link to {show(e.target)}, not a directory (links are not followed)"
        )
    return f"{show(path)} is a file, not a directory"


def added(
    repo: Repository, rev: str, path: bytes, offset: int = 0, limit: int = 200
) -> dict[str, Any]:
    """ "Added in" of the files of a page of :func:`files`, asked for apart (after the
    page is shown) in a directory too large for :func:`files` to find it: each
    version back that changed the directory and was not worked out before
    (:mod:`vfs.ops.changed`, :mod:`vfs.ui.background`) costs a read of the directory,
    so the search stops after ``ADDED_BUDGET`` seconds. ``added`` maps a path to the version
    since which it has had its content; ``before`` maps the others to the version at
    or before which they got it (they are unchanged from there on)."""
    offset, limit = page(offset, limit)
    hist = repo.history
    oid, e = browse.lookup(repo, rev, path)
    if e.kind != Kind.DIR:
        raise NotADirectory(_not_a_dir(path, e))
    chosen = _listing(hist, e.subtree)[offset : offset + limit]
    names = [x.name for x in chosen if x.kind != Kind.DIR]
    found, bound = browse.added_in_dir_until(
        hist, oid, path, names, time.monotonic() + ADDED_BUDGET
    )

    def full(n: bytes) -> str:
        return show(path + b"/" + n if path else n)

    return {
        "version": hist.label(oid), "id": oid.hex(), "dir": show(path) if path else "",
        "offset": offset, "limit": limit,
        "added": {full(n): label for n, label in found.items()},
        "before": {full(n): bound for n in names if n not in found} if bound else {},
    }  # fmt: skip


def diff(repo: Repository, old: str, new: str, offset: int = 0, limit: int = 200) -> dict[str, Any]:
    """``dvfs diff OLD NEW --json`` with a page of its file changes (``total_changes``
    counts them all), and which side each revision is (``revision``: a revision that
    reads it here, History.revision: another branch's vN is its id)."""
    offset, limit = page(offset, limit)
    hist = repo.history
    a, b = hist.resolve(old), hist.resolve(new)
    changes = browse.diff_versions(repo, old, new)
    data = browse.diff_json(changes, browse.diff_params(repo, [old, new]))
    data["total_changes"] = len(data["changes"])
    data["changes"] = data["changes"][offset : offset + limit]
    for c in data["changes"]:
        c["tabular"] = table_engine is not None and format_of(os.fsencode(c["path"])) is not None
    return {
        "old": {"rev": old, "version": hist.label(a), "revision": hist.revision(a), "id": a.hex()},
        "new": {"rev": new, "version": hist.label(b), "revision": hist.revision(b), "id": b.hex()},
        "offset": offset, "limit": limit, **data,
    }  # fmt: skip


def row_diff(
    repo: Repository, old: str, new: str, path: bytes, key: list[str], limit: int = ROWS_SHOWN,
    fetcher: Fetcher | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``dvfs diff OLD NEW PATH --rows [--key K] --json`` (needs the table engine). With
    ``fetcher`` (a repository's), the two files' data the store lacks is downloaded
    into it first, as the command does."""
    if table_engine is None:
        raise UsageError("row diffs need the table engine: pip install 'dvfs[tables]' (DuckDB)")
    if not path:
        raise BadPath("a row diff compares one file: name it")
    _, limit = page(0, limit)
    if fetcher is not None:
        hist = repo.history
        for rev in dict.fromkeys([old, new]):
            oid = hist.resolve(rev)
            e = hist.lookup(hist.version(oid).tree, path)
            if e is not None:
                fetcher.need_stored(FileRef(hist.label(oid), oid, path, e))
    result = rowdiff.diff_path(
        repo.history, repo.store, repo.chunker, repo.root, repo.dir, [old, new], path,
        key, limit, 1, words=PAGE,
    )  # fmt: skip
    return render.as_json(result)


# ------------------------------------------------------------------------ lineage


def lineage(repo: Repository, rev: str) -> dict[str, Any]:
    """The pipeline version ``rev`` records (``dvfs show``'s ``pipeline``), as a graph:
    ``stages`` in their order and ``edges`` [from, to] where a stage reads what another
    made (a dep, or a file it reads params from), as ``dvfs dag --format json`` draws
    a pipeline. A stage's inputs are those ``dvfs lineage --json`` lists
    (``vfs.pipeline.lineage.pipeline_inputs``): its deps, then the files it reads
    params from that another stage makes (``kind`` "params"), each with the stage
    making it (``made_by``), the
    version that introduced the bytes the run read (``since``) and whether this version
    holds them (``in_version``), and that version's id
    (``since_id``: a label is a number along a first-parent chain, which another
    branch's page would resolve along its own). The walks back for ``since`` share
    ``dvfs lineage``'s bound (``vfs.pipeline.lineage.BUDGET`` versions in all): an
    input whose walk it cut short has ``since`` null and ``since_cut`` true."""
    hist = repo.history
    oid = hist.resolve(rev)
    v = hist.version(oid)
    stages = describe_all(v.pipeline)
    edges = [[u.name, s.name] for u, s in stage_edges(v.pipeline)]
    origins = Origins(hist, oid, {})
    for st, inputs in zip(stages, pipeline_inputs(hist, oid, origins), strict=True):
        st["input"] = [  # (as `dvfs lineage --json` gives them)
            {"path": os.fsdecode(i.path), "id": i.id.hex(), "since": i.since,
             "in_version": i.now, "made_by": i.made_by, "kind": i.kind, "since_cut": i.cut}
            for i in inputs
        ]  # fmt: skip
    # since names a version by its number on oid's first-parent chain (its id, walking
    # the chain down to the oldest of them only), or, one another branch's number would
    # name another version here, by the first digits of its id
    labels = {label for label in origins.found.values() if label is not None}
    wanted = {int(label[1:]) for label in labels if label.startswith("v")}
    ids: dict[str, str] = {}
    for label in labels - {f"v{n}" for n in wanted}:
        with contextlib.suppress(DvfsError):  # (a prefix of two forged ids: no link)
            ids[label] = hist.resolve(label).hex()
    for o, w in hist.chain(oid) if wanted else ():
        if w.number in wanted:
            ids[f"v{w.number}"] = o.hex()
        if w.number <= min(wanted):
            break
    for st in stages:
        for item in st["input"]:
            item["since_id"] = ids.get(item["since"]) if item["since"] is not None else None
    return {"version": f"v{v.number}", "id": oid.hex(), "stages": stages, "edges": edges}


# ------------------------------------------------------------------------ experiments


def experiments(
    repo: Repository, sort_by: str | None = None, get: Getter | None = None,
    offset: int = 0, limit: int = EXPERIMENTS_PAGE, fetcher: Fetcher | None = None,
) -> dict[str, Any]:  # fmt: skip
    """A page of ``dvfs compare --json`` without REVs (the current branch's versions,
    newest first, then every experiment): ``limit`` rows (at most
    ``EXPERIMENTS_PAGE_MAX``) from ``offset``, with ``total``, ``offset`` and
    ``limit``, the column names of the page's rows and the notes about unreadable
    metrics; ``get`` reads the metrics files (a remote's view: from its remote). Only
    the page's metrics files are read, unless ``sort_by`` sorts the whole table.
    With ``fetcher`` (a repository's), those its store lacks are downloaded first,
    all at once, as ``dvfs compare`` does (:func:`_fetch_metrics`)."""
    if offset < 0 or limit < 1:
        raise UsageError("offset must be 0 or more and limit 1 or more")
    limit = min(limit, EXPERIMENTS_PAGE_MAX)
    hist = repo.history
    notes: list[str] = []
    chosen = report.default_choice(hist, repo.refs)
    window = chosen if sort_by else chosen[offset : offset + limit]
    if fetcher is not None:
        get = _fetch_metrics(repo, fetcher, [oid for _, oid in window], notes)
    done = report.compare(hist, window, sort_by=sort_by, notes=notes, get=get,
                          among=chosen)  # fmt: skip
    rows = report.compare_json(done)
    if sort_by:
        rows = rows[offset : offset + limit]
    params = sorted({k for r in rows for k in r["params"]})
    metrics = sorted({k for r in rows for k in r["metrics"]})
    return {"params": [k for k in done.params if k in params],
            "metrics": [k for k in done.metrics if k in metrics], "rows": rows,
            "total": len(chosen), "offset": offset, "limit": limit,
            "notes": _grouped(notes)}  # fmt: skip


def _grouped(notes: list[str]) -> list[str]:
    """``notes`` (``LABEL: what``), those saying the same of several versions as one
    (``v3, v2, v1: what``, ``NOTE_LABELS`` labels at most then how many more): a page of
    200 versions whose remote does not answer says so once, not 200 times."""
    by_text: dict[str, list[str]] = {}
    for n in notes:
        label, sep, text = n.partition(": ")
        by_text.setdefault(text if sep else n, []).append(label if sep else "")
    out = []
    for text, labels in by_text.items():
        named = list(dict.fromkeys(x for x in labels if x))
        if not named:
            out += [text] * len(labels)
            continue
        more = f" and {len(named) - NOTE_LABELS:,} more" if len(named) > NOTE_LABELS else ""
        out.append(f"{', '.join(named[:NOTE_LABELS])}{more}: {text}")
    return out


def _fetch_metrics(
    repo: Repository, fetcher: Fetcher, oids: list[bytes], notes: list[str]
) -> Getter:
    """Download the metrics files of versions ``oids`` that the store lacks, at once
    (``Fetcher.need``: one wait, not one per file); the getter to read them with. A
    failure is said by each version's note (the getter fails at once while the remote
    rests); past ``FETCH_MAX`` bytes, by a note of its own, and the getter reads the
    store alone."""
    wanted = [c for _, e in report.metrics_files(repo.history, oids) for c in e.chunks]
    what = f"the metrics files of {len(oids):,} version{'s' if len(oids) != 1 else ''}"
    try:
        fetcher.need(what, wanted, "dvfs compare")
    except UsageError as exc:  # (too much for one page)
        notes.append(str(exc))
        return fetcher.get_local
    except DvfsError:
        pass
    return fetcher.get


def steps(
    repo: Repository, get: Getter, rev: str, path: bytes = b"", offset: int | None = None,
    limit: int = STEPS_PAGE, need: Need | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The per-step metrics of version ``rev``: for each metrics file its pipeline
    records whose history file (``vfs.pipeline.values.history_name``: ``metrics.json`` ->
    ``metrics.steps.jsonl``, one JSON object per ``log_metrics`` call) the version
    holds (with ``path``, that history file alone), a page of its ``rows`` (``step``,
    None where a line gives no whole number, not ``true`` either, and the numeric
    metrics of each line, in order), the names of those ``metrics``
    (of every row, not of the page alone) and ``total``, ``offset`` and ``limit``.

    A page is ``limit`` rows (at most ``STEPS_PAGE_MAX``) from ``offset``; without
    ``offset``, the last ``limit`` rows (the latest steps), so that a history of
    100,000 steps is not one answer. Lines that are not JSON objects are counted in
    ``skipped``; a file over ``STEPS_MAX`` bytes is named with a ``note`` only, and so
    is one past ``STEPS_READ`` bytes read for the answer. Without ``path``, at most
    ``STEPS_FILES`` files, ``more`` counting the metrics files left out: a forged
    version may name thousands, each with a history of the same chunks, which would
    cost its maker nothing and this server hours. ``need`` (a repository's) downloads
    a history file the store lacks first. A history whose bytes are not the digest its
    version records fails the answer (FormatError), as one that cannot be read does."""
    if (offset is not None and offset < 0) or limit < 1:
        raise UsageError("offset must be 0 or more and limit 1 or more")
    limit = min(limit, STEPS_PAGE_MAX)
    hist = repo.history
    oid = hist.resolve(rev)
    v = hist.version(oid)
    out: list[dict[str, Any]] = []
    done: set[bytes] = set()
    left: set[bytes] = set()  # metrics files past STEPS_FILES
    read = 0
    for stage in v.pipeline:
        for metrics_path in stage.metrics:
            steps_path = history_name(metrics_path)
            if path and steps_path != path:
                continue
            if len(done) >= STEPS_FILES and not path:
                left.add(steps_path)
                continue
            e = hist.lookup(v.tree, steps_path)
            if steps_path in done or e is None or e.kind != Kind.FILE:
                continue
            done.add(steps_path)
            note = None
            if e.size > STEPS_MAX:
                note = f"larger than {STEPS_MAX >> 20} MiB: not plotted"
            elif read + e.size > STEPS_READ:
                note = (
                    f"not read: this answer has read {STEPS_READ >> 20} MiB of histories; "
                    "ask for this one alone (path)"
                )
            if note is not None:
                out.append({"path": show(steps_path), "metrics": [], "rows": [], "total": 0,
                            "offset": 0, "limit": limit, "skipped": 0, "note": note})  # fmt: skip
                continue
            read += e.size
            f = FileRef(hist.label(oid), oid, steps_path, e)
            if need is not None:
                need(f, None)
            text = b"".join(whole(f, chunks(get, f), "not plotted"))
            got = _step_rows(text)
            total = len(got["rows"])
            start = max(0, total - limit) if offset is None else offset
            got["rows"] = got["rows"][start : start + limit]
            out.append({"path": show(steps_path), **got, "total": total, "offset": start,
                        "limit": limit})  # fmt: skip
    if path and not done:
        raise PathNotFound(
            f"{show(path)} is no per-step history of a metrics file {hist.label(oid)}'s "
            "pipeline records"
        )
    answer: dict[str, Any] = {"version": hist.label(oid), "id": oid.hex(), "files": out}
    if left - done:
        answer["more"] = len(left - done)
    return answer


def _step_rows(text: bytes) -> dict[str, Any]:
    """The rows and metric names of a per-step history file (see :func:`steps`)."""
    rows: list[dict[str, Any]] = []
    names: dict[str, None] = {}
    skipped = 0
    for line in text.splitlines():
        try:
            obj = json.loads(line)
        except (ValueError, RecursionError):  # (a line nested past what the parser takes)
            obj = None
        if not isinstance(obj, dict):
            skipped += 1 if line.strip() else 0
            continue
        step = obj.get("step")  # a whole number (true is an int in Python, no step)
        whole = isinstance(step, int) and not isinstance(step, bool)
        row: dict[str, Any] = {"step": step if whole else None}
        for k, val in obj.items():
            if k != "step" and _plottable(val):
                row[k] = val
                names.setdefault(k)
        rows.append(row)
    return {"metrics": list(names), "rows": rows, "skipped": skipped}


def _plottable(val: object) -> bool:
    """A number a chart can draw: finite, and an int no larger than a float holds (a
    400-digit int, which JSON reads, is left out as ``Infinity`` would be)."""
    if isinstance(val, bool) or not isinstance(val, int | float):
        return False
    try:
        return math.isfinite(val)
    except OverflowError:  # an int past the largest float
        return False


# ------------------------------------------------------------------------ store


def store(repo: Repository) -> dict[str, Any]:
    """``dvfs du --json`` of every version refs reach, and ``dvfs audit verify --json``."""
    return {"du": usage(repo, []).as_json(), "verify": audit.verify(repo.dir).as_json()}


def audit_log(repo: Repository, offset: int = 0, limit: int = 100) -> dict[str, Any]:
    """A page of ``dvfs audit --json``, newest first; ``damaged_lines``: the numbers of
    the log's lines that are no entry, left out as the CLI's listing leaves them (the
    page's verdict, ``dvfs audit verify``'s, names what was changed)."""
    offset, limit = page(offset, limit)
    bad: list[int] = []
    entries = list(audit.entries(repo.dir, skipped=bad))
    entries.reverse()
    return {"total": len(entries), "offset": offset, "limit": limit, "damaged_lines": bad,
            "entries": [e.as_json() for e in entries[offset : offset + limit]]}  # fmt: skip


# ------------------------------------------------------------------------ mounts


def mounts(source: str) -> dict[str, Any]:
    """``dvfs mounts --json`` rows of the mounts of ``source`` (a repository's root or
    a remote's URL; other mounts are not this dashboard's to show), each with its
    daemon's ``dvfs status MNT --json`` counts as ``pending`` (None for a read-only or
    dead mount; ``pending_error`` if the daemon did not answer), at most
    ``PENDING_PATHS`` paths of each kind."""
    want = os.path.realpath(source) if "://" not in source else source
    rows = []
    for st in statuses():
        if (os.path.realpath(st.source) if "://" not in st.source else st.source) != want:
            continue
        row = st.as_json()
        row["pending"] = None
        if st.state == "mounted" and st.work_dir is not None:
            try:
                got = control.call(st.mountpoint, {"op": "status"}, wait=STATUS_WAIT)
                control.check_answer_fields(got, "added", "modified", "deleted", "renamed")
            except DvfsError as exc:
                row["pending_error"] = str(exc)
            else:
                kinds = ("added", "modified", "deleted", "renamed")
                row["pending"] = {
                    "base_version": got.get("base_version"),
                    **{k: len(got[k]) for k in kinds},
                    "paths": {k: got[k][:PENDING_PATHS] for k in kinds},
                }
        rows.append(row)
    return {"source": source, "mounts": rows}
