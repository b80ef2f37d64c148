"""``dvfs status``: the working tree against HEAD and the index, or a mount's changes."""

from __future__ import annotations

import click

from vfs.cli.options import DvfsCommand
from vfs.cli.status_report import show_status
from vfs.ops.grouping import GROUP_OVER


@click.command(cls=DvfsCommand)
@click.argument("mountpoint", metavar="[MNT]", required=False)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "-v", "--verbose", is_flag=True,
    help=f"List every file (past {GROUP_OVER} in a section, files are shown by directory).",
)  # fmt: skip
def status(mountpoint: str | None, as_json: bool, verbose: bool) -> None:
    """Show staged, modified, deleted and untracked files.

    Untracked files are looked for inside each top-level directory that holds tracked
    files; an untracked file at the top level, or in a new top-level directory, is not
    listed (the rest of a project, its code, is git's): `dvfs add` names it first.
    Files `dvfs rm --cached` or `dvfs restore --staged` took out of the index are
    listed while they are on disk.
    With MNT, the pending changes of that mount's working tree instead.

    \b
    Examples:
      dvfs status
      dvfs status --json
      dvfs status /mnt/data      # a mount's working tree
    """
    show_status(mountpoint, as_json, verbose)
