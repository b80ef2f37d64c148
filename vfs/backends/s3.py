"""The S3 backend (``s3://bucket/prefix``) through boto3: AWS, SeaweedFS, MinIO, Ceph, R2.

The object under key ``k`` is ``<prefix>/k`` in the bucket. Conditional writes use
PutObject's ``If-None-Match: *`` (create only) and ``If-Match: <etag>``
(compare-and-swap); the ETag is the server's, quotes included, and opaque.

Where things come from: the endpoint from the argument, else ``AWS_ENDPOINT_URL_S3``,
else ``AWS_ENDPOINT_URL``, else AWS itself; region and profile from the arguments or
boto3's usual configuration; credentials only from boto3's standard chain
(environment, profile, SSO, instance role), never from the URL: an endpoint carrying
``user:password@`` is refused. Nothing here logs, and no message contains a secret.

Threads: boto3 clients are thread-safe, sessions are not. The session is used only in
``__init__``; the one client is shared by every thread, with ``max_pool_connections``
sized for ``max_connections`` parallel transfers (urllib3 would otherwise open and
discard extra connections). botocore's own retries are off (one attempt per call):
retrying is ``RetryingBackend``'s job, which sees the mapped errors below.

Errors are mapped once, here: connection failures, timeouts and 5xx/throttling
answers -> RemoteUnreachable; rejected keys or signatures -> RemoteAuthError (wrong
credentials); AccessDenied -> RemoteAuthError (no permission); NoSuchBucket ->
RemoteNotFound naming the bucket; NoSuchKey/404 -> RemoteNotFound; 412 and 409
ConditionalRequestConflict -> PreconditionFailed. A ranged GET that starts past the
end (416) returns ``b""``, as the contract says; one answered with other bytes than
the range asked (another start, more than asked, the whole object for a range not
from 0) is RemoteError, and nothing past the bytes asked is read. Any other answer
(a listing page, an error) is read up to ``RESPONSE_LIMIT`` bytes, not whole into
memory as botocore reads it (``_bounded_send``); a listing that would go on for
ever ends in RemoteError (``list_info``).

botocore's ``Expect: 100-continue`` on PutObject is switched off: SeaweedFS holds a
conditional PUT while it waits for the key's lock, and botocore then stalls a full
second for the 100 before sending the body (10 rounds of 8 racing writers took 15 s
with it, 5 s without). It saves little here: packs are uploaded once, refs are tiny.

Server notes: SeaweedFS 4.48 makes both conditions atomic (exactly one winner in
each of over a hundred rounds of 8 racing writers, for each condition), but a writer
that waits for the key's lock may wait about a second. It answers 412, not AWS's 404,
to If-Match on a missing key; both are PreconditionFailed here. The same holds for
a conditional DeleteObject (``delete_conditional``).
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import re
import threading
from collections.abc import Generator, Iterator, Sequence
from typing import Any
from xml.etree import ElementTree

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    DataNotFoundError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ProfileNotFound,
    ReadTimeoutError,
    SSLError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.handlers import _handle_200_error, add_expect_header
from botocore.response import StreamingBody
from botocore.utils import parse_timestamp
from urllib3.exceptions import ReadTimeoutError as URLLib3ReadTimeoutError

from vfs._os.heap import aligned_buffer
from vfs.backends.base import (
    Backend,
    ObjectInfo,
    Refused,
    check_conditions,
    check_endpoint,
    check_range,
    s3_endpoint,
    validate_key,
    validate_prefix,
)
from vfs.backends.s3_get import Answer, RawGetter
from vfs.errors import (
    DvfsError,
    PreconditionFailed,
    RemoteAuthError,
    RemoteError,
    RemoteNotFound,
    RemoteUnreachable,
    UsageError,
)
from vfs.quoting import quote_given

EMPTY_PAGES = 1000  # empty listing pages in a row that end a listing (list_info)
RESPONSE_LIMIT = 16 << 20  # bytes of any answer but an object's (_bounded_send)
_CONTENT_RANGE = re.compile(r"bytes (\d{1,19})-(\d{1,19})/(?:\d{1,19}|\*)")
_WRONG_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "TokenRefreshRequired",
}
_NO_PERMISSION = {"AccessDenied", "AllAccessDisabled", "AccountProblem"}
_TRANSIENT = {
    "InternalError",
    "ServiceUnavailable",
    "SlowDown",
    "RequestTimeout",
    "Throttling",
    "ThrottlingException",
}


class S3Backend(Backend):
    """Objects in an S3 bucket under a prefix; see the module docstring."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        profile: str | None = None,
        max_connections: int = 16,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        page_size: int = 1000,
    ) -> None:
        prefix = validate_prefix(prefix.strip("/"))
        endpoint = s3_endpoint(endpoint_url)
        if endpoint:
            check_endpoint(endpoint, "the S3 endpoint")
        self.bucket = bucket
        self.page_size = page_size
        self._base = f"{prefix}/" if prefix else ""
        self._server = endpoint or "AWS"
        self.url = f"s3://{bucket}/{prefix}" + (f" at {self._server}" if endpoint else "")
        self._raw: RawGetter | None = None  # ranged GETs without boto3 (s3_get), made on first use
        self._raw_lock = threading.Lock()
        self._raw_wanted = RawGetter.usable(endpoint)
        self._timeouts = (connect_timeout, read_timeout, max_connections)
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max_connections,
            s3={"addressing_style": "path"} if endpoint else None,
            # Checksums only where S3 requires them: several S3-compatible servers
            # reject or mishandle the CRC trailers boto3 sends by default.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            core = botocore.session.Session()
            loader = _shared_loader(core)
            core.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=_timestamp
            )
            session = boto3.session.Session(
                profile_name=profile, region_name=region, botocore_session=core
            )
            _one_of_each(loader.search_paths)  # (each boto3 session appends its own)
            self._client: Any = session.client("s3", endpoint_url=endpoint, config=config)
            self._session = session
            self._client.meta.events.unregister("before-call.s3", add_expect_header)
            events = self._client.meta.events
            events.unregister("before-parse.s3.*", _handle_200_error)
            events.register_first("before-parse.s3.*", _before_parse)
            events.register("before-send.s3", self._bounded_send)
        except ProfileNotFound as exc:
            raise UsageError(
                f"AWS profile {quote_given(profile or '')} is not configured: check "
                "~/.aws/config or the profile name"
            ) from exc
        except ValueError as exc:
            raise UsageError(f"bad S3 endpoint or region for {self.url}: {exc}") from exc

    def _bounded_send(self, request: Any, event_name: str, **_: Any) -> Any:
        """Send ``request`` as botocore would, reading at most ``RESPONSE_LIMIT`` bytes of
        the answer where botocore reads it whole into memory: every answer but an
        object's bytes (GetObject's body, read by the caller within the range asked)
        and error answers too. A page of 1,000 keys is under 2 MiB: a server answering
        with more is broken or hostile, and RemoteError says so past the bound, read no
        further. (botocore's hook for this, ``before-send``, takes the first answer a
        handler gives instead of sending; its HTTP session is the client's own.)"""
        streamed = request.stream_output
        request.stream_output = True  # the session then leaves the body unread
        answer = self._client._endpoint.http_session.send(request)
        if (streamed and answer.status_code < 300) or request.method == "HEAD":
            return answer  # (a HEAD's length is the object's, and it has no body)
        what = event_name.rsplit(".", 1)[-1]
        too_long = RemoteError(
            f"{self.url} answered {what} with more than {RESPONSE_LIMIT >> 20} MiB: refusing "
            "to read it (a broken server, or not an S3 one): check the endpoint URL"
        )
        length = answer.headers.get("content-length", "")
        if length.isdigit() and int(length) > RESPONSE_LIMIT:
            answer.raw.close()
            raise too_long
        body = bytearray()
        try:
            while block := answer.raw.read(1 << 16):
                body += block
                if len(body) > RESPONSE_LIMIT:
                    answer.raw.close()
                    raise too_long
        except RemoteError:
            raise
        except URLLib3ReadTimeoutError as exc:  # mapped as botocore's session maps them
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
        except Exception as exc:
            raise HTTPClientError(error=exc) from exc
        answer._content = bytes(body)
        return answer

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        with self._mapped(key):
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def get(self, key: str, start: int = 0, length: int | None = None) -> bytes:
        check_range(start, length)
        name = self._name(key)
        if length == 0:
            self.head(key)  # a missing key is an error even for an empty range
            return b""
        answer = self._raw_get(name, start, length) if length is not None else None
        if answer is not None:  # (a chunk a random reader wants, a download's range)
            got = bytearray(answer.left)
            try:
                if got:
                    answer.read_into(memoryview(got))
            finally:
                answer.close()
            return bytes(got)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": name}
        if start or length is not None:
            end = "" if length is None else str(start + length - 1)
            request["Range"] = f"bytes={start}-{end}"
        with self._mapped(key):
            try:
                response = self._client.get_object(**request)
            except ClientError as exc:
                if _code(exc) == "InvalidRange":
                    return b""
                raise
            body = response["Body"]
            if "Range" not in request:
                data: bytes = body.read()
                return data
            size: int | None = response.get("ContentLength")
            data = b""
            try:
                take = self._answered(response, key, start, length)
                data = body.read(take)
            finally:  # a body not read to its end is closed with its connection
                left = 1 if size is None else size - len(data)
                _finish(body, _plain_stream(body, response), left)
            if size is not None and take is not None and len(data) < take:
                raise RemoteUnreachable(
                    f"{self._server} ended its answer for {key} after {len(data)} of its "
                    f"{take} bytes"
                )
            return data

    def get_parts(
        self, key: str, start: int, lengths: Sequence[int]
    ) -> Generator[bytes | memoryview, None, None]:
        """One ranged GET, its body read piece by piece as it arrives (never whole).

        Each piece is received straight into a page-aligned buffer of its own
        (``vfs._os.heap.aligned_buffer``) by ``readinto`` on the HTTP response under
        botocore's stream, so its bytes are copied once, out of the socket's buffer,
        and a chunk cached with ``O_DIRECT`` is written from there without another
        copy. Where the body is not that plain stream (a checksum or a content
        encoding would be bypassed), each piece is one ``read`` of exactly its length.
        A body read to its end gives its connection back to the pool, for the next
        request (a new TCP connection per GET costs both sides a connect and an
        accept, and the server a fresh handler); one the caller stops reading early
        is closed with its connection, which still holds the rest of the answer.
        """
        check_range(start, 0)
        for n in lengths:
            check_range(start, n)
        total = sum(lengths)
        if total == 0:
            self.head(key)  # a missing key is an error even for an empty range
            yield from (b"" for _ in lengths)
            return
        answer = self._raw_get(self._name(key), start, total)
        if answer is not None:
            try:
                for n in lengths:
                    take = min(n, answer.left)
                    piece: bytes | memoryview = aligned_buffer(take) if take else b""
                    if take:
                        answer.read_into(piece)  # type: ignore[arg-type]
                    yield piece
            finally:
                answer.close()
            return
        request = {
            "Bucket": self.bucket,
            "Key": self._name(key),
            "Range": f"bytes={start}-{start + total - 1}",
        }
        with self._mapped(key):
            try:
                response = self._client.get_object(**request)
            except ClientError as exc:
                if _code(exc) != "InvalidRange":
                    raise
                response = None
        if response is None:  # the range starts past the end
            for _ in lengths:
                yield b""
            return
        body = response["Body"]
        stream = _plain_stream(body, response)
        try:
            told = self._answered(response, key, start, total)  # less where the object ends
            left = total if told is None else told
        except RemoteError:
            body.close()
            raise
        try:
            for n in lengths:
                take = min(n, left)
                if stream is None or not take:
                    with self._mapped(key):
                        piece = body.read(n) if take else b""
                else:
                    piece = aligned_buffer(take)
                    self._receive(stream, piece, key)
                left -= len(piece)
                yield piece
        finally:
            _finish(body, stream, left)

    def _answered(
        self, response: dict[str, Any], key: str, start: int, length: int | None
    ) -> int | None:
        """How many bytes of boto3's answer to a GET of ``length`` bytes (None: to the
        end) of ``key`` from ``start`` to read: those asked for, fewer where the object
        ends; None for all there are (the whole object, its length untold).

        RemoteError if the answer holds other bytes: a range starting elsewhere, the
        whole object for a range from past its start (a server or proxy that ignored
        the Range header), or more than was asked, which is never read (a body of any
        length would otherwise be read into memory whole).
        """
        size: int | None = response.get("ContentLength")
        told = response.get("ContentRange")
        if told is None:  # the whole object: its first bytes are those asked from 0
            ok = start == 0
        else:
            got = _CONTENT_RANGE.fullmatch(told)
            span = int(got[2]) - start + 1 if got is not None else 0
            ok = got is not None and int(got[1]) == start and span > 0 and size in (None, span)
            ok = ok and (length is None or span <= length)
            size = span
        if not ok:
            asked = f"{start}-{start + length - 1}" if length is not None else f"{start}-"
            raise RemoteError(
                f"{self._server} answered a GET of bytes {asked} of {key} with "
                f"{quote_given(told) if told is not None else 'the whole object'}: refused; "
                "check the endpoint URL (a proxy in the way?)"
            )
        if size is None or length is None:
            return length if size is None else size
        return min(size, length)

    def _raw_get(self, name: str, start: int, length: int) -> Answer | None:
        """The body of a ranged GET sent without boto3 (``vfs.backends.s3_get``), or None
        where that way is not taken or the answer was not the bytes asked for (the
        caller then asks through boto3, which maps what went wrong)."""
        if not self._raw_wanted:
            return None
        raw = self._raw
        if raw is None:
            with self._raw_lock:
                if self._raw is None and self._raw_wanted:
                    credentials = None
                    with contextlib.suppress(Exception):  # boto3 says why, on its own path
                        credentials = self._session.get_credentials()
                    if credentials is None:
                        self._raw_wanted = False
                        return None
                    connect_timeout, read_timeout, pool = self._timeouts
                    assert self._server != "AWS"
                    self._raw = RawGetter(
                        self._server, self.bucket, credentials,
                        self._client.meta.region_name or "us-east-1",
                        connect_timeout=connect_timeout, read_timeout=read_timeout,
                        max_idle=pool,
                    )  # fmt: skip
                raw = self._raw
            if raw is None:
                return None
        return raw.open(name, start, length)

    def _receive(self, stream: Any, into: memoryview, key: str) -> None:
        """Fill ``into`` from the HTTP response ``stream`` (``readinto``); a timeout, a
        reset or an answer that ends early is RemoteUnreachable (retried by the
        wrapper from this piece on)."""
        got = 0
        while got < len(into):
            try:
                n = stream.readinto(into[got:])
            except OSError as exc:
                raise RemoteUnreachable(
                    f"reading {key} from {self.url} failed ({exc.strerror or exc}): check "
                    "the network and the endpoint URL"
                ) from exc
            if not n:
                raise RemoteUnreachable(
                    f"{self._server} ended its answer for {key} after {got} of the "
                    f"{len(into)} bytes of a piece of it"
                )
            got += n

    def head(self, key: str) -> ObjectInfo:
        name = self._name(key)
        with self._mapped(key):
            response = self._client.head_object(Bucket=self.bucket, Key=name)
        modified = response.get("LastModified")
        return ObjectInfo(
            size=int(response["ContentLength"]),
            etag=str(response["ETag"]),
            modified=modified.timestamp() if modified is not None else 0.0,
        )

    def content_etag(self, data: bytes) -> str | None:
        """S3's ETag of an object put whole: the MD5 of its bytes, in quotes (not for
        one encrypted with KMS or a customer key, whose ETags then never match)."""
        return f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"'

    def list(self, prefix: str = "") -> Iterator[str]:
        for key, _ in self.list_info(prefix):
            yield key

    def list_info(
        self, prefix: str = "", *, etags: bool = True, refused: Refused | None = None
    ) -> Iterator[tuple[str, ObjectInfo]]:
        """Each key under ``prefix`` with its size, ETag and time, page by page (the
        ETags come with the listing: ``etags`` changes nothing, and ``refused`` is never
        told: a bucket holds objects alone).

        A server says where the next page starts (a token); one that names a page it
        gave already, says more follows but not where, or gives ``EMPTY_PAGES`` empty
        pages in a row would be asked again for ever: RemoteError, naming the remote
        (a listing that repeats a key is left to the callers' bounds and to
        ``RetryingBackend``, which gives each key once). A key the server lists
        outside ``prefix`` is not given: it is not what was asked for."""
        validate_prefix(prefix)
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self._base + prefix,
            "MaxKeys": self.page_size,
        }
        asked = self._base + prefix
        what = f"the listing of {quote_given(prefix)}" if prefix else "the listing"
        tokens: set[int] = set()  # hashes of the tokens followed (a token may be long)
        empty = 0
        while True:
            with self._mapped(prefix or "the listing"):
                page = self._client.list_objects_v2(**request)
            empty = 0 if page.get("Contents") else empty + 1
            for item in page.get("Contents", []):
                name = str(item["Key"])
                if not name.startswith(asked):  # not what was asked for: not ours
                    continue
                key = name[len(self._base) :]
                try:
                    validate_key(key)
                except UsageError:  # written by other tools: skip
                    continue
                modified = item.get("LastModified")
                yield (
                    key,
                    ObjectInfo(
                        size=int(item.get("Size", 0)),
                        etag=str(item.get("ETag", "")),
                        modified=modified.timestamp() if modified is not None else 0.0,
                    ),
                )
            if not page.get("IsTruncated"):
                return
            token = page.get("NextContinuationToken")
            if not isinstance(token, str) or not token:
                raise RemoteError(
                    f"{self.url} said more of {what} follows but named no next page (a "
                    "broken server, or not an S3 one): check the endpoint URL"
                )
            if hash(token) in tokens or empty >= EMPTY_PAGES:
                raise RemoteError(
                    f"{self.url} repeats itself in {what}: it "
                    + ("named a page it gave already" if hash(token) in tokens
                       else f"gave {empty:,} empty pages in a row")
                    + " (a broken server, or not an S3 one): check the endpoint URL"
                )  # fmt: skip
            tokens.add(hash(token))
            request["ContinuationToken"] = token

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._mapped(key):
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def delete_conditional(self, key: str, *, if_match: str) -> None:
        lost = f"{key} in {self.url} was changed or removed by someone else: read it again"
        with self._mapped(key, lost=lost):
            self._client.delete_object(Bucket=self.bucket, Key=self._name(key), IfMatch=if_match)
        # SeaweedFS keeps the folders of a deleted key (refs/heads/team/ after team/a went),
        # and a key of a folder's name cannot be created while it stands: delete their
        # markers, deepest first. A folder that still holds keys keeps them (SeaweedFS
        # leaves a non-empty folder, and on AWS "team/" names only an object of that name).
        # Best effort: the key is deleted already, and a marker left behind only keeps
        # that one name from being made on SeaweedFS.
        parts = key.split("/")[:-1]
        with contextlib.suppress(DvfsError), self._mapped(key):
            while parts:
                self._client.delete_object(
                    Bucket=self.bucket, Key=self._base + "/".join(parts) + "/"
                )
                parts.pop()

    def put_conditional(
        self,
        key: str,
        data: bytes,
        *,
        if_match: str | None = None,
        if_none_match: bool = False,
    ) -> str:
        check_conditions(if_match, if_none_match)
        request: dict[str, Any] = {"Bucket": self.bucket, "Key": self._name(key), "Body": data}
        lost = None
        if if_none_match:
            request["IfNoneMatch"] = "*"
            lost = f"{key} already exists in {self.url}: someone else created it first"
        elif if_match is not None:
            request["IfMatch"] = if_match
            lost = f"{key} in {self.url} was changed by someone else: read it again"
        with self._mapped(key, lost=lost):
            response = self._client.put_object(**request)
        return str(response["ETag"])

    def _name(self, key: str) -> str:
        return self._base + validate_key(key)

    @contextlib.contextmanager
    def _mapped(self, what: str, *, lost: str | None = None) -> Iterator[None]:
        """Turn botocore exceptions into ``vfs.errors`` types; ``lost`` words a lost race."""
        try:
            yield
        except ClientError as exc:
            raise self._client_error(exc, what, lost) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise RemoteAuthError(
                f"no usable AWS credentials for {self.url}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or choose a profile"
            ) from exc
        except SSLError as exc:
            raise RemoteError(
                f"TLS failed talking to {self._server}: check http vs https in the endpoint "
                "URL and the server's certificate"
            ) from exc
        except (BotoConnectionError, HTTPClientError) as exc:
            how = (
                "timed out"
                if isinstance(exc, ConnectTimeoutError | ReadTimeoutError)
                else ("connection failed")
            )
            raise RemoteUnreachable(
                f"could not reach {self.url} ({how}): check the network and the endpoint URL"
            ) from exc

    def _client_error(self, exc: Any, what: str, lost: str | None) -> DvfsError:
        code = _code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "NoSuchBucket":
            return RemoteNotFound(
                f"bucket {quote_given(self.bucket)} does not exist at {self._server}: create it or "
                "check the remote URL"
            )
        if lost is not None and (
            status == 412
            or code in ("PreconditionFailed", "ConditionalRequestConflict")
            or code == "NoSuchKey"  # If-Match on a key deleted meanwhile (AWS)
        ):
            return PreconditionFailed(lost)
        if code in ("NoSuchKey", "404") or status == 404:
            return RemoteNotFound(f"{what} not found in {self.url}")
        if code in _WRONG_CREDENTIALS:
            return RemoteAuthError(
                f"{self._server} rejected the credentials for {self.url} ({code}): wrong "
                "access key or secret; check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or the "
                "profile"
            )
        if code in _NO_PERMISSION:
            return RemoteAuthError(
                f"access to {what} in {self.url} denied ({code}): the credentials are valid "
                "but lack permission; ask for access to the bucket"
            )
        if code == "403" or status == 403:  # HEAD answers carry no error code
            return RemoteAuthError(
                f"access to {what} in {self.url} denied: wrong credentials or no permission; "
                "check both"
            )
        if code in _TRANSIENT or status >= 500:
            return RemoteUnreachable(
                f"{self.url} answered {status} {code} for {what}: the server is struggling; "
                "try again later"
            )
        message = exc.response.get("Error", {}).get("Message", "")
        return RemoteError(f"{self.url} refused {what}: {code} {message}".rstrip())


