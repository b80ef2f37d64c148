"""Ignore rules: ``.dvfsignore`` files in any directory, and built-in defaults.

A ``.dvfsignore`` holds gitignore patterns (matched by ``pathspec``'s
``GitIgnoreSpec``, which follows git's rules: ``#`` comments, ``!`` negation, a
trailing ``/`` for directories only, a leading or inner ``/`` anchoring the pattern to
the file's directory, ``**``). As with git:

- a file's rules apply below its directory, and a deeper file's rules come after
  (and so win over) those above it; within a file the last matching pattern wins;
- a path below an ignored directory is ignored, whatever a deeper file says (git
  never reads the ignore files of a directory it ignores);
- the built-in rules (``BUILTIN``: files nobody wants versioned) come first, so any
  ``.dvfsignore`` can re-include one with ``!``;
- a tracked path is never ignored: rules only keep untracked paths out of
  ``dvfs add`` (of a directory) and ``dvfs status``;
- a directory holding a ``.dvfs`` directory, a dvfs repository of its own, is ignored
  before any pattern is read (``!`` cannot bring it back), as git leaves an embedded
  repository's files to it: its :class:`Match` names it in ``repository``.

Only untracked paths are ever matched, and each directory's verdict and each ignore
file are worked out once per command, so a clean ``status`` matches nothing and reads
no ignore file. Each file is compiled once; its patterns are also joined into one
regular expression that answers "does anything match?" for most paths in one search.

The working tree is not trusted, and a ``.dvfsignore`` may come from someone else's
version: each is read from a directory descriptor without following links
(``vfs._os.beneath``), at most ``MAX_FILE`` bytes of it, at most ``MAX_PATTERNS``
patterns of at most ``MAX_LINE`` characters; a pattern with more than
``MAX_STARS`` single ``*`` in it is skipped with a warning (regular expressions built
from such globs take time exponential in the number of stars to fail on long names).
A file that cannot be read is skipped with a warning; the rest still apply.
"""

from __future__ import annotations

import bisect
import errno
import functools
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vfs._os.beneath import Walker, read_regular
from vfs.quoting import quote_name

if TYPE_CHECKING:  # imported when an ignore file is first compiled: a clean `status` compiles none
    import pathspec

IGNORE_FILE = ".dvfsignore"
DVFS_DIR = ".dvfs"  # (a directory holding one is a repository of its own)
BUILTIN_SOURCE = "(built-in)"
# Files nobody wants versioned, and dvfs's own files at the root (``dvfs.lock``,
# ``dvfs.toml``: they go in git, beside the data).
BUILTIN = (
    ".DS_Store",
    "__pycache__/",
    ".ipynb_checkpoints/",
    "*.pyc",
    ".git/",
    "/dvfs.lock",
    "/dvfs.toml",
)
# pathspec's expression for each line of BUILTIN, its named group left unnamed as
# :func:`_any_of` does (tests/test_ignore.py checks that they agree): so that a command
# meeting no ``.dvfsignore`` never imports pathspec (see :func:`_builtin`).
BUILTIN_PARTS = (
    r"^(?:.+/)?\.DS_Store(?:(?:/)|$)",
    r"^(?:.+/)?__pycache__(?:/)",
    r"^(?:.+/)?\.ipynb_checkpoints(?:/)",
    r"^(?:.+/)?[^/]*\.pyc(?:(?:/)|$)",
    r"^(?:.+/)?\.git(?:/)",
    r"^dvfs\.lock(?:(?:/)|$)",
    r"^dvfs\.toml(?:(?:/)|$)",
)
MAX_FILE = 256 * 1024
MAX_PATTERNS = 4096
MAX_LINE = 1024
MAX_STARS = 3
# Questions of `Ignores.is_tracked` answered by bisecting the sorted tracked paths
# before a set of them is built.
BISECT_FIRST = 32

Warn = Callable[[str], None]


class Match(NamedTuple):
    """The rule that decided about a path: where it is written, and whether it ignores."""

    ignored: bool
    source: str  # the ignore file, as a repository path, or BUILTIN_SOURCE
    line: int
    pattern: str
    repository: bytes | None = None  # a repository of its own there (line 0, no pattern)

    def rule(self) -> str:
        """``source:line:pattern``, as ``git check-ignore -v`` shows a rule."""
        return f"{self.source}:{self.line}:{self.pattern}"


