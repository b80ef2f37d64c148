"""``dvfs.runs``: the last successful run of each stage, kept in the working tree.

``dvfs repro`` rewrites it (atomically, by renaming a new file over it) after each
stage it runs or restores, and stages it with the outputs; ``dvfs commit`` and
``dvfs snapshot`` read it from the tree they record (``vfs.pipeline.record``). It
lives in the working tree, like DVC's ``dvc.lock`` and unlike dvfs's own ``.dvfs``,
so that a pipeline run inside a mounted working tree (which has no ``.dvfs``) is
recorded by the mount's snapshot like any file, and so that checking out a version
brings back the runs its outputs came from. (``dvfs.lock`` already names the data
version for git, so the runs have a file of their own.)

Format, version 1 (YAML, written by dvfs; do not edit)::

    # dvfs.runs: written by `dvfs repro` (do not edit) ...
    version: 1
    stages:
      train:
        cmd: python train.py            # or a list: the argv, run without a shell
        wdir: .                         # or a repository path
        deps: {data/prepared: <64 hex>, train.py: <64 hex>}
        outs: {models/model.pt: <64 hex>, metrics.json: <64 hex>}
        params: {params.yaml: {train.lr: 0.01}}   # a TOML date: {"!toml-date": TEXT}
                                                   # (the user's {"!toml-date": v}:
                                                   # {"\\0!toml-date": v})
        metrics: [metrics.json]
        run: {exit: 0, started_ns: <int>, ns: <int>, host: <text>, dvfs: <text>,
              python: <text>, git: <commit> | null}

Paths are repository paths (a name that is not UTF-8 is written with Python's
surrogate escapes), ids are content ids (``vfs.pipeline.content``). What it holds
obeys the rules and bounds of a version record's pipeline (``vfs.model.version_codec``),
checked by the same decoder, and the file is at most ``MAX_FILE`` bytes: it is read from
working trees and from versions that may come from anyone. YAML aliases let a small
file name one long list many times, so the entries of all stages together are
counted as they are read, at most ``MAX_ROWS``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from vfs.errors import FormatError
from vfs.model.params import to_record, yaml_error
from vfs.model.version_codec import (
    MAX_PATHS,
    MAX_STAGES,
    StageRecord,
    decode_pipeline,
    encode_pipeline,
)
from vfs.quoting import quote_given
from vfs.repo.gitlink import RUNS_FILE

RUNS_FORMAT = 1
MAX_FILE = 32 << 20
MAX_ROWS = 1_000_000  # deps, outs, params and metrics of every stage together
HEADER = (
    f"# {RUNS_FILE}: the last run of each stage, written by `dvfs repro` (do not edit).\n"
    "# `dvfs commit` and `dvfs snapshot` record in each version the runs whose\n"
    "# outputs it holds as they were made.\n"
)


def _path(p: bytes) -> str:
    return os.fsdecode(p) if p else "."


def _plain(s: StageRecord) -> dict[str, Any]:
    """One stage as the YAML of the format above."""
    params: dict[str, dict[str, Any]] = {}
    for f, k, v in s.params:
        params.setdefault(_path(f), {})[k] = to_record(v)  # (a TOML date: {"!toml-date": TEXT})
    r = s.run
    return {
        "cmd": s.cmd if isinstance(s.cmd, str) else list(s.cmd),
        "wdir": _path(s.wdir),
        "deps": {_path(p): i.hex() for p, i in s.deps},
        "outs": {_path(p): i.hex() for p, i in s.outs},
        "params": params,
        "metrics": [_path(m) for m in s.metrics],
        "run": {
            "exit": r.exit, "started_ns": r.started_ns, "ns": r.duration_ns, "host": r.host,
            "dvfs": r.dvfs, "python": r.python, "git": r.git,
        },
    }  # fmt: skip


def dump(stages: Mapping[str, StageRecord]) -> bytes:
    """The bytes of a runs file holding ``stages`` (checked as ``parse`` will check them)."""
    from vfs.model import yaml12

    ordered = [stages[n] for n in sorted(stages)]
    encode_pipeline(ordered)  # FormatError if a bound is broken: never write what cannot be read
    body = {"version": RUNS_FORMAT, "stages": {s.name: _plain(s) for s in ordered}}
    return (HEADER + yaml12.dump(body)).encode("utf-8", "surrogateescape")


class Writer:
    """Runs files for a command that writes one after each stage (``dvfs repro``).

    :func:`dump` makes the YAML of every stage each time, so that a chain of N stages
    cost N dumps of up to N stages: a 1024-stage repro spent minutes in it. Here the
    text of each stage is made (and checked, as :func:`dump` checks it) once, when its
    record changes; the file is the same bytes :func:`dump` makes, so it is still
    written whole, atomically, after each stage. Texts made apart join into the text
    of the whole, as the entries of a block mapping do not depend on one another, and
    no two stages share an object (which YAML would write as an anchor and an alias):
    ``_plain`` builds each afresh.
    """

    def __init__(self) -> None:
        self._texts: dict[str, tuple[StageRecord, str]] = {}

    def dump(self, stages: Mapping[str, StageRecord]) -> bytes:
        """What :func:`dump` returns for ``stages`` (FormatError where it raises one)."""
        if not stages or len(stages) > MAX_STAGES:
            return dump(stages)
        parts = []
        outs: set[bytes] = set()
        for name in sorted(stages):
            s = stages[name]
            kept = self._texts.get(name)
            if kept is None or kept[0] is not s:
                kept = self._texts[name] = (s, _stage_text(s))
            parts.append(kept[1])
            for p, _ in s.outs:
                if p in outs:
                    return dump(stages)  # (an out of two stages: refused as dump refuses it)
                outs.add(p)
        for name in set(self._texts) - set(stages):
            del self._texts[name]
        text = f"{HEADER}version: {RUNS_FORMAT}\n{_STAGES}{''.join(parts)}"
        return text.encode("utf-8", "surrogateescape")


_STAGES = "stages:\n"


def _stage_text(s: StageRecord) -> str:
    """The lines of stage ``s`` in a runs file (checked as :func:`dump` checks it)."""
    from vfs.model import yaml12

    encode_pipeline([s])
    text = yaml12.dump({"stages": {s.name: _plain(s)}})
    assert text.startswith(_STAGES)
    return text[len(_STAGES) :]


def _need(cond: bool, where: str, what: str) -> None:
    if not cond:
        raise FormatError(f"{where}: {what}")


def _bytes_path(text: Any, where: str, *, root: bool = False) -> bytes:
    _need(isinstance(text, str) and bool(text), where, "a path is not text")
    if text == ".":
        _need(root, where, "'.' is not a path of a file")
        return b""
    return os.fsencode(text)


def _id(text: Any, where: str) -> bytes:
    _need(isinstance(text, str) and len(text) == 64, where, "an id is not 64 hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise FormatError(f"{where}: an id is not 64 hex digits") from None


def _sizes(name: Any, rec: Any, where: str) -> int:
    """How many entries stage ``rec`` holds, its shape checked (nothing built yet)."""
    _need(isinstance(name, str) and isinstance(rec, dict), where, "a stage is not a mapping")
    keys = {"cmd", "wdir", "deps", "outs", "params", "metrics", "run"}
    stage = quote_given(name)
    _need(
        set(rec) == keys, where, f"stage {stage} needs exactly the keys {', '.join(sorted(keys))}"
    )
    for k in ("deps", "outs", "params"):
        _need(isinstance(rec[k], dict), where, f"{k} of stage {stage} is not a mapping")
    _need(isinstance(rec["metrics"], list), where, f"metrics of stage {stage} is not a list")
    total = 0
    for k in ("deps", "outs", "params", "metrics"):
        _need(len(rec[k]) <= MAX_PATHS, where, f"{k} of stage {stage}: more than {MAX_PATHS:,}")
        total += len(rec[k])
    for kv in rec["params"].values():
        _need(isinstance(kv, dict), where, f"params of stage {stage} are not a mapping")
        total += len(kv)
    return total


def _row(name: str, rec: dict[str, Any], where: str) -> dict[str, Any]:
    """One stage of the file (checked by ``_sizes``) as a version record's pipeline row."""
    params = []
    for f, kv in rec["params"].items():
        params += [[_bytes_path(f, where), k, v] for k, v in kv.items()]
    cmd = rec["cmd"]
    run = rec["run"]
    return {
        "name": name,
        "cmd": cmd,
        "wdir": _bytes_path(rec["wdir"], where, root=True),
        "deps": sorted([_bytes_path(p, where), _id(i, where)] for p, i in rec["deps"].items()),
        "outs": sorted([_bytes_path(p, where), _id(i, where)] for p, i in rec["outs"].items()),
        "params": sorted(params, key=lambda x: (x[0], str(x[1]))),
        "metrics": sorted(_bytes_path(m, where) for m in rec["metrics"]),
        "run": run,
    }


