"""dvfs merge: three-way at path level, conflicts, --abort, pull --merge, log --graph."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.support.api import SMALL_CHUNKS
from tests.support.cli import (
    Repo,
    RepoFactory,
    add_in_process,
    assert_error,
    assert_ok,
    commit_files,
    commit_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_as_dvfs,
    switch_in_process,
    warnings_of,
)
from tests.support.data import rand
from tests.support.remote import (  # noqa: F401 (fixtures)
    Remote,
    dir_remote_fixture,
    remote_fixture,
)
from tests.test_checkout_ahead import forge_digest
from tests.test_faults import flip_back, flip_byte_of
from tests.test_worktree_safety import RACING_DELETE
from vfs.ops import merge as merge_ops
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers


def diverge(repo: Repo) -> None:
    """main and `other` share v1 (a, b, c) and then change different paths (made in
    this process: the set-up of the merges tested)."""
    repo.write("a", "a")
    repo.write("b", "b")
    repo.write("c", "c")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    switch_in_process(repo, "other", create=True)
    repo.write("b", "b from other")
    repo.write("d/e", "new in other")
    add_in_process(repo, ".")
    commit_in_process(repo, "other")
    switch_in_process(repo, "main")
    repo.write("a", "a from main")
    (repo.root / "c").unlink()
    add_in_process(repo, ".")
    commit_in_process(repo, "main")


def parents(repo: Repo, rev: str = "HEAD") -> list[str]:
    hist = Repository(repo.root).history
    return [p.hex() for p in hist.version(hist.resolve(rev)).parents]


def test_changes_to_different_paths_combine_into_a_version_with_two_parents(repo: Repo) -> None:
    diverge(repo)
    ours, theirs = repo.head_id(), Repository(repo.root).history.resolve("other").hex()
    out = repo.json("merge", "other", "--json")
    assert out["outcome"] == "merged" and out["version"] == "v3"  # v2 (main's) + 1
    assert parents(repo) == [ours, theirs]
    assert repo.read("a") == b"a from main" and repo.read("b") == b"b from other"
    assert repo.read("d/e") == b"new in other" and not (repo.root / "c").exists()
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == [] and st["merging"] is None
    # vN stays first-parent: v2 is main's own second version, v1 the base.
    assert repo.show("v2")["message"] == "main" and repo.show("v1")["message"] == "base"
    assert repo.ok("merge", "other").out.startswith("already up to date")
    # Only the merge's second parent reaches other's version now: gc keeps it whole.
    repo.ok("branch", "-d", "other")
    repo.ok("gc")
    assert repo.cat(f"{theirs}:b") == b"b from other"
    assert repo.fsck_clean()["versions"] == 4  # v1, both v2s, the merge


def test_a_later_merge_takes_the_last_merged_version_as_base(repo: Repo) -> None:
    diverge(repo)
    repo.ok("merge", "other")
    repo.ok("switch", "other")
    repo.write("d/e", "changed again in other")
    repo.ok("add", ".")
    repo.commit("other again")
    repo.ok("switch", "main")
    # The base is other's v2 (the merge's second parent), not v1: b is no conflict.
    out = repo.json("merge", "other", "--json")
    assert out["outcome"] == "merged" and out["conflicts"] == []
    assert repo.read("d/e") == b"changed again in other" and repo.read("b") == b"b from other"
    repo.fsck_clean()


def test_a_branch_behind_fast_forwards(repo: Repo) -> None:
    repo.write("a", "1")
    add_in_process(repo, "a")
    commit_in_process(repo, "one")
    repo.ok("branch", "later")
    repo.ok("switch", "later")
    repo.write("a", "2")
    add_in_process(repo, "a")
    later = commit_in_process(repo, "two")
    repo.ok("switch", "main")
    assert "fast-forward" in repo.ok("merge", "later").out
    assert repo.head_id() == later and repo.read("a") == b"2"
    assert parents(repo) != [] and len(parents(repo)) == 1
    repo.fsck_clean()


def test_a_fast_forward_keeps_offline_and_names_merge_in_its_refusals(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`dvfs merge --offline origin/later`, a fast-forward, downloaded the data all the
    same; and an untracked file in its way was refused as "pull would overwrite
    untracked a: ... or use --force", an option merge refuses."""
    repo = make_repo("a")
    repo.write("a", "1")
    add_in_process(repo, "a")
    commit_in_process(repo, "one")
    dir_remote.add_to(repo)
    repo.ok("push")
    repo.ok("switch", "-c", "later")
    repo.write("b", "only on the remote")
    repo.ok("add", "b")
    repo.commit("two")
    repo.ok("push", "later")
    copy, _ = dir_remote.clone(tmp_path, "b")
    copy.ok("fetch")
    copy.fail("merge", "--offline", "origin/later", fragments=("--offline", "b"))
    assert not (copy.root / "b").exists() and copy.show()["version"] == "v1"
    copy.write("b", "mine")
    line = assert_error(copy.run("merge", "origin/later"), "merge would overwrite untracked b")
    assert "--force" not in line and "pull" not in line, line
    assert copy.read("b") == b"mine" and copy.show()["version"] == "v1"
    (copy.root / "b").unlink()
    assert "fast-forward" in copy.ok("merge", "origin/later").out
    assert copy.read("b") == b"only on the remote"
    copy.fsck_clean()


def conflicting(repo: Repo) -> None:
    diverge(repo)
    switch_in_process(repo, "other")
    repo.write("a", "a from other, longer")
    (repo.root / "b").unlink()
    add_in_process(repo, ".")
    commit_in_process(repo, "other 2")
    switch_in_process(repo, "main")
    repo.write("b", "b from main")
    add_in_process(repo, ".")
    commit_in_process(repo, "main 2")


def test_stages_made_on_two_branches_merge_stage_by_stage(repo: Repo) -> None:
    """dvfs.yaml and dvfs.runs, changed on both branches by `dvfs run` of different
    stages, merge stage by stage: they were two conflicts on every such merge. A
    stage changed on both sides differently is still a conflict."""
    repo.write("data/in.txt", "3\n")
    repo.write(
        "dvfs.yaml",
        "# the team's pipeline\nstages:\n  count:\n    cmd: wc -l data/in.txt > n.txt\n"
        "    deps: [data/in.txt]\n    outs: [n.txt]\n",
    )
    add_in_process(repo, ".")
    repo.ok("repro")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.ok("run", "-n", "double", "-d", "data/in.txt", "-o", "double.txt", "--",
            "sh", "-c", "cat data/in.txt data/in.txt > double.txt")  # fmt: skip
    commit_in_process(repo, "double")
    repo.ok("switch", "main")
    repo.ok("run", "-n", "upper", "-d", "data/in.txt", "-o", "upper.txt", "--",
            "sh", "-c", "tr a-z A-Z < data/in.txt > upper.txt")  # fmt: skip
    commit_in_process(repo, "upper")

    out = repo.json("merge", "other", "--json")
    assert out["outcome"] == "merged", out
    text = repo.read("dvfs.yaml").decode()
    assert text.startswith("# the team's pipeline\n")  # ours' text, comment kept
    stages = yaml.safe_load(text)["stages"]
    assert list(stages) == ["count", "upper", "double"]
    assert set(yaml.safe_load(repo.read("dvfs.runs"))["stages"]) == {"count", "double", "upper"}
    r = repo.ok("repro")
    assert "3 fresh" in r.out, r.out  # every run recorded still matches its outputs
    shown = yaml.safe_load(repo.ok("show", "--format", "yaml").out)
    assert {s["stage"] for s in shown["pipeline"]} == {"count", "double", "upper"}
    st = repo.status()
    assert st["modified"] == st["staged"] == st["untracked"] == []

    # the same stage changed differently on both sides: a conflict, as any file
    repo.ok("switch", "-c", "third")
    repo.ok("run", "--force", "-n", "count", "-d", "data/in.txt", "-o", "n.txt", "--",
            "sh", "-c", "wc -c < data/in.txt > n.txt")  # fmt: skip
    repo.commit("count bytes")
    repo.ok("switch", "main")
    repo.ok("run", "--force", "-n", "count", "-d", "data/in.txt", "-o", "n.txt", "--",
            "sh", "-c", "wc -w < data/in.txt > n.txt")  # fmt: skip
    repo.commit("count words")
    r = repo.run("merge", "third")
    assert r.code == 1, str(r)
    assert [c["path"] for c in repo.status()["merging"]["conflicts"]] == [
        "dvfs.runs", "dvfs.yaml", "n.txt",
    ]  # fmt: skip
    repo.ok("merge", "--abort")
    repo.fsck_clean()


def test_ours_or_theirs_take_a_conflicting_stage_and_keep_the_other_sides_stages(
    repo: Repo,
) -> None:
    """`merge --theirs` where both sides changed stage count, and main alone added stage
    upper: dvfs.yaml and dvfs.runs were taken whole from theirs, dropping upper (its
    output left behind, made by no stage); --ours dropped theirs' new stage alike."""
    repo.write("in.txt", "hello world\n")
    add_in_process(repo, "in.txt")
    repo.ok("run", "-n", "count", "-d", "in.txt", "-o", "n.txt", "--", "wc -l < in.txt > n.txt")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.ok("run", "--force", "-n", "count", "-d", "in.txt", "-o", "n.txt", "--",
            "wc -c < in.txt > n.txt")  # fmt: skip
    repo.ok("run", "-n", "double", "-d", "in.txt", "-o", "d.txt", "--", "cat in.txt in.txt > d.txt")
    commit_in_process(repo, "other")
    repo.ok("switch", "main")
    repo.ok("run", "--force", "-n", "count", "-d", "in.txt", "-o", "n.txt", "--",
            "wc -w < in.txt > n.txt")  # fmt: skip
    repo.ok(
        "run", "-n", "upper", "-d", "in.txt", "-o", "u.txt", "--", "tr a-z A-Z < in.txt > u.txt"
    )
    commit_in_process(repo, "main")
    for side, count in (("--theirs", "wc -c"), ("--ours", "wc -w")):
        if side == "--ours":
            repo.ok("switch", "-c", "again", "HEAD^1")
        assert repo.json("merge", side, "other", "--json")["outcome"] == "merged"
        stages = yaml.safe_load(repo.read("dvfs.yaml"))["stages"]
        assert list(stages) == ["count", "upper", "double"], (side, stages)
        assert stages["count"]["cmd"].startswith(count)
        assert set(yaml.safe_load(repo.read("dvfs.runs"))["stages"]) == set(stages)
        assert "3 fresh" in repo.ok("repro").out, side  # each run matches its outputs
    repo.fsck_clean()


