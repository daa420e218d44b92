"""Content-addressed objects in a datastore: `blobs/sha256/<ab>/<digest>`.

Data versions, model versions and snapshots share this space, so a file kept twice
under any of them is stored once. Ingesting reads the source once: on a local datastore
the bytes are hashed as they are copied (or not copied at all: a reflink where the
filesystem shares blocks, a hard link for files mlform owns), then made durable and
renamed into place (`durable.settle`) before the caller records it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import uuid
from pathlib import Path
from typing import BinaryIO

from mlform.durable import settle
from mlform.errors import DatastoreError
from mlform.hashing import sha256_file
from mlform.storage import Storage

_BLOCK = 1 << 20
_FICLONE = 0x40049409


def blob_key(sha256: str) -> str:
    return f"blobs/sha256/{sha256[:2]}/{sha256}"


def ingest(
    storage: Storage, source: Path, *, link: bool = False, known: str | None = None
) -> tuple[str, int]:
    """Keep `source` in `storage` under its content digest; return (sha256, size).

    `known` is a digest the caller already has (from the plan's stat-cached hashing): a
    blob already kept under it is not read again. `link=True` may hard-link instead of
    copying: only for files mlform owns (a finished run's outputs), since a user
    rewriting a linked file in place would change the blob.
    """
    if known is not None and storage.exists(blob_key(known)):
        return known, source.stat().st_size
    root = storage.local_path("blobs")
    if root is None:  # remote: hash, then upload what was hashed
        digest = sha256_file(source)
        if not storage.exists(blob_key(digest)):
            storage.put(source, blob_key(digest))
        return digest, source.stat().st_size
    staging = root / "incoming"
    staging.mkdir(parents=True, exist_ok=True)
    partial = staging / f"{uuid.uuid4().hex}.partial"
    try:
        if link:
            digest, size = _linked(source, partial)
        else:
            with source.open("rb") as src:
                digest, size = _copied(src, partial)
        _settle(storage, partial, digest)
    except OSError as err:
        raise DatastoreError(f"cannot store {source} in {storage.url}: {err}") from err
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return digest, size


def ingest_stream(storage: Storage, stream: BinaryIO, name: str) -> tuple[str, int]:
    """Keep what `stream` holds (a remote file being read), hashed as it is written."""
    root = storage.local_path("blobs")
    base = root / "incoming" if root is not None else None
    if base is not None:
        base.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=base) as folder:
        partial = Path(folder) / "blob.partial"
        try:
            digest, size = _copied(stream, partial)
            if root is not None:
                _settle(storage, partial, digest)
            elif not storage.exists(blob_key(digest)):
                storage.put(partial, blob_key(digest))
        except OSError as err:
            raise DatastoreError(f"cannot store {name} in {storage.url}: {err}") from err
    return digest, size


def _copied(src: BinaryIO, partial: Path) -> tuple[str, int]:
    sha = hashlib.sha256()
    size = 0
    with partial.open("wb") as dst:
        if _reflinked(src, dst):
            src.seek(0)
            while chunk := src.read(_BLOCK):
                sha.update(chunk)
                size += len(chunk)
            return sha.hexdigest(), size
        view = memoryview(bytearray(_BLOCK))
        while read := src.readinto(view):  # type: ignore[attr-defined]
            sha.update(view[:read])
            dst.write(view[:read])
            size += read
    return sha.hexdigest(), size


def _reflinked(src: BinaryIO, dst: BinaryIO) -> bool:
    try:
        fcntl.ioctl(dst.fileno(), _FICLONE, src.fileno())
    except (OSError, ValueError, AttributeError):
        return False  # not the same filesystem, no shared blocks, or not a real file
    return True


def _linked(source: Path, partial: Path) -> tuple[str, int]:
    digest = sha256_file(source)
    size = source.stat().st_size
    try:
        os.link(source, partial)
    except OSError:  # another filesystem, or links not allowed: copy
        with source.open("rb") as src:
            return _copied(src, partial)
    return digest, size


def _settle(storage: Storage, partial: Path, digest: str) -> None:
    target = storage.local_path(blob_key(digest))
    assert target is not None
    if target.is_file():
        return  # already kept: content-addressed, so it is the same bytes
    settle(partial, target)
