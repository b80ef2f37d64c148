"""A directory of ``.dvfs`` swapped for a symbolic link while dvfs works in it.

A check that a path is no link, followed by an act on the path by name, follows a link
swapped in between. :class:`Swap` makes that happen at the worst moment: after every
check, right before dvfs first acts on ``target`` or on anything below it (opens,
makes, lists, renames or deletes it by a path through it, or opens or makes it by its
name relative to a descriptor of its parent; reading a file is no act). ``target`` is
then moved aside (to ``target.moved``) and a link to ``outside`` takes its place, once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

_ACTS = ("open", "mkdir", "listdir", "scandir", "unlink", "rmdir", "rename", "replace", "lstat")


def _reads_a_file(flags: int) -> bool:
    """Whether ``os.open`` with ``flags`` only reads a file (no act: a read through a
    link writes nothing, and dvfs checks what it reads)."""
    return not flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_DIRECTORY)


class Swap:
    """Swaps ``target`` for a link to ``outside`` right before dvfs first acts on it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, target: Path, outside: Path) -> None:
        self.target = target
        self.parent = Path(os.path.realpath(target.parent))
        self.outside = outside
        self.done = False
        for name in _ACTS:
            monkeypatch.setattr(os, name, self._hook(name, getattr(os, name)))

    def _hook(self, name: str, real: Any) -> Any:
        def act(*args: Any, **kw: Any) -> Any:
            if not self.done and not (name == "open" and _reads_a_file(args[1])):
                dir_fd = kw.get("dir_fd")
                paths = args[:2] if name in ("rename", "replace") else args[:1]
                if any(self._reaches(p, dir_fd, name == "lstat") for p in paths):
                    self.swap()
            return real(*args, **kw)

        return act

    def _reaches(self, p: Any, dir_fd: int | None, below_only: bool) -> bool:
        """Whether ``p`` names ``target`` (unless ``below_only``) or a path through it."""
        if not isinstance(p, (str, bytes, os.PathLike)):
            return False
        path = Path(os.fsdecode(p))
        if dir_fd is not None and not path.is_absolute():
            try:
                where = Path(os.readlink(f"/proc/self/fd/{dir_fd}"))
            except OSError:
                return False
            if where != self.parent:
                return False
            path = self.target.parent / path
        if self.target in path.parents:
            return True
        return not below_only and path == self.target

    def swap(self) -> None:
        """Move ``target`` aside and put a link to ``outside`` in its place (once)."""
        if self.done:
            return
        self.done = True
        if os.path.lexists(self.target):
            os.rename(self.target, self.target.with_name(self.target.name + ".moved"))
        os.symlink(self.outside, self.target)
