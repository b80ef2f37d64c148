"""A repository on disk: its layout, format record, lock and the parts built on them.

Layout::

    <root>/                 the working tree
    <root>/dvfs.lock        the pinned data version, for git (see vfs.repo.gitlink)
    <root>/dvfs.toml        settings shared through git: remotes (see vfs.repo.shared)
    <root>/.dvfs/format     format record (JSON, below); never changes after init
    <root>/.dvfs/config     this clone's settings (JSON object; may be absent); they
                            override dvfs.toml's
    <root>/.dvfs/HEAD, refs/, refs.lock   see vfs.repo.refs
    <root>/.dvfs/index      staging index, see vfs.repo.stage
    <root>/.dvfs/objects/   packed objects, see vfs.store
    <root>/.dvfs/lock       repository lock, see vfs.store.lock
    <root>/.dvfs/remotes/   cached index segments of remotes, see vfs.remote.config
    <root>/.dvfs/worktrees/ working trees of writable mounts, see daemon.overlay
    <root>/.dvfs/pins/      what running processes ask gc to keep, see vfs.store.pins
    <root>/.dvfs/numbers    the ids of one first-parent chain, see vfs.repo.numbers

Format record, version 2::

    {"format": 2, "hash": "blake3-256", "chunker": {"algorithm": "fastcdc",
     "min": 262144, "avg": 1048576, "max": 4194304, "normalization": 1}}

Format 2 names packs by the BLAKE3 of their header (``vfs.store.packs.pack_id``);
format 1 named them by the BLAKE3 of the whole file. Everything else is the same, so a
format 1 record (a repository or remote made by an older dvfs) is read as it is and
never rewritten: packs of both names are accepted, new packs get header names, and the
older dvfs, which never checks a pack's name, can still use it.

The chunker's sizes must lie in the ranges of ``vfs.model.chunking`` (a clone takes the
record from its remote). The format record and the config are read only if they are
regular files of at most ``RECORD_LIMIT`` bytes, so that a FIFO or a huge file in
their place gives an error instead of a hang or an exhausted memory.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vfs import settings
from vfs._os.helper_process import process_tag, tag_alive
from vfs._os.mount_table import outermost_dvfs_mount
from vfs.errors import DvfsError, FormatError, NotARepository, UsageError
from vfs.model.chunking import Chunker, ChunkerParams
from vfs.quoting import quote_given, quote_name
from vfs.repo.refs import Refs, check_ref_name
from vfs.repo.stage import Index, not_checked_out
from vfs.store.durable import write_atomic
from vfs.store.lock import repository_lock

if TYPE_CHECKING:
    from vfs.repo.history import History
    from vfs.store.objects import ObjectStore

DVFS_DIR = ".dvfs"
RECORD_LIMIT = 1024 * 1024
REPO_FORMAT = 2
READ_FORMATS = (1, 2)  # format records this dvfs reads (see the module docstring)
DEFAULT_BRANCH = "main"


def _within(absolute: str, root: str) -> bool:
    """Whether a normalised absolute path is ``root`` or below it, as written."""
    return absolute == root or absolute.startswith(root.rstrip("/") + "/")


def _is_link(path: Path) -> bool:
    """Whether ``path`` is a symbolic link; False if nothing can be there (a name
    longer than the filesystem takes, as a missing one)."""
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):  # (as Path.is_symlink: ELOOP)
            return False
        raise


def _refuse_a_link_from_git(root: Path) -> None:
    """UsageError if ``.dvfs`` at ``root``, a symbolic link, is one git tracks.

    A link the user made keeps the repository elsewhere (docs/security.md); one that a
    git commit brought (``git add -f .dvfs``) would have every command read, write and
    push whatever store it points to (another project's, another user's) as this
    clone's own. Git is asked only when ``.dvfs`` is a link.
    """
    from vfs.repo.gitlink import git_tracked  # (a process: only for a link)

    if git_tracked(root, [DVFS_DIR.encode()]):
        raise UsageError(
            f"{quote_name(str(root / DVFS_DIR))} is a symbolic link that git tracks (to "
            f"{quote_name(os.readlink(root / DVFS_DIR))}): a git commit made it, and dvfs "
            "never takes a store from git; `git rm --cached .dvfs`, remove the link and "
            "commit, then `dvfs pull` makes this clone's own store"
        )


def _refuse_non_directory(root: Path, rel: str, index: Index) -> None:
    """UsageError if ``rel``, given with a trailing ``/``, is not a directory (see
    :meth:`Repository.rel`)."""
    try:
        st = os.lstat(root / rel)  # (its directories were checked: no link among them)
    except (FileNotFoundError, NotADirectoryError):
        st = None
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise
        st = None
    if st is None:
        if index.get(os.fsencode(rel)) is not None:
            raise UsageError(
                f"{rel} is a tracked file, not a directory (missing from the working "
                "tree): name it without the trailing '/'"
            )
        return
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(
            f"{rel} is a symbolic link, not a directory: dvfs stores links, it does not "
            "follow them; name it without the trailing '/'"
        )
    if not stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{rel} is a file, not a directory: name it without the trailing '/'")


def entering(absolute: str, root: str) -> str | None:
    """``absolute`` with its shortest leading part that resolves to ``root`` (through
    links outside the repository: a home directory reached through a link, a shell's
    logical ``$PWD``) replaced by ``root``, as git reads such a path; None if no part
    does. What lies below that part is left as written, links and all, for the caller
    to refuse."""
    real_root = os.path.realpath(root)
    parts = absolute.split("/")
    for i in range(2, len(parts) + 1):
        if os.path.realpath("/".join(parts[:i])) == real_root:
            return os.path.join(root, *parts[i:])
    return None


def user_path(root_path: Path, arg: str, index: Index | None = None) -> bytes:
    """A user-given path as a path beneath ``root_path`` (a repository's or a mount's
    root); UsageError if it leaves it.

    The path is taken lexically (``..`` folded, links not resolved); every
    directory between the root and the path must be a real directory, so nothing
    is ever reached through a symbolic link. An empty path (an unset shell
    variable) is refused rather than taken as the current directory.

    With ``index`` (a command acting on the working tree: add, rm, mv, restore,
    checkout), a path written as a directory (``d/a/``, ``d/a/.``) must be one, as
    git has it: not anything else in the working tree, nor, missing there, a file
    ``index`` tracks. Commands that read versions (log, diff) give none: the
    working tree says nothing about a path of a version.
    """
    if not arg:
        raise UsageError("an empty path names nothing: write '.' for the current directory")
    absolute = os.path.abspath(arg)
    root = str(root_path)
    if not _within(absolute, root):
        absolute = entering(absolute, root) or absolute
    if not _within(absolute, root):
        raise UsageError(f"{arg} is outside the repository {root}")
    rel = os.path.relpath(absolute, root)
    if rel == ".":
        return b""
    parts = rel.split("/")
    if parts[0] == DVFS_DIR:
        raise UsageError(f"{arg} is inside dvfs's own directory {DVFS_DIR}")
    cur = root_path
    for part in parts[:-1]:
        cur = cur / part
        if _is_link(cur):
            link = cur.relative_to(root_path)
            raise UsageError(
                f"{arg} goes through the symbolic link {link}: dvfs "
                f"stores links, it does not follow them; name {link} itself, or move the "
                "link away first"
            )
    if index is not None and arg.endswith(("/", "/.")):
        _refuse_non_directory(root_path, rel, index)
    return os.fsencode(rel)


def preferred_branch(names: Collection[str]) -> str:
    """The branch to take when none is named: ``main`` if there, else the first by name.

    A clone, a mount of a URL and ``vfs.Repo.remote`` choose this way; ``names`` must
    not be empty.
    """
    return DEFAULT_BRANCH if DEFAULT_BRANCH in names else min(names)


def format_record(chunker: ChunkerParams) -> str:
    """The format record (JSON text) of a repository with these chunking parameters."""
    record = {"format": REPO_FORMAT, "hash": "blake3-256", "chunker": chunker.to_record()}
    return json.dumps(record, indent=2) + "\n"


def read_record(path: Path, limit: int = RECORD_LIMIT) -> str:
    """The text of a small local record; FormatError unless a regular file within ``limit``.

    FileNotFoundError is left to the caller (a missing record means something there).
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"{path} is not a regular file: fix or remove it")
        if st.st_size > limit:
            raise FormatError(f"{path} holds {st.st_size:,} bytes, far more than it should")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise FormatError(f"{path} is not UTF-8 text: fix or remove it") from None


