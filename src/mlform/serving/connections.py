"""The router's client connections: uvicorn's httptools protocol, with the bounds it lacks.

uvicorn bounds a connection's idle time between requests (`timeout_keep_alive`, armed
only after an answer), the body it buffers for an app that does not read it (flow
control pauses reading at 64 KiB) and, with `limit_concurrency`, the connections and
requests it serves at once (503 beyond). It does not bound how long a client may take to
send a request, nor the size of a request's head: a client that sends a header line a
second ("slowloris"), or never finishes its body, holds its connection forever, and one
that sends headers without end grows the header list without limit.

`guarded(read_timeout, max_head)` is the protocol class the router runs with: each
request (its head and body) must arrive within `read_timeout` seconds of its first byte
(of the connection, for the first request), else 408 and the connection is closed; a
head larger than `max_head` bytes is 431, closed. An answer sent before the body is read
(an early 401 or 413) lets uvicorn skip the rest of the body, unbuffered, within the
same deadline.

The cost per request is one timer armed and cancelled.
"""

from __future__ import annotations

import asyncio
import json
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

DEFAULT_READ_TIMEOUT = 30.0  # seconds, for a request's head and body
DEFAULT_MAX_HEAD = 64 * 1024  # bytes: request line and headers
# After a refusal, what the client still sends is read and dropped for this long before
# the connection closes: closing on unread bytes would send a reset, which can destroy
# the answer before the client reads it (nginx's "lingering close").
LINGER = 2.0


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a deadline per request and a bounded head."""

    read_timeout: ClassVar[float] = DEFAULT_READ_TIMEOUT
    max_head: ClassVar[int] = DEFAULT_MAX_HEAD

    _deadline: asyncio.TimerHandle | None = None  # armed while a request is read
    _head = 0  # bytes of the current request's head so far; -1 once it is whole
    _lingering: asyncio.TimerHandle | None = None  # refused: reading to drop, then closing

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline = self.loop.call_later(self.read_timeout, self._expired)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._deadline, self._lingering):
            if timer is not None:
                timer.cancel()
        self._deadline = self._lingering = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering is not None:
            return
        if self._head >= 0:
            self._head += len(data)
        super().data_received(data)
        # Counted in whole reads, checked while the head is incomplete: a head may pass
        # the limit by the read that completes it (256 KiB at most).
        if self._head > self.max_head and not self.transport.is_closing():
            self._refuse(
                431,
                f"the request's head (its request line and headers) is larger than "
                f"{self.max_head} bytes",
            )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:  # a later request on a kept-alive connection
            self._deadline = self.loop.call_later(self.read_timeout, self._expired)

    def on_headers_complete(self) -> None:
        self._head = -1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = 0  # the next request's head starts after this
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self._head >= 0 or cycle is None or not cycle.response_started:
            self._refuse(
                408,
                f"the request did not arrive within {self.read_timeout:g} s; send it "
                "whole, without pauses",
            )
        else:  # answered early; the rest of the body is still coming: enough of it
            self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        """Answer `status` outside any ASGI cycle, and close the connection."""
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large"}[status]
        body = json.dumps({"error": message, "status": status}, separators=(",", ":")).encode()
        transport = self.transport
        transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
            b"connection: close\r\n\r\n%s" % (status, reason, len(body), body)
        )
        self._head = -1
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True  # the app's receive() returns, its send() drops
            self.cycle.message_event.set()
        transport.write_eof()
        transport.resume_reading()
        self._lingering = self.loop.call_later(LINGER, transport.close)

    def eof_received(self) -> None:
        if self._lingering is not None:
            self.transport.close()  # both sides are done


def guarded(read_timeout: float, max_head: int) -> type[GuardedProtocol]:
    """The protocol class for uvicorn's `http` option, with these bounds."""
    bounds = {"read_timeout": read_timeout, "max_head": max_head}
    return type("GuardedProtocol", (GuardedProtocol,), bounds)
