"""``dvfs ui``'s JSON API, over HTTP from a real server on a real repository.

Each answer is checked against the CLI's ``--json`` for the same question (one code
path), then hostile requests: traversal in every spelling, unknown versions, bad
numbers, a foreign Host header, missing tokens, and binds that must be refused; then
the actions of ``--allow-write``, refused without it or without the page's CSRF token.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import select
import socket
import subprocess
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import (
    Repo,
    add_in_process,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    commit_files,
    drop_file_override,
    fsck_clean,
    init_repo,
    run,
)
from tests.support.data import rand
from tests.support.forge import forge_deep_pipeline, forge_wide_pipeline
from tests.support.mount import push_to
from tests.support.s3server import S3Server
from tests.support.ui import Server, csrf_of, get, make_repo, post, serving
from tests.test_checkout_ahead import MiB, forge_digest
from vfs.errors import UsageError
from vfs.pipeline import lineage
from vfs.repo.repository import Repository
from vfs.tables import engine as table_engine
from vfs.ui import data, files
from vfs.ui.source import Source, open_source

TOKEN = "t0ken-for-the-tests-0123456789"
SNIFF = 64 << 10  # the bytes a CSV's dialect is detected on, in the tests that patch it


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return Repo(make_repo(tmp_path_factory.mktemp("ui") / "repo"))


@pytest.fixture(scope="module")
def server(repo: Repo) -> Iterator[Server]:
    with serving(repo.root) as s:
        yield s


def api(server: Server, route: str, **params: Any) -> Any:
    a = get(f"{server.base}api/{route}?{urllib.parse.urlencode(params)}")
    assert a.status == 200, (a.status, a.body[:500])
    assert a.headers["content-type"] == "application/json"
    return a.json()


def status_of(server: Server, route: str, **params: Any) -> tuple[int, Any]:
    a = get(f"{server.base}api/{route}?{urllib.parse.urlencode(params)}")
    return a.status, a.json()


@contextlib.contextmanager
def opened(where: str) -> Iterator[Source]:
    """What `dvfs ui WHERE` opens and serves, in this process (a remote's versions and
    trees mirrored as the command mirrors them, under ``$XDG_CACHE_HOME``), until the
    block ends: for a test of what the data layer answers, where the HTTP route is
    another test's."""
    source = open_source(where)
    try:
        yield source
    finally:
        if source.fetcher is not None:
            source.fetcher.close()
        source.repo.close()
        if source.held is not None:
            os.close(source.held)


def test_versions_are_log_rows_paginated_and_filtered(server: Server, repo: Repo) -> None:
    log = repo.json("log", "--json")
    page = api(server, "versions")
    assert page["total"] == 3
    assert page["versions"] == log
    assert page["branches"] == ["main"] and page["tags"] == ["base"]
    second = api(server, "versions", offset=1, limit=1)
    assert [r["version"] for r in second["versions"]] == ["v2"] and second["total"] == 3
    past = api(server, "versions", offset=3)
    assert past["versions"] == [] and past["total"] == 3
    assert [r["version"] for r in api(server, "versions", tag="base")["versions"]] == ["v1"]
    found = api(server, "versions", q="EDITED rows")
    assert [r["version"] for r in found["versions"]] == ["v2"] and found["total"] == 1
    assert api(server, "versions", author="nobody-like-this")["versions"] == []
    assert [r["version"] for r in api(server, "versions", branch="v2")["versions"]] == ["v2", "v1"]
    changed = api(server, "versions", path="prep.py")
    assert [r["version"] for r in changed["versions"]] == ["v2"]
    assert changed["versions"] == repo.json("log", "--json", "--", "prep.py")


def test_version_is_show_without_files_and_changes(server: Server, repo: Repo) -> None:
    shown = repo.json("show", "v2", "--json")
    del shown["files"], shown["changes"]
    got = api(server, "version", rev="v2")
    assert {k: v for k, v in got.items() if k not in ("tags", "branches")} == shown
    assert api(server, "version", rev="base")["tags"] == ["base"]


def test_version_changes_are_shows_changes(server: Server, repo: Repo) -> None:
    for rev in ("v2", "base", "HEAD"):
        shown = repo.json("show", rev, "--json")
        got = api(server, "version/changes", rev=rev)
        assert got == {"version": shown["version"], "id": shown["id"],
                       "changes": shown["changes"]}  # fmt: skip
    assert api(server, "version/changes", rev="v2")["changes"]["since"] == "v1"
    assert api(server, "version/changes", rev="v1")["changes"]["since"] is None
    status, body = status_of(server, "version/changes", rev="v9")
    assert status == 404 and "unknown revision" in body["error"] and body["candidates"]
    status, body = status_of(server, "version/changes", rev="bsae")
    assert status == 404 and body["candidates"] == ["base"]
    assert status_of(server, "version/changes", rev="a\0b")[0] == 400


def test_files_of_a_directory_with_added_in(server: Server, repo: Repo) -> None:
    listing = api(server, "files", rev="v3", dir="data")
    rows = {e["name"]: e for e in listing["entries"]}
    assert sorted(rows) == [
        "blob.bin",
        "huge.bin",
        "link.csv",
        "notes.txt",
        "prep.txt",
        "train.csv",
    ]
    files = repo.json("show", "v3", "--json")["files"]
    for name, e in rows.items():
        assert e["added"] == files[f"data/{name}"]["added"], name
    assert rows["link.csv"]["type"] == "symlink" and rows["link.csv"]["target"] == "train.csv"
    top = api(server, "files", rev="v3", limit=2)
    assert [e["type"] for e in top["entries"]] == ["dir", "dir"] and top["total"] > 2


def test_previews_are_bounded_and_typed(server: Server) -> None:
    t = api(server, "preview", rev="v2", path="data/train.csv", offset=4, limit=2)
    assert t["kind"] == "table" and t["total"] == 301
    assert [c["name"] for c in t["columns"]] == ["id", "city", "score"]
    assert t["rows"] == [[4, "paris", 0.5], [5, "rome", 0.05]]
    # count=later: the rows first, not counted (v1's table, which no other test counts here)
    lazy = api(server, "preview", rev="v1", path="data/train.csv", count="later", limit=1)
    assert (lazy["kind"], lazy["total"], lazy["rows"]) == ("table", None, [[0, "oslo", 0.0]])
    assert api(server, "preview", rev="v1", path="data/train.csv", limit=1)["total"] == 300
    text = api(server, "preview", rev="v2", path="data/notes.txt")
    assert text["kind"] == "text" and text["text"] == "hello\nworld\nmore\n"
    binary = api(server, "preview", rev="v1", path="data/blob.bin")
    assert binary["kind"] == "binary" and binary["truncated"]
    assert len(binary["hex"]) == 32 and binary["hex"][0].startswith("00000000  00 01 02")
    huge = get(f"{server.base}api/preview?rev=v1&path=data/huge.bin")
    assert huge.json()["kind"] == "binary" and len(huge.json()["hex"]) == 32
    assert len(huge.body) < 8192  # a head, whatever the size
    assert api(server, "preview", rev="v1", path="img/red.png")["mime"] == "image/png"
    assert api(server, "preview", rev="v1", path="data/link.csv")["target"] == "train.csv"


def test_pages_of_a_table_and_the_copies_they_leave(repo: Repo) -> None:
    """Every page of a table, then another version's; the server keeps its copies in
    its own scratch directory while it runs, and leaves none once stopped."""
    with serving(repo.root) as s:
        pages = [api(s, "preview", rev="v2", path="data/train.csv", offset=o, limit=100)
                 for o in (0, 100, 200, 300, 400)]  # fmt: skip
        rows = [r for p in pages for r in p["rows"]]
        assert [p["total"] for p in pages] == [301] * 5 and len(rows) == 301
        assert rows[4] == [4, "paris", 0.5] and rows[-1] == [300, "lima", 0.9]
        older = api(s, "preview", rev="v1", path="data/train.csv", offset=4, limit=1)
        assert older["rows"] == [[4, "oslo", 0.04]] and older["total"] == 300
        mine = f"rows-{s.proc.pid}-"
        assert any(p.name.startswith(mine) for p in (repo.root / ".dvfs").iterdir())
    assert not any(p.name.startswith(mine) for p in (repo.root / ".dvfs").iterdir())
    fsck_clean(repo.root)


def test_download_is_the_file(server: Server, repo: Repo) -> None:
    a = get(f"{server.base}api/raw?rev=v1&path=data/blob.bin")
    assert a.status == 200 and a.body == repo.cat("v1:data/blob.bin")
    assert a.headers["content-disposition"].startswith("attachment")
    img = get(f"{server.base}api/raw?rev=v1&path=img/red.png&inline=1")
    assert img.headers["content-type"] == "image/png" and img.body.startswith(b"\x89PNG")
    assert img.headers["content-disposition"].startswith("inline")
    # only known raster images are shown inline; anything else is a download
    text = get(f"{server.base}api/raw?rev=v1&path=data/notes.txt&inline=1")
    assert text.headers["content-type"] == "application/octet-stream"
    assert text.headers["x-content-type-options"] == "nosniff"


