"""Who may reach the dashboard: the checks of ``--host`` and ``--token``.

Apart from :mod:`vfs.ui.serve` so that ``dvfs ui`` refuses a weak token or an open
host at once, before it loads the server and the pages (about 0.3 CPU-s) or opens
its source (a remote's versions fetched), and without the optional extra.
"""

from __future__ import annotations

import ipaddress
import re

from vfs.errors import UsageError

MIN_TOKEN = 16
_TOKEN = re.compile(r"^[A-Za-z0-9._~-]+$")
MAKE_TOKEN = "openssl rand -hex 24"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and the loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse a token that is too weak, and a non-loopback host without a token."""
    if token is not None and (len(token) < MIN_TOKEN or not _TOKEN.match(token)):
        raise UsageError(
            f"--token needs at least {MIN_TOKEN} letters, digits or -._~: make one with "
            f"`{MAKE_TOKEN}`"
        )
    if token is None and not is_loopback(host):
        raise UsageError(
            f"--host {host} lets other machines reach the repository: give --token T too "
            "(or leave --host out to stay on 127.0.0.1)"
        )
