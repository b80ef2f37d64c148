"""What `dvfs add` and `dvfs commit` load: the code they run, not the row diff's.

Each command is a new process, and every module it imports is paid for before the
first byte is read: `dvfs add` of a large file imported the row diff (`vfs.ops.diff`,
`vfs.ops.rows`, 5 ms of start-up) for a helper of `dvfs rm` only.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import types
from pathlib import Path

import pytest

from tests.support.cli import CLI, cli_env, commit_files, init_repo
from tests.test_listing_imports import loaded
from vfs._os import deferred

ROW_DIFF = {"vfs.ops.diff", "vfs.ops.rows"}


def test_add_and_commit_load_no_row_diff(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "big.bin").write_bytes(bytes(range(256)) * 4096)
    got = loaded(repo.root, "add", "big.bin")
    assert "vfs.worktree.ingest" in got and not got & ROW_DIFF, sorted(got & ROW_DIFF)
    got = loaded(repo.root, "commit", "-m", "big")
    assert "vfs.ops.commit" in got and not got & ROW_DIFF, sorted(got & ROW_DIFF)
    repo.fsck_clean()


# What the commands never use: `inspect`'s source tools (click cleaned every option's
# help with `inspect.cleandoc`), difflib (click's "did you mean" for `-m`, looked up as
# a long option first), the `dvfs store`/`fsck`/`gc` commands (for one helper) and
# `signal`'s enums (3.3 M instructions, for SIGINT ignored once the command is done).
UNUSED = {"ast", "dis", "difflib", "vfs.cli.store", "signal"}
# What `add` alone never uses: a version's parameters, the user name of a ref change,
# the audit log of ref changes (where the CLI kept the command line it records), and
# the code of `commit -a` and `rm` beside it (status, the checkout cut short, the
# working files' removal: 2.5 ms of its start-up).
UNUSED_BY_ADD = {
    "vfs.model.params",
    "getpass",
    "termios",
    "vfs.repo.audit",
    "vfs.ops.status",
    "vfs.repo.cut_short",
    "vfs.worktree.remove",
}


def test_add_and_commit_load_no_source_tools_suggestions_or_store_commands(
    tmp_path: Path,
) -> None:
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "new.txt").write_bytes(b"two\n")
    got = loaded(repo.root, "add", "new.txt")
    unused = UNUSED | UNUSED_BY_ADD
    assert "vfs.worktree.ingest" in got and not got & unused, sorted(got & unused)
    got = loaded(repo.root, "commit", "-m", "two")
    assert "vfs.ops.commit" in got and not got & UNUSED, sorted(got & UNUSED)
    assert [line.split()[-1] for line in repo.ok("log", "--oneline").out.splitlines()] == [
        "two",
        "one",
    ]
    repo.fsck_clean()


def test_help_is_cleaned_as_inspect_cleans_it() -> None:
    """The copy of ``inspect.cleandoc`` the CLI hands click gives what the original gives,
    for every command's and option's help and for text shaped otherwise."""
    import inspect

    import click

    from vfs.cli import cleandoc
    from vfs.cli.root import COMMANDS, cli

    texts = ["", "\n", "one", "  one\n\n", "a\n\tb\n  c\n", "\n\n  x\n    y\n\n", " a\n \n  b"]

    def gather(cmd: click.Command) -> None:
        texts.extend(t for t in (cmd.help, cmd.short_help, cmd.epilog) if t)
        texts.extend(p.help for p in cmd.params if isinstance(p, click.Option) and p.help)
        for sub in getattr(cmd, "commands", {}).values():
            gather(sub)

    gather(cli)
    assert len(texts) > 4 * len(COMMANDS)
    for text in texts:
        assert cleandoc(text) == inspect.cleandoc(text), text


def test_add_and_commit_outside_a_merge_load_no_merge_code(tmp_path: Path) -> None:
    """`dvfs add` and `dvfs commit` loaded the merge's code (`vfs.ops.merging`, about
    2 ms of start-up each) only to find no merge in progress; it is loaded where
    `.dvfs` holds a merge record, as `dvfs status` does."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "new.txt").write_bytes(b"two\n")
    got = loaded(repo.root, "add", "new.txt")
    assert "vfs.worktree.ingest" in got and "vfs.ops.merging" not in got
    got = loaded(repo.root, "commit", "-m", "two")
    assert "vfs.ops.commit" in got and "vfs.ops.merging" not in got
    assert "two" in repo.ok("log", "--oneline").out
    repo.fsck_clean()


