"""``dvfs gc`` (issue 16): what it frees, what it keeps, and that no crash loses data.

Every test drives the real command line. The data: ``keep.bin`` committed, and
``junk.bin`` added in the same ``dvfs add`` (so in the same pack) then unstaged, so
the pack must be rewritten with ``keep.bin``'s chunk alone. Each state-changing test
ends with ``dvfs fsck``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    add_in_process,
    assert_error,
    commit_in_process,
    fsck_clean,
    init_repo,
    run,
)
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.mount import mounted
from vfs.ops import store_limit
from vfs.ops.gc import KILL_ENV, ROW_CACHE, ROW_CACHE_KEEP, merge_small_packs
from vfs.repo.repository import Repository
from vfs.store.durable import tmp_leaf
from vfs.store.lock import repository_lock
from vfs.store.objects import ObjKind
from vfs.store.packs import SMALL_PACK, SMALL_PACKS_MERGE
from vfs.store.pins import pinned

KiB = 1024
MiB = 1024 * KiB
KEEP = os.urandom(300 * KiB)
JUNK = os.urandom(3 * MiB)
STEPS = ["copying", "renamed", "synced", "deleted"]  # "marked" deletes as little as these


def packs(repo: Repo) -> dict[str, bytes]:
    """Each pack file's name and bytes."""
    d = repo.root / ".dvfs" / "objects"
    return {p.name: p.read_bytes() for p in sorted(d.glob("pack-*.pack"))}


def with_garbage(repo: Repo) -> Repo:
    """``keep.bin`` committed, ``junk.bin`` stored in its pack but reachable from nothing."""
    repo.write("keep.bin", KEEP)
    repo.write("junk.bin", JUNK)
    repo.ok("add", "keep.bin", "junk.bin")
    repo.ok("rm", "--cached", "junk.bin")
    (repo.root / "junk.bin").unlink()
    repo.commit("keep")
    return repo


@pytest.fixture(name="template", scope="module")
def template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """Made once: each test works on a copy (``copy_of``)."""
    return with_garbage(init_repo(tmp_path_factory.mktemp("gc") / "template"))


def copy_of(template: Repo, tmp_path: Path, name: str) -> Repo:
    dst = tmp_path / name
    shutil.copytree(template.root, dst, symlinks=True)
    return Repo(dst)


def test_gc_frees_what_nothing_reaches_and_keeps_every_root(make_repo: RepoFactory) -> None:
    repo = with_garbage(make_repo())
    remote = repo.root.parent / "remote"
    # a version only a tag names, one only a remote-tracking branch names, and a file
    # only staged: each must survive
    tagged, tracked, staged = os.urandom(200 * KiB), os.urandom(200 * KiB), os.urandom(70 * KiB)
    for name, data in (("tagged", tagged), ("tracked", tracked)):
        repo.ok("checkout", "-b", name)
        repo.write(f"{name}.bin", data)
        repo.ok("add", f"{name}.bin")
        repo.commit(name)
    repo.ok("tag", "t1", "tagged")
    repo.ok("remote", "add", "origin", str(remote))
    repo.ok("push", "--remote", "origin", "tracked")
    repo.ok("checkout", "main")
    repo.ok("branch", "-d", "tagged", "tracked")
    repo.write("staged.bin", staged)
    repo.ok("add", "staged.bin")
    before = packs(repo)

    dry = repo.json("gc", "--dry-run", "--json")
    assert dry["dry_run"] is True
    assert dry["bytes_freed"] >= len(JUNK)
    assert packs(repo) == before, "a dry run changed the store"

    r = repo.json("gc", "--json")
    assert r["bytes_freed"] >= len(JUNK)
    assert abs(r["bytes_freed"] - dry["bytes_freed"]) < 4 * KiB  # the estimate is close
    assert r["packs_rewritten"] == 1 and r["problems"] == []
    assert repo.objects_size() < len(JUNK)
    assert repo.cat("main:keep.bin") == KEEP
    assert repo.cat("t1:tagged.bin") == tagged
    assert repo.cat("origin/tracked:tracked.bin") == tracked
    repo.ok("commit", "-m", "staged")  # the staged file's chunk is still there
    assert repo.cat("HEAD:staged.bin") == staged
    again = repo.json("gc", "--json")
    assert again["bytes_freed"] == 0 and again["packs_deleted"] == 0
    human = repo.ok("gc").out
    assert human.startswith("freed 0 B")
    repo.fsck_clean()


