"""What the pages fetch: a metric's chart points, its full history as CSV, a run's log as
it grows (server-sent events), and a run's output files."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    Response,
    StreamingResponse,
)

from mlform import runs
from mlform.errors import NotFound
from mlform.state.runs import FINISHED
from mlform.studio import series
from mlform.workspace import Workspace

_LOG_EVERY = 0.25  # seconds between two looks at a running run's log
_STATUS_EVERY = 2.0  # … and at whether it still runs
_LOG_CHUNK = 1 << 16


def _run(ws: Workspace, ref: str) -> runs.Run:
    with ws.store("studio") as store:
        return runs.find(store, ref)


def metric_points(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    ref, key = request.path_params["run_id"], request.query_params.get("key", "")
    axis: series.Axis = "time" if request.query_params.get("x") == "time" else "step"
    try:
        points = int(request.query_params.get("points", "2000"))
    except ValueError:
        points = 2000
    with ws.store("studio") as store:
        try:
            run = runs.find(store, ref)
        except NotFound as err:
            return JSONResponse({"error": str(err)}, status_code=404)
        found = series.series(store, run.id, key, axis, points)
    return JSONResponse(
        {
            "key": key,
            "axis": axis,
            "x": found.x,
            "y": found.y,
            "total": found.total,
            "reduced": found.reduced,
        }
    )


def metric_csv(request: Request) -> Response:
    """Every point of a run's metrics (or of one key), as `mlform runs metrics --csv`."""
    ws: Workspace = request.app.state.workspace
    ref, key = request.path_params["run_id"], request.query_params.get("key") or None
    with ws.store("studio") as store:
        try:
            run = runs.find(store, ref)
        except NotFound as err:
            return PlainTextResponse(str(err), status_code=404)
        history = runs.metric_history(store, run.id, key)

    def rows() -> Iterator[str]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["key", "step", "timestamp_ms", "value"])
        for start in range(0, len(history), 10_000):
            writer.writerows(history[start : start + 10_000])
            yield out.getvalue()
            out.seek(0)
            out.truncate()
        yield out.getvalue()

    name = f"{run.id}-{key or 'metrics'}.csv".replace("/", "_")
    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


async def log_events(request: Request) -> Response:
    """The run's log as server-sent events: what it holds, then each line as it comes,
    until the run has ended (an `end` event) or the page goes away."""
    ws: Workspace = request.app.state.workspace
    try:
        run = await run_in_threadpool(_run, ws, request.path_params["run_id"])
    except NotFound as err:
        return PlainTextResponse(str(err), status_code=404)
    log = Path(run.run_dir) / "logs" / "std_log.txt"

    async def events() -> AsyncIterator[str]:
        offset, pending = 0, b""
        status, asked = run.status, asyncio.get_running_loop().time()
        while True:
            data = await run_in_threadpool(_read, log, offset)
            offset += len(data)
            lines = (pending + data).split(b"\n")
            pending = lines.pop()
            if lines:
                text = json.dumps([line.decode(errors="replace") for line in lines])
                yield f"event: lines\ndata: {text}\n\n"
            if status in FINISHED and not data:
                if pending:
                    last = json.dumps([pending.decode(errors="replace")])
                    yield f"event: lines\ndata: {last}\n\n"
                yield f"event: end\ndata: {json.dumps(status)}\n\n"
                return
            if await request.is_disconnected():
                return
            now = asyncio.get_running_loop().time()
            if now - asked >= _STATUS_EVERY:
                asked = now
                status = (await run_in_threadpool(_run, ws, run.id)).status
            if not data:
                await asyncio.sleep(_LOG_EVERY)

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


def _read(path: Path, offset: int) -> bytes:
    try:
        with path.open("rb") as handle:
            handle.seek(offset)
            return handle.read(_LOG_CHUNK)
    except FileNotFoundError:
        return b""


def output_file(request: Request) -> Response:
    """A file of the run's outputs folder; nothing outside it."""
    ws: Workspace = request.app.state.workspace
    try:
        run = _run(ws, request.path_params["run_id"])
    except NotFound as err:
        return PlainTextResponse(str(err), status_code=404)
    folder = (Path(run.run_dir) / "outputs").resolve()
    target = (folder / request.path_params["path"]).resolve()
    if not target.is_relative_to(folder) or not target.is_file():
        return PlainTextResponse("no such output file", status_code=404)
    return FileResponse(target, filename=target.name)