def parse_format(text: str, where: str) -> ChunkerParams:
    """Check a format record; return its chunking parameters or raise FormatError."""
    try:
        rec = json.loads(text)
    except (ValueError, RecursionError):  # (a remote's: nested past Python's stack)
        rec = None
    if not isinstance(rec, dict) or type(rec.get("format")) is not int:
        # (no newer dvfs would read it either: "upgrade dvfs" would send the user astray)
        raise FormatError(f"{where} is damaged: it is not a dvfs format record; refusing it")
    if rec["format"] not in READ_FORMATS:
        if rec["format"] < max(READ_FORMATS):
            raise FormatError(f"{where} is damaged: format {rec['format']} never existed")
        raise FormatError(
            f"{where}: format {rec['format']} is not one this dvfs knows: upgrade dvfs"
        )
    if not isinstance(rec.get("hash"), str):
        raise FormatError(f"{where} is damaged: it names no object hash; refusing it")
    if rec["hash"] != "blake3-256":
        raise FormatError(f"{where}: unknown object hash {quote_given(rec['hash'])}: upgrade dvfs")
    try:
        return ChunkerParams.from_record(rec.get("chunker"))
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"{where}: bad chunker settings: {exc}; refusing it") from None


# + process_tag() (older versions: the pid alone): the store an init makes, until it is
# renamed to .dvfs
INIT_PREFIX = f"{DVFS_DIR}.init-"


