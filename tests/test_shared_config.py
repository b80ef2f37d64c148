"""Settings shared through git (``dvfs.toml``), and a git clone's first ``dvfs pull``.

The set-up a teammate gets is exercised with real git and a real S3 server: a
repository whose remote was added inside a git work tree is committed and pushed,
``git clone`` makes a checkout with no ``.dvfs``, and ``dvfs pull`` there must
restore what ``dvfs.lock`` names in one step. ``dvfs.toml`` arrives in someone
else's commit, so the parser is fed hostile files too: each is refused with one line
naming the file, and nothing is made.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support.cli import (
    Repo,
    RepoFactory,
    assert_error,
    assert_ok,
    commit_files,
    fsck_clean,
    git,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.s3server import S3Server
from vfs.errors import FormatError, UsageError
from vfs.repo.refs import check_ref_name
from vfs.repo.shared import MAX_FILE, MAX_REMOTES, SharedConfig, load, parse, render

# ------------------------------------------------------------------------- the file itself


NAMES = st.from_regex(r"[a-z][a-z0-9_-]{0,8}(\.[a-z0-9]{1,4})?(/[a-z0-9]{1,4})?", fullmatch=True)


def valid_name(name: str) -> bool:
    try:
        check_ref_name(name, "remote")
    except UsageError:
        return False
    return True


VALUES = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\x7f"),
    min_size=1,
    max_size=40,
)


@given(
    st.dictionaries(
        NAMES.filter(valid_name),
        st.fixed_dictionaries(
            {
                "url": st.from_regex(
                    r"s3://[a-z0-9]{3,10}(/[a-z0-9_-][a-z0-9._-]{0,7}){0,3}", fullmatch=True
                )
            },
            optional={"endpoint_url": VALUES, "region": VALUES, "profile": VALUES},
        ),
        max_size=4,
    ).filter(lambda rs: not any(o.startswith(f"{n}/") for n in rs for o in rs)),
    st.booleans(),
)
def test_what_is_written_reads_back_equal(remotes: dict[str, dict[str, str]], dflt: bool) -> None:
    endpoints = [r.get("endpoint_url", "") for r in remotes.values()]
    if any("@" in e for e in endpoints):  # would read as user:password@: refused, see below
        return
    cfg = SharedConfig(remotes, next(iter(remotes)) if dflt and remotes else None)
    assert parse(render(cfg)) == cfg


HOSTILE = {
    "url with a password": (
        '[remotes.origin]\nurl = "s3://AKIA1:s3cret@bucket/x"\n',
        "user name or password",
    ),
    "endpoint with a password": (
        '[remotes.origin]\nurl = "s3://bucket/x"\nendpoint_url = "http://u:p@minio:9000"\n',
        "user name or password",
    ),
    "a secret key": (
        '[remotes.origin]\nurl = "s3://bucket/x"\nsecret_access_key = "abc"\n',
        "credential",
    ),
    "a token at the top": ('session_token = "abc"\n', "credential"),
    "an unknown setting": ('jobs = 8\n[remotes.origin]\nurl = "s3://bucket/x"\n', "unknown"),
    "an unknown remote setting": (
        '[remotes.origin]\nurl = "s3://bucket/x"\nhook = "rm -rf /"\n',
        "unknown setting remotes.origin.hook",
    ),
    "no url": ('[remotes.origin]\nregion = "eu"\n', "has no url"),
    "a url of another scheme": ('[remotes.origin]\nurl = "http://evil/x"\n', "unsupported"),
    "a number for a url": ("[remotes.origin]\nurl = 5\n", "must be a string"),
    "a control character": ('[remotes.origin]\nurl = "s3://bucket/x\\u001b[2J"\n', "control"),
    "a bad remote name": ('[remotes."../x"]\nurl = "s3://bucket/x"\n', "not a valid remote"),
    "a version-like name": ('[remotes.v1]\nurl = "s3://bucket/x"\n', "cannot be a remote"),
    "a bad default": ('default_remote = "a b"\n', "not a valid remote"),
    "a name inside another": (
        '[remotes.team]\nurl = "s3://bkt/t"\n[remotes."team/a"]\nurl = "s3://bkt/a"\n',
        "remotes team and team/a would share refs/remotes/team/",
    ),
    "remotes not a table": ('remotes = "x"\n', "must be a table"),
    "not TOML": ("[remotes.origin\n", "not valid TOML"),
    "arrays nested deep": ("x = " + "[" * 20000 + "]" * 20000 + "\n", "nested too deep"),
    "tables nested deep": ("x = " + "{a=" * 5000 + "1" + "}" * 5000 + "\n", "nested too deep"),
    "too many remotes": (
        "".join(f'[remotes.r{i}]\nurl = "s3://bucket/{i}"\n' for i in range(MAX_REMOTES + 1)),
        "more than",
    ),
    "a huge value": (f'[remotes.origin]\nurl = "s3://bucket/{"x" * 5000}"\n', "1 to 2048"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_a_hostile_file_is_refused_with_a_reason(case: str) -> None:
    text, reason = HOSTILE[case]
    with pytest.raises(FormatError) as caught:
        parse(text, "x/dvfs.toml")
    assert reason in str(caught.value)
    assert str(caught.value).startswith("x/dvfs.toml")
    assert "s3cret" not in str(caught.value)


def test_only_a_small_regular_utf8_file_is_read(tmp_path: Path) -> None:
    assert load(tmp_path) == SharedConfig()
    target = tmp_path / "elsewhere.toml"
    target.write_text('[remotes.origin]\nurl = "s3://bucket/x"\n')
    (tmp_path / "dvfs.toml").symlink_to(target)
    with pytest.raises(FormatError, match="symbolic link"):
        load(tmp_path)
    (tmp_path / "dvfs.toml").unlink()
    os.mkfifo(tmp_path / "dvfs.toml")  # never waited on
    with pytest.raises(FormatError, match="not a plain file"):
        load(tmp_path)
    (tmp_path / "dvfs.toml").unlink()
    (tmp_path / "dvfs.toml").write_text("#" * (MAX_FILE + 1))
    with pytest.raises(FormatError, match="more than"):
        load(tmp_path)
    (tmp_path / "dvfs.toml").write_bytes(b'default_remote = "\xff"\n')
    with pytest.raises(FormatError, match="not UTF-8"):
        load(tmp_path)


# ------------------------------------------------------------------------- remote commands


def shared_file(repo: Repo) -> dict[str, object]:
    return tomllib.loads((repo.root / "dvfs.toml").read_text())


def test_remotes_go_to_dvfs_toml_in_git_and_local_ones_override_them(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo(git_repo=True)
    r = repo.ok("remote", "add", "origin", "s3://team-bucket/cats", "--endpoint-url", "http://m:9")
    assert "dvfs.toml" in r.out
    assert shared_file(repo) == {
        "default_remote": "origin",
        "remotes": {"origin": {"url": "s3://team-bucket/cats", "endpoint_url": "http://m:9"}},
    }
    assert not (repo.root / ".dvfs" / "config").exists()
    repo.fail("remote", "add", "origin", "s3://other/x", fragments=("already exists",))

    # A directory remote is kept relative to the root when given relative.
    (repo.root / "sub").mkdir()
    r = assert_ok(run(repo.root / "sub", "remote", "add", "nas", "../../store"))
    assert shared_file(repo)["remotes"]["nas"] == {"url": "../store"}  # type: ignore[index]

    # This clone's own settings: a mirror for origin, and another default.
    for both in (("--shared", "--local"), ("--local", "--shared")):  # the last one won
        repo.fail("remote", "add", "origin", str(tmp_path / "mirror"), *both, code=2,
                  fragments=("--shared and --local are mutually exclusive",))  # fmt: skip
        repo.fail("remote", "remove", "origin", *both, code=2, fragments=("exclusive",))
    repo.ok("remote", "add", "origin", str(tmp_path / "mirror"), "--local")
    repo.ok("remote", "default", "nas", "--local")
    listed = {r["name"]: r for r in repo.json("remote", "list", "--json")}
    assert listed["origin"]["url"] == str(tmp_path / "mirror")
    assert listed["origin"]["scope"] == "local"
    assert listed["nas"] == {
        "name": "nas", "url": str(tmp_path / "store"), "endpoint_url": None, "region": None,
        "profile": None, "default": True, "scope": "shared",
    }  # fmt: skip
    text = repo.ok("remote", "list").out
    assert "[this clone only]" in text and "[dvfs.toml]" in text

    # Dropping the override brings the shared origin back; removing it drops it for all.
    r = repo.ok("remote", "remove", "origin", "--local")
    assert r.out.strip() == "removed remote origin from .dvfs/config"
    listed = {r["name"]: r for r in repo.json("remote", "list", "--json")}
    assert listed["origin"]["url"] == "s3://team-bucket/cats"
    r = repo.ok("remote", "remove", "origin")
    assert r.out.strip() == "removed remote origin from dvfs.toml"
    assert "origin" not in shared_file(repo)["remotes"]  # type: ignore[operator]
    assert "default_remote" not in shared_file(repo)
    repo.fail("remote", "remove", "origin", fragments=("unknown remote",))
    repo.fsck_clean()


def test_a_rename_changes_dvfs_toml_and_this_clones_override_together(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    repo = make_repo(git_repo=True)
    repo.ok("remote", "add", "origin", "s3://team-bucket/cats")
    repo.ok("remote", "add", "origin", str(tmp_path / "mirror"), "--local")
    r = repo.ok("remote", "rename", "origin", "up")
    assert r.out.strip() == "renamed remote origin to up in .dvfs/config and dvfs.toml"
    assert shared_file(repo) == {
        "default_remote": "up", "remotes": {"up": {"url": "s3://team-bucket/cats"}},
    }  # fmt: skip
    listed = {r["name"]: r for r in repo.json("remote", "list", "--json")}
    assert list(listed) == ["up"]
    assert (listed["up"]["url"], listed["up"]["scope"]) == (str(tmp_path / "mirror"), "local")
    repo.fsck_clean()


def test_a_shared_default_must_be_a_shared_remote(make_repo: RepoFactory, tmp_path: Path) -> None:
    """In a git work tree `remote default` writes dvfs.toml; a remote of this clone only
    there would name, for every teammate, a default they do not have."""
    repo = make_repo("repo", git_repo=True)
    repo.ok("remote", "add", "team", str(tmp_path / "team"))
    repo.ok("remote", "add", "other", str(tmp_path / "other"))
    repo.ok("remote", "add", "mine", str(tmp_path / "mine"), "--local")
    before = (repo.root / "dvfs.toml").read_text()
    repo.fail("remote", "default", "mine", fragments=(
        "remote mine is set in .dvfs/config only", "`dvfs remote default mine --local`",
        "nothing was changed"))  # fmt: skip
    assert (repo.root / "dvfs.toml").read_text() == before
    assert "this clone only" in repo.ok("remote", "default", "mine", "--local").out
    assert [r["name"] for r in repo.json("remote", "list", "--json") if r["default"]] == ["mine"]
    out = repo.ok("remote", "default", "other").out  # dvfs.toml's; this clone's still wins
    assert "this clone's own default, mine (.dvfs/config), still wins here" in out
    assert "`dvfs remote default other --local` changes it" in out
    assert 'default_remote = "other"' in (repo.root / "dvfs.toml").read_text()
    assert [r["name"] for r in repo.json("remote", "list", "--json") if r["default"]] == ["mine"]
    repo.fsck_clean()


def test_outside_git_remotes_stay_local(repo: Repo, tmp_path: Path) -> None:
    r = repo.ok("remote", "add", "origin", str(tmp_path / "store"))
    assert ".dvfs/config" in r.out
    assert not (repo.root / "dvfs.toml").exists()
    repo.ok("remote", "add", "team", "s3://bucket/x", "--shared")
    assert shared_file(repo)["remotes"] == {"team": {"url": "s3://bucket/x"}}
    assert json.loads((repo.root / ".dvfs" / "config").read_text())["default_remote"] == "origin"
    repo.fsck_clean()


def test_a_quoted_tilde_in_a_directory_remote_is_the_home(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    # `remote add bk '~/bk'` was recorded as <cwd>/~/bk (a directory named ~ made
    # beside the repository by the first push), while the URL read elsewhere took ~
    # as the home: both now take it as the home, as a shell would have expanded it
    home = tmp_path / "home"
    home.mkdir()
    repo = make_repo(git_repo=True)
    commit_files(repo, {"d/x": b"1"}, "one")
    env = {"HOME": str(home)}
    repo.ok("remote", "add", "bk", "~/bk", "--local", env=env)
    repo.ok("remote", "add", "team", "~/team", "--shared", env=env)
    assert shared_file(repo)["remotes"] == {"team": {"url": str(home / "team")}}
    listed = {r["name"]: r["url"] for r in repo.json("remote", "list", "--json")}
    assert listed == {"bk": str(home / "bk"), "team": str(home / "team")}
    repo.ok("push", "--remote", "bk", env=env)
    assert (home / "bk" / "refs" / "heads" / "main").is_file()
    assert not (repo.root.parent / "~").exists() and not (repo.root / "~").exists()
    # a dvfs.toml written by hand with ~ means the home too, not <root>/~
    (repo.root / "dvfs.toml").write_text('[remotes.team]\nurl = "~/team"\n')
    repo.ok("push", "--remote", "team", env=env)
    assert (home / "team" / "refs" / "heads" / "main").is_file()
    repo.fsck_clean()


def test_a_relative_directory_remote_is_taken_from_where_it_is_typed(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`remote add team ../../../store` typed in sub/deep is the directory that path
    names from there (git would take `../y` from the top of the work tree), kept in
    dvfs.toml relative to the root: `../store`. The line saying what was added
    named it so, `added remote team -> ../store`, which read from sub/deep is a
    directory inside the repository. It names the directory, and how it is kept."""
    repo = make_repo(git_repo=True)
    commit_files(repo, {"d/x": b"1"}, "one")
    deep = repo.root / "sub" / "deep"
    deep.mkdir(parents=True)
    store = tmp_path / "store"
    out = assert_ok(run(deep, "remote", "add", "team", "../../../store")).out
    assert out.startswith(
        f"added remote team -> {store} (in dvfs.toml as ../store, from the repository root: "
    ), out
    assert shared_file(repo)["remotes"] == {"team": {"url": "../store"}}
    out = assert_ok(run(deep, "remote", "add", "mine", "../../../mine", "--local")).out
    assert out.startswith(f"added remote mine -> {tmp_path / 'mine'} (in .dvfs/config: "), out
    listed = {r["name"]: r["url"] for r in repo.json("remote", "list", "--json")}
    assert listed == {"team": str(store), "mine": str(tmp_path / "mine")}, listed
    assert_ok(run(deep, "push", "--remote", "team"))
    assert (store / "refs" / "heads" / "main").is_file()
    assert not (repo.root / "store").exists() and not (repo.root / "sub" / "store").exists()
    repo.fsck_clean()