def _timestamp(text: str) -> datetime.datetime:
    """A timestamp of an S3 answer: ISO 8601 (listings) by the standard library.

    botocore's own parser (dateutil) took 0.3 ms a timestamp, so most of the time a
    listing of 10,000 keys costs went to their LastModified fields. Other forms (the
    RFC 822 of a HEAD's Last-Modified header) still go to botocore's parser.
    """
    with contextlib.suppress(ValueError):
        when = datetime.datetime.fromisoformat(text)
        if when.tzinfo is not None:
            return when
    return parse_timestamp(text)  # type: ignore[no-any-return]


_CONTENTS = re.compile(rb"<Contents>.*?</Contents>", re.S)


def _before_parse(operation_model: Any, response_dict: Any, **kw: Any) -> None:
    """botocore's check of every S3 answer for an error sent with status 200, which
    parses the whole body; a ListObjectsV2 page is parsed once, by ``_listed_objects``."""
    if operation_model.name == "ListObjectsV2" and _listed_objects(response_dict, **kw):
        return
    _handle_200_error(operation_model=operation_model, response_dict=response_dict, **kw)


def _listed_objects(
    response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any
) -> bool:
    """Parse a ListObjectsV2 page's ``Contents`` here, and botocore the rest of it.

    botocore walks every element against its model, some 40 us an object, after
    parsing the page a first time to look for an error sent with status 200: most of
    the time a listing of 10,000 keys took (``dvfs audit verify --remote`` lists the
    whole chain). This parses the page once with ElementTree, takes each object's
    Key, ETag, Size and LastModified, gives them to botocore as
    ``customized_response_dict`` (its hook for this, merged over its own result,
    before the Key URL-decoding), and leaves it a body without the ``Contents``
    elements. True when done; anything unexpected (another status, a body that does
    not parse or is an ``Error``, counts that differ) returns False, and botocore
    checks and parses the page as always.
    """
    body = response_dict.get("body")
    if response_dict.get("status_code") != 200 or not isinstance(body, bytes):
        return False
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return False
    ns = root.tag[: root.tag.find("}") + 1]
    if root.tag != f"{ns}ListBucketResult":
        return False
    found = root.findall(f"{ns}Contents")
    stripped, cut = _CONTENTS.subn(b"", body)
    if cut != len(found):
        return False
    objects: list[dict[str, Any]] = []
    for item in found:
        got: dict[str, Any] = {"Key": item.findtext(f"{ns}Key") or ""}
        if (etag := item.findtext(f"{ns}ETag")) is not None:
            got["ETag"] = etag
        if (size := item.findtext(f"{ns}Size")) is not None:
            got["Size"] = int(size) if size.isdigit() else 0
        if (modified := item.findtext(f"{ns}LastModified")) is not None:
            with contextlib.suppress(ValueError, OverflowError):
                got["LastModified"] = _timestamp(modified)
        objects.append(got)
    if objects:
        customized_response_dict["Contents"] = objects
        response_dict["body"] = stripped
    return True


