"""One writer at a time: an flock on `<state>.lock`, with the holder written inside.
Readers take no part in it: they open the file between a writer's writes (`Access`).

The kernel drops an flock when its process dies, however it dies, so a killed apply
never leaves the state locked on this machine; the next one notes the interruption and
continues. The file's content names the holder (lock ID, pid, host, since, operation)
for the message a refused process prints, and for `mlform force-unlock ID`, which
removes the file when a lock is truly stuck (a network filesystem, a holder on another
host), and refuses while its holder still runs here unless `--force` (a hung process).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlform import private
from mlform.errors import StateError, StateLocked


@dataclass(frozen=True, slots=True)
class LockInfo:
    id: str
    pid: int
    host: str
    since: str
    operation: str

    def describe(self) -> str:
        return (
            f"`mlform {self.operation}` (lock ID {self.id}, pid {self.pid} on {self.host}, "
            f"since {self.since})"
        )


class StateLock:
    def __init__(self, state_path: Path) -> None:
        self.path = state_path.with_name(state_path.name + ".lock")
        self._fd: int | None = None
        self.info: LockInfo | None = None
        self.interrupted: LockInfo | None = None  # a holder that died without releasing

    def acquire(self, operation: str, *, exclusive: bool = True, wait: float = 0.0) -> None:
        private.folder(self.path.parent)
        deadline = time.monotonic() + wait
        while True:
            fd = private.open_fd(self.path, os.O_RDWR)
            try:
                fcntl.flock(fd, (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                raise StateLocked(self._refusal()) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # force-unlock removed the file between open and flock: retry
        self._fd = fd
        if exclusive:
            self.interrupted = _read(self.path)
            self.info = LockInfo(
                id=uuid.uuid4().hex[:8],
                pid=os.getpid(),
                host=socket.gethostname(),
                since=datetime.now(UTC).isoformat(timespec="seconds"),
                operation=operation,
            )
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(self.info)).encode(), 0)
            os.fsync(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            if self.info is not None and _same_file(self._fd, self.path):
                os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None
        self.info = None

    def _refusal(self) -> str:
        holder = _read(self.path)
        if holder is None or not alive(holder):
            return (
                f"the state {self.path.with_suffix('')} is in use by another mlform process "
                "that is reading it; try again in a moment"
            )
        return (
            f"the state is locked by {holder.describe()}. Wait for it to finish, or, if no "
            f"mlform process is running, run `mlform force-unlock {holder.id}`"
        )


class Access:
    """Who has the state's DuckDB file open: an flock on `<state>.access`, shared by
    readers, held alone by a writer, and only while a connection is open.

    DuckDB lets one process open a file for writing, and then no other may open it at
    all. So a writer (which also holds `StateLock` for its whole run) closes its
    connection between writes and lets readers in: `plan`, `runs list` and a pipeline
    endpoint read what has been committed so far while an apply trains for hours.

    A reader kept out knocks: it holds a shared flock on `<state>.waiting` while it
    waits, which the writer sees (`waiting`) and pauses for. A writer that nobody waits
    for keeps its connection: closing it costs a checkpoint and a reopen, each time.
    The kernel lets go of a dead reader's knock with its process.
    """

    def __init__(self, state_path: Path) -> None:
        self.state = state_path
        self.path = state_path.with_name(state_path.name + ".access")
        self.knock = state_path.with_name(state_path.name + ".waiting")
        self._fd: int | None = None
        self._knock_fd: int | None = None  # a writer's, to look for knocks

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, *, exclusive: bool, wait: float) -> None:
        """Shared (a reader) or exclusive (a writer), waited for up to `wait` seconds;
        StateLocked, naming the one in the way, if it is not free by then."""
        if self._fd is not None:
            return
        mode = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait
        fd = private.open_fd(self.path, os.O_RDWR)
        knocking: int | None = None
        try:
            while True:
                try:
                    fcntl.flock(fd, mode)
                except BlockingIOError:
                    if time.monotonic() < deadline:
                        if knocking is None and not exclusive:
                            knocking = private.open_fd(self.knock, os.O_RDWR)
                            fcntl.flock(knocking, fcntl.LOCK_SH)
                        time.sleep(0.01)
                        continue
                    os.close(fd)
                    raise StateLocked(self._refusal(exclusive, wait)) from None
                self._fd = fd
                return
        finally:
            if knocking is not None:
                os.close(knocking)  # and its flock with it

    def waiting(self) -> bool:
        """(A writer's question) whether a reader is waiting to open the state."""
        if self._knock_fd is None:
            self._knock_fd = private.open_fd(self.knock, os.O_RDWR)
        try:
            fcntl.flock(self._knock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(self._knock_fd, fcntl.LOCK_UN)
        return False

    def release(self) -> None:
        if self._knock_fd is not None:
            os.close(self._knock_fd)
            self._knock_fd = None
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def _refusal(self, exclusive: bool, wait: float) -> str:
        if exclusive:
            return (
                f"the state {self.state} stayed open in other mlform processes that read it "
                f"for {wait:g} s; one of them may be hung. Stop it, then try again"
            )
        holder = _read(self.state.with_name(self.state.name + ".lock"))
        writer = holder.describe() if holder is not None else "another mlform process"
        return (
            f"the state {self.state} is being written by {writer}, which did not pause for "
            f"readers within {wait:g} s; try again in a moment"
        )


@dataclass(frozen=True, slots=True)
class Unlocked:
    holder: LockInfo
    warning: str | None = None  # what could not be checked (a holder on another host)


def force_unlock(state_path: Path, lock_id: str, *, force: bool = False) -> Unlocked:
    """Remove the lock with ID `lock_id`. Refused while its holder still runs on this
    machine (it would write beside the next apply) unless `force`; a holder on another
    host cannot be checked from here, so the caller is warned instead."""
    path = state_path.with_name(state_path.name + ".lock")
    holder = _read(path)
    check_id(str(state_path), holder, lock_id)
    assert holder is not None
    warning = None
    if holder.host != socket.gethostname():
        warning = (
            f"lock {holder.id} was taken on host {holder.host}, where mlform cannot see "
            f"whether pid {holder.pid} still runs; make sure no mlform process runs there"
        )
    elif not force and _held(path) and alive(holder):
        raise StateLocked(
            f"lock {holder.id} is held by {holder.describe()}, which is still running: "
            f"removing the lock would let another apply write beside it. Wait for it to "
            f"finish, or stop it (kill {holder.pid}); if it is hung and must be left "
            f"running, `mlform force-unlock {holder.id} --force` removes the lock anyway"
        )
    path.unlink()
    return Unlocked(holder, warning)


def check_id(state: str, holder: LockInfo | None, lock_id: str) -> None:
    """Refuse to break a lock other than the one the user named."""
    if holder is None:
        raise StateError(f"the state {state} is not locked; nothing to unlock")
    if holder.id != lock_id:
        raise StateError(
            f"lock ID {lock_id} does not match the current lock {holder.id} held by "
            f"{holder.describe()}; pass that ID if you mean to remove it"
        )


def _held(path: Path) -> bool:
    """Whether some process holds the flock: the kernel drops it when its holder dies, so
    a free flock means the holder is gone, whichever process its pid now names."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _read(path: Path) -> LockInfo | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8") or "null")
        return LockInfo(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def alive(info: LockInfo) -> bool:
    """Whether the holder may still run: on another host, assumed so."""
    if info.host != socket.gethostname():
        return True  # cannot tell from here: assume it is
    try:
        os.kill(info.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _same_file(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False
