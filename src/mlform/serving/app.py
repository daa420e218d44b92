"""The scoring server: a Starlette app around one `ScoringScript`.

    POST /score          the script's run() on the request's payload
    GET  /health         liveness: the process answers
    GET  /ready          readiness: init() has succeeded
    GET  /openapi.json   this API, described
    GET  /               the deployment's name and these links

Every error is JSON, `{"error": message, "status": code}`, mapped from the runtime's
errors in one place (`_STATUS`). A scoring script's exception messages and tracebacks go
to the log (logger "mlform.serving"), never into a response: they may hold data or paths
that clients must not see.

Per-request work is kept small, since this server is measured against `mlflow models
serve`: fixed responses are encoded once, and a request makes one hop to the thread pool
(parse, run, encode) because run() is blocking user code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mlform.serving.scoring import (
    PAYLOAD_KEYS,
    BadPayload,
    BadResult,
    NotReady,
    RunFailed,
    ScoringScript,
    ServingError,
)

MAX_BODY = 10 * 1024 * 1024
JSON = "application/json"
logger = logging.getLogger("mlform.serving")


class BodyTooLarge(ServingError):
    pass


class ClientGone(ServingError):
    pass


_STATUS: dict[type[ServingError], int] = {
    BadPayload: 400,
    ClientGone: 400,
    BodyTooLarge: 413,
    RunFailed: 500,
    BadResult: 500,
    NotReady: 503,
}

_ROUTES = "POST /score, GET /health, GET /ready, GET /openapi.json and GET /"


def create_app(
    script: ScoringScript, *, max_body: int = MAX_BODY, name: str = "model"
) -> Starlette:
    """The ASGI app serving `script`; request bodies over `max_body` bytes get 413."""
    alive = _encode({"status": "alive"})
    ready = _encode({"status": "ready"})
    not_ready = _encode({"status": "not ready"})
    links = {"score": "/score", "health": "/health", "ready": "/ready", "openapi": "/openapi.json"}
    index = _encode({"name": name, "links": links})
    openapi = _encode(openapi_document(name, max_body))

    async def score(request: Request) -> Response:
        try:
            body = await _read_body(request, max_body)
            return Response(await run_in_threadpool(script.score, body), media_type=JSON)
        except ServingError as err:
            return _failure(err, script)

    async def health(request: Request) -> Response:
        return Response(alive, media_type=JSON)

    async def readiness(request: Request) -> Response:
        if script.ready:
            return Response(ready, media_type=JSON)
        return Response(not_ready, status_code=503, media_type=JSON)

    async def describe(request: Request) -> Response:
        return Response(openapi, media_type=JSON)

    async def root(request: Request) -> Response:
        return Response(index, media_type=JSON)

    routes = [
        Route("/score", score, methods=["POST"]),  # first: the router tries routes in order
        Route("/health", health, methods=["GET"]),
        Route("/ready", readiness, methods=["GET"]),
        Route("/openapi.json", describe, methods=["GET"]),
        Route("/", root, methods=["GET"]),
    ]
    handlers = {HTTPException: _http_error, Exception: _internal_error}
    return Starlette(routes=routes, exception_handlers=handlers)


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
    return _error(_STATUS[type(err)], str(err))


def _error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = _encode({"error": message, "status": status})
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it alone
        raise exc
    method, path = request.method, request.url.path
    if exc.status_code == 404:
        message = f"no route for {method} {path}; this server has {_ROUTES}"
    elif exc.status_code == 405:
        allowed = (exc.headers or {}).get("Allow", "")
        message = f"{method} is not allowed on {path}; use {allowed}"
    else:  # pragma: no cover - the router raises only 404 and 405
        message = exc.detail
    return _error(exc.status_code, message, exc.headers)


def _internal_error(request: Request, exc: Exception) -> Response:
    # A bug in this server, not the script: Starlette re-raises it and uvicorn logs it.
    return _error(500, "the scoring server failed; see the deployment's log")


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("ascii")


def openapi_document(name: str, max_body: int = MAX_BODY) -> dict[str, Any]:
    """The OpenAPI 3.1 description of this server's routes."""
    error = {"$ref": "#/components/schemas/Error"}

    def answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
        return {"description": description, "content": {JSON: {"schema": schema}}}

    def status(*values: str) -> dict[str, Any]:
        return {
            "type": "object",
            "properties": {"status": {"enum": list(values)}},
            "required": ["status"],
        }

    payloads = {
        "data": {"description": "passed to run() as is"},
        "instances": {"description": "passed to run() as is"},
        "inputs": {"description": "passed to run() as is"},
        "dataframe_split": {
            "description": "a pandas DataFrame (records if pandas is not installed)",
            "type": "object",
            "properties": {
                "columns": {"type": "array"},
                "data": {"type": "array", "items": {"type": "array"}},
                "index": {"type": "array"},
            },
            "required": ["columns", "data"],
            "additionalProperties": False,
        },
        "dataframe_records": {
            "description": "a pandas DataFrame (the records if pandas is not installed)",
            "type": "array",
            "items": {"type": "object"},
        },
    }
    request_schema = {
        "oneOf": [
            {
                "type": "object",
                "properties": {key: payloads[key]},
                "required": [key],
                "additionalProperties": False,
            }
            for key in PAYLOAD_KEYS
        ]
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": f"{name} scoring API", "version": "1"},
        "paths": {
            "/score": {
                "post": {
                    "summary": "Score a payload with the deployment's scoring script",
                    "requestBody": {
                        "required": True,
                        "description": f"at most {max_body} bytes",
                        "content": {JSON: {"schema": request_schema}},
                    },
                    "responses": {
                        "200": answer("the JSON of what run() returned", {}),
                        "400": answer("the body is not JSON, or not an accepted payload", error),
                        "413": answer("the body is larger than the limit", error),
                        "500": answer("run() raised; the traceback is in the log", error),
                        "503": answer("init() has not completed", error),
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Liveness",
                    "responses": {"200": answer("the server answers", status("alive"))},
                }
            },
            "/ready": {
                "get": {
                    "summary": "Readiness",
                    "responses": {
                        "200": answer("init() has succeeded", status("ready")),
                        "503": answer("init() has not completed", status("not ready")),
                    },
                }
            },
            "/openapi.json": {
                "get": {"summary": "This document", "responses": {"200": answer("OpenAPI", {})}}
            },
            "/": {
                "get": {
                    "summary": "The deployment's name and links",
                    "responses": {"200": answer("name and links", {"type": "object"})},
                }
            },
        },
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {"error": {"type": "string"}, "status": {"type": "integer"}},
                    "required": ["error", "status"],
                }
            }
        },
    }
