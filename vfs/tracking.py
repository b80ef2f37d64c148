"""``vfs.track``: a training run in Python recorded as one version, with its lineage.

This module is ``vfs.tracking``: a submodule named ``track`` would replace the function
``vfs.track`` on the package as soon as anything imported it.

::

    with vfs.track(repo=".", message="train resnet", params={"lr": 3e-4}) as run:
        data = run.input("data/train")            # its content id is taken now
        for epoch in range(10):
            ...
            run.log_metrics({"acc": 0.91, "loss": 0.23}, step=epoch)
        model.save(run.output("models/model.pt"))  # staged when the block ends
    run.version                                    # the VersionInfo of the new version

When the block ends without an exception, the run is recorded the way ``dvfs repro``
records a stage (``vfs.pipeline``), so everything that reads pipelines reads it:

1. the metrics go to ``metrics`` (default ``metrics.json``: the last value of each
   metric, and ``step``, the last step logged; written as JSON, so a ``.toml`` name,
   which every reader would read as TOML, is refused; NaN and the infinities as the
   floats its readers read back: ``_metrics_text``) and their history, one JSON object
   per call of ``log_metrics``, to the same name with ``.steps.jsonl`` for
   ``.json``; both are outputs of the run. Past ``MAX_STEPS`` (100,000) calls the
   history keeps every 2nd call, then every 4th past twice that, and so on, and the
   last, so that it stays bounded over any run (a warning says so): training never
   stops for it;
2. every output must exist, and every input must still hold the content it had when
   ``input()`` took it (a run whose input changed under it would record false
   lineage): otherwise ``UsageError`` and nothing is recorded. A path outside the
   repository, below a symbolic link (dvfs never reads the working tree through
   one) or a link leading out of the repository (the run would record the link,
   not the data) is refused when ``input()`` or ``output()`` is given it, and a
   link made there during the block before anything is recorded;
3. the outputs are staged as ``dvfs add`` stages them (a path below an output directory
   that ignore rules keep out is left out, with a ``DvfsWarning`` naming it and the
   rule), and the run is written into
   ``dvfs.runs`` (``vfs.pipeline.runs``) as stage ``name`` (default ``train``): deps,
   the inputs with their content ids; outs, the outputs; metrics, the metrics file;
   cmd, the Python command line (``vfs._os.program.command_line``: ``sys.argv``,
   ``python -c CODE`` with the code cut, or ``jupyter NOTEBOOK``); run facts, as
   ``repro`` gives them (a name ``dvfs.yaml`` gives a stage is refused when the block
   starts: the run would replace that stage's record; so is an output, or metrics
   file, that overlaps an output of one of its stages, when given: an output belongs
   to one stage, and ``dvfs repro`` would make it again over the run's).
   A run of another stage that claimed one of these outputs, a path inside one or a
   folder holding one, is dropped from it (its record would name content the version
   no longer holds). A record ``dvfs.runs`` cannot hold (past ``MAX_STAGES`` stages)
   is refused before anything is written.
   A run records at most ``MAX_PATHS`` (10,000) inputs, and as many outputs with its
   metrics files (a stage's bound, ``vfs.model.version_codec``): one more is refused
   when ``input()`` or ``output()`` is given it;
4. ``dvfs.runs`` is staged and one version is committed (``vfs.ops.commit.commit``)
   with ``message``, ``params`` and ``tag``; the commit's lineage step keeps the run,
   so ``dvfs lineage``, ``dvfs metrics show`` and ``dvfs compare`` show it. An input
   the version does not hold as ``input()`` took it (untracked, or changed and not
   staged: its lineage names content "in no version") is named in a warning, as
   ``dvfs repro`` notes one.

Steps 2 to 4 hold the repository lock throughout: a lock another command holds
past ``DVFS_LOCK_TIMEOUT`` stops the recording (``LockBusy``) before anything is
written, and nothing is staged or committed between the checks and the commit.

The message, parameters and tag (its name, and that no tag has it yet) are checked
when the run is made and when the block starts, not after hours of training; a tag
made meanwhile stops the recording before anything is written. So does a merge in
progress (the version would be the merge); a change staged apart from the run (which
the version would hold as if the run had made it) keeps the block from starting, and
one staged while it ran goes into the version with a warning naming it (the run is
not thrown away for it).
A ``dvfs.runs`` that cannot be read is refused when the block starts, and, damaged
meanwhile, before anything is written.
A metrics file that ignore rules keep out is refused when the first metrics are
logged. While the block runs
the working tree's pipeline lock is held (as by ``dvfs repro``: another ``repro`` or
``track`` waits for nothing and is refused; a ``track`` nested in the block is told
so), and the outputs declared are listed as being written (``vfs.pipeline.writing``:
``dvfs add`` refuses them until the run stages them). ``input``, ``output`` and
``log_metrics`` work inside the block only: after
it, what they would add could no longer be recorded, so they raise ``UsageError``
rather than drop it. A Run is used once.

An exception in the block (Ctrl-C included) records nothing: no metrics file, no
``dvfs.runs`` change, nothing staged, no version; the exception propagates. But
``sys.exit()`` and ``sys.exit(0)`` end the block as a success: the run is recorded,
then the ``SystemExit`` propagates (a script's ``main()`` made with click exits so
when it is done). A Ctrl-C
that arrives while the version is being recorded is held until it is (a few
seconds at most: the outputs are already written), then raised; one that arrives
while the run waits for another command's repository lock stops the wait, with
nothing recorded.
"""

