"""Git hooks that keep the data in step with the code: ``dvfs install``.

Six hooks are written to the git repository's hooks directory (``git rev-parse
--git-path hooks``, so ``core.hooksPath`` and linked work trees are honoured):

- ``post-checkout`` and ``post-merge`` (``git pull`` runs the second, not the first):
  when the commit's ``dvfs.lock`` differs from the one before (after ``git merge
  --squash``, which commits nothing, the work tree's from HEAD's), the data is brought to
  the version it names (:func:`follow_lock`: what is missing is fetched from the
  default remote, then ``dvfs checkout --lock``, or a fast-forward of the branch when
  the lock moved it ahead). A commit without a ``dvfs.lock`` names no data: the data
  is left as it is. After a merge whose lock names the version the data already is
  (:func:`at_lock`: ``dvfs pull`` ran before ``git pull``), nothing is done, and
  uncommitted edits stay. A clone without a store is told to run ``dvfs pull`` instead;
  nothing else is done there;
- ``post-commit``: the same, from the commit's first parent to it, where the data is
  not already at the version the commit's ``dvfs.lock`` names (:func:`at_lock`) and
  the work tree holds that very lock (:func:`lock_in_work_tree`): ``git cherry-pick``
  and ``git revert`` of a commit that changed it, and ``git commit`` concluding a merge
  that ``git merge --no-commit``, or a conflict, left open (git runs no
  ``post-merge`` then). A commit of the user's own is made with the data at the lock
  (``dvfs commit`` writes it): nothing is done;
- ``reference-transaction``, for ``git reset`` (``--hard``, ``--keep``, ``--merge``),
  for which git runs no other hook: when HEAD moved (:func:`moved_head`, or was set
  to where it was), the data is brought to the version the lock of the commit it is
  at names, where the work tree holds that lock and the data is not at it
  (``--soft`` and ``--mixed`` leave the work tree's lock, and so the data, as they
  were). The script passes over every other
  ref update, cheaply, before dvfs is started: a state other than ``committed``, a
  transaction that leaves HEAD alone, one of a merge, pull or rebase (they set
  ``GIT_REFLOG_ACTION`` and run hooks of their own), and a HEAD that moved from
  anywhere but ``ORIG_HEAD`` (``git reset`` writes it just before it moves HEAD;
  ``git checkout`` and ``git commit`` do not, and have hooks of their own);
- ``post-rewrite``, after ``git rebase`` (and ``git pull --rebase``): the same, from
  the commit the branch was at before (``ORIG_HEAD``) to the one it is at now. The
  ``post-checkout`` git runs as a rebase starts (for the commit it starts from, not
  the one it ends at) then does nothing, where ``post-rewrite`` serves the
  repository (:func:`rebasing`);
- ``pre-push``: when a commit being pushed (each the git remote is not known to have
  and that changed ``dvfs.lock``, not only the tip: :func:`lock_commits`) has a
  ``dvfs.lock`` naming a version that
  the default dvfs remote is not known to have (no remote-tracking branch there
  holds it, nor, asked of the remote then, a tag of it: :func:`tagged_on_remote`),
  it offers to ``dvfs push`` it first, asking on the terminal
  (``/dev/tty``). Without a terminal (an IDE, CI) it never waits: it says what is
  missing and the git push goes on. A version its branch here no longer holds
  (:func:`on_branch`) is not offered: pushing the branch would not send it; a
  warning says so, and how to send it.

Each hook is a small ``sh`` script that runs ``dvfs hook NAME`` (the logic is here, in
Python). A hook that was there before is not overwritten: it is renamed
``NAME.dvfs-chained`` and the new hook runs it first, with the same arguments and
input, stopping if it fails. ``dvfs install`` is idempotent; a second dvfs repository
in the same git work tree is added to the hooks' list of repositories;
``dvfs install --uninstall`` takes its repository out of the list, and when none is
left removes the hooks and renames the chained ones back. A hook dvfs did not write
is never changed or removed.

A hooks directory outside this repository's git directory (``core.hooksPath`` set
globally, or to a folder of the work tree) may be every repository's: hooks written
there run in each, and removing them removes them from each. ``install`` and
``uninstall`` refuse to change anything there unless told ``shared`` (``dvfs install
--shared``); when there is nothing to change they say so all the same.

A hook written by dvfs holds, in this order: the ``#!/bin/sh`` line, the marker line
``MARKER``, a line ``# dvfs-repositories: <JSON list of directories, relative to the
top of the work tree>``, then the script.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path

from vfs.errors import DvfsError, ObjectMissing, UsageError
from vfs.ops import checkout as co
from vfs.ops.sync import Transfer, download_data, fetch_locked
from vfs.quoting import quoted
from vfs.remote.config import (
    RemoteSpec,
    connect,
    default_remote,
    get_remote,
    index_cache,
    tracking_branches,
)
from vfs.remote.reader import RemoteRepo
from vfs.repo.gitlink import (
    LOCK_FILE,
    MAX_LOCK,
    LockPointer,
    git_file,
    git_output,
    parse_lock,
    read_lock,
)
from vfs.repo.repository import Repository
from vfs.store.durable import write_atomic
from vfs.worktree.pools import Workers

HOOKS = (
    "post-checkout", "post-commit", "post-merge", "post-rewrite", "pre-push",
    "reference-transaction",
)  # fmt: skip
MARKER = "# dvfs-hook: written by `dvfs install`; `dvfs install --uninstall` removes it"
CHAINED = ".dvfs-chained"
_REPOS = re.compile(r"^# dvfs-repositories: (.*)$", re.MULTILINE)
MAX_HOOK = 1 << 20  # bytes of an existing hook read to see whether it is dvfs's
ZERO = "0" * 40

_SCRIPT = """\
#!/bin/sh
{marker}
# dvfs-repositories: {repos}
# It runs {name}{chained} first, if there is one, then dvfs.
chained="$0{chained}"
{body}
"""
_FORWARD = """\
if [ -x "$chained" ]; then "$chained" "$@" || exit $?; fi
if ! command -v dvfs >/dev/null 2>&1; then
    echo "dvfs: the dvfs command is not on PATH: the data was not updated" >&2; exit 0
