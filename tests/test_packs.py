"""Pack names (repository format 2): a pack is named by the BLAKE3 of its header.

The golden vector pins the id of a fixed header, so a change of the record layout or
of the naming rule fails here. The other tests drive the real command line: the packs
``dvfs add`` writes are named by their header, ``dvfs fsck`` checks every pack's name
and index file, and a repository of format 1 (packs named by the BLAKE3 of the whole
file) is read and written as it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.support.cli import Repo, assert_error, assert_ok, run
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture
from vfs.model.ids import hash_bytes
from vfs.store import objects
from vfs.store import pack_files as pack_io
from vfs.store.objects import ObjectStore, ObjKind
from vfs.store.packs import (
    PACK_MAGIC,
    PackedObject,
    decode_index,
    encode_index,
    pack_id,
    pack_trailer,
    trailer_id,
)

KiB = 1024
# Three objects of 1, 2 and 3 bytes of value 7, back to back after the magic.
GOLDEN_OBJECTS = [
    PackedObject(hash_bytes(bytes([7]) * n), 0, 0, 4 + sum(range(1, n)), n, n) for n in (1, 2, 3)
]
GOLDEN_PACK_ID = "222bd5cbbfce833aa7c98b994cee6460d1e003dd9c625bafe43108b642ae7a59"


def objects_dir(repo: Repo) -> Path:
    return repo.root / ".dvfs" / "objects"


def pack_files(repo: Repo) -> list[Path]:
    return sorted(objects_dir(repo).glob("pack-*.pack"))


def fsck_problems(repo: Repo) -> list[str]:
    r = run(repo.root, "fsck", "--json")
    assert "Traceback" not in r.err, str(r)
    problems: list[str] = r.json()["problems"]
    assert (r.code != 0) == bool(problems), str(r)
    return problems


def test_golden_pack_id() -> None:
    """The id is the BLAKE3 of the header records, which the footer also carries."""
    trailer = pack_trailer(GOLDEN_OBJECTS)
    assert pack_id(GOLDEN_OBJECTS).hex() == GOLDEN_PACK_ID
    assert trailer_id(trailer).hex() == GOLDEN_PACK_ID
    pack = PACK_MAGIC + b"\x07" * 6 + trailer
    assert hash_bytes(pack).hex() != GOLDEN_PACK_ID  # not the whole file's hash


def test_added_packs_are_named_by_their_header(repo: Repo) -> None:
    repo.write("a.bin", os.urandom(600 * KiB))
    repo.write("b.txt", "some text\n" * 1000)
    repo.ok("add", "a.bin", "b.txt")
    repo.commit("two files")
    packs = pack_files(repo)
    assert packs
    for pack in packs:
        objs = decode_index(pack.with_suffix(".idx").read_bytes(), "idx")
        in_file_order = sorted(objs, key=lambda o: o.offset)
        assert pack.name == f"pack-{pack_id(in_file_order).hex()}.pack"
        assert pack.name != f"pack-{hash_bytes(pack.read_bytes()).hex()}.pack"
    report = repo.fsck_clean()
    assert report["packs"] == len(packs)


def test_fsck_reports_a_pack_under_a_wrong_name(repo: Repo) -> None:
    repo.write("a.bin", os.urandom(300 * KiB))
    repo.ok("add", "a.bin")
    (pack,) = pack_files(repo)  # the chunk's
    repo.commit("one")
    wrong = pack.with_name(f"pack-{'0' * 64}.pack")
    pack.rename(wrong)
    pack.with_suffix(".idx").rename(wrong.with_suffix(".idx"))
    problems = fsck_problems(repo)
    assert len(problems) == 1
    assert wrong.name in problems[0] and "name" in problems[0]
    assert repo.cat("HEAD:a.bin")  # the objects themselves still read and verify
    r = run(repo.root, "fsck")
    assert r.code != 0 and "Traceback" not in r.err


@pytest.mark.parametrize("left", [b"", PACK_MAGIC + bytes(200)], ids=["empty", "cut"])
def test_a_pack_cut_short_stops_nothing_and_repair_puts_it_aside(repo: Repo, left: bytes) -> None:
    """A pack renamed into place but not written back before a power cut (§11): with
    no index file beside it nothing in it can be found, and no ref names what it
    held. Commands carry on without it, fsck names it, --repair puts it aside."""
    repo.write("a.bin", os.urandom(300 * KiB))
    repo.ok("add", "a.bin")
    repo.commit("one")
    cut = objects_dir(repo) / f"pack-{'ab' * 32}.pack"
    cut.write_bytes(left)
    assert repo.cat("HEAD:a.bin") == (repo.root / "a.bin").read_bytes()
    repo.write("b.bin", os.urandom(10 * KiB))
    repo.ok("add", "b.bin")
    repo.commit("two")
    problems = fsck_problems(repo)
    assert len(problems) == 1 and cut.name in problems[0], problems
    r = assert_ok(run(repo.root, "fsck", "--repair"))
    aside = cut.with_name(f"damaged-{cut.name}")
    assert not cut.exists() and aside.read_bytes() == left
    assert aside.name in r.out
    assert fsck_problems(repo) == []
    repo.ok("gc")
    assert repo.cat("HEAD:b.bin") == (repo.root / "b.bin").read_bytes()


def test_a_pack_that_is_a_link_is_read_through_by_no_command(repo: Repo, tmp_path: Path) -> None:
    """A pack (with its index file) replaced by a symbolic link to a copy elsewhere:
    fsck named the link, but restore, cat and every other read went through it. Now
    a link is a damaged pack: its objects are not in the store, and fsck says why."""
    repo.write("a.bin", os.urandom(10 * KiB))
    repo.ok("add", "a.bin")
    repo.commit("one")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for pack in pack_files(repo):
        pack.rename(elsewhere / pack.name)
        pack.symlink_to(elsewhere / pack.name)
    (repo.root / "a.bin").unlink()
    assert_error(run(repo.root, "restore", "a.bin"), "not in the local store")
    assert not (repo.root / "a.bin").exists()
    problems = fsck_problems(repo)
    assert any("is a symbolic link" in p for p in problems), problems
    for pack in pack_files(repo):
        pack.unlink()
        (elsewhere / pack.name).rename(pack)
    repo.ok("restore", "a.bin")
    repo.fsck_clean()


@pytest.mark.parametrize("put", ["link", "fifo"])
def test_a_pack_swapped_after_it_was_listed_is_named_in_one_line(tmp_path: Path, put: str) -> None:
    """A pack swapped for a symbolic link (or a FIFO) once the store had listed the
    packs was opened through the link (read: "Illegal seek"); now the read fails with
    one line saying what is wrong."""
    from vfs.errors import FormatError

    root = tmp_path / "objects"
    store = ObjectStore.create(root)
    oid = store.put(ObjKind.CHUNK, os.urandom(5 * KiB))[0]
    store.close()
    fresh = ObjectStore(root)
    assert fresh.has(oid)
    (pack,) = root.glob("pack-*.pack")
    pack.rename(tmp_path / pack.name)
    if put == "link":
        pack.symlink_to(tmp_path / pack.name)
    else:
        os.mkfifo(pack)
    said = "is a symbolic link" if put == "link" else "is not a regular file"
    with pytest.raises(FormatError, match=rf"{said}.*run `dvfs fsck`") as err:
        fresh.get(oid)
    assert "\n" not in str(err.value)
    fresh.close()
    pack.unlink()
    (tmp_path / pack.name).rename(pack)
    assert ObjectStore(root).get(oid)


def test_fsck_reports_an_index_that_disagrees_with_the_header(repo: Repo) -> None:
    repo.write("a.bin", os.urandom(300 * KiB))
    repo.write("b.bin", os.urandom(300 * KiB))
    repo.ok("add", "a.bin", "b.bin")
    (pack,) = pack_files(repo)  # the chunks'
    repo.commit("two")
    idx = pack.with_suffix(".idx")
    objs = decode_index(idx.read_bytes(), "idx")
    idx.write_bytes(encode_index(objs[:1]))  # a well-formed index that lists one object
    problems = fsck_problems(repo)
    assert any(pack.name in p and "index" in p for p in problems), problems


def test_a_format_1_repository_is_used_as_it_is(repo: Repo) -> None:
    """Format 1 named packs by the BLAKE3 of the file: such a repository opens, passes
    fsck, takes new packs (named by header) and keeps its format record."""
    data = os.urandom(400 * KiB)
    repo.write("old.bin", data)
    repo.ok("add", "old.bin")
    repo.commit("old")
    record = repo.root / ".dvfs" / "format"
    rec = json.loads(record.read_text())
    rec["format"] = 1
    record.write_text(json.dumps(rec))
    old_packs = pack_files(repo)
    for pack in old_packs:
        legacy = pack.with_name(f"pack-{hash_bytes(pack.read_bytes()).hex()}.pack")
        pack.rename(legacy)
        pack.with_suffix(".idx").rename(legacy.with_suffix(".idx"))
    assert repo.cat("HEAD:old.bin") == data
    repo.write("new.bin", os.urandom(400 * KiB))
    repo.ok("add", "new.bin")
    repo.commit("new")
    assert len(pack_files(repo)) == 2 * len(old_packs)
    assert json.loads(record.read_text())["format"] == 1
    repo.fsck_clean()


def test_an_unknown_format_is_refused_in_one_line(repo: Repo) -> None:
    record = repo.root / ".dvfs" / "format"
    for bad, said in ((3, "upgrade dvfs"), (True, "is damaged"), ("2", "is damaged")):
        rec = json.loads(record.read_text())
        rec["format"] = bad  # a newer format number, or no format number at all
        record.write_text(json.dumps(rec))
        assert_error(run(repo.root, "status"), said)
    rec["format"] = 2
    record.write_text(json.dumps(rec))
    assert_ok(run(repo.root, "status"))


def test_sync_makes_other_processes_packs_durable_then_those_that_appear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store's sync fsyncs the packs another process finished and may not have synced
    (a killed command's) once it found objects there that it may name without storing
    them again: the first time among those of the last 5 minutes, later among every one
    that appeared since, as a long-lived mount daemon needs; never one of its own twice,
    and none whose objects it did not find (a commit after a large add: not the add's
    packs, only those holding the trees it found stored)."""
    synced: list[str] = []
    real = pack_io._fsync_path

    def noting(path: Path) -> None:
        synced.append(path.name)
        real(path)

    def packs() -> set[str]:
        return {p.name for p in root.glob("pack-*.pack")}

    monkeypatch.setattr(pack_io, "_fsync_path", noting)
    root = tmp_path / "objects"
    ours, theirs = ObjectStore.create(root), ObjectStore(root)
    theirs.put(ObjKind.CHUNK, b"before")
    theirs.flush()  # finished, not waited for: as a command killed before its sync
    (first,) = packs()
    old = os.stat(root / first).st_mtime - 3600
    os.utime(root / first, (old, old))  # written back long ago
    theirs.put(ObjKind.CHUNK, b"recent")
    theirs.flush()
    (recent,) = packs() - {first}
    theirs.put(ObjKind.CHUNK, b"unrelated")
    theirs.flush()
    (unrelated,) = packs() - {first, recent}
    ours.put(ObjKind.CHUNK, b"mine")
    synced.clear()
    ours.sync()
    assert not {n for n in synced if n.endswith(".pack")}  # found nothing of theirs
    assert ours.put(ObjKind.CHUNK, b"before")[1] == 0  # found stored: may be named
    assert ours.put(ObjKind.CHUNK, b"recent")[1] == 0
    synced.clear()
    ours.sync()
    assert {n for n in synced if n.endswith(".pack")} == {recent}  # not the old one
    synced.clear()
    ours.sync()
    # Nothing twice. (Only packs: the other store's own thread fsyncs the index files
    # of the packs it finished, at any moment, through the same function.)
    assert not {n for n in synced if n.endswith(".pack")}
    before = packs()
    theirs.put(ObjKind.CHUNK, b"later")
    theirs.flush()
    (later,) = packs() - before
    assert ours.get(hash_bytes(b"later")) == b"later"  # read: may be named too
    synced.clear()
    ours.sync()
    assert {n for n in synced if n.endswith(".pack")} == {later}
    assert later.replace(".pack", ".idx") in synced
    monkeypatch.setattr(objects, "RELIED_IDS", 0)  # too many ids found to tell where
    assert ours.has(hash_bytes(b"mine"))
    assert ours.has(hash_bytes(b"before"))
    synced.clear()
    ours.sync()
    assert {n for n in synced if n.endswith(".pack")} == {unrelated}  # every candidate left
    ours.close()
    theirs.close()
    assert all(pack_io.check_pack(root / name) is None for name in packs())
    store = ObjectStore(root)
    for data in (b"before", b"recent", b"unrelated", b"mine", b"later"):
        assert store.get(hash_bytes(data)) == data
    store.close()


