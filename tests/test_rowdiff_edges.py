"""``dvfs diff --rows`` at its edges, as users meet them: a huge ``--limit``, a file
the engine cannot read, nested JSON Lines values.

One repository with two versions of a few small files is built once (committed in
this process: the diffs, run through the command line, are the subject).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.cli import Repo, assert_error, assert_ok, commit_files, init_repo
from vfs._os.helper_process import process_start, process_tag
from vfs.tables import engine, source
from vfs.tables.formats import MAX_LINE


def floats(kind: pa.DataType, values: list[float]) -> bytes:
    """A Parquet file of ids and ``values`` stored as ``kind``."""
    out = io.BytesIO()
    pq.write_table(pa.table({"id": [1, 2, 3], "f": pa.array(values, kind)}), out)
    return out.getvalue()


def parquet(columns: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    pq.write_table(pa.table(columns), out)
    return out.getvalue()


NAN = float("nan")
RETYPED_OLD = parquet({
    "id": [1, 2], "d": pa.array([Decimal("1.10"), Decimal("2.00")], pa.decimal128(10, 2)),
    "t": pa.array([dt.datetime(2024, 1, 1)] * 2, pa.timestamp("us")),
    "b": pa.array([b"\xff", b"ok"], pa.binary()), "l": [[NAN], [NAN]], "x": [1, 1],
})  # fmt: skip
RETYPED_NEW = parquet({
    "id": [1, 2], "d": ["1.10", "2.00"], "t": ["2024-01-01T00:00:00"] * 2,
    "b": ["\\xff", "ok"], "l": [[NAN], [NAN]], "x": [1, 2],
})  # fmt: skip
# struct fields named alike but for case (in a list, a map's values), and one whose
# own name is like the name the engine gives such a field
FIELDS = {
    "s": [{"ID": 1, "id": 2}],
    "l": [[{"A": 1, "a": 2}]],
    "m": pa.array(
        [[("k", {"X": 1, "x": 2})]],
        pa.map_(pa.string(), pa.struct([("X", pa.int64()), ("x", pa.int64())])),
    ),
    "t": [{"ID": 1, "id_1": 2}],
}


def unnamed(last: list[int]) -> bytes:
    """A Parquet file whose first and last columns have no name."""
    out = io.BytesIO()
    pq.write_table(pa.table([[1], [1], last], names=["", "id", ""]), out)
    return out.getvalue()


LONG = "x" * 3000  # a key's value
BIG = 2**64  # past every integer type the engine reads JSON numbers as


def wide(changed: int) -> str:
    """JSON Lines rows of 201 columns each (features: one past the engine's 200),
    ``k7`` of row ``changed`` + 1."""
    rows = [{"id": r, **{f"k{i}": i + (i == 7 and r == changed) for i in range(200)}}
            for r in range(3)]  # fmt: skip
    return "".join(json.dumps(row) + "\n" for row in rows)


MAP = pa.map_(pa.string(), pa.int64())
# binary values cut where they are shown: the first 200 characters (an escape \xff
# from the 199th), from 20 before where two alike part (an escape from the 221st),
# the first 4,096 in JSON (an escape from the 4,095th)
LONG_BLOBS = [b"a" * 198 + b"\xff" * 5, b"\xff" * 60 + b"\x00", b"a" * 4094 + b"\xff"]
# wider than the first 64 KiB of the file hold: 3,000 columns (CSV, a header and 10
# rows), 3,000 keys (JSON Lines, 2 records)
WIDE_CSV = ",".join(f"c{i}" for i in range(3000)) + "\n" + ("1," * 2999 + "1\n") * 9
WIDE_JSONL = json.dumps({f"k{i}": 1 for i in range(3000)}) + "\n"
V1: dict[str, str | bytes] = {
    "people.csv": "id,name\n1,ann\n2,bob\n",
    "bare_cr.csv": "id,v\n1,ok\n2,fine\n",
    "dup.csv": "id,v,v,w\n1,a,x,p\n2,b,y,q\n",
    "spaces.csv": "id,v\n1,a\n2,b\n3,x\n4,p\n5,s\n",
    "blank.csv": "id,a\n1,x\n2,y\n",
    "nested.jsonl": '{"id": 1, "v": {"a": 1}}\n{"id": 2, "v": {"a": [1, 2]}}\n'
    '{"id": 3, "v": {"a": "1"}}\n',
    "scores.csv": "id,score\n" + "".join(f"{i},{i * 3}\n" for i in range(50)),
    "days.csv": "id,day\n" + "".join(f"{i},2024-01-{i + 1:02}\n" for i in range(20)),
    "excel.tsv": "id\tv\n1\ta\n".encode("utf-16"),  # Excel's "Unicode text": UTF-16, a BOM
    "windows.csv": b"id,v\r\n1,a\r\n2,b\r\n",
    "floats.parquet": floats(pa.float32(), [0.1, 0.2, 0.3]),
    "ids.csv": "id,v\n9007199254740993,a\n5,b\n",  # 64-bit ids: BIGINT
    "bad.jsonl": '{"id": 1}\n{"id": 2}\n',
    "gaps.jsonl": '{"id": 1}\n',
    "long_keys.jsonl": f'{{"a,b": "{LONG}", "v": 1}}\n{{"a,b": "y", "v": 2}}\n',
    "wide.jsonl": wide(-1),
    "nested_big.jsonl": f'{{"id": 1, "v": {{"a": [{BIG}]}}}}\n{{"id": 2, "v": {{"a": [1.5]}}}}\n',
    "big.jsonl": f'{{"id": {BIG}, "v": {BIG}}}\n{{"id": {BIG + 1}, "v": 1}}\n'
    '{"id": 1, "v": 2.5}\n',
    "retyped.parquet": RETYPED_OLD,
    "long.csv": f"id,v\n1,{'x' * 300}a\n",
    "case.jsonl": '{"id": 1, "ID": 2, "ID_1": 0}\n{"id": 2, "Id": 5}\n',
    "cased.csv": "id,ID,v\n1,2,a\n",
    "cased.parquet": parquet({"Id": [1, 2], "id": [7, 8], "v": ["a", "b"]}),
    "recased.parquet": parquet({"Id": [1, 2], "v": ["a", "b"]}),
    "structs.parquet": parquet(
        {"id": [1, 2], "s": [{"t": "a, b=c", "n": [1]}, {"t": "x", "n": []}]}
    ),
    "fields.parquet": parquet(FIELDS | {"id": [1]}),
    "unnamed.csv": ",id,\n1,1,3\n",
    "widest.csv": ",".join(f"c{i}" for i in range(1025)) + "\n" + "1," * 1024 + "1\n",
    "headless.csv": "id,v\n1,a\n",
    "scalars.jsonl": '{"id": 1}\n',
    "blobkey.parquet": parquet({"k": [b"\xff", b"\xff"], "v": [1, 2]}),
    "longblobs.parquet": parquet({"id": [1, 2, 3], "b": pa.array(LONG_BLOBS, pa.binary())}),
    "longblobkey.parquet": parquet({"k": [b"a" * 78 + b"\xff"] * 2, "v": [1, 2]}),
    "dupmap.parquet": parquet({"id": [1, 2], "m": pa.array([[("k", 1)], [("a", 1)]], MAP)}),
    "blobtext.parquet": parquet({"id": [1, 2], "b": pa.array([b"\xff", b"ok"], pa.binary())}),
    "blobtextkey.parquet": parquet({"k": pa.array([b"\xff"] * 2, pa.binary()), "v": [1, 2]}),
    "blobs.parquet": parquet(
        {
            "id": [1, 2, 3],
            "b": pa.array([b"\0\xff\x1b[2J", b"\\xff", b'a, "b"'], pa.binary()),
        }
    ),
    "wider.csv": WIDE_CSV + "1," * 2999 + "1\n",
    "wider.jsonl": WIDE_JSONL + json.dumps({f"k{i}": 1 for i in range(3000)}) + "\n",
    "blank_wider.jsonl": "\n \n" + WIDE_JSONL + WIDE_JSONL,
    "blank_wider.csv": "\n\n" + WIDE_CSV + "1," * 2999 + "1\n",
    "wider.parquet": parquet({f"c{i}": [1] for i in range(2000)}),
    "taken.csv": "id,v,v,v_1\n1,a,b,c\n",
    "twicekey.jsonl": '{"id": 1, "v": 1}\n{"id": 2, "v": 2}\n',
    "emptykey.jsonl": '{"id": 1, "": 1, "v": "a"}\n{"id": 2, "": 2, "v": "b"}\n',
    "unnamed.parquet": unnamed([3]),
    "retyped_fields.parquet": parquet({"id": [1], "s": [{"ID": 1, "id": 2}]}),
    "empties.csv": 'id,name,v\n1,"",a\n2,b,c\n3,,d\n',
    "rewritten.jsonl": '{"id": 1, "v": 2.50}\n{"id": 2, "v": "b"}\n',
    "blanks.jsonl": '{"id": 1, "v": "a"}\n  \n{"id": 2, "v": "b"}\n',
    "ragged.csv": "id,v\n1,a\n2,b,c\n",  # read from line 3: the first two are skipped
    "comments.csv": "# exported\nid,v\n1,a\n#2,b\n3,c\n",  # "#" begins a comment
}
V2: dict[str, str | bytes] = {
    "people.csv": "id,name\n1,ann\n2,bea\n3,cy\n",
    "bare_cr.csv": "id,v\n1,ok\n2,a\rb\n",  # a lone CR inside a row: no dialect reads it
    "nested.jsonl": '{"id": 1, "v": {"a": 2}}\n{"id": 2, "v": {"a": [1, 2]}}\n'
    '{"id": 3, "v": {"a": "2"}}\n{"id": 4, "v": {"a": {"b": null}}}\n',
    "footer.parquet": b"PAR1" + b"x" * 30 + b"PAR1",  # a footer the engine cannot read
    "dup.csv": "id,v,v,w\n1,a,x,p\n2,b,z,q\n",
    "spaces.csv": 'id,v\n1," a"\n2,"b "\n3,"x, y=z"\n4,"p -> q"\n5,"  "\n',
    "blank.csv": "id,a\n1,x\n  \n2,z\n",  # a line of spaces: no delimiter is on every line
    # one row with a fraction appended: score is read as DOUBLE, no longer BIGINT
    "scores.csv": "id,score\n" + "".join(f"{i},{i * 3}\n" for i in range(50)) + "50,2.5\n",
    "days.csv": "id,day\n"
    + "".join(
        f"{i},2024-01-{i + 1:02} {'10:30:00' if i == 3 else '00:00:00'}\n" for i in range(20)
    ),
    "excel.tsv": "id\tv\n1\tb\n".encode("utf-16"),
    "windows.csv": b"id,v\r\n1,a\r\n2,b\r\n3,c\n",  # a line appended on Linux
    "floats.parquet": floats(pa.float64(), [0.1, 0.2, 0.5]),  # written again as DOUBLE
    # an id past 2**64 makes the column HUGEINT; 2**53 + 1 and 2**53 are one DOUBLE
    "ids.csv": "id,v\n9007199254740993,a\n9007199254740992,c\n5,b\n18446744073709551617,z\n",
    "bad.jsonl": '{"id": 1}\n{"id": 2\n{"id": 3}\n',  # line 2 is cut short
    "gaps.jsonl": '{"id": 1}\n\n\n{id: 4}\n',  # after two blank lines, line 4
    "long_keys.jsonl": f'{{"a,b": "{LONG}", "v": 1}}\n{{"a,b": "{LONG}", "v": 2}}\n',
    "wide.jsonl": wide(1),
    # the value one more; 2**53 + 1 beside 2.5 is no DOUBLE either
    "nested_big.jsonl": f'{{"id": 1, "v": {{"a": [{BIG + 1}]}}}}\n'
    '{"id": 2, "v": {"a": [1.5]}}\n',
    "big.jsonl": f'{{"id": {BIG}, "v": {BIG + 1}}}\n{{"id": {BIG + 1}, "v": 1}}\n'
    '{"id": 1, "v": 9007199254740993}\n',
    "retyped.parquet": RETYPED_NEW,
    "long.csv": f"id,v\n1,{'x' * 300}b\n",  # a change past the 200 characters shown
    "case.jsonl": '{"id": 1, "ID": 3, "ID_1": 0}\n{"id": 2, "Id": 6}\n',
    "cased.csv": "id,ID,v\n1,3,a\n",
    "cased.parquet": parquet({"Id": [1, 2], "id": [7, 9], "v": ["a", "b"]}),
    "recased.parquet": parquet({"Id": [1, 2], "id": [5, 6], "v": ["a", "c"]}),
    "structs.parquet": parquet(
        {"id": [1, 3], "s": [{"t": "a, b=c", "n": [2]}, {"t": "\u202ey\x85", "n": []}]}
    ),
    "fields.parquet": parquet(FIELDS | {"id": [3]}),
    "unnamed.csv": ",id,\n1,1,4\n",
    "widest.csv": ",".join(f"c{i}" for i in range(1025)) + "\n" + "1," * 1024 + "2\n",
    "headless.csv": "1,a\n2,c\n",  # its header lost
    "scalars.jsonl": '{"id": 1}\n[1, 2]\n3\n',
    "blobkey.parquet": parquet({"k": [b"\xff", b"\xff"], "v": [1, 3]}),
    "longblobs.parquet": parquet({"id": [1, 2, 3], "b": [b"b", b"\xff" * 60 + b"\x01", b"b"]}),
    "longblobkey.parquet": parquet({"k": [b"a" * 78 + b"\xff"] * 2, "v": [1, 3]}),
    "blobtext.parquet": parquet({"id": [1, 2], "b": ["\\xFF", "ok"]}),
    "blobtextkey.parquet": parquet({"k": ["a", "b"], "v": [1, 2]}),
    "dupmap.parquet": parquet(
        {"id": [1, 2], "m": pa.array([[("k", 1), ("k", 2)], [("a", 1)]], MAP)}
    ),
    "blobs.parquet": parquet(
        {
            "id": [1, 2, 3],
            "b": pa.array([b"\xff", b"\\xff\\", "é".encode()], pa.binary()),
        }
    ),
    "wider.csv": WIDE_CSV + "1," * 2999 + "2\n",
    "wider.jsonl": WIDE_JSONL + json.dumps({f"k{i}": 2 for i in range(3000)}) + "\n",
    "blank_wider.jsonl": "\n \n" + WIDE_JSONL + WIDE_JSONL + WIDE_JSONL,
    "blank_wider.csv": "\n\n" + WIDE_CSV + "1," * 2999 + "2\n",
    "wider.parquet": parquet({f"c{i}": [2] for i in range(2000)}),
    "taken.csv": "id,v,v,v_1\n1,a,b,d\n",
    "twicekey.jsonl": '{"id": 1, "v": 1}\n\n{"id": 2, "v": 3}\n{"id": 3, "v": 1, "v": 2}\n',
    "emptykey.jsonl": '{"": 1, "id": 1, "v": "a"}\n{"id": 2, "": 2, "v": "c"}\n',
    "unnamed.parquet": unnamed([4]),
    "retyped_fields.parquet": parquet(
        {"id": [1], "s": [{"ID": 1, "id": "2"}], "l": [[{"A b": 1, "a B": 2}]]}
    ),
    "empties.csv": 'id,name,v\n1,,a\n2,"b",c\n3,"",d\n',  # the same fields, quoted otherwise
    "rewritten.jsonl": '{"v":"b","id":2}\n{"id":1,"v":2.5}\n',
    "blanks.jsonl": '{"id": 1, "v": "a"}\n{"id": 2, "v": "c"}\n\t\n',
    "ragged.csv": "id,v\n1,x\n2,b,c\n3,d,e\n",
    "comments.csv": "# exported\nid,v\n1,a\n#2,x\n3,c\n",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    repo = init_repo(tmp_path_factory.mktemp("rowedges") / "repo")
    for version in (V1, V2):
        commit_files(repo, version, "data")  # (in this process: the diffs are the subject)
    yield repo


def rows_json(repo: Repo, path: str, *extra: str) -> dict[str, Any]:
    data: dict[str, Any] = assert_ok(
        repo.run("diff", "v1", "v2", path, "--rows", "--json", *extra)
    ).json()
    return data


@pytest.mark.parametrize("limit", [str(1 << 63), "9" * 40])
def test_a_limit_past_every_row_shows_every_row(data: Repo, limit: str) -> None:
    # it was given to the engine as is: a number past 64 bits made the diff a byte
    # summary whose note quoted the engine's SQL
    for key in ((), ("--key", "id")):
        d = rows_json(data, "people.csv", "--limit", limit, *key)
        assert d["method"] != "bytes" and d["notes"] == [], d
        s = d["summary"]
        assert len(d["rows"]) == s["added"] + s["removed"] + s["changed"] == (2 if key else 3)
        assert d["more"] == 0


@pytest.mark.parametrize(
    ("path", "side"),
    [("bare_cr.csv", "bare_cr.csv in v2"), ("footer.parquet", "footer.parquet in v2")],
)
def test_a_file_the_engine_cannot_read_is_named_as_the_user_knows_it(
    data: Repo, path: str, side: str
) -> None:
    # the note named the engine's scratch copy (.dvfs/rows-PID-XXXX/in-place/new.csv,
    # gone by then), quoted its SQL ("LINE 1: DESCRIBE SELECT * FROM read_parquet(...",
    # a line of carets) and ended in a cut list ("The search space used was::")
    d = rows_json(data, path)
    assert d["method"] == "bytes" and len(d["notes"]) == 1
    note = d["notes"][0]
    assert side in note and note.endswith(": byte-level summary"), note
    for leak in (".dvfs", "rows-", "LINE 1", "^^", "::", "SELECT"):
        assert leak not in note, note
    out = data.ok("diff", "v1", "v2", path, "--rows").out
    assert out.startswith(f"note: {note}\n")


@pytest.mark.parametrize(("path", "line"), [("bad.jsonl", 2), ("gaps.jsonl", 4)])
def test_a_malformed_json_record_is_named_by_its_line_in_the_file(
    data: Repo, path: str, line: int
) -> None:
    """The engine names the line after a malformed record, blank lines not counted:
    the note sent the user to line 3 of bad.jsonl, its last line, and to line 3 of
    gaps.jsonl, a blank one (and "at byte 10" of a line of 8). It names the record's
    own line."""
    [note] = rows_json(data, path)["notes"]
    assert f"Malformed JSON in file {path} in v2, in line {line}: " in note, note


def test_json_lines_of_more_than_200_keys_are_read_as_their_columns(data: Repo) -> None:
    """Rows of 201 keys were read as one column, `json` (the engine takes an object of
    more than 200 keys for a map): `--key id` said id "is not in wide.jsonl (its
    columns: json)", and without a key a changed row was a whole object removed and
    added. Each key is a column, as in a row of fewer keys."""
    d = rows_json(data, "wide.jsonl", "--key", "id")
    assert (d["summary"]["changed"], d["summary"]["unchanged"]) == (1, 2), d["summary"]
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 1}, "changes": {"k7": {"old": 7, "new": 8}},
         "count": 1},
    ]  # fmt: skip
    d = rows_json(data, "wide.jsonl")
    assert [len(r["values"]) for r in d["rows"]] == [201, 201]


def test_json_nested_in_an_object_is_its_json_values_not_their_text(data: Repo) -> None:
    # v is read as STRUCT(a JSON): the engine gives a's JSON text, which was shown as
    # text, {"a": "1"} for {"a": 1} and {"a": "\"1\""} for {"a": "1"}
    d = rows_json(data, "nested.jsonl", "--key", "id")
    assert d["summary"]["changed"] == 2 and d["summary"]["unchanged"] == 1
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 1},
         "changes": {"v": {"old": {"a": 1}, "new": {"a": 2}}}, "count": 1},
        {"status": "changed", "key": {"id": 3},
         "changes": {"v": {"old": {"a": "1"}, "new": {"a": "2"}}}, "count": 1},
        {"status": "added", "key": {"id": 4}, "values": {"id": 4, "v": {"a": {"b": None}}},
         "count": 1},
    ]  # fmt: skip
    d = rows_json(data, "nested.jsonl")
    assert {"status": "removed", "values": {"id": 1, "v": {"a": 1}}} in [
        {k: r[k] for k in ("status", "values")} for r in d["rows"]
    ]


def test_json_integers_past_64_bits_are_compared_as_the_integers_they_are(data: Repo) -> None:
    """The engine reads a JSON Lines field of integers past 2**64 as DOUBLE: the change
    of v from 2**64 to 2**64 + 1 was no change ("0 changed, 3 unchanged"), and the
    keys 2**64 and 2**64 + 1 one key ("id=1.8446744073709552e+19 names 2 rows")."""
    d = rows_json(data, "big.jsonl", "--key", "id")
    assert (d["summary"]["changed"], d["summary"]["unchanged"]) == (2, 1), d["summary"]
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 1},
         "changes": {"v": {"old": 2.5, "new": 9007199254740993}}, "count": 1},
        {"status": "changed", "key": {"id": BIG},
         "changes": {"v": {"old": BIG, "new": BIG + 1}}, "count": 1},
    ]  # fmt: skip
    s = rows_json(data, "big.jsonl")["summary"]
    assert (s["added"], s["removed"], s["unchanged"]) == (2, 2, 1), s
    out = data.ok("diff", "v1", "v2", "big.jsonl", "--rows", "--key", "id").out
    assert f"changed  id={BIG}  v: {BIG} -> {BIG + 1}" in out.splitlines()
    # so inside an object or a list ("v": {"a": [DOUBLE]})
    d = rows_json(data, "nested_big.jsonl", "--key", "id")
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 1},
         "changes": {"v": {"old": {"a": [BIG]}, "new": {"a": [BIG + 1]}}}, "count": 1},
    ]  # fmt: skip


def test_lines_the_engine_does_not_read_as_rows_are_said_to_be_left_out(data: Repo) -> None:
    """The engine's reader skips the lines it takes for lines before the table (here,
    for a header followed by a row wider than it) and comment lines: "1 added, 0
    removed, 1 unchanged" for a file whose row 1,a became 1,x, and "2 unchanged" for
    one whose line #2,b became #2,x, without a word of the lines left out."""
    d = rows_json(data, "ragged.csv")
    assert d["notes"] == [
        "ragged.csv: the engine reads no row from its first 2 lines, "
        "which it takes for lines before the table: they are not compared"
    ]
    d = rows_json(data, "comments.csv")
    assert d["notes"] == [
        "comments.csv: the engine reads no row from its first line, which it takes "
        "for lines before the table, nor from lines beginning with #, which it takes "
        "for comments: they are not compared"
    ]
    out = data.ok("diff", "v1", "v2", "comments.csv", "--rows").out
    assert out.startswith("note: comments.csv: the engine reads no row from its first line")
    assert rows_json(data, "people.csv")["notes"] == []


