"""Consistent flags: ``--json`` wherever output is structured, ``-d`` to delete, help
whose summaries are whole and whose examples parse, and shell completion.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import select
import shlex
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click

from tests.support.cli import (
    CLI,
    Repo,
    RepoFactory,
    add_in_process,
    assert_ok,
    cli_command,
    cli_env,
    commit_files,
    commit_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.mount import RUNTIME, home_env, mounted
from tests.support.waiting import wait_for
from vfs._os.helper_process import tag_alive
from vfs.cli import cli
from vfs.mount.control import LOOK_WAIT_ENV

# Commands whose output a script would read: each takes --json.
STRUCTURED = [
    "add", "rm", "commit", "snapshot", "status", "log", "show", "ls", "diff", "checkout",
    "switch", "branch", "tag", "fsck", "remote list", "push", "fetch", "pull", "clone",
    "mount", "mounts", "repro", "stage list", "lineage", "params diff", "metrics show",
    "metrics diff", "compare", "exp run", "exp list",
]  # fmt: skip
SHELL_OPERATORS = {"&&", "||", "|", ";", ">", ">>", "<"}


def commands(group: click.Group = cli, prefix: str = "") -> Iterator[tuple[str, click.Command]]:
    """Every command and group below ``group``, by its path (``remote add``)."""
    for name, cmd in group.commands.items():
        path = f"{prefix}{name}"
        yield path, cmd
        if isinstance(cmd, click.Group):
            yield from commands(cmd, f"{path} ")


def lookup(path: list[str]) -> tuple[click.Command, list[str]]:
    """The command ``dvfs ARGS`` runs, and the arguments it is given."""
    cmd: click.Command = cli
    args = list(path)
    while isinstance(cmd, click.Group) and args and args[0] in cmd.commands:
        cmd = cmd.commands[args.pop(0)]
    return cmd, args


def test_structured_output_has_json_everywhere() -> None:
    every = dict(commands())
    for path in STRUCTURED:
        opts = {o for p in every[path].params for o in getattr(p, "opts", [])}
        assert "--json" in opts, path


def test_usage_brackets_every_argument_that_may_be_left_out() -> None:
    """`dvfs ls --help` showed `REV[:DIR]` as if it had to be given; `dvfs ls` lists
    the current directory of HEAD."""
    for path, cmd in commands():
        for p in cmd.params:
            if isinstance(p, click.Argument) and not p.required:
                shown = p.make_metavar(click.Context(cmd))
                assert shown.startswith("["), f"dvfs {path}: {shown}"


def test_help_lists_every_command_with_its_whole_summary() -> None:
    r = assert_ok(run(Path.cwd(), "--help", env={"COLUMNS": "60"}))
    flat = " ".join(r.out.split())
    assert "..." not in r.out.partition("Options:")[2]  # nothing cut
    for name, cmd in cli.commands.items():
        summary = cmd.get_short_help_str(limit=1 << 16)
        assert (f"{name} {summary}" in flat) != cmd.hidden, name  # (`dvfs hook` is for git)
    for section in ("Start and track:", "Look at versions:", "Share:", "Mount:"):
        assert section in r.out
    # each command under what it is for: merge, gc and du were "Other commands"
    assert "Other commands" not in r.out
    remote = assert_ok(run(Path.cwd(), "remote", "--help", env={"COLUMNS": "60"})).out
    assert "..." not in remote.partition("Options:")[2]
    assert "Forget remote NAME (nothing on the remote is" in remote


def test_every_command_has_examples_that_parse() -> None:
    tried = 0
    for path, cmd in [("", cli), *commands()]:
        assert cmd.epilog and "Examples:" in cmd.epilog, f"dvfs {path}: no examples"
        lines = [ln.strip() for ln in cmd.epilog.partition("Examples:")[2].splitlines()]
        lines = [ln for ln in lines if ln]
        assert lines, path
        for line in lines:
            segments: list[list[str]] = [[]]
            words = shlex.split(line, comments=True)
            if words[0] == "eval":  # eval "$(dvfs ...)"
                words = shlex.split(words[1].removeprefix("$(").removesuffix(")"))
            for w in words:
                if w in SHELL_OPERATORS:
                    segments.append([])
                else:
                    segments[-1].append(w)
            ours = [seg for seg in segments if seg and seg[0] == "dvfs"]
            assert ours and ours[0] == segments[0], line
            if "COMMAND" in ours[0]:
                continue
            assert any(" ".join(seg[1:]).startswith(path) for seg in ours), line
            for seg in ours:
                target, args = lookup(seg[1:])
                with target.make_context(" ".join(seg[:2]), args) as ctx:
                    assert ctx.command is target
                tried += 1
    assert tried >= 60


def test_examples_come_after_the_options(repo: Repo) -> None:
    out = repo.ok("tag", "--help").out
    assert out.index("Options:") < out.index("Examples:") < out.index("dvfs tag -d best")
    assert "\b" not in out


def test_tag_and_branch_delete_with_d_several_at_once(repo: Repo) -> None:
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    v1 = repo.commit("one")
    for name in ("a", "b", "c"):
        repo.ok("tag", name)
        repo.ok("branch", f"br-{name}")
    repo.fail("tag", "-d", "a", "nope", fragments=("no tag named nope: nothing was deleted",))
    repo.fail("branch", "-d", "br-a", "nope", fragments=("no branch named nope",))
    assert [t["name"] for t in repo.json("tag", "--json")] == ["a", "b", "c"]
    assert repo.ok("tag", "-d", "a", "b").out.splitlines() == [
        f"deleted tag a (was v1 {v1[:10]})", f"deleted tag b (was v1 {v1[:10]})"
    ]  # fmt: skip
    assert repo.json("tag", "--delete", "c", "--json") == {
        "deleted": ["c"], "tags": [{"name": "c", "version": "v1", "id": v1}]
    }  # fmt: skip
    assert repo.json("tag", "--json") == []
    # The JSON says what the words say: the id each branch held, to make it again.
    got = repo.json("branch", "-d", "br-a", "br-b", "--json")
    assert got == {
        "deleted": ["br-a", "br-b"],
        "branches": [{"name": f"br-{n}", "version": "v1", "id": v1} for n in ("a", "b")],
    }
    repo.ok("branch", "br-a", got["branches"][0]["id"])
    repo.ok("branch", "-d", "br-a")
    listed = repo.json("branch", "--json")
    assert listed == [
        {"name": "br-c", "version": "v1", "id": v1, "current": False},
        {"name": "main", "version": "v1", "id": v1, "current": True},
    ]
    repo.fail("tag", "-d", fragments=("name the tags to delete",), code=2)
    repo.fail("tag", "x", "v1", "y", fragments=("to delete several, use -d",), code=2)
    assert repo.json("tag", "x", "v1", "--json") == {"name": "x", "version": "v1", "id": v1}
    repo.fsck_clean()


def test_an_option_without_its_value_points_at_the_commands_own_help(repo: Repo) -> None:
    for args, command in (
        (("log", "-n"), "log"),
        (("commit", "-m"), "commit"),
        (("checkout", "-b"), "checkout"),
        (("remote", "add", "x", "--endpoint-url"), "remote add"),
    ):
        line = repo.fail(*args, code=2)
        assert f"option '{args[-1]}' requires an argument" in line
        assert line.endswith(f"(see `dvfs {command} --help`)"), line


def test_deleting_refs_is_all_or_nothing_and_a_name_twice_is_one(repo: Repo) -> None:
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    v1 = repo.commit("one")
    repo.ok("tag", "t")
    repo.ok("branch", "other")
    # The current branch among others: refused before any is deleted.
    line = repo.fail("branch", "-d", "other", "main", code=2)
    assert "main is the current branch" in line and "nothing was deleted" in line
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main", "other"]
    # A name given twice is deleted once, not deleted and then reported missing.
    assert repo.ok("tag", "-d", "t", "t").out.splitlines() == [f"deleted tag t (was v1 {v1[:10]})"]
    got = repo.json("branch", "-d", "other", "other", "--json")
    assert got == {"deleted": ["other"], "branches": [{"name": "other", "version": "v1", "id": v1}]}
    assert repo.json("tag", "--json") == []
    repo.fsck_clean()


def test_a_detached_commit_suggests_no_branch_that_was_deleted(repo: Repo) -> None:
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.commit("one")
    repo.ok("switch", "-c", "gone")
    repo.write("f.txt", "2")
    repo.ok("add", "f.txt")
    repo.commit("two")
    repo.ok("checkout", "v1")  # detached, HEAD remembers gone
    repo.write("f.txt", "3")
    repo.ok("add", "f.txt")
    assert "`dvfs switch gone`" in repo.fail("commit", "-m", "x", code=2)
    repo.ok("branch", "-D", "gone")
    line = repo.fail("commit", "-m", "x", code=2)
    assert "dvfs switch -c NAME" in line and "gone" not in line
    repo.ok("switch", "-c", "kept")
    repo.ok("commit", "-m", "x")


def test_json_from_add_to_pull(make_repo: RepoFactory, tmp_path: Path) -> None:
    repo = make_repo()
    repo.write("d/a.txt", "aaaa")
    repo.write("d/b.txt", "bb")
    assert repo.json("add", "d", "--json") == {
        "files": 2, "hashed": 2, "bytes_read": 6, "removed": 0, "ignored": 0
    }  # fmt: skip
    got = repo.json("commit", "-m", "one", "--tag", "first", "--json")
    assert got == {
        "version": "v1", "id": repo.head_id(), "branch": "main", "tag": "first", "files": 2,
        "bytes": 6,
    }  # fmt: skip
    assert repo.json("show", "--json") == repo.json("show", "--format", "json")
    repo.fail("show", "--json", "--format", "yaml", fragments=("give one",), code=2)
    assert repo.json("rm", "--cached", "d/b.txt", "--json") == {"untracked": ["d/b.txt"]}
    repo.ok("commit", "-m", "two")
    co = repo.json("checkout", "v1", "--json")
    assert co == {
        "version": "v1", "branch": None, "paths": False, "written": 0, "deleted": 0,
        "unchanged": 2, "failed": {}, "carried": [], "kept": [],
    }  # fmt: skip
    assert repo.json("switch", "main", "--json")["branch"] == "main"

    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    pushed = repo.json("push", "--json")
    assert pushed["objects"] > 0 and pushed["packs"] >= 1 and pushed["bytes"] > 0
    assert set(pushed) >= {"requests", "kept_packs", "kept_bytes", "notes", "warnings"}
    cloned = assert_ok(run(tmp_path, "clone", str(tmp_path / "remote"), "c", "--json")).json()
    assert cloned["path"] == str(tmp_path / "c") and cloned["branch"] == "main"
    other = Repo(tmp_path / "c")
    assert other.read("d/a.txt") == b"aaaa"
    repo.write("d/c.txt", "c")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "three")
    repo.ok("push")
    fetched = other.json("fetch", "--json")
    assert [b["name"] for b in fetched["branches"]] == ["origin/main"]
    assert fetched["branches"][0]["version"] == "v3"
    pulled = other.json("pull", "--json")
    assert pulled["checkout"]["version"] == "v3" and pulled["checkout"]["written"] == 1
    assert pulled["transfer"]["objects"] >= 1
    repo.fsck_clean()
    other.fsck_clean()


# ------------------------------------------------------------------------------ completion


def completions(cwd: Path, shell: str, words: str) -> list[str]:
    """What ``dvfs`` answers a shell asking to complete ``words`` (the last one cut)."""
    env = {
        "_DVFS_COMPLETE": f"{shell}_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }
    r = assert_ok(run(cwd, env=env))
    assert r.err == "", str(r)  # never a line on the terminal at a TAB
    return [ln for ln in r.out.splitlines() if ln]


def test_completion_scripts_for_three_shells(repo: Repo) -> None:
    bash = repo.ok("completion", "bash").out
    assert "_DVFS_COMPLETE=bash_complete" in bash and "complete -o nosort -F" in bash
    assert "_DVFS_COMPLETE=zsh_complete" in repo.ok("completion", "zsh").out
    assert "_DVFS_COMPLETE=fish_complete" in repo.ok("completion", "fish").out
    repo.fail("completion", "tcsh", fragments=("tcsh",), code=2)


def test_completion_offers_commands_revisions_and_files(repo: Repo, tmp_path: Path) -> None:
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    repo.ok("branch", "fix")
    assert completions(repo.root, "bash", "dvfs ch") == ["plain,check-ignore", "plain,checkout"]
    assert completions(repo.root, "bash", "dvfs checkout ") == [
        "plain,HEAD", "plain,best", "plain,fix", "plain,main",
    ]  # fmt: skip
    assert completions(repo.root, "bash", "dvfs switch ") == ["plain,fix", "plain,main"]
    assert completions(repo.root, "bash", "dvfs tag -d b") == ["plain,best"]
    assert completions(repo.root, "bash", "dvfs add ") == ["file,"]
    assert completions(repo.root, "bash", "dvfs checkout v1 ") == ["plain,f.txt"]  # v1 holds
    assert completions(tmp_path, "bash", "dvfs checkout ") == []  # not in a repository

    # The script itself, in a real bash: the completion function fills COMPREPLY.
    wrapper = tmp_path / "dvfs"
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(CLI)} "$@"\n')
    wrapper.chmod(0o755)
    script = (
        'eval "$(dvfs completion bash)"; COMP_WORDS=(dvfs switch ""); COMP_CWORD=2; '
        'compopt() { :; }; _dvfs_completion dvfs; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = cli_env({"PATH": f"{tmp_path}{os.pathsep}{os.environ['PATH']}"})
    out = subprocess.run(
        ["bash", "-c", script], cwd=repo.root, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    ).stdout  # fmt: skip
    assert out.split() == ["fix", "main"]
    assert not re.search(r"Traceback|error", out)


def test_completion_offers_no_ref_name_that_could_break_the_command_line(repo: Repo) -> None:
    """Refs made by hand (an archive from someone else): a newline in a tag's name made
    a second candidate, an escape reached the terminal raw, a byte that is not UTF-8
    printed an error line at the TAB, and a space or a `*` split or globbed the name
    bash inserted. No command can name such a ref; completion offers none of them."""
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    tags = os.fsencode(repo.root / ".dvfs" / "refs" / "tags")
    held = (repo.root / ".dvfs" / "refs" / "tags" / "best").read_bytes()
    for name in (b"b\nplain,injected", b"esc\x1b[31mred", b"b\xffyte", b"sp ace", b"glob*"):
        with open(os.path.join(tags, name), "wb") as f:
            f.write(held)
    assert completions(repo.root, "bash", "dvfs checkout ") == [
        "plain,HEAD", "plain,best", "plain,main",
    ]  # fmt: skip
    assert completions(repo.root, "zsh", "dvfs tag -d b") == ["plain", "best", "_"]


def test_completion_offers_stage_names_where_a_command_takes_stages(repo: Repo) -> None:
    """`dvfs stage remove <TAB>` offered HEAD, branches and tags, none of which it
    takes; it, `repro`, `dag` and `exp run` are offered the stages of dvfs.yaml."""
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    repo.write("dvfs.yaml", "stages:\n  prepare:\n    cmd: echo\n  train:\n    cmd: echo\n")
    for words in ("dvfs stage remove ", "dvfs repro ", "dvfs dag ", "dvfs exp run "):
        assert completions(repo.root, "bash", words) == ["plain,prepare", "plain,train"], words
    assert completions(repo.root, "bash", "dvfs stage remove prepare t") == ["plain,train"]
    repo.write("dvfs.yaml", "stages: [")  # not YAML: nothing offered, nothing said
    assert completions(repo.root, "bash", "dvfs repro ") == []


def test_completion_offers_directories_for_mount_points_and_files_for_lineage(
    repo: Repo,
) -> None:
    """`dvfs umount <TAB>` (and status, snapshot, mount, ui, lineage, clone, remote add)
    completed nothing at all, not even the directories a mount point is."""
    for words in ("dvfs umount ", "dvfs status ", "dvfs snapshot ", "dvfs mount ",
                  "dvfs mount . ", "dvfs ui "):  # fmt: skip
        assert completions(repo.root, "bash", words) == ["dir,"], words
    assert completions(repo.root, "bash", "dvfs lineage ") == ["file,"]
    # a remote's URL may be a directory (`dvfs clone /mnt/nas/cats`)
    for words in ("dvfs clone ", "dvfs remote add backup "):
        assert completions(repo.root, "bash", words) == ["dir,"], words


def test_completion_offers_files_once_the_revisions_are_given(repo: Repo) -> None:
    """`dvfs diff v1 v2 <TAB>` offered branches and tags for a third revision diff does
    not take, and bash then offered no file; so did `dvfs log main <TAB>` and anything
    after `--`, where every argument is a path."""
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    refs = ["plain,HEAD", "plain,best", "plain,main"]
    assert completions(repo.root, "bash", "dvfs diff ") == ["file,", *refs]
    assert completions(repo.root, "bash", "dvfs diff v1 ") == ["file,", *refs]
    for words in ("dvfs diff v1 v2 ", "dvfs diff v1 main --stat ", "dvfs log main ",
                  "dvfs log -- ", "dvfs diff -- ", "dvfs diff v1 -- "):  # fmt: skip
        assert completions(repo.root, "bash", words) == ["file,"], words


def test_completion_offers_remotes_and_revisions_for_options(repo: Repo, tmp_path: Path) -> None:
    """`dvfs push --remote <TAB>` and `dvfs remote remove <TAB>` offered no remote,
    `dvfs restore --source <TAB>` no revision, `dvfs run --dep <TAB>` no file."""
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    repo.ok("remote", "add", "origin", str(tmp_path / "origin"))
    repo.ok("remote", "add", "backup", str(tmp_path / "backup"))
    repo.ok("push")
    remotes = ["plain,backup", "plain,origin"]
    for words in ("dvfs push --remote ", "dvfs log --remote ", "dvfs fsck --remote ",
                  "dvfs store prune --remote ", "dvfs remote remove ", "dvfs remote rename ",
                  "dvfs remote default "):  # fmt: skip
        assert completions(repo.root, "bash", words) == remotes, words
    assert completions(repo.root, "bash", "dvfs fetch --remote o") == ["plain,origin"]
    revisions = ["plain,HEAD", "plain,best", "plain,main", "plain,origin/main"]
    assert completions(repo.root, "bash", "dvfs restore --source ") == revisions
    assert completions(repo.root, "bash", "dvfs restore -s ") == revisions
    assert completions(repo.root, "bash", "dvfs mount --branch ") == ["plain,main"]
    for words in ("dvfs run --dep ", "dvfs run -o ", "dvfs run --metrics "):
        assert completions(repo.root, "bash", words) == ["file,"], words


def test_completion_of_deletions_offers_only_refs_of_that_kind(repo: Repo) -> None:
    """`dvfs tag -d <TAB>` offered HEAD and the branches, which it cannot delete, and
    `dvfs branch -d <TAB>` HEAD and the tags."""
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    repo.ok("branch", "fix")
    assert completions(repo.root, "bash", "dvfs tag -d ") == ["plain,best"]
    assert completions(repo.root, "bash", "dvfs tag --delete best ") == ["plain,best"]
    for flag in ("-d", "-D", "-m", "--delete"):
        words = f"dvfs branch {flag} "
        assert completions(repo.root, "bash", words) == ["plain,fix", "plain,main"], words
    everything = ["plain,HEAD", "plain,best", "plain,fix", "plain,main"]
    assert completions(repo.root, "bash", "dvfs tag new ") == everything  # NAME REV
    assert completions(repo.root, "bash", "dvfs branch new ") == everything


def bash_completes(repo: Repo, tmp_path: Path, words: list[str]) -> tuple[list[str], str]:
    """What the script of ``dvfs completion bash``, in a real bash, puts in COMPREPLY for
    ``words`` as bash cuts them (the last one completed), and the options it sets."""
    wrapper = tmp_path / "bin" / "dvfs"
    wrapper.parent.mkdir(exist_ok=True)
    wrapper.write_text(f'#!/bin/sh\nexec {shlex.join(CLI)} "$@"\n')
    wrapper.chmod(0o755)
    script = (
        f'eval "$(dvfs completion bash)"; COMP_WORDS=({shlex.join(words)}); '
        f'COMP_CWORD={len(words) - 1}; compopt() {{ echo compopt "$@" >&2; }}; '
        '_dvfs_completion dvfs; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = cli_env({"PATH": f"{wrapper.parent}{os.pathsep}{os.environ['PATH']}"})
    done = subprocess.run(
        ["bash", "-c", script], cwd=repo.root, env=env, capture_output=True, text=True,
        timeout=60, check=True,
    )  # fmt: skip
    return [ln for ln in done.stdout.splitlines() if ln], done.stderr


def test_completion_offers_the_paths_of_a_version(repo: Repo, tmp_path: Path) -> None:
    """`dvfs cat v1:<TAB>` offered nothing: bash cuts the word at the colon, and no
    version's paths were ever offered. The names of the version's directory are now
    offered after REV: and after REV, bash replacing what follows the colon."""
    commit_files(repo, {"data/a.csv": "a", "data/b.csv": "b", "data/sub/c.csv": "c",
                        "top.txt": "t"}, "one")  # fmt: skip
    repo.ok("tag", "best")
    # bash cuts `v1:` into `v1` and `:`, and replaces what follows the colon
    assert bash_completes(repo, tmp_path, ["dvfs", "cat", "v1", ":"]) == (
        ["data/", "top.txt"], ""
    )  # fmt: skip
    got, opts = bash_completes(repo, tmp_path, ["dvfs", "cat", "best", ":", "da"])
    assert got == ["data/"] and opts == "compopt -o nospace\n"  # inside it, at the next TAB
    got, opts = bash_completes(repo, tmp_path, ["dvfs", "ls", "v1", ":", "data/"])
    assert got == ["data/a.csv", "data/b.csv", "data/sub/"] and opts == ""
    assert bash_completes(repo, tmp_path, ["dvfs", "cat", "v1", "data/s"])[0] == ["data/sub/"]
    assert bash_completes(repo, tmp_path, ["dvfs", "cat", "v1", ":", "nope/"])[0] == []
    assert bash_completes(repo, tmp_path, ["dvfs", "cat", "v9", ":"])[0] == []
    # zsh and fish keep the word whole
    assert completions(repo.root, "zsh", "dvfs cat v1:data/s") == ["plain", "v1:data/sub/", "_"]
    # the second argument is from the current directory
    (repo.root / "data").mkdir(exist_ok=True)
    env = {"_DVFS_COMPLETE": "bash_complete", "COMP_WORDS": "dvfs cat v1 s", "COMP_CWORD": "3"}
    assert assert_ok(run(repo.root / "data", env=env)).out.split() == ["plain,sub/"]
    # `dvfs ls data`: a directory of HEAD alone
    assert "plain,data/" in completions(repo.root, "bash", "dvfs ls d")


def test_completion_offers_no_version_name_a_shell_would_not_take_as_it_is(
    repo: Repo, tmp_path: Path
) -> None:
    """A version's names come from whoever committed or pushed them: one with a newline
    would make a second candidate, an escape reach the terminal, a space or `$(...)` be
    inserted as several words or a command. Only names a shell takes as they are are
    offered, and at most 1000 at one TAB."""
    names = [b"ok.csv", b"\xc3\xa9t\xc3\xa9.csv", b"a\nplain,injected", b"esc\x1b[31m",
             b"b\xffyte", b"sp ace", b"$(touch x)", b"-rf", b"q'uote", b"c:d", b"g*"]  # fmt: skip
    data = os.path.join(os.fsencode(repo.root), b"data")
    os.makedirs(data)
    for name in names:
        with open(os.path.join(data, name), "wb") as f:
            f.write(b"x")
    for i in range(1100):
        repo.write(f"many/f{i:04d}.txt", "")
    add_in_process(repo, "data", "many")
    commit_in_process(repo, "one")
    got = completions(repo.root, "bash", "dvfs cat v1:data/")
    assert got == ["plain,v1:data/ok.csv", "plain,v1:data/été.csv"]
    got, _ = bash_completes(repo, tmp_path, ["dvfs", "cat", "v1", ":", "data/"])
    assert got == ["data/ok.csv", "data/été.csv"]
    assert len(completions(repo.root, "bash", "dvfs ls v1:many/")) == 1000
    assert completions(repo.root, "bash", "dvfs ls v1:many/f109") == [
        f"plain,v1:many/f109{i}.txt" for i in range(10)
    ]
    assert not (repo.root / "x").exists()


def test_completing_a_word_that_is_not_utf8_prints_no_error(repo: Repo) -> None:
    """`dvfs add <byte 0xff><TAB>` (a file so named, half typed) printed an internal
    error line over the command being typed, in zsh and in bash: the word is given
    back to the shell as it came, bytes and all."""
    word = os.fsdecode(b"\xffx")
    env = {"_DVFS_COMPLETE": "bash_complete", "COMP_WORDS": f"dvfs add {word}", "COMP_CWORD": "2"}
    r = assert_ok(run(repo.root, env=env))
    assert r.err == "" and r.raw == b"file,\xffx\n", str(r)
    env = {**env, "_DVFS_COMPLETE": "zsh_complete"}
    r = assert_ok(run(repo.root, env=env))
    assert r.err == "" and r.raw.split(b"\n")[:2] == [b"file", b"\xffx"], str(r)
    env = {"_DVFS_COMPLETE": "fish_complete", "COMP_WORDS": f"dvfs add {word}",
           "COMP_CWORD": word}  # fmt: skip
    r = assert_ok(run(repo.root, env=env))
    assert r.err == "" and r.raw == b"file,\xffx\n", str(r)
    for words in (f"dvfs cat v1:{word}", f"dvfs checkout {word}", f"dvfs push --remote {word}"):
        env = {"_DVFS_COMPLETE": "zsh_complete", "COMP_WORDS": words, "COMP_CWORD": "2"}
        r = assert_ok(run(repo.root, env=env))
        assert r.err == "", str(r)


def test_completion_offers_at_most_1000_refs(repo: Repo) -> None:
    """A repository of 1,100 tags printed all of them at each TAB (200,000: 2.4 s)."""
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one", "--tag", "best")
    tags = repo.root / ".dvfs" / "refs" / "tags"
    held = (tags / "best").read_bytes()
    (tags / "team").mkdir()
    for i in range(1100):
        (tags / "team" / f"t{i:04d}").write_bytes(held)
    assert len(completions(repo.root, "bash", "dvfs checkout ")) == 1000
    got = completions(repo.root, "bash", "dvfs checkout team/t109")
    assert got == [f"plain,team/t109{i}" for i in range(10)]


def test_completion_of_checkout_paths_offers_what_the_version_holds(repo: Repo) -> None:
    """`dvfs checkout v1 data/<TAB>` offered the working tree's files only: not the file
    deleted since v1 that the user means to bring back."""
    commit_files(repo, {"data/kept.csv": "k", "data/gone.csv": "g"}, "one")
    repo.ok("rm", "data/gone.csv")
    repo.ok("commit", "-m", "two")
    for words in ("dvfs checkout v1 data/", "dvfs pull v1 data/"):
        got = completions(repo.root, "bash", words)
        assert got == ["plain,data/gone.csv", "plain,data/kept.csv"], words
    assert completions(repo.root, "bash", "dvfs checkout v2 data/g") == ["file,data/g"]
    assert completions(repo.root, "bash", "dvfs checkout nope ") == ["file,"]


def test_completion_offers_the_settings_config_knows(repo: Repo) -> None:
    """`dvfs config <TAB>` offered nothing, not even its one setting."""
    for words in ("dvfs config ", "dvfs config st", "dvfs config --unset "):
        assert completions(repo.root, "bash", words) == ["plain,store.max-size"], words
    assert completions(repo.root, "bash", "dvfs config x") == []


# A plain `dvfs status` runs without click (vfs.cli.quick_status); the same status run
# through click, in a fresh interpreter each, prints the same.
_STATUS_DRIVER = """
import importlib, sys
import vfs.cli
sys.argv = ["dvfs", *sys.argv[1:]]
via_click = sys.argv.pop(1) == "click"

