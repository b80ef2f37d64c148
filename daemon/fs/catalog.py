"""The versions a mount shows under ``.versions``, as one immutable value.

A catalog is built in a worker thread (it reads refs and walks the branch's
first-parent chain) and swapped in whole by the trio thread, so a handler always
sees one consistent set of names, and a refresh never changes one under it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from vfs import History, Version


@dataclass(frozen=True)
class Catalog:
    """Names of versions: ``vN`` on the branch, tags, branches, and the ids they use."""

    branch: str
    head: bytes | None
    numbered: Mapping[int, bytes]  # N -> id of vN on the mounted branch
    tags: Mapping[str, bytes]
    branches: Mapping[str, bytes]
    head_version: Version | None = None
    made_ns: int = field(default_factory=time.time_ns)

    @property
    def time_ns(self) -> int:
        """The time shown on virtual directories: the head's, else the catalog's."""
        return self.head_version.time_ns if self.head_version is not None else self.made_ns

    @property
    def latest(self) -> int:
        """N of the newest version on the branch (0: none yet)."""
        return max(self.numbered, default=0)

    def ids(self) -> list[bytes]:
        """Every version this catalog names, each once, in a stable order."""
        seen = dict.fromkeys(self.numbered[n] for n in sorted(self.numbered))
        seen.update(dict.fromkeys(self.tags[t] for t in sorted(self.tags)))
        seen.update(dict.fromkeys(self.branches[b] for b in sorted(self.branches)))
        return list(seen)

    def refs(self, kind: str) -> Mapping[str, bytes]:
        """The tags or the branches, by full name."""
        return self.tags if kind == "tags" else self.branches

    def below(self, kind: str, prefix: str) -> dict[str, str | None]:
        """The names one level below ``prefix`` among tags or branches.

        Maps each next component to the full ref name it completes, or to None when
        it is only a directory of longer names (``release`` for ``release/1.0``).
        """
        out: dict[str, str | None] = {}
        lead = prefix + "/" if prefix else ""
        for name in sorted(self.refs(kind)):
            if not name.startswith(lead):
                continue
            part, sep, _ = name[len(lead) :].partition("/")
            if sep:
                out.setdefault(part, None)
            else:
                out[part] = name
        return out


def build(
    history: History,
    branch: str,
    head: bytes | None,
    tags: Mapping[str, bytes],
    branches: Mapping[str, bytes],
) -> Catalog:
    """A catalog of ``branch`` at ``head`` (blocking: it reads every version record)."""
    numbered: dict[int, bytes] = {}
    head_version = None
    if head is not None:
        for oid, v in history.chain(head):
            head_version = head_version or v
            numbered[v.number] = oid
    return Catalog(branch, head, numbered, dict(tags), dict(branches), head_version)
