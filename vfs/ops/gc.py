"""``dvfs gc``: drop the objects nothing can reach from the local store.

Reachable (kept) is everything below:

- every branch, tag and remote-tracking branch, and a detached HEAD; a branch or tag
  whose file is gone though the audit log last recorded it at a version still stored
  (``audit.lost_refs``), which ``dvfs fsck --repair`` writes back; also the copies
  of a remote no settings name any more (dropped from dvfs.toml or .dvfs/config by
  hand or by a ``git pull``), as git keeps them until ``git remote remove``: the report
  names them and counts the versions only they hold, which ``dvfs remote remove NAME``
  lets the next gc free;
- the staging index: its rows' chunks and the versions it names (``head``, ``base``);
- a merge in progress (``vfs.ops.merging``): the version being merged and the merge
  base, which ``restore --theirs`` and the merge's commit still need when no branch
  names them any more;
- the working tree of every writable mount of this repository
  (``.dvfs/worktrees/<branch>/state``, written by ``daemon.overlay``; for the kernel's
  overlay ``layers``, written by ``daemon.upper``, naming its base and last snapshot): its
  base version. Its journal's entries all come from that version's trees, and its changed
  files are plain files of its work directory, not objects;
- the output tree of every run cache entry (``vfs.pipeline.cache``);
- every version a live process pinned (``vfs.store.pins``).

Nothing else is kept. While a process holds a "writing" pin (a pipeline run, which
stores outputs before it takes the lock to stage them) gc refuses to run: that
process may have skipped storing an object because an unreachable copy was there.

Everything happens under the repository lock, so no other dvfs command writes
objects or moves refs meanwhile. In order:

1. **Mark.** Versions (all parents) and trees are read and decoded from the roots
   (``vfs.repo.reach``, the walk remote gc and fsck share); chunks are not read. A root
   whose records are missing or damaged stops gc before anything is deleted ("run
   `dvfs fsck`"): what lies below cannot be told.
2. **Plan.** Each complete pack's objects are taken from its index (rebuilt from the
   header if the index is unusable; a pack whose header is damaged too is reported
   and kept). A live object found in several packs counts in the first only. A pack
   with no live object is *dead*; one whose live payload bytes are under
   ``REPACK_BELOW`` (half) of its payload bytes is *rewritten*; so are the packs
   under ``SMALL_PACK`` once there are ``SMALL_PACKS_MERGE`` of them to be kept (a
   commit of a few small files makes one pack each: merged, they are few packs to
   look in); the rest are kept.
3. **Copy.** The live objects of the rewritten packs are read, verified against
   their ids and appended, as stored (no recompression), to new packs of up to
   ``LOCAL_PACK_SIZE``, written under temporary names (``.tmp-pack-*``), fsynced,
   renamed to their content id, given their index (temp + fsync + rename), and the
   directory is fsynced. A pack with a live object that does not verify is reported
   and kept whole, as are the copies already made of its other objects.
4. **Delete.** Only now are the rewritten packs deleted: the ``.pack``, then its
   ``.idx``. (The dead packs go first, before step 3: they hold nothing live, and on
   a full disk, when gc is most needed, they free space without needing any. If step
   3 finds the disk full, the packs to rewrite are kept as they are, and said so.)
   Index files without a pack and temporary files are removed too, and the kept record
   of what each deleted version changed (``vfs.ops.changed``); of what row diffs proved
   of files (``.dvfs/rowcache``, keyed by content, so nothing tells which are still of
   use) the newest ``ROW_CACHE_KEEP`` entries are kept. The whole-file copies kept there
   (``*.copy``) all go: they hold files' bytes, deleted versions' too, and the next diff
   that needs one writes it again.

Crash safety: a kill at any step leaves every live object in a complete, durable
pack with a real name: before step 4 the old packs holding live objects are all
there (a new pack is at worst a duplicate, or a temporary file that the next gc or
fsck removes); during
step 4 every deleted pack's live objects are already durable elsewhere. An index
file left without its pack is ignored by readers (they list ``.pack`` names).
Readers that run meanwhile without the lock (``status``, ``cat``, a mount) look an
object up again when its pack vanishes (``ObjectStore._vanished``).

Test hook: ``DVFS_TEST_GC_KILL_AT=<step>`` makes gc kill itself (SIGKILL) at
``marked`` (plan made), ``copying`` (the first object is in a temporary pack),
``renamed`` (the first new pack has its name, its index not yet written),
``synced`` (every new pack is durable) or ``deleted`` (the first old pack is gone).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from vfs._os.beneath import open_dir
from vfs.errors import DvfsError, FormatError, LockBusy, ObjectCorrupt, StorageFull
from vfs.model.codec import decode_tree
from vfs.model.version_codec import decode_version
from vfs.mount.work_dirs import (
    LAYERS_FORMAT,
    STATE_FORMAT,
    WORKTREES,
    newer_format,
    work_dir_names,
)
from vfs.ops import changed, merging
from vfs.ops.store_limit import AUTO_MERGE_AT, small_packs
from vfs.pipeline.cache import RunCache
from vfs.remote.config import unconfigured_copies
from vfs.repo import audit
from vfs.repo.reach import reach
from vfs.repo.repository import Repository
from vfs.store.compression import decode_payload
from vfs.store.durable import TMP_PREFIX, fsync_dir, is_tmp_leaf, write_atomic
from vfs.store.objects import LOCAL_PACK_SIZE
from vfs.store.pack_files import AWAY, LINKED_PACK, read_pack_header
from vfs.store.packs import (
    MAX_INDEX_BYTES,
    PACK_MAGIC,
    SMALL_PACK,
    SMALL_PACKS_MERGE,
    PackedObject,
    check_index,
    decode_index,
    encode_index,
    pack_trailer,
    trailer_id,
)
from vfs.store.pins import live_pins

REPACK_BELOW = 0.5  # a pack whose live payload is under this share of it is rewritten
# Packs under SMALL_PACK bytes are merged once there are SMALL_PACKS_MERGE of them
# (vfs.store.packs, shared with remote gc): every command reads each pack's index once
# (an open and a read, ~40 us), so a store of one pack per small commit costs 0.13 s at
# 1,500 commits (3,000 packs) before any work.
KILL_ENV = "DVFS_TEST_GC_KILL_AT"
MAX_STATE = 1 << 16
MAX_PROBLEMS_SHOWN = 10
ROW_CACHE = "rowcache"  # what row diffs proved of files (vfs.tables.checks, .source)
ROW_CACHE_KEEP = 10_000  # entries of it gc keeps, the newest
COPY_SUFFIX = ".copy"  # whole-file copies kept there, all of which gc deletes
MISSING = "missing "  # the label of a root that is a ref whose file is gone (roots)
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW


def _reached(step: str) -> None:
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass
class PackPlan:
    """One pack and what gc does with it."""

    path: Path
    size: int  # of the .pack and .idx files together
    objects: list[PackedObject]
    live: list[PackedObject] = field(default_factory=list)
    action: str = "keep"  # keep, delete, rewrite, damaged

    @property
    def payload(self) -> int:
        """Bytes of every payload in the pack."""
        return sum(o.stored_len for o in self.objects)

    @property
    def live_bytes(self) -> int:
        """Bytes of the live payloads counted in this pack."""
        return sum(o.stored_len for o in self.live)


@dataclass
class GcReport:
    """What gc found and did (or, with ``dry_run``, would do)."""

    dry_run: bool
    roots: int = 0
    versions: int = 0
    trees: int = 0
    live_objects: int = 0
    dead_objects: int = 0
    packs_before: int = 0
    packs_after: int = 0
    packs_deleted: int = 0
    packs_rewritten: int = 0
    packs_written: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    bytes_copied: int = 0
    temporaries: int = 0
    problems: list[str] = field(default_factory=list)
    unconfigured: list[str] = field(default_factory=list)  # copies of dropped remotes, kept
    unconfigured_versions: int = 0  # versions only they hold
    # branches and tags whose file is gone though the audit log last recorded them at a
    # version that is still stored ("branch side", ...), and that entry: kept
    missing_refs: list[tuple[str, int]] = field(default_factory=list)

    @property
    def freed(self) -> int:
        """Bytes of store freed (or that would be)."""
        return self.bytes_before - self.bytes_after

    def as_json(self) -> dict[str, Any]:
        """The report as ``dvfs gc --json`` prints it."""
        return {
            "dry_run": self.dry_run, "roots": self.roots, "versions": self.versions,
            "trees": self.trees, "live_objects": self.live_objects,
            "dead_objects": self.dead_objects, "packs_before": self.packs_before,
            "packs_after": self.packs_after, "packs_deleted": self.packs_deleted,
            "packs_rewritten": self.packs_rewritten, "packs_written": self.packs_written,
            "bytes_before": self.bytes_before, "bytes_after": self.bytes_after,
            "bytes_freed": self.freed, "bytes_copied": self.bytes_copied,
            "temporaries_removed": self.temporaries, "problems": self.problems,
            "unconfigured": self.unconfigured,
            "unconfigured_versions": self.unconfigured_versions,
            "missing_refs": [name for name, _ in self.missing_refs],
        }  # fmt: skip


# roots ----------------------------------------------------------------------------


def worktree_bases(repo: Repository) -> dict[str, bytes]:
    """The versions each writable mount's working tree is based on, by its directory.

    The daemon's own overlay names its base in ``state`` (``daemon.overlay``); the
    kernel's overlay names its lower layer's version (``base``) and its last snapshot
    (``head``) in ``layers`` (``daemon.upper``). Every one of them is kept.
    """
    out: dict[str, bytes] = {}
    top = repo.dir / WORKTREES
    for name in work_dir_names(repo.dir):  # (no symbolic link: no mount uses one)
        for record, keys in (("state", ("base",)), ("layers", ("base", "head"))):
            rec = _read_record(top / name / record)
            if rec is _ABSENT:
                continue  # not started yet, or not this kind of working tree
            newer = newer_format(rec, STATE_FORMAT if record == "state" else LAYERS_FORMAT)
            if newer is not None:  # (its base may be kept in another field now)
                raise FormatError(
                    f"cannot tell which version the working tree {top / name} is based on: "
                    f"{record} is of format {newer}, written by a newer dvfs, so gc cannot "
                    "run: run it with that dvfs, or upgrade dvfs"
                )
            for key in keys:
                base = rec.get(key, b"") if isinstance(rec, dict) else b""
                if base is None:
                    continue  # a working tree over no version yet
                if not isinstance(base, bytes) or len(base) != 32:
                    raise FormatError(
                        f"cannot tell which version the working tree {top / name} is "
                        "based on (its state is damaged), so gc cannot run: move it aside "
                        "(its data/ holds the changed files' content), then run the "
                        "command again"
                    )
                out[f"working tree {name} ({record} {key})"] = base
    return out


_ABSENT = object()


def _read_record(path: Path) -> object:
    """The msgpack record at ``path`` (None if unreadable as one), or ``_ABSENT``."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except FileNotFoundError:
        return _ABSENT
    except OSError as exc:
        raise FormatError(f"cannot read {path} ({exc.strerror})") from None
    try:
        st = os.fstat(fd)
        raw = os.read(fd, MAX_STATE + 1) if stat.S_ISREG(st.st_mode) else b""
    finally:
        os.close(fd)
    with contextlib.suppress(ValueError, msgpack.UnpackException):
        return msgpack.unpackb(raw, raw=False) if len(raw) <= MAX_STATE else None
    return None


