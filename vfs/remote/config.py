"""Named remotes of a repository, and how to connect to one (``connect``, ``Meter``).

Remotes live in two places. Those shared with everyone who clones the git repository
are in ``dvfs.toml`` at the root (``vfs.repo.shared``: committed with the code); those of
this clone alone are in ``.dvfs/config`` (JSON)::

    {"remotes": {"origin": {"url": "s3://bucket/prefix", "endpoint_url": null,
                            "region": null, "profile": null}},
     "default_remote": "origin"}

A local remote overrides the shared one of the same name, and a local
``default_remote`` the shared one. ``dvfs remote add`` writes to ``dvfs.toml`` inside
a git work tree (where sharing it is the point), to ``.dvfs/config`` outside one or
with ``--local``.

Only where to connect is stored; credentials always come from boto3's standard chain
(environment, profile, instance role) and are never written or printed: a URL or an
endpoint carrying ``user:password@`` is refused, and one stored by an older version
is shown redacted (:meth:`RemoteSpec.shown`) and refused when used.

The remote's layout is ``vfs.remote.layout``; what is read from one, ``vfs.remote.reader``.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import weakref
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from vfs._os.beneath import open_dir, open_kept, remove_tree
from vfs.backends import (
    Backend,
    ObjectInfo,
    Refused,
    check_endpoint,
    file_url,
    open_backend,
    parse_url,
    redact_url,
)
from vfs.errors import DvfsError, FormatError, RefConflict, RemoteError, RemoteNotFound, UsageError
from vfs.model.codec import decode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import decode_version
from vfs.quoting import quote_given, quote_name, shell_word
from vfs.remote.audit import REMOTE_HEAD, VERIFIED
from vfs.remote.layout import SEGMENT_LIMIT, decode_segment
from vfs.repo import remote_copies
from vfs.repo.gitlink import SHARED_FILE, in_git
from vfs.repo.reach import reach
from vfs.repo.refs import check_ref_name
from vfs.repo.remote_copies import LOCATION, owner, recorded, settings_url
from vfs.repo.repository import Repository
from vfs.repo.shared import REMOTE_KEYS, SharedConfig
from vfs.repo.shared import load as load_shared
from vfs.repo.shared import save as save_shared


@dataclass(frozen=True)
class RemoteSpec:
    """Where a remote is and how to reach it."""

    name: str
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None

    def record(self) -> dict[str, Any]:
        """The config form (without the name, which is the key)."""
        rec = asdict(self)
        del rec["name"]
        return rec

    def shown(self) -> dict[str, Any]:
        """The config form to print: any ``user:password@`` in a URL hidden."""
        rec = self.record()
        for key in ("url", "endpoint_url"):
            if rec[key] is not None:
                rec[key] = redact_url(rec[key])
        return rec


LOCAL_PLACE = ".dvfs/config"


def _shared_specs(root: Path, team: SharedConfig) -> dict[str, RemoteSpec]:
    """The remotes of a dvfs.toml; relative directory paths are taken from ``root``,
    and one starting with ``~`` from a home directory, as :func:`parse_url` takes it."""
    out = {}
    for name, rec in team.remotes.items():
        url = settings_url(root, rec["url"])
        out[name] = RemoteSpec(name, url, *(rec.get(k) for k in REMOTE_KEYS[1:]))
    return out


def shared_remote(root: Path, name: str | None) -> RemoteSpec:
    """Remote ``name`` (default: the default one) of the dvfs.toml at ``root``.

    For a git clone that has no store yet (``vfs.ops.gitclone``).
    """
    team = load_shared(root)
    known = _shared_specs(root, team)
    if not known:
        raise UsageError(
            f"{root / SHARED_FILE} names no remote: add one with `dvfs remote add NAME URL` "
            "where the data was committed, and commit the file"
        )
    if name is None:
        if team.default_remote in known:
            name = team.default_remote
        elif len(known) == 1:
            name = next(iter(known))
        else:
            raise UsageError(f"{SHARED_FILE} names several remotes and no default: pass --remote")
    if name not in known:
        have = ", ".join(sorted(known))
        raise UsageError(f"unknown remote {quote_given(name)} (in {SHARED_FILE}: {have})")
    return known[name]


def remotes(repo: Repository) -> dict[str, RemoteSpec]:
    """Every configured remote by name: dvfs.toml's, then .dvfs/config's (which win).

    What this clone kept of a remote whose URL is no longer the one it came from (its
    settings edited, a local override removed, dvfs.toml changed by a `git pull`) is
    dropped first (:func:`forget_moved`): it is not the new location's."""
    out = _configured(repo)
    forget_moved(repo, out)
    return out


def configured_names(repo: Repository) -> list[str]:
    """The names of every configured remote, sorted, as the settings name them; unlike
    :func:`remotes`, nothing is dropped or written (shell completion asks on each TAB)."""
    return sorted(_configured(repo))


