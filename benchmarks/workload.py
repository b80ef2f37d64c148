"""The benchmark's data: seeded, so every run and every tool sees the same bytes.

Layout under a data directory::

    small/d000/f00000.csv     20,000 files of 1-32 KiB in 200 directories; even
    small/d001/f00001.bin     numbers are CSV-like text, odd numbers random bytes
    ...
    big.bin                   one 1 GiB file of random bytes, written in blocks
    .workload.json            the parameters that made it (lets a rerun reuse it)

``scale`` shrinks the file count, the directory count and the big file together, for
quick runs; the edit of the big file (64 KiB overwritten, 4 KiB appended) stays fixed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB

FORMAT = 1  # bump when the generator's output changes, so old data is not reused
MARKER = ".workload.json"
BLOCK = 8 * MIB
EDIT_OVERWRITE = 64 * KIB
EDIT_APPEND = 4 * KIB
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass(frozen=True)
class Workload:
    """What to generate: counts, sizes and the seed."""

    files: int = 20_000
    dirs: int = 200
    min_size: int = 1 * KIB
    max_size: int = 32 * KIB
    big_size: int = 1 * GIB
    seed: int = 1729

    @classmethod
    def scaled(cls, scale: float, seed: int) -> Workload:
        """The full workload with counts and the big file multiplied by ``scale``."""
        full = cls()
        return cls(
            files=max(2, round(full.files * scale)),
            dirs=max(1, round(full.dirs * scale)),
            big_size=max(2 * EDIT_OVERWRITE, round(full.big_size * scale)),
            seed=seed,
        )


def small_path(index: int, dirs: int) -> str:
    """Relative path of small file ``index``: text for even numbers, binary for odd."""
    ext = "csv" if index % 2 == 0 else "bin"
    return f"small/d{index % dirs:03d}/f{index:05d}.{ext}"


def csv_text(rng: random.Random, size: int) -> bytes:
    """CSV-like lines of about ``size`` bytes (exactly ``size`` bytes, cut at the end)."""
    lines = ["id,sensor,value,label\n"]
    total = len(lines[0])
    row = 0
    while total < size:
        line = f"{row},{rng.randrange(10_000)},{rng.random():.6f},{rng.choice(WORDS)}\n"
        lines.append(line)
        total += len(line)
        row += 1
    return "".join(lines).encode()[:size]


def write_small(root: Path, work: Workload) -> None:
    """Write the small files under ``root/small``."""
    rng = random.Random(work.seed)
    for d in range(work.dirs):
        (root / "small" / f"d{d:03d}").mkdir(parents=True, exist_ok=True)
    for i in range(work.files):
        size = rng.randint(work.min_size, work.max_size)
        data = csv_text(rng, size) if i % 2 == 0 else rng.randbytes(size)
        (root / small_path(i, work.dirs)).write_bytes(data)


def write_big(path: Path, work: Workload) -> None:
    """Write the big random file block by block, never holding it in memory."""
    rng = random.Random(work.seed + 1)
    left = work.big_size
    with path.open("wb") as f:
        while left:
            n = min(BLOCK, left)
            f.write(rng.randbytes(n))
            left -= n


def ensure_data(root: Path, work: Workload) -> bool:
    """Generate the data into ``root`` unless it is already there; True if generated."""
    marker = root / MARKER
    wanted = {"format": FORMAT, **asdict(work)}
    if marker.exists():
        if json.loads(marker.read_text()) == wanted:
            return False
        shutil.rmtree(root)  # generated here before, with other parameters
    if root.exists():
        raise SystemExit(f"{root} exists but was not made by this benchmark; delete or move it")
    root.mkdir(parents=True)
    write_small(root, work)
    write_big(root / "big.bin", work)
    marker.write_text(json.dumps(wanted, indent=2) + "\n")
    return True


def edit_big(path: Path, seed: int) -> None:
    """Overwrite 64 KiB in the middle of ``path`` and append 4 KiB, the same bytes per seed."""
    rng = random.Random(seed + 2)
    patch = rng.randbytes(EDIT_OVERWRITE)
    tail = rng.randbytes(EDIT_APPEND)
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2 - EDIT_OVERWRITE // 2)
        f.write(patch)
        f.seek(0, os.SEEK_END)
        f.write(tail)


def tree_digest(root: Path, names: tuple[str, ...]) -> str:
    """A digest of the files under ``names`` in ``root``: relative paths, sizes and bytes.

    Used to check that a checkout really restored the data, so that a benchmark never
    reports a fast checkout that did nothing.
    """
    h = hashlib.blake2b(digest_size=32)
    paths: list[Path] = []
    for name in names:
        top = root / name
        if top.is_file():
            paths.append(top)
        elif top.is_dir():
            paths.extend(p for p in top.rglob("*") if p.is_file())
    for p in sorted(paths):
        h.update(f"{p.relative_to(root)}\0{p.stat().st_size}\0".encode())
        with p.open("rb") as f:
            while block := f.read(BLOCK):
                h.update(block)
    return h.hexdigest()
