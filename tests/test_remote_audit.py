"""The remote audit chain on the real SeaweedFS: pushes append, racing writers never
fork it, and `dvfs audit verify --remote` names an edited, deleted or inserted entry."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    assert_error,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    warnings_of,
)
from tests.support.remote import Remote
from tests.support.remote import dir_remote_fixture as dir_remote_fixture
from tests.support.remote import remote_fixture as remote_fixture
from tests.support.s3server import S3Server
from vfs.backends import open_backend
from vfs.errors import RemoteError
from vfs.model.ids import hash_bytes
from vfs.remote import audit as remote_audit
from vfs.remote.config import Meter
from vfs.remote.layout import audit_key


@pytest.fixture(name="s3_remote")
def s3_remote_fixture(s3_env: S3Server) -> Remote:
    url = f"s3://{s3_env.make_prefix()}/team/data"
    backend = open_backend(url, endpoint_url=s3_env.endpoint)
    return Remote("s3", url, ("--endpoint-url", s3_env.endpoint), backend)


def encoded(entry: dict[str, object]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":")).encode()


def pushed_twice(repo: Repo, remote: Remote) -> tuple[str, str]:
    first = commit_files(repo, {"a": "1"}, "one")
    remote.add_to(repo)
    repo.ok("push")
    second = commit_files(repo, {"a": "2"}, "two")
    repo.ok("tag", "t2")
    repo.ok("push", "--tags")
    return first, second


def test_each_push_appends_an_entry_the_chain_verifies(
    s3_remote: Remote, make_repo: RepoFactory
) -> None:
    repo = make_repo()
    first, second = pushed_twice(repo, s3_remote)
    assert s3_remote.list_keys("audit/") == {audit_key(n) for n in (1, 2, 3)}
    rows = repo.json("audit", "--remote", "origin", "--json")
    assert [(r["seq"], r["op"], r["ref"], r["old"], r["new"]) for r in rows] == [
        (1, "push", "refs/heads/main", None, first),
        (2, "push", "refs/heads/main", first, second),
        (3, "push", "refs/tags/t2", None, second),
    ]
    assert rows[1]["cmd"][-2:] == ["push", "--tags"]
    out = repo.json("audit", "verify", "--remote", "origin", "--json")
    assert out == {"entries": 3, "intact": True, "problems": [], "torn_last_line": False}
    assert "3 entries: intact" in repo.ok("audit", "verify", "--remote", "origin").out
    repo.ok("push")  # up to date: nothing moves, no entry
    assert len(s3_remote.list_keys("audit/")) == 3
    repo.fsck_clean()


def test_two_racing_writers_never_fork_the_chain(s3_remote: Remote, tmp_path: Path) -> None:
    start = threading.Barrier(2)
    done: dict[str, list[int]] = {"a": [], "b": []}

    def writer(name: str) -> None:
        # each its own connection and its own record of the chain's end, as two clones
        backend = open_backend(s3_remote.url, endpoint_url=s3_remote.options[1])
        head = tmp_path / name / "audit.head"
        start.wait()
        for i in range(6):
            seq = remote_audit.append_remote(
                backend, head, "push", "refs/heads/main", None, None, name + str(i)
            )
            done[name].append(seq)

    threads = [threading.Thread(target=writer, args=(n,)) for n in done]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done["a"] + done["b"]) == list(range(1, 13))  # every number once
    v = remote_audit.verify_remote(s3_remote.backend, tmp_path / "verifier.head")
    assert v.problems == [] and v.entries == 12
    notes = [e.note for e in remote_audit.remote_entries(s3_remote.backend)]
    assert sorted(notes) == sorted(f"{n}{i}" for n in "ab" for i in range(6))
    for name in done:  # each writer's own entries are in the order it wrote them
        assert [x for x in notes if x.startswith(name)] == [f"{name}{i}" for i in range(6)]


def test_verify_names_an_edited_deleted_or_inserted_entry(
    s3_remote: Remote, make_repo: RepoFactory
) -> None:
    repo = make_repo()
    pushed_twice(repo, s3_remote)
    repo.ok("audit", "verify", "--remote", "origin")  # this clone now knows the chain's end
    backend = s3_remote.backend
    original = {n: backend.get(audit_key(n)) for n in (1, 2, 3)}

    def verify_says(*fragments: str) -> None:
        r = repo.run("audit", "verify", "--remote", "origin", "--json")
        assert r.code == 1, str(r)
        problems = " ".join(r.json()["problems"])
        for f in fragments:
            assert f in problems, problems

    edited = json.loads(original[2])
    edited["user"] = "mallory"
    backend.put(audit_key(2), encoded(edited))
    verify_says("entry 2 was edited")
    backend.put(audit_key(2), original[2])
    backend.delete(audit_key(2))
    verify_says("entry 2 is missing: deleted")
    backend.put(audit_key(2), original[2])
    # an entry slipped in at the end that does not link to the last one
    fake = dict(json.loads(original[3]), seq=4, prev="0" * 64)
    backend.put(audit_key(4), encoded(fake))
    verify_says("entry 4 inserted")
    backend.delete(audit_key(4))
    backend.put("audit/notes", b"hello")
    verify_says("audit/notes is not an entry: it was inserted")
    backend.delete("audit/notes")
    # the last entry edited, or cut off: this clone saw the chain's end
    last = dict(json.loads(original[3]), note="rewritten")
    backend.put(audit_key(3), encoded(last))
    verify_says("entry 3 was edited")
    backend.delete(audit_key(3))
    verify_says("entries 3..3 are missing: deleted from the end")
    backend.put(audit_key(3), original[3])
    assert repo.json("audit", "verify", "--remote", "origin", "--json")["intact"] is True
    line = repo.fail("audit", "verify", "--remote", "nosuch")
    assert "nosuch" in line
    repo.fsck_clean()


def test_a_cut_or_edited_end_still_shows_after_the_next_push(
    s3_remote: Remote, make_repo: RepoFactory
) -> None:
    """The chain's end cut off, or its last entry edited, behind this clone's back: the
    next push appended after what was left and moved this clone's record to it, so the
    cut verified as intact from then on, here and everywhere. The push now appends
    after what this clone saw, and verify keeps naming it."""
    repo = make_repo()
    pushed_twice(repo, s3_remote)
    repo.ok("audit", "verify", "--remote", "origin")
    backend = s3_remote.backend
    tag_entry = backend.get(audit_key(3))
    backend.delete(audit_key(3))  # the tag's entry, cut off the end
    repo.write("a", "3")
    repo.ok("add", "a")
    repo.commit("three")
    repo.ok("push")
    assert sorted(backend.list("audit/")) == [audit_key(n) for n in (1, 2, 4)]
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    assert r.code == 1 and "entry 3 is missing: deleted" in " ".join(r.json()["problems"])

    edited = dict(json.loads(backend.get(audit_key(4))), note="rewritten")
    backend.put(audit_key(4), encoded(edited))  # the last entry, edited
    repo.write("a", "4")
    repo.ok("add", "a")
    repo.commit("four")
    repo.ok("push")
    assert audit_key(5) in set(backend.list("audit/"))
    backend.put(audit_key(3), tag_entry)  # (the gap mended, so verify reaches entry 5)
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    assert r.code == 1 and "entry 4 was edited" in " ".join(r.json()["problems"])
    repo.fsck_clean()


def test_a_second_verify_reads_only_entries_listed_differently(
    s3_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo()
    pushed_twice(repo, s3_remote)
    head = tmp_path / "remotes" / "origin" / remote_audit.REMOTE_HEAD
    first = Meter(s3_remote.backend)
    assert remote_audit.verify_remote(first, head).problems == []
    assert first.requests == 1 + 3  # the listing, then each entry
    again = Meter(s3_remote.backend)
    assert remote_audit.verify_remote(again, head).problems == []
    assert again.requests == 1  # every entry listed as when it was checked
    # an entry rewritten with other bytes is read again, and named
    original = s3_remote.backend.get(audit_key(2))
    s3_remote.backend.put(audit_key(2), encoded(dict(json.loads(original), note="x")))
    edited = Meter(s3_remote.backend)
    problems = remote_audit.verify_remote(edited, head).problems
    assert edited.requests == 2 and "entry 2 was edited" in " ".join(problems)
    # its original bytes put back (a new LastModified): read again, and intact
    s3_remote.backend.put(audit_key(2), original)
    assert remote_audit.verify_remote(s3_remote.backend, head).problems == []
    # a damaged record of checked entries only means reading every entry again
    (head.parent / remote_audit.VERIFIED).write_bytes(b"\x00garbage\n")
    damaged = Meter(s3_remote.backend)
    assert remote_audit.verify_remote(damaged, head).problems == []
    assert damaged.requests == 1 + 3
    # --full reads every entry; it goes with --remote only
    assert "3 entries: intact" in repo.ok("audit", "verify", "--remote", "origin", "--full").out
    assert "--full goes with --remote" in repo.fail("audit", "verify", "--full")
    repo.fsck_clean()


def test_the_listing_says_which_entries_it_could_not_read(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """An entry garbled on the remote was left out of `dvfs audit --remote` without a word,
    so the listing looked whole; then it warned and exited 0, where the local listing
    with a line that is no entry exits 1 after listing the rest and naming the line.
    Both agree now: the rest listed (--json too), one error line naming the entry and
    the command that checks the chain, exit 1."""
    repo = make_repo()
    remote = tmp_path / "remote"
    repo.write("a", "1")
    repo.ok("add", "a")
    repo.commit("one")
    repo.ok("remote", "add", "origin", str(remote))
    repo.ok("push")
    repo.write("a", "2")
    repo.ok("commit", "-am", "two")
    repo.ok("push")
    (remote / audit_key(1)).write_bytes(b"junk")
    r = repo.run("audit", "--remote", "origin")
    assert [ln.split()[0] for ln in r.out.splitlines()] == ["2"]
    assert assert_error(r, code=1) == (
        "dvfs: error: entry 1 of remote origin's audit chain is not an entry (edited or "
        "damaged), so not listed: `dvfs audit verify --remote origin` checks the chain"
    )
    assert warnings_of(r) == []
    r = repo.run("audit", "--remote", "origin", "--json")
    assert_error(r, "entry 1 of remote origin's audit chain", code=1)
    assert [e["seq"] for e in r.json()] == [2]
    log = repo.root / ".dvfs" / "audit.log"
    whole = log.read_bytes()
    log.write_bytes(b"junk\n" + whole.split(b"\n", 1)[1])
    local = repo.run("audit")
    assert_error(local, "line 1 of .dvfs/audit.log is not an entry", code=1)
    log.write_bytes(whole)
    repo.fsck_clean()


@pytest.mark.parametrize(
    "field",
    [{"old": 5}, {"new": {"x": 1}}, {"new": "not hex"}, {"user": ["a"]}, {"cmd": "dvfs push"}],
)
def test_an_entry_whose_fields_are_of_another_type_is_not_an_entry(
    make_repo: RepoFactory, tmp_path: Path, field: dict[str, object]
) -> None:
    """A remote entry whose `old` was a number made `dvfs audit --remote` an "internal
    error (TypeError)", and `--json` repeated whatever a field held (a mapping for an
    id). An entry whose fields are not what dvfs writes is not an entry: left out of the
    listing, which then names it and the command that checks the chain (exit 1)."""
    repo = make_repo()
    remote = tmp_path / "remote"
    repo.write("a", "1")
    repo.ok("add", "a")
    repo.commit("one")
    repo.ok("remote", "add", "origin", str(remote))
    repo.ok("push")
    repo.write("a", "2")
    repo.ok("commit", "-am", "two")
    repo.ok("push")
    entry = json.loads((remote / audit_key(1)).read_bytes())
    (remote / audit_key(1)).write_bytes(encoded({**entry, **field}))
    for args in ((), ("--json",)):
        r = repo.run("audit", "--remote", "origin", *args)
        assert assert_error(r, code=1) == (
            "dvfs: error: entry 1 of remote origin's audit chain is not an entry (edited or "
            "damaged), so not listed: `dvfs audit verify --remote origin` checks the chain"
        ), r
    assert [e["seq"] for e in r.json()] == [2]
    repo.fsck_clean()


def spoil(remote: Remote, key: str, how: str) -> None:
    """Put in ``key``'s place on ``remote`` what no entry can be read from."""
    if how == "too large":
        remote.backend.put(key, b"x" * ((1 << 20) + 1))
        return
    remote.backend.delete(key)
    if remote.kind == "s3":  # (a "folder": a key below it)
        assert how == "folder"
        remote.backend.put(f"{key}/x", b"x")
        return
    path = Path(remote.url.removeprefix("file://")) / key
    {"FIFO": os.mkfifo, "folder": os.mkdir}.get(how, lambda p: p.symlink_to("/etc/passwd"))(path)


