"""``vfs.track``: a training run in Python becomes one version with params, metrics and
lineage, read back by the pipeline commands; a failed or interrupted run records
nothing.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vfs
from tests.support.cli import assert_ok, cli_env, fsck_clean, init_repo, run
from vfs import tracking
from vfs._os import program
from vfs.model import version_codec
from vfs.pipeline import runs as runs_file
from vfs.pipeline import values
from vfs.store import lock


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose v1 holds data/train (two files), made once; tests get copies."""
    r = init_repo(tmp_path_factory.mktemp("track") / "repo")
    r.write("data/train/a.csv", "x,y\n1,2\n")
    r.write("data/train/b.csv", "x,y\n3,4\n")
    r.ok("add", "data")
    r.ok("commit", "-m", "data")
    return r.root


@pytest.fixture
def repo(template: Path, tmp_path: Path) -> Iterator[vfs.Repo]:
    shutil.copytree(template, tmp_path / "repo", symlinks=True)
    with vfs.Repo(tmp_path / "repo") as r:
        yield r


def open_files() -> set[str]:
    """What this process's descriptors name."""
    named = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            named.add(f"{fd} {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:  # (the listing's own descriptor, closed by now)
            continue
    return named


def test_a_run_is_one_version_with_params_metrics_and_lineage(repo: vfs.Repo) -> None:
    root = repo.root
    assert root is not None
    with vfs.track(repo, message="train resnet", params={"lr": 3e-4}, tag="run1") as r:
        data = r.input("data/train")
        rows = sum(len(p.read_text().splitlines()) for p in sorted(data.iterdir()))
        for epoch in range(3):
            r.log_metrics({"acc": 0.5 + epoch / 10, "loss": 1.0 / (epoch + 1)}, step=epoch)
        model = r.output("models/model.txt")
        model.parent.mkdir()
        model.write_text(f"weights from {rows} rows\n")
    v = r.version
    assert v is not None and (v.number, v.message, v.params, v.tags) == (
        2, "train resnet", {"lr": 3e-4}, ("run1",),
    )  # fmt: skip
    stage = repo.repository.history.version(bytes.fromhex(v.id)).pipeline
    assert [s.name for s in stage] == ["train"]
    assert [p for p, _ in stage[0].deps] == [b"data/train"]
    assert [p for p, _ in stage[0].outs] == [
        b"metrics.json", b"metrics.steps.jsonl", b"models/model.txt",
    ]  # fmt: skip
    shown = assert_ok(run(root, "metrics", "show", "v2", "--json")).json()
    assert shown == {"v2": {"metrics.json": {"acc": 0.7, "loss": 1 / 3, "step": 2}}}
    # the working tree's metrics are the run's too (no stage of dvfs.yaml names them)
    here = assert_ok(run(root, "metrics", "show", "--json")).json()
    assert here == {"workspace": shown["v2"]}
    (root / "metrics.json").write_text('{"acc": 0.75, "loss": 0.3, "step": 2}')
    moved = assert_ok(run(root, "metrics", "diff", "--json")).json()["metrics"]
    assert [(m["name"], m["old"], m["new"]) for m in moved] == [
        ("acc", 0.7, 0.75), ("loss", 1 / 3, 0.3),
    ]  # fmt: skip
    assert_ok(run(root, "restore", "metrics.json"))
    steps = repo.read_text("metrics.steps.jsonl", "v2").splitlines()
    assert [json.loads(s)["step"] for s in steps] == [0, 1, 2]  # every step, with the version
    lineage = assert_ok(run(root, "lineage", "models/model.txt")).out
    assert "train" in lineage and "data/train" in lineage
    compared = assert_ok(run(root, "compare", "v1", "v2")).out
    assert "acc" in compared and "lr" in compared
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    fsck_clean(root)


def test_an_exception_in_the_block_records_nothing(repo: vfs.Repo) -> None:
    root = repo.root
    assert root is not None
    with pytest.raises(ValueError, match="diverged"), vfs.track(repo, message="bad") as r:
        r.input("data/train")
        r.log_metrics({"loss": 9.0}, step=0)
        r.output("model.bin").write_bytes(b"half")
        raise ValueError("loss diverged")
    assert [v.number for v in repo.versions()] == [1]
    assert not (root / "metrics.json").exists() and not (root / "dvfs.runs").exists()
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    fsck_clean(root)


@pytest.mark.parametrize("code", [None, 0, 1, "failed"])
def test_a_successful_exit_in_the_block_records_the_run(
    repo: vfs.Repo, code: int | str | None
) -> None:
    """``sys.exit(0)`` in the block (a click command's ``main()`` ends so once it has
    done its work) recorded nothing, silently: the training's record was lost. A
    success exit now records the run, then goes on; any other exit records nothing."""
    with pytest.raises(SystemExit) as raised, vfs.track(repo, message="by click") as r:
        r.log_metrics({"acc": 0.9}, step=0)
        r.output("model.bin").write_bytes(b"weights")
        sys.exit(code)
    assert raised.value.code == code
    recorded = code in (None, 0)
    assert sorted(v.number for v in repo.versions()) == ([1, 2] if recorded else [1])
    assert (r.version is not None) == recorded
    root = repo.root
    assert root is not None
    assert (root / "metrics.json").exists() == recorded
    fsck_clean(root)


def test_bad_runs_are_refused_before_or_instead_of_recording(repo: vfs.Repo) -> None:
    with pytest.raises(vfs.UsageError, match="parameter name"):
        vfs.track(repo, message="x", params={"": 1})
    with pytest.raises(vfs.UsageError, match="message is empty"):
        vfs.track(repo, message=" ")
    with pytest.raises(FileNotFoundError, match="data/nope"), vfs.track(repo, message="x") as r:
        r.input("data/nope")
    with pytest.raises(vfs.UsageError, match=r"did not make model\.bin"), track(repo) as r:
        r.output("model.bin")
    root = repo.root
    assert root is not None
    with pytest.raises(vfs.UsageError, match="input data/train changed while"), track(repo) as r:
        r.input("data/train")
        (root / "data" / "train" / "a.csv").write_text("changed\n")
    with pytest.raises(vfs.UsageError, match="metric loss is list"), track(repo) as r:
        r.log_metrics({"loss": [1, 2]})
    assert [v.number for v in repo.versions()] == [1]
    fsck_clean(root)


def test_a_metric_no_metrics_file_can_hold_is_refused_when_logged(repo: vfs.Repo) -> None:
    """An integer of 5,000 digits was taken by log_metrics; when the block ended, the
    metrics file could not be written (ValueError: Exceeds the limit (4300 digits))
    and the run recorded nothing. It is refused when logged, as a list is, so the
    program can log something else and the run is recorded."""
    with track(repo) as r:
        with pytest.raises(vfs.UsageError, match="metric n is an integer of more than 4,300"):
            r.log_metrics({"n": 10**5000}, step=0)
        with pytest.raises(vfs.UsageError, match="metric step is an integer of more than"):
            r.log_metrics({"n": 1}, step=10**5000)
        r.log_metrics({"n": 10**400, "loss": 0.5}, step=0)
        r.output("model.bin").write_bytes(b"m")
    assert [v.number for v in repo.versions()] == [2, 1]
    root = repo.root
    assert root is not None
    fsck_clean(root)


def track(repo: vfs.Repo) -> vfs.Run:
    return vfs.track(repo, message="x")


SCRIPT = """
import os, signal, sys, vfs
with vfs.track(sys.argv[1], message="interrupted") as r:
    r.input("data/train")
    r.log_metrics({"loss": 1.0}, step=0)
    r.output("model.bin").write_bytes(b"partial")
    os.kill(os.getpid(), signal.SIGINT)   # Ctrl-C in the middle of training
    print("not reached")
"""


def test_ctrl_c_in_the_block_records_nothing(repo: vfs.Repo) -> None:
    root = repo.root
    assert root is not None
    proc = subprocess.run(
        [sys.executable, "-P", "-c", SCRIPT, str(root)], capture_output=True, text=True,
        env=cli_env(), timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == -signal.SIGINT, proc.stderr
    assert "KeyboardInterrupt" in proc.stderr and "not reached" not in proc.stdout
    assert [v.number for v in repo.versions()] == [1]
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    assert (root / "model.bin").read_bytes() == b"partial"  # the user's file, left alone
    assert not (root / "metrics.json").exists() and not (root / "dvfs.runs").exists()
    fsck_clean(root)


def test_numpy_numbers_are_steps_metrics_and_params(repo: vfs.Repo) -> None:
    params = {"epochs": np.int64(3), "lr": np.float32(0.5), "sizes": np.array([64, 32])}
    with vfs.track(repo, message="numpy", params=params) as r:
        for step in np.arange(2):  # a loop over numpy's integers
            r.log_metrics({"loss": np.float32(1.5) / (step + 1), "n": np.int64(7)}, step=step)
        with pytest.raises(vfs.UsageError, match="metric acc is a ndarray of several values"):
            r.log_metrics({"acc": np.array([0.5, 0.6])})
        # (a step given as text was shown in Python's repr style: not '3')
        with pytest.raises(vfs.UsageError, match=r"step must be a whole number, not 2\.0$"):
            r.log_metrics({"loss": 1.0}, step=np.float64(2.0))  # type: ignore[arg-type]
        with pytest.raises(vfs.UsageError, match=r"whole number, not the text 3$"):
            r.log_metrics({"loss": 1.0}, step="3")  # type: ignore[arg-type]
    v = r.version
    assert v is not None and v.params == {"epochs": 3, "lr": 0.5, "sizes": [64, 32]}
    assert json.loads(repo.read_text("metrics.json", v.version)) == {
        "loss": 0.75, "n": 7, "step": 1,
    }  # fmt: skip


def test_a_nan_metric_is_written_as_the_float_the_file_reads_back(repo: vfs.Repo) -> None:
    # it wrote the text ".nan" (first it wrote "nan"), which every reader then took
    # for a text: metrics show and compare printed it quoted, '".nan"', as the text it
    # shows beside the float .nan, and compare --json named it under "texts"
    root = repo.root
    assert root is not None
    for name in ("metrics.json", "m.yaml"):
        with vfs.track(repo, message=name, metrics=name) as r:
            r.log_metrics({"loss": float("nan"), "top": float("-inf"), "word": ".inf"})
        assert r.version is not None
        rev = f"v{r.version.number}"
        doc = values.load(repo.read_bytes(name, rev), name.encode(), name)
        assert math.isnan(doc["loss"]) and doc["top"] == -math.inf and doc["word"] == ".inf"
        shown = assert_ok(run(root, "metrics", "show", rev)).out
        assert re.search(r"loss +\.nan$", shown, re.M) and re.search(r"top +-\.inf$", shown, re.M)
        assert re.search(r'word +"\.inf"$', shown, re.M), shown
        [row] = [c for c in assert_ok(run(root, "compare", "--json")).json() if c["rev"] == rev]
        named = {  # (a metric of several files' is named FILE:KEY)
            k.removeprefix(f"{name}:"): k for k in row["metrics"] if k.startswith(f"{name}:")
        } or {k: k for k in row["metrics"]}
        got = {k: row["metrics"][named[k]] for k in ("loss", "top", "word")}
        assert got == {"loss": ".nan", "top": "-.inf", "word": ".inf"}
        assert [k for k in row["texts"] if k in named.values()] == [named["word"]], row
    fsck_clean(root)


def test_a_run_is_used_inside_its_block_once_and_blocks_do_not_nest(repo: vfs.Repo) -> None:
    early = vfs.track(repo, message="early")
    with pytest.raises(vfs.UsageError, match=r"run\.input\(\) is used inside its block"):
        early.input("data/train")
    with vfs.track(repo, message="outer") as outer:
        inner = vfs.track(repo, message="inner")
        with pytest.raises(vfs.UsageError, match=r"already being tracked .* do not nest"), inner:
            pass
        outer.log_metrics({"loss": 0.5}, step=0)
    assert outer.version is not None and outer.version.number == 2
    # after the block the run is recorded: a metric logged then was dropped unseen
    with pytest.raises(vfs.UsageError, match="after the block of run train: the run was recor"):
        outer.log_metrics({"test_acc": 0.9})
    with pytest.raises(vfs.UsageError, match="run train was already used"), outer:
        pass
    with vfs.track(repo, message="next") as r:  # the outer block let go of the tree
        r.log_metrics({"loss": 0.4}, step=1)
    assert [v.number for v in repo.versions()] == [3, 2, 1]


def test_a_tag_that_exists_is_refused_before_the_block_not_after(repo: vfs.Repo) -> None:
    root = repo.root
    assert root is not None
    assert_ok(run(root, "tag", "best", "v1"))
    # it was found at the commit, after the block: outputs, metrics.json and
    # dvfs.runs were left staged, with no version
    with pytest.raises(vfs.UsageError, match="tag best already exists"):
        vfs.track(repo, message="x", tag="best")
    late = vfs.track(repo, message="x", tag="late")
    with pytest.raises(vfs.UsageError, match="tag late already exists"), late as r:
        r.log_metrics({"loss": 1.0}, step=0)
        r.output("model.bin").write_bytes(b"w")
        assert_ok(run(root, "tag", "late", "v1"))  # made while the run ran
    assert [v.number for v in repo.versions()] == [1]
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    assert not (root / "metrics.json").exists() and not (root / "dvfs.runs").exists()


def test_an_ignored_output_is_refused_when_declared_and_before_anything_is_written(
    repo: vfs.Repo,
) -> None:
    root = repo.root
    assert root is not None
    (root / ".dvfsignore").write_text("*.bin\nscratch/\n")
    # the add at the end found it, after the block had run and metrics.json was written
    late = vfs.track(repo, message="x")
    with pytest.raises(vfs.UsageError, match=r"^scratch \(an output of run train\) is ig"), late:
        with pytest.raises(vfs.UsageError, match=r"model\.bin \(an output .* \.dvfsignore:1"):
            late.output("model.bin")
        with pytest.raises(vfs.UsageError, match=r"scratch \(an output .* \.dvfsignore:2"):
            late.output("scratch/")
        late.log_metrics({"loss": 0.5}, step=0)
        late.output("scratch").mkdir()  # a directory, seen as one once it is made
    assert [v.number for v in repo.versions()] == [1]
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    assert not (root / "metrics.json").exists() and not (root / "dvfs.runs").exists()


def test_inputs_and_outputs_that_overlap_are_refused_when_declared(repo: vfs.Repo) -> None:
    with vfs.track(repo, message="x") as r:
        model = r.output("models/model.pt")
        model.parent.mkdir()
        model.write_bytes(b"resumed")
        # it was accepted, and the run refused at the end as its input had changed
        with pytest.raises(vfs.UsageError, match=r"overlaps output models/model\.pt of run"):
            r.input("models")
        r.input("data/train")
        with pytest.raises(vfs.UsageError, match="overlaps input data/train of run train"):
            r.output("data/train/predictions.csv")
    assert r.version is not None and r.version.number == 2


@pytest.mark.parametrize("name", ["eval/holdout", "x" * 101, "-fit"])
def test_a_run_named_as_no_stage_can_be_is_refused_before_it_starts(
    repo: vfs.Repo, name: str
) -> None:
    # a name with '/' (which the message allowed) or too long for a stage passed the
    # check, and the run, once its block had ended, failed with "malformed pipeline:
    # bad stage name": the whole run lost
    with pytest.raises(vfs.UsageError, match="a stage name is an ASCII letter, digit or _"):
        vfs.track(repo, message="x", name=name)
    with vfs.track(repo, message="x", name="eval.holdout-2") as r:
        r.output("model.txt").write_text("m")
    assert r.version is not None and r.version.number == 2
    assert repo.root is not None
    fsck_clean(repo.root)


def test_a_run_named_as_a_stage_of_the_pipeline_is_refused(repo: vfs.Repo) -> None:
    root = repo.root
    assert root is not None
    (root / "dvfs.yaml").write_text(
        "stages:\n  train:\n    cmd: [sh, -c, cat data/train/a.csv > out.txt]\n"
        "    deps: [data/train]\n    outs: [out.txt]\n"
    )
    # the run replaced stage train's record in dvfs.runs: out.txt lost its lineage,
    # and the next repro took the stage's command for changed
    named_train = vfs.track(repo, message="x")
    with pytest.raises(vfs.UsageError, match=r"stage train is defined in dvfs\.yaml"), named_train:
        raise AssertionError("not reached")
    with vfs.track(repo, message="x", name="py-train") as r:
        r.output("model.txt").write_text("m")
    assert r.version is not None and r.version.number == 2


def test_an_output_of_a_stage_of_the_pipeline_is_refused(repo: vfs.Repo) -> None:
    """A run writing out.txt, which stage prep of dvfs.yaml makes, or metrics.json,
    which stage score makes, was recorded: its record claimed the output, and the next
    `dvfs repro` made it again over the run's (`dvfs run` refuses a second stage
    making an output). Both are refused when given, with nothing recorded."""
    root = repo.root
    assert root is not None
    (root / "dvfs.yaml").write_text(
        "stages:\n  prep:\n    cmd: [sh, -c, cat data/train/a.csv > out/a.txt]\n"
        "    deps: [data/train]\n    outs: [out/a.txt]\n"
        "  score:\n    cmd: [sh, -c, cat out/a.txt > metrics.json]\n    deps: [out/a.txt]\n"
        "    metrics: [metrics.json]\n"
    )
    for path, shown in (("out/a.txt", "out/a.txt is"), ("out", "out overlaps out/a.txt,")):
        refused = pytest.raises(vfs.UsageError, match=f"^{shown} an output of stage prep")
        with refused, vfs.track(repo, message="x") as r:
            r.output(path)
    refused = pytest.raises(vfs.UsageError, match=r"^metrics.json is an output of stage score")
    with refused, vfs.track(repo, message="x") as r:
        r.log_metrics({"acc": 1.0})
    with vfs.track(repo, message="x", metrics="run.json") as r:
        r.log_metrics({"acc": 1.0})
        r.output("model.txt").write_text("m")
    assert r.version is not None and r.version.number == 2
    assert not (root / "out").exists() and not (root / "metrics.json").exists()
    fsck_clean(root)


class Opaque:
    """A value whose text is its address: nothing a version could show."""


def test_arguments_of_the_wrong_type_are_named_not_internal_errors(repo: vfs.Repo) -> None:
    # message=None was an AttributeError ('NoneType' object has no attribute 'strip');
    # a list of params an AssertionError (commit) or a TypeError about dict updates
    for call in (
        lambda: vfs.track(repo, message=None),  # type: ignore[arg-type]
        lambda: repo.commit(None),  # (None is for amend=True alone)
        lambda: repo.commit(3),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=r"^the message is text, not (NoneType|int)$"):
            call()
    for call in (
        lambda: vfs.track(repo, message="x", params=[("lr", 1)]),  # type: ignore[arg-type]
        lambda: repo.commit("x", params=[1, 2]),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=r"params is a mapping of names to values"):
            call()
    assert [v.number for v in repo.versions()] == [1]


def test_a_parameter_a_version_cannot_hold_is_refused_not_recorded_as_its_repr(
    repo: vfs.Repo,
) -> None:
    # it was recorded as its repr: "<tests.test_track.Opaque object at 0x7f...>"
    for bad, named in (
        ({"model": Opaque()}, "model is a Opaque"),
        ({"net": {"act": [1, Opaque()]}}, r"net\.act\[1\] is a Opaque"),
        ({"blob": b"\x00\x01"}, "blob is a bytes"),
    ):
        with pytest.raises(TypeError, match=f"^parameter {named}, which a version cannot"):
            vfs.track(repo, message="x", params=bad)
        with pytest.raises(TypeError, match=f"^parameter {named}, which a version cannot"):
            repo.commit("x", params=bad)
    # what stands for a value is kept as the value (paths and dates as their text)
    import datetime as dt

    ok = {"data": Path("data/train"), "day": dt.date(2024, 5, 1), "t": (1, 2), "n": None}
    with vfs.track(repo, message="typed", params=ok) as r:
        r.log_metrics({"acc": 1})
    assert r.version is not None
    assert r.version.params == {"data": "data/train", "day": "2024-05-01", "t": [1, 2], "n": None}


def test_paths_outside_the_repository_are_refused_when_given(
    repo: vfs.Repo, tmp_path: Path
) -> None:
    root = repo.root
    assert root is not None
    away = tmp_path / "scratch"
    away.mkdir()
    (root / "scratch").symlink_to(away)  # a link to a directory outside
    (root / "data" / "model.pt").symlink_to(away / "model.pt")  # a link out, named last
    with vfs.track(repo, message="x") as r:
        # it said "'../scratch/m.bin': paths of a version cannot contain '..'"
        with pytest.raises(vfs.UsageError, match=f"^{away}/m.bin is outside the repository"):
            r.output(away / "m.bin")
        with pytest.raises(vfs.UsageError, match=f"^{away} is outside the repository"):
            r.input(str(away))
        # it was taken, and the end of the block said "did not make scratch/m.bin"
        with pytest.raises(vfs.UsageError, match=r"^scratch/m\.bin is below scratch, a symbolic"):
            r.output("scratch/m.bin")
        # it was recorded: a version holding a link to where the model went
        with pytest.raises(vfs.UsageError, match=r"^data/model\.pt is a symbolic link to .*, out"):
            r.output("data/model.pt")
        r.output(root / "models" / "m.bin")  # an absolute path inside is its own
        (root / "models").mkdir()
        (root / "models" / "m.bin").write_bytes(b"w")
    assert r.version is not None and r.version.number == 2
    with pytest.raises(vfs.UsageError, match=f"^{away}/m.json is outside the repository"):
        vfs.track(repo, message="x", metrics=away / "m.json")  # it was read as tmp/.../m.json


def test_an_output_replaced_by_a_link_out_during_the_block_records_nothing(
    repo: vfs.Repo, tmp_path: Path
) -> None:
    root = repo.root
    assert root is not None
    link_out = r"^model\.bin is a symbolic link to"
    with pytest.raises(vfs.UsageError, match=link_out), track(repo) as r:
        r.output("model.bin")
        (tmp_path / "elsewhere.bin").write_bytes(b"w")
        (root / "model.bin").symlink_to(tmp_path / "elsewhere.bin")
    assert [v.number for v in repo.versions()] == [1]
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []


def test_a_metric_name_with_control_characters_is_refused_as_a_parameter_name_is(
    repo: vfs.Repo,
) -> None:
    # "loss\n" (a name read from a file, its newline kept) was recorded as a metric of
    # its own, beside "loss", in metrics.json and every table of `dvfs compare`
    with vfs.track(repo, message="x") as r:
        for name in ("loss\n", "acc\x1b[31m", "a\tb"):
            with pytest.raises(vfs.UsageError, match=r"^metric name .* is not usable"):
                r.log_metrics({name: 1.0})
        r.log_metrics({"loss": 1.0, "top-1 acc": 0.5})
    assert r.version is not None
    assert json.loads(repo.read_text("metrics.json", r.version.version)) == {
        "loss": 1.0, "top-1 acc": 0.5,
    }  # fmt: skip


def test_more_arguments_of_the_wrong_type_say_what_to_give(repo: vfs.Repo) -> None:
    # each was an internal error: "'list' object has no attribute 'items'", "object of
    # type 'int' has no len()", "'NoneType' object is not iterable"
    loose: Any = repo  # called as an untyped caller would
    start: Any = vfs.track
    cases: list[tuple[Callable[[], object], str]] = [
        (lambda: start(repo, message="x", tag=5), r"^the tag is text, not int$"),
        (lambda: start(repo, message="x", name=5), r"^the name is text, not int$"),
        (lambda: loose.commit("x", tag=5), r"^the tag is text, not int$"),
        (lambda: loose.add(None), r"^paths is a path or a list of paths, not NoneType$"),
        (lambda: loose.add(5), r"^paths is a path or a list of paths, not int$"),
    ]
    for call, message in cases:
        with pytest.raises(TypeError, match=message):
            call()
    with vfs.track(repo, message="x") as r:
        with pytest.raises(TypeError, match=r"^log_metrics takes a mapping of names to values"):
            r.log_metrics([("loss", 1.0)])  # type: ignore[arg-type]
        r.log_metrics({"loss": 1.0})
    assert r.version is not None and r.version.number == 2


def test_a_metrics_file_that_cannot_be_written_or_is_an_input_is_refused_early(
    repo: vfs.Repo,
) -> None:
    root = repo.root
    assert root is not None
    before = (root / "data" / "train" / "a.csv").read_bytes()
    # after the block: "[Errno 21] Is a directory: b'.tmp-data.c1cae6a40' -> b'data'"
    directory = r"^metrics= names data/train, a directory"
    with pytest.raises(vfs.UsageError, match=directory), track_to(repo, "data/train"):
        pass
    # after the block: "[Errno 17] File exists"
    below = r"^metrics= names data/train/a\.csv/m\.json, below"
    with pytest.raises(vfs.UsageError, match=below), track_to(repo, "data/train/a.csv/m.json"):
        pass
    # the input was overwritten with the metrics, and the run recorded
    with pytest.raises(RuntimeError, match="stop"), track_to(repo, "data/train/a.csv") as r:
        r.input("data/train/a.csv")
        with pytest.raises(vfs.UsageError, match=r"^the metrics file data/train/a\.csv"):
            r.log_metrics({"loss": 1.0})
        raise RuntimeError("stop")
    # metrics logged first, then an input holding the metrics file
    overlaps = r"^data overlaps the metrics file data/m\.json"
    with pytest.raises(vfs.UsageError, match=overlaps), track_to(repo, "data/m.json") as r:
        r.log_metrics({"loss": 1.0})
        r.input("data")
    assert (root / "data" / "train" / "a.csv").read_bytes() == before
    assert [v.number for v in repo.versions()] == [1]


def track_to(repo: vfs.Repo, metrics: str) -> vfs.Run:
    return vfs.track(repo, message="x", metrics=metrics)


def test_metrics_written_into_an_output_directory_keep_its_lineage(repo: vfs.Repo) -> None:
    # the output directory was recorded as it was before the metrics went into it:
    # "stage train: out is not as its last run made it ...: its lineage is not recorded"
    root = repo.root
    assert root is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error", vfs.DvfsWarning)
        with vfs.track(repo, message="run", metrics="out/metrics.json") as r:
            r.input("data/train")
            out = r.output("out")
            out.mkdir()
            (out / "model.bin").write_bytes(b"weights")
            r.log_metrics({"acc": 0.9}, step=1)
    v = r.version
    assert v is not None
    stage = repo.repository.history.version(bytes.fromhex(v.id)).pipeline
    assert [p for p, _ in stage[0].outs] == [
        b"out", b"out/metrics.json", b"out/metrics.steps.jsonl",
    ]  # fmt: skip
    lineage = assert_ok(run(root, "lineage", "out/model.bin"))
    assert "stage train made out" in lineage.out and "input data/train" in lineage.out
    fsck_clean(root)


def test_an_ignored_metrics_file_is_refused_at_the_first_metrics_not_the_end(
    repo: vfs.Repo,
) -> None:
    # the block ran to its end (hours of training) before "metrics.json (an output of
    # run train) is ignored by .dvfsignore:1:*.json" refused to record anything
    root = repo.root
    assert root is not None
    (root / ".dvfsignore").write_text("*.json\n")
    steps = []
    with pytest.raises(vfs.UsageError) as caught, vfs.track(repo, message="x") as r:
        r.log_metrics({"loss": 0.5}, step=0)
        steps.append("trained")
    assert steps == []
    said = r"^metrics\.json \(an output of run train\) is ignored by \.dvfsignore:1:\*\.json: "
    assert re.match(said + r".* another metrics= file", str(caught.value))
    with vfs.track(repo, message="y", metrics="logs/metrics.jsonl") as r:
        r.log_metrics({"loss": 0.5}, step=0)
    assert r.version is not None and (root / "logs" / "metrics.jsonl").exists()
    fsck_clean(root)


def test_a_file_ignore_rules_keep_out_of_an_output_directory_is_warned_of(
    repo: vfs.Repo,
) -> None:
    # the run recorded models/ without models/model.bin (*.bin ignored), silently:
    # the model the run was for was in no version, and nothing said so
    root = repo.root
    assert root is not None
    (root / ".dvfsignore").write_text("*.bin\ncache/\n")
    with pytest.warns(vfs.DvfsWarning) as caught, vfs.track(repo, message="x") as r:
        models = r.output("models")
        (models / "cache").mkdir(parents=True)
        (models / "model.bin").write_bytes(b"weights")
        (models / "cache" / "x.txt").write_text("scratch")
        (models / "config.yaml").write_text("depth: 18\n")
    # at the user's `with`: the warnings named lines of dvfs (or contextlib)
    assert {w.filename for w in caught} == {__file__}
    said = sorted(str(w.message) for w in caught)
    assert said == [
        "models/cache/ (in output models of run train) is ignored by .dvfsignore:2:cache/: "
        "the run records models without it; change the rule to record it",
        "models/model.bin (in output models of run train) is ignored by .dvfsignore:1:*.bin: "
        "the run records models without it; change the rule to record it",
    ]
    assert r.version is not None
    assert [f.path for f in repo.ls(r.version, "models")] == ["models/config.yaml"]
    fsck_clean(root)


def test_a_long_run_logging_every_step_is_recorded_with_a_bounded_history(
    repo: vfs.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # log_metrics raised "more than 100,000 calls of log_metrics in one run" inside the
    # training loop at step 100,001: the exception ended the block, nothing recorded
    monkeypatch.setattr(tracking, "MAX_STEPS", 100)
    root = repo.root
    assert root is not None
    long_run = pytest.warns(vfs.DvfsWarning, match=r"more than 100 calls of log_metrics: its ")
    with long_run as caught, vfs.track(repo, message="long") as r:
        for step in range(1001):
            r.log_metrics({"loss": 1 / (step + 1)}, step=step)
    assert {w.filename for w in caught} == {__file__}  # the call of log_metrics
    assert r.version is not None
    assert json.loads((root / "metrics.json").read_text()) == {"loss": 1 / 1001, "step": 1000}
    rows = [json.loads(line) for line in (root / "metrics.steps.jsonl").read_text().splitlines()]
    steps = [row["step"] for row in rows]
    assert len(steps) <= 101 and steps[0] == 0 and steps[-1] == 1000  # the whole run, bounded
    assert len({b - a for a, b in itertools.pairwise(steps[:-1])}) == 1  # evenly spread
    fsck_clean(root)


def test_add_refuses_an_output_of_a_run_in_its_block(repo: vfs.Repo) -> None:
    """`dvfs add` of what a run was still writing staged half a model."""
    root = repo.root
    assert root is not None
    with vfs.track(repo, message="train", name="fit") as r:
        r.output("models/m.bin").parent.mkdir()
        (root / "models" / "m.bin").write_bytes(b"half")
        for args in (("add", "models/m.bin"), ("add", "models")):
            got = run(root, *args)
            assert got.code != 0 and "Traceback" not in got.err, got
            assert "vfs.track (pid " in got.err, got
            assert "is writing models/m.bin, an output of run fit" in got.err, got
        (root / "models" / "m.bin").write_bytes(b"whole")
    assert r.version is not None and r.version.number == 2
    assert repo.read_bytes("models/m.bin") == b"whole"
    assert not (root / ".dvfs" / "pipeline.writing").exists()
    assert_ok(run(root, "add", "models"))
    fsck_clean(root)


def test_dvfs_own_files_are_refused_as_what_a_run_writes(repo: vfs.Repo) -> None:
    """metrics="dvfs.yaml" wrote the metrics over the pipeline, and output("dvfs.yaml")
    was taken: `dvfs run -o dvfs.yaml` is refused."""
    root = repo.root
    assert root is not None
    pipeline = 'stages:\n  a:\n    cmd: "true"\n'
    (root / "dvfs.yaml").write_text(pipeline)
    for name in ("dvfs.yaml", "dvfs.runs", "dvfs.lock", "dvfs.toml"):
        with pytest.raises(vfs.errors.UsageError, match=re.escape(f"{name} is dvfs's own file")):
            vfs.track(repo, message="t", metrics=name)
    own = re.escape("dvfs.yaml is dvfs's own file")
    with pytest.raises(vfs.errors.UsageError, match=own), vfs.track(repo, message="t") as r:
        r.output("dvfs.yaml")
    assert (root / "dvfs.yaml").read_text() == pipeline
    assert [v.number for v in repo.versions()] == [1]
    fsck_clean(root)


def test_dvfs_own_directory_is_refused_as_an_input_or_an_output(repo: vfs.Repo) -> None:
    """input(".dvfs/HEAD") failed with "reserved name .dvfs in a tree record", words of
    the repository's format; output(".dvfs") was taken. Both are refused as the
    commands and metrics= refuse a path there."""
    root = repo.root
    assert root is not None
    inside = r"is inside dvfs's own directory \.dvfs: a run's inputs and outputs"
    for path in (".dvfs/HEAD", ".dvfs", root / ".dvfs" / "objects"):
        with pytest.raises(vfs.UsageError, match=inside), vfs.track(repo, message="t") as r:
            r.input(path)
        with pytest.raises(vfs.UsageError, match=inside), vfs.track(repo, message="t") as r:
            r.output(path)
    assert [v.number for v in repo.versions()] == [1]
    fsck_clean(root)


def test_a_run_and_a_closed_repo_leave_no_file_open(template: Path, tmp_path: Path) -> None:
    """A run given a directory closes the Repo it opens for it when the block ends,
    and a Repo closed (``with vfs.Repo(...)``) closes its store's packs: each left
    three pack descriptors open for as long as the run or the Repo was referred to."""
    root = tmp_path / "repo"
    shutil.copytree(template, root, symlinks=True)
    before = open_files()
    with vfs.track(root, message="by path") as r:
        r.output("a.txt").write_text("a\n")
    assert r.version is not None and r.version.version == "v2"
    assert open_files() == before
    with vfs.Repo(root) as repo:
        with vfs.track(repo, message="by repo") as r2:
            r2.output("b.txt").write_text("b\n")
        assert repo.read_text("a.txt", "v2") == "a\n"
    assert r2.version is not None and r2.version.version == "v3"
    assert open_files() == before
    assert repo.read_text("b.txt") == "b\n"  # a closed local Repo opens its store again
    repo.close()
    fsck_clean(root)


def test_a_toml_metrics_file_is_refused_when_the_run_is_made(repo: vfs.Repo) -> None:
    # the run wrote JSON into m.toml: `dvfs metrics show` and `compare` then said
    # "m.toml is not valid TOML" of every version the run made
    with pytest.raises(vfs.UsageError, match=r"^metrics= names m\.toml, a TOML file"):
        track_to(repo, "m.toml")
    with track_to(repo, "m.yaml") as r:  # JSON is YAML: that one reads back
        r.log_metrics({"acc": 0.5}, step=1)
    root = repo.root
    assert root is not None
    shown = assert_ok(run(root, "metrics", "show", "v2", "--json")).json()
    assert shown == {"v2": {"m.yaml": {"acc": 0.5, "step": 1}}}
    fsck_clean(root)


def test_a_text_metric_the_commands_would_not_show_is_refused_when_logged(
    repo: vfs.Repo,
) -> None:
    # a text of 201 to 256 characters was taken and recorded; `dvfs metrics show`
    # then left it out: "note not shown: a metric is ... a text of at most 200 characters"
    longest = "n" * 200
    with track(repo) as r:
        with pytest.raises(vfs.UsageError, match=r"^metric note is a text of 201 characters"):
            r.log_metrics({"note": longest + "n"})
        r.log_metrics({"note": longest})
    root = repo.root
    assert root is not None
    shown = run(root, "metrics", "show", "v2", "--json")
    assert_ok(shown)
    assert shown.json() == {"v2": {"metrics.json": {"note": longest}}} and shown.err == ""
    fsck_clean(root)


HOLDING = """
import sys, vfs
with vfs.track(sys.argv[1], message="long", name="fit") as r:
    print("in the block", flush=True)
    sys.stdin.readline()
"""


def test_a_run_in_its_block_is_named_as_the_program_it_is(repo: vfs.Repo) -> None:
    # the lock's holder was named "dvfs" and the program's first arguments: "held by
    # another dvfs command (pid 7: dvfs /tmp/.../repo)", no such command having run
    root = repo.root
    assert root is not None
    script = root.parent / "train.py"
    script.write_text(HOLDING)
    proc = subprocess.Popen(
        [sys.executable, "-P", str(script), str(root)], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "in the block\n"
        held = re.escape(f"(pid {proc.pid}: python train.py {root})")
        with pytest.raises(vfs.DvfsError, match=f"held by another dvfs command {held}"):
            vfs.track(repo, message="second").__enter__()
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0
    assert [v.number for v in repo.versions()] == [2, 1]  # the run, recorded
    fsck_clean(root)


def test_a_step_given_among_the_metrics_says_where_it_goes(repo: vfs.Repo) -> None:
    # "metric name step is not usable: give 1 to 256 characters without control
    # characters, other than step": nothing said that step= takes it
    with pytest.raises(RuntimeError, match="stop"), track(repo) as r:
        with pytest.raises(vfs.UsageError, match=r"^step is not a metric: give it as "):
            r.log_metrics({"step": 3, "loss": 0.5})
        r.log_metrics({"loss": 0.5}, step=3)
        raise RuntimeError("stop")
    assert [v.number for v in repo.versions()] == [1]


RUN_ONCE = """
import os, sys, vfs
with vfs.track(os.environ["REPO"], message="quick", name="quick") as r:
    r.output("out.txt").write_text("made")
"""


def test_a_run_records_the_code_of_python_c_and_the_notebook_it_ran_in(
    repo: vfs.Repo, tmp_path: Path
) -> None:
    """Under `python -c CODE` sys.argv is ["-c"], in a notebook the kernel's launcher
    and its connection file: the run and its audit entries recorded `-c` or
    `ipykernel_launcher.py -f kernel-1.json`, which name nothing the user ran."""
    root = repo.root
    assert root is not None
    env = {**cli_env(), "REPO": str(root)}
    subprocess.run([sys.executable, "-P", "-c", RUN_ONCE, "arg"], env=env, check=True)
    code = RUN_ONCE.strip()
    cut = code[: program.CODE_CHARS - 1] + "…"
    [stage] = repo.repository.history.version(bytes.fromhex(repo.versions()[0].id)).pipeline
    assert list(stage.cmd) == ["python", "-c", cut, "arg"]
    assert assert_ok(run(root, "audit", "--json")).json()[-1]["cmd"] == ["python", "-c", cut, "arg"]

    launcher = tmp_path / "ipykernel" / "ipykernel_launcher.py"
    launcher.parent.mkdir()
    launcher.write_text(RUN_ONCE)
    notebook = str(tmp_path / "train.ipynb")
    for given, recorded in (
        ({"JPY_SESSION_NAME": notebook}, ["jupyter", notebook]),
        ({}, ["jupyter"]),
    ):
        kernel = [sys.executable, "-P", str(launcher), "-f", str(tmp_path / "kernel-1.json")]
        subprocess.run(kernel, env={**env, **given}, check=True)
        [stage] = repo.repository.history.version(bytes.fromhex(repo.versions()[0].id)).pipeline
        assert list(stage.cmd) == recorded
        assert assert_ok(run(root, "audit", "--json")).json()[-1]["cmd"] == recorded
    fsck_clean(root)


def test_a_change_staged_apart_from_a_run_stops_its_start_or_is_named(repo: vfs.Repo) -> None:
    # the version held data/notes.txt, staged by the user for a commit of their own,
    # as if the run had made it; and during a merge the run's commit was the merge's
    root = repo.root
    assert root is not None
    (root / "data" / "notes.txt").write_text("mine\n")
    assert_ok(run(root, "add", "data/notes.txt"))
    staged = r"data/notes\.txt is staged: .*commit"
    with pytest.raises(vfs.UsageError, match=staged), track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
    assert_ok(run(root, "commit", "-m", "notes"))
    with track(repo) as r:  # nothing else staged: the run alone
        r.output("model.bin").write_bytes(b"w")
    assert r.version is not None and r.version.number == 3
    assert [c.path for c in repo.diff("v2", "v3")] == ["dvfs.runs", "model.bin"]
    # staged while the block ran: the run is kept, and the warning names what joined it
    meanwhile = r"data/notes\.txt was staged while run train ran: v4 holds it too"
    with pytest.warns(vfs.DvfsWarning, match=meanwhile), track(repo) as r:
        r.log_metrics({"loss": 0.5}, step=0)
        r.output("model.bin").write_bytes(b"w2")
        (root / "data" / "notes.txt").write_text("changed\n")
        assert_ok(run(root, "add", "data/notes.txt"))
    assert r.version is not None and r.version.number == 4
    changed = [c.path for c in repo.diff("v3", "v4")]
    assert changed == [
        "data/notes.txt",
        "dvfs.runs",
        "metrics.json",
        "metrics.steps.jsonl",
        "model.bin",
    ], changed
    assert not assert_ok(run(root, "status", "--json")).json()["staged"]
    fsck_clean(root)


def test_a_run_is_refused_while_a_merge_is_in_progress(repo: vfs.Repo) -> None:
    # at the end of the block the merge's commit refused the conflict, after the
    # outputs, metrics and dvfs.runs had been staged; settled, the run was the merge
    root = repo.root
    assert root is not None
    assert_ok(run(root, "switch", "-c", "other"))
    (root / "data" / "train" / "a.csv").write_text("theirs\n")
    assert_ok(run(root, "commit", "-a", "-m", "theirs"))
    assert_ok(run(root, "switch", "main"))
    (root / "data" / "train" / "a.csv").write_text("ours\n")
    assert_ok(run(root, "commit", "-a", "-m", "ours"))
    assert run(root, "merge", "other").code == 1  # a conflict
    with pytest.raises(vfs.UsageError, match="a merge of other is in progress"), track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
    assert_ok(run(root, "restore", "--ours", "data/train/a.csv"))
    with pytest.raises(vfs.UsageError, match="a merge of other is in progress"), track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
    assert [v.number for v in repo.versions()] == [2, 1]
    assert not (root / "metrics.json").exists() and not (root / "dvfs.runs").exists()
    fsck_clean(root)


def test_a_busy_repository_lock_at_the_end_of_the_block_leaves_nothing_written(
    repo: vfs.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # staging took the lock after metrics.json and its history had been written into
    # the working tree (over the previous run's metrics there), and left them
    root = repo.root
    assert root is not None
    with track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
    before = (root / "metrics.json").read_bytes()
    monkeypatch.setenv("DVFS_LOCK_TIMEOUT", "0")
    with pytest.raises(vfs.DvfsError, match="lock"), repo.repository.locked(), track(repo) as r:
        r.log_metrics({"loss": 0.5}, step=1)
        r.output("model.bin").write_bytes(b"w")
    assert (root / "metrics.json").read_bytes() == before
    assert json.loads((root / "metrics.steps.jsonl").read_text()) == {"loss": 1.0, "step": 0}
    assert [v.number for v in repo.versions()] == [2, 1]
    status = assert_ok(run(root, "status", "--json")).json()
    assert status["staged"] == [] and status["modified"] == []
    fsck_clean(root)


def test_an_input_the_version_does_not_hold_is_warned_of(repo: vfs.Repo) -> None:
    # the run read data/train as changed in the working tree, and its version held
    # the data committed before: its lineage named content no version holds, unsaid
    root = repo.root
    assert root is not None
    (root / "data" / "train" / "a.csv").write_text("x,y\n5,6\n")  # changed, not staged
    (root / "extra.csv").write_text("x\n1\n")  # not tracked
    with pytest.warns(vfs.DvfsWarning) as warned, track(repo) as r:
        r.input("data/train")
        r.input("extra.csv")
        r.input("data/train/b.csv")  # as committed
        r.output("model.bin").write_bytes(b"w")
    said = [str(w.message) for w in warned]
    assert len(said) == 2, said
    assert said[0].startswith("input data/train of run train is not in v2 as the run read it")
    assert said[1].startswith("input extra.csv of run train is not in v2 as the run read it")
    assert "in no version" in assert_ok(run(root, "lineage", "model.bin")).out
    with warnings.catch_warnings():
        warnings.simplefilter("error", vfs.DvfsWarning)
        with track(repo) as r:  # its inputs as the version holds them: nothing to say
            r.input("data/train/b.csv")
            r.output("model.bin").write_bytes(b"w2")
    fsck_clean(root)


def test_a_block_nested_through_a_link_to_the_repository_is_told_so(
    repo: vfs.Repo, tmp_path: Path
) -> None:
    # the tree was known by the path given: through a link, the inner run found the
    # pipeline lock taken and blamed "another dvfs command" with this process's own pid
    root = repo.root
    assert root is not None
    (tmp_path / "link").symlink_to(root)
    with vfs.track(repo, message="outer") as outer:
        inner = vfs.track(tmp_path / "link", message="inner", name="inner")
        with pytest.raises(vfs.UsageError, match=r"already being tracked .* do not nest"), inner:
            pass
        outer.output("model.bin").write_bytes(b"w")
    assert outer.version is not None and outer.version.number == 2
    fsck_clean(root)


def test_an_absolute_path_through_a_link_to_the_repository_is_inside_it(
    repo: vfs.Repo, tmp_path: Path
) -> None:
    # a repository known through a link (a home directory on a cluster) was said to
    # lie outside itself, where `repo.add` and the commands take the same path
    root = repo.root
    assert root is not None
    (tmp_path / "link").symlink_to(root)
    with vfs.track(tmp_path / "link", message="through the link") as r:
        r.input(root / "data" / "train")  # as os.getcwd() gives it: the real path
        r.output(root / "model.bin").write_bytes(b"w")
    with vfs.track(repo, message="to the link", name="back") as r:
        r.input(tmp_path / "link" / "data" / "train")
        r.output(tmp_path / "link" / "model2.bin").write_bytes(b"w")
    assert repo.read_bytes("model2.bin") == b"w" and repo.read_bytes("model.bin", "v2") == b"w"
    outside = tmp_path / "elsewhere.bin"
    with pytest.raises(vfs.UsageError, match="is outside the repository"), track(repo) as r:
        r.output(outside)
    fsck_clean(root)


def test_a_damaged_runs_file_is_found_before_the_block_and_before_anything_is_written(
    repo: vfs.Repo,
) -> None:
    # it was read after metrics.json and its history had been written, at the end of
    # the block: hours of training, then FormatError, the new metrics files left there
    root = repo.root
    assert root is not None
    (root / "dvfs.runs").write_text("garbage\n")
    ran = False
    with pytest.raises(vfs.DvfsError, match=r"dvfs\.runs"), track(repo) as r:
        ran = True
    assert not ran
    (root / "dvfs.runs").unlink()
    with pytest.raises(vfs.DvfsError, match=r"dvfs\.runs"), track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
        r.output("model.bin").write_bytes(b"w")
        (root / "dvfs.runs").write_text("garbage\n")  # damaged while the run ran
    assert not (root / "metrics.json").exists() and not (root / "metrics.steps.jsonl").exists()
    assert [v.number for v in repo.versions()] == [1]
    assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    fsck_clean(root)


def test_more_inputs_or_outputs_than_a_run_records_are_refused_when_given(
    repo: vfs.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the bound of a stage's record was met at the end of the block, after the outputs
    # and metrics had been staged: "malformed pipeline: deps is not a list of at most
    # 10,000", and nothing recorded
    root = repo.root
    assert root is not None
    monkeypatch.setattr(version_codec, "MAX_PATHS", 4)  # (10,000: as many files to make)
    for i in range(5):
        (root / "data" / "train" / f"{i}.csv").write_text(f"{i}\n")
    assert_ok(run(root, "add", "data"))
    assert_ok(run(root, "commit", "-m", "more"))
    with track(repo) as r:
        for i in range(4):
            r.input(f"data/train/{i}.csv")
        with pytest.raises(vfs.UsageError, match=r"more than 4 inputs: give their directory"):
            r.input("data/train/4.csv")
        r.input("data/train/3.csv")  # (given again: still one)
        r.log_metrics({"loss": 1.0}, step=0)
        r.output("a.bin").write_bytes(b"a")
        r.output("b.bin").write_bytes(b"b")
        with pytest.raises(vfs.UsageError, match=r"more than 4 outputs, its metrics files incl"):
            r.output("c.bin")
    assert r.version is not None and r.version.number == 3
    fsck_clean(root)


def test_a_name_no_version_holds_is_refused_when_given_not_after_the_run(
    repo: vfs.Repo,
) -> None:
    # `.versions` at the top, or `.git` in any spelling, were found when dvfs.runs was
    # written at the end of the block (ReservedName, the metrics files left there)
    root = repo.root
    assert root is not None
    (root / "sub" / ".git").mkdir(parents=True)
    (root / "sub" / ".git" / "HEAD").write_text("ref\n")
    (root / ".versions").mkdir()
    (root / ".versions" / "x").write_text("v\n")
    with track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
        for given in (".versions/x", "sub/.git/HEAD", "sub/.GIT/HEAD"):
            with pytest.raises(vfs.UsageError, match="dvfs never stores the name"):
                r.input(given)
        for given in (".versions/o.bin", ".Git/o.bin"):
            with pytest.raises(vfs.UsageError, match="dvfs never stores the name"):
                r.output(given)
        r.output("model.bin").write_bytes(b"w")
    assert r.version is not None and r.version.number == 2
    for given in (".versions/m.json", "sub/.git/m.json", ".dvfs/m.json"):
        with pytest.raises(vfs.UsageError, match="dvfs never stores the name"):
            vfs.track(repo, message="x", metrics=given)
    fsck_clean(root)


def test_ctrl_c_while_the_run_waits_for_the_repository_lock_stops_the_wait(
    repo: vfs.Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the Ctrl-C was held while the run waited for another command's lock, as long as
    # DVFS_LOCK_TIMEOUT says (the wait then failed with LockBusy, the Ctrl-C lost)
    root = repo.root
    assert root is not None

    def interrupted(seconds: float) -> None:  # the lock's wait, between two tries
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(
        lock, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=interrupted)
    )
    monkeypatch.setenv("DVFS_LOCK_TIMEOUT", "2")
    with pytest.raises(KeyboardInterrupt), repo.repository.locked(), track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
        r.output("model.bin").write_bytes(b"w")
    monkeypatch.undo()
    assert [v.number for v in repo.versions()] == [1]
    assert not (root / "metrics.json").exists() and not (root / "dvfs.runs").exists()
    fsck_clean(root)


def test_two_metrics_of_one_name_in_one_call_are_refused_not_one_dropped(
    repo: vfs.Repo,
) -> None:
    # names are recorded as text: {1: 0.5, "1": 0.6} recorded 1 = 0.6, the 0.5 dropped
    with track(repo) as r:
        with pytest.raises(vfs.UsageError, match=r"metric 1 is given twice \(as 1 and '1'\)"):
            r.log_metrics({1: 0.5, "1": 0.6})  # type: ignore[dict-item]
        r.log_metrics({1: 0.5}, step=0)  # type: ignore[dict-item]
        r.log_metrics({"1": 0.6}, step=1)  # (in two calls: the later value is the last)
    assert r.version is not None
    assert json.loads(repo.read_text("metrics.json")) == {"1": 0.6, "step": 1}
    assert repo.root is not None
    fsck_clean(repo.root)


def test_a_run_drops_another_run_whose_outputs_hold_or_lie_in_its_own(repo: vfs.Repo) -> None:
    # Only a run claiming the very same path was dropped: one whose output folder held
    # the new run's output kept a record of that folder as it was, which the new
    # version no longer holds ("stage a: models is not as its last run made it").
    root = repo.root
    assert root is not None
    for first, second in (("models", "models/m.bin"), ("out/m.bin", "out")):
        with vfs.track(repo, message="a", name="a", metrics="a.json") as r:
            r.log_metrics({"acc": 0.5})
            out = r.output(first)
            out.parent.mkdir(parents=True, exist_ok=True)
            if first == "models":
                out.mkdir()
                (out / "m.bin").write_text("a\n")
            else:
                out.write_text("a\n")
        with warnings.catch_warnings():
            warnings.simplefilter("error", vfs.DvfsWarning)
            with vfs.track(repo, message="b", name="b", metrics="b.json") as r:
                r.log_metrics({"acc": 0.9})
                out = r.output(second)
                if second == "out":
                    (out / "m.bin").write_text("b\n")
                else:
                    out.write_text("b\n")
        v = r.version
        assert v is not None
        stages = repo.repository.history.version(bytes.fromhex(v.id)).pipeline
        assert [s.name for s in stages] == ["b"]
        said = assert_ok(run(root, "lineage", second)).out
        assert "stage b made" in said, said
        assert "dvfs.runs" in (root / "dvfs.runs").read_text()  # (the header)
        assert "\n  a:\n" not in (root / "dvfs.runs").read_text()
        assert assert_ok(run(root, "status", "--json")).json()["staged"] == []
    fsck_clean(root)


def test_a_run_the_runs_file_cannot_hold_leaves_nothing_written(repo: vfs.Repo) -> None:
    # dvfs.runs holds as many stages as it can: the run's record was found not to fit
    # after its metrics files had been written into the working tree, and were left.
    root = repo.root
    assert root is not None
    with vfs.track(repo, message="one", name="s0", metrics="m/0.json") as r:
        r.log_metrics({"acc": 0.5})
        (root / "o").mkdir()
        r.output("o/0").write_text("0\n")
    assert r.version is not None
    (s0,) = repo.repository.history.version(bytes.fromhex(r.version.id)).pipeline
    full = {
        f"s{n}": s0._replace(name=f"s{n}", outs=((f"o/{n}".encode(), b"\1" * 32),), metrics=())
        for n in range(version_codec.MAX_STAGES)
    }
    (root / "dvfs.runs").write_bytes(runs_file.dump(full))
    assert_ok(run(root, "add", "dvfs.runs"))
    assert_ok(run(root, "commit", "-m", "many runs"))
    with pytest.raises(vfs.DvfsError, match="stages") as got, track(repo) as r:
        r.log_metrics({"loss": 1.0}, step=0)
        r.output("model.bin").write_bytes(b"w")
    assert str(got.value) == (
        "run train cannot go into dvfs.runs (malformed pipeline: not a list of at most 1,024 "
        "stages): nothing was recorded"
    )
    assert not (root / "metrics.json").exists() and not (root / "metrics.steps.jsonl").exists()
    assert [v.number for v in repo.versions(limit=1)] == [3]
    said = assert_ok(run(root, "status", "--json")).json()
    assert said["staged"] == [] and said["modified"] == [], said
    fsck_clean(root)
