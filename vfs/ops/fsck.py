"""Integrity check of everything reachable: refs, versions, trees, chunks, the index.

The staging index's cache-tree is checked against trees built afresh from its rows.
Every pack is checked by its header and index (``vfs.store.pack_files.check_pack``: its
name is its header's hash, its index lists what its header does) and every reachable
object is read back and hashed once (chunks in parallel). A version whose totals (files
and bytes) are not those of its tree is named, and a folder whose size is not the bytes
below it (each distinct tree counted once). With ``digests`` (``--digests``), each
distinct file of several chunks is read whole, in order, its chunks verified on the way
(instead of apart), and one whose bytes are not its digest is named: a forged or
damaged record may name whole chunks under a digest they do not make (not the
default: see ``docs/architecture.md``, What fsck checks). When a
chunk is missing or damaged, a second walk names the paths that use it, so the user
knows which files are affected. Temporary files left by an interrupted write are
harmless; they are counted and removed (under the repository lock), in the store, at
the top of ``.dvfs`` (``vfs.store.durable.remove_tmp_files``, under ``refs.lock`` too) and
in the working tree (``vfs.worktree.remove.remove_temporaries``: only names of dvfs's own
temporary form, never through a link), unless a pipeline run is writing (a writing
pin, ``vfs.store.pins``: it writes without the lock). Chunks that were never downloaded (a clone or
pull of part of the data) are no problem when a remote holds them, as far as its
cached index segments tell.

A branch or tag whose file is gone though the audit log's last word on it names a
version is a problem, unless that word is the log's very last entry and a creation
(which a crash may have cut short before the file was written; the next change of a
ref logs such a ref as never made first: ``vfs.repo.refs``).

Repair (``repair``: ``dvfs fsck --repair``): first HEAD, each ref that cannot be read
and each such missing one are written back as the audit log last recorded them
(``vfs.repo.audit``: every change is logged before it is made), when that version is
stored. Then (under the
lock, unless a pipeline run is writing) a pack whose header or name
is wrong, and every pack holding a damaged chunk, is rewritten with the objects that
verify (``vfs.ops.gc.salvage``): a damaged copy must go, or adding a good copy of its
bytes would store nothing (the store skips an id it holds). Then each staged file of
the working tree that uses a chunk missing or dropped is read again, which stores that
chunk anew if the file still holds the staged bytes. What is still lost is reported
with the files that use it, and the one way left to repair it: put a good copy of
one of them back and ``dvfs add`` it.
"""

from __future__ import annotations

import bisect
import contextlib
import os
import stat
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfs.errors import DvfsError, FormatError, ObjectCorrupt, ObjectMissing, UsageError
from vfs.model.codec import ChunkRef, Kind
from vfs.model.ids import from_hex, hasher
from vfs.model.version_codec import Version
from vfs.mount.work_dirs import check_work_dirs
from vfs.ops import merging
from vfs.ops.checkout import RESTORING, drop_marker
from vfs.ops.commit import both_message, index_tree_ids
from vfs.ops.gc import aside, salvage, worktree_bases
from vfs.quoting import quote_given, quote_name
from vfs.remote.config import held_remotes, remotes
from vfs.remote.reader import cached_remote_ids
from vfs.repo import audit
from vfs.repo.history import History, Shape, totals
from vfs.repo.reach import reach
from vfs.repo.refs import Head, check_ref_name, misnamed
from vfs.repo.repository import Repository, preferred_branch
from vfs.store.durable import remove_tmp_files
from vfs.store.objects import ObjectStore
from vfs.store.pack_files import check_pack
from vfs.store.pins import live_pins
from vfs.store.reader import false_digest
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.remove import remove_temporaries
from vfs.worktree.scan import Found, lstat_or_none, show

MAX_USERS_SHOWN = 5


@dataclass
class FsckReport:
    """What fsck found."""

    versions: int = 0
    packs: int = 0
    trees: int = 0
    chunks: int = 0
    bytes: int = 0
    temporaries: int = 0
    remote_only: int = 0  # chunks not downloaded yet, held by a remote commands fetch from
    # chunks not stored here that only a remote held back at its old place lists, by
    # remote name (``vfs.remote.config.held_back``): commands that need them refuse
    held_back: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)  # damage found and mended
    repairable: bool = False  # damage that ``repair`` would work on was found

    @property
    def clean(self) -> bool:
        """True when nothing is missing or damaged."""
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        """What ``dvfs fsck --json`` prints (the test suite's check reads the same)."""
        return {
            "clean": self.clean, "versions": self.versions, "packs": self.packs,
            "trees": self.trees, "chunks": self.chunks, "bytes": self.bytes,
            "temporaries_removed": self.temporaries, "remote_only": self.remote_only,
            "held_back": self.held_back, "problems": self.problems, "repaired": self.repaired,
        }  # fmt: skip