def test_an_endpoint_without_its_scheme_is_refused_when_added(repo: Repo) -> None:
    # `--endpoint-url minio:9000` was recorded, and every fetch or push then failed
    # with "Invalid endpoint" and no word of what to change
    for bad in ("minio:9000", "notaurl", "ftp://minio:9000", "http://"):
        repo.fail("remote", "add", "o", "s3://bucket/p", "--endpoint-url", bad, code=2,
                  fragments=("bad endpoint URL", "http://host:port"))  # fmt: skip
    assert repo.json("remote", "list", "--json") == []
    repo.ok("remote", "add", "o", "s3://bucket/p", "--endpoint-url", "http://minio:9000")
    repo.fsck_clean()


def test_an_endpoint_with_a_bad_port_or_a_query_is_refused_and_never_an_internal_error(
    repo: Repo,
) -> None:
    # `--endpoint-url http://minio:99999` (or :abc, or a ?query) was added, and every
    # fetch, push or clone then ended in "internal error (EndpointResolutionError ...)";
    # one in dvfs.toml, or in AWS_ENDPOINT_URL, did the same
    env = {"AWS_ACCESS_KEY_ID": "K", "AWS_SECRET_ACCESS_KEY": "S", "AWS_DEFAULT_REGION": "x"}
    bad = ("http://minio:99999", "http://minio:abc", "http://minio:9000/?a=b", "http://m:0")
    for endpoint in bad:
        repo.fail("remote", "add", "o", "s3://bucket/p", "--endpoint-url", endpoint, code=2,
                  fragments=("bad endpoint URL", "1 to 65535", "nothing was added"))  # fmt: skip
    assert repo.json("remote", "list", "--json") == []
    (repo.root / "dvfs.toml").write_text(
        f'[remotes.o]\nurl = "s3://bucket/p"\nendpoint_url = "{bad[0]}"\n'
    )
    commit_files(repo, {"d/x": b"x"}, "x")
    for args in (("fetch",), ("push",)):
        repo.fail(*args, fragments=("bad endpoint URL", bad[0]), code=2)
    up = repo.root.parent
    for where, more in (("--endpoint-url", bad[2]), (None, bad[1])):
        args = ("clone", "s3://bucket/p", "c", *((where, more) if where else ()))
        extra = {} if where else {"AWS_ENDPOINT_URL": more}
        assert_error(run(up, *args, env={**env, **extra}), "bad endpoint URL", more, code=2)
        assert not (up / "c").exists()
    repo.fsck_clean()