def test_gc_killed_at_any_step_loses_nothing(template: Repo, tmp_path: Path) -> None:
    size = template.objects_size()
    for step in STEPS:
        repo = copy_of(template, tmp_path, f"killed-{step}")
        r = repo.run("gc", env={KILL_ENV: step})
        assert r.code == -9, f"{step}: {r}"
        fsck_clean(repo.root)  # reads back every reachable object: keep.bin is whole
        # the next gc finishes the work; nothing the kill left behind is kept
        done = repo.json("gc", "--json")
        assert repo.objects_size() < size - len(JUNK) + 64 * KiB, f"{step}: {done}"
        fsck_clean(repo.root)


def test_gc_keeps_a_damaged_pack_and_says_so(template: Repo, tmp_path: Path) -> None:
    repo = copy_of(template, tmp_path, "damaged")
    (name, data), *_ = sorted(packs(repo).items(), key=lambda kv: -len(kv[1]))
    path = repo.root / ".dvfs" / "objects" / name
    spoiled = bytearray(data)
    at = spoiled.find(KEEP[1000:1032])  # keep.bin is stored raw (random data)
    assert at > 0
    spoiled[at] ^= 0xFF
    path.write_bytes(bytes(spoiled))

    r = repo.run("gc")
    assert r.code == 1, str(r)
    assert f"problem: pack {name} holds a damaged object and was kept" in r.out
    assert path.read_bytes() == bytes(spoiled), "a damaged pack was changed"
    fsck = run(repo.root, "fsck", "--json").json()
    assert len(fsck["problems"]) == 1 and "corrupt; used by v1:keep.bin" in fsck["problems"][0]


def test_gc_waits_for_the_lock_and_for_a_pipeline_run(template: Repo, tmp_path: Path) -> None:
    repo = copy_of(template, tmp_path, "busy")
    before = packs(repo)
    with repository_lock(repo.root / ".dvfs" / "lock"):
        line = assert_error(repo.run("gc", env={"DVFS_LOCK_TIMEOUT": "0.2"}), "lock")
    assert "another dvfs command" in line
    with pinned(repo.root / ".dvfs", writing=True):
        assert_error(repo.run("gc"), "is storing objects in this repository")
    assert packs(repo) == before
    repo.ok("gc")  # the pin went with its holder
    fsck_clean(repo.root)


def test_gc_keeps_what_a_running_process_pinned(template: Repo, tmp_path: Path) -> None:
    repo = copy_of(template, tmp_path, "pinned")
    data = os.urandom(400 * KiB)
    repo.ok("checkout", "-b", "side")
    repo.write("side.bin", data)
    repo.ok("add", "side.bin")
    side = bytes.fromhex(repo.commit("side"))
    repo.ok("checkout", "main")
    repo.ok("branch", "-D", "side")
    with pinned(repo.root / ".dvfs", [side]):
        repo.ok("gc")
        assert repo.cat(f"{side.hex()}:side.bin") == data
    size = repo.objects_size()
    repo.ok("gc")
    assert repo.objects_size() <= size - len(data)
    fsck_clean(repo.root)


def test_gc_keeps_what_a_merge_in_progress_merges(template: Repo, tmp_path: Path) -> None:
    """The branch merged may be deleted before the merge is committed: its version is
    still what ``restore --theirs`` takes and what the merge records as a parent."""
    repo = copy_of(template, tmp_path, "merging")
    theirs = os.urandom(200 * KiB)
    repo.write("c.bin", b"base")
    add_in_process(repo, "c.bin")
    commit_in_process(repo, "base")
    repo.ok("checkout", "-b", "side")
    repo.write("c.bin", theirs)
    repo.ok("add", "c.bin")
    repo.commit("theirs")
    repo.ok("checkout", "main")
    repo.write("c.bin", b"ours")
    repo.ok("add", "c.bin")
    repo.commit("ours")
    assert repo.run("merge", "side").code == 1  # a conflict at c.bin
    repo.ok("branch", "-D", "side")
    repo.ok("gc")
    repo.ok("restore", "--theirs", "c.bin")
    assert repo.read("c.bin") == theirs
    repo.commit("merged")
    assert repo.cat("HEAD^2:c.bin") == theirs
    fsck_clean(repo.root)