def test_a_download_whose_bytes_are_not_the_files_digest_is_cut_short(tmp_path: Path) -> None:
    """A version whose file of several chunks claims a digest its bytes do not have (a
    forged or damaged record; each chunk is its id): its download was sent whole, as
    if its bytes were the hash the page shows. Its chunks are hashed as they are sent
    and the last is held back: the download ends short of it (the client sees fewer
    bytes than announced), and the server logs one line naming the file, no
    traceback. A true file of several chunks downloads whole."""
    r = init_repo(tmp_path / "lie")
    data = rand(3 * MiB, seed=19)
    commit_files(r, {"d/mid.bin": data}, "base")
    store = Repository(r.root)
    head = store.history.head_id()
    assert head is not None
    last = store.history.lookup(store.history.version(head).tree, b"d/mid.bin")
    assert last is not None and len(last.chunks) > 1
    store.refs.update("refs/tags/lie", forge_digest(store, head, b"d/mid.bin", bytes(32)), None)
    store.close()
    with serving(r.root) as s:
        where = urllib.parse.urlsplit(s.base)
        conn = http.client.HTTPConnection(where.hostname or "", where.port, timeout=60)
        conn.request("GET", "/api/raw?rev=lie&path=d/mid.bin")
        answer = conn.getresponse()
        assert answer.status == 200 and answer.headers["content-length"] == str(len(data))
        with pytest.raises(http.client.IncompleteRead) as cut:
            answer.read()
        conn.close()
        assert cut.value.partial == data[: len(data) - last.chunks[-1].size]
        whole = get(f"{s.base}api/raw?rev=v1&path=d/mid.bin")
        assert whole.status == 200 and whole.body == data
    lines = [line for line in s.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, s.stderr
    assert "d/mid.bin of v2" in lines[0] and "the digest the version records for it" in lines[0]
    r.ok("tag", "-d", "lie")
    r.fsck_clean()


def test_a_table_whose_bytes_are_not_the_files_digest_is_not_previewed(tmp_path: Path) -> None:
    """A version whose CSV of several chunks claims the digest of another table (a
    forged record; each chunk is its id): its preview showed its rows, and kept its copy
    under that digest, so the true table's preview showed them too. The preview fails
    with one line naming the file, and keeps nothing; the true table shows its rows."""
    r = init_repo(tmp_path / "lie")
    a = "id,city\n" + "".join(f"{i},paris\n" for i in range(300_000))
    b = "id,city\n" + "".join(f"{i},lima\n" for i in range(300_000))
    commit_files(r, {"a.csv": a, "b.csv": b}, "base")
    store = Repository(r.root)
    head = store.history.head_id()
    assert head is not None
    true = store.history.lookup(store.history.version(head).tree, b"a.csv")
    assert true is not None and len(true.chunks) > 1
    store.refs.update("refs/tags/lie", forge_digest(store, head, b"b.csv", true.digest), None)
    store.close()
    with serving(r.root) as s:
        lie = get(f"{s.base}api/preview?rev=lie&path=b.csv&limit=1")
        assert lie.status == 500, lie.body[:500]
        error = lie.json()["error"]
        assert "b.csv of v2: its bytes hash to" in error, error
        assert error.endswith(
            "the digest the version records for it (a forged or damaged record): not previewed"
        )
        shown = api(s, "preview", rev="v1", path="a.csv", limit=1)
        assert shown["kind"] == "table" and shown["rows"] == [[0, "paris"]]
        assert api(s, "preview", rev="v1", path="b.csv", limit=1)["rows"] == [[0, "lima"]]
    assert "Traceback" not in s.stderr, s.stderr
    r.ok("tag", "-d", "lie")
    r.fsck_clean()


def test_diff_is_the_cli_diff_paginated(server: Server, repo: Repo) -> None:
    cli = repo.json("diff", "v1", "v2", "--json")
    d = api(server, "diff", old="v1", new="v2")
    assert d["summary"] == cli["summary"] and d["parameters"] == cli["parameters"]
    assert [{k: v for k, v in c.items() if k != "tabular"} for c in d["changes"]] == cli["changes"]
    assert d["total_changes"] == len(cli["changes"])
    assert [c["path"] for c in d["changes"] if c["tabular"]] == ["data/train.csv"]
    second = api(server, "diff", old="v1", new="v2", offset=1, limit=2)
    assert second["changes"] == d["changes"][1:3]
    rows = api(server, "rows", old="v1", new="v2", path="data/train.csv", key="id")
    assert rows == repo.json("diff", "v1", "v2", "data/train.csv", "--rows", "--key", "id",
                             "--json", "--limit", "50")  # fmt: skip
    assert rows["summary"]["changed"] == 1 and rows["summary"]["added"] == 1


def test_a_row_diffs_key_is_taken_as_the_cli_takes_it(server: Server, repo: Repo) -> None:
    """``key=id&key=city`` compared by city alone (the last given) and ``key=,`` by
    whole rows, each silently; the key is now every column given, as ``--key id --key
    city`` is, and one naming an empty column is refused, as ``--key ,`` is."""
    base = f"{server.base}api/rows?old=v1&new=v2&path=data/train.csv"
    both = get(f"{base}&key=id&key=city").json()
    cli = repo.json("diff", "v1", "v2", "data/train.csv", "--rows", "--key", "id", "--key",
                    "city", "--json", "--limit", "50")  # fmt: skip
    assert both == cli and both["key"] == ["id", "city"]
    for bad in (",", "id,", "id,,city"):
        a = get(f"{base}&key={urllib.parse.quote(bad)}")
        assert a.status == 400 and a.json()["error"].endswith("holds an empty column name")
    assert get(f"{base}&key=").json()["key"] == []  # a blank field: whole rows


def test_a_row_diffs_refusals_speak_of_the_pages_controls(server: Server, repo: Repo) -> None:
    """The page's row diff was refused in the CLI's words ("--key column nope is not
    in ...", "leave --key out", "dvfs diff --rows reads ..."), options the page has
    none of; it speaks of its key field, while the CLI keeps its options' names."""
    said = {
        "nope": "the key column nope is not in data/train.csv in v1 (its columns: id, city, score)",
        "city": "the key city is not unique in data/train.csv in v1: city=oslo names 150 "
        "rows; give the columns that together name one row (a,b), or empty the key field "
        "to compare whole rows",
        "id,id": "the key names a column twice",
    }
    for key, message in said.items():
        status, body = status_of(server, "rows", old="v1", new="v2", path="data/train.csv",
                                 key=key)  # fmt: skip
        assert (status, body["error"]) == (400, message)
        cli = repo.fail("diff", "v1", "v2", "data/train.csv", "--rows", "--key", key)
        assert "--key" in cli and "the key" not in cli
    status, body = status_of(server, "rows", old="v1", new="v2", path="data/notes.txt")
    assert status == 400 and body["error"].startswith("a row diff reads CSV, TSV")
    assert "--" not in body["error"]


def test_a_key_column_named_with_spaces_or_a_comma_is_a_key(tmp_path: Path) -> None:
    """``--key " v"`` and ``key= v`` were stripped to v, and ``--key "a,b"`` split, so
    a column whose name starts or ends with a space (JSON Lines, Parquet keep them), or
    holds a comma, could not be a key. A column of that exact name is the key now;
    otherwise the parts between commas, each stripped, as before; CLI and page alike."""
    r = init_repo(tmp_path / "spaced")

    def lines(w: int) -> bytes:
        return "".join(
            json.dumps({"id": i, " v": f"v{i}", "a,b": i * 10, "w": w if i == 2 else 0}) + "\n"
            for i in range(4)
        ).encode()

    commit_files(r, {"t.jsonl": lines(1)}, "one")
    commit_files(r, {"t.jsonl": lines(2)}, "two")
    named = {" v": [" v"], "id, v": ["id", " v"], "id , a,b": ["id", "a", "b"],
             "a,b": ["a,b"], " id ": ["id"]}  # fmt: skip
    with serving(r.root) as s:
        for given, key in named.items():
            if key == ["id", "a", "b"]:  # no column a: refused naming it, both alike
                r.fail("diff", "v1", "v2", "t.jsonl", "--rows", "--key", given,
                       fragments=("--key column a is not in t.jsonl in v1",))  # fmt: skip
                status, body = status_of(s, "rows", old="v1", new="v2", path="t.jsonl",
                                         key=given)  # fmt: skip
                assert (status, body["error"].split(" (")[0]) == (
                    400,
                    "the key column a is not in t.jsonl in v1",
                )
                continue
            cli = r.json("diff", "v1", "v2", "t.jsonl", "--rows", "--key", given, "--json")
            page = api(s, "rows", old="v1", new="v2", path="t.jsonl", key=given)
            assert cli == page and cli["key"] == key, given
            assert cli["summary"]["changed"] == 1 and cli["summary"]["added"] == 0, given
    r.fsck_clean()


def test_lineage_experiments_and_store(server: Server, repo: Repo) -> None:
    g = api(server, "lineage", rev="v3")
    assert [s["stage"] for s in g["stages"]] == ["prep", "train"]
    assert g["edges"] == [["prep", "train"]]
    ids = {v["version"]: v["id"] for v in repo.json("log", "--json")}
    inputs = {i["path"]: i.pop("since") for i in g["stages"][0]["input"]}
    assert all(i.pop("in_version") for i in g["stages"][0]["input"])
    assert all(i.pop("since_id") == ids["v2"] for i in g["stages"][0]["input"])
    assert not any(i.pop("since_cut") for st in g["stages"] for i in st["input"])
    for i in (i for st in g["stages"] for i in st["input"]):
        del i["made_by"], i["kind"]
    for i in g["stages"][1]["input"]:
        del i["since"], i["since_id"], i["in_version"]
    assert g["stages"] == repo.json("show", "v3", "--json")["pipeline"]
    assert inputs == {"data/notes.txt": "v2", "prep.py": "v2"}
    assert api(server, "lineage", rev="v1")["stages"] == []
    ex = api(server, "experiments")
    compared = repo.json("compare", "--json")
    assert ex["rows"] == compared and (ex["total"], ex["offset"], ex["limit"]) == (3, 0, 200)
    assert ex["metrics"] == ["acc", "loss"] and "train.lr" in ex["params"]
    st = api(server, "store")
    assert st["du"] == repo.json("du", "--json") and st["verify"]["intact"]
    log = api(server, "audit", limit=2)
    assert log["total"] == len(repo.json("audit", "--json")) and len(log["entries"]) == 2
    assert log["entries"][0]["seq"] == log["total"]  # newest first


def test_a_line_of_the_audit_log_that_is_no_entry_leaves_the_others_listed(
    tmp_path: Path,
) -> None:
    """One damaged line of `.dvfs/audit.log` made the store page's audit request fail
    whole; the others are listed, as `dvfs audit` lists them, and the line is named."""
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"a.txt": b"one\n"}, "one")
    commit_files(repo, {"a.txt": b"two\n"}, "two")
    log = repo.root / ".dvfs" / "audit.log"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[1] = b"not an entry\n"
    log.write_bytes(b"".join(lines))
    r = repo.run("audit", "--json")
    assert_error(r, "line 2 of .dvfs/audit.log is not an entry")
    listed = [e["seq"] for e in json.loads(r.out)]
    with opened(str(repo.root)) as source:  # (the routes: test_lineage_experiments_and_store)
        got = data.audit_log(source.repo)
        assert got["damaged_lines"] == [2]
        assert [e["seq"] for e in got["entries"]] == listed[::-1] and got["total"] == len(listed)
        assert not data.store(source.repo)["verify"]["intact"]


