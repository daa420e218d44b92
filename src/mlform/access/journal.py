"""What the servers saw, for the audit log: `<state dir>/access/journal.jsonl`, 0600.

A server cannot write the state (see tokenfile.py), so it appends one JSON line per event
here — a denied call, a pipeline invoked, a token used — and the next mlform command that
writes the state moves the lines into its `events` table (`audit.ingest`). Writers and
the ingester take an `flock` on the file: a line is appended whole, and the file is only
emptied after what it held is committed. Each line has an id, so a line ingested twice
(an ingest killed between its commit and emptying the file) is recorded once.

The file is bounded: past `MAX_SIZE` (nothing ingested it for a long while, and a client
kept being refused) new lines are counted, not written, and one line saying how many were
dropped is written once there is room again.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mlform import private
from mlform.access.tokenfile import folder, logger

MAX_SIZE = 16 * 1024 * 1024
MAX_MESSAGE = 1000  # characters: a pipeline's inputs are the client's to choose
ACTIONS = ("denied", "invoke", "used", "dropped")


@dataclass(frozen=True, slots=True)
class Entry:
    action: str  # one of ACTIONS
    actor: str  # a token's name, "endpoint key", or "anonymous"
    target: str  # the route called, or what it acted on
    status: str  # the HTTP status answered
    message: str
    source: str  # which server: "pipeline endpoint"
    token_id: str | None = None
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    at: float = field(default_factory=time.time)


def path(state_dir: Path) -> Path:
    return folder(state_dir) / "journal.jsonl"


class Journal:
    """A server's side of the journal: appending, from any thread."""

    def __init__(self, state_dir: Path, source: str) -> None:
        self.file = path(state_dir)
        self.source = source
        self._dropped = 0
        self._lock = threading.Lock()

    def append(self, entry: Entry) -> None:
        private.folder(self.file.parent)
        with self._lock:
            fd = private.open_fd(self.file, os.O_WRONLY | os.O_APPEND)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                if os.fstat(fd).st_size >= MAX_SIZE:
                    if self._dropped == 0:
                        logger.warning(
                            "%s holds %d bytes: audit events are dropped until an mlform "
                            "command ingests it (`mlform audit` does)",
                            self.file,
                            MAX_SIZE,
                        )
                    self._dropped += 1
                    return
                lines = []
                if self._dropped:
                    noun = "event" if self._dropped == 1 else "events"
                    message = f"{self._dropped} audit {noun} dropped: the journal was full"
                    lines.append(
                        Entry("dropped", "mlform", str(self.file), "", message, self.source)
                    )
                    self._dropped = 0
                lines.append(entry)
                data = "".join(json.dumps(asdict(line)) + "\n" for line in lines)
                os.write(fd, data.encode("utf-8"))
            finally:
                os.close(fd)  # and with it the lock

    def record(
        self,
        action: str,
        actor: str,
        target: str,
        status: int | str,
        message: str,
        token_id: str | None = None,
    ) -> None:
        message = message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"
        self.append(Entry(action, actor, target, str(status), message, self.source, token_id))


def drain(file: Path, take: Callable[[list[Entry]], None]) -> int:
    """Give every entry in `file` to `take` (which records them), then empty it; under
    the file's lock, so no line is appended between the two. The count taken."""
    try:
        fd = os.open(file, os.O_RDWR)
    except FileNotFoundError:
        return 0
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if size == 0:
            return 0
        with os.fdopen(os.dup(fd), "rb") as handle:
            text = handle.read().decode("utf-8", errors="replace")
        entries = [entry for line in text.splitlines() if (entry := _entry(line)) is not None]
        take(entries)
        os.ftruncate(fd, 0)
        return len(entries)
    finally:
        os.close(fd)


def _entry(line: str) -> Entry | None:
    """A line's entry; None for one that does not read (a writer killed mid-line)."""
    try:
        data: Any = json.loads(line)
        return Entry(
            str(data["action"]),
            str(data["actor"]),
            str(data["target"]),
            str(data["status"]),
            str(data["message"]),
            str(data["source"]),
            None if data.get("token_id") is None else str(data["token_id"]),
            str(data["id"]),
            float(data["at"]),
        )
    except (ValueError, KeyError, TypeError):
        return None
