"""Datastores: where data versions and artifacts are kept (a folder, or an fsspec URL)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlform.config.refs import LocalPath
from mlform.config.specs import DatastoreSpec
from mlform.context import Context, Outcome
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared, secret_components
from mlform.kinds.datastore.declaring import DatastoreDeclaring
from mlform.plan.model import Change, Desired, Payload
from mlform.shownpath import shown
from mlform.state.records import Recorded


@dataclass(frozen=True, slots=True)
class DatastorePayload(Payload):
    spec: DatastoreSpec


class DatastoreKind(DatastoreDeclaring, Kind[DatastoreSpec, DatastorePayload]):
    payload = DatastorePayload

    def desire(self, spec: DatastoreSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        location = spec.location
        # Relative to the workspace, so two clones of it plan alike.
        root = ctx.config.root
        where = shown(location.path, root) if isinstance(location, LocalPath) else location.url
        body = dict(spec.body)
        body.setdefault("path", where)
        components = base_components(spec, upstream, ctx.config.deps.get(spec.address, ()))
        components.update(secret_components(ctx, spec))
        kind = "local folder" if isinstance(location, LocalPath) else "fsspec URL"
        return declared(
            spec,
            ctx,
            components,
            body=body,
            replace_keys=frozenset({"path", "type", "account_name", "container_name"}),
            summary=f"{kind} {where}",
            payload=DatastorePayload(spec),
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        folder = recorded.outputs.get("folder")
        # Recorded relative to the workspace (older states: absolute), so a moved or
        # cloned workspace finds its folder where it now is.
        if folder and not (ctx.config.root / folder).is_dir():
            return f"folder {folder} is missing"
        return None

    def apply(self, change: Change, payload: DatastorePayload, ctx: Context) -> Outcome:
        spec = payload.spec
        storage = ctx.storage(spec.name)
        storage.ensure()
        outputs: dict[str, str] = {"url": storage.url}
        if isinstance(spec.location, LocalPath):
            outputs["folder"] = shown(spec.location.path, ctx.config.root)
        return Outcome(outputs)

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        where = change.before.outputs.get("url", "") if change.before else ""
        return Outcome({}, message=f"unregistered; the files at {where} are left in place")


KIND = DatastoreKind()