def test_a_repro_during_a_merge_settles_what_it_made(repo: Repo) -> None:
    """Both sides ran train with their own lr; after the merge, `restore --theirs
    params.yaml` and `repro` said "outputs staged: `dvfs commit -m MSG` records them",
    but commit refused: the output and dvfs.runs were still listed as conflicts, to be
    added again by hand."""
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "train", "-p", "lr", "-o", "m.txt", "--", "cat params.yaml > m.txt")
    add_in_process(repo, "params.yaml")
    commit_in_process(repo, "base")
    for switch, lr in ((("-c", "other"), "2"), (("main",), "3")):
        repo.ok("switch", *switch)
        repo.write("params.yaml", f"lr: {lr}\n")
        repo.ok("repro")
        add_in_process(repo, "params.yaml")
        repo.commit(f"lr {lr}")
    assert repo.run("merge", "other").code == 1
    conflicts = [c["path"] for c in repo.status()["merging"]["conflicts"]]
    assert conflicts == ["dvfs.runs", "m.txt", "params.yaml"]
    repo.ok("restore", "--theirs", "params.yaml")
    repo.ok("repro")
    assert [c["resolved"] for c in repo.status()["merging"]["conflicts"]] == [True] * 3
    repo.ok("commit")  # as repro's line says
    assert repo.read("m.txt") == b"lr: 2\n" and "1 fresh" in repo.ok("repro").out
    repo.fsck_clean()


def test_a_pipeline_file_whose_bytes_are_not_its_digest_is_not_merged_by_stage(
    tmp_path: Path,
) -> None:
    """A dvfs.yaml of several chunks that theirs' version records under a digest its
    bytes do not have (a forged record an older dvfs fetched) was merged stage by
    stage: its chunks were joined unchecked, and the merge version took its stages
    under a digest of its own. It stays a conflict, as a side that cannot be read
    does, and taking theirs names the file."""

    def stage(name: str) -> str:
        return f"  {name}:\n    cmd: echo {name} > {name}.txt\n    outs: [{name}.txt]\n"

    Repository.init(tmp_path, chunker=SMALL_CHUNKS).close()  # (dvfs.yaml: 1 MiB at most)
    repo = Repo(tmp_path)
    note = f"# {rand(100_000, seed=3).hex()}\n"  # several chunks
    repo.write("dvfs.yaml", "stages:\n" + stage("a"))
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    switch_in_process(repo, "other", create=True)
    repo.write("dvfs.yaml", note + "stages:\n" + stage("a") + stage("b"))
    add_in_process(repo, ".")
    commit_in_process(repo, "other")
    switch_in_process(repo, "main")
    repo.write("dvfs.yaml", "stages:\n" + stage("a") + stage("c"))
    add_in_process(repo, ".")
    commit_in_process(repo, "main")
    r = Repository(repo.root)
    other = r.history.resolve("other")
    r.refs.update("refs/tags/lie", forge_digest(r, other, b"dvfs.yaml", bytes(32)), None)

    got = repo.run("merge", "lie")
    assert got.code == 1, str(got)
    assert [c["path"] for c in repo.status()["merging"]["conflicts"]] == ["dvfs.yaml"]
    assert repo.read("dvfs.yaml") == ("stages:\n" + stage("a") + stage("c")).encode()
    assert_error(
        repo.run("restore", "--theirs", "dvfs.yaml"), "dvfs.yaml", "the digest the version records"
    )
    repo.ok("merge", "--abort")
    assert repo.json("merge", "other", "--json")["outcome"] == "merged"  # the true one
    assert list(yaml.safe_load(repo.read("dvfs.yaml"))["stages"]) == ["a", "c", "b"]
    repo.ok("tag", "-d", "lie")
    repo.fsck_clean()


def test_a_file_whose_bytes_are_not_its_digest_is_named_by_the_merge(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Theirs' file of several chunks recorded under a digest its bytes do not have (a
    forged record; each chunk its id): the merge said "1 file not checked out (data
    unavailable)" and exited 0, `pull --merge` said nothing of it, and a fast-forward
    said "0 written, 0 deleted" and exited 0 while ours' copy of the file left the
    working tree. Each names the file and why, as checkout does, and exits 1."""
    repo = make_repo("three-way")
    commit_files(repo, {"a.txt": "a", "big.bin": rand(3 << 20, seed=1)}, "base")
    repo.ok("switch", "-c", "other")
    commit_files(repo, {"big.bin": rand(3 << 20, seed=2)}, "other")
    repo.ok("switch", "main")
    commit_files(repo, {"a.txt": "a2"}, "main")
    r = Repository(repo.root)
    r.refs.update("refs/tags/lie", forge_digest(r, r.history.resolve("other"), b"big.bin",
                                                bytes(32)), None)  # fmt: skip
    got = repo.run("merge", "lie")
    assert "v3" in got.out and "merged lie" in got.out and "data unavailable" not in got.out
    assert_error(got, "could not restore big.bin", "the digest the version records for it",
                 "it is not checked out")  # fmt: skip
    assert repo.json("merge", "--json", "lie")["outcome"] == "up to date"
    repo.ok("tag", "-d", "lie")
    repo.fsck_clean()

    repo = make_repo("fast-forward")
    commit_files(repo, {"a.txt": "a", "big.bin": rand(3 << 20, seed=1)}, "base")
    r = Repository(repo.root)
    r.refs.update("refs/tags/lie", forge_digest(r, r.history.resolve("main"), b"big.bin",
                                                bytes(32)), None)  # fmt: skip
    got = repo.run("merge", "lie")
    assert got.out.startswith("fast-forward to v2"), got
    assert_error(got, "could not restore big.bin", "the digest the version records for it",
                 "it is not checked out")  # fmt: skip
    assert not (repo.root / "big.bin").exists()
    repo.ok("tag", "-d", "lie")
    repo.fsck_clean()

    a = make_repo("a")
    commit_files(a, {"a.txt": "a", "big.bin": rand(3 << 20, seed=1)}, "base")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(tmp_path, "b")
    commit_files(a, {"big.bin": rand(3 << 20, seed=2)}, "other")
    r = Repository(a.root)
    head = r.history.resolve("main")
    r.refs.update("refs/heads/main", forge_digest(r, head, b"big.bin", bytes(32)), head)
    a.ok("push")
    commit_files(b, {"a.txt": "a2"}, "b")
    got = b.run("pull", "--merge")
    assert "merged origin/main: v3" in got.out, got
    assert_error(got, "could not restore big.bin", "the digest the version records for it",
                 "it is not checked out")  # fmt: skip
    b.fsck_clean()


def test_pipeline_texts_merge_by_stage_and_only_into_a_pipeline_that_reads() -> None:
    """merge3 on the texts: a stage added on each side (the file new on both), one
    deleted by theirs, and the merges that must stay conflicts: one output made by two
    stages, a cycle, a stage both sides changed, a file that does not read."""
    from vfs.pipeline import merge3

    def y(*stages: str) -> bytes:
        return ("stages:\n" + "".join(stages)).encode()

    a = "  a:\n    cmd: make a\n    outs: [a.out]\n"
    b = "  b:\n    cmd: make b  # b's own\n    deps: [a.out]\n    outs: [b.out]\n"
    c = "  c:\n    cmd: make c\n    deps: [b.out]\n    outs: [c.out]\n"
    got = merge3.merge_spec(None, y(a), y(b))  # both made the file: base is no stages
    assert got is not None and list(yaml.safe_load(got)["stages"]) == ["a", "b"]
    got = merge3.merge_spec(y(a, b), y(a, b, c), y(b))  # theirs deleted a
    assert got is not None and yaml.safe_load(got)["stages"].keys() == {"b", "c"}
    assert b"make b  # b's own" in got  # ours' lines as written
    a2 = "  a2:\n    cmd: other a\n    outs: [a.out]\n"
    assert merge3.merge_spec(y(a), y(a, b), y(a, a2)) is None  # a.out made twice
    loop = "  a:\n    cmd: make a\n    deps: [c.out]\n    outs: [a.out]\n"
    assert merge3.merge_spec(y(a, b), y(a, b, c), y(loop, b)) is None  # a cycle
    changed = "  a:\n    cmd: make a better\n    outs: [a.out]\n"
    assert merge3.merge_spec(y(a), y(changed), y(a)) == y(changed)  # ours alone changed
    assert merge3.merge_spec(y(a), y(changed), y(a2.replace("a2", "a"))) is None
    assert merge3.merge_spec(y(a), b"stages: [", y(a, b)) is None


def test_a_conflict_with_a_path_the_other_side_renamed_says_where_it_went(repo: Repo) -> None:
    """Edited on main, moved to b/ on other (and c deleted there): the conflicts were
    both "theirs: deleted"; the moved one now says where its content is."""
    repo.write("a", "a")
    repo.write("c", "c")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.ok("mv", "a", "moved-a")
    (repo.root / "c").unlink()
    add_in_process(repo, ".")
    commit_in_process(repo, "move a, drop c")
    repo.ok("switch", "main")
    repo.write("a", "a, edited")
    repo.write("c", "c, edited")
    add_in_process(repo, ".")
    commit_in_process(repo, "edit")

    r = repo.run("merge", "other")
    assert r.code == 1, str(r)
    line_a = next(ln for ln in r.out.splitlines() if ln.strip().startswith("a "))
    assert "theirs: renamed to moved-a" in line_a
    line_c = next(ln for ln in r.out.splitlines() if ln.strip().startswith("c "))
    assert "theirs: deleted" in line_c
    assert repo.read("moved-a") == b"a"  # theirs' new path came in: no conflict there
    st = repo.status()["merging"]["conflicts"]
    assert [(c["path"], c["theirs_renamed_to"], c["ours_renamed_to"]) for c in st] == [
        ("a", "moved-a", None), ("c", None, None),
    ]  # fmt: skip
    assert "theirs: renamed to moved-a" in repo.ok("status").out
    repo.ok("merge", "--abort")
    r = repo.run("merge", "other", "--json")
    assert r.code == 1, str(r)
    assert [c["theirs_renamed_to"] for c in json.loads(r.out)["conflicts"]] == ["moved-a", None]
    repo.ok("merge", "--abort")
    repo.fsck_clean()


def test_a_conflict_side_that_is_a_link_is_shown_as_a_link_with_its_target(
    repo: Repo,
) -> None:
    """x edited on main and made a link on other: the link side read "7 B" and a time,
    as a file's would, in merge's and status's lines and their JSON."""
    repo.write("x", "a")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    (repo.root / "x").unlink()
    os.symlink("t\nrg", repo.root / "x")
    add_in_process(repo, ".")
    commit_in_process(repo, "link")
    repo.ok("switch", "main")
    repo.write("x", "a, edited")
    add_in_process(repo, ".")
    commit_in_process(repo, "edit")

    r = repo.run("merge", "other")
    assert r.code == 1, str(r)
    line = next(ln for ln in r.out.splitlines() if ln.strip().startswith("x "))
    assert line.endswith('theirs: link -> "t\\nrg"'), line
    assert "ours: 9 B" in line
    assert 'theirs: link -> "t\\nrg"' in repo.ok("status").out
    (side,) = repo.status()["merging"]["conflicts"]
    assert side["theirs"]["link"] == "t\nrg" and "link" not in side["ours"]
    assert side["theirs_instead"] is None
    repo.ok("merge", "--abort")
    r = repo.run("merge", "other", "--json")
    assert r.code == 1, str(r)
    assert json.loads(r.out)["conflicts"][0]["theirs"]["link"] == "t\nrg"
    repo.ok("merge", "--abort")
    repo.fsck_clean()


