"""The daemon process: check, open the source, mount, serve, and unmount cleanly.

Start-up, in order: the mount point and FUSE are checked, the cache directory is
locked (one daemon per cache; ``dvfs mount`` locks it and hands the lock over with
``--cache-lock-fd``), the chunk cache takes stock (and makes room if its disk is
short of space, so that what follows can write), the source is opened and its
catalog built (a URL mount fetches versions and trees here), the filesystem is
mounted, the mount is
recorded (``vfs.mount.mounts``), and readiness is announced: one line on ``--ready-fd``
(``vfs.mount.launch`` documents it) and ``READY=1`` to systemd when ``NOTIFY_SOCKET`` is
set. A failure before that is one line: on the pipe, or ``dvfs: error: ...`` on
stderr in the foreground; the exit code is 1.

Serving: one trio run holds pyfuse3's main loop, the fetcher's nursery, a signal
watcher and, with ``--refresh``, a loop that rebuilds the catalog every so many
seconds (in a worker thread) and swaps it in if it changed.

The record names the branch served: a snapshot with ``--branch NEW`` rewrites it,
so ``dvfs mounts`` shows NEW from then on.

Stopping: SIGTERM, SIGINT or SIGHUP end the main loop; so does an unmount from
outside (``dvfs umount``). Either way the mount is released (if still there), the
record removed and systemd told ``STOPPING=1``. A daemon killed outright leaves a
dead mount; ``dvfs umount`` clears it.

Logging goes to stderr: the terminal in the foreground, ``daemon.log`` in the cache
directory otherwise (the CLI points stderr there); ``daemon.logs`` says what is
logged and what never is.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType

import pyfuse3
import trio

from daemon import logs
from daemon.control import Control, socket_path
from daemon.data.chunk_cache import ChunkCache
from daemon.data.fetcher import Fetcher
from daemon.data.record_cache import Records
from daemon.fs.catalog import Catalog
from daemon.fs.namespace import Layout
from daemon.fs.versions import VersionsFs
from daemon.fs.worktree import WorkingFs
from daemon.kernel_overlay import KernelMount
from daemon.kernel_overlay import usable as kernel_usable
from daemon.kernel_snapshot import UpperSnapshots
from daemon.overlay import Overlay, lock_work, work_dir_name
from daemon.overlay_snapshot import OverlaySnapshots
from daemon.snapshot import Snapshots
from daemon.source import RemoteSource, Source, open_source
from daemon.upper import UPPER, Layers
from daemon.upper_rebase import rebase
from vfs import (
    DIGESTS_NAME,
    DvfsError,
    MountError,
    MountRecord,
    MountSource,
    StorageFull,
    check_fuse,
    check_mountpoint,
    chunk_buffers_reused,
    claim_for_life,
    human_size,
    identity,
    is_mounted,
    open_kept,
    pipeline_file,
    private_dir,
    quote_name,
    remove_record,
    remove_tree,
    resolve_source,
    runtime_dir,
    work_root,
    write_record,
)

log = logging.getLogger("daemon")
OVERLAYS = ("auto", "kernel", "daemon")
JOBS = 8
RECORD_THREADS = 4


@dataclass(frozen=True)
class Options:
    """The daemon's command line (built by ``vfs.mount.launch.DaemonArgs``)."""

    source: str
    mountpoint: str
    cache_dir: Path
    cache_size: int
    branch: str | None
    refresh: float | None
    timeout: float
    endpoint_url: str | None
    allow_other: bool
    debug: bool
    ready_fd: int | None
    writable: bool = False
    lock_fd: int | None = None
    overlay: str = "auto"  # the writable tree's: "kernel", "daemon" or "auto" (see choose_overlay)


def parse(argv: list[str]) -> Options:
    """Options from ``argv`` (argparse exits with a usage message on bad ones)."""
    p = argparse.ArgumentParser(prog="python -m daemon", description="dvfs FUSE daemon")
    p.add_argument("--source", required=True)
    p.add_argument("--mountpoint", required=True)
    p.add_argument("--cache-dir", required=True, type=Path)
    p.add_argument("--cache-size", required=True, type=int)
    p.add_argument("--branch")
    p.add_argument("--refresh", type=float)
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--endpoint-url")
    p.add_argument("--allow-other", action="store_true")
    p.add_argument("--debug", action="store_true")
    p.add_argument("--ready-fd", type=int)
    p.add_argument("--writable", action="store_true")
    p.add_argument("--cache-lock-fd", type=int)
    p.add_argument("--overlay", choices=OVERLAYS, default="auto")
    a = p.parse_args(argv)
    return Options(
        a.source, a.mountpoint, a.cache_dir.absolute(), a.cache_size, a.branch, a.refresh,
        a.timeout, a.endpoint_url, a.allow_other, a.debug, a.ready_fd, a.writable,
        a.cache_lock_fd, a.overlay,
    )  # fmt: skip


