"""A remote holding thousands of refs (forged, or merely a large team's) is read in bulk.

On S3 a listing gives every ref's ETag: refs holding the same bytes are read with one
GET, and a ref still naming what this clone holds for it is not read again. A clone
of a remote with 600 refs naming one version costs a handful of requests, not 600. And
refs skipped by the thousand give a bounded number of warnings.
"""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.cli import Repo, assert_ok, run, warnings_of
from tests.support.forge import Forge, file_entry, nested
from tests.support.s3server import S3Server
from vfs.backends import open_backend
from vfs.repo.repository import Repository


def requests_of(out: str) -> int:
    """The request count a clone, fetch or pull states on its closing line."""
    found = re.findall(r"(\d[\d,]*) requests", out)
    assert found, out
    return int(found[-1].replace(",", ""))


def forged(tmp_path: Path, s3_env: S3Server, versions: int) -> tuple[Forge, str, list[bytes]]:
    """An S3 remote holding ``versions`` distinct versions (not yet published)."""
    url = f"s3://{s3_env.make_prefix()}/refs"
    forge = Forge(tmp_path / "unused", open_backend(url, endpoint_url=s3_env.endpoint))
    ids = []
    for n in range(versions):
        data = f"v{n}\n".encode()
        leaf = file_entry(b"a.txt", forge.chunk(data), len(data))
        ids.append(forge.version(nested(forge, [b"data"], [leaf]), number=1))
    return forge, url, ids


def test_a_clone_of_thousands_of_refs_naming_one_version_reads_each_bytes_once(
    tmp_path: Path, s3_env: S3Server
) -> None:
    forge, url, (v1,) = forged(tmp_path, s3_env, 1)
    forge.publish({f"br-{n}": v1 for n in range(300)}, tags={f"tag-{n}": v1 for n in range(300)})
    r = assert_ok(run(tmp_path, "clone", url, "b", "--endpoint-url", s3_env.endpoint))
    assert not warnings_of(r), r
    assert requests_of(r.out + r.err) < 30, r  # was over 600: one GET per ref
    refs = Repository(tmp_path / "b").refs
    assert len(refs.names("remotes")) == 300 and len(refs.tags()) == 300
    assert set(refs.tags().values()) == {v1}
    Repo(tmp_path / "b").fsck_clean()


def test_fetching_again_reads_no_ref_that_did_not_move(tmp_path: Path, s3_env: S3Server) -> None:
    forge, url, ids = forged(tmp_path, s3_env, 41)
    forge.publish({"main": ids[0]}, tags={f"tag-{n}": v for n, v in enumerate(ids)})
    r = assert_ok(run(tmp_path, "clone", url, "b", "--endpoint-url", s3_env.endpoint))
    assert requests_of(r.out + r.err) > 41  # distinct values: each read once
    b = Repo(tmp_path / "b")
    r = b.ok("fetch")
    assert requests_of(r.out + r.err) < 15, r  # was over 41: every ref read again

    # a ref moved since: read, and used
    forge.publish({"main": ids[5]})
    r = b.ok("fetch")
    assert Repository(b.root).refs.get("refs/remotes/origin/main") == ids[5]
    assert requests_of(r.out + r.err) < 15, r
    b.fsck_clean()


def test_thousands_of_refs_skipped_give_a_bounded_number_of_warnings(tmp_path: Path) -> None:
    """A remote of 300 branches no name here can hold gave 300 warnings (100,000 refs:
    100,000 lines); the first 50 are shown, and one line says how many more."""
    forge = Forge(tmp_path / "evil")
    data = b"v\n"
    v1 = forge.version(nested(forge, [b"data"], [file_entry(b"a.txt", forge.chunk(data), 2)]))
    forge.publish({"main": v1, **{f"we ird-{n}": v1 for n in range(300)}})
    r = assert_ok(run(tmp_path, "clone", forge.url, "b"))
    said = warnings_of(r)
    assert len(said) == 51, len(said)
    assert said[-1].endswith("250 more warnings like those above not shown (refs of the remote "
                             "skipped or not copied here)"), said[-1]  # fmt: skip
    doc = assert_ok(run(tmp_path, "clone", forge.url, "c", "--json")).json()
    assert len(doc["transfer"]["warnings"]) == 51
    assert Repository(tmp_path / "b").refs.names("remotes") == ["origin/main"]
    Repo(tmp_path / "b").fsck_clean()


def test_pushing_tags_again_reads_and_writes_none_that_are_there(
    tmp_path: Path, s3_env: S3Server
) -> None:
    """`dvfs push --tags` asked the remote about every tag it already held (a HEAD, a
    refused write and a read: 1,222 requests for this push of 302); those its listing shows
    holding this clone's bytes cost nothing now. A new tag is pushed, and one that
    names another version there is still left as it is and named."""
    forge, url, (v1, v2) = forged(tmp_path, s3_env, 2)
    forge.publish({"main": v1}, tags={f"tag-{n}": v1 for n in range(300)} | {"moved": v2})
    assert_ok(run(tmp_path, "clone", url, "b", "--endpoint-url", s3_env.endpoint))
    b = Repo(tmp_path / "b")
    b.ok("tag", "-d", "moved")
    b.ok("tag", "moved", "v1")  # (another version here than there)
    b.write("data/b.txt", "b\n")
    b.ok("add", "data")
    b.commit("two")
    b.ok("tag", "fresh")
    r = b.run("push", "--tags")
    assert r.code == 1 and "tag moved differs on the remote" in r.out + r.err, r
    assert requests_of(r.out + r.err) < 40, r  # was 1,222
    theirs = Repository(b.root)
    b.ok("fetch")
    assert theirs.refs.get("refs/remotes/origin/main") is not None
    clone = assert_ok(run(tmp_path, "clone", url, "c", "--endpoint-url", s3_env.endpoint))
    assert not warnings_of(clone), clone
    tags = Repository(tmp_path / "c").refs.tags()
    assert tags["fresh"] == theirs.refs.tags()["fresh"] and tags["moved"] == v2
    assert len(tags) == 302 and {tags[f"tag-{n}"] for n in range(300)} == {v1}
    b.fsck_clean()


