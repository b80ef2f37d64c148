"""A pipeline run inside a mounted working tree, recorded by its snapshot; and every
version's metadata as a file under ``.versions/meta``."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import yaml

from tests.support.cli import assert_error, assert_ok, cli_command, fsck_clean
from tests.support.mount import commit, dvfs, env_for, mounted, write
from tests.support.pipeline import PREPARE, PY, TRAIN
from vfs.repo.repository import Repository


def test_repro_in_a_mount_is_recorded_by_its_snapshot(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "repo")
    for i in range(3):
        write(repo.root, f"data/f{i}.csv", f"row {i}\n".encode())
    commit(repo, "raw data")
    home, mnt, log = tmp_path / "home", tmp_path / "mnt", tmp_path / "log"
    with mounted(str(repo.root), mnt, home):
        (mnt / "prep.py").write_text(PREPARE)
        (mnt / "train.py").write_text(TRAIN)
        (mnt / "params.yaml").write_text("train:\n  lr: 0.01\n")
        (mnt / "dvfs.yaml").write_text(json.dumps({"stages": {
            "prepare": {"cmd": [PY, "prep.py", str(log)], "deps": ["data", "prep.py"],
                        "outs": ["prepared"]},
            "train": {"cmd": [PY, "train.py", str(log)], "deps": ["prepared", "train.py"],
                      "params": ["train.lr"], "outs": ["model.bin"], "metrics": ["metrics.json"]},
        }}))  # fmt: skip
        r = assert_ok(dvfs(mnt, home, "repro", "--jobs", "2"))
        assert "Running stage train (no run recorded)" in r.out
        assert f"`dvfs snapshot {mnt} -m MSG` records them" in r.out
        assert (mnt / "model.bin").read_text() == "model 18 0.01"
        assert (
            "dvfs.runs" in assert_ok(dvfs(mnt, home, "status", str(mnt), "--json")).json()["added"]
        )
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "trained in the mount"))
        shown = assert_ok(dvfs(repo.root, home, "show", "--format", "json")).json()
        assert [s["stage"] for s in shown["pipeline"]] == ["prepare", "train"]
        assert shown["pipeline"][1]["params"] == {"params.yaml": {"train.lr": 0.01}}
        # The run cache of the mounted repository serves the mount too.
        (mnt / "params.yaml").write_text("train:\n  lr: 0.02\n")
        assert_ok(dvfs(mnt, home, "repro"))
        (mnt / "params.yaml").write_text("train:\n  lr: 0.01\n")
        r = assert_ok(dvfs(mnt / "prepared", home, "repro"))  # (from a directory inside)
        assert "Restoring stage train from the run cache" in r.out
        assert (mnt / "model.bin").read_text() == "model 18 0.01"
        # Every version's metadata, as `dvfs show --format yaml` prints it.
        meta = mnt / ".versions" / "meta"
        assert sorted(p.name for p in meta.iterdir()) == ["v1.yaml", "v2.yaml"]
        for n in (1, 2):
            text = assert_ok(dvfs(repo.root, home, "show", f"v{n}", "--format", "yaml")).out
            assert (meta / f"v{n}.yaml").read_text() == text
        assert yaml.safe_load((meta / "v2.yaml").read_text())["pipeline"][0]["stage"] == "prepare"
        assert not (mnt / ".versions" / "v2" / "meta").exists()  # no name added to versions
        assert not (meta / "v3.yaml").exists()
        assert ran_names(log) == ["prepare", "train", "train"]
    fsck_clean(repo.root)


def ran_names(log: Path) -> list[str]:
    return log.read_text().split()


def test_an_output_an_ignore_rule_matches_runs_in_a_mount_whose_snapshot_records_it(
    tmp_path: Path,
) -> None:
    # A mount's snapshot records its working tree whole, ignore rules or not: the
    # refusal of such an out in a repository (where `add` refuses it) is not for a mount.
    repo = Repository.init(tmp_path / "repo")
    write(repo.root, ".dvfsignore", b"*.log\n")
    commit(repo, "rules", top=".dvfsignore")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo.root), mnt, home):
        assert_ok(dvfs(mnt, home, "run", "-n", "s", "-o", "out.log", "--", "echo made > out.log"))
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "ran"))
        shown = assert_ok(dvfs(repo.root, home, "show", "--format", "json")).json()
        assert [s["stage"] for s in shown["pipeline"]] == ["s"]
    assert assert_ok(dvfs(repo.root, home, "cat", "HEAD:out.log")).out == "made\n"
    fsck_clean(repo.root)


def test_an_output_directory_holding_ignored_files_keeps_its_lineage_in_a_mount(
    tmp_path: Path,
) -> None:
    """An output directory's content id covers the files ignore rules match, as the
    mount's snapshot records them: the run is recorded in the version, with no warning,
    and so is a directory a rule keeps out whole."""
    repo = Repository.init(tmp_path / "repo")
    write(repo.root, ".dvfsignore", b"*.log\nscratch/\n")
    commit(repo, "rules", top=".dvfsignore")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    make = "mkdir out scratch && echo a > out/a && echo l > out/run.log && echo s > scratch/s"
    with mounted(str(repo.root), mnt, home, overlay="daemon"):
        assert_ok(dvfs(mnt, home, "run", "-n", "s", "-o", "out", "-o", "scratch", "--", make))
        r = assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "ran"))
        assert "lineage is not recorded" not in r.err, r.err
        assert "Stage s is fresh" in assert_ok(dvfs(mnt, home, "repro")).out
    shown = assert_ok(dvfs(repo.root, home, "show", "--format", "json")).json()
    assert [s["stage"] for s in shown["pipeline"]] == ["s"]
    assert assert_ok(dvfs(repo.root, home, "cat", "HEAD:out/run.log")).out == "l\n"
    fsck_clean(repo.root)


HALF = """
import os, sys
open("out.bin", "w").write("half")
with open(sys.argv[1], "w") as started:  # (a FIFO: the test reads it)
    started.write(str(os.getpid()))
