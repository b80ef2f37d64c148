"""``dvfs diff REV REV PATH --rows``: rows added, removed and changed in data files.

One repository with two versions of a dozen small data files is built once (through
the command line) and diffed many ways; the tests that need more (a file with a huge
line, a missing engine) make their own.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import msgpack
import pytest

from tests.support.cli import Repo, assert_error, assert_ok, init_repo, run_python

PEOPLE_V1 = "id,name,age\n1,ann,31\n2,bob,42\n3,cy,27\n4,dee,55\n"
PEOPLE_V2 = "id,name,age\n1,ann,32\n3,cy,27\n4,dee,55\n5,eve,19\n"


def parquet(path: Path, rows: str) -> bytes:
    """A Parquet file (written by the engine) of ``rows``, a SQL VALUES list of (id, v)."""
    con = duckdb.connect()
    try:
        con.execute(f"COPY (SELECT * FROM (VALUES {rows}) t(id, v)) TO '{path}' (FORMAT parquet)")
    finally:
        con.close()
    return path.read_bytes()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """A repository whose v1 and v2 hold two versions of each data file."""
    root = tmp_path_factory.mktemp("rowdiff") / "repo"
    repo = init_repo(root)
    scratch = root.parent
    v1: dict[str, bytes | str] = {
        "people.csv": PEOPLE_V1,
        "bag.csv": "a,b\n1,x\n1,x\n2,y\n",
        "schema.csv": "id,age,city,score\n1,30,rome,1.5\n2,40,oslo,2.5\n",
        "semi.csv": "k;v\n1;one\n2;two\n",
        "bare.csv": "1,10\n2,20\n3,30\n",
        "events.jsonl": '{"id": 1, "kind": "click", "n": 1}\n{"id": 2, "kind": "view", "n": 5}\n',
        "table.parquet": parquet(scratch / "t1.parquet", "(1, 'a'), (2, 'b'), (3, 'c')"),
        "dups.csv": "id,v\n1,a\n2,b\n2,c\n",
        "fake.csv": gzip.compress(b"id,v\n1,a\n" * 100),
        "odd.csv": "id,na\x1bme\n1,plain\n",
        "footer.parquet": parquet(scratch / "t2.parquet", "(1, 'a')"),
        "tabs.tsv": "id\tv\n1\ta\n2\tb\n",
        "header.csv": "id,score\r\n",
        "renamed.csv": "a,b\n1,x\n",
        "mixed.jsonl": '{"id": 1, "v": "a"}\n{"id": 3, "v": {"x": [1, 2]}}\n',
        "keys.csv": "k\n1\n2\n",
        "retyped.csv": "id,x\n1,3\n2,4\n",
        "texts.jsonl": '{"id": 1, "v": 2}\n{"id": 2, "v": "x"}\n{"id": 3, "v": true}\n',
        "codes.csv": "id,c\n1,7\n2,8\n",
        "kinds.jsonl": '{"id": 1, "v": 2}\n{"id": 2, "v": 3}\n{"id": 3, "v": 4}\n',
        "kinds.parquet": parquet(scratch / "t4.parquet", "(1, 2), (2, 3)"),
        "fields.csv": "id,x,d\n1,2.50,2024-1-5\n2,3.0,2024-01-06\n",
        "stamps.jsonl": '{"id": 1, "t": "2024-01-05T10:00:00Z", "u": "2024-01-05", '
        '"m": {"at": "2024-01-05T10:00:00Z"}}\n'
        '{"id": 2, "t": "2024-01-06T11:00:00Z", "u": "2024-01-06", '
        '"m": {"at": "2024-01-06T11:00:00Z"}}\n',
    }
    v2: dict[str, bytes | str] = {
        "people.csv": PEOPLE_V2,
        "bag.csv": "a,b\n1,x\n2,y\n2,y\n3,z\n",
        "schema.csv": "id,age,score,email\n1,thirty,1.5,a@x\n2,40,2.75,b@x\n",
        "semi.csv": "k;v\n1;one\n2;deux\n",
        "bare.csv": "1,10\n2,21\n3,30\n",
        "events.jsonl": '{"id": 1, "kind": "click", "n": 2}\n{"id": 3, "kind": "buy", "n": 1}\n',
        "table.parquet": parquet(scratch / "t3.parquet", "(1, 'a'), (2, 'B'), (4, 'd')"),
        "dups.csv": "id,v\n1,a\n2,b\n2,d\n",
        "fake.csv": gzip.compress(b"id,v\n1,b\n" * 100),
        "odd.csv": "id,na\x1bme\n1,new\x1b[31mline\n",
        "footer.parquet": b"PAR1" + b"\0" * 64 + (2**31).to_bytes(4, "little") + b"PAR1",
        "tabs.tsv": "id\tv\n1\ta\n2\tc\n",
        "late.csv": "id,v\n1,a\n2,b\n",
        "header.csv": "id,score\r\n1,0.5\r\n",
        "renamed.csv": "c,d\n3,z\n2,y\n",
        "mixed.jsonl": '{"id": 1, "v": "b"}\n{"id": "2", "v": [true]}\n'
        '{"id": 3, "v": {"x": [1, 3]}}\n',
        "keys.csv": "k\n2\n3\n",
        "retyped.csv": "id,x\n1,3\n2,4.5\n3,6\n",
        "texts.jsonl": '{"id": 1, "v": "2"}\n{"id": 2, "v": "true"}\n{"id": 3, "v": true}\n',
        "codes.csv": "id,c\n1,7\n2,x8\n3,9\n",
        "kinds.jsonl": '{"id": 1, "v": "2"}\n{"id": 2, "v": "3"}\n{"id": 3, "v": "x"}\n',
        "kinds.parquet": parquet(scratch / "t5.parquet", "(1, '2'), (2, 'x')"),
        "fields.csv": "id,x,d\n1,2.50,2024-1-5\n2,abc,soon\n",
        "stamps.jsonl": '{"id": 1, "t": "2024-01-05T10:00:00Z", "u": "2024-01-05", '
        '"m": {"at": "2024-01-05T10:00:00Z"}}\n'
        '{"id": 2, "t": "later", "u": 6, "m": {"at": "never"}}\n',
    }
    for version in (v1, v2):
        for name, content in version.items():
            repo.write(name, content)
        repo.ok("add", ".")
        repo.ok("commit", "-m", "data")
    yield repo


def rows_json(repo: Repo, path: str, *extra: str) -> dict[str, Any]:
    r = assert_ok(repo.run("diff", "v1", "v2", path, "--rows", "--json", *extra))
    data: dict[str, Any] = r.json()
    return data


def test_keyed_rows_are_added_removed_and_changed_column_by_column(data: Repo) -> None:
    d = rows_json(data, "people.csv", "--key", "id")
    assert d["summary"] == {
        "added": 1, "removed": 1, "changed": 1, "unchanged": 2, "columns": {"age": 1},
    }  # fmt: skip
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 1}, "changes": {"age": {"old": 31, "new": 32}},
         "count": 1},
        {"status": "removed", "key": {"id": 2}, "values": {"id": 2, "name": "bob", "age": 42},
         "count": 1},
        {"status": "added", "key": {"id": 5}, "values": {"id": 5, "name": "eve", "age": 19},
         "count": 1},
    ]  # fmt: skip
    assert d["schema"] == [] and d["more"] == 0 and d["format"] == "CSV"
    out = data.ok("diff", "v1", "v2", "people.csv", "--rows", "--key", "id").out.splitlines()
    assert out == [
        "rows of people.csv, v1 -> v2 (key id): 1 added, 1 removed, 1 changed, 2 unchanged",
        "changed columns: age (1)",
        "changed  id=1  age: 31 -> 32",
        "removed  id=2  name=bob, age=42",
        "added    id=5  name=eve, age=19",
    ]
    assert not [p for p in os.listdir(data.root / ".dvfs") if p.startswith("rows-")]


def test_limit_shows_the_first_rows_in_key_order_and_counts_the_rest(data: Repo) -> None:
    d = rows_json(data, "people.csv", "--key", "id", "--limit", "1")
    assert [r["key"] for r in d["rows"]] == [{"id": 1}] and d["more"] == 2
    out = data.ok("diff", "v1", "v2", "people.csv", "--rows", "--key", "id", "--limit", "0").out
    assert "... 3 more (--limit N shows more)" in out
    assert "changed  id=1" not in out


def test_without_a_key_rows_are_a_multiset(data: Repo) -> None:
    d = rows_json(data, "bag.csv")
    assert d["summary"]["added"] == 2 and d["summary"]["removed"] == 1
    assert d["summary"]["unchanged"] == 2
    assert d["rows"] == [
        {"status": "removed", "key": {}, "values": {"a": 1, "b": "x"}, "count": 1},
        {"status": "added", "key": {}, "values": {"a": 2, "b": "y"}, "count": 1},
        {"status": "added", "key": {}, "values": {"a": 3, "b": "z"}, "count": 1},
    ]


def test_a_retyped_columns_values_are_each_sides_own_with_or_without_a_key(
    data: Repo,
) -> None:
    """Integers that gained a ``4.5`` are compared as numbers; a removed row without
    a key showed ``x=4.0``, the value it was compared as, where its file says ``4``
    and the keyed diff shows ``4``. Each row now shows its own side's values."""
    plain = rows_json(data, "retyped.csv")
    assert plain["rows"] == [
        {"status": "removed", "key": {}, "values": {"id": 2, "x": 4}, "count": 1},
        {"status": "added", "key": {}, "values": {"id": 2, "x": 4.5}, "count": 1},
        {"status": "added", "key": {}, "values": {"id": 3, "x": 6.0}, "count": 1},
    ]
    assert [type(r["values"]["x"]) for r in plain["rows"]] == [int, float, float]
    keyed = rows_json(data, "retyped.csv", "--key", "id")
    assert keyed["rows"][0]["changes"] == {"x": {"old": 4, "new": 4.5}}
    assert keyed["rows"][1]["values"] == plain["rows"][2]["values"]
    out = data.ok("diff", "v1", "v2", "retyped.csv", "--rows").out.splitlines()
    assert out[-3:] == [
        "removed  id=2, x=4",
        "added    id=2, x=4.5",
        "added    id=3, x=6.0",
    ]