fi
exec dvfs hook {name} {dirs} -- "$@"
"""
_FORWARD_INPUT = """\
input=$(cat)
if [ -x "$chained" ]; then
    if [ -n "$input" ]; then printf '%s\\n' "$input"; fi | "$chained" "$@" || exit $?
fi
if ! command -v dvfs >/dev/null 2>&1; then
    echo "dvfs: the dvfs command is not on PATH: the data versions were not checked" >&2
    exit 0
fi
if [ -n "$input" ]; then printf '%s\\n' "$input"; fi | exec dvfs hook {name} {dirs} -- "$@"
"""

_FORWARD_REFS = """\
input=$(cat)
if [ -x "$chained" ]; then
    if [ -n "$input" ]; then printf '%s\\n' "$input"; fi | "$chained" "$@" || exit $?
fi
# HEAD moved by `git reset` alone (see vfs.ops.githooks): other commands run hooks of their own
[ "$1" = committed ] && [ -z "$GIT_REFLOG_ACTION" ] || exit 0
old=$(printf '%s\\n' "$input" | sed -n 's/^\\([0-9a-f]*\\) [0-9a-f]* HEAD$/\\1/p')
[ -n "$old" ] && [ "$old" = "$(git rev-parse -q --verify ORIG_HEAD)" ] || exit 0
if ! command -v dvfs >/dev/null 2>&1; then
    echo "dvfs: the dvfs command is not on PATH: the data was not updated" >&2; exit 0
