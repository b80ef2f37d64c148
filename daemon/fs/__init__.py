"""The FUSE request handlers and what they serve: inode numbers, the namespace of a mount,
its read-only versions and its writable working tree.

- :mod:`daemon.fs.inodes`: inode numbers and the table of inodes the kernel knows.
- :mod:`daemon.fs.namespace`: which names a directory holds and what each one is.
- :mod:`daemon.fs.catalog`: the versions a mount shows under ``.versions``.
- :mod:`daemon.fs.versions`: the handlers of the read-only view of the versions.
- :mod:`daemon.fs.worktree`: the handlers of MNT as a writable working tree.
  Three classes, each over the one before: :mod:`daemon.fs.worktree_nodes` (lookup,
  listing, forgetting), :mod:`daemon.fs.worktree_files` (open files, copy-up), and
  :mod:`daemon.fs.worktree` (changes to names and attributes).
- :mod:`daemon.fs.attrs`: owners, modes and times of the working tree, by the POSIX rules.
"""
