"""The models pages: every registered version, and one version's lineage — the commit,
snapshot, data versions and environment its run was made from, the run, and the images
and deployments made from it — with its files to download."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from mlform.errors import NotFound
from mlform.registry import models, operations
from mlform.studio.render import page
from mlform.workspace import Workspace


def models_list(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    found: list[models.ModelVersion] = []
    if ws.state_exists():
        with ws.store("studio") as store:
            found = models.versions(store.read, archived=True)
    return page(request, "models.html", title="Models", models=found[::-1])


def model_page(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    ref = f"{request.path_params['name']}:{request.path_params['version']}"
    with ws.store("studio") as store:
        try:
            model = models.resolve(store.read, ref)
        except NotFound as err:
            return page(
                request, "missing.html", title="No such model", message=str(err), status=404
            )
        lineage = models.lineage(store.read, model)
        images = [
            {"ref": f"{name}:{version}", "reference": reference, "environment": environment}
            for name, version, reference, environment in store.query(
                "select name, version, reference, environment from images where model = ? "
                "order by created_at",
                [model.ref],
            )
        ]
        deployments = [
            {"endpoint": endpoint, "name": name, "image": image, "status": status}
            for endpoint, name, image, status in store.query(
                "select endpoint, name, image, status from deployments where model = ? "
                "and status != 'deleted' order by endpoint, name",
                [model.ref],
            )
        ]
    inputs: list[dict[str, Any]] = []
    if lineage is not None:
        for name, value in sorted(lineage.inputs.items()):
            text = value if isinstance(value, str) else json.dumps(value)
            asset, _, version = text.partition(":")
            inputs.append({"name": name, "value": text, "asset": asset if version else ""})
    return page(
        request,
        "model.html",
        title=f"Model {model.ref}",
        model=model,
        lineage=lineage,
        inputs=inputs,
        images=images,
        deployments=deployments,
    )


def model_file(request: Request) -> Response:
    ws: Workspace = request.app.state.workspace
    ref = f"{request.path_params['name']}:{request.path_params['version']}"
    path = request.path_params["path"]
    try:
        _, size, handle = operations.open_file(ws, ref, path)
    except NotFound as err:
        return page(request, "missing.html", title="Not found", message=str(err), status=404)

    def chunks() -> Any:
        with handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    name = path.rsplit("/", 1)[-1]
    return StreamingResponse(
        chunks(),
        media_type="application/octet-stream",
        headers={
            "content-length": str(size),
            "content-disposition": f'attachment; filename="{name}"',
        },
    )
