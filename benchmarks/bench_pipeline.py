"""dvfs pipelines against DVC's on one machine: the same pipeline, the same data.

    python benchmarks/bench_pipeline.py [--workdir DIR] [--dvfs CMD] [--scale F] [--keep]

The data is the 20,000 small files of ``bench_local.py`` (``small/``), added and
committed by each tool. The pipeline has 21 stages: 20 in 4 layers of 5 (a layer-1
stage reads 40 of the 200 data directories, every later stage the outputs of two
stages of the layer before; each is a short Python script that reads every byte of
its deps and writes a small JSON output) and ``big``, whose output is 1 GiB of
seeded random bytes (``params.yaml``: ``big.seed``). Each tool runs it once before the
steps (not timed) and commits the result. Steps, each for dvfs and then for DVC:

- **repro, all fresh**: `dvfs repro` / `dvc repro` with nothing changed (median of
  ``--runs``);
- **one leaf dep changed**: one data file changed, then `repro` (3 layers below it run);
- **run-cache restore of 1 GiB**: `big.seed` 1 -> 2 and `repro` (not timed), then
  back to 1 and `repro` (timed): seed 1's output comes back without running the stage.
  A `sync` right after is timed too and printed: what each tool left to write back
  (dvfs syncs the filesystem before it returns; DVC's copy may still be in the page
  cache, on a disk slower than the rest of DVC's run);
- **dag --format dot**: `dvfs dag --format dot` / `dvc dag --dot` (median of ``--runs``);
- **8 independent 2 s stages**: `dvfs repro --force` serial, then with `--jobs 2` (dvfs
  against itself: DVC runs stages one at a time).

Every stage script logs its own run time (from the start of its process, interpreter
start-up included, to its end: both read since boot, ``/proc/self/stat`` and
``/proc/uptime``), so the leaf-change step also reports each tool's **overhead**: its
wall time minus the time its stages' commands ran. Targets (dvfs / DVC): fresh repro
<= 0.2, the leaf change's overhead <= 0.5, the 1 GiB restore <= 0.5, dag <= 0.2, and
``--jobs 2`` <= 0.6 of the serial time. Outputs are checked after each step (the
restored 1 GiB file against its digest), so a fast step that did nothing is not a
result.

It prints and never fails on a timing: benchmarks are not tests. Run it on a quiet
machine (``uptime`` load below 1); ``--runs`` repeats the short steps.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import time
from pathlib import Path

from measure import Measurement, run_all, settle, unwind_on_sigterm
from results import render
from tools import REPO_ROOT, Dvc, Dvfs, SetupError, Tool, dvfs_command, ensure_dvc, must
from workload import Workload, write_small

LAYERS = 4
WIDTH = 5
LEAF = "small/d000/f00000.csv"
MIB = 1 << 20

# A stage: read every byte of its deps, write a small JSON of what it read.
STAGE = """
import hashlib, json, os, sys
out, log, deps = sys.argv[1], sys.argv[2], sys.argv[3:]
h, n = hashlib.blake2b(), 0
for dep in deps:
    paths = [dep] if os.path.isfile(dep) else sorted(
        os.path.join(d, f) for d, _, fs in os.walk(dep) for f in fs)
    for p in paths:
        with open(p, "rb") as fh:
            data = fh.read()
        h.update(data)
        n += len(data)
os.makedirs(os.path.dirname(out), exist_ok=True)
json.dump({"deps": deps, "bytes": n, "digest": h.hexdigest()}, open(out, "w"))
with open("/proc/self/stat") as f:  # started: clock ticks since boot (the interpreter too)
    began = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
with open("/proc/uptime") as f:  # now: seconds since boot
    now = float(f.read().split()[0])
with open(log, "a") as f:
    f.write(f"{out} {now - began:.6f}\\n")
