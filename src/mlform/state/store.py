"""The DuckDB state file: opening it safely, migrating it, and writing in transactions.

Opening refuses, and never overwrites, a file that is not an mlform state, is damaged,
or was written by a newer mlform. Each `transaction()` is one change: it commits with
the serial bumped, or not at all, so a killed apply leaves a state the next continues.

A writer holds the writers' lock (`StateLock`) from open to close, and the file itself
(`Access`) only while its connection is open: `idle()` closes it between writes, so
readers, who take no writers' lock, read what has been committed so far.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mlform import __version__, private
from mlform.errors import StateError, StateIncompatible, StateLocked, StateUnreadable
from mlform.state.lock import Access, LockInfo, StateLock
from mlform.state.migrations import MIGRATIONS
from mlform.state.reads import ReadCache
from mlform.state.records import EVENT_COLUMNS, Record, Recorded

if TYPE_CHECKING:
    import duckdb


# A reader waits this long for a writer to pause (writers pause within IDLE of their
# last write, or after HOLD of continuous writing); a writer, this long for readers.
ACCESS_WAIT = 30.0
IDLE = 0.25  # seconds a writer's connection stays open unused
HOLD = 2.0  # seconds a writer keeps its connection, however busy, before letting readers in


@dataclass(frozen=True, slots=True)
class Identity:
    """Which state, and how far along: a saved plan is only valid for the same pair."""

    lineage: str | None
    serial: int


class Keeper(Protocol):
    """Where a writer's commits are kept beyond the local file: a remote state."""

    interrupted: LockInfo | None  # an earlier holder of its lock that never released it

    def persist(self, store: Store) -> None:
        """Copy what `store` has committed to where it is kept."""

    def release(self) -> None:
        """Give up what was taken to write (the remote lock)."""