def test_a_reader_finds_objects_moved_by_gc(template: Repo, tmp_path: Path) -> None:
    """A process reading without the lock (a mount, ``cat``) keeps reading through a gc."""
    repo = copy_of(template, tmp_path, "reader")
    reader = Repository(repo.root)
    hist = reader.history
    (entry,) = [
        e for p, e in hist.walk(hist.version(hist.head_id() or b"").tree) if p == b"keep.bin"
    ]
    # (random bytes: usually one chunk, now and then cut in two past the minimum size)
    assert b"".join(reader.store.get(c.oid) for c in entry.chunks) == KEEP  # packs known,
    reader.store._fds.close()  # not held open
    moved = repo.json("gc", "--json")
    assert moved["packs_rewritten"] == 1
    assert b"".join(reader.store.get(c.oid) for c in entry.chunks) == KEEP
    fsck_clean(repo.root)


def test_gc_keeps_what_a_mount_shows_and_a_working_tree_is_based_on(
    template: Repo, tmp_path: Path
) -> None:
    repo = copy_of(template, tmp_path, "mounted")
    shown, based = os.urandom(300 * KiB), os.urandom(300 * KiB)
    for name, data in (("shown", shown), ("based", based)):
        repo.ok("checkout", "-b", name)
        repo.write(f"{name}.bin", data)
        repo.ok("add", f"{name}.bin")
        repo.commit(name)
        repo.ok("checkout", "main")
    based_id = Repository(repo.root).refs.get("refs/heads/based")
    assert based_id is not None
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo.root), mnt / "w", home, "--branch", "based"):
        pass  # leaves .dvfs/worktrees/based, its base the branch's head
    with mounted(str(repo.root), mnt / "r", home, "--branch", "shown", "--read-only"):
        repo.ok("branch", "-D", "shown", "based")
        r = repo.json("gc", "--json")
        assert r["problems"] == []
        assert (mnt / "r" / "shown.bin").read_bytes() == shown  # pinned by the daemon
    assert repo.cat(f"{based_id.hex()}:based.bin") == based  # the working tree's base
    fsck_clean(repo.root)
    gone = repo.json("gc", "--json")  # the daemon is gone: its versions go too
    assert gone["bytes_freed"] >= len(shown)
    assert repo.cat(f"{based_id.hex()}:based.bin") == based
    fsck_clean(repo.root)


def test_fsck_leaves_the_packs_a_pipeline_run_is_writing(template: Repo, tmp_path: Path) -> None:
    repo = copy_of(template, tmp_path, "writing")
    tmp = repo.root / ".dvfs" / "objects" / ".tmp-pack-0123456789abcdef"
    tmp.write_bytes(b"DVP1 being written")
    runs = repo.root / ".tmp-dvfs.runs.0123abcd7"  # and dvfs.runs being rewritten by it
    runs.write_bytes(b"being written")
    with pinned(repo.root / ".dvfs", writing=True):
        assert fsck_clean(repo.root)["temporaries_removed"] == 0
        assert tmp.exists() and runs.exists()
    assert fsck_clean(repo.root)["temporaries_removed"] == 2
    assert not tmp.exists() and not runs.exists()


