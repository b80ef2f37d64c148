"""What the user types: environment values, argument bounds, parameter files, empty paths.

Every bad input gets one ``dvfs: error:`` line and exit 2, never a traceback, and
changes nothing.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
from pathlib import Path

import pytest

import vfs
from tests.support.cli import (
    Repo,
    Result,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_python,
)
from vfs.repo.repository import Repository

BROKEN_ENV = {
    "DVFS_LOCK_TIMEOUT": "abc",
    "DVFS_RETRY_ATTEMPTS": "0",
    "DVFS_RETRY_DEADLINE": "nan",
    "DVFS_THREADS": "-3",
    "DVFS_AUTHOR": "two\nlines",
}


def committed(repo: Repo) -> None:
    commit_files(repo, {"d/a.txt": "1"}, "one")


# ------------------------------------------------------------------------------ environment


def test_bad_lock_timeouts_thread_counts_and_authors_are_one_line(repo: Repo) -> None:
    committed(repo)
    repo.write("d/a.txt", "2")
    # (Python reads "1_0" as 10 and "\u0665" as 5: not numbers as a user writes them)
    for value in ("abc", "nan", "inf", "-1", "86401", "1e9", "1_0", "\u0665", "0x10"):
        line = assert_error(repo.run("add", "d", env={"DVFS_LOCK_TIMEOUT": value}), code=2)
        assert line == (
            f"dvfs: error: DVFS_LOCK_TIMEOUT={value} is not a number of seconds (0 to 86400)"
        )
    # DVFS_THREADS is read by every command that reads files, DVFS_AUTHOR by commit.
    for value in ("0", "abc", "100000", "1_6", "\u0664", "\uff14"):
        line = assert_error(repo.run("add", "d", env={"DVFS_THREADS": value}), code=2)
        assert line == f"dvfs: error: DVFS_THREADS={value} is not a whole number from 1 to 256"
    assert repo.status()["modified"] == ["d/a.txt"]  # nothing was staged
    repo.ok("add", "d", env={"DVFS_LOCK_TIMEOUT": "0.5", "DVFS_THREADS": "3"})
    repo.ok("status", env={"DVFS_LOCK_TIMEOUT": " 1e1 ", "DVFS_THREADS": "+4"})
    for value, wanted in (
        ("a\n  forged", "without control characters"),
        ("x" * 2000, "at most 1024 characters"),
    ):
        r = repo.run("commit", "-m", "two", env={"DVFS_AUTHOR": value})
        line = assert_error(r, wanted, code=2)
        assert "\n" not in r.err.rstrip("\n") and len(line) < 200, line  # escaped, cut short
        assert line.startswith("dvfs: error: DVFS_AUTHOR=")
    assert repo.show()["version"] == "v1"
    repo.fsck_clean()


def test_a_bad_setting_is_refused_before_the_command_does_anything(repo: Repo) -> None:
    """`DVFS_LOCK_TIMEOUT=abc dvfs run` ran the stage, then refused to take the lock to
    record it; `dvfs log` and `dvfs status` took it as it was."""
    committed(repo)
    bad = {"DVFS_LOCK_TIMEOUT": "abc"}
    wanted = "dvfs: error: DVFS_LOCK_TIMEOUT=abc is not a number of seconds (0 to 86400)"
    r = repo.run("run", "-n", "s", "-o", "o", "--", "echo ran > o", env=bad)
    assert assert_error(r, code=2) == wanted
    assert not (repo.root / "o").exists() and not (repo.root / "dvfs.yaml").exists()
    for args in (("log",), ("status",), ("status", "--json"), ("remote", "list")):
        assert assert_error(repo.run(*args, env=bad), code=2) == wanted, args
    assert assert_error(repo.run("log", env={"DVFS_THREADS": "0"}), code=2) == (
        "dvfs: error: DVFS_THREADS=0 is not a whole number from 1 to 256"
    )
    assert repo.run("log", "--help", env=bad).code == 0
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


# ------------------------------------------------------------------------------ empty paths


def snapshot_of(repo: Repo) -> tuple[object, ...]:
    """What an empty path must leave alone: working files and their bytes, the index."""
    files = {
        str(p.relative_to(repo.root)): p.read_bytes() for p in repo.root.rglob("*") if p.is_file()
    }
    return files, (repo.root / ".dvfs" / "index").read_bytes()


def test_empty_paths_are_refused_and_change_nothing(repo: Repo, tmp_path: Path) -> None:
    for rel in ("d/a.txt", "d/b.txt", "e/c.txt"):
        repo.write(rel, rel)
    repo.ok("add", "d", "e")
    repo.ok("commit", "-m", "one")
    repo.write("d/a.txt", "changed")
    repo.write("d/new.txt", "untracked")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    # (status first: one run within RACY_NS of the last write of the index writes it
    # again, its racy rows checked, and the snapshot must hold that)
    status = repo.status()
    before = snapshot_of(repo)
    cases = [
        ("rm", ""), ("rm", "--cached", ""), ("rm", "--force", "d/b.txt", ""), ("add", ""),
        ("checkout", "v1", ""), ("checkout", "--force", "v1", "d", ""), ("pull", "v1", ""),
        ("pull", "--force", "v1", ""),
    ]  # fmt: skip
    for args in cases:
        for cwd in (repo.root / "d",) if args[0] != "rm" else (repo.root, repo.root / "d"):
            line = assert_error(run(cwd, *args), "empty PATH argument", code=2)
            assert "write '.' for the current directory" in line
            assert snapshot_of(repo) == before, args
    assert repo.status() == status
    # '.' still means the current directory
    assert_ok(run(repo.root / "e", "rm", "--cached", "."))
    assert [c["path"] for c in repo.status()["staged"]] == ["e/c.txt"]
    repo.fsck_clean()


def test_an_empty_argument_is_named_by_its_metavar_alone(repo: Repo) -> None:
    """`dvfs config ""` said "empty KE argument", `config KEY ""` "empty VALUE]
    argument", `du ""` "empty REV... argument": the brackets of the usage line cut."""
    cases = [
        (("config", ""), "KEY"), (("config", "k", ""), "VALUE"), (("du", ""), "REV"),
        (("ls", ""), "REV[:DIR]"),  # (was "REV[:DIR": a bracket of its own cut too)
    ]  # fmt: skip
    for args, name in cases:
        assert_error(repo.run(*args), f"dvfs: error: empty {name} argument (an unset", code=2)
    repo.fsck_clean()


