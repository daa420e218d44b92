"""A pipeline's steps with what they run from other files: a component (a file, or one
declared in components/ by name and version), or a runconfig file, with what the step
says over it; then what is wrong with the pipeline as a whole (bindings that name no
step, output or input, commands that use undeclared inputs, cycles), each where it is
written."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

from mlform.config import schema
from mlform.config.kinds import Resolver
from mlform.config.refs import AssetRef
from mlform.errors import Problem
from mlform.graph import find_cycles
from mlform.kinds.component.spec import ComponentSpec
from mlform.kinds.pipeline.binding import bind
from mlform.kinds.pipeline.spec import Binding, PipelineSpec, StepSpec
from mlform.kinds.runconfig.spec import RunconfigSpec

_COMPONENTS = "components"  # the folder components are declared in


def resolve(spec: PipelineSpec, refs: Resolver) -> PipelineSpec:
    """Steps that run a component (or a runconfig file) take its command, code,
    environment, inputs and outputs, with what the step says over them."""
    steps = []
    for step in spec.steps:
        if step.component is None and "component" not in step.body:
            steps.append(step)
            continue
        if isinstance(step.component, Path):
            runconfig = refs.spec_in_file("runconfig", step.component)
            if isinstance(runconfig, RunconfigSpec):
                steps.append(_merged(step, runconfig))
                continue
        component = _step_component(step, refs)
        if component is None:
            steps.append(step)
            continue
        merged, problems = bind(step, component, spec)
        for problem in problems:
            refs.problem(problem)
        steps.append(merged)
    resolved = replace(spec, steps=tuple(steps))
    for problem in _pipeline_problems(resolved):
        refs.problem(problem)
    return resolved


def _step_component(step: StepSpec, refs: Resolver) -> ComponentSpec | None:
    """The component a step names, or None and the problem said (unless the
    component's own file is too broken to use: its errors say so)."""
    written = step.body.get("component")
    ref = step.component
    if isinstance(ref, AssetRef):
        return _named_component(step, ref, refs)
    if not isinstance(ref, Path):
        refs.problem(
            step.source.problem(
                ["component"],
                f"component '{written}' is neither a file (./train.yml) nor a component "
                "reference (azureml:NAME:VERSION, azureml:NAME@latest or "
                "azureml://registries/<registry>/components/NAME/versions/N)",
            )
        )
        return None
    if not os.path.isfile(ref):
        refs.problem(
            step.source.problem(
                ["component"],
                f"component file '{written}' does not exist; the path is relative to "
                f"{step.source.file}",
            )
        )
        return None
    found = refs.library_file("component", ref)
    return found if isinstance(found, ComponentSpec) else None


def _named_component(step: StepSpec, ref: AssetRef, refs: Resolver) -> ComponentSpec | None:
    """The component `ref` names, declared here. A reference into an Azure ML registry
    resolves to the component of that name and version here, or says how to declare it."""
    if not refs.fits("component", ref, step.source):
        return None
    declared = [c for c in refs.library("component") if isinstance(c, ComponentSpec)]
    named = [c for c in declared if c.name == ref.name]
    if ref.version is not None:
        named = [c for c in named if c.version == ref.version]
    if named:
        return max(named, key=lambda c: _version_key(c.version))
    if ref.registry is not None:
        version = f", version: {ref.version}" if ref.version else ""
        refs.problem(
            step.source.problem(
                ["component"],
                f"component '{ref.name}'{f' version {ref.version}' if ref.version else ''} "
                f"(from Azure ML registry '{ref.registry}') is not declared in this "
                "workspace, and mlform does not fetch from registries; declare it in "
                f"{_COMPONENTS}/{ref.name}.yml (name: {ref.name}{version})",
            )
        )
        return None
    if ref.name in {c.name for c in declared}:
        versions = sorted(str(c.version) for c in declared if c.name == ref.name)
        hint = f" (versions: {', '.join(versions)})"
    else:
        known = sorted({c.name for c in declared})
        hint = schema.did_you_mean(ref.name, known) or (
            f" (declared: {', '.join(known)})" if known else ""
        )
    refs.problem(
        step.source.problem(
            ["component"],
            f"unknown component '{step.body.get('component')}'{hint}; declare it in "
            f"{_COMPONENTS}/ or point at its file (./{ref.name}.yml)",
        )
    )
    return None


def _merged(step: StepSpec, base: RunconfigSpec) -> StepSpec:
    """A step over the runconfig it names: the step's own keys win."""
    body = step.body
    return replace(
        step,
        command=step.command or base.command,
        code=step.code if "code" in body else base.code,
        environment=step.environment if "environment" in body else base.environment,
        inputs={**base.inputs, **step.inputs},
        outputs={**base.outputs, **step.outputs},
        variables={**base.variables, **step.variables},
        timeout=step.timeout if step.timeout is not None else base.timeout,
        # what a runconfig registers when it runs as itself is not the step's to register
        register_model=step.register_model,
    )


def _pipeline_problems(spec: PipelineSpec) -> list[Problem]:
    """Bindings that name no step, output or input, commands that use undeclared inputs,
    and cycles — each where it is written."""
    problems: list[Problem] = []
    steps = {s.name: s for s in spec.steps}
    for step in spec.steps:
        if not step.command and "component" not in step.body:  # else: said where resolved
            problems.append(
                step.source.problem([], "a step needs a command (or a component: runconfig)")
            )
        for key, value in step.inputs.items():
            if not isinstance(value, Binding):
                continue
            where = ["inputs", key]
            if value.step is None:
                if value.name not in spec.inputs:
                    known = ", ".join(sorted(spec.inputs)) or "none"
                    problems.append(
                        step.source.problem(
                            where,
                            f"{value} names no input of the pipeline (inputs: {known}); "
                            "declare it under the pipeline's inputs:",
                        )
                    )
                continue
            upstream = steps.get(value.step)
            if upstream is None:
                hint = schema.did_you_mean(value.step, list(steps)) or (
                    f" (steps: {', '.join(steps)})"
                )
                problems.append(
                    step.source.problem(where, f"{value} names no step '{value.step}'{hint}")
                )
            elif value.name not in upstream.outputs:
                known = ", ".join(sorted(upstream.outputs)) or "none"
                problems.append(
                    step.source.problem(
                        where,
                        f"{value}: step {value.step} has no output '{value.name}' "
                        f"(outputs: {known}); declare it under its outputs:",
                    )
                )
        for match in _COMMAND_BINDING.finditer("" if step.origin else step.command):
            group, name = match[1], match[2]
            declared = {"inputs": step.inputs, "outputs": step.outputs}.get(group)
            if declared is not None and name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                problems.append(
                    step.source.problem(
                        ["command"],
                        f"command uses {match[0]}, but step {step.name} declares no "
                        f"{group[:-1]} '{name}' ({group}: {known})",
                    )
                )
        if step.code is not None and not os.path.isdir(step.code) and "code" in step.body:
            problems.append(
                step.source.problem(
                    ["code"], f"code folder '{step.body.get('code')}' does not exist"
                )
            )
    problems.extend(_published_outputs(spec))
    graph = {s.name: tuple(u for u in s.upstream if u in steps) for s in spec.steps}
    for cycle in find_cycles(graph):
        first = steps[cycle[0]]
        problems.append(
            first.source.problem(
                ["inputs"], f"steps bind each other's outputs in a cycle: {' → '.join(cycle)}"
            )
        )
    return problems


def _published_outputs(spec: PipelineSpec) -> list[Problem]:
    """Each `${{parent.outputs.x}}` names an output the pipeline declares, once."""
    problems: list[Problem] = []
    publisher: dict[str, tuple[str, str]] = {}
    for step in spec.steps:
        for output, name in step.parent_outputs.items():
            where = ["outputs", output]
            if name not in spec.outputs:
                known = ", ".join(sorted(spec.outputs)) or "none"
                problems.append(
                    step.source.problem(
                        where,
                        f"${{{{parent.outputs.{name}}}}} names no output of the pipeline "
                        f"(outputs: {known}); declare it under the pipeline's outputs:",
                    )
                )
            elif name in publisher:
                problems.append(
                    step.source.problem(
                        where,
                        f"pipeline output '{name}' is already bound to step "
                        f"{publisher[name][0]}'s output {publisher[name][1]}; bind each "
                        "pipeline output once",
                    )
                )
            else:
                publisher[name] = (step.name, output)
    return problems


_COMMAND_BINDING = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z0-9_.-]+)\s*\}\}")


def _version_key(version: str | None) -> tuple[int, int, str]:
    """Latest first by number when versions are numbers, as Azure ML numbers them."""
    if version is None:
        return (0, 0, "")
    return (1, int(version), "") if version.isdigit() else (1, -1, version)
