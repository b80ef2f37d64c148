"""dvfs against DVC with a remote: push, clone+pull and re-push, against one SeaweedFS.

    python benchmarks/bench_remote.py [--workdir DIR] [--dvfs CMD] [--scale F] [--keep]

Both tools get the same data (``workload.py``) and a bucket each on one local
SeaweedFS S3 server (``seaweed.py``). Steps, each run for dvfs and then for DVC: push
of 20,000 small files; push of a 1 GiB file; clone and pull of everything into an
empty directory; push after overwriting 64 KiB of the big file and appending 4 KiB.
Adding and committing happen between the steps and are not timed (``bench_local.py``
measures them). For each step: wall time and peak RSS of the tool's processes, the
S3 requests the server answered for the tool's bucket, and how much the bucket grew.
It prints a table with dvfs/DVC ratios and the targets, and writes the figures as
JSON into the work directory.

It prints and never fails on a timing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_local import TRACKED, copy_data, machine
from measure import Measurement, run, settle, unwind_on_sigterm, warm_memory
from results import (
    DVC,
    DVFS,
    MIB,
    Row,
    Target,
    ToolStep,
    cells,
    human,
    render,
    target_lines,
    wall_target,
)
from seaweed import SeaweedFS, weed_binary
from tools import REPO_ROOT, Dvc, Dvfs, SetupError, Tool, dvfs_command, ensure_dvc, must
from workload import Workload, edit_big, ensure_data, tree_digest

from tests.support.loopback import AWS_VARS_TO_CLEAR

BUCKETS = {DVFS: "dvfs-bench", DVC: "dvc-bench"}
S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
REQUESTS_LINE = re.compile(r"(\d+) requests")


def bucket_bytes(server: SeaweedFS, bucket: str) -> int:
    """Total size of the objects in ``bucket`` (anonymous ListObjectsV2, page by page)."""
    total = 0
    token = ""
    while True:
        query = {"list-type": "2", "max-keys": "1000"}
        if token:
            query["continuation-token"] = token
        url = f"{server.endpoint}/{bucket}?{urllib.parse.urlencode(query)}"
        with urllib.request.urlopen(url, timeout=60) as resp:
            root = ET.fromstring(resp.read())
        total += sum(int(el.text or 0) for el in root.iter(f"{S3_NS}Size"))
        token = root.findtext(f"{S3_NS}NextContinuationToken") or ""
        if root.findtext(f"{S3_NS}IsTruncated") != "true" or not token:
            return total


@dataclass
class Remote:
    """One tool's bucket, and its commands for the remote steps."""

    tool: Tool
    server: SeaweedFS
    bucket: str
    clone_dir: Path

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{'dvfs' if self.tool.name == DVFS else 'dvc'}"

    def configure(self) -> None:
        """Point the tool's repository at the bucket (not timed)."""
        t = self.tool
        if t.name == DVFS:
            must([*t.command, "remote", "add", "origin", self.url, "--endpoint-url",
                  self.server.endpoint], t.root, t.env)  # fmt: skip
            return
        for argv in (
            [*t.command, "remote", "add", "-d", "s3remote", self.url],
            [*t.command, "remote", "modify", "s3remote", "endpointurl", self.server.endpoint],
            ["git", "add", ".dvc/config"],
            ["git", "commit", "-q", "-m", "remote"],
        ):
            must(argv, t.root, t.env)

    def push(self) -> list[tuple[Path, list[str]]]:
        return [(self.tool.root, [*self.tool.command, "push"])]

    def clone(self) -> list[tuple[Path, list[str]]]:
        """Commands (with their directories) that make a full working copy from the remote."""
        t, dest = self.tool, self.clone_dir
        if t.name == DVFS:
            argv = [
                *t.command,
                "clone",
                self.url,
                dest.name,
                "--endpoint-url",
                self.server.endpoint,
            ]
            return [(dest.parent, argv)]
        return [
            (dest.parent, ["git", "clone", "-q", str(t.root), dest.name]),
            (dest, [*t.command, "pull"]),
        ]


@dataclass
class Extra:
    """What the server saw of one tool's step."""

    requests: int
    tool_said: str = ""  # dvfs's closing line (it counts its own requests)


@dataclass
class Step:
    """A row of the table: the timing row and, per tool, what the server saw."""

    row: Row
    extra: dict[str, Extra] = field(default_factory=dict)