def loaded(code):
    print("click loaded:", "click" in sys.modules, "rich loaded:", "rich" in sys.modules)
    print("exit:", code or 0)
    sys.stdout.flush()

if via_click:
    try:
        vfs.cli.guarded(importlib.import_module("vfs.cli.root").run)
    except SystemExit as exc:
        loaded(exc.code)
    else:
        loaded(0)
else:  # the quick status ends the process itself (vfs.cli.exit_now): look just before
    end = vfs.cli.exit_now
    vfs.cli.exit_now = lambda code: (loaded(code), end(code))
    vfs.cli.main()
"""


def status_both_ways(repo: Repo, *args: str) -> tuple[str, str]:
    """What ``dvfs status ARGS`` prints on stdout, quickly and through click."""
    outs = []
    for way in ("quick", "click"):
        p = subprocess.run(
            [*CLI[:2], "-c", _STATUS_DRIVER, way, "status", *args],
            cwd=repo.root, env=cli_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert "Traceback" not in p.stderr, p.stderr
        outs.append(p.stdout + p.stderr)
    return outs[0], outs[1]


def test_a_plain_status_says_the_same_without_click(repo: Repo) -> None:
    for i in range(40):
        repo.write(f"d/{i % 4}/f{i}.txt", f"file {i}")
    repo.write("e/one.txt", "one")
    repo.ok("add", "d", "e")
    repo.ok("commit", "-m", "one")
    clean, via_click = status_both_ways(repo)
    assert "Nothing to commit, working tree clean." in clean
    assert "click loaded: False rich loaded: False\nexit: 0" in clean
    assert clean.replace("click loaded: False", "click loaded: True") == via_click
    for i in range(30):  # modified, deleted, untracked (some listed by directory), staged
        repo.write(f"d/{i % 4}/f{i}.txt", f"changed {i}")
    (repo.root / "d/1/f1.txt").unlink()
    repo.write("d/new\x1bname.txt", "untracked, with an escape in its name")
    repo.write("e/two.txt", "two")
    repo.ok("add", "e/two.txt")
    for args in [(), ("-v",), ("--verbose", "--json"), ("--json",)]:
        quick, via_click = status_both_ways(repo, *args)
        assert "click loaded: False" in quick, args
        assert quick.replace("click loaded: False", "click loaded: True") == via_click, args
    assert "modified: d/0/ (" in quick or '"modified"' in quick
    assert "\x1b" not in quick
    assert repo.status()["staged"][0]["path"] == "e/two.txt"
    # Anything else goes to click: its own errors and help, as before.
    r = repo.run("status", "--jsn")
    assert r.code == 2 and r.err.startswith("dvfs: error: no such option '--jsn'"), str(r)
    assert repo.ok("status", "--help").out.startswith("Usage: dvfs status [OPTIONS] [MNT]")
    repo.fsck_clean()


def test_a_clean_status_loads_nothing_only_other_states_need(repo: Repo) -> None:
    """A clean status where no merge is under way, no ``dvfs.lock`` lies, no checkout
    was cut short and nothing is untracked imports none of the modules those need, nor
    ``inspect`` (``dis``, ``tokenize``: what it loads) or ``shutil``: each was
    milliseconds of its start-up. It still finds a merge record and a ``dvfs.lock``
    when there is one."""
    # Written a minute ago: a file written within the index's racy window of the
    # commit (vfs.repo.stage.RACY_NS, reached on a loaded machine) is hashed again by
    # the first status, whose hashing threads load what a clean status need not.
    past = time.time() - 60
    for i in range(40):
        os.utime(repo.write(f"d/{i % 4}/f{i}.txt", f"file {i}"), (past, past))
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    r = repo.ok("status", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert "Nothing to commit, working tree clean." in r.out
    lines = [line for line in r.err.splitlines() if line.startswith("import time:")]
    imported = {line.rpartition("|")[2].strip() for line in lines}
    assert "vfs.ops.status" in imported
    unneeded = {"dis", "tokenize", "shutil", "vfs.ops.merging", "vfs.repo.gitlink"}
    unneeded.add("vfs.repo.cut_short")  # (a checkout's record, where none is)
    unneeded |= {"signal", "shlex"}  # (to stop a helper; to quote a path in a message)
    assert imported & (unneeded | {"pathspec", "vfs.worktree.ignore"}) == set()
    (repo.root / "dvfs.lock").write_text("branch: main\nversion: v9\nid: " + "ab" * 32 + "\n")
    assert repo.status()["lock"] == {"branch": "main", "version": "v9", "id": "ab" * 32}
    (repo.root / ".dvfs" / "MERGE").write_bytes(b"not a merge record")
    r = repo.run("status")
    assert r.code != 0 and "MERGE" in r.err and "merge --abort" in r.err, str(r)
    (repo.root / ".dvfs" / "MERGE").unlink()
    (repo.root / "dvfs.lock").unlink()
    repo.fsck_clean()


def test_a_profiled_command_writes_its_profile(repo: Repo, tmp_path: Path) -> None:
    # A status, add, commit, checkout or diff ends the process at once when it succeeds
    # (vfs.cli.exit_now); under a profiler it ends as usual, so the profile is written.
    import pstats

    repo.write("d/one.txt", "one")
    commands = [["add", "d"], ["commit", "-m", "one"], ["status"], ["diff", "--stat"]]
    for i, args in enumerate(commands):
        out = tmp_path / f"{i}.prof"
        p = subprocess.run(
            [*CLI[:2], "-m", "cProfile", "-o", str(out), "-m", "vfs.cli", *args],
            cwd=repo.root, env=cli_env(), capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert p.returncode == 0, p.stderr
        assert pstats.Stats(str(out)).get_stats_profile().func_profiles, args
    assert repo.status()["staged"] == []
    repo.ok("fsck")


def test_a_reader_gone_is_one_exit_code_for_every_command(repo: Repo) -> None:
    """`dvfs log | head` ended 1 without a word (click's handling of a closed pipe),
    while a plain `dvfs status` ended 141 for the same: now every command ends 141,
    as git does, and prints nothing."""
    repo.write("d/a.txt", "a")
    repo.ok("add", "d")
    repo.commit("one")
    repo.write("d/a.txt", "b")
    for args in (["log"], ["log", "--json"], ["status"], ["status", "--json"], ["tag", "t"],
                 ["diff"], ["ls", "-r"], ["show", "--files"]):  # fmt: skip
        read, write = os.pipe()
        os.close(read)  # the reader is gone before anything is written
        try:
            proc = subprocess.run(
                cli_command(*args), cwd=repo.root, env=cli_env(), stdout=write,
                stderr=subprocess.PIPE, timeout=60, check=False,
            )  # fmt: skip
        finally:
            os.close(write)
        assert (proc.returncode, proc.stderr) == (141, b""), (args, proc)
    assert repo.json("tag", "--json")[0]["name"] == "t"  # (the tag was made, then said)
    repo.fsck_clean()


# Waits for a byte on stdin, then runs the command in its arguments: a process whose
# current directory was entered while a mount's daemon still answered.
_WAIT_THEN_EXEC = "import os, sys\nsys.stdin.buffer.read(1)\nos.execv(sys.argv[1], sys.argv[1:])\n"


def complete_in(where: Path, home: Path, words: str, wait: float) -> subprocess.Popen[bytes]:
    """``dvfs`` asked to complete ``words`` in ``where``, entered now, giving up after
    ``wait`` s; it runs once sent a byte."""
    env = {
        **home_env(home), LOOK_WAIT_ENV: str(wait),
        "_DVFS_COMPLETE": "bash_complete", "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split(" ")) - 1),
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-P", "-c", _WAIT_THEN_EXEC, *cli_command()],
        cwd=where, env=cli_env(env),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def test_completion_answers_inside_and_beside_a_mount_whose_daemon_is_stopped(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A TAB looked into a dvfs mount: for the stages inside one (its dvfs.yaml), for a
    version's path typed through one beside (a mount of another repository in the
    working tree). With the daemon stopped (Ctrl-Z on `dvfs mount --foreground`) or
    hung, the look waited in the kernel for ever, and so did the shell. Completion now
    gives up on what it cannot get in a bounded time, and offers the rest."""
    repo, other = make_repo(), make_repo("other")
    commit_files(repo, {"data/a.txt": "a"}, "one")
    commit_files(other, {"data/b.txt": "b"}, "one")
    repo.write("dvfs.yaml", "stages:\n  prepare:\n    cmd: echo\n")
    home = tmp_path / "home"
    with (
        mounted(str(repo.root), tmp_path / "mnt", home, "--writable") as mnt,
        mounted(str(other.root), repo.root / "view", home) as view,
    ):
        (mnt.path / "dvfs.yaml").write_text("stages:\n  train:\n    cmd: echo\n")
        assert completions(mnt.path, "bash", "dvfs repro ") == ["plain,train"]
        asks = [  # (what waits for a daemon is given up on at once: the rest is not)
            (mnt.path / "data", "dvfs repro ", 0.1),  # dvfs.yaml of the mount's working tree
            (mnt.path / "data", "dvfs ch", 60),
            (repo.root, "dvfs checkout v1 view/data/x/", 0.1),
            (repo.root, "dvfs repro ", 60),
        ]
        procs = [complete_in(where, home, words, wait) for where, words, wait in asks]
        for m in (mnt, view):
            os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            answers = [p.communicate(b"go", timeout=30) for p in procs]
        finally:
            for m in (mnt, view):
                os.kill(m.proc.pid, signal.SIGCONT)
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
    assert [out.decode().split() for out, _ in answers] == [
        [], ["plain,check-ignore", "plain,checkout"], [], ["plain,prepare"],
    ]  # fmt: skip
    assert [err for _, err in answers] == [b""] * len(asks)


def in_mount(mnt: Path) -> set[int]:
    """The processes whose current directory lies in ``mnt`` (read without looking into it)."""
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/cwd").startswith(f"{mnt}/") and tag_alive(pid):
                found.add(int(pid))
    return found


def fuse_device(daemon: int) -> int:
    """A copy of the daemon's FUSE connection (``pidfd_getfd``): whoever reads a
    request from it has taken it, as the daemon would have."""
    libc = ctypes.CDLL(None, use_errno=True)
    (fd,) = [int(n) for n in os.listdir(f"/proc/{daemon}/fd")
             if os.readlink(f"/proc/{daemon}/fd/{n}") == "/dev/fuse"]  # fmt: skip
    pidfd = os.pidfd_open(daemon)
    try:
        got = int(libc.syscall(_SYS_PIDFD_GETFD, pidfd, fd, 0))
    finally:
        os.close(pidfd)
    assert got >= 0, os.strerror(ctypes.get_errno())
    return got


_SYS_PIDFD_GETFD = 438
_FUSE_OUT = struct.Struct("<IiQ")  # struct fuse_out_header: len, error, unique


def test_a_tab_whose_look_into_a_mount_is_stuck_starts_no_other_until_it_ends(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A TAB's child given up on, whose request its mount's daemon took and then was
    stopped (Ctrl-Z) before answering, waits in the kernel, SIGKILL or not, until
    the daemon answers: each TAB after it waited its whole time and forked another.
    Now a TAB while that child lives answers nothing at once and forks none; once
    the request is answered the child ends, and a TAB looks again, leaving nothing."""
    repo = make_repo()
    commit_files(repo, {"data/a.txt": "a"}, "one")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo.root), mnt, home, "--writable") as m:
        (mnt / "dvfs.yaml").write_text("stages:\n  train:\n    cmd: echo\n")
        device = fuse_device(m.proc.pid)
        first = complete_in(mnt / "data", home, "dvfs repro ", 1)
        os.kill(m.proc.pid, signal.SIGSTOP)
        try:
            assert first.stdin is not None
            first.stdin.write(b"go")
            first.stdin.close()
            assert select.select([device], [], [], 30)[0]
            request = os.read(device, 2 << 20)  # taken from the stopped daemon
            assert first.wait(timeout=30) == 1
            (stuck,) = in_mount(mnt)  # given up on, and killed: it waits for the answer
            second = complete_in(mnt / "data", home, "dvfs repro ", 5)
            started = time.monotonic()
            assert second.communicate(b"go", timeout=30) == (b"", b"")
            assert time.monotonic() - started < 2  # at once, not after its 5 s
            assert second.returncode == 1 and in_mount(mnt) == {stuck}
        finally:
            os.kill(m.proc.pid, signal.SIGCONT)
        unique = struct.unpack_from("<Q", request, 8)[0]  # (struct fuse_in_header)
        os.write(device, _FUSE_OUT.pack(_FUSE_OUT.size, -errno.EIO, unique))
        os.close(device)
        wait_for(lambda: not in_mount(mnt), m.proc, "the child answered ended")
        third = complete_in(mnt / "data", home, "dvfs repro ", 60)
        assert third.communicate(b"go", timeout=60)[0].split() == [b"plain,train"]
        assert not in_mount(mnt) and not list((RUNTIME / "dvfs").glob("tab-*"))
    repo.fsck_clean()