def test_a_tag_given_twice_is_refused_not_the_first_dropped(repo: Repo) -> None:
    """`dvfs commit -m x --tag a --tag b` tagged the version b alone: tag a was dropped
    without a word. It is refused before anything is staged or recorded."""
    repo.write("d/f", "1")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    repo.write("d/f", "2")
    line = "--tag was given 2 times (a, b): give it once"
    assert_error(repo.run("commit", "-am", "two", "--tag", "a", "--tag", "b"), line, code=2)
    assert repo.status()["modified"] == ["d/f"] and repo.json("tag", "--json") == []
    repo.ok("commit", "-am", "two", "--tag", "a")
    assert [t["name"] for t in repo.json("tag", "--json")] == ["a"]
    repo.fsck_clean()


def test_a_blank_message_is_refused_before_commit_a_stages(repo: Repo) -> None:
    """`dvfs commit -a -m "  "` staged every changed file, then said the message was
    empty: the refused commit left them staged. Nothing is staged now."""
    repo.write("d/f", "1")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    repo.write("d/f", "2")
    for blank in ("  ", "\n"):
        assert_error(repo.run("commit", "-a", "-m", blank), "the commit message is empty", code=2)
        st = repo.status()
        assert st["staged"] == [] and st["modified"] == ["d/f"], st
    repo.ok("commit", "-am", "two")
    repo.fsck_clean()


