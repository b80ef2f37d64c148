"""The machine and the physical floor of adding a large file, for the benchmark's header.

Storing a file's bytes cannot take less than the larger of two things: writing them to
the store's filesystem, and hashing them once on one core (BLAKE3 of every byte is
what names them; a second core may cut and compress meanwhile). ``floor`` measures
both on the same bytes right before the timed step:

- ``dd if=FILE of=<store dir>/.floor-probe bs=8M oflag=direct``: the bytes written past
  the page cache to the filesystem the store is on (the probe file is deleted after);
- one single-core BLAKE3 pass over the bytes in memory, with the ``blake3`` module of
  the Python that runs dvfs: the CPU time of the hashing thread, best of three, so
  that other work on the machine does not inflate it (on a quiet machine it is the
  wall time; ``load`` says how quiet the machine was).

``cpu_model`` and ``blake3_rate`` go at the top of the report: the same code runs at
2.6 GB/s of BLAKE3 per core on one EPYC and 4.3 GB/s on another (AVX-512), so a figure
without them cannot be compared with another machine's.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

PROBE = ".floor-probe"
RATE_SCRIPT = """
import os, sys, time, blake3
data = open(sys.argv[1], "rb").read() if len(sys.argv) > 1 else os.urandom(256 << 20)
best = float("inf")
for _ in range(3):
    started = time.thread_time()
    blake3.blake3(data).digest()
    best = min(best, time.thread_time() - started)
print(len(data), best)
"""


@dataclass
class Floor:
    """The physical floor of storing one file: max(direct write, one BLAKE3 pass)."""

    size: int
    dd_s: float
    blake3_s: float

    @property
    def seconds(self) -> float:
        return max(self.dd_s, self.blake3_s)

    def line(self) -> str:
        bound = "disk" if self.dd_s >= self.blake3_s else "BLAKE3"
        return (
            f"{self.seconds:.2f} s ({bound}-bound: dd oflag=direct {self.dd_s:.2f} s, "
            f"{self.size / self.dd_s / 1e6:.0f} MB/s; one-core BLAKE3 {self.blake3_s:.2f} s)"
        )


def load() -> str:
    """The 1, 5 and 15 minute load averages, as ``uptime`` prints them."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def cpu_model() -> str:
    """The CPU's model name and core count, from /proc/cpuinfo."""
    names = []
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                names.append(line.split(":", 1)[1].strip())
    flags = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("flags"):
                have = set(line.split(":", 1)[1].split())
                simd = [f for f in ("sse4_1", "avx2", "avx512f", "avx512vl") if f in have]
                flags = ", " + " ".join(simd) if simd else ""
                break
    model = names[0] if names else "unknown CPU"
    return f"{model}, {len(names)} cores{flags}"


def blake3_seconds(python: str, path: Path | None = None) -> tuple[int, float]:
    """(bytes, CPU seconds) of one single-core BLAKE3 pass over ``path``'s bytes in
    memory (256 MiB of random bytes without a path), best of three, in ``python``."""
    argv = [python, "-c", RATE_SCRIPT] + ([str(path)] if path is not None else [])
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]), float(out[1])


def blake3_rate(python: str) -> float:
    """Single-core BLAKE3 throughput in bytes per second."""
    size, seconds = blake3_seconds(python)
    return size / seconds


def dd_direct(source: Path, directory: Path) -> float:
    """Seconds ``dd oflag=direct`` takes to write ``source``'s bytes into ``directory``."""
    probe = directory / PROBE
    try:
        started = time.perf_counter()
        subprocess.run(
            ["dd", f"if={source}", f"of={probe}", "bs=8M", "oflag=direct"],
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started
    finally:
        probe.unlink(missing_ok=True)


def floor(source: Path, store_dir: Path, python: str) -> Floor:
    """The floor of storing ``source`` in the store at ``store_dir``."""
    size, hashing = blake3_seconds(python, source)
    return Floor(size, dd_direct(source, store_dir), hashing)
