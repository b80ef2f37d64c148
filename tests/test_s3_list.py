"""Listing an S3 remote whatever its server answers: every key once, or one error.

A relay on loopback answers the first ListObjectsV2 requests itself, as a broken or
hostile server would: a page that says more follows and points back at a page
already read, names no page at all, or one empty page after another, must end the
listing with an error naming the remote, never loop for ever or fail with a traceback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import pytest

from tests.support.relay import Tamper
from tests.support.s3server import S3Server
from vfs.backends import open_backend
from vfs.backends import s3 as s3_backend
from vfs.errors import RemoteError, RemoteUnreachable


def _page(
    where: str, keys: list[str], token: str | None, truncated: bool = True,
    whole: Sequence[str] = (),
) -> bytes:  # fmt: skip
    """A ListObjectsV2 answer holding ``keys`` of the remote at ``where`` and ``whole``
    keys of the bucket as they are."""
    bucket, prefix = where.split("/", 1)
    contents = "".join(
        f"<Contents><Key>{k}</Key><Size>3</Size><ETag>&quot;e&quot;</ETag>"
        "<LastModified>2026-01-01T00:00:00.000Z</LastModified></Contents>"
        for k in [*(f"{prefix}/{k}" for k in keys), *whole]
    )
    nxt = f"<NextContinuationToken>{token}</NextContinuationToken>" if token else ""
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        f"<Name>{bucket}</Name><Prefix>{prefix}/packs/</Prefix><KeyCount>{len(keys)}</KeyCount>"
        f"<MaxKeys>1000</MaxKeys><IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
        f"{nxt}{contents}</ListBucketResult>"
    ).encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\nConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    ) + body


@contextlib.contextmanager
def relayed(s3_env: S3Server, answers: list[bytes]) -> Iterator[Tamper]:
    """A relay in front of ``s3_env`` whose first connections get ``answers``."""
    relay = Tamper(int(s3_env.endpoint.rsplit(":", 1)[1]), answers)
    try:
        yield relay
    finally:
        relay.cut()


def _listing(relay: Tamper, where: str) -> list[str]:
    backend = open_backend(f"s3://{where}", endpoint_url=relay.endpoint, retry=False)
    return list(backend.list("packs/"))


def test_a_listing_that_points_back_at_a_page_read_ends_in_an_error(s3_env: S3Server) -> None:
    """Page 1 says "more: t1", page 2 says "more: t1" again: a client that follows
    the tokens would ask for page 2 for ever, each time with the same keys."""
    where = s3_env.make_prefix()
    pages = [_page(where, ["packs/a"], "t1"), *[_page(where, ["packs/b"], "t1")] * 20]
    with relayed(s3_env, pages) as relay, pytest.raises(RemoteError) as raised:
        _listing(relay, where)
    assert "repeats" in str(raised.value) and relay.endpoint in str(raised.value)
    assert not isinstance(raised.value, RemoteUnreachable)  # listing again would do the same
    assert len(relay.requests) == 2


def test_a_page_that_says_more_follows_but_not_where_ends_in_an_error(s3_env: S3Server) -> None:
    where = s3_env.make_prefix()
    with (
        relayed(s3_env, [_page(where, ["packs/a"], None)]) as relay,
        pytest.raises(RemoteError, match="no next page") as raised,
    ):
        _listing(relay, where)
    assert relay.endpoint in str(raised.value)


def test_a_listing_of_empty_pages_without_end_ends_in_an_error(
    s3_env: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each page names a new next one and holds no key: after ``EMPTY_PAGES`` (lowered
    here) of them in a row, the listing ends in an error. Empty pages between pages
    of keys, as a real server may give, end nothing."""
    monkeypatch.setattr(s3_backend, "EMPTY_PAGES", 3)
    where = s3_env.make_prefix()
    pages = [
        _page(where, [], "t1"),
        _page(where, [], "t2"),
        _page(where, ["packs/a"], "t3"),
        _page(where, [], "t4"),
        _page(where, [], "t5"),
        _page(where, ["packs/b"], None, truncated=False),
    ]
    with relayed(s3_env, pages) as relay:
        assert _listing(relay, where) == ["packs/a", "packs/b"]
    endless = [_page(where, [], f"t{n}") for n in range(20)]
    with (
        relayed(s3_env, endless) as relay,
        pytest.raises(RemoteError, match="3 empty pages in a row"),
    ):
        _listing(relay, where)
    assert len(relay.requests) == 3


def test_keys_outside_the_prefix_asked_for_are_not_listed(s3_env: S3Server) -> None:
    """A server answering with keys under another prefix (another repository in the
    bucket whose name is as long, or another folder of this one) gives none of them:
    they are not what was asked for, and cut to the prefix's length they would read
    as keys of it."""
    where = s3_env.make_prefix()
    prefix = where.split("/", 1)[1]
    foreign = [f"{'x' * len(prefix)}/packs/b", f"{prefix}/refs/heads/c"]
    with relayed(s3_env, [_page(where, ["packs/a"], None, False, foreign)]) as relay:
        assert _listing(relay, where) == ["packs/a"]


HUGE_ANSWERS = {
    "a length past the bound": b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
    b"Content-Length: %d\r\n\r\n" % (1 << 40),
    "no length, bytes until the end": b"HTTP/1.1 200 OK\r\nContent-Type: application/xml\r\n"
    b"Connection: close\r\n\r\n",
    "an error past the bound": b"HTTP/1.1 500 Internal Server Error\r\n"
    b"Content-Type: application/xml\r\nConnection: close\r\n\r\n",
}


@pytest.mark.parametrize("head", list(HUGE_ANSWERS.values()), ids=list(HUGE_ANSWERS))
def test_an_answer_larger_than_any_listing_page_is_not_read_into_memory(
    s3_env: S3Server, head: bytes
) -> None:
    """A page of 1,000 keys is under 2 MiB: a server answering a listing (or with an
    error) of more than ``RESPONSE_LIMIT`` bytes is refused in one error naming the
    remote, past the bound read no further, where the whole body was read into
    memory before anything looked at it."""
    where = s3_env.make_prefix()
    body = b"<" + b"x" * (17 << 20)  # past RESPONSE_LIMIT, 16 MiB
    with relayed(s3_env, [head + body]) as relay, pytest.raises(RemoteError) as raised:
        _listing(relay, where)
    line = str(raised.value)
    assert "more than 16 MiB" in line and relay.endpoint in line, line
    assert not isinstance(raised.value, RemoteUnreachable)  # asking again gets the same


def test_a_listing_page_cut_short_is_unreachable_and_asked_again(s3_env: S3Server) -> None:
    """A page whose connection ends before its length: the network's fault, so the
    listing is asked for again (RetryingBackend), and the server's answer then is the
    real one."""
    where = s3_env.make_prefix()
    open_backend(f"s3://{where}", endpoint_url=s3_env.endpoint).put("packs/a", b"x")
    page = _page(where, ["packs/a"], None, truncated=False)
    cut = page[: page.index(b"<Contents>")]
    with relayed(s3_env, [cut]) as relay:
        with pytest.raises(RemoteUnreachable):
            _listing(relay, where)
        relay.answers = [cut]
        retrying = open_backend(f"s3://{where}", endpoint_url=relay.endpoint)
        assert list(retrying.list("packs/")) == ["packs/a"]