def test_a_path_written_as_a_directory_must_be_one(repo: Repo) -> None:
    # `d/a/` names a directory (as git reads it): where d/a is a file, every command
    # refuses it with one line, rather than taking the file.
    repo.write("d/a", "a")
    repo.write("d/b", "b")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    repo.write("d/a", "changed")
    # (status first: one run within RACY_NS of the last write of the index writes it
    # again, its racy rows checked, and the snapshot must hold that)
    status = repo.status()
    before = snapshot_of(repo)
    cases = [
        ("add", "d/a/"), ("rm", "--force", "d/a/"), ("mv", "d/a/", "d/c"),
        ("mv", "d/b", "d/a/"), ("restore", "d/a/"), ("checkout", "HEAD", "d/a/"),
    ]  # fmt: skip
    for args in cases:
        line = assert_error(repo.run(*args), "d/a is a file, not a directory", code=2)
        assert "without the trailing '/'" in line, args
        assert snapshot_of(repo) == before, args
    assert "one" in repo.ok("log", "d/a/").out  # (versions are read: the tree says nothing)
    # DST/ is a directory to move into: never a new file's name
    assert_error(repo.run("mv", "d/b", "new/"), "new/ is not a directory", code=2)
    assert snapshot_of(repo) == before
    assert repo.status() == status
    assert repo.ok("mv", "d/", "e/").out == "renamed d -> e (2 tracked files)\n"  # (as git)
    repo.ok("mv", "e", "d")
    # a tracked file missing from the working tree is no directory either
    (repo.root / "d/a").unlink()
    handle = Repository(repo.root)
    with pytest.raises(vfs.UsageError, match=r"^d/a is a tracked file, not a directory"):
        handle.rel(f"{repo.root}/d/a/", handle.index())
    assert handle.rel(f"{repo.root}/d/", handle.index()) == b"d"
    repo.ok("add", "d/")
    assert [(c["status"], c["path"]) for c in repo.status()["staged"]] == [("removed", "d/a")]
    repo.fsck_clean()


def test_a_name_too_long_for_any_filesystem_is_one_line_that_says_so(repo: Repo) -> None:
    repo.write("d/a", "a")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    # (status first: one run within RACY_NS of the last write of the index writes it
    # again, its racy rows checked, and the snapshot must hold that)
    status = repo.status()
    before = snapshot_of(repo)
    long = "x" * 300
    for args, wanted in [
        (("add", f"d/{long}"), "does not exist and is not tracked"),
        (("add", f"{long}/y"), "does not exist and is not tracked"),
        (("rm", f"d/{long}/y"), "is not tracked"),
        (("mv", "d/a", f"d/{long}"), "longer than 255 bytes, which no filesystem takes"),
        (("mv", "d/a", f"{long}/y"), "longer than 255 bytes, which no filesystem takes"),
    ]:
        line = repo.fail(*args, code=2)
        assert wanted in line and "File name too long" not in line, (args, line)
        assert snapshot_of(repo) == before, args
    assert repo.status() == status
    repo.fsck_clean()


def test_no_argument_or_option_of_any_command_may_be_empty(repo: Repo) -> None:
    # Parsed in one fresh interpreter: the value is refused before any command runs.
    script = """
import io, sys
import click
import vfs.cli

def walk(group, prefix):
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from walk(cmd, [*prefix, name])
        else:
            yield [*prefix, name], cmd

tried = 0
for path, cmd in walk(vfs.cli.cli, []):
    for p in cmd.params:
        if not isinstance(p.type, vfs.cli.NotEmpty):
            continue
        argv = [*path, ""] if isinstance(p, click.Argument) else [*path, p.opts[-1], ""]
        if isinstance(p, click.Argument) and cmd.params.index(p) != 0:
            continue  # the first positional argument receives the ""
        sys.argv = ["dvfs", *argv]
        err = io.StringIO()
        sys.stderr = err
        try:
            vfs.cli.main()
        except SystemExit as exc:
            code = exc.code
        else:
            code = 0
        sys.stderr = sys.__stderr__
        lines = err.getvalue().splitlines()
        assert code == 2 and len(lines) == 1, (argv, code, lines)
        assert lines[0].startswith("dvfs: error: empty ") and "nothing was done" in lines[0], lines
        tried += 1
print(tried)
"""
    tried = int(run_python(script, cwd=repo.root).strip().splitlines()[-1])
    assert tried >= 40
    assert repo.status()["head"] is None
    repo.fsck_clean()


# ------------------------------------------------------------------------------ parameters


def limited_memory() -> None:
    """In a child before exec: at most 1 GiB of address space, so that a reader that
    does not stop fails with MemoryError instead of calling the OOM killer."""
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))


