"""``dvfs repro``: run what is stale, in order, and record each run.

A stage is **stale** when its last run in ``dvfs.runs`` differs from what it would
run now (``vfs.pipeline.stale``: each reason is said). Stages are taken in an order
that runs each after the stages it needs; a stage is decided only once those are
done, so a stage whose upstream ran but made the same bytes again stays fresh.

A stale stage whose exact inputs ran before gets its outputs from the run cache
(``vfs.pipeline.cache``) instead; ``--force`` runs every selected stage anyway.

Running a stage (``vfs.pipeline.runner``):

1. its outputs are moved aside (``vfs.pipeline.backups``: renamed in their directory
   to ``.tmp-dvfs-prev-*``, which ``status`` does not list), so the command starts
   without them and an output it does not make is noticed;
2. the command runs (``--jobs N``: up to N independent stages at once);
3. it failed (non-zero exit, killed, not started), did not make an output, made an
   output directory that ignore rules keep out whole, or changed one of its own deps:
   what it wrote is removed and the previous outputs moved back (one that cannot be,
   as what the command left cannot be removed, is kept as ``OUT.dvfs-previous`` and
   the message says so); nothing is recorded; the directories step 1 made for its
   outputs are removed at the end if they are empty then;
4. it succeeded: the outputs are hashed (their chunks stored), ``dvfs.runs`` is
   rewritten with the run, and the run is added to the run cache.

When the command ends, for whatever reason (a failure, Ctrl-C, SIGTERM): every run
that finished is recorded; the outputs of the runs that finished, ``dvfs.runs`` and
``dvfs.yaml`` are staged in the repository's index (``vfs.pipeline.staging``; so
``dvfs commit`` records them; a mount's snapshot takes them as they are), and the
run cache entries are written after the store is flushed. A stage stopped by Ctrl-C
(or SIGINT, SIGTERM or SIGHUP sent to dvfs alone, see :func:`_signals_interrupt`) is stopped
(SIGINT to its process group, then harder), its partial outputs removed and its
previous ones moved back. After a kill -9, the partial outputs of the stage that was running stay
where they are, never recorded: the next ``repro`` finds the stage stale (and
removes what was moved aside if the index or the last version holds it, else keeps it
as ``OUT.dvfs-previous``: :meth:`Repro.clear_leftovers`), and also stages the outputs
of runs recorded but not yet staged. A previous output that could not be put back is
named in the message, whatever stopped the stage (a failure, Ctrl-C, a failed restore
from the run cache).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib.metadata
import os
import platform
import queue
import signal
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from vfs.errors import DvfsError, FormatError, UsageError
from vfs.model.version_codec import StageRecord, StageRun
from vfs.pipeline import backups, values
from vfs.pipeline import runs as runs_file
from vfs.pipeline.backups import Kept
from vfs.pipeline.cache import Hit, RunCache, key_of
from vfs.pipeline.content import EMPTY_DIR_ID, tree_path_id
from vfs.pipeline.graph import Dag
from vfs.pipeline.plan import (
    Options,
    Outcome,
    check_inputs,
    link_above,
    not_checked_out,
    params_through_link,
    selection,
)
from vfs.pipeline.runner import Finished, Output, Running, stop_all
from vfs.pipeline.spec import Stage
from vfs.pipeline.staging import stage_outputs
from vfs.pipeline.stale import param_name, reasons, value_text
from vfs.pipeline.workspace import TreeState, Workspace, ids_of_records, load_runs
from vfs.pipeline.writing import Writing, refuse_left_running
from vfs.quoting import quoted, shell_word
from vfs.repo.gitlink import RUNS_FILE, git_output
from vfs.repo.stage import Staged
from vfs.store.pins import pinned
from vfs.worktree.pools import Workers
from vfs.worktree.restore import ensure_dir, restore_many
from vfs.worktree.scan import Warn

Say = Callable[[str], None]


_ODD = (
    "which is not a file, a directory or a link (a FIFO, socket or device): dvfs cannot version it"
)


_UNTOUCHED = "the working tree's outputs are as they were (the stage ran in a copy)"


def _not_kept(kept: dict[bytes, Kept]) -> str:
    return not_kept([(o, k.at, k.why) for o, k in kept.items()])


def not_kept(kept: Sequence[tuple[bytes, bytes, str]]) -> str:
    """Where the previous outputs that could not be put back are (out, where, why; where
    empty: gone), and what to do."""
    said = []
    held = [(o, at, why) for o, at, why in kept if at]
    if held:
        where = ", ".join(f"{quoted(o)} as {quoted(at)}" for o, at, _ in held)
        said.append(
            "the previous outputs could not be put back, as what the command left there "
            f"cannot be removed ({held[0][2]}): they are kept ({where}); remove what is left "
            "and move them back"
        )
    gone = [o for o, at, _ in kept if not at]
    if gone:
        names = ", ".join(
            f"{quoted(o)} (moved aside to {quoted(backups.backup_name(o))})" for o in gone
        )
        said.append(
            f"the previous outputs {names} are no longer there: the command moved or removed "
            "them, or the directory they were in"
        )
    return "; ".join(said)


class StageFailed(DvfsError):
    """A stage's command failed, or did what a stage may not; nothing of it recorded."""


