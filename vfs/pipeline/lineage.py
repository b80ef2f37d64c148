"""``dvfs lineage``: how a path of a version was made, and what was made from it.

Upstream: the stage of the version's pipeline whose output is the path (or holds
it, or lies inside it), its command and run, and each of its inputs with its
content id as the run saw it and the version that introduced those bytes (the
oldest version of an unbroken run of versions, back along the first-parent chain,
holding that path with those bytes); then the same for each input that another
stage made, back to inputs no stage made. A params file another stage made is an
input too, as ``dvfs dag`` draws it (a run records the values it read, not the
file's id: its id is the one the maker's run recorded, or else the version's).

Downstream: every stage of the version's pipeline that reads the path (a dep, or a
file it reads params from, at, inside or holding it), then what reads their
outputs, and so on.

Only what the version records is used: its pipeline and its trees. A version walk
stops after ``WALK`` versions, and the walks of one :func:`upstream` after ``BUDGET``
versions in all (a forged pipeline of 1,024 chained stages, each input's bytes in no
version, in a history of 10,000 versions, would have it look at ten million): an input
whose walk was cut short says so (``Input.cut``), its version unknown.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vfs.errors import DvfsError
from vfs.model.version_codec import StageRecord
from vfs.pipeline.content import tree_path_id
from vfs.pipeline.graph import inside
from vfs.pipeline.record import read_runs
from vfs.repo.history import History

WALK = 10_000
BUDGET = 200_000  # versions looked at by one upstream walk, every input's together


@dataclass
class Budget:
    """What is left of an upstream walk's :data:`BUDGET`."""

    left: int = BUDGET


@dataclass
class Input:
    """One input of a stage: its id as the run saw it, and where those bytes come from."""

    path: bytes
    id: bytes
    since: str | None  # the version that introduced these bytes (None: in no version)
    now: bool  # the version looked at holds the path with these bytes
    made_by: str | None  # the stage of the pipeline making it, if any
    kind: str = "dep"  # or "params": a params file the stage read
    cut: bool = False  # the walk for ``since`` was cut short (BUDGET): it is not known


@dataclass
class Step:
    """One stage on the way up: what it made and from what."""

    stage: StageRecord
    outputs: list[bytes]  # its outputs asked about (or leading to the path)
    inputs: list[Input] = field(default_factory=list)


def _maker(pipeline: tuple[StageRecord, ...], path: bytes) -> list[tuple[StageRecord, list[bytes]]]:
    """Stages with an output at, inside or holding ``path``, and those outputs."""
    out = []
    for s in pipeline:
        hits = [p for p, _ in s.outs if inside(path, p) or inside(p, path)]
        if hits:
            out.append((s, hits))
    return out


class Cut(Exception):
    """An upstream walk used up its :data:`BUDGET`."""


def introduced(
    hist: History,
    start: bytes,
    path: bytes,
    oid: bytes,
    memo: dict[bytes, bytes],
    budget: Budget | None = None,
) -> str | None:
    """The version that introduced ``path`` with content id ``oid`` (see the module doc).
    Cut if ``budget`` runs out first."""
    since = None
    for n, (vid, v) in enumerate(hist.chain(start)):
        if n >= WALK:
            break
        if budget is not None:
            if budget.left <= 0:
                raise Cut
            budget.left -= 1
        try:
            here = tree_path_id(hist, v.tree, path, memo)
        except DvfsError:
            here = None
        if here == oid:
            since = vid
        elif since is not None:
            break
    return None if since is None else hist.revision(since)  # (another branch's: its id)


