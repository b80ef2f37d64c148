"""Ignore rules: ``.dvfsignore`` files, built-in defaults, ``add``, ``status``, ``check-ignore``.

The rules are checked on real directory trees, first through the library (git's
semantics, case by case), then through the command line as a user meets them. A
``.dvfsignore`` may come from someone else's version, so hostile ones are tried too.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    warnings_of,
)
from vfs.worktree.ignore import (
    BUILTIN,
    BUILTIN_PARTS,
    BUILTIN_SOURCE,
    MAX_FILE,
    MAX_STARS,
    Ignores,
    _builtin,
    _compile,
)


def tree(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def rules(root: Path, tracked: list[bytes] | None = None) -> tuple[Ignores, list[str]]:
    warned: list[str] = []
    return Ignores(root, lambda: sorted(tracked or []), warned.append), warned


def verdicts(ign: Ignores, paths: list[str]) -> dict[str, str | None]:
    """Each path's deciding rule (``None``: no rule), ``!``-rules marked as such."""
    out: dict[str, str | None] = {}
    for p in paths:
        m = ign.match(p.rstrip("/").encode(), is_dir=p.endswith("/"))
        out[p] = None if m is None else ("ignored by " if m.ignored else "kept by ") + m.rule()
    return out


def test_git_semantics(tmp_path: Path) -> None:
    tree(
        tmp_path,
        {
            ".dvfsignore": "# top\n*.tmp\n/only-top.txt\nbuild/\n!important.pyc\nlogs\n",
            "data/.dvfsignore": "!keep.tmp\nraw/*.csv\n/local.txt\n",
            "data/raw/deep/.dvfsignore": "!*.csv\n",
            "build/.dvfsignore": "!out.bin\n",
        },
    )
    ign, warned = rules(tmp_path)
    with ign:
        got = verdicts(
            ign,
            [
                "a.tmp", "data/x/b.tmp", "data/keep.tmp", "data/x/keep.tmp",
                "only-top.txt", "data/only-top.txt",
                "build/", "build/out.bin", "data/build/", "data/build/f",
                "x.pyc", "data/__pycache__/", "data/__pycache__/m.py", "important.pyc",
                "data/raw/a.csv", "data/raw/deep/b.csv", "data/raw/deep/c.csv",
                "data/local.txt", "local.txt", "logs", "data/logs/", "data/logs/today",
                "notes.txt", ".DS_Store", "data/.ipynb_checkpoints/", "dvfs.lock", "data/dvfs.lock",
            ],
        )  # fmt: skip
    assert got == {
            "a.tmp": "ignored by .dvfsignore:2:*.tmp",
            "data/x/b.tmp": "ignored by .dvfsignore:2:*.tmp",
            # a deeper file wins, and applies below its directory too
            "data/keep.tmp": "kept by data/.dvfsignore:1:!keep.tmp",
            "data/x/keep.tmp": "kept by data/.dvfsignore:1:!keep.tmp",
            "only-top.txt": "ignored by .dvfsignore:3:/only-top.txt",
            "data/only-top.txt": None,
            "build/": "ignored by .dvfsignore:4:build/",
            # below an ignored directory, nothing is brought back
            "build/out.bin": "ignored by .dvfsignore:4:build/",
            "data/build/": "ignored by .dvfsignore:4:build/",
            "data/build/f": "ignored by .dvfsignore:4:build/",
            "x.pyc": "ignored by (built-in):4:*.pyc",
            "data/__pycache__/": "ignored by (built-in):2:__pycache__/",
            "data/__pycache__/m.py": "ignored by (built-in):2:__pycache__/",
            "important.pyc": "kept by .dvfsignore:5:!important.pyc",
            "data/raw/a.csv": "ignored by data/.dvfsignore:2:raw/*.csv",
            "data/raw/deep/b.csv": "kept by data/raw/deep/.dvfsignore:1:!*.csv",
            "data/raw/deep/c.csv": "kept by data/raw/deep/.dvfsignore:1:!*.csv",
            "data/local.txt": "ignored by data/.dvfsignore:3:/local.txt",
            "local.txt": None,
            "logs": "ignored by .dvfsignore:6:logs",
            "data/logs/": "ignored by .dvfsignore:6:logs",
            "data/logs/today": "ignored by .dvfsignore:6:logs",
            "notes.txt": None,
            ".DS_Store": "ignored by (built-in):1:.DS_Store",
            "data/.ipynb_checkpoints/": "ignored by (built-in):3:.ipynb_checkpoints/",
            "dvfs.lock": "ignored by (built-in):6:/dvfs.lock",
            "data/dvfs.lock": None,
        }  # fmt: skip
    assert warned == []