def run_limited(cwd: Path, *args: str) -> Result:
    """``dvfs ARGS`` with at most 1 GiB of memory and 30 s (a regression fails, not the host)."""
    proc = subprocess.run(
        cli_command(*args), cwd=cwd, env=cli_env(), capture_output=True, timeout=30,
        preexec_fn=limited_memory, check=False,
    )  # fmt: skip
    return Result(args, proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def test_a_params_file_is_a_small_regular_file(repo: Repo, tmp_path: Path) -> None:
    committed(repo)
    repo.write("d/a.txt", "2")
    repo.ok("add", "d")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "big.yaml").write_bytes(b"a: 1\n" + b"#" * (1 << 20))
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    cases = {
        "/dev/zero": "is not a regular file",
        str(tmp_path / "fifo"): "is not a regular file",  # it used to wait for a writer
        str(tmp_path): "is not a regular file",
        str(tmp_path / "big.yaml"): "is larger than 1 MiB",
        str(tmp_path / "latin1.yaml"): "is not UTF-8 text",
        str(tmp_path / "missing.yaml"): "no such file",
    }
    for path, wanted in cases.items():
        assert_error(
            run_limited(repo.root, "commit", "-m", "two", "--params-file", path), wanted, code=2
        )
    # exactly 1 MiB is accepted
    (tmp_path / "big.yaml").write_bytes(b"a: 1\n" + b"#" * ((1 << 20) - 6) + b"\n")
    repo.ok("commit", "-m", "two", "--params-file", str(tmp_path / "big.yaml"))
    assert repo.show()["parameters"] == {"a": 1}
    repo.fsck_clean()


def alias_bomb() -> str:
    """A 1 KiB YAML file whose aliases expand to 10**10 values."""
    lines = ["a0: &a0 [" + ", ".join(["1"] * 10) + "]"]
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def test_parameters_are_bounded(repo: Repo) -> None:
    committed(repo)
    repo.write("d/a.txt", "2")
    repo.ok("add", "d")
    repo.write("bomb.yaml", alias_bomb())
    repo.write("deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n")
    repo.write("deep33.yaml", "a: " + "[" * 32 + "]" * 32 + "\n")
    repo.write("key.yaml", "outer:\n  " + "k" * 257 + ": 1\n")
    cases = [
        (("--params-file", "bomb.yaml"), "more than 64 KiB"),
        (("--params-file", "deep.yaml"), "deeper than 32 levels"),
        (("--params-file", "deep33.yaml"), "deeper than 32 levels"),
        (("--params-file", "key.yaml"), "1 to 256 characters"),
        (("--param", "k\x1b[2J=1"), "without control characters"),
        (("--param", "x=" + "v" * 40_000, "--param", "y=" + "v" * 30_000), "more than 64 KiB"),
        (("--param", "k=" + os.fsdecode(b"\xff")), "not UTF-8"),
        (("--param", os.fsdecode(b"k\xff=1")), "parameter name k\\377 is not UTF-8"),
    ]
    for args, wanted in cases:
        line = assert_error(run_limited(repo.root, "commit", "-m", "two", *args), wanted, code=2)
        assert len(line) < 300, line
    assert_error(repo.run("commit", "-m", os.fsdecode(b"caf\xe9")), "not UTF-8", code=2)
    assert_error(repo.run("commit", "-m", "m" * 70_000), "longer than 64 KiB", code=2)
    assert repo.show()["version"] == "v1"
    # within the bounds: 32 levels, numbers JSON or msgpack cannot hold kept as text
    repo.write("deep32.yaml", "a: " + "[" * 31 + "]" * 31 + "\nwhen: 2024-01-31\n")
    repo.ok(
        "commit", "-m", "two", "--params-file", "deep32.yaml", "--param", "big=" + "9" * 30,
        "--param", "n=.nan", "--param", "inf=-.inf", "--param", "lr=0.01",
    )  # fmt: skip
    got = json.loads(repo.ok("show", "--format", "json").raw)  # strict JSON: no NaN
    p = got["parameters"]
    assert (p["big"], p["n"], p["inf"], p["lr"], p["when"]) == (
        "9" * 30,
        ".nan",
        "-.inf",
        0.01,
        "2024-01-31",
    )
    repo.fsck_clean()