def refuse_inside_metadata(root: Path) -> None:
    """UsageError if ``root`` is (or lies below) a ``.dvfs`` or ``.git`` directory, its
    links followed: a repository made there would live among another one's own files,
    which that one's commands, gc and fsck manage as theirs."""
    real = Path(os.path.realpath(root))
    meta = next((p for p in (real, *real.parents) if p.name in (DVFS_DIR, ".git")), None)
    if meta is not None:
        where = "is" if meta == real else f"is inside {quote_name(str(meta))},"
        raise UsageError(
            f"{quote_name(str(root))} {where} where a repository keeps its own data: "
            "nothing was made; name a directory outside it"
        )


def init_leftovers(root: Path) -> list[Path]:
    """The ``.dvfs.init-<pid>-<start>`` directories in ``root`` whose process is gone:
    what an ``init`` or ``clone`` killed before its store was renamed into place left.
    A dead process's store stays gone once another process has its pid (and the
    ``.dvfs.init-<pid>`` of older versions is judged by its pid alone, as they did)."""
    try:
        names = os.listdir(root)
    except (FileNotFoundError, NotADirectoryError):
        return []
    out = []
    for name in names:
        if name.startswith(INIT_PREFIX) and tag_alive(name[len(INIT_PREFIX) :]) is False:
            out.append(root / name)
    return out


