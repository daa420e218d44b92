"""A remote state as one machine keeps it: a read copy, a working copy, and what each
was copied from.

Readers take no lock: they ask the store for the state's ETag, download it only when it
moved, and open the copy (`read/state.duckdb`). A writer takes the remote lock, brings
its working copy (`state.duckdb`) up to the latest version, and persists it after every
change that has effects outside mlform and when it closes, each time with `If-Match` on
the ETag it was based on: a state that moved underneath is never overwritten.

Each copy has a `.remote` file beside it naming the version it holds (ETag, lineage,
serial, SHA-256 of the file). A working copy whose file no longer matches its digest
holds commits never persisted: an apply killed between a commit and its upload. The
next writer on this machine persists them first if the state has not moved since; if it
has, they are set aside (`unpersisted-<time>.duckdb`), never merged or pushed blindly.
A working copy DuckDB cannot read (an apply killed as it wrote the file) is set aside
too (`unreadable-<time>.duckdb`), and the persisted state used: the store holds the
state, this machine a copy of it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from mlform import private
from mlform.errors import StateConflict, StateError, StateUnreadable
from mlform.hashing import sha256_file
from mlform.state.backends import Backend, Held, RemoteSpec, Version, connect
from mlform.state.backends.peek import peek
from mlform.state.lock import LockInfo
from mlform.state.store import Identity, Store

Log = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Copied:
    """The version a local copy holds, and the digest of the file as it was copied."""

    etag: str
    lineage: str | None
    serial: int
    sha256: str

    @staticmethod
    def load(copy: Path) -> Copied | None:
        try:
            return Copied(**json.loads(_side(copy).read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def save(self, copy: Path) -> None:
        private.write(_side(copy), json.dumps(asdict(self)).encode())


class RemoteState:
    def __init__(self, spec: RemoteSpec, home: Path) -> None:
        self.spec = spec
        self.url = spec.url
        self.folder = home / "remote" / spec.slug
        self.work = self.folder / "state.duckdb"
        self.reading = self.folder / "read" / "state.duckdb"
        self._backend: Backend | None = None
        # What `exists` just saw, for the read that follows it in the same command: one
        # request to the store, not two. Taken once; every later look asks again.
        self._seen: Version | None = None

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            self._backend = connect(self.spec)
        return self._backend

    def exists(self) -> bool:
        self._seen = self._latest()
        return self._seen is not None

    def _latest(self) -> Version | None:
        """The latest version's identity: one signed HEAD, the SDK only if need be."""
        found = peek(self.spec)
        if isinstance(found, str):
            return self.backend.head()
        return found

    def open(self, operation: str, *, write: bool, wait: float = 0.0, log: Log = print) -> Store:
        return self._writer(operation, wait, log) if write else self._reader(operation, wait)

    # -- reading -------------------------------------------------------------------------

    def _reader(self, operation: str, wait: float) -> Store:
        """The last persisted state, downloaded only if it moved since this machine read it."""
        private.folder(self.reading.parent)
        with _exclusive(self.folder / "read.lock"):  # one download at a time here
            latest, self._seen = self._seen or self._latest(), None
            if latest is None:
                return Store(self.reading, None, None)
            copied = Copied.load(self.reading)
            if copied is None or copied.etag != latest.etag or not self.reading.exists():
                self._download(self.reading)
        return Store.open(self.reading, operation, write=False, wait=wait)

    # -- writing -------------------------------------------------------------------------

    def _writer(self, operation: str, wait: float, log: Log) -> Store:
        held = self.backend.lock(lock_info(operation), wait=wait)
        try:
            private.folder(self.folder)
            unpersisted = self._catch_up(log)
            store, recovered = self._open_work(operation, wait, log)
            unpersisted = unpersisted and not recovered
        except BaseException:
            held.release()
            raise
        store.keeper = _Keeper(self, held)
        if unpersisted:
            try:
                store.keeper.persist(store)
            except StateConflict:
                # The state moved on between the look and the write: the upload of a writer
                # killed mid-way landed late (its lock broken meanwhile), or another
                # writer's. As when it had moved on before the look, this machine's
                # commits are kept aside and the state as persisted is used.
                store.keeper = None  # closed without persisting, the lock still held
                store.close()
                try:
                    self._catch_up(log)
                    store = Store.open(self.work, operation, write=True, wait=wait)
                except BaseException:
                    held.release()
                    raise
                store.keeper = _Keeper(self, held)
            except BaseException:
                store.close()
                raise
        return store

    def _open_work(self, operation: str, wait: float, log: Log) -> tuple[Store, bool]:
        """The working copy, opened to write; True with it when it was unreadable and
        has been replaced by the persisted state. The persisted state is the state, this
        copy a cache of it plus what an interrupted apply had not persisted yet: one
        that DuckDB cannot read (an apply killed as it wrote it) is set aside, never
        deleted, and the state as persisted is used."""
        try:
            return Store.open(self.work, operation, write=True, wait=wait), False
        except StateUnreadable as err:
            if self.backend.head() is None:
                raise  # nothing persisted to start from: the copy is all there is
            aside = self._set_aside("unreadable")
            log(
                f"this machine's copy of {self.url} could not be read "
                f"({str(err).partition('(')[2].partition(')')[0] or err}): it is kept in "
                f"{aside}, and the state as persisted is used. What an interrupted apply "
                "on this machine committed after its last upload is not in it; "
                "`mlform plan` shows what still differs"
            )
        self._download(self.work)
        return Store.open(self.work, operation, write=True, wait=wait), True

    def _catch_up(self, log: Log) -> bool:
        """Make the working copy the latest persisted version; True if it holds commits
        of an earlier apply on this machine, on top of that version, still to persist."""
        copied = Copied.load(self.work)
        latest = self.backend.head()
        ahead = self._ahead(copied)
        if latest is None:
            if copied is not None:
                raise StateError(
                    f"the state {self.url} is gone, though this machine persisted it there "
                    f"(serial {copied.serial}). If it was removed by mistake, restore it "
                    f"with `mlform state push {self.work}`; to start over, remove {self.folder}"
                )
            if not ahead:
                _remove(self.work)
            return False  # a new state, or one never persisted yet: created on persist
        if copied is not None and copied.etag == latest.etag and self.work.exists():
            if ahead:
                log(
                    f"persisting to {self.url} what an interrupted apply on this machine "
                    "committed but did not persist"
                )
            return ahead
        if ahead and self.work.exists():
            aside = self._set_aside("unpersisted")
            log(
                f"this machine's copy of {self.url} held changes never persisted, and the "
                f"state has moved on since: they are kept in {aside}, not merged. The state "
                "as persisted is used; `mlform plan` shows what still differs"
            )
        self._download(self.work)
        return False

    def _set_aside(self, why: str) -> Path:
        """Move the working copy (and its WAL) to `<why>-<time>.duckdb` beside it, kept."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        aside = self.folder / f"{why}-{stamp}.duckdb"
        _move(self.work, aside)
        return aside

    def _ahead(self, copied: Copied | None) -> bool:
        """Whether the working copy holds commits its `.remote` file does not account for."""
        if not self.work.exists():
            return False
        wal = self.work.with_name(self.work.name + ".wal")
        if wal.exists() and wal.stat().st_size > 0:
            return True
        return copied is None or sha256_file(self.work) != copied.sha256

    def persist(self, store: Store, held: Held) -> None:
        held.check()
        identity = store.identity()
        assert identity.lineage is not None
        with store.settled() as path:
            copied = Copied.load(path)
            digest = sha256_file(path)
            if copied is not None and copied.sha256 == digest:
                return  # nothing new since the last upload
            etag = self.backend.upload(
                path,
                if_match=copied.etag if copied is not None else None,
                lineage=identity.lineage,
                serial=identity.serial,
            )
            Copied(etag, identity.lineage, identity.serial, digest).save(path)

    def _download(self, copy: Path) -> Version:
        """Replace `copy` with the latest version, whole or not at all."""
        private.folder(copy.parent)
        partial = copy.with_name(f".{copy.name}.{uuid.uuid4().hex[:8]}.partial")
        try:
            fd = private.open_fd(partial, os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "wb") as handle:
                version = self.backend.download(handle)
                handle.flush()
                os.fsync(handle.fileno())
            digest = sha256_file(partial)
            # A WAL left beside the old copy would be replayed onto the new one.
            _remove(copy, main=False)
            os.replace(partial, copy)
        finally:
            partial.unlink(missing_ok=True)
        Copied(version.etag, version.lineage, version.serial, digest).save(copy)
        return version

    # -- moving whole states ------------------------------------------------------------

    def pull(self, dest: BinaryIO) -> Version:
        """The latest version, as persisted, into `dest`."""
        return self.backend.download(dest)

    def push(
        self,
        source: Path,
        identity: Identity,
        *,
        check: Callable[[Identity], None] | None,
        wait: float,
    ) -> str:
        """Make `source` the state, under the lock, once `check` accepts the identity of
        the state it replaces (None: replace whatever is there)."""
        assert identity.lineage is not None
        held = self.backend.lock(lock_info("state push"), wait=wait)
        try:
            latest = self.backend.head()
            if latest is not None and check is not None:
                check(Identity(latest.lineage, latest.serial))
            held.check()
            return self.backend.upload(
                source,
                if_match=latest.etag if latest is not None else None,
                lineage=identity.lineage,
                serial=identity.serial,
            )
        finally:
            held.release()


class _Keeper:
    def __init__(self, remote: RemoteState, held: Held) -> None:
        self._remote = remote
        self._held = held
        self.interrupted = held.interrupted

    def persist(self, store: Store) -> None:
        self._remote.persist(store, self._held)

    def release(self) -> None:
        self._held.release()


def lock_info(operation: str) -> LockInfo:
    """A new lock's details: this process, now."""
    return LockInfo(
        id=uuid.uuid4().hex[:8],
        pid=os.getpid(),
        host=socket.gethostname(),
        since=datetime.now(UTC).isoformat(timespec="seconds"),
        operation=operation,
    )


def _side(copy: Path) -> Path:
    return copy.with_name(copy.name + ".remote")


def _remove(copy: Path, *, main: bool = True) -> None:
    for side in (".wal", ".remote", "") if main else (".wal",):
        copy.with_name(copy.name + side).unlink(missing_ok=True)


def _move(copy: Path, aside: Path) -> None:
    for side in ("", ".wal"):
        with contextlib.suppress(FileNotFoundError):
            os.replace(copy.with_name(copy.name + side), aside.with_name(aside.name + side))
    _side(copy).unlink(missing_ok=True)


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[None]:
    fd = private.open_fd(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
