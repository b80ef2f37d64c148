"""Quoting untrusted names and text for human output (vfs.quoting)."""

from __future__ import annotations

import json
import os
import re
import shlex

from hypothesis import given
from hypothesis import strategies as st

from vfs.quoting import escape_text, quote_name, safe_json

# What a terminal could act on: C0, DEL, C1, line separators, bidi controls, surrogates.
DANGEROUS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
INVISIBLE = "\xad\u061c\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2064\ufeff"
# What human output escapes besides: characters that make one name look like another.
HIDDEN = re.compile(f"{DANGEROUS.pattern}|[{INVISIBLE}]")
_C_ESCAPES = {"a": 7, "b": 8, "t": 9, "n": 10, "v": 11, "f": 12, "r": 13, '"': 34, "\\": 92}


def unquote(shown: str) -> bytes:
    """The bytes a quoted name stands for (the inverse of git's C-style quoting)."""
    if not shown.startswith('"'):
        return shown.encode()
    assert shown.endswith('"') and len(shown) >= 2, shown
    body, out, i = shown[1:-1], bytearray(), 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            assert c != '"', shown
            out += c.encode()
            i += 1
        elif body[i + 1] in _C_ESCAPES:
            out.append(_C_ESCAPES[body[i + 1]])
            i += 2
        else:
            out.append(int(body[i + 1 : i + 4], 8))
            i += 4
    return bytes(out)


def test_a_forged_status_line_stays_on_one_line() -> None:
    name = b"b\n  deleted: IMPORTANT.csv"
    assert quote_name(name) == '"b\\n  deleted: IMPORTANT.csv"'
    assert quote_name(name.decode()) == '"b\\n  deleted: IMPORTANT.csv"'


def test_escapes_follow_git() -> None:
    assert quote_name(b"a\tb") == '"a\\tb"'
    assert quote_name(b"\x1b[31mred") == '"\\033[31mred"'
    assert quote_name(b'say "hi"') == '"say \\"hi\\""'
    assert quote_name(b"back\\slash") == '"back\\\\slash"'
    assert quote_name(b"del\x7f") == '"del\\177"'
    assert quote_name("csi\u009b2J") == '"csi\\302\\2332J"'
    assert quote_name(b"\xff\xfe") == '"\\377\\376"'
    assert quote_name(os.fsdecode(b"x\xff")) == '"x\\377"'
    assert quote_name("evil\u202etxt.exe") == '"evil\\342\\200\\256txt.exe"'
    assert quote_name("line\u2028sep") == '"line\\342\\200\\250sep"'


def test_ordinary_names_print_as_they_are() -> None:
    for name in ("a.txt", "with space", "é", "日本/データ.csv", "emoji 🙂", "-dash", "a'b"):
        assert quote_name(name) == name
        assert quote_name(name.encode()) == name
        assert escape_text(name) == name


def test_a_name_that_begins_or_ends_with_a_space_is_quoted() -> None:
    """`dvfs: error:  data is not tracked` could not be told from the name `data`
    (the message's own space beside the name's): such a name is quoted."""
    assert quote_name(" data") == '" data"'
    assert quote_name("data ") == '"data "'
    assert quote_name(b" caf\xc3\xa9 ") == '" caf\xe9 "'
    assert quote_name(" ") == '" "'
    assert quote_name("d/ x") == "d/ x"  # (inside a path, the space is no edge)
    for name in (" data", "data ", " \n"):
        assert unquote(quote_name(name)) == name.encode()


def test_free_text_is_escaped_in_place() -> None:
    assert escape_text("m1\n\x1b[31mred") == "m1\\n\\033[31mred"
    assert escape_text('fix "bug" in C:\\data') == 'fix "bug" in C:\\data'
    assert escape_text(b"caf\xe9") == "caf\\351"


@given(st.binary(max_size=40))
def test_every_name_is_recovered_from_its_quoted_form(name: bytes) -> None:
    shown = quote_name(name)
    assert HIDDEN.search(shown) is None
    assert unquote(shown) == name
    assert quote_name(os.fsdecode(name)) == shown


@given(st.text(max_size=40))
def test_escaped_text_holds_nothing_a_terminal_acts_on(text: str) -> None:
    shown = escape_text(text)
    assert HIDDEN.search(shown) is None
    assert "\n" not in shown and "\r" not in shown
    if HIDDEN.search(text) is None:
        assert shown == text


@given(st.binary(max_size=40), st.text(max_size=20))
def test_json_is_exact_valid_utf8_and_terminal_safe(name: bytes, text: str) -> None:
    data = {"name": os.fsdecode(name), "text": text, "list": [text, 1, None]}
    out = safe_json(data)
    assert all(DANGEROUS.search(line) is None for line in out.split("\n"))
    assert out.count("\n") == 8  # the indentation's own lines only
    raw = out.encode("utf-8")  # valid UTF-8: no raw surrogate survives
    back = json.loads(raw)
    assert os.fsencode(back["name"]) == name
    assert back["text"] == text and back["list"] == [text, 1, None]


def test_invisible_characters_cannot_make_a_name_look_like_another() -> None:
    for c in INVISIBLE:
        shown = quote_name(f".g{c}it")
        assert shown != ".git" and shown.startswith('"'), repr(shown)
        assert unquote(shown) == f".g{c}it".encode()
        assert c not in escape_text(f"a{c}b")


def test_a_shell_word_is_a_name_a_shell_reads_back_as_it_is() -> None:
    from vfs.quoting import shell_word

    for name in ("data", "my data", "it's", "a$b", "-x", "日本", ""):
        assert shlex.split(shell_word(name)) == [name]
    assert shell_word("data/a.csv") == "data/a.csv"  # nothing added where none is needed
    assert shell_word("a\nb") == '"a\\nb"'  # a control character: shown, never raw
