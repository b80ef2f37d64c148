"""What is mounted: the kernel's mount table, the records of dvfs daemons, unmounting.

A daemon records itself once its mount is up and removes the record when it
unmounts, so ``dvfs mounts`` can say what each mount serves and ``dvfs umount`` can
find the daemon to stop. A daemon killed outright leaves its record and a mount
whose every access fails with "Transport endpoint is not connected"; both are
cleared by ``dvfs umount``.

Records live in the user's runtime directory (:func:`runtime_dir`), which is emptied
at boot, and a record names its daemon by more than a pid: the boot it ran in and
the process's start time (``/proc/PID/stat``, field 22). A pid is reused once its
process is gone, and a record that outlived its daemon (``kill -9``, a crash, a
reboot where the runtime directory survives) would otherwise name whatever process
got that number next: ``dvfs umount`` signals a process only if it is the very one
that wrote the record, through a pidfd opened before the start time is checked, so
that the check and the signal concern the same process.

Mount record, format version 2: JSON in
``<runtime dir>/mounts/<sha256(mount point)[:16]>.json``::

    {"v": 2, "mountpoint": "/abs/mnt", "source": "/abs/repo" | "s3://b/p",
     "branch": "main", "pid": 1234, "start": <start time, clock ticks after boot>,
     "boot": "<boot id>", "cache_dir": "/abs/cache", "cache_size": bytes,
     "log": "/abs/cache/daemon.log" | null, "started": "2026-01-01T00:00:00Z",
     "work_dir": "/abs/work/main" | null}

``branch`` is the branch served now (a snapshot with ``--branch NEW`` rewrites the
record), ``work_dir`` where the working tree's changes are kept (null for a
read-only mount; absent from records of older versions).

Version 1 records (in ``<user cache>/dvfs/mounts``, without ``start`` and ``boot``)
are ignored: their pid cannot be told from another process's.

The kernel's table (``/proc/self/mountinfo``) is the truth about what is mounted; a
record is only trusted for what the table cannot tell (source, branch, daemon). A
dvfs mount is a FUSE mount of type ``fuse.dvfs``, or (a root mount's writable tree,
``daemon.kernel_overlay``) an overlayfs whose source is ``dvfs``, with the daemon's
``.versions`` mounted on it: that one is unmounted by its daemon, which alone can put
``.versions`` back if MNT turns out busy, and detached at once if the daemon died.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vfs._os.helper_process import process_start
from vfs._os.mount_table import FS_TYPES, OVERLAY_TYPE, mount_table
from vfs.errors import DvfsError, MountError, NoSuchMount, UsageError
from vfs.mount import control
from vfs.quoting import shell_word
from vfs.store.durable import write_atomic

RECORD_FORMAT = 2
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
RUN_ROOT = Path("/run")
# How long `dvfs umount` waits for a daemon to let go of its mount.
STOP_WAIT = 10.0
MAX_LINKS = 40  # symbolic links followed in a mount point's path, at most (as the kernel)


def private_dir(path: Path, *, tighten: bool = False) -> Path:
    """Make ``path`` and its missing parents as directories only their owner may enter.

    The chunk cache holds the content of every file read through a mount, whatever
    that file's mode, so what dvfs makes for it is 0700 (``mkdir -p -m 700``, for each
    directory it makes). ``path`` must belong to this user (MountError otherwise):
    another user's directory would let that user read what is put there, or swap
    its files for links. With ``tighten``, one open to others is closed (0700): one
    made by an older version.
    """
    missing = []
    at = path
    while not at.exists() and at != at.parent:
        missing.append(at)
        at = at.parent
    d = path
    try:
        for d in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(d, 0o700)
        d = path
        st = os.stat(path)
    except OSError as exc:  # a file on the way, a link to nothing, no permission
        if isinstance(exc, FileNotFoundError) and not os.path.lexists(d):
            raise  # removed meanwhile (hold_mirror makes it again)
        raise MountError(
            f"cannot make the directory {path} ({d}: {exc.strerror}): choose another place "
            "(--cache-dir, XDG_CACHE_HOME or XDG_DATA_HOME)"
        ) from None
    if not stat.S_ISDIR(st.st_mode):
        raise MountError(f"{path} is not a directory")
    if st.st_uid != os.geteuid():
        raise MountError(
            f"{path} belongs to uid {st.st_uid}, not to you: dvfs keeps private data there; "
            "use a directory of your own"
        )
    if tighten and st.st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


def _private_or_refuse(base: Path) -> Path:
    """``base``, made if missing; MountError unless it is a directory of ours, 0700."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(base, 0o700)
    st = base.lstat()
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise MountError(
            f"{base} is not a private directory of this user (owner uid {st.st_uid}, mode "
            f"{stat.S_IMODE(st.st_mode):o}): remove it, or set XDG_RUNTIME_DIR"
        )
    return base


