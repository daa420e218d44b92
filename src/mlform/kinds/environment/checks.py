"""An environment's files and package lists, and values YAML would change."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from mlform.config.checks import missing, shown_path
from mlform.config.containment import Boundary
from mlform.config.packages import requirement_problem
from mlform.config.refs import local_path
from mlform.config.specs import env_text
from mlform.config.yamlfile import read_document
from mlform.errors import Problem
from mlform.kinds.environment.spec import EnvironmentSpec


def check(spec: EnvironmentSpec, root: Path) -> list[Problem]:
    problems = []
    files = (
        ("requirements", "requirements", spec.requirements),
        ("conda_file", "conda", spec.conda_file),
    )
    for key, what, path in files:
        if isinstance(path, Path) and not os.path.isfile(path):
            written = str(spec.body[key])
            message = missing(spec.source, f"{what} file", written, path, root)
            problems.append(spec.source.problem([key], message))
    build = spec.body.get("build")
    if isinstance(build, Mapping) and isinstance(build.get("path"), str):
        context = local_path(spec.source.doc.path.parent, build["path"])
        if not os.path.isdir(context):
            message = missing(spec.source, "build context folder", build["path"], context, root)
            problems.append(spec.source.problem(["build", "path"], message))
    problems.extend(packages(spec, root))
    for name, value in spec.body.get("environment_variables", {}).items():
        # YAML reads `yes` as true and 1.10 as 1.1; the process would see "true" and "1.1".
        # Only such values need the text as written, so most files are read just once.
        if isinstance(value, bool | float):
            where = ["environment_variables", name]
            typed = spec.source.doc.text([*spec.source.where, *where])
            if typed is not None and typed != env_text(value):
                problems.append(
                    spec.source.problem(
                        where,
                        f"YAML reads {typed} as {value!r}, so {name} would be "
                        f"'{env_text(value)}'; put it in quotes to keep it as written: "
                        f"'{typed}'",
                        severity="warning",
                    )
                )
    return problems


def packages(spec: EnvironmentSpec, root: Path) -> list[Problem]:
    """An entry of any package list that is not a requirement, at its own line."""
    # A file outside is reported as such (containment), never read: its lines would be
    # quoted in the errors.
    inside = Boundary.of(root)
    problems = []
    for index, entry in enumerate(spec.pip):
        problem = requirement_problem(entry, root)
        if problem:
            problems.append(spec.source.problem(["pip", index], problem))
    if (
        isinstance(spec.requirements, Path)
        and os.path.isfile(spec.requirements)
        and inside.outside(spec.requirements) is None
    ):
        shown = shown_path(spec.requirements, root)
        text = spec.requirements.read_text(encoding="utf-8", errors="replace")
        for number, raw in enumerate(text.splitlines(), start=1):
            entry = raw.split(" #", 1)[0].strip()
            problem = requirement_problem(entry, root) if entry[:1] not in ("", "#") else None
            if problem:
                problems.append(Problem(shown, number, raw.index(entry) + 1, problem))
    if isinstance(spec.conda_file, Mapping):
        doc, where = spec.source.doc, [*spec.source.where, "conda_file"]
        conda: object = spec.conda_file
    elif (
        isinstance(spec.conda_file, Path)
        and os.path.isfile(spec.conda_file)
        and inside.outside(spec.conda_file) is None
    ):
        doc, where = read_document(spec.conda_file, shown_path(spec.conda_file, root)), []
        problems.extend(doc.problems)
        conda = doc.data
    else:
        return problems
    dependencies = conda.get("dependencies") if isinstance(conda, Mapping) else None
    for index, item in enumerate(dependencies if isinstance(dependencies, list) else []):
        pip = item.get("pip") if isinstance(item, Mapping) else None
        for number, entry in enumerate(pip if isinstance(pip, list) else []):
            problem = requirement_problem(str(entry), root)
            if problem:
                at = [*where, "dependencies", index, "pip", number]
                problems.append(doc.problem(at, problem))
    return problems
