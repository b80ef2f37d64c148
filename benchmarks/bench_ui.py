"""``dvfs ui``: first paint of its pages in headless Chromium, and its API, beside the CLI.

    python benchmarks/bench_ui.py [--workdir DIR] [--files N] [--versions N] [--runs N]

Data (seeded, not timed): a repository of ``--versions`` versions (1,000), the first
holding ``--files`` small files (20,000) in one directory ``data/`` plus a CSV, each
later version changing one file and the CSV, made through the Python API.

Steps, each ``--runs`` times (5), the median reported:

| step | dashboard | CLI beside it |
| --- | --- | --- |
| versions page | first paint and the timeline shown | ``dvfs log -n 50 --json`` |
| oldest versions page | the last page of the history shown | ``dvfs log --json`` (all) |
| version page | first paint and 200 files of ``data/`` shown | ``dvfs ls HEAD:data --json`` |
| API, versions | ``GET /api/versions`` (50 rows), server side | |
| API, oldest versions | ``GET /api/versions?offset=N`` (the last page of the history) | |
| API, version | ``GET /api/version?rev=HEAD`` | |
| API, version changes | ``GET /api/version/changes?rev=HEAD`` (asked for after paint) | |
| API, files | ``GET /api/files?rev=HEAD&dir=data`` (200 of them) | |
| API, preview | ``GET /api/preview`` of the CSV (50 rows) | |
| lineage page | a chain of ``--stages`` (20) stages drawn (its own repository) | ``dvfs show`` |

Page timings are the browser's own (``performance``): ``first-contentful-paint`` and
the mark ``dvfs:shown`` the page sets once its content is in the DOM, each on a fresh page
(the browser's cache of the static files stays warm, as for a person reloading).
API timings are each request's wall time over loopback from this process, which
bounds the server's own time from above. CLI timings are each command's wall time,
interpreter start included. The targets of issue 18: first paint < 1 s, API < 100 ms,
the lineage graph of 20 stages drawn < 1 s.

It prints and never fails on a timing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright
from tools import REPO_ROOT

import vfs
from vfs.repo.repository import Repository

CHROMIUM = "/usr/bin/chromium"


def make_repo(root: Path, files: int, versions: int, seed: int) -> None:
    """The data described in the module doc."""
    rng = random.Random(seed)
    Repository.init(root)
    data = root / "data"
    data.mkdir()
    for i in range(files):
        (data / f"f{i:06d}.txt").write_bytes(rng.randbytes(rng.randrange(64, 512)))
    csv = root / "table.csv"
    csv.write_text("id,v\n" + "".join(f"{i},{rng.random():.5f}\n" for i in range(5000)))
    repo = vfs.Repo(root)
    repo.add(["data", "table.csv"])
    repo.commit("v1", params={"lr": 0.1})
    for n in range(2, versions + 1):
        changed = f"data/f{rng.randrange(files):06d}.txt"
        (root / changed).write_bytes(rng.randbytes(200))
        with csv.open("a") as f:
            f.write(f"{5000 + n},{rng.random():.5f}\n")
        repo.add([changed, "table.csv"])
        repo.commit(f"change {n}", params={"lr": round(rng.random(), 3)})
    repo.close()


def make_pipeline(root: Path, stages: int) -> None:
    """A repository whose one version records a chain of ``stages`` stages, each
    copying the output of the one before (made with ``dvfs run``, then committed)."""
    Repository.init(root)
    (root / "s0.txt").write_text("start\n")
    for i in range(1, stages + 1):
        subprocess.run(
            [sys.executable, "-m", "vfs.cli", "run", "-n", f"s{i}", "-d", f"s{i - 1}.txt",
             "-o", f"s{i}.txt", "--", "cp", f"s{i - 1}.txt", f"s{i}.txt"],
            cwd=root, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    repo = vfs.Repo(root)
    repo.add(["."])
    repo.commit(f"{stages} stages")
    repo.close()


def serve(root: Path) -> tuple[subprocess.Popen[str], str]:
    """``dvfs ui ROOT`` started, and the URL it printed."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vfs.cli", "ui", str(root)], cwd=root, env=env,
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()
    return proc, line[line.index("http://") :].split()[0]


def stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def cli_seconds(root: Path, args: list[str], runs: int) -> float:
    """Median wall time of ``dvfs ARGS``."""
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vfs.cli", *args], cwd=root, check=True,
                       stdout=subprocess.DEVNULL)  # fmt: skip
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def api_seconds(url: str, runs: int) -> float:
    """Median wall time of a GET (the first one, which warms caches, printed apart)."""
    t = time.perf_counter()
    urllib.request.urlopen(url, timeout=120).read()
    print(f"  first GET {url.split('/api/')[1]}: {(time.perf_counter() - t) * 1000:.0f}ms")
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        urllib.request.urlopen(url, timeout=60).read()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