def runtime_dir() -> Path:
    """This user's directory for mount records and control sockets (mode 0700).

    ``$XDG_RUNTIME_DIR/dvfs`` when that is a directory of this user (the per-user
    tmpfs a login manager makes, emptied at boot); else ``/run/dvfs`` for root;
    else ``<tmp>/dvfs-<uid>``. Whichever it is must be this user's and closed to
    others, or MountError says so: no other user may plant or read records there.
    """
    uid = os.geteuid()
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg):
        with contextlib.suppress(OSError):
            st = os.stat(xdg)
            if stat.S_ISDIR(st.st_mode) and st.st_uid == uid:
                return _private_or_refuse(Path(xdg) / "dvfs")
    if uid == 0 and RUN_ROOT.is_dir():
        return _private_or_refuse(RUN_ROOT / "dvfs")
    return _private_or_refuse(Path(tempfile.gettempdir()) / f"dvfs-{uid}")


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/dvfs`` (default ``~/.cache/dvfs``): what can be fetched again."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "dvfs"


def user_data_dir() -> Path:
    """``$XDG_DATA_HOME/dvfs`` (default ``~/.local/share/dvfs``): what exists nowhere else.

    The working trees of URL mounts live here, not in a cache directory: clearing a
    cache to free space must never take changes not yet snapshotted with it.
    """
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "share"
    )
    return Path(base).absolute() / "dvfs"


def is_mounted(path: Path) -> bool:
    """True if ``path`` is a mount point (also when its daemon died: ``ismount`` says no)."""
    return str(path) in mount_table()


def enclosing(arg: str, *, at_top: bool = False) -> Path | None:
    """The dvfs mount a path lies inside (with ``at_top``: or is the top of), or None.

    For the commands that take MNT and were given a directory in it, and those that
    need a repository and were run in a mount. The kernel's overlay has the daemon's
    ``.versions`` mounted on ``MNT/.versions``: a path below that is inside MNT.
    """
    table = mount_table()
    path = mount_path(arg)
    for d in (path, *path.parents) if at_top else path.parents:
        if table.get(str(d)) in FS_TYPES:
            if d.name == ".versions" and table.get(str(d.parent)) in FS_TYPES:
                return d.parent
            return d
    return None


def not_a_repository(where: str) -> str | None:
    """What to say to a command that needs a repository and was run at ``where``, if
    that is in a dvfs mount: a working tree whose repository is elsewhere (None if not
    in one)."""
    top = enclosing(where, at_top=True)
    if top is None:
        return None
    rec = read_record(top)
    mnt = shell_word(str(top))
    if rec is not None and not daemon_alive(rec):
        return (
            f"{where} is in the dvfs mount {top}, whose daemon (pid {rec.pid}) is gone: run "
            f"`dvfs umount --force {mnt}` and mount it again (the working tree's changes "
            "are kept)"
        )
    if rec is not None and process_stopped(rec.pid):
        return (
            f"{where} is in the dvfs mount {top}, whose daemon (pid {rec.pid}) is stopped: "
            f"`kill -CONT {rec.pid}` resumes it; `dvfs umount --force {mnt}` unmounts it"
        )
    if not os.path.lexists(top / control.CONTROL_LINK):  # a read-only mount: no tree
        what, run = "a read-only view", f"read its versions in {top}/.versions"
    else:
        what, run = "a working tree", f"run `dvfs status {mnt}` or `dvfs snapshot {mnt} -m MSG`"
    if rec is None:
        elsewhere = "the repository"
    elif "://" in rec.source:  # a remote's URL: no repository of its own
        elsewhere = f"a clone of {rec.source} (`dvfs clone {shell_word(rec.source)}`)"
    else:
        elsewhere = f"the repository ({rec.source})"
    return (
        f"{where} is in the dvfs mount {top}, {what}, not a repository: {run}, and other "
        f"commands in {elsewhere}"
    )


