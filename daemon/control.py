"""The control socket: how ``dvfs snapshot`` and ``dvfs status MNT`` reach the daemon.

A Unix stream socket in the user's private runtime directory (``vfs.mount.mounts.runtime_dir``:
``$XDG_RUNTIME_DIR/dvfs``, ``/run/dvfs`` for root, else ``/tmp/dvfs-<uid>``; mode 0700),
named after the daemon's pid. The CLI finds it
through the mount itself: ``MNT/.versions/.control`` is a symbolic link to it (not
listed; ``vfs.mount.control``). Only the daemon's user (or root) may connect; the peer's
credentials are checked. The CLI checks the daemon's in turn (its uid, and that the
socket is named after the listening process), and names the mount point it means:
a daemon answers only for its own, so that a ``.control`` link pointing elsewhere
(a crafted directory, another user's FUSE mount) cannot make the CLI act on
another mount.

Protocol, version 1: one JSON object per line each way. A request is
``{"op": "snapshot", "message": ..., "tag": ..., "params": {...}, "branch": ...,
"cmd": [...]}`` (``cmd``: the client's command line, which the audit entries of the
refs the snapshot moves record; ``["dvfs", "snapshot", MNT]`` if left out),
``{"op": "status"}``, ``{"op": "stats"}`` (nodes in memory, journal size),
``{"op": "unmount", "force": bool}`` (a kernel overlay's MNT, which only its daemon
can put back together when it is busy; ``daemon.kernel_overlay``) or
``{"op": "ping"}``, each with ``"mountpoint": "/abs/mnt"`` (refused if it is not this
daemon's; older clients omit it); the answer is ``{"ok": true, ...}`` or
``{"ok": false, "error": "<one line for the user>", "kind": "<class>"}``, where
``kind`` names the ``vfs.errors`` class of the failure (``vfs.errors.error_kind``), so
that the CLI exits as the same failure would make ``dvfs commit`` exit: a full disk is
``StorageFull``, a lost race ``RefConflict``, a bad request ``UsageError``, an I/O
error or a bug ``DvfsError``; ``errno`` is added for an OS error. One request per
connection.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import socket
import struct
from pathlib import Path
from typing import Any

import trio

from daemon.kernel_overlay import KernelMount
from daemon.snapshot import Request, Snapshots
from vfs import DvfsError, error_kind, quote_name, runtime_dir, shell_word, storage_error

log = logging.getLogger(__name__)
MAX_REQUEST = 1 << 20
_CRED = struct.Struct("3i")


def socket_path() -> Path:
    """A fresh socket path for this daemon, in a directory only its user can enter."""
    return runtime_dir() / f"ctl-{os.getpid()}.sock"


def _peer_allowed(sock: trio.socket.SocketType) -> bool:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _CRED.size)
    _, uid, _ = _CRED.unpack(raw)
    return uid in (0, os.getuid())


class Control:
    """Serves requests on the control socket."""

    def __init__(
        self, path: Path, snapshots: Snapshots, mountpoint: Path, kernel: KernelMount | None
    ) -> None:
        self.path = path
        self.snapshots = snapshots
        self.mountpoint = str(mountpoint)
        self.kernel = kernel

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen until cancelled; the socket file is removed on the way out."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        await sock.bind(str(self.path))
        os.chmod(self.path, 0o600)
        sock.listen(16)
        listener = trio.SocketListener(sock)
        task_status.started()
        try:
            await trio.serve_listeners(self._serve, [listener])
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _serve(self, stream: trio.SocketStream) -> None:
        async with stream:
            try:
                if not _peer_allowed(stream.socket):
                    await self._reply(stream, _refused("permission denied"))
                    return
                data = b""
                while b"\n" not in data and len(data) < MAX_REQUEST:
                    piece = await stream.receive_some(65536)
                    if not piece:
                        return
                    data += piece
                req = _parse(data.split(b"\n", 1)[0])
                if self.kernel is not None and req.get("op") == "unmount":
                    async with self.kernel.guard:  # the view stays until this is answered
                        await self._reply(stream, await self._answer(req))
                    return
                await self._reply(stream, await self._answer(req))
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                log.info("a control client went away")

    @staticmethod
    async def _reply(stream: trio.SocketStream, answer: dict[str, Any]) -> None:
        await stream.send_all(json.dumps(answer).encode() + b"\n")

    async def _answer(self, req: dict[str, Any]) -> dict[str, Any]:
        if "bad" in req:
            return _refused(req["bad"])
        op = req.get("op")
        meant = req.get("mountpoint", self.mountpoint)
        if meant != self.mountpoint:
            return _refused(_not_mine(self.mountpoint, str(meant)))
        try:
            if op == "ping":
                return {"ok": True}
            if op in ("status", "snapshot"):
                moved = await self._moved()  # (a moved repository's branch reads as deleted)
                if moved is not None:
                    return {"ok": False, "error": moved, "kind": "DvfsError"}
            if op == "status":
                return {"ok": True, **await self.snapshots.status()}
            if op == "stats":
                return {"ok": True, **self.snapshots.stats()}
            if op == "unmount" and self.kernel is not None:
                force = bool(req.get("force"))
                await trio.to_thread.run_sync(self.kernel.unmount, force)
                return {"ok": True}
            if op == "snapshot":
                params = req.get("params") or {}
                if not isinstance(params, dict):
                    return _refused("bad request (params)")
                cmd = req.get("cmd", ["dvfs", "snapshot", self.mountpoint])
                if not _is_command(cmd):
                    return _refused("bad request (cmd)")
                got = await self.snapshots.take(
                    Request(
                        str(req.get("message", "")),
                        _opt_str(req.get("tag")),
                        params,
                        _opt_str(req.get("branch")),
                        cmd,
                    )
                )
                log.info("snapshot %s %s on %s", got["version"], got["id"][:10], got["branch"])
                return {"ok": True, **got}
        except DvfsError as exc:
            log.warning("%s refused: %s", op, exc)
            moved = await self._moved()
            if moved is not None:
                return {"ok": False, "error": moved, "kind": "DvfsError"}
            return {"ok": False, "error": str(exc), "kind": error_kind(exc)}
        except OSError as exc:
            log.error("%s failed: %s", op, exc)
            moved = await self._moved()
            if moved is not None:
                return {"ok": False, "error": moved, "kind": "DvfsError", "errno": exc.errno}
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                full = storage_error(exc, f"the {op}")
                return {"ok": False, "error": str(full), "kind": "StorageFull", "errno": exc.errno}
            name = exc.filename
            where = f": {quote_name(os.fsdecode(name))}" if isinstance(name, (str, bytes)) else ""
            failed = f"{op} failed: {exc.strerror or exc}{where} (the daemon's log has more)"
            return {"ok": False, "error": failed, "kind": "DvfsError", "errno": exc.errno}
        except Exception as exc:  # a bug: logged with its traceback, one line to the user
            log.exception("%s failed with an internal error", op)
            bug = f"internal error ({type(exc).__name__}: {exc})"
            return {"ok": False, "error": bug, "kind": "DvfsError"}
        return _refused(f"unknown request {op!r}")

    async def _moved(self) -> str | None:
        """For a failed request: what to do if the repository mounted was moved away."""
        moved = await trio.to_thread.run_sync(self.snapshots.source.moved)
        if moved is None:
            return None
        log.error("%s", moved)
        return (
            f"{moved}: move it back, or run `dvfs umount {shell_word(self.mountpoint)}` and "
            "mount it from where it is now (this working tree's changes go with it, in its "
            ".dvfs/worktrees)"
        )


def _not_mine(mine: str, meant: str) -> str:
    """Why a request naming another mount point is refused, and what to do if the
    mount point was only moved (a directory above it renamed), which the kernel
    allows and this daemon, serving the path it mounted, cannot follow."""
    return (
        f"this daemon serves {quote_name(mine)}, not {quote_name(meant)}: if that is its "
        "mount moved (a directory above it renamed), rename it back, or run "
        f"`dvfs umount --force {shell_word(meant)}` and mount again (the working tree's "
        "changes are kept)"
    )


def _refused(why: str) -> dict[str, Any]:
    """The answer to a request the daemon will not act on: a usage error."""
    return {"ok": False, "error": why, "kind": "UsageError"}


def _parse(line: bytes) -> dict[str, Any]:
    """A request; ``{"bad": why}`` if it is not a JSON object."""
    try:
        req = json.loads(line)
    except ValueError:
        req = None
    if not isinstance(req, dict):
        return {"bad": "bad request (not a JSON object)"}
    req.pop("bad", None)
    return req


def _is_command(cmd: object) -> bool:
    """Whether ``cmd`` is a command line an audit entry can record: a non-empty list
    of strings (the request's size bounds it)."""
    return isinstance(cmd, list) and bool(cmd) and all(isinstance(a, str) for a in cmd)


def _opt_str(x: object) -> str | None:
    return None if x is None else str(x)
