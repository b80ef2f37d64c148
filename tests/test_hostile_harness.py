"""A few seeds of the hostile-remote harness (``tests/support/hostile.py``), one for each
kind of damage and each way of reading a remote: a remote made by a real ``dvfs push``
is damaged as the seed says, then cloned, fetched, pulled, checked out, pushed to,
mounted or read with ``vfs.Repo.remote``. Each must succeed or fail in one line,
write nothing outside its target, stay within its memory and time, and leave the
clone that ran it ``dvfs fsck`` clean with its own commit kept. A long run is
``python -m tests.support.hostile --seeds N``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import hostile

CASES = [
    (1, "tree", "clone"),
    (3, "version", "fetch"),
    (4, "ref", "fetch"),
    (14, "ref", "pull"),
    (5, "link", "clone"),
    (6, "audit", "push"),
    (7, "index", "api"),
    (9, "pack", "mount"),
]


@pytest.fixture(name="base", scope="module")
def base_fixture(tmp_path_factory: pytest.TempPathFactory) -> hostile.Base:
    return hostile.build(tmp_path_factory.mktemp("hostile"))


@pytest.mark.parametrize(("seed", "mutation", "op"), CASES)
def test_a_damaged_remote_is_refused_cleanly(
    base: hostile.Base, seed: int, mutation: str, op: str, tmp_path: Path
) -> None:
    out = hostile.attack(base, seed, op, mutation)
    assert out.faults == [], str(out)
