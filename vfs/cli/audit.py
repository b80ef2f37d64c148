"""``dvfs audit``: the audit log of this clone or of a remote, and its check."""

from __future__ import annotations

import datetime
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from vfs.cli.options import DvfsGroup
from vfs.cli.output import emit_json, fail, repo_here
from vfs.errors import UsageError
from vfs.quoting import escape_text, quote_given
from vfs.remote import audit as remote_audit
from vfs.repo import audit
from vfs.repo.repository import Repository

FIELD = 1024  # characters of an entry's user, host, op or ref and note shown


def remote_chain(repo: Repository, name: str) -> tuple[Any, Path | None]:
    """A remote's backend and this clone's record of where its audit chain ended."""
    from vfs.remote import config as remotes

    spec = remotes.get_remote(repo, name)
    return remotes.connect(spec, 16), remotes.chain_head(repo, spec.name)


# --since's form, as its help and its error say it (datetime.fromisoformat reads it)
SINCE_FORM = "YYYY-MM-DD[THH:MM[:SS]][+HH:MM] (local time unless a zone is given)"


@click.group(cls=DvfsGroup, name="audit", invoke_without_command=True)
@click.option("--since", metavar="DATE", help=f"Only entries from DATE on: {SINCE_FORM}.")
@click.option("--remote", "remote_name", metavar="NAME", help="The remote's chain (its pushes).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def audit_cmd(
    ctx: click.Context, since: str | None, remote_name: str | None, as_json: bool
) -> None:
    """Who changed which branch or tag, when, with what command.

    Every change of a local ref is an entry of .dvfs/audit.log, each holding the
    hash of the one before; `dvfs audit verify` checks the chain. A remote keeps
    its own chain of the pushes it received (--remote NAME).

    \b
    Examples:
      dvfs audit --since 2026-01-01
      dvfs audit verify
      dvfs audit --remote origin
      dvfs audit verify --remote origin
    """
    if ctx.invoked_subcommand is not None:
        if since is not None or remote_name is not None:
            raise UsageError(
                "give --since and --remote after `verify`: dvfs audit verify --remote NAME"
            )
        return
    repo = repo_here()
    start = 0
    if since is not None:
        try:
            when = datetime.datetime.fromisoformat(since)
        except ValueError:
            raise UsageError(
                f"--since {quote_given(since)} is not a date: write {SINCE_FORM}"
            ) from None
        try:
            if when.tzinfo is None:
                when = when.astimezone()
            start = int(when.timestamp() * 1e9)
        except (ValueError, OverflowError):  # (at the calendar's edge: before or after all)
            start = 0 if when.year < 1970 else 1 << 63
    bad: list[int] = []  # lines of the local log, or entries of the remote's, that are none
    cut = ""  # how a remote's chain ends before the entry this clone last saw of it
    if remote_name is not None:
        backend, head = remote_chain(repo, remote_name)
        found = remote_audit.remote_entries(backend, skipped=bad)
        last = max([e.seq for e in found] + bad, default=0)
        seen = remote_audit.seen_end(head)
        if seen > last:
            cut = (
                f"remote {remote_name}'s audit chain ends at entry {last}, but this clone saw "
                f"it reach entry {seen}: entries were deleted from its end; "
                f"`dvfs audit verify --remote {remote_name}` checks the chain"
            )
    else:
        found = list(audit.entries(repo.dir, skipped=bad))
    picked = [e for e in found if e.time_ns >= start]
    if as_json:
        emit_json([e.as_json() for e in picked])
    else:
        _show(picked)
    if cut and not bad:
        fail(cut)
    if bad:  # (the others are listed; the chain is not whole: exit 1, as verify does)
        many = len(bad) > 1
        numbers = ", ".join(map(str, bad[:5])) + (
            f" and {len(bad) - 5:,} more" if len(bad) > 5 else ""
        )
        if remote_name is None:
            what, verify = f"line{'s' if many else ''} {numbers} of .dvfs/{audit.LOG}", ""
        else:
            what = f"entr{'ies' if many else 'y'} {numbers} of remote {remote_name}'s audit chain"
            verify = f" --remote {remote_name}"
        fail(
            f"{what} {'are' if many else 'is'} not an entry (edited or damaged), so not "
            f"listed: `dvfs audit verify{verify}` checks the chain"
        )


def _show(picked: list[audit.Entry]) -> None:
    """The listing's lines, one an entry, each field escaped and cut (``FIELD`` characters,
    the command ``SHOWN_CMD``), marked: an entry of a remote's chain may be anyone's, up
    to a megabyte."""
    from vfs.model.params import SHOWN_CMD, shown

    for e in picked:
        at = datetime.datetime.fromtimestamp(e.time_ns / 1e9).astimezone().isoformat("T", "seconds")
        ids = f"{(e.old or '-')[:10]} -> {(e.new or '-')[:10]}" if e.ref != "HEAD" else ""
        what = " ".join(x for x in (e.ref, ids, e.note) if x)
        user, host, op = (escape_text(shown(x, FIELD)) for x in (e.user, e.host, e.op))
        click.echo(
            f"{e.seq:>5} {at} {user}@{host} {op}: {escape_text(shown(what, FIELD))}  "
            f"({escape_text(shown(shlex.join(e.cmd), SHOWN_CMD))})"
        )


@audit_cmd.command(name="verify")
@click.option("--remote", "remote_name", metavar="NAME", help="Check the remote's chain.")
@click.option(
    "--full",
    is_flag=True,
    help="With --remote: read every entry, not only those listed differently since the last check.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def audit_verify(remote_name: str | None, full: bool, as_json: bool) -> None:
    """Check that no audit entry was edited, deleted, inserted or reordered.

    With --remote, entries this clone already checked are read again only if the
    remote lists them with another ETag or time (a rewrite changes both).

    \b
    Examples:
      dvfs audit verify
      dvfs audit verify --remote origin
      dvfs audit verify --remote origin --full
    """
    repo = repo_here()
    if full and remote_name is None:
        raise UsageError("--full goes with --remote NAME (the local log is always read whole)")
    if remote_name is not None:
        backend, head = remote_chain(repo, remote_name)
        v = remote_audit.verify_remote(backend, head, full=full)
    else:
        v = audit.verify(repo.dir)
    if as_json:
        emit_json(v.as_json())
    else:
        for p in v.problems:
            click.echo(f"problem: {escape_text(p)}")
        if v.torn:
            click.echo("the last line is incomplete (a crash while it was written); ignored")
        state = "intact" if not v.problems else "NOT intact"
        click.echo(f"{v.entries:,} entr{'y' if v.entries == 1 else 'ies'}: {state}")
    if v.problems:
        sys.exit(1)