def _code(exc: Any) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _KnownServices:
    """The services a botocore loader knows, asked about one name at a time.

    Making a client, botocore checks the service's name against every service it
    ships: ~400 directories listed and ~2,800 files stat-ed, 0.1 s with a warm disk
    cache and up to a second with a cold one, for a check whose answer for ``s3``
    is always yes. This answers ``name in ...`` by looking for that name alone, and
    anything else (listing, counting) with the full list.
    """

    def __init__(self, loader: Any, type_name: str, full: Any) -> None:
        self._loader = loader
        self._type_name = type_name
        self._full = full

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            return bool(self._loader.list_api_versions(name, self._type_name))
        except DataNotFoundError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(self._full(self._type_name))

    def __len__(self) -> int:
        return len(self._full(self._type_name))


_LOADERS: dict[str, Any] = {}  # botocore's data loader, by data path, shared in the process
_LOADERS_LOCK = threading.Lock()


def _shared_loader(core: Any) -> Any:
    """One data loader for every S3 backend of the process, registered in the new
    botocore session ``core``: a loader of its own re-read botocore's JSON models (the
    S3 service, its endpoint rules) for each backend, 0.07-0.1 CPU-s each (an API
    script pushing in a loop, a fetch from several remotes). The loader keeps what it
    read and is only read from after; it checks services one by one (see above)."""
    path = str(core.get_config_variable("data_path") or "")
    with _LOADERS_LOCK:
        loader = _LOADERS.get(path)
        if loader is None:
            loader = _LOADERS[path] = core.get_component("data_loader")
            _look_up_services_one_by_one(loader)
        else:
            core.register_component("data_loader", loader)
    return loader