fi
printf '%s\\n' "$input" | exec dvfs hook {name} {dirs} -- "$@"
"""


@dataclass
class HookChanges:
    """What ``install`` or ``uninstall`` did, hook by hook."""

    hooks_dir: Path
    written: list[str] = field(default_factory=list)
    chained: list[str] = field(default_factory=list)  # existing hooks kept, run first
    restored: list[str] = field(default_factory=list)  # chained hooks put back
    removed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)  # not dvfs's: left alone
    unchanged: list[str] = field(default_factory=list)


def git_places(root: Path) -> tuple[Path, Path]:
    """The top of the git work tree around ``root`` and its hooks directory."""
    top = git_output(root, "rev-parse", "--show-toplevel")
    hooks = git_output(root, "rev-parse", "--path-format=absolute", "--git-path", "hooks")
    if not top or not hooks:
        raise UsageError(f"{root} is not inside a git work tree: `dvfs install` adds git hooks")
    return Path(top), Path(hooks)


def _outside_git_dir(root: Path, hooks: Path) -> bool:
    """True if ``hooks`` is not inside the git directory of the work tree at ``root``
    (its common directory, which linked work trees share)."""
    common = git_output(root, "rev-parse", "--path-format=absolute", "--git-common-dir")
    if not common:
        return True
    inside = os.path.relpath(os.path.realpath(hooks), os.path.realpath(common))
    return inside == os.pardir or inside.startswith(os.pardir + os.sep)


def _refuse_shared(hooks: Path, done: str, flags: str) -> UsageError:
    return UsageError(
        f"git's hooks folder here, {quoted(str(hooks))} (core.hooksPath), is outside this "
        f"repository's .git: other git repositories may use it too, and {done}; "
        f"`dvfs install {flags}` does it all the same"
    )


def _listed(hooks: Path, me: str) -> list[str]:
    """The hooks of ``hooks`` written by dvfs that list the repository ``me``."""
    return [n for n in HOOKS if me in (_repos_of(_read_hook(hooks / n) or "") or [])]


def render(name: str, repos: list[str]) -> str:
    """The text of dvfs's hook ``name`` for the repositories ``repos``."""
    dirs = " ".join(f"--in {shlex.quote(d)}" for d in repos)
    form = {"pre-push": _FORWARD_INPUT, "reference-transaction": _FORWARD_REFS}.get(name, _FORWARD)
    body = form.format(name=name, dirs=dirs)
    return _SCRIPT.format(
        marker=MARKER, repos=json.dumps(repos), name=name, chained=CHAINED, body=body.rstrip()
    )


def _read_hook(path: Path) -> str | None:
    """A hook's text (None if there is none); UsageError if it is not a file dvfs can read."""
    try:
        st = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):  # (no hooks folder: /dev/null)
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_HOOK:
        return ""  # a link, or something large: not one of ours
    return path.read_bytes().decode("utf-8", "replace")


def _repos_of(text: str) -> list[str] | None:
    """The repositories a dvfs hook serves; None if ``text`` is not a dvfs hook."""
    if MARKER not in text:
        return None
    found = _REPOS.search(text)
    try:
        repos = json.loads(found.group(1)) if found else []
    except ValueError:
        repos = []
    return [r for r in repos if isinstance(r, str)] if isinstance(repos, list) else []


def _where(top: Path, root: Path) -> str:
    rel = os.path.relpath(root, top)
    if any(ch in rel for ch in "\n\r\0"):
        raise UsageError(f"{root}: a directory name with a line break cannot go in a git hook")
    return rel


