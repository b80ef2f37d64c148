"""The operating system tricks of dvfs, each behind a small named function.

Every ``fork``, every ctypes call, every ``O_DIRECT`` and ``O_TMPFILE`` open, the
sysfs write, the page-cache probes and the pauses of Python's garbage collector live
here and nowhere else (``tests/test_layering.py`` checks it), so that a reader finds
each one, with the measurement that justified it, in one place:

- ``beneath``: working-tree paths resolved beneath the root without following a
  link (``openat`` with ``O_NOFOLLOW``, one directory at a time), regular files read
  within a bound, ``renameat2`` (``RENAME_NOREPLACE``, ``RENAME_EXCHANGE``) by ctypes;
- ``direct_io``: files written and read past the page cache (``O_DIRECT``):
  ``DirectAppender``, ``write_new``, ``open_direct``, ``set_direct``, ``read_range``
  (``read_range_view``), ``preallocate`` (``fallocate`` by ctypes);
- ``page_cache``: is a byte range in the page cache (``cachestat``, else ``mincore``,
  by ctypes), and a mount's read-ahead (a sysfs write);
- ``helper_process``: a forked helper process and the pipes that feed it, whether
  a process still runs (what tells a killed process's leftovers from live work), and
  work done in a child given up on after a while (``within``);
- ``gc_pause``: the cyclic garbage collector paused while many objects are made;
- ``malloc``: glibc's mmap and trim thresholds (``mallopt`` by ctypes), for push,
  the mount daemon and ``diff --rows``, and the daemon's heaps on huge pages (a
  ``GLIBC_TUNABLES`` setting in the environment it is started with);
- ``heap``: page-aligned buffers from malloc's heap (an uninitialised bytearray by
  ctypes), which the S3 backend receives a URL mount's chunks into, so that the chunk
  cache writes them with ``O_DIRECT`` without a copy;
- ``tmpfile``: files made without a name (``O_TMPFILE``) and linked later;
- ``reflink``: a file's range made of another's blocks (``FICLONERANGE``), where the
  filesystem shares blocks (XFS, Btrfs);
- ``mount_api``: the kernel's mount API (``fsopen``, ``fsmount``, ``move_mount``,
  ``open_tree``) and ``umount2``, by ctypes.
- ``mount_table``: the kernel's mount table and the dvfs mounts in it, read without
  looking into a mount (whose daemon may not answer).

Which calls may block the mount daemon's trio thread, and which go to worker threads
(as the daemon uses them today; none of these functions knows about trio):

- On worker threads (``trio.to_thread.run_sync``): every read of a chunk, from the
  chunk cache or the object store (``open_direct``, ``read_range``,
  ``read_range_view``, ``set_direct``, ``write_new`` when a fetched chunk is cached,
  ``aligned_buffer`` as it is received, ``cached``, ``read_cached``: the fetcher's
  ``_read_local`` under its disk limiter); everything a snapshot does (hashing and
  storing through ``DirectAppender``; the kernel overlay's upper layer walked by
  ``Walker`` and ``listing``); ``dvfs status MNT`` of a kernel overlay (``Walker``);
  mounting the kernel's overlay and unmounting it on request (``mount_api``:
  ``KernelMount.attach``, ``KernelMount.unmount``).
- On the trio thread, as short system calls not worth a thread: ``link_unnamed``, when
  a new file of a daemon-overlay working tree takes a spare; ``set_bdi_read_ahead``,
  once after FUSE INIT.
- On a thread of their own: ``unnamed_file``, on the overlay's spares thread
  (``dvfs-spares``), which keeps files ready for the trio thread to link.
- Outside the trio loop (before it starts or after it ends): ``umount2`` of private
  mount points left by dead daemons, and detaching the kernel overlay's view;
  ``chunk_buffers_reused``, first thing in the daemon's ``main`` (and in
  ``dvfs diff --rows``, a CLI process, before it copies the two sides).
- Never in the daemon: ``helper_process`` forks only while a process runs a single
  thread (``spare_cpus`` answers 0 otherwise), and the daemon always runs several;
  ``large_buffers_to_os``.

``paused_gc`` is not called by the daemon's own code; a library call it makes on a
worker thread may pause the collector (``History.flatten``, loading a staging index),
and then the collector of the whole process is paused, the trio thread's included, for
as long as that call runs.
"""