def test_schema_changes_come_first_and_rows_compare_common_columns(data: Repo) -> None:
    d = rows_json(data, "schema.csv", "--key", "id")
    assert d["schema"] == [
        {"status": "removed", "column": "city", "old_type": "VARCHAR", "new_type": None},
        {"status": "added", "column": "email", "old_type": None, "new_type": "VARCHAR"},
        {"status": "retyped", "column": "age", "old_type": "BIGINT", "new_type": "VARCHAR"},
    ]
    # age is compared as text (30 -> thirty; 40 stays 40), score as a number.
    assert d["summary"]["changed"] == 2
    assert d["summary"]["columns"] == {"age": 1, "score": 1}
    out = data.ok("diff", "v1", "v2", "schema.csv", "--rows", "--key", "id").out.splitlines()
    assert out[:3] == [
        "column removed:  city (VARCHAR)",
        "column added:    email (VARCHAR)",
        "column retyped:  age: BIGINT -> VARCHAR",
    ]
    assert out[3].startswith("rows of schema.csv")


def test_the_dialect_and_header_are_sniffed(data: Repo) -> None:
    semi = rows_json(data, "semi.csv", "--key", "k")
    assert semi["rows"] == [
        {"status": "changed", "key": {"k": 2}, "changes": {"v": {"old": "two", "new": "deux"}},
         "count": 1},
    ]  # fmt: skip
    tabs = rows_json(data, "tabs.tsv", "--key", "id")
    assert tabs["format"] == "TSV" and tabs["summary"]["changed"] == 1
    bare = rows_json(data, "bare.csv", "--key", "column0")  # no header: columns by position
    assert bare["rows"][0]["changes"] == {"column1": {"old": 20, "new": 21}}


