"""Every shell block of README.md runs as written, in order, on sample data.

The blocks run one after another, as a reader would type them, each in the directory
where the one before ended, starting next to a sample ``my-project/`` (data files, a
``new.csv`` and a ``train.py`` that writes a model); a git repository with data,
``~/code/cats``, and the git server it came from, ``/srv/git/cats.git``, are there too.
They run inside private mount and network namespaces (``tests/support/readme_sandbox.py``),
where ``/mnt/data`` is a real FUSE mount and ``http://minio:9000`` a real S3 server (the
session's SeaweedFS), so that nothing in the README needs rewriting to be run.

A block that cannot run here is marked in README.md by the line
``<!-- illustration: WHY -->`` right before it. Such blocks are listed in
``ILLUSTRATIONS`` below, so that marking another one is a deliberate change.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import AUTHOR, GIT_ENV, fsck_clean
from tests.support.loopback import AWS_VARS_TO_CLEAR
from tests.support.s3server import S3Server

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SANDBOX = Path(__file__).resolve().parent / "support" / "readme_sandbox.py"
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!-- illustration: (\S.*?) -->$")
SHELLS = {"sh", "bash", "shell", "console"}
BUCKETS = ["my-bucket"]

# The first line of each block that is shown but not run, and why it cannot run here.
ILLUSTRATIONS = {
    "make demo": "installs Debian packages",
    "install -m 644 systemd/dvfs-mount@.service /etc/systemd/system/": "needs systemd",
}

TRAIN_PY = '''\
"""A stand-in for a training script: writes a model and its metrics to --out."""
import argparse
import json
import os

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
out = parser.parse_args().out
os.makedirs(out, exist_ok=True)
with open(os.path.join(out, "model.bin"), "wb") as f:
    f.write(os.urandom(300_000))
with open(os.path.join(out, "metrics.json"), "w") as f:
    json.dump({"accuracy": 0.93}, f)
'''


# In the namespaces, before the blocks: a git server's repository at /srv/git/cats.git
# holding code, and ~/code/cats, a clone of it with data in data/ that git does not hold.
PREPARE = """
git init -q --bare -b main /srv/git/cats.git
git clone -q /srv/git/cats.git ~/code/cats 2>/dev/null
cd ~/code/cats
printf 'print("training")\\n' > train.py
git add train.py && git commit -q -m "code" && git push -q -u origin main
mkdir -p data/images
printf 'id,label\\n1,cat\\n' > data/labels.csv
head -c 50000 /dev/urandom > data/images/cat-0.jpg
"""


@dataclass(frozen=True)
class Block:
    """A fenced shell block of the README."""

    line: int  # of its first command
    text: str
    illustration: str | None  # why it is not run, if it is not


def readme_blocks(text: str) -> list[Block]:
    """The shell blocks of a Markdown text, each with its illustration marker if any.

    A marker must stand right before a shell block (blank lines between are allowed).
    """
    blocks = []
    lines = text.splitlines()
    marker: tuple[int, str] | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        found = MARKER.match(line.strip())
        fence = FENCE.match(line)
        if found:
            assert marker is None, f"README.md:{i + 1}: two markers in a row"
            marker = (i + 1, found.group(1))
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence.group(1) in SHELLS:
                body = "\n".join(lines[i + 1 : end]) + "\n"
                blocks.append(Block(i + 2, body, marker[1] if marker else None))
            else:
                assert marker is None, f"README.md:{marker[0]}: marker before a non-shell block"
            marker = None
            i = end
        elif line.strip():
            assert marker is None, f"README.md:{marker[0]}: marker not right before a block"
        i += 1
    assert marker is None, f"README.md:{marker[0]}: marker after the last block"
    return blocks


def first_line(block: Block) -> str:
    return next(ln for ln in block.text.splitlines() if ln.strip()).split("#")[0].strip()


def test_only_the_known_blocks_are_illustrations() -> None:
    blocks = readme_blocks(README.read_text())
    assert len(blocks) >= 5
    shown = {first_line(b): b.illustration for b in blocks if b.illustration}
    assert sorted(shown) == sorted(ILLUSTRATIONS)


def test_a_marker_must_stand_before_a_shell_block() -> None:
    text = "<!-- illustration: x -->\n\nsome prose\n\n```sh\nls\n```\n"
    try:
        readme_blocks(text)
    except AssertionError as exc:
        assert "not right before a block" in str(exc)
    else:
        raise AssertionError("a stray marker was accepted")
    marked = readme_blocks("<!-- illustration: why -->\n\n```sh\nls\n```\n```sh\npwd\n```\n")
    assert [(b.line, b.illustration) for b in marked] == [(4, "why"), (7, None)]


def sample_project(where: Path) -> Path:
    """``my-project/``: a few data files, and beside them ``new.csv`` and ``train.py``."""
    project = where / "my-project"
    (project / "data" / "images" / "train").mkdir(parents=True)
    (project / "data" / "images" / "val").mkdir()
    (project / "data" / "labels.csv").write_text("id,label\n1,cat\n2,dog\n3,cat\n")
    for split, count in (("train", 6), ("val", 2)):
        for n in range(count):
            (project / "data" / "images" / split / f"cat-{n}.jpg").write_bytes(
                os.urandom(20_000 + 3_000 * n)
            )
    (project / "new.csv").write_text("id,label\n4,bird\n")
    (project / "train.py").write_text(TRAIN_PY)
    return project


def empty_buckets(server: S3Server) -> None:
    """The README's buckets, made if missing and emptied."""
    client = server.client()
    for name in BUCKETS:
        try:
            client.create_bucket(Bucket=name)
        except client.exceptions.ClientError as exc:
            if "BucketAlready" not in str(exc):
                raise
        listed = client.list_objects_v2(Bucket=name).get("Contents", [])
        for obj in listed:
            client.delete_object(Bucket=name, Key=obj["Key"])


