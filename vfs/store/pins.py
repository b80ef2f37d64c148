"""Pins: what a running process asks ``dvfs gc`` to keep, for as long as it runs.

A process that shows versions without holding the repository lock (a mount of a
repository pins the tips of every branch and tag its catalog shows,
``daemon.source``), or that stores objects before it takes the lock to name them
(``dvfs repro`` and ``dvfs exp run`` store outputs while stages run), pins them
here. ``dvfs gc`` keeps every version a live pin names, and does not run at all
while a "writing" pin lives (the writer may have skipped storing an object because
an unreachable copy was there, and name it once gc has deleted it); a pin whose
process is gone counts for nothing and is removed.

Layout: ``.dvfs/pins/<pid>-<16 hex>``, one file per pin (no other name is ever removed,
and a ``pins`` that is a symbolic link is refused: the directory is opened without
following a link and every pin is made, read and deleted relative to that descriptor,
so that a link swapped in meanwhile leads nothing out of the repository), written under a temporary
name, locked (``flock``, exclusive) by its process, then renamed into place, so a
pin is never seen unlocked while its process lives. The kernel drops the lock when
the process dies, so a stale pin is told by its lock being free. Format, text::

    dvfs pin 1
    since <unix time in ns when the pin was taken>
    writing 0|1
    <64 hex>            one line per pinned version (none for a writing pin)

A pin file is at most ``MAX_PIN`` bytes; a file that does not parse is reported by
``live_pins`` as damaged (gc then refuses to delete anything it cannot account for).
Only regular files are pins (``take`` makes no other kind): a directory, a symbolic
link or a FIFO there, whatever its name, pins nothing and is left as it is.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vfs._os.beneath import open_dir
from vfs.errors import FormatError
from vfs.model.ids import from_hex
from vfs.store.durable import TMP_PREFIX, storage_error

PINS_DIR = "pins"
MAX_PIN = 1 << 20
_MAGIC = "dvfs pin 1"
_NAME = re.compile(r"[0-9]{1,10}-[0-9a-f]{16}")  # <pid>-<16 hex>, as take() names a pin


def _open_pins(dvfs_dir: Path, *, make: bool = False) -> int:
    """A descriptor of ``.dvfs/pins`` (the caller closes it), opened without following
    a link (``make``: made if missing, else FileNotFoundError). FormatError if it is
    a symbolic link (a repository may come from anyone: stale pins are deleted there,
    and no link may lead that out of it) or not a directory."""
    d = dvfs_dir / PINS_DIR
    try:
        return open_dir(dvfs_dir, PINS_DIR, make=make)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
            raise
        if os.path.islink(d):  # (told apart after the open: nothing acts through it)
            raise FormatError(
                f"{d} is a symbolic link: dvfs follows no link out of the repository; "
                "remove it (the pins are made again)"
            ) from None
        raise FormatError(
            f"{d} is not a directory, where dvfs keeps the pins of running commands: "
            "move it away (the directory is made again)"
        ) from None


@dataclass(frozen=True)
class Pin:
    """One live pin: when it began, whether its process stores objects, its versions."""

    name: str
    since_ns: int
    writing: bool
    versions: tuple[bytes, ...]


def _encode(since_ns: int, writing: bool, versions: Iterable[bytes]) -> bytes:
    lines = [_MAGIC, f"since {since_ns}", f"writing {int(writing)}"]
    lines += [v.hex() for v in versions]
    return ("\n".join(lines) + "\n").encode()


def _decode(name: str, data: bytes) -> Pin:
    try:
        lines = data.decode("ascii").splitlines()
        if len(lines) < 3 or lines[0] != _MAGIC:
            raise ValueError("not a pin")
        since = int(lines[1].removeprefix("since "))
        writing = lines[2] == "writing 1"
        if not (lines[1].startswith("since ") and lines[2] in ("writing 0", "writing 1")):
            raise ValueError("bad fields")
        return Pin(name, since, writing, tuple(from_hex(x) for x in lines[3:]))
    except (UnicodeDecodeError, ValueError):
        raise FormatError(f"the pin {name} is damaged") from None


@contextlib.contextmanager
def pinned(
    dvfs_dir: Path, versions: Iterable[bytes] = (), *, writing: bool = False
) -> Iterator[Path]:
    """Hold a pin of ``versions`` (and, if ``writing``, of packs from now on) meanwhile."""
    path = take(dvfs_dir, versions, writing=writing)
    try:
        yield path
    finally:
        release(path)


_held: dict[Path, int] = {}


def take(dvfs_dir: Path, versions: Iterable[bytes] = (), *, writing: bool = False) -> Path:
    """Take a pin that lasts until :func:`release` or the end of this process
    (StorageFull if the disk is full)."""
    d = dvfs_dir / PINS_DIR
    try:
        dir_fd = _open_pins(dvfs_dir, make=True)
    except OSError as exc:
        raise storage_error(exc, f"a pin of the versions in use in {d}") from exc
    try:
        name = f"{os.getpid()}-{os.urandom(8).hex()}"
        tmp = f"{TMP_PREFIX}{name}"
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(tmp, flags, 0o644, dir_fd=dir_fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, _encode(time.time_ns(), writing, versions))
            os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise
    except OSError as exc:
        raise storage_error(exc, f"a pin of the versions in use in {d}") from exc
    finally:
        os.close(dir_fd)
    _held[d / name] = fd
    return d / name


def release(path: Path) -> None:
    """Drop a pin taken by this process (deleted in ``.dvfs/pins`` opened without
    following a link; where that cannot be opened, the pin is left: it counts for
    nothing once its lock goes, below, and gc removes it)."""
    with contextlib.suppress(OSError, FormatError):
        dir_fd = _open_pins(path.parent.parent)
        try:
            os.unlink(path.name, dir_fd=dir_fd)
        finally:
            os.close(dir_fd)
    fd = _held.pop(path, None)
    if fd is not None:
        os.close(fd)


def live_pins(dvfs_dir: Path, *, clean: bool = False) -> list[Pin]:
    """Every pin whose process still runs; with ``clean``, stale pins are removed.

    FormatError if a live pin does not parse: its process may rely on it.
    """
    d = dvfs_dir / PINS_DIR
    try:
        dir_fd = _open_pins(dvfs_dir)
    except FileNotFoundError:
        return []
    try:
        return _live(d, dir_fd, clean)
    finally:
        os.close(dir_fd)


def _live(d: Path, dir_fd: int, clean: bool) -> list[Pin]:
    """:func:`live_pins` in ``.dvfs/pins`` (``d``), open at ``dir_fd``."""
    out = []
    for name in sorted(os.listdir(dir_fd)):
        path = d / name
        try:
            flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
            fd = os.open(name, flags, dir_fd=dir_fd)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP):  # gone, or a link: no pin
                continue
            raise FormatError(f"the pin {path} cannot be read ({exc.strerror})") from None
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, a FIFO: no pin
                continue
            if path in _held:  # ours: flock would be granted to our own other descriptor
                data = os.pread(fd, MAX_PIN + 1, 0)
                out.append(_decode(name, data))
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: its process lives
                if name.startswith(TMP_PREFIX):
                    continue  # being taken: not a pin until it is renamed
                data = os.pread(fd, MAX_PIN + 1, 0)
                if len(data) > MAX_PIN:
                    raise FormatError(f"the pin {path} is too large") from None
                out.append(_decode(name, data))
                continue
            if clean and _NAME.fullmatch(name.removeprefix(TMP_PREFIX)):  # its process is gone
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=dir_fd)
        finally:
            os.close(fd)
    return out
