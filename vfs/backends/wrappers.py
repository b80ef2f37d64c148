"""Behaviour stacked around a backend: retries and a concurrency limit.

Both wrappers are backends themselves, so they stack; the intended order is
``RetryingBackend(LimitedBackend(backend, n))``, so that a call waiting out a
back-off does not hold one of the ``n`` slots.

Only ``RemoteUnreachable`` is retried (connection failures, timeouts, 5xx and
throttling, which the backends map to it): a wrong password, a missing key or a lost
race gives the same answer the second time, so those are raised at once.

Retrying a conditional write needs care: if an attempt wrote the object and only
its answer was lost, the next attempt fails its own precondition. So when a retry
of ``put_conditional`` ends in ``PreconditionFailed`` after an unreachable attempt,
the stored bytes are read back; if they are ours, the write counts as done. (If a
rival wrote the very same bytes, that is reported as our success: the stored state
is the one we asked for either way.)
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import TypeVar

from vfs.backends.base import Backend, ObjectInfo, Refused
from vfs.errors import PreconditionFailed, RemoteError, RemoteNotFound, RemoteUnreachable

T = TypeVar("T")


class RetryingBackend(Backend):
    """Retry ``RemoteUnreachable`` with exponential back-off and jitter.

    Attempt ``n`` waits ``min(max_delay, base_delay * 2**(n-1))`` times a random
    factor in [0.5, 1] before the next. It gives up after ``attempts`` attempts, or
    when the next wait would end past ``deadline`` seconds from the first attempt,
    raising ``RemoteUnreachable("could not reach <url> after N attempts ...")``.
    """

    def __init__(
        self,
        inner: Backend,
        *,
        attempts: int = 6,
        base_delay: float = 0.25,
        max_delay: float = 8.0,
        deadline: float = 60.0,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self.inner = inner
        self.url = inner.url
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.deadline = deadline

    def put(self, key: str, data: bytes) -> None:
        self._call(lambda: self.inner.put(key, data))

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        return self._call(lambda: self.inner.get(key, start, length))

    def get_small(self, key: str, limit: int) -> bytes:
        return self._call(lambda: self.inner.get_small(key, limit))

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        """Yield the inner pieces; after a failure, ask again for the pieces not given yet.

        The new request starts where the last piece given ended, so no byte is read
        twice and the caller sees each piece once.
        """
        given, at = 0, start
        attempt, started = 1, time.monotonic()
        while True:
            progress = given
            try:
                for piece in self.inner.get_parts(key, at, lengths[given:]):
                    at += lengths[given]
                    given += 1
                    yield piece
                return
            except RemoteUnreachable as exc:
                if given > progress:  # it got further since the last failure: start afresh
                    attempt, started = 1, time.monotonic()
                self._pause(attempt, started, exc)
                attempt += 1

    def head(self, key: str) -> ObjectInfo:
        return self._call(lambda: self.inner.head(key))

    def stat(self, key: str) -> ObjectInfo:
        return self._call(lambda: self.inner.stat(key))

    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield the inner listing; after a failure, list again and skip keys already given."""
        seen: set[str] = set()
        attempt, started, progress = 1, time.monotonic(), 0
        while True:
            try:
                for key in self.inner.list(prefix):
                    if key not in seen:
                        seen.add(key)
                        yield key
                return
            except RemoteUnreachable as exc:
                if len(seen) > progress:  # it got further since the last failure: start afresh
                    attempt, started, progress = 1, time.monotonic(), len(seen)
                self._pause(attempt, started, exc)
                attempt += 1

    def content_etag(self, data: bytes) -> str | None:
        return self.inner.content_etag(data)

    def list_info(
        self, prefix: str = "", *, etags: bool = True, refused: Refused | None = None
    ) -> Iterator[tuple[str, ObjectInfo]]:
        """As ``list``: after a failure, list again and skip keys already given."""
        seen: set[str] = set()
        attempt, started, progress = 1, time.monotonic(), 0
        while True:
            try:
                for key, info in self.inner.list_info(prefix, etags=etags, refused=refused):
                    if key not in seen:
                        seen.add(key)
                        yield key, info
                return
            except RemoteUnreachable as exc:
                if len(seen) > progress:
                    attempt, started, progress = 1, time.monotonic(), len(seen)
                self._pause(attempt, started, exc)
                attempt += 1

    def delete(self, key: str) -> None:
        self._call(lambda: self.inner.delete(key))

    def delete_conditional(self, key: str, *, if_match: str) -> None:
        """As ``put_conditional``: when an attempt may have deleted the key and only its
        answer was lost, a retry that finds the key gone counts as done."""
        ambiguous = False

        def attempt() -> None:
            nonlocal ambiguous
            try:
                self.inner.delete_conditional(key, if_match=if_match)
            except RemoteUnreachable:
                ambiguous = True
                raise

        try:
            self._call(attempt)
        except PreconditionFailed:
            if not ambiguous or self._exists(key):
                raise

    def _exists(self, key: str) -> bool:
        try:
            self.stat(key)
            return True
        except RemoteNotFound:
            return False

    def remove_temporaries(self, older_than: float) -> tuple[int, int]:
        return self._call(lambda: self.inner.remove_temporaries(older_than))

    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        ambiguous = False

        def attempt() -> str:
            nonlocal ambiguous
            try:
                return self.inner.put_conditional(
                    key, data, if_match=if_match, if_none_match=if_none_match
                )
            except RemoteUnreachable:
                ambiguous = True  # the write may have happened, its answer lost
                raise

        try:
            return self._call(attempt)
        except PreconditionFailed:
            if not (ambiguous and self._holds(key, data)):
                raise
            return self.head(key).etag

    def _holds(self, key: str, data: bytes) -> bool:
        try:
            return self.get(key, 0, len(data) + 1) == data
        except RemoteNotFound:
            return False

    def _call(self, fn: Callable[[], T]) -> T:
        started = time.monotonic()
        attempt = 1
        while True:
            try:
                return fn()
            except RemoteUnreachable as exc:
                self._pause(attempt, started, exc)
                attempt += 1

    def _pause(self, attempt: int, started: float, exc: RemoteUnreachable) -> None:
        """Sleep before attempt ``attempt + 1``, or raise the final error instead."""
        delay = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        delay *= random.uniform(0.5, 1.0)
        elapsed = time.monotonic() - started
        if attempt >= self.attempts or elapsed + delay > self.deadline:
            raise RemoteUnreachable(
                f"could not reach {self.url} after {attempt} attempts in {elapsed:.1f} s; "
                f"last error: {exc}"
            ) from exc
        time.sleep(delay)