def roots(repo: Repository) -> tuple[dict[str, bytes], list[bytes], set[bytes]]:
    """(versions by what names them, trees that may be missing, chunks) gc must keep."""
    refs = repo.refs
    versions: dict[str, bytes] = {}
    head = refs.head()
    if head.detached is not None:
        versions["HEAD"] = head.detached
    for kind, label in (("heads", "branch"), ("tags", "tag"), ("remotes", "remote branch")):
        for name in refs.names(kind):
            oid = refs.get(f"refs/{kind}/{name}")
            if oid is not None:
                versions[f"{label} {name}"] = oid
    for lost in audit.lost_refs(audit.last_entries(repo.dir), refs.get):
        if repo.store.has(lost.oid):  # (fsck --repair writes it back: it must still be there)
            kind, _, name = lost.ref.removeprefix("refs/").partition("/")
            what = "branch" if kind == "heads" else "tag"
            versions[f"{MISSING}{what} {name} (audit entry {lost.entry.seq})"] = lost.oid
    index = repo.index()
    for what, oid in (("index head", index.head), ("index base", index.base)):
        if oid is not None:
            versions[what] = oid
    chunks = {c[0] for _, row in index.rows() for c in row[8]}
    merge = merging.live(repo.dir, refs)
    if merge is not None:
        versions["merge in progress (theirs)"] = merge.theirs
        versions["merge in progress (base)"] = merge.base
    versions.update(worktree_bases(repo))
    for pin in live_pins(repo.dir):
        for i, oid in enumerate(pin.versions):
            versions[f"pin {pin.name}#{i}"] = oid
    return versions, list(RunCache(repo).trees()), chunks


