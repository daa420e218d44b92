"""Copying what a process writes, masked, from a pipe to its log on a thread of its own.

A run's command writes into a pipe that the apply relays to `std_log.txt`; a server,
which outlives the apply, relays its own stdout and stderr (`TakeOver`), so that what
the scoring script prints, logs, or has a C extension or a subprocess write, is masked
alike. The relay lets bytes out as soon as they cannot be the start of a secret; a tail
that may be is held until the next write completes or refutes it, or for `IDLE` seconds
of silence, after which it is let out as it is (a prompt or a progress bar then shows,
a value split by a pause that long does not hide).

Where several processes relay into one pipe (a server's workers), each lets out whole
lines (`whole_lines`): a line written in pieces (`print` writes its text, then its
newline, when Python's output is unbuffered) reaches the shared log in one write, which a
pipe keeps whole, so two workers' lines never merge. A partial line goes out once the
output is idle, or once it is as long as a pipe keeps whole (`PIPE_BUF`).

The relay fails closed: if it breaks, it closes the pipe, and what the process writes
next is lost (a write fails with EPIPE) rather than shown unmasked.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading

from mlform.masking.masker import Masker

IDLE = 2.0  # seconds of silence after which a held-back tail is let out
_CHUNK = 65536


class Relay:
    """Copies `source` (a pipe's read end) to `sink` through `masker`; owns both."""

    def __init__(
        self,
        source: int,
        sink: int,
        masker: Masker,
        *,
        idle: float = IDLE,
        whole_lines: bool = False,
    ) -> None:
        self._source = source
        self._sink = sink
        self._stream = masker.stream()
        self._whole_lines = whole_lines
        self._line = b""  # masked, not let out: the start of a line (`whole_lines`)
        self._idle_ms = int(idle * 1000)
        self._wake_read, self._wake_write = os.pipe()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mlform-masking", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Let out what the pipe holds now, and stop. Its writers have ended (or what they
        write from now on is not kept): nothing waits for the pipe's end."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b".")
        self._thread.join()
        for fd in (self._wake_read, self._wake_write, self._source, self._sink):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        try:
            self._relay()
        except BaseException:
            # Fail closed: writers get EPIPE rather than a copy nobody masks.
            with contextlib.suppress(OSError):
                os.close(self._source)
            self._source = -1

    def _relay(self) -> None:
        poller = select.poll()
        poller.register(self._source, select.POLLIN)
        poller.register(self._wake_read, select.POLLIN)
        stream = self._stream
        while True:
            held = stream.pending or self._line
            events = poller.poll(self._idle_ms if held else None)
            if not events:  # idle with a tail held back
                self._write(stream.flush(), end=True)
                continue
            if any(fd == self._wake_read for fd, _ in events):
                self._drain()
                return
            data = os.read(self._source, _CHUNK)
            if not data:  # every writer has closed it
                self._write(stream.flush(), end=True)
                return
            self._write(stream.feed(data))

    def _drain(self) -> None:
        os.set_blocking(self._source, False)
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._source, _CHUNK):
                self._write(self._stream.feed(data))
        self._write(self._stream.flush(), end=True)

    def _write(self, data: bytes, *, end: bool = False) -> None:
        """Let `data` out; with `whole_lines`, only up to its last complete line unless
        `end` (or the partial line is as long as a pipe keeps whole)."""
        if not self._whole_lines:
            self._put(data)
            return
        data, self._line = self._line + data, b""
        if not end:
            cut = data.rfind(b"\n") + 1
            if len(data) - cut < select.PIPE_BUF:
                data, self._line = data[:cut], data[cut:]
        # one write per run of whole lines a pipe keeps whole
        while len(data) > select.PIPE_BUF:
            cut = data.rfind(b"\n", 0, select.PIPE_BUF) + 1 or select.PIPE_BUF
            self._put(data[:cut])
            data = data[cut:]
        self._put(data)

    def _put(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                written = os.write(self._sink, view)
            except InterruptedError:
                continue
            except OSError:
                return  # the log cannot take it (disk full, reader gone): dropped, not shown
            view = view[written:]


class TakeOver:
    """This process's stdout and stderr (file descriptors 1 and 2, so whatever writes to
    them: print, logging, C code, subprocesses) sent through relays masked by `masker`
    to where they went before (in `whole_lines` if other processes write there too).
    `end` it before the process ends."""

    def __init__(self, masker: Masker, *, whole_lines: bool = False) -> None:
        self._sinks: dict[int, int] = {}  # fd → where it went before
        self._relays: list[Relay] = []
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        # Both to one file (a deployment's log): one pipe, so their order is kept.
        same = _same_file(1, 2)
        for fds in ((1, 2),) if same else ((1,), (2,)):
            read, write = os.pipe()
            for fd in fds:
                self._sinks[fd] = os.dup(fd)
                os.dup2(write, fd)
            os.close(write)
            sink = os.dup(self._sinks[fds[0]])
            self._relays.append(Relay(read, sink, masker, whole_lines=whole_lines))

    def end(self, *, back: bool) -> None:
        """Let out what the relays hold. Then stdout and stderr lead where they went
        before if `back` (when that is masked already: a relay of a parent process), else
        to /dev/null: what this process writes after has no masking left to go through.
        Later calls do nothing."""
        sinks, self._sinks = self._sinks, {}
        if not sinks:
            return
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        null = os.open(os.devnull, os.O_WRONLY)
        for fd, sink in sinks.items():
            os.dup2(sink if back else null, fd)
            os.close(sink)
        os.close(null)
        for relay in self._relays:
            relay.close()


def _same_file(one: int, other: int) -> bool:
    try:
        first, second = os.fstat(one), os.fstat(other)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)
