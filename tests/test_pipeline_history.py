"""Lineage, parameters, metrics and experiments across versions."""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import vfs
from tests.support.cli import (
    Repo,
    add_in_process,
    assert_error,
    assert_ok,
    cli_command,
    commit_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    warnings_of,
)
from tests.support.forge import forge_deep_pipeline, forge_wide_pipeline
from tests.support.pipeline import (
    PipelineRepo,
    staged_paths,
)
from vfs.pipeline import lineage
from vfs.repo.repository import Repository


def test_lineage_follows_outputs_upstream_to_the_versions_of_their_inputs(
    trained: PipelineRepo,
) -> None:
    repo = trained
    r = repo.ok("lineage", "model.bin")
    lines = r.out.splitlines()
    assert lines[0] == "model.bin in v3 (since v3)"
    assert lines[1].startswith("stage train made model.bin: ")
    assert any(ln.startswith("  input prepared ") and "since v3, made by stage prepare" in ln
               for ln in lines)  # fmt: skip
    assert any(ln.startswith("  input train.py ") and "in no version" in ln for ln in lines)
    assert "  param train.lr = 0.01" in lines
    assert any(ln.startswith("stage prepare made prepared") for ln in lines)
    assert any(ln.startswith("  input data ") and "since v3" in ln for ln in lines)
    old = repo.json("lineage", "prepared/f0.csv", "v2", "--json")
    assert old["version"] == "v2" and old["since"] == "v2"
    [prep] = old["stages"]
    assert prep["stage"] == "prepare" and prep["made"] == ["prepared"]
    assert [(i["path"], i["since"], i["made_by"]) for i in prep["input"]] == [
        ("data", "v1", None),
        ("prep.py", None, None),
    ]  # data: v1's bytes, unchanged in v2; prep.py is not versioned
    down = repo.json("lineage", "data", "--downstream", "--json")["downstream"]
    assert [(d["stage"], d["depth"]) for d in down] == [("prepare", 0), ("train", 1)]
    text = repo.ok("lineage", "prepared", "--downstream").out
    assert "stage train (reads prepared) -> metrics.json, model.bin" in text
    assert "was not made by a stage" in repo.ok("lineage", "data/f0.csv").out
    assert_error(repo.run("lineage", "nothing.here"), "nothing.here is not in v3")
    # --json too: it printed an empty lineage and exited 0
    assert_error(repo.run("lineage", "nothing.here", "--json"), "nothing.here is not in v3")
    assert repo.json("lineage", "data/f0.csv", "--json")["stages"] == []  # data: no stages


def test_lineage_of_a_path_inside_an_output_that_the_version_lacks_is_refused(
    trained: PipelineRepo,
) -> None:
    repo = trained
    # prepared/ is an output directory; prepared/typo.csv is in no version: it was
    # shown as made by stage prepare, in v3, and read by train
    for extra in ((), ("--json",), ("--downstream",), ("--downstream", "--json")):
        assert_error(repo.run("lineage", "prepared/typo.csv", *extra),
                     "prepared/typo.csv is not in v3", code=2)  # fmt: skip
    assert repo.json("lineage", "prepared/f0.csv", "--json")["stages"][0]["stage"] == "prepare"
    repo.fsck_clean()


def test_a_commit_records_no_lineage_for_an_output_changed_by_hand(
    trained: PipelineRepo,
) -> None:
    repo = trained
    repo.write("model.bin", "edited by hand")
    add_in_process(repo, "model.bin")
    r = repo.ok("commit", "-m", "edited")
    assert any("stage train: model.bin is not as its last run made it" in w
               for w in warnings_of(r))  # fmt: skip
    assert [s["stage"] for s in repo.show()["pipeline"]] == ["prepare"]
    # lineage said it "was not made by a stage of its pipeline: it is data added as it is"
    assert repo.ok("lineage", "model.bin").out == (
        "model.bin in v4 (since v4) is not as stage train's last run made it (changed after "
        "it ran): v4 records no lineage for it; `dvfs repro` makes it again\n"
    )
    assert "it is data added as it is" in repo.ok("lineage", "data/f0.csv").out
    repo.fsck_clean()


def test_lineage_of_a_version_whose_runs_file_cannot_be_read_says_it_is_unknown(
    trained: PipelineRepo, tmp_path: Path
) -> None:
    """A version whose dvfs.runs is not valid records no lineage: `dvfs lineage` of a
    stage's output in it said the output "is data added as it is", and --json gave
    it no stages, as if no stage had made it. It says the lineage is unknown, and why."""
    repo = trained
    repo.write("dvfs.runs", "version: 1\nstages: {train: 1}\n")
    add_in_process(repo, "dvfs.runs")
    r = repo.ok("commit", "-m", "broken runs")
    assert any("no lineage recorded" in w for w in warnings_of(r)), r
    for extra in ((), ("--json",)):
        line = assert_error(repo.run("lineage", "model.bin", *extra), "model.bin in v4",
                            "its lineage is unknown: dvfs.runs could not be read (")  # fmt: skip
        assert "added as it is" not in line
        assert_error(repo.run("lineage", "data", "--downstream", *extra),
                     "what reads data in v4 is unknown: dvfs.runs could not be read (")  # fmt: skip
    # what v3 records is still told
    assert repo.json("lineage", "model.bin", "v3", "--json")["stages"][0]["stage"] == "train"
    repo.fsck_clean()
    # A clone holds the data of its checkout alone: an older version's dvfs.runs is
    # downloaded to tell, as `dvfs cat` would download it.
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push", "--all")
    assert run(tmp_path, "clone", str(tmp_path / "remote"), "copy").code == 0
    copy = Repo(tmp_path / "copy")
    assert "it is data added as it is" in copy.ok("lineage", "data/f0.csv", "v2").out
    assert_error(copy.run("lineage", "model.bin"), "its lineage is unknown")
    copy.fsck_clean()


def test_lineage_of_another_branchs_version_names_it_where_it_holds_other_bytes(
    trained: PipelineRepo,
) -> None:
    """An input the version holds with other bytes than its run saw was said to be so
    in "vN", the version's number alone: for another branch's version that names
    the version of the current branch with that number, which may hold the run's bytes."""
    repo = trained
    repo.ok("switch", "-c", "side")
    repo.write("data/f9.csv", "row 9\n")
    add_in_process(repo, "data")
    side = repo.commit("more data, not run")  # side's v4
    repo.ok("switch", "main")
    repo.write("notes.txt", "main\n")
    add_in_process(repo, "notes.txt")
    repo.commit("notes")  # main's v4 holds the bytes the run read
    lines = repo.ok("lineage", "prepared", "side").out.splitlines()
    [data] = [ln for ln in lines if ln.startswith("  input data ")]
    assert data.endswith(f"since v3 ({side[:10]} holds other bytes)"), lines
    repo.fsck_clean()


