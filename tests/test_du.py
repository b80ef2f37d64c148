"""``dvfs du`` (issue 16): sizes of versions, dedup, and what each version alone costs."""

from __future__ import annotations

import os

from tests.support.cli import Repo, add_in_process, assert_error, commit_in_process
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture

KiB = 1024


def test_du_counts_shared_and_unique_bytes(repo: Repo) -> None:
    shared = os.urandom(200 * KiB)  # random: stored as it is, so stored == raw
    old, new = os.urandom(100 * KiB), os.urandom(150 * KiB)
    text = b"row,value\n" * 30_000  # compresses well
    repo.write("shared.bin", shared)
    repo.write("data.bin", old)
    repo.write("sub/text.csv", text)
    add_in_process(repo, ".")
    commit_in_process(repo, "one")
    repo.write("data.bin", new)
    add_in_process(repo, "data.bin")
    commit_in_process(repo, "two")
    repo.write("data.bin", b"staged")  # the index no longer uses v2's data.bin
    add_in_process(repo, "data.bin")

    u = repo.json("du", "--json")
    sizes = len(shared) + len(text)
    assert u["logical"] == 2 * sizes + len(old) + len(new)
    assert u["distinct"] == sizes + len(old) + len(new)
    assert u["dedup_ratio"] == round(u["logical"] / u["distinct"], 3)
    assert u["compression_ratio"] > 1.2  # the CSV shrank
    by = {v["version"]: v for v in u["versions"]}
    assert set(by) == {"v1", "v2"}
    for big in (*u["biggest"], *repo.json("du", "v1", "--json")["biggest"]):
        assert big.pop("id") == by[big["version"]]["id"], big
        assert big.pop("revision") == big["version"]  # one branch: vN reads as it
    assert by["v1"]["unique"] == len(old) and by["v2"]["unique"] == len(new)
    # each content once, at a version holding it (the newest, walking from the refs)
    assert u["biggest"] == [
        {"path": "sub/text.csv", "size": len(text), "version": "v2"},
        {"path": "shared.bin", "size": len(shared), "version": "v2"},
        {"path": "data.bin", "size": len(new), "version": "v2"},
        {"path": "data.bin", "size": len(old), "version": "v1"},
    ]
    assert u["not_local"] == 0

    one = repo.json("du", "v1", "--json")
    for big in one["biggest"]:
        del big["id"], big["revision"]
    assert [v["version"] for v in one["versions"]] == ["v1"]
    assert one["logical"] == sizes + len(old)
    assert one["versions"][0]["unique"] == len(old)  # v2 still counts as a user
    assert one["biggest"] == [  # v1's files only: v2's data.bin is not among them
        {"path": "sub/text.csv", "size": len(text), "version": "v1"},
        {"path": "shared.bin", "size": len(shared), "version": "v1"},
        {"path": "data.bin", "size": len(old), "version": "v1"},
    ]
    human = repo.ok("du").out
    assert "unique to each version" in human and "sub/text.csv" in human
    repo.fsck_clean()


def test_du_of_a_path_says_it_sizes_versions_and_what_lists_files(repo: Repo) -> None:
    """`dvfs du data`, as Unix du is used, said "unknown revision data; run `dvfs log`",
    which does not say that du takes versions nor how to see a directory's sizes."""
    repo.write("my data/a.csv", "1,2\n")
    add_in_process(repo, "my data")
    commit_in_process(repo, "one")
    assert_error(
        repo.run("du", "my data"),
        "my data is a path, and dvfs du sizes versions: `dvfs ls -r 'my data'` lists",
        code=2,
    )
    assert_error(repo.run("du", "nope"), "unknown revision nope", code=2)
    assert "1 version" in repo.ok("du", "v1").out
    repo.fsck_clean()


def test_du_names_the_version_of_a_big_file_with_its_id(repo: Repo) -> None:
    """Each branch numbers its own chain: "(v2)" beside a big file was main's v2 or
    side's, as like as not."""
    repo.write("a.bin", os.urandom(3 * KiB))
    add_in_process(repo, "a.bin")
    commit_in_process(repo, "one")
    repo.ok("switch", "-c", "side")
    repo.write("side.bin", os.urandom(2 * KiB))
    repo.ok("add", "side.bin")
    side = repo.commit("side")
    repo.ok("switch", "main")
    repo.write("main.bin", os.urandom(1 * KiB))
    repo.ok("add", "main.bin")
    main = repo.commit("main")
    lines = repo.ok("du").out.split("biggest files:\n")[1].splitlines()
    shown = dict(ln.split("  ")[-2:] for ln in lines)
    assert shown["side.bin"] == f"(v2 {side[:10]})" and shown["main.bin"] == f"(v2 {main[:10]})"
    repo.fsck_clean()