def test_a_changed_row_lists_the_columns_the_engine_found_changed(data: Repo) -> None:
    """Which columns of a changed row differ was decided again in Python, which did not
    always agree with the engine: the decimal 1.10 that became the text "1.10", the
    timestamp that became text and the bytes that became text were changed rows
    listing no column ("changed  id=1" and nothing after), and a list holding a NaN,
    equal for the engine, was listed as changed ("l: [NaN] -> [NaN]")."""
    d = rows_json(data, "retyped.parquet", "--key", "id")
    assert d["summary"]["columns"] == {"d": 2, "t": 2, "b": 1, "x": 1}, d["summary"]
    assert [sorted(r["changes"]) for r in d["rows"]] == [["b", "d", "t"], ["d", "t", "x"]]
    out = data.ok("diff", "v1", "v2", "retyped.parquet", "--rows", "--key", "id").out
    assert "[NaN] -> [NaN]" not in out


def test_a_value_that_became_a_text_of_its_look_is_told_from_it(data: Repo) -> None:
    """A Parquet decimal was shown as a text ("d: "1.10" -> "1.10""): quoted as a text
    reading as a number is, though it is the number; and a timestamp that became the
    text it looks like was shown twice alike ("t: 2024-01-01T00:00:00 ->
    2024-01-01T00:00:00"). The text is the one in quotes."""
    out = data.ok("diff", "v1", "v2", "retyped.parquet", "--rows", "--key", "id").out
    lines = out.splitlines()
    assert lines[-1].startswith('changed  id=2  d: 2.00 -> "2.00", t: 2024-01-01T00:00:00 -> ')
    assert 't: 2024-01-01T00:00:00 -> "2024-01-01T00:00:00", x: 1 -> 2' in lines[-1]
    out = data.ok("diff", "v1", "v2", "retyped.parquet", "--rows").out
    assert "removed  id=1, d=1.10, t=2024-01-01T00:00:00, " in out
    assert 'added    id=1, d="1.10", t=2024-01-01T00:00:00, ' in out


