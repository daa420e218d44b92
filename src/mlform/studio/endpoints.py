"""The endpoints pages: each endpoint with its deployments and traffic split; one
endpoint's live counters (rate, latency percentiles, errors: what its servers' /metrics
say, looked at again every few seconds by the page), a sample of the requests it
captured, and a form that sends it a test request.

The test request is the studio's one POST. It goes through `endpoints invoke`'s path
(the endpoint's key or a fresh token, its router or a chosen deployment), so it is
scored and captured like any client's. It is accepted only as JSON (a form on another
site cannot send that without the browser asking first, and the studio never agrees)
and only from the studio's own pages when the browser names an origin; its size is
bounded before it is read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import duckdb
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from mlform.errors import MlformError, NotFound
from mlform.kinds.endpoint import operations
from mlform.storage import captures, open_storage
from mlform.studio import serving
from mlform.studio.render import page
from mlform.workspace import Workspace

_MAX_TEST_BYTES = 1 << 20  # a test request's body
_SAMPLE_ROWS = 20


def endpoints_list(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    found = operations.endpoints(ws) if ws.state_exists() else []
    return page(request, "endpoints.html", title="Endpoints", endpoints=found)


def endpoint_page(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    name = request.path_params["name"]
    try:
        found = operations.endpoint(ws, name)
    except NotFound as err:
        return page(request, "missing.html", title="No such endpoint", message=str(err), status=404)
    folder, where = _captures(ws)
    sample: list[serving.Captured] = []
    sample_error = ""
    if folder is not None:
        try:
            sample = serving.captured(folder, name, _SAMPLE_ROWS)
        except (OSError, duckdb.Error) as err:  # a capture file being moved, or damaged
            sample_error = f"the captured requests could not be read: {err}"
    live = _live(request, found)
    return page(
        request,
        "endpoint.html",
        title=f"Endpoint {name}",
        endpoint=found,
        deployments=_grouped(found, live),
        sample=sample,
        sample_error=sample_error,
        captures_where=where,
    )


def endpoint_live(request: Request) -> Response:
    """Each instance's counters now, as JSON, for the page to refresh its table."""
    ws: Workspace = request.app.state.workspace
    try:
        found = operations.endpoint(ws, request.path_params["name"])
    except NotFound as err:
        return JSONResponse({"error": str(err)}, status_code=404)
    live = _live(request, found)
    return JSONResponse(
        {
            "router_up": found.router_up,
            "deployments": {
                d["name"]: d["total"].as_json() for d in _grouped(found, live) if d["total"]
            },
        }
    )


async def endpoint_invoke(request: Request) -> Response:
    """POST {"body": "…", "deployment": null | "blue"}: the endpoint's answer to `body`."""
    ws: Workspace = request.app.state.workspace
    name = request.path_params["name"]
    refused = _refused(request)
    if refused:
        return JSONResponse({"error": refused}, status_code=403)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit() or int(length) > _MAX_TEST_BYTES:
        return JSONResponse(
            {"error": f"a test request is sent with its length, at most {_MAX_TEST_BYTES} bytes"},
            status_code=413,
        )
    received = bytearray()
    async for chunk in request.stream():
        received += chunk
        if len(received) > int(length):
            return JSONResponse({"error": "the body is longer than it said"}, status_code=400)
    try:
        asked = json.loads(received)
        body = asked["body"]
        deployment = asked.get("deployment") or None
        if not isinstance(body, str) or not (deployment is None or isinstance(deployment, str)):
            raise TypeError
    except (ValueError, KeyError, TypeError, AttributeError):
        return JSONResponse(
            {"error": 'send {"body": "<the request, as text>", "deployment": null or a name}'},
            status_code=400,
        )
    try:
        json.loads(body)
    except ValueError as err:
        return JSONResponse({"error": f"the request is not JSON: {err}"}, status_code=400)
    started = time.monotonic()
    try:
        status, answer = await run_in_threadpool(
            operations.invoke, ws, name, body.encode(), deployment
        )
    except NotFound as err:
        return JSONResponse({"error": str(err)}, status_code=404)
    except MlformError as err:  # it does not answer
        return JSONResponse({"error": str(err)}, status_code=502)
    return JSONResponse(
        {"status": status, "body": answer, "ms": round((time.monotonic() - started) * 1000, 1)}
    )


def _refused(request: Request) -> str:
    """Why a POST is not taken: not JSON, or from a page of another origin."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        return "a test request is sent as application/json, by the endpoint's page"
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return f"a test request from {origin} is refused: send it from the studio's own page"
    if request.headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
        return "a test request from another site is refused"
    return ""


def _live(request: Request, found: operations.Endpoint) -> dict[str, serving.Live]:
    looks: serving.Looks = request.app.state.looks
    live = {
        _key(found, d): looks.live(_key(found, d), serving.scrape(d.url)) for d in found.deployments
    }
    looks.forget_others(f"{found.name} ", live)
    return live


def _key(found: operations.Endpoint, deployed: operations.Deployed) -> str:
    return f"{found.name} {deployed.url} {deployed.handle}"


def _grouped(found: operations.Endpoint, live: dict[str, serving.Live]) -> list[dict[str, Any]]:
    """The endpoint's deployments, each with its instances and their counters summed."""
    by_name: dict[str, list[operations.Deployed]] = {}
    for deployed in found.deployments:
        by_name.setdefault(deployed.deployment, []).append(deployed)
    grouped = []
    for name, instances in sorted(by_name.items()):
        counted = [live[_key(found, i)] for i in instances if _key(found, i) in live]
        grouped.append(
            {
                "name": name,
                "model": instances[0].model,
                "compute": instances[0].compute,
                "weight": instances[0].weight,
                "instances": [(i, live.get(_key(found, i))) for i in instances],
                "total": _sum(counted),
            }
        )
    return grouped


def _sum(lives: list[serving.Live]) -> serving.Live | None:
    """The deployment's counters: its instances' summed; the slowest instance's
    percentiles (a sum of percentiles means nothing, and the slowest is what a caller
    may meet)."""
    answering = [live for live in lives if live.answering]
    if not answering:
        return serving.Live(answering=False) if lives else None
    rates = [live.rate for live in answering]
    latency = tuple(
        max((v for v in values if v is not None), default=None)
        for values in zip(*(live.latency for live in answering), strict=True)
    )
    return serving.Live(
        True,
        all(live.ready for live in answering),
        sum(live.requests for live in answering),
        sum(live.errors for live in answering),
        sum(live.in_flight for live in answering),
        None if None in rates else sum(r for r in rates if r is not None),
        max((live.since for live in answering if live.since is not None), default=None),
        latency,
        next((live.latency_of for live in answering if live.latency_of), ""),
    )


def _captures(ws: Workspace) -> tuple[Path | None, str]:
    """Where this machine finds the deployments' captured requests, and what to say of it."""
    try:
        config = ws.config
        spec = config.datastore(config.default_datastore)
        storage = open_storage(spec, config.storage_options(spec))
    except MlformError as err:
        return None, f"the datastore of captured requests is not readable: {err}"
    root = storage.local_path("")
    if root is not None:
        return root / "captures", f"datastore {config.default_datastore}: {root / 'captures'}"
    box = captures.outbox(config.home)
    return box / "captures", (
        f"datastore {config.default_datastore} keeps them in the cloud; shown here are those "
        "not yet moved there from this machine's outbox"
    )