def test_tracked_paths_are_never_ignored(tmp_path: Path) -> None:
    tree(tmp_path, {".dvfsignore": "cache/\n*.bin\n"})
    ign, _ = rules(tmp_path, [b"cache/kept.bin", b"model.bin"])
    with ign:
        assert not ign.ignored(b"model.bin")
        assert ign.ignored(b"other.bin")
        assert not ign.ignored(b"cache", is_dir=True)  # it holds a tracked file: entered
        assert ign.ignored(b"cache/new.txt")  # ... but what is new in it stays out
        assert ign.ignored(b"cache2", is_dir=True) is False
        assert ign.keep([b"a.txt", b"x.bin", b"cache/y"]) == [b"a.txt"]


def test_names_that_are_not_utf8_are_matched_as_bytes(tmp_path: Path) -> None:
    (tmp_path / ".dvfsignore").write_bytes(b"caf\xe9-*\n")
    ign, warned = rules(tmp_path)
    with ign:
        assert ign.ignored(b"d/caf\xe9-1.txt")
        assert not ign.ignored("d/café-1.txt".encode())
    assert warned == []


def test_deep_paths_are_matched_without_recursion(tmp_path: Path) -> None:
    deep = b"/".join([b"d"] * 1500)  # deeper than Python's recursion limit
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    for _ in range(1500):  # (os.makedirs recurses)
        os.mkdir("d", dir_fd=fd)
        fd, up = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(up)
    out = os.open(".dvfsignore", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
    os.write(out, b"!keep.tmp\n")
    os.close(out)
    os.close(fd)
    (tmp_path / ".dvfsignore").write_text("*.tmp\n")
    try:
        ign, warned = rules(tmp_path)
        with ign:
            assert ign.keep([deep + b"/x.tmp", deep + b"/keep.tmp", deep + b"/y"]) == [
                deep + b"/keep.tmp", deep + b"/y",
            ]  # fmt: skip
            assert ign.match(deep, is_dir=True) is None
            assert ign.match(deep + b"/d/z.tmp") == ign.match(b"z.tmp")
        assert warned == []
    finally:  # shutil.rmtree (pytest's clean-up) recurses, and would fail on this tree
        subprocess.run(["rm", "-rf", str(tmp_path / "d")], check=True)


def test_hostile_ignore_files_are_bounded_and_skipped_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").write_text("*\n")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / ".dvfsignore").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "b").mkdir()
    os.mkfifo(tmp_path / "b" / ".dvfsignore")  # never waited on
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / ".dvfsignore").write_text("#" * (MAX_FILE + 1))
    (tmp_path / "d").mkdir()
    slow = "*a" * (MAX_STARS + 1) + "*b"  # exponential time to fail on a long name
    (tmp_path / "d" / ".dvfsignore").write_text(f"{slow}\n*.log\n")
    ign, warned = rules(tmp_path)
    with ign:
        assert not ign.ignored(b"a/x")
        assert not ign.ignored(b"b/x")
        assert not ign.ignored(b"c/x")
        started = time.monotonic()
        assert not ign.ignored(b"d/" + b"a" * 250)
        assert time.monotonic() - started < 1
        assert ign.ignored(b"d/x.log")  # the rest of the file still applies
        ign.ignored(b"a/y")  # each file is read once: no second warning
    assert [w.split(" ", 1)[0] for w in warned] == [
        "a/.dvfsignore", "b/.dvfsignore", "c/.dvfsignore", "d/.dvfsignore:1:",
    ]  # fmt: skip
    assert "symbolic link" in warned[0] and "more than" in warned[2]


# ------------------------------------------------------------------------- the command line