def test_a_list_or_a_struct_is_shown_as_its_json_unquoted(data: Repo) -> None:
    """A struct was shown as a text in quotes, its own quotes escaped (`v: "{\\"a\\":
    \\"1\\"}" -> ...`), and so was a list of texts, where a list of numbers was
    not: their JSON is shown now, as --json gives them, what a terminal could act on
    escaped; a text that reads as JSON is the one in quotes."""
    out = data.ok("diff", "v1", "v2", "nested.jsonl", "--rows", "--key", "id").out
    assert out.splitlines()[-3:] == [
        'changed  id=1  v: {"a": 1} -> {"a": 2}',
        'changed  id=3  v: {"a": "1"} -> {"a": "2"}',
        'added    id=4  v={"a": {"b": null}}',
    ], out
    out = data.ok("diff", "v1", "v2", "structs.parquet", "--rows", "--key", "id").out
    assert out.splitlines()[-3:] == [
        'changed  id=1  s: {"t": "a, b=c", "n": [1]} -> {"t": "a, b=c", "n": [2]}',
        'removed  id=2  s={"t": "x", "n": []}',
        'added    id=3  s={"t": "\\342\\200\\256y\\302\\205", "n": []}',
    ], out
    d = rows_json(data, "structs.parquet", "--key", "id")
    assert d["rows"][-1]["values"] == {"id": 3, "s": {"t": "\u202ey\x85", "n": []}}


