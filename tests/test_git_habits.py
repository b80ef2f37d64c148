"""What a git or DVC user types first: commit -a, switch -c, status against the remote,
log --oneline, diff --name-only, remote alone, rm -r, show REV:PATH.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.cli import (
    Repo,
    RepoFactory,
    assert_error,
    assert_ok,
    cli_env,
    commit_files,
    git,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from vfs.errors import UsageError
from vfs.repo.gitlink import LockPointer, parse_lock
from vfs.repo.repository import Repository


def two_files(repo: Repo) -> None:
    """v1: a.txt and d/b.txt (added and committed in this process: the set-up)."""
    commit_files(repo, {"a.txt": "a", "d/b.txt": "b"}, "one\nwith a second line")


def test_commit_all_stages_changed_and_deleted_tracked_files(repo: Repo) -> None:
    two_files(repo)
    repo.write("d/b.txt", "b2")
    (repo.root / "a.txt").unlink()
    repo.write("d/new.txt", "untracked: not committed by -a")
    out = repo.ok("commit", "-am", "two").out
    assert out.startswith("v2 ") and ": 1 file, 2 B - two" in out
    assert set(repo.show()["files"]) == {"d/b.txt"}
    assert repo.status()["untracked"] == ["d/new.txt"]
    repo.fail("commit", "--all", "-m", "three", fragments=("nothing to commit",), code=2)
    # a commit refused for its tag stages nothing first (it left the change staged)
    repo.ok("tag", "kept")
    repo.write("d/b.txt", "b3")
    repo.fail("commit", "-am", "three", "--tag", "kept", fragments=("tag kept already exists",))
    repo.fail("commit", "-am", "three", "--tag", "../x", fragments=("not a valid tag name",))
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == ["d/b.txt"]
    repo.fsck_clean()


def test_switch_create(repo: Repo) -> None:
    two_files(repo)
    repo.write("a.txt", "a2")
    repo.ok("commit", "-am", "two")
    r = repo.json("switch", "-c", "fix", "v1", "--json")
    assert r["branch"] == "fix" and r["version"] == "v1"
    assert repo.read("a.txt") == b"a" and repo.status()["branch"] == "fix"
    repo.ok("switch", "main")
    repo.write("a.txt", "local change")  # v1 would overwrite it: the switch is refused
    repo.fail("switch", "-c", "other", "v1", fragments=("uncommitted",))
    assert [b["name"] for b in repo.json("branch", "--json")] == ["fix", "main"]
    repo.fail("switch", "main", "v1", fragments=("dvfs switch -c NAME v1",), code=2)
    repo.ok("switch", "-c", "here")  # at HEAD: the local change stays
    assert repo.read("a.txt") == b"local change" and repo.status()["branch"] == "here"
    # detached: commit says how to start a branch, and that keeps the work
    repo.ok("checkout", "--force", "v1")
    repo.write("d/b.txt", "work done while detached")
    line = repo.fail("commit", "-am", "lost?", code=2)
    assert "`dvfs switch -c NAME`" in line
    repo.ok("checkout", "-b", "rescue")  # git's spelling of switch -c
    assert repo.ok("commit", "-am", "kept").out.startswith("v2 ")
    assert repo.cat("rescue:d/b.txt") == b"work done while detached"
    repo.fsck_clean()


def test_making_a_branch_that_exists_says_how_to_go_there_or_move_it(repo: Repo) -> None:
    """`dvfs switch -c main` and `dvfs branch main` said only "branch main already
    exists"."""
    two_files(repo)
    repo.ok("branch", "side")
    for args in (("branch", "side"), ("switch", "-c", "side", "v1"), ("checkout", "-b", "side")):
        line = repo.fail(*args, code=2)
        assert line == (
            "dvfs: error: branch side already exists: `dvfs switch side` goes there, `dvfs "
            "branch -f side REV` moves it"
        ), line
    line = repo.fail("switch", "-c", "main", code=2)
    assert line == "dvfs: error: branch main already exists: it is the current branch"
    repo.fsck_clean()


def test_switch_create_before_the_first_commit_names_the_branch_it_makes(repo: Repo) -> None:
    """As git's switch -c on a branch with no commits: it said "unknown revision
    'HEAD'". The staged files stay staged and the first commit makes the branch."""
    repo.write("a.txt", "a")
    repo.ok("add", "a.txt")
    out = repo.ok("switch", "-c", "dev").out
    assert "on branch dev, which has no versions yet" in out
    assert repo.json("checkout", "-b", "work", "--json")["version"] is None
    repo.fail("switch", "-c", "a..b", fragments=("not a valid branch name",))
    st = repo.status()
    assert st["branch"] == "work" and [c["path"] for c in st["staged"]] == ["a.txt"]
    repo.commit("first")
    assert [b["name"] for b in repo.json("branch", "--json")] == ["work"]
    repo.fsck_clean()


