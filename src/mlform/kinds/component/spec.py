"""Command components: a step's command, code, environment and typed inputs in a file of
their own, as Azure ML keeps them (`type: command`, the commandComponent schema,
https://learn.microsoft.com/azure/machine-learning/reference-yaml-component-command).

A pipeline step runs one with `component: ./train.yml` (a path relative to the pipeline
file) or `component: azureml:train_model:1` / `azureml:train_model@latest` (a component
declared in the workspace); Azure's registry URI
`azureml://registries/<registry>/components/train_model/versions/1` names the component of
that name and version declared here, as mlform fetches nothing from registries. Its
environment may be defined in place (`environment: {image: …, conda_file: conda.yml}`): an
anonymous environment, as for a job's. A component is not a job: it runs only as a pipeline's step.
The step binds the component's inputs; this module checks those bindings against the
declared types, `min`, `max`, `enum` and `optional`, fills in defaults, and resolves
Azure's optional-argument syntax: `$[[--lr ${{inputs.lr}}]]` stays in the command (without
the brackets) when the step gives `lr` a value, and is dropped when it does not.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.refs import AssetRef, local_path
from mlform.config.specs import METADATA_KEYS, Source, Spec, env_text
from mlform.errors import Problem
from mlform.hashing import sha256_text
from mlform.kinds.environment.spec import environment_ref

DATA_TYPES = frozenset({"uri_folder", "uri_file", "mltable", "mlflow_model", "custom_model"})

_COMPONENT_SCHEMA = re.compile(r"(?:^|/)[A-Za-z]*Component\.schema\.json$")

_OTHER_SCHEMA = re.compile(r"(?:^|/)[A-Za-z]+\.schema\.json$")

_DECLARING = frozenset({"default", "optional", "min", "max", "enum", "description"})
_OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.DOTALL)
_INPUT = re.compile(r"\$\{\{\s*inputs\.([A-Za-z0-9_.-]+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class ComponentInput:
    """One declared input: its type and what values it takes."""

    type: str
    default: Any = None  # None: no default
    optional: bool = False
    min: float | None = None
    max: float | None = None
    enum: tuple[str, ...] = ()

    @property
    def required(self) -> bool:
        return not self.optional and self.default is None


@dataclass(frozen=True, slots=True)
class ComponentSpec(Spec):
    kind: ClassVar[str] = "component"
    version: str | None = None
    command: str = ""
    code: Path | None = None
    environment: AssetRef | None = None
    inputs: Mapping[str, ComponentInput] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # name → type
    variables: Mapping[str, str] = field(default_factory=dict)
    deterministic: bool = True
    inline: tuple[Spec, ...] = field(default=(), compare=False)  # its environment, in place

    @property
    def digest(self) -> str:
        """Its content as it bears on what a step computes: metadata left out, so
        editing a description does not rerun the steps that use it."""
        kept = {k: v for k, v in self.body.items() if k not in METADATA_KEYS}
        return sha256_text(json.dumps(kept, sort_keys=True, default=str))

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version else self.name


def declares_component(data: Any, folder: str) -> bool:
    """Whether a file found in runconfigs/ or pipelines/ is a component, not a job.

    Its `$schema` says so when it has one. Without, a `type: command` file among pipelines
    is one, and among runconfigs one that has what only components have: a version, or
    inputs declared by type (a job's inputs have values).
    """
    if not isinstance(data, dict):
        return False
    declared = data.get("$schema")
    if isinstance(declared, str) and _OTHER_SCHEMA.search(declared):
        return bool(_COMPONENT_SCHEMA.search(declared))
    if folder == "pipelines":
        return data.get("type") == "command" or ("jobs" not in data and "command" in data)
    if "version" in data or "is_deterministic" in data:
        return True
    inputs = data.get("inputs")
    return isinstance(inputs, dict) and any(_declaration(value) for value in inputs.values())


def _declaration(value: Any) -> bool:
    if not isinstance(value, dict) or "path" in value or "value" in value:
        return False
    return "type" in value or bool(value.keys() & _DECLARING)


def parse(body: Mapping[str, Any], source: Source) -> ComponentSpec:
    """A component from a body that passed its schema (wrong keys already left out)."""
    base = source.doc.path.parent
    env, inline = environment_ref(body.get("environment"), source)
    code = body.get("code")
    version = body.get("version")
    inputs = {}
    for key, value in (body.get("inputs") or {}).items():
        if not isinstance(value, Mapping) or "type" not in value:
            continue
        inputs[str(key)] = ComponentInput(
            type=str(value["type"]),
            default=value.get("default"),
            optional=bool(value.get("optional", False)),
            min=value.get("min"),
            max=value.get("max"),
            enum=tuple(str(v) for v in value.get("enum") or ()),
        )
    return ComponentSpec(
        name=str(body.get("name", source.doc.path.stem)),
        source=source,
        body={k: v for k, v in body.items() if k != "$schema"},
        version=None if version is None else str(version),
        command=str(body.get("command", "")),
        code=local_path(base, str(code).removeprefix("file:")) if code else None,
        environment=env,
        inputs=inputs,
        outputs={
            str(k): str(v.get("type", "uri_folder")) if isinstance(v, Mapping) else "uri_folder"
            for k, v in (body.get("outputs") or {}).items()
        },
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        deterministic=bool(body.get("is_deterministic", True)),
        inline=inline,
    )


def check(component: ComponentSpec) -> list[Problem]:
    """What is wrong in the component file itself, each where it is written."""
    problems: list[Problem] = []
    src = component.source
    for name, declared in component.inputs.items():
        if declared.default is not None:
            wrong = wrong_value(declared, declared.default)
            if wrong:
                problems.append(src.problem(["inputs", name, "default"], f"default {wrong}"))
    kept = _OPTIONAL.sub("", component.command)
    for match in _INPUT.finditer(component.command):
        name = match[1]
        entry = component.inputs.get(name)
        if entry is None:
            known = ", ".join(sorted(component.inputs)) or "none"
            problems.append(
                src.problem(
                    ["command"],
                    f"command uses {match[0]}, but component {component.name} declares no "
                    f"input '{name}' (inputs: {known}); declare it under inputs:",
                )
            )
        elif entry.optional and entry.default is None and match[0] in kept:
            problems.append(
                src.problem(
                    ["command"],
                    f"optional input '{name}' is used outside $[[...]]; wrap the part of the "
                    f"command that uses it, e.g. $[[--{name} {match[0]}]]",
                )
            )
    for match in re.finditer(r"\$\{\{\s*outputs\.([A-Za-z0-9_.-]+)\s*\}\}", component.command):
        if match[1] not in component.outputs:
            known = ", ".join(sorted(component.outputs)) or "none"
            problems.append(
                src.problem(
                    ["command"],
                    f"command uses {match[0]}, but component {component.name} declares no "
                    f"output '{match[1]}' (outputs: {known}); declare it under outputs:",
                )
            )
    if component.code is not None and not os.path.isdir(component.code):
        problems.append(
            src.problem(["code"], f"code folder '{component.body.get('code')}' does not exist")
        )
    return problems


def optional_arguments(command: str, given: set[str]) -> str:
    """Azure's `$[[...]]`: kept without its brackets when every input it uses has a value."""

    def resolve(match: re.Match[str]) -> str:
        used = {m[1] for m in _INPUT.finditer(match[1])}
        return match[1] if used <= given else ""

    return _OPTIONAL.sub(resolve, command)


def wrong_value(declared: ComponentInput, value: Any) -> str | None:
    """What is wrong with a literal for the declared input, if anything. Values arrive
    as YAML gave them, or as text when they came through the step's inputs."""
    kind = declared.type
    if kind in DATA_TYPES:
        return f"expects data ({kind}): bind it to data or an output, or give a path:"
    number = _number(value, integer=kind == "integer")
    if kind in ("number", "integer"):
        if number is None:
            return f"'{env_text(value)}' is not {'an integer' if kind == 'integer' else 'a number'}"
        if declared.min is not None and number < declared.min:
            return f"{env_text(value)} is below the minimum {declared.min}"
        if declared.max is not None and number > declared.max:
            return f"{env_text(value)} is above the maximum {declared.max}"
    elif kind == "boolean" and env_text(value).lower() not in ("true", "false"):
        return f"'{env_text(value)}' is not a boolean (true or false)"
    elif declared.enum and env_text(value) not in declared.enum:
        return f"'{env_text(value)}' is not one of {', '.join(declared.enum)}"
    return None


def _number(value: Any, *, integer: bool) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return None if integer and not float(value).is_integer() else float(value)
    try:
        return float(int(str(value))) if integer else float(str(value))
    except ValueError:
        return None
