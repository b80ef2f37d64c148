"""Reproducible test bytes."""

from __future__ import annotations

import random


def rand(n: int, seed: int = 0) -> bytes:
    """``n`` reproducible, incompressible bytes."""
    return random.Random(seed).randbytes(n)