def test_a_criss_cross_history_merges_without_spurious_conflicts(repo: Repo) -> None:
    """x and y each merged the other, then changed f and g again: the nearest common
    versions are two (x's and y's first), and taking one of them made the other's
    change look like ours' own, a conflict with theirs' later change. A path the two
    sides really both changed is still a conflict."""
    for name, text in (("f", "f0"), ("g", "g0"), ("h", "h0")):
        repo.write(name, text)
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("branch", "y")
    repo.ok("switch", "-c", "x")
    repo.write("f", "f1")
    repo.ok("commit", "-am", "x1")
    x1 = repo.head_id()
    repo.ok("switch", "y")
    repo.write("g", "g1")
    repo.ok("commit", "-am", "y1")
    y1 = repo.head_id()
    repo.ok("merge", x1, "-m", "y takes x1")  # y: f1 g1
    repo.ok("switch", "x")
    repo.ok("merge", y1, "-m", "x takes y1")  # x: f1 g1
    repo.write("f", "f2")
    repo.write("h", "h from x")
    repo.ok("commit", "-am", "x3")
    repo.ok("switch", "y")
    repo.write("g", "g2")
    repo.write("h", "h from y")
    repo.ok("commit", "-am", "y3")

    r = repo.run("merge", "x")
    assert r.code == 1, str(r)
    conflicts = [c["path"] for c in repo.status()["merging"]["conflicts"]]
    assert conflicts == ["h"]  # f and g were conflicts too
    assert repo.read("f") == b"f2" and repo.read("g") == b"g2"
    repo.ok("restore", "--theirs", "h")
    repo.commit("criss-cross merged")
    assert repo.read("h") == b"h from x"
    repo.fsck_clean()


def test_a_conflict_stops_the_merge_until_each_path_is_settled(repo: Repo) -> None:
    conflicting(repo)
    ours = repo.head_id()
    r = repo.run("merge", "other")
    assert r.code == 1, str(r)
    assert "2 conflicts" in r.out
    line_a = next(ln for ln in r.out.splitlines() if ln.strip().startswith("a "))
    assert "ours: 11 B" in line_a and "theirs: 20 B" in line_a  # both sides' sizes
    line_b = next(ln for ln in r.out.splitlines() if ln.strip().startswith("b "))
    assert "theirs: deleted" in line_b
    # d/e came from other; a and b keep ours until settled.
    assert repo.read("d/e") == b"new in other" and repo.read("a") == b"a from main"
    st = repo.status()
    assert [c["path"] for c in st["merging"]["conflicts"]] == ["a", "b"]
    assert "merging" in repo.ok("status").out.lower()
    repo.fail("commit", "-m", "too early", fragments=("still in conflict", "a, b"))
    repo.fail("merge", "other", fragments=("a merge is in progress",))
    repo.ok("restore", "--theirs", "a", "b")
    assert repo.read("a") == b"a from other, longer" and not (repo.root / "b").exists()
    assert all(c["resolved"] for c in repo.status()["merging"]["conflicts"])
    merged = repo.commit("merged by hand")
    assert parents(repo) == [ours, Repository(repo.root).history.resolve("other").hex()]
    assert repo.status()["merging"] is None
    assert repo.show(merged)["version"] == "v4"
    repo.fsck_clean()


def test_a_stopped_merge_is_committed_with_the_message_it_was_given(repo: Repo) -> None:
    """`dvfs merge other -m MSG` stopped by a conflict kept MSG in its record, but `dvfs
    commit` then refused without -m ("missing option '-m'"), and MSG never reached the
    merge version: the commit takes the merge's message, as git's MERGE_MSG."""
    conflicting(repo)
    assert repo.run("merge", "other", "-m", "take other's a").code == 1
    repo.ok("restore", "--theirs", "a", "b")
    made = json.loads(repo.ok("commit", "--json").out)
    assert repo.show(made["id"])["message"] == "take other's a"
    assert len(parents(repo)) == 2
    # Without -m to merge, the message it names; -m to commit still wins.
    repo.ok("switch", "other")
    repo.write("a", "a again")
    repo.ok("add", "a")
    repo.commit("other 3")
    repo.ok("switch", "main")
    repo.write("a", "a on main again")
    repo.ok("add", "a")
    repo.commit("main 3")
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--ours", "a")
    assert "`dvfs commit` records it" in repo.ok("status").out
    assert repo.ok("commit").out.endswith(" - merge other into main\n")
    repo.fail("commit", fragments=("missing option '-m'",))  # no merge: required again
    repo.fsck_clean()


def test_a_blank_merge_message_is_refused_as_a_commits_is(repo: Repo) -> None:
    """`dvfs merge other -m "  "` made a version whose message was blank, which `dvfs
    commit -m "  "` refuses."""
    diverge(repo)
    before = repo.head_id()
    for blank in ("", "  \n"):
        repo.fail(
            "merge", "other", "-m", blank, code=2,
            fragments=("message is empty", "leave it out for 'merge other into main'"),
        )  # fmt: skip
    assert repo.head_id() == before and repo.status()["merging"] is None
    repo.fsck_clean()