def test_add_loads_no_thread_pool_code(tmp_path: Path) -> None:
    """`dvfs add` hashed on ``concurrent.futures``' pools, and so loaded ``logging``
    with it (about 4.5 ms of CPU before the first byte was read); its pools are the
    store's own threads now, for a large file's pipeline (cut, chunks, digest) and the
    batches of small files beside it alike."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    big = bytes(range(251)) * (12 * 4096)  # several chunks and regions (about 12 MiB)
    (repo.root / "big.bin").write_bytes(big)
    for i in range(40):
        (repo.root / "d" / f"s{i}").write_bytes(b"small %d\n" % i)
    got = loaded(repo.root, "add", "big.bin", "d")
    pools = {"concurrent.futures", "logging"}
    assert "vfs.worktree.ingest" in got and not got & pools, sorted(got & pools)
    repo.ok("commit", "-m", "two")
    assert repo.cat("HEAD:d/s7") == b"small 7\n"
    assert repo.cat("HEAD:big.bin") == big
    repo.fsck_clean()


def test_add_of_a_large_file_loads_no_typing_extensions(tmp_path: Path) -> None:
    """`pyfastcdc` imports `typing_extensions` for two type names of its annotations,
    and with it `inspect` (`ast`, `dis`, `tokenize`): 37 M instructions on the cut
    thread before the first chunk of a large file was known. The module stands in
    unrun while pyfastcdc is imported; the chunks are the same."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    big = bytes(range(251)) * (12 * 4096)  # several chunks and regions (about 12 MiB)
    (repo.root / "big.bin").write_bytes(big)
    got = loaded(repo.root, "add", "big.bin")
    unused = {"typing_extensions", "ast", "dis", "tokenize"}
    assert "pyfastcdc" in got and not got & unused, sorted(got & unused)
    repo.ok("commit", "-m", "two")
    assert repo.cat("HEAD:big.bin") == big
    repo.fsck_clean()


def test_commit_loads_no_thread_pool_code(tmp_path: Path) -> None:
    """`dvfs commit` wrote its few trees' pack and fsynced it and the ref's files on
    ``concurrent.futures``' pools, and so loaded ``logging`` with it (4.4-6.1 ms of
    its CPU) for two small objects; the store's own threads do that work now, with
    the same order of fsyncs and renames (tests/test_powercut.py)."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "d/x").write_bytes(b"two\n")
    repo.ok("add", "d/x")
    got = loaded(repo.root, "commit", "-m", "two")
    pools = {"concurrent.futures", "logging"}
    assert "vfs.ops.commit" in got and not got & pools, sorted(got & pools)
    assert [line.split()[-1] for line in repo.ok("log", "--oneline").out.splitlines()] == [
        "two",
        "one",
    ]
    assert repo.ok("cat", "HEAD:d/x").out == "two\n"
    repo.fsck_clean()


# Runs `dvfs ARGS` as `main` does and prints each dataclass made on the way, one a line.
_DATACLASS_DRIVER = """
import dataclasses, os, sys
made = dataclasses._process_class

def process_class(cls, *args, **kwargs):
    os.write(2, f"dataclass: {cls.__module__}.{cls.__qualname__}\\n".encode())
    return made(cls, *args, **kwargs)

