"""The audit log (issue 16): every ref change an entry, hash-chained, checked by verify."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Repo, assert_error, cli_env
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture
from vfs.model.ids import hash_bytes
from vfs.repo import audit


def test_every_ref_change_is_an_entry_and_tampering_is_named(repo: Repo, tmp_path: Path) -> None:
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    v1 = repo.commit("one")
    repo.ok("branch", "side")
    repo.ok("checkout", "side")
    repo.ok("tag", "t1")
    repo.ok("tag", "-d", "t1")
    repo.ok("checkout", "main")
    repo.ok("branch", "-d", "side")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push", "--remote", "origin")
    repo.ok("gc")

    log = repo.json("audit", "--json")
    got = [(e["op"], e["ref"], e["old"], e["new"]) for e in log]
    assert got == [
        ("HEAD move", "HEAD", None, None),  # init
        ("branch create", "refs/heads/main", None, v1),
        ("branch create", "refs/heads/side", None, v1),
        ("HEAD move", "HEAD", None, None),
        ("tag create", "refs/tags/t1", None, v1),
        ("tag delete", "refs/tags/t1", v1, None),
        ("HEAD move", "HEAD", None, None),
        ("branch delete", "refs/heads/side", v1, None),
        ("remote branch create", "refs/remotes/origin/main", None, v1),
        ("gc", "", None, None),
    ]
    assert log[3]["note"] == "main -> side"
    assert log[1]["cmd"] == ["dvfs", "commit", "-m", "one"]
    assert [e["seq"] for e in log] == list(range(1, 11))
    assert all(e["user"] and e["host"] and e["time_ns"] > 0 for e in log)
    assert repo.ok("audit", "verify").out.strip() == "10 entries: intact"
    assert repo.json("audit", "--since", "2999-01-01", "--json") == []
    human = repo.ok("audit").out.splitlines()
    assert "tag delete: refs/tags/t1" in human[5] and "(dvfs tag -d t1)" in human[5]

    lines = (repo.root / ".dvfs" / audit.LOG).read_bytes().splitlines(keepends=True)

    def tampered(name: str, new_lines: list[bytes]) -> str:
        copy = tmp_path / name
        shutil.copytree(repo.root, copy, symlinks=True)
        (copy / ".dvfs" / audit.LOG).write_bytes(b"".join(new_lines))
        return assert_error_out(Repo(copy))

    edited = json.loads(lines[4])
    edited["user"] = "mallory"
    forged = (json.dumps(edited, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert "entry 5 was edited: entry 6 holds the hash of another" in tampered(
        "edited", [*lines[:4], forged, *lines[5:]]
    )
    assert "entry 5 is missing: deleted" in tampered("deleted", [*lines[:4], *lines[5:]])
    assert "entry 5 appears 2 times: the one at line 5 was inserted" in tampered(
        "inserted", [*lines[:4], forged, *lines[4:]]
    )
    assert "entries 5, 6 are out of order: the log was reordered" in tampered(
        "reordered", [*lines[:4], lines[5], lines[4], *lines[6:]]
    )
    assert "entries 10..10 are missing: deleted from the end" in tampered("cut", lines[:-1])
    repo.fsck_clean()


def assert_error_out(repo: Repo) -> str:
    """``dvfs audit verify`` fails; its output (problems are printed, exit 1)."""
    r = repo.run("audit", "verify")
    assert r.code == 1, str(r)
    assert r.out.rstrip().endswith("NOT intact"), str(r)
    return r.out


def test_audit_rejects_a_bad_date(repo: Repo) -> None:
    # the error said "write YYYY-MM-DD", the help YYYY-MM-DD[THH:MM]: each now gives
    # the forms --since reads, and both say it alike
    line = assert_error(repo.run("audit", "--since", "yesterday"), "is not a date", code=2)
    form = "YYYY-MM-DD[THH:MM[:SS]][+HH:MM] (local time unless a zone is given)"
    assert line.endswith(f"write {form}")
    helped = " ".join(repo.ok("audit", "--help").out.split())
    assert f"Only entries from DATE on: {form}." in helped
    assert repo.json("audit", "--since", "2000-01-01T10:30+02:00", "--json") != []


@pytest.mark.parametrize("tz", ["UTC", "Pacific/Kiritimati", "Etc/GMT+12"])
def test_a_date_at_the_calendars_edge_lists_all_or_nothing(repo: Repo, tz: str) -> None:
    """`dvfs audit --since 0001-01-01` (local time) stopped with "internal error
    (ValueError: year 0 is out of range)": a date before every entry lists them all, one
    after every entry none, wherever the user's clock is."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    every = repo.json("audit", "--json")
    for since in ("0001-01-01", "0001-01-01T00:00", "0001-01-01T00:00+14:00"):
        r = repo.ok("audit", "--since", since, "--json", env={"TZ": tz})
        assert r.json() == every, since
    for since in ("9999-12-31", "9999-12-31T23:59:59", "9999-12-31T23:59:59-14:00"):
        assert repo.ok("audit", "--since", since, "--json", env={"TZ": tz}).json() == [], since


