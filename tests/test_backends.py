"""The backend contract (vfs.backends.base), run over every backend: local and S3.

The S3 runs use a real SeaweedFS server (tests/support/s3server.py), a fresh bucket per test
and a prefix inside it. Local-only and S3-only checks follow the shared suite, then
``open_backend``'s URL parsing.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import tracemalloc
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.data import rand
from tests.support.s3server import S3Server
from vfs.backends import (
    Backend,
    LimitedBackend,
    LocalBackend,
    RetryingBackend,
    open_backend,
    validate_key,
)
from vfs.backends.s3 import S3Backend
from vfs.errors import PreconditionFailed, RemoteError, RemoteNotFound, UsageError

BAD_KEYS = ["../x", "a//b", "/abs", "", "a/", "a/./b", "a/../b", ".hidden", "a/.b", "a b", "é"]
GOOD_KEYS = ["a", "refs/heads/main", "packs/0a/0a1b.pack", "A-b_c.d", "x/y/z/w"]


def race(threads: int, fn: Callable[[int], object]) -> list[object]:
    """Run ``fn(i)`` in ``threads`` threads released together; return results or errors."""
    start = threading.Barrier(threads)

    def run(i: int) -> object:
        start.wait()
        try:
            return fn(i)
        except RemoteError as exc:
            return exc

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(run, range(threads)))


# ----------------------------------------------------------------------------- the contract


def test_put_get_roundtrip(backend: Backend) -> None:
    data = rand(100_000)
    backend.put("packs/ab/one", data)
    backend.put("empty", b"")
    assert backend.get("packs/ab/one") == data
    assert backend.get("empty") == b""
    backend.put("packs/ab/one", b"replaced")
    assert backend.get("packs/ab/one") == b"replaced"


def test_ranged_get(backend: Backend) -> None:
    data = rand(1000, seed=1)
    backend.put("k", data)
    assert backend.get("k", 10, 20) == data[10:30]
    assert backend.get("k", 5) == data[5:]
    assert backend.get("k", 0, 1) == data[:1]
    assert backend.get("k", 990, 50) == data[990:]  # runs past the end: cut short
    assert backend.get("k", 1000, 5) == b""
    assert backend.get("k", 5000) == b""
    assert backend.get("k", 3, 0) == b""
    with pytest.raises(ValueError):
        backend.get("k", -1)


def test_get_parts_gives_the_range_in_pieces(backend: Backend) -> None:
    data = rand(300_000, seed=2)
    backend.put("k", data)
    lengths = [1, 100_000, 0, 65_536, 4096]
    pieces = list(backend.get_parts("k", 7, lengths))
    assert [len(p) for p in pieces] == lengths
    assert b"".join(pieces) == data[7 : 7 + sum(lengths)]
    assert list(backend.get_parts("k", 299_990, [5, 10, 5])) == [
        data[299_990:299_995],
        data[299_995:],
        b"",
    ]  # past the end: short, then empty
    assert list(backend.get_parts("k", 400_000, [3, 3])) == [b"", b""]
    first = next(backend.get_parts("k", 0, [10, 200_000]))  # left after one piece
    assert first == data[:10]
    with pytest.raises(RemoteNotFound):
        list(backend.get_parts("missing", 0, [10]))


def test_head_size_and_etag(backend: Backend) -> None:
    backend.put("k", b"12345")
    first = backend.head("k")
    assert first.size == 5
    assert first.etag
    backend.put("k", b"123456")
    second = backend.head("k")
    assert (second.size, second.etag != first.etag) == (6, True)
    etag = backend.put_conditional("k", b"abc", if_match=second.etag)
    assert backend.head("k").etag == etag
    backend.put("k", b"abc")
    assert backend.head("k").etag == etag  # same bytes, same ETag


def test_stat_and_a_listing_without_etags_give_sizes_and_times(backend: Backend) -> None:
    """``stat`` and ``list_info(etags=False)`` are ``head`` but for the ETag, which they
    may leave empty (a directory remote then reads nothing of the object)."""
    backend.put("packs/a", b"12345")
    backend.put("packs/b", b"")
    for key in ("packs/a", "packs/b"):
        got, full = backend.stat(key), backend.head(key)
        assert (got.size, got.modified) == (full.size, full.modified)
        assert got.etag in ("", full.etag)
    listed = {key: (i.size, i.modified) for key, i in backend.list_info("packs/", etags=False)}
    assert listed == {k: (i.size, i.modified) for k, i in backend.list_info("packs/")}
    assert listed["packs/a"][0] == 5
    with pytest.raises(RemoteNotFound, match="not found"):
        backend.stat("packs/c")


def test_list_by_prefix(backend: Backend) -> None:
    keys = ["packs/1", "packs/2/x", "packsx", "index/1", "refs/heads/main", "refs/heads/ma"]
    for key in keys:
        backend.put(key, key.encode())
    assert sorted(backend.list()) == sorted(keys)
    assert sorted(backend.list("packs/")) == ["packs/1", "packs/2/x"]
    assert sorted(backend.list("packs")) == ["packs/1", "packs/2/x", "packsx"]
    assert sorted(backend.list("refs/heads/ma")) == ["refs/heads/ma", "refs/heads/main"]
    assert list(backend.list("nothing/")) == []
    with pytest.raises(UsageError):
        list(backend.list("../"))


def test_list_crosses_pages(backend: Backend) -> None:
    keys = {f"many/{i:04d}" for i in range(1005)}  # S3 pages hold 1000 keys
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda k: backend.put(k, b""), keys))
    listing = list(backend.list("many/"))
    assert len(listing) == len(keys)
    assert set(listing) == keys


def test_delete_is_idempotent(backend: Backend) -> None:
    backend.put("a/b", b"x")
    backend.delete("a/b")
    with pytest.raises(RemoteNotFound):
        backend.head("a/b")
    backend.delete("a/b")
    backend.delete("never/there")
    assert list(backend.list()) == []


def test_missing_key_is_not_found(backend: Backend) -> None:
    backend.put("present", b"x")
    for call in (
        lambda: backend.get("absent"),
        lambda: backend.get("absent", 10, 5),
        lambda: backend.get("absent", 0, 0),
        lambda: backend.head("absent"),
        lambda: backend.head("present/below"),
    ):
        with pytest.raises(RemoteNotFound, match="not found"):
            call()


def test_conditional_create_succeeds_once(backend: Backend) -> None:
    etag = backend.put_conditional("refs/heads/main", b"v1", if_none_match=True)
    assert backend.head("refs/heads/main").etag == etag
    with pytest.raises(PreconditionFailed, match="already exists"):
        backend.put_conditional("refs/heads/main", b"v2", if_none_match=True)
    assert backend.get("refs/heads/main") == b"v1"
    with pytest.raises(ValueError):
        backend.put_conditional("x", b"", if_match=etag, if_none_match=True)


def test_compare_and_swap(backend: Backend) -> None:
    first = backend.put_conditional("ref", b"v1", if_none_match=True)
    second = backend.put_conditional("ref", b"v2", if_match=first)
    with pytest.raises(PreconditionFailed, match="changed"):
        backend.put_conditional("ref", b"v3", if_match=first)
    assert backend.get("ref") == b"v2"
    assert backend.head("ref").etag == second
    with pytest.raises(PreconditionFailed):
        backend.put_conditional("gone", b"v1", if_match=first)
    assert list(backend.list("gone")) == []


def test_conditional_delete(backend: Backend) -> None:
    """A ref is deleted only while it holds what was read: a rival's move, or a rival's
    delete, makes the second delete fail and leaves the rival's state."""
    first = backend.put_conditional("refs/heads/x", b"v1", if_none_match=True)
    second = backend.put_conditional("refs/heads/x", b"v2", if_match=first)
    with pytest.raises(PreconditionFailed, match="changed or removed"):
        backend.delete_conditional("refs/heads/x", if_match=first)
    assert backend.get("refs/heads/x") == b"v2"
    backend.delete_conditional("refs/heads/x", if_match=second)
    assert list(backend.list("refs/")) == []
    with pytest.raises(PreconditionFailed):
        backend.delete_conditional("refs/heads/x", if_match=second)
    # a deleted branch team/a leaves no folder that would keep a branch team from being made
    nested = backend.put_conditional("refs/heads/team/a", b"v1", if_none_match=True)
    backend.put_conditional("refs/heads/keep", b"v1", if_none_match=True)
    backend.delete_conditional("refs/heads/team/a", if_match=nested)
    backend.put_conditional("refs/heads/team", b"v2", if_none_match=True)
    assert set(backend.list("refs/")) == {"refs/heads/team", "refs/heads/keep"}