def test_status_says_how_the_branch_stands_against_the_remote(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    a = make_repo("a")
    two_files(a)
    assert "origin" not in a.ok("status").out
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    a.ok("push")
    assert "Up to date with origin/main." in a.ok("status").out
    a.write("a.txt", "a2")
    a.ok("commit", "-am", "two")
    assert "Ahead of origin/main by 1 version: `dvfs push` publishes it." in a.ok("status").out
    assert a.status()["remotes"] == [
        {"remote": "origin", "name": "origin/main", "ahead": 1, "behind": 0}
    ]
    a.ok("push")
    assert_ok(run(tmp_path, "clone", str(tmp_path / "remote"), "b"))
    b = Repo(tmp_path / "b")
    for i in (3, 4):
        b.write("a.txt", f"a{i}")
        b.ok("commit", "-am", f"v{i}")
    b.ok("push")
    a.ok("fetch")
    assert "Behind origin/main by 2 versions: `dvfs pull` brings them." in a.ok("status").out
    a.write("d/b.txt", "mine")
    a.ok("commit", "-am", "mine")
    out = a.ok("status").out
    assert "Diverged from origin/main: 1 version here and 2 versions there" in out
    a.fsck_clean()
    b.fsck_clean()


def test_status_leaves_out_a_remote_the_shared_settings_no_longer_name(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A teammate renamed origin to up in dvfs.toml, and git brought the file: status
    kept saying "Up to date with origin/main", a remote no command takes any more."""
    a = make_repo("a", git_repo=True)
    two_files(a)
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    a.ok("push")
    assert "Up to date with origin/main." in a.ok("status").out
    shared = a.root / "dvfs.toml"
    shared.write_text(shared.read_text().replace("origin", "up"))  # as the pull of git brings it
    out = a.ok("status").out
    assert "origin" not in out and a.status()["remotes"] == []
    a.ok("fetch")
    assert "Up to date with up/main." in a.ok("status").out
    shared.write_text("[remotes.x\nurl = 'x'\n")  # settings that do not read
    assert "Up to date with" in a.ok("status").out  # every copy shown, as before
    a.fsck_clean()


def test_push_and_pull_origin_main_name_the_option_that_takes_a_remote(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """git's `push origin main`: push said "branch origin has no versions to push" and
    pull "unknown revision origin"; each now says origin is a remote and how to name it."""
    a = make_repo("a")
    two_files(a)
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    a.fail("push", "origin", "main", fragments=("origin is a remote, not a branch",
                                                "`dvfs push --remote origin`"))  # fmt: skip
    a.fail("push", "nope", fragments=("there is no branch nope", "`dvfs branch`"))
    assert not (tmp_path / "remote").exists()  # nothing was sent
    a.ok("push", "--remote", "origin", "main")
    a.fail("pull", "origin", "main", fragments=("origin is a remote, not a revision",
                                                "`dvfs pull --remote origin`"))  # fmt: skip
    a.ok("pull", "--remote", "origin")
    a.fsck_clean()


def test_fetch_origin_names_the_option_that_takes_a_remote(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """git's `fetch origin`: fetch said only "got unexpected extra argument (origin)",
    where push and pull say origin is a remote and how to name it; it says so too."""
    a = make_repo("a")
    two_files(a)
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    a.ok("push")
    a.fail("fetch", "origin", code=2, fragments=("origin is a remote",
                                                 "`dvfs fetch --remote origin`"))  # fmt: skip
    a.fail("fetch", "origin", "main", code=2, fragments=("takes no argument", "--remote NAME"))
    assert "fetched" in a.ok("fetch", "--remote", "origin").out
    a.fsck_clean()


def test_oneline_name_only_remote_rm_r_and_show_of_a_file(repo: Repo, tmp_path: Path) -> None:
    two_files(repo)
    repo.write("a.txt", "a2")
    repo.ok("commit", "-am", "two", "--tag", "best")
    assert repo.ok("log", "--oneline").out.splitlines() == [
        f"   v2  {repo.head_id()[:10]}  (tag: best, main)  two",
        f"   v1  {repo.json('log', '--json')[1]['id'][:10]}  one",
    ]
    repo.write("d/c.txt", "c")
    repo.ok("add", "d")
    assert repo.ok("diff", "--name-only").out == "d/c.txt\n"
    assert repo.ok("diff", "v1", "v2", "--name-only").out == "a.txt\n"
    repo.fail("diff", "v1", "v2", "--stat", "--name-only", code=2, fragments=("two formats",))
    assert repo.ok("remote").out == ""
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    assert repo.ok("remote").out == repo.ok("remote", "-v").out == repo.ok("remote", "list").out
    assert "origin" in repo.ok("remote").out
    assert repo.ok("ls", "-r", "v1").out.splitlines()[1].endswith("  d/b.txt")
    assert [e["name"] for e in repo.json("ls", "-r", "v2:d", "--json")] == ["d/b.txt"]
    # d/c.txt was added since HEAD, which does not hold it: refused, as git refuses it
    repo.fail("rm", "-r", "d", fragments=("rm would delete uncommitted changes in d/c.txt",))
    repo.ok("rm", "-r", "-f", "d")
    assert not (repo.root / "d").exists()
    line = repo.fail("show", "v1:a.txt", code=2)
    assert "`dvfs cat v1:a.txt`" in line
    repo.fsck_clean()


def test_the_lock_file_keeps_branch_names_that_look_like_values(make_repo: RepoFactory) -> None:
    repo = make_repo(git_repo=True)
    repo.write("a.txt", "a")
    repo.ok("add", "a.txt")
    repo.ok("commit", "-m", "one")
    for name in ("yes", "on", "null", "1.0", "010"):
        repo.ok("switch", "-c", name)
        assert f"branch: {name}\n" in (repo.root / "dvfs.lock").read_text()
        assert repo.ok("checkout", "--lock").out.startswith(f"v1 (on branch {name})"), name
        assert repo.status()["branch"] == name and repo.status()["detached"] is None
    repo.fsck_clean()


def test_status_says_when_git_checked_out_a_dvfs_lock_of_other_data(make_repo: RepoFactory) -> None:
    """Without the hooks, `git checkout` moves dvfs.lock and not the data: status says so."""
    repo = make_repo(git_repo=True)
    for n, text in ((1, "one"), (2, "two")):
        repo.write("a.txt", text)
        repo.ok("add", "a.txt")
        repo.ok("commit", "-m", text)
        git(repo.root, "add", "-A")
        git(repo.root, "commit", "-q", "-m", f"code {n}")
    assert repo.status()["lock"] is None and "dvfs.lock" not in repo.ok("status").out
    git(repo.root, "checkout", "-q", "HEAD~1")
    v1 = repo.json("show", "v1", "--format", "json")["id"]
    assert repo.status()["lock"] == {"branch": "main", "version": "v1", "id": v1}
    said = repo.ok("status").out
    assert f"dvfs.lock (as git has it) names v1 {v1[:10]} of main, but this working tree " in said
    assert "holds v2: run `dvfs checkout --lock`" in said
    assert (repo.root / "a.txt").read_text() == "two"  # (status changed nothing)
    repo.ok("checkout", "--lock")
    assert (repo.root / "a.txt").read_text() == "one"
    assert repo.status()["lock"] is None and "dvfs.lock" not in repo.ok("status").out
    repo.fsck_clean()


def test_a_commit_beside_a_git_file_whose_name_is_not_utf8_records_git_as_it_is(
    make_repo: RepoFactory,
) -> None:
    """With ``core.quotePath`` off, git prints a tracked file's name as its bytes."""
    repo = make_repo(git_repo=True)
    odd = repo.root / os.fsdecode(b"notes-\xff.txt")
    odd.write_text("one\n")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "code")
    git(repo.root, "config", "core.quotePath", "false")
    odd.write_text("two\n")  # modified: `git status` lists it
    repo.write("a.txt", "data")
    repo.ok("add", "a.txt")
    repo.ok("commit", "-m", "data")
    shown = repo.json("show", "--format", "json")
    assert shown["git_commit"] == git(repo.root, "rev-parse", "HEAD")
    assert shown["git_dirty"] is True
    repo.fsck_clean()


def test_add_of_many_paths_asks_git_which_it_tracks_once(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """.gitignore leaves out what git tracks: one `git ls-files` for the whole add,
    not one per path given (300 paths made 300 calls of 300 paths each)."""
    repo = make_repo(git_repo=True)
    repo.write("kept/in_git.txt", "code")
    git(repo.root, "add", "kept/in_git.txt")
    names = [f"f{i:03}.bin" for i in range(300)]
    for name in names:
        repo.write(name, name)
    shim = tmp_path / "bin"  # a git that notes each ls-files, then runs the real one
    shim.mkdir()
    log = tmp_path / "calls"
    real = shutil.which("git")
    (shim / "git").write_text(
        f'#!/bin/sh\ncase " $* " in *" ls-files "*) echo x >> {log};; esac\nexec {real} "$@"\n'
    )
    (shim / "git").chmod(0o755)
    env = {"PATH": f"{shim}:{os.environ['PATH']}"}
    repo.ok("add", *names, "kept", env=env)
    assert log.read_text().count("x") == 1
    ignored = (repo.root / ".gitignore").read_text().split("\n")
    assert "/f000.bin" in ignored and "/f299.bin" in ignored
    assert "/kept" not in ignored  # git tracks a file below it
    repo.fsck_clean()


def test_a_name_with_a_line_break_or_trailing_spaces_is_ignored_in_git_as_itself(
    make_repo: RepoFactory,
) -> None:
    """``dvfs add`` of a file named "x<newline>README.md" wrote its pattern over two
    lines of .gitignore: git then ignored every README.md (code files it should see)
    and still listed the data file; a name ending in spaces lost them (git strips
    them), so another path was ignored in its place."""
    repo = make_repo(git_repo=True)
    names = ["x\nREADME.md", "trail  "]
    for name in names:
        repo.write(name, "data")
    repo.write("README.md", "code")
    repo.ok("add", *names)
    lines = (repo.root / ".gitignore").read_text().split("\n")
    assert "README.md" not in lines and "/x" not in lines
    untracked = git(repo.root, "status", "--porcelain", "-z", "--untracked-files=all")
    assert sorted(p[3:] for p in untracked.split("\0") if p) == [".gitignore", "README.md"]
    repo.fsck_clean()


def test_a_lock_file_as_written_reads_as_yaml_reads_it() -> None:
    """The lock dvfs writes is read without YAML; anything else goes through YAML."""
    oid = "ab" * 32
    written = f"# dvfs data version\nbranch: main\nversion: v12\nid: {oid}\n".encode()
    assert parse_lock(written, "x") == LockPointer("main", 12, bytes.fromhex(oid))
    for branch in ("'quoted'", "yes", "1.0", "null"):
        raw = f"# c\nbranch: {branch}\nversion: v3\nid: {oid}\n".encode()
        expect = yaml.load(raw.decode(), Loader=yaml.BaseLoader)["branch"]
        assert parse_lock(raw, "x").branch == expect
    # but a name no branch can have is refused, as YAML or as written
    for branch in ("a b", "'../x'", "../x", "x/../../y"):
        raw = f"# c\nbranch: {branch}\nversion: v3\nid: {oid}\n".encode()
        with pytest.raises(UsageError, match=r"not a valid branch name.*restore it from git"):
            parse_lock(raw, "dvfs.lock")


def test_a_lock_file_that_names_no_version_is_one_clear_error_even_under_python_O() -> None:
    bad = [b"- a\n", b"branch: main\nversion: 3\nid: ab\n", b"branch: main\nversion: v3\n"]
    for raw in bad:
        with pytest.raises(UsageError, match="does not name a version"):
            parse_lock(raw, "dvfs.lock")
    script = (  # assertions are switched off by -O: the checks must not be assertions
        "from vfs.repo.gitlink import parse_lock\nfrom vfs.errors import UsageError\n"
        "try:\n    parse_lock(b'- a\\n', 'dvfs.lock')\nexcept UsageError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-O", "-c", script], capture_output=True, text=True)
    assert "does not name a version" in out.stdout, out.stderr


def test_a_lock_file_nested_deep_is_one_clear_error_and_status_goes_on(
    make_repo: RepoFactory,
) -> None:
    """A commit's dvfs.lock of brackets in brackets, within the size a lock may have:
    YAML's reader recursed until Python's stack ran out."""
    repo = make_repo(git_repo=True)
    repo.write("a.txt", "a")
    repo.ok("add", "a.txt")
    repo.ok("commit", "-m", "one")
    for deep in (b"[" * 30000 + b"]" * 30000, b"{a: " * 10000 + b"1" + b"}" * 10000):
        (repo.root / "dvfs.lock").write_bytes(deep + b"\n")
        repo.fail("checkout", "--lock", fragments=("dvfs.lock is not readable YAML",))
        assert repo.ok("status").out.startswith("On branch main (v1)")
    repo.fsck_clean()


def test_a_lock_file_of_yaml_aliases_is_refused_without_expanding_them() -> None:
    """YAML's aliases name a node again: nine lines of ten make a branch "name" of 10**9
    items from 600 bytes, which printing as text took minutes and gigabytes to do
    (six levels here: a million, enough to tell)."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    oid = "ab" * 32
    for key in ("branch", "version", "id"):
        rec = {"branch": "main", "version": "v1", "id": oid, key: "*a5"}
        raw = "\n".join([*lines, *(f"{k}: {v}" for k, v in rec.items())]) + "\n"
        with pytest.raises(UsageError, match="does not name a version") as caught:
            parse_lock(raw.encode(), "dvfs.lock")
        assert len(str(caught.value)) < 200


def test_a_lock_file_a_git_merge_stopped_on_says_how_to_settle_it() -> None:
    # it said "dvfs.lock is not readable YAML: restore it from git" in the middle of
    # a git merge, where git's own checkout of one side is what settles it
    ours, theirs = "ab" * 32, "cd" * 32
    raw = (
        f"<<<<<<< HEAD\n# dvfs data version\nbranch: main\nversion: v3\nid: {ours}\n"
        f"=======\n# dvfs data version\nbranch: main\nversion: v4\nid: {theirs}\n"
        ">>>>>>> other\n"
    ).encode()
    with pytest.raises(UsageError, match=r"holds git's conflict markers: .*git checkout --ours"):
        parse_lock(raw, "dvfs.lock")


def test_git_is_found_through_a_git_file_a_variable_and_not_where_there_is_none(
    tmp_path: Path,
) -> None:
    """dvfs.lock and .gitignore follow git's own discovery: a ``.git`` file (a
    separate git directory) above the repository, GIT_DIR, and nothing outside git."""
    top = tmp_path / "work"
    top.mkdir()
    git(top, "init", "-q", "--separate-git-dir", str(tmp_path / "elsewhere.git"))
    assert (top / ".git").is_file()
    inside = init_repo(top / "data" / "repo")
    inside.write("a.txt", "a")
    inside.ok("add", "a.txt")
    inside.ok("commit", "-m", "one")
    assert "version: v1\n" in (inside.root / "dvfs.lock").read_text()
    assert "/a.txt" in (inside.root / ".gitignore").read_text().splitlines()

    bare = tmp_path / "named.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    by_variable = init_repo(tmp_path / "plain")
    by_variable.write("b.txt", "b")
    env = {**cli_env(), "GIT_DIR": str(bare), "GIT_WORK_TREE": str(by_variable.root)}
    assert_ok(run(by_variable.root, "add", "b.txt", env=env))
    assert_ok(run(by_variable.root, "commit", "-m", "one", env=env))
    assert (by_variable.root / "dvfs.lock").is_file()

    outside = init_repo(tmp_path / "outside")
    outside.write("c.txt", "c")
    outside.ok("add", "c.txt")
    outside.ok("commit", "-m", "one")
    assert not (outside.root / "dvfs.lock").exists()
    assert not (outside.root / ".gitignore").exists()
    for r in (inside, by_variable, outside):
        r.fsck_clean()


@pytest.mark.parametrize(
    ("config", "author"),
    [
        ("[user]\n\tname = First\n\tname = Ada Lovelace\n\temail = ada@example.org\n",
         "Ada Lovelace <ada@example.org>"),
        ("[user]\n\tname = Ada Lovelace\n", "Ada Lovelace"),
        # (not UTF-8: a name written in Latin-1; its byte is replaced, as the rest is kept)
        ("[user]\n\tname = Jos\udce9\n\temail = jose@example.org\n",
         "Jos\ufffd <jose@example.org>"),
    ],
)  # fmt: skip
def test_the_author_comes_from_git_config_without_dvfs_author(
    tmp_path: Path, config: str, author: str
) -> None:
    """Without DVFS_AUTHOR or a configured author, git's user.name and user.email (the
    last value of each, as ``git config`` gives it) name the author."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".gitconfig").write_bytes(os.fsencode(config))
    env = {  # (an empty value removes the variable)
        "DVFS_AUTHOR": "", "GIT_CONFIG_GLOBAL": "", "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "xdg"), "GIT_CONFIG_NOSYSTEM": "1",
    }  # fmt: skip
    repo = init_repo(tmp_path / "repo")
    repo.write("a.txt", "a")
    assert_ok(run(repo.root, "add", "a.txt", env=env))
    assert_ok(run(repo.root, "commit", "-m", "one", env=env))
    assert [v["author"] for v in repo.json("log", "--json")] == [author]
    repo.fsck_clean()


