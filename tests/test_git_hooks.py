"""``dvfs install``: git hooks that keep the data in step with the code, with real git.

git runs the hooks itself here (``git checkout``, ``git pull``, ``git push``), finding
``dvfs`` on PATH as a user's shell would. The pre-push question is answered through a
pseudo-terminal that is the controlling terminal of ``git push``, as a user at a
terminal would answer it; without one it must never wait.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.cli import (
    BASE_ENV,
    GIT_ENV,
    Repo,
    RepoFactory,
    commit_files,
    fsck_clean,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
)
from tests.support.loopback import free_ports
from tests.support.s3server import use_aws_keys

BIN = str(Path(sys.executable).parent)  # where this environment's `dvfs` is
HOOKS = ["post-checkout", "post-commit", "post-merge", "post-rewrite", "pre-push",
         "reference-transaction"]  # fmt: skip


def git_env(with_dvfs: bool = True) -> dict[str, str]:
    path = os.environ.get("PATH", "/usr/bin:/bin")
    if with_dvfs:
        path = f"{BIN}:{path}"
    else:
        path = ":".join(p for p in path.split(":") if p and not Path(p, "dvfs").exists())
    env = {**os.environ, **GIT_ENV, **BASE_ENV, "PATH": path}
    return {k: v for k, v in env.items() if v != ""}


def sh(cwd: Path, *args: str, with_dvfs: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command (git, or dvfs found on PATH) as a user's shell would."""
    return subprocess.run(
        list(args), cwd=cwd, env=git_env(with_dvfs), capture_output=True, text=True,
        stdin=subprocess.DEVNULL, timeout=120, check=False,
    )  # fmt: skip