def test_a_pull_and_a_commit_on_a_branch_are_entries(repo: Repo, tmp_path: Path) -> None:
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    v1 = repo.commit("one")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    other = Repo(tmp_path / "other")
    repo.ok("clone", str(tmp_path / "remote"), str(other.root))
    other.write("a.txt", "two\n")
    other.ok("add", "a.txt")
    v2 = other.commit("two")  # a commit on a branch with versions: a move
    other.ok("push")
    repo.ok("pull")
    mine = [(e["op"], e["ref"], e["old"], e["new"]) for e in repo.json("audit", "--json")]
    assert mine[-2:] == [
        ("remote branch move", "refs/remotes/origin/main", v1, v2),
        ("branch move", "refs/heads/main", v1, v2),
    ]
    pulled = repo.json("audit", "--json")[-1]
    assert pulled["cmd"] == ["dvfs", "pull"]
    theirs = [(e["op"], e["ref"], e["old"], e["new"]) for e in other.json("audit", "--json")]
    assert ("branch move", "refs/heads/main", v1, v2) in theirs
    for r in (repo, other):
        assert r.json("audit", "verify", "--json")["intact"] is True
        r.fsck_clean()


def test_a_cut_or_an_edited_end_still_shows_after_the_next_change(
    repo: Repo, tmp_path: Path
) -> None:
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    for t in ("t1", "t2", "t3"):
        repo.ok("tag", t)
    lines = (repo.root / ".dvfs" / audit.LOG).read_bytes().splitlines(keepends=True)
    assert len(lines) == 5

    def then_a_tag(name: str, new_lines: list[bytes]) -> str:
        copy = Repo(tmp_path / name)
        shutil.copytree(repo.root, copy.root, symlinks=True)
        (copy.root / ".dvfs" / audit.LOG).write_bytes(b"".join(new_lines))
        copy.ok("tag", "later")  # a ref change appends an entry after the damage
        copy.fsck_clean()
        return assert_error_out(copy)

    assert "entry 4, 5 are missing: deleted" in then_a_tag("cut", lines[:3])
    assert "entry 1, 2, 3, 4, 5 are missing: deleted" in then_a_tag("emptied", [])
    edited = json.loads(lines[-1])
    edited["user"] = "mallory"
    forged = (json.dumps(edited, sort_keys=True, separators=(",", ":")) + "\n").encode()
    assert "entry 5 was edited: entry 6 holds the hash of another" in then_a_tag(
        "edited", [*lines[:-1], forged]
    )
    # entries appended by hand, well formed and linked, past the one a crash can leave
    tail = json.loads(lines[-1])
    added = list(lines)
    for seq in (6, 7):
        tail.update(seq=seq, prev=hash_bytes(added[-1].rstrip(b"\n")).hex(), user="mallory")
        added.append(audit.encode_entry(tail) + b"\n")
    assert "entries after 6 were added by hand" in then_a_tag("added", added)
    # a head one entry behind (a crash between the append and the head's rewrite) is no damage
    head = repo.root / ".dvfs" / audit.HEAD
    fourth = hash_bytes(lines[3].rstrip(b"\n")).hex()
    head.write_text(f"4 {fourth}\n")
    repo.ok("tag", "later")
    assert repo.ok("audit", "verify").out.strip() == "6 entries: intact"
    repo.fsck_clean()


