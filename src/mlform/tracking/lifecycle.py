"""How a script's runs end: flushed at exit, and given a final status in their run.json.

A script can end by returning, by an uncaught exception, or by SIGTERM (mlform stops a
run that way, then kills it after a grace period). In each case what it logged must be
on disk and every run.json the SDK opened must say how it ended, so these hooks are
installed once, the first time a run is opened.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType, TracebackType

from mlform.tracking import buffer
from mlform.tracking.buffer import flush_all
from mlform.tracking.protocol import RunInfo, write_run_info

_open: dict[Path, RunInfo] = {}
_whole_process: set[Path] = set()
_lock = threading.Lock()
_installed = False
_uncaught = False


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def opened(run_dir: Path, info: RunInfo, *, whole_process: bool = False) -> None:
    """Record a run as running until `closed`, or the process ends, gives its status.

    A `whole_process` run (an offline run) ends with the process: completed, or failed
    after an uncaught exception. Any other run still open then was cut off: canceled.
    """
    install()
    write_run_info(run_dir, info)
    with _lock:
        _open[run_dir] = info
        if whole_process:
            _whole_process.add(run_dir)


def closed(run_dir: Path, status: str) -> None:
    with _lock:
        info = _open.pop(run_dir, None)
    if info is not None:
        write_run_info(run_dir, dataclasses.replace(info, status=status, ended_ms=now_ms()))


def _close_all(status: str, whole_process_status: str | None = None) -> None:
    for run_dir in list(_open):
        final = status
        if whole_process_status is not None and run_dir in _whole_process:
            final = whole_process_status
        with contextlib.suppress(OSError):
            closed(run_dir, final)


def install() -> None:
    """Flush and close at exit and on SIGTERM; idempotent."""
    global _installed
    with _lock:
        if _installed:
            return
        _installed = True
    atexit.register(_at_exit)
    previous = sys.excepthook

    def excepthook(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        global _uncaught
        _uncaught = True
        previous(kind, error, traceback)

    sys.excepthook = excepthook
    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def _at_exit() -> None:
    flush_all()
    _close_all("canceled", "failed" if _uncaught else "completed")


class _Token:
    """Something to hang multiprocessing's after-fork callback on (it keeps a weak ref)."""


_token = _Token()


def _after_fork_in_child() -> None:
    global _lock
    # The open runs are the parent's to close; a forked child closing them would write
    # over the status the parent gives them.
    _lock = threading.Lock()
    _open.clear()
    _whole_process.clear()
    # A multiprocessing worker started by fork ends with os._exit, skipping atexit; it
    # runs multiprocessing's own exit finalizers, so flush from there. Its registry of
    # finalizers is cleared after this hook runs, hence the indirection through an
    # after-fork callback, which runs later.
    if "multiprocessing.util" in sys.modules:
        # start-up: the SDK in a training script imports as little as it can
        import multiprocessing.util

        multiprocessing.util.register_after_fork(_token, _flush_at_worker_exit)


def _flush_at_worker_exit(_: object) -> None:
    # start-up: the SDK in a training script imports as little as it can
    import multiprocessing.util

    multiprocessing.util.Finalize(None, flush_all, exitpriority=100)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    if buffer.writing_here():
        # This thread was interrupted mid-write, holding records no one else can write:
        # let that write finish, then end.
        buffer.after_write = lambda: _end(signum)
        return
    _end(signum)


def _end(signum: int) -> None:
    buffer.after_write = None
    flush_all()
    _close_all("canceled")
    # Die of the signal as if there were no handler, so mlform sees what happened.
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