def ok(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = sh(cwd, *args)
    assert r.returncode == 0, f"{args}: {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    return r


def hooks_dir(repo: Repo) -> Path:
    return repo.root / ".git" / "hooks"


def own_files(repo: Repo) -> dict[str, str]:
    return {p.name: p.read_text() for p in hooks_dir(repo).iterdir() if "sample" not in p.name}


def make_data_repo(root: Path) -> None:
    """In ``root``: a git work tree ``work`` with code, data at v1 and v2 (a git commit
    each), a dvfs remote ``store`` and a git remote ``code.git`` (a bare repository),
    everything pushed. The data is added and committed in this process: the set-up, not
    what the hooks are tested on."""
    repo = init_repo(root / "work", git_repo=True)
    ok(root, "git", "init", "-q", "--bare", "-b", "master", "code.git")
    ok(repo.root, "git", "remote", "add", "origin", str(root / "code.git"))
    repo.ok("remote", "add", "origin", str(root / "store"))
    (repo.root / "train.py").write_text("print('train')\n")
    for n in (1, 2):
        commit_files(repo, {"data/labels.csv": f"id,label\n{n},cat\n"}, f"data {n}")
        ok(repo.root, "git", "add", "-A")
        ok(repo.root, "git", "commit", "-q", "-m", f"code with data v{n}")
    repo.ok("push")
    ok(repo.root, "git", "push", "-q", "-u", "origin", "master")


@pytest.fixture(name="made", scope="module")
def made_fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``make_data_repo``'s three folders, made once for the module where each test's copy
    goes (``data_repo``), and moved aside: (that place, where they are kept). The code
    that git tracks names the dvfs remote by its path, so each copy is at the same one."""
    root = tmp_path_factory.getbasetemp() / "git-hooks-data"
    root.mkdir()
    make_data_repo(root)
    kept = tmp_path_factory.mktemp("made")
    root.rename(kept / "root")
    return root, kept / "root"


def data_repo(made: tuple[Path, Path]) -> Repo:
    """A copy of the work tree and both remotes ``make_data_repo`` made, in place of the
    copy an earlier test of the module used (tests of a module run one after another);
    the work tree's repository. Its remotes are in the folder that holds it."""
    root, kept = made
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(kept, root, symlinks=True)
    return Repo(root / "work")


def test_install_chains_existing_hooks_and_uninstall_puts_them_back(
    make_repo: RepoFactory,
) -> None:
    repo = make_repo(git_repo=True)
    mine = '#!/bin/sh\necho "my hook: $*" >> "$(git rev-parse --git-dir)/ran"\n'
    (hooks_dir(repo) / "post-checkout").write_text(mine)
    (hooks_dir(repo) / "post-checkout").chmod(0o755)
    before = own_files(repo)

    r = repo.ok("install")
    assert (
        "installed the git hooks post-checkout, post-commit, post-merge, post-rewrite, pre-push, "
        "reference-transaction in " in r.out
    )
    assert "kept the hooks that were there, run first: post-checkout" in r.out
    after = own_files(repo)
    assert after["post-checkout.dvfs-chained"] == mine
    for name in HOOKS:
        assert os.access(hooks_dir(repo) / name, os.X_OK)
    assert "already installed" in repo.ok("install").out
    assert own_files(repo) == after  # idempotent

    # The chained hook still runs, with git's arguments, before dvfs's part.
    ok(repo.root, "git", "commit", "-q", "--allow-empty", "-m", "one")
    ok(repo.root, "git", "checkout", "-q", "-b", "other")
    assert (repo.root / ".git" / "ran").read_text().startswith("my hook: ")

    # A hook written after install, by someone else, is left alone by uninstall.
    (hooks_dir(repo) / "post-merge").write_text("#!/bin/sh\nexit 0\n")
    r = repo.ok("install", "--uninstall")
    assert "put back the hooks it had chained: post-checkout" in r.out
    assert "post-merge was left alone" in r.err
    assert own_files(repo) == {**before, "post-merge": "#!/bin/sh\nexit 0\n"}
    assert "no git hook" in repo.ok("install", "--uninstall").out
    repo.fsck_clean()


def test_install_needs_git(repo: Repo) -> None:
    repo.fail("install", fragments=("not inside a git work tree",))


def test_install_where_git_hooks_is_a_file_says_so(make_repo: RepoFactory) -> None:
    """``.git/hooks`` a file (left by some tool) ended in "File exists": one line now
    names it as not a folder and says what to do; the file is left as it was."""
    repo = make_repo(git_repo=True)
    shutil.rmtree(hooks_dir(repo))
    hooks_dir(repo).write_text("not hooks\n")
    repo.fail("install", fragments=("is not a folder", "core.hooksPath", "dvfs install"))
    assert hooks_dir(repo).read_text() == "not hooks\n"
    repo.fsck_clean()


def test_hooks_turned_off_with_core_hooks_path_are_never_moved_away(
    make_repo: RepoFactory,
) -> None:
    """core.hooksPath=/dev/null turns git's hooks off: `dvfs install` said to move
    /dev/null away, and `dvfs install --uninstall` failed on "Not a directory"."""
    repo = make_repo(git_repo=True)
    ok(repo.root, "git", "config", "core.hooksPath", os.devnull)
    for extra in ((), ("--shared",)):
        line = repo.fail("install", *extra, fragments=(
            "core.hooksPath sends git to /dev/null for its hooks, which is not a folder",
            "set core.hooksPath to a folder, or unset it"))  # fmt: skip
        assert "move it away" not in line
    assert "no git hook of this repository to remove" in repo.ok("install", "--uninstall").out
    assert os.path.exists(os.devnull) and not os.path.isdir(os.devnull)
    repo.fsck_clean()


def test_git_checkout_brings_the_data_dvfs_lock_names(made: tuple[Path, Path]) -> None:
    repo = data_repo(made)
    repo.ok("install")
    r = ok(repo.root, "git", "checkout", "-q", "HEAD~1")
    assert "dvfs.lock changed" in r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n1,cat\n"
    assert repo.status()["head"] == "v1"
    ok(repo.root, "git", "checkout", "-q", "master")
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"

    # A git checkout that leaves dvfs.lock as it is leaves the data alone (an edit stays).
    repo.write("data/labels.csv", "edited\n")
    r = ok(repo.root, "git", "checkout", "-q", "-b", "feature")
    assert "dvfs" not in r.stderr
    ok(repo.root, "git", "checkout", "-q", "--", "train.py")  # a file checkout: nothing
    assert repo.read("data/labels.csv") == b"edited\n"

    # Uncommitted data in the way: the hook says so, and git reports the failure.
    ok(repo.root, "git", "checkout", "-q", "master")
    r = sh(repo.root, "git", "checkout", "-q", "HEAD~1")
    assert r.returncode != 0 and "would overwrite uncommitted changes" in r.stderr
    assert repo.read("data/labels.csv") == b"edited\n"
    fsck_clean(repo.root)


def test_git_pull_brings_the_new_data_and_a_clone_without_store_is_told(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    repo = data_repo(made)
    ok(tmp_path, "git", "clone", "-q", str(repo.root.parent / "code.git"), "mate")
    mate = Repo(tmp_path / "mate")
    assert "installed" in mate.ok("install").out  # before it has a store: all the same
    r = ok(mate.root, "git", "checkout", "-q", "HEAD~1")
    assert "has no data yet: run `dvfs pull`" in r.stderr
    ok(mate.root, "git", "checkout", "-q", "master")
    mate.ok("pull")
    assert mate.read("data/labels.csv") == b"id,label\n2,cat\n"

    repo.write("data/labels.csv", "id,label\n3,cat\n")
    repo.ok("add", "data")
    repo.ok("commit", "-m", "data 3")
    repo.ok("push")
    ok(repo.root, "git", "commit", "-q", "-am", "code with data v3")
    ok(repo.root, "git", "push", "-q")
    r = ok(mate.root, "git", "pull", "-q")
    assert "dvfs.lock changed" in r.stderr
    assert mate.read("data/labels.csv") == b"id,label\n3,cat\n"
    fsck_clean(mate.root)


def new_data_commit(repo: Repo, n: int) -> None:
    commit_files(repo, {"data/labels.csv": f"id,label\n{n},dog\n"}, f"data {n}")
    ok(repo.root, "git", "commit", "-q", "-am", f"code with data v{n}")


def data_on_side_code_on_master(repo: Repo) -> None:
    """Branch ``side`` from here with a commit whose dvfs.lock names v3, and back on
    ``master`` (the data of v2) a commit of code only: two lines of history to rebase
    or merge."""
    ok(repo.root, "git", "checkout", "-q", "-b", "side")
    new_data_commit(repo, 3)  # side: dvfs.lock names v3
    ok(repo.root, "git", "checkout", "-q", "master")  # the data of v2
    (repo.root / "train.py").write_text("print('train better')\n")
    ok(repo.root, "git", "commit", "-q", "-am", "code only")


def remote_tip(repo: Repo) -> str:
    """The id of the dvfs remote's main branch."""
    tip: str = (Path(repo.root.parent, "store", "refs", "heads", "main")).read_text().strip()
    return tip


def push_at_a_terminal(cwd: Path, answer: bytes) -> tuple[int, str]:
    """``git push`` with a pseudo-terminal as its controlling terminal; ``answer`` is typed
    when the question appears. Returns git's exit status and what the terminal showed."""
    master, slave = os.openpty()
    name = os.ttyname(slave)
    proc = subprocess.Popen(
        ["git", "push", "-q"], cwd=cwd, env=git_env(), stdin=slave, stdout=slave, stderr=slave,
        start_new_session=True, preexec_fn=lambda: os.close(os.open(name, os.O_RDWR)),
    )  # fmt: skip
    os.close(slave)
    shown = b""
    asked = False
    deadline = time.monotonic() + 120
    poller = select.poll()  # (not select(): a descriptor past 1023 is out of its range)
    poller.register(master, select.POLLIN)
    while time.monotonic() < deadline:
        if poller.poll(200):
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the last writer closed the terminal
                break
            shown += chunk
            if not asked and b"Push it now? [Y/n]" in shown:
                os.write(master, answer)
                asked = True
        elif proc.poll() is not None:
            break
    code = proc.wait(timeout=60)
    os.close(master)
    return code, shown.decode(errors="replace")


def test_pre_push_offers_dvfs_push_at_a_terminal_and_never_waits_without_one(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    repo = data_repo(made)
    repo.ok("install")
    pushed = remote_tip(repo)

    # No terminal: one warning, and the git push goes on.
    new_data_commit(repo, 3)
    r = ok(repo.root, "git", "push", "-q")
    assert "data the dvfs remote does not have: main v3 on origin" in r.stderr
    assert "teammates' `dvfs pull` fails until `dvfs push`" in r.stderr
    assert remote_tip(repo) == pushed

    # At a terminal, declined: the same; accepted: dvfs push first, then git's.
    new_data_commit(repo, 4)
    code, shown = push_at_a_terminal(repo.root, b"n\n")
    assert code == 0 and "main v4 on origin. Push it now? [Y/n]" in shown, shown
    assert "pushed without it" in shown, shown
    assert remote_tip(repo) == pushed
    new_data_commit(repo, 5)
    code, shown = push_at_a_terminal(repo.root, b"\n")
    assert code == 0, shown
    assert "main v5 on origin. Push it now? [Y/n]" in shown, shown
    assert "main: v5 " in shown and "pushed 12 objects in 1 pack" in shown, shown
    assert remote_tip(repo) == repo.head_id(), shown
    git_tip = ok(
        tmp_path, "git", "--git-dir", str(repo.root.parent / "code.git"), "log", "-1", "--format=%s"
    )
    assert git_tip.stdout.strip() == "code with data v5"

    # Nothing missing: nothing asked.
    ok(repo.root, "git", "commit", "-q", "--allow-empty", "-m", "code only")
    r = ok(repo.root, "git", "push", "-q")
    assert "dvfs" not in r.stderr
    fsck_clean(repo.root)


def test_hooks_without_dvfs_on_path_never_break_git(made: tuple[Path, Path]) -> None:
    repo = data_repo(made)
    repo.ok("install")
    r = sh(repo.root, "git", "checkout", "-q", "HEAD~1", with_dvfs=False)
    assert r.returncode == 0, r.stderr
    assert "dvfs command is not on PATH" in r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"  # untouched
    fsck_clean(repo.root)


def test_a_password_in_the_git_remote_url_is_never_recorded(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    # git gives pre-push the remote's URL as written, password and all: a push the hook
    # makes records its command line in the audit log, here and on the dvfs remote.
    repo = data_repo(made)
    repo.ok("install")
    ssh = tmp_path / "fake-ssh"  # runs the command git asks for, here
    ssh.write_text('#!/bin/sh\nfor a; do last=$a; done\nexec sh -c "$last"\n')
    ssh.chmod(0o755)
    ok(repo.root, "git", "config", "core.sshCommand", str(ssh))
    url = f"ssh://alice:s3cr3t-token@localhost{repo.root.parent / 'code.git'}"
    ok(repo.root, "git", "remote", "set-url", "origin", url)
    new_data_commit(repo, 3)
    code, shown = push_at_a_terminal(repo.root, b"\n")
    assert code == 0 and "main: v3 " in shown, shown
    assert remote_tip(repo) == repo.head_id()
    records = [repo.root / ".dvfs" / "audit.log", *(repo.root.parent / "store" / "audit").iterdir()]
    assert any(b'"hook","pre-push"' in p.read_bytes() for p in records)  # what pushed
    for p in records:
        assert b"s3cr3t" not in p.read_bytes(), p
    fsck_clean(repo.root)


def test_a_dvfs_lock_that_is_not_text_never_stops_a_git_push(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    # The commit pushed may hold any dvfs.lock a teammate committed: bytes that are not
    # UTF-8, far more of them than a lock holds. It names no version: nothing to offer.
    repo = data_repo(made)
    repo.ok("install")
    for size in (300, 5 << 20):
        (repo.root / "dvfs.lock").write_bytes(bytes(range(128, 256)) * (size // 128))
        ok(repo.root, "git", "commit", "-q", "-am", f"a lock of {size} bytes")
        r = ok(repo.root, "git", "push", "-q")
        assert "dvfs" not in r.stderr, r.stderr
    git_tip = ok(
        tmp_path, "git", "--git-dir", str(repo.root.parent / "code.git"), "log", "-1", "--format=%s"
    )
    assert git_tip.stdout.strip() == f"a lock of {5 << 20} bytes"
    fsck_clean(repo.root)


def test_git_checkout_of_a_commit_without_dvfs_lock_leaves_the_data_and_succeeds(
    made: tuple[Path, Path],
) -> None:
    # A commit from before the data came into the project (git bisect, an old tag, a
    # branch that dropped the file) names no data: nothing to restore, nothing failed.
    repo = data_repo(made)
    repo.ok("install")
    ok(repo.root, "git", "checkout", "-q", "-b", "code-only")
    ok(repo.root, "git", "rm", "-q", "dvfs.lock")
    ok(repo.root, "git", "commit", "-q", "-m", "code without data")
    ok(repo.root, "git", "checkout", "-q", "master")
    r = ok(repo.root, "git", "checkout", "-q", "code-only")
    assert "names no data (it has no dvfs.lock): the data was left as it is" in r.stderr
    assert "error" not in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    assert repo.status()["head"] == "v2"
    r = ok(repo.root, "git", "checkout", "-q", "master")
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    fsck_clean(repo.root)


def test_status_says_how_to_get_a_version_dvfs_lock_names_that_is_not_here(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    # A teammate committed dvfs.lock for data they had not pushed: the first pull of a
    # clone stops, as does a git pull's; status names what is missing and what gets it.
    repo = data_repo(made)
    ok(tmp_path, "git", "clone", "-q", str(repo.root.parent / "code.git"), "mate")
    ok(tmp_path, "git", "clone", "-q", str(repo.root.parent / "code.git"), "late")
    mate, late = Repo(tmp_path / "mate"), Repo(tmp_path / "late")
    mate.ok("pull")
    new_data_commit(repo, 3)
    ok(repo.root, "git", "push", "-q")
    v3 = repo.head_id()[:10]
    ok(mate.root, "git", "pull", "-q")
    ok(late.root, "git", "pull", "-q")

    late.fail("pull", fragments=("which remote origin does not have",))
    said = late.ok("status").out
    assert (
        f"dvfs.lock (as git has it) names v3 {v3} of main, which this repository does not "
        "have (this working tree holds no version yet): run `dvfs pull` to get it; if no "
        "remote has it, whoever committed dvfs.lock must `dvfs push` it first." in said
    ), said
    said = mate.ok("status").out
    assert (
        f"names v3 {v3} of main, which this repository does not have (this working tree "
        "holds v2): run `dvfs fetch`, then `dvfs checkout --lock` to get it" in said
    ), said
    mate.fail("checkout", "--lock", fragments=("`dvfs fetch` gets it from a remote",))
    fsck_clean(late.root)
    fsck_clean(mate.root)

    repo.ok("push")  # what each says then works
    late.ok("pull")
    mate.ok("fetch")
    assert "holds v2: run `dvfs checkout --lock`" in mate.ok("status").out
    mate.ok("checkout", "--lock")
    for r in (late, mate):
        assert r.read("data/labels.csv") == b"id,label\n3,dog\n"
        assert "dvfs.lock" not in r.ok("status").out
        fsck_clean(r.root)


def test_a_dvfs_link_that_git_tracks_is_never_taken_for_the_store(
    made: tuple[Path, Path], make_repo: RepoFactory, tmp_path: Path
) -> None:
    # A teammate commits `.dvfs` as a link (`git add -f`) to another project's store: a
    # clone must not read, write or push that store as its own.
    repo = data_repo(made)  # the code, its data pushed
    other = make_repo("other")  # someone's other project, with data of its own
    commit_files(other, {"secret.csv": "s3cret\n"}, "private")
    before = sorted((p.relative_to(other.root), p.read_bytes())
                    for p in (other.root / ".dvfs").rglob("*") if p.is_file())  # fmt: skip
    ok(tmp_path, "git", "clone", "-q", str(repo.root.parent / "code.git"), "evil")
    (tmp_path / "evil" / ".dvfs").symlink_to(other.root / ".dvfs")
    ok(tmp_path / "evil", "git", "add", "-f", ".dvfs")
    ok(tmp_path / "evil", "git", "commit", "-q", "-m", "a store of our own")
    ok(tmp_path / "evil", "git", "push", "-q")

    ok(tmp_path, "git", "clone", "-q", str(repo.root.parent / "code.git"), "mate")
    mate = Repo(tmp_path / "mate")
    for args in (["pull"], ["status"], ["push"], ["log"]):
        mate.fail(*args, fragments=("is a symbolic link that git tracks", "git rm --cached"))
    after = sorted((p.relative_to(other.root), p.read_bytes())
                   for p in (other.root / ".dvfs").rglob("*") if p.is_file())  # fmt: skip
    assert after == before
    assert b"s3cret" not in b"".join(p.read_bytes() for p in (repo.root.parent / "store").rglob("*")
                                    if p.is_file())  # fmt: skip
    other.fsck_clean()


def test_a_branch_name_that_is_not_utf8_never_stops_a_git_push(made: tuple[Path, Path]) -> None:
    # git allows any bytes but a few in a ref name, and gives them to pre-push as they
    # are; Python reads standard input strictly under a UTF-8 locale (set here as such a
    # locale sets it: C.UTF-8 reads it leniently).
    repo = data_repo(made)
    repo.ok("install")
    name = os.fsdecode(b"caf\xe9")
    ok(repo.root, "git", "checkout", "-q", "-b", name)
    new_data_commit(repo, 3)
    r = subprocess.run(
        ["git", "push", "-q", "origin", name], cwd=repo.root, capture_output=True,
        env={**git_env(), "PYTHONIOENCODING": "utf-8:strict"}, stdin=subprocess.DEVNULL,
        timeout=120, check=False,
    )  # fmt: skip
    err = r.stderr.decode(errors="replace")
    assert r.returncode == 0, err
    assert "data the dvfs remote does not have: main v3 on origin" in err
    fsck_clean(repo.root)


def test_a_repository_folder_named_like_a_pattern_follows_its_own_dvfs_lock_alone(
    tmp_path: Path,
) -> None:
    # Two dvfs repositories in one git work tree, one in a folder named `d*`: its
    # dvfs.lock was asked of `git diff` as a pattern, which dz/dvfs.lock matches, so a
    # checkout changing dz's lock alone restored d*'s data too, and failed over an edit.
    top = tmp_path / "top"
    top.mkdir()
    ok(top, "git", "init", "-q")
    star, dz = init_repo(top / "d*"), init_repo(top / "dz")
    commit_files(star, {"a.csv": "star 1\n"}, "one")
    commit_files(dz, {"b.csv": "dz 1\n"}, "one")
    star.ok("install")
    dz.ok("install")
    ok(top, "git", "add", "-A")
    ok(top, "git", "commit", "-q", "-m", "both")
    commit_files(dz, {"b.csv": "dz 2\n"}, "two")
    ok(top, "git", "commit", "-q", "-am", "dz two")
    star.write("a.csv", "edited\n")  # work in progress in d*
    r = ok(top, "git", "checkout", "-q", "HEAD~1")
    assert "dvfs: dvfs.lock of dz changed: restoring the data it names" in r.stderr, r.stderr
    assert "d*" not in r.stderr, r.stderr
    assert star.read("a.csv") == b"edited\n" and dz.read("b.csv") == b"dz 1\n"
    # Uninstalled in one, the hooks stay for the other: it said "removed dvfs" from them.
    said = dz.ok("install", "--uninstall").out
    assert said.startswith("took this repository out of the git hooks post-checkout, "
                           "post-commit, post-merge, post-rewrite, pre-push, "
                           "reference-transaction in "), said  # fmt: skip
    assert "still run dvfs for the other repositories" in said and "removed" not in said
    assert "removed dvfs from the git hooks" in star.ok("install", "--uninstall").out
    assert not (top / ".git" / "hooks" / "pre-push").exists()
    fsck_clean(star.root)
    fsck_clean(dz.root)


def test_hooks_shared_by_every_repository_are_changed_only_when_asked(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    # core.hooksPath set for every repository (here in each one's config, as a global
    # setting gives it): `dvfs install --uninstall` in one repository removed the hooks
    # every repository ran, and `dvfs install` wrote them there without a word.
    shared = tmp_path / "my-hooks"
    one, two = make_repo("one", git_repo=True), make_repo("two", git_repo=True)
    for r in (one, two):
        ok(r.root, "git", "config", "core.hooksPath", str(shared))
    one.fail("install", fragments=("my-hooks (core.hooksPath), is outside this repository's "
                                   ".git", "dvfs install --shared"))  # fmt: skip
    assert not shared.exists()
    assert "installed the git hooks post-checkout" in one.ok("install", "--shared").out
    written = {p.name: p.read_text() for p in shared.iterdir()}
    assert sorted(written) == HOOKS
    assert "already installed" in two.ok("install").out  # (nothing to change)
    two.fail("install", "--uninstall", fragments=(
        "removing dvfs's hooks there removes them from each",
        "dvfs install --uninstall --shared"))  # fmt: skip
    assert {p.name: p.read_text() for p in shared.iterdir()} == written
    assert "removed dvfs from the git hooks" in two.ok("install", "--uninstall", "--shared").out
    assert list(shared.iterdir()) == []
    assert "no git hook" in one.ok("install", "--uninstall").out
    # The hooks of the repository's own .git need no flag, in a linked work tree too.
    ok(one.root, "git", "config", "--unset", "core.hooksPath")
    ok(one.root, "git", "commit", "-q", "--allow-empty", "-m", "one")
    ok(one.root, "git", "worktree", "add", "-q", str(tmp_path / "linked"))
    linked = init_repo(tmp_path / "linked")
    assert "installed" in linked.ok("install").out
    assert (one.root / ".git" / "hooks" / "pre-push").exists()
    assert "removed dvfs" in linked.ok("install", "--uninstall").out
    one.fsck_clean()
    two.fsck_clean()


def test_pre_push_never_pushes_a_branch_that_no_longer_holds_the_version_named(
    made: tuple[Path, Path],
) -> None:
    # The git commit's dvfs.lock names main v3; main was amended since, so v3 is on no
    # branch here. Asked and answered yes, the hook pushed main (the amended version)
    # and said nothing: the git commit went out naming data no remote has.
    repo = data_repo(made)
    repo.ok("install")
    pushed = remote_tip(repo)
    new_data_commit(repo, 3)
    v3 = repo.head_id()
    repo.ok("commit", "--amend", "-m", "data 3, said better")
    ok(repo.root, "git", "checkout", "-q", "--", "dvfs.lock")  # (the commit's, naming v3)
    code, shown = push_at_a_terminal(repo.root, b"\n")
    assert code == 0, shown
    assert "Push it now?" not in shown, shown
    said = " ".join(shown.split())  # (the terminal wraps nothing, but lines may break)
    assert f"name main v3 {v3[:10]}, which branch main here no longer holds" in said, said
    assert f"`dvfs branch NAME {v3[:10]}`, then `dvfs push NAME`, sends it" in said, said
    assert remote_tip(repo) == pushed  # the amended version was not pushed in its stead
    # What it says sends it.
    repo.ok("branch", "data-3", v3[:10])
    repo.ok("push", "data-3")
    ok(repo.root, "git", "commit", "-q", "--allow-empty", "-m", "code only")
    r = ok(repo.root, "git", "push", "-q")
    assert "dvfs" not in r.stderr, r.stderr
    fsck_clean(repo.root)


def test_a_git_rebase_leaves_the_data_dvfs_lock_names_at_its_end(made: tuple[Path, Path]) -> None:
    # git rebase runs post-checkout once, for the commit it starts from (the upstream),
    # and no hook at its end: the data was brought to the upstream's dvfs.lock, and
    # the branch's own commits, replayed on it, named other data than was left there.
    repo = data_repo(made)
    repo.ok("install")
    data_on_side_code_on_master(repo)
    ok(repo.root, "git", "checkout", "-q", "side")
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    ok(repo.root, "git", "rebase", "-q", "master")
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    assert "dvfs.lock" not in repo.ok("status").out  # the data is what the lock names

    # Rebased onto a lock that moved, the branch's commits leaving it: its data follows.
    ok(repo.root, "git", "checkout", "-q", "-b", "code", "HEAD~1")  # (the data of v2)
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    (repo.root / "README").write_text("code\n")
    ok(repo.root, "git", "add", "README")
    ok(repo.root, "git", "commit", "-q", "-m", "readme")
    r = ok(repo.root, "git", "rebase", "-q", "side")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    assert "dvfs.lock" not in repo.ok("status").out
    fsck_clean(repo.root)


def test_a_checkout_that_leaves_dvfs_lock_as_it_is_never_touches_it(
    made: tuple[Path, Path],
) -> None:
    # Hooks installed before post-rewrite existed restore the data as a rebase starts;
    # that checkout wrote dvfs.lock again, the same bytes, and git, in the middle of the
    # rebase, took the file replaced under it for a local change and stopped.
    repo = data_repo(made)
    repo.ok("install")
    (hooks_dir(repo) / "post-rewrite").unlink()
    data_on_side_code_on_master(repo)
    ok(repo.root, "git", "checkout", "-q", "side")
    before = os.stat(repo.root / "dvfs.lock")
    repo.ok("checkout", "--lock")  # (what the lock names: nothing to write)
    after = os.stat(repo.root / "dvfs.lock")
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    r = ok(repo.root, "git", "rebase", "-q", "master")
    assert "dvfs.lock changed" in r.stderr  # (as the rebase starts: the old hooks' way)
    assert ok(repo.root, "git", "log", "-1", "--format=%s").stdout.strip() == "code with data v3"
    fsck_clean(repo.root)


def test_a_git_squash_merge_brings_the_data_the_merged_dvfs_lock_names(
    made: tuple[Path, Path],
) -> None:
    # `git merge --squash` commits nothing: post-merge compared ORIG_HEAD with HEAD, the
    # same commit, and left the data at the old version while the dvfs.lock it wrote to
    # the work tree (and the index) named the merged one.
    repo = data_repo(made)
    repo.ok("install")
    ok(repo.root, "git", "checkout", "-q", "-b", "side")
    new_data_commit(repo, 3)  # side: dvfs.lock names v3
    ok(repo.root, "git", "checkout", "-q", "master")
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    r = ok(repo.root, "git", "merge", "-q", "--squash", "side")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    assert "dvfs.lock" not in repo.ok("status").out  # the data is what the lock names
    ok(repo.root, "git", "commit", "-q", "-m", "squashed side")
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    # A squash merge that leaves dvfs.lock as it is leaves the data alone (an edit stays).
    ok(repo.root, "git", "checkout", "-q", "-b", "code")
    (repo.root / "train.py").write_text("print('train more')\n")
    ok(repo.root, "git", "commit", "-q", "-am", "code only")
    ok(repo.root, "git", "checkout", "-q", "master")
    repo.write("data/labels.csv", "edited\n")
    r = ok(repo.root, "git", "merge", "-q", "--squash", "code")
    assert "dvfs" not in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"edited\n"
    fsck_clean(repo.root)


def test_a_git_merge_whose_dvfs_lock_names_the_data_already_here_leaves_an_edit_alone(
    made: tuple[Path, Path],
) -> None:
    # The data brought first (`dvfs pull` before `git pull`), then edited: the git merge
    # that brings the dvfs.lock naming it said it was restoring the data, and then that
    # the checkout would overwrite the edit. There is nothing to restore: it says
    # nothing, and the edit stays, shown by `dvfs status`.
    repo = data_repo(made)
    ok(repo.root, "git", "checkout", "-q", "-b", "side")
    new_data_commit(repo, 3)  # side: dvfs.lock names v3, the data here
    ok(repo.root, "git", "checkout", "-q", "master")  # (no hooks yet: the data stays)
    repo.ok("install")
    repo.write("data/labels.csv", "edited\n")
    r = ok(repo.root, "git", "merge", "-q", "side")
    assert "dvfs" not in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"edited\n"
    st = repo.status()
    assert st["head"] == "v3" and st["modified"] == ["data/labels.csv"], st
    fsck_clean(repo.root)


def test_a_git_merge_concluded_by_git_commit_brings_the_data_the_merged_dvfs_lock_names(
    made: tuple[Path, Path],
) -> None:
    # git runs no post-merge for a merge that `git commit` concludes (after `git merge
    # --no-commit`, or once conflicts are settled): the data stayed at the old version
    # while the merge commit's dvfs.lock named the merged one.
    repo = data_repo(made)
    repo.ok("install")
    data_on_side_code_on_master(repo)
    r = ok(repo.root, "git", "merge", "-q", "--no-commit", "--no-ff", "side")
    assert "dvfs" not in r.stderr, r.stderr  # (nothing committed yet: no hook runs)
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    r = ok(repo.root, "git", "commit", "-q", "-m", "merged side")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    assert "dvfs.lock" not in repo.ok("status").out  # the data is what the lock names
    # Amending that merge, or a commit that is no merge, leaves the data alone.
    repo.write("data/labels.csv", "edited\n")
    r = ok(repo.root, "git", "commit", "-q", "--amend", "-m", "merged side, amended")
    assert "dvfs" not in r.stderr, r.stderr
    r = ok(repo.root, "git", "commit", "-q", "--allow-empty", "-m", "nothing")
    assert "dvfs" not in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"edited\n"
    repo.ok("restore", "data/labels.csv")

    # A conflict in dvfs.lock settled, then committed: the data follows the lock chosen.
    ok(repo.root, "git", "checkout", "-q", "-b", "other", "HEAD~2")  # (the data of v2)
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    repo.ok("switch", "main")
    new_data_commit(repo, 4)  # other: dvfs.lock names v4
    ok(repo.root, "git", "checkout", "-q", "master")  # (the data of v3)
    assert repo.read("data/labels.csv") == b"id,label\n3,dog\n"
    r = sh(repo.root, "git", "merge", "-q", "other")
    assert r.returncode == 1 and "dvfs.lock" in r.stdout, (r.stdout, r.stderr)
    ok(repo.root, "git", "checkout", "--theirs", "dvfs.lock")
    ok(repo.root, "git", "add", "dvfs.lock")
    r = ok(repo.root, "git", "commit", "-q", "--no-edit")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n4,dog\n"
    assert "dvfs.lock" not in repo.ok("status").out
    fsck_clean(repo.root)


def test_a_linked_git_work_tree_is_told_what_it_lacks_and_what_gets_the_data(
    made: tuple[Path, Path], tmp_path: Path
) -> None:
    # `git worktree add` runs post-checkout in the new work tree, which has the code and
    # dvfs.lock but no store: it was called "this clone", which it is not.
    repo = data_repo(made)
    repo.ok("install")
    r = ok(repo.root, "git", "worktree", "add", "-q", str(tmp_path / "linked"))
    said = " ".join(r.stderr.split())
    assert "this clone" not in said, said
    assert (
        "dvfs: this git work tree (made by `git worktree add`) has no dvfs store of its "
        "own: run `dvfs pull` here to make one and get the data dvfs.lock names" in said
    ), said
    linked = Repo(tmp_path / "linked")
    linked.ok("pull")  # what it says works
    assert linked.read("data/labels.csv") == b"id,label\n2,cat\n"
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    fsck_clean(linked.root)
    fsck_clean(repo.root)


def test_pre_push_counts_a_version_the_remote_holds_through_a_tag(made: tuple[Path, Path]) -> None:
    # The remote holds v3 through tag `best` alone (its branch was deleted there): the
    # hook looked at the remote's branches only, said the remote did not have v3 and
    # offered to push it.
    repo = data_repo(made)
    repo.ok("install")
    repo.ok("switch", "-c", "exp")
    commit_files(repo, {"data/labels.csv": "id,label\n3,owl\n"}, "data 3")
    repo.ok("tag", "best")
    repo.ok("push", "--tags", "exp")
    repo.ok("push", "--delete", "exp")
    assert "origin/exp" not in repo.ok("branch", "-r").out
    ok(repo.root, "git", "commit", "-q", "-am", "code with data exp v3")
    code, shown = push_at_a_terminal(repo.root, b"\n")
    assert code == 0, shown
    assert "Push it now?" not in shown and "dvfs" not in shown, shown
    assert not (repo.root.parent / "store" / "refs" / "heads" / "exp").exists()  # nothing pushed
    # A version no tag nor branch of the remote holds is still offered.
    commit_files(repo, {"data/labels.csv": "id,label\n4,owl\n"}, "data 4")
    ok(repo.root, "git", "commit", "-q", "-am", "code with data exp v4")
    r = ok(repo.root, "git", "push", "-q")
    assert "data the dvfs remote does not have: exp v4 on origin" in r.stderr, r.stderr
    fsck_clean(repo.root)


def test_pre_push_looks_at_every_commit_pushed_not_only_the_tip(made: tuple[Path, Path]) -> None:
    # Two commits pushed at once: the first names exp v3, which no remote has, the
    # second main v2 again. The hook read dvfs.lock of the tip alone and said nothing:
    # a teammate's checkout of the first commit then fails.
    repo = data_repo(made)
    repo.ok("install")
    repo.ok("switch", "-c", "exp")
    commit_files(repo, {"data/labels.csv": "id,label\n3,owl\n"}, "data 3")
    ok(repo.root, "git", "commit", "-q", "-am", "code with data exp v3")
    repo.ok("switch", "main")
    (repo.root / "train.py").write_text("print('train again')\n")
    ok(repo.root, "git", "commit", "-q", "-am", "back to the data of main v2")
    r = ok(repo.root, "git", "push", "-q")
    assert "data the dvfs remote does not have: exp v3 on origin" in r.stderr, r.stderr
    # Commits the git remote has already are not looked at again.
    repo.ok("push", "exp")
    ok(repo.root, "git", "commit", "-q", "--allow-empty", "-m", "code only")
    r = ok(repo.root, "git", "push", "-q")
    assert "dvfs" not in r.stderr, r.stderr
    fsck_clean(repo.root)


def test_git_reset_cherry_pick_and_revert_bring_the_data_dvfs_lock_names(
    made: tuple[Path, Path],
) -> None:
    # git runs no hook for `git reset` but reference-transaction, and post-commit for
    # `git cherry-pick` and `git revert`, which followed merges alone: the data stayed at
    # the old version while the dvfs.lock git wrote named another, without a word.
    repo = data_repo(made)
    repo.ok("install")
    two = ok(repo.root, "git", "rev-parse", "HEAD").stdout.strip()
    r = ok(repo.root, "git", "reset", "-q", "HEAD~1")  # (the work tree's dvfs.lock is left)
    assert "dvfs" not in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    r = ok(repo.root, "git", "reset", "-q", "--hard")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n1,cat\n"
    assert "dvfs.lock" not in repo.ok("status").out

    # Uncommitted data in the way: it is kept, the hook says so, and status what to run.
    repo.write("data/labels.csv", "edited\n")
    r = ok(repo.root, "git", "reset", "-q", "--hard", two)
    assert "would overwrite uncommitted changes" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"edited\n"
    assert "names v2 " in repo.ok("status").out
    repo.ok("restore", "data/labels.csv")
    ok(repo.root, "git", "reset", "-q", "--hard")
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"

    # A cherry-picked commit that changed dvfs.lock brings its data; its revert, back.
    ok(repo.root, "git", "checkout", "-q", "-b", "side", "HEAD~1")  # (the data of v1)
    (repo.root / "train.py").write_text("print('train better')\n")
    ok(repo.root, "git", "commit", "-q", "-am", "code only")
    r = ok(repo.root, "git", "cherry-pick", "master")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n2,cat\n"
    r = ok(repo.root, "git", "revert", "--no-edit", "HEAD")
    assert "dvfs.lock changed: restoring the data it names" in r.stderr, r.stderr
    assert repo.read("data/labels.csv") == b"id,label\n1,cat\n"
    assert "dvfs.lock" not in repo.ok("status").out
    fsck_clean(repo.root)


def test_pre_push_says_at_once_that_an_unreachable_dvfs_remote_could_not_be_checked(
    made: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    # No branch of the S3 remote holds the version named, so its tags are asked for: an
    # endpoint that does not answer was asked again and again, backing off, for seconds
    # (a minute where the connection times out) before git's push went on.
    use_aws_keys(monkeypatch, "AKIDEXAMPLE", "not-a-secret")
    repo = data_repo(made)
    repo.ok("install")
    (port,) = free_ports(1)  # (closed again: nothing listens there)
    endpoint = f"http://127.0.0.1:{port}"
    repo.ok("remote", "add", "--local", "--default", "s3", "s3://bucket/p",
            "--endpoint-url", endpoint)  # fmt: skip
    new_data_commit(repo, 3)
    started = time.monotonic()
    r = ok(repo.root, "git", "push", "-q")
    took = time.monotonic() - started
    said = r.stderr.splitlines()
    assert len(said) == 1, said
    assert said[0].startswith("dvfs: warning: could not check whether the dvfs remote has "
                              "main v3 on s3, "), said  # fmt: skip
    assert "if it lacks it, teammates' `dvfs pull` fails until `dvfs push`" in said[0], said
    assert "(connection failed)" in said[0] and "attempts" not in said[0], said  # (asked once)
    assert took < 8, took  # (it took 11 s; 4 to 5 s of it start dvfs and boto3 on a busy machine)
    fsck_clean(repo.root)
