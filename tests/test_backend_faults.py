"""Faults at the backend boundary: each one must become the right ``vfs.errors`` type.

Against real servers: a closed port, a server that never answers, wrong or
unknown keys, a read-only identity and a missing bucket on the session's SeaweedFS.
At unit level: the retry and concurrency wrappers over a small in-memory fake, and
S3 answers SeaweedFS never gives (throttling, AWS's 409/404 on conditional writes),
fed to the real S3Backend through botocore's Stubber.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor

import blake3
import pytest
from botocore.stub import Stubber

from tests.support.loopback import free_ports
from tests.support.s3server import S3Server, use_aws_keys
from vfs.backends import (
    Backend,
    LimitedBackend,
    ObjectInfo,
    RetryingBackend,
    open_backend,
)
from vfs.backends.s3 import S3Backend
from vfs.errors import (
    PreconditionFailed,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemoteUnreachable,
    UsageError,
)

Op = Callable[[Backend], object]
OPS: dict[str, Op] = {
    "get": lambda b: b.get("k"),
    "head": lambda b: b.head("k"),
    "put": lambda b: b.put("k", b"x"),
    "list": lambda b: list(b.list()),
    "delete": lambda b: b.delete("k"),
    "create": lambda b: b.put_conditional("k", b"x", if_none_match=True),
}


class Fake(Backend):
    """An in-memory backend that raises queued faults (``None`` = no fault) first."""

    url = "mem://fake"

    def __init__(self, objects: dict[str, bytes] | None = None) -> None:
        self.objects = dict(objects or {})
        self.faults: list[Exception | None] = []
        self.calls = 0
        self.lose_answers = 0  # conditional writes that succeed but answer "unreachable"
        self.delay = 0.0
        self.starts: list[int] = []  # where each get_parts asked to start
        self.active = self.peak = 0
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        self._fault()
        self.objects[key] = data

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        self._fault()
        data = self._existing(key)
        return data[start:] if length is None else data[start : start + length]

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        """The pieces, a queued fault raised before each (a stream that breaks midway)."""
        self.starts.append(start)
        data = self._existing(key)
        for n in lengths:
            self._fault()
            yield data[start : start + n]
            start += n

    def head(self, key: str) -> ObjectInfo:
        self._fault()
        data = self._existing(key)
        return ObjectInfo(len(data), blake3.blake3(data).hexdigest())

    def list(self, prefix: str = "") -> Iterator[str]:
        for key in sorted(self.objects):
            self._fault()
            if key.startswith(prefix):
                yield key

    def delete(self, key: str) -> None:
        self._fault()
        self.objects.pop(key, None)

    def delete_conditional(self, key: str, *, if_match: str) -> None:
        self._fault()
        current = self.objects.get(key)
        if current is None or blake3.blake3(current).hexdigest() != if_match:
            raise PreconditionFailed(f"{key} lost the race")
        del self.objects[key]
        if self.lose_answers:
            self.lose_answers -= 1
            raise RemoteUnreachable("the answer was lost")

    def put_conditional(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        self._fault()
        current = self.objects.get(key)
        etag = None if current is None else blake3.blake3(current).hexdigest()
        if (if_none_match and current is not None) or (if_match and etag != if_match):
            raise PreconditionFailed(f"{key} lost the race")
        self.objects[key] = data
        if self.lose_answers:
            self.lose_answers -= 1
            raise RemoteUnreachable("the answer was lost")
        return blake3.blake3(data).hexdigest()

    def _existing(self, key: str) -> bytes:
        if key not in self.objects:
            raise RemoteNotFound(f"{key} not found")
        return self.objects[key]

    def _fault(self) -> None:
        with self._lock:
            self.calls += 1
            self.active += 1
            self.peak = max(self.peak, self.active)
            fault = self.faults.pop(0) if self.faults else None
        try:
            time.sleep(self.delay)
            if fault is not None:
                raise fault
        finally:
            with self._lock:
                self.active -= 1


def quick(inner: Backend, attempts: int = 4, deadline: float = 10.0) -> RetryingBackend:
    """A retrying wrapper with delays small enough for tests."""
    return RetryingBackend(
        inner, attempts=attempts, base_delay=0.01, max_delay=0.05, deadline=deadline
    )


# ----------------------------------------------------------------------------- retry wrapper


@pytest.mark.parametrize(
    "error",
    [RemoteAuthError("no"), RemoteNotFound("no"), PreconditionFailed("no"), UsageError("no"),
     RemoteError("no")],
    ids=lambda e: type(e).__name__,
)  # fmt: skip
def test_retry_never_repeats_permanent_errors(error: Exception) -> None:
    fake = Fake({"k": b"v"})
    fake.faults = [error] * 5
    with pytest.raises(type(error)):
        quick(fake).get("k")
    assert fake.calls == 1


def test_transient_failures_are_retried_transparently() -> None:
    fake = Fake({"k": b"v"})
    fake.faults = [RemoteUnreachable("down"), RemoteUnreachable("down")]
    assert quick(fake).get("k") == b"v"
    assert fake.calls == 3


def test_retry_gives_up_after_its_attempts() -> None:
    fake = Fake()
    fake.faults = [RemoteUnreachable("down")] * 10
    with pytest.raises(RemoteUnreachable, match=r"could not reach mem://fake after 4 attempts"):
        quick(fake).put("k", b"x")
    assert fake.calls == 4


class Clock:
    """The retry wrapper's ``time``: a clock that moves only when it sleeps, plus the
    time each failing call takes, so the deadline is judged without the machine's load."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call = 0.0, per_call

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_retry_deadline_bounds_the_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import vfs.backends.wrappers as wrappers

    clock = Clock(per_call=0.02)

    class Slow(Fake):
        def _fault(self) -> None:
            clock.now += clock.per_call  # (each failing call takes a while)
            super()._fault()

    fake = Slow()
    fake.faults = [RemoteUnreachable("down")] * 1000
    monkeypatch.setattr(wrappers, "time", clock)
    with pytest.raises(RemoteUnreachable, match=r"after \d+ attempts"):
        quick(fake, attempts=1000, deadline=0.3).head("k")
    # it gave up before a wait would have ended past the deadline, not after 1,000 tries
    assert clock.now <= 0.3 + clock.per_call
    assert 3 < fake.calls < 1000


