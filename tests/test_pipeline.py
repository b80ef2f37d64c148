"""Pipelines through the command line: run, repro, the run cache, parallel stages, dag.

Every stage is a real command run by a real ``dvfs`` process; tests that change a
repository end with ``dvfs fsck``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.cli import (
    Repo,
    RepoFactory,
    add_in_process,
    assert_error,
    assert_ok,
    git,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    warnings_of,
)
from tests.support.pipeline import (
    PY,
    PipelineRepo,
    pipeline_repo,
    ran,
    staged_paths,
)
from vfs.errors import UsageError
from vfs.pipeline import graph, spec
from vfs.pipeline.backups import backup_name
from vfs.store.lock import repository_lock


def test_run_defines_and_runs_stages_and_commit_records_their_lineage(
    repo: Repo, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    pipeline_repo(repo, log, commit=False)
    (repo.root / "dvfs.yaml").unlink()
    r = repo.ok("run", "-n", "prepare", "-d", "data", "-d", "prep.py", "-o", "prepared",
                "--", PY, "prep.py", str(log))  # fmt: skip
    assert "Running stage prepare (no run recorded)" in r.out
    assert "prepared 3" in r.out  # the command's own output
    r = repo.ok("run", "-n", "train", "-d", "prepared", "-d", "train.py", "-p", "train.lr",
                "-o", "model.bin", "-m", "metrics.json", PY, "train.py", str(log))  # fmt: skip
    assert ran(log) == ["prepare", "train"]
    spec = yaml.safe_load(repo.read("dvfs.yaml"))["stages"]
    assert spec["train"] == {
        "cmd": [PY, "train.py", str(log)], "deps": ["prepared", "train.py"],
        "params": ["train.lr"], "outs": ["model.bin"], "metrics": ["metrics.json"],
    }  # fmt: skip
    assert repo.read("prepared/f1.csv") == b"ROW 1\n"
    # The outputs, dvfs.runs and dvfs.yaml are staged: commit records them.
    assert {"model.bin", "metrics.json", "prepared/f0.csv", "dvfs.runs", "dvfs.yaml"} <= (
        staged_paths(repo)
    )
    repo.fail("run", "-n", "train", "--", "true", fragments=("already exists", "--force"))
    # a path given on the command line is refused as itself, not as a line of dvfs.yaml
    line = repo.fail("run", "-n", "up", "-d", "../x", "-o", "y", "--", "true")
    assert line == "dvfs: error: dep ../x is outside the working tree"
    repo.commit("trained")
    shown = yaml.safe_load(repo.ok("show", "--format", "yaml").out)
    stages = {s["stage"]: s for s in shown["pipeline"]}
    assert stages["train"]["command"] == [PY, "train.py", str(log)]
    assert [i["path"] for i in stages["train"]["input"]] == ["prepared", "train.py"]
    assert [o["path"] for o in stages["train"]["output"]] == ["metrics.json", "model.bin"]
    assert stages["train"]["params"] == {"params.yaml": {"train.lr": 0.01}}
    assert stages["train"]["run"]["exit"] == 0 and stages["train"]["run"]["python"]
    assert stages["prepare"]["output"][0]["id"] == stages["train"]["input"][0]["id"]
    # Nothing changed: every stage is fresh, nothing runs, nothing is staged.
    r = repo.ok("repro")
    assert "Stage prepare is fresh" in r.out and "2 fresh" in r.out
    assert ran(log) == [] and staged_paths(repo) == set()
    repo.fsck_clean()


def test_repro_runs_only_what_is_stale_and_says_why(trained: PipelineRepo) -> None:
    repo = trained
    repo.write("params.yaml", "train:\n  lr: 0.02\n  epochs: 3\n")
    dry = repo.ok("repro", "--dry-run")
    # in pipeline order, as a run takes them (the stages that would run came first)
    assert dry.out.splitlines() == [
        "Stage prepare is fresh",
        "Would run stage train: param train.lr 0.01 -> 0.02",
    ], dry
    assert repo.ran() == [] and b"0.01" in repo.read("model.bin")  # a dry run runs nothing
    r = repo.ok("repro")
    assert "Running stage train (param train.lr 0.01 -> 0.02)" in r.out
    assert repo.ran() == ["train"]
    repo.write("data/f9.csv", "row 9\n")
    r = repo.ok("repro")
    assert "Running stage prepare (dep data changed)" in r.out
    assert "Running stage train (dep prepared changed)" in r.out
    assert repo.ran() == ["prepare", "train"]
    (repo.root / "model.bin").unlink()
    r = repo.ok("repro", "train")  # the same inputs ran before: the run cache has it
    assert "Restoring stage train from the run cache (out model.bin missing)" in r.out
    assert repo.ran() == [] and (repo.root / "model.bin").exists()
    # Upstream ran but made the same bytes: downstream stays fresh.
    repo.write("prep.py", repo.read("prep.py") + b"# a comment\n")
    r = repo.ok("repro")
    assert "Running stage prepare (dep prep.py changed)" in r.out
    assert "Stage train is fresh" in r.out
    assert repo.ran() == ["prepare"]
    r = repo.ok("repro", "--force")
    assert repo.ran() == ["prepare", "train"] and "forced" in r.out
    r = repo.ok("repro", "train", "--downstream", "--dry-run")
    assert "prepare" not in r.out  # train and what depends on it only
    repo.fsck_clean()


def test_repro_in_a_subdirectory_names_the_inputs_to_stage_as_add_takes_them_there(
    trained: PipelineRepo,
) -> None:
    """The note named them from the root (`data, prep.py`): typed so in the directory
    repro ran in, as `dvfs status` there names paths, `dvfs add` found nothing."""
    repo = trained
    repo.write("data/f0.csv", repo.read("data/f0.csv") + b"9,9\n")
    below = repo.root / "notes"
    below.mkdir()
    r = assert_ok(run(below, "repro"))
    assert repo.ran() == ["prepare", "train"]
    assert "note: ../data, ../prep.py, ../train.py, which the outputs were made from" in r.out
    assert_ok(run(below, "add", "../data", "../prep.py", "../train.py"))
    assert "not staged" not in assert_ok(run(below, "repro", "--force")).out
    repo.fsck_clean()


def test_repro_names_the_inputs_it_ran_from_that_are_not_staged(trained: PipelineRepo) -> None:
    """Outputs are staged by repro; the deps and params files they were made from are
    the user's to stage, and a commit without them would record outputs whose inputs
    are in no version: repro says which."""
    repo = trained
    repo.write("params.yaml", "train:\n  lr: 0.02\n  epochs: 3\n")
    repo.write("prep.py", repo.read("prep.py") + b"# a comment\n")
    r = repo.ok("repro")
    assert repo.ran() == ["prepare", "train"]
    assert (
        "note: prep.py, train.py, params.yaml, which the outputs were made from, are not "
        "staged: `dvfs add` them" in r.out
    )
    add_in_process(repo, "prep.py", "train.py")
    out = json.loads(repo.ok("repro", "--force", "--json").out)
    assert out["unstaged_inputs"] == ["params.yaml"]
    add_in_process(repo, "params.yaml")
    r = repo.ok("repro", "--force")
    assert "not staged" not in r.out
    repo.commit("lr 0.02")
    assert "in no version" not in repo.ok("lineage", "model.bin").out
    repo.fsck_clean()


def test_the_run_cache_restores_outputs_of_inputs_that_ran_before(
    trained: PipelineRepo,
) -> None:
    repo = trained
    first = repo.read("model.bin")  # lr 0.01, committed in v3
    repo.write("params.yaml", "train:\n  lr: 0.02\n")
    repo.ok("repro")
    assert repo.ran() == ["train"]
    repo.write("params.yaml", "train:\n  lr: 0.01\n")
    r = repo.ok("repro")
    assert "Restoring stage train from the run cache (param train.lr 0.02 -> 0.01)" in r.out
    assert "the command is not run again" in r.out and "1 restored from the run cache" in r.out
    assert repo.ran() == [] and repo.read("model.bin") == first
    assert "model.bin" not in staged_paths(repo)  # the restored output is staged: as v3's
    # Without the local cache, a version's lineage still knows the run.
    repo.write("params.yaml", "train:\n  lr: 0.03\n")
    repo.ok("repro")
    for entry in (repo.root / ".dvfs" / "runcache").rglob("*"):
        if entry.is_file():
            entry.unlink()
    repo.write("params.yaml", "train:\n  lr: 0.01\n")
    assert "Would restore stage train from the run cache" in repo.ok("repro", "--dry-run").out
    r = repo.ok("repro")
    assert "Restoring stage train from v3" in r.out
    assert repo.ran() == ["train"] and repo.read("model.bin") == first
    repo.write("params.yaml", "train:\n  lr: 0.03\n")
    repo.ok("repro", "--force")  # --force runs it anyway
    assert repo.ran() == ["prepare", "train"]
    repo.fsck_clean()


def test_an_output_directory_without_files_is_recorded_and_restored_as_made(
    repo: Repo,
) -> None:
    repo.write("params.yaml", "k: 1\n")
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: mkdir -p out/empty\n"
               "    params: [k]\n    outs: [out]\n")  # fmt: skip
    repo.ok("repro")
    add_in_process(repo, "params.yaml")
    r = repo.ok("commit", "-m", "one")
    assert "not as its last run made it" not in r.err  # no file of it to hold: as made
    assert [s["stage"] for s in repo.show()["pipeline"]] == ["s"]
    (repo.root / "out" / "empty").rmdir()
    (repo.root / "out").rmdir()
    r = repo.ok("repro")
    assert "Restoring stage s from the run cache (out out missing)" in r.out
    assert (repo.root / "out").is_dir()  # restored means there
    assert "Stage s is fresh" in repo.ok("repro").out
    repo.fsck_clean()


WAIT_FOR = """
import os, sys, time
mine, other = sys.argv[1], sys.argv[2]
open(mine, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists(other):  # both must run at once for either to finish
    if time.monotonic() > deadline:
        sys.exit("the other stage never started")
    time.sleep(0.01)
open(os.path.basename(mine) + ".out", "w").write("done")
print("line one")
print("line two")
"""


def test_independent_stages_run_in_parallel_with_prefixed_output(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("wait.py", WAIT_FOR)
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    repo.write("dvfs.yaml", json.dumps({"stages": {
        "a": {"cmd": [PY, "wait.py", a, b], "deps": ["wait.py"], "outs": ["a.out"]},
        "b": {"cmd": [PY, "wait.py", b, a], "deps": ["wait.py"], "outs": ["b.out"]},
        "c": {"cmd": "cat a.out b.out > c.out", "deps": ["a.out", "b.out"], "outs": ["c.out"]},
    }}))  # fmt: skip
    r = repo.ok("repro", "--jobs", "2")
    lines = r.out.splitlines()
    assert lines.count("[a] line one") == 1 and lines.count("[b] line two") == 1
    assert repo.read("c.out") == b"donedone"
    assert lines.index("Running stage c (no run recorded): cat a.out b.out > c.out") > max(
        lines.index("[a] line two"), lines.index("[b] line two")
    )
    repo.fsck_clean()


def test_keep_going_finishes_independent_branches_after_a_failure(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("dvfs.yaml", json.dumps({"stages": {
        "bad": {"cmd": "echo oops >&2; echo partial > bad.out; exit 3", "outs": ["bad.out"]},
        "after_bad": {"cmd": "cp bad.out x.out", "deps": ["bad.out"], "outs": ["x.out"]},
        "good": {"cmd": "echo fine > good.out", "outs": ["good.out"]},
        "after_good": {"cmd": "cp good.out y.out", "deps": ["good.out"], "outs": ["y.out"]},
    }}))  # fmt: skip
    r = repo.run("repro", "--keep-going", "--jobs", "2")
    line = assert_error(r, "stage bad failed", "exited with 3", "nothing of it was recorded")
    assert "last lines of stage bad's standard error:\n  oops" in r.err, line
    assert "dvfs: stage after_bad not run: upstream bad did not run" in r.err
    assert repo.read("y.out") == b"fine\n" and not (repo.root / "bad.out").exists()
    runs = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    assert sorted(runs) == ["after_good", "good"]
    assert {"good.out", "y.out", "dvfs.runs"} <= staged_paths(repo)
    # Without --keep-going, nothing new starts after the failure.
    (repo.root / "y.out").unlink()
    (repo.root / "good.out").unlink()
    r = repo.run("repro")
    assert_error(r, "stage bad failed")
    assert "dvfs: stage good not run: the pipeline stopped at a failure" in r.err
    assert not (repo.root / "y.out").exists() and not (repo.root / "good.out").exists()
    repo.fsck_clean()


def test_a_failed_command_leaves_the_previous_outputs_and_records_nothing(
    trained: PipelineRepo,
) -> None:
    repo = trained
    before = repo.read("dvfs.runs"), repo.read("model.bin")
    repo.write("train.py", "import sys\nopen('model.bin', 'w').write('partial')\n"
               "print('bad things', file=sys.stderr)\nsys.exit(3)\n")  # fmt: skip
    r = repo.run("repro")
    assert_error(r, "stage train failed", "exited with 3", "previous outputs are back")
    assert "  bad things" in r.err
    assert (repo.read("dvfs.runs"), repo.read("model.bin")) == before
    assert staged_paths(repo) == set()
    # A command that does not make an output it lists: named, nothing recorded.
    repo.write("train.py", "open('metrics.json', 'w').write('{}')\n")
    r = repo.run("repro")
    assert_error(r, "stage train did not make model.bin", "nothing of it was recorded")
    assert (repo.read("dvfs.runs"), repo.read("model.bin")) == before
    # A command that changes its own dep: refused.
    repo.write("train.py", "open('prepared/f0.csv', 'a').write('x')\n"
               "open('model.bin', 'w').write('m')\n"
               "open('metrics.json', 'w').write('{}')\n")  # fmt: skip
    r = repo.run("repro")
    line = assert_error(r, "stage train changed its own dep prepared",
                        "nothing of it was recorded")  # fmt: skip
    assert repo.read("dvfs.runs") == before[0]
    # the changed dep was staged as the fresh stage prepare's output, and status was clean
    assert staged_paths(repo) == set()
    assert repo.status()["modified"] == ["prepared/f0.csv"], repo.status()
    # the command it gave (`dvfs checkout HEAD DEP`) refused: uncommitted changes
    assert line.split("`")[1] == "dvfs restore prepared"
    repo.ok("restore", "prepared")
    assert repo.read("prepared/f0.csv") == b"ROW 0\n"
    repo.write("dvfs.yaml", "stages:\n  x:\n    cmd: [no-such-program-anywhere]\n")
    assert_error(repo.run("repro"), "stage x failed", "could not be started")
    repo.fsck_clean()


PROGRESS_THEN_FAIL = """
import sys
for i in range(200):
    sys.stderr.write("\\r%3d%%|####      | %d/200" % (i // 2, i))
sys.stderr.write("\\nValueError: bad row 7\\n")
sys.exit(1)
"""


def test_a_failed_command_s_progress_bar_is_shown_as_its_last_drawing(repo: Repo) -> None:
    """A tqdm bar redrawn after carriage returns filled the error's tail with 1,000
    characters of every drawing, each shown as \\r."""
    repo.write("fail.py", PROGRESS_THEN_FAIL)
    repo.write("dvfs.yaml", f"stages:\n  s:\n    cmd: [{json.dumps(PY)}, fail.py]\n"
               "    outs: [o]\n")  # fmt: skip
    r = repo.run("repro")
    assert_error(r, "stage s failed", "exited with 1")
    tail = r.err.split("last lines of stage s's standard error:\n")[1].splitlines()
    assert tail[:2] == ["   99%|####      | 199/200", "  ValueError: bad row 7"]
    assert "\\r" not in r.err
    repo.fsck_clean()


SPEC_ERRORS = [
    ("stages:\n  a:\n    cmd: x\n    deps: [b.out]\n    outs: [a.out]\n"
     "  b:\n    cmd: y\n    deps: [a.out]\n    outs: [b.out]\n",
     ("the stages form a cycle: a -> b -> a",)),
    ("stages:\n  a:\n    cmd: x\n    outs: [o]\n  b:\n    cmd: y\n    outs: [o]\n",
     ("stages a (dvfs.yaml:2) and b (dvfs.yaml:5) both make o",)),
    ("stages:\n  a:\n    cmd: x\n    outs: [d]\n  b:\n    cmd: y\n    outs: [d/o]\n",
     ("output d/o of stage b (dvfs.yaml:5) is inside output d of stage a",)),
    ("stages:\n  a:\n    cmd: x\n    deps: [o]\n    outs: [o]\n",
     ("output o is also its dep o",)),
    ("stages:\n  a:\n    cmd: x\n    deps: [d]\n    outs: [d/o]\n",
     ("output d/o is inside its dep d",)),
    ("stages:\n  a:\n    cmd: x\n    outs: [../o]\n",
     ("dvfs.yaml:4: stages.a.outs: path ../o is outside the working tree",)),
    ("stages:\n  a:\n    cmd: x\n    wdir: sub\n    outs: [../../o]\n",
     ("dvfs.yaml:5: stages.a.outs: path ../../o is outside the working tree",)),
    ("stages:\n  a:\n    cmd: x\n    outs: [/tmp/o]\n", ("is absolute",)),
    ("stages:\n  a:\n    cmd: x\n    outs: [.dvfs/objects]\n", ("dvfs.yaml:4", "inside .dvfs")),
    ("stages:\n  a:\n    cmd: x\n    outs: [sub/.git/x]\n", ("dvfs.yaml:4", "inside .git")),
    ("stages:\n  a:\n    cmd: x\n    outs: [.versions]\n", ("dvfs.yaml:4", "inside .versions")),
    ("stages:\n  a:\n    cmd: x\n    outs: [o\n", ("dvfs.yaml:", "not valid YAML")),
    ("stages:\n  a:\n    cmd: x\n    ouvs: [o]\n", ("dvfs.yaml:4: stages.a.ouvs: unknown key",)),
    ("stages:\n  a:\n    deps: [x]\n", ("dvfs.yaml:2: stages.a: has no cmd",)),
    ("stages:\n  a:\n    cmd: x\n  a:\n    cmd: y\n", ("dvfs.yaml:4", "given twice")),
    ("stages:\n  a:\n    cmd: x\n    outs: [dvfs.runs]\n", ("dvfs's own file",)),
    ("stages:\n  a:\n    cmd: x\n    deps: [o, o]\n", ("dvfs.yaml:4", "o is listed twice")),
    ("stages:\n  a b:\n    cmd: x\n", ("dvfs.yaml:2: stages.a b: a stage name is",)),
    ("stages:\n  a:\n    cmd: []\n", ("dvfs.yaml:3: stages.a.cmd: is empty",)),
    ("stages:\n  a: &x\n    cmd: x\n  b:\n    <<: *x\n", ("dvfs.yaml:5", "merge keys")),
    ("stages:\n  a:\n    cmd: x\nother: 1\n", ("dvfs.yaml:4: other: unknown key",)),
    ("- a\n", ("dvfs.yaml:1", "must be a mapping")),
]  # fmt: skip


def test_bad_pipelines_are_refused_with_file_line_and_what_to_fix() -> None:
    for text, fragments in SPEC_ERRORS:
        with pytest.raises(UsageError) as caught:
            graph.build(spec.parse(text))
        message = str(caught.value)
        assert all(f in message for f in fragments), (text, message)
    with pytest.raises(UsageError, match=r"dvfs\.yaml:2: not UTF-8"):
        spec.read(b"stages:\n\xff\n")
    with pytest.raises(UsageError, match="larger than 1 MiB"):
        spec.read(b"#" * (spec.MAX_FILE + 1))


def test_an_output_that_is_or_holds_the_stage_s_wdir_is_refused_before_it_runs(
    repo: Repo,
) -> None:
    # `dvfs run -o .` in sub moved sub aside and ran the command there: it wrote
    # out.txt into the previous output, which was put back with the failed run's file
    # in it ("its previous outputs are back"); such a stage could never succeed
    repo.write("sub/a/mine.txt", "mine\n")
    for where, out in (("sub", "."), ("sub/a", "..")):
        r = run(repo.root / where, "run", "-n", "s", "-o", out, "--", "echo made > out.txt")
        assert_error(r, "stage s (dvfs.yaml:", f"its wdir {where}", "moved aside", code=2)
        assert "Running stage" not in r.out
    assert sorted(p.name for p in (repo.root / "sub" / "a").iterdir()) == ["mine.txt"]
    assert not (repo.root / "dvfs.yaml").exists()
    repo.fsck_clean()


def test_aliases_cannot_expand_dvfs_yaml_beyond_its_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A list written once and named by many stages counts every time it is named."""
    monkeypatch.setattr(spec, "MAX_NODES", 5_000)
    paths = "[" + ", ".join(f"f{i}" for i in range(100)) + "]"
    aliases = "".join(f"  s{i}:\n    cmd: x\n    deps: *l\n" for i in range(60))
    text = f"stages:\n  s:\n    cmd: x\n    deps: &l {paths}\n{aliases}"
    with pytest.raises(UsageError, match="expands to more than 5,000 nodes"):
        spec.parse(text)
    monkeypatch.setattr(spec, "MAX_NODES", 7_000)
    assert len(spec.parse(text).stages) == 61


def test_bad_pipelines_through_the_command_line(repo: Repo) -> None:
    """One line saying what to fix, exit code 2, nothing run."""
    repo.write("params.yaml", "train:\n  lr: 0.1\n")
    repo.write("dvfs.yaml", SPEC_ERRORS[0][0])
    assert_error(repo.run("repro"), "dvfs.yaml", "a -> b -> a", code=2)
    repo.write("dvfs.yaml", "stages:\n  a:\n    cmd: touch o\n    deps: [made]\n    outs: [o]\n"
               "  b:\n    cmd: touch made\n    outs: [made]\n"
               "  c:\n    cmd: touch p\n    params: [train.lrr]\n    outs: [p]\n")  # fmt: skip
    assert_error(repo.run("repro", "a", "--downstream"), "stage a needs made, which does not "
                 "exist; stage b makes it: run `dvfs repro a`", code=2)  # fmt: skip
    assert_error(repo.run("repro", "c"), "stage c: params.yaml has no parameter train.lrr; "
                 "did you mean train.lr", code=2)  # fmt: skip
    assert_error(repo.run("repro", "trian"), "no stage trian")
    assert not (repo.root / "o").exists() and not (repo.root / "made").exists()
    repo.fsck_clean()


def test_run_refuses_a_mistyped_option_a_name_not_utf8_and_says_where_wdir_starts(
    repo: Repo,
) -> None:
    # An option run lacks once began the command: the rest, --no-exec too, went into
    # it, and the stage was written and run.
    for args in (("-w", "sub", "-o", "x", "--no-exec", "--", "touch x"), ("--bogus", "true")):
        line = repo.fail("run", "-n", "s", *args, code=2)
        assert f"no such option: {args[0]}" in line
    assert not (repo.root / "dvfs.yaml").exists()
    # dvfs.yaml is UTF-8: such a name was said to make the file not valid YAML
    line = repo.fail("run", "-n", "s", "-o", os.fsdecode(b"b\xffc"), "--", "true", code=2)
    assert line == 'dvfs: error: out "b\\377c" is not UTF-8, which dvfs.yaml is: rename it'
    assert not (repo.root / "dvfs.yaml").exists()
    repo.write("dvfs.yaml", "stages:\n  a:\n    cmd: 'true'\n    wdir: /tmp\n")
    line = repo.fail("repro", code=2)
    assert line.endswith("wdir /tmp is absolute: write it relative to the root")


def test_run_with_a_mistyped_param_or_dep_leaves_dvfs_yaml_as_it_was(repo: Repo) -> None:
    repo.write("params.yaml", "train:\n  lr: 0.1\n")
    # The stage was added, then its run refused: run again with the typo fixed said
    # "stage s already exists: use --force to replace it"
    line = repo.fail("run", "-n", "s", "-p", "train.lrr", "-o", "o", "--", "touch o", code=2)
    assert "stage s: params.yaml has no parameter train.lrr; did you mean train.lr" in line
    line = repo.fail("run", "-n", "s", "-d", "dtaa", "-o", "o", "--", "touch o", code=2)
    assert "stage s needs dtaa, which does not exist" in line
    assert not (repo.root / "dvfs.yaml").exists()
    repo.ok("run", "-n", "s", "-p", "train.lr", "-o", "o", "--", "touch o")
    repo.ok("run", "-n", "t", "-p", "train.lrr", "-o", "p", "--no-exec", "--", "touch p")
    # a dep another stage makes: the stage is added, and the run says to repro it
    line = repo.fail("run", "-n", "u", "-d", "p", "-o", "q", "--", "touch q", code=2)
    assert "stage t makes it: run `dvfs repro u`" in line
    assert [s["name"] for s in repo.json("stage", "list", "--json")["stages"]] == ["s", "t", "u"]


def test_run_and_stage_remove_edit_dvfs_yaml_only_while_no_repro_runs(repo: Repo) -> None:
    repo.ok("run", "-n", "a", "-o", "a", "--no-exec", "--", "touch a")
    before = repo.read("dvfs.yaml")
    # a repro holds the pipeline lock: dvfs run rewrote dvfs.yaml under it, from what
    # it had read, so that one of two edits at once could undo the other
    with repository_lock(repo.root / ".dvfs" / "pipeline.lock", wait=0):
        for args in (("run", "-n", "b", "-o", "b", "--no-exec", "--", "touch b"),
                     ("stage", "remove", "a")):  # fmt: skip
            line = repo.fail(*args, fragments=("pipeline.lock", "held by another dvfs command"))
            # a pipeline never waits for the lock: DVFS_LOCK_TIMEOUT would change nothing
            assert "DVFS_LOCK_TIMEOUT" not in line
        r = repo.run("repro", env={"DVFS_LOCK_TIMEOUT": "30"})  # (refused at once all the same)
        line = assert_error(r, "pipeline.lock", "run yours again when it has finished")
        assert "DVFS_LOCK_TIMEOUT" not in line
    assert repo.read("dvfs.yaml") == before
    repo.ok("run", "-n", "b", "-o", "b", "--no-exec", "--", "touch b")
    r = repo.ok("stage", "remove", "a", "a")  # given twice: once an internal AssertionError
    assert r.out == "Removed 1 stage from dvfs.yaml (outputs kept)\n"
    assert list(yaml.safe_load(repo.read("dvfs.yaml"))["stages"]) == ["b"]


def test_an_edit_that_would_break_another_stage_leaves_dvfs_yaml_as_it_was(
    repo: Repo,
) -> None:
    """`stage remove a`, where stage b's deps were a YAML alias of an anchor in a, wrote a
    dvfs.yaml every pipeline command then refused ("found undefined alias"), and said
    "Removed 1 stage"; `run -f` replacing stage a refused with the line of a file it had
    not written. The edit is refused, saying so, and the file kept."""
    text = (
        "stages:\n  a:\n    cmd: x\n    deps: &d [in1, in2]\n    outs: [a.out]\n"
        "  b:\n    cmd: y\n    deps: *d\n    outs: [b.out]\n"
    )
    repo.write("dvfs.yaml", text)
    for args in (("stage", "remove", "a"),
                 ("run", "-f", "--no-exec", "-n", "a", "-o", "a.out", "--", "z")):  # fmt: skip
        line = repo.fail(*args, fragments=("a YAML anchor of it", "dvfs.yaml is left as it was"))
        assert "found undefined alias" in line
        assert repo.read("dvfs.yaml").decode() == text
    repo.ok("stage", "remove", "a", "b")  # (both: no alias is left without its anchor)
    assert yaml.safe_load(repo.read("dvfs.yaml")) == {"stages": None}


def test_run_in_dvfs_s_or_git_s_directory_is_refused_naming_the_wdir(repo: Repo) -> None:
    """`dvfs run` in .dvfs was refused as "dvfs.yaml:4: stages.x.wdir: ...", a line of a
    file it had not written: the wdir is refused as a path given is."""
    (repo.root / ".git").mkdir()
    for where in (".dvfs", ".git"):
        r = run(repo.root / where, "run", "-n", "x", "--", "touch", "evil")
        line = assert_error(r, f"wdir {where} is inside {where}, which git or dvfs keeps for "
                            "itself", code=2)  # fmt: skip
        assert "dvfs.yaml" not in line
    assert not (repo.root / "dvfs.yaml").exists()
    assert not (repo.root / ".dvfs" / "evil").exists()


def test_outputs_stay_beneath_the_root_never_through_a_link(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo.root / "models")
    repo.write(
        "dvfs.yaml", "stages:\n  a:\n    cmd: echo x > models/m.bin\n    outs: [models/m.bin]\n"
    )
    r = repo.run("repro")
    line = assert_error(r, "stage a: out models/m.bin is reached through the symbolic link "
                        "models", "make models a directory", code=2)  # fmt: skip
    assert "--force" not in line and "Running" not in r.out  # refused before anything ran
    assert list(outside.iterdir()) == []
    # A dep below a link is said to be one, not to be missing.
    (outside / "in.txt").write_text("secret")
    repo.write("dvfs.yaml", "stages:\n  c:\n    cmd: cp models/in.txt c\n"
               "    deps: [models/in.txt]\n    outs: [c]\n")  # fmt: skip
    assert_error(repo.run("repro"), "stage c: dep models/in.txt is reached through the "
                 "symbolic link models", code=2)  # fmt: skip
    assert not (repo.root / "c").exists()
    (outside / "in.txt").unlink()
    # So is a params file: it was said not to exist
    (outside / "p.yaml").write_text("lr: 1\n")
    repo.write("dvfs.yaml", "stages:\n  p:\n    cmd: cp models/p.yaml p\n"
               "    params: [{models/p.yaml: [lr]}]\n    outs: [p]\n")  # fmt: skip
    through = ("params file models/p.yaml is reached through the symbolic link models, and "
               "dvfs does not follow links", "make models a directory")  # fmt: skip
    assert_error(repo.run("repro"), "stage p: " + through[0], through[1], code=2)
    r = repo.run("params", "diff")
    assert r.code == 1 and through[0] in warnings_of(r)[0], r
    assert not (repo.root / "p").exists()
    add_in_process(repo, "dvfs.yaml")
    repo.commit("one")  # (an experiment is made on top of a version)
    assert_error(repo.run("exp", "run", "-S", "models/p.yaml:lr=2"), *through, code=2)
    assert (outside / "p.yaml").read_text() == "lr: 1\n"
    (outside / "p.yaml").unlink()
    # Nor does a command start in a wdir reached through a link.
    repo.write("dvfs.yaml", "stages:\n  b:\n    cmd: echo x > m.bin\n    wdir: models\n"
               "    outs: [m.bin]\n")  # fmt: skip
    assert_error(repo.run("repro"), "stage b cannot run in its wdir models", "a symbolic link")
    assert list(outside.iterdir()) == []
    repo.fsck_clean()


def test_an_out_below_a_file_is_refused_naming_the_file(repo: Repo) -> None:
    repo.write("models", "not a directory\n")
    r = repo.run("run", "-n", "train", "-o", "models/m.bin", "--", "echo x > models/m.bin")
    line = assert_error(r, "stage train: out models/m.bin cannot be made: models is a file, "
                        "not a directory", "move models away", code=2)  # fmt: skip
    assert "--force" not in line and "the version" not in line and "Running" not in r.out
    assert not (repo.root / "dvfs.yaml").exists()  # nothing added
    repo.write("dvfs.yaml", "stages:\n  a:\n    cmd: echo x > models/m.bin\n"
               "    outs: [models/m.bin]\n")  # fmt: skip
    assert_error(repo.run("repro"), "out models/m.bin cannot be made: models is a file", code=2)
    assert repo.read("models") == b"not a directory\n"
    repo.fsck_clean()


def test_an_output_directory_an_ignore_rule_keeps_out_is_refused_naming_the_rule(
    repo: Repo,
) -> None:
    repo.write(".dvfsignore", "out/\n")
    repo.write("r", "r\n")
    r = repo.run("run", "-n", "s", "-d", "r", "-o", "out", "--", "mkdir -p out && cp r out/a")
    assert_error(r, "stage s made out, a directory the ignore rule .dvfsignore:1:out/ keeps "
                 "out", "nothing of it was recorded", code=1)  # fmt: skip
    assert not (repo.root / "out").exists() and not (repo.root / "dvfs.runs").exists()
    repo.write(".dvfsignore", "out/\n!out/\n")
    repo.ok("repro")
    assert "out/a" in staged_paths(repo)
    add_in_process(repo, "r", ".dvfsignore")
    r = repo.ok("commit", "-m", "one")
    assert "not as its last run made it" not in r.err
    assert repo.cat("HEAD:out/a") == b"r\n"
    repo.fsck_clean()


def test_an_output_file_an_ignore_rule_keeps_out_is_refused_before_it_runs(
    repo: Repo,
) -> None:
    repo.write(".dvfsignore", "*.log\nbuild/\n")
    add_in_process(repo, ".dvfsignore")
    # out.log was staged, though `dvfs add out.log` refuses it
    r = repo.run("run", "-n", "s", "-o", "keep.txt", "-o", "out.log", "--",
                 "echo a > out.log && echo b > keep.txt")  # fmt: skip
    assert_error(r, "stage s: out out.log is kept out by the ignore rule .dvfsignore:1:*.log",
                 "remove or narrow that rule", code=2)  # fmt: skip
    assert not (repo.root / "dvfs.yaml").exists() and not (repo.root / "out.log").exists()
    # a dvfs.yaml written by hand: refused at repro, nothing run; a file below an
    # ignored directory too
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: mkdir -p build && echo a > build/m.bin\n"
               "    outs: [build/m.bin]\n")  # fmt: skip
    repo.write("build/old", "x\n")
    r = repo.run("repro")
    assert_error(r, "out build/m.bin is kept out by the ignore rule .dvfsignore:2:build/", code=2)
    assert not (repo.root / "build/m.bin").exists() and not (repo.root / "dvfs.runs").exists()
    assert staged_paths(repo) == {".dvfsignore"}
    repo.write(".dvfsignore", "*.log\n")
    repo.ok("repro")
    assert "build/m.bin" in staged_paths(repo)
    repo.fsck_clean()


def test_a_name_dvfs_never_stores_in_an_output_is_warned_of_once(repo: Repo) -> None:
    """A stage that cloned a library into its output warned of its .GIT four times."""
    r = repo.ok("run", "-n", "s", "-o", "lib", "--",
                "mkdir -p lib/src && echo y > lib/src/a && echo z > lib/.GIT")  # fmt: skip
    assert warnings_of(r) == [
        "dvfs: warning: skipping lib/.GIT: dvfs never stores the name .GIT (git's and dvfs's own)"
    ]
    assert "lib/src/a" in staged_paths(repo) and "lib/.GIT" not in staged_paths(repo)
    repo.fsck_clean()


def test_a_fifo_as_a_dep_or_an_out_is_named_as_one_not_as_missing(repo: Repo) -> None:
    """A FIFO dep was 'needed, which does not exist'; a FIFO out was 'not made'."""
    os.mkfifo(repo.root / "pipe")
    r = repo.run("run", "-n", "s", "-d", "pipe", "-o", "o", "--", "echo > o")
    line = assert_error(r, "stage s: dep pipe is not a file, a directory or a link (a FIFO",
                        code=2)  # fmt: skip
    assert "does not exist" not in line and not (repo.root / "dvfs.yaml").exists()
    r = repo.run("run", "-n", "u", "-o", "o3", "--", "mkfifo o3")
    line = assert_error(r, "stage u made o3, which is not a file, a directory or a link",
                        "nothing of it was recorded", code=1)  # fmt: skip
    assert "did not make" not in line and not (repo.root / "o3").exists()
    repo.fsck_clean()


ENV_DUMP = """
import json, os
json.dump({"env": dict(os.environ), "cwd": os.getcwd()}, open("env.json", "w"))
"""


def test_commands_run_with_a_clean_environment_in_their_wdir(repo: Repo) -> None:
    repo.write("sub/dump.py", ENV_DUMP)
    repo.write("dvfs.yaml", "stages:\n"
               f"  dump:\n    cmd: [{json.dumps(PY)}, dump.py]\n    wdir: sub\n"
               "    deps: [dump.py]\n    outs: [env.json]\n"
               "  words:\n    cmd: [echo, '$HOME', '*']\n    outs: []\n"
               "  shell:\n    cmd: echo $DVFS_STAGE | tr a-z A-Z > shell.txt\n"
               "    outs: [shell.txt]\n")  # fmt: skip
    r = repo.ok("repro", env={"AWS_SECRET_ACCESS_KEY": "hunter2", "LC_ALL": "C.UTF-8"})
    got = json.loads(repo.read("sub/env.json"))
    assert got["cwd"] == str(repo.root / "sub")
    env = got["env"]
    assert env["DVFS_STAGE"] == "dump" and env["DVFS_ROOT"] == str(repo.root)
    assert env["LC_ALL"] == "C.UTF-8" and "PATH" in env
    assert "AWS_SECRET_ACCESS_KEY" not in env and "DVFS_AUTHOR" not in env
    assert "$HOME *" in r.out  # a list runs without a shell
    assert repo.read("shell.txt") == b"SHELL\n"  # text runs under sh -c
    runs = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    assert runs["dump"]["outs"] == {"sub/env.json": runs["dump"]["outs"]["sub/env.json"]}
    repo.fsck_clean()


def test_dag_stage_list_and_remove(trained: PipelineRepo) -> None:
    repo = trained
    assert repo.ok("dag").out.splitlines() == ["prepare", "└── train"]
    dot = repo.ok("dag", "--format", "dot").out
    assert '"prepare" -> "train";' in dot and dot.startswith("strict digraph")
    mermaid = repo.ok("dag", "--format", "mermaid").out
    assert mermaid.splitlines()[0] == "flowchart TD" and "n0 --> n1" in mermaid
    data = json.loads(repo.ok("dag", "--format", "json").out)
    assert data["edges"] == [["prepare", "train"]]
    assert [s["name"] for s in data["stages"]] == ["prepare", "train"]
    outs = json.loads(repo.ok("dag", "prepare", "--format", "json", "--outs").out)
    assert outs == {"edges": [], "outs": ["prepared"]}  # prepare alone: what it needs
    assert_error(repo.run("dag", "nope"), "no stage nope")
    repo.ok("run", "-n", "hello", "--no-exec", "--", "echo", "hi")  # no outputs
    assert repo.ok("dag", "hello", "--outs").out.startswith("no outputs: no stage drawn lists")
    repo.ok("stage", "remove", "hello")
    listed = repo.json("stage", "list", "--json")["stages"]
    assert [s["name"] for s in listed] == ["prepare", "train"]
    assert listed[1]["params"] == [{"file": "params.yaml", "key": "train.lr"}]
    text = repo.ok("stage", "list").out
    assert "train: " in text and "(after prepare)" in text
    repo.ok("stage", "remove", "train")
    after = repo.read("dvfs.yaml").decode()
    assert after.startswith("# the pipeline\nstages:\n  prepare:") and "train:" not in after
    assert list(yaml.safe_load(repo.read("dvfs.runs"))["stages"]) == ["prepare"]
    assert (repo.root / "model.bin").exists()  # outputs are kept
    assert_error(repo.run("stage", "remove", "train"), "no stage train")
    repo.fsck_clean()


def test_dag_quotes_names_with_control_characters_in_every_format(repo: Repo) -> None:
    red, rtl = "a\x1b[31mred\nx", "b\u202eevil\u009b2J"
    repo.ok("run", "-n", "one", "-o", red, "--no-exec", "--", "true")
    repo.ok("run", "-n", "two", "-d", red, "-o", rtl, "--no-exec", "--", "true")
    repo.ok("run", "-n", "three", "-d", rtl, "-o", "a\\033[31mred", "--no-exec", "--", "true")
    raw = ("\x1b", "\u202e", "\u009b")
    text = repo.ok("dag", "--outs").out
    assert text.splitlines() == [
        '"a\\033[31mred\\nx"',
        '└── "b\\342\\200\\256evil\\302\\2332J"',
        '    └── "a\\\\033[31mred"',  # a real backslash: another name
    ]
    dot = repo.ok("dag", "--outs", "--format", "dot").out
    assert not any(c in dot for c in raw)
    assert '  "\\"a\\\\033[31mred\\\\nx\\"" -> "\\"b\\\\342' in dot
    assert len([ln for ln in dot.splitlines() if ln.endswith('";') and "->" not in ln]) == 3
    for fmt in ("json", "mermaid"):
        out = repo.ok("dag", "--outs", "--format", fmt).out
        assert not any(c in out for c in raw), fmt
    outs = json.loads(repo.ok("dag", "--outs", "--format", "json").out)["outs"]
    assert outs == [red, rtl, "a\\033[31mred"]
    stages = json.loads(repo.ok("dag", "--format", "json").out)["stages"]
    assert stages[1]["deps"] == [red] and stages[1]["outs"] == [rtl]
    # Mermaid turns #N; into the character N: an escape, a newline and a right-to-left
    # override reached the drawing so. Its labels read as the text format's names.
    mermaid = repo.ok("dag", "--outs", "--format", "mermaid").out
    labels = re.findall(r'^  n\d+\["(.*)"\]$', mermaid, re.MULTILINE)
    drawn = [re.sub(r"#(\d+);", lambda m: chr(int(m[1])), label) for label in labels]
    assert drawn == ['"a\\033[31mred\\nx"', '"b\\342\\200\\256evil\\302\\2332J"',
                     '"a\\\\033[31mred"']  # fmt: skip


def test_a_metrics_file_git_tracks_is_not_git_ignored(make_repo: RepoFactory) -> None:
    repo = make_repo(git_repo=True)
    repo.write("res/metrics.json", '{"acc": 1}')
    repo.write("code/keep.txt", "in git")
    git(repo.root, "add", "res/metrics.json", "code/keep.txt")
    git(repo.root, "commit", "-q", "-m", "code")
    repo.ok("run", "-n", "s", "-m", "res/metrics.json", "-o", "out", "--",
            'echo \'{"acc": 2}\' > res/metrics.json && echo x > out')  # fmt: skip
    repo.ok("add", "code")  # a directory holding a file git tracks
    ignored = repo.read(".gitignore").decode().splitlines()
    # "/res/metrics.json" was added: a file the project keeps in git, ignored by it
    assert "/out" in ignored and "/.dvfs/" in ignored
    assert "/res/metrics.json" not in ignored and "/code" not in ignored
    repo.write("more/x", "x")
    add_in_process(repo, "more")
    ignored = repo.read(".gitignore").decode().splitlines()
    # each addition wrote the header again: it looked for "# dvfs", which it never wrote
    assert ignored.count("# data tracked by dvfs") == 1 and "/more" in ignored
    assert git(repo.root, "status", "--porcelain", "res").split() == ["M", "res/metrics.json"]


def test_dvfs_yaml_and_runs_are_never_git_ignored(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo(git_repo=True)
    pipeline_repo(repo, tmp_path / "log", commit=False)
    repo.ok("repro")
    ignored = repo.read(".gitignore").decode().splitlines()
    assert "/prepared" in ignored and "/model.bin" in ignored
    assert "/dvfs.yaml" not in ignored and "/dvfs.runs" not in ignored
    repo.fsck_clean()


def test_params_diff_before_the_first_version_shows_the_working_trees_as_added(
    repo: Repo, tmp_path: Path
) -> None:
    """With no versions yet, `dvfs params diff` exited non-zero ("no versions yet");
    it shows the parameters the stages read now as added, as `git diff` shows the
    files of a first commit."""
    pipeline_repo(repo, tmp_path / "log", commit=False)
    assert repo.ok("params", "diff").out.split() == [
        "Param", "(no", "versions", "yet)", "workspace", "train.lr", "-", "0.01"
    ]  # fmt: skip
    got = repo.json("params", "diff", "--json")
    assert got["params"] == [{"name": "train.lr", "new": 0.01, "changed": True}], got
    assert got["old"] == "(no versions yet)" and got["unreadable"] == [], got
    repo.fail("params", "diff", "v1", fragments=("no versions yet",))
    # a params file it cannot read made it exit 1 without a word
    repo.write("params.yaml", "train: [\n")
    r = repo.run("params", "diff")
    assert r.code == 1 and warnings_of(r) == [
        "dvfs: warning: params.yaml is not valid YAML: did not find expected node content "
        "(line 2, column 1)"
    ], r  # fmt: skip
    got = repo.run("params", "diff", "--json").json()
    assert got["missing_files"] == [
        {
            "file": "params.yaml",
            "side": "new",
            "note": warnings_of(r)[0].removeprefix("dvfs: warning: "),
        }
    ]
    assert got["unreadable"] == [{"file": "params.yaml", "side": "new"}]
    repo.fsck_clean()


def test_a_stage_is_done_when_its_command_exits_though_it_left_a_process_behind(
    repo: Repo, tmp_path: Path
) -> None:
    # `repro` waited for the background process, which held the stage's output pipes.
    # Each background `cat` reads a FIFO this test holds open: it ends once it is closed.
    fifos = [tmp_path / "ok", tmp_path / "fail"]
    held = []
    for f in fifos:
        os.mkfifo(f)
        held.append(os.open(f, os.O_RDWR))  # a writer: `cat` opens it at once, reads on
    try:
        r = repo.run("run", "-n", "s", "-o", "out.txt", "--",
                     f"(cat {fifos[0]} > /dev/null; echo late) & "
                     "echo made > out.txt; echo shown; echo said >&2", timeout=60)  # fmt: skip
        assert r.code == 0, r
        assert "shown\n" in r.out and "said\n" in r.err  # the command's output all came
        assert "out.txt" in staged_paths(repo)
        failing = f"(cat {fifos[1]} > /dev/null) & echo boom >&2; exit 3"
        r = repo.run("run", "-n", "f", "-o", "f.txt", "--", failing, timeout=60)
        assert_error(r, "stage f failed", "exited with 3", code=1)
        assert "dvfs: last lines of stage f's standard error:\n  boom\n" in r.err, r
    finally:
        for fd in held:
            os.close(fd)
    repo.fsck_clean()


def test_an_out_naming_tracked_data_with_unsaved_changes_is_refused_before_it_runs(
    repo: Repo,
) -> None:
    repo.write("data/a.txt", "precious\n")
    add_in_process(repo, "data")
    repo.commit("data")
    repo.write("data/a.txt", "edited, in no version\n")
    repo.write("data/b.txt", "new work, in no version\n")
    # the command ran, data/ was replaced by its output and both edits were gone
    r = repo.run("run", "-n", "s", "-o", "data", "--", "mkdir -p data && echo x > data/new")
    assert_error(r, "stage s would replace data, which no run made and which holds changes "
                 "neither staged nor committed", "nothing ran", code=1)  # fmt: skip
    assert repo.read("data/a.txt") == b"edited, in no version\n"
    assert repo.read("data/b.txt") == b"new work, in no version\n"
    assert not (repo.root / "data/new").exists()
    repo.ok("add", "data")  # staged: kept in the store; the stage may replace it now
    repo.ok("repro")
    assert sorted(p.name for p in (repo.root / "data").iterdir()) == ["new"]
    # an out the pipeline made may be changed by hand and made again
    repo.commit("made")
    repo.write("data/new", "by hand\n")
    repo.ok("repro")
    assert repo.read("data/new") == b"x\n"
    repo.fsck_clean()


def test_a_stage_renamed_takes_over_its_outputs_and_the_old_run_is_dropped(repo: Repo) -> None:
    """A run recorded for an output another stage now makes is dropped from dvfs.runs
    when that stage runs (two runs claiming one output would make the file unreadable),
    and a changed output the old run made is the pipeline's to replace."""
    repo.write("dvfs.yaml", "stages:\n  a:\n    cmd: echo 1 > o\n    outs: [o]\n"
               "  k:\n    cmd: echo k > p\n    outs: [p]\n")  # fmt: skip
    repo.ok("repro")
    add_in_process(repo, "dvfs.yaml")
    repo.commit("a")
    repo.write("o", "by hand\n")
    repo.write("dvfs.yaml", "stages:\n  b:\n    cmd: echo 2 > o\n    outs: [o]\n"
               "  k:\n    cmd: echo k > p\n    outs: [p]\n")  # fmt: skip
    assert "Running stage b" in repo.ok("repro").out
    assert repo.read("o") == b"2\n"
    recorded = yaml.safe_load(repo.read("dvfs.runs"))["stages"]
    assert sorted(recorded) == ["b", "k"] and list(recorded["b"]["outs"]) == ["o"]
    assert repo.ok("repro").out.endswith("2 fresh\n")
    repo.fsck_clean()


def test_the_command_a_refusal_suggests_runs_as_typed_for_a_name_with_a_space(
    repo: Repo,
) -> None:
    # the hint said `dvfs add my data`, which adds "my" and "data"
    repo.write("my data/a.txt", "precious\n")
    add_in_process(repo, "my data")
    repo.commit("data")
    repo.write("my data/a.txt", "edited, in no version\n")
    line = repo.fail("run", "-n", "s", "-o", "my data", "--", "true", code=1)
    hint = re.search(r"`(dvfs add [^`]+)`", line)
    assert hint is not None and hint.group(1) == "dvfs add 'my data'", line
    assert_ok(run(repo.root, *shlex.split(hint.group(1))[1:]))  # as a shell reads it
    assert [c["path"] for c in repo.status()["staged"]] == ["my data/a.txt"]
    repo.fsck_clean()


def test_a_directory_or_file_whose_name_starts_with_two_dots_is_inside_the_tree(
    repo: Repo,
) -> None:
    # `dvfs run` in ..d said "run dvfs run inside the working tree"; `exp run -S
    # ..p.yaml:lr=2` and `lineage ..d/o` said the path was not inside it
    (repo.root / "..d").mkdir()
    r = run(repo.root / "..d", "run", "-n", "s", "-o", "o", "--", "echo made > o")
    assert r.code == 0, r
    repo.write("..p.yaml", "lr: 1\n")
    add_in_process(repo, "..p.yaml")
    repo.ok("run", "-n", "t", "-p", "..p.yaml:lr", "-o", "q", "--", "cat ..p.yaml > q")
    repo.commit("one")
    assert "stage s made ..d/o" in repo.ok("lineage", "..d/o").out
    repo.ok("exp", "run", "-S", "..p.yaml:lr=2", "-n", "two")
    assert repo.json("params", "diff", "v1", "exp/two", "--json")["params"][0]["new"] == 2
    repo.fsck_clean()


def test_a_stage_reading_params_another_stage_makes_runs_after_it(repo: Repo) -> None:
    repo.write("dvfs.yaml", "stages:\n"
               "  train:\n    cmd: cat params.yaml > model.txt\n    params: [lr]\n"
               "    outs: [model.txt]\n"
               "  tune:\n    cmd: \"echo 'lr: 5' > params.yaml\"\n"
               "    outs: [params.yaml]\n")  # fmt: skip
    # train ran first and failed: params.yaml does not exist; dag drew them apart
    assert repo.ok("dag").out == "tune\n└── train\n"
    r = repo.ok("repro")
    assert r.out.index("Running stage tune") < r.out.index("Running stage train")
    assert repo.read("model.txt") == b"lr: 5\n"
    assert "Stage train is fresh" in repo.ok("repro").out
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: echo\n    params: [lr]\n"
               "    outs: [params.yaml]\n")  # fmt: skip
    repo.fail("repro", fragments=("output params.yaml is also its params file params.yaml",),
              code=2)  # fmt: skip
    repo.fsck_clean()


def test_params_of_a_file_an_upstream_stage_makes_are_read_once_it_ran(repo: Repo) -> None:
    """A stage reading params from its own params.yaml and from config.json, which
    another stage makes: repro read both files before anything ran, so the first run
    failed ("config.json does not exist"), and after make changed config.json the
    stage was said fresh, its output left as made from the old value, and the next
    repro found it stale."""
    repo.write("params.yaml", "seed: 1\n")
    repo.write("src.json", '{"lr": 1}\n')
    add_in_process(repo, "params.yaml", "src.json")
    repo.write("dvfs.yaml", "stages:\n"
               "  make:\n    cmd: cp src.json config.json\n    deps: [src.json]\n"
               "    outs: [config.json]\n"
               "  train:\n    cmd: cat config.json > out.txt\n"
               "    params: [seed, {config.json: [lr]}]\n    outs: [out.txt]\n")  # fmt: skip
    repo.ok("repro")
    assert repo.read("out.txt") == b'{"lr": 1}\n'
    repo.write("src.json", '{"lr": 3}\n')
    r = repo.ok("repro")
    assert "Running stage train (param config.json:lr 1 -> 3)" in r.out, r.out
    assert repo.read("out.txt") == b'{"lr": 3}\n'
    assert "Everything is up to date" in repo.ok("repro", "--dry-run").out
    repo.commit("trained")
    [train] = [s for s in repo.show()["pipeline"] if s["stage"] == "train"]
    assert train["params"] == {"config.json": {"lr": 3}, "params.yaml": {"seed": 1}}
    repo.fsck_clean()


def test_a_params_file_edited_while_its_stage_runs_records_nothing(repo: Repo) -> None:
    """params.yaml edited while the stage ran (here by the command, as an editor
    would): the run was recorded with the value read before it started, lr 0.01,
    beside an output made from 0.02, and a commit took that lineage."""
    repo.write("params.yaml", "lr: 0.01\n")
    add_in_process(repo, "params.yaml")
    r = repo.run("run", "-n", "train", "-p", "lr", "-o", "out.txt", "--",
                 "sed -i s/0.01/0.02/ params.yaml && cat params.yaml > out.txt")  # fmt: skip
    assert r.code == 1, r
    assert "stage train: param lr changed (0.01 -> 0.02) while it ran" in r.err, r.err
    assert "nothing of it was recorded" in r.err
    assert not (repo.root / "out.txt").exists()
    assert not (repo.root / "dvfs.runs").exists()
    r = repo.ok("repro", "--dry-run")  # still to run, with the value there now
    assert "Would run stage train: no run recorded" in r.out, r.out
    repo.fsck_clean()


def test_a_first_run_killed_over_tracked_data_runs_again(repo: Repo) -> None:
    # a run killed with -9 left its partial out, and the data it moved aside beside it:
    # the next repro refused the partial out as unsaved work
    repo.write("o.txt", "data\n")
    add_in_process(repo, "o.txt")
    repo.commit("data")
    repo.ok("run", "--no-exec", "-n", "s", "-o", "o.txt", "--", "echo made > o.txt")
    os.rename(repo.root / "o.txt", repo.root / os.fsdecode(backup_name(b"o.txt")))
    repo.write("o.txt", "partial")
    repo.ok("repro")
    assert repo.read("o.txt") == b"made\n" and sorted(os.listdir(repo.root))[-1] == "o.txt"
    repo.fsck_clean()


def pipeline_only_clone(repo: Repo, tmp_path: Path) -> Repo:
    """``repo`` pushed to a directory remote and cloned from it without a checkout,
    then only ``dvfs.yaml`` and ``dvfs.runs`` pulled: the outputs are not checked out."""
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    assert run(tmp_path, "clone", str(tmp_path / "remote"), "copy", "--no-checkout").code == 0
    copy = Repo(tmp_path / "copy")
    copy.ok("pull", "dvfs.yaml", "dvfs.runs")
    return copy


def test_a_dep_not_checked_out_is_named_so_with_what_brings_it(repo: Repo, tmp_path: Path) -> None:
    repo.write("data/a", "1\n")
    add_in_process(repo, "data")
    repo.ok("run", "-n", "s", "-d", "data", "-o", "out.txt", "-m", "m.json", "--",
            "cat data/a > out.txt && echo '{\"acc\": 1}' > m.json")  # fmt: skip
    repo.write("params.yaml", "lr: 1\n")
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    copy = pipeline_only_clone(repo, tmp_path)
    # it said "m.json does not exist (`dvfs repro` makes a stage's)"
    r = copy.run("metrics", "show")
    assert r.code == 1 and warnings_of(r) == [
        "dvfs: warning: m.json is tracked but not checked out: `dvfs pull m.json` or "
        "`dvfs checkout HEAD m.json` brings it"
    ], r  # fmt: skip
    # it said "no stage makes it: add it, or a stage with it among its outs"
    line = copy.fail("repro", fragments=("stage s needs data, which is tracked but not "
                                         "checked out",), code=2)  # fmt: skip
    assert line.split("`")[1] == "dvfs pull data"
    copy.ok("pull", "data")
    copy.ok("repro")
    shutil.rmtree(copy.root / "data")  # deleted, not "not checked out"
    assert "not checked out" not in copy.run("repro").err
    copy.ok("restore", "data")
    copy.write("dvfs.yaml", "stages:\n  t:\n    cmd: echo > o\n    params: [lr]\n"
               "    outs: [o]\n")  # fmt: skip
    r = copy.run("params", "diff")  # its values are unknown here
    assert r.code == 1
    assert warnings_of(r) == [
        "dvfs: warning: params.yaml is tracked but not checked out (`dvfs pull params.yaml` "
        "brings it)"
    ]  # fmt: skip
    copy.fail("repro", fragments=("stage t: params.yaml, which it reads parameters from, is "
              "tracked but not checked out: `dvfs pull params.yaml`",), code=2)  # fmt: skip
    copy.fsck_clean()


def test_the_command_that_brings_a_file_not_checked_out_is_one_a_shell_reads(
    repo: Repo, tmp_path: Path
) -> None:
    """`metrics show` and `params diff` said "`dvfs pull my m.json` brings it", which pulls
    `my` and `m.json`: the name is written as a shell reads it, as `repro` writes it."""
    repo.write("my p.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "my p.yaml:lr", "-m", "my m.json", "--",
            "echo '{\"acc\": 1}' > 'my m.json'")  # fmt: skip
    add_in_process(repo, "my p.yaml")
    repo.commit("one")
    copy = pipeline_only_clone(repo, tmp_path)
    assert warnings_of(copy.run("metrics", "show")) == [
        "dvfs: warning: my m.json is tracked but not checked out: `dvfs pull 'my m.json'` or "
        "`dvfs checkout HEAD 'my m.json'` brings it"
    ]  # fmt: skip
    assert warnings_of(copy.run("params", "diff")) == [
        "dvfs: warning: my p.yaml is tracked but not checked out (`dvfs pull 'my p.yaml'` "
        "brings it): its parameters are shown as removed"
    ]  # fmt: skip
    copy.fail("repro", fragments=("`dvfs pull 'my p.yaml'`",), code=2)
    copy.fsck_clean()


def test_a_stage_name_asked_for_with_a_control_character_is_quoted(repo: Repo) -> None:
    repo.ok("run", "-n", "one", "--no-exec", "--", "true")
    add_in_process(repo, "dvfs.yaml")
    repo.commit("a stage")
    name = "a\tb\x1b[31m"
    shown = '"a\\tb\\033[31m"'
    for args in (("repro", name), ("exp", "run", name), ("dag", name), ("stage", "remove", name)):
        line = assert_error(repo.run(*args), f"no stage {shown} in dvfs.yaml")
        assert "\x1b" not in line and "\t" not in line
    repo.fsck_clean()


def test_a_lock_file_that_is_a_link_is_refused_not_truncated(repo: Repo, tmp_path: Path) -> None:
    """`dvfs run` truncated the file .dvfs/pipeline.lock linked to (and add, .dvfs/lock's)."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    for name, args in (("pipeline.lock", ("run", "-n", "s", "-o", "o", "--", "echo > o")),
                       ("lock", ("add", "dvfs.yaml"))):  # fmt: skip
        link = repo.root / ".dvfs" / name
        link.unlink(missing_ok=True)
        link.symlink_to(outside)
        line = assert_error(repo.run(*args), f".dvfs/{name} is a symbolic link")
        assert "remove it" in line
        assert outside.read_text() == "precious\n"
        link.unlink()
    repo.ok("run", "-n", "s", "-o", "o", "--", "echo > o")
    repo.fsck_clean()


def test_run_takes_an_absolute_path_inside_the_repository(repo: Repo, tmp_path: Path) -> None:
    # `dvfs run -d $PWD/file` was refused: "dep ... is absolute"
    repo.write("file", "x\n")
    repo.write("sub/keep", "")
    root = str(repo.root)
    repo.ok("run", "-n", "s", "-d", f"{root}/file", "-o", f"{root}/sub/out", "--",
            "cp file sub/out")  # fmt: skip
    assert yaml.safe_load(repo.read("dvfs.yaml"))["stages"]["s"] == {
        "cmd": "cp file sub/out", "deps": ["file"], "outs": ["sub/out"]}  # fmt: skip
    assert repo.read("sub/out") == b"x\n"
    (tmp_path / "outside").write_text("y\n")
    os.symlink(tmp_path, repo.root / "lnk")
    repo.fail("run", "-n", "t", "-d", str(tmp_path / "outside"), "-o", "o2", "--", "true",
              fragments=("is outside the repository",), code=2)  # fmt: skip
    repo.fail("run", "-n", "t", "-d", f"{root}/lnk/outside", "-o", "o2", "--", "true",
              fragments=("goes through the symbolic link lnk",), code=2)  # fmt: skip
    assert "t" not in yaml.safe_load(repo.read("dvfs.yaml"))["stages"]
    repo.fsck_clean()


def test_pipeline_files_that_are_links_are_refused_saying_what_to_do(
    repo: Repo, tmp_path: Path
) -> None:
    # the line said only "dvfs.runs cannot be read (a symbolic link)"
    repo.ok("run", "-n", "s", "-o", "o", "--", "echo > o")
    for name in ("dvfs.runs", "dvfs.yaml"):
        kept = tmp_path / name
        (repo.root / name).rename(kept)
        (repo.root / name).symlink_to(kept)
        fix = "delete dvfs.runs" if name == "dvfs.runs" else "make dvfs.yaml a regular file"
        repo.fail("repro", fragments=(f"{name} cannot be read (a symbolic link)", fix))
        (repo.root / name).unlink()
        kept.rename(repo.root / name)
    repo.ok("repro")
    repo.fsck_clean()


def test_a_runs_file_of_bytes_that_are_not_utf8_is_refused_naming_the_line(repo: Repo) -> None:
    # the line said "dvfs.runs is not valid YAML ('utf-8' codec can't encode character
    # '\\udcff' in position 11: surrogates not allowed)"
    repo.ok("run", "-n", "s", "-o", "o", "--", "echo > o")
    kept = repo.read("dvfs.runs")
    repo.write("dvfs.runs", b"version: 1\n\xff\xfe stages\n")
    err = repo.fail("repro", fragments=("dvfs.runs is not valid YAML (line 2: not UTF-8 text)",
                                       "delete dvfs.runs"), code=2)  # fmt: skip
    assert "codec" not in err and "surrogate" not in err
    repo.write("dvfs.runs", kept)
    repo.ok("repro")
    repo.fsck_clean()


def test_dag_of_a_deep_chain_bounds_its_indentation_and_numbers_the_levels(repo: Repo) -> None:
    # each level was indented by 4 more: the last lines of a chain 1023 stages deep
    # were some 4,000 spaces wide
    stages = {
        f"s{i}": {"cmd": "true", "deps": [f"o{i - 1}"] if i else [], "outs": [f"o{i}"]}
        for i in range(1023)
    }
    stages["side"] = {"cmd": "true", "deps": ["o20"], "outs": ["side.out"]}
    repo.write("dvfs.yaml", json.dumps({"stages": stages}))
    lines = repo.ok("dag").out.splitlines()
    assert len(lines) == 1024 and max(len(ln) for ln in lines) < 100
    depth = graph.TEXT_DEPTH
    assert lines[depth] == " " * 4 * (depth - 1) + f"└── s{depth}"
    assert lines[depth + 1] == " " * 4 * (depth - 1) + f"└── [{depth + 1}] s{depth + 1}"
    assert lines[-2].endswith("└── [1022] s1022") and lines[-1].endswith("└── [21] side")
    assert lines[21].endswith("├── [21] s21")


def test_lineage_downstream_of_a_deep_chain_bounds_its_indentation(repo: Repo) -> None:
    # each level was indented by 2 more, without bound
    stages = {
        f"s{i}": {"cmd": f"cp o{i - 1} o{i}", "deps": [f"o{i - 1}"], "outs": [f"o{i}"]}
        for i in range(20)
    }
    repo.write("o-1", "data\n")
    repo.write("dvfs.yaml", json.dumps({"stages": stages}))
    add_in_process(repo, "o-1")
    repo.ok("repro")
    repo.commit("a chain")
    lines = repo.ok("lineage", "o-1", "--downstream").out.splitlines()[1:]
    assert len(lines) == 20
    assert lines[16] == " " * 34 + "stage s16 (reads o15) -> o16"  # 16 levels deep: indented
    assert lines[19] == " " * 34 + "[19] stage s19 (reads o18) -> o19"  # deeper: numbered
    repo.fsck_clean()


def test_run_refusing_a_stage_says_the_line_is_of_the_file_it_did_not_write(repo: Repo) -> None:
    # "stage i (dvfs.yaml:3): output i.dat is also its dep i.dat" named a line of a
    # dvfs.yaml that was never written (it had no line 3, or another stage there)
    repo.ok("run", "--no-exec", "-n", "a", "-o", "a.out", "--", "touch", "a.out")
    before = repo.read("dvfs.yaml")
    line = assert_error(
        repo.run("run", "-n", "i", "-d", "i.dat", "-o", "i.dat", "--", "true"),
        "stage i (dvfs.yaml:", "a stage may not write what it reads",
        "(in dvfs.yaml as it would be with stage i: it is left as it was)",
    )  # fmt: skip
    assert line.count("dvfs.yaml:") == 1
    assert repo.read("dvfs.yaml") == before
    repo.fsck_clean()
