"""A seeded harness that turns a repository's working tree hostile and runs dvfs in it.

:func:`build` makes a real repository with two commits (a tag ``first``, and a
pipeline stage in ``dvfs.yaml``). :func:`attack` copies it, and beside the copy an
``outside`` folder holding a canary (bytes that must never reach the store, the
output, or a version), then applies one mutation chosen by a seed
(:data:`MUTATIONS`): links out (to a file, a folder, ``/``), dangling links and
loops, a tracked folder or file replaced by a link out, FIFOs, sockets, unreadable
files and folders, names with newlines, escapes and undecodable bytes, long names,
5,000 folders deep, a file growing and shrinking while dvfs reads it, ``.dvfs`` or
``.dvfs/refs`` or ``.dvfs/objects`` replaced by links out, a hostile
``.dvfsignore`` or ``dvfs.yaml``. Then one command runs (:data:`OPERATIONS`:
``status``, ``add .``, ``add PATH``, ``commit -a``, ``rm``, ``mv``, ``restore``,
``checkout REV``, ``diff``, ``run``, ``repro``, ``gc``, ``fsck``) in a child under an
address-space limit and a timeout, without root's power to read any file (as a
user: ``drop_file_override``).

:func:`check` asserts what a user relies on: success, or a non-zero exit with one
error line (or a run of warnings and exit 1), no traceback, no "internal error"; no
control character unquoted in the output; nothing outside the repository written
(the ``outside`` folder's tree unchanged, nothing new beside the repository); the
canary's bytes nowhere in the store, in ``.dvfs`` or in the output; ``dvfs fsck``
clean; both commits made before still holding what they held; and ``dvfs status``
still answering.

The suite runs a few seeds (``tests/test_hostile_tree.py``); a long run is
``python -m tests.support.hostile_tree --seeds N``. Each failure prints its seed, the
mutation and the command, and ``--seed S --op OP --mutation M`` replays it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import resource
import shutil
import socket
import stat as statmod
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.cli import (
    ERROR_PREFIX,
    cli_command,
    cli_env,
    commit_files,
    drop_file_override,
    fsck_in_process,
    init_repo,
)
from tests.support.mount import home_env
from tests.support.seeded import Outcome, answer_faults, seeds_main
from vfs.repo.repository import Repository

MEMORY = 3 << 30  # bytes of address space a command may map (RLIMIT_AS)
TIMEOUT = float(os.environ.get("HOSTILE_TIMEOUT", "60"))  # seconds a command may take
DEEP = 5000  # folders of the deep mutation

FIRST: dict[str, bytes] = {
    "data/a.txt": b"alpha\n",
    "data/sub/b.bin": random.Random(1).randbytes(300_000),
    "data/sub/c.txt": b"gamma\n" * 100,
    "models/m.bin": b"model one\n",
    "notes.txt": b"notes\n",
}
SECOND: dict[str, bytes] = {
    "data/a.txt": b"alpha 2\n",
    "data/d/e.txt": b"e\n",
    "models/m.bin": b"model two\n",
}
STAGE_SCRIPT = "import os; open('count.txt', 'w').write(str(len(os.listdir('data'))))"


def pipeline_yaml(deps: list[str], outs: list[str]) -> str:
    """``dvfs.yaml`` with one stage, ``count``, of these deps and outs."""
    return (
        "stages:\n  count:\n"
        f"    cmd: [{json.dumps(sys.executable)}, -c, {json.dumps(STAGE_SCRIPT)}]\n"
        f"    deps: {json.dumps(deps)}\n    outs: {json.dumps(outs)}\n"
    )


# --------------------------------------------------------------------------- the base


@dataclass
class Base:
    """A repository with two commits (``first``, then ``main``), never changed."""

    root: Path
    repo: Path
    versions: dict[str, dict[str, bytes]]  # version id -> what its files hold


def build(root: Path) -> Base:
    """Commit ``FIRST`` (tagged ``first``) then ``SECOND`` with ``dvfs.yaml``, in this
    process (the commands' own code: see ``tests.support.cli``)."""
    repo = init_repo(root / "base" / "repo")
    v1 = commit_files(repo, FIRST, "first")
    r = Repository(repo.root)
    try:
        from vfs.ops import branches

        branches.create_tag(r, "first", None)
    finally:
        r.close()
    second = {**SECOND, "dvfs.yaml": pipeline_yaml(["data"], ["count.txt"]).encode()}
    v2 = commit_files(repo, second, "second")
    return Base(root, repo.root, {v1: dict(FIRST), v2: {**FIRST, **second}})


# --------------------------------------------------------------------------- mutations


@dataclass
class Attacked:
    """What a mutation did: a description, the repository paths it made or changed
    (for ``add PATH``, ``rm``, ``mv``, ``restore``), and how to undo what would
    otherwise keep the harness's own checks from reading the repository."""

    what: str
    paths: list[bytes] = field(default_factory=list)
    undo: Callable[[], None] | None = None
    writer: subprocess.Popen[bytes] | None = None


@dataclass
class Scene:
    rng: random.Random
    repo: Path
    outside: Path
    base: Base
    canary: bytes

    def rel(self, p: bytes) -> bytes:
        return p

    def at(self, rel: bytes) -> bytes:
        return os.fsencode(self.repo) + b"/" + rel

    def tracked_file(self) -> bytes:
        return self.rng.choice([b"data/a.txt", b"data/sub/c.txt", b"models/m.bin", b"notes.txt"])

    def tracked_dir(self) -> bytes:
        return self.rng.choice([b"data", b"data/sub", b"models", b"data/d"])

    def spot(self) -> bytes:
        """Where to put something new: the root or a tracked folder."""
        return self.rng.choice([b"", b"data/", b"data/sub/", b"models/"])


def _remove(path: bytes) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        subprocess.run(["rm", "-rf", "--", path], check=True)
    elif os.path.lexists(path):
        os.unlink(path)


def links_out(s: Scene) -> Attacked:
    how = s.rng.randrange(8)
    secret = os.fsencode(s.outside / "secret.txt")
    folder = os.fsencode(s.outside / "dir")
    if how == 0:
        p = s.spot() + b"out-file"
        os.symlink(secret, s.at(p))
        return Attacked("a new link to a file outside", [p])
    if how == 1:
        p = s.spot() + b"out-dir"
        os.symlink(folder, s.at(p))
        return Attacked("a new link to a folder outside", [p])
    if how == 2:
        p = s.spot() + b"root"
        os.symlink(b"/", s.at(p))
        return Attacked("a new link to /", [p])
    if how == 3:
        p = s.spot() + b"dangling"
        os.symlink(b"/nonexistent/x", s.at(p))
        return Attacked("a dangling link", [p])
    if how == 4:
        a, b = s.spot() + b"loop-a", s.spot() + b"loop-b"
        if a.rsplit(b"/", 1)[0] == b.rsplit(b"/", 1)[0]:
            b += b"2"
        os.symlink(os.path.relpath(s.at(b), os.path.dirname(s.at(a))), s.at(a))
        os.symlink(os.path.relpath(s.at(a), os.path.dirname(s.at(b))), s.at(b))
        own = s.spot() + b"self"
        os.symlink(b"self", s.at(own))
        return Attacked("links in a loop, and one to itself", [a, b, own])
    if how == 5:
        p = s.tracked_dir()
        _remove(s.at(p))
        os.symlink(folder, s.at(p))
        return Attacked(f"tracked folder {p!r} replaced by a link to a folder outside", [p])
    if how == 6:
        p = s.tracked_file()
        _remove(s.at(p))
        os.symlink(secret, s.at(p))
        return Attacked(f"tracked file {p!r} replaced by a link to a file outside", [p])
    p = s.spot() + b"up"
    os.symlink(b"../" * 12 + os.fsencode(s.outside).lstrip(b"/"), s.at(p))
    return Attacked("a relative link climbing out", [p])


def specials(s: Scene) -> Attacked:
    how = s.rng.randrange(4)
    tracked = s.rng.random() < 0.5
    p = s.tracked_file() if tracked else s.spot() + b"special"
    if tracked:
        _remove(s.at(p))
    if how in (0, 1):
        os.mkfifo(s.at(p))
        kind = "a FIFO"
    elif how == 2:
        with contextlib.chdir(os.path.dirname(s.at(p))):
            sock = socket.socket(socket.AF_UNIX)
            sock.bind(os.path.basename(s.at(p)))
            sock.close()
        kind = "a socket"
    else:  # no device can be made in a test's folder: a FIFO where a folder was
        p = s.tracked_dir()
        _remove(s.at(p))
        os.mkfifo(s.at(p))
        return Attacked(f"tracked folder {p!r} replaced by a FIFO", [p])
    where = "tracked file" if tracked else "new path"
    return Attacked(f"{kind} at {where} {p!r}", [p])


def unreadable(s: Scene) -> Attacked:
    """Mode 000 (the commands run without root's override: see the module doc)."""
    how = s.rng.randrange(4)
    if how == 0:
        p = s.tracked_file()
    elif how == 1:
        p = s.tracked_dir()
    elif how == 2:
        p = s.spot() + b"secret-new"
        with open(s.at(p), "wb") as f:
            f.write(b"unreadable\n")
    else:
        p = s.spot() + b"closed"
        os.mkdir(s.at(p))
        with open(s.at(p) + b"/inside", "wb") as f:
            f.write(b"x")
    os.chmod(s.at(p), 0)

    def undo() -> None:
        with contextlib.suppress(OSError):
            os.chmod(s.at(p), 0o755)

    return Attacked(f"{p!r} of mode 000", [p], undo)


ODD_NAMES = [
    b"new\nline",
    b"esc\x1b[31mred\x1b[0m",
    b"bell\x07",
    b"cr\rreturn",
    b"\xff\xfe-undecodable",
    b"tab\there",
    b"x" * 255,
    b"-rf",
    b"--help",
    b"\xe2\x80\xaeevil.txt",  # right-to-left override
    b" leading space",
    b"back\\slash",
    b"del\x7f",
]


def odd_names(s: Scene) -> Attacked:
    names = s.rng.sample(ODD_NAMES, 3)
    made = []
    for name in names:
        spot = s.spot()
        if s.rng.random() < 0.3:  # a folder of that name, with a file inside
            os.mkdir(s.at(spot + name))
            with open(s.at(spot + name + b"/f"), "wb") as f:
                f.write(b"inside\n")
        else:
            with open(s.at(spot + name), "wb") as f:
                f.write(b"odd " + name + b"\n")
        made.append(spot + name)
    if s.rng.random() < 0.3:  # a tracked file renamed to an odd name
        old = s.tracked_file()
        new = old.rpartition(b"/")[0] + (b"/" if b"/" in old else b"") + names[0][:200] + b"-m"
        os.rename(s.at(old), s.at(new))
        made.append(new)
    # (a name longer than 255 bytes cannot be made: the kernel refuses it)
    return Attacked(f"names {names!r}", made)


def deep(s: Scene) -> Attacked:
    """``DEEP`` folders, made relative to descriptors (longer than PATH_MAX)."""
    top = s.spot() + b"deep"
    os.mkdir(s.at(top))
    fd = os.open(s.at(top), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(DEEP):
            os.mkdir(b"d", dir_fd=fd)
            nfd = os.open(b"d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nfd
        leaf = os.open(b"leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"leaf\n")
        os.close(leaf)
    finally:
        os.close(fd)
    if s.rng.random() < 0.5:  # and a link loop at the bottom
        pass
    return Attacked(f"{DEEP} folders deep under {top!r}", [top])


_WRITER = """
import os, sys, random
path, mode = os.fsencode(sys.argv[1]), sys.argv[2]
*dirs, leaf = path.split(b"/")
rng = random.Random(0)
block = b"g" * 65536
while True:
    d = os.open(b"/", os.O_RDONLY | os.O_DIRECTORY)
    try:  # never through a link another mutation left (it would write outside)
        for name in dirs[1:]:
            n = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=d)
            os.close(d)
            d = n
        fd = os.open(leaf, os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=d)
    except OSError:
        continue
    finally:
        os.close(d)
    with open(fd, "r+b") as f:
        if not os.path.stat.S_ISREG(os.fstat(fd).st_mode):
            continue
        if mode == "grow":
            f.seek(0, 2)
            f.write(block)
            if f.tell() > 64 << 20:
                f.truncate(0)
        else:
            f.truncate(rng.randrange(0, 400_000))
            f.seek(0, 2)
            f.write(block[: rng.randrange(65536)])
"""


def changing(s: Scene) -> Attacked:
    """A tracked file growing, or shrinking and growing, while the command reads it."""
    p = s.rng.choice([b"data/sub/b.bin", b"data/a.txt", b"models/m.bin"])
    mode = s.rng.choice(["grow", "churn"])
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, os.fsdecode(s.at(p)), mode],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return Attacked(f"{p!r} changing ({mode}) while read", [p], writer=writer)


def dvfs_links(s: Scene) -> Attacked:
    """``.dvfs``, or a folder of it, moved outside and a link left in its place.

    dvfs's own directory is the repository, wherever it is kept: what is written
    there through the link is the repository's (``DVFS_OWN``), not outside; after the
    command it is moved back, for the checks."""
    part = s.rng.choice([b".dvfs", b".dvfs/refs", b".dvfs/objects", b".dvfs/refs/heads"])
    there = os.fsencode(s.outside) + b"/" + DVFS_OWN + part.replace(b"/", b"_")
    shutil.copytree(os.fsdecode(s.at(part)), os.fsdecode(there), symlinks=True)
    _remove(s.at(part))
    os.symlink(there, s.at(part))

    def undo() -> None:
        os.unlink(s.at(part))
        shutil.copytree(os.fsdecode(there), os.fsdecode(s.at(part)), symlinks=True)

    return Attacked(f"{part!r} is a link to a copy outside", [part], undo)


DVFS_OWN = b"own-"  # a name of outside/ that a link of .dvfs leads to


def hostile_ignore(s: Scene) -> Attacked:
    how = s.rng.randrange(6)
    if how == 0:
        text = "".join(f"pattern{i}/**/x*y*z{i}\n" for i in range(200_000))
        what = "200,000 rules"
    elif how == 1:
        text = "*" * 50_000 + "a\n" + ("**/" * 3000) + "b\n" + "a*" * 5000 + "!\n"
        what = "rules of 50,000 stars and 3,000 **/"
    elif how == 2:
        text = "[\n[]\n[!\n\\\n!\n!!x\n/\n//\n**\n***\n[z-a]\n\x00\n\xff\n" + "a" * 100_000 + "\n"
        what = "broken rules"
    elif how == 3:
        text = "\n".join(f"{'*?' * 200}[a-{chr(97 + i % 26)}]{'*' * 30}" for i in range(2000))
        what = "2,000 backtracking rules"
    elif how == 4:
        with open(s.at(b".dvfsignore"), "wb") as f:
            f.truncate(200 << 20)
        return Attacked(".dvfsignore of 200 MiB of zero bytes", [b".dvfsignore"])
    else:
        os.symlink(os.fsencode(s.outside / "secret.txt"), s.at(b".dvfsignore"))
        return Attacked(".dvfsignore links to a file outside", [b".dvfsignore"])
    target = s.rng.choice([b".dvfsignore", b"data/.dvfsignore"])
    with open(s.at(target), "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(text)
    return Attacked(f"{target!r} of {what}", [target])


def hostile_yaml(s: Scene) -> Attacked:
    how = s.rng.randrange(14)
    out = os.fspath(s.outside)
    path = b"dvfs.yaml"
    if how >= 9:
        return _hostile_pipeline_file(s, how - 9)
    if how == 0:
        text = pipeline_yaml(["../outside/secret.txt"], ["count.txt"])
        what = "a dep ../outside/secret.txt"
    elif how == 1:
        text = pipeline_yaml(["data"], [f"{out}/dir"])
        what = "an absolute out outside"
    elif how == 2:
        text = pipeline_yaml([f"{out}/secret.txt"], ["../../out.txt"])
        what = "an absolute dep and an out above the root"
    elif how == 3:
        os.symlink(os.fsencode(s.outside / "dir"), s.at(b"linkout"))
        text = pipeline_yaml(["data"], ["linkout"])
        what = "an out that is a link to a folder outside"
    elif how == 4:
        os.symlink(os.fsencode(s.outside / "secret.txt"), s.at(b"linkdep"))
        text = pipeline_yaml(["linkdep"], ["linkdep2"])
        what = "a dep that is a link to a file outside"
    elif how == 5:
        text = pipeline_yaml([".dvfs", "."], [".dvfs/objects", ".."])
        what = "deps and outs .dvfs, ., .."
    elif how == 6:  # many anchors: a billion laughs
        lol = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
        for i in range(1, 10):
            prev = chr(96 + i)
            lol.append(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + prev] * 9)}]")
        text = "\n".join(lol) + "\nstages: {}\n"
        what = "a billion laughs"
    elif how == 7:
        os.unlink(s.at(path))
        os.symlink(os.fsencode(s.outside / "pipeline.yaml"), s.at(path))
        text = ""
        what = "dvfs.yaml is a link to a pipeline outside"
    else:
        text = pipeline_yaml(["data/sub/../../../outside"], ["data/../../escape"])
        what = "deps and outs climbing out through .."
    if text:
        with open(s.at(path), "w") as f:
            f.write(text)
    return Attacked(f"dvfs.yaml: {what}", [path])


def _hostile_pipeline_file(s: Scene, how: int) -> Attacked:
    """``dvfs.yaml`` nested 50,000 deep or of 200 MiB; a stage's ``params.yaml``
    nested 30,000 deep or a link to a file outside; ``dvfs.runs`` (the record of the
    last runs, read by ``repro``) a FIFO, a link out, or garbage."""
    if how == 0:
        with open(s.at(b"dvfs.yaml"), "w") as f:
            f.write("stages: " + "[" * 50_000 + "]" * 50_000 + "\n")
        return Attacked("dvfs.yaml nested 50,000 deep", [b"dvfs.yaml"])
    if how == 1:
        with open(s.at(b"dvfs.yaml"), "r+b") as f:
            f.truncate(200 << 20)
        return Attacked("dvfs.yaml of 200 MiB", [b"dvfs.yaml"])
    if how in (2, 3):
        text = pipeline_yaml(["data"], ["count.txt"]).replace(
            "    outs:", "    params: [train.lr]\n    outs:"
        )
        with open(s.at(b"dvfs.yaml"), "w") as f:
            f.write(text)
        if how == 2:
            with open(s.at(b"params.yaml"), "w") as f:
                f.write("train:\n  lr: " + "[" * 30_000 + "]" * 30_000 + "\n")
            return Attacked("params.yaml nested 30,000 deep", [b"params.yaml"])
        with open(s.outside / "params.yaml", "wb") as f:
            f.write(b"train:\n  lr: " + s.canary + b"\n")
        os.symlink(os.fsencode(s.outside / "params.yaml"), s.at(b"params.yaml"))
        return Attacked("params.yaml a link to a file outside", [b"params.yaml"])
    kind = s.rng.choice(["fifo", "link", "junk", "huge"])
    runs = s.at(b"dvfs.runs")
    if os.path.lexists(runs):
        os.unlink(runs)
    if kind == "fifo":
        os.mkfifo(runs)
    elif kind == "link":
        os.symlink(os.fsencode(s.outside / "secret.txt"), runs)
    elif kind == "junk":
        with open(runs, "wb") as f:
            f.write(s.rng.randbytes(5000))
    else:
        with open(runs, "wb") as f:
            f.truncate(300 << 20)
    return Attacked(f"dvfs.runs: {kind}", [b"dvfs.runs"])


MUTATIONS: dict[str, Callable[[Scene], Attacked]] = {
    "links": links_out,
    "special": specials,
    "unreadable": unreadable,
    "names": odd_names,
    "deep": deep,
    "changing": changing,
    "dvfs": dvfs_links,
    "ignore": hostile_ignore,
    "yaml": hostile_yaml,
}


# --------------------------------------------------------------------------- operations


def run(cwd: Path, home: Path, *args: str | bytes) -> subprocess.CompletedProcess[bytes]:
    """``dvfs ARGS`` in ``cwd`` under the limits, as a user (no file-read override)."""
    argv = [*cli_command(), *(os.fsdecode(a) for a in args)]
    return subprocess.run(
        argv,
        cwd=cwd,
        env=cli_env(home_env(home)),
        capture_output=True,
        stdin=subprocess.DEVNULL,
        timeout=TIMEOUT,
        preexec_fn=_limit,
        check=False,
    )


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))
    drop_file_override()


