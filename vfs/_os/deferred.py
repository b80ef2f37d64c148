"""Modules put in ``sys.modules`` unrun, their code run on first use (:func:`defer`).

A command's start-up pays for every module it imports, and some are imported for a
name or two that the command never uses (``inspect`` by ``dataclasses``,
``urllib.parse`` by ``pathlib``: ``vfs.cli.defer_inspect``) or for type names only
(``typing_extensions`` by ``pyfastcdc``: ``vfs.model.chunking``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any


def defer(name: str, **answers: object) -> Callable[[str], Any] | None:
    """Put module ``name`` in ``sys.modules`` unrun: its code runs in it when something
    first asks it for a name it lacks (``answers``, given beforehand, need not run it).
    None if it is loaded already, or not found (nothing to defer: ``import`` will say
    why); else a function that runs it if it has not run and returns one of its names
    (its own, not an answer).

    The module object is the one an import makes (``module_from_spec``); the first
    attribute it lacks (PEP 562 ``__getattr__``) runs its code in it
    (``exec_module``), once, under a lock, as the import would have, replacing the
    answers with its own names. Another thread asking for a name meanwhile waits for
    the code to have run, as it would wait on the import's lock, rather than find the
    module half made: ``__getattr__`` goes only once it has. A submodule is set on its
    package, as an import sets it. ``__path__``, which an ``import`` statement asks
    every module for (a package has one), is refused without running it.
    (``importlib.util.LazyLoader`` cannot do it on Python 3.11: an ``import``
    statement reads ``__spec__``, which loads the module at once.)
    """
    if name in sys.modules:
        return None
    import _thread
    import importlib.util

    spec = importlib.util.find_spec(name)  # (a submodule's: imports its package)
    if spec is None or spec.loader is None:
        return None
    loader = spec.loader
    module = importlib.util.module_from_spec(spec)
    lock = _thread.RLock()  # (re-entered if the module's own code asks it for a name)
    ran: list[bool] = []

    def load(attr: str) -> Any:
        if attr == "__path__":  # (not a package: asked by `from name import ...`)
            raise AttributeError(f"module {name!r} has no attribute {attr!r}")
        with lock:
            if not ran:
                ran.append(True)
                loader.exec_module(module)
                if module.__dict__.get("__getattr__") is load:
                    del module.__dict__["__getattr__"]
        try:
            return module.__dict__[attr]
        except KeyError:
            raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

    module.__dict__["__getattr__"] = load
    module.__dict__.update(answers)
    sys.modules[name] = module
    parent, _, child = name.rpartition(".")
    if parent:
        setattr(sys.modules[parent], child, module)
    return load