def test_a_long_value_changed_past_what_is_shown_is_shown_where_it_changed(data: Repo) -> None:
    # its first 200 characters were shown on both sides: "v: xxx...xxx... -> xxx...xxx..."
    out = data.ok("diff", "v1", "v2", "long.csv", "--rows", "--key", "id").out
    assert out.splitlines()[-1] == f"changed  id=1  v: ...{'x' * 20}a -> ...{'x' * 20}b"


def test_json_keys_that_differ_only_in_case_are_not_read_as_other_columns(data: Repo) -> None:
    """The engine takes a key for the same column whatever its case, so it names the
    second "ID_2" (after a key "ID_1"), a key no record holds, read as NULL in every
    row: the ID changed from 2 to 3 and the Id from 5 to 6 were "0 changed, 2
    unchanged". Such a file is not read as a table."""
    for key in ((), ("--key", "id")):
        d = rows_json(data, "case.jsonl", *key)
        assert d["method"] == "bytes", d
        [note] = d["notes"]
        assert "case.jsonl in v1 holds keys that differ only in case (ID, Id, id)" in note


def test_json_lines_with_an_empty_key_are_not_read_as_one_column(data: Repo) -> None:
    """A record holding the key "" is read by the engine as one column, json, the
    whole record: a record whose keys were only reordered was "removed" and "added",
    and `--key id` said id "is not in emptykey.jsonl (its columns: json)". Such a
    file is not read as a table, and the note says why."""
    for key in ((), ("--key", "id")):
        d = rows_json(data, "emptykey.jsonl", *key)
        assert d["method"] == "bytes", d
        [note] = d["notes"]
        assert "emptykey.jsonl in v1 holds an empty key" in note, note


def test_a_record_with_a_key_twice_is_named_by_its_line_without_the_engine_s_options(
    data: Repo,
) -> None:
    """A record holding a key twice is refused by the engine "in line 3", counting
    records, not lines (the record is on line 4, after a blank one), and with advice
    on its own options ("Try increasing 'sample_size' ... setting 'ignore_errors' to
    true"), which no dvfs command takes. The note names the record's own line, and
    no such advice."""
    for key in ((), ("--key", "id")):
        [note] = rows_json(data, "twicekey.jsonl", *key)["notes"]
        assert "twicekey.jsonl in v2, in line 4: Object " in note, note
        assert 'has duplicate key "v": byte-level summary' in note, note
        assert "Try" not in note and "ignore_errors" not in note, note


def test_json_lines_with_a_line_of_blanks_are_compared(data: Repo) -> None:
    """The rows counted from the newlines took a line of spaces for a row, which the
    engine skips as it skips an empty line: the file got the byte-level summary, "the
    engine read 2 rows of the old file, which has 3"."""
    d = rows_json(data, "blanks.jsonl", "--key", "id")
    assert d["notes"] == [] and d["method"] == "full", d
    s = d["summary"]
    assert (s["added"], s["removed"], s["changed"], s["unchanged"]) == (0, 0, 1, 1)
    s = rows_json(data, "blanks.jsonl")["summary"]
    assert (s["added"], s["removed"], s["unchanged"]) == (1, 1, 1)


