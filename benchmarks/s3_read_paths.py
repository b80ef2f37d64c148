"""Server and client CPU of the ways a pack can be read from S3 (SeaweedFS), side by side.

    python benchmarks/s3_read_paths.py [--workdir DIR] [--packs N]

Uploads N packs of 16 MiB of random bytes to a local SeaweedFS, then reads them all
several ways, page cache dropped before each (root), printing for each the wall time,
this process's CPU seconds and the server's: boto3 whole GETs read in 1 MiB pieces
(``bench_mount``'s baseline) with 8 and with 3 threads; boto3 ranged GETs cut as a
sequential mount read cuts a pack (its first 1 MiB alone, then the rest); and dvfs's
own ``S3Backend.get_parts`` (1 MiB pieces received into aligned buffers) on whole packs
and cut the same way.

What it showed (24 packs, two runs of two rounds, load 8-10 from other work): the
server spent 0.70-0.88 CPU-s serving dvfs's ``get_parts`` of whole packs against
0.82-1.11 for boto3's whole GETs, and dvfs's client 0.21-0.29 against 0.32-0.48: the
way dvfs reads the socket (1 MiB ``readinto``, one connection per stream) costs the
server nothing more. Cutting each pack in two GETs (its first 1 MiB alone) cost the
server 0.94-1.15, which a sequential mount read pays for the pack it starts in only
(63 GETs for 62 packs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from measure import cpu_seconds
from seaweed import SeaweedFS

MIB = 1 << 20
PACK = 16 * MIB
BUCKET = "dvfs-read-paths"


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/dvfs-s3-read-paths"))
    ap.add_argument("--packs", type=int, default=24)
    args = ap.parse_args()
    server = SeaweedFS(args.workdir / "weed")
    server.start()
    try:
        run(server, args.packs)
    finally:
        server.stop()


def run(server: SeaweedFS, packs: int) -> None:
    import boto3
    from botocore.config import Config

    os.environ.update(server.env())
    server.make_bucket(BUCKET)
    client = boto3.client(
        "s3", endpoint_url=server.endpoint, region_name="us-east-1",
        config=Config(max_pool_connections=16),
    )  # fmt: skip
    keys = [f"packs/p{i:03d}" for i in range(packs)]
    for k in keys:
        client.put_object(Bucket=BUCKET, Key=k, Body=os.urandom(PACK))
    from vfs.backends import open_backend

    ours = open_backend(f"s3://{BUCKET}", endpoint_url=server.endpoint)

    def whole(k: str) -> int:
        body = client.get_object(Bucket=BUCKET, Key=k)["Body"]
        got = 0
        while block := body.read(MIB):
            got += len(block)
        return got

    def cut(k: str) -> int:
        got = 0
        for rng in (f"bytes=0-{MIB - 1}", f"bytes={MIB}-{PACK - 1}"):
            body = client.get_object(Bucket=BUCKET, Key=k, Range=rng)["Body"]
            while block := body.read(MIB):
                got += len(block)
        return got

    def parts(k: str) -> int:
        return sum(len(p) for p in ours.get_parts(k, 0, [MIB] * (PACK // MIB)))

    def parts_cut(k: str) -> int:
        got = sum(len(p) for p in ours.get_parts(k, 0, [MIB]))
        return got + sum(len(p) for p in ours.get_parts(k, MIB, [MIB] * (PACK // MIB - 1)))

    ways: list[tuple[str, Callable[[str], int], int]] = [
        ("boto3 whole, 8 threads", whole, 8),
        ("boto3 whole, 3 threads", whole, 3),
        ("boto3 1 MiB + rest, 3 threads", cut, 3),
        ("dvfs get_parts whole, 3 threads", parts, 3),
        ("dvfs get_parts 1 MiB + rest, 3 threads", parts_cut, 3),
        ("dvfs get_parts whole, 8 threads", parts, 8),
    ]
    print(f"{packs} packs of 16 MiB; load {os.getloadavg()[0]:.2f}")
    print(f"{'way':42} {'wall s':>7} {'client CPU s':>13} {'server CPU s':>13}")
    assert server.proc is not None
    for _ in range(2):
        for name, fn, threads in ways:
            drop_caches()
            own, srv = time.process_time(), cpu_seconds(server.proc.pid)
            started = time.perf_counter()
            with ThreadPoolExecutor(threads) as pool:
                total = sum(pool.map(fn, keys))
            wall = time.perf_counter() - started
            assert total == packs * PACK
            own, srv = time.process_time() - own, cpu_seconds(server.proc.pid) - srv
            print(f"{name:42} {wall:7.2f} {own:13.2f} {srv:13.2f}")
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
