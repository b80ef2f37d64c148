"""Deleting from the working tree: files, trees, empty directories, our temporaries."""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from vfs._os.beneath import ABSENT, LIST, Walker, listing, rename_noreplace
from vfs.errors import DvfsError
from vfs.model.names import MAX_DEPTH
from vfs.quoting import quoted
from vfs.store.durable import NAME_MAX, TMP_PREFIX, is_tmp_leaf, tmp_leaf
from vfs.worktree.pools import DELETE_THREADS, Workers
from vfs.worktree.scan import SKIP_DIRS, scan

if TYPE_CHECKING:
    from vfs._os.threads import Task


_TMP_PREFIX = TMP_PREFIX.encode()
_OTHERS_TMP = _TMP_PREFIX + b"dvfs-"  # temporaries with owners of their own (remove_temporaries)
_KEPT = b".dvfs-kept"  # the end of a name a file may hold a user's bytes under: never removed


DENIED = (errno.EACCES, errno.EPERM, errno.EROFS)  # this user may not write there


def not_writable(exc: BaseException, rel: bytes, verb: str) -> BaseException:
    """``exc``, if it says that working-tree path ``rel`` could not be changed (a
    directory this user may not write, a read-only filesystem), as one line naming
    the path and its directory; any other error as it is. ``verb``: what was tried
    (``write``, ``delete``, ``make the directory``)."""
    if not isinstance(exc, OSError) or isinstance(exc, DvfsError) or exc.errno not in DENIED:
        return exc
    parent = rel.rpartition(b"/")[0]
    where = quoted(parent) if parent else "the top directory of the working tree"
    return DvfsError(
        f"cannot {verb} {quoted(rel)}: {exc.strerror}: let this user write in {where} "
        "(or mount it read-write) and run the command again"
    )


def tracked_dir_only(root: Path, rel: bytes, tracked: Callable[[bytes], bool]) -> bool:
    """True if every file below directory ``rel`` is tracked (safe to remove)."""
    return all(tracked(f.rel) for f in scan(root, rel, lambda _: None))


