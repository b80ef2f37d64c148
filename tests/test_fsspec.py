"""``dvfs://`` through fsspec, with the readers people use: pandas and pyarrow.

The repository of ``tests/support/api.py`` is made once for the module; fsspec finds
the filesystem through the entry point the package installs, as it would for a user.
The remote test pushes it to a real S3 server (SeaweedFS) and counts requests.
"""

from __future__ import annotations

import gc
import io
import json
import multiprocessing
import os
import pickle
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fsspec
import pandas as pd
import pyarrow.dataset as ds
import pytest

import vfs
from tests.support.api import Data, make_data, push_all
from tests.support.cli import (
    add_in_process,
    assert_ok,
    commit_files,
    commit_in_process,
    fsck_clean,
    init_repo,
    run,
)
from tests.support.s3server import S3Server
from tests.support.workers import cat_labels
from vfs.filesystem import DvfsFileSystem, ReadOnlyError
from vfs.repo.repository import Repository


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Data:
    return make_data(tmp_path_factory.mktemp("fsspec") / "repo")


def frame(content: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(content))


def test_pandas_reads_a_version_through_the_url(data: Data) -> None:
    options = {"repo": str(data.root)}
    old = pd.read_csv("dvfs://v1@/data/train.csv", storage_options=options)
    pd.testing.assert_frame_equal(old, frame(data.v1["data/train.csv"]))
    head = pd.read_csv("dvfs://data/train.csv", storage_options=options)  # HEAD: v2
    assert len(head) == 32_000
    tagged = pd.read_csv("dvfs://first@/data/labels.csv", storage_options={"repo": data.repo})
    assert list(tagged["label"]) == ["cat", "dog"]
    with fsspec.open("dvfs:///data/train.csv", "rt", repo=str(data.root), rev="v1") as f:
        assert f.readline() == "id,city,score\n"
    assert type(fsspec.filesystem("dvfs", repo=str(data.root))) is DvfsFileSystem


def test_pyarrow_reads_a_parquet_directory_of_a_version(data: Data) -> None:
    fs = fsspec.filesystem("dvfs", repo=str(data.root), rev="v1")
    table = ds.dataset("/data/parquet", format="parquet", filesystem=fs).to_table()
    assert table.num_rows == 1500
    assert sorted(table.column("id").to_pylist()) == list(range(1500))
    # named with its revision, the directory lists files under that name: pyarrow
    # refuses a file listed outside the directory it asked for
    again = ds.dataset("v1@/data/parquet", format="parquet", filesystem=fs).to_table()
    assert again.equals(table)
    read = pd.read_parquet("dvfs://v1@/data/parquet", storage_options={"repo": str(data.root)})
    assert sorted(read["id"]) == list(range(1500))


def test_ls_info_glob_find_and_ranges(data: Data) -> None:
    fs = fsspec.filesystem("dvfs", repo=str(data.root), rev="v2")
    assert fs.ls("/", detail=False) == ["/data", "/notes.txt"]
    info = fs.info("dvfs://v2@/data/train.csv")
    assert (info["name"], info["type"], info["size"]) == (
        "v2@/data/train.csv", "file", len(data.v2["data/train.csv"]),
    )  # fmt: skip
    assert fs.info("/data/train.csv")["name"] == "/data/train.csv"
    assert fs.ls("v2@/data", detail=False)[:2] == ["v2@/data/labels.csv", "v2@/data/link.csv"]
    assert fs.find("v2@/data/parquet") == [
        "v2@/data/parquet/part-0.parquet", "v2@/data/parquet/part-1.parquet",
    ]  # fmt: skip
    assert fs._parent("v2@/data/parquet") == "v2@/data" and fs._parent("v2@/data") == "v2@/"
    assert fs.info("/data/link.csv")["destination"] == "labels.csv"
    assert fs.info("/data")["type"] == "directory" and fs.isdir("/") and not fs.exists("/nope")
    assert fs.glob("/data/*.csv") == ["/data/labels.csv", "/data/link.csv", "/data/train.csv"]
    assert fs.glob("/**/*.parquet") == [
        "/data/parquet/part-0.parquet", "/data/parquet/part-1.parquet",
    ]  # fmt: skip
    assert fs.find("/data/parquet") == fs.glob("/**/*.parquet")
    files = fsspec.open_files("dvfs://v1@/data/*.csv", repo=str(data.root))
    assert [f.path for f in files] == [
        "v1@/data/labels.csv", "v1@/data/link.csv", "v1@/data/train.csv",
    ]  # fmt: skip
    with files[0] as f:
        assert f.read() == data.v1["data/labels.csv"]
    want = data.v2["data/train.csv"]
    assert fs.cat_file("/data/train.csv", 1000, 1100) == want[1000:1100]
    assert fs.cat_file("/data/train.csv", -50) == want[-50:]
    assert fs.cat_file("/data/train.csv", start=len(want) + 10) == b""
    # dask's read_csv splits a file into blocks at line ends with read_block
    block = fs.read_block("/data/train.csv", 1000, 5000, delimiter=b"\n")
    start = want.index(b"\n", 999) + 1
    assert block == want[start : want.index(b"\n", 5999) + 1]
    assert fs.tail("/data/train.csv", 20) == want[-20:]
    with pytest.raises(FileNotFoundError, match=r"data/nope\.csv does not exist in v2"):
        fs.cat_file("/data/nope.csv")


