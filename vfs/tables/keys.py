"""Which columns a row diff's key names, as the user gave it.

A key is given as one or more items (``--key`` values; the dashboard's key field):
``--key a,b`` and ``--key a --key b`` both name a and b. An item names one column
when a column of either side has that exact name (a name holding a comma, or
starting or ending with a space); otherwise it is split on commas, and each part
names the column of that exact name, else the one its surrounding spaces stripped
name (``--key "id, v"`` is id and v; ``--key " v"`` is the column `` v`` where the
file has one). An item with an empty part (``--key ,``, ``--key id,``) is refused.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from vfs.errors import UsageError
from vfs.quoting import quote_name
from vfs.tables.result import CLI, Words


def check(given: Sequence[str], words: Words = CLI) -> None:
    """UsageError, in ``words``, for an item with an empty part (see the module doc)."""
    for item in given:
        if any(not part.strip() for part in item.split(",")):
            raise UsageError(f"{words.key} {quote_name(item)} holds an empty column name")


def columns(given: Sequence[str], names: Collection[str] = ()) -> list[str]:
    """The columns the items ``given`` name among the columns ``names`` (both sides');
    a part no column holds is named stripped (the diff then says it is missing)."""
    out: list[str] = []
    for item in given:
        if item in names:
            out.append(item)
            continue
        for part in item.split(","):
            out.append(part if part in names else part.strip())
    return out
