"""The Python API (``vfs.Repo``, ``vfs.open``): what it returns is what the CLI says.

One repository with two versions is made through the API itself, once for the
module (``tests/support/api.py``); the tests that change it work on a copy. The
remote tests push it to a real S3 server (SeaweedFS) and read it in place, counting
the requests that reach the server.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import pickle
import random
import re
import shutil
import subprocess
import sys
import threading
import types
import zipfile
from pathlib import Path
from typing import IO, Any

import fsspec
import numpy as np
import pytest

import vfs
from tests.support.api import Data, make_data, push_all, write
from tests.support.cli import assert_error, assert_ok, commit_files, fsck_clean, init_repo, run
from tests.support.data import rand
from tests.support.forge import Forge, content_entry, file_entry
from tests.support.s3server import S3Server
from tests.test_checkout_ahead import MiB, forge_digest
from tests.test_remote_gc import listed_twice
from vfs.errors import RemoteNotFound
from vfs.model.ids import hash_bytes
from vfs.remote.read import RemoteChunks, repository_chunks
from vfs.repo.repository import Repository


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    return make_data(tmp_path_factory.mktemp("api") / "repo")


@pytest.fixture(scope="module")
def pushed(data: Data, s3_server: S3Server) -> str:
    """The repository pushed (every branch and tag) to a fresh bucket: its URL."""
    return push_all(data.root, s3_server)


def copied(data: Data, tmp_path: Path, files: dict[str, bytes]) -> tuple[Path, vfs.Repo]:
    """A copy of the module's repository with ``files`` written over it, and its Repo."""
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    write(root, files)
    return root, vfs.Repo(root)


def test_versions_and_show_are_what_log_and_show_print(data: Data) -> None:
    versions = data.repo.versions()
    assert [(v.number, v.message) for v in versions] == [(2, "more rows"), (1, "first data")]
    v1 = versions[1]
    assert v1.params == {"lr": 0.001, "layers": [64, 64]} and v1.tags == ("first",)
    assert versions[0].branches == ("main",) and versions[0].parents == (v1.id,)
    assert v1.time.tzinfo is not None and v1.file_count == 5
    shown = data.repo.show("first")
    assert shown.id == v1.id and shown.files is not None
    assert shown.files["data/train.csv"]["size"] == len(data.v1["data/train.csv"])
    cli = assert_ok(run(data.root, "show", "v1", "--format", "json")).json()
    assert shown.to_json() == cli  # the same document, from the same code
    log = assert_ok(run(data.root, "log", "--json")).json()
    assert [v.to_json() for v in versions] == log
    assert data.repo.versions("v1") == [v1]
    assert [v.number for v in data.repo.versions(paths=["notes.txt"])] == [2]


def test_ls_walk_and_info(data: Data) -> None:
    top = data.repo.ls("v1", "data")
    assert [(f.path, f.type) for f in top] == [
        ("data/labels.csv", "file"), ("data/link.csv", "link"), ("data/parquet", "dir"),
        ("data/train.csv", "file"),
    ]  # fmt: skip
    assert top[1].target == "labels.csv" and top[0].size == len(data.v1["data/labels.csv"])
    assert [f.name for f in data.repo.ls("v2")] == ["data", "notes.txt"]
    assert [f.path for f in data.repo.ls("v2", "notes.txt")] == ["notes.txt"]
    assert sorted(f.path for f in data.repo.walk("v1")) == sorted([*data.v1, "data/link.csv"])
    info = data.repo.info("data/train.csv", "v2")
    assert info.size == len(data.v2["data/train.csv"]) and info.hash is not None


def test_a_repo_dropped_without_close_leaves_no_pack_open(data: Data) -> None:
    """A ``vfs.Repo`` that read files kept its packs' descriptors open for the life of
    the process when dropped without ``close()``: a program opening a repository per
    request or per epoch ran out of descriptors. They are closed with the object."""
    import gc

    objects = str(data.root / ".dvfs" / "objects")

    def packs_open() -> int:
        held = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                held += os.readlink(f"/proc/self/fd/{fd}").startswith(objects)
            except OSError:
                continue
        return held

    gc.collect()
    before = packs_open()
    for _ in range(3):
        repo = vfs.Repo(data.root)
        assert repo.read_bytes("data/train.csv", rev="v2") == data.v2["data/train.csv"]
        assert packs_open() > before  # (read from packs: there was something to close)
        del repo
    gc.collect()
    assert packs_open() == before