def test_json_lines_and_parquet(data: Repo) -> None:
    ev = rows_json(data, "events.jsonl", "--key", "id")
    assert ev["format"] == "JSON Lines"
    assert [(r["status"], r["key"]) for r in ev["rows"]] == [
        ("changed", {"id": 1}), ("removed", {"id": 2}), ("added", {"id": 3}),
    ]  # fmt: skip
    assert ev["rows"][0]["changes"] == {"n": {"old": 1, "new": 2}}
    pq = rows_json(data, "table.parquet", "--key", "id")
    assert pq["format"] == "Parquet"
    assert pq["summary"] == {
        "added": 1, "removed": 1, "changed": 1, "unchanged": 1, "columns": {"v": 1},
    }  # fmt: skip


def test_a_file_that_is_not_its_format_gets_a_byte_summary(data: Repo) -> None:
    d = rows_json(data, "fake.csv", "--key", "id")
    assert d["method"] == "bytes" and d["rows"] == []
    assert "not CSV" in d["notes"][0] and "NUL" in d["notes"][0]
    assert d["bytes"]["old_size"] > 0
    out = data.ok("diff", "v1", "v2", "fake.csv", "--rows").out.splitlines()
    assert out[0].startswith("note: fake.csv in v1 is not CSV")
    assert out[1].startswith("bytes of fake.csv, v1 -> v2: ")


