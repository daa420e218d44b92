"""An endpoint's address: each request forwarded to one of its deployments by traffic weight.

    python -m mlform.serving.router --routes routes.json --host 127.0.0.1 --port 5100

`Router` is a raw ASGI app on uvicorn. Per request it picks a deployment by smooth
weighted round-robin over the routes file (`mlform.serving.routes`, re-read when it
changes or on SIGHUP), or the one named by Azure ML's `azureml-model-deployment` header
whatever its weight, and forwards the request as it came (method, path, query, headers
less hop-by-hop ones, body) over a pool of keep-alive HTTP/1.1 connections. The
answer comes back as the deployment gave it, plus `x-mlform-deployment: NAME`.

The router's own answers are JSON errors `{"error": message, "status": code}`: 401/403
a request without valid credentials, 413 a body over `--max-body`, 404 an unknown
deployment name, 503 no deployment with weight > 0, 502 a deployment that refuses the
connection or breaks it, 504 one that does not answer within the timeout; the last two
name the deployment in `x-mlform-deployment` too. `GET /health` is the router's own
liveness and is not forwarded.

What a client can make the router hold is bounded before anything is forwarded. When
the routes file names the endpoint's key digests (`auth`), a request other than GET and
HEAD is checked as its deployments check it (`mlform.serving.auth`: keys, or tokens)
from its headers alone, and refused before its body is read. The router holds the key
digests the deployments hold, and nothing more, so it can check exactly what they would
accept: a check of the header's form only would let any well-formed guess make the
router read and forward a whole body. Token keys are re-read from their file whenever
it changes (`keyring`), as the deployments re-read it: a rotation applies to both from
the next request. A body is refused at once when its Content-Length
is over the limit, and counted while read when it is chunked. Each request must arrive
whole within `--read-timeout` seconds and its head within 64 KiB (`connections`), and
uvicorn's `limit_concurrency` caps the connections held at once (`--max-connections`).

It runs beside mlform (never in a deployment's image), so it may use what mlform
installs: uvicorn with httptools and uvloop, and httptools again to read the answers.
Its cost is paid on every request, so the hot path stays lean: one write per request,
answers parsed in C by an asyncio protocol, no task or stream object per request.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import httptools
import uvicorn
import uvicorn.config
from starlette.types import Receive, Scope, Send

from mlform.serving.auth import KeyCheck, KeyMissing, KeyRejected, NotAllowed
from mlform.serving.connections import DEFAULT_MAX_HEAD, DEFAULT_READ_TIMEOUT, guarded
from mlform.serving.keyring import RingFile
from mlform.serving.keyring import logger as keyring_logger
from mlform.serving.openapi import MAX_BODY
from mlform.serving.options import port, positive
from mlform.serving.routes import Auth, Deployment, Routes, RoutesFile, RoutesInvalid, logger
from mlform.serving.runtime import INSTANCE_HEADER

PROG = "mlform.serving.router"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_CONNECTIONS = 1024
DEPLOYMENT_HEADER = b"azureml-model-deployment"
ROUTED_HEADER = b"x-mlform-deployment"

# RFC 9110 §7.6.1, plus the unofficial Proxy-Connection; Content-Length is recomputed.
_HOP_BY_HOP = frozenset(
    b"connection keep-alive proxy-connection proxy-authenticate proxy-authorization "
    b"te trailer transfer-encoding upgrade".split()
)
_NOT_FORWARDED = _HOP_BY_HOP | {b"content-length"}
_NOT_RETURNED = _NOT_FORWARDED | {ROUTED_HEADER}
_JSON = (b"content-type", b"application/json")
_CHALLENGE = (b"www-authenticate", b"Bearer")
_OPEN_METHODS = ("GET", "HEAD")  # forwarded without credentials: the deployment decides


class BodyTooLarge(Exception):
    pass


class UpstreamBroken(Exception):
    """The connection failed or closed before a whole answer came back."""


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection to a deployment, one request at a time.

    An asyncio protocol parsing answers with httptools (uvicorn's C parser): no stream
    objects and no per-request task, since the router's own cost is paid on every request.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.received = False  # a byte of the current answer came
        self.reusable = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[tuple[int, list[tuple[bytes, bytes]], bytes]] | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._head = False
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []

    async def exchange(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if self.closed or self.transport is None:
            raise UpstreamBroken("the connection closed while idle")
        self._waiter = asyncio.get_running_loop().create_future()
        self._parser = httptools.HttpResponseParser(self)
        self._head = method == b"HEAD"
        self._status, self._headers, self._chunks = 0, [], []
        self.received = self.reusable = False
        lines = [method, b" ", target, b" HTTP/1.1\r\n"]
        for key, value in headers:
            lines += (key, b": ", value, b"\r\n")
        lines += (b"\r\n", body)
        self.transport.write(b"".join(lines))
        return await self._waiter

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as err:
            self._fail(f"its answer is not valid HTTP: {err}")
            self.close()

    def eof_received(self) -> bool:
        self._fail("the connection closed before the answer ended")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(str(exc) if exc else "the connection closed before the answer ended")

    # httptools' callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        if self._head and self._status >= 200:
            # An answer to HEAD has no body, whatever its Content-Length says; the parser
            # does not know the method, so the answer ends here (a new parser comes next).
            self._finish()

    def on_body(self, body: bytes) -> None:
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self._status < 200:  # 100 Continue and the like: the answer is still to come
            self._headers = []
            return
        if not self._head:
            self._finish()

    def _finish(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result((self._status, self._headers, b"".join(self._chunks)))
        self._waiter = None

    def _fail(self, message: str) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(UpstreamBroken(message))
        self._waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections to one deployment: idle ones reused, newest first.

    Connections idle longer than `max_idle_time` are dropped rather than reused, before
    the server's own keep-alive timeout (uvicorn's is 5 s) closes them under a request.
    """

    def __init__(
        self, host: str, port: int, *, max_idle: int = 64, max_idle_time: float = 4.0
    ) -> None:
        self.host, self.port = host, port
        self.max_idle, self.max_idle_time = max_idle, max_idle_time
        self._idle: list[_Connection] = []

    async def request(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        connection = self._take()
        if connection is not None:
            try:
                return await self._exchange(connection, method, target, headers, body)
            except UpstreamBroken:
                # The server may have closed it while idle: once more on a fresh one, as
                # long as no byte of an answer came (so the request was never taken up).
                if connection.received:
                    raise
        loop = asyncio.get_running_loop()
        _, fresh = await loop.create_connection(_Connection, self.host, self.port)
        return await self._exchange(fresh, method, target, headers, body)

    async def _exchange(
        self,
        connection: _Connection,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        try:
            reply = await connection.exchange(method, target, headers, body)
        except BaseException:  # cancelled or timed out too: its state is unknown
            connection.close()
            raise
        if connection.reusable and not connection.closed and len(self._idle) < self.max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    def _take(self) -> _Connection | None:
        idle, oldest = self._idle, time.monotonic() - self.max_idle_time
        while idle:
            connection = idle.pop()
            if connection.idle_since >= oldest and not connection.closed:
                return connection
            connection.close()
        return None

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class Router:
    """The ASGI app: route by weight or by name, forward, return the answer."""

    def __init__(
        self, routes: RoutesFile, *, timeout: float = DEFAULT_TIMEOUT, max_body: int = MAX_BODY
    ) -> None:
        self.routes = routes
        self.timeout = timeout
        self.max_body = max_body
        self._too_large = (
            f"the request body is larger than this endpoint's limit of {max_body} bytes; "
            "send fewer rows per request"
        )
        self._pools: dict[tuple[str, int], Pool] = {}
        self._pooled_for = routes.routes
        self._checked_for: Routes | None = None
        self._check: KeyCheck | None = None
        self._instance = (
            INSTANCE_HEADER.encode(),
            os.environ.get("MLFORM_INSTANCE", "").encode("ascii", "replace"),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        if scope["path"] == "/health" and method in ("GET", "HEAD"):
            await _send(send, 200, [_JSON, self._instance], b'{"status":"alive"}')
            return
        self.routes.refresh()
        routes = self.routes.routes
        named = authorization = length = None
        for key, value in scope["headers"]:
            if key == DEPLOYMENT_HEADER:
                named = value
            elif key == b"authorization":
                authorization = value
            elif key == b"content-length":
                length = value
        # Refused from the headers alone: uvicorn skips the unread body, unbuffered.
        if routes.auth is not None and method not in _OPEN_METHODS:
            refused = self._refused(routes, authorization)
            if refused is not None:
                await _error(send, *refused)
                return
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _error(send, 413, self._too_large)
            return
        if named is not None:
            name = named.decode("latin-1").strip()
            deployment = routes.get(name)
            if deployment is None:
                known = ", ".join(d.name for d in routes.deployments) or "none"
                message = (
                    f"endpoint {routes.endpoint} has no deployment named {name!r}; "
                    f"its deployments are: {known}"
                )
                await _error(send, 404, message)
                return
        else:
            picked = self.routes.balancer.pick()
            if picked is None:
                message = f"endpoint {routes.endpoint} has no deployment taking traffic"
                await _error(send, 503, message)
                return
            deployment = picked
        try:
            body = await _read_body(receive, self.max_body)
        except BodyTooLarge:
            await _error(send, 413, self._too_large)
            return
        if body is None:
            return  # the client went away
        await self._forward(scope, deployment, body, send)

    def _refused(
        self, routes: Routes, authorization: bytes | None
    ) -> tuple[int, str, tuple[bytes, bytes]] | None:
        """None if `authorization` holds credentials the deployments accept; else the
        status, message and header of the refusal, as the deployments would answer."""
        if self._checked_for is not routes or self._check is None:
            auth = routes.auth
            assert auth is not None
            try:
                self._check = _key_check(routes.endpoint, auth)
            except ValueError as err:  # the token keys' file is gone or unreadable
                if self._checked_for is not routes:  # logged once per routes table
                    logger.error("endpoint %s: %s", routes.endpoint, err)
                self._check = None
            self._checked_for = routes
        if self._check is None:
            message = "this endpoint cannot check tokens now; its token key cannot be read"
            return 503, message, (b"retry-after", b"5")
        try:
            self._check.verify(None if authorization is None else authorization.decode("latin-1"))
        except (KeyMissing, KeyRejected) as err:
            return 401, str(err), _CHALLENGE
        except NotAllowed as err:
            return 403, str(err), _CHALLENGE
        return None

    async def _forward(self, scope: Scope, deployment: Deployment, body: bytes, send: Send) -> None:
        routed = (ROUTED_HEADER, deployment.name.encode("latin-1"))
        method = scope["method"].encode("ascii")
        target: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        if scope["query_string"]:
            target += b"?" + scope["query_string"]
        headers = _request_headers(scope, deployment, body)
        where = f"deployment {deployment.name} of endpoint {self.routes.routes.endpoint}"
        try:
            async with asyncio.timeout(self.timeout):
                status, answer, content = await self._pool(deployment).request(
                    method, target, headers, body
                )
        except TimeoutError:
            message = f"{where} did not answer within {self.timeout:g}s"
            await _error(send, 504, message, routed)
            return
        except ConnectionRefusedError:
            await _error(send, 502, f"{where} refused the connection at {deployment.url}", routed)
            return
        except UpstreamBroken as err:
            message = f"{where} at {deployment.url} broke the connection: {err}"
            await _error(send, 502, message, routed)
            return
        except OSError as err:
            message = f"{where} cannot be reached at {deployment.url}: {err.strerror or err}"
            await _error(send, 502, message, routed)
            return
        out = [routed]
        out += [(key, value) for key, value in answer if key not in _NOT_RETURNED]
        if method == b"HEAD" or status == 304:
            out += [(key, value) for key, value in answer if key == b"content-length"]
        elif status >= 200 and status != 204:
            out.append((b"content-length", str(len(content)).encode("ascii")))
        await _send(send, status, out, content)

    def _pool(self, deployment: Deployment) -> Pool:
        if self.routes.routes is not self._pooled_for:
            self._prune()
        key = (deployment.host, deployment.port)
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = Pool(deployment.host, deployment.port)
        return pool

    def _prune(self) -> None:
        # Drop pools for addresses the new table no longer has.
        self._pooled_for = routes = self.routes.routes
        keep = {(d.host, d.port) for d in routes.deployments}
        for key in set(self._pools) - keep:
            self._pools.pop(key).close()

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        # Signal handlers need the main thread; SIGHUP does not exist on Windows.
        hangup: int | None = getattr(signal, "SIGHUP", None)
        if threading.current_thread() is not threading.main_thread():
            hangup = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if hangup is not None:
                    loop.add_signal_handler(hangup, self._hangup)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if hangup is not None:
                    loop.remove_signal_handler(hangup)
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _hangup(self) -> None:
        logger.info("SIGHUP: re-reading %s", self.routes.path)
        self.routes.reload(force=True)


def _key_check(endpoint: str, auth: Auth) -> KeyCheck:
    """The check its deployments make: keys, or tokens signed with a key of the ring in a
    file, re-read whenever that file changes (a rotation applies from the next request)."""
    if auth.tokens:
        assert auth.token_key_file is not None
        ring = RingFile(Path(auth.token_key_file))
        return KeyCheck(token_keys=ring.ring, endpoint=endpoint)
    return KeyCheck(key_hashes=auth.key_hashes, endpoint=endpoint)


def _request_headers(
    scope: Scope, deployment: Deployment, body: bytes
) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    named = {
        token.strip().lower()
        for key, value in headers
        if key == b"connection"
        for token in value.split(b",")
    }
    out: list[tuple[bytes, bytes]] = []
    has_host = has_body = False
    forwarded_for = b""
    for key, value in headers:
        if key in _NOT_FORWARDED or key in named:
            has_body = has_body or key in (b"content-length", b"transfer-encoding")
        elif key == b"x-forwarded-for":
            forwarded_for = value + b", "
        else:
            has_host = has_host or key == b"host"
            out.append((key, value))
    if not has_host:  # an HTTP/1.0 client: HTTP/1.1 needs one
        out.append((b"host", f"{deployment.host}:{deployment.port}".encode("ascii")))
    if body or has_body:
        out.append((b"content-length", str(len(body)).encode("ascii")))
    client = scope.get("client")
    if client:
        out.append((b"x-forwarded-for", forwarded_for + str(client[0]).encode("ascii")))
    return out


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None if the client went away; BodyTooLarge past `limit` bytes
    (a chunked body has no length to check beforehand)."""
    message = await receive()
    if message["type"] == "http.disconnect":
        return None
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    chunks, size = [body], len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _error(send: Send, status: int, message: str, *extra: tuple[bytes, bytes]) -> None:
    body = json.dumps({"error": message, "status": status}, separators=(",", ":"))
    content = body.encode("ascii")
    length = (b"content-length", str(len(content)).encode("ascii"))
    await _send(send, status, [*extra, _JSON, length], content)


def build_parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog=f"python -m {PROG}",
        description="Route an endpoint's requests to its deployments by traffic weight.",
    )
    parser.add_argument(
        "--routes",
        type=Path,
        default=env("MLFORM_ROUTES"),
        metavar="FILE",
        help="the routes file (JSON), re-read when it changes (default: $MLFORM_ROUTES)",
    )
    parser.add_argument(
        "--host",
        default=env("MLFORM_HOST", "127.0.0.1"),
        help="address to listen on (default: $MLFORM_HOST or 127.0.0.1)",
    )
    parser.add_argument(
        "--port",
        type=port,
        default=env("MLFORM_PORT", "5000"),
        help="port to listen on (default: $MLFORM_PORT or 5000)",
    )
    parser.add_argument(
        "--max-body",
        type=positive(int, "number of bytes"),
        default=env("MLFORM_MAX_BODY", str(MAX_BODY)),
        metavar="BYTES",
        help=f"answer 413 to larger request bodies (default: $MLFORM_MAX_BODY or {MAX_BODY})",
    )
    parser.add_argument(
        "--read-timeout",
        type=positive(float, "number of seconds"),
        default=env("MLFORM_READ_TIMEOUT", f"{DEFAULT_READ_TIMEOUT:g}"),
        metavar="SECONDS",
        help="answer 408 and close the connection when a request's head and body take "
        f"longer to arrive (default: $MLFORM_READ_TIMEOUT or {DEFAULT_READ_TIMEOUT:g})",
    )
    parser.add_argument(
        "--max-connections",
        type=positive(int, "number of connections"),
        default=env("MLFORM_MAX_CONNECTIONS", str(DEFAULT_MAX_CONNECTIONS)),
        metavar="N",
        help="answer 503 to requests while N connections or requests are open "
        f"(default: $MLFORM_MAX_CONNECTIONS or {DEFAULT_MAX_CONNECTIONS})",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float, "number of seconds"),
        default=env("MLFORM_ROUTER_TIMEOUT", str(DEFAULT_TIMEOUT)),
        metavar="SECONDS",
        help="answer 504 when a deployment takes longer "
        f"(default: $MLFORM_ROUTER_TIMEOUT or {DEFAULT_TIMEOUT:g})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.routes is None:
        return _fail("no routes file: pass --routes FILE or set MLFORM_ROUTES")
    try:
        routes = RoutesFile(args.routes)
    except OSError as err:
        return _fail(f"cannot read the routes file {args.routes}: {err.strerror or err}")
    except RoutesInvalid as err:
        return _fail(f"the routes file is not usable:\n{err}")
    uvicorn.run(
        Router(routes, timeout=args.timeout, max_body=args.max_body),
        host=args.host,
        port=args.port,
        http=guarded(args.read_timeout, DEFAULT_MAX_HEAD),
        limit_concurrency=args.max_connections,
        loop="auto",
        lifespan="on",
        log_level="info",
        log_config=_log_config(),
        access_log=False,
        # The deployment's own Date and Server headers come back instead.
        server_header=False,
        date_header=False,
    )
    return 0


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return 2


def _log_config() -> dict[str, Any]:
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    for name in (logger.name, keyring_logger.name):
        config["loggers"][name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


if __name__ == "__main__":
    sys.exit(main())
