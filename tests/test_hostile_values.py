"""What a teammate or a remote records can be anything: a forged version's message, a
params file's YAML tags, a Parquet file that expands without bound. Each must leave
dvfs's output bounded and its records faithful, or be refused in one line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

import vfs
from tests.support.cli import (
    Repo,
    add_in_process,
    assert_ok,
    cli_env,
    commit_files,
    fsck_clean,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.forge import Forge, file_entry, nested
from tests.support.ui import get, serving
from vfs.model.params import MAX_MESSAGE, MAX_TOTAL, SHOWN_AUTHOR
from vfs.model.version_codec import GitLink, StageRecord, StageRun, Version, encode_version
from vfs.store.objects import ObjKind
from vfs.tables import checks

# ------------------------------------------------------------------- huge messages


def forged_chatter(
    root: Path, message: str, author: str, params: dict[str, Any] | None = None
) -> Forge:
    """A remote whose one version carries ``message``, ``author`` and ``params``, with
    two branches (``main`` and the experiment ``exp/big``) at it."""
    forge = Forge(root)
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    params = {"lr": 0.1} if params is None else params
    tree = nested(forge, [b"data"], [leaf])
    v = Version(tree, (), 1, message, author, 1, params=params, **forge.totals(tree))
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


def test_a_forged_version_s_megabytes_of_parameters_are_shown_cut_short(tmp_path: Path) -> None:
    """A forged version with 100,000 parameters and a 5 MiB one (16 MB in all) was
    printed whole by `log --params`, `show` and `compare --json`."""
    params: dict[str, Any] = {f"k{i:06d}": "v" * 100 for i in range(20_000)}
    params["big"] = "x" * (1 << 20)  # (3 MB in all here: still 12 times the bound)
    forge = forged_chatter(tmp_path / "evil", "m", "a", params)
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = tmp_path / "b"
    bound = 4 * MAX_TOTAL
    marker = "19,4"  # (19,4xx more parameters not shown: as many as fit are)
    for args in (("log", "--params"), ("show",), ("show", "--json"), ("compare", "--json")):
        r = assert_ok(run(b, *args))
        assert len(r.out) < bound and "more parameters not shown" in r.out, (args, len(r.out))
        assert marker in r.out, args
    shown = assert_ok(run(b, "show", "--json")).json()["parameters"]
    assert shown["k000000"] == "v" * 100 and "big" not in shown
    (b / "data" / "b.txt").write_text("b\n")
    assert_ok(run(b, "add", "data/b.txt"))
    assert_ok(run(b, "commit", "-m", "two", "--param", "lr=1"))
    for diff in (("diff", "v1", "v2"), ("diff", "v1", "v2", "--json")):
        r = assert_ok(run(b, *diff))
        assert len(r.out) < 2 * bound and "more parameters not shown" in r.out, (diff, len(r.out))
    with vfs.Repo(b) as repo:
        assert len(json.dumps(repo.versions()[-1].params)) < bound
    fsck_clean(b)


def test_a_forged_pipeline_record_s_parameters_are_shown_cut_short(tmp_path: Path) -> None:
    """A forged version whose stage read 5,000 parameters of 2,000 characters (10 MB)
    had them printed whole by `show --json`, `compare --json` and `params diff`. (1,000
    of them here: 2 MB, 8 times what the output may hold.)"""
    forge = Forge(tmp_path / "evil")
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    read = tuple((b"p.yaml", f"k{i:05d}", "v" * 2000) for i in range(1000))
    stage = StageRecord("s", "echo", b"", (), (), read, (), StageRun(0, 1, 1, "h", "d", "p"))
    tree = nested(forge, [b"data"], [leaf])
    v = Version(tree, (), 1, "m", "a", 1, pipeline=(stage,), **forge.totals(tree))
    forge.publish(forge.add(ObjKind.VERSION, encode_version(v)))
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    for args in (("show", "--json"), ("compare", "--json"), ("params", "diff", "v1")):
        r = assert_ok(run(tmp_path / "b", *args))
        assert len(r.out) < 4 * MAX_TOTAL and "more parameters not shown" in r.out, args
    fsck_clean(tmp_path / "b")


def test_a_forged_version_s_metrics_are_read_up_to_a_bound(tmp_path: Path) -> None:
    """A forged version whose stage named 2,000 metrics files of 10,000 values each,
    all of one 155 KiB chunk, had `compare` read 20 million values: 9 GB and minutes,
    from a fetch of 315 KiB. A version's metrics are read up to 100,000 values (and
    1,000 files); the files left out are named in one warning."""
    forge = Forge(tmp_path / "evil")
    names = [f"m{i:02d}.json".encode() for i in range(11)]
    datas = [json.dumps({f"k{j:05d}": i for j in range(10_000)}).encode() for i in range(11)]
    entries = [file_entry(n, forge.chunk(d), len(d)) for n, d in zip(names, datas, strict=True)]
    outs = tuple((e.name, e.digest) for e in entries)
    run_ = StageRun(0, 1, 1, "h", "d", "p")
    stage = StageRecord("s", "echo", b"", (), outs, (), tuple(names), run_)
    tree = forge.tree(entries)
    v = Version(tree, (), 1, "m", "a", 1, pipeline=(stage,), **forge.totals(tree))
    forge.publish(forge.add(ObjKind.VERSION, encode_version(v)))
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    for args in (("metrics", "show", "v1", "--json"), ("compare", "--json")):
        r = assert_ok(run(tmp_path / "b", *args))
        [warning] = [ln for ln in r.err.splitlines() if "not read" in ln]
        assert "1 more metrics files not read" in warning and "100,000 values" in warning
        assert "m10.json" not in r.out and "m09.json" in r.out, args
    from vfs.pipeline.report import VERSION_VALUES

    assert VERSION_VALUES == 10 * 10_000  # (ten of these files hold as many)
    fsck_clean(tmp_path / "b")


def test_a_forged_git_commit_is_shown_cut_to_a_git_id_s_length(tmp_path: Path) -> None:
    """A forged version naming a 2 MiB git commit had it printed whole by `show` and
    `log --json`."""
    forge = Forge(tmp_path / "evil")
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    link = GitLink("\x1b[31mevil" + "g" * (2 << 20), False)
    tree = nested(forge, [b"data"], [leaf])
    v = Version(tree, (), 1, "m", "a", 1, git=link, **forge.totals(tree))
    forge.publish(forge.add(ObjKind.VERSION, encode_version(v)))
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    shown = assert_ok(run(tmp_path / "b", "show")).out
    assert len(shown) < 4096 and "git      \\033[31mevil" in shown, shown
    [row] = assert_ok(run(tmp_path / "b", "log", "--json")).json()
    assert row["git_commit"].startswith("\x1b[31mevil" + "g" * 55 + "\u2026 [2,097,")
    fsck_clean(tmp_path / "b")


# ------------------------------------------------------------------- YAML tags

TAGGED = [
    ("!!binary aGVsbG8=", "!!binary"),  # read as b'hello', recorded as that text
    ("!!timestamp 2001-12-14", "!!timestamp"),
    ("!!set {a, b}", "!!set"),
    ("!!python/tuple [1, 2]", "!!python/tuple"),
    ("!local x", "!local"),
]


@pytest.mark.parametrize(("value", "tag"), TAGGED)
def test_a_tagged_value_in_a_params_file_is_refused_naming_file_and_key(
    repo: Repo, value: str, tag: str
) -> None:
    """``data: !!binary aGVsbG8=`` was recorded as the text ``b'hello'``: a version
    given that text plainly recorded the same parameter."""
    repo.write("f.txt", "x\n")
    add_in_process(repo, "f.txt")
    repo.write("p.yaml", f"lr: 0.1\nopt:\n  data: {value}\n")
    repo.fail("commit", "-m", "x", "--params-file", "p.yaml",
              fragments=(f"p.yaml: the value of opt.data is tagged {tag}", "(line 3"))  # fmt: skip
    repo.fail("commit", "-m", "x", "--param", f"data={value}",
              fragments=(f"--param data={value}: the value is tagged {tag}",))  # fmt: skip
    assert repo.run("log").out == ""  # nothing recorded
    repo.fsck_clean()


def test_the_core_schema_s_own_tags_in_a_params_file_are_kept(repo: Repo) -> None:
    """The core schema's own tags say what the plain value would: they are kept."""
    repo.write("f.txt", "x\n")
    add_in_process(repo, "f.txt")
    repo.write("p.yaml", "a: !!str 3\nb: !!float 1\nc: !!int '7'\n")
    repo.commit("plain", "--params-file", "p.yaml")
    assert repo.show()["parameters"] == {"a": "3", "b": 1.0, "c": 7}
    repo.fsck_clean()