def project(repo: Repo) -> None:
    repo.write("data/labels.csv", "id\n1\n")
    repo.write("data/.dvfsignore", "scratch/\n*.tmp\n")
    repo.write("data/scratch/big.bin", "x" * 1000)
    repo.write("data/run.tmp", "t")
    repo.write("data/__pycache__/util.cpython-311.pyc", "p")
    repo.write("data/.DS_Store", "d")
    repo.write("data/nb/.ipynb_checkpoints/a-checkpoint.ipynb", "{}")
    repo.write("data/nb/a.ipynb", "{}")


def test_add_skips_ignored_paths_and_says_how_many(repo: Repo) -> None:
    project(repo)
    r = repo.ok("add", "data")
    assert r.out.strip() == "staged 3 files, read 3 (22 B), skipped 5 ignored paths"
    assert sorted(f["path"] for f in repo.json("status", "--json")["staged"]) == [
        "data/.dvfsignore", "data/labels.csv", "data/nb/a.ipynb",
    ]  # fmt: skip
    assert repo.json("add", "data", "--json")["ignored"] == 5

    # Named, an ignored file is refused; --force adds it; then it is tracked like any.
    line = repo.fail("add", "data/run.tmp", fragments=("data/.dvfsignore:2:*.tmp", "--force"))
    assert "nothing was staged" in line
    repo.ok("add", "--force", "data/run.tmp")
    repo.commit("one")
    repo.write("data/run.tmp", "changed")
    st = repo.status()
    assert st["modified"] == ["data/run.tmp"]
    repo.ok("add", "data")  # a tracked file is staged again, ignore rule or not
    assert [s["path"] for s in repo.status()["staged"]] == ["data/run.tmp"]
    repo.fsck_clean()


def test_status_does_not_list_ignored_untracked_files(repo: Repo) -> None:
    repo.write("data/labels.csv", "id\n")
    repo.ok("add", "data")
    repo.commit("one")
    project(repo)
    assert sorted(repo.status()["untracked"]) == [
        "data/.dvfsignore", "data/nb/a.ipynb",
    ]  # fmt: skip
    (repo.root / "data" / ".dvfsignore").unlink()
    untracked = repo.status()["untracked"]
    assert "data/run.tmp" in untracked and "data/scratch/big.bin" in untracked
    assert "data/.DS_Store" not in untracked  # the built-in rules still apply
    repo.fsck_clean()


def test_a_repository_inside_the_working_tree_is_left_to_itself(repo: Repo) -> None:
    """data/inner holds a .dvfs of its own: `dvfs add data` took its files as plain
    files of this repository, and status listed them as untracked here."""
    repo.write("data/labels.csv", "id\n")
    repo.ok("add", "data")
    repo.commit("one")
    inner = init_repo(repo.root / "data" / "inner")
    inner.write("d/f.csv", "inner")
    inner.ok("add", "d")
    inner.commit("inner")
    inner.write("d/new.csv", "new")
    repo.write("data/more.csv", "more")
    assert repo.status()["untracked"] == ["data/more.csv"]
    r = repo.ok("add", "data")
    assert warnings_of(r) == [
        "dvfs: warning: skipping data/inner/, a dvfs repository of its own "
        "(`dvfs add` inside it tracks its files)"
    ]
    assert [s["path"] for s in repo.status()["staged"]] == ["data/more.csv"]
    repo.fail("add", "data/inner", fragments=("data/inner is a dvfs repository of its own",))
    repo.fail("add", "data/inner/d/f.csv", fragments=("is in data/inner/, a dvfs repository",))
    assert (
        repo.ok("check-ignore", "-v", "data/inner").out
        == "(built-in):0:data/inner/.dvfs\tdata/inner\n"
    )
    repo.commit("two")
    assert inner.status()["untracked"] == ["d/new.csv"]  # the inner one is untouched
    repo.fsck_clean()
    inner.fsck_clean()


def test_a_repository_of_its_own_holding_a_forced_file_is_skipped_with_a_warning(
    repo: Repo,
) -> None:
    """data/inner, a repository of its own, holds a file added here with --force: `dvfs
    add data` entered it for that file and skipped the rest of it silently ("skipped
    2 ignored paths"), where the README promises a warning naming it."""
    repo.write("data/labels.csv", "id\n")
    inner = init_repo(repo.root / "data" / "inner")
    inner.write("forced.csv", "1")
    repo.ok("add", "data")
    repo.ok("add", "--force", "data/inner/forced.csv")
    repo.commit("one")
    inner.write("forced.csv", "2")
    inner.write("new.csv", "new")
    inner.write("d/deep.csv", "deep")
    r = repo.ok("add", "data")
    assert warnings_of(r) == [
        "dvfs: warning: skipping what is untracked in data/inner/, a dvfs repository of "
        "its own (`dvfs add` inside it tracks its files)"
    ]
    assert [s["path"] for s in repo.status()["staged"]] == ["data/inner/forced.csv"]
    repo.commit("two")
    repo.fsck_clean()


