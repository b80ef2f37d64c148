"""What is mounted: the kernel's mount table, the records of dvfs daemons, unmounting.

A daemon records itself once its mount is up and removes the record when it
unmounts, so ``dvfs mounts`` can say what each mount serves and ``dvfs umount`` can
find the daemon to stop. A daemon killed outright leaves its record and a mount
whose every access fails with "Transport endpoint is not connected"; both are
cleared by ``dvfs umount``.

Mount record, format version 1: JSON in
``<user cache>/dvfs/mounts/<sha256(mount point)[:16]>.json``::

    {"v": 1, "mountpoint": "/abs/mnt", "source": "/abs/repo" | "s3://b/p",
     "branch": "main", "pid": 1234, "cache_dir": "/abs/cache", "cache_size": bytes,
     "log": "/abs/cache/daemon.log" | null, "started": "2026-01-01T00:00:00Z"}

The kernel's table (``/proc/self/mountinfo``) is the truth about what is mounted; a
record is only trusted for what the table cannot tell (source, branch, pid).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vfs.durable import write_atomic
from vfs.errors import MountError

RECORD_FORMAT = 1
FS_TYPE = "fuse.dvfs"
MOUNTINFO = Path("/proc/self/mountinfo")
# How long `dvfs umount` waits for a daemon to let go of its mount.
STOP_WAIT = 10.0
_OCTAL = re.compile(r"\\([0-7]{3})")


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make ``path`` and its missing parents as directories only their owner may enter.

    The chunk cache holds the content of every file read through a mount, whatever
    that file's mode, so what dvfs makes for it is 0700 (``mkdir -p -m 700``, for each
    directory it makes). With ``tighten``, an existing directory owned by this user
    and open to others is closed (0700) too: one made by an older version.
    """
    missing = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, 0o700)
    if tighten and not missing:
        st = path.lstat()
        if st.st_uid == os.geteuid() and st.st_mode & 0o077 and os.path.isdir(path):
            os.chmod(path, 0o700)
    return path


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dvfs`` (default ``~/.cache/dvfs``): caches and mount records."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "dvfs"


def _unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (``\\040`` for space) decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_table() -> dict[str, str]:
    """Every mount point of this mount namespace with its filesystem type."""
    out: dict[str, str] = {}
    try:
        text = MOUNTINFO.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        if not sep or len(fields) < 5:
            continue
        out[_unescape(fields[4])] = right.split(" ", 1)[0]
    return out


def is_mounted(path: Path) -> bool:
    """True if ``path`` is a mount point (also when its daemon died: ``ismount`` says no)."""
    return str(path) in mount_table()


@dataclass(frozen=True)
class MountRecord:
    """What a daemon serves at one mount point (the format is in the module docstring)."""

    mountpoint: str
    source: str
    branch: str
    pid: int
    cache_dir: str
    cache_size: int
    log: str | None
    started: str

    def encode(self) -> bytes:
        """The record's JSON bytes."""
        return (json.dumps({"v": RECORD_FORMAT, **asdict(self)}, indent=2) + "\n").encode()

    @staticmethod
    def decode(data: bytes) -> MountRecord | None:
        """Parse a record; None if it is damaged or of another format (it is then ignored)."""
        try:
            rec = json.loads(data)
            if not isinstance(rec, dict) or rec.pop("v", None) != RECORD_FORMAT:
                return None
            out = MountRecord(**rec)
        except (ValueError, TypeError):
            return None
        typed = [isinstance(getattr(out, f), str) for f in ("mountpoint", "source", "branch")]
        return out if all(typed) and isinstance(out.pid, int) else None


def records_dir() -> Path:
    """Where mount records live."""
    return user_cache_dir() / "mounts"


def record_path(mountpoint: Path) -> Path:
    """The record file of a mount point."""
    digest = hashlib.sha256(os.fsencode(str(mountpoint))).hexdigest()[:16]
    return records_dir() / f"{digest}.json"


def write_record(rec: MountRecord) -> None:
    """Record a mount (atomically: readers never see half a record)."""
    path = record_path(Path(rec.mountpoint))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, rec.encode(), sync=False)


def read_record(mountpoint: Path) -> MountRecord | None:
    """The record of a mount point, if there is a readable one."""
    try:
        return MountRecord.decode(record_path(mountpoint).read_bytes())
    except OSError:
        return None


def remove_record(mountpoint: Path, pid: int | None = None) -> None:
    """Delete a mount point's record (only if it is ``pid``'s, when ``pid`` is given)."""
    if pid is not None:
        rec = read_record(mountpoint)
        if rec is not None and rec.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        record_path(mountpoint).unlink()


def all_records() -> list[MountRecord]:
    """Every readable mount record, by mount point."""
    out = []
    with contextlib.suppress(FileNotFoundError):
        for f in records_dir().glob("*.json"):
            with contextlib.suppress(OSError):
                rec = MountRecord.decode(f.read_bytes())
                if rec is not None:
                    out.append(rec)
    return sorted(out, key=lambda r: r.mountpoint)