def test_a_column_named_twice_is_said_to_be_shown_by_another_name(data: Repo) -> None:
    # the engine calls the second v "v_1", a name the file does not hold: it was shown
    # without a word, as if the file had such a column
    d = rows_json(data, "dup.csv", "--key", "id")
    assert d["notes"] == ["dup.csv names more than one column v: column 3 is shown as v_1"]
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 2}, "changes": {"v_1": {"old": "y", "new": "z"}},
         "count": 1},
    ]  # fmt: skip
    out = data.ok("diff", "v1", "v2", "dup.csv", "--rows").out
    assert out.startswith("note: dup.csv names more than one column v: column 3 is shown as v_1\n")
    assert rows_json(data, "people.csv")["notes"] == []
    # nor was a name that an earlier one holds but for case (the engine's names are
    # one whatever their case): "--key column ID is not in ... (its columns: id, ID_1)"
    d = rows_json(data, "cased.csv", "--key", "id")
    assert d["notes"] == [
        "cased.csv names column 2 ID as an earlier one but for its case, which the "
        "engine does not tell apart: it is shown as ID_1"
    ]
    assert d["summary"]["columns"] == {"ID_1": 1}


def test_a_column_without_a_name_is_said_to_be_shown_by_another_name(data: Repo) -> None:
    """A header ",id," was shown as columns column0, id and column2, a Parquet file's
    unnamed columns as C0 and _1, names the file does not hold, without a word (the
    CSV's second one in a note on "more than one column : column 3", its name blank)."""
    for path, names in (("unnamed.csv", ("column0", "column2")), ("unnamed.parquet", ("C0", "_1"))):
        d = rows_json(data, path, "--key", "id")
        assert d["notes"] == [
            f"{path} has a column 1 without a name: it is shown as {names[0]}",
            f"{path} has a column 3 without a name: it is shown as {names[1]}",
        ], d["notes"]
        assert d["summary"]["columns"] == {names[1]: 1}


def test_a_column_named_as_the_engine_renames_another_is_said_to_be_shown_otherwise(
    data: Repo,
) -> None:
    """A header "id,v,v,v_1": the engine shows the second v as v_1, which a note said,
    and the file's own v_1 as v_1_1 without a word, so that its change read as one of
    a column v_1_1 and the one shown as v_1 looked like the file's v_1."""
    d = rows_json(data, "taken.csv", "--key", "id")
    assert d["notes"] == [
        "taken.csv names more than one column v: column 3 is shown as v_1",
        "taken.csv names column 4 v_1, the name the engine gives another column: it is "
        "shown as v_1_1",
    ], d["notes"]
    assert d["summary"]["columns"] == {"v_1_1": 1}


def test_a_file_of_too_many_columns_is_summarised_not_compared(data: Repo) -> None:
    """The engine's plan of a keyed diff grows with the square of the columns, past
    its memory limit: a CSV of 4,000 columns and 100 rows (2 MB) took 9.6 GB and four
    minutes, one of 10,000 ended in "ran out of memory ... free some disk space".
    Past 1,024 columns a file gets a byte-level summary saying so."""
    for key in ((), ("--key", "c0")):
        d = rows_json(data, "widest.csv", *key)
        assert d["method"] == "bytes", d
        assert d["notes"] == [
            "widest.csv in v1 is not compared row by row: it has 1,025 columns, more than "
            "the 1,024 compared: byte-level summary"
        ], d["notes"]


@pytest.mark.parametrize(
    ("path", "note"),
    [
        ("wider.csv", "it has at least 3,000 columns"),
        ("wider.jsonl", "it has at least 3,000 columns"),
        ("blank_wider.jsonl", "it has at least 3,000 columns"),  # (blank lines first)
        ("blank_wider.csv", "it has at least 3,000 columns"),
        ("wider.parquet", "it has 2,000 columns"),
    ],
)
def test_a_wide_file_is_counted_before_the_engine_reads_it(
    data: Repo, path: str, note: str
) -> None:
    """The engine's detection of a file's columns is slow past the 1,024 compared: a
    one-record JSON Lines file of 100,000 keys (1.6 MB) ran more than five minutes,
    30,000 columns of CSV 37 s. Its first 64 KiB (a Parquet file's footer) are
    counted first: "at least" the columns they show."""
    for key in ((), ("--key", "c0")):
        d = rows_json(data, path, *key)
        assert d["method"] == "bytes", d
        assert d["notes"] == [
            f"{path} in v1 is not compared row by row: {note}, more than the 1,024 "
            "compared: byte-level summary"
        ], d["notes"]


def test_a_side_read_without_a_header_is_named(data: Repo) -> None:
    # a CSV that lost its header line was shown as "column removed: id", "column
    # added: column0", and --key id failed with "(its columns: column0, column1)":
    # nothing said that side was read as having no header
    note = (
        "headless.csv in v2 is read without a header (its first line reads as a row), "
        "headless.csv in v1 with one: their columns are named otherwise"
    )
    d = rows_json(data, "headless.csv")
    assert d["notes"][0] == note, d["notes"]
    assert [c["column"] for c in d["schema"]] == ["id", "v", "column0", "column1"], d
    out = data.ok("diff", "v1", "v2", "headless.csv", "--rows").out
    assert out.startswith(f"note: {note}\n"), out
    err = assert_error(data.run("diff", "v1", "v2", "headless.csv", "--rows", "--key", "id"))
    assert err == (
        "dvfs: error: --key column id is not in headless.csv in v2 "
        "(its columns: column0, column1): " + note
    ), err
    # and the other way: the side read with a header has no column0
    err = assert_error(data.run("diff", "v1", "v2", "headless.csv", "--rows", "--key", "column0"))
    assert err == (
        "dvfs: error: --key column column0 is not in headless.csv in v1 "
        "(its columns: id, v): " + note
    ), err


def test_a_binary_value_is_shown_in_one_form(data: Repo) -> None:
    # a binary value was its UTF-8 with the other bytes as \xNN, then quoted as a
    # text: "\000\\xff\033[2J", two escape styles, and the byte 0xff and the four
    # characters \xff were both "\\xff" (in --json too)
    d = rows_json(data, "blobs.parquet", "--key", "id")
    assert [r["changes"]["b"] for r in d["rows"]] == [
        {"old": "\\x00\\xff\\x1b[2J", "new": "\\xff"},
        {"old": "\\\\xff", "new": "\\\\xff\\\\"},
        {"old": "a, \\x22b\\x22", "new": "\\xc3\\xa9"},
    ], d["rows"]
    out = data.ok("diff", "v1", "v2", "blobs.parquet", "--rows", "--key", "id").out
    assert out.splitlines()[-3:] == [
        "changed  id=1  b: \\x00\\xff\\x1b[2J -> \\xff",
        "changed  id=2  b: \\\\xff -> \\\\xff\\\\",
        'changed  id=3  b: "a, \\x22b\\x22" -> \\xc3\\xa9',
    ], out