def test_merge_continue_records_the_settled_merge_as_git_does(repo: Repo) -> None:
    """`dvfs merge --continue`, git's way to finish a merge, was "no such option
    '--continue'. Did you mean '--offline'?"."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    repo.fail("merge", "--continue", fragments=("still in conflict", "a, b"))
    repo.ok("restore", "--ours", "a", "b")
    out = repo.ok("merge", "--continue").out
    assert out.endswith(": merged - merge other into main\n"), out
    assert len(parents(repo)) == 2 and repo.status()["merging"] is None
    repo.fail("merge", "--continue", fragments=("no merge is in progress",))
    repo.fsck_clean()


def test_checkout_of_paths_from_a_side_settles_their_conflicts(repo: Repo) -> None:
    """`dvfs checkout other a` in a merge (git's `checkout other -- a`) staged other's a,
    but left a in conflict: the commit was refused until it was added again."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    repo.ok("checkout", "other", "a")
    assert repo.read("a") == b"a from other, longer"
    conflicts = repo.status()["merging"]["conflicts"]
    assert [(c["path"], c["resolved"]) for c in conflicts] == [("a", True), ("b", False)]
    repo.ok("checkout", "other", "b")  # other deleted it
    assert not (repo.root / "b").exists()
    repo.commit("merged")
    assert repo.cat("HEAD:a") == b"a from other, longer" and len(parents(repo)) == 2
    repo.fsck_clean()


def test_settling_on_the_side_that_deleted_a_file_says_it_was_deleted(repo: Repo) -> None:
    """b is edited on main and deleted on other: `restore --theirs b` deleted it and
    said "0 written, 0 unchanged", as if nothing had happened."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    out = repo.ok("restore", "--theirs", "b").out
    assert "1 deleted (as theirs has no such file)" in out, out
    assert not (repo.root / "b").exists()
    repo.ok("merge", "--abort")
    assert repo.run("merge", "other").code == 1
    got = json.loads(repo.ok("restore", "--theirs", ".", "--json").out)
    assert (got["deleted"], got["written"]) == (1, 1), got  # b deleted, a written
    repo.commit("merged")
    repo.fsck_clean()


def test_rm_or_add_of_a_file_this_side_deleted_settles_its_conflict(repo: Repo) -> None:
    """a deleted on main and edited on other: the conflict keeps a deleted, and `dvfs rm
    a` (git's way to keep a deletion) said "a is not tracked: nothing was removed",
    `dvfs add a` "a does not exist and is not tracked", both settling nothing."""
    repo.write("a", "a")
    repo.write("b", "b")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.write("a", "a from other")
    add_in_process(repo, "a")
    commit_in_process(repo, "other")
    repo.ok("switch", "main")
    repo.ok("rm", "a")
    commit_in_process(repo, "main")
    for verb in ("rm", "add"):
        assert repo.run("merge", "other").code == 1
        assert repo.status()["merging"]["conflicts"][0]["ours"] is None
        repo.ok(verb, "a")
        assert [c["resolved"] for c in repo.status()["merging"]["conflicts"]] == [True]
        assert not (repo.root / "a").exists()
        repo.ok("merge", "--abort")
    repo.fail("rm", "a", fragments=("a is not tracked: nothing was removed",))
    assert repo.run("merge", "other").code == 1
    repo.ok("rm", "a")
    repo.commit("merged, a stays deleted")
    assert list(repo.show()["files"]) == ["b"]
    repo.fsck_clean()


def test_restore_of_the_side_that_deleted_a_path_it_never_had_settles_it(repo: Repo) -> None:
    """a deleted on main and edited on other: `restore --ours a`, as the merge's own
    listing says to settle each conflict, was refused: "a is not tracked and not in
    ours: nothing was restored" (nor did `restore --ours a b` restore b)."""
    commit_files(repo, {"a": "a", "b": "b"}, "base")
    repo.ok("switch", "-c", "other")
    commit_files(repo, {"a": "a from other", "b": "b from other"}, "other")
    repo.ok("switch", "main")
    repo.ok("rm", "a")
    repo.write("b", "b from main")
    add_in_process(repo, "b")
    commit_in_process(repo, "main")
    r = repo.run("merge", "other")
    assert r.code == 1 and "dvfs restore --ours PATH" in r.out
    repo.ok("restore", "--ours", "a")
    assert [c["resolved"] for c in repo.status()["merging"]["conflicts"]] == [True, False]
    assert not (repo.root / "a").exists()
    repo.ok("merge", "--abort")
    assert repo.run("merge", "other").code == 1
    out = repo.json("restore", "--ours", "a", "b", "--json")
    assert (out["source"], out["unchanged"]) == ("ours", 1), out
    assert [c["resolved"] for c in repo.status()["merging"]["conflicts"]] == [True, True]
    repo.commit("merged, a stays deleted")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "HEAD^1", "-r", "--json")
    repo.fsck_clean()


def test_worktree_restore_of_a_conflict_the_side_lacks_names_the_conflict(repo: Repo) -> None:
    """d/a deleted on main and edited on other: `restore --ours --worktree d/a` (and of
    d, d/a and b) said "d/a is not tracked and not in ours", though d/a is a conflict
    the merge listed, theirs having it. It says so now, and what settles it."""
    commit_files(repo, {"d/a": "a", "d/k": "k", "b": "b"}, "base")
    repo.ok("switch", "-c", "other")
    commit_files(repo, {"d/a": "a from other", "b": "b from other"}, "other")
    repo.ok("switch", "main")
    repo.ok("rm", "d/a")
    commit_files(repo, {"b": "b from main"}, "main")
    assert repo.run("merge", "other").code == 1
    said = "d/a is in conflict and not in ours (theirs has it), and --worktree deletes no file"
    settle = "`dvfs restore --ours d/a` settles it as ours has it; nothing was restored"
    for named in (["d/a"], ["d", "d/a", "b"]):
        r = repo.run("restore", "--ours", "--worktree", *named)
        assert_error(r, said, settle)
    repo.ok("restore", "--theirs", "-W", "b")
    assert repo.read("b") == b"b from other"
    assert conflicts_left(repo) == ["b", "d/a"]
    repo.ok("restore", "--ours", "d/a", "b")
    assert conflicts_left(repo) == [] and not (repo.root / "d" / "a").exists()
    repo.commit("merged, d/a stays deleted")
    repo.fsck_clean()


def test_rm_of_a_directory_settles_the_deleted_conflicts_below_it(repo: Repo) -> None:
    """`dvfs rm d` in a merge where main deleted d/a and other edited it removed d/b and
    left d/a in conflict: only the files it removed were settled."""
    repo.write("d/a", "a")
    repo.write("d/b", "b")
    repo.write("k", "k")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.write("d/a", "a from other")
    add_in_process(repo, "d")
    commit_in_process(repo, "other")
    repo.ok("switch", "main")
    repo.ok("rm", "d/a")
    commit_in_process(repo, "main")
    assert repo.run("merge", "other").code == 1
    repo.ok("rm", "d")
    assert [c["resolved"] for c in repo.status()["merging"]["conflicts"]] == [True]
    repo.commit("merged, d gone")
    assert list(repo.show()["files"]) == ["k"]
    repo.fsck_clean()


def test_a_path_a_side_lacks_is_refused_naming_the_side(repo: Repo) -> None:
    """`restore --theirs nope` said "nope is not tracked and not in 0b67...5d" (the
    side's whole id), which no user typed."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    for side in ("ours", "theirs"):
        assert_error(
            repo.run("restore", f"--{side}", "nope"),
            f"nope is not tracked and not in {side}: nothing was restored",
            code=2,
        )
    repo.ok("merge", "--abort")
    repo.fsck_clean()


def test_a_mode_change_on_one_side_and_an_edit_on_the_other_both_merge(repo: Repo) -> None:
    repo.write("run.sh", "echo 1\n")
    repo.write("tool.sh", "echo t\n")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    (repo.root / "run.sh").chmod(0o755)
    repo.write("tool.sh", "echo t2\n")
    repo.ok("commit", "-a", "-m", "other")
    repo.ok("switch", "main")
    repo.write("run.sh", "echo 2\n")
    (repo.root / "tool.sh").chmod(0o755)
    repo.ok("commit", "-a", "-m", "main")
    out = repo.json("merge", "other", "--json")
    assert out["outcome"] == "merged", out
    for name, data in (("run.sh", b"echo 2\n"), ("tool.sh", b"echo t2\n")):
        assert repo.read(name) == data and os.access(repo.root / name, os.X_OK), name
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == [] and st["merging"] is None
    repo.fsck_clean()


def test_a_mode_change_made_on_both_sides_and_an_edit_on_one_merge(repo: Repo) -> None:
    """run.sh made executable on both branches and edited on other (tool.sh: on main)
    was a conflict, where git takes the edit with the mode both gave it."""
    commit_files(repo, {"run.sh": "echo 1\n", "tool.sh": "echo t\n", "k": "k"}, "base")
    repo.ok("switch", "-c", "other")
    repo.write("run.sh", "echo 2\n")
    for name in ("run.sh", "tool.sh"):
        (repo.root / name).chmod(0o755)
    repo.ok("commit", "-a", "-m", "other")
    repo.ok("switch", "main")
    repo.write("tool.sh", "echo t2\n")
    for name in ("run.sh", "tool.sh"):
        (repo.root / name).chmod(0o755)
    repo.ok("commit", "-a", "-m", "main")
    out = repo.json("merge", "other", "--json")
    assert out["outcome"] == "merged" and out["conflicts"] == [], out
    for name, data in (("run.sh", b"echo 2\n"), ("tool.sh", b"echo t2\n")):
        assert repo.read(name) == data and os.access(repo.root / name, os.X_OK), name
        assert repo.cat(f"HEAD:{name}") == data
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == [] and st["merging"] is None
    repo.fsck_clean()


def test_theirs_on_a_directory_settles_its_conflicts_and_keeps_what_merged(repo: Repo) -> None:
    """`restore --theirs d` took theirs' whole d: a file only ours had changed went back
    to its old content and a file only ours had added was unstaged, in the merge."""
    for name in ("x", "k"):
        repo.write(f"d/{name}", name)
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.write("d/x", "x from other")
    repo.ok("commit", "-a", "-m", "other")
    repo.ok("switch", "main")
    repo.write("d/x", "x from main")
    repo.write("d/k", "k from main")
    repo.write("d/new", "new in main")
    add_in_process(repo, "d")
    commit_in_process(repo, "main")
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", "d")
    assert repo.read("d/x") == b"x from other"
    assert repo.read("d/k") == b"k from main" and repo.read("d/new") == b"new in main"
    merged = repo.commit("merged")
    assert repo.cat(f"{merged}:d/k") == b"k from main"
    assert repo.cat(f"{merged}:d/new") == b"new in main"
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == [] and st["merging"] is None
    repo.fsck_clean()


def test_status_in_a_conflicted_merge_says_how_to_finish_it_never_that_all_is_clean(
    repo: Repo,
) -> None:
    """A conflict keeps ours in the working tree and stages nothing: the report used to
    end "Nothing to commit, working tree clean." under the conflict it listed."""
    repo.write("data/a", "base")
    add_in_process(repo, "data")
    commit_in_process(repo, "base")
    repo.ok("branch", "other")
    repo.write("data/a", "ours")
    add_in_process(repo, "data")
    commit_in_process(repo, "ours")
    repo.ok("switch", "other")
    repo.write("data/a", "theirs")
    add_in_process(repo, "data")
    commit_in_process(repo, "theirs")
    repo.ok("switch", "main")
    assert repo.run("merge", "other").code == 1
    out = repo.ok("status").out
    assert "Nothing to commit" not in out and "clean" not in out
    assert "Merging other" in out and "1 conflict to settle" in out
    assert "  conflict: data/a  ours: 4 B" in out
    last = out.splitlines()[-1]
    assert last.startswith("A merge is in progress: settle each conflict")
    assert "`dvfs commit`" in last and "`dvfs merge --abort`" in last
    conflict = assert_ok(run(repo.root / "data", "status")).out.splitlines()[2]
    assert conflict.startswith("  conflict: a  ours:")  # as typed there
    st = repo.status()
    assert [(c["path"], c["resolved"]) for c in st["merging"]["conflicts"]] == [("data/a", False)]
    # Settled with ours: nothing differs from HEAD, and the merge is still to record.
    repo.ok("restore", "--ours", "data/a")
    out = repo.ok("status").out
    assert "Nothing to commit" not in out and "every conflict settled" in out
    assert out.splitlines()[-1] == (
        "A merge is in progress: `dvfs commit` records it; `dvfs merge --abort` gives it up."
    )
    assert [c["resolved"] for c in repo.status()["merging"]["conflicts"]] == [True]
    repo.commit("merged")
    assert repo.ok("status").out.endswith("Nothing to commit, working tree clean.\n")


def test_ours_with_staged_is_refused_and_keeps_the_working_file(repo: Repo) -> None:
    """`restore --ours --staged a` (the index only, as --staged says) wrote ours' a over
    a resolution being edited in the working file, and said "unstaged 0 paths"; git
    refuses the pair."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    repo.write("a", "half of my resolution")
    for side in ("--ours", "--theirs"):
        repo.fail("restore", side, "--staged", "a", fragments=(side, "--staged"), code=2)
    assert repo.read("a") == b"half of my resolution"
    assert not any(c["resolved"] for c in repo.status()["merging"]["conflicts"])
    repo.ok("merge", "--abort", "--force")
    repo.fsck_clean()


def test_restore_source_and_add_settle_conflicts_too(repo: Repo) -> None:
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--source", "v1", "a")  # the base's content is a choice too
    assert repo.read("a") == b"a"
    repo.write("b", "edited by hand")
    repo.ok("add", "b")
    repo.commit("settled")
    assert repo.cat("HEAD:a") == b"a" and repo.cat("HEAD:b") == b"edited by hand"
    repo.fsck_clean()


def file_against_directory(repo: Repo) -> None:
    """main holds a file x (changed since the base), branch other a directory x/f."""
    repo.write("x", "x")
    repo.write("k", "k")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    switch_in_process(repo, "other", create=True)
    (repo.root / "x").unlink()
    repo.write("x/f", "in a directory")
    add_in_process(repo, ".")
    commit_in_process(repo, "a directory")
    switch_in_process(repo, "main")
    repo.write("x", "x from main")
    add_in_process(repo, "x")
    commit_in_process(repo, "a file")


def test_a_file_against_a_directory_is_settled_by_either_side_whole(repo: Repo) -> None:
    """`restore --theirs x`, where ours has a file x and theirs a directory x, used to
    stop: "x is an untracked file where the version has a directory" (x was tracked,
    and restore has no --force); the reverse stopped on "a directory with untracked
    files"."""
    file_against_directory(repo)
    assert repo.run("merge", "other").code == 1
    st = repo.status()
    assert [c["path"] for c in st["merging"]["conflicts"]] == ["x", "x/f"]
    repo.write("x", "edited, not added")  # never replaced: the changes would be lost
    repo.fail("restore", "--theirs", "x", fragments=("x changed since staged", "dvfs add"))
    assert repo.read("x") == b"edited, not added"
    repo.write("x", "x from main")
    repo.ok("restore", "--theirs", "x")
    assert repo.read("x/f") == b"in a directory"
    assert all(c["resolved"] for c in repo.status()["merging"]["conflicts"])
    repo.commit("took the directory")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "other", "-r", "--json")
    # And back: the file of main's v2 over the directory, with the same verbs.
    repo.ok("switch", "-c", "file", "v2")
    repo.ok("switch", "main")
    repo.write("x/f", "in a directory, edited")
    repo.ok("add", "x")
    repo.commit("edited")
    repo.ok("switch", "file")
    repo.write("x", "x from file")
    repo.ok("add", "x")
    repo.commit("edited the file")
    repo.ok("switch", "main")
    assert repo.run("merge", "file").code == 1
    repo.ok("restore", "--theirs", "x")
    assert repo.read("x") == b"x from file"
    repo.commit("took the file")
    assert repo.cat("HEAD:x") == b"x from file" and repo.status()["staged"] == []
    repo.fsck_clean()