def test_params_and_metrics_across_versions_and_the_working_tree(
    trained: PipelineRepo,
) -> None:
    repo = trained
    assert repo.ok("params", "diff").out == ""
    repo.write("params.yaml", "train:\n  lr: 0.02\n")
    assert repo.ok("params", "diff").out.split() == ["Param", "v3", "workspace", "train.lr",
                                                     "0.01", "0.02"]  # fmt: skip
    every = repo.json("params", "diff", "v1", "v2", "--all", "--json")["params"]
    assert {p["name"]: (p.get("old", "-"), p["new"]) for p in every} == {
        "note": ("-", "first"),
        "train.lr": ("-", 0.01),
    }  # v1 has no pipeline, and no --param: no "old"
    repo.ok("repro")
    shown = repo.json("metrics", "show", "--json")
    assert shown["workspace"]["metrics.json"]["acc"] == 0.52
    table = repo.ok("metrics", "show", "v2", "v3").out.splitlines()
    assert table[0].split() == ["Path", "Metric", "v2", "v3"]
    assert table[1].split() == ["metrics.json", "acc", "0.51", "0.51"]
    diff = repo.json("metrics", "diff", "--json")
    acc = next(m for m in diff["metrics"] if m["name"] == "acc")
    assert (acc["old"], acc["new"]) == (0.51, 0.52) and abs(acc["change"] - 0.01) < 1e-9
    assert "+0.01" in repo.ok("metrics", "diff").out
    repo.commit("lr 0.02")
    rows = list(csv.DictReader(io.StringIO(repo.ok("compare", "--csv").out)))
    assert [r["rev"] for r in rows] == ["v4", "v3", "v2", "v1"]
    assert [r["train.lr"] for r in rows] == ["0.02", "0.01", "0.01", ""]
    assert [r["acc"] for r in rows][:2] == ["0.52", "0.51"]
    best = repo.json("compare", "v2", "v4", "--sort", "-acc", "--metrics", "--json")
    assert [r["rev"] for r in best] == ["v4", "v2"] and set(best[0]["params"]) == set()
    # the parameters of the best runs first: "no metric or parameter acc to sort by"
    ranked = repo.json("compare", "v2", "v4", "--sort", "-acc", "--params", "--json")
    assert [(r["rev"], r["metrics"]) for r in ranked] == [("v4", {}), ("v2", {})]
    drawn = repo.ok("compare", "--params").out
    assert "train.lr" in drawn and "acc" not in drawn and "v4" in drawn
    # it named nothing to sort by instead: the columns (a metric named like a
    # parameter is FILE:KEY) were for the user to find
    assert_error(
        repo.run("compare", "--sort", "nope"),
        "no metric or parameter nope to sort by: the columns are note, train.lr, acc, loss.train",
    )
    # one - is descending; two were taken as one, and sorted by acc
    assert_error(repo.run("compare", "--sort=--acc"), "no metric or parameter -acc to sort by")
    # a lone - named "no metric or parameter  to sort by", a blank for the name
    assert_error(repo.run("compare", "--sort", "-"), "--sort - names no column", "-NAME")


def test_an_experiment_runs_on_its_own_branch_leaving_this_one_as_it_is(
    trained: PipelineRepo,
) -> None:
    repo = trained
    before = (repo.head_id(), repo.read("params.yaml"), repo.read("model.bin"), repo.status())
    r = repo.ok("exp", "run", "-S", "train.lr=0.05", "-n", "lr05")
    assert "Running stage train (param train.lr 0.01 -> 0.05)" in r.out
    assert "experiment lr05: v4" in r.out and "branch exp/lr05" in r.out and "acc=0.55" in r.out
    assert repo.ran() == ["train"]  # prepare was fresh: not run again
    assert (repo.head_id(), repo.read("params.yaml"), repo.read("model.bin"), repo.status()) == (
        before
    )
    assert not list((repo.root / ".dvfs" / "exp").iterdir())  # its working tree is gone
    repo.ok("exp", "run", "-S", "params.yaml:train.lr=0.05")  # the same inputs: restored
    assert repo.ran() == []
    listed = repo.json("exp", "list", "--json")
    assert {e["name"] for e in listed} == {"lr05", "exp-1"}
    lr05 = next(e for e in listed if e["name"] == "lr05")
    assert lr05["base"] == "v3" and lr05["params"] == {"train.lr": {"old": 0.01, "new": 0.05}}
    assert lr05["metrics"]["acc"] == 0.55
    # the version's time as log, show and compare give it (it had milliseconds)
    [shown] = repo.json("log", "-n", "1", "exp/lr05", "--json")
    assert lr05["created"] == shown["created"] == repo.json("compare", "--json")[-1]["created"]
    assert "train.lr 0.01 -> 0.05" in repo.ok("exp", "list").out
    rows = repo.json("compare", "--json")
    assert [r["rev"] for r in rows][-2:] == ["exp/exp-1", "exp/lr05"]
    assert rows[-1]["params"]["train.lr"] == 0.05
    exp = yaml.safe_load(repo.ok("show", "exp/lr05", "--format", "yaml").out)
    assert exp["message"] == "experiment lr05: train.lr=0.05"
    assert {s["stage"] for s in exp["pipeline"]} == {"prepare", "train"}
    assert_error(repo.run("exp", "run", "-n", "lr05"), "experiment lr05 exists")
    assert_error(repo.run("exp", "run", "-S", "train.lrr=1"), "no parameter train.lrr")
    assert_error(repo.run("exp", "run", "-S", "nonsense"), "is not [FILE:]KEY=VALUE")
    repo.ok("switch", "exp/lr05")
    # on the experiment's branch, compare listed its version twice: as v4 and as exp/lr05
    assert [r["rev"] for r in repo.json("compare", "--json")] == ["v4", "v3", "v2", "v1",
                                                                   "exp/exp-1"]  # fmt: skip
    assert b"0.05" in repo.read("model.bin") and b"lr: 0.05" in repo.read("params.yaml")
    assert "Stage train is fresh" in repo.ok("repro").out
    assert staged_paths(repo) == set()
    repo.fsck_clean()


def test_an_experiment_named_over_a_folder_of_others_is_refused_before_it_runs(
    trained: PipelineRepo,
) -> None:
    """-n lr beside exp/lr/05 ran every stage, then failed to make its branch."""
    repo = trained
    repo.ok("exp", "run", "-S", "train.lr=0.05", "-n", "lr/05")
    assert repo.ran() == ["train"]
    for name, clash in (("lr", "exp/lr/..."), ("lr/05/b", "exp/lr/05")):
        r = repo.run("exp", "run", "-S", "train.lr=0.07", "-n", name)
        assert_error(r, f"experiment {name} cannot be made: {clash} exists", code=2)
        assert "Running stage" not in r.out and repo.ran() == []
    assert not list((repo.root / ".dvfs" / "exp").iterdir())
    repo.fsck_clean()


def test_an_experiment_s_stage_changing_its_dep_leaves_the_working_tree_s_alone(
    repo: Repo,
) -> None:
    # the hint said to restore the working tree's d.txt (`dvfs restore d.txt`), which the
    # stage never touched: it changed the experiment's copy, since deleted
    repo.write("d.txt", "1\n")
    repo.write("params.yaml", "a: 1\n")
    add_in_process(repo, "d.txt", "params.yaml")
    repo.ok("run", "--no-exec", "-n", "s", "-d", "d.txt", "-p", "a", "-o", "o.txt", "--",
            "echo x >> d.txt; cat d.txt > o.txt")  # fmt: skip
    add_in_process(repo, "dvfs.yaml")
    repo.commit("base")
    line = assert_error(
        repo.run("exp", "run", "-S", "a=2"), "stage s changed its own dep d.txt",
        "the working tree's outputs and d.txt are as they were", "the experiment recorded nothing",
    )  # fmt: skip
    assert "dvfs restore" not in line
    assert repo.read("d.txt") == b"1\n"
    assert "dvfs restore d.txt" in assert_error(repo.run("repro"), "changed its own dep d.txt")
    repo.fsck_clean()


def test_an_experiment_refuses_to_set_a_value_in_a_file_a_stage_makes(repo: Repo) -> None:
    # stage gen wrote params.yaml again, so train ran with lr 2, and the experiment was
    # recorded as "experiment five: lr=5" (exit 0)
    repo.write("seed", "2\n")
    repo.write("dvfs.yaml", json.dumps({"stages": {
        "gen": {"cmd": 'echo "lr: $(cat seed)" > params.yaml', "deps": ["seed"],
                "outs": ["params.yaml"]},
        "train": {"cmd": "cat params.yaml > model", "params": ["lr"], "outs": ["model"]},
    }}))  # fmt: skip
    repo.ok("repro")
    add_in_process(repo, "seed")
    repo.commit("base")
    for args in (["-S", "lr=5"], ["-S", "lr=5", "train"]):
        r = repo.run("exp", "run", "-n", "five", *args)
        assert_error(r, "-S lr=5: params.yaml is made by stage gen", "set what stage gen makes")
        assert "Running stage" not in r.out
    assert repo.json("exp", "list", "--json") == []
    assert not list((repo.root / ".dvfs").glob("exp/*"))
    repo.fsck_clean()


