"""Two clones pushing to one remote at the same moment, round after round: nothing is lost.

In each round both clones commit a version on top of the same remote tip and start
``dvfs push`` at the same instant (both processes are started, wait until Python has
imported everything, then are released together). Since both versions have the same
parent, exactly one push may move the branch; the other must be refused with the
"run `dvfs pull`" line and leave the branch alone. The loser keeps its version on a
local branch, moves ``main`` back to the common parent and pulls the winner's.

Afterwards every version either clone committed is reachable: the winners' on the
remote branch's chain (read back through a fresh clone), the losers' on their local
branches. Run against a directory remote and the session's SeaweedFS.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    finish,
    go,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
    spawn_ready,
)
from tests.support.s3server import S3Server
from vfs.repo.repository import Repository

ROUNDS = 3  # each round is one race with one winner; three show it repeats


@pytest.fixture(params=["dir", "s3"])
def remote_url(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, tuple[str, ...]]:
    """A remote URL and the options `remote add` and `clone` need for it."""
    if request.param == "dir":
        return (tmp_path / "remote").as_uri(), ()
    server: S3Server = request.getfixturevalue("s3_env")
    return f"s3://{server.make_prefix()}/shared", ("--endpoint-url", server.endpoint)


def in_parallel(*jobs: tuple[Repo, tuple[str, ...]]) -> list[Result]:
    """Run one command in each repository at once (threads, each starting a process)."""
    results: list[Result | None] = [None] * len(jobs)

    def one(i: int, repo: Repo, args: tuple[str, ...]) -> None:
        results[i] = repo.run(*args)

    threads = [
        threading.Thread(target=one, args=(i, repo, args)) for i, (repo, args) in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [assert_ok(r) for r in results if r is not None]


def racing_pushes(repos: list[Repo]) -> list[Result]:
    """Start ``dvfs push`` in every repository at the same instant; wait for all."""
    procs = [spawn_ready(r.root, "push") for r in repos]
    for p in procs:
        go(p)
    return [finish(p, ("push",)) for p in procs]


def test_two_clones_pushing_at_once_lose_nothing(
    make_repo: RepoFactory, remote_url: tuple[str, tuple[str, ...]], tmp_path: Path
) -> None:
    url, options = remote_url
    seed = make_repo("seed")
    seed.write("shared/README", "base\n")
    seed.ok("add", "shared")
    base = seed.commit("base")
    seed.ok("remote", "add", "origin", url, *options)
    seed.ok("push")
    clones = []
    for name in ("x", "y"):
        assert_ok(run(tmp_path, "clone", url, name, *options))
        clones.append(Repo(tmp_path / name))

    won: list[str] = []
    kept: dict[str, tuple[Repo, str]] = {}  # lost race: version id -> (clone, local branch)
    tip = base
    for rnd in range(1, ROUNDS + 1):
        for c in clones:
            c.write(f"{c.root.name}/round-{rnd}.txt", f"{c.root.name} in round {rnd}\n")
        in_parallel(*((c, ("add", c.root.name)) for c in clones))
        in_parallel(*((c, ("commit", "-m", f"{c.root.name} {rnd}")) for c in clones))
        ids = [c.head_id() for c in clones]
        results = racing_pushes(clones)
        winners = [i for i, r in enumerate(results) if r.code == 0]
        assert len(winners) == 1, "\n".join(map(str, results))  # same parent: one may win
        (w,) = winners
        loser = 1 - w
        assert_error(results[loser], "remote main has versions you don't have", "dvfs pull")
        assert f"main: v{rnd + 1} {ids[w][:10]}" in results[w].out
        won.append(ids[w])
        # the loser keeps its version on a branch, goes back to the common parent, pulls
        lr = clones[loser]
        lib = Repository(lr.root)
        with lib.locked():
            lib.refs.update(f"refs/heads/lost-{rnd}", bytes.fromhex(ids[loser]), None)
            lib.refs.update("refs/heads/main", bytes.fromhex(tip), bytes.fromhex(ids[loser]))
        kept[ids[loser]] = (lr, f"lost-{rnd}")
        lr.ok("pull", "--force")
        assert lr.head_id() == ids[w]
        tip = ids[w]

    # the remote's chain, read through a fresh clone, holds every winner, in order
    assert_ok(run(tmp_path, "clone", url, "check", *options))
    check = Repo(tmp_path / "check")
    chain = [row["id"] for row in check.json("log", "--json")]
    assert chain == [*reversed(won), base]
    for name in ("x", "y"):
        for rnd in range(1, ROUNDS + 1):
            path = check.root / name / f"round-{rnd}.txt"
            if path.exists():
                assert path.read_text() == f"{name} in round {rnd}\n"
    # the remote's audit chain never forked: intact, and each winning push is in it
    verdict = check.json("audit", "verify", "--remote", "origin", "--json")
    assert verdict["intact"] is True and verdict["entries"] >= 1 + ROUNDS
    pushed = {row["new"] for row in check.json("audit", "--remote", "origin", "--json")}
    assert {base, *won} <= pushed
    # and every loser's version is on its local branch, whole
    assert len(kept) == ROUNDS
    for oid, (clone, branch) in kept.items():
        assert clone.json("log", branch, "-n", "1", "--json")[0]["id"] == oid
    for repo in (*clones, check, seed):
        repo.fsck_clean()
