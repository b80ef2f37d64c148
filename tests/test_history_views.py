"""Looking at history: ``log`` by path, with tags and parameters; ``diff`` by path and of
parameters; ``show`` as a summary or every file; ``status`` of thousands of files.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

import vfs
from tests.support.cli import (
    Repo,
    add_in_process,
    assert_error,
    commit_files,
    commit_in_process,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from vfs.model.version_codec import encode_version
from vfs.ops.browse import log as browse_log
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind


def versions(repo: Repo, *args: str) -> list[str]:
    """The version numbers ``dvfs log ARGS --json`` lists."""
    return [r["version"] for r in repo.json("log", "--json", *args)]


def history(repo: Repo) -> None:
    """v1: a/, b/, c.txt; v2: b/ changed; v3: a/ renamed inside; v4: only an mtime;
    v5: c.txt removed; v6: b/deep/x changed."""
    for i in range(20):
        repo.write(f"a/sub{i % 4}/f{i}.txt", f"a{i}")
    repo.write("b/deep/x", "x1")
    repo.write("b/y", "y")
    repo.write("c.txt", "c")
    repo.ok("add", ".")
    repo.ok("commit", "-m", "v1", "--tag", "first", "--param", "lr=1e-3")
    repo.write("b/y", "y2")
    repo.ok("add", "b")
    repo.ok("commit", "-m", "v2", "--param", "lr=3e-4", "--param", "opt=yes")
    os.rename(repo.root / "a/sub0/f0.txt", repo.root / "a/sub0/g0.txt")
    repo.ok("add", "a")
    repo.ok("commit", "-m", "v3")
    later = time.time() + 100
    os.utime(repo.root / "b/y", (later, later))
    repo.ok("add", "b")
    repo.ok("commit", "-m", "v4 mtime only")
    repo.ok("rm", "c.txt")
    repo.ok("commit", "-m", "v5")
    repo.write("b/deep/x", "x2")
    repo.ok("add", "b")
    repo.ok("commit", "-m", "v6", "--tag", "last")


@pytest.fixture(scope="module")
def history_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository :func:`history` makes, made once; tests get copies."""
    repo = init_repo(tmp_path_factory.mktemp("history") / "repo")
    history(repo)
    return repo.root


@pytest.fixture
def historied(history_template: Path, tmp_path: Path) -> Repo:
    """A copy of the repository :func:`history` makes, for the test to look at and change."""
    shutil.copytree(history_template, tmp_path / "repo", symlinks=True)
    return Repo(tmp_path / "repo")


def test_log_lists_the_versions_that_changed_a_path(historied: Repo) -> None:
    repo = historied
    assert versions(repo) == ["v6", "v5", "v4", "v3", "v2", "v1"]
    assert versions(repo, "--", "b") == ["v6", "v2", "v1"]  # v4 changed an mtime alone
    assert versions(repo, "b/deep") == ["v6", "v1"]
    assert versions(repo, "a/sub0/g0.txt") == ["v3"]
    assert versions(repo, "--", "a/sub0/f0.txt") == ["v3", "v1"]  # gone from the tree
    assert versions(repo, "--", "c.txt") == ["v5", "v1"]
    assert versions(repo, "v4", "--", "b") == ["v2", "v1"]
    assert versions(repo, "v4", "b", "a/sub0") == ["v3", "v2", "v1"]
    assert versions(repo, "-n", "1", "--", "b") == ["v6"]
    assert versions(repo, "--", "nothing/here") == []
    # from a subdirectory, paths are relative to it
    sub = run(repo.root / "b", "log", "--json", "deep")
    assert [r["version"] for r in sub.json()] == ["v6", "v1"]
    # c.txt is gone from the working tree and HEAD: a path from history needs --
    line = repo.fail("log", "c.txt", code=2)
    assert "neither a revision nor a path" in line and "-- c.txt" in line
    # a file named like a tag is ambiguous without --
    repo.write("first", "a file named like the tag")
    repo.fail("log", "first", fragments=("both a revision and a path",), code=2)
    assert versions(repo, "first", "--") == ["v1"]
    assert versions(repo, "--", "first") == []
    repo.fail("log", "v1", "v2", "--", "b", fragments=("at most one revision",), code=2)
    repo.fsck_clean()


