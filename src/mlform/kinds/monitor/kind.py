"""The monitor kind: declared, checked, and applied by recording it; it computes nothing
as it is applied. Like a schedule, it records the instant its trigger counts from
(`since`), kept while the trigger stays the same."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlform.context import Context, Outcome
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared
from mlform.kinds.monitor.declaring import MonitorDeclaring
from mlform.kinds.monitor.spec import MonitorSpec
from mlform.kinds.schedule import due
from mlform.kinds.schedule.spec import describe, trigger_of
from mlform.plan.model import Change, Desired, Payload


@dataclass(frozen=True, slots=True)
class MonitorPayload(Payload):
    spec: MonitorSpec


class MonitorKind(MonitorDeclaring, Kind[MonitorSpec, MonitorPayload]):
    payload = MonitorPayload

    def desire(self, spec: MonitorSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        components = base_components(spec, upstream, ())  # its declaration alone
        signals = ", ".join(s.name for s in spec.signals)
        return declared(
            spec,
            ctx,
            components,
            summary=f"{signals} of {spec.target}, {describe(trigger_of(spec.body['trigger']))}",
            payload=MonitorPayload(spec),
        )

    def apply(self, change: Change, payload: MonitorPayload, ctx: Context) -> Outcome:
        spec = payload.spec
        since = due.counted_from(change.before, spec.body["trigger"])
        trigger = describe(trigger_of(spec.body["trigger"]))
        return Outcome(
            {"target": spec.target, "since": since, "trigger": trigger},
            message=f"watches {spec.target} {trigger}",
        )

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        return Outcome({})


KIND = MonitorKind()