def test_a_binary_key_named_twice_is_shown_as_its_rows_show_it(data: Repo) -> None:
    # the rows showed k=\xff, the error about the key k="\\xff", a text's form
    err = assert_error(data.run("diff", "v1", "v2", "blobkey.parquet", "--rows", "--key", "k"))
    assert "blobkey.parquet in v1: k=\\xff names 2 rows;" in err, err
    out = data.ok("diff", "v1", "v2", "blobkey.parquet", "--rows").out
    assert out.splitlines()[-2:] == ["removed  k=\\xff, v=2", "added    k=\\xff, v=3"], out


def test_a_binary_value_cut_to_be_shown_keeps_its_escapes_whole(data: Repo) -> None:
    # a long value was cut at a number of characters, in the middle of an escape:
    # "aaa\x..." for a\xff..., "...f\xff" for \xff\xff, "\x… [2 more characters
    # not shown]" in --json, "k=aaa\x... (82 characters)" in a key's error
    ff = "\\xff"  # the byte 0xff, shown
    out = data.ok("diff", "v1", "v2", "longblobs.parquet", "--rows", "--key", "id").out
    assert out.splitlines()[-3:] == [
        f"changed  id=1  b: {'a' * 198}... -> b",
        f"changed  id=2  b: ...{ff * 5}\\x00 -> ...{ff * 5}\\x01",
        f"changed  id=3  b: {'a' * 200}... -> b",
    ], out
    d = rows_json(data, "longblobs.parquet", "--key", "id")
    assert d["rows"][2]["changes"]["b"]["old"] == (
        "a" * 4094 + "\u2026 [4 more characters not shown]"
    ), d["rows"][2]
    err = assert_error(data.run("diff", "v1", "v2", "longblobkey.parquet", "--rows", "--key", "k"))
    assert f"longblobkey.parquet in v1: k={'a' * 78}... (82 characters) names 2 rows;" in err


@settings(max_examples=60, deadline=None)
@given(value=st.binary(max_size=40).map(lambda b: b.replace(b"a", b"\\")), at=st.integers(0, 170))
def test_a_binary_value_is_cut_where_an_escape_starts(value: bytes, at: int) -> None:
    # every cut of a binary value's text is the text of the value's first bytes
    text = engine.plain_value(value)
    ends = {len(engine.plain_value(value[:i])) for i in range(len(value) + 1)}
    cut = engine.byte_cut(text, at)
    assert cut in ends and cut <= at and (at >= len(text) or at - cut < 4), (text, at, cut)


def test_a_binary_value_that_became_a_text_is_changed_unless_it_is_its_utf8(
    data: Repo,
) -> None:
    """A BLOB column written again as text: the byte 0xff and the text \\xFF were one
    value (both compared as the JSON text "\\\\xFF"): "0 changed, 2 unchanged", and a
    key of them one key. Bytes equal a text only where they are its UTF-8 (b"ok" and
    "ok", as before)."""
    d = rows_json(data, "blobtext.parquet", "--key", "id")
    assert d["schema"] == [
        {"status": "retyped", "column": "b", "old_type": "BLOB", "new_type": "VARCHAR"}
    ], d["schema"]
    assert (d["summary"]["changed"], d["summary"]["unchanged"]) == (1, 1), d["summary"]
    assert d["rows"] == [
        {"status": "changed", "key": {"id": 1},
         "changes": {"b": {"old": "\\xff", "new": "\\xFF"}}, "count": 1},
    ]  # fmt: skip
    for key in ((), ("--key", "b")):
        s = rows_json(data, "blobtext.parquet", *key)["summary"]
        assert (s["added"], s["removed"], s["unchanged"]) == (1, 1, 1), (key, s)
    # a key naming several rows is shown as the rows show it, not as it is compared
    err = assert_error(data.run("diff", "v1", "v2", "blobtextkey.parquet", "--rows", "--key", "k"))
    assert "blobtextkey.parquet in v1: k=\\xff names 2 rows;" in err, err


def test_a_parquet_map_naming_a_key_twice_is_named(data: Repo) -> None:
    # the note was the engine's own words: "Parquet that the engine cannot read:
    # Invalid Input Error: Map keys must be unique.", naming neither side nor column
    for key in ((), ("--key", "id")):
        d = rows_json(data, "dupmap.parquet", *key)
        assert d["method"] == "bytes", d
        assert d["notes"] == [
            "Parquet that the engine cannot read: dupmap.parquet in v2 holds a map naming "
            "a key twice (column m): write each key of a map once to compare rows: "
            "byte-level summary"
        ], d["notes"]


def test_a_record_that_is_no_object_is_named(data: Repo) -> None:
    # the engine reads such a file as one column of whole records; the note said it
    # "holds keys that differ only in case ()", naming none
    d = rows_json(data, "scalars.jsonl")
    assert d["method"] == "bytes", d
    assert d["notes"] == [
        "JSON Lines that the engine cannot read: scalars.jsonl in v2 holds a record that "
        'is not a JSON object ("[1, 2]"), which the engine reads as one column of whole '
        "records: byte-level summary"
    ], d["notes"]


def test_a_file_whose_bytes_changed_but_no_row_says_so(data: Repo) -> None:
    # "0 added, 0 removed, 0 changed, 3 unchanged" and nothing else, for a file that
    # `dvfs diff` lists as modified: a quoted empty field "" and an empty one, both
    # NULL as the engine (and pandas) reads them, or a field quoted otherwise
    for key in ((), ("--key", "id")):
        d = rows_json(data, "empties.csv", *key)
        s = d["summary"]
        assert (s["added"], s["removed"], s["changed"], s["unchanged"]) == (0, 0, 0, 3)
        assert d["notes"] == [
            "empties.csv changed, but none of its rows as read: only how they are written "
            "(quoting, the spelling of numbers, line endings, the order of rows; an empty "
            'field and a quoted empty one, "", both read as NULL)'
        ], d
    out = data.ok("diff", "v1", "v2", "rewritten.jsonl", "--rows", "--key", "id").out
    assert out.splitlines() == [
        "note: rewritten.jsonl changed, but none of its rows as read: only how they are "
        "written (spacing, the order of keys, the spelling of numbers, the order of rows)",
        "rows of rewritten.jsonl, v1 -> v2 (key id): 0 added, 0 removed, 0 changed, 2 unchanged",
    ]
    same = assert_ok(data.run("diff", "v1", "v1", "empties.csv", "--rows", "--json")).json()
    assert same["notes"] == [] and same["summary"]["unchanged"] == 3
    assert rows_json(data, "people.csv")["notes"] == []


def test_parquet_columns_named_alike_but_for_case_are_said_to_be_shown_otherwise(
    data: Repo,
) -> None:
    # a Parquet file's columns Id and id were shown as Id and id_1, a name the file
    # does not hold, without a word: "column added: id_1", "id_1: 8 -> 9", and
    # "--key column id is not in cased.parquet (its columns: Id, id_1, v)"
    note = (
        "cased.parquet names column 2 id as an earlier one but for its case, which the "
        "engine does not tell apart: it is shown as id_1"
    )
    d = rows_json(data, "cased.parquet", "--key", "Id")
    assert d["notes"] == [note]
    assert d["rows"] == [
        {"status": "changed", "key": {"Id": 2}, "changes": {"id_1": {"old": 8, "new": 9}},
         "count": 1},
    ]  # fmt: skip
    line = assert_error(data.run("diff", "v1", "v2", "cased.parquet", "--rows", "--key", "id"))
    assert line.endswith("(its columns: Id, id_1, v): its column 2 id is shown as id_1"), line
    d = rows_json(data, "recased.parquet", "--key", "Id")
    assert d["notes"] == [
        "recased.parquet in v2 names column 2 id as an earlier one but for its case, which "
        "the engine does not tell apart: it is shown as id_1"
    ]
    assert [(s["status"], s["column"]) for s in d["schema"]] == [("added", "id_1")]
    assert d["summary"]["changed"] == 1 and d["rows"][0]["changes"] == {
        "v": {"old": "b", "new": "c"}
    }