def test_a_parquet_file_with_a_bogus_footer_gets_a_byte_summary(data: Repo) -> None:
    d = rows_json(data, "footer.parquet", "--key", "id")
    assert d["method"] == "bytes"
    assert "Parquet that the engine cannot read" in d["notes"][0]


def test_a_key_that_is_not_unique_is_an_error_with_an_example(data: Repo) -> None:
    line = data.fail("diff", "v1", "v2", "dups.csv", "--rows", "--key", "id")
    assert "not unique in dups.csv in v1: id=2 names 2 rows" in line
    # Without a key the same files are compared as whole rows.
    d = rows_json(data, "dups.csv")
    assert d["summary"]["added"] == 1 and d["summary"]["removed"] == 1


def test_a_key_column_that_does_not_exist_is_named_with_the_columns(data: Repo) -> None:
    data.fail(
        "diff", "v1", "v2", "people.csv", "--rows", "--key", "id,nope",
        fragments=("--key column nope is not in people.csv in v1", "its columns: id, name, age"),
        code=2,
    )  # fmt: skip


def test_control_characters_in_names_and_values_are_quoted(data: Repo) -> None:
    r = data.ok("diff", "v1", "v2", "odd.csv", "--rows", "--key", "id")
    assert "\x1b" not in r.out
    assert 'changed  id=1  "na\\033me": plain -> "new\\033[31mline"' in r.out
    d = rows_json(data, "odd.csv", "--key", "id")  # JSON keeps them exact
    assert d["rows"][0]["changes"] == {"na\x1bme": {"old": "plain", "new": "new\x1b[31mline"}}


def test_a_header_without_rows_retypes_no_column(data: Repo) -> None:
    # the engine types a column without values as text: that says nothing of v2's
    d = rows_json(data, "header.csv", "--key", "id")
    assert d["schema"] == [] and d["summary"]["added"] == 1
    assert d["rows"] == [
        {"status": "added", "key": {"id": 1}, "values": {"id": 1, "score": 0.5}, "count": 1},
    ]  # fmt: skip
    back = data.json("diff", "v2", "v1", "header.csv", "--rows", "--json")
    assert back["schema"] == [] and back["summary"]["removed"] == 1


def test_an_unchanged_csv_field_of_a_retyped_column_is_no_change(data: Repo) -> None:
    """A CSV column read as numbers (or dates) in one version and as text in the next
    was compared as the text of the values read: the field ``2.50``, unchanged, became
    ``2.5`` on one side, and ``2024-1-5`` became ``2024-01-05``, each a change. Such a
    column is compared as its fields' text, and shown as it."""
    d = rows_json(data, "fields.csv", "--key", "id")
    assert [c["status"] for c in d["schema"]] == ["retyped", "retyped"]
    assert d["summary"] == {
        "added": 0, "removed": 0, "changed": 1, "unchanged": 1, "columns": {"x": 1, "d": 1},
    }  # fmt: skip
    assert d["rows"][0]["changes"] == {
        "x": {"old": "3.0", "new": "abc"}, "d": {"old": "2024-01-06", "new": "soon"},
    }  # fmt: skip
    bag = rows_json(data, "fields.csv")
    assert (bag["summary"]["added"], bag["summary"]["unchanged"]) == (1, 1)


