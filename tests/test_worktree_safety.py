"""A hostile working tree: links where directories were, names dvfs never stores, odd modes.

Each test builds the attack with ordinary commands (or, where a version must hold what
dvfs refuses to make, with the codec by hand) and checks that dvfs refuses it, or does
what a careful user expects, without touching anything outside the repository.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import socket
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    drop_file_override,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_as_dvfs,
    warnings_of,
)
from tests.support.data import rand
from vfs._os.beneath import KEEP, Walker
from vfs.errors import FileChanged, FormatError
from vfs.model.codec import Entry, Kind, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.names import MAX_DEPTH
from vfs.model.version_codec import Version, encode_version
from vfs.ops import checkout as co
from vfs.quoting import escape_text
from vfs.repo.repository import Repository
from vfs.store.durable import is_tmp_leaf
from vfs.store.objects import ObjKind
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.remove import aside_leaf, remove_many, remove_temporaries, remove_tree
from vfs.worktree.scan import Found

KiB = 1024


def snapshot(top: Path) -> dict[str, tuple[int, int, bytes]]:
    """Every path below ``top`` with its mode, mtime and content (a link's target)."""
    out: dict[str, tuple[int, int, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                data = os.readlink(p).encode()
            elif stat.S_ISREG(st.st_mode):
                data = Path(p).read_bytes()
            else:
                data = b""
            out[os.path.relpath(p, top)] = (st.st_mode, st.st_mtime_ns, data)
    return out


def run_with_umask(repo: Repo, umask: int, *args: str, unprivileged: bool = False) -> Result:
    """``dvfs ARGS`` in a process whose umask is ``umask``."""

    def setup() -> None:
        os.umask(umask)
        if unprivileged:
            drop_file_override()

    proc = subprocess.run(
        cli_command(*args),
        cwd=repo.root,
        env=cli_env(),
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=setup,
    )
    return Result(tuple(args), proc.returncode, proc.stdout, proc.stderr.decode(errors="replace"))


def pack_bytes(repo: Repo) -> bytes:
    """Everything the object store holds, as one byte string."""
    return b"".join(
        p.read_bytes() for p in (repo.root / ".dvfs" / "objects").rglob("*") if p.is_file()
    )


# --------------------------------------------------------------- links where directories were


@pytest.fixture(name="outside")
def outside_fixture(tmp_path: Path) -> Path:
    """A directory outside the repository, with files named like the repository's."""
    out = tmp_path / "outside"
    (out / "sub").mkdir(parents=True)
    for i in range(4):
        (out / f"f{i}.txt").write_bytes(rand(4 * KiB, seed=100 + i))
        (out / "sub" / f"f{i}.txt").write_bytes(rand(4 * KiB, seed=200 + i))
    (out / "n.txt").write_text("precious\n")
    (out / "m.txt").write_text("precious too\n")
    return out


def test_checkout_never_deletes_or_writes_through_a_linked_directory(
    repo: Repo, outside: Path
) -> None:
    repo.write("data/n.txt", "n1")
    repo.ok("add", "data")
    repo.commit("v1")
    repo.write("data/m.txt", "m2")
    repo.write("data/n.txt", "n2")
    repo.ok("add", "data")
    repo.commit("v2")
    before = snapshot(outside)
    # The user replaces the tracked directory by a link to somewhere else.
    for p in (repo.root / "data").iterdir():
        p.unlink()
    (repo.root / "data").rmdir()
    os.symlink(outside, repo.root / "data")
    st = repo.status()
    assert st["deleted"] == ["data/m.txt", "data/n.txt"] and st["untracked"] == ["data"]

    # Without --force the link is reported and nothing changes, here or there.
    for args in (("checkout", "v1"), ("checkout", "HEAD"), ("switch", "main")):
        line = assert_error(repo.run(*args), "data (a symbolic link", "--force")
        assert "would replace" in line
        assert snapshot(outside) == before
        assert (repo.root / "data").is_symlink()
    # rm of the tracked files under it deletes nothing through it.
    gone = repo.ok("rm", "data")
    assert gone.out.endswith("2 files\n")
    assert snapshot(outside) == before
    assert repo.status()["staged"] != []
    repo.ok("checkout", "--force", "HEAD")  # the link is replaced by the directory
    assert not (repo.root / "data").is_symlink() and repo.read("data/m.txt") == b"m2"
    assert snapshot(outside) == before

    # With --force the link itself is replaced, never followed.
    os.rename(repo.root / "data", repo.root / "was-data")
    os.symlink(outside, repo.root / "data")
    r = repo.ok("checkout", "--force", "v1")
    assert "0 deleted" in r.out  # data/m.txt was not in the working tree: under a link
    assert snapshot(outside) == before
    assert not (repo.root / "data").is_symlink()
    assert repo.read("data/n.txt") == b"n1"
    assert sorted(os.listdir(repo.root / "data")) == ["n.txt"]
    st = repo.status()
    assert st["modified"] == st["deleted"] == [] and st["untracked"] == []
    repo.fsck_clean()


def test_a_linked_directory_on_the_way_to_an_added_path_is_not_read(
    repo: Repo, outside: Path
) -> None:
    repo.write("d/sub/f0.txt", "inside")
    repo.ok("add", "d")
    repo.commit("v1")
    shutil.rmtree(repo.root / "d" / "sub")
    os.symlink(outside / "sub", repo.root / "d" / "sub")
    repo.ok("add", "d")  # the link is staged as a link: nothing is read through it
    staged = {(c["path"], c["kind"], c["status"]) for c in repo.status()["staged"]}
    assert staged == {("d/sub", "link", "added"), ("d/sub/f0.txt", "file", "removed")}
    secrets = [(outside / "sub" / f"f{i}.txt").read_bytes() for i in range(4)]
    packed = pack_bytes(repo)
    assert not any(s in packed for s in secrets)
    repo.fsck_clean()


class Swapper(threading.Thread):
    """Keeps swapping directory ``d`` for a link to ``outside``, and back, until stopped."""

    def __init__(self, d: Path, outside: Path) -> None:
        super().__init__(daemon=True)
        self.d = d
        self.outside = outside
        self.aside = d.with_name(d.name + ".aside")
        self.link = d.with_name(d.name + ".link")
        self.stop = threading.Event()
        self.swaps = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                os.rename(self.d, self.aside)
            except OSError:
                self._settle()
                continue
            with contextlib.suppress(OSError):
                os.symlink(self.outside, self.link)
                os.rename(self.link, self.d)  # a link where the directory was
                self.swaps += 1
            for _ in range(20):  # let dvfs meet it for a while
                os.sched_yield()
            self._settle()

    def _settle(self) -> None:
        """Put the real directory back (dvfs may have made a new one meanwhile)."""
        with contextlib.suppress(OSError):
            os.unlink(self.link)
        with contextlib.suppress(OSError):
            if self.d.is_symlink():
                os.unlink(self.d)
        with contextlib.suppress(OSError):
            if self.aside.exists():
                os.rename(self.aside, self.d)  # fails if dvfs made d again: then d stays
        if self.aside.exists() and self.d.is_dir() and not self.d.is_symlink():
            shutil.rmtree(self.aside)

    def finish(self) -> None:
        self.stop.set()
        self.join(10)
        self._settle()


@contextlib.contextmanager
def swapping(d: Path, outside: Path) -> Iterator[Swapper]:
    s = Swapper(d, outside)
    s.start()
    try:
        yield s
    finally:
        s.finish()


def test_a_directory_swapped_for_a_link_during_checkout_redirects_nothing(
    repo: Repo, outside: Path
) -> None:
    names = [f"f{i}.txt" for i in range(4)] + [f"g{i:04}.txt" for i in range(600)]
    for i, n in enumerate(names):
        repo.write(f"d/{n}", f"one {i}")
        repo.write(f"d/sub/{n}", f"one {i}")
    repo.ok("add", "d")
    repo.commit("v1")
    for i, n in enumerate(names):
        if i % 2:
            (repo.root / "d" / n).unlink()
            (repo.root / "d" / "sub" / n).unlink()
        else:
            repo.write(f"d/{n}", f"two {i}")
    repo.ok("add", "d")
    repo.commit("v2")
    before = snapshot(outside)
    secrets = [p.read_bytes() for p in outside.rglob("f*.txt")]
    swaps = 0
    for args in (
        ("checkout", "--force", "v1"),
        ("checkout", "--force", "v2"),
        ("checkout", "v1"),
        ("status",),
        ("add", "d"),
        ("checkout", "--force", "v2"),
    ):
        with swapping(repo.root / "d", outside) as s:
            r = repo.run(*args)
        swaps += s.swaps
        assert "Traceback" not in r.err and "internal error" not in r.err, str(r)
        assert snapshot(outside) == before, str(r)
    assert swaps > 0
    packed = pack_bytes(repo)
    assert not any(secret in packed for secret in secrets)
    # Once left alone, the working tree is restored whole.
    repo.ok("checkout", "--force", "v1")
    for i, n in enumerate(names):
        assert repo.read(f"d/{n}") == f"one {i}".encode()
    assert snapshot(outside) == before
    repo.fsck_clean()


# ---------------------------------------------------------------- names dvfs never stores


@pytest.mark.parametrize(
    ("made", "arg", "named"),
    [
        ("data/.GIT/config", "data", "data/.GIT"),
        ("data/x/.git./hooks/pre-commit", "data", "data/x/.git."),
        ("data/.dvfs\u200c/config", "data/.dvfs\u200c/config", "data/.dvfs\u200c"),
        ("data/git~1/config", "data", "data/git~1"),
        (".versions/v1", ".versions", ".versions"),
        (".versions/v1", ".", ".versions"),
    ],
)
def test_add_refuses_a_reserved_name_and_stages_nothing(
    repo: Repo, made: str, arg: str, named: str
) -> None:
    repo.write("data/ok.txt", "ok")
    repo.write(made, "[core]\n\tfsmonitor = touch /tmp/pwned\n")
    shown = escape_text(named)  # an error line escapes what it holds (vfs.quoting)
    line = repo.fail("add", arg, fragments=(shown, "nothing was staged"), code=2)
    assert "Traceback" not in line
    assert repo.status()["staged"] == []
    shutil.rmtree(repo.root / named)
    repo.ok("add", "data")
    repo.fsck_clean()


def test_git_and_dvfs_themselves_are_skipped_and_versions_below_the_root_is_kept(
    repo: Repo,
) -> None:
    repo.write("data/ok.txt", "ok")
    repo.write("data/.git", "gitdir: ../.git/modules/data\n")  # a submodule's git file
    repo.write("data/sub/.git/HEAD", "ref: refs/heads/main\n")
    repo.write("data/sub/.versions/v1", "an ordinary name below the root")
    repo.ok("add", "data")
    repo.commit("v1")
    assert set(repo.show()["files"]) == {"data/ok.txt", "data/sub/.versions/v1"}
    assert repo.status()["untracked"] == []
    repo.fsck_clean()


def test_status_warns_about_a_reserved_name_instead_of_listing_it(repo: Repo) -> None:
    repo.write("data/ok.txt", "ok")
    repo.ok("add", "data")
    repo.commit("v1")
    repo.write("data/.Git/config", "x")
    r = repo.ok("status")
    assert [w for w in warnings_of(r) if "data/.Git" in w and "never stores" in w]
    assert repo.status()["untracked"] == []


def test_a_version_holding_a_reserved_name_is_never_written_out(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should decoding ever let one through, checkout still refuses, naming the path."""
    repo.write("data/ok.txt", "ok")
    repo.ok("add", "data")
    v1 = bytes.fromhex(repo.commit("v1"))
    r = Repository(repo.root)
    ok = r.history.lookup(r.history.version(v1).tree, b"data/ok.txt")
    assert ok is not None
    store = r.store
    config = Entry(b"config", Kind.FILE, ok.mode, ok.size, ok.mtime_ns, ok.digest, ok.chunks)
    hooks, _ = store.put(ObjKind.TREE, encode_tree([config]))
    dot_git = Entry(b".git", Kind.DIR, 0o755, ok.size, ok.mtime_ns, subtree=hooks)
    data, _ = store.put(ObjKind.TREE, encode_tree([ok, dot_git]))
    top, _ = store.put(
        ObjKind.TREE, encode_tree([Entry(b"data", Kind.DIR, 0o755, 4, ok.mtime_ns, subtree=data)])
    )
    version = Version(top, (v1,), 2, "evil", "x <x@x>", 1, files=2, bytes=4)
    evil, _ = store.put(ObjKind.VERSION, encode_version(version))
    store.flush()
    r.refs.update("refs/tags/evil", evil, None)
    # The codec refuses it first ...
    assert_error(repo.run("checkout", "evil"), ".git")
    # ... and if it did not, checkout would.
    monkeypatch.setattr("vfs.model.codec.any_reserved", lambda names: None)
    with Workers(2) as w, pytest.raises(FormatError, match=r"data/\.git/config"):
        co.checkout(Repository(repo.root), "evil", [], w, force=True)
    assert not (repo.root / "data" / ".git").exists()
    monkeypatch.undo()
    r.refs.update("refs/tags/evil", None, evil)
    assert repo.status()["modified"] == []
    repo.fsck_clean()


def test_commit_never_builds_a_tree_with_a_reserved_name(repo: Repo) -> None:
    """An index staged by an older dvfs may hold one: commit refuses, naming it."""
    repo.write("data/ok.txt", "ok")
    repo.ok("add", "data")
    r = Repository(repo.root)
    index = r.index()
    s = index.get(b"data/ok.txt")
    assert s is not None
    index.put(b"data/.GIT/config", s)
    index.save()
    repo.fail("commit", "-m", "old index", fragments=("data/.GIT", "rm --cached"), code=2)
    repo.ok("rm", "--cached", "data/.GIT/config")
    repo.commit("clean")
    repo.fsck_clean()


# ---------------------------------------------------------------------------------- modes


def test_only_permission_bits_are_stored_and_the_umask_applies(repo: Repo) -> None:
    p = repo.write("data/tool", "#!/bin/sh\n")
    p.chmod(0o6755)  # setuid and setgid
    g = repo.write("data/shared.txt", "shared")
    g.chmod(0o666)
    repo.ok("add", "data")
    repo.commit("v1")
    modes = {row["name"]: row["mode"] for row in repo.json("ls", "HEAD:data", "--json")}
    assert modes == {"tool": oct(0o755), "shared.txt": oct(0o666)}
    assert repo.status()["modified"] == []
    # Restored with the version's bits less the umask's, as git does ...
    os.unlink(p)
    os.unlink(g)
    assert_ok(run_with_umask(repo, 0o027, "checkout", "--force", "HEAD"))
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o750
    assert stat.S_IMODE(os.stat(g).st_mode) == 0o640
    # ... and that is no change, even once the stat is looked at again.
    os.utime(g)
    st = run_with_umask(repo, 0o027, "status", "--json")
    assert st.json()["modified"] == [], str(st)
    repo.fsck_clean()


def test_setuid_bits_in_an_old_record_are_never_applied(repo: Repo) -> None:
    repo.write("data/tool", "#!/bin/sh\n")
    repo.ok("add", "data")
    v1 = bytes.fromhex(repo.commit("v1"))
    r = Repository(repo.root)
    e = r.history.lookup(r.history.version(v1).tree, b"data/tool")
    assert e is not None
    # A record as an older writer (or a hostile one) makes it: mode 0o6777.
    row = [e.name, 0, 0o6777, e.size, e.mtime_ns, [e.digest, [[c.oid, c.size] for c in e.chunks]]]
    data, _ = r.store.put(ObjKind.TREE, msgpack.packb({"v": 1, "entries": [row]}))
    top, _ = r.store.put(
        ObjKind.TREE, encode_tree([Entry(b"data", Kind.DIR, 0o755, e.size, 0, subtree=data)])
    )
    old = Version(top, (v1,), 2, "old", "x <x@x>", 1, files=1, bytes=e.size)
    oid, _ = r.store.put(ObjKind.VERSION, encode_version(old))
    r.store.flush()
    r.refs.update("refs/tags/old", oid, None)
    assert_ok(run_with_umask(repo, 0o022, "checkout", "--force", "old"))
    mode = os.stat(repo.root / "data" / "tool").st_mode
    assert stat.S_IMODE(mode) == 0o755
    rows = repo.json("ls", "old:data", "--json")
    assert rows[0]["mode"] == oct(0o777)
    repo.fsck_clean()


# ------------------------------------------------------------- kinds changing between versions


@pytest.mark.parametrize("kind", ["file", "link"])
def test_checkout_between_a_directory_and_a_file_or_link(repo: Repo, kind: str) -> None:
    if kind == "file":
        repo.write("x", "a file")
    else:
        os.symlink("elsewhere", repo.root / "x")
    repo.ok("add", "x")
    repo.commit("x is a " + kind)
    os.unlink(repo.root / "x")
    repo.write("x/a.txt", "inside")
    repo.write("x/deep/b.txt", "deeper")
    repo.ok("add", "x")
    repo.commit("x is a directory")
    for _ in range(2):
        repo.ok("checkout", "v1")
        assert (repo.root / "x").is_symlink() == (kind == "link")
        assert repo.status()["modified"] == []
        repo.ok("checkout", "v2")
        assert repo.read("x/deep/b.txt") == b"deeper"
    # An untracked file in the way: refused, named; --force replaces the directory.
    repo.write("x/mine.txt", "untracked")
    repo.fail("checkout", "v1", fragments=("x (a directory with untracked files", "--force"))
    assert repo.read("x/mine.txt") == b"untracked"
    repo.ok("checkout", "--force", "v1")
    assert not (repo.root / "x").is_dir() or (repo.root / "x").is_symlink()
    st = repo.status()
    assert st["modified"] == st["untracked"] == st["deleted"] == []
    repo.fsck_clean()


# ------------------------------------------------------------------------ unreadable files


def test_an_unreadable_tracked_file_is_reported_and_the_rest_carries_on(repo: Repo) -> None:
    repo.write("d/a.txt", "a1")
    repo.write("d/b.txt", "b1")
    secret = repo.write("d/secret.txt", "s1")
    repo.ok("add", "d")
    repo.commit("v1")
    repo.write("d/a.txt", "a2")
    repo.write("d/secret.txt", "s2")
    repo.ok("add", "d")
    repo.commit("v2")
    repo.write("d/a.txt", "a3")
    secret.chmod(0)  # its stat changed: it must be read, and cannot be

    r = repo.run("status", unprivileged=True)
    assert r.code == 1 and "Traceback" not in r.err, str(r)
    assert [w for w in warnings_of(r) if "d/secret.txt" in w and "permission denied" in w]
    assert len(warnings_of(r)) == 1
    assert "modified: d/a.txt" in r.out
    r = repo.run("status", "--json", unprivileged=True)
    assert r.code == 1 and r.json()["unreadable"] == ["d/secret.txt"], str(r)
    assert r.json()["modified"] == ["d/a.txt"]

    r = repo.run("diff", unprivileged=True)
    assert r.code == 1 and "d/a.txt" in r.out and len(warnings_of(r)) == 1, str(r)

    # Without --force a checkout that would replace it refuses, naming it.
    r = repo.run("checkout", "v1", unprivileged=True)
    assert_error(r, "d/secret.txt", "--force")
    assert repo.read("d/a.txt") == b"a3"
    r = repo.run("checkout", "--force", "v1", unprivileged=True)
    assert r.code == 0 and "Traceback" not in r.err, str(r)
    assert repo.read("d/a.txt") == b"a1" and repo.read("d/secret.txt") == b"s1"
    assert stat.S_IMODE(secret.stat().st_mode) != 0
    assert repo.run("status", unprivileged=True).code == 0
    repo.fsck_clean()


# ------------------------------------------------------------------------------- depth


def make_chain(top: Path, levels: int, leaf: bytes) -> None:
    """``top/d/d/.../d/f`` with ``levels`` directories ``d``, made without long paths."""
    top.mkdir()
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, leaf)
        os.close(out)
    finally:
        os.close(fd)


def remove_deep(path: Path) -> None:
    """Remove a tree too deep for ``shutil.rmtree`` (and for pytest's own clean-up)."""
    if os.path.lexists(path):
        with Walker(path.parent) as walker:
            remove_tree(walker, os.fsencode(path.name))


def test_a_tree_1100_directories_deep_commits_and_checks_out(repo: Repo) -> None:
    aside = repo.root.parent / "deep-aside"
    try:
        make_chain(repo.root / "deep", 1100, b"at the bottom")
        repo.ok("add", "deep")
        repo.commit("deep")
        path = "deep/" + "d/" * 1100 + "f"
        assert list(repo.show()["files"]) == [path]
        assert repo.status()["untracked"] == []
        os.rename(repo.root / "deep", aside)
        repo.ok("checkout", "HEAD")
        fd = os.open(repo.root / "deep", os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(1100):
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        got = os.open("f", os.O_RDONLY, dir_fd=fd)
        assert os.read(got, 100) == b"at the bottom"
        os.close(got)
        os.close(fd)
        st = repo.status()
        assert st["modified"] == st["deleted"] == st["untracked"] == []
        repo.ok("rm", "deep")
        assert not (repo.root / "deep").exists()
        repo.fsck_clean()
    finally:
        remove_deep(repo.root / "deep")
        remove_deep(aside)


def test_deeper_than_the_limit_is_refused_with_one_line(repo: Repo) -> None:
    try:
        make_chain(repo.root / "deep", MAX_DEPTH + 1, b"too deep")
        repo.fail("add", "deep", fragments=("nested more than", str(MAX_DEPTH)), code=2)
        assert repo.status()["staged"] == []
    finally:
        remove_deep(repo.root / "deep")


# ------------------------------------------------------ files dvfs keeps beside git, and FIFOs


def test_gitignore_and_lock_links_are_replaced_or_left_never_followed(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo(git_repo=True)
    secret = tmp_path / "secret.txt"
    secret.write_text("root:secret-hash:19000::::::\n")
    target = tmp_path / "target.txt"
    target.write_text("do not overwrite\n")
    os.symlink(secret, repo.root / ".gitignore")
    os.symlink(target, repo.root / "dvfs.lock")
    repo.write("data/a.txt", "a")
    r = repo.ok("add", "data")
    assert [w for w in warnings_of(r) if ".gitignore left as it is" in w and "link" in w]
    assert (repo.root / ".gitignore").is_symlink()
    assert secret.read_text() == "root:secret-hash:19000::::::\n"
    repo.fail("checkout", "--lock", fragments=("dvfs.lock", "symbolic link"), code=2)
    repo.commit("v1")  # dvfs.lock is written as a new file, over the link
    assert not (repo.root / "dvfs.lock").is_symlink()
    assert target.read_text() == "do not overwrite\n"
    repo.ok("checkout", "--lock")
    repo.fsck_clean()


def test_fifos_where_files_are_read_never_block(make_repo: RepoFactory) -> None:
    repo = make_repo(git_repo=True)
    repo.write("data/a.txt", "a")
    os.mkfifo(repo.root / ".gitignore")
    r = repo.run("add", "data", timeout=30)
    assert r.code == 0 and "left as it is" in r.err, str(r)
    repo.commit("v1")
    os.unlink(repo.root / "dvfs.lock")
    os.mkfifo(repo.root / "dvfs.lock")
    repo.fail("checkout", "--lock", fragments=("dvfs.lock", "not a plain file"), code=2)
    # A file replaced by a FIFO between its listing and its reading: no wait either.
    st = os.lstat(repo.root / "data" / "a.txt")
    os.unlink(repo.root / "data" / "a.txt")
    os.mkfifo(repo.root / "data" / "a.txt")
    handle = Repository(repo.root)
    with Workers(2) as w:
        hasher = Hasher(handle.root, handle.chunker, None, w)
        with pytest.raises(FileChanged, match="changed type"):
            hasher.stage_one(Found(b"data/a.txt", st))
    os.unlink(repo.root / "data" / "a.txt")
    os.unlink(repo.root / "dvfs.lock")
    repo.ok("checkout", "--force", "HEAD")
    repo.fsck_clean()


def test_a_file_written_faster_than_it_is_read_is_given_up_on(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A large file another process keeps appending to (a job writing at disk speed,
    faster than hashing goes): each try reads what its size was and one byte more,
    and the file is refused as changing after READ_RETRIES tries. It was read on
    to an end it never reached, for as long as the writer wrote (a snapshot of a root
    mount went on while a disk filled). The writer here appends twice what each read
    of the file took, up to ``cap``: the reader never catches up before it."""
    path = repo.write("data/log.bin", rand(1 << 20))
    ino, cap = os.stat(path).st_ino, 256 << 20
    read, appended = os.readv, 0

    def readv(fd: int, buffers: list[memoryview]) -> int:
        nonlocal appended
        n = read(fd, buffers)
        if os.fstat(fd).st_ino == ino and appended < cap:
            with open(path, "ab") as f:
                appended += f.write(b"x" * (2 * n))
        return n

    monkeypatch.setattr(os, "readv", readv)
    handle = Repository(repo.root)
    with Workers(2) as w:
        hasher = Hasher(handle.root, handle.chunker, None, w)
        with pytest.raises(FileChanged, match="changing"):
            hasher.stage_one(Found(b"data/log.bin", os.lstat(path)))
    assert appended < cap, "the hasher read on until the writer stopped"
    path.unlink()


@pytest.mark.parametrize("now", ["socket", "whiteout"])
def test_a_file_replaced_by_a_socket_or_a_device_after_its_listing_changed_type(
    repo: Repo, now: str
) -> None:
    """Opening a socket or a device without a driver (the kernel overlay's whiteout, a
    character device 0/0, left by a file renamed away during a mount's snapshot) fails
    with ENXIO: that is a file that changed type, not an error of the disk."""
    repo.write("data/a.txt", "a")
    path = repo.root / "data" / "a.txt"
    st = os.lstat(path)
    os.unlink(path)
    if now == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    else:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    handle = Repository(repo.root)
    with Workers(2) as w:
        hasher = Hasher(handle.root, handle.chunker, None, w)
        with pytest.raises(FileChanged, match="changed type"):
            hasher.stage_one(Found(b"data/a.txt", st))
    os.unlink(path)
    repo.fsck_clean()


def test_a_file_replaced_after_its_listing_is_hashed_as_it_is_now(repo: Repo) -> None:
    """A small file is read without an fstat first when its listing's lstat is at hand:
    replaced since (same size, another inode) or grown, what is staged is what is
    there when it is read, never the listing's idea of it."""
    repo.write("data/a.txt", "aaaa")
    repo.write("data/b.txt", "bbbb")
    seen = {n: os.lstat(repo.root / "data" / n) for n in ("a.txt", "b.txt")}
    os.unlink(repo.root / "data" / "a.txt")
    repo.write("data/a.txt", "AAAA")  # same size, another inode
    with open(repo.root / "data" / "b.txt", "ab") as fh:
        fh.write(b"more")
    handle = Repository(repo.root)
    with Workers(2) as w:
        hasher = Hasher(handle.root, handle.chunker, handle.store, w)
        got = dict(hasher.stage_many(Found(b"data/" + n.encode(), st) for n, st in seen.items()))
    handle.store.sync()
    handle.store.close()
    for name, data in (("a.txt", b"AAAA"), ("b.txt", b"bbbbmore")):
        staged = got[b"data/" + name.encode()]
        assert (staged.size, staged.digest) == (len(data), hash_bytes(data)), name
        assert staged.ino == os.lstat(repo.root / "data" / name).st_ino
    repo.ok("add", "data")
    repo.commit("v1")
    assert repo.cat("HEAD:data/a.txt") == b"AAAA"
    repo.fsck_clean()


def test_a_hard_link_to_a_file_outside_keeps_its_times(repo: Repo, tmp_path: Path) -> None:
    """Checkout aligns the mtime of an unchanged file; never that of a shared inode."""
    repo.write("data/a.txt", "same")
    repo.ok("add", "data")
    repo.commit("v1")
    outside = tmp_path / "outside.txt"
    outside.write_text("same")
    os.utime(outside, ns=(10**18, 10**18))
    os.unlink(repo.root / "data" / "a.txt")
    os.link(outside, repo.root / "data" / "a.txt")
    repo.ok("checkout", "--force", "HEAD")
    assert outside.stat().st_mtime_ns == 10**18
    assert outside.read_text() == "same"
    assert (repo.root / "data" / "a.txt").stat().st_nlink == 1
    repo.fsck_clean()


def test_pull_never_writes_through_a_linked_directory(
    make_repo: RepoFactory, tmp_path: Path, outside: Path
) -> None:
    a = make_repo("a")
    a.write("data/n.txt", "n1")
    a.write("data/m.txt", "m1")
    a.ok("add", "data")
    a.commit("v1")
    remote = tmp_path / "remote"
    a.ok("remote", "add", "origin", str(remote))
    a.ok("push")
    assert_ok(run(tmp_path, "clone", str(remote), "b"))
    b = Repo(tmp_path / "b")
    a.write("data/n.txt", "n2")
    os.unlink(a.root / "data" / "m.txt")
    a.ok("add", "data")
    a.commit("v2")
    a.ok("push")
    before = snapshot(outside)
    shutil.rmtree(b.root / "data")
    os.symlink(outside, b.root / "data")
    b.fail("pull", fragments=("data (a symbolic link", "--force"))
    assert snapshot(outside) == before and (b.root / "data").is_symlink()
    b.ok("pull", "--force")
    assert snapshot(outside) == before
    assert not (b.root / "data").is_symlink()
    assert sorted(os.listdir(b.root / "data")) == ["n.txt"]
    assert b.read("data/n.txt") == b"n2"
    b.fsck_clean()


@pytest.mark.parametrize("files", [10, 4200])  # one process; with helper processes
def test_an_unreadable_tracked_directory_is_reported_not_deleted(repo: Repo, files: int) -> None:
    for i in range(files):
        (repo.root / "d" / f"s{i % 50}").mkdir(parents=True, exist_ok=True)
        (repo.root / "d" / f"s{i % 50}" / f"f{i}.txt").write_text(str(i))
    repo.write("d/locked/inside.txt", "i")
    repo.write("d/locked/deeper/more.txt", "m")
    repo.ok("add", "d")
    repo.commit("v1")
    repo.write("d/s1/f1.txt", "changed")
    locked = repo.root / "d" / "locked"
    locked.chmod(0)
    try:
        r = repo.run("status", "--json", unprivileged=True)
        assert r.code == 1, str(r)
        st = r.json()
        assert st["unreadable"] == ["d/locked/deeper/more.txt", "d/locked/inside.txt"]
        assert st["deleted"] == [] and st["modified"] == ["d/s1/f1.txt"]
        notes = warnings_of(r)
        assert len(notes) == 1 and "d/locked" in notes[0] and "permission denied" in notes[0]
    finally:
        locked.chmod(0o755)
    assert repo.status()["deleted"] == []
    repo.fsck_clean()


# ------------------------------------------------------------------------------ the walker


def test_the_walker_resolves_any_path_with_few_descriptors(tmp_path: Path) -> None:
    """Random walks up and down a deep tree land on the right directory, holding at most
    KEEP descriptors; a link or ``..`` on the way is refused."""
    top = tmp_path / "t"
    try:
        make_chain(top, 300, b"x")
        fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
        for _ in range(150):  # a sibling at each of the first 150 levels
            os.mkdir("e", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        os.close(fd)
        os.symlink(tmp_path, top / "d" / "link")
        rng = random.Random(7)
        before = len(os.listdir("/proc/self/fd"))
        with Walker(top) as w:
            for _ in range(400):
                depth = rng.randrange(0, 301)
                rel = b"/".join([b"d"] * depth)
                if 0 < depth <= 150 and rng.random() < 0.3:
                    rel = b"/".join([b"d"] * (depth - 1) + [b"e"])
                st = os.stat(w.dir(rel, listable=rng.random() < 0.5))
                want = os.stat(os.path.join(top, os.fsdecode(rel)) if rel else top)
                assert (st.st_ino, st.st_dev) == (want.st_ino, want.st_dev), rel
                assert len(os.listdir("/proc/self/fd")) - before <= KEEP + 2
            for bad in (b"d/link", b"d/link/t", b"d/..", b"d/../d"):
                with pytest.raises(OSError):
                    w.dir(bad)
            assert w.lstat(b"d/link/t") is None
        assert len(os.listdir("/proc/self/fd")) == before
    finally:
        remove_deep(top)


class Counted:
    """A ``vfs.worktree.pools.Progress`` that keeps what it was told."""

    def __init__(self) -> None:
        self.phases: list[tuple[str, int, str]] = []
        self.advanced = 0

    def start(self, label: str, files: int, nbytes: int, unit: str = "files") -> None:
        self.phases.append((label, files, unit))

    def advance(self, files: int, nbytes: int) -> None:
        self.advanced += files

    def done(self) -> None:
        pass


def test_many_files_deleted_at_once_spare_links_directories_and_the_rest(
    tmp_path: Path, outside: Path
) -> None:
    """``remove_many`` (checkout's deletions) removes files directory by directory with a
    progress count, then the directories left empty; nothing through a link, nor a
    directory standing where a file was, nor a directory still holding something."""
    root = tmp_path / "repo"
    doomed = [f"gone/d{i % 7}/f{i}.bin".encode() for i in range(600)] + [b"top.txt"]
    for rel in doomed:
        (root / os.fsdecode(rel)).parent.mkdir(parents=True, exist_ok=True)
        (root / os.fsdecode(rel)).write_bytes(b"x")
    (root / "gone" / "d3" / "kept.txt").write_bytes(b"untracked: stays")
    (root / "gone" / "d5" / "f5.bin").unlink()
    (root / "gone" / "d5" / "f5.bin").mkdir()  # a directory where a file was: left
    os.symlink(outside / "sub", root / "via")  # a link on the way: nothing through it
    before = snapshot(outside)
    progress = Counted()
    with Workers(progress=progress) as workers:
        removed = remove_many(root, [*doomed, b"via/f0.txt", b"absent/f.txt"], workers)
    assert removed == len(doomed) - 1
    assert progress.phases == [("deleting", len(doomed) + 2, "files")]
    assert progress.advanced == len(doomed) + 2
    assert snapshot(outside) == before
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == [
        "gone", "gone/d3", "gone/d3/kept.txt", "gone/d5", "gone/d5/f5.bin", "via",
    ]  # fmt: skip


def test_only_dvfs_own_untracked_temporaries_are_removed(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "repo"
    (root / "d" / "e").mkdir(parents=True)
    ours = [b"d/.tmp-a.bin.0123abcd7", b"d/e/.tmp-x.0123abcd12", b".tmp-top.txt.fedcba980"]
    theirs = [b"d/.tmp-notes", b"d/.tmp-x.bin.0123abcd", b"d/tmp-a.bin.0123abcd7"]
    tracked = b"d/.tmp-run.202401011"  # of our form, but tracked: a user's file
    theirs += [  # a pipeline run's outputs moved aside (vfs.pipeline.repro): its own
        b"d/.tmp-dvfs-prev-0a1b2c3d-run.202401011",
        b"d/.tmp-dvfs-prev-4e5f6a7b-out/.tmp-x.0123abcd12",
    ]
    (root / "d" / ".tmp-dvfs-prev-4e5f6a7b-out").mkdir()
    for rel in [*ours, *theirs, tracked]:
        (root / os.fsdecode(rel)).write_bytes(b"x")
    os.symlink(outside, root / "d" / "link")  # never entered
    (outside / ".tmp-o.bin.0123abcd7").write_bytes(b"outside")
    assert remove_temporaries(root, {tracked}.__contains__) == len(ours)
    left = {os.fsencode(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}
    assert left == {*theirs, tracked}
    assert (outside / ".tmp-o.bin.0123abcd7").exists()


# ------------------------------------------------------------------------ a damaged index


def test_a_damaged_index_is_one_line_and_never_a_hang(repo: Repo) -> None:
    # The index is mapped, not read (vfs.repo.stage): an empty file, garbage, a FIFO
    # or a link (to a good index outside: never followed) in its place each give the
    # one line that says how to rebuild it.
    repo.write("d/a.txt", "a")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    index = repo.root / ".dvfs" / "index"
    good = index.read_bytes()
    outside = repo.root.parent / "index-outside"
    outside.write_bytes(good)
    for damage in ("empty", "garbage", "cut", "fifo", "link"):
        index.unlink()
        if damage == "fifo":
            os.mkfifo(index)
        elif damage == "link":
            index.symlink_to(outside)
        else:
            index.write_bytes({"empty": b"", "garbage": b"\xc1" * 64, "cut": good[:-7]}[damage])
        for args in (("status",), ("status", "--json"), ("add", "d")):
            r = repo.run(*args, timeout=30)
            said = "is a symbolic link" if damage == "link" else "is damaged"
            line = assert_error(r, "staging index", said, "dvfs checkout --force HEAD")
            assert r.code == 1, (damage, args, line)
        # What the line says to run works, and never reads through the link.
        repo.write("d/a.txt", "changed")
        r = repo.ok("checkout", "--force", "HEAD")
        assert "the staging index was not readable: it is rebuilt from v1" in r.err
        assert (repo.root / "d" / "a.txt").read_text() == "a"
        assert index.is_file() and not index.is_symlink()
        assert "working tree clean" in repo.ok("status").out
    assert outside.read_bytes() == good
    repo.fsck_clean()


def test_a_damaged_index_is_rebuilt_keeping_the_working_files(repo: Repo) -> None:
    # The damaged-index line names a rebuild that keeps uncommitted work: the index
    # takes HEAD's content, the working files stay and are compared with it.
    repo.write("d/a.txt", "a")
    repo.write("d/b.txt", "b")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    repo.write("d/a.txt", "my uncommitted work")
    repo.write("d/new.txt", "new")
    repo.ok("add", "d/new.txt")
    (repo.root / "d" / "b.txt").unlink()
    index = repo.root / ".dvfs" / "index"
    index.write_bytes(b"\xc1" * 64)
    line = assert_error(repo.run("status"), "staging index", "is damaged")
    assert "dvfs restore --staged ." in line
    r = repo.ok("restore", "--staged", ".")
    assert "the staging index was not readable: it is rebuilt from HEAD" in r.err
    assert repo.read("d/a.txt") == b"my uncommitted work"
    st = repo.status()
    assert st["staged"] == [] and st["untracked"] == ["d/new.txt"]
    assert st["modified"] == ["d/a.txt"]
    assert st["deleted"] == ["d/b.txt"]
    repo.ok("add", "d")
    repo.ok("commit", "-m", "two")
    assert repo.cat("HEAD:d/a.txt") == b"my uncommitted work"
    repo.fsck_clean()


def test_a_name_that_is_not_utf8_is_added_moved_restored_and_removed_by_name(
    repo: Repo,
) -> None:
    """A file named in bytes no encoding reads (``d/\\xff\\xfe``) is named on the command
    line like any other: every command taking the repository's lock works on it."""
    name = os.fsdecode(b"d/\xff\xfe")  # as the shell passes it to Python
    moved = os.fsdecode(b"d/\xfe\xff")
    os.makedirs(repo.root / "d")
    with open(os.fsencode(repo.root / name), "wb") as f:
        f.write(b"one\n")
    repo.ok("add", name)
    repo.ok("commit", "-m", "one")
    repo.ok("mv", name, moved)
    repo.ok("commit", "-m", "moved")
    with open(os.fsencode(repo.root / moved), "wb") as f:
        f.write(b"changed\n")
    repo.ok("restore", moved)
    assert (repo.root / moved).read_bytes() == b"one\n"
    repo.ok("rm", moved)
    assert not (repo.root / moved).exists()
    repo.ok("commit", "-m", "removed")
    assert "Nothing to commit, working tree clean." in repo.ok("status").out
    repo.fsck_clean()


# A checkout whose files are written one by one, with a user's change to one of them
# made after the checkout found it safe to replace and before it is replaced: the
# hook runs when the batch of files holding the one at ``leaf`` is about to be written.
RACING_CHECKOUT = """
import os, sys
import vfs.worktree.restore as restore
from vfs.cli import main
real, done = restore.write_batch, []
def write_batch(walker, batch, *rest):
    if any(rel.rpartition(b"/")[2] == {leaf!r} for rel, _ in batch) and not done:
        done.append(1)
{action}
    return real(walker, batch, *rest)
restore.write_batch = write_batch
main()
"""
RACES = {
    "written in place": (
        b"a.txt",
        "        with open('d/a.txt', 'r+b') as f:\n"
        "            f.write(b'my edit, longer than the old\\n')",
    ),
    "saved by a rename": (
        b"a.txt",
        "        with open('d/.a.txt.swp', 'wb') as f:\n"
        "            f.write(b'my edit, longer than the old\\n')\n"
        "        os.rename('d/.a.txt.swp', 'd/a.txt')",
    ),
    "made where nothing was": (
        b"new.txt",
        "        with open('d/new.txt', 'wb') as f:\n"
        "            f.write(b'my edit, longer than the old\\n')",
    ),
}


@pytest.mark.parametrize("race", sorted(RACES))
def test_a_file_changed_while_a_checkout_replaces_it_is_kept_and_reported(
    repo: Repo, race: str
) -> None:
    """A checkout checks that a file is clean, then writes the version's file and
    renames it over the old one. A user's write between the two (an editor saving, a
    job appending) or a file made where the checkout found nothing must not be lost:
    the file is kept as the user left it, the other files are written, the command
    names the file in one line and exits 1, and `status` shows it modified."""
    leaf, action = RACES[race]
    repo.write("d/a.txt", "one\n")
    repo.write("d/b.txt", "bee\n")
    repo.ok("add", "d")
    first = repo.commit("one")
    repo.write("d/a.txt", "two\n")
    repo.write("d/b.txt", "bee two\n")
    repo.write("d/new.txt", "new\n")
    repo.ok("add", "d")
    repo.commit("two")
    repo.ok("checkout", first)
    if leaf == b"new.txt":
        assert not (repo.root / "d/new.txt").exists()
    proc = run_as_dvfs(
        repo.root, RACING_CHECKOUT.format(leaf=leaf, action=action), "switch", "main"
    )
    assert proc.returncode == 1, proc.stderr
    mine = "d/" + leaf.decode()
    assert repo.read(mine) == b"my edit, longer than the old\n"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "changed while" in lines[0] and mine in lines[0], proc.stderr
    assert "kept as changed" in lines[0]
    others = {"d/a.txt": b"two\n", "d/b.txt": b"bee two\n", "d/new.txt": b"new\n"}
    for rel, data in others.items():
        if rel != mine:
            assert repo.read(rel) == data
    st = repo.status()
    assert st["modified"] == [mine] and st["staged"] == [] and st["untracked"] == []
    repo.fsck_clean()


RACING_DELETE = """
import sys
import vfs.worktree.remove as remove
from vfs.cli import main
real, done = remove._unlink_all, []
def unlink_all(dir_fd, head, leaves, *rest):
    if b"gone.txt" in leaves and not done:
        done.append(1)
        with open("d/gone.txt", "ab") as f:
            f.write(b"my line\\n")
    return real(dir_fd, head, leaves, *rest)
remove._unlink_all = unlink_all
main()
"""


def at_a_version_main_deletes_a_file_of(repo: Repo) -> None:
    """Check out v1 (``d/a.txt``, ``d/gone.txt``) of a branch ``main`` whose v2 deleted
    ``d/gone.txt``: a `switch main` then deletes it."""
    repo.write("d/a.txt", "one\n")
    repo.write("d/gone.txt", "old\n")
    repo.ok("add", "d")
    first = repo.commit("one")
    repo.ok("rm", "d/gone.txt")
    repo.commit("two")
    repo.ok("checkout", first)


def test_a_file_changed_while_a_checkout_deletes_it_is_kept_and_reported(repo: Repo) -> None:
    """A file the version does not have is deleted once the checkout found it clean;
    a line appended meanwhile went with it. It is kept, named, the command exits 1,
    and the file is left untracked (the version does not hold it)."""
    at_a_version_main_deletes_a_file_of(repo)
    proc = run_as_dvfs(repo.root, RACING_DELETE, "switch", "main")
    assert proc.returncode == 1, proc.stderr
    assert repo.read("d/gone.txt") == b"old\nmy line\n"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "d/gone.txt" in lines[0] and "kept as changed" in lines[0]
    st = repo.status()
    assert st["untracked"] == ["d/gone.txt"] and st["modified"] == [] and st["staged"] == []
    assert not [p.name for p in (repo.root / "d").iterdir() if p.name.startswith(".tmp-")]
    repo.fsck_clean()


# A checkout killed once it has moved a file it deletes aside, before it compares it:
# the hook appends a line first (a user's write the comparison would have found), then
# the process dies where the aside name is first looked at.
KILLED_ASIDE = """
import os
import vfs.worktree.remove as remove
from vfs.cli import main
real_unlink_all, real_stat = remove._unlink_all, os.stat
def unlink_all(dir_fd, head, leaves, *rest):
    if b"gone.txt" in leaves:
        with open("d/gone.txt", "ab") as f:
            f.write(b"my line\\n")
    return real_unlink_all(dir_fd, head, leaves, *rest)
def stat(path, *args, **kw):
    if isinstance(path, bytes) and b"gone.txt" in path and path != b"gone.txt":
        os._exit(9)
    return real_stat(path, *args, **kw)
remove._unlink_all = unlink_all
os.stat = stat
main()
"""


def test_a_file_set_aside_by_a_killed_checkout_is_listed_and_never_cleaned_up(
    repo: Repo,
) -> None:
    """A file a checkout deletes is first renamed aside, compared with what was checked,
    then deleted or put back. Killed in between, it stayed under a temporary name,
    which `status` does not list and `fsck` (or the next checkout's cleanup) deletes:
    a write the comparison would have kept was lost. The name it is set aside under
    is one `status` lists as untracked and no cleanup deletes."""
    at_a_version_main_deletes_a_file_of(repo)
    proc = run_as_dvfs(repo.root, KILLED_ASIDE, "switch", "main")
    assert proc.returncode == 9, proc.stderr
    assert not (repo.root / "d/gone.txt").exists()
    repo.ok("fsck")
    repo.ok("switch", "main")  # (cleans up after the killed one)
    aside = [p for p in (repo.root / "d").iterdir() if p.name not in ("a.txt",)]
    assert [p.read_bytes() for p in aside] == [b"old\nmy line\n"], aside
    assert repo.status()["untracked"] == ["d/" + aside[0].name]
    repo.fsck_clean()
    for leaf in (b"gone.txt", b"x" * 255, b".tmp-notes.0123abcd7"):  # (never a temporary's)
        name = aside_leaf(leaf)
        assert len(name) <= 255
        assert not is_tmp_leaf(name) and name.endswith(b".dvfs-kept")


# A checkout killed once it has swapped the version's file in for one it replaces, before
# it compares the old one (a line appended first, a user's write the comparison would
# have found, then the process dies as the swap returns).
KILLED_SWAP = """
import os
import vfs.worktree.restore as restore
from vfs.cli import main
real_write, real_exchange = restore.write_batch, restore.rename_exchange
def write_batch(walker, batch, *rest):
    with open("d/a.txt", "ab") as f:
        f.write(b"my line\\n")
    return real_write(walker, batch, *rest)
def rename_exchange(dir_fd, a, b):
    swapped = real_exchange(dir_fd, a, b)
    if b == b"a.txt":
        os._exit(9)
    return swapped
restore.write_batch = write_batch
restore.rename_exchange = rename_exchange
main()
"""


def test_a_file_swapped_out_by_a_killed_checkout_is_listed_and_never_cleaned_up(
    repo: Repo,
) -> None:
    """A file a checkout replaces is swapped with the version's file, then compared
    with what was checked, and deleted or swapped back. Killed in between, the old
    file stayed under a temporary name, which `status` does not list and `fsck` (or
    the next checkout's cleanup) deletes: a write the comparison would have kept was
    lost. It is under a name `status` lists as untracked and no cleanup deletes, and
    `status` shows the file at its name as what it holds now."""
    repo.write("d/a.txt", "one\n")
    repo.ok("add", "d")
    first = repo.commit("one")
    repo.write("d/a.txt", "two\n")
    repo.ok("add", "d")
    repo.commit("two")
    repo.ok("checkout", first)
    proc = run_as_dvfs(repo.root, KILLED_SWAP, "switch", "main")
    assert proc.returncode == 9, proc.stderr
    assert repo.read("d/a.txt") == b"two\n"
    repo.ok("fsck")
    aside = [p for p in (repo.root / "d").iterdir() if p.name != "a.txt"]
    assert [p.read_bytes() for p in aside] == [b"one\nmy line\n"], aside
    st = repo.status()
    assert st["modified"] == ["d/a.txt"] and st["untracked"] == ["d/" + aside[0].name]
    repo.ok("switch", "main")  # (cleans up after the killed one)
    assert repo.read("d/a.txt") == b"two\n"
    assert aside[0].read_bytes() == b"one\nmy line\n"
    st = repo.status()
    assert st["modified"] == [] and st["untracked"] == ["d/" + aside[0].name]
    repo.fsck_clean()


def test_a_file_changed_again_while_restore_replaces_it_is_kept_and_reported(
    repo: Repo,
) -> None:
    """`dvfs restore PATH` discards the changes it found; a write made after it looked
    (another editor saving) is not one of them: the file is kept as written, named
    as not restored, and the command exits 1."""
    repo.write("d/a.txt", "one\n")
    repo.write("d/b.txt", "bee\n")
    repo.ok("add", "d")
    repo.commit("one")
    repo.write("d/a.txt", "mine\n")
    repo.write("d/b.txt", "mine too\n")
    action = (
        "        with open('d/a.txt', 'r+b') as f:\n"
        "            f.write(b'my newer edit, longer\\n')"
    )
    code = RACING_CHECKOUT.format(leaf=b"a.txt", action=action)
    proc = run_as_dvfs(repo.root, code, "restore", "d")
    assert proc.returncode == 1, proc.stderr
    assert repo.read("d/a.txt") == b"my newer edit, longer\n"
    assert repo.read("d/b.txt") == b"bee\n"
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "d/a.txt" in lines[0] and "changed while" in lines[0]
    assert repo.status()["modified"] == ["d/a.txt"]
    repo.fsck_clean()


RACING_RESTORE_ALL = """
import vfs.worktree.restore as restore
from vfs.cli import main
real, done = restore.write_batch, []
def write_batch(walker, batch, *rest):
    if not done:
        done.append(1)
        for name in {names!r}:
            with open(name, "ab") as f:
                f.write(b"my newer line\\n")
    return real(walker, batch, *rest)
restore.write_batch = write_batch
main()
"""


@pytest.mark.parametrize("names", [["d/a.txt"], ["d/a.txt", "d/b.txt"]])
def test_restore_whose_every_file_was_kept_says_no_other_was_restored(
    repo: Repo, names: list[str]
) -> None:
    """When every file `dvfs restore` was asked for changed again after it looked, none
    was restored: the error names them and does not claim "the other files were
    restored"."""
    repo.write("d/a.txt", "one\n")
    repo.write("d/b.txt", "bee\n")
    repo.ok("add", "d")
    repo.commit("one")
    for name in names:
        repo.write(name, "mine\n")
    proc = run_as_dvfs(repo.root, RACING_RESTORE_ALL.format(names=names), "restore", *names)
    assert proc.returncode == 1, proc.stderr
    for name in names:
        assert repo.read(name) == b"mine\nmy newer line\n"
        assert name in proc.stderr
    assert "changed while" in proc.stderr
    assert "other files" not in proc.stderr, proc.stderr
    assert repo.status()["modified"] == sorted(names)
    repo.fsck_clean()


RACING_RETIME = """
import vfs.ops.checkout as checkout
from vfs.cli import main
real = checkout.remove_many
def remove_many(*args):
    with open("d/a.txt", "r+b") as f:
        f.write(b"changed meanwhile\\n")
    return real(*args)
checkout.remove_many = remove_many
main()
"""


def test_a_file_changed_while_a_checkout_aligns_its_mtime_is_not_recorded_clean(
    repo: Repo,
) -> None:
    """A file holding the version's bytes with another mtime is not written: its mtime
    is set and its new stat recorded as clean. A write after the check was recorded
    so too: `status` said nothing, and the next checkout replaced it unasked. It is
    left unstamped, named, the command exits 1, and `status` shows it modified."""
    repo.write("d/a.txt", "one\n")
    os.utime(repo.root / "d/a.txt", ns=(10**18, 10**18))
    repo.ok("add", "d")
    first = repo.commit("one")
    os.utime(repo.root / "d/a.txt", ns=(2 * 10**18, 2 * 10**18))
    repo.ok("add", "d")
    repo.commit("same bytes, another mtime")
    proc = run_as_dvfs(repo.root, RACING_RETIME, "checkout", first)
    assert proc.returncode == 1, proc.stderr
    assert repo.read("d/a.txt") == b"changed meanwhile\n"
    assert "d/a.txt" in proc.stderr and "kept as changed" in proc.stderr
    assert repo.status()["modified"] == ["d/a.txt"]
    repo.fsck_clean()


RACING_RM = """
import vfs.repo.stage as stage
from vfs.cli import main
real = stage.Index.save
def save(self, *args, **kw):
    with open("d/a.txt", "ab") as f:
        f.write(b"my line\\n")
    return real(self, *args, **kw)
stage.Index.save = save
main()
"""


def test_a_file_changed_while_rm_deletes_it_is_kept_and_reported(repo: Repo) -> None:
    """`dvfs rm` deletes files it found clean; a line appended after the check went
    with the file. It is kept (untracked now, as rm unstaged it), named, and the
    command exits 1; a file touched but unchanged is still deleted."""
    repo.write("d/a.txt", "one\n")
    repo.write("d/b.txt", "bee\n")
    repo.ok("add", "d")
    repo.commit("one")
    os.utime(repo.root / "d/b.txt", ns=(10**18, 10**18))  # (same bytes: stat differs)
    proc = run_as_dvfs(repo.root, RACING_RM, "rm", "d/a.txt", "d/b.txt")
    assert proc.returncode == 1, proc.stderr
    assert repo.read("d/a.txt") == b"one\nmy line\n"
    assert not (repo.root / "d/b.txt").exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "d/a.txt" in lines[0] and "kept as changed" in lines[0]
    st = repo.status()
    assert st["untracked"] == ["d/a.txt"]
    assert [(c["path"], c["status"]) for c in st["staged"]] == [
        ("d/a.txt", "removed"), ("d/b.txt", "removed"),
    ]  # fmt: skip
    repo.fsck_clean()


@pytest.mark.parametrize("race", ["deleted", "written"])
def test_a_file_changed_while_a_merge_deletes_or_replaces_it_is_kept_and_reported(
    repo: Repo, race: str
) -> None:
    """A merge checks that the working tree is clean, then deletes the files theirs
    deleted and writes the files theirs changed. A line appended between the two went
    with the file. It is kept, named in one line, the command exits 1, the merge is
    made all the same (the index holds the merged files), and `status` shows the file
    as the user left it: untracked where the merge deleted it, modified where it wrote."""
    repo.write("d/a.txt", "one\n")
    repo.write("d/gone.txt", "old\n")
    repo.write("d/ours.txt", "ours\n")
    repo.ok("add", "d")
    repo.commit("one")
    repo.ok("switch", "-c", "other")
    repo.write("d/a.txt", "theirs\n")
    repo.ok("rm", "d/gone.txt")
    repo.ok("add", "d")
    repo.commit("theirs")
    repo.ok("switch", "main")
    repo.write("d/ours.txt", "ours two\n")
    repo.ok("add", "d")
    repo.commit("ours")
    if race == "deleted":
        mine, code, wanted = "d/gone.txt", RACING_DELETE, b"old\nmy line\n"
    else:
        action = "        with open('d/a.txt', 'ab') as f:\n            f.write(b'my line\\n')"
        mine, wanted = "d/a.txt", b"one\nmy line\n"
        code = RACING_CHECKOUT.format(leaf=b"a.txt", action=action)
    proc = run_as_dvfs(repo.root, code, "merge", "other")
    assert proc.returncode == 1, proc.stderr
    assert repo.read(mine) == wanted
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and mine in lines[0] and "kept as changed" in lines[0], proc.stderr
    if race == "deleted":
        assert repo.read("d/a.txt") == b"theirs\n"
    else:
        assert not (repo.root / "d/gone.txt").exists()
    st = repo.status()
    assert st["staged"] == []
    if race == "deleted":
        assert st["untracked"] == [mine] and st["modified"] == []
    else:
        assert st["modified"] == [mine] and st["untracked"] == []
    assert not [p.name for p in (repo.root / "d").iterdir() if p.name.startswith(".tmp-")]
    log = repo.ok("log").out
    assert "merge other into main" in log
    repo.fsck_clean()
