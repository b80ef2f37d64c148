"""The working tree: listing it, hashing files into the store, restoring, removing.

Modules: :mod:`~vfs.worktree.scan` (what a scan finds, names refused),
:mod:`~vfs.worktree.ingest` (hashing and storing files), :mod:`~vfs.worktree.restore`
(writing files and directories of a version), :mod:`~vfs.worktree.remove` (deleting
files, trees and dvfs's own temporaries), :mod:`~vfs.worktree.pools` (the thread pools
and progress), :mod:`~vfs.worktree.status` (sorting the tree against the index, split
across processes when it is large) and :mod:`~vfs.worktree.ignore` (``.dvfsignore``).

Paths: inside the repository every path is bytes, relative to the root, with ``/``
separators (``vfs.repo.stage`` checks them). Nothing here follows a symbolic link, nor
reaches a path through one: every path is resolved from the root one directory at a
time by a :class:`~vfs._os.beneath.Walker`, links are read with ``readlinkat`` and stored
as links, files are opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``: a FIFO never
blocks a scan), and a link where a directory should be is the user's, replaced only
when the caller allows it, never written through.
"""