def test_parquet_struct_fields_named_alike_but_for_case_are_shown_by_their_names(
    data: Repo,
) -> None:
    """A struct {"ID": 1, "id": 2} was shown as {"ID": 1, "id_1": 2}, in --json too: the
    engine names the second field id_1, a name the file does not hold. The file's own
    names are shown, in a list's structs and a map's values too; a field whose own
    name is id_1 keeps it."""
    own = {"s": {"ID": 1, "id": 2}, "l": [{"A": 1, "a": 2}], "m": {"k": {"X": 1, "x": 2}},
           "t": {"ID": 1, "id_1": 2}}  # fmt: skip
    for key in (("--key", "id"), ()):
        d = rows_json(data, "fields.parquet", *key)
        assert [(r["status"], r["values"]) for r in d["rows"]] == [
            ("removed", {**own, "id": 1}), ("added", {**own, "id": 3})
        ], d  # fmt: skip
    out = data.ok("diff", "v1", "v2", "fields.parquet", "--rows", "--key", "id").out
    assert 'removed  id=1  s={"ID": 1, "id": 2}, l=[{"A": 1, "a": 2}], ' in out, out


def test_parquet_struct_fields_named_alike_but_for_case_keep_their_names_in_the_schema(
    data: Repo,
) -> None:
    """The schema changes named such a field as the engine does, id_1, where the rows
    named it id: "column retyped: s: STRUCT(ID BIGINT, id_1 BIGINT) -> ...". They name
    it as the file does."""
    d = rows_json(data, "retyped_fields.parquet", "--key", "id")
    assert d["schema"] == [
        {"status": "added", "column": "l", "old_type": None,
         "new_type": 'STRUCT("A b" BIGINT, "a B" BIGINT)[]'},
        {"status": "retyped", "column": "s", "old_type": "STRUCT(ID BIGINT, id BIGINT)",
         "new_type": "STRUCT(ID BIGINT, id VARCHAR)"},
    ], d["schema"]  # fmt: skip
    out = data.ok("diff", "v1", "v2", "retyped_fields.parquet", "--rows", "--key", "id").out
    assert out.startswith(
        'column added:    l (STRUCT("A b" BIGINT, "a B" BIGINT)[])\n'
        "column retyped:  s: STRUCT(ID BIGINT, id BIGINT) -> STRUCT(ID BIGINT, id VARCHAR)\n"
    ), out


def test_a_value_that_would_read_as_separators_or_blanks_is_quoted(data: Repo) -> None:
    # they were shown raw: "v: b -> b " (its space unseen), and "v=x, y=z", which
    # reads as a column y that the file does not have
    out = data.ok("diff", "v1", "v2", "spaces.csv", "--rows", "--key", "id").out
    assert out.splitlines()[2:] == [
        'changed  id=1  v: a -> " a"',
        'changed  id=2  v: b -> "b "',
        'changed  id=3  v: x -> "x, y=z"',
        'changed  id=4  v: p -> "p -> q"',
        'changed  id=5  v: s -> "  "',
    ]
    out = data.ok("diff", "v1", "v2", "spaces.csv", "--rows").out
    assert 'added    id=3, v="x, y=z"' in out.splitlines()
    d = rows_json(data, "spaces.csv", "--key", "id")  # JSON keeps the values as they are
    assert d["rows"][2]["changes"] == {"v": {"old": "x", "new": "x, y=z"}}


def test_a_repeated_long_key_is_shown_cut_short(data: Repo) -> None:
    # the key's 3,000 characters were repeated in full
    line = data.fail("diff", "v1", "v2", "long_keys.jsonl", "--rows", "--key", "a,b")
    assert f"--key a,b is not unique in long_keys.jsonl in v2: a,b={'x' * 80}... " in line
    assert "(3,000 characters) names 2 rows" in line and len(line) < 400


def test_key_given_twice_is_a_key_of_both_columns(data: Repo) -> None:
    # the second --key replaced the first without a word: rows were matched by v alone
    both = rows_json(data, "dup.csv", "--key", "id,w")
    assert rows_json(data, "dup.csv", "--key", "id", "--key", "w") == both
    assert both["key"] == ["id", "w"]
    data.fail("diff", "v1", "v2", "dup.csv", "--rows", "--key", "id", "--key", "id",
              fragments=("names a column twice",))  # fmt: skip


def test_a_key_missing_from_a_header_read_as_one_column_says_why(data: Repo) -> None:
    # "--key column id is not in blank.csv in v2 (its columns: id,a)": a column named
    # "id,a" read as two, with nothing saying why the file was not split
    line = data.fail(
        "diff", "v1", "v2", "blank.csv", "--rows", "--key", "id",
        fragments=("blank.csv in v2", 'one column named "id,a"', "blank but for spaces"),
    )  # fmt: skip
    assert "its columns" not in line


def test_an_integer_column_that_gained_a_fraction_changes_one_row_not_all(data: Repo) -> None:
    # score became DOUBLE and was compared as text, "3" against "3.0": every row of
    # the file was changed (keyed) or removed and added again (unkeyed)
    for key in (("--key", "id"), ()):
        got = rows_json(data, "scores.csv", *key)
        assert got["schema"] == [
            {"status": "retyped", "column": "score", "old_type": "BIGINT", "new_type": "DOUBLE"}
        ]
        summary = {k: got["summary"][k] for k in ("added", "removed", "changed", "unchanged")}
        assert summary == {"added": 1, "removed": 0, "changed": 0, "unchanged": 50}
        assert [r["values"]["score"] for r in got["rows"]] == [2.5]


def test_a_date_column_that_gained_times_changes_only_the_rows_not_at_midnight(
    data: Repo,
) -> None:
    # DATE against TIMESTAMP was compared as text, "2024-01-01" against
    # "2024-01-01 00:00:00": every row changed (keyed) or was removed and added (unkeyed)
    for key in (("--key", "id"), ()):
        got = rows_json(data, "days.csv", *key)
        assert got["schema"] == [
            {"status": "retyped", "column": "day", "old_type": "DATE", "new_type": "TIMESTAMP"}
        ]
        summary = {k: got["summary"][k] for k in ("added", "removed", "changed", "unchanged")}
        moved = {"changed": 1} if key else {"added": 1, "removed": 1}
        assert summary == {"added": 0, "removed": 0, "changed": 0, "unchanged": 19, **moved}


def test_a_utf16_file_is_named_utf16_not_binary(data: Repo) -> None:
    # it said "excel.tsv in v1 is not TSV: it holds NUL bytes, so it is binary, not text"
    got = rows_json(data, "excel.tsv", "--key", "id")
    assert got["method"] == "bytes"
    assert got["notes"] == [
        "excel.tsv in v1 is not TSV: it is UTF-16 text, not UTF-8 (convert it with iconv "
        "-f UTF-16 -t UTF-8 to compare rows): byte-level summary"
    ]