def _one_of_each(paths: list[str]) -> None:
    """Drop repeated entries of ``paths`` in place, keeping the first of each."""
    with _LOADERS_LOCK:
        paths[:] = list(dict.fromkeys(paths))


def _look_up_services_one_by_one(loader: Any) -> None:
    """Make ``loader`` check a service name without listing every service (see above)."""
    full = loader.list_available_services
    loader.list_available_services = lambda type_name: _KnownServices(loader, type_name, full)


def _finish(body: Any, stream: Any, left: int) -> None:
    """Done with a GET's ``body``: its connection back to the pool when the answer was
    read whole from ``stream`` (the HTTP response, closed by its last byte), else
    closed with it."""
    raw = getattr(body, "_raw_stream", None)
    if stream is not None and not left and stream.isclosed() and raw is not None:
        raw.release_conn()
    else:
        body.close()


def _plain_stream(body: Any, response: dict[str, Any]) -> Any:
    """The HTTP response under botocore's ``StreamingBody`` ``body``, to ``readinto``;
    None where reading it directly would skip something: a body wrapped to check a
    checksum, or a content encoding that urllib3 would decode."""
    if type(body) is not StreamingBody or response.get("ContentEncoding") not in (None, ""):
        return None
    stream = getattr(getattr(body, "_raw_stream", None), "_fp", None)
    return stream if callable(getattr(stream, "readinto", None)) else None
