"""Row-level diffs of tabular files: CSV and TSV, JSON Lines and Parquet.

``dvfs diff REV REV PATH --rows`` asks what changed inside a data file rather than
that it changed. The modules, lowest first:

- :mod:`vfs.tables.formats`: which format a path claims by its extension, and a
  bounded look at its first and last bytes to check the claim.
- :mod:`vfs.tables.source`: one side of a diff (a version's file or the working
  file) copied out of the object store into a scratch directory, chunk by chunk,
  with the facts the fast path needs about each chunk.
- :mod:`vfs.tables.regions`: the fast path's geometry: which rows two versions
  share because they share the chunks the rows lie in (see its docstring for why
  that is sound, and when it is not used).
- :mod:`vfs.tables.engine`: the query engine (DuckDB) reading the files and
  computing schema changes, counts and rows.
- :mod:`vfs.tables.result`: the answer of a diff (``RowDiff``) and its parts.
- :mod:`vfs.tables.keys`: which columns a key, as the user gave it, names.
- :mod:`vfs.tables.compare`: the queries comparing two tables' rows, keyed or not.
- :mod:`vfs.tables.rowdiff`: the diff itself, choosing the fast or the full path.

DuckDB is an optional dependency (``pip install 'dvfs[tables]'``): only
:mod:`vfs.tables.engine` imports it, and only ``--rows`` imports that, so the rest
of dvfs neither needs nor loads it.
"""
