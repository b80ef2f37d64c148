"""The local store: packed objects, their compression, the pack files.

Modules: :mod:`~vfs.store.objects` (:class:`~vfs.store.objects.ObjectStore`: packs,
their index, reads and writes), :mod:`~vfs.store.pack_files` (writing a pack, reading
headers and index files, open descriptors) and :mod:`~vfs.store.compression`.
"""
