"""How monitor files are read: parsed, checked, and what they watch resolved
(`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from mlform.config.kinds import Declaring, Resolver
from mlform.config.specs import Source
from mlform.errors import Problem
from mlform.kinds.endpoint.spec import EndpointSpec
from mlform.kinds.monitor.spec import MonitorSpec, parse
from mlform.kinds.schedule.spec import ScheduleSpec


class MonitorDeclaring(Declaring[MonitorSpec]):
    name = "monitor"

    def parse(self, body: Mapping[str, Any], source: Source) -> MonitorSpec:
        return parse(body, source)

    def check(self, spec: MonitorSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        problems = [] if "create_monitor" in skip else spec.problems()
        if "trigger" not in skip:
            # the trigger is a schedule's: checked as one
            as_schedule = ScheduleSpec(
                name=spec.name, source=spec.source, body={**spec.body, "create_job": ""}
            )
            problems.extend(as_schedule.problems())
        return problems

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


DECLARING = MonitorDeclaring()
