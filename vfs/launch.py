"""Starting a mount: what SOURCE names, where its cache goes, and the daemon process.

The CLI never imports the daemon (``vfs`` stays free of trio and pyfuse3): it runs
``python -P -m daemon ARGS`` as a process. Without ``--foreground`` the daemon runs
in a new session with its output appended to ``<cache dir>/daemon.log``, and tells
the CLI how the mount went through a pipe (readiness protocol, version 1): it writes
exactly one line to the file descriptor given as ``--ready-fd`` and closes it::

    ready <branch>\\n          the mount is up and serving that branch
    error <message>\\n         the mount failed; <message> is one line for the user

If the pipe closes without a line, the daemon died; its log says why.

Cache directory (``--cache-dir``; default ``<user cache>/dvfs/cache/<name>-<hash>``,
the hash being of the source, so each source keeps its own). dvfs makes it, and every
directory in it, 0700, and its files 0600: the chunks are the content of files that
may be readable by their owner alone (``vfs.mounts.private_dir``)::

    lock            held (flock) by the daemon using the directory
    chunks/         verified chunks, see daemon.cache
    meta/           URL mounts: a repository holding the remote's versions and trees
    daemon.log      the daemon's log when it runs in the background
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from vfs.backends import refuse_credentials
from vfs.errors import MountError
from vfs.mounts import private_dir, user_cache_dir
from vfs.remotes import check_url
from vfs.repo import DVFS_DIR, Repository

DEFAULT_CACHE_SIZE = "10G"
# How long `dvfs mount` waits for the daemon to fetch metadata and mount.
READY_WAIT = 300.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``10G``, ``512M``, ``1.5T`` or a plain number; MountError otherwise."""
    m = _SIZE.match(text)
    if not m:
        raise MountError(f"--cache-size {text!r} is not a size: use e.g. 10G, 512M or 1T")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


@dataclass(frozen=True)
class MountSource:
    """What a mount serves: a repository directory or a remote URL."""

    kind: str  # "repository" or "remote"
    location: str  # absolute repository root, or the URL

    def cache_name(self) -> str:
        """A readable, unique directory name for this source's default cache."""
        tail = re.sub(r"[^A-Za-z0-9._-]+", "-", self.location.rstrip("/").rsplit("/", 1)[-1])
        digest = hashlib.sha256(self.location.encode()).hexdigest()[:12]
        return f"{tail.strip('-') or 'root'}-{digest}"


def resolve_source(arg: str | None) -> MountSource:
    """The source a SOURCE argument names (None: the repository around the cwd)."""
    if arg is None:
        return MountSource("repository", str(Repository.find().root))
    if "://" in arg:
        check_url(arg)
        return MountSource("remote", arg)
    path = Path(os.path.abspath(arg))
    if (path / DVFS_DIR).is_dir():
        return MountSource("repository", str(path))
    if (path / "format").is_file():  # a directory remote (what `dvfs push` writes)
        return MountSource("remote", path.as_uri())
    if not path.exists():
        raise MountError(f"{arg} does not exist: give a repository directory or a remote URL")
    raise MountError(
        f"{arg} is neither a dvfs repository nor a dvfs remote: give a repository "
        "directory, s3://bucket/prefix or file:///path"
    )


def default_cache_dir(source: MountSource) -> Path:
    """Where a source's cache goes unless --cache-dir says otherwise."""
    return user_cache_dir() / "cache" / source.cache_name()


@dataclass(frozen=True)
class DaemonArgs:
    """Everything the daemon process is started with."""

    source: MountSource
    mountpoint: Path
    cache_dir: Path
    cache_size: int
    branch: str | None = None
    refresh: float | None = None
    timeout: float = 30.0
    endpoint_url: str | None = None
    allow_other: bool = False
    debug: bool = False
    writable: bool = False

    def __post_init__(self) -> None:
        # The daemon's command line is readable by every local user (ps, /proc).
        if self.endpoint_url is not None:
            refuse_credentials(self.endpoint_url, "the endpoint URL")

    def argv(self) -> list[str]:
        """The daemon's command line (``-P``: never import a ``daemon`` from the cwd)."""
        out = [
            sys.executable, "-P", "-m", "daemon",
            "--source", self.source.location, "--mountpoint", str(self.mountpoint),
            "--cache-dir", str(self.cache_dir), "--cache-size", str(self.cache_size),
            "--timeout", str(self.timeout),
        ]  # fmt: skip
        if self.branch is not None:
            out += ["--branch", self.branch]
        if self.refresh is not None:
            out += ["--refresh", str(self.refresh)]
        if self.endpoint_url is not None:
            out += ["--endpoint-url", self.endpoint_url]
        if self.allow_other:
            out.append("--allow-other")
        if self.debug:
            out.append("--debug")
        if self.writable:
            out.append("--writable")
        return out

    @property
    def log_path(self) -> Path:
        """The daemon's log file when it runs in the background."""
        return self.cache_dir / "daemon.log"


def open_log(path: Path) -> BinaryIO:
    """The daemon's log opened for appending; readable by its user alone (0600).

    A log written by an older version with a looser mode is tightened.
    """
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        st = os.fstat(fd)
        if st.st_mode & 0o077 and st.st_uid == os.geteuid():
            os.fchmod(fd, 0o600)
        return os.fdopen(fd, "ab")
    except BaseException:
        os.close(fd)
        raise


def _last_line(path: Path) -> str:
    """The last non-empty line of a log, for an error message."""
    with contextlib.suppress(OSError):
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1].strip()
    return ""


def start(args: DaemonArgs, wait: float = READY_WAIT) -> tuple[int, str]:
    """Start the daemon in the background; return (pid, branch) once its mount is up.

    MountError with the daemon's own message if it failed, or with the last line of
    its log if it died without one.
    """
    private_dir(args.cache_dir)
    read_end, write_end = os.pipe()
    with open_log(args.log_path) as log:
        proc = subprocess.Popen(
            [*args.argv(), "--ready-fd", str(write_end)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=(write_end,),
            cwd="/",
            start_new_session=True,
        )
    os.close(write_end)
    try:
        line = _read_line(read_end, wait)
    finally:
        os.close(read_end)
    if line.startswith("ready "):
        return proc.pid, line[len("ready ") :]
    if line.startswith("error "):
        proc.wait(timeout=30)
        raise MountError(line[len("error ") :])
    if proc.poll() is None:
        proc.terminate()
        raise MountError(
            f"the daemon did not mount within {wait:.0f} s and was stopped: see {args.log_path}"
        )
    last = _last_line(args.log_path)
    raise MountError(
        f"the daemon exited (code {proc.returncode}) before the mount was ready"
        + (f": {last}" if last else "")
        + f"; log: {args.log_path}"
    )


def _read_line(fd: int, wait: float) -> str:
    """One line from the readiness pipe; "" on EOF or when ``wait`` runs out."""
    deadline = time.monotonic() + wait
    data = b""
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            return ""
        ready, _, _ = select.select([fd], [], [], min(left, 0.5))
        if not ready:
            continue
        piece = os.read(fd, 4096)
        if not piece:
            break
        data += piece
    return data.decode(errors="replace").split("\n", 1)[0].strip()