def test_json_strings_read_as_timestamps_are_compared_as_the_strings(data: Repo) -> None:
    """The engine reads a JSON Lines field whose strings all spell timestamps as
    TIMESTAMP: when one became "later", the unchanged "2024-01-05T10:00:00Z" was
    compared as the timestamp's text (2024-01-05 10:00:00+00) and called changed. The
    file holds strings: they are compared and shown as those, inside an object too; a
    string that became the number 6 is still a change."""
    d = rows_json(data, "stamps.jsonl", "--key", "id")
    assert [(c["column"], c["new_type"]) for c in d["schema"]] == [
        ("t", "VARCHAR"), ("u", "JSON"), ("m", "STRUCT(\"at\" VARCHAR)"),
    ]  # fmt: skip
    assert (d["summary"]["changed"], d["summary"]["unchanged"]) == (1, 1)
    assert d["rows"][0]["changes"] == {
        "t": {"old": "2024-01-06T11:00:00Z", "new": "later"},
        "u": {"old": "2024-01-06", "new": 6},
        "m": {"old": {"at": "2024-01-06T11:00:00Z"}, "new": {"at": "never"}},
    }  # fmt: skip
    bag = rows_json(data, "stamps.jsonl")
    assert (bag["summary"]["added"], bag["summary"]["unchanged"]) == (1, 1)


def test_a_number_that_became_a_text_in_json_lines_or_parquet_is_a_change(
    data: Repo,
) -> None:
    """A JSON Lines field or a Parquet column whose numbers became texts was compared
    as text, as a CSV column is, and the number 2 that became the text "2" was no
    change (0 changed, 2 unchanged). Their values carry their types: now it is one,
    while a CSV field written alike stays the same field."""
    d = rows_json(data, "kinds.jsonl", "--key", "id")
    assert d["schema"] == [
        {"status": "retyped", "column": "v", "old_type": "BIGINT", "new_type": "VARCHAR"},
    ]  # fmt: skip
    assert d["summary"] == {
        "added": 0, "removed": 0, "changed": 3, "unchanged": 0, "columns": {"v": 3},
    }  # fmt: skip
    assert [r["changes"] for r in d["rows"]] == [
        {"v": {"old": 2, "new": "2"}}, {"v": {"old": 3, "new": "3"}},
        {"v": {"old": 4, "new": "x"}},
    ]  # fmt: skip
    out = data.ok("diff", "v1", "v2", "kinds.jsonl", "--rows", "--key", "id").out.splitlines()
    assert out[-3:] == [
        'changed  id=1  v: 2 -> "2"', 'changed  id=2  v: 3 -> "3"', "changed  id=3  v: 4 -> x",
    ]  # fmt: skip
    bag = rows_json(data, "kinds.jsonl")
    assert (bag["summary"]["added"], bag["summary"]["removed"]) == (3, 3)
    pq = rows_json(data, "kinds.parquet", "--key", "id")
    assert pq["schema"] == [
        {"status": "retyped", "column": "v", "old_type": "INTEGER", "new_type": "VARCHAR"},
    ]  # fmt: skip
    assert [r["changes"] for r in pq["rows"]] == [
        {"v": {"old": 2, "new": "2"}}, {"v": {"old": 3, "new": "x"}},
    ]  # fmt: skip
    # a text key no longer matches the number it spells
    by_v = rows_json(data, "kinds.parquet", "--key", "v")
    assert (by_v["summary"]["added"], by_v["summary"]["removed"]) == (2, 2)


def test_rows_of_sides_without_a_common_column_are_shown_with_their_own(data: Repo) -> None:
    # no row was shown, and "... 3 more (--limit N shows more)" whatever the limit
    d = rows_json(data, "renamed.csv")
    assert (d["summary"]["added"], d["summary"]["removed"], d["more"]) == (2, 1, 0)
    assert [(r["status"], r["values"]) for r in d["rows"]] == [
        ("removed", {"a": 1, "b": "x"}), ("added", {"c": 2, "d": "y"}),
        ("added", {"c": 3, "d": "z"}),
    ]  # fmt: skip
    out = data.ok("diff", "v1", "v2", "renamed.csv", "--rows", "--limit", "2").out
    assert "added    c=2, d=y\n... 1 more (--limit N shows more)" in out