def mend(remote: Remote, key: str, data: bytes) -> None:
    if remote.kind == "s3":
        remote.backend.delete(f"{key}/x")
    else:
        path = Path(remote.url.removeprefix("file://")) / key
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    remote.backend.put(key, data)


@pytest.mark.parametrize(
    ("remote", "how", "seen"),
    [
        ("dir", "too large", True),
        ("dir", "FIFO", False),
        ("dir", "link", True),
        ("dir", "folder", False),
        ("s3", "too large", True),
        ("s3", "folder", False),
    ],
    indirect=["remote"],
)
def test_a_last_entry_no_one_can_read_stops_no_push(
    remote: Remote, make_repo: RepoFactory, how: str, seen: bool
) -> None:
    """A remote whose last audit entry could not be read (larger than any entry; on a
    directory remote a FIFO, a link or a folder) refused every push in one line, for
    every clone: the remote was stuck. The push goes on now: its entry follows what
    this clone saw of the chain's end (the hash of no bytes where it saw nothing), and
    verify still names the damage; once the entry is put back, a chain this clone saw
    whole is whole again."""
    repo = make_repo()
    commit_files(repo, {"a": "1"}, "one")
    remote.add_to(repo)
    repo.ok("push")
    commit_files(repo, {"a": "2"}, "two")
    repo.ok("push")
    second = remote.backend.get(audit_key(2))
    if not seen:  # a clone that has no record of the chain's end
        (repo.root / ".dvfs/remotes/origin" / remote_audit.REMOTE_HEAD).unlink()
    spoil(remote, audit_key(2), how)
    three = commit_files(repo, {"a": "3"}, "three")
    repo.ok("push")
    assert remote.ref() == three
    entry = json.loads(remote.backend.get(audit_key(3)))
    assert entry["new"] == three
    assert entry["prev"] == (hash_bytes(second).hex() if seen else remote_audit.UNREADABLE)
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    problem = "entry 2 is missing" if how == "folder" else "entry 2 is not an entry"
    assert r.code == 1 and problem in " ".join(r.json()["problems"]), str(r)
    mend(remote, audit_key(2), second)
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    if seen:
        assert r.json()["intact"] is True, str(r)
    else:
        assert "entry 2 was edited, or entry 3 inserted" in " ".join(r.json()["problems"])
    repo.fsck_clean()


