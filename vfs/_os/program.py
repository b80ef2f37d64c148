"""What program this process is, as a record of what ran (``vfs.track``'s run, an audit
entry) names it.

``sys.argv`` alone says too little in two common cases: under ``python -c CODE`` it
is ``["-c", ...]`` (the code is gone), and in a Jupyter notebook it is the kernel's
launcher and its connection file (``ipykernel_launcher.py -f .../kernel-1.json``),
which names no notebook.
"""

from __future__ import annotations

import os
import sys

CODE_CHARS = 80  # of ``python -c CODE``'s code, recorded; longer code is cut ("…")
KERNEL_LAUNCHERS = ("ipykernel_launcher.py", "ipykernel/__main__.py")
_given: list[str] | None = None


def set_command(argv: list[str]) -> None:
    """The command line this process's records name (the CLI sets ``dvfs ARGS``): kept
    here, not in the audit module, so that a command sets it without loading that."""
    global _given
    _given = list(argv)


def given_command() -> list[str] | None:
    """The command line :func:`set_command` set, if it was."""
    return None if _given is None else list(_given)


def command_line() -> list[str]:
    """This process's command line, as its user would know it.

    - ``sys.argv`` for a script or a module (``["train.py", "--lr", "1"]``);
    - ``["python"]`` for an interactive interpreter;
    - ``["python", "-c", CODE, ARG...]`` under ``python -c``, the code's first
      ``CODE_CHARS`` characters (``…`` ending code cut there);
    - ``["jupyter", NOTEBOOK]`` in a Jupyter kernel: the notebook's path as Jupyter
      Server (``JPY_SESSION_NAME``) or VS Code (``__vsc_ipynb_file__``) gives it to
      the kernel, else ``["jupyter"]``.
    """
    argv = list(sys.argv)
    if not argv or not argv[0]:
        return ["python"]
    if argv[0] == "-c":
        return ["python", "-c", *_code(), *argv[1:]]
    if argv[0].replace(os.sep, "/").endswith(KERNEL_LAUNCHERS):
        main = sys.modules.get("__main__")
        notebook = getattr(main, "__vsc_ipynb_file__", None) or os.environ.get("JPY_SESSION_NAME")
        return ["jupyter", notebook] if isinstance(notebook, str) and notebook else ["jupyter"]
    return argv


def _code() -> list[str]:
    """The code of ``python -c CODE`` (cut), as ``sys.orig_argv`` holds it; nothing if
    it cannot be told."""
    orig = sys.orig_argv
    at = orig.index("-c", 1) if "-c" in orig[1:] else None
    if at is None or at + 1 >= len(orig):
        return []
    code = orig[at + 1].strip()
    return [code if len(code) <= CODE_CHARS else code[: CODE_CHARS - 1] + "…"]