def _configured(repo: Repository) -> dict[str, RemoteSpec]:
    """:func:`remotes`, as the settings name them."""
    out = _shared_specs(repo.root, load_shared(repo.root))
    table = repo.config().get("remotes") or {}
    if not isinstance(table, dict):
        raise FormatError(f"{repo.dir / 'config'}: remotes must be a JSON object: fix it")
    for name, rec in table.items():
        try:  # (a name is a folder of .dvfs/remotes and refs/remotes: no "..", no "/x")
            check_ref_name(name, "remote")
        except UsageError as exc:
            raise FormatError(f"{repo.dir / 'config'}: {exc}; fix the file") from None
        if not (isinstance(rec, dict) and isinstance(rec.get("url"), str)):
            raise FormatError(
                f"{repo.dir / 'config'}: remote {quote_given(name)} has no url (text): fix "
                f"it, or remove the remote from the file and add it again"
            )
        extra = [rec.get(k) for k in ("endpoint_url", "region", "profile")]
        if not all(x is None or isinstance(x, str) for x in extra):
            raise FormatError(
                f"{repo.dir / 'config'}: remote {quote_given(name)} has a setting that is not "
                "text: fix it, or remove and add the remote again"
            )
        url = settings_url(repo.root, rec["url"])  # (by hand: from the root, as dvfs.toml's)
        out[name] = RemoteSpec(name, url, *extra)
    return out


def tracking_branches(repo: Repository, name: str) -> dict[str, bytes]:
    """This clone's copies of remote ``name``'s branches (``refs/remotes/NAME/B``), by B.

    Not counting those of a remote named inside it: ``remote add`` and dvfs.toml
    refuse ``team/a`` beside ``team``, but a clone's own ``team/a`` and a teammate's
    ``team`` in dvfs.toml can still meet, and then removing or pruning ``team`` must
    leave ``team/a``'s branches alone.
    """
    return _tracking(repo, name, remotes(repo))


def had_versions(repo: Repository, spec: RemoteSpec) -> tuple[list[str], str]:
    """This clone's remote branches of ``spec``, and the end of the message for when the
    remote is now missing or empty ("... but this clone has origin/main from it: ...").

    Once this clone has a copy of one of its branches, the remote held versions:
    finding it missing or empty means a NAS that is not mounted, a bucket emptied or a
    URL changed, not a remote with nothing yet."""
    seen = [f"{spec.name}/{b}" for b in tracking_branches(repo, spec.name)]
    gone = (
        f"but this clone has {quote_name(seen[0])} from it: check that it is mounted and "
        f"the URL; to start the remote afresh there, `dvfs remote remove {spec.name}` and "
        "add it again"
        if seen
        else ""
    )
    return seen, gone


def connect_known(repo: Repository, spec: RemoteSpec, jobs: int) -> Meter:
    """:func:`connect` to a clone's remote; one missing while this clone has branches of
    it says so (:func:`had_versions`), not "create it"."""
    try:
        return connect(spec, jobs)
    except RemoteNotFound:
        seen, gone = had_versions(repo, spec)
        if not seen:
            raise
        raise RemoteNotFound(f"{quote_name(spec.url)} does not exist, {gone}") from None


def _tracking(repo: Repository, name: str, known: Iterable[str]) -> dict[str, bytes]:
    """:func:`tracking_branches`, the configured remotes being ``known``."""
    inner = [f"{o.removeprefix(name + '/')}/" for o in known if o.startswith(f"{name}/")]
    out = {}
    for branch in repo.refs.names(f"remotes/{name}"):
        if any(branch.startswith(p) for p in inner):
            continue
        oid = repo.refs.get(f"refs/remotes/{name}/{branch}")
        if oid is not None:
            out[branch] = oid
    return out


def unconfigured_copies(repo: Repository) -> dict[str, bytes]:
    """This clone's copies of remote branches (``NAME/BRANCH``) that belong to no
    configured remote: a remote that dvfs.toml or .dvfs/config no longer names (a
    teammate removed it from dvfs.toml and ``git pull`` brought that). ``dvfs remote
    remove NAME`` deletes them."""
    known = remotes(repo)
    out = {}
    for copy in repo.refs.names("remotes"):
        if owner(known, copy) is None and (oid := repo.refs.get(f"refs/remotes/{copy}")):
            out[copy] = oid
    return out


def local_names(repo: Repository) -> set[str]:
    """Names of the remotes set in .dvfs/config (this clone's own)."""
    table = repo.config().get("remotes") or {}
    return set(table) if isinstance(table, dict) else set()


def default_remote(repo: Repository) -> str | None:
    """The default remote's name: set locally, else in dvfs.toml, else the only one."""
    known = remotes(repo)
    for name in (repo.config().get("default_remote"), load_shared(repo.root).default_remote):
        if isinstance(name, str) and name in known:
            return name
    return next(iter(known)) if len(known) == 1 else None


def shared_by_default(repo: Repository) -> bool:
    """Whether ``dvfs remote`` changes dvfs.toml when not told: inside a git work tree."""
    return in_git(repo.root)


def get_remote(
    repo: Repository, name: str | None, *, record: bool = True, force: bool = False
) -> RemoteSpec:
    """The remote called ``name`` (default: the default remote); UsageError if unknown.

    ``record``: note where the remote's copies come from (``note_location``); a
    command that must write nothing in the repository (``fsck --remote``) passes False.
    A remote held back at its old place (:func:`held_back`) is refused, unless ``force``
    (``dvfs fetch --force``): then what was kept of the old place goes.
    """
    known = remotes(repo)
    if name is None:
        name = default_remote(repo)
        if name is None:
            if not known:
                raise UsageError("no remote is configured: run `dvfs remote add NAME URL`")
            raise UsageError(
                "several remotes and no default: pass --remote NAME or run "
                "`dvfs remote default NAME`"
            )
    spec = known.get(name)
    if spec is None:
        have = ", ".join(sorted(known)) or "none"
        raise UsageError(f"unknown remote {quote_given(name)} (remotes: {have}): `dvfs remote add`")
    refuse_inside(repo.root, spec)
    if record:
        note_location(repo, spec, force=force)
    return spec


