"""Remotes: where versions are shared, and everything dvfs does with one.

- ``vfs.remote.layout``: every key name on a remote, the ref text, the index segment
  format (written and read) and the bounds on each record. Nothing else builds a key.
- ``vfs.remote.config``: named remotes (``RemoteSpec``, ``add_remote``...) and
  ``connect`` (a metered backend).
- ``vfs.remote.reader``: ``RemoteRepo``, what is read from a remote, bounded and checked.
- ``vfs.remote.receive``: the checks on what a fetch receives, before any of it is kept.
- ``vfs.remote.upload``: a push's objects laid out in packs and uploaded.
- ``vfs.ops.sync``: push, fetch, pull and clone.
- ``vfs.remote.read``: reading a remote without cloning it (URL mounts, ``Repo.remote``).
- ``vfs.remote.manifests``: remote gc's condemnation manifests (read by push and prune).
- ``vfs.remote.gc``: ``dvfs gc --remote``, condemning and sweeping dead packs.
- ``vfs.remote.repack``: the small packs of many small pushes merged by a remote gc.
- ``vfs.ops.prune``: ``dvfs store prune``, the local store as a cache of a remote.

This package imports nothing itself: import the module you need.
"""