class Interrupted(DvfsError):
    """Ctrl-C, SIGTERM or SIGHUP stopped the pipeline; what finished is recorded."""

    exit_code = 130


@dataclass
class _Decided:
    """A stage's inputs as they are now, and what to do about it."""

    stage: Stage
    deps: dict[bytes, bytes]
    params: dict[tuple[bytes, str], Any]
    why: list[str]
    hit: Hit | None = None


@dataclass
class _Started:
    decided: _Decided
    running: Running
    backups: dict[bytes, bytes]  # out -> where it was moved aside


class RunFacts:
    """What every run records besides its inputs: host, versions, git commit."""

    def __init__(self, ws: Workspace) -> None:
        try:
            self.dvfs = importlib.metadata.version("dvfs")
        except importlib.metadata.PackageNotFoundError:
            self.dvfs = "unknown"
        self.python = platform.python_version()
        self.host = os.uname().nodename[:255] or "unknown"
        base = ws.repo.root if ws.repo is not None and ws.own_index else ws.root
        git = git_output(base, "rev-parse", "--verify", "-q", "HEAD")
        self.git = git if git and len(git) <= 64 and git.isalnum() else None


def param_values(
    ws: Workspace, stage: Stage, docs: dict[bytes, Any]
) -> dict[tuple[bytes, str], Any]:
    """The values of a stage's params, now; UsageError if a file or key is missing.
    ``docs`` keeps the params files read, by path, for the next call."""
    out = {}
    for f, k in stage.params:
        try:
            if f not in docs:
                data = ws.read(f, values.MAX_FILE)
                if data is None and not_checked_out(ws, f):  # a partial working tree
                    raise UsageError(
                        f"{quoted(f)}, which it reads parameters from, is tracked but not checked "
                        f"out: `dvfs pull {shell_word(f)}` or `dvfs checkout HEAD "
                        f"{shell_word(f)}` brings it"
                    )
                if data is None and (link := link_above(ws, f, stage.wdir)) is not None:
                    raise UsageError(params_through_link(f, link))
                if data is None:
                    raise UsageError(
                        f"{quoted(f)} does not exist (a stage reads parameters from it)"
                    )
                docs[f] = values.load(data, f, quoted(f))
            out[(f, k)] = values.get(docs[f], k, quoted(f))
        except UsageError as exc:
            raise UsageError(f"stage {stage.name}: {exc}") from None
    return out


