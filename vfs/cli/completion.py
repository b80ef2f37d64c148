"""Shell completion of a version's paths (``dvfs cat v1:da<TAB>``), and the bash script
that ``dvfs completion bash`` prints.

bash cuts a word at each ``:`` (it is in ``COMP_WORDBREAKS``): ``v1:da`` reaches the
program as the words ``v1``, ``:`` and ``da``, and only what follows the colon is
replaced by the candidate. :class:`BashComplete` joins ``REV:PATH`` back and answers
with what follows the colon. Its script inserts each candidate as it is: click's split
and globbed it (``COMPREPLY+=($value)``, and ``read`` without ``-r``); it adds no
space after the one directory offered, so that the next TAB goes on inside it, and
lets nothing the program might say on stderr reach the line being edited.

A version's names are offered only if they can be inserted as they are, as one shell
word in bash, zsh and fish alike (none of :data:`UNSAFE`, no control character, valid
UTF-8, not starting with ``-``); at most :data:`MOST_PATHS` of them, from the one
directory of the version being completed.

A TAB is answered within :data:`ANSWER_WAIT` seconds (``vfs.cli.root.complete``, by
``vfs._os.helper_process.within``): completing may look into a FUSE mount (a
writable dvfs mount's ``dvfs.yaml``, a path typed through a mount), and a look into
one whose daemon is stopped or hung waits in the kernel for ever, and the shell with
it. A child given up on whose request the daemon took waits on, killed or not, until
the daemon answers: it is named in ``<runtime dir>/tab-<first 16 hex of SHA-256 of the
mount point>`` for each dvfs mount the current directory or a word typed lies in (by
the mount table: :func:`look_marks`), and while it lives a TAB there answers nothing
at once, forking no other child to wait beside it.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from click import shell_completion
from click.shell_completion import CompletionItem

from vfs._os.mount_table import FS_TYPES, mount_table
from vfs.errors import DvfsError
from vfs.model.codec import Kind, tree_names
from vfs.mount.mounts import runtime_dir
from vfs.repo.repository import Repository

MOST_PATHS = 1000  # names of one directory offered at one TAB
ANSWER_WAIT = 3.0  # seconds a TAB waits for its answer (LOOK_WAIT_ENV: a test's wait)
# What a name offered may not hold: what a shell reads as more than a character of a word
# (a space, a quote, a backslash, a glob, a variable...), or where bash cuts a word.
UNSAFE = frozenset(" \t\n\"'\\$`!*?[]{}()<>|&;=:~#^")

_SOURCE_BASH = r"""%(complete_func)s() {
    local IFS=$'\n'
    local response completion type value

    response=$(env COMP_WORDS="${COMP_WORDS[*]}" COMP_CWORD=$COMP_CWORD \
%(complete_var)s=bash_complete "$1" 2>/dev/null)

    for completion in $response; do
        IFS=',' read -r type value <<< "$completion"

        if [[ $type == 'dir' ]]; then
            COMPREPLY=()
            compopt -o dirnames
        elif [[ $type == 'file' ]]; then
            COMPREPLY=()
            compopt -o default
        elif [[ $type == 'plain' ]]; then
            COMPREPLY+=("$value")
        fi
    done
    if [[ ${#COMPREPLY[@]} == 1 && ${COMPREPLY[0]} == */ ]]; then
        compopt -o nospace  # a directory of a version: go on inside it
    fi

    return 0
}

%(complete_func)s_setup() {
    complete -o nosort -F %(complete_func)s %(prog_name)s
}

%(complete_func)s_setup;
"""


class BashComplete(shell_completion.BashComplete):
    """click's bash completion, with ``REV:PATH`` joined back and a script that inserts
    each candidate as it is (see the module's docstring)."""

    source_template = _SOURCE_BASH

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cut = ""  # what bash keeps of the word, before the part it replaces

    def get_completion_args(self) -> tuple[list[str], str]:
        """The words before the one completed, and that word, ``REV:PATH`` joined."""
        args, incomplete = super().get_completion_args()
        if incomplete == ":" and args:  # `v1:` (bash replaces what follows the colon)
            self.cut = f"{args[-1]}:"
            return args[:-1], self.cut
        if len(args) >= 2 and args[-1] == ":":  # `v1:da`
            self.cut = f"{args[-2]}:"
            return args[:-2], self.cut + incomplete
        return args, incomplete

    def format_completion(self, item: CompletionItem) -> str:
        """``TYPE,VALUE``, the value without the part of the word bash keeps."""
        if self.cut and item.type == "plain":
            return f"plain,{item.value.removeprefix(self.cut)}"
        return super().format_completion(item)


def look_marks(comp: shell_completion.ShellComplete) -> list[str]:
    """The files naming a TAB's child left waiting in a dvfs mount that this TAB may
    look into (``within``'s marks; see the module's docstring): one for each dvfs mount
    the current directory or a word typed (``REV:PATH``'s path too) lies in, found by
    the mount table alone, since a look into the mount could wait. None if there is
    no such mount, or no runtime directory."""
    try:
        args, incomplete = comp.get_completion_args()
        here = os.getcwd()
        table = mount_table()
        found = set()
        for word in (".", *args, incomplete):
            for part in {word, word.partition(":")[2]} - {""}:
                path = Path(os.path.normpath(os.path.join(here, os.path.expanduser(part))))
                mount = next((d for d in (path, *path.parents) if str(d) in table), None)
                if mount is not None and table[str(mount)] in FS_TYPES:
                    found.add(os.fsencode(mount))
        if not found:
            return []
        where = runtime_dir()
    except (DvfsError, OSError, ValueError):
        return []
    return [str(where / f"tab-{hashlib.sha256(m).hexdigest()[:16]}") for m in sorted(found)]


def use_bash_completion() -> None:
    """Make :class:`BashComplete` the one click uses for bash."""
    shell_completion.add_completion_class(BashComplete)


def plain_name(name: bytes) -> str | None:
    """``name`` as text if a shell takes it as it is (see the module's docstring)."""
    try:
        text = name.decode()
    except UnicodeDecodeError:
        return None
    if not text.isprintable() or UNSAFE.intersection(text) or text.startswith("-"):
        return None
    return text


def version_paths(rev: str, typed: str, shown: str, *, here: bool = False) -> list[CompletionItem]:
    """The entries of version ``rev`` that complete ``typed``, each after ``shown``
    (``v1:``, or nothing), a directory's name ending in ``/``. ``typed`` is a path from the root
    (``REV:PATH``), or with ``here`` from the current directory (``REV PATH``). None if
    the revision or the directory is not there."""
    folder, _, start = typed.rpartition("/")
    parts = folder.split("/") if folder else []
    if not here and (typed.startswith("/") or any(p in ("", ".", "..") for p in parts)):
        return []  # (`/a`, `a//b`, `./a`, `../a`: no name of a version's tree)
    try:
        repo = Repository.find()
        where = repo.rel(folder or ".") if here else os.fsencode(folder)
        hist = repo.history
        tree = hist.version(hist.resolve(rev)).tree
        for part in where.split(b"/") if where else ():  # each read only as far as needed
            found = tree_names(hist.store.get(tree), part, 1)
            if not found or found[0].name != part or found[0].kind != Kind.DIR:
                return []
            tree = found[0].subtree
        entries = tree_names(hist.store.get(tree), os.fsencode(start), MOST_PATHS * 4)
    except (DvfsError, OSError):
        return []
    lead = f"{shown}{folder}/" if folder else shown
    out = []
    for e in entries:
        name = plain_name(e.name)
        if name is not None:
            out.append(CompletionItem(lead + name + ("/" if e.kind == Kind.DIR else "")))
    return out[:MOST_PATHS]