def pid_alive(pid: int) -> bool:
    """True if a process ``pid`` exists (zombies count as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0:1] != ["Z"]


def disk_usage(path: Path) -> int:
    """Bytes of the regular files below ``path`` (0 if it does not exist)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


# ---------------------------------------------------------------------------- checks


def check_fuse() -> None:
    """MountError unless this machine can make FUSE mounts."""
    try:
        st = os.stat("/dev/fuse")
    except OSError:
        st = None
    if st is None or not (st.st_mode & 0o170000 == 0o020000):
        raise MountError(
            "FUSE is not available on this machine (/dev/fuse is missing or not the FUSE "
            "device): install fuse3 and load the fuse kernel module"
        )
    if os.geteuid() != 0 and shutil.which("fusermount3") is None:
        raise MountError("fusermount3 was not found: install the fuse3 package to mount")


def check_mountpoint(arg: str) -> Path:
    """The absolute mount point ``arg`` names; MountError unless it is an empty directory."""
    path = Path(os.path.abspath(arg))
    if is_mounted(path):
        rec = read_record(path)
        if rec is not None and not pid_alive(rec.pid):
            raise MountError(
                f"{path} is still mounted by a dvfs daemon that died: run `dvfs umount {path}`"
            )
        who = f" by dvfs (pid {rec.pid})" if rec is not None else ""
        raise MountError(f"{path} is already mounted{who}: run `dvfs umount {path}` first")
    try:
        with os.scandir(path) as it:
            busy = next(it, None) is not None
    except FileNotFoundError:
        raise MountError(f"{path} does not exist: create an empty directory to mount on") from None
    except NotADirectoryError:
        raise MountError(f"{path} is not a directory: mount on an empty directory") from None
    except OSError as exc:
        raise MountError(f"cannot use {path} as a mount point: {exc.strerror}") from None
    if busy:
        raise MountError(f"{path} is not empty: mount on an empty directory")
    return path


# ---------------------------------------------------------------------------- unmounting


def _release(path: Path, lazy: bool) -> str | None:
    """Ask the kernel to unmount ``path``; None on success, else the tool's complaint."""
    if shutil.which("fusermount3"):
        cmd = ["fusermount3", "-u", *(["-z"] if lazy else []), str(path)]
    else:
        cmd = ["umount", *(["-l"] if lazy else []), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode == 0 or not is_mounted(path):
        return None
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def unmount(arg: str, *, force: bool = False) -> MountRecord | None:
    """Unmount a dvfs mount and stop its daemon; return its record if there was one.

    The kernel unmount comes first (it fails while files are open, unless ``force``
    makes it lazy); the daemon then sees its mount go and exits by itself (with
    ``force`` it is told to at once: open files would keep it serving). A mount
    whose daemon died is unmounted the same way. The record goes last.
    """
    path = Path(os.path.abspath(arg))
    rec = read_record(path)
    fstype = mount_table().get(str(path))
    if fstype is None:
        if rec is not None:
            remove_record(path)
            if pid_alive(rec.pid):
                os.kill(rec.pid, signal.SIGTERM)
            return rec
        raise MountError(f"{path} is not mounted")
    if fstype != FS_TYPE:
        raise MountError(f"{path} is not a dvfs mount ({fstype}): use umount(8)")
    why = _release(path, lazy=force)
    if why is not None:
        hint = "close the files and programs using it, or use --force"
        raise MountError(f"{path} could not be unmounted ({why}): {hint}")
    # After a lazy unmount, open files keep the daemon serving: stop it now.
    if rec is not None and pid_alive(rec.pid) and (force or not _wait_gone(rec.pid, STOP_WAIT)):
        os.kill(rec.pid, signal.SIGTERM)
        _wait_gone(rec.pid, STOP_WAIT)
    remove_record(path)
    return rec


@dataclass(frozen=True)
class MountStatus:
    """One line of ``dvfs mounts``: a record (or a bare table entry) and its state."""

    mountpoint: str
    source: str
    branch: str
    pid: int | None
    state: str  # "mounted", "dead" (daemon gone, mount left), "unrecorded"
    cache_dir: str | None
    cache_used: int | None
    cache_size: int | None

    def as_json(self) -> dict[str, Any]:
        """The status as a JSON object."""
        return asdict(self)


def statuses() -> list[MountStatus]:
    """Every dvfs mount of this namespace; records of mounts that are gone are pruned."""
    table = mount_table()
    out = []
    seen = set()
    for rec in all_records():
        mounted = table.get(rec.mountpoint) == FS_TYPE
        alive = pid_alive(rec.pid)
        if not mounted:
            if not alive:
                remove_record(Path(rec.mountpoint))
            continue
        seen.add(rec.mountpoint)
        cache = Path(rec.cache_dir)
        out.append(
            MountStatus(
                rec.mountpoint, rec.source, rec.branch, rec.pid,
                "mounted" if alive else "dead", rec.cache_dir,
                disk_usage(cache / "chunks"), rec.cache_size,
            )
        )  # fmt: skip
    for point, fstype in table.items():
        if fstype == FS_TYPE and point not in seen:
            out.append(MountStatus(point, "?", "?", None, "unrecorded", None, None, None))
    return sorted(out, key=lambda s: s.mountpoint)