"""

# The big stage: `size` MiB of seeded random bytes.
BIG = """
import os, random, sys, yaml
out, log = sys.argv[1], sys.argv[2]
p = yaml.safe_load(open("params.yaml"))["big"]
rng = random.Random(p["seed"])
os.makedirs(os.path.dirname(out), exist_ok=True)
with open(out, "wb") as f:
    for _ in range(p["size_mib"] // 8):
        f.write(rng.randbytes(8 << 20))
with open("/proc/self/stat") as f:
    began = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
with open("/proc/uptime") as f:
    now = float(f.read().split()[0])
with open(log, "a") as f:
    f.write(f"{out} {now - began:.6f}\\n")
"""

SLEEPER = """
import sys, time
time.sleep(2)
open(sys.argv[1], "w").write("slept")
"""


def stages(work: Workload, log: Path, python: str) -> dict[str, dict[str, object]]:
    """The 21 stages, as both tools write them (``cmd`` as text: DVC's only form)."""
    out: dict[str, dict[str, object]] = {}
    per = max(1, work.dirs // WIDTH)
    for layer in range(1, LAYERS + 1):
        for i in range(WIDTH):
            name = f"l{layer}_{i}"
            if layer == 1:
                deps = [f"small/d{d:03d}" for d in range(i * per, min(work.dirs, (i + 1) * per))]
            else:
                deps = [f"out/l{layer - 1}_{i}.json", f"out/l{layer - 1}_{(i + 1) % WIDTH}.json"]
            target = f"out/{name}.json"
            out[name] = {
                "cmd": f"{python} stage.py {target} {log} {' '.join(deps)}",
                "deps": ["stage.py", *deps],
                "outs": [target],
            }
    out["big"] = {
        "cmd": f"{python} big.py out/big.bin {log}",
        "deps": ["big.py"],
        "params": ["big.seed", "big.size_mib"],
        "outs": ["out/big.bin"],
    }
    return out


def sleepers(python: str) -> dict[str, dict[str, object]]:
    """Eight independent stages of 2 seconds each."""
    return {
        f"sleep{i}": {"cmd": f"{python} sleeper.py s{i}.out", "deps": ["sleeper.py"],
                      "outs": [f"s{i}.out"]}
        for i in range(8)
    }  # fmt: skip


def write_pipeline(tool: Tool, pipeline: dict[str, dict[str, object]], seed: int, mib: int) -> None:
    """The stage file (dvfs.yaml or dvc.yaml), params.yaml and the scripts."""
    name = "dvfs.yaml" if tool.name == "dvfs" else "dvc.yaml"
    (tool.root / name).write_text(json.dumps({"stages": pipeline}, indent=1) + "\n")
    set_big(tool, seed, mib)
    (tool.root / "stage.py").write_text(STAGE)
    (tool.root / "big.py").write_text(BIG)
    (tool.root / "sleeper.py").write_text(SLEEPER)


def set_big(tool: Tool, seed: int, mib: int) -> None:
    (tool.root / "params.yaml").write_text(f"big:\n  seed: {seed}\n  size_mib: {mib}\n")


def repro(tool: Tool, *extra: str) -> list[str]:
    return [*tool.command, "repro", *extra]


def commit_all(tool: Tool, message: str) -> None:
    """Record the pipeline's state (not timed)."""
    if tool.name == "dvfs":
        must([*tool.command, "add", "stage.py", "big.py", "sleeper.py", "params.yaml"],
             tool.root, tool.env)  # fmt: skip
        must([*tool.command, "commit", "-m", message], tool.root, tool.env)
    else:
        must(["git", "add", "-A"], tool.root, tool.env)
        must(["git", "commit", "-q", "-m", message], tool.root, tool.env)


def stage_seconds(log: Path) -> float:
    """The stages' own run time logged since the last call (the log is emptied)."""
    if not log.exists():
        return 0.0
    total = sum(float(line.split()[-1]) for line in log.read_text().splitlines() if line)
    log.write_text("")
    return total


def file_digest(path: Path) -> str:
    h = hashlib.blake2b()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            h.update(block)
    return h.hexdigest()


class Bench:
    """The tools, their logs, and the rows gathered."""

    def __init__(self, tools: list[Tool], logs: dict[str, Path], runs: int) -> None:
        self.tools = tools
        self.logs = logs
        self.runs = runs
        self.rows: list[list[str]] = []
        self.figures: dict[str, dict[str, float]] = {}
        self.notes: list[str] = []
        self.big_digest: dict[str, str] = {}

    def timed(self, tool: Tool, argv: list[str]) -> Measurement:
        settle(False)
        m = run_all([argv], tool.root, tool.env)
        if m.failed is not None:
            self.notes.append(f"{tool.name}: `{' '.join(argv)}` failed: {m.failed.output_tail}")
        return m

    def record(self, key: str, title: str, values: dict[str, float], limit: float) -> None:
        a, b = values["dvfs"], values["DVC"]
        ratio = a / b if b > 0 else float("inf")
        self.figures[key] = {**values, "ratio": ratio, "target": limit}
        mark = "met" if ratio <= limit else "NOT MET"
        self.rows.append([title, f"{a:.3f}", f"{b:.3f}", f"{ratio:.2f}", f"<= {limit}", mark])
        print(f"  {title:<44} dvfs {a:7.3f} s  DVC {b:7.3f} s  ratio {ratio:.2f}", flush=True)

    def fresh(self) -> None:
        got = {}
        for tool in self.tools:
            walls = [self.timed(tool, repro(tool)).wall_s for _ in range(self.runs)]
            got[tool.name] = statistics.median(walls)
            if stage_seconds(self.logs[tool.name]) > 0:
                self.notes.append(f"{tool.name}: a stage ran in the fresh repro")
        self.record("fresh", "repro, all fresh (median)", got, 0.2)

    def leaf_change(self) -> None:
        walls, overheads = {}, {}
        for tool in self.tools:
            with open(tool.root / LEAF, "a") as f:
                f.write("999,1,0.5,alpha\n")
            stage_seconds(self.logs[tool.name])
            m = self.timed(tool, repro(tool))
            ran = stage_seconds(self.logs[tool.name])
            walls[tool.name] = m.wall_s
            overheads[tool.name] = m.wall_s - ran
            print(f"    {tool.name}: wall {m.wall_s:.3f} s, stages ran {ran:.3f} s", flush=True)
        self.figures["leaf_wall"] = walls
        self.record("leaf", "repro after a leaf change: overhead", overheads, 0.5)

    def restore_big(self, mib: int) -> None:
        got, synced = {}, {}
        for tool in self.tools:
            set_big(tool, 2, mib)
            self.timed(tool, repro(tool))
            stage_seconds(self.logs[tool.name])
            set_big(tool, 1, mib)
            m = self.timed(tool, repro(tool))
            started = time.perf_counter()
            os.sync()  # what the tool left to write back (dvfs syncs before it returns)
            synced[tool.name] = time.perf_counter() - started
            print(f"    {tool.name}: then sync {synced[tool.name]:.3f} s", flush=True)
            if stage_seconds(self.logs[tool.name]) > 0:
                self.notes.append(f"{tool.name}: the big stage ran instead of being restored")
            digest = file_digest(tool.root / "out" / "big.bin")
            if digest != self.big_digest[tool.name]:
                self.notes.append(f"{tool.name}: THE RESTORED 1 GiB OUTPUT DIFFERS")
            got[tool.name] = m.wall_s
        self.figures["restore_then_sync"] = synced
        self.record("restore", f"run-cache restore of the {mib} MiB out", got, 0.5)

    def dag(self) -> None:
        got = {}
        for tool in self.tools:
            argv = [*tool.command, "dag", "--format", "dot"] if tool.name == "dvfs" else [
                *tool.command, "dag", "--dot"
            ]  # fmt: skip
            got[tool.name] = statistics.median(
                self.timed(tool, argv).wall_s for _ in range(self.runs)
            )
        self.record("dag", "dag --format dot (median)", got, 0.2)

    def jobs(self, tool: Tool) -> None:
        serial = self.timed(tool, repro(tool, "--force", *[f"sleep{i}" for i in range(8)]))
        parallel = self.timed(
            tool, repro(tool, "--force", "--jobs", "2", *[f"sleep{i}" for i in range(8)])
        )
        a, b = parallel.wall_s, serial.wall_s
        ratio = a / b if b > 0 else float("inf")
        self.figures["jobs"] = {"serial": b, "jobs2": a, "ratio": ratio, "target": 0.6}
        mark = "met" if ratio <= 0.6 else "NOT MET"
        self.rows.append(
            ["8 x 2 s stages: --jobs 2 / serial", f"{a:.3f}", f"{b:.3f} (dvfs)", f"{ratio:.2f}",
             "<= 0.6", mark]
        )  # fmt: skip
        print(f"  {'8 x 2 s stages, --jobs 2 vs serial':<44} {a:.3f} s vs {b:.3f} s", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    p.add_argument("--dvfs", help='dvfs command (default: "dvfs" on PATH, else this checkout)')
    p.add_argument("--keep", action="store_true", help="keep the data and both repositories")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data, e.g. 0.05")
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument("--runs", type=int, default=3, help="runs of the short steps (median)")
    p.add_argument("--big-mib", type=int, default=1024, help="size of the big output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Set up, run every step, print the table and write the JSON."""
    args = parse_args(argv)
    unwind_on_sigterm()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    work = Workload.scaled(args.scale, args.seed)
    data, runs = workdir / "pipeline-data", workdir / "pipeline-run"
    mib = max(8, round(args.big_mib * min(1.0, args.scale * 20)) // 8 * 8)
    try:
        ensure_dvc(workdir / "dvc-venv")
        marker = data / ".small.json"
        want = json.dumps({"files": work.files, "dirs": work.dirs, "seed": work.seed})
        if not marker.exists() or marker.read_text() != want:
            shutil.rmtree(data, ignore_errors=True)
            data.mkdir(parents=True)
            write_small(data, work)
            marker.write_text(want)
        shutil.rmtree(runs, ignore_errors=True)
        runs.mkdir()
        env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(runs)}
        dvfs = Dvfs(runs / "dvfs", env, dvfs_command(args.dvfs))
        dvc = Dvc(runs / "dvc", env, workdir / "dvc-venv")
        logs = {t.name: runs / f"stages-{t.name}.log" for t in (dvfs, dvc)}
        python = dvfs.interpreter()  # one interpreter runs both tools' stages (it has yaml)
        big_digest = {}
        for tool in (dvfs, dvc):
            tool.root.mkdir()
            must(["cp", "-a", "--reflink=never", str(data / "small"), str(tool.root)],
                 tool.root, tool.env)  # fmt: skip
            tool.setup()
            for cmd in tool.add_commit("small", "data"):
                must(cmd, tool.root, tool.env)
            write_pipeline(tool, {**stages(work, logs[tool.name], python), **sleepers(python)},
                           1, mib)  # fmt: skip
            started = time.perf_counter()
            must(repro(tool), tool.root, tool.env)
            print(f"{tool.name}: first run of the pipeline {time.perf_counter() - started:.1f} s",
                  flush=True)  # fmt: skip
            commit_all(tool, "pipeline")
            stage_seconds(logs[tool.name])
            big_digest[tool.name] = file_digest(tool.root / "out" / "big.bin")
        bench = Bench([dvfs, dvc], logs, args.runs)
        bench.big_digest = big_digest
        bench.fresh()
        bench.leaf_change()
        bench.restore_big(mib)
        bench.dag()
        bench.jobs(dvfs)
        print()
        print(render([["step", "dvfs s", "DVC s", "ratio", "target", ""], *bench.rows]))
        if bench.notes:
            print("\nnotes:\n" + "\n".join(f"- {n}" for n in bench.notes))
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        out = workdir / f"bench_pipeline-{stamp}.json"
        out.write_text(json.dumps(
            {"when": stamp, "load": os.getloadavg(), "files": work.files, "big_mib": mib,
             "figures": bench.figures, "notes": bench.notes}, indent=2
        ) + "\n")  # fmt: skip
        print(f"\nfigures written to {out}")
    except SetupError as exc:
        raise SystemExit(f"set-up failed: {exc}") from None
    finally:
        if not args.keep:
            shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