def _quiet(_: str) -> None:
    """Drops a warning."""


class _Compiled(NamedTuple):
    """The patterns of an ignore file's text, compiled (shared by files with equal text)."""

    spec: pathspec.GitIgnoreSpec | None  # None: the built-in rules (see :func:`_builtin`)
    quick: re.Pattern[str] | None  # matches whatever some pattern matches
    where: list[tuple[int, str]]  # per pattern: its line number and text
    negates: bool  # some pattern is a `!` one

    def last(self, here: str) -> tuple[bool, int] | None:
        """The verdict and number of the pattern deciding ``here``, if one matches."""
        if self.spec is None:  # (no `!` among them: the last that matches decides)
            hits = [i for i, p in enumerate(_builtin_parts()) if p.match(here)]
            return (True, hits[-1]) if hits else None
        result = self.spec.check_file(here)
        if result.include is None or result.index is None:
            return None
        return bool(result.include), result.index


def _compile(source: str, lines: Sequence[str], warn: Warn) -> _Compiled:
    shown = quote_name(source)  # (the file's path, in warnings)
    kept: list[str] = []
    where: list[tuple[int, str]] = []
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.startswith("#"):
            continue
        if len(where) >= MAX_PATTERNS:
            warn(f"{shown}: only its first {MAX_PATTERNS} patterns are used")
            break
        if len(line) > MAX_LINE:
            warn(f"{shown}:{number}: a pattern longer than {MAX_LINE} characters is skipped")
            continue
        if re.sub(r"\*\*+", "", line).count("*") > MAX_STARS:
            warn(f"{shown}:{number}: a pattern with more than {MAX_STARS} '*' is skipped")
            continue
        kept.append(line)
        where.append((number, line.strip()))
    import pathspec  # (11 ms of imports: see TYPE_CHECKING above)

    try:
        spec = pathspec.GitIgnoreSpec.from_lines(kept)
    except (ValueError, TypeError) as exc:  # pathspec's error for a pattern it refuses
        warn(f"{shown}: skipped ({exc})")
        spec, where = pathspec.GitIgnoreSpec.from_lines([]), []
    negates = any(p.include is False for p in spec.patterns)
    return _Compiled(spec, _any_of(spec), where, negates)


@functools.cache
def _builtin() -> _Compiled:
    """The built-in rules, compiled once per process (a ``repro`` lists paths with new
    rules after each stage).

    Without pathspec, whose import was 11 ms of the start of every ``add``: its
    expressions for them are spelled out (``BUILTIN_PARTS``), and as none of them
    negates, the last that matches decides, as in pathspec's ``GitIgnoreSpec``.
    """
    where = [(number, line.strip()) for number, line in enumerate(BUILTIN, 1)]
    quick = re.compile("|".join(f"(?:{part})" for part in BUILTIN_PARTS))
    return _Compiled(None, quick, where, False)


@functools.cache
def _builtin_parts() -> list[re.Pattern[str]]:
    """``BUILTIN_PARTS`` compiled (only once a path matches one of them)."""
    return [re.compile(part) for part in BUILTIN_PARTS]


class _Rules:
    """The patterns of one ignore file, for the paths below its directory."""

    def __init__(self, base: bytes, source: str, compiled: _Compiled) -> None:
        self.base = base  # the directory the rules are relative to (b"": the root)
        self.prefix = len(os.fsdecode(base)) + 1 if base else 0
        self.source = source
        self.compiled = compiled

    def check(self, rel: str) -> Match | None:
        """The last pattern here matching ``rel`` (relative to the root), if any."""
        here = rel[self.prefix :]
        c = self.compiled
        if c.quick is not None and c.quick.match(here) is None:
            return None
        found = c.last(here)
        if found is None:
            return None
        number, text = c.where[found[1]]
        return Match(found[0], self.source, number, text)

    def decides(self, rel: str) -> bool | None:
        """``check(rel).ignored``, sooner: True ignores, False keeps, None says nothing."""
        here = rel[self.prefix :]
        c = self.compiled
        if c.quick is not None:
            if c.quick.match(here) is None:
                return None
            if not c.negates:
                return True
        found = c.last(here)
        return None if found is None else found[0]


