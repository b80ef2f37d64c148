"""The working tree as one object: :class:`Overlay`, the overlay's parts stacked.

Each part is a class over the one before it (state, changes, copy-up, rebase,
status), in its own module; this one names the whole, which the FUSE handlers
(``daemon.fs``) and snapshots (``daemon.snapshot``) use.
"""

from __future__ import annotations

from daemon.overlay.status import Status


class Overlay(Status):
    """The working tree: its nodes, its work directory, and every change to them."""
