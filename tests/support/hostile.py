"""A seeded harness that turns a real remote hostile and runs dvfs against it.

A repository is committed and pushed with the real ``dvfs push`` to a directory remote
(:func:`build`); :func:`attack` copies that remote, applies one mutation chosen by a
seed (:data:`MUTATIONS`: damaged packs and index segments, forged trees and versions
under odd names, sizes and modes, refs naming missing or wrong-typed objects, odd ref
names, a huge ref, links and FIFOs in the remote's folders, a forged or cut audit
chain), and runs one command against it (:data:`OPERATIONS`: ``clone``, ``fetch``,
``pull``, ``checkout`` of what was fetched, ``dvfs mount`` of the URL and a read,
``vfs.Repo.remote(url)`` reads, ``dvfs audit --remote``), each in a child process
with an address-space limit and a timeout. :func:`check` then asserts what a user
relies on: success, or a non-zero exit with one error line and no traceback; nothing
written outside the target; the victim repository ``dvfs fsck`` clean and its own
commit kept.

The suite runs a few seeds (``tests/test_hostile_harness.py``); a long run is
``python -m tests.support.hostile --seeds N``. Each failure prints its seed, the
mutation and the command, and ``--seed S --op OP`` replays it.
"""

from __future__ import annotations

import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from tests.support.cli import (
    ERROR_PREFIX,
    Repo,
    cli_command,
    cli_env,
    commit_files,
    fsck_in_process,
    init_repo,
)
from tests.support.forge import Totals, raw_totals
from tests.support.mount import home_env, push_to
from tests.support.seeded import Outcome, answer_faults, seeds_main
from vfs.model.codec import Kind
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import Version, encode_version
from vfs.ops import branches, sync
from vfs.remote.layout import SEGMENT_FORMAT
from vfs.repo.repository import Repository
from vfs.store.compression import Compression
from vfs.store.objects import ObjKind
from vfs.store.packs import (
    PACK_MAGIC,
    PackedObject,
    decode_index,
    encode_index,
    pack_trailer,
    trailer_id,
)
from vfs.worktree.pools import Workers

MEMORY = 3 << 30  # bytes of address space a command may map (RLIMIT_AS)
TIMEOUT = float(os.environ.get("HOSTILE_TIMEOUT", "60"))  # seconds a command may take
LOCAL_FILE = "mine/kept.txt"  # what the victim committed itself


# --------------------------------------------------------------------------- the remote


@dataclass
class Base:
    """A pushed remote, and a clone of it holding a commit of its own (the victim)."""

    root: Path
    remote: Path  # the pristine remote
    victim: Path  # the pristine clone, with LOCAL_FILE committed
    local: str  # the id of that commit


