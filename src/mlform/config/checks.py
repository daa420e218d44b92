"""Checks of one spec against the filesystem: do the files it names exist and fit it.

Each check returns the problems it finds; none raises. A key the schema already
rejected is passed in `skip` so its check is not run on a guess (a misspelt `type`
would otherwise also report "a file but type is uri_folder").
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Mapping
from pathlib import Path

from mlform.config import conditions
from mlform.config.containment import Boundary
from mlform.config.refs import DatastorePath, LocalPath, Url, local_path
from mlform.config.schemes import protocol_problem
from mlform.config.specs import (
    DataInput,
    DataSpec,
    DatastoreSpec,
    DeploymentSpec,
    EnvironmentSpec,
    ImageSpec,
    ModelSpec,
    RunconfigSpec,
    Spec,
    env_text,
)
from mlform.config.yamlfile import read_document
from mlform.errors import Problem


def check_spec(spec: Spec, root: Path, skip: Collection[str] = ()) -> list[Problem]:
    if isinstance(spec, DataSpec):
        return _data(spec, root, skip)
    if isinstance(spec, EnvironmentSpec):
        return _environment(spec, root)
    if isinstance(spec, DatastoreSpec) and isinstance(spec.location, Url):
        return _url(spec, spec.location)
    if isinstance(spec, RunconfigSpec):
        return _runconfig(spec, root) + _register_model(spec)
    if isinstance(spec, ModelSpec):
        return _model(spec, root)
    if isinstance(spec, ImageSpec | DeploymentSpec):
        return _image(spec, root)
    return []


def _register_model(spec: RunconfigSpec) -> list[Problem]:
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


def _model(spec: ModelSpec, root: Path) -> list[Problem]:
    location = spec.location
    if isinstance(location, Url):
        return _url(spec, location)
    if not isinstance(location, LocalPath):
        return []
    written = str(spec.body["path"])
    if not os.path.exists(location.path):
        return [
            spec.source.problem(
                ["path"], _missing(spec, "model path", written, location.path, root)
            )
        ]
    if spec.type == "mlflow_model" and not os.path.isfile(location.path / "MLmodel"):
        return [
            spec.source.problem(
                ["type"],
                f"'{written}' has no MLmodel file, so it is not an MLflow model; "
                "use type: custom_model or point path: at the folder mlflow saved",
            )
        ]
    return []


def _image(spec: ImageSpec | DeploymentSpec, root: Path) -> list[Problem]:
    problems = []
    for key, ref in (("model", spec.model), ("environment", spec.environment)):
        if ref is None:
            problems.append(
                spec.source.problem(
                    [key],
                    f"'{spec.body[key]}' is not a {key} reference; write NAME:VERSION or "
                    "NAME@latest",
                )
            )
    written = str(spec.body["code_configuration"].get("code", "."))
    if not os.path.isdir(spec.code):
        problems.append(
            spec.source.problem(
                ["code_configuration", "code"],
                _missing(spec, "code folder", written, spec.code, root),
            )
        )
    elif not os.path.isfile(spec.code / spec.scoring_script):
        problems.append(
            spec.source.problem(
                ["code_configuration", "scoring_script"],
                f"scoring script '{spec.scoring_script}' is not in {written}; it is looked "
                "for relative to code:",
            )
        )
    return problems


_BINDING = re.compile(r"\$\{\{\s*([A-Za-z_]+)\.([A-Za-z0-9_.-]+)\s*\}\}")


def _runconfig(spec: RunconfigSpec, root: Path) -> list[Problem]:
    problems = []
    for match in _BINDING.finditer(spec.command):
        group, name = match[1], match[2]
        declared = {"inputs": spec.inputs, "outputs": spec.outputs}.get(group)
        if group == "secrets":
            continue  # said where every secret reference is checked (`mlform.secrets`)
        if declared is None:
            message = (
                f"command uses {match[0]}, but only ${{{{inputs.NAME}}}} and "
                "${{outputs.NAME}} are replaced in a command"
            )
        elif name not in declared and name not in _written(spec, group):
            known = ", ".join(sorted(declared)) or "none"
            message = (
                f"command uses {match[0]}, but no {group[:-1]} '{name}' is declared "
                f"({group}: {known}); declare it under {group}:"
            )
        else:
            continue
        problems.append(spec.source.problem(["command"], message))
    if spec.code is not None and not os.path.isdir(spec.code):
        written = str(spec.body["code"])
        if os.path.exists(spec.code):
            message = f"code '{written}' is a file; point code: at the folder that holds it"
        else:
            message = _missing(spec, "code folder", written, spec.code, root)
        problems.append(spec.source.problem(["code"], message))
    for key, value in spec.inputs.items():
        if isinstance(value, DataInput) and isinstance(value.location, LocalPath):
            if not os.path.exists(value.location.path):
                written = str(spec.body["inputs"][key]["path"])
                message = _missing(spec, "input path", written, value.location.path, root)
                problems.append(spec.source.problem(["inputs", key, "path"], message))
        elif isinstance(value, DataInput) and isinstance(value.location, Url):
            problems.extend(_url(spec, value.location, ["inputs", key, "path"]))
    return problems


def _data(spec: DataSpec, root: Path, skip: Collection[str]) -> list[Problem]:
    location = spec.location
    if isinstance(location, Url):
        return _url(spec, location)
    if isinstance(location, DatastorePath):
        return []  # a reference: checked once every datastore is known
    assert isinstance(location, LocalPath)
    path = location.path
    written = str(spec.body["path"])
    if not os.path.exists(path):
        return [spec.source.problem(["path"], _missing(spec, "path", written, path, root))]
    if "type" in skip:
        return []
    if spec.type == "uri_file" and not os.path.isfile(path):
        message = f"'{written}' is a folder but type is uri_file; use type: uri_folder"
    elif spec.type in ("uri_folder", "mltable") and not os.path.isdir(path):
        # The body has the schema's default type filled in; the text says what was written.
        if spec.source.doc.text([*spec.source.where, "type"]) is not None:
            message = f"'{written}' is a file but type is {spec.type}; use type: uri_file"
        else:
            message = (
                f"'{written}' is a file, but data without a type is a folder; add type: uri_file"
            )
    elif spec.type == "mltable" and not os.path.isfile(path / "MLTable"):
        message = f"'{written}' has no MLTable file; add one or use type: uri_folder"
    else:
        return []
    return [spec.source.problem(["path"], message)]


def _environment(spec: EnvironmentSpec, root: Path) -> list[Problem]:
    problems = []
    files = (
        ("requirements", "requirements", spec.requirements),
        ("conda_file", "conda", spec.conda_file),
    )
    for key, what, path in files:
        if isinstance(path, Path) and not os.path.isfile(path):
            written = str(spec.body[key])
            message = _missing(spec, f"{what} file", written, path, root)
            problems.append(spec.source.problem([key], message))
    build = spec.body.get("build")
    if isinstance(build, Mapping) and isinstance(build.get("path"), str):
        context = local_path(spec.source.doc.path.parent, build["path"])
        if not os.path.isdir(context):
            message = _missing(spec, "build context folder", build["path"], context, root)
            problems.append(spec.source.problem(["build", "path"], message))
    problems.extend(_packages(spec, root))
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


def _packages(spec: EnvironmentSpec, root: Path) -> list[Problem]:
    """An entry of any package list that is not a requirement, at its own line."""
    # start-up: packaging's requirement parser, only for an environment that lists packages
    from mlform.config.packages import requirement_problem

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
        shown = _shown(spec.requirements, root)
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
        doc, where = read_document(spec.conda_file, _shown(spec.conda_file, root)), []
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


def _missing(spec: Spec, what: str, written: str, path: Path, root: Path) -> str:
    message = f"{what} '{written}' does not exist"
    if os.path.isabs(written):
        return message
    message += f" (looked for {_shown(path, root)})"
    # A path written from the workspace root instead of from the file is a common slip.
    from_root = root / written
    if os.path.exists(from_root):
        relative = os.path.relpath(from_root, spec.source.doc.path.parent)
        return f"{message}; paths are relative to this file: write '{relative}'"
    return f"{message}; create it, or correct the path (it is relative to this file)"


def _shown(path: Path, root: Path) -> str:
    relative = os.path.relpath(path, root)
    return path.as_posix() if relative.startswith("..") else Path(relative).as_posix()


def _written(spec: Spec, group: str) -> Mapping[str, object]:
    """The inputs or outputs as the file declares them, those the schema rejected too:
    a command that uses one of those is not told it is undeclared (its own error says
    what is wrong with it)."""
    data = spec.source.doc.data
    for step in spec.source.where:
        data = data.get(step) if isinstance(data, Mapping) else None
    found = data.get(group) if isinstance(data, Mapping) else None
    return found if isinstance(found, Mapping) else {}


def _url(spec: Spec, url: Url, where: list[str | int] | None = None) -> list[Problem]:
    if url.scheme in ("datastore", "azureml"):
        message = (
            f"'{url.url}' is not a datastore path; write datastore://<datastore>/<path> "
            "or azureml://datastores/<datastore>/paths/<path>"
        )
        return [spec.source.problem(where or ["path"], message)]
    problem = protocol_problem(url.scheme)
    return [spec.source.problem(where or ["path"], problem)] if problem else []
