"""The schedule kind: declared, checked, and applied by recording it (it runs nothing).

A schedule's digest is its declaration alone: a change to the job it runs changes the
job, not the schedule. What an apply records is the job's address and the instant the
schedule counts from (`since`): Azure ML's default start, "the job creation time". That
instant is kept while the trigger stays the same, and is the apply's when the trigger
changes, as a new schedule's would be.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mlform.context import Context, Outcome
from mlform.kind import Kind
from mlform.kinds.base import base_components, declared
from mlform.kinds.schedule import due
from mlform.kinds.schedule.declaring import ScheduleDeclaring
from mlform.kinds.schedule.spec import ScheduleSpec, describe
from mlform.plan.model import Change, Desired, Payload


@dataclass(frozen=True, slots=True)
class SchedulePayload(Payload):
    spec: ScheduleSpec


class ScheduleKind(ScheduleDeclaring, Kind[ScheduleSpec, SchedulePayload]):
    payload = SchedulePayload

    def desire(self, spec: ScheduleSpec, ctx: Context, upstream: Mapping[str, Desired]) -> Desired:
        components = base_components(spec, upstream, ())  # its declaration alone
        return declared(
            spec,
            ctx,
            components,
            summary=f"{describe(spec.trigger)} → {spec.target}",
            payload=SchedulePayload(spec),
        )

    def apply(self, change: Change, payload: SchedulePayload, ctx: Context) -> Outcome:
        spec = payload.spec
        since = due.counted_from(change.before, spec.body["trigger"])
        return Outcome(
            {"job": spec.target, "since": since, "trigger": describe(spec.trigger)},
            message=f"runs {spec.target} {describe(spec.trigger)}",
        )

    def destroy(self, change: Change, ctx: Context) -> Outcome:
        return Outcome({})


KIND = ScheduleKind()
