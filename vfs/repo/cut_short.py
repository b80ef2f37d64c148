"""The record of a checkout (or switch, pull) under way: ``.dvfs/checking-out``.

A checkout of a whole version writes this record before it deletes or writes the
first file, and removes it once HEAD and the index describe the version. A checkout
of some PATHs writes it too, naming them, and removes it once the index holds what
it wrote (one left by a whole checkout stays: that one is not finished). A record
left behind (the checkout was killed, interrupted, or stopped by a full disk) says
that the working tree holds some of the target's files and some of what was there
before, while HEAD and the index still describe the latter: ``status`` says so,
and a checkout refused for the changes it finds names the one that finishes the
work rather than "commit them".

Layout (version 1), UTF-8 JSON in one line, written atomically::

    {"format": 1, "action": "checkout", "to": "<64 hex>", "label": "v3", "from": "<64 hex>" | null,
     "again": "dvfs checkout v3", "paths": ["data/a", ...]}

``paths`` (absent for a whole checkout, and for PATHs too many to record, which are
then taken as the whole tree) are the PATHs, relative to the root.

``from`` is the version the index was made equal to when the checkout started
(``Index.base``): a record whose ``from`` is no longer the index's base is stale
(the index moved since: a commit, another checkout) and is read as no record.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from vfs._os.beneath import read_regular
from vfs.store.durable import write_atomic

RECORD = "checking-out"
FORMAT = 1
MAX_RECORD = 64 * 1024
MAX_PATHS = 32 * 1024  # (bytes of JSON: more PATHs are recorded as the whole tree)


@dataclass(frozen=True)
class CutShort:
    """An ``action`` (checkout, switch, pull) that has not finished: to ``to``
    (``label``), from ``base``; ``again`` is the command that finishes it; ``paths``
    the PATHs it restored, relative to the root (empty: the whole tree)."""

    action: str
    to: bytes
    label: str
    base: bytes | None
    again: str
    paths: tuple[bytes, ...] = ()


def begin(dvfs_dir: Path, rec: CutShort) -> None:
    """Write the record (before the first file is touched)."""
    write_atomic(dvfs_dir / RECORD, encoded(rec))


def encoded(rec: CutShort) -> bytes:
    """The record's bytes, as :func:`begin` writes them (a checkout writes them
    together with its other marker: ``vfs.ops.checkout``)."""
    data: dict[str, object] = {
        "format": FORMAT,
        "action": rec.action,
        "to": rec.to.hex(),
        "label": rec.label,
        "from": None if rec.base is None else rec.base.hex(),
        "again": rec.again,
    }
    named = [os.fsdecode(p) for p in rec.paths]
    if named and len(json.dumps(named)) <= MAX_PATHS:
        data["paths"] = named
    return json.dumps(data).encode() + b"\n"


def end(dvfs_dir: Path) -> None:
    """Remove the record (the working tree, the index and HEAD agree again)."""
    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
        os.unlink(dvfs_dir / RECORD)


def _paths(named: object) -> tuple[bytes, ...]:
    """The recorded PATHs; ValueError if they are no list of texts."""
    if named is None:
        return ()
    if not isinstance(named, list) or not all(isinstance(p, str) for p in named):
        raise ValueError("paths")
    return tuple(os.fsencode(p) for p in named)


def read(dvfs_dir: Path, base: bytes | None) -> CutShort | None:
    """The record, if there is one that started from ``base`` (the index's base now);
    None if there is none, it is stale, or it cannot be read (it only informs)."""
    try:
        fd = os.open(dvfs_dir, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return None
    try:
        raw = read_regular(fd, RECORD, MAX_RECORD)
    except OSError:
        return None
    finally:
        os.close(fd)
    if raw is None:
        return None
    try:
        data = json.loads(raw)
        rec = CutShort(
            str(data["action"]),
            bytes.fromhex(data["to"]),
            str(data["label"]),
            None if data["from"] is None else bytes.fromhex(data["from"]),
            str(data["again"]),
            _paths(data.get("paths")),
        )
    except (ValueError, KeyError, TypeError):
        return None
    if data.get("format") != FORMAT or rec.base != base:
        return None
    return rec