from __future__ import annotations

import json
import math
import operator
import os
import signal
import stat
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, SupportsIndex

from vfs import api_types, settings
from vfs._os.program import command_line
from vfs.api import Repo
from vfs.api_types import (
    PathArg,
    VersionInfo,
    message_arg,
    names_dir,
    params_arg,
    repo_path,
    text_arg,
)
from vfs.errors import DvfsError, FormatError, PathNotFound, UsageError
from vfs.model import params as version_params
from vfs.model import version_codec
from vfs.model.names import is_reserved, is_reserved_at_root, reserved_path
from vfs.model.version_codec import STAGE_NAME, StageRecord, StageRun
from vfs.ops import commit, workflow
from vfs.ops.behind import merge_in_progress
from vfs.ops.diff import diff_maps
from vfs.ops.status import base_files
from vfs.ops.store_limit import keep_within_max_size
from vfs.pipeline import runs as runs_file
from vfs.pipeline import workspace
from vfs.pipeline.repro import RunFacts
from vfs.pipeline.spec import OWN_FILES, Stage
from vfs.pipeline.values import MAX_METRIC_TEXT, history_name, kind_of
from vfs.pipeline.writing import FILE_NAME as WRITING_FILE
from vfs.pipeline.writing import Writing
from vfs.quoting import escape_text, finite, quote_given, quote_name, shell_word
from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE
from vfs.repo.record import tag_free
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import DVFS_DIR, entering
from vfs.worktree.ignore import Ignores
from vfs.worktree.pools import Workers
from vfs.worktree.scan import reserved_message, scan

MAX_STEPS = 100_000  # rows of the history file: past it, every other one is kept
MAX_METRICS = 1_000  # distinct metric names
MAX_NAME = 256  # characters of a metric name


_LIVE: set[Path] = set()  # working trees with a run in its block, in this process (real paths)
_LIVE_LOCK = threading.Lock()


def _succeeded(exc: BaseException | None) -> bool:
    """Whether ``exc`` ends the block as a success: ``sys.exit()`` or ``sys.exit(0)``
    (a click command ends so, in standalone mode, once it has done its work)."""
    return isinstance(exc, SystemExit) and exc.code in (None, 0)