# (config text, whether only git can read it: an include, a continued line)
GIT_CONFIGS = [
    ("[user]\n\tname = Ada Lovelace\n\temail = ada@example.org\n", False),
    ('[User]\n  Name = Ada\t\t Lovelace ; said so\n  EMAIL="ada@example.org" # work\n'
     '[user "other"]\n\tname = Not Her\n[core]\n\teditor = "vi ;"\n', False),
    ('[user]\n\tname = First\n\temail\n[user] # again\n\tname = "Ada  Lovelace "\n', False),
    ("[include]\n\tpath = more\n", True),
    ("[user]\n\tname = Ada \\\n Lovelace\n", True),
    ('[user]\n\tname = Ada Lovelace\n[core]\n\teditor = "vi\n', True),  # (git refuses it)
]  # fmt: skip


@pytest.mark.parametrize(("config", "git_reads"), GIT_CONFIGS)
def test_the_author_git_config_gives_is_read_without_running_git_where_it_can(
    tmp_path: Path, config: str, git_reads: bool
) -> None:
    """A commit's author is what ``git config`` says, with or without git run: outside
    a git repository, from git's own files, without a process (7 ms of each commit);
    what only git reads right (an include, a continued line) is still asked of git."""
    home = tmp_path / "home"
    (home / "xdg" / "git").mkdir(parents=True)
    (home / "xdg" / "git" / "config").write_text("[user]\n\tname = From Xdg\n")
    (home / ".gitconfig").write_text(config)
    (home / "more").write_text("[user]\n\temail = included@example.org\n")
    env = {  # (an empty value removes the variable)
        "DVFS_AUTHOR": "", "GIT_CONFIG_GLOBAL": "", "GIT_CONFIG_NOSYSTEM": "",
        "HOME": str(home), "XDG_CONFIG_HOME": str(home / "xdg"),
    }  # fmt: skip
    repo = init_repo(tmp_path / "repo")
    said = {
        key: subprocess.run(
            ["git", "config", f"user.{key}"], cwd=repo.root, env=cli_env(env),
            capture_output=True, text=True, check=False,
        ).stdout.strip()
        for key in ("name", "email")
    }  # fmt: skip
    author = f"{said['name']} <{said['email']}>" if said["email"] else said["name"]
    if not said["name"]:  # (git says nothing: login@host, as without git)
        author = f"{getpass.getuser()}@{os.uname().nodename}"
    repo.write("a.txt", "a")
    assert_ok(run(repo.root, "add", "a.txt", env=env))
    r = assert_ok(
        run(repo.root, "commit", "-m", "one", env={**env, "PYTHONPROFILEIMPORTTIME": "1"})
    )
    assert [v["author"] for v in repo.json("log", "--json")] == [author]
    git = shutil.which("git")
    in_usr = git is not None and os.path.dirname(os.path.realpath(git)) in ("/usr/bin", "/usr/sbin")
    imported = {line.rpartition("|")[2].strip() for line in r.err.splitlines()}
    assert ("subprocess" in imported) == (git_reads or not in_usr)
    repo.fsck_clean()