def test_gc_deletes_nothing_through_a_link_in_the_store(template: Repo, tmp_path: Path) -> None:
    """A ``.dvfs/objects`` that is a link (made by hand, or in a repository unpacked from
    someone else) is refused by gc before it deletes anything, and named by fsck; in
    the store, a ``.tmp-*`` link is removed without following it and a ``.tmp-*``
    folder (dvfs makes none) is left as it is."""
    repo = copy_of(template, tmp_path, "linked")
    objects = repo.root / ".dvfs" / "objects"
    outside = tmp_path / "outside"
    objects.rename(outside)
    objects.symlink_to(outside)
    (outside / ".tmp-notes").write_bytes(b"someone else's")
    (outside / "pack-0123.idx").write_bytes(b"someone else's")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    for args in (("gc",), ("gc", "--dry-run")):
        repo.fail(*args, fragments=(f"{objects} is a symbolic link", "move the folder"))
    r = run(repo.root, "fsck", "--json")
    assert r.code == 1 and any("symbolic link" in p for p in r.json()["problems"]), str(r)
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before

    objects.unlink()
    outside.rename(objects)
    (objects / "pack-0123.idx").unlink()
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "f").write_bytes(b"kept")
    (objects / ".tmp-link").symlink_to(kept)
    (objects / ".tmp-folder").mkdir()
    (objects / ".tmp-folder" / "f").write_bytes(b"kept")
    r = repo.json("gc", "--json")
    assert r["bytes_freed"] >= len(JUNK) and r["temporaries_removed"] == 2, r
    assert not (objects / ".tmp-notes").exists() and not (objects / ".tmp-link").exists()
    assert (kept / "f").read_bytes() == b"kept"
    assert (objects / ".tmp-folder" / "f").read_bytes() == b"kept"
    assert repo.cat("main:keep.bin") == KEEP
    fsck_clean(repo.root)


def test_gc_and_fsck_leave_the_pack_another_command_is_writing(
    template: Repo, tmp_path: Path
) -> None:
    """`dvfs cat` and `diff` store the data they download without the repository lock:
    a gc or fsck meanwhile removed the pack they were writing (a temporary file), and
    they failed on "No such file or directory" when they closed it."""
    repo = copy_of(template, tmp_path, "writing-elsewhere")
    writer = Repository(repo.root)
    data = os.urandom(100 * KiB)
    oid, _ = writer.store.put(ObjKind.CHUNK, data)
    (tmp,) = (repo.root / ".dvfs" / "objects").glob(".tmp-pack-*")
    (repo.root / ".dvfs" / "objects" / ".tmp-pack-0123456789abcdef").write_bytes(b"DVP1")
    assert repo.json("gc", "--json")["temporaries_removed"] == 1  # the one nobody writes
    assert fsck_clean(repo.root)["temporaries_removed"] == 0
    assert tmp.exists()
    writer.store.flush()
    assert writer.store.get(oid) == data
    writer.store.close()
    fsck_clean(repo.root)


def test_gc_keeps_the_newest_of_what_row_diffs_proved(tmp_path: Path) -> None:
    """.dvfs/rowcache grows with every row diff: gc keeps its newest ROW_CACHE_KEEP
    entries, removes a temporary a crash left there, and deletes every whole-file
    copy kept there, the newest too (they hold files' bytes)."""
    root = tmp_path / "r"
    root.mkdir()
    run(root, "init")
    cache = root / ".dvfs" / ROW_CACHE
    cache.mkdir()
    extra = 5
    for i in range(ROW_CACHE_KEEP + extra):
        entry = cache / f"{i:064x}"
        entry.write_bytes(b"dvfs-rows 1 3\n")
        os.utime(entry, ns=(1_700_000_000_000_000_000 + i, 1_700_000_000_000_000_000 + i))
    left = cache / tmp_leaf(b"f" * 64).decode()
    left.write_bytes(b"torn")
    copy = cache / f"{'c' * 64}.copy"
    copy.write_bytes(b"id,x\n1,secret\n")
    run(root, "gc")
    assert not copy.exists()
    kept = sorted(p.name for p in cache.iterdir())
    assert kept == [f"{i:064x}" for i in range(extra, ROW_CACHE_KEEP + extra)]
    fsck_clean(root)


def test_gc_reads_no_working_tree_through_a_link(template: Repo, tmp_path: Path) -> None:
    """gc read ``.dvfs/worktrees/NAME/state`` through a symbolic link there (or through
    ``worktrees`` being one), and stopped on whatever record it found outside; no mount
    uses such a link, so gc skips it, as fsck does."""
    repo = copy_of(template, tmp_path, "linked-trees")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "state").write_bytes(b"\x81\xa4base\xa3bad")  # msgpack {"base": "bad"}
    trees = repo.root / ".dvfs" / "worktrees"
    trees.mkdir(exist_ok=True)
    (trees / "main").symlink_to(outside)
    assert repo.json("gc", "--json")["problems"] == []
    fsck_clean(repo.root)
    (trees / "main").unlink()
    trees.rmdir()
    trees.symlink_to(tmp_path)
    (tmp_path / "main").symlink_to(outside)
    assert repo.json("gc", "--json")["problems"] == []
    assert (outside / "state").read_bytes() == b"\x81\xa4base\xa3bad"
    fsck_clean(repo.root)


