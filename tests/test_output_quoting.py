"""Hostile names and text never forge a line or reach the terminal raw (issue: terminal injection).

A file named ``b\\n  deleted: IMPORTANT.csv`` once printed as two lines of ``dvfs
status``. Every human-readable output now quotes such names the way git does
(``"d/b\\n  deleted: IMPORTANT.csv"``) and escapes control characters in messages,
authors, errors and warnings, while ordinary UTF-8 names print as they are; JSON
output stays exact (valid UTF-8; a byte that is not UTF-8 appears as ``\\udcXX``).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path

import yaml

from tests.support.cli import (
    Repo,
    Result,
    assert_error,
    assert_ok,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    warnings_of,
)
from tests.support.data import rand
from tests.support.mount import commit, dvfs, mounted, write
from tests.test_faults import flip_back, flip_byte_of
from vfs.progress_bar import TerminalProgress
from vfs.repo.repository import Repository

FORGED = "deleted: IMPORTANT.csv"
FORGE = b"d/b\n  " + FORGED.encode()
ESCAPE = b"d/\x1b[2J\x1b[31mred"
C1 = "d/csi\u009b2J".encode()
NOT_UTF8 = b"d/\xff\xfe"
PLAIN = "d/é日本".encode()
LINK_TARGET = b"tar\nget\x1b[0m"
MESSAGE = "m1\n   v7  forged\x1b[0m"
AUTHOR = "evil\n   v9  0000000000  2020-01-01T00:00:00Z  forged"
TERMINAL_UNSAFE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def assert_safe(r: Result) -> str:
    """stdout and stderr are valid UTF-8, forge no line and hold nothing a terminal acts on."""
    text = r.raw.decode("utf-8") + r.err  # strict: a raw 0xFF would fail here
    assert TERMINAL_UNSAFE.search(text) is None, str(r)
    for line in text.splitlines():
        assert not line.lstrip().startswith(FORGED), str(r)
        assert not line.lstrip().startswith(("v7  forged", "v9  ")), str(r)
    return r.raw.decode("utf-8")


def q(name: bytes) -> str:
    """How the test expects a hostile name to be shown."""
    return {
        FORGE: '"d/b\\n  deleted: IMPORTANT.csv"',
        ESCAPE: '"d/\\033[2J\\033[31mred"',
        C1: '"d/csi\\302\\2332J"',
        NOT_UTF8: '"d/\\377\\376"',
        PLAIN: "d/é日本",
    }[name]


HOSTILE = (FORGE, ESCAPE, C1, NOT_UTF8)
NO_AUTHOR = {"DVFS_AUTHOR": ""}  # unset: the config's author is recorded


def build(repo: Repo) -> None:
    """v1: every hostile name, a plain UTF-8 one, a link with a hostile target."""
    root = os.fsencode(repo.root)
    os.makedirs(os.path.join(root, b"d"))
    for i, name in enumerate((*HOSTILE, PLAIN)):
        with open(os.path.join(root, name), "wb") as f:
            f.write(rand(50 * 1024, seed=100 + i))  # incompressible: found again by bytes
    os.symlink(LINK_TARGET, os.path.join(root, b"d/lnk"))
    # An author from the config (as one from a remote's record would be), not checked.
    (repo.root / ".dvfs" / "config").write_text(json.dumps({"author": AUTHOR}))


def test_hostile_names_in_every_human_output(repo: Repo) -> None:
    build(repo)
    root = os.fsencode(repo.root)
    os.mkfifo(os.path.join(root, b"d/fifo\n  " + FORGED.encode()))  # skipped, with a warning
    r = repo.ok("add", "d")
    assert_safe(r)
    assert warnings_of(r) == [
        'dvfs: warning: skipping "d/fifo\\n  deleted: IMPORTANT.csv": not a regular file, '
        "directory or link"
    ]
    st = assert_safe(repo.ok("status"))
    for name in HOSTILE:
        assert f"  added:    {q(name)} (50.0 KiB)" in st.splitlines()
    assert f"  added:    {q(PLAIN)} (50.0 KiB)" in st.splitlines()
    out = assert_safe(repo.ok("commit", "-m", MESSAGE, env=NO_AUTHOR))
    assert out.strip().endswith("- m1\\n   v7  forged\\033[0m")

    ls = assert_safe(repo.ok("ls", "HEAD:d")).splitlines()
    for name in (*HOSTILE, PLAIN):
        shown = q(name).replace("d/", "", 1)
        assert any(line.endswith(f"  {shown}") for line in ls), (shown, ls)
    assert any(line.endswith('  lnk -> "tar\\nget\\033[0m"') for line in ls), ls

    log = assert_safe(repo.ok("log")).splitlines()
    assert len(log) == 2
    assert log[0].endswith("  evil\\n   v9  0000000000  2020-01-01T00:00:00Z  forged  (main)")
    assert log[1] == "       m1\\n   v7  forged\\033[0m"

    show = assert_safe(repo.ok("show", "--files")).splitlines()
    assert "    m1\\n   v7  forged\\033[0m" in show
    for name in (*HOSTILE, PLAIN):
        assert any(line.endswith(f"  {q(name)}") for line in show), (name, show)
    assert any(line.endswith('  d/lnk -> "tar\\nget\\033[0m"') for line in show), show

    # v2: a hostile file modified, one deleted, a hostile untracked one.
    with open(os.path.join(root, FORGE), "ab") as f:
        f.write(b"more")
    os.unlink(os.path.join(root, ESCAPE))
    with open(os.path.join(root, b"d/new\r  " + FORGED.encode()), "wb") as f:
        f.write(b"new")
    work = assert_safe(repo.ok("status")).splitlines()
    assert f"  modified: {q(FORGE)}" in work
    assert f"  deleted:  {q(ESCAPE)}" in work
    assert '  "d/new\\r  deleted: IMPORTANT.csv"' in work
    diff = assert_safe(repo.ok("diff")).splitlines()
    assert any(line.startswith(f"modified: {q(FORGE)} (") for line in diff), diff
    assert f"removed:  {q(ESCAPE)} (50.0 KiB)" in diff
    repo.ok("add", "d")
    assert_safe(repo.ok("commit", "-m", "two"))
    diff = assert_safe(repo.ok("diff", "v1", "v2")).splitlines()
    assert f"removed:  {q(ESCAPE)} (50.0 KiB)" in diff
    assert_safe(repo.ok("diff", "v1", "v2", "--stat"))

    # The version record holds the exact bytes: a checkout writes them back.
    assert_safe(repo.ok("checkout", "v1"))
    assert os.path.exists(os.path.join(root, ESCAPE))
    assert os.readlink(os.path.join(root, b"d/lnk")) == LINK_TARGET
    assert_safe(repo.ok("switch", "main"))

    # Errors and fsck name hostile paths on one line each.
    line = assert_error(repo.run("cat", "v2:d/x\n  " + FORGED), code=2)
    assert "d/x\\n  deleted: IMPORTANT.csv" in line
    assert_safe(repo.run("cat", "v2:d/x\n  " + FORGED))
    where = flip_byte_of(repo.root / ".dvfs" / "objects", rand(50 * 1024, seed=101))  # ESCAPE
    r = repo.run("fsck")
    assert r.code == 1
    problems = [ln for ln in assert_safe(r).splitlines() if ln.startswith("problem:")]
    assert len(problems) == 1 and "v1:d/\\033[2J\\033[31mred" in problems[0], str(r)
    os.unlink(os.path.join(root, C1))
    with open(os.path.join(root, FORGE), "wb") as f:
        f.write(b"changed again")
    r = repo.run("checkout", "--force", "v1")
    assert_safe(r)
    line = assert_error(r, code=1)
    assert q(ESCAPE) in line
    flip_back(*where)
    repo.ok("checkout", "--force", "v2")
    repo.fsck_clean()


def test_json_and_yaml_hold_the_exact_names(repo: Repo) -> None:
    build(repo)
    repo.ok("add", "d")
    repo.ok("commit", "-m", MESSAGE, env=NO_AUTHOR)
    names = {*HOSTILE, PLAIN, b"d/lnk"}

    def exact(r: Result) -> object:
        assert_safe(r)
        return json.loads(r.raw.decode("utf-8"))

    ls = exact(repo.ok("ls", "HEAD:d", "--json"))
    assert isinstance(ls, list)
    assert {b"d/" + os.fsencode(e["name"]) for e in ls} == names
    assert [os.fsencode(e["target"]) for e in ls if e["type"] == "symlink"] == [LINK_TARGET]
    show = exact(repo.ok("show", "--format", "json"))
    assert isinstance(show, dict)
    assert {os.fsencode(p) for p in show["files"]} == names
    assert show["message"] == MESSAGE and show["author"] == AUTHOR
    log = exact(repo.ok("log", "--json"))
    assert isinstance(log, list) and log[0]["message"] == MESSAGE
    diff = exact(repo.ok("diff", "HEAD", "--json"))
    assert isinstance(diff, dict) and diff["changes"] == []
    for name in HOSTILE:
        with open(os.path.join(os.fsencode(repo.root), name), "ab") as f:
            f.write(b"x")
    status = exact(repo.ok("status", "--json"))
    assert isinstance(status, dict)
    assert {os.fsencode(p) for p in status["modified"]} == set(HOSTILE)
    y = yaml.safe_load(repo.ok("show", "--format", "yaml").raw.decode("utf-8"))
    assert {os.fsencode(p) for p in y["files"]} == names
    assert y["message"] == MESSAGE
    repo.fsck_clean()


def test_clone_fetch_and_pull_of_hostile_names(repo: Repo, tmp_path: Path) -> None:
    build(repo)
    repo.ok("add", "d")
    repo.ok("commit", "-m", MESSAGE, env=NO_AUTHOR)
    remote = tmp_path / 'remote "é"'  # quoted when shown: it holds '"'
    assert_safe(repo.ok("remote", "add", "origin", str(remote)))
    assert_safe(repo.ok("remote", "list"))
    assert_safe(repo.ok("push"))
    r = assert_ok(run(tmp_path, "clone", str(remote), "copy", "--no-checkout"))
    assert_safe(r)
    assert '/remote \\"é\\"" into ' in r.out
    copy = Repo(tmp_path / "copy")
    assert_safe(copy.ok("fetch"))
    assert_safe(copy.ok("pull", "v1", "d"))
    assert_safe(copy.ok("log"))
    for name in (*HOSTILE, PLAIN):
        assert os.path.exists(os.path.join(os.fsencode(copy.root), name))
    copy.fsck_clean()


def test_mount_status_quotes_the_daemon_s_names(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a")
    commit(repo, "base")
    home = tmp_path / "home"
    with mounted(str(root), tmp_path / "mnt", home) as m:
        data = os.fsencode(m.path / "data")
        for name in (FORGE, ESCAPE, NOT_UTF8):
            with open(os.path.join(data, name[2:]), "wb") as f:
                f.write(b"x")
        r = assert_ok(dvfs(root, home, "status", str(m.path)))
        lines = assert_safe(r).splitlines()
        for name in (FORGE, ESCAPE, NOT_UTF8):
            assert f"  added:    {q(name).replace('d/', 'data/', 1)}" in lines, lines
        got = json.loads(assert_ok(dvfs(root, home, "status", str(m.path), "--json")).raw)
        assert {os.fsencode(p) for p in got["added"]} == {
            b"data/" + n[2:] for n in (FORGE, ESCAPE, NOT_UTF8)
        }


def test_progress_labels_are_plain_text() -> None:
    buf = io.StringIO()
    bar = TerminalProgress(file=buf, show_after=0)
    bar.start("hashing d/\x1b[2J[bold red]x[/bold red]\n", 2, 100)
    bar.advance(1, 50)
    bar.done()
    drawn = buf.getvalue()
    assert "\x1b[2J" not in drawn
    assert "hashing d/\\033[2J[bold red]x[/bold red]\\n" in drawn


def test_an_unknown_revision_is_named_as_every_other_name_is(repo: Repo) -> None:
    """It said "unknown revision 'nope'" (Python's repr: a name with a quote or a
    backslash came out in a third form); it is quoted as names are everywhere else."""
    repo.write("f", "1")
    repo.ok("add", "f")
    repo.commit("one")
    assert_error(repo.run("show", "nope"), "unknown revision nope; run `dvfs log`", code=2)
    assert_error(repo.run("show", "it's"), "unknown revision it's; run", code=2)
    assert_error(repo.run("show", "a\nb"), 'unknown revision "a\\nb"; run', code=2)
    repo.fsck_clean()


def test_a_path_argument_refused_is_named_as_every_other_name_is(repo: Repo) -> None:
    """`dvfs cat 'v1:../x'` said "paths in 'v1:../x' cannot contain '..'" and `cat v1:f f`
    "not both ('v1:f' and 'f')": Python's repr, not the product's quoting."""
    repo.write("f", "1")
    repo.ok("add", "f")
    repo.commit("one")
    assert_error(repo.run("cat", "v1:../x"), "paths in v1:../x cannot contain '..'", code=2)
    assert_error(repo.run("cat", "v1:\x1b/../x"), 'paths in "v1:\\033/../x" cannot', code=2)
    assert_error(repo.run("cat", "v1:f", "f"), "not both (v1:f and f)", code=2)
    repo.fsck_clean()


def test_a_value_that_does_not_parse_is_named_as_every_other_name_is(repo: Repo) -> None:
    """`--since 'x'`, `store.max-size 'lots'`: the value typed came back in Python's
    repr, where every other message shows what was given as vfs.quoting quotes it."""
    since = repo.run("audit", "--since", "x\x1by")
    assert_error(since, '--since "x\\033y" is not a date: write YYYY-MM-DD', code=2)
    size = repo.run("config", "store.max-size", "lots")
    assert_error(size, "store.max-size lots is not a size: write e.g. 50G", code=2)
    repo.fsck_clean()


def test_an_unknown_remote_or_setting_is_named_as_every_other_name_is(repo: Repo) -> None:
    """It said "unknown remote 'nope'" and "unknown setting 'k'", Python's repr, where every
    other message quotes names as vfs.quoting does."""
    assert_error(repo.run("remote", "remove", "nope"), "error: unknown remote nope")
    assert_error(repo.run("remote", "remove", "a\tb"), 'error: unknown remote "a\\tb"')
    assert_error(repo.run("config", "it's"), "unknown setting it's (known: store.max-size)")
    repo.fsck_clean()


def test_a_remote_url_refused_is_named_as_every_other_name_is(repo: Repo) -> None:
    """It said "bad remote URL 's3:/b'" and "written './s3:/b'", Python's repr; the
    hint now works as typed in a shell."""
    r = repo.run("remote", "add", "x", "s3:/my data")
    assert_error(r, "bad remote URL s3:/my data: s3 needs '://'", "written './s3:/my data'")
    assert_error(repo.run("remote", "add", "x", "ftp://h"), "unsupported remote URL ftp://h: use")
    repo.fsck_clean()


def test_a_damaged_head_is_shown_as_names_are(repo: Repo) -> None:
    """ "HEAD is unreadable ('...')" showed HEAD's line in Python's repr."""
    repo.write("a", "1")
    repo.ok("add", "a")
    v1 = repo.commit("v1")
    (repo.root / ".dvfs" / "HEAD").write_text(f"{v1} a\x1bb\n")
    assert_error(repo.run("status"), f'HEAD is unreadable ("{v1} a\\033b"): run `dvfs fsck')
    repo.ok("fsck", "--repair")
    repo.fsck_clean()


def test_mv_rm_add_and_restore_quote_the_names_they_refuse(repo: Repo) -> None:
    """`dvfs mv`, `rm`, `add` and `restore` said `d/\\377\\376 is already there` and
    `d/n\\not is not tracked`: a hostile name escaped but not quoted, where every other
    output quotes it (a name holding `\\n` or a space could not be told from the
    message around it). Each now names it as status does."""
    root = os.fsencode(repo.root)
    commit_files(repo, {"d/keep": "k"}, "one")
    for i, name in enumerate(HOSTILE):
        with open(os.path.join(root, name), "wb") as f:
            f.write(b"x%d" % i)
    repo.ok("add", "d")
    repo.commit("two")
    arg = {name: os.fsdecode(name) for name in HOSTILE}
    missing = "d/n\not"
    shown = '"d/n\\not"'

    def refused(*args: str) -> str:
        r = repo.run(*args)
        assert_safe(r)
        return assert_error(r)

    assert f"{q(FORGE)} already exists (tracked)" in refused("mv", arg[ESCAPE], arg[FORGE])
    assert f"{q(NOT_UTF8)} is already there" in refused("mv", arg[NOT_UTF8], arg[NOT_UTF8])
    assert f"{shown} does not exist and is not tracked" in refused("mv", missing, "d/x")
    assert f"{shown} is not tracked: nothing was removed" in refused("rm", missing)
    assert f"{shown} does not exist and is not tracked" in refused("add", missing)
    assert f"{shown} is not tracked: nothing was restored" in refused("restore", missing)
    assert '" leading" is not tracked: nothing was removed' in refused("rm", " leading")
    with open(os.path.join(root, C1), "ab") as f:
        f.write(b"changed")
    assert f"uncommitted changes in {q(C1)}:" in refused("rm", arg[C1])
    os.mkfifo(os.path.join(root, b"d/f\xff"))
    assert '"d/f\\377" is a FIFO and is not tracked' in refused("add", "d/f\udcff")
    r = repo.ok("add", "d")
    assert warnings_of(r) == [
        'dvfs: warning: skipping "d/f\\377": not a regular file, directory or link'
    ]
    repo.fsck_clean()


def test_ignore_files_and_stage_paths_refused_are_named_as_every_other_name_is(
    repo: Repo,
) -> None:
    """A .dvfsignore in a directory named with an escape was warned about as
    `d\\033x/.dvfsignore is a symbolic link`, and `dvfs run -o '../o<newline>x'` said
    `out ../o\\nx is outside the working tree`: escaped, not quoted as names are."""
    d = repo.root / "d\x1bx"
    d.mkdir()
    (d / ".dvfsignore").symlink_to("/etc/passwd")
    (d / "a").write_text("a")
    r = repo.ok("add", ".")
    assert_safe(r)
    assert warnings_of(r) == [
        'dvfs: warning: "d\\033x/.dvfsignore" is a symbolic link, which dvfs does not '
        "follow: not used"
    ]
    r = repo.run("run", "-n", "s", "-o", "../o\nx", "--", "true")
    assert_safe(r)
    assert_error(r, 'out "../o\\nx" is outside the working tree')
    repo.fsck_clean()