def test_a_bad_dvfs_toml_stops_remote_commands_only(repo: Repo) -> None:
    repo.write("data/a", "a")
    repo.ok("add", "data")
    (repo.root / "dvfs.toml").write_text('[remotes.origin]\nurl = "s3://K:S@bucket/x"\n')
    line = repo.fail("remote", "list", fragments=("dvfs.toml", "user name or password"))
    assert "K:S" not in line
    repo.fail("push", fragments=("dvfs.toml",))
    repo.ok("commit", "-m", "one")  # the file is not read
    repo.ok("status")
    (repo.root / "dvfs.toml").write_text("x = " + "[" * 20000 + "]" * 20000 + "\n")
    repo.fail("remote", "list", fragments=("dvfs.toml", "nested too deep"))
    assert repo.ok("status").out.startswith("On branch main (v1)")  # (it reads the names)
    repo.ok("branch", "-a")
    repo.fsck_clean()


def test_a_directory_remote_inside_the_repository_is_refused(repo: Repo) -> None:
    # `remote add origin .dvfs` took the repository for its own remote ("Up to date
    # with origin/main"), and a dvfs.toml from git naming ./data had pushes write the
    # remote's packs and refs into the working tree, for `dvfs add .` to take in
    repo.write("data/a", "a")
    repo.ok("add", "data")
    repo.ok("commit", "-m", "one")
    for url in (".dvfs", ".", "data/remote", f"file://{repo.root / 'x'}"):
        # (it said to run `dvfs remote remove NAME` first, for a remote never added)
        err = repo.fail("remote", "add", "origin", url, code=2,
                        fragments=("inside the repository",))  # fmt: skip
        assert err.endswith("name a directory outside it instead; nothing was added"), err
    (repo.root / "dvfs.toml").write_text('[remotes.origin]\nurl = "data/remote"\n')
    for args in (("push",), ("fetch",), ("pull",)):
        repo.fail(*args, code=2, fragments=("remote origin is the directory", "data/remote"))
    # `remote list` listed it as any other, saying nothing of it
    for extra in ((), ("--json",)):
        r = repo.ok("remote", "list", *extra)
        assert "data/remote" in r.out, r.out
        assert r.err == (
            f"dvfs: warning: remote origin is the directory {repo.root / 'data/remote'}, "
            f"inside the repository {os.path.realpath(repo.root)}: its files would mix with the "
            "repository's: name a directory outside it (`dvfs remote remove NAME`, then "
            "`dvfs remote add NAME DIR`): push, fetch and pull refuse it as it is\n"
        ), r.err
    assert sorted(p.name for p in (repo.root / "data").iterdir()) == ["a"]
    repo.fsck_clean()


