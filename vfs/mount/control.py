"""Talking to a mount's daemon: ``dvfs snapshot MNT`` and ``dvfs status MNT``.

The daemon's control socket is found through the mount itself: in a writable mount,
``MNT/.versions/.control`` (not listed) is a symbolic link to the socket (see
``daemon.control`` for the protocol: one JSON line each way).

Whatever answers there is checked before a request is sent: the listening process
(``SO_PEERCRED``) must run as this user or root, and the socket must bear its pid
(``ctl-<pid>.sock``, as a daemon names its own); the request names the mount point,
which the daemon checks is its own. So a ``.control`` link made by someone else
leads nowhere: not to another user's process, not to a service's socket, not to
another of this user's mounts.

The link is read in a child process (``python -I -S``): a daemon that is stopped or
hung leaves a reader of its mount waiting in the kernel for ever, and a child can be
given up on after ``LOOK_WAIT`` seconds (and killed) where a thread would keep this
process from ending. Test hook: ``DVFS_TEST_LOOK_WAIT=<seconds>`` shortens the wait.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shlex
import socket
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

from vfs.errors import DvfsError, MountError, NoSuchMount, from_kind
from vfs.model import params as version_params
from vfs.quoting import quote_name, shell_word
from vfs.repo import audit

CONTROL_LINK = ".versions/.control"
# A snapshot hashes what changed, which may be gigabytes: wait long for the answer.
ANSWER_WAIT = 3600.0
_CRED = struct.Struct("3i")  # struct ucred: pid, uid, gid
# How long a look into the mount waits for its daemon: a healthy one answers at once.
LOOK_WAIT = 10.0
LOOK_WAIT_ENV = "DVFS_TEST_LOOK_WAIT"
# The child that reads the link: "=" and the target, or "!" and readlink's errno.
_READLINK = (
    "import os, sys\n"
    "try:\n    out = b'=' + os.readlink(os.fsencode(sys.argv[1]))\n"
    "except OSError as exc:\n    out = b'!%d' % (exc.errno or 0)\n"
    "sys.stdout.buffer.write(out)\n"
)


class SnapshotInterrupted(MountError):
    """Ctrl-C while a mount's daemon was recording a snapshot, which it goes on with."""

    exit_code = 130


def _left_recording(mnt: str) -> str:
    """What to say when ``dvfs snapshot MNT`` was interrupted once its request was sent."""
    return (
        f"interrupted, but the daemon of {quote_name(mnt)} goes on recording the snapshot "
        f"(it cannot be called back): `dvfs status {shell_word(mnt)}` shows whether it is "
        "recorded (the changes are gone from the list, and the branch moved) before you "
        "run it again"
    )


class DaemonSilent(MountError):
    """A mount's daemon did not answer a look into its mount: it is stopped or hung."""