def test_an_experiment_leaves_an_untracked_file_in_a_dep_directory_to_its_owner(
    repo: Repo,
) -> None:
    # the experiment's version held data/notes.txt, which the index did not track: `dvfs
    # switch exp/e` wrote it, and `dvfs switch main` then deleted the user's file
    repo.write("data/raw.csv", "r\n")
    repo.write("params.yaml", "lr: 1\n")
    add_in_process(repo, "data/raw.csv", "params.yaml")
    repo.write("data/notes.txt", "mine\n")
    repo.write("dvfs.yaml", json.dumps({"stages": {
        "prep": {"cmd": "cp data/raw.csv data/processed", "deps": ["data/raw.csv"],
                 "outs": ["data/processed"]},
        "train": {"cmd": "ls data > model", "deps": ["data"], "params": ["lr"],
                  "outs": ["model"]},
    }}))  # fmt: skip
    repo.ok("repro")
    add_in_process(repo, "dvfs.yaml")
    repo.commit("base")
    repo.ok("exp", "run", "-S", "lr=2", "-n", "e")
    names = [e["name"] for e in repo.json("ls", "exp/e", "data", "--json")]
    assert names == ["processed", "raw.csv"]
    assert repo.cat("exp/e:model") == b"notes.txt\nprocessed\nraw.csv\n"  # it was read
    repo.ok("switch", "exp/e")
    repo.ok("switch", "main")
    assert repo.read("data/notes.txt") == b"mine\n"
    repo.fsck_clean()


def test_an_experiment_refuses_a_dep_link_its_copy_would_resolve_elsewhere(
    repo: Repo, tmp_path: Path
) -> None:
    # data -> ../pool read a.jpg in the working tree, and nothing in the experiment's
    # copy (.dvfs/exp/NAME/../pool): the stage "ran", and the experiment was recorded
    # with an output made from nothing and the lineage of the working tree's data
    pool = tmp_path / "pool"
    pool.mkdir()
    (pool / "a.jpg").write_text("img")
    repo.write("params.yaml", "lr: 1\n")
    (repo.root / "data").symlink_to(os.path.relpath(pool, repo.root))
    repo.write("raw/v2/f", "x")
    repo.ok("run", "-n", "s", "-d", "data", "-p", "lr", "-o", "o", "--",
            "ls data/ > o; cat params.yaml >> o")  # fmt: skip
    add_in_process(repo, "data", "params.yaml", "raw")
    repo.commit("base")
    r = repo.run("exp", "run", "-S", "lr=2", "-n", "e")
    assert_error(r, "data, a dep, is a symbolic link to ../pool, outside the working tree",
                 "make the link absolute")  # fmt: skip
    (repo.root / "data").unlink()
    (repo.root / "data").symlink_to("raw/v2")  # in the tree, but not copied
    r = repo.run("exp", "run", "-S", "lr=2", "-n", "e")
    assert_error(r, "symbolic link to raw/v2, which no selected stage", "make raw/v2 a dep")
    assert "Running stage" not in r.out and repo.json("exp", "list", "--json") == []
    assert not list((repo.root / ".dvfs" / "exp").iterdir())
    (repo.root / "data").unlink()
    (repo.root / "data").symlink_to(pool)  # the same from either tree
    repo.ok("exp", "run", "-S", "lr=2", "-n", "e")
    assert repo.cat("exp/e:o") == b"a.jpg\nlr: 2\n"
    repo.fsck_clean()


def test_an_experiment_in_a_partial_working_tree_keeps_what_is_not_checked_out(
    repo: Repo, tmp_path: Path
) -> None:
    # data/b.csv, not checked out in the clone, was recorded as removed in exp/e: merging
    # the experiment would have deleted it
    repo.write("data/a.csv", "a\n")
    repo.write("data/b.csv", "b\n")
    repo.write("params.yaml", "lr: 1\n")
    add_in_process(repo, "data", "params.yaml")
    repo.ok("run", "-n", "s", "-d", "data", "-p", "lr", "-o", "out", "--",
            "cat data/* params.yaml > out")  # fmt: skip
    repo.commit("base")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    assert run(tmp_path, "clone", str(tmp_path / "remote"), "copy", "--no-checkout").code == 0
    copy = Repo(tmp_path / "copy")
    copy.ok("checkout", "HEAD", "dvfs.yaml", "dvfs.runs", "params.yaml", "data/a.csv", "out")
    copy.ok("exp", "run", "-S", "lr=2", "-n", "e")
    names = [e["name"] for e in copy.json("ls", "exp/e", "data", "--json")]
    assert names == ["a.csv", "b.csv"]
    assert copy.cat("exp/e:data/b.csv") == b"b\n"
    assert not (copy.root / "data" / "b.csv").exists()  # still not checked out
    copy.fsck_clean()


def test_the_hint_for_an_ignored_params_file_is_one_add_accepts(repo: Repo) -> None:
    # it said `dvfs add params.yaml`, which add refuses for an ignored file
    repo.write(".dvfsignore", "params.yaml\n")
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "out.txt", "--", "cat params.yaml > out.txt")
    repo.commit("base")
    r = repo.ok("exp", "run", "-S", "lr=2", "-n", "two")
    assert "(`dvfs add --force params.yaml` and commit it to have" in r.err, r.err
    repo.ok("add", "--force", "params.yaml")  # as the line says
    repo.commit("params tracked")
    assert "not tracked" not in repo.ok("exp", "run", "-S", "lr=3", "-n", "three").err
    repo.fsck_clean()


