"""Spare empty files, made ahead by a thread for new files of the working tree."""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import threading

from vfs import link_unnamed, unnamed_file

SPARES = 256  # empty files kept ready for new files (see Spares)


class Spares:
    """Empty files made ahead by a thread; a new file takes one and links it into place.

    Making a file costs 0.1-1 ms on some filesystems (ext4 looks for an inode it may
    reuse) and holds the directory locked meanwhile; linking one made with
    ``O_TMPFILE`` costs about 20 us. So ``tar x`` into MNT does not wait for that on
    every file. A spare has no name: those a daemon did not use vanish with it.
    """

    def __init__(self, where: int, count: int = SPARES) -> None:
        """Spares made in the directory open at ``where`` (a descriptor of its own is kept)."""
        self.count = count
        self.ready: collections.deque[int] = collections.deque()
        self._dir_fd = os.dup(where)
        self._want = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="dvfs-spares", daemon=True)
        self._thread.start()

    def link(self, name: str, dir_fd: int) -> int | None:
        """A spare linked as ``name`` in the directory open at ``dir_fd`` (on the same
        filesystem), its read-write descriptor; None: make one yourself."""
        try:
            fd = self.ready.popleft()
        except IndexError:
            return None
        finally:
            self._want.set()
        try:
            link_unnamed(fd, name, dir_fd)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EEXIST):
                self._stop = True  # no /proc, say: spares would only be wasted
            return None
        return fd

    def _run(self) -> None:
        while not self._stop:
            while len(self.ready) < self.count and not self._stop:
                try:
                    self.ready.append(unnamed_file(self._dir_fd))
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EMFILE):
                        break  # try again when the next file is made
                    return  # no O_TMPFILE on this filesystem: files are made as they come
            self._want.wait()
            self._want.clear()

    def close(self) -> None:
        """Stop the thread and close the spares (their inodes are freed)."""
        self._stop = True
        self._want.set()
        self._thread.join()
        while self.ready:
            with contextlib.suppress(OSError):
                os.close(self.ready.popleft())
        os.close(self._dir_fd)