def test_a_tagged_stage_parameter_or_metric_is_refused_naming_file_and_key(repo: Repo) -> None:
    """A stage's ``data: !!binary aGVsbG8=`` changed to the text ``b'hello'`` left the
    stage fresh: both were recorded as that text."""
    script = "open('o', 'w').write(open('p.yaml').read())"
    repo.write("p.yaml", "data: !!binary aGVsbG8=\n")
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: [" + json.dumps(sys.executable)
               + ", -c, " + json.dumps(script) + "]\n    params: [{p.yaml: [data]}]\n"
               "    outs: [o]\n")  # fmt: skip
    repo.fail("repro", fragments=("p.yaml: the value of data is tagged !!binary",))
    repo.write("p.yaml", "data: b'hello'\n")
    repo.ok("repro")
    repo.write("p.yaml", "data: !!binary aGVsbG8=\n")
    repo.fail("repro", fragments=("p.yaml: the value of data is tagged !!binary",))
    given = "p.yaml:data=!!binary aGk="
    repo.fail("exp", "run", "-S", given, fragments=(f"-S {given}: the value is tagged !!binary",))
    repo.run("run", "-n", "m", "-m", "m.yaml", "--",
             "printf 'when: !!timestamp 2001-12-14\\nacc: 0.5\\n' > m.yaml")  # fmt: skip
    r = repo.run("metrics", "show")
    assert "m.yaml: the value of when is tagged !!timestamp" in r.err, r
    repo.fsck_clean()


