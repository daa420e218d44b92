"""The pipelines pages: each pipeline with its latest run, and one run of it drawn as its
graph of steps, each with its status, duration and the run it reused."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mlform import runs
from mlform.errors import NotFound
from mlform.studio.render import page
from mlform.workspace import Workspace

_UPSTREAM = re.compile(r"parent\.jobs\.([A-Za-z0-9_.-]+?)\.outputs\.")
WIDTH, HEIGHT, GAP_X, GAP_Y, MARGIN = 260, 74, 60, 26, 12
TOP = 64  # room above the boxes for the edges that pass over a column


@dataclass(frozen=True, slots=True)
class Box:
    step: str
    x: int
    y: int
    status: str
    seconds: float | None
    run_id: str | None
    reused_from: str | None


def pipelines_list(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    found: list[dict[str, Any]] = []
    if ws.state_exists():
        with ws.store("studio") as store:
            for address, status in store.query(
                "select address, status from resources where kind = 'pipeline' order by address"
            ):
                latest = store.query(
                    "select id, status, duration from runs where runconfig = ? and parent_id "
                    "is null order by created_at desc, seq desc limit 1",
                    [address],
                )
                found.append(
                    {
                        "name": address.split("/", 1)[1],
                        "status": status,
                        "run": latest[0] if latest else None,
                    }
                )
    return page(request, "pipelines.html", title="Pipelines", pipelines=found)


def pipeline_page(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    name = request.path_params["name"]
    address = f"pipeline/{name}"
    with ws.store("studio") as store:
        rows = store.query("select spec from resources where address = ?", [address])
        if not rows:
            message = f"no pipeline '{name}' is applied; `mlform plan` shows what would be"
            return page(
                request, "missing.html", title="No such pipeline", message=message, status=404
            )
        jobs: dict[str, Any] = json.loads(rows[0][0]).get("jobs") or {}
        wanted = request.query_params.get("run")
        try:
            run = runs.find(store, wanted or name) if wanted or _ran(store, address) else None
        except NotFound as err:
            return page(request, "missing.html", title="No such run", message=str(err), status=404)
        steps: dict[str, tuple[str, float | None, str | None, str | None]] = {}
        if run is not None:
            for step, status, seconds, run_id, reused in store.query(
                "select name, status, duration, id, reused_from from runs where parent_id = ?",
                [run.id],
            ):
                steps[step] = (status, seconds, run_id, reused)
    boxes, edges = _layout(jobs, steps)
    width = max((b.x for b in boxes), default=0) + WIDTH + MARGIN
    height = max((b.y for b in boxes), default=0) + HEIGHT + MARGIN
    return page(
        request,
        "pipeline.html",
        title=f"Pipeline {name}",
        run=run,
        boxes=boxes,
        edges=edges,
        width=width,
        height=height,
        box_width=WIDTH,
        box_height=HEIGHT,
    )


def _ran(store: Any, address: str) -> bool:
    return bool(store.query("select 1 from runs where runconfig = ? limit 1", [address]))


def upstream(jobs: dict[str, Any]) -> dict[str, list[str]]:
    """Each step's steps whose outputs it takes."""
    return {
        step: sorted({u for u in _UPSTREAM.findall(json.dumps(job)) if u in jobs and u != step})
        for step, job in jobs.items()
    }


def _layout(
    jobs: dict[str, Any], steps: dict[str, tuple[str, float | None, str | None, str | None]]
) -> tuple[list[Box], list[str]]:
    """Boxes in columns by depth (a step right of everything it takes), and the edges as
    SVG paths from each upstream step to the step that takes its outputs."""
    takes = upstream(jobs)
    depth: dict[str, int] = {}

    def level(step: str, seen: frozenset[str] = frozenset()) -> int:
        if step not in depth:
            before = [level(u, seen | {step}) for u in takes[step] if u not in seen]
            depth[step] = 1 + max(before, default=-1)
        return depth[step]

    columns: dict[int, list[str]] = {}
    for step in jobs:
        columns.setdefault(level(step), []).append(step)
    boxes: dict[str, Box] = {}
    for column, names in sorted(columns.items()):
        for row, step in enumerate(names):
            status, seconds, run_id, reused = steps.get(step, ("not run", None, None, None))
            boxes[step] = Box(
                step,
                MARGIN + column * (WIDTH + GAP_X),
                TOP + row * (HEIGHT + GAP_Y),
                status,
                seconds,
                run_id,
                reused,
            )
    edges = []
    for step, ups in takes.items():
        for up in ups:
            a, b = boxes[up], boxes[step]
            span = (b.x - a.x) // (WIDTH + GAP_X)
            if span <= 1:  # the next column: across the gap
                x1, y1 = a.x + WIDTH, a.y + HEIGHT // 2
                x2, y2 = b.x, b.y + HEIGHT // 2
                middle = (x1 + x2) // 2
                edges.append(f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2 - 6},{y2}")
            else:  # over the columns between, top to top, higher the farther it goes
                x1, x2 = a.x + WIDTH // 2 + 20, b.x + WIDTH // 2 - 20
                lift = min(TOP - 8, 18 + 14 * span)
                edges.append(f"M{x1},{a.y} C{x1},{a.y - lift} {x2},{b.y - lift} {x2},{b.y - 6}")
    return list(boxes.values()), edges