def test_writes_are_refused_with_a_way_out(data: Data) -> None:
    fs = fsspec.filesystem("dvfs", repo=str(data.root))
    attempts: list[Callable[[], object]] = [
        lambda: fs.open("/data/train.csv", "wb"), lambda: fs.pipe("/x.csv", b"1"),
        lambda: fs.rm("/notes.txt"), lambda: fs.mkdir("/new"), lambda: fs.touch("/x"),
        lambda: fs.mv("/notes.txt", "/n.txt"), lambda: fs.put(__file__, "/t.py"),
    ]  # fmt: skip
    for attempt in attempts:
        with pytest.raises(ReadOnlyError, match=r"read-only .*repo\.add\(\) and repo\.commit\(\)"):
            attempt()
    with fs.open("/notes.txt", "br") as f:  # a read, the letters in either order
        assert f.read() == data.v2["notes.txt"]
    with pytest.raises(PermissionError):
        pd.DataFrame({"a": [1]}).to_csv("dvfs://out.csv", storage_options={"repo": str(data.root)})
    assert vfs.Repo(data.root).versions()[0].number == 2  # nothing was recorded


def test_a_path_naming_a_revision_is_read_in_it(data: Data) -> None:
    fs = fsspec.filesystem("dvfs", repo=str(data.root), rev="v1")
    assert fs.cat_file("first@/data/labels.csv") == data.v1["data/labels.csv"]  # the same version
    assert fs.cat_file("v2@/notes.txt") == data.v2["notes.txt"]
    assert fs.ls("v2@/", detail=False) == ["v2@/data", "v2@/notes.txt"]
    assert fs.ls("/", detail=False) == ["/data"]  # rev=: v1, without notes.txt
    fs.cat_file("main@/notes.txt")  # (main and v2: one version, each named as asked)
    for path, named in (("v2@/nope", "v2"), ("main@/nope", "v2 (main)"), ("/nope", "v1")):
        with pytest.raises(
            FileNotFoundError, match=rf"^nope does not exist in {re.escape(named)}$"
        ):
            fs.cat_file(path)
    with pytest.raises(vfs.RevisionNotFound):
        pd.read_csv("dvfs://v7@/data/train.csv", storage_options={"repo": str(data.root)})