def _readlink(link: Path, mnt: str) -> str:
    """``os.readlink(link)``, given up on after ``LOOK_WAIT`` s (DaemonSilent)."""
    wait = float(os.environ.get(LOOK_WAIT_ENV) or LOOK_WAIT)
    proc = subprocess.Popen(
        [sys.executable, "-I", "-S", "-c", _READLINK, os.fsencode(link)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=wait)
    except subprocess.TimeoutExpired:
        proc.kill()  # a reader the daemon has not taken up ends at once; one it took
        with contextlib.suppress(subprocess.TimeoutExpired):  # stays till the mount goes
            proc.wait(timeout=1)
        raise DaemonSilent(_silent(mnt, wait)) from None
    finally:
        if proc.stdout is not None:
            proc.stdout.close()
    if out.startswith(b"="):
        return os.fsdecode(out[1:])
    code = int(out[1:]) if out[:1] == b"!" and out[1:].isdigit() else 0
    raise OSError(code or errno.EIO, os.strerror(code or errno.EIO))


def _silent(mnt: str, wait: float) -> str:
    """What to say of a daemon that did not answer within ``wait`` s."""
    from vfs.mount.mounts import enclosing, read_record  # (which import this module)

    top = enclosing(mnt, at_top=True)
    rec = read_record(top) if top is not None else None
    pid = f" (pid {rec.pid})" if rec is not None else ""
    where = str(top) if top is not None else os.path.abspath(mnt)
    resume = f"`kill -CONT {rec.pid}` resumes a stopped one; " if rec is not None else ""
    return (
        f"the daemon of {quote_name(where)}{pid} does not answer (no reply in {wait:.0f} s: "
        f"it is stopped or hung): {resume}`dvfs umount --force {shell_word(where)}` "
        "unmounts it"
    )


def socket_of(mnt: str) -> str:
    """The control socket of the mount at ``mnt``; MountError saying why not."""
    path = Path(os.path.abspath(mnt))
    try:
        return _readlink(path / CONTROL_LINK, mnt)
    except OSError as exc:
        if exc.errno == errno.ENOTCONN:
            raise MountError(
                f"the daemon of {quote_name(mnt)} is gone: run `dvfs umount "
                f"{shlex.quote(mnt)}` and mount again (the working tree's changes are kept)"
            ) from None
        if not os.path.lexists(path):
            raise NoSuchMount(
                f"{quote_name(mnt)} does not exist: give a mount's mount point"
            ) from None
        if os.path.ismount(path) and (path / ".versions").is_dir():
            raise MountError(
                f"{quote_name(mnt)} is a read-only dvfs mount: unmount it and mount it again "
                "without --read-only (a URL mount needs --writable)"
            ) from None
        from vfs.mount.mounts import enclosing  # (which imports this module)

        top = enclosing(mnt)
        if top is not None:
            raise MountError(
                f"{quote_name(str(path))} is inside the dvfs mount {quote_name(str(top))}: "
                f"give its mount point, {quote_name(str(top))}"
            ) from None
        raise NoSuchMount(f"{quote_name(mnt)} is not a dvfs mount: give the mount point") from None


def call(mnt: str, request: dict[str, Any], wait: float = ANSWER_WAIT) -> dict[str, Any]:
    """Send one request to the daemon of ``mnt``; its answer, or DvfsError with its message."""
    path = socket_of(mnt)
    request = {**request, "mountpoint": os.path.realpath(mnt)}
    sent = False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as s:
        s.settimeout(wait)
        try:
            s.connect(path)
            _check_peer(s, path, mnt)
            sent = True  # (from here on the daemon may have it: one small write)
            s.sendall(json.dumps(request).encode() + b"\n")
            data = b""
            while b"\n" not in data:
                piece = s.recv(65536)
                if not piece:
                    break
                data += piece
        except KeyboardInterrupt:
            if sent and request.get("op") == "snapshot":  # (the daemon goes on with it)
                raise SnapshotInterrupted(_left_recording(mnt)) from None
            raise
        except TimeoutError:
            raise MountError(
                f"the daemon of {quote_name(mnt)} did not answer within {wait:.0f} s: see its log"
            ) from None
        except OSError as exc:
            raise MountError(
                f"cannot reach the daemon of {quote_name(mnt)} ({exc.strerror or exc}): "
                f"see `dvfs mounts`, or remount {quote_name(mnt)}"
            ) from None
    try:
        answer = json.loads(data.split(b"\n", 1)[0])
    except ValueError:
        raise MountError(
            f"the daemon of {quote_name(mnt)} closed the connection: see its log"
        ) from None
    if not isinstance(answer, dict):
        raise MountError(f"the daemon of {quote_name(mnt)} answered nonsense: see its log")
    if not answer.get("ok"):
        raise from_kind(answer.get("kind"), str(answer.get("error", "the daemon refused")))
    return answer


def _check_peer(s: socket.socket, path: str, mnt: str) -> None:
    """MountError unless the socket's listener looks like this user's (or root's) daemon."""
    pid, uid, _ = _CRED.unpack(s.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size))
    if uid not in (0, os.geteuid()):
        raise MountError(
            f"the control socket of {quote_name(mnt)} belongs to a process of uid {uid}, not "
            "to you or root: refusing to talk to it"
        )
    if os.path.basename(path) != f"ctl-{pid}.sock":
        raise MountError(f"{quote_name(mnt)} does not lead to a dvfs daemon's control socket")


def check_answer_fields(answer: dict[str, Any], *names: str) -> None:
    """DvfsError unless the daemon's answer has every field the CLI prints."""
    missing = [n for n in names if n not in answer]
    if missing:
        raise DvfsError(f"the daemon's answer lacks {', '.join(missing)}: is it another version?")


def snapshot(
    mnt: str, message: str, params: dict[str, Any], tag: str | None = None,
    branch: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """``dvfs snapshot MNT``: record the mount's working tree as a new version (its
    daemon does it); the daemon's answer, checked to hold what the CLI prints. The
    one path for the CLI and the dashboard's action. The request carries the command
    the audit entries of the refs the daemon moves name (``audit.command``): the
    user's ``dvfs snapshot ...``, not the daemon's own command line."""
    version_params.message(message)
    request = {
        "op": "snapshot", "message": message, "tag": tag, "params": params, "branch": branch,
        "cmd": audit.command(),
    }  # fmt: skip
    got = call(mnt, request)
    check_answer_fields(got, "version", "id", "branch", "files", "bytes", "hashed")
    return got
