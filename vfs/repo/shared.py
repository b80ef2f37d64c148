"""Settings shared through git: ``dvfs.toml`` at the repository root.

``.dvfs/`` is the private store of one clone, and git ignores it; what teammates must
agree on to share the data, the remotes, lives beside ``dvfs.lock`` in ``dvfs.toml``,
committed with the code, so that ``git clone URL && cd DIR && dvfs pull`` finds them.
The root was chosen over a tracked file inside ``.dvfs/``: git cannot re-include a
file below a directory it ignores (every repository already has ``/.dvfs/`` in its
``.gitignore``), ``.dvfs/`` stays entirely the clone's own (deleting it never loses a
shared setting), and a clone without a store is recognised by a file at its root.

Format (TOML; ``tomllib`` reads it, :func:`render` writes it)::

    # dvfs settings shared through git: remotes, never credentials.
    # Settings in .dvfs/config (this clone only) override these.
    default_remote = "origin"

    [remotes.origin]
    url = "s3://my-bucket/datasets/cats"
    endpoint_url = "http://minio:9000"      # optional, as are region and profile

A directory remote given as a relative path (``url = "../store"``) is relative to the
repository root, wherever the command runs and wherever the clone is.

Nothing else is accepted. The file arrives in a teammate's commit, so it is read as
hostile input: at most ``MAX_FILE`` bytes of UTF-8 from a regular file (never through
a link, never waiting on a FIFO), at most ``MAX_REMOTES`` remotes, each name one a
``dvfs remote add`` would accept, each value a string of at most ``MAX_VALUE``
characters without control characters, no key dvfs does not know, and no
credentials: a URL or endpoint with ``user:password@`` is refused, and so is any key
that would hold a secret. A bad file stops the commands that use remotes with one
line naming the file and what is wrong; the others never read it.

dvfs rewrites the file whole (atomically: a link there is replaced, never written
through) when ``dvfs remote`` changes a shared setting; comments other than the
header above are not kept.
"""

from __future__ import annotations

import errno
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfs._os.beneath import read_regular
from vfs.errors import FormatError, UsageError
from vfs.quoting import quote_given
from vfs.repo.gitlink import SHARED_FILE
from vfs.repo.refs import check_ref_name
from vfs.store.durable import write_atomic

MAX_FILE = 64 * 1024  # bytes of dvfs.toml read
MAX_REMOTES = 64
MAX_VALUE = 2048  # characters of one setting
REMOTE_KEYS = ("url", "endpoint_url", "region", "profile")
# Keys that would hold a credential: refused with a message that says where keys go.
_SECRET_WORDS = ("secret", "password", "passwd", "token", "access_key", "key_id", "credential")
HEADER = (
    "# dvfs settings shared through git: remotes, never credentials.\n"
    "# Settings in .dvfs/config (this clone only) override these.\n"
)


@dataclass
class SharedConfig:
    """What ``dvfs.toml`` holds: remotes by name (their settings) and the default one."""

    remotes: dict[str, dict[str, str]] = field(default_factory=dict)
    default_remote: str | None = None


def _refuse(where: str, what: str) -> FormatError:
    return FormatError(f"{where}: {what}: fix it (it is shared through git)")


def _text(where: str, key: str, value: Any) -> str:
    """A setting's value, checked: a string of sane length without control characters."""
    if not isinstance(value, str):
        raise _refuse(where, f"{key} must be a string")
    if not value or len(value) > MAX_VALUE:
        raise _refuse(where, f"{key} must hold 1 to {MAX_VALUE} characters")
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise _refuse(where, f"{key} holds a control character")
    return value


def _no_secret(where: str, key: str) -> None:
    if any(word in key.lower().replace("-", "_") for word in _SECRET_WORDS):
        raise FormatError(
            f"{where}: {quote_given(key)} would hold a credential, which dvfs never takes from "
            "a shared file: remove it, and give keys through the environment (AWS_ACCESS_KEY_ID, "
            "AWS_SECRET_ACCESS_KEY) or an AWS profile"
        )


