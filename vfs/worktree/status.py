"""Sorting the working tree against the index, split across processes when it is large.

A clean ``status`` is mostly one ``lstat`` per tracked file and the Python around it,
and the interpreter lock keeps threads from sharing that work (two threads took
longer than one: each ``lstat`` hands the lock over). So a large tree is split:
directories are listed breadth first until there are a few per CPU, and a forked
helper process scans and sorts some of them while this process does the others. Both
take directories from shared :class:`~vfs._os.helper_process.Tickets`, so the one that
gets more CPU (on a machine busy with other work, the helper may wait for a core)
does more, rather than the other waiting for it.

A helper (``vfs._os.helper_process``) answers first (untracked paths, maybe-changed paths, how
many tracked files it found, warnings, which directories it scanned); then, only if
this process asks because the counts show that something was deleted, the paths of the
tracked files it found. Every directory that no answer accounts for (a helper failed
in any way) is scanned again here, where any error is raised as usual.
"""

from __future__ import annotations

import os
import stat as statmod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

from vfs._os.beneath import Walker, names_in
from vfs._os.helper_process import Channel, Helper, Tickets, spare_cpus
from vfs.errors import FileUnreadable
from vfs.model.codec import PERM_BITS
from vfs.model.names import any_reserved
from vfs.repo.stage import Index
from vfs.store.durable import TMP_PREFIX
from vfs.worktree.scan import (
    Found,
    Listing,
    Warn,
    enterable,
    list_dir,
    list_dir_or_skip,
    open_listed,
    scan,
    scan_lists,
)

SPLIT_ABOVE = 4096  # tracked files; fewer are sorted in one process (a fork costs ~1 ms)
HELPERS = 3  # at most this many helper processes
PER_PART = 8  # directories listed until there are this many per process

Triaged = tuple[list[bytes], list[Found], list[bytes]]
PassedOver = Callable[[bytes], bool] | None  # (see triage_tree)


def triage_tree(
    root: Path,
    tops: Sequence[bytes],
    extra: Iterable[Found],
    index: Index,
    warn: Warn,
    skipped: list[bytes] | None = None,
    passed_over: PassedOver = None,
) -> Triaged:
    """Scan ``tops`` (which exist), add ``extra``, and sort the files against ``index``.

    Returns (untracked paths, files that may have changed, tracked paths not found).
    With ``skipped``, directories that cannot be read are added there (after a
    warning) rather than raise; the tracked paths below them count as not found.
    ``passed_over`` says which names dvfs never stores go without a warning (the
    ignored ones: ``vfs.worktree.scan.enterable``).
    """
    helpers = _helpers_for(index)
    if helpers == 0:
        untracked, stale, tracked = _sorted_few(index, list(extra))
        _add(
            _scanned_sorted(root, tops, index, warn, skipped, passed_over),
            untracked,
            stale,
            tracked,
        )
        return untracked, stale, _deleted(index, tracked)
    listed, dirs = _frontier(root, tops, PER_PART * (helpers + 1), warn, skipped, passed_over)
    tickets = Tickets.share(len(dirs)) if dirs else None
    if tickets is None:  # (nothing left to share, or no pipe for it)
        untracked, stale, tracked = _sorted_few(index, [*extra, *listed])
        _add(
            _scanned_sorted(root, dirs, index, warn, skipped, passed_over),
            untracked,
            stale,
            tracked,
        )
        return untracked, stale, _deleted(index, tracked)
    children: list[_Helper] = []
    try:
        for _ in range(helpers):
            if (c := _Helper.start(root, dirs, tickets, index, passed_over)) is not None:
                children.append(c)
        return _shared(
            root, extra, listed, dirs, tickets, children, index, warn, skipped, passed_over
        )
    finally:
        for c in children:
            c.close()
        tickets.close()