def refuse_inside(
    root: Path,
    spec: RemoteSpec,
    fix: str = "(`dvfs remote remove NAME`, then `dvfs remote add NAME DIR`)",
) -> None:
    """UsageError if ``spec`` is a directory remote at or inside the repository at
    ``root`` (its .dvfs too): the remote's packs and refs would mix with the
    repository's own files, and ``dvfs add .`` would take them in. A dvfs.toml that
    came from git may name any directory. ``fix``: how to name another, said last."""
    where = parse_url(spec.url).path
    if where is None:
        return
    inside, top = os.path.realpath(root / where), os.path.realpath(root)  # (from the root)
    if inside == top or inside.startswith(top.rstrip("/") + "/"):
        raise UsageError(
            f"remote {quote_name(spec.name)} is the directory {quote_name(str(where))}, "
            f"inside the repository {quote_name(top)}: its files would mix with the "
            f"repository's: name a directory outside it {fix}"
        )


def _refs_under(repo: Repository, name: str) -> str | None:
    """A local branch or tag whose first part is ``name`` (``up/x`` for a remote ``up``):
    it and the remote's branch ``x`` would both be read as ``up/x``."""
    for kind in ("heads", "tags"):
        for ref in repo.refs.names(kind):
            if ref.partition("/")[0] == name and "/" in ref:
                return f"{'branch' if kind == 'heads' else 'tag'} {ref}"
    return None


NOT_ADDED = "instead; nothing was added"  # (checked_spec: no remote to remove yet)


def checked_spec(root: Path, spec: RemoteSpec, *, shared: bool = False) -> RemoteSpec:
    """``spec`` as a repository at ``root`` records it (a directory made absolute, or,
    ``shared``, kept relative to the root if given so; a ``file://`` URL with its ``.``
    and ``..`` taken, as it is read: ``vfs.backends.file_url``); UsageError if its name, URL or
    endpoint is malformed or it lies inside the repository. Nothing is contacted."""
    check_ref_name(spec.name, "remote")
    where = parse_url(spec.url)
    if spec.endpoint_url is not None:
        try:  # (S3 clients refuse one; a fetch said it only then)
            check_endpoint(spec.endpoint_url)
        except UsageError as exc:
            raise UsageError(f"{exc}; nothing was added") from None
    s3_only = [k for k in REMOTE_KEYS[1:] if getattr(spec, k) is not None]
    if where.path is not None and s3_only:  # (`bucket/x`: s3:// forgotten?)
        named = " and ".join(f"--{k.replace('_', '-')}" for k in s3_only)
        raise UsageError(
            f"{named} {'goes' if len(s3_only) == 1 else 'go'} with an S3 remote, and "
            f"{quote_given(spec.url)} is a directory: write s3://BUCKET/PREFIX for a bucket, "
            "or leave them out; nothing was done"
        )
    if "://" not in spec.url:  # a directory: as seen from here, kept relative to the root
        given = os.path.expanduser(spec.url)  # (a quoted ~: the home, as parse_url reads it)
        path = os.path.abspath(given)
        refuse_inside(root, replace(spec, url=path), NOT_ADDED)
        if shared and not os.path.isabs(given):
            path = os.path.relpath(path, root)
        spec = replace(spec, url=path)
    else:
        if where.path is not None:  # (file://: recorded as the directory it is read as)
            spec = replace(spec, url=file_url(spec.url))
        refuse_inside(root, spec, NOT_ADDED)
    return spec


def add_remote(
    repo: Repository, spec: RemoteSpec, make_default: bool = False, *, shared: bool = False
) -> RemoteSpec:
    """Record a new remote (the URL is checked for form, not contacted); returns it as
    recorded (:func:`checked_spec`).

    ``shared`` puts it in dvfs.toml, else in .dvfs/config. A local remote may take the
    name of a shared one (it overrides it here); no other name may be taken twice.
    """
    spec = checked_spec(repo.root, spec, shared=shared)
    with repo.locked():
        cfg = repo.config()
        table = cfg.setdefault("remotes", {})
        team = load_shared(repo.root)
        if spec.name in table or (shared and spec.name in team.remotes):
            raise UsageError(f"remote {spec.name} already exists: remove it first")
        if (under := _refs_under(repo, spec.name)) is not None:
            raise UsageError(
                f"{under} would be read as remote {spec.name}'s branch: give the remote "
                "another name, or rename that first"
            )
        for other in remotes(repo):
            # team and team/a would share refs/remotes/team/ (and .dvfs/remotes/team/)
            if other.startswith(f"{spec.name}/") or spec.name.startswith(f"{other}/"):
                raise UsageError(
                    f"remote {spec.name} would share refs/remotes/{spec.name.split('/')[0]}/ "
                    f"with remote {other}: give it another name"
                )
        known = remotes(repo)
        if spec.name not in known:  # what a remote once of that name left is not this one's
            for branch, oid in tracking_branches(repo, spec.name).items():
                if owner(known, f"{spec.name}/{branch}") is None:
                    repo.refs.update(f"refs/remotes/{spec.name}/{branch}", None, oid)
            _forget_kept(repo, spec.name)
        if shared:
            team.remotes[spec.name] = {k: v for k, v in spec.record().items() if v is not None}
            if make_default or team.default_remote is None:
                team.default_remote = spec.name
            save_shared(repo.root, team)
        else:
            table[spec.name] = spec.record()
            if make_default or "default_remote" not in cfg:
                cfg["default_remote"] = spec.name
            repo.save_config(cfg)
        remotes(repo)  # (a local one over a shared one elsewhere: what was kept of it goes)
    return spec