@pytest.mark.parametrize("damage", [b"garbage\n", b"\n", b""])
def test_a_damaged_head_still_shows_after_the_next_change(repo: Repo, damage: bytes) -> None:
    """A damaged audit.head was named by `audit verify` until the next ref change
    wrote a new one over it: then "intact", the damage (which no crash makes) gone
    without a trace. Appends leave it as it is."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    head = repo.root / ".dvfs" / audit.HEAD
    head.write_bytes(damage)
    assert "audit.head is damaged" in assert_error_out(repo)
    repo.ok("tag", "t1")
    repo.ok("branch", "b1")
    assert "audit.head is damaged" in assert_error_out(repo)
    assert head.read_bytes() == damage
    repo.fsck_clean()


def test_a_deleted_head_still_shows_after_the_next_change(repo: Repo) -> None:
    """Deleting the last entries and audit.head went unseen once a ref changed: the
    append wrote a new head, and verify said "intact". Beside two entries or more (a
    crash leaves no head only after the first), the head stays missing for verify."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    repo.ok("tag", "t1")
    log = repo.root / ".dvfs" / audit.LOG
    head = repo.root / ".dvfs" / audit.HEAD
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:-1]))  # the tag's entry and the head deleted
    head.unlink()
    assert "audit.head is missing" in assert_error_out(repo)
    repo.ok("tag", "t2")
    repo.ok("branch", "b1")
    assert "audit.head is missing" in assert_error_out(repo)
    assert not head.exists()
    repo.fsck_clean()


def test_a_head_a_crash_left_unwritten_after_the_first_entry_is_written_next(
    repo: Repo,
) -> None:
    """A crash between the first append and its head's rename leaves one entry and no
    head: the next append writes the head, and the chain verifies."""
    log = repo.root / ".dvfs" / audit.LOG
    head = repo.root / ".dvfs" / audit.HEAD
    first = log.read_bytes().splitlines(keepends=True)[0]
    log.write_bytes(first)
    head.unlink()
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    assert head.exists()
    assert repo.ok("audit", "verify").out.strip().endswith("intact")
    repo.fsck_clean()


def test_a_long_commit_message_never_stops_the_next_ref_change(repo: Repo) -> None:
    """A commit's command line is recorded: one with a message of 40 KiB (of the 64 KiB
    allowed) made an entry longer than the 64 KiB read back to find the last one, and
    every later commit, tag or switch failed with "the audit log's last entry is
    longer than any entry dvfs writes"."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.ok("commit", "-m", "é" * 20_000)  # 40 KiB of UTF-8, 120 KiB as escaped JSON
    repo.ok("tag", "t1")
    last = repo.json("audit", "--json")[-2]
    assert last["cmd"][:3] == ["dvfs", "commit", "-m"]
    assert last["cmd"][3] == "é" * audit.ARG_CHARS + "... (20,000 characters)"
    assert len((repo.root / ".dvfs" / audit.LOG).read_bytes().splitlines()[-2]) < audit.TAIL
    # A log that already ends with such an entry is read past it.
    log = repo.root / ".dvfs" / audit.LOG
    lines = log.read_bytes().splitlines()
    entry = json.loads(lines[-1])
    entry.update(seq=len(lines) + 1, prev=hash_bytes(lines[-1]).hex(), cmd=["x" * 100_000])
    line = audit.encode_entry(entry)
    with log.open("ab") as f:
        f.write(line + b"\n")
    (repo.root / ".dvfs" / audit.HEAD).write_text(f"{len(lines) + 1} {hash_bytes(line).hex()}\n")
    repo.ok("tag", "t2")
    assert repo.ok("audit", "verify").out.strip() == f"{len(lines) + 2} entries: intact"
    repo.fsck_clean()


def test_a_forged_entry_is_shown_quoted_or_named_never_an_internal_error(
    repo: Repo, tmp_path: Path
) -> None:
    """An entry edited to hold a carriage return in its op was printed raw (the line
    read as another); one holding a time past any date stopped `dvfs audit` with
    "internal error (OverflowError ...)"."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    log = repo.root / ".dvfs" / audit.LOG
    lines = log.read_bytes().splitlines(keepends=True)

    def forged(i: int, **fields: object) -> list[bytes]:
        rec = json.loads(lines[i])
        rec.update(fields)
        return [*lines[:i], audit.encode_entry(rec) + b"\n", *lines[i + 1 :]]

    log.write_bytes(b"".join(forged(0, op="HEAD move\rbranch delete\x1b[2J")))
    first = repo.ok("audit").out.splitlines()[0]
    assert "HEAD move\\rbranch delete\\033[2J: HEAD" in first and "\r" not in first
    assert "entry 1 was edited" in assert_error_out(repo)
    log.write_bytes(b"".join(forged(1, time_ns=10**30)))
    r = repo.run("audit")
    assert_error(r, "line 2 of .dvfs/audit.log is not an entry", "dvfs audit verify")
    assert "internal error" not in r.err
    assert "line 2 of the audit log is not an entry: it was edited" in assert_error_out(repo)
    log.write_bytes(b"".join(lines))
    assert repo.ok("audit", "verify").out.strip() == "2 entries: intact"
    repo.fsck_clean()