PAINT = """() => {
  const p = performance.getEntriesByName('first-contentful-paint')[0];
  const shown = performance.getEntriesByName('dvfs:shown');
  return [p ? p.startTime : null, shown[shown.length - 1].startTime];
}"""


def page_seconds(browser: Browser, url: str, selector: str, runs: int) -> tuple[float, float]:
    """Median first-contentful-paint and content-shown times of a page, in seconds."""
    paints, shown = [], []
    for _ in range(runs + 1):  # the first warms the browser's cache
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector(selector, timeout=60_000)
        fcp, now = page.evaluate(PAINT)
        paints.append((fcp or now) / 1000)
        shown.append(now / 1000)
        page.close()
    return statistics.median(paints[1:]), statistics.median(shown[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work" / "ui")
    ap.add_argument("--files", type=int, default=20_000)
    ap.add_argument("--versions", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--stages", type=int, default=20, help="stages of the lineage graph")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    root = args.workdir / "repo"
    made = args.workdir / "made"  # what the repository was made with, to reuse it
    recipe = f"{args.files} {args.versions} {args.seed}\n"
    if not made.exists() or made.read_text() != recipe:
        if root.exists():
            shutil.rmtree(root)
        made.unlink(missing_ok=True)
        root.parent.mkdir(parents=True, exist_ok=True)
        t = time.perf_counter()
        make_repo(root, args.files, args.versions, args.seed)
        made.write_text(recipe)
        print(f"data: {args.files:,} files, {args.versions} versions "
              f"({time.perf_counter() - t:.1f} s to make, not timed)")  # fmt: skip
    else:
        print(f"data: {args.files:,} files, {args.versions} versions (made before, reused)")
    pipeline = args.workdir / "pipeline"
    if not pipeline.exists():
        try:
            make_pipeline(pipeline, args.stages)
        except BaseException:
            shutil.rmtree(pipeline, ignore_errors=True)
            raise
    server, base = serve(root)
    lineage_server, lineage_base = serve(pipeline)
    try:
        rows: list[tuple[str, float, str, float | None]] = []
        api = f"{base}api/"
        rows.append(("API versions", api_seconds(f"{api}versions", args.runs), "", None))
        last = (args.versions - 1) // 50 * 50  # the offset of the history's last page
        rows.append(("API versions, last page", api_seconds(f"{api}versions?offset={last}",
                                                            args.runs), "", None))  # fmt: skip
        rows.append(("API version", api_seconds(f"{api}version?rev=HEAD", args.runs), "", None))
        rows.append(("API version changes", api_seconds(f"{api}version/changes?rev=HEAD",
                                                        args.runs), "", None))  # fmt: skip
        rows.append(("API files (200)", api_seconds(f"{api}files?rev=HEAD&dir=data",
                                                    args.runs), "", None))  # fmt: skip
        rows.append(("API preview (CSV)", api_seconds(f"{api}preview?rev=HEAD&path=table.csv",
                                                      args.runs), "", None))  # fmt: skip
        log = cli_seconds(root, ["log", "-n", "50", "--json"], args.runs)
        log_all = cli_seconds(root, ["log", "--json"], args.runs)
        ls = cli_seconds(root, ["ls", "HEAD:data", "--json"], args.runs)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
            fcp, shown = page_seconds(browser, f"{base}#/versions", ".timeline li", args.runs)
            rows.append(("versions page: first paint", fcp, "", None))
            rows.append(("versions page: timeline shown", shown, "dvfs log -n 50", log))
            _, shown = page_seconds(
                browser, f"{base}#/versions?offset={last}", ".timeline li", args.runs
            )
            rows.append(("oldest versions page: shown", shown, "dvfs log (all)", log_all))
            fcp, shown = page_seconds(
                browser, f"{base}#/version?rev=HEAD&dir=data", "table.listing tbody tr", args.runs
            )
            rows.append(("version page: first paint", fcp, "", None))
            rows.append(("version page: files shown", shown, "dvfs ls HEAD:data", ls))
            show = cli_seconds(pipeline, ["show", "--json"], args.runs)
            _, shown = page_seconds(
                browser, f"{lineage_base}#/lineage?rev=HEAD", "svg.dag .node", args.runs
            )
            rows.append(
                (f"lineage page: {args.stages} stages drawn", shown, "dvfs show --json", show)
            )
            browser.close()
    finally:
        stop(server)
        stop(lineage_server)
    load = os.getloadavg()
    print(f"median of {args.runs}; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'step':34} {'dashboard':>10}   {'CLI beside it':20} {'CLI':>8}  ratio")
    for name, secs, peer, peer_secs in rows:
        beside = (
            f"{peer:20} {peer_secs * 1000:6.0f}ms  {secs / peer_secs:.2f}x" if peer_secs else ""
        )
        print(f"{name:34} {secs * 1000:8.0f}ms   {beside}")
    print("targets (issue 18): first paint < 1000 ms, each API answer < 100 ms, lineage < 1000 ms")


if __name__ == "__main__":
    main()