def test_lineage_names_the_version_of_the_bytes_a_run_read_as_the_cli_does(
    tmp_path: Path,
) -> None:
    """An input changed after its run was said to be there since the version that
    changed it, next to the id of the bytes the run read, which an older one had."""
    repo = Repo(tmp_path / "repo")
    Repository.init(repo.root)
    repo.write("data.txt", "A\n")
    repo.ok("run", "-n", "s", "-d", "data.txt", "-o", "out", "--", "cp data.txt out")
    add_in_process(repo, "data.txt")
    repo.commit("one")
    repo.write("data.txt", "B\n")
    add_in_process(repo, "data.txt")
    repo.commit("two: the input changed, the output kept")
    cli = repo.json("lineage", "out", "--json")["stages"][0]["input"]
    assert [(i["since"], i["in_version"]) for i in cli] == [("v1", False)]
    with opened(str(repo.root)) as source:  # (the route: test_lineage_experiments_and_store)
        [stage] = data.lineage(source.repo, "v2")["stages"]
    assert [(i["path"], i["id"], i["since"], i["in_version"]) for i in stage["input"]] == [
        (i["path"], i["id"], i["since"], i["in_version"]) for i in cli
    ]
    v1 = repo.json("log", "--json")[-1]["id"]
    assert [i["since_id"] for i in stage["input"]] == [v1]  # what the page links to
    repo.fsck_clean()


def test_lineage_of_another_branchs_version_links_the_versions_of_its_inputs(
    tmp_path: Path,
) -> None:
    """An input whose bytes another branch's version introduced is named by that
    version's id (its number counts along its own branch): the route read the id as a
    number, and answered 500, or linked to no version."""
    repo = Repo(tmp_path / "repo")
    Repository.init(repo.root)
    repo.write("data.txt", "A\n")
    add_in_process(repo, "data.txt")
    repo.commit("one")
    repo.ok("switch", "-c", "exp")
    repo.write("data.txt", "B\n")
    add_in_process(repo, "data.txt")
    repo.ok("run", "-n", "s", "-d", "data.txt", "-o", "out", "--", "cp data.txt out")
    repo.commit("exp: B")
    repo.ok("switch", "main")
    repo.write("other.txt", "o\n")
    add_in_process(repo, "other.txt")
    repo.commit("two")
    exp = repo.json("log", "exp", "--json")
    cli = repo.json("lineage", "out", "exp", "--json")["stages"][0]["input"]
    with opened(str(repo.root)) as source:  # (the route: test_lineage_experiments_and_store)
        [stage] = data.lineage(source.repo, "exp")["stages"]
    assert [(i["since"], i["in_version"]) for i in stage["input"]] == [
        (i["since"], i["in_version"]) for i in cli
    ]
    assert [i["since_id"] for i in stage["input"]] == [exp[0]["id"]]
    repo.fsck_clean()


def test_lineage_draws_and_lists_a_params_file_another_stage_made(tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    Repository.init(repo.root)
    repo.write("seed.txt", "lr: 0.1\n")
    add_in_process(repo, "seed.txt")
    repo.ok("run", "-n", "gen", "-d", "seed.txt", "-o", "cfg.yaml", "--", "cp seed.txt cfg.yaml")
    repo.ok("run", "-n", "train", "-p", "cfg.yaml:lr", "-o", "model", "--", "cat cfg.yaml > model")
    repo.commit("one")
    with opened(str(repo.root)) as source:  # (the route: test_lineage_experiments_and_store)
        g = data.lineage(source.repo, "v1")
    assert g["edges"] == [["gen", "train"]]  # it had none: the graph showed two stages apart
    # The stage's inputs listed no params file, which `dvfs lineage` lists as one.
    cli = {st["stage"]: st["input"] for st in repo.json("lineage", "model", "--json")["stages"]}
    page = {st["stage"]: st["input"] for st in g["stages"]}
    assert [i["path"] for i in page["train"]] == ["cfg.yaml"], page
    keys = set(cli["gen"][0])  # (the page adds since_id, the version's id)
    for stage, inputs in cli.items():
        assert [{k: i[k] for k in keys} for i in page[stage]] == inputs, stage
    assert page["train"][0]["kind"] == "params" and page["train"][0]["made_by"] == "gen"
    repo.fsck_clean()


def test_lineage_of_a_forged_deep_pipeline_in_a_long_history_is_cut_short_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lineage route walked back from each input of each stage, without bound, for
    the version that introduced its bytes: a forged remote read in place (a pipeline of
    1,024 stages in 10,000 versions) had it look at ten million versions. It shares
    `dvfs lineage`'s bound now, and says which inputs it cut short. (The bound made 2,000
    versions, the history 100: each input's walk looks at all of them.)"""
    monkeypatch.setattr(lineage, "BUDGET", 2_000)
    versions, stages = 100, lineage.BUDGET // 100 + 20
    forge = forge_deep_pipeline(tmp_path / "remote", versions, stages)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with opened(forge.url) as view:
        g = data.lineage(view.repo, "main")
    assert [st["stage"] for st in g["stages"]] == [f"s{i:04d}" for i in range(stages)]
    inputs = [i for st in g["stages"] for i in st["input"]]
    cut = [i for i in inputs if i["since_cut"]]
    assert 0 < len(cut) < stages and all(i["since"] is None for i in cut)
    assert [i["since_cut"] for i in inputs] == [False] * (stages - len(cut)) + [True] * len(cut)


def test_lineage_of_a_forged_pipeline_naming_many_paths_finds_its_edges_through_an_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lineage route drew its edges comparing every path each stage reads with every
    output of every other stage: 200 chained stages of 200 paths each, in a forged
    remote read in place, made 1.6 billion comparisons (an hour). They are looked up in
    the index `dvfs lineage` uses: the same edges, in the same order."""
    stages, paths = 130, 130  # (the code before: 290 million comparisons, over the timeout)
    forge = forge_wide_pipeline(tmp_path / "remote", stages, paths)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with opened(forge.url) as view:
        g = data.lineage(view.repo, "main")
    assert g["edges"] == [[f"s{i - 1:04d}", f"s{i:04d}"] for i in range(1, stages)]
    assert sum(len(st["input"]) for st in g["stages"]) == (stages - 1) * paths + 1


@pytest.mark.parametrize(
    "query",
    ["path=../etc/passwd", "path=data/../../x", "path=%2e%2e/x", "path=/etc/passwd",
     "path=data//train.csv", "path=./data", "path=a%00b", "dir=..", "dir=data/.."],
)  # fmt: skip
def test_paths_never_leave_the_version(server: Server, query: str) -> None:
    route = "files" if query.startswith("dir=") else "preview"
    a = get(f"{server.base}api/{route}?rev=v1&{query}")
    assert a.status == 400, (a.status, a.body)
    assert "path" in a.json()["error"]


def test_bad_requests_get_one_message(server: Server) -> None:
    status, body = status_of(server, "version", rev="v9")
    assert status == 404 and "unknown revision" in body["error"] and body["candidates"]
    status, body = status_of(server, "version", rev="bsae")
    assert status == 404 and body["candidates"] == ["base"]
    status, body = status_of(server, "preview", rev="v1", path="data/none.csv")
    assert status == 404 and "does not exist in v1" in body["error"]
    status, body = status_of(server, "rows", old="v1", new="v2", path="data/none.csv")
    assert status == 404 and "data/none.csv is neither in v1 nor in v2" in body["error"]  # was 400
    # a key naming several rows is the page's request to mend, not a fault of the server
    status, body = status_of(server, "rows", old="v1", new="v2", path="data/train.csv", key="city")
    assert status == 400 and "the key city is not unique in data/train.csv" in body["error"]  # 500
    assert status_of(server, "files", rev="v1", dir="data/train.csv")[0] == 400
    assert status_of(server, "preview", rev="v1", path="data")[0] == 400
    status, body = status_of(server, "preview", rev="v1", path="data/train.csv", count="bogus")
    assert (status, body["error"]) == (400, "count may only be 'later', not 'bogus'")  # counted
    assert status_of(server, "versions", offset="-1")[0] == 400
    assert status_of(server, "versions", limit="lots")[0] == 400
    assert status_of(server, "versions", limit="\u00b2")[0] == 400  # a digit int() refuses
    status, body = status_of(server, "versions", offset="9" * 13)
    assert status == 400
    assert body["error"] == f"offset {'9' * 13} is too large: give at most 12 digits"
    assert get(f"{server.base}api/nothing").status == 404
    assert get(f"{server.base}static/../../../etc/passwd").status == 404
    # a page elsewhere reaching the dashboard through DNS rebinding
    assert get(f"{server.base}api/versions", {"Host": "evil.example:80"}).status == 400


def test_a_method_a_route_does_not_take_is_refused_in_the_apis_form(server: Server) -> None:
    """A POST to a reading route, or a GET to an action, was answered 405 with the
    text "Method Not Allowed", where every other refusal is ``{"error": MSG}``; it is
    that form now, naming what to send."""
    a = post(f"{server.base}api/versions", {})
    assert a.status == 405 and a.headers["content-type"] == "application/json"
    assert a.json() == {"error": "/api/versions does not take 'POST': send GET, HEAD"}
    assert sorted(a.headers["allow"].split(", ")) == ["GET", "HEAD"]
    b = get(f"{server.base}api/actions/tag")
    assert (b.status, b.json()) == (
        405,
        {"error": "/api/actions/tag does not take 'GET': send POST"},
    )


def test_a_request_to_no_route_is_not_found_whatever_its_method(server: Server) -> None:
    """A POST (or PUT, DELETE) to a path no route serves was answered 405, "send GET,
    HEAD", and a GET then 404: the page is not there for any method. A POST to an
    action's name misspelt with a slash was told to send GET."""
    for method in ("POST", "PUT", "DELETE"):
        a = get(f"{server.base}api/nothing", method=method)
        assert (a.status, a.json()) == (404, {"error": "no such page: /api/nothing"}), method
    a = post(f"{server.base}api/actions/tag/x", {"name": "x"})
    assert (a.status, a.json()) == (404, {"error": "no such page: /api/actions/tag/x"})
    assert get(f"{server.base}api/actions/tag/x").status == 404
    assert get(f"{server.base}api/actions/nothing").status == 405  # (an action's route)


@pytest.fixture(scope="module")
def guarded(repo: Repo) -> Iterator[Server]:
    """A dashboard of the shared repository started with ``--token TOKEN``, for the tests
    that only read through it (leaving it, it must exit 0 without a traceback)."""
    with serving(repo.root, "--token", TOKEN) as s:
        yield s


def test_a_token_guards_every_request(guarded: Server) -> None:
    s = guarded
    assert s.url.endswith(f"?token={TOKEN}")
    assert get(f"{s.base}api/versions").status == 401
    assert get(f"{s.base}").status == 401
    assert get(f"{s.base}static/app.js").status == 401
    assert get(f"{s.base}api/versions?token=wrong").status == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert get(f"{s.base}api/versions", bearer).status == 200
    page = get(s.url)
    assert page.status == 200 and b"app.js" in page.body
    cookie = page.headers["set-cookie"].split(";")[0]
    assert "httponly" in page.headers["set-cookie"].lower()
    assert get(f"{s.base}api/versions", {"Cookie": cookie}).status == 200


def test_the_token_cookie_is_read_beside_cookies_of_other_local_servers(guarded: Server) -> None:
    """The browser sends the dashboard every cookie of its host, other local servers'
    too; one that Python's strict cookie parser refuses (a JSON value, a value with a
    blank, a name without a value) made it read no cookie at all, the token's
    neither: every request but the printed URL was 401."""
    s = guarded
    mine = get(s.url).headers["set-cookie"].split(";")[0]
    for others in ('prefs={"theme":"dark"}', "a=b c", "flag", 'x="unterminated'):
        for cookie in (f"{others}; {mine}", f"{mine}; {others}"):
            a = get(f"{s.base}api/versions", {"Cookie": cookie})
            assert a.status == 200, (cookie, a.status, a.body)
    assert get(f"{s.base}api/versions", {"Cookie": 'prefs={"a":1}'}).status == 401


def test_a_token_that_is_not_latin1_text_is_refused_as_a_wrong_one(guarded: Server) -> None:
    """``?token=%FF`` (or any byte that is not UTF-8, or a character past Latin-1)
    made the guard fail: 500 "Internal Server Error" in plain text, and a traceback
    in the server's log (which ``serving`` checks for, as the shared server stops). It
    is a wrong token: 401."""
    s = guarded
    for given in ("%FF", "%E2%82%AC", f"{TOKEN}%FF"):
        a = get(f"{s.base}api/versions?token={given}")
        assert a.status == 401, (given, a.status, a.body)
        assert "needs its token" in a.json()["error"]
    assert get(f"{s.base}api/versions?token=%FF&token={TOKEN}").status == 200


def test_binds_that_are_refused(repo: Repo, tmp_path: Path) -> None:
    r = run(repo.root, "ui", "--host", "0.0.0.0")
    assert_error(r, "--host 0.0.0.0", "--token", code=2)
    assert_error(run(repo.root, "ui", "--token", "short"), "--token needs", code=2)
    assert_error(run(tmp_path, "ui"), "not", code=1)  # no repository here
    # refused before the source is opened: a remote's versions are not fetched first
    r = run(tmp_path, "ui", (tmp_path / "nowhere").as_uri(), "--host", "0.0.0.0")
    assert_error(r, "--host 0.0.0.0", "--token", code=2)
    r = run(repo.root, "ui", "s3://bucket/x", "--allow-write")
    assert_error(r, "s3://bucket/x is a remote", "read-only", code=2)
    # --refresh was taken and ignored for a repository, which each page reads anew
    r = run(repo.root, "ui", ".", "--refresh", "5")
    assert_error(r, "--refresh goes with a remote SOURCE, and . is a repository", code=2)


def test_the_dashboard_changed_nothing(server: Server, repo: Repo) -> None:
    def scratch() -> set[str]:
        return {p.name for p in (repo.root / ".dvfs").iterdir() if p.name.startswith("rows-")}

    api(server, "preview", rev="v2", path="data/train.csv")
    kept = scratch()  # the server's copies of previewed tables, while it runs
    api(server, "rows", old="v1", new="v2", path="data/train.csv")
    assert scratch() == kept  # the row diff removed its own
    fsck_clean(repo.root)


def test_a_read_only_dashboard_refuses_every_action(server: Server, repo: Repo) -> None:
    assert csrf_of(server) is None
    a = post(f"{server.base}api/actions/tag", {"name": "nope", "rev": "v1"})
    assert a.status == 403 and "--allow-write" in a.json()["error"]
    assert "nope" not in repo.json("tag", "--json")


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Repo]]:
    """A dashboard with --allow-write over a repository of its own (branches side at v2
    and other at v1), shared by the tests of its actions: one that changes a ref puts it
    back as it was before it ends."""
    repo = Repo(make_repo(tmp_path_factory.mktemp("writable") / "repo"))
    repo.ok("branch", "side", "v2")
    repo.ok("branch", "other", "v1")
    with serving(repo.root, "--allow-write") as s:
        yield s, repo