class Store:
    def __init__(
        self,
        path: Path,
        con: duckdb.DuckDBPyConnection | None,
        lock: StateLock | None,
        *,
        write: bool = False,
        reads: ReadCache | None = None,
        access: Access | None = None,
    ) -> None:
        self.path = path
        self.keeper: Keeper | None = None
        self._con = con
        self.lock = lock
        self._write = write
        # What earlier readers read from this very file: a plan that changes nothing is
        # answered from it without opening DuckDB at all (see state/reads.py).
        self._reads = reads
        self._access = access
        self._connecting = threading.Lock()
        # The connection's lifetime against reads on other threads (`read`), for `idle`.
        self._guard = threading.Lock()
        self._users = 0
        self._in_transaction = False
        self._paused = False  # a writer's connection closed by idle(): reopened on use
        self._opened = self._used = time.monotonic()

    # -- opening -------------------------------------------------------------------------

    @classmethod
    def open(cls, path: Path, operation: str, *, write: bool, wait: float = 0.0) -> Store:
        """Lock and open the state. Reading a state that does not exist yet gives an empty
        store; writing creates it."""
        if not write and not path.exists():
            return cls(path, None, None)
        # Its folder first: the lock file would otherwise create it with the umask's mode.
        private.folder(path.parent)
        lock = None
        if write:
            lock = StateLock(path)
            lock.acquire(operation, exclusive=True, wait=wait)
        access = Access(path)
        try:
            access.acquire(exclusive=write, wait=max(wait, ACCESS_WAIT))
            _restrict(path)  # as an older mlform may have left them
            reads = ReadCache.load(path, [m.name for m in MIGRATIONS])
            if reads is not None:  # connected only if a read misses, or to write
                return cls(path, None, lock, write=write, reads=reads, access=access)
            con = _connect(path, read_only=not write)
            store = cls(path, con, lock, write=write, access=access)
            pending = store._pending_migrations()
            if pending and not write:
                store.close()  # upgrading needs the writer's lock, briefly
                cls.open(path, operation, write=True, wait=wait).close()
                return cls.open(path, operation, write=False, wait=wait)
            if pending:
                store._migrate(pending)
            if not write:  # a reader of a current schema keeps what it reads
                store._reads = ReadCache.start(path, [m.name for m in MIGRATIONS])
            return store
        except BaseException:
            access.release()
            if lock is not None:
                lock.release()
            raise

    @property
    def interrupted(self) -> LockInfo | None:
        """The holder of the previous lock, if it died without releasing it."""
        if self.keeper is not None and self.keeper.interrupted is not None:
            return self.keeper.interrupted
        return self.lock.interrupted if self.lock else None

    def close(self) -> None:
        try:
            if self.keeper is not None and self.exists:
                self.keeper.persist(self)
        finally:
            if self._con is not None:
                self._con.close()
                self._con = None
                _restrict(self.path)
            if self._reads is not None and not self._write:
                self._reads.save()  # still under the lock: the file is as it was read
            if self._access is not None:
                self._access.release()
            if self.lock is not None:
                self.lock.release()
            if self.keeper is not None:
                self.keeper.release()

    @contextmanager
    def settled(self) -> Iterator[Path]:
        """The file complete on disk and unchanging until the block ends, for a copy to
        be taken: the connection closed (DuckDB then checkpoints its WAL into the file)
        and not reopened meanwhile; the next use reopens it."""
        with self._connecting:
            while True:
                with self._guard:
                    # A closed connection has no users to wait for: a reader on another
                    # thread waits for `_connecting` to reopen it, after this block.
                    if self._con is None or not self._users:
                        if self._con is not None:
                            self._con.close()
                            self._con = None
                            self._paused = True
                            _restrict(self.path)
                            if self._access is not None:
                                self._access.release()
                        break
                time.sleep(0.005)
            yield self.path

    def idle(self, after: float = IDLE) -> None:
        """A writer's pause for a reader that waits: close the connection, letting it
        open the file, once it has not been used for `after` seconds, or has been open
        for HOLD; the next use opens it again. Called between writes (the executor does,
        each time round). With no reader waiting, the connection stays open."""
        if not self._write or self._con is None or self._access is None:
            return
        with self._guard:
            now = time.monotonic()
            if self._users or self._in_transaction or self._con is None:
                return
            if now - self._used < after and now - self._opened < HOLD:
                return
            if not self._access.waiting():
                return
            self._con.close()
            self._con = None
            self._paused = True
            _restrict(self.path)
            self._access.release()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._con is None and self._paused:
            with self._connecting:
                if self._con is None:
                    assert self._access is not None
                    self._access.acquire(exclusive=True, wait=ACCESS_WAIT)
                    self._con = _connect(self.path, read_only=False)
                    self._opened = time.monotonic()
        if self._con is None and self._reads is not None:
            with self._connecting:
                if self._con is None:
                    self._con = _connect(self.path, read_only=not self._write)
                    if self._write:
                        self._reads = None  # what is written next is not in it
                        pending = self._pending_migrations()
                        if pending:
                            self._migrate(pending)
        if self._con is None:
            raise StateError(f"no state at {self.path} yet: run `mlform apply` first")
        return self._con

    @property
    def connected(self) -> bool:
        """Whether this store has the file open now (a writer does between idle pauses)."""
        return self._con is not None

    @property
    def exists(self) -> bool:
        return self._con is not None or self._reads is not None or self._paused

    def _rows(self, sql: str, params: Sequence[Any] = (), *, cursor: bool = False) -> list[Any]:
        """Rows of a query, from what earlier readers read when the file is unchanged."""
        reads = self._reads
        if reads is not None:
            found = reads.get(sql, params)
            if found is not None:
                return found
        with self._guard:
            self._users += 1
        try:
            con = self.con
            if cursor:
                cur = con.cursor()
                try:
                    rows = cur.execute(sql, list(params)).fetchall()
                finally:
                    cur.close()
            else:
                rows = con.execute(sql, list(params)).fetchall()
        finally:
            with self._guard:
                self._users -= 1
                self._used = time.monotonic()
        reads = self._reads
        if reads is not None:
            reads.put(sql, params, rows)
        return rows

    def _pending_migrations(self) -> list[str]:
        con = self.con
        tables = {
            row[0] for row in con.execute("select table_name from duckdb_tables()").fetchall()
        }
        if not tables:
            return [m.name for m in MIGRATIONS]
        if "migrations" not in tables or "meta" not in tables:
            raise StateIncompatible(
                f"{self.path} is a DuckDB database but not an mlform state; point `state:` in "
                "workspace.yml at another file. mlform will not modify it"
            )
        applied = [row[0] for row in con.execute("select name from migrations").fetchall()]
        known = [m.name for m in MIGRATIONS]
        newer = [name for name in applied if name not in known]
        if newer:
            writer = con.execute("select written_by from meta").fetchone()
            raise StateIncompatible(
                f"{self.path} was written by a newer mlform ({writer[0] if writer else '?'}; "
                f"schema {newer[-1]}); this is mlform {__version__}. Upgrade mlform to use it"
            )
        return [name for name in known if name not in applied]

    def _migrate(self, pending: Sequence[str]) -> None:
        con = self.con
        con.execute(
            "create table if not exists migrations "
            "(name varchar not null, applied_at timestamptz not null, mlform_version varchar)"
        )
        for migration in MIGRATIONS:
            if migration.name not in pending:
                continue
            con.execute("begin")
            try:
                con.execute(migration.sql)
                if migration.name == MIGRATIONS[0].name:
                    con.execute(
                        "insert into meta values (?, 0, now(), ?)",
                        [str(uuid.uuid4()), f"mlform {__version__}"],
                    )
                con.execute(
                    "insert into migrations values (?, now(), ?)", [migration.name, __version__]
                )
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise

    # -- reading -------------------------------------------------------------------------

    def identity(self) -> Identity:
        if not self.exists:
            return Identity(None, 0)
        row = self._rows("select lineage, serial from meta")[0]
        return Identity(str(row[0]), int(row[1]))

    def workspace(self) -> str | None:
        """The name of the workspace this state belongs to; None before it records one."""
        if not self.exists:
            return None
        row = self._rows("select workspace from meta")[0]
        return None if row[0] is None else str(row[0])

    def claim(self, workspace: str) -> None:
        """Record the workspace this state belongs to, if it records none yet."""
        if self.workspace() is None:
            self.con.execute("update meta set workspace = ?", [workspace])

    def recorded(self) -> dict[str, Recorded]:
        if not self.exists:
            return {}
        rows = self._rows(
            "select address, kind, name, digest, components, spec, outputs, status, error, "
            "protect, source from resources"
        )
        # The three JSON columns of every row in one parse: each json.loads call costs
        # microseconds before it reads a byte, and a big workspace has thousands of rows.
        parsed = json.loads("[" + ",".join(f"[{r[4]},{r[5]},{r[6]}]" for r in rows) + "]")
        completed: dict[str, frozenset[str]] = {
            address: frozenset(digests)
            for address, digests in self._rows(
                "select runconfig, list(distinct digest) from runs where status = 'completed' "
                "and runconfig is not null and digest is not null group by runconfig"
            )
        }
        return {
            row[0]: Recorded(
                row[0],
                row[1],
                row[2],
                row[3],
                components,
                spec,
                outputs,
                row[7],
                row[8],
                row[9],
                row[10],
                completed=completed.get(row[0], frozenset()),
            )
            for row, (components, spec, outputs) in zip(rows, parsed, strict=True)
        }

    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """A query safe from any thread: DuckDB cursors are connections of their own."""
        if not self.exists:
            return []
        return self._rows(sql, params, cursor=True)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        if not self.exists:
            return []
        return self._rows(sql, params)

    # -- writing -------------------------------------------------------------------------

    @contextmanager
    def transaction(self, *, bump: bool = True) -> Iterator[duckdb.DuckDBPyConnection]:
        """One change, committed whole or not at all. `bump`: a change of what the
        workspace is (the serial a saved plan is checked against); audit events and API
        tokens are not, so they leave a saved plan valid."""
        con = self.con
        self._in_transaction = True
        try:
            con.execute("begin")
            try:
                yield con
                if bump:
                    con.execute(
                        "update meta set serial = serial + 1, written_by = ?",
                        [f"mlform {__version__}"],
                    )
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        finally:
            self._in_transaction = False
            self._used = time.monotonic()
        _restrict(self.path)  # DuckDB makes a new WAL with the umask's mode after a checkpoint
        if bump and self.keeper is not None:
            self.keeper.persist(self)  # a change with effects outside mlform is kept at once

    def write(self, apply_id: str, records: Sequence[Record]) -> None:
        with self.transaction() as con:
            for record in records:
                record.write(con, apply_id)

    def start_apply(self, apply_id: str) -> None:
        con = self.con
        con.execute(
            "update applies set status = 'interrupted', ended_at = now() where status = 'running'"
        )
        con.execute(
            "insert into applies values (?, now(), null, 'running', ?, ?, null)",
            [apply_id, os.getpid(), socket.gethostname()],
        )

    def finish_apply(self, apply_id: str, status: str, summary: str) -> None:
        self.con.execute(
            "update applies set status = ?, ended_at = now(), summary = ? where id = ?",
            [status, summary, apply_id],
        )

    def event(self, apply_id: str, address: str, action: str, status: str, message: str) -> None:
        self.con.execute(
            f"insert into events ({EVENT_COLUMNS}) values (now(), ?, ?, ?, ?, ?)",
            [apply_id, address, action, status, message],
        )