Op = Callable[[Path, Path, random.Random, Attacked], subprocess.CompletedProcess[bytes]]


TRACKED = sorted({*FIRST, *SECOND, "dvfs.yaml"})


def _target(rng: random.Random, a: Attacked) -> bytes:
    """A path the mutation made or changed, or a tracked file below one."""
    below = [t.encode() for t in TRACKED for p in a.paths if t.encode().startswith(p + b"/")]
    choices = a.paths + below
    return rng.choice(choices) if choices else b"data"


def op_status(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "status", *rng.choice([[], ["--json"]]))


def op_add_all(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "add", ".")


def op_add_path(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "add", _target(rng, a))


def op_commit_a(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "commit", "-a", "-m", "hostile")


def op_rm(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "rm", *rng.choice([[], ["--cached"], ["-f"]]), _target(rng, a))


def op_mv(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    if rng.random() < 0.3 and a.paths:  # into what the mutation made
        return run(repo, home, "mv", rng.choice(TRACKED), _target(rng, a))
    return run(repo, home, "mv", _target(rng, a), rng.choice(["moved", "models"]))


def op_restore(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    how = rng.choice([[], ["--staged"], ["--source", "first"], ["--source", "first", "--staged"]])
    return run(repo, home, "restore", *how, _target(rng, a))


def op_checkout(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    paths = [_target(rng, a)] if rng.random() < 0.4 else []  # (a checkout of paths)
    return run(repo, home, "checkout", *rng.choice([[], ["-f"]]), "first", *paths)


def op_diff(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "diff", *rng.choice([[], ["first"], ["--json"]]))


def op_run(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    dep = os.fsdecode(_target(rng, a)) if rng.random() < 0.5 else "data"
    out = os.fsdecode(_target(rng, a)) if rng.random() < 0.3 else "out.txt"
    script = f"import os; open({out!r}, 'w').write('x')"  # (may fail: a folder, a link)
    return run(repo, home, "run", "-f", "-n", "probe", "-d", dep, "-o", out,
               "--", sys.executable, "-c", script)  # fmt: skip


def op_repro(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "repro")


def op_gc(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    return run(repo, home, "gc")


def op_fsck(repo: Path, home: Path, rng: random.Random, a: Attacked) -> Result:
    """``dvfs fsck``: exit 1 with its verdict (no error line) when it finds a problem,
    which is what it is for: counted as success here."""
    r = run(repo, home, "fsck")
    if r.returncode == 1 and ERROR_PREFIX.encode() not in r.stderr and b"problem" in r.stdout:
        return subprocess.CompletedProcess(r.args, 0, r.stdout, r.stderr)
    return r


Result = subprocess.CompletedProcess[bytes]

OPERATIONS: dict[str, Op] = {
    "status": op_status,
    "add-all": op_add_all,
    "add-path": op_add_path,
    "commit-a": op_commit_a,
    "rm": op_rm,
    "mv": op_mv,
    "restore": op_restore,
    "checkout": op_checkout,
    "diff": op_diff,
    "run": op_run,
    "repro": op_repro,
    "gc": op_gc,
    "fsck": op_fsck,
}


# --------------------------------------------------------------------------- one attack


def plant_outside(outside: Path, canary: bytes) -> None:
    """The folder beside the repository that nothing may touch, holding the canary."""
    (outside / "dir" / "inner").mkdir(parents=True)
    (outside / "secret.txt").write_bytes(canary + b" file\n")
    (outside / "dir" / "x.txt").write_bytes(canary + b" dir\n")
    (outside / "dir" / "inner" / "y.bin").write_bytes(canary * 100)
    (outside / "pipeline.yaml").write_text(pipeline_yaml(["data"], ["count.txt"]))


def _walk(
    top: Path, contents: bool, prune: frozenset[bytes] = frozenset()
) -> Iterator[tuple[bytes, os.stat_result, bytes]]:
    """Every path below ``top``, links not followed, at any depth (from directory
    descriptors: a path 5,000 folders deep is longer than the kernel takes whole):
    its path, lstat, and (``contents``) a regular file's bytes or a link's target;
    nothing below the folders ``prune``."""
    todo: list[tuple[bytes, int | None]] = [(os.fsencode(top), None)]
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
    while todo:
        path, parent = todo.pop()
        try:
            fd = os.open(path if parent is None else path.rpartition(b"/")[2], flags,
                         dir_fd=parent)  # fmt: skip
        except OSError:
            continue
        finally:
            if parent is not None:
                os.close(parent)
        with os.scandir(fd) as it:
            names = [os.fsencode(e.name) for e in it]
        subdirs = []
        for name in names:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            body = b""
            if contents and statmod.S_ISLNK(st.st_mode):
                body = os.readlink(name, dir_fd=fd)
            elif contents and statmod.S_ISREG(st.st_mode):
                f = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
                with open(f, "rb") as file:
                    body = file.read()
            if statmod.S_ISDIR(st.st_mode) and path + b"/" + name not in prune:
                subdirs.append(path + b"/" + name)
            yield path + b"/" + name, st, body
        for sub in subdirs:
            todo.append((sub, os.dup(fd)))
        os.close(fd)


def tree_state(
    top: Path, contents: bool = True, prune: frozenset[bytes] = frozenset()
) -> dict[bytes, tuple[int, int, bytes]]:
    """Every path below ``top`` (links not followed, nothing below ``prune``): mode,
    mtime, content's hash or target."""
    out = {}
    for path, st, body in _walk(top, contents, prune):
        if statmod.S_ISREG(st.st_mode):
            body = hashlib.blake2b(body).digest()
        out[path] = (st.st_mode, st.st_mtime_ns, body)
    return out


def attack(base: Base, seed: int, op: str | None = None, mutation: str | None = None) -> Outcome:
    """Copy the repository, mutate its working tree as ``seed`` says, run one command;
    what went wrong (``Outcome.faults`` empty: nothing)."""
    rng = random.Random(seed)
    drawn = rng.choice(sorted(MUTATIONS)), rng.choice(sorted(OPERATIONS))  # (drawn
    mutation, op = mutation or drawn[0], op or drawn[1]  # anyway: a replay is the same)
    work = Path(tempfile.mkdtemp(prefix=f"tree-{seed}-", dir=base.root))
    canary = b"CANARY-" + rng.randbytes(12).hex().encode()
    a = Attacked("(not made)")
    try:
        repo = work / "repo"
        shutil.copytree(base.repo, repo, symlinks=True)
        outside = work / "outside"
        plant_outside(outside, canary)
        (work / "home").mkdir()
        scene = Scene(rng, repo, outside, base, canary)
        a = MUTATIONS[mutation](scene)
        if rng.random() < 0.4:  # and a second one
            other = rng.choice(sorted(MUTATIONS))
            try:
                b = MUTATIONS[other](scene)
            except OSError as exc:  # the first one took its place
                b = Attacked(f"({other}: {exc.strerror})")
            a = _both(a, b)
        before_outside = tree_state(outside)
        before = set(tree_state(work, False, _own(work)))
        try:
            r = OPERATIONS[op](repo, work / "home", rng, a)
        except subprocess.TimeoutExpired as exc:
            err = (exc.stderr or b"").decode(errors="replace")
            return Outcome(seed, mutation, a.what, op, -1, err, [f"timed out after {TIMEOUT}s"])
        finally:
            _stop(a)
        err = r.stderr.decode(errors="replace")
        faults = check(r, work, repo, base, canary, before, before_outside, a)
        return Outcome(seed, mutation, a.what, op, r.returncode, err, faults)
    finally:
        _stop(a)
        if "mode 000" in a.what:
            subprocess.run(["chmod", "-R", "u+rwx", "--", work], capture_output=True, check=False)
        subprocess.run(["rm", "-rf", "--", work], capture_output=True, check=False)


def _both(a: Attacked, b: Attacked) -> Attacked:
    def undo() -> None:
        for one in (b, a):
            if one.undo is not None:
                with contextlib.suppress(OSError):
                    one.undo()

    writer = a.writer or b.writer
    if a.writer is not None and b.writer is not None:
        _stop(b)
    return Attacked(f"{a.what}; and {b.what}", a.paths + b.paths, undo, writer)


def _stop(a: Attacked) -> None:
    if a.writer is not None and a.writer.poll() is None:
        a.writer.kill()
        a.writer.wait()


_CONTROL = re.compile(rb"[\x00-\x08\x0b-\x1f\x7f]")


def check(
    r: Result,
    work: Path,
    repo: Path,
    base: Base,
    canary: bytes,
    before: set[bytes],
    before_outside: dict[bytes, tuple[int, int, bytes]],
    a: Attacked,
) -> list[str]:
    """What went wrong in ``r`` (one line each): see the module docstring."""
    faults = []
    err = r.stderr.decode(errors="replace")
    faults.extend(answer_faults(r.returncode, err, warned_exit=True))
    for name, stream in (("stdout", r.stdout), ("stderr", r.stderr)):
        if m := _CONTROL.search(stream):
            faults.append(f"a control character {m.group()!r} unquoted on {name}")
        if canary in stream:
            faults.append(f"the canary on {name}")
    if _outside(work) != _outside(work, before_outside):
        after = _outside(work)
        changed = sorted(set(after) ^ set(before_outside)) or [
            p for p in after if after[p] != before_outside.get(p)
        ]
        faults.append(f"outside changed: {changed[:4]}")
    written = set(tree_state(work, False, _own(work))) - before
    written = {p for p in written if not _below(p, repo, work / "home", work / "outside")}
    if written:
        faults.append(f"written beside the repository: {sorted(written)[:4]}")
    if a.undo is not None:
        a.undo()
    if canary_in(repo / ".dvfs", canary):
        faults.append("the canary in a file of .dvfs")
    faults.extend(_repository_faults(repo, base, canary))
    st = run(repo, work / "home", "status", "--json")
    for f in answer_faults(st.returncode, st.stderr.decode(errors="replace"), warned_exit=True):
        faults.append(f"status after: {f}")
    if st.returncode in (0, 1):
        faults.extend(f"status after: {f}" for f in untruthful(repo, json.loads(st.stdout)))
    if any(_CONTROL.search(p) for p in a.paths):  # and as people read it, after the command
        for args in (["status"], ["diff"], ["diff", "--name-only"], ["show", "--files"]):
            shown = run(repo, work / "home", *args)
            if m := _CONTROL.search(shown.stdout + shown.stderr):
                faults.append(f"{' '.join(args)} after: a control character {m.group()!r}")
    return faults


def untruthful(repo: Path, status: dict[str, Any]) -> list[str]:
    """Where ``dvfs status --json`` says other than the working tree holds: a tracked
    path that differs from what is staged not listed as modified, deleted or
    unreadable, or one listed so that holds what is staged."""
    from vfs.model.codec import Kind
    from vfs.model.ids import hash_bytes
    from vfs.repo.stage import same_mode

    r = Repository(repo)
    try:
        entries = dict(r.index().entries)
    finally:
        r.close()
    listed = {os.fsencode(p) for k in ("modified", "deleted") for p in status[k]}
    unreadable = {os.fsencode(p) for p in status["unreadable"]}
    faults = []
    for path, staged in sorted(entries.items()):
        if not staged.checked_out or path in unreadable:
            continue
        st, body = _no_follow(repo, path)
        if st is None:
            same = False
        elif statmod.S_ISLNK(st.st_mode):
            same = staged.kind == Kind.SYMLINK and body == staged.target
        elif statmod.S_ISREG(st.st_mode):
            same = (
                staged.kind == Kind.FILE
                and hash_bytes(body) == staged.digest
                and same_mode(st.st_mode & 0o777, staged.mode)
            )
        else:
            same = False
        if same and path in listed:
            faults.append(f"{path!r} listed as changed, and holds what is staged")
        elif not same and path not in listed:
            faults.append(f"{path!r} changed, and not listed")
    return faults[:5]


def _no_follow(repo: Path, path: bytes) -> tuple[os.stat_result | None, bytes]:
    """lstat of ``path`` resolved without following a link, and its content or target."""
    parts = path.split(b"/")
    fd = os.open(repo, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in parts[:-1]:
            try:
                nfd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            except OSError:
                return None, b""
            os.close(fd)
            fd = nfd
        try:
            st = os.stat(parts[-1], dir_fd=fd, follow_symlinks=False)
        except OSError:
            return None, b""
        if statmod.S_ISLNK(st.st_mode):
            return st, os.readlink(parts[-1], dir_fd=fd)
        if statmod.S_ISREG(st.st_mode):
            f = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW, dir_fd=fd)
            with open(f, "rb") as file:
                return st, file.read()
        return st, b""
    finally:
        os.close(fd)


def _outside(
    work: Path, state: dict[bytes, tuple[int, int, bytes]] | None = None
) -> dict[bytes, tuple[int, int, bytes]]:
    """What is outside, but what ``.dvfs`` links to (see :func:`dvfs_links`)."""
    own = os.fsencode(work / "outside") + b"/" + DVFS_OWN
    state = tree_state(work / "outside") if state is None else state
    return {p: v for p, v in state.items() if not p.startswith(own)}


def _own(work: Path) -> frozenset[bytes]:
    """The folders of ``work`` a command may write in (the repository, its home)."""
    return frozenset(os.fsencode(work / name) for name in ("repo", "home"))


def _below(p: bytes, *roots: Path) -> bool:
    for root in roots:
        r = os.fsencode(root)
        if p == r or p.startswith(r + b"/"):
            return True
    return False


def canary_in(top: Path, canary: bytes) -> bool:
    """Whether ``canary`` is in any regular file below ``top`` (raw: uncompressed)."""
    return any(canary in body for _, _, body in _walk(top, True))


def _repository_faults(repo: Path, base: Base, canary: bytes) -> list[str]:
    """fsck, the canary in the store, and the two commits' content (in this process)."""
    faults = []
    report = fsck_in_process(repo)
    if report["problems"]:
        faults.append(f"fsck: {report['problems'][:3]}")
    r = Repository(repo)
    try:
        for oid in r.store.iter_ids():
            if canary in bytes(r.store.get(oid)):
                faults.append(f"the canary in stored object {oid.hex()[:12]}")
                break
        tips = list(r.refs.branches().values())
        for vid in base.versions:
            oid = bytes.fromhex(vid)
            if not any(t == oid or r.history.is_ancestor(oid, t) for t in tips):
                faults.append(f"version {vid[:12]} is no longer on any branch")
    finally:
        r.close()
    faults.extend(_lost(repo, base))
    return faults


def _lost(repo: Path, base: Base) -> list[str]:
    """What the two commits held and no longer give back."""
    import vfs

    faults = []
    api = vfs.Repo(repo)
    try:
        for vid, files in base.versions.items():
            for path, data in files.items():
                try:
                    got = api.read_bytes(path, vid)
                except Exception as exc:  # (any failure is the finding)
                    faults.append(f"{vid[:12]}:{path} unreadable: {exc!r}")
                    continue
                if got != data:
                    faults.append(f"{vid[:12]}:{path} holds other bytes")
    finally:
        api.close()
    return faults


def main(argv: list[str] | None = None) -> int:
    return seeds_main(__doc__, "hostile-tree-", OPERATIONS, MUTATIONS, build, attack, argv)


if __name__ == "__main__":
    sys.exit(main())
