"""A small repository for the dashboard's tests, and a real ``dvfs ui`` serving it.

The repository has three versions: v1 (tag ``base``: a CSV, a text file, a small
and a 6 MiB binary file, a PNG, a link), v2 (rows of the CSV changed and added, a
text file grown, the PNG larger, a pipeline of two stages run by ``dvfs run``) and
v3 (the same pipeline with a parameter, making a metrics file). Shared by
``test_ui.py`` and ``test_ui_browser.py``.
"""

from __future__ import annotations

import atexit
import json
import os
import random
import re
import shutil
import struct
import subprocess
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vfs
from tests.support import forks
from tests.support.cli import assert_ok, cli_command, cli_env, drop_file_override, run
from tests.support.scratch import scratch_dir
from vfs.repo.repository import Repository


def png(width: int, height: int) -> bytes:
    """A red PNG image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    rows = b"".join(b"\0" + b"\xff\0\0" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


def table(rows: int) -> list[str]:
    return ["id,city,score"] + [f"{i},{('oslo', 'rome')[i % 2]},{i / 100:.2f}" for i in range(rows)]


PREP = "import sys; open(sys.argv[2], 'w').write(open(sys.argv[1]).read().upper())\n"
TRAIN = (
    "import json\n"
    "lr = float(open('params.yaml').read().split('lr:')[1])\n"
    "n = len(open('data/prep.txt').read())\n"
    "json.dump({'acc': round(n * lr, 4), 'loss': round(1 / n, 4)}, open('metrics.json', 'w'))\n"
)


def write(root: Path, files: dict[str, bytes | str]) -> None:
    for rel, data in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)


# The repository is built once per test process (three commits, three pipeline commands
# and 6 MiB to chunk) and copied for each test that asks, as a user may copy one with
# `cp -a`: the copy holds the same versions, refs and pipeline records.
_BUILT = scratch_dir("ui")
atexit.register(shutil.rmtree, _BUILT, True)


def make_repo(root: Path) -> Path:
    """The repository described in the module doc, at ``root`` (a copy of the one this
    process built first)."""
    built = _BUILT / "repo"
    if not built.exists():
        build_repo(built)
    shutil.copytree(built, root, symlinks=True)
    return root


def build_repo(root: Path) -> Path:
    """Make the repository described in the module doc at ``root``."""
    Repository.init(root)
    repo = vfs.Repo(root)
    write(root, {
        "data/train.csv": "\n".join(table(300)) + "\n",
        "data/notes.txt": "hello\nworld\n",
        "data/blob.bin": bytes(range(256)) * 8,
        "data/huge.bin": random.Random(7).randbytes(6 << 20),  # many chunks
        "img/red.png": png(20, 10),
    })  # fmt: skip
    os.symlink("train.csv", root / "data" / "link.csv")
    repo.add(["data", "img"])
    repo.commit("first data", params={"lr": 0.1}, tag="base")
    rows = table(300)
    rows[5] = "4,paris,0.50"
    rows.append("300,lima,0.90")
    write(root, {
        "data/train.csv": "\n".join(rows) + "\n", "data/notes.txt": "hello\nworld\nmore\n",
        "prep.py": PREP, "train.py": TRAIN, "params.yaml": "train:\n  lr: 0.5\n",
        "img/red.png": png(24, 12),
    })  # fmt: skip
    stages = [
        ("prep", "-d", "prep.py", "-d", "data/notes.txt", "-o", "data/prep.txt", "--",
         "python3", "prep.py", "data/notes.txt", "data/prep.txt"),
        ("train", "-d", "train.py", "-d", "data/prep.txt", "-p", "train.lr", "-m",
         "metrics.json", "--", "python3", "train.py"),
    ]  # fmt: skip
    for name, *args in stages:
        assert_ok(run(root, "run", "-n", name, *args))
    repo.add(["."])
    repo.commit("edited rows, a pipeline", params={"lr": 0.2})
    write(root, {"params.yaml": "train:\n  lr: 0.25\n"})
    assert_ok(run(root, "repro"))
    repo.add(["."])
    repo.commit("a smaller rate")
    repo.close()
    return root


@dataclass
class Server:
    """A running ``dvfs ui`` process and the URL it printed."""

    proc: subprocess.Popen[bytes]
    url: str  # http://127.0.0.1:PORT/ (with ?token=T when it has one)
    stderr: str = ""  # what it wrote there, once stopped

    @property
    def base(self) -> str:
        return self.url.split("?", 1)[0]


@contextmanager
def serving(
    root: Path | str, *args: str, cwd: Path | None = None, unprivileged: bool = False
) -> Iterator[Server]:
    """``dvfs ui ROOT ARGS`` (ROOT: a repository, or a remote's URL run in ``cwd``)
    until the block ends (then SIGTERM, and it must exit 0); ``unprivileged``: refused
    what file modes refuse, as any user but root is. It is forked from a server that
    has loaded the dashboard (:func:`tests.support.forks.spawn`) where it can be."""
    command, where, env = ("ui", str(root), *args), cwd or root, cli_env()
    streams = (None, subprocess.PIPE, subprocess.PIPE)
    proc: subprocess.Popen[bytes] | None = None
    if not unprivileged:
        proc = forks.spawn(command, where, env, env, streams, kind="ui")
    if proc is None:  # (dropping root's file override is done at exec)
        proc = subprocess.Popen(
            cli_command(*command), cwd=where, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, preexec_fn=drop_file_override if unprivileged else None,
        )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    line = proc.stdout.readline().decode()
    if "http://" not in line:
        proc.kill()
        raise AssertionError(f"dvfs ui printed {line!r}; stderr: {proc.stderr.read()!r}")
    url = line[line.index("http://") :].split()[0]
    server = Server(proc, url)
    try:
        yield server
    finally:
        proc.terminate()
        code = proc.wait(timeout=30)
        err = server.stderr = proc.stderr.read().decode()
        proc.stdout.close()
        proc.stderr.close()
        assert code == 0, f"dvfs ui exited {code}: {err}"
        assert "Traceback" not in err, err


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def get(url: str, headers: dict[str, str] | None = None, method: str = "GET") -> Answer:
    """GET ``url`` (or another ``method``, without a body); the answer whatever its status."""
    return _answer(urllib.request.Request(url, headers=headers or {}, method=method))


def post(url: str, body: Any, headers: dict[str, str] | None = None) -> Answer:
    """POST ``body`` as JSON (a ``bytes`` body as it is) to ``url``; the answer whatever
    its status."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"Content-Type": "application/json", **(headers or {})}
    return _answer(urllib.request.Request(url, data=data, headers=sent, method="POST"))


def _answer(req: urllib.request.Request) -> Answer:
    """Send ``req``; the answer whatever its status."""
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return Answer(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return Answer(exc.code, {k.lower(): v for k, v in exc.headers.items()}, body)


def csrf_of(server: Server) -> str | None:
    """The CSRF token the dashboard's page holds (None: a read-only dashboard)."""
    page = get(server.url).body.decode()
    m = re.search(r'<meta name="dvfs-csrf" content="([^"]+)">', page)
    return m.group(1) if m else None