class Bench:
    """One run: the remotes, and the steps gathered so far."""

    def __init__(self, remotes: list[Remote], pristine: str) -> None:
        self.remotes = remotes
        self.pristine = pristine
        self.steps: list[Step] = []
        self.notes: list[str] = []

    def untimed(self, what: str, commands: list[list[str]], tool: Tool) -> None:
        for argv in commands:
            must(argv, tool.root, tool.env)
        print(f"  ({what}: {tool.name} done)", flush=True)

    def measure(self, remote: Remote, commands: Sequence[tuple[Path, list[str]]]) -> ToolStep:
        """Run ``commands`` and measure them, with the server's view before and after."""
        server, bucket = remote.server, remote.bucket
        settle(False)
        stored_before = bucket_bytes(server, bucket)
        requests_before = server.requests(bucket)
        m = Measurement()
        for cwd, argv in commands:
            m.procs.append(run(argv, cwd, remote.tool.env))
            if m.procs[-1].returncode != 0:
                break
        requests = server.requests(bucket) - requests_before
        step = ToolStep.of(m, stored_before, bucket_bytes(server, bucket))
        step.notes.append(f"requests={requests}")
        return step

    def step(self, key: str, title: str, store: str, clone: bool = False) -> Step:
        """Push (or clone + pull) for each tool in turn and keep the row."""
        row = Row(key, title, store, {})
        out = Step(row)
        for remote in self.remotes:
            name = remote.tool.name
            result = self.measure(remote, remote.clone() if clone else remote.push())
            requests = int(result.notes.pop().split("=")[1])
            said = ""
            if name == DVFS and result.procs:
                lines = [ln for ln in result.procs[-1].output_tail.splitlines() if "requests" in ln]
                said = lines[-1].strip() if lines else ""
            if clone and not result.error:
                same = tree_digest(remote.clone_dir, TRACKED) == self.pristine
                result.notes.append("cloned data verified" if same else "CLONED DATA DIFFERS")
            row.tools[name] = result
            out.extra[name] = Extra(requests, said)
            if result.error:
                self.notes.append(f"{name}, {title}: {result.error}")
            self.notes += [f"{name}, {title}: {n}" for n in result.notes]
            if said:
                self.notes.append(f"{name}, {title}: it said `{said}`")
            state = " FAILED" if result.error else ""
            print(
                f"  {title:<34} {name:<5} {result.wall_s:8.2f} s, {requests} requests{state}",
                flush=True,
            )
        self.steps.append(out)
        return out


HEADER = ["step", "dvfs s", "DVC s", "ratio", "dvfs RSS MiB", "DVC RSS MiB", "ratio"]
HEADER += ["dvfs bucket", "DVC bucket", "ratio", "dvfs req", "DVC req", "ratio"]


def table(steps: list[Step]) -> str:
    """The steps as text: bench_local's columns (the store is the bucket) plus requests."""
    grid = [HEADER]
    for s in steps:
        a, b = s.extra[DVFS].requests, s.extra[DVC].requests
        failed = any(t.error for t in s.row.tools.values())
        grid.append([*cells(s.row), str(a), str(b), "-" if failed or not b else f"{a / b:.3f}"])
    return render(grid)


