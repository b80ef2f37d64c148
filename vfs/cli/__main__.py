"""``python -m vfs.cli``: the ``dvfs`` command."""

from vfs.cli import main

main()
