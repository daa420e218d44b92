"""Resource kinds, one module each, registered by name in `KINDS`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mlform.config.workspace import Config
from mlform.graph import topological
from mlform.plan.model import Change, Desired
from mlform.resources.base import Context, Kind, Outcome
from mlform.resources.data import DataKind
from mlform.resources.datastore import DatastoreKind
from mlform.resources.endpoint import EndpointKind
from mlform.resources.environment import EnvironmentKind
from mlform.resources.image import ImageKind
from mlform.resources.model import ModelKind
from mlform.resources.pipeline import PipelineKind
from mlform.resources.runconfig import RunconfigKind
from mlform.state.records import Recorded

KINDS: dict[str, Kind] = {
    "datastore": DatastoreKind(),
    "data": DataKind(),
    "environment": EnvironmentKind(),
    "runconfig": RunconfigKind(),
    "model": ModelKind(),
    "image": ImageKind(),
    "endpoint": EndpointKind(),
    "pipeline": PipelineKind(),
}


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