# mark -----------------------------------------------------------------------------


def mark(repo: Repository, report: GcReport) -> set[bytes]:
    """Every live object id; DvfsError if a root's records cannot all be read."""
    store = repo.store
    versions, optional_trees, live = roots(repo)
    report.roots = len(versions)
    for label in versions:
        if label.startswith(MISSING):
            name, _, entry = label.removeprefix(MISSING).rpartition(" (audit entry ")
            report.missing_refs.append((name, int(entry.rstrip(")"))))
    got = reach(
        versions.items(),
        lambda oid: decode_version(store.get(oid)),
        lambda tid: decode_tree(store.get(tid)),
        optional_trees=optional_trees,
    )
    if got.problems:
        problems = [
            f"{p.label}: version {p.oid.hex()}: {p.error}"
            if p.kind == "version"
            else f"tree {p.oid.hex()}: {p.error}"
            for p in got.problems
        ]
        shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
        raise DvfsError(
            f"gc stopped before deleting anything: {len(problems)} record(s) reachable from "
            f"refs cannot be read ({shown}); run `dvfs fsck`"
        )
    report.versions = len(got.versions)
    report.trees = len(got.trees)
    _held_by_strays(repo, versions, got.versions, report)
    live.update(got.chunks)
    live.update(got.versions)
    live |= got.trees
    return live


