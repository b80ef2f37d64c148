"""The writable working tree as a POSIX filesystem: owners, times, hard links, FIFOs,
sockets and devices, with real tools, as root and as an ordinary user.

Each test does the same work in MNT and in a directory of the local disk, and then
compares the two trees as ``lstat`` sees them (type, mode with setuid/setgid/sticky,
owner, size, content, link target, device number, which names share an inode, and
the times the tools set). Then: ``dvfs snapshot`` (special files skipped with one
line, owners and the bits beyond 0777 left out, each hard link's name a file),
``dvfs status MNT``, fsck, and kill -9 of the daemon: the remounted tree must show
everything again, before and after a snapshot.

The ordinary user is uid 65534 acting (through ``setpriv``) in root's mount made with
``--allow-other``: this machine's ``/dev/fuse`` admits root only, and the kernel's
permission checks (``default_permissions``) are what a user meets either way.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack
import pytest

from daemon.fs import inodes
from daemon.overlay import Overlay
from tests.support.cli import assert_error, assert_ok, fsck_clean
from tests.support.mount import MTIME, Mount, dvfs, mounted, stop
from tests.test_worktree import build_repo
from vfs import Kind
from vfs.mount import control

NOBODY = 65534
ARCHIVE_OWNERS = ((1000, 1000), (1001, 1001), (1002, 1003))
ATIME = 981_173_106  # 2001-02-03 04:05:06 UTC
OVERLAYS = {"daemon": ("--overlay", "daemon"), "kernel": ("--overlay", "kernel")}


def nobody(cwd: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run a shell script as uid/gid 65534 (no other groups) in ``cwd``."""
    drop = [f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    return subprocess.run(
        ["setpriv", *drop, "sh", "-c", script],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def sh(cwd: Path, script: str) -> str:
    """Run a shell script (it must succeed); its standard output."""
    p = subprocess.run(
        ["sh", "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert p.returncode == 0, f"{script}: exit {p.returncode}: {p.stderr}"
    return p.stdout


# ------------------------------------------------------------------ comparing two trees


def posix_of(
    root: Path, *, dir_times: tuple[str, ...] = (), atimes: tuple[str, ...] = ()
) -> dict[str, tuple[Any, ...]]:
    """Every path below ``root`` with what ``lstat`` says of it, as a local disk would.

    Left out, because no two filesystems agree on them: ctime, directory sizes and
    link counts, blocks. Mtimes of directories only below ``dir_times`` (where tools
    set them), atimes only of ``atimes`` (reads move them on a disk, not in MNT).
    Names of one inode are told by the first such name (in sorted order).
    """
    out: dict[str, tuple[Any, ...]] = {}
    first: dict[int, str] = {}
    paths: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        paths += [os.path.relpath(os.path.join(dirpath, n), root) for n in dirnames + filenames]
    for rel in sorted(paths):
        st = os.lstat(root / rel)
        kind = stat.S_IFMT(st.st_mode)
        row: tuple[Any, ...] = (oct(kind), oct(stat.S_IMODE(st.st_mode)), st.st_uid, st.st_gid)
        if stat.S_ISDIR(st.st_mode):
            if any(rel == p or rel.startswith(p + "/") for p in dir_times):
                row += (st.st_mtime_ns,)
        else:
            same = first.setdefault(st.st_ino, rel)
            row += (
                st.st_nlink,
                same,
                st.st_mtime_ns if kind in (stat.S_IFREG, stat.S_IFLNK) else 0,
            )
        if stat.S_ISREG(st.st_mode):
            row += (st.st_size, digest(root / rel))
        elif stat.S_ISLNK(st.st_mode):
            row += (os.readlink(root / rel),)
        elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
            row += (st.st_rdev,)
        if rel in atimes:
            row += ("atime", st.st_atime_ns)
        out[rel] = row
    return out


def digest(path: Path) -> str:
    """SHA-256 of a file's content, read without moving its atime (a disk's relatime would)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
    with os.fdopen(fd, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def versioned_of(root: Path) -> dict[str, tuple[Any, ...]]:
    """What a version records of the tree at ``root``: files (permission bits, content,
    mtime), links and directories; no owners, no special files."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", oct(st.st_mode & 0o777), digest(p), st.st_mtime_ns)
    return out


def assert_same(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Two ``posix_of``/``versioned_of`` results are equal; else name the differences."""
    if got != want:
        only_got = sorted(set(got) - set(want))[:10]
        only_want = sorted(set(want) - set(got))[:10]
        differ = [(k, got[k], want[k]) for k in sorted(set(got) & set(want)) if got[k] != want[k]]
        raise AssertionError(
            f"only in MNT: {only_got}\nonly on disk: {only_want}\ndifferent: {differ[:10]}"
        )


# ------------------------------------------------------------------------------ fixture


@dataclass
class Posix:
    """A repository mounted writable (``--allow-other``) where any user may reach it,
    and ``local``: the branch head's data on local disk, changed like MNT."""

    repo: Path
    mnt: Path
    home: Path
    local: Path
    options: tuple[str, ...]  # the mount's, beside --allow-other
    mounts: contextlib.ExitStack  # the daemons started, each stopped at the end
    mount: Mount = field(init=False)

    @property
    def data(self) -> Path:
        return self.mnt / "data"

    def both(self, fn: Callable[[Path], None]) -> None:
        """Do the same work on the local copy and in MNT."""
        fn(self.local)
        fn(self.data)

    def snapshot(self, message: str) -> str:
        """``dvfs snapshot MNT -m message``; its whole output."""
        r = assert_ok(dvfs(self.repo, self.home, "snapshot", str(self.mnt), "-m", message))
        return r.out + r.err

    def status(self) -> str:
        return assert_ok(dvfs(self.repo, self.home, "status", str(self.mnt))).out

    def remount(self) -> None:
        """Kill the daemon with SIGKILL and mount the working tree again."""
        self.mount.proc.send_signal(signal.SIGKILL)
        assert self.mount.proc.wait(timeout=30) == -signal.SIGKILL
        stop(self.mount)
        self.mount = self.mounts.enter_context(
            mounted(str(self.repo), self.mnt, self.home, "--allow-other", *self.options)
        )


@pytest.fixture(name="public")
def public_fixture() -> Iterator[Path]:
    """A directory every user may enter (pytest's temporary directories are root's)."""
    path = Path(tempfile.mkdtemp(prefix="dvfs-posix-"))
    os.chmod(path, 0o755)
    try:
        yield path
    finally:
        with contextlib.suppress(OSError):
            stop_all_below(path)
        shutil.rmtree(path, ignore_errors=True)


def stop_all_below(path: Path) -> None:
    """Lazily detach anything still mounted below ``path`` (a failed test's)."""
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split(" ")[4]
        if point.startswith(str(path) + "/"):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


@pytest.fixture(name="px", params=sorted(OVERLAYS))
def px_fixture(request: pytest.FixtureRequest, public: Path) -> Iterator[Posix]:
    root = public / "repo"
    build_repo(root)
    local = public / "local"
    shutil.copytree(root / "data", local, symlinks=True)
    home = public / "home"
    with contextlib.ExitStack() as mounts:
        px = Posix(root, public / "mnt", home, local, OVERLAYS[request.param], mounts)
        px.mount = mounts.enter_context(
            mounted(str(root), px.mnt, home, "--allow-other", *px.options)
        )
        yield px


def foreign_tree(top: Path) -> None:
    """Files, a directory, links and a hard link owned by other users, with setuid and
    setgid bits and fixed times: what an archive from another machine holds."""
    owned = top / "owned"
    (owned / "shared").mkdir(parents=True)
    files = {
        "a.txt": (b"alpha\n", 0o644, ARCHIVE_OWNERS[0]),
        "tool": (b"#!/bin/sh\n", 0o4755, ARCHIVE_OWNERS[0]),
        "shared/g.txt": (b"group\n", 0o2750, ARCHIVE_OWNERS[1]),
        "root.sh": (b"echo\n", 0o755, (0, 0)),
    }
    for i, (rel, (data, mode, (uid, gid))) in enumerate(sorted(files.items())):
        p = owned / rel
        p.write_bytes(data)
        os.chown(p, uid, gid)
        os.chmod(p, mode)
        os.utime(p, ns=(MTIME * 10**9 + i, MTIME * 10**9 + i))
    os.link(owned / "a.txt", owned / "a-hard")
    os.symlink("a.txt", owned / "link")
    os.lchown(owned / "link", *ARCHIVE_OWNERS[2])
    os.utime(owned / "link", ns=(MTIME * 10**9, MTIME * 10**9), follow_symlinks=False)
    os.chown(owned / "shared", *ARCHIVE_OWNERS[1])
    os.chmod(owned / "shared", 0o2775)
    os.chown(owned, *ARCHIVE_OWNERS[0])
    os.chmod(owned, 0o750)
    for d in (owned / "shared", owned):
        os.utime(d, ns=(MTIME * 10**9 + 7, MTIME * 10**9 + 7))


def fifo_round_trip(path: Path) -> bytes:
    """A reader process and a writer process meet at the FIFO ``path``."""
    reader = subprocess.Popen(["cat", str(path)], stdout=subprocess.PIPE)
    sh(path.parent, f"printf 'through the pipe\\n' > {path.name}")
    out, _ = reader.communicate(timeout=30)
    assert reader.returncode == 0
    return out


def socket_round_trip(path: Path) -> bytes:
    """A server binds the Unix socket ``path``; a client process talks to it."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen(1)
    got: list[bytes] = []

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            got.append(conn.recv(100))
            conn.sendall(b"pong")

    t = threading.Thread(target=serve)
    t.start()
    client = (
        "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
        "s.sendall(b'ping'); sys.stdout.write(s.recv(100).decode())"
    )
    answer = sh(path.parent, f'python3 -c "{client}" {path.name}')
    t.join(timeout=30)
    server.close()  # the socket file stays, as on a disk
    return got[0] + b"/" + answer.encode()


# --------------------------------------------------------------------------------- root


TOOL_DIRS = ("posix/tarx/owned", "posix/cpa", "posix/rsync", "posix/cpal")
MISC_ATIME = "posix/misc/t.txt"


def root_tools(src: Path, archive: Path, top: Path) -> None:
    """As root, in ``top``: tar x, cp -a, rsync -aH (twice), cp -al, ln, mkfifo, a
    socket, mknod, touch -a -d, chown."""
    p = top / "posix"
    p.mkdir()
    p.chmod(0o755)
    (p / "tarx").mkdir()
    tar = subprocess.run(
        ["tar", "xf", str(archive), "-C", str(p / "tarx")], capture_output=True, text=True,
        check=False,
    )  # fmt: skip
    assert (tar.returncode, tar.stderr) == (0, "")  # no "Cannot change ownership"
    sh(p, f"cp -a {src}/owned cpa")
    sh(p, f"rsync -aH {src}/owned/ rsync/")
    assert sh(p, f"rsync -aHi {src}/owned/ rsync/") == ""  # the second run transfers nothing
    sh(p, "cp -al cpa cpal")
    m = p / "misc"
    m.mkdir()
    sh(m, "ln ../cpa/a.txt a-link && printf 'text\\n' > t.txt && mkfifo fifo && mknod null c 1 3")
    assert fifo_round_trip(m / "fifo") == b"through the pipe\n"
    assert socket_round_trip(m / "sock") == b"ping/pong"
    sh(m, "touch -m -d '2000-01-01 00:00:00' t.txt && touch -a -d '2001-02-03 04:05:06Z' t.txt")
    sh(m, "cp -p ../cpa/tool tool2 && chmod 6755 tool2 && chown 1234:1235 tool2")
    sh(m, "chgrp 1236 null && chown 1237 fifo")


def test_root_tools_keep_owners_links_times_and_special_files(px: Posix) -> None:
    """Root's work with tar x (foreign owners), cp -a, rsync -aH, cp -al, ln, mkfifo, a
    socket, mknod, touch and chown shows in MNT as on a disk, is recorded as a version
    can hold it, and survives kill -9 of the daemon before and after the snapshot."""
    src = px.local.parent / "src"
    foreign_tree(src)
    archive = px.local.parent / "owned.tar"
    sh(src, f"tar cf {archive} owned")
    px.both(lambda top: root_tools(src, archive, top))

    def check(*, dir_times: bool = True, atimes: bool = True) -> None:
        """MNT as the local disk; times too unless told (after a snapshot and a
        remount, MNT shows them as a checkout would: README)."""
        kept, dirs = (MISC_ATIME,) if atimes else (), TOOL_DIRS if dir_times else ()
        assert_same(
            posix_of(px.data, dir_times=dirs, atimes=kept),
            posix_of(px.local, dir_times=dirs, atimes=kept),
        )

    check()
    t = os.stat(px.data / MISC_ATIME)
    assert (t.st_atime_ns, t.st_mtime_ns) == (ATIME * 10**9, 946_684_800 * 10**9)
    assert os.stat(px.data / "posix/cpa/a.txt").st_nlink == 5  # a-hard, cpal's two, a-link
    assert os.stat(px.data / "posix/misc/null").st_rdev == os.makedev(1, 3)
    px.remount()  # everything journaled, nothing snapshot yet
    check()
    status = px.status()
    for special in ("fifo", "sock", "null"):
        assert f"not versionable: data/posix/misc/{special}" in status
    out = px.snapshot("posix tools")
    assert "skipped 3 special files" in out and "data/posix/misc/fifo" in out
    v = px.mnt / ".versions" / "v2" / "data"
    assert_same(versioned_of(v), versioned_of(px.local))
    assert os.stat(v / "posix/tarx/owned/tool").st_mode & 0o7777 == 0o755  # no setuid
    assert {os.stat(v / "posix/cpa" / n).st_uid for n in ("a.txt", "tool")} == {0}
    fsck_clean(px.repo)
    # (a snapshot of the kernel's overlay reads the upper files: under relatime, as any
    # reader would, that moves their atimes)
    check(atimes="--overlay daemon" in " ".join(px.options))
    assert "not versionable: data/posix/misc/fifo" in px.status()  # kept after it
    px.remount()  # what a version cannot hold was kept
    check(dir_times=False, atimes=False)
    fsck_clean(px.repo)


# -------------------------------------------------------------------------------- a user


USER_WORK = """
set -u
tar xf ARCHIVE; echo "tar $?"
printf 'mine\\n' > f; chmod 4755 f; printf 'more\\n' >> f
chown 0 f 2>/dev/null; echo "chown to root $?"
chgrp 0 f 2>/dev/null; echo "chgrp to root's group $?"
chown 65534:65534 f; echo "chown to self $?"
chmod 2755 f; chgrp 65534 f; echo "chgrp to own group $?"
chown 0 ../a.txt 2>/dev/null; echo "chown of root's file $?"
printf x >> ../a.txt 2>/dev/null; echo "write to root's file $?"
touch -d '2000-01-01 00:00:00' ../a.txt 2>/dev/null; echo "touch -d of root's file $?"
touch ../a.txt 2>/dev/null; echo "touch of root's file $?"
mkfifo fifo; echo "mkfifo $?"
mknod null c 1 3 2>/dev/null; echo "mknod of a device $?"
ln f f-link; echo "ln $?"
ln ../a.txt stolen 2>/dev/null; echo "ln of root's file $?"
touch -m -d '2000-01-02 00:00:00Z' f; echo "touch -m $?"
touch -a -d '2001-02-03 04:05:06Z' f-link; echo "touch -a $?"
"""


def test_an_ordinary_user_meets_the_permission_checks_of_a_disk(px: Posix) -> None:
    """uid 65534: tar x of an archive with foreign owners (the files become theirs),
    chown/chgrp refused but to their own group, writes clearing setuid, no devices,
    root's files untouchable; the same answers and the same tree as on a local disk,
    before and after kill -9 of the daemon and after a snapshot."""
    src = px.local.parent / "src"
    foreign_tree(src)
    archive = px.local.parent / "owned.tar"
    sh(src, f"tar cf {archive} owned")
    answers = []
    for top in (px.local, px.data):
        (top / "user").mkdir()
        os.chown(top / "user", NOBODY, NOBODY)
        done = nobody(top / "user", USER_WORK.replace("ARCHIVE", str(archive)))
        assert done.returncode == 0, done.stderr
        answers.append(done.stdout)
    local_said, mnt_said = answers
    assert mnt_said == local_said
    assert (
        "tar 0" in mnt_said and "chown to root 1" in mnt_said and "mknod of a device 1" in mnt_said
    )
    assert "chgrp to own group 0" in mnt_said and "ln of root's file 1" in mnt_said
    assert_same(posix_of(px.data, atimes=("user/f",)), posix_of(px.local, atimes=("user/f",)))
    px.remount()  # the user's changes survive kill -9 before any snapshot
    assert_same(posix_of(px.data, atimes=("user/f",)), posix_of(px.local, atimes=("user/f",)))
    f = os.stat(px.data / "user" / "f")
    assert (stat.S_IMODE(f.st_mode), f.st_uid, f.st_gid, f.st_nlink) == (0o755, NOBODY, NOBODY, 2)
    assert {os.stat(p).st_uid for p in (px.data / "user/owned").rglob("*")} == {NOBODY}
    out = px.snapshot("a user's work")
    assert "skipped 1 special file" in out
    fsck_clean(px.repo)
    px.remount()
    assert_same(posix_of(px.data), posix_of(px.local))


# ------------------------------------------------------------------------ the journal


def test_a_journal_of_format_1_is_replayed_and_extended(tmp_path: Path) -> None:
    """A work directory written before owners and times were journaled (format 1: nine
    fields to a node) mounts with the daemon's owner and every time the mtime; its
    records are written again framed (format 3), new ones go after them, and both
    replay together."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    mtime = MTIME * 10**9
    (work / "data" / "16").write_bytes(b"old\n")
    os.utime(work / "data" / "16", ns=(mtime, mtime))
    old = [
        ["N", 16, int(Kind.FILE), 0o640, mtime, None, None, True, None],
        ["L", inodes.ROOT, b"old.txt", 16],
        ["N", 17, int(Kind.DIR), 0o750, mtime, None, None, False, None],
        ["L", inodes.ROOT, b"dir", 17],
    ]
    (work / "journal.1").write_bytes(b"".join(msgpack.packb(r) for r in old))
    state = {"format": 1, "base": None, "gen": 1, "next": 18}
    (work / "state").write_bytes(msgpack.packb(state))

    def opened() -> Overlay:
        return Overlay(work, None, lambda version: None)

    ov = opened()
    f, d = ov.root.kids[b"old.txt"], ov.root.kids[b"dir"]  # type: ignore[index]
    assert (f.mode, f.uid, f.gid, f.size, f.mtime_ns) == (0o640, os.getuid(), os.getgid(), 4, mtime)
    assert (d.mode, d.uid) == (0o750, os.getuid())
    assert sorted(p.name for p in work.glob("journal.*")) == ["journal.2"]
    ov.set_attrs(f, owner=(1000, 1001), atime_ns=mtime + 5)
    ov.link(f, d, b"again")
    ov.close()
    ov = opened()
    f = ov.root.kids[b"old.txt"]  # type: ignore[index]
    assert (f.uid, f.gid, f.atime_ns, f.nlink) == (1000, 1001, mtime + 5, 2)
    assert ov.root.kids[b"dir"].kids[b"again"] is f  # type: ignore[index]
    ov.close()


def test_a_working_tree_keeps_its_overlay_while_it_has_changes(tmp_path: Path) -> None:
    """Root's mounts take the kernel's overlay, but a working tree with changes made
    through the daemon's is mounted with that one again until a snapshot records them
    (and the other way round); asking for the other kind meanwhile is refused."""
    root, home, mnt = tmp_path / "repo", tmp_path / "home", tmp_path / "mnt"
    build_repo(root)

    def kind() -> str:
        got = control.call(str(mnt), {"op": "stats"})
        return "kernel" if got.get("kind") == "kernel" else "daemon"

    for made, other in (("daemon", "kernel"), ("kernel", "daemon")):
        with mounted(str(root), mnt, home, "--overlay", made):
            (mnt / "data" / f"by-{made}.txt").write_bytes(made.encode())
        with mounted(str(root), mnt, home):  # auto
            assert kind() == made
            assert (mnt / "data" / f"by-{made}.txt").read_bytes() == made.encode()
        refused = dvfs(root, home, "mount", str(root), str(mnt), "--overlay", other)
        assert_error(refused, f"changes made through the {made}")
        with mounted(str(root), mnt, home):
            assert kind() == made
            assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", f"by {made}"))
    with mounted(str(root), mnt, home):
        assert kind() == "kernel"
        assert sorted(p.name for p in (mnt / "data").glob("by-*")) == [
            "by-daemon.txt",
            "by-kernel.txt",
        ]
    fsck_clean(root)
