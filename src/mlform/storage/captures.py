"""Captured requests on a datastore that is not a local folder.

A deployment writes its captures (serving/capture.py) as Parquet files into a folder on
its machine. With a local default datastore that folder is the datastore itself; with one
in Azure Blob Storage or S3 it is an outbox, `.mlform/captures-outbox/`, and every mlform
process that writes the state (an apply, the agent) moves the finished files from it to
the datastore under the same keys, `captures/<endpoint>/<deployment>/date=…/part-….parquet`.
A file still being written has a dot name and is left for the next time.
"""

from __future__ import annotations

from pathlib import Path

from mlform.storage import Storage

OUTBOX = "captures-outbox"


def outbox(home: Path) -> Path:
    return home / OUTBOX


def upload(storage: Storage, box: Path) -> int:
    """Move every finished capture file in `box` to `storage`; return how many."""
    moved = 0
    for path in sorted(box.glob("captures/*/*/*/*.parquet")):
        if path.name.startswith("."):
            continue  # still being written
        storage.put(path, path.relative_to(box).as_posix())
        path.unlink()
        moved += 1
    return moved