def _held_by_strays(
    repo: Repository, versions: dict[str, bytes], reached: Iterable[bytes], report: GcReport
) -> None:
    """Note in ``report`` the copies of remotes no settings name any more and the
    versions only they hold: gc keeps them (as git keeps a remote's copies until
    ``git remote remove``: the settings may have changed under this clone, by a
    ``git pull`` of dvfs.toml), and says that ``dvfs remote remove NAME`` lets it free
    them. Settings that cannot be read count every copy as a configured remote's."""
    try:
        stray = unconfigured_copies(repo) if repo.refs.names("remotes") else {}
    except DvfsError:
        stray = {}
    if not stray:
        return
    labels = {f"remote branch {copy}" for copy in stray}
    store = repo.store
    rest = reach(
        [(label, oid) for label, oid in versions.items() if label not in labels],
        lambda oid: decode_version(store.get(oid)),
        lambda tid: decode_tree(store.get(tid)),
    )
    report.unconfigured = sorted(stray)
    report.unconfigured_versions = sum(1 for oid in reached if oid not in rest.versions)


# plan -------------------------------------------------------------------------------


def _pack_objects(path: Path, report: GcReport) -> list[PackedObject] | None:
    """A pack's objects from its index, else its header; None (reported) if neither reads."""
    idx = path.with_suffix(".idx")
    with contextlib.suppress(OSError, FormatError):
        fd = os.open(idx, _READ_FLAGS)
        try:
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and st.st_size <= MAX_INDEX_BYTES:
                data = os.read(fd, st.st_size)
                check_index(data, str(idx))
                return decode_index(data, str(idx))
        finally:
            os.close(fd)
    try:
        fd = os.open(path, _READ_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):  # (a FIFO, a device: named once, as a link is)
                report.problems.append(
                    f"pack {path.name} was kept: it is not a regular file: {AWAY}"
                )
                return None
            return read_pack_header(fd, st.st_size, path.name)
        finally:
            os.close(fd)
    except OSError as exc:
        why = LINKED_PACK if exc.errno == errno.ELOOP else f"cannot be read ({exc.strerror})"
        report.problems.append(f"pack {path.name} was kept: it {why}")
        return None
    except FormatError as exc:
        why = str(exc).removeprefix(f"{path.name}: ")  # (the pack is named once)
        report.problems.append(f"pack {path.name} is damaged and was kept: {why}")
        return None


