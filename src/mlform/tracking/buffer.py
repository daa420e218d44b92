"""Metric points held in memory and appended to metrics.csv in batches.

`Run.log` must cost about a microsecond, so a call only appends a tuple to a list; the
text is formatted and written by `flush`: when the batch is full, every second from a
background thread (so live progress never lags far), and at exit. Everything that holds
records is registered here, so one call flushes them all (atexit, SIGTERM).
"""

from __future__ import annotations

import operator
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import SupportsFloat, SupportsIndex

from mlform.tracking.protocol import append_bytes, metric_key_field

FLUSH_EVERY = 10_000
"""Records per batch: large enough that writing costs little per record."""

FLUSH_SECONDS = 1.0
"""How long a record may wait in memory while the script does something else."""

_Record = tuple[str, int, int, float]


class MetricBuffer:
    """The pending points of one run, and the per-key step counters."""

    def __init__(self, path: Path, flush_every: int = FLUSH_EVERY) -> None:
        self.path = path
        self.flush_every = flush_every
        self._records: list[_Record] = []
        self._steps: dict[str, int] = {}
        self._fields: dict[str, str] = {}
        # Re-entrant, because the SIGTERM handler flushes on whichever frame it interrupts.
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._failed = False
        _register(self)

    def add(self, key: str, value: SupportsFloat, step: SupportsIndex | None) -> None:
        ts = time.time_ns() // 1_000_000
        number_value = value if type(value) is float else _as_float(key, value)
        field = self._fields.get(key)
        if field is None:
            field = self._fields[key] = metric_key_field(key)
        with self._lock:
            if step is None:
                number = self._steps.get(key, -1) + 1
            else:
                number = step if type(step) is int else operator.index(step)
            self._steps[key] = number
            records = self._records
            records.append((field, number, ts, number_value))
            full = len(records) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> None:
        """Append the pending records to metrics.csv; they are kept if the process dies."""
        try:
            with self._write_lock:
                _writing.depth = getattr(_writing, "depth", 0) + 1
                try:
                    with self._lock:
                        records, self._records = self._records, []
                    if records:
                        text = "".join([f"{k},{s},{t},{v!r}\n" for k, s, t, v in records])
                        append_bytes(self.path, text.encode("utf-8"))
                finally:
                    _writing.depth -= 1
        finally:
            then = after_write
            if then is not None and not writing_here() and _in_main_thread():
                then()

    def flush_quietly(self) -> None:
        """Flush where nobody can catch an error (a thread, atexit): say it once, on stderr."""
        try:
            self.flush()
        except OSError as err:
            if not self._failed:
                self._failed = True
                print(f"mlform: could not write metrics to {self.path}: {err}", file=sys.stderr)

    def forget_pending(self) -> None:
        """In a forked child: the parent flushes these, so the child must not write them too."""
        self._lock = threading.RLock()
        self._write_lock = threading.RLock()
        self._records = []


def _as_float(key: str, value: SupportsFloat) -> float:
    if isinstance(value, str | bytes):
        raise TypeError(f"metric {key!r}: a value must be a number, not {value!r}")
    return float(value)


_writing = threading.local()

after_write: Callable[[], None] | None = None
"""Called when a flush in the main thread ends: how a signal handler that interrupted
one (handlers run in the main thread) ends the process once that write is done."""


def writing_here() -> bool:
    """Whether this thread is inside a flush (a signal handler may have interrupted it)."""
    return bool(getattr(_writing, "depth", 0))


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


_buffers: weakref.WeakSet[MetricBuffer] = weakref.WeakSet()
_flusher: threading.Thread | None = None
_flusher_lock = threading.Lock()


def _register(buffer: MetricBuffer) -> None:
    global _flusher
    _buffers.add(buffer)
    with _flusher_lock:
        if _flusher is None:
            _flusher = threading.Thread(target=_flush_periodically, name="mlform-flush")
            _flusher.daemon = True
            _flusher.start()


def flush_all() -> None:
    for buffer in list(_buffers):
        buffer.flush_quietly()


def _flush_periodically() -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        flush_all()


def _after_fork_in_child() -> None:
    """Threads and held locks do not survive a fork: start afresh, minus the parent's records."""
    global _flusher, _flusher_lock
    _flusher, _flusher_lock = None, threading.Lock()
    buffers = list(_buffers)
    for buffer in buffers:
        buffer.forget_pending()
    if buffers:
        _register(buffers[0])


os.register_at_fork(after_in_child=_after_fork_in_child)