def run(cwd: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``dvfs ARGS`` in ``cwd`` under the memory limit and timeout, caches in ``home``."""
    return limited(cli_command(*args), cwd, home)


def limited(command: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    """``command`` in ``cwd`` under the memory limit and timeout, caches in ``home``."""
    return subprocess.run(
        command,
        cwd=cwd,
        env=cli_env(home_env(home)),
        capture_output=True,
        text=True,
        errors="replace",
        timeout=TIMEOUT,
        preexec_fn=_limit,
        check=False,
    )


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 30, 1 << 30))


def build(root: Path) -> Base:
    """Commit two versions (a branch, a tag), push them and clone them with the
    commands' own code (``vfs.ops.sync``, in this process: the remote is what a push
    writes), and commit in the clone."""
    src = init_repo(root / "src")
    files: dict[str, bytes | str] = {
        "data/a.txt": "alpha\n",
        "data/sub/b.bin": random.Random(1).randbytes(200_000),
        "data/sub/c.txt": "gamma\n" * 100,
    }
    commit_files(src, files, "first")
    remote = root / "remote"
    repo = Repository(src.root)
    try:
        branches.create_tag(repo, "first", None)
        branches.create_branch(repo, "side", None)
    finally:
        repo.close()
    commit_files(src, {"data/a.txt": "alpha 2\n", "data/d/e.txt": "e\n"}, "second")
    repo = Repository(src.root)
    try:
        push_to(repo, remote.as_uri())
    finally:
        repo.close()
    with Workers(2) as w:
        cloned, _, _, _ = sync.clone(remote.as_uri(), root / "victim", w)
        cloned.close()
    victim = Repo(root / "victim")
    local = commit_files(victim, {LOCAL_FILE: "mine\n"}, "local work")
    return Base(root, remote, victim.root, local)


def paths_under(root: Path) -> set[Path]:
    """Every path below ``root``, links not followed, at any depth (without recursion:
    a checkout of a forged 5,000-level tree is deeper than ``os.walk`` goes)."""
    out: set[Path] = set()
    todo = [str(root)]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for e in entries:
            out.add(Path(e.path))
            if e.is_dir(follow_symlinks=False):
                todo.append(e.path)
    return out


# --------------------------------------------------------------------------- mutations


def _files(remote: Path, folder: str) -> list[Path]:
    return sorted(p for p in (remote / folder).rglob("*") if p.is_file() and not p.is_symlink())


def _pick(rng: random.Random, remote: Path, folder: str) -> Path | None:
    files = _files(remote, folder)
    return rng.choice(files) if files else None


def _damage(rng: random.Random, data: bytes) -> bytes:
    how = rng.randrange(4)
    if how == 0 and data:
        return data[: rng.randrange(len(data))]
    if how == 1:
        return data + rng.randbytes(rng.choice([1, 50, 4096]))
    if how == 2 and data:
        out = bytearray(data)
        for _ in range(rng.choice([1, 1, 3, 20])):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
        return bytes(out)
    if data:  # a field of a record set to an extreme
        out = bytearray(data)
        i = rng.randrange(max(1, len(out) - 8))
        out[i : i + 8] = rng.choice([b"\xff" * 8, b"\x00" * 8, b"\x7f\xff\xff\xff\xff\xff\xff\xff"])
        return bytes(out[: len(data)])
    return data


def damage_pack(rng: random.Random, remote: Path) -> str:
    p = _pick(rng, remote, "packs")
    assert p is not None
    p.write_bytes(_damage(rng, p.read_bytes()))
    return f"damaged {p.relative_to(remote)}"


def damage_segment(rng: random.Random, remote: Path) -> str:
    p = _pick(rng, remote, "index")
    assert p is not None
    data = p.read_bytes()
    if rng.random() < 0.5:  # inside its pack index files: the segment still decodes
        rec = msgpack.unpackb(data, raw=False)
        k = rng.randrange(len(rec["packs"]))
        rec["packs"][k][1] = _damage(rng, rec["packs"][k][1])
        data = msgpack.packb(rec, use_bin_type=True)
    else:
        data = _damage(rng, data)
    p.write_bytes(data)
    return f"damaged {p.relative_to(remote)}"


def index_lie(rng: random.Random, remote: Path) -> str:
    """An index segment, well framed and hashed, whose records lie about the objects."""
    p = _pick(rng, remote, "index")
    assert p is not None
    rec = msgpack.unpackb(p.read_bytes(), raw=False)
    k = rng.randrange(len(rec["packs"]))
    objs = decode_index(rec["packs"][k][1], "segment")
    field = rng.choice(["offset", "stored_len", "raw_len", "kind", "compression", "oid", "pack"])
    victims = rng.sample(range(len(objs)), max(1, len(objs) // rng.choice([1, 2, 10])))
    for i in victims:
        o = objs[i]
        if field == "oid":
            objs[i] = o._replace(oid=objs[rng.randrange(len(objs))].oid)
        elif field == "pack":
            rec["packs"][k][0] = rng.randbytes(32)
        else:
            value = rng.choice([0, 1, 3, 4, 1 << 20, (1 << 26) - 1, 1 << 26, (1 << 32) - 1])
            if field in ("kind", "compression"):
                value = rng.choice([0, 1, 2, 3, 7, 255])
            elif field == "offset":
                value = rng.choice([0, 3, 1 << 40, (1 << 64) - 1, o.offset + 1, o.offset - 1])
            fields: dict[str, Any] = o._asdict()
            fields[field] = max(0, value)
            objs[i] = PackedObject(**fields)
    rec["packs"][k][1] = encode_index(objs)
    data = msgpack.packb(rec, use_bin_type=True)
    p.unlink()
    (remote / "index" / hash_bytes(data).hex()).write_bytes(data)
    return f"index records lie about {field} of {len(victims)} objects"


def _head(remote: Path, ref: str = "refs/heads/main") -> bytes:
    return bytes.fromhex((remote / ref).read_text().strip())


Objects = list[tuple[bytes, int, bytes]]  # (claimed id, kind, bytes)


def publish(
    remote: Path, objects: Objects, lies: dict[bytes, dict[str, int]] | None = None
) -> None:
    """Write one pack holding ``objects`` (claimed id, kind, bytes) and its segment."""
    parts = [PACK_MAGIC]
    objs = []
    offset = len(PACK_MAGIC)
    for oid, kind, data in objects:
        fields = {"offset": offset, "stored_len": len(data), "raw_len": len(data)}
        fields.update((lies or {}).get(oid, {}))
        objs.append(PackedObject(oid, kind, Compression.NONE, **fields))
        parts.append(data)
        offset += len(data)
    parts.append(pack_trailer(objs))
    pack_id = trailer_id(parts[-1])
    segment = msgpack.packb(
        {"v": SEGMENT_FORMAT, "packs": [[pack_id, encode_index(objs)]]}, use_bin_type=True
    )
    (remote / "packs" / pack_id.hex()).write_bytes(b"".join(parts))
    (remote / "index" / hash_bytes(segment).hex()).write_bytes(segment)


def _odd_name(rng: random.Random) -> bytes:
    return rng.choice(
        [b"..", b".", b"a/b", b".dvfs", b".git", b"", b"a\x00b", b"x" * 300, b"x" * 256,
         b"\xff\xfe", b"/abs", b"..\x00", b"a\nb", b".DVFS", b"versions"]
    )  # fmt: skip


def _chunk(objects: Objects, data: bytes) -> bytes:
    oid = hash_bytes(data)
    objects.append((oid, ObjKind.CHUNK, data))
    return oid


_SIZES: dict[bytes, int] = {}  # trees made by _tree -> the bytes of the files below them


def _tree(objects: Objects, rows: list[list[object]]) -> bytes:
    """A tree of ``rows``, each folder made here given the bytes below it as its size
    (as dvfs writes them), so that the tree is refused for what it was forged with."""
    rows = [
        [*r[:3], _SIZES[r[5]], *r[4:]]
        if r[1] == Kind.DIR and isinstance(r[5], bytes) and r[5] in _SIZES
        else r
        for r in rows
    ]
    data = msgpack.packb({"v": 1, "entries": rows}, use_bin_type=True)
    oid = hash_bytes(data)
    objects.append((oid, ObjKind.TREE, data))
    sizes = [r[3] for r in rows]
    if all(type(n) is int for n in sizes):
        _SIZES[oid] = sum(n for n in sizes if isinstance(n, int))
    return oid


def _totals(objects: Objects, top: bytes) -> Totals:
    """The ``files`` and ``bytes`` a version of tree ``top`` of ``objects`` records
    (``raw_totals``)."""
    records = {oid: data for oid, kind, data in objects if kind == ObjKind.TREE}
    return raw_totals(top, records.get)


def _file_row(name: bytes, oid: bytes, size: int, mode: int = 0o644) -> list[object]:
    return [name, int(Kind.FILE), mode, size, 0, [oid, [[oid, size]]]]


def forge_tree(rng: random.Random, remote: Path) -> str:
    """A new version of ``main`` whose tree holds something no push writes."""
    objects: Objects = []
    good = _chunk(objects, b"payload\n")
    lies: dict[bytes, dict[str, int]] = {}
    how = rng.randrange(9)
    if how == 0:
        name = _odd_name(rng)
        rows = [_file_row(name, good, 8)]
        what = f"a file named {name!r}"
    elif how == 1:
        name = _odd_name(rng)
        sub = _tree(objects, [_file_row(b"x", good, 8)])
        rows = [[name, int(Kind.DIR), 0o755, 1, 0, sub]]
        what = f"a folder named {name!r}"
    elif how == 2:
        size = rng.choice([1 << 62, (1 << 64) - 1, -1, 1 << 40, 0])
        rows = [_file_row(b"big", good, size)]
        what = f"a file claiming {size} bytes"
    elif how == 3:
        mode = rng.choice([0o7777, 0o170000, -1, 1 << 40, 0o4755])
        rows = [_file_row(b"m", good, 8, mode)]
        what = f"a file of mode {mode:o}"
    elif how == 4:  # a cycle: the tree names itself (by a claimed id)
        fake = rng.randbytes(32)
        row = [b"loop", 1, 0o755, 1, 0, fake]
        data = msgpack.packb({"v": 1, "entries": [row]}, use_bin_type=True)
        objects.append((fake, ObjKind.TREE, data))
        rows = [[b"loop", int(Kind.DIR), 0o755, 1, 0, fake]]
        what = "a folder that holds itself"
    elif how == 5:
        depth = rng.choice([300, 2000, 5000])
        sub = _tree(objects, [_file_row(b"leaf", good, 8)])
        for _ in range(depth):
            sub = _tree(objects, [[b"d", int(Kind.DIR), 0o755, 1, 0, sub]])
        rows = [[b"deep", int(Kind.DIR), 0o755, 1, 0, sub]]
        what = f"{depth} folders deep"
    elif how == 6:
        target = rng.choice([b"/etc/passwd", b"../../../../outside", b"x" * 5000, b"", b"a\x00b"])
        rows = [[b"link", int(Kind.SYMLINK), 0o777, len(target), 0, target]]
        what = f"a link to {target[:20]!r}"
    elif how == 7:  # a chunk whose index record lies about its lengths
        lie = rng.choice([{"raw_len": 1 << 31}, {"stored_len": 1 << 31}, {"offset": 1 << 60}])
        lies[good] = lie
        rows = [_file_row(b"lie", good, 8)]
        what = f"a chunk indexed with {lie}"
    else:  # a directory entry naming a chunk (wrong type)
        rows = [[b"notdir", int(Kind.DIR), 0o755, 1, 0, good]]
        what = "a folder naming a chunk"
    top = _tree(objects, [[b"data", int(Kind.DIR), 0o755, 1, 0, _tree(objects, rows)]])
    parent = _head(remote)
    record = Version(top, (parent,), 3, "forged", "m <m@x>", 1, **_totals(objects, top))
    version = encode_version(record)
    vid = hash_bytes(version)
    objects.append((vid, ObjKind.VERSION, version))
    publish(remote, objects, lies)
    (remote / "refs/heads/main").write_text(vid.hex() + "\n")
    return f"main moved to a version holding {what}"


def forge_version(rng: random.Random, remote: Path) -> str:
    """``main`` moved to a version record that lies."""
    objects: Objects = []
    parent = _head(remote)
    how = rng.randrange(5)
    if how == 0:  # a version naming itself as its parent (by a claimed id)
        fake = rng.randbytes(32)
        tree = _tree(objects, [])
        data = encode_version(Version(tree, (fake,), 3, "cycle", "m <m@x>", 1))
        objects.append((fake, ObjKind.VERSION, data))
        vid, what = fake, "a version that is its own parent"
    elif how == 1:
        raw = {"v": 1, "tree": parent, "parents": [parent], "number": 3}
        data = msgpack.packb(raw, use_bin_type=True)
        vid = hash_bytes(data)
        objects.append((vid, ObjKind.VERSION, data))
        what = "a version naming a version as its tree"
    elif how == 2:
        junk: object = rng.choice([[], {}, b"x" * 100, 1 << 63, None, [[[[[]]]]] * 5])
        data = msgpack.packb(junk, use_bin_type=True)
        vid = hash_bytes(data)
        objects.append((vid, ObjKind.VERSION, data))
        what = "a version record that is no record"
    elif how == 3:  # many parents
        tree = _tree(objects, [])
        missing = tuple(rng.randbytes(32) for _ in range(300))
        data = encode_version(Version(tree, missing, 3, "m", "m <m@x>", 1))
        vid = hash_bytes(data)
        objects.append((vid, ObjKind.VERSION, data))
        what = "a version with 300 missing parents"
    else:
        tree = _tree(objects, [])
        n = rng.choice([0, -1, 1 << 62, 10**30])
        try:
            data = encode_version(Version(tree, (parent,), n, "m", "m <m@x>", 1))
        except Exception:  # (the codec refuses: write it raw)
            raw = {"v": 1, "tree": tree, "parents": [parent], "number": str(n)}
            data = msgpack.packb(raw, use_bin_type=True)
        vid = hash_bytes(data)
        objects.append((vid, ObjKind.VERSION, data))
        what = f"a version numbered {n}"
    publish(remote, objects)
    (remote / "refs/heads/main").write_text(vid.hex() + "\n")
    return f"main moved to {what}"


def forge_ref(rng: random.Random, remote: Path) -> str:
    how = rng.randrange(8)
    main = remote / "refs/heads/main"
    if how == 0:
        main.write_text(rng.randbytes(32).hex() + "\n")
        return "main names a missing object"
    if how == 1:  # the tree of main, or a chunk: an object of another kind
        from vfs.model.version_codec import decode_version

        repo = Repository.find(remote.parent / "victim")
        try:
            v = decode_version(repo.store.get(_head(remote)))
        finally:
            repo.close()
        main.write_text(v.tree.hex() + "\n")
        return "main names a tree"
    if how == 2:
        with open(main, "wb") as f:
            f.truncate(rng.choice([1 << 34, 1025, 100_000]))
        return "main is a huge file"
    if how == 3:
        main.write_bytes(rng.choice([b"", b"\xff" * 64, b"zz" * 32, b"ab\n", b"a" * 64 * 2]))
        return "main holds no id"
    if how == 4:
        odd = ["a..b", "x.lock", "-x", "a\nb", "a b", "@{x}", "é", "x" * 255, "HEAD", "a~1"]
        names = rng.sample(odd, 4)
        for name in names:
            (remote / "refs/heads" / name).write_text(_head(remote).hex() + "\n")
        return f"refs named {names!r}"
    if how == 5:  # many refs at once, some damaged (the bulk read)
        head = _head(remote).hex()
        (remote / "refs/tags").mkdir(exist_ok=True)
        for i in range(300):
            text = rng.choice([head + "\n", head + "\n", "x\n", "", rng.randbytes(32).hex() + "\n"])
            (remote / "refs/tags" / f"t{i}").write_text(text)
        return "300 tags, some damaged"
    if how == 6:
        (remote / "refs/tags/deep/er/still").mkdir(parents=True)
        (remote / "refs/tags/deep/er/still/t").write_text(_head(remote).hex() + "\n")
        (remote / "refs/heads/main.d").mkdir()
        return "refs in folders"
    main.unlink()
    main.mkdir()
    return "main is a folder"


def plant_links(rng: random.Random, remote: Path) -> str:
    outside = remote.parent / "outside"
    outside.mkdir(exist_ok=True)
    how = rng.randrange(6)
    if how == 0:
        shutil.rmtree(remote / "refs/tags")
        os.symlink(outside, remote / "refs/tags")
        return "refs/tags links outside"
    if how == 1:
        p = _pick(rng, remote, "packs")
        assert p is not None
        p.unlink()
        os.symlink("/etc/passwd", p)
        return "a pack links to /etc/passwd"
    if how == 2:
        p = _pick(rng, remote, rng.choice(["packs", "index", "refs", "audit"]))
        assert p is not None
        p.unlink()
        os.mkfifo(p)
        return f"{p.relative_to(remote)} is a FIFO"
    if how == 3:
        shutil.move(remote / "index", outside / "index")
        os.symlink(outside / "index", remote / "index")
        return "index/ links outside"
    if how == 4:
        os.symlink(outside, remote / "refs/heads/out")
        return "a branch links to a folder outside"
    p = _pick(rng, remote, "audit")
    assert p is not None
    p.unlink()
    os.symlink("/dev/zero", p)
    return f"{p.relative_to(remote)} links to /dev/zero"


def forge_audit(rng: random.Random, remote: Path) -> str:
    entries = _files(remote, "audit")
    last = entries[-1]
    how = rng.randrange(7)
    if how == 0:
        last.write_bytes(last.read_bytes()[: rng.randrange(len(last.read_bytes()))])
        return "the last audit entry cut"
    if how == 1:
        last.write_bytes(b"[" * 200_000)
        return "the last audit entry is 200,000 open brackets"
    if how == 2:
        with open(last, "wb") as f:
            f.truncate(1 << 33)
        return "the last audit entry is 8 GiB"
    if how == 3:
        (remote / "audit" / "999999999999").write_bytes(last.read_bytes())
        return "an audit entry numbered 999999999999"
    if how == 4:
        (remote / "audit" / "junk").write_bytes(b"x")
        (remote / "audit" / "000000000000").write_bytes(b"x")
        return "odd names under audit/"
    if how == 5:
        last.write_bytes(b'{"v":1,"seq":' + b"9" * 5000 + b"}")
        return "an audit entry with a 5000-digit number"
    entries[0].unlink()
    return "the first audit entry removed"


MUTATIONS: dict[str, Callable[[random.Random, Path], str]] = {
    "pack": damage_pack,
    "segment": damage_segment,
    "index": index_lie,
    "tree": forge_tree,
    "version": forge_version,
    "ref": forge_ref,
    "link": plant_links,
    "audit": forge_audit,
}


# --------------------------------------------------------------------------- operations


_REMOTE_READ = textwrap.dedent(
    """
    import sys, vfs
    from vfs.errors import DvfsError
    try:
        r = vfs.Repo.remote(sys.argv[1], cache_dir=sys.argv[2])
        for v in r.versions():
            pass
        for f in r.walk():
            pass
        for f in r.walk("side"):
            pass
        r.read_bytes("data/a.txt")
        r.read_bytes("data/sub/b.bin", "first")
    except DvfsError as exc:
        sys.stderr.write(f"dvfs: error: {exc}\\n")
        sys.exit(1)
    """
)


def op_clone(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    return run(work, work / "home", "clone", url, "target")


def op_fetch(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    return run(work / "victim", work / "home", "fetch")


def op_pull(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    return run(work / "victim", work / "home", "pull", "--merge")


def op_checkout(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    r = run(work / "victim", work / "home", "fetch")
    if r.returncode != 0:
        return r
    return run(work / "victim", work / "home", "checkout", "-f", "origin/main")


def op_audit(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    """``dvfs audit verify --remote``: exit 1 with its verdict (no error line) when the
    chain is not intact, which is what it is for: counted as success here."""
    r = run(work / "victim", work / "home", "audit", "verify", "--remote", "origin", "--json")
    if r.returncode == 1 and ERROR_PREFIX not in r.stderr and '"problems"' in r.stdout:
        return subprocess.CompletedProcess(r.args, 0, r.stdout, r.stderr)
    return r


def op_push(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    return run(work / "victim", work / "home", "push", "--force")


def op_api(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-P", "-c", _REMOTE_READ, url, str(work / "api-cache")]
    return limited(command, work, work / "home")


def op_mount(base: Base, work: Path, url: str) -> subprocess.CompletedProcess[str]:
    """``dvfs mount URL MNT`` (in the background), read a file, unmount."""
    mnt = work / "mnt"
    mnt.mkdir()
    r = run(work, work / "home", "mount", url, str(mnt), "--cache-dir", str(work / "mcache"))
    if r.returncode != 0:
        return r
    try:
        read = subprocess.run(
            ["sh", "-c", _READ_ALL, "sh", str(mnt)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
        )
    finally:
        run(work, work / "home", "umount", str(mnt))
    # a refused read is an I/O error, not a failure of the mount: what matters is
    # that nothing hangs and nothing escapes
    return subprocess.CompletedProcess(r.args, 0, r.stdout, r.stderr + read.stderr)


_READ_ALL = (
    'for f in "$1"/data/* "$1"/data/*/*; do cat "$f" >/dev/null; done; ls -R "$1" >/dev/null'
)

OPERATIONS: dict[str, Callable[[Base, Path, str], subprocess.CompletedProcess[str]]] = {
    "clone": op_clone,
    "fetch": op_fetch,
    "pull": op_pull,
    "checkout": op_checkout,
    "api": op_api,
    "audit": op_audit,
    "push": op_push,
    "mount": op_mount,
}


# --------------------------------------------------------------------------- one attack


def attack(base: Base, seed: int, op: str | None = None, mutation: str | None = None) -> Outcome:
    """Copy the remote and the victim, mutate the copy of the remote as ``seed`` says,
    run one command; what went wrong (``Outcome.faults`` empty: nothing)."""
    rng = random.Random(seed)
    mutation = mutation or rng.choice(sorted(MUTATIONS))
    op = op or rng.choice(sorted(OPERATIONS))
    work = Path(tempfile.mkdtemp(prefix=f"hostile-{seed}-", dir=base.root))
    try:
        remote = work / "remote"
        shutil.copytree(base.remote, remote, symlinks=True)
        victim = work / "victim"
        shutil.copytree(base.victim, victim, symlinks=True)
        _retarget(victim, base.remote.as_uri(), remote.as_uri())
        what = MUTATIONS[mutation](rng, remote)
        outside = work / "outside"
        outside.mkdir(exist_ok=True)
        before = paths_under(work) - paths_under(victim) - paths_under(remote)
        held = _held(victim)
        try:
            r = OPERATIONS[op](base, work, remote.as_uri())
        except subprocess.TimeoutExpired as exc:
            err = str(exc.stderr or "")
            return Outcome(seed, mutation, what, op, -1, err, [f"timed out after {TIMEOUT}s"])
        faults = check(r, work, victim, remote, before, base.local, held)
        return Outcome(seed, mutation, what, op, r.returncode, r.stderr, faults)
    finally:
        _unmount(work / "mnt")
        shutil.rmtree(work, ignore_errors=True)


def _held(victim: Path) -> set[bytes]:
    """The ids of the objects the victim's store holds."""
    repo = Repository(victim)
    try:
        return set(repo.store.iter_ids())
    finally:
        repo.close()


