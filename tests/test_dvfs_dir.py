"""A ``.dvfs`` directory that cannot be trusted: a repository unpacked from someone
else's archive, or one whose directories another process swaps for symbolic links
while dvfs works in it. dvfs writes and deletes nothing outside the repository,
whenever the link appears (``tests.support.swap``), and fsck tells the truth about
what it finds.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import msgpack
import pytest

import vfs
from daemon.service import choose_overlay
from tests.support.cli import (
    Repo,
    Result,
    add_in_process,
    assert_error,
    cli_env,
    commit_in_process,
    fsck_clean,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run_python,
)
from tests.support.swap import Swap
from vfs.errors import FormatError, MountError
from vfs.model.codec import ChunkRef
from vfs.model.ids import hash_bytes
from vfs.ops import changed, gc
from vfs.pipeline.cache import RunCache
from vfs.remote import config as remote_config
from vfs.remote.config import read_cached
from vfs.remote.layout import SEGMENT_LIMIT
from vfs.repo.repository import Repository
from vfs.store.pins import live_pins, take
from vfs.tables import checks, source

OUTSIDE = {
    "keep": b"precious",
    "old.copy": b"a copy",  # as the row cache's whole-file copies are named
    "ab/cdef": b"as a record",  # as the records of .dvfs/changes are named
    "ab/.tmp-x.0123456789": b"as a temporary",
    "gone.tmp-999999/f": b"as an experiment's tree",  # (999999: no process)
    "audit.head": b"as the end of a remote's chain",
    "index/" + "0" * 64: b"as a cached index segment",
    "main/upper/f": b"as a mount's working tree",
    "4194999-0123456789abcdef": b"as a pin whose process is gone",
}


def _outside(tmp_path: Path) -> Path:
    """A directory outside the repository, holding files dvfs must leave alone."""
    out = tmp_path / "outside"
    for rel, data in OUTSIDE.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    return out


def _untouched(outside: Path) -> None:
    found = {str(p.relative_to(outside)): p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    assert found == OUTSIDE


_SWAPPED_CLI = """
import sys
from pathlib import Path

import msgpack
import pytest

import vfs.cli
from tests.support.swap import Swap

Swap(pytest.MonkeyPatch(), Path(sys.argv[1]), Path(sys.argv[2]))
sys.argv = ["dvfs", *sys.argv[3:]]
vfs.cli.main()
"""


def swapped_run(repo: Repo, target: Path, outside: Path, *args: str) -> Result:
    """``dvfs ARGS`` in ``repo``, with ``target`` swapped for a link to ``outside``
    right before the command first acts on it (``tests.support.swap``)."""
    tests_root = str(Path(__file__).resolve().parents[1])
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [tests_root, os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-P", "-c", _SWAPPED_CLI, str(target), str(outside), *args],
        cwd=repo.root, env=cli_env(env), capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    return Result(args, proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


@pytest.fixture
def bare(tmp_path: Path) -> Repository:
    root = tmp_path / "r"
    root.mkdir()
    return Repository.init(root)


def test_a_run_cache_swapped_for_a_link_while_written_takes_no_entry(
    bare: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run cache was checked for a link, then written by path: a link swapped in
    between took the entry wherever it pointed."""
    outside = _outside(tmp_path)
    cache = RunCache(bare)
    cache._pending.append((bytes(range(32)), b"an entry"))
    swap = Swap(monkeypatch, bare.dir / "runcache", outside)
    with pytest.raises(FormatError, match="is a symbolic link"):
        cache.flush()
    monkeypatch.undo()
    assert swap.done
    _untouched(outside)
    fsck_clean(bare.root)