def sd_notify(state: str) -> None:
    """Tell systemd about our state, if it started us with Type=notify."""
    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    with (
        contextlib.suppress(OSError),
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s,
    ):
        s.connect(addr)
        s.sendall(state.encode())


class Readiness:
    """The one line the starter waits for: on the ready pipe, or on stderr."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def _say(self, line: str) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.fd, (line.replace("\n", " ") + "\n").encode())
            os.close(self.fd)
        self.fd = None

    def ready(self, branch: str) -> None:
        self._say(f"ready {branch}")
        sd_notify(f"READY=1\nSTATUS=serving {branch}")

    def failed(self, message: str) -> None:
        if self.fd is None:
            print(f"dvfs: error: {message}", file=sys.stderr, flush=True)
        else:
            log.error("mount failed: %s", message)
        self._say(f"error {message}")
        sd_notify(f"STATUS=failed: {message}")


def lock_cache(cache_dir: Path, held: int | None = None) -> int:
    """Hold the cache directory's lock for the life of the process; MountError if taken.

    ``held``: the lock, taken by ``dvfs mount`` and handed over; it must be the lock
    file of ``cache_dir``, and it now names this process.
    """
    private_dir(cache_dir)
    lock = cache_dir / "lock"
    if held is not None:
        try:
            mine, there = os.fstat(held), lock.stat()
        except OSError as exc:
            raise MountError(f"--cache-lock-fd {held}: {exc.strerror}") from None
        if (mine.st_dev, mine.st_ino) != (there.st_dev, there.st_ino):
            raise MountError(f"--cache-lock-fd {held} is not the lock of {cache_dir}")
        os.set_inheritable(held, False)
        with contextlib.suppress(OSError):  # who holds it is a courtesy
            os.ftruncate(held, 0)
            os.pwrite(held, f"{os.getpid()}\n".encode(), 0)
        return held
    got = claim_for_life(lock, 0o600)
    if isinstance(got, str):
        raise MountError(
            f"the cache directory {cache_dir} is in use by another dvfs mount (pid {got}): "
            "pass another --cache-dir"
        )
    return got


def changed(old: Catalog, new: Catalog) -> bool:
    """True if a refreshed catalog names anything differently."""
    return (old.head, old.numbered, old.tags, old.branches) != (
        new.head, new.numbered, new.tags, new.branches,
    )  # fmt: skip


async def refresh_loop(fs: VersionsFs, source: Source, every: float) -> None:
    """Rebuild the catalog every ``every`` seconds; keep the old one if that fails, or
    if the branch was deleted meanwhile (until it is made again).

    A full disk makes the chunk cache give up room there, for the next round.
    """
    gone_said = False
    while True:
        await trio.sleep(every)
        try:
            new = await trio.to_thread.run_sync(source.catalog, abandon_on_cancel=True)
        except DvfsError as exc:
            log.warning("refresh failed (still serving what was known): %s", exc)
            cache = fs.fetcher.cache
            if isinstance(exc, StorageFull) and cache is not None:
                await trio.to_thread.run_sync(cache.shed, 0, source.repo.dir)
            continue
        except Exception:  # a bug must not take the mount down
            log.exception("refresh failed with an internal error")
            continue
        old = fs.layout.catalog
        if new.head is None and old.head is not None and new.branch == old.branch:
            # The branch was deleted (`dvfs push --delete`, `dvfs branch -d`): its versions
            # are still stored, and readers in the middle of a job must not find an empty
            # tree. The last catalog stays until the branch is made again.
            fs.layout.branch_deleted = True
            if not gone_said:
                log.warning(
                    "branch %s was deleted: still serving v%d (%s) as it was; umount, or "
                    "mount another branch",
                    old.branch, old.latest, old.head.hex()[:10],
                )  # fmt: skip
                gone_said = True
            continue
        gone_said = fs.layout.branch_deleted = False
        if changed(old, new):
            log.info("refreshed: %s is at v%d", new.branch, new.latest)  # (before MNT shows it)
            await fs.set_catalog(new)


async def watch_signals() -> None:
    """End the main loop on SIGTERM, SIGINT or SIGHUP (the mount is then released)."""
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
        async for signum in signals:
            log.info("%s received: unmounting", signal.Signals(signum).name)
            pyfuse3.terminate()


@dataclass
class Served:
    """What one daemon serves: the source, the FUSE filesystem, and how MNT is made."""

    mountpoint: Path  # MNT
    source: Source
    fs: VersionsFs
    snapshots: Snapshots | None = None  # a writable working tree's
    kernel: KernelMount | None = None  # MNT is the kernel's overlay over ``fs``

    @property
    def work(self) -> Path | None:
        """The working tree's work directory (None: read-only)."""
        return None if self.snapshots is None else self.snapshots.work


