"""The backend interface: six operations on named byte strings, nothing more.

(A seventh and an eighth, ``get_small`` and ``get_parts``, are written once here in
terms of ``get``; a backend that can do them more cheaply overrides them.)

A backend stores immutable-by-convention objects under keys (``packs/<id>``,
``index/<id>``, ``refs/heads/main``). Everything else (retries, concurrency limits,
caching) is a wrapper around a backend (see ``vfs.backends.wrappers``), not a
feature of each implementation, as in restic.

Contract, for every implementation:

- **Keys** are relative paths: segments of ``[A-Za-z0-9._-]`` joined by single ``/``,
  no empty segment, no segment starting with ``.`` (so no ``.``/``..`` and no hidden
  names, which backends keep for their temporary and lock files). S3 servers such as
  SeaweedFS treat keys as paths (``a//b`` is stored as ``a/b``), so only keys that
  every store keeps verbatim are accepted. A key must not also be the directory of
  another key (``a`` and ``a/b``): a local directory cannot hold both. A bad key
  raises :class:`~vfs.errors.UsageError`.
- **put** is atomic: a reader sees the old object, the new one, or (for a new key)
  nothing; never a partial object.
- **get** returns ``length`` bytes from ``start`` (all the rest when ``length`` is
  None); fewer if the object ends first, ``b""`` if ``start`` is at or past the end.
  A range is one ranged GET on S3 and one ``pread`` locally.
- **get_small** returns a whole object that is small by nature (a ref, the format
  record, an index segment), refusing with ``RemoteError`` one larger than ``limit``
  without reading more than ``limit + 1`` bytes of it (locally: without reading it).
- **get_parts** reads one range with one request and yields it in consecutive pieces
  of the ``lengths`` asked for, as the bytes arrive (S3 streams the answer), so a
  reader works on the first piece while the rest is on its way and never holds the
  whole range; pieces past the end of the object are short or empty. A piece is
  ``bytes`` or a view (S3 receives each into a page-aligned buffer of its own).
- **head** returns size, ETag and the time of the last write by the server's clock;
  **stat** the same for a caller that needs no ETag (it may be ``""``: a directory
  remote then reads nothing of the file), and ``list_info(prefix, etags=False)`` lists
  with ``stat``'s information.
  ETags are opaque strings: compare them for equality and pass them back to
  ``put_conditional``, never parse them. They derive from the content (S3's MD5, the
  local BLAKE3), so rewriting the same bytes keeps the ETag: a compare-and-swap guards
  the value, not the number of writes.
- **list** yields every key under a prefix (a plain string prefix, as in S3), lazily,
  page by page, in no particular order (SeaweedFS lists ``a/b`` before ``a-c``).
- **delete** removes a key; a missing key is not an error.
- **put_conditional** writes only if the key does not exist (``if_none_match``) or
  still has the ETag ``if_match``, and returns the new ETag. The check and the write
  are one atomic step for every writer that uses ``put_conditional``; a writer that
  lost the race gets :class:`~vfs.errors.PreconditionFailed` and nothing changes.

Errors are ``vfs.errors`` types only: ``RemoteNotFound`` for a missing key, bucket or
directory; ``RemoteUnreachable`` for a remote that did not answer (the one error
worth retrying); ``RemoteAuthError`` for refused credentials or permission;
``PreconditionFailed`` for a lost conditional write; ``StorageFull`` when a local disk
fills up; ``RemoteError`` for anything else. Messages are one line, name the place
(``url``), and never contain a secret.

Credentials never travel in a URL: a remote URL or an endpoint carrying
``user:password@`` is refused (:func:`refuse_credentials`) before it is stored, put on
a command line or used, and :func:`redact_url` hides that part wherever one already
stored must be shown.
"""

from __future__ import annotations

import abc
import os
import re
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from vfs.errors import (
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    RemoteObjectRefused,
    UsageError,
)
from vfs.quoting import quote_given

