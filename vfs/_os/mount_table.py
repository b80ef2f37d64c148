"""The kernel's mount table (``/proc/self/mountinfo``) and the dvfs mounts in it.

Reading the table looks into no mount: it is how a path inside a dvfs mount is known
as such without a look that would wait on the mount's daemon (stopped, hung, or
killed while another process holds its FUSE connection open).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

FS_TYPE = "fuse.dvfs"
OVERLAY_TYPE = "overlay.dvfs"  # how mount_table() shows an overlayfs whose source is dvfs
FS_TYPES = frozenset({FS_TYPE, OVERLAY_TYPE})
MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    """A mountinfo path field with its octal escapes (``\\040`` for space) decoded."""
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def mount_table() -> dict[str, str]:
    """Every mount point of this mount namespace with its filesystem type (a dvfs
    overlay's: ``OVERLAY_TYPE``)."""
    out: dict[str, str] = {}
    try:
        data = MOUNTINFO.read_bytes()
    except OSError:
        return out
    # Split at newlines alone: the kernel escapes only space, tab, newline and backslash
    # in a path, so a mount point holding a carriage return or a form feed is one line
    # (str.splitlines would cut it in two and lose it); bytes that are not UTF-8 are
    # os.fsdecode's surrogates, as the path's str is.
    for line in os.fsdecode(data).split("\n"):
        left, sep, right = line.partition(" - ")
        fields = left.split(" ")
        if not sep or len(fields) < 5:
            continue
        kind, _, rest = right.partition(" ")
        if kind == "overlay" and rest.split(" ", 1)[0] == "dvfs":
            kind = OVERLAY_TYPE
        out[_unescape(fields[4])] = kind
    return out


def outermost_dvfs_mount(path: Path) -> Path | None:
    """The highest dvfs mount point at or above the absolute ``path`` (by the table
    alone), or None."""
    table = mount_table()
    found = None
    for d in (path, *path.parents):
        if table.get(str(d)) in FS_TYPES:
            found = d
    return found