@dataclass(frozen=True)
class MountRecord:
    """What a daemon serves at one mount point (the format is in the module docstring)."""

    mountpoint: str
    source: str
    branch: str
    pid: int
    start: int
    boot: str
    cache_dir: str
    cache_size: int
    log: str | None
    started: str
    work_dir: str | None = None

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
        numbers = isinstance(out.pid, int) and isinstance(out.start, int)
        work = out.work_dir is None or isinstance(out.work_dir, str)
        return out if all(typed) and numbers and work and isinstance(out.boot, str) else None


def records_dir() -> Path:
    """Where mount records live."""
    return runtime_dir() / "mounts"


def record_path(mountpoint: Path) -> Path:
    """The record file of a mount point."""
    digest = hashlib.sha256(os.fsencode(str(mountpoint))).hexdigest()[:16]
    return records_dir() / f"{digest}.json"


def pipeline_file(mountpoint: Path, suffix: str) -> Path:
    """A file of the pipeline runs in a mount (``vfs.pipeline``), in the runtime
    directory: ``pipeline-<sha256(mount point)[:16]>.lock``, held while one runs, and
    ``.writing``, the outputs being written (``vfs.pipeline.writing``), which the
    mount's daemon reads before a snapshot."""
    digest = hashlib.sha256(os.fsencode(str(mountpoint))).hexdigest()[:16]
    return runtime_dir() / f"pipeline-{digest}.{suffix}"


def write_record(rec: MountRecord) -> None:
    """Record a mount (atomically: readers never see half a record)."""
    path = record_path(Path(rec.mountpoint))
    private_dir(path.parent)
    write_atomic(path, rec.encode(), sync=False, mode=0o600)


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


def boot_id() -> str:
    """This boot's id (a record from another boot names no process of this one)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def process_stopped(pid: int) -> bool:
    """True if process ``pid`` is stopped (by a signal, or traced): it answers nothing."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = text.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("T", "t")


def identity(pid: int) -> tuple[int, str]:
    """(start time, boot id) of a live process, as its mount record holds them."""
    start = process_start(pid)
    if start is None:
        raise MountError(f"process {pid} is gone")
    return start, boot_id()


def daemon_alive(rec: MountRecord) -> bool:
    """True if the daemon that wrote ``rec`` still runs (not just some process ``rec.pid``)."""
    return rec.boot == boot_id() and process_start(rec.pid) == rec.start


def _pidfd(rec: MountRecord) -> int | None:
    """A pidfd of the record's daemon; None if that process is gone.

    The pidfd is opened first and the start time checked after: if the daemon died
    and its pid was taken meanwhile, the check fails; if it dies later, the pidfd
    still means the dead daemon, never the newcomer.
    """
    if rec.boot != boot_id():
        return None
    try:
        fd = os.pidfd_open(rec.pid)
    except OSError:  # gone (ESRCH), or bad
        return None
    if process_start(rec.pid) != rec.start:
        os.close(fd)
        return None
    return fd


def stop_daemon(rec: MountRecord, wait: float) -> bool:
    """SIGTERM the record's daemon, if it still runs (and SIGCONT, should it be stopped);
    True once it is gone in ``wait`` s.

    Nothing is signalled unless the process is the one that wrote the record.
    """
    fd = _pidfd(rec)
    if fd is None:
        return True
    try:
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(fd, signal.SIGTERM)
            signal.pidfd_send_signal(fd, signal.SIGCONT)  # (a stopped one takes it then)
        return _exited(fd, rec.pid, wait)
    finally:
        os.close(fd)


