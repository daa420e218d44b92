"""An endpoint with all its deployments: those in its own file, and those in files of
their own that name it (as Azure ML keeps them); then its deployment names and traffic
checked once it has all of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from mlform.config.specs import Spec
from mlform.errors import Problem
from mlform.kinds.endpoint.spec import DeploymentSpec, EndpointSpec


def assemble(
    spec: EndpointSpec, parts: Sequence[Spec], unbuilt: set[str]
) -> tuple[EndpointSpec, list[Problem]]:
    """`spec` with the deployments in `parts`; `unbuilt`: names of deployments whose own
    files are too broken to build."""
    deployments = tuple(p for p in parts if isinstance(p, DeploymentSpec))
    whole = replace(spec, deployments=(*spec.deployments, *deployments))
    return whole, _endpoint_problems(whole, unbuilt | _written_deployments(whole))


def _written_deployments(spec: EndpointSpec) -> set[str]:
    """Names of the deployments the endpoint's file lists, those the schema rejected too."""
    data = spec.source.doc.data
    for step in spec.source.where:
        data = data.get(step) if isinstance(data, dict) else None
    listed = data.get("deployments") if isinstance(data, dict) else None
    items = listed if isinstance(listed, list) else []
    return {str(item["name"]) for item in items if isinstance(item, dict) and "name" in item}


def _endpoint_problems(spec: EndpointSpec, unbuilt: set[str]) -> list[Problem]:
    """Names and traffic; `unbuilt` are deployments whose own errors are reported, so
    traffic naming one of them is not a second error."""
    problems = []
    seen: dict[str, DeploymentSpec] = {}
    for dep in spec.deployments:
        if dep.name in seen:
            problems.append(
                dep.source.problem(
                    ["name"],
                    f"endpoint {spec.name} already has a deployment '{dep.name}' "
                    f"({seen[dep.name].source.at(['name'])}); rename one of them",
                )
            )
        seen[dep.name] = dep
    for name in spec.traffic:
        if name not in seen and name not in unbuilt:
            known = ", ".join(sorted(seen)) or "none"
            problems.append(
                spec.source.problem(
                    ["traffic", name],
                    f"traffic names deployment '{name}', which endpoint {spec.name} does not "
                    f"have (deployments: {known})",
                    key=True,
                )
            )
    total = sum(spec.traffic.values())
    if spec.traffic and total not in (0, 100):
        problems.append(
            spec.source.problem(
                ["traffic"],
                f"traffic adds up to {total}; the percentages must add up to 100 (or all be 0)",
            )
        )
    return problems