async def serve(
    served: Served,
    refresh: float | None,
    announce: Callable[[], None],
    ready: Readiness,
    mnt: Path,
) -> None:
    """Run the filesystem until it is unmounted or told to stop.

    ``announce`` says the mount is ready (once MNT is there: for a kernel overlay,
    after it is mounted over the running view). ``mnt``: MNT as the kernel shows it
    (resolved before mounting: resolving it now would ask this very process).
    """
    fs, source = served.fs, served.source
    async with trio.open_nursery() as nursery:
        await nursery.start(fs.fetcher.run)
        nursery.start_soon(watch_signals)
        if served.snapshots is not None:
            path = socket_path()  # runtime_dir() was checked by build()
            control = Control(path, served.snapshots, mnt, served.kernel)
            await nursery.start(control.run)
            fs.control_path = os.fsencode(path)
        if served.kernel is not None:
            nursery.start_soon(kernel_up, served.kernel, announce, ready)
        else:
            announce()
        if refresh:
            nursery.start_soon(refresh_loop, fs, source, refresh)
        await pyfuse3.main()
        nursery.cancel_scope.cancel()


async def kernel_up(kernel: KernelMount, announce: Callable[[], None], ready: Readiness) -> None:
    """Mount the kernel's overlay at MNT over the view now served; once it is gone (an
    unmount from outside), let go of the view, so that the FUSE session ends."""
    try:
        await trio.to_thread.run_sync(kernel.attach)
    except Exception as exc:
        if not isinstance(exc, DvfsError):
            log.exception("the kernel overlay could not be mounted")
        ready.failed(str(exc) if isinstance(exc, DvfsError) else f"internal error ({exc})")
        kernel.failed = True
        pyfuse3.terminate()
        return
    announce()
    await trio.to_thread.run_sync(kernel.wait_gone, abandon_on_cancel=True)
    async with kernel.guard:  # an unmount being answered is answered first
        log.info("%s was unmounted: letting go of the view", kernel.mnt)
        kernel.close()


def _stop_early(signum: int, frame: FrameType | None) -> None:
    """Before trio takes signals over: stop, so that the mount is cleaned up."""
    raise SystemExit(128 + signum)


def build(opts: Options) -> Served:
    """Check everything and open the source (blocking); DvfsError says what is wrong."""
    mountpoint = check_mountpoint(opts.mountpoint)
    check_fuse()
    runtime_dir()  # where the record and the control socket go: usable, and private
    lock_cache(opts.cache_dir, opts.lock_fd)
    # first: on a full disk it makes room for the metadata and the working tree
    cache = ChunkCache(opts.cache_dir / "chunks", opts.cache_size)
    where = resolve_source(opts.source)
    source = open_source(
        where.kind, where.location, opts.cache_dir, opts.branch, opts.endpoint_url, JOBS
    )
    catalog = source.catalog()
    fetcher = Fetcher(source.local, cache, source.remote, timeout=opts.timeout, net_threads=JOBS)
    layout = Layout(Records(source.history, trio.CapacityLimiter(RECORD_THREADS)), catalog)
    fetcher.made = layout.meta  # the YAML of .versions/meta (daemon.data.meta)
    marks = opts.cache_dir / DIGESTS_NAME  # files found true, across mounts
    if not opts.writable:
        return Served(mountpoint, source, VersionsFs(layout, fetcher, marks))
    work = work_dir(source, where, opts.cache_dir)
    lock = lock_work(work)
    if opts.overlay == "daemon" and Layers.exists(work) and kernel_usable() is None:
        # What the kernel's overlay recorded in its last snapshot is no change: drop it
        # from its upper layer, as its next mount would, before looking for changes.
        rebase(Layers(work, catalog.head, lock), source.history.tree, source.root_entry)
    if choose_overlay(opts.overlay, work) == "kernel":
        layers = Layers(work, catalog.head, lock)
        rebase(layers, source.history.tree, source.root_entry)
        if layers.base != catalog.head and layers.upper_empty():  # clean: follow the branch
            layers.set_base(catalog.head, catalog.head)
        layout.pin(layers.base)
        fs = VersionsFs(layout, fetcher, marks)
        kernel = KernelMount(mountpoint, layers, opts.allow_other)
        return Served(mountpoint, source, fs, UpperSnapshots(fs, source, layers), kernel)
    overlay = Overlay(work, catalog.head, source.root_entry, lock)
    wfs = WorkingFs(layout, fetcher, overlay, marks=marks)
    return Served(mountpoint, source, wfs, OverlaySnapshots(wfs, source, overlay))