def _shared(
    root: Path,
    extra: Iterable[Found],
    listed: list[Found],
    dirs: list[bytes],
    tickets: Tickets,
    children: list[_Helper],
    index: Index,
    warn: Warn,
    skipped: list[bytes] | None,
    passed_over: PassedOver,
) -> Triaged:
    """:func:`triage_tree` once the helpers run: this process's tickets, then their answers."""
    mine: list[int] = []
    claimed = _claimed(tickets, dirs, mine)
    untracked, stale, tracked = _sorted_few(index, [*extra, *listed])
    _add(
        _scanned_sorted(root, claimed, index, warn, skipped, passed_over), untracked, stale, tracked
    )
    answers = [(c, c.answer(len(dirs))) for c in children]
    done = set(mine)
    for i, (c, got) in enumerate(answers):
        if got is not None and (len(set(got.done)) != len(got.done) or done & set(got.done)):
            answers[i] = (c, None)  # (directories claimed twice: trusted for none of them)
        elif got is not None:
            done.update(got.done)
    left = [d for i, d in enumerate(dirs) if i not in done]  # a helper failed: scanned here
    if left:
        _add(
            _scanned_sorted(root, left, index, warn, skipped, passed_over),
            untracked,
            stale,
            tracked,
        )
    with Walker(root) as walker:
        for _, got in answers:
            if got is None:
                continue
            for note in got.notes:
                warn(note)
            if skipped is not None:
                skipped += got.skipped
            elif got.skipped:  # asked not to skip: here they raise (or are readable now)
                again = _scanned_sorted(root, got.skipped, index, warn, None, passed_over)
                _add(again, untracked, stale, tracked)
            untracked += got.untracked
            for rel in got.stale:
                st = walker.lstat(rel)
                if st is None:  # gone since the helper saw it: it is deleted
                    got.count -= 1
                    got.gone.add(rel)
                else:
                    stale.append(Found(rel, st))
    found = len(tracked) + sum(got.count for _, got in answers if got is not None)
    need = found < index.count()  # else every tracked path was found: none is deleted
    for c, got in answers:
        if got is not None:
            paths = c.tracked(need)
            if need:
                if paths is None:
                    theirs = [dirs[i] for i in got.done]
                    tracked += _scanned_sorted(root, theirs, index, _quiet, [])[2]
                else:
                    tracked += [p for p in paths if p not in got.gone]
    return untracked, stale, _deleted(index, tracked) if need else []


def _add(more: Triaged, untracked: list[bytes], stale: list[Found], tracked: list[bytes]) -> None:
    """Add the lists of ``more`` to the others."""
    untracked += more[0]
    stale += more[1]
    tracked += more[2]


def _claimed(tickets: Tickets, dirs: list[bytes], taken: list[int]) -> Iterator[bytes]:
    """The directories of the tickets this process claims, one claim at a time, each
    one's number noted in ``taken`` before it is scanned."""
    while (got := tickets.claim()) is not None:
        for i in got:
            taken.append(i)
            yield dirs[i]


def _quiet(_: str) -> None:
    """Drops a warning (given once already)."""


def _helpers_for(index: Index) -> int:
    """How many helper processes to start (0: do it all here)."""
    return 0 if index.count() < SPLIT_ABOVE else spare_cpus(HELPERS)


