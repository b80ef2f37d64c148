"""Remotes: where versions are shared, and everything dvfs does with one.

- ``vfs.remote.config``: named remotes (``RemoteSpec``, ``add_remote``, ``connect``...),
  the remote's layout and what is read from one (``RemoteRepo``).
- ``vfs.remote.transfer``: push, fetch, pull and clone.
- ``vfs.remote.receive``: the checks on what a fetch receives, before any of it is kept.
- ``vfs.remote.read``: reading a remote without cloning it (URL mounts, ``Repo.remote``).
- ``vfs.remote.gc``: ``dvfs gc --remote``, condemning and sweeping dead packs.
- ``vfs.remote.prune``: ``dvfs store prune``, the local store as a cache of a remote.

This package imports nothing itself: import the module you need.
"""
