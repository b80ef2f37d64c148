"""The local directory backend: ``file://`` remotes and the default store in tests.

Layout: the object under key ``a/b/c`` is the file ``<root>/a/b/c``. Names starting
with ``.`` are the backend's own and never keys (``validate_key`` rejects them):
temporary files ``.tmp-<name>.<random>`` next to their target while a put is under
way (left behind only by a crash, never listed, removed by ``dvfs gc --remote``
once old: ``remove_temporaries``), and ``<root>/.cas.lock``.

A remote directory may be shared with people who do not trust each other, so nothing
inside it is taken on trust:

- **No symbolic links are followed** below the root (the root itself is the user's
  choice). Every key is resolved one component at a time from a descriptor of the
  root, each opened with ``O_NOFOLLOW``, and every file is created relative to the
  descriptor of its directory: a ``packs`` or ``refs/heads`` that is a link, or one
  swapped for a link while a command runs, is refused with a clear error instead of
  being written through. A listing names a link as a key, never entering it: it is
  refused when read, so one link among the refs makes that ref skipped, not the fetch fail.
- **Only regular files are objects.** A key is checked with ``fstatat`` before it is
  opened, and opened with ``O_NONBLOCK`` (checked again on the descriptor), so a FIFO
  or a device in place of a pack or a ref is refused at once instead of hanging the
  reader; a directory counts as a missing key.
- **Sizes are known before reading**: ``get`` never reads past the end the file had
  when opened, and ``get_small`` refuses an object larger than its limit from its
  size alone, so a sparse 20 GB file in place of a 100-byte record costs nothing.

Operations:

- **put**: temporary file, fsync, rename over the real name, fsync the directory;
  a reader opens either the old file or the new one. New directories are fsynced
  into their parents too, so a put that returned survives a power cut.
- **create_many**: exclusive creates of many keys under one hold of the lock below:
  temporary files fsynced, each linked to its key (the link fails if the key exists),
  each folder fsynced once.
- **list**: each folder read as its names are asked for, in the order the directory
  gives them (never read whole and sorted first), so that a caller that stops past a
  bound (``vfs.remote.layout.MAX_PACKS``) has read no more names than that.
- **get**: one ``pread`` of the requested range; nothing else of the file is read.
- **get_parts**: the file opened once, each piece read (``pread``) when it is asked
  for, so a reader holds one piece at a time, never the whole range.
- **ETag**: BLAKE3 hex of the content. Content-derived, like S3's MD5 ETag, so an
  unchanged value keeps its ETag; stat-derived tags (inode, mtime, size) were
  rejected because a renamed-over inode can be reused within one mtime tick with a
  different content of the same size. ``head`` therefore reads the file (about 4 ms
  per 16 MiB pack at BLAKE3 speed, once it is out of the page cache a disk's speed); it
  is meant for refs. ``stat`` (and ``list_info(etags=False)``) gives size and mtime from
  ``fstat`` alone, reading nothing: the sizes of packs are taken that way.
  A file over 1 GiB (no record dvfs writes; only a damaged or hostile remote holds
  one) is not read: its ETag is made of its ``fstat`` fields.
- **put_conditional** holds an exclusive ``fcntl.flock`` on ``<root>/.cas.lock``
  while it compares the current ETag and writes, so conditional writers in any
  number of threads and processes on this machine are serialised. (flock locks an
  open file description: each call opens the lock file itself, so threads of one
  process exclude each other too.) A plain ``put`` does not take the lock; mixing
  plain and conditional writes on one key gives no compare-and-swap guarantee.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

import blake3

from vfs.backends.base import (
    Backend,
    ObjectInfo,
    check_conditions,
    check_range,
    too_large,
    validate_key,
    validate_prefix,
)
from vfs.errors import (
    PreconditionFailed,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemoteObjectRefused,
    StorageFull,
)
from vfs.quoting import quote_name
from vfs.store.durable import fsync_dir, many_at_once, storage_error, tmp_leaf

_LOCK_NAME = ".cas.lock"
_READ_BLOCK = 1 << 20
_HASHED = 1 << 30  # bytes of a file hashed for its ETag at most (see _etag_of_fd)
MAX_DEPTH = 128  # folders below the root a listing goes into (a ref name has at most 100)
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | os.O_NOFOLLOW
_FILE = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class LocalBackend(Backend):
    """Objects as files under one directory; see the module docstring."""

    def __init__(self, root: Path, *, create: bool = False) -> None:
        self.root = root.absolute()
        self.url = self.root.as_uri()
        above = next((p for p in (self.root, *self.root.parents) if os.path.lexists(p)), None)
        if above is not None and not above.is_dir():  # (a file: not "does not exist")
            where = "" if above == self.root else f" (above {self.root})"
            raise RemoteNotFound(
                f"{quote_name(str(above))}{where} is not a directory: a directory remote "
                "needs one there; check the remote URL"
            )
        if create:
            with self._mapped("the directory", writing=True):
                _make_dirs(self.root)
        if not self.root.is_dir():
            raise RemoteNotFound(
                f"directory {self.root} does not exist: create it or check the remote URL"
            )
        st = os.stat(self.root)
        self._identity = (st.st_dev, st.st_ino)

    def put(self, key: str, data: bytes) -> None:
        with self._mapped(key, writing=True), self._parent(key, make=True) as (fd, name):
            _write_at(fd, name, data)

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        check_range(start, length)
        with self._mapped(key), self._object(key) as fd:
            left = max(0, os.fstat(fd).st_size - start)
            return _read(fd, start, left if length is None else min(length, left))

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        check_range(start, 0)
        with self._mapped(key), self._object(key) as fd:
            end = os.fstat(fd).st_size
            for n in lengths:
                check_range(start, n)
                yield _read(fd, start, max(0, min(n, end - start)))
                start += n

    def get_small(self, key: str, limit: int) -> bytes:
        with self._mapped(key), self._object(key) as fd:
            size = os.fstat(fd).st_size
            if size > limit:
                raise too_large(key, self.url, limit)
            return _read(fd, 0, size)

    reads_in_bulk = True

    def get_small_many(
        self, keys: Sequence[str], limit: int, jobs: int = 16
    ) -> list[bytes | RemoteError | None]:
        """:meth:`get_small` of each key, in this thread: each folder is opened once
        (from the root, without following a link) and its files read in turn from its
        descriptor, each checked as :meth:`_object` checks it and refused past
        ``limit`` from its size. A clone of 2,000 tags opened the folders above each
        tag again for each, 16 threads at a time."""
        got: dict[str, bytes | RemoteError | None] = {}
        by_folder: dict[str, list[str]] = {}
        for key in keys:
            folder, _, name = validate_key(key).rpartition("/")
            by_folder.setdefault(folder, []).append(name)
        for folder, names in by_folder.items():
            base = f"{folder}/" if folder else ""
            try:
                with self._mapped(folder or "the directory"):
                    fd = self._descend(folder.split("/") if folder else [], make=False)
            except RemoteNotFound:
                got.update(dict.fromkeys((base + n for n in names), None))
                continue
            except RemoteError as exc:  # (a link where a folder belongs)
                got.update(dict.fromkeys((base + n for n in names), exc))
                continue
            try:
                for name in names:
                    key = base + name
                    try:
                        with self._mapped(key), self._object_at(fd, name, key) as file:
                            size = os.fstat(file).st_size
                            if size > limit:
                                raise too_large(key, self.url, limit)
                            got[key] = _read(file, 0, size)
                    except RemoteNotFound:
                        got[key] = None
                    except RemoteError as exc:
                        got[key] = exc
            finally:
                os.close(fd)
        return [got[key] for key in keys]

    def head(self, key: str) -> ObjectInfo:
        with self._mapped(key), self._object(key) as fd:
            st = os.fstat(fd)
            return ObjectInfo(size=st.st_size, etag=_etag_of_fd(fd), modified=st.st_mtime)

    def stat(self, key: str) -> ObjectInfo:
        """Size and mtime from ``fstat``, no ETag: nothing of the file is read."""
        with self._mapped(key), self._object(key) as fd:
            st = os.fstat(fd)
            return ObjectInfo(size=st.st_size, etag="", modified=st.st_mtime)

    def list(self, prefix: str = "") -> Iterator[str]:
        validate_prefix(prefix)
        folder, _, start = prefix.rpartition("/")
        base = f"{folder}/" if folder else ""
        with self._mapped(prefix or "the directory"):
            try:
                fd = self._descend(folder.split("/") if folder else [], make=False)
            except (FileNotFoundError, NotADirectoryError):
                return
            try:
                yield from self._walk(fd, base, start)
            finally:
                os.close(fd)

    def delete(self, key: str) -> None:
        with (
            self._mapped(key),
            contextlib.suppress(FileNotFoundError, NotADirectoryError),
            self._parent(key, writing=True) as (fd, name),
        ):
            if not stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                os.unlink(name, dir_fd=fd)

    def delete_conditional(self, key: str, *, if_match: str) -> None:
        validate_key(key)
        with self._mapped(key, writing=True), self._key_lock():
            if self._current_etag(key) != if_match:
                raise PreconditionFailed(
                    f"{key} in {self.url} was changed or removed by someone else: read it again"
                )
            with self._parent(key) as (fd, name):
                os.unlink(name, dir_fd=fd)
                os.fsync(fd)  # the removal is durable before the caller reports it
            self._drop_empty_folders(key.split("/")[:-1])

    def _drop_empty_folders(self, parts: Sequence[str]) -> None:
        """Remove the folders of a deleted key that it left empty, deepest first, so that
        a key of their name can be made (a branch ``team`` after ``team/a`` went).

        Only conditional deletes (refs) do this, under the lock every write of a ref
        holds; plain puts (packs, segments) never write beside them.
        """
        while parts:
            try:
                fd = self._descend(parts[:-1], make=False)
            except FileNotFoundError:
                return
            try:
                os.rmdir(parts[-1], dir_fd=fd)
                os.fsync(fd)
            except OSError:
                return  # not empty (or gone): the folders above are not empty either
            finally:
                os.close(fd)
            parts = parts[:-1]

    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        check_conditions(if_match, if_none_match)
        validate_key(key)
        with self._mapped(key, writing=True), self._key_lock():
            current = self._current_etag(key)
            if if_none_match and current is not None:
                raise PreconditionFailed(
                    f"{key} already exists in {self.url}: someone else created it first"
                )
            if if_match is not None and current != if_match:
                raise PreconditionFailed(
                    f"{key} in {self.url} was changed by someone else: read it again"
                )
            with self._parent(key, make=True) as (fd, name):
                _write_at(fd, name, data)
        return blake3.blake3(data).hexdigest()

    writes_in_bulk = True

    def create_many(
        self, items: Sequence[tuple[str, bytes]], *, in_order: bool = False, jobs: int = 1
    ) -> Sequence[bool]:
        """``put_conditional(if_none_match=True)`` of each, made durable together.

        Under the lock every conditional write holds: each file is written to a
        temporary file beside its key and fsynced (``many_at_once``: the disk
        commits the fsyncs that wait together as one); then each is linked to its key in
        turn, which fails where the key is there (the exclusive create: a file there is
        "not made", a link, folder or FIFO refused as ``put_conditional`` refuses it);
        then each folder a key was made in is fsynced once. ``put_conditional`` of each
        made four fsyncs a key, two of them of its folder: a push of 200 tags, 826.
        On a file system without hard links, a key found absent under the lock is
        renamed into place instead.
        """
        for key, _ in items:
            validate_key(key)
        made: list[bool] = []
        with self._mapped("the directory", writing=True), self._key_lock():
            folders: dict[str, int] = {}
            temps: list[tuple[int, str]] = []
            changed: set[int] = set()
            try:
                where = []
                for key, _ in items:
                    folder = key.rpartition("/")[0]
                    with self._mapped(key, writing=True):
                        if folder not in folders:
                            parts = folder.split("/") if folder else []
                            folders[folder] = self._descend(parts, make=True)
                    where.append(folders[folder])
                written = _write_temps(items, where)
                temps += [
                    (fd, tmp)
                    for fd, tmp in zip(where, written, strict=True)
                    if isinstance(tmp, str)
                ]
                for (key, _), tmp in zip(items, written, strict=True):
                    if isinstance(tmp, OSError):
                        with self._mapped(key, writing=True):
                            raise tmp
                for (key, _), (fd, tmp) in zip(items, temps, strict=False):
                    with self._mapped(key, writing=True):
                        made.append(self._link_new(fd, tmp, key))
                    if made[-1]:
                        changed.add(fd)
                    elif in_order:
                        break
            finally:
                for fd, tmp in temps:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp, dir_fd=fd)
                try:
                    for fd in changed:
                        os.fsync(fd)
                finally:
                    for fd in folders.values():
                        os.close(fd)
        return made

    def _link_new(self, fd: int, tmp: str, key: str) -> bool:
        """Give the written temporary file ``tmp`` in folder ``fd`` its key's name unless
        that name is taken; whether it was given (see :meth:`create_many`)."""
        name = key.rpartition("/")[2]
        try:
            os.link(tmp, name, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
            return True
        except FileExistsError:
            pass
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS):
                raise
            try:  # no hard links here: looked at under the lock, then renamed
                os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
                return True
        mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
        if stat.S_ISLNK(mode):
            raise _link(key, self.url)
        if stat.S_ISDIR(mode):
            raise _clash(key, self.url)
        if not stat.S_ISREG(mode):
            raise _not_regular(key, self.url)
        return False

    @contextlib.contextmanager
    def _key_lock(self) -> Iterator[None]:
        """The lock conditional writes and deletes hold while they compare and act."""
        root = self._root(writing=True)
        try:
            lock_fd = os.open(_LOCK_NAME, os.O_RDWR | os.O_CREAT | _FILE, 0o644, dir_fd=root)
        finally:
            os.close(root)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock_fd)  # closing the last descriptor releases the flock

    # resolving keys without following links ------------------------------------------

    def _root(self, *, writing: bool) -> int:
        """A descriptor of the root; for ``writing``, RemoteError unless it is still the
        directory this backend was opened on: a NAS unmounted (or a directory moved and
        another made in its place) while a push runs would otherwise take the rest of
        the push, a half remote, into whatever now has its path."""
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if writing:
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != self._identity:
                os.close(fd)
                raise RemoteError(
                    f"directory {self.root} is no longer the one this command began with "
                    "(unmounted, or moved and another made in its place): nothing more was "
                    "written there; check the remote's directory, then run the command again"
                )
        return fd

    def _descend(self, parts: Sequence[str], *, make: bool, writing: bool = False) -> int:
        """A descriptor of the directory ``parts`` below the root (made if ``make``;
        with ``make`` or ``writing``, the root checked as :meth:`_root` does).

        Each component is opened with ``O_NOFOLLOW`` from its parent's descriptor; a
        link is refused (RemoteError), a missing one raises FileNotFoundError.
        """
        fd = self._root(writing=make or writing)
        try:
            for i, part in enumerate(parts):
                try:
                    try:
                        nxt = os.open(part, _DIR, dir_fd=fd)
                    except FileNotFoundError:
                        if not make:
                            raise
                        with contextlib.suppress(FileExistsError):
                            os.mkdir(part, dir_fd=fd)
                        os.fsync(fd)
                        nxt = os.open(part, _DIR, dir_fd=fd)
                except OSError as exc:
                    if _refused_link(exc, part, fd):
                        raise _link("/".join(parts[: i + 1]), self.url) from None
                    raise
                os.close(fd)
                fd = nxt
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextlib.contextmanager
    def _parent(
        self, key: str, *, make: bool = False, writing: bool = False
    ) -> Iterator[tuple[int, str]]:
        """The descriptor of the directory holding ``key``, and the key's last name."""
        parts = validate_key(key).split("/")
        fd = self._descend(parts[:-1], make=make, writing=writing)
        try:
            yield fd, parts[-1]
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def _object(self, key: str) -> Iterator[int]:
        """A read descriptor of the regular file at ``key`` (see the module docstring)."""
        with self._parent(key) as (parent, name), self._object_at(parent, name, key) as fd:
            yield fd

    @contextlib.contextmanager
    def _object_at(self, parent: int, name: str, key: str) -> Iterator[int]:
        """:meth:`_object` of ``name`` in the directory ``parent`` (``key``'s folder)."""
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            raise _link(key, self.url)
        if stat.S_ISDIR(st.st_mode) and key.count("/") >= MAX_DEPTH:
            raise RemoteObjectRefused(
                f"{key} in {self.url} is a folder deeper than {MAX_DEPTH} folders, "
                "where no key lies: refusing to read it"
            )
        if stat.S_ISDIR(st.st_mode):
            raise FileNotFoundError(errno.ENOENT, "a directory is no object", key)
        if not stat.S_ISREG(st.st_mode):
            raise _not_regular(key, self.url)
        try:
            fd = os.open(name, _FILE, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # swapped for a link since the check
                raise _link(key, self.url) from None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # swapped since the check
                raise _not_regular(key, self.url)
            yield fd
        finally:
            os.close(fd)

    def _current_etag(self, key: str) -> str | None:
        try:
            with self._object(key) as fd:
                return _etag_of_fd(fd)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _walk(self, fd: int, base: str, start: str) -> Iterator[str]:
        """Yield ``base + name`` for what lies below directory ``fd`` (but directories),
        whose name starts with ``start``; a link is listed as a key, never entered.

        A stack of open directories takes the place of recursion; a folder nested deeper
        than ``MAX_DEPTH`` (no key is) is listed as a key, never entered, and refused
        when read (:meth:`_object`). Each folder is read as its names are asked for
        (:func:`_entries`), so a caller that stops past a bound (``packs/`` holding
        millions of names) has read no more of it than that.
        """
        stack: list[tuple[int, str, Generator[os.DirEntry[str], None, None]]] = []
        try:
            stack.append((-1, base, _entries(fd, start)))
            while stack:
                here, prefix, rest = stack[-1]
                for entry in rest:
                    parent = fd if here < 0 else here
                    if not entry.is_dir(follow_symlinks=False):
                        # a link, a FIFO or a device too: listed (never followed), refused
                        # when read, so that one odd ref is skipped, not every ref
                        yield prefix + entry.name
                        continue
                    if len(stack) > MAX_DEPTH:
                        # listed as a key, never entered, refused when read (as a link
                        # is): a clone skips that one ref instead of failing
                        yield prefix + entry.name
                        continue
                    try:
                        sub = os.open(entry.name, _DIR, dir_fd=parent)
                    except OSError as exc:
                        if _refused_link(exc, entry.name, parent):
                            raise _link(prefix + entry.name, self.url) from None
                        if isinstance(exc, FileNotFoundError | NotADirectoryError):
                            continue  # removed or replaced meanwhile
                        raise
                    stack.append((sub, f"{prefix}{entry.name}/", _entries(sub, "")))
                    break
                else:
                    stack.pop()
                    rest.close()
                    if here >= 0:
                        os.close(here)
        finally:
            for here, _, rest in stack:
                rest.close()
                if here >= 0:
                    os.close(here)

    def remove_temporaries(self, older_than: float) -> tuple[int, int]:
        """Delete the ``.tmp-*`` files of puts killed midway (a push killed, a full
        disk), last modified before ``older_than``; (how many, their bytes).

        Links are neither followed nor removed; only folders a key can lie in (names
        not starting with ``.``) are entered, at most ``MAX_DEPTH`` deep.
        """
        removed = freed = 0
        with self._mapped("the directory", writing=True):
            stack = [(self._descend([], make=False, writing=True), 0)]
            try:
                while stack:
                    fd, depth = stack.pop()
                    try:
                        with os.scandir(fd) as it:
                            entries = list(it)
                        for e in entries:
                            if e.name.startswith(".tmp-") and e.is_file(follow_symlinks=False):
                                st = e.stat(follow_symlinks=False)
                                if st.st_mtime < older_than:
                                    with contextlib.suppress(FileNotFoundError):
                                        os.unlink(e.name, dir_fd=fd)
                                        removed += 1
                                        freed += st.st_size
                            elif (
                                not e.name.startswith(".")
                                and e.is_dir(follow_symlinks=False)
                                and depth < MAX_DEPTH
                            ):
                                with contextlib.suppress(OSError):  # a link, or gone
                                    stack.append((os.open(e.name, _DIR, dir_fd=fd), depth + 1))
                    finally:
                        os.close(fd)
            finally:
                for fd, _ in stack:
                    os.close(fd)
        return removed, freed

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
            if exc.errno == errno.ELOOP:
                raise _link(key, self.url) from exc
            full = storage_error(exc, f"{key} to {self.url}")
            if isinstance(full, StorageFull):
                raise full from exc
            raise RemoteError(f"could not access {key} in {self.url}: {exc.strerror}") from exc


def _clash(key: str, url: str) -> RemoteError:
    return RemoteObjectRefused(
        f"cannot store {key} in {url}: a key and a folder of the same name clash "
        "(like 'a' and 'a/b'); use another name"
    )


def _link(where: str, url: str) -> RemoteError:
    return RemoteObjectRefused(
        f"{where} in {url} is a symbolic link: dvfs follows no link inside a directory "
        "remote; replace it with the directory or file itself"
    )


def _entries(fd: int, start: str) -> Generator[os.DirEntry[str], None, None]:
    """The entries of directory ``fd`` whose names start with ``start`` (not hidden), in
    the order the directory gives them, each read when it is asked for: never all of
    them first (sorting them read millions of names before a listing's bound applied).
    Closing the generator closes the directory's stream."""
    with os.scandir(fd) as it:
        for entry in it:
            if not entry.name.startswith(".") and entry.name.startswith(start):
                yield entry


def _refused_link(exc: OSError, name: str, dir_fd: int) -> bool:
    """True if opening directory ``name`` with O_NOFOLLOW failed because of a link.

    The kernel answers ELOOP or ENOTDIR for a link; ENOTDIR also for a file, which is
    told apart by looking again. If ``name`` is a directory by then, it was swapped
    meanwhile, which only a link explains.
    """
    if exc.errno == errno.ELOOP:
        return True
    if exc.errno != errno.ENOTDIR:
        return False
    try:
        mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
    except OSError:
        return False
    return stat.S_ISLNK(mode) or stat.S_ISDIR(mode)


def _not_regular(key: str, url: str) -> RemoteError:
    return RemoteObjectRefused(
        f"{key} in {url} is not a regular file (a FIFO, socket or device): refusing to read it"
    )


def _read(fd: int, start: int, length: int) -> bytes:
    """``length`` bytes from ``start`` (fewer if the file ends first)."""
    parts = []
    while length > 0:
        part = os.pread(fd, min(length, 1 << 30), start)
        if not part:
            break
        parts.append(part)
        start += len(part)
        length -= len(part)
    return b"".join(parts)


def _write_at(dir_fd: int, name: str, data: bytes) -> None:
    """Write ``name`` in directory ``dir_fd`` atomically (temp, fsync, rename, fsync)."""
    tmp = _write_temp(dir_fd, name, data)
    try:
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    os.fsync(dir_fd)


def _write_temps(items: Sequence[tuple[str, bytes]], folders: Sequence[int]) -> list[str | OSError]:
    """:func:`_write_temp` of each ``(key, data)`` in its folder's descriptor,
    many at once (``many_at_once``): each temporary file's name, or why it was not written
    (each one written is named, so that none is left behind)."""

    def write(item: tuple[tuple[str, bytes], int]) -> str | OSError:
        (key, data), fd = item
        try:
            return _write_temp(fd, key.rpartition("/")[2], data)
        except OSError as exc:
            return exc

    return many_at_once(write, list(zip(items, folders, strict=True)), "dvfs-cas-sync")


def _write_temp(dir_fd: int, name: str, data: bytes) -> str:
    """A new temporary file for ``name`` in directory ``dir_fd`` holding ``data``,
    fsynced; its name."""
    tmp = os.fsdecode(tmp_leaf(os.fsencode(name)))
    fd = os.open(
        tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644,
        dir_fd=dir_fd,
    )  # fmt: skip
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise
    return tmp


def _etag_of_fd(fd: int) -> str:
    """The ETag of the open file ``fd``: BLAKE3 hex of its content, or for a file over
    ``_HASHED`` bytes (far larger than anything a conditional write targets: refs,
    the gc lock, audit entries) its identity and size, mtime and ctime, read from
    ``fstat`` alone: a remote's 16 TiB sparse file in place of a ref was hashed to the
    end, hours of reading, by ``dvfs push`` and ``dvfs audit verify --remote``."""
    st = os.fstat(fd)
    if st.st_size > _HASHED:
        fields = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        return "stat-" + "-".join(f"{n:x}" for n in fields)
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
