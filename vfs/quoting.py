"""Untrusted text made safe to print: names quoted as git's ``core.quotePath`` does.

A file name, a ref name, a link target, a commit message or an author can come from
anyone who can write to a shared remote or a working tree, and may hold a newline
(to forge a line of ``dvfs status``), an escape sequence (to rewrite the terminal) or
bytes that are not UTF-8. Every human-readable output passes such text through here;
JSON output stays exact (:func:`safe_json`).

Unsafe code points: C0 controls (U+0000..U+001F), DEL, C1 controls (U+0080..U+009F),
the Unicode line and paragraph separators (U+2028, U+2029), the bidirectional
embeddings, overrides and isolates that can make text read backwards (U+202A..U+202E,
U+2066..U+2069), the invisible characters that make two different names look alike
(soft hyphen U+00AD, U+180E, the zero-width U+200B..U+200F and U+2060..U+2064, and
U+FEFF: ``.g\u200cit`` must not print as ``.git``), and bytes that are not UTF-8
(held as the surrogates U+DC80..U+DCFF of ``os.fsdecode``). Everything else, ``é``
and ``日本`` included, prints as it is.

- :func:`quote_name` (names, paths, refs, link targets, URLs): a name holding an
  unsafe code point, ``"`` or ``\\`` is shown as a C-style string in double quotes,
  as ``git -c core.quotePath=false`` shows it (git leaves C1 and bidirectional
  controls and bytes that are not UTF-8 raw; here they are escaped too):
  ``\\a \\b \\t \\n \\v \\f \\r``, ``\\"``, ``\\\\``, and every other unsafe byte of its
  UTF-8 form as a three-digit octal escape (``\\033``, ``\\302\\233``, ``\\377``). Any
  name can be recovered from its quoted form; a name that begins or ends with a space
  is quoted too (bare, `` data`` in a message reads as ``data``); a name that needs
  no quoting is shown unchanged. :func:`quote_given` shows an empty one as ``""``.
- :func:`escape_text` (messages, authors, parameter values, whole error lines): the
  same escapes in place, without surrounding quotes; ``"`` and ``\\`` stay as they are.
"""

from __future__ import annotations

import functools
import json
import math
import re
from typing import Any

_UNSAFE = (
    r"\x00-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064"
    r"\u2066-\u2069\ufeff\ud800-\udfff"
)
# Code points json.dumps(ensure_ascii=False) leaves raw that a terminal may act on.
_JSON_UNSAFE = r"[\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
_NAMED = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r"}
_NAMED.update({ord('"'): '\\"', ord("\\"): "\\\\"})


# The expressions are compiled when first needed (1 ms of every command's start-up):
# text that is printable ASCII, most of what any command prints, needs none of them.
@functools.cache
def _text_unsafe() -> re.Pattern[str]:
    return re.compile(f"[{_UNSAFE}]")


@functools.cache
def _name_unsafe() -> re.Pattern[str]:
    return re.compile(f'[{_UNSAFE}"\\\\]')


def _plain(text: str) -> bool:
    """True if ``text`` is printable ASCII: no code point of it is unsafe (the unsafe
    ASCII ones, C0 controls and DEL, are the ASCII that ``str.isprintable`` refuses)."""
    return text.isascii() and text.isprintable()


def _escape(match: re.Match[str]) -> str:
    """The escape of one unsafe code point."""
    code = ord(match.group())
    named = _NAMED.get(code)
    if named is not None:
        return named
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (os.fsdecode's surrogate)
        data = bytes([code - 0xDC00])
    else:
        data = match.group().encode("utf-8", "surrogatepass")
    return "".join(f"\\{b:03o}" for b in data)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def quote_name(name: str | bytes) -> str:
    """``name`` as it should be printed: unchanged if safe, else a quoted C string.

    Bytes are taken as UTF-8 where they decode; a ``str`` may hold ``os.fsdecode``'s
    surrogates, which stand for the bytes they replaced.
    """
    text = _text(name)
    edged = text[:1] == " " or text[-1:] == " "  # (`` x`` read bare is ``x``)
    if _plain(text) and '"' not in text and "\\" not in text and not edged:
        return text
    unsafe = _name_unsafe()
    if unsafe.search(text) is None and not edged:
        return text
    return '"' + unsafe.sub(_escape, text) + '"'


def quoted(path: str | bytes | None) -> str:
    """A repository path or name for a message: :func:`quote_name`'s form, ``.`` for
    the root (an empty path)."""
    return quote_name(path) if path else "."


def quote_given(text: str | bytes) -> str:
    """A name or value as given by the user, for a message: :func:`quote_name`'s form,
    and ``""`` when it is empty (so that the message still shows where it stands)."""
    return quote_name(text) if text else '""'


def shell_word(name: str | bytes) -> str:
    """``name`` as one word of a command a hint tells the user to run: as it is where
    a POSIX shell takes it so, else in single quotes (``'my data'``). A name holding a
    control character, which no line can carry as typed, is shown as
    :func:`quote_name` shows it."""
    text = _text(name)
    if not _plain(text) and _text_unsafe().search(text) is not None:
        return quote_name(text)
    import shlex  # (only when a hint names a path)

    return shlex.quote(text)


def escape_text(text: str | bytes) -> str:
    """``text`` with every unsafe code point escaped in place (no quotes added)."""
    text = _text(text)
    if _plain(text):
        return text
    unsafe = _text_unsafe()
    if unsafe.search(text) is None:
        return text
    return unsafe.sub(_escape, text)


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def safe_json(data: Any) -> str:
    """``data`` as indented JSON that is exact, valid UTF-8 and safe on a terminal.

    Non-ASCII text stays readable; the code points a terminal could act on, and the
    surrogates that stand for bytes that are not UTF-8, are written as ``\\uXXXX``
    escapes (json.dumps already escapes the C0 controls). A name that is not UTF-8
    thus reads back, with Python's ``json`` and ``os.fsencode``, as its exact bytes:
    byte 0xFF appears as ``\\udcff``. NaN and the infinities, which JSON lacks (a
    parameter recorded elsewhere may hold one), are written as the strings ``.nan``,
    ``.inf`` and ``-.inf``, as YAML spells them.
    """
    try:
        text = json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(data), indent=2, ensure_ascii=False, allow_nan=False)
    return re.sub(_JSON_UNSAFE, _json_escape, text)


def finite(x: float) -> float | str:
    """``x``, or YAML's spelling of it (``.nan``, ``.inf``, ``-.inf``) if JSON cannot hold it."""
    if math.isfinite(x):
        return x
    return ".nan" if math.isnan(x) else (".inf" if x > 0 else "-.inf")


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by its YAML spelling."""
    if isinstance(value, float):
        return finite(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
