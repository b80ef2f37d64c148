"""Why a stage is stale: its last run in ``dvfs.runs`` against what it would run now.

A stage is **stale** when its last run differs from what it would run now: no run
recorded, the command or wdir changed, a dep's content, a param's value, the list of
deps, params or outputs, or an output is missing or not as the run left it. Each
reason is said (``dep data/raw.csv changed``, ``param train.lr 0.01 -> 0.02``,
``out model.pt missing``); ``vfs.pipeline.repro`` decides and runs.
"""

from __future__ import annotations

import json
import os
from typing import Any

from vfs.model.params import TomlDate, reads_as_other
from vfs.model.version_codec import StageRecord
from vfs.pipeline import values
from vfs.pipeline.spec import DEFAULT_PARAMS, Stage
from vfs.worktree.scan import show


def value_text(v: Any) -> str:
    """A parameter value in a message: text as it is (in double quotes if it would read
    as another value, ``"2"`` beside the number ``2``, as ``params diff`` shows it), a
    TOML date as its text and what it is, anything else as JSON."""
    if isinstance(v, TomlDate):
        return f"{v} (a TOML date)"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False) if reads_as_other(v) else v
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def param_name(file: bytes, key: str, wdir: bytes) -> str:
    """``train.lr`` for the stage's own params.yaml, ``config.json:train.lr`` otherwise."""
    default = os.path.join(wdir, DEFAULT_PARAMS) if wdir else DEFAULT_PARAMS
    return key if file == default else f"{show(file)}:{key}"


def reasons(
    stage: Stage,
    last: StageRecord | None,
    deps: dict[bytes, bytes | None],
    params: dict[tuple[bytes, str], Any],
    outs: dict[bytes, bytes | None],
) -> list[str]:
    """Why ``stage`` is stale against its last run (empty: it is fresh)."""
    if last is None:
        return ["no run recorded"]
    why: list[str] = []
    if last.cmd != stage.cmd:
        why.append("command changed")
    if last.wdir != stage.wdir:
        why.append("wdir changed")
    old = dict(last.deps)
    for d in stage.deps:
        if d not in old:
            why.append(f"dep {show(d)} added")
        elif old[d] != deps.get(d):
            why.append(f"dep {show(d)} changed")
    why += [f"dep {show(d)} removed" for d in old if d not in stage.deps]
    was = {(f, k): v for f, k, v in last.params}
    for (f, k), v in params.items():
        name = param_name(f, k, stage.wdir)
        if (f, k) not in was:
            why.append(f"param {name} added")
        elif not values.same(was[(f, k)], v):
            why.append(f"param {name} {value_text(was[(f, k)])} -> {value_text(v)}")
    why += [f"param {param_name(f, k, stage.wdir)} removed" for f, k in was if (f, k) not in params]
    made = dict(last.outs)
    for o in stage.outs:
        if o not in made:
            why.append(f"out {show(o)} added")
        elif outs.get(o) is None:
            why.append(f"out {show(o)} missing")
        elif outs[o] != made[o]:
            why.append(f"out {show(o)} changed")
    why += [f"out {show(o)} removed" for o in made if o not in stage.outs]
    if set(last.metrics) != set(stage.metrics) and not why:
        why.append("metrics changed")
    return why