class LimitedBackend(Backend):
    """Let at most ``max_concurrency`` calls run in the inner backend at once.

    A listing holds a slot only while it fetches the next key (one page request at
    most), never while the caller works on a key: a caller that reads every listed
    object through the same backend cannot deadlock on its own listing.
    """

    def __init__(self, inner: Backend, max_concurrency: int) -> None:
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")
        self.inner = inner
        self.url = inner.url
        self.reads_in_bulk = inner.reads_in_bulk
        self.writes_in_bulk = inner.writes_in_bulk
        self._slots = threading.BoundedSemaphore(max_concurrency)

    def put(self, key: str, data: bytes) -> None:
        with self._slots:
            self.inner.put(key, data)

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        with self._slots:
            return self.inner.get(key, start, length)

    def get_small(self, key: str, limit: int) -> bytes:
        with self._slots:
            return self.inner.get_small(key, limit)

    def get_small_many(
        self, keys: Sequence[str], limit: int, jobs: int = 16
    ) -> list[bytes | RemoteError | None]:
        if not self.inner.reads_in_bulk:
            return super().get_small_many(keys, limit, jobs)  # each in a slot
        with self._slots:
            return self.inner.get_small_many(keys, limit, jobs)

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        """The inner pieces, the slot held from the request until the last piece is
        read or the caller stops (one request, one connection, however long)."""
        with self._slots:
            yield from self.inner.get_parts(key, start, lengths)

    def head(self, key: str) -> ObjectInfo:
        with self._slots:
            return self.inner.head(key)

    def stat(self, key: str) -> ObjectInfo:
        with self._slots:
            return self.inner.stat(key)

    def list(self, prefix: str = "") -> Iterator[str]:
        yield from self._slotted(self.inner.list(prefix))

    def list_info(
        self, prefix: str = "", *, etags: bool = True, refused: Refused | None = None
    ) -> Iterator[tuple[str, ObjectInfo]]:
        yield from self._slotted(self.inner.list_info(prefix, etags=etags, refused=refused))

    def content_etag(self, data: bytes) -> str | None:
        return self.inner.content_etag(data)

    def _slotted(self, items: Iterator[T]) -> Iterator[T]:
        """``items``, each next one taken in a slot (a listing page is a request)."""
        while True:
            with self._slots:
                item = next(items, None)
            if item is None:
                return
            yield item

    def delete(self, key: str) -> None:
        with self._slots:
            self.inner.delete(key)

    def delete_conditional(self, key: str, *, if_match: str) -> None:
        with self._slots:
            self.inner.delete_conditional(key, if_match=if_match)

    def create_many(
        self, items: Sequence[tuple[str, bytes]], *, in_order: bool = False, jobs: int = 1
    ) -> Sequence[bool]:
        if not self.inner.writes_in_bulk:
            return super().create_many(items, in_order=in_order, jobs=jobs)  # each in a slot
        with self._slots:
            return self.inner.create_many(items, in_order=in_order, jobs=jobs)

    def remove_temporaries(self, older_than: float) -> tuple[int, int]:
        with self._slots:
            return self.inner.remove_temporaries(older_than)

    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        with self._slots:
            return self.inner.put_conditional(
                key, data, if_match=if_match, if_none_match=if_none_match
            )
