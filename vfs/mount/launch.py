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
may be readable by their owner alone (``vfs.mount.mounts.private_dir``)::

    lock            held (flock) by the daemon using the directory, or by
                    `dvfs cache clean` while it cleans it
    chunks/         verified chunks, see daemon.data.chunk_cache
    meta/           URL mounts: a repository holding the remote's versions and trees
    digests         marks of the files read whole and found true, see daemon.data.digests
    daemon.log      the daemon's log when it runs in the background
    work/<branch>/  older versions only: a URL mount's working tree (moved out to
                    the data directory, below, by the next mount of that branch)

Remotes read in place keep only ``lock`` and ``meta/`` (their chunks stay in memory):
``<user cache>/dvfs/api/<name>-<hash>`` for ``vfs.Repo.remote``,
``<user cache>/dvfs/ui/<name>-<hash>`` for ``dvfs ui``. Every process reading one
holds its lock shared for as long as it reads (:func:`hold_mirror`), so
``dvfs cache clean --all`` removes only those no process uses.

Everything in a cache directory can be fetched again (``meta/`` holds a snapshot's
version only until it is pushed, in the same step, and the working tree keeps
every change until then), so one that no daemon holds may be deleted;
:func:`clean_caches` (``dvfs cache clean``) does it under the directory's lock.

One daemon uses a cache directory at a time: its size bound and its order of
eviction are that daemon's, in memory, and it deletes what it evicts. A second mount
of a source whose default cache is in use takes the next free one,
``<name>-<hash>-2``, ``-3``, ... (:func:`claim_cache`); the command locks it before
starting the daemon and hands the lock over (``--cache-lock-fd``), so two mounts
started at once never pick the same. An explicit ``--cache-dir`` in use is refused.
It costs the second mount of a URL its own downloads; a repository mount reads its
own store, and caches only what comes from its remote.

Working trees of URL mounts (``--writable``) live in the user's data directory,
``<user data>/dvfs/work/<name>-<hash>/<branch>/`` (``daemon.overlay`` describes one),
one per source and branch whatever the cache directory, as a repository keeps its
own in ``.dvfs/worktrees/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from vfs._os.malloc import huge_heap_environment
from vfs.backends import parse_url, refuse_credentials
from vfs.errors import MountError, UsageError
from vfs.mount.mounts import (
    STOP_WAIT,
    all_records,
    disk_usage,
    private_dir,
    user_cache_dir,
    user_data_dir,
)
from vfs.quoting import quote_given, quote_name, shell_word
from vfs.remote.layout import FORMAT_KEY
from vfs.repo.repository import DVFS_DIR, Repository
from vfs.store.lock import claim_for_life, share_for_life

DEFAULT_CACHE_SIZE = "10G"
# How many cache directories one source may have, for mounts at the same time.
MAX_CACHES = 32
LOCK_NAME = "lock"
CHUNKS_NAME = "chunks"
META_NAME = "meta"
LOG_NAME = "daemon.log"
DIGESTS_NAME = "digests"  # the daemon's marks of files found true (daemon.data.digests)
LEGACY_WORK = "work"
# Where remotes read in place keep their versions and trees: vfs.Repo.remote, dvfs ui.
MIRRORS = ("api", "ui")
# How long `dvfs mount` waits for the daemon to fetch metadata and mount.
READY_WAIT = 300.0
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``10G``, ``512M``, ``1.5T`` or a plain number; UsageError otherwise."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(
            f"--cache-size {quote_given(text)} is not a size: use e.g. 10G, 512M or 1T"
        )
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
        parse_url(arg)
        return MountSource("remote", arg)
    path = Path(os.path.abspath(arg))
    if (path / DVFS_DIR).is_dir():
        return MountSource("repository", str(path))
    if (path / FORMAT_KEY).is_file():  # a directory remote (what `dvfs push` writes)
        return MountSource("remote", path.as_uri())
    if not path.exists():
        raise MountError(f"{arg} does not exist: give a repository directory or a remote URL")
    raise MountError(
        f"{arg} is neither a dvfs repository nor a dvfs remote: give a repository "
        "directory, s3://bucket/prefix or file:///path"
    )


def caches_root() -> Path:
    """Where default cache directories go."""
    return user_cache_dir() / "cache"


def default_cache_dir(source: MountSource) -> Path:
    """Where a source's cache goes unless --cache-dir says otherwise (when it is free)."""
    return caches_root() / source.cache_name()