def _roots(repo: Repository, report: FsckReport, reported: set[str]) -> dict[str, bytes]:
    """HEAD when detached, every branch, tag and remote-tracking branch (as gc keeps
    them); an unreadable one is a problem, unless ``reported`` already."""
    roots: dict[str, bytes] = {}
    try:
        head = repo.refs.head()
        if head.detached is not None:
            roots["HEAD"] = head.detached
    except FormatError as exc:
        if "HEAD" not in reported:
            report.problems.append(str(exc))
    for kind, label in (("heads", "branch"), ("tags", "tag"), ("remotes", "remote branch")):
        try:
            names = repo.refs.names(kind)
        except FormatError as exc:  # (a folder of refs that is a link)
            if str(exc) not in report.problems:
                report.problems.append(str(exc))
            continue
        for name in names:
            why = misnamed(name)
            if why:  # (still a root: what it names is kept until it is renamed or deleted)
                report.problems.append(
                    f"{label} {quote_given(name)} has a name no {label} can have ({why}), so "
                    "no command can name it: rename or delete "
                    f"{quote_name(f'.dvfs/refs/{kind}/{name}')}"
                )
            try:
                oid = repo.refs.get(f"refs/{kind}/{name}")
            except FormatError as exc:
                if f"refs/{kind}/{name}" not in reported:
                    report.problems.append(str(exc))
                continue
            if oid is not None:
                roots[f"{label} {name}"] = oid
    return roots


def _walk_paths(hist: History, tree: bytes, prefix: str) -> Iterator[tuple[str, list[bytes]]]:
    for path, e in hist.walk(tree):
        if e.kind == Kind.FILE:
            yield f"{prefix}:{os.fsdecode(path)}", [c.oid for c in e.chunks]


def _several_chunks(hist: History, trees: set[bytes]) -> set[tuple[bytes, tuple[ChunkRef, ...]]]:
    """(digest, chunks) of every distinct file of several chunks in ``trees`` (a tree
    that cannot be read is skipped: it is reported as such)."""
    out = set()
    for tid in trees:
        try:
            tree = hist.tree(tid)
        except DvfsError:
            continue
        for e in tree.entries:
            if e.kind == Kind.FILE and len(e.chunks) > 1:
                out.add((e.digest, e.chunks))
    return out


def _read_whole(
    store: ObjectStore, digest: bytes, chunks: tuple[ChunkRef, ...]
) -> tuple[dict[bytes, str], bytes | None]:
    """Read a file's chunks in order, each verified: those missing or corrupt, and the
    digest of their bytes (None when one cannot be read; ``digest`` names the file)."""
    whole = hasher()
    damaged: dict[bytes, str] = {}
    for c in chunks:
        try:
            data = store.get(c.oid)
        except (ObjectCorrupt, ObjectMissing) as exc:
            damaged[c.oid] = "missing" if isinstance(exc, ObjectMissing) else "corrupt"
            continue
        if not damaged:
            whole.update(data)
    return damaged, None if damaged else whole.digest()


def _false_files(
    hist: History,
    versions: dict[bytes, Version],
    false: dict[tuple[bytes, tuple[ChunkRef, ...]], bytes],
) -> list[str]:
    """A line for each file of ``false`` ((digest, chunks) -> the digest of its bytes),
    naming where versions hold it (at most ``MAX_USERS_SHOWN`` places)."""
    users: dict[tuple[bytes, tuple[ChunkRef, ...]], list[str]] = defaultdict(list)
    for oid, v in versions.items():
        label = hist.revision(oid)
        for path, e in hist.walk(v.tree):
            key = (e.digest, e.chunks)
            if e.kind == Kind.FILE and key in false and len(users[key]) < MAX_USERS_SHOWN:
                users[key].append(quote_name(f"{label}:{os.fsdecode(path)}"))
    return [
        false_digest(", ".join(users[key]) or "a file", got, key[0], "its")
        for key, got in sorted(false.items())
    ]


