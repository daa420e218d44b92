"""A relay copies a pipe to its log, masked, and lets out a held tail once idle."""

from __future__ import annotations

import os
import time

from mlform.masking import Masker
from mlform.masking.relay import Relay


def read_until(fd: int, expected: bytes) -> bytes:
    """What `fd` gives until it has given `expected` (or a minute passed: a hang)."""
    got = b""
    deadline = time.monotonic() + 60
    os.set_blocking(fd, False)
    while len(got) < len(expected) and time.monotonic() < deadline:
        try:
            got += os.read(fd, 1024)
        except BlockingIOError:
            time.sleep(0.01)
    return got


def test_a_tail_that_may_start_a_secret_is_let_out_once_the_output_is_idle() -> None:
    source_read, source_write = os.pipe()
    sink_read, sink_write = os.pipe()
    relay = Relay(source_read, sink_write, Masker(["s3cr3t-value"]), idle=0.05)
    try:
        os.write(source_write, b"prompt> s3cr")
        assert read_until(sink_read, b"prompt> s3cr") == b"prompt> s3cr"
        os.write(source_write, b"s3cr3t-value\n")
        assert read_until(sink_read, b"***\n") == b"***\n"
    finally:
        os.close(source_write)
        relay.close()
        os.close(sink_read)


def test_closing_lets_out_what_the_pipe_still_holds() -> None:
    source_read, source_write = os.pipe()
    sink_read, sink_write = os.pipe()
    relay = Relay(source_read, sink_write, Masker(["s3cr3t-value"]))
    os.write(source_write, b"last words: s3cr3t-value, then s3")
    relay.close()  # the writer is still open: nothing waits for its end
    os.close(source_write)
    assert read_until(sink_read, b"last words: ***, then s3") == b"last words: ***, then s3"
    os.close(sink_read)
