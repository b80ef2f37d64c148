"""What a teammate or a remote records can be anything: a forged version's message, a
params file's YAML tags, a Parquet file that expands without bound. Each must leave
dvfs's output bounded and its records faithful, or be refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import vfs
from tests.support.cli import assert_ok, fsck_clean, run
from tests.support.forge import Forge, file_entry, nested
from vfs.model.params import MAX_MESSAGE, SHOWN_AUTHOR
from vfs.model.version_codec import Version, encode_version
from vfs.store.objects import ObjKind

# ------------------------------------------------------------------- huge messages


def forged_chatter(root: Path, message: str, author: str) -> Forge:
    """A remote whose one version carries ``message`` and ``author``, with two branches
    (``main`` and the experiment ``exp/big``) at it."""
    forge = Forge(root)
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    v = Version(nested(forge, [b"data"], [leaf]), (), 1, message, author, 1, params={"lr": 0.1})
    oid = forge.add(ObjKind.VERSION, encode_version(v))
    forge.publish({"main": oid, "exp/big": oid})
    return forge


def test_a_forged_megabyte_message_is_shown_cut_short_and_marked(tmp_path: Path) -> None:
    """A forged version with a 10 MiB message and a 1 MiB author was printed whole by
    ``log``, ``show``, ``compare`` and the API (11.5 MB of output a time)."""
    message, author = "m" * (10 << 20), "a" * (1 << 20)
    forge = forged_chatter(tmp_path / "evil", message, author)
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = tmp_path / "b"
    bound = MAX_MESSAGE + SHOWN_AUTHOR + 4096
    marker = f"{len(message) - MAX_MESSAGE:,} more characters not shown"
    for args in (("log",), ("log", "--oneline"), ("show",), ("compare", "--csv")):
        r = assert_ok(run(b, *args))
        assert len(r.out) < bound and marker in r.out, (args, len(r.out))
    for args in (("log", "--json"), ("show", "--json")):
        r = assert_ok(run(b, *args))
        assert len(r.out) < bound, (args, len(r.out))
        doc = r.json()
        got = doc[0] if isinstance(doc, list) else doc
        assert got["message"] == "m" * MAX_MESSAGE + f"\u2026 [{marker}]"
        assert got["author"].startswith("a" * SHOWN_AUTHOR + "\u2026 [")
    rows = assert_ok(run(b, "compare", "--json")).json()
    assert all(len(json.dumps(row)) < bound for row in rows)
    assert_ok(run(b, "branch", "exp/big", "origin/exp/big"))
    r = assert_ok(run(b, "exp", "list", "--json"))
    assert len(r.out) < bound and marker in r.out
    with vfs.Repo(b) as repo:
        [info] = repo.versions()
        assert len(info.message) < bound and marker in info.message
        assert len(info.author) < bound
        assert repo.show("v1").message == info.message
    fsck_clean(b)


def test_a_message_dvfs_could_record_is_shown_whole(tmp_path: Path) -> None:
    message = "é" * (MAX_MESSAGE // 2)  # 64 KiB of UTF-8: the longest dvfs records
    forge = forged_chatter(tmp_path / "evil", message, "a" * SHOWN_AUTHOR)
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    [row] = assert_ok(run(tmp_path / "b", "log", "--json")).json()
    assert row["message"] == message and row["author"] == "a" * SHOWN_AUTHOR