def _wrong_totals(hist: History, versions: dict[bytes, Version], trees: set[bytes]) -> list[str]:
    """Each version whose files and bytes are not those of its tree, and each folder
    of ``trees`` whose size is not the bytes below it (a fetch refuses both,
    ``vfs.remote.receive``; an older dvfs did not). Each distinct tree is read and
    counted once; one that cannot be read is skipped (reported as such)."""
    done: dict[bytes, tuple[int, int]] = {}
    shapes: dict[bytes, Shape] = {}

    def shape(tree: bytes) -> Shape:
        got = shapes.get(tree)
        if got is None:
            got = shapes[tree] = Shape.of(hist.tree(tree))
        return got

    out = []
    for oid, v in versions.items():
        try:
            held = totals(v.tree, shape, done)
        except DvfsError:
            continue
        if held != (v.files, v.bytes):
            claimed, holds = _files(v.files, v.bytes), _files(*held)
            out.append(
                f"v{v.number} {oid.hex()[:10]} claims {claimed}, but its tree holds {holds}: "
                "`log`, `show` and `du` give its claim as its size"
            )
    for tree in sorted(trees & shapes.keys()):
        if tree not in done:  # (below a tree that cannot be read)
            continue
        wrong = shapes[tree].wrong_folder(done)
        if wrong is not None:
            name, claimed_bytes, below = wrong
            out.append(
                f"tree {tree.hex()[:12]}: folder {quote_name(name + b'/')} claims "
                f"{claimed_bytes:,} bytes, but the files below it hold {below:,}: `ls` gives "
                "its claim as its size"
            )
    return out


def _files(files: int, size: int) -> str:
    return f"{files:,} file{'s' if files != 1 else ''} of {size:,} bytes"


def _staged_twice(repo: Repository) -> bytes | None:
    """A path the staging index stages both as a file and as a directory (``d/x`` and
    ``d/x/y``), which no tree can hold; None if there is none (its sorted names are
    searched: every path below ``p`` sorts from ``p/`` on)."""
    names = repo.index().tree_columns()[0]
    for name in names:
        below = name + b"/"
        j = bisect.bisect_left(names, below)
        if j < len(names) and names[j].startswith(below):
            return bytes(name)
    return None


def _check_cache_tree(repo: Repository, report: FsckReport, drop: bool) -> None:
    """Check the staging index's cache-tree against trees built afresh from its rows.

    A wrong entry would make the next commit record a wrong tree: it is a problem,
    and the cache is dropped (if ``drop``: nothing else writes the index meanwhile), so
    that the next commit builds every tree (a cache is only ever a shortcut).
    """
    index = repo.index()
    cached = index.trees()
    if not cached:
        return
    fresh = index_tree_ids(index)
    wrong = sorted(d for d, hit in cached.items() if fresh.get(d) != hit)
    if not wrong:
        return
    more = f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else ""
    where = f"directory {show(wrong[0])}" if wrong[0] else "the root directory"
    report.problems.append(
        f"staging index: the cached tree of {where}{more} is not the one its paths make"
        + ("; the cache was dropped: the next commit builds every tree" if drop else "")
    )
    if drop:
        index.set_trees({})
        index.save()


def _recorded_head(repo: Repository, entry: audit.Entry | None) -> Head | None:
    """HEAD as the audit entry of its last move left it, if that still makes sense;
    else the preferred branch, if there is one."""
    if entry is not None:
        branch = entry.note.rpartition("-> ")[2]
        with contextlib.suppress(ValueError, UsageError):
            if entry.new is not None:  # detached: "<64 hex> <branch>"
                oid = from_hex(entry.new)
                repo.history.version(oid)  # (it must still be there)
                return Head(check_ref_name(branch.partition(" ")[2], "branch"), oid)
            if repo.refs.get(f"refs/heads/{check_ref_name(branch, 'branch')}") is not None:
                return Head(branch)
    names = repo.refs.names("heads")
    return Head(preferred_branch(names)) if names else None