def test_urls_of_several_revisions_are_each_read_in_their_own(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # fsspec.open_files makes one filesystem for a list of URLs, with the first one's
    # revision: a URL of another revision was refused once the first file was read,
    # and dvfs:///PATH (HEAD) was read in the first URL's revision, silently
    root = tmp_path / "repo"
    shutil.copytree(data.root, root, symlinks=True)
    old, new = data.v1["data/train.csv"], data.v2["data/train.csv"]
    urls = ["dvfs://v1@/data/train.csv", "dvfs:///data/train.csv", "dvfs://v2@/notes.txt"]
    files = fsspec.open_files(urls, repo=str(root))
    assert [f.path for f in files] == ["v1@/data/train.csv", "/data/train.csv", "v2@/notes.txt"]
    for f, want in zip(files, [old, new, data.v2["notes.txt"]], strict=True):
        with f as h:
            assert h.read() == want
    with fsspec.open_files(urls[1::-1], repo=str(root)) as both:
        assert [h.read() for h in both] == [new, old]
    monkeypatch.chdir(root)
    with fsspec.open_files(urls[:2]) as both:  # (the repository around here)
        assert [len(pd.read_csv(h)) for h in both] == [30_000, 32_000]
    # each revision stays the version it was when first named, pickled or not
    fs = fsspec.filesystem("dvfs", repo=str(root), rev="v1")
    before = fs.cat_file("main@/data/labels.csv")
    (root / "data" / "labels.csv").write_bytes(b"id,label\n1,owl\n")
    assert_ok(run(root, "commit", "-a", "-m", "owl"))  # main moves on
    again = pickle.loads(pickle.dumps(fs))
    from_json = fsspec.AbstractFileSystem.from_json(fs.to_json())
    for each in (fs, again, from_json):
        assert each.cat_file("main@/data/labels.csv") == before
        assert each.cat_file("/data/labels.csv") == data.v1["data/labels.csv"]
        assert each.cat_file("HEAD@/data/labels.csv") == b"id,label\n1,owl\n"  # first named now
    assert fs.unstrip_protocol("main@/data") == f"dvfs://{fs._named('v2@/')[2][:12]}@/data"
    fsck_clean(root)


@pytest.fixture(scope="module")
def pushed(data: Data, s3_server: S3Server) -> str:
    """The repository pushed (every branch and tag) to a fresh bucket: its URL."""
    return push_all(data.root, s3_server)


def test_a_remote_read_in_place_fetches_only_the_chunks_read(
    data: Data, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    options = {"repo": pushed, "endpoint_url": s3_env.endpoint, "cache_dir": str(tmp_path)}
    fs = fsspec.filesystem("dvfs", rev="main", **options)
    assert fs.ls("/data/parquet", detail=False) == [
        "/data/parquet/part-0.parquet", "/data/parquet/part-1.parquet",
    ]  # fmt: skip
    want = data.v2["data/train.csv"]
    chunks = data.chunks("data/train.csv", "v2")
    start = sum(c.size for c in chunks[:5])  # the sixth and seventh chunks exactly
    end = start + chunks[5].size + chunks[6].size
    before = fs.repo.requests
    assert fs.cat_file("/data/train.csv", start, end) == want[start:end]
    assert fs.repo.requests == before + 2
    table = ds.dataset("/data/parquet", format="parquet", filesystem=fs).to_table()
    assert table.num_rows == 1500
    old = pd.read_csv("dvfs://v1@/data/train.csv", storage_options=options)
    pd.testing.assert_frame_equal(old, frame(data.v1["data/train.csv"]))


def test_fsspec_caches_keep_what_was_read_from_a_remote(
    data: Data, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    want = data.v2["data/train.csv"]
    options = {"repo": pushed, "endpoint_url": s3_env.endpoint, "cache_dir": str(tmp_path / "m")}
    fs = fsspec.filesystem("dvfs", rev="v2", **options)
    blocks = fsspec.filesystem(
        "blockcache", fs=fs, cache_storage=str(tmp_path / "blocks"), block_size=32768
    )
    with blocks.open("/data/train.csv") as f:
        f.seek(100_000)
        assert f.read(5000) == want[100_000:105_000]
    before = fs.repo.requests
    with blocks.open("/data/train.csv") as f:  # the same blocks: read from the local file
        f.seek(100_000)
        assert f.read(5000) == want[100_000:105_000]
    assert fs.repo.requests == before
    for cache in ("blockcache", "simplecache", "filecache"):
        url = f"{cache}::dvfs://v1@/data/train.csv"
        kept = {"cache_storage": str(tmp_path / cache)}
        with fsspec.open(url, dvfs=options, **{cache: kept}) as f:
            assert f.read() == data.v1["data/train.csv"]
    # fsspec's own file options give fsspec's buffered file, with that cache
    with fs.open("/data/train.csv", block_size=4096, cache_type="bytes") as f:
        f.seek(-50, 2)
        assert f.read() == want[-50:] and f.size == len(want)


def test_a_url_revision_and_the_rev_option_are_checked_against_each_other(data: Data) -> None:
    root = str(data.root)
    # fsspec once merged the two into one keyword: a TypeError from dict()
    with fsspec.open("dvfs://first@/data/labels.csv", repo=root, rev="v1") as f:
        assert f.read() == data.v1["data/labels.csv"]  # one version, named two ways
    with pytest.raises(ValueError, match=r"URL names revision v1 .* but rev='v2' names another"):
        pd.read_csv("dvfs://v1@/data/train.csv", storage_options={"repo": root, "rev": "v2"})


def test_a_pickled_filesystem_reads_its_version_in_another_process(
    data: Data, tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(data.root, root, symlinks=True)
    fs = fsspec.filesystem("dvfs", repo=vfs.Repo(root), rev="main")  # a Repo pickles too
    by_path = fsspec.filesystem("dvfs", repo=str(root), rev="main")
    before = fs.cat_file("/data/labels.csv")
    (root / "data" / "labels.csv").write_bytes(b"id,label\n1,owl\n")
    assert_ok(run(root, "commit", "-a", "-m", "owl"))  # main moves on
    # a DataLoader's workers unpickle the filesystem: they read its version, not the
    # branch's new tip (it said "cannot pickle '_thread.RLock' object" with a Repo)
    assert pickle.loads(pickle.dumps(by_path)).cat_file("/data/labels.csv") == before
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.map(cat_labels, [fs, by_path]) == [before, before]
    fresh = fsspec.filesystem("dvfs", repo=str(root), rev="main")
    assert fresh.cat_file("/data/labels.csv") == b"id,label\n1,owl\n"


def test_a_link_to_a_file_is_read_as_that_file_by_dataset_readers(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    assert_ok(run(tmp_path, "init", str(root)))
    (root / "parts").mkdir()
    (root / "pool").mkdir()
    pd.DataFrame({"id": [1, 2]}).to_parquet(root / "parts" / "p0.parquet")
    pd.DataFrame({"id": [3]}).to_parquet(root / "pool" / "p1.parquet")
    (root / "parts" / "p1.parquet").symlink_to("../pool/p1.parquet")
    (root / "parts" / "gone.parquet").symlink_to("../nowhere.parquet")
    (root / "linked").symlink_to("pool")  # a link to a directory
    assert_ok(run(root, "add", "."))
    assert_ok(run(root, "commit", "-m", "parts"))
    fs = fsspec.filesystem("dvfs", repo=str(root))
    info = fs.info("/parts/p1.parquet")
    assert (info["type"], info["size"], info["islink"], info["destination"]) == (
        "file", (root / "pool" / "p1.parquet").stat().st_size, True, "../pool/p1.parquet",
    )  # fmt: skip
    assert fs.info("/parts/gone.parquet")["type"] == "link"  # leads nowhere
    # pyarrow skipped a "link" entry: the dataset had the rows of p0 alone
    table = ds.dataset("/parts", format="parquet", filesystem=fs).to_table()
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3]
    read = pd.read_parquet("dvfs://parts", storage_options={"repo": str(root)})
    assert sorted(read["id"]) == [1, 2, 3]
    # a path through a link to a directory was said not to exist, as the kernel
    # (and so a mount) follows it
    pooled = (root / "pool" / "p1.parquet").read_bytes()
    assert fs.cat_file("/linked/p1.parquet") == pooled
    assert pd.read_parquet("dvfs://linked/p1.parquet", storage_options={"repo": str(root)}).shape
    assert fs.ls("/linked", detail=False) == ["/linked/p1.parquet"]
    repo = vfs.Repo(root)
    assert repo.info("linked/p1.parquet").size == len(pooled)
    assert [f.path for f in repo.walk("HEAD", "linked")] == ["linked/p1.parquet"]
    assert repo.info("linked").type == "link"  # a link named last is not followed
    with pytest.raises(FileNotFoundError, match="its links lead to pool/nope, which does not"):
        repo.read_bytes("linked/nope")


def test_a_missing_path_is_named_with_the_revision_the_filesystem_was_given(data: Data) -> None:
    # it named the version by its 64-digit id: "does not exist in v1 (2f0c...64 digits)"
    for rev, named in (("first", "v1 (first)"), ("v1", "v1"), (None, "v2 (HEAD)")):
        fs = fsspec.filesystem("dvfs", repo=str(data.root), rev=rev)
        calls: list[tuple[str, tuple[Any, ...]]] = [
            ("info", ("/data/nope.csv",)), ("open", ("/data/nope.csv",)),
            ("cat_file", ("/data/nope.csv", 0, 3)), ("ls", ("/nope",)),
        ]  # fmt: skip
        for method, args in calls:
            with pytest.raises(FileNotFoundError) as missing:
                getattr(fs, method)(*args)
            assert str(missing.value).endswith(f"does not exist in {named}"), missing.value
    with pytest.raises(FileNotFoundError, match=r"/nope\.csv does not exist in v1 \(first\)$"):
        pd.read_csv("dvfs://first@/data/nope.csv", storage_options={"repo": str(data.root)})
    v1 = data.repo.versions("v1")[0]
    with pytest.raises(FileNotFoundError, match=f"does not exist in v1 \\({v1.id[:10]}\\)$"):
        data.repo.read_bytes("data/nope.csv", rev=v1)  # a VersionInfo: its id, shortened


def test_a_link_to_a_directory_is_that_directory_unless_it_loops(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    assert_ok(run(tmp_path, "init", str(root)))
    for d in ("ds/set", "ds/kept"):
        (root / d).mkdir(parents=True)
    pd.DataFrame({"id": [1, 2]}).to_parquet(root / "ds" / "set" / "p1.parquet")
    pd.DataFrame({"id": [3, 4]}).to_parquet(root / "ds" / "kept" / "p0.parquet")
    (root / "ds" / "set" / "linked").symlink_to("../kept")  # a partition kept elsewhere
    (root / "ds" / "set" / "loop").symlink_to("..")  # leads to where it is: not entered
    (root / "ds" / "kept" / "back").symlink_to("../set")  # set/linked/back is set again
    assert_ok(run(root, "add", "."))
    assert_ok(run(root, "commit", "-m", "parts"))
    fs = fsspec.filesystem("dvfs", repo=str(root))
    # it was "link", which pyarrow skipped: the dataset had the rows of p1 alone, where
    # the checkout (fsspec's local filesystem) has all four
    info = fs.info("/ds/set/linked")
    assert (info["type"], info["islink"], info["destination"]) == ("directory", True, "../kept")
    assert fs.isdir("/ds/set/linked") and fs.info("/ds/set/loop")["type"] == "link"
    assert fs.info("/ds/set/linked/back")["type"] == "link"  # set, which the path is in
    assert fs.info("/ds/kept/back")["type"] == "directory"
    assert fs.find("/ds/set") == [
        "/ds/set/linked/back", "/ds/set/linked/p0.parquet", "/ds/set/loop", "/ds/set/p1.parquet",
    ]  # fmt: skip
    table = ds.dataset("/ds/set", format="parquet", filesystem=fs).to_table()
    assert sorted(table.column("id").to_pylist()) == [1, 2, 3, 4]
    read = pd.read_parquet("dvfs://ds/set", storage_options={"repo": str(root)})
    assert sorted(read["id"]) == [1, 2, 3, 4]


def test_a_pickled_filesystem_reads_its_repository_from_another_directory(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the repository around the current directory went pickled as "." (or nothing):
    # a process working elsewhere (Ray's workers do) read another repository, or none
    # ("not a dvfs repository (or any parent): run `dvfs init`")
    monkeypatch.chdir(data.root / "data")
    blobs = [pickle.dumps(fsspec.filesystem("dvfs", rev="first")),
             pickle.dumps(fsspec.filesystem("dvfs", repo=".", rev="first"))]  # fmt: skip
    monkeypatch.chdir(tmp_path)
    for blob in blobs:
        fs = pickle.loads(blob)
        assert fs.cat_file("/data/labels.csv") == data.v1["data/labels.csv"]
        assert json.loads(fs.to_json())["repo"] == str(data.root)  # fsspec's JSON form too


def test_the_json_form_reads_the_same_version_from_anywhere(
    data: Data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # to_json of a filesystem made with a vfs.Repo failed ("Object of type Repo is not
    # JSON serializable"); one made with repo="." went as "." and read the repository
    # around whichever directory from_json ran in
    root = tmp_path / "repo"
    shutil.copytree(data.root, root, symlinks=True)
    monkeypatch.chdir(root / "data")
    before = data.v2["data/labels.csv"]
    texts = [fsspec.filesystem("dvfs", repo=vfs.Repo(root), rev="main").to_json(),
             fsspec.filesystem("dvfs", repo=".", rev="main").to_json()]  # fmt: skip
    (root / "data" / "labels.csv").write_bytes(b"id,label\n1,owl\n")
    assert_ok(run(root, "commit", "-a", "-m", "owl"))  # main moves on
    monkeypatch.chdir(tmp_path)
    for text in texts:
        assert json.loads(text)["repo"] == str(root)
        fs = fsspec.AbstractFileSystem.from_json(text)
        assert fs.rev == "main" and fs.cat_file("/data/labels.csv") == before


def test_the_json_form_of_a_remote_keeps_its_endpoint_and_cache(
    data: Data, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    cache = tmp_path / "m"
    remote = vfs.Repo.remote(pushed, endpoint_url=s3_env.endpoint, cache_dir=cache)
    text = fsspec.filesystem("dvfs", repo=remote, rev="v1").to_json()
    remote.close()
    options = json.loads(text)
    assert (options["repo"], options["endpoint_url"], options["cache_dir"]) == (
        pushed, s3_env.endpoint, str(cache),
    )  # fmt: skip
    fs = fsspec.AbstractFileSystem.from_json(text)
    assert fs.cat_file("/data/train.csv") == data.v1["data/train.csv"]
    fs.repo.close()


def test_a_block_size_or_cache_fsspec_cannot_read_with_is_refused(data: Data) -> None:
    # block_size=-1 (as open's buffering=-1 means the default) read the file without
    # its last byte, silently; an unknown cache_type was a KeyError from inside fsspec
    fs = fsspec.filesystem("dvfs", repo=data.repo)
    for size in (-1, "4096", 2.5):
        with pytest.raises(ValueError, match=r"^block_size=.*: give a number of bytes"):
            fs.open("/data/labels.csv", block_size=size)
    with pytest.raises(ValueError, match=r"^cache_type='bogus': fsspec's caches are 'none'"):
        fs.open("/data/labels.csv", cache_type="bogus")
    for size in (0, 4):
        with fs.open("/data/labels.csv", block_size=size) as f:
            assert f.read() == data.v2["data/labels.csv"]


def test_a_path_that_is_not_text_is_a_type_error_that_says_so(data: Data) -> None:
    # fs.ls(5) and fs.info(None) said "'int' object has no attribute 'startswith'"
    fs = fsspec.filesystem("dvfs", repo=data.repo)
    calls: list[Callable[[], Any]] = [
        lambda: fs.ls(5), lambda: fs.info(None), lambda: fs.open(b"/notes.txt"),
    ]  # fmt: skip
    for call in calls:
        with pytest.raises(TypeError, match=r"^a dvfs path is text \(/data/train\.csv\), not "):
            call()
    assert fs.cat_file(Path("/notes.txt")) == data.v2["notes.txt"]  # a path object is text


def descriptors(under: Path) -> tuple[int, int]:
    """(descriptors this process has open in the repository that holds ``under``,
    those of files under ``under``). Only the repository's are counted: other tests'
    servers and threads in the same process open and close descriptors of their own."""
    repo = str(under.parent.parent)  # (ROOT/.dvfs/objects)
    total = inside = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            where = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        total += where == repo or where.startswith(f"{repo}/")
        inside += where.startswith(f"{under}/")
    return total, inside


def test_a_filesystem_holds_no_descriptor_between_reads(data: Data) -> None:
    """A filesystem kept its repository's packs open as long as it lived, and one
    made per ``fsspec.open`` until the garbage collector came: a program reading
    file after file ran into its descriptor limit. Between calls it holds none."""
    objects = data.root / ".dvfs" / "objects"
    fs = fsspec.filesystem("dvfs", repo=str(data.root), rev="v1")
    # (taken once the stores other tests left for the garbage collector are closed: each
    # closes its packs when collected, which would otherwise happen during this test)
    gc.collect()
    before = descriptors(objects)
    with fs.open("/data/train.csv") as f:
        assert f.read(3) == b"id,"
    assert descriptors(objects) == before
    for _ in range(50):
        with fs.open("/data/labels.csv", block_size=64) as f:
            assert f.read() == data.v1["data/labels.csv"]
        assert fs.cat_file("/data/labels.csv", 0, 3) == data.v1["data/labels.csv"][:3]
        assert fs.ls("/data", detail=False)
        with fsspec.open("dvfs://v1@/data/labels.csv", repo=str(data.root)) as f:
            assert f.read() == data.v1["data/labels.csv"]
        pd.read_csv("dvfs://v1@/data/labels.csv", storage_options={"repo": str(data.root)})
        with pytest.raises(FileNotFoundError):
            fs.open("/data/nope.csv")
        assert descriptors(objects) == before


def test_each_url_form_reads_what_the_grammar_says(tmp_path: Path) -> None:
    """``dvfs:///PATH``, ``dvfs://REV@/PATH``, ``dvfs://REV@`` and ``dvfs://PATH`` (no
    ``@/`` in PATH), as the README defines them. ``dvfs://feature/x@`` was a path while
    ``dvfs://x@`` was a root, and a path at HEAD holding ``@/`` failed as an unknown
    revision with no word of how to name it."""
    root = tmp_path / "repo"
    Repository.init(root)
    repo = vfs.Repo(root)
    (root / "x@").mkdir()
    (root / "x@" / "y.txt").write_bytes(b"in x@\n")
    (root / "y.txt").write_bytes(b"top, v1\n")
    repo.add(["x@", "y.txt"])
    repo.commit("one", tag="x")
    assert_ok(run(root, "branch", "feature/x"))
    (root / "y.txt").write_bytes(b"top, v2\n")
    (root / "logs" / "ann@").mkdir(parents=True)
    (root / "logs" / "ann@" / "run.csv").write_bytes(b"a\n1\n")
    repo.add(["y.txt", "logs"])
    repo.commit("two")

    def cat(url: str) -> bytes:
        with fsspec.open(url, repo=str(root)) as f:
            data: bytes = f.read()
        return data

    assert cat("dvfs:///y.txt") == cat("dvfs://y.txt") == b"top, v2\n"  # HEAD
    assert cat("dvfs:///x@/y.txt") == b"in x@\n"  # after ///, a path whatever it holds
    assert cat("dvfs://x@/y.txt") == b"top, v1\n"  # REV@/PATH: tag x
    assert cat("dvfs://feature/x@/y.txt") == b"top, v1\n"
    assert cat("dvfs:///logs/ann@/run.csv") == b"a\n1\n"
    with pytest.raises(vfs.RevisionNotFound, match="dvfs:///logs/ann@/"):
        cat("dvfs://logs/ann@/run.csv")
    fs = fsspec.filesystem("dvfs", repo=str(root), rev="feature/x")
    assert fs.ls("feature/x@", detail=False) == fs.ls("feature/x@/", detail=False) == [
        "feature/x@/x@", "feature/x@/y.txt",
    ]  # fmt: skip
    assert fs.ls("/", detail=False) == ["/x@", "/y.txt"]
    tagged = fsspec.filesystem("dvfs", repo=str(root), rev="x")
    assert tagged.ls("x@", detail=False) == ["x@/x@", "x@/y.txt"]  # REV@: the root of x
    head = fsspec.filesystem("dvfs", repo=str(root))
    with pytest.raises(vfs.RevisionNotFound, match=r"dvfs:///logs/ann@/run\.csv"):
        head.cat_file("logs/ann@/run.csv")
    assert head.cat_file("/logs/ann@/run.csv") == b"a\n1\n"
    fsck_clean(root)


def test_a_directory_holding_one_of_its_own_name_is_listed_and_walked(tmp_path: Path) -> None:
    # ls("data") of a directory data holding data/ gave back data itself, so find and
    # walk took data for a file, glob found nothing below it and du counted 0 bytes
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"data/data/part-0.csv": "a,b\n1,2\n", "data/top.csv": "x\n"}, "nested")
    api = vfs.Repo(repo.root)
    assert [f.path for f in api.ls("HEAD", "data")] == ["data/data", "data/top.csv"]
    assert [f.path for f in api.ls("HEAD", "data/data")] == ["data/data/part-0.csv"]
    fs = DvfsFileSystem(repo=str(repo.root))
    assert fs.ls("/data", detail=False) == ["/data/data", "/data/top.csv"]
    assert fs.find("/") == ["/data/data/part-0.csv", "/data/top.csv"]
    assert fs.glob("/data/**/*.csv") == ["/data/data/part-0.csv", "/data/top.csv"]
    assert fs.du("/") == 10
    assert pd.read_csv("dvfs:///data/data/part-0.csv", storage_options={"repo": str(repo.root)})[
        "b"
    ].tolist() == [2]
    api.close()
    fsck_clean(repo.root)


def test_a_checksum_changes_with_what_the_path_reads(tmp_path: Path) -> None:
    # a link's checksum hashed the link alone (its path and target), with Python's
    # hash(), which each process seeds anew: the link read the changed file of v2 under
    # the checksum it had in v1, and another process gave another number for the same
    # entry of the same version
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/a.txt": "one\n", "d/sub/s.txt": "s\n"}, "one")
    (repo.root / "d" / "to-a").symlink_to("a.txt")
    add_in_process(repo, "d")
    commit_in_process(repo, "link")
    commit_files(repo, {"d/a.txt": "two\n", "d/sub/s.txt": "t\n"}, "two")
    v2, v3 = (DvfsFileSystem(repo=str(repo.root), rev=rev) for rev in ("v2", "v3"))
    for fs in (v2, v3):
        assert fs.checksum("/d/to-a") == fs.checksum("/d/a.txt")  # the file it reads
    assert v2.checksum("/d/to-a") != v3.checksum("/d/to-a")
    assert v2.checksum("/d/sub") != v3.checksum("/d/sub")  # a directory whose file changed
    code = (
        "import sys; from vfs.filesystem import DvfsFileSystem; "
        "fs = DvfsFileSystem(repo=sys.argv[1], rev='v3'); print(fs.checksum('/d/sub'))"
    )
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code, str(repo.root)], capture_output=True, text=True,
            check=True, env={**os.environ, "PYTHONHASHSEED": seed},
        )  # fmt: skip
        assert out.stdout == f"{v3.checksum('/d/sub')}\n"
    fsck_clean(repo.root)


def test_modified_is_the_mtime_info_gives(tmp_path: Path) -> None:
    # modified() of a link to a file gave the link's own time, where info() (and
    # fsspec's local filesystem) gives that of the file it reads
    root = tmp_path / "repo"
    assert_ok(run(tmp_path, "init", str(root)))
    (root / "d").mkdir()
    (root / "d" / "a.txt").write_bytes(b"a\n")
    (root / "d" / "to-a").symlink_to("a.txt")
    os.utime(root / "d" / "a.txt", (1_600_000_000, 1_600_000_000))
    os.utime(root / "d" / "to-a", (1_700_000_000, 1_700_000_000), follow_symlinks=False)
    assert_ok(run(root, "add", "."))
    assert_ok(run(root, "commit", "-m", "link"))
    fs = fsspec.filesystem("dvfs", repo=str(root))
    for path in ("/d/to-a", "/d/a.txt", "/d"):
        assert fs.modified(path).timestamp() == fs.info(path)["mtime"], path
    assert fs.modified("/d/to-a") == fs.modified("/d/a.txt")
    assert fs.modified("/d/to-a").tzinfo is not None
    fsck_clean(root)


def test_a_path_of_another_revision_is_named_with_its_controls_escaped(data: Data) -> None:
    # the error printed the path raw: a name holding an escape sequence rewrote the
    # terminal that showed it, and one holding a newline forged a line
    fs = fsspec.filesystem("dvfs", repo=str(data.root), rev="v2")
    with pytest.raises(FileNotFoundError) as other:
        fs.cat_file("v1@/data/\x1b[2Jx\n.csv")
    assert "\x1b" not in str(other.value) and "\n" not in str(other.value)
    assert "data/\\033[2Jx\\n.csv" in str(other.value)


def test_an_option_dvfs_does_not_take_is_named_in_a_warning(data: Data) -> None:
    # an option was kept and ignored in silence: revision="v1" (as hf:// names it) read
    # HEAD
    options = {"repo": str(data.root), "revision": "v1"}
    with pytest.warns(vfs.DvfsWarning, match=r"^dvfs:// ignores the option 'revision': its "):
        assert len(pd.read_csv("dvfs://data/train.csv", storage_options=options)) == 32_000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # fsspec's own options are every filesystem's, and pandas tries a failed write
        # again with anon=True: the write's own error is what it raises
        fs = fsspec.filesystem("dvfs", repo=str(data.root), use_listings_cache=False)
        assert fs.cat_file("/notes.txt") == data.v2["notes.txt"]
        with pytest.raises(ReadOnlyError):
            pd.DataFrame({"a": [1]}).to_csv("dvfs://o.csv", storage_options={"repo": data.repo})
