"""A long build step (pip, a Docker build) whose output goes to a log file, not the screen.

Apply shows one line per phase; the tool's own output, often hundreds of lines, is kept in
`.mlform/logs/` for when something goes wrong, and a failure quotes its last lines and
names the file. While the step runs, `waiting(seconds)` is called about once a second, so
a terminal can redraw an elapsed time.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mlform import private
from mlform.compute import groups
from mlform.masking import Masker
from mlform.masking.relay import Relay

_TICK = 1.0
_POLL = 0.05


@dataclass(frozen=True, slots=True)
class Finished:
    returncode: int
    log: Path

    def tail(self, lines: int) -> list[str]:
        text = self.log.read_text(encoding="utf-8", errors="replace")
        return text.rstrip("\n").splitlines()[-lines:]


def run_logged(
    command: Sequence[str],
    log: Path,
    *,
    waiting: Callable[[float], None] | None = None,
    what: str = "",
    pass_fds: Sequence[int] = (),
    cancelled: threading.Event | None = None,
    secrets: Sequence[str] = (),
) -> Finished:
    """Run `command` with stdout and stderr appended to `log` (made if missing), in a
    process group recorded as `what` (see `groups`) until it has ended. Its own session
    keeps a terminal's Ctrl-C from it: once `cancelled` is set, it gets a SIGTERM. Its
    output reaches the log through a pipe, `secrets` masked (`masking`)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with private.open_text(log, append=True) as sink:
        sink.write("$ " + " ".join(command) + "\n")
        sink.flush()
        read, write = os.pipe()
        relay = Relay(read, os.dup(sink.fileno()), Masker(secrets))
        try:
            with groups.running(
                command,
                what=what or " ".join(command),
                stdout=write,
                stderr=subprocess.STDOUT,
                pass_fds=tuple(pass_fds),
            ) as (proc, group):
                os.close(write)
                write = -1
                started = time.monotonic()
                ticks = 0
                # Ctrl-C leaves through `running`, which kills the whole group; the
                # partial build is removed by the caller
                stopping = False
                while not group.exited(proc):
                    if not stopping and cancelled is not None and cancelled.is_set():
                        stopping = True
                        with contextlib.suppress(ProcessLookupError):
                            os.killpg(proc.pid, signal.SIGTERM)
                    time.sleep(_POLL)
                    elapsed = time.monotonic() - started
                    if waiting is not None and elapsed >= (ticks + 1) * _TICK:
                        ticks = int(elapsed // _TICK)
                        waiting(float(ticks) * _TICK)
                code = group.end(proc)
        finally:
            if write >= 0:
                os.close(write)
            relay.close()  # the group has ended: what it wrote is in the pipe
    return Finished(code, log)


class LineLog:
    """A callable that appends each line it is given to `path`, for steps that report
    their output line by line (a Docker build); `tick(seconds)` follows each line."""

    def __init__(self, path: Path, tick: Callable[[float], None] | None = None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._tick = tick
        self._started = time.monotonic()
        self._sink = private.open_text(path)

    def __call__(self, line: str) -> None:
        self._sink.write(line.rstrip("\n") + "\n")
        self._sink.flush()
        if self._tick is not None:
            self._tick(time.monotonic() - self._started)

    def __enter__(self) -> LineLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self._sink.close()