def _not_a_pack(path: Path) -> str | None:
    """Why ``path`` (named ``pack-*.pack``) is no pack, said once, or None for a regular
    file: a directory, link, FIFO or device so named is not counted as a pack."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return None  # (gone meanwhile: reading it says so)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return f"{path.name} {LINKED_PACK}"
    what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else None
    what = f" but {what}" if what else ""
    return f"{path.name} is not a regular file{what}, so no pack, and was left as it is: {AWAY}"


def _file_size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except FileNotFoundError:
        return 0


def plan(
    repo: Repository, live: set[bytes], report: GcReport, repack_below: float = REPACK_BELOW
) -> list[PackPlan]:
    """What to do with each complete pack (see the module docstring)."""
    root = repo.store.root
    out = []
    counted: set[bytes] = set()
    for name in sorted(os.listdir(root)):
        if not (name.startswith("pack-") and name.endswith(".pack")):
            continue
        path = root / name
        if (why := _not_a_pack(path)) is not None:
            report.problems.append(why)
            continue
        size = _file_size(path) + _file_size(path.with_suffix(".idx"))
        report.bytes_before += size
        objs = _pack_objects(path, report)
        p = PackPlan(path, size, objs or [])
        out.append(p)
        if objs is None:
            p.action = "damaged"
            continue
        for o in objs:
            if o.oid in live and o.oid not in counted:
                counted.add(o.oid)
                p.live.append(o)
        if not p.live:
            p.action = "delete"
        elif p.live_bytes < repack_below * p.payload or (
            repack_below >= 1 and len(p.live) < len(p.objects)
        ):
            p.action = "rewrite"
    small = [p for p in out if p.action == "keep" and p.size < SMALL_PACK]
    if len(small) >= SMALL_PACKS_MERGE:
        for p in small:
            p.action = "rewrite"
    report.packs_before = len(out)
    report.live_objects = len(counted)
    all_ids = {o.oid for p in out for o in p.objects}
    report.dead_objects = len(all_ids - live)
    return out


# copy -------------------------------------------------------------------------------


class _NewPack:
    """A pack gc writes: temporary name, fsynced, renamed to its id (the BLAKE3 of its
    header, ``vfs.store.packs.pack_id``), index beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tmp = root / f"{TMP_PREFIX}pack-{os.urandom(8).hex()}"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        self.objs: list[PackedObject] = []
        self.size = 0
        self._write(PACK_MAGIC)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.size += len(data)

    def append(self, obj: PackedObject, payload: bytes) -> None:
        self.objs.append(
            PackedObject(obj.oid, obj.kind, obj.compression, self.size, len(payload), obj.raw_len)
        )
        self._write(payload)

    def finish(self) -> Path:
        """Close the pack durably under its real name; return that path."""
        trailer = pack_trailer(self.objs)
        self._write(trailer)
        os.fsync(self.fd)
        os.close(self.fd)
        final = self.root / f"pack-{trailer_id(trailer).hex()}.pack"
        os.replace(self.tmp, final)
        _reached("renamed")
        write_atomic(final.with_suffix(".idx"), encode_index(self.objs))
        return final

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.tmp.unlink(missing_ok=True)


