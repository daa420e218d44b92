"""How monitor files are read: parsed, checked, and what they watch resolved
(`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlform.config.kinds import Declaring, Resolver
from mlform.config.specs import DataInput, Source, Spec
from mlform.errors import Problem
from mlform.kinds.endpoint.spec import EndpointSpec
from mlform.kinds.monitor.spec import DATA, MONITOR_VALUE, MONITOR_VALUES, MonitorSpec, parse
from mlform.kinds.pipeline.spec import PipelineSpec
from mlform.kinds.runconfig.spec import RunconfigSpec
from mlform.kinds.schedule.declaring import job_address
from mlform.kinds.schedule.spec import ScheduleSpec
from mlform.secrets import references
from mlform.secrets.references import ANY


class MonitorDeclaring(Declaring[MonitorSpec]):
    name = "monitor"

    def parse(self, body: Mapping[str, Any], source: Source) -> MonitorSpec:
        return parse(body, source)

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        return (("create_monitor", "alert_notification", "webhooks", ANY, "secret"),)

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        if isinstance(spec, MonitorSpec):
            return tuple(references.names_in([dict(h) for h in spec.webhooks]))
        return ()

    def check(self, spec: MonitorSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        problems = [] if "create_monitor" in skip else spec.problems()
        if "trigger" not in skip:
            # the trigger is a schedule's: checked as one
            as_schedule = ScheduleSpec(
                name=spec.name, source=spec.source, body={**spec.body, "create_job": ""}
            )
            problems.extend(as_schedule.problems())
        return problems

    def resolve(self, spec: MonitorSpec, refs: Resolver) -> MonitorSpec:
        """The spec with the address of the job a breach runs (not a dependency: a
        monitor is not applied again each time that job runs)."""
        if spec.on_breach is None:
            return spec
        where = ["create_monitor", "on_breach", "invoke"]
        job = job_address(spec.source, spec.on_breach, where, refs)
        if job is None:
            return spec
        declared = refs.spec(job)
        if isinstance(declared, RunconfigSpec | PipelineSpec):
            for problem in _with_problems(spec, job, declared.inputs):
                refs.problem(problem)
        return replace(spec, on_breach_job=job)

    def references(self, spec: MonitorSpec, refs: Resolver) -> list[str]:
        """The endpoint it watches (a monitor follows its deployments), and the data its
        signals compare against."""
        where = ["create_monitor", "monitoring_target", "endpoint_deployment_id"]
        found: list[str] = []
        if spec.endpoint:
            endpoint = refs.named(
                "endpoint", spec.endpoint, spec.source, where, "a monitor's endpoint_deployment_id"
            )
            declared = refs.spec(endpoint) if endpoint is not None else None
            if isinstance(declared, EndpointSpec):
                found.append(declared.address)
                names = [d.name for d in declared.deployments]
                if spec.deployment not in names:
                    refs.problem(
                        spec.source.problem(
                            where,
                            f"endpoint {spec.endpoint} has no deployment named "
                            f"{spec.deployment} (its deployments: {', '.join(names) or 'none'})",
                        )
                    )
        for signal in spec.signals:
            if signal.reference is not None:
                path = [*signal.where, "reference_data", "input_data", "path"]
                data = refs.asset("data", signal.reference, spec.source, path)
                found.extend([data] if data else [])
        return found


def _with_problems(
    spec: MonitorSpec, job: str, inputs: Mapping[str, DataInput | str]
) -> list[Problem]:
    """What is wrong in `on_breach.with:`: an input the job does not declare, a
    `${{monitor.…}}` that is not one, or a value of the wrong sort for its input."""
    problems: list[Problem] = []
    for name, value in spec.on_breach_with.items():
        where = ["create_monitor", "on_breach", "with", name]
        declared = inputs.get(name)
        found = MONITOR_VALUE.match(value)
        if declared is None:
            known = ", ".join(sorted(inputs)) or "none"
            what = f"{job} has no input {name} (its inputs: {known}); declare it there"
        elif found is not None and found[1] not in MONITOR_VALUES:
            what = f"unknown ${{{{monitor.{found[1]}}}}}; a monitor gives " + ", ".join(
                f"${{{{monitor.{k}}}}} ({v})" for k, v in MONITOR_VALUES.items()
            )
        elif found is None and "${{" in value:
            what = f"'{value}' is not a value a monitor gives; write ${{{{monitor.NAME}}}}"
        elif isinstance(declared, DataInput) != (found is not None and found[1] == DATA):
            what = (
                f"input {name} of {job} is data: give it ${{{{monitor.{DATA}}}}}"
                if isinstance(declared, DataInput)
                else f"input {name} of {job} is a value, not data: give it a value, or "
                "${{monitor.window_start}}, ${{monitor.window_end}} or ${{monitor.run_id}}"
            )
        else:
            continue
        problems.append(spec.source.problem(where, what, key=declared is None))
    return problems


DECLARING = MonitorDeclaring()
