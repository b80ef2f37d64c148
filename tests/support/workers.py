"""What a worker process runs on what it was given pickled (a module of its own, so
that multiprocessing's spawn imports only this to find it)."""

from __future__ import annotations

from typing import Any


def cat_labels(fs: Any) -> bytes:
    """``data/labels.csv`` as the filesystem ``fs`` reads it."""
    data: bytes = fs.cat_file("/data/labels.csv")
    return data
