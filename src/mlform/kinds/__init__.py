"""Resource kinds, one module each, registered by name in `KINDS`."""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace

from mlform.config.workspace import Config
from mlform.context import Context, Outcome
from mlform.graph import topological
from mlform.kinds.base import Kind
from mlform.plan.model import Change, Desired
from mlform.secrets.managed import ManagedSecret
from mlform.state.records import Recorded

# kind → (module, class). A kind's module is imported the first time a resource of that
# kind is planned: a workspace without endpoints never loads what serving needs, and
# every `mlform` command starts faster for it.
_KIND_CLASSES = {
    "datastore": ("mlform.kinds.datastore.kind", "DatastoreKind"),
    "compute": ("mlform.kinds.compute.kind", "ComputeKind"),
    "data": ("mlform.kinds.data.kind", "DataKind"),
    "environment": ("mlform.kinds.environment.kind", "EnvironmentKind"),
    "runconfig": ("mlform.kinds.runconfig.kind", "RunconfigKind"),
    "model": ("mlform.kinds.model.kind", "ModelKind"),
    "image": ("mlform.kinds.image.kind", "ImageKind"),
    "endpoint": ("mlform.kinds.endpoint.kind", "EndpointKind"),
    "pipeline": ("mlform.kinds.pipeline.kind", "PipelineKind"),
}


class _Kinds(Mapping[str, Kind]):
    """The registry of kinds, each made on first use."""

    def __init__(self, classes: Mapping[str, tuple[str, str]]) -> None:
        self._classes = dict(classes)
        self._made: dict[str, Kind] = {}

    def __getitem__(self, name: str) -> Kind:
        made = self._made.get(name)
        if made is None:
            module, cls = self._classes[name]
            made = self._made[name] = getattr(importlib.import_module(module), cls)()
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __contains__(self, name: object) -> bool:
        return name in self._classes


KINDS: Mapping[str, Kind] = _Kinds(_KIND_CLASSES)


def managed_secrets() -> dict[str, ManagedSecret]:
    """The secrets the kinds' resources have that mlform makes and keeps itself."""
    # start-up: the endpoint kind's modules only for `mlform secrets`
    from mlform.kinds.endpoint.managed import MANAGED

    return dict(MANAGED)


def desire_all(config: Config, ctx: Context) -> dict[str, Desired]:
    """Every declared resource with its digest, upstream before downstream."""
    desired: dict[str, Desired] = {}
    for address in topological(config.specs, config.deps):
        spec = config.specs[address]
        desired[address] = KINDS[spec.kind].desire(spec, ctx, desired)
    return desired


def refusals(changes: Sequence[Change], ctx: Context) -> list[str]:
    """Why changes the planner allows cannot be made: a kind that knows of users the
    state records elsewhere (a model serving a deployment) says so with `refuse`."""
    found = []
    for change in changes:
        refuse = getattr(KINDS.get(change.kind), "refuse", None)
        why = refuse(change, ctx) if refuse is not None else None
        if why:
            found.append(why)
    return found


def refresh_all(recorded: dict[str, Recorded], ctx: Context) -> dict[str, Recorded]:
    """The records with what each kind finds changed in the real world (drift)."""
    out = {}
    for address, record in recorded.items():
        drift = None
        if record.status == "applied" and record.kind in KINDS:
            drift = KINDS[record.kind].refresh(record, ctx)
        out[address] = replace(record, drift=drift) if drift else record
    return out


__all__ = ["KINDS", "Context", "Kind", "Outcome", "desire_all", "refresh_all", "refusals"]
