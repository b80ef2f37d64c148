"""Reserved names: ``.git`` and ``.dvfs`` in every spelling a filesystem folds to them."""

from __future__ import annotations

import msgpack
import pytest

from vfs.errors import FormatError
from vfs.model.codec import decode_tree
from vfs.model.names import any_reserved, is_reserved, is_reserved_at_root

REFUSED = [
    b".git",
    b".GIT",
    b".Git",
    b".dvfs",
    b".DVFS",
    b".git.",
    b".git ",
    b".git. . ",
    b".git::$INDEX_ALLOCATION",
    b".dvfs:stream",
    b"git~1",
    b"GIT~4",
    b"gi7eba~9",
    b"dvfs~1",
    ".g\u200cit".encode(),
    "\u200d.git".encode(),
    ".git\ufeff".encode(),
    ".DV\u206afs".encode(),
]
ALLOWED = [
    b"git",
    b".gitignore",
    b".gitattributes",
    b".dvfsignore",
    b"my.git",
    b"x.dvfs",
    b"git~5",
    b"dvfs.lock",
    b".versions",
    b"..git",
    "\u00e9.git".encode(),
    b"\xff.git",
    b"digit",
]


@pytest.mark.parametrize("name", REFUSED)
def test_guarded_names_and_their_lookalikes_are_reserved(name: bytes) -> None:
    assert is_reserved(name)
    assert any_reserved([b"a", name, b"b"]) == name


@pytest.mark.parametrize("name", ALLOWED)
def test_ordinary_names_are_not_reserved(name: bytes) -> None:
    assert not is_reserved(name)
    assert any_reserved([name]) is None


def test_versions_is_reserved_only_at_the_root() -> None:
    assert is_reserved_at_root(b".versions")
    assert is_reserved_at_root(b".git")
    assert not is_reserved(b".versions")


@pytest.mark.parametrize("name", [b".git", b".DVFS", b"GIT~1", ".g\u200cit".encode()])
def test_a_tree_record_holding_a_reserved_name_does_not_decode(name: bytes) -> None:
    row = [name, 1, 0o755, 0, 0, bytes(32)]
    data = msgpack.packb({"v": 1, "entries": [row]}, use_bin_type=True)
    with pytest.raises(FormatError, match="reserved name"):
        decode_tree(data)


@pytest.mark.parametrize(
    ("name", "shown"),
    [(b"..", "invalid name .."), (b"", 'invalid name ""'), (b"a\0b", 'invalid name "a\\000b"'),
     ("\u200d.git".encode(), 'reserved name "\\342\\200\\215.git"')],
)  # fmt: skip
def test_a_damaged_tree_record_names_the_name_as_messages_quote_names(
    name: bytes, shown: str
) -> None:
    """It said "invalid name b'..'" (Python's bytes repr) where every other message
    shows a name as vfs.quoting quotes it."""
    row = [name, 1, 0o755, 0, 0, bytes(32)]
    data = msgpack.packb({"v": 1, "entries": [row]}, use_bin_type=True)
    with pytest.raises(FormatError) as got:
        decode_tree(data)
    assert str(got.value) == f"{shown} in a tree record"