def _mend_refs(repo: Repository, report: FsckReport, last: dict[str, audit.Entry]) -> set[str]:
    """(``repair``) Write HEAD and the refs that cannot be read back as the audit log
    last recorded them (every change of a ref is recorded there before it is made);
    the refs that could not be, reported."""
    refs = repo.refs
    kept: set[str] = set()
    for kind in ("heads", "tags", "remotes"):
        for name in refs.names(kind):
            ref = f"refs/{kind}/{name}"
            try:
                refs.get(ref)
                continue
            except FormatError:
                pass
            e = last.get(ref)
            oid, v = b"", None
            if e is not None and e.new is not None:
                with contextlib.suppress(ValueError, DvfsError):
                    oid = from_hex(e.new)
                    v = repo.history.version(oid)
            if e is None or v is None:
                kept.add(ref)
                report.problems.append(
                    f"ref {ref} is unreadable, and the audit log names no version of it "
                    f"that is stored here: delete .dvfs/{ref} to drop it"
                )
                continue
            refs.mend(ref, oid, f"fsck --repair: as audit entry {e.seq} left it")
            report.repaired.append(
                f"ref {ref} was unreadable: it names v{v.number} {oid.hex()[:10]} again, "
                f"as the audit log last recorded it (entry {e.seq})"
            )
    try:
        refs.head()
        return kept
    except FormatError:
        pass
    head = _recorded_head(repo, last.get("HEAD"))
    if head is None:
        kept.add("HEAD")
        report.problems.append(
            "HEAD is unreadable, and no branch is left to point it at: write "
            "`ref: refs/heads/main` into .dvfs/HEAD (main with no versions yet)"
        )
        return kept
    refs.set_head(head)
    where = head.branch if head.detached is None else f"{head.detached.hex()[:10]} (detached)"
    report.repaired.append(f"HEAD was unreadable: it names {where} again")
    return kept


def _unlink_ref_folders(repo: Repository, report: FsckReport) -> bool:
    """(``repair``) Make each folder of refs that is a symbolic link a directory again
    (the link alone is removed, never what it leads to; the refs are then written back
    from the audit log). True if there was one."""
    found = repo.refs.linked_folders()
    for rel in found:
        path = repo.dir / rel
        target = os.readlink(path)
        path.unlink()
        path.mkdir()
        report.repaired.append(
            f"{rel} was a symbolic link (to {quote_name(target)}): it is a directory again, its "
            "refs written back as the audit log last recorded them"
        )
    moved = False
    for rel in _REF_FOLDERS:
        path = repo.dir / rel
        if _not_a_folder(path):
            aside = path.with_name(f"{path.name}.not-a-folder")
            os.replace(path, aside)
            path.mkdir()
            moved = True
            report.repaired.append(
                f"{rel} was not a directory: it was renamed {quote_name(aside.name)} (delete it "
                "at will) and is a directory again, its refs written back as the audit log "
                "last recorded them"
            )
    return bool(found) or moved


_REF_FOLDERS = ("refs", "refs/heads", "refs/tags", "refs/remotes")