class Run:
    """One tracked run (module docstring); made by :func:`track`, used as ``with``."""

    def __init__(
        self, repo: Repo | PathArg, message: str, params: Mapping[str, Any] | None,
        name: str, tag: str | None, metrics: PathArg,
    ) -> None:  # fmt: skip
        if not message_arg(message).strip():
            raise UsageError("the run's message is empty: track(message=...) says what it is")
        version_params.message(message)
        self.params = version_params.check(params_arg(params))
        if not STAGE_NAME.fullmatch(text_arg(name, "name")):  # (as dvfs.yaml's, checked now)
            raise UsageError(
                f"name={quote_name(name)}: a stage name is an ASCII letter, digit or _ "
                "followed by at most 99 ASCII letters, digits, _, . or -"
            )
        if tag is not None:
            check_ref_name(text_arg(tag, "tag"), "tag")
        self._stack = ExitStack()
        self.repo = repo if isinstance(repo, Repo) else Repo(repo)
        if self.repo is not repo:  # opened for the run: closed when it ends
            self._stack.callback(self.repo.close)
        try:
            if self.repo.root is None:
                raise UsageError(f"{self.repo.url} is read in place: track a run in a clone")
            self.root: Path = self.repo.root
            self._live = self.root.resolve()  # (one tree by any path: through a link too)
            tag_free(self.repo.repository, tag)
            self.message, self.name, self.tag = message, name, tag
            self.metrics_path = repo_path(self._inside(metrics))
            if not self.metrics_path:
                raise UsageError("metrics= names a file, not the root")
            _not_reserved(self.metrics_path)
            self.history_path = history_name(self.metrics_path)
            for rel in (self.metrics_path, self.history_path):
                _not_own_file(rel, "metrics=")
            if kind_of(self.metrics_path) == "toml":
                raise UsageError(
                    f"metrics= names {quote_name(self.metrics_path)}, a TOML file: the run "
                    "writes its metrics as JSON, which every reader of that name would "
                    "refuse; give a .json (or .yaml) file"
                )
        except BaseException:
            self._stack.close()
            raise
        self.inputs: dict[bytes, bytes] = {}
        self.outputs: list[bytes] = []
        self.latest: dict[str, Any] = {}
        self.steps: list[dict[str, Any]] = []  # the history: every ``stride``-th call's row
        self.last_step: int | None = None
        self.calls = 0  # of log_metrics
        self.stride = 1  # doubled each time the history passes MAX_STEPS rows
        self.last_row: dict[str, Any] | None = None  # the last call's, kept in the history
        self.version: VersionInfo | None = None  # set when the block has been recorded
        self.committed: bytes | None = None  # its id, once committed
        self.stage_outs: dict[bytes, str] = {}  # outputs of dvfs.yaml's stages (at the start)
        self._started = 0
        self._state = "new"  # "running" inside the block, "ended" after it

    # the block --------------------------------------------------------------------------

    def __enter__(self) -> Run:
        if self._state != "new":
            raise UsageError(f"run {self.name} was already used: make another with vfs.track()")
        with _LIVE_LOCK:
            if self._live in _LIVE:
                raise UsageError(
                    f"a run is already being tracked in {self.root}: vfs.track blocks do not "
                    "nest; log to that run, or start this one after its block"
                )
            _LIVE.add(self._live)
        try:
            self._enter()
        except BaseException:
            with _LIVE_LOCK:
                _LIVE.discard(self._live)
            raise
        self._state = "running"
        return self

    def _enter(self) -> None:
        tag_free(self.repo.repository, self.tag)
        head = self.repo.repository.history.head()
        if head.detached is not None:
            raise UsageError(
                "HEAD is detached: the run could not be committed; run `dvfs switch -c NAME` "
                "to record it on a new branch"
            )
        self._alone(during=False)
        ws = workspace.find(self.root)
        if not ws.own_index or ws.root != self.root:
            ws.close()
            raise UsageError(f"{self.root} is not the root of a repository's working tree")
        self.ws = self._stack.enter_context(_closing(ws))
        self.workers = self._stack.enter_context(Workers(settings.threads()))
        try:
            self._stack.enter_context(ws.exclusive())
            assert ws.repo is not None
            self.writing = Writing(ws.repo.dir / WRITING_FILE, "vfs.track", "run")
            self._stack.callback(self.writing.close)
            stages = _stages(ws)
            # every output of a stage of dvfs.yaml, and the stage: an output is one stage's
            self.stage_outs = {o: st.name for st in stages.values() for o in st.outs}
            workspace.load_runs(ws)  # (a damaged one refused now, not after the training)
            if self.name in stages:
                raise UsageError(
                    f"stage {self.name} is defined in {PIPELINE_FILE}: this run would "
                    "replace the record of its last run (and its outputs' lineage); give the "
                    "run a name of its own: vfs.track(..., name=...)"
                )
        except BaseException:
            self._stack.close()
            raise
        try:
            for rel in (self.metrics_path, self.history_path):
                self._writable(rel)
        except BaseException:
            self._stack.close()
            raise
        self.state = workspace.TreeState(ws, self.workers, _warn)
        self._started = time.time_ns()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if kind is None or _succeeded(exc):
                self._record()
        finally:
            self._state = "ended"
            try:
                self._stack.close()
            finally:
                with _LIVE_LOCK:
                    _LIVE.discard(self._live)

    def _running(self, what: str) -> None:
        if self._state == "new":
            raise UsageError(f"{what} is used inside its block: with vfs.track(...) as run:")
        if self._state == "ended":
            done = f"recorded as {self.version.version}" if self.version else "ended"
            raise UsageError(
                f"{what} after the block of run {self.name}: the run was {done}, nothing more "
                "is recorded in it; do this inside the block"
            )

    # what the block says ----------------------------------------------------------------

    def input(self, path: PathArg) -> Path:
        """Record ``path`` (a file or directory of the working tree) as an input, with the
        content id it has now; its absolute path, to read it."""
        self._running("run.input()")
        rel = self._own(path)
        clash = next((o for o in self.outputs if _overlap(o, rel)), None)
        if clash is not None:
            raise UsageError(
                f"{quote_name(rel)} overlaps output {quote_name(clash)} of run {self.name}: "
                "an input the run writes would change under it (its lineage would be false)"
            )
        mine = next((m for m in self._own_files() if _overlap(m, rel)), None)
        if self.steps and mine is not None:
            raise UsageError(
                f"{quote_name(rel)} overlaps the metrics file {quote_name(mine)} of run "
                f"{self.name}: the run writes it when the block ends, so the input would "
                "change under it (its lineage would be false); give the run another metrics="
            )
        if rel not in self.inputs and len(self.inputs) >= version_codec.MAX_PATHS:
            raise UsageError(
                f"run {self.name} would record more than {version_codec.MAX_PATHS:,} "
                f"inputs: give their directory as one input ({quote_name(rel)} was not taken)"
            )
        found = self.state.ids([rel])[rel]
        if found is None:
            raise PathNotFound(f"{quote_name(rel)} (an input of run {self.name}) does not exist")
        self.inputs[rel] = found
        return self.root / os.fsdecode(rel)

    def output(self, path: PathArg) -> Path:
        """Declare ``path`` an output, staged and recorded when the block ends; its
        absolute path, to write it."""
        self._running("run.output()")
        rel = self._own(path)
        if rel in (self.metrics_path, self.history_path, RUNS_FILE.encode()):
            raise UsageError(f"{quote_name(rel)} is written by the run itself")
        _not_own_file(rel, "run.output()")
        clash = next((i for i in self.inputs if _overlap(i, rel)), None)
        if clash is not None:
            raise UsageError(
                f"{quote_name(rel)} overlaps input {quote_name(clash)} of run {self.name}: "
                "an input the run writes would change under it (its lineage would be false)"
            )
        self._refuse_stage_output(rel, "")
        self._refuse_ignored([rel], is_dir=names_dir(path))
        if rel not in self.outputs:
            if len(self.outputs) + len(self._own_files()) >= version_codec.MAX_PATHS:
                raise UsageError(
                    f"run {self.name} would record more than {version_codec.MAX_PATHS:,} "
                    "outputs, its metrics files included: give their directory as one "
                    f"output ({quote_name(rel)} was not taken)"
                )
            self.outputs.append(rel)
            self.writing.start(self.name, self.outputs)  # `dvfs add` refuses it meanwhile
        return self.root / os.fsdecode(rel)

    def _refuse_stage_output(self, rel: bytes, hint: str) -> None:
        """UsageError if ``rel`` overlaps an output of a stage of ``dvfs.yaml``, as
        ``dvfs run`` refuses a second stage making it: ``dvfs repro`` would make that
        output again over the run's, and the run's record would claim it meanwhile."""
        clash = next((o for o in self.stage_outs if _overlap(o, rel)), None)
        if clash is not None:
            what = "is" if clash == rel else f"overlaps {quote_name(clash)},"
            raise UsageError(
                f"{quote_name(rel)} {what} an output of stage {self.stage_outs[clash]} "
                f"({PIPELINE_FILE}): an output belongs to one stage, and `dvfs repro` would "
                f"make it again over the run's{hint}"
            )

    def log_metrics(self, values: Mapping[str, Any], step: SupportsIndex | None = None) -> None:
        """Record metric values (numbers, booleans or short text), at ``step`` if given."""
        self._running("run.log_metrics()")
        if not isinstance(values, Mapping):
            raise TypeError(
                "log_metrics takes a mapping of names to values (a dict), not "
                f"{type(values).__name__}"
            )
        at = None if step is None else _step(step)
        row: dict[str, Any] = {} if at is None else {"step": at}
        given: dict[str, Any] = {}  # each name as the caller gave it
        for k, v in values.items():
            key = str(k)
            if key in given:  # (1 and "1": one name in the metrics file)
                raise UsageError(
                    f"metric {quote_name(key)} is given twice (as {quote_given(repr(given[key]))} "
                    f"and {quote_given(repr(k))}): give each metric once"
                )
            given[key] = k
            if key == "step":  # (the metrics file's own key: the last step logged)
                raise UsageError(
                    "step is not a metric: give it as run.log_metrics(values, step=N), "
                    "and the history records each call's step"
                )
            if not key or len(key) > MAX_NAME or escape_text(key) != key:
                raise UsageError(
                    f"metric name {quote_name(key[:60])} is not usable: give 1 to {MAX_NAME} "
                    "characters without control characters"
                )
            row[key] = _metric(key, v)
        if len(set(self.latest) | set(row)) > MAX_METRICS:
            raise UsageError(f"more than {MAX_METRICS} distinct metrics")
        if not self.steps:  # the first: the metrics files will be written, and staged
            for mine in self._own_files():
                self._refuse_stage_output(mine, "; give the run another metrics= file")
            self._refuse_ignored(list(self._own_files()), metrics=True)
        for mine in self._own_files():
            clash = next((i for i in self.inputs if _overlap(i, mine)), None)
            if clash is not None:
                raise UsageError(
                    f"the metrics file {quote_name(mine)} overlaps input {quote_name(clash)} "
                    f"of run {self.name}: writing the metrics would change the input (its "
                    "lineage would be false); give the run another metrics= file"
                )
        if self.calls % self.stride == 0:
            self.steps.append(row)
            if len(self.steps) > MAX_STEPS:  # bounded, and still the whole run's course
                self.steps = self.steps[::2]
                self.stride *= 2
                if self.stride == 2:
                    _warn(
                        f"run {self.name}: more than {MAX_STEPS:,} calls of log_metrics: its "
                        f"history ({quote_name(self.history_path)}) keeps every "
                        "2nd, then 4th, ... call from here on, and the last; "
                        f"{quote_name(self.metrics_path)} has the last values"
                    )
        self.calls += 1
        self.last_row = row
        self.latest.update({k: v for k, v in row.items() if k != "step"})
        if at is not None:
            self.last_step = at

    # recording --------------------------------------------------------------------------

    def _own_files(self) -> tuple[bytes, bytes]:
        """The files the run writes itself: the metrics and their history."""
        return self.metrics_path, self.history_path

    def _writable(self, rel: bytes) -> None:
        """UsageError unless the run can write its own file ``rel``: not a directory,
        not below a file, not through a link."""
        self._no_link_out(rel)
        parts = rel.split(b"/")
        for i in range(1, len(parts) + 1):
            here = b"/".join(parts[:i])
            try:
                mode = os.lstat(self.root / os.fsdecode(here)).st_mode
            except OSError:
                return  # nothing there: the run makes it
            if i < len(parts) and not stat.S_ISDIR(mode):
                raise UsageError(
                    f"metrics= names {quote_name(rel)}, below {quote_name(here)}, which is "
                    "not a directory: the metrics could not be written; give another file"
                )
            if i == len(parts) and stat.S_ISDIR(mode):
                raise UsageError(
                    f"metrics= names {quote_name(rel)}, a directory: the metrics could not be "
                    "written there; give a file (metrics.json)"
                )

    def _refuse_ignored(
        self, rels: list[bytes], is_dir: bool = False, metrics: bool = False
    ) -> None:
        """UsageError if an output would not be staged, its path being ignored
        (``metrics``: the run's metrics files, checked when the first metrics are logged,
        not when the block ends)."""
        repo = self.repo.repository
        index = repo.index()
        elsewhere = "give the run another metrics= file" if metrics else "write it elsewhere"
        with Ignores(self.root, lambda: sorted(index.paths()), _warn) as ign:
            for rel in rels:
                rule = workflow.ignoring_rule(repo, ign, rel, is_dir)
                if rule is not None:
                    raise UsageError(
                        f"{quote_name(rel)} (an output of run {self.name}) is ignored by "
                        f"{rule}: it could not be recorded; {elsewhere}, or change the rule"
                    )

    def _warn_left_out(self, outs: list[bytes]) -> None:
        """A DvfsWarning for each path below an output directory that ignore rules keep
        out (``*.pt`` in ``.dvfsignore``, the model written into ``outputs/``): staged
        as ``dvfs add`` stages a directory, the output is recorded without it."""
        repo = self.repo.repository
        index = repo.index()
        with Ignores(self.root, lambda: sorted(index.paths()), _warn) as ign:
            left: list[tuple[bytes, bytes, str]] = []  # (path, its output, the rule)

            def enter(d: bytes) -> bool:
                rule = workflow.ignoring_rule(repo, ign, d, is_dir=True)
                if rule is not None:
                    left.append((d + b"/", out, rule))
                return rule is None

            for out in outs:
                if not stat.S_ISDIR(os.lstat(self.root / os.fsdecode(out)).st_mode):
                    continue
                for f in scan(self.root, out, _warn, enter=enter):
                    rule = workflow.ignoring_rule(repo, ign, f.rel)
                    if rule is not None:
                        left.append((f.rel, out, rule))
        for rel, out, rule in left:
            _warn(
                f"{quote_name(rel)} (in output {quote_name(out)} of run {self.name}) is ignored "
                f"by {rule}: the run records {quote_name(out)} without it; change the rule "
                "to record it"
            )

    def _inside(self, path: PathArg) -> str:
        """``path`` from the root: an absolute one must lie inside the repository
        (reached through a link outside it, as ``os.getcwd()`` gives a path, too)."""
        text = os.fspath(path)
        if os.path.isabs(text):
            rel = os.path.relpath(text, self.root)
            if rel == ".." or rel.startswith("../"):
                rel = os.path.relpath(entering(text, str(self.root)) or text, self.root)
            if rel == ".." or rel.startswith("../"):
                raise UsageError(
                    f"{quote_name(text)} is outside the repository {quote_name(str(self.root))}: "
                    "a run's inputs, outputs and metrics are files of the repository"
                )
            return rel
        return text

    def _own(self, path: PathArg) -> bytes:
        rel = repo_path(self._inside(path))
        if not rel:
            raise UsageError("the root of the repository cannot be an input or an output")
        if rel.split(b"/", 1)[0] == DVFS_DIR.encode():  # as the commands refuse it
            raise UsageError(
                f"{quote_name(rel)} is inside dvfs's own directory {DVFS_DIR}: a run's inputs "
                "and outputs are files of the working tree"
            )
        _not_reserved(rel)
        self._no_link_out(rel)
        return rel

    def _no_link_out(self, rel: bytes) -> None:
        """UsageError if ``rel`` lies below a symbolic link of the working tree (which
        dvfs never reads through), or is a link that leads out of the repository: the
        run would record a link, not the data."""
        parts = rel.split(b"/")
        for i in range(1, len(parts) + 1):
            here = b"/".join(parts[:i])
            where = self.root / os.fsdecode(here)
            try:
                if not stat.S_ISLNK(os.lstat(where).st_mode):
                    continue
            except OSError:
                return  # nothing there yet: the run makes it
            if i < len(parts):
                raise UsageError(
                    f"{quote_name(rel)} is below {quote_name(here)}, a symbolic link: dvfs "
                    "never reads the working tree through links, so the run could not record "
                    "it; give the path the link leads to, inside the repository"
                )
            real = os.path.realpath(where)
            if os.path.commonpath([real, os.path.realpath(self.root)]) != os.path.realpath(
                self.root
            ):
                raise UsageError(
                    f"{quote_name(rel)} is a symbolic link to {quote_name(os.readlink(where))}, "
                    "outside the repository: the run would record the link, not the data; "
                    "write it inside the repository"
                )

    def _alone(self, during: bool) -> list[bytes]:
        """UsageError unless a commit now would record the run alone: refused as ``dvfs
        commit`` refuses it, a merge in progress (the run's version would be the merge),
        or changes staged in the index (the version would hold them as if the run had
        made them). ``during``, at the end of the block, the paths staged meanwhile are
        returned instead: hours of training are not thrown away for them, and the
        version holds them, which a warning says."""
        repo = self.repo.repository
        _, index = commit.committable(repo)
        merge = merge_in_progress(repo)
        if merge is not None:
            raise UsageError(
                f"a merge of {merge.rev} is in progress: the run's version would be the "
                "merge; commit the merge (or give it up: `dvfs merge --abort`) first"
                + (", nothing was recorded" if during else "")
            )
        head = repo.history.head_id()
        if head is not None and index.head == head:
            return []  # (the index was made equal to HEAD and not staged since)
        staged = [c.path for c in diff_maps(base_files(repo.history, index), index.entries)]
        if not staged or during:
            return staged
        more = f" and {len(staged) - 1:,} more" if len(staged) > 1 else ""
        raise UsageError(
            f"{quote_name(staged[0])}{more} is staged: the run's version would hold it as "
            "if the run had made it; commit it (`dvfs commit`) or unstage it (`dvfs restore "
            "--staged PATH`) first"
        )

    def _record(self) -> None:
        """Check, write, stage and commit under one hold of the repository lock: a
        lock another command holds is found before anything is written, and nothing
        can be staged or committed between the checks and the commit. A Ctrl-C stops
        the wait for the lock, and is held from when it is taken to the end."""
        repo = self.repo.repository
        with ExitStack() as held:
            with repo.locked():
                held.enter_context(_sigint_held())
                self._record_locked()
            keep_within_max_size(repo, _warn)  # as after `dvfs commit`
            assert self.committed is not None
            self.version = self.repo.versions(self.committed.hex(), limit=1)[0]

    def _record_locked(self) -> None:
        tag_free(self.repo.repository, self.tag)  # made while the run ran
        meanwhile = self._alone(during=True)
        outs = list(self.outputs)
        for rel in [*outs, *self.inputs]:  # made links while the run ran
            self._no_link_out(rel)
        self.state.forget([*outs, *self.inputs])
        ids = self.state.ids([*self.inputs, *outs])
        missing = [o for o in outs if ids[o] is None]
        if missing:
            raise UsageError(
                f"run {self.name} did not make {quote_name(missing[0])} (given to output()): "
                "nothing was recorded"
            )
        changed = [i for i, was in self.inputs.items() if ids[i] != was]
        if changed:
            raise UsageError(
                f"input {quote_name(changed[0])} changed while run {self.name} ran: its "
                "lineage would be false, so nothing was recorded"
            )
        own = [self.metrics_path, self.history_path] if self.steps else []
        for rel in own:
            self._writable(rel)  # made meanwhile: before anything is written
        self._refuse_ignored([*outs, *own])  # before anything is written or staged
        runs = workspace.load_runs(self.ws)  # (damaged: refused before anything is written)
        claimed = [*outs, *own]
        for other in [n for n, r in runs.items() if any(_overlap(o, c) for o, _ in r.outs
                                                        for c in claimed)]:  # fmt: skip
            del runs[other]  # a run elsewhere that claimed these outputs, or held or lay in one
        self._warn_left_out(outs)
        facts = RunFacts(self.ws)
        record = StageRecord(
            name=self.name,
            cmd=tuple(command_line()),
            wdir=b"",
            deps=tuple(sorted(self.inputs.items())),
            outs=tuple(sorted((o, ids.get(o) or bytes(32)) for o in claimed)),
            params=(),
            metrics=(self.metrics_path,) if self.steps else (),
            run=StageRun(
                0, self._started, time.time_ns() - self._started, facts.host, facts.dvfs,
                facts.python, facts.git,
            ),
        )  # fmt: skip
        runs[self.name] = record  # (the metrics files' ids, as yet unknown, zeros)
        try:
            runs_file.dump(runs)  # a bound broken: found before anything is written
        except FormatError as exc:
            raise UsageError(
                f"run {self.name} cannot go into {RUNS_FILE} ({exc}): nothing was recorded"
            ) from None
        if self.steps:
            doc = dict(self.latest)
            if self.last_step is not None:
                doc["step"] = self.last_step
            rows = self.steps if self.steps[-1] is self.last_row else [*self.steps, self.last_row]
            history = b"".join(
                json.dumps({k: _finite(v) for k, v in s.items()}, sort_keys=True).encode() + b"\n"
                for s in rows
                if s is not None
            )  # fmt: skip
            written = [
                (self.metrics_path, _metrics_text(doc, kind_of(self.metrics_path) == "json")),
                (self.history_path, history),
            ]
            for rel, data in written:
                (self.root / os.fsdecode(rel)).parent.mkdir(parents=True, exist_ok=True)
                self.ws.write(rel, data)
            made = [rel for rel, _ in written]
            self.state.forget(made)  # and an output directory they were written into
            ids.update(self.state.ids([*outs, *made]))
            outs += made
        runs[self.name] = record._replace(outs=tuple(sorted((o, ids[o] or b"") for o in outs)))
        runs_data = runs_file.dump(runs)
        repo = self.repo.repository
        self.writing.close()  # (written: staged now, by this run)
        apart = self._inputs_apart()
        paths = [str(self.root / os.fsdecode(o)) for o in outs]
        workflow.add(repo, paths, self.workers, _warn, locked=True)
        self.ws.write(RUNS_FILE.encode(), runs_data)
        workflow.add(repo, [str(self.root / RUNS_FILE)], self.workers, _warn, locked=True)
        result = commit.commit(repo, self.message, self.params, self.tag, _warn, locked=True)
        self.committed = result.oid
        if meanwhile:
            more = f" and {len(meanwhile) - 1:,} more" if len(meanwhile) > 1 else ""
            _warn(
                f"{quote_name(meanwhile[0])}{more} was staged while run {self.name} ran: "
                f"v{result.number} holds it too (`dvfs show v{result.number}` lists what "
                "the version changed)"
            )
        for rel in apart:
            _warn(
                f"input {quote_name(rel)} of run {self.name} is not in v{result.number} as "
                "the run read it (untracked, or changed and not staged): its lineage names "
                f"content no version holds; `dvfs add {shell_word(rel)}` and commit it to "
                "keep what the outputs were made from"
            )

    def _inputs_apart(self) -> list[bytes]:
        """The inputs whose content, as ``input()`` took it, is not what the index holds
        (nothing else is staged: :meth:`_alone`), so not what the version will hold."""
        index = self.repo.repository.index()
        apart = []
        for rel, was in self.inputs.items():
            below = {r: s for r in index.under(rel) if (s := index.get(r)) is not None}
            if not below or workspace.ids_of_records([rel], below)[rel] != was:
                apart.append(rel)
        return apart