def parse(text: str, where: str = SHARED_FILE) -> SharedConfig:
    """Check the text of a ``dvfs.toml``; FormatError saying what is wrong."""
    rec = _toml(text, where)
    cfg = SharedConfig()
    for key in rec:
        _no_secret(where, key)
        if key not in ("remotes", "default_remote"):
            raise _refuse(
                where, f"unknown setting {quote_given(key)} (dvfs knows default_remote, remotes)"
            )
    if "default_remote" in rec:
        name = _text(where, "default_remote", rec["default_remote"])
        try:
            cfg.default_remote = check_ref_name(name, "remote")
        except UsageError as exc:
            raise _refuse(where, f"default_remote: {exc}") from None
    table = rec.get("remotes", {})
    if not isinstance(table, dict):
        raise _refuse(where, "remotes must be a table ([remotes.NAME])")
    if len(table) > MAX_REMOTES:
        raise _refuse(where, f"{len(table)} remotes, more than the {MAX_REMOTES} dvfs reads")
    for name, entry in table.items():
        try:
            check_ref_name(name, "remote")
        except UsageError as exc:
            raise _refuse(where, str(exc)) from None
        if not isinstance(entry, dict):
            raise _refuse(where, f"remotes.{name} must be a table with a url")
        settings = {}
        for key, value in entry.items():
            _no_secret(where, f"remotes.{name}.{key}")
            if key not in REMOTE_KEYS:
                known = ", ".join(REMOTE_KEYS)
                raise _refuse(where, f"unknown setting remotes.{name}.{key} (dvfs knows {known})")
            settings[key] = _text(where, f"remotes.{name}.{key}", value)
        if "url" not in settings:
            raise _refuse(where, f"remotes.{name} has no url")
        from vfs.backends import parse_url, refuse_credentials  # (status reads names only)

        try:
            parse_url(settings["url"])
            if "endpoint_url" in settings:
                refuse_credentials(settings["endpoint_url"], "the endpoint URL")
        except UsageError as exc:
            raise FormatError(f"{where}: remotes.{name}: {exc}") from None
        cfg.remotes[name] = settings
    for name in cfg.remotes:
        for other in cfg.remotes:
            if other.startswith(f"{name}/"):
                raise _refuse(
                    where,
                    f"remotes {name} and {other} would share refs/remotes/{name}/ (one name "
                    "inside another): rename one",
                )
    return cfg


def load(root: Path) -> SharedConfig:
    """The shared settings of the repository at ``root`` (empty if it has no dvfs.toml)."""
    text = _text_of(root)
    return SharedConfig() if text is None else parse(text, str(root / SHARED_FILE))


def remote_names(root: Path) -> set[str]:
    """The names ``dvfs.toml`` gives remotes, read as :func:`load` reads the file but
    without checking their settings (the commands that use remotes check them): for
    ``status``, which needs only the names, and not the backends' modules (15 ms).
    FormatError if the file does not read as TOML."""
    text = _text_of(root)
    if text is None:
        return set()
    table = _toml(text, str(root / SHARED_FILE)).get("remotes", {})
    return {str(n) for n in table} if isinstance(table, dict) else set()


def _toml(text: str, where: str) -> dict[str, Any]:
    """The TOML ``text`` holds; FormatError if it is not TOML, or nests arrays or tables
    so deep that the reader, which recurses, runs out of stack (64 KiB is enough)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _refuse(where, f"not valid TOML ({exc})") from None
    except RecursionError:
        raise _refuse(where, "arrays or tables nested too deep to read") from None


def _text_of(root: Path) -> str | None:
    """The text of ``dvfs.toml`` at ``root`` (None if there is none): a regular file of at
    most ``MAX_FILE`` bytes, never read through a link; FormatError saying why not."""
    where = str(root / SHARED_FILE)
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        raw = read_regular(fd, SHARED_FILE, MAX_FILE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            why = "it is a symbolic link, which dvfs does not follow"
        elif exc.errno == errno.EFBIG:
            why = f"it holds more than {MAX_FILE:,} bytes"
        else:
            why = exc.strerror or "it cannot be read"
        raise FormatError(f"{where} is not a plain file dvfs can read ({why}): fix it") from None
    finally:
        os.close(fd)
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(where, "not UTF-8 text") from None


def _key(name: str) -> str:
    """A TOML key: bare if it can be, else a basic string."""
    if name and all(c.isascii() and (c.isalnum() or c in "-_") for c in name):
        return name
    return _string(name)


def _string(value: str) -> str:
    """A TOML basic string (values are checked to hold no control characters)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render(cfg: SharedConfig) -> str:
    """The text of a ``dvfs.toml`` holding ``cfg`` (``parse`` reads it back equal)."""
    out = [HEADER]
    if cfg.default_remote is not None:
        out.append(f"default_remote = {_string(cfg.default_remote)}\n")
    for name, settings in cfg.remotes.items():
        out.append(f"\n[remotes.{_key(name)}]\n")
        for key in REMOTE_KEYS:
            if settings.get(key) is not None:
                out.append(f"{key} = {_string(settings[key])}\n")
    return "".join(out)


def save(root: Path, cfg: SharedConfig) -> None:
    """Write ``dvfs.toml`` atomically (checked as it will be read: what is written parses)."""
    text = render(cfg)
    parse(text, str(root / SHARED_FILE))
    write_atomic(root / SHARED_FILE, text.encode())