def choose_overlay(asked: str, work: Path) -> str:
    """Which overlay makes MNT writable: "kernel" (overlayfs, for root) or "daemon".

    ``auto`` takes the kernel's where it can be used, unless the working tree holds
    changes made through the other kind (it keeps its kind until a snapshot records
    them). A clean work directory of the other kind is cleared for the one asked
    (its lock is held).
    """
    why = kernel_usable()
    upper = work / UPPER  # (removed by hand: nothing changed; Layers makes it again)
    kernel_dirty = Layers.exists(work) and upper.is_dir() and any(upper.iterdir())
    daemon_dirty = _daemon_changes(work)  # (without its state too: the overlay names that)
    if asked == "kernel" and why is not None:
        raise MountError(f"--overlay kernel: {why}; mount with --overlay daemon")
    if asked == "auto":
        asked = "kernel" if kernel_dirty or (why is None and not daemon_dirty) else "daemon"
    if asked == "kernel" and why is not None:
        raise MountError(
            f"{work} holds changes made through the kernel's overlay, which {why}: mount it as root"
        )
    if (asked == "kernel" and daemon_dirty) or (asked == "daemon" and kernel_dirty):
        other = "daemon's own overlay" if daemon_dirty else "kernel's overlay"
        raise MountError(
            f"{work} holds changes made through the {other}, or what no version records "
            "(hard links, owners, special files): mount without --overlay, snapshot what "
            "`dvfs status MNT` lists and undo the rest first"
        )
    try:  # (cleared through a descriptor: a link swapped in on the way is never followed)
        fd = open_kept(work)
    except OSError as exc:
        raise MountError(
            f"the working tree {quote_name(str(work))} cannot be opened without following a "
            f"symbolic link ({exc.strerror}): dvfs follows no link out of the repository; "
            "remove the link, then mount again"
        ) from None
    try:
        for name in ("layers", "pending", "upper", "scratch") if asked == "daemon" else ("state",):
            remove_tree(fd, name, strict=True)
        prefix = "journal." if asked == "kernel" else "recorded."
        for name in os.listdir(fd):
            if name.startswith(prefix):  # the daemon's clean journal, the kernel's records
                os.unlink(name, dir_fd=fd)
        if asked == "kernel":  # and the daemon's empty data/
            with contextlib.suppress(FileNotFoundError):
                os.rmdir("data", dir_fd=fd)
    finally:
        os.close(fd)
    return asked


def _daemon_changes(work: Path) -> bool:
    """True if a work directory of the daemon's overlay records any change."""
    return any(f.stat().st_size for f in work.glob("journal.*")) or any((work / "data").glob("*"))


def work_dir(source: Source, where: MountSource, cache_dir: Path) -> Path:
    """Where a source's branch keeps its working tree (``daemon.overlay``).

    In the repository for a repository mount, and in the user's data directory for a
    URL mount (``vfs.mount.launch.work_root``): never in a cache, which may be cleared to
    free space, and found by any cache directory. A working tree an older version
    kept in the cache directory (``work/<branch>``) is moved there first; if it
    cannot be (another filesystem), it is used where it is.
    """
    name = work_dir_name(source.branch)
    if not isinstance(source, RemoteSource):
        top = source.repo.dir / "worktrees"
        for p in (top, top / name):  # (the repository may come from anyone: no link out)
            if p.is_symlink():
                raise MountError(
                    f"{quote_name(str(p))} is a symbolic link, and a mount's working tree "
                    "is kept inside the repository: dvfs follows no link out of it; "
                    "remove the link, then mount again"
                )
        return top / name
    work = work_root(where) / name
    legacy = cache_dir / "work" / name
    if legacy.is_dir() and not work.exists():
        private_dir(work.parent)
        try:
            os.rename(legacy, work)
        except OSError as exc:
            log.warning("the working tree stays in %s (it could not move to %s: %s)",
                        legacy, work, exc.strerror)  # fmt: skip
            return legacy
        log.info("the working tree moved from %s to %s", legacy, work)
        with contextlib.suppress(OSError):
            (cache_dir / "work").rmdir()
    elif legacy.is_dir():
        log.warning("%s holds an older working tree of %s; %s is used", legacy, name, work)
    return work