def remove_tree(walker: Walker, rel: bytes) -> None:
    """Delete directory ``rel`` and everything below it, depth first, without recursion.

    Links below it are removed, never followed; a directory swapped for a link
    meanwhile is removed as a link.
    """
    walker.forget(rel)
    stack = [rel]
    rounds = 0
    while stack:
        d = stack[-1]
        try:
            fd = os.open(b".", LIST, dir_fd=walker.dir(d))
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
            stack.pop()  # gone, or a link now: removed as one below
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                dir_fd, leaf = walker.parent(d)
                os.unlink(leaf, dir_fd=dir_fd)
            continue
        deeper = []
        try:
            it, raw = listing(fd)
            with it:
                for de in it:
                    name = de.name if raw else os.fsencode(de.name)
                    if de.is_dir(follow_symlinks=False):
                        deeper.append(d + b"/" + name)
                        continue
                    try:
                        os.unlink(name, dir_fd=fd)
                    except FileNotFoundError:
                        pass
                    except IsADirectoryError:  # replaced by a directory meanwhile
                        deeper.append(d + b"/" + name)
        finally:
            os.close(fd)
        if deeper:
            stack.extend(deeper)
            continue
        dir_fd, leaf = walker.parent(d)
        try:
            os.rmdir(leaf, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            rounds += 1
            if exc.errno != errno.ENOTEMPTY or rounds > 1000:  # files keep appearing
                raise
            continue
        stack.pop()


def remove_path(walker: Walker, rel: bytes) -> bool:
    """Delete a working file or link and then any directories it leaves empty.

    A directory on the way that is not one (a link, say) means the file is not in
    the working tree: nothing is deleted through it. True if something was deleted.
    """
    try:
        dir_fd, leaf = walker.parent(rel)
        os.unlink(leaf, dir_fd=dir_fd)
    except IsADirectoryError:
        return False
    except OSError as exc:
        if exc.errno not in ABSENT:
            raise
        return False
    prune_empty_dirs(walker, rel.rpartition(b"/")[0])
    return True


def prune_empty_dirs(walker: Walker, rel_dir: bytes) -> None:
    """Remove ``rel_dir`` and its parents while they are empty (never the root)."""
    while rel_dir:
        try:
            dir_fd, leaf = walker.parent(rel_dir)
            os.rmdir(leaf, dir_fd=dir_fd)
        except OSError:
            return
        rel_dir = rel_dir.rpartition(b"/")[0]


DELETE_BATCH = 256  # files of one directory per task


def remove_many(
    root: Path,
    paths: Iterable[bytes],
    workers: Workers,
    checked: Mapping[bytes, tuple[int, int, int]] | None = None,
    kept: list[bytes] | None = None,
) -> int:
    """Delete working files and links, then the directories they leave empty.

    Like :func:`remove_path` for each, with the same care (nothing through a link, a
    directory where a file was is left alone), but by directory: each directory is
    opened once (beneath the root, as :class:`vfs._os.beneath.Walker` resolves it) and its
    files are unlinked by name in its descriptor, by ``DELETE_THREADS`` threads at
    once (``workers.deletes``), up to ``DELETE_BATCH`` files a task. An unlink waits
    on the disk more than on the CPU: on ext4, 8 at once delete 5,000 small files two
    to four times as fast as one after the other (``rm -rf``). Then each directory
    that held some is tried once, deepest first, for ``rmdir``. Progress counts
    files (``workers.progress``, from this thread). Returns how many were deleted.

    ``checked``: the (inode, size, mtime_ns) of files as the caller found them safe to
    delete. Each of them is first renamed aside (:func:`aside_leaf`), compared, and
    deleted only if it is still that file: else it is renamed back and added to
    ``kept`` (a user's write after the check is never deleted with the file).
    """
    by_dir: dict[bytes, list[bytes]] = {}
    for rel in paths:
        head, _, leaf = rel.rpartition(b"/")
        by_dir.setdefault(head, []).append(leaf)
    total = sum(map(len, by_dir.values()))
    if not total:
        return 0
    progress = workers.progress
    progress.start("deleting", total, 0)
    removed = 0
    emptied: set[bytes] = set()
    pending: deque[tuple[bytes, int, int, Task[int]]] = deque()  # (dir, fd, files, task)

    def settle() -> None:
        nonlocal removed
        head, _, files, task = pending.popleft()
        done = task.result()
        if done:
            removed += done
            emptied.add(head)
        progress.advance(files, 0)

    try:
        with Walker(root) as walker:
            for head, leaves in by_dir.items():
                try:
                    dir_fd = walker.dir(head)
                except OSError as exc:
                    if exc.errno not in ABSENT:
                        raise
                    progress.advance(len(leaves), 0)  # not there, or not beneath a directory
                    continue
                for at in range(0, len(leaves), DELETE_BATCH):
                    batch = leaves[at : at + DELETE_BATCH]
                    fd = os.dup(dir_fd)  # the task's own: the walker may close its one
                    pending.append(
                        (
                            head,
                            fd,
                            len(batch),
                            workers.deletes.submit(_unlink_all, fd, head, batch, checked, kept),
                        )
                    )
                    while len(pending) >= 2 * DELETE_THREADS:
                        settle()
            while pending:
                settle()
            above = {a for d in emptied for a in _and_above(d)}
            for d in sorted(above, key=lambda d: -d.count(b"/")):
                try:
                    dir_fd, leaf = walker.parent(d)
                    os.rmdir(leaf, dir_fd=dir_fd)
                except OSError:
                    continue  # not empty (or gone, or not a directory): kept
                walker.forget(d)
    finally:
        for _, fd, _, task in pending:  # after a failure: tasks not started are dropped
            if task.cancel():
                os.close(fd)
            else:
                task.exception()  # (waits: no unlink outlives the call)
        progress.done()
    return removed


def _unlink_all(
    dir_fd: int,
    head: bytes,
    leaves: list[bytes],
    checked: Mapping[bytes, tuple[int, int, int]] | None = None,
    kept: list[bytes] | None = None,
) -> int:
    """Unlink ``leaves`` in directory ``head``, open as ``dir_fd``, then close it; how many.

    A name that is gone, or is a directory, is left (as :func:`remove_path` does).
    One in ``checked`` is deleted only if unchanged (:func:`remove_many`).
    """
    n = 0
    try:
        for leaf in leaves:
            rel = head + b"/" + leaf if head else leaf
            try:
                if checked is not None and (was := checked.get(rel)) is not None:
                    if not _unlink_unchanged(dir_fd, leaf, was):
                        if kept is not None:
                            kept.append(rel)  # (list.append: safe from several threads)
                        continue
                else:
                    os.unlink(leaf, dir_fd=dir_fd)
            except IsADirectoryError:
                continue
            except OSError as exc:
                if exc.errno not in ABSENT:
                    raise not_writable(exc, rel, "delete") from exc
                continue
            n += 1
    finally:
        os.close(dir_fd)
    return n


def _unlink_unchanged(dir_fd: int, leaf: bytes, was: tuple[int, int, int]) -> bool:
    """Delete ``leaf`` of ``dir_fd`` if it is still the file (inode, size, mtime_ns)
    ``was``: renamed aside at once, then compared, deleted, or renamed back (False).

    A write made before the rename is seen; one made after it through the name makes a
    new file, which is not touched. Where a new file stands at ``leaf`` by the time the
    changed one would go back, the changed one is put at ``LEAF.dvfs-kept`` (a name
    no cleanup removes) and an error names it. A kill before it is deleted or put
    back leaves it at its aside name (:func:`aside_leaf`), listed as untracked.
    """
    aside = aside_leaf(leaf)
    os.rename(leaf, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    st = os.stat(aside, dir_fd=dir_fd, follow_symlinks=False)
    if (st.st_ino, st.st_size, st.st_mtime_ns) == was and not statmod.S_ISDIR(st.st_mode):
        os.unlink(aside, dir_fd=dir_fd)
        return True
    try:
        rename_noreplace(dir_fd, aside, dir_fd, leaf)
    except FileExistsError:
        rename_noreplace(dir_fd, aside, dir_fd, leaf + _KEPT)
        raise DvfsError(
            f"{quoted(leaf)} changed while it was being deleted, and a new file was made "
            f"at its name meanwhile: the changed one is kept as {quoted(leaf + _KEPT)}"
        ) from None
    return False


def aside_leaf(leaf: bytes) -> bytes:
    """The name :func:`_unlink_unchanged` moves ``leaf`` to while it compares it, and
    that a restore swaps a file it replaces out to (``vfs.worktree.restore._swap_name``):
    ``LEAF.TAGn.dvfs-kept``, unique as :func:`~vfs.store.durable.tmp_leaf` makes
    names (this process's tag and a counter). Not a temporary's name (``.tmp-*``),
    as a file left there by a kill may hold a user's write: ``status`` lists it as
    untracked, and no cleanup of temporaries deletes it (``remove_temporaries``,
    ``fsck``). A long name is shortened to fit in NAME_MAX."""
    head, _, tail = tmp_leaf(leaf)[len(_TMP_PREFIX) :].rpartition(b".")
    return head[: NAME_MAX - len(tail) - len(_KEPT) - 1] + b"." + tail + _KEPT


def _and_above(rel_dir: bytes) -> Iterator[bytes]:
    """A directory and those above it, but the root."""
    while rel_dir:
        yield rel_dir
        rel_dir = rel_dir.rpartition(b"/")[0]


def remove_temporaries(root: Path, tracked: Callable[[bytes], bool]) -> int:
    """Delete the temporary files a killed restore left in the working tree; how many.

    Only files and links whose names have the form ``vfs.store.durable.tmp_leaf`` gives are
    removed (``.tmp-NAME.`` and a process tag: never a user's ``.tmp-notes``), and
    none that is ``tracked`` (a user's file that happens to look like one); no link
    is followed and ``.dvfs`` and ``.git`` are not entered. ``.tmp-dvfs-*`` names
    have other owners (a pipeline run's outputs moved aside: ``vfs.pipeline.repro``)
    and are neither removed nor entered. Every directory is listed once (no recursion).
    """
    removed = 0
    with Walker(root) as walker:
        stack = [b""]
        while stack:
            d = stack.pop()
            try:
                fd = walker.dir(d, listable=True)
            except OSError as exc:
                if exc.errno in ABSENT or exc.errno == errno.EACCES:
                    continue
                raise
            prefix = d + b"/" if d else b""
            it, raw = listing(fd)
            with it:
                for de in it:
                    name = de.name if raw else os.fsencode(de.name)
                    if name.startswith(_OTHERS_TMP):
                        continue
                    if de.is_dir(follow_symlinks=False):
                        if name not in SKIP_DIRS and prefix.count(b"/") < MAX_DEPTH:
                            stack.append(prefix + name)
                    elif (
                        name.startswith(_TMP_PREFIX)
                        and is_tmp_leaf(name)
                        and not tracked(prefix + name)
                    ):
                        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                            os.unlink(name, dir_fd=fd)
                            removed += 1
    return removed