def test_status_in_a_subdirectory_lists_paths_that_work_there_as_typed(repo: Repo) -> None:
    """As git's: paths relative to the current directory, which add and restore take."""
    for rel in ("d/s/a.txt", "d/s/gone.txt", "d/s/old.txt", "d/top.txt", "e/x.txt"):
        repo.write(rel, rel)
    repo.ok("add", "d", "e")
    repo.ok("commit", "-m", "one")
    repo.write("d/s/a.txt", "changed")
    (repo.root / "d/s/gone.txt").unlink()
    repo.ok("mv", "d/s/old.txt", "d/s/new.txt")
    repo.write("d/s/new file.txt", "new")
    repo.write("e/x.txt", "changed too")
    sub = repo.root / "d" / "s"
    out = assert_ok(run(sub, "status")).out
    for line in (
        "  renamed:  old.txt -> new.txt",
        "  modified: a.txt",
        "  deleted:  gone.txt",
        "  modified: ../../e/x.txt",
        "  new file.txt",
    ):
        assert line in out.splitlines(), out
    assert "d/s/" not in out
    assert run(sub, "status", "--json").json() == repo.status()  # scripts: from the root
    assert_ok(run(sub, "add", "new file.txt", "a.txt", "gone.txt"))
    assert_ok(run(sub, "restore", "../../e/x.txt"))
    assert repo.read("e/x.txt") == b"e/x.txt"
    out = assert_ok(run(repo.root / "e", "status")).out
    assert "  modified: ../d/s/a.txt (9 B -> 7 B)" in out.splitlines(), out
    assert "  added:    ../d/s/new file.txt (3 B)" in out.splitlines(), out
    assert "  modified: d/s/a.txt (9 B -> 7 B)" in repo.ok("status").out.splitlines()