def test_a_side_written_over_a_file_against_a_directory_can_be_taken_back(repo: Repo) -> None:
    """Ours a file x, theirs a directory x/f: once `restore --theirs --worktree x` wrote
    theirs' directory, `restore --ours --worktree x` and `restore --ours x` were
    refused, "x is a directory holding untracked files where restore writes a file",
    x/f being the file of the conflict x/f that restore itself wrote: the way back
    was to delete it by hand. A file there holding what a side has is replaced; one
    edited since, or another file, is still kept."""
    file_against_directory(repo)
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", "--worktree", "x")
    assert repo.read("x/f") == b"in a directory"
    repo.ok("restore", "--ours", "--worktree", "x")
    assert repo.read("x") == b"x from main" and conflicts_left(repo) == ["x", "x/f"]
    repo.ok("restore", "--theirs", "-W", "x")
    repo.write("x/f", "edited")
    repo.fail("restore", "--ours", "-W", "x", fragments=("x is a directory holding untracked",))
    repo.write("x/f", "in a directory")
    repo.write("x/new", "mine")
    repo.fail("restore", "--ours", "x", fragments=("x is a directory holding untracked",))
    (repo.root / "x" / "new").unlink()
    repo.ok("restore", "--ours", "x")
    assert repo.read("x") == b"x from main"
    assert all(c["resolved"] for c in repo.status()["merging"]["conflicts"])
    repo.commit("kept the file")
    assert repo.cat("HEAD:x") == b"x from main"
    repo.fsck_clean()


def directory_against_file(repo: Repo, *beside: str) -> None:
    """main holds a directory x of x/f (changed since the base) and of the files
    ``beside`` (not changed), branch other a file x."""
    for name in beside:
        repo.write(f"x/{name}", name)
    repo.write("x/f", "f")
    repo.write("k", "k")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    switch_in_process(repo, "other", create=True)
    shutil.rmtree(repo.root / "x")
    repo.write("x", "a file")
    add_in_process(repo, ".")
    commit_in_process(repo, "a file")
    switch_in_process(repo, "main")
    repo.write("x/f", "f from main")
    add_in_process(repo, "x")
    commit_in_process(repo, "a directory")


def test_a_side_file_is_written_over_a_directory_of_the_other_with_worktree(repo: Repo) -> None:
    """Ours a directory x/f, theirs a file x: `restore --theirs --worktree x` was refused,
    "x is a directory of tracked files where restore writes a file, and restore never
    deletes a file: `dvfs rm -r` it first", though `restore --theirs x` wrote it, and
    the other orientation (ours the file) writes theirs' directory with --worktree.
    The directory's files holding what is staged are replaced now; one edited since,
    or another file there, is kept and named."""
    directory_against_file(repo)
    assert repo.run("merge", "other").code == 1
    assert conflicts_left(repo) == ["x", "x/f"]
    repo.ok("restore", "--theirs", "--worktree", "x")
    assert repo.read("x") == b"a file" and conflicts_left(repo) == ["x", "x/f"]
    repo.ok("restore", "--ours", "--worktree", "x")
    assert repo.read("x/f") == b"f from main"
    repo.write("x/f", "edited")
    repo.fail("restore", "--theirs", "-W", "x", fragments=("x/f changed since staged",))
    repo.write("x/f", "f from main")
    repo.write("x/new", "mine")
    repo.fail("restore", "--theirs", "-W", "x", fragments=("x is a directory holding untracked",))
    assert repo.read("x/new") == b"mine" and repo.read("x/f") == b"f from main"
    (repo.root / "x" / "new").unlink()
    repo.ok("restore", "--theirs", "-W", "x")
    repo.ok("add", "x")
    assert conflicts_left(repo) == []
    repo.commit("took the file")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "other", "-r", "--json")
    repo.fsck_clean()


def test_a_side_directory_written_with_worktree_can_be_replaced_again(repo: Repo) -> None:
    """Ours a directory x of x/f and x/g (g not changed), theirs a file x: the merge
    deletes x/g, and `restore --ours --worktree x` writes ours' directory whole,
    x/g too; then `restore --theirs --worktree x` (and `restore --theirs x`) was
    refused, "x is a directory holding untracked files", x/g being the file of ours
    that restore itself wrote. A file below a conflict holding what a side has there
    is replaced; another file there is still kept and named."""
    directory_against_file(repo, "g")
    assert repo.run("merge", "other").code == 1
    assert conflicts_left(repo) == ["x", "x/f"]
    repo.ok("restore", "--ours", "--worktree", "x")
    assert repo.read("x/g") == b"g" and repo.read("x/f") == b"f from main"
    repo.ok("restore", "--theirs", "--worktree", "x")
    assert repo.read("x") == b"a file"
    repo.ok("restore", "--ours", "-W", "x")
    repo.write("x/g", "edited")
    repo.fail("restore", "--theirs", "x", fragments=("x is a directory holding untracked",))
    repo.write("x/g", "g")
    repo.ok("restore", "--theirs", "x")
    assert repo.read("x") == b"a file" and conflicts_left(repo) == []
    repo.commit("took the file")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "other", "-r", "--json")
    repo.fsck_clean()


def test_a_file_against_a_directory_is_settled_path_by_path_from_below(repo: Repo) -> None:
    """`restore --theirs x/f` first (ours a file x, theirs a directory x) staged x/f
    beside the file x; `restore --theirs x` was then refused ("x changed since
    staged"), and a commit would have recorded a tree holding x twice."""
    file_against_directory(repo)
    r = repo.run("merge", "other")
    assert r.code == 1  # each side says what it holds there (it said "theirs: deleted")
    assert "theirs: a directory" in r.out and "ours: a file at x" in r.out
    conflicts = {c["path"]: c for c in repo.status()["merging"]["conflicts"]}
    assert conflicts["x"]["theirs_instead"] == {"kind": "directory", "path": "x"}
    assert conflicts["x/f"]["ours_instead"] == {"kind": "file", "path": "x"}
    repo.ok("restore", "--theirs", "x/f")
    st = repo.status()
    assert [(c["path"], c["status"]) for c in st["staged"]] == [("x", "removed"), ("x/f", "added")]
    assert st["deleted"] == [] and repo.read("x/f") == b"in a directory"
    repo.ok("restore", "--theirs", "x")
    assert all(c["resolved"] for c in repo.status()["merging"]["conflicts"])
    repo.commit("took the directory")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "other", "-r", "--json")
    repo.fsck_clean()


def test_restoring_a_file_of_theirs_directory_settles_the_file_it_replaced(repo: Repo) -> None:
    """Ours a file x, theirs a directory x/f: `restore --theirs x/f` replaced the file x
    by the directory, yet status still listed x as a conflict ("theirs: a directory")
    and commit refused "still in conflict (x)", though nothing was left to choose
    there. x is settled as theirs now, and the commit records theirs' tree."""
    file_against_directory(repo)
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", "x/f")
    st = repo.status()
    assert all(c["resolved"] for c in st["merging"]["conflicts"]), st
    assert "every conflict settled" in repo.ok("status").out
    repo.commit("took the directory")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "other", "-r", "--json")
    repo.fsck_clean()


def test_restoring_one_file_of_theirs_directory_leaves_its_other_files_in_conflict(
    repo: Repo,
) -> None:
    """Ours a file x, theirs a directory of x/f and x/g: `restore --theirs x/f` settled
    the file x it replaced, and with it every conflict below x: status said "every
    conflict settled" while x/g was in neither the tree nor the index, and the commit
    dropped it. x/g stays a conflict now, as in git, until it is settled itself."""
    file_against_directory(repo)
    repo.ok("switch", "other")
    commit_files(repo, {"x/g": "beside f"}, "another file")
    repo.ok("switch", "main")
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", "x/f")
    st = repo.status()
    assert [c["path"] for c in st["merging"]["conflicts"] if not c["resolved"]] == ["x/g"], st
    assert "conflict: x/g" in repo.ok("status").out
    repo.fail("commit", "-m", "merged", fragments=("still in conflict (x/g)",))
    repo.ok("restore", "--theirs", "x/g")
    assert "every conflict settled" in repo.ok("status").out
    repo.commit("took the directory")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "other", "-r", "--json")
    repo.fsck_clean()


def test_abort_goes_back_to_the_branch_version(repo: Repo) -> None:
    conflicting(repo)
    before = repo.head_id()
    assert repo.run("merge", "other").code == 1
    repo.ok("merge", "--abort")
    assert repo.head_id() == before
    st = repo.status()
    assert st["merging"] is None and st["staged"] == [] and st["untracked"] == []
    assert not (repo.root / "d").exists() and repo.read("b") == b"b from main"
    repo.fail("merge", "--abort", fragments=("no merge is in progress",))
    # Switching away leaves a merge too: coming back does not bring it back.
    assert repo.run("merge", "other").code == 1
    repo.ok("switch", "--force", "other")
    repo.ok("switch", "main")
    assert repo.status()["merging"] is None and repo.head_id() == before
    repo.fsck_clean()


