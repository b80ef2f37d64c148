"""A repository with two versions of a small dataset, made through the Python API.

Chunks are small (4 to 64 KiB) so that the larger files span dozens of chunks and a
read can be checked to touch only some of them. Shared by ``test_api.py`` and
``test_fsspec.py``; each builds it once per module.
"""

from __future__ import annotations

import io
import os
import random
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

import vfs
from tests.support.cli import assert_ok, run
from tests.support.s3server import S3Server
from vfs.model.chunking import ChunkerParams
from vfs.model.codec import ChunkRef
from vfs.repo.repository import Repository

SMALL_CHUNKS = ChunkerParams(min_size=4096, avg_size=16384, max_size=65536)


def train_csv(rows: int, seed: int) -> bytes:
    rng = random.Random(seed)
    lines = ["id,city,score"] + [
        f"{i},{rng.choice(['oslo', 'rome', 'lima'])},{rng.random():.6f}" for i in range(rows)
    ]
    return ("\n".join(lines) + "\n").encode()


def parquet_part(start: int, n: int) -> bytes:
    out = io.BytesIO()
    table = pa.table({"id": list(range(start, start + n)), "v": [i * 0.5 for i in range(n)]})
    pq.write_table(table, out)
    return out.getvalue()


@dataclass
class Data:
    """The repository and what each version holds."""

    root: Path
    repo: vfs.Repo
    v1: dict[str, bytes]  # path -> content
    v2: dict[str, bytes]

    def chunks(self, path: str, rev: str = "HEAD") -> list[ChunkRef]:
        hist = self.repo.repository.history
        entry = hist.lookup(hist.version(hist.resolve(rev)).tree, path.encode())
        assert entry is not None
        return list(entry.chunks)


def write(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)


def make_data(root: Path) -> Data:
    """v1 (tag ``first``, params lr and layers) and v2 (train.csv grown, notes.txt added)."""
    Repository.init(root, chunker=SMALL_CHUNKS)
    repo = vfs.Repo(root)
    v1 = {
        "data/train.csv": train_csv(30_000, 1),
        "data/labels.csv": b"id,label\n1,cat\n2,dog\n",
        "data/parquet/part-0.parquet": parquet_part(0, 1000),
        "data/parquet/part-1.parquet": parquet_part(1000, 500),
    }
    write(root, v1)
    os.symlink("labels.csv", root / "data" / "link.csv")
    repo.add(["data"])
    repo.commit("first data", params={"lr": 0.001, "layers": [64, 64]}, tag="first")
    v2 = dict(v1)
    v2["data/train.csv"] = v1["data/train.csv"] + train_csv(2_000, 2).split(b"\n", 1)[1]
    v2["notes.txt"] = b"more rows\n"
    write(root, {k: v2[k] for k in ("data/train.csv", "notes.txt")})
    repo.add(["data/train.csv", "notes.txt"])
    repo.commit("more rows")
    return Data(root, repo, v1, v2)


def push_all(root: Path, s3_server: S3Server) -> str:
    """Push every branch and tag of ``root`` to a fresh prefix of the shared bucket; its URL."""
    url = f"s3://{s3_server.make_prefix()}/ds"
    keys = {"AWS_ACCESS_KEY_ID": s3_server.access_key,
            "AWS_SECRET_ACCESS_KEY": s3_server.secret_key}  # fmt: skip
    assert_ok(run(root, "remote", "add", "origin", url,
                  "--endpoint-url", s3_server.endpoint, "--local"))  # fmt: skip
    assert_ok(run(root, "push", "--all", "--tags", env=keys))
    return url
