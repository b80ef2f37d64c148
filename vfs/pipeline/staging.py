"""The outputs of recorded runs, ``dvfs.runs`` and ``dvfs.yaml`` staged in the index.

When ``repro`` ends, for whatever reason, what it recorded is staged in the
repository's index (so ``dvfs commit`` records it), after the store is flushed and the
filesystem synced: the index never names objects not on disk.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

from vfs.ops.workflow import resolved
from vfs.pipeline.workspace import TreeState, Workspace
from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE, ignore_paths
from vfs.repo.stage import Staged
from vfs.worktree.scan import Warn


def stage_outputs(
    ws: Workspace,
    state: TreeState,
    stage_roots: list[bytes],
    to_stage: dict[bytes, Staged],
    recorded: bool,
    warn: Warn,
) -> int:
    """Stage the recorded outputs, ``dvfs.runs`` and ``dvfs.yaml``; how many paths changed."""
    repo = ws.repo
    assert repo is not None
    own = [p for p in (RUNS_FILE.encode(), PIPELINE_FILE.encode()) if ws.lstat(p)]
    roots = list(dict.fromkeys(stage_roots))
    if not roots and not recorded:
        return 0
    staged = sorted(to_stage)
    done = {r for r in roots if _holds_any(staged, r)}
    records = dict(to_stage)
    records.update(state.stage_records([r for r in roots if r not in done], store=True))
    records.update(state.stage_records(own, store=True))
    seen = state.index
    # What this repro wrote and stages settles a merge's conflicts there, as `dvfs add`
    # of it does (a repro after `restore --theirs params.yaml`): its outputs, and
    # dvfs.runs once it recorded a run (a version records only the runs whose outputs
    # it holds, so a record of another stage kept from one side misleads no one); not
    # dvfs.yaml, which repro only reads.
    settles = [*roots, RUNS_FILE.encode()] if recorded else roots
    if (
        seen is not None
        and all(seen.get(p) == s for p, s in records.items())
        and not any(p not in records for r in roots for p in seen.under(r))
    ):
        with repo.locked():
            resolved(repo, settles)
        return 0  # (all staged already: the index need not be written)
    with repo.locked():
        index = repo.index()
        changed = 0
        for root in roots:
            for p in index.under(root):
                if p not in records:
                    index.remove(p)
                    changed += 1
        for p, s in records.items():
            old = index.get(p)
            if old is not None and old == s:
                continue
            for anc in _ancestors(p):  # a file now where a tracked file was a directory
                index.remove(anc)
            for below in index.under(p):
                if below != p:
                    index.remove(below)
            index.put(p, s)
            changed += 1
        if changed:
            repo.store.sync()  # the index must never name objects not on disk
            index.head = None
            index.save()
            ignore_paths(repo.root, roots, warn)
        resolved(repo, settles)
    return changed


def _ancestors(path: bytes) -> Iterator[bytes]:
    while b"/" in path:
        path = path.rpartition(b"/")[0]
        yield path


def _holds_any(paths: list[bytes], top: bytes) -> bool:
    """True if one of the sorted ``paths`` is ``top`` or lies below it."""
    i = bisect.bisect_left(paths, top)
    if i < len(paths) and paths[i] == top:
        return True
    j = bisect.bisect_left(paths, top + b"/", i)
    return j < len(paths) and paths[j].startswith(top + b"/")
