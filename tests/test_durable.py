from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlform import private, snapshot
from mlform.durable import settle
from mlform.hashing import Hasher
from mlform.kinds.endpoint import keys, routing
from mlform.registry.content import store_files
from mlform.storage.blobs import blob_key, ingest, ingest_stream
from mlform.storage.local import LocalStorage

Flushed = list[tuple[str, bool]]


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Flushed]:
    """Each real fsync as (what the descriptor names, kind), recorded as it happens.

    fsync has no other observable effect short of pulling the power, so this is the one
    place a call is watched: the real fsync still runs."""
    calls: Flushed = []
    real = os.fsync

    def watched(fd: int) -> None:
        path = os.readlink(f"/proc/self/fd/{fd}")
        calls.append((path, os.path.isdir(path)))
        real(fd)

    monkeypatch.setattr(os, "fsync", watched)
    yield calls


def test_settle_flushes_the_file_before_its_final_name_exists_then_the_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    partial = tmp_path / "incoming" / "x.partial"
    partial.parent.mkdir()
    partial.write_bytes(b"weights")
    target = tmp_path / "blobs" / "ab" / "abcd"
    seen_at_flush: list[bool] = []
    real = os.fsync

    def watching_target(fd: int) -> None:
        seen_at_flush.append(target.exists())
        real(fd)

    monkeypatch.setattr(os, "fsync", watching_target)
    settle(partial, target)
    assert target.read_bytes() == b"weights"
    assert not partial.exists()
    # the file, under its temporary name, while the final name did not yet exist; the two
    # new folders, each in its parent; the folder that names the file, after the rename
    assert seen_at_flush == [False, False, False, True]


def test_a_stored_blob_is_flushed_under_its_temporary_name_then_named(
    tmp_path: Path, flushed: Flushed
) -> None:
    source = tmp_path / "model.bin"
    source.write_bytes(b"w" * 10_000)
    store = tmp_path / "store"
    storage = LocalStorage(store)
    digest, _ = ingest(storage, source)
    kept = store / blob_key(digest)
    incoming = str(store / "blobs" / "incoming")
    file_flush = flushed[0]
    assert file_flush[0].startswith(incoming + "/") and file_flush[0].endswith(".partial")
    assert not file_flush[1]
    # blobs/ already existed (incoming/ is in it); sha256/ and <ab>/ were made
    assert flushed[1:] == [
        (str(store / "blobs"), True),
        (str(store / "blobs" / "sha256"), True),
        (str(kept.parent), True),
    ]
    assert kept.read_bytes() == source.read_bytes()


def test_no_partial_blob_is_visible_under_its_final_name_while_it_is_written(
    tmp_path: Path,
) -> None:
    content = b"m" * (3 << 20)

    final = tmp_path / "store" / blob_key(hashlib.sha256(content).hexdigest())
    storage = LocalStorage(tmp_path / "store")
    looks: list[tuple[bool, list[str]]] = []

    class Slow(io.BytesIO):
        """A remote file arriving in pieces: between pieces, look at the datastore."""

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            incoming = tmp_path / "store" / "blobs" / "incoming"
            partials = [p.name for p in incoming.rglob("*") if p.is_file()]
            looks.append((final.exists(), partials))
            return super().readinto(buffer[: 1 << 20])

    _, size = ingest_stream(storage, Slow(content), "remote/model.bin")
    assert size == len(content) and final.read_bytes() == content
    assert [seen for seen, _ in looks] == [False] * len(looks)
    assert all(partials == ["blob.partial"] for _, partials in looks[1:])
    assert len(looks) == 4  # three pieces, then the end


def test_snapshots_and_model_files_are_flushed_before_they_are_named(
    tmp_path: Path, flushed: Flushed
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n", encoding="utf-8")
    storage = LocalStorage(tmp_path / "store")
    snap = snapshot.scan(code, Hasher(tmp_path / "hashes.json"), repo_root=code)
    key = snapshot.store(snap, storage)
    kept = tmp_path / "store" / key
    files = [path for path, folder in flushed if not folder]
    assert len(files) == 1 and Path(files[0]).name.startswith(f".{kept.name}.")
    assert flushed[-1] == (str(kept.parent), True)

    flushed.clear()
    weights = tmp_path / "model.pkl"
    weights.write_bytes(b"pickled")
    (entry,) = store_files(storage, [("model.pkl", weights)])
    assert flushed[-1] == (str((tmp_path / "store" / blob_key(entry.sha256)).parent), True)
    assert [folder for _, folder in flushed].count(False) == 1


def test_the_states_side_files_are_flushed_under_a_temporary_name_then_named(
    tmp_path: Path, flushed: Flushed
) -> None:
    made = keys.ensure(tmp_path, "iris")
    kept = keys.path(tmp_path, "iris")
    assert json.loads(kept.read_text()) == made
    assert kept.stat().st_mode & 0o777 == 0o600
    file_flushes = [path for path, folder in flushed if not folder]
    assert len(file_flushes) == 1
    assert Path(file_flushes[0]).parent == kept.parent
    # a temporary name of its own beside it (not the pid's: threads share a pid)
    assert re.fullmatch(r"\.iris\.json\.[0-9a-f]{8}\.partial", Path(file_flushes[0]).name)
    assert flushed[-1] == (str(kept.parent), True)
    assert sorted(p.name for p in kept.parent.iterdir()) == ["iris.json"]

    flushed.clear()
    routes = routing.write_routes(tmp_path, "iris", {"blue": ("http://127.0.0.1:1", 100)})
    assert [folder for _, folder in flushed] == [False, True]
    assert flushed[-1] == (str(routes.parent), True)
    assert json.loads(routes.read_text())["deployments"]["blue"]["weight"] == 100


def test_a_side_file_is_never_seen_half_written(tmp_path: Path) -> None:
    target = tmp_path / "router.json"
    private.write(target, b'{"pid": 1}')
    real = os.fsync
    seen: list[bytes] = []

    def looking(fd: int) -> None:
        seen.append(target.read_bytes())  # what a reader finds while the new one is made
        real(fd)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", looking)
        private.write(target, b'{"pid": 2}')
    assert seen == [b'{"pid": 1}', b'{"pid": 2}']  # old whole, then new whole
    assert target.read_bytes() == b'{"pid": 2}'


def test_threads_writing_one_file_never_share_a_partial_file(tmp_path: Path) -> None:
    """Two threads of one process caching the same file (two runs probing one base
    image) each write their own partial file: neither replaces the other's mid-write."""
    import threading

    from mlform import private

    target = tmp_path / "cached.json"
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            for i in range(100):
                private.write(target, f"{n}-{i}".encode(), durable=False)
        except BaseException as err:  # a FileNotFoundError once shared names collided
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text().endswith("-99")
    assert [p.name for p in tmp_path.iterdir()] == ["cached.json"]  # no partial left