# ------------------------------------------------------------------------- a teammate's clone


def team_repo(make_repo: RepoFactory, url: str, *extra: str) -> Repo:
    """A git work tree with data at v1 and v2, the remote shared, pushed and committed."""
    repo = make_repo("origin-work", git_repo=True)
    (repo.root / "train.py").write_text("print('training')\n")
    repo.ok("remote", "add", "origin", url, *extra)
    repo.write("data/labels.csv", "id,label\n1,cat\n")
    repo.write("data/images/a.jpg", os.urandom(40_000))
    repo.ok("add", "data")
    repo.ok("commit", "-m", "one")
    repo.write("data/labels.csv", "id,label\n1,cat\n2,dog\n")
    repo.ok("add", "data")
    repo.ok("commit", "-m", "two")
    repo.ok("push")
    git(repo.root, "add", "-A")
    git(repo.root, "commit", "-q", "-m", "code and data v2")
    return repo


def is_clean(repo: Repo) -> bool:
    """``dvfs status`` lists nothing to commit and no untracked file."""
    st = repo.status()
    return not any(st[k] for k in ("staged", "modified", "deleted", "untracked", "unreadable"))


def git_clone(src: Repo, dst: Path) -> Repo:
    git(dst.parent, "clone", "-q", str(src.root), dst.name)
    assert not (dst / ".dvfs").exists()
    return Repo(dst)