def test_concurrent_create_has_one_winner(backend: Backend) -> None:
    for rnd in range(3):
        key = f"refs/heads/b{rnd}"

        def create(i: int, key: str = key) -> str:
            return backend.put_conditional(key, f"t{i}".encode(), if_none_match=True)

        results = race(4, create)
        winners = [i for i, r in enumerate(results) if isinstance(r, str)]
        assert len(winners) == 1, results
        assert all(isinstance(r, PreconditionFailed) for r in results if not isinstance(r, str))
        assert backend.get(key) == f"t{winners[0]}".encode()


def test_concurrent_compare_and_swap_has_one_winner(backend: Backend) -> None:
    etag = backend.put_conditional("ref", b"start", if_none_match=True)
    for rnd in range(5):
        # Every value is new: rewriting the current bytes would keep the ETag and let a
        # second writer through, which is a compare-and-swap on the value, not a race.

        def swap(i: int, rnd: int = rnd, etag: str = etag) -> str:
            return backend.put_conditional("ref", f"r{rnd}-t{i}".encode(), if_match=etag)

        results = race(4, swap)
        winners = [i for i, r in enumerate(results) if isinstance(r, str)]
        assert len(winners) == 1, f"round {rnd}: {results}"
        assert backend.get("ref") == f"r{rnd}-t{winners[0]}".encode()
        etag = str(results[winners[0]])


