"""The lineage a version records: its pipeline field, the runs file, and what is kept.

Every record may come from a remote or a working tree someone else made, so each
is decoded strictly and bounded; and a version records only the runs whose outputs
it holds exactly as they were made.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.api import SMALL_CHUNKS
from tests.test_checkout_ahead import forge_digest
from vfs.errors import FormatError, ReservedName
from vfs.model.codec import ChunkRef, Kind, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import (
    MAX_STAGES,
    StageRecord,
    StageRun,
    Version,
    decode_pipeline,
    decode_version,
    encode_pipeline,
    encode_version,
)
from vfs.ops import workflow
from vfs.ops.commit import commit
from vfs.pipeline import runs
from vfs.pipeline.content import dir_id, leaf_id, link_id, tree_path_id
from vfs.pipeline.record import describe, read_runs, version_pipeline
from vfs.pipeline.workspace import TreeState, Workspace
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind
from vfs.worktree.pools import Workers

ID = bytes(range(32))
RUN = StageRun(0, 1_700_000_000_000_000_000, 1_500_000_000, "host", "0.1.0", "3.11.7", "abc123")


def stage(name: str = "train", **kw: object) -> StageRecord:
    base: dict[str, object] = {
        "name": name,
        "cmd": "python train.py",
        "wdir": b"",
        "deps": ((b"data/prepared", ID), (b"train.py", hash_bytes(b"t"))),
        "outs": ((b"metrics.json", hash_bytes(b"m")), (b"model.pt", hash_bytes(b"p"))),
        "params": ((b"params.yaml", "train.lr", 0.01), (b"params.yaml", "train.opt", "adam")),
        "metrics": (b"metrics.json",),
        "run": RUN,
    }
    base.update(kw)
    return StageRecord(**base)  # type: ignore[arg-type]


def version(*stages: StageRecord) -> Version:
    return Version(ID, (), 1, "m", "a <a@b>", 1, pipeline=stages)


def test_pipeline_round_trips_and_old_records_still_decode() -> None:
    v = version(stage("prepare", cmd=("python", "prep.py"), outs=((b"data/prepared", ID),),
                      deps=(), params=(), metrics=()), stage())  # fmt: skip
    assert decode_version(encode_version(v)) == v
    old = version()  # every version written before pipelines: `pipeline: []`
    assert decode_version(encode_version(old)).pipeline == ()


def _raw(v: Version) -> dict[str, object]:
    rec: dict[str, object] = msgpack.unpackb(encode_version(v))
    return rec


def _with_stage(**changes: object) -> bytes:
    rec = _raw(version(stage()))
    row = dict(rec["pipeline"][0])  # type: ignore[index]
    row.update(changes)
    rec["pipeline"] = [row]
    return msgpack.packb(rec, use_bin_type=True)  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "changes",
    [
        {"name": "a b"},  # not a stage name
        {"name": "x" * 101},
        {"cmd": ""},
        {"cmd": []},
        {"cmd": ["python", 3]},
        {"cmd": "x" * (64 << 10 + 1)},
        {"wdir": b"../up"},
        {"deps": [[b"/etc/passwd", ID]]},
        {"deps": [[b"a/../../b", ID]]},
        {"deps": [[b"b", ID], [b"a", ID]]},  # unsorted
        {"deps": [[b"a", ID], [b"a", ID]]},  # repeated
        {"deps": [[b"a", ID[:31]]]},  # short id
        {"outs": [[b"x/.git/config", ID]]},
        {"outs": [[b".versions/v1", ID]]},
        {"params": [[b"params.yaml", "", 1]]},
        {"params": [[b"params.yaml", "a\nb", 1]]},
        {"metrics": [b"not-an-out.json"]},
        {"run": {"exit": 0}},
        {
            "run": {
                "exit": 0,
                "started_ns": 1,
                "ns": 1,
                "host": "a\x1b[31m",
                "dvfs": "0",
                "python": "3",
                "git": None,
            }
        },  # a control character in the host name
        {"extra": 1},
    ],
)
def test_a_hostile_pipeline_is_refused(changes: dict[str, object]) -> None:
    with pytest.raises(FormatError):
        decode_version(_with_stage(**changes))


def test_bounds_and_sharing_of_outputs_are_checked() -> None:
    rows = encode_pipeline([stage()])
    with pytest.raises(FormatError, match="belongs to two stages"):
        decode_pipeline([rows[0], {**rows[0], "name": "train2"}])
    with pytest.raises(FormatError, match="unsorted or repeated"):
        decode_pipeline([rows[0], rows[0]])
    many = [{**rows[0], "name": f"s{i:05d}", "outs": [], "metrics": []} for i in range(1025)]
    assert len(many) > MAX_STAGES
    with pytest.raises(FormatError, match="at most"):
        decode_pipeline(many)
    with pytest.raises(ReservedName):
        decode_pipeline([{**rows[0], "deps": [[b"data/.GIT/x", ID]]}])
    deep: object = 1
    for _ in range(40):
        deep = [deep]
    with pytest.raises(FormatError, match="nest"):
        encode_version(version(stage(params=((b"params.yaml", "k", deep),))))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_decodes_to_anything_but_format_errors(data: bytes) -> None:
    rec = _raw(version(stage()))
    rec["pipeline"] = [data, {"name": data}]
    with pytest.raises(FormatError):
        decode_version(msgpack.packb(rec, use_bin_type=True))


def test_runs_writer_writes_what_dump_writes() -> None:
    """``dvfs repro`` writes ``dvfs.runs`` after each stage through a Writer, which makes
    each stage's text once: the bytes are those of a full dump, also as stages come,
    change and go, and what dump refuses it refuses."""
    shared = {"layers": [64, 32], "opt": {"name": "adam"}}  # one object in two stages
    odd = stage(
        "odd",
        cmd="python x.py " + "--flag value " * 20,  # folded over lines
        deps=((os.fsencode("dat/é ü"), ID),),
        outs=((b"odd.out", ID),),
        params=((b"p.yaml", "model", shared), (b"q.yaml", "model", shared)),
        metrics=(),
    )
    a = stage("a", outs=((b"a.out", ID),), metrics=())
    w = runs.Writer()
    states = [
        {"train": stage()},
        {"train": stage(), "odd": odd},
        {"train": stage(cmd="python train.py --again"), "odd": odd, "a": a},
        {"odd": odd},
        {},
    ]
    for stages in states:
        assert w.dump(stages) == runs.dump(stages)
        assert runs.parse(w.dump(stages)) == stages
    two = {"a": stage("a", metrics=()), "b": stage("b", metrics=())}  # an out of both
    for write in (runs.dump, w.dump):
        with pytest.raises(FormatError, match="two stages"):
            write(two)


def test_runs_file_round_trips_and_is_strict() -> None:
    s = stage(cmd=("python", "train.py"))
    data = runs.dump({"train": s})
    assert data.startswith(b"# dvfs.runs")
    assert runs.parse(data) == {"train": s}
    assert runs.parse(b"") == {}
    for bad, why in [
        (b"version: 2\nstages: {}\n", "unknown version"),
        (b"version: 1\nstages: [1]\n", "not a mapping"),
        (b"version: 1\nstages:\n  t: {cmd: x}\n", "needs exactly the keys"),
        # a stage name was shown in Python's repr style ("it's", 'a\nb')
        (b"version: 1\nstages:\n  it's: {cmd: x}\n", "stage it's needs exactly the keys cmd, "),
        (b'version: 1\nstages:\n  "a\\nb": {cmd: x}\n', r'stage "a\\nb" needs'),
        (b"[unclosed", "not valid YAML"),
        (data.replace(b"data/prepared", b"../../etc"), "invalid name"),
        (data.replace(ID.hex().encode(), b"zz" * 32), "64 hex"),
    ]:
        with pytest.raises(FormatError, match=why):
            runs.parse(bad, "dvfs.runs")
    with pytest.raises(FormatError, match="larger than"):
        runs.parse(b"#" * (runs.MAX_FILE + 1))


def test_a_runs_file_cannot_name_one_long_list_for_every_stage() -> None:
    """Aliases: 10,000 deps written once, named by 200 stages, is 2,000,000 entries."""
    deps = "{" + ", ".join(f"d{i}: {ID.hex()}" for i in range(10_000)) + "}"
    run = "{exit: 0, started_ns: 1, ns: 1, host: h, dvfs: d, python: p, git: null}"
    body = "".join(
        f"  s{i}: {{cmd: x, wdir: ., deps: {'&d ' + deps if i == 0 else '*d'}, outs: {{}}, "
        f"params: {{}}, metrics: [], run: {run}}}\n"
        for i in range(200)
    )
    text = f"version: 1\nstages:\n{body}".encode()
    assert len(text) < 1 << 20
    with pytest.raises(FormatError, match="more than 1,000,000 deps, outs, params and metrics"):
        runs.parse(text)


def test_content_ids_depend_on_content_alone() -> None:
    a = [(b"x.csv", Kind.FILE, hash_bytes(b"1")), (b"sub/y", Kind.SYMLINK, link_id(b"x.csv"))]
    assert dir_id(a) == dir_id(list(reversed(a)))
    assert dir_id(a) != dir_id(a[:1])
    assert leaf_id(Kind.SYMLINK, b"", b"t") == link_id(b"t") != link_id(b"u")


def _commit_tree(repo: Repository, files: dict[str, bytes], extra_runs: bytes | None) -> bytes:
    for rel, data in files.items():
        p = repo.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    if extra_runs is not None:
        (repo.root / "dvfs.runs").write_bytes(extra_runs)
    with Workers(2) as w:
        workflow.add(repo, [str(repo.root)], w)
    return commit(repo, "v", {}).oid


def test_a_version_records_only_runs_whose_outputs_it_holds(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "r")
    hist = repo.history
    files = {"data/a.csv": b"1,2\n", "model.pt": b"weights", "metrics.json": b'{"acc": 1}'}
    good = stage(
        deps=((b"data", dir_id([(b"a.csv", Kind.FILE, hash_bytes(b"1,2\n"))])),),
        outs=((b"metrics.json", hash_bytes(b'{"acc": 1}')), (b"model.pt", hash_bytes(b"weights"))),
    )
    stale = stage("other", outs=((b"other.bin", hash_bytes(b"not what it holds")),), metrics=(),
                  deps=(), params=())  # fmt: skip
    oid = _commit_tree(repo, files, runs.dump({"train": good, "other": stale}))
    v = hist.version(oid)
    assert [s.name for s in v.pipeline] == ["train"]  # other's output is not there
    assert tree_path_id(hist, v.tree, b"data") == good.deps[0][1]
    d = describe(v.pipeline[0])
    assert d["command"] == "python train.py"
    assert [i["path"] for i in d["input"]] == ["data"]
    assert {o["path"] for o in d["output"]} == {"model.pt", "metrics.json"}
    warned: list[str] = []
    (repo.root / "model.pt").write_bytes(b"changed by hand")
    oid2 = _commit_tree(repo, {}, None)
    assert hist.version(oid2).pipeline == ()
    assert version_pipeline(hist, hist.version(oid2).tree, None, warned.append) == ()
    assert any("model.pt is not as its last run made it" in w for w in warned)


def test_a_broken_runs_file_records_nothing_but_the_version(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "r")
    oid = _commit_tree(repo, {"a": b"1"}, b"version: 1\nstages: {x: 1}\n")
    warned: list[str] = []
    v = repo.history.version(oid)
    assert v.pipeline == ()
    assert version_pipeline(repo.history, v.tree, None, warned.append) == ()
    assert warned and "no lineage recorded" in warned[0]
    assert os.path.exists(repo.root / "dvfs.runs")


def test_a_runs_file_whose_bytes_are_not_its_digest_records_nothing(tmp_path: Path) -> None:
    """A dvfs.runs of several chunks that a version records under a digest its bytes
    do not have (a forged record an older dvfs fetched) was read as if it were that
    file: its chunks were joined unchecked, and a version made of that tree recorded
    the lineage they held. It is refused as a file that cannot be read is."""
    repo = Repository.init(tmp_path / "r", chunker=SMALL_CHUNKS)
    files = {"metrics.json": b'{"acc": 1}'}
    good = stage(deps=(), params=(), outs=((b"metrics.json", hash_bytes(b'{"acc": 1}')),))
    text = runs.dump({"train": good}) + b"# " + b"-" * 200_000 + b"\n"  # several chunks
    oid = _commit_tree(repo, files, text)
    hist = repo.history
    assert [s.name for s in hist.version(oid).pipeline] == ["train"]
    lie = hist.version(forge_digest(repo, oid, b"dvfs.runs", bytes(32))).tree
    with pytest.raises(FormatError, match=r"dvfs.runs: its bytes hash to .*, not to 000000"):
        read_runs(hist, lie)
    warned: list[str] = []
    assert version_pipeline(hist, lie, None, warned.append) == ()
    assert len(warned) == 1 and "not to 000000000000, the digest the version" in warned[0]
    assert "no lineage recorded" in warned[0]


def _with_runs(repo: Repository, tree: bytes, **changes: object) -> bytes:
    """A root tree like ``tree`` whose ``dvfs.runs`` entry has ``changes``, stored."""
    entries = {e.name: e for e in repo.history.tree(tree).entries}
    entries[b"dvfs.runs"] = entries[b"dvfs.runs"]._replace(**changes)
    oid, _ = repo.store.put(ObjKind.TREE, encode_tree(list(entries.values())))
    repo.store.flush()
    return oid


def _padded_runs(cmd: str) -> bytes:
    """A ``dvfs.runs`` of several chunks whose one stage, ``train``, made metrics.json."""
    made = stage(cmd=cmd, deps=(), params=(), outs=((b"metrics.json", hash_bytes(b"m1")),))
    return runs.dump({"train": made}) + b"# " + cmd.encode() * 20_000 + b"\n"


def test_a_runs_file_claiming_its_parents_digest_never_takes_the_parents_lineage(
    tmp_path: Path,
) -> None:
    """A ``dvfs.runs`` whose bytes are not the digest its tree records, that digest
    being the parent's ``dvfs.runs``'s: the version recorded the parent's lineage as
    its own, as if the bytes were simply not here. A false digest is damage: nothing
    is recorded, with a warning; and the parent's runs stand in for bytes that are not
    here only when the tree names the very same file (digest and chunks)."""
    repo = Repository.init(tmp_path / "r", chunker=SMALL_CHUNKS)
    hist = repo.history
    v1 = _commit_tree(repo, {"metrics.json": b"m1"}, _padded_runs("python train.py"))
    v2 = _commit_tree(repo, {}, _padded_runs("python other.py"))
    parent, mine = hist.version(v1), hist.version(v2)
    assert [s.cmd for s in parent.pipeline] == ["python train.py"]
    assert [s.cmd for s in mine.pipeline] == ["python other.py"]
    theirs = hist.lookup(parent.tree, b"dvfs.runs")
    assert theirs is not None and len(theirs.chunks) > 1
    lie = _with_runs(repo, mine.tree, digest=theirs.digest)
    warned: list[str] = []
    assert version_pipeline(hist, lie, parent, warned.append) == ()
    assert len(warned) == 1 and "the digest the version" in warned[0], warned
    assert "no lineage recorded" in warned[0]
    # The same digest over other chunks, none of them here: not the parent's file.
    gone = tuple(ChunkRef(hash_bytes(b"absent %d" % i), c.size) for i, c in
                 enumerate(theirs.chunks))  # fmt: skip
    other = _with_runs(repo, parent.tree, chunks=gone)
    warned.clear()
    assert version_pipeline(hist, other, parent, warned.append) == ()
    assert len(warned) == 1 and "is not in the local store" in warned[0], warned
    # The parent's very file whose bytes are not here (a mount of a remote holds what
    # was read): the parent's runs are checked instead.
    partial = Repository.init(tmp_path / "partial", chunker=SMALL_CHUNKS)
    absent = {c.oid for c in theirs.chunks}
    for oid in repo.store.iter_ids():
        if oid not in absent:
            obj, payload = repo.store.read_stored(oid)
            partial.store.put_stored(oid, obj.kind, obj.compression, payload, obj.raw_len)
    partial.store.flush()
    warned.clear()
    got = version_pipeline(partial.history, parent.tree, parent, warned.append)
    assert got == parent.pipeline and warned == []


def test_tree_state_forgets_exactly_the_paths_at_above_and_below_a_change(
    tmp_path: Path,
) -> None:
    repo = Repository.init(tmp_path / "r")
    root = repo.root
    for rel in ("d/x/y", "d/x/z", "d/w", "d-x", "d0/v", "dd", "e/f"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(rel.encode())
    paths = [b"d", b"d/x", b"d/x/y", b"d/x/z", b"d/w", b"d-x", b"d0", b"d0/v", b"dd", b"e",
             b"e/f", b"gone"]  # fmt: skip
    with Workers() as workers:
        ts = TreeState(Workspace(root, repo, own_index=True), workers)
        before = ts.ids(paths)
        assert before[b"gone"] is None and before[b"d"] is not None
        ts.forget([b"d/x", b"e/f/deeper"])
        # d/x itself, what lies below it and what holds it (d) go, and so do e/f and e,
        # which would hold e/f/deeper; siblings and the names that sort around "d/"
        # (d-x, d0, dd) stay.
        assert sorted(ts.memo) == [b"d-x", b"d/w", b"d0", b"d0/v", b"dd", b"gone"]
        (root / "d/x/y").write_bytes(b"changed")
        after = ts.ids(paths)
        assert after[b"d/x/y"] != before[b"d/x/y"] and after[b"d"] != before[b"d"]
        assert after[b"d/w"] == before[b"d/w"] and after[b"e"] == before[b"e"]
        ts.forget([b"d"])
        assert sorted(ts.memo) == [b"d-x", b"d0", b"d0/v", b"dd", b"e", b"e/f", b"gone"]
