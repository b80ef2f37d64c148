"""Revisions and paths on a command line: ``[REV...] [--] [PATH...]``.

Without click: a plain ``dvfs diff --rows`` runs without it (:mod:`vfs.cli.rows`), and
click's commands (``log``, ``diff``...) pass their context, which has what
:class:`Invocation` asks for.
"""

from __future__ import annotations

import os
import re
from typing import Any, Protocol

from vfs.cli.output import quoted
from vfs.errors import DvfsError, RevisionNotFound, UsageError
from vfs.quoting import shell_word
from vfs.repo.repository import Repository

DASHDASH = "dvfs.after_dashdash"  # meta: how many arguments followed `--`


class Invocation(Protocol):
    """What :func:`revs_and_paths` reads of a command's invocation (a ``click.Context``)."""

    @property
    def meta(self) -> dict[str, Any]:
        """``DASHDASH``: how many arguments followed ``--``, if one was given."""

    @property
    def command_path(self) -> str:
        """The command as its messages name it (``dvfs diff``)."""


REVISION_LIKE = re.compile(r"^(v\d+|HEAD|.*~\d*)$")  # never taken for a path by mistake
RANGE = re.compile(r"(.+?)\.\.\.?(.+)")  # git's A..B and A...B


def revs_and_paths(
    repo: Repository, ctx: Invocation, args: tuple[str, ...], most: int
) -> tuple[list[str], list[bytes]]:
    """Split ``[REV...] [--] [PATH...]`` into at most ``most`` revisions and paths.

    After ``--`` every argument is a path. Before it, leading arguments that name a
    revision are revisions and the rest paths, which must exist in the working tree
    or in HEAD, as git asks: a name that is both is ambiguous, and one that is
    neither is an error rather than an empty answer.
    """
    after = ctx.meta.get(DASHDASH)
    head = repo.history.head_id()
    at_most = "one revision" if most == 1 else "two revisions"
    if after is not None:
        cut = len(args) - after
        revs, rest = list(args[:cut]), list(args[cut:])
        if len(revs) > most:
            raise UsageError(f"give at most {at_most} before --")
        for r in revs:
            repo.history.resolve(r)  # RevisionNotFound, with close names
        return revs, [repo.rel(a) for a in rest]
    revs = []
    rest = list(args)
    while rest and len(revs) < most and is_revision(repo, rest[0]):
        if os.path.lexists(rest[0]):
            raise UsageError(
                f"{quoted(rest[0])} is both a revision and a path: write "
                f"`-- {shell_word(rest[0])}` for the path, or `{shell_word(rest[0])} --` for the "
                "revision"
            )
        revs.append(rest.pop(0))
    paths = []
    for a in rest:
        rel = repo.rel(a)
        known = os.path.lexists(a) or (
            head is not None and repo.history.lookup(repo.history.version(head).tree, rel)
        )
        if not known and is_revision(repo, a):
            raise UsageError(f"{ctx.command_path} takes at most {at_most}")
        if not known:
            if REVISION_LIKE.match(a):  # v9, HEAD~5: meant as a revision, whatever else
                repo.history.resolve(a)  # RevisionNotFound, saying what exists
            try:  # (a remote's branch read before its URL changed: what to do about it)
                repo.history.resolve(a)
            except RevisionNotFound as exc:
                if exc.hint:
                    raise
            _refuse_range(repo, ctx, a, most)
            close = close_revisions(repo, a)
            like = f"; did you mean: {', '.join(close)}" if close else ""
            raise UsageError(
                f"{quoted(a)} is neither a revision nor a path of the working tree or HEAD"
                f"{like} (a path that existed in an older version: write `-- {shell_word(a)}`)"
            )
        paths.append(rel)
    return revs, paths


def _refuse_range(repo: Repository, ctx: Invocation, arg: str, most: int) -> None:
    """UsageError saying what to write instead if ``arg`` is git's range ``A..B`` (or
    ``A...B``) of two revisions, which dvfs does not take."""
    m = RANGE.fullmatch(arg)
    if m is None or not (is_revision(repo, m[1]) and is_revision(repo, m[2])):
        return
    a, b = shell_word(m[1]), shell_word(m[2])
    if most >= 2:
        instead = f"`{ctx.command_path} {a} {b}` compares the two"
    else:
        instead = f"`{ctx.command_path} {b}` lists {quoted(m[2])} and the versions before it"
    raise UsageError(f"{quoted(arg)} is a range of versions, which dvfs does not take: {instead}")


def close_revisions(repo: Repository, arg: str) -> list[str]:
    """Names close to ``arg`` that do name versions (a mistyped tag or branch).

    An ``arg`` that names versions but not one (an id prefix of several) raises the
    error saying so: it is no unknown name."""
    try:
        repo.history.resolve(arg)
    except RevisionNotFound as exc:
        return exc.candidates
    return []


def is_revision(repo: Repository, arg: str) -> bool:
    """True if ``arg`` names a version."""
    try:
        repo.history.resolve(arg)
    except DvfsError:
        return False
    return True
