"""Ranged GETs sent without boto3 (``vfs.backends.s3_get``: ``get`` of a range and
``get_parts``): the bytes asked for or an error, whatever a server in front of the
real one answers.

A relay on loopback answers the first GETs itself, as a broken or hostile server
would, and passes every later connection on to the real SeaweedFS: the backend must
refuse each bad answer, ask again through boto3 and give the object's true bytes.
A server that answers boto3 as badly is refused there too (RemoteError), never read
past the bytes asked for.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from tests.support.data import rand
from tests.support.relay import Tamper
from tests.support.s3server import S3Server
from vfs.backends import open_backend
from vfs.backends.s3 import S3Backend
from vfs.backends.s3_get import HEAD_LIMIT
from vfs.errors import RemoteError, RemoteNotFound, RemoteUnreachable


@contextlib.contextmanager
def tampered(s3_env: S3Server, answers: list[bytes]) -> Iterator[tuple[Tamper, str]]:
    """A relay in front of ``s3_env`` and a place (``BUCKET/PREFIX``, a new prefix of the
    session's bucket) holding ``k`` (its bytes: ``DATA``)."""
    where = s3_env.make_prefix()
    open_backend(f"s3://{where}", endpoint_url=s3_env.endpoint).put("k", DATA)
    relay = Tamper(int(s3_env.endpoint.rsplit(":", 1)[1]), answers)
    try:
        yield relay, where
    finally:
        relay.cut()


DATA = rand(200_000, seed=7)
WRONG = bytes(100)


def _ok(start: int, body: bytes, extra: bytes = b"") -> bytes:
    end = start + len(body) - 1
    return (
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
        b"Content-Range: bytes %d-%d/200000\r\n%s\r\n" % (len(body), start, end, extra)
    ) + body


BAD_ANSWERS = {
    "another range": _ok(0, WRONG),
    "longer than asked": _ok(10, WRONG + WRONG),
    "length twice": _ok(10, WRONG, b"Content-Length: 100\r\n"),
    "chunked": b"HTTP/1.1 206 OK\r\nTransfer-Encoding: chunked\r\n"
    b"Content-Range: bytes 10-109/200000\r\n\r\n64\r\n" + WRONG + b"\r\n0\r\n\r\n",
    "encoded": _ok(10, WRONG, b"Content-Encoding: gzip\r\n"),
    "whole object for a range": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + WRONG,
    "length not a number": b"HTTP/1.1 206 OK\r\nContent-Length: 1e2\r\n"
    b"Content-Range: bytes 10-109/200000\r\n\r\n" + WRONG,
    "range disagrees with length": b"HTTP/1.1 206 OK\r\nContent-Length: 100\r\n"
    b"Content-Range: bytes 10-59/200000\r\n\r\n" + WRONG,
    "more body than length": _ok(10, WRONG) + b"trailing",
    "not HTTP": b"SSH-2.0-OpenSSH_9.6\r\n\r\n" + WRONG,
    "endless headers": b"HTTP/1.1 206 OK\r\n" + b"X-Pad: " + b"a" * HEAD_LIMIT + b"\r\n\r\n",
    "a 500": b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n",
}


@pytest.mark.parametrize("answer", list(BAD_ANSWERS.values()), ids=list(BAD_ANSWERS))
def test_a_bad_answer_is_asked_again_through_boto3(s3_env: S3Server, answer: bytes) -> None:
    for how in ("get_parts", "get"):
        with tampered(s3_env, [answer]) as (relay, where):
            backend = open_backend(f"s3://{where}", endpoint_url=relay.endpoint, retry=False)
            if how == "get":
                assert backend.get("k", 10, 100) == DATA[10:110]
            else:
                assert b"".join(backend.get_parts("k", 10, [40, 60])) == DATA[10:110]
            assert len(relay.requests) == 1  # the bad answer was this way's, the good boto3's
            assert relay.requests[0].startswith(b"GET /" + where.encode() + b"/k HTTP/1.1\r\n")


HUGE = 64 * 1024 * 1024  # what a hostile server says it sends for 100 bytes asked
OTHER_RANGES = {
    "another range": BAD_ANSWERS["another range"],
    "longer than asked": b"HTTP/1.1 206 Partial Content\r\nContent-Length: %d\r\n"
    b"Content-Range: bytes 10-%d/200000000\r\n\r\n" % (HUGE, HUGE + 9) + bytes(1 << 20),
    "whole object for a range": BAD_ANSWERS["whole object for a range"],
}


@pytest.mark.parametrize("answer", list(OTHER_RANGES.values()), ids=list(OTHER_RANGES))
def test_a_server_answering_boto3_with_other_bytes_is_refused(
    s3_env: S3Server, answer: bytes
) -> None:
    """Neither the raw way nor boto3 takes another range (or more of it) for the bytes
    asked: the object's bytes 0-99 are not those from 10, and a body of 64 MiB for 100
    bytes asked is not read into memory."""
    for how in ("get_parts", "get"):
        with tampered(s3_env, [answer, answer]) as (relay, where):
            backend = open_backend(f"s3://{where}", endpoint_url=relay.endpoint, retry=False)
            with pytest.raises(RemoteError, match=r"answered .*bytes 10-109 of k") as raised:
                if how == "get":
                    backend.get("k", 10, 100)
                else:
                    b"".join(backend.get_parts("k", 10, [40, 60]))
            assert not isinstance(raised.value, RemoteUnreachable)  # the same if asked again
            assert len(relay.requests) == 2  # the raw way's, then boto3's


def test_a_body_cut_short_is_unreachable_and_retried(s3_env: S3Server) -> None:
    cut = _ok(10, DATA[10:110])[:-30]  # headers say 100 bytes; 70 come, then the end
    with tampered(s3_env, [cut]) as (relay, where):
        plain = open_backend(f"s3://{where}", endpoint_url=relay.endpoint, retry=False)
        pieces = plain.get_parts("k", 10, [40, 60])
        assert next(pieces) == DATA[10:50]  # (the first piece had come whole)
        with pytest.raises(RemoteUnreachable, match="ended its answer after 70 of 100 bytes"):
            next(pieces)
    with tampered(s3_env, [cut]) as (relay, where):
        retried = open_backend(f"s3://{where}", endpoint_url=relay.endpoint)
        assert b"".join(retried.get_parts("k", 10, [40, 60])) == DATA[10:110]


def test_good_answers_are_read_this_way_and_errors_mapped_as_before(s3_env: S3Server) -> None:
    where = s3_env.make_prefix()
    backend = open_backend(f"s3://{where}", endpoint_url=s3_env.endpoint, retry=False)
    assert isinstance(backend, S3Backend)
    backend.put("k", DATA)
    assert b"".join(backend.get_parts("k", 0, [1, 99_999, 100_000])) == DATA
    assert backend._raw is not None  # what was read came without boto3
    assert list(backend.get_parts("k", 199_990, [5, 10, 5])) == [
        DATA[199_990:199_995],
        DATA[199_995:],
        b"",
    ]  # past the end: short, then empty
    assert list(backend.get_parts("k", 300_000, [3])) == [b""]  # starts past the end
    assert backend.get("k", 5, 10) == DATA[5:15]
    assert backend.get("k", 199_990, 50) == DATA[199_990:]
    assert backend.get("k", 300_000, 5) == b""
    with pytest.raises(RemoteNotFound):
        backend.get("missing", 0, 10)
    with pytest.raises(RemoteNotFound):
        list(backend.get_parts("missing", 0, [10]))


def test_a_kept_connection_the_server_closed_is_replaced(s3_env: S3Server) -> None:
    with tampered(s3_env, []) as (relay, where):
        backend = open_backend(f"s3://{where}", endpoint_url=relay.endpoint, retry=False)
        for _ in range(3):
            assert b"".join(backend.get_parts("k", 10, [40, 60])) == DATA[10:110]
            relay.drop()  # idle too long: the server hangs up
