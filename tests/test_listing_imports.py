"""What a listing of branches, tags or remotes loads: only what it reads.

`dvfs branch`, `dvfs tag` and `dvfs remote list` read a few refs or settings, yet
loaded the code that changes them (checkout, mounts, the remote's transport:
subprocess, socket), 240 modules where `dvfs ls` loads 185, every time a prompt or a
script lists branches.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.cli import cli_env, commit_files, init_repo

HEAVY = ("vfs.ops.branches", "vfs.ops.checkout", "vfs.mount.mounts", "subprocess", "socket")
# and, for a listing, the pools of threads that read many refs or entries at once
POOLS = ("concurrent.futures", "logging")


# Runs `dvfs ARGS` as `main` does and writes, as it ends, the modules in sys.modules
# whose code ran: `-X importtime` never lists one imported through
# `importlib.import_module`, as the CLI imports its commands' modules. (A module
# put there unrun by `vfs._os.deferred.defer` is left out until something uses it.)
_DRIVER = """
import os, sys, vfs.cli
sys.argv = ["dvfs", *sys.argv[1:]]

def report():
    ran = [
        name for name, m in list(sys.modules.items())
        if getattr(getattr(m, "__dict__", {}).get("__getattr__"), "__module__", "")
        != "vfs._os.deferred"
    ]
    os.write(2, ("modules: " + " ".join(sorted(ran)) + "\\n").encode())

end = vfs.cli.exit_now
vfs.cli.exit_now = lambda code: (report(), end(code))
try:
    vfs.cli.main()
finally:
    report()
"""


def loaded(root: Path, *args: str) -> set[str]:
    """The modules a ``dvfs ARGS`` process in ``root`` imports (it must succeed): those
    ``-X importtime`` lists, and those in ``sys.modules`` as it ends."""
    done = subprocess.run(
        [sys.executable, "-P", "-X", "importtime", "-c", _DRIVER, *args],
        cwd=root, env=cli_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stderr.splitlines()
    got = {ln.rpartition("|")[2].strip() for ln in lines if "|" in ln}
    ended = [ln for ln in lines if ln.startswith("modules: ")]
    assert ended, done.stderr[-2000:]
    return got | set(ended[-1].split()[1:])


def test_listing_branches_tags_and_remotes_loads_nothing_that_changes_them(
    tmp_path: Path,
) -> None:
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    repo.ok("tag", "best")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    for args in (("branch",), ("branch", "-a"), ("tag",), ("remote", "list")):
        got = loaded(repo.root, *args)
        heavy = set(HEAVY + POOLS)
        assert "vfs.cli" in got and not got & heavy, (args, sorted(got & heavy))
    repo.fsck_clean()


def test_log_and_ls_load_no_pipeline_code(tmp_path: Path) -> None:
    """`dvfs log` and `dvfs ls` loaded the pipeline's records (runs, content, gitlink)
    for `dvfs show`'s description of a version's stages."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    pipeline = {"vfs.pipeline.record", "vfs.pipeline.content", "vfs.pipeline.runs"}
    for args in (("log",), ("ls", "d"), ("log", "--oneline")):
        got = loaded(repo.root, *args)
        assert "vfs.repo.history" in got and not got & pipeline, (args, sorted(got & pipeline))
    shown = repo.ok("show", "--json").json()  # (which describes the stages: none here)
    assert shown["message"] == "one" and shown["pipeline"] == []
    repo.fsck_clean()


def test_restore_and_checkout_load_no_mount_or_transport_code(tmp_path: Path) -> None:
    """`dvfs restore` and `dvfs checkout REV` loaded the branch switching code and with
    it the mounts' and the remotes' (subprocess, socket) for `checkout -b` alone."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    commit_files(repo, {"d/x": b"two\n"}, "two")
    (repo.root / "d/x").write_bytes(b"changed\n")
    unused = set(HEAVY) - {"vfs.ops.checkout"}
    for args in (("restore", "d/x"), ("checkout", "v1"), ("checkout", "main")):
        got = loaded(repo.root, *args)
        assert "vfs.ops.checkout" in got and not got & unused, (args, sorted(got & unused))
    assert (repo.root / "d/x").read_bytes() == b"two\n"
    repo.fsck_clean()