def _not_a_folder(path: Path) -> bool:
    """Whether something other than a directory or a link is at ``path`` (a file where
    a folder of refs belongs, which every write of a ref there fails on)."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not (stat.S_ISDIR(mode) or stat.S_ISLNK(mode))


def _ref_folders_named(repo: Repository, report: FsckReport) -> None:
    """A folder of refs that is no directory, named as a problem (without ``repair``)."""
    for rel in _REF_FOLDERS:
        if _not_a_folder(repo.dir / rel):
            report.problems.append(
                f".dvfs/{rel} is not a directory, so none of its refs can be read or "
                "written: `dvfs fsck --repair` renames it and writes them back as the audit "
                "log last recorded them"
            )
            report.repairable = True
            return


def _missing_refs(
    repo: Repository,
    report: FsckReport,
    last: dict[str, audit.Entry],
    repair: bool,
    every: bool = False,
) -> None:
    """Branches and tags whose file is gone though the audit log's last word on them is
    a version (``audit.lost_refs``): status would say "no versions yet" of such a
    branch. With ``repair``, each is written back when that version is stored.
    ``every``: the refs' folder was emptied by repair (a link replaced), so the last
    entry counts too."""
    for lost in audit.lost_refs(last, repo.refs.get, every):
        kind, _, name = lost.ref.removeprefix("refs/").partition("/")
        oid, e = lost.oid, lost.entry
        what = "branch" if kind == "heads" else "tag"
        try:
            label = f"v{repo.history.version(oid).number} {oid.hex()[:10]}"
        except DvfsError:
            report.problems.append(
                f"{what} {name} is missing, and version {oid.hex()[:12]}, where the audit "
                f"log last recorded it (entry {e.seq}), is not stored here"
            )
            continue
        if repair:
            repo.refs.mend(lost.ref, oid, f"fsck --repair: as audit entry {e.seq} left it")
            report.repaired.append(
                f"{what} {name} was missing: it names {label} again, as the audit log last "
                f"recorded it (entry {e.seq})"
            )
        else:
            report.problems.append(
                f"{what} {name} is missing, though the audit log last recorded it at {label} "
                f"(entry {e.seq}): `dvfs fsck --repair` writes it back (then `dvfs {what} "
                f"-d {name}` deletes it for good, if that was meant)"
            )
            report.repairable = True


def fsck(
    repo: Repository, workers: Workers, *, repair: bool = False, digests: bool = False
) -> FsckReport:
    """Verify every object reachable from refs and the index; with ``repair``, mend
    what can be mended (see the module docstring); with ``digests``, read every file
    of several chunks whole as well (see the module docstring)."""
    report = FsckReport()
    hist = repo.history
    kept: set[str] = set()  # refs repair could not mend (reported)
    if repair:
        with repo.locked():
            last = audit.last_entries(repo.dir)  # (the whole log, read once)
            unlinked = _unlink_ref_folders(repo, report)
            kept = _mend_refs(repo, report, last)
            _missing_refs(repo, report, last, repair=True, every=unlinked)
    else:
        _ref_folders_named(repo, report)
        _missing_refs(repo, report, audit.last_entries(repo.dir), repair=False)
    stuck = audit.blocked(repo.dir)  # (every change of a ref is refused until it is fixed)
    if stuck is not None:
        report.problems.append(f"audit log: {stuck}")
    try:  # (status and commit refuse a merge record that cannot be read)
        merging.load(repo.dir)
    except FormatError as exc:
        report.problems.append(str(exc))
    with repo.locked():  # a pipeline run writes without the lock: leave its files be
        writing = any(p.writing for p in live_pins(repo.dir))
        twice = _staged_twice(repo)
        if twice is not None:  # (no tree is built from such an index: commit refuses it)
            report.problems.append(f"staging index: {both_message(twice)}")
        else:
            _check_cache_tree(repo, report, drop=not writing)
        if not writing:
            try:
                report.temporaries = repo.store.remove_temporaries()
            except FormatError as exc:  # (its folder is a link: nothing deleted there)
                report.problems.append(str(exc))
            index = repo.index()
            report.temporaries += remove_temporaries(repo.root, lambda p: index.get(p) is not None)
            with repo.refs.locked():  # (HEAD is written under it alone)
                report.temporaries += remove_tmp_files(repo.dir)
            try:
                drop_marker(repo.dir / RESTORING)
            except FormatError as exc:
                report.problems.append(str(exc))
    damaged_packs = []
    for pack in repo.store.pack_paths():
        report.packs += 1
        wrong = check_pack(pack)
        if wrong is not None:
            damaged_packs.append((pack, wrong))
    report.problems += check_work_dirs(repo.dir)  # (repair leaves them: see work_dirs)
    try:  # (gc refuses to run while a working tree's base cannot be told)
        worktree_bases(repo)
    except FormatError as exc:
        report.problems.append(str(exc))
    found = len(report.problems)  # (then the refs that cannot be read)
    got = reach(
        _roots(repo, report, kept).items(), hist.version, hist.tree, place=lambda v: f"v{v.number}:"
    )
    refs_damaged = len(report.problems) > found
    for bad_record in got.problems:
        what, rid, label = bad_record.kind, bad_record.oid.hex(), bad_record.label
        if what == "version":
            report.problems.append(f"{label}: version {rid}: {bad_record.error}")
        else:
            report.problems.append(f"tree {rid} ({label}) {bad_record.error}")
    report.problems += _wrong_totals(hist, got.versions, got.trees)
    report.versions = len(got.versions)
    chunks = got.chunks
    trees = len(got.trees) + sum(1 for bad in got.problems if bad.kind == "tree")
    for staged in repo.index().entries.values():
        for ref in staged.chunks:
            chunks[ref.oid] = ref.size
    report.trees = trees
    report.chunks = len(chunks)
    report.bytes = sum(chunks.values())
    files = sorted(_several_chunks(hist, got.trees)) if digests else []  # (every run alike)
    read = {c.oid for _, refs in files for c in refs}  # (in order, by the files' tasks)
    futures = {  # (in the walk's order: the problems are named in it, every run alike)
        oid: workers.files.submit(repo.store.verify, oid) for oid in chunks if oid not in read
    }
    wholes = {f: workers.files.submit(_read_whole, repo.store, *f) for f in files}
    bad: dict[bytes, str] = {}
    work = len(futures) + sum(len(refs) for _, refs in files)
    size = sum(chunks[oid] for oid in futures) + sum(c.size for _, refs in files for c in refs)
    workers.progress.start("verifying", work, size, "chunks")
    for oid, fut in futures.items():
        try:
            fut.result()
        except (ObjectCorrupt, ObjectMissing) as exc:
            bad[oid] = "missing" if isinstance(exc, ObjectMissing) else "corrupt"
        workers.progress.advance(1, chunks[oid])
    false: dict[tuple[bytes, tuple[ChunkRef, ...]], bytes] = {}  # -> the bytes' digest
    for f, whole in wholes.items():
        damaged, got_digest = whole.result()
        bad.update(damaged)
        if got_digest is not None and got_digest != f[0]:
            false[f] = got_digest
        workers.progress.advance(len(f[1]), sum(c.size for c in f[1]))
    workers.progress.done()
    if false:
        report.problems += _false_files(hist, got.versions, false)
    dropped: set[bytes] = set()
    salvaged: list[str] | None = None  # (what could not be done; None: a pipeline run writes)
    drop_first = repair and bool(damaged_packs or "corrupt" in bad.values())
    if drop_first:
        # Dropped before the remotes are read: reading them forgets what this clone
        # kept of a remote whose URL changed unless the store lacks something only its
        # old place holds (``vfs.remote.config.forget_moved``); a damaged chunk counted
        # as stored would have that record forgotten, the only one of where it is.
        salvaged = _drop_damaged(repo, bad, damaged_packs, dropped)
    remote_ids = cached_remote_ids(repo)
    remote_only = {o for o, what in bad.items() if what == "missing"} & remote_ids
    for oid in remote_only:
        del bad[oid]
    # (what only a remote held back at its old place lists, by remote: no command
    # fetches from it while it is held back, §6)
    held = held_remotes(repo) if remote_ids & (remote_only | bad.keys()) else {}
    fetchable = remote_ids
    held_ids: dict[str, set[bytes]] = {}
    if held:
        names = list(remotes(repo))
        fetchable = cached_remote_ids(repo, [n for n in names if n not in held])
        held_ids = {name: cached_remote_ids(repo, [name]) - fetchable for name in held}
        for name, listed in held_ids.items():
            if alone := remote_only & listed:
                report.held_back[name] = len(alone)
        remote_only &= fetchable
    report.remote_only = len(remote_only)
    report.repairable = report.repairable or bool(bad or damaged_packs or refs_damaged)
    if repair and report.repairable:
        if not drop_first:
            salvaged = _drop_damaged(repo, bad, damaged_packs, dropped)
        _repair(repo, workers, report, bad, damaged_packs, salvaged, dropped, fetchable, held_ids)
    else:
        report.problems += [f"pack {pack.name}: {wrong}" for pack, wrong in damaged_packs]
    if bad:
        users: dict[bytes, list[str]] = defaultdict(list)
        for oid, v in got.versions.items():
            for where, ids in _walk_paths(hist, v.tree, hist.revision(oid)):
                for cid in ids:
                    if cid in bad and len(users[cid]) < MAX_USERS_SHOWN:
                        users[cid].append(where)
        for p, staged in repo.index().entries.items():
            for c in staged.chunks:
                if c.oid in bad and len(users[c.oid]) < MAX_USERS_SHOWN:
                    users[c.oid].append(f"staged:{os.fsdecode(p)}")
        for oid, what in bad.items():
            used = ", ".join(users[oid]) or "nothing"
            if repair:
                gone = "; its damaged copy was dropped" if oid in dropped else ""
                report.problems.append(
                    f"chunk {oid.hex()} is {what}; used by {used}{gone}: put a good copy "
                    "of one of these files in the working tree and `dvfs add` it"
                )
            else:
                report.problems.append(f"chunk {oid.hex()} is {what}; used by {used}")
    return report


def _drop_damaged(
    repo: Repository, bad: dict[bytes, str], packs: list[tuple[Path, str]], dropped: set[bytes]
) -> list[str] | None:
    """Drop the damaged chunks of ``bad`` and rewrite the damaged ``packs``
    (``vfs.ops.gc.salvage``), adding the ids dropped to ``dropped``; what could not be
    done. None, with nothing done, while a pipeline run writes (it may rely on what is
    here)."""
    with repo.locked():
        if any(p.writing for p in live_pins(repo.dir)):
            return None
        corrupt = {oid for oid, what in bad.items() if what == "corrupt"}
        gone, kept = salvage(repo, corrupt, [pack for pack, _ in packs])
        dropped.update(gone)
        repo.store.refresh()  # (the packs it rewrote: what they held is asked below)
        return kept


def _repair(
    repo: Repository,
    workers: Workers,
    report: FsckReport,
    bad: dict[bytes, str],
    packs: list[tuple[Path, str]],
    kept: list[str] | None,
    dropped: set[bytes],
    fetchable: set[bytes],
    held_ids: dict[str, set[bytes]],
) -> None:
    """Mend what can be mended once :func:`_drop_damaged` dropped what it could
    (``dropped``; ``kept``: what it could not do, None if a pipeline run writes: then
    nothing is), taking it out of ``bad``. A dropped
    chunk that a remote commands fetch from lists is mended; one that only a remote
    held back at its old place lists (``held_ids``, by remote) is said to be refused
    until that is fixed."""
    with repo.locked():
        if kept is None or any(p.writing for p in live_pins(repo.dir)):  # (see _drop_damaged)
            report.problems += [f"pack {pack.name}: {wrong}" for pack, wrong in packs]
            return
        report.problems += kept
        for pack, wrong in packs:
            if aside(pack).exists() and not pack.exists():
                report.repaired.append(
                    f"pack {pack.name}: {wrong}; nothing in it could be found: renamed "
                    f"{aside(pack).name} (delete it at will)"
                )
            elif not pack.exists() or check_pack(pack) is None:  # (a new name, or its own)
                report.repaired.append(
                    f"pack {pack.name}: {wrong}; rewritten with the objects that verify"
                )
            elif not any(f"pack {pack.name} " in line for line in kept):  # (named once)
                report.problems.append(f"pack {pack.name}: {wrong}")
        store = ObjectStore(repo.store.root)
        try:
            source = _store_again(repo, workers, store, set(bad))
            store.sync()
            for oid in list(bad):
                what = "damaged" if oid in dropped else bad[oid]
                try:
                    store.verify(oid)
                except (ObjectCorrupt, ObjectMissing):
                    held = [n for n, ids in held_ids.items() if oid in ids]
                    if oid in dropped and oid in fetchable:
                        report.remote_only += 1
                        report.repaired.append(
                            f"chunk {oid.hex()} was damaged: dropped; a remote holds it, "
                            "and commands fetch it when needed"
                        )
                        del bad[oid]
                    elif oid in dropped and held:
                        for name in held:
                            report.held_back[name] = report.held_back.get(name, 0) + 1
                        report.problems.append(
                            f"chunk {oid.hex()} was damaged: dropped (nothing in it could "
                            f"be read); only remote {quote_name(held[0])}'s old place holds it "
                            "and commands that need it refuse: add that place as another "
                            f"remote and fetch it, or set {quote_name(held[0])}'s URL back "
                            "(the warning above names it and what to run)"
                        )
                        del bad[oid]
                    continue
                where = f" from {show(source[oid])}" if oid in source else ""
                report.repaired.append(f"chunk {oid.hex()} was {what}: stored again{where}")
                del bad[oid]
        finally:
            store.close()


def _store_again(
    repo: Repository, workers: Workers, store: ObjectStore, lost: set[bytes]
) -> dict[bytes, bytes]:
    """Read again each staged file of the working tree that uses a ``lost`` chunk,
    storing its chunks; which file each lost chunk was read from."""
    hasher = Hasher(repo.root, repo.chunker, store, workers)
    source: dict[bytes, bytes] = {}
    for rel, staged in repo.index().entries.items():
        ids = {c.oid for c in staged.chunks} & lost
        if not staged.checked_out or not ids - source.keys():
            continue
        st = lstat_or_none(repo.root, rel)
        if st is None or not stat.S_ISREG(st.st_mode) or st.st_size != staged.size:
            continue
        try:
            again = hasher.stage_one(Found(rel, st))
        except (DvfsError, OSError):  # (changed, unreadable: it cannot help)
            continue
        if again.digest == staged.digest:
            source.update(dict.fromkeys(ids - source.keys(), rel))
    return source