def test_actions_need_the_pages_csrf_token(writable: tuple[Server, Repo]) -> None:
    server, repo = writable
    token = csrf_of(server)
    assert token is not None and len(token) >= 32
    url = f"{server.base}api/actions/tag"
    body = {"name": "gold", "rev": "v2"}
    refused = [
        post(url, body),  # no token: what a form on another site would send
        post(url, body, {"X-DVFS-CSRF": ("y" if token[0] == "x" else "x") + token[1:]}),
        post(url, body, {"X-DVFS-CSRF": token, "Origin": "http://evil.example"}),
        post(url, body, {"X-DVFS-CSRF": token, "Sec-Fetch-Site": "cross-site"}),
        post(url, b"name=gold&rev=v2",
             {"X-DVFS-CSRF": token, "Content-Type": "application/x-www-form-urlencoded"}),
    ]  # fmt: skip
    assert [a.status for a in refused] == [403] * 5
    assert get(f"{url}?name=gold&rev=v2").status == 405  # a GET changes nothing
    assert repo.json("tag", "--json") == [{"name": "base", **_ref(repo, "v1")}]
    ours = {"X-DVFS-CSRF": token, "Origin": server.base.rstrip("/")}
    bad = post(url, {"name": "../heads/x", "rev": "v2"}, ours)
    assert bad.status == 400 and "not a valid tag name" in bad.json()["error"]
    assert post(url, {"name": "gold", "rev": "v9"}, ours).status == 404
    # a tag beside its own folder is refused as `dvfs tag` refuses it, not a server fault
    beside = post(url, {"name": "base/x", "rev": "v2"}, ours)
    assert beside.status == 409
    assert beside.json()["error"] == (
        "base/x cannot be made: base exists, and a name cannot be both a ref and the "
        "folder of others"
    )
    assert post(url, [1, 2], ours).status == 400
    assert post(f"{server.base}api/actions/rm", {}, ours).status == 404
    fsck_clean(repo.root)


def _ref(repo: Repo, rev: str) -> dict[str, str]:
    v = repo.json("show", rev, "--json")
    return {"version": v["version"], "id": v["id"]}


def test_actions_are_the_cli_commands_and_audited(writable: tuple[Server, Repo]) -> None:
    server, repo = writable
    ours = {"X-DVFS-CSRF": csrf_of(server) or ""}
    a = post(f"{server.base}api/actions/tag", {"name": "gold", "rev": "v2"}, ours)
    assert a.status == 200, a.body
    assert a.json()["tagged"] == {"name": "gold", **_ref(repo, "v2")}
    assert {"name": "gold", **_ref(repo, "v2")} in repo.json("tag", "--json")
    again = post(f"{server.base}api/actions/tag", {"name": "gold", "rev": "v1"}, ours)
    assert again.status == 409  # (it said "with --delete", a flag the page does not have)
    assert again.json()["error"] == "tag gold already exists: delete it first (`dvfs tag -d gold`)"
    twin = post(f"{server.base}api/actions/tag", {"name": "other", "rev": "v1"}, ours)
    assert twin.status == 409 and "would share its name with branch other" in twin.json()["error"]
    current = post(f"{server.base}api/actions/delete-branch", {"name": "main"}, ours)
    assert current.status == 400 and "current branch" in current.json()["error"]
    gone = post(f"{server.base}api/actions/delete-branch", {"name": "side"}, ours)
    assert gone.status == 200 and gone.json()["deleted"] == {"name": "side", **_ref(repo, "v2")}
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main", "other"]
    missing = post(f"{server.base}api/actions/delete-branch", {"name": "side"}, ours)
    assert missing.status == 400 and "no branch named side" in missing.json()["error"]
    entries = repo.json("audit", "--json")
    assert [(e["op"], e["ref"], e["cmd"]) for e in entries[-2:]] == [
        ("tag create", "refs/tags/gold", ["dvfs", "ui", "tag", "gold", "v2"]),
        ("branch delete", "refs/heads/side", ["dvfs", "ui", "branch", "-d", "side"]),
    ]
    assert repo.json("audit", "verify", "--json")["intact"]
    repo.ok("tag", "-d", "gold")  # (as the shared repository was)
    repo.ok("branch", "side", "v2")
    fsck_clean(repo.root)


def test_delete_branch_refuses_a_branch_holding_versions_of_its_own(
    writable: tuple[Server, Repo],
) -> None:
    """The dashboard deleted a branch whose versions nothing else held, as `dvfs
    branch -d` did; both refuse it now, and ``force`` deletes it as `-D` does."""
    server, repo = writable
    ours = {"X-DVFS-CSRF": csrf_of(server) or ""}
    repo.ok("branch", "spike", "v2")
    repo.ok("checkout", "spike")
    repo.write("spike.txt", "s")
    add_in_process(repo, "spike.txt")
    repo.ok("switch", "-c", "spike-tmp")
    spike = repo.commit("spike")
    repo.ok("branch", "-f", "spike", spike)
    repo.ok("switch", "main")
    repo.ok("branch", "-d", "spike-tmp")
    url = f"{server.base}api/actions/delete-branch"
    refused = post(url, {"name": "spike"}, ours)
    assert refused.status == 400, refused.body
    assert refused.json()["error"].startswith(f"branch spike holds a version (v3 {spike[:10]})")
    assert post(url, {"name": "spike", "force": "yes"}, ours).status == 400
    assert repo.show("spike")["id"] == spike
    gone = post(url, {"name": "spike", "force": True}, ours)
    assert gone.status == 200 and gone.json()["deleted"]["id"] == spike
    entry = repo.json("audit", "--json")[-1]
    assert (entry["op"], entry["cmd"]) == ("branch delete", ["dvfs", "ui", "branch", "-D", "spike"])
    fsck_clean(repo.root)