def _scanned_sorted(
    root: Path,
    dirs: Iterable[bytes],
    index: Index,
    warn: Warn,
    skipped: list[bytes] | None = None,
    passed_over: PassedOver = None,
) -> Triaged:
    """:func:`_sorted` of :func:`_scanned`: each file sorted as its directory is listed.

    A clean ``status`` is one ``fstatat`` per file and the Python around it. Listing
    each directory's entries (``vfs.worktree.scan.list_dir``: an entry object, its
    kind and a pair made for each) and then sorting them against the index
    (``Index.triage``) took 88-91 ms of CPU for 20,000 files, where a bare loop of the
    same ``scandir`` and ``fstatat`` calls takes 50-53; this, 77. Each name is looked
    at once: its lstat is held against its row, and only a file that may have changed,
    or is untracked, is kept. The kind of an entry is read from its lstat only then:
    one whose inode, ctime and all match its row is the file that was staged, a
    regular file or a link. The same test as ``Index.triage``.

    Where the index is not held as a file's columns, or a directory holds a name dvfs
    never stores (``.git``, ``.dvfs``, ...), it is listed and sorted as before.
    """
    sieve = index.sieve()
    if sieve is None:
        return _sorted(index, _scanned(root, dirs, warn, skipped, passed_over))
    paths, made, size, mtime, ctime, ino, mode, limit, keep_bits = sieve
    untracked: list[bytes] = []
    stale: list[Found] = []
    tracked: list[bytes] = []
    found = untracked, stale, tracked
    keep, new, lstat = tracked.append, tuple.__new__, os.stat
    with Walker(root) as walker:
        for top in dirs:
            st = walker.lstat(top)
            if st is None or not statmod.S_ISDIR(st.st_mode):  # (a file: as scan finds it)
                _add(_sorted(index, [list(scan(root, top, warn, skipped=skipped))]), *found)
                continue
            stack = [top]
            while stack:
                d = stack.pop()
                try:
                    fd = open_listed(walker, d)
                except FileUnreadable as exc:
                    if skipped is None:
                        raise
                    warn(f"{exc} (what it holds is left out)")
                    skipped.append(d)
                    continue
                if fd is None:
                    continue
                names = names_in(fd) if d else []  # (the root, which holds .dvfs: below)
                if not d or any_reserved(names) is not None or _own_temporary(names):
                    # (a rare name, or the root: listed and sorted as anywhere else)
                    listing = list_dir(walker, d)
                    _add(_sorted(index, [listing.files]), *found)
                    stack += enterable(listing, warn, passed_over=passed_over)
                    continue
                prefix = d + b"/"
                # Its tracked paths are one run of the sorted ones, looked up in a map
                # of that run alone; where the run is far longer than the listing (the
                # paths below its subdirectories), in the map of all the paths.
                lo = bisect_left(paths, prefix)
                hi = bisect_left(paths, d + b"0", lo)  # ("0" sorts right after "/")
                if hi - lo <= _RUN * (len(names) + 1):
                    at = dict(zip(paths[lo:hi], range(lo, hi), strict=True)).get
                else:
                    at = made().get
                subdirs: list[bytes] = []
                odd: list[bytes] = []
                for name in names:
                    try:
                        st = lstat(name, dir_fd=fd, follow_symlinks=False)
                    except FileNotFoundError:  # removed since it was listed
                        continue
                    rel = prefix + name
                    i = at(rel)
                    if i is not None and (  # Index.triage's test, inline
                        st.st_mtime_ns == (when := mtime[i])
                        and st.st_size == size[i]
                        and st.st_ctime_ns == ctime[i]
                        and st.st_ino == ino[i]
                        and ((m := st.st_mode & PERM_BITS) == (r := mode[i]) or m == r & keep_bits)
                        and when < limit
                    ):
                        keep(rel)
                        continue
                    kind = st.st_mode & _KIND  # (no .git, .dvfs nor .tmp-* here: see above)
                    if kind == _DIR:
                        subdirs.append(rel)
                    elif kind != _FILE and kind != _LINK:
                        odd.append(rel)
                    elif i is None:
                        untracked.append(rel)
                    else:
                        keep(rel)
                        stale.append(new(Found, (rel, st)))
                stack += enterable(Listing([], subdirs, odd, []), warn, passed_over=passed_over)
    return untracked, stale, tracked


_KIND = 0o170000  # the bits of a mode that say its kind (S_IFMT's)
_DIR, _FILE, _LINK = statmod.S_IFDIR, statmod.S_IFREG, statmod.S_IFLNK
_TMP_NAME = b"\0" + TMP_PREFIX.encode()


def _own_temporary(names: list[bytes]) -> bool:
    """Whether a name among ``names`` is one of dvfs's own temporaries (``.tmp-*``),
    which ``list_dir`` leaves out: one pass over them all."""
    return _TMP_NAME in b"\0" + b"\0".join(names)


def _sorted_few(index: Index, files: list[Found]) -> Triaged:
    """:func:`_sorted` of a few files (at the root, or in the directories listed before
    the work is shared), each found among the sorted paths by bisection: the map of
    every path to its row is not made for them (see ``Index.sieve``)."""
    sieve = index.sieve()
    if sieve is None or len(files) > _FEW:
        return _sorted(index, [files])
    paths, _, size, mtime, ctime, ino, mode, limit, keep_bits = sieve
    untracked: list[bytes] = []
    stale: list[Found] = []
    tracked: list[bytes] = []
    for f in files:
        rel, st = f
        i = bisect_left(paths, rel)
        if i == len(paths) or paths[i] != rel:
            untracked.append(rel)
            continue
        tracked.append(rel)
        if not (  # Index.triage's test
            st.st_mtime_ns == mtime[i] < limit
            and st.st_size == size[i]
            and st.st_ctime_ns == ctime[i]
            and st.st_ino == ino[i]
            and ((m := st.st_mode & PERM_BITS) == (r := mode[i]) or m == r & keep_bits)
        ):
            stale.append(f)
    return untracked, stale, tracked


_FEW = 64  # files sorted by bisection at most (more: in the map of all the paths)
_RUN = 4  # a directory's run of tracked paths looked up in a map of its own: at most
# this many times its entries (more: the run is mostly what its subdirectories hold)


def _scanned(
    root: Path,
    dirs: Iterable[bytes],
    warn: Warn,
    skipped: list[bytes] | None = None,
    passed_over: PassedOver = None,
) -> Iterator[list[Found]]:
    """Every file and link at or below each of ``dirs``, a directory at a time
    (see :func:`scan_lists`)."""
    for d in dirs:
        yield from scan_lists(root, d, warn, skipped=skipped, passed_over=passed_over)


