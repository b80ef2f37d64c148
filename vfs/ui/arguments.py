"""What a dashboard request names, checked before anything is looked up: paths, pages.

Every value comes from a URL and is untrusted: a path must be a plain relative path of
a version (it is only ever looked up in trees, never opened on disk), and a page is
bounded (``MAX_PAGE`` rows at most).
"""

from __future__ import annotations

import os
import urllib.parse

from vfs.errors import UsageError

MAX_PAGE = 500  # rows of one page, at most
MAX_PATH_TEXT = 4096


class BadPath(UsageError):
    """A path in a request that is not a plain relative path of a version."""


def check_path(text: str) -> bytes:
    """The path a request names, as the bytes of a version's path (``b""``: the root).

    Refused (BadPath): NUL, a leading ``/``, an empty, ``.`` or ``..`` component, or
    more than ``MAX_PATH_TEXT`` characters. Nothing is resolved on disk: the path is
    only looked up in trees, which hold plain names.
    """
    if text in ("", "."):
        return b""
    if len(text) > MAX_PATH_TEXT:
        raise BadPath(f"a path of {len(text):,} characters is longer than any path can be")
    if "\0" in text:
        raise BadPath("a path may not hold a NUL character")
    if text.startswith("/"):
        raise BadPath("paths are relative to the version's root: leave out the leading /")
    if any(part in ("", ".", "..") for part in text.split("/")):
        raise BadPath("a path may not hold an empty, '.' or '..' component")
    return os.fsencode(text)


def query_value(query_string: bytes, name: str) -> str:
    """The value of ``name`` in a request's query string (``""`` if absent), decoded as
    the CLI's ``--json`` writes a name that is not UTF-8: each undecodable byte as a
    lone surrogate (``surrogateescape``), so that :func:`check_path` gives back the
    name's bytes (decoded with replacement, ``%FF`` would name no file at all)."""
    pairs = urllib.parse.parse_qsl(
        query_string.decode("latin-1"), keep_blank_values=True, errors="surrogateescape"
    )
    return dict(pairs).get(name, "")  # the last one, as Starlette's query_params


def page(offset: int, limit: int) -> tuple[int, int]:
    """A request's offset and limit, checked (limit at most ``MAX_PAGE``)."""
    if offset < 0 or limit < 1:
        raise UsageError("offset must be 0 or more and limit 1 or more")
    return offset, min(limit, MAX_PAGE)
