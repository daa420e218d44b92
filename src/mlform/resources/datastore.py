"""Datastores: where data versions and artifacts are kept (a folder, or an fsspec URL)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlform.config.refs import LocalPath
from mlform.config.specs import DatastoreSpec, Spec
from mlform.plan.model import Change, Desired
from mlform.resources.base import Context, Outcome, base_components, declared
from mlform.state.records import Recorded


class DatastoreKind:
    def desire(self, spec: Spec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        assert isinstance(spec, DatastoreSpec)
        location = spec.location
        where = str(location.path) if isinstance(location, LocalPath) else location.url
        body = dict(spec.body)
        body.setdefault("path", where)
        components = base_components(spec, upstream, ctx.config.deps.get(spec.address, ()))
        kind = "local folder" if isinstance(location, LocalPath) else "fsspec URL"
        return declared(
            spec,
            ctx,
            components,
            body=body,
            replace_keys=frozenset({"path", "type", "account_name", "container_name"}),
            summary=f"{kind} {where}",
            payload=spec,
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        folder = recorded.outputs.get("folder")
        if folder and not Path(folder).is_dir():
            return f"folder {folder} is missing"
        return None

    def apply(self, change: Change, ctx: Context) -> Outcome:
        assert change.after is not None
        spec = change.after.payload
        assert isinstance(spec, DatastoreSpec)
        storage = ctx.storage(spec.name)
        storage.ensure()
        outputs: dict[str, str] = {"url": storage.url}
        if isinstance(spec.location, LocalPath):
            outputs["folder"] = str(spec.location.path)
        return Outcome(outputs)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        where = change.before.outputs.get("url", "") if change.before else ""
        return Outcome({}, message=f"unregistered; the files at {where} are left in place")