def targets(steps: list[Step]) -> list[Target]:
    """The goals for remotes, evaluated on the steps of a run."""
    rows = {s.row.key: s.row for s in steps}
    out = [
        wall_target(rows, "push_small", "push of the small files <= 0.2 x DVC", 0.2),
        wall_target(rows, "clone", "clone+pull of everything <= 0.33 x DVC", 0.33),
    ]
    edit = rows.get("push_edit")
    if edit is None or edit.tools[DVFS].error:
        out.append(Target("push after the 64 KiB edit uploads <= 8 MiB", "no figure", None))
    else:
        up, theirs = edit.tools[DVFS].store_delta, edit.tools[DVC].store_delta
        out.append(
            Target(
                "push after the 64 KiB edit uploads <= 8 MiB",
                f"{human(up)} (DVC {human(theirs)})",
                up <= 8 * MIB,
            )
        )
    compared = [r for r in rows.values() if not any(t.error for t in r.tools.values())]
    over = [
        f"{r.title} ({r.tools[DVFS].maxrss_kib // 1024} vs {r.tools[DVC].maxrss_kib // 1024} MiB)"
        for r in compared
        if r.tools[DVFS].maxrss_kib > r.tools[DVC].maxrss_kib
    ]
    out.append(
        Target(
            "peak RSS <= DVC's in every step",
            "every step" if not over else "over in: " + "; ".join(over),
            not over,
        )
    )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    p.add_argument("--dvfs", help='dvfs command (default: "dvfs" on PATH, else this checkout)')
    p.add_argument("--keep", action="store_true", help="keep the data, repositories and server")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data, e.g. 0.05")
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument(
        "--no-warm-memory",
        dest="warm_memory",
        action="store_false",
        help="skip touching free memory once before the steps (see measure.warm_memory)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and targets, write the JSON."""
    args = parse_args(argv)
    unwind_on_sigterm()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    work = Workload.scaled(args.scale, args.seed)
    data, runs = workdir / "data", workdir / "run-remote"
    server = SeaweedFS(runs / "seaweedfs")
    try:
        ensure_dvc(workdir / "dvc-venv", "s3")
        started = time.perf_counter()
        if ensure_data(data, work):
            print(f"generated data in {time.perf_counter() - started:.1f} s", flush=True)
        pristine = tree_digest(data, TRACKED)
        shutil.rmtree(runs, ignore_errors=True)
        server.start()
        print(f"SeaweedFS at {server.endpoint}", flush=True)
        env = {k: v for k, v in os.environ.items() if k not in AWS_VARS_TO_CLEAR}
        env.update(server.env())
        env["GIT_CEILING_DIRECTORIES"] = str(runs)
        dvfs = Dvfs(runs / "dvfs", env, dvfs_command(args.dvfs))
        dvc = Dvc(runs / "dvc", env, workdir / "dvc-venv")
        remotes = []
        for tool in (dvfs, dvc):
            copy_data(data, tool.root)
            tool.setup()
            server.make_bucket(BUCKETS[tool.name])
            remote = Remote(tool, server, BUCKETS[tool.name], runs / f"{tool.name.lower()}-clone")
            remote.configure()
            remotes.append(remote)
        if args.warm_memory:
            print(f"warmed {human(warm_memory())} of free memory", flush=True)
        bench = Bench(remotes, pristine)
        run_steps(bench, work)
        report(bench, work, args, workdir, server)
    except SetupError as exc:
        raise SystemExit(f"set-up failed: {exc}") from None
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(runs, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)


def run_steps(bench: Bench, work: Workload) -> None:
    """Every step, in order (adding and committing in between are not timed)."""
    print(f"running: {work.files} small files, big file {human(work.big_size)}", flush=True)
    for r in bench.remotes:
        bench.untimed("add+commit small files", r.tool.add_commit("small", "small"), r.tool)
    bench.step("push_small", f"push {work.files} small files", "delta")
    for r in bench.remotes:
        bench.untimed("add+commit big file", r.tool.add_commit("big.bin", "big"), r.tool)
    bench.step("push_big", f"push {human(work.big_size)} file", "delta")
    bench.step("clone", "clone+pull everything", "none", clone=True)
    for r in bench.remotes:
        edit_big(r.tool.root / "big.bin", work.seed)
        bench.untimed("edit + add+commit big file", r.tool.add_commit("big.bin", "edit"), r.tool)
    bench.step("push_edit", "push after 64 KiB edit", "delta")


def report(
    bench: Bench, work: Workload, args: argparse.Namespace, workdir: Path, server: SeaweedFS
) -> None:
    """Print the table, the targets and the notes; write everything as JSON."""
    ts = targets(bench.steps)
    print()
    print(table(bench.steps))
    print(
        "\nbucket: growth of the tool's bucket on the server during the step (bytes uploaded"
        " and kept);\nreq: S3 requests the server answered for the tool's bucket"
    )
    print("\ntargets:\n" + target_lines(ts))
    if bench.notes:
        print("\nnotes:\n" + "\n".join(f"- {n}" for n in bench.notes))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = workdir / f"bench_remote-{stamp}.json"
    weed = subprocess.run(
        [weed_binary(), "version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    doc = {
        "when": stamp,
        "machine": machine(),
        "versions": {
            **{r.tool.name: r.tool.version() for r in bench.remotes},
            "SeaweedFS": weed,
        },
        "options": {
            "scale": args.scale,
            "commands": {r.tool.name: r.tool.command for r in bench.remotes},
        },
        "workload": asdict(work),
        "steps": [asdict(s) for s in bench.steps],
        "targets": [asdict(t) for t in ts],
        "notes": bench.notes,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
