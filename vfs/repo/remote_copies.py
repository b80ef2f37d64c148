"""Where this clone's copies of a remote's branches came from, and whether that is
still where the settings put the remote.

A push or fetch records the place it read (``.dvfs/remotes/NAME/location``, one line:
``file:///abs/path``, or ``s3://bucket/prefix`` and the endpoint, if any) before it
keeps anything of remote NAME (``refs/remotes/NAME/*``, cached index segments, the
audit chain's end). Once the remote's settings (``.dvfs/config``, ``dvfs.toml``) name
another place, what was kept is the old place's: ``vfs.remote.config.forget_moved``
drops it, and until then a revision naming one of those copies (``origin/main``) is
refused (:func:`moved`) rather than read as the new place's.

A clone made by an older dvfs has copies and no record. The first command that
meets them takes them as coming from where the remote is then configured, and
records that (as a fetch would): a URL edited before that command, and after the last
fetch of the older dvfs, cannot be told apart and is not noticed; a URL edited after it
is. Nothing is written or read through a symbolic link on the way to
``.dvfs/remotes/NAME/`` (then no record is kept, and no move is noticed), and a
``.dvfs`` that cannot be written keeps no record either.

This module reads the settings leniently, for revisions only: settings that do not
read count as no move (the commands that use remotes say what is wrong with them).
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from vfs._os.beneath import open_dir, read_regular
from vfs.backends import file_url, parse_url, redact_url, s3_endpoint
from vfs.errors import DvfsError
from vfs.quoting import quote_name
from vfs.repo.refs import check_ref_name
from vfs.repo.shared import load as load_shared
from vfs.store.durable import write_atomic_at

LOCATION = "location"  # in .dvfs/remotes/<name>/: where what this clone kept came from
CONFIG_LIMIT = 1024 * 1024  # bytes of .dvfs/config read (vfs.repo.repository.RECORD_LIMIT)


def location(url: str, endpoint_url: str | None) -> str:
    """One line naming where a remote's data is, however its URL is spelled:
    ``file:///abs/path``, or ``s3://bucket/prefix`` and the endpoint in effect, if any
    (``endpoint_url``, else the environment's: ``vfs.backends.s3_endpoint``). ``url``
    is as the settings are read (a relative directory already taken from the root)."""
    try:
        where = parse_url(url)
    except DvfsError:
        return url
    if where.path is not None:
        return f"file://{os.path.abspath(where.path)}"
    endpoint = s3_endpoint(endpoint_url)  # (AWS_ENDPOINT_URL too: another server)
    at = f" {endpoint}" if endpoint else ""
    return f"s3://{where.bucket}/{where.prefix}{at}"


def settings_url(root: Path, url: str) -> str:
    """A remote's URL as set in ``dvfs.toml`` or ``.dvfs/config``: a directory path
    starting with ``~`` is taken from the home directory, a relative one from the
    repository ``root``; a directory path or a ``file://`` URL is the directory it is
    read as, its ``.`` and ``..`` taken (``vfs.backends.file_url``: one written so by
    hand, or by an older dvfs, is shown and named as ``remote add`` records it)."""
    if "://" in url:
        with contextlib.suppress(DvfsError):  # (a malformed URL: said where it is used)
            return file_url(url) if parse_url(url).path is not None else url
        return url
    url = os.path.expanduser(url)  # (as parse_url reads it: ~ is a home)
    return os.path.normpath(url if os.path.isabs(url) else root / url)


def kept_dir(dvfs_dir: Path, name: str) -> Path | None:
    """``.dvfs/remotes/NAME``, where this clone keeps what it knows of remote ``name``
    (its cached index segments, where its audit chain ended, where they came from);
    None if a symbolic link is on the way there (a repository unpacked from someone
    else): dvfs writes, moves and deletes nothing through one."""
    path = dvfs_dir
    for part in ("remotes", *name.split("/")):
        path = path / part
        if path.is_symlink():
            return None
    return path


def recorded(dvfs_dir: Path, name: str) -> str | None:
    """The location this clone's copies of remote ``name`` came from, as recorded; None
    if none is (kept by an older dvfs, or nothing kept), or if what is there is no
    small regular file (never read through a link)."""
    kept = kept_dir(dvfs_dir, name)
    if kept is None:
        return None
    try:
        fd = os.open(kept / LOCATION, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, 64 * 1024).decode(errors="replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def record(dvfs_dir: Path, name: str, where: str) -> None:
    """Record that what this clone keeps of remote ``name`` comes from ``where`` (see
    :func:`location`). Never through a link; a ``.dvfs`` that cannot be written keeps
    no record, as before there were records."""
    if kept_dir(dvfs_dir, name) is None:
        return
    with contextlib.suppress(OSError, DvfsError):
        fd = open_dir(dvfs_dir, f"remotes/{name}", make=True)  # (never through a link)
        try:
            write_atomic_at(fd, LOCATION, (where + "\n").encode(), sync=False)
        finally:
            os.close(fd)


def owner(names: Iterable[str], copy: str) -> str | None:
    """Which of the remotes ``names`` the copy ``copy`` (``NAME/BRANCH``, below
    ``refs/remotes/``) is a branch of: the longest name it lies below; None if none."""
    return max((n for n in names if copy.startswith(f"{n}/")), key=len, default=None)


@dataclass(frozen=True)
class Moved:
    """A remote whose settings name another place than the one this clone's copies of
    its branches came from."""

    remote: str
    was: str  # where the copies came from (a location)
    now: str  # where the settings now put it (a location, with the endpoint)

    def hint(self, copy: str) -> str:
        """What to say of a revision naming ``copy`` (``NAME/BRANCH``)."""
        return (
            f"it is this clone's copy of a branch of remote {quote_name(self.remote)} "
            f"as it was at {quote_name(redact_url(self.was))}, and the remote is now "
            f"{quote_name(redact_url(self.now))}: `dvfs fetch --remote {self.remote}` reads "
            "the new one's branches"
        )


def moved(dvfs_dir: Path, copy: str) -> Moved | None:
    """Whether copy ``copy`` (``NAME/BRANCH``, below ``refs/remotes/``) came from
    another place than where its remote's settings now put it; None if not, if no
    configured remote owns it, or if the settings do not read. A copy whose remote has
    no record of where they came from (kept by an older dvfs) is taken as coming from
    where the remote is now, and that is recorded (see the module docstring)."""
    root = dvfs_dir.parent
    try:
        local = _local_remotes(dvfs_dir)
        shared = load_shared(root).remotes
    except (DvfsError, OSError, ValueError):
        return None
    name = owner({*local, *shared}, copy)
    if name is None:
        return None
    try:  # (a name is a folder of .dvfs/remotes: no "..")
        check_ref_name(name, "remote")
    except DvfsError:
        return None
    rec = local.get(name, shared.get(name))
    url = rec.get("url") if isinstance(rec, dict) else None
    endpoint = rec.get("endpoint_url") if isinstance(rec, dict) else None
    if not isinstance(url, str) or not (endpoint is None or isinstance(endpoint, str)):
        return None
    url = settings_url(root, url)
    now = location(url, endpoint)
    was = recorded(dvfs_dir, name)
    if was is None:
        record(dvfs_dir, name, now)  # (trusted once: see the module docstring)
        return None
    return None if was == now else Moved(name, was, now)


def _local_remotes(dvfs_dir: Path) -> dict[str, object]:
    """The remotes table of ``.dvfs/config`` ({} if none); OSError or ValueError if the
    file does not read."""
    fd = os.open(dvfs_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        raw = read_regular(fd, "config", CONFIG_LIMIT)
    finally:
        os.close(fd)
    if raw is None:
        return {}
    cfg = json.loads(raw)
    table = cfg.get("remotes") if isinstance(cfg, dict) else None
    return table if isinstance(table, dict) else {}