def wait_daemon(rec: MountRecord, wait: float) -> bool:
    """True if the record's daemon is gone, or goes within ``wait`` seconds."""
    fd = _pidfd(rec)
    if fd is None:
        return True
    try:
        return _exited(fd, rec.pid, wait)
    finally:
        os.close(fd)


def _exited(fd: int, pid: int, wait: float) -> bool:
    """Wait until the process of a pidfd exits (its pidfd becomes readable) or is a zombie."""
    deadline = time.monotonic() + wait
    while True:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready or process_start(pid) is None:
            return True
        if time.monotonic() > deadline:
            return False


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


def mount_path(arg: str) -> Path:
    """The mount point ``arg`` names: absolute, through any symbolic link on the way.

    The kernel mounts on the directory a link leads to, and lists that in its table:
    the record, ``dvfs mounts`` and ``dvfs umount`` must name the same directory, and
    so must a process inside the mount (its cwd). Nothing at or below a dvfs mount is
    looked at (its daemon may be stopped or hung, and every look would wait for it:
    ``dvfs umount --force`` must not): from there on the path is taken as written.
    ``..`` is taken as written too, as ``os.path.abspath`` does.
    """
    table = mount_table()
    done = Path("/")
    todo = list(Path(os.path.abspath(arg)).parts[1:])
    for _ in range(MAX_LINKS):
        while todo:
            if table.get(str(done)) in FS_TYPES:
                return done.joinpath(*todo)
            step = done / todo[0]
            if str(step) in table:  # a mount point: not a link
                done, todo = step, todo[1:]
                continue
            try:
                target = os.readlink(step)
            except OSError:  # not a link, or not there
                done, todo = step, todo[1:]
                continue
            todo = [*Path(os.path.abspath(done / target)).parts[1:], *todo[1:]]
            done = Path("/")
            break
        else:
            return done
    raise MountError(f"{arg}: too many levels of symbolic links")


def check_mountpoint(arg: str) -> Path:
    """The mount point ``arg`` names (:func:`mount_path`); UsageError unless it is an
    empty directory (MountError if it is mounted already, or cannot be read)."""
    path = mount_path(arg)
    if is_mounted(path):
        rec = read_record(path)
        if rec is not None and not daemon_alive(rec):
            raise MountError(
                f"{path} is still mounted by a dvfs daemon that died: run `dvfs umount {path}`"
            )
        who = f" by dvfs (pid {rec.pid})" if rec is not None else ""
        raise MountError(f"{path} is already mounted{who}: run `dvfs umount {path}` first")
    try:
        with os.scandir(path) as it:
            busy = next(it, None) is not None
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist: create an empty directory to mount on") from None
    except NotADirectoryError:
        raise UsageError(f"{path} is not a directory: mount on an empty directory") from None
    except OSError as exc:
        raise MountError(f"cannot use {path} as a mount point: {exc.strerror}") from None
    if busy:
        raise UsageError(f"{path} is not empty: mount on an empty directory")
    return path


# ---------------------------------------------------------------------------- unmounting


