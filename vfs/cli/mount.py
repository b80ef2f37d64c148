"""``dvfs mount``, ``umount``, ``mounts``, ``snapshot`` and ``cache clean``."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from vfs import settings
from vfs.backends import parse_url
from vfs.cli.options import (
    AS_JSON,
    DEFAULT_CACHE_SIZE,
    PARAM,
    PARAMS_FILE,
    DvfsCommand,
    DvfsGroup,
    FreeText,
    OnOff,
    Seconds,
    Token,
    once,
    paragraphs,
)
from vfs.cli.output import count, emit_json, human, quoted, warn
from vfs.errors import UsageError
from vfs.model import params as version_params
from vfs.quoting import escape_text, quote_name, shell_word


@click.command(cls=DvfsCommand, name="mount")
@click.argument("args", nargs=-1, required=True, metavar="[SOURCE] MNT")
@click.option("--branch", help="Branch shown at MNT (default: the current one, or main).")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Where fetched chunks and metadata go (default: under ~/.cache/dvfs).",
)  # fmt: skip
@click.option(
    "--cache-size", default=DEFAULT_CACHE_SIZE, show_default=True,
    help="Most disk the chunk cache may use (K, M, G, T); 0 keeps no chunks on disk.",
)  # fmt: skip
@click.option("--foreground", is_flag=True, help="Run the daemon here, logging to stderr.")
@click.option(
    "--refresh", type=Seconds(min=0.1), metavar="SECONDS",
    help="Look for new versions this often (versions pushed by others appear).",
)  # fmt: skip
@click.option(
    "--timeout", type=Seconds(min=0.1), default=30.0, show_default=True,
    metavar="SECONDS", help="Fail a read (EIO) whose data does not arrive in this time.",
)  # fmt: skip
@click.option("--endpoint-url", type=Token(), help="S3 endpoint (MinIO, SeaweedFS, Ceph, R2...).")
@click.option("--allow-other", is_flag=True, help="Let other users read the mount.")
@click.option("--debug", is_flag=True, help="Log every fetch.")
@click.option(
    "--writable/--read-only", cls=OnOff, default=None,
    help="MNT as a writable working tree (default: writable for a repository, "
    "read-only for a URL).",
)  # fmt: skip
@click.option(
    "--overlay", type=click.Choice(["auto", "kernel", "daemon"]), default="auto",
    show_default=True,
    help="What makes MNT writable: the kernel's overlayfs (fast, root only) or the "
    "daemon's own; auto takes the kernel's where it can.",
)  # fmt: skip
@AS_JSON
def mount_cmd(
    args: tuple[str, ...], branch: str | None, cache_dir: Path | None, cache_size: str,
    foreground: bool, refresh: float | None, timeout: float, endpoint_url: str | None,
    allow_other: bool, debug: bool, writable: bool | None, overlay: str, as_json: bool,
) -> None:  # fmt: skip
    """Mount every version of SOURCE at MNT, and its branch as a working tree.

    SOURCE is a repository (default: the current one) or a remote URL
    (s3://bucket/prefix, file:///path). MNT shows the branch head as a writable
    working tree (`dvfs snapshot MNT` records it); MNT/.versions holds v1..vN,
    latest, tags/, branches/ and ids/, read-only.

    \b
    Examples:
      dvfs mount . /mnt/data
      dvfs mount s3://bucket/cats /mnt/cats --cache-size 50G --refresh 60
    """
    from vfs.mount import launch, mounts

    if len(args) > 2:
        raise UsageError("give at most two arguments: [SOURCE] MNT")
    source = launch.resolve_source(args[0] if len(args) == 2 else None)
    if endpoint_url is not None and (
        source.kind == "repository" or parse_url(source.location).path is not None
    ):  # (a repository's remotes keep their own endpoints)
        raise UsageError(
            f"--endpoint-url goes with an s3:// SOURCE, and {quoted(source.location)} is a "
            f"{'repository' if source.kind == 'repository' else 'directory'}: leave it out"
        )
    mountpoint = mounts.check_mountpoint(args[-1])
    if source.kind == "repository":
        root = os.path.realpath(source.location)
        point = os.path.realpath(mountpoint)
        if point == root or point.startswith(root.rstrip("/") + "/"):
            # `dvfs add` there would copy the repository into itself, and status and
            # checkout would walk a tree served by the repository they change
            raise UsageError(
                f"{quoted(str(mountpoint))} is inside the repository {quoted(root)}: mount "
                "it on a directory outside its working tree"
            )
    mounts.check_fuse()
    settings.check_all()  # the daemon inherits the environment: fail here, not there
    size = launch.parse_size(cache_size)
    # locked here and handed to the daemon: two mounts never take the same cache
    chosen, lock_fd = launch.claim_cache(
        source, cache_dir.absolute() if cache_dir else None, mountpoint
    )
    daemon_args = launch.DaemonArgs(
        source, mountpoint, chosen, size, branch, refresh, timeout, endpoint_url,
        allow_other, debug, source.kind == "repository" if writable is None else writable,
        lock_fd, overlay,
    )  # fmt: skip
    if foreground:
        sys.stdout.flush()
        sys.stderr.flush()
        os.set_inheritable(lock_fd, True)
        os.execve(sys.executable, daemon_args.argv(), daemon_args.environment())
    pid, shown = launch.start(daemon_args)
    if as_json:
        emit_json(
            {"mountpoint": str(mountpoint), "source": source.location, "branch": shown,
             "pid": pid, "log": str(daemon_args.log_path)}
        )  # fmt: skip
        return
    click.echo(
        f"mounted {quoted(source.location)} (branch {quoted(shown)}) at "
        f"{quoted(str(mountpoint))}; daemon pid {pid}, log {quoted(str(daemon_args.log_path))}"
    )


@click.command(cls=DvfsCommand, name="umount")
@click.argument("mountpoint", metavar="MNT")
@click.option("--force", "-f", is_flag=True, help="Unmount even while files are open.")
def umount_cmd(mountpoint: str, force: bool) -> None:
    """Unmount MNT and stop its daemon (also clears a mount whose daemon died).

    \b
    Examples:
      dvfs umount /mnt/data
      dvfs umount --force /mnt/data
    """
    from vfs.mount import mounts

    mounts.unmount(mountpoint, force=force)
    click.echo(f"unmounted {quoted(str(mounts.mount_path(mountpoint)))}")


@click.command(cls=DvfsCommand, name="mounts")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def mounts_cmd(as_json: bool) -> None:
    """List active dvfs mounts: source, branch, cache use and daemon pid.

    \b
    Examples:
      dvfs mounts
      dvfs mounts --json
    """
    from vfs.mount import mounts

    rows = mounts.statuses()
    if as_json:
        emit_json([r.as_json() for r in rows])
        return
    if not rows:
        click.echo("no dvfs mounts")
    for r in rows:
        cache = f"{human(r.cache_used)} of {human(r.cache_size)}" if r.cache_size else "-"
        mnt = quoted(str(r.mountpoint))
        line = (
            f"{mnt}  {quoted(r.source)}  branch {quoted(r.branch)}  cache {cache}  "
            f"pid {r.pid or '-'}"
        )
        if r.state == "dead":
            line += f"  (daemon died: run `dvfs umount {shell_word(str(r.mountpoint))}`)"
        elif r.state == "stopped":
            line += (
                f"  (daemon stopped: `kill -CONT {r.pid}` resumes it; `dvfs umount --force "
                f"{shell_word(str(r.mountpoint))}` unmounts it)"
            )
        elif r.state == "unrecorded":
            line += "  (not started here: no record)"
        click.echo(line)


@click.command(cls=DvfsCommand)
@click.argument("mountpoint", metavar="MNT")
@click.option(
    "-m", "--message", required=True, multiple=True, callback=paragraphs, type=FreeText(),
    help="What this version is (several: paragraphs of it).",
)  # fmt: skip
@PARAM
@PARAMS_FILE
@click.option(
    "--tag", multiple=True, callback=once, help="Also tag the new version (`dvfs tag` adds more)."
)  # fmt: skip
@click.option("--branch", "new_branch", metavar="NEW", help="Record it on a new branch.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def snapshot(
    mountpoint: str, message: str, params: tuple[str, ...], params_file: Path | None,
    tag: str | None, new_branch: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Record the working tree of the mount at MNT as a new version.

    \b
    Examples:
      dvfs snapshot /mnt/data -m "run 7" --param lr=3e-4 --tag run7
      dvfs snapshot /mnt/data -m "an idea" --branch idea
    """
    from vfs.mount import control

    version_params.message(message)
    recorded = version_params.collect(params, params_file)
    got = control.snapshot(mountpoint, message, recorded, tag, new_branch)
    for w in got.get("warnings") or []:
        warn(str(w))
    if as_json:
        got.pop("ok", None)
        emit_json(got)
        return
    tagged = f" (tag {quote_name(tag)})" if tag else ""
    click.echo(
        f"{escape_text(str(got['version']))} {escape_text(str(got['id'])[:10])}{tagged} on "
        f"{quoted(got['branch'])}: {count(got['files'], 'file')}, {human(got['bytes'])} "
        f"({got['hashed']} hashed) - {escape_text(message)}"
    )
    skipped = got.get("skipped") or 0
    if skipped:
        named = got.get("skipped_paths") or []
        shown = ", ".join(quoted(p) for p in named)
        more = f" and {skipped - len(named)} more" if skipped > len(named) else ""
        warn(
            f"skipped {count(skipped, 'special file')} (FIFOs, sockets, devices: not "
            f"versionable, kept in MNT): {shown}{more}"
        )


@click.group(cls=DvfsGroup, name="cache")
def cache_group() -> None:
    """Free the disk that mounts' caches use (never a working tree's changes).

    \b
    Examples:
      dvfs cache clean
      dvfs cache clean --all
    """


@cache_group.command(name="clean")
@click.option("--all", "everything", is_flag=True, help="Also remove metadata and logs.")
@click.option(
    "--cache-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Clean this cache directory (default: every one under ~/.cache/dvfs).",
)  # fmt: skip
@AS_JSON
def cache_clean(everything: bool, cache_dir: Path | None, as_json: bool) -> None:
    """Delete the cached data of mounts that are not running.

    Cached chunks are deleted (they are fetched again when read); with --all, the
    versions and trees fetched for URL mounts and the logs too, and the copies of
    remotes' versions that `dvfs ui URL` and vfs.Repo.remote(URL) keep. A cache that
    a running mount, dashboard or program uses is left alone: stop it first.
    Working trees of mounts are never in a cache, and are never touched.

    \b
    Examples:
      dvfs cache clean
      dvfs cache clean --all --cache-dir /scratch/dvfs-cache
    """
    from vfs.mount import launch

    dirs = [cache_dir.absolute()] if cache_dir else launch.cache_dirs(mirrors=everything)
    done = launch.clean_caches(dirs, everything)
    if as_json:
        emit_json(
            {
                "freed": done.freed,
                "cleaned": [str(d) for d in done.cleaned],
                "in_use": [{"cache_dir": str(d), "by": who} for d, who in done.in_use],
                "kept_work": [str(d) for d in done.kept_work],
            }
        )
        return
    for d, who in done.in_use:
        warn(f"{quoted(str(d))} is in use by {who}: unmount it to clean it")
    for d in done.kept_work:
        warn(f"{quoted(str(d))} holds a working tree of an older dvfs: kept (mount it to move it)")
    n = len(done.cleaned)
    click.echo(f"freed {human(done.freed)} in {n} cache director{'y' if n == 1 else 'ies'}")