def _any_of(spec: pathspec.GitIgnoreSpec) -> re.Pattern[str] | None:
    """One expression matching what any pattern of ``spec`` matches (None: cannot join)."""
    parts = []
    for p in spec.patterns:
        if p.include is None:
            continue
        regex = getattr(p, "regex", None)
        if not isinstance(regex, re.Pattern):
            return None
        parts.append("(?:" + re.sub(r"\(\?P<\w+>", "(?:", regex.pattern) + ")")
    if not parts:
        return re.compile(r"(?!)")  # matches nothing
    try:
        return re.compile("|".join(parts))
    except re.error:
        return None


class Ignores:
    """The ignore rules of one working tree, read as they are needed, for one command.

    ``tracked`` gives the sorted tracked paths (the index's), asked for only when
    needed: a tracked path is never ignored, and an ignored directory holding tracked
    paths is still entered.
    """

    def __init__(
        self, root: Path, tracked: Callable[[], Sequence[bytes]], warn: Warn = _quiet
    ) -> None:
        self.root = root
        self._get_tracked = tracked
        self._tracked: Sequence[bytes] | None = None
        self._tracked_set: set[bytes] | None = None
        self._bisected = 0  # questions of is_tracked answered by bisection
        self.warn = warn
        self._walker: Walker | None = None
        self._files: dict[bytes, _Rules | None] = {}  # directory -> its .dvfsignore
        self._compiled: dict[str, _Compiled] = {}  # text of an ignore file -> its patterns
        self._chains: dict[bytes, list[_Rules]] = {}  # directory -> rules for its entries
        self._dirs: dict[bytes, Match | None] = {}  # directory -> the rule deciding it
        self._builtin = _Rules(b"", BUILTIN_SOURCE, _builtin())

    def __enter__(self) -> Ignores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of the directory descriptors held."""
        if self._walker is not None:
            self._walker.close()
            self._walker = None

    # reading ------------------------------------------------------------------------

    def _rules_in(self, d: bytes) -> _Rules | None:
        """The rules of ``d``'s ``.dvfsignore`` (None if it has none), read once."""
        if d in self._files:
            return self._files[d]
        source = os.fsdecode(d + b"/" + IGNORE_FILE.encode() if d else IGNORE_FILE.encode())
        shown = quote_name(source)
        rules = None
        try:
            if self._walker is None:
                self._walker = Walker(self.root)
            raw = read_regular(self._walker.dir(d), IGNORE_FILE, MAX_FILE)
        except OSError as exc:
            raw = None
            if exc.errno == errno.ELOOP:
                self.warn(f"{shown} is a symbolic link, which dvfs does not follow: not used")
            elif exc.errno == errno.EFBIG:
                self.warn(f"{shown} holds more than {MAX_FILE:,} bytes: not used")
            elif exc.errno not in (errno.ENOENT, errno.ENOTDIR):
                self.warn(f"{shown} cannot be read ({exc.strerror}): not used")
        if raw is not None:
            text = raw.decode("utf-8", "surrogateescape")
            compiled = self._compiled.get(text)
            if compiled is None:
                compiled = self._compiled[text] = _compile(source, text.split("\n"), self.warn)
            rules = _Rules(d, source, compiled)
        self._files[d] = rules
        return rules

    # matching -----------------------------------------------------------------------

    @staticmethod
    def _above(d: bytes) -> Iterator[bytes]:
        """``d`` and the directories above it up to the root (b""), nearest first.

        One at a time: its callers stop at the first one they know, most often ``d``'s
        parent, where a whole list would cost a scan 2,048 directories deep as many
        times over (a second of a refused ``add`` of a tree that deep)."""
        yield d
        while d:
            d = d.rpartition(b"/")[0]
            yield d

    def _chain(self, parent: bytes) -> list[_Rules]:
        """The rule files that apply to the entries of directory ``parent``, first to last.

        Worked out from the nearest directory already known downwards (no recursion:
        paths may be 2,048 directories deep).
        """
        chain = self._chains.get(parent)
        if chain is not None:
            return chain
        todo = []
        for d in self._above(parent):
            chain = self._chains.get(d)
            if chain is not None:
                break
            todo.append(d)
        chain = chain if chain is not None else [self._builtin]
        for d in reversed(todo):
            own = self._rules_in(d)
            chain = self._chains[d] = chain if own is None else [*chain, own]
        return chain

    def _decide(self, rel: bytes, is_dir: bool) -> Match | None:
        """The last rule matching ``rel`` itself, ancestors left aside (a directory that
        is a repository of its own: that, whatever the rules say)."""
        if is_dir and self._is_repository(rel):
            return Match(True, BUILTIN_SOURCE, 0, f"{os.fsdecode(rel)}/{DVFS_DIR}", rel)
        parent = rel.rpartition(b"/")[0]
        text = os.fsdecode(rel) + ("/" if is_dir else "")
        found = None
        for rules in self._chain(parent):
            m = rules.check(text)
            if m is not None:
                found = m
        return found

    def _is_repository(self, d: bytes) -> bool:
        """True if directory ``d`` holds a ``.dvfs`` directory (not through a link)."""
        if self._walker is None:
            self._walker = Walker(self.root)
        try:
            st = self._walker.lstat(d + b"/" + DVFS_DIR.encode())
        except OSError:  # (unreadable: the scan says so where it matters)
            return False
        return st is not None and stat.S_ISDIR(st.st_mode)

    def _dir_match(self, d: bytes) -> Match | None:
        """The rule that ignores directory ``d`` or one above it (or a last negation)."""
        if d in self._dirs:
            return self._dirs[d]
        todo = []
        above: Match | None = None
        for a in self._above(d):
            if not a:  # (the root itself is never matched)
                break
            if a in self._dirs:
                above = self._dirs[a]
                break
            todo.append(a)
        for a in reversed(todo):
            above = above if above is not None and above.ignored else self._decide(a, True)
            self._dirs[a] = above
        return above

    def match(self, rel: bytes, *, is_dir: bool = False) -> Match | None:
        """The rule deciding about untracked ``rel``: an ignored directory above it, else
        the last pattern matching it (maybe a ``!`` one); None if none matches."""
        parent = rel.rpartition(b"/")[0]
        if parent:
            above = self._dir_match(parent)
            if above is not None and above.ignored:
                return above
        return self._dir_match(rel) if is_dir else self._decide(rel, False)

    @property
    def tracked(self) -> Sequence[bytes]:
        """The tracked paths, sorted."""
        if self._tracked is None:
            self._tracked = self._get_tracked()
        return self._tracked

    def is_tracked(self, rel: bytes) -> bool:
        """True if ``rel`` is a tracked path: found by bisecting the sorted paths for
        the first ``BISECT_FIRST`` questions (an ``add`` of one file asks one, and a set
        of 20,000 paths took it 1.5-2 ms), then in a set of them."""
        if self._tracked_set is None:
            if self._bisected < BISECT_FIRST:
                self._bisected += 1
                tracked = self.tracked
                i = bisect.bisect_left(tracked, rel)
                return i < len(tracked) and tracked[i] == rel
            self._tracked_set = set(self.tracked)
        return rel in self._tracked_set

    def holds_tracked(self, d: bytes) -> bool:
        """True if a tracked path lies below directory ``d``."""
        below = d + b"/"
        tracked = self.tracked
        i = bisect.bisect_left(tracked, below)
        return i < len(tracked) and tracked[i].startswith(below)

    def ignored(self, rel: bytes, *, is_dir: bool = False) -> bool:
        """True if ``rel`` is untracked and ignored (a directory: also holds nothing tracked)."""
        if is_dir:
            m = self.match(rel, is_dir=True)
            return m is not None and m.ignored and not self.holds_tracked(rel)
        if self.is_tracked(rel):
            return False
        m = self.match(rel)
        return m is not None and m.ignored

    def keep(self, untracked: Sequence[bytes]) -> list[bytes]:
        """The ``untracked`` files that are not ignored, in their order.

        Each directory is decided once, and the rules for its files gathered once.
        """
        by_dir: dict[bytes, list[bytes]] = {}
        for p in untracked:
            by_dir.setdefault(p.rpartition(b"/")[0], []).append(p)
        kept: set[bytes] = set()
        decode = os.fsdecode
        for parent, paths in by_dir.items():
            if parent:
                above = self._dir_match(parent)
                if above is not None and above.ignored:
                    continue
            chain = self._chain(parent)
            for p in paths:
                text = decode(p)
                verdict = None
                for rules in chain:
                    said = rules.decides(text)
                    if said is not None:
                        verdict = said
                if not verdict:
                    kept.add(p)
        return [p for p in untracked if p in kept] if kept else []
