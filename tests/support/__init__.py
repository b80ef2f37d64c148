"""Helpers shared by the test modules, each defined once.

- :mod:`tests.support.cli`: ``dvfs`` as a real process, a repository driven through it
  (``Repo``), ``commit_files`` (its add and commit run in the test's process).
- :mod:`tests.support.forks`: those processes forked from one that imported dvfs once
  (``fork_server.py``, a script).
- :mod:`tests.support.mount`: real mounts of the daemon (start, wait, stop, clean up).
- :mod:`tests.support.api`, :mod:`tests.support.ui`, :mod:`tests.support.pipeline`,
  :mod:`tests.support.remote`: the library API, the dashboard, pipelines and remotes.
- :mod:`tests.support.s3server`, :mod:`tests.support.loopback`,
  :mod:`tests.support.relay`: the session's SeaweedFS server, free ports, a cuttable relay.
- :mod:`tests.support.forge`: hostile remotes and hand-made tree entries.
- :mod:`tests.support.data`: reproducible test bytes.
- :mod:`tests.support.trees`: what a directory holds, as a value to compare.
- :mod:`tests.support.waiting`: polling for a condition, bounded, with a reason.
- :mod:`tests.support.scratch`: a test process's own directories in /tmp, removed by
  the next process if it was killed.
- ``readme_sandbox.py``: a script (not imported) that runs the README's examples.
"""