def test_abort_after_switch_c_says_the_merge_was_given_up_and_where_head_is(repo: Repo) -> None:
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    staged = repo.status()["staged"]
    r = repo.ok("switch", "-c", "new")  # at HEAD: every local change stays, the merge does not
    assert warnings_of(r) == [
        "dvfs: warning: the merge of other into main in progress is given up: what it staged "
        "stays staged on new, and a commit here records no merge"
    ]
    assert repo.status()["merging"] is None and repo.status()["staged"] == staged
    line = repo.fail("merge", "--abort", code=2)
    assert "the merge of other into main was given up when HEAD moved away from main" in line
    assert "you are on branch new" in line and "`dvfs switch main` goes back" in line
    assert "finished" not in line and "committed" not in line, line
    assert repo.status()["staged"] == staged  # (nothing was aborted: it says so)
    # A merge committed leaves no record to abort; one whose record was left behind
    # by a commit killed after the branch moved is said to be committed.
    repo.ok("switch", "--force", "main")
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", ".")
    record = (repo.root / ".dvfs" / "MERGE").read_bytes()
    repo.ok("commit", "-m", "merged")
    (repo.root / ".dvfs" / "MERGE").write_bytes(record)
    line = repo.fail("merge", "--abort", code=2)
    assert "the merge of other into main was committed as v4; you are on branch main" in line
    repo.fsck_clean()


def test_switch_over_edits_during_a_conflicted_merge_says_what_keeps_them(repo: Repo) -> None:
    """With conflicts left and a file edited, `dvfs switch` said "commit them", which
    the commit refuses until the conflicts are settled: it names what works."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    repo.write("a", "edited during the merge")
    for args in (("switch", "other"), ("checkout", "v1")):
        line = repo.fail(*args, code=1)
        assert line == (
            f"dvfs: error: {args[0]} would overwrite uncommitted changes in a: the merge in "
            "progress has conflicts left (a, b), so no commit can keep them yet: settle each "
            "conflict (`dvfs restore --ours|--theirs PATH`, or edit it and `dvfs add PATH`) "
            "and `dvfs commit`, or give the merge up with `dvfs merge --abort`; or use "
            "--force to discard them"
        )
    repo.fail("commit", "-a", "-m", "as told before", fragments=("still in conflict",))
    repo.ok("add", "a")  # as it says: settled, then committed
    repo.ok("restore", "--ours", "b")
    repo.commit("merged")
    repo.ok("switch", "other")
    repo.fsck_clean()


def test_switch_away_from_a_merge_says_it_is_given_up(repo: Repo) -> None:
    """`dvfs switch -c NAME` warned that a merge in progress is given up; `dvfs switch`
    and `dvfs checkout` elsewhere gave it up without a word, carrying what it staged to
    the other branch, where a commit recorded it as a version of its own."""
    conflicting(repo)
    repo.ok("branch", "older", "v1")
    assert repo.run("merge", "other").code == 1
    r = repo.ok("switch", "older")
    assert warnings_of(r) == [
        "dvfs: warning: the merge of other into main in progress is given up: changes to "
        "d/e stay, and a commit here records no merge"
    ]
    st = repo.status()
    assert st["merging"] is None and [c["path"] for c in st["staged"]] == ["d/e"]
    repo.ok("switch", "--force", "main")
    assert repo.run("merge", "other").code == 1
    assert warnings_of(repo.ok("merge", "--abort")) == []  # back where it began: no warning
    assert repo.run("merge", "other").code == 1
    r = repo.ok("checkout", "--force", "v1")
    assert warnings_of(r) == [
        "dvfs: warning: the merge of other into main in progress is given up, and a commit "
        "here records no merge"
    ]
    repo.fsck_clean()


def test_abort_never_drops_a_file_edited_since_the_merge_unless_forced(repo: Repo) -> None:
    conflicting(repo)
    before = repo.head_id()
    assert repo.run("merge", "other").code == 1
    repo.write("a", "my resolution, not added yet")  # a conflict
    repo.write("d/e", "my edit of what the merge wrote")
    line = repo.fail("merge", "--abort", fragments=("merge --abort",), code=1)
    assert "uncommitted changes in a, d/e" in line and "--force" in line
    assert repo.read("a") == b"my resolution, not added yet"
    assert repo.read("d/e") == b"my edit of what the merge wrote"
    assert repo.status()["merging"] is not None  # the merge goes on
    # Settled and staged content is the merge's: an abort drops it, as before.
    repo.ok("restore", "--theirs", "a")
    repo.ok("restore", "--source", "other", "d/e")
    repo.ok("merge", "--abort")
    assert repo.head_id() == before and repo.read("a") == b"a from main"
    # --force discards the edits.
    assert repo.run("merge", "other").code == 1
    repo.write("a", "thrown away")
    repo.fail("merge", "other", "--force", fragments=("--force goes with --abort",), code=2)
    repo.ok("merge", "--abort", "--force")
    assert repo.read("a") == b"a from main" and repo.status()["merging"] is None
    repo.fsck_clean()


def test_abort_refused_over_edits_says_how_to_keep_them(repo: Repo) -> None:
    """`merge --abort` over an edit not staged said "commit them, or use --force":
    a commit is refused while conflicts are left, and once they are settled it
    records the merge, the opposite of an abort."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    repo.write("d/e", "my edit of what the merge wrote")
    line = repo.fail("merge", "--abort", fragments=("uncommitted changes in d/e", "--force"))
    assert "commit them" not in line and "copy them elsewhere" in line, line
    repo.fsck_clean()


def test_abort_never_replaces_an_untracked_file_made_during_the_merge_unless_forced(
    repo: Repo,
) -> None:
    """`restore --theirs b` (other deleted b), then notes written to a new b: `merge
    --abort` wrote main's b over them without a word (git refuses: the file is
    untracked). It now refuses, naming it, and `--abort --force` replaces it."""
    conflicting(repo)
    before = repo.head_id()
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", "b")
    repo.write("b", "my notes")
    line = repo.fail("merge", "--abort", fragments=("merge --abort would replace", "--force"))
    assert "b (an untracked file)" in line, line
    assert repo.read("b") == b"my notes" and repo.status()["merging"] is not None
    repo.ok("merge", "--abort", "--force")
    assert repo.head_id() == before and repo.read("b") == b"b from main"
    assert repo.status()["merging"] is None
    repo.fsck_clean()


def test_abort_never_deletes_untracked_files_in_a_directory_the_merge_made(repo: Repo) -> None:
    """Ours a file x, theirs a directory x/f: after `restore --theirs x` and notes
    written into x/, `merge --abort` deleted x/notes to put the file x back."""
    file_against_directory(repo)
    assert repo.run("merge", "other").code == 1
    repo.ok("restore", "--theirs", "x")
    repo.write("x/notes", "my notes")
    line = repo.fail("merge", "--abort", fragments=("merge --abort would replace", "--force"))
    assert "x (a directory with untracked files)" in line, line
    assert repo.read("x/notes") == b"my notes" and repo.status()["merging"] is not None
    (repo.root / "x/notes").rename(repo.root / "notes")
    repo.ok("merge", "--abort")
    assert repo.read("x") == b"x from main" and repo.read("notes") == b"my notes"
    repo.fsck_clean()


def test_abort_leaves_a_merge_whose_record_is_damaged(repo: Repo) -> None:
    """The damaged-record line says to run `dvfs merge --abort`: that works, and says
    what it could not know (which added files were the merge's)."""
    conflicting(repo)
    before = repo.head_id()
    assert repo.run("merge", "other").code == 1
    record = repo.root / ".dvfs" / "MERGE"
    record.write_bytes(record.read_bytes()[:-5])
    repo.fail("status", fragments=(".dvfs/MERGE is damaged", "dvfs merge --abort"))
    r = repo.ok("merge", "--abort")
    assert ".dvfs/MERGE was damaged: going back to the branch's version" in r.err
    assert not record.exists() and repo.head_id() == before
    st = repo.status()
    assert st["merging"] is None and st["staged"] == [] and repo.read("b") == b"b from main"
    repo.fail("merge", "--abort", fragments=("no merge is in progress",))
    repo.fsck_clean()


def test_ours_or_theirs_settle_every_conflict_at_once(repo: Repo) -> None:
    conflicting(repo)
    out = repo.json("merge", "other", "--theirs", "-m", "take theirs", "--json")
    assert out["outcome"] == "merged"
    assert repo.read("a") == b"a from other, longer" and not (repo.root / "b").exists()
    assert repo.show()["message"] == "take theirs" and len(parents(repo)) == 2
    repo.fsck_clean()


def test_ours_and_theirs_together_are_refused_not_the_last_one_taken(repo: Repo) -> None:
    """`merge --ours --theirs` merged with theirs (the last flag given) and `restore
    --theirs --ours` settled with ours, saying nothing of the other."""
    conflicting(repo)
    before = repo.head_id()
    repo.fail("merge", "other", "--ours", "--theirs", fragments=("--ours or --theirs, not both",))
    assert repo.head_id() == before and repo.status()["merging"] is None
    assert repo.run("merge", "other").code == 1
    repo.fail("restore", "--theirs", "--ours", "a", fragments=("--ours or --theirs, not both",))
    assert repo.read("a") == b"a from main"
    assert not any(c["resolved"] for c in repo.status()["merging"]["conflicts"])
    repo.ok("merge", "--abort")
    repo.fsck_clean()