class Repository:
    """One dvfs repository: the working tree root and everything under ``.dvfs``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / DVFS_DIR
        if _is_link(self.dir):
            _refuse_a_link_from_git(root)
        try:
            text = read_record(self.dir / "format")
        except FileNotFoundError:
            raise NotARepository(
                f"{root} has a .dvfs directory without a format record: "
                "it is damaged or was made by something else"
            ) from None
        self.chunker = Chunker(parse_format(text, str(self.dir / "format")))
        self.refs = Refs(self.dir)
        self._store: ObjectStore | None = None
        self._history: History | None = None
        self._opening = threading.RLock()  # (history opens the store under it)

    @property
    def store(self) -> ObjectStore:
        """The object store (``.dvfs/objects``), opened on first use (by one thread).

        Not at opening: a clean ``status`` whose index knows HEAD's number reads no
        object, and importing the store and history modules was a twentieth of its time.
        """
        if self._store is None:
            with self._opening:
                if self._store is None:
                    from vfs.store.objects import ObjectStore  # (see above)

                    self._store = ObjectStore(self.dir / "objects")
        return self._store

    @property
    def history(self) -> History:
        """Versions and trees, read from :attr:`store` (made on first use, as the store)."""
        if self._history is None:
            with self._opening:
                if self._history is None:
                    from vfs.repo.history import History  # (see store)

                    self._history = History(self.store, self.refs, self.dir)
        return self._history

    def close_idle(self) -> None:
        """Close the descriptors of packs no read holds, if the store was opened (it
        stays open, with what it learned: the next read opens the pack it needs)."""
        store = self._store
        if store is not None:
            store.close_idle()

    def close(self) -> None:
        """Close the store if it was opened (its packs' descriptors, its threads); a
        later use opens it again."""
        with self._opening:
            store, self._store, self._history = self._store, None, None
        if store is not None:
            store.close()

    # opening -------------------------------------------------------------------

    @staticmethod
    def init(
        root: Path,
        branch: str = DEFAULT_BRANCH,
        chunker: ChunkerParams | None = None,
        config: dict[str, Any] | None = None,
    ) -> Repository:
        """Create a repository in ``root`` (made if missing); refuse an existing one.

        ``chunker`` sets the chunking parameters (a clone takes its remote's); ``config``
        is its ``.dvfs/config`` (a clone's remote), there as soon as the repository is.
        """
        check_ref_name(branch, "branch")
        root = root.absolute()
        refuse_inside_metadata(root)
        if (root / DVFS_DIR).is_dir():  # (as find() tells a repository)
            raise UsageError(f"{root} is already a dvfs repository")
        if os.path.lexists(root / DVFS_DIR):  # (a file, a link to none: find() passes it by)
            what = (
                "a symbolic link to no directory"
                if _is_link(root / DVFS_DIR)
                else "not a directory"
            )
            raise UsageError(
                f"{quote_name(str(root / DVFS_DIR))} is {what}, where dvfs keeps a "
                "repository: move it away, then run `dvfs init` again"
            )
        if _is_link(root) and not root.exists():  # (mkdir would say "File exists")
            raise UsageError(
                f"{quote_name(str(root))} is a symbolic link to "
                f"{quote_name(os.readlink(root))}, which does not exist: make that "
                "directory first, or name another"
            )
        if root.exists() and not root.is_dir():
            raise UsageError(f"{root} exists and is not a directory")
        root.mkdir(parents=True, exist_ok=True)
        import shutil  # (here: 2 ms of imports that opening a repository never needs)

        for left in init_leftovers(root):  # (an init or clone killed before its rename)
            shutil.rmtree(left, ignore_errors=True)
        tmp = root / f"{INIT_PREFIX}{process_tag()}"
        tmp.mkdir()
        from vfs.store.objects import ObjectStore  # (see Repository.store)

        try:
            ObjectStore.create(tmp / "objects")
            Refs.create(tmp, branch)
            if config is not None:
                (tmp / "config").write_text(json.dumps(config, indent=2) + "\n")
            (tmp / "format").write_text(format_record(chunker or ChunkerParams()))
            os.rename(tmp, root / DVFS_DIR)  # appears whole or not at all
        except BaseException:  # (a full disk, say): nothing of it is left
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return Repository(root)

    @staticmethod
    def find(start: Path | None = None) -> Repository:
        """The repository containing ``start`` (default: the current directory).

        Nothing at or below a dvfs mount is looked into (the mount is found in the
        kernel's table): its daemon may be stopped, hung or killed, and a look would
        wait for it, or fail, while a mount's working tree is no repository anyway
        (its repository is the mount's source). The search goes on above the mount.
        """
        try:
            here = (start or Path.cwd()).absolute()
        except FileNotFoundError:
            raise NotARepository(
                "the current directory no longer exists: cd into a repository"
            ) from None
        mount = outermost_dvfs_mount(here)
        for d in mount.parents if mount is not None else (here, *here.parents):
            if (d / DVFS_DIR).is_dir():
                return Repository(d)
        from vfs.repo.gitlink import SHARED_FILE, find_shared_root  # (only when none is found)

        shared = find_shared_root(mount.parent if mount is not None else here)
        if shared is not None:
            raise NotARepository(
                f"{shared} has dvfs settings ({SHARED_FILE}) but no store yet: "
                "run `dvfs pull` to set it up and get the data"
            )
        raise NotARepository()

    # state -------------------------------------------------------------------------

    def check_writable(self, command: str) -> None:
        """DvfsError unless this user may write ``.dvfs``, its store's folder and its
        audit log, as the kernel would judge a write (another user's repository, a
        read-only filesystem). For a command whose first write would come after part
        of its work (``gc`` deletes packs, then writes its audit entry), called before
        that work."""
        from vfs.repo.audit import LOG  # (see Refs: loaded by the commands that change)

        for path in (self.dir, self.dir / "objects", self.dir / LOG):
            if not os.path.lexists(path) or os.access(path, os.W_OK, effective_ids=True):
                continue
            try:
                why = "a read-only filesystem" if os.statvfs(path).f_flag & os.ST_RDONLY else ""
            except OSError:
                why = ""
            raise DvfsError(
                f"this repository cannot be written here ({quote_name(str(path))}: "
                f"{why or 'permission denied'}): `{command}` changed nothing; run it as a "
                "user who may write in the repository, or where its filesystem is mounted "
                "writable"
            )

    @contextmanager
    def locked(self, wait: float | None = None) -> Iterator[None]:
        """Hold the repository lock for a state-changing command (wait: DVFS_LOCK_TIMEOUT)."""
        with repository_lock(self.dir / "lock", wait):
            yield

    def index(self, rebuild: bool = False) -> Index:
        """Load the staging index.

        With no index file while HEAD names a version (a clone made with
        ``--no-checkout`` by an older dvfs, or an index deleted by hand), the index is
        that version with every path not checked out (``vfs.repo.stage``): nothing reads
        as deleted, and files found in the working tree are compared with it. With
        ``rebuild`` (``checkout --force`` of the whole tree, what the damaged-index
        message tells to run), a damaged index file is read as that too.
        """
        try:
            index = Index.load(self.dir / "index")
            if rebuild:
                index.check()  # (else a damaged part is found when first used)
        except FormatError as exc:
            if not rebuild:
                raise
            index = Index(self.dir / "index")
            index.damaged = str(exc)
        if not index.on_disk:
            head = self.history.head_id()
            if head is not None:
                tree = self.history.version(head).tree
                index.entries = {p: not_checked_out(e) for p, e in self.history.walk(tree)}
                index.head = index.base = head
        return index

    def config(self) -> dict[str, Any]:
        """User settings from ``.dvfs/config`` (empty if absent)."""
        try:
            rec = json.loads(read_record(self.dir / "config"))
        except FileNotFoundError:
            return {}
        except ValueError:
            raise FormatError(
                f"{self.dir / 'config'} is not valid JSON: fix or delete it"
            ) from None
        if not isinstance(rec, dict):
            raise FormatError(f"{self.dir / 'config'} must hold a JSON object")
        return rec

    def save_config(self, cfg: dict[str, Any]) -> None:
        """Write ``.dvfs/config`` atomically."""
        write_atomic(self.dir / "config", (json.dumps(cfg, indent=2) + "\n").encode())

    def author(self) -> str:
        """Who is committing: $DVFS_AUTHOR, config ``author``, git's user, or login@host."""
        import getpass

        from vfs.repo.gitlink import git_author  # (loaded by a commit: not by a status)

        env = settings.author()
        if env:
            return env
        configured = self.config().get("author")
        if isinstance(configured, str) and configured:
            return configured
        from_git = git_author(self.root)
        if from_git:
            return from_git
        try:
            user = getpass.getuser()
        except (KeyError, OSError):
            user = "unknown"
        return f"{user}@{os.uname().nodename}"

    def rel(self, arg: str, index: Index | None = None) -> bytes:
        """A user-given path as a repository path (:func:`user_path` beneath the root)."""
        return user_path(self.root, arg, index)
