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
stops after ``WALK`` versions, and the walks of one lineage (:class:`Origins`: those of
:func:`upstream`, or of the dashboard's graph of every stage) after ``BUDGET``
versions in all (a forged pipeline of 1,024 chained stages, each input's bytes in no
version, in a history of 10,000 versions, would have it look at ten million): an input
whose walk was cut short says so (``Input.cut``), its version unknown. The dashboard's
lineage lists each stage's inputs as :func:`upstream` does (:func:`pipeline_inputs`).

Test hook: ``DVFS_TEST_LINEAGE_BUDGET=<n>`` makes a walk's bound ``n`` versions instead
of ``BUDGET`` (:func:`budget`), so that a test cuts a forged pipeline's walks short
without forging a history of hundreds of thousands of versions.
"""

from __future__ import annotations

import bisect
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from vfs.errors import DvfsError
from vfs.model.version_codec import StageRecord
from vfs.pipeline.content import tree_path_id
from vfs.pipeline.graph import inside
from vfs.pipeline.record import read_runs
from vfs.repo.history import History

WALK = 10_000
BUDGET = 200_000  # versions looked at by one upstream walk, every input's together
BUDGET_ENV = "DVFS_TEST_LINEAGE_BUDGET"  # test hook: this many instead


def budget() -> int:
    """The versions one upstream walk may look at: :data:`BUDGET`, or the number the
    test hook :data:`BUDGET_ENV` gives."""
    hook = os.environ.get(BUDGET_ENV, "")
    return int(hook) if hook.isascii() and hook.isdigit() else BUDGET


@dataclass
class Budget:
    """What is left of an upstream walk's :func:`budget`."""

    left: int = field(default_factory=budget)


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


class _Paths:
    """The paths each stage of a pipeline names (its outputs, or what it reads), to find
    those at, inside or holding a path without looking at each: a forged pipeline of
    1,024 stages naming thousands of paths each made one lookup read millions, and a
    lineage make a lookup for each of them."""

    def __init__(
        self, pipeline: tuple[StageRecord, ...], named: Callable[[StageRecord], list[bytes]]
    ) -> None:
        self.pipeline = pipeline
        self.named = [named(s) for s in pipeline]
        self.at: dict[bytes, list[tuple[int, int]]] = {}  # path: (stage, place) naming it
        for i, paths in enumerate(self.named):
            for j, p in enumerate(paths):
                self.at.setdefault(p, []).append((i, j))
        self.order = sorted(self.at)
        self.lengths = {len(p) for p in self.at}
        self.found: dict[bytes, list[tuple[StageRecord, list[bytes]]]] = {}
        self.masks: dict[bytes, int] = {}  # path: the stages found, as bits (1 << place)

    def find(self, path: bytes) -> list[tuple[StageRecord, list[bytes]]]:
        """The stages naming a path at, inside or holding ``path``, in the pipeline's
        order, each with those paths in the order it names them."""
        if path in self.found:
            return self.found[path]
        hits = list(self.at.get(path, ()))
        n = path.find(b"/")
        while n != -1:  # the paths holding it
            if n in self.lengths:
                hits += self.at.get(path[:n], ())
            n = path.find(b"/", n + 1)
        start = bisect.bisect_left(self.order, path + b"/")
        end = bisect.bisect_left(self.order, path + b"0", start)  # ("0" follows "/")
        for p in self.order[start:end]:  # the paths inside it
            hits += self.at[p]
        by_stage: dict[int, list[bytes]] = {}
        for i, j in sorted(set(hits)):
            by_stage.setdefault(i, []).append(self.named[i][j])
        found = [(self.pipeline[i], paths) for i, paths in by_stage.items()]
        self.found[path] = found
        self.masks[path] = sum(1 << i for i in by_stage)
        return found

    def mask(self, path: bytes) -> int:
        """The stages :meth:`find` finds, as bits: stage ``i`` of the pipeline is ``1 << i``
        (what each of a stage's paths finds is joined with one ``|``, however many
        stages it finds)."""
        if path not in self.masks:
            self.find(path)
        return self.masks[path]


def _outs(s: StageRecord) -> list[bytes]:
    return [p for p, _ in s.outs]


def _reads(s: StageRecord) -> list[bytes]:
    return [*(d for d, _ in s.deps), *(f for f, _, _ in s.params)]


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


class Origins:
    """The versions that introduced the bytes of the inputs one lineage asks about,
    looking back from ``version``: the walks share one :class:`Budget`, and an input
    asked again is not walked again."""

    def __init__(self, hist: History, version: bytes, memo: dict[bytes, bytes]) -> None:
        self.hist = hist
        self.version = version
        self.memo = memo
        self.budget = Budget()
        self.found: dict[tuple[bytes, bytes], str | None] = {}  # (path, id): since

    def since(self, path: bytes, oid: bytes) -> tuple[str | None, bool]:
        """:func:`introduced` within the budget, and whether it was cut short."""
        if (path, oid) not in self.found:
            try:
                self.found[path, oid] = introduced(
                    self.hist, self.version, path, oid, self.memo, self.budget
                )
            except Cut:
                return None, True
        return self.found[path, oid], False


def upstream(hist: History, version: bytes, path: bytes) -> list[Step]:
    """The stages that made ``path`` in ``version``, and those before them (module doc)."""
    v = hist.version(version)
    memo: dict[bytes, bytes] = {}
    since_of = Origins(hist, version, memo).since
    made = _Paths(v.pipeline, _outs)
    steps: list[Step] = []
    seen: set[str] = set()
    todo = deque([path])
    while todo:
        p = todo.popleft()
        for stage, outs in made.find(p):
            if stage.name in seen:
                continue
            seen.add(stage.name)
            step = Step(stage, outs, _inputs(hist, v.tree, stage, made, memo, since_of))
            todo += [i.path for i in step.inputs if i.made_by is not None]
            steps.append(step)
    return steps


def pipeline_inputs(hist: History, version: bytes, origins: Origins) -> list[list[Input]]:
    """The inputs of each stage of ``version``'s pipeline, in its order, as
    :func:`upstream` gives them (the dashboard's lineage graph); their versions are
    found by ``origins``, looking back from ``version``, within its budget."""
    v = hist.version(version)
    made = _Paths(v.pipeline, _outs)
    return [_inputs(hist, v.tree, s, made, origins.memo, origins.since) for s in v.pipeline]


def _inputs(
    hist: History, tree: bytes, stage: StageRecord, made: _Paths, memo: dict[bytes, bytes],
    since_of: Callable[[bytes, bytes], tuple[str | None, bool]],
) -> list[Input]:  # fmt: skip
    """The inputs of ``stage``, of a version whose tree is ``tree`` and whose stages make
    ``made``: its deps, then the files it reads params from that another stage makes
    (module doc)."""
    out = []
    for d, did in stage.deps:
        makers = made.find(d)
        try:
            now = tree_path_id(hist, tree, d, memo) == did
        except DvfsError:
            now = False
        since, cut = since_of(d, did)
        out.append(Input(d, did, since, now, makers[0][0].name if makers else None, cut=cut))
    for f in _made_params_files(made, stage):
        makers = made.find(f)
        fid = _made_id(hist, tree, makers, f, memo)
        if fid is None:
            continue
        try:
            now = tree_path_id(hist, tree, f, memo) == fid
        except DvfsError:
            now = False
        since, cut = since_of(f, fid)
        out.append(Input(f, fid, since, now, makers[0][0].name, "params", cut))
    return out


def _made_params_files(made: _Paths, stage: StageRecord) -> list[bytes]:
    """The files ``stage`` read params from that another stage of the pipeline makes
    (``made``: its outputs; and that it does not also name as deps, which are inputs
    already)."""
    deps = {d for d, _ in stage.deps}
    files = dict.fromkeys(f for f, _, _ in stage.params)
    return [f for f in files if f not in deps and made.find(f)]


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


def stage_edges(pipeline: tuple[StageRecord, ...]) -> list[tuple[StageRecord, StageRecord]]:
    """(maker, reader) for each stage of ``pipeline`` that reads (a dep, or a file it
    reads params from) what another makes, at, inside or holding it: by reader, then
    maker, in the pipeline's order. Through the index of the outputs, each path looked
    up once: comparing every stage's reads with every other's outputs made a forged
    pipeline of 200 stages naming 200 paths each take an hour."""
    made = _Paths(pipeline, _outs)
    out: list[tuple[StageRecord, StageRecord]] = []
    for i, s in enumerate(pipeline):
        bits = 0
        for p in _reads(s):
            bits |= made.mask(p)
        bits &= ~(1 << i)
        out += [(pipeline[j], s) for j in range(bits.bit_length()) if bits >> j & 1]
    return out


def downstream(hist: History, version: bytes, path: bytes) -> list[tuple[StageRecord, bytes, int]]:
    """Stages reading ``path`` (or what is made from it): (stage, what it reads, depth)."""
    v = hist.version(version)
    read = _Paths(v.pipeline, _reads)
    out: list[tuple[StageRecord, bytes, int]] = []
    seen: set[str] = set()
    todo = deque([(path, 0)])
    while todo:
        p, depth = todo.popleft()
        for s, reads in read.find(p):
            if s.name not in seen:
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