def _release(path: Path, lazy: bool) -> str | None:
    """Ask the kernel to unmount ``path``; None on success, else the tool's complaint."""
    if mount_table().get(str(path)) == OVERLAY_TYPE:  # root's, and its daemon is gone
        cmd = ["umount", "-l", str(path)]
    elif shutil.which("fusermount3"):
        cmd = ["fusermount3", "-u", *(["-z"] if lazy else []), str(path)]
    else:
        cmd = ["umount", *(["-l"] if lazy else []), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    if proc.returncode == 0 or not is_mounted(path):
        return None
    return (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]


def unmount(arg: str, *, force: bool = False) -> MountRecord | None:
    """Unmount a dvfs mount and stop its daemon; return its record if there was one.

    The kernel unmount comes first (it fails while files are open, unless ``force``
    makes it lazy); the daemon then sees its mount go and exits by itself (with
    ``force`` it is told to at once: open files would keep it serving). A mount
    whose daemon died is unmounted the same way. The record goes last. Only the
    process that wrote the record is ever signalled (see the module docstring).
    """
    path = mount_path(arg)
    rec = read_record(path)
    fstype = mount_table().get(str(path))
    if fstype is None:
        if rec is not None:
            remove_record(path)
            if daemon_alive(rec):  # its mount went, but it did not: stop it
                stop_daemon(rec, STOP_WAIT)
                return rec
        top = enclosing(arg)
        if top is not None:
            raise MountError(f"{path} is inside the dvfs mount {top}: run `dvfs umount {top}`")
        raise NoSuchMount(f"{path} is not mounted")
    if fstype not in FS_TYPES:
        raise NoSuchMount(f"{path} is not a dvfs mount ({fstype}): use umount(8)")
    top = path.parent
    if rec is None and path.name == ".versions" and mount_table().get(str(top)) in FS_TYPES:
        # the kernel's overlay has the daemon's .versions mounted on MNT/.versions: unmounted
        # alone, it left MNT without its versions and its daemon unable to unmount MNT
        raise MountError(f"{path} is part of the dvfs mount {top}: run `dvfs umount {top}`")
    if fstype == OVERLAY_TYPE and rec is not None and daemon_alive(rec):
        try:
            control.call(str(path), {"op": "unmount", "force": force}, wait=STOP_WAIT)
            why = None
        except control.DaemonSilent:
            if not force:
                raise
            why = _release(path, lazy=True)  # (a stopped daemon can put nothing back)
        except DvfsError as exc:
            raise MountError(str(exc)) from None
    else:
        why = _release(path, lazy=force or fstype == OVERLAY_TYPE)
    if why is not None:
        hint = "close the files and programs using it, or use --force"
        raise MountError(f"{path} could not be unmounted ({why}): {hint}")
    # After a lazy unmount, open files keep the daemon serving: stop it now.
    if rec is not None and (force or not wait_daemon(rec, STOP_WAIT)):
        stop_daemon(rec, STOP_WAIT)
    remove_record(path)
    return rec


@dataclass(frozen=True)
class MountStatus:
    """One line of ``dvfs mounts``: a record (or a bare table entry) and its state."""

    mountpoint: str
    source: str
    branch: str
    pid: int | None
    # "mounted", "stopped" (daemon stopped by a signal: Ctrl-Z, SIGSTOP; every look
    # into the mount waits), "dead" (daemon gone, mount left), "unrecorded"
    state: str
    cache_dir: str | None
    cache_used: int | None  # bytes, as cache_size
    cache_size: int | None
    work_dir: str | None = None  # where a writable mount keeps its changes

    def as_json(self) -> dict[str, Any]:
        """The status as a JSON object."""
        return asdict(self)


def statuses() -> list[MountStatus]:
    """Every dvfs mount of this namespace; records of mounts that are gone are pruned."""
    table = mount_table()
    out = []
    seen = set()
    for rec in all_records():
        mounted = table.get(rec.mountpoint) in FS_TYPES
        alive = daemon_alive(rec)
        if not mounted:
            if not alive:
                remove_record(Path(rec.mountpoint))
            continue
        seen.add(rec.mountpoint)
        cache = Path(rec.cache_dir)
        state = "dead" if not alive else "stopped" if process_stopped(rec.pid) else "mounted"
        out.append(
            MountStatus(
                rec.mountpoint, rec.source, rec.branch, rec.pid,
                state, rec.cache_dir,
                disk_usage(cache / "chunks"), rec.cache_size, rec.work_dir,
            )
        )  # fmt: skip
    overlays = {p for p, t in table.items() if t == OVERLAY_TYPE}
    for point, fstype in table.items():
        if os.path.dirname(point) in overlays and os.path.basename(point) == ".versions":
            continue  # a dvfs overlay's version list: part of that mount
        if fstype in FS_TYPES and point not in seen:
            out.append(MountStatus(point, "?", "?", None, "unrecorded", None, None, None))
    return sorted(out, key=lambda s: s.mountpoint)
