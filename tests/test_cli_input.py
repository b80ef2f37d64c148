"""What the user types: environment values, argument bounds, parameter files, empty paths.

Every bad input gets one ``dvfs: error:`` line and exit 2, never a traceback, and
changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_support import (
    Repo,
    assert_error,
    assert_ok,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_python,
)

BROKEN_ENV = {
    "DVFS_LOCK_TIMEOUT": "abc",
    "DVFS_RETRY_ATTEMPTS": "0",
    "DVFS_RETRY_DEADLINE": "nan",
    "DVFS_THREADS": "-3",
    "DVFS_AUTHOR": "two\nlines",
}


def committed(repo: Repo) -> None:
    repo.write("d/a.txt", "1")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")


# ------------------------------------------------------------------------------ environment


@pytest.mark.parametrize("value", ["abc", "nan", "inf", "-1", "86401", "1e9"])
def test_a_bad_lock_timeout_is_one_line(repo: Repo, value: str) -> None:
    committed(repo)
    repo.write("d/a.txt", "2")
    r = repo.run("add", "d", env={"DVFS_LOCK_TIMEOUT": value})
    line = assert_error(r, code=2)
    assert line == (
        f"dvfs: error: DVFS_LOCK_TIMEOUT={value} is not a number of seconds (0 to 86400)"
    )
    assert repo.status()["modified"] == ["d/a.txt"]  # nothing was staged
    repo.ok("add", "d", env={"DVFS_LOCK_TIMEOUT": "0.5"})
    repo.fsck_clean()


@pytest.mark.parametrize(
    ("name", "value", "wanted"),
    [
        ("DVFS_THREADS", "0", "a whole number from 1 to 256"),
        ("DVFS_THREADS", "abc", "a whole number from 1 to 256"),
        ("DVFS_THREADS", "100000", "a whole number from 1 to 256"),
        ("DVFS_AUTHOR", "a\n  forged", "without control characters"),
        ("DVFS_AUTHOR", "x" * 2000, "at most 1024 characters"),
    ],
)
def test_bad_thread_counts_and_authors(repo: Repo, name: str, value: str, wanted: str) -> None:
    committed(repo)
    repo.write("d/a.txt", "2")
    # DVFS_THREADS is read by every command that reads files, DVFS_AUTHOR by commit.
    args = ("add", "d") if name == "DVFS_THREADS" else ("commit", "-m", "two")
    if name == "DVFS_AUTHOR":
        repo.ok("add", "d")
    line = assert_error(repo.run(*args, env={name: value}), wanted, code=2)
    assert "\n" not in line and len(line) < 200, line  # the value is escaped and cut short
    assert line.startswith(f"dvfs: error: {name}=")
    assert repo.show()["version"] == "v1"
    assert bool(repo.status()["staged"]) == (name == "DVFS_AUTHOR")
    repo.fsck_clean()


@pytest.mark.parametrize(
    ("name", "value", "wanted"),
    [
        ("DVFS_RETRY_ATTEMPTS", "0", "a whole number from 1 to 100"),
        ("DVFS_RETRY_ATTEMPTS", "1.5", "a whole number from 1 to 100"),
        ("DVFS_RETRY_DEADLINE", "inf", "a number of seconds (0 to 86400)"),
        ("DVFS_RETRY_DEADLINE", "-5", "a number of seconds (0 to 86400)"),
    ],
)
def test_bad_retry_settings(tmp_path: Path, name: str, value: str, wanted: str) -> None:
    # Refused before any request: the endpoint is a closed port.
    r = run(
        tmp_path, "clone", "s3://bucket/data", "copy", "--endpoint-url", "http://127.0.0.1:9",
        env={name: value},
    )  # fmt: skip
    assert assert_error(r, code=2) == f"dvfs: error: {name}={value} is not {wanted}"
    assert not (tmp_path / "copy").exists()


def test_help_works_with_a_broken_environment(tmp_path: Path) -> None:
    r = assert_ok(run(tmp_path, "--help", env=BROKEN_ENV))
    assert r.out.startswith("Usage: dvfs ")
    # Every subcommand's --help, in one fresh interpreter with the same environment.
    script = """
import sys
import click
import vfs.cli

def walk(group, prefix):
    for name, cmd in group.commands.items():
        yield [*prefix, name]
        if isinstance(cmd, click.Group):
            yield from walk(cmd, [*prefix, name])

seen = 0
for path in walk(vfs.cli.cli, []):
    try:
        vfs.cli.cli.main([*path, "--help"], prog_name="dvfs", standalone_mode=False)
    except SystemExit as exc:
        assert exc.code in (0, None), (path, exc.code)
    seen += 1
print(seen)
"""
    out = run_python(script, env=BROKEN_ENV)
    assert int(out.strip().splitlines()[-1]) >= 25