def _connect(path: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    # start-up: DuckDB, only when a read is not answered from state.duckdb.reads
    import duckdb

    if not read_only:
        private.folder(path.parent)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as err:
        text = str(err)
        if "lock" in text.lower():
            raise StateLocked(
                f"the state {path} is open in another process ({text.splitlines()[0]}); "
                "wait for it to finish"
            ) from err
        raise StateUnreadable(_unreadable(path, text)) from err
    except duckdb.Error as err:
        raise StateUnreadable(_unreadable(path, str(err))) from err
    _restrict(path)
    return con


def _restrict(path: Path) -> None:
    """The state, its WAL, its reads and its lock readable by their owner only: DuckDB
    creates the first two with the umask's mode and offers no setting for it. The folder
    mlform keeps them in is 0700 as well (`private`), so the moment between creation and
    this is not an opening. A mode already right is left alone: a chmod changes the
    file's ctime, which tells readers (`reads`) that the file changed."""
    for side in ("", ".wal", ".reads", ".lock"):
        private.restrict(path.with_name(path.name + side))


def _unreadable(path: Path, why: str) -> str:
    return (
        f"{path} is not a readable mlform state ({why.splitlines()[0]}). mlform will not "
        "overwrite it: restore it from a backup, or move it aside to start a new state"
    )