def _copy_live(
    repo: Repository,
    plans: Iterable[PackPlan],
    report: GcReport,
    dropped: set[bytes] | None = None,
) -> list[Path]:
    """Copy the live objects of the packs to rewrite into new packs; their paths.

    A pack with a live object that does not verify is marked damaged (kept), unless
    ``dropped`` is given: then that object is left out and its id added there.
    """
    root = repo.store.root
    written: list[Path] = []
    out: _NewPack | None = None
    try:
        for p in plans:
            if p.action != "rewrite":
                continue
            fd = os.open(p.path, _READ_FLAGS)
            try:
                for obj in sorted(p.live, key=lambda o: o.offset):
                    payload = os.pread(fd, obj.stored_len, obj.offset)
                    try:
                        decode_payload(obj, payload)
                    except ObjectCorrupt as exc:
                        if dropped is not None:
                            dropped.add(obj.oid)
                            continue
                        p.action = "damaged"
                        report.problems.append(
                            f"pack {p.path.name} holds a damaged object and was kept: {exc}"
                        )
                        break
                    if out is None:
                        out = _NewPack(root)
                    out.append(obj, payload)
                    report.bytes_copied += len(payload)
                    _reached("copying")
                    if out.size >= LOCAL_PACK_SIZE:
                        written.append(out.finish())
                        out = None
            finally:
                os.close(fd)
        if out is not None:
            written.append(out.finish())
            out = None
    except BaseException:
        if out is not None:
            out.abandon()
        raise
    fsync_dir(root)
    return written


def salvage(
    repo: Repository, damaged: set[bytes], packs: Iterable[Path] = ()
) -> tuple[set[bytes], list[str]]:
    """Rewrite ``packs`` (a damaged header, a wrong name) and every pack holding one of
    the ``damaged`` objects, keeping each object that verifies; the caller holds the lock.

    A damaged object is of no use (every read of it fails), and while it is stored a
    good copy of its bytes is never stored again (``ObjectStore.put`` skips an id it
    holds): dropping it is what lets a good copy repair the store. Written and
    deleted as step 3 and 4 of gc write and delete, so a kill at any moment loses
    nothing that verified. A pack of ``packs`` neither whose index nor whose header
    reads holds nothing that can be found: it is renamed ``damaged-pack-<id>.pack``
    (:func:`aside`), out of every reader's way. Returns the ids dropped and what could
    not be done.
    """
    report = GcReport(dry_run=False)
    root = repo.store.root
    wanted = {p.name for p in packs}
    plans = []
    folder = repo.store.open_folder()  # (as in collect: nothing deleted through a link)
    try:
        for name in sorted(os.listdir(folder)):
            if not (name.startswith("pack-") and name.endswith(".pack")):
                continue
            objs = _pack_objects(root / name, report)
            if objs is None and name in wanted and _put_aside(folder, name):
                report.problems.pop()  # (nothing in it could be found: it is out of the way)
            if objs is not None and (name in wanted or any(o.oid in damaged for o in objs)):
                plans.append(PackPlan(root / name, 0, objs, list(objs), "rewrite"))
        dropped: set[bytes] = set()
        written = {w.name for w in _copy_live(repo, plans, report, dropped)}
        for p in plans:
            if p.path.name not in written:
                _delete_pack(folder, p.path)
        os.fsync(folder)
    finally:
        os.close(folder)
    return dropped, report.problems


def aside(pack: Path) -> Path:
    """Where :func:`salvage` puts a pack nothing in which can be found."""
    return pack.with_name(f"damaged-{pack.name}")


def _put_aside(folder: int, name: str) -> bool:
    """Rename a regular file ``name`` of the store's ``folder`` to
    ``damaged-pack-<id>.pack`` (no reader lists it, its bytes are kept for whoever wants
    them), removing its index file, if any; whether it was."""
    try:
        if not stat.S_ISREG(os.stat(name, dir_fd=folder, follow_symlinks=False).st_mode):
            return False
        os.rename(name, f"damaged-{name}", src_dir_fd=folder, dst_dir_fd=folder)
    except OSError:
        return False
    _unlink(folder, name.removesuffix(".pack") + ".idx")
    return True


def merge_small_packs(repo: Repository, at: int = AUTO_MERGE_AT) -> int:
    """Once the store holds ``at`` packs under ``SMALL_PACK``, merge them into few (every
    object kept: nothing is judged dead, so no mark is needed); how many were merged.
    For after a command that grew the store (a commit of a few small files leaves one
    or two packs of its own), so that a history of many small commits does not slow
    every command without a gc.

    Done only if the repository lock is free at once and no pipeline run is storing
    objects (as gc); otherwise, and on any failure, nothing is merged (0): what grew
    the store has succeeded, and the next one tries again.
    """
    root = repo.store.root  # (counted under the lock: the caller's count was a guess)
    try:
        with repo.locked(wait=0):
            if any(p.writing for p in live_pins(repo.dir, clean=False)):
                return 0
            repo.store.flush()
            packs = small_packs(root)
            if len(packs) < at:
                return 0
            return _merge(repo, packs)
    except (DvfsError, OSError):
        return 0