def test_pushing_many_new_tags_costs_two_requests_a_tag(tmp_path: Path, s3_env: S3Server) -> None:
    """`dvfs push --tags` of 2,000 new tags made 12,007 requests: for each a HEAD of the
    tag, a HEAD of the audit chain's last entry and of the one after, a read of the last
    entry, the entry's write and the tag's. The chain's end is found once now: an entry
    and a tag, both written only if absent, two requests a tag. The remote's chain
    stays intact, each tag with its entry."""
    forge, url, (v1,) = forged(tmp_path, s3_env, 1)
    forge.publish({"main": v1})
    assert_ok(run(tmp_path, "clone", url, "b", "--endpoint-url", s3_env.endpoint))
    b = Repo(tmp_path / "b")
    Repository(b.root).refs.update_many(
        [(f"refs/tags/t-{n:03}", v1, None) for n in range(150)]
    )  # (set up in this process: 150 `dvfs tag` would take a minute)
    r = b.ok("push", "--tags")
    assert requests_of(r.out + r.err) < 2 * 150 + 30, r  # was 906
    assert b.ok("audit", "verify", "--remote", "origin").out.strip().endswith("intact")
    pushed = [e for e in b.json("audit", "--remote", "origin", "--json") if "/tags/" in e["ref"]]
    assert sorted(e["ref"] for e in pushed) == [f"refs/tags/t-{n:03}" for n in range(150)]
    clone = assert_ok(run(tmp_path, "clone", url, "c", "--endpoint-url", s3_env.endpoint))
    assert not warnings_of(clone), clone
    assert Repository(tmp_path / "c").refs.tags() == Repository(b.root).refs.tags()
    assert len(Repository(b.root).refs.tags()) == 150
    b.fsck_clean()


def test_a_clone_of_a_directory_remote_reads_its_refs_folder_by_folder(tmp_path: Path) -> None:
    """A clone of a directory remote of 300 tags read each tag as a request of its own
    (its folders opened again from the remote's root, 16 threads at a time): 311
    requests. Each folder of refs is opened once now and its files read in turn. A
    link among them is still skipped with a warning, never followed."""
    forge = Forge(tmp_path / "remote")
    v1 = forge.version(nested(forge, [b"data"], [file_entry(b"a.txt", forge.chunk(b"v\n"), 2)]))
    forge.publish({"main": v1}, tags={f"t-{n:03}": v1 for n in range(300)})
    (tmp_path / "secret").write_text("0" * 64 + "\n")
    (tmp_path / "remote" / "refs" / "tags" / "linked").symlink_to(tmp_path / "secret")
    r = assert_ok(run(tmp_path, "clone", forge.url, "b"))
    assert requests_of(r.out + r.err) < 30, r  # was 311
    said = warnings_of(r)
    assert len(said) == 1 and "linked" in said[0] and "symbolic link" in said[0], said
    tags = Repository(tmp_path / "b").refs.tags()
    assert len(tags) == 300 and set(tags.values()) == {v1}
    Repo(tmp_path / "b").fsck_clean()


def test_pushing_many_new_branches_finds_the_audit_chains_end_once(tmp_path: Path) -> None:
    """`dvfs push --all` of 40 new branches asked where the remote's audit chain ends
    again for each branch (two probes and a read of the last entry, then the entry):
    244 requests. The entries are appended as one batch now, before any branch moves;
    each branch still moves only if absent there. The chain stays intact, each branch
    with its entry, and a clone has them all."""
    forge = Forge(tmp_path / "remote")
    v1 = forge.version(nested(forge, [b"data"], [file_entry(b"a.txt", forge.chunk(b"v\n"), 2)]))
    forge.publish({"main": v1})
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = Repo(tmp_path / "b")
    Repository(b.root).refs.update_many([(f"refs/heads/b-{n:02}", v1, None) for n in range(40)])
    r = b.ok("push", "--all")
    assert requests_of(r.out + r.err) < 3 * 40 + 30, r  # was 244
    assert b.ok("audit", "verify", "--remote", "origin").out.strip().endswith("intact")
    pushed = [e for e in b.json("audit", "--remote", "origin", "--json") if "/heads/b-" in e["ref"]]
    assert sorted(e["ref"] for e in pushed) == [f"refs/heads/b-{n:02}" for n in range(40)]
    assert len(Repository(b.root).refs.names("remotes")) == 41
    assert_ok(run(tmp_path, "clone", forge.url, "c"))
    assert len(Repository(tmp_path / "c").refs.names("remotes")) == 41
    b.fsck_clean()