def test_create_many_makes_only_the_absent_keys(backend: Backend) -> None:
    """A batch of exclusive creates (the tags of a push, the entries of an audit chain):
    a key already there is left as it is and reported not made; in order, the first one
    there ends the batch."""
    backend.put_conditional("refs/tags/b", b"theirs", if_none_match=True)
    made = backend.create_many([(f"refs/tags/{k}", k.encode()) for k in "abc"], jobs=4)
    assert list(made) == [True, False, True]
    assert [backend.get(f"refs/tags/{k}") for k in "abc"] == [b"a", b"theirs", b"c"]
    batch = [("audit/1", b"1"), ("refs/tags/b", b"x"), ("audit/3", b"3")]
    assert list(backend.create_many(batch, in_order=True)) == [True, False]
    assert sorted(backend.list("audit/")) == ["audit/1"] and backend.get("refs/tags/b") == b"theirs"


def test_concurrent_create_many_has_one_winner_a_key(backend: Backend) -> None:
    keys = [f"refs/tags/t{n}" for n in range(6)]

    def create(i: int) -> list[bool]:
        return list(backend.create_many([(k, f"w{i}".encode()) for k in keys], jobs=2))

    results = race(4, create)
    for n, key in enumerate(keys):
        winners = [i for i, r in enumerate(results) if isinstance(r, list) and r[n]]
        assert len(winners) == 1, results
        assert backend.get(key) == f"w{winners[0]}".encode()


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_rejected(backend: Backend, key: str) -> None:
    for call in (
        lambda: backend.put(key, b"x"),
        lambda: backend.get(key),
        lambda: backend.head(key),
        lambda: backend.delete(key),
        lambda: backend.put_conditional(key, b"x", if_none_match=True),
        lambda: backend.delete_conditional(key, if_match="x"),
    ):
        with pytest.raises(UsageError, match="invalid storage key"):
            call()
    assert list(backend.list()) == []


def test_good_keys_are_accepted() -> None:
    assert [validate_key(k) for k in GOOD_KEYS] == GOOD_KEYS


# ----------------------------------------------------------------------------- local only


def test_local_put_is_atomic(local_backend: Backend) -> None:
    assert isinstance(local_backend, LocalBackend)
    old, new = b"a" * (4 << 20), b"b" * (4 << 20)
    local_backend.put("d/obj", old)
    stop = threading.Event()
    seen: set[bytes] = set()

    def read() -> None:
        while not stop.is_set():
            data = local_backend.get("d/obj")
            seen.add(data[:1] + data[-1:] + str(len(data)).encode())

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(20):
            local_backend.put("d/obj", new if i % 2 else old)
    finally:
        stop.set()
        reader.join()
    assert seen <= {b"aa4194304", b"bb4194304"}
    assert os.listdir(local_backend.root / "d") == ["obj"]  # no temporary file left