def _not_reserved(rel: bytes) -> None:
    """UsageError if ``rel`` holds a name no version holds (``.git`` or ``.dvfs`` in any
    spelling, ``.versions`` at the top), as ``dvfs add`` refuses it: the run could not
    record it."""
    if reserved_path([rel]) is None:
        return
    parts = rel.split(b"/")
    at = next(
        i for i, n in enumerate(parts) if is_reserved(n) or (not i and is_reserved_at_root(n))
    )
    raise UsageError(
        f"{reserved_message(b'/'.join(parts[: at + 1]))}: a run could not record {quote_name(rel)}"
    )


def _not_own_file(rel: bytes, what: str) -> None:
    """UsageError for ``dvfs.yaml``, ``dvfs.runs``, ``dvfs.lock`` or ``dvfs.toml`` given
    as a file the run writes (as ``dvfs run -o`` refuses them): written, the
    pipeline, its runs or the settings would be lost."""
    if rel in OWN_FILES:
        raise UsageError(
            f"{quote_name(rel)} is dvfs's own file: a run cannot write it; give {what} another file"
        )


def track(
    repo: Repo | PathArg = ".", message: str = "", params: Mapping[str, Any] | None = None,
    *, name: str = "train", tag: str | None = None, metrics: PathArg = "metrics.json",
) -> Run:  # fmt: skip
    """A run to use as ``with vfs.track(...) as run:`` (module docstring).

    Example::

        with vfs.track(message="train", params={"lr": 3e-4}, tag="run7") as run:
            rows = run.input("data/train.csv").read_text().splitlines()
            run.log_metrics({"loss": 0.4}, step=1)
            run.output("models/model.txt").write_text("weights")
        print(run.version.version)   # e.g. v8
    """
    return Run(repo, message, params, name, tag, metrics)