_SEGMENT = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_AUTHORITY = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)([^/?#]*)@")
CREDENTIAL_CHAIN = (
    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY in the environment, a profile (--profile) "
    "or an instance role"
)


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` shown as ``***@``, so that it can be printed."""
    return _AUTHORITY.sub(r"\1***@", url, count=1)


def refuse_credentials(url: str, what: str = "the URL") -> None:
    """UsageError if ``url`` carries a user name or password (``scheme://user:pass@...``).

    Such a URL would be written to ``.dvfs/config``, shown by ``remote list`` and put
    on the mount daemon's command line, which every local user can read.
    """
    if _AUTHORITY.match(url):
        raise UsageError(
            f"{what} {redact_url(url)} carries a user name or password, which dvfs never "
            f"stores or sends: remove the part before '@' and give the keys through "
            f"{CREDENTIAL_CHAIN}"
        )


def check_endpoint(endpoint: str, what: str = "the endpoint URL") -> None:
    """UsageError unless ``endpoint`` is an S3 endpoint URL an S3 client takes:
    ``http://`` or ``https://``, a host, a port (if any) from 1 to 65535, no query
    or fragment, no user name or password (:func:`refuse_credentials`)."""
    refuse_credentials(endpoint, what)
    parts = urlsplit(endpoint)
    try:
        port = parts.port  # (ValueError: not a number, or out of range)
    except ValueError:
        port = 0
    ok = parts.scheme.lower() in ("http", "https") and bool(parts.hostname)
    if not ok or port == 0 or "?" in endpoint or "#" in endpoint:
        raise UsageError(
            f"bad endpoint URL {quote_given(endpoint)}: write it with its scheme, as "
            "http://host:port or https://host (a port from 1 to 65535, nothing after "
            "'?' or '#')"
        )


def s3_endpoint(endpoint_url: str | None) -> str | None:
    """The S3 endpoint in effect: ``endpoint_url`` if given, else ``AWS_ENDPOINT_URL_S3``,
    else ``AWS_ENDPOINT_URL`` (as the AWS tools read them); None for AWS itself."""
    return (
        endpoint_url
        or os.environ.get("AWS_ENDPOINT_URL_S3")
        or os.environ.get("AWS_ENDPOINT_URL")
        or None
    )


Refused = Callable[[RemoteObjectRefused], None]
"""Told of each key a listing (``Backend.list_info``) leaves out as no object."""


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` tells about a stored object."""

    size: int
    etag: str
    modified: float = 0.0
    """When the object was last written, in seconds since the epoch by the server's clock
    (S3's ``LastModified``, whole seconds; a file's mtime). Remote gc compares these with
    each other, never with the local clock."""


def validate_key(key: str) -> str:
    """Return ``key`` if it is a clean relative key (see the module docstring), else raise."""
    if not key or not all(_SEGMENT.fullmatch(seg) for seg in key.split("/")):
        raise UsageError(
            f"invalid storage key {quote_given(key)}: use names of ASCII letters, digits, '.', '_' "
            "and '-' joined by single '/', not starting with '.' or '/'"
        )
    return key


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if it is empty or a valid key with at most one trailing ``/``."""
    if prefix:
        validate_key(prefix.removesuffix("/"))
    return prefix


class Backend(abc.ABC):
    """A store of objects under keys; see the module docstring for the contract.

    Implementations are safe to call from several threads at once.
    """

    url: str
    """Where the objects live, for messages (``s3://bucket/prefix``, ``file:///dir``)."""

    @abc.abstractmethod
    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``, replacing any object there, atomically."""

    @abc.abstractmethod
    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        """Return ``length`` bytes of ``key`` from ``start`` (the rest if None)."""

    def get_small(self, key: str, limit: int) -> bytes:
        """All of ``key``; RemoteError if it holds more than ``limit`` bytes.

        At most ``limit + 1`` bytes are transferred (one ranged GET), so an object that
        is huge where a small record belongs cannot exhaust memory. Wrappers forward
        this call, so that a backend that can tell the size first (a local file) does.
        """
        data = self.get(key, 0, limit + 1)
        if len(data) > limit:
            raise too_large(key, self.url, limit)
        return data

    reads_in_bulk: bool = False
    """True where :meth:`get_small_many` reads many keys as one step (a directory
    remote: each folder opened once, the files read in turn), not one request each."""

    def get_small_many(
        self, keys: Sequence[str], limit: int, jobs: int = 16
    ) -> list[bytes | RemoteError | None]:
        """:meth:`get_small` of each of ``keys``: its bytes, why it cannot be read
        (RemoteError), or None for a key that is not there; ``jobs`` at once.

        Wrappers forward it where the store reads in bulk (``reads_in_bulk``), so
        that a directory remote's many refs cost no thread hop and no walk from the
        root each; elsewhere this default runs each through ``get_small``.
        """

        def one(key: str) -> bytes | RemoteError | None:
            try:
                return self.get_small(key, limit)
            except RemoteNotFound:
                return None
            except RemoteError as exc:
                return exc

        if len(keys) < 2 or jobs < 2:
            return [one(key) for key in keys]
        from concurrent.futures import ThreadPoolExecutor  # (loaded when used)

        with ThreadPoolExecutor(min(jobs, len(keys))) as pool:
            return list(pool.map(one, keys))

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        """Pieces of ``key`` from ``start``, of ``lengths`` bytes each, one after the other.

        One request for the whole range. This default reads it with one ``get`` and
        cuts it; a backend that can hand the pieces over as they arrive (S3, a directory) does, and
        wrappers forward the call.
        """
        check_range(start, 0)
        data = self.get(key, start, sum(lengths))
        at = 0
        for n in lengths:
            check_range(start, n)
            yield data[at : at + n]
            at += n

    @abc.abstractmethod
    def head(self, key: str) -> ObjectInfo:
        """Return the size and ETag of ``key``; RemoteNotFound if it is missing."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[str]:
        """Yield every key that starts with ``prefix``, lazily, in no particular order."""

    def stat(self, key: str) -> ObjectInfo:
        """``head`` for a caller that needs the size and time of the last write alone:
        the ETag may be ``""``. A directory remote then reads nothing of the file (its
        ETag hashes all of it: a whole pack for its size); S3 gives it anyway. This
        default asks ``head``; wrappers forward it."""
        return self.head(key)

    def list_info(
        self, prefix: str = "", *, etags: bool = True, refused: Refused | None = None
    ) -> Iterator[tuple[str, ObjectInfo]]:
        """Yield ``(key, info)`` for every key that starts with ``prefix``, in no order.

        S3 answers this with the listing itself (ListObjectsV2 gives each key's size,
        ETag and LastModified); this default asks ``head`` for each listed key (``stat``
        with ``etags=False``: sizes and times only, the ETags maybe ``""``, and a key
        refused as no object, such as a link in a directory, left out as S3 never lists
        one, its refusal given to ``refused`` for a caller that names it) and skips a
        key deleted in between, and a name that is no valid key (which ``list`` of a
        directory gives, for callers that warn of them). Wrappers forward it.
        """
        ask = self.head if etags else self.stat
        for key in self.list(prefix):
            try:
                validate_key(key)
            except UsageError:  # written by other tools (a directory's "Copy of x"): skip,
                continue  # as S3's listing does
            try:
                yield key, ask(key)
            except RemoteNotFound:
                continue
            except RemoteObjectRefused as exc:
                if etags:  # (a reader of ETags is told: the audit chain names it)
                    raise
                if refused is not None:  # no object (a link, a FIFO in a directory):
                    refused(exc)  # not listed

    def content_etag(self, data: bytes) -> str | None:
        """The ETag a listing (``list_info``) shows for an object holding ``data`` if that
        listing comes with the ETags at no extra cost and they are computed from the bytes
        alone; None otherwise (by default).

        Lets a reader of many small objects (a remote's refs) skip the GET of one whose
        listed ETag says it holds bytes already known. A store that computes ETags
        otherwise (S3 with KMS encryption) merely never matches: every object is read.
        """
        return None

    @abc.abstractmethod
    def delete(self, key: str) -> None:
        """Remove ``key``; removing a missing key is not an error."""

    @abc.abstractmethod
    def delete_conditional(self, key: str, *, if_match: str) -> None:
        """Remove ``key`` only if its ETag is still ``if_match``.

        PreconditionFailed if it holds other bytes or is gone: someone moved or removed
        it since it was read. (S3's conditional DeleteObject; AWS, Ceph and SeaweedFS
        honour its If-Match.)
        """

    @abc.abstractmethod
    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        """Store ``data`` only if ``key`` is absent / has ETag ``if_match``; return the ETag."""

    writes_in_bulk: bool = False
    """True where :meth:`create_many` makes many keys durable together (a directory
    remote: one fsync of each folder), not one conditional write each."""

    def create_many(
        self, items: Sequence[tuple[str, bytes]], *, in_order: bool = False, jobs: int = 1
    ) -> Sequence[bool]:
        """Create each ``(key, data)`` of ``items`` whose key is absent, as
        ``put_conditional(key, data, if_none_match=True)`` does; for each key tried,
        whether it was made (False: it was there already). Every key made is durable
        when this returns.

        With ``in_order`` they are tried one after the other and the first key found
        there ends it: the list ends with that False, the keys after it untried (the
        entries of an audit chain, each linked to the one before). Otherwise ``jobs`` at
        once. This default makes one conditional write each; wrappers forward the call
        where the store writes in bulk (``writes_in_bulk``).
        """

        def one(item: tuple[str, bytes]) -> bool:
            try:
                self.put_conditional(item[0], item[1], if_none_match=True)
                return True
            except PreconditionFailed:
                return False

        if in_order:
            made: list[bool] = []
            for item in items:
                made.append(one(item))
                if not made[-1]:
                    break
            return made
        if len(items) < 2 or jobs < 2:
            return [one(item) for item in items]
        from concurrent.futures import ThreadPoolExecutor  # (loaded when used)

        with ThreadPoolExecutor(min(jobs, len(items))) as pool:
            return list(pool.map(one, items))

    def remove_temporaries(self, older_than: float) -> tuple[int, int]:
        """Delete what interrupted writes left behind, last modified before
        ``older_than`` (seconds since the epoch); (how many, their bytes).

        Nothing by default: an S3 put that does not finish leaves nothing.
        """
        return 0, 0


def too_large(key: str, url: str, limit: int) -> RemoteError:
    """The error for an object larger than what its kind may hold."""
    return RemoteObjectRefused(
        f"{key} in {url} holds more than {limit:,} bytes, far more than such a record "
        "ever needs: refusing to read it (the remote is damaged or hostile)"
    )


def check_range(start: int, length: int | None) -> None:
    """Reject negative offsets: they are a caller bug, not a remote condition."""
    if start < 0 or (length is not None and length < 0):
        raise ValueError(f"bad byte range: start={start}, length={length}")


def check_conditions(if_match: str | None, if_none_match: bool) -> None:
    """Reject asking for both conditions at once: no object can satisfy both."""
    if if_match is not None and if_none_match:
        raise ValueError("put_conditional takes if_match or if_none_match, not both")
