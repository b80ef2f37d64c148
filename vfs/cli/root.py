"""The ``dvfs`` root command group (click): every command but the quick ``dvfs status``.

One module a group of commands (the table ``COMMANDS``); a module is imported when
one of its commands is first looked up, so that a command loads what it needs, not
the pipeline, remote, mount or dashboard code. ``--help`` and completion load them
all. Shared parameter types and options are in :mod:`vfs.cli.options`, the printing
helpers in :mod:`vfs.cli.output`; :func:`vfs.cli.main` turns errors into lines.
"""

from __future__ import annotations

import importlib
import io
import os
import sys
from collections.abc import Iterator, MutableMapping
from typing import NoReturn

import click

from vfs import settings
from vfs.cli import COMPLETE_VAR
from vfs.cli.options import CONTEXT, DvfsGroup, NotEmpty
from vfs.cli.output import INTERRUPTED, fail
from vfs.quoting import escape_text

__all__ = ["COMMANDS", "NotEmpty", "cli", "run"]

# Each command of the root group: the module of vfs.cli and the name it has there.
COMMANDS = {
    "init": "tracking:init", "add": "tracking:add", "check-ignore": "tracking:check_ignore",
    "rm": "tracking:rm", "mv": "tracking:mv", "commit": "tracking:commit",
    "status": "status:status",
    "log": "history:log", "show": "history:show_cmd", "ls": "history:ls_cmd",
    "cat": "history:cat", "diff": "diff:diff_cmd",
    "checkout": "checkout:checkout_cmd", "restore": "checkout:restore",
    "switch": "checkout:switch", "merge": "checkout:merge_cmd",
    "branch": "branches:branch", "tag": "branches:tag",
    "fsck": "store:fsck_cmd", "gc": "store:gc_cmd", "store": "store:store_group",
    "config": "store:config_cmd", "du": "store:du_cmd",
    "audit": "audit:audit_cmd",
    "remote": "sync:remote", "push": "sync:push", "fetch": "sync:fetch", "pull": "sync:pull",
    "clone": "sync:clone_cmd",
    "install": "git:install", "hook": "git:hook_cmd",
    "mount": "mount:mount_cmd", "umount": "mount:umount_cmd", "mounts": "mount:mounts_cmd",
    "snapshot": "mount:snapshot", "cache": "mount:cache_group",
    "run": "pipeline:run_cmd", "repro": "pipeline:repro", "stage": "pipeline:stage_group",
    "dag": "pipeline:dag", "lineage": "pipeline:lineage",
    "params": "experiments:params_group", "metrics": "experiments:metrics_group",
    "compare": "experiments:compare", "exp": "experiments:exp_group",
    "ui": "ui:ui_cmd",
}  # fmt: skip


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's commands by name; each is imported from its module when first looked up.

    Listing the names imports nothing; looking one up imports its module alone.
    """

    def __init__(self, where: dict[str, str]) -> None:
        self._where = dict(where)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        cmd = self._loaded.get(name)
        if cmd is None:
            module, _, attr = self._where[name].partition(":")  # KeyError: no such command
            cmd = getattr(importlib.import_module(f"vfs.cli.{module}"), attr)
            assert isinstance(cmd, click.Command) and cmd.name == name, (name, cmd)
            self._loaded[name] = cmd
        return cmd

    def __setitem__(self, name: str, cmd: click.Command) -> None:
        self._where.pop(name, None)
        self._loaded[name] = cmd

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._where.pop(name, None)
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._loaded or name in self._where

    def __iter__(self) -> Iterator[str]:
        yield from self._where
        yield from (n for n in self._loaded if n not in self._where)

    def __len__(self) -> int:
        return len(self._where.keys() | self._loaded.keys())


@click.group(cls=DvfsGroup, context_settings=CONTEXT)
@click.version_option(package_name="dvfs", prog_name="dvfs")
def cli() -> None:
    """dvfs: version datasets and models like code, and mount every version.

    \b
    Examples:
      dvfs init && dvfs add data/ && dvfs commit -m "raw data"
      dvfs log
      dvfs diff v1 v2
      dvfs checkout v1
      dvfs COMMAND --help     # each command's options and examples
    """


cli.commands = LazyCommands(COMMANDS)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell code that completes dvfs commands, options, revisions and paths.

    Load it from your shell's start-up file (bash 4.4 or later).

    \b
    Examples:
      eval "$(dvfs completion bash)"      # in ~/.bashrc
      eval "$(dvfs completion zsh)"       # in ~/.zshrc
      dvfs completion fish > ~/.config/fish/completions/dvfs.fish
    """
    from click.shell_completion import get_completion_class  # only when asked

    from vfs.cli.completion import use_bash_completion

    use_bash_completion()
    complete = get_completion_class(shell)
    assert complete is not None  # the choices are the shells click knows
    click.echo(complete(cli, {}, "dvfs", COMPLETE_VAR).source())