def upstream(hist: History, version: bytes, path: bytes) -> list[Step]:
    """The stages that made ``path`` in ``version``, and those before them (module doc)."""
    v = hist.version(version)
    memo: dict[bytes, bytes] = {}
    budget = Budget()
    found: dict[tuple[bytes, bytes], str | None] = {}  # (path, id): since

    def since_of(p: bytes, pid: bytes) -> tuple[str | None, bool]:
        """``introduced`` within the budget, and whether it was cut short."""
        if (p, pid) not in found:
            try:
                found[p, pid] = introduced(hist, version, p, pid, memo, budget)
            except Cut:
                return None, True
        return found[p, pid], False

    steps: list[Step] = []
    seen: set[str] = set()
    todo = [path]
    while todo:
        p = todo.pop(0)
        for stage, outs in _maker(v.pipeline, p):
            if stage.name in seen:
                continue
            seen.add(stage.name)
            step = Step(stage, outs)
            for d, did in stage.deps:
                makers = _maker(v.pipeline, d)
                try:
                    now = tree_path_id(hist, v.tree, d, memo) == did
                except DvfsError:
                    now = False
                since, cut = since_of(d, did)
                step.inputs.append(
                    Input(d, did, since, now, makers[0][0].name if makers else None, cut=cut)
                )
                if makers:
                    todo.append(d)
            for f in _made_params_files(v.pipeline, stage):
                makers = _maker(v.pipeline, f)
                fid = _made_id(hist, v.tree, makers, f, memo)
                if fid is None:
                    continue
                try:
                    now = tree_path_id(hist, v.tree, f, memo) == fid
                except DvfsError:
                    now = False
                since, cut = since_of(f, fid)
                step.inputs.append(Input(f, fid, since, now, makers[0][0].name, "params", cut))
                todo.append(f)
            steps.append(step)
    return steps


def _made_params_files(pipeline: tuple[StageRecord, ...], stage: StageRecord) -> list[bytes]:
    """The files ``stage`` read params from that another stage of ``pipeline`` makes
    (and that it does not also name as deps, which are inputs already)."""
    deps = {d for d, _ in stage.deps}
    files = dict.fromkeys(f for f, _, _ in stage.params)
    return [f for f in files if f not in deps and _maker(pipeline, f)]


def _made_id(
    hist: History, tree: bytes, makers: list[tuple[StageRecord, list[bytes]]], path: bytes,
    memo: dict[bytes, bytes],
) -> bytes | None:  # fmt: skip
    """The id of ``path``, an output of ``makers`` (or inside one): as the maker's run
    recorded it, else as the version holds it (None if it holds none)."""
    for s, _ in makers:
        for p, oid in s.outs:
            if p == path:
                return oid
    try:
        return tree_path_id(hist, tree, path, memo)
    except DvfsError:
        return None


def downstream(hist: History, version: bytes, path: bytes) -> list[tuple[StageRecord, bytes, int]]:
    """Stages reading ``path`` (or what is made from it): (stage, what it reads, depth)."""
    v = hist.version(version)
    out: list[tuple[StageRecord, bytes, int]] = []
    seen: set[str] = set()
    todo = [(path, 0)]
    while todo:
        p, depth = todo.pop(0)
        for s in v.pipeline:
            if s.name in seen:
                continue
            read = [*(d for d, _ in s.deps), *(f for f, _, _ in s.params)]
            reads = [d for d in read if inside(d, p) or inside(p, d)]
            if reads:
                seen.add(s.name)
                out.append((s, reads[0], depth))
                todo += [(o, depth + 1) for o, _ in s.outs]
    return out


def unrecorded_maker(hist: History, version: bytes, path: bytes) -> str | None:
    """The stage whose last run, as the version's ``dvfs.runs`` has it, made ``path``
    (an output at or holding it) although the version records no lineage for that run:
    the output was changed after it ran (by hand, or never made again). None if there
    is none. DvfsError if that file cannot be read: whether a stage made ``path`` is
    then not known."""
    v = hist.version(version)
    recorded = {s.name for s in v.pipeline}
    found = read_runs(hist, v.tree) or {}
    for s in found.values():
        if s.name not in recorded and any(inside(path, p) for p, _ in s.outs):
            return s.name
    return None


def known(hist: History, version: bytes, path: bytes, since: str | None) -> bool:
    """True if ``version`` holds ``path`` (``since``, from :func:`origin`, is not None)
    or records it as a stage's output (a directory without files, which no tree holds).
    A path merely inside an output directory, and not in the version, is not known."""
    if since is not None:
        return True
    return any(p == path for s in hist.version(version).pipeline for p, _ in s.outs)


def origin(hist: History, version: bytes, path: bytes) -> str | None:
    """The version since which ``path`` has held its bytes in ``version`` (None: absent)."""
    v = hist.version(version)
    memo: dict[bytes, bytes] = {}
    oid = tree_path_id(hist, v.tree, path, memo)
    if oid is None:
        return None
    return introduced(hist, version, path, oid, memo)
