"""Exit statuses a script relies on: 2 for a command line that names nothing here,
whatever kind of name it is; 1 for a command understood that could not be done."""

from __future__ import annotations

from tests.support.cli import (
    Repo,
    assert_error,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
)


def test_a_name_that_names_nothing_exits_2_whatever_its_kind(repo: Repo) -> None:
    """An unknown revision exited 1 (`show nope`, `checkout nope`, `merge nope`, `ls`,
    `cat nope:x`, `du`, `lineage`, `restore --source`, `branch x nope`...), where an
    unknown branch, tag, remote or path exited 2 (`switch nope`, `branch -d nope`,
    `cat v1:nope`), and `status nope` (no mount there) and `umount nope` exited 1: a
    script could not tell a typo from a failure. Each exits 2 now, with one line."""
    commit_files(repo, {"d/a": "one"}, "v1")
    for args, said in (
        (("show", "nope"), "unknown revision nope"),
        (("show", "v9"), "unknown revision v9: main has only v1"),
        (("show", "HEAD~3"), "unknown revision HEAD~3"),
        (("checkout", "nope"), "unknown revision nope"),
        (("merge", "nope"), "unknown revision nope"),
        (("diff", "nope"), "nope is neither a revision nor a path"),
        (("log", "nope"), "nope is neither a revision nor a path"),
        (("ls", "nope"), "unknown revision nope"),
        (("cat", "nope:d/a"), "unknown revision nope"),
        (("du", "nope"), "unknown revision nope"),
        (("lineage", "d/a", "nope"), "unknown revision nope"),
        (("restore", "--source", "nope", "d/a"), "unknown revision nope"),
        (("branch", "x", "nope"), "unknown revision nope"),
        (("tag", "t", "nope"), "unknown revision nope"),
        (("params", "diff", "nope"), "unknown revision nope"),
        (("metrics", "show", "nope"), "unknown revision nope"),
        (("compare", "nope"), "unknown revision nope"),
        (("cat", "v1:nope"), "nope does not exist in v1"),
        (("switch", "nope"), "no branch named nope"),
        (("branch", "-d", "nope"), "no branch named nope"),
        (("tag", "-d", "nope"), "no tag named nope"),
        (("fetch", "--remote", "nope"), "unknown remote nope"),
        (("status", "nope"), "nope does not exist"),
        (("status", "d"), "is not a dvfs mount"),
        (("umount", "nope"), "is not mounted"),
    ):
        assert_error(repo.run(*args), said, code=2)
    assert repo.show()["version"] == "v1" and repo.status()["branch"] == "main"
    repo.fsck_clean()


def test_a_name_longer_than_a_file_name_names_nothing_as_any_other(repo: Repo) -> None:
    """`dvfs diff`, `show`, `log`, `checkout`, `switch`, `branch`... of a 300-character
    name (a path pasted whole, say) said "File name too long: .../.dvfs/refs/heads/xxx"
    and exited 1: looking it up as a branch, the system refused the ref's file name.
    No ref can have such a name: it is an unknown name, exit 2, as a short one is."""
    commit_files(repo, {"d/a": "one"}, "v1")
    long = "x" * 300
    for args, said in (
        (("diff", long), f"{long} is neither a revision nor a path"),
        (("log", long), f"{long} is neither a revision nor a path"),
        (("show", long), f"unknown revision {long}"),
        (("checkout", long), f"unknown revision {long}"),
        (("cat", f"{long}:d/a"), f"unknown revision {long}"),
        (("switch", long), f"no branch named {long}"),
        (("branch", "-d", long), f"no branch named {long}"),
        (("tag", "-d", long), f"no tag named {long}"),
    ):
        line = assert_error(repo.run(*args), said, code=2)
        assert "File name too long" not in line and ".dvfs" not in line, line
    assert repo.show()["version"] == "v1" and repo.status()["branch"] == "main"
    repo.fsck_clean()
