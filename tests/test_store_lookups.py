"""Whether an object is stored, asked of a store whose pack indexes are not merged;
and files written from parts (the staging index).

The first ``PROBE_IDS`` ids asked about are looked for by bisecting each pack's index
file, the rest in the set of all their ids: either way a stored object is found (and
not stored again) and a missing one is not.
"""

from __future__ import annotations

from pathlib import Path

from vfs.model.ids import hash_bytes
from vfs.store.objects import PROBE_IDS, ObjectStore, ObjKind


def test_stored_objects_are_found_before_and_after_the_set_of_ids_is_built(
    tmp_path: Path,
) -> None:
    root = tmp_path / "objects"
    stored = []
    for pack in range(3):  # three packs, each with its own index file
        store = ObjectStore.create(root)
        for i in range(40):
            stored.append(store.put(ObjKind.CHUNK, f"pack {pack} object {i}".encode() * 9)[0])
        store.close()
    missing = [hash_bytes(f"never stored {i}".encode()) for i in range(len(stored))]
    fresh = ObjectStore(root)
    asked = [oid for pair in zip(stored, missing, strict=True) for oid in pair]
    assert len(asked) > 2 * PROBE_IDS  # (both ways of looking are used)
    assert [fresh.has(oid) for oid in asked] == [oid in stored for oid in asked]
    again = ObjectStore(root)  # a put of a stored object writes nothing, a new one does
    assert again.put(ObjKind.CHUNK, b"pack 2 object 39" * 9) == (stored[-1], 0)
    assert again.put(ObjKind.CHUNK, b"new") == (hash_bytes(b"new"), 3)
    again.close()
    assert ObjectStore(root).has(hash_bytes(b"new"))


def test_a_file_written_from_parts_holds_them_joined(tmp_path: Path) -> None:
    """``write_atomic`` of parts (the staging index's header, names, columns and rows)
    writes the bytes joining them gives, empty parts and views included."""
    from vfs.store.durable import write_atomic

    parts: list[bytes | memoryview] = [
        b"head", b"", memoryview(b"x" * 70_000)[1:], memoryview(bytearray(3)), b"end",
    ]  # fmt: skip
    write_atomic(tmp_path / "f", parts)
    assert (tmp_path / "f").read_bytes() == b"".join(parts)
    write_atomic(tmp_path / "f", [memoryview(b"%d," % i) for i in range(3000)])  # > IOV_MAX
    assert (tmp_path / "f").read_bytes() == b"".join(b"%d," % i for i in range(3000))
