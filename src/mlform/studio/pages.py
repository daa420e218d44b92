"""The studio's pages, rendered on the server: the overview, the runs table and a run.

Each request opens the state as every reader does (`Workspace.store`: no writer lock,
so an apply is never held up, and a page answers while one runs) and closes it before
the page is rendered.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mlform import gitinfo, runs
from mlform.errors import MlformError, NotFound
from mlform.plan.model import Plan
from mlform.plan.reasons import texts
from mlform.state import syncs
from mlform.state.runs import FINISHED
from mlform.studio import tables
from mlform.studio.monitors import latest_breaches
from mlform.studio.render import page
from mlform.studio.search import SearchError
from mlform.workspace import Workspace

_RECENT_APPLIES = 15
_SHOWN_BYTES = 1 << 20  # of a code file shown in the page


def overview(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    plan: Plan | None = None
    plan_error = ""
    try:
        # the files as they are now: a workspace reads them once, and they change while
        # the studio runs
        plan = Workspace(ws.root).plan()
    except MlformError as err:
        plan_error = str(err)
    # a resource the plan would change has drifted from its files: the plan says why
    pending = {
        change.address: f"{change.symbol} {texts(change.reasons)}"
        for change in (plan.changes if plan is not None else ())
    }
    resources: list[dict[str, Any]] = []
    applies: list[dict[str, Any]] = []
    synced = None
    if ws.state_exists():
        with ws.store("studio") as store:
            for address, kind, status, outputs, applied_at, error in store.query(
                "select address, kind, status, outputs, applied_at, error from resources "
                "order by kind, address"
            ):
                shown = json.loads(outputs or "{}")
                resources.append(
                    {
                        "address": address,
                        "kind": kind,
                        "status": status,
                        "version": shown.get("version", ""),
                        "applied_at": _when(applied_at),
                        "error": error or "",
                        "drift": pending.get(address, ""),
                        "breached": latest_breaches(store, address) if kind == "monitor" else [],
                    }
                )
            for apply_id, started, ended, status, host, summary in store.query(
                "select id, started_at, ended_at, status, host, summary from applies "
                f"order by started_at desc limit {_RECENT_APPLIES}"
            ):
                applies.append(
                    {
                        "id": apply_id,
                        "started": _when(started),
                        "seconds": _seconds(started, ended),
                        "status": status,
                        "host": host,
                        "summary": summary or "",
                    }
                )
            synced = syncs.last(store, applied=True)
    changes = [
        {
            "symbol": change.symbol,
            "action": change.action.value,
            "address": change.address,
            "reasons": texts(change.reasons),
            "steps": [
                reason.text for reason in (change.after.explain if change.after is not None else ())
            ],
        }
        for change in (plan.changes if plan is not None else ())
    ]
    return page(
        request,
        "overview.html",
        title="Overview",
        resources=resources,
        applies=applies,
        changes=changes,
        plan_summary=plan.summary() if plan is not None else "",
        plan_notes=list(plan.notes) if plan is not None else [],
        unchanged=plan.unchanged if plan is not None else 0,
        plan_error=plan_error,
        synced=synced,
        checkout=gitinfo.describe(ws.root, ignore=[ws.home]),
    )


def runs_list(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    args = request.query_params
    query = tables.Query(
        experiment=args.get("experiment", ""),
        status=args.get("status", ""),
        tag=args.get("tag", ""),
        search=args.get("search", ""),
        sort=args.get("sort", "created"),
        descending=args.get("order", "desc") != "asc",
        page=_number(args.get("page"), 1),
        size=_size(args.get("size")),
        metrics=tuple(args.getlist("metric")),
        params=tuple(args.getlist("param")),
    )
    error = ""
    found = tables.Table([], 0, (), ())
    if ws.state_exists():
        with ws.store("studio") as store:
            try:
                found = tables.table(store, query)
            except SearchError as err:
                error = str(err)  # the page says why, with the table's choices and no runs
                found = replace(tables.table(store, replace(query, search="")), runs=[], total=0)
    return page(
        request,
        "runs.html",
        title="Runs",
        table=found,
        query=query,
        error=error,
        pages=found.pages(query.size),
        sizes=tables.PAGE_SIZES,
        when=_epoch,
        link=_linker(request),
    )


def run_page(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    ref = request.path_params["run_id"]
    with ws.store("studio") as store:
        try:
            run = runs.find(store, ref)
        except NotFound as err:
            return page(request, "missing.html", title="No such run", message=str(err), status=404)
        kids = runs.children(store, run.id)
        keys = [
            (r[0], int(r[1]))
            for r in store.query(
                "select key, count(*) from metrics where run_id = ? group by key order by key",
                [run.id],
            )
        ]
        artifacts = runs.artifacts(store, run.id)
    run_dir = Path(run.run_dir)
    return page(
        request,
        "run.html",
        code=_tree(_snapshot_files(run_dir)),
        title=f"Run {run.id}",
        run=run,
        children=kids,
        metric_keys=keys,
        artifacts=artifacts,
        outputs=_files(run_dir / "outputs"),
        when=_epoch,
        finished=run.status in FINISHED,
    )


def code_file(request: Request) -> Response:
    """One file of a run's code snapshot, shown as text (or said to be binary)."""
    ws: Workspace = request.app.state.workspace
    with ws.store("studio") as store:
        try:
            run = runs.find(store, request.path_params["run_id"])
        except NotFound as err:
            return page(request, "missing.html", title="No such run", message=str(err), status=404)
    path = request.path_params["path"]
    run_dir = Path(run.run_dir)
    listed = {entry["path"]: entry["size"] for entry in _snapshot_files(run_dir)}
    folder = (run_dir / "snapshot").resolve()
    target = (folder / path).resolve()
    if path not in listed or not target.is_relative_to(folder) or not target.is_file():
        message = f"{path} is not a file of run {run.id}'s code snapshot"
        return page(request, "missing.html", title="No such file", message=message, status=404)
    data = target.read_bytes()[:_SHOWN_BYTES]
    try:
        text: str | None = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return page(
        request,
        "code.html",
        title=f"{path} · {run.id}",
        run=run,
        path=path,
        size=listed[path],
        text=text,
        cut=listed[path] > _SHOWN_BYTES,
    )


