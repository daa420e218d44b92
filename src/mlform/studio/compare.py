"""Runs side by side: what differs in their params, their final metrics, their metric
curves overlaid, and params against a chosen metric in parallel coordinates."""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import Response

from mlform import runs
from mlform.errors import NotFound
from mlform.studio.render import page
from mlform.workspace import Workspace

MOST = 10


def compare(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    refs = list(dict.fromkeys(request.query_params.getlist("run")))
    if not 2 <= len(refs) <= MOST:
        return page(
            request,
            "missing.html",
            title="Compare runs",
            message=f"Pick 2 to {MOST} runs to compare on the runs page ({len(refs)} given).",
            status=400 if refs else 200,
        )
    with ws.store("studio") as store:
        try:
            chosen = [runs.find(store, ref) for ref in refs]
        except NotFound as err:
            return page(request, "missing.html", title="No such run", message=str(err), status=404)
    param_keys = sorted({k for r in chosen for k in r.params})
    metric_keys = sorted({k for r in chosen for k in r.metrics})
    params = [
        {
            "key": key,
            "values": [r.params.get(key, "") for r in chosen],
            "differs": len({r.params.get(key) for r in chosen}) > 1,
        }
        for key in param_keys
    ]
    numeric = [key for key in param_keys if all(_number(r.params.get(key)) for r in chosen)]
    coordinates = {
        "axes": numeric,
        "metrics": metric_keys,
        "runs": [
            {
                "id": r.id,
                "name": r.display_name or r.id,
                "params": {k: float(r.params[k]) for k in numeric},
                "metrics": dict(r.metrics),
            }
            for r in chosen
        ],
    }
    return page(
        request,
        "compare.html",
        title=f"Compare {len(chosen)} runs",
        runs=chosen,
        params=params,
        metric_keys=metric_keys,
        coordinates=json.dumps(coordinates),
    )


def _number(text: str | None) -> bool:
    if text is None:
        return False
    try:
        float(text)
    except ValueError:
        return False
    return True