def test_read_many_reads_runs_and_leaves_out_what_does_not_read_back(tmp_path: Path) -> None:
    """Objects side by side in a pack come back from read_many, verified; a damaged one,
    one in the pack still being written, a missing one or one read past the page cache
    is left out for ``get``, which reads it alone or names what is wrong."""
    from vfs.errors import ObjectCorrupt
    from vfs.store.objects import READ_DIRECT

    root = tmp_path / "objects"
    store = ObjectStore.create(root)
    text = [b"line %d of a file that compresses\n" % i * (50 + i) for i in range(40)]
    raw = [os.urandom(1000 + i) for i in range(40)]  # stored uncompressed
    large = os.urandom(READ_DIRECT)
    ids = [store.put(ObjKind.CHUNK, d)[0] for pair in zip(text, raw, strict=True) for d in pair]
    large_id = store.put(ObjKind.CHUNK, large)[0]
    store.flush()
    open_id = store.put(ObjKind.CHUNK, b"in the pack being written")[0]
    by_id = {hash_bytes(d): d for d in (*text, *raw)}

    missing = hash_bytes(b"never stored")
    got = store.read_many([*reversed(ids), missing, large_id, open_id])
    assert set(got) == set(ids)
    assert all(bytes(got[i]) == by_id[i] for i in ids)

    (pack,) = root.glob("pack-*.pack")
    bad = raw[7]
    at = pack.read_bytes().find(bad) + 10
    with open(pack, "r+b") as fh:
        fh.seek(at)
        fh.write(bytes([bad[10] ^ 1]))
    fresh = ObjectStore(root)
    got = fresh.read_many(ids)
    assert set(got) == set(ids) - {hash_bytes(bad)}
    assert all(bytes(got[i]) == by_id[i] for i in got)
    with pytest.raises(ObjectCorrupt):
        fresh.get(hash_bytes(bad))
    assert fresh.get(large_id) == large
    store.close()
    fresh.close()


