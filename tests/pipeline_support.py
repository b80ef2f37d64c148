"""A small pipeline for the pipeline tests: data, two stage scripts, params.

``prepare`` upper-cases ``data/*.csv`` into ``prepared/``; ``train`` reads
``prepared/`` and ``params.yaml`` and writes ``model.bin`` and ``metrics.json``. Each
script appends its name to a log outside the repository (given on its command
line), so a test can tell whether a command ran or its outputs were restored.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.cli_support import Repo

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
    repo.ok("add", "data")
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


def staged_paths(repo: Repo) -> set[str]:
    """Paths staged for the next commit (added or modified)."""
    st: dict[str, Any] = repo.status()
    return {c["path"] for c in st["staged"]}
