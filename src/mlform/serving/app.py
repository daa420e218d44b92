"""The scoring server: a Starlette app around one `ScoringScript`.

    POST /score          the script's run() on the request's payload
    GET  /health         liveness: the process answers
    GET  /ready          readiness: init() has succeeded
    GET  /metrics        counters of POST /score, for Prometheus (see `metrics`)
    GET  /openapi.json   this API, described
    GET  /               the deployment's name and these links

Options of `create_app`, all off by default:

    keys, key_hashes     POST /score needs `Authorization: Bearer <key>` (see `auth`);
                         the other routes stay open, /metrics too: it holds counts and
                         timings, never payloads, and scrapers rarely carry keys
    request_timeout      a run() that takes longer is answered 504. Python cannot stop a
                         thread, so run() keeps going in its thread, outside the thread
                         pool's limit, until it returns; its result or error is dropped
    max_concurrent       requests beyond this many in flight wait for a slot, unread, for
                         up to `max_queue_wait` seconds (Azure ML's max_queue_wait_ms,
                         default 500 ms), then get 429

run() is called on the event loop while its calls are quick, else in the thread pool
(`placement`); with a request timeout or a concurrency limit, always in the thread pool.
    access_log           one JSON line per POST /score to logger "mlform.serving.access"

Every POST /score answer carries `x-request-id`: the client's, or one made here (a
per-process prefix and a counter), which the access log line repeats.

Every error is JSON, `{"error": message, "status": code}`, mapped from the runtime's
errors in one place (`_STATUS`). A scoring script's exception messages and tracebacks go
to the log (logger "mlform.serving"), never into a response: they may hold data or paths
that clients must not see.

Per-request work is kept small, since this server is measured against `mlflow models
serve`: fixed responses are encoded once, and a request is parsed, run and encoded in one
call, on the event loop or with one hop to the thread pool.
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import itertools
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence
from time import perf_counter
from typing import Any, TypeVar

import anyio.to_thread
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlform.serving.auth import CHALLENGE, KeyCheck, KeyMissing, KeyRejected, NotAllowed
from mlform.serving.batching import Batcher
from mlform.serving.keyring import KeyRing
from mlform.serving.metrics import CONTENT_TYPE, Metrics
from mlform.serving.openapi import DEFAULT_QUEUE_WAIT, JSON, MAX_BODY, openapi_document
from mlform.serving.placement import Placement
from mlform.serving.scoring import (
    BATCH_MARKER,
    PARSED_MARKER,
    RAW,
    BadPayload,
    BadResult,
    NotReady,
    RunFailed,
    ScoringScript,
    ServingError,
)

T = TypeVar("T")
logger = logging.getLogger("mlform.serving")
access_logger = logging.getLogger("mlform.serving.access")


class BodyTooLarge(ServingError):
    pass


class ClientGone(ServingError):
    pass


class Busy(ServingError):
    pass


class NotJson(ServingError):
    pass


class TimedOut(ServingError):
    pass


_STATUS: dict[type[ServingError], int] = {
    BadPayload: 400,
    ClientGone: 400,
    KeyMissing: 401,
    KeyRejected: 401,
    NotAllowed: 403,
    BodyTooLarge: 413,
    NotJson: 415,
    Busy: 429,
    RunFailed: 500,
    BadResult: 500,
    NotReady: 503,
    TimedOut: 504,
}

_ROUTES = "POST /score, GET /health, GET /ready, GET /metrics, GET /openapi.json and GET /"
# anyio (a Starlette dependency) renamed `cancellable` in 4.1; images may hold either.
_ABANDON: dict[str, Any] = (
    {"abandon_on_cancel": True}
    if "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters
    else {"cancellable": True}
)
# Generated request ids: unique per process, and telling processes apart in merged logs.
_ID_PREFIX = os.urandom(3).hex()


def create_app(
    script: ScoringScript,
    *,
    max_body: int = MAX_BODY,
    name: str = "model",
    keys: Sequence[str] = (),
    key_hashes: Sequence[str] = (),
    request_timeout: float | None = None,
    max_concurrent: int | None = None,
    max_queue_wait: float = DEFAULT_QUEUE_WAIT,
    access_log: bool = False,
    token_keys: Callable[[], KeyRing] | None = None,
    endpoint: str = "",
) -> Starlette:
    """The ASGI app serving `script`; request bodies over `max_body` bytes get 413.

    `keys` (plain) and `key_hashes` (sha256 hex) together are the keys POST /score
    accepts; with neither, it is open. See the module's docstring for the others.
    """
    secured = keys or key_hashes or token_keys is not None
    check = None
    if secured:
        check = KeyCheck(keys, key_hashes, token_keys=token_keys, endpoint=endpoint)
    slots = None if max_concurrent is None else asyncio.Semaphore(max_concurrent)
    busy = (
        f"this deployment is already answering its limit of {max_concurrent} concurrent "
        f"requests, and none ended within its queue wait of {max_queue_wait * 1000:g} ms; "
        "retry shortly, or raise the limit (max_concurrent_requests_per_instance) or the "
        "wait (max_queue_wait_ms), or add instances"
    )
    run, batcher = _runner(script, request_timeout, pooled=max_concurrent is not None)
    # As Azure ML's inference server: a raw run() gets any body as text; one that is
    # given parsed JSON (schema-decorated, or mlform's parsed mode) needs a JSON type.
    json_only = script.input != RAW
    metrics = Metrics()
    ids = itertools.count(1)
    alive = _encode({"status": "alive"})
    ready = _encode({"status": "ready"})
    not_ready = _encode({"status": "not ready"})
    links = {
        "score": "/score",
        "health": "/health",
        "ready": "/ready",
        "metrics": "/metrics",
        "openapi": "/openapi.json",
    }
    index = _encode({"name": name, "links": links})
    openapi = _encode(
        openapi_document(
            name,
            max_body,
            secured=check is not None,
            request_timeout=request_timeout,
            max_concurrent=max_concurrent,
            max_queue_wait=max_queue_wait,
            body=script.body_schema(),
            json_only=json_only,
        )
    )

    async def score(request: Request) -> Response:
        started = perf_counter()
        request_id = request.headers.get("x-request-id") or f"{_ID_PREFIX}-{next(ids)}"
        metrics.in_flight += 1
        size = 0
        queued = False
        try:
            try:
                if check is not None:
                    check.verify(request.headers.get("authorization"))
                if json_only:
                    _require_json(request.headers.get("content-type"))
                if slots is not None:
                    await _take(slots, max_queue_wait, busy)
                    queued = True
                body = await _read_body(request, max_body)
                size = len(body)
                response = Response(await run(body, request_id), media_type=JSON)
            except ServingError as err:
                response = _failure(err, script)
        except Exception:
            seconds = perf_counter() - started
            metrics.observe(500, seconds)  # what Starlette will answer
            if access_log:
                _log_access(request, 500, seconds, size, 0, request_id)
            raise
        finally:
            metrics.in_flight -= 1
            if queued:
                assert slots is not None
                slots.release()
        seconds = perf_counter() - started
        metrics.observe(response.status_code, seconds)
        response.raw_headers.append((b"x-request-id", request_id.encode("latin-1")))
        if access_log:
            _log_access(
                request, response.status_code, seconds, size, len(response.body), request_id
            )
        return response

    async def health(request: Request) -> Response:
        return Response(alive, media_type=JSON)

    async def readiness(request: Request) -> Response:
        if script.ready:
            return Response(ready, media_type=JSON)
        return Response(not_ready, status_code=503, media_type=JSON)

    async def report(request: Request) -> Response:
        batched = None if batcher is None else (batcher.requests, batcher.calls)
        return Response(metrics.render(script.ready, batched), media_type=CONTENT_TYPE)

    async def describe(request: Request) -> Response:
        return Response(openapi, media_type=JSON)

    async def root(request: Request) -> Response:
        return Response(index, media_type=JSON)

    routes = [
        Route("/score", score, methods=["POST"]),  # first: the router tries routes in order
        Route("/health", health, methods=["GET"]),
        Route("/ready", readiness, methods=["GET"]),
        Route("/metrics", report, methods=["GET"]),
        Route("/openapi.json", describe, methods=["GET"]),
        Route("/", root, methods=["GET"]),
    ]
    handlers = {HTTPException: route_errors(_ROUTES), Exception: _internal_error}
    return Starlette(routes=routes, exception_handlers=handlers)


def _runner(
    script: ScoringScript, timeout: float | None, *, pooled: bool
) -> tuple[Callable[[bytes, str], Awaitable[bytes]], Batcher | None]:
    """`script.score`, alone or with concurrent requests (`batching`: then with its
    Batcher), where `Placement` puts it; in the thread pool if `pooled` or timed, given
    up on after `timeout` s."""
    placement = Placement(pooled=pooled or timeout is not None)
    single: Callable[[bytes, str], Awaitable[bytes]] = _single(script.score, timeout, placement)
    if not script.batchable:
        if getattr(script.module, BATCH_MARKER, False) is True:
            logger.warning(
                "%s sets %s but not %s = True: requests are scored one at a time (a "
                "script that gets the body as text cannot share calls)",
                script.name,
                BATCH_MARKER,
                PARSED_MARKER,
            )
        return single, None
    alone = _single(script.score_parsed, timeout, placement)
    batcher = Batcher(script, placement, alone, timeout=timeout)
    if timeout is None:
        return batcher.score, batcher
    message = _timed_out(timeout)

    async def run_batched(body: bytes, request_id: str) -> bytes:
        try:
            return await batcher.score(body, request_id)
        except TimeoutError:
            raise TimedOut(message) from None

    return run_batched, batcher


def _single(
    score: Callable[[T, str], bytes], timeout: float | None, placement: Placement
) -> Callable[[T, str], Awaitable[bytes]]:
    """`score` (the script's, of a body or of a body already read as JSON) for one
    request, where `placement` puts it; given up on after `timeout` seconds (in a thread:
    a timed call never runs on the loop)."""
    if timeout is None and not placement.pooled:

        async def run_placed(given: T, request_id: str) -> bytes:
            return await placement.call(score, given, request_id)

        return run_placed
    if timeout is None:  # pooled: the thread pool, always

        async def run_pooled(given: T, request_id: str) -> bytes:
            return await run_in_threadpool(score, given, request_id)

        return run_pooled
    message = _timed_out(timeout)

    async def run(given: T, request_id: str) -> bytes:
        # Abandoned, not cancelled, on timeout: cancelling would wait for the thread.
        try:
            async with asyncio.timeout(timeout):
                return await anyio.to_thread.run_sync(score, given, request_id, **_ABANDON)
        except TimeoutError:
            raise TimedOut(message) from None

    return run


def _timed_out(timeout: float) -> str:
    return (
        f"the scoring script did not answer within this deployment's request timeout of "
        f"{timeout:g} s; send fewer rows per request, or raise the timeout"
    )


async def _take(slots: asyncio.Semaphore, wait: float, busy: str) -> None:
    """A slot of `slots`, waited for in turn for at most `wait` seconds; else Busy."""
    if not slots.locked():
        await slots.acquire()  # free: returns at once
        return
    try:
        async with asyncio.timeout(wait):
            await slots.acquire()
    except TimeoutError:
        raise Busy(busy) from None


def _log_access(
    request: Request, status: int, seconds: float, size: int, sent: int, request_id: str
) -> None:
    line = {
        "ts": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "method": request.method,
        "path": request.scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 3),
        "bytes_in": size,
        "bytes_out": sent,
        "request_id": request_id,
    }
    access_logger.info(json.dumps(line, separators=(",", ":")))


async def _read_body(request: Request, limit: int) -> bytes:
    # Checked before reading, and counted while reading: chunked bodies have no length.
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLarge(_too_large(limit))
    receive = request.receive
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientGone("the client disconnected before sending the whole body")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(_too_large(limit))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _require_json(content_type: str | None) -> None:
    """Pass for `application/json` and `application/*+json`, parameters allowed."""
    if content_type == JSON:  # what nearly every client sends
        return
    media = (content_type or "").partition(";")[0].strip().lower()
    if media == JSON or (media.startswith("application/") and media.endswith("+json")):
        return
    got = f"got {media!r}" if media else "it has none"
    raise NotJson(
        f'the request body must be JSON, sent with "Content-Type: application/json" ({got})'
    )


def _too_large(limit: int) -> str:
    return (
        f"the request body is larger than this deployment's limit of {limit} bytes; "
        "send fewer rows per request"
    )


def _failure(err: ServingError, script: ScoringScript) -> Response:
    if isinstance(err, RunFailed):
        kind = type(err.__cause__).__name__
        logger.error("run() of %s raised %s", script.name, kind, exc_info=err.__cause__)
    elif isinstance(err, BadResult):
        logger.error("%s (%s)", err, script.name, exc_info=err.__cause__)
    elif isinstance(err, TimedOut):
        logger.warning("run() of %s passed the request timeout; it keeps running", script.name)
    status = _STATUS[type(err)]
    return error_response(status, str(err), CHALLENGE if status == 401 else None)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    """An error as every mlform server answers one: `{"error": …, "status": …}`."""
    body = _encode({"error": message, "status": status})
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def route_errors(routes: str) -> Callable[[Request, Exception], Response]:
    """The handler of Starlette's 404 and 405, as JSON that lists `routes`."""

    def handle(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it alone
            raise exc
        method, path = request.method, request.url.path
        if exc.status_code == 404:
            message = f"no route for {method} {path}; this server has {routes}"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"{method} is not allowed on {path}; use {allowed}"
        else:  # pragma: no cover - the router raises only 404 and 405
            message = exc.detail
        return error_response(exc.status_code, message, exc.headers)

    return handle


def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug in this server, not the script: Starlette re-raises it and uvicorn logs it.
    return error_response(500, "the scoring server failed; see the deployment's log")


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


__all__ = [
    "DEFAULT_QUEUE_WAIT",
    "JSON",
    "MAX_BODY",
    "create_app",
    "error_response",
    "openapi_document",
    "route_errors",
]