def _retarget(victim: Path, old: str, new: str) -> None:
    for p in (victim / ".dvfs").rglob("*"):
        if p.is_file() and not p.is_symlink() and p.suffix == "" and p.stat().st_size < 65536:
            data = p.read_bytes()
            if old.encode() in data:
                p.write_bytes(data.replace(old.encode(), new.encode()))


def _unmount(mnt: Path) -> None:
    if mnt.exists() and os.path.ismount(mnt):
        subprocess.run(["fusermount3", "-uz", str(mnt)], capture_output=True, check=False)


def check(
    r: subprocess.CompletedProcess[str],
    work: Path,
    victim: Path,
    remote: Path,
    before: set[Path],
    local: str,
    held: set[bytes],
) -> list[str]:
    """What went wrong in ``r`` (one line each): see the module docstring."""
    faults = answer_faults(r.returncode, r.stderr)
    written = {p for p in paths_under(work) - before if not _inside(p, victim, remote, work)}
    if written:
        faults.append(f"written outside: {sorted(map(str, written))[:5]}")
    if any((work / "outside").iterdir()) if (work / "outside").is_dir() else False:
        extra = [p for p in (work / "outside").iterdir() if p.name not in ("index",)]
        if extra:
            faults.append(f"written into outside/: {extra[:5]}")
    faults.extend(_victim_faults(victim, local, held))
    target = work / "target"
    if target.exists() and (target / ".dvfs").is_dir() and r.returncode == 0:
        faults.extend(f"clone: {f}" for f in _fsck(target))
    return faults