def kept_dir(repo: Repository, name: str) -> Path | None:
    """``.dvfs/remotes/NAME``, where this clone keeps what it knows of remote ``name``
    (its cached index segments, where its audit chain ended); None if a symbolic link
    is on the way there (a repository unpacked from someone else): dvfs writes, moves
    and deletes nothing through one."""
    return remote_copies.kept_dir(repo.dir, name)


def chain_head(repo: Repository, name: str) -> Path | None:
    """Where this clone records the end of remote ``name``'s audit chain
    (``vfs.remote.audit``); None (no record kept) if a link is on the way there."""
    kept = kept_dir(repo, name)
    return None if kept is None else kept / REMOTE_HEAD


def location(spec: RemoteSpec) -> str:
    """One line naming where remote ``spec``'s data is, however its URL is spelled:
    ``file:///abs/path``, or ``s3://bucket/prefix`` and the endpoint, if any."""
    return remote_copies.location(spec.url, spec.endpoint_url)


def forget_moved(
    repo: Repository, known: dict[str, RemoteSpec], *, force: Iterable[str] = ()
) -> list[str]:
    """Drop what this clone kept of each remote of ``known`` whose location is not the
    one it was kept from: its copies of the remote's branches (``NAME/BRANCH``), its
    cached index segments (which fsck counts as data the remote holds) and where its
    audit chain was seen to end. They are the old location's, and would be taken for
    the new one's (status comparing with them, a push refused for a remote "missing",
    fsck counting chunks as held there); a fetch reads the new one's. Returns the
    names of the remotes so dropped; each is said as a warning (``Refs.warn``).

    Unless its name is in ``force``, a remote whose old location alone holds data that
    versions here use and the local store lacks (:func:`held_only_by`: dropped by
    ``dvfs store prune``, or never downloaded) keeps all of it, as ``remote remove``
    refuses to forget such a remote: its cached index is the only record of where that
    data is. A warning names the old location and what to run, and :func:`get_remote`
    refuses to use the remote until then (:func:`held_back`).

    Copies with no record of where they came from (kept by an older dvfs) are taken
    as the configured place's, and that is recorded (``vfs.repo.remote_copies``)."""
    dropped = []
    for name, spec in known.items():
        was = recorded(repo.dir, name)
        if was is None and (_tracking(repo, name, known) or _kept(repo, name)):
            remote_copies.record(repo.dir, name, location(spec))  # (trusted once)
        if was is None or was == location(spec):
            continue
        held = _held_back(repo, name, known, was)
        if held is not None and name not in force:
            if not held.said:
                repo.refs.warn(held.message(spec, "nothing of it was dropped"))
                held.said = True
            continue
        for branch, oid in _tracking(repo, name, known).items():
            with contextlib.suppress(RefConflict):  # (moved meanwhile: a fetch of it)
                repo.refs.update(f"refs/remotes/{name}/{branch}", None, oid)
        _forget_kept(repo, name)
        dropped.append(name)
        repo.refs.warn(
            f"remote {quote_name(name)} is now {quote_name(redact_url(location(spec)))}: what this "
            f"clone kept of it from {quote_name(redact_url(was))} (its copies of the "
            f"remote's branches) was dropped; `dvfs fetch --remote {name}` reads the new one's"
            + (
                ""
                if held is None
                else f"; {held.chunks:,} chunk(s) ({held.size:,} bytes) that versions here use "
                "and only it held cannot be read from here"
            )
        )
    return dropped


@dataclass
class HeldBack:
    """A remote whose settings name a new place while its old place alone holds data
    that versions here use and the local store lacks (:func:`forget_moved`)."""

    name: str
    was: str  # the old location
    chunks: int
    size: int
    said: bool = False  # whether this process has warned of it

    def message(self, spec: RemoteSpec, done: str) -> str:
        """What to say: the old and new places, the data at stake, what to run."""
        was = redact_url(self.was)
        return (
            f"remote {quote_name(self.name)} is now {quote_name(redact_url(location(spec)))}, "
            f"but {self.chunks:,} chunk(s) ({self.size:,} bytes) that versions here use are "
            f"held only at {quote_name(was)}, where it was (dropped here by `dvfs store "
            f"prune`, or never downloaded): {done}; to keep them readable, add the old place "
            f"as another remote (`dvfs remote add NAME {_place(redact_url(self.was))} "
            f"--local`, then `dvfs fetch --remote NAME`), or set the URL back; `dvfs fetch "
            f"--remote {shell_word(self.name)} --force` moves to the new place anyway"
        )


