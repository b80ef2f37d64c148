"""The two tools under test, each as the command lines it runs for each step.

Both run in their own directory under ``run/`` with ``GIT_CEILING_DIRECTORIES`` set to
that folder, so neither finds a git repository around the work directory (dvfs records
the surrounding git commit when there is one; DVC gets its own ``git init``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from measure import run

DVC_VERSION = "3.67.1"
REPO_ROOT = Path(__file__).resolve().parent.parent


class SetupError(Exception):
    """A tool could not be installed or initialised; the message says which command."""


def must(argv: Sequence[str], cwd: Path, env: dict[str, str]) -> str:
    """Run an untimed set-up command; its output, or SetupError if it failed."""
    p = run(argv, cwd, env)
    if p.returncode != 0:
        raise SetupError(f"`{' '.join(argv)}` exited {p.returncode}: {p.output_tail.strip()}")
    return p.output_tail.strip()


class Tool(ABC):
    """A tool's repository directory, environment, and command lines per step."""

    name = ""

    def __init__(self, root: Path, env: dict[str, str], command: list[str]) -> None:
        self.root = root
        self.env = env
        self.command = command

    @abstractmethod
    def setup(self) -> None:
        """Initialise the repository (not timed)."""
        raise NotImplementedError

    @abstractmethod
    def add_commit(self, path: str, message: str) -> list[list[str]]:
        """Commands that track ``path`` and record a version."""
        raise NotImplementedError

    @abstractmethod
    def status(self) -> list[str]:
        """The status command."""
        raise NotImplementedError

    @abstractmethod
    def checkout(self) -> list[str]:
        """The command that restores every tracked file of the last version."""
        raise NotImplementedError

    def checkout_fallback(self) -> list[str] | None:
        """A forcing checkout to try if the plain one refuses, or None."""
        return None

    @abstractmethod
    def store(self) -> Path:
        """Where the tool keeps file content."""
        raise NotImplementedError

    @abstractmethod
    def metadata(self) -> Path:
        """The tool's whole directory in the repository (content and bookkeeping)."""
        raise NotImplementedError

    @abstractmethod
    def version(self) -> str:
        """The tool's version as it reports it."""
        raise NotImplementedError


def dvfs_command(spec: str | None) -> list[str]:
    """The dvfs command: ``spec`` split like a shell, else ``dvfs`` on PATH, else the module."""
    if spec:
        return shlex.split(spec)
    found = shutil.which("dvfs")
    return [found] if found else [sys.executable, "-m", "vfs.cli"]