def test_local_failed_put_leaves_old_object(
    local_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert isinstance(local_backend, LocalBackend)
    local_backend.put("obj", b"old")

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(RemoteError, match="Input/output error"):
        local_backend.put("obj", b"new")
    monkeypatch.undo()
    assert local_backend.get("obj") == b"old"
    assert sorted(os.listdir(local_backend.root)) == ["obj"]


def test_local_hidden_files_are_not_keys(local_backend: Backend) -> None:
    assert isinstance(local_backend, LocalBackend)
    local_backend.put_conditional("k", b"x", if_none_match=True)  # makes .cas.lock
    (local_backend.root / ".tmp-k.123456").write_bytes(b"crash leftover")
    assert list(local_backend.list()) == ["k"]


def test_local_ranged_get_reads_only_the_range(local_backend: Backend) -> None:
    assert isinstance(local_backend, LocalBackend)
    with open(local_backend.root / "sparse", "wb") as f:
        f.truncate(64 << 30)  # 64 GiB of holes: reading it all would never finish
        os.pwrite(f.fileno(), b"needle", 40 << 30)
    assert local_backend.get("sparse", (40 << 30) - 2, 10) == b"\0\0needle\0\0"


def test_local_get_parts_holds_one_piece_at_a_time(local_backend: Backend) -> None:
    """The directory backend read the whole range with one ``get`` and cut it, so a
    mount's read-ahead of 16 MiB held 16 MiB per job: each piece is read when it is
    asked for now, from the file as it was when the range was opened."""
    assert isinstance(local_backend, LocalBackend)
    data = rand(16 << 20, seed=3)
    local_backend.put("pack", data)
    pieces = local_backend.get_parts("pack", 5, [1 << 18] * 64)
    tracemalloc.start()
    try:
        first = next(pieces)
        local_backend.put("pack", b"replaced")  # (the range reads the file it opened)
        at = 5 + len(first)
        for piece in pieces:
            assert piece == data[at : at + len(piece)]
            at += len(piece)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert first == data[5 : 5 + (1 << 18)] and at == len(data)  # (the last one short)
    assert peak < 4 << 20, peak


def test_local_key_and_folder_clash(local_backend: Backend) -> None:
    local_backend.put("a", b"file")
    with pytest.raises(RemoteError, match="clash"):
        local_backend.put("a/b", b"below a file")
    local_backend.put("c/d", b"x")
    with pytest.raises(RemoteError, match="clash"):
        local_backend.put("c", b"over a folder")
    with pytest.raises(RemoteNotFound):
        local_backend.get("c")


CAS_COUNTER = """
import sys
from pathlib import Path
from vfs.backends import LocalBackend
from vfs.errors import PreconditionFailed

backend = LocalBackend(Path(sys.argv[1]))
done = 0
while done < int(sys.argv[2]):
    info = backend.head("counter")
    value = int(backend.get("counter"))
    try:
        backend.put_conditional("counter", str(value + 1).encode(), if_match=info.etag)
        done += 1
    except PreconditionFailed:
        pass
"""


def test_local_create_many_follows_no_link_and_leaves_no_temporary(
    local_backend: Backend, tmp_path: Path
) -> None:
    """A batch of creates refuses a link, folder or FIFO at a key as one create does,
    writes nothing through the link, and leaves no temporary file behind."""
    assert isinstance(local_backend, LocalBackend)
    local_backend.put("refs/tags/a", b"a")
    tags = local_backend.root / "refs" / "tags"
    outside = tmp_path / "outside"
    outside.write_bytes(b"mine")
    (tags / "link").symlink_to(outside)
    (tags / "folder").mkdir()
    os.mkfifo(tags / "fifo")
    for name, said in [("link", "symbolic link"), ("folder", "clash"), ("fifo", "not a regular")]:
        with pytest.raises(RemoteError, match=said):
            local_backend.create_many([("refs/tags/new", b"n"), (f"refs/tags/{name}", b"x")])
    assert outside.read_bytes() == b"mine"
    assert local_backend.get("refs/tags/new") == b"n"  # made before the refusal, and kept
    assert sorted(p.name for p in tags.iterdir()) == ["a", "fifo", "folder", "link", "new"]


def test_local_compare_and_swap_across_processes(local_backend: Backend) -> None:
    assert isinstance(local_backend, LocalBackend)
    local_backend.put_conditional("counter", b"0", if_none_match=True)
    procs = [
        subprocess.Popen([sys.executable, "-c", CAS_COUNTER, str(local_backend.root), "40"])
        for _ in range(3)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0]
    assert local_backend.get("counter") == b"120"  # no increment lost


# ----------------------------------------------------------------------------- S3 only


def test_s3_keys_live_under_the_prefix(s3_env: S3Server) -> None:
    bucket = s3_env.make_bucket()
    backend = open_backend(f"s3://{bucket}/repo/data/", endpoint_url=s3_env.endpoint)
    client = s3_env.client()
    for name in ("outside", "repo/dataX/k", "repo/data/dir/"):
        client.put_object(Bucket=bucket, Key=name, Body=b"not ours")
    backend.put("refs/heads/main", b"v1")
    assert client.get_object(Bucket=bucket, Key="repo/data/refs/heads/main")["Body"].read() == (
        b"v1"
    )
    assert list(backend.list()) == ["refs/heads/main"]


def test_s3_backends_made_at_once_in_threads_each_work(s3_env: S3Server) -> None:
    """The backends of one process share botocore's data loader (each re-read the S3
    model: 0.07-0.1 CPU-s a backend); eight made at once, each in its own thread,
    each reads and writes its own prefix, and the loader's search path does not grow
    with them."""
    from vfs.backends import s3

    prefix = s3_env.make_prefix()

    def made(i: int) -> object:
        b = open_backend(f"s3://{prefix}/b{i}", endpoint_url=s3_env.endpoint)
        b.put("k", b"%d" % i)
        return b.get("k")

    assert race(8, made) == [b"%d" % i for i in range(8)]
    loaders = list(s3._LOADERS.values())
    assert len(loaders) == 1
    assert len(loaders[0].search_paths) == len(set(loaders[0].search_paths))


def _connections_to(port: int) -> set[int]:
    """Local ports of this process's established TCP connections to ``port``."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                mine.add(target[8:-1])
    ports = set()
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as f:
            for line in list(f)[1:]:
                fields = line.split()
                local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                if state == "01" and inode in mine and int(remote.rsplit(":", 1)[1], 16) == port:
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def test_s3_answers_read_whole_keep_their_connection(s3_env: S3Server) -> None:
    bucket = s3_env.make_bucket()
    backend = open_backend(f"s3://{bucket}", endpoint_url=s3_env.endpoint, retry=False)
    port = int(s3_env.endpoint.rsplit(":", 1)[1].rstrip("/"))
    data = rand(3 << 20, seed=5)
    backend.put("pack", data)
    before = _connections_to(port)  # the put's, kept by boto3's pool
    pieces = list(backend.get_parts("pack", 0, [1 << 20] * 3))
    assert b"".join(pieces) == data
    kept = _connections_to(port) - before
    assert len(kept) == 1  # read whole: back in the pool, not closed
    for _ in range(3):  # the next requests go over it: no new connection
        assert b"".join(backend.get_parts("pack", 1 << 20, [1 << 20, 1 << 20])) == data[1 << 20 :]
        assert _connections_to(port) - before == kept
    stopped = backend.get_parts("pack", 0, [1 << 20] * 3)
    assert next(stopped) == data[: 1 << 20]
    stopped.close()  # left early: the rest of the answer is still on it, so it goes
    assert _connections_to(port) - before == set()
    assert list(backend.get_parts("pack", 5, [10])) == [data[5:15]]  # the next opens another


# ----------------------------------------------------------------------------- open_backend


def test_open_backend_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "here").mkdir()
    assert isinstance(open_backend("here"), LocalBackend)
    assert isinstance(open_backend(f"file://{tmp_path}/here"), LocalBackend)
    assert open_backend(f"file://{tmp_path}/here").url == (tmp_path / "here").as_uri()
    remote = open_backend("s3://bucket/some/prefix", endpoint_url="http://127.0.0.1:9")
    assert isinstance(remote, RetryingBackend) and isinstance(remote.inner, S3Backend)
    assert remote.url == "s3://bucket/some/prefix at http://127.0.0.1:9"
    plain = open_backend("s3://bucket", endpoint_url="http://127.0.0.1:9", retry=False)
    assert isinstance(plain, S3Backend)
    # a call waiting out a back-off holds none of the concurrency slots
    limited = open_backend("s3://bucket", endpoint_url="http://127.0.0.1:9", jobs=4)
    assert isinstance(limited, RetryingBackend) and isinstance(limited.inner, LimitedBackend)
    assert isinstance(limited.inner.inner, S3Backend)
    assert isinstance(open_backend("here", jobs=2), LimitedBackend)
    for endpoint in ("http://u:pw@127.0.0.1:9", "http://pw@127.0.0.1:9"):  # never from a URL
        with pytest.raises(UsageError, match="user name or password") as info:
            open_backend("s3://bucket", endpoint_url=endpoint, retry=False)
        assert "pw" not in str(info.value)
    assert isinstance(open_backend(str(tmp_path / "new"), create=True), LocalBackend)


@pytest.mark.parametrize(
    "url",
    ["", "s3://", "s3://b", "s3:///prefix", "s3://bucket/a//b", "s3://bucket/../x",
     "s3://bu cket/x", "gs://bucket/x", "http://host/x", "file://host/x", "file://rel",
     "file:///abs?x=1"],
)  # fmt: skip
def test_open_backend_rejects_bad_urls(url: str) -> None:
    with pytest.raises(UsageError, match=r"URL|bucket|prefix"):
        open_backend(url)


def test_open_backend_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RemoteNotFound, match="does not exist"):
        open_backend(str(tmp_path / "missing"))
