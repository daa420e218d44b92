"""Whole states moved by hand: `state pull`, `state push`, `state migrate`, and
`force-unlock`, for a local state file and a remote state alike.

A state is named by where it is: a local file (`Path`) or a remote state (`RemoteSpec`).
A copy taken is always a complete DuckDB file (its WAL checkpointed in), so what is
pulled, pushed or migrated is the state as committed, not a file caught mid-write.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from pathlib import Path

from mlform import private
from mlform.errors import StateError, StateIncompatible, StateLocked
from mlform.state import backends
from mlform.state.backends import RemoteSpec
from mlform.state.lock import Access, LockInfo, StateLock, Unlocked, alive, force_unlock
from mlform.state.remote import RemoteState, lock_info
from mlform.state.store import ACCESS_WAIT, Identity

Location = Path | RemoteSpec


def location(value: str, root: Path) -> Location:
    """A URL or a path (relative to `root`) as a state's location; StateError if neither."""
    try:
        found = backends.parse(value)
    except backends.BadState as err:
        raise StateError(str(err)) from err
    return found if isinstance(found, RemoteSpec) else (root / value).resolve()


def name(where: Location) -> str:
    return where.url if isinstance(where, RemoteSpec) else str(where)


def pull(where: Location, home: Path, dest: Path) -> Identity:
    """The state as last committed, into the file `dest` (replaced whole)."""
    dest = dest.resolve()
    with tempfile.TemporaryDirectory(dir=dest.parent, prefix=".mlform-pull-") as scratch:
        copy = Path(scratch) / "state.duckdb"
        if isinstance(where, RemoteSpec):
            fd = private.open_fd(copy, os.O_WRONLY | os.O_TRUNC)
            with os.fdopen(fd, "wb") as handle:
                RemoteState(where, home).pull(handle)
        else:
            _snapshot(where, copy)
        identity = identify(copy)
        os.replace(copy, dest)
    return identity


def push(where: Location, home: Path, source: Path, *, force: bool, wait: float = 0.0) -> Identity:
    """`source` made the state; refused for another lineage or an older serial."""
    identity = identify(source)
    assert identity.lineage is not None
    if isinstance(where, RemoteSpec):
        check = None if force else functools.partial(_check, source, identity, where.url)
        RemoteState(where, home).push(source, identity, check=check, wait=wait)
        return identity
    lock = StateLock(where)
    lock.acquire("state push", wait=wait)
    try:
        if where.exists() and not force:
            present = identify(where)
            _check(source, identity, name(where), present)
        access = Access(where)
        access.acquire(exclusive=True, wait=max(wait, ACCESS_WAIT))
        try:
            _place(source, where)
        finally:
            access.release()
    finally:
        lock.release()
    return identity


def migrate(source: Location, target: Location, home: Path, *, wait: float = 0.0) -> Identity:
    """Copy the state from `source` to `target`, which must hold none yet, with the
    source locked meanwhile so that nothing is committed there and lost."""
    if name(source) == name(target):
        raise StateError(f"the state is at {name(target)} already; nothing to migrate")
    if _exists(target, home):
        raise StateError(
            f"there is a state at {name(target)} already; migrate moves a state to where "
            "there is none. Compare them with `mlform state pull`, or remove that one first"
        )
    with tempfile.TemporaryDirectory(dir=private.folder(home), prefix=".migrate-") as scratch:
        copy = Path(scratch) / "state.duckdb"
        if isinstance(source, RemoteSpec):
            remote = RemoteState(source, home)
            held = remote.backend.lock(lock_info("state migrate"), wait=wait)
            try:
                identity = pull(source, home, copy)
                held.check()
                push(target, home, copy, force=False, wait=wait)
            finally:
                held.release()
            return identity
        lock = StateLock(source)
        lock.acquire("state migrate", wait=wait)
        try:
            if not source.exists():
                raise StateError(f"there is no state at {source} to migrate")
            identity = pull(source, home, copy)
            push(target, home, copy, force=False, wait=wait)
        finally:
            lock.release()
        return identity


def unlock(where: Location, home: Path, lock_id: str, *, force: bool) -> Unlocked:
    """Break the lock `lock_id`, refused while its holder runs on this machine unless
    `force` (as for a local state: see `lock.force_unlock`)."""
    if not isinstance(where, RemoteSpec):
        return force_unlock(where, lock_id, force=force)
    backend = RemoteState(where, home).backend
    holder = backend.holder()
    if holder is not None and holder.id == lock_id and not force and _here_and_running(holder):
        raise StateLocked(
            f"lock {holder.id} is held by {holder.describe()}, which is still running: "
            f"removing the lock would let another apply write beside it. Wait for it to "
            f"finish, or stop it (kill {holder.pid}); if it is hung and must be left "
            f"running, `mlform force-unlock {holder.id} --force` removes the lock anyway"
        )
    broken = backend.break_lock(lock_id)
    warning = None
    if broken.host != socket.gethostname():
        warning = (
            f"lock {broken.id} was taken on host {broken.host}, where mlform cannot see "
            f"whether pid {broken.pid} still runs; make sure no mlform process runs there"
        )
    return Unlocked(broken, warning)


def identify(path: Path) -> Identity:
    """The lineage and serial a state file records; StateIncompatible if it is none."""
    import duckdb

    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as err:
        raise StateIncompatible(
            f"{path} is not a readable mlform state ({str(err).splitlines()[0]})"
        ) from err
    try:
        row = con.execute("select lineage, serial from meta").fetchone()
    except duckdb.Error as err:
        raise StateIncompatible(f"{path} is a DuckDB database but not an mlform state") from err
    finally:
        con.close()
    if row is None:
        raise StateIncompatible(f"{path} is an mlform state with no identity yet")
    return Identity(str(row[0]), int(row[1]))


def _check(source: Path, identity: Identity, target: str, present: Identity) -> None:
    if present.lineage != identity.lineage:
        raise StateError(
            f"{source} is another state (lineage {identity.lineage}) than the one at {target} "
            f"(lineage {present.lineage}); pushing it would replace that state's history. "
            "Pass --force if that is what you mean"
        )
    if present.serial > identity.serial:
        raise StateError(
            f"{source} is older (serial {identity.serial}) than the state at {target} "
            f"(serial {present.serial}); pushing it would lose the changes between. Pass "
            "--force if that is what you mean"
        )


def _exists(where: Location, home: Path) -> bool:
    if isinstance(where, RemoteSpec):
        return RemoteState(where, home).exists()
    return where.exists()


def _snapshot(state: Path, copy: Path) -> None:
    """A complete copy of a local state: its file and WAL copied while no writer has them
    open, then checkpointed together."""
    import duckdb

    if not state.exists():
        raise StateError(f"there is no state at {state} yet: run `mlform apply` first")
    access = Access(state)
    access.acquire(exclusive=False, wait=ACCESS_WAIT)
    try:
        shutil.copyfile(state, copy)
        wal = state.with_name(state.name + ".wal")
        if wal.exists():
            shutil.copyfile(wal, copy.with_name(copy.name + ".wal"))
    finally:
        access.release()
    duckdb.connect(str(copy)).close()  # replays the WAL into the file


def _place(source: Path, target: Path) -> None:
    private.folder(target.parent)
    partial = target.with_name(f".{target.name}.push.partial")
    shutil.copyfile(source, partial)
    private.restrict(partial)
    target.with_name(target.name + ".wal").unlink(missing_ok=True)
    os.replace(partial, target)


def _here_and_running(holder: LockInfo) -> bool:
    return holder.host == socket.gethostname() and alive(holder)