def test_ls_and_cat_in_a_subdirectory_take_and_show_paths_from_there(repo: Repo) -> None:
    """As git ls-tree: `dvfs ls` lists the current directory, and a DIR given apart is
    from there; REV:DIR stays from the root, as git reads it. ls used to list the root."""
    for rel in ("d/s/a.txt", "d/top.txt", "e/x.txt"):
        repo.write(rel, rel)
    repo.ok("add", "d", "e")
    repo.ok("commit", "-m", "one")
    d = repo.root / "d"

    def names(out: str) -> list[str]:
        return [line.split("  ")[-1] for line in out.splitlines()]

    assert names(assert_ok(run(d, "ls")).out) == ["s/", "top.txt"]
    assert names(assert_ok(run(d, "ls", "v1")).out) == ["s/", "top.txt"]
    assert names(assert_ok(run(d, "ls", "v1", "s")).out) == ["a.txt"]
    assert names(assert_ok(run(d, "ls", "v1:e")).out) == ["x.txt"]  # from the root
    assert names(assert_ok(run(d / "s", "ls", "-r")).out) == ["a.txt"]
    assert names(assert_ok(run(d, "ls", "-r", "v1:")).out) == [
        "s/a.txt", "top.txt", "../e/x.txt",
    ]  # fmt: skip
    assert names(assert_ok(run(d, "ls", "v1", "../e/x.txt")).out) == ["../e/x.txt"]
    got = assert_ok(run(d, "ls", "-r", "--json")).json()
    assert [f["name"] for f in got] == ["d/s/a.txt", "d/top.txt"]  # scripts: from the root
    assert names(repo.ok("ls").out) == ["d/", "e/"]
    assert assert_ok(run(d, "cat", "v1", "s/a.txt")).raw == b"d/s/a.txt"
    assert assert_ok(run(d, "cat", "v1:e/x.txt")).raw == b"e/x.txt"
    assert_error(run(d, "ls", "v1", "nope"), "d/nope does not exist in v1")


def test_ls_and_cat_of_a_path_alone_read_it_in_head(repo: Repo) -> None:
    """`dvfs ls data` said "unknown revision data": a path alone is one of HEAD, as
    `dvfs log data` and `dvfs diff data` take it; a revision still comes first."""
    repo.write("d/s/a.txt", "a")
    repo.write("d/top.txt", "t")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    (repo.root / "d/top.txt").unlink()  # in HEAD only: still a path

    def names(out: str) -> list[str]:
        return [line.split("  ")[-1] for line in out.splitlines()]

    assert names(repo.ok("ls", "d").out) == ["s/", "top.txt"]
    assert names(repo.ok("ls", "d/top.txt").out) == ["d/top.txt"]
    assert names(assert_ok(run(repo.root / "d", "ls", "s")).out) == ["a.txt"]
    assert repo.ok("cat", "d/top.txt").raw == b"t"
    assert_error(repo.run("ls", "nope"), "unknown revision nope")
    assert_error(repo.run("ls", "v9"), "unknown revision v9")
    repo.ok("branch", "d")  # a branch named as the directory: the revision wins
    assert names(repo.ok("ls", "d").out) == ["d/"]


def test_branch_lists_a_detached_head_as_such(repo: Repo) -> None:
    """With HEAD detached, `dvfs branch` marked no line, and once the branch HEAD came
    from was deleted it showed "* main (no versions yet)": a branch that was not
    current and did not exist."""
    two_files(repo)
    repo.write("a.txt", "a2")
    repo.commit("two", "-a")
    repo.ok("branch", "side")
    repo.ok("checkout", "v1")
    v1 = repo.show("v1")["id"]
    lines = repo.ok("branch").out.splitlines()
    assert lines[0] == f"* (HEAD detached at v1 {v1[:10]})"
    assert [ln[:2] for ln in lines[1:]] == ["  ", "  "]
    repo.ok("branch", "-d", "main")
    assert repo.ok("branch").out.splitlines() == [
        f"* (HEAD detached at v1 {v1[:10]})",
        f"  side  v2  {repo.show('side')['id'][:10]}",
    ]
    assert [(b["name"], b["current"]) for b in repo.json("branch", "--json")] == [
        ("side", False),
        ("HEAD", False),
    ]
    repo.fsck_clean()


def test_a_deleted_branch_or_tag_leaves_no_folder_that_blocks_its_name(repo: Repo) -> None:
    """Deleting branch x/y left the folder refs/heads/x behind, and `dvfs branch x`
    was refused forever after: "x/... exists, and a name cannot be both a ref and the
    folder of others", though no ref was there (the same for tags)."""
    two_files(repo)
    for kind, x in (("branch", "x"), ("tag", "q")):  # (a tag and a branch never share a name)
        repo.ok(kind, f"{x}/y/z")
        repo.ok(kind, f"{x}/w")
        repo.fail(kind, x, fragments=(f"{x}/... exists",), code=1)
        repo.ok(kind, "-d", f"{x}/y/z")
        repo.fail(kind, x, fragments=(f"{x}/... exists",), code=1)  # x/w is still there
        repo.ok(kind, f"{x}/y")
        repo.ok(kind, "-d", f"{x}/w", f"{x}/y")
        repo.ok(kind, x)
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main", "x"]
    assert [t["name"] for t in repo.json("tag", "--json")] == ["q"]
    # A folder an earlier deletion left empty does not block the name either.
    (repo.root / ".dvfs" / "refs" / "heads" / "e" / "f").mkdir(parents=True)
    repo.ok("branch", "e")
    repo.fsck_clean()


def test_a_branch_or_tag_cannot_take_a_remote_branch_name(repo: Repo, tmp_path: Path) -> None:
    """`dvfs branch origin/main v1` was made, and from then on `origin/main` (in `dvfs
    merge origin/main`, `dvfs diff origin/main`...) named that local branch, not the
    remote's; a tag so named was hidden by the remote's branch."""
    two_files(repo)
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    repo.write("a.txt", "a2")
    repo.commit("two", "-a")
    pushed = repo.show("v1")["id"]
    for args in (["branch", "origin/main", "v2"], ["tag", "origin/main", "v2"],
                 ["switch", "-c", "origin/later"], ["tag", "origin/later"]):  # fmt: skip
        assert_error(repo.run(*args), "remote origin's branch", "name the", code=2)
    assert repo.show("origin/main")["id"] == pushed
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main"]
    assert repo.json("tag", "--json") == []
    repo.ok("branch", "originals/main")  # another first part is no remote's
    repo.fsck_clean()


