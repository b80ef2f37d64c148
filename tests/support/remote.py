"""A remote under test, on every kind of remote: the ``remote`` fixture.

Tests that take ``remote`` run twice: against a directory remote (``file://``) and
against an ``s3://`` remote on the session's SeaweedFS server (``tests/support/s3server.py``).
The remote's own state is read back with a backend opened by the test. Modules import
the fixture as ``remote_fixture`` (it is named ``remote``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

import vfs.backends.local
from tests.support.cli import Repo, Result, assert_ok, run
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