def test_fields_of_mixed_types_are_their_json_values_not_their_text(data: Repo) -> None:
    d = rows_json(data, "mixed.jsonl", "--key", "id")
    # the JSON column's values were the JSON text: "\"2\"" for "2", "\"b\"" for "b"
    assert sorted(map(json.dumps, d["rows"])) == sorted(map(json.dumps, [
        {"status": "added", "key": {"id": "2"}, "values": {"id": "2", "v": [True]},
         "count": 1},
        {"status": "changed", "key": {"id": 1}, "changes": {"v": {"old": "a", "new": "b"}},
         "count": 1},
        {"status": "changed", "key": {"id": 3},
         "changes": {"v": {"old": {"x": [1, 2]}, "new": {"x": [1, 3]}}}, "count": 1},
    ]))  # fmt: skip
    out = data.ok("diff", "v1", "v2", "mixed.jsonl", "--rows", "--key", "id").out
    assert 'added    id="2"  v=[true]' in out and "v: a -> b" in out


def test_a_text_that_reads_as_a_number_is_quoted_where_numbers_stand_beside_it(
    data: Repo,
) -> None:
    """A JSON Lines field holding the number 2 in one version and the text "2" in the
    next was shown as ``v: 2 -> 2``; in a column whose values may be texts beside
    numbers, booleans or lists (a JSON field, a JSON Lines or Parquet column whose type
    changed), such a text is quoted, as parameters are. A column of texts alone, and a
    CSV column compared as its fields' text, show their texts as they are."""
    d = rows_json(data, "texts.jsonl", "--key", "id")
    assert d["mixed_columns"] == ["v"]
    assert [r["changes"]["v"] for r in d["rows"]] == [
        {"old": 2, "new": "2"}, {"old": "x", "new": "true"},
    ]  # fmt: skip
    out = data.ok("diff", "v1", "v2", "texts.jsonl", "--rows", "--key", "id").out.splitlines()
    assert out[-2:] == ['changed  id=1  v: 2 -> "2"', 'changed  id=2  v: x -> "true"']
    out = data.ok("diff", "v1", "v2", "texts.jsonl", "--rows").out.splitlines()
    assert sorted(out[-4:]) == [
        'added    id=1, v="2"', 'added    id=2, v="true"',
        "removed  id=1, v=2", "removed  id=2, v=x",
    ]  # fmt: skip
    # a CSV column of integers that became text is compared as its fields' text
    codes = rows_json(data, "codes.csv", "--key", "id")
    assert codes["mixed_columns"] == []
    out = data.ok("diff", "v1", "v2", "codes.csv", "--rows", "--key", "id").out.splitlines()
    assert out[-2:] == ["changed  id=2  c: 8 -> x8", "added    id=3  c=9"]
    assert codes["summary"]["changed"] == 1  # 7 -> 7: the same field of the CSV file
    # texts beside texts only: no quotes
    plain = data.ok("diff", "v1", "v2", "people.csv", "--rows", "--key", "id").out
    assert rows_json(data, "people.csv")["mixed_columns"] == []
    assert "added    id=5  name=eve, age=19" in plain


def test_a_row_of_its_key_alone_ends_with_the_key(data: Repo) -> None:
    out = data.ok("diff", "v1", "v2", "keys.csv", "--rows", "--key", "k").out.splitlines()
    assert out[1:] == ["removed  k=1", "added    k=3"]  # not "removed  k=1  "


def test_a_file_only_one_version_has_is_all_added(data: Repo) -> None:
    d = rows_json(data, "late.csv", "--key", "id")
    assert d["summary"]["added"] == 2 and d["schema"] == []


def test_rows_against_the_working_tree(data: Repo, tmp_path: Path) -> None:
    people = data.root / "people.csv"
    try:
        people.write_text(PEOPLE_V2 + "6,fay,61\n")
        d = data.json("diff", "people.csv", "--rows", "--key", "id", "--json")  # HEAD -> working
        assert (d["old"], d["new"]) == ("HEAD", "the working tree")
        assert d["rows"] == [
            {"status": "added", "key": {"id": 6}, "values": {"id": 6, "name": "fay", "age": 61},
             "count": 1},
        ]  # fmt: skip
        d = data.json("diff", "v1", "people.csv", "--rows", "--key", "id", "--json")
        assert d["summary"]["added"] == 2
    finally:
        people.write_text(PEOPLE_V2)
    data.fsck_clean()


def test_bad_uses_of_rows_are_refused_in_one_line(data: Repo) -> None:
    data.fail("diff", "v1", "v2", "people.csv", "--key", "id", fragments=("go with --rows",))
    data.fail("diff", "v1", "v2", "people.csv", "bag.csv", "--rows", fragments=("one file",))
    data.fail("diff", "v1", "v2", "people.csv", "--rows", "--stat", fragments=("--stat",))
    data.write("notes.txt", "x")
    data.fail("diff", "notes.txt", "--rows", fragments=("has none of these extensions",))
    data.fail("diff", "v1", "v2", ".", "--rows", fragments=("not the repository's root",))