def _snapshot_files(run_dir: Path) -> list[dict[str, Any]]:
    """The files of a run's code snapshot, as its manifest lists them."""
    manifest = run_dir / "logs" / "snapshot.json"
    try:
        files: list[dict[str, Any]] = json.loads(manifest.read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError):
        return []
    return files


def _tree(files: list[dict[str, Any]]) -> dict[str, Any]:
    """Paths as nested folders: a folder is a dict, a file its size."""
    root: dict[str, Any] = {}
    for entry in files:
        *folders, name = str(entry["path"]).split("/")
        here = root
        for folder in folders:
            here = here.setdefault(folder + "/", {})
        here[name] = int(entry["size"])
    return root


def _files(folder: Path) -> list[tuple[str, int]]:
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.rglob("*")):
        with contextlib.suppress(OSError):
            if path.is_file() and not path.is_symlink():
                found.append((path.relative_to(folder).as_posix(), path.stat().st_size))
    return found[:500]


def _linker(request: Request) -> Callable[[Mapping[str, object]], str]:
    """`link({"page": 2})`: this page's address with those parameters changed."""

    def link(changes: Mapping[str, object]) -> str:
        url = request.url.include_query_params(**{k: str(v) for k, v in changes.items()})
        return f"{url.path}?{url.query}"

    return link


def _size(text: str | None) -> int:
    size = _number(text, 50)
    return size if size in tables.PAGE_SIZES else 50


def _number(text: str | None, default: int) -> int:
    try:
        return max(1, int(text)) if text else default
    except ValueError:
        return default


def _when(value: datetime | None) -> str:
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _epoch(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _seconds(started: datetime | None, ended: datetime | None) -> str:
    if started is None or ended is None:
        return ""
    return f"{(ended - started).total_seconds():.1f} s"


def not_found(request: Request, exc: Exception) -> HTMLResponse:
    return page(request, "missing.html", title="Not found", message="No such page.", status=404)
