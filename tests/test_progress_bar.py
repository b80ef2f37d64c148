"""Progress bars count what they say, and every size and speed is in binary units."""

from __future__ import annotations

import io
import re

import pytest

from vfs.progress_bar import TerminalProgress, human_rate, human_size

MiB = 1 << 20
DECIMAL = re.compile(r"\d (kB|KB|MB|GB|TB)\b")


@pytest.mark.parametrize(
    ("n", "text"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (10 * MiB, "10.0 MiB"),
        (3 << 30, "3.0 GiB"),
        (5 << 40, "5.0 TiB"),
        (7 << 50, "7.0 PiB"),
    ],
)
def test_sizes_are_binary(n: int, text: str) -> None:
    assert human_size(n) == text


def test_a_bar_counts_its_own_unit_and_bytes_per_second() -> None:
    bar = TerminalProgress(file=io.StringIO(), show_after=1e9)  # never drawn: amounts alone
    bar.start("downloading", 4, 4 * MiB, "chunks")
    assert bar.amounts(100.0) == "0/4 chunks  0 B/4.0 MiB"
    bar.advance(1, MiB)
    bar.advance(1, MiB)
    assert bar.amounts(102.0) == "2/4 chunks  2.0 MiB/4.0 MiB  1.0 MiB/s"
    bar.advance(2, 2 * MiB)
    assert bar.amounts(106.0) == "4/4 chunks  4.0 MiB/4.0 MiB  512.0 KiB/s"  # last 3 s or so


def test_a_phase_without_bytes_shows_a_count_per_second() -> None:
    bar = TerminalProgress(file=io.StringIO(), show_after=1e9)
    bar.start("deleting", 5000, 0)
    assert bar.amounts(10.0) == "0/5,000 files"
    bar.advance(2500, 0)
    assert bar.amounts(11.0) == "2,500/5,000 files  2,500 files/s"


def test_the_drawn_bar_says_chunks_and_mib() -> None:
    buf = io.StringIO()
    bar = TerminalProgress(file=buf, show_after=0)
    bar.start("verifying", 3, 3 * MiB, "chunks")
    bar.advance(2, 2 * MiB)
    bar.done()
    drawn = buf.getvalue()
    assert "2/3 chunks" in drawn and "2.0 MiB/3.0 MiB" in drawn
    assert " files" not in drawn and not DECIMAL.search(drawn)
    assert human_rate(1.5 * MiB) == "1.5 MiB/s"
