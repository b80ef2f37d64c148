"""What the dashboard may change, with ``dvfs ui --allow-write``: the CLI's own operations.

Each action is the function behind the CLI command it stands for (``dvfs tag NAME
REV``: ``vfs.ops.branches.create_tag``; ``dvfs branch -d NAME``: ``delete_branch``;
``dvfs snapshot MNT -m MSG``: ``vfs.mount.control.snapshot``),
so it refuses what the command refuses and changes refs the same way: under the
repository's lock, by compare-and-swap, with an audit entry written first. The entry's
``cmd`` is the command the action stands for, as ``dvfs ui`` ran it
(``["dvfs", "ui", "tag", NAME, REV]``), not the server's command line.

Arguments come from a request: names are checked as ref names before any ref is
looked up (so ``../`` can never name a file outside ``refs/``), revisions go through
``History.resolve``. The routes that call these (``vfs.ui.app``) check the request
first: ``--allow-write`` given, a POST with the page's CSRF token (see there); each
action runs on a repository handle of its own (:func:`run`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vfs.errors import UsageError
from vfs.mount import control
from vfs.ops.branches import create_tag, delete_branch
from vfs.repo import audit
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import Repository
from vfs.ui import data

MAX_ARG = 1024  # characters of one argument, at most
Action = Callable[[Repository, dict[str, Any]], dict[str, Any]]


def text_arg(body: dict[str, Any], name: str, default: str | None = None) -> str:
    """The string argument ``name`` of an action's JSON body (UsageError, saying which
    and why, if missing or not a short string without NUL)."""
    value = body.get(name, default)
    if value is None or value == "":
        raise UsageError(f"{name} is missing: give it in the action's JSON body")
    if not isinstance(value, str):
        raise UsageError(f"{name} must be text, not {json.dumps(value)[:40]}")
    if "\0" in value:
        raise UsageError(f"{name} may not hold a NUL character")
    if len(value) > MAX_ARG:
        raise UsageError(f"{name} is longer than {MAX_ARG} characters")
    return value


def ref_json(repo: Repository, name: str, oid: bytes) -> dict[str, Any]:
    """A branch or tag as ``dvfs tag --json`` shows one: name, version and id."""
    return {"name": name, "version": repo.history.label(oid), "id": oid.hex()}


def tag(repo: Repository, body: dict[str, Any]) -> dict[str, Any]:
    """``dvfs tag NAME REV``: body ``{"name", "rev"}`` (rev: HEAD if left out)."""
    name = check_ref_name(text_arg(body, "name"), "tag")
    rev = text_arg(body, "rev", "HEAD")
    with audit.acting(["dvfs", "ui", "tag", name, rev]):
        oid = create_tag(repo, name, rev)
    return {"tagged": ref_json(repo, name, oid)}


def delete_branch_action(repo: Repository, body: dict[str, Any]) -> dict[str, Any]:
    """``dvfs branch -d NAME``: body ``{"name"}``; not the current branch, nor one
    holding versions no other ref holds (``"force": true``: as ``dvfs branch -D``)."""
    name = check_ref_name(text_arg(body, "name"), "branch", existing=True)
    force = body.get("force", False)
    if not isinstance(force, bool):
        raise UsageError("force: give true or false")
    if repo.refs.get(f"refs/heads/{name}") is None:
        raise UsageError(f"no branch named {name}: nothing was deleted")
    with audit.acting(["dvfs", "ui", "branch", "-D" if force else "-d", name]):
        was = delete_branch(repo, name, force=force)
    return {"deleted": ref_json(repo, name, was)}


def snapshot(repo: Repository, body: dict[str, Any]) -> dict[str, Any]:
    """``dvfs snapshot MNT -m MESSAGE``: body ``{"mountpoint", "message"}``; MNT must be
    a live, writable mount of this repository as the Mounts page lists it (so a
    request can name no other path). Its daemon records the version and writes the
    audit entry of the branch it moves, naming this action as its command."""
    mnt = text_arg(body, "mountpoint")
    message = text_arg(body, "message")
    mine = [m for m in data.mounts(str(repo.root))["mounts"] if m["mountpoint"] == mnt]
    if not mine or mine[0]["state"] != "mounted" or mine[0]["work_dir"] is None:
        raise UsageError(f"{mnt} is not a writable mount of this repository")
    with audit.acting(["dvfs", "ui", "snapshot", mnt, "-m", message]):
        got = control.snapshot(mnt, message, {})
    got.pop("ok", None)
    return {"snapshot": got}


ACTIONS: dict[str, Action] = {
    "tag": tag,
    "delete-branch": delete_branch_action,
    "snapshot": snapshot,
}


def run(root: Path, action: Action, body: dict[str, Any]) -> dict[str, Any]:
    """``action`` on a handle of the repository at ``root`` opened for it, as the
    command it stands for opens one. The server's own handle keeps what its store has
    read: a version a ``dvfs gc`` deleted since (its branch deleted meanwhile) still
    resolves there, and a tag of it would name a version no longer stored."""
    repo = Repository(root)
    try:
        return action(repo, body)
    finally:
        repo.store.close()