def _merge(repo: Repository, packs: list[Path]) -> int:
    """Copy every object of ``packs`` (once) into new packs, then delete them; how many
    went. A pack that cannot be read, or holds an object that does not verify, is kept
    as it is (fsck names it), as gc keeps such a pack."""
    report = GcReport(dry_run=False)
    plans: list[PackPlan] = []
    seen: set[bytes] = set()
    for path in packs:
        objs = _pack_objects(path, report)
        if objs is None:
            continue
        plans.append(PackPlan(path, 0, objs, [o for o in objs if o.oid not in seen], "rewrite"))
        seen.update(o.oid for o in objs)
    folder = repo.store.open_folder()
    try:
        written = {w.name for w in _copy_live(repo, plans, report)}
        gone = [p for p in plans if p.action == "rewrite" and p.path.name not in written]
        for p in gone:
            _delete_pack(folder, p.path)
        os.fsync(folder)
    finally:
        os.close(folder)
    return len(gone)


# the whole gc -----------------------------------------------------------------------


def refuse_while_writing(repo: Repository, dry_run: bool, command: str) -> None:
    """LockBusy while a pipeline run holds a writing pin (see the module docstring)."""
    writers = [p for p in live_pins(repo.dir, clean=not dry_run) if p.writing]
    if writers:
        pids = ", ".join(sorted({p.name.split("-")[0] for p in writers}))
        raise LockBusy(
            f"a pipeline run (pid {pids}) is storing objects in this repository: "
            f"run `{command}` again when it has finished"
        )


def gc(repo: Repository, *, dry_run: bool = False) -> GcReport:
    """Collect the garbage of the local store (see the module docstring)."""
    report = GcReport(dry_run)
    if not dry_run:
        repo.check_writable("dvfs gc")  # (its audit entry is written last)
    with repo.locked():
        refuse_while_writing(repo, dry_run, "dvfs gc")
        repo.store.flush()
        live = mark(repo, report)
        collect(repo, live, report)
        if not dry_run:
            try:
                repo.refs.record("gc", f"freed {report.freed} bytes, {report.packs_deleted} packs")
            except StorageFull:  # (what was freed is freed: say so, not only this)
                report.problems.append(
                    "the disk is full: the audit entry of this gc was not written"
                )
    return report


def _open_cache(cache: Path) -> int | None:
    """A descriptor of cache directory ``cache``, every deletion there made through it;
    None if it is missing or a symbolic link is on the way (made before or swapped in
    meanwhile: nothing outside the repository is deleted)."""
    try:
        return open_dir(cache.parent, cache.name)
    except OSError:
        return None


def trim(cache: Path, keep: int) -> int:
    """Delete all but the ``keep`` newest files (by mtime) of a cache directory, and any
    temporary left there by a crash; how many went. A cache that is a symbolic link is
    not followed (nothing outside the repository is deleted)."""
    fd = _open_cache(cache)
    if fd is None:
        return 0
    try:
        with os.scandir(fd) as it:
            found = [(e.stat(follow_symlinks=False).st_mtime_ns, e.name) for e in it]
        doomed = [n for _, n in found if is_tmp_leaf(os.fsencode(n))]
        entries = sorted((f for f in found if not is_tmp_leaf(os.fsencode(f[1]))), reverse=True)
        doomed += [n for _, n in entries[keep:]]
        for name in doomed:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(name, dir_fd=fd)
        return len(doomed)
    finally:
        os.close(fd)


def drop_copies(cache: Path) -> int:
    """Delete the whole-file copies row diffs keep in ``cache`` (``vfs.tables.source``);
    how many went (none through a symbolic link)."""
    fd = _open_cache(cache)
    if fd is None:
        return 0
    try:
        names = [n for n in os.listdir(fd) if n.endswith(COPY_SUFFIX)]
        for name in names:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(name, dir_fd=fd)
        return len(names)
    finally:
        os.close(fd)