def test_an_experiment_leaves_an_untracked_params_file_to_its_owner(repo: Repo) -> None:
    repo.write("params.yaml", "lr: 1  # mine, not tracked\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "out.txt", "--", "cat params.yaml > out.txt")
    repo.commit("base")
    r = repo.ok("exp", "run", "-S", "lr=2", "-n", "two")
    assert "params.yaml is not tracked: experiment two records the values" in r.err
    # The version held params.yaml: switch refused (uncommitted changes, it said), and
    # after --force, switching back deleted the user's file
    assert "params.yaml" not in repo.ok("ls", "exp/two").out
    repo.ok("switch", "exp/two")
    assert repo.read("out.txt") == b"lr: 2  # mine, not tracked\n"
    assert repo.read("params.yaml") == b"lr: 1  # mine, not tracked\n"
    assert "param lr 2 -> 1" in repo.ok("repro", "--dry-run").out
    repo.ok("switch", "main")
    assert repo.read("params.yaml") == b"lr: 1  # mine, not tracked\n"
    listed = repo.json("exp", "list", "--json")
    assert listed[0]["params"] == {"lr": {"old": 1, "new": 2}}
    # A tracked params file is the experiment's to change, and switch brings it
    add_in_process(repo, "params.yaml")
    repo.commit("params tracked")
    assert "not tracked" not in repo.ok("exp", "run", "-S", "lr=3", "-n", "three").err
    repo.ok("switch", "exp/three")
    assert repo.read("params.yaml") == b"lr: 3  # mine, not tracked\n"
    repo.ok("switch", "main")
    assert repo.read("params.yaml") == b"lr: 1  # mine, not tracked\n"
    repo.fsck_clean()


def test_switch_names_an_untracked_file_it_would_overwrite_as_untracked(repo: Repo) -> None:
    repo.write("d/a", "a")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    repo.ok("switch", "-c", "b")
    repo.write("d/x", "theirs")
    repo.write("d/a", "b's")
    add_in_process(repo, "d")
    repo.commit("two")
    repo.ok("switch", "main")
    repo.write("d/x", "mine")
    # It said "uncommitted changes in d/x: commit them", which an untracked file is not
    line = repo.fail("switch", "b", code=1)
    assert "switch would overwrite untracked d/x: move the untracked files away" in line
    repo.write("d/a", "edited")
    line = repo.fail("switch", "b", code=1)
    assert "overwrite uncommitted changes in d/a and untracked d/x:" in line
    assert repo.read("d/x") == b"mine" and repo.read("d/a") == b"edited"


def test_nan_and_the_infinities_are_spelled_one_way_in_every_output(repo: Repo) -> None:
    def strict(text: str) -> Any:  # JSON has no NaN: json.loads alone would take it
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in JSON"))

    repo.write("params.yaml", "lr: .nan\n")
    repo.write("src.json", '{"x": NaN, "i": Infinity, "j": -Infinity, "a": 1}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-p", "lr", "-m", "m.json", "--",
            "cp src.json m.json")  # fmt: skip
    repo.commit("one")
    spelled = {"a": 1, "i": ".inf", "j": "-.inf", "x": ".nan"}
    # metrics said nan, inf and -inf, where parameters and JSON say .nan, .inf, -.inf
    for args in (("metrics", "show"), ("metrics", "show", "HEAD"), ("compare",),
                 ("metrics", "diff", "--all")):  # fmt: skip
        words = repo.ok(*args).out.split()
        assert {".nan", ".inf", "-.inf"} <= set(words), args
        assert not {"nan", "inf", "-inf"} & set(words), args
    assert repo.ok("params", "diff", "--all").out.split()[-2:] == [".nan", ".nan"]
    assert strict(repo.ok("metrics", "show", "--json").out)["workspace"]["m.json"] == spelled
    [row] = strict(repo.ok("compare", "--json").out)
    assert row["params"] == {"lr": ".nan"} and row["metrics"] == spelled
    assert "lr,a,i,j,x" in repo.ok("compare", "--csv").out
    assert repo.ok("compare", "--csv").out.splitlines()[1].endswith(",.nan,1,.inf,-.inf,.nan")


def test_a_null_value_is_told_apart_from_a_missing_one(repo: Repo) -> None:
    repo.write("params.yaml", "a: 1\nb: null\n")
    repo.write("src.json", '{"acc": 0.5, "loss": null}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-p", "a,b", "-m", "m.json", "--",
            "cp src.json m.json")  # fmt: skip
    repo.commit("one")
    repo.write("params.yaml", "a: null\nb: 2\n")
    repo.write("src.json", '{"acc": null}')
    repo.ok("repro")
    repo.commit("two")
    # null and absent were both "-" in tables, and both null in JSON
    table = [ln.split() for ln in repo.ok("metrics", "show", "v1", "v2").out.splitlines()]
    assert table[1:] == [["m.json", "acc", "0.5", "null"], ["m.json", "loss", "null", "-"]]
    diff = repo.ok("params", "diff", "v1", "v2").out.split()
    assert diff == ["Param", "v1", "v2", "a", "1", "null", "b", "null", "2"]
    moved = repo.json("metrics", "diff", "v1", "v2", "--json")["metrics"]
    assert moved == [
        {"name": "acc", "old": 0.5, "new": None, "change": None},
        {"name": "loss", "old": None, "change": None},  # no "new": v2 has no loss
    ]
    rows = {r["rev"]: (r["params"], r["metrics"]) for r in repo.json("compare", "--json")}
    assert rows == {
        "v2": ({"a": None, "b": 2}, {"acc": None}),
        "v1": ({"a": 1, "b": None}, {"acc": 0.5, "loss": None}),
    }
    cells = [c for c in repo.ok("compare").out.splitlines()[2].split() if c != "│"]
    assert cells[-4:] == ["null", "2", "null", "-"]  # a, b, acc, loss of v2
    assert repo.ok("compare", "--csv").out.splitlines()[1].endswith(",null,2,null,")


def test_a_list_parameter_holding_control_characters_is_escaped_in_tables(repo: Repo) -> None:
    raw = ("\x1b", "\u202e", "\u009b")
    repo.write("params.yaml", 'a:\n  l: ["\\u202eabc", "\\x9b31m", "\\e[2J"]\n')
    repo.ok("run", "-n", "s", "-p", "a.l", "-o", "o.txt", "--", "echo > o.txt")
    repo.commit("one")
    repo.write("params.yaml", 'a:\n  l: ["\\u202eabd", "\\x9b32m", "\\e[2J"]\n')
    repo.ok("repro")
    repo.commit("two")
    for args in (("params", "diff", "v1"), ("params", "diff", "v1", "v2"), ("compare",)):
        out = repo.ok(*args).out
        assert "\\342\\200\\256abd" in out and "\\302\\23332m" in out, args
        assert not any(c in out for c in raw), args
    changed = repo.json("params", "diff", "v1", "v2", "--json")["params"][0]
    assert changed["new"] == ["\u202eabd", "\u009b32m", "\x1b[2J"]  # JSON stays exact


def test_compare_csv_escapes_control_characters_as_the_table_does(repo: Repo) -> None:
    repo.write("src.json", '{"a\\u001b[31mred": true, "t": "x\\u001b[2Jy", "l": [1]}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    repo.commit("one\x1b]0;title\x07")
    out = repo.ok("compare", "--csv").out
    # names, messages and text went out raw: a terminal acted on them
    assert "\x1b" not in out and "\x07" not in out
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0][3:] == ["a\\033[31mred", "l.0", "t"]
    assert rows[1][2].startswith("one\\033]0;title\\")
    assert rows[1][3:] == ["true", "1", "x\\033[2Jy"]  # true, as JSON and the table say


def test_compare_csv_keeps_a_spreadsheet_from_reading_text_as_a_formula(repo: Repo) -> None:
    # a teammate's message or metric text "=HYPERLINK(...)" was a live formula once the
    # CSV was opened in a spreadsheet; numbers, negative ones too, stay numbers
    repo.write("src.json", '{"=cmd": -1.5, "note": "@SUM(A1)", "t": "+1", "u": "ok"}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    repo.commit('=HYPERLINK("http://example.invalid","x")')
    rows = list(csv.reader(io.StringIO(repo.ok("compare", "--csv").out)))
    assert rows[0][3:] == ["'=cmd", "note", "t", "u"]
    assert rows[1][2] == '\'=HYPERLINK("http://example.invalid","x")'
    assert rows[1][3:] == ["-1.5", "'@SUM(A1)", "'+1", "ok"]


def test_metrics_show_says_why_a_stage_s_metrics_are_not_shown(repo: Repo) -> None:
    repo.write("src.json", '{"acc": 1}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    (repo.root / "m.json").unlink()
    # it said "no metrics (a stage of dvfs.yaml lists its metrics files under metrics:"
    r = repo.run("metrics", "show")
    assert r.code == 1, r  # it exited 0: a script took "no metrics" for a result
    assert r.out == "no metrics could be read (the warnings above say why)\n"
    assert warnings_of(r) == ["dvfs: warning: m.json does not exist (`dvfs repro` makes a stage's)"]
    repo.write("m.json", "{broken")
    r = repo.run("metrics", "show")
    assert r.code == 1, r
    assert r.out.startswith("no metrics could be read")
    assert "m.json is not valid JSON" in warnings_of(r)[0]
    assert warnings_of(r)[0].endswith("fix it, or make it again (`dvfs repro` makes a stage's)")
    repo.ok("repro")
    assert repo.json("metrics", "show", "--json") == {"workspace": {"m.json": {"acc": 1}}}
    repo.fsck_clean()


def test_metrics_show_shows_what_it_can_read_and_exits_1_for_what_it_cannot(repo: Repo) -> None:
    repo.ok("run", "-n", "a", "-m", "a.json", "--", "echo '{\"acc\": 0.5}' > a.json")
    repo.ok("run", "-n", "b", "-m", "b.yaml", "--", "echo 'loss: 2' > b.yaml")
    repo.ok("run", "-n", "c", "-m", "c.toml", "--", "echo 'f1 = 1' > c.toml")
    repo.commit("three metrics files")
    repo.write("a.json", "{broken")
    (repo.root / "b.yaml").unlink()
    r = repo.run("metrics", "show")
    assert r.code == 1, r  # it exited 0, whatever it could not read
    assert [ln.split()[:3] for ln in r.out.splitlines()] == [
        ["Path", "Metric", "workspace"], ["c.toml", "f1", "1"]
    ]  # fmt: skip
    lines = warnings_of(r)
    assert len(lines) == 2 and "a.json is not valid JSON" in lines[0], r
    assert "b.yaml does not exist" in lines[1]
    r = repo.run("metrics", "show", "--json")
    assert r.code == 1 and r.json() == {"workspace": {"c.toml": {"f1": 1}}}, r
    assert len(warnings_of(r)) == 2
    # a version whose file no longer reads is named too, the others shown beside it
    repo.ok("repro")
    add_in_process(repo, "a.json")
    repo.commit("fixed")
    assert repo.ok("metrics", "show", "v1", "v2").code == 0
    repo.fsck_clean()


def test_metrics_diff_names_an_unreadable_metrics_file_and_exits_1(repo: Repo) -> None:
    repo.ok("run", "-n", "a", "-m", "a.json", "--", "echo '{\"acc\": 0.5}' > a.json")
    repo.commit("one")
    repo.write("a.json", "{broken")
    # acc showed as removed, exit 0, and --json said nothing of the file
    r = repo.run("metrics", "diff")
    assert r.code == 1, r
    assert r.out.split() == ["Metric", "v1", "workspace", "Change", "acc", "0.5", "-", "-"]
    assert len(warnings_of(r)) == 1 and "a.json is not valid JSON" in warnings_of(r)[0]
    r = repo.run("metrics", "diff", "--json")
    assert r.code == 1 and r.json()["unreadable"] == [{"file": "a.json", "side": "new"}], r
    repo.ok("repro")
    assert repo.json("metrics", "diff", "--json")["unreadable"] == []
    repo.fsck_clean()


def test_metrics_diff_of_numbers_past_a_float_s_range(repo: Repo) -> None:
    big = "1" + "0" * 400  # an integer no float holds
    repo.write("src.json", '{"b": 1, "x": 1.7e308, "e": 12345678901234567890}')
    repo.ok("run", "-n", "s", "-d", "src.json", "-m", "m.json", "--", "cp src.json m.json")
    add_in_process(repo, "src.json")
    repo.commit("one")
    repo.write("src.json", f'{{"b": {big}, "x": -1.7e308, "e": 2}}')
    repo.ok("repro")
    add_in_process(repo, "src.json")
    repo.commit("two")
    # an internal error (OverflowError); --json gave "change": -Infinity, which is not JSON
    rows = [line.split() for line in repo.ok("metrics", "diff", "v1", "v2").out.splitlines()]
    assert rows[1:] == [
        ["b", "1", big, "+" + str(int(big) - 1)],
        ["e", "12345678901234567890", "2", "-12345678901234567888"],  # exact, as the values
        ["x", "1.7e+308", "-1.7e+308", "-"],
    ]
    got = json.loads(repo.ok("metrics", "diff", "v1", "v2", "--json").out,
                     parse_constant=lambda c: pytest.fail(f"{c} in JSON"))  # fmt: skip
    assert [m.get("change") for m in got["metrics"]] == [int(big) - 1, -12345678901234567888, None]
    repo.write("src.json", '{"b": 1.5, "x": 1, "e": 2}')
    repo.ok("repro")
    assert repo.ok("metrics", "diff").out.splitlines()[1].split() == ["b", big, "1.5", "-"]
    repo.fsck_clean()


def test_params_diff_names_a_params_file_one_side_lacks(repo: Repo) -> None:
    repo.write("params.yaml", "train:\n  lr: 0.1\n  epochs: 3\n")
    repo.write("config.json", '{"depth": 3}')
    repo.ok("run", "-n", "t", "-p", "train.lr,train.epochs", "-p", "config.json:depth",
            "-o", "o.txt", "--", "echo > o.txt")  # fmt: skip
    add_in_process(repo, "params.yaml", "config.json")
    repo.commit("one")
    (repo.root / "params.yaml").unlink()
    repo.write("config.json", "{broken")
    # every parameter showed as removed, params.yaml's without a word
    r = repo.run("params", "diff")
    assert r.code == 1, r  # neither file could be read: the values there are unknown
    assert warnings_of(r) == [
        "dvfs: warning: config.json is not valid JSON: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1): its parameters are shown as removed",
        "dvfs: warning: params.yaml does not exist in the working tree: its parameters are "
        "shown as removed",
    ]
    r = repo.run("params", "diff", "--json")
    assert r.code == 1, r
    got = r.json()
    assert got["unreadable"] == [{"file": "config.json", "side": "new"},
                                 {"file": "params.yaml", "side": "new"}]  # fmt: skip
    assert [(g["file"], g["side"]) for g in got["missing_files"]] == [
        ("config.json", "new"), ("params.yaml", "new")
    ]  # fmt: skip
    assert got["missing_files"][1]["note"] == warnings_of(r)[1].removeprefix("dvfs: warning: ")
    # between versions: a file no run of one of them read
    repo.write("params.yaml", "train:\n  lr: 0.1\n  epochs: 3\n")
    repo.ok("run", "-f", "-n", "t", "-p", "train.lr,train.epochs", "-o", "o.txt", "--",
            "echo > o.txt")  # fmt: skip
    repo.commit("two")
    r = repo.ok("params", "diff", "v2", "v1")
    assert r.out.split() == ["Param", "v2", "v1", "config.json:depth", "-", "3"]
    assert warnings_of(r) == [
        "dvfs: warning: no run of v2 read config.json: its parameters are shown as added"
    ]
    got = repo.json("params", "diff", "v1", "v2", "--json")["missing_files"]
    assert got == [
        {
            "file": "config.json",
            "side": "new",
            "note": "no run of v2 read config.json: its parameters are shown as removed",
        }
    ]
    assert repo.json("params", "diff", "v2", "--json")["missing_files"] == []
    (repo.root / "dvfs.yaml").unlink()  # it said "no run of workspace read config.json"
    assert warnings_of(repo.ok("params", "diff", "v1")) == [
        "dvfs: warning: no stage of dvfs.yaml reads config.json now: its parameters are shown "
        "as removed",
        "dvfs: warning: no stage of dvfs.yaml reads params.yaml now: its parameters are shown "
        "as removed",
    ]
    repo.fsck_clean()


def test_lineage_follows_a_params_file_another_stage_made(repo: Repo) -> None:
    repo.write("seed.txt", "lr: 0.1\n")
    add_in_process(repo, "seed.txt")
    repo.ok("run", "-n", "gen", "-d", "seed.txt", "-o", "cfg.yaml", "--", "cp seed.txt cfg.yaml")
    repo.ok("run", "-n", "train", "-p", "cfg.yaml:lr", "-o", "model", "--", "cat cfg.yaml > model")
    repo.commit("one")
    assert repo.ok("dag").out.split() == ["gen", "└──", "train"]
    # lineage stopped at train, and said no stage read cfg.yaml
    lines = repo.ok("lineage", "model").out.splitlines()
    made_by_gen = "since v1, made by stage gen"
    assert any(ln.startswith("  params file cfg.yaml ") and ln.endswith(made_by_gen)
               for ln in lines), lines  # fmt: skip
    assert any(ln.startswith("stage gen made cfg.yaml: ") for ln in lines), lines
    [train, gen] = repo.json("lineage", "model", "--json")["stages"]
    assert (train["stage"], gen["stage"]) == ("train", "gen")
    [made] = train["input"]
    assert (made["path"], made["kind"], made["made_by"], made["since"]) == (
        "cfg.yaml", "params", "gen", "v1"
    )  # fmt: skip
    assert made["in_version"] is True
    assert gen["input"][0]["kind"] == "dep"
    down = repo.json("lineage", "seed.txt", "--downstream", "--json")["downstream"]
    assert [(d["stage"], d["reads"], d["depth"]) for d in down] == [
        ("gen", "seed.txt", 0), ("train", "cfg.yaml", 1)
    ]  # fmt: skip
    assert "stage train (reads cfg.yaml) -> model" in repo.ok("lineage", "cfg.yaml",
                                                             "--downstream").out  # fmt: skip
    repo.fsck_clean()


def test_an_experiment_s_unreadable_metrics_file_is_named_by_its_branch(repo: Repo) -> None:
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "t", "-p", "lr", "-m", "m.json", "--",
            "echo '{\"acc\": 0.5}' > m.json")  # fmt: skip
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    repo.ok("run", "-f", "-n", "t", "-p", "lr", "-m", "m.json", "--", "echo '{broken' > m.json")
    repo.commit("two")
    # exp run and exp list showed no metrics and said nothing; compare said "v3: ..." of
    # exp/x, whose v3 is not the branch's v3
    r = repo.ok("exp", "run", "-S", "lr=2", "-n", "x")
    assert warnings_of(r) == [
        "dvfs: warning: exp/x: m.json is not valid JSON: Expecting property name enclosed in "
        "double quotes: line 1 column 2 (char 1): its metrics are not shown"
    ]
    repo.ok("exp", "run", "-n", "y")
    for args in (("exp", "list"), ("exp", "list", "--json")):
        r = repo.run(*args)
        assert r.code == 1, r
        assert sorted(w.split(":")[2].strip() for w in warnings_of(r)) == ["exp/x", "exp/y"], r
    assert [e["metrics"] for e in repo.run("exp", "list", "--json").json()] == [{}, {}]
    r = repo.run("compare")
    assert r.code == 1
    assert sorted(w.split(":")[2].strip() for w in warnings_of(r)) == ["exp/x", "exp/y", "v2"]
    repo.fsck_clean()


def test_an_experiment_named_by_another_command_while_it_ran_says_so(repo: Repo) -> None:
    # The stage makes the branch exp/same in the repository, as a second `dvfs exp run -n
    # same` finishing first would.
    script = (
        f"import subprocess, sys; subprocess.run({[*cli_command('branch', 'exp/same')]!r}, "
        f"cwd={str(repo.root)!r}, env={{'PYTHONPATH': {str(Path(vfs.__file__).parents[1])!r}}}, "
        "check=True); open('o', 'w').write('1')"
    )
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "t", "-p", "lr", "-o", "o", "--no-exec", "--", sys.executable, "-c",
            script)  # fmt: skip
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    # "exp/same moved while this command ran: run it again", which then said "exists"
    line = assert_error(repo.run("exp", "run", "-S", "lr=2", "-n", "same"))
    assert line == (
        "dvfs: error: experiment same was made by another command while this one ran: run it "
        "again with another -n NAME (this run recorded nothing)"
    )
    assert repo.json("log", "exp/same", "--json")[0]["version"] == "v1"
    repo.fsck_clean()


def test_a_refused_experiment_name_or_setting_is_quoted_as_names_are(repo: Repo) -> None:
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "t", "-p", "lr", "-o", "o.txt", "--", "echo > o.txt")
    repo.commit("one")
    # shown as Python shows a str: 'exp/a b', "exp/it's", 'exp/x\ty'
    for name, shown in [("a b", "exp/a b"), ("it's", "exp/it's"), ("x\ty", '"exp/x\\ty"')]:
        line = assert_error(repo.run("exp", "run", "-n", name), code=2)
        assert line == (
            f"dvfs: error: {shown} is not a valid experiment name: use ASCII letters, digits, '.', "
            "'_', '-' and '/'"
        )
    line = assert_error(repo.run("exp", "run", "-S", "l\x1br"), code=2)
    assert line == 'dvfs: error: -S "l\\033r" is not [FILE:]KEY=VALUE'
    line = assert_error(repo.run("exp", "run", "-S", "lr=1", "-S", "lr=\x1b[2J"), code=2)
    assert line == ('dvfs: error: -S "lr=\\033[2J" sets what -S lr=1 sets: give each key once')
    line = assert_error(repo.run("branch", "--", "a'b"), code=2)
    assert line.startswith("dvfs: error: a'b is not a valid branch name")
    assert repo.ok("exp", "list").out.startswith("no experiments")
    repo.fsck_clean()


