"""MNT as the kernel's overlayfs over the daemon's read-only view (root mounts).

Why: every change made through a FUSE mount costs round trips through this process
(about 12 per small file for ``tar x``), which keeps a Python daemon at a tenth of the
disk's speed for many small files; overlayfs makes every change in the kernel, on a
local directory, at about the disk's speed, with the kernel's own ownership, links,
special files and times (``docs/architecture.md``, "Decisions", has the figures).
It needs root, so the daemon's own overlay (``daemon.overlay``) stays for everyone else.

How a mount is put together, in order:

1. The daemon mounts its FUSE view at a private directory (``<runtime>/lower-<pid>``,
   mode 0700). Its root shows the *base* version (``daemon.upper.Layers``) and never
   changes while mounted (overlayfs forbids a lower layer to change); ``.versions``
   is found there by name and not listed, as in any mount.
2. Once the daemon serves requests (the overlay looks into its lower layer while
   being mounted), a thread mounts overlayfs at MNT with that view as its lower
   layer, ``upper/`` and ``scratch/`` of the work directory as its upper and work
   directories, ``redirect_dir``, ``metacopy`` and ``index`` off (an upper entry then
   never names another path, see ``daemon.upper``), ``nosuid`` and ``nodev``, and
   ``dvfs`` as its source (``dvfs mounts`` tells it by that).
3. The view's ``.versions`` is bind-mounted on ``MNT/.versions`` (so the version list
   and ``.versions/.control`` are the daemon's, read-only, and writes there are
   EROFS rather than copied up), and the private mount point is detached: nothing
   else shows the view.

The daemon keeps a detached copy of the view's ``.versions``, to mount it again if
an unmount finds MNT busy after ``.versions`` was already unmounted, and watches the
mount table: once MNT's overlay is gone (``dvfs umount``, ``umount -l``), it lets go
of that copy, the kernel ends the FUSE session when the last user of the view
leaves, and the daemon exits, as after the unmount of a FUSE mount.

``dvfs umount MNT`` asks the daemon (its control socket) to unmount: ``.versions``
then MNT, each refused while busy (and ``.versions`` put back if MNT is); with
``--force`` both are detached at once. A daemon that died leaves the overlay mounted
(the upper layer is the kernel's: nothing acknowledged is lost); ``dvfs umount``
detaches it and the next mount shows every change.

Without ``--allow-other`` MNT's top directory loses its group and other permission
bits at mount (only the mounting user may enter, as with FUSE); with it they are put
back (0755) if they were all off, and the view admits other users too.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
from pathlib import Path

import trio

from daemon.upper import Layers
from vfs import (
    MountError,
    fsconfig_create,
    fsconfig_string,
    fsmount,
    fsopen,
    move_mount,
    open_tree_clone,
    runtime_dir,
    umount2,
)

log = logging.getLogger(__name__)
SOURCE = "dvfs"  # the overlay's source in the mount table
VERSIONS = ".versions"


def _messages(fs_fd: int) -> str:
    """What the filesystem said about a failed configuration (the context's log)."""
    out: list[str] = []
    with contextlib.suppress(OSError):
        while True:
            line = os.read(fs_fd, 4096)
            if not line:
                break
            out.append(line.decode(errors="replace").rstrip("\n").lstrip("ewi "))
    return "; ".join(out)


def usable() -> str | None:
    """Why MNT cannot be the kernel's overlayfs here (None: it can)."""
    if os.geteuid() != 0:
        return "it needs root"
    try:
        fd = fsopen(b"overlay")
    except OSError as exc:
        if exc.errno == errno.ENOSYS:
            return "this kernel lacks the mount API it needs (Linux 5.2 or later)"
        return f"overlayfs is not available ({exc.strerror})"
    os.close(fd)
    return None


def mount_overlay(mnt: Path, lower: Path, upper: Path, scratch: Path) -> None:
    """Mount overlayfs at ``mnt`` (see step 2 of the module docstring); MountError if not."""
    fd = fsopen(b"overlay")
    try:
        escaped = os.fsencode(lower).replace(b"\\", b"\\\\").replace(b":", b"\\:")
        settings = [
            (b"source", SOURCE.encode()), (b"lowerdir", escaped),
            (b"upperdir", os.fsencode(upper)), (b"workdir", os.fsencode(scratch)),
            (b"redirect_dir", b"off"), (b"metacopy", b"off"), (b"index", b"off"),
        ]  # fmt: skip
        try:
            for key, value in settings:
                fsconfig_string(fd, key, value)
            fsconfig_create(fd)
            mfd = fsmount(fd, nosuid=True, nodev=True)
        except OSError as exc:
            said = _messages(fd)
            raise MountError(
                f"could not mount the kernel's overlay at {mnt}: "
                f"{said or exc.strerror} (mount with --overlay daemon to use the daemon's own)"
            ) from None
    finally:
        os.close(fd)
    try:
        move_mount(mfd, mnt)
    finally:
        os.close(mfd)


def clone_tree(path: Path) -> int:
    """A detached copy of the mount at ``path`` (a directory), to mount elsewhere later."""
    return open_tree_clone(path)


def place_tree(tree: int, dst: Path) -> None:
    """Mount the detached tree ``tree`` (from :func:`clone_tree`) on ``dst``."""
    move_mount(tree, dst)


def umount(path: Path, *, lazy: bool = False) -> int:
    """umount2(2); 0 on success, else the errno."""
    return umount2(path, lazy=lazy)


def mount_id(mnt: Path) -> int | None:
    """The id of the dvfs overlay mounted at ``mnt`` (None: there is none)."""
    want = os.fsencode(mnt).replace(b"\\", b"\\134").replace(b" ", b"\\040")
    want = want.replace(b"\t", b"\\011").replace(b"\n", b"\\012")
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            left, _, right = line.partition(b" - ")
            fields, tail = left.split(b" "), right.split(b" ")
            if len(fields) > 4 and fields[4] == want and tail[:2] == [b"overlay", b"dvfs"]:
                return int(fields[0])
    return None


def clear_stale_lowers() -> None:
    """Detach and remove private mount points left by daemons that died (step 1)."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(runtime_dir()):
            if not entry.name.startswith("lower-"):
                continue
            pid = entry.name.removeprefix("lower-")
            if pid.isdigit() and os.path.exists(f"/proc/{pid}"):
                continue
            umount(Path(entry.path), lazy=True)
            with contextlib.suppress(OSError):
                os.rmdir(entry.path)


class KernelMount:
    """The overlay at MNT, its ``.versions``, and the daemon's hold on them (blocking
    methods, called from worker threads)."""

    def __init__(self, mnt: Path, layers: Layers, allow_other: bool) -> None:
        self.mnt = mnt
        self.layers = layers
        self.allow_other = allow_other
        self.lower = runtime_dir() / f"lower-{os.getpid()}"
        self._spare = -1  # a detached copy of the view's .versions (see attach)
        self._id: int | None = None
        self._stop = False
        self.failed = False  # the overlay could not be mounted
        # held while an unmount is answered: the view is let go of (and the daemon
        # ends) only once the answer is sent
        self.guard = trio.Lock()

    def prepare(self) -> Path:
        """The private mount point for the view (made empty); set MNT's top mode."""
        clear_stale_lowers()
        with contextlib.suppress(FileNotFoundError):
            os.rmdir(self.lower)
        os.mkdir(self.lower, 0o700)
        top = self.layers.upper
        mode = os.stat(top).st_mode & 0o7777
        if not self.allow_other and mode & 0o077:
            os.chmod(top, mode & ~0o077)
        elif self.allow_other and not mode & 0o077:
            os.chmod(top, mode | 0o055)
        return self.lower

    def attach(self) -> None:
        """Steps 2 and 3 (the view is served by now); MountError if the overlay fails.

        A spare copy of ``.versions`` is kept (taken while the view is still mounted
        here: a detached mount cannot be copied), to put it back if an unmount finds
        MNT busy.
        """
        layers = self.layers
        shutil.rmtree(layers.scratch / "work", ignore_errors=True)  # the kernel's leftovers
        mount_overlay(self.mnt, self.lower, layers.upper, layers.scratch)
        try:
            tree = clone_tree(self.lower / VERSIONS)
            try:
                place_tree(tree, self.mnt / VERSIONS)
            finally:
                os.close(tree)
            self._spare = clone_tree(self.lower / VERSIONS)
        except BaseException:
            umount(self.mnt, lazy=True)
            self.close()
            raise
        self._id = mount_id(self.mnt)
        umount(self.lower, lazy=True)
        with contextlib.suppress(OSError):
            os.rmdir(self.lower)

    def unmount(self, force: bool) -> None:
        """Unmount MNT (``.versions`` first); MountError, all left mounted, if busy.

        The view is let go of by whoever waits in :meth:`wait_gone`."""
        if force:
            umount(self.mnt, lazy=True)
            return
        code = umount(self.mnt / VERSIONS)
        if code == 0:
            code = umount(self.mnt)
            if code != 0 and self._spare >= 0:  # put .versions back, and keep a spare
                with contextlib.suppress(OSError):
                    place_tree(self._spare, self.mnt / VERSIONS)
                    os.close(self._spare)
                    self._spare = -1
                    self._spare = clone_tree(self.mnt / VERSIONS)
        if code != 0:
            raise MountError(
                f"{self.mnt} could not be unmounted ({os.strerror(code)}): close the files "
                "and programs using it, or use --force"
            )

    def wait_gone(self) -> None:
        """Return once MNT's overlay is no longer mounted (or :meth:`close` was called)."""
        with open("/proc/self/mountinfo", "rb") as table:
            poller = select.poll()
            poller.register(table, select.POLLPRI)
            while not self._stop and self._id is not None:
                if mount_id(self.mnt) != self._id:
                    break
                poller.poll(1000)  # the table changed (or a second passed): look again
                table.seek(0)
                table.read()

    def close(self) -> None:
        """Let go of the view (the FUSE session ends once nothing else uses it)."""
        self._stop = True
        if self._spare >= 0:
            with contextlib.suppress(OSError):
                os.close(self._spare)
            self._spare = -1

    def detach(self) -> None:
        """The daemon is stopping: detach MNT (lazily, as libfuse does for root)."""
        if self._id is not None and mount_id(self.mnt) == self._id:
            umount(self.mnt, lazy=True)
        umount(self.lower, lazy=True)
        with contextlib.suppress(OSError):
            os.rmdir(self.lower)
        self.close()
