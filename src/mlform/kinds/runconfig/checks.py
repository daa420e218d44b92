"""A job's command, code, inputs and register_model."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from mlform.config import conditions
from mlform.config.checks import declared_in_file, missing, url_problems
from mlform.config.refs import LocalPath, Url
from mlform.config.specs import DataInput
from mlform.errors import Problem
from mlform.kinds.runconfig.spec import RunconfigSpec


def register_model(spec: RunconfigSpec) -> list[Problem]:
    register = spec.register_model
    if register is None:
        return []
    problems = []
    parts = Path(register.path).parts
    if Path(register.path).is_absolute() or ".." in parts:
        problems.append(
            spec.source.problem(
                ["register_model", "path"],
                f"path '{register.path}' must be inside the run's outputs: write it relative "
                "to them, e.g. model for ${{outputs.model}}",
            )
        )
    try:
        conditions.parse(register.when)
    except ValueError as err:
        problems.append(spec.source.problem(["register_model", "when"], str(err)))
    return problems


# What a sweep job writes under `trial:`, as Azure ML's sweep job YAML does.
_TRIAL_KEYS = ("command", "code", "environment", "environment_variables", "distribution")
_BINDING = re.compile(r"\$\{\{\s*([A-Za-z_]+)\.([A-Za-z0-9_.-]+)\s*\}\}")


def check(spec: RunconfigSpec, root: Path) -> list[Problem]:
    problems = []
    job, body = spec.job
    if spec.problem is not None:
        problems.append(spec.source.problem(spec.problem.where, spec.problem.message))
    if spec.is_sweep:
        problems.extend(
            spec.source.problem(
                [key], f"a sweep job's {key} is its trial's: move it under trial:", key=True
            )
            for key in _TRIAL_KEYS
            if key in spec.body
        )
    space = {p.name for p in spec.sweep.space} if spec.sweep is not None else set()
    for match in _BINDING.finditer(spec.command):
        group, name = match[1], match[2]
        declared = {"inputs": spec.inputs, "outputs": spec.outputs}.get(group)
        if group == "secrets":
            continue  # said where every secret reference is checked (`mlform.secrets`)
        if group == "search_space" and spec.is_sweep:
            if name in space or spec.sweep is None:
                continue
            message = (
                f"command uses {match[0]}, but the search space has no parameter '{name}' "
                f"({', '.join(sorted(space))}); declare it under search_space:"
            )
        elif declared is None:
            message = (
                f"command uses {match[0]}, but only ${{{{inputs.NAME}}}}"
                + (", ${{search_space.NAME}}" if spec.is_sweep else "")
                + " and ${{outputs.NAME}} are replaced in a command"
            )
        elif name not in declared and name not in declared_in_file(spec.source, group):
            known = ", ".join(sorted(declared)) or "none"
            message = (
                f"command uses {match[0]}, but no {group[:-1]} '{name}' is declared "
                f"({group}: {known}); declare it under {group}:"
            )
        else:
            continue
        problems.append(job.problem(["command"], message))
    if spec.code is not None and not os.path.isdir(spec.code):
        written = str(body["code"])
        if os.path.exists(spec.code):
            message = f"code '{written}' is a file; point code: at the folder that holds it"
        else:
            message = missing(job, "code folder", written, spec.code, root)
        problems.append(job.problem(["code"], message))
    for key, value in spec.inputs.items():
        at: list[str | int] = [*spec.data_at(key), "path"]
        if isinstance(value, DataInput) and isinstance(value.location, LocalPath):
            if not os.path.exists(value.location.path):
                given: Any = spec.body
                for part in at:  # where data_at says it is written
                    given = given[part]
                path = value.location.path
                message = missing(spec.source, "input path", str(given), path, root)
                problems.append(spec.source.problem(at, message))
        elif isinstance(value, DataInput) and isinstance(value.location, Url):
            problems.extend(url_problems(spec.source, value.location, at))
    return problems