def test_params_diff_of_a_clean_working_tree_is_empty_after_commit_param(repo: Repo) -> None:
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "t", "-p", "lr", "-o", "o.txt", "--", "echo > o.txt")
    add_in_process(repo, "params.yaml")
    repo.commit("one", "--param", "note=first", "--param", "lr=9")
    # "note 'first' -> -": a parameter removed, from a working tree nothing changed in
    r = repo.ok("params", "diff")
    assert r.out == "" and warnings_of(r) == []
    assert repo.json("params", "diff", "--json")["params"] == []
    rows = repo.json("params", "diff", "--all", "--json")["params"]
    assert rows == [{"name": "params.yaml:lr", "old": 1, "new": 1, "changed": False}]
    repo.write("params.yaml", "lr: 2\n")
    assert repo.ok("params", "diff").out.split() == [
        "Param", "v1", "workspace", "params.yaml:lr", "1", "2"
    ]  # fmt: skip
    repo.ok("repro")
    add_in_process(repo, "params.yaml")
    repo.commit("two")
    assert repo.ok("params", "diff", "v1", "v2").out.split() == [
        "Param", "v1", "v2", "lr", "9", "-", "note", "first", "-", "params.yaml:lr", "1", "2",
    ]  # between versions, commit --param is compared  # fmt: skip
    repo.fsck_clean()


