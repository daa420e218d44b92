"""The compute kind: declared, checked and applied (nothing to provision for local)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlform.config.specs import Source
from mlform.config.unsupported import TODO
from mlform.config.yamlfile import Document
from mlform.context import Context, Outcome
from mlform.errors import Problem
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared
from mlform.kinds.compute.spec import BUILT_IN, TYPES, ComputeSpec, parse
from mlform.plan.model import Change, Desired, Payload


@dataclass(frozen=True, slots=True)
class ComputePayload(Payload):
    spec: ComputeSpec


class ComputeKind(Kind[ComputeSpec, ComputePayload]):
    name = "compute"
    payload = ComputePayload
    built_in = BUILT_IN

    def how_to_declare(self, name: str, folder: str) -> str:
        return f"declare it in {folder}/{name}.yml with type: local, or use compute: local"

    def parse(self, body: Mapping[str, Any], source: Source) -> ComputeSpec:
        return parse(body, source)

    def misfiled(self, doc: Document) -> Problem | None:
        written = doc.data.get("type") if isinstance(doc.data, dict) else None
        if isinstance(written, str) and written not in TYPES:
            return doc.problem(
                ["type"],
                f"{TODO}: compute type '{written}' (in {doc.display}); mlform runs jobs on "
                "this machine: use type: local",
            )
        return None

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