dataclasses._process_class = process_class
sys.argv = ["dvfs", *sys.argv[1:]]
import vfs.cli
vfs.cli.main()
"""


def dataclasses_made(root: Path, *args: str) -> set[str]:
    """The dataclasses `dvfs ARGS` makes, run in ``root`` (it must succeed)."""
    p = subprocess.run(
        [*CLI[:2], "-c", _DATACLASS_DRIVER, *args],
        cwd=root, env=cli_env(), capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    return {line.split()[-1] for line in p.stderr.splitlines() if line.startswith("dataclass:")}


# The records of the tree format and of the index: frozen records by their slots
# (`vfs.model.codec.Record`), no longer dataclasses.
TREE_RECORDS = {
    "vfs.model.codec.ChunkRef",
    "vfs.model.codec.Entry",
    "vfs.model.codec.Tree",
    "vfs.repo.stage.Staged",
}


def test_add_commit_and_log_compile_no_dataclass_of_their_records(tmp_path: Path) -> None:
    """A dataclass compiles its methods as it is made, about 4 M instructions each, in
    every process that imports it: `dvfs commit` made eleven (a version and its
    pipeline's records, the history's, the audit log's, the lock file's: 31 M
    instructions of its 326 M) and `dvfs add` two it never uses. They are named
    tuples now, made at a sixth of the cost. The tree's and the index's four records
    (16.6 M instructions of every `add` and `commit`) are plain slotted classes that
    behave as the frozen dataclasses did: `dvfs commit` makes no dataclass at all."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "d/x").write_bytes(b"two\n")
    made = dataclasses_made(repo.root, "add", "d/x")
    unused = {"vfs.pipeline.writing.Writer", "vfs.repo.gitlink.LockPointer"}
    unused |= {"vfs.worktree.ignore.Match", "vfs.worktree.ignore._Compiled"}  # (made, now tuples)
    assert not made & (unused | TREE_RECORDS), sorted(made & (unused | TREE_RECORDS))
    made = dataclasses_made(repo.root, "commit", "-m", "two")
    assert not made, sorted(made)
    made = dataclasses_made(repo.root, "log", "-n", "1")
    records = {f"vfs.model.version_codec.{n}" for n in ("Version", "StageRecord", "StageRun")}
    records |= {"vfs.model.version_codec.GitLink", "vfs.repo.history.Extent"}
    records.add("vfs.ops.graph.GraphLine")  # (a line of `log --graph`)
    assert not made & records, sorted(made & records)
    assert [line.split()[-1] for line in repo.ok("log", "--oneline").out.splitlines()] == [
        "two",
        "one",
    ]
    repo.fsck_clean()


def deferred_run(body: str) -> str:
    """What a fresh interpreter prints running ``body`` after deferring modules as
    ``vfs.cli.main`` does (``os`` and ``sys`` imported)."""
    script = "import os, sys, vfs.cli; vfs.cli.defer_inspect()\n" + body
    return subprocess.run(
        [*CLI[:2], "-c", script], env=cli_env(), capture_output=True, text=True, check=True
    ).stdout