def work_root(source: MountSource) -> Path:
    """Where a URL source keeps its working trees, one directory per branch."""
    return user_data_dir() / "work" / source.cache_name()


def _holder(pid: str) -> str:
    """Who holds a cache's lock, for a message: the mount it serves if one is recorded."""
    for rec in all_records():
        if str(rec.pid) == pid:
            return f"the mount at {rec.mountpoint} (pid {pid})"
    return f"pid {pid}"


def claim(cache_dir: Path) -> int | str:
    """Lock ``cache_dir`` (made if missing, private); the lock's fd, or its holder's pid."""
    private_dir(cache_dir)
    return claim_for_life(cache_dir / LOCK_NAME, 0o600)


def claim_cache(
    source: MountSource, given: Path | None, mountpoint: Path | None = None
) -> tuple[Path, int]:
    """A cache directory for a new mount, locked: (directory, the lock's fd).

    ``given`` (``--cache-dir``) if it is free, else MountError; without it, the
    source's default directory or, if a daemon holds it, the next free sibling.
    A ``given`` at or below ``mountpoint`` is a UsageError, before anything is made:
    the mount would hide it, and making it would leave the mount point not empty. So
    is one inside the repository served or any repository's ``.dvfs``: its ``lock``
    would be the repository's own lock, held for the mount's life, and its files
    would show in the working tree (``dvfs add .`` would take them).
    """
    if given is not None:
        if mountpoint is not None and _at_or_below(given, mountpoint):
            raise UsageError(
                f"the cache directory {quote_name(str(given))} is inside the mount point "
                f"{quote_name(str(mountpoint))}, which the mount would hide: pass a "
                "--cache-dir outside it"
            )
        if source.kind == "repository" and _at_or_below(given, Path(source.location)):
            clash = f"inside the repository {quote_name(source.location)}"
        elif DVFS_DIR in Path(os.path.realpath(given)).parts:
            clash = f"inside a repository's {DVFS_DIR} directory"
        else:
            clash = None
        if clash is not None:
            raise UsageError(
                f"the cache directory {quote_name(str(given))} is {clash}, whose lock and "
                "files the mount's would mix with: pass a --cache-dir outside it"
            )
        got = claim(given)
        if isinstance(got, str):
            raise MountError(
                f"the cache directory {given} is in use by {_holder(got)}: pass another "
                "--cache-dir, or leave it out to have a free one chosen"
            )
        return given, got
    first = default_cache_dir(source)
    for n in range(1, MAX_CACHES + 1):
        where = first if n == 1 else first.with_name(f"{first.name}-{n}")
        got = claim(where)
        if not isinstance(got, str):
            return where, got
    raise MountError(
        f"the {MAX_CACHES} cache directories of {source.location} are all in use: unmount "
        "some of its mounts, or pass --cache-dir"
    )


