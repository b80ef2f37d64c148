"""Where file bytes and records come from, for the request handlers.

- :mod:`daemon.data.record_cache`: trees and versions kept in memory, read in threads.
- :mod:`daemon.data.fetcher`: chunk bytes from memory, the local store, the cache or the remote.
- :mod:`daemon.data.chunk_cache`: verified chunks on local disk, least recently used evicted.
- :mod:`daemon.data.meta`: ``.versions/meta/vN.yaml``, each version's metadata, made in threads.
- :mod:`daemon.data.digests`: files' digests, checked as their chunks are served in order.
- :mod:`daemon.data.open_files`: an open file of a version: byte ranges to chunks, read-ahead.
"""
