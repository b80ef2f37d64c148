"""``dvfs ui`` in a real browser: headless Chromium (Debian's) driven by Playwright.

One server and one browser for the module; each test opens a fresh page, clicks
through as a person would and checks the text the page shows. A failing test leaves
a screenshot of its page in the artefacts directory (``DVFS_TEST_ARTEFACTS``, else a
temporary directory), named after the test.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shlex
import shutil
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect, sync_playwright

import vfs
from tests.support.cli import (
    Repo,
    add_in_process,
    assert_ok,
    commit_files,
    fsck_clean,
    init_repo,
    run,
    switch_in_process,
)
from tests.support.forge import forge_deep_pipeline
from tests.support.mount import RUNTIME, mounted, push_to
from tests.support.s3server import S3Server, use_aws_keys
from tests.support.ui import PREP, Server, csrf_of, get, make_repo, png, post, serving, write
from vfs.ops import browse
from vfs.pipeline import lineage
from vfs.repo.repository import Repository
from vfs.ui import data

CHROMIUM = "/usr/bin/chromium"  # Debian's package (scripts/bootstrap.sh installs it)
TIMEOUT_MS = 20_000  # the machine is shared: waits are long, and end on a condition
expect.set_options(timeout=TIMEOUT_MS)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    return Repo(make_repo(tmp_path_factory.mktemp("ui-browser") / "repo"))


@pytest.fixture(scope="module")
def server(repo: Repo) -> Iterator[Server]:
    with serving(repo.root) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("DVFS_TEST_ARTEFACTS")
    if where:
        Path(where).mkdir(parents=True, exist_ok=True)
        return Path(where)
    return tmp_path_factory.mktemp("ui-artefacts")


@pytest.fixture
def page(
    browser: Browser, server: Server, artefacts: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh page on the dashboard; errors in its scripts fail the test."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    failed = True
    try:
        yield pg
        failed = False
    finally:
        if failed or errors:
            shot = artefacts / f"{request.node.name}.png"
            pg.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        context.close()
    assert errors == []


def test_versions_then_a_file_and_its_preview(page: Page, server: Server, repo: Repo) -> None:
    ids = {v["version"]: v["id"] for v in repo.json("log", "--json")}
    page.goto(server.url)
    timeline = page.locator(".timeline")
    expect(timeline).to_contain_text("a smaller rate")
    expect(page.locator(".timeline .vlabel")).to_have_text(["v3", "v2", "v1"])
    expect(page.locator(".timeline li").nth(2)).to_contain_text("base")
    page.get_by_role("link", name="v2", exact=True).click()
    expect(page.locator("h1")).to_contain_text("Version v2")
    expect(page.locator("dl.fields")).to_contain_text("edited rows, a pipeline")
    # the counts come from /api/version/changes, asked for once the page is shown
    changes = page.locator("dl.fields dd.changes")
    expect(changes).to_have_text("since v1: 7 added, 3 modified, 0 removed, 0 renamed")
    expect(changes.get_by_role("link", name="since v1")).to_have_attribute(
        "href", f"#/diff?old={ids['v1']}&new={ids['v2']}"
    )
    page.locator("a.entry.dir", has_text="data/").click()
    expect(page.locator(".crumbs")).to_have_text("v2 / data")
    row = page.locator("table.listing tr").filter(
        has=page.get_by_role("link", name="train.csv", exact=True)
    )
    expect(row).to_contain_text("v2")  # added in
    row.get_by_role("link").click()
    preview = page.locator("section.preview")
    expect(preview).to_contain_text("CSV · 301 rows · 3 columns")
    expect(preview.locator("table.data tbody tr").nth(4)).to_have_text(
        re.compile(r"4\s*paris\s*0\.5")
    )
    preview.get_by_role("button", name=re.compile("^Next")).click()
    expect(preview.locator(".pager")).to_contain_text(re.compile(r"51\W100 of 301"))
    expect(preview.locator("table.data tbody tr").first).to_have_text(
        re.compile(r"^\s*50\s*oslo\s*0\.5")
    )
    download = preview.locator("a.download")
    assert "/api/raw?" in (download.get_attribute("href") or "")
    page.locator("a.entry", has_text="notes.txt").click()
    expect(page.locator("pre.text")).to_have_text("hello\nworld\nmore\n")
    page.locator("a.entry", has_text="blob.bin").click()
    expect(page.locator("pre.hex")).to_contain_text("00000000  00 01 02 03")


def test_text_previews_are_highlighted_by_their_kind(page: Page, server: Server) -> None:
    page.goto(server.url + "#/version?rev=v2&file=prep.py")
    code = page.locator("pre.text code")
    expect(code).to_have_class(re.compile(r"\blanguage-python\b"))
    expect(code.locator(".hljs-keyword").first).to_have_text("import")
    expect(code).to_have_text(PREP)  # the text itself is unchanged
    page.goto(server.url + "#/version?rev=v2&dir=data&file=data/notes.txt")
    plain = page.locator("pre.text code")
    expect(plain).to_have_text("hello\nworld\nmore\n")
    expect(plain).not_to_have_class(re.compile("hljs"))
    expect(plain.locator("span")).to_have_count(0)


def test_diff_two_versions_and_the_rows_of_a_table(page: Page, server: Server) -> None:
    page.goto(server.url)
    page.locator('input[data-version="v1"]').check()
    page.locator('input[data-version="v2"]').check()
    page.get_by_role("button", name="Diff selected").click()
    expect(page.locator("p.summary").first).to_contain_text("v1 → v2")
    changed = page.locator("tr.change", has_text="data/train.csv")
    expect(changed.locator("td.status")).to_have_text("modified")
    expect(page.locator("tr.change", has_text="prep.py").locator("td.status")).to_have_text("added")
    changed.get_by_role("button", name="rows").click()
    rows = page.locator("section.rowdiff")
    expect(rows).to_contain_text("2 added, 1 removed")
    rows.locator('input[name="key"]').fill("id")
    rows.get_by_role("button", name="Diff rows").click()
    expect(rows).to_contain_text("1 added, 0 removed, 1 changed, 299 unchanged")
    cell = rows.locator("td.cell-changed").first
    expect(cell.locator("del")).to_have_text("oslo")
    expect(cell.locator("ins")).to_have_text("paris")
    image = page.locator("tr.change", has_text="img/red.png")
    image.get_by_role("button", name="images").click()
    sides = page.locator(".images figure")
    expect(sides.locator("figcaption")).to_have_text(["old: v1", "new: v2"])
    page.wait_for_function(
        "() => [...document.querySelectorAll('.images img')]"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    widths = [sides.nth(i).locator("img").evaluate("i => i.naturalWidth") for i in (0, 1)]
    assert widths == [20, 24]


def test_a_key_the_rows_refuse_is_mended_in_place(page: Page, server: Server) -> None:
    """A key the row diff refused (one naming several rows, a column the file lacks)
    replaced the rows' section with the error alone, the key field gone: the error
    said to change the key, and there was nowhere left to."""
    page.goto(server.url + "#/diff?old=v1&new=v2&rows=data%2Ftrain.csv")
    rows = page.locator("section.rowdiff")
    expect(rows).to_contain_text("2 added, 1 removed")
    rows.locator('input[name="key"]').fill("city")
    rows.get_by_role("button", name="Diff rows").click()
    expect(rows.get_by_role("alert")).to_contain_text("the key city is not unique")
    key = rows.locator('input[name="key"]')
    expect(key).to_have_value("city")
    key.fill("id")
    key.press("Enter")
    expect(rows).to_contain_text("1 added, 0 removed, 1 changed, 299 unchanged")


def test_lineage_and_experiments(page: Page, server: Server) -> None:
    page.goto(server.url + "#/lineage?rev=v3")
    expect(page.locator("svg.dag .node")).to_have_count(2)
    expect(page.locator("svg.dag .edge")).to_have_count(1)
    expect(page.locator('svg.dag .edge[data-from="prep"][data-to="train"]')).to_have_count(1)
    assert page.evaluate("() => typeof window.dagre.layout") == "function"  # laid out by dagre

    def top(stage: str) -> float:
        moved = page.locator(f'svg.dag .node[data-stage="{stage}"]').get_attribute("transform")
        m = re.fullmatch(r"translate\(([-\d.]+),([-\d.]+)\)", moved or "")
        assert m, moved
        return float(m.group(2))

    assert top("train") > top("prep")  # a stage below the one whose output it reads
    page.locator('svg.dag .node[data-stage="train"]').click()
    detail = page.locator("section.stage-detail")
    expect(detail).to_contain_text("python3 train.py")
    expect(detail).to_contain_text("data/prep.txt")
    page.get_by_role("link", name="Experiments").click()
    table = page.locator("table.experiments")
    expect(table.locator("tbody tr")).to_have_count(3)
    table.locator('th[data-col="metric:acc"]').click()
    expect(table.locator("tbody tr td:first-child")).to_have_text(["v3", "v2", "v1"])
    table.locator('th[data-col="metric:acc"]').click()
    expect(table.locator("tbody tr td:first-child")).to_have_text(["v2", "v3", "v1"])
    chart = page.locator(".chart")
    expect(chart.locator(".u-title")).to_have_text("acc over versions")
    expect(chart.locator("canvas")).to_have_count(1)
    page.locator('select[name="metric"]').select_option("loss")
    expect(chart.locator(".u-title")).to_have_text("loss over versions")
    page.get_by_role("link", name="Store").click()
    expect(page.locator("h2", has_text="Audit log")).to_contain_text("intact")


def test_stages_and_sorted_columns_answer_the_keyboard(page: Page, server: Server) -> None:
    """A lineage stage took the focus (Tab) but Enter did nothing, and the experiments'
    columns sorted on a click only: nothing of either was open to the keyboard."""
    page.goto(server.url + "#/lineage?rev=v3")
    stage = page.get_by_role("button", name="stage train")
    stage.focus()
    page.keyboard.press("Enter")
    expect(page.locator("section.stage-detail")).to_contain_text("python3 train.py")
    page.get_by_role("button", name="stage prep").focus()
    page.keyboard.press(" ")
    expect(page.locator("section.stage-detail")).to_contain_text("Stage prep")
    page.goto(server.url + "#/experiments")
    table = page.locator("table.experiments")
    expect(table.locator("tbody tr")).to_have_count(3)
    table.get_by_role("button", name="acc").focus()
    page.keyboard.press("Enter")
    expect(table.locator("tbody tr td:first-child")).to_have_text(["v3", "v2", "v1"])
    expect(table.locator('th[data-col="metric:acc"]')).to_have_attribute("aria-sort", "ascending")
    page.keyboard.press("Enter")  # the focus stayed on the column just sorted
    expect(table.locator("tbody tr td:first-child")).to_have_text(["v2", "v3", "v1"])


def test_an_unknown_version_names_the_closest(page: Page, server: Server) -> None:
    page.goto(server.url + "#/version?rev=bsae")
    error = page.locator(".error")
    expect(error).to_contain_text("unknown revision bsae")
    error.get_by_role("link", name="base").click()
    expect(page.locator("h1")).to_contain_text("Version v1")


def test_a_page_number_that_is_no_number_is_refused_by_name(page: Page, server: Server) -> None:
    # Each page turned offset=abc into NaN and showed "offset must be ..., not 'NaN'"
    for route in ("versions?offset=abc", "store?offset=abc", "diff?old=v1&new=v3&offset=abc",
                  "version?rev=v1&dir=data&file=data/train.csv&roffset=abc"):  # fmt: skip
        page.goto(server.url + "#/" + route)
        error = page.locator(".error")
        expect(error).to_contain_text("offset must be a whole number, not 'abc'")
        expect(page.locator("main")).not_to_contain_text("NaN")
    page.goto(server.url + "#/versions?offset=1")
    expect(page.locator(".pager")).to_contain_text("2\u20133 of 3")  # (an en dash)


def test_tag_a_version_and_delete_a_branch_with_allow_write(page: Page, tmp_path: Path) -> None:
    """The actions of ``--allow-write``, clicked: each is the CLI command, audited."""
    repo = Repo(make_repo(tmp_path / "repo"))
    repo.ok("branch", "side", "v2")
    with serving(repo.root, "--allow-write") as s:
        page.goto(s.url + "#/version?rev=v2")
        expect(page.locator("h1")).to_contain_text("Version v2")
        form = page.locator("form.tag-form")
        form.locator('input[name="tag"]').fill("gold")
        form.get_by_role("button", name="Tag").click()
        expect(page.locator("h1 .badge.tag")).to_have_text("gold")
        # (the page is drawn again with the badge: the confirmation was wiped by it)
        expect(page.locator("form.tag-form .said")).to_have_text("tagged v2 as gold")
        page.goto(s.url + "#/version?rev=v1")  # said once, of that version alone
        expect(page.locator("h1")).to_contain_text("Version v1")
        expect(page.locator("form.tag-form .said")).to_have_text("")
        page.get_by_role("link", name="Versions").click()
        expect(page.locator(".timeline li").nth(1)).to_contain_text("gold")
        deleting = page.locator("form.delete-branch-form")
        deleting.locator("select").select_option("side")
        deleting.get_by_role("button", name="Delete branch").click()
        deleting.get_by_role("button", name="Really delete side?").click()
        expect(page.locator(".timeline li").nth(1)).not_to_contain_text("side")
        expect(page.locator("form.delete-branch-form option")).to_have_text(["branch…"])
    assert {"name": "gold", "version": "v2"}.items() <= repo.json("tag", "--json")[1].items()
    assert [b["name"] for b in repo.json("branch", "--json")] == ["main"]
    cmds = [e["cmd"] for e in repo.json("audit", "--json")[-2:]]
    assert cmds == [
        ["dvfs", "ui", "tag", "gold", v2_id(repo)],
        ["dvfs", "ui", "branch", "-d", "side"],
    ]
    fsck_clean(repo.root)


def test_two_dashboards_with_tokens_keep_each_their_own(page: Page, repo: Repo) -> None:
    """Cookies do not tell ports apart: the token cookie that opening a second
    dashboard's URL set replaced the first's, so the first dashboard's next page was
    "this dashboard needs its token" (and the second's token was sent to it). Each
    dashboard's cookie is named after its port now."""
    with (
        serving(repo.root, "--token", "first-token-0123456789") as first,
        serving(repo.root, "--token", "second-token-0123456789") as second,
    ):
        page.goto(first.url)
        expect(page.locator(".timeline .vlabel")).to_have_text(["v3", "v2", "v1"])
        other = page.context.new_page()
        other.goto(second.url)
        expect(other.locator(".timeline .vlabel")).to_have_text(["v3", "v2", "v1"])
        page.goto(first.base + "#/version?rev=v2")
        expect(page.locator("h1")).to_contain_text("Version v2")
        other.goto(second.base + "#/version?rev=v1")
        expect(other.locator("h1")).to_contain_text("Version v1")
        sent = {c["name"]: c["value"] for c in page.context.cookies()}
        assert sorted(sent.values()) == ["first-token-0123456789", "second-token-0123456789"]


def v2_id(repo: Repo) -> str:
    return str(repo.json("show", "v2", "--json")["id"])


@pytest.fixture(scope="module")
def pushed(repo: Repo, s3_server: S3Server) -> str:
    """The URL of a remote on SeaweedFS the module's repository was pushed to (as its
    remote ``s3``), for the tests that only read it."""
    url = f"s3://{s3_server.make_prefix()}/project"
    with pytest.MonkeyPatch.context() as keys:
        use_aws_keys(keys, s3_server.access_key, s3_server.secret_key)
        push_to(Repository(repo.root), url, "s3", s3_server.endpoint)
    return url


def test_a_remote_on_seaweedfs(
    page: Page, pushed: str, s3_env: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dvfs ui s3://...`: the versions and a table's preview, read from the remote."""
    url = pushed
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(url, "--endpoint-url", s3_env.endpoint, cwd=tmp_path) as s:
        page.goto(s.url)
        expect(page.locator("h1")).to_contain_text(f"of {url} (a remote, read-only, as of 20")
        expect(page.locator(".stale")).to_have_count(0)
        expect(page.locator(".timeline .vlabel")).to_have_text(["v3", "v2", "v1"])
        expect(page.locator("form.delete-branch-form")).to_have_count(0)
        page.goto(s.url + "#/version?rev=v2&dir=data&file=data/train.csv")
        expect(page.locator("section.preview")).to_contain_text("CSV · 301 rows · 3 columns")
        expect(page.locator("form.tag-form")).to_have_count(0)


def test_mounts_with_their_pending_changes(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real mount of the repository: its branch, cache and the working tree's changes
    as `dvfs status MNT` gives them; a mount of another repository is not listed."""
    repo = Repo(make_repo(tmp_path / "repo"))
    other = Repo(make_repo(tmp_path / "other"))
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(RUNTIME))  # where the mounts' records are
    mnt = tmp_path / "mnt"
    with (
        mounted(str(repo.root), mnt, home),
        mounted(str(other.root), tmp_path / "elsewhere", home),
        serving(repo.root) as s,
    ):
        (mnt / "data" / "new.txt").write_text("new\n")
        (mnt / "data" / "notes.txt").write_text("changed\n")
        page.goto(s.url + "#/mounts")
        rows = page.locator("table.mounts tbody tr")
        expect(rows).to_have_count(1)
        row = rows.first
        expect(row.locator("td").nth(0)).to_have_text(str(mnt))
        expect(row.locator("td").nth(1)).to_have_text("main")
        expect(row.locator("td").nth(2)).to_contain_text("mounted")
        expect(row.locator(".counts")).to_have_text("1 added, 1 modified")
        expect(row.locator("ul.paths li")).to_have_text(
            ["added: data/new.txt", "modified: data/notes.txt"]
        )
    fsck_clean(repo.root)


def test_snapshot_a_mount_with_allow_write(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Mounts page's Snapshot: `dvfs snapshot MNT -m MSG` through the daemon, offered
    only while the mount has changes (it was offered on a clean one too, where it
    records nothing: the form showed whenever change counts came, all zero or not)."""
    repo = Repo(make_repo(tmp_path / "repo"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(RUNTIME))
    mnt = tmp_path / "mnt"
    with mounted(str(repo.root), mnt, tmp_path / "home"), serving(repo.root, "--allow-write") as s:
        page.goto(s.url + "#/mounts")
        row = page.locator("table.mounts tbody tr").first
        expect(row.locator("td.pending")).to_have_text("none: the working tree is clean")
        expect(row.get_by_role("button", name="Snapshot")).to_have_count(0)
        (mnt / "data" / "new.txt").write_text("new\n")
        page.reload()
        expect(row.locator(".counts")).to_have_text("1 added")
        row.locator('input[name="message"]').fill("from the dashboard")
        row.get_by_role("button", name="Snapshot").click()
        expect(row.locator("td.pending")).to_contain_text("none: the working tree is clean")
        # (the row is drawn again without its form: the confirmation went with it)
        expect(row.locator("td.pending .said")).to_have_text("recorded v4 on main")
        expect(row.get_by_role("button", name="Snapshot")).to_have_count(0)
        log = repo.json("log", "--json")
        assert [v["message"] for v in log[:1]] == ["from the dashboard"]
        assert repo.run("cat", "v4:data/new.txt").raw == b"new\n"
        refused = post(f"{s.base}api/actions/snapshot",
                       {"mountpoint": str(tmp_path), "message": "x"},
                       {"X-DVFS-CSRF": csrf_of(s) or ""})  # fmt: skip
        assert refused.status == 400 and "not a writable mount" in refused.json()["error"]
    moved = repo.json("audit", "--json")[-1]
    assert moved["op"] == "branch move"  # audited as the action, not the daemon's argv
    assert moved["cmd"] == ["dvfs", "ui", "snapshot", str(mnt), "-m", "from the dashboard"]
    fsck_clean(repo.root)


def test_metrics_per_step_of_a_tracked_run(page: Page, tmp_path: Path) -> None:
    """A run of vfs.track logs five steps: the experiments page plots them per step."""
    root = tmp_path / "tracked"
    Repository.init(root)
    with vfs.track(repo=root, message="train", params={"lr": 0.1}) as run:
        for step in range(5):
            run.log_metrics({"loss": round(1 / (step + 1), 3), "acc": step / 10}, step=step)
    with serving(root) as s:
        got = get(f"{s.base}api/steps?rev=v1").json()
        [f] = got["files"]
        assert f["path"] == "metrics.steps.jsonl" and f["metrics"] == ["acc", "loss"]
        assert [r["step"] for r in f["rows"]] == [0, 1, 2, 3, 4] and f["rows"][1]["loss"] == 0.5
        page.goto(s.url + "#/experiments")
        chart = page.locator(".steps-chart")
        expect(chart.locator(".u-title")).to_have_text("metrics.steps.jsonl of v1")
        expect(chart.locator(".u-legend .u-series .u-label")).to_have_text(["step", "acc", "loss"])
        expect(chart.locator("canvas")).to_have_count(1)
    fsck_clean(root)


def test_a_text_that_reads_as_a_number_is_quoted_on_the_experiments_page(
    page: Page, tmp_path: Path
) -> None:
    """The number 2 and the text "2" were both shown `2`, as `dvfs compare` showed them
    before: the experiments table and a version's parameters quote the text, as the
    CLI does now."""
    repo = init_repo(tmp_path / "typed")
    repo.ok("run", "-n", "s", "-m", "m.json", "--", 'echo \'{"a": 2, "b": "x"}\' > m.json')
    repo.commit("one", "--param", "lr=2")
    repo.ok("run", "-f", "-n", "s", "-m", "m.json", "--",
            "echo '{\"a\": \"2\", \"b\": \"-\"}' > m.json")  # fmt: skip
    repo.commit("two", "--param", 'lr="2"')
    assert '"2"' in repo.ok("compare").out
    with serving(repo.root) as s:
        page.goto(s.url + "#/experiments")
        expect(page.locator('tr[data-rev="v2"] td').filter(has_text='"-"')).to_have_count(1)
        cells = {
            rev: page.locator(f'tr[data-rev="{rev}"] td').all_inner_texts() for rev in ("v1", "v2")
        }
        assert '"2"' not in cells["v1"] and "2" in cells["v1"] and "x" in cells["v1"]
        assert cells["v2"].count('"2"') == 2 and '"-"' in cells["v2"]  # lr and a
        page.goto(s.url + "#/version?rev=v2")
        expect(page.locator("table.params td").nth(1)).to_have_text('"2"')
    repo.fsck_clean()


def test_an_experiments_message_is_shown_as_it_is(page: Page, tmp_path: Path) -> None:
    """A message that reads as a value ("42", "true", " spaced") was quoted in the
    experiments table as a text parameter is ("\"42\""), where `dvfs compare` shows it
    as it is: a message is no parameter, and has no other type to be told from."""
    r = init_repo(tmp_path / "messages")
    commit_files(r, {"a.txt": b"a\n"}, "42")
    commit_files(r, {"a.txt": b"b\n"}, "true")
    compared = r.ok("compare").out
    assert "42" in compared and '"42"' not in compared
    with serving(r.root) as s:
        page.goto(s.url + "#/experiments")
        cells = page.locator("table.experiments tbody tr td:nth-child(3)")
        expect(cells).to_have_text(["true", "42"])
    r.fsck_clean()


def test_a_text_metric_spelling_an_infinity_is_quoted_beside_the_float(
    page: Page, tmp_path: Path
) -> None:
    """The float .inf and the text ".inf" (-.Inf, .NAN...) were both shown `.inf` on
    the experiments page, as `dvfs compare` showed them before: the text is quoted, as
    the CLI quotes it now."""
    repo = init_repo(tmp_path / "infinite")
    repo.ok(
        "run", "-n", "s", "-m", "m.yaml", "--", "printf 'a: .inf\\nb: -.Inf\\nc: .NAN\\n' > m.yaml"
    )
    repo.commit("floats")
    repo.ok("run", "-f", "-n", "s", "-m", "m.yaml", "--",
            "printf 'a: \".inf\"\\nb: \"-.Inf\"\\nc: \".NAN\"\\n' > m.yaml")  # fmt: skip
    repo.commit("texts")
    assert '".inf"' in repo.ok("compare").out
    texts = [row.get("texts") for row in repo.json("compare", "--json")]
    assert texts == [["a", "b", "c"], None]  # (newest first)
    with serving(repo.root) as s:
        page.goto(s.url + "#/experiments")
        rows = page.locator("table.experiments tbody tr")
        expect(rows.nth(0).locator("td.metric")).to_have_text(['".inf"', '"-.Inf"', '".NAN"'])
        expect(rows.nth(1).locator("td.metric")).to_have_text([".inf", "-.inf", ".nan"])
    repo.fsck_clean()


def test_chart_titles_and_legends_show_metric_names_escaped(page: Page, tmp_path: Path) -> None:
    """The charts' titles and legends (drawn by uPlot, which sets their text as given)
    showed a metric's name raw: ``lo\u202ess``, written by a stage's own script, read
    backwards there while the table beside them escaped it. They show it as the rest of
    the page does."""
    root = tmp_path / "odd"
    repo = init_repo(root)
    script = (
        "import json\n"
        "json.dump({'lo\\u202ess': 0.5}, open('m.json', 'w'))\n"
        "open('m.steps.jsonl', 'w').write(json.dumps({'step': 0, 'lo\\u202ess': 1.0}) + '\\n')\n"
    )
    repo.write("train.py", script)
    repo.ok("run", "-n", "train", "-d", "train.py", "-m", "m.json", "-o", "m.steps.jsonl",
            "--", "python3", "train.py")  # fmt: skip
    add_in_process(repo, ".")
    repo.commit("odd metric")
    with serving(root) as s:
        page.goto(s.url + "#/experiments")
        shown = "lo\\342\\200\\256ss"
        expect(page.locator("table.experiments th.metric")).to_have_text([shown])
        steps = page.locator(".steps-chart")
        expect(steps.locator(".u-legend .u-series .u-label")).to_have_text(["step", shown])
        over = page.locator(".chart").first
        expect(over.locator(".u-title")).to_have_text(f"{shown} over versions")
        expect(over.locator(".u-legend .u-series .u-label")).to_have_text(["version", shown])
    repo.fsck_clean()


def test_experiments_tell_a_null_metric_from_a_missing_one(page: Page, tmp_path: Path) -> None:
    root = tmp_path / "nulls"
    Repository.init(root)
    for metrics in ({"acc": None}, {"acc": 0.5, "loss": 1, "constructor": 2}):
        with vfs.track(repo=root, message="train", params={"b": None, "c": 1}) as run:
            run.log_metrics(metrics)
    with serving(root) as s:
        page.goto(s.url + "#/experiments")
        rows = page.locator("table.experiments tbody tr")
        expect(rows).to_have_count(2)
        # v1's acc is null and it has no loss: both were "-"; nor a metric named like
        # a property every object has (which was left blank)
        expect(rows.nth(1).locator("td.metric")).to_have_text(["null", "-", "-"])
        expect(rows.nth(0).locator("td.metric")).to_have_text(["0.5", "2", "1"])
        page.goto(s.url + "#/version?rev=v1")  # a null parameter: "-" there too
        expect(page.locator("table.params tr")).to_have_text(["bnull", "c1"])
    fsck_clean(root)


# The parameters of the diff test (v1 to v3) and the version's test (v4): they only
# read, and share one repository and dashboard.
DIFF_PARAMS: list[dict[str, Any]] = [
    {"lr": 2, "drop": None, "name": "x", "rate": 0.1234567},
    {"lr": "2", "drop": 1, "name": "null", "rate": 0.1234568},
    {"lr": "2", "name": "null", "rate": 0.1234568, "new": None},
]
WHOLE_PARAMS = {"a": {"b": 2}, "empty": {}, "f": 0.1234567, "s": "2", "__proto__": 5}


@pytest.fixture(scope="module")
def params(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """v1 to v3 with ``DIFF_PARAMS``, v4 with ``WHOLE_PARAMS``; checked with fsck once
    its dashboard has stopped."""
    root = tmp_path_factory.mktemp("ui-params") / "params"
    Repository.init(root)
    r = vfs.Repo(root)
    for i, values in enumerate([*DIFF_PARAMS, WHOLE_PARAMS]):
        (root / "a.txt").write_text(f"{i}\n")
        r.add(["a.txt"])
        r.commit("one" if values is WHOLE_PARAMS else f"run {i}", params=values)
    r.close()
    yield root
    fsck_clean(root)


@pytest.fixture(scope="module")
def params_server(params: Path) -> Iterator[Server]:
    with serving(params) as s:
        yield s


def test_a_diffs_parameters_show_each_value_as_dvfs_diff_does(
    page: Page, params: Path, params_server: Server
) -> None:
    """The diff page showed a parameter's values as the experiments table rounds a
    metric, with "-" for null: ``lr: 2 -> "2"`` read ``2 → 2``, ``drop: null -> 1``
    read as a parameter added, ``name: x -> "null"`` read ``x → null``, and a rate
    changed in its seventh digit did not change at all. Each value is shown as
    ``dvfs diff`` shows it, and "-" only on the side a parameter is not on."""
    cli = run(params, "diff", "v1", "v2").out
    assert 'param changed:  lr: 2 -> "2"' in cli and "drop: null -> 1" in cli
    page.goto(params_server.url + "#/diff?old=v1&new=v2")
    rows = page.locator("table.changes").last.locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.nth(0).locator("td")).to_have_text(["changed", "drop", "null", "1"])
    expect(rows.nth(1).locator("td")).to_have_text(["changed", "lr", "2", '"2"'])
    expect(rows.nth(2).locator("td")).to_have_text(["changed", "name", "x", '"null"'])
    expect(rows.nth(3).locator("td")).to_have_text(["changed", "rate", "0.1234567", "0.1234568"])
    page.goto(params_server.url + "#/diff?old=v2&new=v3")
    rows = page.locator("table.changes").last.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td")).to_have_text(["removed", "drop", "1", "-"])
    expect(rows.nth(1).locator("td")).to_have_text(["added", "new", "-", "null"])


def test_a_versions_parameters_are_each_shown_whole(
    page: Page, params: Path, params_server: Server
) -> None:
    """A version's parameters on its page: an empty mapping (``dvfs show``'s ``empty =
    {}``) was left out, being no value once flattened, and a float was rounded to six
    digits (0.1234567 read 0.123457, a value the run never had); one named
    ``__proto__`` was no entry of the page's table at all."""
    shown = run(params, "show", "v4").out
    assert "param    empty = {}" in shown and "param    f = 0.1234567" in shown
    page.goto(params_server.url + "#/version?rev=v4")
    expect(page.locator("table.params tr")).to_have_text(
        ["__proto__5", "a.b2", "empty{}", "f0.1234567", 's"2"']
    )


@pytest.fixture(scope="module")
def stages(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """v1: three stages named like object properties; v2: three more, whose commands
    need quoting (``echo``, ``touch``, ``line``); checked with fsck once its dashboard
    has stopped."""
    repo = init_repo(tmp_path_factory.mktemp("ui-stages") / "stages")
    repo.write("r", "r\n")
    for name, dep, out in (
        ("__proto__", "r", "a"),
        ("constructor", "a", "b"),
        ("toString", "b", "c"),
    ):
        repo.ok("run", "-n", name, "-d", dep, "-o", out, "--", f"cp {dep} {out}")
    add_in_process(repo, "r")
    repo.commit("three stages")
    repo.ok("run", "-n", "echo", "-d", "r", "-o", "out", "--", "sh", "-c", "echo 'a b' > out")
    repo.ok("run", "-n", "touch", "-o", "x y", "--", "touch", "x y")
    repo.ok("run", "-n", "line", "-d", "r", "-o", "copy", "--", "cp r copy")
    repo.commit("three more stages")
    yield repo
    repo.fsck_clean()


@pytest.fixture(scope="module")
def stages_server(stages: Repo) -> Iterator[Server]:
    with serving(stages.root) as s:
        yield s


def test_lineage_draws_stages_named_like_object_properties(
    page: Page, stages_server: Server
) -> None:
    page.goto(stages_server.url + "#/lineage?rev=v1")
    expect(page.locator("svg.dag .node")).to_have_count(3)
    expect(page.locator("svg.dag .edge")).to_have_count(2)
    edge = page.locator('svg.dag .edge[data-from="__proto__"][data-to="constructor"]')
    expect(edge).to_have_count(1)
    page.locator('svg.dag .node[data-stage="__proto__"]').click()
    expect(page.locator("section.stage-detail")).to_contain_text("cp r a")


def test_lineage_says_which_inputs_its_walk_back_cut_short(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    budget = 2_000  # the dashboard's, in place of lineage.BUDGET (200,000)
    monkeypatch.setenv(lineage.BUDGET_ENV, str(budget))
    versions, stages = 100, budget // 100 + 20
    forge = forge_deep_pipeline(tmp_path / "remote", versions, stages)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(forge.url, cwd=tmp_path) as s:
        page.goto(s.url + "#/lineage?rev=main")
        note = page.locator("p.note")
        expect(note).to_contain_text(
            "The walk back through the versions was cut short", timeout=120_000
        )
        expect(note).to_contain_text("of 20 inputs is not known")
        page.locator(f'svg.dag .node[data-stage="s{stages - 1:04d}"]').click()
        detail = page.locator("section.stage-detail")
        expect(detail).to_contain_text("since an unknown version (walk cut short)")
        page.locator('svg.dag .node[data-stage="s0000"]').click()
        expect(detail).to_contain_text("(in no version)")


def test_a_stages_command_is_shown_quoted_as_dvfs_lineage_shows_it(
    page: Page, stages: Repo, stages_server: Server
) -> None:
    """A stage run as a list of arguments was shown with them joined by blanks:
    ``sh -c "echo 'a b' > out"`` read ``sh -c echo 'a b' > out``, another command,
    and ``touch "x y"`` read as ``touch x y``. The page quotes each as ``dvfs
    lineage`` does (shlex.join); a command given as one shell line is shown as it is."""
    lineage = stages.ok("lineage", "out").out
    assert """sh -c 'echo '"'"'a b'"'"' > out'""" in lineage
    page.goto(stages_server.url + "#/lineage?rev=v2")
    detail = page.locator("section.stage-detail code").first
    for stage, shown in (
        ("echo", """sh -c 'echo '"'"'a b'"'"' > out'"""),
        ("touch", "touch 'x y'"),
        ("line", "cp r copy"),
    ):
        page.locator(f'svg.dag .node[data-stage="{stage}"]').click()
        expect(page.locator("section.stage-detail h2")).to_have_text(f"Stage {stage}")
        expect(detail).to_have_text(shown)


@pytest.fixture(scope="module")
def previews(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A repository whose v1 holds the tables of the preview tests and a directory ``d``
    of ``ADDED_MAX + 1`` files, and whose v2 changes ``d/f00001.txt``; checked with fsck
    once its dashboard has stopped."""
    root = tmp_path_factory.mktemp("ui-previews") / "previews"
    Repository.init(root)
    (root / "d").mkdir()
    for i in range(data.ADDED_MAX + 1):
        (root / "d" / f"f{i:05d}.txt").write_text(f"{i}\n")
    head = ",".join(f"c{i}" for i in range(300))
    rows = [",".join(str(k * 1000 + i) for i in range(300)) for k in range(80)]
    short = ",".join(str(i) for i in range(299))
    write(root, {
        "counted.csv": "\n".join([head, *rows, ""]),
        "late.csv": "\n".join([head, *rows * 40, short, ""]),  # past the 4 MiB sniffed
    })  # fmt: skip
    head = ",".join(f"column{i}" for i in range(100))
    rows = [",".join(str(123456 + n + i) for i in range(100)) for n in range(3)]
    write(root, {"scroll.csv": "\n".join([head, *rows, ""])})
    head = ",".join(f"c{i}" for i in range(250))
    rows = [",".join(str(n * 1000 + i) for i in range(250)) for n in range(60)]
    write(root, {"paged.csv": "\n".join([head, *rows, ""])})
    r = vfs.Repo(root)
    r.add(["d", "counted.csv", "late.csv", "scroll.csv", "paged.csv"])
    r.commit("many files")
    (root / "d" / "f00001.txt").write_text("changed\n")
    r.add(["d/f00001.txt"])
    r.commit("one changed")
    r.close()
    yield root
    fsck_clean(root)


@pytest.fixture(scope="module")
def previews_server(previews: Path) -> Iterator[Server]:
    with serving(previews) as s:
        yield s


def test_added_in_of_a_large_directory_comes_after_the_page(
    page: Page, previews: Path, previews_server: Server
) -> None:
    """A directory past ADDED_MAX entries: the listing comes without "added in", which
    the page asks for apart and fills in; a search out of time gives "vK or before"."""
    s = previews_server
    listing = get(f"{s.base}api/files?rev=v2&dir=d&limit=3").json()
    assert listing["added_known"] is False and listing["entries"][0]["added"] is None
    got = get(f"{s.base}api/added?rev=v2&dir=d&limit=3").json()
    assert got["added"] == {"d/f00000.txt": "v1", "d/f00001.txt": "v2", "d/f00002.txt": "v1"}
    assert got["before"] == {}
    page.goto(s.url + "#/version?rev=v2&dir=d")
    row = page.locator("table.listing tr").filter(has=page.get_by_text("f00001.txt"))
    expect(row.locator("td.added")).to_have_text("v2")
    expect(
        page.locator("table.listing tr", has_text="f00000.txt").locator("td.added")
    ).to_have_text("v1")
    repo = Repository(previews)
    oid = repo.history.resolve("v2")
    names = [b"f00000.txt", b"f00001.txt"]
    assert browse.added_in_dir_until(repo.history, oid, b"d", names, 0.0) == ({}, "v2")
    repo.close()


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """A version for each test of how names, messages and texts show, each holding only
    that test's files: v1 and v2 images (the second wider), v3 names and a message
    with bidirectional marks, v4 names with a newline and a tab and a message of two
    lines, v5 a carriage return in a text and a message, v6 a long name and message,
    v7 a name that is not UTF-8. Checked with fsck once its dashboard has stopped."""
    repo = init_repo(tmp_path_factory.mktemp("ui-names") / "names")
    versions: list[tuple[dict[str | bytes, bytes | str], str]] = [
        ({"red\u202egnp.png": png(4, 2), "a\x1bb.png": png(6, 2)}, "images"),
        ({"red\u202egnp.png": png(4, 2), "a\x1bb.png": png(8, 2)}, "wider"),
        (
            {
                "evil\u202etxt.exe": "x\n",
                "zero\u200bwidth.txt": "y\n",
                "mark\u061cx.txt": "z\n",  # the Arabic letter mark: a bidi mark too
            },
            "looks \u202eharmless\x1b[2J",
        ),
        ({"x\ny.txt": "a\tb\nc\n", "x y.txt": "b\n", "t\tz\a.txt": "c\n"}, "line one\nline two"),
        ({"cr.txt": "line1\rOVER\nline2\r\nline3\n"}, "safe\rEVIL"),
        ({"n" * 250 + ".txt": "x\n"}, "m" * 3000),
        ({b"caf\xe9/cr\xe8me.txt": b"bonjour\n"}, "latin-1 names"),
    ]
    for files, message in versions:
        for old in repo.root.iterdir():  # the version holds this test's files alone
            if old.name != ".dvfs":
                shutil.rmtree(old) if old.is_dir() else old.unlink()
        for name, content in files.items():
            repo.write(os.fsdecode(name), content)
        add_in_process(repo, ".")
        repo.commit(message)
    yield repo
    repo.fsck_clean()


@pytest.fixture(scope="module")
def names_server(names: Repo) -> Iterator[Server]:
    with serving(names.root) as s:
        yield s


def test_a_file_whose_name_is_not_utf8_opens(page: Page, names_server: Server) -> None:
    s = names_server
    page.goto(s.url + "#/version?rev=v7")
    page.locator("a.entry.dir").click()
    expect(page.locator(".crumbs")).to_contain_text("v7 / caf")
    page.locator("a.entry", has_text="me.txt").click()
    expect(page.locator("pre.text")).to_have_text("bonjour\n")
    href = page.locator("a.download").get_attribute("href") or ""
    assert "path=caf%E9%2Fcr%E8me.txt" in href
    assert get(s.base + href.lstrip("/")).body == b"bonjour\n"


def test_names_and_messages_are_shown_escaped_as_the_cli_prints_them(
    page: Page, names_server: Server
) -> None:
    """A bidirectional override would make ``evil\\u202etxt.exe`` read ``evilexe.txt``;
    the page shows such code points as ``dvfs ls`` and ``dvfs log`` escape them."""
    url = names_server.url
    page.goto(url + "#/version?rev=v3")
    expect(page.locator("a.entry")).to_have_text(
        [
            "evil\\342\\200\\256txt.exe",
            "mark\\330\\234x.txt",
            "zero\\342\\200\\213width.txt",
        ]
    )
    expect(page.locator("dl.fields")).to_contain_text("looks \\342\\200\\256harmless\\033[2J")
    page.goto(url)
    expect(page.locator(".timeline")).to_contain_text("looks \\342\\200\\256harmless")
    page.goto(url + "#/version?rev=v3&file=evil%E2%80%AEtxt.exe")
    expect(page.locator("pre.text")).to_have_text("x\n")


XSS = '<img src=x onerror=alert(1)>"onmouseover=alert(2) x="</textarea><script>alert(3)</script>'


def test_markup_in_what_a_repository_holds_is_only_ever_text(page: Page, tmp_path: Path) -> None:
    """Names, a message, an author, a parameter, a stage's command, a table's columns
    and cells holding markup: every page shows them as text, no dialog opens and no
    element of theirs is made."""
    repo = init_repo(tmp_path / "markup")
    repo.write(f"d{XSS.replace('/', '_')}/f{XSS.replace('/', '_')}.txt", "x\n")
    csv = f'id,"{XSS.replace(chr(34), chr(34) * 2)}"\n1,"{XSS.replace(chr(34), chr(34) * 2)}"\n'
    repo.write("t.csv", csv)
    add_in_process(repo, ".")
    repo.commit("one")
    repo.write("t.csv", csv.replace("1,", "2,"))
    repo.ok("run", "-n", "stage", "-d", "t.csv", "-o", "o.txt", "--", f"echo '{XSS}' > o.txt")
    add_in_process(repo, ".")
    env = {"DVFS_AUTHOR": f"{XSS} <a@b>"}
    assert_ok(run(repo.root, "commit", "-m", XSS, "--param", f"p={XSS}", env=env))
    dialogs: list[str] = []

    def said(d: Dialog) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", said)
    with serving(repo.root) as s:
        for where, shown, text in (
            ("#/versions", ".timeline .meta", "alert(1)"),
            ("#/version?rev=v2", "dd.message", "alert(3)"),
            (
                "#/version?rev=v1&dir=" + urllib.parse.quote(f"d{XSS.replace('/', '_')}"),
                "a.entry",
                "alert(1)",
            ),
            ("#/version?rev=v1&file=t.csv", "section.preview table.data", "alert(3)"),
            ("#/diff?old=v1&new=v2&rows=t.csv", "section.rowdiff table", "alert(3)"),
            ("#/experiments", "table.experiments", "alert(2)"),
            ("#/lineage?rev=v2", "svg.dag .node", "stage"),
        ):
            page.goto(s.url + where)
            expect(page.locator(shown).first).to_contain_text(text)
            made = page.evaluate(
                """() => [...document.querySelectorAll('main *')].filter((e) =>
                     ['IMG', 'SCRIPT', 'TEXTAREA'].includes(e.tagName)
                     || [...e.attributes].some((a) => a.name.startsWith('on'))).length"""
            )
            assert made == 0, where
        page.locator("svg.dag .node").first.click()
        expect(page.locator("section.stage-detail code").first).to_contain_text("alert(3)")
    assert dialogs == []
    repo.fsck_clean()


def test_a_page_elsewhere_reaches_nothing_of_the_dashboard(
    page: Page, server: Server, tmp_path: Path
) -> None:
    """A web page of another site (here another local server's, as the browser lets
    one reach 127.0.0.1) could make the browser ask the dashboard, which listens
    without a token, for anything it need not read: an image of the repository
    loaded there, its size telling that the file exists and what it is, a download
    from a remote or a remote's refresh set off. A request that a page of another
    site makes is refused (403); a link from it still opens the dashboard."""
    dashboard = server.base.rstrip("/")
    (tmp_path / "probe.html").write_text(
        f'<img id="probe" src="{dashboard}/api/raw?rev=v1&path=img/red.png&inline=1">'
        f'<a id="link" href="{dashboard}/#/version?rev=v2">dashboard</a>'
    )
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://localhost:{elsewhere.server_address[1]}/probe.html")
        page.wait_for_function("document.getElementById('probe').complete")
        assert page.evaluate("document.getElementById('probe').naturalWidth") == 0  # was 20
        page.locator("#link").click()
        expect(page.locator("h1")).to_contain_text("Version v2")
    finally:
        elsewhere.shutdown()
        elsewhere.server_close()
    cross = {"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}
    a = get(f"{server.base}api/versions", cross)
    assert a.status == 403 and "another site" in a.json()["error"]
    assert get(f"{server.base}api/versions", {"Sec-Fetch-Site": "same-origin"}).status == 200


def test_an_images_alt_text_is_its_name_escaped_as_the_page_shows_it(
    page: Page, names_server: Server
) -> None:
    """An image's ``alt`` (what a screen reader says, what shows when it cannot load)
    held its raw name: ``red\u202egnp.png`` read backwards there, ``a\x1bb.png``
    carried its escape. It is the name as the page shows it everywhere else."""
    url = names_server.url
    page.goto(url + "#/version?rev=v1&file=red%E2%80%AEgnp.png")
    expect(page.locator("img.image")).to_have_attribute("alt", "red\\342\\200\\256gnp.png")
    page.goto(url + "#/diff?old=v1&new=v2")
    page.locator("tr.change").get_by_role("button", name="images").click()
    for i, version in enumerate(("v1", "v2")):
        img = page.locator(".images img").nth(i)
        expect(img).to_have_attribute("alt", f"a\\033b.png in {version}")


def test_a_name_holding_a_newline_or_a_tab_is_not_shown_as_another(
    page: Page, names_server: Server
) -> None:
    """``x\\ny.txt`` and ``x y.txt`` both read ``x y.txt`` on the page (a newline or a
    tab in text shows as a space), as ``t\\tz.txt`` did ``t z.txt``: names show them
    as ``dvfs ls`` does (``\\n``, ``\\t``, and ``\\a`` for BEL as there), while a
    message and a text preview keep their lines."""
    url = names_server.url
    page.goto(url + "#/version?rev=v4")
    expect(page.locator("a.entry")).to_have_text(["t\\tz\\a.txt", "x\\ny.txt", "x y.txt"])
    expect(page.locator("dd.message")).to_have_text("line one\nline two")
    page.locator("a.entry").nth(1).click()
    expect(page.locator("pre.text")).to_have_text("a\tb\nc\n")
    page.goto(url)
    message = page.locator(".timeline .message").filter(has_text="line one")
    expect(message).to_have_text("line one\nline two")


def test_a_carriage_return_that_ends_no_line_is_shown(
    page: Page, names: Repo, names_server: Server
) -> None:
    """A message or a text holding a carriage return that ends no line
    (``safe\\rEVIL``, what a terminal shows as ``EVIL`` over ``safe``) showed nothing
    of it on the page: ``safeEVIL``, where `dvfs log` prints ``safe\\rEVIL``. It is
    shown as ``\\r``; a CRLF line ending still ends its line."""
    assert "safe\\rEVIL" in names.ok("log").out
    url = names_server.url
    page.goto(url + "#/version?rev=v5&file=cr.txt")
    expect(page.locator("dd.message")).to_have_text("safe\\rEVIL")
    expect(page.locator("pre.text")).to_contain_text("line1\\rOVER")
    text = page.locator("pre.text").evaluate("e => e.textContent")
    assert text == "line1\\rOVER\nline2\r\nline3\n"
    page.goto(url)
    expect(page.locator(".timeline .message").filter(has_text="EVIL")).to_have_text("safe\\rEVIL")


def test_a_long_name_or_message_wraps_within_the_page(page: Page, names_server: Server) -> None:
    """Text without a space (a name of 250 characters, a message of 3,000) wraps: the
    page keeps its width, and the listing's columns stay in view."""
    width = page.viewport_size["width"] if page.viewport_size else 0
    page.goto(names_server.url)
    expect(page.locator(".timeline")).to_contain_text("mmmm")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.goto(names_server.url + "#/version?rev=v6")
    size = page.locator("table.listing tr", has_text="nnnn").locator("td.num").first
    expect(size).to_have_text("2 B")
    box = size.bounding_box()
    assert box is not None and box["x"] + box["width"] <= width
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def test_a_long_branch_or_tag_name_keeps_the_versions_page_in_its_width(
    page: Page, tmp_path: Path
) -> None:
    """A branch named with 200 letters made the branch filter's select 200 letters
    wide, past the page's width, and its badge squeezed the version's label and id
    beside it onto two lines ("v" above "1"). The select keeps to the page, and the
    badge wraps beside a label and an id that stay whole."""
    repo = init_repo(tmp_path / "longref")
    commit_files(repo, {"a.txt": b"a\n"}, "one")
    repo.ok("branch", "b" * 200)
    repo.ok("tag", "t" * 200)
    width = page.viewport_size["width"] if page.viewport_size else 0
    with serving(repo.root) as s:
        page.goto(s.url)
        expect(page.locator(".timeline .badge.tag")).to_have_text("t" * 200)
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for whole in (".timeline .vlabel", ".timeline .line1 > .id"):
            box = page.locator(whole).bounding_box()
            line = page.locator(".timeline .message").bounding_box()
            assert box is not None and line is not None
            assert box["height"] <= line["height"] * 1.5, (whole, box, line)
    repo.fsck_clean()


def test_metrics_per_step_come_a_page_at_a_time(page: Page, tmp_path: Path) -> None:
    """A run of 2,500 steps: the route answers a bounded page, the latest steps unless
    asked for others, and the experiments page plots those with a way to the others."""
    root = tmp_path / "long"
    Repository.init(root)
    with vfs.track(repo=root, message="train") as run:
        for step in range(2500):
            run.log_metrics({"loss": 1 / (step + 1)}, step=step)
    with serving(root) as s:
        [f] = get(f"{s.base}api/steps?rev=v1").json()["files"]
        assert (f["total"], f["offset"], f["limit"]) == (2500, 1500, data.STEPS_PAGE)
        assert [r["step"] for r in f["rows"]] == list(range(1500, 2500))
        [f] = get(f"{s.base}api/steps?rev=v1&path=metrics.steps.jsonl&offset=0&limit=3").json()[
            "files"
        ]
        assert [r["step"] for r in f["rows"]] == [0, 1, 2] and f["metrics"] == ["loss"]
        [f] = get(f"{s.base}api/steps?rev=v1&limit=99999999").json()["files"]
        assert f["limit"] == data.STEPS_PAGE_MAX and len(f["rows"]) == 2500
        gone = get(f"{s.base}api/steps?rev=v1&path=other.steps.jsonl")
        assert gone.status == 404 and "other.steps.jsonl" in gone.json()["error"]
        page.goto(s.url + "#/experiments")
        pages = page.locator(".steps-file .pager")
        expect(pages).to_contain_text(re.compile(r"1501\W2500 of 2500"))
        pages.get_by_role("button", name=re.compile("Prev")).click()
        expect(pages).to_contain_text(re.compile(r" 501\W1500 of 2500"))
        expect(page.locator(".steps-chart canvas")).to_have_count(1)
    fsck_clean(root)


def test_a_remote_that_lost_a_pack_or_went_away_is_named_with_the_file(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote's view whose remote loses a pack, then is moved away: a preview and a
    download answer 502 naming the file, its version and the remote, and the file page
    shows that, not an internal "packs/ID not found"."""
    src = init_repo(tmp_path / "src")
    (src.root / "a.txt").write_text("hello\n")
    add_in_process(src, "a.txt")
    src.commit("first")
    where = tmp_path / "remote"
    push_to(Repository(src.root), str(where), "dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(where) as s:
        [pack] = (where / "packs").iterdir()
        pack.rename(tmp_path / "lost")
        for route in ("preview", "raw"):
            a = get(f"{s.base}api/{route}?rev=v1&path=a.txt")
            assert a.status == 502, (route, a.status)
            said = a.json()["error"]
            assert said.startswith("a.txt of v1 cannot be read from the remote (pack "), said
            assert f"is missing from file://{where}" in said and "the remote is damaged" in said
            assert "check that the remote" in said
        page.goto(s.url + "#/version?rev=v1&file=a.txt")
        box = page.locator("section.preview .error")
        expect(box).to_contain_text("a.txt of v1 cannot be read from the remote")
        expect(page.locator("section.preview a.download")).to_have_count(0)
        (tmp_path / "lost").rename(pack)
        where.rename(tmp_path / "moved")
        a = get(f"{s.base}api/preview?rev=v1&path=a.txt")
        assert a.status == 502 and a.json()["error"].startswith("a.txt of v1 cannot be read")
    (tmp_path / "moved").rename(where)
    src.fsck_clean()


def test_a_version_of_another_branch_opens_as_itself(page: Page, tmp_path: Path) -> None:
    """On the versions page of a branch other than the current one, its v2 is not the
    current branch's v2: the links, the diff of two ticked versions and a version's
    "since" link all open that branch's versions, as `dvfs show ID` does."""
    r = init_repo(tmp_path / "two")
    commit_files(r, {"a.txt": b"one\n"}, "first")
    commit_files(r, {"main.txt": b"main\n"}, "on main")
    r.ok("branch", "exp", "v1")
    switch_in_process(r, "exp")
    commit_files(r, {"exp.txt": b"exp\n"}, "on exp")
    switch_in_process(r, "main")
    with serving(r.root) as s:
        page.goto(s.url + "#/versions?branch=exp")
        expect(page.locator(".timeline .message")).to_have_text(["on exp", "first"])
        page.locator('input[data-version="v1"]').check()
        page.locator('input[data-version="v2"]').check()
        page.get_by_role("button", name="Diff selected").click()
        expect(page.locator("table.changes tbody tr")).to_have_count(1)
        expect(page.locator("table.changes")).to_contain_text("exp.txt")
        page.goto(s.url + "#/versions?branch=exp")
        page.locator(".timeline").get_by_role("link", name="v2", exact=True).click()
        expect(page.locator("dl.fields dd.message")).to_have_text("on exp")
        page.locator("dl.fields dd.changes").get_by_role("link", name="since v1").click()
        expect(page.locator("table.changes")).to_contain_text("exp.txt")
        expect(page.locator("table.changes")).not_to_contain_text("main.txt")
    r.fsck_clean()


def test_a_wide_table_is_previewed_a_hundred_columns_at_a_time(
    page: Page, previews_server: Server
) -> None:
    """A CSV of 250 columns: the preview answers 100 of them, says how many there are,
    and the page pages through them as it pages through rows."""
    s = previews_server
    p = get(f"{s.base}api/preview?rev=v1&path=paged.csv&coffset=200&offset=1&limit=1").json()
    assert (p["total_columns"], p["column_offset"], p["total"]) == (250, 200, 60)
    assert [c["name"] for c in p["columns"]] == [f"c{i}" for i in range(200, 250)]
    assert p["rows"] == [[1000 + i for i in range(200, 250)]]
    page.goto(s.url + "#/version?rev=v1&file=paged.csv")
    preview = page.locator("section.preview")
    expect(preview).to_contain_text("CSV · 60 rows · 250 columns")
    headers = preview.locator("table.data th")
    expect(headers).to_have_count(100)
    columns = preview.locator(".columns-pager")
    expect(columns).to_contain_text(re.compile(r"1\W100 of 250"))
    columns.get_by_role("button", name=re.compile("^Next")).click()
    expect(headers.first).to_have_text("c100")
    preview.locator(".pager").last.get_by_role("button", name=re.compile("^Next")).click()
    expect(preview.locator("table.data tbody tr").first.locator("td").first).to_have_text("50100")
    expect(headers.first).to_have_text("c100")  # the rows' pages keep the columns'


def test_an_empty_repository_says_there_is_no_version_yet(page: Page, tmp_path: Path) -> None:
    """A new repository's versions page says what `dvfs log` says, not that no version
    matches a filter nobody gave."""
    r = init_repo(tmp_path / "new")
    with serving(r.root) as s:
        page.goto(s.url)
        expect(page.locator(".empty")).to_have_text(
            "No versions yet: run `dvfs add PATH` and `dvfs commit -m MSG`."
        )
        page.goto(s.url + "#/versions?q=nothing")
        expect(page.locator(".empty")).to_have_text("No version matches.")
    r.fsck_clean()


# The tables of the row diff tests: each test's own file, changed from v1 to v2 (and a
# run making a metric, v3): they only read, and share one repository and dashboard.
ROWS_V1: dict[str, bytes | str] = {
    "props.csv": b"id,constructor,toString\n1,a,x\n2,b,y\n",
    "digits.csv": b"id,x\n1,0.1234567\n2,1.5\n",
    "texts.jsonl": b'{"id": 1, "v": 2}\n{"id": 2, "v": "x"}\n',
    "many.csv": b"id,v\n" + b"".join(b"%d,0\n" % i for i in range(60)),
    "blank.jsonl": "".join(f'{{"id": {i}, " v": "x{i}", "w": 0}}\n' for i in range(3)),
}
ROWS_V2: dict[str, bytes | str] = {
    "props.csv": b"id,constructor,toString\n1,a,z\n2,b,y\n3,c,w\n",
    "digits.csv": b"id,x\n1,0.1234568\n2,1.5\n",
    "texts.jsonl": b'{"id": 1, "v": "2"}\n{"id": 2, "v": true}\n',
    "many.csv": b"id,v\n" + b"".join(b"%d,1\n" % i for i in range(60)),
    "blank.jsonl": "".join(f'{{"id": {i}, " v": "x{i}", "w": {i}}}\n' for i in range(3)),
}


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repo]:
    """The repository of ``ROWS_V1`` (v1), ``ROWS_V2`` (v2) and a run whose metric is
    ``acc`` 0.9876543 (v3); checked with fsck once its dashboard has stopped."""
    r = init_repo(tmp_path_factory.mktemp("ui-tables") / "tables")
    commit_files(r, ROWS_V1, "first")
    commit_files(r, ROWS_V2, "second")
    r.ok("run", "-n", "s", "-m", "m.json", "--", "echo '{\"acc\": 0.9876543}' > m.json")
    r.commit("a run")
    yield r
    r.fsck_clean()


@pytest.fixture(scope="module")
def tables_server(tables: Repo) -> Iterator[Server]:
    with serving(tables.root) as s:
        yield s


def rows_by_key(page: Page, url: str, path: str, key: str) -> Locator:
    """Open the diff of v1 and v2 at ``url`` and diff the rows of ``path`` by ``key``,
    as a user types it; the rows' section."""
    page.goto(url + f"#/diff?old=v1&new=v2&rows={path}")
    rows = page.locator("section.rowdiff")
    rows.locator('input[name="key"]').fill(key)
    rows.get_by_role("button", name="Diff rows").click()
    return rows


def test_a_row_diff_of_columns_named_like_object_properties(
    page: Page, tables_server: Server
) -> None:
    """A table whose columns are named constructor and toString: a changed row marks
    the cell that changed only, and an added row shows its own values."""
    rows = rows_by_key(page, tables_server.url, "props.csv", "id")
    expect(rows).to_contain_text("1 added, 0 removed, 1 changed, 1 unchanged")
    expect(rows.locator("td.cell-changed")).to_have_count(1)
    # (columns in the order the rows name them: id, toString, constructor)
    expect(rows.locator("tr.row.changed td")).to_have_text(["~", "1", "x z", ""])
    expect(rows.locator("tr.row.added td")).to_have_text(["+", "3", "w", "c"])


def test_numbers_are_shown_with_all_their_digits(
    page: Page, tables: Repo, tables_server: Server
) -> None:
    """Every number in a table was rounded to six digits: a row diff of 0.1234567 to
    0.1234568 marked a changed cell "0.123457 0.123457", the preview showed the file
    holding 0.123457, and a metric read a value its run never logged. Each is shown
    as `dvfs diff --rows`, the file and `dvfs compare` have it."""
    r, url = tables, tables_server.url
    assert (
        "x: 0.1234567 -> 0.1234568"
        in r.ok("diff", "v1", "v2", "digits.csv", "--rows", "--key", "id").out
    )
    assert "0.9876543" in r.ok("compare").out
    rows = rows_by_key(page, url, "digits.csv", "id")
    expect(rows.locator("tr.row.changed td")).to_have_text(["~", "1", "0.1234567 0.1234568"])
    page.goto(url + "#/version?rev=v1&file=digits.csv")
    expect(page.locator("section.preview table.data tbody tr").first).to_have_text(
        re.compile(r"^\s*1\s*0\.1234567\s*$")
    )
    page.goto(url + "#/experiments")
    expect(page.locator('tr[data-rev="v3"] td.metric')).to_have_text("0.9876543")


def test_whole_numbers_past_2_to_the_53_keep_their_digits(page: Page, tmp_path: Path) -> None:
    """A whole number past 2**53 (an int64 id, a time in nanoseconds) was parsed by
    the page as a double: ids 1234567890123456789 and ...790 both read
    1234567890123456800 in a preview, a row diff's changed cell read the same on
    both sides, and so did a parameter or a metric. Each keeps its digits."""
    r = init_repo(tmp_path / "ints")
    commit_files(r, {"t.csv": b"id,t\n1,1234567890123456789\n2,1234567890123456790\n"}, "one")
    commit_files(r, {"t.csv": b"id,t\n1,1234567890123456790\n2,1234567890123456790\n"}, "two")
    r.ok("run", "-n", "s", "-m", "m.json", "--", "echo '{\"seen\": 9007199254740993}' > m.json")
    r.commit("a run", "--param", "seed=9007199254740995")
    r.ok("run", "-f", "-n", "s", "-m", "m.json", "--", "echo '{\"seen\": 95}' > m.json")
    r.commit("another run")
    with serving(r.root) as s:
        page.goto(s.url + "#/version?rev=v1&file=t.csv")
        expect(page.locator("section.preview table.data tbody td:last-child")).to_have_text(
            ["1234567890123456789", "1234567890123456790"]
        )
        rows = rows_by_key(page, s.url, "t.csv", "id")
        expect(rows.locator("tr.row.changed td")).to_have_text(
            ["~", "1", "1234567890123456789 1234567890123456790"]
        )
        page.goto(s.url + "#/experiments")
        expect(page.locator('tr[data-rev="v3"] td.param')).to_have_text("9007199254740995")
        expect(page.locator('tr[data-rev="v3"] td.metric')).to_have_text("9007199254740993")
        expect(page.locator(".chart .u-title")).to_have_text("seen over versions")
        page.locator('th[data-col="metric:seen"]').click()  # as numbers: 95 first
        expect(page.locator("table.experiments tbody tr td:first-child")).to_have_text(
            ["v4", "v3", "v2", "v1"]
        )
        page.goto(s.url + "#/version?rev=v3")
        expect(page.locator("table.params tr")).to_have_text(["seed9007199254740995"])
        page.goto(s.url + "#/diff?old=v2&new=v3")
        expect(page.locator("table.changes").last.locator("tbody tr td")).to_have_text(
            ["added", "seed", "-", "9007199254740995"]
        )
    r.fsck_clean()


def test_a_row_diffs_text_that_reads_as_a_number_is_quoted_beside_numbers(
    page: Page, tables_server: Server
) -> None:
    """A JSON Lines field that held the number 2 and then the text "2" read "2 2" in
    its changed cell; it reads as `dvfs diff --rows` prints it: 2, then "2"."""
    rows = rows_by_key(page, tables_server.url, "texts.jsonl", "id")
    expect(rows.locator("tr.row.changed td")).to_have_text(["~", "1", '2 "2"', "~", "2", "x true"])


def test_a_row_diff_past_its_first_rows_shows_more_on_asking(
    page: Page, tables_server: Server
) -> None:
    """60 rows changed: the page shows 50 and says how many more, and a button shows
    them (up to the route's 500), where it only said "… and 10 more rows"."""
    rows = rows_by_key(page, tables_server.url, "many.csv", "id")
    expect(rows.locator("tr.row")).to_have_count(50)
    expect(rows.locator(".more")).to_contain_text("… and 10 more rows")
    rows.get_by_role("button", name="Show up to 500").click()
    expect(rows.locator("tr.row")).to_have_count(60)
    expect(rows.locator(".more")).to_have_count(0)
    expect(rows).to_contain_text("0 added, 0 removed, 60 changed")  # the key is kept


def test_a_key_column_named_with_a_blank_is_told_from_another(
    page: Page, tables_server: Server
) -> None:
    """The summary of a row diff keyed by the JSON Lines column `` v`` read "(key  v)",
    as if by ``v``; it reads as ``dvfs diff --rows`` prints it: ``(key " v")``."""
    rows = rows_by_key(page, tables_server.url, "blank.jsonl", " v")
    expect(rows.locator("p.summary")).to_have_text(
        '0 added, 0 removed, 2 changed, 1 unchanged (key " v")'
    )


def test_the_audit_log_shows_commands_quoted_as_dvfs_audit_does(page: Page, tmp_path: Path) -> None:
    """A command whose argument holds spaces and a quote reads as `dvfs audit` prints
    it, not as more arguments than were given."""
    r = init_repo(tmp_path / "quoted")
    r.write("a.txt", b"one\n")
    r.ok("add", "a.txt")
    r.ok("commit", "-m", "it's two words")
    [entry] = [e for e in r.json("audit", "--json") if e["op"] == "branch create"]
    shown = shlex.join(entry["cmd"])
    assert shown.endswith("commit -m 'it'\"'\"'s two words'")
    assert f"({shown})" in r.ok("audit").out
    with serving(r.root) as s:
        page.goto(s.url + "#/store")
        row = page.locator("table.audit tbody tr").filter(has_text="branch create")
        expect(row.locator("td code")).to_have_text(shown)
    r.fsck_clean()


def test_the_store_and_diff_pages_name_another_branchs_versions_by_revisions_that_read_them(
    page: Page, tmp_path: Path
) -> None:
    """Each branch numbers its own chain: side's v2 is no `v2` on main. The store page
    names it by its id, as `dvfs du --json`'s `revision` does; main's v2 stays v2."""
    r = init_repo(tmp_path / "branches")
    commit_files(r, {"a.bin": os.urandom(3000)}, "one")
    switch_in_process(r, "side", create=True)
    side = commit_files(r, {"side.bin": os.urandom(2000)}, "side")
    switch_in_process(r, "main")
    commit_files(r, {"main.bin": os.urandom(1000)}, "main")
    du = r.json("du", "--json")
    named = {b["path"]: b["revision"] for b in du["biggest"]}
    assert named["side.bin"] == side[:10] and named["main.bin"] == "v2"
    assert sorted(v["revision"] for v in du["versions"]) == sorted(["v1", "v2", side[:10]])
    with serving(r.root) as s:
        page.goto(s.url + "#/store")
        rows = page.locator("h2:text('Biggest files') + table tbody tr")
        expect(rows.filter(has_text="side.bin").locator("td").nth(2)).to_have_text(side[:10])
        expect(rows.filter(has_text="main.bin").locator("td").nth(2)).to_have_text("v2")
        versions = page.locator("h2:text('Unique to each version') + table tbody tr td a")
        expect(versions).to_have_text([v["revision"] for v in du["versions"]])
        assert side[:10] in versions.all_inner_texts()
        # the diff page's sides likewise: side's v2 was shown as "v2", main's v2
        page.goto(s.url + "#/diff?old=v1&new=side")
        expect(page.locator("p.summary")).to_contain_text(f"v1 → {side[:10]}: 1 added")
        page.goto(s.url + "#/diff?old=side&new=v2")
        expect(page.locator("p.summary")).to_contain_text(f"{side[:10]} → v2: ")
    r.fsck_clean()


def test_a_download_the_remote_cannot_give_says_why_on_the_page(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file page shown, then the remote loses its pack: "download" says on the page
    what went wrong (it was a failed download with no reason); while the remote holds
    it, the download is the file."""
    src = init_repo(tmp_path / "src")
    commit_files(src, {"a.txt": b"hello\n"}, "first")
    where = tmp_path / "remote"
    push_to(Repository(src.root), str(where), "dir")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    with serving(where) as s:
        head = urllib.request.Request(f"{s.base}api/raw?rev=v1&path=a.txt", method="HEAD")
        with urllib.request.urlopen(head, timeout=60) as answer:
            assert answer.headers["content-length"] == "6" and answer.read() == b""
        page.goto(s.url + "#/version?rev=v1&file=a.txt")
        link = page.locator("section.preview a.download")
        with page.expect_download() as got:
            link.click()
        assert Path(got.value.path()).read_bytes() == b"hello\n"
        [pack] = (where / "packs").iterdir()
        pack.rename(tmp_path / "lost")
        link.click()
        expect(page.locator("section.preview .download-said .error")).to_contain_text(
            "a.txt of v1 cannot be read from the remote (pack "
        )
        (tmp_path / "lost").rename(pack)
    src.fsck_clean()


def test_a_tables_rows_are_counted_after_its_first_page_is_shown(
    page: Page, previews_server: Server
) -> None:
    """The page shows a table's first rows before they are counted, then the count: the
    number of rows and the pager, or, for a row of another width further on, the note
    saying the file is no table after all."""
    page.goto(previews_server.url + "#/version?rev=v1&file=counted.csv")
    preview = page.locator("section.preview")
    expect(preview).to_contain_text("CSV · 80 rows · 300 columns")
    expect(preview.locator(".pager").last).to_contain_text(re.compile(r"1\W50 of 80"))
    page.goto(previews_server.url + "#/version?rev=v1&file=late.csv")
    expect(preview.locator("p.note")).to_contain_text("Expected Number of Columns")
    expect(preview.locator("table.data")).to_have_count(0)


def test_a_wide_tables_values_stay_whole_and_the_table_scrolls(
    page: Page, previews_server: Server
) -> None:
    """100 columns of a preview: each value on one line and the table scrolling sideways,
    where every column was squeezed into the page a character or two a line."""
    page.goto(previews_server.url + "#/version?rev=v1&file=scroll.csv")
    box = page.locator("section.preview .scroll")
    expect(box.locator("th")).to_have_count(100)
    assert box.evaluate("b => b.scrollWidth > b.clientWidth")
    one_line = box.locator("td").first.evaluate("c => c.getClientRects().length")
    heights = box.locator("tbody tr").first.evaluate("r => [...r.cells].map(c => c.offsetHeight)")
    header = box.locator("thead tr").evaluate("r => [...r.cells].map(c => c.offsetHeight)")
    assert one_line == 1 and max(heights) < 2 * min(heights) and max(header) < 2 * min(heights)


def test_a_repository_of_many_branches_and_tags_is_filtered_by_typing_a_name(
    page: Page, tmp_path: Path
) -> None:
    """Past the 200 names a versions page lists, the branch and tag filters and the
    branch to delete are fields offering those names, and any other can be typed."""
    r = init_repo(tmp_path / "many")
    commit_files(r, {"a.txt": b"one\n"}, "first")
    switch_in_process(r, "side", create=True)
    tip = bytes.fromhex(commit_files(r, {"b.txt": b"two\n"}, "on side"))
    switch_in_process(r, "main")
    handle = Repository(r.root)
    made = [(f"refs/{kind}/{c}{i:03}", tip, None) for kind, c in (("heads", "x"), ("tags", "t"))
            for i in range(250)]  # fmt: skip
    assert handle.refs.update_many(made) == {}  # (one fsync of each folder, not 500)
    handle.store.close()
    with serving(r.root, "--allow-write") as s:
        page.goto(s.url + "#/versions")
        expect(page.locator(".timeline li")).to_have_count(1)
        expect(page.locator("datalist#branch-names option")).to_have_count(200)
        form = page.locator("form.filters")
        form.locator('input[name="branch"]').fill("x249")
        form.locator('input[name="tag"]').fill("t249")
        form.get_by_role("button", name="Filter").click()
        expect(page.locator(".timeline li").first).to_contain_text("on side")
        deleting = page.locator("form.delete-branch-form")
        deleting.locator('input[name="delete-branch"]').fill("x248")
        deleting.get_by_role("button", name="Delete branch").click()
        deleting.get_by_role("button", name="Really delete x248?").click()
        # as `dvfs branch -d` says it: side's v2, numbered along side, with its id
        said = f"deleted branch x248 (was v2 {tip.hex()[:10]})"
        expect(deleting.locator(".said")).to_contain_text(said)
    assert "x248" not in [b["name"] for b in r.json("branch", "--json")]
    fsck_clean(r.root)


def test_a_clone_shows_its_older_versions_files_and_metrics_from_its_remote(
    page: Page, pushed: str, s3_env: S3Server, tmp_path: Path
) -> None:
    """A clone of a remote on SeaweedFS holds the data of what it checked out (v3) only:
    an older version's file preview and the experiments' metrics of v1 and v2 are
    downloaded from the remote, as `dvfs cat` and `dvfs compare` download them (they
    showed as "not in the local store"), into the clone's store; so are the rows and
    the image of v1 a diff shows."""
    assert_ok(run(tmp_path, "clone", pushed, "clone", "--endpoint-url", s3_env.endpoint))
    clone = tmp_path / "clone"
    with serving(clone) as s:
        page.goto(s.url + "#/diff?old=v1&new=v2")
        changed = page.locator("tr.change", has_text="data/train.csv")
        changed.get_by_role("button", name="rows").click()
        expect(page.locator("section.rowdiff")).to_contain_text("2 added, 1 removed")
        page.locator("tr.change", has_text="img/red.png").get_by_role(
            "button", name="images"
        ).click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('.images img')]"
            ".every(i => i.complete && i.naturalWidth > 0)"
        )
        page.goto(s.url + "#/version?rev=v1&dir=data&file=data/notes.txt")
        expect(page.locator("pre.text")).to_have_text("hello\nworld\n")
        page.goto(s.url + "#/version?rev=v1&dir=data&file=data/train.csv")
        preview = page.locator("section.preview")
        expect(preview).to_contain_text("CSV · 300 rows · 3 columns")
        page.goto(s.url + "#/experiments")
        table = page.locator("table.experiments")
        expect(table.locator("tbody tr")).to_have_count(3)
        expect(table.locator("tbody tr").nth(1)).to_contain_text("8.5")  # v2's acc
        expect(page.locator("p.note")).to_have_count(0)
    # the server stopped: what it downloaded is in the store
    assert run(clone, "cat", "--offline", "v1:data/notes.txt").raw == b"hello\nworld\n"
    fsck_clean(clone)


def test_a_clones_remote_gone_is_said_on_the_page(page: Page, tmp_path: Path) -> None:
    """The remote of a clone moved away: an older version's file and the experiments
    say the data is not here and why (the remote named), not a blank or an object id."""
    src = init_repo(tmp_path / "src")
    commit_files(src, {"a.txt": b"first\n"}, "first")
    commit_files(src, {"a.txt": b"second\n"}, "second")
    where = tmp_path / "remote"
    push_to(Repository(src.root), str(where), "origin")
    assert_ok(run(tmp_path, "clone", str(where), "clone"))
    where.rename(tmp_path / "moved")
    with serving(tmp_path / "clone") as s:
        page.goto(s.url + "#/version?rev=v1&file=a.txt")
        box = page.locator("section.preview .error")
        expect(box).to_contain_text(
            f"a.txt of v1: its data is not in the local store, and remote origin ({where}) "
        )
        expect(box).to_contain_text(f"directory {where} does not exist")
        expect(page.locator("section.preview a.download")).to_have_count(0)
    (tmp_path / "moved").rename(where)
    fsck_clean(tmp_path / "clone")
