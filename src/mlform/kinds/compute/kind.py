"""The compute kind: declared, checked and applied (nothing to provision for local)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlform.context import Context, Outcome
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared
from mlform.kinds.compute.declaring import ComputeDeclaring
from mlform.kinds.compute.spec import ComputeSpec
from mlform.plan.model import Change, Desired, Payload


@dataclass(frozen=True, slots=True)
class ComputePayload(Payload):
    spec: ComputeSpec


class ComputeKind(ComputeDeclaring, Kind[ComputeSpec, ComputePayload]):
    payload = ComputePayload

    def desire(self, spec: ComputeSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        components = base_components(spec, upstream, ctx.config.deps.get(spec.address, ()))
        return declared(
            spec,
            ctx,
            components,
            replace_keys=frozenset({"type"}),
            summary=f"type {spec.type}",
            payload=ComputePayload(spec),
        )

    def apply(self, change: Change, payload: ComputePayload, ctx: Context) -> Outcome:
        return Outcome({"type": payload.spec.type})

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        return Outcome({})


KIND = ComputeKind()