def test_status_passes_over_an_ignored_name_dvfs_never_stores(repo: Repo) -> None:
    """``dvfs status`` warned "skipping d/.DVFS: dvfs never stores the name" on every run
    though a ``.dvfsignore`` rule ignores it (``add`` leaves it out without a word);
    one no rule ignores is still named."""
    repo.write("d/a", "1")
    repo.write("d/.DVFS", "from a case-insensitive copy")
    repo.write("d/.dvfsignore", ".DVFS\n")
    repo.ok("add", "d")
    repo.commit("one")
    repo.write("d/a", "2")  # (a tree with changes scans as a clean one does)
    for args in (("status",), ("status", "--json")):
        r = repo.ok(*args)
        assert warnings_of(r) == [], r
    repo.write("d/.GIT", "not ignored")
    r = repo.ok("status")
    assert [w for w in warnings_of(r) if "d/.GIT" in w and "skipping" in w] == warnings_of(r), r
    assert len(warnings_of(r)) == 1, r
    (repo.root / "d" / ".GIT").unlink()
    repo.fsck_clean()


def test_a_name_dvfs_never_stores_kept_out_by_a_rule_does_not_stop_add(repo: Repo) -> None:
    """A file named like git's or dvfs's own (``.GIT``, ``git~1``) in a directory
    refused ``dvfs add DIR`` whole, saying only that dvfs never stores the name; a
    ``.dvfsignore`` rule for it (check-ignore agreed) changed nothing. Now the rule
    keeps it out, as any ignored path, and the refusal says what to do."""
    repo.write("data/a.csv", "1")
    repo.write("data/.GIT", "from a case-insensitive copy")
    repo.fail(
        "add", "data",
        fragments=("cannot add data/.GIT", "rename it, or keep it out with a .dvfsignore rule"),
    )  # fmt: skip
    repo.write("data/.dvfsignore", ".GIT\n")
    r = repo.ok("add", "data")
    assert "skipped 1 ignored path" in r.out and warnings_of(r) == []
    assert [s["path"] for s in repo.status()["staged"]] == ["data/.dvfsignore", "data/a.csv"]
    repo.commit("one")
    repo.fsck_clean()


def test_a_clean_status_reads_no_ignore_file(repo: Repo, tmp_path: Path) -> None:
    (tmp_path / "rules").write_text("*\n")
    repo.write("data/labels.csv", "id\n")
    (repo.root / "data" / ".dvfsignore").symlink_to(tmp_path / "rules")  # tracked, as a link
    repo.ok("add", "data")
    repo.commit("one")
    r = repo.ok("status")
    assert warnings_of(r) == []  # nothing untracked: no ignore file read
    repo.write("data/new.txt", "n")
    r = repo.ok("status", "--json")
    assert any("data/.dvfsignore is a symbolic link" in w for w in warnings_of(r))
    assert r.json()["untracked"] == ["data/new.txt"]  # the link's rules are not used
    repo.fsck_clean()