def test_will_need_asks_for_known_objects_and_passes_over_the_rest(tmp_path: Path) -> None:
    """will_need is a hint: ids spread over packs, unknown ids, a large payload and one in
    the pack being written are all accepted, and every object reads back the same after."""
    from vfs.store.objects import READ_DIRECT

    store = ObjectStore.create(tmp_path / "objects")
    data = [os.urandom(3000 + i) for i in range(30)]
    ids = [store.put(ObjKind.TREE, d)[0] for d in data[:15]]
    store.flush()
    ids += [store.put(ObjKind.TREE, d)[0] for d in data[15:]]
    large_id = store.put(ObjKind.CHUNK, os.urandom(READ_DIRECT))[0]
    store.flush()
    open_id = store.put(ObjKind.CHUNK, b"in the pack being written")[0]
    store.will_need([*reversed(ids), hash_bytes(b"never stored"), large_id, open_id])
    assert [store.get(i) for i in ids] == data
    assert store.get(open_id) == b"in the pack being written"
    store.close()


def test_an_object_reads_back_whole_while_another_thread_closes_its_pack(
    tmp_path: Path,
) -> None:
    """A process that reads and stores at once (a mount, the dashboard, the Python face):
    an object read while another thread closes the pack it was just written to comes
    back whole, never cut short from the temporary file being finished."""
    import threading

    store = ObjectStore.create(tmp_path / "objects")
    written = []
    for i in range(100):
        data = os.urandom(100) + b"x" * 1000
        oid = hash_bytes(data)
        written.append(data)
        stored = threading.Event()

        def store_and_close(data: bytes = data, stored: threading.Event = stored) -> None:
            store.put(ObjKind.CHUNK, data)
            stored.set()
            store.flush()

        writer = threading.Thread(target=store_and_close)
        writer.start()
        stored.wait()
        try:
            assert store.get(oid) == data, i
        finally:
            writer.join()
    store.close()
    fresh = ObjectStore(tmp_path / "objects")
    assert len(list((tmp_path / "objects").glob("pack-*.pack"))) == 100
    assert [fresh.get(hash_bytes(d)) for d in written] == written
    fresh.close()


def test_a_pack_that_is_a_fifo_is_named_not_read(repo: Repo, tmp_path: Path) -> None:
    """A pack replaced by a FIFO, its index file left beside it: every read said only
    "dvfs: error: Illegal seek" (`fsck` too), the index trusted and the FIFO read. Now
    it is a damaged pack, as a link in its place is: its objects are not in the store,
    fsck names it, and putting the pack back mends all."""
    repo.write("a.bin", os.urandom(10 * KiB))
    repo.ok("add", "a.bin")
    repo.commit("one")
    kept = tmp_path / "kept"
    kept.mkdir()
    packs = [p for p in pack_files(repo) if p.suffix == ".pack"]
    for pack in packs:
        pack.rename(kept / pack.name)
        os.mkfifo(pack)
    (repo.root / "a.bin").unlink()
    assert_error(run(repo.root, "restore", "a.bin"), "not in the local store")
    problems = fsck_problems(repo)
    assert any("is not a regular file" in p for p in problems), problems
    assert not any("Illegal seek" in p for p in problems), problems
    for pack in packs:
        pack.unlink()
        (kept / pack.name).rename(pack)
    repo.ok("restore", "a.bin")
    repo.fsck_clean()