def test_params_diff_exits_1_for_a_params_file_it_cannot_parse(repo: Repo) -> None:
    repo.write("params.yaml", "train:\n  lr: 0.1\n")
    repo.ok("run", "-n", "t", "-p", "train.lr", "-o", "o.txt", "--", "echo > o.txt")
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    repo.write("params.yaml", "train:\n  lr: [0.1\n")
    # exit 0, as if train.lr had been removed on purpose
    r = repo.run("params", "diff")
    assert r.code == 1, r
    assert r.out.split() == ["Param", "v1", "workspace", "train.lr", "0.1", "-"]
    assert len(warnings_of(r)) == 1 and "params.yaml is not valid YAML" in r.err
    r = repo.run("params", "diff", "--json")
    assert r.code == 1 and r.json()["unreadable"] == [{"file": "params.yaml", "side": "new"}], r
    # two versions hold the values their runs read: nothing there is unknown
    repo.write("params.yaml", "train:\n  lr: 0.2\n")
    repo.ok("repro")
    add_in_process(repo, "params.yaml")
    repo.commit("two")
    assert repo.json("params", "diff", "v1", "v2", "--json")["unreadable"] == []
    r = repo.ok("params", "diff")
    assert r.out == "" and warnings_of(r) == []
    repo.fsck_clean()


def test_compare_exits_1_naming_a_metrics_file_it_cannot_read(repo: Repo) -> None:
    repo.ok("run", "-n", "a", "-m", "a.json", "--", "echo '{\"acc\": 0.5}' > a.json")
    repo.commit("one")
    repo.ok("run", "-f", "-n", "a", "-m", "a.json", "--", "echo '{broken' > a.json")
    repo.commit("two")
    # the warning went by and the exit status was 0: a script took v2 for a run without metrics
    for args in ((), ("--json",), ("--csv",), ("v2", "v1", "--metrics")):
        r = repo.run("compare", *args)
        assert r.code == 1, r
        assert len(warnings_of(r)) == 1 and "v2: a.json is not valid JSON" in r.err, r
    rows = {row["rev"]: row["metrics"] for row in repo.run("compare", "--json").json()}
    assert rows == {"v2": {}, "v1": {"acc": 0.5}}
    assert repo.ok("compare", "v1").code == 0
    repo.fsck_clean()


