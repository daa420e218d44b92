"""A pipeline as `pipelines/*.yml` declares it (Azure ML's pipeline job YAML): its
steps, and how their inputs bind the pipeline's inputs and each other's outputs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mlform.config.refs import AssetRef, local_path, parse_asset_ref
from mlform.config.specs import (
    DataInput,
    RegisterModel,
    Source,
    Spec,
    common,
    env_text,
    parse_inputs,
    parse_register,
)
from mlform.kinds.environment.spec import environment_ref


@dataclass(frozen=True, slots=True)
class Binding:
    """A step input bound to the pipeline's input or to another step's output."""

    step: str | None  # None: the pipeline's own input
    name: str  # the input's or output's name

    def __str__(self) -> str:
        if self.step is None:
            return f"${{{{parent.inputs.{self.name}}}}}"
        return f"${{{{parent.jobs.{self.step}.outputs.{self.name}}}}}"


@dataclass(frozen=True, slots=True)
class StepSpec:
    name: str
    source: Source = field(compare=False)
    body: Mapping[str, Any]
    command: str = ""
    code: Path | None = None
    environment: AssetRef | None = None
    compute: str = "local"
    inputs: Mapping[str, Binding | DataInput | str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    variables: Mapping[str, str] = field(default_factory=dict)
    deterministic: bool = True
    timeout: float | None = None
    register_model: RegisterModel | None = None
    component: Path | AssetRef | None = None  # a runconfig or component file, or a name
    origin: Source | None = field(default=None, compare=False)  # its component's file
    component_digest: str | None = None  # the component's content, when it runs one
    parent_outputs: Mapping[str, str] = field(default_factory=dict)  # output → pipeline's
    inline: tuple[Spec, ...] = field(default=(), compare=False)  # defined in place

    @property
    def upstream(self) -> tuple[str, ...]:
        return tuple(
            dict.fromkeys(b.step for b in self.inputs.values() if isinstance(b, Binding) and b.step)
        )


@dataclass(frozen=True, slots=True)
class PipelineSpec(Spec):
    kind: ClassVar[str] = "pipeline"
    experiment: str = ""
    inputs: Mapping[str, DataInput | str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)  # name → type
    steps: tuple[StepSpec, ...] = ()
    continue_on_failure: bool = False
    force_rerun: bool = False
    max_concurrency: int | None = None
    trigger: str = "on_change"


_BINDING = re.compile(
    r"^\$\{\{\s*parent\.(?:inputs\.(?P<input>[A-Za-z0-9_.-]+)|"
    r"jobs\.(?P<step>[A-Za-z0-9_]+)\.outputs\.(?P<output>[A-Za-z0-9_.-]+))\s*\}\}$"
)

_PARENT_OUTPUT = re.compile(r"^\$\{\{\s*parent\.outputs\.(?P<output>[A-Za-z0-9_.-]+)\s*\}\}$")


def binding(value: Any) -> Binding | None:
    match = _BINDING.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        return None
    if match["input"]:
        return Binding(None, match["input"])
    return Binding(match["step"], match["output"])


def parse(body: Mapping[str, Any], source: Source) -> PipelineSpec:
    base = source.doc.path.parent
    fields = common(body)
    settings = body.get("settings") or {}
    default_compute = str(settings.get("default_compute", "local")).removeprefix("azureml:")
    default_env = settings.get("default_environment")
    steps = []
    for name, step in (body.get("jobs") or {}).items():
        if isinstance(step, Mapping):
            where = Source(source.doc, (*source.where, "jobs", str(name)))
            steps.append(_step(str(name), step, where, default_compute, default_env))
    return PipelineSpec(
        **fields,
        source=source,
        experiment=str(body.get("experiment_name") or fields["name"]),
        inputs=parse_inputs(body, base),
        outputs={
            str(k): str((v or {}).get("type", "uri_folder"))
            for k, v in (body.get("outputs") or {}).items()
        },
        steps=tuple(steps),
        continue_on_failure=bool(settings.get("continue_on_step_failure", False)),
        force_rerun=bool(settings.get("force_rerun", False)),
        max_concurrency=settings.get("max_concurrency"),
        trigger=str(body.get("trigger", "on_change")),
    )


def _step(
    name: str, body: Mapping[str, Any], source: Source, compute: str, environment: Any
) -> StepSpec:
    base = source.doc.path.parent
    inputs: dict[str, Binding | DataInput | str] = {}
    raw = dict(body.get("inputs") or {})
    bound = {k: binding(v) for k, v in raw.items()}
    literal = {k: v for k, v in raw.items() if bound[k] is None}
    inputs.update(parse_inputs({"inputs": literal}, base))
    inputs.update({k: b for k, b in bound.items() if b is not None})
    if "environment" in body:
        env, inline = environment_ref(body["environment"], source)
    else:  # the pipeline's settings.default_environment
        pipeline = Source(source.doc, source.where[:-2])
        env, inline = environment_ref(environment, pipeline, ("settings", "default_environment"))
    code = body.get("code")
    limits = body.get("limits") or {}
    outputs = dict(body.get("outputs") or {})
    published = {
        k: _PARENT_OUTPUT.match(v.strip()) for k, v in outputs.items() if isinstance(v, str)
    }
    return StepSpec(
        name=name,
        source=source,
        body=dict(body),
        command=str(body.get("command", "")),
        code=local_path(base, code) if code else None,
        environment=env,
        compute=str(body.get("compute", compute)).removeprefix("azureml:"),
        inputs=inputs,
        outputs={
            str(k): str(v.get("type", "uri_folder")) if isinstance(v, Mapping) else "uri_folder"
            for k, v in outputs.items()
        },
        variables={
            str(k): env_text(v) for k, v in (body.get("environment_variables") or {}).items()
        },
        deterministic=bool(body.get("is_deterministic", True)),
        timeout=float(limits["timeout"]) if limits.get("timeout") else None,
        register_model=parse_register(body.get("register_model")),
        component=_component_ref(body.get("component"), base),
        parent_outputs={str(k): m["output"] for k, m in published.items() if m is not None},
        inline=inline,
    )


def _component_ref(value: Any, base: Path) -> Path | AssetRef | None:
    """`azureml:train:1`, `train@latest` or an Azure ML URI names a component; anything
    else is a file."""
    if not isinstance(value, str):
        return None
    if value.startswith("azureml:"):
        return parse_asset_ref(value)
    if "@" in value and "/" not in value:
        return parse_asset_ref(value)
    return local_path(base, value.removeprefix("file:"))
