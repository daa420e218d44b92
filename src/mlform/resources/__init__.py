"""Resource kinds, one module each, registered by name in `KINDS`."""

from __future__ import annotations

from dataclasses import replace

from mlform.config.workspace import Config
from mlform.graph import topological
from mlform.plan.model import Desired
from mlform.resources.base import Context, Kind, Outcome
from mlform.resources.data import DataKind
from mlform.resources.datastore import DatastoreKind
from mlform.resources.environment import EnvironmentKind
from mlform.resources.runconfig import RunconfigKind
from mlform.state.records import Recorded

KINDS: dict[str, Kind] = {
    "datastore": DatastoreKind(),
    "data": DataKind(),
    "environment": EnvironmentKind(),
    "runconfig": RunconfigKind(),
}


def desire_all(config: Config, ctx: Context) -> dict[str, Desired]:
    """Every declared resource with its digest, upstream before downstream."""
    desired: dict[str, Desired] = {}
    for address in topological(config.specs, config.deps):
        spec = config.specs[address]
        desired[address] = KINDS[spec.kind].desire(spec, ctx, desired)
    return desired


def refresh_all(recorded: dict[str, Recorded], ctx: Context) -> dict[str, Recorded]:
    """The records with what each kind finds changed in the real world (drift)."""
    out = {}
    for address, record in recorded.items():
        drift = None
        if record.status == "applied" and record.kind in KINDS:
            drift = KINDS[record.kind].refresh(record, ctx)
        out[address] = replace(record, drift=drift) if drift else record
    return out


__all__ = ["KINDS", "Context", "Kind", "Outcome", "desire_all", "refresh_all"]