def _at_or_below(path: Path, top: Path) -> bool:
    """True if ``path`` is ``top`` or inside it, links resolved."""
    inner, outer = os.path.realpath(path), os.path.realpath(top)
    return inner == outer or inner.startswith(outer.rstrip("/") + "/")


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
    lock_fd: int | None = field(default=None, compare=False)  # the cache's lock, handed over
    overlay: str = "auto"  # what makes MNT writable: "kernel", "daemon" or "auto"

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
            if self.overlay != "auto":
                out += ["--overlay", self.overlay]
        if self.lock_fd is not None:
            out += ["--cache-lock-fd", str(self.lock_fd)]
        return out

    def environment(self) -> dict[str, str]:
        """The daemon's environment: this process's, with malloc's heaps on huge pages
        (``vfs._os.malloc.huge_heap_environment``)."""
        return huge_heap_environment(os.environ)

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
    handed = (write_end,) if args.lock_fd is None else (write_end, args.lock_fd)
    with open_log(args.log_path) as log:
        proc = subprocess.Popen(
            [*args.argv(), "--ready-fd", str(write_end)],
            env=args.environment(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=handed,
            cwd="/",
            start_new_session=True,
        )
    try:
        os.close(write_end)
        line = _read_line(read_end, wait)
    except KeyboardInterrupt:
        raise _interrupted(proc, args.mountpoint) from None
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


class MountInterrupted(MountError):
    """Ctrl-C while ``dvfs mount`` waited for its daemon to mount."""

    exit_code = 130


def _interrupted(proc: subprocess.Popen[bytes], mountpoint: Path) -> MountInterrupted:
    """Stop a daemon whose start Ctrl-C interrupted; what to say of it.

    The daemon runs in a session of its own, which the terminal's Ctrl-C does not
    reach: left alone, it would go on and mount after the command said it was
    interrupted. SIGTERM stops it before its mount, or unmounts what it made.
    """
    proc.terminate()
    try:
        proc.wait(timeout=STOP_WAIT)
    except subprocess.TimeoutExpired:
        return MountInterrupted(
            f"interrupted; the daemon (pid {proc.pid}) was told to stop but still runs: "
            f"`dvfs umount --force {shell_word(str(mountpoint))}` stops it if it mounts"
        )
    return MountInterrupted(
        f"interrupted: the daemon (pid {proc.pid}) was stopped, and nothing is mounted at "
        f"{quote_name(str(mountpoint))}; run the command again"
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


# ---------------------------------------------------------------------------- cleaning


@dataclass
class Cleaned:
    """What :func:`clean_caches` did."""

    freed: int = 0  # bytes deleted
    cleaned: list[Path] = field(default_factory=list)
    in_use: list[tuple[Path, str]] = field(default_factory=list)  # (directory, holder)
    kept_work: list[Path] = field(default_factory=list)  # legacy working trees left alone


def looks_like_cache(path: Path) -> bool:
    """True if ``path`` holds what a mount puts in its cache directory (and is ours)."""
    try:
        names = set(os.listdir(path))
        st = path.lstat()
    except OSError:
        return False
    own = path.is_dir() and not path.is_symlink() and st.st_uid == os.geteuid()
    return own and bool(names & {LOCK_NAME, CHUNKS_NAME, META_NAME})


def cache_dirs(mirrors: bool = False) -> list[Path]:
    """Every default cache directory of this user; with ``mirrors``, remotes' mirrors too."""
    roots = [caches_root(), *(user_cache_dir() / m for m in MIRRORS if mirrors)]
    found: list[Path] = []
    for root in roots:
        with contextlib.suppress(OSError):
            found += sorted(root.iterdir())
    return [p for p in found if looks_like_cache(p)]


def mirror_dir(kind: str, url: str) -> Path:
    """Where ``kind`` (``api``: vfs.Repo.remote; ``ui``: dvfs ui) mirrors ``url``."""
    return user_cache_dir() / kind / MountSource("remote", url).cache_name()


def hold_mirror(base: Path) -> int:
    """Make ``base`` (private) and hold its lock shared while the descriptor is open.

    A remote's mirror (versions and trees, ``base/meta``) is used by every process
    that reads the remote in place; ``dvfs cache clean --all`` removes one only when
    none holds it, and one it removed meanwhile is made again here.
    """
    for _ in range(MAX_CACHES):
        with contextlib.suppress(FileNotFoundError):  # removed meanwhile: make it again
            private_dir(base)
            return share_for_life(base / LOCK_NAME)
    raise MountError(f"{base} keeps being removed while it is opened: try again")


def _remove(path: Path) -> int:
    """Delete a file or a directory tree (never following a link); the bytes it held."""
    if path.is_symlink() or not path.is_dir():
        size = path.lstat().st_size
        path.unlink()
        return size
    size = disk_usage(path)
    shutil.rmtree(path)
    return size


def clean_caches(dirs: list[Path], everything: bool = False) -> Cleaned:
    """Empty cache directories no daemon uses; never touch a working tree.

    Each directory is locked while it is cleaned, so no mount starts on it meanwhile;
    one a daemon holds is skipped. Removed: ``chunks/`` (the cached file data), and
    with ``everything`` the metadata, the digests' marks and the log too, then the
    directory itself, unless an older version left a working tree in ``work/``: that
    is kept, whole.
    Only names a mount makes are removed; anything else in the directory stays.
    """
    out = Cleaned()
    for d in dirs:
        if not looks_like_cache(d):
            raise MountError(f"{d} is not a dvfs cache directory: nothing was removed")
        got = claim(d)
        if isinstance(got, str):
            mirror = d.parent.name in MIRRORS and not (d / CHUNKS_NAME).exists()
            who = "a dvfs ui or Python program reading its remote" if mirror else _holder(got)
            out.in_use.append((d, who))
            continue
        try:
            names = [CHUNKS_NAME] + ([META_NAME, DIGESTS_NAME, LOG_NAME] if everything else [])
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    out.freed += _remove(d / name)
            out.cleaned.append(d)
            work = d / LEGACY_WORK
            if work.exists():
                out.kept_work.append(work)
            elif everything:
                (d / LOCK_NAME).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    d.rmdir()  # only if nothing else is in it
        finally:
            os.close(got)
    return out
