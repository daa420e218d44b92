from __future__ import annotations

import hashlib
import io
from pathlib import Path

from mlform.storage.blobs import blob_key, ingest, ingest_stream
from mlform.storage.local import LocalStorage


def test_ingest_hashes_as_it_copies_and_keeps_one_copy(tmp_path: Path) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"x" * 3_000_000)
    storage = LocalStorage(tmp_path / "store")
    digest, size = ingest(storage, source)
    assert (digest, size) == (hashlib.sha256(b"x" * 3_000_000).hexdigest(), 3_000_000)
    kept = tmp_path / "store" / blob_key(digest)
    assert kept.read_bytes() == source.read_bytes()
    assert kept.stat().st_ino != source.stat().st_ino  # a user's file is never linked
    assert ingest(storage, source) == (digest, size)
    assert list((tmp_path / "store" / "blobs" / "incoming").iterdir()) == []


def test_files_mlform_owns_are_linked_not_copied(tmp_path: Path) -> None:
    source = tmp_path / "outputs" / "model.pkl"
    source.parent.mkdir()
    source.write_bytes(b"weights")
    storage = LocalStorage(tmp_path / "store")
    digest, _ = ingest(storage, source, link=True)
    assert (tmp_path / "store" / blob_key(digest)).stat().st_ino == source.stat().st_ino


def test_a_known_digest_already_kept_is_not_read_again(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    source = tmp_path / "a"
    source.write_bytes(b"abc")
    digest, _ = ingest(storage, source)
    source.write_bytes(b"changed but same length")  # would hash differently if read
    assert ingest(storage, source, known=digest)[0] == digest


def test_a_stream_is_kept_under_its_digest(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    digest, size = ingest_stream(storage, io.BytesIO(b"remote bytes"), "s3://b/model.bin")
    assert (tmp_path / "store" / blob_key(digest)).read_bytes() == b"remote bytes"
    assert size == 12