def test_full_ref_names_read_their_ref_and_name_no_new_branch_or_tag(
    repo: Repo, tmp_path: Path
) -> None:
    """`dvfs tag refs/heads/main v1` was made, and `dvfs show refs/heads/main` then
    read that tag (v1), not branch main; and `refs/tags/t1` named nothing. A full name
    now reads its own ref, as in git, and no branch or tag may start with `refs/`."""
    two_files(repo)
    repo.ok("tag", "t1")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    repo.write("a.txt", "a2")
    repo.commit("two", "-a")
    v1, v2 = repo.show("v1")["id"], repo.show("v2")["id"]
    for args in (["tag", "refs/heads/main", "v1"], ["branch", "refs/tags/t1"],
                 ["switch", "-c", "refs/x"], ["commit", "--amend", "--tag", "refs/t"]):  # fmt: skip
        assert_error(repo.run(*args), "is read as a ref's full name", code=2)
    assert repo.show("refs/heads/main")["id"] == v2
    assert repo.show("refs/tags/t1")["id"] == v1
    assert repo.show("refs/remotes/origin/main")["id"] == v1
    assert repo.show("refs/heads/main~1")["id"] == v1
    for missing in ("refs/heads/nope", "refs/tags/main", "refs/other/main"):
        assert_error(repo.run("show", missing), f"unknown revision {missing}", code=2)
    # A tag an older dvfs let through is read by its own full name, and deleted.
    (repo.root / ".dvfs" / "refs" / "tags" / "refs" / "heads").mkdir(parents=True)
    (repo.root / ".dvfs" / "refs" / "tags" / "refs" / "heads" / "main").write_text(v1 + "\n")
    assert repo.show("refs/heads/main")["id"] == v2
    assert repo.show("refs/tags/refs/heads/main")["id"] == v1
    repo.ok("tag", "-d", "refs/heads/main")
    assert [t["name"] for t in repo.json("tag", "--json")] == ["t1"]
    repo.fsck_clean()


def test_a_tag_and_a_branch_cannot_share_a_name(make_repo: RepoFactory, tmp_path: Path) -> None:
    """`dvfs tag main` was made beside branch main (and a branch beside a tag), and
    `main` then silently read the branch: each is refused, wherever a ref is made; a
    pair made before is read as it was, the branch, with a warning saying so."""
    repo = make_repo("a")
    two_files(repo)
    repo.ok("tag", "t1")
    repo.write("a.txt", "a2")
    repo.write("b.txt", "b")
    repo.ok("add", "b.txt")
    for args, kind in (
        (["tag", "main", "v1"], "tag main would share its name with branch main"),
        (["branch", "t1"], "branch t1 would share its name with tag t1"),
        (["switch", "-c", "t1"], "branch t1 would share its name with tag t1"),
        (["commit", "-a", "-m", "two", "--tag", "main"], "tag main would share its name"),
    ):
        line = assert_error(repo.run(*args), kind, code=2)
        assert line.endswith("otherwise"), line
    assert repo.status()["staged"] != []  # the commit was refused before anything
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main"]
    assert [t["name"] for t in repo.json("tag", "--json")] == ["t1"]
    repo.commit("two", "-a")
    # A pair an older dvfs made: the branch is read, and the warning says so.
    v1 = repo.show("v1")["id"]
    (repo.root / ".dvfs" / "refs" / "tags" / "main").write_text(v1 + "\n")
    r = assert_ok(repo.run("show", "main", "--json"))
    assert r.json()["id"] == repo.head_id()
    assert r.err == (
        "dvfs: warning: main names both a branch and a tag: the branch's version is read; "
        f"`dvfs tag main-tag {v1[:12]}` and `dvfs tag -d main` rename the tag\n"
    )
    assert repo.run("show", "t1").err == ""
    # A remote's tag named as a branch here is not copied, and the fetch says why.
    b = make_repo("b")
    b.ok("remote", "add", "origin", str(tmp_path / "remote"))
    b.write("x", "x")
    b.ok("add", "x")
    b.commit("b's")
    b.ok("branch", "t1")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push", "--tags")
    r = assert_ok(b.run("fetch"))
    assert "remote tag t1 not copied here: branch t1 here would hide it" in r.err, r.err
    assert b.json("tag", "--json") == []
    repo.fsck_clean()
    b.fsck_clean()


def test_a_ref_naming_a_version_not_stored_is_listed_with_the_rest(repo: Repo) -> None:
    # one remote copy (or tag) naming an id the store lacks made `branch -r` (and
    # `branch -a`, `tag`) fail whole, with a line naming the object, not the ref
    two_files(repo)
    remotes = repo.root / ".dvfs" / "refs" / "remotes" / "origin"
    remotes.mkdir(parents=True)
    (remotes / "lost").write_text(f"{5:064x}\n")
    (repo.root / ".dvfs" / "refs" / "tags" / "gone").write_text(f"{6:064x}\n")
    r = repo.run("branch", "-a")
    assert r.code == 1 and r.out.splitlines()[0].startswith("* main  v1  ")
    assert r.out.splitlines()[1].startswith(
        "  origin/lost  (version 0000000000 is not stored here: `dvfs fsck`)"
    )
    rows = repo.run("branch", "-r", "--json")
    assert rows.code == 1 and [b["version"] for b in rows.json()] == [None]
    tags = repo.run("tag")
    assert tags.code == 1 and "gone  (version 0000000000 is not stored here" in tags.out
    for p in (remotes / "lost", repo.root / ".dvfs" / "refs" / "tags" / "gone"):
        p.unlink()
    repo.fsck_clean()


def test_a_damaged_branch_or_tag_can_be_deleted_as_its_message_says(repo: Repo) -> None:
    """A tag file that held no id stopped `log`, `tag` and `fsck` with "ref refs/tags/t
    is unreadable: run `dvfs fsck`", which said the same, and `dvfs tag -d t` failed
    with it too: nothing in dvfs could get rid of it."""
    two_files(repo)
    repo.ok("tag", "t")
    repo.ok("branch", "b")
    (repo.root / ".dvfs" / "refs" / "tags" / "t").write_text("garbage\n")
    (repo.root / ".dvfs" / "refs" / "heads" / "b").write_text("zz")
    repo.fail("log", fragments=("refs/", "unreadable", "-d"), code=1)
    fsck = repo.run("fsck")
    assert fsck.code == 1 and "`dvfs tag -d t` deletes it" in fsck.out, str(fsck)
    assert "`dvfs branch -d b` deletes it" in fsck.out
    assert repo.ok("tag", "-d", "t").out == "deleted tag t (was unreadable)\n"
    assert repo.json("branch", "-d", "b", "--json") == {
        "deleted": ["b"], "branches": [{"name": "b", "version": None, "id": None}]
    }  # fmt: skip
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main"]
    assert repo.json("tag", "--json") == []
    last = repo.json("audit", "--json")[-2:]
    assert [(e["op"], e["ref"], e["old"], e["note"]) for e in last] == [
        ("tag delete", "refs/tags/t", None, "unreadable"),
        ("branch delete", "refs/heads/b", None, "unreadable"),
    ]
    repo.fsck_clean()