# ------------------------------------------------------------------- the row cache


def test_a_row_cache_entry_that_is_a_directory_leaves_no_descriptor_open(tmp_path: Path) -> None:
    """A directory where a kept entry is (a repository unpacked from someone else) was
    opened, refused by fdopen and never closed: one descriptor lost per lookup, until a
    long-lived process (the dashboard, the API) ran out of them."""
    dvfs_dir = tmp_path / ".dvfs"
    (dvfs_dir / checks.DIR / ("a" * 64)).mkdir(parents=True)
    (dvfs_dir / checks.DIR / ("b" * 64)).write_bytes(b"kept")
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        assert checks.read_entry(dvfs_dir, "a" * 64, 1 << 20) is None
        assert checks.read_record(dvfs_dir, "a" * 64, 1 << 20) is None
        assert checks.read_entry(dvfs_dir, "b" * 64, 1 << 20) == b"kept"
    assert len(os.listdir("/proc/self/fd")) == before


# ------------------------------------------------------------------- decompression bombs

# `dvfs diff` run as the user runs it, with the engine's memory and its least spill
# bound made small, so that a bomb of a few hundred MB shows what one of 20 GB did.
SMALL_ENGINE = """
import sys
from vfs.tables import engine
engine.MEMORY_LIMIT, engine.SPILL_FLOOR = "256MB", 64 << 20
import vfs.cli
sys.argv = ["dvfs", *sys.argv[1:]]
vfs.cli.main()
"""


