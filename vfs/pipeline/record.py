"""The lineage a version records: which stage made each output, from what.

Whoever makes a version (``dvfs commit``, a mount's ``dvfs snapshot``, an
experiment) calls :func:`version_pipeline` with the version's root tree before
storing the record. It reads the tree's ``dvfs.runs`` (``vfs.pipeline.runs``) and
keeps each run whose outputs the tree holds exactly as the run made them (same
content ids): an output changed by hand after its run, or not staged, is never
claimed to come from that run; a warning says which and what to do. Deps are kept as
the run saw them: that a dep changed since is the truth of a stale pipeline, shown
by ``dvfs lineage``, not a reason to forget how the outputs were made.

Only what the tree holds is read, so a version's lineage depends on its tree alone,
and the same tree gives the same lineage whoever records it.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Sequence
from typing import Any

from vfs.errors import DvfsError, ObjectMissing
from vfs.model.codec import Kind
from vfs.model.params import shown_command, shown_commands
from vfs.model.version_codec import StageRecord, Version
from vfs.pipeline.content import EMPTY_DIR_ID, tree_path_id
from vfs.pipeline.runs import MAX_FILE, parse
from vfs.repo.gitlink import RUNS_FILE
from vfs.repo.history import History
from vfs.store.reader import read_whole

Warn = Callable[[str], None]


def _quiet(_: str) -> None:
    """Drop a warning."""


def read_runs(hist: History, tree: bytes) -> dict[str, StageRecord] | None:
    """The runs of ``tree``'s ``dvfs.runs``; None if it has none. DvfsError if unreadable
    (FormatError if its bytes are not the digest the tree records for it)."""
    e = hist.lookup(tree, RUNS_FILE.encode())
    if e is None or e.kind != Kind.FILE:
        return None
    if e.size > MAX_FILE:
        raise DvfsError(f"{RUNS_FILE} is larger than {MAX_FILE >> 20} MiB")
    data = read_whole(RUNS_FILE, e.chunks, e.digest, hist.store.get)
    return parse(data, RUNS_FILE)


def version_pipeline(
    hist: History, tree: bytes, parent: Version | None = None, warn: Warn = _quiet
) -> tuple[StageRecord, ...]:
    """The pipeline record of a version whose root tree is ``tree`` (see above).

    A ``dvfs.runs`` that cannot be read or is not valid records no lineage, with a
    warning; the version is made all the same. When its bytes are simply not here (a
    mount of a remote holds only what was read), the runs of ``parent`` are checked
    instead if its ``dvfs.runs`` is the same file (same digest, same chunks); never
    when they are here and false (not the digest the tree records) or damaged.
    """
    try:
        found = read_runs(hist, tree)
    except DvfsError as exc:
        found = _parents_runs(hist, tree, parent) if isinstance(exc, ObjectMissing) else None
        if found is None:
            warn(f"{RUNS_FILE} was not read ({exc}): no lineage recorded in this version")
            return ()
    if not found:
        return ()
    memo: dict[bytes, bytes] = {}
    kept = []
    for stage in found.values():
        try:
            changed = [p for p, oid in stage.outs if not _holds(hist, tree, p, oid, memo)]
        except DvfsError as exc:
            warn(f"stage {stage.name}: its outputs could not be read ({exc}): lineage not recorded")
            continue
        if changed:
            shown = os.fsdecode(changed[0]) + (
                f" and {len(changed) - 1} more" if len(changed) > 1 else ""
            )
            warn(
                f"stage {stage.name}: {shown} is not as its last run made it (changed, or "
                "not staged): its lineage is not recorded; run `dvfs repro` to bring it up "
                "to date"
            )
            continue
        kept.append(stage)
    return tuple(kept)


def _holds(hist: History, tree: bytes, path: bytes, oid: bytes, memo: dict[bytes, bytes]) -> bool:
    """True if ``tree`` holds output ``path`` as a run made it (content id ``oid``); an
    output that was a directory without files is held by a tree without it too."""
    found = tree_path_id(hist, tree, path, memo)
    return found == oid or (found is None and oid == EMPTY_DIR_ID)


def _parents_runs(
    hist: History, tree: bytes, parent: Version | None
) -> dict[str, StageRecord] | None:
    """The parent's runs, if its ``dvfs.runs`` is the same file as ``tree``'s: the same
    digest over the same chunks."""
    if parent is None:
        return None
    name = RUNS_FILE.encode()
    mine, theirs = hist.lookup(tree, name), hist.lookup(parent.tree, name)
    if (
        mine is None
        or theirs is None
        or (mine.digest, mine.chunks) != (theirs.digest, theirs.chunks)
    ):
        return None
    return {s.name: s for s in parent.pipeline}


def iso_ns(ns: int) -> str:
    """UTC ISO-8601 time of a nanosecond timestamp, to the millisecond."""
    t = dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _path(p: bytes) -> str:
    return os.fsdecode(p) if p else "."


def describe_all(stages: Sequence[StageRecord]) -> list[dict[str, Any]]:
    """The stages of a version's pipeline as ``show`` exports them, their commands
    bounded together (``vfs.model.params.shown_commands``)."""
    cmds = shown_commands(s.cmd for s in stages)
    return [describe(s, cmd) for s, cmd in zip(stages, cmds, strict=True)]


def describe(s: StageRecord, command: str | list[str] | None = None) -> dict[str, Any]:
    """One stage of a version's pipeline as ``show`` exports it (YAML, JSON); its
    ``command`` as given, else bounded alone (``vfs.model.params.shown_command``)."""
    params: dict[str, dict[str, Any]] = {}
    for f, k, v in s.params:
        params.setdefault(_path(f), {})[k] = v
    r = s.run
    return {
        "stage": s.name,
        "command": shown_command(s.cmd) if command is None else command,
        "wdir": _path(s.wdir),
        "input": [{"path": _path(p), "id": i.hex()} for p, i in s.deps],
        "output": [{"path": _path(p), "id": i.hex()} for p, i in s.outs],
        "params": params,
        "metrics": [_path(m) for m in s.metrics],
        "run": {
            "exit": r.exit,
            "started": iso_ns(r.started_ns),
            "seconds": round(r.duration_ns / 1e9, 3),
            "host": r.host,
            "dvfs": r.dvfs,
            "python": r.python,
            "git_commit": r.git,
        },
    }