def test_a_file_with_both_line_endings_is_named_so(data: Repo) -> None:
    # the note quoted the engine: "Error when sniffing file ...; It was not possible to
    # automatically detect the CSV parsing dialect", which says nothing of the cause
    got = rows_json(data, "windows.csv", "--key", "id")
    assert got["method"] == "bytes"
    assert got["notes"] == [
        "windows.csv in v2 ends its lines both in \\r\\n and in \\n, which the engine does "
        "not read: make them one kind (dos2unix) to compare rows: byte-level summary"
    ]


def test_a_float_column_written_again_as_double_changes_only_what_changed(data: Repo) -> None:
    # compared as DOUBLE, FLOAT's 0.1 (0.10000000149011612) was not DOUBLE's 0.1: every
    # row was changed; at FLOAT's precision only the value that changed is
    for key in (("--key", "id"), ()):
        got = rows_json(data, "floats.parquet", *key)
        assert got["schema"] == [
            {"status": "retyped", "column": "f", "old_type": "FLOAT", "new_type": "DOUBLE"}
        ]
        assert got["summary"]["unchanged"] == 2


def test_integer_columns_of_two_types_compare_exactly(data: Repo) -> None:
    # compared as DOUBLE, the ids 9007199254740993 and 9007199254740992 were one key:
    # "--key id is not unique in ids.csv in v2: id=9007199254740992.0 names 2 rows"
    got = rows_json(data, "ids.csv", "--key", "id")
    summary = {k: got["summary"][k] for k in ("added", "removed", "changed", "unchanged")}
    assert summary == {"added": 2, "removed": 0, "changed": 0, "unchanged": 2}
    # compared as their text without a key, the rows shown held that text: "id": "5"
    plain = rows_json(data, "ids.csv")
    assert [r["values"]["id"] for r in plain["rows"]] == [18446744073709551617, 9007199254740992]


@pytest.fixture(scope="module")
def sniffer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[engine.Engine]:
    """One engine for every example of the sniffing property: a CSV is sniffed by
    queries that leave nothing behind, and starting an engine took a fifth of an
    example's time."""
    eng = engine.Engine(tmp_path_factory.mktemp("sniffer"), threads=1)
    yield eng
    eng.close()


UNQUOTED_VALUES = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(-1e6, 1e6, allow_nan=False).map(lambda f: f"{f:.3f}"),
    st.dates().map(str),
    st.sampled_from(["", "oslo", "a b", "x;y", "p|q", "NULL", "true", "12:00:01", "#x"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    delim=st.sampled_from([",", ";", "|", "\t", " "]),
    header=st.booleans(),
    eol=st.sampled_from(["\n", "\r\n"]),
    rows=st.lists(st.lists(UNQUOTED_VALUES, min_size=3, max_size=3), min_size=1, max_size=12),
    width=st.integers(1, 3),
)
def test_a_sample_without_quotes_is_sniffed_as_duckdb_sniffs_it_on_its_own(
    sniffer: engine.Engine, tmp_path: Path, delim: str, header: bool, eol: str,
    rows: list[list[str]], width: int,
) -> None:  # fmt: skip
    """A sample holding no quote character is sniffed with no quote given (far less
    work for a wide table): its Table is the one DuckDB's own search finds."""
    lines = ([delim.join(f"h{i}" for i in range(width))] if header else []) + [
        delim.join(r[:width]) for r in rows
    ]
    path = tmp_path / "t.csv"
    path.write_bytes((eol.join(lines) + eol).encode())
    query = (
        f"SELECT * FROM sniff_csv({engine.literal(str(path))}, "
        f"sample_size={engine.SNIFF_ROWS}, max_line_size={MAX_LINE})"
    )
    try:
        searched = sniffer._csv_table("csv", sniffer.run(query)[0])
    except engine.NotTabular:
        with pytest.raises(engine.NotTabular):
            sniffer.sniff("csv", path, path.stat().st_size)
        return
    got = sniffer.sniff("csv", path, path.stat().st_size)
    # (a header name is kept as the file writes it, spaces around it too, where
    # DuckDB's search strips them: `--key " qty"`; all else is the search's)
    got = replace(got, columns=tuple((n.strip(), t) for n, t in got.columns))
    assert got == searched


def test_scratch_left_by_a_process_whose_pid_another_took_is_removed(tmp_path: Path) -> None:
    """Row diff scratch directories were judged by their pid alone: one a killed diff
    left stayed for ever once a process started later had its pid. They are named by
    pid and start time now; what a process that runs left stays (also under the names
    of older versions), what a gone one left goes."""
    pid = os.getpid()
    start = process_start(pid)
    assert start is not None
    dead = subprocess.Popen(["true"])  # (its pid: no process has it once it is waited for)
    dead.wait()
    stale = [f"rows-{pid}-{start + 1}-abc_1234", f"rows-{dead.pid}-abc_1234"]
    kept = [f"rows-{pid}-{start}-abc_1234", f"rows-{pid}-abc_1234", "rows-x-1", "rows-notes"]
    for name in stale + kept:
        (tmp_path / name).mkdir()
    with source.scratch(tmp_path) as mine:
        assert mine.name.startswith(f"rows-{process_tag()}-")
        assert sorted(os.listdir(tmp_path)) == sorted([*kept, mine.name])
    assert sorted(os.listdir(tmp_path)) == sorted(kept)


def test_a_column_named_with_blanks_is_shown_quoted_in_messages(tmp_path: Path) -> None:
    """A JSON Lines column `` v`` was listed as ``id,  v, w`` when a key was missing,
    and the key line read ``(key  v)``: nothing told it from ``v``. Such a name is
    shown quoted, as the rows already showed it."""
    r = init_repo(tmp_path / "blanks")
    for w in (2, 3):
        t = f'{{"id": 1, " v": "a", "w": 1}}\n{{"id": 2, " v": "b", "w": {w}}}\n'
        commit_files(r, {"t.jsonl": t}, "data")
    r.fail("diff", "v1", "v2", "t.jsonl", "--rows", "--key", "v", fragments=(
        '--key column v is not in t.jsonl in v1 (its columns: id, " v", w)',
    ))  # fmt: skip
    out = r.ok("diff", "v1", "v2", "t.jsonl", "--rows", "--key", " v").out
    assert out.splitlines()[0].startswith('rows of t.jsonl, v1 -> v2 (key " v"): '), out
    r.fsck_clean()


def test_a_csv_header_name_with_spaces_is_the_file_s_name(tmp_path: Path) -> None:
    """The engine's sniffer strips a CSV header's names: the column " qty" was shown
    and keyed as "qty", a column the file does not have, and " a,b" as "a,b". The row
    diff names them as the file writes them now, and --key takes them so."""
    repo = init_repo(tmp_path / "repo")
    for t in ('id, qty," a,b"\n1,5,x\n2,6,y\n', 'id, qty," a,b"\n1,7,x\n2,6,z\n'):
        commit_files(repo, {"t.csv": t}, "data")
    d = rows_json(repo, "t.csv", "--key", "id")
    assert d["summary"]["columns"] == {" qty": 1, " a,b": 1}, d
    for item, key in ((" qty", [" qty"]), (" a,b", [" a,b"]), ("id, qty", ["id", " qty"])):
        assert rows_json(repo, "t.csv", "--key", item)["key"] == key, item
    out = repo.ok("diff", "v1", "v2", "t.csv", "--rows", "--key", " a,b").out
    assert 'changed  " a,b"=x  " qty": 5 -> 7' in out.splitlines(), out
    repo.fsck_clean()