def test_an_entry_numbered_last_of_all_refuses_the_push_in_one_line(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A remote holding ``audit/999999999999`` made a clone with no record of the chain's
    end write its entry at ``audit/1000000000000``, a key no listing reads as an entry
    (verify called it inserted), and each push after it another. Entry numbers have 12
    digits: the push is refused in one line naming the key and what to do, before any
    entry is written or ref moved."""
    repo = make_repo()
    one = commit_files(repo, {"a": "1"}, "one")
    dir_remote.add_to(repo)
    repo.ok("push")
    dir_remote.backend.put(audit_key(999_999_999_999), dir_remote.backend.get(audit_key(1)))
    (repo.root / ".dvfs/remotes/origin" / remote_audit.REMOTE_HEAD).unlink()
    commit_files(repo, {"a": "2"}, "two")
    line = repo.fail("push", fragments=("audit/999999999999", "no ref was moved", "owner"))
    assert "check its audit/ folder" in line
    assert dir_remote.list_keys("audit/") == {audit_key(1), audit_key(999_999_999_999)}
    assert dir_remote.ref() == one
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    assert r.json()["problems"] == ["entries 2..999999999998 are missing: deleted"], str(r)
    repo.fsck_clean()


def test_an_entry_under_another_number_is_not_listed_as_its_copy(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """An entry copied (or moved) to another key of the chain was listed by `dvfs audit
    --remote` as what it claims, so the listing showed entry 1 twice without a word
    (verify named it inserted). It is left out of the listing now, which names it as
    no entry and the command that checks the chain (exit 1), as an edited one."""
    repo = make_repo()
    commit_files(repo, {"a": "1"}, "one")
    dir_remote.add_to(repo)
    repo.ok("push")
    commit_files(repo, {"a": "2"}, "two")
    repo.ok("push")
    dir_remote.backend.put(audit_key(3), dir_remote.backend.get(audit_key(1)))
    r = repo.run("audit", "--remote", "origin")
    assert [ln.split()[0] for ln in r.out.splitlines()] == ["1", "2"], str(r)
    assert_error(r, "entry 3 of remote origin's audit chain is not an entry", code=1)
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    assert r.json()["problems"] == ["entry 3 holds entry 1's number: it was inserted or moved"]
    repo.fsck_clean()


def test_a_remote_failing_whole_is_not_taken_for_one_entry_refused(
    dir_remote: Remote, tmp_path: Path
) -> None:
    """A remote that fails for a reason of its own (here TLS, mid-push) was taken, by
    the append, for one entry refused as what it is (a link, a FIFO): it passed over
    the number and tried the next, a thousand times, three requests each, and then
    said that "1000 audit entries were written while this one waited". The error now
    stops the append at once, saying what it is."""
    tls = "TLS failed talking to the server: check http vs https in the endpoint URL"

    class FailingTLS(Meter):
        def create_many(self, items: Any, **kw: Any) -> Any:
            self._count()
            raise RemoteError(tls)

        def get_small(self, key: str, limit: int) -> bytes:
            self._count()
            raise RemoteError(tls)

        def head(self, key: str) -> Any:
            self._count()
            raise RemoteError(tls)

    remote_audit.append_remote(dir_remote.backend, None, "push", "refs/heads/a", None, None)
    failing = FailingTLS(dir_remote.backend)
    with pytest.raises(RemoteError, match="TLS failed"):
        remote_audit.append_remote(
            failing, tmp_path / "audit.head", "push", "refs/heads/b", None, None
        )
    assert failing.requests <= 3, failing.requests
    assert sorted(dir_remote.list_keys("audit/")) == [audit_key(1)]  # the one entry made


def test_an_audit_folder_replaced_by_a_link_refuses_the_push_in_one_line(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A directory remote whose audit/ folder a teammate replaced with a link (to a copy
    of it elsewhere) made the next push of a clone that had seen the chain probe every
    number up to the last an entry can have, each "taken" since refused, and run on
    without end. The push is refused now in one line naming the link, before any entry
    is written or ref moved, as verify and the listing are."""
    repo = make_repo()
    one = commit_files(repo, {"a": "1"}, "one")
    dir_remote.add_to(repo)
    repo.ok("push")
    folder = Path(dir_remote.url.removeprefix("file://")) / "audit"
    elsewhere = tmp_path / "elsewhere"
    shutil.move(folder, elsewhere)
    folder.symlink_to(elsewhere)
    commit_files(repo, {"a": "2"}, "two")
    assert_error(repo.run("push", timeout=60), "audit in", "is a symbolic link")
    assert sorted(os.listdir(elsewhere)) == [audit_key(1).removeprefix("audit/")]
    assert dir_remote.ref() == one
    for args in (("audit", "--remote", "origin"), ("audit", "verify", "--remote", "origin")):
        assert_error(repo.run(*args), "audit in", "is a symbolic link")
    repo.fsck_clean()


@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_an_audit_folder_replaced_by_a_file_refuses_the_push_in_one_line(
    dir_remote: Remote, make_repo: RepoFactory, kind: str
) -> None:
    """A directory remote whose audit/ folder was replaced by a file or a FIFO refused
    the push after a thousand tries, saying "1000 audit entries were written while this
    one waited: try again", though none was written and trying again never helps. The
    push now stops at the first try, saying no entry can be written there and whom to
    ask; no ref is moved."""
    repo = make_repo()
    one = commit_files(repo, {"a": "1"}, "one")
    dir_remote.add_to(repo)
    repo.ok("push")
    folder = Path(dir_remote.url.removeprefix("file://")) / "audit"
    shutil.rmtree(folder)
    if kind == "file":
        folder.write_bytes(b"junk\n")
    else:
        os.mkfifo(folder)
    commit_files(repo, {"a": "2"}, "two")
    line = assert_error(
        repo.run("push", timeout=60), "audit/000000000002", "no ref was moved", "owner"
    )
    assert "were written while this one waited" not in line
    assert dir_remote.ref() == one
    repo.fsck_clean()


@pytest.mark.parametrize("how", ["cut", "file"])
def test_the_listing_says_a_chain_ends_before_what_this_clone_saw(
    dir_remote: Remote, make_repo: RepoFactory, how: str
) -> None:
    """`dvfs audit --remote` of a chain whose last entries were deleted (or whose audit/
    folder became a file) listed what was left, or nothing, and exited 0, though this
    clone had seen the chain reach further. It now lists what is left and exits 1,
    naming the entry it saw and `dvfs audit verify --remote`."""
    repo = make_repo()
    pushed_twice(repo, dir_remote)
    folder = Path(dir_remote.url.removeprefix("file://")) / "audit"
    if how == "cut":
        (folder / audit_key(3).removeprefix("audit/")).unlink()
        last = 2
    else:
        shutil.rmtree(folder)
        folder.write_bytes(b"junk\n")
        last = 0
    r = repo.run("audit", "--remote", "origin")
    assert_error(r, f"ends at entry {last}", "reach entry 3", "audit verify --remote origin")
    assert len(r.out.splitlines()) == last  # what is left is still listed
    r = repo.run("audit", "--remote", "origin", "--json")
    assert r.code == 1 and [e["seq"] for e in json.loads(r.out)] == list(range(1, last + 1))
    repo.fsck_clean()
