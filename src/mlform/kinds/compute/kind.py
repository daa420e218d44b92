"""Compute targets declared in compute/*.yml: a name that jobs run on.

A compute of type local is this machine, so creating one provisions nothing; it is a
resource all the same, so the plan shows it (`+ compute/cpu-cluster`), jobs are ordered
after it, and removing a file that jobs still name is refused by validation.
"""

from __future__ import annotations

from collections.abc import Mapping

from mlform.config.specs import ComputeSpec, Spec
from mlform.context import Context, Outcome
from mlform.kinds.base import base_components, declared
from mlform.plan.model import Change, Desired
from mlform.state.records import Recorded


class ComputeKind:
    def desire(self, spec: Spec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        assert isinstance(spec, ComputeSpec)
        components = base_components(spec, upstream, ctx.config.deps.get(spec.address, ()))
        return declared(
            spec,
            ctx,
            components,
            replace_keys=frozenset({"type"}),
            summary=f"type {spec.type}",
            payload=spec,
        )

    def refresh(self, recorded: Recorded, ctx: Context) -> str | None:
        return None

    def apply(self, change: Change, ctx: Context) -> Outcome:
        assert change.after is not None
        return Outcome({"type": str(change.after.spec.get("type", "local"))})

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        return Outcome({})