class Repro:
    """One ``repro`` of a working tree's pipeline (see the module docstring)."""

    def __init__(
        self,
        ws: Workspace,
        dag: Dag,
        workers: Workers,
        say: Say,
        warn: Warn,
        output: Output,
        copy: bool = False,
        by: str = "`dvfs repro`",
    ) -> None:
        """``copy``: ``ws`` is a copy of the working tree, deleted after (an
        experiment's): a failure's message speaks of the working tree's outputs, which
        no stage touched, not of the copy's. ``by``: the command running it, as the list
        of outputs being written names it (``dvfs add`` refused meanwhile says who
        writes them: ``dvfs run`` runs its stage as ``repro`` does)."""
        self.ws = ws
        self.copy = copy
        self.dag = dag
        self.workers = workers
        self.say = say
        self.warn = _once(warn)  # (a path is scanned several times: said once)
        self.output = output
        self.state = TreeState(ws, workers, self.warn)
        self.cache = RunCache(ws.repo) if ws.repo is not None else None
        self.runs = self._load_runs()
        # which recorded runs made each output path: what record() and check_unsaved()
        # look up after each stage, where a pass over every run made a long chain's
        # repro quadratic
        self.made: dict[bytes, set[str]] = {}
        for r in self.runs.values():
            self._claim(r)
        self.runs_writer = runs_file.Writer()  # (dvfs.runs is written after each stage)
        self.facts: RunFacts | None = None
        self.params_docs: dict[bytes, Any] = {}
        self.to_stage: dict[bytes, Staged] = {}  # outputs of recorded runs
        self.stage_roots: list[bytes] = []  # the outputs themselves
        self.fresh_outs: dict[bytes, bytes] = {}  # a fresh stage's outputs: their run's ids
        self.recorded = False
        self.made_dirs: list[bytes] = []  # made for outputs (removed at the end if empty)
        self.out = Outcome()
        # what add must not stage meanwhile, or a mount's snapshot record (vfs.pipeline.writing)
        listed = ws.writing_list()
        self.writing = Writing(listed, by) if listed is not None else None
        self.stops = _Stops()

    # reading ---------------------------------------------------------------------

    def _load_runs(self) -> dict[str, StageRecord]:
        try:
            return load_runs(self.ws)
        except FormatError as exc:
            raise UsageError(
                f"{exc}: delete {RUNS_FILE} (every stage then runs again) or restore it "
                f"(`dvfs restore {RUNS_FILE}`: as last staged)"
            ) from None

    def _claim(self, record: StageRecord) -> None:
        for p, _ in record.outs:
            self.made.setdefault(p, set()).add(record.name)

    def _unclaim(self, record: StageRecord) -> None:
        for p, _ in record.outs:
            names = self.made.get(p)
            if names is not None:
                names.discard(record.name)
                if not names:
                    del self.made[p]

    def _put_run(self, record: StageRecord) -> None:
        """``record`` as its stage's run (in the place of the one before, if any)."""
        old = self.runs.get(record.name)
        if old is not None:
            self._unclaim(old)
        self.runs[record.name] = record
        self._claim(record)

    def param_values(self, stage: Stage) -> dict[tuple[bytes, str], Any]:
        """The values of a stage's params, now; UsageError if a file or key is missing."""
        return param_values(self.ws, stage, self.params_docs)

    # deciding ----------------------------------------------------------------------------

    def decide(self, stage: Stage, force: bool, use_cache: bool) -> _Decided:
        """What ``stage`` needs to be up to date, from its inputs as they are now."""
        ids = self.state.ids([*stage.deps, *stage.outs])
        missing = [d for d in stage.deps if ids[d] is None]
        if missing:
            if self.ws.lstat(missing[0]) is not None:
                raise StageFailed(f"stage {stage.name} needs {quoted(missing[0])}, {_ODD}")
            raise StageFailed(
                f"stage {stage.name} needs {quoted(missing[0])}, which does not exist"
            )
        deps = {d: ids[d] for d in stage.deps}
        params = self.param_values(stage)
        outs = {o: ids[o] for o in stage.outs}
        self.check_unsaved(stage, outs)
        why = ["forced"] if force else reasons(stage, self.runs.get(stage.name), deps, params, outs)
        d = _Decided(stage, {k: v for k, v in deps.items() if v is not None}, params, why)
        if why and use_cache and not force and self.cache is not None:
            key = key_of(
                stage.cmd,
                stage.wdir,
                sorted(d.deps.items()),
                [(f, k, v) for (f, k), v in params.items()],
                stage.outs,
            )
            d.hit = self.cache.find(key)
        return d

    def check_unsaved(self, stage: Stage, outs: dict[bytes, bytes | None]) -> None:
        """StageFailed if running ``stage`` would replace work that exists nowhere else: an
        out that no recorded run made, that dvfs tracks (data of the user's, named as
        an out by mistake), and that neither the index nor the last version holds as it
        is (files changed and not staged, or added). A run's outputs are kept by the
        run cache; what a run killed with -9 left (its out moved aside beside it) is
        for the next run to replace; a file dvfs does not track is the out's to
        replace (a metrics file kept in git, a model made by hand before the stage); a
        mount's working tree is left to its snapshots."""
        repo, index = self.ws.repo, self.state.index
        if repo is None or index is None or not self.ws.own_index:
            return
        theirs = [
            o for o, i in outs.items()
            if i not in (None, EMPTY_DIR_ID) and o not in self.made and index.under(o)
            and self.ws.lstat(backups.backup_name(o)) is None  # (else a killed run's output)
        ]  # fmt: skip
        if not theirs:
            return
        hist = repo.history
        head = hist.head_id()
        tree = hist.version(head).tree if head is not None else None
        memo: dict[bytes, bytes] = {}
        for o in theirs:
            below = {p: x for p in index.under(o) if (x := index.get(p)) is not None}
            if ids_of_records([o], below)[o] == outs[o]:
                continue  # as staged
            if tree is None or tree_path_id(hist, tree, o, memo) != outs[o]:
                raise StageFailed(
                    f"stage {stage.name} would replace {quoted(o)}, which no run made and which "
                    "holds changes neither staged nor committed: they would be lost; commit "
                    f"them first (`dvfs add {shell_word(o)}`, `dvfs commit`), move it away, or "
                    "name another out; nothing ran"
                )

    # running -------------------------------------------------------------------------------

    def open_wdir(self, stage: Stage) -> int:
        """A descriptor of the stage's wdir, reached without following a link.

        StageFailed if it is missing, not a directory or a symbolic link.
        """
        try:
            return os.dup(self.ws.walker().dir(stage.wdir))
        except OSError as exc:
            why = "a symbolic link or not a directory" if exc.errno in (
                errno.ELOOP, errno.ENOTDIR) else exc.strerror or str(exc)  # fmt: skip
            raise StageFailed(
                f"stage {stage.name} cannot run in its wdir {quoted(stage.wdir)} ({why}): "
                "a wdir is a directory inside the working tree, reached without a link"
            ) from None

    def _previous(self, moved: dict[bytes, bytes], kept: dict[bytes, Kept]) -> str:
        """The end of a failed run's message: its previous outputs are back, or where
        not, or there were none (``moved``: the outputs moved aside before it ran)."""
        if self.copy:
            return _UNTOUCHED
        if kept:
            return _not_kept(kept)
        if not moved:
            return "what it wrote of its outputs is removed (it had none before)"
        return "its previous outputs are back"

    def _not_back(self, kept: dict[bytes, Kept]) -> str:
        """What a failed run's message adds when a previous output could not be put back."""
        if self.copy:
            return "; " + _UNTOUCHED
        return "" if not kept else "; " + _not_kept(kept)

    def cleanup_failed(self, stage: Stage, moved: dict[bytes, bytes]) -> dict[bytes, Kept]:
        """After a failed run: its outputs gone, the previous ones back; those that could
        not be put back, and where they are kept (``backups.move_back``)."""
        for o in stage.outs:
            if o not in moved:
                with contextlib.suppress(OSError):
                    backups.remove(self.ws, o)
        kept = backups.move_back(self.ws, moved)
        self.state.forget([*stage.outs, *(k.at for k in kept.values())])
        self.out.kept += [(o, k.at, k.why) for o, k in kept.items()]
        self.out.back += [o for o in moved if o not in kept]
        return kept

    def clear_leftovers(self, stage: Stage) -> None:
        """Before ``stage``'s outputs are moved aside: what an earlier run left at their
        backup names (killed with -9, or a previous output that could not be renamed) is
        deleted if the index or the last version holds it as it is, else kept as
        ``OUT.dvfs-previous`` (said); StageFailed if it can be neither."""
        for o in stage.outs:
            backup = backups.backup_name(o)
            at = backups.clear_leftover(self.ws, o, functools.partial(self._saved, o))
            self.state.forget([backup])
            if at == backup:
                raise StageFailed(
                    f"stage {stage.name} did not run: {quoted(backup)} holds a previous output "
                    f"of {quoted(o)} that neither the index nor the last version holds, and it "
                    f"cannot be renamed to {quoted(o + backups.KEPT_SUFFIX)}: move it away (or "
                    "back in place) and run again"
                )
            if at is not None:
                self.state.forget([at])
                self.warn(
                    f"{quoted(backup)}, a previous output of {quoted(o)} that an earlier run left "
                    f"and neither the index nor the last version holds, is kept as {quoted(at)}"
                )

    def _saved(self, out: bytes, backup: bytes) -> bool:
        """True if what is at ``backup`` is held elsewhere as ``out``: in the index or
        the last version (the run's record in a working tree without an index, whose
        outputs the run cache holds)."""
        try:
            now = self.state.ids([backup])[backup]
        except DvfsError:
            return False
        if now is None:
            return False
        repo, index = self.ws.repo, self.state.index
        if repo is None or index is None or not self.ws.own_index:
            made = {p: i for r in self.runs.values() for p, i in r.outs}
            return made.get(out) == now
        below = {p: x for p in index.under(out) if (x := index.get(p)) is not None}
        if below and ids_of_records([out], below)[out] == now:
            return True
        hist = repo.history
        head = hist.head_id()
        return head is not None and tree_path_id(hist, hist.version(head).tree, out) == now

    def finish_run(self, started: _Started, fin: Finished) -> StageRecord:
        """Check a finished command and record its run; StageFailed (cleaned up) if bad."""
        d = started.decided
        stage = d.stage
        if fin.error is not None or fin.code != 0:
            kept = self.cleanup_failed(stage, started.backups)
            cmd = stage.shown_cmd()
            raise StageFailed(
                f"stage {stage.name} failed: `{cmd[:200]}` {fin.why()}; nothing of it was "
                f"recorded and {self._previous(started.backups, kept)}"
            )
        self.state.forget([*stage.outs, *stage.deps])
        ids = self.state.ids([*stage.outs, *stage.deps])
        missing = [o for o in stage.outs if ids[o] is None]
        odd = [o for o in missing if self.ws.lstat(o) is not None]
        if odd:
            kept = self.cleanup_failed(stage, started.backups)
            raise StageFailed(
                f"stage {stage.name} made {quoted(odd[0])}, {_ODD}: nothing of it was recorded "
                f"and {self._previous(started.backups, kept)}"
            )
        if missing:
            kept = self.cleanup_failed(stage, started.backups)
            names = ", ".join(quoted(o) for o in missing)
            raise StageFailed(
                f"stage {stage.name} did not make {names} (listed among its outs): nothing "
                f"of it was recorded and {self._previous(started.backups, kept)}"
            )
        ignored = self.state.ignored_outs(stage.outs)
        if ignored:
            out, rule = ignored[0]
            st = self.ws.lstat(out)
            made = "a directory" if st is not None and stat.S_ISDIR(st.st_mode) else "a file"
            kept = self.cleanup_failed(stage, started.backups)
            raise StageFailed(
                f"stage {stage.name} made {quoted(out)}, {made} the ignore rule {rule} "
                "keeps out, so it would not be versioned: nothing of it was "
                f"recorded{self._not_back(kept)}; remove that rule, or undo it with a ! pattern"
            )
        changed = [x for x in stage.deps if ids[x] != d.deps.get(x)]
        if changed:
            kept = self.cleanup_failed(stage, started.backups)
            end = (  # (an experiment's copy: the working tree's dep was not touched)
                f"; the working tree's outputs and {quoted(changed[0])} are as they were (the "
                "stage ran in a copy): fix the command"
                if self.copy
                else f"{self._not_back(kept)} (fix the command, and restore the dep: "
                f"`dvfs restore {shell_word(changed[0])}` if it is tracked)"
            )
            raise StageFailed(
                f"stage {stage.name} changed its own dep {quoted(changed[0])} while it ran: "
                f"a stage may only read its deps; nothing of it was recorded{end}"
            )
        moved = self._params_moved(d)
        if moved:
            for f, _ in stage.params:  # (not read again from what was kept of it)
                self.params_docs.pop(f, None)
            kept = self.cleanup_failed(stage, started.backups)
            raise StageFailed(
                f"stage {stage.name}: {moved} while it ran: which the run read is not "
                f"known, so nothing of it was recorded{self._not_back(kept)}; run `dvfs "
                "repro` again"
            )
        records = self.state.stage_records(stage.outs, store=True)
        out_ids = ids_of_records(stage.outs, records)
        record = self.make_record(d, out_ids, fin.code, fin.started_ns, fin.duration_ns)
        self.record(record, records)
        backups.drop_backups(self.ws, started.backups)
        return record

    def _params_moved(self, d: _Decided) -> str | None:
        """How a param of ``d``'s stage differs now from the value its run was decided
        with (``param train.lr changed (0.01 -> 0.02)``, or a params file that cannot be
        read now); None if none does."""
        stage = d.stage
        try:
            now = param_values(self.ws, stage, {})
        except UsageError as exc:
            return f"a params file changed ({exc.args[0]})"
        for (f, k), was in d.params.items():
            if not values.same(was, now[(f, k)]):
                name = param_name(f, k, stage.wdir)
                return f"param {name} changed ({value_text(was)} -> {value_text(now[(f, k)])})"
        return None

    def make_record(
        self, d: _Decided, out_ids: dict[bytes, bytes], code: int, started: int, took: int
    ) -> StageRecord:
        """The record of a run with these inputs and outputs."""
        if self.facts is None:
            self.facts = RunFacts(self.ws)
        f = self.facts
        s = d.stage
        return StageRecord(
            name=s.name,
            cmd=s.cmd,
            wdir=s.wdir,
            deps=tuple(sorted(d.deps.items())),
            outs=tuple(sorted(out_ids.items())),
            params=tuple(
                sorted(((fl, k, v) for (fl, k), v in d.params.items()), key=lambda x: x[:2])
            ),
            metrics=tuple(sorted(s.metrics)),
            run=StageRun(code, started, took, f.host, f.dvfs, f.python, f.git),
        )

    def record(self, record: StageRecord, records: dict[bytes, Staged]) -> None:
        """Write a run into ``dvfs.runs`` and the run cache; its outputs wait to be staged."""
        outs = {p for p, _ in record.outs}
        others = {n for p in outs for n in self.made.get(p, ()) if n != record.name}
        for name in others:  # a run elsewhere claiming these outputs
            self._unclaim(self.runs.pop(name))
        self._put_run(record)
        self.ws.write(RUNS_FILE.encode(), self.runs_writer.dump(self.runs))
        self.recorded = True
        self.state.forget([RUNS_FILE.encode()])
        self.state.remember(dict(record.outs))
        if self.cache is not None and self.ws.repo is not None:
            self.cache.add(record, records)
        self.to_stage.update(records)
        self.stage_roots += list(outs)

    def restore(self, d: _Decided) -> StageRecord:
        """Put a run cache hit's outputs in place and record the run (as it was made)."""
        assert d.hit is not None and self.ws.repo is not None
        stage = d.stage
        self.clear_leftovers(stage)
        self._writing(stage)
        moved = backups.move_aside(self.ws, stage, self.made_dirs)
        try:
            done, failed = restore_many(
                self.ws.root, d.hit.entries, self.ws.repo.store, self.workers, lambda _: True
            )
            if failed:
                raise next(iter(failed.values()))
            w = self.ws.walker()
            w.forget(b"")
            for o, oid in d.hit.record.outs:  # a directory without files: made again
                if oid == EMPTY_DIR_ID and w.lstat(o) is None:
                    ensure_dir(w, o, lambda _: False)
        except (DvfsError, OSError) as exc:
            kept = self.cleanup_failed(stage, moved)
            if self.writing is not None:
                self.writing.done(stage.name)
            raise StageFailed(
                f"stage {stage.name} could not be restored from {d.hit.where} ({exc}): nothing "
                f"of it was recorded and {self._previous(moved, kept)}; `dvfs repro --force` "
                "runs its command instead"
            ) from None
        except BaseException:
            self.cleanup_failed(stage, moved)
            self.out.skipped.append((stage.name, "interrupted while it ran"))
            raise
        self.ws.walker().forget(b"")
        self.state.forget(stage.outs)
        out_ids = dict(d.hit.record.outs)
        self.state.remember(out_ids)
        hit = d.hit.record
        record = StageRecord(
            stage.name, stage.cmd, stage.wdir, tuple(sorted(d.deps.items())), hit.outs,
            hit.params, tuple(sorted(stage.metrics)), hit.run,
        )  # fmt: skip
        self._put_run(record)
        self.ws.write(RUNS_FILE.encode(), self.runs_writer.dump(self.runs))
        self.recorded = True
        self.state.forget([RUNS_FILE.encode()])
        self.to_stage.update(done)
        self.stage_roots += list(stage.outs)
        backups.drop_backups(self.ws, moved)
        if self.writing is not None:
            self.writing.done(stage.name)
        return record

    def _writing(self, stage: Stage) -> None:
        """List ``stage``'s outputs as being written (``vfs.pipeline.writing``)."""
        if self.writing is not None:
            self.writing.start(stage.name, stage.outs)

    # the whole run -------------------------------------------------------------------------

    def run(self, opts: Options) -> Outcome:
        """Reproduce the selected stages (see the module docstring)."""
        names = selection(self.dag, opts)
        check_inputs(self.ws, self.dag, names, self.param_values)
        if opts.dry_run:
            return self._dry(names, opts)
        listed = self.ws.writing_list()
        if listed is not None:  # (a command a killed repro left running writes on)
            refuse_left_running(listed)
        repo = self.ws.repo  # outputs are stored before the lock is taken: no gc meanwhile
        writing = contextlib.nullcontext() if repo is None else pinned(repo.dir, writing=True)
        with _signals_interrupt(self.stops), writing:
            try:
                self._schedule(names, opts)
            except KeyboardInterrupt:
                self.out.interrupted = True
            finally:
                if self.writing is not None:
                    self.writing.close()
                self._finish_up()
        return self.out

    def _dry(self, names: list[str], opts: Options) -> Outcome:
        later: set[str] = set()  # stages that would run
        for n in names:
            self.out.planned.append(n)
            stage = self.dag.stages[n]
            ups = [u for u in self.dag.upstream[n] if u in later]
            if ups:
                self.out.would.append((n, "may run", [f"after {', '.join(ups)} ran"]))
                later.add(n)
                continue
            d = self.decide(stage, opts.force, True)
            if not d.why:
                self.out.fresh.append(n)
                continue
            action = "restore" if d.hit is not None else "run"
            self.out.would.append((n, action, d.why))
            later.add(n)
        return self.out

    def _say_start(self, d: _Decided) -> None:
        why = "; ".join(d.why[:5]) + (f"; and {len(d.why) - 5} more" if len(d.why) > 5 else "")
        self.say(f"Running stage {d.stage.name} ({why}): {d.stage.shown_cmd()}")

    def _schedule(self, names: list[str], opts: Options) -> None:
        waiting = list(names)
        ok: set[str] = set()  # fresh, ran or restored
        bad: set[str] = set()  # failed or skipped
        to_start: list[_Decided] = []
        running: dict[str, _Started] = {}
        done_q: queue.Queue[tuple[str, Finished]] = queue.Queue()
        prefix = opts.jobs > 1
        stopping = False
        try:
            while True:
                progressed = True
                while progressed and not stopping:
                    progressed = False
                    for n in list(waiting):
                        if len(running) + len(to_start) >= opts.jobs:
                            break  # (decide no further ahead than stages can start)
                        ups = [u for u in self.dag.upstream[n] if u in names]
                        if any(u in bad for u in ups):
                            waiting.remove(n)
                            bad.add(n)
                            failed_up = [u for u in ups if u in bad]
                            self.out.skipped.append((n, f"upstream {failed_up[0]} did not run"))
                            progressed = True
                            continue
                        if not all(u in ok for u in ups):
                            continue
                        waiting.remove(n)
                        progressed = True
                        try:
                            d = self.decide(self.dag.stages[n], opts.force, True)
                        except (StageFailed, UsageError) as exc:
                            bad.add(n)
                            self.out.failed.append((n, str(exc), []))
                            stopping = not opts.keep_going
                            break
                        if not d.why:
                            ok.add(n)
                            self.out.fresh.append(n)
                            self.say(f"Stage {n} is fresh")
                            self._stage_fresh_outputs(d.stage)
                        elif d.hit is not None:
                            try:
                                self._restore_one(d)
                            except StageFailed as exc:
                                bad.add(n)
                                self.out.failed.append((n, str(exc), []))
                                stopping = not opts.keep_going
                                break
                            ok.add(n)
                        else:
                            to_start.append(d)
                    while to_start and len(running) < opts.jobs and not stopping:
                        d = to_start.pop(0)
                        try:
                            self.clear_leftovers(d.stage)
                            wdir_fd = self.open_wdir(d.stage)
                        except StageFailed as exc:
                            bad.add(d.stage.name)
                            self.out.failed.append((d.stage.name, str(exc), []))
                            stopping = not opts.keep_going
                            progressed = True
                            continue
                        try:
                            self._say_start(d)
                            self._writing(d.stage)
                            with self.stops.held():  # (started is listed as running)
                                moved = backups.move_aside(self.ws, d.stage, self.made_dirs)
                                r = Running(d.stage, self.ws.root, self.output, prefix, wdir_fd)
                                running[d.stage.name] = _Started(d, r, moved)
                            if self.writing is not None and r.proc is not None:
                                self.writing.running(d.stage.name, r.proc.pid)
                        finally:
                            os.close(wdir_fd)
                        threading.Thread(
                            target=lambda n=d.stage.name, r=r: done_q.put((n, r.wait())),
                            daemon=True,
                        ).start()
                        progressed = True
                if not running:
                    break
                name, fin = done_q.get()
                started = running[name]  # (listed until finish_run has recorded or undone it)
                try:
                    self.ws.walker().forget(b"")  # (a command may have replaced directories)
                    self.finish_run(started, fin)
                except StageFailed as exc:
                    del running[name]
                    bad.add(name)
                    self.out.failed.append((name, str(exc), fin.stderr_tail))
                    stopping = stopping or not opts.keep_going
                except BaseException:  # recording failed (a full disk): nothing of it stays
                    del running[name]
                    self.cleanup_failed(started.decided.stage, started.backups)
                    raise
                else:
                    del running[name]
                    ok.add(name)
                    self.out.ran.append(name)
                if self.writing is not None:
                    self.writing.done(name)
            for n in waiting:
                if n not in ok and n not in bad and stopping:
                    self.out.skipped.append((n, "the pipeline stopped at a failure"))
        except BaseException:
            stop_all([s.running for s in running.values()])  # Ctrl-C: stop them all at once
            self.ws.walker().forget(b"")
            for s in running.values():  # and put their outputs back
                self.cleanup_failed(s.decided.stage, s.backups)
                self.out.skipped.append((s.decided.stage.name, "interrupted while it ran"))
            raise

    def _restore_one(self, d: _Decided) -> None:
        assert d.hit is not None
        self.say(
            f"Restoring stage {d.stage.name} from {d.hit.where} ({'; '.join(d.why[:3])}): "
            "these exact inputs ran before, the command is not run again"
        )
        self.restore(d)
        self.out.restored.append((d.stage.name, d.hit.where))

    def _stage_fresh_outputs(self, stage: Stage) -> None:
        """A fresh stage's outputs are staged too (a run killed before it staged them),
        if they are still as its run made them at the end (:meth:`_finish_up`)."""
        record = self.runs.get(stage.name)
        if self.ws.own_index and record is not None:
            self.fresh_outs.update(record.outs)

    def _finish_up(self) -> None:
        """Write the run cache and stage what was recorded (see the module docstring)."""
        backups.remove_empty(self.ws, self.made_dirs)
        try:
            if self.cache is not None:
                self.cache.flush()
        except (DvfsError, OSError) as exc:
            self.warn(f"the run cache was not written ({exc}): the runs themselves are recorded")
        if self.fresh_outs:  # a later stage may have changed one (its own dep): left out
            self.state.forget(self.fresh_outs)
            try:
                now = self.state.ids(self.fresh_outs)
            except DvfsError as exc:
                self.warn(f"{exc}: the outputs of the fresh stages are not staged")
                now = {}
            self.stage_roots += [o for o, i in self.fresh_outs.items() if now.get(o) == i]
        if self.ws.own_index and self.ws.repo is not None:
            self.out.staged = stage_outputs(
                self.ws, self.state, self.stage_roots, self.to_stage, self.recorded, self.warn
            )
            self.out.unstaged = self._unstaged_inputs()

    def _unstaged_inputs(self) -> list[bytes]:
        """The deps and params files of the runs recorded here whose working-tree
        content is not what the index holds: the outputs were made from them, but a
        commit now would record the outputs without them (its lineage would name
        inputs "in no version"). Outputs of other stages are staged by now."""
        repo = self.ws.repo
        names = [*self.out.ran, *(n for n, _ in self.out.restored)]
        if repo is None or not names:
            return []
        paths: dict[bytes, None] = {}
        for name in names:
            record = self.runs.get(name)
            if record is not None:
                paths.update(dict.fromkeys(p for p, _ in record.deps))
                paths.update(dict.fromkeys(f for f, _, _ in record.params))
        index = repo.index()
        current = self.state.ids(paths)
        out = []
        for p in paths:
            below = {r: s for r in index.under(p) if (s := index.get(r)) is not None}
            staged = ids_of_records([p], below)[p] if below else None
            if current[p] != staged:
                out.append(p)
        return out


