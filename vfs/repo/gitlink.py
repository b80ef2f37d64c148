"""Living beside git: the git commit of a version, ``.gitignore``, ``dvfs.lock``, ``dvfs.toml``.

Everything goes through plain ``git`` subprocess calls, and everything is optional:
outside a git work tree, or without git installed, these functions do nothing. Where
git could find no repository (:func:`_no_git_around`), it is not asked.

``dvfs.lock`` (at the repository root, meant to be committed to git) pins a data
version, so that a git commit says which data it was made with::

    # dvfs data version; after `git checkout`, run `dvfs checkout --lock`
    branch: main
    version: v3
    id: <64 hex>

Inside a git work tree it is rewritten on every commit and checkout, and read back
by ``dvfs checkout --lock``; outside git it is not written.

Both files sit in a working tree that is not trusted: they are read only if they are
regular files of a sane size (never through a link, never waiting on a FIFO), and
rewritten by renaming a new file over them, so a link there is replaced, never
written through.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vfs._os.beneath import read_regular
from vfs.errors import UsageError
from vfs.model.ids import from_hex
from vfs.repo.refs import check_ref_name
from vfs.store.durable import write_atomic

if TYPE_CHECKING:  # (imported where made: `dvfs status` reads dvfs.lock, never a GitLink)
    from vfs.model.version_codec import GitLink

LOCK_FILE = "dvfs.lock"
SHARED_FILE = "dvfs.toml"  # settings shared through git, see vfs.repo.shared
# A pipeline's stages and the record of their last runs (vfs.pipeline): versioned with
# the data and meant for git too, so never git-ignored by ``dvfs add``.
PIPELINE_FILE = "dvfs.yaml"
RUNS_FILE = "dvfs.runs"
_IN_GIT_TOO = frozenset({PIPELINE_FILE.encode(), RUNS_FILE.encode()})
# Variables that point git at a repository other than by looking around the directory.
_GIT_PLACES = ("GIT_DIR", "GIT_WORK_TREE", "GIT_COMMON_DIR")
GITIGNORE = ".gitignore"
IGNORE_HEADER = "# data tracked by dvfs"  # above the first patterns dvfs adds to it
MAX_GITIGNORE = 4 << 20  # bytes of a .gitignore dvfs reads to add to it
MAX_LOCK = 64 << 10  # bytes of a dvfs.lock dvfs reads


def _git(root: Path, *args: str) -> str | None:
    out = _git_raw(root, *args)
    return None if out is None else out.strip()


def _git_raw(root: Path, *args: str) -> str | None:
    """What ``git ARGS`` run in ``root`` prints, as it is; None if it fails or is missing.

    Decoded as file names are (bytes that are not UTF-8 kept as surrogates): git prints
    paths as they are with ``core.quotePath`` off, and values as they were written.
    """
    import subprocess  # here: most commands never run git, and it costs 4 ms to import

    try:
        out = subprocess.run(
            ["git", *args],
            cwd=root,
            capture_output=True,
            timeout=30,
            check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return os.fsdecode(out.stdout) if out.returncode == 0 else None


def git_output(root: Path, *args: str) -> str | None:
    """What ``git ARGS`` run in ``root`` prints (stripped); None if it fails or is missing."""
    return _git(root, *args)


def git_file(root: Path, commit: str, path: str, limit: int) -> bytes | None:
    """The bytes of ``path`` at git commit ``commit``; None if there is none there, or it
    holds more than ``limit`` bytes (a commit is anyone's: its size is asked first)."""
    import subprocess  # (see _git_raw)

    spec = f"{commit}:{path}"
    size = _git(root, "cat-file", "-s", spec)
    if size is None or not size.isdigit() or int(size) > limit:
        return None
    try:
        out = subprocess.run(
            ["git", "cat-file", "blob", spec], cwd=root, capture_output=True, timeout=30,
            check=False, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _no_git_around(root: Path) -> bool:
    """True if git would find no repository at or above ``root``, so need not be asked.

    git looks for ``.git`` (a directory or a file) in the directory it runs in and each
    one above it, takes a directory that is itself a git directory (HEAD, objects and
    refs: a bare repository), or follows a variable of _GIT_PLACES; where none of
    these is there, it could only answer "not a git repository". A question costs a
    process (3 to 4 ms): ``dvfs commit`` asked two of them, ``dvfs add`` one.
    """
    if any(name in os.environ for name in _GIT_PLACES):
        return False
    d = os.path.realpath(root)  # as the directory git runs in (links resolved)
    while True:
        if os.path.lexists(os.path.join(d, ".git")) or (
            os.path.lexists(os.path.join(d, "HEAD"))
            and os.path.isdir(os.path.join(d, "objects"))
            and os.path.isdir(os.path.join(d, "refs"))
        ):
            return False
        up = os.path.dirname(d)
        if up == d:
            return True
        d = up


def in_git(root: Path) -> bool:
    """True if ``root`` lies inside a git work tree."""
    if _no_git_around(root):
        return False
    return _git(root, "rev-parse", "--is-inside-work-tree") == "true"


def git_link(root: Path) -> GitLink | None:
    """The git HEAD commit around ``root`` and whether tracked files differ from it."""
    if _no_git_around(root):
        return None
    commit = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if not commit:
        return None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    from vfs.model.version_codec import GitLink

    return GitLink(commit, bool(status))


def git_tracked(root: Path, rels: list[bytes]) -> set[bytes]:
    """Those of ``rels`` (relative to ``root``) that git tracks, or that are directories
    holding a file git tracks; empty when git cannot say."""
    import subprocess  # (see _git_raw)

    listed: list[bytes] = []
    for i in range(0, len(rels), 1000):  # (well within the kernel's bound on arguments)
        try:
            out = subprocess.run(
                [b"git", b"--literal-pathspecs", b"ls-files", b"-z", b"--cached", b"--",
                 *rels[i : i + 1000]],
                cwd=root, capture_output=True, timeout=30, check=False,
                env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},
            )  # fmt: skip
        except (OSError, subprocess.TimeoutExpired):
            return set()
        if out.returncode != 0:
            return set()
        listed += [p for p in out.stdout.split(b"\0") if p]
    covered: set[bytes] = set()  # the files listed and every directory above them
    for p in listed:
        while p and p not in covered:
            covered.add(p)
            p = p.rpartition(b"/")[0]
    return {r for r in rels if r in covered}


def git_author(root: Path) -> str | None:
    """``Name <email>`` from git's configuration, if set.

    Read from git's files where that gives what git gives (``vfs.repo.git_config``);
    else one ``git config`` for both keys (a process each cost 3 to 4 ms of every
    commit). As ``git config user.name`` does, the last value of a key wins.
    """
    from vfs.repo.git_config import user

    known = user(git_around=not _no_git_around(root))
    if known is not None:
        found = known
    else:
        out = _git_raw(root, "config", "-z", "--get-regexp", r"^user\.(name|email)$")
        found = {}
        for entry in (out or "").split("\0"):
            key, _, value = entry.partition("\n")
            # (a value written in another encoding than UTF-8: its bytes replaced)
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            found[key.lower()] = value.strip()
    name, email = found.get("user.name"), found.get("user.email")
    if name and email:
        return f"{name} <{email}>"
    return name or None


def find_shared_root(start: Path) -> Path | None:
    """The nearest directory at or above ``start`` holding ``dvfs.toml``, if any.

    For a git clone that has the shared settings but no store yet (no ``.dvfs``).
    """
    for d in (start, *start.parents):
        if os.path.lexists(d / SHARED_FILE):  # (a link is found, and refused when read)
            return d
    return None


def _read_root_file(root: Path, name: str, limit: int) -> bytes | None:
    """A regular file at the root (see ``vfs._os.beneath.read_regular``); None if absent."""
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        return read_regular(fd, name, limit)
    finally:
        os.close(fd)


def ignore_paths(root: Path, rels: list[bytes], warn: Callable[[str], None] | None = None) -> bool:
    """Add ``/path`` patterns for ``rels`` to the root ``.gitignore``, when in git.

    Patterns already present, or below an ignored directory, are not repeated. A
    ``.gitignore`` that is not a regular file (a link, a FIFO) or is larger than
    MAX_GITIGNORE is left alone, with a warning. ``dvfs.yaml`` and ``dvfs.runs`` at the
    root are never added: they belong in git beside the code; nor is a path git
    tracks, or a directory holding one (a metrics file kept in git, say): ignoring it
    would hide its new files from ``git status``. Returns True if the file changed.
    """
    rels = [r for r in rels if r not in _IN_GIT_TOO]
    if not rels or not in_git(root):
        return False
    tracked = git_tracked(root, rels)  # (once: one git call per 1,000 paths)
    rels = [r for r in rels if r not in tracked]
    if not rels:
        return False
    try:
        raw = _read_root_file(root, GITIGNORE, MAX_GITIGNORE)
    except OSError as exc:
        if warn is not None:
            why = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            warn(f"{GITIGNORE} left as it is ({why}): add the tracked paths to it yourself")
        return False
    path = root / GITIGNORE
    text = "" if raw is None else raw.decode("utf-8", "surrogateescape")
    have = {line.strip() for line in text.splitlines()}
    wanted = ["/.dvfs/"]
    for rel in rels:
        wanted.append("/" + _literal(os.fsdecode(rel)))
    new = []
    for pat in wanted:
        parts = pat.rstrip("/").split("/")
        covered = any(
            "/".join(parts[:i]) in have or "/".join(parts[:i]) + "/" in have
            for i in range(2, len(parts) + 1)
        )
        if not covered and pat not in new:
            new.append(pat)
    if not new:
        return False
    if text and not text.endswith("\n"):
        text += "\n"
    if IGNORE_HEADER not in have:
        text += IGNORE_HEADER + "\n"
    write_atomic(path, (text + "\n".join(new) + "\n").encode("utf-8", "surrogateescape"))
    return True


def _literal(name: str) -> str:
    """A gitignore pattern for ``name`` itself: its glob characters escaped; a line
    break, which no pattern can hold (it would end the line, and the rest would be a
    pattern of its own: ``x\\nREADME.md`` ignored every README.md), matched by ``?``;
    trailing spaces, which git strips, escaped."""
    out = "".join("\\" + ch if ch in "*?[]!#\\" else "?" if ch in "\n\r" else ch for ch in name)
    kept = out.rstrip(" ")
    return kept + "\\ " * (len(out) - len(kept))


class LockPointer(NamedTuple):
    """What ``dvfs.lock`` names."""

    branch: str
    number: int
    oid: bytes


def write_lock(root: Path, ptr: LockPointer) -> None:
    """Rewrite ``dvfs.lock`` for ``ptr`` (only inside a git work tree: it is for git).
    A file that already says it is left untouched: git, in the middle of a rebase,
    takes a file replaced under it for a local change, even with the same bytes."""
    if not in_git(root):
        return
    text = (
        "# dvfs data version; after `git checkout`, run `dvfs checkout --lock`\n"
        f"branch: {ptr.branch}\nversion: v{ptr.number}\nid: {ptr.oid.hex()}\n"
    ).encode()
    with contextlib.suppress(OSError):
        if _read_root_file(root, LOCK_FILE, MAX_LOCK) == text:
            return
    write_atomic(root / LOCK_FILE, text, sync=False)


def read_lock(root: Path) -> LockPointer:
    """Parse ``dvfs.lock``; UsageError saying what is wrong."""
    path = root / LOCK_FILE
    try:
        raw = _read_root_file(root, LOCK_FILE, MAX_LOCK)
    except OSError as exc:
        why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
        raise UsageError(f"{path} is not a plain file ({why}): restore it from git") from None
    if raw is None:
        raise UsageError(f"{path} does not exist: commit a version first")
    return parse_lock(raw, str(path))


def parse_lock(raw: bytes, where: str) -> LockPointer:
    """What the text of a ``dvfs.lock`` names; UsageError (naming ``where``) if nothing,
    or a branch name no branch can have (the file comes from git: whoever committed it
    chose the name, and HEAD would hold it).

    A file as :func:`write_lock` writes it is read without YAML (``dvfs status`` reads
    it every time); any other text, as YAML.
    """
    ptr = _as_written(raw) or _as_yaml(raw, where)
    try:
        check_ref_name(ptr.branch, "branch", existing=True)
    except UsageError as exc:
        raise UsageError(
            f"{where} names a branch that cannot be: {exc}; restore it from git"
        ) from None
    return ptr


_CONFLICT = re.compile(rb"^(<{7}|={7}|>{7})( |\r?$)", re.MULTILINE)  # git's merge markers


def _as_yaml(raw: bytes, where: str) -> LockPointer:
    """What ``raw``, a lock edited by hand, names; UsageError if nothing."""
    if _CONFLICT.search(raw):  # a git merge stopped on it
        raise UsageError(
            f"{where} holds git's conflict markers: keep one side's version (`git "
            "checkout --ours dvfs.lock` or `--theirs`), then `dvfs checkout --lock`"
        )
    import yaml  # here: a lock edited by hand; 10 ms to import

    try:
        # Every value as the text written: a branch named yes, on, null or 1.0 stays that
        # name (a typing reader made them True, None and 1.0).
        rec = yaml.load(raw.decode("utf-8", "replace"), Loader=yaml.BaseLoader)
    except (yaml.YAMLError, RecursionError):  # (the reader recurses: brackets nested deep)
        raise UsageError(f"{where} is not readable YAML: restore it from git") from None
    try:
        if not isinstance(rec, dict):
            raise ValueError("not a mapping")
        # Each a line of text: a list is not made text, which an alias repeated in
        # aliases (600 bytes naming 10**9 items) would make take minutes and gigabytes.
        branch, version, oid = (rec[k] for k in ("branch", "version", "id"))
        if not all(isinstance(v, str) for v in (branch, version, oid)):
            raise ValueError("not text")
        if not version.startswith("v"):
            raise ValueError("not a version number")
        return LockPointer(branch, int(version[1:]), from_hex(oid))
    except (KeyError, ValueError):
        raise UsageError(
            f"{where} does not name a version (needs branch, version and id): restore it from git"
        ) from None


_PLAIN_BRANCH = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._/-")


def _as_written(raw: bytes) -> LockPointer | None:
    """What ``raw`` names if it is exactly what :func:`write_lock` writes, with a branch
    name YAML reads as itself (letters, digits, ``._/-``); None otherwise."""
    lines = raw.split(b"\n")
    if len(lines) != 5 or lines[4] or not lines[0].startswith(b"#"):
        return None
    keys = (b"branch: ", b"version: v", b"id: ")
    if not all(line.startswith(k) for line, k in zip(lines[1:4], keys, strict=True)):
        return None
    branch, number, oid = (line[len(k) :] for line, k in zip(lines[1:4], keys, strict=True))
    if not branch or not set(branch) <= _PLAIN_BRANCH or not number.isdigit():
        return None
    try:
        return LockPointer(branch.decode(), int(number), from_hex(oid.decode("ascii")))
    except (ValueError, UnicodeDecodeError):
        return None
