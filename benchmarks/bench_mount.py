"""The mount's figures: start-up, metadata, sequential and random reads, bytes fetched.

    python benchmarks/bench_mount.py [--workdir DIR] [--size-mib N] [--files N] [--keep]

One repository is built with the library (``--files`` small files in 50 directories
and one file of ``--size-mib`` MiB of random bytes) and pushed to a directory remote.
Then, each on a fresh daemon (``dvfs mount --foreground``):

- **mount**: seconds until the mount point is mounted, for the repository and for
  the URL (which fetches every version and tree first);
- **ls -lR**: walking every small file's attributes, cold (new daemon) and warm;
- **sequential read** of the big file (``cat > /dev/null``): repository mount
  (local store), URL mount cold (every chunk from the remote), URL mount from the
  chunk cache (a new daemon, so the memory is empty), and the page cache;
  reading the same bytes from the local disk is the baseline;
- **random reads**: 100 reads of 4 KiB at random offsets on a cold URL mount: the
  latency per read, and the bytes fetched from the remote (what the chunk cache
  holds afterwards) against the bytes read, the chunks touched and the whole file.

It prints a table and never fails on a timing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from vfs import remotes, sync, workflow  # noqa: E402  (this checkout, not an installed one)
from vfs.repo import Repository  # noqa: E402
from vfs.worktree import Workers  # noqa: E402

MiB = 1024 * 1024
DVFS = [sys.executable, "-P", "-m", "vfs.cli"]


def build(root: Path, remote: Path, files: int, size_mib: int) -> None:
    """The repository and its pushed copy (not timed)."""
    repo = Repository.init(root)
    rng = random.Random(1)
    for i in range(files):
        p = root / "data" / "small" / f"d{i % 50:02d}" / f"f{i:05d}.txt"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randrange(100, 4000)))
    with open(root / "data" / "big.bin", "wb") as f:
        for _ in range(size_mib):
            f.write(rng.randbytes(MiB))
    with Workers() as w:
        workflow.add(repo, [str(root / "data")], w)
        workflow.commit(repo, "bench", {})
        spec = remotes.RemoteSpec("origin", remote.as_uri())
        remotes.add_remote(repo, spec)
        sync.push(repo, spec, [], w)


@contextmanager
def mount(source: str, mnt: Path, cache: Path, log: Path) -> Iterator[float]:
    """A foreground daemon; yields the seconds it took to mount."""
    mnt.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "XDG_CACHE_HOME": str(cache.parent)}
    started = time.perf_counter()
    with open(log, "ab") as err:
        proc = subprocess.Popen(
            [*DVFS, "mount", "--foreground", source, str(mnt), "--cache-dir", str(cache)],
            stdout=err, stderr=err, env=env, cwd="/",
        )  # fmt: skip
    try:
        while not os.path.ismount(mnt):
            if proc.poll() is not None:
                raise SystemExit(f"the daemon exited: see {log}")
            time.sleep(0.005)
        yield time.perf_counter() - started
    finally:
        subprocess.run(["fusermount3", "-u", str(mnt)], check=False, capture_output=True)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            subprocess.run(["fusermount3", "-uz", str(mnt)], check=False, capture_output=True)
            proc.kill()
            proc.wait()


def timed(cmd: list[str]) -> float:
    """Seconds a command takes (its output discarded)."""
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def fetched(cache: Path) -> int:
    """Bytes fetched from the remote so far: what the (large enough) chunk cache holds."""
    return sum(f.stat().st_size for f in (cache / "chunks").glob("*/*"))


def touched(root: Path, offsets: list[int], length: int) -> tuple[int, int]:
    """(count, bytes) of the chunks of the big file that reads at ``offsets`` overlap."""
    hist = Repository(root).history
    head = hist.head_id()
    assert head is not None
    entry = hist.lookup(hist.version(head).tree, b"data/big.bin")
    assert entry is not None
    hit: dict[int, int] = {}
    start = 0
    for i, c in enumerate(entry.chunks):
        if any(off < start + c.size and off + length > start for off in offsets):
            hit[i] = c.size
        start += c.size
    return len(hit), sum(hit.values())


def rate(size: int, seconds: float) -> str:
    return f"{size / MiB / seconds:8.1f} MiB/s"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work" / "mount")
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--files", type=int, default=5000)
    p.add_argument("--keep", action="store_true")
    a = p.parse_args()
    work = a.workdir.absolute()
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    root, remote = work / "repo", work / "remote"
    print(f"building {a.files} small files and {a.size_mib} MiB in {work} ...", flush=True)
    build(root, remote, a.files, a.size_mib)
    big = root / "data" / "big.bin"
    size = big.stat().st_size
    rows: list[tuple[str, str]] = []
    try:
        rows.append(("read from local disk (baseline)", rate(size, timed(["cat", str(big)]))))
        with mount(str(root), work / "m-repo", work / "c-repo", work / "repo.log") as t:
            rows.append(("mount, repository", f"{t:8.3f} s"))
            rows.append(("ls -lR, cold", f"{timed(['ls', '-lR', str(work / 'm-repo')]):8.3f} s"))
            rows.append(("ls -lR, warm", f"{timed(['ls', '-lR', str(work / 'm-repo')]):8.3f} s"))
            data = work / "m-repo" / "data" / "big.bin"
            rows.append(("read, repository mount", rate(size, timed(["cat", str(data)]))))
            rows.append(("read again, page cache", rate(size, timed(["cat", str(data)]))))
        url = remote.as_uri()
        with mount(url, work / "m-url", work / "c-url", work / "url.log") as t:
            rows.append(("mount, URL (fetches metadata)", f"{t:8.3f} s"))
            data = work / "m-url" / "data" / "big.bin"
            rng = random.Random(2)
            offsets = [rng.randrange(size - 4096) for _ in range(100)]
            started = time.perf_counter()
            with open(data, "rb") as f:
                for off in offsets:
                    f.seek(off)
                    f.read(4096)
            per_read = (time.perf_counter() - started) / len(offsets) * 1000
            got = fetched(work / "c-url")
            count, chunk_bytes = touched(root, offsets, 4096)
            rows.append(("random 4 KiB read, cold URL mount", f"{per_read:8.2f} ms each"))
            rows.append((
                "  fetched for 100 x 4 KiB",
                f"{got / MiB:8.1f} MiB: {got / chunk_bytes:.2f}x the {count} chunks the reads "
                f"touch, {got / size:.0%} of the file",
            ))  # fmt: skip
        with mount(url, work / "m-url", work / "c-url-cold", work / "cold.log"):
            data = work / "m-url" / "data" / "big.bin"
            rows.append(("read, URL mount, cold (remote)", rate(size, timed(["cat", str(data)]))))
            ratio = fetched(work / "c-url-cold") / size
            rows.append(("  bytes fetched / file size", f"{ratio:8.2f}"))
        with mount(url, work / "m-url", work / "c-url-cold", work / "warm.log"):
            data = work / "m-url" / "data" / "big.bin"
            rows.append(("read, URL mount, chunk cache", rate(size, timed(["cat", str(data)]))))
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print()
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
