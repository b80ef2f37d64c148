"""What another local user, a stale record or a hostile version can do to a mount: nothing.

Each test reproduces an attack on the mount and the commands around it and checks
that it is refused: credentials in URLs and logs, a stale mount record naming an
unrelated process, the chunk cache read by another user, reserved names written
into the working tree or served by a version, and trees too deep to walk
recursively. Mounts are real (``tests.mount_support``); "another user" is a child
process that drops to uid 65534 before it acts.
"""

from __future__ import annotations

from pathlib import Path

from daemon.logs import redact
from tests.cli_support import assert_error, assert_ok, run
from vfs.repo import Repository

SECRET = "hunter2-secret-value"


# ---------------------------------------------------------------------------- secrets


def test_credentials_in_urls_are_refused_and_never_printed(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    with_password = f"http://user:{SECRET}@127.0.0.1:9"
    (tmp_path / "mnt").mkdir()
    attempts = [
        ("remote", "add", "o", "s3://bucket/p", "--endpoint-url", with_password),
        ("remote", "add", "o", f"s3://user:{SECRET}@bucket/p"),
        ("remote", "add", "o", f"file://user:{SECRET}@/srv/remote"),
        ("clone", "s3://bucket/p", str(tmp_path / "c"), "--endpoint-url", with_password),
        ("mount", "s3://bucket/p", str(tmp_path / "mnt"), "--endpoint-url", with_password),
        ("mount", f"s3://user:{SECRET}@bucket/p", str(tmp_path / "mnt")),
    ]
    for args in attempts:
        r = run(root, *args, env={"XDG_CACHE_HOME": str(tmp_path / "home")})
        line = assert_error(r, "carries a user name or password", "AWS_ACCESS_KEY_ID")
        assert "***@" in line
        assert SECRET not in r.out + r.err
    assert repo.config() == {}  # nothing was stored
    assert not (tmp_path / "c").exists()
    assert not list((tmp_path / "mnt").iterdir())

    # a remote stored by an older version: listed redacted, refused when used
    repo.save_config({"remotes": {"old": {"url": "s3://bucket/p", "endpoint_url": with_password}}})
    listed = assert_ok(run(root, "remote", "list"))
    assert "http://***@127.0.0.1:9" in listed.out
    as_json = assert_ok(run(root, "remote", "list", "--json"))
    assert as_json.json()[0]["endpoint_url"] == "http://***@127.0.0.1:9"
    used = run(root, "fetch", env={"AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s" * 20})
    assert_error(used, "carries a user name or password")
    for r in (listed, as_json, used):
        assert SECRET not in r.out + r.err


def test_log_lines_are_redacted() -> None:
    """The second guard: whatever a library logs, no credential reaches the log."""
    line = (
        "Sending http request: <AWSPreparedRequest method=GET, url=http://u:pw@h:9/b/k, "
        "headers={'X-Amz-Date': b'20260101T000000Z', 'Authorization': b'AWS4-HMAC-SHA256 "
        "Credential=AKIDEXAMPLE/20260101/us-east-1/s3/aws4_request, SignedHeaders=host, "
        "Signature=0123abcd', 'X-Amz-Security-Token': b'tokentoken'}> "
        "https://b.s3/k?X-Amz-Credential=AKIDEXAMPLE&X-Amz-Signature=feedbeef&x=1 "
        f"secret {SECRET}"
    )
    out = redact(line, [SECRET])
    for leaked in ("AKIDEXAMPLE", "0123abcd", "tokentoken", "feedbeef", ":pw@", SECRET):
        assert leaked not in out
    assert "X-Amz-Date': b'20260101T000000Z'" in out and "&x=1" in out
    assert redact("read b'data/a.csv': 4096 bytes at 0", [SECRET]) == (
        "read b'data/a.csv': 4096 bytes at 0"
    )
