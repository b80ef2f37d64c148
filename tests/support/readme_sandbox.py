"""Run README.md's shell blocks as written, inside private mount and network namespaces.

Started by ``tests/test_readme.py`` as ``unshare --mount --net python readme_sandbox.py
SPEC`` (as root), with the standard library only. Inside the namespaces the README's
own paths and hosts are real and private to this run:

- ``/mnt`` and ``/srv`` are fresh tmpfs, so ``dvfs mount . /mnt/data`` mounts at
  ``/mnt/data``, and a git server's repository can be at ``/srv/git``, without
  touching the machine's own;
- ``/etc/hosts`` (bind-mounted over) names ``minio`` as 127.0.0.1, and a relay on
  127.0.0.1:9000 forwards to the Unix socket of the test session's SeaweedFS, so
  ``--endpoint-url http://minio:9000`` reaches a real S3 server;
- the network namespace holds only loopback: no port of the machine is taken.

The spec's ``prepare`` script runs first (sample data that must live in those
places). Each block runs in its own ``bash`` in the directory where the previous one ended,
and stops at the first command that fails (``diff`` finding differences, exit 1, is
not a failure). At the end every FUSE mount under ``/mnt`` is unmounted, so that no
daemon outlives the run. The results go to a JSON file: per block, its exit status,
output and time.

SPEC (JSON): ``{"blocks": [{"line": N, "text": "..."}], "prepare": SCRIPT, "start": DIR,
"s3_socket": PATH, "state": DIR, "results": PATH}``.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

RELAY_PORT = 9000
HOSTS = "127.0.0.1 localhost minio\n::1 localhost\n"
BLOCK_TIMEOUT = 120.0

# Before each block: go where the last one ended; stop at the first failing command.
PREAMBLE = r"""
set -o pipefail
cd "$(cat "$README_STATE/cwd")"
trap 'rc=$?
if [[ $rc -eq 1 && $BASH_COMMAND == diff\ * ]]; then :; else
  echo "readme: \`$BASH_COMMAND\` exited $rc" >&2; exit "$rc"; fi' ERR
"""
EPILOGUE = '\npwd > "$README_STATE/cwd"\n'


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    for s in (src, dst):
        with contextlib.suppress(OSError):
            s.shutdown(socket.SHUT_RDWR)


def relay(listener: socket.socket, target: str) -> None:
    """Forward each TCP connection to the Unix socket ``target`` (until the process ends)."""
    while True:
        conn, _ = listener.accept()
        upstream = socket.socket(socket.AF_UNIX)
        try:
            upstream.connect(target)
        except OSError:
            conn.close()
            continue
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


def fuse_mounts() -> list[str]:
    """Mount points of dvfs under /mnt in this namespace: FUSE filesystems, and the
    kernel overlays a root mount makes (type ``overlay``, source ``dvfs``), whose daemon
    would otherwise outlive the sandbox."""
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        fstype, source = fields[fields.index("-") + 1 : fields.index("-") + 3]
        ours = fstype.startswith("fuse") or (fstype, source) == ("overlay", "dvfs")
        if ours and fields[4].startswith("/mnt/"):
            out.append(fields[4])
    return out


def unmount_all() -> list[str]:
    """Unmount every FUSE mount left under /mnt; return those that were left."""
    left = fuse_mounts()
    for path in left:
        subprocess.run(["dvfs", "umount", "--force", path], capture_output=True, timeout=60)
        if path in fuse_mounts():
            subprocess.run(["fusermount3", "-uz", path], capture_output=True, timeout=60)
    return left


def main() -> None:
    spec: dict[str, Any] = json.loads(Path(sys.argv[1]).read_text())
    state = Path(spec["state"])
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    for private in ("/mnt", "/srv"):
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", private], check=True)
    hosts = state / "hosts"
    hosts.write_text(HOSTS)
    subprocess.run(["mount", "--bind", str(hosts), "/etc/hosts"], check=True)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", RELAY_PORT))
    listener.listen(64)
    threading.Thread(target=relay, args=(listener, spec["s3_socket"]), daemon=True).start()

    (state / "cwd").write_text(spec["start"])
    env = {**os.environ, "README_STATE": str(state)}
    results = []
    prepared = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", spec["prepare"]],
        env=env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    if prepared.returncode != 0:
        results.append({"line": 0, "code": prepared.returncode, "out": prepared.stdout,
                        "err": prepared.stderr, "seconds": 0})  # fmt: skip
        spec["blocks"] = []
    try:
        for block in spec["blocks"]:
            started = time.monotonic()
            proc = subprocess.run(
                ["bash", "-c", PREAMBLE + block["text"] + EPILOGUE],
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT,
                check=False,
            )
            results.append(
                {
                    "line": block["line"],
                    "code": proc.returncode,
                    "out": proc.stdout,
                    "err": proc.stderr,
                    "seconds": round(time.monotonic() - started, 2),
                }
            )
            if proc.returncode != 0:
                break
    finally:
        left = unmount_all()
        Path(spec["results"]).write_text(json.dumps({"blocks": results, "left_mounted": left}))


if __name__ == "__main__":
    main()