def _inside(p: Path, victim: Path, remote: Path, work: Path) -> bool:
    kept = ("target", "home", "api-cache", "mcache", "mnt")
    for root in (victim, remote, *(work / name for name in kept)):
        if p == root or root in p.parents:
            return True
    return False


_LOST_THERE = re.compile(r"chunk ([0-9a-f]{64}) is missing; used by ")


def _fsck(repo_dir: Path, held: set[bytes] | None = None) -> list[str]:
    """What ``dvfs fsck`` finds wrong in ``repo_dir`` (its own steps, in this process).

    With ``held`` (the chunks the clone held before the attack): a chunk missing here
    that the clone never held is left out, as what it is, data the damaged remote no
    longer gives (its index lies), which fsck rightly reports and nothing here lost."""
    report = fsck_in_process(repo_dir)
    problems = [
        p
        for p in report["problems"]
        if held is None
        or not ((m := _LOST_THERE.match(str(p))) and bytes.fromhex(m.group(1)) not in held)
    ]
    return [f"fsck: {problems[:3]}"] if problems else []


def _victim_faults(victim: Path, local: str, held: set[bytes]) -> list[str]:
    """The victim's repository is not ``dvfs fsck`` clean, or its own commit is lost
    (not reached from any branch)."""
    faults = _fsck(victim, held)
    repo = Repository(victim)
    try:
        oid = bytes.fromhex(local)
        tips = repo.refs.branches().values()
        if not any(t == oid or repo.history.is_ancestor(oid, t) for t in tips):
            faults.append(f"the local commit {local[:12]} is no longer on any branch")
    finally:
        repo.close()
    return faults


def main(argv: list[str] | None = None) -> int:
    return seeds_main(__doc__, "hostile-", OPERATIONS, MUTATIONS, build, attack, argv)


if __name__ == "__main__":
    sys.exit(main())