def test_theirs_settles_a_large_tree_in_time_linear_in_its_files(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`merge --theirs` listed the directories of every merged path once for each
    merged path: quadratic, some 25 s for 4,000 files and hours for 100,000."""
    for i in range(800):
        repo.write(f"d{i % 20}/f{i}", str(i))
    repo.write("x", "base")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.write("x", "theirs")
    add_in_process(repo, "x")
    commit_in_process(repo, "theirs")
    repo.ok("switch", "main")
    repo.write("x", "ours")
    add_in_process(repo, "x")
    commit_in_process(repo, "ours")
    calls = 0
    above = merge_ops._above

    def counted(path: bytes) -> list[bytes]:
        nonlocal calls
        calls += 1
        return above(path)

    monkeypatch.setattr(merge_ops, "_above", counted)
    r = Repository(repo.root)
    with Workers(2) as w:
        report = merge_ops.merge(r, "other", w, side="theirs")
    assert report.outcome == "merged"
    assert calls < 10 * 801, calls  # a few walks over the paths, not one per path
    assert repo.read("x") == b"theirs" and repo.status()["modified"] == []
    repo.fsck_clean()


def test_uncommitted_changes_and_unrelated_histories_are_refused(repo: Repo) -> None:
    diverge(repo)
    repo.write("a", "not committed")
    repo.write("b", "staged")
    add_in_process(repo, "b")
    before = repo.head_id()
    line = repo.fail("merge", "other", fragments=("uncommitted changes in a, b",))
    assert "nothing was merged" in line
    assert repo.head_id() == before and repo.read("a") == b"not committed"
    repo.ok("restore", "--staged", "b")
    repo.ok("restore", "a", "b")
    repo.ok("switch", "-c", "alone")  # a branch of its own history, from nothing
    Path(repo.root / ".dvfs" / "refs" / "heads" / "alone").unlink()
    repo.write("z", "z")
    repo.ok("add", "z")
    repo.commit("unrelated")
    repo.fail("merge", "main", fragments=("unrelated histories",))
    repo.fail("merge", "no-such-branch")
    repo.fsck_clean()


def test_untracked_file_in_the_way_stops_the_merge_before_anything_changes(repo: Repo) -> None:
    diverge(repo)
    repo.write("d/e", "mine, untracked")
    before = repo.head_id()
    repo.fail("merge", "other", fragments=("untracked", "d/e"))
    assert repo.head_id() == before and repo.status()["merging"] is None
    assert repo.read("d/e") == b"mine, untracked" and repo.read("b") == b"b"
    repo.fsck_clean()


def test_untracked_file_where_a_directory_goes_stops_the_merge_before_anything_changes(
    repo: Repo,
) -> None:
    """An untracked file d where theirs adds d/e used to stop the merge halfway ("d is
    an untracked file where the version has a directory"), its record written: `status`
    then said every conflict was settled and `commit` recorded the merge without
    theirs' changes."""
    diverge(repo)
    before = repo.head_id()
    for make in (
        lambda: repo.write("d", "mine, untracked"),
        lambda: os.symlink("/", repo.root / "d"),
    ):
        make()
        repo.fail("merge", "other", fragments=("untracked d", "nothing was merged"))
        assert repo.head_id() == before and repo.status()["merging"] is None
        assert repo.read("b") == b"b" and not (repo.root / ".dvfs" / "MERGE").exists()
        (repo.root / "d").unlink()
    assert repo.json("merge", "other", "--json")["outcome"] == "merged"
    assert repo.read("d/e") == b"new in other"
    repo.fsck_clean()


def test_show_says_a_merge_is_one_and_names_both_parents(repo: Repo) -> None:
    """`dvfs show` of a merge printed it as any version, its "since v2" line the only
    trace of one parent; `--json` listed both parents."""
    diverge(repo)
    repo.ok("merge", "other")
    ours, theirs = parents(repo)
    lines = repo.ok("show").out.splitlines()
    assert lines[1] == f"merge    v2 {ours[:10]} + v2 {theirs[:10]}"
    assert repo.show()["parents"] == [ours, theirs]
    assert not repo.ok("show", "v2").out.splitlines()[1].startswith("merge")
    repo.fsck_clean()


def test_a_directory_theirs_made_a_file_is_merged(repo: Repo) -> None:
    """A branch that replaced directory d (of tracked files) with a file d could never
    be merged: "d changed type while it was read", clean tree or not."""
    repo.write("d/a", "a")
    repo.write("k", "k")
    add_in_process(repo, ".")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.ok("rm", "-r", "d")
    repo.write("d", "a file now")
    add_in_process(repo, "d")
    commit_in_process(repo, "d is a file")
    repo.ok("switch", "main")
    repo.write("k", "k from main")
    add_in_process(repo, "k")
    commit_in_process(repo, "main")
    repo.write("d/notes", "mine, untracked")  # kept: the merge stops before anything
    repo.fail("merge", "other", fragments=("untracked d", "nothing was merged"))
    assert repo.read("d/notes") == b"mine, untracked" and repo.read("d/a") == b"a"
    assert repo.status()["merging"] is None
    (repo.root / "d" / "notes").unlink()
    assert repo.json("merge", "other", "--json")["outcome"] == "merged"
    assert repo.read("d") == b"a file now" and repo.read("k") == b"k from main"
    st = repo.status()
    assert st["modified"] == [] and st["staged"] == [] and st["untracked"] == []
    repo.fsck_clean()


def test_parent_steps_read_as_git_reads_them(repo: Repo) -> None:
    diverge(repo)
    repo.ok("merge", "other")
    ours, theirs = parents(repo)
    hist = Repository(repo.root).history
    base = hist.resolve("v1").hex()
    assert parents(repo, "HEAD^0") == [ours, theirs]  # ^0: the merge itself
    for rev, want in [
        ("HEAD^", ours), ("HEAD^1", ours), ("HEAD~", ours), ("HEAD~1", ours),
        ("HEAD^2", theirs), ("v3^2", theirs), ("HEAD^2^", base), ("HEAD^^", base),
        ("HEAD~2", base), ("HEAD^2~1", base), ("HEAD~0001", ours),
    ]:  # fmt: skip
        assert hist.resolve(rev).hex() == want, rev
        assert repo.show(rev)["id"] == want, rev
    for rev, why in [
        ("HEAD^3", "HEAD is v3, which has 2 parents"),
        ("HEAD^2^2", "HEAD^2 is v2, which has one parent"),
        ("v1^", "v1 has no parent"),
        ("HEAD^^^", "HEAD^^ is v1, which has no parent"),
        ("HEAD~3", "HEAD is v3 and v1 has no parent: go back at most 2"),
        ("HEAD~" + "0" * 5000 + "4", "HEAD is v3 and v1 has no parent: go back at most 2"),
    ]:
        assert_error(repo.run("show", rev), f"unknown revision {rev}: {why}", code=2)
    assert_error(repo.run("show", "HEAD^x"), "unknown revision HEAD^x", code=2)
    repo.fsck_clean()


def test_log_graph_draws_the_merge_and_json_carries_parents(repo: Repo) -> None:
    diverge(repo)
    repo.ok("merge", "other", "-m", "join\x1b[31m")
    out = repo.ok("log", "--graph", "--oneline").out.splitlines()
    assert out[0].startswith("*") and "merge" in out[0] and "\x1b" not in "".join(out)
    assert out[1] == "|\\"
    assert any(ln.startswith("|/") for ln in out)
    assert out[-1].startswith("*") and "v1" in out[-1]
    assert sum("*" in ln for ln in out) == 4  # every version, both sides of the merge
    rows = repo.json("log", "--graph", "--json")
    assert [len(r["parents"]) for r in rows] == [2, 1, 1, 0]
    assert rows[0]["graph"] == "*" and {r["version"] for r in rows} == {"v1", "v2", "v3"}
    plain = repo.json("log", "--json")  # first-parent only: v3, v2, v1
    assert [r["version"] for r in plain] == ["v3", "v2", "v1"] and len(plain[0]["parents"]) == 2


def test_a_pull_merge_stopped_by_one_conflict_counts_it_and_says_how_to_give_up(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """It said "1 conflicts", and not how to abort, which `dvfs merge` says."""
    a = make_repo("a")
    a.write("d/a", "base")
    add_in_process(a, "d")
    commit_in_process(a, "base")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(tmp_path, "b")
    a.write("d/a", "from a")
    a.commit("a", "-a")
    a.ok("push")
    b.write("d/a", "from b, longer")
    b.commit("b", "-a")
    r = b.run("pull", "--merge")
    assert r.code == 1, str(r)
    assert "merging origin/main stopped: 1 conflict (d/a); settle each with" in r.out, r.out
    assert "`dvfs merge --abort` gives it up" in r.out
    assert r.out.splitlines()[-1].startswith("merging origin/main stopped")  # the last word
    b.ok("merge", "--abort")
    assert b.read("d/a") == b"from b, longer"


def test_a_remote_made_anew_at_the_same_url_gets_a_way_out_not_a_circle(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The remote re-created at its URL by another repository: `pull` said to run
    `pull --merge`, which said "no version in common ... nothing was merged", and `push`
    said `dvfs pull` merges it. Each now says the histories are unrelated and gives the
    two ways out, which work."""
    a = make_repo("a")
    a.write("mine", "a")
    add_in_process(a, "mine")
    commit_in_process(a, "a")
    dir_remote.add_to(a)
    a.ok("push")
    shutil.rmtree(tmp_path / "remote")
    b = make_repo("b")
    b.write("theirs", "b")
    b.ok("add", "theirs")
    b.commit("b")
    dir_remote.add_to(b)
    b.ok("push")
    force = "`dvfs push --remote origin --force main` replaces the remote's main"
    switch = "`dvfs switch -c NAME origin/main` works on theirs"
    for args in (("pull",), ("pull", "--merge"), ("push",)):
        line = a.fail(*args, fragments=("no version in common", force, switch))
        assert "`dvfs pull" not in line, line
    a.fail("merge", "origin/main", fragments=("nothing was merged", "switch -c NAME origin/main"))
    a.ok("switch", "-c", "other", "origin/main")
    assert a.read("theirs") == b"b" and not (a.root / "mine").exists()
    a.ok("switch", "main")
    a.ok("push", "--remote", "origin", "--force", "main")
    c, _ = dir_remote.clone(tmp_path, "c")
    assert c.read("mine") == b"a"
    a.fsck_clean()
    c.fsck_clean()


def test_merge_push_clone_and_pull_merge(
    remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo("a")
    diverge(repo)
    repo.ok("merge", "other")
    remote.add_to(repo)
    repo.ok("push")
    copy, _ = remote.clone(tmp_path, "b")
    copy.fsck_clean()
    assert copy.read("a") == b"a from main" and copy.read("d/e") == b"new in other"
    assert len(parents(copy)) == 2
    # Both sides see the merge's second parent: `other`'s version came along.
    assert copy.cat(f"{parents(copy)[1]}:b") == b"b from other"
    # Diverge the two clones, then pull: refused with the hint, then --merge.
    copy.write("x", "from b")
    copy.ok("add", "x")
    copy.commit("b's work")
    copy.ok("push")
    repo.write("y", "from a")
    repo.ok("add", "y")
    repo.commit("a's work")
    assert_error(repo.run("pull"), "diverged", "dvfs pull --merge")
    assert_ok(repo.run("pull", "--merge"))
    assert repo.read("x") == b"from b" and repo.read("y") == b"from a"
    assert len(parents(repo)) == 2
    (track,) = repo.status()["remotes"]  # ahead by a's work and the merge, not diverged
    assert (track["ahead"], track["behind"]) == (2, 0)
    repo.ok("push")  # the remote's tip is below the merge through its second parent
    assert_ok(copy.run("pull"))
    assert copy.read("y") == b"from a"
    # fetch brings no file data: the merge downloads what it writes, on demand
    repo.write("big/z", b"z" * 300_000)
    repo.ok("add", "big")
    repo.commit("a's data")
    repo.ok("push")
    copy.write("w", "from b again")
    copy.ok("add", "w")
    copy.commit("b again")
    copy.ok("fetch")
    out = copy.json("merge", "origin/main", "--json")
    assert out["outcome"] == "merged" and out["fetched"] >= 1
    assert copy.read("big/z") == b"z" * 300_000 and copy.read("w") == b"from b again"
    repo.fsck_clean()
    copy.fsck_clean()


def conflicts_left(repo: Repo) -> list[str]:
    """The paths of the merge in progress still in conflict."""
    return [c["path"] for c in repo.status()["merging"]["conflicts"] if not c["resolved"]]


def test_settling_on_a_side_whose_data_is_damaged_leaves_the_conflict(repo: Repo) -> None:
    """`dvfs restore --theirs a` where theirs' chunk of `a` is damaged failed to write
    the file, yet staged theirs' `a` and marked the conflict settled: `dvfs commit`
    would then record bytes the working tree never held, from a chunk that cannot be
    read. Now that conflict stays, with the file and the index as they were, and the
    error says why; another path named in the same command settles as asked."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    where = flip_byte_of(repo.root / ".dvfs" / "objects", b"a from other, longer")
    r = repo.run("restore", "--theirs", "a", "b")
    line = assert_error(r, "could not restore a from theirs", "is corrupt", code=1)
    assert "the conflict at a stays, with the files and the index as they were" in line, r
    assert "1 conflict settled, 1 not" in r.out, r
    assert conflicts_left(repo) == ["a"]
    assert repo.read("a") == b"a from main" and not (repo.root / "b").exists()
    st = repo.status()
    assert [c["path"] for c in st["staged"] if c["path"] == "a"] == [] and st["modified"] == []
    repo.fail("commit", "-m", "too early", fragments=("still in conflict", "a"))
    flip_back(*where)
    repo.ok("restore", "--theirs", "a")
    assert conflicts_left(repo) == [] and repo.read("a") == b"a from other, longer"
    repo.commit("merged")
    assert repo.cat("HEAD:a") == b"a from other, longer"
    repo.fsck_clean()


def test_a_checkout_of_a_path_whose_data_is_damaged_leaves_its_conflict(repo: Repo) -> None:
    """`dvfs checkout other a` during a merge settles a's conflict as other holds it;
    with other's chunk of `a` damaged, the file was not written and the index kept
    ours, yet the conflict was marked settled: the next commit took ours' `a` without
    a word. The conflict now stays until a restore that writes it."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    where = flip_byte_of(repo.root / ".dvfs" / "objects", b"a from other, longer")
    assert_error(repo.run("checkout", "other", "a"), "could not restore a", "corrupt", code=1)
    assert conflicts_left(repo) == ["a", "b"] and repo.read("a") == b"a from main"
    flip_back(*where)
    repo.ok("checkout", "other", "a")
    assert conflicts_left(repo) == ["b"] and repo.read("a") == b"a from other, longer"
    repo.ok("restore", "--ours", "b")
    repo.commit("merged")
    assert repo.cat("HEAD:a") == b"a from other, longer"
    repo.fsck_clean()


def test_restore_of_a_side_with_worktree_writes_the_file_alone(repo: Repo) -> None:
    """`dvfs restore --theirs --worktree a` staged theirs' `a` and settled the
    conflict, as without --worktree. As git's `restore --ours|--theirs` (which only
    ever writes the working file), it now writes the file alone: nothing staged, the
    conflict left for `dvfs add` (or a later restore without --worktree) to settle."""
    conflicting(repo)
    assert repo.run("merge", "other").code == 1
    r = repo.ok("restore", "--theirs", "--worktree", "a")
    assert "nothing staged, 1 conflict there left to settle" in r.out, r
    assert repo.read("a") == b"a from other, longer" and conflicts_left(repo) == ["a", "b"]
    st = repo.status()
    assert st["modified"] == ["a"] and "a" not in [c["path"] for c in st["staged"]], st
    repo.ok("restore", "--ours", "-W", "a")
    assert repo.read("a") == b"a from main" and repo.status()["modified"] == []
    repo.ok("restore", "--theirs", "-W", "a")
    repo.ok("add", "a")
    assert conflicts_left(repo) == ["b"]
    repo.ok("restore", "--ours", "b")
    repo.commit("merged")
    assert repo.cat("HEAD:a") == b"a from other, longer" and repo.cat("HEAD:b") == b"b from main"
    repo.fsck_clean()


def test_a_merge_given_up_does_not_come_back_with_its_branchs_name(repo: Repo) -> None:
    """`dvfs switch -c x` during a merge says the merge is given up; yet after `dvfs
    branch -D main` and `dvfs branch -m x main` it was in progress again (HEAD on a
    branch named main at the version it began from), and the next commit recorded a
    merge the user was told was gone. Deleting (or renaming) the branch a given-up
    merge names now forgets it."""
    conflicting(repo)
    ours = repo.head_id()
    assert repo.run("merge", "other").code == 1
    r = repo.ok("switch", "-c", "x")
    assert any("is given up" in w for w in warnings_of(r)), r
    repo.ok("branch", "-D", "main")
    repo.ok("branch", "-m", "x", "main")
    st = repo.status()
    assert st["branch"] == "main" and st["merging"] is None, st
    repo.commit("what the merge staged, as a plain commit")
    assert parents(repo) == [ours]
    repo.fsck_clean()


def test_a_damaged_file_side_of_a_directory_conflict_leaves_the_directory_staged(
    repo: Repo,
) -> None:
    """Ours made `d/f` a directory, theirs edited the file `d/f`; `dvfs restore --theirs
    d/f` with theirs' data damaged left the conflict, but had unstaged ours' `d/f/x` on
    the way: status then listed it as a staged removal and an untracked file. It stays
    staged now, as it stays on disk."""
    for rel, text in (("d/f", "base"), ("d/k", "k")):
        repo.write(rel, text)
    add_in_process(repo, "d")
    commit_in_process(repo, "base")
    repo.ok("switch", "-c", "other")
    repo.write("d/f", "the file, as other has it")
    add_in_process(repo, "d")
    commit_in_process(repo, "other")
    repo.ok("switch", "main")
    (repo.root / "d/f").unlink()
    repo.write("d/f/x", "inner")
    add_in_process(repo, "d")
    commit_in_process(repo, "main")
    assert repo.run("merge", "other").code == 1
    where = flip_byte_of(repo.root / ".dvfs" / "objects", b"the file, as other has it")
    assert_error(repo.run("restore", "--theirs", "d/f"), "the conflict at d/f stays", code=1)
    st = repo.status()
    assert st["staged"] == [] and st["untracked"] == [] and st["modified"] == [], st
    assert conflicts_left(repo) == ["d/f"] and repo.read("d/f/x") == b"inner"
    flip_back(*where)
    repo.ok("restore", "--theirs", "d/f")
    assert conflicts_left(repo) == [] and repo.read("d/f") == b"the file, as other has it"
    repo.commit("merged")
    repo.fsck_clean()


def test_a_file_changed_while_a_pull_merge_deletes_it_is_kept_and_reported(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`dvfs pull --merge` merges as `dvfs merge` does: a line appended to a file the
    remote deleted, after the merge found it clean, is kept and named, and the pull
    exits 1 (it said nothing and exited 0, the file kept but left unsaid)."""
    a = make_repo("a")
    a.write("d/a.txt", "base\n")
    a.write("d/gone.txt", "old\n")
    add_in_process(a, "d")
    commit_in_process(a, "base")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(tmp_path, "b")
    a.ok("rm", "d/gone.txt")
    a.commit("a")
    a.ok("push")
    b.write("d/a.txt", "from b\n")
    b.commit("b", "-a")
    proc = run_as_dvfs(b.root, RACING_DELETE, "pull", "--merge")
    assert proc.returncode == 1, proc.stderr
    assert b.read("d/gone.txt") == b"old\nmy line\n"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "d/gone.txt" in lines[0] and "kept as changed" in lines[0]
    assert "changed while v3 was being written" in lines[0], lines
    assert b.status()["untracked"] == ["d/gone.txt"]
    b.fsck_clean()


RACING_LOST = """
import vfs.ops.merging as merging
from vfs.cli import main
real = merging.reached
def reached(step):
    if step == "written":
        with open("big.bin", "ab") as f:
            f.write(b"my line\\n")
    return real(step)
merging.reached = reached
main()
"""


def test_a_file_changed_before_the_merge_takes_it_out_of_the_working_tree_is_kept(
    make_repo: RepoFactory,
) -> None:
    """A file theirs changed whose data cannot be written (here: not its digest) is
    left not checked out, ours' copy deleted; a line appended to that copy after the
    merge found it clean went with it. It is kept, named, and the merge exits 1."""
    repo = make_repo("three-way")
    commit_files(repo, {"a.txt": "a", "big.bin": rand(3 << 20, seed=1)}, "base")
    repo.ok("switch", "-c", "other")
    commit_files(repo, {"big.bin": rand(3 << 20, seed=2)}, "other")
    repo.ok("switch", "main")
    commit_files(repo, {"a.txt": "a2"}, "main")
    r = Repository(repo.root)
    r.refs.update("refs/tags/lie", forge_digest(r, r.history.resolve("other"), b"big.bin",
                                                bytes(32)), None)  # fmt: skip
    proc = run_as_dvfs(repo.root, RACING_LOST, "merge", "lie")
    assert proc.returncode == 1, proc.stderr
    assert repo.read("big.bin") == rand(3 << 20, seed=1) + b"my line\n"
    assert "could not restore big.bin" in proc.stderr
    assert "kept as changed" in proc.stderr, proc.stderr
    assert repo.status()["modified"] == ["big.bin"]
    repo.fsck_clean()