def bomb(path: Path, rows: int, text_bytes: int, value: int) -> None:
    """A Parquet file whose column ``s`` holds one text of ``text_bytes`` in every row:
    tens of KB on disk, ``rows * text_bytes`` once read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    texts = pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), ["x" * text_bytes])
    table = pa.table({"id": pa.array(range(rows), pa.int64()), "s": texts, "v": [value] * rows})
    pq.write_table(table, path, compression="zstd")


def test_a_parquet_bomb_row_diff_stops_at_the_spill_bound(repo: Repo) -> None:
    """A 450 KiB Parquet file holding one 100 KB text 200,000 times made a row diff
    spill 21 GB to .dvfs/rows-* in four minutes, and on towards a full disk."""
    bomb(repo.root / "f.parquet", 20_000, 50_000, 1)
    repo.ok("add", "f.parquet")
    repo.commit("one")
    bomb(repo.root / "f.parquet", 20_000, 50_000, 2)
    repo.ok("add", "f.parquet")
    repo.commit("two")
    assert (repo.root / "f.parquet").stat().st_size < 100_000
    proc = subprocess.run(
        [sys.executable, "-P", "-c", SMALL_ENGINE, "diff", "v1", "v2", "f.parquet", "--rows"],
        cwd=repo.root, env=cli_env(), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc
    [line] = proc.stderr.splitlines()
    assert "the tables expand to more than 0.1 GiB on disk" in line, line
    assert "not compared row by row" in line, line
    assert not list((repo.root / ".dvfs").glob("rows-*"))  # the spill is gone
    repo.fsck_clean()


# ------------------------------------------------------------------- infinities as text


def test_a_text_metric_reading_as_an_infinity_is_quoted_beside_the_float(repo: Repo) -> None:
    """A metric that is the text ".inf" showed as `.inf`, as the float does, and
    `metrics diff` of one against the other showed no change."""
    repo.ok("run", "-n", "s", "-m", "m.yaml", "--", "printf 'a: .inf\\nb: .nan\\n' > m.yaml")
    repo.commit("floats")
    repo.ok("run", "-f", "-n", "s", "-m", "m.yaml", "--",
            "printf 'a: \".inf\"\\nb: \".nan\"\\n' > m.yaml")  # fmt: skip
    repo.commit("texts")
    rows = [ln.split() for ln in repo.ok("metrics", "diff", "v1", "v2").out.splitlines()[1:]]
    assert rows == [["a", ".inf", '".inf"', "-"], ["b", ".nan", '".nan"', "-"]]
    compared = repo.ok("compare", "v1", "v2").out.splitlines()
    assert ".inf" in compared[2] and '".inf"' not in compared[2]
    assert '".inf"' in compared[3] and '".nan"' in compared[3]
    repo.fsck_clean()


def test_exp_list_json_names_text_metrics_reading_as_infinities_as_compare_does(
    repo: Repo,
) -> None:
    """`exp list --json` gave the text ".inf" and the float infinity alike, as ".inf",
    where `compare --json` names such text metrics in `texts`."""
    repo.write("params.yaml", "lr: 1\n")
    repo.ok("run", "-n", "s", "-p", "lr", "-m", "m.yaml", "--",
            "printf 'a: \".inf\"\\nb: .inf\\n' > m.yaml")  # fmt: skip
    repo.ok("add", "params.yaml")
    repo.commit("one")
    repo.ok("exp", "run", "-S", "lr=2", "-n", "x")
    [listed] = repo.json("exp", "list", "--json")
    [compared] = [r for r in repo.json("compare", "--json") if r["rev"] == "exp/x"]
    assert listed["metrics"] == compared["metrics"] == {"a": ".inf", "b": ".inf"}
    assert listed["texts"] == compared["texts"] == ["a"]
    repo.fsck_clean()


def test_exp_run_sets_an_infinity_as_the_float_it_spells(repo: Repo) -> None:
    """`dvfs exp run -S lr=.inf` wrote `lr: '.inf'` (a text) into the params file: the
    stage read a str where the user meant the float."""
    script = (
        "import yaml; open('o', 'w').write(type(yaml.safe_load(open('p.yaml'))['lr']).__name__)"
    )
    repo.write("p.yaml", "lr: 0.1\n")
    repo.write("p.json", '{"lr": 0.1}\n')
    repo.write("dvfs.yaml", "stages:\n  s:\n    cmd: [" + json.dumps(sys.executable)
               + ", -c, " + json.dumps(script) + "]\n    params: [{p.yaml: [lr]}, "
               "{p.json: [lr]}]\n    outs: [o]\n")  # fmt: skip
    repo.ok("repro")
    repo.ok("add", "p.yaml", "p.json", "dvfs.yaml")
    repo.commit("base")
    repo.ok("exp", "run", "-S", "p.yaml:lr=.inf", "-n", "inf")
    assert repo.run("cat", "exp/inf", "p.yaml").out == "lr: .inf\n"
    assert repo.run("cat", "exp/inf", "o").out == "float"
    repo.fail("exp", "run", "-S", "p.json:lr=-.inf", "-n", "json",
              fragments=("p.json is JSON, which cannot hold -.inf",))  # fmt: skip
    repo.fsck_clean()


def test_a_text_metric_that_reads_as_a_tagged_value_is_shown_quoted(repo: Repo) -> None:
    """Text that YAML would read as a tagged value is shown quoted, not refused: it is
    text in a JSON file, and only a YAML file's tag is refused."""
    repo.ok("run", "-n", "s", "-m", "m.json", "--",
            """printf '{"a": "[!!binary aGk=]", "b": "!!int 5"}' > m.json""")  # fmt: skip
    out = repo.ok("metrics", "show").out
    assert '"[!!binary aGk=]"' in out and '"!!int 5"' in out, out


# ------------------------------------------------------------------- huge cells


