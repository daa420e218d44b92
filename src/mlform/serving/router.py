"""An endpoint's address: each request forwarded to one of its deployments by traffic weight.

    python -m mlform.serving.router --routes routes.json --host 127.0.0.1 --port 5100

`Router` is a raw ASGI app on uvicorn. Per request it picks a deployment by smooth
weighted round-robin over the routes file (`mlform.serving.routes`, re-read when it
changes or on SIGHUP), or the one named by Azure ML's `azureml-model-deployment` header
whatever its weight, and forwards the request as it came (method, path, query, headers
less hop-by-hop ones, body) over a pool of keep-alive HTTP/1.1 connections (h11). The
answer comes back as the deployment gave it, plus `x-mlform-deployment: NAME`.

The router's own answers are JSON errors `{"error": message, "status": code}`: 404 an
unknown deployment name, 503 no deployment with weight > 0, 502 a deployment that
refuses the connection or breaks it, 504 one that does not answer within the timeout;
the last two name the deployment in `x-mlform-deployment` too. `GET /health` is the
router's own liveness and is not forwarded.

Like the scoring server, this runs in images holding only starlette and uvicorn (with
h11), so it imports nothing else outside the standard library.
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
from typing import Any

import h11
import uvicorn
import uvicorn.config
from starlette.types import Receive, Scope, Send

from mlform.serving.options import port, positive
from mlform.serving.routes import Deployment, RoutesFile, RoutesInvalid, logger

PROG = "mlform.serving.router"
DEFAULT_TIMEOUT = 60.0
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


class UpstreamBroken(Exception):
    """The connection failed or closed before a whole answer came back."""


class _Connection:
    """One keep-alive HTTP/1.1 connection to a deployment, one request at a time."""

    __slots__ = ("idle_since", "protocol", "reader", "received", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.protocol = h11.Connection(h11.CLIENT)
        self.received = False
        self.idle_since = 0.0

    async def exchange(
        self, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        protocol = self.protocol
        self.received = False
        try:
            out = protocol.send(h11.Request(method=method, target=target, headers=headers))
            assert out is not None
            if body:
                out += protocol.send(h11.Data(data=body)) or b""
            out += protocol.send(h11.EndOfMessage()) or b""
            self.writer.write(out)
            await self.writer.drain()
            status, answer, chunks = 0, [], []
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    data = await self.reader.read(65536)
                    self.received = self.received or bool(data)
                    protocol.receive_data(data)
                elif isinstance(event, h11.Response):
                    status, answer = event.status_code, list(event.headers)
                elif isinstance(event, h11.Data):
                    chunks.append(bytes(event.data))
                elif isinstance(event, h11.EndOfMessage):
                    return status, answer, b"".join(chunks)
                elif isinstance(event, h11.ConnectionClosed):
                    raise UpstreamBroken("the connection closed before the answer ended")
        except (OSError, h11.ProtocolError) as err:
            raise UpstreamBroken(str(err) or type(err).__name__) from err

    def recycle(self) -> bool:
        """Ready the connection for its next request; False if it cannot take one."""
        protocol = self.protocol
        if protocol.our_state is h11.DONE and protocol.their_state is h11.DONE:
            protocol.start_next_cycle()
            return True
        return False

    def close(self) -> None:
        self.writer.close()


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
        reader, writer = await asyncio.open_connection(self.host, self.port)
        return await self._exchange(_Connection(reader, writer), method, target, headers, body)

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
        if connection.recycle() and len(self._idle) < self.max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return reply

    def _take(self) -> _Connection | None:
        idle, oldest = self._idle, time.monotonic() - self.max_idle_time
        while idle:
            connection = idle.pop()
            if connection.idle_since >= oldest and not connection.reader.at_eof():
                return connection
            connection.close()
        return None

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


class Router:
    """The ASGI app: route by weight or by name, forward, return the answer."""

    def __init__(self, routes: RoutesFile, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.routes = routes
        self.timeout = timeout
        self._pools: dict[tuple[str, int], Pool] = {}
        self._pooled_for = routes.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        if scope["path"] == "/health" and method in ("GET", "HEAD"):
            await _send(send, 200, [_JSON], b'{"status":"alive"}')
            return
        self.routes.refresh()
        routes = self.routes.routes
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        named = next((value for key, value in headers if key == DEPLOYMENT_HEADER), None)
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
        body = await _read_body(receive)
        if body is None:
            return  # the client went away
        await self._forward(scope, deployment, body, send)

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


async def _read_body(receive: Receive) -> bytes | None:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
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
        Router(routes, timeout=args.timeout),
        host=args.host,
        port=args.port,
        http="h11",
        loop="asyncio",
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
    config["loggers"][logger.name] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return config


if __name__ == "__main__":
    sys.exit(main())