def _sorted(index: Index, found: Iterable[list[Found]]) -> Triaged:
    """Sort lists of files against ``index``, each list in one call (see ``Index.triage``)."""
    untracked: list[bytes] = []
    stale: list[Found] = []
    tracked: list[bytes] = []
    triage = index.triage
    for files in found:
        u, s, t = triage(files)
        if u:
            untracked += [f.rel for f in u]
        stale += s
        tracked += t
    return untracked, stale, tracked


def _deleted(index: Index, tracked: list[bytes]) -> list[bytes]:
    """The tracked paths not in ``tracked`` (the paths found), sorted."""
    if len(tracked) >= index.count():
        return []
    present = set(tracked)
    return sorted(p for p in index.paths() if p not in present)


def _frontier(
    root: Path,
    tops: Sequence[bytes],
    want: int,
    warn: Warn,
    skipped: list[bytes] | None,
    passed_over: PassedOver,
) -> tuple[list[Found], list[bytes]]:
    """List directories breadth first from ``tops`` until ``want`` are left to scan.

    Returns the files found in the directories listed, and the directories left.
    """
    listed: list[Found] = []
    level: list[bytes] = []
    with Walker(root) as walker:
        for top in tops:
            st = walker.lstat(top)
            if st is not None and statmod.S_ISDIR(st.st_mode):
                level.append(top)
            else:
                listed.extend(scan(root, top, warn, skipped=skipped, passed_over=passed_over))
        while level and len(level) < want:
            deeper: list[bytes] = []
            for d in level:
                listing = list_dir_or_skip(walker, d, warn, skipped)
                listed += listing.files
                deeper += enterable(listing, warn, passed_over=passed_over)
            level = deeper
    return listed, level


class _Answer:
    """A helper's first frame. (A plain class: a dataclass costs every ``status`` its
    making, 0.4 ms, and a clean one of a small tree never forks a helper.)"""

    __slots__ = ("count", "done", "gone", "notes", "skipped", "stale", "untracked")

    def __init__(
        self,
        untracked: list[bytes],
        stale: list[bytes],
        count: int,
        notes: list[str],
        skipped: list[bytes],
        done: list[int],
    ) -> None:
        self.untracked = untracked
        self.stale = stale
        self.count = count
        self.notes = notes
        self.skipped = skipped
        self.done = done  # the numbers of the directories it scanned
        self.gone: set[bytes] = set()


class _Helper:
    """A forked process sorting the directories of the tickets it claims against the index."""

    def __init__(self, process: Helper) -> None:
        self.process = process

    @staticmethod
    def start(
        root: Path, dirs: list[bytes], tickets: Tickets, index: Index, passed_over: PassedOver
    ) -> _Helper | None:
        """Fork a helper that claims ``tickets`` of ``dirs``; None if no process could be
        made. It only lists, stats and reports: it is not tied to this process's life
        (see ``Helper.start``)."""
        process = Helper.start(
            lambda channel: _serve(root, dirs, tickets, index, channel, passed_over), tied=False
        )
        return None if process is None else _Helper(process)

    def answer(self, dirs: int) -> _Answer | None:
        """The helper's first frame (of ``dirs`` directories in all), or None if it failed."""
        ok, value = self.process.receive()
        if not ok:
            return None
        try:
            untracked, stale, count, notes, skipped, done = value
            got = _Answer(
                list(untracked), list(stale), int(count), list(notes), list(skipped), list(done)
            )
        except (ValueError, TypeError):
            return None
        if not all(type(i) is int and 0 <= i < dirs for i in got.done):
            return None
        return got

    def tracked(self, need: bool) -> list[bytes] | None:
        """Ask for the paths of the tracked files found if ``need``; None if they failed."""
        if not self.process.send(need):
            return None
        if not need:
            return []
        ok, value = self.process.receive()
        return list(value) if ok and isinstance(value, list) else None

    def close(self) -> None:
        """Close the pipes (a helper still waiting then ends) and reap the helper."""
        self.process.close()


def _serve(
    root: Path,
    dirs: list[bytes],
    tickets: Tickets,
    index: Index,
    channel: Channel,
    passed_over: PassedOver,
) -> None:
    """The helper's work: the directories of the tickets it claims."""
    notes: list[str] = []
    skipped: list[bytes] = []
    done: list[int] = []
    mine = _claimed(tickets, dirs, done)
    untracked, stale, tracked = _scanned_sorted(
        root, mine, index, notes.append, skipped, passed_over
    )
    channel.send((untracked, [f.rel for f in stale], len(tracked), notes, skipped, done))
    ok, need = channel.receive()
    if ok and need:
        channel.send(tracked)
