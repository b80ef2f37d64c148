"""``dvfs ui``: the web dashboard (the optional extra ``dvfs[ui]``)."""

from __future__ import annotations

from pathlib import Path

import click

from vfs.cli.options import DvfsCommand, Token
from vfs.cli.output import warn
from vfs.errors import UsageError


@click.command(cls=DvfsCommand, name="ui")
@click.argument("source", default=".", metavar="[SOURCE]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=0, show_default=True,
    help="Port to listen on (0: a free one).",
)  # fmt: skip
@click.option("--open", "open_browser", is_flag=True, help="Open the page in a browser.")
@click.option("--token", type=Token(), help="Every request must carry T (needed off loopback).")
@click.option(
    "--endpoint-url", metavar="URL", help="The S3 endpoint of an s3:// SOURCE (e.g. MinIO)."
)
@click.option(
    "--refresh", type=click.FloatRange(0), metavar="SECONDS",
    help="For a remote SOURCE only: how old the view may get before the versions page "
    "looks for new pushes  [default: 30].",
)  # fmt: skip
@click.option(
    "--allow-write", is_flag=True,
    help="Let the pages tag versions, delete branches and snapshot mounts (each an "
    "audited dvfs command).",
)  # fmt: skip
def ui_cmd(
    source: str, host: str, port: int, open_browser: bool, token: str | None,
    endpoint_url: str | None, refresh: float | None, allow_write: bool,
) -> None:  # fmt: skip
    """Serve a web dashboard of the repository at SOURCE (default: here), read-only
    unless --allow-write. SOURCE may be a remote (s3://BUCKET/PREFIX, file:///PATH or
    a remote's directory): its versions are fetched, never its data until a page
    shows a file, and the view is read-only; the versions page looks for new pushes
    when the view is older than --refresh seconds.

    Versions, a version's files with previews, diffs (rows of tables too), lineage,
    experiments, the store and the repository's mounts. It listens on 127.0.0.1
    unless --host says otherwise, which needs --token; it prints the URL to open
    and runs until Ctrl-C.

    \b
    Examples:
      dvfs ui
      dvfs ui ~/data/project --port 8700 --open
      dvfs ui --host 0.0.0.0 --token "$(openssl rand -hex 24)"
      dvfs ui --allow-write
      dvfs ui s3://bucket/project --endpoint-url http://127.0.0.1:9000
    """
    from vfs.ui.binds import check_bind

    check_bind(host, token)  # (before the server loads and the source opens)
    try:  # the server is an optional dependency: only `dvfs ui` loads it
        from vfs.ui import serve
        from vfs.ui import source as sources
    except ModuleNotFoundError as exc:
        if exc.name not in ("starlette", "uvicorn", "anyio"):
            raise
        raise UsageError("dvfs ui needs its web server: pip install 'dvfs[ui]'") from None
    if allow_write and ("://" in source or sources.is_remote_dir(Path(source))):
        raise UsageError(f"--allow-write: {source} is a remote, and its view is read-only")
    shown = sources.open_source(source, endpoint_url, refresh=refresh)
    for line in shown.warnings:
        warn(line)
    serve.serve(shown, host, port, token, open_browser, click.echo, allow_write)