def test_a_forged_megabyte_entry_is_listed_cut_short_and_marked(repo: Repo) -> None:
    """An entry edited to hold a 900,000-character command and a 50,000-character user
    (as anyone who can write a remote's audit/ may) was printed whole: a line of 950 KB."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    log = repo.root / ".dvfs" / audit.LOG
    lines = log.read_bytes().splitlines(keepends=True)
    rec = json.loads(lines[0])
    rec.update(cmd=["dvfs", "x" * 900_000], user="u" * 50_000)
    log.write_bytes(b"".join([audit.encode_entry(rec) + b"\n", *lines[1:]]))
    first = repo.ok("audit").out.splitlines()[0]
    assert len(first) < 8192, len(first)
    assert first.count("more characters not shown]") == 2, first[-200:]
    assert "u" * 1024 + "\u2026 [48,976 more characters not shown]@" in first
    assert len(repo.json("audit", "--json")[0]["cmd"][1]) == 900_000  # JSON: the record


def test_the_listing_shows_every_entry_and_names_each_line_that_is_none(repo: Repo) -> None:
    """Before, `dvfs audit` listed nothing past a line that is no entry (an error
    alone), where `audit verify` names it and a remote's listing shows the rest. Now it
    lists every other entry (as --json too), names the lines and exits 1."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    for name in ("t1", "t2", "t3", "t4"):
        repo.ok("tag", name)
    log = repo.root / ".dvfs" / audit.LOG
    whole = log.read_bytes()
    lines = whole.splitlines(keepends=True)
    n = len(lines)
    lines[1] = b"not an entry\n"
    lines[3] = b"{}\n"
    log.write_bytes(b"".join(lines))
    r = repo.run("audit")
    assert_error(r, "lines 2, 4 of .dvfs/audit.log are not an entry", "dvfs audit verify")
    assert [int(ln.split()[0]) for ln in r.out.splitlines()] == [1, 3, *range(5, n + 1)]
    r = repo.run("audit", "--json")
    assert_error(r, "lines 2, 4 of .dvfs/audit.log")
    assert [e["seq"] for e in r.json()] == [1, 3, *range(5, n + 1)]
    assert "line 2 of the audit log is not an entry" in assert_error_out(repo)
    log.write_bytes(whole)
    repo.fsck_clean()


def test_the_log_and_its_head_are_never_read_through_a_link(repo: Repo, tmp_path: Path) -> None:
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    dvfs = repo.root / ".dvfs"
    for name in (audit.LOG, audit.HEAD):
        kept = tmp_path / name
        (dvfs / name).rename(kept)
        forged = tmp_path / f"forged-{name}"
        forged.write_bytes(kept.read_bytes())  # (a chain that verifies, somewhere else)
        (dvfs / name).symlink_to(forged)
        reading = [("audit",), ("audit", "--json")] if name == audit.LOG else []
        for args in (*reading, ("audit", "verify"), ("tag", "t")):
            line = repo.fail(*args, fragments=(f".dvfs/{name} is a symbolic link", "put the file"))
            assert "audit verify` says" not in line, line
        assert forged.read_bytes() == kept.read_bytes()
        (dvfs / name).unlink()
        kept.rename(dvfs / name)  # what the message says to do
        assert repo.ok("audit", "verify").out == "2 entries: intact\n"
    repo.ok("tag", "t")
    assert repo.ok("audit", "verify").out == "3 entries: intact\n"
    repo.fsck_clean()


