"""A remote under test, on every kind of remote: the ``remote`` fixture.

Tests that take ``remote`` run twice: against a directory remote (``file://``) and
against an ``s3://`` remote on the session's SeaweedFS server (``tests/support/s3server.py``).
The remote's own state is read back with a backend opened by the test. Modules import
the fixture as ``remote_fixture`` (it is named ``remote``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

import vfs.backends.local
from tests.support.cli import Repo, Result, assert_ok, init_repo, run
from tests.support.s3server import S3Server
from vfs.backends import Backend, open_backend
from vfs.errors import RemoteNotFound
from vfs.store.compression import decode_payload
from vfs.store.packs import FOOTER, parse_footer, parse_header


@dataclass(frozen=True)
class Remote:
    """A remote under test: its URL, the options the CLI needs, and a backend to inspect it."""

    kind: str
    url: str
    options: tuple[str, ...]  # for `remote add` and `clone`
    backend: Backend

    def list_keys(self, prefix: str = "") -> set[str]:
        return set(self.backend.list(prefix))

    def ref(self, branch: str = "main") -> str | None:
        """The version id the remote's branch holds, or None."""
        try:
            return self.backend.get(f"refs/heads/{branch}").decode().strip()
        except RemoteNotFound:
            return None

    def packs(self) -> dict[str, bytes]:
        """Every visible pack, each checked to be complete: named by its header's hash,
        and every object it lists read back against its id."""
        out = {}
        for key in self.list_keys("packs/"):
            data = self.backend.get(key)
            footer = data[-FOOTER.size :]
            _, hlen, header_hash = parse_footer(footer, len(data), key)
            data_end = len(data) - FOOTER.size - hlen
            objs = parse_header(data[data_end : data_end + hlen], header_hash, data_end, key)
            assert header_hash.hex() == key.removeprefix("packs/"), key
            for o in objs:
                decode_payload(o, data[o.offset : o.offset + o.stored_len])
            out[key] = data
        return out

    def add_to(self, repo: Repo, name: str = "origin") -> None:
        repo.ok("remote", "add", name, self.url, *self.options)

    def clone(self, cwd: Path, dest: str, *extra: str) -> tuple[Repo, Result]:
        r = assert_ok(run(cwd, "clone", self.url, dest, *self.options, *extra))
        return Repo(cwd / dest), r


@pytest.fixture(name="remote", params=["dir", "s3"])
def remote_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> Remote:
    """An empty remote: a directory (``file://``), or a new prefix of the session's
    shared bucket on SeaweedFS (``S3Server.make_prefix``)."""
    if request.param == "dir":
        path = tmp_path / "remote"
        return Remote("dir", path.as_uri(), (), open_backend(str(path), create=True))
    server: S3Server = request.getfixturevalue("s3_env")
    url = f"s3://{server.make_prefix()}/team/data"
    backend = open_backend(url, endpoint_url=server.endpoint)
    return Remote("s3", url, ("--endpoint-url", server.endpoint), backend)


@pytest.fixture(name="dir_remote")
def dir_remote_fixture(tmp_path: Path) -> Remote:
    """An empty directory remote alone, for tests whose remote's kind does not matter
    (the code they test is the same above every backend; ``remote`` runs both)."""
    path = tmp_path / "remote"
    return Remote("dir", path.as_uri(), (), open_backend(str(path), create=True))


T = TypeVar("T")


@dataclass
class Seeds:
    """Repositories that pushed to a remote, each made once a module for each kind of
    remote and copied for every test after the first: what ``push`` (a function of the
    repository, its remote added as origin) did, for tests that start from it."""

    root: Path  # where the repositories are kept
    made: dict[tuple[str, str], tuple[Path, str, dict[str, bytes], Any]] = field(
        default_factory=dict
    )  # (kind, push): (the repository, the remote's URL, its objects, what push gave)

    def pushed(self, remote: Remote, tmp_path: Path, push: Callable[[Repo], T]) -> tuple[Repo, T]:
        """A repository ``tmp_path/seed`` with ``remote`` as origin, after ``push(repo)``;
        what that gave. The first time for a kind of remote it is run; after that the
        repository is copied, the remote's URL put in its records, and the remote's
        objects put in ``remote`` (each anew: its time is now, as a push's would be)."""
        root = tmp_path / "seed"
        key = (remote.kind, push.__qualname__)
        if key not in self.made:
            repo = init_repo(root)
            remote.add_to(repo)
            got = push(repo)
            kept = self.root / "-".join(key)
            shutil.copytree(root, kept, symlinks=True)
            objects = {name: remote.backend.get(name) for name in remote.list_keys()}
            self.made[key] = (kept, remote.url, objects, got)
            return repo, got
        kept, url, objects, got = self.made[key]
        shutil.copytree(kept, root, symlinks=True)
        for rel in ("config", "remotes/origin/location"):  # (JSON, or a line)
            path = root / ".dvfs" / rel
            text = path.read_text()
            assert url in text, (path, text)
            path.write_text(text.replace(url, remote.url))
        for name, data in objects.items():
            remote.backend.put(name, data)
        return Repo(root), got


@pytest.fixture(name="seeds", scope="module")
def seeds_fixture(tmp_path_factory: pytest.TempPathFactory) -> Seeds:
    """The module's ``Seeds`` (modules import it as ``seeds_fixture``)."""
    return Seeds(tmp_path_factory.mktemp("seeds"))


def pack_reads(monkeypatch: pytest.MonkeyPatch, root: Path) -> dict[str, int]:
    """The bytes a directory remote at ``root`` reads of its packs from now on, counted
    in ``"read"`` (ranges read) and ``"hashed"`` (read whole for an ETag); the dict
    given back is updated as they are read. The packs are told by their inodes."""
    packs = {p.stat().st_ino for p in (root / "packs").iterdir()}
    got = {"read": 0, "hashed": 0}
    read, etag_of = vfs.backends.local._read, vfs.backends.local._etag_of_fd

    def counted_read(fd: int, start: int, length: int) -> bytes:
        data = read(fd, start, length)
        if os.fstat(fd).st_ino in packs:
            got["read"] += len(data)
        return data

    def counted_etag(fd: int) -> str:
        st = os.fstat(fd)
        if st.st_ino in packs:
            got["hashed"] += st.st_size
        return etag_of(fd)

    monkeypatch.setattr(vfs.backends.local, "_read", counted_read)
    monkeypatch.setattr(vfs.backends.local, "_etag_of_fd", counted_etag)
    return got
