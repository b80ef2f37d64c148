"""Where packs, index segments and refs are stored: a local directory or S3.

``open_backend`` turns a remote URL into a ready backend; the interface and its
contract are in ``vfs.backends.base``, the wrappers in ``vfs.backends.wrappers``.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from vfs import settings
from vfs.backends.base import (
    Backend,
    ObjectInfo,
    Refused,
    check_endpoint,
    redact_url,
    refuse_credentials,
    s3_endpoint,
    validate_key,
    validate_prefix,
)
from vfs.backends.local import LocalBackend
from vfs.backends.wrappers import LimitedBackend, RetryingBackend
from vfs.errors import UsageError
from vfs.quoting import quote_given, shell_word

if TYPE_CHECKING:
    from concurrent.futures import Future  # (loaded by the one that makes one)

__all__ = [
    "Backend",
    "LimitedBackend",
    "LocalBackend",
    "ObjectInfo",
    "Refused",
    "RemoteUrl",
    "RetryingBackend",
    "check_endpoint",
    "file_url",
    "open_backend",
    "parse_url",
    "preconnect",
    "redact_url",
    "refuse_credentials",
    "s3_endpoint",
    "same_location",
    "valid_bucket",
    "validate_key",
]

# S3 backends being made ahead of time by ``preconnect``, by (bucket, prefix, endpoint).
_EARLY: dict[tuple[str, str, str | None], Future[Backend]] = {}
_EARLY_LOCK = threading.Lock()

_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,253}[A-Za-z0-9]")
_FORMS = "use s3://bucket/prefix, file:///absolute/path or a directory path"
# A URL scheme without its "://" ("s3:/bucket", "file:/srv/x"): a typo, never meant as
# a directory of that name (which "./s3:x" still names).
_SCHEME_TYPO = re.compile(r"(s3|s3a|file|https?|ftp|sftp|ssh|gs|gcs|az|abfss?|hdfs):", re.I)


def valid_bucket(name: str) -> bool:
    """True if ``name`` can be an S3 bucket name."""
    return bool(_BUCKET.fullmatch(name))


@dataclass(frozen=True)
class RemoteUrl:
    """What a remote URL names: a local directory (``path``), or an S3 bucket and prefix."""

    path: Path | None = None
    bucket: str = ""
    prefix: str = ""


def parse_url(url: str) -> RemoteUrl:
    """The parts of remote URL ``url``; UsageError unless it has the form of one.

    The one check of a URL's form: ``dvfs remote add``, ``dvfs.toml``, ``dvfs mount``
    and :func:`open_backend` all go through it. Nothing is contacted.
    """
    if not url.strip():
        raise UsageError(f"empty remote URL: {_FORMS}")
    refuse_credentials(url, "the remote URL")
    scheme, sep, rest = url.partition("://")
    if not sep:
        typo = _SCHEME_TYPO.match(url)
        if typo:
            raise UsageError(
                f"bad remote URL {quote_given(url)}: {typo.group(1)} needs '://' "
                "(s3://bucket/prefix, file:///absolute/path); a directory of that name is "
                f"written {shell_word('./' + url)}"
            )
        return RemoteUrl(path=_lexical(Path(url).expanduser()))
    scheme = scheme.lower()
    if scheme == "file":
        parts = urlsplit(url)
        path = unquote(parts.path)
        extra = parts.query or parts.fragment
        if parts.netloc not in ("", "localhost") or not path.startswith("/") or extra:
            raise UsageError(f"bad file URL {quote_given(url)}: use file:///absolute/path")
        return RemoteUrl(path=_lexical(Path(path)))
    if scheme == "s3":
        bucket, _, prefix = rest.partition("/")
        if not valid_bucket(bucket):
            raise UsageError(
                f"bad bucket name {quote_given(bucket)} in the remote URL "
                f"{quote_given(url)}: {_FORMS}"
            )
        prefix = prefix.strip("/")
        try:  # the prefix as a key
            validate_prefix(prefix)
        except UsageError:
            raise UsageError(
                f"bad prefix {quote_given(prefix)} in the remote URL {quote_given(url)}: use "
                "names of ASCII letters, digits, '.', '_' and '-' joined by single '/'"
            ) from None
        return RemoteUrl(bucket=bucket, prefix=prefix)
    raise UsageError(f"unsupported remote URL {quote_given(url)}: {_FORMS}")


def _lexical(path: Path) -> Path:
    """``path`` with its ``.`` and ``..`` parts taken as written (``/srv/x/../rem`` is
    ``/srv/rem``, whatever ``x`` is: missing, or a link elsewhere), as ``remote add``
    records a directory (``os.path.abspath``) and a shell's ``cd`` reads one: every
    spelling of a directory remote names one place."""
    return Path(os.path.normpath(path))


def file_url(url: str) -> str:
    """File URL ``url`` as the directory it is read as: with its ``.`` and ``..`` taken
    (``file:///srv/x/../rem`` is ``file:///srv/rem``), and as given where it has none;
    what :func:`parse_url` reads back is that directory (a ``%``, ``?``, ``#`` or
    control character in it escaped, the rest as given)."""
    path = parse_url(url).path
    assert path is not None, url
    if str(path) == unquote(urlsplit(url).path):
        return url
    return "file://" + "".join(
        f"%{ord(ch):02X}" if ch in "%?#" or ord(ch) < 0x20 or ord(ch) == 0x7F else ch
        for ch in str(path)
    )


def same_location(a: str, b: str) -> bool:
    """True if remote URLs ``a`` and ``b`` name one place, however spelled
    (``file:///srv/cats`` and ``/srv/cats``; ``s3://b/cats/`` and ``s3://b/cats``);
    a URL of no valid form is the same only as itself."""
    try:
        return a == b or parse_url(a) == parse_url(b)
    except UsageError:
        return False


def open_backend(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    profile: str | None = None,
    retry: bool = True,
    create: bool = False,
    jobs: int | None = None,
    timeout: float | None = None,
) -> Backend:
    """Open the backend a remote URL names.

    ``s3://bucket/prefix`` opens S3 (``endpoint_url``, ``region`` and ``profile`` apply
    to it alone), wrapped in ``RetryingBackend`` unless ``retry`` is false; the bucket
    must exist. ``file:///abs/path`` or a plain path opens a local directory, which
    must exist unless ``create`` is true. Local directories are not retried: they
    never raise the one error worth retrying. With ``jobs``, at most that many calls
    run at once (``LimitedBackend``), below the retries so that a call waiting out a
    back-off holds no slot. With ``timeout``, an S3 request is given up after that many
    seconds of waiting to connect, or for an answer (else ``S3Backend``'s 5 and 60). A
    bad URL raises ``UsageError``.
    """
    where = parse_url(url)
    if where.path is not None:
        return _limited(LocalBackend(where.path, create=create), jobs)
    backend = None
    if timeout is None:
        backend = _early_s3(where.bucket, where.prefix, endpoint_url, region, profile)
    if backend is None:
        # Deferred: importing boto3 takes ~140 ms, which commands that never talk
        # to S3 (status, add, commit...) should not pay.
        from vfs.backends.s3 import S3Backend

        waits = {} if timeout is None else {"connect_timeout": timeout, "read_timeout": timeout}
        backend = S3Backend(
            where.bucket, where.prefix, endpoint_url=endpoint_url, region=region, profile=profile,
            **waits,  # type: ignore[arg-type]  # (the two floats, by name)
        )  # fmt: skip
    if not retry:
        return _limited(backend, jobs)
    return RetryingBackend(
        _limited(backend, jobs),
        attempts=settings.retry_attempts(),
        deadline=settings.retry_deadline(),
    )


def _limited(backend: Backend, jobs: int | None) -> Backend:
    return backend if jobs is None else LimitedBackend(backend, max(1, jobs))


def preconnect(url: str, endpoint_url: str | None = None) -> None:
    """Start making the S3 backend of ``url`` in a thread, for ``open_backend`` to take.

    Importing boto3 and making a client costs 0.3-1.5 s (more with a cold page
    cache); a process that knows early which remote it will open (the mount daemon)
    overlaps that with its other imports. Anything but an ``s3://`` URL is ignored,
    and a failure here is left for ``open_backend`` to meet and report.
    """
    if not url.startswith("s3://"):
        return
    bucket, _, prefix = url[len("s3://") :].partition("/")
    key = (bucket, prefix.strip("/"), endpoint_url)
    from concurrent.futures import Future

    made: Future[Backend] = Future()
    with _EARLY_LOCK:
        _EARLY[key] = made

    def work() -> None:
        try:
            from vfs.backends.s3 import S3Backend

            made.set_result(S3Backend(key[0], key[1], endpoint_url=endpoint_url))
        except BaseException as exc:
            made.set_exception(exc)

    threading.Thread(target=work, name="s3-preconnect", daemon=True).start()


def _early_s3(
    bucket: str, prefix: str, endpoint_url: str | None, region: str | None, profile: str | None
) -> Backend | None:
    """The backend ``preconnect`` made for these settings (once), or None."""
    if region is not None or profile is not None:
        return None
    with _EARLY_LOCK:
        made = _EARLY.pop((bucket, prefix, endpoint_url), None)
    if made is None or made.exception() is not None:
        return None  # made afresh, so that its error is raised where it is expected
    return made.result()