_HELD: weakref.WeakKeyDictionary[Repository, dict[tuple[str, str], HeldBack | None]] = (
    weakref.WeakKeyDictionary()
)  # what _held_back found, per repository handle (a process asks it often)


def _held_back(
    repo: Repository, name: str, known: dict[str, RemoteSpec], was: str
) -> HeldBack | None:
    """Whether remote ``name``'s old location ``was`` alone holds data versions here
    use and the local store lacks (see :func:`forget_moved`); found once per handle."""
    memo = _HELD.setdefault(repo, {})
    if (name, was) not in memo:
        _, lacking = lacking_here(repo, name, known)
        used = _used_here(repo, name, known) if lacking else {}
        size = sum(used.get(c, 0) for c in lacking)
        memo[name, was] = HeldBack(name, was, len(lacking), size) if lacking else None
    return memo[name, was]


def _place(where: str) -> str:
    """What ``dvfs remote add`` takes for a location (``location``), as shell words: the
    directory of a ``file://`` one; the URL of an S3 one, with ``--endpoint-url``."""
    if where.startswith("file://"):
        return shell_word(where.removeprefix("file://"))
    url, _, endpoint = where.partition(" ")
    return shell_word(url) + (f" --endpoint-url {shell_word(endpoint)}" if endpoint else "")


def held_back(repo: Repository, spec: RemoteSpec) -> HeldBack | None:
    """Whether remote ``spec`` is held back at its old place (:func:`forget_moved`)."""
    was = recorded(repo.dir, spec.name)
    if was is None or was == location(spec):
        return None
    try:
        known = _configured(repo)
    except DvfsError:
        known = {}
    return _held_back(repo, spec.name, {**known, spec.name: spec}, was)


def held_remotes(repo: Repository) -> dict[str, tuple[RemoteSpec, HeldBack]]:
    """The configured remotes held back at their old place (:func:`held_back`), by name:
    no command fetches from them until the old place is added or the URL set back.
    Settings that do not read hold none back (remote commands refuse them anyway)."""
    try:
        specs = remotes(repo)
    except DvfsError:
        return {}
    return {n: (s, h) for n, s in specs.items() if (h := held_back(repo, s)) is not None}


def note_location(repo: Repository, spec: RemoteSpec, *, force: bool = False) -> None:
    """Record that what this clone keeps of remote ``spec`` (copies of its branches,
    its index segments, its audit chain's end) comes from where ``spec`` names; called
    by a push or fetch before it keeps any. What was kept from another location under
    that name goes first (:func:`forget_moved`); UsageError if it is held back there
    (:func:`held_back`), unless ``force``. Nothing is written through a link."""
    try:
        known = remotes(repo)  # (with its own: team/a's branches are not team's)
    except DvfsError:
        known = {}
    if force or known.get(spec.name) != spec:  # (a URL read in place, a clone's as given)
        forget_moved(repo, {spec.name: spec}, force=[spec.name] if force else [])
    if (held := held_back(repo, spec)) is not None:
        raise UsageError(held.message(spec, "nothing was done"))
    if recorded(repo.dir, spec.name) != location(spec):
        remote_copies.record(repo.dir, spec.name, location(spec))


def _forget_kept(repo: Repository, name: str) -> None:
    """Delete what this clone kept of remote ``name`` in ``.dvfs/remotes/NAME/``: its
    cached index segments, which fsck counts as data a remote holds, and where its
    audit chain was last seen to end (``audit.head``, ``audit.verified``), which a
    remote added again under that name would be checked against. Only those: remote
    ``team/a`` keeps its own below ``remotes/team/``. Nothing through a link."""
    try:  # (deleted in by name, through a descriptor: never through a link)
        fd = open_dir(repo.dir, f"remotes/{name}")
    except OSError:
        return
    try:
        remove_tree(fd, "index")
        for leaf in (REMOTE_HEAD, VERIFIED, LOCATION):
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(leaf, dir_fd=fd)
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        parent = open_dir(repo.dir, f"remotes/{name}".rpartition("/")[0])
        try:
            os.rmdir(name.rpartition("/")[2], dir_fd=parent)  # (unless another's lies below)
        finally:
            os.close(parent)