def test_a_row_cache_swapped_for_a_link_takes_no_entry_and_loses_nothing(
    bare: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The row cache was checked for a link, then written, trimmed and emptied of its
    copies by path: a link swapped in between took entries and copies there and
    deleted what it pointed to."""
    outside = _outside(tmp_path)
    cache = bare.dir / "rowcache"
    copy = tmp_path / "copy"
    copy.write_bytes(b"a whole file")
    chunks = [ChunkRef(bytes(32), source.COPY_MIN)]
    acts: list[Callable[[], object]] = [
        lambda: checks.write_entry(bare.dir, "e" * 64, b"dvfs-rows 1 3\n"),
        lambda: source.keep_copy(bare.dir, chunks, copy),
        lambda: gc.trim(cache, 0),
        lambda: gc.drop_copies(cache),
    ]
    for act in acts:
        cache.mkdir(exist_ok=True)
        (cache / ("f" * 64)).write_bytes(b"dvfs-rows 1 3\n")
        with monkeypatch.context() as m:
            swap = Swap(m, cache, outside)
            act()
            assert swap.done
        _untouched(outside)
        cache.unlink()
        shutil.rmtree(cache.with_name("rowcache.moved"))
    fsck_clean(bare.root)


def test_pins_swapped_for_a_link_are_neither_taken_nor_cleaned_there(
    bare: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.dvfs/pins`` was checked for a link, then listed, written and cleaned by path:
    a link swapped in between took the pin there and deleted, as stale, any file named
    like a pin where it pointed."""
    outside = _outside(tmp_path)
    pins = bare.dir / "pins"
    acts: list[Callable[[], object]] = [
        lambda: live_pins(bare.dir, clean=True),
        lambda: take(bare.dir, [bytes(32)]),
    ]
    for act in acts:
        pins.mkdir()
        with monkeypatch.context() as m:
            swap = Swap(m, pins, outside)
            with pytest.raises(FormatError, match="is a symbolic link"):
                act()
            assert swap.done
        _untouched(outside)
        pins.unlink()
        os.rename(pins.with_name("pins.moved"), pins)
        assert live_pins(bare.dir, clean=True) == []
        pins.rmdir()
    fsck_clean(bare.root)


def test_entries_of_the_pins_that_are_no_file_neither_stop_gc_nor_are_deleted(
    repo: Repo, tmp_path: Path
) -> None:
    """A directory named like a pin in ``.dvfs/pins`` stopped gc with the bare "Is a
    directory: 123-…", and a symbolic link so named stopped it with "cannot be read
    (Too many levels of symbolic links)": neither can be a pin (only regular files are),
    so both are now passed over and left as they are."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    outside = _outside(tmp_path)
    pins = repo.root / ".dvfs" / "pins"
    pins.mkdir(exist_ok=True)
    (pins / "123-0123456789abcdef").mkdir()
    (pins / "124-0123456789abcdef").symlink_to(outside / "keep")
    repo.ok("gc")
    assert sorted(p.name for p in pins.iterdir()) == [
        "123-0123456789abcdef",
        "124-0123456789abcdef",
    ]
    _untouched(outside)
    repo.fsck_clean()


def test_records_of_changes_swapped_for_a_link_are_neither_kept_nor_pruned_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.dvfs/changes`` (or a shard of it) was checked for a link, then written and
    pruned by path: a link swapped in between took records there, and gc deleted
    files where it pointed."""
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    Repository.init(root)
    api = vfs.Repo(root)
    for n in range(2):
        (root / "d" / "a").write_text(str(n))
        api.add(["d"])
        api.commit(f"v{n + 1}")
    outside = _outside(tmp_path)
    repo = Repository(root)
    head = repo.history.resolve("HEAD")
    top = repo.dir / "changes"
    assert changed.changed_paths(repo.history, head) == frozenset({b"d/a"})
    assert top.is_dir()  # (the record is kept: what is written below is made again)
    for target in (top, top / head.hex()[:2]):
        (top / head.hex()[:2] / head.hex()[2:]).unlink(missing_ok=True)  # (worked out again)
        with monkeypatch.context() as m:
            swap = Swap(m, target, outside)
            assert changed._changed_paths(Repository(root).history, head) == frozenset({b"d/a"})
            assert swap.done
        _untouched(outside)
        target.unlink()
        target.with_name(target.name + ".moved").rename(target)
    for target in (top, top / head.hex()[:2]):
        with monkeypatch.context() as m:
            swap = Swap(m, target, outside)
            changed.prune(repo.dir, set())
            assert swap.done
        _untouched(outside)
        target.unlink()
        target.with_name(target.name + ".moved").rename(target)
    fsck_clean(root)


def test_records_of_changes_planted_behind_a_link_are_not_believed(tmp_path: Path) -> None:
    """``.dvfs/changes`` a symbolic link (a repository from someone else's archive):
    the records where it pointed were read and believed, so a planted record made
    ``changed`` (and what relies on it) name paths a version never touched."""
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    Repository.init(root)
    api = vfs.Repo(root)
    for n in range(2):
        (root / "d" / "a").write_text(str(n))
        api.add(["d"])
        api.commit(f"v{n + 1}")
    repo = Repository(root)
    head = repo.history.resolve("HEAD")
    parent = repo.history.version(head).parents[0]
    top = repo.dir / "changes"
    assert changed.changed_paths(repo.history, head) == frozenset({b"d/a"})
    planted = tmp_path / "planted"
    top.rename(planted)
    lie = {"v": changed.RECORD_FORMAT, "parent": parent, "paths": [b"d/lie"]}
    record = changed.record_path(planted, head)
    record.write_bytes(msgpack.packb(lie, use_bin_type=True))
    top.symlink_to(planted)
    assert changed._changed_paths(Repository(root).history, head) == frozenset({b"d/a"})
    top.unlink()
    fsck_clean(root)


def test_an_experiment_area_swapped_for_a_link_loses_nothing_it_points_to(
    repo: Repo, tmp_path: Path
) -> None:
    """``.dvfs/exp`` was checked for a link, then made, cleared of stale trees and
    finally of the experiment's own tree by path: a link swapped in between had
    ``exp run`` delete the trees where it pointed."""
    outside = _outside(tmp_path)
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-o", "o", "--", "echo x > o")
    repo.ok("add", "params.yaml")
    repo.commit("one")
    target = repo.root / ".dvfs" / "exp"
    r = swapped_run(repo, target, outside, "exp", "run", "-S", "lr=2", "-n", "e1")
    assert_error(r, "is a symbolic link", "remove it")
    _untouched(outside)
    target.unlink()
    repo.ok("exp", "run", "-S", "lr=2", "-n", "e1")
    assert "exp/e1" in repo.ok("branch").out
    repo.fsck_clean()


@pytest.fixture
def pushed(repo: Repo, tmp_path: Path) -> Repo:
    """``repo`` with one version pushed to remote ``origin`` (a directory): what it
    keeps of the remote (cached index segments, the chain's end) is in
    ``.dvfs/remotes/origin``."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    repo.ok("fetch")
    kept = repo.root / ".dvfs" / "remotes" / "origin"
    assert (kept / "index").is_dir() and (kept / "audit.head").is_file()
    return repo


def test_what_is_kept_of_a_remote_is_not_deleted_nor_moved_through_a_swapped_link(
    pushed: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.dvfs/remotes/NAME`` was checked for a link, then emptied (remote remove,
    remote rename) by path: a link swapped in between had dvfs delete or move the
    files where it pointed."""
    outside = _outside(tmp_path)
    repo = Repository(pushed.root)
    target = repo.dir / "remotes" / "origin"
    for act in (
        lambda: remote_config.rename_remote(repo, "origin", "upstream"),
        lambda: remote_config.remove_remote(repo, "origin"),
    ):
        with monkeypatch.context() as m:
            swap = Swap(m, target, outside)
            act()
            assert swap.done
        _untouched(outside)
        target.unlink()
        target.with_name("origin.moved").rename(target)
        shutil.rmtree(repo.dir / "remotes" / "upstream", ignore_errors=True)
    pushed.fsck_clean()


def test_a_cached_segment_is_read_in_what_it_holds(bare: Repository) -> None:
    """A cached index segment was read with one ``os.read`` of the segment bound and a
    byte more: 256 MiB allocated for each read of a segment of a few bytes. It is read
    by its size now; one past the bound is still refused, and a FIFO is not waited on."""
    data = b"an index segment"
    kept = bare.dir / "remotes" / "origin" / "index"
    kept.mkdir(parents=True)
    (kept / "small").write_bytes(data)
    tracemalloc.start()
    try:
        assert read_cached(kept / "small") == data
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak
    with open(kept / "sparse", "wb") as f:
        f.truncate(SEGMENT_LIMIT + 1)
    assert read_cached(kept / "sparse") is None
    os.mkfifo(kept / "fifo")
    assert read_cached(kept / "fifo") is None


def test_a_remote_cache_that_is_a_link_is_not_read(bare: Repository, tmp_path: Path) -> None:
    """Cached index segments were written through a descriptor but read by path: with
    ``.dvfs/remotes/NAME`` a symbolic link, what it pointed to was read. Now a segment
    behind a link is a miss (fetched again from the remote)."""
    data = b"an index segment"
    seg = hash_bytes(data).hex()
    kept = bare.dir / "remotes" / "origin" / "index"
    kept.mkdir(parents=True)
    (kept / seg).write_bytes(data)
    assert read_cached(kept / seg) == data
    (bare.dir / "remotes" / "origin").rename(tmp_path / "elsewhere")
    (bare.dir / "remotes" / "origin").symlink_to(tmp_path / "elsewhere")
    assert read_cached(kept / seg) is None
    (bare.dir / "remotes" / "origin").unlink()
    fsck_clean(bare.root)


def test_a_remote_cache_swapped_for_a_link_while_fetching_takes_nothing(
    pushed: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The index segments a fetch caches, and the end of the remote's chain a push
    records, were written by path after a check: a link swapped in between had them
    written (replacing what was there) where it pointed."""
    outside = _outside(tmp_path)
    kept = pushed.root / ".dvfs" / "remotes" / "origin"
    api = vfs.Repo(pushed.root)
    for target in (kept / "index", kept):
        shutil.rmtree(kept / "index", ignore_errors=True)
        with monkeypatch.context() as m:
            swap = Swap(m, target, outside)
            api.fetch()
            assert swap.done
        _untouched(outside)
        target.unlink()
        if target.with_name(target.name + ".moved").exists():
            target.with_name(target.name + ".moved").rename(target)
    pushed.write("d/a", "2")
    pushed.ok("add", "d")
    pushed.commit("two")
    with monkeypatch.context() as m:
        swap = Swap(m, kept, outside)
        api.push()
        assert swap.done
    _untouched(outside)
    kept.unlink()
    kept.with_name("origin.moved").rename(kept)
    pushed.fsck_clean()


def test_a_mounts_working_tree_is_not_cleared_through_a_swapped_link(
    bare: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.dvfs/worktrees`` was checked for a link when the mount started, then the
    other overlay's files were cleared from the working tree by path: a link swapped
    in between had the mount delete them where it pointed."""
    outside = _outside(tmp_path)
    work = bare.dir / "worktrees" / "main"
    (work / "upper").mkdir(parents=True)
    (work / "upper" / "f").write_text("the kernel overlay's, clean")
    with monkeypatch.context() as m:
        swap = Swap(m, bare.dir / "worktrees", outside)
        with pytest.raises(MountError, match="remove the link, then mount again"):
            choose_overlay("daemon", work)
        assert swap.done
    _untouched(outside)


def test_a_remote_named_out_of_the_repository_in_config_is_refused(
    repo: Repo, tmp_path: Path
) -> None:
    """``.dvfs/config`` came from someone else naming a remote ``../../../outside``:
    its name was never checked (dvfs.toml's are), and push wrote the remote's cached
    index and audit.head in ``outside``, next to the repository, before failing on
    the ref name. A remote without a text url was left out silently: ``remote list``
    showed none and push said no remote was configured."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    (tmp_path / "remote").mkdir()
    outside = tmp_path / "outside"
    config = repo.root / ".dvfs" / "config"
    url = str(tmp_path / "remote")
    config.write_text(json.dumps({"remotes": {"../../../outside": {"url": url}}}))
    for args in (("push",), ("fetch",), ("remote", "list")):
        assert_error(repo.run(*args), "../../../outside is not a valid remote name", "fix the file")
    assert not outside.exists()
    config.write_text(json.dumps({"remotes": {"origin": {"url": 7}}}))
    for args in (("push",), ("remote", "list")):
        assert_error(repo.run(*args), "remote origin has no url", "fix it")
    repo.ok("remote", "remove", "origin")
    repo.ok("remote", "add", "origin", url)
    repo.ok("push")
    repo.fsck_clean()


def test_fsck_names_a_ref_whose_name_no_ref_can_have(repo: Repo) -> None:
    """A ref file named with a control character (from an archive, or made by hand)
    was listed as a branch that no command could name (``branch -d`` refused the
    name), and fsck found the repository clean."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    heads = repo.root / ".dvfs" / "refs" / "heads"
    odd = "ev\x1b[31mil"
    shutil.copy(heads / "main", heads / odd)
    r = repo.run("fsck")
    assert r.code == 1
    assert 'problem: branch "ev\\033[31mil" has a name no branch can have' in r.out
    assert 'rename or delete ".dvfs/refs/heads/ev\\033[31mil"' in r.out
    assert "\x1b" not in r.out
    (heads / odd).rename(heads / "evil")
    repo.ok("branch", "-d", "evil")
    repo.fsck_clean()


_PEAK_OF = """
import resource, subprocess, sys
argv = [sys.executable, "-P", "-m", "vfs.cli", *sys.argv[1:]]
r = subprocess.run(argv, capture_output=True, timeout=100)  # (killed, if it waits forever)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(r.returncode, peak, (r.stdout + r.stderr).decode().strip())
"""  # dvfs ARGS: its exit code, its peak memory in MiB, what it printed


def test_an_index_of_absurd_size_is_refused_without_being_read_into_memory(repo: Repo) -> None:
    """A staging index grown to gigabytes (a sparse file, damage) was mapped with every
    page populated before its header was looked at: status took its whole size in
    memory (and minutes) before saying it was damaged."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    index = repo.root / ".dvfs" / "index"
    os.truncate(index, 2 << 30)  # (sparse: no room taken on disk)
    code, peak, line = run_python(_PEAK_OF, "status", cwd=repo.root).split(" ", 2)
    assert code == "1" and "the staging index" in line and "is damaged" in line, line
    assert int(peak) < 512, f"{peak} MiB in memory"  # (it was 2 GiB and more)
    repo.ok("restore", "--staged", ".")
    repo.fsck_clean()


def test_fsck_repair_says_it_mended_a_pack_it_rewrote_under_its_own_name(repo: Repo) -> None:
    """A pack with bytes appended (a copy that went on, an archive padded) reads no
    longer as a whole pack. ``fsck --repair`` rewrote it with the objects that verify,
    which gives the pack its own name again, and then reported it still damaged
    ("1 problem", exit 1); the next fsck found nothing. The message also named the
    pack twice."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    objects = repo.root / ".dvfs" / "objects"
    for pack in sorted(objects.glob("pack-*.pack")):
        with pack.open("ab") as f:
            f.write(b"\0" * 4096)
    r = repo.run("fsck")
    assert r.code == 1 and r.out.count(": not a complete dvfs pack") == 2
    assert all(line.count(".pack") == 1 for line in r.out.splitlines() if "pack-" in line)
    r = repo.run("fsck", "--repair")
    assert r.code == 0, r
    assert r.out.count("rewritten with the objects that verify") == 2
    assert "problem" not in r.out.replace("no problems", "")
    repo.fsck_clean()


def test_an_audit_log_no_ref_change_can_append_to_is_named_by_fsck_and_verify(
    repo: Repo,
) -> None:
    """The audit log (or its head) a FIFO or a link, or ending in more junk than any
    entry (an archive padded, a disk error), stops every change of a ref: tag and
    commit refused, the latter saying to run ``audit verify``. But fsck found no
    problem, ``audit verify`` called the chain intact (the junk "a crash while the
    last line was written"), and both read the whole file into memory first."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    log = repo.root / ".dvfs" / "audit.log"
    whole = log.read_bytes()
    log.unlink()
    os.mkfifo(log)
    assert_error(repo.run("tag", "t1"), "audit.log is not a regular file")
    r = repo.run("fsck")
    assert r.code == 1 and "problem: audit log: " in r.out and "is not a regular file" in r.out
    log.unlink()
    log.write_bytes(whole)
    os.truncate(log, len(whole) + (1 << 30))  # (sparse: no room taken on disk)
    hint = f"`truncate -s {len(whole)} .dvfs/audit.log`"
    assert_error(repo.run("tag", "t1"), "bytes that are no entry", hint)
    for args in (("fsck",), ("audit", "verify")):
        code, peak, out = run_python(_PEAK_OF, *args, cwd=repo.root).split(" ", 2)
        assert code == "1" and "bytes that are no entry" in out and hint in out, out
        assert "intact" not in out.replace("NOT intact", "")
        assert int(peak) < 512, f"{args}: {peak} MiB in memory"  # (it was 2 GiB and more)
    os.truncate(log, len(whole))
    repo.ok("tag", "t1")
    assert repo.ok("audit", "verify").out.endswith("intact\n")
    repo.fsck_clean()


def test_a_lock_file_or_the_pins_of_the_wrong_kind_is_named_with_what_to_do(
    repo: Repo,
) -> None:
    """``.dvfs/lock`` or ``.dvfs/refs.lock`` a directory, or ``.dvfs/pins`` a file
    (an archive made oddly, a hand's mistake), stopped every command with the bare
    system error ("Is a directory: /…/.dvfs/lock"), fsck included."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    dvfs = repo.root / ".dvfs"
    for name, make in (("lock", Path.mkdir), ("refs.lock", Path.mkdir), ("pins", Path.touch)):
        (dvfs / name).unlink(missing_ok=True)
        shutil.rmtree(dvfs / name, ignore_errors=True)
        make(dvfs / name)
        for args in (("gc",), ("fsck",)):
            assert_error(repo.run(*args), f".dvfs/{name} is ", "move it away")
        os.rename(dvfs / name, repo.root / f"{name}.moved")
        repo.ok("tag", "t1")
        repo.ok("tag", "-d", "t1")
    repo.fsck_clean()


def test_a_merge_record_that_cannot_be_read_is_named_by_fsck_with_what_to_do(
    repo: Repo,
) -> None:
    """``.dvfs/MERGE`` a FIFO (or too large) stopped status and commit with ".dvfs/MERGE
    is not a merge record dvfs wrote", saying nothing of what to do, and fsck found no
    problem."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    record = repo.root / ".dvfs" / "MERGE"
    os.mkfifo(record)
    assert_error(repo.run("status"), ".dvfs/MERGE is not a merge record", "dvfs merge --abort")
    r = repo.run("fsck")
    assert r.code == 1 and "problem: .dvfs/MERGE is not a merge record" in r.out, r
    repo.ok("merge", "--abort")
    assert not record.exists()
    repo.fsck_clean()


def test_merge_abort_with_a_damaged_record_keeps_edits_it_cannot_tell_apart(
    repo: Repo,
) -> None:
    """With ``.dvfs/MERGE`` damaged (what status tells to run ``merge --abort`` for),
    the abort went back to the branch's version with no look at the working tree:
    an edit not staged was overwritten without a word, though a whole record's abort
    refuses to. It is refused now, naming the file, unless --force."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    (repo.root / ".dvfs" / "MERGE").write_bytes(b"junk")
    repo.write("d/a", "my edit")
    assert_error(repo.run("merge", "--abort"), "would overwrite uncommitted changes in d/a",
                 "copy them elsewhere first", "--force")  # fmt: skip
    assert repo.read("d/a") == b"my edit"
    repo.ok("merge", "--abort", "--force")
    assert repo.read("d/a") == b"1"
    repo.fsck_clean()


def test_fsck_repair_writes_back_branches_whose_folder_is_gone(repo: Repo) -> None:
    """``.dvfs/refs/heads`` deleted whole: fsck named the branch missing and said
    ``--repair`` writes it back, and the repair failed with "No such file or
    directory: …/refs/heads/.tmp-main…"."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    repo.write("d/a", "2")
    repo.ok("add", "d")
    head = repo.commit("two")
    shutil.rmtree(repo.root / ".dvfs" / "refs" / "heads")
    r = repo.run("fsck")
    assert r.code == 1 and "branch main is missing" in r.out
    r = repo.run("fsck", "--repair")
    assert r.code == 0 and "repaired: branch main was missing" in r.out, r
    assert repo.head_id() == head
    repo.fsck_clean()


def test_fsck_names_and_repairs_a_folder_of_refs_that_is_a_file(repo: Repo) -> None:
    """``.dvfs/refs`` (or ``refs/tags``) a file: status said "No versions yet" and fsck
    named the branch missing, but ``--repair`` failed with "Not a directory: …"."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    repo.ok("tag", "t1")
    head = repo.head_id()
    dvfs = repo.root / ".dvfs"
    for rel in ("refs/tags", "refs"):
        shutil.rmtree(dvfs / rel)
        (dvfs / rel).write_text("not a folder")
        r = repo.run("fsck")
        assert r.code == 1 and f"problem: .dvfs/{rel} is not a directory" in r.out, r
        r = repo.run("fsck", "--repair")
        assert r.code == 0 and f"repaired: {rel} was not a directory" in r.out, r
        assert "repaired: tag t1 was missing" in r.out
        assert (dvfs / f"{rel}.not-a-folder").read_text() == "not a folder"
        assert repo.head_id() == head
        assert "t1" in repo.ok("tag").out
    repo.fsck_clean()


def test_a_directory_where_checkout_marks_its_writes_is_named_with_what_to_do(
    repo: Repo,
) -> None:
    """``.dvfs/restoring`` a directory stopped checkout, restore and fsck with the bare
    "Is a directory: …/.dvfs/restoring"."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    marker = repo.root / ".dvfs" / "restoring"
    marker.mkdir()
    repo.write("d/a", "2")
    assert_error(repo.run("restore", "d/a"), ".dvfs/restoring is a directory", "move it away")
    assert repo.read("d/a") == b"2"
    r = repo.run("fsck")
    assert r.code == 1 and ".dvfs/restoring is a directory" in r.out, r
    marker.rmdir()
    repo.ok("restore", "d/a")
    assert repo.read("d/a") == b"1"
    repo.fsck_clean()


def test_a_pack_that_is_a_link_is_named_as_one_by_fsck_and_gc(repo: Repo, tmp_path: Path) -> None:
    """A pack in ``.dvfs/objects`` that is a symbolic link to a file elsewhere: fsck
    read it through the link and called it a "truncated pack"; --repair and gc named
    it twice, once with the bare "[Errno 40] Too many levels of symbolic links"."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    outside = _outside(tmp_path)
    link = repo.root / ".dvfs" / "objects" / ("pack-" + "1" * 64 + ".pack")
    link.symlink_to(outside / "keep")
    r = repo.run("fsck")
    assert r.code == 1 and "is a symbolic link" in r.out and "truncated" not in r.out, r
    for args in (("fsck", "--repair"), ("gc",)):
        r = repo.run(*args)
        assert r.code == 1 and r.out.count(link.name) == 1, r
        assert "is a symbolic link" in r.out and "Errno" not in r.out, r
    _untouched(outside)
    link.unlink()
    repo.fsck_clean()


def test_a_pack_that_is_a_fifo_is_named_once_by_fsck_repair_and_gc(repo: Repo) -> None:
    """A FIFO in a pack's place: fsck --repair and gc said "pack X is damaged and was
    kept: X is not a regular file", naming it twice in one line."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    fifo = repo.root / ".dvfs" / "objects" / ("pack-" + "1" * 64 + ".pack")
    os.mkfifo(fifo)
    for args in (("fsck",), ("fsck", "--repair"), ("gc",)):
        r = repo.run(*args)
        assert r.code == 1 and r.out.count(fifo.name) == 1, r
        assert "is not a regular file" in r.out and "move it out" in r.out, r
    fifo.unlink()
    repo.fsck_clean()


def test_fsck_names_an_object_store_that_is_gone(repo: Repo, tmp_path: Path) -> None:
    """``.dvfs/objects`` deleted (or a file in its place): every version lost, and fsck
    stopped with the bare "No such file or directory: …/.dvfs/objects" (or "Not a
    directory") instead of saying what is lost and what to do."""
    repo.write("d/a", "1")
    repo.ok("add", "d")
    repo.commit("one")
    objects = repo.root / ".dvfs" / "objects"
    objects.rename(tmp_path / "objects")
    r = repo.run("fsck")
    assert r.code == 1 and "problem: " in r.out and r.err == "", r
    assert ".dvfs/objects is missing" in r.out and "put it back from a backup" in r.out
    assert "version" in r.out  # (and what it held is named: the versions, the chunks)
    objects.write_text("")
    r = repo.run("fsck")
    assert r.code == 1 and ".dvfs/objects is a symbolic link or not a folder" in r.out, r
    objects.unlink()
    (tmp_path / "objects").rename(objects)
    repo.fsck_clean()


def test_fsck_names_a_working_tree_whose_base_gc_cannot_tell(repo: Repo, tmp_path: Path) -> None:
    """A mount's working tree whose ``state`` is damaged stops gc ("cannot tell which
    version the working tree … is based on"), but fsck said there was no problem."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    work = repo.root / ".dvfs" / "worktrees" / "main"
    work.mkdir(parents=True)
    (work / "state").write_bytes(b"\x81\xa4base\xa3bad")  # msgpack {"base": "bad"}
    said = assert_error(repo.run("gc"), "cannot tell which version the working tree")
    r = repo.run("fsck")
    assert r.code == 1 and f"problem: {said.removeprefix('dvfs: error: ')}" in r.out, r
    work.rename(tmp_path / "main")
    repo.ok("gc")
    repo.fsck_clean()


def test_gc_neither_waits_on_nor_reads_whole_a_run_cache_entry_of_the_wrong_kind(
    repo: Repo,
) -> None:
    """A run cache entry that is a FIFO made gc (and repro's lookup) wait forever on
    its open; one grown to gigabytes was read whole into memory."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    shard = repo.root / ".dvfs" / "runcache" / "ab"
    shard.mkdir(parents=True)
    os.mkfifo(shard / ("0" * 62))
    big = shard / ("1" * 62)
    big.write_bytes(b"")
    os.truncate(big, 1 << 30)  # (sparse)
    code, peak, out = run_python(_PEAK_OF, "gc", cwd=repo.root).split(" ", 2)
    assert code == "0" and out.startswith("freed"), out
    assert int(peak) < 512, f"{peak} MiB in memory"
    repo.fsck_clean()


def test_a_change_record_that_is_a_fifo_is_worked_out_again_not_waited_on(repo: Repo) -> None:
    """A record of ``.dvfs/changes`` that is a FIFO made ``show --files`` (and the
    dashboard's "added in") wait forever on its open."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    repo.write("d/b", "2")
    add_in_process(repo, "d")
    head = commit_in_process(repo, "two")
    shard = repo.root / ".dvfs" / "changes" / head[:2]
    shutil.rmtree(repo.root / ".dvfs" / "changes", ignore_errors=True)
    shard.mkdir(parents=True)
    os.mkfifo(shard / head[2:])
    out = repo.ok("show", "--files").out
    assert "v1" in out and "d/a" in out and "v2" in out and "d/b" in out
    repo.fsck_clean()


def test_fsck_names_a_working_tree_record_that_is_a_fifo_without_waiting(
    repo: Repo, tmp_path: Path
) -> None:
    """A mount's working tree whose ``state`` or journal is a FIFO (an archive from
    someone else) made fsck wait forever on its open."""
    repo.write("d/a", "1")
    add_in_process(repo, "d")
    commit_in_process(repo, "one")
    work = repo.root / ".dvfs" / "worktrees" / "main"
    work.mkdir(parents=True)
    os.mkfifo(work / "state")
    r = repo.run("fsck")
    assert r.code == 1 and "(its state is damaged)" in r.out, r
    (work / "state").unlink()
    base = bytes.fromhex(repo.head_id())
    (work / "state").write_bytes(msgpack.packb({"format": 3, "base": base, "gen": 1}))
    os.mkfifo(work / "journal.1")
    r = repo.run("fsck")
    assert r.code == 1 and "journal.1 is damaged (it is not a regular file)" in r.out, r
    work.rename(tmp_path / "main")
    repo.fsck_clean()