def install(root: Path, *, shared: bool = False) -> HookChanges:
    """Add the hooks for the dvfs repository at ``root`` (see the module docstring);
    into a hooks directory outside its git directory only if ``shared``."""
    top, hooks = git_places(root)
    me = _where(top, root)
    if os.path.lexists(hooks) and not hooks.is_dir():
        if _outside_git_dir(root, hooks):  # (core.hooksPath=/dev/null turns hooks off)
            raise UsageError(
                f"core.hooksPath sends git to {quoted(str(hooks))} for its hooks, which is not "
                "a folder (git runs none): set core.hooksPath to a folder, or unset it, "
                "then run `dvfs install` again"
            )
        raise UsageError(
            f"{quoted(str(hooks))} is not a folder, and git looks for its hooks there: move "
            "it away (or set core.hooksPath to a folder), then run `dvfs install` again"
        )
    if not shared and len(_listed(hooks, me)) < len(HOOKS) and _outside_git_dir(root, hooks):
        raise _refuse_shared(hooks, "dvfs's hooks there would run in each", "--shared")
    hooks.mkdir(parents=True, exist_ok=True)
    done = HookChanges(hooks)
    for name in HOOKS:
        path = hooks / name
        text = _read_hook(path)
        repos = _repos_of(text) if text is not None else []
        if repos is None:  # someone else's hook: run it first, from its new name
            kept = hooks / (name + CHAINED)
            if os.path.lexists(kept):
                raise UsageError(
                    f"{path} is not dvfs's and {kept.name} exists beside it: "
                    "merge or remove one of them, then run `dvfs install` again"
                )
            os.rename(path, kept)
            done.chained.append(name)
            repos = []
        if me in repos:
            done.unchanged.append(name)
            continue
        write_atomic(path, render(name, [*repos, me]).encode(), mode=0o755)
        os.chmod(path, 0o755)  # whatever the umask
        done.written.append(name)
    return done


def uninstall(root: Path, *, shared: bool = False) -> HookChanges:
    """Take the repository at ``root`` out of dvfs's hooks; remove them when none is left.
    From a hooks directory outside its git directory only if ``shared``."""
    top, hooks = git_places(root)
    me = _where(top, root)
    if not shared and _listed(hooks, me) and _outside_git_dir(root, hooks):
        raise _refuse_shared(
            hooks, "removing dvfs's hooks there removes them from each", "--uninstall --shared"
        )
    done = HookChanges(hooks)
    for name in HOOKS:
        path = hooks / name
        text = _read_hook(path)
        repos = _repos_of(text) if text is not None else None
        if text is None:
            continue
        if repos is None:
            done.foreign.append(name)
            continue
        if me not in repos:
            done.unchanged.append(name)
            continue
        left = [r for r in repos if r != me]
        if left:
            write_atomic(path, render(name, left).encode(), mode=0o755)
            os.chmod(path, 0o755)
            done.written.append(name)
            continue
        os.unlink(path)
        done.removed.append(name)
        kept = hooks / (name + CHAINED)
        if os.path.lexists(kept):
            os.rename(kept, path)
            done.restored.append(name)
    return done


# ----------------------------------------------------------------------- running the hooks


def lock_changed(top: Path, repo_dir: str, old: str, new: str | None) -> bool:
    """True if ``dvfs.lock`` of ``repo_dir`` differs between commits ``old`` and ``new``
    (``None``: the file in the work tree, as ``git merge --squash`` leaves it).

    An ``old`` that is not a commit (the zero id of a first checkout) counts as a change.
    The path is given to git as it is, not as a pattern (a folder named ``d*``).
    """
    path = os.path.normpath(os.path.join(repo_dir, LOCK_FILE))
    commits = (old,) if new is None else (old, new)
    return git_output(top, "diff", "--quiet", *commits, "--", f":(literal){path}") is None


def moved_head(lines: list[str]) -> tuple[str, str] | None:
    """The commits HEAD moved from and to, as a reference-transaction hook's input
    names them (``OLD NEW HEAD``: the same commit for ``git reset --hard`` alone, which
    writes the files again); None if HEAD was left alone, created or deleted."""
    for line in lines:
        parts = line.split()
        if (
            len(parts) == 3
            and parts[2] == "HEAD"
            and ZERO not in parts[:2]
            and all(re.fullmatch(r"[0-9a-f]{40,64}", p) for p in parts[:2])
        ):
            return parts[0], parts[1]
    return None


def lock_in_work_tree(top: Path, root: Path, repo_dir: str, commit: str) -> bool:
    """True if the work tree's ``dvfs.lock`` of ``repo_dir`` (at ``root``) names what the
    one of ``commit`` names, or both have none: git wrote it there, it is not a lock
    the work tree kept (``git reset --soft``) or the user changed since."""
    try:
        here: LockPointer | None = read_lock(root)
    except (UsageError, OSError):
        here = None
    return here == lock_at(top, repo_dir, commit) and (
        here is not None or not os.path.lexists(root / LOCK_FILE)
    )


