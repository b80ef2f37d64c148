"""A repository mounted through the kernel, browsed with the tools people use.

One repository with three versions, two tags (one with a ``/``) and two branches is
mounted once for the module; every test reads it with a real tool (ls, find, du,
stat, cp, rsync, tar, diff, sha256sum, Python file objects and mmap) and checks
what it sees against what was committed: names, contents, sizes, modes, mtimes and
link targets. Nothing here writes to the repository, so no fsck is needed; writes
to the mount are refused, which is tested too.
"""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import random
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.fs.versions import READAHEAD_KIB
from tests.support.mount import (
    MTIME,
    Mount,
    commit,
    make_branch,
    mounted,
    write,
)
from vfs.repo.repository import Repository

MiB = 1024 * 1024
BIG = random.Random(7).randbytes(6 * MiB + 12345)
SCRIPT = b"#!/bin/sh\necho hi\n"


@dataclass(frozen=True)
class Dataset:
    """The module's repository, its versions and the mount of it."""

    root: Path
    ids: list[bytes]  # v1, v2, v3
    copies: dict[str, Path]  # "v1".. -> a plain copy of data/ as committed
    mount: Mount

    @property
    def mnt(self) -> Path:
        return self.mount.path

    def v(self, n: int) -> Path:
        return self.mount.versions / f"v{n}"


def build(root: Path, copies: Path) -> tuple[Repository, list[bytes], dict[str, Path]]:
    """Three versions of ``data/``; a copy of each as committed goes to ``copies``."""
    repo = Repository.init(root)
    data = root / "data"
    write(root, "data/a.txt", b"alpha\n")
    write(root, "data/big.bin", BIG)
    write(root, "data/run.sh", SCRIPT, 0o755)
    write(root, "data/readonly.txt", b"do not touch\n", 0o444)
    write(root, "data/name with space.txt", b"spaced\n")
    write(root, "data/empty", b"")
    write(root, "data/deep/x/y/z.txt", b"deep\n")
    os.symlink("a.txt", data / "link")
    os.utime(data / "link", (MTIME, MTIME), follow_symlinks=False)
    ids = [commit(repo, "one", tag="first")]
    out = {"v1": copies / "v1"}
    shutil.copytree(data, out["v1"], symlinks=True)
    write(root, "data/a.txt", b"alpha, second edition\n", mtime=MTIME + 10)
    write(root, "data/c.txt", b"new in v2\n", mtime=MTIME + 20)
    (data / "readonly.txt").unlink()
    ids.append(commit(repo, "two", tag="release/1.0"))
    out["v2"] = copies / "v2"
    shutil.copytree(data, out["v2"], symlinks=True)
    write(root, "data/deep/new.txt", b"v3\n", mtime=MTIME + 30)
    ids.append(commit(repo, "three"))
    out["v3"] = copies / "v3"
    shutil.copytree(data, out["v3"], symlinks=True)
    make_branch(repo, "other", "v1")
    return repo, ids, out


@pytest.fixture(scope="module")
def ds(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    base = tmp_path_factory.mktemp("mount")
    _, ids, copies = build(base / "repo", base / "copies")
    with mounted(str(base / "repo"), base / "mnt", base / "home", "--read-only") as m:
        yield Dataset(base / "repo", ids, copies, m)


def describe(root: Path) -> dict[str, tuple[object, ...]]:
    """Every path below ``root`` with its kind, permission bits, size, mtime and content."""
    out: dict[str, tuple[object, ...]] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p), st.st_mtime_ns)
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            else:
                digest = hashlib.sha256(Path(p).read_bytes()).hexdigest()
                out[rel] = ("file", stat.S_IMODE(st.st_mode), st.st_size, st.st_mtime_ns, digest)
    return out


