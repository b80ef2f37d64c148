"""``dvfs exp``: run the pipeline with changed parameters, as a version of its own.

``dvfs exp run -S train.lr=0.02 -n lr02`` leaves the current branch, the working
tree and the staging index as they are:

1. a working tree of the experiment's own is made in
   ``.dvfs/exp/<name>.tmp-<pid>-<start>`` (each ``/`` of the name as ``%``, so that
   no two names share a tree; the pid and start time of the command running it, so
   that a tree a killed command left is told from one in use, even once another
   process has its pid; under the repository lock, which claims the name: without
   ``-n``, the first ``exp-N`` that neither a branch nor a running experiment has),
   holding copies of what the selected stages read and make as the working tree
   holds them now: ``dvfs.yaml``, ``dvfs.runs``, their params files, deps and
   outputs (links as they are: a dep that is, or holds, a relative link the copy
   would resolve elsewhere, out of the working tree or to a path not copied, is
   refused);
2. each ``-S [FILE:]KEY=VALUE`` is set in its params file there (default the
   ``params.yaml`` of the current directory, as for ``dvfs run -p``; the value typed
   as YAML 1.2, as ``commit --param`` types it); a KEY no selected stage reads, or
   in a file a selected stage makes (it would write the file again), is refused, as
   the experiment would be recorded with a value no command saw;
3. the stages are reproduced there (``vfs.pipeline.repro``: stale ones run, with
   the run cache of the repository, which then also holds these runs);
4. the experiment's version is what ``dvfs commit`` would record now (the staging
   index), with the tracked files of step 1 and the outputs as the experiment left
   them (a file not checked out stays as the index has it), and with its lineage;
   it is recorded as the first version of branch ``exp/<name>``, on top of HEAD. A
   params file (or dep, or a file in a dep directory) the index does not track stays
   out of it, with a warning for a params file ``-S`` changed: the values are in the
   version's runs, and ``dvfs switch`` to the experiment and back leaves the user's
   untracked file alone;
5. the experiment's working tree is removed (also when a stage fails; nothing is
   recorded then, and the working tree's own outputs are as they were: a previous
   output the stage could not have back in the copy is not kept); one that cannot be
   removed entirely (a stage left a mount point in it) is named in a warning, and
   removed by the next experiment once its command is gone.

``dvfs switch exp/<name>`` brings an experiment into the working tree;
``dvfs compare`` and ``dvfs exp list`` show experiments beside versions.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfs._os.beneath import READ, Walker, open_dir, remove_tree
from vfs._os.helper_process import process_tag, tag_alive
from vfs.errors import DvfsError, UsageError
from vfs.model import params as version_params
from vfs.ops.commit import build_tree_rows
from vfs.pipeline import plan, report, repro, values
from vfs.pipeline.graph import Dag, inside
from vfs.pipeline.report import EXP_PREFIX
from vfs.pipeline.runner import Output
from vfs.pipeline.spec import DEFAULT_PARAMS
from vfs.pipeline.workspace import TreeState, Workspace, ignored_outs, load_pipeline
from vfs.quoting import escape_text, quote_name, quoted, shell_word
from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE
from vfs.repo.record import record_version
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import Repository
from vfs.repo.stage import as_row
from vfs.store.pins import release, take
from vfs.worktree.ignore import Ignores
from vfs.worktree.pools import Workers
from vfs.worktree.restore import ensure_dir
from vfs.worktree.scan import Warn, special_kind

EXP_DIR = "exp"
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Setting:
    """One ``-S [FILE:]KEY=VALUE``."""

    file: bytes
    key: str
    value: Any
    text: str  # as given


def parse_settings(items: list[str], rel: Any) -> list[Setting]:
    """``-S`` arguments; ``rel`` turns a file argument into a repository path."""
    out: list[Setting] = []
    for item in items:
        left, sep, raw = item.partition("=")
        if not sep or not left.strip():
            raise UsageError(f"-S {quote_name(item)} is not [FILE:]KEY=VALUE")
        file, colon, key = left.rpartition(":")
        path = rel(file if colon and file else os.fsdecode(DEFAULT_PARAMS))  # as `run -p` does
        twice = [o for o in out if (o.file, o.key) == (path, key.strip())]
        if twice:
            raise UsageError(
                f"-S {quote_name(item)} sets what -S {quote_name(twice[0].text)} sets: give each "
                "key once"
            )
        out.append(Setting(path, key.strip(), version_params.setting(raw, f"-S {item}"), item))
    return out


@dataclass
class Result:
    """An experiment recorded."""

    name: str
    branch: str
    oid: bytes
    number: int
    outcome: plan.Outcome
    settings: list[Setting]


def _copy(src: Walker, dst: Walker, rel: bytes, st: os.stat_result) -> None:
    """Copy one file or link of the working tree into the experiment's (no link followed)."""
    sdir, leaf = src.parent(rel)
    parent = rel.rpartition(b"/")[0]
    ddir = ensure_dir(dst, parent, lambda _: False) if parent else dst.dir(b"")
    if statmod.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(leaf, dir_fd=sdir), leaf, dir_fd=ddir)
        return
    fin = os.open(leaf, READ, dir_fd=sdir)
    try:
        fout = os.open(leaf, _CREATE, st.st_mode & 0o777, dir_fd=ddir)
        try:
            left = os.fstat(fin).st_size
            while left > 0:
                n = os.copy_file_range(fin, fout, min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
        finally:
            os.close(fout)
    finally:
        os.close(fin)


def _not_settable(ws: Workspace, rel: bytes) -> str | None:
    """Why -S cannot set a value in ``rel`` if the working tree holds there no regular
    file (a FIFO, a directory or a link is never copied into the experiment's tree as
    a file, and never opened: a FIFO would hang the read); None if it holds one."""
    try:
        st = ws.lstat(rel)
    except OSError as exc:
        return f"{quoted(rel)} cannot be read ({exc.strerror})"
    if st is None:
        link = plan.link_above(ws, rel)
        return (
            f"{quoted(rel)} does not exist" if link is None else plan.params_through_link(rel, link)
        )
    if statmod.S_ISREG(st.st_mode):
        return None
    if statmod.S_ISLNK(st.st_mode):
        what = "a symbolic link"
    elif statmod.S_ISDIR(st.st_mode):
        what = "a directory"
    else:
        what = special_kind(st.st_mode) or "not a file"
    return (
        f"{quoted(rel)} is {what}, not a regular file: -S sets a value in a YAML or JSON "
        "file of the working tree; make it one, or name the file the value is in"
    )


def _populate(
    ws: Workspace, tree: Path, paths: list[bytes], deps: list[bytes], workers: Workers,
    warn: Warn,
) -> None:  # fmt: skip
    """Copy ``paths`` (files or directories, as ``add`` would see them) into ``tree``;
    UsageError for a link among ``deps`` that the copy would resolve elsewhere."""
    state = TreeState(ws, workers, warn)
    tracked = state.tracked
    with Walker(ws.root) as src, Walker(tree) as dst, Ignores(ws.root, tracked, warn) as ign:
        for p in paths:
            for f in state.files_below(p, ign)[1]:
                if statmod.S_ISLNK(f.st.st_mode) and any(inside(f.rel, d) for d in deps):
                    _check_link(ws, src, f.rel, paths)
                with contextlib.suppress(FileExistsError):
                    _copy(src, dst, f.rel, f.st)


def _check_link(ws: Workspace, src: Walker, rel: bytes, paths: list[bytes]) -> None:
    """UsageError if link ``rel`` of a dep, copied as it is, would lead the stage to
    something else in the experiment's copy than in the working tree: a relative target
    out of the working tree, or to a path in it that is not copied (and exists)."""
    sdir, leaf = src.parent(rel)
    target = os.readlink(leaf, dir_fd=sdir)
    if target.startswith(b"/"):
        return  # (the same path from either tree)
    where = os.path.normpath(os.path.join(os.path.dirname(rel), target))
    out = where == b".." or where.startswith(b"../")
    if not out and any(inside(where, p) for p in paths):
        return
    if not os.path.exists(ws.root / os.fsdecode(where)):
        return  # (leading nowhere in the working tree too)
    raise UsageError(
        f"{quoted(rel)}, a dep, is a symbolic link to {quote_name(os.fsdecode(target))}, "
        + ("outside the working tree" if out else "which no selected stage reads or makes")
        + ": from the experiment's copy of the working tree it would lead elsewhere; make "
        "the link absolute"
        + ("" if out else f", or make {quoted(where)} a dep of the stage that reads it")
    )


def _stale_trees(base: int) -> None:
    """Remove experiment trees left by processes that no longer run (a kill -9), in
    ``.dvfs/exp`` open at ``base``."""
    for name in os.listdir(base):
        if tag_alive(name.rpartition(".tmp-")[2]) is False:
            remove_tree(base, name)


def _open_base(repo: Repository) -> int:
    """A descriptor of ``.dvfs/exp`` (made if missing), through which the trees there
    are deleted by name: never through a link, made before or swapped in meanwhile
    (UsageError if one is there now)."""
    try:
        return open_dir(repo.dir, EXP_DIR, make=True)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        raise UsageError(
            f"{quote_name(str(repo.dir / EXP_DIR))} is a symbolic link: dvfs follows no link "
            "out of the repository; remove it (it is made again) and run the experiment again"
        ) from None


def _tree_name(name: str) -> str:
    """The start of the name of experiment ``name``'s working tree in ``.dvfs/exp``:
    ``name`` with each ``/`` as ``%``, which no name holds (``check_ref_name``), so that
    no two names share a tree name (``a/b`` and ``a_b`` did, when ``/`` became ``_``).

    Older versions wrote ``_`` for ``/``: while one of them runs an experiment whose
    name holds a ``/``, this version does not see that name as taken; once that
    command is gone, its tree is removed all the same (by its process tag).
    """
    return name.replace("/", "%")


def _running(base: int) -> set[str]:
    """The tree names of the experiments other live commands run now (their trees in
    ``.dvfs/exp``, open at ``base``)."""
    out = set()
    mine = process_tag()
    for leaf in os.listdir(base):
        tree, _, tag = leaf.rpartition(".tmp-")
        if tag != mine and tag_alive(tag):
            out.add(tree)
    return out


def free_name(ws: Workspace, running: Collection[str] = ()) -> str:
    """``exp-N``, the first N not taken by an experiment branch nor by an experiment
    that runs now (``running``: their tree names)."""
    assert ws.repo is not None
    taken = set(ws.repo.refs.branches())
    n = 1
    while f"{EXP_PREFIX}exp-{n}" in taken or f"exp-{n}" in running:
        n += 1
    return f"exp-{n}"


def run(
    ws: Workspace,
    settings: list[Setting],
    name: str | None,
    targets: list[str],
    workers: Workers,
    say: repro.Say,
    warn: Warn,
    output: Output,
) -> Result:
    """Run an experiment (see the module docstring)."""
    repo = ws.repo
    if repo is None or not ws.own_index:
        raise UsageError(
            "experiments run from a repository's working tree (not in a mount): cd into it"
        )
    hist = repo.history
    head = hist.head_id()
    if head is None:
        raise UsageError("no version yet: commit one first (an experiment is made on top of it)")
    if name is not None:
        _check_name(repo, name)
    p, dag = load_pipeline(ws)
    if not p.stages:
        raise UsageError(f"no stages in {PIPELINE_FILE}: an experiment reproduces them")
    names = plan.selection(dag, plan.Options(targets=targets))
    _check_made(dag, names, settings)
    wanted = _inputs(dag, names, settings)
    base = _open_base(repo)
    try:
        with repo.locked():  # the name is claimed (its tree made) before the stages run
            _stale_trees(base)
            running = _running(base)
            given = name is not None
            name = name if name is not None else free_name(ws, running)
            branch = _check_name(repo, name)
            if _tree_name(name) in running:
                raise UsageError(
                    f"experiment {name} is being run by another command now: "
                    + ("choose another -n NAME" if given else "run this one again")
                )
            leaf = f"{_tree_name(name)}.tmp-{process_tag()}"
            os.mkdir(leaf, dir_fd=base)
        tree = repo.dir / EXP_DIR / leaf
        writing = take(repo.dir, writing=True)  # its outputs are stored before _record names them
        try:
            deps = [d for n in names for d in dag.stages[n].deps]
            _populate(ws, tree, wanted, deps, workers, warn)
            exp_ws = Workspace(tree, repo, own_index=False)
            for s in settings:
                try:
                    data = exp_ws.read(s.file, values.MAX_FILE)
                except UsageError as exc:  # (what the working tree holds says why)
                    why = _not_settable(ws, s.file) or str(exc)
                    raise UsageError(f"-S {quote_name(s.text)}: {why}") from None
                if data is None:
                    why = _not_settable(ws, s.file) or f"{quoted(s.file)} does not exist"
                    raise UsageError(f"-S {quote_name(s.text)}: {why}")
                exp_ws.write(s.file, values.set_value(data, s.file, s.key, s.value, quoted(s.file)))
            _check_read(dag, names, settings)
            _, exp_dag = load_pipeline(exp_ws)
            runner = repro.Repro(exp_ws, exp_dag, workers, say, warn, output, copy=True)
            outcome = runner.run(plan.Options(targets=targets))
            if outcome.interrupted:
                raise repro.Interrupted("interrupted: the experiment recorded nothing")
            if outcome.failed:
                first = outcome.failed[0]
                raise repro.StageFailed(f"{first[1]} (the experiment recorded nothing)")
            oid, number = _record(ws, exp_ws, exp_dag, names, wanted, branch, name, settings, warn)
            exp_ws.close()
        finally:
            release(writing)
            remove_tree(base, leaf)
            with contextlib.suppress(FileNotFoundError):  # (a mount point, an immutable file)
                os.stat(leaf, dir_fd=base, follow_symlinks=False)
                warn(
                    f"the experiment's working tree {quote_name(str(tree))} could not be "
                    "removed entirely (a stage left what cannot be deleted there): remove it "
                    "by hand"
                )
    finally:
        os.close(base)
    return Result(name, branch, oid, number, outcome, settings)


def _check_name(repo: Any, name: str) -> str:
    """The branch of experiment ``name``; UsageError if it cannot be made."""
    branch = check_ref_name(f"{EXP_PREFIX}{name}", "experiment")
    if repo.refs.get(f"refs/heads/{branch}") is not None:
        raise UsageError(f"experiment {name} exists (branch {branch}): choose another -n NAME")
    clash = repo.refs.clash(f"refs/heads/{branch}")
    if clash is not None:  # known now, not once the stages have run
        raise UsageError(
            f"experiment {name} cannot be made: {clash.split('/', 2)[-1]} exists, and a name "
            "cannot be both a branch and the folder of others: choose another -n NAME"
        )
    return branch


def _check_read(dag: Dag, names: list[str], settings: list[Setting]) -> None:
    """UsageError for a setting no selected stage reads: its experiment would be recorded
    as made with that value, which no command saw."""
    read = [(f, k) for n in names for f, k in dag.stages[n].params]
    for s in settings:
        if any(
            f == s.file and (k == s.key or k.startswith(s.key + ".") or s.key.startswith(k + "."))
            for f, k in read
        ):
            continue
        shown = ", ".join(dict.fromkeys(f"{quoted(f)}:{k}" for f, k in read)) or "none"
        raise UsageError(
            f"-S {quote_name(s.text)}: no stage reads {quoted(s.file)}:{quote_name(s.key)}, so the "
            f"experiment would not use it (the stages read {shown}; -S FILE:KEY=VALUE names "
            "another file)"
        )


def _check_made(dag: Dag, names: list[str], settings: list[Setting]) -> None:
    """UsageError for a setting in a file a selected stage makes: that stage runs (its
    output no longer what its run made) and writes the file again, and the experiment
    would be recorded as made with a value no command saw."""
    for s in settings:
        for n in names:
            out = next((o for o in dag.stages[n].outs if inside(s.file, o)), None)
            if out is not None:
                within = f" (in its out {quoted(out)})" if out != s.file else ""
                raise UsageError(
                    f"-S {quote_name(s.text)}: {quoted(s.file)} is made by stage {n}{within}, "
                    f"which would write it again: set what stage {n} makes it from instead"
                )


def _inputs(dag: Dag, names: list[str], settings: list[Setting]) -> list[bytes]:
    """What the experiment's working tree needs: pipeline files, deps, params, outputs."""
    paths: list[bytes] = [PIPELINE_FILE.encode(), RUNS_FILE.encode()]
    for n in names:
        s = dag.stages[n]
        paths += [*s.deps, *(f for f, _ in s.params), *s.outs]
    paths += [s.file for s in settings]
    unique = sorted(set(paths))
    return [x for x in unique if not any(x != y and inside(x, y) for y in unique)]


def _record(
    ws: Workspace, exp_ws: Workspace, dag: Dag, names: list[str], copied: list[bytes],
    branch: str, name: str, settings: list[Setting], warn: Warn,
) -> tuple[bytes, int]:  # fmt: skip
    """Store the experiment's version and make its branch."""
    repo = ws.repo
    assert repo is not None
    hist = repo.history
    with Workers() as w:
        state = TreeState(exp_ws, w, warn)
        outs = [o for n in names for o in dag.stages[n].outs]
        with repo.locked():
            if repo.refs.get(f"refs/heads/{branch}") is not None:  # made while the stages ran
                raise UsageError(
                    f"experiment {name} was made by another command while this one ran: run "
                    "it again with another -n NAME (this run recorded nothing)"
                )
            index = repo.index()
            rows = dict(index.rows())
            own = (PIPELINE_FILE.encode(), RUNS_FILE.encode())
            keep = [c for c in copied if any(inside(c, o) or inside(o, c) for o in outs)]
            keep += [c for c in copied if index.under(c) or c in own]
            # A params file this branch does not track stays out of the version, as an
            # untracked dep does: `dvfs switch` would refuse to overwrite the user's file,
            # and switching back would delete it. Its values are in the version's runs.
            untracked = sorted({s.file for s in settings if not index.under(s.file)})
            ignored = dict(ignored_outs(ws, untracked)) if untracked else {}
            for f in untracked:
                add = "dvfs add --force" if f in ignored else "dvfs add"  # (else refused)
                warn(
                    f"{quoted(f)} is not tracked: experiment {name} records the values it set "
                    f"in its runs, not the file (`{add} {shell_word(f)}` and commit it to "
                    f"have `dvfs switch {branch}` bring it)"
                )
            keep = sorted(set(keep))
            # What the version takes from the experiment's tree: the outputs and the
            # pipeline's own files whole, and of the other paths only what the index
            # tracks (an untracked file in a dep directory stays the user's, as above).
            roots: list[bytes] = []
            for k in keep:
                if k in own or any(inside(k, o) for o in outs):
                    roots.append(k)
                else:
                    roots += [o for o in outs if inside(o, k)] + list(index.under(k))
                for path in index.under(k):
                    entry = index.get(path)
                    if entry is None or entry.checked_out:  # (one not checked out stays,
                        rows.pop(path, None)  # as a commit keeps it, unless copied over)
            for path, staged in state.stage_records(sorted(set(roots)), store=True).items():
                rows[path] = as_row(path, staged)
            tree, files, total = build_tree_rows(repo.store, rows.items())
            head = hist.head_id()
            assert head is not None
            changes = ", ".join(s.text for s in settings)
            made = record_version(
                repo, tree, f"experiment {name}" + (f": {changes}" if changes else ""), {},
                branch=branch, parents=(head,), expect=None, files=files, size=total, warn=warn,
            )  # fmt: skip
    return made.oid, made.version.number


@dataclass
class Listed:
    """One experiment: its branch, version, base and what it changed and measured."""

    name: str
    branch: str
    oid: bytes
    label: str
    base: str | None
    created_ns: int
    message: str
    changed: dict[str, tuple[Any, Any]]
    metrics: dict[str, Any]


def listing(
    ws: Workspace, notes: list[str] | None = None, unreadable: list[bytes] | None = None
) -> list[Listed]:
    """Every experiment of the repository, newest first; what cannot be shown of
    their metrics is added to ``notes`` (and each metrics file that cannot be read to
    ``unreadable``), as :func:`report.version_metrics` gives them."""
    repo = ws.repo
    if repo is None:
        raise UsageError("no repository here: experiments live in a repository")
    hist = repo.history
    out = []
    for branch, oid in report.experiments(hist, repo.refs.branches()):
        try:
            v = hist.version(oid)
            parent = hist.version(v.parents[0]) if v.parents else None
            taken = report.commit_names([v, *([parent] if parent else [])])
            mine = report.version_params(v, taken)
            theirs = report.version_params(parent, taken) if parent else {}
            changed = {c.name: (c.old, c.new) for c in report.diff(theirs, mine, False)}
            m, why = report.version_metrics(hist, v, unreadable, escape_text(branch))
            metrics = report.flat_metrics(m, report.metric_names([m]))
            if notes is not None:
                notes += why
        except DvfsError as exc:
            bad = f"cannot be read: {exc}"
            out.append(Listed(branch[len(EXP_PREFIX) :], branch, oid, "?", None, 0, bad, {}, {}))
            continue
        # the version it was run from, named as a revision that reads it here: vN of
        # another branch (an experiment run from there) names another version here
        base = hist.revision(v.parents[0]) if v.parents else None
        out.append(
            Listed(
                branch[len(EXP_PREFIX) :], branch, oid, f"v{v.number}", base, v.time_ns,
                version_params.shown_message(v.message), changed, metrics,
            )
        )  # fmt: skip
    return out
