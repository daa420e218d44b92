"""How runconfig files are read: parsed, checked, resolved (`Declaring`)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from mlform.config.containment import Found, code_path, input_paths
from mlform.config.kinds import Declaring, Resolver
from mlform.config.refs import AssetRef
from mlform.config.specs import DataInput, Source, Spec
from mlform.config.yamlfile import JsonPath
from mlform.errors import Problem
from mlform.kinds.compute.declaring import environment_problem, instances_problem
from mlform.kinds.environment.references import environment_reference
from mlform.kinds.runconfig import checks
from mlform.kinds.runconfig.spec import RunconfigSpec, parse
from mlform.secrets import references as secret_references
from mlform.secrets.references import ANY


class RunconfigDeclaring(Declaring[RunconfigSpec]):
    name = "runconfig"
    name_from_file = True  # Azure ML job files may leave name: out

    def parse(self, body: Mapping[str, Any], source: Source) -> RunconfigSpec:
        return parse(body, source)

    def secret_places(self, kind: str) -> tuple[tuple[str, ...], ...]:
        return (("environment_variables", ANY),)

    def defines(self, spec: Spec) -> Sequence[Spec]:
        return spec.inline if isinstance(spec, RunconfigSpec) else ()

    def paths(self, spec: Spec) -> Iterable[Found]:
        if isinstance(spec, RunconfigSpec):
            job, body = spec.job
            yield from code_path(job, body, ("code",), spec.code)
            yield from input_paths(spec.source, spec.body, (), spec.inputs)

    def secret_uses(self, spec: Spec) -> tuple[str, ...]:
        if isinstance(spec, RunconfigSpec):
            return tuple(secret_references.names_in(dict(spec.variables)))
        return ()

    def check(self, spec: RunconfigSpec, root: Path, skip: Collection[str]) -> list[Problem]:
        return checks.check(spec, root) + checks.register_model(spec)

    def references(self, spec: RunconfigSpec, refs: Resolver) -> list[str]:
        """The environment, data and compute a runconfig names, each declared here."""
        named: list[tuple[str, AssetRef, JsonPath]] = []
        found = [environment_reference(refs, spec.environment, *spec.job)]
        for key, value in spec.inputs.items():
            if isinstance(value, DataInput) and value.asset is not None:
                named.append(("data", value.asset, ["inputs", key, "path"]))
        found.extend(refs.asset(kind, ref, spec.source, where) for kind, ref, where in named)
        compute = refs.named("compute", spec.compute, spec.source, ["compute"], "runs")
        environment_problem(refs, compute, spec.environment is not None, spec.source, ["compute"])
        instances_problem(refs, compute, spec.instance_count, spec.source)
        found.append(compute)
        return [address for address in found if address]

    def produces(self, spec: RunconfigSpec) -> list[tuple[str, str, JsonPath]]:
        model = spec.register_model
        return [] if model is None else [("model", model.name, ["register_model", "name"])]


DECLARING = RunconfigDeclaring()