def _move_kept(repo: Repository, old: str, new: str) -> None:
    """Move what this clone kept of remote ``old`` to where remote ``new``'s goes: only
    ``old``'s own (``team/a``'s stays); through descriptors, never through a link."""
    try:
        src = open_dir(repo.dir, f"remotes/{old}")
    except OSError:
        return
    try:
        leaves = [n for n in ("index", REMOTE_HEAD, VERIFIED, LOCATION) if _present(src, n)]
        if not leaves:
            return
        try:
            dst = open_dir(repo.dir, f"remotes/{new}", make=True)
        except OSError:
            return
        try:
            for leaf in leaves:
                os.rename(leaf, leaf, src_dir_fd=src, dst_dir_fd=dst)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _present(dir_fd: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


@dataclass(frozen=True)
class Removed:
    """What :func:`remove_remote` did."""

    places: list[str]  # where the remote was set; none: no settings named it any more
    branches: list[str]  # this clone's copies of its branches deleted (NAME/BRANCH)


def _kept(repo: Repository, name: str) -> bool:
    """Whether this clone holds something of remote ``name`` that :func:`_forget_kept`
    deletes."""
    kept = repo.dir / "remotes" / name
    return any(os.path.lexists(kept / leaf) for leaf in ("index", REMOTE_HEAD, VERIFIED, LOCATION))


def held_only_by(repo: Repository, name: str) -> tuple[int, int]:
    """The chunks (how many, their bytes) that versions kept here use, that the local
    store lacks (never downloaded, or dropped by ``dvfs store prune``) and that of the
    configured remotes only ``name`` holds, as their cached index segments tell:
    forgetting ``name`` leaves them unreadable from here. Kept here: every branch,
    tag and other remote's copy, a detached HEAD and the staging index's versions."""
    if not cached_ids(repo, [name]):  # (holding nothing: the settings need not read)
        return 0, 0
    used, lacking = lacking_here(repo, name, remotes(repo))
    return len(lacking), sum(used[c] for c in lacking)


def lacking_here(
    repo: Repository, name: str, known: Iterable[str]
) -> tuple[dict[bytes, int], list[bytes]]:
    """The chunks versions kept here use (:func:`_used_here`; empty when ``name``
    alone holds nothing), and those of them the local store lacks and that of the
    remotes ``known`` only ``name`` holds."""
    known = list(known)
    alone = cached_ids(repo, [name])
    if alone:
        alone -= cached_ids(repo, [n for n in known if n != name])
    if not alone:
        return {}, []
    used = _used_here(repo, name, known)
    return used, repo.store.missing(c for c in used if c in alone)


def _used_here(repo: Repository, name: str, known: Iterable[str]) -> dict[bytes, int]:
    """Every chunk (and its size) that versions kept here use: every branch, tag and
    copy of another remote's branch, a detached HEAD and the staging index's versions
    (not ``name``'s copies, which go with it)."""
    refs = repo.refs
    own = {f"{name}/{b}" for b in _tracking(repo, name, known)}
    roots = []
    if (detached := refs.head().detached) is not None:
        roots.append(("HEAD", detached))
    for kind in ("heads", "tags", "remotes"):
        for ref in refs.names(kind):
            if not (kind == "remotes" and ref in own) and (oid := refs.get(f"refs/{kind}/{ref}")):
                roots.append((ref, oid))
    with contextlib.suppress(DvfsError):  # (a damaged index names nothing to keep)
        index = repo.index()
        roots += [("index", oid) for oid in (index.head, index.base) if oid is not None]
    store = repo.store
    got = reach(
        roots, lambda oid: decode_version(store.get(oid)), lambda tid: decode_tree(store.get(tid))
    )
    return got.chunks


def index_cache(repo: Repository, name: str) -> Path | None:
    """Where the index segments of remote ``name`` are cached (``vfs.remote.reader``);
    None (no cache) if a symbolic link is on the way there, from ``.dvfs/remotes`` to
    ``index``: dvfs writes and deletes nothing through one."""
    kept = kept_dir(repo, name)
    if kept is None or (kept / "index").is_symlink():
        return None
    return kept / "index"


def cached_ids(repo: Repository, names: Iterable[str]) -> set[bytes]:
    """Ids of objects the remotes ``names`` hold, as far as their cached index
    segments tell (a damaged segment tells nothing: the next fetch reads it again)."""
    out: set[bytes] = set()
    for name in names:
        cache = index_cache(repo, name)
        if cache is None:
            continue
        try:
            segs = [cache / n for n in os.listdir(cache)]
        except OSError:
            continue
        for seg in segs:
            if seg.name.startswith("."):
                continue
            data = read_cached(seg)
            if data is None or hash_bytes(data).hex() != seg.name:
                continue
            try:
                out.update(obj.oid for _, obj in decode_segment(data, seg.name))
            except FormatError:
                continue
    return out


_CACHED = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


def read_cached(path: Path) -> bytes | None:
    """The bytes of a cached index segment; None if there is none, or if what is there
    is not a regular file of at most ``SEGMENT_LIMIT`` bytes (a link is never read
    through, in its place nor on the way below ``.dvfs``: ``open_kept``; a FIFO never
    waited on: a damaged cache entry, which tells nothing)."""
    try:
        where = open_kept(path.parent)
    except OSError:
        return None
    try:
        fd = os.open(path.name, _CACHED, dir_fd=where)
    except OSError:
        return None
    finally:
        os.close(where)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > SEGMENT_LIMIT:
            return None
        data = os.read(fd, st.st_size + 1)  # (what it holds, and a byte to tell growth)
        return data if len(data) <= st.st_size else None
    except OSError:
        return None
    finally:
        os.close(fd)


def remove_remote(
    repo: Repository,
    name: str,
    *,
    only: str | None = None,
    force: bool = False,
) -> Removed:
    """Forget a remote (``only``: "local" or "shared" for one place).

    Its remote-tracking refs and ``.dvfs/remotes/NAME/`` (cached index segments, the
    audit chain's end as last seen) go once no place defines it any more. A ``name``
    no place defines any more (dvfs.toml changed under this clone) has only those to
    delete, if this clone still holds some: as ``git remote remove`` does, they go.

    Unless ``force``, :func:`held_only_by` (the chunks, how many and their bytes,
    that versions kept here need and only that remote holds) is asked first, under
    the lock, when the remote is to go from every place: if it names any, nothing is
    changed (UsageError).
    """
    with repo.locked():
        cfg = repo.config()
        table = cfg.get("remotes") or {}
        team = load_shared(repo.root)
        stays = (only == "shared" and name in table) or (only == "local" and name in team.remotes)
        if not force and not stays and (name in table or name in team.remotes):
            count, size = held_only_by(repo, name)
            if count:
                raise UsageError(
                    f"remote {quote_name(name)} alone holds the data of {count:,} chunk(s) "
                    f"({size:,} bytes) that versions here use and the local store lacks "
                    "(never downloaded, or dropped by `dvfs store prune`): without it they "
                    "cannot be read from here; nothing was removed: `dvfs remote remove "
                    f"{name} --force` removes it anyway (adding it again makes them readable)"
                )
        places = []
        if only != "shared" and name in table:
            del table[name]
            if cfg.get("default_remote") == name:
                cfg.pop("default_remote")
            repo.save_config(cfg)
            places.append(LOCAL_PLACE)
        if only != "local" and name in team.remotes:
            del team.remotes[name]
            if team.default_remote == name:
                team.default_remote = None
            save_shared(repo.root, team)
            places.append(SHARED_FILE)
        known = remotes(repo)
        where = {"local": f" in {LOCAL_PLACE}", "shared": f" in {SHARED_FILE}"}.get(only or "")
        unknown = UsageError(f"unknown remote {quote_given(name)}{where or ''}")
        if not places:
            try:  # (a name no settings hold: nothing of it is read before it is checked)
                check_ref_name(name, "remote")
            except UsageError:
                raise unknown from None
        if name in known:
            if not places:
                raise unknown
            return Removed(places, [])
        mine = tracking_branches(repo, name)
        if not places:  # only the copies no configured remote owns (not team's a/main)
            mine = {b: oid for b, oid in mine.items() if owner(known, f"{name}/{b}") is None}
            if not mine and not _kept(repo, name):
                raise unknown
        _update_all(repo, [(f"refs/remotes/{name}/{b}", None, oid) for b, oid in mine.items()])
        _forget_kept(repo, name)
        return Removed(places, [f"{name}/{b}" for b in mine])


def rename_remote(repo: Repository, old: str, new: str) -> list[str]:
    """Rename remote ``old`` to ``new`` wherever it is defined (.dvfs/config, dvfs.toml,
    both for a clone's own override); return those places.

    Its branches here (``refs/remotes/OLD/*``), what this clone kept of it
    (``.dvfs/remotes/OLD/``: cached index segments, where its audit chain ended) and a
    default naming it follow. The new name must be free and may not be inside another
    remote's or hold one (their branches would share refs). The new refs are made
    before the settings change and the old ones go last, so an interrupted rename
    leaves at worst both names' branches, and running it again (or ``remote remove``)
    finishes.
    """
    check_ref_name(new, "remote")
    with repo.locked():
        known = remotes(repo)
        if old not in known:
            have = ", ".join(sorted(known)) or "none"
            raise UsageError(f"unknown remote {quote_given(old)} (remotes: {have})")
        if new == old:
            raise UsageError(f"remote {old} already has that name: nothing was renamed")
        if new in known:
            raise UsageError(f"remote {new} already exists: choose another name")
        if (under := _refs_under(repo, new)) is not None:
            raise UsageError(
                f"{under} would be read as remote {new}'s branch: choose another name, or "
                "rename that first"
            )
        for other in known:
            if other != old and (other.startswith(f"{new}/") or new.startswith(f"{other}/")):
                raise UsageError(
                    f"remote {new} would share refs/remotes/{new.split('/')[0]}/ with remote "
                    f"{other}: choose another name"
                )
        moving = tracking_branches(repo, old)
        # copies a remote of that name once left (dvfs.toml no longer names it): not
        # the renamed remote's, whose own take their place
        left = tracking_branches(repo, new)
        _update_all(
            repo,
            [
                (f"refs/remotes/{new}/{b}", None, oid)
                for b, oid in left.items()
                if owner(known, f"{new}/{b}") is None
            ],
        )
        made = {f"refs/remotes/{new}/{b}": oid for b, oid in moving.items()}
        _update_all(repo, [(ref, oid, repo.refs.get(ref)) for ref, oid in made.items()])
        _forget_kept(repo, new)  # (what a remote of that name once left: none is now)
        _move_kept(repo, old, new)
        places = []
        cfg = repo.config()
        table = cfg.get("remotes") or {}
        if old in table:
            table[new] = table.pop(old)
            if cfg.get("default_remote") == old:
                cfg["default_remote"] = new
            repo.save_config(cfg)
            places.append(LOCAL_PLACE)
        team = load_shared(repo.root)
        if old in team.remotes:
            team.remotes[new] = team.remotes.pop(old)
            if team.default_remote == old:
                team.default_remote = new
            save_shared(repo.root, team)
            places.append(SHARED_FILE)
        _update_all(repo, [(f"refs/remotes/{old}/{b}", None, oid) for b, oid in moving.items()])
        _forget_kept(repo, old)
        return places


def _update_all(repo: Repository, changes: list[tuple[str, bytes | None, bytes | None]]) -> None:
    """``changes`` (ref, new, expected) as one batch (``Refs.update_many``: a remote of
    thousands of branches removed or renamed made five fsyncs a branch); RefConflict
    for the first that moved meanwhile, as ``Refs.update`` raises (the others made)."""
    refused = repo.refs.update_many(changes)
    if refused:
        raise RefConflict(next(iter(refused.values())))


def set_default(repo: Repository, name: str, *, shared: bool = False) -> None:
    """Make ``name`` the default remote, in dvfs.toml if ``shared``, else for this clone."""
    get_remote(repo, name)
    with repo.locked():
        if shared:
            team = load_shared(repo.root)
            if name not in team.remotes:  # (teammates would have a default they lack)
                raise UsageError(
                    f"remote {name} is set in {LOCAL_PLACE} only, not in {SHARED_FILE}, so "
                    f"clones of the git repository do not have it: `dvfs remote default "
                    f"{name} --local` makes it this clone's default; nothing was changed"
                )
            team.default_remote = name
            save_shared(repo.root, team)
            return
        cfg = repo.config()
        cfg["default_remote"] = name
        repo.save_config(cfg)


class Meter(Backend):
    """Counts requests and bytes through a backend (thread-safe)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.url = inner.url
        self.reads_in_bulk = inner.reads_in_bulk
        self.writes_in_bulk = inner.writes_in_bulk
        self.requests = 0
        self.sent = 0
        self.received = 0
        self._lock = threading.Lock()

    def _count_bytes(self, received: int) -> None:
        with self._lock:
            self.received += received

    def _count(self, sent: int = 0, received: int = 0) -> None:
        with self._lock:
            self.requests += 1
            self.sent += sent
            self.received += received

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)
        self._count(sent=len(data))

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        data = self.inner.get(key, start, length)
        self._count(received=len(data))
        return data

    def get_small(self, key: str, limit: int) -> bytes:
        self._count()  # (forwarded: a directory refuses a larger object from its size)
        data = self.inner.get_small(key, limit)
        self._count_bytes(len(data))
        return data

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        self._count()
        for piece in self.inner.get_parts(key, start, lengths):
            self._count_bytes(len(piece))
            yield piece

    def get_small_many(
        self, keys: Sequence[str], limit: int, jobs: int = 16
    ) -> list[bytes | RemoteError | None]:
        """Counted as one request for a store that reads them in bulk (a directory
        remote's walk), else one each."""
        if not self.inner.reads_in_bulk:
            return super().get_small_many(keys, limit, jobs)  # each through get_small
        got = self.inner.get_small_many(keys, limit, jobs)
        self._count(received=sum(len(g) for g in got if isinstance(g, bytes)))
        return got

    def head(self, key: str) -> ObjectInfo:
        self._count()
        return self.inner.head(key)

    def stat(self, key: str) -> ObjectInfo:
        self._count()
        return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        self._count()
        for n, key in enumerate(self.inner.list(prefix), 1):
            if n % 1000 == 0:
                self._count()
            yield key

    def list_info(
        self, prefix: str = "", *, etags: bool = True, refused: Refused | None = None
    ) -> Iterator[tuple[str, ObjectInfo]]:
        self._count()
        for n, item in enumerate(self.inner.list_info(prefix, etags=etags, refused=refused), 1):
            if n % 1000 == 0:
                self._count()
            yield item

    def content_etag(self, data: bytes) -> str | None:
        return self.inner.content_etag(data)

    def delete(self, key: str) -> None:
        self._count()
        self.inner.delete(key)

    def delete_conditional(self, key: str, *, if_match: str) -> None:
        self._count()
        self.inner.delete_conditional(key, if_match=if_match)

    def remove_temporaries(self, older_than: float) -> tuple[int, int]:
        return self.inner.remove_temporaries(older_than)

    def create_many(
        self, items: Sequence[tuple[str, bytes]], *, in_order: bool = False, jobs: int = 1
    ) -> Sequence[bool]:
        """Counted as one request for a store that writes them in bulk (a directory
        remote), else one each."""
        if not self.inner.writes_in_bulk:
            return super().create_many(items, in_order=in_order, jobs=jobs)
        made = self.inner.create_many(items, in_order=in_order, jobs=jobs)
        self._count(sent=sum(len(data) for _, data in items[: len(made)]))
        return made

    def put_conditional(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        self._count(sent=len(data))
        return self.inner.put_conditional(key, data, if_match=if_match, if_none_match=if_none_match)


QUICK_TIMEOUT = 3.0  # seconds to connect, and to wait for each answer, of a quick question


def connect(spec: RemoteSpec, jobs: int, *, create: bool = False, quick: bool = False) -> Meter:
    """A metered, concurrency-limited backend for ``spec``. ``quick``: for a question
    whose answer can be done without (the pre-push hook's, before git pushes): each
    request is tried once, and given up after ``QUICK_TIMEOUT`` seconds without an
    answer, where the others are retried for up to a minute."""
    backend = open_backend(
        spec.url,
        endpoint_url=spec.endpoint_url,
        region=spec.region,
        profile=spec.profile,
        create=create,
        jobs=jobs,
        retry=not quick,
        timeout=QUICK_TIMEOUT if quick else None,
    )
    return Meter(backend)