def parse(data: bytes, where: str = RUNS_FILE) -> dict[str, StageRecord]:
    """The stages of a runs file's bytes; FormatError (naming ``where``) if not valid."""
    import yaml  # (only when runs are read)

    from vfs.model import yaml12

    _need(len(data) <= MAX_FILE, where, f"larger than {MAX_FILE >> 20} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:  # (as dvfs.yaml's: the line, not the codec's words)
        line = data[: exc.start].count(b"\n") + 1
        raise FormatError(f"{where} is not valid YAML (line {line}: not UTF-8 text)") from None
    try:
        doc = yaml12.load(text)
    except (yaml.YAMLError, RecursionError, UnicodeError) as exc:
        problem = yaml_error(exc) if str(exc) else type(exc).__name__
        raise FormatError(f"{where} is not valid YAML ({problem})") from None
    if doc is None:
        return {}
    _need(isinstance(doc, dict) and set(doc) == {"version", "stages"}, where, "bad keys")
    _need(doc["version"] == RUNS_FORMAT, where, f"unknown version {doc['version']!r}")
    stages = doc["stages"]
    if stages is None:
        return {}
    _need(isinstance(stages, dict), where, "stages is not a mapping")
    _need(len(stages) <= MAX_STAGES, where, f"more than {MAX_STAGES:,} stages")
    ordered = sorted(stages.items(), key=lambda x: str(x[0]))
    total = sum(_sizes(n, rec, where) for n, rec in ordered)
    _need(total <= MAX_ROWS, where, f"more than {MAX_ROWS:,} deps, outs, params and metrics")
    rows = [_row(n, rec, where) for n, rec in ordered]
    try:
        decoded = decode_pipeline(rows)
    except FormatError as exc:
        raise FormatError(f"{where}: {exc}") from None
    return {s.name: s for s in decoded}
