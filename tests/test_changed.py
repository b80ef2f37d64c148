"""What each version changed, worked out once and kept (``vfs.ops.changed``), and the
"added in" of ``dvfs show`` and the dashboard built on it: the same answers as reading
every version whole, records that cannot be trusted worked out again, gc dropping
the records of the versions it deletes.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import msgpack

import vfs
from tests.support.cli import fsck_clean, run
from vfs.errors import UsageError
from vfs.model.codec import Entry, Kind
from vfs.ops import browse, changed
from vfs.ops.diff import diff_maps, diff_trees, same_entry
from vfs.repo.history import History
from vfs.repo.repository import Repository
from vfs.ui import background


def whole(hist: History, a: bytes, b: bytes) -> tuple[dict[bytes, Entry], dict[bytes, Entry]]:
    """Both trees flattened whole (files, links, and each empty directory where the
    other side has no directory), as a diff compares them."""
    maps = []
    for this, other in ((a, b), (b, a)):
        empty: list[bytes] = []
        flat = hist.flatten(this, empty=empty)
        for p in empty:
            there = hist.lookup(other, p)
            if there is None or there.kind != Kind.DIR:
                e = hist.lookup(this, p)
                assert e is not None
                flat[p] = e
        maps.append(flat)
    return maps[0], maps[1]


def reference(hist: History, oid: bytes) -> frozenset[bytes] | None:
    """What version ``oid`` changed, from both trees read whole."""
    v = hist.version(oid)
    if not v.parents:
        return None
    old, new = whole(hist, hist.version(v.parents[0]).tree, v.tree)
    return frozenset(p for p in new if p not in old or not same_entry(old[p], new[p]))


def brute_added_in(hist: History, oid: bytes) -> dict[bytes, str]:
    """For each file of ``oid``, the oldest version from which on it is unchanged,
    from every version of the chain flattened whole."""
    chain = list(hist.chain(oid))
    trees = [hist.flatten(v.tree, empty=[]) for _, v in chain]
    out = {}
    for path, entry in trees[0].items():
        label = f"v{chain[0][1].number}"
        for (_, v), files in zip(chain[1:], trees[1:], strict=True):
            older = files.get(path)
            if older is None or not same_entry(older, entry):
                break
            label = f"v{v.number}"
        out[path] = label
    return out


def mutate(root: Path, rng: random.Random, step: int) -> None:
    """One random edit of the working tree: files changed, added, removed, touched,
    made executable, turned into directories and back, links, empty directories, and
    a directory that grows past 16 entries (where a record's entry count changes
    size) and past the sizes where edits land at its start, middle and end."""
    big = root / "big"
    what = rng.randrange(11)
    name = f"f{rng.randrange(40):03d}"
    if what == 0:
        (big / name).write_bytes(rng.randbytes(rng.randrange(1, 300)))
    elif what == 1:
        for i in range(rng.randrange(1, 6)):
            (big / f"n{step:03d}-{i}").write_bytes(rng.randbytes(50))
    elif what == 2:
        victims = sorted(big.iterdir())
        for p in rng.sample(victims, min(len(victims), rng.randrange(1, 4))):
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    elif what == 3 and (big / name).is_file():
        later = 1_700_000_000 + step * 1000
        os.utime(big / name, (later, later))  # an mtime alone: not a change
    elif what == 4 and (big / name).is_file():
        os.chmod(big / name, 0o755 if not os.access(big / name, os.X_OK) else 0o644)
    elif what == 5:
        p = big / name
        if p.is_file():
            p.unlink()
            (p / "inner").mkdir(parents=True)
            (p / "inner" / "x").write_bytes(b"x%d" % step)
        elif p.is_dir():
            shutil.rmtree(p)
            p.write_bytes(b"back %d" % step)
    elif what == 6:
        link = big / f"l{rng.randrange(5)}"
        if link.is_symlink():
            link.unlink()
        link.symlink_to(f"target-{step}")
    elif what == 7:
        (root / "deep" / f"d{rng.randrange(4)}" / f"e{rng.randrange(4)}").mkdir(
            parents=True, exist_ok=True
        )  # empty directories
    elif what == 8:
        d = root / "deep" / f"d{rng.randrange(4)}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"g{rng.randrange(3)}").write_bytes(rng.randbytes(20))
    elif what == 9:
        (root / "top.txt").write_bytes(b"top %d" % step)
    else:
        (big / name).write_bytes(b"same")  # often the content it already had


def test_kept_answers_match_reading_every_version_whole(tmp_path: Path) -> None:
    rng = random.Random(17)
    root = tmp_path / "r"
    (root / "big").mkdir(parents=True)
    for i in range(14):
        (root / "big" / f"f{i * 3:03d}").write_bytes(b"start %d" % i)
    Repository.init(root)
    repo = vfs.Repo(root)
    repo.add(["big"])
    repo.commit("v1")
    for step in range(2, 60):
        while True:  # until the edits change something
            mutate(root, rng, step)
            repo.add(["."])
            try:
                repo.commit(f"v{step}", all=True)
                break
            except UsageError:
                continue

    hist = Repository(root).history
    head = hist.resolve("HEAD")
    chain = [oid for oid, _ in hist.chain(head)]
    for oid in chain:
        assert changed.changed_paths(hist, oid) == reference(hist, oid)
        v = hist.version(oid)
        if v.parents:  # a diff reads only what differs, and says what reading all would
            a = hist.version(v.parents[0]).tree
            assert diff_trees(hist, a, v.tree) == diff_maps(*whole(hist, a, v.tree))
    for older, newer in [(chain[-1], chain[0]), (chain[5], chain[30]), (chain[0], chain[-1])]:
        a, b = hist.version(older).tree, hist.version(newer).tree
        assert diff_trees(hist, a, b) == diff_maps(*whole(hist, a, b))
    kept = list((root / ".dvfs" / "changes").glob("*/*"))
    assert len(kept) == len(chain) - 1  # a first version has no record: all of it is new

    # A fresh process reads the records back, and walks the chain in another order.
    again = Repository(root).history
    for oid in reversed(chain):
        assert changed.changed_paths(again, oid) == reference(again, oid)
    assert browse.added_in(again, head) == brute_added_in(again, head)
    mid = chain[len(chain) // 2]
    assert browse.added_in(again, mid) == brute_added_in(again, mid)
    names = [
        p.split(b"/")[-1] for p in hist.flatten(hist.version(head).tree) if p.startswith(b"big/")
    ]
    by_name = browse.added_in_dir(again, head, b"big", names)
    want = brute_added_in(again, head)
    assert by_name == {n: want[b"big/" + n] for n in names if b"big/" + n in want}
    fsck_clean(root)


def test_records_that_cannot_be_trusted_are_worked_out_again(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    (root / "d" / "a").write_text("1")
    (root / "d" / "b").write_text("1")
    Repository.init(root)
    repo = vfs.Repo(root)
    repo.add(["d"])
    repo.commit("v1")
    (root / "d" / "b").write_text("2")
    repo.add(["d"])
    repo.commit("v2")
    hist = Repository(root).history
    head = hist.resolve("HEAD")
    parent = hist.version(head).parents[0]
    assert changed.changed_paths(hist, head) == frozenset({b"d/b"})
    record = changed.record_path(root / ".dvfs" / "changes", head)
    good = record.read_bytes()

    forged = [
        b"\x00garbage",
        good[: len(good) // 2],  # torn by a crash
        msgpack.packb({"v": 1, "parent": b"\x01" * 32, "paths": [b"d/a"]}),  # another parent
        msgpack.packb({"v": 1, "parent": parent, "paths": [b"../../etc/passwd"]}),
        msgpack.packb({"v": 1, "parent": parent, "paths": [b"d/.dvfs"]}),
        msgpack.packb({"v": 1, "parent": parent, "paths": [b"d/b", b"d/a"]}),  # unsorted
        msgpack.packb({"v": 2, "parent": parent, "paths": [b"d/a"]}),
    ]
    for bad in forged:
        record.write_bytes(bad)
        fresh = Repository(root).history
        assert changed.changed_paths(fresh, head) == frozenset({b"d/b"}), bad
        assert record.read_bytes() == good  # and written again
        assert browse.added_in(fresh, head) == {b"d/a": "v1", b"d/b": "v2"}

    # A record the repository cannot take: the answer comes from memory alone.
    shutil.rmtree(root / ".dvfs" / "changes")
    (root / ".dvfs" / "changes").write_bytes(b"")
    fresh = Repository(root).history
    assert browse.added_in(fresh, head) == {b"d/a": "v1", b"d/b": "v2"}
    (root / ".dvfs" / "changes").unlink()
    fsck_clean(root)


def test_no_record_is_kept_through_a_link(tmp_path: Path) -> None:
    """With ``.dvfs/changes`` (or a shard of it) a symbolic link, the records were
    written where it pointed; gc already deleted nothing there, and now nothing is
    written there either: the answer comes from memory."""
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    Repository.init(root)
    repo = vfs.Repo(root)
    for n in range(2):
        (root / "d" / "a").write_text(str(n))
        repo.add(["d"])
        repo.commit(f"v{n + 1}")
    head = Repository(root).history.resolve("HEAD")
    outside = tmp_path / "outside"
    outside.mkdir()
    changes = root / ".dvfs" / "changes"
    changes.symlink_to(outside)
    assert changed.changed_paths(Repository(root).history, head) == frozenset({b"d/a"})
    changes.unlink()
    changes.mkdir()
    (changes / head.hex()[:2]).symlink_to(outside)
    assert changed.changed_paths(Repository(root).history, head) == frozenset({b"d/a"})
    assert list(outside.iterdir()) == []
    fsck_clean(root)


def test_a_search_cut_short_gets_further_each_time(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    for i in range(30):
        (root / "d" / f"f{i:02d}").write_text("0")
    Repository.init(root)
    repo = vfs.Repo(root)
    repo.add(["d"])
    repo.commit("v1")
    for n in range(2, 12):
        (root / "d" / f"f{n:02d}").write_text(str(n))
        repo.add(["d"])
        repo.commit(f"v{n}")
    names = [f"f{i:02d}".encode() for i in range(30)]
    hist = Repository(root).history
    head = hist.resolve("HEAD")
    calls = 0

    def after_three() -> bool:  # a deadline that passes after three versions
        nonlocal calls
        calls += 1
        return calls > 3

    found, bound = changed.first_seen(
        hist, head, [b"d/" + n for n in names], within=b"d", deadline=after_three
    )
    assert bound == "v8" and found == {b"d/f11": "v11", b"d/f10": "v10", b"d/f09": "v9"}
    assert len(list((root / ".dvfs" / "changes").glob("*/*"))) == 3
    found, bound = changed.first_seen(hist, head, [b"d/" + n for n in names], within=b"d")
    assert bound is None
    assert found == {b"d/f%02d" % i: f"v{i}" if 2 <= i <= 11 else "v1" for i in range(30)}


def test_gc_drops_the_records_of_the_versions_it_deletes(tmp_path: Path) -> None:
    root = tmp_path / "r"
    root.mkdir()
    run(root, "init")
    for n in (1, 2):
        (root / "a").write_text(str(n))
        run(root, "add", "a")
        run(root, "commit", "-m", f"v{n}")
    run(root, "branch", "side")
    run(root, "switch", "side")
    for n in (3, 4):
        (root / "a").write_text(str(n))
        run(root, "add", "a")
        run(root, "commit", "-m", f"side {n}")
    hist = Repository(root).history
    chain = [oid for oid, _ in hist.chain(hist.head_id())]
    for oid in chain:
        changed.changed_paths(hist, oid)
    kept = root / ".dvfs" / "changes"
    assert len(list(kept.glob("*/*"))) == 3  # side 4, side 3, v2
    (kept / "ab").mkdir(exist_ok=True)
    (kept / "ab" / ".tmp-left-by-a-crash").write_bytes(b"x")
    run(root, "switch", "main")
    run(root, "branch", "-D", "side")
    run(root, "gc")
    assert sorted(kept.glob("*/*")) == [changed.record_path(kept, chain[2])]  # v2's alone
    fsck_clean(root)


def test_the_dashboard_works_out_every_branch_beside_itself(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    Repository.init(root)
    repo = vfs.Repo(root)
    for n in range(1, 4):
        (root / "d" / f"f{n}").write_text(str(n))
        repo.add(["d"])
        repo.commit(f"v{n}")
    run(root, "switch", "-c", "side")
    for n in range(4, 6):
        (root / "d" / "f1").write_text(str(n))
        repo.add(["d"])
        repo.commit(f"side {n}")
    run(root, "switch", "main")
    worker = background.start(root)
    assert worker.wait(timeout=120) == 0
    hist = Repository(root).history
    versions = {oid for tip in hist.refs.branches().values() for oid, _ in hist.chain(tip)}
    kept = {bytes.fromhex(p.parent.name + p.name) for p in (root / ".dvfs/changes").glob("*/*")}
    assert kept == {oid for oid in versions if hist.version(oid).parents}
    for oid in versions:
        assert changed.changed_paths(hist, oid) == reference(hist, oid)
    fsck_clean(root)