def test_commands_load_no_url_parsing(tmp_path: Path) -> None:
    """`pathlib` imports `urllib.parse` (and it `ipaddress`) for `Path.as_uri`, which
    no command calls: 10.7 M instructions of every command's start-up. It runs when
    something first uses it; a path's URI is still right, and so is what the module
    answers once it has run."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "d/x").write_bytes(b"two\n")
    url = {"urllib.parse", "ipaddress"}
    for args in (("status",), ("add", "d/x"), ("commit", "-m", "two"), ("log", "-n", "1")):
        got = loaded(repo.root, *args)
        assert "vfs.cli" in got and not got & url, (args, sorted(got & url))
    out = deferred_run(
        "import pathlib; from urllib.parse import quote_from_bytes as quote\n"
        "assert 'ipaddress' not in sys.modules\n"
        "print(pathlib.Path('/a b/\\u00e9').as_uri(), quote(b'/x y'), 'ipaddress' in sys.modules)\n"
        "import urllib.parse as up\n"
        "print(up.urlsplit('s3://b/k?x=1').netloc, up.quote_from_bytes(b'a b'))\n"
    )
    assert out == "file:///a%20b/%C3%A9 /x%20y True\nb a%20b\n"
    assert repo.ok("cat", "HEAD:d/x").out == "two\n"
    repo.fsck_clean()


def test_commands_through_click_run_no_platform_module(tmp_path: Path) -> None:
    """Click imports `uuid`, which asks `platform.system()` as it is imported, and a
    commit's `zstandard` asks `platform.python_implementation()`: loading `platform`
    for those was 8 M instructions of every `add`, `commit` and `log`. The answers
    come from `os.uname()` and `sys.implementation`; the module runs when something
    else asks it."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "d/x").write_bytes(b"two\n")
    for args in (("add", "d/x"), ("commit", "-m", "two"), ("log", "-n", "1")):
        # (deferred, it is in sys.modules unrun: `loaded` leaves it out until it runs)
        assert "platform" not in loaded(repo.root, *args), args
    out = deferred_run(
        "import uuid, platform\n"
        "assert uuid._LINUX and platform.python_implementation() == 'CPython'\n"
        "print(platform.system(), platform.machine() == os.uname().machine)\n"
    )
    assert out == "Linux True\n"
    assert [line.split()[-1] for line in repo.ok("log", "--oneline").out.splitlines()] == [
        "two",
        "one",
    ]
    repo.fsck_clean()


def test_a_deferred_module_asked_from_two_threads_is_whole_for_both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A module deferred by `vfs._os.deferred.defer` runs on the first thread that asks it for a
    name; another thread asking meanwhile waits for it to have run, as it would wait
    on an import's lock, rather than find names missing (a push's transfer threads
    may be the first to use `urllib.parse`)."""
    (tmp_path / "dvfs_slow_module.py").write_text(
        "import dvfs_gate\ndvfs_gate.running.set()\ndvfs_gate.go.wait()\nLATE = 'made'\n"
    )
    gate = types.ModuleType("dvfs_gate")
    gate.running, gate.go = threading.Event(), threading.Event()  # type: ignore[attr-defined]
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, "dvfs_gate", gate)
    monkeypatch.delitem(sys.modules, "dvfs_slow_module", raising=False)
    assert deferred.defer("dvfs_slow_module") is not None
    module = sys.modules["dvfs_slow_module"]
    got: dict[str, object] = {}
    first = threading.Thread(target=lambda: got.setdefault("first", module.LATE))
    first.start()
    gate.running.wait()  # the module's code runs on `first`, till `go`
    me = threading.get_ident()

    def release_once_waiting() -> None:  # `go` once this thread waits in the module's lookup
        while not gate.go.is_set():
            frame = sys._current_frames().get(me)
            if (
                frame is not None
                and frame.f_code.co_name == "load"
                and (frame.f_code.co_filename == deferred.__file__)
            ):
                break
            time.sleep(0.001)
        gate.go.set()

    releaser = threading.Thread(target=release_once_waiting)
    releaser.start()
    try:
        got["second"] = module.LATE
    except AttributeError as exc:
        got["second"] = exc
    finally:
        gate.go.set()
        first.join()
        releaser.join()
    assert got == {"first": "made", "second": "made"}


# Runs `dvfs ARGS` through click's commands (the root group), whatever the line is.
_VIA_CLICK = """
import importlib, sys
import vfs.cli
sys.argv = ["dvfs", *sys.argv[1:]]
vfs.cli.guarded(importlib.import_module("vfs.cli.root").run)
"""


def run_cli(
    root: Path, *args: str, click: bool, env: dict[str, str] | None = None
) -> tuple[int, str, str, set[str]]:
    """Exit code, stdout, stderr's lines but the import times, and the modules loaded
    of ``dvfs ARGS`` in ``root``, through click's commands if ``click``."""
    how = ["-c", _VIA_CLICK] if click else ["-m", "vfs.cli"]
    p = subprocess.run(
        [*CLI[:2], "-X", "importtime", *how, *args],
        cwd=root, env=cli_env(env), capture_output=True, text=True, encoding="utf-8",
        check=False,
    )  # fmt: skip
    lines = p.stderr.splitlines()
    err = "".join(f"{ln}\n" for ln in lines if not ln.startswith("import time:"))
    return p.returncode, p.stdout, err, {ln.rpartition("|")[2].strip() for ln in lines if "|" in ln}