def test_a_huge_line_fails_cleanly_within_bounded_memory(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    repo.write("big.csv", "id,v\n1,a\n")
    repo.ok("add", ".")
    repo.ok("commit", "-m", "small")
    with open(repo.root / "big.csv", "ab") as f:
        f.write(b"2,")
        for _ in range(256):
            f.write(b"x" * (1 << 20))  # one line of 256 MiB
        f.write(b"\n")
    repo.ok("add", ".")
    repo.ok("commit", "-m", "huge")
    # The peak is VmHWM, the high-water mark of this program's own memory. Not
    # ru_maxrss: Linux carries the peak of the process that forked it (this test
    # process, hundreds of MiB late in a full run) over to the program it execs.
    script = (
        "import sys\n"
        "import vfs.cli\n"
        "from vfs.cli import main\n"
        "vfs.cli.exit_now = sys.exit  # (a diff that succeeds ends the process at once)\n"
        "sys.argv = ['dvfs', 'diff', 'v1', 'v2', 'big.csv', '--rows', '--json']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print(next(x.split()[1] for x in open('/proc/self/status') if x.startswith('VmHWM:')))\n"
    )
    out = run_python(script, cwd=repo.root).splitlines()
    d = json.loads("\n".join(out[:-1]))
    assert d["method"] == "bytes" and "line" in d["notes"][0].lower()
    assert int(out[-1]) < 192 * 1024, f"peak RSS {int(out[-1]) // 1024} MiB"  # KiB
    assert not [p for p in os.listdir(repo.root / ".dvfs") if p.startswith("rows-")]


def test_without_the_engine_rows_say_what_to_install(tmp_path: Path, data: Repo) -> None:
    shim = tmp_path / "shim"
    for name in ("duckdb", "_duckdb"):  # the package and its compiled engine
        (shim / name).mkdir(parents=True)
        (shim / name / "__init__.py").write_text(
            f"raise ModuleNotFoundError(\"No module named '{name}'\", name='{name}')\n"
        )
    r = data.run("diff", "v1", "v2", "people.csv", "--rows", env={"PYTHONPATH": str(shim)})
    assert_error(r, "pip install 'dvfs[tables]'", code=2)


def test_a_plain_diff_never_loads_the_engine(data: Repo) -> None:
    script = (
        "import sys\n"
        "import vfs.cli\n"
        "from vfs.cli import main\n"
        "vfs.cli.exit_now = sys.exit  # (a diff that succeeds ends the process at once)\n"
        "sys.argv = ['dvfs', 'diff', 'v1', 'v2', '--stat']\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "engines = ('duckdb', '_duckdb', 'pyarrow')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in engines))\n"
    )
    assert run_python(script, cwd=data.root).splitlines()[-1] == "[]"
    assert "duckdb" in sys.modules  # this test process has it: the check above can fail


def test_a_plain_row_diff_runs_without_click_and_prints_what_click_prints(data: Repo) -> None:
    # `dvfs diff REV REV PATH --rows --key COL --limit N --json` spelled so starts
    # without importing click (vfs.cli.rows); any other spelling goes to click's
    # command, which must print the same.
    argv = ["diff", "v1", "v2", "people.csv", "--rows", "--key", "id", "--limit", "2"]
    for extra in ([], ["--json"]):
        script = (
            "import sys\n"
            "import vfs.cli\n"
            "vfs.cli.exit_now = sys.exit  # (a diff that succeeds ends the process at once)\n"
            f"sys.argv = ['dvfs', *{argv + extra!r}]\n"
            "try:\n    vfs.cli.main()\nexcept SystemExit as exc:\n    assert not exc.code\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'click'))\n"
        )
        *out, loaded = run_python(script, cwd=data.root).splitlines()
        assert loaded == "[]"
        spelled = ["diff", "v1", "v2", "people.csv", "--rows", "--key=id", "--limit", "2"]
        by_click = data.ok(*spelled, *extra).out.splitlines()
        assert out == by_click and len(out) > 2
    assert_error(data.run(*argv[:4], "--rows", "--key", "nope"), "--key column nope", code=2)


