"""A few seeds of the hostile-working-tree harness (``tests/support/hostile_tree.py``):
a repository with two commits has its working tree made hostile as the seed says (a
tracked folder or file replaced by a link out, FIFOs, unreadable folders, names with
escapes and newlines, 5,000 folders deep, a pipeline naming paths out, pathological
ignore rules, a file changing while read), then one command runs in it as a user
would. Each must succeed or fail in one line, touch nothing outside the repository,
store none of the bytes it could reach only through a link, print no control
character unquoted, and leave the repository ``dvfs fsck`` clean, its two commits
whole and ``dvfs status`` truthful. A long run is
``python -m tests.support.hostile_tree --seeds N``."""

from __future__ import annotations

import pytest

from tests.support import hostile_tree

CASES = [
    (49, "links", "checkout"),  # tracked folder data -> a folder outside
    (23, "links", "commit-a"),  # tracked file notes.txt -> a file outside
    (53, "links", "rm"),  # tracked folder data/d -> a folder outside
    (22, "special", "commit-a"),  # tracked folder models replaced by a FIFO
    (13, "unreadable", "diff"),  # data/sub of mode 000
    (1, "names", "add-all"),  # escapes, undecodable bytes, DEL
    (8, "yaml", "repro"),  # a stage's out is a link to a folder outside
    (11, "ignore", "add-all"),  # 2,000 backtracking rules
    (0, "deep", "add-all"),  # 5,000 folders deep
    (0, "changing", "commit-a"),  # a tracked file rewritten while read
]


@pytest.fixture(name="base", scope="module")
def base_fixture(tmp_path_factory: pytest.TempPathFactory) -> hostile_tree.Base:
    return hostile_tree.build(tmp_path_factory.mktemp("hostile-tree"))


@pytest.mark.parametrize(("seed", "mutation", "op"), CASES)
def test_a_hostile_working_tree_is_handled_cleanly(
    base: hostile_tree.Base, seed: int, mutation: str, op: str
) -> None:
    out = hostile_tree.attack(base, seed, op, mutation)
    assert out.faults == [], str(out)
