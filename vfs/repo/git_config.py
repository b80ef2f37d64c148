"""git's ``user.name`` and ``user.email``, read from its configuration files where that
is certain to give what ``git config`` gives, so that a commit need not run git.

Running ``git config`` cost each ``dvfs commit`` a process and the import of
``subprocess`` (7 to 8 ms) even where dvfs lives in no git repository. The answer is
read here only where git would read no more than three files and nothing but those
files decides it:

- no variable changes where git reads its configuration (``GIT_CONFIG*``, and the
  ``GIT_CONFIG_PARAMETERS`` that ``git -c`` hands to hooks), and git would find no
  repository (no local or worktree file: ``vfs.repo.gitlink``'s test of that);
- ``HOME`` is set, and ``git`` on ``PATH`` lies in ``/usr/bin`` or ``/usr/sbin``
  (links resolved), whose system file is ``/etc/gitconfig``; git elsewhere was built
  with its own place for it, which only git knows;
- each file (``/etc/gitconfig``, then ``$XDG_CONFIG_HOME/git/config`` or
  ``~/.config/git/config``, then ``~/.gitconfig``; the last value wins) is absent, or
  holds only what is read here as git reads it: comment and blank lines, section
  headers, ``key = value`` lines whose values may be quoted but hold no backslash
  (escapes and continued lines are git's to read), no ``include`` or ``includeIf``
  section, at most ``MAX_FILE`` bytes of UTF-8.

Anything else, and any file that cannot be read, leaves the question to git
(:func:`user` gives None). Without ``git`` on ``PATH`` there is no answer, as there
was when running it failed.
"""

from __future__ import annotations

import os
import re

MAX_FILE = 1 << 20  # bytes of a configuration file read here (larger: git reads it)
SYSTEM_FILE = "/etc/gitconfig"  # the system file of a git installed in /usr
_USR_BIN = ("/usr/bin", "/usr/sbin")
# Variables that add to, replace or remove the files read here.
_SOURCES = (
    "GIT_CONFIG",
    "GIT_CONFIG_GLOBAL",
    "GIT_CONFIG_SYSTEM",
    "GIT_CONFIG_NOSYSTEM",
    "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT",
)
_SECTION = re.compile(r'\[([A-Za-z0-9.-]+)(?:[ \t]+"([^"\\]*)")?\][ \t]*(?:[#;].*)?')
_VARIABLE = re.compile(r"([A-Za-z][A-Za-z0-9-]*)[ \t]*(?:=(.*))?")
_WANTED = ("name", "email")


class _GitDecides(Exception):
    """A file holds what only git reads right."""


def user(git_around: bool) -> dict[str, str] | None:
    """``{"user.name": ..., "user.email": ...}`` (those that are set, stripped) as
    ``git config`` gives them; None if only git can tell (see the module doc).

    ``git_around``: whether git could find a repository here.
    """
    if git_around or any(name in os.environ for name in _SOURCES):
        return None
    home = os.environ.get("HOME")
    if not home:
        return None
    git = _on_path("git")
    if git is None:
        return {}  # (no git: it could not be asked either)
    if git == "" or os.path.dirname(os.path.realpath(git)) not in _USR_BIN:
        return None
    xdg = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    found: dict[str, str] = {}
    try:
        for path in (
            SYSTEM_FILE,
            os.path.join(xdg, "git", "config"),
            os.path.join(home, ".gitconfig"),
        ):
            _read(path, found)
    except _GitDecides:
        return None
    return found


def _on_path(name: str) -> str | None:
    """Where a process would find program ``name`` (as ``execvp`` looks); "" if that
    depends on the directory it runs in; None if nowhere."""
    for d in os.get_exec_path():
        if not d or not os.path.isabs(d):
            return ""
        path = os.path.join(d, name)
        if os.access(path, os.X_OK) and not os.path.isdir(path):
            return path
    return None


def _read(path: str, found: dict[str, str]) -> None:
    """Add what file ``path`` sets ``user.name`` and ``user.email`` to to ``found``;
    _GitDecides if only git reads it right."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE + 1)
    except (FileNotFoundError, NotADirectoryError):  # (as git: no file, nothing set)
        return
    except OSError:  # (git says what is wrong)
        raise _GitDecides() from None
    if len(raw) > MAX_FILE:
        raise _GitDecides()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _GitDecides() from None
    if text.startswith("\ufeff") or any(c in text for c in "\\\v\f\0"):
        raise _GitDecides()
    in_user = False
    section = None
    for line in text.split("\n"):
        line = line.removesuffix("\r").lstrip(" \t")
        if "\r" in line:
            raise _GitDecides()
        if not line or line[0] in "#;":
            continue
        if line[0] == "[":
            m = _SECTION.fullmatch(line)
            if m is None:
                raise _GitDecides()
            section = m[1].lower()
            if section in ("include", "includeif"):
                raise _GitDecides()
            in_user = section == "user" and m[2] is None
            continue
        m = _VARIABLE.fullmatch(line)
        if m is None or section is None:  # (a variable before any section: git refuses)
            raise _GitDecides()
        value = "" if m[2] is None else _value(m[2])  # (every value: git refuses a bad one)
        key = m[1].lower()
        if in_user and key in _WANTED:
            found[f"user.{key}"] = value.strip()


def _value(text: str) -> str:
    """A value as git reads it (``parse_value``, without escapes): leading blanks
    dropped, each blank after the start kept as a space unless only blanks follow,
    ``#`` or ``;`` outside quotes ending it, double quotes removed."""
    out: list[str] = []
    blanks = 0
    quoted = False
    for c in text:
        if c in " \t" and not quoted:
            if out:
                blanks += 1
            continue
        if not quoted and c in "#;":
            break
        if blanks:
            out.append(" " * blanks)
            blanks = 0
        if c == '"':
            quoted = not quoted
            continue
        out.append(c)
    if quoted:  # (git refuses the file)
        raise _GitDecides()
    return "".join(out)