def test_log_by_path_reads_only_the_trees_on_the_way(historied: Repo) -> None:
    repo = historied
    r = Repository.find(repo.root)
    rows = browse_log(r, None, None, [b"b/deep"])
    assert [row["version"] for row in rows] == ["v6", "v1"]
    # Each version's a/ and a/sub0 trees: none of them was read by that log.
    other = Repository.find(repo.root).history
    skipped = set()
    for row in repo.json("log", "--json"):
        tree = other.version(bytes.fromhex(row["id"])).tree
        for path in (b"a", b"a/sub0"):
            entry = other.lookup(tree, path)
            assert entry is not None
            skipped.add(entry.subtree)
    info = r.history.tree.cache_info
    before = info().misses
    for tree in skipped:
        r.history.tree(tree)
    assert info().misses - before == len(skipped) == 4  # a/ and a/sub0 of v1 and of v3


def test_log_shows_tags_branches_and_parameters(historied: Repo) -> None:
    repo = historied
    repo.ok("branch", "keep", "v2")
    out = repo.ok("log").out
    assert "(tag: last, main)" in out and "(tag: first)" in out and "(keep)" in out
    rows = repo.json("log", "--json")
    assert rows[0]["tags"] == ["last"] and rows[0]["branches"] == ["main"]
    assert rows[4]["parameters"] == {"lr": 0.0003, "opt": "yes"}
    lines = repo.ok("log", "--params", "v2").out.splitlines()
    assert lines[2:4] == ["       lr = 0.0003", "       opt = yes"]
    assert lines[-1] == "       lr = 0.001"
    assert "lr =" not in repo.ok("log").out