class Dvfs(Tool):
    """dvfs: ``init`` as set-up, then ``add`` + ``commit``, ``status``, ``checkout HEAD``."""

    name = "dvfs"

    def __init__(self, root: Path, env: dict[str, str], command: list[str]) -> None:
        env = dict(env)
        command = list(command)
        if command and os.path.basename(command[0]) == "env":
            # ``env NAME=VALUE ... dvfs``: the assignments join the environment, so the
            # interpreter and the bytecode compile see the same modules as the command
            command.pop(0)
            while command and "=" in command[0] and not command[0].startswith("-"):
                name, _, value = command.pop(0).partition("=")
                env[name] = value
        if "-m" in command and "vfs.cli" in command:
            # run as a module: import it from this checkout
            paths = [str(REPO_ROOT), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        super().__init__(root, env, command)

    def setup(self) -> None:
        self.compile_bytecode()
        must([*self.command, "init"], self.root, self.env)

    def compile_bytecode(self) -> None:
        """Compile dvfs's modules to bytecode, as ``pip install`` does (DVC's venv has it).

        An editable checkout run with ``PYTHONDONTWRITEBYTECODE`` set would otherwise
        compile every module from source on every command: about 40 ms each time
        (the mount daemon's package too, for the benchmarks that mount).
        """
        script = (
            "import compileall, os, daemon, vfs; "
            "[compileall.compile_dir(os.path.dirname(m.__file__), quiet=1) for m in (vfs, daemon)]"
        )
        must([self.interpreter(), "-c", script], self.root, self.env)

    def interpreter(self) -> str:
        """The Python that runs the dvfs command (``-m`` form, or a script's shebang)."""
        if "-m" in self.command:
            return self.command[0]
        script = shutil.which(self.command[0]) or self.command[0]
        try:
            with open(script, "rb") as fh:
                first = fh.readline()
        except OSError:
            return sys.executable
        if first.startswith(b"#!") and first[2:].split():
            return first[2:].split()[0].decode()
        return sys.executable

    def add_commit(self, path: str, message: str) -> list[list[str]]:
        return [[*self.command, "add", path], [*self.command, "commit", "-m", message]]

    def status(self) -> list[str]:
        return [*self.command, "status"]

    def checkout(self) -> list[str]:
        return [*self.command, "checkout", "HEAD"]

    def checkout_fallback(self) -> list[str] | None:
        return [*self.command, "checkout", "--force", "HEAD"]

    def store(self) -> Path:
        objects = self.metadata() / "objects"
        return objects if objects.is_dir() else self.metadata()

    def metadata(self) -> Path:
        return self.root / ".dvfs"

    def version(self) -> str:
        p = run([*self.command, "--version"], self.root, self.env)
        return p.output_tail.strip() if p.returncode == 0 else "unknown"


class Dvc(Tool):
    """DVC in its own venv: ``git init`` + ``dvc init`` as set-up, ``dvc add`` + git commit."""

    name = "DVC"

    def __init__(self, root: Path, env: dict[str, str], venv: Path) -> None:
        bin_dir = venv / "bin"
        env = {
            **env,
            "PATH": os.pathsep.join([str(bin_dir), env.get("PATH", os.defpath)]),
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(root.parent / "dvc-site-cache"),
        }
        env.pop("PYTHONPATH", None)
        super().__init__(root, env, [str(bin_dir / "dvc")])

    def setup(self) -> None:
        for argv in (
            ["git", "init", "-q"],
            ["git", "config", "user.name", "bench"],
            ["git", "config", "user.email", "bench@example.invalid"],
            ["git", "config", "commit.gpgsign", "false"],
            [*self.command, "init", "-q"],
            [*self.command, "config", "core.analytics", "false"],
            [*self.command, "config", "core.check_update", "false"],
            ["git", "add", "-A", ".dvc", ".dvcignore"],
            ["git", "commit", "-q", "-m", "dvc init"],
        ):
            must(argv, self.root, self.env)

    def add_commit(self, path: str, message: str) -> list[list[str]]:
        return [
            [*self.command, "add", path],
            ["git", "add", f"{path}.dvc", ".gitignore"],
            ["git", "commit", "-q", "-m", message],
        ]

    def status(self) -> list[str]:
        return [*self.command, "status"]

    def checkout(self) -> list[str]:
        return [*self.command, "checkout"]

    def store(self) -> Path:
        return self.metadata() / "cache"

    def metadata(self) -> Path:
        return self.root / ".dvc"

    def version(self) -> str:
        p = run([*self.command, "--version"], self.root, self.env)
        return p.output_tail.strip() if p.returncode == 0 else "unknown"


def ensure_dvc(venv: Path, extra: str | None = None) -> None:
    """Create ``venv`` with the pinned DVC unless it already has it (not timed).

    ``extra`` names an optional DVC extra (``"s3"``: ``dvc[s3]``, checked by importing
    ``dvc_s3``), added to an existing venv when missing.
    """
    dvc = venv / "bin" / "dvc"
    python = venv / "bin" / "python"
    probe = [str(python), "-c", f"import dvc_{extra}"] if extra else None
    broken = False  # a venv whose dvc does not run is made again from scratch
    if dvc.exists():
        try:
            p = subprocess.run([dvc, "--version"], capture_output=True, text=True, check=False)
        except OSError:  # copied from elsewhere: its scripts name an interpreter not here
            broken = True
        else:
            broken = p.returncode != 0
            has_extra = probe is None or subprocess.run(probe, capture_output=True).returncode == 0
            if not broken and p.stdout.strip() == DVC_VERSION and has_extra:
                return
    spec = f"dvc[{extra}]=={DVC_VERSION}" if extra else f"dvc=={DVC_VERSION}"
    print(f"installing {spec} into {venv} ...", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for argv in (
        # (pip would leave a copied venv's scripts as they are: --clear starts anew)
        [sys.executable, "-m", "venv", *(["--clear"] if broken else []), str(venv)],
        [str(python), "-m", "pip", "install", "-q", spec],
    ):
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise SetupError(f"`{' '.join(argv)}` failed: {(p.stdout + p.stderr)[-2000:]}")