open(sys.argv[2]).close()  # (a FIFO: waits for the test to open it)
open("out.bin", "w").write("whole")
"""


def test_snapshot_refuses_while_repro_writes_an_output_in_the_mount(tmp_path: Path) -> None:
    """A snapshot taken while a stage of `dvfs repro` in the mount was writing its
    output recorded it half-written; it is refused, naming the stage, its pid and
    what to do, and recorded whole once the repro is done."""
    repo = Repository.init(tmp_path / "repo")
    write(repo.root, "data/a.txt", b"a\n")
    commit(repo, "raw data")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    started, go = tmp_path / "started", tmp_path / "go"
    os.mkfifo(started)
    os.mkfifo(go)
    with mounted(str(repo.root), mnt, home, overlay="daemon"):
        (mnt / "half.py").write_text(HALF)
        (mnt / "dvfs.yaml").write_text(json.dumps({"stages": {"half": {
            "cmd": [PY, "half.py", str(started), str(go)], "deps": ["half.py"],
            "outs": ["out.bin"],
        }}}))  # fmt: skip
        proc = subprocess.Popen(
            cli_command("repro"), cwd=mnt, env=env_for(home),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        try:
            with open(started) as f:
                pid = int(f.read())
            assert (mnt / "out.bin").read_text() == "half"
            r = dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "half")
            line = assert_error(r, "is writing out.bin, an output of stage half")
            assert f"`dvfs repro` (pid {proc.pid})" in line and f"kill -INT {proc.pid}" in line
            assert "then snapshot again; nothing was recorded" in line, line
            assert pid != proc.pid
        finally:
            with open(go, "w"):
                pass
            _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "whole"))
    assert assert_ok(dvfs(repo.root, home, "cat", "HEAD:out.bin")).out == "whole"
    assert assert_ok(dvfs(repo.root, home, "show", "--format", "json")).json()["message"] == "whole"
    fsck_clean(repo.root)


def test_the_commands_that_read_a_pipeline_work_in_a_read_only_mount(tmp_path: Path) -> None:
    """`dvfs lineage`, `compare`, `dag`, `metrics show`... in a read-only mount were
    refused with "a pipeline writes its outputs", which they do not: they read the
    mount's files and its repository's versions, as in a writable mount. A command
    that runs stages is refused, naming the repository to run it in."""
    repo = Repository.init(tmp_path / "repo")
    write(repo.root, "data/a.txt", b"a\n")
    write(repo.root, "params.yaml", b"lr: 2\n")
    commit(repo, "raw data", top=".")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    make = "cat data/a.txt > out.txt && echo '{\"acc\": 0.5}' > m.json"
    assert_ok(dvfs(repo.root, home, "run", "-n", "s", "-d", "data", "-p", "lr", "-o", "out.txt",
                   "-m", "m.json", "--", make))  # fmt: skip
    assert_ok(dvfs(repo.root, home, "commit", "-m", "ran"))
    with mounted(str(repo.root), mnt, home, "--read-only"):
        r = assert_ok(dvfs(mnt, home, "lineage", "out.txt"))
        made = f"stage s made out.txt: {make}"
        assert r.out.splitlines()[:2] == ["out.txt in v2 (since v2)", made]
        assert assert_ok(dvfs(mnt, home, "dag")).out == "s\n"
        listed = assert_ok(dvfs(mnt, home, "stage", "list", "--json")).json()["stages"]
        assert [s["name"] for s in listed] == ["s"]
        assert assert_ok(dvfs(mnt, home, "metrics", "show", "--json")).json() == {
            "workspace": {"m.json": {"acc": 0.5}}
        }
        rows = assert_ok(dvfs(mnt, home, "compare", "--json")).json()
        assert [(r["rev"], r["params"], r["metrics"]) for r in rows] == [
            ("v2", {"lr": 2}, {"acc": 0.5}), ("v1", {}, {}),
        ]  # fmt: skip
        assert assert_ok(dvfs(mnt, home, "params", "diff", "--json")).json()["params"] == []
        assert assert_ok(dvfs(mnt, home, "exp", "list", "--json")).json() == []
        for args in (("repro",), ("run", "-n", "t", "-o", "t.txt", "--", "touch t.txt")):
            line = assert_error(dvfs(mnt, home, *args), code=2)
            assert line == (
                f"dvfs: error: {mnt} is a read-only dvfs mount: a pipeline writes its outputs, "
                f"so run it in the repository ({repo.root}), or in a mount of it made without "
                "--read-only"
            ), line
    fsck_clean(repo.root)


def test_in_a_mount_of_another_branch_head_is_that_branch(tmp_path: Path) -> None:
    """In a mount of branch side, `dvfs params diff` compared the repository's HEAD (main,
    where lr is 2) with the mount's files (side's, lr 1), and listed a change nobody
    made; `compare`, `lineage` and `vN` read main's versions, not those `.versions`
    shows. In a mount, HEAD is the branch it serves."""
    repo = Repository.init(tmp_path / "repo")
    write(repo.root, "data/a.txt", b"a\n")
    write(repo.root, "params.yaml", b"lr: 1\n")
    commit(repo, "raw data", top=".")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    make = "cat params.yaml > out.txt && sed 's/lr: /{\"acc\": /; s/$/}/' params.yaml > m.json"
    assert_ok(dvfs(repo.root, home, "run", "-n", "s", "-d", "data", "-p", "lr", "-o", "out.txt",
                   "-m", "m.json", "--", make))  # fmt: skip
    assert_ok(dvfs(repo.root, home, "commit", "-m", "lr 1"))
    assert_ok(dvfs(repo.root, home, "branch", "side"))
    (repo.root / "params.yaml").write_text("lr: 2\n")
    assert_ok(dvfs(repo.root, home, "repro"))
    assert_ok(dvfs(repo.root, home, "commit", "-a", "-m", "lr 2"))
    with mounted(str(repo.root), mnt, home, "--branch", "side"):
        assert (mnt / "m.json").read_text() == '{"acc": 1}\n'
        assert assert_ok(dvfs(mnt, home, "params", "diff", "--json")).json()["params"] == []
        assert assert_ok(dvfs(mnt, home, "metrics", "diff", "--json")).json()["metrics"] == []
        rows = assert_ok(dvfs(mnt, home, "compare", "--json")).json()
        assert [(r["rev"], r["metrics"]) for r in rows] == [("v2", {"acc": 1}), ("v1", {})]
        r = assert_ok(dvfs(mnt, home, "lineage", "m.json", "--json")).json()
        shown = yaml.safe_load((mnt / ".versions" / "meta" / "v2.yaml").read_text())
        assert (r["version"], r["id"]) == ("v2", shown["id"])  # side's v2, as .versions has it
        assert "Stage s is fresh" in assert_ok(dvfs(mnt, home, "repro")).out
    fsck_clean(repo.root)


def test_lineage_in_a_versions_directory_reads_that_versions_path(tmp_path: Path) -> None:
    """`cd MNT/.versions/v2/models && dvfs lineage out.txt` said ".versions/v2/models/
    out.txt is not in v2": the path was read as one of the working tree. In a version's
    directory a path is that version's (`models/out.txt` of v2); a REV naming another
    version, or a place in .versions that is no version's, says what to run.
    (cat, ls, show, log and diff are run in the repository, not in a mount: they say so
    anywhere in it.)"""
    repo = Repository.init(tmp_path / "repo")
    write(repo.root, "data/a.txt", b"a\n")
    commit(repo, "raw data", top=".")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    make = "mkdir -p models && cat data/a.txt > models/out.txt"
    assert_ok(dvfs(repo.root, home, "run", "-n", "s", "-d", "data", "-o", "models/out.txt",
                   "--", make))  # fmt: skip
    assert_ok(dvfs(repo.root, home, "commit", "-m", "ran"))
    write(repo.root, "data/a.txt", b"b\n")
    assert_ok(dvfs(repo.root, home, "repro"))
    assert_ok(dvfs(repo.root, home, "commit", "-a", "-m", "ran again"))
    with mounted(str(repo.root), mnt, home, "--read-only"):
        here = mnt / ".versions" / "v2" / "models"
        r = assert_ok(dvfs(here, home, "lineage", "out.txt"))
        assert r.out.splitlines()[:2] == [
            "models/out.txt in v2 (since v2)", f"stage s made models/out.txt: {make}"
        ], r  # fmt: skip
        r = assert_ok(dvfs(here, home, "lineage", "out.txt", "v2", "--json")).json()
        assert (r["path"], r["version"]) == ("models/out.txt", "v2"), r
        line = assert_error(dvfs(here, home, "lineage", "out.txt", "v3"), code=2)
        assert line == (
            "dvfs: error: out.txt is a path of v2 in the mount's list of versions: run "
            "`dvfs lineage models/out.txt v3`"
        ), line
        line = assert_error(dvfs(mnt, home, "lineage", ".versions/latest/models/out.txt"), code=2)
        assert "not in a version's directory (vN): run `dvfs lineage PATH REV`" in line, line
        assert "models/out.txt in v3" in assert_ok(dvfs(mnt, home, "lineage", "models/out.txt")).out
    fsck_clean(repo.root)