def test_a_range_of_versions_says_what_to_write_instead(repo: Repo) -> None:
    """`dvfs diff v1..v2` (git's range) said "v1..v2 is neither a revision nor a path
    ...; did you mean: v2, v1": it now says dvfs takes no range, and what to write."""
    two_files(repo)
    repo.write("a.txt", "changed")
    repo.ok("commit", "-am", "two")
    for arg in ("v1..v2", "v1...v2"):
        assert_error(
            repo.run("diff", arg),
            f"{arg} is a range of versions, which dvfs does not take: "
            "`dvfs diff v1 v2` compares the two",
            code=2,
        )
    assert_error(repo.run("log", "v1..HEAD"), "`dvfs log HEAD` lists HEAD and the versions")
    assert_error(repo.run("log", "x..y"), "x..y is neither a revision nor a path")
    repo.fsck_clean()


def test_several_messages_are_paragraphs_of_one_as_git_joins_them(repo: Repo) -> None:
    """`dvfs commit -m one -m two` recorded "two" alone: the first message was dropped
    without a word. Several -m are joined as paragraphs, as git joins them."""
    two_files(repo)
    repo.write("a.txt", "changed")
    repo.ok("commit", "-a", "-m", "subject", "-m", "body")
    assert repo.json("log", "-n", "1", "--json")[0]["message"] == "subject\n\nbody"
    repo.fsck_clean()


def test_branch_json_says_head_is_detached_as_the_listing_does(repo: Repo) -> None:
    """`dvfs branch` leads with `* (HEAD detached at v1 ID)`, but `branch --json` listed
    the branches alone, none current: nothing said where HEAD was. An entry named HEAD,
    `detached` true, ends the list then (after the branches, which scripts read as
    before; `current` marks a branch, and none is)."""
    two_files(repo)
    one = repo.head_id()
    repo.write("a.txt", "a2")
    repo.ok("commit", "-am", "two")
    repo.ok("checkout", "v1")
    assert repo.ok("branch").out.splitlines()[0] == f"* (HEAD detached at v1 {one[:10]})"
    rows = repo.json("branch", "--json")
    assert rows[-1] == {"name": "HEAD", "version": "v1", "id": one, "current": False,
                        "detached": True}  # fmt: skip
    assert [(r["name"], r["current"]) for r in rows[:-1]] == [("main", False)]
    assert repo.json("branch", "-a", "--json")[-1]["detached"] is True
    repo.ok("switch", "main")
    assert [r["name"] for r in repo.json("branch", "--json")] == ["main"]
    repo.fsck_clean()


def test_branch_d_keeps_a_branch_whose_versions_nothing_else_holds(repo: Repo) -> None:
    """`dvfs branch -d` of a branch with versions of its own deleted it without a word,
    leaving them to gc; as git's, it is refused, naming them, and -D deletes it."""
    two_files(repo)
    repo.ok("switch", "-c", "spike")
    repo.write("a.txt", "s1")
    two = repo.commit("s1", "-a")
    repo.write("a.txt", "s2")
    three = repo.commit("s2", "-a")
    repo.ok("switch", "main")
    line = repo.fail("branch", "-d", "spike", code=2)
    assert line == (
        f"dvfs: error: branch spike holds 2 versions (v3 {three[:10]}, v2 {two[:10]}) that no "
        "other branch, tag or remote copy holds: merge or tag it to keep them, or `dvfs "
        "branch -D spike` deletes it anyway (gc may then drop them); nothing was deleted"
    )
    assert repo.show("spike")["id"] == three
    repo.ok("branch", "keep", "spike")  # another branch holds them: -d deletes it
    repo.ok("branch", "-d", "spike")
    repo.fail("branch", "-d", "keep", fragments=("branch keep holds 2 versions",))
    repo.ok("tag", "t", "keep~1")  # a tag holds one of them: the other is named
    repo.fail("branch", "-d", "keep", fragments=(f"holds a version (v3 {three[:10]})",))
    repo.ok("branch", "again", "keep")  # both at once: refused, both kept
    line = repo.fail("branch", "-d", "keep", "again", fragments=("no remaining branch",))
    assert [b["name"] for b in repo.json("branch", "--json")] == ["again", "keep", "main"]
    repo.ok("checkout", three)  # a detached HEAD holds what it is at
    repo.ok("branch", "-d", "keep")
    out = repo.ok("branch", "-D", "again").out
    assert out == f"deleted branch again (was v3 {three[:10]})\n"
    repo.ok("switch", "main")
    repo.ok("branch", "x", three)
    repo.ok("branch", "-d", "-f", "x")  # as git's: -d --force is -D
    assert "x" not in repo.ok("branch").out
    repo.fsck_clean()


def test_ls_and_cat_refuse_a_file_named_with_a_trailing_slash(repo: Repo) -> None:
    """`dvfs ls HEAD:d/b.txt/` listed the file, and `cat` showed it, though a trailing
    '/' names a directory: every working-tree command refuses it on a file (as the
    kernel does), and so do these now, naming the file and what to write instead."""
    two_files(repo)
    os.symlink("a.txt", repo.root / "ln")
    repo.ok("add", "ln")
    repo.ok("commit", "-m", "two")
    given = [
        ("ls", "HEAD:d/b.txt/"),
        ("ls", "HEAD:d/b.txt/."),
        ("ls", "v2", "d/b.txt/"),
        ("ls", "d/b.txt/"),
        ("ls", "-r", "HEAD:d/b.txt/"),
        ("cat", "v2:d/b.txt/"),
    ]
    for args in given:
        named = "v2" if "v2" in args[-2:] or args[-1].startswith("v2:") else "v2 (HEAD)"
        assert repo.fail(*args, code=2) == (
            f"dvfs: error: d/b.txt is a file in {named}, not a directory: name it without "
            "the trailing '/'"
        ), args
    repo.fail("ls", "HEAD:ln/", fragments=("ln is a symbolic link in v2 (HEAD), not a dir",))
    assert repo.ok("ls", "HEAD:d/b.txt").out.endswith("  d/b.txt\n")
    assert [e["name"] for e in repo.json("ls", "HEAD:d/", "--json")] == ["b.txt"]
    assert repo.cat("v2:d/b.txt") == b"b"
    repo.fsck_clean()