def sandbox_env(server: S3Server, home: Path, runtime: Path) -> dict[str, str]:
    """What the README's commands run with: this venv's dvfs, the server's keys."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARS_TO_CLEAR}
    env.update(GIT_ENV)
    env.update(
        {
            "PATH": f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "XDG_DATA_HOME": str(home / ".local" / "share"),
            "XDG_RUNTIME_DIR": str(runtime),
            "DVFS_AUTHOR": AUTHOR,
            "DVFS_THREADS": "2",
            "AWS_ACCESS_KEY_ID": server.access_key,
            "AWS_SECRET_ACCESS_KEY": server.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.pop("DVFS_DEBUG", None)
    return env


def test_readme_blocks_run_as_written(tmp_path: Path, s3_server: S3Server) -> None:
    blocks = [b for b in readme_blocks(README.read_text()) if b.illustration is None]
    start = tmp_path / "work"
    start.mkdir()
    project = sample_project(start)
    home = tmp_path / "home"
    home.mkdir()
    state = tmp_path / "state"
    state.mkdir()
    empty_buckets(s3_server)
    runtime = Path(tempfile.mkdtemp(prefix="dvfs-readme-"))  # a socket path is short
    spec = {
        "blocks": [{"line": b.line, "text": b.text} for b in blocks],
        "prepare": PREPARE,
        "start": str(start),
        "s3_socket": str(s3_server.log.parent / "s3.sock"),
        "state": str(state),
        "results": str(state / "results.json"),
    }
    (state / "spec.json").write_text(json.dumps(spec))
    try:
        proc = subprocess.run(
            ["unshare", "--mount", "--net", "--propagation", "private",
             sys.executable, "-P", str(SANDBOX), str(state / "spec.json")],
            env=sandbox_env(s3_server, home, runtime),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )  # fmt: skip
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    assert proc.returncode == 0, proc.stderr
    results = json.loads((state / "results.json").read_text())
    for r in results["blocks"]:
        where = f"README.md:{r['line']} ({r['seconds']} s)\n--- out\n{r['out']}--- err\n{r['err']}"
        assert r["code"] == 0, where
        for bad in ("dvfs: error:", "Traceback", "command not found", "No such file"):
            assert bad not in r["err"], where
    assert len(results["blocks"]) == len(blocks)
    fsck_clean(project)
    teammate = home / "cats"  # the git clone of the last blocks got the data
    assert (teammate / "data" / "images" / "cat-0.jpg").read_bytes() == (
        home / "code" / "cats" / "data" / "images" / "cat-0.jpg"
    ).read_bytes()
    fsck_clean(teammate)