def test_reads_given_a_directory_close_the_repo_they_open(data: Data) -> None:
    """``vfs.read_bytes``, ``read_text`` and ``open`` given a directory open a Repo for
    the call: each left it, and three pack descriptors, to the garbage collector, so
    that a loop of reads held dozens open. The Repo is closed when the read is done,
    or when the file opened is closed."""
    import gc

    def held() -> set[str]:
        named = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                named.add(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                continue
        return named

    root = str(data.root)
    want = data.v2["data/train.csv"]
    gc.disable()  # what is closed is closed by the API, not by a collection
    try:
        before = held()
        assert vfs.read_bytes("data/train.csv", repo=root) == want
        assert vfs.read_text("data/train.csv", repo=root) == want.decode()
        with vfs.open("data/train.csv", repo=root) as f:
            assert f.read() == want
            assert held() > before  # (it reads from packs: there was something to close)
        with pytest.raises(FileNotFoundError):
            vfs.open("data/none.csv", repo=root)
        assert held() == before
    finally:
        gc.enable()


def test_open_reads_and_seeks_like_a_file(data: Data) -> None:
    want = data.v2["data/train.csv"]
    rng = random.Random(5)
    with data.repo.open("data/train.csv", rev="v2") as f:
        assert f.seekable() and f.readable() and not f.writable()
        assert f.mode == "rb"  # as open() says: gzip, pandas and others look
        for _ in range(50):
            at, n = rng.randrange(len(want)), rng.randrange(1, 100_000)
            f.seek(at)
            assert f.read(n) == want[at : at + n]
        assert f.seek(-10, io.SEEK_END) == len(want) - 10 and f.read() == want[-10:]
        assert f.read(5) == b""
    with vfs.open("data/train.csv", rev="v1", repo=data.root, mode="r") as t:
        assert t.readline() == "id,city,score\n" and t.mode == "r"
        assert t.read() == data.v1["data/train.csv"].decode()[len("id,city,score\n") :]
    assert vfs.read_bytes("notes.txt", repo=data.repo) == b"more rows\n"
    assert vfs.read_text("data/link.csv", "first", data.repo) == "id,label\n1,cat\n2,dog\n"
    assert data.repo.read_range("data/train.csv", 100, 200, rev="v1") == want[100:200]
    # a version's number and a VersionInfo name it too ('int' object has no attribute 'strip')
    first = data.repo.versions()[-1]
    assert data.repo.read_bytes("data/train.csv", first.number) == data.v1["data/train.csv"]
    assert vfs.read_bytes("data/labels.csv", first, data.repo) == data.v1["data/labels.csv"]
    assert [c.path for c in data.repo.diff(1, 2)] == [c.path for c in data.repo.diff("v1", "v2")]
    assert fsspec_rev(data, 1) == data.v1["data/train.csv"][:10]
    with pytest.raises(vfs.UsageError, match="numbered from 1"):
        data.repo.ls(0)
    with pytest.raises(TypeError, match="not float"):
        data.repo.show(1.0)  # type: ignore[arg-type]


def test_a_file_read_to_its_end_is_checked_against_its_digest(tmp_path: Path) -> None:
    """A version whose file of several chunks claims a digest its bytes do not have (a
    forged record an older dvfs fetched): `vfs.open` read it to its end, and fsspec's
    `cat` gave it whole, as if they were the bytes of that hash. Reading to the end
    now checks the digest on the way (no second read) and fails the read that gets
    there; a part of the file, which cannot be checked, reads as before."""
    root = tmp_path / "repo"
    repo = init_repo(root)
    data = rand(3 * MiB, seed=17)
    commit_files(repo, {"d/mid.bin": data}, "base")
    store = Repository(root)
    head = store.history.head_id()
    assert head is not None
    store.refs.update("refs/tags/lie", forge_digest(store, head, b"d/mid.bin", bytes(32)), None)
    store.close()
    with vfs.Repo(root) as api:
        assert api.read_range("d/mid.bin", 1000, 2000, rev="lie") == data[1000:2000]
        with pytest.raises(vfs.FormatError, match="the digest the version records for it"):
            api.read_bytes("d/mid.bin", rev="lie")
        with api.open("d/mid.bin", rev="lie") as f, pytest.raises(vfs.FormatError, match="v2:d"):
            while f.read(100_000):
                pass
        fs = fsspec.filesystem("dvfs", repo=api, rev="lie")
        with pytest.raises(vfs.FormatError):
            fs.cat_file("/d/mid.bin")
        assert api.read_bytes("d/mid.bin") == data  # the honest version reads whole
        with api.open("d/mid.bin") as f:
            assert f.read() == data


def fsspec_rev(data: Data, rev: int) -> bytes:
    fs = fsspec.filesystem("dvfs", repo=data.repo, rev=rev)
    head: bytes = fs.cat_file("/data/train.csv", 0, 10)
    return head


def test_every_mode_open_reads_with_is_taken_and_others_named(data: Data) -> None:
    """``br`` and ``tr`` read as ``rb`` and ``rt`` do with ``open()``: they were refused
    as modes that write ("files of versions are read-only"), as was a mode that is no
    mode at all."""
    want = data.v2["data/train.csv"]
    for mode in ("rb", "br"):
        with data.repo.open("data/train.csv", mode=mode) as f:
            assert f.read() == want
    for mode in ("r", "rt", "tr"):
        with data.repo.open("data/train.csv", mode=mode) as t:
            assert t.read() == want.decode()
    for mode in ("w", "r+", "rb+", "ab", "x"):
        with pytest.raises(ValueError, match=f"^mode '{re.escape(mode)}': files of versions are"):
            data.repo.open("data/train.csv", mode=mode)
    for mode in ("q", "rbb", "bt", "", "U"):
        with pytest.raises(ValueError, match=f"^mode '{mode}' is not a mode open.. takes"):
            data.repo.open("data/train.csv", mode=mode)


def test_bad_paths_revisions_and_modes_are_named(data: Data) -> None:
    with pytest.raises(FileNotFoundError, match=r"^data/nope.csv does not exist in v1 \(first\)$"):
        vfs.open("data/nope.csv", rev="first", repo=data.root)
    with pytest.raises(FileNotFoundError, match=r"notes.txt does not exist in v1$"):
        data.repo.read_bytes("notes.txt", rev="v1")
    with pytest.raises(vfs.RevisionNotFound, match=r"give a mode as mode='r'"):
        vfs.open("data/train.csv", "r", repo=data.root)  # as builtins.open(path, mode)
    with pytest.raises(vfs.RevisionNotFound) as bad:
        data.repo.open("data/train.csv", rev="v9")
    line = assert_error(run(data.root, "cat", "v9:data/train.csv"))
    assert line == f"dvfs: error: {bad.value}"  # the CLI's message
    with pytest.raises(IsADirectoryError, match="data is a directory in v2"):
        data.repo.open("data")
    with pytest.raises(ValueError, match="read-only"):
        data.repo.open("data/train.csv", mode="w")
    # a trailing slash names a directory, as to the kernel (open(2) says ENOTDIR)
    for call in (
        lambda: data.repo.read_bytes("data/train.csv/"),
        lambda: vfs.open("data/link.csv/.", repo=data.repo),  # a link to a file, followed
        lambda: data.repo.ls("v2", "data/train.csv/"),
        lambda: data.repo.info("data/train.csv/"),
        lambda: list(data.repo.walk("v2", "data/train.csv/")),
    ):
        with pytest.raises(NotADirectoryError, match=r"/: data/\w+\.csv is a file in v2, not a"):
            call()
    assert [f.path for f in data.repo.ls("v2", "data/parquet/")] == [
        "data/parquet/part-0.parquet", "data/parquet/part-1.parquet",
    ]  # fmt: skip
    with pytest.raises(vfs.UsageError, match=r"'\.\.'"):
        data.repo.open("../etc/passwd")
    with pytest.raises(vfs.UsageError, match=r"Repo\.remote"):
        vfs.Repo("s3://bucket/x")


def test_add_commit_and_diff_on_a_copy(data: Data, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    repo = vfs.Repo(root / "data")  # found from a directory inside, as the CLI finds it
    write(root, {"data/labels.csv": b"id,label\n1,cat\n", "data/new.txt": b"new\n"})
    assert [(c.status, c.path) for c in repo.diff()] == [("modified", "data/labels.csv")]
    report = repo.add("data/new.txt")  # one path alone: not its characters
    assert report.files == 1
    with pytest.raises(vfs.UsageError, match="parameter name"):
        repo.commit("bad", params={"": 1})
    with pytest.raises(vfs.UsageError, match=r"message is empty: repo\.commit\(message\)"):
        repo.commit(" ")  # it said to pass -m MESSAGE
    with pytest.raises(vfs.UsageError, match="limit=-1: give 0 or more"):
        repo.versions(limit=-1)  # it said [], as if there were no version
    v3 = repo.commit("labels fixed", params={"epochs": 3}, tag="fixed", all=True)
    assert (v3.number, v3.tags, v3.params) == (3, ("fixed",), {"epochs": 3})
    changes = repo.diff("v2", "v3")
    assert [(c.status, c.path) for c in changes] == [
        ("modified", "data/labels.csv"), ("added", "data/new.txt"),
    ]  # fmt: skip
    assert repo.read_bytes("data/labels.csv") == b"id,label\n1,cat\n"
    # paths="data" was read as "d", "a", "t", "a": no version, no change, silently
    assert [v.number for v in repo.versions(paths="data/new.txt")] == [3]
    assert [c.path for c in repo.diff("v2", "v3", paths=Path("data/new.txt"))] == ["data/new.txt"]
    fsck_clean(root)


def test_a_branch_hiding_a_tag_of_its_name_warns(data: Data, tmp_path: Path) -> None:
    """A tag and a branch of one name (made before that was refused): the API read the
    branch without a word, where the CLI warns; it warns too, and a tag is refused."""
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    repo = vfs.Repo(root)
    write(root, {"data/new.txt": b"new\n"})
    repo.add("data/new.txt")
    with pytest.raises(vfs.UsageError, match="tag main would share its name with branch main"):
        repo.commit("three", tag="main")
    v3 = repo.commit("three")
    v1 = repo.versions()[-1]
    (root / ".dvfs" / "refs" / "tags" / "main").write_text(v1.id + "\n")
    with pytest.warns(vfs.DvfsWarning, match="main names both a branch and a tag"):
        assert repo.show("main").id == v3.id
    fsck_clean(root)


def test_a_remote_is_read_in_place_one_chunk_a_read(
    data: Data, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    remote = vfs.Repo.remote(pushed, endpoint_url=s3_env.endpoint, cache_dir=tmp_path / "c")
    assert [v.id for v in remote.versions()] == [v.id for v in data.repo.versions()]
    assert remote.show("first").to_json() == data.repo.show("first").to_json()
    assert [f.path for f in remote.ls("v2", "data")] == [f.path for f in data.repo.ls("v2", "data")]
    want = data.v2["data/train.csv"]
    chunks = data.chunks("data/train.csv", "v2")
    assert len(chunks) > 10
    middle = sum(c.size for c in chunks[:7]) + 100  # inside the eighth chunk
    before = remote.requests
    with remote.open("data/train.csv", rev="main") as f:
        f.seek(middle)
        assert f.read(500) == want[middle : middle + 500]
        assert remote.requests == before + 1  # one ranged GET: that chunk
        f.seek(middle + 1000)
        assert f.read(10) == want[middle + 1000 : middle + 1010]
        assert remote.requests == before + 1  # same chunk: kept
    assert remote.read_bytes("data/train.csv", "v2") == want
    assert remote.requests == before + 1 + len({c.oid for c in chunks})
    with pytest.raises(vfs.UsageError, match="read-only: clone it"):
        remote.add(["notes.txt"])
    with pytest.raises(FileNotFoundError, match="does not exist in v1"):
        remote.open("notes.txt", rev="v1")
    again = vfs.Repo.remote(pushed, endpoint_url=s3_env.endpoint, cache_dir=tmp_path / "c")
    assert again.versions()[0].id == remote.versions()[0].id  # nothing new: metadata kept
    unpickled = pickle.loads(pickle.dumps(remote))  # as a DataLoader's worker gets it
    assert (unpickled.url, unpickled.read_bytes("notes.txt")) == (pushed, data.v2["notes.txt"])
    assert pickle.loads(pickle.dumps(data.repo)).root == data.root
    with pytest.raises(vfs.OtherSource, match="give each remote a cache_dir of its own"):
        vfs.Repo.remote(pushed + "-other", endpoint_url=s3_env.endpoint, cache_dir=tmp_path / "c")


def test_a_clone_without_checkout_reads_from_its_remote(
    data: Data, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    clone = vfs.Repo.clone(pushed, tmp_path / "clone", endpoint_url=s3_env.endpoint,
                           no_checkout=True)  # fmt: skip
    assert clone.root == tmp_path / "clone" and not (tmp_path / "clone" / "notes.txt").exists()
    assert clone.read_bytes("data/train.csv", "v1") == data.v1["data/train.csv"]
    assert json.loads(json.dumps(clone.show("v2").files)) == data.repo.show("v2").files
    fsck_clean(tmp_path / "clone")


def test_a_directory_remote_opened_as_a_repository_is_named_a_remote(
    data: Data, tmp_path: Path
) -> None:
    work, remote = tmp_path / "work", tmp_path / "remote"
    shutil.copytree(data.root, work, symlinks=True)
    assert_ok(run(work, "remote", "add", "backup", str(remote)))
    assert_ok(run(work, "push", "--remote", "backup"))
    # it said "not a dvfs repository (or any parent): run `dvfs init`"
    with pytest.raises(vfs.NotARepository, match=r"is a remote .* vfs\.Repo\.remote\("):
        vfs.Repo(remote)
    with pytest.raises(vfs.NotARepository, match=f"repo='file://{remote}'"):
        vfs.read_bytes("notes.txt", repo=remote)
    mirror = vfs.Repo.remote(str(remote), cache_dir=tmp_path / "mirror")
    assert mirror.read_bytes("notes.txt") == data.v2["notes.txt"]
    # it said vfs.Repo('/.../remote'), which is refused as a remote, not a repository
    assert repr(mirror) == f"vfs.Repo.remote({str(remote)!r})"
    assert repr(vfs.Repo(work / "data")) == f"vfs.Repo({str(work)!r})"
    with pytest.raises(vfs.NotARepository, match=r"run `dvfs init`$"):
        vfs.Repo(tmp_path)  # neither
    clone = vfs.Repo.clone(str(remote), tmp_path / "clone", no_checkout=True)
    remote.rename(tmp_path / "moved")
    # the remote's error alone did not say what was being read
    with pytest.raises(vfs.RemoteError, match=r"^reading v1:data/train\.csv needs data from "
                       r"remote origin, which failed: directory .* does not exist"):  # fmt: skip
        clone.read_bytes("data/train.csv", "v1")


def test_read_text_reads_newlines_as_open_does(tmp_path: Path) -> None:
    """read_text kept \\r\\n where repo.open(mode="r"), open() and pathlib give \\n."""
    assert_ok(run(tmp_path, "init", "r"))
    repo = vfs.Repo(tmp_path / "r")
    (tmp_path / "r" / "w.csv").write_bytes(b"a,b\r\n1,2\r\nold mac\rline\n")
    repo.add(["w.csv"])
    repo.commit("windows lines")
    text = (tmp_path / "r" / "w.csv").read_text()
    assert text == "a,b\n1,2\nold mac\nline\n"
    assert repo.read_text("w.csv") == text == vfs.read_text("w.csv", repo=repo)
    with repo.open("w.csv", mode="r") as f:
        assert f.read() == text
    assert repo.read_text("w.csv", newline="") == "a,b\r\n1,2\r\nold mac\rline\n"
    fsck_clean(tmp_path / "r")


def test_a_path_given_as_bytes_is_a_type_error_that_says_so(data: Data) -> None:
    # it was "a bytes-like object is required, not 'str'", about no argument given
    for call in (
        lambda: data.repo.read_bytes(b"data/labels.csv"),  # type: ignore[arg-type]
        lambda: vfs.open(b"data/labels.csv", repo=data.repo),  # type: ignore[arg-type]
        lambda: data.repo.ls("v2", b"data"),  # type: ignore[arg-type]
        lambda: data.repo.info(b"data"),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=r"^give paths as text \(os\.fsdecode\), not bytes$"):
            call()


def test_paths_in_a_list_are_checked_as_one_path_is(data: Data, tmp_path: Path) -> None:
    """A path in a list given as bytes, as no path, or holding a NUL failed inside
    (``unsupported operand type(s) for /: 'PosixPath' and 'bytes'``, ``stat: embedded
    null character in path``); each is named as a path given alone is."""
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    with vfs.Repo(root) as repo:
        tracked = set(repo.repository.index().paths())
        for call in (lambda: repo.add([b"notes.txt"]), lambda: repo.pull(paths=[b"x"])):  # type: ignore[list-item]
            with pytest.raises(
                TypeError, match=r"^give paths as text \(os\.fsdecode\), not bytes$"
            ):
                call()
        with pytest.raises(TypeError, match=r"^a path is text or a pathlib.Path, not NoneType$"):
            repo.add(["notes.txt", None])  # type: ignore[list-item]
        with pytest.raises(vfs.UsageError, match=r'^"a\\000b" holds a NUL character'):
            repo.add(["a\0b"])
        assert set(repo.repository.index().paths()) == tracked  # nothing staged
    fsck_clean(root)


def test_read_range_counts_negative_offsets_from_the_end_as_dvfs_does(data: Data) -> None:
    # a negative start was taken as 0: read_range(path, -20, size) gave the whole file
    want = data.v2["data/train.csv"]
    size = len(want)
    assert data.repo.read_range("data/train.csv", -20, size) == want[-20:]
    assert data.repo.read_range("data/train.csv", -20, -10) == want[-20:-10]
    assert data.repo.read_range("data/train.csv", 5, -size - 5) == b""
    assert data.repo.read_range("data/train.csv", np.int64(-20), size) == want[-20:]
    fs = fsspec.filesystem("dvfs", repo=data.repo)
    assert fs.cat_file("/data/train.csv", -20, -10) == want[-20:-10]  # as fsspec counts
    for bad in (None, 2.5, "3"):
        with pytest.raises(TypeError, match=r"^start and end are byte offsets \(int\)"):
            data.repo.read_range("data/train.csv", bad, 10)  # type: ignore[arg-type]


def test_push_fetch_and_pull_from_python_as_the_cli_does(data: Data, tmp_path: Path) -> None:
    """A training script that commits and publishes from Python, and another that
    brings it in: push, fetch (its prune too) and pull are the CLI's protocol."""
    work, remote = tmp_path / "work", tmp_path / "remote"
    shutil.copytree(data.root, work, symlinks=True)
    a = vfs.Repo(work)
    # (the module's repository may have a remote origin by now: the pushed fixture's)
    assert_ok(run(work, "remote", "add", "share", str(remote), "--default"))
    sent = a.push("main", tags=True)  # one name alone: not its characters
    assert sent.objects > 0 and any(n.startswith("main: v2") for n in sent.notes)
    b = vfs.Repo.clone(str(remote), tmp_path / "b")
    write(work, {"data/new.txt": b"from a script\n"})
    a.add("data/new.txt")
    v3 = a.commit("three")
    a.push()
    got = b.fetch()
    assert got.heads["main"].hex() == v3.id
    b.pull(paths=["data"])  # only data, at the remote's latest: the branch stays
    assert (tmp_path / "b" / "data" / "new.txt").read_bytes() == b"from a script\n"
    assert b.versions(limit=1)[0].number == 2
    assert b.pull().checkout is not None
    assert b.versions(limit=1)[0].id == v3.id
    with pytest.raises(vfs.RefConflict, match="remote main has versions you don't have"):
        write(tmp_path / "b", {"notes.txt": b"b's\n"})
        b.commit("b's", all=True)
        write(work, {"notes.txt": b"a's\n"})
        a.commit("a's", all=True)
        a.push()
        b.push()
    with pytest.raises(TypeError, match="branches is a name or a list of names"):
        a.push(5)  # type: ignore[arg-type]
    with pytest.raises(vfs.UsageError, match="unknown remote nope"):
        b.fetch("nope")
    fsck_clean(work)
    fsck_clean(tmp_path / "b")


def test_a_link_is_followed_through_links_on_its_way_and_to_the_root(tmp_path: Path) -> None:
    # `chain -> dl/e/f.txt` (dl -> d) was "a link to dl/e/f.txt, which does not exist
    # there", and `d/up -> ..` "a link to .., which does not exist there"
    root = tmp_path / "repo"
    Repository.init(root)
    write(root, {"d/e/f.txt": b"hi\n"})
    os.symlink("d", root / "dl")
    os.symlink("dl/e/f.txt", root / "chain")
    os.symlink("..", root / "d" / "up")
    repo = vfs.Repo(root)
    repo.add(["d", "dl", "chain"])
    repo.commit("links")
    assert repo.read_bytes("chain") == b"hi\n"
    found = repo.target("chain")
    assert found is not None and found.path == "d/e/f.txt"
    with pytest.raises(IsADirectoryError, match=r"^\. is a directory in v1$"):
        repo.open("d/up")
    assert [f.path for f in repo.ls("HEAD", "d/up")] == ["d/up/chain", "d/up/d", "d/up/dl"]
    fs = fsspec.filesystem("dvfs", repo=repo)
    assert fs.info("/chain")["type"] == "file" and fs.cat_file("/chain") == b"hi\n"
    assert fs.info("/d/up")["type"] == "link"  # a loop: not entered by a reader walking
    fsck_clean(root)


def test_threads_reading_a_clone_without_checkout_at_once_all_reach_its_remote(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a thread reading while the first one looked for the default remote was told
    # "object ... is not in the local store" (a DataLoader's threads on a fresh clone)
    work, remote = tmp_path / "work", tmp_path / "remote"
    shutil.copytree(data.root, work, symlinks=True)
    assert_ok(run(work, "remote", "add", "backup", str(remote)))
    assert_ok(run(work, "push", "--remote", "backup"))
    clone = vfs.Repo.clone(str(remote), tmp_path / "clone", no_checkout=True)
    other: list[bytes] = []

    def meanwhile(repo: Repository, jobs: int) -> RemoteChunks | None:
        if not other:  # the first reader, looking: another thread reads now
            other.append(b"")
            t = threading.Thread(target=lambda: other.append(clone.read_bytes("notes.txt")))
            t.start()
            t.join()
        return repository_chunks(repo, jobs)

    monkeypatch.setattr(vfs.api, "repository_chunks", meanwhile)
    assert clone.read_bytes("data/labels.csv") == data.v2["data/labels.csv"]
    assert other == [b"", data.v2["notes.txt"]]
    fsck_clean(tmp_path / "clone")


def test_one_remote_spelled_two_ways_shares_its_cache_dir(
    data: Data, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    # it said "c/meta holds the versions of s3://.../ds: give each remote a cache_dir
    # of its own", of the same remote with a trailing slash, or as file:// and a path
    cache = tmp_path / "c"
    vfs.Repo.remote(pushed, endpoint_url=s3_env.endpoint, cache_dir=cache).close()
    again = vfs.Repo.remote(pushed + "/", endpoint_url=s3_env.endpoint, cache_dir=cache)
    assert again.read_bytes("notes.txt") == data.v2["notes.txt"]
    work, remote = tmp_path / "work", tmp_path / "remote"
    shutil.copytree(data.root, work, symlinks=True)
    assert_ok(run(work, "remote", "add", "backup", str(remote)))
    assert_ok(run(work, "push", "--remote", "backup"))
    vfs.Repo.remote(str(remote), cache_dir=tmp_path / "d").close()
    fs = fsspec.filesystem("dvfs", repo=remote.as_uri(), cache_dir=tmp_path / "d")
    assert fs.cat_file("/notes.txt") == data.v2["notes.txt"]
    with pytest.raises(vfs.OtherSource, match="give each remote a cache_dir of its own"):
        vfs.Repo.remote(pushed, endpoint_url=s3_env.endpoint, cache_dir=tmp_path / "d")


def test_a_directory_remote_given_as_a_path_object_is_read_and_cloned(
    data: Data, tmp_path: Path
) -> None:
    # Repo.remote(Path(...)) said "argument of type 'PosixPath' is not iterable" and
    # Repo.clone(Path(...), ...) "'PosixPath' object has no attribute 'strip'"
    work, remote = tmp_path / "work", tmp_path / "remote"
    shutil.copytree(data.root, work, symlinks=True)
    assert_ok(run(work, "remote", "add", "backup", str(remote)))
    assert_ok(run(work, "push", "--remote", "backup"))
    read = vfs.Repo.remote(remote, cache_dir=tmp_path / "mirror")
    assert read.url == str(remote) and read.read_bytes("notes.txt") == data.v2["notes.txt"]
    clone = vfs.Repo.clone(remote, tmp_path / "clone", no_checkout=True)
    assert clone.read_bytes("data/labels.csv", "v1") == data.v1["data/labels.csv"]
    with pytest.raises(TypeError, match=r"^a remote is a URL \(s3://bucket/prefix, file"):
        vfs.Repo.remote(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"^a remote is a URL \(s3://bucket/prefix, file"):
        vfs.Repo.clone(None, tmp_path / "x")  # type: ignore[arg-type]
    fsck_clean(tmp_path / "clone")


def test_a_limit_that_is_no_whole_number_is_a_type_error_that_says_so(data: Data) -> None:
    # limit="2" said "'<' not supported between instances of 'str' and 'int'", and
    # limit=1.5 gave two versions, limit=True one
    for bad in ("2", 1.5, True):
        with pytest.raises(TypeError, match=r"^limit is a whole number \(int\), not \w+$"):
            data.repo.versions(limit=bad)  # type: ignore[arg-type]
    assert len(data.repo.versions(limit=np.int64(1))) == 1  # type: ignore[arg-type]


def test_an_empty_path_is_refused_not_taken_as_the_whole_repository(
    data: Data, tmp_path: Path
) -> None:
    # repo.add("") (a path from an unset variable) staged every file of the repository
    root, repo = copied(
        data, tmp_path, {"big.bin": b"not for the repository\n", "data/new.txt": b"new\n"}
    )
    tracked = set(repo.repository.index().paths())
    for call in (
        lambda: repo.add(""),
        lambda: repo.add(["data/new.txt", ""]),
        lambda: repo.versions(paths=""),
        lambda: repo.diff("v1", "v2", paths=[""]),
        lambda: repo.pull(paths=""),
    ):
        with pytest.raises(vfs.UsageError, match=r"^an empty path \(an unset variable\?\): "):
            call()
    assert set(repo.repository.index().paths()) == tracked  # nothing staged
    repo.add(".")  # the whole repository, said so
    assert b"big.bin" in set(repo.repository.index().paths())
    fsck_clean(root)


def test_every_call_the_readme_lists_has_a_docstring_with_an_example() -> None:
    # README: "Each has a docstring with an example (`help(vfs.Repo)`)"; info, target,
    # read_bytes, read_text, read_range and vfs.read_bytes/read_text had none
    listed = ["versions", "show", "ls", "walk", "info", "target", "diff", "add", "commit",
              "push", "fetch", "pull", "open", "read_bytes", "read_text", "read_range",
              "clone", "remote"]  # fmt: skip
    calls = [getattr(vfs.Repo, n) for n in listed] + [vfs.open, vfs.read_bytes, vfs.read_text]
    assert [c.__qualname__ for c in calls if "Example::" not in (c.__doc__ or "")] == []


def test_a_repository_read_as_a_remote_is_named_a_repository(data: Data, tmp_path: Path) -> None:
    # it said "... holds no dvfs repository (no format record)" of a repository
    for url in (str(data.root), data.root.as_uri()):
        with pytest.raises(vfs.UsageError, match=r"is a repository, not a remote .* vfs\.Repo\("):
            vfs.Repo.remote(url, cache_dir=tmp_path / "mirror")
        with pytest.raises(vfs.UsageError, match=r"is a repository, not a remote"):
            fsspec.filesystem("dvfs", repo=data.root.as_uri(), cache_dir=tmp_path / "mirror")
    assert not (tmp_path / "mirror").exists()


def test_a_set_parameter_is_recorded_as_the_same_list_in_every_process(
    data: Data, tmp_path: Path
) -> None:
    # a set was recorded in the order of its hashes: {"cat", "dog"} gave ["dog", "cat"]
    # in one run and ["cat", "dog"] in the next (so compare showed it changed), and a
    # frozenset as its text, "frozenset({'a'})"
    check = "from vfs.model import params; print(params.check({'c': {'cat', 'dog', 'owl', 'emu'}}))"
    seen = {
        subprocess.run(
            [sys.executable, "-c", check],
            env={**os.environ, "PYTHONHASHSEED": str(seed)},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in range(1, 6)
    }
    assert seen == {"{'c': ['cat', 'dog', 'emu', 'owl']}\n"}
    root, repo = copied(data, tmp_path, {"notes.txt": b"sets\n"})
    v = repo.commit("sets", params={"s": {8, 1}, "f": frozenset({"a"})}, all=True)
    assert v.params == {"s": [1, 8], "f": ["a"]}
    fsck_clean(root)


def test_a_mapping_that_is_not_a_dict_is_recorded_as_a_mapping(data: Data, tmp_path: Path) -> None:
    # a mapping inside the parameters that is not a dict (a config object's, a
    # MappingProxyType) was recorded as its text: "{'lr': 0.1}"
    root, repo = copied(data, tmp_path, {"notes.txt": b"config\n"})
    opt = types.MappingProxyType({"lr": 0.1, "betas": (0.9, 0.99)})
    v = repo.commit("config", params={"optimizer": opt}, all=True)
    assert v.params == {"optimizer": {"lr": 0.1, "betas": [0.9, 0.99]}}
    shown = assert_ok(run(root, "show", "HEAD"))
    assert "param    optimizer.lr = 0.1" in shown.out
    fsck_clean(root)


def test_a_path_given_where_the_revision_goes_is_named_a_path(data: Data) -> None:
    # repo.ls("data") (as `dvfs ls data` lists it) said "unknown revision 'data'; run
    # `dvfs log` or `dvfs branch` to see what exists"
    hint = r"^unknown revision data: the first argument is the revision, and data is a path: "
    for call, fix in (
        (lambda: data.repo.ls("data"), r"repo\.ls\(path='data'\)$"),
        (lambda: list(data.repo.walk("data")), r"repo\.walk\(path='data'\)$"),
        (lambda: data.repo.versions("data"), r"repo\.versions\(paths='data'\)$"),
        (lambda: data.repo.diff("data"), r"repo\.diff\(paths='data'\)$"),
    ):
        with pytest.raises(vfs.RevisionNotFound, match=hint + fix):
            call()
    with pytest.raises(vfs.RevisionNotFound, match=r"^unknown revision nope; run `dvfs log`"):
        data.repo.ls("nope")  # no such path either: as before
    assert data.repo.ls(path="data")[0].name == "labels.csv"


def test_clone_and_pull_take_a_version_number_as_reads_do(data: Data, tmp_path: Path) -> None:
    # Repo.clone(url, dir, rev=1) said "'int' object has no attribute 'strip'" and
    # pull(1) "the rev is text, not int", though a read takes rev=1 as v1
    work, remote = tmp_path / "work", tmp_path / "remote"
    shutil.copytree(data.root, work, symlinks=True)
    assert_ok(run(work, "remote", "add", "backup", str(remote)))
    assert_ok(run(work, "push", "--remote", "backup"))
    clone = vfs.Repo.clone(str(remote), tmp_path / "clone", rev=1)
    assert (tmp_path / "clone" / "data" / "train.csv").read_bytes() == data.v1["data/train.csv"]
    clone.pull(2, ["data/train.csv"])
    assert (tmp_path / "clone" / "data" / "train.csv").read_bytes() == data.v2["data/train.csv"]
    fsck_clean(tmp_path / "clone")


def test_a_seek_before_the_start_is_the_error_a_file_on_disk_raises(
    data: Data, tmp_path: Path
) -> None:
    # it was a ValueError only: zipfile.is_zipfile of a file shorter than a zip's end
    # record (which seeks 22 bytes back from the end and catches OSError) raised it
    root, repo = copied(data, tmp_path, {"tiny.zip": b"PK"})
    repo.add("tiny.zip")
    repo.commit("tiny")
    assert zipfile.is_zipfile(repo.open("tiny.zip")) is False
    with repo.open("tiny.zip") as f:
        for caught in (OSError, ValueError):  # as a file on disk, and as io.BytesIO
            with pytest.raises(caught, match="negative seek position -1"):
                f.seek(-1)
        assert f.seek(-2, io.SEEK_END) == 0 and f.read() == b"PK"
    fsck_clean(root)


def test_a_chunk_a_remote_holds_damaged_is_named_on_the_remote(tmp_path: Path) -> None:
    # it said "object ... is corrupt (hash mismatch): run `dvfs fsck`", naming neither
    # the file nor the remote, and fsck here finds nothing: the damage is the remote's
    root, remote = tmp_path / "repo", tmp_path / "remote"
    Repository.init(root)
    write(root, {"big.bin": random.Random(7).randbytes(100_000)})
    repo = vfs.Repo(root)
    repo.add("big.bin")
    repo.commit("big")
    assert_ok(run(root, "remote", "add", "origin", str(remote)))
    assert_ok(run(root, "push"))
    (pack,) = (remote / "packs").iterdir()
    damaged = bytearray(pack.read_bytes())
    damaged[5000] ^= 0xFF
    pack.write_bytes(bytes(damaged))
    clone = vfs.Repo.clone(str(remote), tmp_path / "clone", no_checkout=True)
    for reader, where in (
        (vfs.Repo.remote(str(remote), cache_dir=tmp_path / "mirror"), str(remote)),
        (clone, "remote origin"),
    ):
        with pytest.raises(vfs.ObjectCorrupt) as caught:
            reader.read_bytes("big.bin")
        said = str(caught.value)
        assert said.startswith(f"reading v1:big.bin needs data from {where}, whose object ")
        assert f"in pack {pack.name[:12]}: nothing of it was kept; a push cannot mend" in said
        assert "dvfs fsck" not in said
    fsck_clean(tmp_path / "clone")


def test_a_chunk_a_remote_lacks_is_named_with_the_file_and_the_remote(tmp_path: Path) -> None:
    # it said "object ... is not in the local store (needed by a file; it is not on URL
    # either): `dvfs pull` it from a remote, or run `dvfs fsck`", also of a remote read
    # in place, which has no local store, and naming no file
    forge = Forge(tmp_path / "remote")
    ghost = hash_bytes(b"never stored")
    tree = forge.tree([file_entry(b"ghost.bin", ghost, 12), content_entry(b"ok.txt", b"ok\n")])
    forge.chunk(b"ok\n")
    forge.publish(forge.version(tree))
    clone = vfs.Repo.clone(forge.url, tmp_path / "clone", no_checkout=True)
    for reader, lacks in (
        (vfs.Repo.remote(forge.url, cache_dir=tmp_path / "mirror"), f"that {forge.url} lacks"),
        (clone, "neither in the local store nor on remote origin"),
    ):
        assert reader.read_bytes("ok.txt") == b"ok\n"
        with pytest.raises(vfs.ObjectMissing) as caught:
            reader.read_bytes("ghost.bin")
        said = str(caught.value)
        assert said.startswith(f"reading v1:ghost.bin needs data {lacks} (object {ghost.hex()})")
        assert "push it" in said and "dvfs pull" not in said and "dvfs fsck" not in said


def test_a_commit_refused_for_its_tag_or_params_stages_nothing_first(
    data: Data, tmp_path: Path
) -> None:
    # commit(..., all=True) staged every modified file, then refused the tag ("tag first
    # already exists") or the parameters: the refused commit's changes stayed staged
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    repo = vfs.Repo(root)
    repo.add(".")  # the copy's new stats, so that only the change below is a change
    write(root, {"notes.txt": b"changed\n"})
    staged = dict(repo.repository.index().entries)
    for bad in ({"tag": "first"}, {"tag": "a b"}, {"params": {"": 1}}):
        with pytest.raises(vfs.UsageError):
            repo.commit("x", all=True, **bad)
        assert dict(repo.repository.index().entries) == staged
    assert repo.commit("x", all=True, tag="second").tags == ("second",)
    fsck_clean(root)


def test_commit_amend_from_python_as_from_the_command_line(tmp_path: Path) -> None:
    """`Repo.commit(..., amend=True)` is `dvfs commit --amend`: the latest version
    replaced, its message kept when none is given, its parameters updated."""
    root = tmp_path / "r"
    assert_ok(run(tmp_path, "init", str(root)))
    write(root, {"a.txt": b"a"})
    with vfs.Repo(root) as repo:
        repo.add(["a.txt"])
        first = repo.commit("one", params={"lr": 1})
        write(root, {"b.txt": b"b"})
        repo.add(["b.txt"])
        amended = repo.commit(None, params={"bs": 8}, amend=True)
        assert (amended.number, amended.message, amended.params) == (1, "one", {"bs": 8, "lr": 1})
        assert amended.id != first.id and [v.number for v in repo.versions()] == [1]
        assert repo.read_bytes("b.txt", rev="v1") == b"b"
        with pytest.raises(TypeError, match="the message is text, not NoneType"):
            repo.commit(None)
    fsck_clean(root)


def test_a_remote_whose_version_pack_was_deleted_is_said_damaged(tmp_path: Path) -> None:
    # Repo.remote(url) raised RemoteNotFound("packs/<id> not found in <url>"), as for a
    # remote that does not exist, and clone said the same line: nothing said that the
    # remote's index lists a pack it lacks, nor what to do
    root, remote = tmp_path / "repo", tmp_path / "remote"
    Repository.init(root)
    write(root, {"a.txt": b"a\n"})
    repo = vfs.Repo(root)
    repo.add("a.txt")
    repo.commit("one")
    assert_ok(run(root, "remote", "add", "origin", str(remote)))
    assert_ok(run(root, "push"))
    (pack,) = (remote / "packs").iterdir()
    pack.unlink()
    with pytest.raises(vfs.RemoteError) as caught:
        vfs.Repo.remote(str(remote), cache_dir=tmp_path / "mirror")
    said = str(caught.value)
    assert not isinstance(caught.value, RemoteNotFound)
    assert f"pack {pack.name[:12]} is missing from file://{remote}" in said
    assert "the remote's index lists it: the remote is damaged" in said
    assert f"restore packs/{pack.name} on the remote from a backup" in said
    line = assert_error(run(tmp_path, "clone", str(remote), "clone"), "is damaged", code=1)
    assert line.startswith(f"dvfs: error: pack {pack.name[:12]} is missing")
    assert not (tmp_path / "clone").exists()
    fsck_clean(root)


def test_a_remote_read_takes_a_lost_packs_objects_from_another_that_lists_them(
    tmp_path: Path,
) -> None:
    """A pack deleted by hand whose objects another pack lists too: ``Repo.remote``
    read each from the first pack listing it and said the pack is missing. The
    versions, trees and chunks are read from the pack that is there now."""
    forge, first = listed_twice(tmp_path / "remote")
    (forge.root / "packs" / first).unlink()
    with vfs.Repo.remote(forge.url, cache_dir=tmp_path / "mirror") as repo:
        assert repo.read_bytes("data/a.txt") == b"hello\n"


def test_a_remote_read_in_place_takes_a_tilde_as_clone_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Repo.clone("~/rem", dir) read the home's rem, but Repo.remote("~/rem") looked for
    # a directory named "~" in the current one: "directory .../~/rem does not exist"
    root, home = tmp_path / "repo", tmp_path / "home"
    Repository.init(root)
    write(root, {"a.txt": b"a\n"})
    repo = vfs.Repo(root)
    repo.add("a.txt")
    repo.commit("one")
    assert_ok(run(root, "remote", "add", "origin", str(home / "rem")))
    assert_ok(run(root, "push"))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    there = vfs.Repo.remote("~/rem", cache_dir=tmp_path / "mirror")
    assert there.read_bytes("a.txt") == b"a\n"
    assert not (tmp_path / "~").exists()
    fsck_clean(root)


def test_a_repository_path_that_does_not_exist_is_named_not_its_parent_opened(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # vfs.Repo(root / "typo") opened the repository around it, and read its files as
    # if they were the mistyped repository's; dvfs mount and dvfs ui refuse such a path
    typo = data.root / "dta"
    with pytest.raises(vfs.NotARepository, match=rf"^{re.escape(str(typo))} does not exist"):
        vfs.Repo(typo)
    with pytest.raises(vfs.NotARepository, match="does not exist"):
        vfs.read_bytes("notes.txt", repo=typo)
    with pytest.raises(vfs.NotARepository, match="does not exist"):
        fsspec.filesystem("dvfs", repo=typo)
    # ~ is the home, as Repo.clone and Repo.remote take it (it was a directory named ~)
    monkeypatch.setenv("HOME", str(data.root.parent))
    monkeypatch.chdir(data.root)
    assert vfs.Repo(f"~/{data.root.name}/data").root == data.root
    with pytest.raises(vfs.NotARepository, match=r"^\S*/nowhere does not exist"):
        vfs.Repo("~/nowhere")
    assert vfs.Repo(data.root / "data" / "train.csv").root == data.root  # a file in one


def test_diff_says_what_changed_as_dvfs_diff_does(data: Data, tmp_path: Path) -> None:
    # a chmod +x, or a file that became a link, was a FileChange "modified" of the
    # same size and kind, where `dvfs diff --json` gives old_mode/new_mode and old_kind
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    repo = vfs.Repo(root)
    was = repo.info("notes.txt").mode
    (root / "notes.txt").chmod(was | 0o111)
    (root / "data" / "train.csv").unlink()
    (root / "data" / "train.csv").symlink_to("labels.csv")
    expected = [
        ("data/train.csv", "link", "file", None, None),
        ("notes.txt", "file", None, was, was | 0o111),
    ]
    here = [(c.path, c.kind, c.old_kind, c.old_mode, c.new_mode) for c in repo.diff()]
    assert here == expected
    cli = assert_ok(run(root, "diff", "--json")).json()["changes"]
    shown = [
        (c["path"], c["kind"], c.get("old_kind"), c.get("old_mode"), c.get("new_mode")) for c in cli
    ]
    assert shown == [(p, k, o, m and oct(m), n and oct(n)) for p, k, o, m, n in expected]
    repo.commit("changed", all=True)
    done = [(c.path, c.kind, c.old_kind, c.old_mode, c.new_mode) for c in repo.diff("v2", "v3")]
    assert done == expected
    fsck_clean(root)


def test_api_errors_and_warnings_escape_control_characters_as_the_cli_does(
    tmp_path: Path,
) -> None:
    """A name holding a newline or an escape sequence, given to the Python API: its
    error printed or logged was two lines, or rewrote the terminal, where the CLI
    shows `a\\nb` on one line."""
    root = tmp_path / "repo"
    assert_ok(run(tmp_path, "init", str(root)))
    with vfs.Repo(root) as repo:
        for name, shown in (("a\nb", "a\\nb"), ("c\x1b[2Jd", "c\\033[2Jd")):
            with pytest.raises(vfs.DvfsError) as caught:
                repo.add([str(root / name)])
            said = str(caught.value)
            assert said == f'"{root}/{shown}" does not exist and is not tracked: nothing was staged'
            line = assert_error(run(root, "add", name), code=2)
            assert (
                line
                == f'dvfs: error: "{shown}" does not exist and is not tracked: nothing was staged'
            )
        (root / ".dvfsignore").write_text("*.bin\n")
        with pytest.warns(vfs.DvfsWarning) as warned, vfs.track(repo, message="x") as r:
            (r.output("models") / "m\nx.bin").parent.mkdir()
            (root / "models" / "m\nx.bin").write_bytes(b"weights")
            (root / "models" / "config.yaml").write_text("depth: 18\n")
        [w] = warned
        assert "\n" not in str(w.message) and "m\\nx.bin" in str(w.message)
    fsck_clean(root)


def test_a_file_named_with_a_trailing_slash_is_refused_by_add_as_by_the_cli(
    data: Data, tmp_path: Path
) -> None:
    # repo.add("notes.txt/") staged the file (the path was joined as a pathlib.Path,
    # which drops the "/"), where `dvfs add notes.txt/` refuses it: the "/" names a directory
    root, repo = copied(data, tmp_path, {"notes.txt": b"changed\n"})
    staged = dict(repo.repository.index().entries)
    cli = assert_error(run(root, "add", "notes.txt/"))
    for path in ("notes.txt/", "notes.txt/.", "data/link.csv/"):
        with pytest.raises(vfs.UsageError, match=r"is (a file|a symbolic link), not a directory"):
            repo.add(path)
    with pytest.raises(vfs.UsageError) as refused:
        repo.add(["notes.txt/"])
    assert f"dvfs: error: {refused.value}" == cli
    assert dict(repo.repository.index().entries) == staged  # nothing staged
    repo.add("data/")  # a directory's "/" is taken as a directory's
    assert repo.add("notes.txt").files == 1
    fsck_clean(root)


def test_add_given_no_path_is_refused_as_by_the_cli(data: Data, tmp_path: Path) -> None:
    # repo.add([]) (a filter that matched nothing) returned as if it had staged
    root, repo = copied(data, tmp_path, {"notes.txt": b"changed\n"})
    staged = dict(repo.repository.index().entries)
    assert run(root, "add").code != 0
    empty: list[str] = []
    for nothing in (empty, tuple(empty), iter(empty)):
        with pytest.raises(vfs.UsageError, match=r"repo\.add\(\) was given no path"):
            repo.add(nothing)
    assert dict(repo.repository.index().entries) == staged
    fsck_clean(root)


def test_the_first_commit_refuses_a_tag_named_as_its_branch(tmp_path: Path) -> None:
    # before the branch had a version, commit(tag="main") made tag main beside branch
    # main, which `main` then never reads (the CLI's `commit --tag main` did too)
    for how in ("api", "cli"):
        root = tmp_path / how
        assert_ok(run(tmp_path, "init", str(root)))
        write(root, {"a.txt": b"a\n"})
        repo = vfs.Repo(root)
        repo.add("a.txt")
        message = "tag main would share its name with branch main"
        if how == "api":
            with pytest.raises(vfs.UsageError, match=message):
                repo.commit("first", tag="main")
        else:
            assert message in assert_error(run(root, "commit", "-m", "first", "--tag", "main"))
        assert repo.versions() == [] and not (root / ".dvfs" / "refs" / "tags" / "main").exists()
        assert repo.commit("first", tag="first").tags == ("first",)
        fsck_clean(root)


def test_an_array_of_objects_is_refused_as_a_parameter_not_recorded_by_address(
    data: Data, tmp_path: Path
) -> None:
    # numpy.array([object()]) was taken as a number array, and recorded as the text
    # of its member: "<object object at 0x7f...>", an address that changes every run
    root, repo = copied(data, tmp_path, {"notes.txt": b"arrays\n"})
    head = repo.versions(limit=1)
    bad = np.array([1, object()], dtype=object)
    with pytest.raises(TypeError, match=r"^parameter w\[1\] is a object, which a version cannot"):
        repo.commit("arrays", params={"w": bad}, all=True)
    with pytest.raises(TypeError, match=r"^parameter m\.w\[0\]\[0\] is a complex"):
        repo.commit("arrays", params={"m": {"w": np.array([[1j]])}}, all=True)
    assert repo.versions(limit=1) == head
    v = repo.commit("arrays", params={"w": np.array([[1, 2]]), "n": np.array(["a"])}, all=True)
    assert v.params == {"w": [[1, 2]], "n": ["a"]}
    fsck_clean(root)


def test_two_parameter_names_recorded_alike_are_refused_not_one_dropped(
    data: Data, tmp_path: Path
) -> None:
    # {1: "a", "1": "b"}: both names are recorded as "1", and the version kept only
    # "b", without a word; so did `dvfs commit --params-file` of `1: a` and `"1": b`
    root, repo = copied(data, tmp_path, {"notes.txt": b"keys\n"})
    head = repo.versions(limit=1)
    given: list[dict[Any, Any]] = [{1: "a", "1": "b"}, {"opt": {"2": "x", 2: "y"}}]
    for params in given:  # (names that are not text: a config's, as Python allows)
        with pytest.raises(vfs.UsageError, match=r"parameter name \d is given twice \("):
            repo.commit("keys", params=params, all=True)
    (tmp_path / "p.yaml").write_text('1: a\n"1": b\n')
    line = assert_error(
        run(root, "commit", "-a", "-m", "keys", "--params-file", str(tmp_path / "p.yaml"))
    )
    assert "parameter name 1 is given twice (1 and '1', recorded as one name)" in line
    assert repo.versions(limit=1) == head
    ok: dict[Any, Any] = {1: "a", "2": "b"}
    assert repo.commit("keys", params=ok, all=True).params == {"1": "a", "2": "b"}
    fsck_clean(root)


def test_a_closed_file_answers_every_call_with_value_error_as_open_files_do(
    data: Data, tmp_path: Path
) -> None:
    # readable() and seekable() of a closed file said True, where a file of open() (and
    # io.BytesIO) raise ValueError: a closed file is no longer readable
    (tmp_path / "real").write_bytes(b"x")
    for mode in ("rb", "r"):
        with open(tmp_path / "real", mode) as real:
            pass
        files: list[IO[Any] | io.IOBase] = [
            real, data.repo.open("notes.txt", mode=mode), data.repo.file("notes.txt"),
        ]  # fmt: skip
        for f in files:
            f.close()
            for call in (f.readable, f.seekable, f.tell, f.read, functools.partial(f.seek, 0)):
                with pytest.raises(ValueError):
                    call()
            assert f.closed and not f.writable()


def test_the_raw_file_seeks_to_whole_offsets_only_as_io_files_do(data: Data) -> None:
    # Repo.file(...).seek(1.5) moved to 1.5, and the next read failed inside ("slice
    # indices must be integers"); io.FileIO and io.BytesIO refuse the offset itself
    want = data.v2["notes.txt"]
    with data.repo.file("notes.txt") as f:
        assert f.seek(2) == 2
        for bad in (1.5, "1", None):
            with pytest.raises(TypeError):
                f.seek(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError):
                io.BytesIO(want).seek(bad)  # type: ignore[arg-type]
        with pytest.raises(TypeError):
            f.seek(0, 1.0)  # type: ignore[arg-type]
        assert f.tell() == 2 and f.read(3) == want[2:5]
        assert f.seek(np.int64(1)) == 1 and f.read(2) == want[1:3]  # an index is an offset
        assert f.seek(-1, io.SEEK_END) == len(want) - 1


def test_a_missing_path_is_an_os_error_with_the_errno_the_kernel_gives(data: Data) -> None:
    # FileNotFoundError("data/nope.csv does not exist in v1") had errno None: code that
    # tells a missing file by `exc.errno == errno.ENOENT`, as for open(), missed it
    for call, code in (
        (lambda: data.repo.open("data/nope.csv", "v1"), errno.ENOENT),
        (lambda: vfs.read_bytes("data", repo=data.repo), errno.EISDIR),
        (lambda: data.repo.read_bytes("notes.txt/"), errno.ENOTDIR),
    ):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.errno == code
        assert not str(raised.value).startswith("[Errno")  # the message, as before
    assert str(raised.value) == "notes.txt/: notes.txt is a file in v2, not a directory"
    sent = vfs.errors.from_kind("PathNotFound", "x")  # as the mount's control socket makes it
    assert isinstance(sent, FileNotFoundError) and sent.errno == errno.ENOENT


def test_parameters_holding_themselves_are_refused_in_one_line(data: Data, tmp_path: Path) -> None:
    # a mapping that holds itself (a config's back-reference), or lists nested 5,000
    # deep, failed with RecursionError ("maximum recursion depth exceeded")
    root, repo = copied(data, tmp_path, {"notes.txt": b"loops\n"})
    head = repo.versions(limit=1)
    loop: dict[str, Any] = {"lr": 0.1}
    loop["self"] = loop
    deep: list[Any] = []
    for _ in range(5_000):
        deep = [deep]
    for params in ({"opt": loop}, {"deep": deep}):
        with pytest.raises(vfs.UsageError, match=r"^parameters nest deeper than 32 levels$"):
            repo.commit("loops", params=params, all=True)
    assert repo.versions(limit=1) == head
    fsck_clean(root)


def test_a_tag_named_as_a_remotes_branch_is_refused_by_commit_as_by_dvfs_tag(
    data: Data, tmp_path: Path
) -> None:
    # with a remote origin, commit(tag="origin/main") made a tag that `origin/main`
    # never reads (the remote's branch comes first), where `dvfs tag origin/main`
    # refuses the name; `dvfs commit --tag origin/main` took it too
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    assert_ok(run(root, "remote", "add", "backup", str(tmp_path / "remote")))
    write(root, {"notes.txt": b"tagged\n"})
    repo = vfs.Repo(root)
    head = repo.versions(limit=1)
    message = "tag backup/main would share its name with remote backup's branch main"
    assert message in assert_error(run(root, "tag", "backup/main"))
    with pytest.raises(vfs.UsageError, match=message):
        repo.commit("tagged", tag="backup/main", all=True)
    line = assert_error(run(root, "commit", "-a", "-m", "tagged", "--tag", "backup/x"))
    assert "tag backup/x would share its name with remote backup's branch x" in line
    assert repo.versions(limit=1) == head and not (root / ".dvfs/refs/tags/backup").exists()
    assert repo.commit("tagged", tag="backups/x", all=True).tags == ("backups/x",)
    fsck_clean(root)


def test_a_version_another_process_committed_is_read_by_its_id(data: Data, tmp_path: Path) -> None:
    # a Repo opened before another process committed found the new version by HEAD or
    # its branch, but not by its id ("unknown revision"), which names it exactly
    root = tmp_path / "copy"
    shutil.copytree(data.root, root, symlinks=True)
    repo = vfs.Repo(root)
    assert repo.read_bytes("notes.txt", "HEAD") == data.v2["notes.txt"]
    write(root, {"notes.txt": b"third\n"})
    assert_ok(run(root, "commit", "-a", "-m", "third"))
    with vfs.Repo(root) as other:
        new = other.versions(limit=1)[0]
    assert new.number == 3
    for rev in (new.id, new.id[:8]):
        assert repo.read_bytes("notes.txt", rev) == b"third\n"
    assert repo.show(new.id[:8]).message == "third"
    repo.close()
    fsck_clean(root)
