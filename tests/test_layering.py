"""The dependency rules of the architecture, checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_VFS = {"daemon", "trio", "pyfuse3"}

# Lower layers never import higher ones (ARCHITECTURE.md lists the order).
LAYERS = [
    {
        "errors",
        "model",  # model, repo, ops, mount: the packages (their __init__ imports nothing)
        "repo",
        "ops",
        "mount",
        "model.ids",
        "model.names",
        "quoting",
        "settings",
        "model.params",
        "model.yaml12",
        "ops.grouping",
        "_os",
    },
    {"model.chunking", "model.codec", "model.version_codec", "store.durable"},
    {"store.packs"},
    {"store", "store.lock", "store.pins"},
    {"backends", "remote", "remote.layout"},  # remote: the package (its __init__ imports nothing)
    {
        "repo.refs",
        "repo.stage",
        "repo.gitlink",
        "repo.cut_short",
        "repo.shared",
        "repo.remote_copies",
        "repo.audit",
        "remote.audit",
        "ops.merging",
    },
    # reach: the walk of what versions reach (gc, remote gc, fsck); rows: which entries of
    # two directories differ, from their records' bytes
    {"repo.numbers"},  # the ids of one first-parent chain, kept (vN found at once)
    {"repo.history", "repo.reach", "ops.rows"},
    {
        "worktree",
        "ops.diff",
        "store.reader",
        "ops.graph",
        "pipeline.content",
        "pipeline.runs",
        "pipeline.writing",
        "pipeline.record",
        "pipeline.spec",
        "pipeline.graph",
        "pipeline.merge3",
    },
    {"tables", "ops.changed"},  # row diffs of data files; what each version changed (kept)
    {"repo.repository"},  # the repository handle: layout, format record, lock
    {
        "ops.behind",
        "ops.status",
        "ops.workflow",
        "ops.commit",
        "repo.record",
        "remote.config",
        "remote.reader",
        "remote.read",
        "remote.manifests",
    },
    {"remote.receive"},
    {
        "remote.ondemand",
        "ops.checkout",
        "ops.branches",
        "ops.restore",
        "ops.browse",
        "mount.mounts",
        "mount.work_dirs",
        "mount.launch",
        "mount.control",
        "ops.merge",
        "remote.gc",
        "remote.repack",
        "remote.check",
    },
    {"remote.upload", "ops.sync"},
    {"pipeline"},  # stages, repro (plan, stale, backups, staging), run cache, lineage, experiments
    {
        "ops.gitclone",
        "ops.githooks",
        "ops.gc",
        "ops.fsck",
        "ops.du",
        "ops.prune",
        "ops.store_limit",
    },  # beside git; storage lifecycle
    {"api", "api_types"},  # the Python API (vfs.Repo, vfs.open); api_types: what it returns
    {"tracking"},  # vfs.track (module vfs.tracking): a run recorded as a version
    {"filesystem"},  # the fsspec filesystem dvfs://, over the API
    {"progress_bar"},
    {"ui"},  # the web dashboard (optional extra dvfs[ui]); only `dvfs ui` imports it
    {"cli"},
]


def imports_of(path: Path) -> set[str]:
    """Top-level module names and vfs submodules imported anywhere in a file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{alias.name}" for alias in node.names)
    return out


def layer_of(module: str) -> int | None:
    """The layer number of a vfs submodule name: its longest prefix named in LAYERS.

    ``backends.s3`` counts as ``backends``; ``pipeline.record`` is named itself, lower
    than the rest of ``pipeline`` (the commit paths below the package call it).
    """
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        for i, names in enumerate(LAYERS):
            if prefix in names:
                return i
    return None


def test_vfs_never_imports_daemon_trio_or_pyfuse3() -> None:
    offenders = []
    for path in sorted((ROOT / "vfs").rglob("*.py")):
        for name in imports_of(path):
            if name.split(".")[0] in FORBIDDEN_IN_VFS:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def test_every_vfs_module_has_a_layer() -> None:
    modules = {p.stem for p in (ROOT / "vfs").glob("*.py")} - {"__init__"}
    modules |= {p.name for p in (ROOT / "vfs").iterdir() if (p / "__init__.py").exists()}
    assert sorted(m for m in modules if layer_of(m) is None) == []


def test_lower_layers_never_import_higher_ones() -> None:
    offenders = []
    for path in sorted((ROOT / "vfs").rglob("*.py")):
        rel = path.relative_to(ROOT / "vfs").with_suffix("")
        if rel.name == "__init__" and len(rel.parts) == 1:
            continue
        own = layer_of(".".join(rel.parts))
        assert own is not None, path
        for name in imports_of(path):
            if not name.startswith("vfs."):
                continue
            other = layer_of(name[len("vfs.") :])
            if other is not None and other > own:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