def _unlink(folder: int, name: str) -> None:
    """Delete ``name`` in the store's folder (a descriptor: see ``collect``)."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=folder)


def _delete_pack(folder: int, pack: Path) -> None:
    """Delete a pack, then its index file (a reader lists ``.pack`` names)."""
    _unlink(folder, pack.name)
    _reached("deleted")
    _unlink(folder, pack.with_suffix(".idx").name)


def _collect(
    repo: Repository, plans: list[PackPlan], live: set[bytes], report: GcReport, folder: int
) -> None:
    """Steps 3 and 4 of ``collect``, deleting in ``folder`` (the store's, a descriptor)."""
    root = repo.store.root
    for p in plans:  # first: they free space without taking any (a disk full)
        if p.action == "delete":
            _delete_pack(folder, p.path)
    try:
        written = _copy_live(repo, plans, report)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        moved = [p for p in plans if p.action == "rewrite"]
        for p in moved:
            p.action = "keep"
        written = []
        report.problems.append(
            f"the disk is full: {len(moved)} pack(s) to rewrite were kept as they are "
            "(their live objects need room first); run `dvfs gc` again once there is "
            "some"
        )
    _reached("synced")
    report.packs_written = len(written)
    keep = {w.name for w in written}
    for p in plans:
        if p.action == "rewrite" and p.path.name not in keep:
            _delete_pack(folder, p.path)
    names = set(os.listdir(folder))
    for name in names:
        orphan = name.removesuffix(".idx") + ".pack" not in names
        if name.startswith("pack-") and name.endswith(".idx") and orphan:
            _unlink(folder, name)
    report.temporaries = repo.store.remove_temporaries()
    changed.prune(repo.dir, live)
    drop_copies(repo.dir / ROW_CACHE)
    trim(repo.dir / ROW_CACHE, ROW_CACHE_KEEP)
    os.fsync(folder)
    names = set(os.listdir(folder))
    packs = {n for n in names if n.endswith(".pack") and _not_a_pack(root / n) is None}
    report.bytes_after = sum(
        _file_size(root / n) for n in packs | {n.removesuffix(".pack") + ".idx" for n in packs}
    )
    report.packs_after = len(packs)


def collect(
    repo: Repository, live: set[bytes], report: GcReport, repack_below: float = REPACK_BELOW
) -> set[bytes]:
    """Plan, copy and delete (steps 2-4) keeping ``live``; the caller holds the lock.

    ``repack_below`` 1.0 rewrites every pack that holds anything not live. Returns the
    ids of every object of the packs kept as they are (kept on purpose, damaged, or
    not rewritten for want of room), dead ones too: they are still stored.
    """
    dry_run = report.dry_run
    # Deletions go through a descriptor of the store's folder: a folder that is a link
    # is refused here, before anything is done, and nothing outside is ever deleted.
    folder = repo.store.open_folder()
    try:
        plans = plan(repo, live, report, repack_below)
        _reached("marked")
        if not dry_run:
            _collect(repo, plans, live, report, folder)
    finally:
        os.close(folder)
    if dry_run:
        kept = [p for p in plans if p.action in ("keep", "damaged")]
        moved = [p for p in plans if p.action == "rewrite"]
        report.bytes_copied = sum(p.live_bytes for p in moved)
        # a rewritten pack's live payload plus its header records and an index
        report.bytes_after = sum(p.size for p in kept) + sum(
            p.live_bytes + 100 * len(p.live) for p in moved
        )
        # new packs are closed once past LOCAL_PACK_SIZE
        written = max(1, -(-report.bytes_copied // LOCAL_PACK_SIZE))
        report.packs_written = written if moved else 0
        report.packs_after = len(kept) + report.packs_written
    report.packs_deleted = sum(1 for p in plans if p.action in ("delete", "rewrite"))
    report.packs_rewritten = sum(1 for p in plans if p.action == "rewrite")
    return {o.oid for p in plans if p.action in ("keep", "damaged") for o in p.objects}