def test_listing_resumes_without_repeating_keys() -> None:
    fake = Fake({f"k{i}": b"" for i in range(5)})
    fake.faults = [None, None, None, RemoteUnreachable("dropped mid-listing")]
    assert list(quick(fake).list()) == [f"k{i}" for i in range(5)]


def test_a_broken_stream_resumes_where_it_stopped() -> None:
    data = bytes(range(100))
    fake = Fake({"k": data})
    fake.faults = [None, None, RemoteUnreachable("dropped mid-answer"), None]
    pieces = list(quick(fake).get_parts("k", 5, [10, 20, 30, 5]))
    assert pieces == [data[5:15], data[15:35], data[35:65], data[65:70]]
    assert fake.starts == [5, 35]  # asked again from the first piece not given


def test_conditional_write_whose_answer_was_lost_counts_as_done() -> None:
    fake = Fake()
    fake.lose_answers = 1
    etag = quick(fake).put_conditional("ref", b"v1", if_none_match=True)
    assert etag == fake.head("ref").etag
    assert fake.objects["ref"] == b"v1"


def test_conditional_write_lost_to_a_rival_still_fails_after_retry() -> None:
    fake = Fake({"ref": b"rival"})
    fake.faults = [RemoteUnreachable("down")]
    with pytest.raises(PreconditionFailed):
        quick(fake).put_conditional("ref", b"ours", if_none_match=True)
    assert fake.objects["ref"] == b"rival"


def test_conditional_delete_whose_answer_was_lost_counts_as_done() -> None:
    fake = Fake({"ref": b"v1"})
    fake.lose_answers = 1
    quick(fake).delete_conditional("ref", if_match=blake3.blake3(b"v1").hexdigest())
    assert "ref" not in fake.objects


def test_conditional_delete_lost_to_a_rival_still_fails_after_retry() -> None:
    fake = Fake({"ref": b"rival"})
    fake.faults = [RemoteUnreachable("down")]
    with pytest.raises(PreconditionFailed):
        quick(fake).delete_conditional("ref", if_match=blake3.blake3(b"ours").hexdigest())
    assert fake.objects["ref"] == b"rival"


# ----------------------------------------------------------------------------- concurrency limit


def test_limited_backend_caps_concurrent_calls() -> None:
    fake = Fake({"k": b"v"})
    fake.delay = 0.01
    limited = LimitedBackend(fake, 2)
    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(lambda _: limited.get("k"), range(24))) == {b"v"}
    assert fake.peak == 2


def test_limited_listing_does_not_hold_a_slot_between_keys() -> None:
    limited = LimitedBackend(Fake({f"k{i}": b"v" for i in range(3)}), 1)
    assert [limited.get(key) for key in limited.list()] == [b"v"] * 3  # no deadlock


# ----------------------------------------------------------------------------- network faults


def test_closed_port_is_unreachable_after_bounded_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    use_aws_keys(monkeypatch, "AKIDEXAMPLE", "not-a-secret")
    (port,) = free_ports(1)  # closed again: nothing listens there
    inner = open_backend("s3://bucket/p", endpoint_url=f"http://127.0.0.1:{port}", retry=False)
    with pytest.raises(RemoteUnreachable, match="connection failed"):
        inner.get("k")
    started = time.monotonic()
    for name, op in OPS.items():
        with pytest.raises(RemoteUnreachable, match=r"could not reach s3://bucket/p at .* after 3"):
            op(quick(inner, attempts=3))
        assert time.monotonic() - started < 10, name


