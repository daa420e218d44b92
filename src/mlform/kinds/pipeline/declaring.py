"""How pipeline files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, code_path, found, input_paths
from mlform.config.kinds import Declaring, Resolver
from mlform.config.specs import DataInput, Source, Spec
from mlform.config.yamlfile import JsonPath
from mlform.kinds.compute.declaring import environment_problem
from mlform.kinds.environment.references import environment_reference
from mlform.kinds.pipeline import resolve
from mlform.kinds.pipeline.spec import Binding, PipelineSpec, parse
from mlform.secrets import references as secret_references
from mlform.secrets.references import ANY


class PipelineDeclaring(Declaring[PipelineSpec]):
    name = "pipeline"
    name_from_file = True  # Azure ML job files may leave name: out

    def parse(self, body: Mapping[str, Any], source: Source) -> PipelineSpec:
        return parse(body, source)

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        return (("jobs", ANY, "environment_variables", ANY),)

    def defines(self, spec: Spec) -> Sequence[Spec]:
        if not isinstance(spec, PipelineSpec):
            return ()
        return [defined for step in spec.steps for defined in step.inline]

    def resolve(self, spec: PipelineSpec, refs: Resolver) -> PipelineSpec:
        return resolve.resolve(spec, refs)

    def paths(self, spec: Spec) -> Iterable[Found]:
        if not isinstance(spec, PipelineSpec):
            return
        yield from input_paths(spec.source, spec.body, (), spec.inputs)
        for step in spec.steps:
            if "code" in step.body:
                yield from code_path(step.source, step.body, ("code",), step.code)
            yield from input_paths(step.source, step.body, (), step.inputs)
            if isinstance(step.component, Path) and "component" in step.body:
                written = ("component",)
                yield found(step.source, step.body, written, "component", step.component, False)

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        if isinstance(spec, PipelineSpec):
            return tuple(secret_references.names_in([dict(s.variables) for s in spec.steps]))
        return ()

    def references(self, spec: PipelineSpec, refs: Resolver) -> list[str]:
        """Each step's environment and compute, and the data assets the pipeline and its
        steps take as inputs."""
        found: list[str] = []
        inputs: list[Binding | DataInput | str] = list(spec.inputs.values())
        for step in spec.steps:
            inputs.extend(step.inputs.values())
            origin = step.origin if "environment" not in step.body and step.origin else None
            env = environment_reference(
                refs, step.environment, origin or step.source, step.body if origin is None else {}
            )
            found.extend([env] if env else [])
            compute = refs.named("compute", step.compute, step.source, ["compute"], "steps")
            has_environment = step.environment is not None
            environment_problem(refs, compute, has_environment, step.source, ["compute"])
            found.extend([compute] if compute else [])
        for value in inputs:
            if isinstance(value, DataInput) and value.asset is not None:
                address = f"data/{value.asset.name}"
                if refs.is_declared(address):
                    found.append(address)
        return found

    def produces(self, spec: PipelineSpec) -> list[tuple[str, str, JsonPath]]:
        """The models its steps register, each where its step writes the name."""
        found: list[tuple[str, str, JsonPath]] = []
        for step in spec.steps:
            if step.register_model is not None:
                where = [*step.source.where[len(spec.source.where) :], "register_model", "name"]
                found.append(("model", step.register_model.name, where))
        return found


DECLARING = PipelineDeclaring()
