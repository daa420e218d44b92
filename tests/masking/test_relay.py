"""A relay copies a pipe to its log, masked, and lets out a held tail once idle."""

from __future__ import annotations

import os
import select
import time

import pytest

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


def test_relays_into_one_pipe_let_out_whole_lines_that_never_merge() -> None:
    sink_read, sink_write = os.pipe()
    sources = [os.pipe() for _ in range(2)]
    masker = Masker(["s3cr3t-value"])
    relays = [
        Relay(read, os.dup(sink_write), masker, idle=30, whole_lines=True) for read, _ in sources
    ]
    os.close(sink_write)
    try:
        # as `print` writes with unbuffered output: the text, then its newline
        os.write(sources[0][1], b"alpha s3cr3t-value")
        os.write(sources[1][1], b"beta s3cr3t-value")
        time.sleep(0.3)  # both relays have read their pieces
        os.set_blocking(sink_read, False)
        with pytest.raises(BlockingIOError):  # no partial line went out
            os.read(sink_read, 1024)
        os.write(sources[0][1], b"\n")
        os.write(sources[1][1], b"\n")
        got = read_until(sink_read, b"alpha ***\nbeta ***\n")
        assert sorted(got.splitlines(keepends=True)) == [b"alpha ***\n", b"beta ***\n"]
    finally:
        for relay, (_, write) in zip(relays, sources, strict=True):
            os.close(write)
            relay.close()
        os.close(sink_read)


def test_a_partial_line_goes_out_once_idle_or_as_long_as_a_pipe_keeps_whole() -> None:
    sink_read, sink_write = os.pipe()
    source_read, source_write = os.pipe()
    relay = Relay(source_read, sink_write, Masker(["s3cr3t-value"]), idle=0.05, whole_lines=True)
    try:
        os.write(source_write, b"prompt> ")
        assert read_until(sink_read, b"prompt> ") == b"prompt> "
    finally:
        os.close(source_write)
        relay.close()
        os.close(sink_read)
    sink_read, sink_write = os.pipe()
    source_read, source_write = os.pipe()
    relay = Relay(source_read, sink_write, Masker(["s3cr3t-value"]), idle=30, whole_lines=True)
    try:
        long = b"." * select.PIPE_BUF
        os.write(source_write, long)
        assert read_until(sink_read, long) == long
    finally:
        os.close(source_write)
        relay.close()
        os.close(sink_read)


def test_many_lines_at_once_arrive_complete_and_in_order() -> None:
    sink_read, sink_write = os.pipe()
    source_read, source_write = os.pipe()
    relay = Relay(source_read, sink_write, Masker(["s3cr3t-value"]), idle=30, whole_lines=True)
    lines = b"".join(b"%04d " % i + b"x" * 90 + b"\n" for i in range(100))  # 9,600 bytes
    try:
        os.write(source_write, lines)
        assert read_until(sink_read, lines) == lines
    finally:
        os.close(source_write)
        relay.close()
        os.close(sink_read)
