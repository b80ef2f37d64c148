"""Pipelines: stages that make outputs from inputs, re-run when stale, and the lineage
every version records of how its outputs were made.

Files at the root of a working tree (a repository's, or a mount's)::

    dvfs.yaml   the stages, written by people (and ``dvfs run``): ``spec``
    dvfs.runs   the last run of each stage, written by ``dvfs repro``: ``runs``

Both are ordinary files of the working tree: versioned with the data (``repro``
stages them with the outputs; a mount's snapshot takes them with everything else)
and committable to git beside the code (``dvfs add`` never git-ignores them). A
version's record holds its lineage: the runs of ``dvfs.runs`` whose outputs it holds
exactly as they were made (``record``), so lineage never claims more than is true.

Modules, lowest first: ``content`` (content ids), ``runs`` (the runs file),
``record`` (a version's lineage, made when a version is), which the commit paths
below this package call; then ``spec`` (dvfs.yaml), ``graph`` (the DAG), ``merge3``
(both files merged stage by stage, which ``dvfs merge`` calls: these three too sit
below the package's other modules), ``values``
(parameter and metric files), ``workspace`` (where a pipeline runs, and the state of
its paths), ``runner`` (one command), ``cache`` (the run cache), ``plan`` (what repro is
asked, the stages selected, the outcome), ``stale`` (why a stage is stale),
``backups`` (outputs moved aside while a command runs), ``staging`` (what repro
recorded, staged in the index), ``repro`` (order, parallel runs, recording),
``lineage`` (upstream and downstream of a path), ``report`` (params, metrics,
compare) and ``experiments``.
"""