def at_lock(repo: Repository) -> bool:
    """True if the working tree holds the version ``dvfs.lock`` names (as ``dvfs status``
    tells it): there is nothing to bring."""
    try:
        ptr = read_lock(repo.root)
    except (UsageError, OSError):  # (none, or unreadable: following it says why)
        return False
    return ptr.oid == (repo.index().base or repo.refs.head_id(repo.refs.head()))


def rebasing(top: Path, repo_dir: str) -> bool:
    """True if a ``git rebase`` is under way in the work tree at ``top`` and dvfs's
    ``post-rewrite`` hook, which follows the lock at its end, serves ``repo_dir``."""
    places = [git_output(top, "rev-parse", "--path-format=absolute", "--git-path", p)
              for p in ("rebase-merge", "rebase-apply", "hooks")]  # fmt: skip
    if not all(places) or not any(os.path.isdir(str(p)) for p in places[:2]):
        return False
    return repo_dir in (_repos_of(_read_hook(Path(str(places[2]), "post-rewrite")) or "") or [])


def lock_at(top: Path, repo_dir: str, commit: str) -> LockPointer | None:
    """What ``dvfs.lock`` of ``repo_dir`` names at ``commit`` (None if none, or unreadable)."""
    path = os.path.normpath(os.path.join(repo_dir, LOCK_FILE))
    raw = git_file(top, commit, path, MAX_LOCK)
    if not raw:
        return None
    try:
        return parse_lock(raw, f"{commit[:10]}:{path}")
    except UsageError:
        return None


def pushed_commits(lines: list[str]) -> list[tuple[str, str]]:
    """The local commits a pre-push hook's input names, each with the commit the remote's
    ref is at (the zero id for a new ref); deletions left out."""
    out = []
    for line in lines:
        parts = line.split()
        if (
            len(parts) == 4
            and parts[1] != ZERO
            and all(re.fullmatch(r"[0-9a-f]{40,64}", p) for p in (parts[1], parts[3]))
        ):
            out.append((parts[1], parts[3]))
    return out


MAX_PUSHED = 100  # commits of a push whose dvfs.lock is read (newest first), and each tip


def lock_commits(top: Path, repo_dir: str, remote: str, pushed: list[tuple[str, str]]) -> list[str]:
    """The commits of ``pushed`` (:func:`pushed_commits`) that the git remote ``remote``
    is not known to have and that changed ``dvfs.lock`` of ``repo_dir``, with each tip:
    a teammate may check out any of them, not only the last. At most MAX_PUSHED besides
    the tips."""
    path = os.path.normpath(os.path.join(repo_dir, LOCK_FILE))
    out = dict.fromkeys(local for local, _ in pushed)
    more: dict[str, None] = {}
    for local, theirs in pushed:
        have = [] if theirs == ZERO else [theirs]
        found = git_output(
            top, "rev-list", f"--max-count={MAX_PUSHED}", local, "--not", *have,
            f"--remotes={remote}", "--", f":(literal){path}",
        )  # fmt: skip
        if found is None and have:  # (theirs not here: the push is refused unless forced)
            found = git_output(
                top, "rev-list", f"--max-count={MAX_PUSHED}", local, "--not",
                f"--remotes={remote}", "--", f":(literal){path}",
            )  # fmt: skip
        more.update(dict.fromkeys((found or "").split()))
    return [*out, *[c for c in more if c not in out][:MAX_PUSHED]]


def needs_push(repo: Repository, remote: str, ptr: LockPointer) -> bool:
    """True if ``ptr``'s version is here but no branch of ``remote`` is known to hold it.

    "Known" is what the last push, fetch or pull saw (``refs/remotes/REMOTE/*``); a
    version this clone does not have is someone else's to push.
    """
    hist = repo.history
    try:
        hist.version(ptr.oid)
    except ObjectMissing:
        return False
    for tip in tracking_branches(repo, remote).values():
        if hist.is_ancestor(ptr.oid, tip):
            return False
    return True