def test_a_plain_row_diff_of_a_csv_imports_neither_decimal_nor_uuid(data: Repo) -> None:
    # the engine gives Decimal and UUID values only for such columns (importing the
    # modules then): a diff of a CSV without them starts without both
    argv = ["diff", "v1", "v2", "people.csv", "--rows", "--key", "id", "--json"]
    script = (
        "import sys\n"
        "import vfs.cli\n"
        "vfs.cli.exit_now = sys.exit  # (a diff that succeeds ends the process at once)\n"
        f"sys.argv = ['dvfs', *{argv!r}]\n"
        "try:\n    vfs.cli.main()\nexcept SystemExit as exc:\n    assert not exc.code\n"
        "print(sorted(m for m in sys.modules if m in ('decimal', '_decimal', 'uuid')))\n"
    )
    *out, loaded = run_python(script, cwd=data.root).splitlines()
    assert loaded == "[]"
    assert json.loads("\n".join(out))["summary"]["changed"] == 1


def test_decimal_and_uuid_values_are_shown_as_their_text(tmp_path: Path) -> None:
    # a Parquet file's DECIMAL and UUID values come from the engine as Python's
    # Decimal and UUID: the JSON and the lines give their text
    repo = init_repo(tmp_path / "repo")
    u1, u2 = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "b1ffcd00-0d1c-4ef8-bb6d-6bb9bd380a22"
    for i, (price, u) in enumerate((("1.50", u1), ("2.25", u2))):
        made = tmp_path / f"p{i}.parquet"
        con = duckdb.connect()
        try:
            con.execute(
                f"COPY (SELECT 1 AS id, {price}::DECIMAL(9, 2) AS price, '{u}'::UUID AS u) "
                f"TO '{made}' (FORMAT parquet)"
            )
        finally:
            con.close()
        repo.write("p.parquet", made.read_bytes())
        repo.ok("add", ".")
        repo.ok("commit", "-m", "p")
    d = rows_json(repo, "p.parquet", "--key", "id")
    assert d["rows"][0]["changes"] == {
        "price": {"old": "1.50", "new": "2.25"}, "u": {"old": u1, "new": u2},
    }  # fmt: skip
    out = repo.ok("diff", "v1", "v2", "p.parquet", "--rows", "--key", "id").out
    assert "1.50 -> 2.25" in out and f"{u1} -> {u2}" in out, out
    repo.ok("fsck")


def test_what_a_diff_learns_of_a_file_is_kept_and_checked_when_read_back(tmp_path: Path) -> None:
    # The chunk facts a copy scans (vfs.tables.source), a key a diff proves and the
    # dialect and types the engine sniffs (vfs.tables.checks) are kept in
    # .dvfs/rowcache: a later diff reading them gives the first one's answer, and so
    # does one after they were damaged.
    repo = init_repo(tmp_path / "repo")
    rows = "".join(f"{i},w{i % 7},{i * 3}\n" for i in range(20000))
    for text in (rows, rows.replace("\n500,w3,1500\n", "\n500,changed,1500\n")):
        repo.write("t.csv", "id,a,b\n" + text)
        repo.ok("add", ".")
        repo.ok("commit", "-m", "t")
    argv = ("diff", "v1", "v2", "t.csv", "--rows", "--key", "id", "--json")
    first = repo.ok(*argv).out
    assert json.loads(first)["summary"]["changed"] == 1
    cache = repo.root / ".dvfs" / "rowcache"
    kept = sorted(os.listdir(cache))
    assert len([n for n in kept if n.endswith(".facts")]) == 2
    assert len([n for n in kept if n.endswith(".sniff")]) == 2 and len(kept) == 6
    assert repo.ok(*argv).out == first
    impossible = msgpack.packb([1, [[[False, False], 9, 5, 0, 1, 0, False, b"id", b"0\n", True]]])
    odd = msgpack.packb([1, [",", None, None, "\n", None, "0", True, [["id", 5]], None, None]])
    for damage in (b"\x92\x01\x91junk", impossible, b"dvfs-rows 1 7\n", odd):
        for name in kept:
            (cache / name).write_bytes(damage)
        assert repo.ok(*argv).out == first
    repo.ok("fsck")
