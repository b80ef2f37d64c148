"""What a directory holds, as a value that tests compare.

Three views, for three questions:

- :func:`tree_of`: what a version records of each path (mode, size and a hash of each
  file; link targets; that directories exist).
- :func:`contents_of`: each file's bytes and each link's target, ``.dvfs`` left out.
- :func:`listing_of`: every file (its bytes), directory (``"dir"``, its path ending in
  ``/``) and link (``"-> target"``), in name order.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

Listing = dict[str, bytes | str]


def tree_of(root: Path, *, mtimes: bool = False) -> dict[str, tuple[Any, ...]]:
    """What a version records of the tree at ``root``, by relative path.

    Files: mode, a hash of the content (and the mtime if asked); symlinks: the
    target; directories: only that they exist (versions do not record their modes
    or times).
    """
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                with open(p, "rb") as f:
                    digest = hashlib.sha256(f.read()).hexdigest()
                extra = (st.st_mtime_ns,) if mtimes else ()
                out[rel] = ("file", oct(stat.S_IMODE(st.st_mode)), st.st_size, digest, *extra)
            else:
                out[rel] = ("other", st.st_mode)
    return out


def contents_of(root: Path) -> dict[str, bytes]:
    """Every file and link below ``root`` (outside .dvfs), with its content or target."""
    out: dict[str, bytes] = {}
    for dirpath, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != ".dvfs"]
        for name in files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            out[rel] = (
                os.readlink(path).encode() if os.path.islink(path) else Path(path).read_bytes()
            )
    return out


def listing_of(root: Path) -> Listing:
    """Every file (its bytes), directory ("dir") and link ("-> target") below ``root``."""
    out: Listing = {}

    def walk(d: Path, rel: str) -> None:
        for e in sorted(os.scandir(d), key=lambda e: e.name):
            r = f"{rel}{e.name}"
            if e.is_symlink():
                out[r] = "-> " + os.readlink(e.path)
            elif e.is_dir():
                out[r + "/"] = "dir"
                walk(Path(e.path), r + "/")
            else:
                out[r] = Path(e.path).read_bytes()

    walk(root, "")
    return out