def tagged_on_remote(
    repo: Repository, spec: RemoteSpec, oids: list[bytes]
) -> tuple[set[bytes], str | None]:
    """Those of ``oids`` that a tag of remote ``spec`` holds (names, or names a version
    built on them), asked of the remote: this clone does not know which of its tags the
    remote has (a fetch copies the remote's tags among its own). With why, if the
    remote's tags could not be read (then the set is empty): asked once, each request
    given up after a few seconds without an answer (``connect``'s ``quick``), as git
    waits to push."""
    hist = repo.history
    try:
        remote = RemoteRepo(connect(spec, 8, quick=True), index_cache(repo, spec.name))
        tags = remote.refs("tags", [], known=repo.refs.tags().values())
    except (DvfsError, OSError) as exc:
        return set(), str(exc) or type(exc).__name__
    held = set()
    for oid in oids:
        for tip in tags.values():
            try:
                if tip == oid or hist.is_ancestor(oid, tip):
                    held.add(oid)
                    break
            except ObjectMissing:  # a version this clone never fetched: it cannot tell
                continue
    return held, None


def on_branch(repo: Repository, ptr: LockPointer) -> bool:
    """True if ``ptr``'s branch here holds its version (at its tip or below it), so that
    ``dvfs push`` of the branch sends that version; not once the branch was moved off
    it (``commit --amend``, ``branch -f``) or deleted."""
    tip = repo.refs.get(f"refs/heads/{ptr.branch}")
    return tip is not None and repo.history.is_ancestor(ptr.oid, tip)


def has_data(repo: Repository, oid: bytes) -> bool:
    """True if version ``oid``, its trees and every chunk of its files are stored here."""
    hist = repo.history
    try:
        tree = hist.version(oid).tree
        return all(repo.store.has(c.oid) for _, e in hist.walk(tree) for c in e.chunks)
    except ObjectMissing:
        return False


@dataclass
class Followed:
    """What ``follow_lock`` did."""

    lock: LockPointer
    fetched_from: str | None  # the remote the version's data came from, if any
    transfer: Transfer | None
    checkout: co.CheckoutReport


def follow_lock(repo: Repository, workers: Workers, *, jobs: int = 8) -> Followed:
    """Bring the data to the version ``dvfs.lock`` names, after git changed the file.

    What is missing here is fetched from the default remote first (the git commit may
    come from a teammate). If HEAD is on the lock's branch and that branch is behind
    the version (a ``git pull`` brought a newer lock), the branch moves there with the
    data, as ``dvfs pull`` would move it; otherwise it is ``dvfs checkout --lock``.
    """
    ptr = read_lock(repo.root)
    fetched_from = None
    transfer = None
    if not has_data(repo, ptr.oid):
        remote = default_remote(repo)
        if remote is not None:
            spec = get_remote(repo, remote)
            meter = connect(spec, jobs)
            with repo.locked():
                got = fetch_locked(repo, spec, meter, jobs)
                try:
                    repo.history.version(ptr.oid)
                except ObjectMissing:
                    raise UsageError(
                        f"{LOCK_FILE} names {ptr.branch} v{ptr.number} ({ptr.oid.hex()[:10]}), "
                        f"which remote {spec.name} does not have: whoever committed it must "
                        "`dvfs push` it"
                    ) from None
                download_data(repo, meter, got.index, ptr.oid, [], workers, jobs, got.transfer)
            got.transfer.requests = meter.requests
            fetched_from, transfer = spec.name, got.transfer
    hist = repo.history
    head = hist.head()
    local = repo.refs.get(f"refs/heads/{ptr.branch}")
    if (
        head.detached is None
        and head.branch == ptr.branch
        and local != ptr.oid
        and (local is None or hist.is_ancestor(local, ptr.oid))
    ):
        report = co.fast_forward(repo, ptr.branch, local, ptr.oid, workers)
    else:
        report = co.checkout(repo, None, [], workers, from_lock=True)
    return Followed(ptr, fetched_from, transfer, report)