def test_git_clone_then_pull_restores_the_data_in_one_step(
    make_repo: RepoFactory, s3_env: S3Server, tmp_path: Path
) -> None:
    url = f"s3://{s3_env.make_prefix()}/datasets/cats"
    src = team_repo(make_repo, url, "--endpoint-url", s3_env.endpoint)
    mate = git_clone(src, tmp_path / "mate")
    assert sorted(p.name for p in mate.root.iterdir()) == [
        ".git", ".gitignore", "dvfs.lock", "dvfs.toml", "train.py",
    ]  # fmt: skip
    mate.fail("status", fragments=("dvfs.toml", "run `dvfs pull`"))

    r = mate.ok("pull")
    assert "set up the store from dvfs.toml (remote origin)" in r.out
    assert "v2 (on branch main)" in r.out
    assert mate.read("data/labels.csv") == src.read("data/labels.csv")
    assert mate.read("data/images/a.jpg") == src.read("data/images/a.jpg")
    assert is_clean(mate)
    assert mate.head_id() == src.head_id()
    assert git(mate.root, "status", "--porcelain") == ""  # the data stays out of git
    mate.ok("pull")  # an ordinary pull from now on
    fsck_clean(mate.root)


def test_the_version_dvfs_lock_names_is_restored_not_the_tip(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    src = team_repo(make_repo, str(tmp_path / "store"))
    pinned = src.head_id()
    src.write("data/labels.csv", "id,label\n3,bird\n")
    src.ok("add", "data")
    src.ok("commit", "-m", "three")  # pushed, but the git commit still pins v2
    src.ok("push")
    git(src.root, "checkout", "-q", "--", "dvfs.lock")

    mate = git_clone(src, tmp_path / "mate")
    r = mate.ok("pull", "--json").json()
    assert r["set_up"] == {"remote": "origin", "branch": "main", "id": pinned, "from_lock": True}
    assert mate.read("data/labels.csv") == b"id,label\n1,cat\n2,dog\n"
    assert mate.head_id() == pinned
    assert "detached" in mate.ok("status").out
    assert mate.json("branch", "--json")[0]["id"] == src.head_id()  # main is the remote's
    fsck_clean(mate.root)


def test_an_interrupted_first_pull_is_finished_by_the_next(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    src = team_repo(make_repo, str(tmp_path / "store"))
    src.write("data/labels.csv", "id,label\n3,bird\n")
    src.ok("add", "data")
    src.ok("commit", "-m", "three, not pushed yet")
    git(src.root, "commit", "-q", "-am", "lock at v3")

    mate = git_clone(src, tmp_path / "mate")
    mate.fail("pull", fragments=("dvfs.lock names main v3", "does not have", "dvfs push"))
    assert not (mate.root / "data").exists()
    assert mate.status()["head"] is None  # a store, nothing checked out, nothing lost
    src.ok("push")
    r = mate.ok("pull")
    assert "v3 (on branch main)" in r.out
    assert mate.read("data/labels.csv") == b"id,label\n3,bird\n"
    assert is_clean(mate)
    fsck_clean(mate.root)


def test_a_clone_with_a_hostile_dvfs_toml_makes_nothing(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    src = team_repo(make_repo, str(tmp_path / "store"))
    (src.root / "dvfs.toml").write_text(
        '[remotes.origin]\nurl = "s3://AKIAX:verysecret@bucket/x"\n'
    )
    git(src.root, "commit", "-q", "-am", "a teammate's bad idea")
    mate = git_clone(src, tmp_path / "mate")
    line = assert_error(run(mate.root, "pull"), "dvfs.toml", "user name or password")
    assert "verysecret" not in line
    assert not (mate.root / ".dvfs").exists()
    (mate.root / "dvfs.toml").unlink()
    good = tmp_path / "good.toml"
    good.write_text(f'[remotes.origin]\nurl = "{tmp_path / "store"}"\n')
    (mate.root / "dvfs.toml").symlink_to(good)
    assert_error(run(mate.root, "pull"), "dvfs.toml", "symbolic link")
    assert not (mate.root / ".dvfs").exists()