def test_branch_m_renames_a_branch_and_head_follows(make_repo: RepoFactory) -> None:
    """`dvfs branch -m [OLD] NEW` as git's: there was no way to rename a branch but to
    make a new one and delete the old, with HEAD, dvfs.lock and a detached HEAD's
    branch left naming the old one."""
    repo = make_repo(git_repo=True)
    r = repo.json("branch", "-m", "trunk", "--json")  # no versions yet: HEAD alone moves
    assert r == {"name": "trunk", "version": None, "id": None, "was": "main"}
    two_files(repo)
    v1 = repo.show()["id"]
    assert repo.status()["branch"] == "trunk"
    assert "branch: trunk\n" in (repo.root / "dvfs.lock").read_text()
    out = repo.ok("branch", "-m", "dev").out  # the current branch
    assert out == f"renamed branch trunk to dev (v1 {v1[:10]})\n"
    assert repo.status()["branch"] == "dev" and repo.status()["detached"] is None
    assert "branch: dev\n" in (repo.root / "dvfs.lock").read_text()
    assert [b["name"] for b in repo.json("branch", "--json")] == ["dev"]
    repo.ok("branch", "side")
    r = repo.json("branch", "-m", "side", "feat/side", "--json")
    assert r == {"name": "feat/side", "version": "v1", "id": v1, "was": "side"}
    repo.ok("tag", "t1")
    for args, said in (
        (("-m", "feat/side", "dev"), "branch dev already exists"),
        (("-m", "feat/side", "t1"), "would share its name with tag t1"),
        (("-m", "feat/side", "v7"), "cannot be a branch name"),
        (("-m", "feat/side", "a..b"), "is not a valid branch name"),
        (("-m", "nosuch", "x"), "no branch named nosuch: nothing was renamed"),
        (("-m", "dev", "dev"), "branch dev already has that name"),
        (("-m", "feat"), "feat/... exists"),
        (("-m", "a", "b", "c"), "-m renames one branch"),
        (("-m", "-d", "x"), "-m renames one branch"),
    ):
        repo.fail("branch", *args, fragments=(said,), code=2)
    assert [b["name"] for b in repo.json("branch", "--json")] == ["dev", "feat/side"]
    repo.write("a.txt", "a2")
    repo.commit("two", "-a")
    repo.ok("checkout", "v1")  # detached from dev: HEAD's branch follows the rename
    repo.ok("branch", "-m", "dev", "main")
    st = repo.status()
    assert (st["branch"], st["detached"]) == ("main", "v1")
    repo.fail("branch", "-m", "x", fragments=("HEAD is detached",), code=2)
    repo.ok("switch", "main")
    assert repo.status()["branch"] == "main" and repo.status()["detached"] is None
    audit = repo.ok("audit").out
    assert "branch create: refs/heads/main - -> " in audit
    assert "branch delete: refs/heads/dev " in audit
    repo.fsck_clean()


def test_branch_m_waits_for_a_merge_in_progress(repo: Repo) -> None:
    """A merge's record names the branch it is made on: renaming that branch under it
    would give the merge up without a word."""
    two_files(repo)
    repo.ok("switch", "-c", "other")
    repo.write("a.txt", "theirs")
    repo.commit("theirs", "-a")
    repo.ok("switch", "main")
    repo.write("a.txt", "ours")
    repo.commit("ours", "-a")
    assert repo.run("merge", "other").code == 1  # a conflict in a.txt
    repo.fail("branch", "-m", "main2", fragments=("a merge of other into main",), code=2)
    repo.ok("branch", "-m", "other", "theirs")  # another branch may go by another name
    repo.ok("restore", "--theirs", "a.txt")
    repo.ok("commit", "-m", "merged")
    repo.ok("branch", "-m", "main2")
    assert repo.status()["branch"] == "main2" and repo.read("a.txt") == b"theirs"
    repo.fsck_clean()


def test_a_mount_working_tree_that_cannot_be_locked_stops_a_rename(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whether a mount serves a branch is told by locking its working tree: a lock that
    cannot be taken (another user's repository) was an OSError; now it is one line, and
    nothing is renamed or deleted."""
    from vfs.ops import branches

    two_files(repo)
    repo.ok("branch", "side")
    (repo.root / ".dvfs" / "worktrees" / "side").mkdir(parents=True)

    def refused(path: Path, mode: int = 0o644) -> int:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(branches, "claim_for_life", refused)
    r = Repository(repo.root)
    try:
        for act, done in ((lambda: branches.rename_branch(r, "side", "s2"), "renamed"),
                          (lambda: branches.delete_branches(r, ["side"]), "deleted")):  # fmt: skip
            with pytest.raises(UsageError) as info:
                act()
            assert str(info.value) == (
                "cannot tell whether a mount serves branch side's working tree "
                f"{repo.root}/.dvfs/worktrees/side (Permission denied); nothing was {done}"
            )
    finally:
        r.store.close()
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main", "side"]
    repo.fsck_clean()


def test_commit_amend_replaces_the_latest_version(repo: Repo, tmp_path: Path) -> None:
    """A commit with the wrong message or a file forgotten could only be followed by
    another version: `dvfs commit --amend` replaces it, as git's does, keeping its
    parents and number, its message unless -m, its parameters updated with --param."""
    repo.fail("commit", "--amend", fragments=("nothing to amend: main has no versions",))
    two_files(repo)
    v1 = repo.show()["id"]
    repo.write("c.txt", "c")
    repo.ok("add", "c.txt")
    repo.ok("commit", "-m", "two", "--param", "lr=1", "--tag", "t2")
    two = repo.show()["id"]
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    repo.fail("commit", "--amend", fragments=("nothing to amend: the staged data, message",))
    r = repo.run("commit", "--amend", "--param", "bs=8")
    assert r.code == 0, str(r)
    assert r.out.startswith("v2 ") and r.out.endswith(": 3 files, 3 B - two (amended)\n")
    assert r.err == (
        f"dvfs: warning: tag t2 still names the amended version {two[:10]}: `dvfs tag -d t2` "
        "and `dvfs tag t2` move it to the new one\n"
        "dvfs: warning: origin/main has the amended version: `dvfs push --force` replaces it "
        "there (refused if someone pushed since)\n"
    )
    shown = repo.show()
    assert (shown["version"], shown["message"], shown["parameters"]) == (
        "v2",
        "two",
        {"bs": 8, "lr": 1},
    )
    assert shown["parents"] == [v1] and shown["id"] != two
    repo.write("d.txt", "forgotten")
    repo.ok("add", "d.txt")
    r2 = repo.json("commit", "--amend", "-m", "two, with d", "--json")
    assert (r2["version"], r2["amended"], r2["files"]) == ("v2", shown["id"], 4)
    assert [v["version"] for v in repo.json("log", "--json")] == ["v2", "v1"]
    assert repo.cat("v2:d.txt") == b"forgotten" and repo.show("t2")["id"] == two
    st = repo.status()
    assert (st["staged"], st["modified"], st["untracked"]) == ([], [], [])
    line = repo.fail("push", code=1)
    assert line == (
        f"dvfs: error: remote main is at v2 {two[:10]}, which main here no longer follows (a "
        "`commit --amend` or `branch -f`): `dvfs push --force` replaces it there, `dvfs pull` "
        "merges it (nothing was changed on the remote)"
    )
    repo.ok("push", "--force")
    # a merge in progress is committed as a merge, not amended into the version before
    repo.ok("switch", "-c", "other", "v1")
    repo.write("a.txt", "theirs")
    repo.commit("theirs", "-a")
    repo.ok("switch", "main")
    repo.write("a.txt", "ours")
    repo.commit("ours", "-a")
    assert repo.run("merge", "other").code == 1  # a conflict in a.txt
    repo.fail("commit", "--amend", "-m", "x", fragments=("a merge of other is in progress",))
    repo.fsck_clean()