def test_check_ignore_names_the_rule(repo: Repo) -> None:
    project(repo)
    repo.write("data/.dvfsignore", "scratch/\n*.tmp\n!keep.tmp\n")
    repo.write("data/keep.tmp", "k")
    r = repo.run("check-ignore", "data/run.tmp", "data/scratch/big.bin", "data/labels.csv")
    assert r.code == 0 and r.out.splitlines() == ["data/run.tmp", "data/scratch/big.bin"]
    r = repo.run("check-ignore", "-v", "data/run.tmp", "data/keep.tmp", "data/scratch")
    assert r.code == 0
    assert r.out.splitlines() == [
        "data/.dvfsignore:2:*.tmp\tdata/run.tmp",
        "data/.dvfsignore:3:!keep.tmp\tdata/keep.tmp",
        "data/.dvfsignore:1:scratch/\tdata/scratch",
    ]
    r = repo.run("check-ignore", "data/labels.csv", "data/keep.tmp")
    assert r.code == 1 and r.out == ""
    repo.ok("add", "--force", "data/run.tmp")
    rows = repo.run("check-ignore", "--json", "data/run.tmp", "data/__pycache__/x.pyc").json()
    assert rows == [
        {"path": "data/run.tmp", "ignored": False, "tracked": True, "source": None,
         "line": None, "pattern": None},
        {"path": "data/__pycache__/x.pyc", "ignored": True, "tracked": False,
         "source": "(built-in)", "line": 2, "pattern": "__pycache__/"},
    ]  # fmt: skip
    repo.fail("check-ignore", "../elsewhere", fragments=("outside the repository",))
    repo.fsck_clean()


def test_the_built_in_rules_match_as_pathspec_reads_them() -> None:
    """The built-in rules' expressions, spelled out so that pathspec need not be loaded
    for them, are the ones pathspec's reading of them gives, line for line."""
    import re

    read = _compile(BUILTIN_SOURCE, BUILTIN, lambda w: pytest.fail(w))
    assert read.spec is not None and not read.negates
    assert [(n, text) for n, text in read.where] == list(enumerate(BUILTIN, 1))
    made = []
    for p in read.spec.patterns:
        assert isinstance(p.regex, re.Pattern)
        made.append(re.sub(r"\(\?P<\w+>", "(?:", p.regex.pattern))
    assert made == list(BUILTIN_PARTS)
    built = _builtin().quick
    assert read.quick is not None and built is not None and read.quick.pattern == built.pattern


def imported(r: Result) -> set[str]:
    """The modules a command run with PYTHONPROFILEIMPORTTIME=1 imported."""
    lines = [line for line in r.err.splitlines() if line.startswith("import time:")]
    return {line.rpartition("|")[2].strip() for line in lines}


def test_add_under_the_built_in_rules_alone_does_not_load_pathspec(repo: Repo) -> None:
    """With no ``.dvfsignore``, ``add`` keeps out what the built-in rules ignore without
    importing pathspec (a tenth of its start-up); ``check-ignore -v`` still names the rule."""
    repo.write("data/a.csv", "a\n")
    repo.write("data/__pycache__/m.cpython-311.pyc", "p")
    repo.write("data/.DS_Store", "d")
    repo.write("data/sub/x.pyc", "p")
    r = repo.ok("add", "data", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert "staged 1 file" in r.out and "skipped 3 ignored paths" in r.out
    assert "vfs.worktree.ignore" in imported(r) and "pathspec" not in imported(r)
    assert [s["path"] for s in repo.status()["staged"]] == ["data/a.csv"]
    r = repo.ok("check-ignore", "-v", "data/sub/x.pyc", "data/__pycache__")
    assert r.out.splitlines() == [
        "(built-in):4:*.pyc\tdata/sub/x.pyc",
        "(built-in):2:__pycache__/\tdata/__pycache__",
    ]
    repo.commit("one")
    repo.fsck_clean()


@pytest.mark.parametrize("where", ["data", "."])
def test_dvfs_files_at_the_root_are_never_added(repo: Repo, where: str) -> None:
    repo.write("dvfs.toml", "# settings\n")
    repo.write("data/x", "x")
    r = repo.ok("add", where)
    assert [s["path"] for s in repo.status()["staged"]] == ["data/x"]
    assert ("skipped 1 ignored path" in r.out) == (where == ".")
    repo.fsck_clean()


def test_ignored_directories_are_not_entered(make_repo: RepoFactory) -> None:
    """An ignored directory with many files is one skipped path, and is not listed."""
    repo = make_repo()
    repo.write("data/a", "a")
    cache = repo.root / "data" / "node_modules"
    for i in range(300):
        repo.write(f"data/node_modules/m{i}/index.js", "x")
    repo.write("data/.dvfsignore", "node_modules/\n")
    cache.chmod(0o000)  # entering it would fail: it is never entered
    try:
        r = repo.ok("add", "data", unprivileged=True)
    finally:
        cache.chmod(0o755)
    assert r.out.strip().endswith("skipped 1 ignored path")
    repo.fsck_clean()
