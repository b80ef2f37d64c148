"""A small pipeline for the pipeline tests: data, two stage scripts, params.

``prepare`` upper-cases ``data/*.csv`` into ``prepared/``; ``train`` reads
``prepared/`` and ``params.yaml`` and writes ``model.bin`` and ``metrics.json``. Each
script appends its name to a log outside the repository (given on its command
line), so a test can tell whether a command ran or its outputs were restored.

``trained`` is a repository holding v1 (the raw data), v2 (the pipeline run, with
``--param note=first``) and v3 (one more data file, the pipeline run again). It is
made once per session (``tests/conftest.py`` loads this module as a plugin) and
copied for each test, as a user may copy a repository with ``cp -a``: making it
costs a dozen commands.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Repo, add_in_process, init_repo

PY = sys.executable

PREPARE = """
import os, sys
open(sys.argv[1], "a").write("prepare\\n")
os.makedirs("prepared", exist_ok=True)
for f in sorted(os.listdir("data")):
    data = open(os.path.join("data", f)).read()
    open(os.path.join("prepared", f), "w").write(data.upper())
print("prepared", len(os.listdir("data")))
"""

TRAIN = """
import json, os, sys, yaml
open(sys.argv[1], "a").write("train\\n")
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
size = sum(len(open(os.path.join("prepared", f)).read()) for f in os.listdir("prepared"))
open("model.bin", "w").write(f"model {size} {lr}")
json.dump({"acc": round(0.5 + lr, 6), "loss": {"train": size}}, open("metrics.json", "w"))
print("trained")
"""


def pipeline_repo(repo: Repo, log: Path, commit: bool = True) -> Repo:
    """Data committed as v1, the scripts and params written, the two stages defined."""
    for i in range(3):
        repo.write(f"data/f{i}.csv", f"row {i}\n")
    add_in_process(repo, "data")
    if commit:
        repo.commit("raw data")
    repo.write("prep.py", PREPARE)
    repo.write("train.py", TRAIN)
    repo.write("params.yaml", "# training\ntrain:\n  lr: 0.01  # learning rate\n  epochs: 3\n")
    repo.write(
        "dvfs.yaml",
        "# the pipeline\n"
        "stages:\n"
        "  prepare:\n"
        f"    cmd: [{json.dumps(PY)}, prep.py, {json.dumps(str(log))}]\n"
        "    deps: [data, prep.py]\n"
        "    outs: [prepared]\n"
        "  train:\n"
        f"    cmd: [{json.dumps(PY)}, train.py, {json.dumps(str(log))}]\n"
        "    deps: [prepared, train.py]\n"
        "    params: [train.lr]\n"
        "    outs: [model.bin]\n"
        "    metrics: [metrics.json]\n",
    )
    return repo


def ran(log: Path) -> list[str]:
    """The commands run since the log was last read (and empty it)."""
    if not log.exists():
        return []
    names = log.read_text().split()
    log.write_text("")
    return names


class PipelineRepo(Repo):
    """A repository whose stages log to ``log``."""

    def __init__(self, root: Path, log: Path) -> None:
        super().__init__(root)
        self.log = log

    def ran(self) -> list[str]:
        """The stages whose commands ran since this was last asked."""
        return ran(self.log)


def staged_paths(repo: Repo) -> set[str]:
    """Paths staged for the next commit (added or modified)."""
    st: dict[str, Any] = repo.status()
    return {c["path"] for c in st["staged"]}


@pytest.fixture(name="trained_template", scope="session")
def trained_template_fixture(tmp_path_factory: pytest.TempPathFactory) -> PipelineRepo:
    """The ``trained`` repository (module docstring), never changed: copied by ``trained``."""
    top = tmp_path_factory.mktemp("trained")
    repo = PipelineRepo(init_repo(top / "repo").root, top / "stages.log")
    pipeline_repo(repo, repo.log)
    repo.ok("repro")
    repo.ok("add", "params.yaml")
    repo.commit("trained", "--param", "note=first")
    repo.write("data/f3.csv", "row 3\n")
    repo.ok("add", "data")
    repo.ok("repro")
    repo.commit("more data")
    return repo


@pytest.fixture(name="trained")
def trained_fixture(trained_template: PipelineRepo, tmp_path: Path) -> PipelineRepo:
    """A copy of the ``trained`` repository for one test (its stages log where the
    template's do: the log is emptied first)."""
    root = tmp_path / "repo"
    shutil.copytree(trained_template.root, root, symlinks=True)
    trained_template.log.write_text("")
    return PipelineRepo(root, trained_template.log)
