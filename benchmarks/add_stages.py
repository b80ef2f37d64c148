"""What adding one large file costs in CPU, stage by stage, beside the whole pipeline.

    python benchmarks/add_stages.py --file big.bin [--workdir DIR] [--runs N]

Each stage of ``dvfs add``'s large-file pipeline (``vfs.worktree.ingest``) is timed
alone over the file's bytes, as the CPU time of the one thread doing it (best of N),
so that other work on the machine inflates it little:

- ``read``: copying the file out of the page cache into one reused page-aligned
  block of the size ``add`` reads (``os.readv``), as the calling thread does;
- ``cut``: FastCDC with the default parameters over the bytes (the cut thread);
- ``chunk ids``: BLAKE3 of each chunk, and ``probe``: the compressibility test each
  chunk gets (``vfs.store.compression.compress``), both on the chunks pool;
- ``digest``: one BLAKE3 of the whole file (the digest thread);
- ``direct write``: writing the bytes with ``O_DIRECT`` into WORKDIR (the pack
  writers), the probe file deleted after.

The stages other than ``read`` work on a read-only mapping of the file, populated
before the clock starts (a benchmark may map a file nobody changes; ``add`` may not,
see ``benchmarks/README.md``). Then the pipeline itself runs in this process (the
``Hasher`` of a fresh store in WORKDIR, as ``dvfs add`` drives it, without the
command's start-up and staging index), N times: its CPU time (all threads, user+sys),
its wall time and what the stages alone do not explain (threads handing work over,
the interpreter, the tails of blocks cut twice). The file should sit on the same
filesystem as WORKDIR and in the page cache, as in ``bench_local.py``.

CPU time shows how much work there is; wall time here depends on how busy the machine
is (the load average is printed). A tool to find the next stage to cut: the figure of
record is ``bench_local.py``'s. It prints and never fails on a timing.
"""

from __future__ import annotations

import argparse
import gc
import mmap
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from floor import cpu_model, load
from tools import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))

import blake3

from vfs.model.chunking import Chunker, ChunkerParams
from vfs.model.ids import hash_bytes
from vfs.store.compression import compress
from vfs.store.objects import ObjectStore
from vfs.worktree.ingest import BLOCK_BYTES, Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.scan import Found

WRITE_BYTES = 4 << 20  # bytes per O_DIRECT write of the direct-write stage


def process_cpu() -> float:
    """CPU seconds (user+sys) of every thread of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def best(runs: int, stage: Callable[[], object]) -> float:
    """The least CPU time of this thread over ``runs`` calls of ``stage``."""
    times = []
    for _ in range(runs):
        started = time.thread_time()
        stage()
        times.append(time.thread_time() - started)
    return min(times)


def read_stage(path: Path) -> None:
    """Read the file into one reused page-aligned block, as ``add``'s reader does."""
    block = mmap.mmap(-1, BLOCK_BYTES)
    view = memoryview(block)
    fd = os.open(path, os.O_RDONLY)
    try:
        while os.readv(fd, [view]):
            pass
    finally:
        os.close(fd)
        view.release()
        block.close()


def write_stage(data: memoryview, workdir: Path) -> None:
    """Write ``data`` with O_DIRECT into a probe file in ``workdir`` (deleted after)."""
    probe = workdir / ".add-stages-probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o600)
    try:
        whole = len(data) // WRITE_BYTES * WRITE_BYTES
        for at in range(0, whole, WRITE_BYTES):
            os.pwrite(fd, data[at : at + WRITE_BYTES], at)
    finally:
        os.close(fd)
        probe.unlink()


def pipeline(path: Path, workdir: Path) -> tuple[float, float, int]:
    """Hash and store ``path`` into a fresh store under ``workdir`` as ``add`` does:
    (CPU seconds of the process, wall seconds, chunks)."""
    root = Path(tempfile.mkdtemp(prefix="add-stages-", dir=workdir))
    try:
        os.link(path, root / "big.bin")
    except OSError:  # (on another filesystem: a copy)
        shutil.copyfile(path, root / "big.bin")
    try:
        store = ObjectStore.create(root / "objects")
        with Workers() as workers:
            hasher = Hasher(root, Chunker(ChunkerParams()), store, workers)
            found = Found(b"big.bin", os.lstat(root / "big.bin"))
            cpu, wall = process_cpu(), time.perf_counter()
            staged = hasher.stage_one(found)
            store.sync()
            cpu, wall = process_cpu() - cpu, time.perf_counter() - wall
        store.close()
        return cpu, wall, len(staged.chunks)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--file", type=Path, required=True, help="the large file to add")
    ap.add_argument("--workdir", type=Path, help="where stores go (default: the file's folder)")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    path: Path = args.file.resolve()
    workdir: Path = (args.workdir or path.parent).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    size = path.stat().st_size
    gc.disable()  # as the command does while it adds
    print(cpu_model())
    print(load())
    print(f"{path}: {size / 2**20:,.0f} MiB, {args.runs} runs each\n")

    chunker = Chunker(ChunkerParams())
    cdc = chunker._cdc  # the cutter add uses, made once
    fd = os.open(path, os.O_RDONLY)
    mapped = mmap.mmap(fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ)
    os.close(fd)
    data = memoryview(mapped)
    ends = [c.offset + c.length for c in cdc.cut_buf(data)]
    chunks = [data[s:e] for s, e in zip([0, *ends[:-1]], ends, strict=True)]

    stages: list[tuple[str, float]] = [
        ("read (page cache to block)", best(args.runs, lambda: read_stage(path))),
        ("cut (FastCDC)", best(args.runs, lambda: list(cdc.cut_buf(data)))),
        ("chunk ids (BLAKE3)", best(args.runs, lambda: [hash_bytes(c) for c in chunks])),
        ("probe (zstd sample)", best(args.runs, lambda: [compress(c) for c in chunks])),
        ("digest (BLAKE3)", best(args.runs, lambda: blake3.blake3(data).digest())),
        ("direct write", best(args.runs, lambda: write_stage(data, workdir))),
    ]
    for piece in chunks:
        piece.release()
    data.release()
    mapped.close()

    total = sum(s for _, s in stages)
    print(f"{'stage':30} {'CPU-s':>7} {'share':>6}")
    for name, seconds in stages:
        print(f"{name:30} {seconds:7.3f} {seconds / total:6.0%}")
    print(f"{'sum of the stages':30} {total:7.3f}   ({len(ends):,} chunks)\n")

    runs = [pipeline(path, workdir) for _ in range(args.runs)]
    cpu = statistics.median(r[0] for r in runs)
    cores = os.cpu_count() or 1
    print("the pipeline, in process:")
    for run_cpu, run_wall, n in runs:
        print(
            f"  CPU {run_cpu:.3f} s, wall {run_wall:.3f} s, "
            f"utilisation {run_cpu / run_wall:.2f}, {n:,} chunks"
        )
    print(
        f"  median CPU {cpu:.3f} s: {cpu - total:+.3f} s beside the stages "
        f"({(cpu - total) / cpu:.0%}); on {cores} cores kept busy it would take "
        f"{cpu / cores:.3f} s"
    )
    print(load())


if __name__ == "__main__":
    main()