def show_click_error(exc: click.ClickException) -> None:
    """Print click's own error as one ``dvfs: error:`` line (help, when it is the answer).

    ``dvfs`` or ``dvfs remote`` alone print their help, as click does.
    """
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        buf = io.StringIO()
        exc.show(file=buf)
        for line in buf.getvalue().splitlines():
            click.echo(escape_text(line), err=True)
        return
    msg = "; ".join(line.strip() for line in exc.format_message().splitlines() if line.strip())
    msg = msg[:1].lower() + msg[1:].rstrip(".")
    if isinstance(exc, click.UsageError):
        path = exc.ctx.command_path if exc.ctx is not None else "dvfs"
        msg += f" (see `{path} --help`)"
    click.echo(f"dvfs: error: {escape_text(msg)}", err=True)


def complete(instruction: str) -> NoReturn:
    """Answer a shell asking for completions (``instruction``: ``SHELL_complete`` or
    ``SHELL_source``, click's protocol, answered as click's ``shell_complete`` does),
    then exit.

    The words typed come back as the shell gave them, bytes that are not UTF-8
    included (a file so named, half typed: click's strict encoding of the answer
    ended in an internal error). Nothing is printed on stderr, where it would land in
    the line being edited: an error offers nothing (``DVFS_DEBUG=1`` shows it). The
    answer is worked out in a child given up on after ``ANSWER_WAIT`` s, and none is
    forked while one given up on still waits in a mount this TAB may look into (see
    ``vfs.cli.completion``; in this process with ``DVFS_DEBUG=1``).
    """
    from click.shell_completion import get_completion_class

    from vfs._os.helper_process import within
    from vfs.cli.completion import ANSWER_WAIT, look_marks, use_bash_completion
    from vfs.mount.control import LOOK_WAIT_ENV

    use_bash_completion()
    shell, _, what = instruction.partition("_")
    kind = get_completion_class(shell)
    if kind is None or what not in ("complete", "source"):
        sys.exit(1)
    try:
        comp = kind(cli, {}, "dvfs", COMPLETE_VAR)
        if what == "source":
            text = comp.source()
        elif settings.debug():
            text = f"{comp.complete()}\n"
        else:
            wait = float(os.environ.get(LOOK_WAIT_ENV) or ANSWER_WAIT)
            got = within(
                lambda: f"{comp.complete()}\n".encode(errors="surrogateescape"),
                wait,
                look_marks(comp),  # (a child still waiting there: no answer, at once)
            )
            if got is None:
                sys.exit(1)
            text = got.decode(errors="surrogateescape")
        sys.stdout.buffer.write(text.encode(errors="surrogateescape"))
        sys.stdout.flush()
    except Exception:
        if settings.debug():
            raise
        sys.exit(1)
    sys.exit(0)


def run() -> None:
    """Parse the command line and run the command; click's own errors become one line.

    Every other error is :func:`vfs.cli.main`'s to turn into a line.
    """
    instruction = os.environ.get(COMPLETE_VAR)
    if instruction:  # a shell asking for completions
        complete(instruction)
    try:
        cli.main(prog_name="dvfs", complete_var=COMPLETE_VAR, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        show_click_error(exc)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:  # (click's word for Ctrl-C in a command)
        fail(INTERRUPTED, 130)
