"""What ``dvfs repro`` (or ``dvfs run``) is asked, the stages that selects (checked
before anything runs), and what happened to each (``vfs.pipeline.repro`` runs them)."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from vfs.errors import UsageError
from vfs.pipeline.graph import Dag, inside
from vfs.pipeline.spec import Stage
from vfs.pipeline.workspace import Workspace, ignored_outs
from vfs.quoting import quote_name, quoted, shell_word
from vfs.repo.gitlink import PIPELINE_FILE


@dataclass
class Options:
    """What ``dvfs repro`` (or ``dvfs run``) was asked to do."""

    targets: list[str] = field(default_factory=list)
    dry_run: bool = False
    force: bool = False
    downstream: bool = False
    jobs: int = 1
    keep_going: bool = False
    single: bool = False  # the targets alone, not what they need (``dvfs run``)


@dataclass
class Outcome:
    """What happened to each stage."""

    fresh: list[str] = field(default_factory=list)
    ran: list[str] = field(default_factory=list)
    restored: list[tuple[str, str]] = field(default_factory=list)  # (stage, where from)
    would: list[tuple[str, str, list[str]]] = field(default_factory=list)  # dry run
    planned: list[str] = field(default_factory=list)  # dry run: every stage, in order
    failed: list[tuple[str, str, list[str]]] = field(default_factory=list)  # name, why, tail
    skipped: list[tuple[str, str]] = field(default_factory=list)  # name, why
    staged: int = 0
    interrupted: bool = False
    unstaged: list[bytes] = field(default_factory=list)  # inputs of the runs, not staged
    # previous outputs that could not be put back: (out, where it is kept, why)
    kept: list[tuple[bytes, bytes, str]] = field(default_factory=list)
    back: list[bytes] = field(default_factory=list)  # previous outputs put back

    def as_json(self) -> dict[str, Any]:
        """For ``--json``."""
        return {
            "fresh": self.fresh,
            "ran": self.ran,
            "restored": [{"stage": s, "from": w} for s, w in self.restored],
            "would_run": [{"stage": s, "action": a, "reasons": r} for s, a, r in self.would],
            "failed": [{"stage": s, "error": e, "stderr": t} for s, e, t in self.failed],
            "skipped": [{"stage": s, "reason": r} for s, r in self.skipped],
            "staged": self.staged,
            "interrupted": self.interrupted,
            "unstaged_inputs": [os.fsdecode(p) for p in self.unstaged],
            "kept_previous": [
                {"out": os.fsdecode(o), "kept_as": os.fsdecode(at) if at else None, "why": why}
                for o, at, why in self.kept
            ],
        }


def selection(dag: Dag, opts: Options) -> list[str]:
    """The stages ``opts`` selects, in the order to run them; UsageError for an unknown one."""
    for t in opts.targets:
        if t not in dag.stages:
            import difflib  # (only for this message)

            close = difflib.get_close_matches(t, list(dag.stages), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UsageError(f"no stage {quote_name(t)} in {PIPELINE_FILE}{hint}")
    if not opts.targets:
        names = list(dag.stages)
    elif opts.single:
        names = list(opts.targets)
    else:
        names = dag.closure(opts.targets, down=opts.downstream)
    return dag.order(names)


def link_above(ws: Workspace, rel: bytes, wdir: bytes = b"") -> bytes | None:
    """The first directory on the way to ``rel`` that is a symbolic link, if any (one at
    or above a stage's ``wdir`` is left to the runner, which refuses to start there)."""
    parts = rel.split(b"/")[:-1]
    for i in range(1, len(parts) + 1):
        above = b"/".join(parts[:i])
        st = ws.lstat(above)
        if st is None or not stat.S_ISDIR(st.st_mode):
            if st is None or not stat.S_ISLNK(st.st_mode):
                return None
            return None if wdir and inside(wdir, above) else above
    return None


def _file_above(ws: Workspace, rel: bytes) -> bytes | None:
    """The first path on the way to ``rel`` that is there but is neither a directory
    nor a symbolic link (a file, where a directory would have to be made), if any."""
    parts = rel.split(b"/")[:-1]
    for i in range(1, len(parts) + 1):
        above = b"/".join(parts[:i])
        st = ws.lstat(above)
        if st is None or stat.S_ISLNK(st.st_mode):
            return None
        if not stat.S_ISDIR(st.st_mode):
            return above
    return None


def params_through_link(path: bytes, link: bytes) -> str:
    """Why a stage's params file ``path`` cannot be read: the link ``link``
    (:func:`link_above`) is on the way to it."""
    return (
        f"params file {quoted(path)} is reached through the symbolic link {quoted(link)}, "
        f"and dvfs does not follow links to a stage's files: make {quoted(link)} a "
        "directory, or name the path it points to"
    )


def _through_link(name: str, what: str, path: bytes, link: bytes) -> UsageError:
    return UsageError(
        f"stage {name}: {what} {quoted(path)} is reached through the symbolic link "
        f"{quoted(link)}, and dvfs does not follow links to a stage's deps and outs: "
        f"make {quoted(link)} a directory, or name the path it points to"
    )


def check_outs(ws: Workspace, stages: list[Stage]) -> None:
    """UsageError if an out of ``stages`` cannot be made where it is, or would not be
    versioned: an ignore rule keeps it out (``add`` would refuse it, ``status`` not
    show it; an output directory only a rule ending in / keeps out is found when made)."""
    for stage in stages:
        n = stage.name
        for o in stage.outs:
            link = link_above(ws, o, stage.wdir)
            if link is not None:
                raise _through_link(n, "out", o, link)
            in_file = _file_above(ws, o)
            if in_file is not None:
                raise UsageError(
                    f"stage {n}: out {quoted(o)} cannot be made: {quoted(in_file)} is a file, "
                    f"not a directory: move {quoted(in_file)} away, or name another out"
                )
    for stage in stages:
        for o, rule in ignored_outs(ws, stage.outs)[:1]:
            raise UsageError(
                f"stage {stage.name}: out {quoted(o)} is kept out by the ignore rule {rule}, "
                "so it would not be versioned (`dvfs add` refuses it, `status` does not show "
                "it): remove or narrow that rule (a ! line can undo it), or name another out"
            )


def not_checked_out(ws: Workspace, path: bytes) -> bool:
    """True if the index of the working tree's repository holds ``path`` (or a path
    below it) as not checked out: a partial working tree's file that was never
    written, not one deleted (a mount has no index)."""
    if ws.repo is None or not ws.own_index:
        return False
    index = ws.repo.index()
    absent = index.absent()
    return any(p in absent for p in index.under(path))


def check_inputs(
    ws: Workspace,
    dag: Dag,
    names: list[str],
    param_values: Callable[[Stage], object],
) -> None:
    """UsageError if a selected stage needs a dep or param nothing will provide, or has
    an out it cannot make or version (:func:`check_outs`)."""
    chosen = set(names)
    check_outs(ws, [dag.stages[n] for n in names])
    for n in names:
        stage = dag.stages[n]
        others = chosen - {n}  # (what they make is there when this stage runs)
        for d in stage.deps:
            if dag.makers_near(d) & others:
                continue
            st = ws.lstat(d)
            if st is not None:
                if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)
                        or stat.S_ISLNK(st.st_mode)):  # fmt: skip
                    raise UsageError(
                        f"stage {n}: dep {quoted(d)} is not a file, a directory or a link (a "
                        "FIFO, socket or device): dvfs cannot tell its content"
                    )
                continue
            link = link_above(ws, d, stage.wdir)
            if link is not None:
                raise _through_link(n, "dep", d, link)
            maker = dag.maker_of(d)
            if maker is not None and maker not in chosen:
                hint = f"stage {maker} makes it: run `dvfs repro {n}` to run {maker} first"
            elif maker is not None:
                hint = f"stage {maker} makes it"
            else:
                makers = dag.makers_within(d)
                hint = (
                    f"stages {', '.join(makers)} make what is inside it"
                    if makers
                    else "no stage makes it: add it, or a stage with it among its outs"
                )
                if not makers and not_checked_out(ws, d):  # a partial working tree
                    raise UsageError(
                        f"stage {n} needs {quoted(d)}, which is tracked but not checked out: "
                        f"`dvfs pull {shell_word(d)}` or `dvfs checkout HEAD {shell_word(d)}` "
                        "brings it"
                    )
            raise UsageError(f"stage {n} needs {quoted(d)}, which does not exist; {hint}")
        # the params files another of them makes are read once it ran: not now (read
        # now, their values would stand in for the ones the stage reads)
        mine = tuple((f, k) for f, k in stage.params if dag.maker_of(f) not in others)
        if mine:
            param_values(replace(stage, params=mine))