def _finite(value: Any) -> Any:
    """A metric's value in the history, standard JSON: NaN and the infinities as YAML
    spells them (``.nan``), which no chart draws."""
    return finite(value) if isinstance(value, float) else value


def _metrics_text(doc: dict[str, Any], as_json: bool) -> bytes:
    """The metrics file of a run: JSON, two spaces an indent, keys sorted; NaN and the
    infinities as the file's readers read the float back (a text would be a text
    metric, shown ``".nan"`` beside the float ``.nan``): ``NaN`` and ``Infinity`` in a
    JSON file, as Python's ``json`` writes and reads them, ``.nan`` and ``.inf`` in a
    YAML one, where ``NaN`` is a text."""
    if as_json or not doc:
        return json.dumps(doc, indent=2, sort_keys=True).encode() + b"\n"

    def value(v: Any) -> str:
        return str(finite(v)) if isinstance(v, float) and not math.isfinite(v) else json.dumps(v)

    lines = [f"  {json.dumps(k)}: {value(v)}" for k, v in sorted(doc.items())]
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode()


def _step(step: Any) -> int:
    """``step`` as an int: a Python int or what stands for one (``numpy.int64``, a
    0-d integer tensor), never a boolean or a float."""
    if not isinstance(step, bool):
        try:
            at = operator.index(step)
        except TypeError:
            pass
        else:
            _metric("step", at)  # (as a metric's value: one the metrics file can hold)
            return at
    shown = f"the text {quote_given(step)}" if isinstance(step, str) else quote_given(str(step))
    raise UsageError(f"step must be a whole number, not {shown}")


