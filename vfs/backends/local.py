"""The local directory backend: ``file://`` remotes and the default store in tests.

Layout: the object under key ``a/b/c`` is the file ``<root>/a/b/c``. Names starting
with ``.`` are the backend's own and never keys (``validate_key`` rejects them):
temporary files ``.tmp-<name>.<random>`` next to their target while a put is under
way (left behind only by a crash, and never listed), and ``<root>/.cas.lock``.

- **put**: temporary file, fsync, rename over the real name, fsync the directory
  (``vfs.durable.write_atomic``); a reader opens either the old file or the new one.
  New directories are fsynced into their parents too, so a put that returned
  survives a power cut.
- **get**: one ``pread`` of the requested range; nothing else of the file is read.
- **ETag**: BLAKE3 hex of the content. Content-derived, like S3's MD5 ETag, so an
  unchanged value keeps its ETag; stat-derived tags (inode, mtime, size) were
  rejected because a renamed-over inode can be reused within one mtime tick with a
  different content of the same size. ``head`` therefore reads the file (about 4 ms
  per 16 MiB pack at BLAKE3 speed); it is meant for refs and sizes, not hot paths.
- **put_conditional** holds an exclusive ``fcntl.flock`` on ``<root>/.cas.lock``
  while it compares the current ETag and writes, so conditional writers in any
  number of threads and processes on this machine are serialised. (flock locks an
  open file description: each call opens the lock file itself, so threads of one
  process exclude each other too.) A plain ``put`` does not take the lock; mixing
  plain and conditional writes on one key gives no compare-and-swap guarantee.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import blake3

from vfs.backends.base import (
    Backend,
    ObjectInfo,
    check_conditions,
    check_range,
    validate_key,
    validate_prefix,
)
from vfs.durable import fsync_dir, storage_error, write_atomic
from vfs.errors import (
    PreconditionFailed,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    StorageFull,
)

_LOCK_NAME = ".cas.lock"
_READ_BLOCK = 1 << 20


class LocalBackend(Backend):
    """Objects as files under one directory; see the module docstring."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = root.absolute()
        self.url = self.root.as_uri()
        if create:
            with self._mapped("the directory", writing=True):
                _make_dirs(self.root)
        if not self.root.is_dir():
            raise RemoteNotFound(
                f"directory {self.root} does not exist: create it or check the remote URL"
            )

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._mapped(key, writing=True):
            _make_dirs(path.parent)
            write_atomic(path, data, sync=True)

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        check_range(start, length)
        path = self._path(key)
        with self._mapped(key):
            fd = _open_regular(path)
            try:
                if length is None:
                    length = max(0, os.fstat(fd).st_size - start)
                parts = []
                while length > 0:
                    part = os.pread(fd, length, start)
                    if not part:
                        break
                    parts.append(part)
                    start += len(part)
                    length -= len(part)
                return b"".join(parts)
            finally:
                os.close(fd)

    def head(self, key: str) -> ObjectInfo:
        path = self._path(key)
        with self._mapped(key):
            fd = _open_regular(path)
            try:
                return ObjectInfo(size=os.fstat(fd).st_size, etag=_etag_of_fd(fd))
            finally:
                os.close(fd)

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        folder, _, start = prefix.rpartition("/")
        base = f"{folder}/" if folder else ""
        with self._mapped(prefix or "the directory"):
            yield from _walk(self.root / folder, base, start)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._mapped(key), contextlib.suppress(FileNotFoundError, NotADirectoryError):
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                os.unlink(path)

    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        check_conditions(if_match, if_none_match)
        path = self._path(key)
        with self._mapped(key, writing=True):
            lock_fd = os.open(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                current = self._current_etag(path)
                if if_none_match and current is not None:
                    raise PreconditionFailed(
                        f"{key} already exists in {self.url}: someone else created it first"
                    )
                if if_match is not None and current != if_match:
                    raise PreconditionFailed(
                        f"{key} in {self.url} was changed by someone else: read it again"
                    )
                _make_dirs(path.parent)
                write_atomic(path, data, sync=True)
            finally:
                os.close(lock_fd)  # closing the last descriptor releases the flock
        return blake3.blake3(data).hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def _current_etag(self, path: Path) -> str | None:
        try:
            fd = _open_regular(path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            return _etag_of_fd(fd)
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _mapped(self, key: str, *, writing: bool = False) -> Iterator[None]:
        """Turn OSError into the backend's ``vfs.errors`` types, naming ``key``."""
        try:
            yield
        except (FileNotFoundError, NotADirectoryError) as exc:
            if writing and isinstance(exc, NotADirectoryError):
                raise _clash(key, self.url) from exc
            raise RemoteNotFound(f"{key} not found in {self.url}") from exc
        except (IsADirectoryError, FileExistsError) as exc:
            raise _clash(key, self.url) from exc
        except PermissionError as exc:
            raise RemoteAuthError(
                f"no permission to access {key} in {self.url}: check the directory's owner and mode"
            ) from exc
        except OSError as exc:
            full = storage_error(exc, f"{key} to {self.url}")
            if isinstance(full, StorageFull):
                raise full from exc
            raise RemoteError(f"could not access {key} in {self.url}: {exc.strerror}") from exc


def _clash(key: str, url: str) -> RemoteError:
    return RemoteError(
        f"cannot store {key} in {url}: a key and a folder of the same name clash "
        "(like 'a' and 'a/b'); use another name"
    )


def _open_regular(path: Path) -> int:
    """Open ``path`` for reading; a directory counts as missing (it is no object)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise FileNotFoundError(path)
    return fd


def _etag_of_fd(fd: int) -> str:
    hasher = blake3.blake3()
    offset = 0
    while block := os.pread(fd, _READ_BLOCK, offset):
        hasher.update(block)
        offset += len(block)
    return hasher.hexdigest()


def _make_dirs(path: Path) -> None:
    """Create ``path`` and missing parents, each fsynced into its parent."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir()
        fsync_dir(folder.parent)


def _walk(folder: Path, base: str, start: str) -> Iterator[str]:
    """Yield ``base + name`` for files under ``folder`` whose name starts with ``start``."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if entry.name.startswith(".") or not entry.name.startswith(start):
            continue
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), f"{base}{entry.name}/", "")
        elif entry.is_file(follow_symlinks=False):
            yield base + entry.name