def _once(warn: Warn) -> Warn:
    """``warn``, saying each warning once."""
    said: set[str] = set()

    def once(message: str) -> None:
        if message not in said:
            said.add(message)
            warn(message)

    return once


class _Stops:
    """The first stopping signal, raised as KeyboardInterrupt where the pipeline is,
    or, while :meth:`held`, when the hold ends: between starting a command and listing
    it as running, a Ctrl-C would leave it running unwatched, its previous outputs
    moved aside."""

    def __init__(self) -> None:
        self.stopping = False
        self.holds = 0
        self.pending = False

    def handler(self, signum: int, frame: object) -> None:
        """The signal handler: the first signal stops the pipeline, the rest pass."""
        if self.stopping:
            return
        self.stopping = True
        if self.holds:
            self.pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """A stretch no signal cuts: one that comes meanwhile is raised at its end."""
        self.holds += 1
        try:
            yield
        finally:
            self.holds -= 1
        if not self.holds and self.pending:
            self.pending = False
            raise KeyboardInterrupt


@contextlib.contextmanager
def _signals_interrupt(stops: _Stops) -> Iterator[None]:
    """While the pipeline runs, SIGINT, SIGTERM and SIGHUP (its terminal closed) stop it
    as Ctrl-C does (what finished is kept), also when dvfs was started with SIGINT
    ignored (in the background of a script, where a shell ignores it for its commands)
    and the signal is sent to dvfs alone: the running stage, in a session of its own
    that no hangup reaches, is stopped, never left running. The first signal stops
    the pipeline (``stops``: at once, or where a hold ends); those that follow while
    its commands are stopped and their outputs put back are let pass (a second Ctrl-C
    would leave outputs moved aside). A stage's command starts while the handler is
    set, so it gets SIGINT's default action, not an ignored SIGINT it would have
    inherited. An ignored SIGHUP stays ignored: ``nohup dvfs repro`` asked to outlive
    its terminal."""
    sigs = [signal.SIGINT, signal.SIGTERM]
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        sigs.append(signal.SIGHUP)
    try:
        old = {sig: signal.signal(sig, stops.handler) for sig in sigs}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        for sig, was in old.items():
            signal.signal(sig, was)