def test_a_remote_chains_head_is_never_read_through_a_link(repo: Repo, tmp_path: Path) -> None:
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    head = repo.root / ".dvfs" / "remotes" / "origin" / "audit.head"
    kept = tmp_path / "kept.head"
    head.rename(kept)
    head.symlink_to(kept)
    line = assert_error(repo.run("audit", "verify", "--remote", "origin", timeout=30))
    assert "origin/audit.head is a symbolic link" in line and "put the file" in line, line
    head.unlink()
    os.mkfifo(head)  # never waited on
    line = assert_error(repo.run("audit", "verify", "--remote", "origin", timeout=30))
    assert "origin/audit.head is not a regular file" in line, line
    head.unlink()
    kept.rename(head)
    assert repo.ok("audit", "verify", "--remote", "origin").out.endswith(": intact\n")
    repo.fsck_clean()


def test_an_exact_copy_of_an_entry_is_named_as_inserted(repo: Repo) -> None:
    """A line copied whole next to its original stopped `dvfs audit verify` with
    "internal error (IndexError ...)": both copies hash alike, so the next entry's
    link named neither as the inserted one."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    repo.ok("tag", "t1")
    log = repo.root / ".dvfs" / audit.LOG
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join([*lines[:2], lines[1], *lines[2:]]))
    assert "entry 2 appears 2 times: the one at line 3 was inserted" in assert_error_out(repo)
    log.write_bytes(b"".join([*lines, lines[-1]]))
    assert "entry 3 appears 2 times: the one at line 4 was inserted" in assert_error_out(repo)
    log.write_bytes(b"".join(lines))
    assert repo.ok("audit", "verify").out.strip() == "3 entries: intact"
    repo.fsck_clean()


def test_an_entry_numbered_far_ahead_is_named_at_once(repo: Repo) -> None:
    """An entry whose `seq` was edited to a number of 16 digits made `dvfs audit
    verify` list every number below it as missing, and run until its memory ran out;
    a `seq` of 0 or below, or not a whole number, was taken as a number."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    repo.ok("tag", "t1")
    log = repo.root / ".dvfs" / audit.LOG
    lines = log.read_bytes().splitlines(keepends=True)

    def numbered(seq: object) -> None:
        rec = json.loads(lines[1])
        rec["seq"] = seq
        log.write_bytes(b"".join([lines[0], audit.encode_entry(rec) + b"\n", lines[2]]))

    numbered(10**15)
    out = assert_error_out(repo)
    assert f"entry 2, 4, 5, 6, 7, 8 and {10**15 - 9:,} more are missing: deleted" in out
    for seq in (0, -3, "2", 2.0, True):
        numbered(seq)
        assert "line 2 of the audit log is not an entry: it was edited" in assert_error_out(repo)
    log.write_bytes(b"".join(lines))
    assert repo.ok("audit", "verify").out.strip() == "3 entries: intact"
    repo.fsck_clean()