def test_fsck_removes_the_temporaries_at_the_top_of_dvfs(template: Repo, tmp_path: Path) -> None:
    """A write of HEAD, the index or the settings killed before its rename leaves a
    ``.tmp-*`` file at the top of .dvfs: fsck left it, though the README says it removes
    them all. It removes the regular files named as dvfs names its temporaries, never a
    link (nor what it points to) or a name of another form."""
    repo = copy_of(template, tmp_path, "top-temporaries")
    dvfs = repo.root / ".dvfs"
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    (dvfs / ".tmp-HEAD.abcdef0112").write_text("ref: refs/heads/main\n")
    (dvfs / ".tmp-index.abcdef013").write_bytes(b"half an index")
    (dvfs / ".tmp-config.abcdef0114").symlink_to(outside)
    (dvfs / ".tmp-notes").write_text("not ours\n")
    assert fsck_clean(repo.root)["temporaries_removed"] == 2
    assert sorted(p.name for p in dvfs.glob(".tmp-*")) == [".tmp-config.abcdef0114", ".tmp-notes"]
    assert outside.read_text() == "precious\n"


def test_gc_merges_the_small_packs_small_commits_leave(tmp_path: Path) -> None:
    """Each commit of a few small files leaves a pack or two, and every command looks in
    each pack's index: 1,500 commits of one small file cost 0.13 s per command in
    opening 3,000 indexes. gc merged none of them (they hold nothing dead). Now
    SMALL_PACKS_MERGE or more small packs are merged, keeping every object; fewer, and
    large packs, stay as they are."""
    repo = init_repo(tmp_path / "r")
    store = repo.root / ".dvfs" / "objects"

    def commits(first: int, last: int) -> None:
        for i in range(first, last):  # a commit of one file: two packs
            repo.write(f"f{i}.txt", f"file {i}")
            repo.ok("add", f"f{i}.txt")
            repo.commit(f"c{i}")

    repo.write("big.bin", os.urandom(2 * MiB))  # a pack over SMALL_PACK: kept as it is
    repo.ok("add", "big.bin")
    repo.commit("big")
    big = [name for name, data in packs(repo).items() if len(data) > SMALL_PACK]
    assert len(big) == 1
    half = SMALL_PACKS_MERGE // 2
    commits(0, half - 1)
    before = set(packs(repo))
    assert len(before) == 1 + 2 * (half - 1) + 1  # (the first commit's records: one more)
    repo.ok("gc")
    assert set(packs(repo)) == before  # too few to merge: nothing moves
    commits(half - 1, half + 1)
    assert len(packs(repo)) == len(before) + 4
    r = repo.json("gc", "--dry-run", "--json")  # (it said no pack would be written)
    assert (r["packs_rewritten"], r["dead_objects"]) == (len(before) + 3, 0)
    assert (r["packs_written"], r["packs_after"]) == (1, 2)
    r = repo.json("gc", "--json")
    assert (r["packs_rewritten"], r["packs_written"], r["packs_after"]) == (len(before) + 3, 1, 2)
    assert set(big) < set(packs(repo))
    assert sorted(p.name for p in store.iterdir() if p.name.endswith(".idx")) == sorted(
        name.removesuffix(".pack") + ".idx" for name in packs(repo)
    )
    assert repo.cat("v1:big.bin") == (repo.root / "big.bin").read_bytes()
    for i in range(half + 1):
        assert repo.cat(f"v{i + 2}:f{i}.txt") == f"file {i}".encode()
    assert repo.json("gc", "--json")["packs_rewritten"] == 0  # merged once, then kept
    repo.fsck_clean()