# The target packages of vfs, lowest first: a module of one never imports a later one
# (a package that does not exist yet is skipped). remote sits above worktree: a pull
# restores files with the working tree's workers (vfs.ops.sync).
PACKAGE_ORDER = [
    {"_os"},
    {"model"},
    {"store"},
    {"repo"},
    {"worktree"},
    {"remote"},
    {"ops"},
    {"cli"},
]


def package_rank(module: str) -> int | None:
    """The rank in PACKAGE_ORDER of a vfs module name (``store.packs``: ``store``'s)."""
    head = module.split(".")[0]
    for i, names in enumerate(PACKAGE_ORDER):
        if head in names:
            return i
    return None


def test_packages_import_only_packages_below_them() -> None:
    offenders = []
    for path in sorted((ROOT / "vfs").rglob("*.py")):
        rel = path.relative_to(ROOT / "vfs").with_suffix("")
        own = package_rank(".".join(rel.parts))
        if own is None:
            continue
        for name in imports_of(path):
            if not name.startswith("vfs."):
                continue
            other = package_rank(name[len("vfs.") :])
            if other is not None and other > own:
                offenders.append(f"{path.relative_to(ROOT)} imports {name}")
    assert offenders == []


def _public_table() -> dict[str, str]:
    """``vfs.PUBLIC``, read from the source (name -> "module" or "module:attribute")."""
    tree = ast.parse((ROOT / "vfs" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "PUBLIC":
            assert node.value is not None
            table = ast.literal_eval(node.value)
            assert isinstance(table, dict)
            return table
    raise AssertionError("vfs/__init__.py declares no PUBLIC table")


def test_the_type_checking_imports_repeat_the_public_table() -> None:
    """Every ``if TYPE_CHECKING`` import of vfs/__init__.py is a PUBLIC entry, and back.

    ``from m import x as x`` stands for ``"x": "m"``; ``from m import x as _y`` with
    ``y = _y`` for ``"y": "m:x"``.
    """
    tree = ast.parse((ROOT / "vfs" / "__init__.py").read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    imported: dict[str, tuple[str, str]] = {}  # bound name -> (module, attribute)
    declared: dict[str, str] = {}
    for node in block.body:
        if isinstance(node, ast.ImportFrom):
            assert node.module is not None and node.level == 0
            for alias in node.names:
                imported[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Assign):
            (target,) = node.targets
            assert isinstance(target, ast.Name) and isinstance(node.value, ast.Name)
            module, attr = imported.pop(node.value.id)
            declared[target.id] = module if attr == target.id else f"{module}:{attr}"
    for name, (module, attr) in imported.items():
        assert name == attr, f"{name}: imported as another name but never assigned"
        declared[name] = module
    assert declared == _public_table()


def test_every_public_name_resolves() -> None:
    import vfs

    assert vfs.__all__ == list(_public_table())
    missing = [name for name in vfs.__all__ if getattr(vfs, name, None) is None]
    assert missing == []


def test_the_daemon_imports_only_the_public_face_of_vfs() -> None:
    """``from vfs import NAME`` with NAME in ``vfs.PUBLIC``; no vfs submodule, ever."""
    public = _public_table()
    offenders = []
    for path in sorted((ROOT / "daemon").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                named = [a.name for a in node.names if a.name.split(".")[0] == "vfs"]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if node.module == "vfs":
                    named = [f"vfs.{a.name}" for a in node.names if a.name not in public]
                elif node.module.startswith("vfs."):
                    named = [node.module]
                else:
                    continue
            else:
                continue
            offenders += [f"{path.relative_to(ROOT)}:{node.lineno} imports {n}" for n in named]
    assert offenders == []


# Calls that belong in vfs/_os alone: (module, attribute) as in ``os.fork``, and
# modules that may not be imported at all elsewhere.
SYSTEM_CALLS = {
    ("os", "fork"),
    ("os", "forkpty"),
    ("os", "O_DIRECT"),
    ("os", "O_TMPFILE"),
    ("gc", "disable"),
    ("gc", "freeze"),
}
SYSTEM_MODULES = {"ctypes"}


def system_calls_in(path: Path) -> list[str]:
    """The system tricks a file uses: ``os.fork``, ``from os import O_DIRECT``, ctypes,
    a ``/sys/`` path (sysfs), found in its syntax tree (comments and docstrings aside)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if (node.value.id, node.attr) in SYSTEM_CALLS:
                found.append(f"{node.value.id}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            base = node.module.split(".")[0]
            if base in SYSTEM_MODULES:
                found.append(f"from {node.module}")
            found += [
                f"from {base} import {a.name}" for a in node.names if (base, a.name) in SYSTEM_CALLS
            ]
        elif isinstance(node, ast.Import):
            found += [
                f"import {a.name}" for a in node.names if a.name.split(".")[0] in SYSTEM_MODULES
            ]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
            text = node.value if isinstance(node.value, str) else node.value.decode("latin-1")
            if text.startswith("/sys/"):  # a string, or a piece of an f-string
                found.append(f"a sysfs path {text!r}")
    return sorted(found)


def test_system_calls_appear_only_in_the_system_package() -> None:
    offenders = []
    for top in ("vfs", "daemon"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if path.is_relative_to(ROOT / "vfs" / "_os"):
                continue
            offenders += [f"{path.relative_to(ROOT)}: {what}" for what in system_calls_in(path)]
    assert offenders == []


def test_the_system_call_check_sees_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import os, gc, ctypes\n"
        "from os import O_TMPFILE\n"
        "pid = os.fork()\n"
        "fd = os.open('f', os.O_RDONLY | os.O_DIRECT)\n"
        "gc.freeze()\n"
        "dev = '8:0'\n"
        "path = f'/sys/class/bdi/{dev}/read_ahead_kb'\n"
        "ok = os.open('d', os.O_DIRECTORY)  # not O_DIRECT\n"
    )
    assert system_calls_in(sample) == sorted(
        [
            "import ctypes",
            "from os import O_TMPFILE",
            "os.fork",
            "os.O_DIRECT",
            "gc.freeze",
            "a sysfs path '/sys/class/bdi/'",
        ]
    )


# Each daemon module imports only the daemon modules listed before it; a package
# (its __init__) counts as the last of its modules. The folders are the roles:
# fs/ the request handlers and what they serve, data/ bytes and records, overlay/
# the daemon's copy-on-write working tree.
DAEMON_ORDER = [
    "logs", "errors",
    "fs.inodes", "fs.attrs", "fs.catalog",
    "data.record_cache", "data.chunk_cache", "data.meta", "data.fetcher", "data.digests",
    "data.open_files",
    "data",
    "overlay.node", "overlay.journal", "overlay.compaction", "overlay.workdir",
    "overlay.spares", "overlay.state", "overlay.changes", "overlay.copyup", "overlay.rebase",
    "overlay.status", "overlay.tree", "overlay",
    "fs.namespace", "fs.versions", "fs.worktree_nodes", "fs.worktree_files", "fs.worktree",
    "fs",
    "source", "snapshot", "overlay_snapshot", "upper", "upper_rebase", "kernel_overlay",
    "upper_walk", "upper_build", "kernel_snapshot",
    "control", "service", "__main__",
]  # fmt: skip


def daemon_modules() -> list[str]:
    """Every module of the daemon, by dotted name below ``daemon`` (packages by name)."""
    out = []
    for path in sorted((ROOT / "daemon").rglob("*.py")):
        parts = path.relative_to(ROOT / "daemon").with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            out.append(".".join(parts))
    return out


def test_every_daemon_module_has_a_place() -> None:
    assert sorted(set(daemon_modules()) - set(DAEMON_ORDER)) == []
    assert sorted(set(DAEMON_ORDER) - set(daemon_modules())) == []


def daemon_imports(path: Path, known: set[str]) -> set[str]:
    """The daemon modules a file imports (``from daemon.fs import inodes``: ``fs.inodes``)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if not name.startswith("daemon."):
                continue
            mod = name[len("daemon.") :]
            while mod not in known and "." in mod:  # daemon.fs.inodes.Node: fs.inodes
                mod = mod.rsplit(".", 1)[0]
            if mod in known:
                out.add(mod)
    return out


def test_daemon_modules_import_only_those_before_them() -> None:
    rank = {name: i for i, name in enumerate(DAEMON_ORDER)}
    offenders = []
    for path in sorted((ROOT / "daemon").rglob("*.py")):
        parts = path.relative_to(ROOT / "daemon").with_suffix("").parts
        own = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not own:
            continue
        for other in daemon_imports(path, set(rank)):
            if rank[other] > rank[own]:
                offenders.append(f"{path.relative_to(ROOT)} imports daemon.{other}")
    assert offenders == []