def test_plain_add_and_commit_run_without_click_as_click_runs_them(tmp_path: Path) -> None:
    """Importing click and building the root group and the command was 44.5 M
    instructions of every `dvfs add` and `dvfs commit` (a tenth of each, in a
    repository of 20,000 files). Their plain lines run without it, with what click's
    commands print, in two repositories alike; any other line is still click's."""
    repos = [init_repo(tmp_path / name) for name in ("quick", "click")]
    for repo in repos:
        commit_files(repo, {"d/x": b"one\n"}, "one")
        (repo.root / "d/x").write_bytes(b"two\n")
        (repo.root / "d/new.txt").write_bytes(b"new\n")
        (repo.root / "d/keep.pyc").write_bytes(b"ignored\n")
    quick, slow = repos
    lines: list[tuple[str, ...]] = [
        ("add", "d/x", "--json", "-f", "d/keep.pyc"),
        ("add", "d"),
        ("commit", "-m", "two", "--json", "--message", "", "-m", "more"),
    ]
    for args in lines:
        code, out, err, got = run_cli(quick.root, *args, click=False)
        assert "vfs.cli.output" in got and "click" not in got, args
        if args[0] == "add":  # (again, looking at what it holds as it ends)
            got = loaded(quick.root, *args)
            assert "vfs.cli.staging" in got and not got & {"click", "vfs.cli.root"}, args
        want = run_cli(slow.root, *args, click=True)
        assert "click" in want[3]
        if args[0] == "commit":  # (the versions' ids differ: their times do)
            out, wanted = json.loads(out), json.loads(want[1])
            assert out.pop("id") != wanted.pop("id") and out == wanted
            assert (code, err) == want[0::2], (args, err)
        else:
            assert (code, out, err) == want[:3], args
    for repo in repos:
        assert repo.cat("HEAD:d/keep.pyc") == b"ignored\n"
        assert repo.json("log", "-n", "1", "--json")[0]["message"] == "two\n\nmore"
    # other lines, and mistakes, are click's: its checks, help and errors
    (quick.root / "d/x").write_bytes(b"three\n")
    mistakes: list[tuple[tuple[str, ...], str]] = [
        (("add", ""), "empty PATH argument"),
        (("add", "-x", "d"), "no such option '-x'"),
        (("add",), "missing argument 'PATHS...'"),
        (("commit", "-m"), "option '-m' requires an argument"),
        (("commit", "-m", "x", "extra"), "unexpected extra argument (extra)"),
    ]
    for args, said in mistakes:
        code, _, err, got = run_cli(quick.root, *args, click=False)
        assert code == 2 and "click" in got and said in err, (args, err)
    code, out, _, got = run_cli(quick.root, "add", "--help", click=False)
    assert code == 0 and "click" in got and "Stage files or directories" in out
    code, out, _, got = run_cli(quick.root, "commit", "-am", "three", click=False)
    assert code == 0 and "click" in got and out.endswith(" - three\n")
    assert quick.cat("HEAD:d/x") == b"three\n"
    # a message an ASCII-only output cannot take: click's echo writes it as UTF-8
    (quick.root / "d/x").write_bytes(b"four\n")
    assert run_cli(quick.root, "add", "d/x", click=False)[0] == 0
    code, out, _, got = run_cli(
        quick.root, "commit", "-m", "f\u00f6\u00fcr", click=False, env={"PYTHONIOENCODING": "ascii"}
    )
    assert code == 0 and "click" in got and out.endswith(" - f\u00f6\u00fcr\n"), out
    quick.fsck_clean()
    slow.fsck_clean()