def test_a_last_entry_numbered_as_no_number_stops_no_ref_change(repo: Repo) -> None:
    """A last entry whose `seq` was edited to 1e400 (JSON's infinity) stopped every
    later change of a ref with "internal error (OverflowError ...)"."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    log = repo.root / ".dvfs" / audit.LOG
    text = log.read_bytes()
    assert text.count(b'"seq":2,') == 1
    log.write_bytes(text.replace(b'"seq":2,', b'"seq":1e400,'))
    repo.ok("tag", "t1")
    assert "t1" in repo.ok("tag").out
    out = assert_error_out(repo)
    assert "line 2 of the audit log is not an entry: it was edited" in out
    assert json.loads(log.read_bytes().splitlines()[-1])["seq"] == 3
    repo.fsck_clean()


def test_a_last_line_nested_past_the_stack_stops_no_ref_change(repo: Repo) -> None:
    """A last line of the log edited to 100,000 opening brackets stopped every later
    change of a ref with "internal error (RecursionError ...)"; it is an edited line
    as any other now: the change is made and verify names the line."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    log = repo.root / ".dvfs" / audit.LOG
    with log.open("ab") as f:
        f.write(b"[" * 100_000 + b"\n")
    repo.ok("tag", "t1")
    assert "t1" in repo.ok("tag").out
    out = assert_error_out(repo)
    assert "line 3 of the audit log is not an entry: it was edited" in out
    assert json.loads(log.read_bytes().splitlines()[-1])["seq"] == 4
    repo.fsck_clean()


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (b"x" * 1_500_000, "1,500,000 bytes that are no entry"),
        (b"x" * 3_000_000 + b"\n", "last line is 3,000,000 bytes, longer than any entry"),
        (b"x" * 2_500_000 + b"\n" + b"y" * 1000, "last line is 2,500,000 bytes, longer than any"),
    ],
)
def test_a_log_ending_in_more_than_an_entry_is_refused_and_named_alike(
    repo: Repo, damage: bytes, said: str
) -> None:
    """1.5 MB of junk after the last line (more than any entry, so no torn one) was cut
    off without a word by the next change of a ref, while `audit verify` called it
    damage no ref can change past; and a last line of 3 MB stopped every change while
    fsck said "the log ends with 0 bytes that are no entry" and gave a `truncate` that
    cut nothing. Each is refused now, and the append, verify or fsck name the `truncate`
    that cuts the damage off."""
    repo.write("a.txt", "one\n")
    repo.ok("add", "a.txt")
    repo.commit("one")
    log = repo.root / ".dvfs" / audit.LOG
    whole = log.read_bytes()
    log.write_bytes(whole + damage)
    hint = f"`truncate -s {len(whole)} .dvfs/{audit.LOG}`"
    assert hint in assert_error(repo.run("tag", "t1"), said)
    assert log.read_bytes() == whole + damage  # (nothing cut off, nothing appended)
    r = repo.run("fsck")
    assert r.code == 1 and "problem: audit log: " in r.out and said in r.out, str(r)
    assert hint in r.out, str(r)
    assert_error_out(repo)
    os.truncate(log, len(whole))
    repo.ok("tag", "t1")
    assert repo.ok("audit", "verify").out.strip() == "3 entries: intact"
    repo.fsck_clean()


# ``dvfs ARGS`` killed with SIGKILL once it has logged a ref's change, before the ref's
# new file is put in place (a kill at an instant a user could hit, made exact).
KILLED_AFTER_THE_ENTRY = """
import os, signal, sys
from vfs.cli import main
from vfs.repo import refs
refs.put_in_place = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", [("tag", "t1"), ("branch", "b1"), ("switch", "-c", "b1")])
def test_a_ref_creation_killed_after_its_entry_is_never_named_lost(
    repo: Repo, command: tuple[str, ...]
) -> None:
    """A `dvfs tag t1` killed between its audit entry and its ref file left fsck clean
    only until the next change of any ref: then fsck said "tag t1 is missing" and
    `--repair` wrote back a tag that was never made. The next change now logs first
    that it was never made, and fsck stays clean."""
    repo.write("d/a.txt", "a\n")
    repo.ok("add", "d")
    repo.commit("one")
    killed = subprocess.run(
        [sys.executable, "-P", "-c", KILLED_AFTER_THE_ENTRY, *command],
        cwd=repo.root, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    ref = "refs/tags/t1" if command[0] == "tag" else "refs/heads/b1"
    assert not (repo.root / ".dvfs" / ref).exists()
    repo.fsck_clean()
    repo.write("d/b.txt", "b\n")
    repo.ok("add", "d")
    repo.commit("two")
    repo.fsck_clean()
    log = repo.json("audit", "--json")
    assert [(e["op"], e["ref"], e["new"]) for e in log[-3:-1]] == [
        (log[-3]["op"], ref, log[-3]["new"]),
        (log[-3]["op"].replace("create", "delete"), ref, None),
    ]
    assert "never made" in log[-2]["note"] and f"entry {log[-3]['seq']}" in log[-2]["note"]
    assert repo.ok("audit", "verify").out.strip().endswith("intact")
    repo.ok(*command)  # made now, as the command was asked to
    repo.write("d/c.txt", "c\n")
    repo.ok("add", "d")
    repo.commit("three")
    notes = [e["note"] for e in repo.json("audit", "--json")[len(log) :]]
    assert not any("never made" in n for n in notes), notes  # (a ref made is left alone)
    repo.fsck_clean()