def sh(*cmd: str, cwd: Path | None = None, ok: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a tool; assert it succeeded unless ``ok`` is false."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60, check=False)
    if ok:
        assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc


# ---------------------------------------------------------------------------- layout


def test_layout_hides_versions_but_reaches_it_by_name(ds: Dataset) -> None:
    assert os.listdir(ds.mnt) == ["data"]
    assert ".versions" not in sh("ls", "-a", str(ds.mnt)).stdout.split()
    assert stat.S_ISDIR(os.stat(ds.mount.versions).st_mode)
    assert os.listdir(ds.mount.versions) == [
        "v1", "v2", "v3", "latest", "tags", "branches", "ids", "meta",
    ]  # fmt: skip
    assert os.readlink(ds.mount.versions / "latest") == "v3"
    assert (ds.mount.versions / "latest" / "data" / "deep" / "new.txt").read_bytes() == b"v3\n"
    assert sorted(os.listdir(ds.mount.versions / "tags")) == ["first", "release"]
    assert os.listdir(ds.mount.versions / "tags" / "release") == ["1.0"]
    release = ds.mount.versions / "tags" / "release" / "1.0" / "data"
    assert (release / "c.txt").read_bytes() == b"new in v2\n"
    assert sorted(os.listdir(ds.mount.versions / "branches")) == ["main", "other"]
    assert not (ds.mount.versions / "branches" / "other" / "data" / "c.txt").exists()
    ids = ds.mount.versions / "ids"
    assert sorted(os.listdir(ids)) == sorted(i.hex() for i in ds.ids)
    assert (ids / ds.ids[0].hex() / "data" / "a.txt").read_bytes() == b"alpha\n"
    for missing in ("v4", "v0", "v01", "nothing", "ids/" + "0" * 64, "tags/release/2.0"):
        assert not (ds.mount.versions / missing).exists(), missing


def test_every_version_shows_what_was_committed(ds: Dataset) -> None:
    for n in (1, 2, 3):
        assert describe(ds.v(n) / "data") == describe(ds.copies[f"v{n}"]), f"v{n}"
    assert describe(ds.mnt / "data") == describe(ds.copies["v3"])
    a = os.stat(ds.v(1) / "data" / "run.sh")
    assert stat.S_IMODE(a.st_mode) == 0o755
    assert a.st_mtime == MTIME
    assert stat.S_IMODE(os.stat(ds.v(1) / "data" / "readonly.txt").st_mode) == 0o444
    assert os.readlink(ds.v(1) / "data" / "link") == "a.txt"


# ---------------------------------------------------------------------------- tools


def test_ls_lR_and_find(ds: Dataset) -> None:
    out = sh("ls", "-lR", str(ds.v(1))).stdout
    assert "z.txt" in out and "link -> a.txt" in out and "-rwxr-xr-x" in out
    found = sh("find", str(ds.mnt), "-name", "z.txt").stdout.split("\n")
    assert found[:1] == [str(ds.mnt / "data/deep/x/y/z.txt")]  # .versions is not walked
    in_versions = sh("find", str(ds.mount.versions), "-name", "new.txt").stdout.split()
    assert len(in_versions) == 3  # v3, branches/main, ids/<v3> (latest is a link)
    assert str(ds.v(3) / "data/deep/new.txt") in in_versions
    typed = sh("find", str(ds.v(1)), "-type", "l").stdout.split()
    assert typed == [str(ds.v(1) / "data/link")]


def test_du_and_stat(ds: Dataset) -> None:
    def apparent(root: Path) -> int:
        return sum(
            os.lstat(os.path.join(d, f)).st_size for d, _, files in os.walk(root) for f in files
        )

    out = sh("du", "-sb", "--apparent-size", str(ds.v(1) / "data"), str(ds.v(2) / "data")).stdout
    sizes = [int(line.split("\t")[0]) for line in out.splitlines()]
    # big.bin is the same in both versions, and counted in both (not a hard link)
    assert sizes == [apparent(ds.copies["v1"]), apparent(ds.copies["v2"])]
    blocks = int(sh("du", "-sk", str(ds.v(1) / "data" / "big.bin")).stdout.split()[0])
    assert blocks == (len(BIG) + 1023) // 1024
    out = sh("stat", "-c", "%s %a %Y %F", str(ds.v(1) / "data" / "run.sh")).stdout.strip()
    assert out == f"{len(SCRIPT)} 755 {MTIME} regular file"
    assert sh("stat", "-c", "%F %N", str(ds.v(1) / "data" / "link")).stdout.strip() == (
        f"symbolic link '{ds.v(1) / 'data' / 'link'}' -> 'a.txt'"
    )
    fs = sh("stat", "-f", "-c", "%T %l", str(ds.mnt)).stdout.split()
    assert fs == ["fuseblk", "255"] or fs[1] == "255"


def test_cp_r_rsync_a_and_tar(ds: Dataset, tmp_path: Path) -> None:
    sh("cp", "-r", str(ds.v(1) / "data"), str(tmp_path / "cp"))
    copied = describe(tmp_path / "cp")
    expected = describe(ds.copies["v1"])
    assert {k: v[:3] if v[0] == "file" else v[0] for k, v in copied.items()} == {
        k: v[:3] if v[0] == "file" else v[0] for k, v in expected.items()
    }  # cp -r keeps contents and modes, not times
    assert (tmp_path / "cp" / "big.bin").read_bytes() == BIG
    sh("rsync", "-a", str(ds.v(2) / "data") + "/", str(tmp_path / "rsync"))
    assert describe(tmp_path / "rsync") == describe(ds.copies["v2"])
    tar = subprocess.run(
        ["tar", "c", "-C", str(ds.v(3)), "data"], capture_output=True, check=True, timeout=60
    ).stdout
    (tmp_path / "untar").mkdir()
    subprocess.run(["tar", "x", "-C", str(tmp_path / "untar")], input=tar, check=True, timeout=60)
    assert describe(tmp_path / "untar" / "data") == describe(ds.copies["v3"])


def test_diff_r_between_versions(ds: Dataset) -> None:
    same = sh("diff", "-r", str(ds.v(3) / "data"), str(ds.mnt / "data"))
    assert same.stdout == ""
    differ = sh("diff", "-r", str(ds.v(1) / "data"), str(ds.v(2) / "data"), ok=False)
    assert differ.returncode == 1, differ.stderr
    assert "alpha, second edition" in differ.stdout
    assert f"Only in {ds.v(1) / 'data'}: readonly.txt" in differ.stdout
    assert f"Only in {ds.v(2) / 'data'}: c.txt" in differ.stdout
    assert "big.bin" not in differ.stdout


def test_sha256sum(ds: Dataset) -> None:
    names = ["a.txt", "big.bin", "empty", "name with space.txt", "deep/x/y/z.txt"]
    out = sh("sha256sum", *names, cwd=ds.v(1) / "data").stdout
    expected = "".join(
        f"{hashlib.sha256((ds.copies['v1'] / n).read_bytes()).hexdigest()}  {n}\n" for n in names
    )
    assert out == expected


def test_python_seek_read_and_mmap(ds: Dataset) -> None:
    rng = random.Random(3)
    path = ds.v(2) / "data" / "big.bin"
    with open(path, "rb") as f:
        for _ in range(200):
            off = rng.randrange(len(BIG) + 10)
            n = rng.choice([1, 100, 4096, 200_000, 3 * MiB])
            f.seek(off)
            assert f.read(n) == BIG[off : off + n], (off, n)
        f.seek(0)
        assert f.read() == BIG
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        assert len(mm) == len(BIG)
        for _ in range(50):
            off = rng.randrange(len(BIG))
            assert mm[off : off + 5000] == BIG[off : off + 5000]
        assert hashlib.sha256(mm).digest() == hashlib.sha256(BIG).digest()
    assert (ds.v(1) / "data" / "empty").read_bytes() == b""


# ---------------------------------------------------------------------------- read-only


def writes(b: Path) -> dict[str, Callable[[], object]]:
    """Every kind of change, aimed at the directory ``b``."""
    return {
        "create": lambda: os.open(b / "new-file", os.O_WRONLY | os.O_CREAT, 0o644),
        "write": lambda: os.open(b / "a.txt", os.O_RDWR),
        "append": lambda: os.open(b / "a.txt", os.O_WRONLY | os.O_APPEND),
        "mkdir": lambda: os.mkdir(b / "new-dir"),
        "unlink": lambda: os.unlink(b / "a.txt"),
        "rmdir": lambda: os.rmdir(b / "deep"),
        "rename": lambda: os.rename(b / "a.txt", b / "b.txt"),
        "chmod": lambda: os.chmod(b / "a.txt", 0o600),
        "utime": lambda: os.utime(b / "a.txt", (1, 1)),
        "symlink": lambda: os.symlink("x", b / "new-link"),
        "link": lambda: os.link(b / "a.txt", b / "hard"),
        "truncate": lambda: os.truncate(b / "a.txt", 0),
    }


def test_every_write_fails_with_erofs(ds: Dataset) -> None:
    for base in (ds.v(1) / "data", ds.mnt / "data", ds.mount.versions):
        attempts = writes(base)
        if base == ds.mount.versions:
            attempts = {k: attempts[k] for k in ("create", "mkdir", "symlink")}
        for what, attempt in attempts.items():
            with pytest.raises(OSError) as info:
                attempt()
            assert info.value.errno == errno.EROFS, (base, what, info.value)
    assert (ds.v(1) / "data" / "a.txt").read_bytes() == b"alpha\n"


# ---------------------------------------------------------------------------- inodes


def test_inode_numbers_are_stable_and_unique(ds: Dataset, tmp_path: Path) -> None:
    def ino(p: Path) -> int:
        return os.lstat(p).st_ino

    assert ino(ds.mnt) == 1
    v1, v2 = ds.v(1) / "data", ds.v(2) / "data"
    seen = [ino(Path(d) / n) for d, ds_, fs in os.walk(ds.mount.versions) for n in ds_ + fs]
    assert len(seen) == len(set(seen))  # no two places share a number
    assert ino(v1 / "big.bin") != ino(v2 / "big.bin")
    assert min(ino(p) for p in (v1, v1 / "a.txt", v1 / "link")) >= 1 << 40
    paths = [v1 / "a.txt", v1 / "deep" / "x", v2 / "link", ds.mount.versions / "tags"]
    paths += [ds.mount.versions, ds.mnt / "data" / "big.bin"]
    before = [ino(p) for p in paths]
    with mounted(str(ds.root), tmp_path / "again", tmp_path / "home", "--read-only") as m:
        again = [m.path / p.relative_to(ds.mnt) for p in paths]
        assert [ino(p) for p in again] == before


def test_the_kernel_reads_ahead_a_mebibyte(ds: Dataset) -> None:
    """As root the daemon widens the mount's read-ahead, so reads come 1 MiB at a time."""
    if os.geteuid() != 0:
        pytest.skip("only root may set a mount's read-ahead")
    st = os.stat(ds.mount.path)
    setting = Path(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb")
    assert setting.read_text().strip() == str(READAHEAD_KIB)
