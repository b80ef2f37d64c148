"""A small process that starts the measured commands, so their peak RSS is their own.

Linux carries the peak RSS of the memory a process had before ``exec`` over to the
program it runs. A command forked by the benchmark itself would report at least the
benchmark's own peak (tens of MiB after generating data); forked by this process,
which stays at a few MiB, it reports what it used.

Protocol, one JSON object per line. The benchmark writes a request
``{"argv": [...], "cwd": str, "env": {...}, "out": path}``; this process answers
``{"pid": n}`` once the command started (the command leads its own session, so the
benchmark can kill its process group by that id), then ``{"status": wait status,
"wall_s": float, "maxrss_kib": int, "cpu_s": user + system seconds}`` when it ended,
or ``{"error": str}`` if it could not start. Standard output and error of the command
go to the file ``out``. It runs until its standard input closes, and ignores SIGINT:
the benchmark decides.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def start(argv: list[str], cwd: str, env: dict[str, str], out: int) -> int:
    """Fork and exec one command in its own session; the child never returns."""
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.chdir(cwd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:
        os.write(out, f"cannot run {argv[0]}: {exc}\n".encode())
    finally:
        os._exit(127)


def reply(message: dict[str, object]) -> None:
    """Send one answer line."""
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    """Serve requests until standard input closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for line in sys.stdin:
        req = json.loads(line)
        try:
            out = os.open(req["out"], os.O_WRONLY | os.O_TRUNC)
        except OSError as exc:
            reply({"error": str(exc)})
            continue
        began = time.perf_counter()
        pid = start(req["argv"], req["cwd"], req["env"], out)
        os.close(out)
        reply({"pid": pid})
        _, status, usage = os.wait4(pid, 0)
        wall = time.perf_counter() - began
        cpu = usage.ru_utime + usage.ru_stime
        reply({"status": status, "wall_s": wall, "maxrss_kib": usage.ru_maxrss, "cpu_s": cpu})


if __name__ == "__main__":
    main()