def main(argv: list[str] | None = None) -> int:
    """Run the daemon; the exit code is 0 after a clean unmount, 1 if it failed."""
    opts = parse(sys.argv[1:] if argv is None else argv)
    chunk_buffers_reused()  # before any thread: chunk buffers come from a reused heap
    logs.configure(sys.stderr, opts.debug)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_early)
    ready = Readiness(opts.ready_fd)
    try:
        served = build(opts)
        mountpoint, source, fs, kernel = served.mountpoint, served.source, served.fs, served.kernel
        os.chdir("/")  # every path is absolute now; hold no directory busy
        # The kernel checks modes; no setuid file or device node of a version takes
        # effect (libfuse sets nosuid and nodev already: said here so it stays).
        options = {"default_permissions", "nosuid", "nodev", "fsname=dvfs", "subtype=dvfs"}
        if opts.allow_other:
            options.add("allow_other")
        # where FUSE mounts: MNT, or the private mount point of a kernel overlay's view
        fuse_at = mountpoint if kernel is None else kernel.prepare()
        # for the kernel read-ahead (widened at FUSE INIT) and the control socket; as the
        # kernel shows them, and resolved now: later, resolving them would ask us
        fs.mountpoint = Path(os.path.realpath(fuse_at))
        mnt = Path(os.path.realpath(mountpoint))
        try:
            pyfuse3.init(fs, str(fuse_at), options)
        except RuntimeError as exc:
            raise MountError(f"could not mount {fuse_at}: {exc} (see the log)") from None
    except DvfsError as exc:
        ready.failed(str(exc))
        return 1
    except Exception as exc:  # the last line of defence: one line, and the traceback logged
        log.exception("start-up failed")
        ready.failed(f"internal error ({type(exc).__name__}: {exc})")
        return 1
    work = served.work
    start, boot = identity(os.getpid())
    record = MountRecord(
        str(mountpoint), source.description, source.branch, os.getpid(), start, boot,
        str(opts.cache_dir), opts.cache_size,
        str(opts.cache_dir / "daemon.log") if opts.ready_fd is not None else None,
        datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        None if work is None else str(work),
    )  # fmt: skip

    def announce() -> None:
        write_record(record)
        cache = fs.fetcher.cache
        how = " (the kernel's overlay)" if kernel is not None else ""
        log.info(
            "mounted %s (branch %s, v%d) at %s%s; chunk cache %s of %s",
            source.description, source.branch, fs.layout.catalog.latest, mountpoint, how,
            human_size(cache.usage() if cache else 0), human_size(opts.cache_size),
        )  # fmt: skip
        ready.ready(source.branch)

    def on_branch(branch: str) -> None:  # its working tree moved along
        write_record(replace(record, branch=branch, work_dir=str(served.work)))

    if served.snapshots is not None:
        served.snapshots.on_branch = on_branch
        served.snapshots.writing = pipeline_file(mountpoint, "writing")  # (see take)
    try:
        trio.run(serve, served, opts.refresh, announce, ready, mnt)
    except (SystemExit, KeyboardInterrupt):
        log.info("stopped by a signal: unmounting")
    finally:
        sd_notify("STOPPING=1")
        if kernel is not None:
            kernel.detach()
        pyfuse3.close(unmount=kernel is None and is_mounted(mountpoint))
        if isinstance(fs, WorkingFs):
            fs.overlay.close()
        if kernel is not None:
            kernel.layers.close()
        remove_record(mountpoint, os.getpid())
        if fs.fetcher.cache is not None:  # the chunks served and not cached yet are written
            fs.fetcher.cache.close()
        fs.digests.close()  # and the marks of the files found true
        st = fs.fetcher.stats
        log.info(
            "unmounted %s; %d chunks (%s) fetched from the remote in %d requests, "
            "%d reads timed out",
            mountpoint, st.remote_chunks, human_size(st.remote_bytes), st.remote_gets,
            st.timeouts,
        )  # fmt: skip
    return 1 if kernel is not None and kernel.failed else 0