def test_a_parameter_name_with_an_empty_part_between_dots_is_refused(repo: Repo) -> None:
    committed(repo)
    repo.write("d/a.txt", "2")
    repo.ok("add", "d")
    repo.write("nested.yaml", "opt:\n  lr.: 1\n")
    # `..` was recorded as a parameter, shown by log and compare as a name of its own
    for args, name in [
        (("--param", "..=1"), ".."),
        (("--param", ".=1"), "."),
        (("--param", ".lr=1"), ".lr"),
        (("--param", "lr.=1"), "lr."),
        (("--param", "opt..lr=1"), "opt..lr"),
        (("--params-file", "nested.yaml"), "opt.lr."),
    ]:
        line = assert_error(repo.run("commit", "-m", "two", *args), code=2)
        assert line == (
            f"dvfs: error: parameter name {name} has an empty part between dots: name each "
            "part (a.b is b inside a)"
        )
    with pytest.raises(vfs.DvfsError, match=r"parameter name \.\. has an empty part"):
        vfs.Repo(repo.root).commit("two", params={"..": 1})
    assert repo.show()["version"] == "v1"
    repo.ok("commit", "-m", "two", "--param", "opt.lr=1")
    assert repo.show()["parameters"] == {"opt.lr": 1}
    repo.fsck_clean()


# ------------------------------------------------------------------------------ other bounds


def test_out_of_range_options_and_control_characters_are_one_line(
    repo: Repo, tmp_path: Path
) -> None:
    committed(repo)
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    config = (repo.root / ".dvfs" / "config").read_bytes()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    cases = [
        (("log", "-n", "-5"), "'-n': -5 is not in the range"),
        (("push", "--jobs", "100000"), "'--jobs'"),
        (("mount", "--timeout", "nan", ".", str(mnt)), "nan is not a number of seconds"),
        (("mount", "--refresh", "inf", ".", str(mnt)), "not in the range 0.1<=x<=86400"),
        (("mount", "--timeout", "0", ".", str(mnt)), "not in the range 0.1<=x<=86400"),
        (("remote", "add", "x", str(tmp_path / "a\nb")), '/a\\nb" holds a control character'),
        (("remote", "add", "x", str(tmp_path), "--endpoint-url", "http://h\x1b[2J"), "\\033[2J"),
        (("remote", "add", "x", str(tmp_path), "--region", "eu\n"), "--region"),
        (("clone", "s3://bucket/p\r", str(tmp_path / "c")), '"s3://bucket/p\\r" holds'),
        (("commit",), "missing option '-m'"),
        (("nosuch",), "no such command 'nosuch'"),
    ]
    for args, wanted in cases:
        r = repo.run(*args)
        line = assert_error(r, wanted, code=2)
        assert "\x1b" not in r.err and r.err.count("\n") == 1, str(r)
        assert line.endswith("`)") or "control character" in line, line
    assert (repo.root / ".dvfs" / "config").read_bytes() == config
    assert not os.path.ismount(mnt) and not (tmp_path / "c").exists()
    assert repo.show()["version"] == "v1"
    repo.fsck_clean()


def test_a_ref_name_cannot_end_in_a_newline(repo: Repo, tmp_path: Path) -> None:
    committed(repo)
    for args in (("tag", "t\n"), ("branch", "b\n"), ("remote", "add", "o\n", str(tmp_path))):
        line = assert_error(repo.run(*args), "is not a valid", code=2)
        assert "\\n" in line
    assert repo.ok("tag").out == "" and repo.ok("remote", "list").out == ""
    assert sorted(p.name for p in (repo.root / ".dvfs" / "refs").rglob("*") if p.is_file()) == [
        "main"
    ]
    repo.fsck_clean()


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("-x", "must start with an ASCII letter, a digit or '_'"),
        (".hidden", "must start with an ASCII letter, a digit or '_'"),
        ("a b", "use ASCII letters, digits, '.', '_', '-' and '/'"),
        ("é", "must start with an ASCII letter, a digit or '_'"),  # é is a letter
        ("aé", "use ASCII letters, digits, '.', '_', '-' and '/'"),
        ("a..b", "may not hold '..' or '//'"),
        ("a//b", "may not hold '..' or '//'"),
        ("x.lock", "may not end in '/', '.' or '.lock'"),
        ("x/.y", "no part of it may start with '.' or end in '.lock'"),
        ("ab.lock/c", "no part of it may start with '.' or end in '.lock'"),
        ("a/b.lock/c", "no part of it may start with '.' or end in '.lock'"),
        ("x" * 201, "longer than 200 characters"),
    ],
)
def test_a_refused_ref_name_says_which_rule_it_breaks(repo: Repo, name: str, why: str) -> None:
    committed(repo)
    for kind in ("tag", "branch"):
        line = assert_error(repo.run(kind, "--", name), f"not a valid {kind} name: ", code=2)
        assert why in line, line
    assert repo.ok("tag").out == ""
    assert sorted(p.name for p in (repo.root / ".dvfs" / "refs").rglob("*") if p.is_file()) == [
        "main"
    ]
    repo.fsck_clean()


