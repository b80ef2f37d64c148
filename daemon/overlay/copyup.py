"""Files' content in the work directory: new files, and base files copied up.

Data is never journaled: a write goes straight to ``data/<nid>``. A new file takes a
spare (``daemon.overlay.spares``); a base file's first write copies it up into a
temporary file that is renamed into place and then recorded.
"""

from __future__ import annotations

import contextlib
import os

from daemon.overlay.changes import Changes
from daemon.overlay.node import WNode
from daemon.overlay.spares import Spares
from vfs import Kind

_NEW_FILE = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC


class CopyUp(Changes):
    """New files and copy-up of base files into ``data/``."""

    def create_file(self, d: WNode, name: bytes, mode: int, owner: tuple[int, int]) -> WNode:
        """A new empty file ``name`` in ``d`` (replacing what was there)."""
        n = self._new(Kind.FILE, mode, owner, upper=True)
        fd = self._new_data(n)
        n.fd = fd
        try:
            self.attach(d, name, n)
        except BaseException:
            os.close(fd)
            n.fd = -1
            with contextlib.suppress(OSError):
                os.unlink(str(n.nid), dir_fd=self.data_fd)
            raise
        return n

    def _new_data(self, n: WNode) -> int:
        """Make ``data/<nid>``, from a spare if one is ready; its descriptor.

        Its mtime is set to the node's, which replay reads back.
        """
        if self._spares is None:
            self._spares = Spares(self.work_fd)
        fd = self._spares.link(str(n.nid), self.data_fd)
        if fd is None:
            fd = os.open(str(n.nid), _NEW_FILE, 0o600, dir_fd=self.data_fd)
        try:
            os.utime(fd, ns=(n.mtime_ns, n.mtime_ns))
        except BaseException:
            os.close(fd)
            os.unlink(str(n.nid), dir_fd=self.data_fd)
            raise
        return fd

    def start_copy(self, n: WNode) -> int:
        """Begin copying ``n`` up: a descriptor of its temporary data file."""
        flags = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        return os.open(f"{n.nid}.tmp", flags, 0o600, dir_fd=self.data_fd)

    def finish_copy(self, n: WNode, fd: int, size: int) -> None:
        """The copy holds ``size`` bytes: make it ``n``'s content and record that."""
        os.utime(fd, ns=(n.mtime_ns, n.mtime_ns))
        os.rename(f"{n.nid}.tmp", str(n.nid), src_dir_fd=self.data_fd, dst_dir_fd=self.data_fd)
        n.upper, n.fd, n.size = True, fd, size
        n.wrote += 1
        if n.entry is not None and size == n.entry.size:  # its chunks, copied: its content
            n.hashed = (n.wrote, n.entry.digest)
        try:
            if n.parent is not None:  # (unlinked while open: no name to record)
                self.record_node(n)
        except BaseException:
            n.upper, n.fd = False, -1
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(str(n.nid), dir_fd=self.data_fd)
            raise

    def abort_copy(self, n: WNode, fd: int) -> None:
        """A copy failed: remove what it wrote."""
        if n.fd != fd:
            with contextlib.suppress(OSError):
                os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(f"{n.nid}.tmp", dir_fd=self.data_fd)

    def release_fd(self, n: WNode) -> None:
        """Close an upper file's descriptor when no handle uses it."""
        if n.opens == 0 and n.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(n.fd)
            n.fd = -1
