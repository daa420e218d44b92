"""How compute files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from mlform.config.kinds import Declaring, Resolver
from mlform.config.specs import Source
from mlform.config.unsupported import TODO
from mlform.config.yamlfile import Document, JsonPath
from mlform.errors import Problem
from mlform.kinds.compute.spec import BUILT_IN, BUILT_THERE, TYPES, ComputeSpec, parse


class ComputeDeclaring(Declaring[ComputeSpec]):
    name = "compute"
    built_in = BUILT_IN

    def how_to_declare(self, name: str, folder: str) -> str:
        return f"declare it in {folder}/{name}.yml with type: local, or use compute: local"

    def parse(self, body: Mapping[str, Any], source: Source) -> ComputeSpec:
        return parse(body, source)

    def check(self, spec: ComputeSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        if spec.type == "virtualmachine" and spec.host is None:
            return [
                spec.source.problem(
                    ["type"],
                    "a virtualmachine compute needs the machine's address: write host: NAME "
                    "(Azure ML finds it from resource_id)",
                )
            ]
        if spec.type == "ray" and spec.cluster is None:
            return [
                spec.source.problem(
                    ["type"],
                    "a ray compute needs its cluster's job server: write address: "
                    "http://HEAD:8265 (the dashboard's address, as `ray job submit` takes it)",
                )
            ]
        return []

    def misfiled(self, doc: Document) -> Problem | None:
        written = doc.data.get("type") if isinstance(doc.data, dict) else None
        if isinstance(written, str) and written not in TYPES:
            return doc.problem(
                ["type"],
                f"{TODO}: compute type '{written}' (in {doc.display}); mlform runs jobs on "
                "this machine, a container, another machine over SSH or a Ray cluster: use type: "
                "local, docker, virtualmachine or ray",
            )
        return None


def environment_problem(
    refs: Resolver, compute: str | None, has_environment: bool, source: Source, where: JsonPath
) -> None:
    """A job on a docker compute without an environment: it has no image to run in."""
    declared = refs.spec(compute) if compute else None
    if has_environment or not isinstance(declared, ComputeSpec):
        return
    if declared.type not in BUILT_THERE:
        return
    refs.problem(
        source.problem(
            where,
            f"compute {declared.name} is of type {declared.type}: it runs a job in the "
            "job's environment, built there; name an environment (environment: "
            "azureml:NAME@latest)",
        )
    )


def instances_problem(refs: Resolver, compute: str | None, instances: int, source: Source) -> None:
    """A distributed job (`resources.instance_count` > 1) on a compute that runs one
    process: only a Ray cluster runs a job's instances."""
    declared = refs.spec(compute) if compute else None
    if instances <= 1 or (isinstance(declared, ComputeSpec) and declared.type == "ray"):
        return
    shown = (
        f"compute {declared.name} is of type {declared.type}"
        if isinstance(declared, ComputeSpec)
        else "the job runs on this machine"
    )
    refs.problem(
        source.problem(
            ["resources", "instance_count"],
            f"{TODO}: {instances} instances on one machine ({shown}); a ray compute runs a "
            "job's instances: name one in compute:, or set instance_count: 1",
        )
    )


DECLARING = ComputeDeclaring()
