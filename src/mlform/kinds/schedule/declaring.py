"""How schedule files are read: parsed, checked, and the job they run resolved
(`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from mlform.config.kinds import Declaring, Resolver
from mlform.config.specs import Source
from mlform.config.unsupported import TODO
from mlform.config.yamlfile import Document, JsonPath
from mlform.errors import Problem
from mlform.kinds.schedule.spec import ScheduleSpec, job_path, parse

JOBS = ("runconfig", "pipeline")  # what a schedule may run


class ScheduleDeclaring(Declaring[ScheduleSpec]):
    name = "schedule"

    def parse(self, body: Mapping[str, Any], source: Source) -> ScheduleSpec:
        return parse(body, source)

    def misfiled(self, doc: Document) -> Problem | None:
        data = doc.data if isinstance(doc.data, dict) else {}
        if "create_monitor" in data:
            return doc.problem(
                ["create_monitor"],
                "this file is a monitor (it has create_monitor:), but schedules/ holds "
                "schedule declarations; move it to monitors/",
                key=True,
            )
        if "import_data" in data:
            return doc.problem(
                ["import_data"],
                f"{TODO}: data import schedules (in {doc.display}); schedule a runconfig "
                "that copies the data instead",
                key=True,
            )
        return None

    def check(self, spec: ScheduleSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return [] if "trigger" in skip else spec.problems()

    def resolve(self, spec: ScheduleSpec, refs: Resolver) -> ScheduleSpec:
        """The spec with the address of the job it runs. That job is not one of its
        dependencies: a schedule is not applied again each time its job runs."""
        target = _target(spec, refs)
        return spec if target is None else replace(spec, target=target)


def _target(spec: ScheduleSpec, refs: Resolver) -> str | None:
    return job_address(spec.source, spec.job, job_path(spec), refs)


def job_address(source: Source, written: str, where: JsonPath, refs: Resolver) -> str | None:
    """The address of the runconfig or pipeline `written` names (a file, relative to
    `source`'s, or a name), or None with a problem where it is written."""
    if written.endswith((".yml", ".yaml")) or "/" in written:
        path = (source.doc.path.parent / written).resolve()
        for kind in JOBS:
            spec_found = refs.spec_in_file(kind, path)
            if spec_found is not None:
                return spec_found.address
        if not path.is_file():
            what = f"'{written}' does not exist (looked for {path})"
        else:
            what = f"'{written}' declares no runconfig or pipeline"
        refs.problem(
            source.problem(
                where,
                f"{what}; name a file in runconfigs/ or pipelines/ (relative to this file), "
                "or a job's name",
            )
        )
        return None
    name = written.removeprefix("azureml:").split("@")[0].split(":")[0]
    found = [f"{kind}/{name}" for kind in JOBS if name in refs.declared(kind)]
    if len(found) == 1:
        return found[0] if refs.is_declared(found[0]) else None
    if found:
        message = (
            f"'{written}' names both {' and '.join(found)}; write the file's path instead "
            "(create_job: ../pipelines/NAME.yml)"
        )
    else:
        jobs = [f"{kind}/{n}" for kind in JOBS for n in refs.declared(kind)]
        listed = f" (declared: {', '.join(jobs)})" if jobs else " (none are declared)"
        message = f"no runconfig or pipeline is named '{name}'{listed}"
    refs.problem(source.problem(where, message))
    return None


DECLARING = ScheduleDeclaring()