def test_log_without_remote_loads_no_remote_code(repo: Repo) -> None:
    """A plain ``log`` imports none of push, pull and the remotes' settings (which cost
    it 0.07 s of CPU and 8 MiB): only ``--remote`` needs them."""
    commit_files(repo, {"d/a.txt": "a"}, "one")
    r = repo.ok("log", "-n", "1", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert "one" in r.out
    lines = [line for line in r.err.splitlines() if line.startswith("import time:")]
    imported = {line.rpartition("|")[2].strip() for line in lines}
    assert "vfs.ops.browse" in imported
    assert imported & {"vfs.ops.sync", "vfs.remote.config"} == set()
    r = repo.run("log", "--remote", "nowhere")
    assert r.code != 0 and "nowhere" in r.err, str(r)
    repo.fsck_clean()


def test_log_oneline_shows_parameters_when_asked(historied: Repo) -> None:
    repo = historied
    for graph in ([], ["--graph"]):
        lines = repo.ok("log", "--oneline", "--params", "-n", "2", *graph, "v2").out.splitlines()
        assert [ln.split("  ", 1)[-1].strip() for ln in lines[1:3]] == ["lr = 0.0003", "opt = yes"]
        assert "v1" in lines[3] and lines[4].endswith("lr = 0.001") and len(lines) == 5
    assert "lr =" not in repo.ok("log", "--oneline").out
    repo.fsck_clean()


def test_a_rename_among_copies_pairs_each_file_with_its_own_name(repo: Repo) -> None:
    """Two files of the same bytes moved: each rename named the first removed path of
    that content, so `w/b.txt` was said to come from `x/a.txt`."""
    repo.write("x/a.txt", "same\n")
    repo.write("y/b.txt", "same\n")
    add_in_process(repo, "x", "y")
    commit_in_process(repo, "one")
    for d in ("w", "z"):
        (repo.root / d).mkdir()
    repo.ok("mv", "y/b.txt", "w/b.txt")
    repo.ok("mv", "x/a.txt", "z/a.txt")
    expected = {("w/b.txt", "y/b.txt"), ("z/a.txt", "x/a.txt")}
    staged = repo.status()["staged"]
    assert {(c["path"], c["old_path"]) for c in staged} == expected, staged
    repo.commit("two")
    got = repo.json("diff", "v1", "v2", "--json")["changes"]
    assert {(c["path"], c["old_path"]) for c in got} == expected, got
    assert "renamed:  y/b.txt -> w/b.txt" in repo.ok("diff", "v1", "v2").out
    repo.fsck_clean()


def test_diff_by_path_and_of_parameters(historied: Repo) -> None:
    repo = historied
    got = repo.json("diff", "v1", "v6", "--json")
    assert {c["path"] for c in got["changes"]} == {"b/y", "b/deep/x", "a/sub0/g0.txt", "c.txt"}
    assert got["parameters"] == [
        {"status": "removed", "name": "lr", "old": 0.001},
    ]
    assert got["summary"]["parameters"] == 1
    only = repo.json("diff", "v1", "v6", "b/deep", "a", "--json")
    assert {(c["status"], c["path"]) for c in only["changes"]} == {
        ("modified", "b/deep/x"), ("renamed", "a/sub0/g0.txt"),
    }  # fmt: skip
    assert only["parameters"] == []  # paths ask about files
    assert (
        repo.json("diff", "--json", "v1", "v6", "--", "c.txt")["changes"][0]["status"] == "removed"
    )
    out = repo.ok("diff", "v1", "v2").out.splitlines()
    assert out == [
        "modified: b/y (1 B -> 2 B)",
        "param changed:  lr: 0.001 -> 0.0003",
        "param added:    opt = yes",
        "0 added, 0 removed, 1 modified, 0 renamed (+2 B, -1 B), 2 parameters changed",
    ]
    # against the working tree, by path
    repo.write("b/y", "y3")
    repo.write("a/sub1/f1.txt", "changed")
    got = repo.json("diff", "b", "--json")
    assert [c["path"] for c in got["changes"]] == ["b/y"] and got["parameters"] == []
    against_v2 = repo.json("diff", "v2", "a", "--json")["changes"]
    assert [(c["status"], c["path"]) for c in against_v2] == [
        ("renamed", "a/sub0/g0.txt"), ("modified", "a/sub1/f1.txt"),
    ]  # fmt: skip
    repo.fail("diff", "v1", "v2", "v3", "--", "b", fragments=("at most two revisions",), code=2)
    repo.fsck_clean()


def test_show_summarises_and_lists_files_on_request(historied: Repo) -> None:
    repo = historied
    out = repo.ok("show", "v3").out
    assert "23 files, " in out and " in 7 directories" in out
    assert "since v2: 0 added, 0 modified, 0 removed, 1 renamed" in out
    assert "largest directories:" in out
    assert out.index("  a/") < out.index("  b/")  # larger first
    assert "1 file   at the top" in out  # c.txt
    assert "f1.txt" not in out and "`dvfs show v3 --files` lists every file" in out
    files = repo.ok("show", "v3", "--files").out
    assert "a/sub1/f1.txt" in files and "a/sub0/g0.txt" in files and "largest" not in files
    data = repo.json("show", "v3", "--json")
    assert len(data["files"]) == 23 and data["files"]["a/sub0/g0.txt"]["added"] == "v3"
    assert data["changes"]["since"] == "v2" and data["changes"]["renamed"] == 1
    assert [d["path"] for d in data["top_directories"]["directories"]] == ["a", "b"]
    first = repo.json("show", "v1", "--json")
    assert first["changes"]["since"] is None and first["changes"]["added"] == 23
    assert "first version: 23 added" in repo.ok("show", "v1").out


def test_show_names_another_branchs_versions_by_a_revision_that_reads_them(
    repo: Repo,
) -> None:
    """`dvfs show side` said "since v2" and listed a file as added in v2, numbered on
    side's own chain: on main, `v2` is main's second version, another one."""
    repo.write("a.txt", "a")
    add_in_process(repo, "a.txt")
    repo.ok("commit", "-m", "one")
    repo.ok("switch", "-c", "side")
    for name in ("c.txt", "d.txt"):
        repo.write(name, name)
        repo.ok("add", name)
        repo.ok("commit", "-m", name)
    repo.ok("switch", "main")
    repo.write("b.txt", "b")
    repo.ok("add", "b.txt")
    repo.ok("commit", "-m", "two")
    hist = Repository(repo.root).history
    side2 = hist.version(hist.resolve("side")).parents[0].hex()[:10]
    data = repo.json("show", "side", "--json")
    assert data["changes"]["since"] == side2
    assert data["files"]["c.txt"]["added"] == side2 and data["files"]["a.txt"]["added"] == "v1"
    assert f"since {side2}: 1 added" in repo.ok("show", "side").out
    assert repo.cat(f"{side2}:c.txt") == b"c.txt"  # it reads as the version meant
    assert repo.json("show", "v2", "--json")["changes"]["since"] == "v1"  # main's own
    # a checkout of a path from side, HEAD staying on main, said "restored from v3"
    out = repo.ok("checkout", "side", "c.txt").out
    assert out.startswith(f"restored from {hist.resolve('side').hex()[:10]}: 1 written"), out
    repo.fsck_clean()


def test_status_of_thousands_of_files_is_shown_by_directory(repo: Repo) -> None:
    repo.write("data/keep.txt", "k")
    add_in_process(repo, "data")
    repo.ok("commit", "-m", "one")
    for d in ("train", "val"):
        for i in range(1000 if d == "train" else 40):
            repo.write(f"data/{d}/{i // 100}/{i}.png", f"{d}{i}")
    repo.write("data/new.txt", "n")
    out = repo.ok("status").out.splitlines()
    assert len(out) < 40, out
    assert "  data/train/0/ (100 files)" in out and "  data/val/0/ (40 files)" in out
    assert "  data/new.txt" in out
    assert out[-1] == "(long lists are shown by directory: `dvfs status -v` lists every file)"
    assert len(repo.ok("status", "-v").out.splitlines()) > 1040
    assert len(repo.status()["untracked"]) == 1041
    said = repo.ok("add", "data").out  # counts as commit prints them
    assert said == "staged 1,042 files, read 1,041 (7.9 KiB)\n"  # (keep.txt staged as it was)
    out = repo.ok("status").out.splitlines()
    assert "  added:    data/train/5/ (100 files, 800 B)" in out, out
    assert "  added:    data/new.txt (1 B)" in out
    repo.ok("commit", "-m", "two")
    for i in range(40):
        os.unlink(repo.root / f"data/val/0/{i}.png")
    out = repo.ok("status").out.splitlines()
    assert "  deleted:  data/val/0/ (40 files)" in out
    repo.fsck_clean()


def test_an_unknown_path_is_an_error_not_an_empty_answer(tmp_path: Path, repo: Repo) -> None:
    repo.write("x", "1")
    add_in_process(repo, "x")
    repo.ok("commit", "-m", "one")
    line = assert_error(run(repo.root, "diff", "typo"), code=2)
    assert "neither a revision nor a path" in line


def two_versions_with_one_prefix(repo: Repo) -> str:
    """Store versions (of HEAD's tree, on no branch) until two ids share 4 hex digits;
    that prefix."""
    r = Repository(repo.root)
    hist = r.history
    head = hist.version(hist.resolve("HEAD"))
    seen: dict[str, bytes] = {}
    with r.locked():
        for i in range(20_000):
            made = head._replace(message=f"twin {i}", parents=())
            oid, _ = r.store.put(ObjKind.VERSION, encode_version(made))
            if (prefix := oid.hex()[:4]) in seen:
                break
            seen[prefix] = oid
        r.store.sync()
        r.store.close()
    return prefix


def test_an_ambiguous_id_prefix_is_named_so_by_log_and_diff(repo: Repo) -> None:
    """`dvfs log PREFIX` and `dvfs diff PREFIX` said "PREFIX is neither a revision nor a
    path of the working tree or HEAD" where `show` said the prefix was ambiguous."""
    repo.write("a.txt", "a")
    add_in_process(repo, "a.txt")
    commit_in_process(repo, "one")
    prefix = two_versions_with_one_prefix(repo)
    for args in (["show", prefix], ["log", prefix], ["diff", prefix], ["diff", "HEAD", prefix]):
        assert_error(repo.run(*args), f"id prefix {prefix} is ambiguous", "give more characters")
    assert_error(repo.run("log", "nothing-here"), "neither a revision nor a path")
    repo.fsck_clean()


def test_the_hint_for_a_path_only_history_has_works_as_typed(repo: Repo) -> None:
    """`dvfs log 'my file'` (gone from the working tree and HEAD) said to write
    `-- my file`, which the shell splits into two paths."""
    repo.write("my file", "a")
    add_in_process(repo, "my file")
    commit_in_process(repo, "one")
    repo.ok("rm", "my file")
    repo.commit("two")
    line = assert_error(repo.run("log", "my file"), "neither a revision nor a path", code=2)
    assert line.endswith("write `-- 'my file'`)"), line
    assert [v["version"] for v in repo.json("log", "--json", "--", "my file")] == ["v2", "v1"]
    repo.fsck_clean()


def grow(root: Path, branch: str, count: int, label: str) -> None:
    """``count`` versions on ``branch`` over its tip, each with the tip's tree (made
    as records: a history hundreds of commits long in a moment)."""
    r = Repository(root)
    with r.locked():
        tip = r.refs.get(f"refs/heads/{branch}")
        assert tip is not None
        top = r.history.version(tip)
        oid = tip
        for i in range(count):
            made = top._replace(number=top.number + i + 1, parents=(oid,), message=f"{label}{i}")
            oid, _ = r.store.put(ObjKind.VERSION, encode_version(made))
        r.store.sync()
        r.refs.update(f"refs/heads/{branch}", oid, tip)
        r.store.close()


def vn(repo: Repo, n: int) -> str:
    """The id ``v<n>`` names, as a new process finds it."""
    r = Repository(repo.root)
    try:
        return r.history.resolve(f"v{n}").hex()
    finally:
        r.store.close()


def test_vn_is_found_without_walking_the_whole_history_and_stays_right(repo: Repo) -> None:
    """`vN` was a walk down the branch from its tip, one version record a step: 0.18 s
    for `v3` of 1,500 versions, and growing with the history. The chain is kept in
    .dvfs/numbers now; it must name the same versions on every branch, after gc, and
    whatever the file holds."""
    repo.write("f.txt", "one")
    repo.ok("add", "f.txt")
    repo.commit("one")
    grow(repo.root, "main", 39, "m")
    main = {r["version"]: r["id"] for r in repo.json("log", "--json")}
    kept = repo.root / ".dvfs" / "numbers"
    assert not kept.exists()
    assert repo.json("show", "v3", "--format", "json")["id"] == main["v3"]
    assert kept.read_bytes()[8:] == b"".join(bytes.fromhex(main[f"v{n}"]) for n in range(1, 41))
    for n in (1, 2, 20, 39, 40):
        assert vn(repo, n) == main[f"v{n}"]
    # another branch from v5, longer than main: its own v6.. are its own
    repo.ok("branch", "side", "v5")
    grow(repo.root, "side", 45, "s")
    repo.ok("switch", "side")
    side = {r["version"]: r["id"] for r in repo.json("log", "--json")}
    assert side["v5"] == main["v5"] and side["v6"] != main["v6"]
    for n in (3, 5, 6, 30, 50):
        assert vn(repo, n) == side[f"v{n}"]
    repo.ok("switch", "main")
    for n in (3, 6, 30, 40):
        assert vn(repo, n) == main[f"v{n}"]
    repo.fail("show", "v41", fragments=("v1 to v40",))
    repo.ok("checkout", "v3")  # detached on main's chain: vN still counts along main
    assert (vn(repo, 2), vn(repo, 30)) == (main["v2"], main["v30"])
    repo.ok("checkout", side["v20"])  # detached off it: along its own chain
    assert (vn(repo, 2), vn(repo, 20)) == (side["v2"], side["v20"])
    repo.fail("show", "v21", fragments=("detached",))
    repo.ok("switch", "main")
    # what the file says is checked: ids swapped, cut short, or of versions gc deleted
    ids = kept.read_bytes()[8:]
    kept.write_bytes(b"DVFSNUM1" + ids[32:64] + ids[:32] + ids[64:])
    assert vn(repo, 1) == main["v1"]
    kept.write_bytes(b"DVFSNUM1" + ids[:-7])
    assert vn(repo, 2) == main["v2"]
    repo.ok("switch", "side")
    assert vn(repo, 50) == side["v50"]  # side kept
    repo.ok("switch", "main")
    repo.ok("branch", "-D", "side")
    repo.ok("gc")
    for n in (7, 40):
        assert vn(repo, n) == main[f"v{n}"]
    repo.fsck_clean()


def test_log_n_0_lists_nothing_as_versions_limit_0_does(repo: Repo) -> None:
    """`dvfs log -n 0` was refused ("0 is not in the range x>=1") where the Python
    API's repo.versions(limit=0) gives [] (and git log -n 0 lists nothing)."""
    commit_files(repo, {"a.txt": b"one\n"}, "one")
    for flags in ((), ("--oneline",), ("--graph",)):
        assert repo.ok("log", "-n", "0", *flags).out == ""
    assert repo.json("log", "-n", "0", "--json") == []
    with vfs.Repo(repo.root) as api:
        assert api.versions(limit=0) == [] and len(api.versions(limit=1)) == 1
    assert_error(repo.run("log", "-n", "-1"), "-1 is not in the range x>=0", code=2)
    repo.fsck_clean()


def test_lineage_names_a_version_of_another_branch_as_its_since_does(repo: Repo) -> None:
    """`dvfs lineage out.txt side` said "out.txt in v2 (since 2dc7027277)": side's v2,
    numbered on side, beside the id its own "since" gave the same version."""
    commit_files(repo, {"in.txt": b"x\n"}, "one")
    repo.ok("switch", "-c", "side")
    repo.ok("run", "-n", "s", "-d", "in.txt", "-o", "out.txt", "--", "cp in.txt out.txt")
    side = repo.commit("side")[:10]
    repo.ok("switch", "main")
    commit_files(repo, {"y.txt": b"y\n"}, "main two")
    assert repo.ok("lineage", "out.txt", "side").out.startswith(f"out.txt in {side} (since ")
    assert repo.ok("lineage", "in.txt", "side", "--downstream").out.startswith(
        f"in.txt in {side} is read by:"
    )
    assert_error(repo.run("lineage", "nope", "side"), f"nope is not in {side}", code=2)
    assert repo.json("lineage", "out.txt", "side", "--json")["version"] == "v2"  # with its id
    assert repo.ok("lineage", "in.txt", "v1").out.startswith("in.txt in v1 (since v1)")
    repo.fsck_clean()