def test_a_ref_made_before_lock_parts_were_refused_can_still_be_deleted(repo: Repo) -> None:
    """A branch or tag with a part ending in .lock, made by an older dvfs (written here
    as it wrote them), is refused as a new name but can still be deleted."""
    committed(repo)
    oid = repo.head_id()
    for kind in ("heads", "tags"):
        ref = repo.root / ".dvfs" / "refs" / kind / "ab.lock" / "c"
        ref.parent.mkdir()
        ref.write_text(oid + "\n")
    assert_error(repo.run("branch", "ab.lock/d"), "end in '.lock'", code=2)
    assert repo.ok("branch", "-d", "ab.lock/c").out.startswith("deleted branch ab.lock/c")
    assert repo.ok("tag", "-d", "ab.lock/c").out.startswith("deleted tag ab.lock/c")
    assert repo.ok("tag").out == "" and [b["name"] for b in repo.json("branch", "--json")] == [
        "main"
    ]
    repo.fsck_clean()


@pytest.mark.parametrize(
    "args",
    [
        ("branch", "-d", "../tags/keep"),
        ("tag", "-d", "../heads/main"),
        ("tag", "-d", "../../HEAD"),
        ("branch", "-d", "./main"),
    ],
)
def test_deleting_a_ref_never_reaches_outside_its_kind(repo: Repo, args: tuple[str, ...]) -> None:
    committed(repo)
    repo.ok("tag", "keep")
    refs = sorted(str(p.relative_to(repo.root)) for p in (repo.root / ".dvfs").rglob("*"))
    assert_error(repo.run(*args), "nothing was deleted", code=2)
    assert sorted(str(p.relative_to(repo.root)) for p in (repo.root / ".dvfs").rglob("*")) == refs
    assert repo.ok("tag").out.startswith("keep ")
    assert repo.show()["version"] == "v1"
    repo.fsck_clean()


def test_no_repository_is_made_inside_a_repositorys_own_data(repo: Repo, tmp_path: Path) -> None:
    """`dvfs clone URL repo/.dvfs/x` (or `dvfs init` there, or in a `.git`) made a
    repository among another one's own files, where its gc and fsck manage them as
    theirs. Each is refused with one line now, before the remote is asked anything."""
    committed(repo)
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    before = sorted(p.name for p in (repo.root / ".dvfs").iterdir())
    (repo.root / "meta").symlink_to(".dvfs")
    (tmp_path / "g" / ".git").mkdir(parents=True)
    url = str(tmp_path / "remote")
    for args in (
        ("clone", url, ".dvfs/x"),
        ("clone", url, str(repo.root / ".dvfs" / "objects" / "y")),
        ("clone", url, "meta/q"),
        ("clone", "s3://bucket/nowhere", ".dvfs/x", "--endpoint-url", "http://127.0.0.1:9"),
        ("init", ".dvfs/z"),
        ("init", ".dvfs"),
        ("init", str(tmp_path / "g" / ".git" / "d")),
    ):
        line = repo.fail(*args, fragments=("where a repository keeps its own data",))
        assert "nothing was made" in line, line
    assert sorted(p.name for p in (repo.root / ".dvfs").iterdir()) == before
    assert list((tmp_path / "g" / ".git").iterdir()) == []
    assert_ok(run(tmp_path, "clone", url, "copy"))
    (repo.root / "meta").unlink()
    repo.fsck_clean()


def test_a_stage_name_with_a_letter_beyond_ascii_says_ascii(repo: Repo) -> None:
    """`é` is a letter: "a stage name is a letter, digit or _" refused one."""
    committed(repo)
    line = assert_error(repo.run("run", "-n", "é", "--", "true"), code=2)
    assert "an ASCII letter, digit or _, then at most 99 ASCII letters" in line
    repo.fsck_clean()