def _stages(ws: workspace.Workspace) -> dict[str, Stage]:
    """The stages the working tree's ``dvfs.yaml`` defines, by name (none if it cannot
    be read: ``dvfs repro`` says why)."""
    try:
        pipeline, _ = workspace.load_pipeline(ws)
    except DvfsError:
        return {}
    return pipeline.stages


def _overlap(a: bytes, b: bytes) -> bool:
    """True if paths ``a`` and ``b`` are one, or one lies inside the other."""
    return a == b or a.startswith(b + b"/") or b.startswith(a + b"/")


def _metric(key: str, value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        try:
            str(value)  # (the metrics file holds it as decimal digits)
        except ValueError:  # past Python's bound, which every reader of the file keeps too
            raise UsageError(
                f"metric {quote_name(key)} is an integer of more than "
                f"{sys.get_int_max_str_digits():,} digits, which dvfs cannot read back from "
                "a metrics file: give a float"
            ) from None
        return value
    if isinstance(value, float):
        return value  # (NaN and the infinities too: _metrics_text, _finite)
    if hasattr(value, "item") and callable(value.item):  # numpy and torch scalars
        try:
            plain = value.item()
        except (ValueError, RuntimeError):  # an array of several values
            raise UsageError(
                f"metric {quote_name(key)} is a {type(value).__name__} of several values: "
                "give one number"
            ) from None
        return _metric(key, plain)
    if isinstance(value, str) and len(value) <= MAX_METRIC_TEXT:
        return value
    what = f"a text of {len(value):,} characters" if isinstance(value, str) else None
    raise UsageError(
        f"metric {quote_name(key)} is {what or type(value).__name__}: give a number, a "
        f"boolean or a text of at most {MAX_METRIC_TEXT} characters (the longest the "
        "commands show)"
    )


def _warn(message: str) -> None:
    api_types.warn(message)


@contextmanager
def _closing(ws: workspace.Workspace) -> Iterator[workspace.Workspace]:
    try:
        yield ws
    finally:
        ws.close()


@contextmanager
def _sigint_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) until the block ends, then raise it (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt
