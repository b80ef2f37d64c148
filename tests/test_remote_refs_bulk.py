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
    url = f"s3://{s3_env.make_bucket()}/refs"
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