def test_compare_names_a_metric_apart_from_a_parameter_of_its_name(repo: Repo) -> None:
    repo.write("params.yaml", "acc: 0.1\n")
    repo.ok("run", "-n", "t", "-p", "acc", "-m", "m.json", "--",
            "echo '{\"acc\": 0.9, \"loss\": 2}' > m.json")  # fmt: skip
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    # two columns headed "acc", and --sort acc took the metric without a word
    assert repo.ok("compare", "--csv").out.splitlines()[0] == (
        "rev,created,message,acc,m.json:acc,m.json:loss"
    )
    assert repo.ok("compare").out.splitlines()[0].split()[-5:] == [
        "acc", "┃", "m.json:acc", "┃", "m.json:loss"
    ]  # fmt: skip
    [row] = repo.json("compare", "--json")
    assert (row["params"], row["metrics"]) == ({"acc": 0.1}, {"m.json:acc": 0.9, "m.json:loss": 2})
    assert repo.ok("compare", "--sort", "m.json:acc").code == 0
    assert repo.ok("metrics", "show").out.split()[3:5] == ["m.json", "acc"]
    repo.fsck_clean()


def test_compare_sorts_a_column_of_numbers_text_and_gaps_either_way(repo: Repo) -> None:
    repo.write("params.yaml", "a: 1\n")
    repo.ok("run", "-n", "s", "-p", "a", "-o", "o.txt", "--", "echo > o.txt")
    repo.commit("v1")
    for value in ("b", "[2]", "null", "0.5", "c"):  # null: no value
        repo.write("params.yaml", f"a: {value}\n")
        repo.ok("repro")
        repo.commit(f"a is {value}")

    def order(*args: str) -> list[str]:
        return [r["rev"] for r in repo.json("compare", "--json", *args)]

    # numbers, then text as shown, then versions without a value (once a TypeError)
    assert order("--sort", "a") == ["v5", "v1", "v3", "v2", "v6", "v4"]
    assert order("--sort", "-a") == ["v1", "v5", "v6", "v2", "v3", "v4"]  # text descends too
    cli = repo.ok("compare", "--sort", "-a").out.splitlines()
    assert [line.split()[0] for line in cli[2:]] == order("--sort", "-a")


def test_compare_sorts_the_infinities_among_the_numbers(repo: Repo) -> None:
    # a loss of -.inf or .inf (a diverged run) sorted as text, after every number: -.inf
    # came after 2 in `--sort loss`, and .inf last in `--sort -loss`
    repo.write("src.json", "{}")
    repo.ok("run", "--no-exec", "-n", "s", "-d", "src.json", "-m", "m.json", "--",
            "cp src.json m.json")  # fmt: skip
    for n, value in enumerate(("2", "Infinity", "0.5", "-Infinity", "NaN", '"x"'), 1):
        repo.write("src.json", f'{{"loss": {value}}}')
        repo.ok("repro")
        add_in_process(repo, "src.json")
        assert repo.commit(f"loss {value}") and repo.show()["version"] == f"v{n}"

    def order(*args: str) -> list[str]:
        return [r["rev"] for r in repo.json("compare", "--json", *args)]

    assert order("--sort", "loss") == ["v4", "v3", "v1", "v2", "v5", "v6"]
    assert order("--sort", "-loss") == ["v2", "v1", "v3", "v4", "v6", "v5"]
    repo.fsck_clean()


def test_two_experiments_diffed_are_named_as_given(trained: PipelineRepo) -> None:
    repo = trained
    repo.ok("exp", "run", "-S", "train.lr=0.02", "-n", "a")
    repo.ok("exp", "run", "-S", "train.lr=0.03", "-n", "b")
    # both are v4 on their own branches: the columns were "v4 v4"
    out = repo.ok("metrics", "diff", "exp/a", "exp/b").out.splitlines()
    assert out[0].split() == ["Metric", "exp/a", "exp/b", "Change"]
    assert repo.ok("params", "diff", "exp/a").out.split()[:3] == ["Param", "exp/a", "workspace"]
    got = repo.json("params", "diff", "exp/a", "exp/b", "--json")
    assert (got["old"], got["new"]) == ("exp/a", "exp/b")
    assert got["params"][0] == {"name": "train.lr", "old": 0.02, "new": 0.03, "changed": True}
    assert repo.ok("params", "diff", "--all").out.split()[1:3] == ["v3", "workspace"]


def test_exp_run_sets_only_what_a_stage_reads_and_defaults_to_params_yaml_here(
    repo: Repo,
) -> None:
    repo.write("sub/params.yaml", "lr: 1\n")
    repo.write("params.yaml", "lr: 1\n")  # read by no stage
    sub = repo.root / "sub"
    assert_ok(
        run(sub, "run", "-n", "s", "-p", "lr", "-o", "out.txt", "--", "cat params.yaml > out.txt")
    )
    repo.commit("base")
    # It set params.yaml's lr, ran s for nothing, and recorded "experiment e: lr=9"
    line = repo.fail("exp", "run", "-S", "lr=9", "-n", "e", code=2)
    assert "-S lr=9: no stage reads params.yaml:lr" in line and "sub/params.yaml:lr" in line
    assert "exp/e" not in repo.ok("branch").out
    # KEY alone is in the params.yaml of the current directory, as for `dvfs run -p`
    assert_ok(run(sub, "exp", "run", "-S", "lr=7", "-n", "here"))
    repo.ok("exp", "run", "-S", "sub/params.yaml:lr=8", "-n", "named")
    # the same key twice: the last one won, and the message named both values
    line = repo.fail("exp", "run", "-S", "sub/params.yaml:lr=1", "-S", "sub/params.yaml:lr=2")
    assert "sets what -S sub/params.yaml:lr=1 sets" in line
    shown = {e["name"]: e for e in repo.json("exp", "list", "--json")}
    assert shown["here"]["params"] == {"sub/params.yaml:lr": {"old": 1, "new": 7}}
    assert shown["named"]["params"] == {"sub/params.yaml:lr": {"old": 1, "new": 8}}
    repo.fsck_clean()


def test_a_commit_param_and_a_stage_param_of_one_name_stay_apart_across_versions(
    repo: Repo,
) -> None:
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "o", "--", "echo > o")
    repo.commit("a", "--param", "lr=5")
    repo.write("params.yaml", "lr: 2\n")
    # v1 named the stage's lr params.yaml:lr (its --param took lr), the working tree
    # named it lr: the diff paired the --param 5 with the stage's 2
    changed = {c["name"]: (c["old"], c.get("new", "-")) for c in
               repo.json("params", "diff", "--json")["params"]}  # fmt: skip
    assert changed == {"params.yaml:lr": (1, 2)}  # the working tree has no --param
    repo.ok("repro")
    repo.commit("b")
    changed = {c["name"]: (c["old"], c.get("new", "-")) for c in
               repo.json("params", "diff", "v1", "v2", "--json")["params"]}  # fmt: skip
    assert changed == {"lr": (5, "-"), "params.yaml:lr": (1, 2)}
    rows = {r["rev"]: r["params"] for r in repo.json("compare", "--json")}
    assert rows == {"v2": {"params.yaml:lr": 2}, "v1": {"lr": 5, "params.yaml:lr": 1}}


def test_params_diff_shows_two_values_that_differ_as_different(repo: Repo) -> None:
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "o.txt", "--", "cat params.yaml > o.txt")
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    # both were shown as "lr  1  1": six digits, and a whole float as an integer
    for new, text in (("1.0", "1.0"), ("1.0000001", "1.0000001"), ("123456.0", "123456.0")):
        repo.write("params.yaml", f"lr: {new}\n")
        assert repo.ok("params", "diff").out.split()[3:] == ["lr", "1", text]
    repo.write("params.yaml", "lr: 0.25\n")
    assert repo.ok("params", "diff").out.split()[3:] == ["lr", "1", "0.25"]
    repo.fsck_clean()