def test_many_small_commits_merge_their_packs_without_a_gc(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a gc, 1,500 commits of one small file left 3,000 packs, and every
    command opened each one's index (0.13 s). What grows the store now merges the
    small packs once there are AUTO_MERGE_AT (here made 6), keeping every object; not
    while another command holds the lock, nor while a pipeline run stores objects."""
    import vfs

    monkeypatch.setattr(store_limit, "AUTO_MERGE_AT", 6)
    repo = init_repo(tmp_path / "r")
    api = vfs.Repo(repo.root)
    made = 0

    def one_more(commit: bool = False) -> None:  # a small file added (and committed)
        nonlocal made
        repo.write(f"f{made}.txt", f"file {made}")
        api.add([f"f{made}.txt"])
        if commit:
            api.commit(f"c{made}")
        made += 1

    try:
        while len(packs(repo)) < 5:
            one_more(commit=made % 2 == 1)
        assert len(packs(repo)) == 5
        with repository_lock(repo.root / ".dvfs" / "lock"):  # busy: left for later
            assert merge_small_packs(api._repo, 6) == 0
        assert len(packs(repo)) == 5
        one_more()  # the sixth pack: merged
        assert len(packs(repo)) == 1
        with pinned(api._repo.dir, writing=True):  # a pipeline run storing: left
            for _ in range(6):
                one_more()
            assert len(packs(repo)) == 7
        one_more(commit=True)  # merged after the add; the commit's records: one more
        assert len(packs(repo)) == 2
    finally:
        api.close()
    for i in range(made):
        assert repo.cat(f"HEAD:f{i}.txt") == f"file {i}".encode()
    assert repo.cat("v1:f0.txt") == b"file 0"
    repo.fsck_clean()


def test_gc_counts_no_directory_named_like_a_pack(template: Repo, tmp_path: Path) -> None:
    """A directory named ``pack-*.pack`` in ``.dvfs/objects`` was counted as a pack
    ("0 of 3 pack(s)" with two packs) and named as a pack that "was kept": only regular
    files are packs, and it is named once, as what it is."""
    repo = copy_of(template, tmp_path, "r")
    objects = repo.root / ".dvfs" / "objects"
    count = len([p for p in objects.glob("pack-*.pack") if p.is_file()])
    odd = objects / ("pack-" + "2" * 64 + ".pack")
    odd.mkdir()
    (odd / "x").write_bytes(b"kept")
    for args in (("gc", "--dry-run"), ("gc",)):
        r = repo.run(*args)
        assert r.code == 1 and r.out.count(odd.name) == 1, r
        assert f"{odd.name} is not a regular file but a directory" in r.out, r
        assert "move it out" in r.out, r
        assert f"of {count} pack(s)" in r.out, r
    assert (odd / "x").read_bytes() == b"kept"
    shutil.rmtree(odd)
    fsck_clean(repo.root)


def test_gc_keeps_a_branch_whose_file_is_gone_for_fsck_to_write_back(
    template: Repo, tmp_path: Path
) -> None:
    """A branch file deleted by hand (or lost with a disk) is named by fsck, whose
    --repair writes it back as the audit log last recorded it; but gc deleted its
    versions first, and then the branch could never come back."""
    repo = copy_of(template, tmp_path, "lost-branch")
    data = os.urandom(400 * KiB)
    repo.ok("checkout", "-b", "side")
    repo.write("side.bin", data)
    repo.ok("add", "side.bin")
    side = repo.commit("side")
    repo.ok("checkout", "main")
    (repo.root / ".dvfs" / "refs" / "heads" / "side").unlink()
    out = repo.ok("gc").out
    assert "kept what branch side holds: its file is gone" in out
    assert "`dvfs fsck --repair` writes it back" in out
    assert repo.json("gc", "--dry-run", "--json")["missing_refs"] == ["branch side"]
    repo.ok("fsck", "--repair")
    assert repo.cat(f"{side}:side.bin") == data
    assert "side" in repo.ok("branch").out
    repo.ok("branch", "-D", "side")
    size = repo.objects_size()
    assert "kept what" not in repo.ok("gc").out
    assert repo.objects_size() <= size - len(data)
    fsck_clean(repo.root)