def test_silent_server_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    use_aws_keys(monkeypatch, "AKIDEXAMPLE", "not-a-secret")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nobody ever answers
        endpoint = f"http://127.0.0.1:{silent.getsockname()[1]}"
        backend = S3Backend("bucket", endpoint_url=endpoint, read_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(RemoteUnreachable, match="timed out"):
            backend.head("k")
        assert time.monotonic() - started < 5


def test_no_credentials_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    use_aws_keys(monkeypatch, "", "")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    backend = open_backend("s3://bucket/p", endpoint_url="http://127.0.0.1:9")
    with pytest.raises(RemoteAuthError, match="no usable AWS credentials"):
        backend.get("k")


# ----------------------------------------------------------------------------- the real server


def test_wrong_secret_is_an_auth_error(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.make_bucket()
    secret = "wrong-secret-" + "x" * 27
    use_aws_keys(monkeypatch, s3_server.access_key, secret)
    backend = open_backend(f"s3://{bucket}/p", endpoint_url=s3_server.endpoint)
    started = time.monotonic()
    for name, op in OPS.items():
        with pytest.raises(RemoteAuthError) as caught:
            op(backend)
        wanted = "wrong credentials or no permission" if name == "head" else "wrong access key"
        assert wanted in str(caught.value), name
        assert secret not in str(caught.value)
    assert time.monotonic() - started < 2  # never retried


def test_unknown_access_key_is_an_auth_error(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.make_bucket()
    use_aws_keys(monkeypatch, "NOSUCHKEY0000", s3_server.secret_key)
    backend = open_backend(f"s3://{bucket}/p", endpoint_url=s3_server.endpoint)
    with pytest.raises(RemoteAuthError, match="InvalidAccessKeyId"):
        backend.put("k", b"x")


def test_missing_permission_is_an_auth_error(
    s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = s3_server.make_bucket()
    s3_server.client().put_object(Bucket=bucket, Key="p/k", Body=b"readable")
    use_aws_keys(monkeypatch, s3_server.reader_access_key, s3_server.reader_secret_key)
    backend = open_backend(f"s3://{bucket}/p", endpoint_url=s3_server.endpoint)
    assert backend.get("k") == b"readable"
    assert list(backend.list()) == ["k"]
    for op in (OPS["put"], OPS["delete"], OPS["create"]):
        with pytest.raises(RemoteAuthError, match="valid but lack permission"):
            op(backend)


def test_missing_bucket_is_named(s3_env: S3Server) -> None:
    backend = open_backend("s3://dvfs-no-such-bucket/p", endpoint_url=s3_env.endpoint)
    for name, op in OPS.items():
        wanted = "not found" if name == "head" else "bucket dvfs-no-such-bucket does not exist"
        with pytest.raises(RemoteNotFound, match=wanted):
            op(backend)
    assert "dvfs-no-such-bucket" not in [
        b["Name"] for b in s3_env.client().list_buckets()["Buckets"]
    ]


# ----------------------------------------------------------------------------- mapped S3 answers


@pytest.mark.parametrize(
    ("op", "code", "status", "error", "words"),
    [
        ("get", "SlowDown", 503, RemoteUnreachable, "try again later"),
        ("get", "InternalError", 500, RemoteUnreachable, "try again later"),
        ("get", "ExpiredToken", 400, RemoteAuthError, "rejected the credentials"),
        ("get", "AccessDenied", 403, RemoteAuthError, "lack permission"),
        ("get", "NoSuchBucket", 404, RemoteNotFound, "bucket bucket does not exist"),
        ("cas", "PreconditionFailed", 412, PreconditionFailed, "changed by someone else"),
        ("cas", "ConditionalRequestConflict", 409, PreconditionFailed, "changed by someone"),
        ("cas", "NoSuchKey", 404, PreconditionFailed, "changed by someone else"),
        ("put", "InvalidStorageClass", 400, RemoteError, "refused k: InvalidStorageClass"),
    ],
)
def test_s3_answers_are_mapped(
    monkeypatch: pytest.MonkeyPatch,
    op: str,
    code: str,
    status: int,
    error: type[Exception],
    words: str,
) -> None:
    use_aws_keys(monkeypatch, "AKIDEXAMPLE", "not-a-secret")
    backend = S3Backend("bucket", "p", endpoint_url="http://127.0.0.1:9")
    calls: dict[str, tuple[str, Op]] = {
        "get": ("get_object", OPS["get"]),
        "put": ("put_object", OPS["put"]),
        "cas": ("put_object", lambda b: b.put_conditional("k", b"x", if_match='"e"')),
    }
    method, call = calls[op]
    with Stubber(backend._client) as stub:
        stub.add_client_error(method, service_error_code=code, http_status_code=status)
        with pytest.raises(error, match=words) as caught:
            call(backend)
    assert type(caught.value) is error


def test_s3_server_trouble_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    use_aws_keys(monkeypatch, "AKIDEXAMPLE", "not-a-secret")
    backend = S3Backend("bucket", "p", endpoint_url="http://127.0.0.1:9")
    with Stubber(backend._client) as stub:
        stub.add_client_error("head_object", service_error_code="503", http_status_code=503)
        stub.add_client_error("head_object", service_error_code="SlowDown", http_status_code=503)
        stub.add_response("head_object", {"ContentLength": 3, "ETag": '"abc"'})
        assert quick(backend).head("k") == ObjectInfo(3, '"abc"')
        stub.assert_no_pending_responses()
