"""The daemon's log: how much it says, and what it never writes.

Records go to stderr: the terminal in the foreground, ``daemon.log`` in the cache
directory otherwise (``vfs.mount.launch`` creates it 0600). dvfs's own loggers (``daemon``,
``vfs``) log at INFO, and at DEBUG with ``--debug`` (every request and fetch). The
libraries' loggers stay at INFO whatever ``--debug`` says: at DEBUG botocore writes
every request with its headers, the ``Authorization`` header and its signature
included, and pyfuse3 one line per request.

As a second guard, every line is redacted before it is written (:func:`redact`): the
values of ``Authorization`` and ``X-Amz-Security-Token`` headers, ``Signature=`` and
``Credential=`` parameters, the ``user:password@`` of URLs, and the values of the
secret AWS variables of the daemon's environment become ``<redacted>``. That costs one
regular-expression pass per line written, none per line not written. Control
characters in a message are escaped as dvfs's human output escapes them.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TextIO

from vfs import escape_text

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d]: %(message)s"
OWN = ("daemon", "vfs")
REDACTED = "<redacted>"
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN")
# Shorter values are not looked for: they would blank out ordinary words.
MIN_SECRET = 8
_SENSITIVE = re.compile(
    r"(?i)"
    r"((?:authorization|x-amz-security-token)['\"]?\s*[:=]\s*b?['\"]?)[^'\"\r\n]*"
    r"|((?:signature|credential|security-token)=)[^\s,;'\"&]*"
    r"|(\b[a-z][a-z0-9+.-]*://)[^/\s@'\"]*@"
)


def _replace(m: re.Match[str]) -> str:
    if m.group(1) is not None:
        return m.group(1) + REDACTED
    if m.group(2) is not None:
        return m.group(2) + REDACTED
    return m.group(3) + "***@"


def env_secrets(env: dict[str, str] | None = None) -> list[str]:
    """The secret values in the environment that no line may contain."""
    env = dict(os.environ) if env is None else env
    return [v for k in SECRET_VARIABLES if len(v := env.get(k, "")) >= MIN_SECRET]


def redact(text: str, secrets: list[str]) -> str:
    """``text`` with credentials, signatures and the given secret values replaced."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return _SENSITIVE.sub(_replace, text)


class RedactingFormatter(logging.Formatter):
    """Formats a record as usual (traceback included), then redacts the whole line.

    The message's control characters are escaped first (``vfs.quoting.escape_text``): a
    mount point or a file name holding a newline or an escape sequence must not forge a
    line of the log nor drive the terminal of whoever reads it."""

    def __init__(self, fmt: str, secrets: list[str]) -> None:
        super().__init__(fmt)
        self.secrets = secrets

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_text(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


def configure(stream: TextIO, debug: bool) -> None:
    """Send every record to ``stream``, redacted; DEBUG for dvfs's loggers if ``debug``."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(FORMAT, env_secrets()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    for name in OWN:
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)
