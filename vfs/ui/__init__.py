"""``dvfs ui``: a local web dashboard over one repository, read-only.

- :mod:`vfs.ui.data`: what each page shows, as plain JSON-ready data, computed by the
  same functions as the CLI's ``--json`` (``vfs.ops.browse``, ``vfs.ops.du``, ``vfs.repo.audit``,
  ``vfs.pipeline.report``, ``vfs.tables``); it knows nothing of HTTP.
- :mod:`vfs.ui.files`: a version's file for the download and preview routes;
  :mod:`vfs.ui.arguments`: a request's path and page, checked.
- :mod:`vfs.ui.app`: the Starlette application: the JSON API (docs/ui.md), the token
  check, errors turned into HTTP statuses, the static front end of ``static/``.
- :mod:`vfs.ui.binds`: the checks of ``--host`` and ``--token`` (loopback unless a token
  guards it), made before anything else loads;
  :mod:`vfs.ui.serve`: binding and running uvicorn.

Starlette and uvicorn are the optional extra ``dvfs[ui]``: only ``dvfs ui`` imports
this package.
"""