def test_an_experiment_never_deletes_through_a_link_in_place_of_its_directory(
    repo: Repo, tmp_path: Path
) -> None:
    """.dvfs/exp made a link led exp run to delete what looked like its stale trees there."""
    victim = tmp_path / "elsewhere"
    (victim / "keep.tmp-999999").mkdir(parents=True)
    (victim / "keep.tmp-999999" / "f").write_text("precious")
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "o", "--", "echo x > o")
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    (repo.root / ".dvfs" / "exp").symlink_to(victim)
    line = assert_error(repo.run("exp", "run", "-S", "lr=2", "-n", "e1"), "is a symbolic link")
    assert "remove it" in line
    assert (victim / "keep.tmp-999999" / "f").read_text() == "precious"
    assert "exp/e1" not in repo.ok("branch").out
    (repo.root / ".dvfs" / "exp").unlink()
    repo.ok("exp", "run", "-S", "lr=2", "-n", "e1")
    repo.fsck_clean()


def test_the_run_cache_is_never_written_through_a_link(repo: Repo, tmp_path: Path) -> None:
    """.dvfs/runcache made a link: repro wrote its entries wherever it pointed."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo.root / ".dvfs" / "runcache").symlink_to(elsewhere)
    r = repo.ok("run", "-n", "s", "-o", "o", "--", "echo x > o")
    assert any("runcache" in w and "is a symbolic link" in w for w in warnings_of(r)), r
    assert list(elsewhere.iterdir()) == []
    assert repo.read("o") == b"x\n" and "o" in staged_paths(repo)
    repo.fsck_clean()


def test_exp_list_names_the_base_of_an_experiment_run_on_another_branch_readably(
    repo: Repo,
) -> None:
    """An experiment run from side's v2, listed on main: "from v2" named main's v2
    (`dvfs show v2` read that one); and the experiment's own vN, numbered along its
    branch, came without the id that tells it from main's."""
    repo.write("params.yaml", "lr: 0.1\n")
    repo.ok("run", "-n", "t", "-p", "lr", "-o", "o.txt", "--", "echo made > o.txt")
    add_in_process(repo, "params.yaml")
    repo.commit("one")
    repo.ok("switch", "-c", "side")
    repo.write("note.txt", "side\n")
    add_in_process(repo, "note.txt")
    side = repo.commit("side")
    repo.ok("exp", "run", "-S", "lr=0.2", "-n", "e")
    repo.ok("switch", "main")
    repo.write("note.txt", "main\n")
    add_in_process(repo, "note.txt")
    repo.commit("main two")
    [e] = repo.json("exp", "list", "--json")
    assert e["base"] == side[:10]
    line = repo.ok("exp", "list").out.splitlines()[0]
    assert line.startswith(f"exp/e  v3 {e['id'][:10]} from {side[:10]}  "), line
    repo.fsck_clean()


def test_a_clone_compares_the_metrics_of_versions_it_did_not_check_out(
    repo: Repo, tmp_path: Path
) -> None:
    # a clone holds the data of its checkout alone: compare showed `-` for every older
    # version's metrics, and metrics show/diff and exp list failed, with a warning per
    # version that `dvfs cat` of the same file would have answered by downloading it
    repo.write("params.yaml", "lr: 1\n")
    add_in_process(repo, "params.yaml")
    repo.ok("run", "-n", "train", "-p", "lr", "-m", "metrics.json", "--",
            "sed 's/lr: /{\"acc\": /; s/$/}/' params.yaml > metrics.json")  # fmt: skip
    repo.commit("one")
    repo.write("params.yaml", "lr: 2\n")
    repo.ok("repro")
    add_in_process(repo, "params.yaml")
    repo.commit("two")
    repo.ok("exp", "run", "-S", "lr=3", "-n", "three")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push", "--all")
    assert run(tmp_path, "clone", str(tmp_path / "remote"), "copy").code == 0
    copy = Repo(tmp_path / "copy")
    copy.ok("branch", "exp/three", "origin/exp/three")
    rows = copy.json("compare", "--json")
    assert [(r["rev"], r["metrics"]) for r in rows] == [
        ("v2", {"acc": 2}), ("v1", {"acc": 1}), ("exp/three", {"acc": 3})
    ]  # fmt: skip
    assert copy.json("metrics", "show", "v1", "--json") == {"v1": {"metrics.json": {"acc": 1}}}
    changed = copy.json("metrics", "diff", "v1", "v2", "--json")
    assert [(m["name"], m["old"], m["new"]) for m in changed["metrics"]] == [("acc", 1, 2)]
    [listed] = copy.json("exp", "list", "--json")
    assert listed["metrics"] == {"acc": 3}
    copy.fsck_clean()


def test_lineage_of_a_forged_deep_pipeline_in_a_long_history_is_cut_short_and_says_so(
    tmp_path: Path,
) -> None:
    # Each input's walk back for the version of its bytes goes up to 10,000 versions:
    # a forged pipeline of 1,024 chained stages whose inputs hold bytes no version
    # holds, in a history of 10,000 versions, looked at ten million of them (minutes).
    # The walks of one lineage now share a bound, and what it left unknown is said.
    # (The bound made 2,000 versions by its test hook, the history 100: each input's
    # walk looks at all of them.)
    bound = {lineage.BUDGET_ENV: "2000"}
    versions, stages = 100, 2_000 // 100 + 20
    forge = forge_deep_pipeline(tmp_path / "remote", versions, stages)
    assert_ok(run(tmp_path, "clone", "--no-checkout", forge.url, "c"))
    r = assert_ok(run(tmp_path / "c", "lineage", f"o{stages - 1}", env=bound))
    (said,) = warnings_of(r)
    assert said.startswith(
        "dvfs: warning: the walk back through the versions was cut short "
        "after 2,000 of them: the version that introduced the bytes of "
    )
    cut = r.out.count("since an unknown version (walk cut short)")
    assert said.endswith(f" of {cut} inputs is not known") and 0 < cut < stages, said
    assert r.out.count("  in no version") == stages - cut  # (walked whole: found in none)
    got = assert_ok(run(tmp_path / "c", "lineage", f"o{stages - 1}", "--json", env=bound)).json()
    flags = [i["since_cut"] for s in got["stages"] for i in s["input"]]
    assert sum(flags) == cut and len(flags) == stages


def test_lineage_of_a_forged_pipeline_naming_many_paths_reads_each_once(tmp_path: Path) -> None:
    # Each input of each stage upstream (and each path downstream) was looked for among
    # every output (or input) of every stage: 200 chained stages of 200 paths each made
    # 1.6 billion comparisons, an hour; now each path is found through an index.
    stages, paths = 130, 130  # (the code before: 290 million comparisons, over the timeout)
    forge = forge_wide_pipeline(tmp_path / "remote", stages, paths)
    assert_ok(run(tmp_path, "clone", "--no-checkout", forge.url, "c"))
    up = assert_ok(run(tmp_path / "c", "lineage", f"o{stages - 1}/0", "--json")).json()
    assert [s["stage"] for s in up["stages"]] == [f"s{i:04d}" for i in reversed(range(stages))]
    assert [s["made"] for s in up["stages"][:2]] == [[f"o{stages - 1}/0"], [f"o{stages - 2}/0"]]
    assert sum(len(s["input"]) for s in up["stages"]) == (stages - 1) * paths + 1
    # downstream: the function `dvfs lineage --downstream` calls, in this process
    clone = Repository(tmp_path / "c")
    try:
        down = lineage.downstream(clone.history, clone.history.resolve("HEAD"), b"x")
    finally:
        clone.close()
    assert [(s.name, depth) for s, _, depth in down] == [(f"s{i:04d}", i) for i in range(stages)]
    assert down[1][1] == b"o0/0"
