"""The systemd units in systemd/, and the daemon's side of Type=notify.

The units are checked twice: their key settings are parsed and asserted here
(always), and ``systemd-analyze verify`` must accept them without a warning where
the tool exists. The path of ``dvfs`` in ExecStart is replaced by this
environment's, since verify insists that the binary exists. The readiness
protocol is tested for real: the daemon is started with ``NOTIFY_SOCKET`` pointing
at a socket of the test, which must receive ``READY=1`` once the mount is up and
``STOPPING=1`` when it goes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.mount import commit, in_mount_table, mounted, write
from vfs.repo.repository import Repository

UNITS = Path(__file__).resolve().parent.parent / "systemd"
SYSTEM_UNIT = UNITS / "dvfs-mount@.service"
USER_UNIT = UNITS / "user" / "dvfs-mount@.service"


def parse_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections of a unit file -> key -> every value given (keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section: dict[str, list[str]] | None = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = out.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep and section is not None, f"{path}: stray line {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return out


def check_key_settings(path: Path, wanted_by: str) -> None:
    unit = parse_unit(path)
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    (start,) = service["ExecStart"]
    assert " mount --foreground $DVFS_SOURCE " in start and start.endswith(" $DVFS_OPTIONS")
    assert start.split()[0].endswith("/dvfs")
    (stop_post,) = service["ExecStopPost"]
    assert stop_post.startswith("-") and " umount --force " in stop_post
    assert service["EnvironmentFile"][0].endswith("/dvfs/mount-%i.conf")
    assert service["Restart"] == ["on-failure"]
    assert unit["Install"]["WantedBy"] == [wanted_by]


def test_units_have_their_key_settings() -> None:
    check_key_settings(SYSTEM_UNIT, "multi-user.target")
    check_key_settings(USER_UNIT, "default.target")
    system = parse_unit(SYSTEM_UNIT)
    assert "network-online.target" in system["Unit"]["After"][0]
    assert system["Unit"]["RequiresMountsFor"] == ["%f"]
    assert system["Service"]["CacheDirectory"] == ["dvfs"]
    assert system["Service"]["CacheDirectoryMode"] == ["0700"]
    # working trees are not kept in the cache, which may be cleared
    assert "XDG_DATA_HOME=/var/lib" in system["Service"]["Environment"]
    assert system["Service"]["StateDirectory"] == ["dvfs"]
    assert system["Service"]["StateDirectoryMode"] == ["0700"]


def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    tool = shutil.which("systemd-analyze")
    if tool is None:  # no systemd here: the parsed settings are all that can be checked
        test_units_have_their_key_settings()
        return
    dvfs = shutil.which("dvfs", path=os.path.dirname(sys.executable)) or shutil.which("dvfs")
    assert dvfs is not None, "the dvfs console script is not installed"
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    for unit, flags, instance, prefix in (
        (SYSTEM_UNIT, [], "srv-data", "/usr/local/bin/dvfs"),
        (USER_UNIT, ["--user"], "data", "%h/.local/bin/dvfs"),
    ):
        where = tmp_path / unit.parent.name
        where.mkdir()
        (where / unit.name).write_text(unit.read_text().replace(prefix, dvfs))
        proc = subprocess.run(
            [tool, *flags, "verify", str(where / f"dvfs-mount@{instance}.service")],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "dvfs-mount" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr


def test_the_daemon_tells_systemd_when_it_is_ready_and_stopping(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    commit(repo, "one")
    address = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(address))
        sock.settimeout(20)
        with mounted(str(root), tmp_path / "mnt", tmp_path / "home",
                     env={"NOTIFY_SOCKET": str(address)}) as m:  # fmt: skip
            ready = sock.recv(4096).decode()
            assert ready.splitlines() == ["READY=1", "STATUS=serving main"]
            assert os.path.ismount(m.path)
            m.proc.send_signal(signal.SIGTERM)
            assert sock.recv(4096) == b"STOPPING=1"
            assert m.proc.wait(timeout=15) == 0
            assert not in_mount_table(m.path)