def test_a_row_diff_s_megabyte_cells_are_given_in_json_cut_and_marked(tmp_path: Path) -> None:
    """A table whose rows each held a 1 MiB text (and a list of 100,000 numbers) had
    `dvfs diff --rows --json` and the dashboard's row diff give every one out whole:
    up to --limit (20) rows of them, tens of MB; human output cut each to 200. (A
    16th of those sizes here: a text still 16 times the most of a value given, each
    version's rows past the bound of a whole answer.)"""
    from vfs.tables.render import JSON_NAME, JSON_ROW, JSON_VALUE

    r = init_repo(tmp_path / "r")
    cell = 1 << 16
    name = "c" * cell

    def table(v: int) -> bytes:
        return "".join(
            json.dumps({"id": i, "s": f"{v}" + "x" * cell, "l": [v] * 6_250, name: v}) + "\n"
            for i in range(6)
        ).encode()

    assert len(table(1)) > 8 * JSON_ROW
    commit_files(r, {"t.jsonl": table(1)}, "one")
    commit_files(r, {"t.jsonl": table(2)}, "two")
    r.write("t.jsonl", table(3) + json.dumps({"id": 9, "s": "y" * cell}).encode() + b"\n")
    doc = r.json("diff", "v1", "v2", "t.jsonl", "--rows", "--key", "id", "--json")
    assert len(json.dumps(doc)) < 8 * JSON_ROW and doc["summary"]["changed"] == 6
    marker = f"\u2026 [{cell + 1 - JSON_VALUE:,} more characters not shown]"
    first = doc["rows"][0]["changes"]
    assert first["s"] == {"old": "1" + "x" * (JSON_VALUE - 1) + marker,
                          "new": "2" + "x" * (JSON_VALUE - 1) + marker}  # fmt: skip
    assert (
        first["l"]["old"].startswith("[1, 1, ") and "more characters not shown" in first["l"]["old"]
    )
    assert [n[:JSON_NAME] for n in first] == ["s", "l", "c" * JSON_NAME]
    assert doc["rows"][0]["key"] == {"id": 0}
    # which values were cut is said apart: a text may end as the marker does
    assert [row["cut"] for row in doc["rows"]] == [["s", "l"]] * 6
    short = "a" + marker  # a value as long as it is, that reads like a cut one
    commit_files(r, {"m.jsonl": json.dumps({"id": 1, "s": "b"}) + "\n"}, "three")
    commit_files(r, {"m.jsonl": json.dumps({"id": 1, "s": short}) + "\n"}, "four")
    row = r.json("diff", "v3", "v4", "m.jsonl", "--rows", "--key", "id", "--json")["rows"][0]
    assert row["changes"]["s"]["new"] == short and "cut" not in row, row
    human = r.ok("diff", "v1", "v2", "t.jsonl", "--rows", "--key", "id").out
    assert len(human) < 8 * JSON_ROW, len(human)
    worktree = r.json("diff", "v2", "t.jsonl", "--rows", "--key", "id", "--json")
    assert len(json.dumps(worktree)) < 8 * JSON_ROW
    with serving(r.root) as s:
        a = get(f"{s.base}api/rows?old=v1&new=v2&path=t.jsonl&key=id")
        assert a.status == 200 and a.json() == doc
    r.fsck_clean()


def test_a_forged_pipeline_record_s_commands_are_shown_cut_short(tmp_path: Path) -> None:
    """A forged version of 200 stages, each running a 64 KiB command (the most a
    record holds; 1,024 stages may), had every command given out whole by `show
    --json`, `lineage` and the dashboard's lineage: 13 MB of them (64 MB at most)."""
    from vfs.model.params import SHOWN_CMD, SHOWN_CMDS

    forge = Forge(tmp_path / "evil")
    chunk = forge.chunk(b"hello\n")
    run_ = StageRun(0, 1, 1, "h", "d", "p")
    stages = [
        StageRecord(f"s{i:03d}", "e" * (64 << 10) if i % 2 else ("echo", "a" * ((64 << 10) - 4)),
                    b"", (), ((f"data/{i}".encode(), chunk),) if i == 0 else (), (), (), run_)
        for i in range(200)
    ]  # fmt: skip
    leaf = file_entry(b"0", chunk, 6)
    tree = nested(forge, [b"data"], [leaf])
    v = Version(tree, (), 1, "m", "a", 1, pipeline=tuple(stages), **forge.totals(tree))
    forge.publish(forge.add(ObjKind.VERSION, encode_version(v)))
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = tmp_path / "b"
    r = assert_ok(run(b, "show", "--json"))
    assert len(r.out) < 2 * SHOWN_CMDS + 200 * 1024, len(r.out)
    shown = [s["command"] for s in r.json()["pipeline"]]
    marker = f"\u2026 [{(64 << 10) - SHOWN_CMD:,} more characters not shown]"
    assert shown[0] == ["echo", "a" * (SHOWN_CMD - 4) + marker], shown[0][:1]
    assert shown[1] == "e" * SHOWN_CMD + marker
    assert shown[-1].startswith("\u2026 [65,536 more")  # past SHOWN_CMDS in all
    for args in (("lineage", "data/0"), ("lineage", "data/0", "--json")):
        out = assert_ok(run(b, *args)).out
        assert len(out) < 2 * SHOWN_CMD and "more characters not shown" in out, (args, len(out))
    with serving(b) as s:
        a = get(f"{s.base}api/lineage?rev=v1")
        assert a.status == 200 and len(a.body) < 2 * SHOWN_CMDS + 200 * 1024, len(a.body)
        assert [st["command"] for st in a.json()["stages"]] == shown
    fsck_clean(b)


