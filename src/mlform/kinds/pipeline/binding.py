"""A pipeline step that runs a component: the component's command, code, environment,
inputs and outputs, with what the step says over them. The step's inputs are checked
against the component's declarations (types, `min`, `max`, `enum`, `optional`), defaults
filled in, and Azure's optional-argument syntax resolved: `$[[--lr ${{inputs.lr}}]]` stays
in the command (without the brackets) when the step gives `lr` a value, and is dropped
when it does not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from mlform.config.specs import DataInput, env_text
from mlform.errors import Problem
from mlform.kinds.component.spec import (
    DATA_TYPES,
    ComponentInput,
    ComponentSpec,
    optional_arguments,
    wrong_value,
)
from mlform.kinds.pipeline.spec import Binding, PipelineSpec, StepSpec


def bind(
    step: StepSpec, component: ComponentSpec, pipeline: PipelineSpec
) -> tuple[StepSpec, list[Problem]]:
    """The step running `component`: its inputs checked against the declarations,
    defaults filled in, optional arguments resolved. The step's own keys win."""
    problems: list[Problem] = []
    src = step.source
    label = f"component {component}"
    inputs: dict[str, Binding | DataInput | str] = {}
    for name, value in step.inputs.items():
        declared = component.inputs.get(name)
        if declared is None:
            known = ", ".join(sorted(component.inputs)) or "none"
            problems.append(
                src.problem(
                    ["inputs", name],
                    f"{label} has no input '{name}' (inputs: {known}); remove it or "
                    "declare it in the component",
                    key=True,
                )
            )
            continue
        wrong = _wrong_input(declared, value, pipeline)
        if wrong:
            problems.append(src.problem(["inputs", name], f"input {name}: {wrong}"))
        inputs[name] = value
    missing = [n for n, d in component.inputs.items() if d.required and n not in inputs]
    if missing:
        problems.append(
            src.problem(
                ["inputs"] if "inputs" in step.body else [],
                f"step {step.name} does not give {label} its required input"
                f"{'s' if len(missing) > 1 else ''} {', '.join(missing)}; bind "
                f"{'them' if len(missing) > 1 else 'it'} under the step's inputs:",
                key=True,
            )
        )
    for name, declared in component.inputs.items():
        if name not in inputs and declared.default is not None:
            inputs[name] = env_text(declared.default)
    for name in step.outputs:
        if name not in component.outputs:
            known = ", ".join(sorted(component.outputs)) or "none"
            problems.append(
                src.problem(
                    ["outputs", name],
                    f"{label} has no output '{name}' (outputs: {known}); remove it or "
                    "declare it in the component",
                    key=True,
                )
            )
    body = step.body
    outputs = dict(component.outputs)
    for name, value in (body.get("outputs") or {}).items():
        if name in outputs and isinstance(value, Mapping) and "type" in value:
            outputs[name] = str(value["type"])
    own_env = "environment" in body or component.environment is None
    merged = replace(
        step,
        command=step.command or optional_arguments(component.command, set(inputs)),
        code=step.code if "code" in body else component.code,
        environment=step.environment if own_env else component.environment,
        inputs=inputs,
        outputs=outputs,
        variables={**component.variables, **step.variables},
        deterministic=bool(body.get("is_deterministic", component.deterministic)),
        origin=component.source,
        component_digest=component.digest,
        inline=step.inline if own_env else component.inline,
    )
    return merged, problems


def _wrong_input(
    declared: ComponentInput, value: Binding | DataInput | str, pipeline: PipelineSpec
) -> str | None:
    if isinstance(value, Binding):
        if value.step is not None:
            if declared.type not in DATA_TYPES:
                return f"a {declared.type} input cannot take a step's output ({value})"
            return None
        bound = pipeline.inputs.get(value.name)
        if bound is None:
            return None  # the pipeline check says the input is missing
        return _wrong_input(declared, bound, pipeline)
    if isinstance(value, DataInput):
        if declared.type not in DATA_TYPES:
            return f"expects a {declared.type} value, not data (a path:)"
        return None
    return wrong_value(declared, value)