def test_a_remote_read_without_cloning_it(
    repo: Repo, s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dvfs ui s3://...`: the pushed versions, files and previews, read from SeaweedFS;
    what needs a repository's own store says so; nothing can be written."""
    url = f"s3://{s3_env.make_prefix()}/project"
    push_to(Repository(repo.root), url, "s3", s3_env.endpoint)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(url, "--endpoint-url", s3_env.endpoint, cwd=tmp_path) as s:
        log = api(s, "versions")
        assert log["source"] == url and log["remote"] is True
        assert log["versions"] == repo.json("log", "--json")
        assert log["tags"] == ["base"] and log["current_branch"] == "main"
        assert api(s, "version", rev="v2")["message"] == "edited rows, a pipeline"
        t = api(s, "preview", rev="v2", path="data/train.csv", offset=4, limit=1)
        assert t["rows"] == [[4, "paris", 0.5]] and t["total"] == 301
        raw = get(f"{s.base}api/raw?rev=v1&path=data/huge.bin")
        assert raw.status == 200 and raw.body == repo.run("cat", "v1:data/huge.bin").raw
        status, body = status_of(s, "store")
        assert status == 400 and "clone" in body["error"]
        assert csrf_of(s) is None
        assert post(f"{s.base}api/actions/tag", {"name": "x"}).status == 403
    assert_error(
        run(tmp_path, "ui", url, "--endpoint-url", s3_env.endpoint, "--allow-write"),
        "read-only", code=2,
    )  # fmt: skip
    assert [r["name"] for r in repo.json("tag", "--json")] == ["base"]


def test_a_directory_remote(repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dvfs ui DIR` on a directory that holds a remote (no .dvfs): a remote's view."""
    where = tmp_path / "remote"
    push_to(Repository(repo.root), str(where), "dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(where) as s:
        log = api(s, "versions")
        assert log["remote"] is True and log["source"] == str(where)
        assert [v["id"] for v in log["versions"]] == [v["id"] for v in repo.json("log", "--json")]
        text = api(s, "preview", rev="v2", path="data/notes.txt")
        assert text["text"] == "hello\nworld\nmore\n"
        # metrics files are read from the remote, as the previews are
        assert api(s, "experiments")["rows"] == repo.json("compare", "--json")
        status, body = status_of(s, "audit")
        assert status == 400 and body["error"] == (
            f"a view of the remote {where} shows no audit log: `dvfs clone` it and run "
            "`dvfs ui` in the clone"
        )
    assert not (where / ".dvfs").exists()  # the remote's directory is not made a repository


def test_a_remote_view_follows_new_pushes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`dvfs ui DIR --refresh 0`: a version pushed after the server started shows on the
    next versions page; a remote gone missing leaves the view as it was, saying why."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.txt").write_text("one\n")
    run(src, "init")
    run(src, "add", "a.txt")
    run(src, "commit", "-m", "first")
    where = tmp_path / "remote"
    push_to(Repository(src), str(where), "dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(where, "--refresh", "0") as s:
        before = api(s, "versions")
        assert [v["message"] for v in before["versions"]] == ["first"]
        assert before["refresh_error"] is None and before["as_of"]
        (src / "a.txt").write_text("two\n")
        run(src, "add", "a.txt")
        run(src, "commit", "-m", "second")
        push_to(Repository(src), str(where), "dir")
        after = api(s, "versions")
        assert [v["message"] for v in after["versions"]] == ["second", "first"]
        assert api(s, "preview", rev="v2", path="a.txt")["text"] == "two\n"
        where.rename(tmp_path / "moved")
        gone = api(s, "versions")
        assert [v["message"] for v in gone["versions"]] == ["second", "first"]
        assert gone["refresh_error"] and gone["as_of"] == after["as_of"]
    (tmp_path / "moved").rename(where)
    fsck_clean(src)


def test_a_name_that_is_not_utf8_is_previewed_and_downloaded(tmp_path: Path) -> None:
    """The listing gives such a name as ``--json`` does (a byte as a lone surrogate);
    the page sends the byte back as %XX, which must name the file, not U+FFFD."""
    root = tmp_path / "latin"
    Repository.init(root)
    (root / os.fsdecode(b"caf\xe9")).mkdir()
    (root / os.fsdecode(b"caf\xe9/cr\xe8me.txt")).write_bytes(b"bonjour\n")
    r = Repo(root)
    add_in_process(r, ".")
    r.commit("latin-1 names")
    with serving(root) as s:
        listing = get(f"{s.base}api/files?rev=v1&dir=caf%E9").json()
        assert [e["path"] for e in listing["entries"]] == [os.fsdecode(b"caf\xe9/cr\xe8me.txt")]
        shown = get(f"{s.base}api/preview?rev=v1&path=caf%E9/cr%E8me.txt")
        assert shown.status == 200 and shown.json()["text"] == "bonjour\n"
        raw = get(f"{s.base}api/raw?rev=v1&path=caf%E9/cr%E8me.txt")
        assert raw.status == 200 and raw.body == b"bonjour\n"
        assert raw.headers["content-disposition"] == (
            "attachment; filename*=UTF-8''cr%EF%BF%BDme.txt"
        )
        # U+FFFD is a name of its own, not the byte
        assert get(f"{s.base}api/preview?rev=v1&path=caf%EF%BF%BD/cr%E8me.txt").status == 404
        changed = get(f"{s.base}api/versions?path=caf%E9").json()
        assert [v["version"] for v in changed["versions"]] == ["v1"]
    r.fsck_clean()


def test_a_download_of_data_not_pulled_comes_from_the_remote(repo: Repo, tmp_path: Path) -> None:
    """A partial clone: a version's file whose chunks are not in the local store is
    downloaded from the remote, as `dvfs cat` downloads it (it was refused with
    "`dvfs pull` it"), and a preview of a table it lacks is shown."""
    where = tmp_path / "remote"
    push_to(Repository(repo.root), str(where), "partial")
    assert_ok(run(tmp_path, "clone", "--no-checkout", str(where), "clone"))
    with serving(tmp_path / "clone") as s:
        a = get(f"{s.base}api/raw?rev=v1&path=data/huge.bin")
        assert a.status == 200, a.body[:300]
        assert a.body == run(repo.root, "cat", "v1:data/huge.bin").raw
        shown = get(f"{s.base}api/preview?rev=v2&path=data/train.csv")
        assert shown.status == 200 and shown.json()["total"] == 301
    fsck_clean(tmp_path / "clone")


def _hanging_s3() -> tuple[socket.socket, threading.Event, list[socket.socket]]:
    """A loopback port that takes connections and never answers (an S3 endpoint that
    hangs), the event set once a connection came, and the connections."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    came = threading.Event()
    taken: list[socket.socket] = []

    def take() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            taken.append(conn)
            came.set()

    threading.Thread(target=take, daemon=True).start()
    return server, came, taken


def test_a_command_runs_while_the_dashboard_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A clone whose remote hangs: while the dashboard waits for an older version's
    data, a command that takes the repository lock runs at once (DVFS_LOCK_TIMEOUT=0:
    it would fail if the dashboard held the lock); the remote gone, the page says the
    remote did not answer, naming the file."""
    src = init_repo(tmp_path / "src")
    commit_files(src, {"a.txt": b"first\n"}, "first")
    commit_files(src, {"a.txt": b"second\n"}, "second")
    push_to(Repository(src.root), str(tmp_path / "remote"), "origin")
    clone = tmp_path / "clone"
    assert_ok(run(tmp_path, "clone", str(tmp_path / "remote"), "clone"))
    hang, came, taken = _hanging_s3()
    port = hang.getsockname()[1]
    assert_ok(run(clone, "remote", "remove", "origin", "--force"))
    assert_ok(run(clone, "remote", "add", "origin", "s3://bucket/project",
                  "--endpoint-url", f"http://127.0.0.1:{port}"))  # fmt: skip
    monkeypatch.setenv("DVFS_RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with serving(clone) as s:
        answers: list[tuple[int, Any]] = []
        asking = threading.Thread(
            target=lambda: answers.append(status_of(s, "preview", rev="v1", path="a.txt"))
        )
        asking.start()
        assert came.wait(60)  # the dashboard is downloading
        r = run(clone, "tag", "during", "v1", env={"DVFS_LOCK_TIMEOUT": "0"})
        assert_ok(r)
        hang.close()
        for conn in taken:
            conn.close()
        asking.join(60)
        [(status, body)] = answers
        assert status == 503, body
        said = body["error"]
        assert said.startswith("a.txt of v1: its data is not in the local store, and remote "
                               "origin (s3://bucket/project) did "
                               "not answer ("), said  # fmt: skip
        assert said.endswith("): reload when it answers"), said
    assert_ok(run(clone, "remote", "remove", "origin", "--force"))
    assert_ok(run(clone, "remote", "add", "origin", str(tmp_path / "remote")))
    assert_ok(run(clone, "fetch"))  # (what only the remote holds is known again)
    fsck_clean(clone)


def test_a_download_while_another_command_holds_the_lock_is_shown_then_stored(
    tmp_path: Path,
) -> None:
    """While another command holds the repository lock, the dashboard shows the data
    it downloaded (it does not wait for the lock, nor fail) and stores nothing; once
    the lock is free it stores it (at the latest as it stops), so that `dvfs cat
    --offline` reads it."""
    src = init_repo(tmp_path / "src")
    commit_files(src, {"a.txt": b"first\n"}, "first")
    commit_files(src, {"a.txt": b"second\n"}, "second")
    push_to(Repository(src.root), str(tmp_path / "remote"), "origin")
    clone = tmp_path / "clone"
    assert_ok(run(tmp_path, "clone", str(tmp_path / "remote"), "clone"))
    with serving(clone) as s, Repository(clone).locked():
        status, body = status_of(s, "preview", rev="v1", path="a.txt")
        assert (status, body.get("text")) == (200, "first\n"), body
        # (checked under the lock: once it is free, the store may be written)
        assert_error(run(clone, "cat", "--offline", "v1:a.txt"), "--offline")
    assert run(clone, "cat", "--offline", "v1:a.txt").raw == b"first\n"
    fsck_clean(clone)


def test_the_experiments_of_a_clone_whose_remote_is_gone_say_why_once(tmp_path: Path) -> None:
    """A clone whose remote was moved away lacks the metrics of v2 and v3: the
    experiments say why once for both, naming them and the remote (each said it, and
    200 versions made 200 notes)."""
    src = Repo(make_repo(tmp_path / "src"))
    (src.root / "params.yaml").write_text("train:\n  lr: 0.3\n")
    assert_ok(src.run("repro"))
    assert_ok(src.run("add", "."))
    src.commit("a larger rate")
    where = tmp_path / "remote"
    push_to(Repository(src.root), str(where), "origin")
    assert_ok(run(tmp_path, "clone", str(where), "clone"))
    where.rename(tmp_path / "moved")
    with opened(str(tmp_path / "clone")) as source:  # (the route: test_a_directory_remote)
        body = data.experiments(source.repo, get=source.get, fetcher=source.fetcher)
    [note] = body["notes"]
    assert note.startswith(
        f"v3, v2: its data is not in the local store, and remote origin ({where}) cannot give it"
    ), note
    assert note.endswith(": its metrics are not shown"), note
    assert body["rows"][0]["metrics"] == {"acc": 5.1, "loss": 0.0588}  # v4, checked out
    (tmp_path / "moved").rename(where)
    fsck_clean(tmp_path / "clone")


def test_a_name_with_a_newline_is_quoted_in_what_a_clone_cannot_download(
    tmp_path: Path,
) -> None:
    """An older version's file named with a newline, its remote gone: the error names
    it quoted, as the CLI prints it, not on two lines that read as two messages."""
    src = init_repo(tmp_path / "src")
    commit_files(src, {"a\nb.txt": b"first\n"}, "first")
    commit_files(src, {"a\nb.txt": b"second\n"}, "second")
    where = tmp_path / "remote"
    push_to(Repository(src.root), str(where), "origin")
    assert_ok(run(tmp_path, "clone", str(where), "clone"))
    where.rename(tmp_path / "moved")
    with serving(tmp_path / "clone") as s:
        status, body = status_of(s, "preview", rev="v1", path="a\nb.txt")
    assert status == 502, body
    assert body["error"].startswith('"a\\nb.txt" of v1: its data is not in the local store'), body
    (tmp_path / "moved").rename(where)
    fsck_clean(tmp_path / "clone")


def test_a_pack_lost_from_the_store_is_named_with_the_file(tmp_path: Path) -> None:
    """A pack of the repository's own store gone while the server runs: the preview
    names the file and its version, and says what to do."""
    root = tmp_path / "lost"
    Repository.init(root)
    (root / "a.txt").write_text("hello\n")
    r = Repo(root)
    add_in_process(r, "a.txt")
    r.commit("first")
    with serving(root) as s:
        packs = sorted((root / ".dvfs" / "objects").glob("*.pack"))
        for p in packs:
            p.rename(p.with_suffix(".away"))
        status, body = status_of(s, "preview", rev="v1", path="a.txt")
        assert status == 500
        assert "is not in the local store (needed by a.txt of v1): `dvfs pull`" in body["error"]
        for p in packs:
            p.with_suffix(".away").rename(p)
    r.fsck_clean()


def test_a_stop_sent_as_soon_as_the_url_is_out_ends_the_dashboard_cleanly(
    tmp_path: Path,
) -> None:
    """SIGTERM the moment ``dvfs ui`` has printed its URL (a script, a service manager)
    ends it as one sent later does: exit 0, nothing on stderr but what it says."""
    root = init_repo(tmp_path / "repo").root
    for _ in range(3):
        with serving(root):  # leaving the block sends SIGTERM; exit 0 is checked there
            pass


def test_a_stop_cuts_a_download_under_way(tmp_path: Path) -> None:
    """SIGTERM (as Ctrl-C) while a download is under way whose client reads nothing
    more: the server cuts it and exits 0, instead of waiting for it without a word."""
    root = tmp_path / "big"
    Repository.init(root)
    (root / "zeros.bin").write_bytes(bytes(32 << 20))  # more than the sockets' buffers
    r = Repo(root)
    add_in_process(r, "zeros.bin")
    r.commit("zeros")
    client = socket.socket()
    try:
        with serving(root) as s:
            where = urllib.parse.urlsplit(s.base)
            client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.connect((where.hostname, where.port))
            request = b"GET /api/raw?rev=v1&path=zeros.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            client.sendall(request)
            assert client.recv(12) == b"HTTP/1.1 200"
        # (leaving `serving` stopped the server, which exited 0 with nothing on stderr)
    finally:
        client.close()
    r.fsck_clean()


def test_an_actions_bad_argument_is_named_with_what_is_wrong(
    writable: tuple[Server, Repo],
) -> None:
    server, repo = writable
    ours = {"X-DVFS-CSRF": csrf_of(server) or ""}
    for body, said in [
        ({"rev": "v1"}, "name is missing: give it in the action's JSON body"),
        ({"name": 5}, "name must be text, not 5"),
        ({"name": "x", "rev": "v1\0"}, "rev may not hold a NUL character"),
        ({"name": "x", "rev": "v" * 2000}, "rev is longer than 1024 characters"),
    ]:
        a = post(f"{server.base}api/actions/tag", body, ours)
        assert (a.status, a.json()["error"]) == (400, said)
    # a body nested past what the parser takes (within the 64 KiB a body may hold) was a
    # 500 "internal error (RecursionError ...)" and a traceback in the server's log
    deep = post(f"{server.base}api/actions/tag", b"[" * 30_000 + b"]" * 30_000, ours)
    assert (deep.status, deep.json()) == (400, {"error": "an action's body is a JSON object"})
    assert [t["name"] for t in repo.json("tag", "--json")] == ["base"]
    fsck_clean(repo.root)


def test_a_version_gc_deleted_while_its_page_is_open_is_not_tagged(tmp_path: Path) -> None:
    """A version's page open, its branch deleted and `dvfs gc` run meanwhile: "Tag this
    version" is refused as `dvfs tag` would refuse it, not a tag of a version no
    longer stored (which `dvfs fsck` would find)."""
    r = init_repo(tmp_path / "gc")
    commit_files(r, {"a.txt": b"one\n"}, "first")
    r.ok("branch", "exp")
    r.ok("switch", "exp")
    exp = commit_files(r, {"b.txt": b"exp\n"}, "on exp")
    r.ok("switch", "main")
    with serving(r.root, "--allow-write") as s:
        assert api(s, "version", rev=exp)["message"] == "on exp"
        r.ok("branch", "-D", "exp")
        r.ok("gc")
        a = post(f"{s.base}api/actions/tag", {"name": "keep", "rev": exp},
                 {"X-DVFS-CSRF": csrf_of(s) or ""})  # fmt: skip
        assert a.status == 404 and a.json()["error"].startswith(f"unknown revision {exp}")
    assert r.json("tag", "--json") == []
    r.fsck_clean()


def _flip_middle(pack: Path) -> None:
    data = bytearray(pack.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pack.write_bytes(bytes(data))


def test_a_damaged_chunk_is_named_with_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A byte flipped in the data of a file, in a remote (its view) and in the
    repository's own store: the download names the file and its version; the
    remote's is a 502 that does not send the user to `dvfs fsck`, which has no
    repository to check there."""
    r = init_repo(tmp_path / "src")
    commit_files(r, {"b.bin": os.urandom(300_000)}, "random")
    where = tmp_path / "remote"
    push_to(Repository(r.root), str(where), "dir")
    [pack] = (where / "packs").iterdir()
    _flip_middle(pack)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(where) as s:
        a = get(f"{s.base}api/raw?rev=v1&path=b.bin")
        said = a.json()["error"]
        assert a.status == 502, said
        assert said.startswith("b.bin of v1 cannot be read from the remote (the copy of chunk ")
        assert f"in {where} is damaged (" in said and "fsck" not in said, said
    [own] = [p for p in (r.root / ".dvfs" / "objects").glob("*.pack") if p.stat().st_size > 1000]
    _flip_middle(own)
    with serving(r.root) as s:
        a = get(f"{s.base}api/raw?rev=v1&path=b.bin")
        said = a.json()["error"]
        assert a.status == 500 and ", needed by b.bin of v1): run `dvfs fsck`" in said, said
    _flip_middle(own)  # back as it was
    r.fsck_clean()


def test_a_repository_this_user_may_only_read_previews_its_tables(tmp_path: Path) -> None:
    """A repository whose files are not writable by the user running `dvfs ui` (or
    `dvfs diff --rows`): a table's preview and row diff need no write to it. It was a
    500 "internal error (PermissionError ...)" with a traceback in the server's log."""
    r = init_repo(tmp_path / "theirs")
    commit_files(r, {"t.csv": b"id,v\n1,a\n2,b\n"}, "first")
    commit_files(r, {"t.csv": b"id,v\n1,a\n2,c\n"}, "second")
    modes = {p: p.stat().st_mode for p in [r.root, *r.root.rglob("*")] if not p.is_symlink()}
    for p, mode in modes.items():
        p.chmod(mode & ~0o222)
    try:
        with serving(r.root, unprivileged=True) as s:
            t = api(s, "preview", rev="v2", path="t.csv")
            assert t["rows"] == [[1, "a"], [2, "c"]] and t["total"] == 2
        rows = subprocess.run(
            cli_command("diff", "v1", "v2", "t.csv", "--rows", "--key", "id"), cwd=r.root,
            env=cli_env(), capture_output=True, text=True, check=False,
            preexec_fn=drop_file_override,
        )  # fmt: skip
        assert rows.returncode == 0 and "1 changed" in rows.stdout, rows.stderr
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
    assert not [p for p in (r.root / ".dvfs").iterdir() if p.name.startswith("rows-")]
    r.fsck_clean()


def commit_a_run(r: Repo, script: str, message: str) -> None:
    """``dvfs run`` of stage ``s``, ``python3 make.py`` running ``script`` (which writes
    ``metrics.json`` and its per-step history), then all of it committed."""
    r.write("make.py", script)
    r.ok("run", "-n", "s", "-d", "make.py", "-m", "metrics.json", "--", "python3", "make.py")
    add_in_process(r, ".")
    r.commit(message)


def test_a_step_history_line_nested_too_deep_is_left_out_as_unreadable(tmp_path: Path) -> None:
    """A line of a per-step history nested 100,000 deep (RecursionError in the JSON
    parser) was an "internal error"; it is counted in skipped as any unreadable line."""
    r = init_repo(tmp_path / "deep")
    deep = "[" * 100_000 + "]" * 100_000
    script = (
        "import json; json.dump({'acc': 1}, open('metrics.json', 'w')); "
        f"open('metrics.steps.jsonl', 'w').write('{{\"step\": 0, \"acc\": 0.5}}\\n' + '{deep}\\n')"
    )
    commit_a_run(r, script, "deep")
    with opened(str(r.root)) as source:
        [f] = data.steps(source.repo, source.get, "v1", need=source.need)["files"]
    assert (f["rows"], f["skipped"]) == ([{"step": 0, "acc": 0.5}], 1)
    r.fsck_clean()


def test_a_step_history_whose_bytes_are_not_its_digest_is_not_plotted(tmp_path: Path) -> None:
    """A version whose per-step history of several chunks claims a digest its bytes do
    not have (a forged record; each chunk is its id): /api/steps plotted its rows as
    that version's. It fails with one line naming the file, as one whose chunks cannot
    be read does; the true version's history is plotted. (Its 10,000 lines hold 4 MB,
    a text beside each step's value, not a number to plot: several chunks.)"""
    r = init_repo(tmp_path / "lie")
    script = (
        "import json; json.dump({'acc': 1}, open('metrics.json', 'w'))\n"
        "with open('metrics.steps.jsonl', 'w') as f:\n"
        "    for i in range(10_000):\n"
        "        f.write(json.dumps({'step': i, 'acc': i / 7, 'note': 'x' * 360}) + '\\n')\n"
    )
    commit_a_run(r, script, "steps")
    store = Repository(r.root)
    head = store.history.head_id()
    assert head is not None
    lie = forge_digest(store, head, b"metrics.steps.jsonl", bytes(32))
    store.refs.update("refs/tags/lie", lie, None)
    store.close()
    with serving(r.root) as s:
        got = get(f"{s.base}api/steps?rev=lie&limit=1")
        assert got.status == 500, got.body[:500]
        error = got.json()["error"]
        assert "metrics.steps.jsonl of v2: its bytes hash to" in error, error
        assert error.endswith("(a forged or damaged record): not plotted"), error
        [f] = api(s, "steps", rev="v1", limit=1)["files"]
        assert f["total"] == 10_000 and f["rows"] == [{"step": 9_999, "acc": 9_999 / 7}]
    assert "Traceback" not in s.stderr, s.stderr
    r.ok("tag", "-d", "lie")
    r.fsck_clean()


def test_steps_of_a_version_naming_many_histories_reads_a_bounded_few(tmp_path: Path) -> None:
    """A version whose pipeline names 40 metrics files, each with a history of the same
    chunks (nothing to its maker), had /api/steps read and answer every one: a forged
    version naming thousands kept the server busy for hours. At most 32 are read, and
    ``more`` counts the rest, each of which ``path`` still reads."""
    r = init_repo(tmp_path / "many")
    names = [f"m{i:02}.json" for i in range(40)]
    script = (
        "import json\n"
        f"for n in {names!r}:\n"
        "    json.dump({'acc': 1}, open(n, 'w'))\n"
        "    open(n[:-5] + '.steps.jsonl', 'w').write('{\"step\": 0, \"acc\": 0.5}\\n')\n"
    )
    r.write("make.py", script)
    metrics = [a for n in names for a in ("-m", n)]
    r.ok("run", "-n", "s", "-d", "make.py", *metrics, "--", "python3", "make.py")
    add_in_process(r, ".")
    r.commit("many")
    with serving(r.root) as s:
        answer = api(s, "steps", rev="v1")
        assert len(answer["files"]) == 32 and answer["more"] == 8
        assert [f["rows"] for f in answer["files"]] == [[{"step": 0, "acc": 0.5}]] * 32
        [last] = api(s, "steps", rev="v1", path="m39.steps.jsonl")["files"]
        assert last["rows"] == [{"step": 0, "acc": 0.5}]
    r.fsck_clean()


def test_a_step_history_value_too_large_for_a_float_is_left_out(tmp_path: Path) -> None:
    """A per-step value of 400 digits (an int JSON reads, but no float holds) made
    /api/steps an "internal error" (OverflowError); it is left out as a value that is
    not a finite number is, and the rest of its line is kept."""
    r = init_repo(tmp_path / "huge")
    script = (
        "import json; json.dump({'acc': 1}, open('metrics.json', 'w')); "
        "open('metrics.steps.jsonl', 'w').write("
        '\'{"step": 0, "acc": 0.5}\\n\''
        "'{\"step\": 1, \"acc\": 0.6, \"loss\": ' + '9' * 400 + '}\\n')"
    )
    commit_a_run(r, script, "huge")
    with opened(str(r.root)) as source:
        [f] = data.steps(source.repo, source.get, "v1", need=source.need)["files"]
    assert f["rows"] == [{"step": 0, "acc": 0.5}, {"step": 1, "acc": 0.6}]
    assert (f["metrics"], f["skipped"]) == (["acc"], 0)
    r.fsck_clean()


def test_a_step_history_line_whose_step_is_true_has_no_step(tmp_path: Path) -> None:
    """A per-step history line ``{"step": true, ...}`` was plotted at step true (JSON's
    true is a Python bool, and a bool is an int): a step is a whole number, and any
    other value of ``step`` (a text, a fraction) is no step: so is true."""
    r = init_repo(tmp_path / "truth")
    lines = ['{"step": 0, "acc": 0.5}', '{"step": true, "acc": 0.6}', '{"step": 2, "acc": 0.7}']
    script = (
        "import json; json.dump({'acc': 1}, open('metrics.json', 'w')); "
        f"open('metrics.steps.jsonl', 'w').write({chr(10).join(lines) + chr(10)!r})"
    )
    commit_a_run(r, script, "truth")
    with opened(str(r.root)) as source:
        [f] = data.steps(source.repo, source.get, "v1", need=source.need)["files"]
    assert f["rows"] == [
        {"step": 0, "acc": 0.5}, {"step": None, "acc": 0.6}, {"step": 2, "acc": 0.7},
    ]  # fmt: skip
    r.fsck_clean()


def test_a_link_to_a_version_pushed_since_opens_in_a_remotes_view(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote's view looks for new pushes when its versions page is older than
    --refresh (30 s); a link to a version pushed since (sent by whoever pushed it)
    answered "unknown revision" meanwhile. It now looks again and shows it."""
    src = init_repo(tmp_path / "src")
    commit_files(src, {"a.txt": b"one\n"}, "first")
    where = tmp_path / "remote"
    push_to(Repository(src.root), str(where), "dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(where) as s:
        assert [v["message"] for v in api(s, "versions")["versions"]] == ["first"]
        second = commit_files(src, {"a.txt": b"two\n"}, "second")
        push_to(Repository(src.root), str(where), "dir")
        assert api(s, "version", rev=second)["message"] == "second"
        assert api(s, "preview", rev=second, path="a.txt")["text"] == "two\n"
        status, body = status_of(s, "version", rev="f" * 64)
        assert status == 404 and body["error"].startswith("unknown revision")
    src.fsck_clean()


def test_help_names_every_page_and_action(tmp_path: Path) -> None:
    """`dvfs ui --help` left out the Mounts page and its Snapshot action, which
    docs/ui.md lists with the rest."""
    said = " ".join(assert_ok(run(tmp_path, "ui", "--help")).out.split())
    assert "the store and the repository's mounts" in said
    assert "tag versions, delete branches and snapshot mounts" in said


def test_a_link_asked_for_as_a_directory_is_named_a_link(tmp_path: Path) -> None:
    """dir=LINK (a link to a directory, or out of the repository): refused as a link,
    not followed, where it said "LINK is a file"."""
    r = init_repo(tmp_path / "links")
    (r.root / "d").mkdir()
    (r.root / "d" / "f").write_text("x\n")
    os.symlink("d", r.root / "dl")
    os.symlink("/etc", r.root / "etc")
    add_in_process(r, ".")
    r.commit("links")
    # (the route answers a UsageError 400 with its message: test_bad_requests_get_one_message)
    with opened(str(r.root)) as source:
        for name, target in (("dl", "d"), ("etc", "/etc")):
            with pytest.raises(UsageError) as refused:
                data.files(source.repo, "v1", name.encode())
            assert str(refused.value) == (
                f"{name} is a link to {target}, not a directory (links are not followed): "
                "preview it instead"
            )
        with pytest.raises(UsageError) as refused:
            data.files(source.repo, "v1", b"d/f")
        assert str(refused.value) == "d/f is a file, not a directory: preview it instead"
    r.fsck_clean()


def test_a_version_gc_deleted_while_the_server_runs_is_unknown_to_its_pages(
    tmp_path: Path,
) -> None:
    """A version shown, its branch deleted and `dvfs gc` run meanwhile: the running
    dashboard says it is unknown (404), as `dvfs show` does, not the deleted version."""
    r = init_repo(tmp_path / "gone")
    commit_files(r, {"a.txt": b"one\n"}, "first")
    r.ok("branch", "exp")
    r.ok("switch", "exp")
    exp = commit_files(r, {"b.txt": b"exp\n"}, "on exp")
    r.ok("switch", "main")
    with serving(r.root) as s:
        assert api(s, "version", rev=exp)["message"] == "on exp"
        assert api(s, "files", rev=exp)["total"] == 2
        r.ok("branch", "-D", "exp")
        r.ok("gc")
        assert_error(r.run("show", exp), "unknown revision")
        status, body = status_of(s, "version", rev=exp)
        assert status == 404 and body["error"].startswith(f"unknown revision {exp}")
        assert status_of(s, "files", rev=exp)[0] == 404
        assert api(s, "version", rev="main")["message"] == "first"
    r.fsck_clean()


def test_experiments_and_the_names_of_refs_come_in_pages(
    server: Server, repo: Repo, tmp_path: Path
) -> None:
    """The experiments table is a page of `dvfs compare`'s rows (offset, limit, as
    /api/steps), and a versions page names at most 200 branches and 200 tags, the
    current and the asked-for one among them, with how many there are."""
    first = api(server, "experiments", limit=2)
    compared = repo.json("compare", "--json")
    assert first["rows"] == compared[:2] and first["total"] == 3
    assert api(server, "experiments", offset=2, limit=2)["rows"] == compared[2:]
    assert api(server, "experiments", limit=50_000)["limit"] == 1000
    assert status_of(server, "experiments", limit=0)[0] == 400
    r = init_repo(tmp_path / "many")
    tip = bytes.fromhex(commit_files(r, {"a.txt": b"one\n"}, "first"))
    handle = Repository(r.root)
    made = [(f"refs/{kind}/{c}{i:03}", tip, None) for kind, c in (("heads", "x"), ("tags", "t"))
            for i in range(250)]  # fmt: skip
    assert handle.refs.update_many(made) == {}  # (one fsync of each folder, not 500)
    handle.store.close()
    with serving(r.root) as s:
        page = api(s, "versions", branch="x249", tag="t249")
        assert (page["branches_total"], page["tags_total"]) == (251, 250)
        assert len(page["branches"]) == 201 and {"main", "x249"} <= set(page["branches"])
        assert len(page["tags"]) == 201 and page["tags"][-1] == "t249"
        assert [v["version"] for v in page["versions"]] == ["v1"]
    r.fsck_clean()


@contextlib.contextmanager
def previews(root: Path) -> Iterator[Callable[..., dict[str, Any]]]:
    """``files.preview`` of the repository at ``root``, the tables it reads kept for
    their next pages as the server keeps them (one ``TablePreviews``), until the block
    ends: for a test of what a page holds, where the HTTP route is another's."""
    repo = Repository(root)
    tables = files.TablePreviews(repo.dir) if files.TablePreviews is not None else None
    try:
        yield lambda path, **kw: files.preview(repo, "v1", path.encode(), tables=tables, **kw)
    finally:
        if tables is not None:
            tables.close()
        repo.close()


def test_a_wide_table_is_previewed_page_by_page_of_its_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A CSV of 500 columns (five pages of them): the first, a middle and the last page
    of its columns hold their own values (read as the first columns of each row, the
    rest skipped), quoted fields included; one with a row a field short past the first
    bytes the dialect is detected on (``SNIFF_BYTES``, here 64 KiB) is still refused as
    a table."""
    r = init_repo(tmp_path / "wide")
    n = 500
    head = ",".join(f"c{i}" for i in range(n))
    rows = "\n".join(",".join(str(k * 10_000 + i) for i in range(n)) for k in range(120))
    quoted = ",".join(f'"v,{i}"' if i % 7 == 0 else str(i) for i in range(n))
    short = ",".join(str(i) for i in range(n - 1))
    commit_files(r, {
        "wide.csv": f"{head}\n{rows}\n".encode(),
        "quoted.csv": f"{head}\n{quoted}\n{quoted}\n".encode(),
        "short.csv": f"{head}\n{rows}\n{short}\n".encode(),
    }, "wide")  # fmt: skip
    assert len(rows) > 6 * SNIFF  # (the short row is past the sample)
    with monkeypatch.context() as m, previews(r.root) as preview:
        m.setattr(table_engine, "SNIFF_BYTES", SNIFF)
        for at in (0, 250, 400, 450):
            p = preview("wide.csv", column_offset=at, offset=118, limit=5)
            shown = list(range(at, min(at + 100, n)))
            assert (p["kind"], p["total"], p["total_columns"]) == ("table", 120, n)
            assert [c["name"] for c in p["columns"]] == [f"c{i}" for i in shown]
            assert p["rows"] == [[k * 10_000 + i for i in shown] for k in (118, 119)]
        q = preview("quoted.csv", column_offset=400)
        assert q["rows"][1] == [f"v,{i}" if i % 7 == 0 else i for i in range(400, n)]
        bad = preview("short.csv", column_offset=100)
        assert bad["kind"] == "text" and "Expected Number of Columns" in bad["note"]
    r.fsck_clean()


def test_a_wide_tables_first_rows_come_before_its_rows_are_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Counting a wide CSV's rows checks every row's width (0.7 s for 20,000 columns),
    and the first page waited on it. Asked with ``count=later``, the rows come first,
    ``total`` null, when the lines they lie in hold as many fields as the header; the
    count, asked for next, still refuses a row of another width further on (past the
    part of the file its dialect is detected on, ``SNIFF_BYTES``, here 64 KiB, where it
    would make no table). Rows whose width is not proven so (a page holding that row,
    quoted fields) are counted first. (``count=later`` over HTTP:
    test_previews_are_bounded_and_typed.)"""
    r = init_repo(tmp_path / "lazy")
    n = 300
    head = ",".join(f"c{i}" for i in range(n))
    rows = [",".join(str(k * 1000 + i) for i in range(n)) for k in range(80)]
    short = ",".join(str(i) for i in range(n - 1))
    quoted = ",".join(f'"v,{i}"' if i % 7 == 0 else str(i) for i in range(n))
    commit_files(r, {
        "wide.csv": "\n".join([head, *rows, ""]).encode(),
        "late.csv": "\n".join([head, *rows * 2, short, ""]).encode(),  # past the bytes sniffed
        "quoted.csv": "\n".join([head, quoted, quoted, ""]).encode(),
    }, "wide")  # fmt: skip
    assert len("\n".join(rows)) > 1.5 * SNIFF  # (the short row is past the sample)
    with monkeypatch.context() as m, previews(r.root) as preview:
        m.setattr(table_engine, "SNIFF_BYTES", SNIFF)
        first = preview("wide.csv", count=False, limit=5)
        assert (first["kind"], first["total"], first["total_columns"]) == ("table", None, n)
        assert first["rows"] == [[k * 1000 + i for i in range(100)] for k in range(5)]
        counted = preview("wide.csv", count=False, limit=5)
        assert counted["total"] is None  # not counted unless asked
        assert preview("wide.csv", limit=5)["total"] == 80
        assert preview("wide.csv", count=False)["total"] == 80
        late = preview("late.csv", count=False, limit=5)
        assert (late["kind"], late["total"]) == ("table", None)
        end = preview("late.csv", count=False, offset=158)
        assert end["kind"] == "text" and "Expected Number of Columns" in end["note"]
        refused = preview("late.csv", limit=5)
        assert refused["kind"] == "text" and "Expected Number of Columns" in refused["note"]
        q = preview("quoted.csv", count=False, column_offset=200)
        assert q["total"] == 2 and q["rows"][0][0] == 200
    r.fsck_clean()


def test_a_table_the_engine_cannot_read_is_named_as_the_user_knows_it(tmp_path: Path) -> None:
    """The preview's note said why the engine could not read a table naming the copy
    it read (``File '/…/.dvfs/rows-PID-…/preview-1.parquet' too small``), gone by
    then; it names the file and its version."""
    r = init_repo(tmp_path / "lies")
    commit_files(r, {
        "fake.parquet": b"id,v\n1,a\n", "bad.jsonl": b'{"a": 1}\n{bad json\n',
    }, "lies")  # fmt: skip
    repo = Repository(r.root)
    try:
        for path in ("fake.parquet", "bad.jsonl"):
            p = files.preview(repo, "v1", path.encode())
            assert p["kind"] == "text" and f"{path} in v1" in p["note"], p["note"]
            for leak in (".dvfs", "rows-", "preview-"):
                assert leak not in p["note"], p["note"]
    finally:
        repo.close()
    r.fsck_clean()


def test_a_utf16_table_is_named_as_the_row_diff_names_it(tmp_path: Path) -> None:
    """A UTF-16 CSV (Excel's "Unicode text") went to the engine, and the preview's note
    was DuckDB's decoding error; ``dvfs diff --rows`` says it is UTF-16 and how to
    convert it. The preview says so too, in the page's words."""
    r = init_repo(tmp_path / "utf16")
    commit_files(r, {"x.csv": "a,b\n1,2\n".encode("utf-16")}, "one")
    commit_files(r, {"x.csv": "a,b\n1,3\n".encode("utf-16")}, "two")
    cli = r.ok("diff", "v1", "v2", "x.csv", "--rows")
    assert "it is UTF-16 text, not UTF-8 (convert it with iconv -f UTF-16 -t UTF-8" in cli.out
    with previews(r.root) as preview:
        p = preview("x.csv")
    assert p["kind"] == "binary" and p["note"] == (
        "x.csv in v1 is not CSV: it is UTF-16 text, not UTF-8 (convert it with iconv "
        "-f UTF-16 -t UTF-8 to see its rows here): its first bytes"
    )
    r.fsck_clean()


def test_a_detached_head_has_no_current_branch(tmp_path: Path) -> None:
    """With HEAD detached at v1, the versions page said "current (main)" over v1's
    history while main stood at v2, and left main out of the branches it offered to
    delete, which `dvfs branch` shows as not current and `dvfs branch -d` deletes."""
    r = init_repo(tmp_path / "detached")
    commit_files(r, {"a.txt": b"1\n"}, "one")
    commit_files(r, {"a.txt": b"2\n"}, "two")
    r.ok("checkout", "v1")
    assert not any(b["current"] for b in r.json("branch", "--json"))
    with serving(r.root) as s:
        v = api(s, "versions")
        assert v["current_branch"] is None and [x["version"] for x in v["versions"]] == ["v1"]
        assert "main" in v["branches"]
        r.ok("switch", "main")  # (each page reads the repository as it is then)
        assert api(s, "versions")["current_branch"] == "main"
    r.fsck_clean()


def test_the_line_dvfs_ui_prints_quotes_the_repositorys_path(tmp_path: Path) -> None:
    """The repository's path went to the terminal as it is: an escape sequence or a
    bidirectional override in a directory's name acted on the terminal."""
    r = init_repo(tmp_path / "evil\x1b[2Jred\u202e")
    proc = subprocess.Popen(
        cli_command("ui", str(r.root), "--port", "0"), cwd=r.root, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert '/evil\\033[2Jred\\342\\200\\256" at http://127.0.0.1:' in line, line
    assert "\x1b" not in line and "\u202e" not in line
    r.fsck_clean()


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started that are running."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_the_work_started_beside_the_server_imports_nothing_from_the_repository(
    tmp_path: Path,
) -> None:
    """The process the dashboard starts beside itself (``vfs.ui.background``) ran
    ``python -m`` in the directory `dvfs ui` was run in, which Python puts first on
    the import path: a repository whose files hold ``vfs/__init__.py`` ran that code
    as soon as `dvfs ui` was started in it. It imports only dvfs's own (``-P``), as
    the mount's daemon does."""
    repo = Repo(make_repo(tmp_path / "repo"))
    marker = tmp_path / "ran"
    repo.write("vfs/__init__.py", f"open({str(marker)!r}, 'w').write('ran')\n")
    with serving(repo.root) as s:
        assert get(f"{s.base}api/versions").status == 200  # (serving: the work started)
        for pid in _children(s.proc.pid):  # wait for it to finish its work
            with contextlib.suppress(ProcessLookupError):
                fd = os.pidfd_open(pid)
                try:
                    assert select.select([fd], [], [], 120)[0], "the work never finished"
                finally:
                    os.close(fd)
    assert not marker.exists()
    repo.fsck_clean()
