"""Three-way merge of a pipeline's own files, stage by stage (``dvfs merge``).

Two branches that each add or change other stages both change ``dvfs.yaml`` and
``dvfs.runs``; path by path (``vfs.ops.merge``) each would be a conflict. Here each
stage is taken from the side that changed it, against the merge base:

- ``dvfs.yaml``: a stage is compared as read (command, wdir, deps, outs, params,
  metrics; not its line or layout). Theirs' change is applied to ours' text
  (``spec.with_stage`` / ``spec.without_stage``: the other stages' lines, comments
  included, stay as ours wrote them). The result must read back as a pipeline whose
  graph builds (no output made by two stages, no cycle).
- ``dvfs.runs``: a stage's record is compared by what it says was made from what
  (command, wdir, deps, outs, params, metrics): two runs that made the same outputs
  from the same inputs are one, whichever ran when. The file is written again whole
  (``runs.dump``), as every writer of it does.

Anything else stays a conflict, as before: a stage both sides changed differently, a
side that deleted the file while the other changed it, a file that does not read.
With ``prefer`` (``dvfs merge --ours`` or ``--theirs``) a stage both sides changed
differently takes that side's, and the other stages still merge: the other side's
stages are never dropped for one conflicting stage.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from vfs.errors import DvfsError
from vfs.model.version_codec import StageRecord
from vfs.pipeline.graph import build, find_cycle
from vfs.pipeline.runs import dump as dump_runs
from vfs.pipeline.runs import parse as parse_runs
from vfs.pipeline.spec import Stage, with_stage, without_stage
from vfs.pipeline.spec import parse as parse_spec
from vfs.pipeline.spec import read as read_spec

T = TypeVar("T")


def _merged_names(
    base: Mapping[str, T],
    ours: Mapping[str, T],
    theirs: Mapping[str, T],
    same: Callable[[T, T], bool],
    prefer: str | None = None,
) -> list[tuple[str, T | None]] | None:
    """Theirs' changes to apply to ours: (name, theirs' stage, or None to delete it),
    ours' order first, then the stages theirs added; None if a stage conflicts, unless
    ``prefer`` ("ours" or "theirs") names the side such a stage is taken from."""

    def eq(a: T | None, b: T | None) -> bool:
        return a is b if a is None or b is None else same(a, b)

    out: list[tuple[str, T | None]] = []
    for name in dict.fromkeys([*ours, *theirs, *base]):
        b, o, t = base.get(name), ours.get(name), theirs.get(name)
        if eq(o, t) or eq(b, t):
            continue  # ours stands
        if not eq(b, o):  # changed on both sides, differently
            if prefer is None:
                return None
            if prefer == "ours":
                continue
        out.append((name, t))
    return out


def _stage_key(s: Stage) -> Stage:
    return dataclasses.replace(s, line=0)


def merge_spec(
    base: bytes | None, ours: bytes, theirs: bytes, prefer: str | None = None
) -> bytes | None:
    """``dvfs.yaml`` merged (``base`` None: neither side had it), or None: a conflict
    (``prefer``: see the module docstring)."""
    try:
        b, o, t = read_spec(base), read_spec(ours), read_spec(theirs)
        changes = _merged_names(
            b.stages, o.stages, t.stages, lambda x, y: _stage_key(x) == _stage_key(y), prefer
        )
        if changes is None:
            return None
        cur = o
        for name, stage in changes:
            if stage is None:
                text = without_stage(cur, name) if name in cur.stages else cur.text
            else:
                text = with_stage(cur, stage)
            cur = parse_spec(text)
        if find_cycle(build(cur)) is not None:
            return None
    except DvfsError:
        return None
    return cur.text.encode("utf-8")


def _run_key(s: StageRecord) -> tuple[Any, ...]:
    return (s.cmd, s.wdir, s.deps, s.outs, s.params, s.metrics)


def merge_runs(
    base: bytes | None, ours: bytes, theirs: bytes, prefer: str | None = None
) -> bytes | None:
    """``dvfs.runs`` merged (``base`` None: neither side had it), or None: a conflict
    (``prefer``: see the module docstring)."""
    try:
        b = parse_runs(base) if base is not None else {}
        o, t = parse_runs(ours), parse_runs(theirs)
        changes = _merged_names(b, o, t, lambda x, y: _run_key(x) == _run_key(y), prefer)
        if changes is None:
            return None
        merged = dict(o)
        for name, rec in changes:
            if rec is None:
                merged.pop(name, None)
            else:
                merged[name] = rec
        return dump_runs(merged)
    except DvfsError:
        return None