def test_the_dashboard_searches_a_forged_message_as_it_shows_it(tmp_path: Path) -> None:
    """The dashboard's search lowercased every message and author whole at each
    query: a forged 10 MiB message cost that much per version per keystroke, and
    matched words past what the page shows of it. Only what is shown is searched."""
    message = "m" * MAX_MESSAGE + "hidden" + "m" * (10 << 20)
    forge = forged_chatter(tmp_path / "evil", "Seen " + message, "a" * SHOWN_AUTHOR + "zed")
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    with serving(tmp_path / "b") as s:

        def found(**query: str) -> int:
            a = get(f"{s.base}api/versions?{urllib.parse.urlencode(query)}")
            assert a.status == 200, a.body[:300]
            return int(a.json()["total"])

        assert found(q="seen") == found(author="aaa") == 1
        assert found(q="hidden") == found(author="zed") == 0
    fsck_clean(tmp_path / "b")


def test_a_version_a_remote_gave_thousands_of_tags_names_some_in_log(tmp_path: Path) -> None:
    """A forged remote with 20,000 tags of 200 characters at one version had every
    `log` and `log --json` name them all (4 MB each; 20 MB with the 100,000 tags a
    remote may hold); a row names 200 of them, and how many more."""
    forge = Forge(tmp_path / "evil")
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    tree = nested(forge, [b"data"], [leaf])
    v = Version(tree, (), 1, "m", "a", 1, **forge.totals(tree))
    oid = forge.add(ObjKind.VERSION, encode_version(v))
    forge.publish({"main": oid}, {f"t{i:04d}": oid for i in range(1000)})
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = tmp_path / "b"
    [row] = assert_ok(run(b, "log", "--json")).json()
    assert row["tags"] == [f"t{i:04d}" for i in range(200)] and row["more_tags"] == 800
    assert row["branches"] == ["main"] and "more_branches" not in row
    for args in (("log",), ("log", "--oneline"), ("log", "--graph")):
        out = assert_ok(run(b, *args)).out
        assert "tag: t0199, 800 more tags, main)" in out and "t0200" not in out, args
    with serving(b) as s:
        [page_row] = get(f"{s.base}api/versions").json()["versions"]
        assert page_row == row
    fsck_clean(b)


def test_a_megabyte_column_type_is_shown_cut_and_escaped(tmp_path: Path) -> None:
    """A Parquet file whose struct column had 1,000 fields of 1,000-character names
    (one holding a newline and an escape) printed its 1 MB type whole, raw, on the
    "column retyped" line of a row diff."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from vfs.tables.render import MAX_VALUE

    r = init_repo(tmp_path / "r")
    names = ["f\n\x1b[2J" + "x" * 1000] + [f"{n:04}" + "y" * 996 for n in range(999)]

    def write(kind: pa.DataType) -> None:
        struct = pa.array([{n: 1 for n in names}], pa.struct([(n, kind) for n in names]))
        pq.write_table(pa.table({"id": [1], "s": struct}), r.root / "t.parquet")

    write(pa.int64())
    r.ok("add", "t.parquet")
    r.commit("one")
    write(pa.float64())
    out = r.ok("diff", "t.parquet", "--rows").out
    [line] = [x for x in out.splitlines() if x.startswith("column retyped:")]
    assert len(line) < 3 * MAX_VALUE, len(line)
    assert line.count("more characters not shown]") == 2, line
    assert "\x1b" not in out and "\\033[2J" in line, line
    r.fsck_clean()
